import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { createRequire } from "node:module";
import fc from "fast-check";
import { ADV_IND, ADV_NONCONN_IND, ADV_SCAN_IND, OP, SCAN_RSP } from "../../src/protocol/hci";
import { buildCommand, buildLeAdvertisingReport, buildLeMetaEvent, parseLeAdvertisingReports } from "../../src/protocol/hci-packets";
import { LE_EXTENDED_ADVERTISING_REPORT, LE_SET_EXTENDED_SCAN_PARAMETERS, scanTypeOf, withEmptyScanResponses, withScanType } from "../../src/protocol/scan-parameters";

/** noble 2.8's legacy LE Set Scan Parameters: active, interval and window 0x0012, public address, accept all. */
const legacy = buildCommand(OP.LE_SET_SCAN_PARAMETERS, Buffer.from("01120012000000", "hex"));
/** noble's extended command with LE 1M and LE Coded (phys 0x05): two Scan_Type bytes. */
const extended = buildCommand(LE_SET_EXTENDED_SCAN_PARAMETERS, Buffer.from("000005" + "0112001200" + "0112001200", "hex"));

describe("protocol/scan-parameters (passive scanning under noble)", () => {
  it("rewrites the legacy command's LE_Scan_Type to passive (0x00) and back, leaving every other byte", () => {
    const passive = withScanType(legacy, "passive");
    assert.equal(passive.toString("hex"), "010b2007" + "00120012000000");
    assert.equal(scanTypeOf(passive), "passive");
    assert.equal(scanTypeOf(legacy), "active");
    assert.equal(withScanType(passive, "active").toString("hex"), legacy.toString("hex"));
    assert.equal(legacy.toString("hex"), "010b2007" + "01120012000000", "the input is not modified");
  });

  it("rewrites the Scan_Type of every PHY of the extended command", () => {
    const passive = withScanType(extended, "passive");
    assert.equal(passive.toString("hex"), "014120" + "0d" + "000005" + "0012001200" + "0012001200");
    assert.equal(scanTypeOf(passive), "passive");
    const oneM = buildCommand(LE_SET_EXTENDED_SCAN_PARAMETERS, Buffer.from("000001" + "0112001200", "hex"));
    assert.equal(withScanType(oneM, "passive").toString("hex"), "014120" + "08" + "000001" + "0012001200");
  });

  it("passes other packets, malformed commands and commands already of the type as the same buffer", () => {
    const enable = buildCommand(OP.LE_SET_SCAN_ENABLE, Buffer.from("0100", "hex"));
    const short = Buffer.from("010b200601120012000000".slice(0, 20), "hex");
    const lying = Buffer.from("010b2007011200120000", "hex"); // says 7 parameter bytes, carries 6
    const badPhys = buildCommand(LE_SET_EXTENDED_SCAN_PARAMETERS, Buffer.from("000003" + "0112001200", "hex")); // two PHYs, one set of values
    const event = Buffer.from("040e04010b2000", "hex");
    for (const p of [enable, short, lying, badPhys, event, Buffer.alloc(0)]) {
      assert.equal(withScanType(p, "passive"), p);
      assert.equal(scanTypeOf(p), null);
    }
    assert.equal(withScanType(legacy, "active"), legacy);
  });

  it("on arbitrary packets: never changes the length, changes only Scan_Type bytes, never throws (10,000 runs)", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 40 }), fc.boolean(), fc.boolean(), (bytes, asCommand, passive) => {
        const packet = Buffer.from(bytes);
        if (asCommand && packet.length >= 4) {
          packet[0] = 0x01;
          packet[3] = packet.length - 4;
          packet.writeUInt16LE(packet.length % 2 === 0 ? OP.LE_SET_SCAN_PARAMETERS : LE_SET_EXTENDED_SCAN_PARAMETERS, 1);
        }
        const out = withScanType(packet, passive ? "passive" : "active");
        assert.equal(out.length, packet.length);
        const changed = [...out].flatMap((b, i) => (b === packet[i] ? [] : [i]));
        if (changed.length > 0) assert.equal(scanTypeOf(out), passive ? "passive" : "active");
        for (const i of changed) assert.equal(out[i], passive ? 0 : 1);
      }),
      { numRuns: 10000 },
    );
  });
});

