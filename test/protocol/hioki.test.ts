import assert from "node:assert/strict";
import fc from "fast-check";
import {
  HIOKI_COMMAND_MAX_LENGTH,
  HiokiCommandError,
  type HiokiReply,
  encodeHiokiCommand,
  formatNr3,
  parseHiokiReply,
  parseNr3,
  parseZ3210Name,
  validateHiokiCommand,
} from "../../src/protocol/hioki";

/** Strings of every kind: ASCII, control characters, lone surrogates, astral characters. */
const anyString = fc.oneof(
  fc.string({ unit: "binary", maxLength: 80 }),
  fc.string({ unit: "grapheme", maxLength: 80 }),
  fc.string({ unit: fc.constantFrom(..."0123456789+-.eE ;:?\r\n\0\tQPIDFETCNOK".split("")), maxLength: 30 }),
);

function assertReplyShape(r: HiokiReply): void {
  assert.ok(r.value === null || Number.isFinite(r.value), `value ${String(r.value)}`);
  assert.ok(r.model === null || (typeof r.model === "string" && r.model !== ""));
  assert.ok(Array.isArray(r.parts) && r.parts.every((p) => typeof p === "string"));
  assert.equal(r.parts.join(";"), r.raw);
  assert.ok(!/[\r\n\0]$/.test(r.raw));
}

