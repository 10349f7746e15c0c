/**
 * Base class of the GATT-based virtual peripherals: advertising data, the wiring of the controller's
 * callbacks to a GattServer, per-connection state, timers that die with the connection, and a list of
 * protocol violations tests can assert on.
 */
import { normalizeUuid, uuidToBytes } from "../protocol/att";
import { HCI_LOCAL_HOST_TERMINATED } from "../protocol/hci";
import { GattServer, type ServiceDefinition, type Subscription } from "./gatt-server";
import type { Clock, Timer } from "../protocol/clock";
import type { AddressType, PeripheralContext, PeripheralLink, VirtualPeripheral } from "./types";
import type { JsonObject } from "./validate";

/** The scenario fields every peripheral kind shares, validated. */
export interface PeripheralIdentity {
  address: string;
  addressType: AddressType;
  /** From the scenario; undefined lets the kind choose its default name. */
  name?: string;
  /**
   * The peripheral's own ATT MTU (scenario field "serverMtu", default link.maxMtu): what its GATT server answers to
   * every Exchange MTU Request. The link runs at min(client's, this).
   */
  serverMtu: number;
}

/** One kind of virtual peripheral as the scenario loader sees it. */
export interface PeripheralKind {
  readonly kind: string;
  readonly defaultAddressType: AddressType;
  /** Scenario keys this kind reads besides kind, address, addressType and name. */
  readonly options: readonly string[];
  /** Validates `spec` (throwing ScenarioError naming `field`) and builds the peripheral. */
  create(spec: JsonObject, field: string, identity: PeripheralIdentity, ctx: PeripheralContext): VirtualPeripheral;
}

/**
 * The fields every kind's own config (HeartRateConfig, NusUartConfig, …) starts with; the kind fills in the
 * defaults of the optional ones (and documents its default name).
 */
export interface PeripheralConfig {
  address: string;
  addressType?: AddressType;
  name?: string;
  clock: Clock;
  /** The server's own ATT MTU, answered to Exchange MTU; default DEFAULT_SERVER_MTU unless the kind says otherwise. */
  maxMtu?: number;
}

export interface GattPeripheralOptions {
  kind: string;
  address: string;
  addressType: AddressType;
  name: string;
  clock: Clock;
  /** The server's own ATT MTU, answered to Exchange MTU (PeripheralIdentity.serverMtu). */
  maxMtu: number;
  /** Service UUIDs to advertise, in order; in ADV_IND when they fit, else in the scan response. */
  advertisedServices?: readonly string[];
  /** GAP Appearance (characteristic 0x2A01); 0 = unknown. */
  appearance?: number;
  /** Manufacturer Specific Data (AD type 0xFF): company identifier and data; placed after the service UUIDs. */
  manufacturerData?: { companyId: number; data: Buffer };
}

/** The advertising structures do not fit in ADV_IND and the scan response (31 bytes each). */
export class AdvertisingOverflowError extends RangeError {
  constructor(
    /** What did not fit. */
    readonly part: "services" | "manufacturerData",
    /** The bytes the scan response would need with it. */
    readonly bytes: number,
  ) {
    super(`advertising data too long: ${bytes} bytes, max ${MAX_AD_LENGTH}`);
    this.name = "AdvertisingOverflowError";
  }
}

const AD_FLAGS = 0x01;
const AD_INCOMPLETE_16 = 0x02;
const AD_COMPLETE_16 = 0x03;
const AD_INCOMPLETE_128 = 0x06;
const AD_COMPLETE_128 = 0x07;
const AD_SHORTENED_NAME = 0x08;
const AD_COMPLETE_NAME = 0x09;
const AD_MANUFACTURER_DATA = 0xff;
/** LE General Discoverable Mode, BR/EDR Not Supported. */
const FLAGS_VALUE = 0x06;
const MAX_AD_LENGTH = 31;

function adStructure(type: number, data: Buffer): Buffer {
  return Buffer.concat([Buffer.of(data.length + 1, type), data]);
}

