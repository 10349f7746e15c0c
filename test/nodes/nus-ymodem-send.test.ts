/**
 * The nus-ymodem-send node in a real Node-RED runtime, uploading through noble to the simulator's YMODEM receiver
 * (kind "nus-ymodem-receiver"), which keeps what it received.
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import type { Node, NodeMessage } from "node-red";
import bleConfigNode = require("../../src/ble-config");
import nusYmodemReceiveNode = require("../../src/nus-ymodem-receive");
import nusYmodemSendNode = require("../../src/nus-ymodem-send");
import type { BleConfigNode } from "../../src/red/ble-config-node";
import { generateFileContent } from "../../src/sim/peripherals/nus-ymodem";
import type { NusYmodemReceiverPeripheral } from "../../src/sim/peripherals/nus-ymodem-receiver";
import { collectMessages, helper, loadFlow, waitForStatus, type FlowNode, useNodeRed } from "../support/red";

const NUS = "e3:c3:5c:00:00:01";

interface SentMsg extends NodeMessage {
  payload: Buffer | string;
  filename: string;
  stats: { bytes: number; durationMs: number; kbps: number; blocks: number; retransmissions: number; mtu: number; blockSize: 128 | 1024; crc: "arc" | "xmodem" };
  topic?: string;
  trigger?: number;
}

interface CaughtMsg extends NodeMessage {
  error: { message: string };
  trigger?: number;
}

const tempDirs: string[] = [];

function writeScenario(scenario: unknown): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ble-nus-send-scenario-"));
  tempDirs.push(dir);
  const file = path.join(dir, "scenario.json");
  fs.writeFileSync(file, JSON.stringify(scenario));
  return file;
}

const z = "f1";
const on = { z, x: 100, y: 100 };

/** The config node, the send node, an output helper, and catch and complete nodes feeding helpers, on one tab. */
function flow(receiver: Record<string, unknown>, node: Record<string, unknown>): FlowNode[] {
  return [
    { id: z, type: "tab" },
    {
      id: "cfg",
      type: "ble-config",
      transport: "simulator",
      simScenario: writeScenario({ peripherals: [{ kind: "nus-ymodem-receiver", address: NUS, ...receiver }] }),
      simTimeScale: 10,
      reconnectDelay: 100,
    },
    { id: "up", ...on, type: "nus-ymodem-send", ble: "cfg", address: NUS, deviceName: "", blockTimeout: 1000, retries: 5, topic: "uploads", wires: [["out"]], ...node },
    { id: "out", ...on, type: "helper" },
    { id: "catch", ...on, type: "catch", scope: ["up"], uncaught: false, wires: [["caught"]] },
    { id: "caught", ...on, type: "helper" },
  ];
}

async function load(receiver: Record<string, unknown> = {}, node: Record<string, unknown> = {}): Promise<void> {
  await loadFlow([bleConfigNode, nusYmodemSendNode], flow(receiver, node));
}

function receiver(): NusYmodemReceiverPeripheral {
  const cfg = helper.getNode("cfg") as BleConfigNode;
  const p = cfg.adapter?.simulation?.controller.peripheral(NUS);
  assert.ok(p, "the simulated receiver");
  return p as unknown as NusYmodemReceiverPeripheral;
}

const up = (): Node => helper.getNode("up");
const send = (msg: Record<string, unknown>): void => up().receive(msg as NodeMessage);
const content = (n: number, seed: number): Buffer => Buffer.from(Array.from({ length: n }, (_, i) => (i * 131 + seed * 7 + (i >> 8)) & 0xff));

/** Fails the test if the catch node reports anything. */
function noErrors(): () => void {
  const errors: string[] = [];
  const onInput = (msg: NodeMessage): void => {
    errors.push((msg as CaughtMsg).error.message);
  };
  const caught = helper.getNode("caught");
  caught.on("input", onInput);
  return () => {
    caught.removeListener("input", onInput);
    assert.deepEqual(errors, [], "no error was reported");
  };
}

