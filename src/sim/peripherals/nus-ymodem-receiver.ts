/**
 * A YMODEM *receiver* on the Nordic UART Service (kind "nus-ymodem-receiver"; docs/protocols.md §3): a device that
 * takes files from the central, as a MicroPython loader or an embedded YMODEM boot loader does. The central writes
 * blocks to RX; the receiver's C/G, ACK, NAK and CAN go out as TX notifications through the NUS serial cable
 * (nus-uart.ts, with its TX backpressure). The protocol is the pure YmodemSession (ymodem-session.ts: YmodemReceiver
 * plus its retry timer and progress deadline) on the simulator's clock.
 *
 * What tests get: `received` (the files, byte for byte), the `file` and `transfer` events, and `lastTransfer` (how
 * the last transfer ended: completed, cancelled by the sender, or failed and why).
 */
import { EventEmitter } from "node:events";
import type { CrcKind } from "../../protocol/crc16";
import type { Timer } from "../../protocol/clock";
import type { YmodemErrorCode, YmodemEvent } from "../../protocol/ymodem";
import { NAK, SOH, SOH_FRAME_LENGTH, STX, STX_FRAME_LENGTH, type YmodemDialect } from "../../protocol/ymodem-block";
import { YmodemSession } from "../../protocol/ymodem-session";
import { normalizeUuid } from "../../protocol/att";
import { NUS_TX } from "../../protocol/nus";
import type { Subscription } from "../gatt-server";
import { NusUartPeripheral, type NusUartConfig, type NusUartStats } from "./nus-uart";

/** Default cap on one transfer's file bytes (all files of a batch together), and on the bytes kept in `received`. */
export const DEFAULT_RECEIVER_MAX_BYTES = 64 * 1024 * 1024;

export interface NusYmodemReceiverConfig extends Pick<NusUartConfig, "address" | "addressType" | "clock" | "maxMtu" | "link" | "txWindow"> {
  /** Default "mpy-nus". */
  name?: string;
  /**
   * "standard" (default; lrzsz's block 0 `name NUL size mtime mode`, CRC-16/XMODEM, batches ended by an empty
   * block 0) or "seed" (block 0 `"name size"`, CRC-16/ARC, one file per transfer, no end-of-batch block).
   */
  dialect?: YmodemDialect;
  /** What the receiver sends to start: "C" (default; ACK per block) or "G" (YMODEM-g, blocks stream). */
  start?: "C" | "G";
  /**
   * Block numbers, per file and unwrapped (0 = block 0, 1 = the first data block), whose first reception is treated
   * as damaged: NAKed in C mode (the sender resends); in G mode a damaged data block ends the transfer with CAN CAN.
   */
  corruptBlocks?: readonly number[];
  /** Simulated ms without a sign of life before the receiver asks again (C/G, NAK). Default 3000. */
  blockTimeoutMs?: number;
  /** Consecutive timeouts or bad blocks tolerated; also bounds how often C/G is repeated. Default 10. */
  retries?: number;
  /** Most file bytes one transfer may bring (a sender announcing more gets CAN CAN). Default 64 MiB. */
  maxBytes?: number;
}

/** One file received completely. */
export interface ReceivedYmodemFile {
  /** The name block 0 announced. */
  name: string;
  /** Bytes received (the announced size). */
  size: number;
  data: Buffer;
}

export type ReceiverOutcome = "completed" | "cancelled" | "failed";

/** How a transfer (C/G up to the end of the batch, or the seed dialect's single file) ended. */
export interface NusYmodemReceiverTransfer {
  /** completed: every file arrived (and the batch ended); cancelled: the sender sent CAN CAN; failed: see `reason`. */
  outcome: ReceiverOutcome;
  /** The receiver's error code (YmodemError), null when completed. */
  code: YmodemErrorCode | null;
  /** Why it failed or was cancelled, in English (the YmodemError's message); null when completed. */
  reason: string | null;
  /** Names of the files received completely in this transfer. */
  files: string[];
  /** NAKs sent for damaged or missing blocks plus repeated blocks received (the EOT handshake's NAK not counted). */
  retransmissions: number;
  /** Blocks this transfer treated as damaged because of `corruptBlocks`. */
  corrupted: number;
  /** "C" or "G". */
  mode: "C" | "G";
  /** The connection's ATT MTU during the transfer. */
  mtu: number;
}

export interface NusYmodemReceiverEvents {
  /** A file arrived completely (it is already in `received`). */
  file: [file: ReceivedYmodemFile];
  /** A transfer ended (it is already `lastTransfer`). */
  transfer: [transfer: NusYmodemReceiverTransfer];
}

