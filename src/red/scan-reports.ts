/**
 * What the ble-scan node does with each advertising report, apart from Node-RED: its filters, the message payload,
 * decoding (src/protocol/advertisement.ts) with the bind keys, and the per-device limits (throttle, onlyChanges, one
 * error a minute, the replay guard), all held for a bounded number of devices. The node file wires it to the
 * adapter's reports and to Node-RED; the benchmark drives it directly.
 */
import { AdvertisementError, bindKeyLookup, decodeAdvertisement, ReplayGuard, type Decoded } from "../protocol/advertisement";
import { formatUuid, normalizeUuid, uuidFromNoble } from "../protocol/uuid";
import type { NodeStatus } from "node-red";
import type { TransportSettings } from "../ble/adapter";
import { addressProperty, intProperty, PropertyError, stringProperty } from "./properties";
import type { Translate } from "./status";

/** What a report carries, as noble's Peripheral has it (read defensively: it comes from the radio). */
export interface ReportSource {
  readonly address: string;
  readonly addressType?: string;
  readonly rssi: number;
  readonly connectable?: boolean;
  readonly advertisement?: {
    readonly localName?: string;
    readonly txPowerLevel?: number;
    readonly serviceUuids?: readonly string[];
    readonly manufacturerData?: Buffer;
    readonly serviceData?: readonly { readonly uuid: string; readonly data: Buffer }[];
  };
}

/** The payload of one message. */
export interface ScanPayload {
  address: string;
  addressType: string;
  name: string;
  rssi: number;
  txPower: number | null;
  connectable: boolean;
  services: string[];
  manufacturerData: { companyId: number; data: string }[];
  serviceData: { uuid: string; data: string }[];
  decoded: Decoded | null;
}

export interface ScanFilters {
  address: string;
  namePrefix: string;
  /** Canonical UUID (src/protocol/uuid.ts), "" for none. */
  service: string;
  /** Company identifier, null for none. */
  manufacturerId: number | null;
  /** Reports weaker than this are dropped; null: none. */
  minRssi: number | null;
}

export interface ScanOptions {
  filters: ScanFilters;
  active: boolean;
  /** Per device: at most one message per `throttle` ms (0: every report). */
  throttle: number;
  onlyChanges: boolean;
  decode: boolean;
  /** Parsed bind keys, by lowercase address. */
  bindKeys: ReadonlyMap<string, Buffer>;
}

/** The node's editor properties (strings, or absent in flows written by hand). */
export interface ScanDef {
  address?: unknown;
  namePrefix?: unknown;
  service?: unknown;
  manufacturerId?: unknown;
  minRssi?: unknown;
  active?: unknown;
  throttle?: unknown;
  onlyChanges?: unknown;
  decode?: unknown;
}

/** Longest throttle: a day. */
const MAX_THROTTLE_MS = 86_400_000;
/** Devices whose state (throttle, changes, error limit, replay counter) is kept; the least recently heard goes first. */
export const MAX_DEVICES = 1000;
/** At most one error per device in this period. */
export const ERROR_INTERVAL_MS = 60_000;
/**
 * And at most this many errors of all devices in one such period: a radio that sends from ever new addresses (or a
 * room of encrypted sensors without keys) must not flood the log.
 */
export const MAX_ERRORS_PER_INTERVAL = 10;
/** Longest text a name filter may hold (an advertised name is at most 29 bytes). */
const MAX_PREFIX = 248;

function booleanProperty(value: unknown, fallback: boolean): boolean {
  if (value === undefined || value === null || value === "") return fallback;
  return value === true || value === "true";
}

/** "76", "0x004c", "0x4C" → 76; "" → null. The error names the property, never the value. */
export function manufacturerIdProperty(value: unknown): number | null {
  const text = typeof value === "number" ? String(value) : stringProperty(value);
  if (text === "") return null;
  const n = /^0x[0-9a-f]{1,4}$/i.test(text) ? parseInt(text.slice(2), 16) : /^\d{1,5}$/.test(text) ? Number(text) : NaN;
  if (!Number.isInteger(n) || n > 0xffff) throw new PropertyError("manufacturerId", { field: "manufacturerId" }, "manufacturerId must be a company identifier: 0 to 65535, or hex such as 0x004c");
  return n;
}

