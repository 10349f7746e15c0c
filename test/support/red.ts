/** Loading nodes into a real Node-RED runtime (node-red-node-test-helper) and waiting for what they do. */
import helper = require("node-red-node-test-helper");
import assert from "node:assert/strict";
import type { EventEmitter } from "node:events";
import type { Node, NodeAPI, NodeMessage, NodeStatus } from "node-red";
import { openAdapterCount } from "../../src/ble/registry";
import { translate } from "./catalog";
import { NODE_RED_RUNTIME } from "./node-red-under-test";

/** The helper emits `call:<method>` events on nodes, which Node-RED's types do not list. */
const events = (node: Node): EventEmitter => node as unknown as EventEmitter;

helper.init(NODE_RED_RUNTIME);

export { helper };

/**
 * Mocha hooks for a describe block of node tests: a Node-RED server for the block, the flow unloaded after each
 * test, and a check that unloading closed every adapter (the pool's reference counting).
 */
export function useNodeRed(whatIsClosed = "every adapter is closed once the flow is gone"): void {
  before((done) => {
    helper.startServer(done);
  });
  after((done) => {
    helper.stopServer(done);
  });
  afterEach(async () => {
    await helper.unload();
    assert.equal(openAdapterCount(), 0, whatIsClosed);
  });
}

/** Resolves with the next `count` messages the helper node receives; rejects after `timeoutMs`. */
export function collectMessages(node: Node, count: number, timeoutMs = 10000): Promise<NodeMessage[]> {
  return new Promise((resolve, reject) => {
    const got: NodeMessage[] = [];
    const onInput = (msg: NodeMessage): void => {
      got.push(msg);
      if (got.length === count) {
        clearTimeout(timer);
        node.removeListener("input", onInput);
        resolve(got);
      }
    };
    const timer = setTimeout(() => {
      node.removeListener("input", onInput);
      reject(new Error(`expected ${count} messages within ${timeoutMs} ms, got ${got.length}`));
    }, timeoutMs);
    node.on("input", onInput);
  });
}

interface SpyCall<T> {
  args: T[];
}

/** The last status the node has set, read from the helper's spy on Node.prototype.status. */
export function currentStatus(node: Node): NodeStatus | null {
  return statusesOf(node).at(-1) ?? null;
}

/** The arguments of every call this node made to `method` since the flow was loaded, from the helper's spies. */
function callsOf(node: Node, method: "status" | "error" | "warn"): unknown[][] {
  const spy = node[method] as unknown as { getCalls(): { thisValue: unknown; args: unknown[] }[] };
  return spy
    .getCalls()
    .filter((c) => c.thisValue === node)
    .map((c) => c.args);
}

/** Every status the node has shown since the flow was loaded. */
export function statusesOf(node: Node): NodeStatus[] {
  return callsOf(node, "status").map((args) => args[0] as NodeStatus);
}

/** What the node logged with node.error, as text (an Error's message). */
export function errorsOf(node: Node): string[] {
  return callsOf(node, "error").map(([first]) => String(first instanceof Error ? first.message : first));
}

/** The arguments of each node.error call the node made (the error, and the message it is about if any). */
export function errorCallsOf(node: Node): unknown[][] {
  return callsOf(node, "error");
}

/** What the node logged with node.warn, as text. */
export function warningsOf(node: Node): string[] {
  return callsOf(node, "warn").map(([first]) => String(first));
}

/** What nodes of these types logged at warning level or worse (node.warn, node.error) since the flow was loaded. */
export function warningsAndErrors(types: readonly string[]): string[] {
  const log = helper.log() as unknown as { args: { level: number; msg: unknown; type?: string }[][]; WARN: number };
  return log.args.filter(([entry]) => entry.level <= log.WARN && entry.type !== undefined && types.includes(entry.type)).map(([entry]) => String(entry.msg));
}

/** Resolves with the node's status once it satisfies `predicate`: the current one, or the first later one that does. */
export function waitForStatus(node: Node, predicate: (s: NodeStatus) => boolean, timeoutMs = 10000): Promise<NodeStatus> {
  const now = currentStatus(node);
  if (now && predicate(now)) return Promise.resolve(now);
  return new Promise((resolve, reject) => {
    const seen: string[] = [];
    const onStatus = (call: SpyCall<NodeStatus>): void => {
      const status = call.args[0];
      seen.push(`${status.fill ?? ""}/${status.shape ?? ""}/${String(status.text ?? "")}`);
      if (predicate(status)) {
        clearTimeout(timer);
        events(node).removeListener("call:status", onStatus);
        resolve(status);
      }
    };
    const timer = setTimeout(() => {
      events(node).removeListener("call:status", onStatus);
      reject(new Error(`status not reached within ${timeoutMs} ms; saw ${seen.join(", ") || "nothing"}`));
    }, timeoutMs);
    events(node).on("call:status", onStatus);
  });
}

/** Resolves with the first node.error(...) call's arguments. */
export function waitForError(node: Node, timeoutMs = 10000): Promise<unknown[]> {
  return new Promise((resolve, reject) => {
    const onError = (call: SpyCall<unknown>): void => {
      clearTimeout(timer);
      events(node).removeListener("call:error", onError);
      resolve(call.args);
    };
    const timer = setTimeout(() => {
      events(node).removeListener("call:error", onError);
      reject(new Error(`no error within ${timeoutMs} ms`));
    }, timeoutMs);
    events(node).on("call:error", onError);
  });
}

export const isConnected = (s: NodeStatus): boolean => s.fill === "green" && s.shape === "dot";

/** A node of a test flow: any properties the node's editor would store. */
export interface FlowNode {
  id: string;
  type: string;
  [property: string]: unknown;
}

export { translate };

type Register = (RED: NodeAPI) => void;

const withCatalog =
  (register: Register): Register =>
  (RED) => {
    RED._ = translate;
    register(RED);
  };

/**
 * helper.load with our catalogs, and flows typed loosely: node properties are whatever each node's editor stores;
 * `credentials` by node id, as the runtime keeps them out of the flow.
 */
export function loadFlow(modules: Register[], flow: FlowNode[], credentials?: Record<string, Record<string, unknown>>): Promise<void> {
  return helper.load(modules.map(withCatalog) as Parameters<typeof helper.load>[0], flow as Parameters<typeof helper.load>[1], credentials ?? {});
}
