/**
 * Nordic UART Service peripherals (docs/protocols.md §3).
 *
 * - NusUartPeripheral: a plain NUS "serial cable". RX (6e400002, write and write without response) hands the
 *   central's bytes to `onRx`; `sendTx(bytes)` sends bytes to the central as TX (6e400003) notifications of at
 *   most MTU − 3 bytes, paced by the link (backpressure: only a few ATT PDUs are ever queued on it). Tests pipe
 *   an external YMODEM sender (lrzsz `sz`) through it.
 * - NusYmodemPeripheral (kind "nus-ymodem"): a YMODEM file sender on NUS, the seed's `nus_modem_server.py` by
 *   default (CRC-16/ARC, `"name size"` block 0 in SOH, STX data blocks when the MTU is above 23, EOT / NAK /
 *   EOT / ACK, then it disconnects), driven by the pure YmodemSender; optionally a XOSS bike computer with its
 *   control characteristic 6e400004 serving named files.
 */
import { EventEmitter } from "node:events";
import * as path from "node:path";
import { normalizeUuid } from "../../protocol/att";
import type { CrcKind } from "../../protocol/crc16";
import type { YmodemDialect } from "../../protocol/ymodem";
import { YmodemSender, type YmodemSenderFile, type YmodemSenderStats } from "../../protocol/ymodem-sender";
import type { ServiceDefinition, Subscription } from "../gatt-server";
import { GattPeripheral, type PeripheralKind } from "../peripheral";
import { readRegularFile, RegularFileError } from "../regular-file";
import { DEFAULT_SERVER_MTU, type AddressType, type LinkSettings, type PeripheralLink, type SimClock, type SimTimer } from "../types";
import { isObject, keyName, optionalEnum, optionalInteger, optionalNumber, optionalString, ScenarioError, type JsonObject } from "../validate";
import { optionalBoolean, optionalIntegerList, rejectTogether, rejectUnknownKeys } from "./options";

export const NUS_SERVICE = "6e400001-b5a3-f393-e0a9-e50e24dcca9e";
/** Central → peripheral. */
export const NUS_RX = "6e400002-b5a3-f393-e0a9-e50e24dcca9e";
/** Peripheral → central (notify). */
export const NUS_TX = "6e400003-b5a3-f393-e0a9-e50e24dcca9e";
/** XOSS control characteristic (write + notify). */
export const XOSS_CONTROL = "6e400004-b5a3-f393-e0a9-e50e24dcca9e";

/** GAP appearance "Generic Computer", as the seed's server advertises. */
const APPEARANCE_GENERIC_COMPUTER = 0x0080;
/** GAP appearance "Cycling: Cycling Computer". */
const APPEARANCE_CYCLING_COMPUTER = 0x0481;

const SOH_BYTE = 0x01;
const STX_BYTE = 0x02;
const EOT_BYTE = 0x04;
const ACK_BYTE = 0x06;
const CAN_BYTE = 0x18;
const WANT_CRC_BYTE = 0x43;
const WANT_G_BYTE = 0x47;

/** HCI reason "Remote User Terminated Connection": what the central hears when the peripheral hangs up. */
export const REMOTE_USER_TERMINATED = 0x13;

// ---------------------------------------------------------------------------------------------
// Deterministic content

/**
 * `sizeBytes` pseudo-random bytes from `seed` (mulberry32, little-endian words): the same on every run and
 * machine, so a test computes the bytes a `sizeBytes` + `seed` peripheral serves.
 */
