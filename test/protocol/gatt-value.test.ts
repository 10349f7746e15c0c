/**
 * Value formats of the generic GATT nodes (issue 13): what a user gets in msg.payload for each read `format`, and the
 * bytes written for each write `format`, including every refusal and that no refusal carries the data.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  GATT_VALUE_ERROR_CODES,
  GattValueError,
  NUMERIC_FORMATS,
  READ_FORMATS,
  WRITE_FORMATS,
  decodeValue,
  encodeValue,
  numericWidth,
  parseHex,
  type NumericFormat,
  type ReadFormat,
  type WriteFormat,
} from "../../src/protocol/gatt-value";

const hex = (h: string): Buffer => Buffer.from(h.replace(/\s+/g, ""), "hex");

/** Asserts a GattValueError with this code and params, whose message holds none of `secret`. */
function refuses(fn: () => unknown, code: string, params?: Record<string, string | number>, secret?: string): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof GattValueError, `expected GattValueError, got ${String(error)}`);
    assert.equal(error.code, code);
    assert.ok((GATT_VALUE_ERROR_CODES as readonly string[]).includes(code), `${code} is not in GATT_VALUE_ERROR_CODES (the catalog's list)`);
    if (params) assert.deepEqual(error.params, params);
    if (secret) {
      assert.ok(!error.message.includes(secret), `message echoes the data: ${error.message}`);
      assert.ok(!JSON.stringify(error.params).includes(secret), `params echo the data: ${JSON.stringify(error.params)}`);
    }
    return true;
  });
}

