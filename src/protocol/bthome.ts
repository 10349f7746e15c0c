/**
 * BTHome v2 (https://bthome.io/format) in service data of the 16-bit UUID 0xFCD2, plain or AES-CCM encrypted
 * (https://bthome.io/encryption). Pure code: Node's `crypto` only.
 *
 * Service data: the device information byte, then the objects (plain) or ciphertext + counter + MIC (encrypted).
 * Device information: bit 0 encryption, bit 2 trigger-based device (it advertises on events, not at an interval),
 * bits 5–7 the BTHome version, which must be 2.
 *
 * Objects: an object id, then its value as bthome-objects.ts lays it out. Each decodes to `name: value` directly in the
 * result (values in the unit the table gives); a name that occurs more than once becomes an array in advertised order
 * (packetId excepted: the first counts). An object id this table does not know ends parsing — its length is unknown,
 * so nothing after it can be read — and so does a value cut short by the end of the data: the result then holds what
 * was decoded before it and `incomplete: true` (absent when every byte was read).
 *
 * Encrypted: ciphertext, counter (4 bytes, little-endian uint32), MIC (4 bytes); AES-128-CCM with a 4-byte tag, no
 * associated data, nonce = address (6 bytes as written, "54:48:e6:…" → 54 48 e6 …) + d2 fc + device information byte +
 * the counter's 4 bytes as sent. A counter is only admitted to the replay guard after the MIC verified.
 */
import { createDecipheriv } from "node:crypto";
import { AdvertisementError } from "./advertisement-error";
import type { ReplayGuard } from "./bind-keys";
import { BTHOME_OBJECTS, BUTTON_EVENTS, COMMAND_OPCODES, DIMMER_EVENTS, type BthomeObject } from "./bthome-objects";

export { bindKeyLookup, parseBindKeys, ReplayGuard } from "./bind-keys";

export const BTHOME_SERVICE = "fcd2";

const FLAG_ENCRYPTED = 0x01;
const FLAG_TRIGGER_BASED = 0x04;
const VERSION_SHIFT = 5;
const BTHOME_VERSION = 2;
const COUNTER_BYTES = 4;
const MIC_BYTES = 4;
const KEY_BYTES = 16;
const UUID_LE = Buffer.from([0xd2, 0xfc]);
const ADDRESS = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

export type BthomeDecoded = {
  type: "bthome";
  packetId?: number;
  encrypted: boolean;
  triggerBased: boolean;
  incomplete?: true;
} & Record<string, unknown>;

/**
 * Decodes the service data of UUID fcd2 advertised by `address` (lowercase, colons). Throws AdvertisementError:
 * bthome-malformed, bthome-version, bthome-no-key, bthome-decrypt, bthome-replay, bthome-unencrypted.
 */
export function decodeBthome(
  address: string,
  data: Buffer,
  bindKey?: (address: string) => Buffer | undefined,
  replay?: ReplayGuard,
): BthomeDecoded {
  if (data.length < 1) {
    throw new AdvertisementError("bthome-malformed", { address }, `BTHome from ${address}: no device information byte`);
  }
  const info = data[0];
  const version = info >> VERSION_SHIFT;
  if (version !== BTHOME_VERSION) {
    throw new AdvertisementError(
      "bthome-version",
      { address, version },
      `BTHome from ${address}: version ${version} in the device information byte, only version 2 is supported`,
    );
  }
  const encrypted = (info & FLAG_ENCRYPTED) !== 0;
  const key = bindKey?.(address);
  let objects: Buffer;
  if (encrypted) {
    if (key === undefined) {
      throw new AdvertisementError("bthome-no-key", { address }, `BTHome from ${address}: encrypted, and no bind key for it`);
    }
    if (data.length < 1 + COUNTER_BYTES + MIC_BYTES) {
      throw new AdvertisementError(
        "bthome-malformed",
        { address },
        `BTHome from ${address}: encrypted, but shorter than its counter and MIC`,
      );
    }
    const counterBytes = data.subarray(data.length - COUNTER_BYTES - MIC_BYTES, data.length - MIC_BYTES);
    objects = decrypt(address, key, info, data.subarray(1, data.length - COUNTER_BYTES - MIC_BYTES), counterBytes, data.subarray(data.length - MIC_BYTES));
    if (replay !== undefined && !replay.accept(address, counterBytes.readUInt32LE(0))) {
      throw new AdvertisementError(
        "bthome-replay",
        { address },
        `BTHome from ${address}: counter not above the last accepted one (a repeat or a replay)`,
      );
    }
  } else {
    if (key !== undefined) {
      throw new AdvertisementError(
        "bthome-unencrypted",
        { address },
        `BTHome from ${address}: not encrypted, though the device has a bind key`,
      );
    }
    objects = data.subarray(1);
  }
  const decoded: BthomeDecoded = { type: "bthome", encrypted, triggerBased: (info & FLAG_TRIGGER_BASED) !== 0 };
  parseObjects(objects, decoded);
  return decoded;
}

