import assert from "node:assert/strict";
import fc from "fast-check";
import {
  BODY_SENSOR_LOCATIONS,
  HeartRateFormatError,
  type HeartRateMeasurement,
  bodySensorLocationName,
  decodeHeartRateMeasurement,
  encodeHeartRateMeasurement,
} from "../../src/protocol/heart-rate";

function bytes(hex: string): Uint8Array {
  const clean = hex.replace(/\s+/g, "");
  return Uint8Array.from(clean.match(/../g) ?? [], (h) => parseInt(h, 16));
}

function toHex(value: Uint8Array): string {
  return Array.from(value, (b) => b.toString(16).padStart(2, "0").toUpperCase()).join(" ");
}

function round1(x: number): number {
  return Math.round(x * 10) / 10;
}

/** Asserts that fn throws a HeartRateFormatError whose message shows the bytes in hex. */
function assertMalformed(value: Uint8Array, mention?: RegExp): void {
  assert.throws(
    () => decodeHeartRateMeasurement(value),
    (error: unknown) => {
      assert.ok(error instanceof HeartRateFormatError, `expected HeartRateFormatError, got ${String(error)}`);
      assert.equal(error.name, "HeartRateFormatError");
      // The length, never the bytes: the value is data from the radio (it travels in msg.payload, not in the text).
      assert.ok(error.message.endsWith(`(${value.length} byte${value.length === 1 ? "" : "s"})`), `message lacks the length: ${error.message}`);
      if (value.length > 1) assert.ok(!error.message.includes(toHex(value)), `message echoes the bytes: ${error.message}`);
      if (mention) assert.match(error.message, mention);
      return true;
    },
  );
}

/** A well-formed measurement: the invariants node authors may rely on. */
function assertWellFormed(m: HeartRateMeasurement): void {
  assert.deepEqual(Object.keys(m).sort(), ["bpm", "energyExpended", "rrIntervals", "rrIntervalsRaw", "sensorContact"]);
  assert.ok(Number.isInteger(m.bpm) && m.bpm >= 0 && m.bpm <= 0xffff);
  assert.ok(m.sensorContact === null || typeof m.sensorContact === "boolean");
  assert.ok(m.energyExpended === null || (Number.isInteger(m.energyExpended) && m.energyExpended >= 0 && m.energyExpended <= 0xffff));
  assert.equal(m.rrIntervals.length, m.rrIntervalsRaw.length);
  m.rrIntervalsRaw.forEach((raw, i) => {
    assert.ok(Number.isInteger(raw) && raw >= 0 && raw <= 0xffff);
    assert.ok(Number.isFinite(m.rrIntervals[i]));
    assert.equal(m.rrIntervals[i], (raw * 1000) / 1024);
  });
}

