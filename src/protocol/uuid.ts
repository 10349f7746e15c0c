/**
 * Bluetooth UUIDs: the one canonical form every layer compares in, its spellings, and its bytes. Pure code.
 *
 * Canonical form: 4 lowercase hex digits for a 16-bit UUID ("180d"), 32 lowercase hex digits without dashes for a
 * 128-bit one. A 32- or 128-bit UUID built on the Bluetooth Base UUID collapses to its 16-bit form (a 32-bit one
 * above 0xffff to its 128-bit form), so "0000180d-0000-1000-8000-00805f9b34fb", "0000180d" and "180d" are one UUID.
 *
 * noble spells UUIDs its own way (see uuidFromNoble); what it reports is read into the canonical form, never
 * compared as it is spelled.
 */

/** Bluetooth Base UUID 0000xxxx-0000-1000-8000-00805f9b34fb without its 16-bit part, as hex. */
const BASE_UUID_TAIL = "00001000800000805f9b34fb";

/**
 * The canonical form of a UUID. Accepts "180d", "0x180D", 32-bit "0000180d" and 128-bit with or without dashes.
 * Throws TypeError for anything else.
 */
export function normalizeUuid(uuid: string): string {
  let text = uuid.trim().toLowerCase();
  if (text.startsWith("0x")) text = text.slice(2);
  const dashed = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(text);
  if (dashed) text = text.replace(/-/g, "");
  if (!/^[0-9a-f]+$/.test(text) || ![4, 8, 32].includes(text.length)) {
    throw new TypeError(`not a Bluetooth UUID: ${JSON.stringify(uuid)} (expected "180d", "0x180D" or a 128-bit UUID)`);
  }
  if (text.length === 8) text = text + BASE_UUID_TAIL;
  if (text.length === 32 && text.startsWith("0000") && text.endsWith(BASE_UUID_TAIL)) return text.slice(4, 8);
  return text;
}

/** True when both strings name the same UUID (any accepted spelling). */
export function uuidEquals(a: string, b: string): boolean {
  return normalizeUuid(a) === normalizeUuid(b);
}

/**
 * The canonical form of a UUID as noble reports it, or null when it is none: never throws, for it reads what a
 * radio sent. noble's HCI stack writes a 16-bit UUID without its leading zeros ("a00" for 0x0a00) and a 128-bit one
 * as 32 hex digits even when it is built on the Base UUID; its BlueZ binding writes 16-bit UUIDs with 4 digits and
 * 32-bit ones with 8. Every spelling normalizeUuid accepts reads the same here.
 */
export function uuidFromNoble(reported: string): string | null {
  let text = reported.trim().toLowerCase();
  if (text.startsWith("0x")) text = text.slice(2);
  // A 16-bit (or 32-bit) number written without its leading zeros.
  if (/^[0-9a-f]{1,3}$/.test(text)) text = text.padStart(4, "0");
  else if (/^[0-9a-f]{5,7}$/.test(text)) text = text.padStart(8, "0");
  try {
    return normalizeUuid(text);
  } catch {
    return null;
  }
}

/** A UUID as ATT carries it: 2 or 16 bytes, little-endian. */
export function uuidToBytes(uuid: string): Buffer {
  const canonical = normalizeUuid(uuid);
  return Buffer.from(canonical, "hex").reverse();
}

/** The canonical UUID of 2 or 16 little-endian bytes. Throws TypeError for another length. */
export function uuidFromBytes(bytes: Uint8Array): string {
  if (bytes.length !== 2 && bytes.length !== 16) throw new TypeError(`a UUID is 2 or 16 bytes, got ${bytes.length}`);
  return normalizeUuid(Buffer.from(bytes).reverse().toString("hex"));
}

/** "6e400001-b5a3-f393-e0a9-e50e24dcca9e" for 128-bit UUIDs, "180d" for 16-bit ones: for messages. */
export function formatUuid(uuid: string): string {
  const c = normalizeUuid(uuid);
  if (c.length === 4) return c;
  return `${c.slice(0, 8)}-${c.slice(8, 12)}-${c.slice(12, 16)}-${c.slice(16, 20)}-${c.slice(20)}`;
}
