/**
 * The ble-scan node in a real Node-RED runtime against the simulator's advertisers (kinds ibeacon, bthome,
 * advertiser): filters, the message, throttle, onlyChanges, bind keys, passive and active scanning as the controller
 * sees them, and a connection (heart-rate) running beside the scan, redeploys included.
 */
import assert from "node:assert/strict";
import type { EventEmitter } from "node:events";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import type { Node, NodeMessage } from "node-red";
import bleConfigNode = require("../../src/ble-config");
import bleScanNode = require("../../src/ble-scan");
import heartRateNode = require("../../src/heart-rate");
import { OP } from "../../src/protocol/hci";
import { parseCommand } from "../../src/protocol/hci-packets";
import { scanTypeOf, type ScanType } from "../../src/protocol/scan-parameters";
import type { BleConfigNode } from "../../src/red/ble-config-node";
import type { ScanPayload } from "../../src/red/scan-reports";
import { collectMessages, currentStatus, errorCallsOf, helper, isConnected, loadFlow, waitForStatus, type FlowNode, useNodeRed } from "../support/red";

const BEACON = "c0:00:00:00:00:01";
const THERMO = "c0:00:00:00:00:02";
const TAG = "c0:00:00:00:00:03";
const SECRET = "c0:00:00:00:00:04";
const HR = "d8:75:ba:00:00:01";
const BEACON_UUID = "e2c56db5-dffb-48d2-b060-d0f5a71096e0";
const KEY = "231d39c1d7cc1ab1aee224cd096db932";
const WRONG_KEY = "00112233445566778899aabbccddeeff";

interface ScanMsg extends NodeMessage {
  payload: Omit<ScanPayload, "decoded"> & { decoded: (Record<string, unknown> & { type: string }) | null };
  topic: string;
}

/** An AD structure: length, type, data. */
const ad = (type: number, hex: string): string => Buffer.concat([Buffer.of(hex.length / 2 + 1, type), Buffer.from(hex, "hex")]).toString("hex");
const text = (s: string): string => Buffer.from(s, "utf8").toString("hex");

const PERIPHERALS = {
  beacon: { kind: "ibeacon", address: BEACON, uuid: BEACON_UUID, major: 1, minor: 2, measuredPower: -59, intervalMs: 100, rssi: -50 },
  thermo: { kind: "bthome", address: THERMO, measurements: [{ type: "temperature", values: [20, 21, 22] }], repeat: 4, intervalMs: 100, rssi: -90 },
  // A tag whose name is only in its scan response, with a company's manufacturer data in its advertising data.
  tag: { kind: "advertiser", address: TAG, data: ad(0x01, "06") + ad(0xff, "59000102"), scanResponse: ad(0x09, text("Tag-7")), intervalMs: 100, rssi: -60 },
  secret: { kind: "bthome", address: SECRET, measurements: [{ type: "humidity", values: [40, 41, 42, 43] }], bindKey: KEY, repeat: 4, intervalMs: 100, rssi: -60 },
  strap: { kind: "heart-rate", address: HR, addressType: "random", name: "44278-33", bpm: [60, 61, 62], intervalMs: 1000 },
};

function scenarioFile(peripherals: readonly object[]): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ble-scan-"));
  const file = path.join(dir, "scenario.json");
  fs.writeFileSync(file, JSON.stringify({ peripherals }));
  return file;
}

const tab: FlowNode = { id: "flow", type: "tab", label: "test" };
const config = (file: string): FlowNode => ({ id: "cfg", type: "ble-config", transport: "simulator", simScenario: file, simTimeScale: 10 });
const sink = (id: string): FlowNode => ({ id, z: "flow", type: "helper" });

/** A ble-scan node `id` wired to a helper `<id>-out`. */
function scanNode(id: string, extra: Record<string, unknown> = {}): FlowNode[] {
  return [{ id, z: "flow", type: "ble-scan", ble: "cfg", topic: "scan", wires: [[`${id}-out`]], ...extra }, sink(`${id}-out`)];
}

/** Every message a helper node receives from now on. */
function recorder(id: string): ScanMsg[] {
  const got: ScanMsg[] = [];
  (helper.getNode(id) as unknown as EventEmitter).on("input", (msg: ScanMsg) => got.push(msg));
  return got;
}

