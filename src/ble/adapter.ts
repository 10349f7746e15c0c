/**
 * One Bluetooth adapter as noble sees it: BlueZ over D-Bus, a Linux HCI socket, the system's own Bluetooth on
 * macOS and Windows, an HCI H4 controller on a serial port (the ESP32 dongle of the seed document), or a transport
 * registered by name (the simulator, src/ble/transports.ts). This module knows how to open each; the pool decides
 * what to do with them.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { randomUUID } from "node:crypto";
import type { Noble } from "@stoprocent/noble";
import { bluezNoble } from "./bluez";
import { hciPeerPort, registerHciPeer, unregisterHciPeer } from "./hci-peer";
import { installNobleHciDriver, SCAN_TYPE_SWITCH, ScanTypeSwitch, SERIAL_OBSERVER, type SerialObserver } from "./noble-driver";
import { BleProblemError, type BleProblem } from "./problem";
import { registeredTransport, type SimulationHandle, type SimulatorSettings } from "./transports";

export type TransportSettings =
  | { transport: "bluez"; adapter: string }
  | { transport: "native" }
  | { transport: "hci"; hciDevice: number }
  | { transport: "uart"; port: string; baudRate: number; flowControl: boolean }
  | ({ transport: "simulator" } & SimulatorSettings);

/** Two config nodes that name the same adapter get the same key, and so share one noble instance. */
export function adapterKey(settings: TransportSettings): string {
  switch (settings.transport) {
    case "bluez":
      return `bluez:${settings.adapter}`;
    case "native":
      return "native";
    case "hci":
      return `hci:${settings.hciDevice}`;
    case "uart":
      return `uart:${settings.port}`;
    case "simulator":
      return `simulator:${settings.scenario ? path.resolve(settings.scenario) : "(built-in)"}`;
  }
}

/** How an adapter is named to users: a key of the ble-config catalog's `adapter` group, and its substitutions. */
export interface AdapterDescription {
  readonly key: string;
  readonly params: Readonly<Record<string, string | number>>;
}

export function describeTransport(settings: TransportSettings): AdapterDescription {
  switch (settings.transport) {
    case "bluez":
      return { key: "bluez", params: { adapter: settings.adapter } };
    case "native":
      return { key: process.platform === "darwin" ? "native-mac" : "native-windows", params: {} };
    case "hci":
      return { key: "hci", params: { device: `hci${settings.hciDevice}` } };
    case "uart":
      return { key: "uart", params: { port: settings.port, baudRate: settings.baudRate } };
    case "simulator":
      return settings.scenario ? { key: "simulator", params: { file: path.basename(settings.scenario) } } : { key: "simulator-built-in", params: {} };
  }
}

export interface OpenAdapter {
  readonly noble: Noble;
  /** The simulator's Simulation when the transport is one, else null. */
  readonly simulation: SimulationHandle | null;
  /** What the transport itself found wrong (bluez: the check of the system bus), or null. */
  problem?(): BleProblem | null;
  /**
   * The scan type of an HCI transport (our driver wrapper sets it in noble's commands); absent where the stack
   * scans by itself (BlueZ over D-Bus, macOS, Windows): those scan actively whatever the pool wants.
   */
  readonly scanType?: ScanTypeSwitch;
  /**
   * Stops noble and whatever the transport opened; idempotent. Resolves once the transport has let go of the
   * device: a serial port is closed, or its open, still pending when noble stopped, has ended.
   */
  close(): Promise<void>;
}

export interface AdapterEvents {
  /** The transport failed (a serial port that cannot be opened, and why). */
  transportProblem?(problem: BleProblem): void;
  /** The transport's own problem() changed (bluez: the system bus, bluetoothd, the adapter). */
  problemChanged?(): void;
}

/** Loads noble lazily: requiring it creates default bindings, which is wasted work until an adapter is opened. */
function nobleWithBindings(options: Parameters<typeof import("@stoprocent/noble").withBindings>[1]): Noble {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { withBindings } = require("@stoprocent/noble") as typeof import("@stoprocent/noble");
  return withBindings("hci", options);
}

/** The platforms whose own Bluetooth stack noble drives natively: CoreBluetooth and WinRT. */
export function hasNativeBluetooth(platform: NodeJS.Platform = process.platform): boolean {
  return platform === "darwin" || platform === "win32";
}

/**
 * Whether an adapter in this state is to be opened again, with backoff: a serial dongle that is not up, or BlueZ
 * that could not be reached (bluetoothd away, no D-Bus); a BlueZ adapter that is powered off is followed instead.
 */
export function reopensWhenDown(settings: TransportSettings, state: string): boolean {
  if (settings.transport === "uart") return state !== "poweredOn";
  if (settings.transport === "bluez") return state !== "poweredOn" && state !== "poweredOff";
  return false;
}

