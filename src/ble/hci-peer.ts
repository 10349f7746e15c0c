/**
 * HCI peers: controllers that live in this process (the simulator's virtual controller, a replay of recorded
 * traffic) and that noble reaches as if they were serial HCI controllers. A peer is registered under an id; the UART
 * port `hciPeerPort(id)` then selects it (src/ble/noble-driver.ts routes that port to the peer instead of a serial
 * device). The BLE layer defines what a peer is; whoever provides one (src/sim) implements it.
 */

/** A controller in this process, speaking H4 (packet type byte first) with noble. */
export interface HciPeer {
  /** The peer has ended; noble is then told that the adapter went down. */
  readonly isClosed: boolean;
  /** One H4 packet from noble (a command or ACL data). */
  write(packet: Buffer): void;
  /** `h4`: one H4 packet for noble (an event or ACL data). `close`: the peer ended. */
  on(event: "h4", listener: (packet: Buffer) => void): unknown;
  on(event: "close", listener: () => void): unknown;
  off(event: "h4", listener: (packet: Buffer) => void): unknown;
  off(event: "close", listener: () => void): unknown;
}

/** The prefix of the UART port names that select an HCI peer (unchanged since the simulator was the only peer). */
export const HCI_PEER_PORT_PREFIX = "virtual:";

/**
 * Shared through globalThis: the built package (nodes/) and its TypeScript sources (tests) may both be loaded in
 * one process, and the driver installed by either must find peers registered by the other.
 */
const REGISTRY_KEY = Symbol.for("@ble-instruments/node-red-ble-instruments/virtual-hci-controllers");

function registry(): Map<string, HciPeer> {
  const holder = globalThis as { [REGISTRY_KEY]?: Map<string, HciPeer> };
  holder[REGISTRY_KEY] ??= new Map();
  return holder[REGISTRY_KEY];
}

/** Makes `peer` reachable as the UART port `hciPeerPort(id)`. Replaces an earlier registration under `id`. */
export function registerHciPeer(id: string, peer: HciPeer): void {
  if (id.length === 0) throw new Error("an HCI peer id must not be empty");
  registry().set(id, peer);
}

export function unregisterHciPeer(id: string): void {
  registry().delete(id);
}

/** The peer registered as `id`, if any. */
export function hciPeer(id: string): HciPeer | undefined {
  return registry().get(id);
}

/** Peers reachable right now (leak tests check that closed adapters unregister theirs). */
export function hciPeerCount(): number {
  return registry().size;
}

/** The `bindParams.uart.port` value that selects the peer registered as `id`. */
export function hciPeerPort(id: string): string {
  return `${HCI_PEER_PORT_PREFIX}${id}`;
}

/** The peer id a UART port name selects, or undefined for a real serial port. */
export function hciPeerIdOf(port: string): string | undefined {
  return port.startsWith(HCI_PEER_PORT_PREFIX) ? port.slice(HCI_PEER_PORT_PREFIX.length) : undefined;
}