/** Resolves once `predicate` holds for the messages `id` has received (checked on each new one). */
function until(id: string, got: readonly ScanMsg[], predicate: (got: readonly ScanMsg[]) => boolean, timeoutMs = 15000): Promise<void> {
  if (predicate(got)) return Promise.resolve();
  const node = helper.getNode(id) as unknown as EventEmitter;
  return new Promise((resolve, reject) => {
    const check = (): void => {
      // The recorder's listener was attached first, so `got` already holds this message.
      if (!predicate(got)) return;
      clearTimeout(timer);
      node.removeListener("input", check);
      resolve();
    };
    const timer = setTimeout(() => {
      node.removeListener("input", check);
      reject(new Error(`${id}: condition not met within ${timeoutMs} ms after ${got.length} messages`));
    }, timeoutMs);
    node.on("input", check);
  });
}

const from = (address: string) => (m: ScanMsg): boolean => m.payload.address === address;
const addresses = (got: readonly ScanMsg[]): string[] => [...new Set(got.map((m) => m.payload.address))].sort();

function controller(): NonNullable<NonNullable<BleConfigNode["adapter"]>["simulation"]>["controller"] {
  const cfg = helper.getNode("cfg") as BleConfigNode;
  const controller = cfg.adapter?.simulation?.controller;
  assert.ok(controller, "a simulator adapter");
  return controller;
}

/** The HCI commands the host sends from now on: scan types of LE Set Scan Parameters, and link commands. */
function hostCommands(): { scanTypes: ScanType[]; links: number[] } {
  const seen = { scanTypes: [] as ScanType[], links: [] as number[] };
  controller().on("host-h4", (packet: Buffer) => {
    const type = scanTypeOf(packet);
    if (type) seen.scanTypes.push(type);
    const op = parseCommand(packet)?.opcode;
    if (op === OP.LE_CREATE_CONNECTION || op === OP.DISCONNECT) seen.links.push(op);
  });
  return seen;
}

function errorsOfNode(id: string): { text: string; msg: unknown }[] {
  return errorCallsOf(helper.getNode(id) as Node).map(([e, msg]) => ({ text: e instanceof Error ? e.message : String(e), msg }));
}

