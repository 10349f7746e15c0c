import assert from "node:assert/strict";
import { once } from "node:events";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import type { Node, NodeMessage } from "node-red";
import bleConfigNode = require("../../src/ble-config");
import nusYmodemReceiveNode = require("../../src/nus-ymodem-receive");
import type { BleConfigNode } from "../../src/red/ble-config-node";
import { DeviceTurns } from "../../src/red/device-turns";
import { generateFileContent, type NusYmodemPeripheral } from "../../src/sim/peripherals/nus-ymodem";
import { collectMessages, helper, loadFlow, waitForStatus, type FlowNode, useNodeRed } from "../support/red";

const NUS = "e3:c3:5c:00:00:01";
const NUS2 = "e3:c3:5c:00:00:02";

interface FileMsg extends NodeMessage {
  payload: Buffer;
  filename: string;
  size: number;
  path?: string;
  stats: { bytes: number; durationMs: number; kbps: number; blocks: number; retransmissions: number; mtu: number; blockSize: 128 | 1024 | "mixed"; crc: "arc" | "xmodem" };
  peripheral: { address: string; name: string };
  topic?: string;
  trigger?: number;
}

interface CaughtMsg extends NodeMessage {
  error: { message: string };
  trigger?: number;
}

/** One node of a test flow. */

const tempDirs: string[] = [];

function tempDir(prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  tempDirs.push(dir);
  return dir;
}

/** One scenario file per test, in its own directory. */
function writeScenario(scenario: unknown): string {
  const file = path.join(tempDir("ble-nus-scenario-"), "scenario.json");
  fs.writeFileSync(file, JSON.stringify(scenario));
  return file;
}

function nusPeripheral(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { kind: "nus-ymodem", address: NUS, ...extra };
}


const z = "f1";
/** A tab and a position make flow nodes (without them Node-RED takes a node for a config node). */
const on = { z, x: 100, y: 100 };

/** The config node, the download node, an output helper, and catch and complete nodes feeding helpers, on one tab. */
function flow(scenario: unknown, node: Record<string, unknown> = {}): FlowNode[] {
  return [
    { id: z, type: "tab" },
    { id: "cfg", type: "ble-config", transport: "simulator", simScenario: writeScenario(scenario), simTimeScale: 10, reconnectDelay: 100 },
    {
      id: "dl",
      ...on,
      type: "nus-ymodem-receive",
      ble: "cfg",
      address: NUS,
      deviceName: "",
      // The simulated clock runs 10× faster: 1 s here is 10 s for the device, twice the seed's own timeout.
      blockTimeout: 1000,
      retries: 10,
      topic: "files",
      wires: [["out"]],
      ...node,
    },
    { id: "out", ...on, type: "helper" },
    { id: "catch", ...on, type: "catch", scope: ["dl"], uncaught: false, wires: [["caught"]] },
    { id: "caught", ...on, type: "helper" },
    // A complete node fires when the input handler calls done() without an error: the download has ended.
    { id: "complete", ...on, type: "complete", scope: ["dl"], uncaught: false, wires: [["completed"]] },
    { id: "completed", ...on, type: "helper" },
  ];
}

async function load(scenario: unknown, node: Record<string, unknown> = {}): Promise<void> {
  await loadFlow([bleConfigNode, nusYmodemReceiveNode], flow(scenario, node));
}

function adapter(): NonNullable<BleConfigNode["adapter"]> {
  const cfg = helper.getNode("cfg") as BleConfigNode;
  assert.ok(cfg.adapter, "config node has an adapter");
  return cfg.adapter;
}

function controller(): NonNullable<ReturnType<typeof adapter>["simulation"]>["controller"] {
  const sim = adapter().simulation;
  assert.ok(sim, "simulator transport");
  return sim.controller;
}

function device(address = NUS): NusYmodemPeripheral {
  const p = controller().peripheral(address);
  assert.ok(p, `peripheral ${address}`);
  return p as unknown as NusYmodemPeripheral;
}

const dl = (): Node => helper.getNode("dl");
const trigger = (msg: Record<string, unknown> = {}): void => {
  dl().receive({ payload: true, ...msg } as NodeMessage);
};
const files = (msgs: NodeMessage[]): FileMsg[] => msgs as FileMsg[];

