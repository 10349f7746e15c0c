/**
 * The NUS upload on its own, without Node-RED or a radio: a lease that hands over a fake NUS session whose device is
 * the pure YmodemReceiver, and a manual clock for the block timeouts. The fake's writes complete on a later turn of
 * the event loop, as noble's write-command callback comes when the controller took the packet.
 */
import assert from "node:assert/strict";
import { NusUpload, UploadError, type NusUploadSettings, type UploadResult, type UploadStep } from "../../src/ble/nus-upload";
import type { DeviceSession, GattService, Lease, LeaseOptions, PeripheralInfo } from "../../src/ble/pool";
import { NUS_RX, NUS_SERVICE, NUS_TX } from "../../src/protocol/nus";
import { YmodemReceiver, type YmodemEvent } from "../../src/protocol/ymodem";
import { CAN, CPMEOF, SOH, STX } from "../../src/protocol/ymodem-block";
import { ManualClock } from "../support/manual-clock";

const ADDRESS = "e3:c3:5c:00:00:01";
const SETTINGS: NusUploadSettings = { mtu: 247, dialect: "standard", blockSize: 1024, blockTimeout: 1000, retries: 2 };

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Turns of the event loop until `cond` holds (a bounded number: a test that waits for nothing fails). */
async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 10000 && !cond(); i++) await turn();
  assert.ok(cond(), `never happened: ${what}`);
}

interface ReceivedFile {
  name: string;
  data: Buffer;
  retransmissions: number;
}

/**
 * A connected NUS device running a YMODEM receiver: RX bytes feed it, its answers come back as TX notifications
 * on a later turn. `answer` may drop or change an answer; `mangle` may change RX bytes before the receiver sees them.
 */
class FakeReceiverSession implements DeviceSession {
  readonly info: PeripheralInfo = { address: ADDRESS, addressType: "random", name: "mpy-nus", rssi: -40, serviceUuids: [] };
  readonly mtu: number;
  readonly writes: { bytes: Buffer; withoutResponse: boolean }[] = [];
  readonly files: ReceivedFile[] = [];
  readonly events: YmodemEvent[] = [];
  /** Most writes outstanding at once. */
  maxOutstanding = 0;
  started = false;
  answer: (bytes: Buffer) => Buffer | null = (b) => b;
  mangle: (bytes: Buffer) => Buffer = (b) => b;
  readonly receiver: YmodemReceiver;
  private outstanding = 0;
  private readonly controller = new AbortController();
  private listener: ((value: Buffer) => void) | null = null;

  constructor(options: { mode?: "C" | "G"; mtu?: number; nus?: boolean } = {}) {
    this.mtu = options.mtu ?? 247;
    this.receiver = new YmodemReceiver({ crc: "auto", mode: options.mode ?? "C", maxBytes: 1 << 20, retries: 5 });
    this.nus = options.nus !== false;
  }

  private readonly nus: boolean;

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  get subscribed(): boolean {
    return this.listener !== null;
  }

  hasCharacteristic(service: string, characteristic: string): boolean {
    return this.nus && service === NUS_SERVICE && (characteristic === NUS_RX || characteristic === NUS_TX);
  }

  services(): GattService[] {
    if (!this.nus) return [];
    return [{ uuid: NUS_SERVICE, characteristics: [NUS_RX, NUS_TX].map((uuid) => ({ uuid, properties: this.properties(NUS_SERVICE, uuid) })) }];
  }

  properties(service: string, characteristic: string): readonly string[] {
    if (!this.hasCharacteristic(service, characteristic)) return [];
    return characteristic === NUS_RX ? ["write", "writeWithoutResponse"] : ["notify"];
  }

  subscribe(_service: string, characteristic: string, onValue: (value: Buffer) => void): Promise<() => void> {
    assert.equal(characteristic, NUS_TX);
    this.listener = onValue;
    return Promise.resolve(() => (this.listener = null));
  }

  read(): Promise<Buffer> {
    return Promise.reject(new Error("not readable"));
  }

  /** The receiver starts: its C (or G). */
  start(): void {
    this.started = true;
    this.apply(this.receiver.start());
  }

  write(_service: string, _characteristic: string, value: Buffer, withoutResponse: boolean): Promise<void> {
    if (this.signal.aborted) return Promise.reject(new Error("disconnected"));
    this.writes.push({ bytes: Buffer.from(value), withoutResponse });
    this.outstanding++;
    this.maxOutstanding = Math.max(this.maxOutstanding, this.outstanding);
    return new Promise((resolve) =>
      setImmediate(() => {
        this.outstanding--;
        if (this.started) this.apply(this.receiver.feed(this.mangle(Buffer.from(value))));
        resolve();
      }),
    );
  }

