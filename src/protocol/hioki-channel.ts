/**
 * The command channel of a HIOKI Z3210 adapter: one command at a time, each reply to the command that asked.
 *
 * Pure code: bytes and timers in, results out. The caller supplies the clock, the write and the MTU; no
 * Node-RED, no noble (see hioki-meter.ts for the wiring, test/protocol/hioki-channel.test.ts for the state
 * machine under random meter behaviour).
 *
 * The instrument's replies carry nothing that says which command they answer. So the channel keeps them
 * apart by time, and never lets a reply cross into the next command:
 * - Commands are written one at a time, in the order asked.
 * - A reply is the indications that arrive after the command is written. An indication of MTU − 3 bytes
 *   means more follows (so does one ending in CR: its LF follows); the reply ends with a shorter indication,
 *   or when nothing more arrives for `quietGapMs`.
 * - Bytes that arrive while no command is waiting (a late reply, the rest of a reply already complete, the
 *   tail of an oversized reply, unsolicited bytes) are discarded, counted, and reported once the link is quiet:
 *   never handed to the next command.
 * - The next command is written only once the link has been quiet for `quietGapMs`, and, after a command
 *   failed (no reply in time, a failed write), only after the failed command's own timeout has passed once
 *   more, so that a late reply arrives while nothing is waiting and is discarded.
 * - Bounds: a command ends within (the late window of a failure before it) + its timeout (waiting to be
 *   written: link busy) + its timeout (the reply to begin) + the time to receive at most `maxReplyBytes`.
 *   A reply longer than `maxReplyBytes` fails its command.
 * A late reply that comes after the late window cannot be told from the next command's reply: the protocol
 * has no tags. The window is each command's own timeout, so a reply needs to be more than twice as late as
 * the timeout for that to happen.
 */

import type { Clock, Timer } from "./clock";

/** A timer of the channel's clock (./clock's Timer). */
export type ChannelTimer = Timer;

/** Milliseconds and one-shot timers: Node's in the node (./clock's realClock), a manual clock in tests. */
export type ChannelClock = Clock;

export interface HiokiChannelOptions {
  clock: ChannelClock;
  /** Writes one encoded command (CR LF included) to the command characteristic. */
  write(bytes: Buffer): Promise<void>;
  /** The link's ATT MTU now. */
  mtu(): number;
  /** Quiet that ends a reply of full-size indications and that must precede every write; default 100 ms. */
  quietGapMs?: number;
  /** Nothing the instrument says is this long; a longer stream fails its command. Default 4096. */
  maxReplyBytes?: number;
}

export type HiokiChannelErrorCode = "timeout" | "too-long" | "write-failed" | "not-sent" | "link-lost";

/** Why a command failed, for the caller to put into words (a catalog key per code). */
export class HiokiChannelError extends Error {
  constructor(
    readonly code: HiokiChannelErrorCode,
    readonly command: string,
    /**
     * timeout / not-sent: the milliseconds waited; too-long: the byte limit; write-failed: the write's error (`cause`,
     * for a caller that words it, and its message as `reason`).
     */
    readonly detail: { ms?: number; maxBytes?: number; reason?: string; cause?: unknown } = {},
  ) {
    super(describe(code, command, detail));
    this.name = "HiokiChannelError";
  }
}

function describe(code: HiokiChannelErrorCode, command: string, detail: HiokiChannelError["detail"]): string {
  const c = JSON.stringify(command);
  switch (code) {
    case "timeout":
      return `no reply to ${c} within ${detail.ms} ms`;
    case "too-long":
      return `the reply to ${c} is longer than ${detail.maxBytes} bytes`;
    case "write-failed":
      return `writing ${c} failed: ${detail.reason}`;
    case "not-sent":
      return `${c} not sent: the meter was busy (still sending, or the previous write unfinished) for ${detail.ms} ms`;
    case "link-lost":
      return `connection lost before the reply to ${c}`;
  }
}

/**
 * Why bytes were discarded: "late" after a command failed (timeout, failed write), "too-long" the rest of a
 * reply over the limit, "after-reply" more after a reply was complete (the meter split it oddly, or sent
 * more), "unsolicited" with no command before them.
 */
export type DiscardReason = "late" | "too-long" | "after-reply" | "unsolicited";