/** The node's properties, checked (PropertyError names the property). `bindKeys` is parsed by the caller. */
export function scanOptions(def: ScanDef, bindKeys: ReadonlyMap<string, Buffer>): ScanOptions {
  let service = "";
  const serviceText = stringProperty(def.service);
  if (serviceText !== "") {
    try {
      service = normalizeUuid(serviceText);
    } catch {
      throw new PropertyError("service", { field: "service" }, 'service must be a Bluetooth UUID such as "181a" or a 128-bit UUID');
    }
  }
  const namePrefix = stringProperty(def.namePrefix);
  if (namePrefix.length > MAX_PREFIX) throw new PropertyError("too-long", { field: "namePrefix", max: MAX_PREFIX }, `namePrefix must be at most ${MAX_PREFIX} characters`);
  const minRssiText = stringProperty(typeof def.minRssi === "number" ? String(def.minRssi) : def.minRssi);
  return {
    filters: {
      address: addressProperty(def.address),
      namePrefix,
      service,
      manufacturerId: manufacturerIdProperty(def.manufacturerId),
      minRssi: minRssiText === "" ? null : intProperty(minRssiText, 0, -127, 20, "minRssi"),
    },
    active: booleanProperty(def.active, false),
    throttle: intProperty(def.throttle, 0, 0, MAX_THROTTLE_MS, "throttle"),
    onlyChanges: booleanProperty(def.onlyChanges, false),
    decode: booleanProperty(def.decode, true),
    bindKeys,
  };
}

/** A device's problem worth an error (a catalog key suffix of `errors.*`, and its substitutions). */
export interface ScanProblem {
  code: string;
  params: Record<string, string | number>;
  address: string;
  name: string;
}

export type ScanOutcome = { kind: "message"; payload: ScanPayload } | { kind: "error"; problem: ScanProblem } | null;

interface DeviceState {
  sentAt: number | null;
  content: string | null;
  errorAt: number | null;
}

function text(value: unknown): string {
  return typeof value === "string" ? value : "";
}

function companyOf(data: Buffer | undefined): number | null {
  return Buffer.isBuffer(data) && data.length >= 2 ? data.readUInt16LE(0) : null;
}

/** TX_Power of an extended advertising report: "not available". */
const TX_POWER_UNAVAILABLE = 0x7f;

/**
 * The transmit power in dBm, or null. noble takes a TX Power Level AD structure as a signed byte, but the TX_Power
 * field of an extended advertising report (controllers with extended advertising) unsigned, 0x7F meaning none.
 */
function txPowerOf(value: unknown): number | null {
  if (typeof value !== "number" || !Number.isInteger(value) || value < -128 || value > 255 || value === TX_POWER_UNAVAILABLE) return null;
  return value > TX_POWER_UNAVAILABLE ? value - 256 : value;
}

/** Advertised services and service data UUIDs, canonical, in the order given; unreadable ones left out. */
function canonicalUuids(list: readonly unknown[] | undefined): string[] {
  if (!Array.isArray(list)) return [];
  const out: string[] = [];
  for (const u of list) {
    const c = typeof u === "string" ? uuidFromNoble(u) : null;
    if (c !== null) out.push(c);
  }
  return out;
}

/** The reports of one ble-scan node: filter, decode, limit per device. */
export class ScanReports {
  private readonly devices = new Map<string, DeviceState>();
  private readonly replay = new ReplayGuard(MAX_DEVICES);
  private readonly bindKey: (address: string) => Buffer | undefined;
  /** Errors given since `errorWindowAt` (MAX_ERRORS_PER_INTERVAL). */
  private errorWindowAt: number | null = null;
  private errorsInWindow = 0;

  constructor(
    readonly options: ScanOptions,
    private readonly now: () => number = Date.now,
  ) {
    this.bindKey = bindKeyLookup(options.bindKeys);
  }

  /** Devices heard that pass the filters (at most MAX_DEVICES). */
  get deviceCount(): number {
    return this.devices.size;
  }

