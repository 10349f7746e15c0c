/**
 * ble-scan: every advertisement an adapter hears, one message per accepted report, decoded (iBeacon, Eddystone,
 * BTHome v2, encrypted BTHome with its bind key) without connecting. The adapter's scan is shared with every other
 * ble-scan node and with the pool's connections (src/ble/pool.ts watchAdvertisements), passive unless a node asks
 * for active scanning; what happens to each report is src/red/scan-reports.ts.
 */
import type { Node, NodeAPI, NodeDef, NodeMessage, NodeStatus } from "node-red";
import { problemOf } from "./ble/problem";
import { AdvertisementError, parseBindKeys } from "./protocol/advertisement";
import { configuredAdapter } from "./red/ble-config-node";
import { PropertyError, stringProperty } from "./red/properties";
import { ScanReports, scanOptions, scanStatus, type ScanDef, type ScanProblem } from "./red/scan-reports";
import { problemText, showInvalid, statusFor } from "./red/status";

interface BleScanDef extends NodeDef, ScanDef {
  ble?: string;
  topic?: string;
}

/** The node's credential: the bind-key list, text (unknown until read: a flow file may hold anything). */
type BleScanNode = Node<{ bindKeys: unknown }>;

/** Longest bind-key list: 1,000 lines of "address = key" with room for comments. */
const MAX_BIND_KEYS_TEXT = 200_000;

/** How often the device count in the status is brought up to date. */
const STATUS_INTERVAL_MS = 1000;

export = function register(RED: NodeAPI): void {
  function BleScan(this: BleScanNode, def: BleScanDef): void {
    RED.nodes.createNode(this, def);
    const t = (key: string, subs?: Record<string, string | number>): string => RED._(`ble-scan.${key}`, subs);
    let reports: ScanReports;
    try {
      let keys = new Map<string, Buffer>();
      const keyText = this.credentials?.bindKeys;
      if (typeof keyText === "string" && keyText.trim() !== "") {
        if (keyText.length > MAX_BIND_KEYS_TEXT) throw new PropertyError("too-long", { field: "bindKeys", max: MAX_BIND_KEYS_TEXT }, `bindKeys must be at most ${MAX_BIND_KEYS_TEXT} characters`);
        try {
          keys = parseBindKeys(keyText);
        } catch (error) {
          // The line number only: the list is a secret.
          if (error instanceof AdvertisementError) throw new PropertyError(error.code, { field: "bindKeys", line: Number(error.params.line ?? 0) }, error.message);
          throw error;
        }
      }
      reports = new ScanReports(scanOptions(def, keys));
    } catch (error) {
      showInvalid(this, t, error);
      return;
    }
    const { adapter } = configuredAdapter(RED, this, def.ble);
    if (!adapter) return;
    const topic = stringProperty(def.topic);
    const passiveWanted = !reports.options.active;
    let shown = "";

    const showStatus = (): void => {
      const status: NodeStatus =
        adapter.state === "poweredOn" ? scanStatus(reports.deviceCount, passiveWanted, adapter.settings, t) : statusFor({ state: "adapter", problem: adapter.problem });
      const key = `${status.fill}/${status.shape}/${String(status.text)}`;
      if (key === shown) return;
      shown = key;
      this.status(status);
    };

    const report = (problem: ScanProblem): void => {
      const msg: NodeMessage & Record<string, unknown> = { topic, peripheral: { address: problem.address, name: problem.name } };
      const error = new Error(t(`errors.${problem.code}`, problem.params));
      error.name = "BleScanError";
      this.error(error, msg);
    };

    let unwatch: (() => void) | null = null;
    try {
      unwatch = adapter.watchAdvertisements({ active: reports.options.active }, (p) => {
        const outcome = reports.handle(p);
        if (outcome === null) return;
        if (outcome.kind === "error") report(outcome.problem);
        else this.send({ payload: outcome.payload, topic } as NodeMessage);
      });
    } catch (error) {
      this.status({ fill: "red", shape: "ring", text: problemText(problemOf(error)) });
      this.error(problemText(problemOf(error)));
      return;
    }
    const onState = (): void => showStatus();
    adapter.on("state", onState);
    showStatus();
    const timer = setInterval(showStatus, STATUS_INTERVAL_MS);

    this.on("close", (_removed: boolean, done: () => void) => {
      clearInterval(timer);
      adapter.off("state", onState);
      unwatch?.();
      done();
    });
  }
  RED.nodes.registerType("ble-scan", BleScan, { credentials: { bindKeys: { type: "password" } } });
};
