/**
 * The nus-ymodem-receiver virtual peripheral: a device that receives YMODEM on NUS. The central side is noble's real
 * HCI stack on the virtual controller with the pure YmodemSender writing RX without response in MTU − 3 pieces (what
 * the nus-ymodem-send node does, minus Node-RED); the receiver's C/G, ACK, NAK and CAN come back as TX notifications.
 */
import assert from "node:assert/strict";
import type { Noble } from "@stoprocent/noble";
import type { Clock, Timer } from "../../src/protocol/clock";
import fc from "fast-check";
import { NUS_RX, NUS_TX } from "../../src/protocol/nus";
import { ACK, CAN, EOT, NAK, SOH, WANT_CRC, WANT_G, type YmodemDialect } from "../../src/protocol/ymodem-block";
import { frame, YmodemSender, type YmodemSenderFile, type YmodemSenderOptions } from "../../src/protocol/ymodem-sender";
import { generateFileContent } from "../../src/sim/peripherals/file-content";
import { createPeripheral } from "../../src/sim/peripherals/index";
import { NusYmodemReceiverPeripheral, type NusYmodemReceiverTransfer, type ReceivedYmodemFile } from "../../src/sim/peripherals/nus-ymodem-receiver";
import { parseScenario, Simulation } from "../../src/sim/scenario";
import { DEFAULT_LINK } from "../../src/sim/types";
import { ScenarioError, type JsonObject } from "../../src/sim/validate";
import { TestCentral } from "../support/fake-central";
import { ManualClock } from "../support/manual-clock";
import { connectNus, nobleFor, type NusConnection, type SimNoble } from "../support/nus-noble";

const ADDRESS = "e3:c3:5c:00:00:21";
/** Simulated time runs this much faster: the link's timing holds, tests stay quick. */
const TIME_SCALE = 50;

interface SendRun {
  sender: YmodemSender;
  /** How the receiver saw the transfer end. */
  transfer: NusYmodemReceiverTransfer;
  /** Files the receiver completed during this transfer. */
  files: ReceivedYmodemFile[];
  /** Every TX notification from the receiver, in order. */
  notifications: Buffer[];
}

/**
 * Sends `files` with a fresh YmodemSender over an established NUS connection: the receiver's notifications feed the
 * sender, its frames are written to RX without response in MTU − 3 pieces, in order (in G mode built one at a time as
 * the writes go out). Resolves when the receiver reports the transfer's end and the sender has finished.
 */
async function sendYmodem(conn: NusConnection, p: NusYmodemReceiverPeripheral, clock: Clock, options: Partial<YmodemSenderOptions> & { files: YmodemSenderFile[] }): Promise<SendRun> {
  const sender = new YmodemSender({
    dialect: p.dialect,
    crc: p.dialect === "seed" ? "arc" : "xmodem",
    blocks: "auto",
    streaming: true,
    maxBurst: 2,
    retries: 10,
    ...options,
  });
  const notifications: Buffer[] = [];
  const files: ReceivedYmodemFile[] = [];
  const queue: Buffer[] = [];
  let pumping = false;
  let timer = null as Timer | null;
  let senderSettled: () => void = () => undefined;
  const senderDone = new Promise<void>((resolve) => (senderSettled = resolve));
  const checkSender = (): void => {
    if (sender.state === "done" || sender.state === "aborted") {
      timer?.cancel();
      senderSettled();
    }
  };
  const armTimer = (): void => {
    timer?.cancel();
    timer = clock.setTimeout(() => {
      queue.push(...sender.timeout());
      void pump();
      armTimer();
    }, 10_000);
  };
  const pump = async (): Promise<void> => {
    if (pumping) return;
    pumping = true;
    try {
      for (;;) {
        const frame = queue.shift() ?? sender.nextFrames(1)[0];
        if (frame === undefined) break;
        const room = p.mtu - 3;
        for (let at = 0; at < frame.length; at += room) await conn.rx.writeAsync(frame.subarray(at, at + room), true);
      }
    } finally {
      pumping = false;
    }
    checkSender();
  };
  const onData = (data: Buffer): void => {
    notifications.push(Buffer.from(data));
    queue.push(...sender.receive(data));
    armTimer();
    void pump();
    checkSender();
  };
  const onFile = (file: ReceivedYmodemFile): number => files.push(file);
  const ended = new Promise<NusYmodemReceiverTransfer>((resolve) => p.events.once("transfer", resolve));
  p.events.on("file", onFile);
  conn.tx.on("data", onData);
  armTimer();
  try {
    const transfer = await ended;
    await senderDone;
    return { sender, transfer, files, notifications };
  } finally {
    timer?.cancel();
    conn.tx.removeListener("data", onData);
    p.events.removeListener("file", onFile);
  }
}

