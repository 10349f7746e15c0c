/**
 * Heart Rate Measurement (characteristic 0x2A37) and Body Sensor Location (0x2A38).
 *
 * Pure code: bytes in, plain objects out. No Node-RED, no noble.
 *
 * Value layout: flags, heart rate (uint8 or uint16 LE), [energy expended uint16 LE kJ],
 * [RR interval uint16 LE, unit 1/1024 s, repeated to the end of the value].
 *
 * Flags byte:
 *   bit 0  heart rate format: 0 = uint8, 1 = uint16 little-endian
 *   bit 1  sensor contact detected (meaningful only when bit 2 is set)
 *   bit 2  sensor contact supported
 *   bit 3  energy expended present
 *   bit 4  RR intervals present
 *   bits 5-7 reserved: ignored when decoding (a future spec revision may use them and
 *   we would rather report the fields we understand than drop the notification);
 *   always written as 0 by the encoder.
 */

export interface HeartRateMeasurement {
  /** Beats per minute, an integer 0..65535 (0..255 in uint8 format). */
  bpm: number;
  /** true/false when the sensor reports contact (flags bit 2 set); null when it does not support contact detection. */
  sensorContact: boolean | null;
  /**
   * Cumulative energy expended in kilojoules, or null when absent. The sensor saturates at
   * 65535 instead of wrapping; 0x2A39 (write 0x01) resets it.
   */
  energyExpended: number | null;
  /**
   * RR intervals in milliseconds, full precision: rrIntervalsRaw[i] * 1000 / 1024.
   * Not rounded: the conversion is exact in binary floating point (1000/1024 = 0.9765625),
   * so callers that want 0.1 ms display must round for display themselves.
   * Empty when the value carries no RR intervals.
   */
  rrIntervals: number[];
  /** RR intervals as sent, in units of 1/1024 s (integers 0..65535), oldest first. */
  rrIntervalsRaw: number[];
}

export class HeartRateFormatError extends Error {
  /** The problem as a key with parameters, for a user interface to word (`message` is its English). */
  constructor(
    message: string,
    readonly key: string,
    readonly params: Readonly<Record<string, string | number>> = {},
  ) {
    super(message);
    this.name = "HeartRateFormatError";
  }
}

/** The Heart Rate service and its Heart Rate Measurement characteristic (Bluetooth SIG assigned numbers). */
export const HEART_RATE_SERVICE = "180d";
export const HEART_RATE_MEASUREMENT = "2a37";

const FLAG_UINT16 = 0x01;
const FLAG_CONTACT_DETECTED = 0x02;
const FLAG_CONTACT_SUPPORTED = 0x04;
const FLAG_ENERGY = 0x08;
const FLAG_RR = 0x10;

/**
 * Throws the error for a malformed value: the problem and the value's length, never its bytes (a message from the
 * radio is data: a log line names the field and the problem; the bytes themselves are the caller's to keep).
 */
function fail(value: Uint8Array, what: string, key: string, params: Record<string, string | number> = {}): never {
  throw new HeartRateFormatError(`heart rate measurement: ${what} (${value.length} byte${value.length === 1 ? "" : "s"})`, key, { ...params, length: value.length });
}

function uint16At(value: Uint8Array, offset: number): number {
  return value[offset] | (value[offset + 1] << 8);
}

/**
 * Decodes one 0x2A37 value. Throws HeartRateFormatError (and nothing else) for malformed
 * input: empty value, heart rate or energy field cut short, or an odd byte left over in the
 * RR interval list. Reserved flag bits 5-7 are ignored; bit 1 without bit 2 is ignored
 * (sensorContact null), as the spec says it is meaningless then.
 */
