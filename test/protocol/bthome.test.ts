import assert from "node:assert/strict";
import { createCipheriv } from "node:crypto";
import fc from "fast-check";
import { AdvertisementError, type AdvertisementErrorCode } from "../../src/protocol/advertisement-error";
import { bindKeyLookup, parseBindKeys, ReplayGuard } from "../../src/protocol/bind-keys";
import { decodeBthome } from "../../src/protocol/bthome";

const hex = (text: string): Buffer => Buffer.from(text.replace(/\s+/g, ""), "hex");
const plain = (objects: string): Buffer => hex(`40 ${objects}`);
const ADDRESS = "a4:c1:38:00:00:01";
/** Five one-byte objects of the specification's table (values 0..127 here, so signed and unsigned agree). */
const ONE_BYTE_OBJECTS: Record<number, (value: number) => [string, number]> = {
  0x01: (v) => ["battery", v],
  0x2e: (v) => ["humidity", v],
  0x2f: (v) => ["moisture", v],
  0x46: (v) => ["uvIndex", v / 10],
  0x57: (v) => ["temperature", v],
};

function throwsCode(fn: () => unknown, code: AdvertisementErrorCode, params: Record<string, string | number>): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof AdvertisementError, `expected AdvertisementError, got ${String(error)}`);
    assert.equal(error.code, code);
    assert.deepEqual(error.params, params);
    return true;
  });
}

/*
 * Every example of the object tables of the BTHome v2 specification, https://bthome.io/format (source:
 * github.com/home-assistant/bthome.io src/format.html at 0cf388b, 2026-04-30): the "Example" column (object id and
 * value bytes) and its "Result", under our name for the property (bthome-objects.ts explains the names).
 */
