import { crc16, type CrcKind } from "./crc16";
import {
  ACK,
  CAN,
  CPMEOF,
  EOT,
  NAK,
  SOH,
  STX,
  WANT_CRC,
  WANT_G,
  type YmodemDialect,
} from "./ymodem-block";

/**
 * YMODEM sender as a pure state machine: the simulator's virtual NUS peripheral, the nus-ymodem-send node's upload
 * (src/ble/nus-upload.ts) and the tests drive it.
 * Bytes from the receiver go in (`receive`), whole frames come out (each element one block, EOT or CAN CAN;
 * the transport splits them into notifications or writes). The caller owns time: after a silence of its block
 * timeout while `awaitingAnswer`, it calls `timeout()` (the simulator's clock, or src/ble/nus-upload.ts's).
 *
 * - seed dialect: block 0 `"<name> <size>"` (space, zero padded, always SOH), data padded with 0x00,
 *   EOT → NAK → EOT → ACK, then the next file's block 0 at once, or done after the last file (the
 *   peripheral disconnects; there is no empty block 0).
 * - standard dialect (as lrzsz `sz`): block 0 `name NUL size mtime(octal) mode(octal) 0 filesleft
 *   bytesleft`, the block count in bytes 126–127 (or a 1K block 0 if the header does not fit, as sz
 *   does), data padded with 0x1A, each next file after a new C/G, and a final empty block 0.
 *
 * C mode waits for an ACK per block. In G mode (accepted only with `streaming: true`) all data blocks
 * stream after the `G`: `receive` returns at most `maxBurst` of them and `nextFrames` hands out the rest,
 * built on demand, so a large file is never materialised as frames at once.
 */

export interface YmodemSenderFile {
  name: string;
  data: Buffer;
  /** Seconds since the epoch; 0 or absent means unknown (standard dialect only). */
  mtime?: number;
  /** Unix mode; default 0o100644 (standard dialect only). */
  mode?: number;
}

export interface YmodemSenderOptions {
  files: YmodemSenderFile[];
  dialect: YmodemDialect;
  crc: CrcKind;
  /** "auto": STX while more than 896 bytes remain, else SOH (as lrzsz -k). */
  blocks: "soh" | "stx" | "auto";
  /** Accept `G` (YMODEM-g). Without it a `G` is ignored, as by a sender that does not know it. */
  streaming: boolean;
  /**
   * Block numbers, counted per file without wrapping (0 = block 0, 1 = first data block), whose first
   * transmission has one data byte flipped (so its CRC fails); resends are clean.
   */
  corruptBlocks?: number[];
  /** Most streamed frames `receive` returns at once in G mode; the rest come from `nextFrames`. Default 16. */
  maxBurst?: number;
  /**
   * Timeouts, or resends of one frame (after NAK or a repeated C), without a new frame in between, before giving up
   * with CAN CAN (bytes that make no progress do not start the count again). Default 10.
   */
  retries?: number;
  /** Byte that fills the last data block. Default: 0x1A (CPMEOF) in the standard dialect, 0x00 in the seed's. */
  pad?: number;
}

export type YmodemSenderState = "waiting-start" | "sending" | "done" | "aborted";

export interface YmodemSenderStats {
  /** Every frame handed out, resends included. */
  framesSent: number;
  /** Data blocks sent for the first time. */
  blocksSent: number;
  /** Frames sent again (after NAK, C or timeout; not the EOT repeated for the receiver's first NAK). */
  retransmissions: number;
  /** Files whose EOT was ACKed. */
  filesSent: number;
  /** File bytes sent (first transmissions, padding excluded). */
  bytesSent: number;
}

type Phase =
  | "wait-start" // for the first C/G
  | "wait-block0-ack"
  | "wait-data-start" // block 0 ACKed, waiting for C/G
  | "wait-block-ack" // C mode
  | "streaming" // G mode: data blocks being handed out
  | "wait-eot-ack"
  | "wait-next-start" // standard: file done, waiting for C/G for the next block 0
  | "wait-end-ack" // the empty block 0 is out
  | "done"
  | "aborted";

