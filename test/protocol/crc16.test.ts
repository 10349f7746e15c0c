import { strict as assert } from "node:assert";
import fc from "fast-check";
import { crc16, crc16Arc, crc16Xmodem } from "../../src/protocol/crc16";

// Bit-by-bit references written from the algorithm parameters, to check the table-driven package against.
function referenceArc(data: Uint8Array): number {
  let crc = 0;
  for (const byte of data) {
    crc ^= byte;
    for (let bit = 0; bit < 8; bit++) crc = crc & 1 ? (crc >>> 1) ^ 0xa001 : crc >>> 1;
  }
  return crc;
}

function referenceXmodem(data: Uint8Array): number {
  let crc = 0;
  for (const byte of data) {
    crc ^= byte << 8;
    for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc;
}

describe("protocol/crc16", () => {
  const check = Buffer.from("123456789", "ascii");

  it("gives the catalogued check values for \"123456789\"", () => {
    assert.equal(crc16Arc(check), 0xbb3d);
    assert.equal(crc16Xmodem(check), 0x31c3);
    assert.equal(crc16("arc", check), 0xbb3d);
    assert.equal(crc16("xmodem", check), 0x31c3);
  });

  it("gives 0 for empty input and for all-zero blocks (so a zero block cannot tell them apart)", () => {
    assert.equal(crc16Arc(new Uint8Array(0)), 0);
    assert.equal(crc16Xmodem(new Uint8Array(0)), 0);
    assert.equal(crc16Arc(new Uint8Array(128)), 0);
    assert.equal(crc16Xmodem(new Uint8Array(1024)), 0);
  });

  it("takes plain Uint8Arrays and views with an offset without copying mistakes", () => {
    const backing = Buffer.concat([Buffer.from("xx"), check, Buffer.from("yy")]);
    const view = new Uint8Array(backing.buffer, backing.byteOffset + 2, 9);
    assert.equal(crc16Arc(view), 0xbb3d);
    assert.equal(crc16Xmodem(backing.subarray(2, 11)), 0x31c3);
    assert.equal(crc16Arc(Uint8Array.from(check)), 0xbb3d);
  });

  it("returns 16-bit unsigned values", () => {
    const ff = new Uint8Array(1024).fill(0xff);
    for (const value of [crc16Arc(ff), crc16Xmodem(ff)]) {
      assert.ok(Number.isInteger(value) && value >= 0 && value <= 0xffff, String(value));
    }
  });

  it("matches a bitwise reference on random data", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 1100 }), (data) => {
        assert.equal(crc16Arc(data), referenceArc(data));
        assert.equal(crc16Xmodem(data), referenceXmodem(data));
      }),
      { numRuns: 500 },
    );
  });

  it("detects every single-byte change (what the YMODEM tests rely on)", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 1024 }), fc.nat(), fc.integer({ min: 1, max: 255 }), (data, at, flip) => {
        const changed = Uint8Array.from(data);
        changed[at % data.length] ^= flip;
        assert.notEqual(crc16Arc(changed), crc16Arc(data));
        assert.notEqual(crc16Xmodem(changed), crc16Xmodem(data));
      }),
      { numRuns: 300 },
    );
  });
});
