/**
 * Contracts between the parts of the simulator: the virtual controller (HCI, link layer, L2CAP),
 * the virtual peripherals (GATT servers with behaviour) and the clock that drives both.
 * Nothing here imports noble or Node-RED. Time is protocol/clock's `Clock` (a ScaledClock when running, a manual
 * clock in tests).
 */
import type { Clock } from "../protocol/clock";

export type AddressType = "public" | "random";

/** Link-layer model of every connection on one virtual controller. */
export interface LinkSettings {
  /** Connection interval in milliseconds (7.5 … 4000, step 1.25 as in the spec). */
  connectionIntervalMs: number;
  /** Upper bound on link-layer data PDUs per direction per connection event (further bounded by air time). */
  pdusPerEvent: number;
  /** Max link-layer payload: 27 without Data Length Extension, up to 251 with it. */
  dataLength: number;
  /**
   * The virtual peripherals' own ATT MTU (23 … 517): the largest they accept, and what they answer to every
   * Exchange MTU Request, as real servers do; a peripheral's "serverMtu" overrides it. Default 517, the common
   * answer of real stacks (BlueZ, Bumble; NimBLE as configured).
   */
  maxMtu: number;
}

/**
 * A virtual peripheral's own ATT MTU when nothing chooses another (link.maxMtu, serverMtu, a peripheral's maxMtu):
 * the one default of every simulated GATT server, 517 as real stacks answer.
 */
export const DEFAULT_SERVER_MTU = 517;

export const DEFAULT_LINK: LinkSettings = { connectionIntervalMs: 7.5, pdusPerEvent: 6, dataLength: 251, maxMtu: DEFAULT_SERVER_MTU };

/** What a virtual peripheral sees of its current connection; provided by the controller. */
export interface PeripheralLink {
  /**
   * Queue one ATT PDU (L2CAP CID 0x0004) to the central. Resolves when its last link-layer fragment has been
   * delivered to the host; rejects with an Error if the link drops first.
   */
  sendAtt(pdu: Buffer): Promise<void>;
  /** ATT PDUs queued and not yet fully sent: lets a streaming sender apply backpressure. */
  readonly queuedAttPdus: number;
  readonly connected: boolean;
  /**
   * The peripheral ends the link (as the seed's YMODEM server does after a transfer). PDUs already queued
   * to the central go first; the host then gets Disconnection Complete with `reason` (default 0x13, remote
   * user terminated) and the peripheral `disconnected(0x16)`. Idempotent; later sendAtt calls reject.
   */
  disconnect(reason?: number): void;
}

/**
 * One advertising event of a device that keeps its own advertising timing (the advertiser kinds): when it is sent,
 * its legacy PDU type, and the data it carries.
 */
export interface AdvertisingEvent {
  /** Simulated time the event goes on air. */
  atMs: number;
  /** ADV_IND (connectable and scannable), ADV_SCAN_IND (scannable) or ADV_NONCONN_IND. */
  pduType: number;
  /** AD structures of the advertising PDU, at most 31 bytes. */
  data: Buffer;
  /** AD structures answered to a SCAN_REQ in this event (scannable PDU types only), at most 31 bytes. */
  scanResponse: Buffer;
}

/** A virtual peripheral as the controller drives it. */
export interface VirtualPeripheral {
  readonly kind: string;
  /** Lowercase, colon separated, most significant byte first: "d8:75:ba:00:00:01". */
  readonly address: string;
  readonly addressType: AddressType;
  readonly name: string;
  /** AD structures (length, type, data …) for ADV_IND, at most 31 bytes. */
  advertisingData(): Buffer;
  /** AD structures for SCAN_RSP, at most 31 bytes. */
  scanResponseData(): Buffer;
  /** A central connected; the peripheral may start sending once it is subscribed. */
  connected(link: PeripheralLink): void;
  /** One complete ATT PDU from the central (reassembled from link-layer fragments). */
  receiveAtt(pdu: Buffer): void;
  /** The link is gone (HCI reason code: 0x13 central disconnected, 0x08 supervision timeout, 0x16 local). */
  disconnected(reason: number): void;
  /** Release timers; the simulation is over. */
  close(): void;
  /**
   * A device with its own advertising timing (interval plus the random advDelay of the Core spec): its first
   * advertising event after `afterMs`. Calls come with `afterMs` growing. Without it the controller reports the
   * device every advertising interval of its own, with ADV_IND.
   */
  nextAdvertisingEvent?(afterMs: number): AdvertisingEvent;
  /** false: the device ignores connection requests (a beacon); default true. */
  readonly connectable?: boolean;
  /** RSSI the controller reports for this device; default the controller's. */
  readonly rssi?: number;
}

/** What a peripheral factory gets besides its own scenario entry. */
export interface PeripheralContext {
  clock: Clock;
  link: LinkSettings;
  /** Directory of the scenario file, for relative paths inside it ("" for the built-in scenario). */
  baseDir: string;
}
