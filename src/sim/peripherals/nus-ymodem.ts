/**
 * The YMODEM file sender on the Nordic UART Service (kind "nus-ymodem"; docs/protocols.md §3): the seed's
 * `nus_modem_server.py` by default (CRC-16/ARC, `"name size"` block 0 in SOH, STX data blocks when the MTU is above
 * 23, EOT / NAK / EOT / ACK, then it disconnects), driven by the pure YmodemSender over the NUS serial cable
 * (nus-uart.ts); optionally a XOSS bike computer serving named files through its control characteristic
 * (xoss-control.ts). The scenario kind is in nus-ymodem-scenario.ts, generated content in file-content.ts.
 * A little over 400 lines: one session state machine, whose hostile variants act on the same sender state.
 */
import { EventEmitter } from "node:events";
import type { CrcKind } from "../../protocol/crc16";
import { XOSS_CONTROL_CHARACTERISTIC } from "../../protocol/xoss";
import { ACK, CAN, EOT, SOH, STX, WANT_CRC, WANT_G, type YmodemDialect } from "../../protocol/ymodem-block";
import { YmodemSender, type YmodemSenderFile, type YmodemSenderStats } from "../../protocol/ymodem-sender";
import type { ServiceDefinition } from "../gatt-server";
import type { Timer } from "../../protocol/clock";
import { APPEARANCE_GENERIC_COMPUTER, NusUartPeripheral, type NusUartConfig, type NusUartStats } from "./nus-uart";
import { DEFAULT_DISK_TOTAL_KB, XossControl, xossFiles, type XossControlFrame, type XossDevice } from "./xoss-control";

export { generateFileContent } from "./file-content";
export { NusUartPeripheral, type NusUartConfig, type NusUartStats } from "./nus-uart";
export { FILELIST_NAME } from "./xoss-control";

/** GAP appearance "Cycling: Cycling Computer". */
const APPEARANCE_CYCLING_COMPUTER = 0x0481;

export type BlocksOption = "soh" | "stx" | "auto";

/** The serial cable's settings (nus-uart.ts) the sender passes on; the callbacks and appearance are its own. */
export interface NusYmodemConfig extends Pick<NusUartConfig, "address" | "addressType" | "clock" | "maxMtu" | "link" | "txWindow"> {
  /** Default "mpy-nus"; with `xoss`, "XOSS G-" and six digits from the address. */
  name?: string;
  /**
   * Without `xoss`: the files sent in one session (normally one; several make a batch). With `xoss`: the
   * files the device holds, served by name (a generated filelist.txt is added unless one is given).
   */
  files: YmodemSenderFile[];
  /** Default "seed". */
  dialect?: YmodemDialect;
  /** Default "arc" for the seed dialect, "xmodem" for standard. */
  crc?: CrcKind;
  /**
   * "auto" (default): SOH at MTU 23; above it STX (seed dialect: every data block, padded like the seed's
   * server; standard dialect: lrzsz -k's rule, STX while more than 896 bytes remain).
   */
  blocks?: BlocksOption;
  /** Per session, block numbers (per file, unwrapped, 0 = block 0) whose first transmission is damaged. */
  corruptBlocks?: number[];
  /** Accept `G` (YMODEM-g). */
  streaming?: boolean;
  /**
   * "aligned" (default, the seed's server): every frame starts a notification and ends its last one.
   * "packed": frames back to back, every notification full (a serial bridge): at MTU 247 a 1029-byte frame
   * then costs 4.2 notifications instead of 5, which matters when streaming.
   */
  framing?: "aligned" | "packed";
  /** Resend after this long without an answer (simulated ms). Default 5000, the seed's. */
  blockTimeoutMs?: number;
  /** Timeouts in a row before the sender gives up with CAN CAN. Default 10. */
  retries?: number;
  /** Add the XOSS control characteristic and serve `files` by name. */
  xoss?: boolean;
  /** XOSS `09 00 09`: the total the device reports, in kB. Default 8104 (a real G+). */
  diskTotalKb?: number;
  /** Hostile: after block 0 is ACKed, send no more blocks, only one stray byte (0x00) every this many ms. */
  chatterMs?: number;
  /** Hostile: answer every ACK with the same block again: block 0 ("block0") or the first data block ("data"). */
  repeatBlock?: RepeatBlockOption;
  /** Hostile: after the last file, announce the first one again, forever (the batch never ends). */
  endlessBatch?: boolean;
  /** Hostile: send every data block, then never the EOT (it goes quiet instead). */
  withholdEot?: boolean;
}

