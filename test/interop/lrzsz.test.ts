/**
 * Interoperability with a YMODEM implementation nobody here wrote: lrzsz's `sz --ymodem` sends through a
 * simulated NUS peripheral (a serial cable: sz's stdin/stdout piped to RX/TX), and the pure YmodemReceiver
 * receives over noble's real HCI stack on the virtual controller. Byte-exact, in both of sz's block sizes,
 * in batches, at 1 MiB, and in YMODEM-g (sz switches to streaming 1K blocks by itself when it reads `G`).
 *
 * Without lrzsz these tests fail (they do not skip): `apt-get install -y lrzsz`.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import type { Node, NodeMessage } from "node-red";
import bleConfigNode = require("../../src/ble-config");
import nusYmodemReceiveNode = require("../../src/nus-ymodem-receive");
import type { BleConfigNode } from "../../src/red/ble-config-node";
import { generateFileContent } from "../../src/sim/peripherals/nus-ymodem";
import type { Simulation } from "../../src/sim/scenario";
import type { LinkSettings } from "../../src/sim/types";
import { connectNus, nobleFor, receiveYmodem, type ReceiveResult, type SimNoble } from "../support/nus-noble";
import { collectMessages, helper, loadFlow } from "../support/red";
import { locateSz, SZ_MISSING, SzBridge, type SzExit } from "../support/sz-bridge";

const ADDRESS = "e3:c3:5c:00:00:02";

interface Sent {
  name: string;
  data: Buffer;
}

interface Outcome {
  run: ReceiveResult;
  exit: SzExit;
  bridge: SzBridge;
}

describe("interop: lrzsz sz --ymodem through a simulated NUS peripheral", function () {
  let sz: string | null = null;
  let dir = "";
  let sim: Simulation | undefined;
  let central: SimNoble | undefined;
  let bridge: SzBridge | undefined;

  before(() => {
    sz = locateSz();
    // A missing sz must fail the run, not skip it: the interop claim would otherwise pass untested.
    if (sz === null) throw new Error(SZ_MISSING);
  });

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "lrzsz-interop-"));
  });

  afterEach(() => {
    bridge?.stop();
    bridge = undefined;
    central?.dispose();
    central = undefined;
    sim?.close();
    sim = undefined;
    fs.rmSync(dir, { recursive: true, force: true });
  });

  /**
   * sz sends `files` with `flags`; the receiver (mode C or G) takes them over noble. sz is a real-time peer, so
   * the receiver's block timeout is 10 s of wall-clock time whatever the time scale.
   */
  async function transfer(files: Sent[], flags: string[], options: { mode?: "C" | "G"; timeScale?: number; link?: Partial<LinkSettings> } = {}): Promise<Outcome> {
    assert.ok(sz, SZ_MISSING);
    for (const f of files) fs.writeFileSync(path.join(dir, f.name), f.data);
    const timeScale = options.timeScale ?? 20;
    const built = SzBridge.simulation(ADDRESS, { timeScale, link: options.link });
    sim = built.sim;
    bridge = built.bridge;
    bridge.start(sz, ["--ymodem", ...flags, ...files.map((f) => f.name)], dir);
    central = nobleFor(sim);
    const conn = await connectNus(central.noble, ADDRESS, 247);
    const run = await receiveYmodem(conn, sim.clock, { mode: options.mode ?? "C", blockTimeoutMs: 10_000 * timeScale });
    const exit = await bridge.exited(30_000);
    await conn.peripheral.disconnectAsync();
    return { run, exit, bridge };
  }

  function assertReceived(outcome: Outcome, files: Sent[]): void {
    const { run, exit } = outcome;
    const context = `sz stderr: ${JSON.stringify(exit.stderr.slice(-2000))}`;
    assert.equal(run.error, null, `${run.error?.message ?? ""} — ${context}`);
    assert.equal(exit.code, 0, `sz exit code — ${context}`);
    assert.deepEqual(
      run.files.map((f) => f.name),
      files.map((f) => f.name),
    );
    run.files.forEach((f, i) => {
      assert.equal(f.data.length, files[i].data.length, `${f.name}: size`);
      assert.ok(f.data.equals(files[i].data), `${f.name}: byte-exact`);
      assert.equal(f.crc, "xmodem", "sz uses CRC-16/XMODEM");
    });
    for (const e of run.events) if (e.type === "file-start") assert.equal(e.dialect, "standard");
    assert.equal(run.events.at(-1)?.type, "end", "the batch ended with sz's empty block 0");
  }

  it("a small file (100 bytes, one SOH block padded with 0x1A)", async () => {
    const files = [{ name: "small.txt", data: Buffer.from("YMODEM over Nordic UART Service, sent by lrzsz sz and received over noble.\n".padEnd(100, "!")) }];
    const outcome = await transfer(files, []);
    assertReceived(outcome, files);
    assert.equal(outcome.run.files[0].blockSize, 128);
    assert.equal(outcome.run.files[0].blocks, 1);
  });

  it("a file whose size is a multiple of neither 128 nor 1024, ending in 0x1A and 0x00 bytes: in 128-byte blocks and with -k", async () => {
    const data = Buffer.concat([generateFileContent(70_000, 31), Buffer.of(0x1a, 0x00, 0x1a, 0x00, 0x00)]);
    assert.ok(data.length % 128 !== 0 && data.length % 1024 !== 0);
    const files = [{ name: "odd-size.bin", data }];
    const plain = await transfer(files, []);
    assertReceived(plain, files);
    assert.equal(plain.run.files[0].blockSize, 128);
    assert.equal(plain.run.files[0].blocks, Math.ceil(data.length / 128));

    bridge?.stop();
    central?.dispose();
    sim?.close();
    const oneK = await transfer(files, ["-k"]);
    assertReceived(oneK, files);
    // -k: STX while more than 896 bytes remain, then SOH for the tail (70,005 = 68 × 1024 + 373 = 3 × 128 - 11).
    assert.equal(oneK.run.files[0].blockSize, "mixed");
    assert.equal(oneK.run.files[0].blocks, 68 + 3);
  });

  it("a batch of two files", async () => {
    const files = [
      { name: "first.bin", data: generateFileContent(5_000, 41) },
      { name: "second.log", data: Buffer.from("line 1\nline 2\n".repeat(300)) },
    ];
    const outcome = await transfer(files, ["-k"]);
    assertReceived(outcome, files);
    // Between the files the receiver asks again: ACK + C after each final EOT, as rz does.
    const written = outcome.run.written.map((w) => w.toString("hex"));
    assert.equal(written.filter((w) => w === "0643").length, 4, "after each block 0 and each final EOT");
  });

  it("a 1 MiB file with 1K blocks (-k), the link at 50× speed", async function () {
    this.timeout(120_000);
    const files = [{ name: "one-mebibyte.bin", data: generateFileContent(1024 * 1024, 51) }];
    const outcome = await transfer(files, ["-k"], { timeScale: 50 });
    assertReceived(outcome, files);
    assert.equal(outcome.run.files[0].blockSize, 1024);
    assert.equal(outcome.run.files[0].blocks, 1024);
    assert.equal(outcome.run.files[0].retransmissions, 0);
    // Every byte crossed the simulated link: sz's 1,024 STX frames, block 0 and the end.
    assert.ok(outcome.bridge.peripheral.stats.txBytes >= 1024 * 1029);
    assert.equal(outcome.bridge.bytesLost, 0);
  });

  it("YMODEM-g: sz has no flag for it but streams 1K blocks without waiting for ACKs when the receiver sends G", async () => {
    const data = generateFileContent(200_000, 61);
    const files = [{ name: "streamed.bin", data }];
    const outcome = await transfer(files, [], { mode: "G" });
    assertReceived(outcome, files);
    // sz switches to 1K blocks by itself in G mode (200,000 = 195 × 1024 + 320: the tail in three SOH blocks).
    assert.equal(outcome.run.files[0].blockSize, "mixed");
    assert.equal(outcome.run.files[0].blocks, 195 + 3);
    // G; ACK G after block 0; ACK G after the (single) EOT; ACK of the empty block 0: nothing per data block.
    assert.deepEqual(
      outcome.run.written.map((w) => w.toString("hex")),
      ["47", "0647", "0647", "06"],
    );
    assert.ok(outcome.bridge.bytesToSz <= 6, `${outcome.bridge.bytesToSz} bytes reached sz`);
  });
});