export function generateFileContent(sizeBytes: number, seed = 0): Buffer {
  if (!Number.isInteger(sizeBytes) || sizeBytes < 0) throw new RangeError(`sizeBytes must be a whole number ≥ 0, got ${sizeBytes}`);
  const out = Buffer.alloc(sizeBytes);
  let a = seed >>> 0;
  for (let i = 0; i < sizeBytes; i += 4) {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    const word = (t ^ (t >>> 14)) >>> 0;
    if (i + 4 <= sizeBytes) {
      out.writeUInt32LE(word, i);
    } else {
      for (let k = 0; i + k < sizeBytes; k++) out[i + k] = (word >>> (8 * k)) & 0xff;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// NUS serial cable

export interface NusUartConfig {
  address: string;
  addressType?: AddressType;
  /** Default "mpy-nus" (the seed's server). */
  name?: string;
  clock: SimClock;
  maxMtu?: number;
  /** The scenario's link, to size the TX window; without it the window is 8. */
  link?: LinkSettings;
  /** Most TX notifications queued on the link at once (backpressure). Default: 2 × pdusPerEvent, 4…32. */
  txWindow?: number;
  /** Bytes the central wrote to RX, in order (Write Requests and Write Commands alike). */
  onRx?: (bytes: Buffer) => void;
  /** The central enabled TX notifications: sendTx works from now on. */
  onTxSubscribed?: () => void;
  /** The link ended (HCI reason). */
  onDisconnected?: (reason: number) => void;
  /** Appearance and kind, for subclasses. */
  appearance?: number;
  kind?: string;
}

interface TxItem {
  data: Buffer;
  offset: number;
  /** Frame-aligned: the item starts a new notification and shares none with the next item. */
  aligned: boolean;
  resolve: () => void;
  reject: (error: Error) => void;
}

export interface NusUartStats {
  /** TX notifications handed to the link. */
  notifications: number;
  /** TX bytes handed to the link. */
  txBytes: number;
  /** RX bytes received from the central. */
  rxBytes: number;
  /** Highest number of ATT PDUs seen queued on the link right after a TX notification was handed to it. */
  maxQueuedAttPdus: number;
  /** Highest number of TX bytes waiting in the peripheral (not yet handed to the link). */
  maxPendingTxBytes: number;
}

export class NusUartPeripheral extends GattPeripheral {
  protected readonly txWindow: number;
  private readonly rxCallback: ((bytes: Buffer) => void) | undefined;
  private readonly txSubscribedCallback: (() => void) | undefined;
  private readonly disconnectedCallback: ((reason: number) => void) | undefined;
  private readonly txQueue: TxItem[] = [];
  private pendingTxBytes = 0;
  private inFlight = 0;
  private pumping = false;
  /** Bumped per connection: completions of an older link must not touch the new one's counters. */
  private generation = 0;
  private readonly counters: NusUartStats = { notifications: 0, txBytes: 0, rxBytes: 0, maxQueuedAttPdus: 0, maxPendingTxBytes: 0 };

  constructor(config: NusUartConfig) {
    super({
      kind: config.kind ?? "nus-uart",
      address: config.address,
      addressType: config.addressType ?? "random",
      name: config.name ?? "mpy-nus",
      clock: config.clock,
      maxMtu: config.maxMtu ?? config.link?.maxMtu ?? DEFAULT_SERVER_MTU,
      advertisedServices: [NUS_SERVICE],
      appearance: config.appearance ?? APPEARANCE_GENERIC_COMPUTER,
    });
    const fromLink = config.link ? Math.min(32, Math.max(4, 2 * config.link.pdusPerEvent)) : 8;
    this.txWindow = config.txWindow ?? fromLink;
    if (!Number.isInteger(this.txWindow) || this.txWindow < 1) throw new RangeError(`txWindow must be a whole number ≥ 1, got ${this.txWindow}`);
    this.rxCallback = config.onRx;
    this.txSubscribedCallback = config.onTxSubscribed;
    this.disconnectedCallback = config.onDisconnected;
  }

  protected services(): ServiceDefinition[] {
    return [
      {
        uuid: NUS_SERVICE,
        characteristics: [
          {
            uuid: NUS_RX,
            properties: ["write", "writeWithoutResponse"],
            onWrite: (value) => {
              this.counters.rxBytes += value.length;
              this.receiveRx(Buffer.from(value));
            },
          },
          { uuid: NUS_TX, properties: ["notify"] },
        ],
      },
    ];
  }

  get stats(): NusUartStats {
    return { ...this.counters };
  }

  /** The connection's ATT MTU (23 while disconnected). */
  get mtu(): number {
    return this.gatt.mtu;
  }

  get txSubscribed(): boolean {
    return this.isConnected && this.gatt.isSubscribed(NUS_TX, "notify");
  }

  /** TX bytes accepted by sendTx and not yet handed to the link. */
  get pendingTx(): number {
    return this.pendingTxBytes;
  }

  /** TX notifications handed to the link and not yet delivered. */
  get txInFlight(): number {
    return this.inFlight;
  }

  /**
   * Sends bytes to the central as TX notifications, in order. A plain call streams: bytes of consecutive calls
   * may share a notification (a serial cable has no message boundaries). `aligned` starts the bytes in a fresh
   * notification and ends their last one with them (a YMODEM frame: its first fragment begins with SOH/STX).
   * Resolves when the last notification carrying these bytes has been delivered; rejects when the central is
   * not subscribed or the link drops first.
   */
  sendTx(bytes: Uint8Array, options: { aligned?: boolean } = {}): Promise<void> {
    if (!this.txSubscribed) return Promise.reject(new Error("NUS TX: the central has not enabled notifications"));
    if (bytes.length === 0) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      this.txQueue.push({ data: Buffer.from(bytes), offset: 0, aligned: options.aligned ?? false, resolve, reject });
      this.pendingTxBytes += bytes.length;
      if (this.pendingTxBytes > this.counters.maxPendingTxBytes) this.counters.maxPendingTxBytes = this.pendingTxBytes;
      this.pumpTx();
    });
  }

  /** Hangs up (reason 0x13 for the central) once everything queued has been sent. False when not connected. */
  requestDisconnect(reason = REMOTE_USER_TERMINATED): boolean {
    if (!this.link) return false;
    this.link.disconnect(reason);
    return true;
  }

  /** Bytes from RX; subclasses take them over, the serial cable passes them to `onRx`. */
  protected receiveRx(bytes: Buffer): void {
    this.rxCallback?.(bytes);
  }

  /** Everything queued has been delivered (nothing waiting, nothing in flight). */
  protected onTxDrained(): void {}

  /** The pump has room: a subclass may queue more now (YMODEM-g pulls frames on demand here). */
  protected onTxRoom(): void {}

  protected override onConnected(): void {
    this.generation++;
  }

  protected override onSubscribed(uuid: string, subscription: Subscription): void {
    if (normalizeUuid(uuid) === normalizeUuid(NUS_TX) && subscription.notify) this.txSubscribedCallback?.();
  }

  protected override onUnsubscribed(uuid: string): void {
    // Notifications can no longer go out: what is queued is lost, as on a real device.
    if (normalizeUuid(uuid) === normalizeUuid(NUS_TX)) this.failTx(new Error(this.isConnected ? "NUS TX: the central disabled notifications" : "NUS TX: disconnected"));
  }

  protected override onDisconnected(reason: number): void {
    this.failTx(new Error("NUS TX: disconnected"));
    this.inFlight = 0;
    this.generation++;
    this.disconnectedCallback?.(reason);
  }

  private failTx(error: Error): void {
    for (const item of this.txQueue.splice(0)) item.reject(error);
    this.pendingTxBytes = 0;
  }

  /** Hands notifications to the link while the window has room; refilled as deliveries complete. */
  private pumpTx(): void {
    if (this.pumping) return; // a callback inside the loop queued more: the running loop takes it
    this.pumping = true;
    try {
      for (;;) {
        if (this.txQueue.length < 2) this.onTxRoom();
        const link = this.link;
        if (!link || this.txQueue.length === 0 || !this.txSubscribed) break;
        if (this.inFlight >= this.txWindow || link.queuedAttPdus >= this.txWindow) break;
        this.sendOneNotification(link);
      }
    } finally {
      this.pumping = false;
    }
    if (this.txQueue.length === 0 && this.inFlight === 0 && this.isConnected) this.onTxDrained();
  }

  private sendOneNotification(link: PeripheralLink): void {
    const room = this.gatt.mtu - 3;
    const parts: Buffer[] = [];
    const finished: TxItem[] = [];
    let size = 0;
    while (size < room && this.txQueue.length > 0) {
      const item = this.txQueue[0];
      // An aligned item starts its own notification; nothing follows it in its last one.
      if (item.aligned && item.offset === 0 && size > 0) break;
      const take = Math.min(room - size, item.data.length - item.offset);
      parts.push(item.data.subarray(item.offset, item.offset + take));
      item.offset += take;
      size += take;
      if (item.offset < item.data.length) break;
      this.txQueue.shift();
      finished.push(item);
      if (item.aligned) break;
    }
    const value = parts.length === 1 ? parts[0] : Buffer.concat(parts);
    this.pendingTxBytes -= value.length;
    let sent: Promise<void>;
    try {
      sent = this.gatt.notify(NUS_TX, value);
    } catch (error) {
      const e = error instanceof Error ? error : new Error(String(error));
      for (const item of finished) item.reject(e);
      this.failTx(e);
      return;
    }
    this.inFlight++;
    this.counters.notifications++;
    this.counters.txBytes += value.length;
    if (link.queuedAttPdus > this.counters.maxQueuedAttPdus) this.counters.maxQueuedAttPdus = link.queuedAttPdus;
    const generation = this.generation;
    sent.then(
      () => {
        if (generation !== this.generation) return;
        this.inFlight--;
        for (const item of finished) item.resolve();
        this.pumpTx();
      },
      (error: unknown) => {
        const e = error instanceof Error ? error : new Error(String(error));
        for (const item of finished) item.reject(e);
        if (generation !== this.generation) return;
        this.inFlight--;
        this.failTx(e);
      },
    );
  }
}

// ---------------------------------------------------------------------------------------------
// YMODEM sender on NUS

export type BlocksOption = "soh" | "stx" | "auto";

export interface NusYmodemConfig {
  address: string;
  addressType?: AddressType;
  /** Default "mpy-nus"; with `xoss`, "XOSS G-" and six digits from the address. */
  name?: string;
  clock: SimClock;
  maxMtu?: number;
  link?: LinkSettings;
  txWindow?: number;
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
}

export interface NusYmodemStats extends NusUartStats, YmodemSenderStats {
  /** YMODEM sessions started (a first start byte, or an accepted XOSS request). */
  sessions: number;
}

/** XOSS control opcodes (ekspla/xoss_sync). */
export const XOSS = {
  IDLE: 0x04,
  FETCH: 0x05,
  FETCH_OK: 0x06,
  SEND: 0x07,
  DISK_SPACE: 0x09,
  DISK_SPACE_OK: 0x0a,
  DELETE: 0x0d,
  ERR_COMMAND: 0x11,
  ERR_NO_FILE: 0x12,
  ERR_MEMORY: 0x13,
  ERR_NOT_IDLE: 0x14,
  ERR_PARSE: 0x15,
  TIME_SET: 0x54,
  STATUS: 0xff,
} as const;

/** Longest XOSS frame: opcode + 18 content bytes + checksum (fits a notification at MTU 23). */
const XOSS_MAX_FRAME = 20;
const XOSS_MAX_CONTENT = 18;
const DEFAULT_DISK_TOTAL_KB = 8104;

/** `opcode content… xor`: the checksum is the XOR of every earlier byte; empty content is a single 00. */
export function xossFrame(opcode: number, content: Uint8Array | string = Buffer.of(0)): Buffer {
  const body = typeof content === "string" ? Buffer.from(content, "utf8") : Buffer.from(content);
  const frame = Buffer.concat([Buffer.of(opcode), body.length === 0 ? Buffer.of(0) : body, Buffer.of(0)]);
  let x = 0;
  for (let i = 0; i < frame.length - 1; i++) x ^= frame[i];
  frame[frame.length - 1] = x;
  return frame;
}

export const FILELIST_NAME = "filelist.txt";

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
  /** `transfer` as each session ends, for a test to wait for. */
  readonly events = new EventEmitter<NusYmodemEvents>();
  /** Every XOSS control frame received and sent, for tests. */
  readonly controlLog: { direction: "in" | "out"; frame: Buffer }[] = [];
  private readonly dialect: YmodemDialect;
  private readonly crc: CrcKind;
  private readonly blocks: BlocksOption;
  private readonly corruptBlocks: readonly number[];
  private readonly streaming: boolean;
  private readonly framing: "aligned" | "packed";
  private readonly blockTimeoutMs: number;
  private readonly retries: number;
  private readonly xoss: boolean;
  private readonly diskTotalKb: number;
  private readonly chatterMs: number | null;
  private readonly repeatBlock: RepeatBlockOption | null;
  private readonly endlessBatch: boolean;
  private readonly withholdEot: boolean;
  private sender: YmodemSender | null = null;
  private session: { files: string[]; mtu: number; blockSize: 128 | 1024; gMode: boolean; startByte: number } | null = null;
  /** The last frame handed to the link (hostile modes repeat it or look at what it was). */
  private lastFrame: Buffer | null = null;
  /** chatterMs: the stray-byte ticker, once block 0 was ACKed. */
  private chatter: SimTimer | null = null;
  /** Per connection (non-XOSS): a session ran; the peripheral then stays quiet until the next connection. */
  private served = false;
  private timer: SimTimer | null = null;
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
    this.xoss = config.xoss ?? false;
    this.diskTotalKb = config.diskTotalKb ?? DEFAULT_DISK_TOTAL_KB;
    this.chatterMs = config.chatterMs ?? null;
    this.repeatBlock = config.repeatBlock ?? null;
    this.endlessBatch = config.endlessBatch ?? false;
    this.withholdEot = config.withholdEot ?? false;
    if (this.chatterMs !== null && !(this.chatterMs > 0)) throw new RangeError(`chatterMs must be positive, got ${this.chatterMs}`);
    if (this.endlessBatch && this.xoss) throw new RangeError("endlessBatch cannot be combined with xoss (XOSS serves one file per request)");
    if (!(this.blockTimeoutMs > 0)) throw new RangeError(`blockTimeoutMs must be positive, got ${this.blockTimeoutMs}`);
    const files = config.files.slice();
    if (this.xoss) {
      if (!files.some((f) => f.name === FILELIST_NAME)) files.push({ name: FILELIST_NAME, data: Buffer.from(files.map((f) => `${f.name}\n`).join(""), "utf8") });
      for (const f of files) {
        const bytes = Buffer.byteLength(f.name, "utf8");
        if (bytes === 0 || bytes > XOSS_MAX_CONTENT) throw new RangeError(`XOSS file names are 1 to ${XOSS_MAX_CONTENT} bytes: ${JSON.stringify(f.name)}`);
      }
    } else if (files.length === 0) {
      throw new RangeError("nus-ymodem needs at least one file");
    }
    this.files = files;
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
          { uuid: XOSS_CONTROL, properties: ["write", "writeWithoutResponse", "notify"], onWrite: (value) => this.onControl(Buffer.from(value)) },
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
    if (this.sender === null) {
      // XOSS sends files only on request; the seed's server serves one session per connection.
      if (this.xoss || this.served) return;
      this.startSession(this.files, bytes.includes(WANT_G_BYTE) && this.streaming ? WANT_G_BYTE : WANT_CRC_BYTE);
    }
    const sender = this.sender;
    if (sender === null) return;
    const cancelled = bytes.includes(CAN_BYTE);
    if (this.chatter !== null) {
      // Chattering: deaf to everything but the receiver's CAN CAN.
      if (cancelled) sender.receive(bytes);
      if (sender.state === "aborted") this.endSession("aborted");
      return;
    }
    if (!cancelled && bytes.includes(ACK_BYTE) && this.hostileAnswer()) return;
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
    if (last === null || (last[0] !== SOH_BYTE && last[0] !== STX_BYTE)) return false;
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
  private startSession(files: readonly YmodemSenderFile[], startByte = WANT_CRC_BYTE): void {
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
      if (this.withholdEot && frame.length === 1 && frame[0] === EOT_BYTE) continue;
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
      if (outcome === "done") this.notifyControl(xossFrame(XOSS.IDLE));
      return;
    }
    // The seed's server hangs up after the final ACK (and when it gives up).
    if (this.dialect === "seed") this.requestDisconnect();
  }

  // -------------------------------------------------------------------------------------------------------------
  // XOSS control characteristic

  private onControl(frame: Buffer): void {
    this.controlLog.push({ direction: "in", frame });
    let x = 0;
    for (let i = 0; i < frame.length - 1; i++) x ^= frame[i];
    if (frame.length < 3 || frame.length > XOSS_MAX_FRAME || x !== frame[frame.length - 1]) {
      this.notifyControl(xossFrame(XOSS.ERR_PARSE));
      return;
    }
    const opcode = frame[0];
    const content = frame.subarray(1, frame.length - 1);
    if (opcode === XOSS.IDLE) {
      // xoss_sync sends 04 00 04 when a status request goes unanswered: back to idle, whatever was running.
      if (this.sender !== null) {
        this.sendFrames(this.sender.cancel());
        this.endSession("aborted");
      }
      this.notifyControl(xossFrame(XOSS.IDLE));
      return;
    }
    if (this.sender !== null) {
      this.notifyControl(xossFrame(XOSS.ERR_NOT_IDLE));
      return;
    }
    switch (opcode) {
      case XOSS.STATUS:
        this.notifyControl(xossFrame(XOSS.IDLE));
        return;
      case XOSS.DISK_SPACE: {
        const usedKb = Math.ceil(this.files.reduce((n, f) => n + f.data.length, 0) / 1024);
        this.notifyControl(xossFrame(XOSS.DISK_SPACE_OK, `${Math.max(0, this.diskTotalKb - usedKb)}/${this.diskTotalKb}`));
        return;
      }
      case XOSS.FETCH: {
        const name = content.toString("utf8");
        const file = this.files.find((f) => f.name === name);
        if (!file) {
          this.notifyControl(xossFrame(XOSS.ERR_NO_FILE, content));
          return;
        }
        this.notifyControl(xossFrame(XOSS.FETCH_OK, content));
        this.startSession([file]);
        return;
      }
      case XOSS.TIME_SET:
        return; // a XOSS G+ Gen1 sets its clock and answers nothing (xoss_sync waits 1 s instead)
      default:
        // Uploads (07), deletes (0d) and anything unknown: this device only serves files.
        this.notifyControl(xossFrame(XOSS.ERR_COMMAND));
    }
  }

  private notifyControl(frame: Buffer): void {
    this.controlLog.push({ direction: "out", frame });
    if (!this.isConnected || !this.gatt.isSubscribed(XOSS_CONTROL, "notify")) return;
    this.gatt.notify(XOSS_CONTROL, frame).catch(() => undefined);
  }
}

