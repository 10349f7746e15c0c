/**
 * One YMODEM upload over the Nordic UART Service: lease the device, subscribe to NUS TX for the receiver's bytes,
 * drive the pure YmodemSender, and write its frames to NUS RX in pieces of MTU − 3 bytes, one write at a time
 * (each awaited: a write command completes when the controller took the packet, so no more is ever outstanding
 * than the link's flow control allows, and nothing piles up here). A silence of blockTimeout while the sender
 * waits for an answer resends; a receiver's CAN CAN ends the upload with an error; abort() (the flow stopped)
 * sends CAN CAN after the frame being written. No Node-RED here: the node (src/nus-ymodem-send.ts) words the
 * steps and failures, which are catalog keys with parameters.
 */
import type { CrcKind } from "../protocol/crc16";
import { NUS_RX, NUS_SERVICE, NUS_TX } from "../protocol/nus";
import type { YmodemDialect } from "../protocol/ymodem-block";
import { CAN, CPMEOF } from "../protocol/ymodem-block";
import { YmodemSender } from "../protocol/ymodem-sender";
import type { Lease, LeaseOptions, LeaseState } from "./lease";
import { CONNECT_DEADLINE_MS, kbpsOf, STATUS_INTERVAL_MS } from "./nus-download";
import { BleProblemError } from "./problem";
import type { DeviceSelector } from "./selector";
import type { DeviceSession } from "./session";
import { realTimers, type Timers } from "./timeout";

export interface NusUploadSettings {
  mtu: number;
  dialect: YmodemDialect;
  blockSize: 128 | 1024;
  blockTimeout: number;
  retries: number;
}

export interface UploadStats {
  bytes: number;
  durationMs: number;
  kbps: number;
  /** Data blocks sent (first transmissions). */
  blocks: number;
  retransmissions: number;
  mtu: number;
  blockSize: 128 | 1024;
  crc: CrcKind;
}

/** What the upload is doing once connected, as a status catalog key (`status.<key>`) with its parameters. */
export type UploadStep =
  | { key: "waiting-receiver"; params: Record<string, never> }
  | { key: "sending"; params: { file: string; percent: number; kbps: number } }
  | { key: "sent"; params: { file: string; bytes: number; kbps: number } };

/** A failure of the upload, as an error catalog key (`errors.<key>`) with its parameters: never a sentence. */
export type UploadErrorKey = "connect-timeout" | "not-nus" | "write-failed" | "closed" | "cancelled-by-receiver" | "no-answer" | "refused" | "disconnected";

export class UploadError extends Error {
  constructor(
    readonly key: UploadErrorKey,
    readonly params: Readonly<Record<string, string | number>> = {},
    /** write-failed: the write's own error (a BleProblemError the node words, or the system's). */
    readonly reason?: Error,
  ) {
    super(`${key} ${JSON.stringify(params)}`);
    this.name = "UploadError";
  }
}

export interface UploadFailure {
  /** The device's address once connected, else what the selector names; null when any NUS device would do. */
  device: string | null;
  cause: Error;
  /** File bytes the receiver acknowledged before the failure. */
  acknowledged: number;
}

export interface UploadResult {
  failure: UploadFailure | null;
  stats: UploadStats | null;
  peripheral: { address: string; name: string } | null;
}

export interface NusUploadContext {
  adapter: { lease(options: LeaseOptions): Lease };
  settings: NusUploadSettings;
  selector: DeviceSelector;
  file: { name: string; data: Buffer };
  onLeaseState(state: LeaseState): void;
  onStep(step: UploadStep): void;
  clock?: Timers & { now(): number };
}

const realClock: Timers & { now(): number } = { ...realTimers, now: () => performance.now() };

/** Streamed (G mode) frames taken from the sender at a time: the only frames ever held here. */
const STREAM_BATCH = 2;

/** The sender's CAN CAN (every other frame is a block or an EOT). */
function isCancel(frame: Buffer): boolean {
  return frame.length === 2 && frame[0] === CAN && frame[1] === CAN;
}

