import assert from "node:assert/strict";
import fc from "fast-check";
import { GattServer, type ServiceDefinition } from "../../src/sim/gatt-server";
import type { GattPeripheral } from "../../src/sim/peripheral";
import { createPeripheral } from "../../src/sim/peripherals";
import { HeartRatePeripheral } from "../../src/sim/peripherals/heart-rate";
import { HiokiDt4261Peripheral } from "../../src/sim/peripherals/hioki-dt4261";
import { NusYmodemPeripheral } from "../../src/sim/peripherals/nus-ymodem";
import { DEFAULT_SCENARIO } from "../../src/sim/scenario";
import { DEFAULT_LINK, type LinkSettings, type VirtualPeripheral } from "../../src/sim/types";
import { ScenarioError, type JsonObject } from "../../src/sim/validate";
import { TestCentral } from "../support/fake-central";
import { ManualClock } from "../support/manual-clock";

const h = (text: string): Buffer => Buffer.from(text.replace(/\s+/g, ""), "hex");
const NUS = "6e400001-b5a3-f393-e0a9-e50e24dcca9e";
const NUS_RX = "6e400002-b5a3-f393-e0a9-e50e24dcca9e";
const NUS_TX = "6e400003-b5a3-f393-e0a9-e50e24dcca9e";
const LONG = Buffer.from(Array.from({ length: 100 }, (_, i) => i));

interface Fixture {
  server: GattServer;
  central: TestCentral;
  writes: { uuid: string; value: Buffer; withoutResponse: boolean }[];
  events: string[];
  violations: string[];
}

/**
 * Handle layout of this table (checked in the first test):
 *   1 svc 180d (→8)   2 decl 2a37, 3 value, 4 CCCD   5 decl 2a38, 6 value   7 decl 2a39, 8 value
 *   9 svc NUS (→14)   10 decl RX, 11 value           12 decl TX, 13 value, 14 CCCD
 *  15 svc 180f (→18)  16 decl 2a19, 17 value, 18 CCCD
 *  19 svc fff0 (→27)  20 decl fff1, 21 value, 22 CCCD, 23 user description   24 decl fff2, 25 value   26 decl fff3, 27 value
 */
function fixture(maxMtu = 247): Fixture {
  const writes: Fixture["writes"] = [];
  let battery = 77;
  const services: ServiceDefinition[] = [
    {
      uuid: "180d",
      characteristics: [
        { uuid: "2a37", properties: ["notify"] },
        { uuid: "2a38", properties: ["read"], value: Buffer.of(1) },
        {
          uuid: "2a39",
          properties: ["write"],
          onWrite: (value, withoutResponse) => {
            writes.push({ uuid: "2a39", value, withoutResponse });
            return value.equals(Buffer.of(1)) ? undefined : 0x80;
          },
        },
      ],
    },
    {
      uuid: NUS,
      characteristics: [
        { uuid: NUS_RX, properties: ["write", "writeWithoutResponse"], onWrite: (value, withoutResponse) => void writes.push({ uuid: "rx", value, withoutResponse }) },
        { uuid: NUS_TX, properties: ["notify"] },
      ],
    },
    { uuid: "180f", characteristics: [{ uuid: "2a19", properties: ["read", "notify"], value: () => Buffer.of(battery++) }] },
    {
      uuid: "fff0",
      characteristics: [
        { uuid: "fff1", properties: ["read", "indicate"], value: Buffer.from("ind"), descriptors: [{ uuid: "2901", value: Buffer.from("Indicated thing") }] },
        { uuid: "fff2", properties: ["read"], value: LONG },
        { uuid: "fff3", properties: ["read", "write"], value: Buffer.from("initial") },
      ],
    },
  ];
  const server = new GattServer(services, { maxMtu });
  const events: string[] = [];
  const violations: string[] = [];
  server.on("subscribed", (uuid, s) => events.push(`subscribed ${uuid} ${s.notify ? "n" : ""}${s.indicate ? "i" : ""}`));
  server.on("unsubscribed", (uuid) => events.push(`unsubscribed ${uuid}`));
  server.on("violation", (m) => violations.push(m));
  const peripheral: VirtualPeripheral = {
    kind: "test",
    address: "c0:00:00:00:00:01",
    addressType: "random",
    name: "test",
    advertisingData: () => Buffer.alloc(0),
    scanResponseData: () => Buffer.alloc(0),
    connected: (link) => server.attach(link),
    receiveAtt: (pdu) => server.handlePdu(pdu),
    disconnected: () => server.detach(),
    close: () => server.detach(),
  };
  const central = new TestCentral(peripheral);
  central.connect();
  return { server, central, writes, events, violations };
}