/** lrzsz -k: 1K blocks while more than this many bytes remain. */
const STX_THRESHOLD = 896;
const DEFAULT_MODE = 0o100644;

export class YmodemSender {
  private readonly files: YmodemSenderFile[];
  private readonly dialect: YmodemDialect;
  private readonly crc: CrcKind;
  private readonly blocks: "soh" | "stx" | "auto";
  private readonly streaming: boolean;
  private readonly corrupt: ReadonlySet<number>;
  private readonly maxBurst: number;
  private readonly retries: number;
  private readonly pad: number;

  private phase: Phase = "wait-start";
  private gMode = false;
  private fileIndex = 0;
  /** Next file byte to send. */
  private offset = 0;
  /** Unwrapped number of the last block built for the current file. */
  private blockNumber = 0;
  private lastFrame: Buffer | null = null;
  private canRun = 0;
  private timeouts = 0;
  private canceller: "receiver" | "sender" = "sender";
  /** Resends of the frame awaiting an answer, since it was first sent. */
  private resends = 0;
  /** File bytes of earlier files, and of the current one, that the receiver acknowledged. */
  private ackedBefore = 0;
  private ackedInFile = 0;
  private readonly counters: YmodemSenderStats = {
    framesSent: 0,
    blocksSent: 0,
    retransmissions: 0,
    filesSent: 0,
    bytesSent: 0,
  };

  constructor(opts: YmodemSenderOptions) {
    this.files = opts.files.slice();
    this.dialect = opts.dialect;
    this.crc = opts.crc;
    this.blocks = opts.blocks;
    this.streaming = opts.streaming;
    this.corrupt = new Set(opts.corruptBlocks ?? []);
    this.maxBurst = Math.max(1, opts.maxBurst ?? 16);
    this.retries = opts.retries ?? 10;
    this.pad = opts.pad ?? (opts.dialect === "standard" ? CPMEOF : 0x00);
    // Check every header now, so a bad name fails at construction and not mid-session.
    this.files.forEach((_, i) => this.buildBlock0(i));
  }

  get state(): YmodemSenderState {
    if (this.phase === "wait-start") return "waiting-start";
    if (this.phase === "done" || this.phase === "aborted") return this.phase;
    return "sending";
  }

  /** Who ended an aborted transfer: the receiver's CAN CAN, or this sender (cancel(), or retries used up). */
  get abortedBy(): "receiver" | "sender" | null {
    return this.phase === "aborted" ? this.canceller : null;
  }

  get done(): boolean {
    return this.phase === "done";
  }

  get stats(): YmodemSenderStats {
    return { ...this.counters };
  }

  /** File bytes the receiver acknowledged (C mode: per block; G mode: a whole file at its EOT's ACK). */
  get bytesAcknowledged(): number {
    return this.ackedBefore + this.ackedInFile;
  }

  /** Sent frames are waiting for the receiver's answer, so a silence of a block timeout calls for timeout(). */
  get awaitingAnswer(): boolean {
    return this.phase !== "streaming" && this.phase !== "done" && this.phase !== "aborted";
  }

  /** G mode: more data frames are ready for `nextFrames`. */
  get hasPendingFrames(): boolean {
    return this.phase === "streaming";
  }

  /** Bytes from the receiver → frames to send now. */
  receive(bytes: Uint8Array): Buffer[] {
    const out: Buffer[] = [];
    for (const b of bytes) {
      if (this.phase === "done" || this.phase === "aborted") break;
      if (b === CAN) {
        if (++this.canRun >= 2) {
          this.phase = "aborted";
          this.canceller = "receiver";
        }
        continue;
      }
      this.canRun = 0;
      this.onByte(b, out);
    }
    return out;
  }

  /** G mode: up to `max` more streamed frames (the EOT comes last). Empty when nothing is pending. */
  nextFrames(max: number = this.maxBurst): Buffer[] {
    const out: Buffer[] = [];
    while (out.length < max && this.phase === "streaming") this.sendNextData(out);
    return out;
  }