function contents(size: number, seed: number): Buffer {
  return generateFileContent(size, seed);
}

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
const count = (bytes: Buffer, value: number): number => bytes.reduce((n, b) => n + (b === value ? 1 : 0), 0);

/** A central that writes RX by hand on a manual clock: what the receiver answers, with simulated time moving exactly. */
function rawCentral(spec: JsonObject = {}): { p: NusYmodemReceiverPeripheral; central: TestCentral; write(bytes: Buffer): Promise<Buffer>; wait(ms: number): Promise<Buffer> } {
  const clock = new ManualClock();
  const p = createPeripheral({ kind: "nus-ymodem-receiver", address: ADDRESS, ...spec }, "peripherals[0]", { clock, link: DEFAULT_LINK, baseDir: "" });
  assert.ok(p instanceof NusYmodemReceiverPeripheral);
  const central = new TestCentral(p);
  central.connect();
  central.discoverAll(247);
  let seen = 0;
  const fresh = async (): Promise<Buffer> => {
    for (let i = 0; i < 5; i++) await tick();
    const all = central.valuesOf(NUS_TX);
    const out = Buffer.concat(all.slice(seen));
    seen = all.length;
    return out;
  };
  return {
    p,
    central,
    write: async (bytes: Buffer) => {
      central.write(NUS_RX, bytes, true);
      return fresh();
    },
    wait: async (ms: number) => {
      for (let t = 0; t < ms; t += 10) {
        clock.advance(10);
        await tick();
      }
      return fresh();
    },
  };
}

/** A standard block 0 for `name` of `size` bytes (CRC-16/XMODEM). */
function block0(name: string, size: number): Buffer {
  const data = Buffer.alloc(128);
  Buffer.from(`${name}\0${size} 0 100644`, "latin1").copy(data);
  return frame(SOH, 0, data, "xmodem");
}