export interface NusYmodemReceiverStats extends NusUartStats {
  /** Transfers ended (as reported by `transfer`). */
  transfers: number;
  /** Files received completely, all transfers together (also those dropped from `received`). */
  filesReceived: number;
}

interface Running {
  session: YmodemSession;
  /** The central wrote something during this session: it is a transfer, reported when it ends. */
  sawSender: boolean;
  files: string[];
  retransmissions: number;
  corrupted: number;
  /** Inside a file (block 0 accepted): data blocks accepted so far, else null. */
  fileBlocks: number | null;
  fileDialect: YmodemDialect | null;
  /** Block numbers of the current file already damaged once (block 0 before the file counts to it). */
  damaged: Set<number>;
  /** The frame being received: its length, bytes seen, its block number byte, whether it is to be damaged. */
  frameNeed: number;
  frameGot: number;
  frameSeq: number;
  corruptFrame: boolean;
  /** When bytes were last fed to the session. */
  lastFeedAt: number;
  /** The connection's ATT MTU when the transfer started (notifications were enabled after the MTU exchange). */
  mtu: number;
}

/**
 * The receiver as a peripheral. When the central enables TX notifications a transfer starts: the receiver sends C
 * (or G) and repeats it every blockTimeoutMs, at most `retries` times, until the sender's block 0 comes; if none does,
 * it falls silent until notifications are enabled again (or the next connection). Data blocks are ACKed (C mode),
 * a damaged block NAKed, a repeat of the previous block ACKed and not stored again; the EOT is answered NAK then ACK
 * (G mode: ACK). Standard dialect: after each file ACK and C/G again, until the empty block 0 ends the batch. Seed
 * dialect: the transfer ends with the file's final ACK. After a completed transfer the next one starts at once (C/G
 * again); after a failed or cancelled one, once the sender has been quiet for blockTimeoutMs (stale blocks purged).
 */
export class NusYmodemReceiverPeripheral extends NusUartPeripheral {
  /**
   * Files received completely, oldest first. Memory is bounded: once they hold more than maxBytes together the
   * oldest are dropped (the newest file always stays).
   */
  readonly received: ReceivedYmodemFile[] = [];
  /** `file` per complete file, `transfer` per ended transfer, for a test to wait for. */
  readonly events = new EventEmitter<NusYmodemReceiverEvents>();
  readonly dialect: YmodemDialect;
  readonly startMode: "C" | "G";
  private readonly crc: CrcKind;
  private readonly corruptBlocks: ReadonlySet<number>;
  private readonly blockTimeoutMs: number;
  private readonly retries: number;
  private readonly maxBytes: number;
  private running: Running | null = null;
  private wakeTimer: Timer | null = null;
  /** After a failed transfer: the next one starts when RX has been quiet this long. */
  private restartTimer: Timer | null = null;
  private last: NusYmodemReceiverTransfer | null = null;
  private keptBytes = 0;
  private transferCount = 0;
  private fileCount = 0;

  constructor(config: NusYmodemReceiverConfig) {
    super({
      kind: "nus-ymodem-receiver",
      address: config.address,
      addressType: config.addressType,
      name: config.name ?? "mpy-nus",
      clock: config.clock,
      maxMtu: config.maxMtu,
      link: config.link,
      txWindow: config.txWindow,
    });
    this.dialect = config.dialect ?? "standard";
    this.startMode = config.start ?? "C";
    this.crc = this.dialect === "seed" ? "arc" : "xmodem";
    this.corruptBlocks = new Set(config.corruptBlocks ?? []);
    this.blockTimeoutMs = config.blockTimeoutMs ?? 3000;
    this.retries = config.retries ?? 10;
    this.maxBytes = config.maxBytes ?? DEFAULT_RECEIVER_MAX_BYTES;
    if (!(this.blockTimeoutMs > 0)) throw new RangeError(`blockTimeoutMs must be positive, got ${this.blockTimeoutMs}`);
    if (!Number.isInteger(this.retries) || this.retries < 0) throw new RangeError(`retries must be a whole number ≥ 0, got ${this.retries}`);
    if (!Number.isInteger(this.maxBytes) || this.maxBytes < 0) throw new RangeError(`maxBytes must be a whole number ≥ 0, got ${this.maxBytes}`);
  }

  /** How the last transfer ended; null before any. */
  get lastTransfer(): NusYmodemReceiverTransfer | null {
    return this.last;
  }