/** Sends one message and returns the single error the catch node reports (nothing is output). */
async function failure(msg: Record<string, unknown>): Promise<string> {
  let outputs = 0;
  helper.getNode("out").on("input", () => outputs++);
  const caught = collectMessages(helper.getNode("caught"), 1, 30000);
  send({ trigger: 9, ...msg });
  const [err] = (await caught) as CaughtMsg[];
  assert.equal(err.trigger, 9, "the error carries the input message");
  assert.equal(outputs, 0, "no output message");
  // A Catch node's msg.error.message is "<name>: <message>", as Node-RED writes an error.
  assert.match(err.error.message, /^Error: /);
  return err.error.message.slice("Error: ".length);
}

describe("nus-ymodem-send node (Node-RED runtime + simulated YMODEM receiver through noble)", function () {
  this.timeout(60000);

  useNodeRed();
  after(() => {
    for (const dir of tempDirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
  });

  const cases = [
    { dialect: "standard", start: "C", blockSize: 1024, size: 100_001, crc: "xmodem" },
    { dialect: "standard", start: "G", blockSize: 128, size: 5_000, crc: "xmodem" },
    { dialect: "seed", start: "C", blockSize: 128, size: 3_001, crc: "arc" },
    { dialect: "seed", start: "G", blockSize: 1024, size: 70_000, crc: "arc" },
  ] as const;
  for (const c of cases) {
    it(`delivers a file byte-exact: ${c.dialect} dialect, ${c.start}, ${c.blockSize}-byte blocks, ${c.size} bytes (a multiple of neither)`, async () => {
      await load({ dialect: c.dialect, start: c.start }, { dialect: c.dialect, blockSize: String(c.blockSize) });
      const check = noErrors();
      const data = content(c.size, c.size);
      const out = collectMessages(helper.getNode("out"), 1, 30000);
      send({ payload: data, filename: "/srv/files/firmware.bin", trigger: 1 });
      const [msg] = (await out) as SentMsg[];
      const rx = receiver();
      assert.equal(rx.received.length, 1);
      assert.equal(rx.received[0].name, "firmware.bin", "the last path component is announced");
      assert.ok(rx.received[0].data.equals(data), "the device has exactly the file");
      assert.equal(rx.lastTransfer?.outcome, "completed");
      assert.equal(msg.trigger, 1, "the output is the input message");
      assert.ok(Buffer.isBuffer(msg.payload) && msg.payload.equals(data));
      assert.equal(msg.topic, "uploads");
      assert.deepEqual({ ...msg.stats, durationMs: 0, kbps: 0 }, {
        bytes: c.size,
        durationMs: 0,
        kbps: 0,
        blocks: Math.ceil(c.size / c.blockSize),
        retransmissions: 0,
        mtu: 247,
        blockSize: c.blockSize,
        crc: c.crc,
      });
      assert.ok(msg.stats.durationMs > 0 && msg.stats.kbps > 0);
      await waitForStatus(up(), (s) => s.fill === "green" && new RegExp(`^firmware\\.bin: ${c.size} B, [\\d.]+ kbps$`).test(String(s.text)), 5000);
      check();
    });
  }

  it("sends a string payload as UTF-8", async () => {
    await load();
    const check = noErrors();
    const out = collectMessages(helper.getNode("out"), 1, 30000);
    send({ payload: "print('héllo')\n", filename: "main.py" });
    await out;
    assert.ok(receiver().received[0].data.equals(Buffer.from("print('héllo')\n", "utf8")));
    check();
  });

  it("resends blocks the receiver NAKs (block 0 and data blocks corrupted on the way): bytes exact, retransmissions counted", async () => {
    await load({ corruptBlocks: [0, 2, 5] });
    const check = noErrors();
    const data = content(9_000, 3);
    const out = collectMessages(helper.getNode("out"), 1, 30000);
    send({ payload: data, filename: "a.bin" });
    const [msg] = (await out) as SentMsg[];
    assert.ok(receiver().received[0].data.equals(data));
    // Each damaged block is sent again once (the end-of-batch block 0 is a block 0 too, so it is damaged as well).
    assert.equal(msg.stats.retransmissions, receiver().lastTransfer?.corrupted);
    assert.ok(msg.stats.retransmissions >= 3);
    check();
  });

  it("a receiver that cancels (CAN CAN) is a Catch-able error saying so, with the bytes it acknowledged", async () => {
    // The receiver refuses a file larger than its maxBytes with CAN CAN after block 0.
    await load({ maxBytes: 1000 });
    const message = await failure({ payload: content(5_000, 4), filename: "big.bin" });
    assert.equal(message, `${NUS}: the receiver cancelled the transfer (CAN CAN) (0 of 5000 bytes acknowledged)`);
    await waitForStatus(up(), (s) => s.fill === "red" && /^failed: /.test(String(s.text)), 5000);
    assert.deepEqual(receiver().received, []);
  });

  it("refuses a missing, non-string or unprintable msg.filename, and a payload that is not bytes, with clear errors that never echo the name", async () => {
    await load();
    assert.equal(await failure({ payload: Buffer.from("x") }), "msg.filename is required: the name to announce in block 0");
    assert.equal(await failure({ payload: Buffer.from("x"), filename: 42 }), "msg.filename must be a string, got number");
    assert.equal(await failure({ payload: Buffer.from("x"), filename: "secret\u0007name" }), "msg.filename contains control or invisible formatting characters");
    assert.equal(await failure({ payload: Buffer.from("x"), filename: "dir/.." }), 'msg.filename has no file name in it (empty, "." or ".." after its last /)');
    assert.equal(await failure({ payload: Buffer.from("x"), filename: "n".repeat(201) }), "msg.filename is 201 bytes; at most 200");
    assert.equal(await failure({ payload: { a: 1 }, filename: "a.json" }), "msg.payload must be a Buffer or a string, got object");
    assert.equal(receiver().lastTransfer, null, "nothing reached the device");
  });

  it("an invalid setting is a red ring, and every message is refused saying which setting and what is allowed", async () => {
    await load({}, { dialect: "kermit", blockSize: "512" });
    await waitForStatus(up(), (s) => s.fill === "red" && s.shape === "ring", 5000);
    assert.equal(await failure({ payload: Buffer.from("x"), filename: "a.txt" }), 'blockSize must be one of "1024", "128"');
  });

  it("refuses a name that does not fit the seed's block 0 with the file's size", async () => {
    await load({ dialect: "seed" }, { dialect: "seed" });
    assert.equal(await failure({ payload: content(100_000, 5), filename: "n".repeat(122) }), "msg.filename is 122 bytes; the seed's block 0 holds at most 121 with this file's size");
  });

  it("queues a second message during an upload: two files, in order, two outputs", async () => {
    await load();
    const check = noErrors();
    const a = content(40_000, 6);
    const b = content(777, 7);
    const out = collectMessages(helper.getNode("out"), 2, 30000);
    send({ payload: a, filename: "a.bin", trigger: 1 });
    send({ payload: b, filename: "b.bin", trigger: 2 });
    const msgs = (await out) as SentMsg[];
    assert.deepEqual(
      msgs.map((m) => m.trigger),
      [1, 2],
    );
    const rx = receiver();
    assert.deepEqual(
      rx.received.map((f) => f.name),
      ["a.bin", "b.bin"],
    );
    assert.ok(rx.received[0].data.equals(a) && rx.received[1].data.equals(b));
    check();
  });

  it("a device powered off mid-transfer is a Catch-able error with the bytes it had acknowledged", async () => {
    await load({}, { mtu: 23 });
    const progress = waitForStatus(up(), (s) => Number(/(\d+)%/.exec(String(s.text))?.[1] ?? 0) >= 5, 30000);
    const caught = collectMessages(helper.getNode("caught"), 1, 30000);
    send({ payload: content(400_000, 10), filename: "big.bin", trigger: 4 });
    await progress;
    const cfg = helper.getNode("cfg") as BleConfigNode;
    cfg.adapter?.simulation?.controller.powerOff(NUS);
    const [err] = (await caught) as CaughtMsg[];
    assert.equal(err.trigger, 4);
    const m = /^Error: e3:c3:5c:00:00:01: disconnected during the transfer \((\d+) of 400000 bytes acknowledged\)$/.exec(err.error.message);
    assert.ok(m, err.error.message);
    assert.ok(Number(m[1]) >= 20_000 && Number(m[1]) < 400_000, "the bytes acknowledged so far");
    await waitForStatus(up(), (s) => s.fill === "red" && /^failed: /.test(String(s.text)), 5000);
  });

  it("stopping the flow mid-transfer sends CAN CAN: the receiver sees the sender cancel", async () => {
    await load({}, { mtu: 23 });
    const progress = waitForStatus(up(), (s) => Number(/(\d+)%/.exec(String(s.text))?.[1] ?? 0) >= 5, 30000);
    send({ payload: content(400_000, 8), filename: "big.bin" });
    await progress;
    const rx = receiver();
    const ended = once(rx.events, "transfer");
    await helper.unload();
    const [transfer] = (await ended) as [{ outcome: string; code: string | null; reason: string | null }];
    assert.equal(transfer.outcome, "cancelled");
    assert.equal(transfer.code, "cancelled-by-sender");
    assert.deepEqual(rx.received, []);
  });

  it("takes turns with downloads: an upload that may land on any device waits for a running download, then runs", async () => {
    const SENDER = "e3:c3:5c:00:00:09";
    const nodes = flow({ name: "mpy-loader" }, { address: "", deviceName: "mpy-loader" });
    const cfg = nodes.find((n) => n.id === "cfg");
    assert.ok(cfg);
    const scenario = { peripherals: [{ kind: "nus-ymodem-receiver", address: NUS, name: "mpy-loader" }, { kind: "nus-ymodem", address: SENDER, sizeBytes: 200_000, seed: 3, filename: "log.bin" }] };
    cfg.simScenario = writeScenario(scenario);
    nodes.push(
      { id: "dl", ...on, type: "nus-ymodem-receive", ble: "cfg", address: SENDER, deviceName: "", mtu: 23, blockTimeout: 1000, wires: [["downloaded"]] },
      { id: "downloaded", ...on, type: "helper" },
    );
    await loadFlow([bleConfigNode, nusYmodemReceiveNode, nusYmodemSendNode], nodes);
    const check = noErrors();
    const order: string[] = [];
    const downloaded = collectMessages(helper.getNode("downloaded"), 1, 30000).then((m) => (order.push("download"), m));
    const uploaded = collectMessages(helper.getNode("out"), 1, 30000).then((m) => (order.push("upload"), m));
    const progress = waitForStatus(helper.getNode("dl"), (s) => /\d+%/.test(String(s.text)), 30000);
    helper.getNode("dl").receive({ payload: true } as NodeMessage);
    await progress;
    // The upload names no address (it selects by name): it may land on the device being downloaded from, so it waits.
    const waiting = waitForStatus(up(), (s) => s.fill === "yellow" && s.text === "waiting: another transfer with this device is running", 5000);
    const data = content(3_000, 9);
    send({ payload: data, filename: "cfg.txt" });
    await waiting;
    const [file] = (await downloaded) as (NodeMessage & { payload: Buffer })[];
    await uploaded;
    assert.deepEqual(order, ["download", "upload"]);
    assert.ok(file.payload.equals(generateFileContent(200_000, 3)));
    assert.ok(receiver().received[0].data.equals(data));
    check();
  });
});
