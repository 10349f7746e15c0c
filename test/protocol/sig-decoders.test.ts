/**
 * The `sig` format (issue 13): each Bluetooth SIG characteristic decoder against published values where we found
 * them (named in the test: a device trace or vendor example quoted in public questions and answers, with the reading
 * the device or nRF Connect showed), otherwise against bytes built by hand from the field layout of the GATT
 * Specification Supplement (said in the test name). Then the refusals: a value cut short anywhere is a GattValueError
 * naming the characteristic and the byte counts, and arbitrary bytes give a result or a GattValueError, nothing else.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { GattValueError } from "../../src/protocol/gatt-value";
import { encodeFloat11073, encodeSfloat11073, float32FromRaw, readFloat11073, readSfloat11073, sfloatFromRaw } from "../../src/protocol/ieee11073";
import { SIG_CHARACTERISTICS, decodeSig, hasSigDecoder } from "../../src/protocol/sig-decoders";

const hex = (h: string): Buffer => Buffer.from(h.replace(/\s+/g, ""), "hex");

/** Asserts decodeSig throws GattValueError(code) with exactly these params. */
function refuses(characteristic: string, value: Buffer, code: string, params: Record<string, string | number>): void {
  assert.throws(
    () => decodeSig(characteristic, value),
    (error: unknown) => {
      assert.ok(error instanceof GattValueError, `expected GattValueError, got ${String(error)}`);
      assert.equal(error.code, code);
      assert.deepEqual(error.params, params);
      return true;
    },
  );
}

/** Every strict prefix of a complete value is refused as too short, naming how far it would have to reach. */
function everyPrefixRefused(characteristic: string, full: Buffer): void {
  for (let n = 0; n < full.length; n++) {
    assert.throws(
      () => decodeSig(characteristic, full.subarray(0, n)),
      (error: unknown) => {
        assert.ok(error instanceof GattValueError, `prefix ${n}: ${String(error)}`);
        assert.equal(error.code, "sig-too-short", `prefix ${n}`);
        assert.equal(error.params.characteristic, characteristic);
        assert.equal(error.params.got, n);
        assert.ok((error.params.need as number) > n && (error.params.need as number) <= full.length, `prefix ${n}: need ${error.params.need}`);
        return true;
      },
    );
  }
}

