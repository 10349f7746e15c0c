import assert from "node:assert/strict";
import fc from "fast-check";
import { decodeEddystone } from "../../src/protocol/eddystone";

const hex = (text: string): Buffer => Buffer.from(text.replace(/\s+/g, ""), "hex");

/*
 * The Eddystone specification (github.com/google/eddystone: eddystone-uid/README.md, eddystone-url/README.md,
 * eddystone-tlm/tlm-plain.md) publishes layouts and example values, not whole frames. The frames below are written
 * byte by byte from those layouts with the specification's own example values: Tx power 0x12 = +18 dBm and
 * 0xEE = -18 dBm (eddystone-url), namespace 8b0ca750095477cb3e77 (eddystone-uid "Elided Version 4 UUID"), URL
 * https://goo.gl/S6zT6P (eddystone-url), temperature 0x8000 = not supported (tlm-plain).
 */
describe("Eddystone (service data of feaa)", () => {
  describe("UID (0x00)", () => {
    it("decodes tx power, the 10-byte namespace and the 6-byte instance as hex, with or without the 2 reserved bytes", () => {
      const expected = { type: "eddystone-uid", namespace: "8b0ca750095477cb3e77", instance: "0000000004d2", txPower: -18 };
      assert.deepEqual(decodeEddystone(hex("00 ee 8b0ca750095477cb3e77 0000000004d2 0000")), expected);
      assert.deepEqual(decodeEddystone(hex("00 ee 8b0ca750095477cb3e77 0000000004d2")), expected);
    });

    it("is null when shorter than its instance, or of a length the specification does not define", () => {
      assert.equal(decodeEddystone(hex("00 ee 8b0ca750095477cb3e77 00000000")), null);
      assert.equal(decodeEddystone(hex("00 ee 8b0ca750095477cb3e77 0000000004d2 00")), null);
      assert.equal(decodeEddystone(hex("00 ee 8b0ca750095477cb3e77 0000000004d2 000000")), null);
    });
  });

  describe("URL (0x10)", () => {
    it("decodes the specification's example https://goo.gl/S6zT6P: scheme 0x03, literal characters", () => {
      assert.deepEqual(decodeEddystone(Buffer.concat([hex("10 12 03"), Buffer.from("goo.gl/S6zT6P")])), {
        type: "eddystone-url",
        url: "https://goo.gl/S6zT6P",
        txPower: 18,
      });
    });

    it("expands every scheme prefix (0x00–0x03) and every expansion code (0x00–0x0d)", () => {
      const schemes = ["http://www.", "https://www.", "http://", "https://"];
      const expansions = [".com/", ".org/", ".edu/", ".net/", ".info/", ".biz/", ".gov/", ".com", ".org", ".edu", ".net", ".info", ".biz", ".gov"];
      schemes.forEach((scheme, code) => {
        const frame = decodeEddystone(Buffer.concat([hex("10 ee"), Buffer.from([code]), Buffer.from("a")]));
        assert.deepEqual(frame, { type: "eddystone-url", url: `${scheme}a`, txPower: -18 });
      });
      expansions.forEach((expansion, code) => {
        const frame = decodeEddystone(Buffer.concat([hex("10 00 02"), Buffer.from("x"), Buffer.from([code]), Buffer.from("y")]));
        assert.deepEqual(frame, { type: "eddystone-url", url: `http://x${expansion}y`, txPower: 0 });
      });
    });

    it("refuses (null) a reserved byte 0x0e–0x20 or 0x7f–0xff, an unknown scheme, or more than 17 encoded bytes", () => {
      for (const reserved of [0x0e, 0x1f, 0x20, 0x7f, 0x80, 0xff]) {
        assert.equal(decodeEddystone(Buffer.concat([hex("10 00 03"), Buffer.from("ab"), Buffer.from([reserved])])), null, `byte ${reserved}`);
      }
      assert.equal(decodeEddystone(Buffer.concat([hex("10 00 04"), Buffer.from("ab")])), null);
      assert.equal(decodeEddystone(Buffer.concat([hex("10 00 03"), Buffer.from("a".repeat(17))]))?.type, "eddystone-url");
      assert.equal(decodeEddystone(Buffer.concat([hex("10 00 03"), Buffer.from("a".repeat(18))])), null);
      assert.equal(decodeEddystone(hex("10 00")), null);
    });
  });

  describe("TLM (0x20)", () => {
    it("decodes version 0: battery mV, 8.8 fixed-point °C, advertising count, uptime in seconds (all big-endian)", () => {
      // 3000 mV, 0x1880 = 24.5 °C, 0x00010203 PDUs, 0x000004d2 = 1234 tenths of a second.
      assert.deepEqual(decodeEddystone(hex("20 00 0bb8 1880 00010203 000004d2")), {
        type: "eddystone-tlm",
        battery: 3000,
        temperature: 24.5,
        advertisingCount: 66051,
        uptime: 123.4,
      });
      // Below zero: 0xff80 = -0.5 °C.
      assert.equal((decodeEddystone(hex("20 00 0bb8 ff80 00000000 00000000")) as { temperature: number }).temperature, -0.5);
    });

    it("reports temperature 0x8000 (not supported) as null and battery 0 (not battery powered) as 0", () => {
      const frame = decodeEddystone(hex("20 00 0000 8000 00000001 0000000a"));
      assert.deepEqual(frame, { type: "eddystone-tlm", battery: 0, temperature: null, advertisingCount: 1, uptime: 1 });
    });

    it("is null for encrypted TLM (version 1): it needs the beacon's identity key, which the package does not hold", () => {
      assert.equal(decodeEddystone(hex("20 01 00112233445566778899aabb ccdd eeff")), null);
    });

    it("is null when not exactly 14 bytes", () => {
      assert.equal(decodeEddystone(hex("20 00 0bb8 1880 00010203 0000")), null);
      assert.equal(decodeEddystone(hex("20 00 0bb8 1880 00010203 000004d2 00")), null);
    });
  });

  it("is null for other frame types (EID 0x30, reserved low bits) and for empty data", () => {
    assert.equal(decodeEddystone(hex("30 ee 0102030405060708")), null);
    assert.equal(decodeEddystone(hex("01 ee 8b0ca750095477cb3e77 0000000004d2")), null);
    assert.equal(decodeEddystone(Buffer.alloc(0)), null);
  });

  describe("round trips (10,000 cases each)", () => {
    it("UID: any tx power, namespace and instance", () => {
      fc.assert(
        fc.property(fc.integer({ min: -128, max: 127 }), fc.uint8Array({ minLength: 10, maxLength: 10 }), fc.uint8Array({ minLength: 6, maxLength: 6 }), (tx, ns, inst) => {
          const frame = Buffer.concat([Buffer.from([0x00, tx & 0xff]), ns, inst, Buffer.alloc(2)]);
          assert.deepEqual(decodeEddystone(frame), {
            type: "eddystone-uid",
            namespace: Buffer.from(ns).toString("hex"),
            instance: Buffer.from(inst).toString("hex"),
            txPower: tx,
          });
        }),
        { numRuns: 10_000 },
      );
    });

    it("URL: any scheme and any printable text of up to 17 characters", () => {
      const printable = fc.integer({ min: 0x21, max: 0x7e }).map((c) => String.fromCharCode(c));
      const schemes = ["http://www.", "https://www.", "http://", "https://"];
      fc.assert(
        fc.property(fc.integer({ min: 0, max: 3 }), fc.array(printable, { maxLength: 17 }), (scheme, chars) => {
          const text = chars.join("");
          const frame = Buffer.concat([Buffer.from([0x10, 0xf4, scheme]), Buffer.from(text, "latin1")]);
          assert.deepEqual(decodeEddystone(frame), { type: "eddystone-url", url: schemes[scheme] + text, txPower: -12 });
        }),
        { numRuns: 10_000 },
      );
    });

    it("TLM: any battery, temperature, count and uptime", () => {
      fc.assert(
        fc.property(fc.integer({ min: 0, max: 0xffff }), fc.integer({ min: -0x8000, max: 0x7fff }), fc.nat({ max: 0xffffffff }), fc.nat({ max: 0xffffffff }), (mv, temp, count, tenths) => {
          const frame = Buffer.alloc(14);
          frame[0] = 0x20;
          frame.writeUInt16BE(mv, 2);
          frame.writeInt16BE(temp, 4);
          frame.writeUInt32BE(count, 6);
          frame.writeUInt32BE(tenths, 10);
          assert.deepEqual(decodeEddystone(frame), {
            type: "eddystone-tlm",
            battery: mv,
            temperature: temp === -0x8000 ? null : temp / 256,
            advertisingCount: count,
            uptime: tenths / 10,
          });
        }),
        { numRuns: 10_000 },
      );
    });
  });
});
