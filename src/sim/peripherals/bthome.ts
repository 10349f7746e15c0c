/**
 * Virtual BTHome v2 sensor (kind "bthome"), built here from the BTHome v2 format (bthome.io): service data with the
 * 16-bit UUID 0xFCD2, a device information byte (version 2 in bits 5–7, bit 0 encrypted, bit 2 trigger based), then
 * measurement objects — an object id and its little-endian value, ordered by object id.
 *
 * The scenario lists measurements with values; each new packet takes the next value of every list (cycled) and the
 * next packet id (object 0x00). A packet is sent `repeat` times (every advertisement, default 4) or for
 * `changeEveryMs`, as real sensors repeat each packet so a receiver that misses one still gets the reading.
 *
 * With a bindKey (32 hex digits) the objects are encrypted with AES-128-CCM (Node's crypto): nonce = the address
 * (6 bytes as written) + UUID 0xFCD2 (little-endian) + device information byte + counter (4 bytes little-endian),
 * 4-byte MIC, no associated data; the service data is then device information, ciphertext, counter, MIC. The counter
 * grows by one per new packet (the repeats of a packet carry the same counter, as on air).
 */
import * as crypto from "node:crypto";
import { AdvertiserPeripheral, ADVERTISER_OPTIONS, adStructure, MAX_ADV_DATA, packetStep, parseAdvertiserOptions, parseChangeRule, requireHexBytes, type AdvertiserConfig, type ChangeRule } from "./advertiser";
import type { PeripheralKind } from "../peripheral";
import { rejectUnknownKeys, requireObject, ScenarioError, type JsonObject } from "../validate";
import { optionalBoolean } from "./options";

const AD_SERVICE_DATA_16 = 0x16;
export const BTHOME_UUID = 0xfcd2;
const DEVICE_INFO_V2 = 0x40;
const FLAG_ENCRYPTED = 0x01;
const FLAG_TRIGGER_BASED = 0x04;
const PACKET_ID = 0x00;
const MAX_VALUES = 1000;
const MAX_MEASUREMENTS = 20;

type ValueKind = "number" | "binary" | "button" | "dimmer";

/** One BTHome v2 object type: id, name (the specification's, in camel case, as the decoder reports it), width, signedness, factor. */
export interface BthomeObjectType {
  id: number;
  name: string;
  bytes: 1 | 2 | 3 | 4;
  signed: boolean;
  factor: number;
  kind: ValueKind;
}

const n = (id: number, name: string, bytes: 1 | 2 | 3 | 4, signed: boolean, factor: number): BthomeObjectType => ({ id, name, bytes, signed, factor, kind: "number" });
const b = (id: number, name: string): BthomeObjectType => ({ id, name, bytes: 1, signed: false, factor: 1, kind: "binary" });

/**
 * The object types a scenario can send. A name used by several ids (temperature 0x02 / 0x45 / 0x57 …) means the
 * first listed unless the measurement gives `objectId`.
 */