function errorOf(value: unknown): Error {
  return value instanceof Error ? value : new Error(String(value));
}

export class NusUpload {
  private readonly sender: YmodemSender;
  private readonly clock: Timers & { now(): number };
  private readonly crc: CrcKind;
  private lease: Lease | null = null;
  private session: DeviceSession | null = null;
  private withoutResponse = true;
  /** RX accepts write requests, whose response tells that the bytes reached the device. */
  private withResponse = false;
  private unsubscribe: (() => void) | null = null;
  /** Frames waiting to be written, in order (a few at most: one answer's worth, or a streamed batch). */
  private readonly frames: Buffer[] = [];
  private pumping: Promise<void> | null = null;
  /** The first queued frame is the rest of one whose first pieces are written. */
  private partialHead = false;
  private blockTimer: { cancel(): void } | null = null;
  private connectTimer: { cancel(): void } | null = null;
  private lastLeaseState: LeaseState | null = null;
  private startedAt: number | null = null;
  private lastStatusAt = -Infinity;
  private finished = false;
  private failure: UploadFailure | null = null;
  private resolveRun: (result: UploadResult) => void = () => undefined;

  constructor(private readonly ctx: NusUploadContext) {
    const { dialect, blockSize, retries } = ctx.settings;
    this.crc = dialect === "seed" ? "arc" : "xmodem";
    this.sender = new YmodemSender({
      files: [ctx.file],
      dialect,
      crc: this.crc,
      blocks: blockSize === 1024 ? "stx" : "soh",
      streaming: true,
      maxBurst: STREAM_BATCH,
      retries,
      pad: CPMEOF,
    });
    this.clock = ctx.clock ?? realClock;
  }

  private get device(): string | null {
    return this.session?.info.address ?? this.ctx.selector.address ?? this.ctx.selector.name ?? null;
  }

  run(): Promise<UploadResult> {
    const result = new Promise<UploadResult>((resolve) => (this.resolveRun = resolve));
    this.connectTimer = this.clock.setTimeout(() => {
      const state = this.lastLeaseState ? this.lastLeaseState.state : "scanning";
      const device = this.device;
      this.finish(new UploadError("connect-timeout", { ...(device !== null ? { device } : {}), seconds: CONNECT_DEADLINE_MS / 1000, state }));
    }, CONNECT_DEADLINE_MS);
    this.lease = this.ctx.adapter.lease({
      selector: this.ctx.selector,
      mtu: this.ctx.settings.mtu,
      onState: (state) => this.onLeaseState(state),
      onConnected: (session) => this.onConnected(session),
      onDisconnected: () => {
        // The seed's receiver may drop the link right after its last ACK: that upload is complete.
        if (this.sender.done) this.finishWhenWritten();
        else this.finish(new UploadError("disconnected", { device: this.device ?? "" }));
      },
    });
    return result;
  }

  /** Stops the upload from our side (the node is closing): CAN CAN once the frame being written is out. */
  abort(): void {
    this.finish(new UploadError("closed"));
  }

  private onLeaseState(state: LeaseState): void {
    this.lastLeaseState = state;
    if (this.finished || this.session) return;
    this.ctx.onLeaseState(state);
    if (state.state === "adapter" && state.problem) this.finish(new BleProblemError(state.problem));
  }

  private async onConnected(session: DeviceSession): Promise<void> {
    if (this.finished || this.session) return;
    this.session = session;
    this.connectTimer?.cancel();
    this.connectTimer = null;
    try {
      if (!session.hasCharacteristic(NUS_SERVICE, NUS_RX) || !session.hasCharacteristic(NUS_SERVICE, NUS_TX)) {
        throw new UploadError("not-nus", { device: session.info.address });
      }
      // Write commands whenever RX takes them (the and the seed's way); write requests otherwise.
      const rx = session.properties(NUS_SERVICE, NUS_RX);
      this.withoutResponse = rx.includes("writeWithoutResponse");
      this.withResponse = rx.includes("write") || !this.withoutResponse;
      this.unsubscribe = await session.subscribe(NUS_SERVICE, NUS_TX, (chunk) => this.onData(chunk));
      if (this.finished) return;
      // The receiver may have started already (its C can come before the subscription's write response).
      if (this.sender.state === "waiting-start") this.ctx.onStep({ key: "waiting-receiver", params: {} });
      this.armTimer();
    } catch (error) {
      if (!session.signal.aborted) this.finish(errorOf(error));
    }
  }