/** Cuts UTF-8 text to at most `max` bytes without splitting a character. */
function truncateUtf8(text: string, max: number): Buffer {
  const bytes = Buffer.from(text, "utf8");
  if (bytes.length <= max) return bytes;
  let end = max;
  // Back up over continuation bytes (10xxxxxx) so the cut lands on a character boundary.
  while (end > 0 && (bytes[end] & 0xc0) === 0x80) end--;
  return bytes.subarray(0, end);
}

export abstract class GattPeripheral implements VirtualPeripheral {
  readonly kind: string;
  readonly address: string;
  readonly addressType: AddressType;
  readonly name: string;
  /** Things a central did that a real peripheral would refuse or that our nodes must never do. */
  readonly violations: string[] = [];
  protected readonly clock: Clock;
  protected readonly maxMtu: number;
  private readonly advertisedServices: readonly string[];
  private readonly appearance: number;
  private readonly manufacturerData: Buffer | null;
  private server: GattServer | null = null;
  private currentLink: PeripheralLink | null = null;
  private readonly timers = new Set<Timer>();
  private closed = false;
  private advertising: { adv: Buffer; scanResponse: Buffer } | null = null;
  /** hideServices(): the kind's own services are left out of the table. */
  private servicesHidden = false;
  /** hideServices() was called: the table is rebuilt when the next central connects. */
  private rebuildTable = false;

  protected constructor(options: GattPeripheralOptions) {
    this.kind = options.kind;
    this.address = options.address;
    this.addressType = options.addressType;
    this.name = options.name;
    this.clock = options.clock;
    this.maxMtu = options.maxMtu;
    this.advertisedServices = (options.advertisedServices ?? []).map(normalizeUuid);
    this.appearance = options.appearance ?? 0;
    const m = options.manufacturerData;
    this.manufacturerData = m ? Buffer.concat([Buffer.of(m.companyId & 0xff, (m.companyId >> 8) & 0xff), m.data]) : null;
  }

  /** The kind's own services; 0x1800 and 0x1801 are added in front by the base class. */
  protected abstract services(): ServiceDefinition[];

  /**
   * The GATT server, built on first use (so subclasses can define services with closures over their own
   * fields). Handles are stable for the peripheral's lifetime, as on a real device without bonding (unless a
   * test hides the services).
   */
  get gatt(): GattServer {
    if (!this.server) {
      const own = this.servicesHidden ? [] : this.services();
      const server = new GattServer([...this.coreServices(), ...own], { maxMtu: this.maxMtu });
      server.on("violation", (message) => this.recordViolation(message));
      server.on("subscribed", (uuid, subscription) => this.onSubscribed(uuid, subscription));
      server.on("unsubscribed", (uuid) => this.onUnsubscribed(uuid));
      this.server = server;
    }
    return this.server;
  }

  /** Generic Access (name, appearance) and Generic Attribute (Service Changed), as every LE device has. */
  private coreServices(): ServiceDefinition[] {
    const appearance = Buffer.alloc(2);
    appearance.writeUInt16LE(this.appearance, 0);
    return [
      {
        uuid: "1800",
        characteristics: [
          { uuid: "2a00", properties: ["read"], value: Buffer.from(this.name, "utf8") },
          { uuid: "2a01", properties: ["read"], value: appearance },
        ],
      },
      // Service Changed is never indicated: the table never changes.
      { uuid: "1801", characteristics: [{ uuid: "2a05", properties: ["indicate"], value: Buffer.alloc(4) }] },
    ];
  }

  get isConnected(): boolean {
    return this.currentLink !== null;
  }

  protected get link(): PeripheralLink | null {
    return this.currentLink;
  }

  // ---------------------------------------------------------------------------------------------
  // Fault injection (tests make the peripheral misbehave as real firmware does)

  /**
   * Sends an ATT PDU to the central on the current link as if this peripheral's stack had sent it on its own: a
   * notification before the subscription is confirmed, a truncated indication. Its server's state does not change
   * (an indication sent this way is not outstanding). Rejects when not connected.
   */
  injectAtt(pdu: Buffer): Promise<void> {
    const link = this.currentLink;
    if (!link) return Promise.reject(new Error(`${this.address} is not connected`));
    return link.sendAtt(pdu);
  }

