/**
 * The one error of GATT value handling (formats, SIG decoders, stream splitting). Its own module so that
 * gatt-value.ts and sig-decoders.ts can both throw it without importing each other; gatt-value.ts re-exports it.
 */

/**
 * `code` is a catalog-key suffix and `params` its substitutions: names of formats, fields and characteristics, byte
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
