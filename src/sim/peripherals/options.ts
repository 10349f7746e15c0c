/**
 * Scenario readers the peripheral kinds share, beyond those of ../validate: booleans, lists of numbers,
 * strings and hex packets. Every failure is a ScenarioError naming the exact JSON path ("bpm[1]").
 */
import { ScenarioError, type JsonObject } from "../validate";

export function optionalBoolean(obj: JsonObject, key: string, field: string, fallback: boolean): boolean {
  const value = obj[key];
  if (value === undefined) return fallback;
  if (typeof value !== "boolean") throw new ScenarioError(`${field}.${key}`, "must be true or false");
  return value;
}

/** A non-empty array (a single value is taken as a one-element array, for convenience). */
function optionalList(obj: JsonObject, key: string, field: string, what: string): unknown[] | undefined {
  const value = obj[key];
  if (value === undefined) return undefined;
  const list = Array.isArray(value) ? value : [value];
  if (list.length === 0) throw new ScenarioError(`${field}.${key}`, `must be a non-empty array of ${what}`);
  return list;
}

/** Whole numbers in [min, max]: "bpm[1]: must be a whole number between 1 and 65535". */
export function optionalIntegerList(obj: JsonObject, key: string, field: string, min: number, max: number): number[] | undefined {
  const what = `whole numbers between ${min} and ${max}`;
  return optionalList(obj, key, field, what)?.map((v, i) => {
    if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
      throw new ScenarioError(`${field}.${key}[${i}]`, `must be a whole number between ${min} and ${max}`);
    }
    return v;
  });
}

export function optionalNumberList(obj: JsonObject, key: string, field: string): number[] | undefined {
  return optionalList(obj, key, field, "finite numbers")?.map((v, i) => {
    if (typeof v !== "number" || !Number.isFinite(v)) throw new ScenarioError(`${field}.${key}[${i}]`, "must be a finite number");
    return v;
  });
}

export function optionalStringList(obj: JsonObject, key: string, field: string, maxLength: number): string[] | undefined {
  return optionalList(obj, key, field, "strings")?.map((v, i) => {
    if (typeof v !== "string") throw new ScenarioError(`${field}.${key}[${i}]`, "must be a string");
    if (v.length > maxLength) throw new ScenarioError(`${field}.${key}[${i}]`, `must be at most ${maxLength} characters`);
    return v;
  });
}

/** Hex byte strings ("0637", "06 37"), each minBytes..maxBytes long. */
export function optionalHexList(obj: JsonObject, key: string, field: string, minBytes: number, maxBytes: number): Buffer[] | undefined {
  return optionalList(obj, key, field, "hex strings")?.map((v, i) => {
    const at = `${field}.${key}[${i}]`;
    if (typeof v !== "string") throw new ScenarioError(at, "must be a hex string like \"0637\"");
    const compact = v.replace(/\s+/g, "");
    if (!/^([0-9a-fA-F]{2})*$/.test(compact)) throw new ScenarioError(at, "must be hex digits in pairs");
    const bytes = Buffer.from(compact, "hex");
    if (bytes.length < minBytes || bytes.length > maxBytes) throw new ScenarioError(at, `must be ${minBytes} to ${maxBytes} bytes, got ${bytes.length}`);
    return bytes;
  });
}


/** Fails when two options that exclude each other are both present. */
export function rejectTogether(obj: JsonObject, key: string, others: readonly string[], field: string): void {
  if (obj[key] === undefined) return;
  for (const other of others) {
    if (obj[other] !== undefined) throw new ScenarioError(`${field}.${other}`, `cannot be combined with ${key}`);
  }
}
