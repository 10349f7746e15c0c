import assert from "node:assert/strict";
import {
  AttError,
  AttOpcode,
  MALFORMED_PDU_ERROR,
  decodeClientPdu,
  encodeErrorResponse,
  encodeExchangeMtuResponse,
  encodeExecuteWriteResponse,
  encodeFindByTypeValueResponse,
  encodeFindInformationResponse,
  encodeHandleValueIndication,
  encodeHandleValueNotification,
  encodePrepareWriteResponse,
  encodeReadBlobResponse,
  encodeReadByGroupTypeResponse,
  encodeReadByTypeResponse,
  encodeReadResponse,
  encodeWriteResponse,
  formatUuid,
  normalizeUuid,
  uuidEquals,
  uuidFromBytes,
  uuidToBytes,
  type AttDecodeResult,
} from "../../src/protocol/att";

const h = (text: string): Buffer => Buffer.from(text.replace(/\s+/g, ""), "hex");

function decoded(result: AttDecodeResult): unknown {
  assert.ok(result.ok, `expected ok, got ${JSON.stringify(result)}`);
  return result.pdu;
}

describe("ATT codec", () => {
  describe("UUIDs", () => {
    it("accepts the usual spellings of 16-bit UUIDs", () => {
      for (const s of ["180d", "180D", "0x180D", "0x180d", " 180d ", "0000180d", "0000180d-0000-1000-8000-00805f9b34fb", "0000180D00001000800000805F9B34FB"]) {
        assert.equal(normalizeUuid(s), "180d", s);
      }
    });

    it("keeps 128-bit UUIDs as 32 lowercase hex digits", () => {
      assert.equal(normalizeUuid("6e400001-b5a3-f393-e0a9-e50e24dcca9e"), "6e400001b5a3f393e0a9e50e24dcca9e");
      assert.equal(normalizeUuid("6E400001B5A3F393E0A9E50E24DCCA9E"), "6e400001b5a3f393e0a9e50e24dcca9e");
      assert.equal(formatUuid("6e400001b5a3f393e0a9e50e24dcca9e"), "6e400001-b5a3-f393-e0a9-e50e24dcca9e");
      assert.equal(formatUuid("0x180D"), "180d");
    });

    it("rejects what is not a UUID", () => {
      for (const s of ["", "18d", "180dd", "xyz1", "6e400001-b5a3-f393-e0a9", "0x", "6e400001-b5a3f393-e0a9-e50e24dcca9e"]) {
        assert.throws(() => normalizeUuid(s), TypeError, s);
      }
    });

    it("converts to and from little-endian bytes", () => {
      assert.deepEqual(uuidToBytes("0x180D"), h("0d18"));
      assert.deepEqual(uuidToBytes("6e400001-b5a3-f393-e0a9-e50e24dcca9e"), h("9ecadc240ee5a9e093f3a3b50100406e"));
      assert.equal(uuidFromBytes(h("0d18")), "180d");
      assert.equal(uuidFromBytes(h("9ecadc240ee5a9e093f3a3b50100406e")), "6e400001b5a3f393e0a9e50e24dcca9e");
      // A 128-bit encoding of a SIG UUID is the 16-bit UUID.
      assert.equal(uuidFromBytes(uuidToBytes("0000180d-0000-1000-8000-00805f9b34fb")), "180d");
      assert.equal(uuidFromBytes(h("fb349b5f80000080001000000d180000")), "180d");
      assert.throws(() => uuidFromBytes(h("0d1800")), TypeError);
    });

    it("compares UUIDs across spellings", () => {
      assert.ok(uuidEquals("2A37", "0x2a37"));
      assert.ok(!uuidEquals("2a37", "2a38"));
    });
  });

  describe("decoding what noble sends", () => {
    it("Exchange MTU Request", () => {
      assert.deepEqual(decoded(decodeClientPdu(h("02 0001"))), { kind: "exchangeMtu", clientRxMtu: 256 });
    });

    it("Read By Group Type Request (primary services from handle 1)", () => {
      assert.deepEqual(decoded(decodeClientPdu(h("10 0100 ffff 0028"))), { kind: "readByGroupType", startHandle: 1, endHandle: 0xffff, groupType: "2800" });
    });

    it("Read By Type Request with 16-bit and 128-bit types", () => {
      assert.deepEqual(decoded(decodeClientPdu(h("08 0100 0900 0328"))), { kind: "readByType", startHandle: 1, endHandle: 9, attributeType: "2803" });
      assert.deepEqual(decoded(decodeClientPdu(h("08 0a00 0b00 0229"))), { kind: "readByType", startHandle: 10, endHandle: 11, attributeType: "2902" });
      assert.deepEqual(decoded(decodeClientPdu(Buffer.concat([h("08 0100 ffff"), uuidToBytes("6e400003-b5a3-f393-e0a9-e50e24dcca9e")]))), {
        kind: "readByType",
        startHandle: 1,
        endHandle: 0xffff,
        attributeType: "6e400003b5a3f393e0a9e50e24dcca9e",
      });
    });

    it("Find Information Request, also with start > end", () => {
      assert.deepEqual(decoded(decodeClientPdu(h("04 0400 0300"))), { kind: "findInformation", startHandle: 4, endHandle: 3 });
    });

    it("Find By Type Value Request", () => {
      assert.deepEqual(decoded(decodeClientPdu(h("06 0100 ffff 0028 0d18"))), { kind: "findByTypeValue", startHandle: 1, endHandle: 0xffff, attributeType: "2800", value: h("0d18") });
    });

    it("Read and Read Blob Requests", () => {
      assert.deepEqual(decoded(decodeClientPdu(h("0a 0300"))), { kind: "read", handle: 3 });
      assert.deepEqual(decoded(decodeClientPdu(h("0c 0300 1600"))), { kind: "readBlob", handle: 3, offset: 22 });
    });

    it("Write Request, Write Command (also empty values)", () => {
      assert.deepEqual(decoded(decodeClientPdu(h("12 0b00 0100"))), { kind: "write", handle: 11, value: h("0100") });
      assert.deepEqual(decoded(decodeClientPdu(h("12 0b00"))), { kind: "write", handle: 11, value: Buffer.alloc(0) });
      assert.deepEqual(decoded(decodeClientPdu(h("52 2000 46455443 3f0d0a"))), { kind: "writeCommand", handle: 32, value: Buffer.from("FETC?\r\n") });
    });

    it("Prepare Write and Execute Write Requests", () => {
      assert.deepEqual(decoded(decodeClientPdu(h("16 2000 1200 aabb"))), { kind: "prepareWrite", handle: 32, offset: 18, value: h("aabb") });
      assert.deepEqual(decoded(decodeClientPdu(h("18 01"))), { kind: "executeWrite", execute: true });
      assert.deepEqual(decoded(decodeClientPdu(h("18 00"))), { kind: "executeWrite", execute: false });
    });

    it("Handle Value Confirmation", () => {
      assert.deepEqual(decoded(decodeClientPdu(h("1e"))), { kind: "confirmation" });
    });

    it("copies values out of the input buffer", () => {
      const pdu = h("12 0b00 0100");
      const result = decodeClientPdu(pdu);
      pdu[3] = 0xff;
      assert.deepEqual(decoded(result), { kind: "write", handle: 11, value: h("0100") });
    });
  });

  describe("rejecting", () => {
    it("answers malformed requests with MALFORMED_PDU_ERROR, never Invalid PDU (it stalls noble)", () => {
      assert.notEqual(MALFORMED_PDU_ERROR, AttError.InvalidPdu);
      for (const hex of ["02", "02 000100", "04 0100", "08 0100 ffff 00", "08 0100 ffff 0028 00", "10 0100 ffff", "0a 01", "0a 010002", "0c 0100", "12 01", "16 0100 00", "18", "18 02", "18 0100", "06 0100 ffff 00"]) {
        const r = decodeClientPdu(h(hex));
        assert.ok(!r.ok, hex);
        assert.equal(r.respond, true, hex);
        assert.equal(r.error, MALFORMED_PDU_ERROR, hex);
        assert.equal(r.opcode, h(hex)[0], hex);
      }
    });

    it("reports the first handle of a malformed request when it can be read", () => {
      const r = decodeClientPdu(h("08 0500 ffff 00"));
      assert.ok(!r.ok);
      assert.equal(r.handle, 5);
    });

    it("answers unknown requests with Request Not Supported", () => {
      const r = decodeClientPdu(h("0e 0100 0200")); // Read Multiple: noble never sends it
      assert.ok(!r.ok);
      assert.deepEqual([r.respond, r.error], [true, AttError.RequestNotSupported]);
      const r2 = decodeClientPdu(h("20"));
      assert.ok(!r2.ok);
      assert.deepEqual([r2.respond, r2.error], [true, AttError.RequestNotSupported]);
    });

    it("drops commands, responses, notifications and bad confirmations without responding", () => {
      for (const hex of ["d2 0100 aa", "52 01", "1e 00", "1b 0100 aa", "1d 0100 aa", "03 1700", "13", ""]) {
        const r = decodeClientPdu(h(hex));
        assert.ok(!r.ok, hex);
        assert.equal(r.respond, false, hex);
      }
    });
  });

  describe("encoding responses", () => {
    it("Error Response", () => {
      assert.deepEqual(encodeErrorResponse(AttOpcode.FindInformationRequest, 4, AttError.InvalidHandle), h("01 04 0400 01"));
    });

    it("Exchange MTU Response", () => {
      assert.deepEqual(encodeExchangeMtuResponse(247), h("03 f700"));
    });

    it("Read By Group Type Response", () => {
      assert.deepEqual(
        encodeReadByGroupTypeResponse([
          { handle: 1, groupEndHandle: 5, value: h("0018") },
          { handle: 6, groupEndHandle: 9, value: h("0118") },
        ]),
        h("11 06 0100 0500 0018 0600 0900 0118"),
      );
      assert.throws(() => encodeReadByGroupTypeResponse([{ handle: 1, groupEndHandle: 5, value: h("0018") }, { handle: 6, groupEndHandle: 9, value: Buffer.alloc(16) }]), RangeError);
      assert.throws(() => encodeReadByGroupTypeResponse([]), RangeError);
    });

    it("Read By Type Response", () => {
      assert.deepEqual(encodeReadByTypeResponse([{ handle: 2, value: h("10 0300 372a") }]), h("09 07 0200 10 0300 372a"));
      assert.deepEqual(encodeReadByTypeResponse([{ handle: 4, value: h("0000") }]), h("09 04 0400 0000"));
      assert.throws(() => encodeReadByTypeResponse([{ handle: 4, value: h("0000") }, { handle: 5, value: h("00") }]), RangeError);
    });

    it("Find Information Response in both formats", () => {
      assert.deepEqual(encodeFindInformationResponse([{ handle: 4, type: "2902" }]), h("05 01 0400 0229"));
      assert.deepEqual(encodeFindInformationResponse([{ handle: 4, type: "6e400003-b5a3-f393-e0a9-e50e24dcca9e" }]), Buffer.concat([h("05 02 0400"), uuidToBytes("6e400003b5a3f393e0a9e50e24dcca9e")]));
      assert.throws(() => encodeFindInformationResponse([{ handle: 4, type: "2902" }, { handle: 5, type: "6e400003b5a3f393e0a9e50e24dcca9e" }]), RangeError);
    });

    it("Find By Type Value Response", () => {
      assert.deepEqual(encodeFindByTypeValueResponse([{ handle: 10, groupEndHandle: 18 }]), h("07 0a00 1200"));
    });

    it("reads, writes, notifications, indications", () => {
      assert.deepEqual(encodeReadResponse(h("01")), h("0b 01"));
      assert.deepEqual(encodeReadBlobResponse(Buffer.alloc(0)), h("0d"));
      assert.deepEqual(encodeWriteResponse(), h("13"));
      assert.deepEqual(encodePrepareWriteResponse(32, 18, h("aabb")), h("17 2000 1200 aabb"));
      assert.deepEqual(encodeExecuteWriteResponse(), h("19"));
      assert.deepEqual(encodeHandleValueNotification(3, h("0637")), h("1b 0300 0637"));
      assert.deepEqual(encodeHandleValueIndication(32, Buffer.from("OK")), h("1d 2000 4f4b"));
    });
  });
});
