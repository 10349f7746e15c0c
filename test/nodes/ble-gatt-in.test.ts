/**
 * ble-gatt-in in a real Node-RED runtime, against scenario-defined devices of the simulator (kind "gatt") through
 * noble: formats, SIG decoding, splitting a stream across notifications, read modes, missing characteristics and
 * properties, the idle connection policy, a link shared by two nodes, msg.disconnect.
 */
import assert from "node:assert/strict";
import type { EventEmitter } from "node:events";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import type { NodeMessage } from "node-red";
import bleConfigNode = require("../../src/ble-config");
import bleGattInNode = require("../../src/ble-gatt-in");
import type { BleConfigNode } from "../../src/red/ble-config-node";
import { collectMessages, currentStatus, errorsOf, helper, isConnected, loadFlow, waitForStatus, type FlowNode, useNodeRed } from "../support/red";

const DEVICE = "c0:ff:ee:00:00:71";
const NUS_SERVICE = "6e400001-b5a3-f393-e0a9-e50e24dcca9e";
const NUS_TX = "6e400003-b5a3-f393-e0a9-e50e24dcca9e";

interface GattMsg extends NodeMessage {
  peripheral: { address: string; name: string };
  service: string;
  characteristic: string;
  topic: string;
}

interface CaughtMsg extends NodeMessage {
  error: { message: string; source: { id: string } };
}

function writeScenario(scenario: unknown): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ble-gatt-in-"));
  const file = path.join(dir, "scenario.json");
  fs.writeFileSync(file, JSON.stringify(scenario));
  return file;
}

/** A scenario with one `gatt` device named "Test Device" of these services. */
function device(services: unknown[]): string {
  return writeScenario({ peripherals: [{ kind: "gatt", address: DEVICE, name: "Test Device", services }] });
}

const tab: FlowNode = { id: "flow", type: "tab", label: "test" };

function simConfig(scenario: string): FlowNode {
  return { id: "cfg", type: "ble-config", transport: "simulator", simScenario: scenario, simTimeScale: 10 };
}

function gattIn(id: string, extra: Record<string, unknown>): FlowNode {
  return { id, z: "flow", type: "ble-gatt-in", ble: "cfg", address: DEVICE, deviceName: "", topic: "t", wires: [[`${id}-out`]], ...extra };
}

const sink = (id: string): FlowNode => ({ id, z: "flow", type: "helper" });
/** A catch node for `scope` feeding the helper "caught". */
const catcher = (scope: string[]): FlowNode[] => [
  { id: "catcher", z: "flow", type: "catch", scope, uncaught: false, wires: [["caught"]] },
  sink("caught"),
];

/** The first message the catch node sends (into helper "caught") about an error of node `id`. */
function caughtFrom(id: string): Promise<CaughtMsg> {
  // The helper node is an EventEmitter of messages ("input"), which Node-RED's Node type does not list.
  const caught = helper.getNode("caught") as unknown as EventEmitter;
  return new Promise((resolve) => {
    const onInput = (msg: CaughtMsg): void => {
      if (msg.error.source.id !== id) return;
      caught.removeListener("input", onInput);
      resolve(msg);
    };
    caught.on("input", onInput);
  });
}

function controller(): NonNullable<NonNullable<BleConfigNode["adapter"]>["simulation"]>["controller"] {
  const cfg = helper.getNode("cfg") as BleConfigNode;
  assert.ok(cfg.adapter?.simulation, "config node has a simulated adapter");
  return cfg.adapter.simulation.controller;
}

/** Resolves once the controller has no link (checked on each packet it sends the host, such as Disconnection Complete). */
function linksDown(): Promise<void> {
  const c = controller();
  return new Promise((resolve) => {
    const check = (): void => {
      if (c.connectionCount > 0) return;
      c.off("h4", check);
      resolve();
    };
    c.on("h4", check);
    check();
  });
}

/** Sends `msg` into node `id` and resolves with the next message its output helper gets. */
async function ask(id: string, msg: Record<string, unknown> = {}): Promise<GattMsg> {
  const reply = collectMessages(helper.getNode(`${id}-out`), 1);
  helper.getNode(id).receive(msg as NodeMessage);
  return ((await reply) as GattMsg[])[0];
}

