/**
 * What the advertiser kinds (ibeacon, eddystone, bthome, advertiser) share: their own advertising timing, the
 * layout of flags, payload and name in the advertising and scan response data, the PDU type a real beacon uses, and
 * the scenario options every advertiser reads.
 *
 * Timing (Core spec Vol 6 Part B 4.4.2.2): an advertising event every intervalMs plus a random advDelay of 0–10 ms,
 * so T_advEvent = interval + advDelay and two devices on the same interval drift apart. The first event comes at a
 * random phase within one interval after the device was created (devices are not switched on in step). The delays
 * come from a generator seeded by the address: the same scenario gives the same timeline on every run. The events
 * run on the simulated clock whether anyone scans or not; the content of event n is a function of n and its time
 * only (a sensor's packet changes every `repeat` advertisements or every `changeEveryMs`), so what a scanner sees
 * does not depend on when it started listening.
 *
 * PDU type: ADV_NONCONN_IND when there is no scan response, ADV_SCAN_IND when there is one (the name did not fit),
 * ADV_IND when the scenario says `connectable: true` (then a central can connect and finds Generic Access).
 */
import { ADV_IND, ADV_NONCONN_IND, ADV_SCAN_IND } from "../../protocol/hci";
import { GattPeripheral } from "../peripheral";
import type { ServiceDefinition } from "../gatt-server";
import { seededRandom } from "../random";
import type { AddressType, AdvertisingEvent } from "../types";
import type { Clock } from "../../protocol/clock";
import { optionalInteger, optionalNumber, ScenarioError, type JsonObject } from "../validate";
import { optionalBoolean } from "./options";

/** Longest legacy advertising (and scan response) data. */
export const MAX_ADV_DATA = 31;
/** Shortest and longest advertising interval of legacy advertising (Core spec 5.x: 20 ms … 10.24 s). */
export const MIN_ADV_INTERVAL_MS = 20;
export const MAX_ADV_INTERVAL_MS = 10240;
/** advDelay: a random 0–10 ms added to every advertising interval. */
export const MAX_ADV_DELAY_MS = 10;
/** Catching up after a long time without a scan: beyond this many events the schedule skips ahead by its mean. */
const MAX_CATCH_UP_EVENTS = 10000;

const AD_FLAGS = 0x01;
const AD_SHORTENED_NAME = 0x08;
const AD_COMPLETE_NAME = 0x09;
/** LE General Discoverable Mode, BR/EDR Not Supported. */
const FLAGS_VALUE = 0x06;

/** One AD structure: length, type, data. */
export function adStructure(type: number, data: Buffer): Buffer {
  return Buffer.concat([Buffer.of(data.length + 1, type), data]);
}

/** Cuts UTF-8 text to at most `max` bytes without splitting a character. */
function truncateUtf8(bytes: Buffer, max: number): Buffer {
  if (bytes.length <= max) return bytes;
  let end = max;
  while (end > 0 && (bytes[end] & 0xc0) === 0x80) end--;
  return bytes.subarray(0, end);
}

/** The options every advertiser kind reads besides its own. */
export const ADVERTISER_OPTIONS = ["intervalMs", "connectable", "rssi"] as const;

export interface AdvertiserOptions {
  intervalMs: number;
  connectable: boolean;
  rssi?: number;
}

/** Reads the shared options; `defaultIntervalMs` is the kind's own default. */
export function parseAdvertiserOptions(spec: JsonObject, field: string, defaultIntervalMs: number): AdvertiserOptions {
  const rssi = spec.rssi === undefined ? undefined : optionalInteger(spec, "rssi", field, 0, -127, 20);
  return {
    intervalMs: optionalNumber(spec, "intervalMs", field, defaultIntervalMs, MIN_ADV_INTERVAL_MS, MAX_ADV_INTERVAL_MS),
    connectable: optionalBoolean(spec, "connectable", field, false),
    ...(rssi !== undefined ? { rssi } : {}),
  };
}

/**
 * How often a sensor's packet changes: every `repeat` advertisements (the same packet sent that many times), or every
 * `changeEveryMs` of simulated time; one excludes the other.
 */
export type ChangeRule = { repeat: number } | { changeEveryMs: number };

export function parseChangeRule(spec: JsonObject, field: string, defaultRepeat: number): ChangeRule {
  if (spec.changeEveryMs !== undefined) {
    if (spec.repeat !== undefined) throw new ScenarioError(`${field}.repeat`, "cannot be combined with changeEveryMs");
    return { changeEveryMs: optionalNumber(spec, "changeEveryMs", field, 0, MIN_ADV_INTERVAL_MS, 24 * 3600 * 1000) };
  }
  return { repeat: optionalInteger(spec, "repeat", field, defaultRepeat, 1, 10000) };
}

export interface AdvertiserConfig extends AdvertiserOptions {
  kind: string;
  address: string;
  addressType: AddressType;
  /** The advertised name; none: the device advertises no name. */
  name?: string;
  clock: Clock;
  maxMtu: number;
}