  /** Bytes from the device that are not the receiver's (noise, a chattering firmware). */
  chatter(bytes: Buffer): void {
    setImmediate(() => this.listener?.(bytes));
  }

  /** Everything written to RX, in order. */
  get rx(): Buffer {
    return Buffer.concat(this.writes.map((w) => w.bytes));
  }

  private apply(events: YmodemEvent[]): void {
    for (const e of events) {
      this.events.push(e);
      if (e.type === "send") {
        const out = this.answer(e.bytes);
        if (out) setImmediate(() => this.listener?.(out));
      } else if (e.type === "file") {
        this.files.push({ name: e.name, data: Buffer.from(e.data), retransmissions: e.retransmissions });
      }
    }
  }
}

class FakeAdapter {
  options: LeaseOptions | null = null;
  released = 0;

  lease(options: LeaseOptions): Lease {
    this.options = options;
    return {
      state: { state: "scanning" },
      session: null,
      use: () => Promise.reject(new Error("not used by the transfer")),
      disconnect: () => Promise.resolve(),
      release: () => {
        this.released++;
        return Promise.resolve();
      },
    };
  }

  connect(session: FakeReceiverSession): void {
    this.options?.onState({ state: "connected", address: session.info.address, name: session.info.name, simulated: false });
    void this.options?.onConnected(session, new AbortController().signal);
  }
}

interface Harness {
  adapter: FakeAdapter;
  clock: ManualClock;
  upload: NusUpload;
  result: Promise<UploadResult>;
  steps: UploadStep[];
}

function start(file: { name: string; data: Buffer }, settings: Partial<NusUploadSettings> = {}): Harness {
  const adapter = new FakeAdapter();
  const clock = new ManualClock();
  const steps: UploadStep[] = [];
  const upload = new NusUpload({
    adapter,
    settings: { ...SETTINGS, ...settings },
    selector: { address: ADDRESS },
    file,
    onLeaseState: () => undefined,
    onStep: (s) => steps.push(s),
    clock,
  });
  return { adapter, clock, upload, result: upload.run(), steps };
}

async function connected(h: Harness, session: FakeReceiverSession): Promise<void> {
  h.adapter.connect(session);
  await until(() => session.subscribed, "TX subscribed");
  session.start();
}

const content = (n: number, seed: number): Buffer => Buffer.from(Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff));

/** The data frames (SOH/STX, block number ≥ 1) found in the RX stream, parsed by their announced length. */
function dataFrames(rx: Buffer): Buffer[] {
  const frames: Buffer[] = [];
  for (let i = 0; i < rx.length; ) {
    const kind = rx[i];
    if (kind === SOH || kind === STX) {
      const len = (kind === STX ? 1024 : 128) + 5;
      const f = rx.subarray(i, i + len);
      if (f[1] !== 0) frames.push(f);
      i += len;
    } else i++;
  }
  return frames;
}

