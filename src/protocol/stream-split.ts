/**
 * Byte streams carried in notifications (a UART over GATT): where one message ends. Pure code; time comes from
 * Timers (src/protocol/clock.ts), so tests step it exactly.
 *
 * StreamSplitter (ble-gatt-in `split`) cuts a stream into messages: `none` (each value is a message), `delimiter`
 * (a message ends with the delimiter, wherever notification boundaries fall) or `quiet` (a message is what arrived
 * before `quietMs` without data). ReplyCollector (ble-gatt-request) collects one reply and then stops.
 *
 * Memory is bounded by `maxBytes` (default 65536): pending bytes that reach it without an end are emitted as one
 * message of exactly maxBytes bytes, and collecting starts afresh after them (a delimiter that straddles that cut is
 * not recognised). Nothing is dropped, nothing grows without bound. The result does not depend on how the stream was
 * cut into notifications: it is what reading the bytes one at a time would give.
 */
import type { Timer, Timers } from "./clock";
import { GattValueError } from "./gatt-value-error";

export const DEFAULT_MAX_BYTES = 65536;

const SIMPLE_ESCAPES: Readonly<Record<string, number>> = { n: 0x0a, r: 0x0d, t: 0x09, "0": 0x00, "\\": 0x5c };

/**
 * A delimiter as written in the editor, like Node-RED's serial node: text with the escapes `\n`, `\r`, `\t`, `\0`,
 * `\\` and `\xHH` (other text as its UTF-8 bytes), or, when it starts with "0x", bytes in hex ("0x0d0a"; spaces and
 * colons between digits allowed). Throws GattValueError("bad-delimiter", {problem, position?}): problem "empty",
 * "escape" (an unknown or cut-short escape at `position`) or "hex" (a "0x" text that is not whole bytes of hex).
 */
export function parseDelimiter(text: string): Buffer {
  if (typeof text !== "string" || text.length === 0) throw new GattValueError("bad-delimiter", { problem: "empty" });
  if (/^0[xX]/.test(text)) {
    const digits = text.slice(2).replace(/[\s:]/g, "");
    if (digits.length === 0 || digits.length % 2 !== 0 || !/^[0-9a-fA-F]+$/.test(digits)) throw new GattValueError("bad-delimiter", { problem: "hex" });
    return Buffer.from(digits, "hex");
  }
  const parts: Buffer[] = [];
  let literal = "";
  const flush = (): void => {
    if (literal) parts.push(Buffer.from(literal, "utf8"));
    literal = "";
  };
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c !== "\\") {
      literal += c;
      continue;
    }
    const e = text[i + 1];
    if (e !== undefined && Object.prototype.hasOwnProperty.call(SIMPLE_ESCAPES, e)) {
      flush();
      parts.push(Buffer.of(SIMPLE_ESCAPES[e]));
      i += 1;
    } else if (e === "x" && /^[0-9a-fA-F]{2}$/.test(text.slice(i + 2, i + 4))) {
      flush();
      parts.push(Buffer.of(parseInt(text.slice(i + 2, i + 4), 16)));
      i += 3;
    } else {
      throw new GattValueError("bad-delimiter", { problem: "escape", position: i });
    }
  }
  flush();
  return Buffer.concat(parts);
}

export interface SplitOptions {
  mode: "none" | "delimiter" | "quiet";
  /** Required for `delimiter` (non-empty). */
  delimiter?: Buffer;
  /** `delimiter`: end each message with the delimiter (default false: strip it). */
  keepDelimiter?: boolean;
  /** Required for `quiet` (> 0). */
  quietMs?: number;
  /** Default 65536; at least 1. */
  maxBytes?: number;
}

function checkMaxBytes(maxBytes: number | undefined): number {
  const m = maxBytes ?? DEFAULT_MAX_BYTES;
  if (!Number.isInteger(m) || m < 1) throw new GattValueError("bad-split-option", { option: "maxBytes" });
  return m;
}

