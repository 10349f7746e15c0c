/**
 * ble-gatt-request in a real Node-RED runtime, against a scenario-defined device of the simulator (kind "gatt")
 * through noble: the device answers requests from a table, a reply split over notifications, late, or not at all.
 * One message in, one out (or a Catch-able error); how the reply ends; serialised requests; a late reply discarded;
 * the idle policy; msg.disconnect; a missing characteristic or property named.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import type { NodeMessage } from "node-red";
import bleConfigNode = require("../../src/ble-config");
import bleGattInNode = require("../../src/ble-gatt-in");
import bleGattRequestNode = require("../../src/ble-gatt-request");
import type { BleConfigNode } from "../../src/red/ble-config-node";
import { collectMessages, errorsOf, helper, isConnected, loadFlow, waitForStatus, type FlowNode, useNodeRed } from "../support/red";

const DEVICE = "c0:ff:ee:00:00:73";
/** The simulator's clock runs this much faster than the wall clock: a reply delay of 3000 in the scenario is 300 ms. */
const TIME_SCALE = 10;

interface CaughtMsg extends NodeMessage {
  error: { message: string; source: { id: string } };
}

/** Longer than any link's MTU − 3 here: a long write. */
const LONG_COMMAND = `${"A".repeat(399)}\n`;

const text = (t: string): { text: string } => ({ text: t });

/**
 * Service ccc0. ccc1: write + notify, answers on itself from a table (nothing for an unknown request). ccc2: read
 * only. ccc3: write, answers on ccc4 (notify), as a UART's RX and TX.
 */
const TABLE = [
  {
    uuid: "ccc0",
    characteristics: [
      {
        uuid: "ccc1",
        properties: ["write", "notify"],
        onWrite: {
          replyOn: "ccc1",
          replies: [
            { request: text("*IDN?\n"), reply: [text("ACME,"), text("X1,"), text("1.0\n")] },
            { request: text("SLOW\n"), reply: [text("late\n")], delayMs: 3000 },
            { request: text("SLOWISH\n"), reply: [text("slowish\n")], delayMs: 1000 },
            { request: text("FAST\n"), reply: [text("fast\n")] },
            { request: text("BYTES\n"), reply: [{ hex: "0102" }, { hex: "030405" }] },
            { request: text("TEMP\n"), reply: [{ hex: "3408" }] },
            { request: text(LONG_COMMAND), reply: [text("long ok\n")] },
          ],
        },
      },
      { uuid: "ccc2", properties: ["read"], value: { hex: "00" } },
      { uuid: "ccc3", properties: ["write"], onWrite: { replyOn: "ccc4", replies: [{ request: text("ping"), reply: [text("pong")] }] } },
      { uuid: "ccc4", properties: ["notify"] },
    ],
  },
];

function scenario(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ble-gatt-request-"));
  const file = path.join(dir, "scenario.json");
  fs.writeFileSync(file, JSON.stringify({ peripherals: [{ kind: "gatt", address: DEVICE, name: "Instrument", services: TABLE }] }));
  return file;
}

const tab: FlowNode = { id: "flow", type: "tab", label: "test" };
/** On the tab, with a position: a flow node (Node-RED takes a node without x and y for a config node). */
const on = { z: "flow", x: 100, y: 100 };
const config: FlowNode = { id: "cfg", type: "ble-config", transport: "simulator", simScenario: "", simTimeScale: TIME_SCALE };

/** A request node `id` wired to helper `${id}-out`. */
function requestNode(id: string, extra: Record<string, unknown> = {}): FlowNode[] {
  return [
    { id, ...on, type: "ble-gatt-request", ble: "cfg", address: DEVICE, service: "ccc0", characteristic: "ccc1", delimiter: "\\n", timeout: 2000, ...extra, wires: [[`${id}-out`]] },
    { id: `${id}-out`, ...on, type: "helper" },
  ];
}

/** The nodes, the config node, and one catch node for the request nodes into helper "caught". */
async function load(nodes: FlowNode[]): Promise<void> {
  const caught: FlowNode[] = [
    { id: "catcher", ...on, type: "catch", scope: nodes.filter((n) => n.type === "ble-gatt-request").map((n) => n.id), uncaught: false, wires: [["caught"]] },
    { id: "caught", ...on, type: "helper" },
  ];
  await loadFlow([bleConfigNode, bleGattRequestNode, bleGattInNode], [{ ...config, simScenario: scenario() }, ...nodes, ...caught, tab]);
}

