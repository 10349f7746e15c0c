/**
 * Names and suggested formats for the explorer (issue 13): the SIG names of common services, characteristics and
 * descriptors, the Nordic UART Service by its 128-bit UUIDs, any UUID spelling, and the format the explorer offers.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { gattName, suggestedFormat } from "../../src/protocol/gatt-names";
import { READ_FORMATS } from "../../src/protocol/gatt-value";
import { NUS_RX, NUS_SERVICE, NUS_TX } from "../../src/protocol/nus";
import { SIG_CHARACTERISTICS } from "../../src/protocol/sig-decoders";

describe("GATT names and suggested formats (issue 13)", () => {
  it("names the common services", () => {
    const expected: Record<string, string> = {
      "1800": "Generic Access",
      "1801": "Generic Attribute",
      "1809": "Health Thermometer",
      "180a": "Device Information",
      "180d": "Heart Rate",
      "180f": "Battery",
      "1810": "Blood Pressure",
      "1816": "Cycling Speed and Cadence",
      "1818": "Cycling Power",
      "181a": "Environmental Sensing",
      "181d": "Weight Scale",
    };
    for (const [uuid, name] of Object.entries(expected)) assert.equal(gattName(uuid), name, uuid);
  });

  it("names the common characteristics, including every one with a sig decoder", () => {
    const expected: Record<string, string> = {
      "2a00": "Device Name",
      "2a01": "Appearance",
      "2a19": "Battery Level",
      "2a1c": "Temperature Measurement",
      "2a24": "Model Number String",
      "2a25": "Serial Number String",
      "2a26": "Firmware Revision String",
      "2a27": "Hardware Revision String",
      "2a28": "Software Revision String",
      "2a29": "Manufacturer Name String",
      "2a35": "Blood Pressure Measurement",
      "2a37": "Heart Rate Measurement",
      "2a38": "Body Sensor Location",
      "2a5b": "CSC Measurement",
      "2a63": "Cycling Power Measurement",
      "2a6d": "Pressure",
      "2a6e": "Temperature",
      "2a6f": "Humidity",
      "2a9d": "Weight Measurement",
    };
    for (const [uuid, name] of Object.entries(expected)) assert.equal(gattName(uuid), name, uuid);
    for (const c of SIG_CHARACTERISTICS) assert.notEqual(gattName(c), null, c);
  });

  it("names the descriptors the explorer shows most", () => {
    assert.equal(gattName("2902"), "Client Characteristic Configuration");
    assert.equal(gattName("2901"), "Characteristic User Description");
    assert.equal(gattName("2904"), "Characteristic Presentation Format");
  });

  it("names the Nordic UART Service and its RX/TX characteristics by their 128-bit UUIDs, in any spelling", () => {
    assert.equal(gattName(NUS_SERVICE), "Nordic UART Service");
    assert.equal(gattName(NUS_RX), "Nordic UART RX");
    assert.equal(gattName(NUS_TX), "Nordic UART TX");
    assert.equal(gattName(NUS_TX.toUpperCase().replace(/-/g, "")), "Nordic UART TX");
  });

  it("accepts every UUID spelling (0x, upper case, the full Base UUID form)", () => {
    for (const s of ["180F", "0x180f", "0000180f-0000-1000-8000-00805f9b34fb", "0000180F00001000800000805F9B34FB"]) assert.equal(gattName(s), "Battery", s);
  });

  it("unknown UUIDs and non-UUIDs are null, never an error", () => {
    assert.equal(gattName("ffe0"), null);
    assert.equal(gattName("12345678-1234-5678-1234-56789abcdef0"), null);
    assert.equal(gattName("battery"), null);
    assert.equal(gattName(""), null);
    assert.equal(gattName("constructor"), null);
    assert.equal(gattName("__proto__"), null);
  });

  describe("suggestedFormat", () => {
    it("sig for every characteristic with a decoder", () => {
      for (const c of SIG_CHARACTERISTICS) assert.equal(suggestedFormat(c, ["read", "notify"]), "sig", c);
      assert.equal(suggestedFormat("0x2A37", ["notify"]), "sig");
      assert.equal(suggestedFormat("2a35", ["indicate"]), "sig");
    });

    it("utf8 for the Device Name and the Device Information strings 2a24-2a29", () => {
      for (const c of ["2a00", "2a24", "2a25", "2a26", "2a27", "2a28", "2a29"]) assert.equal(suggestedFormat(c, ["read"]), "utf8", c);
    });

    it("buffer for anything else: other SIG characteristics, vendor UUIDs, NUS, non-UUIDs", () => {
      assert.equal(suggestedFormat("2a01", ["read"]), "buffer");
      assert.equal(suggestedFormat("2a38", ["read"]), "buffer");
      assert.equal(suggestedFormat(NUS_TX, ["notify"]), "buffer");
      assert.equal(suggestedFormat("ffe1", ["read", "notify"]), "buffer");
      assert.equal(suggestedFormat("nonsense", ["read"]), "buffer");
    });

    it("buffer for a characteristic that can be neither read, notified nor indicated (a read format means nothing there)", () => {
      assert.equal(suggestedFormat("2a19", ["write"]), "buffer");
      assert.equal(suggestedFormat("2a29", []), "buffer");
    });

    it("property: always one of the read formats, never an error, for any text and properties", () => {
      fc.assert(
        fc.property(fc.string(), fc.array(fc.constantFrom("read", "write", "writeWithoutResponse", "notify", "indicate", "broadcast")), (uuid, props) => {
          assert.ok((READ_FORMATS as readonly string[]).includes(suggestedFormat(uuid, props)));
          const name = gattName(uuid);
          assert.ok(name === null || typeof name === "string");
        }),
      );
    });
  });
});