describe("protocol/scan-parameters withEmptyScanResponses (passive reports noble would hold back)", () => {
  const report = (eventType: number, data = "020106"): Buffer => buildLeAdvertisingReport({ eventType, addressType: 1, address: "c0:00:00:00:00:03", data: Buffer.from(data, "hex"), rssi: -60 });

  it("follows a connectable or scannable report with an empty scan response of the same device and signal", () => {
    for (const type of [ADV_IND, ADV_SCAN_IND]) {
      const packet = report(type);
      const [first, extra, ...rest] = withEmptyScanResponses(packet);
      assert.equal(first, packet);
      assert.deepEqual(rest, []);
      assert.deepEqual(parseLeAdvertisingReports(extra), [{ eventType: SCAN_RSP, addressType: 1, address: "c0:00:00:00:00:03", data: Buffer.alloc(0), rssi: -60 }]);
    }
  });

  it("does the same for extended reports (controllers with extended advertising): complete connectable ones", () => {
    // Event type, random address c0:00:00:00:00:03, LE 1M, no secondary PHY, no SID, no TX power, RSSI -60, no
    // periodic interval, no direct address, then the data.
    const ext = (type: number, data: string): string =>
      Buffer.concat([Buffer.from([type & 0xff, type >> 8, 0x01]), Buffer.from("0300000000c0", "hex"), Buffer.from("01" + "00" + "ff" + "7f" + "c4" + "0000" + "00" + "000000000000", "hex"), Buffer.of(data.length / 2), Buffer.from(data, "hex")]).toString("hex");
    const event = (...reports: string[]): Buffer => buildLeMetaEvent(LE_EXTENDED_ADVERTISING_REPORT, Buffer.concat([Buffer.of(reports.length), ...reports.map((r) => Buffer.from(r, "hex"))]));
    const connectable = ext(0x0013, "020106"); // legacy ADV_IND as an extended report: connectable, scannable, legacy
    const packet = event(connectable, ext(0x0010, "020106")); // the second one non-connectable
    const [first, extra, ...rest] = withEmptyScanResponses(packet);
    assert.equal(first, packet);
    assert.deepEqual(rest, []);
    assert.equal(extra.toString("hex"), event(ext(0x001b, "")).toString("hex"), "the scan response bit set, no data");
    assert.deepEqual(withEmptyScanResponses(event(ext(0x0033, "0201"))), [event(ext(0x0033, "0201"))], "an incomplete report waits for its rest");
    const truncated = event(connectable).subarray(0, 20);
    assert.deepEqual(withEmptyScanResponses(truncated), [truncated]);
  });

  it("never throws on arbitrary LE Meta events, and only ever adds empty scan responses (10,000 runs)", () => {
    fc.assert(
      fc.property(fc.constantFrom(0x02, LE_EXTENDED_ADVERTISING_REPORT), fc.uint8Array({ maxLength: 80 }), (subevent, bytes) => {
        const packet = buildLeMetaEvent(subevent, Buffer.from(bytes));
        const [first, ...extra] = withEmptyScanResponses(packet);
        assert.equal(first, packet);
        for (const e of extra) assert.ok(e.length <= 4 + 2 + 24, "one report without data");
      }),
      { numRuns: 10000 },
    );
  });

  it("makes noble's own HCI stack report every passive advertisement exactly once, legacy and extended", () => {
    // noble 2.8's Hci parses the packets and its Gap decides when to report: a duplicate would be a second message
    // of every ble-scan node for one advertisement.
    const nobleRequire = createRequire(require.resolve("@stoprocent/noble"));
    const Hci = nobleRequire("./lib/hci-socket/hci.js") as { prototype: object };
    const Gap = nobleRequire("./lib/hci-socket/gap.js") as new (hci: EventEmitter) => EventEmitter;
    const discoveries = (packets: Buffer[]): number => {
      const hci = Object.create(Hci.prototype) as EventEmitter & { onSocketData(data: Buffer): void };
      EventEmitter.call(hci);
      let count = 0;
      new Gap(hci).on("discover", () => count++);
      for (const packet of packets) for (const p of withEmptyScanResponses(packet)) hci.onSocketData(p);
      return count;
    };
    const ext = (type: number): Buffer =>
      buildLeMetaEvent(
        LE_EXTENDED_ADVERTISING_REPORT,
        Buffer.concat([Buffer.of(1, type & 0xff, type >> 8, 0x01), Buffer.from("0300000000c0" + "01" + "00" + "ff" + "7f" + "c4" + "0000" + "00" + "000000000000" + "03020106", "hex")]),
      );
    for (const [label, packet] of [
      ["ADV_IND", report(ADV_IND)],
      ["ADV_SCAN_IND", report(ADV_SCAN_IND)],
      ["ADV_NONCONN_IND", report(ADV_NONCONN_IND)],
      ["extended legacy ADV_IND", ext(0x0013)],
      ["extended legacy ADV_SCAN_IND", ext(0x0012)],
      ["extended legacy ADV_NONCONN_IND", ext(0x0010)],
      ["extended scannable", ext(0x0002)],
      ["extended connectable", ext(0x0001)],
    ] as const) {
      assert.equal(discoveries([packet]), 1, `${label}: the first advertisement`);
      assert.equal(discoveries([packet, packet, packet]), 3, `${label}: three advertisements`);
    }
  });

  it("passes non-connectable reports, scan responses and other packets alone", () => {
    for (const packet of [report(ADV_NONCONN_IND), report(SCAN_RSP), Buffer.from("040e0401030c00", "hex"), Buffer.alloc(0)]) assert.deepEqual(withEmptyScanResponses(packet), [packet]);
  });
});