describe("HIOKI Z3210 protocol", () => {
  describe("parseZ3210Name", () => {
    it("splits the advertised name", () => {
      assert.deepEqual(parseZ3210Name("Z3210V2.10:DT4261#123456789"), { adapterFirmware: "V2.10", model: "DT4261", serial: "123456789" });
    });
    it("works for other instruments behind the adapter", () => {
      assert.deepEqual(parseZ3210Name("Z3210V1.00:IR4056#230512345"), { adapterFirmware: "V1.00", model: "IR4056", serial: "230512345" });
      assert.deepEqual(parseZ3210Name("Z3210V3.2:CM4375-50#1"), { adapterFirmware: "V3.2", model: "CM4375-50", serial: "1" });
    });
    it("tolerates a missing or empty serial", () => {
      assert.deepEqual(parseZ3210Name("Z3210V2.10:DT4261"), { adapterFirmware: "V2.10", model: "DT4261", serial: "" });
      assert.deepEqual(parseZ3210Name("Z3210V2.10:DT4261#"), { adapterFirmware: "V2.10", model: "DT4261", serial: "" });
    });
    it("ignores NUL or space padding at the end", () => {
      assert.deepEqual(parseZ3210Name("Z3210V2.10:DT4261#123456789\0\0"), { adapterFirmware: "V2.10", model: "DT4261", serial: "123456789" });
      assert.deepEqual(parseZ3210Name("Z3210V2.10:DT4261 "), { adapterFirmware: "V2.10", model: "DT4261", serial: "" });
    });
    it("returns null for anything else", () => {
      for (const name of [
        "",
        "Polar H10 12345678",
        "Z3210",
        "Z3210V2.10",
        "Z3210V2.10:",
        "Z3210V2.10:#123",
        "Z3210:DT4261#123",
        "z3210v2.10:DT4261#123",
        " Z3210V2.10:DT4261#123",
        "Z3210V2.10:DT4261#12 34",
        "Z3210V2.10:DT4261#1#2",
        "Z3210V2.10:DT:4261#1",
        "XZ3210V2.10:DT4261#1",
      ]) {
        assert.equal(parseZ3210Name(name), null, JSON.stringify(name));
      }
      assert.equal(parseZ3210Name(undefined as unknown as string), null);
    });
    it("never throws on arbitrary strings", () => {
      fc.assert(
        fc.property(anyString, (s) => {
          const r = parseZ3210Name(s);
          if (r !== null) assert.ok(s.startsWith("Z3210V") && r.model !== "");
        }),
        { numRuns: 2000 },
      );
    });
  });

  describe("parseNr3", () => {
    const valid: [string, number][] = [
      ["+1.00000000E-04", 0.0001],
      ["-1.00000000E-04", -0.0001],
      ["+0.00000000E+00", 0],
      ["+9.99999999E+99", 9.99999999e99],
      ["+1.23456789E+123", 1.23456789e123],
      ["3000", 3000],
      ["-12", -12],
      ["+7", 7],
      ["007", 7],
      ["1.5", 1.5],
      ["-0.25", -0.25],
      ["+.5", 0.5],
      ["5.", 5],
      ["1e5", 100000],
      ["1E+5", 100000],
      ["2.5e-3", 0.0025],
      ["1E-400", 0], // underflows quietly, as a double must
      // Surrounding whitespace and terminators are not part of the number.
      ["\r\n+1.00000000E+00\r\n", 1],
      [" 42 ", 42],
      ["42\0", 42],
    ];
    for (const [text, expected] of valid) {
      it(`${JSON.stringify(text)} → ${expected}`, () => assert.equal(parseNr3(text), expected));
    }

    it("returns 0, not -0, for negative zero", () => {
      assert.ok(Object.is(parseNr3("-0.00000000E+00"), 0));
      assert.ok(Object.is(parseNr3("-0"), 0));
    });

    it("returns null for anything that is not a plain number", () => {
      for (const text of [
        "", " ", "\r\n", "1e", "1E+", "e5", "E5", ".", "+", "-", "+-1", "++1", "1.2.3", "1e5.5", "1e5e5",
        "Infinity", "-Infinity", "+Infinity", "NaN", "0x10", "0X10", "0b1", "0o7", "1_000", " 1 2", "1 2", "1,5",
        "1.0 E+00", "1.0E +00", "+ 1", "CMD ERR", "EXE ERR", "OK", "DT4261", "+OVER", "OF", "-OL",
        "1E+999", "-1E+999", "\u00a01", "１", "1\u200b", "1;2",
      ]) {
        assert.equal(parseNr3(text), null, JSON.stringify(text));
      }
      assert.equal(parseNr3(undefined as unknown as string), null);
      assert.equal(parseNr3(12 as unknown as string), null);
    });

    it("never throws and never returns NaN on arbitrary strings; agrees with Number() when it accepts", () => {
      fc.assert(
        fc.property(anyString, (s) => {
          const n = parseNr3(s);
          if (n === null) return;
          assert.ok(Number.isFinite(n));
          assert.equal(n, Number(s.replace(/^[ \t\r\n\0]+|[ \t\r\n\0]+$/g, "")) || 0);
        }),
        { numRuns: 10000 },
      );
    });

    it("answers long adversarial input (no regex backtracking: a regression shows as a mocha timeout)", () => {
      for (const s of ["1".repeat(100000) + "x", "1.".repeat(50000), "1e".repeat(50000), " ".repeat(100000) + "1 x", `1${" ".repeat(100000)}x`]) {
        assert.equal(parseNr3(s), null);
      }
      assert.equal(parseHiokiReply(`${"\r".repeat(100000)}x`, "FETC?").value, null);
      assert.equal(parseZ3210Name(`${"\0".repeat(100000)}x`), null);
      assert.throws(() => validateHiokiCommand(`x${" ".repeat(100000)}x`), HiokiCommandError);
    });
  });

  describe("formatNr3", () => {
    const cases: [number, string][] = [
      [0.0001, "+1.00000000E-04"],
      [0, "+0.00000000E+00"],
      [-0, "+0.00000000E+00"],
      [-1.5, "-1.50000000E+00"],
      [1, "+1.00000000E+00"],
      [3000, "+3.00000000E+03"],
      [-0.0001, "-1.00000000E-04"],
      [123456789.5, "+1.23456790E+08"],
      [9.9999999999, "+1.00000000E+01"],
      [1e-300, "+1.00000000E-300"],
      [1e100, "+1.00000000E+100"],
      [Number.MAX_VALUE, "+1.79769313E+308"],
      [Number.MIN_VALUE, "+4.94065646E-324"],
      [-Number.MAX_VALUE, "-1.79769313E+308"],
    ];
    for (const [value, expected] of cases) {
      it(`${value} → ${expected}`, () => assert.equal(formatNr3(value), expected));
    }

    it("throws RangeError for NaN and infinities", () => {
      for (const v of [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) assert.throws(() => formatNr3(v), RangeError);
    });

    it("always has the instrument's shape", () => {
      fc.assert(
        fc.property(fc.double({ noNaN: true, noDefaultInfinity: true }), (x) => {
          assert.match(formatNr3(x), /^[+-][0-9]\.[0-9]{8}E[+-][0-9]{2,3}$/);
        }),
        { numRuns: 5000 },
      );
    });

    it("parseNr3(formatNr3(x)) is within 1e-8 relative of x", () => {
      fc.assert(
        fc.property(fc.double({ noNaN: true, noDefaultInfinity: true }), (x) => {
          const back = parseNr3(formatNr3(x));
          assert.ok(back !== null, formatNr3(x));
          assert.ok(Math.abs(back - x) <= 1e-8 * Math.abs(x), `${x} → ${formatNr3(x)} → ${back}`);
        }),
        { numRuns: 10000 },
      );
    });

    it("formatNr3(parseNr3(s)) is s for any instrument-shaped string", () => {
      const digit = fc.integer({ min: 0, max: 9 });
      fc.assert(
        fc.property(
          fc.constantFrom("+", "-"),
          fc.integer({ min: 1, max: 9 }),
          fc.array(digit, { minLength: 8, maxLength: 8 }),
          fc.constantFrom("+", "-"),
          fc.integer({ min: 0, max: 99 }),
          (sign, lead, rest, expSign, exp) => {
            // Exponent zero is always written "+00".
            const s = `${sign}${lead}.${rest.join("")}E${exp === 0 ? "+" : expSign}${String(exp).padStart(2, "0")}`;
            assert.equal(formatNr3(parseNr3(s) ?? Number.NaN), s);
          },
        ),
        { numRuns: 2000 },
      );
    });
  });

  describe("parseHiokiReply", () => {
    it("FETC? → the value", () => {
      assert.deepEqual(parseHiokiReply("+1.00000000E-04\r\n", "FETC?"), {
        raw: "+1.00000000E-04",
        parts: ["+1.00000000E-04"],
        value: 0.0001,
        model: null,
      });
    });

    it("QPID;FETC? → model and value", () => {
      assert.deepEqual(parseHiokiReply("DT4261;+0.00000000E+00", "QPID;FETC?"), {
        raw: "DT4261;+0.00000000E+00",
        parts: ["DT4261", "+0.00000000E+00"],
        value: 0,
        model: "DT4261",
      });
      assert.equal(parseHiokiReply("DT4261;-1.00000000E-04", "QPID;FETC?").value, -0.0001);
    });

    it("FETC?;QPID → model from the second part", () => {
      const r = parseHiokiReply("+2.50000000E+00;DT4261", "FETC?;QPID");
      assert.equal(r.model, "DT4261");
      assert.equal(r.value, 2.5);
    });

    it(":FETCCNT? → an integer count", () => {
      assert.equal(parseHiokiReply("3000\r\n", ":FETCCNT?").value, 3000);
    });

    it(":CALC:STAT:...? answers are measuring values; the last one wins", () => {
      assert.equal(parseHiokiReply("+1.20000000E+01", ":CALC:STAT:MAX?").value, 12);
      const r = parseHiokiReply("+1.00000000E+00;+3.00000000E+00;+2.00000000E+00", ":CALC:STAT:MIN?;:CALC:STAT:MAX?;:CALC:STAT:AVER?");
      assert.equal(r.value, 2);
      assert.equal(parseHiokiReply("+1.0E+00;+2.0E+00", "FETC?;:CALCULATE:STATISTICS:MAXIMUM?").value, 2);
    });

    it("accepts lower case, spaces around parts, and long SCPI forms", () => {
      assert.deepEqual(parseHiokiReply("DT4261;+5.00000000E+00", " qpid ; :fetch? ").value, 5);
      assert.equal(parseHiokiReply("DT4261;+5.00000000E+00", " qpid ; :fetch? ").model, "DT4261");
      assert.equal(parseHiokiReply("DT4261 ; +5.0E+00 ", "QPID;FETC?").model, "DT4261");
    });

    it("trims trailing CR, LF and NUL only", () => {
      const r = parseHiokiReply("+1.0E+00\r\n\0\0", "FETC?");
      assert.equal(r.raw, "+1.0E+00");
      assert.equal(r.value, 1);
      assert.equal(parseHiokiReply("\r\n+1.0E+00", "FETC?").raw, "\r\n+1.0E+00");
    });

    it("error and unknown replies give value null, never NaN", () => {
      for (const reply of ["CMD ERR", "EXE ERR", "+OVER", "OF", "-OL", "----", "", "\r\n", "+1.0E+00 V"]) {
        const r = parseHiokiReply(reply, "FETC?");
        assert.equal(r.value, null, JSON.stringify(reply));
        assert.equal(r.model, null);
      }
    });

    it("a non-numeric answer to the last measuring query gives null even when an earlier one was numeric", () => {
      assert.equal(parseHiokiReply("+1.0E+00;CMD ERR", "FETC?;:CALC:STAT:MAX?").value, null);
    });

    it("QPID answered with an error is no model", () => {
      const r = parseHiokiReply("CMD ERR;+1.0E+00", "QPID;FETC?");
      assert.equal(r.model, null);
      assert.equal(r.value, 1);
    });

    it("a numeric answer to a non-measuring query is ignored when a measuring query is present", () => {
      assert.equal(parseHiokiReply("0;+4.0E+00", ":STAT?;FETC?").value, 4);
      assert.equal(parseHiokiReply("+4.0E+00;0", "FETC?;:STAT?").value, 4);
    });

    it("setting commands: with or without their own answer", () => {
      assert.equal(parseHiokiReply("+1.0E+00", ":CONF DCV,AUTO;FETC?").value, 1);
      assert.equal(parseHiokiReply("OK;+1.0E+00", ":CONF DCV,AUTO;FETC?").value, 1);
      const ok = parseHiokiReply("OK\r\n", ":SYST:LLO");
      assert.deepEqual(ok, { raw: "OK", parts: ["OK"], value: null, model: null });
    });

    it("a single-number reply is the value, whatever the command", () => {
      assert.equal(parseHiokiReply("0", ":STAT?").value, 0);
      assert.equal(parseHiokiReply("+1.5E+00", "").value, 1.5);
      assert.equal(parseHiokiReply("+1.5E+00", "QPID;FETC?").value, 1.5);
    });

    it("parts that cannot be matched to the command give no model", () => {
      const r = parseHiokiReply("DT4261", "QPID;FETC?");
      assert.equal(r.model, null);
      assert.equal(r.value, null);
      assert.equal(parseHiokiReply("DT4261;+1.0E+00;junk", "QPID;FETC?").model, null);
      assert.equal(parseHiokiReply("DT4261;+1.0E+00;junk", "QPID;FETC?").value, null);
    });

    it("*IDN? text is not a value", () => {
      assert.deepEqual(parseHiokiReply("HIOKI,DT4261,123456789,V1.00", "*IDN?"), {
        raw: "HIOKI,DT4261,123456789,V1.00",
        parts: ["HIOKI,DT4261,123456789,V1.00"],
        value: null,
        model: null,
      });
    });

    it("empty reply: no parts", () => {
      assert.deepEqual(parseHiokiReply("", "FETC?"), { raw: "", parts: [], value: null, model: null });
    });

    it("untyped callers: non-string input does not throw", () => {
      assert.deepEqual(parseHiokiReply(undefined as unknown as string, null as unknown as string), { raw: "", parts: [], value: null, model: null });
    });

    it("never throws, never returns NaN, on arbitrary replies and commands", () => {
      const command = fc.oneof(anyString, fc.constantFrom("FETC?", "QPID;FETC?", ":FETCCNT?", "QPID", ":CONF DCV;FETC?", ":CALC:STAT:MAX?;FETC?"));
      fc.assert(
        fc.property(anyString, command, (raw, cmd) => {
          assertReplyShape(parseHiokiReply(raw, cmd));
        }),
        { numRuns: 10000 },
      );
    });

    it("round trip: formatted values come back through QPID;FETC?", () => {
      fc.assert(
        fc.property(fc.double({ noNaN: true, noDefaultInfinity: true }), (x) => {
          const r = parseHiokiReply(`DT4261;${formatNr3(x)}\r\n`, "QPID;FETC?");
          assert.equal(r.model, "DT4261");
          assert.ok(r.value !== null && Math.abs(r.value - x) <= 1e-8 * Math.abs(x));
        }),
        { numRuns: 2000 },
      );
    });
  });

  describe("validateHiokiCommand / encodeHiokiCommand", () => {
    function assertRejected(command: string, mention: RegExp): void {
      assert.throws(
        () => validateHiokiCommand(command),
        (error: unknown) => {
          assert.ok(error instanceof HiokiCommandError, String(error));
          assert.equal(error.name, "HiokiCommandError");
          assert.match(error.message, mention);
          return true;
        },
      );
    }

    it("returns valid commands, trimmed of surrounding spaces", () => {
      assert.equal(validateHiokiCommand("FETC?"), "FETC?");
      assert.equal(validateHiokiCommand("QPID;FETC?"), "QPID;FETC?");
      assert.equal(validateHiokiCommand("  :CONF DCV,AUTO  "), ":CONF DCV,AUTO");
      assert.equal(validateHiokiCommand("~ !"), "~ !");
    });

    it("accepts 64 characters and rejects 65", () => {
      assert.equal(HIOKI_COMMAND_MAX_LENGTH, 64);
      const max = "A".repeat(64);
      assert.equal(validateHiokiCommand(max), max);
      assert.equal(validateHiokiCommand(`   ${max}   `), max);
      assertRejected("A".repeat(65), /65 characters.*at most 64/);
    });

    it("rejects empty and all-space commands", () => {
      assertRejected("", /empty/);
      assertRejected("    ", /empty/);
    });

    it("rejects CR and LF, naming them and their position, with a hint", () => {
      assertRejected("FETC?\r\n", /CR \(U\+000D\) at position 6.*without CR\/LF/);
      assertRejected("FETC?\nQPID", /LF \(U\+000A\) at position 6/);
    });

    it("rejects other control characters", () => {
      assertRejected("\tFETC?", /TAB \(U\+0009\) at position 1/);
      assertRejected("FE\0TC?", /NUL \(U\+0000\) at position 3/);
      assertRejected("FETC?\x7f", /DEL \(U\+007F\) at position 6/);
      assertRejected("\x1b[A", /ESC \(U\+001B\) at position 1/);
      assertRejected("A\x01", /control character U\+0001 at position 2/);
      assertRejected("A\u0085", /control character U\+0085 at position 2/);
    });

    it("rejects non-ASCII, counting positions by character", () => {
      assertRejected("FETC？", /non-ASCII character "？" \(U\+FF1F\) at position 5/);
      assertRejected("é", /U\+00E9 at position 1|"é" \(U\+00E9\) at position 1/);
      assertRejected("\u{1F600}\u{1F600}", /U\+1F600\) at position 1/);
      assertRejected("A\ud800B", /lone surrogate U\+D800 at position 2/);
      assertRejected("\u00a0FETC?", /U\+00A0/); // no-break space is not a space here
    });

    it("checks bad characters before trimming and length", () => {
      assertRejected(` ${"A".repeat(80)}\r`, /CR .* at position 82/);
    });

    it("untyped callers get HiokiCommandError for non-strings", () => {
      for (const bad of [undefined, null, 42, Buffer.from("FETC?")]) {
        assert.throws(() => validateHiokiCommand(bad as unknown as string), HiokiCommandError);
      }
    });

    it("encodeHiokiCommand appends CR LF", () => {
      assert.deepEqual(encodeHiokiCommand("QPID;FETC?"), Buffer.from("QPID;FETC?\r\n", "ascii"));
      assert.deepEqual(encodeHiokiCommand(" FETC? "), Buffer.from([0x46, 0x45, 0x54, 0x43, 0x3f, 0x0d, 0x0a]));
      assert.throws(() => encodeHiokiCommand("FETC?\r\n"), HiokiCommandError);
    });

    it("arbitrary strings: a printable result exactly when valid, else HiokiCommandError", () => {
      fc.assert(
        fc.property(fc.oneof(anyString, fc.string({ unit: "binary-ascii", maxLength: 100 })), (s) => {
          const trimmed = s.replace(/^ +| +$/g, "");
          const valid = /^[\x20-\x7e]*$/.test(s) && trimmed.length >= 1 && trimmed.length <= 64;
          let result: string;
          try {
            result = validateHiokiCommand(s);
          } catch (error) {
            assert.ok(error instanceof HiokiCommandError, `unexpected ${String(error)}`);
            assert.ok(!valid, `rejected ${JSON.stringify(s)}`);
            return;
          }
          assert.ok(valid, `accepted ${JSON.stringify(s)}`);
          assert.equal(result, trimmed);
          const wire = encodeHiokiCommand(s);
          assert.equal(wire.toString("latin1"), `${trimmed}\r\n`);
        }),
        { numRuns: 10000 },
      );
    });
  });
});
