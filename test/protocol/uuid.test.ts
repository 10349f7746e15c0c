/**
 * One canonical UUID form (src/protocol/uuid.ts) for every spelling a user writes and every spelling noble reports:
 * its HCI stack (lib/hci-socket/gap.js, gatt.js: hex numbers without leading zeros, 128-bit UUIDs reversed from the
 * little-endian bytes) and its BlueZ binding (lib/dbus/uuid.js, used here as noble ships it).
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { normalizeUuid, uuidEquals, uuidFromBytes, uuidFromNoble, uuidToBytes } from "../../src/protocol/uuid";

// noble's own BlueZ spelling, from the library itself (CommonJS, untyped).
// eslint-disable-next-line @typescript-eslint/no-require-imports
const bluez = require("@stoprocent/noble/lib/dbus/uuid") as { normalizeUuid(uuid: string): string };

const BASE_TAIL = "-0000-1000-8000-00805f9b34fb";
const hex = (n: number, digits: number): string => n.toString(16).padStart(digits, "0");
const dashed = (h32: string): string => `${h32.slice(0, 8)}-${h32.slice(8, 12)}-${h32.slice(12, 16)}-${h32.slice(16, 20)}-${h32.slice(20)}`;

/** A UUID value: a 16-bit one, a 32-bit one, or any 128 bits; with its canonical form worked out independently. */
type UuidValue = { bits: 16 | 32 | 128; value: number | Uint8Array; canonical: string };
const uuid16 = fc.integer({ min: 0, max: 0xffff }).map((n): UuidValue => ({ bits: 16, value: n, canonical: hex(n, 4) }));
const uuid32 = fc.integer({ min: 0, max: 0xffffffff }).map(
  (n): UuidValue => ({ bits: 32, value: n, canonical: n <= 0xffff ? hex(n, 4) : `${hex(n, 8)}${BASE_TAIL.replace(/-/g, "")}` }),
);
const uuid128 = fc.uint8Array({ minLength: 16, maxLength: 16 }).map((bytes): UuidValue => {
  const h32 = Buffer.from(bytes).toString("hex");
  const onBase = h32.startsWith("0000") && h32.endsWith(BASE_TAIL.replace(/-/g, ""));
  return { bits: 128, value: bytes, canonical: onBase ? h32.slice(4, 8) : h32 };
});
const anyUuid = fc.oneof(uuid16, uuid32, uuid128);

/** The 32 hex digits of the 128-bit form. */
function full(u: UuidValue): string {
  if (u.bits === 128) return Buffer.from(u.value as Uint8Array).toString("hex");
  return `${hex(u.value as number, 8)}${BASE_TAIL.replace(/-/g, "")}`;
}

/** Every spelling normalizeUuid accepts for this UUID. */
function userSpellings(u: UuidValue): string[] {
  const f = full(u);
  const out = [f, f.toUpperCase(), dashed(f), dashed(f).toUpperCase(), ` ${dashed(f)} `];
  if (u.bits !== 128) out.push(hex(u.value as number, 8), `0x${hex(u.value as number, 8).toUpperCase()}`);
  if (u.bits === 16) out.push(hex(u.value as number, 4), `0x${hex(u.value as number, 4)}`, hex(u.value as number, 4).toUpperCase());
  return out;
}

/** How noble reports it: the HCI stack from the bytes on air (2 bytes for a 16-bit UUID, else 16), the BlueZ binding from BlueZ's dashed string. */
function nobleSpellings(u: UuidValue): string[] {
  const out = [bluez.normalizeUuid(dashed(full(u)))];
  const air = u.bits === 16 ? Buffer.alloc(2) : Buffer.from(full(u), "hex").reverse();
  if (u.bits === 16) air.writeUInt16LE(u.value as number);
  out.push(air.length === 2 ? air.readUInt16LE(0).toString(16) : Buffer.from(air).reverse().toString("hex"));
  return out;
}

describe("UUIDs: one canonical form (src/protocol/uuid.ts)", () => {
  it("every user spelling of a 16-, 32- or 128-bit UUID normalizes to its canonical form, and uuidFromNoble reads it the same", () => {
    fc.assert(
      fc.property(anyUuid, (u) => {
        for (const s of userSpellings(u)) {
          assert.equal(normalizeUuid(s), u.canonical, s);
          assert.equal(uuidFromNoble(s), u.canonical, s);
          assert.ok(uuidEquals(s, u.canonical), s);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it("every spelling noble reports (HCI stack, BlueZ binding) reads as the canonical form of the same UUID", () => {
    fc.assert(
      fc.property(anyUuid, (u) => {
        for (const s of nobleSpellings(u)) assert.equal(uuidFromNoble(s), u.canonical, `${s} (${u.bits}-bit)`);
      }),
      { numRuns: 2000 },
    );
  });

  it("noble's spelling of what ATT carries reads as the UUID of those bytes", () => {
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ minLength: 2, maxLength: 2 }), fc.uint8Array({ minLength: 16, maxLength: 16 })), (bytes) => {
        const b = Buffer.from(bytes);
        const noble = b.length === 2 ? b.readUInt16LE(0).toString(16) : Buffer.from(b).reverse().toString("hex");
        assert.equal(uuidFromNoble(noble), uuidFromBytes(b));
        assert.deepEqual(uuidToBytes(uuidFromBytes(b)), uuidFromBytes(b).length === 4 ? b : Buffer.from(uuidToBytes(uuidFromBytes(b))));
      }),
      { numRuns: 2000 },
    );
  });

  it("the low 16-bit UUIDs noble spells short are not mistaken for others (0x0a00 is \"a00\")", () => {
    assert.equal(uuidFromNoble("a00"), "0a00");
    assert.equal(uuidFromNoble("0"), "0000");
    assert.notEqual(uuidFromNoble("a00"), uuidFromNoble("a000"));
  });

  it("uuidFromNoble never throws: what is no UUID is null", () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 40 }), (s) => {
        const read = uuidFromNoble(s);
        if (read !== null) assert.equal(normalizeUuid(read), read);
      }),
      { numRuns: 2000 },
    );
    for (const s of ["", "xyz", "6e400001-b5a3-f393-e0a9", "0x", "123456789"]) assert.equal(uuidFromNoble(s), null, s);
  });
});
