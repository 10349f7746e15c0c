/**
 * Transports without a radio of their own, registered by name: each opens an HCI peer in this process (src/ble/
 * hci-peer.ts) that noble then drives through its ordinary UART driver. The BLE layer knows no such transport itself;
 * the node layer registers them (src/ble-config.ts registers the simulator, src/sim/transport.ts), so real hardware
 * never loads them.
 */
import type { HciPeer } from "./hci-peer";

/**
 * What an opened peer transport offers for inspection beyond its peer (the simulator: its Simulation), opaque to the
 * BLE layer. Empty here; the node layer that registers a transport fills it in by declaration merging.
 */
// eslint-disable-next-line @typescript-eslint/no-empty-object-type -- filled in by declaration merging
export interface SimulationHandle {}

/** The settings of the simulator transport: a scenario file ("" = the built-in scenario) and its clock's speed-up. */
export interface SimulatorSettings {
  scenario: string;
  timeScale?: number;
}

/** One opened peer transport. */
export interface PeerTransportOpening {
  readonly peer: HciPeer;
  readonly simulation: SimulationHandle | null;
  /** Starts the peer's clock, once it is registered and before noble starts. */
  start(): void;
  /** Ends the peer; idempotent. */
  close(): void;
}

/**
 * Opens a peer transport. Throws when the settings cannot be used, with a message that names what is wrong without
 * quoting values (it reaches the user as the `detail` of the problem `simulator-scenario`).
 */
export type PeerTransport = (settings: SimulatorSettings) => PeerTransportOpening;

/** The names a peer transport may be registered under (a TransportSettings `transport`). */
export type PeerTransportName = "simulator";

const transports = new Map<PeerTransportName, PeerTransport>();

/** Makes `name` openable; replaces an earlier registration (registering twice is harmless). */
export function registerTransport(name: PeerTransportName, open: PeerTransport): void {
  transports.set(name, open);
}

export function registeredTransport(name: PeerTransportName): PeerTransport | undefined {
  return transports.get(name);
}