export const BTHOME_OBJECTS: readonly BthomeObjectType[] = [
  n(0x01, "battery", 1, false, 1),
  n(0x02, "temperature", 2, true, 0.01),
  n(0x03, "humidity", 2, false, 0.01),
  n(0x04, "pressure", 3, false, 0.01),
  n(0x05, "illuminance", 3, false, 0.01),
  n(0x06, "massKg", 2, false, 0.01),
  n(0x07, "massLb", 2, false, 0.01),
  n(0x08, "dewpoint", 2, true, 0.01),
  n(0x09, "count", 1, false, 1),
  n(0x0a, "energy", 3, false, 0.001),
  n(0x0b, "power", 3, false, 0.01),
  n(0x0c, "voltage", 2, false, 0.001),
  n(0x0d, "pm25", 2, false, 1),
  n(0x0e, "pm10", 2, false, 1),
  b(0x0f, "genericBoolean"),
  b(0x10, "powerOn"),
  b(0x11, "opening"),
  n(0x12, "co2", 2, false, 1),
  n(0x13, "tvoc", 2, false, 1),
  n(0x14, "moisture", 2, false, 0.01),
  b(0x15, "batteryLow"),
  b(0x16, "batteryCharging"),
  b(0x17, "carbonMonoxide"),
  b(0x18, "cold"),
  b(0x19, "connectivity"),
  b(0x1a, "door"),
  b(0x1b, "garageDoor"),
  b(0x1c, "gasDetected"),
  b(0x1d, "heat"),
  b(0x1e, "light"),
  b(0x1f, "lock"),
  b(0x20, "moistureDetected"),
  b(0x21, "motion"),
  b(0x22, "moving"),
  b(0x23, "occupancy"),
  b(0x24, "plug"),
  b(0x25, "presence"),
  b(0x26, "problem"),
  b(0x27, "running"),
  b(0x28, "safety"),
  b(0x29, "smoke"),
  b(0x2a, "sound"),
  b(0x2b, "tamper"),
  b(0x2c, "vibration"),
  b(0x2d, "window"),
  n(0x2e, "humidity", 1, false, 1),
  n(0x2f, "moisture", 1, false, 1),
  { id: 0x3a, name: "button", bytes: 1, signed: false, factor: 1, kind: "button" },
  { id: 0x3c, name: "dimmer", bytes: 2, signed: false, factor: 1, kind: "dimmer" },
  n(0x3d, "count", 2, false, 1),
  n(0x3e, "count", 4, false, 1),
  n(0x3f, "rotation", 2, true, 0.1),
  n(0x40, "distanceMm", 2, false, 1),
  n(0x41, "distanceM", 2, false, 0.1),
  n(0x42, "duration", 3, false, 0.001),
  n(0x43, "current", 2, false, 0.001),
  n(0x44, "speed", 2, false, 0.01),
  n(0x45, "temperature", 2, true, 0.1),
  n(0x46, "uvIndex", 1, false, 0.1),
  n(0x47, "volume", 2, false, 0.1),
  n(0x48, "volumeMl", 2, false, 1),
  n(0x49, "volumeFlowRate", 2, false, 0.001),
  n(0x4a, "voltage", 2, false, 0.1),
  n(0x4b, "gas", 3, false, 0.001),
  n(0x4c, "gas", 4, false, 0.001),
  n(0x4d, "energy", 4, false, 0.001),
  n(0x4e, "volume", 4, false, 0.001),
  n(0x4f, "water", 4, false, 0.001),
  n(0x50, "timestamp", 4, false, 1),
  n(0x51, "acceleration", 2, false, 0.001),
  n(0x52, "gyroscope", 2, false, 0.001),
  n(0x55, "volumeStorage", 4, false, 0.001),
  n(0x56, "conductivity", 2, false, 1),
  n(0x57, "temperature", 1, true, 1),
  n(0x58, "temperature", 1, true, 0.35),
  n(0x59, "count", 1, true, 1),
  n(0x5a, "count", 2, true, 1),
  n(0x5b, "count", 4, true, 1),
  n(0x5c, "power", 4, true, 0.01),
  n(0x5d, "current", 2, true, 0.001),
  n(0x5e, "direction", 2, false, 0.01),
  n(0x5f, "precipitation", 2, false, 0.1),
  n(0x60, "channel", 1, false, 1),
];

/** Button events (object 0x3A) by name. */
export const BUTTON_EVENTS: Readonly<Record<string, number>> = {
  none: 0x00,
  press: 0x01,
  double_press: 0x02,
  triple_press: 0x03,
  long_press: 0x04,
  long_double_press: 0x05,
  long_triple_press: 0x06,
  hold_press: 0x80,
};

/** One object in a packet: its type and its raw (unscaled) value. */
export interface BthomeObject {
  type: BthomeObjectType;
  raw: number;
}

/** The measurement objects' bytes, ordered by object id (stable among equal ids). */
export function encodeBthomeObjects(objects: readonly BthomeObject[]): Buffer {
  const sorted = objects.map((o, i) => ({ o, i })).sort((x, y) => x.o.type.id - y.o.type.id || x.i - y.i);
  const parts = sorted.map(({ o }) => {
    const out = Buffer.alloc(1 + o.type.bytes);
    out[0] = o.type.id;
    if (o.type.kind === "dimmer") {
      // Event byte (0 none, 1 rotate left, 2 rotate right) then the steps.
      out[1] = o.raw === 0 ? 0 : o.raw < 0 ? 1 : 2;
      out[2] = Math.abs(o.raw);
    } else if (o.type.signed) out.writeIntLE(o.raw, 1, o.type.bytes);
    else out.writeUIntLE(o.raw, 1, o.type.bytes);
    return out;
  });
  return Buffer.concat(parts);
}

