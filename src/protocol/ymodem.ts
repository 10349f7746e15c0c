/**
 * YMODEM receiver for files pulled over the Nordic UART Service (docs/protocols.md §3).
 *
 * Pure state machine: bytes in (`feed`), events out (bytes to write back, file start/progress/done, end,
 * error). No I/O and no timers: the caller runs the block timer and calls `timeout()` when no byte arrived
 * in time, and calls `disconnected()` when the link drops. Within one call's events, a `send` comes before
 * the report it belongs to, so the reply can go out first. Once `error` or `end` has been emitted the
 * receiver is finished and every method returns [].
 *
 * It serves two dialects, told apart by block 0:
 * - seed/XOSS: block 0 holds `"<name> <size>"` (a space, zero padded), CRC-16/ARC, no batch: after the
 *   final EOT the sender disconnects (or sends another block 0, or an empty block 0).
 * - standard (lrzsz): block 0 holds `name NUL size mtime mode ...` (size decimal, mtime/mode octal),
 *   CRC-16/XMODEM, batch ended by an empty block 0.
 *
 * The block level (control bytes, frame sizes, block 0 parsing) is in ymodem-block.ts; the error class and
 * events stay with the receiver that raises them. About 600 lines: one state machine, whose steps
 * (frame, block 0, data block, EOT, end of file, failure) all act on the same session state.
 */
import { crc16, type CrcKind } from "./crc16";
import {
  ACK,
  block0Crc,
  CAN,
  CPMEOF,
  EOT,
  NAK,
  parseBlock0,
  SOH,
  SOH_FRAME_LENGTH,
  STX,
  STX_FRAME_LENGTH,
  WANT_CRC,
  WANT_G,
  type Block0Header,
  type YmodemDialect,
} from "./ymodem-block";

export interface YmodemReceiverOptions {
  /** "auto": block 0 decides (the CRC that matches it), and that CRC then holds for the session. */
  crc: "auto" | CrcKind;
  /** "C": ACK every block, NAK asks for a resend. "G": YMODEM-g, blocks stream, any bad block is fatal. */
  mode: "C" | "G";
  /**
   * Most file bytes accepted in the whole session (every file of a batch together). A file announced larger than
   * what is left is refused before any of its data is stored.
   */
  maxBytes: number;
  /** Consecutive failures (timeouts, bad blocks, repeated blocks) tolerated; the next one is fatal. */
  retries: number;
  /** Most files accepted in the session: the block 0 of one more fails it. Default: no limit. */
  maxFiles?: number;
}

export type YmodemErrorCode =
  | "cancelled-by-sender" // CAN CAN received
  | "cancelled" // cancel() called
  | "too-large" // announced (or, without a size, received) more than is left of maxBytes
  | "too-many-files" // a block 0 beyond maxFiles
  | "sequence" // a block number that is neither the expected nor the previous one
  | "size-mismatch" // more blocks than the announced size needs, or EOT before it was reached
  | "bad-block" // a damaged data block in G mode, which cannot be resent
  | "retries" // too many consecutive timeouts, bad blocks or repeated blocks
  | "stalled" // expire(): no progress within the caller's deadline
  | "disconnected"; // the link dropped before the transfer finished

/**
 * What exactly went wrong, for a user interface to word in its own language: a key (one per sentence of the
 * English message, e.g. "timeouts-data") and the values in it. A `why` parameter is itself a key (the damage
 * found in a block: "crc", "header", ...).
 */
export interface YmodemErrorDetail {
  key: string;
  params?: Readonly<Record<string, string | number>>;
}

export class YmodemError extends Error {
  readonly code: YmodemErrorCode;
  /** Bytes of the current file stored so far (0 between files). */
  readonly bytesReceived: number;
  /** The file being received, or null before block 0 / between files. */
  readonly fileName: string | null;
  /** The message's sentence as a key with parameters (`message` is its English, for logs). */
  readonly detail: string;
  readonly params: Readonly<Record<string, string | number>>;

