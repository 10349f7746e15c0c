/**
 * The NUS download on its own, without Node-RED or a radio: a lease that hands over a fake NUS session whose device
 * is the pure YmodemSender, and a manual clock for the connect deadline, the retry timer and the XOSS request.
 */
import assert from "node:assert/strict";
import { XossRequestError } from "../../src/ble/xoss-request";
import { DownloadError, NusDownload, type DownloadResult, type DownloadStep, type NusDownloadSettings, type ReceivedFile } from "../../src/ble/nus-download";
import type { DeviceSelector, DeviceSession, GattService, Lease, LeaseOptions, LeaseState, PeripheralInfo } from "../../src/ble/pool";
import { BleProblemError } from "../../src/ble/problem";
import { NUS_RX, NUS_SERVICE, NUS_TX } from "../../src/protocol/nus";
import { encodeXossFrame, XOSS_CONTROL_CHARACTERISTIC, XossOpcode } from "../../src/protocol/xoss";
import { YmodemError } from "../../src/protocol/ymodem";
import { CAN, WANT_CRC } from "../../src/protocol/ymodem-block";
import { YmodemSender, type YmodemSenderFile } from "../../src/protocol/ymodem-sender";
import { ManualClock } from "../support/manual-clock";

const ADDRESS = "e3:c3:5c:00:00:01";
const SETTINGS: NusDownloadSettings = { mtu: 247, crc: "auto", mode: "C", blockTimeout: 1000, retries: 2, maxBytes: 1 << 20, maxFiles: 10 };

const key = (service: string, characteristic: string): string => `${service}/${characteristic}`;
const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

interface Write {
  characteristic: string;
  bytes: Buffer;
  withoutResponse: boolean;
}

/**
 * A connected NUS device: RX and TX (and XOSS control when asked), every write recorded and answered by
 * `onWrite`, notifications delivered on a later turn of the event loop, as from a radio.
 */
class FakeNusSession implements DeviceSession {
  readonly info: PeripheralInfo = { address: ADDRESS, addressType: "random", name: "mpy-nus", rssi: -40, serviceUuids: [] };
  readonly mtu = 247;
  readonly writes: Write[] = [];
  readonly subscribed = new Set<string>();
  onWrite: (characteristic: string, bytes: Buffer) => void = () => undefined;
  private readonly controller = new AbortController();
  private readonly characteristics = new Map<string, string[]>();
  private readonly listeners = new Map<string, (value: Buffer) => void>();
  private readonly writeWaiters: { count: number; resolve: () => void }[] = [];

  constructor(options: { nus?: boolean; xoss?: boolean } = {}) {
    if (options.nus !== false) {
      this.characteristics.set(key(NUS_SERVICE, NUS_RX), ["write", "writeWithoutResponse"]);
      this.characteristics.set(key(NUS_SERVICE, NUS_TX), ["notify"]);
    }
    if (options.xoss) this.characteristics.set(key(NUS_SERVICE, XOSS_CONTROL_CHARACTERISTIC), ["write", "notify"]);
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  hasCharacteristic(service: string, characteristic: string): boolean {
    return this.characteristics.has(key(service, characteristic));
  }

  properties(service: string, characteristic: string): readonly string[] {
    return this.characteristics.get(key(service, characteristic)) ?? [];
  }

  services(): GattService[] {
    return [...this.characteristics].map(([k, properties]) => {
      const [uuid, characteristic] = k.split("/");
      return { uuid, characteristics: [{ uuid: characteristic, properties }] };
    });
  }

  subscribe(service: string, characteristic: string, onValue: (value: Buffer) => void): Promise<() => void> {
    const k = key(service, characteristic);
    this.listeners.set(k, onValue);
    this.subscribed.add(k);
    return Promise.resolve(() => {
      this.listeners.delete(k);
      this.subscribed.delete(k);
    });
  }

  read(): Promise<Buffer> {
    return Promise.reject(new Error("not readable"));
  }

  write(_service: string, characteristic: string, value: Buffer, withoutResponse: boolean): Promise<void> {
    if (this.signal.aborted) return Promise.reject(new Error("disconnected"));
    this.writes.push({ characteristic, bytes: Buffer.from(value), withoutResponse });
    this.onWrite(characteristic, Buffer.from(value));
    for (const w of this.writeWaiters.filter((x) => this.rxWrites().length >= x.count)) {
      this.writeWaiters.splice(this.writeWaiters.indexOf(w), 1);
      w.resolve();
    }
    return Promise.resolve();
  }

  /** Resolves once `count` writes to RX have been made. */
  rxWritten(count: number): Promise<void> {
    if (this.rxWrites().length >= count) return Promise.resolve();
    return new Promise((resolve) => this.writeWaiters.push({ count, resolve }));
  }

  /** A notification, on a later turn of the event loop; pieces of MTU − 3 bytes as the radio would carry them. */
  notify(characteristic: string, bytes: Buffer): void {
    for (let offset = 0; offset < bytes.length; offset += this.mtu - 3) {
      const piece = bytes.subarray(offset, offset + this.mtu - 3);
      setImmediate(() => this.listeners.get(key(NUS_SERVICE, characteristic))?.(piece));
    }
  }

  drop(): void {
    this.controller.abort();
  }

  rxWrites(): Write[] {
    return this.writes.filter((w) => w.characteristic === NUS_RX);
  }
}

/** The pool as the download sees it: one lease at a time, connected when the test says. */
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

