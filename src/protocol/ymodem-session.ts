import { YmodemReceiver, type YmodemEvent, type YmodemReceiverOptions } from "./ymodem";

export interface YmodemSessionOptions extends YmodemReceiverOptions {
  /** ms without a sign of life before the receiver asks again; also the unit of the progress deadline. */
  blockTimeout: number;
}

function isProgress(event: YmodemEvent): boolean {
  return event.type === "file-start" || event.type === "progress" || event.type === "file";
}

/**
 * A YMODEM download's clock: the pure YmodemReceiver plus the two timers that bound it, on a clock the caller
 * passes in (`now`, in ms), so that the whole state machine runs, and is tested, without real time.
 *
 * - The retry timer: `blockTimeout` after the last sign of life from the sender (a block or part of one, an EOT,
 *   anything the receiver answered) the receiver's `timeout()` runs (it repeats C/G or NAKs, and counts a
 *   failure). Bytes that are neither (line noise, a chattering device) do not count as a sign of life.
 * - The progress deadline: `blockTimeout × (retries + 1)` after the last progress (the download started, a new
 *   file was announced, a new data block was stored, a file was completed) the download ends, whatever arrived
 *   meanwhile: with an error (`stalled`), or, when every file so far is complete, as the end of the session.
 *
 * The caller calls `tick(now)` when `nextWakeAt` has come (one timer is enough) and after every call looks at
 * `nextWakeAt` again. Events are the receiver's.
 */
export class YmodemSession {
  private readonly receiver: YmodemReceiver;
  private readonly blockTimeout: number;
  private readonly retries: number;
  private retryAt: number | null = null;
  private deadline: number | null = null;
  private lastProgressAt: number | null = null;

  constructor(opts: YmodemSessionOptions) {
    if (!Number.isFinite(opts.blockTimeout) || opts.blockTimeout <= 0) throw new RangeError("blockTimeout must be a number > 0");
    this.receiver = new YmodemReceiver(opts);
    this.blockTimeout = opts.blockTimeout;
    this.retries = opts.retries;
  }

  /** blockTimeout × (retries + 1): the longest a download may go without progress. */
  get progressDeadlineMs(): number {
    return this.blockTimeout * (this.retries + 1);
  }

  get finished(): boolean {
    return this.receiver.finished;
  }

  /** When the last progress happened (the start counts), or null before start(). */
  get lastProgress(): number | null {
    return this.lastProgressAt;
  }

  /** When `tick` must be called next; null before start() and once finished. */
  get nextWakeAt(): number | null {
    if (this.finished || this.retryAt === null || this.deadline === null) return null;
    return Math.min(this.retryAt, this.deadline);
  }

  /** Files completed so far and the largest buffer allocated (the receiver's stats). */
  get stats(): { filesReceived: number; peakBufferBytes: number } {
    return this.receiver.stats;
  }

  start(now: number): YmodemEvent[] {
    const events = this.receiver.start();
    if (events.length > 0) {
      this.progressAt(now);
      this.retryAt = now + this.blockTimeout;
    }
    return events;
  }

  feed(chunk: Uint8Array, now: number): YmodemEvent[] {
    if (this.finished || this.deadline === null) return this.receiver.feed(chunk);
    // A chunk that arrives after the deadline (the caller's timer was late) is too late.
    if (now >= this.deadline) return this.expire();
    const events = this.receiver.feed(chunk);
    if (events.some(isProgress)) this.progressAt(now);
    if (events.length > 0 || this.receiver.inFrame) this.retryAt = now + this.blockTimeout;
    return events;
  }

  tick(now: number): YmodemEvent[] {
    if (this.finished || this.deadline === null || this.retryAt === null) return [];
    if (now >= this.deadline) return this.expire();
    if (now < this.retryAt) return [];
    this.retryAt = now + this.blockTimeout;
    return this.receiver.timeout();
  }

  disconnected(): YmodemEvent[] {
    return this.receiver.disconnected();
  }

  cancel(): YmodemEvent[] {
    return this.receiver.cancel();
  }

  private progressAt(now: number): void {
    this.lastProgressAt = now;
    this.deadline = now + this.progressDeadlineMs;
  }

  private expire(): YmodemEvent[] {
    return this.receiver.expire(`no progress for ${this.progressDeadlineMs} ms (blockTimeout ${this.blockTimeout} ms × (retries ${this.retries} + 1))`, {
      ms: this.progressDeadlineMs,
      blockTimeout: this.blockTimeout,
      retries: this.retries,
    });
  }
}
