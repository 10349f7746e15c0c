/**
 * The `sig` format: characteristic values decoded as the Bluetooth SIG defines them (GATT Specification Supplement).
 * Pure code. Every decoder reads only inside the value (each field's bytes are checked before it is read), allocates
 * nothing from a length field, ignores bytes after the last field its flags announce (later spec revisions append
 * fields), and throws only GattValueError:
 *   "sig-too-short" {characteristic, need, got}  the value ends before a field it announces (need: bytes up to the end
 *                                                of that field; got: the value's length);
 *   "sig-malformed" {characteristic, field}      a field that cannot be read whole (the RR interval list);
 *   "sig-unknown" {characteristic}               no decoder for this characteristic.
 *
 * What each decoder returns (null: the device says the value is unknown / not a number):
 *   2a19 Battery Level              number, % (0..100; larger values are reserved and passed through)
 *   2a6e Temperature                number, °C (resolution 0.01) | null (0x8000)
 *   2a6f Humidity                   number, % (resolution 0.01) | null (0xffff)
 *   2a6d Pressure                   number, Pa (resolution 0.1)
 *   2a37 Heart Rate Measurement     { bpm, sensorContact, energyExpended (kJ), rrIntervals (ms), rrIntervalsRaw (1/1024 s) }
 *   2a1c Temperature Measurement    { temperature, unit ("°C" | "°F"), timestamp, temperatureType, temperatureTypeName }
 *   2a35 Blood Pressure Measurement { systolic, diastolic, meanArterialPressure, unit ("mmHg" | "kPa"), timestamp,
 *                                     pulseRate (beats/min), userId, measurementStatus }
 *   2a9d Weight Measurement         { weight, unit ("kg" | "lb"), timestamp, userId, bmi (kg/m²), height, heightUnit ("m" | "in") }
 *   2a5b CSC Measurement            { cumulativeWheelRevolutions, lastWheelEventTime (s), cumulativeCrankRevolutions,
 *                                     lastCrankEventTime (s) }
 *   2a63 Cycling Power Measurement  { instantaneousPower (W), pedalPowerBalance (%), pedalPowerBalanceReference,
 *                                     accumulatedTorque (N·m), accumulatedTorqueSource, cumulativeWheelRevolutions,
 *                                     lastWheelEventTime (s), cumulativeCrankRevolutions, lastCrankEventTime (s),
 *                                     maximumForce, minimumForce (N), maximumTorque, minimumTorque (N·m),
 *                                     maximumAngle, minimumAngle, topDeadSpotAngle, bottomDeadSpotAngle (degrees),
 *                                     accumulatedEnergy (kJ), offsetCompensationIndicator }
 * Optional fields a value's flags leave out are null, so an object always has the same keys. A userId is as sent
 * (255 means "unknown user"). A timestamp (Date Time)
 * is {year, month, day, hours, minutes, seconds} as sent (year, month or day 0: not known), without a time zone.
 * Event times are in seconds, as the raw counter divided by its resolution (1/1024 s; 1/2048 s for Cycling Power's
 * wheel): they wrap at 64 s (32 s) like the counters do.
 */
import { GattValueError } from "./gatt-value-error";
import { decodeHeartRateMeasurement, HeartRateFormatError } from "./heart-rate";
import { readFloat11073, readSfloat11073 } from "./ieee11073";
import { normalizeUuid } from "./uuid";

/** A Date Time field (0x2A08 layout, 7 bytes). */
export interface SigDateTime {
  year: number;
  month: number;
  day: number;
  hours: number;
  minutes: number;
  seconds: number;
}

/** Reads fields in order, refusing any read past the value's end. */
class FieldReader {
  offset = 0;
  constructor(
    private readonly characteristic: string,
    private readonly value: Buffer,
  ) {}