  constructor(code: YmodemErrorCode, message: string, fileName: string | null, bytesReceived: number, detail: YmodemErrorDetail = { key: code }) {
    super(message);
    this.name = "YmodemError";
    this.code = code;
    this.fileName = fileName;
    this.bytesReceived = bytesReceived;
    this.detail = detail.key;
    this.params = detail.params ?? {};
  }
}

export type YmodemEvent =
  | { type: "send"; bytes: Buffer }
  | {
      type: "file-start";
      name: string;
      size: number | null;
      dialect: YmodemDialect;
      crc: CrcKind;
      mtime?: number;
      mode?: number;
    }
  | { type: "progress"; name: string; received: number; size: number | null; blocks: number }
  | {
      type: "file";
      name: string;
      data: Buffer;
      size: number;
      blocks: number;
      retransmissions: number;
      blockSize: 128 | 1024 | "mixed";
      crc: CrcKind;
    }
  | { type: "end" }
  | { type: "error"; error: YmodemError };

type Phase =
  | "idle" // start() not called yet
  | "block0" // C/G sent, waiting for a block 0
  | "data" // inside a file
  | "linger" // seed dialect after a file: no C sent; the sender disconnects or sends another block 0
  | "done";

interface FileState {
  name: string;
  size: number | null;
  dialect: YmodemDialect;
  crc: CrcKind;
  buf: Buffer;
  /** Data bytes of all accepted blocks, padding included. */
  raw: number;
  blocks: number;
  retransmissions: number;
  /** Bit 1: a 128-byte block seen; bit 2: a 1024-byte block seen. */
  blockSizes: number;
  /** Where the last accepted block starts in buf (0x1A stripping stays inside it). */
  lastBlockStart: number;
  /** The first EOT was NAKed; a second one ends the file. */
  eotPending: boolean;
}

/** Growable buffer for files without a size starts here; it never grows past maxBytes + 1024. */
const INITIAL_UNSIZED_CAPACITY = 64 * 1024;

/**
 * Rules beyond the block format (each for a reason given where it is applied):
 * - The file is cut to the announced size, never by stripping padding, so a file that ends in 0x00 or
 *   0x1A stays whole. Without a size (standard only), trailing 0x1A is stripped from the last block only.
 * - An announced size above maxBytes is refused at block 0 (CAN CAN, no ACK); at most maxBytes + 1024
 *   bytes are ever allocated for a file, whatever the sender sends.
 * - C mode: EOT is NAKed once, then ACKed. G mode: the first EOT is ACKed; a damaged data block is fatal;
 *   a timeout mid-stream sends nothing (the streaming sender does not read NAKs) but still counts.
 * - A timeout before the first data block of a file repeats C/G (as lrzsz rz), later ones NAK.
 * - `retries` bounds consecutive failures (timeouts, damaged blocks and repeated blocks); a new block resets the
 *   count. A repeated block is still ACKed (the sender may have missed our ACK), but a sender that repeats a block
 *   after every ACK is not making progress.
 * - `maxBytes` bounds the bytes of all files of the session together, `maxFiles` their number.
 * - `retransmissions` of a file counts the NAKs sent for its blocks plus repeated blocks received.
 */
export class YmodemReceiver {
  private readonly opts: YmodemReceiverOptions;
  private readonly startByte: number;
  private readonly streaming: boolean;
  private phase: Phase = "idle";
  /** Fixed once a non-empty block 0 has been checked. */
  private crcKind: CrcKind | null;
  private readonly frame = Buffer.alloc(STX_FRAME_LENGTH);
  private frameLen = 0;
  private frameNeed = 0;
  private canRun = 0;
  /** Consecutive timeouts, bad blocks and repeated blocks. */
  private failures = 0;
  /** Consecutive repeats of the last accepted block. */
  private repeats = 0;
  private filesDone = 0;
  /** File bytes of the files completed so far. */
  private bytesDone = 0;
  private readonly maxFiles: number;
  private file: FileState | null = null;
  private peakBuffer = 0;