export type RepeatBlockOption = "block0" | "data";

/** What a chattering sender sends instead of blocks: a byte that is no frame start, EOT or CAN. */
export const CHATTER_BYTE = 0x00;

export type TransferOutcome = "done" | "aborted" | "disconnected";

export interface NusYmodemTransfer {
  /** Names of the files this session offered (XOSS: the requested one). */
  files: string[];
  outcome: TransferOutcome;
  mtu: number;
  /** G mode was used (the receiver sent `G` and `streaming` is on). */
  streaming: boolean;
  /** Data block size chosen at the start (standard dialect's 1K still ends in 128-byte blocks, as lrzsz -k). */
  blockSize: 128 | 1024;
  stats: YmodemSenderStats;
}

export interface NusYmodemEvents {
  /** A session ended (its record was just added to `transfers`). */
  transfer: [transfer: NusYmodemTransfer];
  /** Bytes the central wrote to RX, before the sender sees them (a test watches a receiver's C, ACK or CAN arrive). */
  rx: [bytes: Buffer];
}

export interface NusYmodemStats extends NusUartStats, YmodemSenderStats {
  /** YMODEM sessions started (a first start byte, or an accepted XOSS request). */
  sessions: number;
}


/**
 * The YMODEM sender as a peripheral. Each connection is a fresh session: the first `C` (or `G` with
 * `streaming`) on RX starts it (XOSS: an accepted `05` request does), frames go out as TX notifications of
 * MTU − 3 bytes, each frame starting a notification (unless `framing: "packed"`). The sender resends after
 * blockTimeoutMs without an answer, counting from when its last notification was delivered; in G mode
 * frames are built one at a time as the link takes them. After the final ACK the seed dialect hangs up (when the
 * controller's link supports it, else it goes quiet); the standard dialect stays connected, as a serial line
 * would; XOSS notifies `04 00 04` on its control characteristic and waits for the next request.
 *
 * Hostile behaviours a scenario can ask for (one at a time), each a way for a download never to finish:
 * `chatterMs` (after block 0 is ACKed, only a stray byte every chatterMs), `repeatBlock` (every ACK answered with
 * the same block 0 or first data block again), `endlessBatch` (the files announced again and again), `withholdEot`
 * (every data block, then never the EOT).
 */
export class NusYmodemPeripheral extends NusUartPeripheral {
  /** The files served (XOSS: including filelist.txt). */
  readonly files: readonly YmodemSenderFile[];
  /** Every session that ended, in order. */
  readonly transfers: NusYmodemTransfer[] = [];
  /** `transfer` as each session ends and `rx` as bytes arrive, for a test to wait for. */
  readonly events = new EventEmitter<NusYmodemEvents>();
  /** Every XOSS control frame received and sent, for tests. */
  readonly controlLog: XossControlFrame[] = [];
  private readonly dialect: YmodemDialect;
  private readonly crc: CrcKind;
  private readonly blocks: BlocksOption;
  private readonly corruptBlocks: readonly number[];
  private readonly streaming: boolean;
  private readonly framing: "aligned" | "packed";
  private readonly blockTimeoutMs: number;
  private readonly retries: number;
  /** The XOSS control point, when the peripheral is a XOSS device. */
  private readonly xoss: XossControl | null;
  private readonly chatterMs: number | null;
  private readonly repeatBlock: RepeatBlockOption | null;
  private readonly endlessBatch: boolean;
  private readonly withholdEot: boolean;
  private sender: YmodemSender | null = null;
  private session: { files: string[]; mtu: number; blockSize: 128 | 1024; gMode: boolean; startByte: number } | null = null;
  /** The last frame handed to the link (hostile modes repeat it or look at what it was). */
  private lastFrame: Buffer | null = null;
  /** chatterMs: the stray-byte ticker, once block 0 was ACKed. */
  private chatter: Timer | null = null;
  /** Per connection (non-XOSS): a session ran; the peripheral then stays quiet until the next connection. */
  private served = false;
  private timer: Timer | null = null;
  private sessions = 0;
  private readonly finished: YmodemSenderStats = { framesSent: 0, blocksSent: 0, retransmissions: 0, filesSent: 0, bytesSent: 0 };