export function decodeHeartRateMeasurement(value: Uint8Array): HeartRateMeasurement {
  if (!(value instanceof Uint8Array)) {
    // Node-RED users can wire anything in; keep the "only HeartRateFormatError" promise.
    const type = value === null ? "null" : typeof value;
    throw new HeartRateFormatError(`heart rate measurement: expected bytes, got ${type}`, "not-bytes", { type });
  }
  if (value.length === 0) fail(value, "empty value, expected at least a flags byte and a heart rate", "empty");

  const flags = value[0];
  let offset = 1;
  let bpm: number;
  if (flags & FLAG_UINT16) {
    if (value.length < offset + 2) fail(value, "flag bit 0 announces a uint16 heart rate at bytes 1-2, but the value ends early", "short-uint16");
    bpm = uint16At(value, offset);
    offset += 2;
  } else {
    if (value.length < offset + 1) fail(value, "flag bit 0 clear announces a uint8 heart rate at byte 1, but the value ends early", "short-uint8");
    bpm = value[offset];
    offset += 1;
  }

  const sensorContact = flags & FLAG_CONTACT_SUPPORTED ? (flags & FLAG_CONTACT_DETECTED) !== 0 : null;

  let energyExpended: number | null = null;
  if (flags & FLAG_ENERGY) {
    if (value.length < offset + 2) fail(value, `flag bit 3 announces energy expended at bytes ${offset}-${offset + 1}, but the value ends early`, "short-energy", {
        from: offset,
        to: offset + 1,
      });
    energyExpended = uint16At(value, offset);
    offset += 2;
  }

  const rrIntervalsRaw: number[] = [];
  if (flags & FLAG_RR) {
    // Bit 4 with no bytes left is accepted as an empty list: it carries no wrong data.
    if ((value.length - offset) % 2 !== 0) fail(value, `RR interval list (flag bit 4) from byte ${offset} has an odd number of bytes (${value.length - offset}); each interval is 2 bytes`, "odd-rr", {
        from: offset,
        odd: value.length - offset,
      });
    for (; offset < value.length; offset += 2) rrIntervalsRaw.push(uint16At(value, offset));
  }
  // Bytes after the last announced field without bit 4 are tolerated: they carry nothing we
  // could decode, and rejecting them would drop a good heart rate.

  return {
    bpm,
    sensorContact,
    energyExpended,
    rrIntervals: rrIntervalsRaw.map(rrRawToMs),
    rrIntervalsRaw,
  };
}

/** 1/1024 s units to milliseconds, exact in binary floating point for any uint16. */
function rrRawToMs(raw: number): number {
  return (raw * 1000) / 1024;
}

function checkUint16(name: string, v: number): void {
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > 0xffff) {
    throw new RangeError(`${name} must be an integer 0..65535, got ${String(v)}`);
  }
}

/**
 * Builds a 0x2A37 value (for the simulator and tests). The inverse of the decoder:
 *   - bpm is written as uint16 when bpm > 255 or uint16 is true, else as uint8;
 *   - sensorContact true/false sets bit 2 and bit 1 accordingly; null/undefined clears both;
 *   - energyExpended sets bit 3 unless null/undefined;
 *   - rrIntervalsRaw sets bit 4 only when non-empty, so a decoded value re-encodes the same
 *     way whether or not its RR list was absent or empty.
 * Throws RangeError for a bpm, energy or RR interval that is not an integer 0..65535.
 */
export function encodeHeartRateMeasurement(m: {
  bpm: number;
  sensorContact?: boolean | null;
  energyExpended?: number | null;
  rrIntervalsRaw?: number[];
  uint16?: boolean;
}): Buffer {
  checkUint16("bpm", m.bpm);
  const energy = m.energyExpended ?? null;
  if (energy !== null) checkUint16("energyExpended", energy);
  const rr = m.rrIntervalsRaw ?? [];
  rr.forEach((v, i) => checkUint16(`rrIntervalsRaw[${i}]`, v));

  const wide = m.uint16 === true || m.bpm > 0xff;
  let flags = 0;
  if (wide) flags |= FLAG_UINT16;
  if (m.sensorContact === true) flags |= FLAG_CONTACT_SUPPORTED | FLAG_CONTACT_DETECTED;
  else if (m.sensorContact === false) flags |= FLAG_CONTACT_SUPPORTED;
  if (energy !== null) flags |= FLAG_ENERGY;
  if (rr.length > 0) flags |= FLAG_RR;

  const out = Buffer.alloc(1 + (wide ? 2 : 1) + (energy !== null ? 2 : 0) + 2 * rr.length);
  let offset = out.writeUInt8(flags, 0);
  offset = wide ? out.writeUInt16LE(m.bpm, offset) : out.writeUInt8(m.bpm, offset);
  if (energy !== null) offset = out.writeUInt16LE(energy, offset);
  for (const v of rr) offset = out.writeUInt16LE(v, offset);
  return out;
}

/** 0x2A38 Body Sensor Location names; the index is the characteristic's value. */
export const BODY_SENSOR_LOCATIONS: readonly string[] = Object.freeze(["other", "chest", "wrist", "finger", "hand", "ear lobe", "foot"]);

/** Name for a 0x2A38 value; "unknown (7)" for a value the spec reserves (or any non-index). */
export function bodySensorLocationName(code: number): string {
  if (Number.isInteger(code) && code >= 0 && code < BODY_SENSOR_LOCATIONS.length) return BODY_SENSOR_LOCATIONS[code];
  return `unknown (${String(code)})`;
}