/**
 * Opens the transport and returns an un-started noble: noble initialises its bindings when the first
 * `stateChange` listener is attached. What stops a transport from opening (a missing HCI adapter, a scenario the
 * simulator cannot use) throws a BleProblemError here, before anything is opened; a serial port's failure arrives
 * later, through `events.transportProblem`. Nothing the serial port or its driver reports is ever thrown.
 * The transport's own problem() changes are announced through `events.problemChanged`.
 */
export function openAdapter(settings: TransportSettings, events: AdapterEvents = {}): OpenAdapter {
  if (settings.transport === "bluez") {
    const { noble, problem } = bluezNoble(settings.adapter, () => events.problemChanged?.());
    return { noble, simulation: null, problem, close: () => closeNoble(noble) };
  }
  if (settings.transport === "native") {
    if (!hasNativeBluetooth()) throw new BleProblemError({ key: "native-unavailable", params: { platform: process.platform } });
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { withBindings } = require("@stoprocent/noble") as typeof import("@stoprocent/noble");
    const noble = withBindings(process.platform === "darwin" ? "mac" : "win");
    return { noble, simulation: null, close: () => closeNoble(noble) };
  }
  // Every HCI transport's driver goes through our wrapper: it carries the ATT guard (src/protocol/att-guard.ts).
  installNobleHciDriver();
  if (settings.transport === "hci") {
    // Started without its adapter, noble prints advice of its own on the console (twice per deploy); the kernel
    // already says the adapter is absent, so say that instead and leave noble unstarted (the pool checks again).
    if (!hciAdapterPresent(settings.hciDevice)) throw new BleProblemError(missingHciAdapter(settings.hciDevice));
    const scanType = new ScanTypeSwitch();
    const noble = nobleWithBindings({ deviceId: settings.hciDevice, bindParams: { [SCAN_TYPE_SWITCH]: scanType } });
    return { noble, simulation: null, scanType, close: () => closeNoble(noble) };
  }
  if (settings.transport === "uart") {
    let released: Promise<void> = Promise.resolve();
    let closed = false;
    const observer: SerialObserver = {
      error: (error) => {
        if (!closed) events.transportProblem?.(serialPortProblem(settings.port, error));
      },
      stopped: (whenReleased) => {
        released = whenReleased;
      },
    };
    // The UART driver of @stoprocent/bluetooth-hci-socket always enables RTS/CTS flow control; see README.
    const uart = { port: settings.port, baudRate: settings.baudRate, [SERIAL_OBSERVER]: observer };
    const scanType = new ScanTypeSwitch();
    const noble = nobleWithBindings({ hciDriver: "uart", bindParams: { uart, [SCAN_TYPE_SWITCH]: scanType } });
    return {
      noble,
      simulation: null,
      scanType,
      close: async () => {
        if (!closed) {
          closed = true;
          stopNoble(noble);
        }
        await released;
      },
    };
  }
  return openPeerTransport(settings);
}

/** A transport registered by name (the simulator): its HCI peer, registered for noble's UART driver to reach. */
function openPeerTransport(settings: Extract<TransportSettings, { transport: "simulator" }>): OpenAdapter {
  const open = registeredTransport(settings.transport);
  // Registered by the node layer (src/ble-config.ts); a program that uses the pool alone registers it itself.
  if (!open) throw new BleProblemError({ key: "transport-not-registered", params: { transport: settings.transport } });
  let opening;
  try {
    opening = open(settings);
  } catch (error) {
    // The scenario's problem, in the transport's words (they name the field, never a value).
    throw new BleProblemError({ key: "simulator-scenario", params: { detail: error instanceof Error ? error.message : String(error) } });
  }
  // Unique across copies of this module: the registry of HCI peers is process-wide.
  const id = `${settings.transport}-${randomUUID()}`;
  registerHciPeer(id, opening.peer);
  opening.start();
  const scanType = new ScanTypeSwitch();
  const noble = nobleWithBindings({ hciDriver: "uart", bindParams: { uart: { port: hciPeerPort(id), baudRate: 1000000 }, [SCAN_TYPE_SWITCH]: scanType } });
  let closed = false;
  return {
    noble,
    simulation: opening.simulation,
    scanType,
    close: () => {
      if (closed) return Promise.resolve();
      closed = true;
      stopNoble(noble);
      unregisterHciPeer(id);
      opening.close();
      return Promise.resolve();
    },
  };
}

/**
 * Why a serial port failed, as a problem of the ble-config catalog: the operating system's reason, which serialport
 * gives only as text ("Error: No such file or directory, cannot open /dev/ttyUSB0", "Error Resource temporarily
 * unavailable Cannot lock port"), labelled with the error code that text stands for. The port's path is never part
 * of it (it may come from an environment variable): the catalog names the setting, uartPort.
 */