  private need(n: number): number {
    const at = this.offset;
    if (this.value.length < at + n) throw new GattValueError("sig-too-short", { characteristic: this.characteristic, need: at + n, got: this.value.length });
    this.offset = at + n;
    return at;
  }
  uint8(): number {
    return this.value.readUInt8(this.need(1));
  }
  uint16(): number {
    return this.value.readUInt16LE(this.need(2));
  }
  sint16(): number {
    return this.value.readInt16LE(this.need(2));
  }
  uint24(): number {
    return this.value.readUIntLE(this.need(3), 3);
  }
  uint32(): number {
    return this.value.readUInt32LE(this.need(4));
  }
  float(): number | null {
    return readFloat11073(this.value, this.need(4));
  }
  sfloat(): number | null {
    return readSfloat11073(this.value, this.need(2));
  }
  dateTime(): SigDateTime {
    const at = this.need(7);
    const v = this.value;
    return { year: v.readUInt16LE(at), month: v[at + 2], day: v[at + 3], hours: v[at + 4], minutes: v[at + 5], seconds: v[at + 6] };
  }
}

const bit = (flags: number, n: number): boolean => (flags & (1 << n)) !== 0;

/** 2a19: one uint8, percent. */
function batteryLevel(r: FieldReader): number {
  return r.uint8();
}

/** 2a6e: sint16, 0.01 °C; 0x8000 = unknown. */
function temperature(r: FieldReader): number | null {
  const raw = r.sint16();
  return raw === -0x8000 ? null : raw / 100;
}

/** 2a6f: uint16, 0.01 %; 0xffff = unknown. */
function humidity(r: FieldReader): number | null {
  const raw = r.uint16();
  return raw === 0xffff ? null : raw / 100;
}

/** 2a6d: uint32, 0.1 Pa. */
function pressure(r: FieldReader): number {
  return r.uint32() / 10;
}

/** Temperature Type (0x2A1D) names, by value. */
export const TEMPERATURE_TYPES: Readonly<Record<number, string>> = Object.freeze({
  1: "armpit",
  2: "body",
  3: "ear",
  4: "finger",
  5: "gastrointestinal tract",
  6: "mouth",
  7: "rectum",
  8: "toe",
  9: "tympanum",
});

/** 2a1c: flags (bit 0 °F, bit 1 timestamp, bit 2 temperature type), FLOAT, [Date Time], [uint8 type]. */
function temperatureMeasurement(r: FieldReader): Record<string, unknown> {
  const flags = r.uint8();
  const temperature = r.float();
  const timestamp = bit(flags, 1) ? r.dateTime() : null;
  const temperatureType = bit(flags, 2) ? r.uint8() : null;
  return {
    temperature,
    unit: bit(flags, 0) ? "°F" : "°C",
    timestamp,
    temperatureType,
    temperatureTypeName: temperatureType === null ? null : (TEMPERATURE_TYPES[temperatureType] ?? null),
  };
}

/** 2a35 Measurement Status bits. */
function bloodPressureStatus(status: number): Record<string, unknown> {
  const range = (status >> 3) & 0x3;
  return {
    bodyMovementDetected: bit(status, 0),
    cuffTooLoose: bit(status, 1),
    irregularPulseDetected: bit(status, 2),
    pulseRateRange: (["within", "above-upper-limit", "below-lower-limit", "reserved"] as const)[range],
    improperMeasurementPosition: bit(status, 5),
  };
}

/**
 * 2a35: flags (bit 0 kPa, 1 timestamp, 2 pulse rate, 3 user id, 4 measurement status), SFLOAT systolic, diastolic,
 * mean arterial pressure, [Date Time], [SFLOAT pulse rate], [uint8 user id], [uint16 measurement status].
 */
function bloodPressureMeasurement(r: FieldReader): Record<string, unknown> {
  const flags = r.uint8();
  const systolic = r.sfloat();
  const diastolic = r.sfloat();
  const meanArterialPressure = r.sfloat();
  const timestamp = bit(flags, 1) ? r.dateTime() : null;
  const pulseRate = bit(flags, 2) ? r.sfloat() : null;
  const userId = bit(flags, 3) ? r.uint8() : null;
  const measurementStatus = bit(flags, 4) ? bloodPressureStatus(r.uint16()) : null;
  return { systolic, diastolic, meanArterialPressure, unit: bit(flags, 0) ? "kPa" : "mmHg", timestamp, pulseRate, userId, measurementStatus };
}

/**
 * 2a9d: flags (bit 0 imperial, 1 timestamp, 2 user id, 3 BMI and height), uint16 weight (0.005 kg | 0.01 lb;
 * 0xffff = measurement unsuccessful → null), [Date Time], [uint8 user id], [uint16 BMI 0.1 kg/m², uint16 height
 * 0.001 m | 0.1 in].
 */
