import { strict as assert } from "node:assert";
import fc from "fast-check";
import { H4Splitter } from "../../src/protocol/h4";
import { addressToBytes, bytesToAddress, CID_ATT, H4_ISO, H4_SCO, OP, PB_CONTINUING, PB_FIRST_FLUSHABLE, SCAN_RSP } from "../../src/protocol/hci";
import { buildAcl, buildCommand, buildCommandComplete, buildCommandStatus, buildDisconnectionComplete, buildEvent, buildL2cap, buildLeAdvertisingReport, buildLeConnectionComplete, buildNumberOfCompletedPackets, parseAcl, parseCommand, parseCommandComplete, parseCommandStatus, parseDisconnectionComplete, parseL2capHeader, parseLeAdvertisingReports, parseLeConnectionComplete, parseNumberOfCompletedPackets } from "../../src/protocol/hci-packets";

describe("protocol/h4", () => {
  describe("addresses", () => {
    it("travel least significant byte first", () => {
      assert.equal(addressToBytes("d8:75:ba:00:00:01").toString("hex"), "010000ba75d8");
      assert.equal(bytesToAddress(Buffer.from("010000ba75d8", "hex")), "d8:75:ba:00:00:01");
      assert.equal(bytesToAddress(addressToBytes("A4:9E:69:0A:0B:0C")), "a4:9e:69:0a:0b:0c");
    });

    it("reject what is not an address", () => {
      assert.throws(() => addressToBytes("d8:75:ba:00:00"), RangeError);
      assert.throws(() => bytesToAddress(Buffer.alloc(5)), RangeError);
    });
  });

  describe("H4Splitter", () => {
    const packets = [
      buildCommand(OP.RESET),
      buildCommandComplete(OP.RESET, 0),
      buildAcl(0x40, PB_FIRST_FLUSHABLE, Buffer.alloc(300, 7)),
      buildEvent(0x13, Buffer.from([1, 0x40, 0, 1, 0])),
      Buffer.from([H4_SCO, 0x01, 0x00, 0x02, 0xaa, 0xbb]),
      Buffer.from([H4_ISO, 0x01, 0x00, 0x01, 0x40, 0xcc]), // length 1; the top bits of the length are RFU
    ];

    it("returns whole packets from a stream fed one byte at a time", () => {
      const splitter = new H4Splitter();
      const out: Buffer[] = [];
      for (const byte of Buffer.concat(packets)) out.push(...splitter.push(Buffer.from([byte])));
      assert.deepEqual(out, packets);
      assert.equal(splitter.pending, 0);
    });

    it("returns the same packets however the stream is chunked", () => {
      const packet = fc.oneof(
        fc.uint8Array({ maxLength: 255 }).map((p) => buildEvent(0x3e, Buffer.from(p))),
        fc.uint8Array({ maxLength: 255 }).map((p) => buildCommand(0x200d, Buffer.from(p))),
        fc.tuple(fc.integer({ min: 0, max: 0x0eff }), fc.uint8Array({ maxLength: 600 })).map(([handle, p]) => buildAcl(handle, PB_CONTINUING, Buffer.from(p))),
      );
      fc.assert(
        fc.property(fc.array(packet, { maxLength: 12 }), fc.array(fc.integer({ min: 1, max: 700 }), { minLength: 1, maxLength: 30 }), (list, cuts) => {
          const stream = Buffer.concat(list);
          const splitter = new H4Splitter();
          const out: Buffer[] = [];
          let offset = 0;
          for (let i = 0; offset < stream.length; i++) {
            const size = cuts[i % cuts.length];
            out.push(...splitter.push(stream.subarray(offset, offset + size)));
            offset += size;
          }
          assert.deepEqual(out, list);
          assert.equal(splitter.pending, 0);
        }),
      );
    });

    it("skips bytes that cannot start a packet and resynchronises", () => {
      const splitter = new H4Splitter();
      const out = splitter.push(Buffer.concat([Buffer.from([0x00, 0xff]), packets[1], Buffer.from([0x09]), packets[0]]));
      assert.deepEqual(out, [packets[1], packets[0]]);
      assert.equal(splitter.discarded, 3);
    });

    it("holds back an incomplete packet", () => {
      const splitter = new H4Splitter();
      const acl = packets[2];
      assert.deepEqual(splitter.push(acl.subarray(0, 100)), []);
      assert.equal(splitter.pending, 100);
      assert.deepEqual(splitter.push(acl.subarray(100)), [acl]);
    });
  });

  describe("commands and command events", () => {
    it("builds the Reset completion noble's UART driver waits for, byte for byte", () => {
      assert.equal(buildCommandComplete(OP.RESET, 0).toString("hex"), "040e0401030c00");
      assert.equal(buildCommand(OP.RESET).toString("hex"), "01030c00");
    });

    it("parses what it builds", () => {
      const cmd = parseCommand(buildCommand(OP.DISCONNECT, Buffer.from([0x40, 0x00, 0x13])));
      assert.deepEqual(cmd, { opcode: 0x0406, params: Buffer.from([0x40, 0x00, 0x13]) });
      assert.equal(parseCommand(Buffer.from([1, 3, 0x0c, 2, 0])), undefined, "truncated");

      const cc = parseCommandComplete(buildCommandComplete(OP.LE_READ_BUFFER_SIZE, 0, Buffer.from([0xfb, 0, 8])));
      assert.deepEqual(cc, { numCommandPackets: 1, opcode: 0x2002, status: 0, result: Buffer.from([0xfb, 0, 8]) });

      const cs = buildCommandStatus(OP.LE_CREATE_CONNECTION, 0x0c);
      assert.equal(cs.toString("hex"), "040f040c010d20");
      assert.deepEqual(parseCommandStatus(cs), { status: 0x0c, numCommandPackets: 1, opcode: 0x200d });
      assert.equal(parseCommandStatus(buildCommandComplete(1, 0)), undefined);
    });
  });

  describe("LE Meta events", () => {
    it("builds an advertising report with one report, as noble parses it", () => {
      const data = Buffer.from("0201060509666f6f31", "hex");
      const packet = buildLeAdvertisingReport({ eventType: SCAN_RSP, addressType: 1, address: "d8:75:ba:00:00:01", data, rssi: -60 });
      // 04 3e len | 02 (subevent) 01 (reports) 04 (type) 01 (random) addr(6) len data rssi
      assert.equal(packet.toString("hex"), `043e${(12 + data.length).toString(16)}02010401010000ba75d8${data.length.toString(16).padStart(2, "0")}${data.toString("hex")}c4`);
      assert.deepEqual(parseLeAdvertisingReports(packet), [{ eventType: 4, addressType: 1, address: "d8:75:ba:00:00:01", data, rssi: -60 }]);
      assert.throws(() => buildLeAdvertisingReport({ eventType: 0, addressType: 0, address: "d8:75:ba:00:00:01", data: Buffer.alloc(32), rssi: 0 }), RangeError);
    });

    it("builds and parses LE Connection Complete", () => {
      const c = {
        status: 0,
        handle: 0x40,
        role: 0,
        peerAddressType: 1,
        peerAddress: "d8:75:ba:00:00:01",
        interval: 6,
        latency: 0,
        supervisionTimeout: 42,
        clockAccuracy: 0,
      };
      const packet = buildLeConnectionComplete(c);
      assert.equal(packet.length, 3 + 19);
      assert.equal(packet.toString("hex"), "043e13010040000001010000ba75d8060000002a0000");
      assert.deepEqual(parseLeConnectionComplete(packet), c);
      assert.equal(parseLeConnectionComplete(buildCommandComplete(1, 0)), undefined);
    });
  });

  describe("link events", () => {
    it("builds and parses Disconnection Complete", () => {
      const packet = buildDisconnectionComplete({ status: 0, handle: 0x41, reason: 0x08 });
      assert.equal(packet.toString("hex"), "04050400410008");
      assert.deepEqual(parseDisconnectionComplete(packet), { status: 0, handle: 0x41, reason: 8 });
    });

    it("builds and parses Number Of Completed Packets", () => {
      const packet = buildNumberOfCompletedPackets([
        { handle: 0x40, count: 3 },
        { handle: 0x41, count: 1 },
      ]);
      assert.equal(packet.toString("hex"), "041309024000030041000100");
      assert.deepEqual(parseNumberOfCompletedPackets(packet), [
        { handle: 0x40, count: 3 },
        { handle: 0x41, count: 1 },
      ]);
    });
  });

  describe("ACL and L2CAP", () => {
    it("puts handle, boundary and broadcast flags in the ACL header", () => {
      const packet = buildAcl(0x040, PB_FIRST_FLUSHABLE, Buffer.from([1, 2, 3]));
      assert.equal(packet.toString("hex"), "0240200300010203");
      assert.deepEqual(parseAcl(packet), { handle: 0x40, pb: 0b10, bc: 0, data: Buffer.from([1, 2, 3]) });
      assert.deepEqual(parseAcl(buildAcl(0xeff, PB_CONTINUING, Buffer.alloc(0), 1)), { handle: 0xeff, pb: 1, bc: 1, data: Buffer.alloc(0) });
      assert.equal(parseAcl(packet.subarray(0, 6)), undefined, "truncated");
    });

    it("frames L2CAP basic PDUs", () => {
      const frame = buildL2cap(CID_ATT, Buffer.from([0x02, 0x00, 0x01]));
      assert.equal(frame.toString("hex"), "03000400020001");
      assert.deepEqual(parseL2capHeader(frame), { length: 3, cid: 4 });
      assert.equal(parseL2capHeader(Buffer.from([1, 0, 4])), undefined);
    });
  });
});
