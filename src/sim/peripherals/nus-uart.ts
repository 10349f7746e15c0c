/**
 * A plain Nordic UART Service peripheral, a "serial cable" (docs/protocols.md §3): RX (6e400002, write and write
 * without response) hands the central's bytes to `onRx`; `sendTx(bytes)` sends bytes to the central as TX (6e400003)
 * notifications of at most MTU − 3 bytes, paced by the link (backpressure: only a few ATT PDUs are ever queued on
 * it). Tests pipe an external YMODEM sender (lrzsz `sz`) through it; NusYmodemPeripheral (nus-ymodem.ts) builds on it.
 */
import { normalizeUuid } from "../../protocol/att";
import { HCI_REMOTE_USER_TERMINATED } from "../../protocol/hci";
import { NUS_RX, NUS_SERVICE, NUS_TX } from "../../protocol/nus";
import type { ServiceDefinition, Subscription } from "../gatt-server";
import { GattPeripheral, type PeripheralConfig } from "../peripheral";
import { DEFAULT_SERVER_MTU, type LinkSettings, type PeripheralLink } from "../types";

/** GAP appearance "Generic Computer", as the seed's server advertises. */
export const APPEARANCE_GENERIC_COMPUTER = 0x0080;

export interface NusUartConfig extends PeripheralConfig {
  /** Default "mpy-nus" (the seed's server). */
  name?: string;
  /** Default: the link's maxMtu, else DEFAULT_SERVER_MTU. */
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
  requestDisconnect(reason = HCI_REMOTE_USER_TERMINATED): boolean {
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