export interface DiscardReport {
  bytes: number;
  reason: DiscardReason;
  /** The command the bytes followed; null for "unsolicited". */
  command: string | null;
}

export interface HiokiRequestOptions {
  /** Told about bytes discarded after this command (or before it, when no command came before). */
  onDiscard?: (report: DiscardReport) => void;
}

interface Request {
  command: string;
  bytes: Buffer;
  timeoutMs: number;
  onDiscard?: (report: DiscardReport) => void;
  resolve(reply: string): void;
  reject(error: HiokiChannelError): void;
  /** Once at the head of the queue: the time by which it must have been written. */
  sendBy?: number;
}

interface InFlight {
  request: Request;
  chunks: Buffer[];
  size: number;
  replyTimer: ChannelTimer | null;
  gapTimer: ChannelTimer | null;
}

/** What happened to the last command: the reason discarded bytes after it are given. */
interface Outcome {
  command: string;
  reason: DiscardReason;
  /** Bytes after this time are no longer connected to the command: "unsolicited". */
  relevantUntil: number;
}

export class HiokiCommandChannel {
  private readonly clock: ChannelClock;
  private readonly quietGapMs: number;
  private readonly maxReplyBytes: number;
  private readonly queue: Request[] = [];
  private current: InFlight | null = null;
  private writing = false;
  private lastByteAt = -Infinity;
  /** After a failed command: nothing is written before this time (its late reply may still come). */
  private lateUntil = -Infinity;
  private outcome: Outcome | null = null;
  private discarded: DiscardReport | null = null;
  /** Who hears of discarded bytes: the last command written or refused. */
  private listener: ((report: DiscardReport) => void) | undefined;
  private discardTimer: ChannelTimer | null = null;
  private wakeTimer: ChannelTimer | null = null;
  private closedBy: HiokiChannelError["code"] | null = null;

  constructor(private readonly options: HiokiChannelOptions) {
    this.clock = options.clock;
    this.quietGapMs = options.quietGapMs ?? 100;
    this.maxReplyBytes = options.maxReplyBytes ?? 4096;
  }

  /**
   * Queues one command (its bytes already encoded) and resolves with the reply text (latin1), or rejects with
   * a HiokiChannelError. Never both, always one of them within the bounds above.
   */
  request(command: string, bytes: Buffer, timeoutMs: number, options: HiokiRequestOptions = {}): Promise<string> {
    return new Promise<string>((resolve, reject) => {
      if (this.closedBy) {
        reject(new HiokiChannelError("link-lost", command));
        return;
      }
      this.queue.push({ command, bytes, timeoutMs, onDiscard: options.onDiscard, resolve, reject });
      this.pump();
    });
  }

  /** One indication from the command characteristic. */
  receive(chunk: Buffer): void {
    if (this.closedBy) return;
    const now = this.clock.now();
    this.lastByteAt = now;
    const flight = this.current;
    if (!flight) {
      this.discard(chunk.length, now);
      this.pump();
      return;
    }
    // The reply has begun: from now on its pieces, not the reply timeout, decide where it ends.
    flight.replyTimer?.cancel();
    flight.replyTimer = null;
    flight.gapTimer?.cancel();
    flight.gapTimer = null;
    flight.chunks.push(chunk);
    flight.size += chunk.length;
    if (flight.size > this.maxReplyBytes) {
      this.finish(flight, "too-long", new HiokiChannelError("too-long", flight.request.command, { maxBytes: this.maxReplyBytes }));
      // What came so far is discarded too; the rest is counted as it comes.
      this.discard(flight.size, now);
      this.pump();
      return;
    }
    const mtu = this.options.mtu();
    const full = chunk.length >= mtu - 3;
    const endsInCr = chunk.length > 0 && chunk[chunk.length - 1] === 0x0d;
    if (full || endsInCr) flight.gapTimer = this.clock.setTimeout(() => this.complete(flight), this.quietGapMs);
    else this.complete(flight);
  }

  /** The link is gone: every command still waiting fails, and nothing is written any more. */
  close(): void {
    if (this.closedBy) return;
    this.closedBy = "link-lost";
    this.wakeTimer?.cancel();
    this.discardTimer?.cancel();
    const flight = this.current;
    if (flight) this.finish(flight, "late", new HiokiChannelError("link-lost", flight.request.command));
    for (const request of this.queue.splice(0)) request.reject(new HiokiChannelError("link-lost", request.command));
  }