  constructor(opts: YmodemReceiverOptions) {
    if (!Number.isFinite(opts.maxBytes) || opts.maxBytes < 0) throw new RangeError("maxBytes must be a number ≥ 0");
    if (!Number.isInteger(opts.retries) || opts.retries < 0) throw new RangeError("retries must be an integer ≥ 0");
    if (opts.maxFiles !== undefined && !(Number.isInteger(opts.maxFiles) && opts.maxFiles >= 1)) throw new RangeError("maxFiles must be an integer ≥ 1");
    this.opts = { ...opts };
    this.maxFiles = opts.maxFiles ?? Infinity;
    this.streaming = opts.mode === "G";
    this.startByte = this.streaming ? WANT_G : WANT_CRC;
    this.crcKind = opts.crc === "auto" ? null : opts.crc;
  }

  get finished(): boolean {
    return this.phase === "done";
  }

  /** Part of a block has arrived and the rest is awaited. */
  get inFrame(): boolean {
    return this.frameLen > 0;
  }

  /** What is left of maxBytes for the rest of the session. */
  private get bytesLeft(): number {
    return Math.max(0, this.opts.maxBytes - this.bytesDone);
  }

  /** Files completed so far and the largest file buffer ever allocated (bounded by maxBytes + 1024). */
  get stats(): { filesReceived: number; peakBufferBytes: number } {
    return { filesReceived: this.filesDone, peakBufferBytes: this.peakBuffer };
  }

  /** Sends the first `C` (or `G`). */
  start(): YmodemEvent[] {
    if (this.phase !== "idle") return [];
    this.phase = "block0";
    return [send(this.startByte)];
  }

  feed(chunk: Uint8Array): YmodemEvent[] {
    const out: YmodemEvent[] = [];
    if (this.phase === "idle" || this.phase === "done") return out;
    const n = chunk.length;
    let i = 0;
    while (i < n && !this.finished) {
      if (this.frameLen > 0) {
        // Inside a block every byte is data (0x04, 0x18 included): copy as much of it as this chunk holds.
        const take = Math.min(this.frameNeed - this.frameLen, n - i);
        this.frame.set(chunk.subarray(i, i + take), this.frameLen);
        i += take;
        this.frameLen += take;
        if (this.frameLen === this.frameNeed) {
          this.frameLen = 0;
          // After a NAKed block the rest of this chunk was sent before our NAK, so it is stale (lrzsz
          // purges its input the same way); dropping it keeps a misframed block from derailing the resend.
          if (this.onFrame(out)) break;
        }
        continue;
      }
      const b = chunk[i++];
      if (b === SOH || b === STX) {
        this.canRun = 0;
        this.frame[0] = b;
        this.frameLen = 1;
        this.frameNeed = b === SOH ? SOH_FRAME_LENGTH : STX_FRAME_LENGTH;
      } else if (b === CAN) {
        // One CAN may be line noise (lrzsz ignores it); two in a row abort.
        if (++this.canRun >= 2) this.fail(out, "cancelled-by-sender", "cancelled by sender", false, undefined, { key: "cancelled-by-sender" });
      } else {
        this.canRun = 0;
        if (b === EOT) this.onEot(out);
        // Anything else where a block header belongs is garbage: dropped; the caller's timer NAKs.
      }
    }
    return out;
  }