// ---------------------------------------------------------------------------------------------
// Scenario

/** Largest generated file: beyond the node's 64 MiB default limit, within reason for memory. */
const MAX_GENERATED_BYTES = 256 * 1024 * 1024;
const FILE_SOURCE_KEYS = ["sizeBytes", "seed"];

function readScenarioFile(baseDir: string, relative: string, field: string): Buffer {
  if (relative.length === 0) throw new ScenarioError(field, "must not be empty");
  try {
    return readRegularFile(path.resolve(baseDir, relative), MAX_GENERATED_BYTES);
  } catch (error) {
    if (!(error instanceof RegularFileError)) throw error;
    // Never the path, which holds the scenario's directory.
    if (error.problem.kind === "too-large") throw new ScenarioError(field, `is larger than ${MAX_GENERATED_BYTES} bytes, the limit for a file to serve`);
    if (error.problem.kind === "unreadable") {
      const code = /^[A-Z][A-Z0-9_]*/.exec(error.problem.reason);
      throw new ScenarioError(field, `cannot be read (${code ? code[0] : "unknown error"})`);
    }
    throw new ScenarioError(field, error.message);
  }
}

function generated(obj: JsonObject, field: string): Buffer {
  if (obj.sizeBytes === undefined) throw new ScenarioError(`${field}.sizeBytes`, "is required");
  const size = optionalInteger(obj, "sizeBytes", field, 0, 0, MAX_GENERATED_BYTES);
  const seed = optionalInteger(obj, "seed", field, 0, 0, 0xffffffff);
  return generateFileContent(size, seed);
}

