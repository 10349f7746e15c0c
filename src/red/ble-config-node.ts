/**
 * What device nodes see of a ble-config node, how its editor properties become adapter settings, and how what the
 * BLE layer reports (reason codes) is worded with the ble-config catalog.
 */
import type { Node, NodeAPI, NodeDef } from "node-red";
import { hasNativeBluetooth, type AdapterDescription, type TransportSettings } from "../ble/adapter";
import { isAdapterName } from "../ble/bluez";
import { DEFAULT_POLICY, type BleAdapter, type PoolPolicy } from "../ble/pool";
import { problemOf } from "../ble/problem";
import { intProperty, numberProperty, PropertyError, stringProperty } from "./properties";
import { noAdapter, problemText } from "./status";

export interface BleConfigDef extends NodeDef {
  transport?: string;
  /** bluez: the BlueZ adapter name. */
  bluezAdapter?: string;
  hciDevice?: string | number;
  uartPort?: string;
  uartBaudRate?: string | number;
  uartFlowControl?: boolean;
  simScenario?: string;
  /** Simulator clock speed-up; not in the editor (tests and benchmarks use it). */
  simTimeScale?: string | number;
  maxConnections?: string | number;
  connectTimeout?: string | number;
  reconnectDelay?: string | number;
  gattTimeout?: string | number;
}

/**
 * The ble-config catalog's words for what the BLE layer reports beyond the problems (red/status.ts problemText):
 * its adapters' names, and any error (a problem, a property error of the ble-config node, else its message). `RED`
 * is the ble-config node's: its catalog is the one `RED._` reads.
 */
export function bleTexts(RED: NodeAPI): { adapter(description: AdapterDescription): string; error(error: unknown): string } {
  return {
    adapter: (d) => RED._(`ble-config.adapter.${d.key}`, d.params),
    error: (error) => (error instanceof PropertyError ? RED._(`ble-config.errors.${error.key}`, error.params) : problemText(problemOf(error))),
  };
}

/** The transport a new ble-config gets: the platform's own Bluetooth (not the simulator: readings must be real). */
export function defaultTransport(platform: NodeJS.Platform = process.platform): "bluez" | "native" | "hci" {
  if (platform === "linux") return "bluez";
  return hasNativeBluetooth(platform) ? "native" : "hci";
}

export interface BleConfigNode extends Node {
  /** null when the configuration is invalid; `configError` says why. */
  adapter: BleAdapter | null;
  configError: string | null;
  /** A status for its device nodes when the configuration is refused for a reason the user must see (a transport this platform lacks), from ble-config's catalog. */
  configStatus: string | null;
}

/** A transport this platform does not have: refused with its own catalog message (`ble-config.errors.<key>`). */
export class TransportUnavailableError extends RangeError {
  constructor(
    readonly transport: string,
    readonly platform: string,
  ) {
    super(`the ${transport} transport is not available on ${platform}`);
  }

  get key(): string {
    return this.transport === "native" ? "native-unavailable" : "linux-only";
  }
}

export function transportSettings(def: BleConfigDef, platform: NodeJS.Platform = process.platform): TransportSettings {
  // A node saved without a transport gets what a new node gets: the platform's own Bluetooth.
  const transport = def.transport || defaultTransport(platform);
  switch (transport) {
    case "bluez": {
      if (platform !== "linux") throw new TransportUnavailableError(transport, platform);
      const adapter = stringProperty(def.bluezAdapter) || "hci0";
      if (!isAdapterName(adapter)) throw new PropertyError("bluezAdapter", {}, "bluezAdapter must be a BlueZ adapter name such as hci0 (letters, digits and _, at most 32)");
      return { transport, adapter };
    }
    case "native":
      if (!hasNativeBluetooth(platform)) throw new TransportUnavailableError(transport, platform);
      return { transport };
    case "hci":
      return { transport, hciDevice: intProperty(def.hciDevice, 0, 0, 255, "hciDevice") };
    case "uart": {
      const port = stringProperty(def.uartPort);
      if (!port) throw new PropertyError("uartPort-required", {}, "uartPort is required for the uart transport (e.g. /dev/ttyUSB0)");
      return {
        transport,
        port,
        baudRate: intProperty(def.uartBaudRate, 1000000, 1200, 16000000, "uartBaudRate"),
        flowControl: def.uartFlowControl !== false,
      };
    }
    case "simulator": {
      const timeScale = numberProperty(def.simTimeScale, 1, 0.01, 1000, "simTimeScale");
      return { transport, scenario: stringProperty(def.simScenario), ...(timeScale !== 1 ? { timeScale } : {}) };
    }
    default:
      // Not the value: it may come from an environment variable ("${TRANSPORT}").
      throw new PropertyError("transport", {}, 'transport must be "bluez", "native", "hci", "uart" or "simulator"');
  }
}

export function poolPolicy(def: BleConfigDef): PoolPolicy {
  return {
    ...DEFAULT_POLICY,
    maxConnections: intProperty(def.maxConnections, DEFAULT_POLICY.maxConnections, 1, 32, "maxConnections"),
    connectTimeout: intProperty(def.connectTimeout, DEFAULT_POLICY.connectTimeout, 100, 120000, "connectTimeout"),
    reconnectDelay: intProperty(def.reconnectDelay, DEFAULT_POLICY.reconnectDelay, 10, 600000, "reconnectDelay"),
    gattTimeout: intProperty(def.gattTimeout, DEFAULT_POLICY.gattTimeout, 500, 120000, "gattTimeout"),
  };
}

export type ConfiguredAdapter = { adapter: BleAdapter; problem: null } | { adapter: null; problem: string };

/**
 * The adapter of a device node's ble-config node. When there is none the device node shows a red ring and logs
 * why: the config node's status and reason when it gives them, else the shared `ble-config.status.no-adapter` /
 * `ble-config.problem.no-adapter` (red/status.ts noAdapter).
 */
export function configuredAdapter(RED: NodeAPI, node: Node, configId: string | undefined): ConfiguredAdapter {
  const config = RED.nodes.getNode(configId ?? "") as BleConfigNode | null;
  if (config?.adapter) return { adapter: config.adapter, problem: null };
  const problem = config?.configError ?? noAdapter.reason();
  const status = noAdapter.status();
  node.status(config?.configStatus ? { ...status, text: config.configStatus } : status);
  node.error(problem);
  return { adapter: null, problem };
}