/** What the node sends per file (the fields these tests read). */
interface FileMsg extends NodeMessage {
  payload: Buffer;
  filename: string;
  size: number;
  stats: { crc: string; blocks: number; blockSize: 128 | 1024 | "mixed" };
}

describe("interop: lrzsz sz --ymodem → the nus-ymodem-receive node in a Node-RED runtime", function () {
  this.timeout(120_000);
  let sz: string | null = null;
  let dir = "";
  let bridge: SzBridge | undefined;

  before((done) => {
    sz = locateSz();
    if (sz === null) return done(new Error(SZ_MISSING));
    helper.startServer(done);
  });
  after((done) => {
    if (sz === null) return done();
    helper.stopServer(done);
  });
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "lrzsz-node-"));
  });
  afterEach(async () => {
    bridge?.stop();
    bridge = undefined;
    await helper.unload();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  /**
   * A flow with the simulator transport and no scenario peripherals; the sz bridge joins the running
   * simulation's controller, then an input message starts the download from it.
   */
  async function download(files: Sent[], flags: string[], mode: "C" | "G"): Promise<FileMsg[]> {
    assert.ok(sz, SZ_MISSING);
    for (const f of files) fs.writeFileSync(path.join(dir, f.name), f.data);
    const scenario = path.join(dir, "scenario.json");
    fs.writeFileSync(scenario, JSON.stringify({ peripherals: [] }));
    await loadFlow(
      [bleConfigNode, nusYmodemReceiveNode],
      [
        { id: "cfg", type: "ble-config", transport: "simulator", simScenario: scenario, simTimeScale: 10 },
        { id: "tab", type: "tab" },
        { id: "dl", z: "tab", type: "nus-ymodem-receive", ble: "cfg", address: ADDRESS, deviceName: "", mode, blockTimeout: 10_000, wires: [["out"]] },
        { id: "out", z: "tab", type: "helper" },
      ],
    );
    // The config node opens its adapter (and so the simulator) while the flow starts.
    const simulation = (helper.getNode("cfg") as BleConfigNode).adapter?.simulation;
    assert.ok(simulation, "the config node opened a simulator");
    bridge = new SzBridge({ address: ADDRESS, clock: simulation.clock, link: simulation.scenario.link });
    simulation.controller.addPeripheral(bridge.peripheral);
    bridge.start(sz, ["--ymodem", ...flags, ...files.map((f) => f.name)], dir);
    const received = collectMessages(helper.getNode("out"), files.length, 60_000);
    (helper.getNode("dl") as Node).receive({ payload: true } as NodeMessage);
    const msgs = (await received) as FileMsg[];
    const exit = await bridge.exited(30_000);
    assert.equal(exit.code, 0, `sz exit code; stderr ${JSON.stringify(exit.stderr.slice(-2000))}`);
    return msgs;
  }

  it("a batch of two files with 1K blocks, ACK per block", async () => {
    const files = [
      { name: "ride.fit", data: generateFileContent(33_333, 71) },
      { name: "notes.txt", data: Buffer.from("lrzsz to Node-RED over simulated BLE\n".repeat(50)) },
    ];
    const msgs = await download(files, ["-k"], "C");
    msgs.forEach((msg, i) => {
      assert.equal(msg.filename, files[i].name);
      assert.equal(msg.size, files[i].data.length);
      assert.ok(msg.payload.equals(files[i].data), `${msg.filename}: byte-exact`);
      assert.equal(msg.stats.crc, "xmodem");
    });
  });

  it("YMODEM-g: the node in G mode receives sz's stream byte-exact", async () => {
    const files = [{ name: "stream.bin", data: generateFileContent(150_000, 72) }];
    const [msg] = await download(files, [], "G");
    assert.equal(msg.filename, "stream.bin");
    assert.ok(msg.payload.equals(files[0].data), "byte-exact");
    assert.equal(msg.stats.blockSize, "mixed", "sz streams 1K blocks and ends in 128-byte ones");
  });
});