  constructor(config: NusYmodemConfig) {
    super({
      kind: "nus-ymodem",
      address: config.address,
      addressType: config.addressType,
      name: config.name ?? (config.xoss ? `XOSS G-${String(parseInt(config.address.slice(-5).replace(":", ""), 16)).padStart(6, "0")}` : "mpy-nus"),
      clock: config.clock,
      maxMtu: config.maxMtu,
      link: config.link,
      txWindow: config.txWindow,
      appearance: config.xoss ? APPEARANCE_CYCLING_COMPUTER : APPEARANCE_GENERIC_COMPUTER,
    });
    this.dialect = config.dialect ?? "seed";
    this.crc = config.crc ?? (this.dialect === "seed" ? "arc" : "xmodem");
    this.blocks = config.blocks ?? "auto";
    this.corruptBlocks = config.corruptBlocks ?? [];
    this.streaming = config.streaming ?? false;
    this.framing = config.framing ?? "aligned";
    this.blockTimeoutMs = config.blockTimeoutMs ?? 5000;
    this.retries = config.retries ?? 10;
    this.chatterMs = config.chatterMs ?? null;
    this.repeatBlock = config.repeatBlock ?? null;
    this.endlessBatch = config.endlessBatch ?? false;
    this.withholdEot = config.withholdEot ?? false;
    if (this.chatterMs !== null && !(this.chatterMs > 0)) throw new RangeError(`chatterMs must be positive, got ${this.chatterMs}`);
    if (this.endlessBatch && config.xoss) throw new RangeError("endlessBatch cannot be combined with xoss (XOSS serves one file per request)");
    if (!(this.blockTimeoutMs > 0)) throw new RangeError(`blockTimeoutMs must be positive, got ${this.blockTimeoutMs}`);
    let files = config.files.slice();
    if (config.xoss) {
      files = xossFiles(files);
    } else if (files.length === 0) {
      throw new RangeError("nus-ymodem needs at least one file");
    }
    this.files = files;
    this.xoss = config.xoss ? new XossControl(this.xossDevice(), config.diskTotalKb ?? DEFAULT_DISK_TOTAL_KB, this.controlLog) : null;
    // Builds every block 0 once, so a bad name fails here and not when a central connects.
    new YmodemSender({ files, dialect: this.dialect, crc: this.crc, blocks: "soh", streaming: false });
  }

  protected override services(): ServiceDefinition[] {
    const services = super.services();
    if (this.xoss) {
      services[0] = {
        ...services[0],
        characteristics: [
          ...services[0].characteristics,
          // xoss_sync writes commands without response; write with response works as well.
          { uuid: XOSS_CONTROL_CHARACTERISTIC, properties: ["write", "writeWithoutResponse", "notify"], onWrite: (value) => this.xoss?.receive(Buffer.from(value)) },
        ],
      };
    }
    return services;
  }

  /** Totals over every session so far, the running one included. */
  override get stats(): NusYmodemStats {
    const current = this.sender?.stats;
    const sum = (key: keyof YmodemSenderStats): number => this.finished[key] + (current ? current[key] : 0);
    return {
      ...super.stats,
      sessions: this.sessions,
      framesSent: sum("framesSent"),
      blocksSent: sum("blocksSent"),
      retransmissions: sum("retransmissions"),
      filesSent: sum("filesSent"),
      bytesSent: sum("bytesSent"),
    };
  }

  /** A session is running (XOSS: the device is not idle). */
  get busy(): boolean {
    return this.sender !== null;
  }