  state(state: LeaseState): void {
    this.options?.onState(state);
  }

  connect(session: FakeNusSession): void {
    this.options?.onState({ state: "connected", address: session.info.address, name: session.info.name, simulated: false });
    void this.options?.onConnected(session, new AbortController().signal);
  }

  disconnect(session: FakeNusSession): void {
    session.drop();
    this.options?.onDisconnected?.();
  }
}

/** The device's YMODEM sender behind the session: answers every byte written to RX; `relay` frames at most. */
function attachSender(session: FakeNusSession, files: YmodemSenderFile[], relay = Infinity): YmodemSender {
  const sender = new YmodemSender({ files, dialect: "standard", crc: "xmodem", blocks: "stx", streaming: false });
  let relayed = 0;
  session.onWrite = (characteristic, bytes) => {
    if (characteristic !== NUS_RX) return;
    for (const frame of sender.receive(bytes)) if (relayed++ < relay) session.notify(NUS_TX, frame);
  };
  return sender;
}

interface Harness {
  adapter: FakeAdapter;
  clock: ManualClock;
  download: NusDownload;
  result: Promise<DownloadResult>;
  steps: DownloadStep[];
  leaseStates: LeaseState[];
  delivered: ReceivedFile[];
  /** Resolves at the first step with this key. */
  step(key: DownloadStep["key"]): Promise<DownloadStep>;
}

function start(options: { requestFile?: string; selector?: DeviceSelector; deliver?: (file: ReceivedFile) => Promise<void>; settings?: Partial<NusDownloadSettings> } = {}): Harness {
  const adapter = new FakeAdapter();
  const clock = new ManualClock();
  const steps: DownloadStep[] = [];
  const leaseStates: LeaseState[] = [];
  const delivered: ReceivedFile[] = [];
  const waiting: { key: string; resolve: (s: DownloadStep) => void }[] = [];
  const download = new NusDownload({
    adapter,
    settings: { ...SETTINGS, ...options.settings },
    selector: options.selector ?? { address: ADDRESS },
    requestFile: options.requestFile ?? "",
    onLeaseState: (state) => leaseStates.push(state),
    onStep: (s) => {
      steps.push(s);
      for (const w of waiting.filter((x) => x.key === s.key)) {
        waiting.splice(waiting.indexOf(w), 1);
        w.resolve(s);
      }
    },
    deliver: async (file) => {
      if (options.deliver) await options.deliver(file);
      delivered.push(file);
    },
    clock,
  });
  const result = download.run();
  const step = (k: DownloadStep["key"]): Promise<DownloadStep> => {
    const seen = steps.find((s) => s.key === k);
    return seen ? Promise.resolve(seen) : new Promise((resolve) => waiting.push({ key: k, resolve }));
  };
  return { adapter, clock, download, result, steps, leaseStates, delivered, step };
}

const content = (n: number, seed: number): Buffer => Buffer.from(Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff));

