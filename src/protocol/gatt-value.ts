/**
 * Characteristic values as messages carry them: the `format` of ble-gatt-in / ble-gatt-request (bytes → payload) and
 * of ble-gatt-out / ble-gatt-request's write (payload → bytes). Pure code.
 *
 * Reading: `buffer` (a copy of the bytes), `utf8` (text; invalid sequences become U+FFFD), `hex` (lowercase hex
 * digits, no separators), a numeric format (the value must be exactly the format's width), or `sig` (the Bluetooth
 * SIG's definition of the characteristic: src/protocol/sig-decoders.ts).
 *
 * Writing: `auto` (a Buffer or Uint8Array as its bytes, a string as UTF-8, an array of integers 0..255, or a Buffer
 * that went through JSON, `{type: "Buffer", data: [...]}`; a number is refused, its width being unknown), `utf8`
 * (a string), `hex` (see parseHex), or a numeric format (a finite number; integer formats need an integer in range).
 *
 * Every problem is a GattValueError whose params name the format and the problem (byte counts, positions, ranges),
 * never the value.
 */
import { GattValueError } from "./gatt-value-error";
import { decodeSig } from "./sig-decoders";

export { GATT_VALUE_ERROR_CODES, GattValueError, type GattValueErrorCode } from "./gatt-value-error";

export const NUMERIC_FORMATS = [
  "uint8",
  "int8",
  "uint16le",
  "int16le",
  "uint32le",
  "int32le",
  "float32le",
  "uint16be",
  "int16be",
  "uint32be",
  "int32be",
  "float32be",
] as const;
export const READ_FORMATS = ["buffer", "utf8", "hex", ...NUMERIC_FORMATS, "sig"] as const;
export const WRITE_FORMATS = ["auto", "utf8", "hex", ...NUMERIC_FORMATS] as const;
export type NumericFormat = (typeof NUMERIC_FORMATS)[number];
export type ReadFormat = (typeof READ_FORMATS)[number];
export type WriteFormat = (typeof WRITE_FORMATS)[number];

interface NumericLayout {
  width: number;
  /** Integer range; null for the float formats. */
  min: number | null;
  max: number | null;
  read(b: Buffer): number;
  write(b: Buffer, v: number): void;
}

const NUMERIC: Readonly<Record<NumericFormat, NumericLayout>> = {
  uint8: { width: 1, min: 0, max: 0xff, read: (b) => b.readUInt8(0), write: (b, v) => b.writeUInt8(v, 0) },
  int8: { width: 1, min: -0x80, max: 0x7f, read: (b) => b.readInt8(0), write: (b, v) => b.writeInt8(v, 0) },
  uint16le: { width: 2, min: 0, max: 0xffff, read: (b) => b.readUInt16LE(0), write: (b, v) => b.writeUInt16LE(v, 0) },
  int16le: { width: 2, min: -0x8000, max: 0x7fff, read: (b) => b.readInt16LE(0), write: (b, v) => b.writeInt16LE(v, 0) },
  uint32le: { width: 4, min: 0, max: 0xffffffff, read: (b) => b.readUInt32LE(0), write: (b, v) => b.writeUInt32LE(v, 0) },
  int32le: { width: 4, min: -0x80000000, max: 0x7fffffff, read: (b) => b.readInt32LE(0), write: (b, v) => b.writeInt32LE(v, 0) },
  float32le: { width: 4, min: null, max: null, read: (b) => b.readFloatLE(0), write: (b, v) => b.writeFloatLE(v, 0) },
  uint16be: { width: 2, min: 0, max: 0xffff, read: (b) => b.readUInt16BE(0), write: (b, v) => b.writeUInt16BE(v, 0) },
  int16be: { width: 2, min: -0x8000, max: 0x7fff, read: (b) => b.readInt16BE(0), write: (b, v) => b.writeInt16BE(v, 0) },
  uint32be: { width: 4, min: 0, max: 0xffffffff, read: (b) => b.readUInt32BE(0), write: (b, v) => b.writeUInt32BE(v, 0) },
  int32be: { width: 4, min: -0x80000000, max: 0x7fffffff, read: (b) => b.readInt32BE(0), write: (b, v) => b.writeInt32BE(v, 0) },
  float32be: { width: 4, min: null, max: null, read: (b) => b.readFloatBE(0), write: (b, v) => b.writeFloatBE(v, 0) },
};

/** The largest finite float32; a larger finite number would be written as Infinity. */
const FLOAT32_MAX = 3.4028234663852886e38;

function isNumericFormat(format: string): format is NumericFormat {
  return Object.prototype.hasOwnProperty.call(NUMERIC, format);
}

/** The width in bytes of a numeric format. */
export function numericWidth(format: NumericFormat): number {
  return NUMERIC[format].width;
}

/** A format as error params show it: its name when it is a short string, else its type (configuration can be anything). */
function formatName(format: unknown): string {
  return typeof format === "string" && format.length <= 32 ? format : typeName(format);
}

/** A short name of a value's type for error params ("null", "array", "object", "boolean", …), never the value. */
function typeName(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "array";
  if (Buffer.isBuffer(v)) return "Buffer";
  return typeof v;
}

/**
 * A characteristic value as the payload of `format`. `characteristic` (canonical, src/protocol/uuid.ts) is used by
 * "sig". Throws GattValueError: "wrong-length" {format, expected, received} when a numeric format's width differs
 * from the value's; the SIG decoders' codes for "sig"; "unknown-format" {format} for a format not in READ_FORMATS.
 */
