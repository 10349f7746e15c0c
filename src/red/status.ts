/** Lease states as Node-RED status dots, following core conventions (green dot, yellow ring, red ring). */
import type { Node, NodeStatus } from "node-red";
import type { LeaseState } from "../ble/pool";
import type { BleProblem } from "../ble/problem";
import { PropertyError } from "./properties";

export type Translate = (key: string, substitutions?: Record<string, string | number>) => string;

/** Until the ble-config node binds its catalog (bindBleCatalog), a problem shows as its key. */
let bleCatalog: Translate = (key) => key;

/** Words the BLE layer's problems with the ble-config catalog; the ble-config node's register calls it with its RED. */
export function bindBleCatalog(RED: { _: Translate }): void {
  bleCatalog = (key, substitutions) => RED._(`ble-config.${key}`, substitutions);
}

/** A reason code of the BLE layer in the user's words (`ble-config.problem.<key>`). */
export function problemText(problem: BleProblem): string {
  return bleCatalog(`problem.${problem.key}`, problem.params);
}

export function statusFor(state: LeaseState, t: Translate): NodeStatus {
  switch (state.state) {
    case "adapter":
      return state.problem ? { fill: "red", shape: "ring", text: problemText(state.problem) } : { fill: "yellow", shape: "ring", text: t("status.waiting-adapter") };
    case "scanning":
      return { fill: "yellow", shape: "ring", text: t("status.scanning") };
    case "waiting-slot":
      return { fill: "yellow", shape: "ring", text: t("status.waiting-slot", { inUse: state.inUse, max: state.max }) };
    case "connecting":
      return { fill: "yellow", shape: "ring", text: t("status.connecting") };
    case "connected":
      // A user must not take the simulator's invented readings for a real device's.
      return { fill: "green", shape: "dot", text: t(state.simulated ? "status.connected-simulated" : "status.connected") };
    case "reconnecting":
      return { fill: "yellow", shape: "ring", text: t("status.reconnecting", { seconds: Math.ceil(state.retryInMs / 1000) }) };
    case "error":
      return { fill: "red", shape: "ring", text: t("status.error", { text: state.text, seconds: Math.ceil(state.retryInMs / 1000) }) };
  }
}

/**
 * A node whose own properties are invalid: red ring, and the reason in the log, worded by the node's catalog
 * (`errors.<key>`) when it is a PropertyError. Returns the reason.
 */
export function showInvalid(node: Node, t: Translate, error: unknown): string {
  const reason = error instanceof PropertyError ? t(`errors.${error.key}`, error.params) : error instanceof Error ? error.message : String(error);
  node.status({ fill: "red", shape: "ring", text: t("status.invalid") });
  node.error(reason);
  return reason;
}