  /**
   * Leaves the kind's own services out of the GATT table (Generic Access and Generic Attribute stay), or puts them
   * back, from the next connection on: firmware that starts a service late. The table, and so its handles, is
   * rebuilt when the next central connects; a central connected now keeps the table it has.
   */
  hideServices(hidden: boolean): void {
    this.servicesHidden = hidden;
    this.rebuildTable = true;
  }

  // ---------------------------------------------------------------------------------------------
  // Advertising

  advertisingData(): Buffer {
    return this.buildAdvertising().adv;
  }

  scanResponseData(): Buffer {
    return this.buildAdvertising().scanResponse;
  }

  /**
   * ADV_IND: flags, the advertised service UUIDs, and the complete name when it fits too. Otherwise the
   * name goes to the scan response (shortened, type 0x08, if even 29 bytes are too few), and so do
   * UUID lists and manufacturer data that do not fit in ADV_IND. Throws AdvertisingOverflowError if they fit in neither.
   */
  private buildAdvertising(): { adv: Buffer; scanResponse: Buffer } {
    if (this.advertising) return this.advertising;
    const adv: Buffer[] = [adStructure(AD_FLAGS, Buffer.of(FLAGS_VALUE))];
    const scan: Buffer[] = [];
    const length = (parts: Buffer[]): number => parts.reduce((n, p) => n + p.length, 0);
    const place = (structure: Buffer, part: AdvertisingOverflowError["part"]): void => {
      if (length(adv) + structure.length <= MAX_AD_LENGTH) adv.push(structure);
      else if (length(scan) + structure.length <= MAX_AD_LENGTH) scan.push(structure);
      else throw new AdvertisingOverflowError(part, length(scan) + structure.length);
    };
    const ownServices = this.gatt.attributes.filter((a) => a.role === "service" && a.owner !== "1800" && a.owner !== "1801").map((a) => a.owner);
    for (const size of [2, 16]) {
      const listed = this.advertisedServices.filter((u) => uuidToBytes(u).length === size);
      if (listed.length === 0) continue;
      const all = ownServices.filter((u) => uuidToBytes(u).length === size);
      const complete = all.every((u) => listed.includes(u));
      const type = size === 2 ? (complete ? AD_COMPLETE_16 : AD_INCOMPLETE_16) : complete ? AD_COMPLETE_128 : AD_INCOMPLETE_128;
      place(adStructure(type, Buffer.concat(listed.map(uuidToBytes))), "services");
    }
    if (this.manufacturerData) place(adStructure(AD_MANUFACTURER_DATA, this.manufacturerData), "manufacturerData");
    const fullName = Buffer.from(this.name, "utf8");
    if (length(adv) + 2 + fullName.length <= MAX_AD_LENGTH) {
      adv.push(adStructure(AD_COMPLETE_NAME, fullName));
    } else {
      const room = MAX_AD_LENGTH - length(scan) - 2;
      const name = truncateUtf8(this.name, room);
      if (name.length > 0) scan.push(adStructure(name.length === fullName.length ? AD_COMPLETE_NAME : AD_SHORTENED_NAME, name));
    }
    this.advertising = { adv: Buffer.concat(adv), scanResponse: Buffer.concat(scan) };
    return this.advertising;
  }

  // ---------------------------------------------------------------------------------------------
  // Controller callbacks

  connected(link: PeripheralLink): void {
    if (this.closed) return;
    // A second connection without a disconnect (e.g. after a controller Reset) replaces the first.
    if (this.currentLink) this.endConnection(HCI_LOCAL_HOST_TERMINATED);
    if (this.rebuildTable) {
      this.rebuildTable = false;
      this.server = null;
    }
    this.currentLink = link;
    this.gatt.attach(link);
    this.onConnected();
  }

  receiveAtt(pdu: Buffer): void {
    if (!this.currentLink) return;
    this.gatt.handlePdu(pdu);
  }