export function decodeValue(format: ReadFormat, value: Buffer, characteristic: string): unknown {
  if (!Buffer.isBuffer(value)) throw new GattValueError("not-bytes", { format: formatName(format), got: typeName(value) });
  switch (format) {
    case "buffer":
      return Buffer.from(value);
    case "utf8":
      return value.toString("utf8");
    case "hex":
      return value.toString("hex");
    case "sig":
      return decodeSig(characteristic, value);
  }
  if (!isNumericFormat(format)) throw new GattValueError("unknown-format", { format: formatName(format) });
  const layout = NUMERIC[format];
  if (value.length !== layout.width) throw new GattValueError("wrong-length", { format, expected: layout.width, received: value.length });
  return layout.read(value);
}

/**
 * Hex text to bytes, for `hex` writes. Accepts hex digits in either case, optionally led by "0x", with spaces, tabs,
 * colons, dashes or commas anywhere between them (so "0a1b", "0A 1B", "0a:1b" and "0x0a1b" are one value); the
 * digits must pair into whole bytes. An empty text is zero bytes. Throws GattValueError "hex-bad-digit" {position}
 * (0-based character position of the first character that is neither a digit nor a separator) or "hex-odd-length"
 * {digits}.
 */
export function parseHex(text: string): Buffer {
  // Whole-text regular expressions, not a loop per character: a payload of many megabytes is read in one pass of
  // native code rather than holding up every flow for seconds.
  const prefix = /^\s*0[xX]/.exec(text);
  const start = prefix ? prefix[0].length : 0;
  const bad = /[^0-9a-fA-F\s:,-]/g;
  bad.lastIndex = start;
  const found = bad.exec(text);
  if (found) throw new GattValueError("hex-bad-digit", { position: found.index });
  const digits = text.slice(start).replace(/[\s:,-]+/g, "");
  if (digits.length % 2 !== 0) throw new GattValueError("hex-odd-length", { digits: digits.length });
  return Buffer.from(digits, "hex");
}

/** An array of byte values (or a JSON'd Buffer's `data`) as bytes; "bad-byte" {index} for any other element. */
function bytesOfArray(items: readonly unknown[]): Buffer {
  const out = Buffer.alloc(items.length);
  for (let i = 0; i < items.length; i++) {
    const v = items[i];
    if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > 0xff) throw new GattValueError("bad-byte", { index: i });
    out[i] = v;
  }
  return out;
}

/** `{type: "Buffer", data: [...]}`: what JSON.stringify makes of a Buffer (a Buffer through a file or MQTT). */
function isJsonBuffer(v: unknown): v is { type: "Buffer"; data: unknown[] } {
  if (typeof v !== "object" || v === null) return false;
  const o = v as Record<string, unknown>;
  return o.type === "Buffer" && Array.isArray(o.data);
}

/**
 * The bytes to write for `payload` in `format`. Throws GattValueError:
 *   "auto-number" {} — a number with `auto` (its width is unknown: choose a numeric format);
 *   "payload-type" {format, expected, got} — a payload of the wrong type (got is a type name);
 *   "bad-byte" {index} — an array element that is not an integer 0..255;
 *   "hex-bad-digit" / "hex-odd-length" — see parseHex;
 *   "not-integer" {format}, "out-of-range" {format, min, max}, "not-finite" {format} — numeric formats;
 *   "unknown-format" {format}.
 */
export function encodeValue(format: WriteFormat, payload: unknown): Buffer {
  switch (format) {
    case "auto":
      if (Buffer.isBuffer(payload)) return Buffer.from(payload);
      if (payload instanceof Uint8Array) return Buffer.from(payload);
      if (typeof payload === "string") return Buffer.from(payload, "utf8");
      if (Array.isArray(payload)) return bytesOfArray(payload);
      if (isJsonBuffer(payload)) return bytesOfArray(payload.data);
      if (typeof payload === "number" || typeof payload === "bigint") throw new GattValueError("auto-number", {});
      throw new GattValueError("payload-type", { format, expected: "Buffer, string or array of bytes", got: typeName(payload) });
    case "utf8":
      if (typeof payload !== "string") throw new GattValueError("payload-type", { format, expected: "string", got: typeName(payload) });
      return Buffer.from(payload, "utf8");
    case "hex":
      if (typeof payload !== "string") throw new GattValueError("payload-type", { format, expected: "string", got: typeName(payload) });
      return parseHex(payload);
  }
  if (!isNumericFormat(format)) throw new GattValueError("unknown-format", { format: formatName(format) });
  if (typeof payload !== "number") throw new GattValueError("payload-type", { format, expected: "number", got: typeName(payload) });
  const layout = NUMERIC[format];
  if (!Number.isFinite(payload)) throw new GattValueError("not-finite", { format });
  if (layout.min === null || layout.max === null) {
    if (Math.abs(payload) > FLOAT32_MAX) throw new GattValueError("out-of-range", { format, min: -FLOAT32_MAX, max: FLOAT32_MAX });
  } else {
    if (!Number.isInteger(payload)) throw new GattValueError("not-integer", { format });
    if (payload < layout.min || payload > layout.max) throw new GattValueError("out-of-range", { format, min: layout.min, max: layout.max });
  }
  const out = Buffer.alloc(layout.width);
  layout.write(out, payload);
  return out;
}
