/**
 * Scenario validation: every failure names the offending field by its JSON path and says what is wrong with it,
 * never quoting what the file holds there (a scenario path can name any JSON file the runtime may read).
 */
import { isBluetoothAddress } from "../protocol/hci";

export class ScenarioError extends Error {
  constructor(
    readonly field: string,
    /** What is wrong, without the field: "must be a number". */
    readonly problem: string,
    /** The scenario file, when the scenario was read from one. */
    readonly file?: string,
  ) {
    super(`scenario: ${field}: ${problem}${file !== undefined ? ` (in ${file})` : ""}`);
    this.name = "ScenarioError";
  }
}

export type JsonObject = Record<string, unknown>;

/**
 * A key the file chose (an unknown option, a command line, a file name), as it appears in a field path: by its
 * position in its object, "(key 3)", never quoted, so that no part of the file is echoed.
 */
export function keyName(index: number): string {
  return `(key ${index + 1})`;
}

/**
 * Rejects keys nobody reads, so a typo ("bmp") fails loudly instead of silently using a default. The key is named by
 * its position (keyName), the expected ones in full; `noun` is what the keys are to the reader: a peripheral's
 * "option", a part of the file's structure's "key". `field` "" is the top level.
 */
export function rejectUnknownKeys(obj: JsonObject, allowed: readonly string[], field: string, noun: "key" | "option"): void {
  Object.keys(obj).forEach((key, i) => {
    if (!allowed.includes(key)) {
      throw new ScenarioError(field ? `${field}.${keyName(i)}` : keyName(i), `unknown ${noun}; expected one of ${allowed.map((k) => JSON.stringify(k)).join(", ")}`);
    }
  });
}

export function isObject(value: unknown): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

export function requireObject(value: unknown, field: string): JsonObject {
  if (!isObject(value)) throw new ScenarioError(field, "must be an object");
  return value;
}

export function optionalNumber(obj: JsonObject, key: string, field: string, fallback: number, min: number, max: number): number {
  const value = obj[key];
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isFinite(value)) throw new ScenarioError(`${field}.${key}`, "must be a number");
  if (value < min || value > max) throw new ScenarioError(`${field}.${key}`, `must be between ${min} and ${max}`);
  return value;
}

export function optionalInteger(obj: JsonObject, key: string, field: string, fallback: number, min: number, max: number): number {
  const value = optionalNumber(obj, key, field, fallback, min, max);
  if (!Number.isInteger(value)) throw new ScenarioError(`${field}.${key}`, "must be a whole number");
  return value;
}

export function optionalString(obj: JsonObject, key: string, field: string, fallback: string, maxLength = 248): string {
  const value = obj[key];
  if (value === undefined) return fallback;
  if (typeof value !== "string") throw new ScenarioError(`${field}.${key}`, "must be a string");
  if (value.length > maxLength) throw new ScenarioError(`${field}.${key}`, `must be at most ${maxLength} characters`);
  return value;
}

export function requireString(obj: JsonObject, key: string, field: string, maxLength = 248): string {
  if (obj[key] === undefined) throw new ScenarioError(`${field}.${key}`, "is required");
  return optionalString(obj, key, field, "", maxLength);
}

export function optionalEnum<T extends string>(obj: JsonObject, key: string, field: string, allowed: readonly T[], fallback: T): T {
  const value = obj[key];
  if (value === undefined) return fallback;
  if (typeof value !== "string" || !(allowed as readonly string[]).includes(value)) {
    throw new ScenarioError(`${field}.${key}`, `must be one of ${allowed.map((a) => JSON.stringify(a)).join(", ")}`);
  }
  return value as T;
}

/** A Bluetooth device address, normalised to lowercase. */
export function requireAddress(obj: JsonObject, key: string, field: string): string {
  const value = requireString(obj, key, field, 17).toLowerCase();
  if (!isBluetoothAddress(value)) throw new ScenarioError(`${field}.${key}`, 'must look like "d8:75:ba:00:00:01"');
  return value;
}
