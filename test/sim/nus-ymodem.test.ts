/**
 * The nus-ymodem virtual peripheral (and the NUS serial cable under it), received with the pure
 * YmodemReceiver: through the fake central (exact, no wall-clock time) and through noble's real HCI stack on
 * the virtual controller.
 */
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { YmodemReceiver, type YmodemError, type YmodemEvent, type YmodemReceiverOptions } from "../../src/protocol/ymodem";
import { ACK, CAN, EOT, NAK, SOH, STX, WANT_CRC } from "../../src/protocol/ymodem-block";
import { createPeripheral } from "../../src/sim/peripherals/index";
import { NUS_RX, NUS_SERVICE, NUS_TX } from "../../src/protocol/nus";
import { encodeXossFrame, XOSS_CONTROL_CHARACTERISTIC as XOSS_CONTROL, XossOpcode } from "../../src/protocol/xoss";
import { generateFileContent } from "../../src/sim/peripherals/file-content";
import { NusUartPeripheral } from "../../src/sim/peripherals/nus-uart";
import { NusYmodemPeripheral } from "../../src/sim/peripherals/nus-ymodem";
import { FILELIST_NAME } from "../../src/sim/peripherals/xoss-control";
import { parseScenario, Simulation } from "../../src/sim/scenario";
import { DEFAULT_LINK, type PeripheralContext } from "../../src/sim/types";
import { ScenarioError, type JsonObject } from "../../src/sim/validate";
import { TestCentral } from "../support/fake-central";
import { ManualClock } from "../support/manual-clock";
import { connectNus, nobleFor, receiveYmodem, xossRequest, type SimNoble } from "../support/nus-noble";

const ADDRESS = "e3:c3:5c:00:00:01";

function context(clock: ManualClock, baseDir = "", maxMtu = DEFAULT_LINK.maxMtu): PeripheralContext {
  return { clock, link: { ...DEFAULT_LINK, maxMtu }, baseDir };
}

function fromScenario(spec: JsonObject, clock = new ManualClock(), baseDir = ""): NusYmodemPeripheral {
  const p = createPeripheral({ kind: "nus-ymodem", address: ADDRESS, ...spec }, "peripherals[0]", context(clock, baseDir));
  assert.ok(p instanceof NusYmodemPeripheral);
  return p;
}

interface FakeRun {
  files: { name: string; data: Buffer; blocks: number; retransmissions: number; blockSize: 128 | 1024 | "mixed"; crc: string }[];
  error: YmodemError | null;
  events: YmodemEvent[];
  /** What the central wrote to RX, one entry per write. */
  written: Buffer[];
  /** TX notifications, in order. */
  notifications: Buffer[];
  /** Reasons the peripheral hung up with (only when the link offers disconnect). */
  hangUps: number[];
  /** Largest number of held TX notifications and pending peripheral bytes seen (with `hold`). */
  maxHeld: number;
  maxPendingTx: number;
  central: TestCentral;
}

interface FakeOptions {
  mtu?: number;
  receiver?: Partial<YmodemReceiverOptions>;
  /** Receiver's timeout (simulated ms). */
  timeoutMs?: number;
  /** Give the fake link a disconnect(reason), as the controller's link may offer. */
  hangUp?: boolean;
  /** Hold every notification until the test releases `releasePerRound` of them: a slow link. */
  hold?: boolean;
  releasePerRound?: number;
  /** Drop the central's nth write (counting from 0) instead of sending it. */
  dropWrite?: (bytes: Buffer, index: number) => boolean;
  /** Already connected (and, for XOSS, past its request). */
  central?: TestCentral;
}

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * Runs one download with the fake central: notifications feed the receiver synchronously, the receiver's
 * answers are written between rounds (never re-entrantly), and simulated time only moves when nothing else can.
 */
async function runFake(p: NusYmodemPeripheral, clock: ManualClock, opts: FakeOptions = {}): Promise<FakeRun> {
  const central = opts.central ?? new TestCentral(p);
  if (!opts.central) {
    central.connect();
    central.discoverAll(opts.mtu ?? 247);
  }
  central.subscribe(NUS_TX);
  const txHandle = central.characteristic(NUS_TX).valueHandle;
  const receiver = new YmodemReceiver({ crc: "auto", mode: "C", maxBytes: 1 << 26, retries: 10, ...opts.receiver });
  const run: FakeRun = { files: [], error: null, events: [], written: [], notifications: [], hangUps: [], maxHeld: 0, maxPendingTx: 0, central };
  const outbox: Buffer[] = [];
  let writeIndex = 0;
  let finished = false;
  let timer = null as { cancel(): void } | null;
  const timeoutMs = opts.timeoutMs ?? 5000;

  const handle = (events: YmodemEvent[]): void => {
    for (const e of events) {
      run.events.push(e);
      if (e.type === "send") {
        if (opts.dropWrite?.(e.bytes, writeIndex++)) continue;
        outbox.push(e.bytes);
      } else if (e.type === "file") {
        run.files.push({ name: e.name, data: e.data, blocks: e.blocks, retransmissions: e.retransmissions, blockSize: e.blockSize, crc: e.crc });
      } else if (e.type === "error") {
        run.error = e.error;
        finished = true;
      } else if (e.type === "end") {
        finished = true;
      }
    }
    timer?.cancel();
    timer = finished ? null : clock.setTimeout(() => handle(receiver.timeout()), timeoutMs);
  };

  const original = central.link.onSend;
  central.link.onSend = (pdu) => {
    original?.(pdu);
    if (pdu[0] === 0x1b && pdu.readUInt16LE(1) === txHandle) {
      const value = Buffer.from(pdu.subarray(3));
      run.notifications.push(value);
      handle(receiver.feed(value));
    }
  };
  if (opts.hangUp) {
    Object.assign(central.link, {
      disconnect: (reason = 0x13) => {
        run.hangUps.push(reason);
        // The controller ends the link after the event: the peripheral hears "local host terminated".
        queueMicrotask(() => {
          central.disconnect(0x16);
          handle(receiver.disconnected());
        });
      },
    });
  }
  central.link.hold = opts.hold ?? false;

  handle(receiver.start());
  for (let round = 0; round < 200_000; round++) {
    await tick();
    run.maxHeld = Math.max(run.maxHeld, central.link.queuedAttPdus);
    run.maxPendingTx = Math.max(run.maxPendingTx, p.pendingTx);
    if (outbox.length > 0) {
      for (const bytes of outbox.splice(0)) {
        run.written.push(bytes);
        if (central.link.connected) central.write(NUS_RX, bytes, true);
      }
      continue;
    }
    if (finished) break;
    if (central.link.queuedAttPdus > 0) {
      central.link.release(opts.releasePerRound ?? Infinity);
      continue;
    }
    clock.advance(50);
  }
  timer?.cancel();
  assert.ok(finished, "the download ended");
  return run;
}