function listDir(dir: string): string[] {
  return fs.readdirSync(dir).sort();
}

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

describe("nus-ymodem-receive node (Node-RED runtime + simulator through noble)", function () {
  this.timeout(60000);

  useNodeRed();
  after(() => {
    for (const dir of tempDirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
  });

  it("receives the seed-like server's file byte-exact, with stats, and saves it", async () => {
    const dir = tempDir("ble-nus-save-");
    await load({ peripherals: [nusPeripheral({ sizeBytes: 100_000, seed: 7, filename: "test.bin" })] }, { directory: dir });
    const check = noErrors();
    const received = collectMessages(helper.getNode("out"), 1, 30000);
    const completed = collectMessages(helper.getNode("completed"), 1, 30000);
    const progress = waitForStatus(dl(), (s) => /test\.bin \d+% [\d.]+ kbps/.test(String(s.text)), 30000);
    trigger({ trigger: 1 });
    await progress;
    const [msg] = files(await received);
    const expected = generateFileContent(100_000, 7);
    assert.ok(Buffer.isBuffer(msg.payload));
    assert.ok(msg.payload.equals(expected), "payload is exactly the generated file");
    assert.equal(msg.filename, "test.bin");
    assert.equal(msg.size, 100_000);
    assert.equal(msg.topic, "files");
    assert.equal(msg.trigger, 1, "the output is a copy of the input message");
    assert.deepEqual(msg.peripheral, { address: NUS, name: "mpy-nus" });
    assert.equal(msg.stats.bytes, 100_000);
    assert.equal(msg.stats.crc, "arc");
    assert.equal(msg.stats.blockSize, 1024);
    assert.equal(msg.stats.blocks, Math.ceil(100_000 / 1024));
    assert.equal(msg.stats.retransmissions, 0);
    assert.equal(msg.stats.mtu, 247);
    assert.ok(msg.stats.durationMs > 0 && msg.stats.kbps > 0);
    assert.equal(msg.path, path.join(dir, "test.bin"));
    assert.ok(fs.readFileSync(path.join(dir, "test.bin")).equals(expected), "the saved file is byte-exact");
    assert.deepEqual(listDir(dir), ["test.bin"], "no temporary file is left");
    await completed;
    await waitForStatus(dl(), (s) => s.fill === "green" && /^test\.bin: 100000 B, [\d.]+ kbps$/.test(String(s.text)), 1000);
    const p = device();
    assert.deepEqual(p.violations, []);
    assert.equal(p.transfers.length, 1);
    assert.equal(p.transfers[0].outcome, "done");
    check();
  });

  it("receives a CRC-16/XMODEM sender, and a standard-dialect batch of two files", async () => {
    await load(
      {
        peripherals: [
          nusPeripheral({ sizeBytes: 5000, seed: 1, filename: "x.bin", crc: "xmodem" }),
          nusPeripheral({ address: NUS2, dialect: "standard", files: { "a.txt": { sizeBytes: 1000, seed: 2 }, "b.dat": { sizeBytes: 4097, seed: 3 } } }),
        ],
      },
      { crc: "xmodem" },
    );
    const check = noErrors();
    const first = collectMessages(helper.getNode("out"), 1, 30000);
    trigger();
    const [x] = files(await first);
    assert.ok(x.payload.equals(generateFileContent(5000, 1)));
    assert.equal(x.stats.crc, "xmodem");
    const batch = collectMessages(helper.getNode("out"), 2, 30000);
    trigger({ address: NUS2 });
    const [a, b] = files(await batch);
    assert.equal(a.filename, "a.txt");
    assert.ok(a.payload.equals(generateFileContent(1000, 2)));
    assert.equal(b.filename, "b.dat");
    assert.ok(b.payload.equals(generateFileContent(4097, 3)));
    assert.equal(b.stats.crc, "xmodem");
    assert.equal(b.peripheral.address, NUS2);
    await waitForStatus(dl(), (s) => s.fill === "green" && /2 files/.test(String(s.text)), 20000);
    check();
  });

  it("recovers corrupted blocks: retransmissions counted, bytes exact", async () => {
    await load({ peripherals: [nusPeripheral({ sizeBytes: 20_000, seed: 5, corruptBlocks: [0, 1, 7, 19] })] });
    const check = noErrors();
    const received = collectMessages(helper.getNode("out"), 1, 30000);
    trigger();
    const [msg] = files(await received);
    assert.ok(msg.payload.equals(generateFileContent(20_000, 5)));
    assert.ok(msg.stats.retransmissions >= 3, `retransmissions ${msg.stats.retransmissions}`);
    check();
  });

  it("receives in YMODEM-g mode from a streaming sender", async () => {
    await load({ peripherals: [nusPeripheral({ sizeBytes: 200_000, seed: 9, streaming: true })] }, { mode: "G" });
    const check = noErrors();
    const received = collectMessages(helper.getNode("out"), 1, 30000);
    const completed = collectMessages(helper.getNode("completed"), 1, 30000);
    trigger();
    const [msg] = files(await received);
    assert.ok(msg.payload.equals(generateFileContent(200_000, 9)));
    assert.equal(msg.stats.retransmissions, 0);
    await completed;
    assert.equal(device().transfers[0]?.streaming, true, "the sender streamed");
    check();
  });

  it("reports a power-off mid-file as a Catch-able error with the bytes received, sends nothing and leaves no file", async () => {
    const dir = tempDir("ble-nus-poweroff-");
    await load({ peripherals: [nusPeripheral({ sizeBytes: 3_000_000, seed: 11 })] }, { directory: dir });
    const caught = collectMessages(helper.getNode("caught"), 1, 30000);
    let outputs = 0;
    helper.getNode("out").on("input", () => outputs++);
    const progress = waitForStatus(dl(), (s) => /(\d+)%/.test(String(s.text)) && Number(/(\d+)%/.exec(String(s.text))?.[1]) >= 5, 30000);
    trigger({ trigger: 7 });
    await progress;
    controller().powerOff(NUS);
    const [err] = (await caught) as CaughtMsg[];
    assert.equal(err.trigger, 7, "the error carries the input message");
    assert.match(err.error.message, /disconnected during the file/);
    const bytes = Number(/(\d+) bytes received/.exec(err.error.message)?.[1]);
    assert.ok(bytes > 0 && bytes < 3_000_000, err.error.message);
    await waitForStatus(dl(), (s) => s.fill === "red" && /failed/.test(String(s.text)), 10000);
    assert.equal(outputs, 0, "no output message");
    assert.deepEqual(listDir(dir), [], "nothing saved, no temporary file");
  });

  it("saves files with hostile names safely inside the directory", async () => {
    const dir = path.join(tempDir("ble-nus-hostile-"), "inbox");
    const names = ["../../etc/passwd", "/abs/path", "a\u0001b\nc", "..", "x".repeat(300)];
    const peripherals = names.map((name, i) =>
      nusPeripheral({
        address: `e3:c3:5c:00:01:0${i}`,
        sizeBytes: 1000 + i,
        seed: 100 + i,
        filename: name,
        // The seed's 128-byte block 0 cannot hold 300 characters; sz's standard header goes in a 1K block 0.
        ...(name.length > 100 ? { dialect: "standard" } : {}),
      }),
    );
    await load({ peripherals }, { address: "", directory: dir });
    const check = noErrors();
    const received = collectMessages(helper.getNode("out"), names.length, 60000);
    names.forEach((_, i) => trigger({ address: `e3:c3:5c:00:01:0${i}` }));
    const msgs = files(await received);
    assert.deepEqual(
      msgs.map((m) => m.filename),
      names,
      "msg.filename is the name as announced",
    );
    for (const [i, m] of msgs.entries()) {
      assert.ok(m.path, "saved");
      assert.equal(path.dirname(m.path), dir, `${JSON.stringify(m.filename)} → ${m.path}`);
      const base = path.basename(m.path);
      assert.ok(!/[/\\]/.test(base) && [...base].every((ch) => ch.charCodeAt(0) >= 0x20), `${JSON.stringify(base)} has no separator or control character`);
      assert.ok(base !== "." && base !== ".." && Buffer.byteLength(base) <= 200);
      assert.ok(fs.readFileSync(m.path).equals(generateFileContent(1000 + i, 100 + i)));
    }
    assert.deepEqual(listDir(dir), ["abs_path", "a_b_c", "download", "etc_passwd", `${"x".repeat(200)}`].sort());
    assert.deepEqual(listDir(path.dirname(dir)), ["inbox"], "nothing was written beside the directory");
    check();
  });

  it("refuses a file over maxBytes before any data is sent", async () => {
    const dir = tempDir("ble-nus-oversize-");
    await load({ peripherals: [nusPeripheral({ sizeBytes: 100_000, seed: 4, filename: "big.bin" })] }, { maxBytes: 1000, directory: dir });
    const caught = collectMessages(helper.getNode("caught"), 1, 30000);
    trigger();
    const [err] = (await caught) as CaughtMsg[];
    assert.match(err.error.message, /announced size 100000 exceeds maxBytes 1000/);
    assert.match(err.error.message, /"big\.bin", 0 bytes received/);
    await waitForStatus(dl(), (s) => s.fill === "red", 10000);
    assert.deepEqual(listDir(dir), []);
    assert.equal(device().stats.blocksSent, 0, "the sender never sent a data block");
  });

  it("never overwrites an existing file: the new one is numbered", async () => {
    const dir = tempDir("ble-nus-exists-");
    fs.writeFileSync(path.join(dir, "test.bin"), "old");
    await load({ peripherals: [nusPeripheral({ sizeBytes: 3000, seed: 6, filename: "test.bin" })] }, { directory: dir });
    const check = noErrors();
    const received = collectMessages(helper.getNode("out"), 2, 30000);
    trigger();
    trigger();
    const [one, two] = files(await received);
    assert.equal(one.path, path.join(dir, "test (1).bin"));
    assert.equal(two.path, path.join(dir, "test (2).bin"));
    assert.equal(fs.readFileSync(path.join(dir, "test.bin"), "utf8"), "old", "the existing file is untouched");
    assert.ok(fs.readFileSync(path.join(dir, "test (2).bin")).equals(generateFileContent(3000, 6)));
    assert.deepEqual(listDir(dir), ["test (1).bin", "test (2).bin", "test.bin"]);
    check();
  });

  it("queues triggers that arrive during a download, runs them in order, and refuses beyond the queue limit", async () => {
    await load({ peripherals: [nusPeripheral({ sizeBytes: 50_000, seed: 8 })] }, { blockTimeout: 500 });
    const caught = collectMessages(helper.getNode("caught"), 1, 30000);
    const received = collectMessages(helper.getNode("out"), 11, 60000);
    const completed = collectMessages(helper.getNode("completed"), 11, 60000);
    const queued = waitForStatus(dl(), (s) => /\(\+10 queued\)/.test(String(s.text)), 10000);
    for (let i = 1; i <= 12; i++) trigger({ trigger: i });
    const [refused] = (await caught) as CaughtMsg[];
    assert.equal(refused.trigger, 12);
    assert.match(refused.error.message, /busy: 10 downloads are already waiting/);
    await queued;
    const msgs = files(await received);
    assert.deepEqual(
      msgs.map((m) => m.trigger),
      [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11],
      "one download after another, in order",
    );
    const expected = generateFileContent(50_000, 8);
    for (const m of msgs) assert.ok(m.payload.equals(expected));
    assert.deepEqual(
      (await completed).map((m) => (m as FileMsg).trigger),
      [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11],
      "done() once per trigger, in order",
    );
    assert.equal(device().transfers.length, 11, "the transfers never overlapped: one session each");
  });

  it("requests XOSS files: filelist.txt, a named file, and reports a missing one", async () => {
    const dir = tempDir("ble-nus-xoss-");
    await load({ peripherals: [nusPeripheral({ xoss: true, files: { "20240101123456.fit": { sizeBytes: 6000, seed: 12 } } })] }, { requestFile: "filelist.txt", directory: dir });
    const list = collectMessages(helper.getNode("out"), 1, 30000);
    trigger();
    const [listing] = files(await list);
    assert.equal(listing.filename, "filelist.txt");
    assert.match(listing.payload.toString("utf8"), /^20240101123456\.fit\n?$/);
    const fit = collectMessages(helper.getNode("out"), 1, 30000);
    trigger({ filename: "20240101123456.fit" });
    const [file] = files(await fit);
    assert.equal(file.filename, "20240101123456.fit");
    assert.ok(file.payload.equals(generateFileContent(6000, 12)));
    assert.equal(file.stats.crc, "arc");
    const caught = collectMessages(helper.getNode("caught"), 1, 30000);
    trigger({ filename: "nope.fit" });
    const [err] = (await caught) as CaughtMsg[];
    assert.match(err.error.message, /refused "nope\.fit": no such file \(error 0x12\), 0 bytes received/);
    assert.deepEqual(listDir(dir), ["20240101123456.fit", "filelist.txt"]);
  });

  it("refuses a msg.filename too long for a XOSS request by its length, never echoing the name", async () => {
    await load({ peripherals: [nusPeripheral({ xoss: true })] }, { requestFile: "filelist.txt" });
    const caught = collectMessages(helper.getNode("caught"), 1, 30000);
    trigger({ filename: "MARKER-zq7-long-name.fit" });
    const [err] = (await caught) as CaughtMsg[];
    assert.match(err.error.message, /XOSS file name is 24 bytes; a control frame holds at most 18/);
    assert.doesNotMatch(err.error.message, /MARKER|zq7/);
  });

  it("fails clearly on a device without NUS, a bad msg.address, and a missing adapter", async () => {
    await load({ peripherals: [{ kind: "heart-rate", address: NUS, name: "hr" }] });
    const caught = collectMessages(helper.getNode("caught"), 2, 30000);
    trigger({ trigger: 1 });
    trigger({ trigger: 2, address: "nonsense" });
    const errors = (await caught) as CaughtMsg[];
    const byTrigger = new Map(errors.map((e) => [e.trigger, e.error.message]));
    assert.match(byTrigger.get(1) ?? "", /e3:c3:5c:00:00:01 has no Nordic UART Service.*0 bytes received/);
    assert.match(byTrigger.get(2) ?? "", /address must look like/);
    await helper.unload();
    await loadFlow(
      [bleConfigNode, nusYmodemReceiveNode],
      flow({ peripherals: [] }).map((n) => (n.id === "cfg" ? { id: "cfg", type: "ble-config", transport: "hci", hciDevice: 0 } : n)),
    );
    const noAdapter = collectMessages(helper.getNode("caught"), 1, 30000);
    trigger();
    const [err] = (await noAdapter) as CaughtMsg[];
    assert.match(err.error.message, /hci0/);
  });

  it("stopping the flow mid-download sends CAN CAN to the device and leaves no file", async () => {
    const dir = tempDir("ble-nus-close-");
    await load({ peripherals: [nusPeripheral({ sizeBytes: 3_000_000, seed: 13 })] }, { directory: dir });
    // Record what the device receives on RX, to see the cancel arrive.
    const rx: number[] = [];
    device().events.on("rx", (bytes) => rx.push(...bytes));
    const progress = waitForStatus(dl(), (s) => Number(/(\d+)%/.exec(String(s.text))?.[1] ?? 0) >= 5, 30000);
    trigger();
    await progress;
    await helper.unload();
    assert.deepEqual(rx.slice(-2), [0x18, 0x18], "CAN CAN reached the device before the link was released");
    assert.deepEqual(listDir(dir), [], "no file and no temporary file");
  });

  describe("hostile senders: every download ends, within blockTimeout × (retries + 1) of its last progress", () => {
    /** Loads the flow, triggers once, and returns the single error the catch node reports (and the outputs before it). */
    async function failure(peripheral: Record<string, unknown>, node: Record<string, unknown>): Promise<{ message: string; outputs: FileMsg[] }> {
      await load({ peripherals: [nusPeripheral(peripheral)] }, node);
      const outputs: FileMsg[] = [];
      helper.getNode("out").on("input", (msg: NodeMessage) => outputs.push(msg as FileMsg));
      const caught = collectMessages(helper.getNode("caught"), 1, 20000);
      trigger({ trigger: 1 });
      const [err] = (await caught) as CaughtMsg[];
      assert.equal(err.trigger, 1);
      await waitForStatus(dl(), (s) => s.fill === "red" && /failed/.test(String(s.text)), 5000);
      return { message: err.error.message, outputs };
    }

    it("a sender that chatters after block 0 (a stray byte every 40 ms) fails on the progress deadline, not never", async () => {
      // 400 simulated ms at 10× is 40 ms: far more often than the block timeout, which a stray byte used to refresh.
      const { message, outputs } = await failure({ sizeBytes: 3000, chatterMs: 400 }, { blockTimeout: 1000, retries: 1 });
      assert.match(message, /no progress for 2000 ms \(blockTimeout 1000 ms × \(retries 1 \+ 1\)\)/);
      assert.match(message, /"test\.bin", 0 bytes received/);
      assert.equal(outputs.length, 0);
      assert.equal(device().transfers[0]?.outcome, "aborted", "the device was told to stop (CAN CAN)");
    });

    it("a sender that repeats its first data block after every ACK fails: duplicates count as failures", async () => {
      const { message, outputs } = await failure({ sizeBytes: 3000, repeatBlock: "data" }, { blockTimeout: 1000, retries: 2 });
      assert.match(message, /block 1 repeated 3 times in a row; gave up after 2 retries/);
      assert.match(message, /"test\.bin", 1024 bytes received/);
      assert.equal(outputs.length, 0);
    });

    it("a sender that repeats block 0 after every ACK fails the same way", async () => {
      const { message } = await failure({ sizeBytes: 3000, repeatBlock: "block0" }, { blockTimeout: 1000, retries: 2 });
      assert.match(message, /block 0 repeated 3 times in a row; gave up after 2 retries/);
    });

    it("a sender that never sends EOT: the error says every announced byte arrived and EOT is missing", async () => {
      const { message, outputs } = await failure({ sizeBytes: 3000, withholdEot: true }, { blockTimeout: 1000, retries: 1 });
      assert.match(message, /all 3000 announced bytes arrived but EOT is missing/);
      assert.equal(outputs.length, 0, "a file without its EOT is not delivered");
    });

    it("a batch that never ends stops at maxFiles (the files before it are delivered)", async () => {
      const { message, outputs } = await failure({ dialect: "standard", endlessBatch: true, files: { "a.txt": { sizeBytes: 1000, seed: 2 } } }, { maxFiles: 3 });
      assert.match(message, /the batch has more than 3 files \(maxFiles\)/);
      assert.equal(outputs.length, 3);
      for (const m of outputs) assert.ok(m.payload.equals(generateFileContent(1000, 2)));
    });

    it("maxBytes bounds the whole download: a batch stops when the next file would exceed it", async () => {
      const { message, outputs } = await failure({ dialect: "standard", endlessBatch: true, files: { "a.txt": { sizeBytes: 1000, seed: 2 } } }, { maxBytes: 2500 });
      assert.match(message, /announced size 1000 exceeds the 500 bytes left of maxBytes 2500/);
      assert.equal(outputs.length, 2);
      assert.deepEqual(device().violations, []);
    });
  });

  it("two download nodes on one device, triggered together, deliver both files byte-exact, one after the other", async () => {
    const scenario = { peripherals: [nusPeripheral({ sizeBytes: 20_000, seed: 31, filename: "shared.bin" })] };
    // One catch node for both download nodes (the test helper loads each core node type once).
    const nodes = flow(scenario).map((n) => (n.id === "catch" || n.id === "complete" ? { ...n, scope: ["dl", "dl2"] } : n));
    const second = nodes.find((n) => n.id === "dl");
    assert.ok(second);
    nodes.push({ ...second, id: "dl2", wires: [["out2"]] }, { id: "out2", ...on, type: "helper" });
    await loadFlow([bleConfigNode, nusYmodemReceiveNode], nodes);
    const check = noErrors();
    const one = collectMessages(helper.getNode("out"), 1, 30000);
    const two = collectMessages(helper.getNode("out2"), 1, 30000);
    const completed = collectMessages(helper.getNode("completed"), 2, 30000);
    trigger({ trigger: 1 });
    helper.getNode("dl2").receive({ payload: true, trigger: 2 } as NodeMessage);
    const [a] = files(await one);
    const [b] = files(await two);
    const expected = generateFileContent(20_000, 31);
    assert.ok(a.payload.equals(expected), "the first node's file is byte-exact");
    assert.ok(b.payload.equals(expected), "the second node's file is byte-exact");
    await completed;
    assert.deepEqual(
      device().transfers.map((t) => t.outcome),
      ["done", "done"],
      "two sessions, one after the other",
    );
    check();
  });

  it("a node waiting for its turn on the device says so, and stopping the flow then ends both", async () => {
    const nodes = flow({ peripherals: [nusPeripheral({ sizeBytes: 3_000_000, seed: 32 })] }).map((n) => (n.id === "catch" ? { ...n, scope: ["dl", "dl2"] } : n));
    const first = nodes.find((n) => n.id === "dl");
    assert.ok(first);
    nodes.push({ ...first, id: "dl2", wires: [["out2"]] }, { id: "out2", ...on, type: "helper" });
    await loadFlow([bleConfigNode, nusYmodemReceiveNode], nodes);
    const progress = waitForStatus(dl(), (s) => /\d+%/.test(String(s.text)), 30000);
    trigger();
    await progress;
    const waiting = waitForStatus(helper.getNode("dl2"), (s) => s.fill === "yellow" && s.text === "waiting: another transfer with this device is running", 5000);
    helper.getNode("dl2").receive({ payload: true } as NodeMessage);
    await waiting;
    assert.equal(device().stats.sessions, 1, "the second node has not started a session of its own");
    // Ends the running download (CAN CAN) and withdraws the waiting one; unload would hang on a node that never ends.
    await helper.unload();
  });

  it("resolves a relative Save to against fileWorkingDirectory, as Node-RED's file nodes do; an absolute one stays", async () => {
    const workDir = tempDir("ble-nus-fwd-");
    // Unique, so that a file saved beside the process's working directory instead is noticed and removed.
    const relative = path.join(`${path.basename(workDir)}-downloads`, "nus");
    const stray = path.resolve(relative.split(path.sep)[0]);
    assert.equal(fs.existsSync(stray), false, `${stray} does not exist before the test`);
    // A settings.js setting that the helper's LocalSettings type does not list.
    helper.settings({ fileWorkingDirectory: workDir } as Parameters<typeof helper.settings>[0]);
    try {
      await load({ peripherals: [nusPeripheral({ sizeBytes: 5000, seed: 21, filename: "rel.bin" })] }, { directory: relative });
      const check = noErrors();
      const received = collectMessages(helper.getNode("out"), 1, 30000);
      const completed = collectMessages(helper.getNode("completed"), 1, 30000);
      trigger();
      const [msg] = files(await received);
      await completed;
      const dir = path.join(workDir, relative);
      const expected = generateFileContent(5000, 21);
      assert.equal(msg.path, path.join(dir, "rel.bin"), "msg.path is the file under fileWorkingDirectory");
      assert.ok(fs.readFileSync(path.join(dir, "rel.bin")).equals(expected), "the saved file is byte-exact");
      assert.deepEqual(listDir(dir), ["rel.bin"], "no temporary file is left");
      assert.equal(fs.existsSync(stray), false, "nothing was saved under the process's working directory");
      check();

      await helper.unload();
      const absolute = tempDir("ble-nus-fwd-abs-");
      await load({ peripherals: [nusPeripheral({ sizeBytes: 3000, seed: 22, filename: "abs.bin" })] }, { directory: absolute });
      const checkAbsolute = noErrors();
      const again = collectMessages(helper.getNode("out"), 1, 30000);
      trigger();
      const [abs] = files(await again);
      assert.equal(abs.path, path.join(absolute, "abs.bin"), "an absolute directory is used as it is");
      assert.ok(fs.readFileSync(path.join(absolute, "abs.bin")).equals(generateFileContent(3000, 22)));
      assert.deepEqual(listDir(workDir), [path.basename(stray)], "nothing else was written under fileWorkingDirectory");
      checkAbsolute();
    } finally {
      helper.settings({});
      fs.rmSync(stray, { recursive: true, force: true });
    }
  });
});

describe("nus-ymodem-receive node: stats.mtu against a server that answers Exchange MTU with its own maximum", function () {
  this.timeout(60000);

  useNodeRed();
  after(() => {
    for (const dir of tempDirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
  });

  /** The device's record of its transfers, once it has one (it ends its session on the final ACK, after the node's output). */
  async function deviceTransfers(): Promise<{ outcome: string; mtu: number }[]> {
    const d = device();
    if (d.transfers.length === 0) await once(d.events, "transfer");
    return d.transfers;
  }

  it("the seed's server answers 512 to the node's 247: the link and stats.mtu are 247", async () => {
    await load({ peripherals: [nusPeripheral({ sizeBytes: 5000, seed: 3, serverMtu: 512 })] });
    const check = noErrors();
    const received = collectMessages(helper.getNode("out"), 1, 30000);
    trigger();
    const [msg] = files(await received);
    assert.ok(msg.payload.equals(generateFileContent(5000, 3)));
    assert.equal(msg.stats.mtu, 247);
    assert.deepEqual((await deviceTransfers()).map((t) => [t.outcome, t.mtu]), [["done", 247]], "the device sent at 247 too");
    check();
  });

  it("asking for 100 from a server of 517: stats.mtu is 100", async () => {
    await load({ peripherals: [nusPeripheral({ sizeBytes: 3000, seed: 4 })] }, { mtu: 100 });
    const check = noErrors();
    const received = collectMessages(helper.getNode("out"), 1, 30000);
    trigger();
    const [msg] = files(await received);
    assert.ok(msg.payload.equals(generateFileContent(3000, 4)));
    assert.equal(msg.stats.mtu, 100);
    assert.deepEqual((await deviceTransfers()).map((t) => [t.outcome, t.mtu]), [["done", 100]]);
    check();
  });

  it("asking for 23 asks for 23 (not noble's default): stats.mtu 23 and the seed's SOH blocks", async () => {
    await load({ peripherals: [nusPeripheral({ sizeBytes: 2000, seed: 5 })] }, { mtu: 23 });
    const check = noErrors();
    const received = collectMessages(helper.getNode("out"), 1, 30000);
    trigger();
    const [msg] = files(await received);
    assert.ok(msg.payload.equals(generateFileContent(2000, 5)));
    assert.deepEqual([msg.stats.mtu, msg.stats.blockSize], [23, 128]);
    assert.deepEqual((await deviceTransfers()).map((t) => [t.outcome, t.mtu]), [["done", 23]]);
    check();
  });
});

describe("DeviceTurns (downloads from one device take turns)", () => {
  /** Which of the turns have started, after the promise callbacks ran. */
  async function started(turns: Promise<() => void>[]): Promise<boolean[]> {
    const state = turns.map(() => false);
    turns.forEach((t, i) => void t.then(() => (state[i] = true), () => undefined));
    await new Promise((resolve) => setImmediate(resolve));
    return state;
  }

  it("one turn per device at a time, in order; different devices at once", async () => {
    const turns = new DeviceTurns();
    const a1 = turns.take("E3:C3:5C:00:00:01");
    const a2 = turns.take("e3:c3:5c:00:00:01");
    const b = turns.take("e3:c3:5c:00:00:02");
    assert.deepEqual(await started([a1, a2, b]), [true, false, true], "the same address in any case is one device");
    assert.equal(turns.isFree("e3:c3:5c:00:00:01"), false);
    (await a1)();
    assert.deepEqual(await started([a2]), [true]);
    (await a2)();
    (await b)();
    assert.equal(turns.size, 0);
  });

  it("a turn without an address waits for every device, and later turns wait behind it", async () => {
    const turns = new DeviceTurns();
    const a = turns.take("e3:c3:5c:00:00:01");
    const any = turns.take(null);
    const b = turns.take("e3:c3:5c:00:00:02");
    assert.deepEqual(await started([a, any, b]), [true, false, false], "first come, first served");
    (await a)();
    assert.deepEqual(await started([any, b]), [true, false]);
    (await any)();
    assert.deepEqual(await started([b]), [true]);
  });

  it("a withdrawn wait rejects and lets the next one go", async () => {
    const turns = new DeviceTurns();
    const a = turns.take("e3:c3:5c:00:00:01");
    const withdraw = new AbortController();
    const waiting = turns.take("e3:c3:5c:00:00:01", withdraw.signal);
    const next = turns.take("e3:c3:5c:00:00:01");
    withdraw.abort(new Error("closing"));
    await assert.rejects(waiting, /closing/);
    const end = await a;
    end();
    end(); // ending twice changes nothing
    assert.deepEqual(await started([next]), [true]);
    assert.equal(turns.size, 1);
  });
});
