/**
 * Interoperability of the sending direction with a YMODEM receiver nobody here wrote: lrzsz's `rz --ymodem` runs
 * behind a simulated NUS peripheral (a serial cable: what the central writes to RX is rz's stdin, rz's stdout
 * goes out as TX notifications) and writes what it receives into a temporary directory; the central sends over
 * noble's real HCI stack on the virtual controller. rz must exit 0 and its files must be byte-exact.
 *
 * Without lrzsz these tests fail (they do not skip): `apt-get install -y lrzsz`.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import type { Node, NodeMessage } from "node-red";
import bleConfigNode = require("../../src/ble-config");
import nusYmodemSendNode = require("../../src/nus-ymodem-send");
import type { BleConfigNode } from "../../src/red/ble-config-node";
import { generateFileContent } from "../../src/sim/peripherals/file-content";
import type { Simulation } from "../../src/sim/scenario";
import { connectNus, nobleFor, type NusConnection, type SimNoble } from "../support/nus-noble";
import { collectMessages, helper, loadFlow } from "../support/red";
import { locateRz, RZ_MISSING, RzBridge, sendOverNus, TxReader, type RzExit, type SendResult } from "../support/rz-bridge";

const ADDRESS = "e3:c3:5c:00:00:03";

interface Sent {
  name: string;
  data: Buffer;
}

describe("interop: the pure YmodemSender → lrzsz rz --ymodem through a simulated NUS peripheral", function () {
  this.timeout(120_000);
  let rz: string | null = null;
  let dir = "";
  let sim: Simulation | undefined;
  let central: SimNoble | undefined;
  let bridge: RzBridge | undefined;
  let conn: NusConnection | undefined;

  before(() => {
    rz = locateRz();
    // A missing rz must fail the run, not skip it: the interop claim would otherwise pass untested.
    if (rz === null) throw new Error(RZ_MISSING);
  });

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "lrzsz-rz-"));
  });

  afterEach(() => {
    bridge?.stop();
    bridge = undefined;
    conn = undefined;
    central?.dispose();
    central = undefined;
    sim?.close();
    sim = undefined;
    fs.rmSync(dir, { recursive: true, force: true });
  });

  /**
   * Connects to rz's peripheral and sends each batch in turn (one YMODEM session each, as one message of the node
   * is); rz receives `batches.length` batches, one run each. rz is a real-time peer: the sender's block timeout is
   * 10 s of wall-clock time whatever the time scale.
   */
  async function send(batches: Sent[][], options: { blockSize?: 128 | 1024; timeScale?: number } = {}): Promise<{ results: SendResult[]; exits: RzExit[] }> {
    assert.ok(rz, RZ_MISSING);
    const timeScale = options.timeScale ?? 20;
    const built = RzBridge.simulation(ADDRESS, { rz, dir, runs: batches.length, timeScale });
    sim = built.sim;
    bridge = built.bridge;
    central = nobleFor(sim);
    conn = await connectNus(central.noble, ADDRESS, 247);
    const reader = new TxReader(conn);
    await reader.open();
    const results: SendResult[] = [];
    for (const files of batches) {
      results.push(await sendOverNus(conn, reader, sim.clock, files, { blockSize: options.blockSize, blockTimeoutMs: 10_000 * timeScale }));
    }
    const exits = await bridge.exited(batches.length, 30_000);
    reader.close();
    await conn.peripheral.disconnectAsync();
    return { results, exits };
  }

  function assertDelivered(outcome: { results: SendResult[]; exits: RzExit[] }, files: Sent[]): void {
    const context = `rz stderr: ${JSON.stringify(bridge?.stderrText.slice(-2000))}; last exchanges: ${bridge?.trace.join(" | ")}`;
    for (const r of outcome.results) assert.equal(r.error, null, `${r.error ?? ""} — ${context}`);
    for (const exit of outcome.exits) assert.equal(exit.code, 0, `rz exit code — ${context}`);
    // rz wrote exactly these files, nothing else (no partial file, no renamed duplicate).
    assert.deepEqual(fs.readdirSync(dir).sort(), files.map((f) => f.name).sort());
    for (const f of files) {
      const written = fs.readFileSync(path.join(dir, f.name));
      assert.equal(written.length, f.data.length, `${f.name}: size (rz cuts the padding at block 0's size)`);
      assert.ok(written.equals(f.data), `${f.name}: byte-exact`);
    }
  }

  it("a small file (100 bytes, one 1K block padded with 0x1A)", async () => {
    const files = [{ name: "small.txt", data: Buffer.from("YMODEM over Nordic UART Service, to lrzsz rz through noble.\n".padEnd(100, "!")) }];
    const outcome = await send([files]);
    assertDelivered(outcome, files);
    assert.equal(outcome.results[0].stats.blocksSent, 1);
    assert.equal(outcome.results[0].stats.retransmissions, 0);
  });

  it("a size that is a multiple of neither 128 nor 1024, ending in 0x1A and 0x00 bytes: 1K blocks and 128-byte blocks", async () => {
    const data = Buffer.concat([generateFileContent(70_000, 31), Buffer.of(0x1a, 0x00, 0x1a, 0x00, 0x1a)]);
    assert.ok(data.length % 128 !== 0 && data.length % 1024 !== 0);
    const files = [{ name: "odd-size.bin", data }];
    const oneK = await send([files], { blockSize: 1024 });
    assertDelivered(oneK, files);
    assert.equal(oneK.results[0].stats.blocksSent, Math.ceil(data.length / 1024));

    bridge?.stop();
    central?.dispose();
    sim?.close();
    fs.rmSync(path.join(dir, files[0].name));
    const small = await send([files], { blockSize: 128 });
    assertDelivered(small, files);
    assert.equal(small.results[0].stats.blocksSent, Math.ceil(data.length / 128));
  });

  it("a batch of two files sent by two sessions (one per message), rz receiving each batch in its own run", async () => {
    const first = { name: "config.json", data: Buffer.from(JSON.stringify({ rate: 50, channels: [1, 2, 3] }, null, 2)) };
    const second = { name: "firmware.bin", data: generateFileContent(33_333, 41) };
    const outcome = await send([[first], [second]]);
    assertDelivered(outcome, [first, second]);
    assert.equal(outcome.exits.length, 2);
  });

  it("1 MiB with 1K blocks, the link at 50× speed", async () => {
    const files = [{ name: "one-mebibyte.bin", data: generateFileContent(1024 * 1024, 51) }];
    const outcome = await send([files], { timeScale: 50 });
    assertDelivered(outcome, files);
    assert.equal(outcome.results[0].stats.blocksSent, 1024);
    assert.equal(outcome.results[0].stats.retransmissions, 0);
    // Every frame crossed the simulated link to rz once: block 0, 1,024 STX frames, one EOT (rz ACKs the first
    // EOT), the end-of-batch block 0.
    assert.equal(bridge?.bytesToRz, 133 + 1024 * 1029 + 1 + 133);
    assert.equal(bridge?.bytesLost, 0);
  });
});

