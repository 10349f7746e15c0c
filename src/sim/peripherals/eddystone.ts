/**
 * Virtual Eddystone beacon (kind "eddystone"), built here from Google's published frame layouts: the 16-bit service
 * UUID 0xFEAA in the complete UUID list and as service data carrying one frame per advertising event, the frames the
 * scenario asks for in turn (UID, URL, TLM).
 * - UID 0x00: TX power at 0 m, 10-byte namespace, 6-byte instance, 2 reserved bytes.
 * - URL 0x10: TX power at 0 m, scheme prefix code, the rest of the URL with the expansion codes (at most 17 bytes).
 * - TLM 0x20 (unencrypted, version 0): battery mV, temperature as signed 8.8 fixed point (0x8000: none), advertising
 *   PDU count and time since power-on in 0.1 s, all big-endian. The count and the time grow with the simulated
 *   clock; battery and temperature are cycled, one step per TLM frame.
 */
import { AdvertiserPeripheral, ADVERTISER_OPTIONS, adStructure, parseAdvertiserOptions, requireHexBytes, type AdvertiserConfig } from "./advertiser";
import type { PeripheralKind } from "../peripheral";
import { isObject, optionalInteger, rejectUnknownKeys, ScenarioError, type JsonObject } from "../validate";
import { optionalIntegerList } from "./options";

const AD_COMPLETE_16 = 0x03;
const AD_SERVICE_DATA_16 = 0x16;
export const EDDYSTONE_UUID = 0xfeaa;
const FRAME_UID = 0x00;
const FRAME_URL = 0x10;
const FRAME_TLM = 0x20;
/** Longest encoded URL after the scheme byte. */
export const MAX_URL_BYTES = 17;

const SCHEMES = ["http://www.", "https://www.", "http://", "https://"];
const EXPANSIONS = [".com/", ".org/", ".edu/", ".net/", ".info/", ".biz/", ".gov/", ".com", ".org", ".edu", ".net", ".info", ".biz", ".gov"];

/** Eddystone-URL encoding: scheme code and body, or a problem (no quote of the URL). */
export function encodeEddystoneUrl(url: string): { bytes: Buffer } | { problem: string } {
  // Longest prefix first: "https://www." before "https://".
  const schemes = SCHEMES.map((s, code) => ({ s, code })).sort((a, b) => b.s.length - a.s.length);
  const scheme = schemes.find((x) => url.startsWith(x.s));
  if (!scheme) return { problem: 'must start with "http://" or "https://"' };
  const out: number[] = [scheme.code];
  let rest = url.slice(scheme.s.length);
  while (rest.length > 0) {
    const code = EXPANSIONS.findIndex((e) => rest.startsWith(e));
    if (code >= 0) {
      out.push(code);
      rest = rest.slice(EXPANSIONS[code].length);
      continue;
    }
    const c = rest.charCodeAt(0);
    if (c < 0x21 || c > 0x7e) return { problem: "must contain only printable ASCII characters without spaces" };
    out.push(c);
    rest = rest.slice(1);
  }
  if (out.length - 1 > MAX_URL_BYTES) return { problem: `encodes to ${out.length - 1} bytes after the scheme, at most ${MAX_URL_BYTES} fit` };
  return { bytes: Buffer.from(out) };
}

export interface EddystoneTlm {
  batteryMv: number;
  /** °C, or null: not supported (0x8000). */
  temperature: number | null;
  advertisingCount: number;
  /** Time since power-on in 0.1 s units. */
  uptimeTenths: number;
}

export function encodeTlmFrame(t: EddystoneTlm): Buffer {
  const f = Buffer.alloc(14);
  f[0] = FRAME_TLM;
  f[1] = 0x00;
  f.writeUInt16BE(t.batteryMv, 2);
  if (t.temperature === null) f.writeUInt16BE(0x8000, 4);
  else f.writeInt16BE(Math.round(t.temperature * 256), 4);
  f.writeUInt32BE(t.advertisingCount >>> 0, 6);
  f.writeUInt32BE(t.uptimeTenths >>> 0, 10);
  return f;
}

export function encodeUidFrame(txPower: number, namespace: Buffer, instance: Buffer): Buffer {
  const f = Buffer.alloc(20);
  f[0] = FRAME_UID;
  f.writeInt8(txPower, 1);
  namespace.copy(f, 2);
  instance.copy(f, 12);
  return f;
}

export function encodeUrlFrame(txPower: number, encodedUrl: Buffer): Buffer {
  const f = Buffer.alloc(2 + encodedUrl.length);
  f[0] = FRAME_URL;
  f.writeInt8(txPower, 1);
  encodedUrl.copy(f, 2);
  return f;
}

/** The UUID list and the service data AD structures around one frame. */
export function eddystoneAd(frame: Buffer): Buffer {
  const uuid = Buffer.alloc(2);
  uuid.writeUInt16LE(EDDYSTONE_UUID, 0);
  return Buffer.concat([adStructure(AD_COMPLETE_16, uuid), adStructure(AD_SERVICE_DATA_16, Buffer.concat([uuid, frame]))]);
}

export interface EddystoneConfig extends Omit<AdvertiserConfig, "kind"> {
  txPower: number;
  uid?: { namespace: Buffer; instance: Buffer };
  /** Encoded URL (scheme code first). */
  url?: Buffer;
  tlm?: { batteryMv: number[]; temperature: (number | null)[] };
}

