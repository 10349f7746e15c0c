import assert from "node:assert/strict";
import { AttOpcode } from "../../src/protocol/att";
import { decodeHeartRateMeasurement } from "../../src/protocol/heart-rate";
import { HeartRatePeripheral } from "../../src/sim/peripherals/heart-rate";
import { HiokiDt4261Peripheral, serialFromAddress } from "../../src/sim/peripherals/hioki-dt4261";
import { createPeripheral, PERIPHERAL_KINDS } from "../../src/sim/peripherals/index";
import { GattPeripheral } from "../../src/sim/peripheral";
import { DEFAULT_LINK, type PeripheralContext } from "../../src/sim/types";
import { ScenarioError, type JsonObject } from "../../src/sim/validate";
import { TestCentral } from "../support/fake-central";
import { ManualClock } from "../support/manual-clock";

const h = (text: string): Buffer => Buffer.from(text.replace(/\s+/g, ""), "hex");
const HRM = "2a37";
const CMD = "78b028ce-affd-4967-ab9e-dc336c8c94e7";
const OTA = "f7bf3564-fb6d-4e53-88a4-5e37e0326063";

/** AD structures as [type, data] pairs. */
function adStructures(data: Buffer): [number, Buffer][] {
  const out: [number, Buffer][] = [];
  for (let i = 0; i < data.length; i += data[i] + 1) out.push([data[i + 1], data.subarray(i + 2, i + 1 + data[i])]);
  return out;
}

function context(clock: ManualClock, maxMtu = DEFAULT_LINK.maxMtu): PeripheralContext {
  return { clock, link: { ...DEFAULT_LINK, maxMtu }, baseDir: "" };
}

function connect(peripheral: GattPeripheral, mtu = 247): TestCentral {
  const central = new TestCentral(peripheral);
  central.connect();
  central.discoverAll(mtu);
  return central;
}