/** A YMODEM file name: non-empty, no NUL, and a block 0 that holds it (checked again by the sender). */
function checkName(name: string, field: string, maxBytes: number): string {
  if (name.length === 0) throw new ScenarioError(field, "must not be empty");
  if (name.includes("\0")) throw new ScenarioError(field, "must not contain NUL");
  if (Buffer.byteLength(name, "utf8") > maxBytes) throw new ScenarioError(field, `must be at most ${maxBytes} bytes in UTF-8`);
  return name;
}

function parseFiles(spec: JsonObject, field: string, baseDir: string, xoss: boolean): YmodemSenderFile[] {
  const at = `${field}.files`;
  if (!isObject(spec.files)) throw new ScenarioError(at, 'must be an object like { "name": "path" }');
  const entries = Object.entries(spec.files);
  if (entries.length === 0) throw new ScenarioError(at, "must name at least one file");
  return entries.map(([name, source], i) => {
    const where = `${at}.${keyName(i)}`;
    checkName(name, where, xoss ? XOSS_MAX_CONTENT : 100);
    if (typeof source === "string") return { name, data: readScenarioFile(baseDir, source, where) };
    if (isObject(source)) {
      rejectUnknownKeys(source, FILE_SOURCE_KEYS, where);
      return { name, data: generated(source, where) };
    }
    throw new ScenarioError(where, 'must be a path or { "sizeBytes": n, "seed": n }');
  });
}