  /** The caller's block timer fired (no byte for blockTimeout ms). */
  timeout(): YmodemEvent[] {
    const out: YmodemEvent[] = [];
    if (this.phase === "idle" || this.phase === "done") return out;
    if (this.phase === "linger") {
      // The seed sender disconnects after its last file; silence means the same.
      this.phase = "done";
      out.push({ type: "end" });
      return out;
    }
    this.frameLen = 0; // a partial block will not be completed any more
    this.canRun = 0;
    this.failures++;
    const f = this.file;
    if (this.failures > this.opts.retries) {
      if (this.phase === "block0" && this.filesDone > 0) {
        // Every file arrived; only the end-of-batch block 0 is missing. Tell the sender we stop.
        this.phase = "done";
        out.push(send(CAN, CAN), { type: "end" });
        return out;
      }
      const what =
        this.phase === "block0"
          ? "block 0"
          : f === null || f.eotPending || allArrived(f)
            ? "EOT"
            : `data block ${f.blocks + 1}`;
      const key = this.phase === "block0" ? "timeouts-block0" : what === "EOT" ? (eotMissing(f) ? "timeouts-eot-missing" : "timeouts-eot") : "timeouts-data";
      const detail = { key, params: { count: this.failures, ...(f !== null ? { block: f.blocks + 1, size: f.size ?? 0 } : {}) } };
      this.fail(out, "retries", `no answer from the sender: timed out ${this.failures} times waiting for ${what}${eotMissing(f)}`, true, undefined, detail);
      return out;
    }
    if (this.phase === "block0") {
      out.push(send(this.startByte));
    } else if (f !== null) {
      if (f.eotPending) {
        out.push(send(NAK));
      } else if (f.blocks === 0) {
        // Until the first data block, the sender may have missed our C/G (lrzsz rz repeats it too).
        out.push(send(this.startByte));
      } else if (!this.streaming) {
        f.retransmissions++;
        out.push(send(NAK));
      }
      // G mode mid-stream: the sender does not read NAKs; only count the failure.
    }
    return out;
  }

  /** Abort from our side: CAN CAN, then an error event ("cancelled by receiver"). */
  cancel(): YmodemEvent[] {
    const out: YmodemEvent[] = [];
    if (this.phase === "done") return out;
    this.fail(out, "cancelled", "cancelled by receiver", true, undefined, { key: "cancelled" });
    return out;
  }

  /**
   * The caller's progress deadline passed (`what` says which, e.g. "no progress for 3000 ms"): whatever the sender
   * sent meanwhile, nothing moved the transfer on. After a complete file (waiting for the next block 0, or the seed
   * dialect's linger) that is the end, as after the last timeout; otherwise an error, and CAN CAN.
   */
  expire(what: string, params: Readonly<Record<string, string | number>> = {}): YmodemEvent[] {
    const out: YmodemEvent[] = [];
    if (this.phase === "idle" || this.phase === "done") return out;
    if (this.afterCompleteFile) {
      const cancel = this.phase === "block0";
      this.phase = "done";
      if (cancel) out.push(send(CAN, CAN));
      out.push({ type: "end" });
      return out;
    }
    const eot = eotMissing(this.file) ? { key: "stalled-eot-missing", params: { ...params, size: this.file?.size ?? 0 } } : { key: "stalled", params };
    this.fail(out, "stalled", `${what}${eotMissing(this.file)}`, true, undefined, eot);
    return out;
  }

  /** A file is complete and no next one has begun: waiting for the next block 0, or the seed dialect's linger. */
  private get afterCompleteFile(): boolean {
    return this.phase === "linger" || (this.phase === "block0" && this.filesDone > 0);
  }

  /** The link dropped. Mid-file (or before any file) that is an error; after a complete file it is the end. */
  disconnected(): YmodemEvent[] {
    const out: YmodemEvent[] = [];
    if (this.phase === "done") return out;
    if (this.afterCompleteFile) {
      this.phase = "done";
      out.push({ type: "end" });
      return out;
    }
    const where = this.file !== null ? "during the file" : "before any file";
    this.fail(out, "disconnected", `disconnected ${where}`, false, undefined, { key: this.file !== null ? "disconnected-file" : "disconnected-none" });
    return out;
  }