  /** What to do with one report: a message, an error, or nothing. Never throws. */
  handle(p: ReportSource): ScanOutcome {
    const f = this.options.filters;
    const address = text(p.address).toLowerCase();
    if (address === "") return null;
    if (f.address && address !== f.address) return null;
    const rssi = typeof p.rssi === "number" ? p.rssi : -127;
    if (f.minRssi !== null && rssi < f.minRssi) return null;
    const ad = p.advertisement ?? {};
    const name = text(ad.localName);
    if (f.namePrefix && !name.startsWith(f.namePrefix)) return null;
    const manufacturer = Buffer.isBuffer(ad.manufacturerData) ? ad.manufacturerData : undefined;
    if (f.manufacturerId !== null && companyOf(manufacturer) !== f.manufacturerId) return null;
    const rawServiceData = Array.isArray(ad.serviceData) ? ad.serviceData.filter((s) => typeof s?.uuid === "string" && Buffer.isBuffer(s.data)) : [];
    const serviceDataUuids = canonicalUuids(rawServiceData.map((s) => s.uuid));
    const services = canonicalUuids(ad.serviceUuids);
    if (f.service && !services.includes(f.service) && !serviceDataUuids.includes(f.service)) return null;

    const state = this.stateOf(address);
    const now = this.now();
    if (this.options.throttle > 0 && state.sentAt !== null && now - state.sentAt < this.options.throttle) return null;

    let decoded: Decoded | null = null;
    if (this.options.decode) {
      try {
        decoded = decodeAdvertisement({ address, manufacturerData: manufacturer, serviceData: rawServiceData.map((s) => ({ uuid: s.uuid, data: s.data })) }, this.bindKey, this.replay);
      } catch (error) {
        if (!(error instanceof AdvertisementError)) return this.problem(state, now, { code: "decode-failed", params: { address }, address, name });
        // A repeat of an advertisement already accepted (sensors send each several times), or a replay: nothing to say.
        if (error.code === "bthome-replay") return null;
        return this.problem(state, now, { code: error.code, params: { address }, address, name });
      }
    }
    const manufacturerData = manufacturer && manufacturer.length >= 2 ? [{ companyId: manufacturer.readUInt16LE(0), data: manufacturer.subarray(2).toString("hex") }] : [];
    // Entries whose UUID reads as none are left out (serviceDataUuids has dropped them too, so its indexes are not these).
    const serviceData = rawServiceData.flatMap((s) => {
      const uuid = uuidFromNoble(s.uuid);
      return uuid === null ? [] : [{ uuid: formatUuid(uuid), data: s.data.toString("hex") }];
    });
    if (this.options.onlyChanges) {
      // The decoded content when there is one (BTHome's packet id aside: a new packet of the same readings is no
      // change), else what the device advertises; the signal strength never counts.
      const content = JSON.stringify(decoded ? { ...decoded, packetId: undefined } : { name, services, manufacturerData, serviceData });
      if (content === state.content) return null;
      state.content = content;
    }
    state.sentAt = now;
    const txPower = txPowerOf(ad.txPowerLevel);
    return {
      kind: "message",
      payload: {
        address,
        addressType: text(p.addressType) || "unknown",
        name,
        rssi,
        txPower,
        connectable: p.connectable === true,
        services: services.map(formatUuid),
        manufacturerData,
        serviceData,
        decoded,
      },
    };
  }

  /**
   * An error for the device, unless it had one less than ERROR_INTERVAL_MS ago, or MAX_ERRORS_PER_INTERVAL errors
   * were given in the current period (the device then keeps its turn for the next one).
   */
  private problem(state: DeviceState, now: number, problem: ScanProblem): ScanOutcome {
    if (state.errorAt !== null && now - state.errorAt < ERROR_INTERVAL_MS) return null;
    if (this.errorWindowAt === null || now - this.errorWindowAt >= ERROR_INTERVAL_MS) {
      this.errorWindowAt = now;
      this.errorsInWindow = 0;
    }
    if (this.errorsInWindow >= MAX_ERRORS_PER_INTERVAL) return null;
    this.errorsInWindow++;
    state.errorAt = now;
    return { kind: "error", problem };
  }

  /** The device's state, now the most recently heard; the least recently heard is forgotten beyond MAX_DEVICES. */
  private stateOf(address: string): DeviceState {
    let state = this.devices.get(address);
    if (state) {
      this.devices.delete(address);
    } else {
      state = { sentAt: null, content: null, errorAt: null };
      if (this.devices.size >= MAX_DEVICES) {
        const oldest = this.devices.keys().next();
        if (oldest.done !== true) this.devices.delete(oldest.value);
      }
    }
    this.devices.set(address, state);
    return state;
  }
}

/**
 * The stack that scans actively whatever this package asks (named in the status of a node that wants a passive
 * scan), or null where the scan type is ours to set: BlueZ over D-Bus and the systems' own stacks scan by themselves.
 */
export function activeOnlyStack(settings: TransportSettings, platform: NodeJS.Platform = process.platform): string | null {
  if (settings.transport === "bluez") return "BlueZ";
  if (settings.transport === "native") return platform === "darwin" ? "macOS" : platform === "win32" ? "Windows" : platform;
  return null;
}

/**
 * The status of a scanning node (its adapter ready): a green dot with the devices heard, or a yellow ring when it
 * wants a passive scan that its adapter's stack cannot do. `t` is the ble-scan catalog's.
 */
export function scanStatus(count: number, passiveWanted: boolean, settings: TransportSettings, t: Translate, platform: NodeJS.Platform = process.platform): NodeStatus {
  const stack = passiveWanted ? activeOnlyStack(settings, platform) : null;
  if (stack !== null) return { fill: "yellow", shape: "ring", text: t("status.scanning-active-only", { count, stack }) };
  return { fill: "green", shape: "dot", text: t("status.scanning", { count }) };
}
