/**
 * The one error of GATT value handling (formats, SIG decoders, stream splitting). Its own module so that
 * gatt-value.ts and sig-decoders.ts can both throw it without importing each other; gatt-value.ts re-exports it.
 */

/**
 * Every code a GattValueError of src/protocol carries, for the catalog (each needs a text) and its completeness test:
 *   gatt-value.ts      not-bytes {format, got}, unknown-format {format}, wrong-length {format, expected, received},
 *                      payload-type {format, expected, got}, auto-number {}, bad-byte {index},
 *                      hex-bad-digit {position}, hex-odd-length {digits}, not-integer {format},
 *                      out-of-range {format, min, max}, not-finite {format}
 *   sig-decoders.ts    sig-unknown {characteristic}, sig-too-short {characteristic, need, got},
 *                      sig-malformed {characteristic, field}
 *   stream-split.ts    bad-delimiter {problem, position?}, bad-split-option {option}
 */
export const GATT_VALUE_ERROR_CODES = [
  "not-bytes",
  "unknown-format",
  "wrong-length",
  "payload-type",
  "auto-number",
  "bad-byte",
  "hex-bad-digit",
  "hex-odd-length",
  "not-integer",
  "out-of-range",
  "not-finite",
  "sig-unknown",
  "sig-too-short",
  "sig-malformed",
  "bad-delimiter",
  "bad-split-option",
] as const;
export type GattValueErrorCode = (typeof GATT_VALUE_ERROR_CODES)[number];

/**
 * `code` is a catalog-key suffix (one of GATT_VALUE_ERROR_CODES) and `params` its substitutions: names of formats, fields and characteristics, byte
 * counts and positions, never the value itself (a value is data from a radio or a message). `message` is the English
 * for logs and tests.
 */
export class GattValueError extends Error {
  constructor(
    readonly code: string,
    readonly params: Record<string, string | number>,
  ) {
    const detail = Object.entries(params)
      .map(([k, v]) => `${k} ${String(v)}`)
      .join(", ");
    super(detail ? `gatt value: ${code} (${detail})` : `gatt value: ${code}`);
    this.name = "GattValueError";
  }
}