export abstract class AdvertiserPeripheral extends GattPeripheral {
  readonly connectable: boolean;
  readonly rssi?: number;
  readonly intervalMs: number;
  /** When the device was switched on (created), in simulated ms: uptime counts from here. */
  protected readonly startMs: number;
  private readonly random: () => number;
  private readonly nameBytes: Buffer | null;
  /** The schedule's cursor: the latest event computed. */
  private cursorIndex = 0;
  private cursorAt: number;

  protected constructor(config: AdvertiserConfig) {
    super({ kind: config.kind, address: config.address, addressType: config.addressType, name: config.name ?? "", clock: config.clock, maxMtu: config.maxMtu });
    this.connectable = config.connectable;
    if (config.rssi !== undefined) this.rssi = config.rssi;
    this.intervalMs = config.intervalMs;
    this.nameBytes = config.name === undefined ? null : Buffer.from(config.name, "utf8");
    this.startMs = config.clock.now();
    this.random = seededRandom(Number.parseInt(config.address.replace(/:/g, "").slice(-8), 16));
    this.cursorAt = this.startMs + this.random() * this.intervalMs;
  }

  /** No services of its own: a connectable advertiser offers Generic Access and Generic Attribute only. */
  protected services(): ServiceDefinition[] {
    return [];
  }

  /** The AD structures of event `index` (sent at `atMs`) after the flags, without the name. */
  protected abstract payload(index: number, atMs: number): Buffer;

  /** The longest payload this device ever sends (decides once whether the name fits beside it). */
  protected abstract readonly maxPayloadLength: number;

  /** The first advertising event after `afterMs`. */
  nextAdvertisingEvent(afterMs: number): AdvertisingEvent {
    const mean = this.intervalMs + MAX_ADV_DELAY_MS / 2;
    if (afterMs - this.cursorAt > MAX_CATCH_UP_EVENTS * mean) {
      const skipped = Math.floor((afterMs - this.cursorAt) / mean);
      this.cursorIndex += skipped;
      this.cursorAt += skipped * mean;
    }
    while (this.cursorAt <= afterMs) {
      this.cursorIndex++;
      this.cursorAt += this.intervalMs + this.random() * MAX_ADV_DELAY_MS;
    }
    return this.event(this.cursorIndex, this.cursorAt);
  }

  /** Event `index` at `atMs` as it goes on air. */
  protected event(index: number, atMs: number): AdvertisingEvent {
    const { data, scanResponse } = this.layout(index, atMs);
    const pduType = this.connectable ? ADV_IND : scanResponse.length > 0 || this.hasScanResponse() ? ADV_SCAN_IND : ADV_NONCONN_IND;
    return { atMs, pduType, data, scanResponse };
  }

  /** A device whose scan response may be empty in some events still answers SCAN_REQ in all of them. */
  protected hasScanResponse(): boolean {
    return this.nameBytes !== null && !this.nameFitsInAdvertising();
  }

  private nameFitsInAdvertising(): boolean {
    return this.nameBytes !== null && 3 + this.maxPayloadLength + 2 + this.nameBytes.length <= MAX_ADV_DATA;
  }

  /** Flags, payload and the complete name when it fits; otherwise the name (shortened if need be) in the scan response. */
  protected layout(index: number, atMs: number): { data: Buffer; scanResponse: Buffer } {
    const parts = [adStructure(AD_FLAGS, Buffer.of(FLAGS_VALUE)), this.payload(index, atMs)];
    let scanResponse: Buffer = Buffer.alloc(0);
    if (this.nameBytes) {
      if (this.nameFitsInAdvertising()) parts.push(adStructure(AD_COMPLETE_NAME, this.nameBytes));
      else {
        const name = truncateUtf8(this.nameBytes, MAX_ADV_DATA - 2);
        scanResponse = adStructure(name.length === this.nameBytes.length ? AD_COMPLETE_NAME : AD_SHORTENED_NAME, name);
      }
    }
    return { data: Buffer.concat(parts), scanResponse };
  }

  /** The data of the latest event computed (the controller uses nextAdvertisingEvent; this is for inspection). */
  override advertisingData(): Buffer {
    return this.event(this.cursorIndex, this.cursorAt).data;
  }

  override scanResponseData(): Buffer {
    return this.event(this.cursorIndex, this.cursorAt).scanResponse;
  }
}

/** The packet step of event `index` at `atMs` under `rule`: the sensor's n-th distinct packet. */
export function packetStep(rule: ChangeRule, index: number, atMs: number, startMs: number): number {
  return "repeat" in rule ? Math.floor(index / rule.repeat) : Math.floor(Math.max(0, atMs - startMs) / rule.changeEveryMs);
}

/** Hex bytes of an exact length ("0102…", spaces and dashes allowed), or a ScenarioError naming the field. */
export function requireHexBytes(obj: JsonObject, key: string, field: string, length: number): Buffer {
  const value = obj[key];
  if (value === undefined) throw new ScenarioError(`${field}.${key}`, "is required");
  if (typeof value !== "string" || value.length > 4 * length + 8) throw new ScenarioError(`${field}.${key}`, `must be ${length * 2} hex digits`);
  const compact = value.replace(/[\s-]/g, "");
  if (!/^[0-9a-fA-F]*$/.test(compact) || compact.length !== length * 2) throw new ScenarioError(`${field}.${key}`, `must be ${length * 2} hex digits`);
  return Buffer.from(compact, "hex");
}