  private complete(flight: InFlight): void {
    if (this.current !== flight) return;
    const reply = Buffer.concat(flight.chunks).toString("latin1");
    this.finish(flight, "after-reply", null);
    flight.request.resolve(reply);
    this.pump();
  }

  /** Ends the command in flight; `error` null for a reply (the caller resolves it). */
  private finish(flight: InFlight, reason: DiscardReason, error: HiokiChannelError | null): void {
    flight.replyTimer?.cancel();
    flight.gapTimer?.cancel();
    this.current = null;
    const now = this.clock.now();
    const failed = reason === "late";
    if (failed) this.lateUntil = Math.max(this.lateUntil, now + flight.request.timeoutMs);
    this.outcome = {
      command: flight.request.command,
      reason,
      relevantUntil: (failed ? this.lateUntil : now) + this.quietGapMs,
    };
    if (error) flight.request.reject(error);
  }

  private discard(bytes: number, now: number): void {
    if (!this.discarded) {
      const related = this.outcome && now <= this.outcome.relevantUntil ? this.outcome : null;
      this.discarded = { bytes: 0, reason: related ? related.reason : "unsolicited", command: related ? related.command : null };
    }
    this.discarded.bytes += bytes;
    // One report per burst: when the link has been quiet for the gap.
    this.discardTimer?.cancel();
    this.discardTimer = this.clock.setTimeout(() => this.reportDiscarded(), this.quietGapMs);
  }

  private reportDiscarded(next?: Request): void {
    this.discardTimer?.cancel();
    this.discardTimer = null;
    const report = this.discarded;
    const listener = this.listener ?? next?.onDiscard ?? this.queue[0]?.onDiscard;
    // Nobody to tell yet (nothing asked so far): kept for the first command.
    if (!report || !listener) return;
    this.discarded = null;
    listener(report);
  }

  /** Writes the next command when the link allows; otherwise wakes up when it might. */
  private pump(): void {
    if (this.closedBy || this.current || this.queue.length === 0) return;
    this.wakeTimer?.cancel();
    this.wakeTimer = null;
    const now = this.clock.now();
    const head = this.queue[0];
    head.sendBy ??= Math.max(now, this.lateUntil) + head.timeoutMs;
    const readyAt = Math.max(this.lateUntil, this.lastByteAt + this.quietGapMs);
    if (!this.writing && now >= readyAt) {
      this.queue.shift();
      this.send(head);
      return;
    }
    if (now >= head.sendBy) {
      this.queue.shift();
      this.reportDiscarded(head);
      this.listener = head.onDiscard;
      head.reject(new HiokiChannelError("not-sent", head.command, { ms: head.timeoutMs }));
      this.pump();
      return;
    }
    // While a write is pending, its end calls pump; the deadline still holds.
    const wakeAt = this.writing ? head.sendBy : Math.min(readyAt, head.sendBy);
    this.wakeTimer = this.clock.setTimeout(() => {
      this.wakeTimer = null;
      this.pump();
    }, wakeAt - now);
  }

  private send(request: Request): void {
    // Whatever was discarded before this command is told before the command can get an answer.
    this.reportDiscarded(request);
    this.listener = request.onDiscard;
    const flight: InFlight = { request, chunks: [], size: 0, replyTimer: null, gapTimer: null };
    this.current = flight;
    // Started before the write: the timeout bounds the whole wait for the reply to begin, as the seed's 1 s does.
    flight.replyTimer = this.clock.setTimeout(() => {
      if (this.current !== flight) return;
      this.finish(flight, "late", new HiokiChannelError("timeout", request.command, { ms: request.timeoutMs }));
      this.pump();
    }, request.timeoutMs);
    this.writing = true;
    let written: Promise<void>;
    try {
      written = this.options.write(request.bytes);
    } catch (error) {
      written = Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
    written.then(
      () => this.writeSettled(),
      (error: unknown) => {
        if (this.current === flight && !this.closedBy) {
          const reason = error instanceof Error ? error.message : String(error);
          this.finish(flight, "late", new HiokiChannelError("write-failed", request.command, { reason, cause: error }));
        }
        this.writeSettled();
      },
    );
  }

  private writeSettled(): void {
    this.writing = false;
    this.pump();
  }
}
