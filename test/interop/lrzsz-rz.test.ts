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
import { generateFileContent } from "../../src/sim/peripherals/file-content";
import type { Simulation } from "../../src/sim/scenario";
import { connectNus, nobleFor, type NusConnection, type SimNoble } from "../support/nus-noble";
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
