/**
 * ble-gatt-out in a real Node-RED runtime, against scenario-defined devices of the simulator (kind "gatt") through
 * noble. What a write did is read back through a ble-gatt-in node on the same characteristic (the device stores
 * writes), after the write's done() (a complete node): formats, long writes, refused values, missing
 * characteristics and properties, a NUS echo, the idle policy and msg.disconnect.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import type { NodeMessage } from "node-red";
import bleConfigNode = require("../../src/ble-config");
import bleGattInNode = require("../../src/ble-gatt-in");
import bleGattOutNode = require("../../src/ble-gatt-out");
import type { BleConfigNode } from "../../src/red/ble-config-node";
import { collectMessages, helper, isConnected, loadFlow, waitForStatus, type FlowNode, useNodeRed } from "../support/red";

const DEVICE = "c0:ff:ee:00:00:72";
const NUS_SERVICE = "6e400001-b5a3-f393-e0a9-e50e24dcca9e";
const NUS_RX = "6e400002-b5a3-f393-e0a9-e50e24dcca9e";
const NUS_TX = "6e400003-b5a3-f393-e0a9-e50e24dcca9e";

interface CaughtMsg extends NodeMessage {
  error: { message: string };
}

function scenario(services: unknown[]): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ble-gatt-out-"));
  const file = path.join(dir, "scenario.json");
  fs.writeFileSync(file, JSON.stringify({ peripherals: [{ kind: "gatt", address: DEVICE, name: "Writable", services }] }));
  return file;
}

/** Service aaa0: aaa1 stores what is written (with or without response), aaa2 only without response, aaa3 read-only. */
const TABLE = [
  {
    uuid: "aaa0",
    characteristics: [
      { uuid: "aaa1", properties: ["read", "write", "writeWithoutResponse"], value: { hex: "00" } },
      { uuid: "aaa2", properties: ["read", "writeWithoutResponse"], value: { hex: "00" } },
      { uuid: "aaa3", properties: ["read"], value: { hex: "00" } },
    ],
  },
  {
    uuid: NUS_SERVICE,
    characteristics: [
      { uuid: NUS_RX, properties: ["write", "writeWithoutResponse"], onWrite: { echoTo: NUS_TX } },
      { uuid: NUS_TX, properties: ["notify"] },
    ],
  },
];

const tab: FlowNode = { id: "flow", type: "tab", label: "test" };

/**
 * The config node; a ble-gatt-out "w" with `extra`; a complete node on it that triggers a ble-gatt-in "r" reading
 * the same characteristic as hex into helper "read" (with `readerExtra`); a catch node on both into helper "caught".
 */
function writeThenRead(extra: Record<string, unknown>, readerExtra: Record<string, unknown> = {}): FlowNode[] {
  const characteristic = extra.characteristic ?? "aaa1";
  return [
    { id: "cfg", type: "ble-config", transport: "simulator", simScenario: scenario(TABLE), simTimeScale: 10 },
    { id: "w", z: "flow", type: "ble-gatt-out", ble: "cfg", address: DEVICE, service: "aaa0", characteristic, ...extra },
    { id: "done", z: "flow", type: "complete", scope: ["w"], uncaught: false, wires: [["r"]] },
    { id: "r", z: "flow", type: "ble-gatt-in", ble: "cfg", address: DEVICE, service: extra.service ?? "aaa0", characteristic, mode: "read", interval: 0, format: "hex", wires: [["read"]], ...readerExtra },
    { id: "read", z: "flow", type: "helper" },
    { id: "catcher", z: "flow", type: "catch", scope: ["w", "r"], uncaught: false, wires: [["caught"]] },
    { id: "caught", z: "flow", type: "helper" },
    tab,
  ];
}

/** Writes `payload` through "w" and resolves with what "r" reads back after the write is done (hex). */
async function writeAndReadBack(payload: unknown): Promise<string> {
  const read = collectMessages(helper.getNode("read"), 1);
  helper.getNode("w").receive({ payload } as NodeMessage);
  const [msg] = await read;
  return msg.payload as string;
}