  protected override onConnected(): void {
    super.onConnected();
    this.served = false;
  }

  protected override onDisconnected(reason: number): void {
    this.timer = null; // the base class cancelled it
    this.endSession("disconnected");
    super.onDisconnected(reason);
  }

  protected override receiveRx(bytes: Buffer): void {
    this.events.emit("rx", bytes);
    if (this.sender === null) {
      // XOSS sends files only on request; the seed's server serves one session per connection.
      if (this.xoss || this.served) return;
      this.startSession(this.files, bytes.includes(WANT_G) && this.streaming ? WANT_G : WANT_CRC);
    }
    const sender = this.sender;
    if (sender === null) return;
    const cancelled = bytes.includes(CAN);
    if (this.chatter !== null) {
      // Chattering: deaf to everything but the receiver's CAN CAN.
      if (cancelled) sender.receive(bytes);
      if (sender.state === "aborted") this.endSession("aborted");
      return;
    }
    if (!cancelled && bytes.includes(ACK) && this.hostileAnswer()) return;
    this.cancelTimer();
    let frames = sender.receive(bytes);
    if (this.endlessBatch && this.session && this.batchEnding(sender, frames)) frames = this.nextRound(this.session.startByte);
    if (sender.hasPendingFrames && this.session) this.session.gMode = true;
    this.sendFrames(frames);
    this.afterProgress();
  }

  /** chatterMs / repeatBlock: answers an ACK the hostile way instead of the sender's. True when it did. */
  private hostileAnswer(): boolean {
    const last = this.lastFrame;
    if (last === null || (last[0] !== SOH && last[0] !== STX)) return false;
    const block0 = last[1] === 0;
    if (this.chatterMs !== null && block0) {
      this.cancelTimer();
      this.chatter = this.setRepeating(this.chatterMs, () => {
        if (this.txSubscribed) this.sendTx(Buffer.of(CHATTER_BYTE)).catch(() => undefined);
      });
      return true;
    }
    if (this.repeatBlock !== null && block0 === (this.repeatBlock === "block0")) {
      this.cancelTimer();
      this.sendFrames([last]);
      this.afterProgress();
      return true;
    }
    return false;
  }

  /** endlessBatch: the sender just finished its last file (seed: done; standard: the empty block 0 is out). */
  private batchEnding(sender: YmodemSender, frames: Buffer[]): boolean {
    if (this.dialect === "seed") return sender.state === "done";
    return frames.some((f) => f.length >= 133 && f[1] === 0 && f[3] === 0);
  }

  /** endlessBatch: a fresh sender over the same files, started as if the receiver had asked for the next file. */
  private nextRound(startByte: number): Buffer[] {
    const old = this.sender;
    if (old !== null) this.foldStats(old);
    this.sender = this.newSender(this.files, this.blocksFor(this.session?.mtu ?? this.gatt.mtu));
    return this.sender.receive(Buffer.of(startByte));
  }

  private foldStats(sender: YmodemSender): void {
    const stats = sender.stats;
    for (const key of Object.keys(this.finished) as (keyof YmodemSenderStats)[]) this.finished[key] += stats[key];
  }

  protected override onTxRoom(): void {
    const sender = this.sender;
    // YMODEM-g: frames are built only as the link takes them, never the whole file at once.
    if (sender !== null && sender.hasPendingFrames) this.sendFrames(sender.nextFrames(1));
  }

  protected override onTxDrained(): void {
    this.afterProgress();
  }

  /** The seed decides at its first C: SOH only at MTU 23, else STX; the standard dialect uses 1K the lrzsz way. */
  private blocksFor(mtu: number): BlocksOption {
    return this.blocks !== "auto" ? this.blocks : mtu <= 23 ? "soh" : this.dialect === "seed" ? "stx" : "auto";
  }

  private newSender(files: readonly YmodemSenderFile[], blocks: BlocksOption): YmodemSender {
    return new YmodemSender({
      files: files.slice(),
      dialect: this.dialect,
      crc: this.crc,
      blocks,
      streaming: this.streaming,
      corruptBlocks: this.corruptBlocks.slice(),
      maxBurst: 1,
      retries: this.retries,
    });
  }

