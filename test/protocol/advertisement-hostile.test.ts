/**
 * Hostile input for the advertisement decoders (issue 14): arbitrary bytes from the radio, 10,000 cases per property.
 * The rules: nothing escapes but AdvertisementError (and that only from BTHome, with a known code and no data in its
 * text); a result is never larger than a small multiple of the bytes it came from (no length field makes us
 * allocate); a bind-key list of any text is a map or an AdvertisementError naming a line.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  ADVERTISEMENT_ERROR_CODES,
  AdvertisementError,
  decodeAdvertisement,
  parseBindKeys,
  ReplayGuard,
  type AdvertisementData,
} from "../../src/protocol/advertisement";
import { decodeBthome } from "../../src/protocol/bthome";
import { decodeEddystone } from "../../src/protocol/eddystone";
import { decodeIbeacon } from "../../src/protocol/ibeacon";

const RUNS = 10_000;
const ADDRESS = "c0:ff:ee:00:00:01";

/** Bytes as a radio delivers them: short mostly, sometimes longer than any advertisement. */
const radioBytes = fc.oneof({ weight: 4, arbitrary: fc.uint8Array({ maxLength: 31 }) }, { weight: 1, arbitrary: fc.uint8Array({ maxLength: 600 }) });
/** BTHome service data: a device information byte that is mostly version 2 (plain or encrypted), then anything. */
const bthomeBytes = fc
  .tuple(fc.oneof(fc.constantFrom(0x40, 0x41, 0x44, 0x45), fc.integer({ min: 0, max: 255 })), radioBytes)
  .map(([info, rest]) => Buffer.concat([Buffer.from([info]), rest]));

/** A decoded result stays a small multiple of its input: its JSON has at most 200 characters plus 20 per input byte. */
function assertSmall(result: unknown, inputBytes: number): void {
  if (result === null) return;
  const json = JSON.stringify(result);
  assert.ok(json.length <= 200 + 20 * inputBytes, `${json.length} characters from ${inputBytes} bytes`);
}

function assertAdvertisementError(error: unknown, address: string): void {
  assert.ok(error instanceof AdvertisementError, `unexpected ${String(error)}`);
  assert.ok((ADVERTISEMENT_ERROR_CODES as readonly string[]).includes(error.code), error.code);
  assert.equal(error.params.address, address);
  assert.ok(error.message.length > 0);
}