async function settled(p: Promise<unknown>): Promise<string> {
  const marker = Symbol("pending");
  const result = await Promise.race([p.then(() => "resolved", (e: Error) => `rejected: ${e.message}`), new Promise((r) => setImmediate(() => r(marker)))]);
  return result === marker ? "pending" : (result as string);
}

describe("GattServer", () => {
  it("lays out handles: service, declaration, value, CCCD, descriptors", () => {
    const { server } = fixture();
    const rows = server.attributes.map((a) => `${a.handle} ${a.role} ${a.type}${a.endHandle ? `→${a.endHandle}` : ""}`);
    assert.deepEqual(rows, [
      "1 service 2800→8",
      "2 characteristic 2803",
      "3 value 2a37",
      "4 cccd 2902",
      "5 characteristic 2803",
      "6 value 2a38",
      "7 characteristic 2803",
      "8 value 2a39",
      "9 service 2800→14",
      "10 characteristic 2803",
      "11 value 6e400002b5a3f393e0a9e50e24dcca9e",
      "12 characteristic 2803",
      "13 value 6e400003b5a3f393e0a9e50e24dcca9e",
      "14 cccd 2902",
      "15 service 2800→18",
      "16 characteristic 2803",
      "17 value 2a19",
      "18 cccd 2902",
      "19 service 2800→27",
      "20 characteristic 2803",
      "21 value fff1",
      "22 cccd 2902",
      "23 descriptor 2901",
      "24 characteristic 2803",
      "25 value fff2",
      "26 characteristic 2803",
      "27 value fff3",
    ]);
    assert.deepEqual(server.handlesOf("0x2A37"), { declaration: 2, value: 3, cccd: 4, end: 4 });
    assert.deepEqual(server.handlesOf(NUS_RX), { declaration: 10, value: 11, cccd: null, end: 11 });
    assert.deepEqual(server.handlesOf("fff1"), { declaration: 20, value: 21, cccd: 22, end: 23 });
  });

  it("refuses a CCCD in the definitions and an MTU outside 23..517", () => {
    assert.throws(() => new GattServer([{ uuid: "180d", characteristics: [{ uuid: "2a37", properties: ["notify"], descriptors: [{ uuid: "2902" }] }] }]), /CCCD/);
    assert.throws(() => new GattServer([], { maxMtu: 22 }), RangeError);
    assert.throws(() => new GattServer([], { maxMtu: 518 }), RangeError);
  });

  describe("MTU exchange", () => {
    it("answers with its own maximum whatever the client asks, as real servers do; the link runs at the smaller value", () => {
      const f = fixture(247);
      assert.deepEqual(f.central.request(h("02 0001")), h("03 f700"), "client 256, server 247: answers 247");
      assert.equal(f.server.mtu, 247);
      const g = fixture(247);
      assert.deepEqual(g.central.request(h("02 6400")), h("03 f700"), "client 100: still answers 247, not 100");
      assert.equal(g.server.mtu, 100, "the link MTU is min(client, server)");
    });

    it("like the seed's NimBLE server: answers 512 to a request of 247 and sends notifications of at most 244 bytes", () => {
      const f = fixture(512);
      assert.deepEqual(f.central.request(h("02 f700")), h("03 0002"));
      assert.equal(f.server.mtu, 247);
      f.central.discoverAll();
      f.central.subscribe(NUS_TX);
      assert.doesNotThrow(() => void f.server.notify(NUS_TX, Buffer.alloc(244)));
      assert.throws(() => void f.server.notify(NUS_TX, Buffer.alloc(245)), RangeError, "never above link MTU − 3, whatever it answered");
    });

    it("never goes below 23", () => {
      const f = fixture();
      assert.deepEqual(f.central.request(h("02 0a00")), h("03 f700"));
      assert.equal(f.server.mtu, 23);
    });

    it("answers a second exchange the same way, keeps the link MTU and records it", () => {
      const f = fixture();
      f.central.exchangeMtu(100);
      assert.deepEqual(f.central.request(h("02 0001")), h("03 f700"));
      assert.equal(f.server.mtu, 100);
      assert.equal(f.violations.length, 1);
    });

    it("refuses a client PDU longer than the link MTU even when the server could receive it", () => {
      const f = fixture(517);
      f.central.discoverAll(100);
      const rx = f.server.handlesOf(NUS_RX).value;
      f.central.peripheral.receiveAtt(Buffer.concat([Buffer.of(0x52), Buffer.of(rx & 0xff, rx >> 8), Buffer.alloc(98)]));
      assert.equal(f.writes.length, 0, "a 101-byte Write Command on a link of MTU 100 is dropped");
      assert.equal(f.violations.filter((v) => /exceeds MTU 100/.test(v)).length, 1);
    });
  });

  describe("discovery as noble does it", () => {
    it("finds the services: 16-bit and 128-bit UUIDs in separate responses, ending on Attribute Not Found", () => {
      const f = fixture();
      const services = f.central.discoverServices();
      assert.deepEqual(
        services.map((s) => [s.uuid, s.startHandle, s.endHandle]),
        [
          ["180d", 1, 8],
          ["6e400001b5a3f393e0a9e50e24dcca9e", 9, 14],
          ["180f", 15, 18],
          ["fff0", 19, 27],
        ],
      );
      // MTU 23: the first response holds just 180d (the next is 128-bit); the last request gets the error.
      assert.deepEqual(f.central.responses[0], h("11 06 0100 0800 0d18"));
      assert.deepEqual(f.central.responses[f.central.responses.length - 1], h("01 10 1c00 0a"));
      assert.deepEqual(f.violations, []);
    });

    it("fits as many entries as the MTU allows", () => {
      const server = new GattServer(Array.from({ length: 8 }, (_, i) => ({ uuid: (0x1800 + i).toString(16), characteristics: [] })));
      const central = new TestCentral({ ...dummyPeripheral(), connected: (l) => server.attach(l), receiveAtt: (p) => server.handlePdu(p) });
      central.connect();
      // (23 − 2) / 6 = 3 entries per response at MTU 23.
      assert.equal(central.request(h("10 0100 ffff 0028")).length, 2 + 3 * 6);
      central.exchangeMtu(247);
      assert.equal(central.request(h("10 0100 ffff 0028")).length, 2 + 8 * 6);
    });

    it("finds characteristics, continuing after a CCCD until Attribute Not Found or the service end", () => {
      const f = fixture();
      f.central.discoverServices();
      const hr = f.central.discoverCharacteristics(f.central.services[0]);
      assert.deepEqual(
        hr.map((c) => [c.uuid, c.properties, c.startHandle, c.valueHandle, c.endHandle]),
        [
          ["2a37", 0x10, 2, 3, 4],
          ["2a38", 0x02, 5, 6, 6],
          ["2a39", 0x08, 7, 8, 8],
        ],
      );
      const nus = f.central.discoverCharacteristics(f.central.services[1]);
      assert.deepEqual(
        nus.map((c) => [c.uuid, c.properties, c.valueHandle, c.endHandle]),
        [
          ["6e400002b5a3f393e0a9e50e24dcca9e", 0x0c, 11, 12 - 1],
          ["6e400003b5a3f393e0a9e50e24dcca9e", 0x10, 13, 14],
        ],
      );
      // The service's last characteristic ends at a CCCD, so noble asks again from 14 and gets Not Found.
      assert.deepEqual(f.central.responses[f.central.responses.length - 1], h("01 08 0e00 0a"));
    });

    it("answers Find Information with start > end with an error (noble sends it for characteristics without descriptors)", () => {
      const f = fixture();
      f.central.discoverAll();
      assert.deepEqual(f.central.characteristic("2a38").descriptors, []);
      assert.deepEqual(f.central.request(h("04 0700 0600")), h("01 04 0700 01"));
      assert.deepEqual(f.central.characteristic("2a37").descriptors, [{ handle: 4, uuid: "2902" }]);
      assert.deepEqual(f.central.characteristic("fff1").descriptors, [
        { handle: 22, uuid: "2902" },
        { handle: 23, uuid: "2901" },
      ]);
      assert.deepEqual(f.violations, []);
    });

    it("Find Information lists 16-bit and 128-bit types in separate responses", () => {
      const f = fixture();
      assert.deepEqual(f.central.request(h("04 0900 0b00")), h("05 01 0900 0028 0a00 0328"));
      assert.deepEqual(f.central.request(h("04 0b00 0b00")), Buffer.concat([h("05 02 0b00"), Buffer.from("6e400002b5a3f393e0a9e50e24dcca9e", "hex").reverse()]));
      assert.deepEqual(f.central.request(h("04 1c00 ffff")), h("01 04 1c00 0a"));
    });

    it("Find By Type Value finds a primary service by UUID", () => {
      const f = fixture();
      assert.deepEqual(f.central.request(h("06 0100 ffff 0028 0f18")), h("07 0f00 1200"));
      assert.deepEqual(f.central.request(h("06 0100 ffff 0028 0a18")), h("01 06 0100 0a"));
    });

    it("Read By Type reads characteristic values by UUID too", () => {
      const f = fixture();
      assert.deepEqual(f.central.request(h("08 0100 ffff 382a")), h("09 03 0600 01"));
      assert.deepEqual(f.central.request(h("08 0100 ffff 372a")), h("01 08 0300 02"));
    });

    it("rejects bad handle ranges with Invalid Handle and unknown group types with Unsupported Group Type", () => {
      const f = fixture();
      assert.deepEqual(f.central.request(h("10 0000 ffff 0028")), h("01 10 0000 01"));
      assert.deepEqual(f.central.request(h("10 0500 0400 0028")), h("01 10 0500 01"));
      assert.deepEqual(f.central.request(h("08 0000 ffff 0328")), h("01 08 0000 01"));
      assert.deepEqual(f.central.request(h("10 0100 ffff 0328")), h("01 10 0100 10"));
      assert.deepEqual(f.central.request(h("10 0100 ffff 0128")), h("01 10 0100 0a"));
    });
  });

  describe("subscriptions", () => {
    it("returns the CCCD to noble's Read By Type 0x2902 and tracks the write", () => {
      const f = fixture();
      f.central.discoverAll();
      const { lookup, write } = f.central.setNotify("2a37", true);
      assert.deepEqual(lookup, h("09 04 0400 0000"));
      assert.deepEqual(write, h("13"));
      assert.deepEqual(f.server.subscription("2a37"), { notify: true, indicate: false });
      assert.deepEqual(f.central.readHandle(4).value, h("0100"));
      f.central.unsubscribe("2a37");
      assert.deepEqual(f.server.subscription("2a37"), { notify: false, indicate: false });
      assert.deepEqual(f.events, ["subscribed 2a37 n", "unsubscribed 2a37"]);
    });

    it("uses the indicate bit for an indicate-only characteristic", () => {
      const f = fixture();
      f.central.discoverAll();
      f.central.subscribe("fff1");
      assert.deepEqual(f.server.subscription("fff1"), { notify: false, indicate: true });
      assert.deepEqual(f.events, ["subscribed fff1 i"]);
    });

    it("refuses CCCD bits the characteristic does not support, and values not 2 bytes long", () => {
      const f = fixture();
      assert.deepEqual(f.central.request(h("12 0400 0200")), h("01 12 0400 fd"));
      assert.deepEqual(f.central.request(h("12 0400 01")), h("01 12 0400 0d"));
      assert.deepEqual(f.server.subscription("2a37"), { notify: false, indicate: false });
      assert.equal(f.violations.length, 1);
    });

    it("resets CCCDs, MTU and pending indications with the connection", async () => {
      const f = fixture();
      f.central.discoverAll();
      f.central.subscribe("2a37");
      f.central.subscribe("fff1");
      f.central.autoConfirm = false;
      const pending = f.server.indicate("fff1", Buffer.from("x"));
      f.central.disconnect();
      assert.equal(await settled(pending), "rejected: disconnected");
      assert.deepEqual(f.events.slice(-2).sort(), ["unsubscribed 2a37", "unsubscribed fff1"]);
      assert.equal(f.server.connected, false);
      const again = new TestCentral(f.central.peripheral);
      again.connect();
      assert.equal(f.server.mtu, 23);
      assert.deepEqual(f.server.subscription("2a37"), { notify: false, indicate: false });
      assert.deepEqual(again.request(h("0a 0400")), h("0b 0000"));
    });
  });

  describe("notifications", () => {
    it("sends a notification on the value handle and resolves once the link has sent it", async () => {
      const f = fixture();
      f.central.discoverAll();
      f.central.subscribe(NUS_TX);
      f.central.link.hold = true;
      const sent = f.server.notify(NUS_TX, Buffer.from("hello"));
      assert.deepEqual(f.central.received, [{ handle: 13, value: Buffer.from("hello"), indication: false }]);
      assert.equal(await settled(sent), "pending");
      f.central.link.release();
      assert.equal(await settled(sent), "resolved");
    });

    it("throws for a value longer than MTU − 3 instead of truncating it", () => {
      const f = fixture();
      f.central.discoverAll(23);
      f.central.subscribe(NUS_TX);
      assert.doesNotThrow(() => void f.server.notify(NUS_TX, Buffer.alloc(20)));
      assert.throws(() => void f.server.notify(NUS_TX, Buffer.alloc(21)), RangeError);
      const g = fixture();
      g.central.discoverAll(247);
      g.central.subscribe(NUS_TX);
      assert.doesNotThrow(() => void g.server.notify(NUS_TX, Buffer.alloc(244)));
      assert.throws(() => void g.server.notify(NUS_TX, Buffer.alloc(245)), RangeError);
    });

    it("throws when the central has not subscribed, or the characteristic cannot notify", () => {
      const f = fixture();
      f.central.discoverAll();
      assert.throws(() => void f.server.notify("2a37", Buffer.of(6, 55)), /not enabled notifications/);
      assert.throws(() => void f.server.notify("2a38", Buffer.of(1)), /no notify property/);
      f.central.disconnect();
      assert.throws(() => void f.server.notify("2a37", Buffer.of(6, 55)), /not connected/);
    });

    it("keeps thousands of notifications in order", async () => {
      const f = fixture();
      f.central.discoverAll();
      f.central.subscribe(NUS_TX);
      const values = Array.from({ length: 5000 }, (_, i) => Buffer.of(i & 0xff, i >> 8));
      await Promise.all(values.map((v) => f.server.notify(NUS_TX, v)));
      assert.deepEqual(f.central.valuesOf(NUS_TX), values);
    });
  });

  describe("indications", () => {
    it("keeps one indication outstanding and resolves each on its confirmation", async () => {
      const f = fixture();
      f.central.discoverAll();
      f.central.subscribe("fff1");
      f.central.autoConfirm = false;
      const a = f.server.indicate("fff1", Buffer.from("a"));
      const b = f.server.indicate("fff1", Buffer.from("b"));
      assert.deepEqual(f.central.received.map((r) => [r.handle, r.value.toString(), r.indication]), [[21, "a", true]]);
      assert.equal(f.server.pendingIndications, 2);
      assert.equal(await settled(a), "pending");
      f.central.confirm();
      assert.equal(await settled(a), "resolved");
      assert.equal(await settled(b), "pending");
      assert.deepEqual(f.central.valuesOf("fff1").map(String), ["a", "b"]);
      f.central.confirm();
      assert.equal(await settled(b), "resolved");
      assert.equal(f.server.pendingIndications, 0);
      assert.deepEqual(f.violations, []);
    });

    it("records a confirmation without an indication and sends no response", () => {
      const f = fixture();
      f.central.command(h("1e"));
      assert.equal(f.violations.length, 1);
    });

    it("drops queued indications when the central disables them", async () => {
      const f = fixture();
      f.central.discoverAll();
      f.central.subscribe("fff1");
      f.central.autoConfirm = false;
      const a = f.server.indicate("fff1", Buffer.from("a"));
      const b = f.server.indicate("fff1", Buffer.from("b"));
      f.central.unsubscribe("fff1");
      f.central.confirm();
      assert.equal(await settled(a), "resolved");
      assert.match(await settled(b), /rejected: .*disabled indications/);
      assert.deepEqual(f.central.valuesOf("fff1").map(String), ["a"]);
    });
  });

  describe("reads", () => {
    it("reads short values and calls value functions on every read", () => {
      const f = fixture();
      f.central.discoverAll();
      assert.deepEqual(f.central.read("2a38"), h("01"));
      assert.deepEqual(f.central.read("2a19"), h("4d"));
      assert.deepEqual(f.central.read("2a19"), h("4e"));
    });

    it("reads a long value with Read Blob exactly as noble does", () => {
      const f = fixture();
      f.central.discoverAll(23);
      const before = f.central.responses.length;
      assert.deepEqual(f.central.read("fff2"), LONG);
      const pdus = f.central.responses.slice(before);
      // 22 bytes per response at MTU 23: 22 + 22 + 22 + 22 + 12.
      assert.deepEqual(
        pdus.map((p) => [p[0], p.length]),
        [
          [0x0b, 23],
          [0x0d, 23],
          [0x0d, 23],
          [0x0d, 23],
          [0x0d, 13],
        ],
      );
    });

    it("answers a Read Blob at offset == length with an empty value (value exactly MTU − 1 long)", () => {
      const f = fixture();
      f.central.exchangeMtu(101);
      assert.equal(f.server.mtu, 101);
      f.central.discoverServices();
      f.central.discoverCharacteristics(f.central.services[3]);
      assert.deepEqual(f.central.read("fff2"), LONG);
      assert.deepEqual(f.central.responses[f.central.responses.length - 1], h("0d"));
      assert.deepEqual(f.central.request(h("0c 1900 6500")), h("01 0c 1900 07"));
    });

    it("refuses reads of unreadable or unknown handles", () => {
      const f = fixture();
      assert.deepEqual(f.central.request(h("0a 0300")), h("01 0a 0300 02"));
      assert.deepEqual(f.central.request(h("0a 0800")), h("01 0a 0800 02"));
      assert.deepEqual(f.central.request(h("0a 0000")), h("01 0a 0000 01"));
      assert.deepEqual(f.central.request(h("0a e703")), h("01 0a e703 01"));
      assert.deepEqual(f.central.request(h("0a 1700")), Buffer.concat([h("0b"), Buffer.from("Indicated thing")]));
    });

    it("answers Unlikely Error when a value function throws, and records it", () => {
      const server = new GattServer([
        {
          uuid: "aaaa",
          characteristics: [
            {
              uuid: "aaab",
              properties: ["read"],
              value: () => {
                throw new Error("boom");
              },
            },
          ],
        },
      ]);
      const violations: string[] = [];
      server.on("violation", (m) => violations.push(m));
      const central = new TestCentral({ ...dummyPeripheral(), connected: (l) => server.attach(l), receiveAtt: (p) => server.handlePdu(p) });
      central.connect();
      assert.deepEqual(central.request(h("0a 0300")), h("01 0a 0300 0e"));
      assert.match(violations[0], /boom/);
    });
  });

  describe("writes", () => {
    it("Write Request: handler result becomes the response; read-only and unknown handles are refused", () => {
      const f = fixture();
      f.central.discoverAll();
      assert.deepEqual(f.central.write("2a39", h("01")), [h("13")]);
      assert.deepEqual(f.central.write("2a39", h("02")), [h("01 12 0800 80")]);
      assert.deepEqual(f.central.write("2a38", h("02")), [h("01 12 0600 03")]);
      assert.deepEqual(f.central.request(h("12 e703 00")), h("01 12 e703 01"));
      assert.deepEqual(
        f.writes.map((w) => [w.uuid, w.value.toString("hex"), w.withoutResponse]),
        [
          ["2a39", "01", false],
          ["2a39", "02", false],
        ],
      );
    });

    it("stores written values of characteristics with a fixed value", () => {
      const f = fixture();
      f.central.discoverAll();
      assert.deepEqual(f.central.read("fff3"), Buffer.from("initial"));
      f.central.write("fff3", "changed");
      assert.deepEqual(f.central.read("fff3"), Buffer.from("changed"));
    });

    it("Write Command: delivered without a response; dropped (and recorded) where not permitted", () => {
      const f = fixture();
      f.central.discoverAll();
      f.central.write(NUS_RX, "C", true);
      f.central.write("fff3", "x", true);
      assert.deepEqual(
        f.writes.map((w) => [w.uuid, w.value.toString(), w.withoutResponse]),
        [["rx", "C", true]],
      );
      assert.deepEqual(f.central.read("fff3"), Buffer.from("initial"));
      assert.equal(f.violations.length, 1);
    });

    it("drops and records a Write Command longer than the MTU (noble does not split those)", () => {
      const f = fixture();
      f.central.discoverAll(23);
      f.central.write(NUS_RX, Buffer.alloc(21), true);
      assert.deepEqual(f.writes, []);
      assert.match(f.violations[0], /exceeds MTU 23/);
    });

    it("long writes: Prepare Write echoes, Execute Write delivers the assembled value once", () => {
      const f = fixture();
      f.central.discoverAll(23);
      const data = Buffer.from(Array.from({ length: 50 }, (_, i) => 0x30 + (i % 10)));
      const responses = f.central.write(NUS_RX, data);
      assert.deepEqual(
        responses.map((r) => r.toString("hex")),
        [
          Buffer.concat([h("17 0b00 0000"), data.subarray(0, 18)]).toString("hex"),
          Buffer.concat([h("17 0b00 1200"), data.subarray(18, 36)]).toString("hex"),
          Buffer.concat([h("17 0b00 2400"), data.subarray(36)]).toString("hex"),
          "19",
        ],
      );
      assert.deepEqual(f.writes, [{ uuid: "rx", value: data, withoutResponse: false }]);
    });

    it("cancels prepared writes, refuses gaps and unwritable handles", () => {
      const f = fixture();
      assert.deepEqual(f.central.request(h("16 0b00 0000 aabb")), h("17 0b00 0000 aabb"));
      assert.deepEqual(f.central.request(h("18 00")), h("19"));
      assert.deepEqual(f.central.request(h("16 0b00 0500 aabb")), h("17 0b00 0500 aabb"));
      assert.deepEqual(f.central.request(h("18 01")), h("01 18 0b00 07"));
      assert.deepEqual(f.central.request(h("16 0600 0000 aa")), h("01 16 0600 03"));
      assert.deepEqual(f.central.request(h("18 01")), h("19"));
      assert.deepEqual(f.writes, []);
    });

    it("returns the handler's error for an executed long write", () => {
      const f = fixture();
      f.central.request(h("16 0800 0000 02"));
      assert.deepEqual(f.central.request(h("18 01")), h("01 18 0800 80"));
    });
  });

  describe("bad PDUs", () => {
    it("answers a malformed request with Unlikely Error (not Invalid PDU, which stalls noble) and records it", () => {
      const f = fixture();
      assert.deepEqual(f.central.request(h("0a 03")), h("01 0a 0000 0e"));
      assert.deepEqual(f.central.request(h("08 0100 ffff 03")), h("01 08 0100 0e"));
      assert.equal(f.violations.length, 2);
    });

    it("answers unknown requests with Request Not Supported and ignores unknown commands", () => {
      const f = fixture();
      assert.deepEqual(f.central.request(h("0e 0300 0600")), h("01 0e 0000 06"));
      f.central.command(h("d2 0b00 aa"));
    });

    it("never throws and never answers with 0x04, 0x05, 0x08 or 0x0F, whatever it receives", () => {
      fc.assert(
        fc.property(fc.array(fc.uint8Array({ minLength: 0, maxLength: 40 }), { maxLength: 30 }), (pdus) => {
          const f = fixture();
          for (const pdu of pdus) f.central.peripheral.receiveAtt(Buffer.from(pdu));
          for (const r of f.central.responses) {
            assert.ok(r[0] % 2 === 1, "responses have odd opcodes");
            if (r[0] === 0x01) assert.ok(![0x04, 0x05, 0x08, 0x0f].includes(r[4]), r.toString("hex"));
          }
        }),
        { numRuns: 300 },
      );
    });
  });
});

