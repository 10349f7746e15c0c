/**
 * What the ble-scan node does with each report (src/red/scan-reports.ts), on a manual clock: the per-device limits
 * over time (throttle, one error a minute), the bound on the devices it remembers, its properties, and reports of
 * any shape (they come from the radio) never making it throw.
 */
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { createRequire } from "node:module";
import fc from "fast-check";
import * as fs from "node:fs";
import * as path from "node:path";
import { decodeAdvertisement } from "../../src/protocol/advertisement";
import { buildLeMetaEvent } from "../../src/protocol/hci-packets";
import { MAX_DEVICES, manufacturerIdProperty, scanOptions, ScanReports, scanStatus, type ReportSource, type ScanDef } from "../../src/red/scan-reports";
import { translate } from "../support/catalog";

const PLAIN = "40000102ca09"; // BTHome v2, packet id 1, temperature 25.06 °C
const ENCRYPTED = "41aabbccdd0100000011223344"; // BTHome v2, encrypted: needs a bind key

function report(address: string, serviceData = PLAIN, rssi = -60): ReportSource {
  return { address, addressType: "random", rssi, connectable: false, advertisement: { localName: "", serviceUuids: [], serviceData: [{ uuid: "fcd2", data: Buffer.from(serviceData, "hex") }] } };
}

function reports(def: ScanDef = {}): { r: ScanReports; clock: { now: number } } {
  const clock = { now: 1_000_000 };
  return { r: new ScanReports(scanOptions(def, new Map()), () => clock.now), clock };
}