describe("NusUpload (the upload state machine, without Node-RED)", () => {
  it("sends a file byte-exact in 1K blocks (standard dialect, C): write commands of at most MTU − 3 bytes, one outstanding, last block padded with 0x1A", async () => {
    const data = content(3000, 1);
    const h = start({ name: "config.json", data });
    const session = new FakeReceiverSession();
    await connected(h, session);
    const result = await h.result;
    assert.equal(result.failure, null);
    assert.equal(session.files.length, 1);
    assert.equal(session.files[0].name, "config.json");
    assert.ok(session.files[0].data.equals(data), "the receiver has exactly the file (block 0's size is exact)");
    assert.ok(session.events.some((e) => e.type === "end"), "the batch was ended with an empty block 0");
    assert.deepEqual(result.stats && { ...result.stats, durationMs: 0, kbps: 0 }, { bytes: 3000, durationMs: 0, kbps: 0, blocks: 3, retransmissions: 0, mtu: 247, blockSize: 1024, crc: "xmodem" });
    assert.deepEqual(result.peripheral, { address: ADDRESS, name: "mpy-nus" });
    assert.ok(session.writes.every((w) => w.withoutResponse && w.bytes.length <= 244), "write commands of at most MTU − 3 bytes");
    assert.equal(session.maxOutstanding, 1, "each write is awaited before the next");
    const frames = dataFrames(session.rx);
    assert.equal(frames.length, 3);
    assert.ok(frames.every((f) => f[0] === STX));
    const last = frames[2].subarray(3, 3 + 1024);
    assert.ok(last.subarray(3000 - 2048).every((b) => b === CPMEOF), "the last block is padded with 0x1A");
    assert.equal(h.adapter.released, 1);
    assert.equal(session.subscribed, false, "the TX subscription is removed");
    assert.deepEqual(h.steps[0], { key: "waiting-receiver", params: {} });
    assert.equal(h.steps.at(-1)?.key, "sent");
  });

  it("streams to a YMODEM-g receiver in 128-byte blocks with the seed's block 0 and CRC-16/ARC, padded with 0x1A too", async () => {
    const data = content(1000, 2);
    const h = start({ name: "main.py", data }, { dialect: "seed", blockSize: 128, mtu: 23 });
    const session = new FakeReceiverSession({ mode: "G", mtu: 23 });
    await connected(h, session);
    const result = await h.result;
    assert.equal(result.failure, null);
    assert.equal(session.files[0].name, "main.py");
    assert.ok(session.files[0].data.equals(data));
    assert.equal(result.stats?.crc, "arc");
    assert.equal(result.stats?.blocks, 8);
    assert.equal(result.stats?.blockSize, 128);
    assert.ok(session.writes.every((w) => w.bytes.length <= 20), "pieces of MTU − 3 = 20 bytes");
    assert.equal(session.maxOutstanding, 1);
    const frames = dataFrames(session.rx);
    assert.equal(frames.length, 8);
    assert.ok(frames[7].subarray(3 + (1000 - 7 * 128), 3 + 128).every((b) => b === CPMEOF), "seed dialect: 0x1A padding as well");
  });

  it("packs streamed frames into full writes: a 1029-byte frame does not end in a short write (YMODEM-g at MTU 247)", async () => {
    const data = content(10 * 1024, 5);
    const h = start({ name: "fw.bin", data }, { mtu: 247 });
    const session = new FakeReceiverSession({ mode: "G", mtu: 247 });
    await connected(h, session);
    const result = await h.result;
    assert.equal(result.failure, null);
    assert.ok(session.files[0].data.equals(data));
    // Block 0 (133 bytes) goes before the G that starts the stream; then ten 1029-byte STX frames.
    const streamStart = 133;
    const streamEnd = streamStart + 10 * 1029;
    const short: number[] = [];
    let offset = 0;
    for (const w of session.writes) {
      const next = offset + w.bytes.length;
      if (offset >= streamStart && next < streamEnd && w.bytes.length !== 244) short.push(w.bytes.length);
      offset = next;
    }
    assert.deepEqual(short, [], "every write inside the stream is a full MTU − 3 = 244 bytes");
    assert.equal(session.maxOutstanding, 1);
  });

  it("resends a block the receiver NAKs (corrupted on the way), and counts the retransmission", async () => {
    const data = content(2500, 3);
    const h = start({ name: "a.bin", data });
    const session = new FakeReceiverSession();
    // Flip one byte of the first transmission of block 2's frame (its first piece carries STX 02 FD).
    let corrupted = false;
    session.mangle = (b) => {
      if (!corrupted && b.length > 10 && b[0] === STX && b[1] === 2) {
        corrupted = true;
        const bad = Buffer.from(b);
        bad[10] ^= 0xff;
        return bad;
      }
      return b;
    };
    await connected(h, session);
    const result = await h.result;
    assert.equal(result.failure, null);
    assert.ok(corrupted);
    assert.ok(session.files[0].data.equals(data));
    assert.equal(result.stats?.retransmissions, 1);
    assert.equal(result.stats?.blocks, 3);
  });

  it("resends after blockTimeout when an ACK is lost, on the given clock", async () => {
    const data = content(2048, 4);
    const h = start({ name: "a.bin", data });
    const session = new FakeReceiverSession();
    let acks = 0;
    // Lose the receiver's second ACK (the one for data block 1).
    session.answer = (b) => (b[0] === 0x06 && ++acks === 2 ? null : b);
    await connected(h, session);
    await until(() => acks === 2 && h.clock.pending > 0, "the ACK of block 1 is lost and a timer waits");
    const before = session.writes.length;
    h.clock.advance(999);
    await turn();
    assert.equal(session.writes.length, before, "nothing is resent before blockTimeout");
    h.clock.advance(1);
    const result = await h.result;
    assert.equal(result.failure, null);
    assert.ok(session.files[0].data.equals(data), "the receiver took the repeated block as a repeat");
    assert.equal(result.stats?.retransmissions, 1);
  });

  it("a receiver's CAN CAN fails the upload as cancelled-by-receiver, with the bytes it acknowledged", async () => {
    const data = content(5000, 5);
    const h = start({ name: "a.bin", data });
    const session = new FakeReceiverSession();
    let acks = 0;
    // After ACKing block 0 and two data blocks, the receiver cancels instead of the next ACK.
    session.answer = (b) => (b[0] === 0x06 && ++acks === 4 ? Buffer.from([CAN, CAN]) : b);
    await connected(h, session);
    const { failure, stats } = await h.result;
    assert.equal(stats, null);
    assert.ok(failure?.cause instanceof UploadError);
    assert.equal(failure.cause.key, "cancelled-by-receiver");
    assert.equal(failure.acknowledged, 2048);
    assert.equal(failure.device, ADDRESS);
    assert.notDeepEqual([...session.rx.subarray(-2)], [CAN, CAN], "no CAN CAN back to a receiver that cancelled");
    assert.equal(h.adapter.released, 1);
  });

  it("a receiver that never starts is given up after (retries + 1) block timeouts, with CAN CAN", async () => {
    const h = start({ name: "a.bin", data: content(10, 6) });
    const session = new FakeReceiverSession();
    h.adapter.connect(session);
    await until(() => session.subscribed && h.clock.pending > 0, "waiting for the receiver");
    for (let i = 0; i < 3; i++) {
      h.clock.advance(1000);
      await turn();
    }
    const { failure } = await h.result;
    assert.ok(failure?.cause instanceof UploadError);
    assert.equal(failure.cause.key, "no-answer");
    assert.deepEqual(failure.cause.params, { device: ADDRESS, retries: 2, ms: 1000 });
    assert.equal(failure.acknowledged, 0);
    assert.deepEqual([...session.rx], [CAN, CAN]);
  });

  for (const phase of ["before the start", "after block 0"] as const) {
    it(`a device that chatters (a stray byte every 500 ms) instead of answering is still given up (${phase})`, async () => {
      const h = start({ name: "a.bin", data: content(3000, 9) });
      const session = new FakeReceiverSession();
      let acks = 0;
      // After block 0 is ACKed the receiver goes quiet: no C for the data, only noise.
      session.answer = (b) => (b[0] === 0x06 && ++acks === 1 ? b : acks >= 1 ? null : b);
      if (phase === "before the start") {
        h.adapter.connect(session);
        await until(() => session.subscribed, "TX subscribed");
      } else {
        await connected(h, session);
        await until(() => acks === 1 && h.clock.pending > 0, "block 0 ACKed");
      }
      let settled = false;
      void h.result.then(() => (settled = true));
      for (let i = 0; i < 40 && !settled; i++) {
        session.chatter(Buffer.from("x"));
        // Whatever is being written is written (the block timer waits for that) before the clock moves on.
        await until(() => settled || h.clock.pending > 0, "a block timer waits");
        h.clock.advance(500);
        await turn();
      }
      const { failure } = await h.result;
      assert.ok(failure?.cause instanceof UploadError);
      assert.equal(failure.cause.key, "no-answer");
      assert.ok(h.clock.now() <= 3 * 1000 + 500, `given up after (retries + 1) block timeouts, not later (${h.clock.now()} ms)`);
    });
  }

  it("abort() mid-file finishes the frame being written, then sends CAN CAN, and fails as closed", async () => {
    const data = content(50_000, 7);
    const h = start({ name: "big.bin", data }, { mtu: 23 });
    const session = new FakeReceiverSession({ mtu: 23 });
    await connected(h, session);
    await until(() => dataFrames(session.rx).length >= 3, "three data blocks out");
    h.upload.abort();
    const { failure } = await h.result;
    assert.ok(failure?.cause instanceof UploadError);
    assert.equal(failure.cause.key, "closed");
    assert.ok(failure.acknowledged >= 2048 && failure.acknowledged < 50_000);
    assert.deepEqual([...session.rx.subarray(-2)], [CAN, CAN], "CAN CAN is the last thing written");
    assert.equal(session.writes.at(-1)?.withoutResponse, false, "as a write request: its response says it reached the device before the release");
    assert.ok(session.events.some((e) => e.type === "error" && e.error.code === "cancelled-by-sender"), "the receiver read it as a cancel, not as block data");
    assert.ok(!session.events.some((e) => e.type === "file"), "the file was not finished");
    assert.equal(h.adapter.released, 1);
  });

  it("a device without NUS RX and TX is not-nus; nothing is written", async () => {
    const h = start({ name: "a.bin", data: content(10, 8) });
    const session = new FakeReceiverSession({ nus: false });
    h.adapter.connect(session);
    const { failure } = await h.result;
    assert.ok(failure?.cause instanceof UploadError);
    assert.equal(failure.cause.key, "not-nus");
    assert.equal(session.writes.length, 0);
  });
});
