/**
 * IEEE 11073-20601 medical floating point numbers as Bluetooth health profiles send them (little-endian):
 *   FLOAT  (32 bits): 8-bit signed exponent (high byte), 24-bit signed mantissa; value = mantissa · 10^exponent.
 *   SFLOAT (16 bits): 4-bit signed exponent (high nibble), 12-bit signed mantissa.
 * Special values are marked by the mantissa: NaN, NRes (not at this resolution), +INF, -INF and one reserved value.
 * They are recognised by the mantissa whatever the exponent (devices are known to send them with a non-zero
 * exponent) and read as null: none is a measurement.
 */

const FLOAT_NAN = 0x7fffff;
const FLOAT_NRES = -0x800000;
const FLOAT_PLUS_INF = 0x7ffffe;
const FLOAT_MINUS_INF = -0x7ffffe;
const FLOAT_RESERVED = -0x7fffff;

const SFLOAT_NAN = 0x07ff;
const SFLOAT_NRES = -0x0800;
const SFLOAT_PLUS_INF = 0x07fe;
const SFLOAT_MINUS_INF = -0x07fe;
const SFLOAT_RESERVED = -0x07ff;

/**
 * mantissa · 10^exponent as the double nearest the decimal the device meant (36.5, not 36.50000000000001):
 * JavaScript's number parsing rounds a decimal correctly for every exponent, which arithmetic with 10 ** e does not
 * once the power of ten itself is inexact (beyond 1e22).
 */
function scale(mantissa: number, exponent: number): number {
  return Number(`${mantissa}e${exponent}`);
}

/** The 32-bit FLOAT in `raw` (as an unsigned 32-bit integer); null for the special values. */
export function float32FromRaw(raw: number): number | null {
  const exponent = (raw >> 24) & 0xff;
  const e = exponent >= 0x80 ? exponent - 0x100 : exponent;
  const m24 = raw & 0xffffff;
  const mantissa = m24 >= 0x800000 ? m24 - 0x1000000 : m24;
  if (mantissa === FLOAT_NAN || mantissa === FLOAT_NRES || mantissa === FLOAT_PLUS_INF || mantissa === FLOAT_MINUS_INF || mantissa === FLOAT_RESERVED) {
    return null;
  }
  return scale(mantissa, e);
}

/** The 16-bit SFLOAT in `raw` (as an unsigned 16-bit integer); null for the special values. */
export function sfloatFromRaw(raw: number): number | null {
  const exponent = (raw >> 12) & 0x0f;
  const e = exponent >= 0x8 ? exponent - 0x10 : exponent;
  const m12 = raw & 0x0fff;
  const mantissa = m12 >= 0x800 ? m12 - 0x1000 : m12;
  if (mantissa === SFLOAT_NAN || mantissa === SFLOAT_NRES || mantissa === SFLOAT_PLUS_INF || mantissa === SFLOAT_MINUS_INF || mantissa === SFLOAT_RESERVED) {
    return null;
  }
  return scale(mantissa, e);
}

/** The FLOAT at `offset` (4 bytes, little-endian); the caller checks the length. */
export function readFloat11073(value: Uint8Array, offset: number): number | null {
  const raw = (value[offset] | (value[offset + 1] << 8) | (value[offset + 2] << 16) | (value[offset + 3] << 24)) >>> 0;
  return float32FromRaw(raw);
}

/** The SFLOAT at `offset` (2 bytes, little-endian); the caller checks the length. */
export function readSfloat11073(value: Uint8Array, offset: number): number | null {
  return sfloatFromRaw(value[offset] | (value[offset + 1] << 8));
}

/**
 * Encodes mantissa · 10^exponent as a FLOAT (for the simulator and tests). Throws RangeError for a mantissa outside
 * -8388608..8388607 or an exponent outside -128..127 (the special mantissas are allowed: that is how they are made).
 */
export function encodeFloat11073(mantissa: number, exponent: number): Buffer {
  if (!Number.isInteger(mantissa) || mantissa < -0x800000 || mantissa > 0x7fffff) throw new RangeError("FLOAT mantissa must be an integer -8388608..8388607");
  if (!Number.isInteger(exponent) || exponent < -128 || exponent > 127) throw new RangeError("FLOAT exponent must be an integer -128..127");
  const out = Buffer.alloc(4);
  out.writeUInt32LE((((exponent & 0xff) << 24) | (mantissa & 0xffffff)) >>> 0, 0);
  return out;
}

/** Encodes mantissa · 10^exponent as an SFLOAT. Throws RangeError for a mantissa outside -2048..2047 or an exponent outside -8..7. */
export function encodeSfloat11073(mantissa: number, exponent: number): Buffer {
  if (!Number.isInteger(mantissa) || mantissa < -0x800 || mantissa > 0x7ff) throw new RangeError("SFLOAT mantissa must be an integer -2048..2047");
  if (!Number.isInteger(exponent) || exponent < -8 || exponent > 7) throw new RangeError("SFLOAT exponent must be an integer -8..7");
  const out = Buffer.alloc(2);
  out.writeUInt16LE(((exponent & 0x0f) << 12) | (mantissa & 0x0fff), 0);
  return out;
}