export const nusYmodemKind: PeripheralKind = {
  kind: "nus-ymodem",
  defaultAddressType: "random",
  options: [
    "file",
    "sizeBytes",
    "seed",
    "filename",
    "files",
    "crc",
    "blocks",
    "corruptBlocks",
    "streaming",
    "framing",
    "dialect",
    "blockTimeoutMs",
    "xoss",
    "chatterMs",
    "repeatBlock",
    "endlessBatch",
    "withholdEot",
  ],
  create(spec, field, identity, ctx) {
    const xoss = optionalBoolean(spec, "xoss", field, false);
    if (xoss) {
      for (const key of ["file", "sizeBytes", "seed", "filename"]) {
        if (spec[key] !== undefined) throw new ScenarioError(`${field}.${key}`, "cannot be combined with xoss (name the device's files in files)");
      }
      if (spec.files === undefined) throw new ScenarioError(`${field}.files`, 'is required with xoss (an object like { "name": "path" })');
    }
    rejectTogether(spec, "file", ["sizeBytes", "seed", "files"], field);
    // The hostile behaviours: one per peripheral, each a different way of never finishing.
    rejectTogether(spec, "chatterMs", ["repeatBlock", "endlessBatch", "withholdEot"], field);
    rejectTogether(spec, "repeatBlock", ["endlessBatch", "withholdEot"], field);
    rejectTogether(spec, "endlessBatch", ["withholdEot", "xoss"], field);
    rejectTogether(spec, "files", ["sizeBytes", "seed", "filename"], field);
    const dialect = optionalEnum(spec, "dialect", field, ["seed", "standard"] as const, "seed");
    // The seed's block 0 is `"name size"` in 128 bytes; sz puts a longer standard header in a 1K block 0.
    const maxName = dialect === "seed" ? 100 : 1000;
    let files: YmodemSenderFile[];
    if (spec.files !== undefined) {
      files = parseFiles(spec, field, ctx.baseDir, xoss);
    } else if (spec.file !== undefined) {
      const relative = optionalString(spec, "file", field, "", 4096);
      const data = readScenarioFile(ctx.baseDir, relative, `${field}.file`);
      const name = spec.filename === undefined ? path.basename(relative) : optionalString(spec, "filename", field, "", maxName);
      files = [{ name: checkName(name, `${field}.filename`, maxName), data }];
    } else {
      // Neither: a generated file, 100,000 bytes (not a multiple of 128 or 1024), named like the seed's test file.
      const data = spec.sizeBytes === undefined ? generateFileContent(100_000, optionalInteger(spec, "seed", field, 0, 0, 0xffffffff)) : generated(spec, field);
      const name = optionalString(spec, "filename", field, "test.bin", maxName);
      files = [{ name: checkName(name, `${field}.filename`, maxName), data }];
    }
    const crc = spec.crc === undefined ? undefined : optionalEnum(spec, "crc", field, ["arc", "xmodem"] as const, "arc");
    try {
      return new NusYmodemPeripheral({
        ...identity,
        clock: ctx.clock,
        maxMtu: identity.serverMtu,
        link: ctx.link,
        files,
        dialect,
        crc,
        blocks: optionalEnum(spec, "blocks", field, ["soh", "stx", "auto"] as const, "auto"),
        corruptBlocks: optionalIntegerList(spec, "corruptBlocks", field, 0, 0x7fffffff),
        streaming: optionalBoolean(spec, "streaming", field, false),
        framing: optionalEnum(spec, "framing", field, ["aligned", "packed"] as const, "aligned"),
        blockTimeoutMs: optionalNumber(spec, "blockTimeoutMs", field, 5000, 10, 600_000),
        xoss,
        chatterMs: spec.chatterMs === undefined ? undefined : optionalNumber(spec, "chatterMs", field, 400, 1, 600_000),
        repeatBlock: spec.repeatBlock === undefined ? undefined : optionalEnum(spec, "repeatBlock", field, ["block0", "data"] as const, "data"),
        endlessBatch: optionalBoolean(spec, "endlessBatch", field, false),
        withholdEot: optionalBoolean(spec, "withholdEot", field, false),
      });
    } catch (error) {
      // The sender's own check of block 0 (a name that does not fit with its size).
      if (error instanceof RangeError) throw new ScenarioError(`${field}.${spec.files !== undefined ? "files" : "filename"}`, error.message);
      throw error;
    }
  },
};
