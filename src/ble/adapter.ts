/**
 * One Bluetooth adapter as noble sees it: a Linux HCI socket, an HCI H4 controller on a serial port
 * (the ESP32 dongle of the seed document), or the built-in virtual controller.
 * This module knows how to open each; the pool decides what to do with them.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { randomUUID } from "node:crypto";
import type { Noble } from "@stoprocent/noble";
import { installVirtualHciDriver, registerVirtualController, unregisterVirtualController, virtualPortFor } from "../sim/hci-driver";
import { DEFAULT_SCENARIO, loadScenarioFile, parseScenario, Simulation } from "../sim/scenario";

export type TransportSettings =
  | { transport: "hci"; hciDevice: number }
  | { transport: "uart"; port: string; baudRate: number; flowControl: boolean }
  | { transport: "simulator"; scenario: string; timeScale?: number };

/** Two config nodes that name the same adapter get the same key, and so share one noble instance. */
export function adapterKey(settings: TransportSettings): string {
  switch (settings.transport) {
    case "hci":
      return `hci:${settings.hciDevice}`;
    case "uart":
      return `uart:${settings.port}`;
    case "simulator":
      return `simulator:${settings.scenario ? path.resolve(settings.scenario) : "(built-in)"}`;
  }
}

export function describeTransport(settings: TransportSettings): string {
  switch (settings.transport) {
    case "hci":
      return `hci${settings.hciDevice}`;
    case "uart":
      return `HCI UART ${settings.port} @ ${settings.baudRate} baud`;
    case "simulator":
      return settings.scenario ? `simulator (${path.basename(settings.scenario)})` : "simulator (built-in scenario)";
  }
}

export interface OpenAdapter {
  readonly noble: Noble;
  readonly simulation: Simulation | null;
  /** Stops noble and whatever the transport opened; idempotent. */
  close(): void;
}

/** Loads noble lazily: requiring it creates default bindings, which is wasted work until an adapter is opened. */
function nobleWithBindings(options: Parameters<typeof import("@stoprocent/noble").withBindings>[1]): Noble {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { withBindings } = require("@stoprocent/noble") as typeof import("@stoprocent/noble");
  return withBindings("hci", options);
}

/**
 * Opens the transport and returns an un-started noble: noble initialises its bindings when the first
 * `stateChange` listener is attached. Scenario errors (simulator) throw here, before anything is opened.
 */
export function openAdapter(settings: TransportSettings): OpenAdapter {
  // Every transport's driver goes through our wrapper: it carries the ATT guard (src/protocol/att-guard.ts).
  installVirtualHciDriver();
  if (settings.transport === "hci") {
    // Started without its adapter, noble prints advice of its own on the console (twice per deploy); the kernel
    // already says the adapter is absent, so say that instead and leave noble unstarted (the pool checks again).
    if (!hciAdapterPresent(settings.hciDevice)) throw new Error(missingHciAdapter(settings.hciDevice));
    const noble = nobleWithBindings({ deviceId: settings.hciDevice });
    return { noble, simulation: null, close: () => stopNoble(noble) };
  }
  if (settings.transport === "uart") {
    // The UART driver of @stoprocent/bluetooth-hci-socket always enables RTS/CTS flow control; see README.
    const noble = nobleWithBindings({ hciDriver: "uart", bindParams: { uart: { port: settings.port, baudRate: settings.baudRate } } });
    return { noble, simulation: null, close: () => stopNoble(noble) };
  }
  const scenario = settings.scenario ? loadScenarioFile(settings.scenario) : parseScenario(DEFAULT_SCENARIO, "");
  const simulation = new Simulation(scenario, settings.timeScale !== undefined ? { timeScale: settings.timeScale } : {});
  // Unique across copies of this module: the registry of virtual controllers is process-wide.
  const id = `sim-${randomUUID()}`;
  registerVirtualController(id, simulation.controller);
  simulation.start();
  const noble = nobleWithBindings({ hciDriver: "uart", bindParams: { uart: { port: virtualPortFor(id), baudRate: 1000000 } } });
  let closed = false;
  return {
    noble,
    simulation,
    close: () => {
      if (closed) return;
      closed = true;
      stopNoble(noble);
      unregisterVirtualController(id);
      simulation.close();
    },
  };
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

function missingHciAdapter(index: number): string {
  return `no Bluetooth adapter hci${index} on this machine (nothing in /sys/class/bluetooth); plug one in, pick another HCI device index, or use the simulator or uart transport`;
}

/**
 * What to tell a user whose adapter is not usable: noble only says "unsupported" or "unauthorized",
 * which is how a missing adapter, a missing capability and a busy adapter all look.
 */
export function adapterProblem(settings: TransportSettings, state: string): string | null {
  if (state === "poweredOn" || state === "unknown" || state === "resetting") return null;
  if (settings.transport === "hci") {
    const dev = `hci${settings.hciDevice}`;
    if (!hciAdapterPresent(settings.hciDevice)) return missingHciAdapter(settings.hciDevice);
    if (state === "poweredOff") return `${dev} is down: bring it up with "sudo hciconfig ${dev} up" (or "bluetoothctl power on")`;
    return (
      `${dev} cannot be opened (${state}): give Node.js the raw-socket capabilities with ` +
      `"sudo setcap cap_net_raw,cap_net_admin+eip $(readlink -f $(which node))", and make sure no other program holds the adapter`
    );
  }
  if (settings.transport === "uart") {
    // A device path (not a Windows COM name) that is not there: the dongle is unplugged or the name is wrong.
    if (path.isAbsolute(settings.port) && !fs.existsSync(settings.port)) {
      return `HCI UART ${settings.port}: the serial port does not exist; plug the dongle in, or pick the port it appears as`;
    }
    if (state === "poweredOff") return `HCI UART ${settings.port} is closed or not answering: check the cable, the port name and that the user may open it (group dialout)`;
    return `HCI UART ${settings.port}: controller not usable (${state}); it must be an HCI H4 controller with Bluetooth 4.0 or later`;
  }
  return `simulator adapter is ${state}`;
}