const SPEC_EXAMPLES: [example: string, name: string, value: unknown][] = [
  ["518756", "acceleration", 22.151],
  ["630057D0FF", "acceleration", -3.123456],
  ["0161", "battery", 97],
  ["6001", "channel", 1],
  ["12E204", "co2", 1250],
  ["56E803", "conductivity", 1000],
  ["0960", "count", 96],
  ["3D0960", "count", 24585],
  ["3E2A2C0960", "count", 1611213866],
  ["59EA", "count", -22],
  ["5AEAEA", "count", -5398],
  ["5BEA0234EA", "count", -365690134],
  ["434E34", "current", 13.39],
  ["5D02EA", "current", -5.63],
  ["08CA06", "dewpoint", 17.38],
  ["5E9F8C", "direction", 359.99],
  ["400C00", "distanceMm", 12],
  ["414E00", "distanceM", 7.8],
  ["424E3400", "duration", 13.39],
  ["4d12138a14", "energy", 344593.17],
  ["0A138A14", "energy", 1346.067],
  ["4B138A14", "gas", 1346.067],
  ["4C41018A01", "gas", 25821.505],
  ["528756", "gyroscope", 22.151],
  ["03BF13", "humidity", 50.55],
  ["2E23", "humidity", 35],
  ["05138A14", "illuminance", 13460.67],
  ["6402", "lightLevel", 2],
  ["065E1F", "massKg", 80.3],
  ["073E1D", "massLb", 74.86],
  ["14020C", "moisture", 30.74],
  ["2F23", "moisture", 35],
  ["0D120C", "pm25", 3090],
  ["0E021C", "pm10", 7170],
  ["0B021B00", "power", 69.14],
  ["5C02FBFFFF", "power", -12.78],
  ["5FA00F", "precipitation", 400],
  ["04138A01", "pressure", 1008.83],
  ["540C48656C6C6F20576F726C6421", "raw", "48656c6c6f20576f726c6421"],
  ["3F020C", "rotation", 307.4],
  ["61AC0D", "rotationalSpeed", 3500],
  ["6503", "settingsRevision", 3],
  ["444E34", "speed", 133.9],
  ["624099DFFF", "speed", -2.123456],
  ["57EA", "temperature", -22],
  ["58EA", "temperature", -7.7],
  ["451101", "temperature", 27.3],
  ["02CA09", "temperature", 25.06],
  ["530C48656C6C6F20576F726C6421", "text", "Hello World!"],
  ["505d396164", "timestamp", "2023-05-14T19:41:17.000Z"],
  ["133301", "tvoc", 307],
  ["0C020C", "voltage", 3.074],
  ["4A020C", "voltage", 307.4],
  ["4E87562A01", "volume", 19551.879],
  ["478756", "volume", 2215.1],
  ["48DC87", "volumeMl", 34780],
  ["5587562A01", "volumeStorage", 19551.879],
  ["49DC87", "volumeFlowRate", 34.78],
  ["4632", "uvIndex", 5],
  ["4F87562A01", "water", 19551.879],
  // Binary sensors: 1 → true, 0 → false.
  ["1501", "batteryLow", true],
  ["1601", "batteryCharging", true],
  ["1700", "carbonMonoxide", false],
  ["1801", "cold", true],
  ["1900", "connectivity", false],
  ["1A00", "door", false],
  ["1B01", "garageDoor", true],
  ["1C01", "gasDetected", true],
  ["0F01", "genericBoolean", true],
  ["1D00", "heat", false],
  ["1E01", "light", true],
  ["1F01", "lock", true],
  ["2001", "moistureDetected", true],
  ["2100", "motion", false],
  ["2201", "moving", true],
  ["2301", "occupancy", true],
  ["1100", "opening", false],
  ["2400", "plug", false],
  ["1001", "powerOn", true],
  ["2500", "presence", false],
  ["2601", "problem", true],
  ["2701", "running", true],
  ["2800", "safety", false],
  ["2901", "smoke", true],
  ["2A00", "sound", false],
  ["2B00", "tamper", false],
  ["2C01", "vibration", true],
  ["2D01", "window", true],
  // Events.
  ["3A00", "button", "none"],
  ["3A01", "button", "press"],
  ["3A02", "button", "double_press"],
  ["3A03", "button", "triple_press"],
  ["3A04", "button", "long_press"],
  ["3A05", "button", "long_double_press"],
  ["3A06", "button", "long_triple_press"],
  ["3A80", "button", "hold_press"],
  ["3B0000", "command", { command: "off", opcode: 0, arguments: "" }],
  ["3B0001", "command", { command: "on", opcode: 1, arguments: "" }],
  ["3B0002", "command", { command: "toggle", opcode: 2, arguments: "" }],
  ["3B010305", "command", { command: "step_up", opcode: 3, arguments: "05" }],
  ["3B010405", "command", { command: "step_down", opcode: 4, arguments: "05" }],
  ["3C0000", "dimmer", { event: "none", steps: 0 }],
  ["3C0103", "dimmer", { event: "rotate_left", steps: 3 }],
  ["3C020A", "dimmer", { event: "rotate_right", steps: 10 }],
  // Device information and packet id.
  ["F00100", "deviceTypeId", 1],
  ["F100010204", "firmwareVersion", "4.2.1.0"],
  ["F2000106", "firmwareVersion", "6.1.0"],
  ["0009", "packetId", 9],
];