  private onData(chunk: Buffer): void {
    if (this.finished) return;
    const wasWaiting = this.sender.state === "waiting-start";
    const frames = this.sender.receive(chunk);
    this.queue(frames);
    if (wasWaiting && this.sender.state !== "waiting-start") this.startedAt = this.clock.now();
    // Bytes that moved nothing (noise, a chattering device) leave the block timer running: it still fires.
    this.afterSender(false, frames.length === 0);
  }

  private onTimeout(): void {
    this.blockTimer = null;
    if (this.finished) return;
    this.queue(this.sender.timeout());
    this.afterSender(true);
  }

  /** After the sender moved: its end, or a timer for its next answer. */
  private afterSender(timedOut = false, keepTimer = false): void {
    const state = this.sender.state;
    if (state === "aborted") {
      // The sender's own CAN CAN (retries used up) is queued and goes out before the release.
      const { retries, blockTimeout } = this.ctx.settings;
      const device = this.device ?? "";
      if (this.sender.abortedBy === "receiver") this.finish(new UploadError("cancelled-by-receiver", { device }));
      else if (timedOut) this.finish(new UploadError("no-answer", { device, retries, ms: blockTimeout }));
      else this.finish(new UploadError("refused", { device, retries }));
      return;
    }
    if (state === "done") {
      this.finishWhenWritten();
      return;
    }
    this.showProgress(false);
    if (!keepTimer || this.blockTimer === null) this.armTimer();
  }

  private armTimer(): void {
    this.blockTimer?.cancel();
    this.blockTimer = null;
    // While frames are being written the timer waits: each write is bounded by the pool's GATT timeout.
    if (this.finished || this.pumping || !this.sender.awaitingAnswer) return;
    this.blockTimer = this.clock.setTimeout(() => this.onTimeout(), this.ctx.settings.blockTimeout);
  }

  private queue(frames: Buffer[]): void {
    if (frames.length === 0) return;
    this.frames.push(...frames);
    this.blockTimer?.cancel();
    this.blockTimer = null;
    this.pumping ??= this.pump().finally(() => {
      this.pumping = null;
      if (this.finished) return;
      if (this.sender.done) this.finishWhenWritten();
      else this.armTimer();
    });
  }

  /**
   * Writes the queued frames in pieces of MTU − 3 bytes, one write at a time; in G mode takes the next streamed
   * frames as the last ones are out. Frames are packed: a piece carries the end of one frame and the start of the
   * next when both are queued (a YMODEM receiver reads a byte stream), so a streamed 1029-byte frame does not end in
   * a short write. Nothing is held back waiting for more: a piece goes out with what is queued. CAN CAN goes alone.
   */
  private async pump(): Promise<void> {
    const session = this.session;
    if (!session) return;
    const piece = Math.max(20, session.mtu - 3);
    for (;;) {
      this.refill();
      const first = this.frames[0];
      if (first === undefined) return;
      let bytes: Buffer;
      let withoutResponse = this.withoutResponse;
      if (isCancel(first) && !this.partialHead) {
        this.frames.shift();
        bytes = first;
        // CAN CAN ends the transfer and the lease release follows: it goes as a write request when RX allows one,
        // whose response says it reached the device (a write command's callback only says the controller took it,
        // and the disconnect could overtake it).
        withoutResponse = this.withoutResponse && !this.withResponse;
      } else {
        bytes = this.takePiece(piece);
      }
      try {
        await session.write(NUS_SERVICE, NUS_RX, bytes, withoutResponse);
      } catch (error) {
        this.frames.length = 0;
        // A write lost to a disconnect is reported by the disconnect itself.
        if (!session.signal.aborted) this.finish(new UploadError("write-failed", {}, errorOf(error)));
        return;
      }
    }
  }

