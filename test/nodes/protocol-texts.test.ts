/**
 * Protocol errors the nodes show, worded by the nodes' catalogs from the key and parameters each error carries:
 * the same sentence as the error's English message (which the protocol tests and the logs read). One case per
 * sentence; each catalog section has no sentence without a case.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { decodeHeartRateMeasurement, HeartRateFormatError } from "../../src/protocol/heart-rate";
import { HiokiCommandError, validateHiokiCommand } from "../../src/protocol/hioki";
import { xossFileNameBytes, XossNameError } from "../../src/protocol/xoss";
import { reworded } from "../../src/red/error-text";
import { describeHeartRateFormatError } from "../../src/red/heart-rate-text";
import { translate } from "../support/red";

function thrown(f: () => unknown): unknown {
  try {
    f();
  } catch (error) {
    return error;
  }
  assert.fail("expected a throw");
}

function section(type: string, name: string): string[] {
  const catalog = JSON.parse(fs.readFileSync(path.join(__dirname, "..", "..", "nodes", "locales", "en-US", `${type}.json`), "utf8")) as Record<string, Record<string, Record<string, string>>>;
  return Object.keys(catalog[type][name]);
}

const sorted = (keys: Iterable<string>): string[] => [...new Set(keys)].sort();

describe("protocol errors in the nodes' words", () => {
  describe("hioki-meter: a command that cannot be sent (command.*)", () => {
    const t = (key: string, subs?: Record<string, string | number>): string => translate(`hioki-meter.${key}`, subs);
    const CASES: Record<string, unknown> = {
      "not-string": 42,
      "line-break": "FETC?\r\n:SYST:RST",
      "not-printable-named": "FETC?\t",
      "not-printable-control": "FE\u0001TC?",
      "not-printable-surrogate": "FETC?\ud800",
      "not-printable-non-ascii": "FETC?é",
      empty: "   ",
      "too-long": "FETC?;".repeat(11),
    };
    for (const [key, command] of Object.entries(CASES)) {
      it(`${key}: the catalog's sentence is the error's message`, () => {
        const error = thrown(() => validateHiokiCommand(command as string));
        assert.ok(error instanceof HiokiCommandError);
        assert.equal(error.key, key);
        assert.equal(t(`command.${error.key}`, error.params), error.message);
        assert.equal(reworded(error, "x").name, "HiokiCommandError", "a Catch node still reads the error's name");
      });
    }
    it("has a case for every sentence", () => assert.deepEqual(sorted(section("hioki-meter", "command")), sorted(Object.keys(CASES))));
  });

  describe("heart-rate: a malformed Heart Rate Measurement (format.*)", () => {
    const t = (key: string, subs?: Record<string, string | number>): string => translate(`heart-rate.${key}`, subs);
    const CASES: Record<string, unknown> = {
      "not-bytes": "72",
      empty: new Uint8Array(0),
      "short-uint16": Uint8Array.from([0x01, 0x48]),
      "short-uint8": Uint8Array.from([0x00]),
      "short-energy": Uint8Array.from([0x08, 0x48, 0x01]),
      "odd-rr": Uint8Array.from([0x10, 0x48, 0x01, 0x02, 0x03]),
    };
    for (const [key, value] of Object.entries(CASES)) {
      it(`${key}: the catalog's sentence is the error's message`, () => {
        const error = thrown(() => decodeHeartRateMeasurement(value as Uint8Array));
        assert.ok(error instanceof HeartRateFormatError);
        assert.equal(error.key, key);
        assert.equal(describeHeartRateFormatError(error, t), error.message);
      });
    }
    it("words a one-byte value in the singular", () => {
      const error = thrown(() => decodeHeartRateMeasurement(Uint8Array.from([0x00])));
      assert.ok(error instanceof HeartRateFormatError);
      assert.match(describeHeartRateFormatError(error, t), /\(1 byte\)$/);
    });
    it("names the field and the problem, never the received bytes (nor the flags byte)", () => {
      // Marker bytes that spell nothing in English: none of them, nor the flags, may appear in the message.
      const values = [
        Uint8Array.from([0x01, 0xc7]),
        Uint8Array.from([0xd9]),
        Uint8Array.from([0x08, 0xc7, 0xe3]),
        Uint8Array.from([0x19, 0xc7, 0xd9, 0xe3, 0xf1, 0xc7]),
      ];
      for (const value of values) {
        const error = thrown(() => decodeHeartRateMeasurement(value));
        assert.ok(error instanceof HeartRateFormatError);
        for (const text of [error.message, describeHeartRateFormatError(error, t)]) {
          assert.doesNotMatch(text, /c7|d9|e3|f1|0x/i, `${Buffer.from(value).toString("hex")}: ${text}`);
          assert.match(text, new RegExp(`\\(${value.length} bytes?\\)$`), "the length is named");
        }
      }
    });
    it("has a case for every sentence", () => {
      const parts = ["message", "value", "value-one"];
      assert.deepEqual(sorted(section("heart-rate", "format").filter((k) => !parts.includes(k))), sorted(Object.keys(CASES)));
    });
  });

  describe("nus-ymodem-receive: a file name no XOSS request can carry (xoss-name.*)", () => {
    const t = (key: string, subs?: Record<string, string | number>): string => translate(`nus-ymodem-receive.${key}`, subs);
    const CASES: Record<string, string> = { empty: "", "too-long": "a-very-long-file-name.fit", nul: "a\0b" };
    for (const [key, name] of Object.entries(CASES)) {
      it(`${key}: the catalog's sentence is the error's message`, () => {
        const error = thrown(() => xossFileNameBytes(name));
        assert.ok(error instanceof XossNameError);
        assert.ok(error instanceof RangeError);
        assert.equal(error.key, key);
        assert.equal(t(`xoss-name.${error.key}`, error.params), error.message);
      });
    }
    it("names the problem, never the name", () => {
      const error = thrown(() => xossFileNameBytes("MARKER-zq7-long-name.fit"));
      assert.ok(error instanceof XossNameError);
      for (const text of [error.message, t(`xoss-name.${error.key}`, error.params)]) {
        assert.doesNotMatch(text, /MARKER|zq7/, text);
        assert.match(text, /24 bytes.*at most 18/);
      }
    });
    it("has a case for every sentence", () => assert.deepEqual(sorted(section("nus-ymodem-receive", "xoss-name")), sorted(Object.keys(CASES))));
  });
});
