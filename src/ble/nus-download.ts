/**
 * One YMODEM download over the Nordic UART Service: lease the device, optionally ask an XOSS device for a file by
 * name (src/ble/xoss-request.ts), run the pure YmodemSession on one timer, write its answers back, and hand each received file to the
 * caller in order. No Node-RED here: the node (src/nus-ymodem-receive.ts) words the statuses and failures this
 * reports as catalog keys with parameters, and saves and sends the files.
 */
import type { CrcKind } from "../protocol/crc16";
import { NUS_RX, NUS_SERVICE, NUS_TX } from "../protocol/nus";
import { YmodemError, type YmodemEvent } from "../protocol/ymodem";
import { YmodemSession } from "../protocol/ymodem-session";
import type { Lease, LeaseOptions, LeaseState } from "./lease";
import { BleProblemError } from "./problem";
import type { DeviceSelector } from "./selector";
import type { DeviceSession } from "./session";
import { realTimers, type Timers } from "./timeout";
import { requestXossFile } from "./xoss-request";

/** A download whose device is not connected by then fails (the pool alone would retry forever). */
export const CONNECT_DEADLINE_MS = 30000;
/** Progress at most this often: the editor does not need a status per block. */
export const STATUS_INTERVAL_MS = 500;

export interface NusDownloadSettings {
  mtu: number;
  crc: "auto" | CrcKind;
  mode: "C" | "G";
  blockTimeout: number;
  retries: number;
  maxBytes: number;
  maxFiles: number;
}

export interface FileStats {
  bytes: number;
  durationMs: number;
  kbps: number;
  blocks: number;
  retransmissions: number;
  mtu: number;
  blockSize: 128 | 1024 | "mixed";
  crc: CrcKind;
}

export interface ReceivedFile {
  name: string;
  data: Buffer;
  stats: FileStats;
  peripheral: { address: string; name: string };
}

/** What the download is doing once connected, as a status catalog key (`status.<key>`) with its parameters. */
export type DownloadStep =
  | { key: "requesting"; params: { file: string } }
  | { key: "starting"; params: Record<string, never> }
  | { key: "progress"; params: { file: string; percent: number; kbps: number } }
  | { key: "progress-unsized"; params: { file: string; bytes: number; kbps: number } }
  | { key: "done"; params: { file: string; bytes: number; kbps: number } };

/**
 * A failure of the download itself, as an error catalog key (`errors.<key>`) with its parameters: never a sentence.
 * (The XOSS request's own: XossRequestError, src/ble/xoss-request.ts.)
 */
export type DownloadErrorKey = "connect-timeout" | "not-nus" | "write-failed" | "save-failed" | "closed";

export class DownloadError extends Error {
  constructor(
    readonly key: DownloadErrorKey,
    readonly params: Readonly<Record<string, string | number>> = {},
    /** write-failed: the write's own error (a BleProblemError the node words, or the system's), as the `error` parameter. */
    readonly reason?: Error,
  ) {
    super(`${key} ${JSON.stringify(params)}`);
    this.name = "DownloadError";
  }
}

/** How a download failed: on which device, why, and how far the current file had come. */
export interface DownloadFailure {
  /** The device's address once connected, else what the selector names; null when any NUS device would do. */
  device: string | null;
  /** A DownloadError, an XossRequestError, a YmodemError, or an error of the BLE layer (whose message is all there is). */
  cause: Error;
  /**
   * The file being received and its bytes so far; null before any file; "in-cause" when the cause says it
   * itself (a YmodemError, a failed save).
   */
  where: { file: string; bytes: number } | null | "in-cause";
}

export interface DownloadResult {
  failure: DownloadFailure | null;
  files: number;
  last: ReceivedFile | null;
}