type Frame = "uid" | "url" | "tlm";

export class EddystonePeripheral extends AdvertiserPeripheral {
  protected readonly maxPayloadLength: number;
  private readonly frames: Frame[];
  private readonly uidFrame: Buffer | null;
  private readonly urlFrame: Buffer | null;
  private readonly tlm: EddystoneConfig["tlm"];

  constructor(config: EddystoneConfig) {
    super({ ...config, kind: "eddystone" });
    this.uidFrame = config.uid ? encodeUidFrame(config.txPower, config.uid.namespace, config.uid.instance) : null;
    this.urlFrame = config.url ? encodeUrlFrame(config.txPower, config.url) : null;
    this.tlm = config.tlm;
    this.frames = [...(this.uidFrame ? ["uid" as const] : []), ...(this.urlFrame ? ["url" as const] : []), ...(this.tlm ? ["tlm" as const] : [])];
    if (this.frames.length === 0) throw new RangeError("an Eddystone beacon needs at least one frame");
    const lengths = [this.uidFrame?.length ?? 0, this.urlFrame?.length ?? 0, this.tlm ? 14 : 0];
    this.maxPayloadLength = eddystoneAd(Buffer.alloc(Math.max(...lengths))).length;
  }

  protected payload(index: number, atMs: number): Buffer {
    const frame = this.frames[index % this.frames.length];
    if (frame === "uid" && this.uidFrame) return eddystoneAd(this.uidFrame);
    if (frame === "url" && this.urlFrame) return eddystoneAd(this.urlFrame);
    const tlm = this.tlm ?? { batteryMv: [0], temperature: [null] };
    const step = Math.floor(index / this.frames.length);
    return eddystoneAd(
      encodeTlmFrame({
        batteryMv: tlm.batteryMv[step % tlm.batteryMv.length],
        temperature: tlm.temperature[step % tlm.temperature.length],
        // PDUs sent since power-on (this one included) and time since power-on.
        advertisingCount: index + 1,
        uptimeTenths: Math.floor((atMs - this.startMs) / 100),
      }),
    );
  }
}

function parseUid(value: unknown, field: string): { namespace: Buffer; instance: Buffer } {
  if (!isObject(value)) throw new ScenarioError(field, "must be an object with namespace (20 hex digits) and instance (12 hex digits)");
  rejectUnknownKeys(value, ["namespace", "instance"], field, "key");
  return { namespace: requireHexBytes(value, "namespace", field, 10), instance: requireHexBytes(value, "instance", field, 6) };
}

function parseTlm(value: unknown, field: string): { batteryMv: number[]; temperature: (number | null)[] } {
  if (value === true) return { batteryMv: [3000], temperature: [null] };
  if (!isObject(value)) throw new ScenarioError(field, "must be true or an object with batteryMv and temperature");
  rejectUnknownKeys(value, ["batteryMv", "temperature"], field, "key");
  const batteryMv = optionalIntegerList(value, "batteryMv", field, 0, 0xffff) ?? [3000];
  let temperature: (number | null)[] = [null];
  if (value.temperature !== undefined) {
    const list = Array.isArray(value.temperature) ? (value.temperature as unknown[]) : [value.temperature];
    if (list.length === 0 || list.length > 1000) throw new ScenarioError(`${field}.temperature`, "must be a list of 1 to 1000 values");
    temperature = list.map((t, i) => {
      if (t === null) return null;
      // Signed 8.8 fixed point; 0x8000 (-128 °C) means "not supported".
      if (typeof t !== "number" || !Number.isFinite(t) || Math.abs(Math.round(t * 256)) > 0x7fff) throw new ScenarioError(`${field}.temperature[${i}]`, "must be a number from -127.99 to 127.99 (°C), or null");
      return t;
    });
  }
  if (batteryMv.length > 1000) throw new ScenarioError(`${field}.batteryMv`, "must have at most 1000 values");
  return { batteryMv, temperature };
}

export const eddystoneKind: PeripheralKind = {
  kind: "eddystone",
  defaultAddressType: "random",
  options: ["uid", "url", "tlm", "txPower", ...ADVERTISER_OPTIONS],
  create(spec: JsonObject, field, identity, ctx) {
    const uid = spec.uid === undefined ? undefined : parseUid(spec.uid, `${field}.uid`);
    let url: Buffer | undefined;
    if (spec.url !== undefined) {
      if (typeof spec.url !== "string" || spec.url.length > 256) throw new ScenarioError(`${field}.url`, "must be a URL of at most 256 characters");
      const encoded = encodeEddystoneUrl(spec.url);
      if ("problem" in encoded) throw new ScenarioError(`${field}.url`, encoded.problem);
      url = encoded.bytes;
    }
    const tlm = spec.tlm === undefined ? undefined : parseTlm(spec.tlm, `${field}.tlm`);
    if (!uid && !url && !tlm) throw new ScenarioError(`${field}.uid`, "at least one frame is required: uid, url or tlm");
    return new EddystonePeripheral({
      ...identity,
      ...parseAdvertiserOptions(spec, field, 100),
      clock: ctx.clock,
      maxMtu: identity.serverMtu,
      txPower: optionalInteger(spec, "txPower", field, -20, -100, 20),
      ...(uid ? { uid } : {}),
      ...(url ? { url } : {}),
      ...(tlm ? { tlm } : {}),
    });
  },
};