function weightMeasurement(r: FieldReader): Record<string, unknown> {
  const flags = r.uint8();
  const imperial = bit(flags, 0);
  const rawWeight = r.uint16();
  const timestamp = bit(flags, 1) ? r.dateTime() : null;
  const userId = bit(flags, 2) ? r.uint8() : null;
  let bmi: number | null = null;
  let height: number | null = null;
  if (bit(flags, 3)) {
    bmi = r.uint16() / 10;
    const rawHeight = r.uint16();
    height = imperial ? rawHeight / 10 : rawHeight / 1000;
  }
  // 0.005 kg = 5/1000: multiplying by 5 first keeps whole grams exact.
  const weight = rawWeight === 0xffff ? null : imperial ? rawWeight / 100 : (rawWeight * 5) / 1000;
  return { weight, unit: imperial ? "lb" : "kg", timestamp, userId, bmi, height, heightUnit: bit(flags, 3) ? (imperial ? "in" : "m") : null };
}

/** 2a5b: flags (bit 0 wheel, bit 1 crank), [uint32 wheel revolutions, uint16 time 1/1024 s], [uint16 crank revolutions, uint16 time 1/1024 s]. */
function cscMeasurement(r: FieldReader): Record<string, unknown> {
  const flags = r.uint8();
  let cumulativeWheelRevolutions: number | null = null;
  let lastWheelEventTime: number | null = null;
  let cumulativeCrankRevolutions: number | null = null;
  let lastCrankEventTime: number | null = null;
  if (bit(flags, 0)) {
    cumulativeWheelRevolutions = r.uint32();
    lastWheelEventTime = r.uint16() / 1024;
  }
  if (bit(flags, 1)) {
    cumulativeCrankRevolutions = r.uint16();
    lastCrankEventTime = r.uint16() / 1024;
  }
  return { cumulativeWheelRevolutions, lastWheelEventTime, cumulativeCrankRevolutions, lastCrankEventTime };
}

/**
 * 2a63: uint16 flags, sint16 instantaneous power (W), then, each when its flag bit is set and in this order:
 *   bit 0  uint8 pedal power balance (1/2 %)            bit 1 reference: 0 unknown, 1 left pedal
 *   bit 2  uint16 accumulated torque (1/32 N·m)         bit 3 source: 0 wheel, 1 crank
 *   bit 4  uint32 cumulative wheel revolutions, uint16 last wheel event time (1/2048 s)
 *   bit 5  uint16 cumulative crank revolutions, uint16 last crank event time (1/1024 s)
 *   bit 6  sint16 maximum force, sint16 minimum force (N)
 *   bit 7  sint16 maximum torque, sint16 minimum torque (1/32 N·m)
 *   bit 8  extreme angles: 3 bytes, maximum angle in the low 12 bits, minimum angle in the high 12 (degrees)
 *   bit 9  uint16 top dead spot angle (degrees)
 *   bit 10 uint16 bottom dead spot angle (degrees)
 *   bit 11 uint16 accumulated energy (kJ)
 *   bit 12 offset compensation indicator (no field)
 * Every field is decoded, so the position of each is known.
 */