/** What a download needs from its caller. */
export interface NusDownloadContext {
  /** The pool's adapter (only its lease() is used). */
  adapter: { lease(options: LeaseOptions): Lease };
  settings: NusDownloadSettings;
  selector: DeviceSelector;
  /** XOSS file to request first, or "". */
  requestFile: string;
  /** The lease's state while the device is not connected yet (for the node's status). */
  onLeaseState(state: LeaseState): void;
  onStep(step: DownloadStep): void;
  /**
   * Delivers one received file (saves it, sends it); called in order, one at a time, never after the download
   * failed. A rejection fails the download (`save-failed`).
   */
  deliver(file: ReceivedFile): Promise<void>;
  /** Clock and timers; Node's by default (tests pass a manual clock). */
  clock?: Timers & { now(): number };
}

const realClock: Timers & { now(): number } = { ...realTimers, now: () => performance.now() };

interface Progress {
  name: string;
  size: number | null;
  received: number;
  startedAt: number;
}

function errorOf(value: unknown): Error {
  return value instanceof Error ? value : new Error(String(value));
}

export function kbpsOf(bytes: number, ms: number): number {
  // bits per millisecond = kbit/s
  return ms > 0 ? Math.round(((bytes * 8) / ms) * 10) / 10 : 0;
}

/** One download: lease, optional XOSS request, YMODEM, delivery; `run()` resolves with its result. */
export class NusDownload {
  private readonly ymodem: YmodemSession;
  private readonly clock: Timers & { now(): number };
  private lease: Lease | null = null;
  private session: DeviceSession | null = null;
  /** RX accepts write commands: used for every byte except the last ones (see write()). */
  private withoutResponse = false;
  /** RX accepts write requests, whose response tells that the bytes reached the device. */
  private withResponse = false;
  private readonly unsubscribes: (() => void)[] = [];
  private writes: Promise<void> = Promise.resolve();
  private deliveries: Promise<void> = Promise.resolve();
  /** Wakes the YMODEM session at its next retry or deadline. */
  private wakeTimer: { cancel(): void } | null = null;
  private connectTimer: { cancel(): void } | null = null;
  private lastLeaseState: LeaseState | null = null;
  private progress: Progress | null = null;
  private lastStatusAt = -Infinity;
  private finished = false;
  private failure: DownloadFailure | null = null;
  private filesReceived = 0;
  private lastFile: ReceivedFile | null = null;
  private resolveRun: (result: DownloadResult) => void = () => undefined;

  constructor(private readonly ctx: NusDownloadContext) {
    const { crc, mode, maxBytes, maxFiles, retries, blockTimeout } = ctx.settings;
    this.ymodem = new YmodemSession({ crc, mode, maxBytes, maxFiles, retries, blockTimeout });
    this.clock = ctx.clock ?? realClock;
  }

  private get device(): string | null {
    return this.session?.info.address ?? this.ctx.selector.address ?? this.ctx.selector.name ?? null;
  }

  run(): Promise<DownloadResult> {
    const result = new Promise<DownloadResult>((resolve) => (this.resolveRun = resolve));
    this.connectTimer = this.clock.setTimeout(() => {
      const state = this.lastLeaseState ? this.lastLeaseState.state : "scanning";
      const device = this.device;
      this.finish(new DownloadError("connect-timeout", { ...(device !== null ? { device } : {}), seconds: CONNECT_DEADLINE_MS / 1000, state }));
    }, CONNECT_DEADLINE_MS);
    this.lease = this.ctx.adapter.lease({
      selector: this.ctx.selector,
      mtu: this.ctx.settings.mtu,
      onState: (state) => this.onLeaseState(state),
      onConnected: (session) => this.onConnected(session),
      onDisconnected: () => this.apply(this.ymodem.disconnected()),
    });
    return result;
  }

  /** Stops the download from our side (the node is closing). */
  abort(): void {
    this.finish(new DownloadError("closed"));
  }

  private onLeaseState(state: LeaseState): void {
    this.lastLeaseState = state;
    if (this.finished || this.session) return;
    this.ctx.onLeaseState(state);
    // A missing or broken adapter will not fix itself within a download.
    if (state.state === "adapter" && state.problem) this.finish(new BleProblemError(state.problem));
  }