  /** No answer in time: resend the frame awaiting one; give up with CAN CAN after `retries`. */
  timeout(): Buffer[] {
    if (this.phase === "done" || this.phase === "aborted") return [];
    if (++this.timeouts > this.retries) return this.cancel();
    switch (this.phase) {
      case "wait-block0-ack":
      case "wait-block-ack":
      case "wait-eot-ack":
      case "wait-end-ack":
        return this.resend();
      default:
        // Waiting for the receiver to start, or streaming (G never resends).
        return [];
    }
  }

  /** Abort from our side. */
  cancel(): Buffer[] {
    if (this.phase === "done" || this.phase === "aborted") return [];
    this.phase = "aborted";
    this.canceller = "sender";
    this.counters.framesSent++;
    return [Buffer.from([CAN, CAN])];
  }

  private onByte(b: number, out: Buffer[]): void {
    const start = b === WANT_CRC || (b === WANT_G && this.streaming);
    switch (this.phase) {
      case "wait-start":
      case "wait-next-start":
        if (start) {
          this.gMode = b === WANT_G;
          this.sendBlock0(out);
        }
        return;
      case "wait-block0-ack":
        if (b === ACK) this.phase = "wait-data-start";
        else if (b === NAK || start) out.push(...this.resend()); // C/G again: block 0 was lost
        return;
      case "wait-data-start":
        if (start) {
          this.gMode = b === WANT_G;
          if (this.gMode) {
            this.phase = "streaming";
            out.push(...this.nextFrames(this.maxBurst));
          } else {
            this.sendNextData(out);
          }
        }
        return;
      case "wait-block-ack":
        // A C while block 1 is out: the receiver missed it and asks again (lrzsz rz repeats C until then).
        if (b === ACK) {
          this.ackedInFile = this.offset;
          this.sendNextData(out);
        } else if (b === NAK || (start && this.blockNumber === 1)) out.push(...this.resend());
        return;
      case "wait-eot-ack":
        if (b === ACK) this.fileDone(out);
        else if (b === NAK) out.push(...this.resend(false)); // NAK-then-ACK is the normal EOT handshake
        else if (start && this.blockNumber === 0) out.push(...this.resend()); // empty file: the EOT was lost
        return;
      case "wait-end-ack":
        if (b === ACK) this.phase = "done";
        else if (b === NAK || start) out.push(...this.resend());
        return;
      case "streaming":
      case "done":
      case "aborted":
        return; // G streams regardless of what comes back, apart from CAN CAN
    }
  }

  private sendBlock0(out: Buffer[]): void {
    if (this.fileIndex >= this.files.length) {
      if (this.dialect === "seed") {
        this.phase = "done"; // the seed has no end-of-batch block: the peripheral just disconnects
        return;
      }
      this.phase = "wait-end-ack";
      this.emit(out, frame(SOH, 0, Buffer.alloc(128), this.crc), false);
      return;
    }
    this.offset = 0;
    this.blockNumber = 0;
    this.phase = "wait-block0-ack";
    this.emit(out, this.buildBlock0(this.fileIndex), this.corrupt.has(0));
  }

  /** C mode: the next data block, or EOT; G mode: called repeatedly by nextFrames. */
  private sendNextData(out: Buffer[]): void {
    const file = this.files[this.fileIndex];
    const remaining = file.data.length - this.offset;
    if (remaining <= 0) {
      this.phase = "wait-eot-ack";
      this.emit(out, Buffer.from([EOT]), false);
      return;
    }
    const size = this.blocks === "stx" || (this.blocks === "auto" && remaining > STX_THRESHOLD) ? 1024 : 128;
    const take = Math.min(size, remaining);
    const payload = Buffer.alloc(size, this.pad);
    file.data.copy(payload, 0, this.offset, this.offset + take);
    this.offset += take;
    this.blockNumber++;
    this.counters.blocksSent++;
    this.counters.bytesSent += take;
    if (!this.gMode) this.phase = "wait-block-ack";
    this.emit(out, frame(size === 1024 ? STX : SOH, this.blockNumber & 0xff, payload, this.crc), this.corrupt.has(this.blockNumber));
  }