function checkQuietMs(quietMs: number): number {
  if (typeof quietMs !== "number" || !Number.isFinite(quietMs) || quietMs <= 0) throw new GattValueError("bad-split-option", { option: "quietMs" });
  return quietMs;
}

/**
 * Pending bytes: appended to, searched for the delimiter from where the last search stopped, cut from the front.
 * Bounded by maxBytes by the callers.
 */
class Pending {
  private buf = Buffer.alloc(0);
  /** Where the next delimiter search starts: no delimiter ends before it. */
  private searchFrom = 0;

  get length(): number {
    return this.buf.length;
  }

  append(v: Buffer): void {
    this.buf = this.buf.length === 0 ? Buffer.from(v) : Buffer.concat([this.buf, v]);
  }

  /** Index of the first delimiter that ends within the first `limit` bytes, or -1. */
  find(delimiter: Buffer, limit: number): number {
    const window = this.buf.subarray(0, Math.min(this.buf.length, limit));
    const at = window.indexOf(delimiter, this.searchFrom);
    if (at < 0) this.searchFrom = Math.max(0, window.length - delimiter.length + 1);
    return at;
  }

  /** Removes and returns the first n bytes. */
  take(n: number): Buffer {
    const head = Buffer.from(this.buf.subarray(0, n));
    this.buf = this.buf.subarray(n);
    this.searchFrom = 0;
    return head;
  }
}

/** Cuts a byte stream into messages. push() the values as they arrive; close() when done (pending bytes are dropped). */
export class StreamSplitter {
  private readonly mode: SplitOptions["mode"];
  private readonly delimiter: Buffer;
  private readonly keepDelimiter: boolean;
  private readonly quietMs: number;
  private readonly maxBytes: number;
  private readonly pending = new Pending();
  private timer: Timer | null = null;
  private closed = false;

  /** Throws GattValueError("bad-split-option", {option}) for a missing or invalid option of the mode. */
  constructor(
    options: SplitOptions,
    private readonly timers: Timers,
    private readonly emit: (chunk: Buffer) => void,
  ) {
    this.mode = options.mode;
    this.maxBytes = checkMaxBytes(options.maxBytes);
    this.keepDelimiter = options.keepDelimiter === true;
    this.delimiter = Buffer.alloc(0);
    this.quietMs = 0;
    if (this.mode === "delimiter") {
      if (!Buffer.isBuffer(options.delimiter) || options.delimiter.length === 0) throw new GattValueError("bad-split-option", { option: "delimiter" });
      this.delimiter = Buffer.from(options.delimiter);
    } else if (this.mode === "quiet") {
      this.quietMs = checkQuietMs(options.quietMs as number);
    } else if (this.mode !== "none") {
      throw new GattValueError("bad-split-option", { option: "mode" });
    }
  }

  push(value: Buffer): void {
    if (this.closed) return;
    if (this.mode === "none") {
      this.emit(Buffer.from(value));
      return;
    }
    if (value.length === 0) return;
    // Appended in slices of at most maxBytes so that pending never holds more than twice that.
    for (let i = 0; i < value.length; i += this.maxBytes) {
      this.pending.append(value.subarray(i, i + this.maxBytes));
      if (this.mode === "delimiter") this.cutAtDelimiters();
      else this.cutAtMaxBytes();
    }
    if (this.mode === "quiet") this.restartQuietTimer();
  }

  /** Stops: cancels the quiet timer, drops pending bytes, ignores later pushes. */
  close(): void {
    this.closed = true;
    this.timer?.cancel();
    this.timer = null;
  }

  private cutAtDelimiters(): void {
    const d = this.delimiter;
    for (;;) {
      const at = this.pending.find(d, this.maxBytes);
      if (at >= 0) {
        const message = this.pending.take(at + d.length);
        this.emit(this.keepDelimiter ? message : message.subarray(0, at));
      } else if (this.pending.length >= this.maxBytes) {
        this.emit(this.pending.take(this.maxBytes));
      } else {
        return;
      }
    }
  }