  /** A whole frame is in `this.frame`. Returns true when it was NAKed (the caller then purges). */
  private onFrame(out: YmodemEvent[]): boolean {
    const frame = this.frame;
    const len = this.frameNeed - 5;
    const seq = frame[1];
    const complement = frame[2];
    const data = frame.subarray(3, 3 + len);
    const sentCrc = (frame[3 + len] << 8) | frame[4 + len];
    const f = this.file;
    if (this.phase !== "data" || f === null) return this.onBlock0(out, seq, complement, data, sentCrc);

    if ((seq ^ complement) !== 0xff) return this.badBlock(out, `damaged header in a block (number ${seq}, complement ${complement})`, { why: "header", seq, complement });
    if (crc16(f.crc, data) !== sentCrc) return this.badBlock(out, `CRC error in block ${seq}`, { why: "crc", seq });

    const expected = (f.blocks + 1) & 0xff;
    if (seq === expected) {
      this.acceptBlock(out, f, data);
      return false;
    }
    if (seq === (f.blocks & 0xff)) {
      // The sender missed our ACK and resent: ACK again, store nothing. It is no progress, so it counts as a
      // failure: a sender that repeats a block after every ACK must not keep the transfer alive forever.
      f.retransmissions++;
      f.eotPending = false;
      this.repeats++;
      if (++this.failures > this.opts.retries) {
        const detail = { key: "repeated", params: { block: f.blocks, count: this.repeats, retries: this.opts.retries } };
        this.fail(out, "retries", `block ${f.blocks} repeated ${this.repeats} times in a row; gave up after ${this.opts.retries} retries`, true, undefined, detail);
        return false;
      }
      // A repeated block 0 means our ACK + C/G was lost: the sender waits for both again.
      if (f.blocks === 0) out.push(send(ACK, this.startByte));
      else if (!this.streaming) out.push(send(ACK));
      return false;
    }
    this.fail(out, "sequence", `sequence lost: got block ${seq}, expected ${expected}`, true, undefined, { key: "sequence", params: { got: seq, expected } });
    return false;
  }

  private onBlock0(out: YmodemEvent[], seq: number, complement: number, data: Buffer, sentCrc: number): boolean {
    if ((seq ^ complement) !== 0xff) return this.badBlock(out, `damaged header in block 0 (number ${seq}, complement ${complement})`, { why: "header-block0", seq, complement });
    let header: Block0Header | null = null;
    let crc: CrcKind | null = this.crcKind;
    if (crc !== null) {
      if (crc16(crc, data) !== sentCrc) return this.badBlock(out, `CRC-16/${crc.toUpperCase()} error in block 0`, { why: "crc-block0", crc: crc.toUpperCase() });
    } else {
      const matched = block0Crc(data, sentCrc);
      if (matched === null) return this.badBlock(out, "CRC error in block 0 (neither CRC-16/ARC nor CRC-16/XMODEM)", { why: "crc-block0-unknown" });
      crc = matched.crc;
      header = matched.header ?? null;
    }
    if (seq !== 0) {
      this.fail(out, "sequence", `sequence lost: expected block 0, got block ${seq}`, true, undefined, { key: "sequence-block0", params: { got: seq } });
      return false;
    }
    header ??= parseBlock0(data);
    if (header.kind === "end") {
      this.phase = "done";
      out.push(send(ACK), { type: "end" });
      return false;
    }
    this.crcKind = crc; // the CRC that matched a real block 0 holds for the session
    const { name, size, dialect } = header;
    if (this.filesDone >= this.maxFiles) {
      this.fail(out, "too-many-files", `the batch has more than ${this.maxFiles} files (maxFiles)`, true, name, { key: "too-many-files", params: { max: this.maxFiles } });
      return false;
    }
    if (size !== null && size > this.bytesLeft) {
      this.fail(out, "too-large", `announced size ${size} exceeds ${this.maxBytesText()}`, true, name, this.tooLarge("too-large-announced", "too-large-announced-left", { size }));
      return false;
    }
    this.failures = 0;
    this.repeats = 0;
    const capacity = size ?? Math.min(INITIAL_UNSIZED_CAPACITY, this.bytesLeft + 1024);
    this.file = {
      name,
      size,
      dialect,
      crc,
      buf: this.allocate(capacity),
      raw: 0,
      blocks: 0,
      retransmissions: 0,
      blockSizes: 0,
      lastBlockStart: 0,
      eotPending: false,
    };
    this.phase = "data";
    const start: YmodemEvent = { type: "file-start", name, size, dialect, crc };
    if (header.mtime !== undefined) start.mtime = header.mtime;
    if (header.mode !== undefined) start.mode = header.mode;
    out.push(send(ACK, this.startByte), start);
    return false;
  }

