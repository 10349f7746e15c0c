/**
 * The scenario kind "gatt": a device the user describes (advertising, services, characteristics, values, notify
 * schedules, what writes do), checked field by field (every failure a ScenarioError naming the JSON path, never
 * quoting the file), then a GattDevicePeripheral built from it. Everything is bounded: table size, value lengths,
 * list lengths, intervals and delays.
 */
import { ATT_MAX_VALUE_LENGTH, normalizeUuid } from "../../protocol/att";
import type { CharacteristicPropertyName } from "../gatt-server";
import { AdvertisingOverflowError, type PeripheralKind } from "../peripheral";
import { isObject, optionalInteger, optionalNumber, rejectUnknownKeys, requireObject, ScenarioError, type JsonObject } from "../validate";
import { GattDevicePeripheral, type GattCharacteristicConfig, type GattReply, type GattServiceConfig, type GattWriteAction } from "./gatt";

export const GATT_LIMITS = {
  services: 32,
  /** Characteristics in the whole device. */
  characteristics: 64,
  /** Values in one notify schedule, entries in one reply table, notifications in one reply. */
  listLength: 256,
  minIntervalMs: 10,
  maxIntervalMs: 3_600_000,
  maxDelayMs: 60_000,
  /** Advertised service UUIDs (they must fit in 2 × 31 bytes anyway). */
  advertisedServices: 16,
} as const;

export const GATT_PROPERTIES: readonly CharacteristicPropertyName[] = ["read", "write", "writeWithoutResponse", "notify", "indicate"];

const DEVICE_KEYS = ["advertising", "services"];
const ADVERTISING_KEYS = ["services", "manufacturerData"];
const MANUFACTURER_KEYS = ["companyId", "data"];
const SERVICE_KEYS = ["uuid", "characteristics"];
const CHARACTERISTIC_KEYS = ["uuid", "properties", "value", "notify", "onWrite"];
const NOTIFY_KEYS = ["intervalMs", "values"];
const ECHO_KEYS = ["echoTo"];
const REPLY_KEYS = ["replyOn", "replies", "otherwise"];
const REPLY_ENTRY_KEYS = ["request", "reply", "delayMs"];

/** Generic Access and Generic Attribute: every device has them, the simulator adds them. */
const CORE_SERVICES = ["1800", "1801"];

const UUID_HINT = 'must be a Bluetooth UUID such as "180f", "0x2A19" or "6e400001-b5a3-f393-e0a9-e50e24dcca9e"';

function parseUuid(value: unknown, at: string): string {
  if (value === undefined) throw new ScenarioError(at, "is required");
  if (typeof value !== "string" || value.length > 64) throw new ScenarioError(at, UUID_HINT);
  try {
    return normalizeUuid(value);
  } catch {
    throw new ScenarioError(at, UUID_HINT);
  }
}

/** Attribute types a characteristic value must not take: declarations and descriptors would confuse discovery. */
function isReservedAttributeType(uuid: string): boolean {
  if (uuid.length !== 4) return false;
  const n = parseInt(uuid, 16);
  return (n >= 0x2800 && n <= 0x28ff) || (n >= 0x2900 && n <= 0x29ff);
}

function hexBytes(value: unknown, at: string, maxBytes: number): Buffer {
  if (typeof value !== "string") throw new ScenarioError(at, 'must be a string of hex digits like "0a1b"');
  if (value.length > maxBytes * 4) throw new ScenarioError(at, `must be at most ${maxBytes} bytes`);
  const compact = value.replace(/\s+/g, "");
  if (!/^(?:[0-9a-fA-F]{2})*$/.test(compact)) throw new ScenarioError(at, "must be hex digits in pairs");
  const bytes = Buffer.from(compact, "hex");
  if (bytes.length > maxBytes) throw new ScenarioError(at, `must be at most ${maxBytes} bytes, got ${bytes.length}`);
  return bytes;
}