describe("GATT value formats (issue 13)", () => {
  it("lists the formats of the contract: read = buffer, utf8, hex, 12 numeric, sig; write = auto, utf8, hex, 12 numeric", () => {
    assert.deepEqual([...NUMERIC_FORMATS], [
      "uint8", "int8", "uint16le", "int16le", "uint32le", "int32le", "float32le", "uint16be", "int16be", "uint32be", "int32be", "float32be",
    ]);
    assert.deepEqual([...READ_FORMATS], ["buffer", "utf8", "hex", ...NUMERIC_FORMATS, "sig"]);
    assert.deepEqual([...WRITE_FORMATS], ["auto", "utf8", "hex", ...NUMERIC_FORMATS]);
  });

  describe("decodeValue", () => {
    it("buffer: a copy of the bytes (changing it leaves the value alone)", () => {
      const value = hex("00ff10");
      const out = decodeValue("buffer", value, "2a19") as Buffer;
      assert.ok(Buffer.isBuffer(out));
      assert.deepEqual(out, hex("00ff10"));
      out[0] = 9;
      assert.equal(value[0], 0);
    });

    it("utf8: the text, with multi-byte characters; a broken sequence becomes U+FFFD, never an error", () => {
      assert.equal(decodeValue("utf8", Buffer.from("Env Sensor °C", "utf8"), "2a00"), "Env Sensor °C");
      assert.equal(decodeValue("utf8", hex("41c3"), "2a00"), "A\ufffd");
    });

    it("hex: lowercase digits without separators; empty value → empty text", () => {
      assert.equal(decodeValue("hex", hex("0A1bFF"), "2a19"), "0a1bff");
      assert.equal(decodeValue("hex", Buffer.alloc(0), "2a19"), "");
    });

    const examples: [NumericFormat, string, number][] = [
      ["uint8", "ff", 255],
      ["int8", "ff", -1],
      ["uint16le", "3412", 0x1234],
      ["int16le", "00 80", -32768],
      ["uint32le", "78563412", 0x12345678],
      ["int32le", "feffffff", -2],
      ["float32le", "0000c03f", 1.5],
      ["uint16be", "1234", 0x1234],
      ["int16be", "ff fe", -2],
      ["uint32be", "12345678", 0x12345678],
      ["int32be", "80000000", -2147483648],
      ["float32be", "3fc00000", 1.5],
    ];
    for (const [format, bytes, expected] of examples) {
      it(`${format}: ${bytes} → ${expected}`, () => {
        assert.equal(decodeValue(format, hex(bytes), "2a19"), expected);
      });
    }

    it("a numeric format needs exactly its width: shorter and longer values are refused with format, expected and received", () => {
      for (const format of NUMERIC_FORMATS) {
        const width = numericWidth(format);
        for (const length of [0, width - 1, width + 1, width + 7]) {
          if (length < 0 || length === width) continue;
          const value = Buffer.alloc(length, 0x5a);
          refuses(() => decodeValue(format, value, "2a19"), "wrong-length", { format, expected: width, received: length }, value.toString("hex"));
        }
      }
    });

    it("sig: decodes by the characteristic (any UUID spelling) and refuses a characteristic without a decoder", () => {
      assert.equal(decodeValue("sig", hex("64"), "2a19"), 100);
      assert.equal(decodeValue("sig", hex("64"), "00002A19-0000-1000-8000-00805F9B34FB"), 100);
      refuses(() => decodeValue("sig", hex("64"), "2a00"), "sig-unknown", { characteristic: "2a00" });
    });

    it("an unknown format (untyped configuration) is refused by name", () => {
      refuses(() => decodeValue("int64le" as ReadFormat, hex("00"), "2a19"), "unknown-format", { format: "int64le" });
    });

    it("property: every numeric format reads back what Node's Buffer wrote, for every value of its width", () => {
      fc.assert(
        fc.property(fc.constantFrom(...NUMERIC_FORMATS), fc.uint8Array({ minLength: 4, maxLength: 4 }), (format, bytes) => {
          const value = Buffer.from(bytes).subarray(0, numericWidth(format));
          const out = decodeValue(format, value, "2a19") as number;
          const reread = format.startsWith("float")
            ? (format.endsWith("le") ? value.readFloatLE(0) : value.readFloatBE(0))
            : value.length === 1
              ? (format === "int8" ? value.readInt8(0) : value.readUInt8(0))
              : format.startsWith("int")
                ? (format.endsWith("le") ? value.readIntLE(0, value.length) : value.readIntBE(0, value.length))
                : (format.endsWith("le") ? value.readUIntLE(0, value.length) : value.readUIntBE(0, value.length));
          assert.ok(Object.is(out, reread), `${format} ${value.toString("hex")}: ${out} vs ${reread}`);
        }),
      );
    });
  });

  describe("encodeValue", () => {
    it("auto: a Buffer, a Uint8Array, a string as UTF-8, an array of byte values, a Buffer through JSON", () => {
      assert.deepEqual(encodeValue("auto", hex("01ff")), hex("01ff"));
      assert.deepEqual(encodeValue("auto", Uint8Array.of(1, 2)), hex("0102"));
      assert.deepEqual(encodeValue("auto", "*IDN?\n"), Buffer.from("*IDN?\n"));
      assert.deepEqual(encodeValue("auto", "°"), hex("c2b0"));
      assert.deepEqual(encodeValue("auto", [0, 127, 255]), hex("007fff"));
      assert.deepEqual(encodeValue("auto", []), Buffer.alloc(0));
      assert.deepEqual(encodeValue("auto", JSON.parse(JSON.stringify(hex("0d0a")))), hex("0d0a"));
    });

    it("auto: the bytes are a copy (a later change to the payload does not change what is written)", () => {
      const payload = hex("0102");
      const out = encodeValue("auto", payload);
      payload[0] = 9;
      assert.deepEqual(out, hex("0102"));
    });

    it("auto: a number is refused with its own code (its width is unknown)", () => {
      refuses(() => encodeValue("auto", 42), "auto-number", {});
      refuses(() => encodeValue("auto", 1.5), "auto-number", {});
    });

    it("auto: an array with anything but integers 0..255 is refused at the first bad index", () => {
      refuses(() => encodeValue("auto", [1, 256]), "bad-byte", { index: 1 });
      refuses(() => encodeValue("auto", [-1]), "bad-byte", { index: 0 });
      refuses(() => encodeValue("auto", [1, 2, 1.5]), "bad-byte", { index: 2 });
      refuses(() => encodeValue("auto", [1, "2"]), "bad-byte", { index: 1 });
      refuses(() => encodeValue("auto", [null]), "bad-byte", { index: 0 });
      refuses(() => encodeValue("auto", { type: "Buffer", data: [1, 300] }), "bad-byte", { index: 1 });
    });

    it("auto: other payload types are refused with the type's name only", () => {
      for (const [payload, got] of [[null, "null"], [undefined, "undefined"], [true, "boolean"], [{ a: "secret" }, "object"]] as const) {
        refuses(() => encodeValue("auto", payload), "payload-type", { format: "auto", expected: "Buffer, string or array of bytes", got }, "secret");
      }
    });

    it("utf8: a string as UTF-8; anything else refused", () => {
      assert.deepEqual(encodeValue("utf8", "AT+RST\r\n"), Buffer.from("AT+RST\r\n"));
      refuses(() => encodeValue("utf8", 5), "payload-type", { format: "utf8", expected: "string", got: "number" });
      refuses(() => encodeValue("utf8", hex("00")), "payload-type", { format: "utf8", expected: "string", got: "Buffer" });
    });

    it("hex: digits in either case, with an optional 0x and spaces, colons, dashes or commas between them", () => {
      for (const text of ["0a1bff", "0A1BFF", "0a 1b ff", "0a:1b:ff", "0a-1b-ff", "0a,1b,ff", "0x0a1bff", " 0X0A 1B FF ", "0a1 bff"]) {
        assert.deepEqual(encodeValue("hex", text), hex("0a1bff"), text);
      }
      assert.deepEqual(encodeValue("hex", ""), Buffer.alloc(0));
    });

    it("hex: an odd number of digits or a non-hex character is refused (count or position, never the text)", () => {
      refuses(() => encodeValue("hex", "abc"), "hex-odd-length", { digits: 3 });
      refuses(() => encodeValue("hex", "0x1"), "hex-odd-length", { digits: 1 });
      refuses(() => encodeValue("hex", "12 zz"), "hex-bad-digit", { position: 3 }, "zz");
      refuses(() => encodeValue("hex", "0x0g"), "hex-bad-digit", { position: 3 });
      refuses(() => encodeValue("hex", 12), "payload-type", { format: "hex", expected: "string", got: "number" });
    });

    it("integer formats: the value in range, little- or big-endian", () => {
      assert.deepEqual(encodeValue("uint8", 255), hex("ff"));
      assert.deepEqual(encodeValue("int8", -128), hex("80"));
      assert.deepEqual(encodeValue("uint16le", 0x1234), hex("3412"));
      assert.deepEqual(encodeValue("uint16be", 0x1234), hex("1234"));
      assert.deepEqual(encodeValue("int16le", -2), hex("feff"));
      assert.deepEqual(encodeValue("int16be", -2), hex("fffe"));
      assert.deepEqual(encodeValue("uint32le", 0xffffffff), hex("ffffffff"));
      assert.deepEqual(encodeValue("uint32be", 0x01020304), hex("01020304"));
      assert.deepEqual(encodeValue("int32le", -2147483648), hex("00000080"));
      assert.deepEqual(encodeValue("int32be", 2147483647), hex("7fffffff"));
    });

    it("float formats: 4 bytes IEEE 754", () => {
      assert.deepEqual(encodeValue("float32le", 1.5), hex("0000c03f"));
      assert.deepEqual(encodeValue("float32be", -2), hex("c0000000"));
    });

    it("integer formats refuse a value out of range (naming the range) and a non-integer", () => {
      refuses(() => encodeValue("uint8", 256), "out-of-range", { format: "uint8", min: 0, max: 255 });
      refuses(() => encodeValue("uint8", -1), "out-of-range", { format: "uint8", min: 0, max: 255 });
      refuses(() => encodeValue("int8", 128), "out-of-range", { format: "int8", min: -128, max: 127 });
      refuses(() => encodeValue("int16be", -32769), "out-of-range", { format: "int16be", min: -32768, max: 32767 });
      refuses(() => encodeValue("uint32le", 2 ** 32), "out-of-range", { format: "uint32le", min: 0, max: 4294967295 });
      refuses(() => encodeValue("uint16le", 1.5), "not-integer", { format: "uint16le" });
    });

    it("numeric formats refuse NaN, infinities, non-numbers and floats beyond float32", () => {
      refuses(() => encodeValue("float32le", NaN), "not-finite", { format: "float32le" });
      refuses(() => encodeValue("int32le", Infinity), "not-finite", { format: "int32le" });
      refuses(() => encodeValue("float32be", 1e39), "out-of-range");
      refuses(() => encodeValue("uint8", "5"), "payload-type", { format: "uint8", expected: "number", got: "string" });
    });

    it("an unknown format is refused by name", () => {
      refuses(() => encodeValue("int64le" as WriteFormat, 1), "unknown-format", { format: "int64le" });
    });

    it("property: every numeric format round-trips every integer of its range (and float32 values exactly)", () => {
      const ranges: Record<NumericFormat, fc.Arbitrary<number>> = {
        uint8: fc.integer({ min: 0, max: 0xff }),
        int8: fc.integer({ min: -0x80, max: 0x7f }),
        uint16le: fc.integer({ min: 0, max: 0xffff }),
        int16le: fc.integer({ min: -0x8000, max: 0x7fff }),
        uint32le: fc.integer({ min: 0, max: 0xffffffff }),
        int32le: fc.integer({ min: -0x80000000, max: 0x7fffffff }),
        float32le: fc.float({ noNaN: true, noDefaultInfinity: true }),
        uint16be: fc.integer({ min: 0, max: 0xffff }),
        int16be: fc.integer({ min: -0x8000, max: 0x7fff }),
        uint32be: fc.integer({ min: 0, max: 0xffffffff }),
        int32be: fc.integer({ min: -0x80000000, max: 0x7fffffff }),
        float32be: fc.float({ noNaN: true, noDefaultInfinity: true }),
      };
      for (const format of NUMERIC_FORMATS) {
        fc.assert(
          fc.property(ranges[format], (n) => {
            const bytes = encodeValue(format, n);
            assert.equal(bytes.length, numericWidth(format));
            assert.ok(Object.is(decodeValue(format, bytes, "2a19"), n));
          }),
          { numRuns: 200 },
        );
      }
    });

    it("property: auto and hex round-trip any bytes (array, Buffer, hex text in any separator style)", () => {
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 64 }), fc.constantFrom("", " ", ":", "-"), fc.boolean(), (bytes, sep, upper) => {
          const b = Buffer.from(bytes);
          assert.deepEqual(encodeValue("auto", Array.from(bytes)), b);
          assert.deepEqual(encodeValue("auto", b), b);
          let text = Array.from(bytes, (x) => x.toString(16).padStart(2, "0")).join(sep);
          if (upper) text = text.toUpperCase();
          assert.deepEqual(encodeValue("hex", text), b);
          assert.equal(decodeValue("hex", b, "2a19"), b.toString("hex"));
        }),
      );
    });

    it("property: any payload in any write format gives bytes or a GattValueError, nothing else", () => {
      fc.assert(
        fc.property(fc.constantFrom(...WRITE_FORMATS), fc.anything(), (format, payload) => {
          try {
            assert.ok(Buffer.isBuffer(encodeValue(format, payload)));
          } catch (error) {
            assert.ok(error instanceof GattValueError, `unexpected ${String(error)}`);
            assert.ok((GATT_VALUE_ERROR_CODES as readonly string[]).includes(error.code), error.code);
          }
        }),
        { numRuns: 2000 },
      );
    });

    it("parseHex is encodeValue('hex')'s parser: the same rules", () => {
      assert.deepEqual(parseHex("de:ad be-ef"), hex("deadbeef"));
      assert.deepEqual(parseHex("0x"), Buffer.alloc(0));
      refuses(() => parseHex("0x 1 2 3"), "hex-odd-length", { digits: 3 });
    });
  });
});
