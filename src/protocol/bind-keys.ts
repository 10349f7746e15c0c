/**
 * BTHome bind keys and replay protection. Pure code.
 *
 * A bind-key list (the `ble-scan` node's `bindKeys` credential) is text with one `address = key` per line: the
 * device address as six colon-separated hex bytes in any case, the AES key as 32 hex digits. Blank lines are
 * allowed, and `#` starts a comment that runs to the end of its line. Errors name the line number and what is
 * wrong with it; they never repeat the line, since it holds a key.
 */
import { AdvertisementError } from "./advertisement-error";

const ADDRESS = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;
const KEY = /^[0-9a-f]{32}$/i;

/** Bind keys by address in lowercase ("aa:bb:cc:dd:ee:ff"), each 16 bytes. Throws AdvertisementError "bind-keys-*". */
export function parseBindKeys(text: string): Map<string, Buffer> {
  const keys = new Map<string, Buffer>();
  const lines = typeof text === "string" ? text.split(/\r\n|\r|\n/) : [];
  lines.forEach((raw, index) => {
    const line = index + 1;
    const hash = raw.indexOf("#");
    const content = (hash === -1 ? raw : raw.slice(0, hash)).trim();
    if (content === "") return;
    const equals = content.indexOf("=");
    if (equals === -1) {
      throw new AdvertisementError("bind-keys-syntax", { line }, `bind keys, line ${line}: expected "address = key"`);
    }
    const address = content.slice(0, equals).trim();
    const key = content.slice(equals + 1).trim();
    if (!ADDRESS.test(address)) {
      throw new AdvertisementError(
        "bind-keys-address",
        { line },
        `bind keys, line ${line}: the address is not six colon-separated hex bytes (aa:bb:cc:dd:ee:ff)`,
      );
    }
    if (!KEY.test(key)) {
      throw new AdvertisementError("bind-keys-key", { line }, `bind keys, line ${line}: the key is not 32 hex digits`);
    }
    const normalized = address.toLowerCase();
    if (keys.has(normalized)) {
      throw new AdvertisementError(
        "bind-keys-duplicate",
        { line },
        `bind keys, line ${line}: the address already has a key on an earlier line`,
      );
    }
    keys.set(normalized, Buffer.from(key, "hex"));
  });
  return keys;
}

/** A lookup for decodeAdvertisement's `bindKey` argument: any spelling of the address finds its key. */
export function bindKeyLookup(keys: ReadonlyMap<string, Buffer>): (address: string) => Buffer | undefined {
  return (address) => keys.get(address.toLowerCase());
}

/**
 * Per device, the counter of the last encrypted BTHome advertisement accepted. A counter not above it is a repeat or
 * a replay (sensors send each advertisement several times; an attacker can record and resend one), and is refused.
 *
 * Only advertisements that decrypted with their device's bind key are admitted (decodeAdvertisement asks after the
 * MIC is verified), so forged bytes can never move a device's counter. The guard forgets the least recently seen
 * device beyond `maxDevices`, which only users with more bind keys than that could notice. A device whose counter
 * restarts (a firmware that does not keep it across a battery change) is refused until its counter passes the last
 * accepted value or the guard is renewed (the node's redeploy).
 */
export class ReplayGuard {
  private readonly last = new Map<string, number>();

  constructor(readonly maxDevices = 4096) {}

  /** True, and remembered, when `counter` is above the last accepted one of `address` (or the first seen). */
  accept(address: string, counter: number): boolean {
    const key = address.toLowerCase();
    const previous = this.last.get(key);
    if (previous !== undefined && counter <= previous) return false;
    this.last.delete(key);
    this.last.set(key, counter);
    if (this.last.size > this.maxDevices) {
      const oldest = this.last.keys().next();
      if (oldest.done !== true) this.last.delete(oldest.value);
    }
    return true;
  }

  /** The last accepted counter of a device, or undefined. */
  lastCounter(address: string): number | undefined {
    return this.last.get(address.toLowerCase());
  }

  get size(): number {
    return this.last.size;
  }

  clear(): void {
    this.last.clear();
  }
}