describe("ble-gatt-in node (Node-RED runtime + simulator gatt devices through noble)", function () {
  this.timeout(30000);

  useNodeRed();

  it("decodes a read value in each format: bytes, text, hex and every numeric width and byte order", async () => {
    const scenario = device([
      {
        uuid: "aaa0",
        characteristics: [
          { uuid: "aaa1", properties: ["read"], value: { hex: "feff" } },
          { uuid: "aaa2", properties: ["read"], value: { text: "héllo" } },
          { uuid: "aaa4", properties: ["read"], value: { hex: "0000c0bf" } },
          { uuid: "aaa5", properties: ["read"], value: { hex: "bfc00000" } },
          { uuid: "aaa8", properties: ["read"], value: { hex: "f0" } },
        ],
      },
    ]);
    const cases: [string, string, unknown][] = [
      ["aaa1", "buffer", Buffer.from([0xfe, 0xff])],
      ["aaa2", "utf8", "héllo"],
      ["aaa1", "hex", "feff"],
      ["aaa8", "uint8", 240],
      ["aaa8", "int8", -16],
      ["aaa1", "uint16le", 65534],
      ["aaa1", "int16le", -2],
      ["aaa1", "uint16be", 65279],
      ["aaa1", "int16be", -257],
      ["aaa4", "uint32le", 0xbfc00000],
      ["aaa4", "int32le", -1077936128],
      ["aaa4", "float32le", -1.5],
      ["aaa4", "uint32be", 0xc0bf],
      ["aaa4", "int32be", 0xc0bf],
      ["aaa5", "float32be", -1.5],
    ];
    const nodes = cases.flatMap(([characteristic, format], i) => [gattIn(`n${i}`, { service: "aaa0", characteristic, format, mode: "read", interval: 0 }), sink(`n${i}-out`)]);
    await loadFlow([bleConfigNode, bleGattInNode], [simConfig(scenario), ...nodes, tab]);
    for (const [i, [, format, expected]] of cases.entries()) {
      const msg = await ask(`n${i}`);
      assert.deepEqual(msg.payload, expected, format);
    }
    assert.equal(controller().connectionCount, 1, "every node on the device shares one link");
  });

  it("decodes Battery Level and Temperature by their SIG definitions to plain numbers, with the message's fields", async () => {
    const scenario = device([
      { uuid: "180f", characteristics: [{ uuid: "2a19", properties: ["read", "notify"], value: { hex: "64" }, notify: { intervalMs: 200, values: [{ hex: "63" }, { hex: "62" }] } }] },
      { uuid: "181a", characteristics: [{ uuid: "2a6e", properties: ["read"], value: { hex: "9808" } }] },
    ]);
    await loadFlow(
      [bleConfigNode, bleGattInNode],
      [
        simConfig(scenario),
        // UUIDs spelled the ways users write them: they name the same characteristics.
        gattIn("battery", { service: "0x180F", characteristic: "00002A19-0000-1000-8000-00805F9B34FB", format: "sig" }),
        sink("battery-out"),
        gattIn("temp", { service: "181A", characteristic: "0x2a6e", format: "sig", mode: "read", interval: 0 }),
        sink("temp-out"),
        tab,
      ],
    );
    const battery = (await collectMessages(helper.getNode("battery-out"), 2)) as GattMsg[];
    assert.deepEqual(
      battery.map((m) => m.payload),
      [99, 98],
    );
    assert.deepEqual(
      { peripheral: battery[0].peripheral, service: battery[0].service, characteristic: battery[0].characteristic, topic: battery[0].topic },
      { peripheral: { address: DEVICE, name: "Test Device" }, service: "180f", characteristic: "2a19", topic: "t" },
    );
    const temp = await ask("temp");
    assert.equal(temp.payload, 22);
    assert.equal(temp.characteristic, "2a6e");
  });

  it("reports a value its format cannot decode as a Catch-able error naming the problem, and goes on with the next", async () => {
    // The temperature sensor's notifications: one byte short, then a good one.
    const scenario = device([
      { uuid: "181a", characteristics: [{ uuid: "2a6e", properties: ["notify"], notify: { intervalMs: 200, values: [{ hex: "98" }, { hex: "9808" }] } }] },
      { uuid: "aaa0", characteristics: [{ uuid: "aaa1", properties: ["read"], value: { hex: "010203" } }] },
    ]);
    await loadFlow(
      [bleConfigNode, bleGattInNode],
      [
        simConfig(scenario),
        gattIn("temp", { service: "181a", characteristic: "2a6e", format: "sig" }),
        sink("temp-out"),
        gattIn("wide", { service: "aaa0", characteristic: "aaa1", format: "uint16le", mode: "read", interval: 0 }),
        sink("wide-out"),
        ...catcher(["temp", "wide"]),
        tab,
      ],
    );
    const caught = caughtFrom("temp");
    const [good] = (await collectMessages(helper.getNode("temp-out"), 1)) as GattMsg[];
    assert.equal(good.payload, 22);
    const short = await caught;
    assert.match(short.error.message, /2a6e/);
    assert.match(short.error.message, /short/);
    assert.deepEqual(Buffer.from(short.payload as Buffer), Buffer.from([0x98]));

    const wrongWidth = caughtFrom("wide");
    helper.getNode("wide").receive({ payload: "go" } as NodeMessage);
    const wide = await wrongWidth;
    assert.match(wide.error.message, /uint16le needs a value of 2 bytes, got 3/);
  });

  it("splits a stream at a delimiter across notification boundaries (Nordic UART TX)", async () => {
    const scenario = device([
      {
        uuid: NUS_SERVICE,
        characteristics: [{ uuid: NUS_TX, properties: ["notify"], notify: { intervalMs: 1000, values: [{ text: "hel" }, { text: "lo\nwor" }, { text: "ld\r\n" }] } }],
      },
    ]);
    await loadFlow(
      [bleConfigNode, bleGattInNode],
      [
        simConfig(scenario),
        gattIn("lines", { service: NUS_SERVICE.replace(/-/g, "").toUpperCase(), characteristic: NUS_TX, format: "utf8", split: "delimiter", delimiter: "\\n" }),
        sink("lines-out"),
        gattIn("kept", { service: NUS_SERVICE, characteristic: NUS_TX, format: "hex", split: "delimiter", delimiter: "0x0d0a", keepDelimiter: true }),
        sink("kept-out"),
        tab,
      ],
    );
    const [lines, kept] = await Promise.all([collectMessages(helper.getNode("lines-out"), 3), collectMessages(helper.getNode("kept-out"), 2)]);
    assert.deepEqual(
      lines.map((m) => m.payload),
      ["hello", "world\r", "hello"],
    );
    assert.equal((lines[0] as GattMsg).characteristic, NUS_TX, "a 128-bit UUID in its lowercase dashed form");
    assert.deepEqual(
      kept.map((m) => m.payload),
      [Buffer.from("hello\nworld\r\n").toString("hex"), Buffer.from("hello\nworld\r\n").toString("hex")],
    );
  });

  it("sends what arrived once the stream has been quiet for quietMs", async () => {
    // One value every 2 s of simulated time (0.2 s here): each is alone when the 30 ms of quiet have passed.
    const scenario = device([{ uuid: "aaa0", characteristics: [{ uuid: "aaa1", properties: ["notify"], notify: { intervalMs: 2000, values: [{ text: "ab" }, { text: "cd" }] } }] }]);
    await loadFlow([bleConfigNode, bleGattInNode], [simConfig(scenario), gattIn("q", { service: "aaa0", characteristic: "aaa1", format: "utf8", split: "quiet", quietMs: 30 }), sink("q-out"), tab]);
    const msgs = await collectMessages(helper.getNode("q-out"), 2);
    assert.deepEqual(
      msgs.map((m) => m.payload),
      ["ab", "cd"],
    );
  });

  it("reads every interval, and with interval 0 on each message, sending the value on that message", async () => {
    const scenario = device([{ uuid: "aaa0", characteristics: [{ uuid: "aaa1", properties: ["read"], value: { text: "42" } }] }]);
    await loadFlow(
      [bleConfigNode, bleGattInNode],
      [
        simConfig(scenario),
        gattIn("poll", { service: "aaa0", characteristic: "aaa1", format: "utf8", mode: "read", interval: 50 }),
        sink("poll-out"),
        gattIn("onmsg", { service: "aaa0", characteristic: "aaa1", format: "utf8", mode: "read", interval: 0, topic: "" }),
        sink("onmsg-out"),
        tab,
      ],
    );
    const polled = (await collectMessages(helper.getNode("poll-out"), 3)) as GattMsg[];
    assert.deepEqual(
      polled.map((m) => [m.payload, m.topic]),
      [
        ["42", "t"],
        ["42", "t"],
        ["42", "t"],
      ],
    );
    const reply = (await ask("onmsg", { payload: "trigger", topic: "mine", extra: 7 })) as GattMsg & { extra: number };
    assert.equal(reply.payload, "42");
    assert.equal(reply.extra, 7, "the message that asked keeps its other properties");
    assert.equal(reply.topic, "mine", "no topic configured: the message keeps its own");
    assert.deepEqual(reply.peripheral, { address: DEVICE, name: "Test Device" });
  });

  it("names a missing characteristic, and one lacking the property the mode needs", async () => {
    const scenario = device([{ uuid: "aaa0", characteristics: [{ uuid: "aaa1", properties: ["read"], value: { hex: "01" } }, { uuid: "aaa2", properties: ["notify"] }] }]);
    await loadFlow(
      [bleConfigNode, bleGattInNode],
      [
        simConfig(scenario),
        gattIn("nonotify", { service: "aaa0", characteristic: "aaa1" }),
        sink("nonotify-out"),
        gattIn("noread", { service: "aaa0", characteristic: "aaa2", mode: "read", interval: 0 }),
        sink("noread-out"),
        gattIn("missing", { service: "aaa0", characteristic: "aaa9", mode: "read", interval: 0 }),
        sink("missing-out"),
        ...catcher(["nonotify", "noread", "missing"]),
        tab,
      ],
    );
    // Found when the link comes up, with no message to blame: a Catch node gets it on a message of the node's own.
    const unusable = await caughtFrom("nonotify");
    assert.match(unusable.error.message, /characteristic aaa1 of service aaa0 allows neither notify nor indicate/);
    assert.equal(unusable.characteristic, "aaa1");
    const status = await waitForStatus(helper.getNode("nonotify"), (s) => s.fill === "red");
    assert.match(String(status.text), /characteristic aaa1 of service aaa0 allows neither notify nor indicate/);

    const caught = collectMessages(helper.getNode("caught"), 2);
    helper.getNode("noread").receive({ payload: 1 } as NodeMessage);
    helper.getNode("missing").receive({ payload: 2 } as NodeMessage);
    const errors = ((await caught) as CaughtMsg[]).sort((a, b) => Number(a.payload) - Number(b.payload)).map((m) => m.error.message);
    assert.match(errors[0], /characteristic aaa2 of service aaa0 does not allow read/);
    assert.match(errors[1], /characteristic aaa9 of service aaa0 not found on c0:ff:ee:00:00:71/);
  });

  it("a read that fails at every interval is a Catch-able error once (not on every tick), and shown on the status", async () => {
    const scenario = device([{ uuid: "aaa0", characteristics: [{ uuid: "aaa2", properties: ["notify"] }] }]);
    await loadFlow(
      [bleConfigNode, bleGattInNode],
      [simConfig(scenario), gattIn("poll", { service: "aaa0", characteristic: "aaa2", mode: "read", interval: 20, topic: "t" }), sink("poll-out"), ...catcher(["poll"]), tab],
    );
    // No input message caused it: the catch node gets a message of the node's own, naming what it reads.
    const caught = await caughtFrom("poll");
    assert.match(caught.error.message, /aaa2 of service aaa0 does not allow read/);
    assert.equal(caught.topic, "t");
    assert.equal(caught.service, "aaa0");
    assert.equal(caught.characteristic, "aaa2");
    const node = helper.getNode("poll");
    // Three failed ticks, each setting the status.
    const failing = (s: { fill?: string; text?: unknown }): boolean => s.fill === "yellow" && /aaa2 of service aaa0 does not allow read/.test(String(s.text));
    await new Promise<void>((resolve) => {
      let seen = 0;
      const onStatus = (call: { args: { fill?: string; text?: unknown }[] }): void => {
        if (failing(call.args[0]) && ++seen === 3) {
          (node as unknown as EventEmitter).off("call:status", onStatus);
          resolve();
        }
      };
      (node as unknown as EventEmitter).on("call:status", onStatus);
    });
    assert.deepEqual(errorsOf(node), ["characteristic aaa2 of service aaa0 does not allow read: use mode notify"]);
  });

  it("refuses a sig format for a characteristic without a SIG decoder, naming the property", async () => {
    const scenario = device([{ uuid: "aaa0", characteristics: [{ uuid: "aaa1", properties: ["read"] }] }]);
    await loadFlow([bleConfigNode, bleGattInNode], [simConfig(scenario), gattIn("bad", { service: "aaa0", characteristic: "aaa1", format: "sig" }), sink("bad-out"), tab]);
    assert.deepEqual(currentStatus(helper.getNode("bad")), { fill: "red", shape: "ring", text: "invalid configuration" });
    assert.match(errorsOf(helper.getNode("bad"))[0], /^format "sig" has no decoder for characteristic aaa1/);
  });

  it("settings of another mode or policy, hidden in the dialog, do not make a notify node invalid", async () => {
    const scenario = device([{ uuid: "180f", characteristics: [{ uuid: "2a19", properties: ["read", "notify"], value: { hex: "50" }, notify: { intervalMs: 100, values: [{ hex: "51" }] } }] }]);
    await loadFlow(
      [bleConfigNode, bleGattInNode],
      [simConfig(scenario), gattIn("bat", { service: "180f", characteristic: "2a19", format: "uint8", mode: "notify", interval: "-1", split: "none", quietMs: "0", connection: "keep", idleSeconds: "0" }), sink("bat-out"), tab],
    );
    const [msg] = await collectMessages(helper.getNode("bat-out"), 1);
    assert.equal(msg.payload, 0x51);
    assert.deepEqual(errorsOf(helper.getNode("bat")), []);
  });

  it("a split left from notify mode, hidden in the dialog, does not make a read node invalid", async () => {
    const scenario = device([{ uuid: "180f", characteristics: [{ uuid: "2a19", properties: ["read"], value: { hex: "50" } }] }]);
    await loadFlow(
      [bleConfigNode, bleGattInNode],
      [simConfig(scenario), gattIn("bat", { service: "180f", characteristic: "2a19", format: "uint8", mode: "read", interval: 0, split: "delimiter", delimiter: "\\q" }), sink("bat-out"), tab],
    );
    assert.equal((await ask("bat")).payload, 0x50);
    assert.deepEqual(errorsOf(helper.getNode("bat")), []);
  });

  it("connection idle: connects for a read, disconnects after idleSeconds, and connects again on the next message", async () => {
    const scenario = device([{ uuid: "180f", characteristics: [{ uuid: "2a19", properties: ["read"], value: { hex: "50" } }] }]);
    await loadFlow(
      [bleConfigNode, bleGattInNode],
      [simConfig(scenario), gattIn("bat", { service: "180f", characteristic: "2a19", format: "sig", mode: "read", interval: 0, connection: "idle", idleSeconds: 1 }), sink("bat-out"), tab],
    );
    const node = helper.getNode("bat");
    await waitForStatus(node, (s) => s.fill === "grey");
    assert.equal(controller().connectionCount, 0, "no link before the first message");
    assert.equal((await ask("bat")).payload, 80);
    await waitForStatus(node, (s) => s.fill === "grey" && s.text === "idle (connects when used)", 10000);
    await linksDown();
    assert.equal((await ask("bat")).payload, 80, "the next message connects again");
  });

  it("connection idle in notify mode: a message brings the link up, values flow, and the link goes after idleSeconds", async () => {
    const scenario = device([{ uuid: "180f", characteristics: [{ uuid: "2a19", properties: ["notify"], notify: { intervalMs: 1000, values: [{ hex: "42" }] } }] }]);
    await loadFlow(
      [bleConfigNode, bleGattInNode],
      [simConfig(scenario), gattIn("bat", { service: "180f", characteristic: "2a19", format: "sig", connection: "idle", idleSeconds: 1 }), sink("bat-out"), tab],
    );
    const node = helper.getNode("bat");
    await waitForStatus(node, (s) => s.fill === "grey");
    assert.equal(controller().connectionCount, 0, "no link before a message");
    const values = collectMessages(helper.getNode("bat-out"), 1);
    node.receive({ payload: "wake" } as NodeMessage);
    assert.equal((await values)[0].payload, 66);
    await waitForStatus(node, (s) => s.fill === "grey" && s.text === "idle (connects when used)");
    await linksDown();
  });

  it("msg.disconnect drops the shared link once: both nodes see it come back, on one link", async () => {
    const scenario = device([{ uuid: "180f", characteristics: [{ uuid: "2a19", properties: ["read", "notify"], value: { hex: "64" }, notify: { intervalMs: 200, values: [{ hex: "63" }] } }] }]);
    await loadFlow(
      [bleConfigNode, bleGattInNode],
      [
        simConfig(scenario),
        gattIn("a", { service: "180f", characteristic: "2a19", format: "sig" }),
        sink("a-out"),
        gattIn("b", { address: "", deviceName: "Test Device", service: "180f", characteristic: "2a19", format: "sig", mode: "read", interval: 0 }),
        sink("b-out"),
        { id: "done", z: "flow", type: "complete", scope: ["b"], uncaught: false, wires: [["completed"]] },
        sink("completed"),
        tab,
      ],
    );
    const a = helper.getNode("a");
    const b = helper.getNode("b");
    await Promise.all([waitForStatus(a, isConnected), waitForStatus(b, isConnected)]);
    assert.equal(controller().connectionCount, 1, "one link for both nodes");

    const completed = collectMessages(helper.getNode("completed"), 1);
    const dropped = waitForStatus(a, (s) => !isConnected(s));
    b.receive({ payload: "x", disconnect: true } as NodeMessage);
    await completed;
    await dropped;
    await waitForStatus(a, isConnected);
    const [after] = await collectMessages(helper.getNode("a-out"), 1);
    assert.equal(after.payload, 99, "notifications flow again after the reconnect");
    assert.equal(controller().connectionCount, 1, "still one link");
  });
});