/** Encrypts `objects` for BTHome v2: ciphertext, counter (4 bytes LE), MIC (4 bytes). */
export function encryptBthome(objects: Buffer, key: Buffer, address: string, deviceInfo: number, counter: number): Buffer {
  const counterBytes = Buffer.alloc(4);
  counterBytes.writeUInt32LE(counter >>> 0, 0);
  const uuid = Buffer.alloc(2);
  uuid.writeUInt16LE(BTHOME_UUID, 0);
  // The address as written, most significant byte first (not the HCI order).
  const mac = Buffer.from(address.replace(/:/g, ""), "hex");
  const nonce = Buffer.concat([mac, uuid, Buffer.of(deviceInfo), counterBytes]);
  const cipher = crypto.createCipheriv("aes-128-ccm", key, nonce, { authTagLength: 4 });
  const ciphertext = Buffer.concat([cipher.update(objects), cipher.final()]);
  return Buffer.concat([ciphertext, counterBytes, cipher.getAuthTag()]);
}

/** The service data AD structure of one BTHome v2 packet. */
export function bthomeServiceData(deviceInfo: number, body: Buffer): Buffer {
  const uuid = Buffer.alloc(2);
  uuid.writeUInt16LE(BTHOME_UUID, 0);
  return adStructure(AD_SERVICE_DATA_16, Buffer.concat([uuid, Buffer.of(deviceInfo), body]));
}

export interface BthomeMeasurement {
  type: BthomeObjectType;
  /** Raw values, cycled one per packet. */
  raws: number[];
}

export interface BthomeConfig extends Omit<AdvertiserConfig, "kind"> {
  measurements: BthomeMeasurement[];
  packetId: boolean;
  triggerBased: boolean;
  bindKey?: Buffer;
  change: ChangeRule;
}

export class BthomePeripheral extends AdvertiserPeripheral {
  protected readonly maxPayloadLength: number;
  private readonly measurements: BthomeMeasurement[];
  private readonly withPacketId: boolean;
  private readonly deviceInfo: number;
  private readonly bindKey: Buffer | undefined;
  private readonly change: ChangeRule;
  /** The last packet built (repeats reuse it: encryption once per packet). */
  private cached: { step: number; ad: Buffer } | null = null;

  constructor(config: BthomeConfig) {
    super({ ...config, kind: "bthome" });
    this.measurements = config.measurements;
    this.withPacketId = config.packetId;
    this.bindKey = config.bindKey;
    this.change = config.change;
    this.deviceInfo = DEVICE_INFO_V2 | (config.bindKey ? FLAG_ENCRYPTED : 0) | (config.triggerBased ? FLAG_TRIGGER_BASED : 0);
    this.maxPayloadLength = this.packet(0).length;
  }

  /** The packet step (n-th distinct packet) of an advertising event. */
  stepOf(index: number, atMs: number): number {
    return packetStep(this.change, index, atMs, this.startMs);
  }

  /** The encryption counter of packet `step`. */
  counterOf(step: number): number {
    return (step + 1) >>> 0;
  }

  protected payload(index: number, atMs: number): Buffer {
    return this.packet(this.stepOf(index, atMs));
  }

  /** The service data AD structure of packet `step`. */
  packet(step: number): Buffer {
    if (this.cached?.step === step) return this.cached.ad;
    const objects: BthomeObject[] = this.measurements.map((m) => ({ type: m.type, raw: m.raws[step % m.raws.length] }));
    if (this.withPacketId) objects.unshift({ type: PACKET_ID_TYPE, raw: step % 256 });
    const plain = encodeBthomeObjects(objects);
    const body = this.bindKey ? encryptBthome(plain, this.bindKey, this.address, this.deviceInfo, this.counterOf(step)) : plain;
    const ad = bthomeServiceData(this.deviceInfo, body);
    this.cached = { step, ad };
    return ad;
  }
}

const PACKET_ID_TYPE: BthomeObjectType = { id: PACKET_ID, name: "packet_id", bytes: 1, signed: false, factor: 1, kind: "number" };

function rawRange(t: BthomeObjectType): [number, number] {
  const bits = 8 * t.bytes;
  return t.signed ? [-(2 ** (bits - 1)), 2 ** (bits - 1) - 1] : [0, 2 ** bits - 1];
}