  private async onConnected(session: DeviceSession): Promise<void> {
    // One link per download: a reconnection after the link dropped is not used (the download has failed).
    if (this.finished || this.session) return;
    this.session = session;
    this.connectTimer?.cancel();
    this.connectTimer = null;
    try {
      if (!session.hasCharacteristic(NUS_SERVICE, NUS_RX) || !session.hasCharacteristic(NUS_SERVICE, NUS_TX)) {
        throw new DownloadError("not-nus", { device: session.info.address });
      }
      // NUS RX normally allows both; a write command saves a round trip per ACK.
      const rx = session.properties(NUS_SERVICE, NUS_RX);
      this.withoutResponse = rx.includes("writeWithoutResponse");
      this.withResponse = rx.includes("write") || !this.withoutResponse;
      this.unsubscribes.push(await session.subscribe(NUS_SERVICE, NUS_TX, (chunk) => this.onData(chunk)));
      if (this.finished) return;
      if (this.ctx.requestFile) {
        this.ctx.onStep({ key: "requesting", params: { file: this.ctx.requestFile } });
        const { blockTimeout } = this.ctx.settings;
        await requestXossFile(session, this.ctx.requestFile, { timeoutMs: blockTimeout, timers: this.clock, keep: (u) => this.unsubscribes.push(u) });
      }
      if (this.finished) return;
      this.ctx.onStep({ key: "starting", params: {} });
      this.apply(this.ymodem.start(this.clock.now()));
    } catch (error) {
      // A drop during setup reaches onDisconnected, which reports it; anything else is reported here.
      if (!session.signal.aborted) this.finish(errorOf(error));
    }
  }

  private onData(chunk: Buffer): void {
    if (this.finished) return;
    this.apply(this.ymodem.feed(chunk, this.clock.now()));
  }

  private onWake(): void {
    this.wakeTimer = null;
    if (this.finished) return;
    this.apply(this.ymodem.tick(this.clock.now()));
  }

  /** One timer, set to the session's next retry or deadline (every apply() moves it). */
  private schedule(): void {
    this.wakeTimer?.cancel();
    this.wakeTimer = null;
    const at = this.ymodem.nextWakeAt;
    if (this.finished || at === null) return;
    this.wakeTimer = this.clock.setTimeout(() => this.onWake(), Math.max(0, Math.ceil(at - this.clock.now())));
  }

  private apply(events: YmodemEvent[]): void {
    // The bytes that end the transfer (the last ACK, CAN CAN) must reach the device before the lease release
    // may disconnect it; a write request's response says they did.
    const last = events.some((e) => e.type === "end" || e.type === "error" || (e.type === "file" && this.ctx.requestFile !== ""));
    for (const event of events) {
      switch (event.type) {
        case "send":
          this.write(event.bytes, last);
          break;
        case "file-start":
          this.progress = { name: event.name, size: event.size, received: 0, startedAt: this.clock.now() };
          this.showProgress(true);
          break;
        case "progress":
          if (this.progress) this.progress.received = event.received;
          this.showProgress(false);
          break;
        case "file":
          this.onFile(event);
          break;
        case "end":
          this.finish(null);
          break;
        case "error":
          this.finish(event.error);
          break;
      }
    }
    this.schedule();
  }

  /**
   * Writes go out in order, one after another (the pool bounds each by its GATT timeout). Write commands
   * save a round trip per ACK; `confirmed` asks for a write request when RX allows one.
   */
  private write(bytes: Buffer, confirmed: boolean): void {
    const session = this.session;
    if (!session || session.signal.aborted) return;
    const withoutResponse = this.withoutResponse && !(confirmed && this.withResponse);
    this.writes = this.writes
      .then(() => session.write(NUS_SERVICE, NUS_RX, bytes, withoutResponse))
      .catch((error: unknown) => {
        // A write lost to a disconnect is reported by the disconnect itself.
        if (!session.signal.aborted) this.finish(new DownloadError("write-failed", {}, errorOf(error)));
      });
  }