  /** A transfer is running: the receiver is waiting for the sender or receiving. */
  get listening(): boolean {
    return this.running !== null;
  }

  override get stats(): NusYmodemReceiverStats {
    return { ...super.stats, transfers: this.transferCount, filesReceived: this.fileCount };
  }

  protected override onSubscribed(uuid: string, subscription: Subscription): void {
    super.onSubscribed(uuid, subscription);
    if (normalizeUuid(uuid) !== normalizeUuid(NUS_TX) || !subscription.notify) return;
    this.cancelRestart();
    if (this.running === null) this.startTransfer();
  }

  protected override onUnsubscribed(uuid: string): void {
    super.onUnsubscribed(uuid);
    if (normalizeUuid(uuid) !== normalizeUuid(NUS_TX)) return;
    // Nothing can reach the sender any more: the transfer ends as on a dropped link.
    this.cancelRestart();
    const running = this.running;
    if (running !== null) this.apply(running, running.session.disconnected());
  }

  protected override onDisconnected(reason: number): void {
    // The base class has cancelled every timer.
    this.wakeTimer = null;
    this.restartTimer = null;
    const running = this.running;
    if (running !== null) this.apply(running, running.session.disconnected());
    super.onDisconnected(reason);
  }

  protected override receiveRx(bytes: Buffer): void {
    const running = this.running;
    if (running === null) {
      // Not listening. After a failure, stale blocks keep the purge going: restart only after quiet.
      if (this.restartTimer !== null) this.scheduleRestart();
      return;
    }
    running.sawSender = true;
    this.feed(running, bytes);
  }

  /** A fresh session: C (or G) now, repeated by the session's retry timer. */
  private startTransfer(): void {
    if (!this.txSubscribed) return;
    const session = new YmodemSession({
      crc: this.crc,
      mode: this.startMode,
      maxBytes: this.maxBytes,
      retries: this.retries,
      blockTimeout: this.blockTimeoutMs,
    });
    const running: Running = {
      session,
      sawSender: false,
      files: [],
      retransmissions: 0,
      corrupted: 0,
      fileBlocks: null,
      fileDialect: null,
      damaged: new Set(),
      frameNeed: 0,
      frameGot: 0,
      frameSeq: 0,
      corruptFrame: false,
      lastFeedAt: this.clock.now(),
      mtu: this.mtu,
    };
    this.running = running;
    this.apply(running, session.start(this.clock.now()));
  }

  /**
   * Feeds RX bytes to the session frame by frame, so that a frame named in `corruptBlocks` can be damaged (its last
   * CRC byte flipped) on its first reception. The framing mirrors the receiver's: a block starts at SOH/STX and is
   * 133 or 1029 bytes long, whatever it contains.
   */
  private feed(running: Running, chunk: Buffer): void {
    const session = running.session;
    let i = 0;
    while (i < chunk.length && this.running === running) {
      let end: number;
      if (running.frameNeed === 0) {
        let j = i;
        while (j < chunk.length && chunk[j] !== SOH && chunk[j] !== STX) j++;
        if (j > i) {
          end = j; // control bytes (EOT, CAN) or garbage before the next frame
        } else {
          running.frameNeed = chunk[i] === SOH ? SOH_FRAME_LENGTH : STX_FRAME_LENGTH;
          running.frameGot = 0;
          running.corruptFrame = false;
          end = Math.min(chunk.length, i + running.frameNeed);
        }
      } else {
        end = Math.min(chunk.length, i + running.frameNeed - running.frameGot);
      }
      let piece = chunk.subarray(i, end);
      let frameEnded = false;
      if (running.frameNeed > 0) {
        const from = running.frameGot;
        const to = from + piece.length;
        if (from <= 1 && to > 1) running.frameSeq = piece[1 - from];
        // Decided at the first data byte: an end-of-batch block 0 (first byte NUL) is never damaged.
        if (from <= 3 && to > 3) running.corruptFrame = this.damageThisBlock(running, running.frameSeq, piece[3 - from]);
        if (running.corruptFrame && to === running.frameNeed) {
          piece = Buffer.from(piece);
          piece[piece.length - 1] ^= 0xff;
        }
        running.frameGot = to;
        if (to === running.frameNeed) {
          running.frameNeed = running.frameGot = 0;
          frameEnded = true;
        }
      }
      i = end;
      running.lastFeedAt = this.clock.now();
      const events = session.feed(piece, running.lastFeedAt);
      this.apply(running, events);
      // After a NAKed block the rest of the notification was sent before our NAK: stale (the receiver purges too).
      if (frameEnded && events.some((e) => e.type === "send" && e.bytes.length === 1 && e.bytes[0] === NAK)) break;
    }
  }