describe("sim: nus-ymodem-receiver peripheral", () => {
  let sim: Simulation | undefined;
  let central: SimNoble | undefined;

  afterEach(() => {
    central?.dispose();
    central = undefined;
    sim?.close();
    sim = undefined;
  });

  function simulate(peripheral: JsonObject, link: JsonObject = {}): { sim: Simulation; p: NusYmodemReceiverPeripheral; noble: Noble } {
    sim = new Simulation(parseScenario({ link, peripherals: [{ kind: "nus-ymodem-receiver", address: ADDRESS, ...peripheral }] }, ""), { timeScale: TIME_SCALE });
    central = nobleFor(sim);
    const p = sim.controller.peripheral(ADDRESS);
    assert.ok(p instanceof NusYmodemReceiverPeripheral);
    return { sim, p, noble: central.noble };
  }

  async function connected(peripheral: JsonObject, link: JsonObject = {}): Promise<{ sim: Simulation; p: NusYmodemReceiverPeripheral; conn: NusConnection }> {
    const s = simulate(peripheral, link);
    const conn = await connectNus(s.noble, ADDRESS, 247);
    await conn.tx.subscribeAsync();
    return { sim: s.sim, p: s.p, conn };
  }

  it("receives a 1000-byte file from a standard YMODEM sender byte-exact (C, ACK per block, empty block 0 ends the batch)", async () => {
    const { sim: s, p, conn } = await connected({});
    const data = contents(1000, 1);
    const run = await sendYmodem(conn, p, s.clock, { files: [{ name: "config.json", data }] });
    assert.equal(run.transfer.outcome, "completed");
    assert.deepEqual(run.transfer.files, ["config.json"]);
    assert.equal(run.sender.state, "done");
    assert.equal(p.received.length, 1);
    assert.equal(p.received[0].name, "config.json");
    assert.equal(p.received[0].size, 1000);
    assert.ok(p.received[0].data.equals(data));
    assert.deepEqual(run.files, p.received);
    assert.equal(run.notifications[0][0], WANT_CRC, "the receiver starts with C");
    assert.equal(run.transfer.mtu, 247);
    assert.equal(run.transfer.mode, "C");
    assert.deepEqual(p.violations, []);
  });

  const SIZES = [0, 1, 127, 128, 1000, 1025, 70_000];
  for (const dialect of ["standard", "seed"] as const) {
    for (const start of ["C", "G"] as const) {
      it(`${dialect} dialect, ${start}: sizes ${SIZES.join(", ")} one transfer after another, each byte-exact`, async () => {
        const { sim: s, p, conn } = await connected({ dialect, start });
        for (const [i, size] of SIZES.entries()) {
          const data = contents(size, 100 + i);
          const name = `file-${size}.bin`;
          const run = await sendYmodem(conn, p, s.clock, { files: [{ name, data }] });
          assert.equal(run.transfer.outcome, "completed", `size ${size}: ${run.transfer.reason}`);
          assert.equal(run.sender.state, "done");
          assert.deepEqual(run.transfer.files, [name]);
          assert.equal(run.files.length, 1);
          assert.equal(run.files[0].name, name);
          assert.equal(run.files[0].size, size);
          assert.ok(run.files[0].data.equals(data), `size ${size} byte-exact`);
          const answers = Buffer.concat(run.notifications);
          assert.equal(count(answers, NAK), start === "C" ? 1 : 0, "NAK only in the EOT handshake (C), none in G");
          if (start === "G") {
            // YMODEM-g: no ACK per data block; ACKs for block 0, the EOT and (standard) the end of the batch only.
            assert.ok(count(answers, ACK) <= 3, `ACKs in G mode: ${count(answers, ACK)}`);
            assert.ok(answers.includes(WANT_G) && !answers.includes(WANT_CRC));
          } else {
            assert.ok(count(answers, ACK) >= run.sender.stats.blocksSent + 2, "an ACK per data block, block 0 and EOT");
          }
        }
        assert.deepEqual(
          p.received.map((f) => f.size),
          SIZES,
        );
        assert.equal(p.stats.transfers, SIZES.length);
        assert.deepEqual(p.violations, []);
      });
    }
  }

  for (const dialect of ["standard", "seed"] as const) {
    it(`${dialect}, C: corruptBlocks (block 0 and data blocks) are NAKed on first reception and resent; the file stays byte-exact`, async () => {
      const { sim: s, p, conn } = await connected({ dialect, corruptBlocks: [0, 1, 3, 40] });
      const data = contents(4000, 7);
      const run = await sendYmodem(conn, p, s.clock, { files: [{ name: "fw.bin", data }], blocks: "soh" });
      assert.equal(run.transfer.outcome, "completed");
      assert.ok(p.received[0].data.equals(data));
      assert.equal(run.transfer.corrupted, 3, "block 40 does not exist in a 32-block file; the end-of-batch block 0 is not damaged");
      assert.equal(run.sender.stats.retransmissions, 3, "the sender resent the three damaged blocks");
      assert.equal(count(Buffer.concat(run.notifications), NAK), 3 + 1, "three NAKs and the EOT handshake's");
      assert.equal(run.transfer.retransmissions, 2, "the data blocks' NAKs count to the file");
      // Per file: the next transfer's blocks are damaged again on their first reception, and recovered again.
      const again = await sendYmodem(conn, p, s.clock, { files: [{ name: "fw2.bin", data }], blocks: "soh" });
      assert.equal(again.transfer.corrupted, 3);
      assert.ok(p.received[1].data.equals(data));
    });
  }

  it("G: a corrupted data block ends the transfer with CAN CAN, as YMODEM-g receivers do; the next transfer works", async () => {
    const { sim: s, p, conn } = await connected({ start: "G", corruptBlocks: [2] });
    const run = await sendYmodem(conn, p, s.clock, { files: [{ name: "a.bin", data: contents(8000, 3) }] });
    assert.equal(run.transfer.outcome, "failed");
    assert.equal(run.transfer.code, "bad-block");
    assert.match(run.transfer.reason ?? "", /YMODEM-g/);
    assert.equal(run.sender.state, "aborted", "the sender got CAN CAN");
    assert.equal(p.received.length, 0);
    // After a quiet blockTimeout the receiver listens again; block 2 of the next file is damaged once more, so
    // a file of one block goes through.
    const data = contents(1000, 4);
    const next = await sendYmodem(conn, p, s.clock, { files: [{ name: "b.bin", data }] });
    assert.equal(next.transfer.outcome, "completed");
    assert.ok(p.received[0].data.equals(data));
  });

  it("at MTU 23 (the link's maximum): blocks arrive in 20-byte writes and are reassembled, a corrupted one recovered", async () => {
    const { sim: s, p, conn } = await connected({ dialect: "seed", corruptBlocks: [2] }, { maxMtu: 23, dataLength: 27 });
    assert.equal(p.mtu, 23);
    const data = contents(3000, 5);
    const run = await sendYmodem(conn, p, s.clock, { files: [{ name: "small-mtu.bin", data }], blocks: "soh" });
    assert.equal(run.transfer.outcome, "completed");
    assert.equal(run.transfer.mtu, 23);
    assert.equal(run.transfer.corrupted, 1);
    assert.ok(p.received[0].data.equals(data));
    assert.ok(p.stats.rxBytes >= 133 * 25, "every block went through RX");
  });

  it("a standard batch of two files in one transfer: C again after each file, the empty block 0 ends it", async () => {
    const { sim: s, p, conn } = await connected({});
    const files = [
      { name: "one.txt", data: contents(3000, 1) },
      { name: "two.txt", data: contents(10, 2) },
    ];
    const run = await sendYmodem(conn, p, s.clock, { files });
    assert.equal(run.transfer.outcome, "completed");
    assert.deepEqual(run.transfer.files, ["one.txt", "two.txt"]);
    assert.deepEqual(
      p.received.map((f) => [f.name, f.data.equals(files.find((x) => x.name === f.name)?.data ?? Buffer.alloc(1))]),
      [
        ["one.txt", true],
        ["two.txt", true],
      ],
    );
  });

  it("property: random sizes and contents arrive byte-exact (seed dialect, C)", async () => {
    const { sim: s, p, conn } = await connected({ dialect: "seed" });
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ minLength: 0, maxLength: 6000 }), fc.constantFrom<"soh" | "stx" | "auto">("soh", "stx", "auto"), async (bytes, blocks) => {
        const data = Buffer.from(bytes);
        const run = await sendYmodem(conn, p, s.clock, { files: [{ name: "prop.bin", data }], blocks });
        assert.equal(run.transfer.outcome, "completed");
        assert.ok(run.files[0].data.equals(data));
      }),
      { numRuns: 25 },
    );
  });

  describe("like a real receiver (exact simulated time)", () => {
    it("repeats C every blockTimeoutMs until the sender starts, a bounded number of times, then gives up and falls silent", async () => {
      const c = rawCentral({ blockTimeoutMs: 1000, retries: 3 });
      assert.deepEqual([...(await c.wait(10))], [], "nothing before notifications are enabled");
      c.central.subscribe(NUS_TX);
      assert.deepEqual([...(await c.wait(10))], [WANT_CRC]);
      assert.deepEqual([...(await c.wait(990))], [WANT_CRC], "again after 1000 ms");
      assert.deepEqual([...(await c.wait(2000))], [WANT_CRC, WANT_CRC]);
      assert.deepEqual([...(await c.wait(1000))], [CAN, CAN], "after 4000 ms without a sender it gives up");
      assert.deepEqual([...(await c.wait(20_000))], [], "and stays silent");
      assert.equal(c.p.listening, false);
      assert.equal(c.p.lastTransfer, null, "no sender, no transfer");
      // Notifications enabled again: a new C.
      c.central.unsubscribe(NUS_TX);
      c.central.subscribe(NUS_TX);
      assert.deepEqual([...(await c.wait(10))], [WANT_CRC]);
    });

    it("NAKs a damaged block, ACKs a repeated block without storing it twice, NAK then ACK for the EOT", async () => {
      const c = rawCentral();
      c.central.subscribe(NUS_TX);
      await c.wait(10);
      const data = contents(300, 9);
      const blocks = [0, 128, 256].map((at, i) => {
        const payload = Buffer.alloc(128, 0x1a);
        data.copy(payload, 0, at, Math.min(at + 128, data.length));
        return frame(SOH, i + 1, payload, "xmodem");
      });
      assert.deepEqual([...(await c.write(block0("r.bin", 300)))], [ACK, WANT_CRC]);
      const damaged = Buffer.from(blocks[0]);
      damaged[50] ^= 0x01;
      assert.deepEqual([...(await c.write(damaged))], [NAK]);
      assert.deepEqual([...(await c.write(blocks[0]))], [ACK]);
      assert.deepEqual([...(await c.write(blocks[0]))], [ACK], "a repeat of the previous block is ACKed");
      assert.deepEqual([...(await c.write(blocks[1]))], [ACK]);
      assert.deepEqual([...(await c.write(blocks[2]))], [ACK]);
      assert.deepEqual([...(await c.write(Buffer.of(EOT)))], [NAK]);
      assert.deepEqual([...(await c.write(Buffer.of(EOT)))], [ACK, WANT_CRC]);
      assert.deepEqual([...(await c.write(frame(SOH, 0, Buffer.alloc(128), "xmodem")))], [ACK, WANT_CRC], "batch end ACKed; listening again");
      assert.equal(c.p.received.length, 1);
      assert.ok(c.p.received[0].data.equals(data), "stored once, cut to the announced size");
      assert.equal(c.p.lastTransfer?.outcome, "completed");
      assert.equal(c.p.lastTransfer?.retransmissions, 2, "one NAK, one repeated block");
    });

    it("a block split over many writes is reassembled; after a NAKed block the rest of that write is stale", async () => {
      const c = rawCentral();
      c.central.subscribe(NUS_TX);
      await c.wait(10);
      const b0 = block0("s.bin", 10);
      for (let at = 0; at < b0.length - 20; at += 20) assert.deepEqual([...(await c.write(b0.subarray(at, at + 20)))], []);
      assert.deepEqual([...(await c.write(b0.subarray(120)))], [ACK, WANT_CRC]);
      const good = frame(SOH, 1, Buffer.concat([contents(10, 1), Buffer.alloc(118, 0x1a)]), "xmodem");
      const bad = Buffer.from(good);
      bad[3] ^= 0xff;
      assert.deepEqual([...(await c.write(Buffer.concat([bad, good.subarray(0, 100)])))], [NAK], "the rest of the write was sent before the NAK");
      assert.deepEqual([...(await c.write(good))], [ACK]);
    });

    it("a sender announcing more than maxBytes gets CAN CAN before any data is stored", async () => {
      const c = rawCentral({ maxBytes: 1000 });
      c.central.subscribe(NUS_TX);
      await c.wait(10);
      assert.deepEqual([...(await c.write(block0("big.bin", 1001)))], [CAN, CAN]);
      assert.equal(c.p.lastTransfer?.outcome, "failed");
      assert.equal(c.p.lastTransfer?.code, "too-large");
      assert.deepEqual(c.p.received, []);
      // Stale blocks keep it quiet; a quiet blockTimeout later it listens again.
      assert.deepEqual([...(await c.wait(2000))], []);
      assert.deepEqual([...(await c.write(Buffer.alloc(133, 0x55)))], []);
      assert.deepEqual([...(await c.wait(2990))], []);
      assert.deepEqual([...(await c.wait(20))], [WANT_CRC]);
    });

    it("CAN CAN from the sender: the transfer is cancelled by the sender", async () => {
      const c = rawCentral({ dialect: "seed" });
      c.central.subscribe(NUS_TX);
      await c.wait(10);
      const data = Buffer.alloc(128);
      Buffer.from("c.bin 5000").copy(data);
      assert.deepEqual([...(await c.write(frame(SOH, 0, data, "arc")))], [ACK, WANT_CRC]);
      await c.write(Buffer.of(CAN, CAN));
      assert.equal(c.p.lastTransfer?.outcome, "cancelled");
      assert.equal(c.p.lastTransfer?.code, "cancelled-by-sender");
    });

    it("a link lost mid-file fails the transfer (disconnected); the next connection starts afresh", async () => {
      const c = rawCentral();
      c.central.subscribe(NUS_TX);
      await c.wait(10);
      await c.write(block0("lost.bin", 5000));
      c.central.disconnect();
      await c.wait(10);
      assert.equal(c.p.lastTransfer?.outcome, "failed");
      assert.equal(c.p.lastTransfer?.code, "disconnected");
      assert.equal(c.p.listening, false);
      const again = new TestCentral(c.p);
      again.connect();
      again.discoverAll(247);
      again.subscribe(NUS_TX);
      await tick();
      assert.deepEqual(
        again.valuesOf(NUS_TX).map((v) => [...v]),
        [[WANT_CRC]],
      );
    });

    it("keeps at most maxBytes of received files (the oldest dropped first), counting every file", async () => {
      const c = rawCentral({ maxBytes: 300, dialect: "seed" });
      c.central.subscribe(NUS_TX);
      await c.wait(10);
      for (const name of ["a", "b", "c"]) {
        const head = Buffer.alloc(128);
        Buffer.from(`${name} 128`).copy(head);
        await c.write(frame(SOH, 0, head, "arc"));
        await c.write(frame(SOH, 1, Buffer.alloc(128, name.charCodeAt(0)), "arc"));
        await c.write(Buffer.of(EOT));
        await c.write(Buffer.of(EOT));
      }
      assert.deepEqual(
        c.p.received.map((f) => f.name),
        ["b", "c"],
      );
      assert.equal(c.p.stats.filesReceived, 3);
    });
  });

  describe("scenario validation", () => {
    const cases: [string, JsonObject, string, string][] = [
      ["dialect", { dialect: "zmodem" }, "peripherals[0].dialect", "zmodem"],
      ["start", { start: "X-start" }, "peripherals[0].start", "X-start"],
      ["corruptBlocks", { corruptBlocks: [1, -7] }, "peripherals[0].corruptBlocks[1]", "-7"],
      ["corruptBlocks type", { corruptBlocks: ["b9"] }, "peripherals[0].corruptBlocks[0]", "b9"],
      ["blockTimeoutMs", { blockTimeoutMs: 5 }, "peripherals[0].blockTimeoutMs", "must be between"],
      ["retries", { retries: 2.5 }, "peripherals[0].retries", "2.5"],
      ["maxBytes", { maxBytes: "lots" }, "peripherals[0].maxBytes", "lots"],
      ["txWindow", { txWindow: 0 }, "peripherals[0].txWindow", "must be between"],
      ["unknown option", { sizeBytes: 5 }, "peripherals[0].(key 3)", "sizeBytes"],
      ["maxMtu (the common serverMtu is the option)", { maxMtu: 100 }, "peripherals[0].(key 3)", "100"],
    ];
    for (const [what, spec, field, secret] of cases) {
      it(`rejects ${what}, naming the field and not quoting the value`, () => {
        assert.throws(
          () => createPeripheral({ kind: "nus-ymodem-receiver", address: ADDRESS, ...spec }, "peripherals[0]", { clock: new ManualClock(), link: DEFAULT_LINK, baseDir: "" }),
          (e: unknown) => {
            assert.ok(e instanceof ScenarioError, String(e));
            assert.equal(e.field, field);
            if (!secret.startsWith("must")) assert.ok(!e.problem.includes(secret), e.message);
            else assert.match(e.problem, new RegExp(secret));
            return true;
          },
        );
      });
    }

    it("takes every documented option", () => {
      const spec = { dialect: "seed", start: "G", corruptBlocks: [1], blockTimeoutMs: 500, retries: 2, maxBytes: 4096, txWindow: 4, serverMtu: 100, name: "loader" };
      const p = createPeripheral({ kind: "nus-ymodem-receiver", address: ADDRESS, ...spec }, "peripherals[0]", { clock: new ManualClock(), link: DEFAULT_LINK, baseDir: "" });
      assert.ok(p instanceof NusYmodemReceiverPeripheral);
      assert.deepEqual([p.dialect, p.startMode, p.name], ["seed" as YmodemDialect, "G", "loader"]);
    });
  });

  it("is a registered scenario kind with documented defaults", () => {
    const p = createPeripheral({ kind: "nus-ymodem-receiver", address: ADDRESS }, "peripherals[0]", { clock: new ManualClock(), link: DEFAULT_LINK, baseDir: "" });
    assert.ok(p instanceof NusYmodemReceiverPeripheral);
    assert.deepEqual([p.kind, p.name, p.addressType, p.dialect, p.startMode], ["nus-ymodem-receiver", "mpy-nus", "random", "standard", "C"]);
    assert.equal(p.lastTransfer, null);
    assert.deepEqual(p.received, []);
  });
});