/** Writes `payload` through "w" and resolves with the error the catch node gets. */
async function refused(payload: unknown): Promise<string> {
  const caught = collectMessages(helper.getNode("caught"), 1);
  helper.getNode("w").receive({ payload } as NodeMessage);
  const [msg] = (await caught) as CaughtMsg[];
  return msg.error.message;
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

describe("ble-gatt-out node (Node-RED runtime + simulator gatt devices through noble)", function () {
  this.timeout(30000);

  useNodeRed();

  it("format auto writes a Buffer, a string as UTF-8 and an array of bytes, and refuses a number", async () => {
    await loadFlow([bleConfigNode, bleGattOutNode, bleGattInNode], writeThenRead({}));
    assert.equal(await writeAndReadBack(Buffer.from([1, 2, 3])), "010203");
    assert.equal(await writeAndReadBack("hé"), "68c3a9");
    assert.equal(await writeAndReadBack([255, 0, 16]), "ff0010");
    assert.match(await refused(42), /cannot write a number/);
    assert.match(await refused([1, 256]), /element 1 of the payload array/);
  });

  const numeric: [string, number, string][] = [
    ["uint8", 200, "c8"],
    ["int8", -2, "fe"],
    ["uint16le", 0x1234, "3412"],
    ["int16le", -2, "feff"],
    ["uint32le", 0x12345678, "78563412"],
    ["int32le", -2, "feffffff"],
    ["float32le", -1.5, "0000c0bf"],
    ["uint16be", 0x1234, "1234"],
    ["int16be", -2, "fffe"],
    ["uint32be", 0x12345678, "12345678"],
    ["int32be", -2, "fffffffe"],
    ["float32be", -1.5, "bfc00000"],
  ];
  it("formats utf8, hex and every numeric format write the bytes they name; out of range is refused", async () => {
    const cases: [string, unknown, string][] = [["utf8", "ok", "6f6b"], ["hex", "0A 1b", "0a1b"], ...numeric];
    for (const [format, value, hex] of cases) {
      await loadFlow([bleConfigNode, bleGattOutNode, bleGattInNode], writeThenRead({ format }));
      assert.equal(await writeAndReadBack(value), hex, format);
      await helper.unload();
    }
    await loadFlow([bleConfigNode, bleGattOutNode, bleGattInNode], writeThenRead({ format: "uint8" }));
    assert.match(await refused(256), /uint8 takes numbers from 0 to 255/);
  });

  it("writes a value longer than MTU − 3 as a long write, read back whole", async () => {
    await loadFlow([bleConfigNode, bleGattOutNode, bleGattInNode], writeThenRead({ response: "with" }));
    const long = Buffer.from(Array.from({ length: 500 }, (_, i) => i % 251));
    assert.equal(await writeAndReadBack(long), long.toString("hex"));
  });

  it("refuses a value too long for a write without response, writing nothing", async () => {
    await loadFlow([bleConfigNode, bleGattOutNode, bleGattInNode], writeThenRead({ characteristic: "aaa2" }));
    // Longer than the link takes in one write (MTU − 3), shorter than an attribute holds (512).
    assert.match(await refused(Buffer.alloc(300, 7)), /300 bytes is too long for aaa2 without response \(at most \d+ on this link\)/);
    assert.equal(await writeAndReadBack(Buffer.from([9])), "09", "the next short value is written, nothing of the long one");
  });

  it("refuses a value longer than an attribute holds (512 bytes) with response, naming that limit", async () => {
    await loadFlow([bleConfigNode, bleGattOutNode, bleGattInNode], writeThenRead({ response: "with" }));
    const message = await refused(Buffer.alloc(600, 7));
    assert.match(message, /600 bytes is too long for aaa1/);
    assert.match(message, /at most 512/);
    assert.doesNotMatch(message, /without response/, "the write asked for was with response");
    assert.equal(await writeAndReadBack(Buffer.from([9])), "09", "nothing of the long value was written");
  });

  it("refuses a value no write can carry at once, without waiting for a device that is not there", async () => {
    await loadFlow(
      [bleConfigNode, bleGattOutNode],
      [
        { id: "cfg", type: "ble-config", transport: "simulator", simScenario: scenario(TABLE), simTimeScale: 10 },
        { id: "w", z: "flow", type: "ble-gatt-out", ble: "cfg", address: "c0:ff:ee:00:00:99", service: "aaa0", characteristic: "aaa1" },
        { id: "catcher", z: "flow", type: "catch", scope: ["w"], uncaught: false, wires: [["caught"]] },
        { id: "caught", z: "flow", type: "helper" },
        tab,
      ],
    );
    assert.match(await refused(Buffer.alloc(513)), /513 bytes is too long for aaa1.*at most 512/);
    assert.match(await refused("0a".repeat(1000)), /2000 bytes is too long for aaa1.*at most 512/, "a string: its UTF-8 bytes");
  });

  it("names a missing characteristic, and one that does not allow the write asked for", async () => {
    await loadFlow([bleConfigNode, bleGattOutNode, bleGattInNode], writeThenRead({ characteristic: "aaa3" }));
    assert.match(await refused(Buffer.from([1])), /characteristic aaa3 does not allow write/);
    await helper.unload();
    await loadFlow([bleConfigNode, bleGattOutNode, bleGattInNode], writeThenRead({ characteristic: "aaa9" }));
    assert.match(await refused(Buffer.from([1])), /characteristic aaa9 of service aaa0 not found on c0:ff:ee:00:00:72/);
    await helper.unload();
    await loadFlow([bleConfigNode, bleGattOutNode, bleGattInNode], writeThenRead({ characteristic: "aaa2", response: "with" }));
    assert.match(await refused(Buffer.from([1])), /characteristic aaa2 does not allow/);
  });

  it("Nordic UART: a line written to RX comes back split from TX, both nodes on one link", async () => {
    await loadFlow(
      [bleConfigNode, bleGattOutNode, bleGattInNode],
      [
        { id: "cfg", type: "ble-config", transport: "simulator", simScenario: scenario(TABLE), simTimeScale: 10 },
        { id: "w", z: "flow", type: "ble-gatt-out", ble: "cfg", address: DEVICE, service: NUS_SERVICE, characteristic: NUS_RX },
        { id: "r", z: "flow", type: "ble-gatt-in", ble: "cfg", address: DEVICE, service: NUS_SERVICE, characteristic: NUS_TX, format: "utf8", split: "delimiter", delimiter: "\\n", wires: [["lines"]] },
        { id: "lines", z: "flow", type: "helper" },
        tab,
      ],
    );
    await Promise.all([waitForStatus(helper.getNode("w"), isConnected), waitForStatus(helper.getNode("r"), isConnected)]);
    const lines = collectMessages(helper.getNode("lines"), 2);
    helper.getNode("w").receive({ payload: "print(1)\nprint(2)\n" } as NodeMessage);
    assert.deepEqual(
      (await lines).map((m) => m.payload),
      ["print(1)", "print(2)"],
    );
    assert.equal(controller().connectionCount, 1, "one link for the writer and the reader");
  });

  it("a burst of messages to one characteristic: every write completes (done) once it is written, none times out", async () => {
    await loadFlow(
      [bleConfigNode, bleGattOutNode, bleGattInNode],
      [
        { id: "cfg", type: "ble-config", transport: "simulator", simScenario: scenario(TABLE), simTimeScale: 10 },
        { id: "w", z: "flow", type: "ble-gatt-out", ble: "cfg", address: DEVICE, service: "aaa0", characteristic: "aaa1" },
        { id: "done", z: "flow", type: "complete", scope: ["w"], uncaught: false, wires: [["completed"]] },
        { id: "completed", z: "flow", type: "helper" },
        { id: "catcher", z: "flow", type: "catch", scope: ["w"], uncaught: false, wires: [["caught"]] },
        { id: "caught", z: "flow", type: "helper" },
        { id: "r", z: "flow", type: "ble-gatt-in", ble: "cfg", address: DEVICE, service: "aaa0", characteristic: "aaa1", mode: "read", interval: 0, format: "hex", wires: [["read"]] },
        { id: "read", z: "flow", type: "helper" },
        tab,
      ],
    );
    const w = helper.getNode("w");
    await waitForStatus(w, isConnected);
    const errors: string[] = [];
    helper.getNode("caught").on("input", (msg: NodeMessage) => errors.push((msg as CaughtMsg).error.message));
    const burst = 20;
    const completed = collectMessages(helper.getNode("completed"), burst);
    for (let i = 0; i < burst; i++) w.receive({ payload: [i] } as NodeMessage);
    assert.deepEqual(
      (await completed).map((m) => (m.payload as number[])[0]),
      Array.from({ length: burst }, (_, i) => i),
      "each message done, in order",
    );
    assert.deepEqual(errors, []);
    const read = collectMessages(helper.getNode("read"), 1);
    helper.getNode("r").receive({} as NodeMessage);
    assert.equal((await read)[0].payload, (burst - 1).toString(16).padStart(2, "0"), "the last value written is stored");
  });

  it("a burst of messages raises no listener-leak warning from Node.js", async () => {
    await loadFlow([bleConfigNode, bleGattOutNode], [
      { id: "cfg", type: "ble-config", transport: "simulator", simScenario: scenario(TABLE), simTimeScale: 10 },
      { id: "w", z: "flow", type: "ble-gatt-out", ble: "cfg", address: DEVICE, service: "aaa0", characteristic: "aaa1" },
      { id: "done", z: "flow", type: "complete", scope: ["w"], uncaught: false, wires: [["completed"]] },
      { id: "completed", z: "flow", type: "helper" },
      tab,
    ]);
    const w = helper.getNode("w");
    await waitForStatus(w, isConnected);
    const warnings: string[] = [];
    const onWarning = (warning: Error): void => {
      warnings.push(`${warning.name}: ${warning.message}`);
    };
    process.on("warning", onWarning);
    try {
      const burst = 30;
      const completed = collectMessages(helper.getNode("completed"), burst);
      for (let i = 0; i < burst; i++) w.receive({ payload: [i] } as NodeMessage);
      await completed;
      // process "warning" is emitted on a later tick than the one that raised it.
      await new Promise((resolve) => setImmediate(resolve));
    } finally {
      process.off("warning", onWarning);
    }
    assert.deepEqual(warnings.filter((x) => x.startsWith("MaxListenersExceededWarning")), []);
  });

  it("connection idle: connects for a write, lets the link go after idleSeconds, connects again for the next", async () => {
    const idle = { connection: "idle", idleSeconds: 1 };
    await loadFlow([bleConfigNode, bleGattOutNode, bleGattInNode], writeThenRead(idle, idle));
    const w = helper.getNode("w");
    await waitForStatus(w, (s) => s.fill === "grey");
    assert.equal(controller().connectionCount, 0, "no link before the first message");
    assert.equal(await writeAndReadBack("a"), "61");
    await waitForStatus(w, (s) => s.fill === "grey" && s.text === "idle (connects when used)");
    await linksDown();
    assert.equal(await writeAndReadBack("b"), "62", "the next message connects again");
  });

  it("msg.disconnect drops the link once and writes nothing; a kept link comes back", async () => {
    await loadFlow([bleConfigNode, bleGattOutNode, bleGattInNode], writeThenRead({}));
    const w = helper.getNode("w");
    await waitForStatus(w, isConnected);
    assert.equal(await writeAndReadBack("x"), "78");
    const dropped = waitForStatus(w, (s) => !isConnected(s));
    // The complete node passes the message on, disconnect and all: the reader drops the link once more (harmless)
    // and sends nothing; what matters is that the writer's done() came once the link was down.
    const reader = helper.getNode("r");
    const passedOn = new Promise<NodeMessage>((resolve) => reader.once("input", resolve));
    w.receive({ payload: "y", disconnect: true } as NodeMessage);
    await dropped;
    assert.equal((await passedOn).payload, "y");
    await waitForStatus(w, isConnected);
    const read = collectMessages(helper.getNode("read"), 1);
    reader.receive({ payload: "read" } as NodeMessage);
    assert.equal((await read)[0].payload, "78", "the disconnect message's payload was not written");
    assert.equal(controller().connectionCount, 1);
  });
});