/** A value: { "hex": "0a1b" } or { "text": "…" } (UTF-8), at most 512 bytes (the ATT maximum for an attribute). */
function parseValue(value: unknown, at: string): Buffer {
  if (!isObject(value) || Object.keys(value).length !== 1 || (value.hex === undefined && value.text === undefined)) {
    throw new ScenarioError(at, 'must be { "hex": "…" } or { "text": "…" }');
  }
  if (value.hex !== undefined) return hexBytes(value.hex, `${at}.hex`, ATT_MAX_VALUE_LENGTH);
  const text = value.text;
  if (typeof text !== "string") throw new ScenarioError(`${at}.text`, "must be a string");
  if (text.length > ATT_MAX_VALUE_LENGTH) throw new ScenarioError(`${at}.text`, `must be at most ${ATT_MAX_VALUE_LENGTH} bytes in UTF-8`);
  const bytes = Buffer.from(text, "utf8");
  if (bytes.length > ATT_MAX_VALUE_LENGTH) throw new ScenarioError(`${at}.text`, `must be at most ${ATT_MAX_VALUE_LENGTH} bytes in UTF-8, got ${bytes.length}`);
  return bytes;
}

function requireArray(value: unknown, at: string, what: string, min: number, max: number): unknown[] {
  if (value === undefined) throw new ScenarioError(at, `is required (an array of ${what})`);
  if (!Array.isArray(value)) throw new ScenarioError(at, `must be an array of ${what}`);
  if (value.length < min) throw new ScenarioError(at, `must be a non-empty array of ${what}`);
  if (value.length > max) throw new ScenarioError(at, `must have at most ${max} entries`);
  return value;
}

function parseValueList(value: unknown, at: string, min: number): Buffer[] {
  return requireArray(value, at, 'values like { "hex": "…" } or { "text": "…" }', min, GATT_LIMITS.listLength).map((v, i) => parseValue(v, `${at}[${i}]`));
}

function parseProperties(value: unknown, at: string): CharacteristicPropertyName[] {
  const expected = GATT_PROPERTIES.map((p) => JSON.stringify(p)).join(", ");
  const list = requireArray(value, at, `properties (${expected})`, 1, GATT_PROPERTIES.length + 1);
  const seen: CharacteristicPropertyName[] = [];
  list.forEach((p, i) => {
    const property = GATT_PROPERTIES.find((known) => known === p);
    if (property === undefined) throw new ScenarioError(`${at}[${i}]`, `must be one of ${expected}`);
    if (seen.includes(property)) throw new ScenarioError(`${at}[${i}]`, "is listed twice");
    seen.push(property);
  });
  return seen;
}

function parseNotify(value: unknown, at: string): { intervalMs: number; values: Buffer[] } {
  const obj = requireObject(value, at);
  rejectUnknownKeys(obj, NOTIFY_KEYS, at, "key");
  return {
    intervalMs: optionalNumber(obj, "intervalMs", at, 1000, GATT_LIMITS.minIntervalMs, GATT_LIMITS.maxIntervalMs),
    values: parseValueList(obj.values, `${at}.values`, 1),
  };
}