/** Every frame starts a notification and ends with one; no notification is longer than MTU − 3. */
function assertFrameAligned(notifications: Buffer[], mtu: number): void {
  let i = 0;
  while (i < notifications.length) {
    const first = notifications[i][0];
    const length = first === SOH ? 133 : first === STX ? 1029 : first === EOT ? 1 : first === CAN ? 2 : -1;
    assert.notEqual(length, -1, `notification ${i} starts a frame with 0x${first.toString(16)}`);
    let got = 0;
    while (got < length) {
      assert.ok(i < notifications.length, "a frame is cut short");
      assert.ok(notifications[i].length <= mtu - 3, `notification ${i} has ${notifications[i].length} bytes at MTU ${mtu}`);
      got += notifications[i++].length;
    }
    assert.equal(got, length, "a frame ends with its last notification");
  }
}

const bytes = (...list: number[]): Buffer => Buffer.from(list);

describe("sim: nus-ymodem peripheral", () => {
  describe("generated content", () => {
    it("is deterministic per size and seed, and differs between seeds", () => {
      const a = generateFileContent(1000, 42);
      assert.deepEqual(generateFileContent(1000, 42), a);
      assert.deepEqual(generateFileContent(997, 42), a.subarray(0, 997), "a shorter file is a prefix");
      assert.notDeepEqual(generateFileContent(1000, 43), a);
      // Pinned, so a change of generator (which would change every scenario's file) is noticed.
      assert.equal(generateFileContent(8, 0).toString("hex"), "62b43444379c1500");
      assert.equal(generateFileContent(0, 5).length, 0);
    });
  });

  describe("NUS serial cable (NusUartPeripheral)", () => {
    function cable(txWindow?: number): { p: NusUartPeripheral; rx: Buffer[]; central: TestCentral } {
      const rx: Buffer[] = [];
      const p = new NusUartPeripheral({ address: ADDRESS, clock: new ManualClock(), txWindow, onRx: (b) => rx.push(b) });
      const central = new TestCentral(p);
      central.connect();
      return { p, rx, central };
    }

    it("advertises NUS as mpy-nus; RX is write + write without response, TX notify", () => {
      const { central, p } = cable();
      central.discoverAll(23);
      assert.equal(p.name, "mpy-nus");
      assert.ok(p.advertisingData().includes(Buffer.from(NUS_SERVICE.replace(/-/g, ""), "hex").reverse()));
      assert.equal(central.characteristic(NUS_RX).properties, 0x0c);
      assert.equal(central.characteristic(NUS_TX).properties, 0x10);
    });

    it("hands RX writes (request and command) to onRx in order", () => {
      const { central, rx } = cable();
      central.discoverAll(23);
      central.write(NUS_RX, "C", true);
      central.write(NUS_RX, Buffer.of(1, 2, 3), false);
      assert.deepEqual(rx, [Buffer.from("C"), Buffer.of(1, 2, 3)]);
    });

    it("streams sendTx bytes as notifications of MTU − 3, coalescing calls; aligned bytes start their own", async () => {
      const { central, p } = cable(1);
      central.discoverAll(23);
      await assert.rejects(p.sendTx(Buffer.of(1)), /not enabled notifications/);
      central.subscribe(NUS_TX);
      central.link.hold = true; // one notification on the link at a time: later calls queue behind it
      const first = p.sendTx(Buffer.alloc(30, 1));
      const second = p.sendTx(Buffer.alloc(15, 2));
      const third = p.sendTx(Buffer.alloc(5, 3), { aligned: true });
      for (let i = 0; i < 4; i++) {
        central.link.release();
        await tick();
      }
      await Promise.all([first, second, third]);
      assert.deepEqual(
        central.valuesOf(NUS_TX).map((v) => v.toString("hex")),
        [Buffer.alloc(20, 1), Buffer.concat([Buffer.alloc(10, 1), Buffer.alloc(10, 2)]), Buffer.alloc(5, 2), Buffer.alloc(5, 3)].map((v) => v.toString("hex")),
      );
      assert.equal(p.stats.notifications, 4);
    });

    it("keeps at most txWindow notifications on the link, and rejects what is pending when the link drops", async () => {
      const { central, p } = cable();
      central.discoverAll(247);
      central.subscribe(NUS_TX);
      central.link.hold = true;
      const sent = p.sendTx(Buffer.alloc(244 * 20));
      await tick();
      assert.equal(central.link.queuedAttPdus, 8, "the default window without link settings");
      assert.equal(p.pendingTx, 244 * 12);
      central.disconnect();
      await assert.rejects(sent, /link down|disconnected/);
      assert.equal(p.pendingTx, 0);
    });

    it("cannot hang up when not connected, and says so", () => {
      const p = new NusUartPeripheral({ address: ADDRESS, clock: new ManualClock(), onRx: () => undefined });
      assert.equal(p.requestDisconnect(), false);
    });
  });

  describe("seed server (default)", () => {
    it("serves test.bin (100,000 generated bytes) byte-exact: CRC-16/ARC, SOH block 0, STX data at MTU 247, EOT NAK EOT ACK, then hangs up", async () => {
      const clock = new ManualClock();
      const p = fromScenario({}, clock);
      assert.equal(p.name, "mpy-nus");
      const run = await runFake(p, clock, { mtu: 247, hangUp: true });
      assert.equal(run.error, null);
      assert.equal(run.files.length, 1);
      const [file] = run.files;
      assert.equal(file.name, "test.bin");
      assert.ok(file.data.equals(generateFileContent(100_000, 0)), "byte-exact");
      assert.equal(file.crc, "arc");
      assert.equal(file.blockSize, 1024);
      assert.equal(file.blocks, 98);
      const dialect = run.events.find((e) => e.type === "file-start");
      assert.equal(dialect?.type === "file-start" && dialect.dialect, "seed");
      // Block 0 is SOH even at MTU 247; data blocks STX.
      assert.equal(run.notifications[0][0], SOH);
      assert.equal(run.notifications[1][0], STX);
      assertFrameAligned(run.notifications, 247);
      assert.deepEqual(
        run.notifications.slice(-2).map((n) => n.toString("hex")),
        ["04", "04"],
        "EOT, NAK, EOT",
      );
      assert.deepEqual(run.written[0], Buffer.from("C"));
      assert.deepEqual(run.written[1], bytes(ACK, 0x43));
      assert.deepEqual(run.written.slice(-2), [bytes(NAK), bytes(ACK)]);
      assert.deepEqual(run.hangUps, [0x13], "the seed's server disconnects after the final ACK");
      assert.deepEqual(p.transfers.map((t) => [t.outcome, t.blockSize, t.mtu]), [["done", 1024, 247]]);
      assert.equal(p.stats.blocksSent, 98);
      assert.equal(p.stats.retransmissions, 0);
      assert.deepEqual(p.violations, []);
    });

    it("uses SOH data blocks at MTU 23 (notifications of 20 bytes), and goes quiet when the link cannot hang up", async () => {
      const clock = new ManualClock();
      const p = fromScenario({ sizeBytes: 1000, seed: 3 }, clock);
      const run = await runFake(p, clock, { mtu: 23 });
      assert.ok(run.files[0].data.equals(generateFileContent(1000, 3)));
      assert.equal(run.files[0].blockSize, 128);
      assert.equal(run.files[0].blocks, 8);
      assert.ok(run.notifications.every((n) => n.length <= 20));
      assert.deepEqual(run.notifications.slice(0, 7).map((n) => n.length), [20, 20, 20, 20, 20, 20, 13], "133 bytes = 7 notifications");
      assert.equal(run.notifications[7][0], SOH);
      assertFrameAligned(run.notifications, 23);
      // No disconnect on this link: the receiver ends the seed session by its quiet timeout.
      assert.deepEqual(run.hangUps, []);
      assert.equal(p.transfers[0].outcome, "done");
    });

    it("blocks: \"soh\" at MTU 247 and \"stx\" at MTU 23 override the MTU rule", async () => {
      for (const [blocks, mtu, size] of [["soh", 247, 128], ["stx", 23, 1024]] as const) {
        const clock = new ManualClock();
        const p = fromScenario({ sizeBytes: 3000, blocks }, clock);
        const run = await runFake(p, clock, { mtu });
        assert.ok(run.files[0].data.equals(generateFileContent(3000, 0)));
        assert.equal(run.files[0].blockSize, size, blocks);
        assertFrameAligned(run.notifications, mtu);
      }
    });

    it("crc: \"xmodem\" sends CRC-16/XMODEM blocks (a receiver fixed to XMODEM takes them)", async () => {
      const clock = new ManualClock();
      const p = fromScenario({ sizeBytes: 4000, crc: "xmodem" }, clock);
      const run = await runFake(p, clock, { receiver: { crc: "xmodem" } });
      assert.equal(run.error, null);
      assert.equal(run.files[0].crc, "xmodem");
      assert.ok(run.files[0].data.equals(generateFileContent(4000, 0)));
    });

    it("an ARC sender is refused by a receiver fixed to XMODEM (the CRC really differs)", async () => {
      const clock = new ManualClock();
      const p = fromScenario({ sizeBytes: 4000 }, clock);
      const run = await runFake(p, clock, { receiver: { crc: "xmodem", retries: 2 } });
      assert.equal(run.error?.code, "retries");
    });

    it("corruptBlocks: damaged first transmissions are NAKed and resent; the file is still byte-exact", async () => {
      const clock = new ManualClock();
      const p = fromScenario({ sizeBytes: 20_000, seed: 9, corruptBlocks: [0, 1, 7, 20] }, clock);
      const run = await runFake(p, clock, { mtu: 185 });
      assert.equal(run.error, null);
      assert.ok(run.files[0].data.equals(generateFileContent(20_000, 9)));
      assert.equal(run.files[0].retransmissions, 3, "blocks 1, 7 and 20 (block 0 is counted before the file starts)");
      assert.equal(p.stats.retransmissions, 4);
      assert.equal(run.written.filter((w) => w.length === 1 && w[0] === NAK).length, 5, "4 bad blocks + the first EOT");
    });

    it("resends a block after blockTimeoutMs when the ACK is lost, not before", async () => {
      const clock = new ManualClock();
      const p = fromScenario({ sizeBytes: 3000, blockTimeoutMs: 800 }, clock);
      // Write 3 is the ACK of data block 1 (C, ACK C, ACK): lost.
      const run = await runFake(p, clock, { dropWrite: (_b, i) => i === 2, timeoutMs: 2000 });
      assert.equal(run.error, null);
      assert.ok(run.files[0].data.equals(generateFileContent(3000, 0)));
      assert.equal(p.stats.retransmissions, 1);
      assert.equal(run.files[0].retransmissions, 1, "the repeat is ACKed and not stored twice");
    });

    it("a batch: files without xoss are sent one after another in one session", async () => {
      const clock = new ManualClock();
      const p = fromScenario({ files: { "a.bin": { sizeBytes: 300, seed: 1 }, "b.bin": { sizeBytes: 2048, seed: 2 } } }, clock);
      const run = await runFake(p, clock, { hangUp: true });
      assert.deepEqual(
        run.files.map((f) => f.name),
        ["a.bin", "b.bin"],
      );
      assert.ok(run.files[0].data.equals(generateFileContent(300, 1)));
      assert.ok(run.files[1].data.equals(generateFileContent(2048, 2)));
      assert.equal(p.stats.filesSent, 2);
    });

    it("serves a file from the scenario's directory under its base name, or `filename`", async () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "nus-ymodem-"));
      try {
        const content = Buffer.concat([generateFileContent(777, 5), Buffer.alloc(40)]); // ends in zeros: kept
        fs.mkdirSync(path.join(dir, "data"));
        fs.writeFileSync(path.join(dir, "data", "log.fit"), content);
        for (const [spec, name] of [[{ file: "data/log.fit" }, "log.fit"], [{ file: "data/log.fit", filename: "other.fit" }, "other.fit"]] as const) {
          const clock = new ManualClock();
          const run = await runFake(fromScenario(spec, clock, dir), clock);
          assert.equal(run.files[0].name, name);
          assert.ok(run.files[0].data.equals(content));
        }
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });

    it("serves one session per connection, and a fresh one on the next connection", async () => {
      const clock = new ManualClock();
      const p = fromScenario({ sizeBytes: 500 }, clock);
      const first = await runFake(p, clock, { hangUp: true });
      const second = await runFake(p, clock, { hangUp: true });
      assert.ok(first.files[0].data.equals(second.files[0].data));
      assert.equal(p.stats.sessions, 2);
    });

    it("gives up with CAN CAN after its retries when the receiver goes silent, and hangs up", async () => {
      const clock = new ManualClock();
      const p = fromScenario({ sizeBytes: 3000, blockTimeoutMs: 100 }, clock);
      // Every write after the first C is lost: the sender resends block 0 until it gives up.
      const run = await runFake(p, clock, { dropWrite: (_b, i) => i > 0, hangUp: true, timeoutMs: 60_000 });
      assert.deepEqual(run.notifications.at(-1), bytes(CAN, CAN));
      assert.equal(p.transfers[0].outcome, "aborted");
      assert.equal(p.stats.retransmissions, 10);
      assert.deepEqual(run.hangUps, [0x13]);
      assert.equal(run.error?.code, "cancelled-by-sender");
    });
  });

  describe("standard dialect", () => {
    it("sends `name NUL size ...`, CRC-16/XMODEM by default, 0x1A padding, 1K blocks the lrzsz way, an empty block 0, and stays connected", async () => {
      const clock = new ManualClock();
      // 2,503 bytes: 1K, 1K, then 455 bytes in four 128-byte blocks.
      const data = Buffer.concat([generateFileContent(2500, 4), Buffer.of(0x1a, 0x1a, 0x00)]);
      const p = new NusYmodemPeripheral({ address: ADDRESS, clock, dialect: "standard", files: [{ name: "x.bin", data }] });
      const run = await runFake(p, clock, { hangUp: true });
      assert.equal(run.error, null);
      assert.ok(run.files[0].data.equals(data), "a file ending in 0x1A and 0x00 stays whole");
      assert.equal(run.files[0].crc, "xmodem");
      assert.equal(run.files[0].blockSize, "mixed", "STX while more than 896 bytes remain, then SOH");
      const start = run.events.find((e) => e.type === "file-start");
      assert.ok(start?.type === "file-start" && start.dialect === "standard");
      assert.equal(run.notifications[0].subarray(3, 9).toString("latin1"), "x.bin\0");
      assert.deepEqual(run.hangUps, []);
      assert.equal(p.transfers[0].outcome, "done");
    });
  });

  describe("hostile senders (scenario options)", () => {
    /** A central that writes by hand: what the device sends back, frame by frame, with simulated time moving. */
    async function rawCentral(spec: JsonObject, mtu = 247): Promise<{ p: NusYmodemPeripheral; clock: ManualClock; write(...b: number[]): Promise<Buffer[]>; wait(ms: number): Promise<Buffer[]> }> {
      const clock = new ManualClock();
      const p = fromScenario(spec, clock);
      const central = new TestCentral(p);
      central.connect();
      central.discoverAll(mtu);
      central.subscribe(NUS_TX);
      let seen = 0;
      const fresh = async (): Promise<Buffer[]> => {
        for (let i = 0; i < 5; i++) await tick();
        const all = central.valuesOf(NUS_TX);
        const out = all.slice(seen).map((b) => Buffer.from(b));
        seen = all.length;
        return out;
      };
      return {
        p,
        clock,
        write: async (...b: number[]) => {
          central.write(NUS_RX, Buffer.from(b), true);
          return fresh();
        },
        wait: async (ms: number) => {
          for (let t = 0; t < ms; t += 50) {
            clock.advance(50);
            await tick();
          }
          return fresh();
        },
      };
    }
    const joined = (list: Buffer[]): Buffer => Buffer.concat(list);

    it("chatterMs: after block 0 is ACKed, no block, only one stray byte every chatterMs; CAN CAN stops it", async () => {
      const c = await rawCentral({ sizeBytes: 3000, chatterMs: 400 });
      const block0 = joined(await c.write(WANT_CRC));
      assert.equal(block0[0], SOH);
      assert.equal(block0[1], 0, "block 0 comes normally");
      assert.deepEqual(await c.write(ACK, WANT_CRC), [], "no data block after ACK C");
      const chatter = await c.wait(4000);
      assert.equal(chatter.length, 10, "one notification every 400 ms");
      assert.ok(
        chatter.every((n) => n.length === 1 && n[0] === 0x00),
        "each a single stray byte",
      );
      assert.equal(c.p.stats.blocksSent, 0, "no data block");
      await c.write(CAN, CAN);
      assert.deepEqual(await c.wait(2000), [], "quiet after CAN CAN");
      assert.equal(c.p.transfers[0]?.outcome, "aborted");
    });

    it("repeatBlock: \"data\" answers every ACK with the first data block again, \"block0\" with block 0", async () => {
      const data = await rawCentral({ sizeBytes: 3000, repeatBlock: "data" });
      await data.write(WANT_CRC);
      const first = joined(await data.write(ACK, WANT_CRC));
      assert.equal(first[0], STX);
      assert.equal(first[1], 1);
      for (let i = 0; i < 5; i++) assert.ok(joined(await data.write(ACK)).equals(first), `repeat ${i + 1} is block 1 again`);
      assert.equal(data.p.stats.blocksSent, 1);

      const zero = await rawCentral({ sizeBytes: 3000, repeatBlock: "block0" });
      const block0 = joined(await zero.write(WANT_CRC));
      for (let i = 0; i < 5; i++) assert.ok(joined(await zero.write(ACK, WANT_CRC)).equals(block0), `repeat ${i + 1} is block 0 again`);
      assert.equal(zero.p.stats.blocksSent, 0);
    });

    it("withholdEot: every data block, then silence where the EOT belongs (also when asked again)", async () => {
      const c = await rawCentral({ sizeBytes: 2000, withholdEot: true, blockTimeoutMs: 500 });
      await c.write(WANT_CRC);
      assert.equal(joined(await c.write(ACK, WANT_CRC))[1], 1);
      assert.equal(joined(await c.write(ACK))[1], 2);
      assert.deepEqual(await c.write(ACK), [], "no EOT after the last block");
      assert.deepEqual(await c.write(NAK), [], "nor after a NAK");
      const later = await c.wait(3000);
      assert.ok(!later.some((n) => n.includes(EOT)), "never an EOT, even on the sender's own timer");
      assert.equal(c.p.stats.bytesSent, 2000);
    });

    for (const dialect of ["seed", "standard"] as const) {
      it(`endlessBatch (${dialect}): announces the files again and again; a receiver bounded to 7 files stops it`, async () => {
        const clock = new ManualClock();
        const p = fromScenario({ dialect, endlessBatch: true, files: { "a.bin": { sizeBytes: 700, seed: 1 }, "b.bin": { sizeBytes: 300, seed: 2 } } }, clock);
        const run = await runFake(p, clock, { hangUp: true, receiver: { maxFiles: 7 } });
        assert.deepEqual(
          run.files.map((f) => f.name),
          ["a.bin", "b.bin", "a.bin", "b.bin", "a.bin", "b.bin", "a.bin"],
        );
        assert.ok(run.files.every((f) => f.data.equals(generateFileContent(f.name === "a.bin" ? 700 : 300, f.name === "a.bin" ? 1 : 2))));
        assert.match(run.error?.message ?? "", /more than 7 files/);
        assert.equal(p.stats.filesSent, 7);
      });
    }
  });

  describe("YMODEM-g (streaming)", () => {
    it("streams every block after G without ACKs, paced by the link (a few notifications queued, a frame or two built)", async () => {
      const clock = new ManualClock();
      const p = fromScenario({ sizeBytes: 60_000, seed: 11, streaming: true }, clock);
      const run = await runFake(p, clock, { receiver: { mode: "G" }, hold: true, releasePerRound: 3, hangUp: true });
      assert.equal(run.error, null);
      assert.ok(run.files[0].data.equals(generateFileContent(60_000, 11)));
      assert.deepEqual(
        run.written.map((w) => w.toString("hex")),
        ["47", "0647", "06"],
        "G, ACK G after block 0, ACK of the EOT: nothing per block",
      );
      assertFrameAligned(run.notifications, 247);
      assert.ok(run.maxHeld <= 12, `at most the window on the link (saw ${run.maxHeld})`);
      assert.ok(run.maxPendingTx <= 2 * 1029, `at most two frames built ahead (saw ${run.maxPendingTx})`);
      assert.equal(p.transfers[0].streaming, true);
      assert.deepEqual(run.hangUps, [0x13]);
    });

    it("framing: \"packed\" sends the frames back to back in full notifications", async () => {
      const clock = new ManualClock();
      const p = fromScenario({ sizeBytes: 60_000, seed: 11, streaming: true, framing: "packed" }, clock);
      const run = await runFake(p, clock, { receiver: { mode: "G" }, hold: true, releasePerRound: 3 });
      assert.ok(run.files[0].data.equals(generateFileContent(60_000, 11)));
      // Block 0 stands alone (it waits for an answer); the data stream and its EOT fill every notification.
      const stream = run.notifications.slice(1);
      assert.ok(stream.slice(0, -1).every((n) => n.length === 244), "full notifications");
      assert.equal(stream.reduce((sum, n) => sum + n.length, 0), 59 * 1029 + 1);
      assert.equal(stream.length, Math.ceil((59 * 1029 + 1) / 244));
    });

    it("without `streaming`, a G is ignored like by a sender that does not know it", async () => {
      const clock = new ManualClock();
      const p = fromScenario({ sizeBytes: 1000 }, clock);
      const run = await runFake(p, clock, { receiver: { mode: "G", retries: 3 }, timeoutMs: 1000 });
      assert.equal(run.error?.code, "retries");
      assert.equal(run.notifications.length, 0);
    });
  });

  describe("XOSS", () => {
    function xoss(clock: ManualClock, extra: JsonObject = {}): { p: NusYmodemPeripheral; central: TestCentral; control: () => Buffer[] } {
      const p = fromScenario({ xoss: true, files: { "20240501123000.fit": { sizeBytes: 5000, seed: 21 }, "Setting.json": { sizeBytes: 300, seed: 22 } }, ...extra }, clock);
      const central = new TestCentral(p);
      central.connect();
      central.discoverAll(247);
      central.subscribe(XOSS_CONTROL);
      return { p, central, control: () => central.valuesOf(XOSS_CONTROL) };
    }

    it("adds the control characteristic (write + notify) and answers status, disk space and bad frames", async () => {
      const clock = new ManualClock();
      const { p, central, control } = xoss(clock);
      assert.match(p.name, /^XOSS G-\d{6}$/);
      assert.equal(central.characteristic(XOSS_CONTROL).properties & 0x18, 0x18, "write + notify");
      central.write(XOSS_CONTROL, bytes(0xff, 0x00, 0xff));
      central.write(XOSS_CONTROL, bytes(0x09, 0x00, 0x09), true);
      central.write(XOSS_CONTROL, bytes(0x05, 0x41, 0x00)); // checksum wrong
      central.write(XOSS_CONTROL, encodeXossFrame(0x0d, Buffer.from("Setting.json"))); // delete: not supported
      central.write(XOSS_CONTROL, encodeXossFrame(XossOpcode.timeSet, bytes(1, 2, 3, 4))); // no answer, like a G+ Gen1
      await tick();
      const replies = control();
      assert.deepEqual(replies[0], bytes(0x04, 0x00, 0x04));
      assert.equal(replies[1][0], 0x0a);
      assert.equal(replies[1].subarray(1, -1).toString(), "8098/8104");
      assert.deepEqual(replies[1], encodeXossFrame(0x0a, Buffer.from("8098/8104")), "XOR checksum");
      assert.deepEqual(replies[2], bytes(0x15, 0x00, 0x15));
      assert.deepEqual(replies[3], bytes(0x11, 0x00, 0x11));
      assert.equal(replies.length, 4);
      assert.deepEqual(encodeXossFrame(XossOpcode.fetchFile, Buffer.from("filelist.txt")).at(-1), 0x57, "the example from xoss_sync");
    });

    it("serves a named file after `05 name`: `06 name`, YMODEM (seed dialect), then `04 00 04`; busy requests get `14`", async () => {
      const clock = new ManualClock();
      const { p, central, control } = xoss(clock);
      // C before any request: ignored, the device sends files only on request.
      central.write(NUS_RX, "C", true);
      central.write(XOSS_CONTROL, encodeXossFrame(XossOpcode.fetchFile, Buffer.from("20240501123000.fit")));
      await tick();
      assert.deepEqual(control()[0], encodeXossFrame(0x06, Buffer.from("20240501123000.fit")));
      assert.equal(p.busy, true);
      central.write(XOSS_CONTROL, encodeXossFrame(XossOpcode.status));
      await tick();
      assert.deepEqual(control()[1], bytes(0x14, 0x00, 0x14), "not idle");
      const run = await runFake(p, clock, { central });
      assert.equal(run.error, null);
      assert.equal(run.files[0].name, "20240501123000.fit");
      assert.ok(run.files[0].data.equals(generateFileContent(5000, 21)));
      assert.equal(run.files[0].crc, "arc");
      assert.deepEqual(control().at(-1), bytes(0x04, 0x00, 0x04), "idle after the final ACK");
      assert.equal(p.busy, false);
      assert.ok(p.isConnected, "a XOSS device stays connected for the next request");
    });

    it("answers `12 name` for a missing file and serves a generated filelist.txt", async () => {
      const clock = new ManualClock();
      const { central, control, p } = xoss(clock);
      central.write(XOSS_CONTROL, encodeXossFrame(XossOpcode.fetchFile, Buffer.from("nope.fit")));
      await tick();
      assert.deepEqual(control()[0], encodeXossFrame(0x12, Buffer.from("nope.fit")));
      assert.equal(p.busy, false);
      central.write(XOSS_CONTROL, encodeXossFrame(XossOpcode.fetchFile, Buffer.from(FILELIST_NAME)));
      await tick();
      const run = await runFake(p, clock, { central });
      assert.equal(run.files[0].name, FILELIST_NAME);
      assert.equal(run.files[0].data.toString(), "20240501123000.fit\nSetting.json\n");
    });

    it("`04 00 04` during a transfer cancels it and answers idle", async () => {
      const clock = new ManualClock();
      const { central, control, p } = xoss(clock);
      central.write(XOSS_CONTROL, encodeXossFrame(XossOpcode.fetchFile, Buffer.from("Setting.json")));
      central.write(XOSS_CONTROL, encodeXossFrame(XossOpcode.idle));
      await tick();
      assert.deepEqual(control().at(-1), bytes(0x04, 0x00, 0x04));
      assert.equal(p.busy, false);
      assert.equal(p.transfers[0].outcome, "aborted");
    });
  });

  describe("scenario validation", () => {
    const cases: [string, JsonObject, RegExp][] = [
      ["unknown option", { blockz: "soh" }, /peripherals\[0\]\.\(key 3\): unknown option/],
      ["file and sizeBytes", { file: "x", sizeBytes: 3 }, /peripherals\[0\]\.sizeBytes: cannot be combined with file/],
      ["files and filename", { files: { a: { sizeBytes: 1 } }, filename: "b" }, /peripherals\[0\]\.filename: cannot be combined with files/],
      ["negative size", { sizeBytes: -1 }, /peripherals\[0\]\.sizeBytes: must be between 0 and/],
      ["fractional seed", { sizeBytes: 10, seed: 1.5 }, /peripherals\[0\]\.seed: must be a whole number/],
      ["crc", { crc: "crc32" }, /peripherals\[0\]\.crc: must be one of "arc", "xmodem"/],
      ["blocks", { blocks: "4k" }, /peripherals\[0\]\.blocks: must be one of "soh", "stx", "auto"/],
      ["dialect", { dialect: "zmodem" }, /peripherals\[0\]\.dialect: must be one of "seed", "standard"/],
      ["corruptBlocks", { corruptBlocks: [1, -2] }, /peripherals\[0\]\.corruptBlocks\[1\]: must be a whole number/],
      ["streaming", { streaming: "yes" }, /peripherals\[0\]\.streaming: must be true or false/],
      ["framing", { framing: "tight" }, /peripherals\[0\]\.framing: must be one of "aligned", "packed"/],
      ["blockTimeoutMs", { blockTimeoutMs: 0 }, /peripherals\[0\]\.blockTimeoutMs: must be between 10 and 600000/],
      ["xoss without files", { xoss: true }, /peripherals\[0\]\.files: is required with xoss/],
      ["xoss with sizeBytes", { xoss: true, files: { a: "x" }, sizeBytes: 1 }, /peripherals\[0\]\.sizeBytes: cannot be combined with xoss/],
      ["xoss with file", { xoss: true, file: "x" }, /peripherals\[0\]\.file: cannot be combined with xoss/],
      ["xoss name too long", { xoss: true, files: { "a-very-long-file-name.fit": { sizeBytes: 1 } } }, /peripherals\[0\]\.files\.\(key 1\): must be at most 18 bytes/],
      ["files entry", { files: { a: 3 } }, /peripherals\[0\]\.files\.\(key 1\): must be a path or/],
      ["files entry key", { files: { a: { size: 3 } } }, /peripherals\[0\]\.files\.\(key 1\)\.\(key 1\): unknown option/],
      ["empty files", { files: {} }, /peripherals\[0\]\.files: must name at least one file/],
      ["unreadable file", { file: "does-not-exist.bin" }, /peripherals\[0\]\.file: cannot be read \(ENOENT: no such file or directory\)/],
      ["filename too long", { filename: "x".repeat(101) }, /peripherals\[0\]\.filename: must be at most 100/],
      ["filename with NUL", { filename: "a\0b" }, /peripherals\[0\]\.filename: must not contain NUL/],
      ["chatterMs", { chatterMs: 0 }, /peripherals\[0\]\.chatterMs: must be between 1 and 600000/],
      ["repeatBlock", { repeatBlock: "eot" }, /peripherals\[0\]\.repeatBlock: must be one of "block0", "data"/],
      ["endlessBatch", { endlessBatch: 1 }, /peripherals\[0\]\.endlessBatch: must be true or false/],
      ["withholdEot", { withholdEot: "yes" }, /peripherals\[0\]\.withholdEot: must be true or false/],
      ["two hostile behaviours", { chatterMs: 100, withholdEot: true }, /peripherals\[0\]\.withholdEot: cannot be combined with chatterMs/],
      ["endlessBatch with xoss", { xoss: true, files: { a: { sizeBytes: 1 } }, endlessBatch: true }, /peripherals\[0\]\.xoss: cannot be combined with endlessBatch/],
    ];
    for (const [what, spec, message] of cases) {
      it(`rejects ${what}`, () => {
        assert.throws(
          () => fromScenario(spec, new ManualClock(), os.tmpdir()),
          (e: unknown) => {
            assert.ok(e instanceof ScenarioError, String(e));
            assert.match(e.message, message);
            return true;
          },
        );
      });
    }

    describe("a file to serve must be a regular file (a FIFO would stop the event loop, /dev/zero never ends)", () => {
      const refused = (file: string, problem: RegExp): void => {
        assert.throws(
          () => fromScenario({ file }, new ManualClock(), os.tmpdir()),
          (e: unknown) => {
            assert.ok(e instanceof ScenarioError, String(e));
            assert.match(e.message, /peripherals\[0\]\.file: /);
            assert.match(e.message, problem);
            return true;
          },
        );
      };

      it("refuses a FIFO at once, even with a writer waiting to fill it", () => {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "nus-fifo-"));
        const fifo = path.join(dir, "log.fifo");
        execFileSync("mkfifo", [fifo]);
        // A loader that opens the FIFO gets these bytes from the writer (and, without a writer, would wait forever).
        const writer = spawn("sh", ["-c", 'printf %s data > "$0"', fifo], { stdio: "ignore" });
        try {
          refused(fifo, /is a FIFO, not a regular file/);
        } finally {
          writer.kill();
          fs.rmSync(dir, { recursive: true, force: true });
        }
      });

      it("refuses a character device such as /dev/zero", () => {
        refused("/dev/zero", /is a character device, not a regular file/);
      });

      it("refuses a directory", () => {
        refused(os.tmpdir(), /is a directory, not a regular file/);
      });
    });

    it("is a registered kind: a scenario with defaults builds", () => {
      const sim = new Simulation(parseScenario({ peripherals: [{ kind: "nus-ymodem", address: ADDRESS }] }, ""), { timeScale: 1 });
      try {
        const p = sim.controller.peripheral(ADDRESS);
        assert.ok(p instanceof NusYmodemPeripheral);
        assert.equal(p.addressType, "random");
        assert.equal(p.files[0].name, "test.bin");
        assert.equal(p.files[0].data.length, 100_000);
      } finally {
        sim.close();
      }
    });
  });

  describe("through noble and the virtual controller", function () {
    /** Simulated time runs this much faster: the link's timing holds, tests stay quick. */
    const TIME_SCALE = 50;
    let sim: Simulation | undefined;
    let central: SimNoble | undefined;

    afterEach(() => {
      central?.dispose();
      central = undefined;
      sim?.close();
      sim = undefined;
    });

    function simulate(peripheral: JsonObject, link: JsonObject = {}): { sim: Simulation; p: NusYmodemPeripheral } {
      sim = new Simulation(parseScenario({ link, peripherals: [{ kind: "nus-ymodem", address: ADDRESS, ...peripheral }] }, ""), { timeScale: TIME_SCALE });
      central = nobleFor(sim);
      const p = sim.controller.peripheral(ADDRESS);
      assert.ok(p instanceof NusYmodemPeripheral);
      return { sim, p };
    }

    it("downloads the default seed server's file byte-exact at MTU 247 (STX), frame-aligned", async () => {
      const { sim: s, p } = simulate({});
      assert.ok(central);
      const conn = await connectNus(central.noble, ADDRESS, 247);
      const run = await receiveYmodem(conn, s.clock);
      assert.equal(run.error, null);
      assert.equal(run.files[0].name, "test.bin");
      assert.ok(run.files[0].data.equals(generateFileContent(100_000, 0)));
      assert.equal(run.files[0].blockSize, 1024);
      assert.equal(run.files[0].crc, "arc");
      assertFrameAligned(run.notifications, 247);
      assert.equal(p.transfers[0]?.outcome, "done");
      assert.deepEqual(p.violations, []);
    });

    it("at MTU 23 (the link's maximum), SOH data blocks in 20-byte notifications, with a corrupted block recovered", async () => {
      const { sim: s, p } = simulate({ sizeBytes: 5000, seed: 8, corruptBlocks: [3] }, { maxMtu: 23, dataLength: 27 });
      assert.ok(central);
      const conn = await connectNus(central.noble, ADDRESS, 247);
      const run = await receiveYmodem(conn, s.clock);
      assert.equal(run.error, null);
      assert.ok(run.files[0].data.equals(generateFileContent(5000, 8)));
      assert.equal(run.files[0].blockSize, 128);
      assert.equal(run.files[0].retransmissions, 1);
      assertFrameAligned(run.notifications, 23);
      assert.equal(p.transfers[0].mtu, 23);
    });

    it("YMODEM-g over the link: byte-exact, no per-block ACKs, the TX window never exceeded", async () => {
      const { sim: s, p } = simulate({ sizeBytes: 200_000, seed: 12, streaming: true });
      assert.ok(central);
      const conn = await connectNus(central.noble, ADDRESS, 247);
      const run = await receiveYmodem(conn, s.clock, { mode: "G" });
      assert.equal(run.error, null);
      assert.ok(run.files[0].data.equals(generateFileContent(200_000, 12)));
      assert.deepEqual(run.written.map((w) => w.toString("hex")), ["47", "0647", "06"]);
      const stats = p.stats;
      assert.ok(stats.maxQueuedAttPdus <= 12, `ATT PDUs queued on the link: ${stats.maxQueuedAttPdus}`);
      assert.ok(stats.maxPendingTxBytes <= 2 * 1029, `bytes built ahead: ${stats.maxPendingTxBytes}`);
      // Physics: 6 PDUs of 251 bytes at most per 7.5 ms event (fewer by air time) — the transfer cannot be faster.
      const minMs = (Math.ceil(200_000 / 1024) * 5 * 7.5) / 6;
      assert.ok(run.durationMs >= minMs, `${run.durationMs} ms simulated ≥ ${minMs} ms`);
    });

    it("XOSS over noble: request a file by name, receive it, see the device go idle", async () => {
      const { sim: s, p } = simulate({ xoss: true, files: { "20240501123000.fit": { sizeBytes: 9000, seed: 5 } } });
      assert.ok(central);
      const conn = await connectNus(central.noble, ADDRESS, 247);
      assert.ok(conn.control, "control characteristic discovered");
      assert.deepEqual(await xossRequest(conn, encodeXossFrame(XossOpcode.status)), bytes(0x04, 0x00, 0x04));
      assert.deepEqual(await xossRequest(conn, encodeXossFrame(XossOpcode.fetchFile, Buffer.from("missing.fit"))), encodeXossFrame(0x12, Buffer.from("missing.fit")));
      const idle = new Promise<Buffer>((resolve) => conn.control?.on("data", (d: Buffer) => d[0] === 0x04 && resolve(d)));
      assert.deepEqual(await xossRequest(conn, encodeXossFrame(XossOpcode.fetchFile, Buffer.from("20240501123000.fit"))), encodeXossFrame(0x06, Buffer.from("20240501123000.fit")));
      const run = await receiveYmodem(conn, s.clock);
      assert.ok(run.files[0].data.equals(generateFileContent(9000, 5)));
      assert.deepEqual(await idle, bytes(0x04, 0x00, 0x04));
      assert.equal(p.transfers[0].outcome, "done");
    });
  });
});