/** Sends `payload` to request node `id` and resolves with the message it sends. */
async function ask(id: string, payload: unknown, extra: Record<string, unknown> = {}): Promise<NodeMessage & Record<string, unknown>> {
  const out = collectMessages(helper.getNode(`${id}-out`), 1);
  helper.getNode(id).receive({ payload, ...extra } as NodeMessage);
  return (await out)[0] as NodeMessage & Record<string, unknown>;
}

/** Sends `payload` to request node `id` and resolves with the error the catch node gets from it. */
async function refused(id: string, payload: unknown): Promise<string> {
  const caught = collectMessages(helper.getNode("caught"), 1);
  helper.getNode(id).receive({ payload } as NodeMessage);
  const [msg] = (await caught) as CaughtMsg[];
  assert.equal(msg.error.source.id, id, "the error comes from the node that got the message");
  return msg.error.message;
}

function controller(): NonNullable<NonNullable<BleConfigNode["adapter"]>["simulation"]>["controller"] {
  const cfg = helper.getNode("cfg") as BleConfigNode;
  assert.ok(cfg.adapter?.simulation, "config node has a simulated adapter");
  return cfg.adapter.simulation.controller;
}

describe("ble-gatt-request node (Node-RED runtime + simulator gatt device through noble)", function () {
  this.timeout(30000);

  useNodeRed();

  it("a reply spanning three notifications goes out on the same message, formatted, with the device and UUIDs", async () => {
    await load(requestNode("q", { format: "utf8", topic: "idn" }));
    const msg = await ask("q", "*IDN?\n", { keep: 7 });
    assert.equal(msg.payload, "ACME,X1,1.0");
    assert.equal(msg.keep, 7, "the message that came in, with its other properties");
    assert.deepEqual(msg.peripheral, { address: DEVICE, name: "Instrument" });
    assert.equal(msg.service, "ccc0");
    assert.equal(msg.characteristic, "ccc1");
    assert.equal(msg.topic, "idn");
  });

  it("the reply ends at the delimiter (kept when asked), after quietMs, or at length bytes; with none, the first value", async () => {
    const hex = { format: "hex", delimiter: "" };
    await load([
      ...requestNode("kept", { format: "utf8", keepDelimiter: true }),
      ...requestNode("quiet", { ...hex, quietMs: 100 }),
      ...requestNode("length", { ...hex, length: 4 }),
      ...requestNode("first", hex),
    ]);
    assert.equal((await ask("kept", "FAST\n")).payload, "fast\n");
    assert.equal((await ask("quiet", "BYTES\n")).payload, "0102030405", "both notifications, then quiet");
    assert.equal((await ask("length", "BYTES\n")).payload, "01020304", "4 bytes; the rest discarded");
    assert.equal((await ask("first", "BYTES\n")).payload, "0102", "the first value alone");
  });

  it("a command longer than MTU − 3 is written whole (a long write) and answered", async () => {
    await load(requestNode("q", { format: "utf8", response: "with" }));
    assert.equal((await ask("q", LONG_COMMAND)).payload, "long ok");
  });

  it("format decodes the reply (a numeric format)", async () => {
    await load(requestNode("q", { format: "int16le", delimiter: "" }));
    assert.equal((await ask("q", "TEMP\n")).payload, 0x0834);
  });

  it("a reply on another characteristic (replyCharacteristic), as a UART's RX and TX", async () => {
    await load(requestNode("q", { characteristic: "ccc3", replyCharacteristic: "ccc4", delimiter: "", format: "utf8" }));
    const msg = await ask("q", "ping");
    assert.equal(msg.payload, "pong");
    assert.equal(msg.characteristic, "ccc4");
  });

  it("no reply within timeout is a Catch-able error naming the characteristic, and no message goes out", async () => {
    await load(requestNode("q", { timeout: 200, format: "utf8" }));
    const out = helper.getNode("q-out");
    let sent = 0;
    out.on("input", () => sent++);
    assert.equal(await refused("q", "UNKNOWN\n"), "BleProblemError: no complete reply on ccc1 within 200 ms");
    assert.equal((await ask("q", "FAST\n")).payload, "fast", "the next request is answered");
    assert.equal(sent, 1, "the failed request sent nothing");
  });

  it("a reply that comes after its request timed out is discarded, never the answer to the next request", async () => {
    await load([
      ...requestNode("q", { format: "utf8", timeout: 100 }),
      // Sees everything the device sends on ccc1: here, when the late reply has come.
      { id: "watch", ...on, type: "ble-gatt-in", ble: "cfg", address: DEVICE, service: "ccc0", characteristic: "ccc1", format: "utf8", wires: [["seen"]] },
      { id: "seen", ...on, type: "helper" },
    ]);
    await waitForStatus(helper.getNode("watch"), isConnected);
    assert.equal(await refused("q", "SLOW\n"), "BleProblemError: no complete reply on ccc1 within 100 ms");
    const late = collectMessages(helper.getNode("seen"), 1);
    assert.equal((await late)[0].payload, "late\n", "the device did answer, late");
    assert.equal((await ask("q", "FAST\n")).payload, "fast");
  });

  it("two request nodes on one device: requests are serialised, each gets its own reply, over one link", async () => {
    await load([...requestNode("a", { format: "utf8" }), ...requestNode("b", { format: "utf8" })]);
    await Promise.all([waitForStatus(helper.getNode("a"), isConnected), waitForStatus(helper.getNode("b"), isConnected)]);
    // a's reply takes 100 ms; b's request arrives meanwhile and must not be written before a has its reply (the
    // device answers in the order of the writes, so b would otherwise take "slowish" for its own).
    const [ra, rb] = await Promise.all([ask("a", "SLOWISH\n"), ask("b", "FAST\n")]);
    assert.equal(ra.payload, "slowish");
    assert.equal(rb.payload, "fast");
    assert.equal(controller().connectionCount, 1);
  });

  it("connection idle: connects for a request, lets the link go after idleSeconds, connects again for the next", async () => {
    await load(requestNode("q", { format: "utf8", connection: "idle", idleSeconds: 1 }));
    const q = helper.getNode("q");
    await waitForStatus(q, (s) => s.fill === "grey" && s.text === "idle (connects when used)");
    assert.equal(controller().connectionCount, 0, "no link before the first message");
    assert.equal((await ask("q", "FAST\n")).payload, "fast");
    await waitForStatus(q, (s) => s.fill === "grey" && s.text === "idle (connects when used)");
    assert.equal(controller().connectionCount, 0, "the link is gone after the idle time");
    assert.equal((await ask("q", "*IDN?\n")).payload, "ACME,X1,1.0", "the next message connects again");
  });

  it("msg.disconnect drops the link once and writes nothing; a kept link comes back and answers", async () => {
    await load(requestNode("q", { format: "utf8" }));
    const q = helper.getNode("q");
    await waitForStatus(q, isConnected);
    const dropped = waitForStatus(q, (s) => !isConnected(s));
    let sent = 0;
    helper.getNode("q-out").on("input", () => sent++);
    helper.getNode("q").receive({ payload: "FAST\n", disconnect: true } as NodeMessage);
    await dropped;
    await waitForStatus(q, isConnected);
    assert.equal((await ask("q", "*IDN?\n")).payload, "ACME,X1,1.0");
    assert.equal(sent, 1, "the disconnect message sent nothing");
  });

  it("names a missing characteristic, one that cannot be written, and a reply characteristic that cannot notify", async () => {
    await load([
      ...requestNode("missing", { characteristic: "ccc9" }),
      ...requestNode("readonly", { characteristic: "ccc2" }),
      ...requestNode("silent", { characteristic: "ccc3", replyCharacteristic: "ccc2" }),
    ]);
    assert.equal(await refused("missing", "x"), `BleProblemError: characteristic ccc9 of service ccc0 not found on ${DEVICE}`);
    assert.equal(await refused("readonly", "x"), "BleProblemError: characteristic ccc2 does not allow write");
    assert.equal(await refused("silent", "x"), "BleProblemError: characteristic ccc2 does not allow notify");
  });

  it("refuses a command no write can carry (over 512 bytes) at once, without waiting for a device that is not there", async () => {
    await load(requestNode("away", { address: "c0:ff:ee:00:00:99" }));
    assert.equal(await refused("away", Buffer.alloc(600)), "BleProblemError: a value of 600 bytes is too long for ccc1 (a characteristic holds at most 512)");
  });

  it("an invalid setting is a red ring and an error naming the setting", async () => {
    await load(requestNode("q", { replyCharacteristic: "not-a-uuid" }));
    await waitForStatus(helper.getNode("q"), (s) => s.fill === "red" && s.text === "invalid configuration");
    assert.deepEqual(errorsOf(helper.getNode("q")), ["replyCharacteristic must be a 16-bit UUID such as 2a19 or a 128-bit one such as 6e400001-b5a3-f393-e0a9-e50e24dcca9e"]);
  });
});