describe("ble-scan reports (src/red/scan-reports.ts)", () => {
  it("throttle: one message per device per period, each device on its own", () => {
    const { r, clock } = reports({ throttle: "1000" });
    const kinds = (): (string | undefined)[] => ["c0:00:00:00:00:01", "c0:00:00:00:00:02"].map((a) => r.handle(report(a))?.kind);
    assert.deepEqual(kinds(), ["message", "message"]);
    clock.now += 999;
    assert.deepEqual(kinds(), [undefined, undefined]);
    clock.now += 1;
    assert.deepEqual(kinds(), ["message", "message"]);
  });

  it("onlyChanges: a new BTHome packet with the same readings is no change; new readings are", () => {
    const { r } = reports({ onlyChanges: true });
    const a = "c0:00:00:00:00:01";
    assert.equal(r.handle(report(a, "40000102ca09"))?.kind, "message");
    assert.equal(r.handle(report(a, "40000102ca09")), null, "the same packet again");
    assert.equal(r.handle(report(a, "40000202ca09")), null, "packet id 2, same temperature");
    assert.equal(r.handle(report(a, "40000302cb09"))?.kind, "message", "25.07 °C");
  });

  it("decode off: raw data only, no key needed; onlyChanges then compares the advertised data", () => {
    const { r } = reports({ decode: "false", onlyChanges: true });
    const a = "c0:00:00:00:00:05";
    const first = r.handle(report(a, ENCRYPTED));
    assert.equal(first?.kind, "message");
    assert.deepEqual(first.kind === "message" && first.payload.serviceData, [{ uuid: "fcd2", data: ENCRYPTED }]);
    assert.equal(first.kind === "message" && first.payload.decoded, null);
    assert.equal(r.handle(report(a, ENCRYPTED, -80)), null, "the same data at another signal strength");
    assert.equal(r.handle(report(a, PLAIN))?.kind, "message");
  });

  it("an encrypted advertisement without its key: one error per device a minute, never a message", () => {
    const { r, clock } = reports();
    const outcome = r.handle(report("c0:00:00:00:00:05", ENCRYPTED));
    assert.deepEqual(outcome, { kind: "error", problem: { code: "bthome-no-key", params: { address: "c0:00:00:00:00:05" }, address: "c0:00:00:00:00:05", name: "" } });
    clock.now += 59_999;
    assert.equal(r.handle(report("c0:00:00:00:00:05", ENCRYPTED)), null);
    assert.equal(r.handle(report("c0:00:00:00:00:06", ENCRYPTED))?.kind, "error", "another device has its own limit");
    clock.now += 1;
    assert.equal(r.handle(report("c0:00:00:00:00:05", ENCRYPTED))?.kind, "error");
  });

  it("a radio sending encrypted or malformed BTHome from ever new addresses cannot flood the log: a bounded number of errors a minute", () => {
    const { r, clock } = reports();
    const address = (i: number): string => `d0:00:00:00:${((i >> 8) & 0xff).toString(16).padStart(2, "0")}:${(i & 0xff).toString(16).padStart(2, "0")}`;
    const errors = (from: number, count: number): number => {
      let n = 0;
      for (let i = from; i < from + count; i++) {
        const outcome = r.handle(report(address(i), i % 2 === 0 ? ENCRYPTED : "20"));
        assert.notEqual(outcome?.kind, "message");
        if (outcome?.kind === "error") n++;
      }
      return n;
    };
    const first = errors(0, 5000);
    assert.ok(first >= 1 && first <= 20, `errors in the first minute: ${first}`);
    clock.now += 60_000;
    const next = errors(5000, 5000);
    assert.ok(next >= 1 && next <= 20, `errors in the next minute: ${next}`);
  });

  it(`remembers at most ${MAX_DEVICES} devices, forgetting the one heard least recently`, () => {
    const { r } = reports({ throttle: "600000" });
    const address = (i: number): string => `c0:00:00:00:${((i >> 8) & 0xff).toString(16).padStart(2, "0")}:${(i & 0xff).toString(16).padStart(2, "0")}`;
    for (let i = 0; i < MAX_DEVICES; i++) assert.equal(r.handle(report(address(i)))?.kind, "message");
    assert.equal(r.handle(report(address(0))), null, "device 0 is throttled, and now the most recently heard");
    assert.equal(r.handle(report(address(MAX_DEVICES)))?.kind, "message");
    assert.equal(r.deviceCount, MAX_DEVICES);
    assert.equal(r.handle(report(address(1)))?.kind, "message", "device 1 was forgotten: its throttle with it");
    assert.equal(r.handle(report(address(0))), null, "device 0 was kept");
  });

  it("reads the company identifier in decimal or hex, and refuses anything else naming the property", () => {
    assert.equal(manufacturerIdProperty("76"), 76);
    assert.equal(manufacturerIdProperty("0x004C"), 76);
    assert.equal(manufacturerIdProperty(""), null);
    for (const bad of ["0x10000", "65536", "-1", "4c", "apple"]) assert.throws(() => manufacturerIdProperty(bad), /^RangeError: manufacturerId must be a company identifier/);
    assert.throws(() => scanOptions({ service: "heart" }, new Map()), /^RangeError: service must be a Bluetooth UUID/);
    assert.throws(() => scanOptions({ minRssi: "-200" }, new Map()), /minRssi must be a whole number between -127 and 20/);
  });

  it("status: a passive scan the stack cannot do is a yellow ring naming the stack; otherwise a green dot", () => {
    const t = (key: string, subs?: Record<string, string | number>): string => translate(`ble-scan.${key}`, subs);
    assert.deepEqual(scanStatus(3, true, { transport: "bluez", adapter: "hci0" }, t), { fill: "yellow", shape: "ring", text: "scanning: 3 devices, active scan (BlueZ)" });
    assert.deepEqual(scanStatus(3, true, { transport: "native" }, t, "darwin"), { fill: "yellow", shape: "ring", text: "scanning: 3 devices, active scan (macOS)" });
    assert.deepEqual(scanStatus(3, false, { transport: "bluez", adapter: "hci0" }, t), { fill: "green", shape: "dot", text: "scanning: 3 devices" }, "an active node gets what it asks");
    assert.deepEqual(scanStatus(0, true, { transport: "hci", hciDevice: 0 }, t), { fill: "green", shape: "dot", text: "scanning: 0 devices" });
  });

  it("leaves out a service-data entry whose UUID reads as none, and keeps the others (a radio's report, not a crash)", () => {
    const { r } = reports();
    const outcome = r.handle({
      address: "c0:00:00:00:00:01",
      rssi: -60,
      advertisement: { serviceData: [{ uuid: "", data: Buffer.alloc(0) }, { uuid: "fcd2", data: Buffer.from(PLAIN, "hex") }] },
    });
    assert.ok(outcome && outcome.kind === "message");
    assert.deepEqual(outcome.payload.serviceData, [{ uuid: "fcd2", data: PLAIN }]);
  });

  it("txPower: a controller's extended report as noble gives it is the signed dBm, or null when not available", () => {
    // noble 2.8's own HCI stack parses an LE Extended Advertising Report (controllers with extended advertising) and
    // takes its TX_Power byte unsigned as the advertisement's txPowerLevel; 0x7F means "not available".
    const nobleRequire = createRequire(require.resolve("@stoprocent/noble"));
    const Hci = nobleRequire("./lib/hci-socket/hci.js") as { prototype: object };
    const Gap = nobleRequire("./lib/hci-socket/gap.js") as new (hci: EventEmitter) => EventEmitter;
    const txPowerOf = (headerTxPower: number, data: string): unknown => {
      const hci = Object.create(Hci.prototype) as EventEmitter & { onSocketData(data: Buffer): void };
      EventEmitter.call(hci);
      let advertisement: ReportSource["advertisement"];
      new Gap(hci).on("discover", (...args: unknown[]) => (advertisement = args[4] as ReportSource["advertisement"]));
      // Legacy ADV_NONCONN_IND as an extended report (reported at once), random address c0:00:00:00:00:03, LE 1M.
      const fixed = Buffer.concat([Buffer.from("100001" + "0300000000c0" + "0100ff", "hex"), Buffer.of(headerTxPower), Buffer.from("c4" + "0000" + "00000000000000", "hex")]);
      hci.onSocketData(buildLeMetaEvent(0x0d, Buffer.concat([Buffer.of(1), fixed, Buffer.of(data.length / 2), Buffer.from(data, "hex")])));
      assert.ok(advertisement, "noble reported it");
      const outcome = reports().r.handle({ address: "c0:00:00:00:00:03", addressType: "random", rssi: -60, connectable: false, advertisement });
      assert.ok(outcome && outcome.kind === "message");
      return outcome.payload.txPower;
    };
    assert.equal(txPowerOf(0x7f, "020106"), null, "not available");
    assert.equal(txPowerOf(0xf6, "020106"), -10);
    assert.equal(txPowerOf(0x04, "020106"), 4);
    assert.equal(txPowerOf(0x7f, "020106" + "020af6"), -10, "the advertised TX Power Level AD structure");
  });

  it("the help names every field of every decoded type, and what a bind-key list and BTHome names may hold", () => {
    const help = fs.readFileSync(path.join(__dirname, "..", "..", "nodes", "locales", "en-US", "ble-scan.html"), "utf8");
    const inCode = (word: string): boolean => [...help.matchAll(/<code>([^<]*)<\/code>/g)].some((m) => new RegExp(`(^|[^\\w-])${word}($|[^\\w-])`).test(m[1]));
    const hex = (s: string): Buffer => Buffer.from(s, "hex");
    const samples = [
      { manufacturerData: hex("4c000215" + "e2c56db5dffb48d2b060d0f5a71096e0" + "00010002c5") },
      { serviceData: [{ uuid: "feaa", data: hex("00e7" + "00112233445566778899" + "aabbccddeeff") }] },
      { serviceData: [{ uuid: "feaa", data: hex("10e7" + "01" + "6578616d706c6507") }] },
      { serviceData: [{ uuid: "feaa", data: hex("2000" + "0c1a" + "1500" + "00000010" + "00000020") }] },
      // A trigger-based BTHome sensor whose last object is cut short: every flag the decoder sets.
      { serviceData: [{ uuid: "fcd2", data: hex("44" + "0001" + "02ca09" + "03") }] },
    ];
    for (const sample of samples) {
      const decoded = decodeAdvertisement({ address: "c0:00:00:00:00:01", serviceData: [], ...sample });
      assert.ok(decoded, JSON.stringify(sample));
      assert.ok(inCode(decoded.type), `the type ${decoded.type}`);
      for (const key of Object.keys(decoded)) if (key !== "type" && key !== "temperature") assert.ok(inCode(key), `${decoded.type}: ${key}`);
    }
    // BTHome names that are not the specification's plain word: the binary sensors that share a measurement's name.
    for (const name of ["batteryLow", "powerOn", "massKg", "button", "dimmer"]) assert.ok(inCode(name), name);
    assert.match(help, /<code>#<\/code>/, "comments in the bind-key list");
  });

  it("never throws on reports of any shape (10,000 runs)", () => {
    const { r } = reports({ onlyChanges: true, service: "fcd2" });
    const anything = fc.anything({ withBigInt: true, withTypedArray: true });
    const bytes = fc.uint8Array({ maxLength: 40 }).map((b) => Buffer.from(b));
    const source = fc.record({
      address: fc.oneof(fc.constantFrom("c0:00:00:00:00:01", "C0:00:00:00:00:02"), fc.string(), anything),
      addressType: fc.oneof(fc.constantFrom("public", "random"), anything),
      rssi: fc.oneof(fc.integer({ min: -127, max: 20 }), anything),
      connectable: anything,
      advertisement: fc.oneof(
        anything,
        fc.record({
          localName: fc.oneof(fc.string(), anything),
          txPowerLevel: fc.oneof(fc.integer(), anything),
          serviceUuids: fc.oneof(fc.array(fc.oneof(fc.constantFrom("fcd2", "feaa", "180d"), fc.string()), { maxLength: 4 }), anything),
          manufacturerData: fc.oneof(bytes, anything),
          serviceData: fc.oneof(fc.array(fc.record({ uuid: fc.oneof(fc.constantFrom("fcd2", "feaa"), anything), data: fc.oneof(bytes, anything) }), { maxLength: 3 }), anything),
        }),
      ),
    });
    fc.assert(
      fc.property(source, (s) => {
        r.handle(s as unknown as ReportSource);
      }),
      { numRuns: 10000 },
    );
  });
});
