/**
 * ble-config: one Bluetooth adapter (BlueZ over D-Bus, the system's own Bluetooth on macOS and Windows, a Linux HCI
 * socket, HCI H4 over UART, or the built-in simulator) and its connection policy. Device nodes lease peripherals
 * from the adapter's pool; config nodes naming the same adapter share it. This file also wires the simulator in as
 * a transport of the BLE layer.
 */
import type { NodeAPI } from "node-red";
import { acquireAdapter } from "./ble/registry";
import { registerTransport } from "./ble/transports";
import { registerAdminEndpoints } from "./red/admin";
import { bleTexts, defaultTransport, poolPolicy, transportSettings, TransportUnavailableError, type BleConfigDef, type BleConfigNode } from "./red/ble-config-node";
import { bindBleCatalog, problemText } from "./red/status";
import type { Simulation } from "./sim/scenario";

// The simulator is one transport among others, wired here so that the BLE layer never depends on it. Registered
// when this module loads (every adapter is opened through a ble-config node, or after one was loaded), and loaded
// when a simulator adapter is first opened: a flow on real adapters never loads src/sim.
registerTransport("simulator", (settings) => {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { openSimulator } = require("./sim/transport") as typeof import("./sim/transport");
  return openSimulator(settings);
});

declare module "./ble/transports" {
  /** A simulator adapter's `simulation` is the Simulation it runs (tests and the node's "simulated" status use it). */
  // eslint-disable-next-line @typescript-eslint/no-empty-object-type -- the merge is the point: the handle is the Simulation
  interface SimulationHandle extends Simulation {}
}

export = function register(RED: NodeAPI): void {
  // What the BLE layer reports (reason codes, adapter names) is worded by this node's catalog, for every node.
  bindBleCatalog(RED);
  const texts = bleTexts(RED);

  function BleConfig(this: BleConfigNode, def: BleConfigDef): void {
    RED.nodes.createNode(this, def);
    this.adapter = null;
    this.configError = null;
    this.configStatus = null;
    try {
      this.adapter = acquireAdapter(transportSettings(def), poolPolicy(def));
    } catch (error) {
      if (error instanceof TransportUnavailableError) {
        this.configError = RED._(`ble-config.errors.${error.key}`, { transport: error.transport, platform: error.platform });
        this.configStatus = this.configError;
      } else {
        this.configError = texts.error(error);
      }
      this.error(RED._("ble-config.errors.invalid", { error: this.configError }));
      return;
    }
    const adapter = this.adapter;
    let lastProblem: string | null = null;
    const onState = (): void => {
      const problem = adapter.problem ? problemText(adapter.problem) : null;
      if (problem && problem !== lastProblem) this.error(problem);
      if (!problem && adapter.state === "poweredOn") this.log(RED._("ble-config.log.ready", { adapter: texts.adapter(adapter.description) }));
      lastProblem = problem;
    };
    // noble's own warnings, its words inside ours.
    const onWarning = (message: string): void => this.warn(RED._("ble-config.log.noble-warning", { message }));
    adapter.on("state", onState);
    adapter.on("warning", onWarning);
    if (adapter.problem) onState();
    this.on("close", (_removed: boolean, done: () => void) => {
      adapter.removeListener("state", onState);
      adapter.removeListener("warning", onWarning);
      adapter.unref().then(done, (error: unknown) => {
        this.error(texts.error(error));
        done();
      });
    });
  }
  // The editor offers the transports of the platform Node-RED runs on (RED.settings.bleConfigPlatform), and gives a
  // new node the platform's default (RED.settings.bleConfigDefaultTransport), the one a node saved without gets here.
  RED.nodes.registerType("ble-config", BleConfig, {
    settings: {
      bleConfigPlatform: { value: process.platform, exportable: true },
      bleConfigDefaultTransport: { value: defaultTransport(), exportable: true },
    },
  });
  // The editor's Scan button and serial-port list; registered with the config node every device node depends on.
  registerAdminEndpoints(RED);
};