/** One scenario value as the object's raw value, or a ScenarioError naming `at`. */
function rawValue(t: BthomeObjectType, v: unknown, at: string): number {
  switch (t.kind) {
    case "binary":
      if (v === true || v === 1) return 1;
      if (v === false || v === 0) return 0;
      throw new ScenarioError(at, "must be true or false (or 1 or 0)");
    case "button":
      if (typeof v === "string" && Object.prototype.hasOwnProperty.call(BUTTON_EVENTS, v)) return BUTTON_EVENTS[v];
      throw new ScenarioError(at, `must be one of ${Object.keys(BUTTON_EVENTS).map((k) => JSON.stringify(k)).join(", ")}`);
    case "dimmer":
      if (typeof v === "number" && Number.isInteger(v) && v >= -255 && v <= 255) return v;
      throw new ScenarioError(at, "must be a whole number of steps from -255 (left) to 255 (right)");
    default: {
      if (typeof v !== "number" || !Number.isFinite(v)) throw new ScenarioError(at, "must be a number");
      const raw = Math.round(v / t.factor);
      const [min, max] = rawRange(t);
      if (raw < min || raw > max) {
        const scale = (x: number) => Number((x * t.factor).toPrecision(12));
        throw new ScenarioError(at, `must be between ${scale(min)} and ${scale(max)} for object 0x${t.id.toString(16).padStart(2, "0")}`);
      }
      return raw;
    }
  }
}

const MEASUREMENT_KEYS = ["type", "objectId", "values"];

function parseMeasurement(value: unknown, at: string): BthomeMeasurement {
  const m = requireObject(value, at);
  rejectUnknownKeys(m, MEASUREMENT_KEYS, at, "key");
  let type: BthomeObjectType | undefined;
  if (m.objectId !== undefined) {
    if (typeof m.objectId !== "number" || !Number.isInteger(m.objectId)) throw new ScenarioError(`${at}.objectId`, "must be a whole number (a BTHome object id)");
    type = BTHOME_OBJECTS.find((o) => o.id === m.objectId);
    if (!type) throw new ScenarioError(`${at}.objectId`, "is not a BTHome object id the simulator can send");
    if (m.type !== undefined && m.type !== type.name) throw new ScenarioError(`${at}.type`, `does not match objectId (which is "${type.name}")`);
  } else {
    if (typeof m.type !== "string") throw new ScenarioError(`${at}.type`, "is required: a BTHome object name such as \"temperature\" (or give objectId)");
    const name = m.type;
    type = BTHOME_OBJECTS.find((o) => o.name === name);
    if (!type) throw new ScenarioError(`${at}.type`, "is not a BTHome object name the simulator knows (see the README's list)");
  }
  if (m.values === undefined) throw new ScenarioError(`${at}.values`, "is required: a list of values, cycled one per packet");
  const list = Array.isArray(m.values) ? (m.values as unknown[]) : [m.values];
  if (list.length === 0 || list.length > MAX_VALUES) throw new ScenarioError(`${at}.values`, `must hold 1 to ${MAX_VALUES} values`);
  const t = type;
  return { type: t, raws: list.map((v, i) => rawValue(t, v, `${at}.values[${i}]`)) };
}

export const bthomeKind: PeripheralKind = {
  kind: "bthome",
  defaultAddressType: "random",
  options: ["measurements", "bindKey", "packetId", "triggerBased", "repeat", "changeEveryMs", ...ADVERTISER_OPTIONS],
  create(spec: JsonObject, field, identity, ctx) {
    if (spec.measurements === undefined) throw new ScenarioError(`${field}.measurements`, "is required: a list of { type, values }");
    if (!Array.isArray(spec.measurements)) throw new ScenarioError(`${field}.measurements`, "must be a list of { type, values }");
    const raw = spec.measurements as unknown[];
    if (raw.length === 0 || raw.length > MAX_MEASUREMENTS) throw new ScenarioError(`${field}.measurements`, `must hold 1 to ${MAX_MEASUREMENTS} measurements`);
    const measurements = raw.map((m, i) => parseMeasurement(m, `${field}.measurements[${i}]`));
    const bindKey = spec.bindKey === undefined ? undefined : requireHexBytes(spec, "bindKey", field, 16);
    const packetId = optionalBoolean(spec, "packetId", field, true);
    // Room: 31 − flags (3) − AD header, UUID and device information (5); encryption adds counter and MIC (8).
    const room = MAX_ADV_DATA - 3 - 5 - (bindKey ? 8 : 0);
    const size = (packetId ? 2 : 0) + measurements.reduce((sum, m) => sum + 1 + m.type.bytes, 0);
    if (size > room) throw new ScenarioError(`${field}.measurements`, `take ${size} bytes, at most ${room} fit in one advertisement${bindKey ? " when encrypted" : ""}`);
    return new BthomePeripheral({
      ...identity,
      ...parseAdvertiserOptions(spec, field, 1000),
      clock: ctx.clock,
      maxMtu: identity.serverMtu,
      measurements,
      packetId,
      triggerBased: optionalBoolean(spec, "triggerBased", field, false),
      change: parseChangeRule(spec, field, 4),
      ...(bindKey ? { bindKey } : {}),
    });
  },
};