  disconnected(reason: number): void {
    if (!this.currentLink) return;
    this.endConnection(reason);
  }

  close(): void {
    if (this.currentLink) this.endConnection(HCI_LOCAL_HOST_TERMINATED);
    this.cancelTimers();
    this.closed = true;
  }

  private endConnection(reason: number): void {
    this.cancelTimers();
    this.currentLink = null;
    this.gatt.detach();
    this.onDisconnected(reason);
  }

  // ---------------------------------------------------------------------------------------------
  // Hooks for subclasses

  /** A central connected (fresh GATT state: MTU 23, nothing subscribed). */
  protected onConnected(): void {}

  /** The connection ended; timers are already cancelled and CCCDs reset. */
  protected onDisconnected(_reason: number): void {}

  /** The central enabled notifications or indications of a characteristic. */
  protected onSubscribed(_characteristicUuid: string, _subscription: Subscription): void {}

  /** The central disabled them, or the connection ended. */
  protected onUnsubscribed(_characteristicUuid: string): void {}

  protected recordViolation(message: string): void {
    this.violations.push(message);
  }

  // ---------------------------------------------------------------------------------------------
  // Timers (simulated time; cancelled on disconnect and close)

  /** Runs `fn` once after `ms` simulated milliseconds. */
  protected setTimer(ms: number, fn: () => void): Timer {
    let inner: Timer | null = null;
    const handle: Timer = {
      cancel: () => {
        inner?.cancel();
        this.timers.delete(handle);
      },
    };
    inner = this.clock.setTimeout(() => {
      this.timers.delete(handle);
      fn();
    }, ms);
    this.timers.add(handle);
    return handle;
  }

  /**
   * Runs `fn` every `intervalMs`, first after one interval. Each run is scheduled from the start time
   * (not the previous run), so a scaled real-time clock does not drift.
   */
  protected setRepeating(intervalMs: number, fn: () => void): Timer {
    if (!(intervalMs > 0)) throw new RangeError(`interval must be positive, got ${intervalMs}`);
    const start = this.clock.now();
    let count = 0;
    let current: Timer | null = null;
    let cancelled = false;
    const handle: Timer = {
      cancel: () => {
        cancelled = true;
        current?.cancel();
        this.timers.delete(handle);
      },
    };
    const schedule = (): void => {
      count++;
      const delay = Math.max(0, start + count * intervalMs - this.clock.now());
      current = this.clock.setTimeout(() => {
        if (cancelled) return;
        schedule();
        fn();
      }, delay);
    };
    schedule();
    this.timers.add(handle);
    return handle;
  }

  private cancelTimers(): void {
    for (const t of [...this.timers]) t.cancel();
    this.timers.clear();
  }
}

// ---------------------------------------------------------------------------------------------
// Standard services several kinds share

/** Device Information (0x180A) strings; each given one becomes a read-only characteristic. */
export interface DeviceInformation {
  manufacturer?: string;
  model?: string;
  serial?: string;
  hardware?: string;
  firmware?: string;
  software?: string;
}

const DEVICE_INFORMATION_UUIDS: Record<keyof DeviceInformation, string> = {
  manufacturer: "2a29",
  model: "2a24",
  serial: "2a25",
  hardware: "2a27",
  firmware: "2a26",
  software: "2a28",
};

export function deviceInformationService(info: DeviceInformation): ServiceDefinition {
  const keys = Object.keys(DEVICE_INFORMATION_UUIDS) as (keyof DeviceInformation)[];
  return {
    uuid: "180a",
    characteristics: keys.flatMap((key) => {
      const text = info[key];
      return text === undefined ? [] : [{ uuid: DEVICE_INFORMATION_UUIDS[key], properties: ["read" as const], value: Buffer.from(text, "utf8") }];
    }),
  };
}

/** Battery (0x180F) with Battery Level 0x2A19 (read + notify), read from `level` on every read. */
export function batteryService(level: () => number): ServiceDefinition {
  return { uuid: "180f", characteristics: [{ uuid: "2a19", properties: ["read", "notify"], value: () => Buffer.of(level()) }] };
}