function cyclingPowerMeasurement(r: FieldReader): Record<string, unknown> {
  const flags = r.uint16();
  const instantaneousPower = r.sint16();
  const out: Record<string, unknown> = {
    instantaneousPower,
    pedalPowerBalance: null,
    pedalPowerBalanceReference: null,
    accumulatedTorque: null,
    accumulatedTorqueSource: null,
    cumulativeWheelRevolutions: null,
    lastWheelEventTime: null,
    cumulativeCrankRevolutions: null,
    lastCrankEventTime: null,
    maximumForce: null,
    minimumForce: null,
    maximumTorque: null,
    minimumTorque: null,
    maximumAngle: null,
    minimumAngle: null,
    topDeadSpotAngle: null,
    bottomDeadSpotAngle: null,
    accumulatedEnergy: null,
    offsetCompensationIndicator: bit(flags, 12),
  };
  if (bit(flags, 0)) {
    out.pedalPowerBalance = r.uint8() / 2;
    out.pedalPowerBalanceReference = bit(flags, 1) ? "left" : "unknown";
  }
  if (bit(flags, 2)) {
    out.accumulatedTorque = r.uint16() / 32;
    out.accumulatedTorqueSource = bit(flags, 3) ? "crank" : "wheel";
  }
  if (bit(flags, 4)) {
    out.cumulativeWheelRevolutions = r.uint32();
    out.lastWheelEventTime = r.uint16() / 2048;
  }
  if (bit(flags, 5)) {
    out.cumulativeCrankRevolutions = r.uint16();
    out.lastCrankEventTime = r.uint16() / 1024;
  }
  if (bit(flags, 6)) {
    out.maximumForce = r.sint16();
    out.minimumForce = r.sint16();
  }
  if (bit(flags, 7)) {
    out.maximumTorque = r.sint16() / 32;
    out.minimumTorque = r.sint16() / 32;
  }
  if (bit(flags, 8)) {
    const angles = r.uint24();
    out.maximumAngle = angles & 0xfff;
    out.minimumAngle = angles >> 12;
  }
  if (bit(flags, 9)) out.topDeadSpotAngle = r.uint16();
  if (bit(flags, 10)) out.bottomDeadSpotAngle = r.uint16();
  if (bit(flags, 11)) out.accumulatedEnergy = r.uint16();
  return out;
}

/** The bytes up to the end of the field a Heart Rate Measurement error names: the decoder's own reading order. */
function heartRateMeasurement(characteristic: string, value: Buffer): Record<string, unknown> {
  try {
    return { ...decodeHeartRateMeasurement(value) };
  } catch (error) {
    if (!(error instanceof HeartRateFormatError)) throw error;
    if (error.key === "odd-rr") throw new GattValueError("sig-malformed", { characteristic, field: "rrIntervals" });
    const flags = value.length > 0 ? value[0] : 0;
    const hrEnd = 1 + (flags & 0x01 ? 2 : 1);
    const need = error.key === "short-energy" ? hrEnd + 2 : hrEnd;
    throw new GattValueError("sig-too-short", { characteristic, need, got: value.length });
  }
}

type Decoder = (r: FieldReader) => number | null | Record<string, unknown>;

const DECODERS: Readonly<Record<string, Decoder>> = {
  "2a19": batteryLevel,
  "2a6e": temperature,
  "2a6f": humidity,
  "2a6d": pressure,
  "2a1c": temperatureMeasurement,
  "2a35": bloodPressureMeasurement,
  "2a9d": weightMeasurement,
  "2a5b": cscMeasurement,
  "2a63": cyclingPowerMeasurement,
};

/** Canonical UUIDs (src/protocol/uuid.ts) of the characteristics `sig` decodes: the documented list. */
export const SIG_CHARACTERISTICS: readonly string[] = Object.freeze(["2a19", "2a6e", "2a6f", "2a6d", "2a37", "2a1c", "2a35", "2a9d", "2a5b", "2a63"]);

function canonical(characteristic: string): string | null {
  try {
    return normalizeUuid(characteristic);
  } catch {
    return null;
  }
}

/** True when `sig` can decode this characteristic (any UUID spelling). */
export function hasSigDecoder(characteristic: string): boolean {
  if (typeof characteristic !== "string") return false;
  const c = canonical(characteristic);
  return c !== null && SIG_CHARACTERISTICS.includes(c);
}

/**
 * The SIG definition of `characteristic` applied to `value`: a number (or null: the device reports "unknown") for
 * the single-field characteristics, an object for the structured ones. Throws GattValueError only.
 */
export function decodeSig(characteristic: string, value: Buffer): number | Record<string, unknown> | null {
  const c = typeof characteristic === "string" ? canonical(characteristic) : null;
  if (c === null || !SIG_CHARACTERISTICS.includes(c)) {
    throw new GattValueError("sig-unknown", { characteristic: c ?? (typeof characteristic === "string" ? "invalid uuid" : typeof characteristic) });
  }
  if (!Buffer.isBuffer(value)) throw new GattValueError("not-bytes", { format: "sig", got: value === null ? "null" : typeof value });
  if (c === "2a37") return heartRateMeasurement(c, value);
  return DECODERS[c](new FieldReader(c, value));
}