  /** `startByte`: what the receiver sent to start it (C, or G for YMODEM-g), as an endless batch asks again. */
  private startSession(files: readonly YmodemSenderFile[], startByte = WANT_CRC): void {
    const mtu = this.gatt.mtu;
    const blocks = this.blocksFor(mtu);
    this.sender = this.newSender(files, blocks);
    this.session = { files: files.map((f) => f.name), mtu, blockSize: blocks === "soh" ? 128 : 1024, gMode: false, startByte };
    this.lastFrame = null;
    this.sessions++;
    this.served = true;
  }

  private sendFrames(frames: Buffer[]): void {
    if (frames.length === 0) return;
    this.cancelTimer();
    for (const frame of frames) {
      // withholdEot: the sender believes it sent the EOT (and resends it); none ever leaves.
      if (this.withholdEot && frame.length === 1 && frame[0] === EOT) continue;
      this.lastFrame = frame;
      if (!this.txSubscribed) {
        this.recordViolation(`nus-ymodem: a ${frame.length}-byte frame is lost: the central has not enabled TX notifications`);
        continue;
      }
      // Lost with the link: the session ends through onDisconnected.
      this.sendTx(frame, { aligned: this.framing === "aligned" }).catch(() => undefined);
    }
  }

  /** After any step: finish a done or aborted session, else (re)arm the sender's timer while it waits. */
  private afterProgress(): void {
    const sender = this.sender;
    // A chattering sender has stopped for good: no resend on its own timer either.
    if (sender === null || this.chatter !== null) return;
    if (sender.state === "done" || sender.state === "aborted") {
      // Let the last frames (CAN CAN) go out before anything else happens.
      if (this.pendingTx > 0 || this.txInFlight > 0) return;
      this.endSession(sender.state);
      return;
    }
    if (this.pendingTx > 0 || this.txInFlight > 0 || sender.hasPendingFrames) return;
    if (sender.state === "waiting-start") return; // the seed's server just waits for its C
    if (this.timer === null) this.timer = this.setTimer(this.blockTimeoutMs, () => this.onTimeout());
  }

  private onTimeout(): void {
    this.timer = null;
    const sender = this.sender;
    if (sender === null) return;
    const frames = sender.timeout();
    this.sendFrames(frames);
    this.afterProgress();
  }

  private cancelTimer(): void {
    this.timer?.cancel();
    this.timer = null;
  }

  private endSession(outcome: TransferOutcome): void {
    const sender = this.sender;
    const session = this.session;
    if (sender === null || session === null) return;
    this.cancelTimer();
    this.chatter?.cancel();
    this.chatter = null;
    this.lastFrame = null;
    this.sender = null;
    this.session = null;
    const stats = sender.stats;
    this.foldStats(sender);
    const transfer: NusYmodemTransfer = { files: session.files, outcome, mtu: session.mtu, streaming: session.gMode, blockSize: session.blockSize, stats };
    this.transfers.push(transfer);
    this.events.emit("transfer", transfer);
    if (outcome === "disconnected") return;
    if (this.xoss) {
      if (outcome === "done") this.xoss.transferDone();
      return;
    }
    // The seed's server hangs up after the final ACK (and when it gives up).
    if (this.dialect === "seed") this.requestDisconnect();
  }

  /** What the XOSS control point reaches of this peripheral. */
  private xossDevice(): XossDevice {
    return {
      files: this.files,
      isBusy: () => this.busy,
      serve: (file) => this.startSession([file]),
      abort: () => {
        const sender = this.sender;
        if (sender === null) return;
        this.sendFrames(sender.cancel());
        this.endSession("aborted");
      },
      notify: (frame) => {
        if (!this.isConnected || !this.gatt.isSubscribed(XOSS_CONTROL_CHARACTERISTIC, "notify")) return;
        this.gatt.notify(XOSS_CONTROL_CHARACTERISTIC, frame).catch(() => undefined);
      },
    };
  }
}

