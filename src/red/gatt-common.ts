/**
 * What the generic GATT nodes (ble-gatt-in, ble-gatt-out, ble-gatt-request) share on the node side: their common
 * properties read and validated (errors name the property, never its value), the fields every message they send
 * carries, the lease's connection policy, `msg.disconnect`, and the wording of the lower layers' errors with the
 * node's own catalog (`errors.*`, `value.*`) or the shared one (BLE problems).
 */
import { setMaxListeners } from "node:events";
import type { Node, NodeDef } from "node-red";
import type { Lease, LeaseOptions } from "../ble/lease";
import { BleProblemError } from "../ble/problem";
import type { DeviceSelector } from "../ble/selector";
import { GattValueError, READ_FORMATS, type ReadFormat } from "../protocol/gatt-value";
import { hasSigDecoder } from "../protocol/sig-decoders";
import { parseDelimiter, type SplitOptions } from "../protocol/stream-split";
import { formatUuid, normalizeUuid } from "../protocol/uuid";
import { reworded } from "./error-text";
import { addressProperty, enumProperty, intProperty, PropertyError, stringProperty, strOrEnvProperty } from "./properties";
import { problemText, type Translate } from "./status";

/** The editor properties the three nodes have in common (strings, or absent in flows written by hand). */
export interface GattNodeDef extends NodeDef {
  ble?: string;
  address?: string;
  /** "str" (default) or "env": the address field names an environment variable. */
  addressType?: string;
  deviceName?: string;
  service?: string;
  characteristic?: string;
  topic?: string;
  connection?: string;
  idleSeconds?: string | number;
  format?: string;
  split?: string;
  delimiter?: string;
  keepDelimiter?: boolean | string;
  quietMs?: string | number;
}

export type Connection = NonNullable<LeaseOptions["connection"]>;

/** The device, characteristic and connection policy a node works with. UUIDs canonical (normalizeUuid). */
export interface GattTarget {
  selector: DeviceSelector;
  service: string;
  characteristic: string;
  topic: string;
  connection: Connection;
}

export const DEFAULT_IDLE_SECONDS = 10;
export const DEFAULT_QUIET_MS = 100;
/** A split chunk (or a reply) longer than this is sent as it is: a stream that never ends a line cannot grow memory. */
export const MAX_CHUNK_BYTES = 65_536;

/** A required UUID property in canonical form; any spelling normalizeUuid accepts ("180f", "0x2A19", 128-bit with or without dashes). */
export function uuidProperty(value: unknown, field: string): string {
  const text = stringProperty(value);
  if (!text) throw new PropertyError("uuid-required", { field }, `${field} is required: a 16-bit UUID such as 2a19 or a 128-bit one`);
  try {
    return normalizeUuid(text);
  } catch {
    throw new PropertyError("uuid", { field }, `${field} must be a 16-bit UUID such as 2a19 or a 128-bit one such as 6e400001-b5a3-f393-e0a9-e50e24dcca9e`);
  }
}

/**
 * The device, characteristic and connection policy of `def`. Device selection as the device nodes': an address, an
 * exact advertised name, both (both must match), or neither: any device advertising `service`.
 */
export function parseTarget(RED: Parameters<typeof strOrEnvProperty>[0], node: Node, def: GattNodeDef): GattTarget {
  const address = addressProperty(strOrEnvProperty(RED, node, def.address, def.addressType));
  const name = stringProperty(def.deviceName);
  const service = uuidProperty(def.service, "service");
  const characteristic = uuidProperty(def.characteristic, "characteristic");
  const selector: DeviceSelector = address || name ? { ...(address ? { address } : {}), ...(name ? { name } : {}) } : { service };
  const policy = enumProperty(def.connection, ["keep", "idle"] as const, "keep", "connection");
  const connection: Connection = policy === "keep" ? "keep" : { idleMs: intProperty(def.idleSeconds, DEFAULT_IDLE_SECONDS, 1, 86_400, "idleSeconds") * 1000 };
  return { selector, service, characteristic, topic: stringProperty(def.topic), connection };
}

/** `format` of a value read (ble-gatt-in, ble-gatt-request); `sig` needs a characteristic with a SIG decoder. */
export function readFormatProperty(value: unknown, characteristic: string): ReadFormat {
  const format = enumProperty(value, READ_FORMATS, "buffer", "format");
  if (format === "sig" && !hasSigDecoder(characteristic)) {
    throw new PropertyError("sig-unknown", { field: "format", characteristic: formatUuid(characteristic) }, `format "sig" has no decoder for characteristic ${formatUuid(characteristic)}`);
  }
  return format;
}