describe("NusDownload (the download state machine, without Node-RED)", () => {
  it("receives a batch, delivers each file in order with its stats, and releases the lease once the transfer ended", async () => {
    const h = start();
    const session = new FakeNusSession();
    const files = [
      { name: "a.bin", data: content(3000, 1) },
      { name: "b.txt", data: content(10, 2) },
    ];
    attachSender(session, files);
    h.adapter.connect(session);
    const result = await h.result;
    assert.equal(result.failure, null);
    assert.equal(result.files, 2);
    assert.deepEqual(
      h.delivered.map((f) => [f.name, f.data]),
      files.map((f) => [f.name, f.data]),
    );
    assert.equal(result.last?.name, "b.txt");
    assert.deepEqual(h.delivered[0].peripheral, { address: ADDRESS, name: "mpy-nus" });
    assert.equal(h.delivered[0].stats.bytes, 3000);
    assert.equal(h.delivered[0].stats.mtu, 247);
    assert.equal(h.delivered[0].stats.crc, "xmodem");
    assert.equal(h.adapter.released, 1);
    assert.deepEqual(h.steps[0], { key: "starting", params: {} });
    assert.ok(h.steps.some((s) => s.key === "done" && s.params.file === "a.bin" && s.params.bytes === 3000));
    // The first byte asks for CRC blocks; the bytes that end the transfer go as a write request (their response
    // says they reached the device before the release may disconnect it), the others as write commands.
    const rx = session.rxWrites();
    assert.deepEqual(rx[0].bytes, Buffer.from([WANT_CRC]));
    assert.equal(rx[0].withoutResponse, true);
    assert.equal(rx.at(-1)?.withoutResponse, false);
    assert.equal(session.subscribed.size, 0, "the TX subscription is removed");
  });

  it("shows the lease's states until the device is connected, and fails with connect-timeout after 30 s", async () => {
    const h = start({ selector: { name: "mpy-nus" } });
    h.adapter.state({ state: "scanning" });
    h.adapter.state({ state: "connecting", address: ADDRESS });
    h.clock.advance(29999);
    await tick();
    assert.equal(h.adapter.released, 0, "still waiting just before the deadline");
    h.clock.advance(1);
    const { failure, files } = await h.result;
    assert.equal(files, 0);
    assert.ok(failure?.cause instanceof DownloadError);
    assert.equal(failure.cause.key, "connect-timeout");
    assert.deepEqual(failure.cause.params, { device: "mpy-nus", seconds: 30, state: "connecting" });
    assert.equal(failure.device, "mpy-nus");
    assert.equal(failure.where, null);
    assert.deepEqual(
      h.leaseStates.map((s) => s.state),
      ["scanning", "connecting"],
    );
    assert.equal(h.adapter.released, 1);
  });

  it("names no device when any NUS device would do (the node words that)", async () => {
    const h = start({ selector: { service: NUS_SERVICE } });
    h.clock.advance(30000);
    const { failure } = await h.result;
    assert.ok(failure?.cause instanceof DownloadError);
    assert.equal(failure.device, null);
    assert.deepEqual(failure.cause.params, { seconds: 30, state: "scanning" });
  });

  it("fails at once on an adapter error (it will not fix itself within a download)", async () => {
    const h = start();
    h.adapter.state({ state: "adapter", problem: { key: "hci-missing", params: { device: "hci0" } } });
    const { failure } = await h.result;
    assert.ok(failure?.cause instanceof BleProblemError);
    assert.deepEqual(failure.cause.problem, { key: "hci-missing", params: { device: "hci0" } });
  });

  it("a device without NUS RX and TX is not-nus; no transfer is started on it", async () => {
    const h = start();
    const session = new FakeNusSession({ nus: false });
    h.adapter.connect(session);
    const { failure } = await h.result;
    assert.ok(failure?.cause instanceof DownloadError);
    assert.equal(failure.cause.key, "not-nus");
    assert.deepEqual(failure.cause.params, { device: ADDRESS });
    assert.equal(failure.where, null);
    assert.ok(!session.writes.some((w) => w.bytes.includes(WANT_CRC)), "no C written");
  });

  it("a failed delivery fails the download as save-failed (saying the bytes itself), and no later file is delivered", async () => {
    let calls = 0;
    const h = start({
      deliver: () => {
        calls++;
        return Promise.reject(new Error("disk full"));
      },
    });
    const session = new FakeNusSession();
    attachSender(session, [
      { name: "a.bin", data: content(500, 1) },
      { name: "b.bin", data: content(600, 2) },
    ]);
    h.adapter.connect(session);
    const { failure, files } = await h.result;
    assert.ok(failure?.cause instanceof DownloadError);
    assert.equal(failure.cause.key, "save-failed");
    assert.deepEqual(failure.cause.params, { file: "a.bin", bytes: 500, error: "disk full" });
    assert.equal(failure.where, "in-cause");
    assert.equal(files, 0);
    assert.equal(calls, 1, "b.bin is not delivered after a.bin failed");
  });

  it("abort() mid-file tells the sender with CAN CAN and fails as closed, with the bytes of the file so far", async () => {
    const h = start();
    const session = new FakeNusSession();
    // Block 0 and the first data block, then the device falls silent.
    attachSender(session, [{ name: "big.bin", data: content(5000, 3) }], 2);
    h.adapter.connect(session);
    // C, then ACK and C for block 0, then the ACK of data block 1.
    await session.rxWritten(3);
    h.download.abort();
    const { failure } = await h.result;
    assert.ok(failure?.cause instanceof DownloadError);
    assert.equal(failure.cause.key, "closed");
    assert.deepEqual(failure.where, { file: "big.bin", bytes: 1024 });
    assert.deepEqual(session.rxWrites().at(-1)?.bytes, Buffer.from([CAN, CAN]));
    assert.equal(h.adapter.released, 1);
  });

  it("a link lost mid-file is the YMODEM receiver's error, which says where it stopped itself", async () => {
    const h = start();
    const session = new FakeNusSession();
    attachSender(session, [{ name: "big.bin", data: content(5000, 3) }], 2);
    h.adapter.connect(session);
    await h.step("progress");
    h.adapter.disconnect(session);
    const { failure } = await h.result;
    assert.ok(failure?.cause instanceof YmodemError);
    assert.equal(failure.cause.code, "disconnected");
    assert.equal(failure.where, "in-cause");
  });

  it("runs the receiver's retries on the given clock: a silent device is asked again each blockTimeout, then given up", async () => {
    const h = start();
    const session = new FakeNusSession();
    h.adapter.connect(session);
    await h.step("starting");
    await tick();
    assert.equal(session.rxWrites().length, 1);
    h.clock.advance(999);
    await tick();
    assert.equal(session.rxWrites().length, 1, "not before blockTimeout");
    h.clock.advance(1);
    await tick();
    assert.equal(session.rxWrites().length, 2, "C again after blockTimeout");
    h.clock.advance(1000);
    await tick();
    assert.equal(session.rxWrites().length, 3, "and again");
    // The progress deadline, blockTimeout × (retries + 1) = 3 s after the start, ends it.
    h.clock.advance(1000);
    const { failure } = await h.result;
    assert.ok(failure?.cause instanceof YmodemError);
    assert.equal(failure.cause.code, "stalled");
  });

  describe("XOSS request", () => {
    it("asks for the file on the control characteristic, then receives just that file", async () => {
      const h = start({ requestFile: "track.fit" });
      const session = new FakeNusSession({ xoss: true });
      const sender = attachSender(session, [{ name: "track.fit", data: content(700, 4) }]);
      const onRx = session.onWrite;
      session.onWrite = (characteristic, bytes) => {
        if (characteristic === XOSS_CONTROL_CHARACTERISTIC) session.notify(XOSS_CONTROL_CHARACTERISTIC, encodeXossFrame(XossOpcode.fileAccepted, Buffer.from("track.fit")));
        else onRx(characteristic, bytes);
      };
      h.adapter.connect(session);
      const { failure, files } = await h.result;
      assert.equal(failure, null);
      assert.equal(files, 1);
      assert.equal(session.writes[0].characteristic, XOSS_CONTROL_CHARACTERISTIC);
      assert.deepEqual(h.steps[0], { key: "requesting", params: { file: "track.fit" } });
      assert.equal(sender.stats.filesSent, 1);
    });

    it("a refusal is xoss-refused with the device's error code", async () => {
      const h = start({ requestFile: "nope.fit" });
      const session = new FakeNusSession({ xoss: true });
      session.onWrite = (characteristic) => {
        if (characteristic === XOSS_CONTROL_CHARACTERISTIC) session.notify(XOSS_CONTROL_CHARACTERISTIC, encodeXossFrame(0x12));
      };
      h.adapter.connect(session);
      const { failure } = await h.result;
      assert.ok(failure?.cause instanceof XossRequestError);
      assert.equal(failure.cause.key, "xoss-refused");
      assert.deepEqual(failure.cause.params, { file: "nope.fit", reason: "no such file", code: "0x12" });
      assert.ok(!session.rxWrites().some((w) => w.bytes.includes(WANT_CRC)), "no YMODEM after a refusal");
    });

    it("no answer within blockTimeout is xoss-timeout; a device without the control characteristic is not-xoss", async () => {
      const h = start({ requestFile: "track.fit" });
      const session = new FakeNusSession({ xoss: true });
      h.adapter.connect(session);
      await h.step("requesting");
      await tick();
      h.clock.advance(1000);
      const { failure } = await h.result;
      assert.ok(failure?.cause instanceof XossRequestError);
      assert.equal(failure.cause.key, "xoss-timeout");
      assert.deepEqual(failure.cause.params, { file: "track.fit", ms: 1000 });

      const plain = start({ requestFile: "track.fit" });
      plain.adapter.connect(new FakeNusSession());
      const other = (await plain.result).failure;
      assert.ok(other?.cause instanceof XossRequestError);
      assert.equal(other.cause.key, "not-xoss");
    });
  });
});