describe("the serverMtu scenario option (what a simulated peripheral answers to Exchange MTU)", () => {
  const entry = { kind: "nus-ymodem", address: "e3:c3:5c:00:00:01", sizeBytes: 1000 };

  /** Builds the scenario entry's peripheral, connects, asks for `desired`: the server's answer and the link's MTU. */
  function exchange(spec: JsonObject, desired: number, link: Partial<LinkSettings> = {}): { answer: number; linkMtu: number } {
    const peripheral = createPeripheral(spec, "peripherals[0]", { clock: new ManualClock(), link: { ...DEFAULT_LINK, ...link }, baseDir: "" }) as unknown as GattPeripheral;
    const central = new TestCentral(peripheral);
    central.connect();
    const response = central.request(Buffer.concat([Buffer.of(0x02), Buffer.of(desired & 0xff, desired >> 8)]));
    assert.equal(response[0], 0x03, "Exchange MTU Response");
    return { answer: response.readUInt16LE(1), linkMtu: peripheral.gatt.mtu };
  }

  it("by default every kind answers the link's maxMtu (517 unless the scenario says otherwise), not the client's value", () => {
    assert.equal(DEFAULT_LINK.maxMtu, 517);
    for (const spec of [entry, { kind: "heart-rate", address: "d8:75:ba:00:00:01" }, { kind: "hioki-dt4261", address: "a4:9e:69:00:00:01" }]) {
      assert.deepEqual(exchange(spec, 256), { answer: 517, linkMtu: 256 }, spec.kind);
    }
    assert.deepEqual(exchange(entry, 256, { maxMtu: 185 }), { answer: 185, linkMtu: 185 });
  });

  it("a server or peripheral built without a scenario answers the same default as the link's (one source: DEFAULT_SERVER_MTU)", () => {
    assert.equal(new GattServer([]).maxMtu, DEFAULT_LINK.maxMtu);
    const clock = new ManualClock();
    const built = [
      new HeartRatePeripheral({ address: "d8:75:ba:00:00:01", clock }),
      new HiokiDt4261Peripheral({ address: "a4:9e:69:00:00:01", clock }),
      new NusYmodemPeripheral({ address: "e3:c3:5c:00:00:01", clock, files: [{ name: "a.bin", data: Buffer.alloc(10) }] }),
    ];
    for (const p of built) assert.equal(p.gatt.maxMtu, DEFAULT_LINK.maxMtu, p.kind);
  });

  it("serverMtu: 512 answers 512 to a request of 247, like the seed's NimBLE file server, and the link runs at 247", () => {
    assert.deepEqual(exchange({ ...entry, serverMtu: 512 }, 247), { answer: 512, linkMtu: 247 });
    assert.deepEqual(exchange({ ...entry, serverMtu: 23 }, 247), { answer: 23, linkMtu: 23 });
  });

  it("the built-in scenario's file server answers 512, as the seed's does", () => {
    const nus = DEFAULT_SCENARIO.peripherals.find((p) => p.kind === "nus-ymodem");
    assert.ok(nus);
    assert.equal(exchange(nus as unknown as JsonObject, 247).answer, 512);
  });

  it("a heart-rate packet may be as long as serverMtu − 3 allows", () => {
    const hr = { kind: "heart-rate", address: "d8:75:ba:00:00:01", serverMtu: 30 };
    assert.doesNotThrow(() => exchange({ ...hr, packets: ["00".repeat(27)] }, 256));
    assert.throws(() => exchange({ ...hr, packets: ["00".repeat(28)] }, 256), (e: unknown) => e instanceof ScenarioError && e.field === "peripherals[0].packets[0]");
  });

  it("rejects values that are not whole numbers 23 … 517, naming the field", () => {
    for (const [value, message] of [
      ["512", /must be a number/],
      [22, /between 23 and 517$/],
      [518, /between 23 and 517$/],
      [247.5, /whole number/],
    ] as const) {
      assert.throws(
        () => exchange({ ...entry, serverMtu: value }, 247),
        (e: unknown) => e instanceof ScenarioError && e.field === "peripherals[0].serverMtu" && message.test(e.message),
        String(value),
      );
    }
  });
});

function dummyPeripheral(): VirtualPeripheral {
  return {
    kind: "test",
    address: "c0:00:00:00:00:02",
    addressType: "random",
    name: "dummy",
    advertisingData: () => Buffer.alloc(0),
    scanResponseData: () => Buffer.alloc(0),
    connected: () => undefined,
    receiveAtt: () => undefined,
    disconnected: () => undefined,
    close: () => undefined,
  };
}