describe("BTHome v2 (service data of fcd2)", () => {
  describe("the specification's object examples", () => {
    for (const [example, name, value] of SPEC_EXAMPLES) {
      it(`${example} → ${name}: ${JSON.stringify(value)}`, () => {
        assert.deepEqual(decodeBthome(ADDRESS, plain(example)), { type: "bthome", encrypted: false, triggerBased: false, [name]: value });
      });
    }
  });

  it("decodes the specification's advertisement example D2FC 40 02C409 03BF13: 25.00 °C, 50.55 %", () => {
    assert.deepEqual(decodeBthome(ADDRESS, hex("40 02C409 03BF13")), {
      type: "bthome",
      encrypted: false,
      triggerBased: false,
      temperature: 25,
      humidity: 50.55,
    });
  });

  it("reads the trigger-based flag (bit 2) of the device information byte", () => {
    assert.equal(decodeBthome(ADDRESS, hex("44 3A01")).triggerBased, true);
    assert.equal(decodeBthome(ADDRESS, hex("40 3A01")).triggerBased, false);
  });

  it("makes an array of a name that occurs more than once, in advertised order (the specification's 3A003A01 too)", () => {
    const decoded = decodeBthome(ADDRESS, plain("02CA09 02C409 451101 03BF13 3A00 3A01 0009 000A"));
    assert.deepEqual(decoded, {
      type: "bthome",
      encrypted: false,
      triggerBased: false,
      temperature: [25.06, 25, 27.3],
      humidity: 50.55,
      button: ["none", "press"],
      packetId: 9,
    });
  });

  it("stops at an unknown object id (its length is unknown): what came before, and incomplete: true", () => {
    assert.deepEqual(decodeBthome(ADDRESS, plain("0161 FE 02CA09")), {
      type: "bthome",
      encrypted: false,
      triggerBased: false,
      battery: 97,
      incomplete: true,
    });
  });

  it("stops at a value cut short by the end of the data, never reading past it, even for a length byte", () => {
    assert.deepEqual(decodeBthome(ADDRESS, plain("0161 02CA")), { type: "bthome", encrypted: false, triggerBased: false, battery: 97, incomplete: true });
    // A text object whose length byte claims 255 bytes, with 2 left.
    assert.deepEqual(decodeBthome(ADDRESS, plain("0161 53FF 4142")), { type: "bthome", encrypted: false, triggerBased: false, battery: 97, incomplete: true });
    // A command whose length byte claims 31 argument bytes, with 1 left.
    assert.deepEqual(decodeBthome(ADDRESS, plain("3B1F0305")), { type: "bthome", encrypted: false, triggerBased: false, incomplete: true });
  });

  it("an advertisement with no objects is a bthome result with nothing in it", () => {
    assert.deepEqual(decodeBthome(ADDRESS, hex("40")), { type: "bthome", encrypted: false, triggerBased: false });
  });

  it("refuses a version other than 2 and empty service data, naming the device", () => {
    throwsCode(() => decodeBthome(ADDRESS, hex("20 02CA09")), "bthome-version", { address: ADDRESS, version: 1 });
    throwsCode(() => decodeBthome(ADDRESS, hex("60 02CA09")), "bthome-version", { address: ADDRESS, version: 3 });
    throwsCode(() => decodeBthome(ADDRESS, Buffer.alloc(0)), "bthome-malformed", { address: ADDRESS });
  });

  describe("encryption (AES-CCM)", () => {
    /*
     * The BTHome specification's encryption example, https://bthome.io/encryption (source: github.com/home-assistant/
     * bthome.io src/encryption.html at 0cf388b): key 231d39c1d7cc1ab1aee224cd096db932, MAC 5448E68F80A5, plaintext
     * 02CA09 03BF13, counter 1122867 (33221100 little-endian), device information 0x41; its published service data is
     * d2fc 41 e445f3c9962b 33221100 6c7c4519 (UUID, device information, ciphertext, counter, MIC).
     */
    const SPEC_KEY = "231d39c1d7cc1ab1aee224cd096db932";
    const SPEC_ADDRESS = "54:48:e6:8f:80:a5";
    const SPEC_SERVICE_DATA = hex("41 e445f3c9962b 33221100 6c7c4519");
    const keys = parseBindKeys(`54:48:E6:8F:80:A5 = ${SPEC_KEY}`);

    it("decrypts the specification's example to its plaintext: 25.06 °C, 50.55 %", () => {
      assert.deepEqual(decodeBthome(SPEC_ADDRESS, SPEC_SERVICE_DATA, bindKeyLookup(keys), new ReplayGuard()), {
        type: "bthome",
        encrypted: true,
        triggerBased: false,
        temperature: 25.06,
        humidity: 50.55,
      });
    });

    it("a wrong key, another address (the nonce) or one altered byte: bthome-decrypt naming the device", () => {
      const wrongKey = () => Buffer.from("00112233445566778899aabbccddeeff", "hex");
      throwsCode(() => decodeBthome(SPEC_ADDRESS, SPEC_SERVICE_DATA, wrongKey), "bthome-decrypt", { address: SPEC_ADDRESS });
      throwsCode(() => decodeBthome("54:48:e6:8f:80:a6", SPEC_SERVICE_DATA, () => hex(SPEC_KEY)), "bthome-decrypt", { address: "54:48:e6:8f:80:a6" });
      for (let i = 1; i < SPEC_SERVICE_DATA.length; i++) {
        const altered = Buffer.from(SPEC_SERVICE_DATA);
        altered[i] ^= 0x01;
        throwsCode(() => decodeBthome(SPEC_ADDRESS, altered, bindKeyLookup(keys)), "bthome-decrypt", { address: SPEC_ADDRESS });
      }
    });

    it("a key that is not 16 bytes, or an address that is no MAC (no nonce), is bthome-decrypt, not a crypto error", () => {
      throwsCode(() => decodeBthome(SPEC_ADDRESS, SPEC_SERVICE_DATA, () => hex(SPEC_KEY).subarray(0, 15)), "bthome-decrypt", { address: SPEC_ADDRESS });
      throwsCode(() => decodeBthome("unknown", SPEC_SERVICE_DATA, () => hex(SPEC_KEY)), "bthome-decrypt", { address: "unknown" });
    });

    it("the error never carries the key or the bytes", () => {
      try {
        decodeBthome(SPEC_ADDRESS, SPEC_SERVICE_DATA, () => hex("ffeeddccbbaa99887766554433221100"));
        assert.fail("decrypted with a wrong key");
      } catch (error) {
        assert.ok(error instanceof AdvertisementError);
        const text = `${error.message} ${JSON.stringify(error.params)}`;
        assert.ok(!/ffeeddcc|e445f3c9|6c7c4519/i.test(text), text);
      }
    });

    it("an encrypted advertisement from a device without a key: bthome-no-key", () => {
      throwsCode(() => decodeBthome(SPEC_ADDRESS, SPEC_SERVICE_DATA), "bthome-no-key", { address: SPEC_ADDRESS });
      throwsCode(() => decodeBthome(SPEC_ADDRESS, SPEC_SERVICE_DATA, () => undefined), "bthome-no-key", { address: SPEC_ADDRESS });
    });

    it("an unencrypted advertisement from a device that has a key is refused: anyone can send one with its address", () => {
      throwsCode(() => decodeBthome(SPEC_ADDRESS, hex("40 02CA09"), bindKeyLookup(keys)), "bthome-unencrypted", { address: SPEC_ADDRESS });
    });

    it("shorter than counter + MIC: bthome-malformed, before any decryption", () => {
      throwsCode(() => decodeBthome(SPEC_ADDRESS, hex("41 33221100 6c7c45"), bindKeyLookup(keys)), "bthome-malformed", { address: SPEC_ADDRESS });
    });

    it("replay guard: the same counter again, or a lower one, is bthome-replay; a higher one passes", () => {
      const guard = new ReplayGuard();
      const lookup = bindKeyLookup(keys);
      const at = (counter: number) => encryptBthome(hex("02CA09"), hex(SPEC_KEY), SPEC_ADDRESS, counter);
      assert.equal(decodeBthome(SPEC_ADDRESS, at(10), lookup, guard).temperature, 25.06);
      throwsCode(() => decodeBthome(SPEC_ADDRESS, at(10), lookup, guard), "bthome-replay", { address: SPEC_ADDRESS });
      throwsCode(() => decodeBthome(SPEC_ADDRESS, at(9), lookup, guard), "bthome-replay", { address: SPEC_ADDRESS });
      assert.equal(decodeBthome(SPEC_ADDRESS, at(11), lookup, guard).temperature, 25.06);
      // A forged packet with a higher counter fails its MIC and does not move the counter.
      const forged = at(1000);
      forged[1] ^= 0xff;
      throwsCode(() => decodeBthome(SPEC_ADDRESS, forged, lookup, guard), "bthome-decrypt", { address: SPEC_ADDRESS });
      assert.equal(guard.lastCounter(SPEC_ADDRESS), 11);
      assert.equal(decodeBthome(SPEC_ADDRESS, at(12), lookup, guard).temperature, 25.06);
    });

    it("round-trips any objects at any counter through AES-CCM with the spec's nonce layout (10,000 cases)", () => {
      fc.assert(
        fc.property(
          fc.uint8Array({ minLength: 16, maxLength: 16 }),
          fc.uint8Array({ minLength: 6, maxLength: 6 }),
          fc.nat({ max: 0xffffffff }),
          fc.array(fc.tuple(fc.constantFrom(0x01, 0x2e, 0x2f, 0x46, 0x57), fc.integer({ min: 0, max: 0x7f })), { maxLength: 6 }),
          (key, mac, counter, objects) => {
            const address = Buffer.from(mac).toString("hex").replace(/(..)(?!$)/g, "$1:");
            const body = Buffer.from(objects.flat());
            const decoded = decodeBthome(address, encryptBthome(body, Buffer.from(key), address, counter), () => Buffer.from(key));
            const expected: Record<string, unknown> = { type: "bthome", encrypted: true, triggerBased: false };
            for (const [id, value] of objects) {
              const [name, v] = ONE_BYTE_OBJECTS[id](value);
              const before = expected[name];
              expected[name] = before === undefined ? v : Array.isArray(before) ? [...before, v] : [before, v];
            }
            assert.deepEqual(decoded, expected);
          },
        ),
        { numRuns: 10_000 },
      );
    });
  });

  describe("round trip of numeric objects, encoded here from the specification's table (10,000 cases)", () => {
    // id → [name, bytes, signed, factor]: the specification's "Sensor data" rows, as written on bthome.io/format.
    const TABLE: [number, string, number, boolean, number][] = [
      [0x01, "battery", 1, false, 1],
      [0x02, "temperature", 2, true, 0.01],
      [0x03, "humidity", 2, false, 0.01],
      [0x04, "pressure", 3, false, 0.01],
      [0x05, "illuminance", 3, false, 0.01],
      [0x0a, "energy", 3, false, 0.001],
      [0x0b, "power", 3, false, 0.01],
      [0x0c, "voltage", 2, false, 0.001],
      [0x12, "co2", 2, false, 1],
      [0x14, "moisture", 2, false, 0.01],
      [0x3e, "count", 4, false, 1],
      [0x3f, "rotation", 2, true, 0.1],
      [0x5b, "count", 4, true, 1],
      [0x5c, "power", 4, true, 0.01],
      [0x62, "speed", 4, true, 0.000001],
    ];
    it("every value decodes to raw × factor (to the factor's precision) under its name", () => {
      const object = fc.constantFrom(...TABLE).chain(([id, name, bytes, signed, factor]) => {
        const max = 2 ** (8 * bytes);
        const raw = signed ? fc.integer({ min: -max / 2, max: max / 2 - 1 }) : fc.integer({ min: 0, max: max - 1 });
        return raw.map((value) => ({ id, name, bytes, signed, factor, value }));
      });
      fc.assert(
        fc.property(object, ({ id, name, bytes, signed, factor, value }) => {
          const encoded = Buffer.alloc(1 + bytes);
          encoded[0] = id;
          if (signed) encoded.writeIntLE(value, 1, bytes);
          else encoded.writeUIntLE(value, 1, bytes);
          const decoded = decodeBthome(ADDRESS, Buffer.concat([hex("40"), encoded]));
          const got = decoded[name];
          assert.equal(typeof got, "number");
          const decimals = Math.max(0, -Math.floor(Math.log10(factor)));
          assert.equal((got as number).toFixed(decimals), (value * factor).toFixed(decimals));
        }),
        { numRuns: 10_000 },
      );
    });
  });
});