/** onWrite, with its target UUID still unresolved (checked once every characteristic is known). */
function parseOnWrite(value: unknown, at: string): GattWriteAction {
  if (value === undefined || value === "store") return { action: "store" };
  const shapes = '"store", { "echoTo": uuid } or { "replyOn": uuid, "replies": [...], "otherwise": [...] }';
  if (!isObject(value)) throw new ScenarioError(at, `must be ${shapes}`);
  if (value.echoTo !== undefined) {
    rejectUnknownKeys(value, ECHO_KEYS, at, "key");
    return { action: "echo", to: parseUuid(value.echoTo, `${at}.echoTo`) };
  }
  if (value.replyOn === undefined) throw new ScenarioError(at, `must be ${shapes}`);
  rejectUnknownKeys(value, REPLY_KEYS, at, "key");
  const on = parseUuid(value.replyOn, `${at}.replyOn`);
  const replies: GattReply[] = [];
  const entries = value.replies === undefined ? [] : requireArray(value.replies, `${at}.replies`, "{ request, reply, delayMs }", 0, GATT_LIMITS.listLength);
  entries.forEach((entry, i) => {
    const where = `${at}.replies[${i}]`;
    const obj = requireObject(entry, where);
    rejectUnknownKeys(obj, REPLY_ENTRY_KEYS, where, "key");
    if (obj.request === undefined) throw new ScenarioError(`${where}.request`, "is required");
    const request = parseValue(obj.request, `${where}.request`);
    const earlier = replies.findIndex((r) => r.request.equals(request));
    if (earlier >= 0) throw new ScenarioError(`${where}.request`, `is the same as replies[${earlier}].request`);
    replies.push({
      request,
      reply: parseValueList(obj.reply, `${where}.reply`, 1),
      delayMs: optionalNumber(obj, "delayMs", where, 0, 0, GATT_LIMITS.maxDelayMs),
    });
  });
  const otherwise = value.otherwise === undefined ? [] : parseValueList(value.otherwise, `${at}.otherwise`, 0);
  return { action: "reply", on, replies, otherwise };
}

function parseCharacteristic(value: unknown, at: string): GattCharacteristicConfig {
  const obj = requireObject(value, at);
  rejectUnknownKeys(obj, CHARACTERISTIC_KEYS, at, "key");
  const uuid = parseUuid(obj.uuid, `${at}.uuid`);
  if (isReservedAttributeType(uuid)) throw new ScenarioError(`${at}.uuid`, "is a GATT declaration or descriptor type, not a characteristic");
  const properties = parseProperties(obj.properties, `${at}.properties`);
  const notify = obj.notify === undefined ? undefined : parseNotify(obj.notify, `${at}.notify`);
  if (notify && !properties.includes("notify") && !properties.includes("indicate")) {
    throw new ScenarioError(`${at}.notify`, 'needs the property "notify" or "indicate"');
  }
  if (obj.onWrite !== undefined && !properties.includes("write") && !properties.includes("writeWithoutResponse")) {
    throw new ScenarioError(`${at}.onWrite`, 'needs the property "write" or "writeWithoutResponse"');
  }
  const initial = obj.value === undefined ? (notify?.values[0] ?? Buffer.alloc(0)) : parseValue(obj.value, `${at}.value`);
  return { uuid, properties, value: initial, ...(notify ? { notify } : {}), onWrite: parseOnWrite(obj.onWrite, `${at}.onWrite`) };
}

function parseServices(value: unknown, field: string): GattServiceConfig[] {
  const at = `${field}.services`;
  if (value === undefined) return [];
  const list = requireArray(value, at, "services", 0, GATT_LIMITS.services);
  const services: GattServiceConfig[] = [];
  /** Where each characteristic that can notify or indicate is, by UUID: the device sends on it by UUID. */
  const sources = new Map<string, string>();
  let total = 0;
  list.forEach((entry, i) => {
    const where = `${at}[${i}]`;
    const obj = requireObject(entry, where);
    rejectUnknownKeys(obj, SERVICE_KEYS, where, "key");
    const uuid = parseUuid(obj.uuid, `${where}.uuid`);
    if (CORE_SERVICES.includes(uuid)) throw new ScenarioError(`${where}.uuid`, "is added by the simulator (Generic Access 1800 and Generic Attribute 1801): leave it out");
    if (isReservedAttributeType(uuid)) throw new ScenarioError(`${where}.uuid`, "is a GATT declaration or descriptor type, not a service");
    const earlier = services.findIndex((s) => s.uuid === uuid);
    if (earlier >= 0) throw new ScenarioError(`${where}.uuid`, `is already used by ${at}[${earlier}]`);
    const entries = obj.characteristics === undefined ? [] : requireArray(obj.characteristics, `${where}.characteristics`, "characteristics", 0, GATT_LIMITS.characteristics);
    total += entries.length;
    if (total > GATT_LIMITS.characteristics) throw new ScenarioError(`${where}.characteristics`, `too many: a device has at most ${GATT_LIMITS.characteristics} characteristics`);
    const characteristics: GattCharacteristicConfig[] = [];
    entries.forEach((c, j) => {
      const cat = `${where}.characteristics[${j}]`;
      const ch = parseCharacteristic(c, cat);
      const twin = characteristics.findIndex((other) => other.uuid === ch.uuid);
      if (twin >= 0) throw new ScenarioError(`${cat}.uuid`, `is already used by ${where}.characteristics[${twin}]`);
      if (ch.properties.includes("notify") || ch.properties.includes("indicate")) {
        const other = sources.get(ch.uuid);
        if (other !== undefined) throw new ScenarioError(`${cat}.uuid`, `is already used by ${other} (a characteristic that can notify or indicate must be unique in the device)`);
        sources.set(ch.uuid, cat);
      }
      characteristics.push(ch);
    });
    services.push({ uuid, characteristics });
  });
  // The targets of echoTo / replyOn, now that every characteristic is known.
  services.forEach((service, i) =>
    service.characteristics.forEach((ch, j) => {
      const action = ch.onWrite;
      if (action.action === "store") return;
      const [key, target] = action.action === "echo" ? ["echoTo", action.to] : ["replyOn", action.on];
      if (!sources.has(target)) throw new ScenarioError(`${at}[${i}].characteristics[${j}].onWrite.${key}`, "names no notify/indicate characteristic");
    }),
  );
  return services;
}