  private acceptBlock(out: YmodemEvent[], f: FileState, data: Buffer): void {
    const len = data.length;
    if (f.size !== null) {
      if (f.raw >= f.size) {
        this.fail(out, "size-mismatch", `sender sent more blocks than the announced ${f.size} bytes need`, true, undefined, { key: "more-blocks", params: { size: f.size } });
        return;
      }
      // Cut to the announced size: padding never reaches the file, whatever its value.
      const keep = Math.min(len, f.size - f.raw);
      f.buf.set(keep === len ? data : data.subarray(0, keep), f.raw);
    } else {
      if (f.raw >= this.bytesLeft) {
        this.fail(out, "too-large", `file exceeds ${this.maxBytesText()}`, true, undefined, this.tooLarge("too-large-file", "too-large-file-left"));
        return;
      }
      this.ensureCapacity(f, f.raw + len);
      f.buf.set(data, f.raw);
      f.lastBlockStart = f.raw;
    }
    f.raw += len;
    f.blocks++;
    f.blockSizes |= len === 128 ? 1 : 2;
    f.eotPending = false;
    this.failures = 0;
    this.repeats = 0;
    if (!this.streaming) out.push(send(ACK));
    out.push({ type: "progress", name: f.name, received: stored(f), size: f.size, blocks: f.blocks });
  }

  private onEot(out: YmodemEvent[]): void {
    const f = this.file;
    if (this.phase === "data" && f !== null) {
      // NAK the first EOT (it could be noise; the seed and lrzsz both resend it), ACK the second.
      // YMODEM-g ACKs the first: the stream is trusted, and lrzsz -g waits only for the ACK.
      if (!this.streaming && !f.eotPending) {
        f.eotPending = true;
        out.push(send(NAK));
        return;
      }
      this.finishFile(out, f);
      return;
    }
    if (this.filesDone > 0 && (this.phase === "block0" || this.phase === "linger")) {
      // A repeated final EOT: the sender missed our ACK.
      out.push(this.phase === "block0" ? send(ACK, this.startByte) : send(ACK));
    }
    // An EOT before any file is garbage.
  }

  private finishFile(out: YmodemEvent[], f: FileState): void {
    let data: Buffer;
    if (f.size !== null) {
      if (f.raw < f.size) {
        this.fail(out, "size-mismatch", `sender ended the file after ${f.raw} of the announced ${f.size} bytes`, true, undefined, { key: "ended-early", params: { got: f.raw, size: f.size } });
        return;
      }
      data = f.buf;
    } else {
      // No size announced: only the last block's trailing 0x1A padding goes (standard YMODEM).
      let end = f.raw;
      while (end > f.lastBlockStart && f.buf[end - 1] === CPMEOF) end--;
      if (end > this.bytesLeft) {
        this.fail(out, "too-large", `file exceeds ${this.maxBytesText()}`, true, undefined, this.tooLarge("too-large-file", "too-large-file-left"));
        return;
      }
      // The doubling buffer may be far larger than the file; do not hand the slack on to the caller.
      data = f.buf.length - end > INITIAL_UNSIZED_CAPACITY ? Buffer.from(f.buf.subarray(0, end)) : f.buf.subarray(0, end);
    }
    this.file = null;
    this.filesDone++;
    this.bytesDone += data.length;
    this.failures = 0;
    this.repeats = 0;
    const blockSize: 128 | 1024 | "mixed" = f.blockSizes === 3 ? "mixed" : f.blockSizes === 2 ? 1024 : 128;
    if (f.dialect === "standard") {
      this.phase = "block0";
      out.push(send(ACK, this.startByte));
    } else {
      this.phase = "linger";
      out.push(send(ACK));
    }
    out.push({
      type: "file",
      name: f.name,
      data,
      size: data.length,
      blocks: f.blocks,
      retransmissions: f.retransmissions,
      blockSize,
      crc: f.crc,
    });
  }