describe("SIG characteristic decoders (issue 13, format sig)", () => {
  it("documents exactly the ten characteristics of the issue, and recognises any UUID spelling", () => {
    assert.deepEqual([...SIG_CHARACTERISTICS].sort(), ["2a19", "2a1c", "2a35", "2a37", "2a5b", "2a63", "2a6d", "2a6e", "2a6f", "2a9d"]);
    for (const spelling of ["2a19", "2A19", "0x2A19", "00002a19-0000-1000-8000-00805f9b34fb", "00002A190000100080000080 5F9B34FB".replace(" ", "")]) {
      assert.equal(hasSigDecoder(spelling), true, spelling);
    }
    assert.equal(hasSigDecoder("2a00"), false);
    assert.equal(hasSigDecoder("6e400003-b5a3-f393-e0a9-e50e24dcca9e"), false);
    assert.equal(hasSigDecoder("not a uuid"), false);
  });

  it("a characteristic without a decoder is refused by its canonical name", () => {
    refuses("0x2A00", hex("41"), "sig-unknown", { characteristic: "2a00" });
    refuses("nonsense", hex("41"), "sig-unknown", { characteristic: "invalid uuid" });
  });

  describe("IEEE 11073 FLOAT and SFLOAT", () => {
    it("FLOAT: the thermometer vendor's examples 0xFF00016C = 36.4 and 0xFE000D97 = 34.79 (Stack Overflow question 60841331)", () => {
      assert.equal(float32FromRaw(0xff00016c), 36.4);
      assert.equal(float32FromRaw(0xfe000d97), 34.79);
    });

    it("FLOAT: bytes [113, 14, 0, 254] read little-endian are 36.97 (same question: the device showed 98.5 °F)", () => {
      assert.equal(readFloat11073(Uint8Array.of(113, 14, 0, 254), 0), 36.97);
    });

    it("SFLOAT: 0xF4F6 = 127.0 (Stack Overflow question 78168365: systolic pressure as nRF Connect showed it)", () => {
      assert.equal(sfloatFromRaw(0xf4f6), 127);
      assert.equal(readSfloat11073(hex("f6f4"), 0), 127);
    });

    it("FLOAT special values NaN, NRes, +INF, -INF and reserved are null, whatever the exponent", () => {
      for (const mantissa of [0x7fffff, 0x800000, 0x7ffffe, 0x800002, 0x800001]) {
        assert.equal(float32FromRaw(mantissa), null, mantissa.toString(16));
        assert.equal(float32FromRaw((0xfe000000 | mantissa) >>> 0), null, `fe ${mantissa.toString(16)}`);
      }
      assert.equal(float32FromRaw(0x7ffffd), 8388605);
      assert.equal(float32FromRaw(0x800003), -8388605);
    });

    it("SFLOAT special values NaN, NRes, +INF, -INF and reserved are null, whatever the exponent", () => {
      for (const mantissa of [0x07ff, 0x0800, 0x07fe, 0x0802, 0x0801]) {
        assert.equal(sfloatFromRaw(mantissa), null, mantissa.toString(16));
        assert.equal(sfloatFromRaw(0xf000 | mantissa), null, `f ${mantissa.toString(16)}`);
      }
      assert.equal(sfloatFromRaw(0x07fd), 2045);
      assert.equal(sfloatFromRaw(0x0803), -2045);
    });

    it("negative exponents give the decimal the device meant (no 0.1-steps drift)", () => {
      assert.equal(sfloatFromRaw(0xf16d), 36.5); // 365 · 10^-1
      assert.equal(float32FromRaw(0xfd000001), 0.001);
      assert.equal(sfloatFromRaw(0x2001), 100); // 1 · 10^2
    });

    it("property: a non-special mantissa and any exponent decode to mantissa · 10^exponent", () => {
      const special32 = new Set([0x7fffff, -0x800000, 0x7ffffe, -0x7ffffe, -0x7fffff]);
      fc.assert(
        fc.property(fc.integer({ min: -0x800000, max: 0x7fffff }), fc.integer({ min: -22, max: 22 }), (m, e) => {
          fc.pre(!special32.has(m));
          const expected = e < 0 ? m / 10 ** -e : m * 10 ** e;
          assert.equal(readFloat11073(encodeFloat11073(m, e), 0), expected);
        }),
      );
      const special16 = new Set([0x7ff, -0x800, 0x7fe, -0x7fe, -0x7ff]);
      fc.assert(
        fc.property(fc.integer({ min: -0x800, max: 0x7ff }), fc.integer({ min: -8, max: 7 }), (m, e) => {
          fc.pre(!special16.has(m));
          const expected = e < 0 ? m / 10 ** -e : m * 10 ** e;
          assert.equal(readSfloat11073(encodeSfloat11073(m, e), 0), expected);
        }),
      );
    });

    it("encoders refuse a mantissa or exponent that does not fit", () => {
      assert.throws(() => encodeFloat11073(0x800000, 0), RangeError);
      assert.throws(() => encodeFloat11073(1, 128), RangeError);
      assert.throws(() => encodeSfloat11073(2048, 0), RangeError);
      assert.throws(() => encodeSfloat11073(1, -9), RangeError);
    });
  });

  describe("single-field characteristics: a plain number", () => {
    it("2a19 Battery Level: 0x64 → 100 % (bytes from the field layout: uint8 percent)", () => {
      assert.equal(decodeSig("2a19", hex("64")), 100);
      assert.equal(decodeSig("2a19", hex("00")), 0);
    });

    it("2a6e Temperature: 72 09 → 24.18 °C, da fd → -5.5 °C, 00 80 → null (layout: sint16 0.01 °C, 0x8000 unknown)", () => {
      assert.equal(decodeSig("2a6e", hex("7209")), 24.18);
      assert.equal(decodeSig("2a6e", hex("dafd")), -5.5);
      assert.equal(decodeSig("2a6e", hex("0080")), null);
    });

    it("2a6f Humidity: 88 13 → 50 %, ff ff → null (layout: uint16 0.01 %, 0xFFFF unknown)", () => {
      assert.equal(decodeSig("2a6f", hex("8813")), 50);
      assert.equal(decodeSig("2a6f", hex("a50f")), 40.05);
      assert.equal(decodeSig("2a6f", hex("ffff")), null);
    });

    it("2a6d Pressure: 02 76 0f 00 → 101325 Pa (layout: uint32 0.1 Pa)", () => {
      assert.equal(decodeSig("2a6d", hex("02760f00")), 101325);
      assert.equal(decodeSig("2a6d", hex("05000000")), 0.5);
    });

    it("each refuses a value shorter than its field with the bytes it needs", () => {
      refuses("2a19", hex(""), "sig-too-short", { characteristic: "2a19", need: 1, got: 0 });
      refuses("2a6e", hex("72"), "sig-too-short", { characteristic: "2a6e", need: 2, got: 1 });
      refuses("2a6f", hex(""), "sig-too-short", { characteristic: "2a6f", need: 2, got: 0 });
      refuses("2a6d", hex("02760f"), "sig-too-short", { characteristic: "2a6d", need: 4, got: 3 });
    });

    it("bytes after the field are ignored (later revisions append fields)", () => {
      assert.equal(decodeSig("2a19", hex("6401")), 100);
      assert.equal(decodeSig("2a6e", hex("7209ff")), 24.18);
    });

    it("property: Temperature and Humidity return raw/100 for every raw value but the unknown marker", () => {
      fc.assert(
        fc.property(fc.integer({ min: -0x8000, max: 0x7fff }), (raw) => {
          const b = Buffer.alloc(2);
          b.writeInt16LE(raw);
          assert.equal(decodeSig("2a6e", b), raw === -0x8000 ? null : raw / 100);
          assert.equal(decodeSig("2a6f", b), b.readUInt16LE() === 0xffff ? null : b.readUInt16LE() / 100);
        }),
      );
    });
  });

  describe("2a37 Heart Rate Measurement (the heart-rate node's decoder)", () => {
    it("06 37: 55 bpm, contact detected (docs/protocols.md example)", () => {
      assert.deepEqual(decodeSig("2a37", hex("0637")), { bpm: 55, sensorContact: true, energyExpended: null, rrIntervals: [], rrIntervalsRaw: [] });
    });

    it("16 31 87 04 87 04: 49 bpm, RR 1159/1024 s twice (docs/protocols.md example)", () => {
      assert.deepEqual(decodeSig("2a37", hex("163187048704")), {
        bpm: 49,
        sensorContact: true,
        energyExpended: null,
        rrIntervals: [1131.8359375, 1131.8359375],
        rrIntervalsRaw: [1159, 1159],
      });
    });

    it("a uint16 heart rate with energy expended (hand-built from the layout: flags 09, 0x012c bpm, 0x0100 kJ)", () => {
      assert.deepEqual(decodeSig("2a37", hex("092c010001")), { bpm: 300, sensorContact: null, energyExpended: 256, rrIntervals: [], rrIntervalsRaw: [] });
    });

    it("short values are sig-too-short with the bytes needed; an odd RR byte is sig-malformed", () => {
      refuses("2a37", hex(""), "sig-too-short", { characteristic: "2a37", need: 2, got: 0 });
      refuses("2a37", hex("01 2c"), "sig-too-short", { characteristic: "2a37", need: 3, got: 2 });
      refuses("2a37", hex("08 2c 01"), "sig-too-short", { characteristic: "2a37", need: 4, got: 3 });
      refuses("2a37", hex("09 2c 01 00"), "sig-too-short", { characteristic: "2a37", need: 5, got: 4 });
      refuses("2a37", hex("10 2c 01"), "sig-malformed", { characteristic: "2a37", field: "rrIntervals" });
    });
  });

  describe("2a1c Temperature Measurement (IEEE-11073 FLOAT)", () => {
    it("06 B00E00FE DC070C050B0927 04: 37.6 °C, 2012-12-05 11:09:39, finger (a thermometer's trace posted on the B4X forum)", () => {
      assert.deepEqual(decodeSig("2a1c", hex("06B00E00FEDC070C050B092704")), {
        temperature: 37.6,
        unit: "°C",
        timestamp: { year: 2012, month: 12, day: 5, hours: 11, minutes: 9, seconds: 39 },
        temperatureType: 4,
        temperatureTypeName: "finger",
      });
    });

    it("00 6C0100FF: 36.4 °C without timestamp or type (the vendor's FLOAT example behind a flags byte)", () => {
      assert.deepEqual(decodeSig("2a1c", hex("006C0100FF")), { temperature: 36.4, unit: "°C", timestamp: null, temperatureType: null, temperatureTypeName: null });
    });

    it("01 DA0300FF: 98.6 °F (hand-built: flags bit 0 = Fahrenheit, mantissa 986, exponent -1)", () => {
      assert.deepEqual(decodeSig("2a1c", hex("01DA0300FF")), { temperature: 98.6, unit: "°F", timestamp: null, temperatureType: null, temperatureTypeName: null });
    });

    it("a NaN temperature is null; a type outside the table has no name (hand-built)", () => {
      const m = decodeSig("2a1c", hex("04 FFFF7F00 0c")) as Record<string, unknown>;
      assert.equal(m.temperature, null);
      assert.equal(m.temperatureType, 12);
      assert.equal(m.temperatureTypeName, null);
    });

    it("every prefix of a full value is refused as too short", () => {
      everyPrefixRefused("2a1c", hex("06B00E00FEDC070C050B092704"));
      refuses("2a1c", hex("02 6C0100FF DC07"), "sig-too-short", { characteristic: "2a1c", need: 12, got: 7 });
    });
  });

  describe("2a35 Blood Pressure Measurement (SFLOAT)", () => {
    const published = "DE F6F4 16F3 FF07 E407011408 2B00 B2F2 01 8000";

    it("DE F6F4 16F3 FF07 …: 127/79 mmHg, MAP not given, 2020-01-20 08:43:00, pulse 69, user 1 (Stack Overflow question 78168365; nRF Connect showed 127.0 mmHg)", () => {
      assert.deepEqual(decodeSig("2a35", hex(published)), {
        systolic: 127,
        diastolic: 79,
        meanArterialPressure: null,
        unit: "mmHg",
        timestamp: { year: 2020, month: 1, day: 20, hours: 8, minutes: 43, seconds: 0 },
        pulseRate: 69,
        userId: 1,
        measurementStatus: {
          bodyMovementDetected: false,
          cuffTooLoose: false,
          irregularPulseDetected: false,
          pulseRateRange: "within",
          improperMeasurementPosition: false,
        },
      });
    });

    it("01 A0F0 B0F0 C4F0: 16.0/17.6/19.6 kPa, nothing optional (hand-built: flags bit 0 = kPa)", () => {
      assert.deepEqual(decodeSig("2a35", hex("01 A0F0 B0F0 C4F0")), {
        systolic: 16,
        diastolic: 17.6,
        meanArterialPressure: 19.6,
        unit: "kPa",
        timestamp: null,
        pulseRate: null,
        userId: null,
        measurementStatus: null,
      });
    });

    it("measurement status bits: movement, loose cuff, irregular pulse, rate range, position (hand-built)", () => {
      const status = (word: string): unknown => (decodeSig("2a35", hex(`10 7800 5000 5D00 ${word}`)) as Record<string, unknown>).measurementStatus;
      assert.deepEqual(status("2f00"), {
        bodyMovementDetected: true,
        cuffTooLoose: true,
        irregularPulseDetected: true,
        pulseRateRange: "above-upper-limit",
        improperMeasurementPosition: true,
      });
      assert.equal((status("1000") as Record<string, unknown>).pulseRateRange, "below-lower-limit");
      assert.equal((status("1800") as Record<string, unknown>).pulseRateRange, "reserved");
    });

    it("every prefix of the published value is refused as too short", () => {
      everyPrefixRefused("2a35", hex(published));
    });
  });

  describe("2a9d Weight Measurement", () => {
    it("0E 1437 E807030F071E00 01 DF00 F206: 70.5 kg, user 1, BMI 22.3, 1.778 m (hand-built: SI, timestamp, user, BMI and height)", () => {
      assert.deepEqual(decodeSig("2a9d", hex("0E 1437 E807030F071E00 01 DF00 F206")), {
        weight: 70.5,
        unit: "kg",
        timestamp: { year: 2024, month: 3, day: 15, hours: 7, minutes: 30, seconds: 0 },
        userId: 1,
        bmi: 22.3,
        height: 1.778,
        heightUnit: "m",
      });
    });

    it("00 8C37: 71.1 kg (the KICKR wiki's published 0x2A98 weight 8c 37 = 71.1 kg, same 0.005 kg field, behind SI flags)", () => {
      assert.deepEqual(decodeSig("2a9d", hex("008C37")), { weight: 71.1, unit: "kg", timestamp: null, userId: null, bmi: null, height: null, heightUnit: null });
    });

    it("09 BE3C F000 BC02: 155.5 lb, BMI 24, 70 in (hand-built: imperial with BMI and height)", () => {
      assert.deepEqual(decodeSig("2a9d", hex("09 BE3C F000 BC02")), { weight: 155.5, unit: "lb", timestamp: null, userId: null, bmi: 24, height: 70, heightUnit: "in" });
    });

    it("weight 0xFFFF is a failed measurement: null (hand-built)", () => {
      assert.equal((decodeSig("2a9d", hex("00FFFF")) as Record<string, unknown>).weight, null);
    });

    it("property: SI weights are exact multiples of 5 g, imperial of 0.01 lb", () => {
      fc.assert(
        fc.property(fc.integer({ min: 0, max: 0xfffe }), (raw) => {
          const b = Buffer.from([0, raw & 0xff, raw >> 8]);
          assert.equal((decodeSig("2a9d", b) as Record<string, unknown>).weight, Number(`${raw * 5}e-3`));
          b[0] = 1;
          assert.equal((decodeSig("2a9d", b) as Record<string, unknown>).weight, Number(`${raw}e-2`));
        }),
      );
    });

    it("every prefix of a full value is refused as too short", () => {
      everyPrefixRefused("2a9d", hex("0E 1437 E807030F071E00 01 DF00 F206"));
    });
  });

  describe("2a5b CSC Measurement", () => {
    it("03 6D010000 FC7E 2C01 F87E: 365 wheel revolutions at 32508/1024 s, 300 crank revolutions at 32504/1024 s (Stack Overflow question 49813704, a SunDing 515 sensor)", () => {
      assert.deepEqual(decodeSig("2a5b", hex("03 6D010000 FC7E 2C01 F87E")), {
        cumulativeWheelRevolutions: 365,
        lastWheelEventTime: 32508 / 1024,
        cumulativeCrankRevolutions: 300,
        lastCrankEventTime: 32504 / 1024,
      });
    });

    it("02 0400 5E17: crank only, 4 revolutions at 5982/1024 s (Stack Overflow question 71235792's answer)", () => {
      assert.deepEqual(decodeSig("2a5b", hex("02 0400 5E17")), {
        cumulativeWheelRevolutions: null,
        lastWheelEventTime: null,
        cumulativeCrankRevolutions: 4,
        lastCrankEventTime: 5982 / 1024,
      });
    });

    it("every prefix of a full value is refused as too short; a wheel flag without its 6 bytes names need 7", () => {
      everyPrefixRefused("2a5b", hex("03 6D010000 FC7E 2C01 F87E"));
      refuses("2a5b", hex("01 6D010000"), "sig-too-short", { characteristic: "2a5b", need: 7, got: 5 });
    });
  });

  describe("2a63 Cycling Power Measurement", () => {
    const all = "FF1F FBFF 65 2000 07000000 0004 0300 0002 2C01 ECFF 4000 E0FF B47016 0A00 BE00 0C00";

    it("34 00 FA00 4006 E8030000 0010 3C00 0008: 250 W, 50 N·m wheel-based torque, wheel and crank data (hand-built: flags 0x0034)", () => {
      assert.deepEqual(decodeSig("2a63", hex("3400 FA00 4006 E8030000 0010 3C00 0008")), {
        instantaneousPower: 250,
        pedalPowerBalance: null,
        pedalPowerBalanceReference: null,
        accumulatedTorque: 50,
        accumulatedTorqueSource: "wheel",
        cumulativeWheelRevolutions: 1000,
        lastWheelEventTime: 2,
        cumulativeCrankRevolutions: 60,
        lastCrankEventTime: 2,
        maximumForce: null,
        minimumForce: null,
        maximumTorque: null,
        minimumTorque: null,
        maximumAngle: null,
        minimumAngle: null,
        topDeadSpotAngle: null,
        bottomDeadSpotAngle: null,
        accumulatedEnergy: null,
        offsetCompensationIndicator: false,
      });
    });

    it("every optional field, in order (hand-built: flags 0x1FFF, each field a distinct value)", () => {
      assert.deepEqual(decodeSig("2a63", hex(all)), {
        instantaneousPower: -5,
        pedalPowerBalance: 50.5,
        pedalPowerBalanceReference: "left",
        accumulatedTorque: 1,
        accumulatedTorqueSource: "crank",
        cumulativeWheelRevolutions: 7,
        lastWheelEventTime: 0.5,
        cumulativeCrankRevolutions: 3,
        lastCrankEventTime: 0.5,
        maximumForce: 300,
        minimumForce: -20,
        maximumTorque: 2,
        minimumTorque: -1,
        maximumAngle: 180,
        minimumAngle: 359,
        topDeadSpotAngle: 10,
        bottomDeadSpotAngle: 190,
        accumulatedEnergy: 12,
        offsetCompensationIndicator: true,
      });
    });

    it("a field's position depends on every earlier flag: without pedal balance, the torque is read from byte 4 (hand-built)", () => {
      const m = decodeSig("2a63", hex("0400 6400 4000")) as Record<string, unknown>;
      assert.equal(m.instantaneousPower, 100);
      assert.equal(m.accumulatedTorque, 2);
      assert.equal(m.pedalPowerBalance, null);
    });

    it("every prefix of the full value is refused as too short", () => {
      everyPrefixRefused("2a63", hex(all));
      refuses("2a63", hex("0001 6400 B470"), "sig-too-short", { characteristic: "2a63", need: 7, got: 6 });
    });
  });

  describe("hostile input", () => {
    it("property: arbitrary bytes for every decoder give a result or a GattValueError (too-short names need > got), nothing else", () => {
      fc.assert(
        fc.property(fc.constantFrom(...SIG_CHARACTERISTICS), fc.uint8Array({ maxLength: 48 }), (characteristic, bytes) => {
          const value = Buffer.from(bytes);
          try {
            const out = decodeSig(characteristic, value);
            assert.ok(out === null || typeof out === "number" || (typeof out === "object" && !Array.isArray(out)));
            if (typeof out === "number") assert.ok(Number.isFinite(out));
          } catch (error) {
            assert.ok(error instanceof GattValueError, `unexpected ${String(error)}`);
            assert.ok(["sig-too-short", "sig-malformed"].includes(error.code), error.code);
            if (error.code === "sig-too-short") {
              assert.equal(error.params.got, value.length);
              assert.ok((error.params.need as number) > value.length);
            }
            assert.ok(!error.message.includes(value.toString("hex")) || value.length < 2, error.message);
          }
        }),
        { numRuns: 5000 },
      );
    });

    it("property: a decoded value is the same with any bytes appended (fields are read in order, never from the end)", () => {
      fc.assert(
        fc.property(fc.constantFrom(...SIG_CHARACTERISTICS.filter((c) => c !== "2a37")), fc.uint8Array({ maxLength: 40 }), fc.uint8Array({ minLength: 1, maxLength: 8 }), (c, bytes, extra) => {
          let first: unknown;
          try {
            first = decodeSig(c, Buffer.from(bytes));
          } catch {
            return;
          }
          assert.deepEqual(decodeSig(c, Buffer.concat([bytes, extra])), first);
        }),
        { numRuns: 3000 },
      );
    });

    it("not a Buffer: a GattValueError, not a TypeError", () => {
      assert.throws(() => decodeSig("2a19", "64" as unknown as Buffer), GattValueError);
      assert.throws(() => decodeSig("2a19", null as unknown as Buffer), GattValueError);
    });
  });
});