interface Advertising {
  advertisedServices: string[];
  manufacturerData?: { companyId: number; data: Buffer };
}

function parseAdvertising(value: unknown, field: string): Advertising {
  if (value === undefined) return { advertisedServices: [] };
  const at = `${field}.advertising`;
  const obj = requireObject(value, at);
  rejectUnknownKeys(obj, ADVERTISING_KEYS, at, "key");
  const advertisedServices: string[] = [];
  const list = obj.services === undefined ? [] : requireArray(obj.services, `${at}.services`, "service UUIDs", 0, GATT_LIMITS.advertisedServices);
  list.forEach((u, i) => {
    const uuid = parseUuid(u, `${at}.services[${i}]`);
    const earlier = advertisedServices.indexOf(uuid);
    if (earlier >= 0) throw new ScenarioError(`${at}.services[${i}]`, `is the same UUID as services[${earlier}]`);
    advertisedServices.push(uuid);
  });
  if (obj.manufacturerData === undefined) return { advertisedServices };
  const mat = `${at}.manufacturerData`;
  const m = requireObject(obj.manufacturerData, mat);
  rejectUnknownKeys(m, MANUFACTURER_KEYS, mat, "key");
  if (m.companyId === undefined) throw new ScenarioError(`${mat}.companyId`, "is required (the Bluetooth SIG company identifier, 0 to 65535)");
  const companyId = optionalInteger(m, "companyId", mat, 0, 0, 0xffff);
  // At most 27 bytes fit (31 − length, type and company identifier); up to 64 are read so that the advertising
  // check below says how long the data came out.
  const data = m.data === undefined ? Buffer.alloc(0) : hexBytes(m.data, `${mat}.data`, 64);
  return { advertisedServices, manufacturerData: { companyId, data } };
}

export function parseGattDevice(spec: JsonObject, field: string): Advertising & { services: GattServiceConfig[] } {
  return { ...parseAdvertising(spec.advertising, field), services: parseServices(spec.services, field) };
}

export const gattKind: PeripheralKind = {
  kind: "gatt",
  defaultAddressType: "random",
  options: DEVICE_KEYS,
  create(spec, field, identity, ctx) {
    const device = parseGattDevice(spec, field);
    const peripheral = new GattDevicePeripheral({ ...identity, clock: ctx.clock, maxMtu: identity.serverMtu, ...device });
    try {
      peripheral.advertisingData();
    } catch (error) {
      peripheral.close();
      if (error instanceof AdvertisingOverflowError) throw new ScenarioError(`${field}.advertising.${error.part}`, error.message);
      throw error;
    }
    return peripheral;
  },
};
