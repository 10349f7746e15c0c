/**
 * Reading editor properties: what the editor stores is strings, or absent in flows written by hand. A property may
 * hold an environment variable's value (Node-RED substitutes "${NAME}" at deploy), so errors name the property and
 * what is wrong with it, never the value.
 */
import type { Node, NodeMessage } from "node-red";

/**
 * An invalid property, to be worded by the node's message catalog: `errors.<key>` with `params` (see showInvalid in
 * ./status). Its message is the same in English, for callers without a catalog.
 */
export class PropertyError extends RangeError {
  constructor(
    readonly key: string,
    readonly params: Record<string, string | number>,
    english: string,
  ) {
    super(english);
  }
}

export function intProperty(value: unknown, fallback: number, min: number, max: number, name: string): number {
  if (value === undefined || value === null || value === "") return fallback;
  const n = typeof value === "number" ? value : Number(String(value).trim());
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new PropertyError("int-range", { field: name, min, max }, `${name} must be a whole number between ${min} and ${max}`);
  }
  return n;
}

export function numberProperty(value: unknown, fallback: number, min: number, max: number, name: string): number {
  if (value === undefined || value === null || value === "") return fallback;
  const n = typeof value === "number" ? value : Number(String(value).trim());
  if (!Number.isFinite(n) || n < min || n > max) throw new PropertyError("number-range", { field: name, min, max }, `${name} must be a number between ${min} and ${max}`);
  return n;
}

export function stringProperty(value: unknown): string {
  return typeof value === "string" ? value.trim() : "";
}

const ADDRESS = /^[0-9a-f]{2}([:-][0-9a-f]{2}){5}$|^[0-9a-f]{12}$/i;

/** "D8-75-BA-00-00-01", "d875ba000001" → "d8:75:ba:00:00:01"; "" stays ""; anything else throws. */
export function addressProperty(value: unknown): string {
  const s = stringProperty(value);
  if (!s) return "";
  if (!ADDRESS.test(s)) throw new PropertyError("address", { field: "address" }, "address must look like d8:75:ba:00:00:01");
  const hex = s.replace(/[:-]/g, "").toLowerCase();
  return hex.match(/../g)!.join(":");
}

/** What evaluating an "env" typed input needs of Node-RED: its util, and the node (for flow and group env). */
interface EnvContext {
  util: { evaluateNodeProperty(value: string, type: string, node: Node, msg: NodeMessage): unknown };
}

/**
 * The value of a typed input of types "str" and "env" (the device nodes' address): the text itself, or the
 * environment variable it names, looked up as Node-RED does (the node's group and flow, then the process).
 * An "env" input must give a non-empty text: Node-RED evaluates an unset variable to "", which would otherwise
 * read as "no address" and select any device of the kind, as a "${NAME}" left unsubstituted is refused too.
 * `field` names the property in the error, which never quotes the variable's value.
 */
export function strOrEnvProperty(RED: EnvContext, node: Node, value: unknown, type: unknown, field = "address"): unknown {
  if (type !== "env") return value;
  const name = stringProperty(value);
  if (!name) throw new PropertyError("env-none", { field }, `${field} is typed as an environment variable but names none`);
  const resolved = RED.util.evaluateNodeProperty(name, "env", node, {});
  if (typeof resolved !== "string" || resolved.trim() === "") {
    throw new PropertyError("env-unset", { field, variable: name }, `${field} names the environment variable ${name}, which is not set, empty or not text`);
  }
  return resolved;
}

/** One of `allowed`; absent or empty is `fallback`. The error lists the allowed values, never the value given. */
export function enumProperty<T extends string>(value: unknown, allowed: readonly T[], fallback: T, name: string): T {
  const s = stringProperty(value);
  if (s === "") return fallback;
  const found = allowed.find((a) => a === s);
  if (found === undefined) {
    const list = allowed.map((a) => JSON.stringify(a)).join(", ");
    // Not the value: it may come from an environment variable.
    throw new PropertyError("one-of", { field: name, allowed: list }, `${name} must be one of ${list}`);
  }
  return found;
}