  /** In G mode, the next streamed frames once the queued ones are out. */
  private refill(): void {
    if (this.frames.length > 0 || this.finished || !this.sender.hasPendingFrames) return;
    this.frames.push(...this.sender.nextFrames(STREAM_BATCH));
    this.showProgress(false);
  }

  /** Up to `size` bytes from the front of the queued frames (never a CAN CAN, which goes alone). */
  private takePiece(size: number): Buffer {
    const parts: Buffer[] = [];
    let length = 0;
    while (length < size) {
      this.refill();
      const frame = this.frames[0];
      if (frame === undefined || (isCancel(frame) && !this.partialHead)) break;
      const take = Math.min(size - length, frame.length);
      parts.push(frame.subarray(0, take));
      length += take;
      if (take === frame.length) this.frames.shift();
      else this.frames[0] = frame.subarray(take);
      this.partialHead = take < frame.length;
    }
    return parts.length === 1 ? parts[0] : Buffer.concat(parts, length);
  }

  private showProgress(force: boolean): void {
    if (this.finished || this.startedAt === null) return;
    const now = this.clock.now();
    if (!force && now - this.lastStatusAt < STATUS_INTERVAL_MS) return;
    this.lastStatusAt = now;
    const size = this.ctx.file.data.length;
    const sent = this.sender.stats.bytesSent;
    this.ctx.onStep({ key: "sending", params: { file: this.ctx.file.name, percent: size > 0 ? Math.floor((sent * 100) / size) : 100, kbps: kbpsOf(sent, now - this.startedAt) } });
  }

  /** The transfer is complete: ends once the last frames are written. */
  private finishWhenWritten(): void {
    if (this.pumping) return; // the pump's end calls again
    this.finish(null);
  }

  private statsNow(): UploadStats {
    const s = this.sender.stats;
    const durationMs = this.startedAt === null ? 0 : this.clock.now() - this.startedAt;
    return {
      bytes: this.ctx.file.data.length,
      durationMs: Math.round(durationMs),
      kbps: kbpsOf(this.ctx.file.data.length, durationMs),
      blocks: s.blocksSent,
      retransmissions: s.retransmissions,
      mtu: this.session?.mtu ?? 23,
      blockSize: this.ctx.settings.blockSize,
      crc: this.crc,
    };
  }

  private finish(error: Error | null): void {
    if (this.finished) return;
    this.finished = true;
    this.blockTimer?.cancel();
    this.connectTimer?.cancel();
    this.blockTimer = this.connectTimer = null;
    const stats = error ? null : this.statsNow();
    this.failure = error ? { device: this.device, cause: error, acknowledged: this.sender.bytesAcknowledged } : null;
    if (stats) this.ctx.onStep({ key: "sent", params: { file: this.ctx.file.name, bytes: stats.bytes, kbps: stats.kbps } });
    // Only on a NUS link we set up (not-nus, or a failure before the subscription, writes nothing).
    if (error && this.unsubscribe && this.sender.state !== "done" && this.sender.state !== "aborted") {
      // We stop: drop what was not started, tell the receiver with CAN CAN after the frame being written (the rest
      // of a frame whose first pieces are out stays queued: a cut frame would read as a bad block, not a cancel).
      this.frames.length = this.partialHead ? 1 : 0;
      this.frames.push(...this.sender.cancel());
    }
    void this.cleanup(stats);
  }

  private async cleanup(stats: UploadStats | null): Promise<void> {
    const session = this.session;
    if (this.frames.length > 0 && session && !session.signal.aborted) this.pumping ??= this.pump();
    await this.pumping?.catch(() => undefined);
    this.unsubscribe?.();
    this.unsubscribe = null;
    await this.lease?.release().catch(() => undefined);
    const peripheral = session ? { address: session.info.address, name: session.info.name } : null;
    this.resolveRun({ failure: this.failure, stats, peripheral });
  }
}