describe("heart-rate protocol (0x2A37, 0x2A38)", () => {
  describe("examples from protocols.md", () => {
    it("06 37: uint8, contact detected, 55 bpm", () => {
      assert.deepEqual(decodeHeartRateMeasurement(bytes("06 37")), {
        bpm: 55,
        sensorContact: true,
        energyExpended: null,
        rrIntervals: [],
        rrIntervalsRaw: [],
      });
    });

    it("16 31 87 04 87 04: 49 bpm, contact detected, RR 1159/1024 s = 1131.8 ms twice", () => {
      const m = decodeHeartRateMeasurement(bytes("16 31 87 04 87 04"));
      assert.deepEqual(m, {
        bpm: 49,
        sensorContact: true,
        energyExpended: null,
        rrIntervals: [1131.8359375, 1131.8359375],
        rrIntervalsRaw: [1159, 1159],
      });
      assert.deepEqual(m.rrIntervals.map(round1), [1131.8, 1131.8]);
    });

    it("04 48: contact supported, not detected, 72 bpm", () => {
      assert.deepEqual(decodeHeartRateMeasurement(bytes("04 48")), {
        bpm: 72,
        sensorContact: false,
        energyExpended: null,
        rrIntervals: [],
        rrIntervalsRaw: [],
      });
    });

    it("19 A5 00 90 01 6C 01: uint16 165 bpm, no contact support, 400 kJ, RR 364/1024 s = 355.5 ms", () => {
      const m = decodeHeartRateMeasurement(bytes("19 A5 00 90 01 6C 01"));
      assert.deepEqual(m, {
        bpm: 165,
        sensorContact: null,
        energyExpended: 400,
        rrIntervals: [355.46875],
        rrIntervalsRaw: [364],
      });
      assert.deepEqual(m.rrIntervals.map(round1), [355.5]);
    });

    it("the encoder reproduces the four examples byte for byte", () => {
      assert.equal(toHex(encodeHeartRateMeasurement({ bpm: 55, sensorContact: true })), "06 37");
      assert.equal(toHex(encodeHeartRateMeasurement({ bpm: 49, sensorContact: true, rrIntervalsRaw: [1159, 1159] })), "16 31 87 04 87 04");
      assert.equal(toHex(encodeHeartRateMeasurement({ bpm: 72, sensorContact: false })), "04 48");
      assert.equal(
        toHex(encodeHeartRateMeasurement({ bpm: 165, uint16: true, energyExpended: 400, rrIntervalsRaw: [364] })),
        "19 A5 00 90 01 6C 01",
      );
    });
  });

  describe("hand-written vectors", () => {
    const cases: [string, HeartRateMeasurement][] = [
      ["00 00", { bpm: 0, sensorContact: null, energyExpended: null, rrIntervals: [], rrIntervalsRaw: [] }],
      ["00 FF", { bpm: 255, sensorContact: null, energyExpended: null, rrIntervals: [], rrIntervalsRaw: [] }],
      ["01 2C 01", { bpm: 300, sensorContact: null, energyExpended: null, rrIntervals: [], rrIntervalsRaw: [] }],
      ["01 FF FF", { bpm: 65535, sensorContact: null, energyExpended: null, rrIntervals: [], rrIntervalsRaw: [] }],
      // bit 1 without bit 2: "detected" is meaningless, so contact is unknown.
      ["02 48", { bpm: 72, sensorContact: null, energyExpended: null, rrIntervals: [], rrIntervalsRaw: [] }],
      ["08 48 FF FF", { bpm: 72, sensorContact: null, energyExpended: 65535, rrIntervals: [], rrIntervalsRaw: [] }],
      ["0E 48 00 00", { bpm: 72, sensorContact: true, energyExpended: 0, rrIntervals: [], rrIntervalsRaw: [] }],
      // bit 4 with no interval in this notification: an empty list, not an error.
      ["10 48", { bpm: 72, sensorContact: null, energyExpended: null, rrIntervals: [], rrIntervalsRaw: [] }],
      ["11 00 01 00 04 00 08", { bpm: 256, sensorContact: null, energyExpended: null, rrIntervals: [1000, 2000], rrIntervalsRaw: [1024, 2048] }],
      ["10 48 00 00 FF FF", { bpm: 72, sensorContact: null, energyExpended: null, rrIntervals: [0, 63999.0234375], rrIntervalsRaw: [0, 65535] }],
      ["1F 3C 00 E8 03 01 00 00 03 00 02", {
        bpm: 60, sensorContact: true, energyExpended: 1000, rrIntervals: [0.9765625, 750, 500], rrIntervalsRaw: [1, 768, 512],
      }],
      // Reserved bits 5-7 are ignored.
      ["E6 37", { bpm: 55, sensorContact: true, energyExpended: null, rrIntervals: [], rrIntervalsRaw: [] }],
      ["F9 A5 00 90 01 6C 01", { bpm: 165, sensorContact: null, energyExpended: 400, rrIntervals: [355.46875], rrIntervalsRaw: [364] }],
      // Bytes after the last field without bit 4 carry nothing; the heart rate is still good.
      ["00 48 AA", { bpm: 72, sensorContact: null, energyExpended: null, rrIntervals: [], rrIntervalsRaw: [] }],
    ];
    for (const [hex, expected] of cases) {
      it(`${hex}`, () => assert.deepEqual(decodeHeartRateMeasurement(bytes(hex)), expected));
    }

    it("accepts a Buffer, and a Uint8Array view at an offset into a larger buffer", () => {
      const expected = decodeHeartRateMeasurement(bytes("16 31 87 04 87 04"));
      assert.deepEqual(decodeHeartRateMeasurement(Buffer.from("163187048704", "hex")), expected);
      const backing = new Uint8Array([0xff, 0xff, 0x16, 0x31, 0x87, 0x04, 0x87, 0x04, 0xff]);
      assert.deepEqual(decodeHeartRateMeasurement(backing.subarray(2, 8)), expected);
      const pooled = Buffer.from([0x01, 0x02, 0x03, 0x19, 0xa5, 0x00, 0x90, 0x01, 0x6c, 0x01]).subarray(3);
      assert.equal(decodeHeartRateMeasurement(pooled).bpm, 165);
    });
  });

  describe("all 32 combinations of flag bits 0-4", () => {
    // Independent of the encoder: lays the fields out by hand from the flags.
    function build(flags: number, bpm: number, energy: number, rr: number[]): Uint8Array {
      const out = [flags];
      if (flags & 0x01) out.push(bpm & 0xff, bpm >> 8);
      else out.push(bpm);
      if (flags & 0x08) out.push(energy & 0xff, energy >> 8);
      if (flags & 0x10) for (const v of rr) out.push(v & 0xff, v >> 8);
      return Uint8Array.from(out);
    }

    for (let flags = 0; flags < 32; flags++) {
      const wide = (flags & 0x01) !== 0;
      const supported = (flags & 0x04) !== 0;
      const detected = (flags & 0x02) !== 0;
      const label = `flags 0x${flags.toString(16).padStart(2, "0")}`;
      const bpm = wide ? 0x1234 : 0xab;
      const energy = 0xbeef;
      const rr = [0x0400, 0x0001, 0xfffe];

      it(`${label}: decodes a hand-laid value`, () => {
        const m = decodeHeartRateMeasurement(build(flags, bpm, energy, rr));
        assert.deepEqual(m, {
          bpm,
          sensorContact: supported ? detected : null,
          energyExpended: flags & 0x08 ? energy : null,
          rrIntervals: flags & 0x10 ? rr.map((v) => (v * 1000) / 1024) : [],
          rrIntervalsRaw: flags & 0x10 ? rr : [],
        });
        // Reserved bits change nothing.
        assert.deepEqual(decodeHeartRateMeasurement(build(flags | 0xe0, bpm, energy, rr)), m);
      });

      it(`${label}: the encoder ${!supported && detected ? "normalizes" : "reproduces"} it`, () => {
        const m = decodeHeartRateMeasurement(build(flags, bpm, energy, rr));
        const encoded = encodeHeartRateMeasurement({ ...m, uint16: wide });
        // Bit 1 without bit 2 has no meaning; the encoder never writes it.
        const expectedFlags = !supported && detected ? flags & ~0x02 : flags;
        assert.equal(toHex(encoded), toHex(build(expectedFlags, bpm, energy, rr)));
        assert.deepEqual(decodeHeartRateMeasurement(encoded), m);
      });

      it(`${label}: every truncation is malformed or decodes to a prefix`, () => {
        const full = build(flags, bpm, energy, rr);
        const fixed = 1 + (wide ? 2 : 1) + (flags & 0x08 ? 2 : 0);
        for (let len = 0; len < full.length; len++) {
          const cut = full.subarray(0, len);
          const rrBytes = len - fixed;
          if (len < fixed || (flags & 0x10 && rrBytes % 2 !== 0)) {
            assertMalformed(cut);
          } else {
            const m = decodeHeartRateMeasurement(cut);
            assert.deepEqual(m.rrIntervalsRaw, rr.slice(0, rrBytes / 2));
          }
        }
      });
    }
  });

  describe("malformed values", () => {
    it("empty value", () => assertMalformed(new Uint8Array(0), /empty/));
    it("flags only, uint8 heart rate missing", () => assertMalformed(bytes("00"), /uint8 heart rate/));
    it("flags only, uint16 heart rate missing", () => assertMalformed(bytes("01"), /uint16 heart rate/));
    it("uint16 heart rate cut after one byte", () => assertMalformed(bytes("01 48"), /uint16 heart rate/));
    it("energy expended missing", () => assertMalformed(bytes("08 48"), /energy expended/));
    it("energy expended cut after one byte", () => assertMalformed(bytes("08 48 90"), /energy expended/));
    it("uint16 heart rate, energy cut", () => assertMalformed(bytes("19 A5 00 90"), /energy expended/));
    it("odd RR tail (one byte)", () => assertMalformed(bytes("10 48 87"), /odd number of bytes/));
    it("odd RR tail after whole intervals", () => assertMalformed(bytes("16 31 87 04 87 04 87"), /odd number of bytes \(5\)/));
    it("odd RR tail after energy", () => assertMalformed(bytes("19 A5 00 90 01 6C 01 02"), /RR interval list \(flag bit 4\) from byte 5/));
    it("error messages name the length and the flag bit, never the value's bytes", () => {
      assert.throws(() => decodeHeartRateMeasurement(bytes("1a bc 00")), (e: Error) => /flag bit 3 .*\(3 bytes\)$/.test(e.message) && !/1a|bc/i.test(e.message));
      assert.throws(() => decodeHeartRateMeasurement(new Uint8Array(0)), /\(0 bytes\)$/);
    });
    it("non-byte input from untyped callers still throws HeartRateFormatError", () => {
      for (const bad of [null, undefined, "06 37", [6, 55], 42]) {
        assert.throws(() => decodeHeartRateMeasurement(bad as unknown as Uint8Array), HeartRateFormatError);
      }
    });
    it("HeartRateFormatError is an Error", () => {
      const e = new HeartRateFormatError("x", "empty");
      assert.ok(e instanceof Error);
      assert.equal(e.name, "HeartRateFormatError");
    });
  });

  describe("encoder", () => {
    it("uses uint8 up to 255 and uint16 above, or when asked", () => {
      assert.equal(toHex(encodeHeartRateMeasurement({ bpm: 255 })), "00 FF");
      assert.equal(toHex(encodeHeartRateMeasurement({ bpm: 256 })), "01 00 01");
      assert.equal(toHex(encodeHeartRateMeasurement({ bpm: 72, uint16: true })), "01 48 00");
      assert.equal(toHex(encodeHeartRateMeasurement({ bpm: 300, uint16: false })), "01 2C 01");
    });
    it("null and undefined optional fields are absent", () => {
      assert.equal(toHex(encodeHeartRateMeasurement({ bpm: 60, sensorContact: null, energyExpended: null, rrIntervalsRaw: [] })), "00 3C");
      assert.equal(toHex(encodeHeartRateMeasurement({ bpm: 60, energyExpended: 0 })), "08 3C 00 00");
    });
    it("returns a Buffer", () => assert.ok(Buffer.isBuffer(encodeHeartRateMeasurement({ bpm: 60 }))));
    it("rejects out-of-range and non-integer fields with RangeError", () => {
      const bad: Parameters<typeof encodeHeartRateMeasurement>[0][] = [
        { bpm: -1 },
        { bpm: 65536 },
        { bpm: 72.5 },
        { bpm: Number.NaN },
        { bpm: Number.POSITIVE_INFINITY },
        { bpm: 72, energyExpended: -1 },
        { bpm: 72, energyExpended: 65536 },
        { bpm: 72, energyExpended: 0.5 },
        { bpm: 72, rrIntervalsRaw: [1024, -1] },
        { bpm: 72, rrIntervalsRaw: [65536] },
        { bpm: 72, rrIntervalsRaw: [Number.NaN] },
      ];
      for (const m of bad) assert.throws(() => encodeHeartRateMeasurement(m), RangeError, JSON.stringify(m));
    });
    it("names the offending field", () => {
      assert.throws(() => encodeHeartRateMeasurement({ bpm: 72, rrIntervalsRaw: [1, 2, 70000] }), /rrIntervalsRaw\[2\].*70000/);
    });
  });

  describe("body sensor location (0x2A38)", () => {
    it("lists the seven defined locations in spec order", () => {
      assert.deepEqual([...BODY_SENSOR_LOCATIONS], ["other", "chest", "wrist", "finger", "hand", "ear lobe", "foot"]);
      assert.ok(Object.isFrozen(BODY_SENSOR_LOCATIONS));
    });
    it("names each code", () => {
      BODY_SENSOR_LOCATIONS.forEach((name, code) => assert.equal(bodySensorLocationName(code), name));
    });
    it("reports reserved and invalid codes as unknown", () => {
      assert.equal(bodySensorLocationName(7), "unknown (7)");
      assert.equal(bodySensorLocationName(255), "unknown (255)");
      assert.equal(bodySensorLocationName(-1), "unknown (-1)");
      assert.equal(bodySensorLocationName(1.5), "unknown (1.5)");
      assert.equal(bodySensorLocationName(Number.NaN), "unknown (NaN)");
    });
  });

  describe("properties", () => {
    const uint16 = fc.integer({ min: 0, max: 0xffff });
    const measurement = fc.record({
      bpm: uint16,
      sensorContact: fc.constantFrom(true, false, null, undefined),
      energyExpended: fc.option(uint16, { nil: null }),
      rrIntervalsRaw: fc.array(uint16, { maxLength: 12 }),
      uint16: fc.boolean(),
    });

    it("decode(encode(x)) returns x", () => {
      fc.assert(
        fc.property(measurement, (x) => {
          const decoded = decodeHeartRateMeasurement(encodeHeartRateMeasurement(x));
          assert.deepEqual(decoded, {
            bpm: x.bpm,
            sensorContact: x.sensorContact ?? null,
            energyExpended: x.energyExpended,
            rrIntervals: x.rrIntervalsRaw.map((v) => (v * 1000) / 1024),
            rrIntervalsRaw: x.rrIntervalsRaw,
          });
        }),
        { numRuns: 2000 },
      );
    });

    it("encode(decode(encode(x))) is byte-identical", () => {
      fc.assert(
        fc.property(measurement, (x) => {
          const once = encodeHeartRateMeasurement(x);
          const wide = (once[0] & 0x01) !== 0;
          assert.deepEqual(encodeHeartRateMeasurement({ ...decodeHeartRateMeasurement(once), uint16: wide }), once);
        }),
        { numRuns: 2000 },
      );
    });

    it("arbitrary bytes decode to a well-formed object or throw HeartRateFormatError, exactly when malformed", () => {
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 40 }), (value) => {
          // Independent statement of the layout rules.
          const flags = value.length > 0 ? value[0] : 0;
          const fixed = 1 + (flags & 0x01 ? 2 : 1) + (flags & 0x08 ? 2 : 0);
          const malformed = value.length === 0 || value.length < fixed || ((flags & 0x10) !== 0 && (value.length - fixed) % 2 !== 0);
          let result: HeartRateMeasurement;
          try {
            result = decodeHeartRateMeasurement(value);
          } catch (error) {
            assert.ok(error instanceof HeartRateFormatError, `unexpected ${String(error)}`);
            assert.ok(malformed, `rejected a well-formed value: ${toHex(value)}`);
            return;
          }
          assert.ok(!malformed, `accepted a malformed value: ${toHex(value)}`);
          assertWellFormed(result);
          assert.equal(result.rrIntervalsRaw.length, flags & 0x10 ? (value.length - fixed) / 2 : 0);
        }),
        { numRuns: 10000 },
      );
    });

    it("valid values with any reserved bits decode like the clean value", () => {
      fc.assert(
        fc.property(measurement, fc.integer({ min: 1, max: 7 }), (x, reserved) => {
          const clean = encodeHeartRateMeasurement(x);
          const dirty = Buffer.from(clean);
          dirty[0] |= reserved << 5;
          assert.deepEqual(decodeHeartRateMeasurement(dirty), decodeHeartRateMeasurement(clean));
        }),
        { numRuns: 1000 },
      );
    });
  });
});