describe("hostile input: advertisement decoders", () => {
  it("iBeacon: arbitrary manufacturer data is null or an iBeacon, never a throw", () => {
    fc.assert(
      fc.property(fc.oneof(radioBytes, fc.uint8Array({ minLength: 25, maxLength: 25 }).map((b) => Uint8Array.from([0x4c, 0x00, 0x02, 0x15, ...b.subarray(4)]))), (bytes) => {
        const result = decodeIbeacon(Buffer.from(bytes));
        if (result !== null) assert.equal(result.type, "ibeacon");
      }),
      { numRuns: RUNS },
    );
  });

  it("Eddystone: arbitrary service data is null or a frame no larger than its input allows, never a throw", () => {
    const frames = fc.tuple(fc.constantFrom(0x00, 0x10, 0x20), radioBytes).map(([type, rest]) => Buffer.concat([Buffer.from([type]), rest]));
    fc.assert(
      fc.property(fc.oneof(radioBytes.map((b) => Buffer.from(b)), frames), (bytes) => {
        const result = decodeEddystone(bytes);
        assertSmall(result, bytes.length);
        if (result?.type === "eddystone-url") assert.ok(result.url.length <= "https://www.".length + 17 * ".info/".length);
      }),
      { numRuns: RUNS },
    );
  });

  it("BTHome plain or encrypted, with or without a key: a small result or an AdvertisementError naming the device", () => {
    const key = Buffer.from("231d39c1d7cc1ab1aee224cd096db932", "hex");
    fc.assert(
      fc.property(bthomeBytes, fc.boolean(), (bytes, withKey) => {
        try {
          const result = decodeBthome(ADDRESS, bytes, withKey ? () => key : undefined, new ReplayGuard());
          assert.equal(result.type, "bthome");
          assertSmall(result, bytes.length);
          // Every name holds at least one object of at least 2 bytes, so there are never more names than bytes.
          assert.ok(Object.keys(result).length <= 4 + bytes.length / 2);
        } catch (error) {
          assertAdvertisementError(error, ADDRESS);
        }
      }),
      { numRuns: RUNS },
    );
  });

  it("BTHome length bytes (text, raw, command) claiming more than remains never read past the end", () => {
    const lengthObjects = fc
      .array(fc.tuple(fc.constantFrom(0x53, 0x54, 0x3b), fc.integer({ min: 0, max: 255 }), fc.uint8Array({ maxLength: 40 })), { maxLength: 6 })
      .map((objects) => Buffer.concat([Buffer.from([0x40]), ...objects.map(([id, length, body]) => Buffer.concat([Buffer.from([id, length]), body]))]));
    fc.assert(
      fc.property(lengthObjects, (bytes) => {
        const result = decodeBthome(ADDRESS, bytes);
        assertSmall(result, bytes.length);
        for (const name of ["text", "raw"] as const) {
          for (const value of [result[name]].flat()) {
            if (value === undefined) continue;
            assert.equal(typeof value, "string");
            assert.ok((value as string).length <= 2 * bytes.length);
          }
        }
      }),
      { numRuns: RUNS },
    );
  });

  it("decodeAdvertisement: any mix of manufacturer data and service data is null, a result, or a BTHome AdvertisementError", () => {
    const uuid = fc.oneof(fc.constantFrom("feaa", "fcd2", "FCD2", "0000feaa-0000-1000-8000-00805f9b34fb", "180f", "", "zz"), fc.string({ maxLength: 40 }));
    const advertisement = fc.record({
      manufacturerData: fc.option(radioBytes.map((b) => Buffer.from(b)), { nil: undefined }),
      serviceData: fc.array(fc.record({ uuid, data: fc.oneof(radioBytes.map((b) => Buffer.from(b)), bthomeBytes) }), { maxLength: 4 }),
    });
    fc.assert(
      fc.property(advertisement, fc.boolean(), (fields, withKey) => {
        const ad: AdvertisementData = { address: ADDRESS.toUpperCase(), ...fields };
        const inputBytes = (fields.manufacturerData?.length ?? 0) + fields.serviceData.reduce((n, s) => n + s.data.length, 0);
        try {
          assertSmall(decodeAdvertisement(ad, withKey ? () => Buffer.alloc(16, 7) : undefined, new ReplayGuard()), inputBytes);
        } catch (error) {
          assertAdvertisementError(error, ADDRESS);
          assert.ok(error instanceof AdvertisementError && error.code.startsWith("bthome-"));
        }
      }),
      { numRuns: RUNS },
    );
  });

  it("parseBindKeys: any text is a map of 16-byte keys or an AdvertisementError naming a line, never echoing it", () => {
    const line = fc.oneof(
      fc.string({ maxLength: 80 }),
      fc.tuple(fc.uint8Array({ minLength: 6, maxLength: 6 }), fc.uint8Array({ minLength: 16, maxLength: 16 })).map(
        ([mac, key]) => `${Buffer.from(mac).toString("hex").replace(/(..)(?!$)/g, "$1:")} = ${Buffer.from(key).toString("hex")}`,
      ),
    );
    fc.assert(
      fc.property(fc.array(line, { maxLength: 8 }), (lines) => {
        const text = lines.join("\n");
        try {
          const keys = parseBindKeys(text);
          assert.ok(keys.size <= lines.length);
          for (const [address, key] of keys) {
            assert.match(address, /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/);
            assert.equal(key.length, 16);
          }
        } catch (error) {
          assert.ok(error instanceof AdvertisementError, `unexpected ${String(error)}`);
          assert.ok(error.code.startsWith("bind-keys-"));
          const lineNumber = error.params.line;
          assert.ok(typeof lineNumber === "number" && lineNumber >= 1 && lineNumber <= lines.length);
          const offending = lines[lineNumber - 1].trim();
          if (offending.length >= 8) assert.ok(!error.message.includes(offending), error.message);
        }
      }),
      { numRuns: RUNS },
    );
  });
});
