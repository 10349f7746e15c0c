/**
 * ble-config: one Bluetooth adapter (BlueZ over D-Bus, the system's own Bluetooth on macOS and Windows, a Linux HCI
 * socket, HCI H4 over UART, or the built-in simulator) and its connection policy. Device nodes lease peripherals from the adapter's pool; config nodes naming the same
 * adapter share it.
 */
import type { NodeAPI } from "node-red";
import { defaultTransport, setProblemText } from "./ble/adapter";
import { acquireAdapter } from "./ble/pool";
import { registerAdminEndpoints } from "./red/admin";
import { poolPolicy, transportSettings, TransportUnavailableError, type BleConfigDef, type BleConfigNode } from "./red/ble-config-node";
import { PropertyError } from "./red/properties";

export = function register(RED: NodeAPI): void {
  // Adapter problems (src/ble) are worded by this node's catalog, whoever opened the adapter.
  setProblemText((problem) => RED._(`ble-config.problem.${problem.key}`, problem.params));

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
      } else if (error instanceof PropertyError) {
        this.configError = RED._(`ble-config.errors.${error.key}`, error.params);
      } else {
        this.configError = error instanceof Error ? error.message : String(error);
      }
      this.error(RED._("ble-config.errors.invalid", { error: this.configError }));
      return;
    }
    const adapter = this.adapter;
    let lastProblem: string | null = null;
    const onState = (): void => {
      const problem = adapter.problem;
      if (problem && problem !== lastProblem) this.error(problem);
      if (!problem && adapter.state === "poweredOn") this.log(RED._("ble-config.log.ready", { adapter: adapter.description }));
      lastProblem = problem;
    };
    const onWarning = (message: string): void => this.warn(message);
    adapter.on("state", onState);
    adapter.on("warning", onWarning);
    if (adapter.problem) onState();
    this.on("close", (_removed: boolean, done: () => void) => {
      adapter.removeListener("state", onState);
      adapter.removeListener("warning", onWarning);
      adapter.unref().then(done, (error: unknown) => {
        this.error(error instanceof Error ? error.message : String(error));
        done();
      });
    });
  }
  // The editor offers the transports of the platform Node-RED runs on (RED.settings.bleConfigPlatform), and a new
  // adapter gets the transport the runtime gives one saved without any (RED.settings.bleConfigDefaultTransport).
  const settings = {
    bleConfigPlatform: { value: process.platform, exportable: true },
    bleConfigDefaultTransport: { value: defaultTransport(), exportable: true },
  };
  RED.nodes.registerType("ble-config", BleConfig, { settings });
  // The editor's Scan button and serial-port list; registered with the config node every device node depends on.
  registerAdminEndpoints(RED);
};