describe("virtual peripherals", () => {
  describe("advertising (GattPeripheral)", () => {
    it("heart-rate: flags, 0x180D and the name in ADV_IND", () => {
      const p = new HeartRatePeripheral({ address: "d8:75:ba:00:00:01", clock: new ManualClock() });
      assert.deepEqual(adStructures(p.advertisingData()), [
        [0x01, h("06")],
        [0x02, h("0d18")], // incomplete: 0x180F is not listed
        [0x09, Buffer.from("HRM-0001")],
      ]);
      assert.deepEqual(p.scanResponseData(), Buffer.alloc(0));
      assert.equal(p.addressType, "random");
    });

    it("hioki: HID 0x1812 in ADV_IND, the full name in the scan response (it does not fit beside them)", () => {
      const p = new HiokiDt4261Peripheral({ address: "a4:9e:69:00:30:39", clock: new ManualClock() });
      assert.equal(p.name, "Z3210V2.10:DT4261#000012345");
      assert.deepEqual(adStructures(p.advertisingData()), [
        [0x01, h("06")],
        [0x02, h("1218")],
      ]);
      assert.deepEqual(adStructures(p.scanResponseData()), [[0x09, Buffer.from("Z3210V2.10:DT4261#000012345")]]);
      assert.equal(p.addressType, "public");
    });

    it("shortens a name longer than 29 bytes, at a UTF-8 character boundary", () => {
      const p = new HeartRatePeripheral({ address: "d8:75:ba:00:00:01", name: "Heart rate sensor with a very long name ♥♥", clock: new ManualClock() });
      assert.ok(p.advertisingData().length <= 31);
      const [[type, name]] = adStructures(p.scanResponseData());
      assert.equal(type, 0x08);
      assert.equal(name.toString("utf8"), "Heart rate sensor with a very");
      assert.ok(p.scanResponseData().length <= 31);
      const q = new HeartRatePeripheral({ address: "d8:75:ba:00:00:01", name: "♥".repeat(12), clock: new ManualClock() });
      const [[, name2]] = adStructures(q.scanResponseData());
      assert.equal(name2.toString("utf8"), "♥".repeat(9)); // 27 bytes: a 10th would need 30
    });
  });

  describe("heart-rate", () => {
    let clock: ManualClock;
    beforeEach(() => (clock = new ManualClock()));

    it("has GAP, GATT, Heart Rate and Battery services with the expected characteristics", () => {
      const central = connect(new HeartRatePeripheral({ address: "d8:75:ba:00:00:01", clock }));
      assert.deepEqual(
        central.services.map((s) => [s.uuid, s.characteristics.map((c) => `${c.uuid}:${c.properties.toString(16)}`)]),
        [
          ["1800", ["2a00:2", "2a01:2"]],
          ["1801", ["2a05:20"]],
          ["180d", ["2a37:10", "2a38:2", "2a39:8"]],
          ["180f", ["2a19:12"]],
        ],
      );
      assert.deepEqual(central.read("2a00"), Buffer.from("HRM-0001"));
      assert.deepEqual(central.read("2a38"), h("01"));
      assert.deepEqual(central.read("2a19"), h("64"));
    });

    it("notifies one measurement per interval while subscribed, cycling through bpm", () => {
      const p = new HeartRatePeripheral({ address: "d8:75:ba:00:00:01", clock, bpm: [45, 46], intervalMs: 1000 });
      const central = connect(p);
      clock.advance(5000);
      assert.deepEqual(central.received, [], "nothing before the subscription");
      central.subscribe(HRM);
      clock.advance(999);
      assert.equal(central.received.length, 0);
      clock.advance(1);
      assert.deepEqual(central.valuesOf(HRM), [h("06 2d")]);
      clock.advance(2000);
      assert.deepEqual(central.valuesOf(HRM), [h("06 2d"), h("06 2e"), h("06 2d")]);
      central.unsubscribe(HRM);
      clock.advance(5000);
      assert.equal(central.valuesOf(HRM).length, 3, "nothing after unsubscribing");
      assert.deepEqual(p.violations, []);
    });

    it("continues the cycle across reconnects, and cancels its timers on disconnect", () => {
      const p = new HeartRatePeripheral({ address: "d8:75:ba:00:00:01", clock, bpm: [45, 46, 47] });
      const first = connect(p);
      first.subscribe(HRM);
      clock.advance(2000);
      first.disconnect(0x08);
      assert.equal(clock.pending, 0);
      clock.advance(5000);
      const second = connect(p);
      second.subscribe(HRM);
      clock.advance(2000);
      assert.deepEqual(first.valuesOf(HRM), [h("06 2d"), h("06 2e")]);
      assert.deepEqual(second.valuesOf(HRM), [h("06 2f"), h("06 2d")]);
    });

    it("adds RR intervals and a growing energy counter; uses uint16 above 255 bpm", () => {
      const p = new HeartRatePeripheral({ address: "d8:75:ba:00:00:01", clock, bpm: [60, 300], rrIntervals: true, energyExpended: true });
      const central = connect(p);
      central.subscribe(HRM);
      clock.advance(3000);
      const [a, b, c] = central.valuesOf(HRM);
      assert.deepEqual(a, h("1e 3c 0100 0004")); // 60 bpm, contact, 1 kJ, RR 1024/1024 s
      assert.deepEqual(decodeHeartRateMeasurement(b), { bpm: 300, sensorContact: true, energyExpended: 2, rrIntervals: [(205 * 1000) / 1024], rrIntervalsRaw: [205] }); // 60000/300 ms = 204.8/1024 s
      assert.equal(b[0] & 0x01, 1);
      assert.equal(decodeHeartRateMeasurement(c).energyExpended, 3);
    });

    it("resets energy expended through the Control Point, and answers 0x80 to anything else", () => {
      const p = new HeartRatePeripheral({ address: "d8:75:ba:00:00:01", clock, bpm: [60], energyExpended: true });
      const central = connect(p);
      central.subscribe(HRM);
      clock.advance(3000);
      assert.equal(p.energyExpendedKj, 3);
      assert.deepEqual(central.write("2a39", h("01")), [h("13")]);
      assert.equal(p.energyExpendedKj, 0);
      clock.advance(1000);
      assert.equal(decodeHeartRateMeasurement(central.valuesOf(HRM)[3]).energyExpended, 1);
      const cp = central.characteristic("2a39").valueHandle;
      for (const bad of ["02", "00", "0101"]) {
        assert.deepEqual(central.write("2a39", h(bad)), [Buffer.concat([h("01 12"), Buffer.of(cp & 0xff, cp >> 8), h("80")])], bad);
      }
      assert.equal(p.energyExpendedKj, 1);
    });

    it("sends raw packets verbatim, cycling", () => {
      const p = new HeartRatePeripheral({ address: "d8:75:ba:00:00:01", clock, packets: [h("0637"), h("16318704 8704"), h("0448")], intervalMs: 500 });
      const central = connect(p);
      central.subscribe(HRM);
      clock.advance(2000);
      assert.deepEqual(central.valuesOf(HRM), [h("0637"), h("163187048704"), h("0448"), h("0637")]);
    });

    it("skips (and records) a raw packet that does not fit the agreed MTU", () => {
      const p = new HeartRatePeripheral({ address: "d8:75:ba:00:00:01", clock, packets: [h("0637"), Buffer.alloc(21, 0x10)] });
      const central = connect(p, 23);
      central.subscribe(HRM);
      clock.advance(3000);
      assert.deepEqual(central.valuesOf(HRM), [h("0637"), h("0637")]);
      assert.equal(p.violations.length, 1);
    });

    it("sendBurst queues N distinct uint16 measurements back to back, none lost, in order", async () => {
      const p = new HeartRatePeripheral({ address: "d8:75:ba:00:00:01", clock });
      const central = connect(p);
      await assert.rejects(p.sendBurst(3), /not enabled notifications/);
      central.subscribe(HRM);
      await p.sendBurst(70000);
      const values = central.valuesOf(HRM);
      assert.equal(values.length, 70000);
      values.forEach((v, i) => assert.ok(v.equals(Buffer.of(0x01, i & 0xff, (i >> 8) & 0xff)), `value ${i}: ${v.toString("hex")}`));
    });

    it("notifies the battery level when it changes and the central subscribed", async () => {
      const p = new HeartRatePeripheral({ address: "d8:75:ba:00:00:01", clock, batteryLevel: 80 });
      const central = connect(p);
      await p.setBatteryLevel(79);
      assert.deepEqual(central.read("2a19"), h("4f"));
      central.subscribe("2a19");
      await p.setBatteryLevel(78);
      assert.deepEqual(central.valuesOf("2a19"), [h("4e")]);
    });
  });

  describe("fault injection (GattPeripheral)", () => {
    const services = (central: TestCentral): string[] => central.services.map((s) => s.uuid);

    it("hideServices: the next connection finds only Generic Access and Generic Attribute, the one after unhiding everything again", () => {
      const p = new HeartRatePeripheral({ address: "d8:75:ba:00:00:01", clock: new ManualClock() });
      const first = connect(p);
      assert.deepEqual(services(first), ["1800", "1801", "180d", "180f"]);
      p.hideServices(true);
      // The connected central keeps its table until it reconnects.
      first.discoverServices();
      assert.deepEqual(services(first), ["1800", "1801", "180d", "180f"]);
      first.disconnect();
      const hidden = connect(p);
      assert.deepEqual(services(hidden), ["1800", "1801"]);
      hidden.disconnect();
      p.hideServices(false);
      assert.deepEqual(services(connect(p)), ["1800", "1801", "180d", "180f"]);
    });

    it("injectAtt: the PDU goes to the central on the current link as it is; without a link it rejects", async () => {
      const p = new HeartRatePeripheral({ address: "d8:75:ba:00:00:01", clock: new ManualClock() });
      const pdu = Buffer.of(AttOpcode.HandleValueNotification, 0x03, 0x00, 0x00, 99);
      await assert.rejects(p.injectAtt(pdu), /not connected/);
      const central = connect(p);
      await p.injectAtt(pdu);
      assert.deepEqual(central.received, [{ handle: 3, value: Buffer.of(0x00, 99), indication: false }], "not subscribed, sent all the same");
    });
  });

  describe("hioki-dt4261", () => {
    let clock: ManualClock;
    beforeEach(() => (clock = new ManualClock()));

    function meter(options: Partial<ConstructorParameters<typeof HiokiDt4261Peripheral>[0]> = {}, mtu = 247): { p: HiokiDt4261Peripheral; central: TestCentral } {
      const p = new HiokiDt4261Peripheral({ address: "a4:9e:69:00:00:01", clock, ...options });
      const central = connect(p, mtu);
      central.subscribe(CMD);
      return { p, central };
    }

    function ask(central: TestCentral, command: string, delay = 20): string[] {
      const before = central.valuesOf(CMD).length;
      assert.deepEqual(central.write(CMD, command), [h("13")]);
      clock.advance(delay);
      return central.valuesOf(CMD).slice(before).map((v) => v.toString("latin1"));
    }

    it("exposes the services of the real adapter", () => {
      const p = new HiokiDt4261Peripheral({ address: "a4:9e:69:00:00:01", clock });
      const central = connect(p);
      assert.deepEqual(
        central.services.map((s) => s.uuid),
        ["1800", "1801", "180a", "180f", "1813", "1812", "1d14d6eefd634fa1bfa48f47b42119f0", "275ce3d8b90644758dd776af0db742bf"],
      );
      const cmd = central.characteristic(CMD);
      assert.equal(cmd.properties, 0x28, "write + indicate");
      assert.equal(central.characteristic("872f065a-5297-4483-9183-27cd72f7cffc").properties, 0x12, "read + notify");
      assert.deepEqual(central.read("2a4a"), h("11010002"));
      assert.equal(central.read("2a4b")[0], 0x05);
      assert.deepEqual(central.read("2a25"), Buffer.from("000000001"));
      assert.deepEqual(central.read("2a00"), Buffer.from("Z3210V2.10:DT4261#000000001"));
    });

    it("subscribing uses indications (the command characteristic cannot notify)", () => {
      const { p } = meter();
      assert.deepEqual(p.gatt.subscription(CMD), { notify: false, indicate: true });
    });

    it("answers FETC? with an NR3 indication after replyDelayMs", () => {
      const { central } = meter({ values: [0.0001, -0.0001] });
      assert.deepEqual(central.write(CMD, "FETC?\r\n"), [h("13")]);
      clock.advance(19);
      assert.deepEqual(central.valuesOf(CMD), []);
      clock.advance(1);
      assert.deepEqual(central.valuesOf(CMD).map(String), ["+1.00000000E-04"]);
      assert.deepEqual(ask(central, "FETC?\r\n"), ["-1.00000000E-04"]);
      assert.deepEqual(ask(central, "FETC?\r\n"), ["+1.00000000E-04"]);
    });

    it("joins the answers of commands joined with ';'", () => {
      const { central, p } = meter();
      assert.deepEqual(ask(central, "QPID;FETC?\r\n"), ["DT4261;+0.00000000E+00"]);
      assert.deepEqual(p.violations, []);
    });

    it("splits a reply longer than MTU − 3 into several indications", () => {
      const { central } = meter({}, 23);
      assert.deepEqual(ask(central, "QPID;FETC?\r\n"), ["DT4261;+0.00000000E+", "00"]);
    });

    it("assembles a command written in pieces, completing it at CR LF", () => {
      const { central, p } = meter();
      central.write(CMD, "FE");
      central.write(CMD, "TC?\r");
      clock.advance(100);
      assert.deepEqual(central.valuesOf(CMD), []);
      central.write(CMD, "\n");
      clock.advance(20);
      assert.deepEqual(central.valuesOf(CMD).map(String), ["+0.00000000E+00"]);
      assert.deepEqual(p.commandLog, ["FETC?"]);
    });

    it("answers each of several lines in one write, in order", () => {
      const { central } = meter({ values: [1.5] });
      assert.deepEqual(ask(central, "QPID?\r\nFETC?\r\n"), ["DT4261", "+1.50000000E+00"]);
    });

    it("answers unknown commands (and lower case) with CMD ERR", () => {
      const { central } = meter();
      assert.deepEqual(ask(central, "FOO\r\n"), ["CMD ERR"]);
      assert.deepEqual(ask(central, "fetc?\r\n"), ["CMD ERR"]);
      assert.deepEqual(ask(central, "BAR?;QPID\r\n"), ["CMD ERR;DT4261"]);
    });

    it("answers :FETCCNT?, *IDN?, :CONF?, statistics and setting commands", () => {
      const { central } = meter({ counts: [3000, 2999], values: [1, 3] });
      assert.deepEqual(ask(central, ":FETCCNT?\r\n"), ["3000"]);
      assert.deepEqual(ask(central, ":FETCCNT?;:FETCCNT?\r\n"), ["2999;3000"]);
      assert.deepEqual(ask(central, "*IDN?\r\n"), ["HIOKI,DT4261,000000001,V2.10"]);
      assert.deepEqual(ask(central, ":CONF?\r\n"), ["DCV,AUTO"]);
      assert.deepEqual(ask(central, ":CONF ACV,600\r\n"), ["OK"]);
      assert.deepEqual(ask(central, ":CONF?\r\n"), ["ACV,600"]);
      assert.deepEqual(ask(central, ":SYST:RST;:CONF?\r\n"), ["OK;DCV,AUTO"]);
      assert.deepEqual(ask(central, ":CALC:STAT:MAX?;:CALC:STAT:MIN?;:CALC:STAT:AVER?\r\n"), ["+3.00000000E+00;+1.00000000E+00;+2.00000000E+00"]);
      assert.deepEqual(ask(central, ":SYST:LLO;:SYST:GTL;:STAT?\r\n"), ["OK;OK;0"]);
    });

    it("replies override the computed answer of every query, cycling, but not setting commands", () => {
      const { central } = meter({ replies: ["+9.9E+37", "OVER"] });
      assert.deepEqual(ask(central, "FETC?\r\n"), ["+9.9E+37"]);
      assert.deepEqual(ask(central, "QPID;:SYST:LLO;FETC?\r\n"), ["OVER;OK;+9.9E+37"]);
    });

    it("records a reply dropped because the central did not enable indications", () => {
      const p = new HiokiDt4261Peripheral({ address: "a4:9e:69:00:00:01", clock });
      const central = connect(p);
      central.write(CMD, "FETC?\r\n");
      clock.advance(20);
      assert.equal(central.received.length, 0);
      assert.match(p.violations[0], /not enabled indications/);
    });

    it("records every write to the Silicon Labs OTA characteristic", () => {
      const { central, p } = meter();
      assert.deepEqual(central.write(OTA, h("00")), [h("13")]);
      assert.equal(p.violations.length, 1);
      assert.match(p.violations[0], /OTA/);
    });

    it("drops (and records) a command written without response: the characteristic only allows Write Request", () => {
      const { central, p } = meter();
      central.write(CMD, "FETC?\r\n", true);
      clock.advance(100);
      assert.equal(central.received.length, 0);
      assert.equal(p.violations.length, 1);
    });

    it("forgets half a command and pending replies on disconnect", () => {
      const { central, p } = meter();
      central.write(CMD, "QP");
      central.write(CMD, "FETC?\r\n");
      central.disconnect();
      assert.equal(clock.pending, 0);
      const again = connect(p);
      again.subscribe(CMD);
      again.write(CMD, "ID\r\n");
      clock.advance(20);
      assert.deepEqual(again.valuesOf(CMD).map(String), ["CMD ERR"]);
    });

    it("derives the serial from the address", () => {
      assert.equal(serialFromAddress("a4:9e:69:ff:ff:ff"), "016777215");
      assert.equal(serialFromAddress("a4:9e:69:00:00:01"), "000000001");
    });

    describe("hostile behaviours (scenario options)", () => {
      it("answers in order: a late answer holds back the answers behind it", () => {
        const { central } = meter({ commandDelaysMs: { "*IDN?": 1500 }, values: [2] });
        central.write(CMD, "*IDN?\r\n");
        clock.advance(1000);
        central.write(CMD, ":CALC:STAT:MAX?\r\n");
        clock.advance(499);
        assert.deepEqual(central.valuesOf(CMD), [], "nothing before the late *IDN? answer, not even the quick one");
        clock.advance(1);
        assert.deepEqual(central.valuesOf(CMD).map(String), ["HIOKI,DT4261,000000001,V2.10", "+2.00000000E+00"]);
      });

      it("cycles replyDelaysMs per command line; commandDelaysMs wins for its line", () => {
        const { central } = meter({ replyDelaysMs: [5, 300], commandDelaysMs: { QPID: 50 } });
        assert.deepEqual(ask(central, "FETC?\r\n", 5), ["+0.00000000E+00"]);
        assert.deepEqual(ask(central, "FETC?\r\n", 299), []);
        clock.advance(1);
        assert.equal(central.valuesOf(CMD).length, 2);
        assert.deepEqual(ask(central, "QPID\r\n", 50), ["DT4261"]);
        assert.deepEqual(ask(central, "FETC?\r\n", 5), ["+0.00000000E+00"], "QPID did not use up a cycled delay");
      });

      it("stretches the answer to a line named in replyBytesFor, in indications of MTU − 3", () => {
        const { central, p } = meter({ replyBytesFor: { "*IDN?": 5000 } });
        const pieces = ask(central, "*IDN?\r\n", 20);
        // The indications are confirmed one by one; let them all cross.
        clock.advance(1000);
        const all = [...pieces, ...central.valuesOf(CMD).slice(pieces.length).map((v) => v.toString("latin1"))];
        assert.equal(all.join("").length, 5000);
        assert.ok(all.join("").startsWith("HIOKI,DT4261,000000001,V2.10HIOKI,"));
        assert.ok(all.every((piece) => piece.length <= 244));
        assert.deepEqual(ask(central, "FETC?\r\n"), ["+0.00000000E+00"], "other lines answer normally");
        assert.deepEqual(p.violations, []);
      });

      it('split "lone-lf": CR LF after the reply, the LF alone in the last indication', () => {
        const { central } = meter({ split: "lone-lf" }, 23);
        assert.deepEqual(ask(central, "FETC?\r\n"), ["+0.00000000E+00\r", "\n"]);
        assert.deepEqual(ask(central, "QPID;FETC?\r\n"), ["DT4261;+0.00000000E+", "00\r", "\n"]);
      });

      it('split "full-lf": a full indication ending in LF, the rest of the reply after it', () => {
        const { central } = meter({ split: "full-lf" }, 23);
        assert.deepEqual(ask(central, "*IDN?\r\n"), ["HIOKI,DT4261,000000\n", "001,V2.10"]);
        assert.deepEqual(ask(central, "FETC?\r\n"), ["+0.00000000E+00"], "a reply that fits is sent whole");
      });

      it('split "random": pieces of 1 to MTU − 3 bytes that join to the reply, the same for the same splitSeed', () => {
        const run = (splitSeed: number): string[] => {
          const { central } = meter({ split: "random", splitSeed, replyBytesFor: { "*IDN?": 300 } }, 23);
          return ask(central, "*IDN?\r\n", 1000);
        };
        const pieces = run(7);
        assert.equal(pieces.join("").length, 300);
        assert.ok(pieces.every((piece) => piece.length >= 1 && piece.length <= 20));
        assert.ok(pieces.some((piece) => piece.length < 20 && piece !== pieces[pieces.length - 1]), "some short piece is not the last");
        assert.deepEqual(run(7), pieces);
        assert.notDeepEqual(run(8), pieces);
      });

      for (const [commandWrite, properties, accepted] of [
        ["write", 0x28, "write"],
        ["writeWithoutResponse", 0x24, "writeWithoutResponse"],
        ["both", 0x2c, "either"],
      ] as const) {
        it(`commandWrite "${commandWrite}": properties 0x${properties.toString(16)}, records the write type of each write`, () => {
          const { central, p } = meter({ commandWrite });
          assert.equal(central.characteristic(CMD).properties, properties);
          const withResponse = central.write(CMD, "FETC?\r\n");
          const withoutResponse = central.write(CMD, "QPID\r\n", true);
          clock.advance(20);
          const answered = central.valuesOf(CMD).map(String);
          if (accepted === "write") {
            assert.deepEqual([withResponse, withoutResponse, answered, p.writeTypes], [[h("13")], [], ["+0.00000000E+00"], ["write"]]);
          } else if (accepted === "writeWithoutResponse") {
            assert.equal(withResponse[0][0], 0x01, "a Write Request is refused with an Error Response");
            assert.deepEqual([answered, p.writeTypes], [["DT4261"], ["writeWithoutResponse"]]);
          } else {
            assert.deepEqual([answered, p.writeTypes], [["+0.00000000E+00", "DT4261"], ["write", "writeWithoutResponse"]]);
          }
        });
      }

      it("validates the hostile options, naming the field", () => {
        const create = (spec: JsonObject) => createPeripheral({ kind: "hioki-dt4261", address: "a4:9e:69:00:00:01", ...spec }, "peripherals[0]", context(clock));
        const rejects = (spec: JsonObject, field: string, message: RegExp): void => {
          assert.throws(
            () => create(spec),
            (e: unknown) => e instanceof ScenarioError && e.field === field && message.test(e.message),
          );
        };
        rejects({ replyDelaysMs: [10, -1] }, "peripherals[0].replyDelaysMs[1]", /whole number between 0 and 60000/);
        rejects({ commandDelaysMs: [1] }, "peripherals[0].commandDelaysMs", /must be an object/);
        rejects({ commandDelaysMs: { "*IDN?": 60001 } }, "peripherals[0].commandDelaysMs.(key 1)", /between 0 and 60000/);
        rejects({ commandDelaysMs: { "FETC?\r\n": 5 } }, "peripherals[0].commandDelaysMs.(key 1)", /printable ASCII/);
        rejects({ replyBytesFor: { QPID: 0 } }, "peripherals[0].replyBytesFor.(key 1)", /between 1 and 65536/);
        rejects({ replyBytesFor: { ["X".repeat(65)]: 10 } }, "peripherals[0].replyBytesFor.(key 1)", /1 to 64/);
        rejects({ split: "odd" }, "peripherals[0].split", /"mtu", "lone-lf", "full-lf", "random"/);
        rejects({ splitSeed: 1.5 }, "peripherals[0].splitSeed", /whole number/);
        rejects({ commandWrite: "notify" }, "peripherals[0].commandWrite", /"write", "writeWithoutResponse", "both"/);
        const p = create({ replyDelaysMs: [1], commandDelaysMs: { "*IDN?": 1 }, replyBytesFor: { "*IDN?": 5000 }, split: "random", splitSeed: 3, commandWrite: "both" });
        assert.ok(p instanceof HiokiDt4261Peripheral);
      });
    });
  });

  describe("createPeripheral (scenario entries)", () => {
    const clock = new ManualClock();
    const create = (spec: JsonObject, maxMtu?: number) => createPeripheral(spec, "peripherals[2]", context(clock, maxMtu));

    function rejects(spec: JsonObject, field: string, message: RegExp, maxMtu?: number): void {
      assert.throws(
        () => create(spec, maxMtu),
        (e: unknown) => {
          assert.ok(e instanceof ScenarioError, String(e));
          assert.equal(e.field, field);
          assert.match(e.message, message);
          return true;
        },
      );
    }

    it("lists the kinds it knows", () => {
      assert.deepEqual(PERIPHERAL_KINDS, ["heart-rate", "hioki-dt4261", "nus-ymodem", "nus-ymodem-receiver", "gatt", "ibeacon", "eddystone", "bthome", "advertiser"]);
    });

    it("builds a heart-rate sensor with defaults", () => {
      const p = create({ kind: "heart-rate", address: "D8:75:BA:00:00:01" });
      assert.ok(p instanceof HeartRatePeripheral);
      assert.deepEqual([p.kind, p.address, p.addressType, p.name], ["heart-rate", "d8:75:ba:00:00:01", "random", "HRM-0001"]);
    });

    it("builds a heart-rate sensor from every option", () => {
      const p = create({
        kind: "heart-rate",
        address: "d8:75:ba:00:00:02",
        addressType: "public",
        name: "H64",
        bpm: [45, 46],
        intervalMs: 250,
        rrIntervals: true,
        energyExpended: true,
        bodySensorLocation: 2,
        batteryLevel: 55,
        deviceInformation: { manufacturer: "Magene", model: "H64" },
      }) as HeartRatePeripheral;
      assert.deepEqual([p.addressType, p.name], ["public", "H64"]);
      const central = connect(p);
      assert.deepEqual(central.read("2a38"), h("02"));
      assert.deepEqual(central.read("2a19"), h("37"));
      assert.deepEqual(central.read("2a29"), Buffer.from("Magene"));
      central.subscribe(HRM);
      clock.advance(250);
      assert.equal(decodeHeartRateMeasurement(central.valuesOf(HRM)[0]).bpm, 45);
    });

    it("builds a HIOKI meter with defaults and options", () => {
      const p = create({ kind: "hioki-dt4261", address: "a4:9e:69:00:00:07" });
      assert.deepEqual([p.kind, p.addressType, p.name], ["hioki-dt4261", "public", "Z3210V2.10:DT4261#000000007"]);
      const q = create({ kind: "hioki-dt4261", address: "a4:9e:69:00:00:07", serial: "230512345", values: [1e-4], replies: ["X"], counts: [1], replyDelayMs: 5 });
      assert.equal(q.name, "Z3210V2.10:DT4261#230512345");
      assert.equal(create({ kind: "hioki-dt4261", address: "a4:9e:69:00:00:07", name: "Z3210V2.10:DT4282#1" }).name, "Z3210V2.10:DT4282#1");
    });

    it("names the field of every invalid option", () => {
      rejects({ address: "d8:75:ba:00:00:01" }, "peripherals[2].kind", /is required/);
      rejects({ kind: "toaster", address: "d8:75:ba:00:00:01" }, "peripherals[2].kind", /unknown peripheral kind \(expected one of "heart-rate"/);
      rejects({ kind: "heart-rate" }, "peripherals[2].address", /is required/);
      rejects({ kind: "heart-rate", address: "d8:75:ba:00:00" }, "peripherals[2].address", /must look like/);
      rejects({ kind: "heart-rate", address: "d8:75:ba:00:00:01", addressType: "static" }, "peripherals[2].addressType", /must be one of/);
      rejects({ kind: "heart-rate", address: "d8:75:ba:00:00:01", name: "" }, "peripherals[2].name", /must not be empty/);
      rejects({ kind: "heart-rate", address: "d8:75:ba:00:00:01", bmp: [60] }, "peripherals[2].(key 3)", /unknown option/);
      rejects({ kind: "heart-rate", address: "d8:75:ba:00:00:01", bpm: [45, 0] }, "peripherals[2].bpm[1]", /: must be a whole number between 1 and 65535/);
      rejects({ kind: "heart-rate", address: "d8:75:ba:00:00:01", bpm: [45, 46.5] }, "peripherals[2].bpm[1]", /whole number/);
      rejects({ kind: "heart-rate", address: "d8:75:ba:00:00:01", bpm: [] }, "peripherals[2].bpm", /non-empty/);
      rejects({ kind: "heart-rate", address: "d8:75:ba:00:00:01", intervalMs: 0 }, "peripherals[2].intervalMs", /between/);
      rejects({ kind: "heart-rate", address: "d8:75:ba:00:00:01", rrIntervals: "yes" }, "peripherals[2].rrIntervals", /true or false/);
      rejects({ kind: "heart-rate", address: "d8:75:ba:00:00:01", packets: ["0637", "06 3"] }, "peripherals[2].packets[1]", /hex/);
      rejects({ kind: "heart-rate", address: "d8:75:ba:00:00:01", packets: [""] }, "peripherals[2].packets[0]", /1 to 514 bytes/);
      rejects({ kind: "heart-rate", address: "d8:75:ba:00:00:01", packets: ["00".repeat(21)] }, "peripherals[2].packets[0]", /1 to 20 bytes/, 23);
      rejects({ kind: "heart-rate", address: "d8:75:ba:00:00:01", packets: ["0637"], bpm: [60] }, "peripherals[2].bpm", /cannot be combined with packets/);
      rejects({ kind: "heart-rate", address: "d8:75:ba:00:00:01", bodySensorLocation: 256 }, "peripherals[2].bodySensorLocation", /between 0 and 255/);
      rejects({ kind: "heart-rate", address: "d8:75:ba:00:00:01", batteryLevel: 101 }, "peripherals[2].batteryLevel", /between 0 and 100/);
      rejects({ kind: "heart-rate", address: "d8:75:ba:00:00:01", deviceInformation: { vendor: "x" } }, "peripherals[2].deviceInformation.(key 1)", /unknown option/);
      rejects({ kind: "heart-rate", address: "d8:75:ba:00:00:01", deviceInformation: "x" }, "peripherals[2].deviceInformation", /must be an object/);
      rejects({ kind: "heart-rate", address: "d8:75:ba:00:00:01", deviceInformation: { model: "m".repeat(513) } }, "peripherals[2].deviceInformation.model", /at most 512 characters/);
      rejects({ kind: "heart-rate", address: "d8:75:ba:00:00:01", deviceInformation: { serial: "é".repeat(257) } }, "peripherals[2].deviceInformation.serial", /at most 512 bytes in UTF-8/);
      assert.doesNotThrow(() => create({ kind: "heart-rate", address: "d8:75:ba:00:00:01", deviceInformation: { model: "m".repeat(512) } }), "the ATT maximum");
      rejects({ kind: "hioki-dt4261", address: "a4:9e:69:00:00:01", values: [1, "2"] }, "peripherals[2].values[1]", /finite number/);
      rejects({ kind: "hioki-dt4261", address: "a4:9e:69:00:00:01", replies: ["OK", 3] }, "peripherals[2].replies[1]", /string/);
      rejects({ kind: "hioki-dt4261", address: "a4:9e:69:00:00:01", counts: [-1] }, "peripherals[2].counts[0]", /whole number/);
      rejects({ kind: "hioki-dt4261", address: "a4:9e:69:00:00:01", replyDelayMs: 60001 }, "peripherals[2].replyDelayMs", /between/);
      rejects({ kind: "hioki-dt4261", address: "a4:9e:69:00:00:01", serial: "12 34" }, "peripherals[2].serial", /letters, digits/);
      rejects({ kind: "hioki-dt4261", address: "a4:9e:69:00:00:01", bpm: [60] }, "peripherals[2].(key 3)", /unknown option/);
    });

    it("puts the field path in the message", () => {
      assert.throws(() => create({ kind: "heart-rate", address: "d8:75:ba:00:00:01", bpm: [45, 0] }), {
        message: "scenario: peripherals[2].bpm[1]: must be a whole number between 1 and 65535",
      });
    });
  });
});