/** `delimiter` as bytes (escapes as in Node-RED's serial node, or 0x… hex); an empty or unreadable one names the field. */
export function delimiterProperty(value: unknown): Buffer {
  // Not trimmed: a delimiter may be a space. Absent is the default, a newline.
  const text = typeof value === "string" ? value : "";
  try {
    const bytes = parseDelimiter(text === "" ? "\\n" : text);
    if (bytes.length > 0) return bytes;
  } catch (error) {
    if (!(error instanceof GattValueError)) throw error;
  }
  throw new PropertyError("delimiter", { field: "delimiter" }, "delimiter must be text with the escapes \\n, \\r, \\t, \\xHH, or bytes in hex such as 0x0d0a");
}

function booleanProperty(value: unknown): boolean {
  return value === true || value === "true";
}

/** `split`, `delimiter`, `keepDelimiter`, `quietMs` (ble-gatt-in). */
export function splitProperties(def: GattNodeDef): SplitOptions {
  const mode = enumProperty(def.split, ["none", "delimiter", "quiet"] as const, "none", "split");
  if (mode === "delimiter") return { mode, delimiter: delimiterProperty(def.delimiter), keepDelimiter: booleanProperty(def.keepDelimiter), maxBytes: MAX_CHUNK_BYTES };
  if (mode === "quiet") return { mode, quietMs: intProperty(def.quietMs, DEFAULT_QUIET_MS, 1, 600_000, "quietMs"), maxBytes: MAX_CHUNK_BYTES };
  return { mode };
}

/** What every message of the three nodes carries besides its payload. */
export interface GattFields {
  peripheral: { address: string; name: string };
  /** A SIG UUID as 4 lowercase hex digits ("2a19"), any other as the lowercase dashed 128-bit form. */
  service: string;
  characteristic: string;
}

export function gattFields(info: { address: string; name: string }, target: Pick<GattTarget, "service" | "characteristic">): GattFields {
  return { peripheral: { address: info.address, name: info.name }, service: formatUuid(target.service), characteristic: formatUuid(target.characteristic) };
}

/** Sets the fields on a message going out: a new one (`topic` always, "" when none is set) or one passed on (`topic` only when set). */
export function setGattFields(msg: Record<string, unknown>, fields: GattFields, topic: string, passedOn: boolean): void {
  msg.peripheral = { ...fields.peripheral };
  msg.service = fields.service;
  msg.characteristic = fields.characteristic;
  if (topic || !passedOn) msg.topic = topic;
}

/**
 * The controller a node aborts when it closes. Each message waiting for the device listens to its signal, up to the
 * node's own limit of pending messages: a burst is no leak for Node.js to warn about in the log.
 */
export function closingController(): AbortController {
  const closing = new AbortController();
  setMaxListeners(0, closing.signal);
  return closing;
}

/** `msg.disconnect === true`: the message asks the node to drop its device's link once (and does nothing else). */
export function wantsDisconnect(msg: object): boolean {
  return (msg as { disconnect?: unknown }).disconnect === true;
}

/**
 * Drops the lease's link for a message that asked (wantsDisconnect): others sharing it see a reconnect; a `keep`
 * lease reconnects, an `idle` one on its next use. `done` when it is down, or with the reason.
 */
export function disconnectFor(lease: Pick<Lease, "disconnect">, t: Translate, done: (error?: Error) => void): void {
  lease.disconnect().then(
    () => done(),
    (error: unknown) => done(explainError(error, t)),
  );
}

/**
 * An error of the lower layers in the user's words: a value that cannot be decoded or encoded (`value.<code>` of
 * the node's catalog), a BLE problem (the shared catalog), a property error (`errors.<key>`), else as it is.
 */
export function explainError(error: unknown, t: Translate): Error {
  if (error instanceof GattValueError) return reworded(error, t(`value.${error.code}`, error.params));
  if (error instanceof BleProblemError) return reworded(error, problemText(error.problem));
  if (error instanceof PropertyError) return reworded(error, t(`errors.${error.key}`, error.params));
  return error instanceof Error ? error : new Error(String(error));
}
