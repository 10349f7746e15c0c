import { strict as assert } from "node:assert";
import fc from "fast-check";
import {
  decodeXossFrame,
  encodeXossFrame,
  fetchFileFrame,
  interpretFetchReply,
  isIdleFrame,
  XOSS_ERRORS,
  XOSS_MAX_CONTENT_BYTES,
  XossFrameError,
  xossFileNameBytes,
  xorChecksum,
} from "../../src/protocol/xoss";

describe("XOSS control frames", () => {
  it("builds the fetch request of docs/protocols.md: 05 + filelist.txt + 57", () => {
    assert.equal(fetchFileFrame("filelist.txt").toString("hex"), `05${Buffer.from("filelist.txt").toString("hex")}57`);
  });

  it("writes 00 for an empty content, as xoss_sync does (status ff 00 ff, idle 04 00 04, disk space 09 00 09)", () => {
    assert.deepEqual(encodeXossFrame(0xff), Buffer.from("ff00ff", "hex"));
    assert.deepEqual(encodeXossFrame(0x04), Buffer.from("040004", "hex"));
    assert.deepEqual(encodeXossFrame(0x09), Buffer.from("090009", "hex"));
    assert.ok(isIdleFrame(Buffer.from("040004", "hex")));
    assert.ok(!isIdleFrame(Buffer.from("040104", "hex")));
  });

  it("round-trips any opcode and content of up to 18 bytes, the checksum making the XOR of the frame 0 (property)", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 255 }), fc.uint8Array({ minLength: 1, maxLength: XOSS_MAX_CONTENT_BYTES }), (opcode, content) => {
        const frame = encodeXossFrame(opcode, content);
        assert.ok(frame.length <= 20);
        assert.equal(xorChecksum(frame), 0);
        const decoded = decodeXossFrame(frame);
        assert.equal(decoded.opcode, opcode);
        assert.deepEqual(decoded.content, Buffer.from(content));
      }),
    );
  });

  it("rejects damaged frames with a reason", () => {
    assert.throws(() => decodeXossFrame(Buffer.from("0600", "hex")), XossFrameError);
    assert.throws(() => decodeXossFrame(Buffer.from("060001", "hex")), /bad checksum/);
    assert.throws(() => decodeXossFrame(Buffer.alloc(21)), /too long/);
    assert.throws(() => encodeXossFrame(0x05, Buffer.alloc(19)), RangeError);
    assert.throws(() => encodeXossFrame(256), RangeError);
  });

  it("any single flipped bit is caught by the checksum (property)", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 255 }), fc.uint8Array({ minLength: 1, maxLength: 18 }), fc.nat(), fc.integer({ min: 0, max: 7 }), (op, content, at, bit) => {
        const frame = encodeXossFrame(op, content);
        frame[at % frame.length] ^= 1 << bit;
        assert.throws(() => decodeXossFrame(frame), XossFrameError);
      }),
    );
  });

  it("checks file names: 1 to 18 bytes of UTF-8, no NUL", () => {
    assert.equal(xossFileNameBytes("20240101123456.fit").length, 18);
    assert.throws(() => xossFileNameBytes(""), /empty/);
    assert.throws(() => xossFileNameBytes("20240101123456.fitx"), /19 bytes/);
    assert.throws(() => xossFileNameBytes("a\u0000b"), /NUL/);
  });

  it("interprets the device's answers to a fetch", () => {
    const name = "Setting.json";
    assert.deepEqual(interpretFetchReply(encodeXossFrame(0x06, Buffer.from(name)), name), { kind: "accepted" });
    const other = interpretFetchReply(encodeXossFrame(0x06, Buffer.from("other.json")), name);
    assert.equal(other.kind, "refused");
    for (const [code, reason] of Object.entries(XOSS_ERRORS)) {
      assert.deepEqual(interpretFetchReply(encodeXossFrame(Number(code), Buffer.from(name)), name), { kind: "refused", code: Number(code), reason });
      assert.deepEqual(interpretFetchReply(encodeXossFrame(Number(code)), name), { kind: "refused", code: Number(code), reason });
    }
    assert.equal(XOSS_ERRORS[0x12], "no such file");
    assert.deepEqual(interpretFetchReply(Buffer.from("040004", "hex"), name), { kind: "other", opcode: 0x04 });
    assert.throws(() => interpretFetchReply(Buffer.from("060000", "hex"), name), XossFrameError);
  });
});