describe("parseBindKeys", () => {
  it("reads one address = key per line, any case, blank lines and # comments, keyed by lowercase address", () => {
    const keys = parseBindKeys(
      [
        "# kitchen and hall",
        "",
        "A4:C1:38:0A:0B:0C = 231D39C1D7CC1AB1AEE224CD096DB932",
        "  a4:c1:38:0a:0b:0d=00112233445566778899aabbccddeeff   # hall",
        "\t",
      ].join("\r\n"),
    );
    assert.deepEqual([...keys.keys()], ["a4:c1:38:0a:0b:0c", "a4:c1:38:0a:0b:0d"]);
    assert.equal(keys.get("a4:c1:38:0a:0b:0c")?.toString("hex"), "231d39c1d7cc1ab1aee224cd096db932");
    assert.equal(bindKeyLookup(keys)("A4:C1:38:0A:0B:0D")?.toString("hex"), "00112233445566778899aabbccddeeff");
    assert.equal(parseBindKeys("").size, 0);
  });

  it("names the line number of a bad line and never repeats its key", () => {
    const secret = "231d39c1d7cc1ab1aee224cd096db93";
    const cases: [string, AdvertisementErrorCode][] = [
      [`a4:c1:38:0a:0b:0c ${secret}2`, "bind-keys-syntax"],
      [`a4:c1:38:0a:0b = ${secret}2`, "bind-keys-address"],
      [`a4-c1-38-0a-0b-0c = ${secret}2`, "bind-keys-address"],
      [`a4:c1:38:0a:0b:0c = ${secret}`, "bind-keys-key"],
      [`a4:c1:38:0a:0b:0c = ${secret}g`, "bind-keys-key"],
      [`A4:C1:38:0A:0B:0C = ${secret}2`, "bind-keys-duplicate"],
    ];
    for (const [line, code] of cases) {
      const text = `# first\na4:c1:38:0a:0b:0c = ${secret}2\n${line}`;
      assert.throws(
        () => parseBindKeys(text),
        (error: unknown) => {
          assert.ok(error instanceof AdvertisementError);
          assert.equal(error.code, code, line);
          assert.deepEqual(error.params, { line: 3 });
          assert.match(error.message, /line 3/);
          assert.ok(!error.message.includes(secret), error.message);
          return true;
        },
      );
    }
  });
});