  /** A damaged block: fatal in G mode (nothing is resent), else NAK until the retries are spent. */
  private badBlock(out: YmodemEvent[], why: string, whyParams: Readonly<Record<string, string | number>>): boolean {
    const f = this.phase === "data" ? this.file : null;
    if (f !== null && this.streaming) {
      this.fail(out, "bad-block", `${why} in YMODEM-g mode, which cannot resend`, true, undefined, { key: "bad-block-g", params: whyParams });
      return false;
    }
    this.failures++;
    if (this.failures > this.opts.retries) {
      const detail = { key: "bad-block-retries", params: { ...whyParams, retries: this.opts.retries } };
      this.fail(out, "retries", `${why}; gave up after ${this.opts.retries} retries`, true, undefined, detail);
      return false;
    }
    if (f !== null) f.retransmissions++;
    out.push(send(NAK));
    return true;
  }

  private fail(out: YmodemEvent[], code: YmodemErrorCode, what: string, sendCancel: boolean, name: string | undefined, detail: YmodemErrorDetail): void {
    const f = this.file;
    const fileName = name ?? f?.name ?? null;
    const bytes = f !== null ? stored(f) : 0;
    const where = fileName !== null ? ` (file "${fileName}", ${bytes} bytes received)` : ` (${bytes} bytes received)`;
    const error = new YmodemError(code, `YMODEM: ${what}${where}`, fileName, bytes, detail);
    this.phase = "done";
    this.file = null;
    this.frameLen = 0;
    if (sendCancel) out.push(send(CAN, CAN));
    out.push({ type: "error", error });
  }

  /** The detail of a file over maxBytes: `key`, or `leftKey` once files have arrived (see maxBytesText). */
  private tooLarge(key: string, leftKey: string, params: Record<string, number> = {}): YmodemErrorDetail {
    return this.bytesDone === 0 ? { key, params: { ...params, max: this.opts.maxBytes } } : { key: leftKey, params: { ...params, left: this.bytesLeft, max: this.opts.maxBytes } };
  }

  /** "maxBytes 1000", or once files have arrived, "the 500 bytes left of maxBytes 1000". */
  private maxBytesText(): string {
    return this.bytesDone === 0 ? `maxBytes ${this.opts.maxBytes}` : `the ${this.bytesLeft} bytes left of maxBytes ${this.opts.maxBytes}`;
  }

  private allocate(bytes: number): Buffer {
    if (bytes > this.peakBuffer) this.peakBuffer = bytes;
    return Buffer.alloc(bytes);
  }

  private ensureCapacity(f: FileState, need: number): void {
    if (need <= f.buf.length) return;
    // Doubling keeps copies amortised O(1) per byte; the cap bounds memory even if the sender lies.
    const capacity = Math.min(Math.max(f.buf.length * 2, need), this.bytesLeft + 1024);
    const grown = this.allocate(capacity);
    f.buf.copy(grown, 0, 0, f.raw);
    f.buf = grown;
  }
}

/** Every byte the sender announced is in (the file only lacks its EOT). */
function allArrived(f: FileState): boolean {
  return f.size !== null && f.raw >= f.size;
}

/** The tail of a timeout's message when only the EOT is missing. */
function eotMissing(f: FileState | null): string {
  return f !== null && allArrived(f) && !f.eotPending ? `: all ${f.size} announced bytes arrived but EOT is missing` : "";
}

function stored(f: FileState): number {
  return f.size !== null ? Math.min(f.raw, f.size) : f.raw;
}

function send(...bytes: number[]): YmodemEvent {
  return { type: "send", bytes: Buffer.from(bytes) };
}