  /**
   * Whether the frame with block number byte `seq` and first data byte `first` is the first reception of a block
   * named in corruptBlocks (not a repeat of the previous block, not the end-of-batch block 0).
   */
  private damageThisBlock(running: Running, seq: number, first: number): boolean {
    if (this.corruptBlocks.size === 0) return false;
    const expected = running.fileBlocks === null ? 0 : running.fileBlocks + 1;
    if (expected === 0 && first === 0) return false;
    if (seq !== (expected & 0xff) || !this.corruptBlocks.has(expected) || running.damaged.has(expected)) return false;
    running.damaged.add(expected);
    running.corrupted++;
    return true;
  }

  private apply(running: Running, events: YmodemEvent[]): void {
    let ended: { code: YmodemErrorCode; reason: string } | "completed" | null = null;
    for (const event of events) {
      switch (event.type) {
        case "send":
          if (this.txSubscribed) this.sendTx(event.bytes).catch(() => undefined); // lost with the link: reported by it
          break;
        case "file-start":
          running.fileBlocks = 0;
          running.fileDialect = event.dialect;
          break;
        case "progress":
          running.fileBlocks = event.blocks;
          break;
        case "file":
          running.retransmissions += event.retransmissions;
          running.files.push(event.name);
          running.fileBlocks = null;
          running.damaged.clear();
          this.keep({ name: event.name, size: event.size, data: event.data });
          // The seed dialect has no batch: its transfer is over with the file's final ACK.
          if (running.fileDialect === "seed") ended = "completed";
          break;
        case "end":
          ended = "completed";
          break;
        case "error":
          ended = { code: event.error.code, reason: event.error.message };
          break;
      }
    }
    if (this.running !== running) return;
    if (ended !== null) {
      this.endTransfer(running, ended);
      return;
    }
    this.scheduleWake(running);
  }

  private keep(file: ReceivedYmodemFile): void {
    this.fileCount++;
    this.received.push(file);
    this.keptBytes += file.size;
    while (this.received.length > 1 && this.keptBytes > this.maxBytes) this.keptBytes -= this.received.shift()?.size ?? 0;
    this.events.emit("file", file);
  }

  private scheduleWake(running: Running): void {
    this.wakeTimer?.cancel();
    this.wakeTimer = null;
    const at = running.session.nextWakeAt;
    if (at === null) return;
    this.wakeTimer = this.setTimer(Math.max(0, at - this.clock.now()), () => {
      this.wakeTimer = null;
      if (this.running !== running) return;
      const now = this.clock.now();
      // A block timeout makes the receiver drop a partial frame (its retry timer runs blockTimeoutMs after the last
      // byte fed inside a frame): so does this framing.
      if (now - running.lastFeedAt >= this.blockTimeoutMs) running.frameNeed = running.frameGot = 0;
      this.apply(running, running.session.tick(now));
    });
  }

  private endTransfer(running: Running, ended: { code: YmodemErrorCode; reason: string } | "completed"): void {
    this.running = null;
    this.wakeTimer?.cancel();
    this.wakeTimer = null;
    const completed = ended === "completed";
    if (running.sawSender) {
      const transfer: NusYmodemReceiverTransfer = {
        outcome: completed ? "completed" : ended.code === "cancelled-by-sender" ? "cancelled" : "failed",
        code: completed ? null : ended.code,
        reason: completed ? null : ended.reason,
        files: running.files,
        retransmissions: running.retransmissions,
        corrupted: running.corrupted,
        mode: this.startMode,
        mtu: running.mtu,
      };
      this.last = transfer;
      this.transferCount++;
      this.events.emit("transfer", transfer);
    }
    if (!this.isConnected || !this.txSubscribed) return;
    if (completed) this.startTransfer();
    // A failed transfer: purge, then listen again. No sender ever answered the C/G: stay quiet (the C is bounded)
    // until notifications are enabled again.
    else if (running.sawSender) this.scheduleRestart();
  }

  private scheduleRestart(): void {
    this.restartTimer?.cancel();
    this.restartTimer = this.setTimer(this.blockTimeoutMs, () => {
      this.restartTimer = null;
      if (this.running === null) this.startTransfer();
    });
  }

  private cancelRestart(): void {
    this.restartTimer?.cancel();
    this.restartTimer = null;
  }
}
