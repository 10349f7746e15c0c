import assert from "node:assert/strict";
import fc from "fast-check";
import { decodeIbeacon } from "../../src/protocol/ibeacon";

const hex = (text: string): Buffer => Buffer.from(text.replace(/\s+/g, ""), "hex");

/** The iBeacon layout written out here from Apple's format, independently of the decoder: company id, type, length, fields. */
function encodeIbeacon(uuid: string, major: number, minor: number, measuredPower: number): Buffer {
  const frame = Buffer.alloc(25);
  frame.writeUInt16LE(0x004c, 0);
  frame[2] = 0x02;
  frame[3] = 0x15;
  Buffer.from(uuid.replace(/-/g, ""), "hex").copy(frame, 4);
  frame.writeUInt16BE(major, 20);
  frame.writeUInt16BE(minor, 22);
  frame.writeInt8(measuredPower, 24);
  return frame;
}

describe("iBeacon (manufacturer data of company 0x004C)", () => {
  it("decodes the published packet layout: UUID dashed lowercase, major and minor big-endian, measured power int8", () => {
    // Manufacturer data of the iBeacon packet published at https://wiki.aprbrother.com/en/iBeacon_Packet.html (bytes
    // 5–29 of its table: 4c 00 02 15, UUID b5b182c7-eab1-4988-aa99-b5c1517008d9, signal power 0xc6 = -58 dBm), with
    // major 0x0102 and minor 0xfffe filled into the two fields the page leaves to the user.
    const decoded = decodeIbeacon(hex("4c00 0215 b5b182c7eab14988aa99b5c1517008d9 0102 fffe c6"));
    assert.deepEqual(decoded, {
      type: "ibeacon",
      uuid: "b5b182c7-eab1-4988-aa99-b5c1517008d9",
      major: 258,
      minor: 65534,
      measuredPower: -58,
    });
  });

  it("is null for another company, another Apple type, another length byte, or a frame of another size", () => {
    const good = encodeIbeacon("e2c56db5-dffb-48d2-b060-d0f5a71096e0", 1, 2, -59);
    assert.notEqual(decodeIbeacon(good), null);
    const otherCompany = Buffer.from(good);
    otherCompany.writeUInt16LE(0x0059, 0);
    assert.equal(decodeIbeacon(otherCompany), null);
    const otherType = Buffer.from(good);
    otherType[2] = 0x10; // an Apple "nearby" frame, not a beacon
    assert.equal(decodeIbeacon(otherType), null);
    const otherLength = Buffer.from(good);
    otherLength[3] = 0x14;
    assert.equal(decodeIbeacon(otherLength), null);
    assert.equal(decodeIbeacon(good.subarray(0, 24)), null);
    assert.equal(decodeIbeacon(Buffer.concat([good, Buffer.from([0])])), null);
    assert.equal(decodeIbeacon(Buffer.alloc(0)), null);
  });

  it("round-trips every UUID, major, minor and measured power (10,000 cases)", () => {
    fc.assert(
      fc.property(fc.uuid(), fc.integer({ min: 0, max: 0xffff }), fc.integer({ min: 0, max: 0xffff }), fc.integer({ min: -128, max: 127 }), (uuid, major, minor, power) => {
        assert.deepEqual(decodeIbeacon(encodeIbeacon(uuid, major, minor, power)), {
          type: "ibeacon",
          uuid: uuid.toLowerCase(),
          major,
          minor,
          measuredPower: power,
        });
      }),
      { numRuns: 10_000 },
    );
  });
});
