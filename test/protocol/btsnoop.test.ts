import { strict as assert } from "node:assert";
import fc from "fast-check";
import * as btsnoop from "../../src/protocol/btsnoop";
import { H4_COMMAND, H4_EVENT, H4_ISO, H4_SCO, OP, PB_FIRST_FLUSHABLE } from "../../src/protocol/hci";
import { buildAcl, buildCommand, buildCommandComplete } from "../../src/protocol/hci-packets";

/** 2024-01-02T03:04:05.678Z. */
const UNIX_MS = Date.UTC(2024, 0, 2, 3, 4, 5, 678);

describe("protocol/btsnoop", () => {
  it("writes the 16-byte file header: identification, version 1, datalink 1002 (HCI UART, H4), big-endian", () => {
    assert.equal(btsnoop.encodeBtsnoopHeader().toString("hex"), Buffer.from("btsnoop\0").toString("hex") + "00000001" + "000003ea");
    assert.equal(btsnoop.encodeBtsnoopHeader(btsnoop.DATALINK_HCI_UNENCAPSULATED).readUInt32BE(12), 1001);
  });

  it("counts time in microseconds since 0 AD: the Unix epoch is 0x00dcddb30f2f8000", () => {
    assert.equal(btsnoop.btsnoopTimestamp(0), 0x00dcddb30f2f8000n);
    // 1 ms and a fraction of one: the format keeps microseconds.
    assert.equal(btsnoop.btsnoopTimestamp(1.5) - btsnoop.BTSNOOP_EPOCH_OFFSET_US, 1500n);
    assert.equal(btsnoop.unixMsOfBtsnoopTimestamp(btsnoop.btsnoopTimestamp(UNIX_MS)), UNIX_MS);
    // The constant is Wireshark's (wiretap/btsnoop.c KUnixTimeBase) and BlueZ's, not a calendar computation: it is
    // 719,540 days, which no proleptic calendar gives for 0 AD, so only the value the readers use is right.
    assert.equal(btsnoop.BTSNOOP_EPOCH_OFFSET_US, 719540n * 86400n * 1000000n);
  });

  it("flags: bit 0 set for what the host received, bit 1 set for commands and events", () => {
    const command = buildCommand(OP.RESET);
    const event = buildCommandComplete(OP.RESET, 0);
    const acl = buildAcl(0x40, PB_FIRST_FLUSHABLE, Buffer.from([3, 0, 4, 0, 0x02, 0xf7, 0x00]));
    assert.equal(btsnoop.btsnoopFlags(command, "host-to-controller"), 0x02);
    assert.equal(btsnoop.btsnoopFlags(event, "controller-to-host"), 0x03);
    assert.equal(btsnoop.btsnoopFlags(acl, "host-to-controller"), 0x00);
    assert.equal(btsnoop.btsnoopFlags(acl, "controller-to-host"), 0x01);
    // SCO and ISO are data too.
    assert.equal(btsnoop.btsnoopFlags(Buffer.from([H4_SCO, 0x01, 0x00, 0x00]), "controller-to-host"), 0x01);
    assert.equal(btsnoop.btsnoopFlags(Buffer.from([H4_ISO, 0x01, 0x00, 0x00, 0x00]), "host-to-controller"), 0x00);
  });

  it("encodes one record byte for byte: lengths, flags, drops, timestamp, then the H4 packet with its type byte", () => {
    const packet = buildCommandComplete(OP.RESET, 0);
    const record = btsnoop.encodeBtsnoopRecord({ packet, direction: "controller-to-host", timestampUs: btsnoop.btsnoopTimestamp(UNIX_MS), cumulativeDrops: 2 });
    const expectedTs = (BigInt(UNIX_MS) * 1000n + 0x00dcddb30f2f8000n).toString(16).padStart(16, "0");
    assert.equal(
      record.toString("hex"),
      [
        "00000007", // original length
        "00000007", // included length
        "00000003", // received by the host, an event
        "00000002", // cumulative drops
        expectedTs,
        "040e0401030c00", // H4 event: Command Complete for Reset, status 0
      ].join(""),
    );
  });

  it("decodes what it encodes, whatever the packets", () => {
    const recordArb = fc.record({
      packet: fc.uint8Array({ minLength: 1, maxLength: 300 }).map((b) => Buffer.from(b)),
      direction: fc.constantFrom<btsnoop.HciDirection>("host-to-controller", "controller-to-host"),
      timestampUs: fc.bigInt({ min: 0n, max: 2n ** 62n }),
      cumulativeDrops: fc.nat(),
    });
    fc.assert(
      fc.property(fc.array(recordArb, { maxLength: 20 }), (records) => {
        const file = Buffer.concat([btsnoop.encodeBtsnoopHeader(), ...records.map((r) => btsnoop.encodeBtsnoopRecord(r))]);
        const decoded = btsnoop.decodeBtsnoop(file);
        assert.equal(decoded.version, 1);
        assert.equal(decoded.datalink, 1002);
        assert.equal(decoded.trailingBytes, 0);
        assert.equal(decoded.records.length, records.length);
        decoded.records.forEach((d, i) => {
          const r = records[i];
          assert.deepEqual(d.packet, r.packet);
          assert.equal(d.originalLength, r.packet.length);
          assert.equal(d.direction, r.direction);
          assert.equal(d.timestampUs, r.timestampUs);
          assert.equal(d.cumulativeDrops, r.cumulativeDrops);
          assert.equal(d.commandOrEvent, r.packet[0] === H4_COMMAND || r.packet[0] === H4_EVENT);
        });
      }),
      { numRuns: 500 },
    );
  });

  it("reads a capture cut short as whole records plus trailing bytes, and rejects what is not a capture", () => {
    const one = btsnoop.encodeBtsnoopRecord({ packet: buildCommand(OP.RESET), direction: "host-to-controller", timestampUs: 1n });
    const file = Buffer.concat([btsnoop.encodeBtsnoopHeader(), one, one.subarray(0, one.length - 1)]);
    const decoded = btsnoop.decodeBtsnoop(file);
    assert.equal(decoded.records.length, 1);
    assert.equal(decoded.trailingBytes, one.length - 1);

    assert.throws(() => btsnoop.decodeBtsnoop(Buffer.alloc(10)), /shorter than the 16-byte file header/);
    assert.throws(() => btsnoop.decodeBtsnoop(Buffer.alloc(16)), /bad identification pattern/);
    const v2 = btsnoop.encodeBtsnoopHeader();
    v2.writeUInt32BE(2, 8);
    assert.throws(() => btsnoop.decodeBtsnoop(v2), /unsupported version 2/);
    const lying = Buffer.from(one);
    lying.writeUInt32BE(0xffffffff, 4); // included > original
    assert.throws(() => btsnoop.decodeBtsnoop(Buffer.concat([btsnoop.encodeBtsnoopHeader(), lying])), /includes 4294967295 bytes of a 4-byte packet/);
  });

  it("never throws anything but its own errors on arbitrary bytes after a valid header", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (tail) => {
        try {
          const decoded = btsnoop.decodeBtsnoop(Buffer.concat([btsnoop.encodeBtsnoopHeader(), Buffer.from(tail)]));
          assert.ok(decoded.trailingBytes >= 0 && decoded.trailingBytes <= tail.length);
        } catch (error) {
          assert.match((error as Error).message, /^btsnoop: /);
        }
      }),
      { numRuns: 2000 },
    );
  });
});