describe("ble-scan node (simulated advertisers)", function () {
  this.timeout(60000);
  useNodeRed();

  it("sends one message per report with the issue's payload, decoded; every filter keeps only its devices", async () => {
    const file = scenarioFile([PERIPHERALS.beacon, PERIPHERALS.thermo, PERIPHERALS.tag]);
    await loadFlow(
      [bleConfigNode, bleScanNode],
      [
        tab,
        config(file),
        ...scanNode("all", { active: true }),
        ...scanNode("byAddress", { address: BEACON.toUpperCase() }),
        ...scanNode("byName", { namePrefix: "Tag-", active: true }),
        ...scanNode("byService", { service: "FCD2" }),
        ...scanNode("byCompany", { manufacturerId: "0x004C" }),
        ...scanNode("byCompanyDecimal", { manufacturerId: "89" }),
        ...scanNode("byRssi", { minRssi: "-70" }),
      ],
    );
    const ids = ["all", "byAddress", "byName", "byService", "byCompany", "byCompanyDecimal", "byRssi"];
    const got = Object.fromEntries(ids.map((id) => [id, recorder(`${id}-out`)]));
    await until("all-out", got.all, (g) => addresses(g).length === 3 && g.some((m) => m.payload.name === "Tag-7"));
    for (const id of ids.slice(1)) await until(`${id}-out`, got[id], (g) => g.length >= 3);

    assert.deepEqual(addresses(got.byAddress), [BEACON]);
    assert.deepEqual(addresses(got.byName), [TAG]);
    assert.deepEqual(addresses(got.byService), [THERMO]);
    assert.deepEqual(addresses(got.byCompany), [BEACON]);
    assert.deepEqual(addresses(got.byCompanyDecimal), [TAG]);
    assert.deepEqual(addresses(got.byRssi), [BEACON, TAG]);

    const beacon = got.all.find(from(BEACON));
    assert.ok(beacon);
    assert.equal(beacon.topic, "scan");
    assert.deepEqual(beacon.payload.decoded, { type: "ibeacon", uuid: BEACON_UUID, major: 1, minor: 2, measuredPower: -59 });
    assert.equal(beacon.payload.manufacturerData[0].companyId, 76);
    assert.match(beacon.payload.manufacturerData[0].data, /^0215e2c56db5/);
    assert.equal(beacon.payload.rssi, -50);
    const tag = got.all.find((m) => m.payload.address === TAG && m.payload.name === "Tag-7");
    assert.ok(tag);
    // (connectable as noble reports it: noble counts a scannable advertisement, ADV_SCAN_IND, as connectable.)
    assert.deepEqual(
      { ...tag.payload, rssi: 0, connectable: null },
      { address: TAG, addressType: "random", name: "Tag-7", rssi: 0, txPower: null, connectable: null, services: [], manufacturerData: [{ companyId: 89, data: "0102" }], serviceData: [], decoded: null },
    );
    assert.equal(beacon.payload.connectable, false, "a beacon (ADV_NONCONN_IND) is not connectable");
    const thermo = got.all.find(from(THERMO));
    assert.ok(thermo);
    assert.deepEqual(thermo.payload.serviceData.map((s) => s.uuid), ["fcd2"]);
    assert.equal(thermo.payload.decoded?.type, "bthome");
    assert.ok([20, 21, 22].includes(thermo.payload.decoded?.temperature as number));
    const status = await waitForStatus(helper.getNode("byAddress"), (st) => st.fill === "green" && st.text !== "scanning: 0 devices");
    assert.deepEqual(status, { fill: "green", shape: "dot", text: "scanning: 1 devices" }, "the devices that pass the filters");
  });

  it("scans passively by default (no scan responses: no name from the scan response), actively while a node asks", async () => {
    const file = scenarioFile([PERIPHERALS.tag]);
    await loadFlow([bleConfigNode, bleScanNode], [tab, config(file), ...scanNode("passive")]);
    const passive = recorder("passive-out");
    const commands = hostCommands();
    await until("passive-out", passive, (g) => g.length >= 5);
    assert.deepEqual(new Set(passive.map((m) => m.payload.name)), new Set([""]), "a passive scan gets no scan response");
    assert.equal(helper.getNode("cfg") && (helper.getNode("cfg") as BleConfigNode).adapter?.currentScanType, "passive");

    // An active node joins: the controller is asked for an active scan, and the name arrives (for both nodes).
    await helper.setFlows([tab, config(file), ...scanNode("passive"), ...scanNode("active", { active: true })] as Parameters<typeof helper.setFlows>[0], "nodes");
    const active = recorder("active-out");
    await until("active-out", active, (g) => g.some((m) => m.payload.name === "Tag-7"));
    assert.equal(commands.scanTypes.at(-1), "active");

    // It leaves again: back to passive at the controller.
    await helper.setFlows([tab, config(file), ...scanNode("passive")] as Parameters<typeof helper.setFlows>[0], "nodes");
    const after = passive.length;
    await until("passive-out", passive, (g) => g.length >= after + 5 && commands.scanTypes.at(-1) === "passive");
    assert.equal(commands.scanTypes.at(-1), "passive");
  });

  it("throttle: at most one message per device per period; 0 sends every report", async () => {
    const file = scenarioFile([PERIPHERALS.beacon]);
    await loadFlow([bleConfigNode, bleScanNode], [tab, config(file), ...scanNode("every"), ...scanNode("throttled", { throttle: "600000" })]);
    const every = recorder("every-out");
    const throttled = recorder("throttled-out");
    await until("every-out", every, (g) => g.length >= 10);
    await until("throttled-out", throttled, (g) => g.length >= 1);
    assert.equal(throttled.length, 1, "one message in the period, while the beacon advertised ten times and more");
  });

  it("onlyChanges: a device's repeated advertisement is sent once, each new reading once", async () => {
    const file = scenarioFile([PERIPHERALS.thermo]);
    await loadFlow([bleConfigNode, bleScanNode], [tab, config(file), ...scanNode("every"), ...scanNode("changes", { onlyChanges: true })]);
    const every = recorder("every-out");
    const changes = recorder("changes-out");
    await until("changes-out", changes, (g) => g.length >= 4);
    const readings = changes.map((m) => m.payload.decoded);
    for (let i = 1; i < readings.length; i++) assert.notDeepEqual(readings[i], readings[i - 1], `message ${i} repeats the one before`);
    const temps = changes.map((m) => m.payload.decoded?.temperature as number);
    for (let i = 1; i < temps.length; i++) assert.equal(temps[i], [20, 21, 22][([20, 21, 22].indexOf(temps[i - 1]) + 1) % 3], "every reading, in the sensor's order");
    // The sensor sends each packet several times: the node without onlyChanges passes the repeats on.
    const ids = every.map((m) => JSON.stringify(m.payload.decoded));
    assert.ok(ids.some((id, i) => i > 0 && id === ids[i - 1]), "repeats reach a node without onlyChanges");
  });

  it("bind keys: the right key decodes, a wrong or missing key gives one error naming the device, repeats are dropped", async () => {
    const file = scenarioFile([PERIPHERALS.secret]);
    await loadFlow(
      [bleConfigNode, bleScanNode],
      [tab, config(file), ...scanNode("right"), ...scanNode("wrong"), ...scanNode("none")],
      { right: { bindKeys: `# the lab's sensor\n${SECRET.toUpperCase()} = ${KEY}\n` }, wrong: { bindKeys: `${SECRET} = ${WRONG_KEY}` } },
    );
    const right = recorder("right-out");
    const wrong = recorder("wrong-out");
    const none = recorder("none-out");
    await until("right-out", right, (g) => g.length >= 4);
    const decoded = right.map((m) => m.payload.decoded);
    assert.ok(decoded.every((d) => d?.type === "bthome" && d.encrypted === true && [40, 41, 42, 43].includes(d.humidity as number)));
    const packetIds = right.map((m) => JSON.stringify(m.payload.decoded));
    assert.equal(new Set(packetIds).size, packetIds.length, "each packet once, though the sensor repeats it (same counter: dropped silently)");
    assert.deepEqual(errorsOfNode("right"), []);
    assert.deepEqual([wrong.length, none.length], [0, 0], "no data message without the right key");
    const [wrongError, ...moreWrong] = errorsOfNode("wrong");
    const [noneError, ...moreNone] = errorsOfNode("none");
    assert.deepEqual([moreWrong.length, moreNone.length], [0, 0], "one error a minute per device");
    assert.match(wrongError.text, new RegExp(`^${SECRET}: encrypted BTHome advertisement that its bind key does not open`));
    assert.match(noneError.text, new RegExp(`^${SECRET}: encrypted BTHome advertisement, but no bind key`));
    assert.doesNotMatch(wrongError.text, new RegExp(WRONG_KEY, "i"));
    assert.deepEqual((wrongError.msg as { peripheral: unknown }).peripheral, { address: SECRET, name: "" }, "a Catch node gets the device");
  });

  it("a bind-key list with a bad line is refused, naming the line, not the keys", async () => {
    const file = scenarioFile([PERIPHERALS.secret]);
    await loadFlow([bleConfigNode, bleScanNode], [tab, config(file), ...scanNode("bad")], { bad: { bindKeys: `${SECRET} = ${KEY}\n${THERMO} = 1234` } });
    assert.deepEqual(currentStatus(helper.getNode("bad")), { fill: "red", shape: "ring", text: "invalid configuration" });
    assert.deepEqual(
      errorsOfNode("bad").map((e) => e.text),
      ["bindKeys, line 2: the key must be 32 hex digits"],
    );
  });

  it("a connection beside the scan keeps its data; deploying, changing and removing scan nodes never touches the link", async () => {
    const file = scenarioFile([PERIPHERALS.strap, PERIPHERALS.beacon]);
    const hr: FlowNode = { id: "hr", z: "flow", type: "heart-rate", ble: "cfg", address: HR, deviceName: "", topic: "heart", wires: [["hr-out"]] };
    const base = [tab, config(file), hr, sink("hr-out")];
    await loadFlow([bleConfigNode, bleScanNode, heartRateNode], [...base, ...scanNode("scanA")]);
    await waitForStatus(helper.getNode("hr"), isConnected, 20000);
    const commands = hostCommands();
    let scan = recorder("scanA-out");
    await until("scanA-out", scan, (g) => g.filter(from(BEACON)).length >= 3);
    await collectMessages(helper.getNode("hr-out"), 2, 20000);

    // Redeploy the scan node changed, then an active one beside it, then none: the link stays.
    for (const scans of [scanNode("scanA", { throttle: "1" }), [...scanNode("scanA", { throttle: "1" }), ...scanNode("scanB", { active: true })], []]) {
      await helper.setFlows([...base, ...scans] as Parameters<typeof helper.setFlows>[0], "nodes");
      if (scans.length > 0) {
        scan = recorder("scanA-out");
        await until("scanA-out", scan, (g) => g.filter(from(BEACON)).length >= 3);
      }
      const values = await collectMessages(helper.getNode("hr-out"), 2, 20000);
      assert.ok(values.every((m) => typeof m.payload === "number"));
    }
    assert.deepEqual(commands.links, [], "no LE Create Connection, no Disconnect: the link was never touched");
    assert.equal(isConnected(currentStatus(helper.getNode("hr")) ?? {}), true);
    assert.equal(controller().connectionCount, 1);
  });
});