  private fileDone(out: Buffer[]): void {
    this.counters.filesSent++;
    this.ackedBefore += this.files[this.fileIndex].data.length;
    this.ackedInFile = 0;
    this.fileIndex++;
    if (this.dialect === "standard") {
      this.phase = "wait-next-start";
    } else if (this.fileIndex < this.files.length) {
      this.sendBlock0(out); // the seed receiver sends no C between files
    } else {
      this.phase = "done";
    }
  }

  private buildBlock0(index: number): Buffer {
    const file = this.files[index];
    const name = Buffer.from(file.name, "utf8");
    if (name.length === 0 || name.includes(0)) throw new RangeError(`YMODEM: invalid file name ${JSON.stringify(file.name)}`);
    const size = file.data.length;
    if (this.dialect === "seed") {
      const header = Buffer.from(`${file.name} ${size}`, "utf8");
      if (header.length > 128) throw new RangeError(`YMODEM: file name too long for block 0: ${file.name}`);
      const data = Buffer.alloc(128);
      header.copy(data);
      return frame(SOH, 0, data, this.crc);
    }
    let filesLeft = 0;
    let bytesLeft = 0;
    for (let i = index; i < this.files.length; i++) {
      filesLeft++;
      bytesLeft += this.files[i].data.length;
    }
    const mtime = Math.max(0, Math.floor(file.mtime ?? 0));
    const mode = file.mode ?? DEFAULT_MODE;
    const fields = `${size} ${mtime.toString(8)} ${mode.toString(8)} 0 ${filesLeft} ${bytesLeft}`;
    const header = Buffer.concat([name, Buffer.from([0]), Buffer.from(fields, "latin1"), Buffer.from([0])]);
    if (header.length <= 125) {
      const data = Buffer.alloc(128);
      header.copy(data);
      // sz's courtesy for old receivers: the file's length in 128-byte blocks at the end of block 0.
      const count = Math.ceil(size / 128);
      data[127] = count & 0xff;
      data[126] = (count >> 8) & 0xff;
      return frame(SOH, 0, data, this.crc);
    }
    if (header.length > 1024) throw new RangeError(`YMODEM: file name too long for block 0: ${file.name}`);
    const data = Buffer.alloc(1024);
    header.copy(data);
    return frame(STX, 0, data, this.crc); // as sz: a header that does not fit 128 bytes goes in a 1K block 0
  }

  /** Records the clean frame for resends; the first transmission may be corrupted on purpose. */
  private emit(out: Buffer[], clean: Buffer, corrupt: boolean): void {
    this.lastFrame = clean;
    // Progress: only a new frame starts the counts again (a receiver's stray bytes do not).
    this.resends = 0;
    this.timeouts = 0;
    this.counters.framesSent++;
    if (corrupt && clean.length > 5) {
      const bad = Buffer.from(clean);
      bad[3 + ((clean.length - 5) >> 1)] ^= 0xff;
      out.push(bad);
    } else {
      out.push(clean);
    }
  }

  private resend(countAsRetransmission = true): Buffer[] {
    if (this.lastFrame === null) return [];
    if (countAsRetransmission && ++this.resends > this.retries) return this.cancel();
    this.counters.framesSent++;
    if (countAsRetransmission) this.counters.retransmissions++;
    return [this.lastFrame];
  }
}

/** `[SOH|STX] n ~n data CRC-hi CRC-lo`; the CRC covers the data only. */
export function frame(kind: typeof SOH | typeof STX, seq: number, data: Uint8Array, crc: CrcKind): Buffer {
  const out = Buffer.alloc(data.length + 5);
  out[0] = kind;
  out[1] = seq & 0xff;
  out[2] = 0xff ^ (seq & 0xff);
  out.set(data, 3);
  const value = crc16(crc, data);
  out[3 + data.length] = value >> 8;
  out[4 + data.length] = value & 0xff;
  return out;
}