function decrypt(address: string, key: Buffer, info: number, ciphertext: Buffer, counter: Buffer, mic: Buffer): Buffer {
  const failed = (): AdvertisementError =>
    new AdvertisementError("bthome-decrypt", { address }, `BTHome from ${address}: the bind key does not decrypt it`);
  if (key.length !== KEY_BYTES || !ADDRESS.test(address)) throw failed();
  const nonce = Buffer.concat([Buffer.from(address.replace(/:/g, ""), "hex"), UUID_LE, Buffer.from([info]), counter]);
  try {
    const decipher = createDecipheriv("aes-128-ccm", key, nonce, { authTagLength: MIC_BYTES });
    decipher.setAuthTag(mic);
    decipher.setAAD(Buffer.alloc(0), { plaintextLength: ciphertext.length });
    const plain = decipher.update(ciphertext);
    decipher.final();
    return plain;
  } catch {
    throw failed();
  }
}

/** Reads objects into `into` until the data ends, an unknown object id, or a value cut short. */
function parseObjects(data: Buffer, into: BthomeDecoded): void {
  let offset = 0;
  while (offset < data.length) {
    const spec = BTHOME_OBJECTS.get(data[offset]);
    if (spec === undefined) break;
    const read = readValue(spec, data, offset + 1);
    if (read === null) break;
    put(into, spec.name, read.value);
    offset = read.end;
  }
  if (offset < data.length) into.incomplete = true;
}

function put(into: BthomeDecoded, name: string, value: unknown): void {
  if (!Object.prototype.hasOwnProperty.call(into, name)) {
    into[name] = value;
    return;
  }
  if (name === "packetId") return;
  const existing = into[name];
  if (Array.isArray(existing)) existing.push(value);
  else into[name] = [existing, value];
}

/** The value at `start` and the offset after it, or null when the data ends before it does. */
function readValue(spec: BthomeObject, data: Buffer, start: number): { value: unknown; end: number } | null {
  const remaining = data.length - start;
  switch (spec.kind) {
    case "number": {
      if (remaining < spec.bytes) return null;
      const raw = spec.signed ? data.readIntLE(start, spec.bytes) : data.readUIntLE(start, spec.bytes);
      const value = spec.decimals === 0 ? raw * spec.multiplier : (raw * spec.multiplier) / 10 ** spec.decimals;
      return { value, end: start + spec.bytes };
    }
    case "binary":
      if (remaining < 1) return null;
      return { value: data[start] !== 0, end: start + 1 };
    case "button":
      if (remaining < 1) return null;
      return { value: BUTTON_EVENTS.get(data[start]) ?? "unknown", end: start + 1 };
    case "dimmer":
      if (remaining < 2) return null;
      return { value: { event: DIMMER_EVENTS.get(data[start]) ?? "unknown", steps: data[start + 1] }, end: start + 2 };
    case "command": {
      if (remaining < 2) return null;
      const argumentBytes = data[start] & 0x1f;
      if (remaining < 2 + argumentBytes) return null;
      const opcode = data[start + 1];
      return {
        value: { command: COMMAND_OPCODES.get(opcode) ?? "unknown", opcode, arguments: data.toString("hex", start + 2, start + 2 + argumentBytes) },
        end: start + 2 + argumentBytes,
      };
    }
    case "text":
    case "raw": {
      if (remaining < 1) return null;
      const length = data[start];
      if (remaining < 1 + length) return null;
      const bytes = data.subarray(start + 1, start + 1 + length);
      return { value: bytes.toString(spec.kind === "text" ? "utf8" : "hex"), end: start + 1 + length };
    }
    case "timestamp":
      if (remaining < 4) return null;
      return { value: new Date(data.readUInt32LE(start) * 1000).toISOString(), end: start + 4 };
    case "firmware": {
      if (remaining < spec.bytes) return null;
      const parts: number[] = [];
      for (let i = spec.bytes - 1; i >= 0; i--) parts.push(data[start + i]);
      return { value: parts.join("."), end: start + spec.bytes };
    }
  }
}
