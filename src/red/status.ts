/**
 * Lease states as Node-RED status dots, following core conventions (green dot, yellow ring, red ring), worded by
 * the package's shared catalog: `ble-config.status.*` and `ble-config.problem.*` in nodes/locales/en-US/ble-config.json,
 * which every node reaches through Node-RED's namespaced key (a node set's catalog is registered under
 * "<module>/<set>", and RED._ passes a key with a namespace through unchanged).
 */
import type { Node, NodeStatus } from "node-red";
import type { LeaseState } from "../ble/lease";
import type { BleProblem } from "../ble/problem";
import { PropertyError } from "./properties";

export type Translate = (key: string, substitutions?: Record<string, string | number>) => string;

/** The namespace of the ble-config node set's catalog: the package's name, "/", the set's name. */
export const BLE_CATALOG = "@ble-instruments/node-red-ble-instruments/ble-config";

/** Until a Node-RED runtime is bound (bindBleCatalog), keys are shown as they are, as Node-RED shows a missing one. */
let shared: Translate = (key) => key;

/** Words the shared texts with this runtime's RED._ (any node's: the key carries its namespace). ble-config's register calls it. */
export function bindBleCatalog(RED: { _: Translate }): void {
  shared = (key, substitutions) => RED._(`${BLE_CATALOG}:ble-config.${key}`, substitutions);
}

/** A reason code of the BLE layer in the user's words (`ble-config.problem.<key>`). */
export function problemText(problem: BleProblem): string {
  return shared(`problem.${problem.key}`, problem.params);
}

/** The green dot of a device node whose device is connected (and ready, for a node that sets itself up first). */
export function connectedStatus(simulated: boolean): NodeStatus {
  // A user must not take the simulator's invented readings for a real device's.
  return { fill: "green", shape: "dot", text: shared(simulated ? "status.connected-simulated" : "status.connected") };
}

/** A device node whose ble-config node is missing or has no adapter: its red ring and the reason it logs. */
export const noAdapter = {
  status: (): NodeStatus => ({ fill: "red", shape: "ring", text: shared("status.no-adapter") }),
  reason: (): string => problemText({ key: "no-adapter", params: {} }),
};

/** The status a device node shows for its lease's state, in the shared texts. */
export function statusFor(state: LeaseState): NodeStatus {
  switch (state.state) {
    case "adapter":
      return state.problem ? { fill: "red", shape: "ring", text: problemText(state.problem) } : { fill: "yellow", shape: "ring", text: shared("status.waiting-adapter") };
    case "scanning":
      return { fill: "yellow", shape: "ring", text: shared("status.scanning") };
    case "waiting-slot":
      return { fill: "yellow", shape: "ring", text: shared("status.waiting-slot", { inUse: state.inUse, max: state.max }) };
    case "connecting":
      return { fill: "yellow", shape: "ring", text: shared("status.connecting") };
    case "connected":
      return connectedStatus(state.simulated);
    case "reconnecting":
      return { fill: "yellow", shape: "ring", text: shared("status.reconnecting", { seconds: Math.ceil(state.retryInMs / 1000) }) };
    case "error":
      return { fill: "red", shape: "ring", text: shared("status.error", { text: problemText(state.problem), seconds: Math.ceil(state.retryInMs / 1000) }) };
    case "idle":
      // Not connected by choice (connection "idle"): neither a fault nor a wait.
      return { fill: "grey", shape: "ring", text: shared("status.idle") };
  }
}

/**
 * A node whose own properties are invalid: red ring, and the reason in the log, worded by the node's catalog
 * (`errors.<key>`) when it is a PropertyError. Returns the reason.
 */
export function showInvalid(node: Node, t: Translate, error: unknown): string {
  const reason = error instanceof PropertyError ? t(`errors.${error.key}`, error.params) : error instanceof Error ? error.message : String(error);
  node.status({ fill: "red", shape: "ring", text: shared("status.invalid") });
  node.error(reason);
  return reason;
}