export function serialPortProblem(port: string, error: Error): BleProblem {
  const message = error.message;
  const reason = SERIAL_REASONS.find((r) => r.pattern.test(message));
  if (reason) return { key: reason.key, params: { code: reason.code } };
  // Anything else: the operating system's words, without serialport's "Error: " prefixes and the path it adds
  // (", cannot open /dev/ttyUSB0"); should the path appear elsewhere, the words are not given.
  const words = message
    .replace(/^(Error:?\s*)+/, "")
    .replace(/,\s*cannot open\b.*$/s, "")
    .trim()
    .slice(0, 200);
  return { key: "uart-failed", params: { reason: words !== "" && !words.includes(port) ? words : "unknown error" } };
}

/** serialport's texts: strerror() of the failed call, or its own words around it. */
const SERIAL_REASONS: readonly { pattern: RegExp; key: string; code: string }[] = [
  { pattern: /No such file or directory/i, key: "uart-no-such-file", code: "ENOENT" },
  { pattern: /Permission denied/i, key: "uart-permission", code: "EACCES" },
  { pattern: /Operation not permitted/i, key: "uart-permission", code: "EPERM" },
  { pattern: /Is a directory/i, key: "uart-directory", code: "EISDIR" },
  { pattern: /Inappropriate ioctl for device|Not a typewriter/i, key: "uart-not-tty", code: "ENOTTY" },
  { pattern: /Device or resource busy/i, key: "uart-in-use", code: "EBUSY" },
  // "Cannot lock port": flock(LOCK_EX | LOCK_NB) on a port another program holds fails with EWOULDBLOCK (= EAGAIN).
  { pattern: /Cannot lock port|Resource temporarily unavailable/i, key: "uart-in-use", code: "EAGAIN" },
];

/** Stops a noble whose transport holds nothing that outlives it (no serial port). */
function closeNoble(noble: Noble): Promise<void> {
  stopNoble(noble);
  return Promise.resolve();
}

function stopNoble(noble: Noble): void {
  try {
    noble.stop();
  } catch {
    // Stopping an adapter that never came up (no HCI device) throws inside the driver; there is nothing left to stop.
  }
  noble.removeAllListeners();
}

/** Whether the kernel has HCI device `index` (a Linux adapter shows in sysfs while it is plugged in). */
function hciAdapterPresent(index: number): boolean {
  return fs.existsSync(`/sys/class/bluetooth/hci${index}`);
}

function missingHciAdapter(index: number): BleProblem {
  return { key: "hci-missing", params: { device: `hci${index}` } };
}

/**
 * What to tell a user whose adapter is not usable: noble only says "unsupported" or "unauthorized",
 * which is how a missing adapter, a missing capability and a busy adapter all look.
 */
export function adapterProblem(settings: TransportSettings, state: string, transport?: OpenAdapter | null): BleProblem | null {
  if (state === "poweredOn") return null;
  const own = transport?.problem?.();
  if (own) return own;
  if (state === "unknown" || state === "resetting") return null;
  if (settings.transport === "bluez") {
    if (state === "poweredOff") return { key: "bluez-powered-off", params: { adapter: settings.adapter } };
    // "unsupported" before the transport has said why: its check is under way, and will call onProblem.
    return null;
  }
  if (settings.transport === "native") {
    return { key: state === "poweredOff" ? "native-powered-off" : "native-unusable", params: { state } };
  }
  if (settings.transport === "hci") {
    const device = `hci${settings.hciDevice}`;
    if (!hciAdapterPresent(settings.hciDevice)) return missingHciAdapter(settings.hciDevice);
    return { key: state === "poweredOff" ? "hci-down" : "hci-unusable", params: { device, state } };
  }
  // A device path (not a Windows COM name) that is not there: the dongle is unplugged or the name is wrong.
  if (settings.transport === "uart" && path.isAbsolute(settings.port) && !fs.existsSync(settings.port)) {
    return { key: "uart-no-such-file", params: { code: "ENOENT" } };
  }
  if (settings.transport === "uart") return { key: state === "poweredOff" ? "uart-closed" : "uart-unusable", params: { state } };
  return { key: "simulator-state", params: { state } };
}

/**
 * A serial port that opened, but whose controller never answered noble's HCI Reset. The settings are not quoted
 * (the catalog names uartPort and uartBaudRate); the parameter stays for the pool, which passes them.
 */
export function uartNotAnswering(_settings: Extract<TransportSettings, { transport: "uart" }>): BleProblem {
  return { key: "uart-not-answering", params: {} };
}