  private showProgress(force: boolean): void {
    const p = this.progress;
    if (!p || this.finished) return;
    const now = this.clock.now();
    if (!force && now - this.lastStatusAt < STATUS_INTERVAL_MS) return;
    this.lastStatusAt = now;
    const kbps = kbpsOf(p.received, now - p.startedAt);
    this.ctx.onStep(
      p.size !== null && p.size > 0
        ? { key: "progress", params: { file: p.name, percent: Math.floor((p.received * 100) / p.size), kbps } }
        : { key: "progress-unsized", params: { file: p.name, bytes: p.received, kbps } },
    );
  }

  private onFile(event: Extract<YmodemEvent, { type: "file" }>): void {
    const session = this.session;
    const durationMs = this.progress ? this.clock.now() - this.progress.startedAt : 0;
    this.progress = null;
    const stats: FileStats = {
      bytes: event.size,
      durationMs: Math.round(durationMs),
      kbps: kbpsOf(event.size, durationMs),
      blocks: event.blocks,
      retransmissions: event.retransmissions,
      mtu: session?.mtu ?? 23,
      blockSize: event.blockSize,
      crc: event.crc,
    };
    const peripheral = { address: session?.info.address ?? "", name: session?.info.name ?? "" };
    // The seed's sender may stay quiet for a block timeout before the download ends: show the file as done now.
    this.ctx.onStep({ key: "done", params: { file: event.name, bytes: event.size, kbps: stats.kbps } });
    const file: ReceivedFile = { name: event.name, data: event.data, stats, peripheral };
    this.deliveries = this.deliveries
      .then(async () => {
        if (this.failure) return; // the download already failed: a later file is not delivered
        await this.ctx.deliver(file);
        this.filesReceived++;
        this.lastFile = file;
      })
      .catch((error: unknown) => {
        this.finish(new DownloadError("save-failed", { file: event.name, bytes: event.size, error: errorOf(error).message }));
      });
    // XOSS sends the one requested file and stays connected (it reports idle on the control characteristic).
    if (this.ctx.requestFile) this.finish(null);
  }

  /** Ends the download once: stop timers, cancel the transfer if it runs, flush writes, finish delivering, release. */
  private finish(error: Error | null): void {
    if (this.finished) {
      // A delivery that fails after the transfer ended still fails the download.
      if (error && !this.failure) this.failure = this.describe(error);
      return;
    }
    this.finished = true;
    this.failure = error ? this.describe(error) : null;
    this.wakeTimer?.cancel();
    this.connectTimer?.cancel();
    this.wakeTimer = this.connectTimer = null;
    if (error && !this.ymodem.finished) {
      // Tell a sender that is still sending that we stopped (CAN CAN); the receiver's own error is ours already.
      for (const event of this.ymodem.cancel()) if (event.type === "send") this.writeFinal(event.bytes);
    }
    void this.cleanup();
  }

  /** Like write(), for the last bytes after finish() (no failure can be reported any more). */
  private writeFinal(bytes: Buffer): void {
    const session = this.session;
    if (!session || session.signal.aborted) return;
    const withoutResponse = this.withoutResponse && !this.withResponse;
    this.writes = this.writes.then(() => session.write(NUS_SERVICE, NUS_RX, bytes, withoutResponse)).catch(() => undefined);
  }

  private async cleanup(): Promise<void> {
    // The final ACK (or CAN CAN) must reach the device before the lease release may disconnect it.
    await this.writes;
    await this.deliveries;
    for (const unsubscribe of this.unsubscribes.splice(0)) unsubscribe();
    // run() assigned the lease synchronously after lease() returned; the awaits above came after that.
    await this.lease?.release().catch(() => undefined);
    this.resolveRun({ failure: this.failure, files: this.filesReceived, last: this.lastFile });
  }

  /** Every failure says how many bytes of the current file had arrived. */
  private describe(cause: Error): DownloadFailure {
    const inCause = cause instanceof YmodemError || (cause instanceof DownloadError && cause.key === "save-failed");
    const p = this.progress;
    return { device: this.device, cause, where: inCause ? "in-cause" : p ? { file: p.name, bytes: p.received } : null };
  }
}
