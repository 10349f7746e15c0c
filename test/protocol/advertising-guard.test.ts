import assert from "node:assert/strict";
import fc from "fast-check";
import { guardAdvertisingReport, withoutEmptyTxPower } from "../../src/protocol/advertising-guard";
import { buildLeAdvertisingReport, parseLeAdvertisingReports } from "../../src/protocol/hci-packets";

const report = (data: Buffer): Buffer => buildLeAdvertisingReport({ eventType: 0, addressType: 1, address: "d8:75:ba:00:00:01", data, rssi: -50 });

describe("protocol/advertising-guard (advertising data noble would drop)", () => {
  it("cuts an empty TX Power Level structure out and keeps the name and services", () => {
    const data = Buffer.from("020106" + "010a" + "0909" + Buffer.from("44278-33").toString("hex").slice(0, 16) + "03030d18", "hex");
    const [out] = guardAdvertisingReport(report(data));
    const [r] = parseLeAdvertisingReports(out)!;
    assert.equal(r.data.toString("hex"), "020106" + "0909" + Buffer.from("44278-33").toString("hex").slice(0, 16) + "03030d18");
    assert.equal(r.address, "d8:75:ba:00:00:01");
    assert.equal(r.rssi, -50);
  });

  it("passes every other packet as it is (the same buffer)", () => {
    const ok = report(Buffer.from("0201060a0900", "hex"));
    assert.equal(guardAdvertisingReport(ok)[0], ok);
    const event = Buffer.from("040e0401030c00", "hex");
    assert.equal(guardAdvertisingReport(event)[0], event);
  });

  it("on arbitrary advertising data: never adds bytes, and leaves no empty TX Power Level structure behind (10,000 runs)", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 31 }), (bytes) => {
        const data = Buffer.from(bytes);
        const out = withoutEmptyTxPower(data) ?? data;
        assert.ok(out.length <= data.length);
        for (let i = 0; i + 1 < out.length; ) {
          const length = out[i];
          if (length === 0 || i + 1 + length > out.length) break;
          assert.ok(!(out[i + 1] === 0x0a && length < 2), out.toString("hex"));
          i += 1 + length;
        }
      }),
      { numRuns: 10000 },
    );
  });
});