/** The fields of the node's output these tests read. */
interface SentMsg extends NodeMessage {
  filename: string;
  stats: { bytes: number; blocks: number; retransmissions: number; mtu: number; blockSize: 128 | 1024; crc: string };
}

describe("interop: the nus-ymodem-send node in a Node-RED runtime → lrzsz rz --ymodem", function () {
  this.timeout(120_000);
  let rz: string | null = null;
  let dir = "";
  let bridge: RzBridge | undefined;

  before((done) => {
    rz = locateRz();
    if (rz === null) return done(new Error(RZ_MISSING));
    helper.startServer(done);
  });
  after((done) => {
    if (rz === null) return done();
    helper.stopServer(done);
  });
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "lrzsz-rz-node-"));
  });
  afterEach(async () => {
    bridge?.stop();
    bridge = undefined;
    await helper.unload();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  /**
   * A flow with the simulator transport and no scenario peripherals; the rz bridge joins the running simulation's
   * controller (rz writes into its own directory, not the flow's), then one input message per file.
   */
  async function upload(files: Sent[], node: { blockSize?: "1024" | "128"; timeScale?: number } = {}): Promise<SentMsg[]> {
    assert.ok(rz, RZ_MISSING);
    const flowDir = path.join(dir, "flow");
    const rzDir = path.join(dir, "rz");
    fs.mkdirSync(flowDir);
    fs.mkdirSync(rzDir);
    const scenario = path.join(flowDir, "scenario.json");
    fs.writeFileSync(scenario, JSON.stringify({ peripherals: [] }));
    const timeScale = node.timeScale ?? 10;
    await loadFlow(
      [bleConfigNode, nusYmodemSendNode],
      [
        { id: "tab", type: "tab" },
        { id: "cfg", type: "ble-config", transport: "simulator", simScenario: scenario, simTimeScale: timeScale },
        {
          id: "up",
          z: "tab",
          type: "nus-ymodem-send",
          ble: "cfg",
          address: ADDRESS,
          deviceName: "",
          mtu: 247,
          dialect: "standard",
          blockSize: node.blockSize ?? "1024",
          // Real milliseconds: rz answers in real time whatever the simulator's time scale.
          blockTimeout: 10_000,
          retries: 10,
          wires: [["out"]],
        },
        { id: "out", z: "tab", type: "helper" },
        { id: "catch", z: "tab", type: "catch", x: 100, y: 100, scope: ["up"], uncaught: false, wires: [["caught"]] },
        { id: "caught", z: "tab", type: "helper" },
      ],
    );
    const simulation = (helper.getNode("cfg") as BleConfigNode).adapter?.simulation;
    assert.ok(simulation, "the config node opened a simulator");
    bridge = new RzBridge({ address: ADDRESS, clock: simulation.clock, link: simulation.scenario.link, rz, dir: rzDir, runs: files.length });
    simulation.controller.addPeripheral(bridge.peripheral);
    const caught: string[] = [];
    helper.getNode("caught").on("input", (msg: NodeMessage) => {
      caught.push((msg as NodeMessage & { error?: { message?: string } }).error?.message ?? "an error");
    });
    const sent = collectMessages(helper.getNode("out"), files.length, 90_000);
    for (const f of files) (helper.getNode("up") as Node).receive({ payload: f.data, filename: f.name } as NodeMessage);
    const msgs = (await sent.catch((error: unknown) => {
      throw new Error(`${error instanceof Error ? error.message : String(error)}; caught: ${caught.join("; ")}; rz: ${bridge?.stderrText.slice(-1000)}; ${bridge?.trace.join(" | ")}`);
    })) as SentMsg[];
    const exits = await bridge.exited(files.length, 30_000);
    const context = `rz stderr: ${JSON.stringify(bridge.stderrText.slice(-2000))}`;
    for (const exit of exits) assert.equal(exit.code, 0, `rz exit code — ${context}`);
    assert.deepEqual(caught, []);
    assert.deepEqual(fs.readdirSync(rzDir).sort(), files.map((f) => f.name).sort());
    for (const f of files) {
      const written = fs.readFileSync(path.join(rzDir, f.name));
      assert.equal(written.length, f.data.length, `${f.name}: size`);
      assert.ok(written.equals(f.data), `${f.name}: byte-exact`);
    }
    return msgs;
  }

  it("a small file: byte-exact, and the output message's stats say what was sent", async () => {
    const data = Buffer.from("interval=50\nchannels=1,2,3\n");
    const [msg] = await upload([{ name: "settings.ini", data }]);
    assert.equal(msg.filename, "settings.ini");
    assert.equal(msg.stats.bytes, data.length);
    assert.equal(msg.stats.blocks, 1);
    assert.equal(msg.stats.crc, "xmodem");
    assert.equal(msg.stats.mtu, 247);
  });

  it("a size that is a multiple of neither 128 nor 1024, in 128-byte blocks", async () => {
    const data = Buffer.concat([generateFileContent(20_000, 32), Buffer.of(0x1a, 0x1a, 0x00)]);
    const [msg] = await upload([{ name: "odd.bin", data }], { blockSize: "128" });
    assert.equal(msg.stats.blocks, Math.ceil(data.length / 128));
    assert.equal(msg.stats.blockSize, 128);
  });

  it("a batch of two files sent by two messages", async () => {
    const files = [
      { name: "boot.py", data: Buffer.from("import machine\nprint('hello')\n") },
      { name: "image.bin", data: generateFileContent(50_001, 42) },
    ];
    const msgs = await upload(files);
    assert.deepEqual(
      msgs.map((m) => m.filename),
      files.map((f) => f.name),
    );
  });

  it("1 MiB with 1K blocks, the link at 50× speed", async () => {
    const data = generateFileContent(1024 * 1024, 52);
    const [msg] = await upload([{ name: "one-mebibyte.bin", data }], { timeScale: 50 });
    assert.equal(msg.stats.blocks, 1024);
    assert.equal(msg.stats.retransmissions, 0);
  });
});