describe("ReplayGuard", () => {
  it("keeps one counter per device, any address case, and forgets the least recently seen beyond its capacity", () => {
    const guard = new ReplayGuard(2);
    assert.equal(guard.accept("AA:00:00:00:00:01", 5), true);
    assert.equal(guard.accept("aa:00:00:00:00:01", 5), false);
    assert.equal(guard.accept("aa:00:00:00:00:02", 1), true);
    assert.equal(guard.accept("aa:00:00:00:00:01", 6), true);
    assert.equal(guard.accept("aa:00:00:00:00:03", 1), true);
    assert.equal(guard.size, 2);
    // :02 was the least recently seen: forgotten, so its counter starts over; :01 is still remembered.
    assert.equal(guard.lastCounter("aa:00:00:00:00:02"), undefined);
    assert.equal(guard.accept("aa:00:00:00:00:01", 6), false);
  });
});

/** BTHome encryption written out here from https://bthome.io/encryption, independently of the decoder. */
function encryptBthome(objects: Buffer, key: Buffer, address: string, counter: number): Buffer {
  const info = 0x41;
  const counterBytes = Buffer.alloc(4);
  counterBytes.writeUInt32LE(counter);
  const nonce = Buffer.concat([Buffer.from(address.replace(/:/g, ""), "hex"), Buffer.from([0xd2, 0xfc, info]), counterBytes]);
  const cipher = createCipheriv("aes-128-ccm", key, nonce, { authTagLength: 4 });
  cipher.setAAD(Buffer.alloc(0), { plaintextLength: objects.length });
  const ciphertext = Buffer.concat([cipher.update(objects), cipher.final()]);
  return Buffer.concat([Buffer.from([info]), ciphertext, counterBytes, cipher.getAuthTag()]);
}