  private cutAtMaxBytes(): void {
    while (this.pending.length >= this.maxBytes) this.emit(this.pending.take(this.maxBytes));
  }

  private restartQuietTimer(): void {
    this.timer?.cancel();
    this.timer = null;
    if (this.pending.length === 0) return;
    this.timer = this.timers.setTimeout(() => {
      this.timer = null;
      if (this.closed || this.pending.length === 0) return;
      this.emit(this.pending.take(this.pending.length));
    }, this.quietMs);
  }
}

export interface ReplyEnd {
  delimiter?: Buffer;
  keepDelimiter?: boolean;
  quietMs?: number;
  length?: number;
  maxBytes?: number;
}

/**
 * Collects one reply: it ends at the first of `delimiter` (included when keepDelimiter), `quietMs` of silence after
 * the last value, `length` bytes and `maxBytes` bytes, judged byte by byte in arrival order (a delimiter that ends at
 * the length-th byte wins). With none of delimiter / quietMs / length set (an empty delimiter, 0 or undefined), the
 * first value received is the reply, whole. `done` is called once; bytes after the end are discarded, and so is
 * every later push. close() cancels the quiet timer without calling done (the caller's timeout or abort).
 */
export class ReplyCollector {
  private readonly delimiter: Buffer | null;
  private readonly keepDelimiter: boolean;
  private readonly quietMs: number;
  private readonly length: number;
  private readonly maxBytes: number;
  private readonly pending = new Pending();
  private timer: Timer | null = null;
  private finished = false;

  /** Throws GattValueError("bad-split-option", {option}) for a negative or non-integer length, a bad quietMs or maxBytes. */
  constructor(
    end: ReplyEnd,
    private readonly timers: Timers,
    private readonly done: (reply: Buffer) => void,
  ) {
    this.delimiter = Buffer.isBuffer(end.delimiter) && end.delimiter.length > 0 ? Buffer.from(end.delimiter) : null;
    this.keepDelimiter = end.keepDelimiter === true;
    this.quietMs = end.quietMs === undefined || end.quietMs === 0 ? 0 : checkQuietMs(end.quietMs);
    const length = end.length ?? 0;
    if (!Number.isInteger(length) || length < 0) throw new GattValueError("bad-split-option", { option: "length" });
    this.length = length;
    this.maxBytes = checkMaxBytes(end.maxBytes);
  }

  push(value: Buffer): void {
    if (this.finished) return;
    if (this.delimiter === null && this.quietMs === 0 && this.length === 0) {
      this.finish(Buffer.from(value));
      return;
    }
    if (value.length === 0) return;
    // Nothing past the end is ever kept: at most `limit` bytes are appended.
    const limit = this.length > 0 ? Math.min(this.length, this.maxBytes) : this.maxBytes;
    this.pending.append(value.subarray(0, limit - this.pending.length));
    if (this.delimiter !== null) {
      const at = this.pending.find(this.delimiter, limit);
      if (at >= 0) {
        const reply = this.pending.take(at + this.delimiter.length);
        this.finish(this.keepDelimiter ? reply : reply.subarray(0, at));
        return;
      }
    }
    if (this.pending.length >= limit) {
      this.finish(this.pending.take(limit));
      return;
    }
    if (this.quietMs > 0) {
      this.timer?.cancel();
      this.timer = this.timers.setTimeout(() => {
        this.timer = null;
        if (!this.finished) this.finish(this.pending.take(this.pending.length));
      }, this.quietMs);
    }
  }

  /** Stops without a reply: cancels the timer; later pushes are ignored and done is never called. */
  close(): void {
    this.finished = true;
    this.timer?.cancel();
    this.timer = null;
  }

  private finish(reply: Buffer): void {
    this.finished = true;
    this.timer?.cancel();
    this.timer = null;
    this.done(reply);
  }
}
