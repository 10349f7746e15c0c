/**
 * The scenario kind "gatt" (a device the user describes): through noble's own, unmodified HCI stack on the virtual
 * controller — advertising, discovery, reads, writes (long ones too), notify/indicate schedules, echo and
 * request → reply — plus the refusals a real server gives, and the validation of the scenario entry.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import type { Characteristic, Peripheral } from "@stoprocent/noble";
import { parseAcl, parseL2capHeader } from "../../src/protocol/hci-packets";
import { GattDevicePeripheral } from "../../src/sim/peripherals/gatt";
import { createPeripheral } from "../../src/sim/peripherals/index";
import { DEFAULT_SCENARIO, parseScenario, Simulation } from "../../src/sim/scenario";
import { DEFAULT_LINK } from "../../src/sim/types";
import { ScenarioError, type JsonObject } from "../../src/sim/validate";
import { TestCentral } from "../support/fake-central";
import { ManualClock } from "../support/manual-clock";
import { nobleFor, scanFor, type SimNoble } from "../support/nus-noble";

/** Simulated time runs this much faster than wall-clock time. */
const TIME_SCALE = 20;
const ADDRESS = "c0:ff:ee:00:00:10";
const SERVICE = "12345678-1234-5678-1234-56789abcdef0";
/** Characteristic `n` of the custom service, dashed (the scenario's spelling) … */
const c = (n: string): string => `12345678-1234-5678-1234-56789abcde${n}`;
/** … and as noble reports it. */
const nobleUuid = (uuid: string): string => uuid.replace(/-/g, "");
/** 30 bytes: longer than a notification can carry at MTU 23. */
const LONG_VALUE = Buffer.from(Array.from({ length: 30 }, (_, i) => i + 1));

/** The device every noble test runs against. serverMtu 23: noble adopts the server's MTU, so both sides agree. */
const DEVICE: JsonObject = {
  kind: "gatt",
  address: ADDRESS,
  name: "Test Device",
  serverMtu: 23,
  advertising: { services: ["0x181A"], manufacturerData: { companyId: 89, data: "0102" } },
  services: [
    {
      uuid: "181A",
      characteristics: [{ uuid: "0x2A6E", properties: ["read", "notify"], value: { hex: "0000" }, notify: { intervalMs: 100, values: [{ hex: "0100" }, { hex: "0200" }, { hex: "0300" }] } }],
    },
    {
      uuid: SERVICE.toUpperCase(),
      characteristics: [
        { uuid: c("01"), properties: ["read"], value: { text: "hello" } },
        { uuid: c("02"), properties: ["read", "write"], value: { hex: "00 ff" } },
        { uuid: c("03"), properties: ["write"] },
        { uuid: c("04"), properties: ["read"], value: { hex: "01" } },
        { uuid: c("05"), properties: ["read", "indicate"], notify: { intervalMs: 100, values: [{ text: "a" }, { text: "b" }] } },
        { uuid: nobleUuid(c("06")), properties: ["write", "writeWithoutResponse"], onWrite: { echoTo: c("07").toUpperCase() } },
        { uuid: c("07"), properties: ["notify"] },
        {
          uuid: c("08"),
          properties: ["write"],
          onWrite: {
            replyOn: c("09"),
            replies: [
              { request: { text: "*IDN?\n" }, reply: [{ text: "ACME," }, { text: "X1," }, { text: "1.0\n" }] },
              { request: { text: "slow\n" }, reply: [{ text: "late\n" }], delayMs: 500 },
            ],
            otherwise: [{ text: "ERR\n" }],
          },
        },
        { uuid: c("09"), properties: ["notify"] },
        { uuid: c("0a"), properties: ["read", "notify"], notify: { intervalMs: 100, values: [{ hex: LONG_VALUE.toString("hex") }] } },
      ],
    },
  ],
};

/** ATT PDUs carried in ACL packets (first fragments: every PDU of these tests fits in one). */
function attPdus(packet: Buffer): Buffer | null {
  const acl = parseAcl(packet);
  if (!acl || acl.pb === 0x01) return null;
  const l2cap = parseL2capHeader(acl.data);
  return l2cap?.cid === 0x0004 ? acl.data.subarray(4) : null;
}

/** Resolves with the next ATT PDU in one direction that `match` accepts. */
function nextAtt(sim: Simulation, direction: "h4" | "host-h4", match: (pdu: Buffer) => boolean): Promise<Buffer> {
  return new Promise((resolve) => {
    const listener = (packet: Buffer): void => {
      const pdu = attPdus(packet);
      if (!pdu || !match(pdu)) return;
      sim.controller.off(direction, listener);
      resolve(pdu);
    };
    sim.controller.on(direction, listener);
  });
}

/** Collects the next `count` values of a subscribed characteristic. */
function values(ch: Characteristic, count: number): Promise<Buffer[]> {
  return new Promise((resolve) => {
    const seen: Buffer[] = [];
    const listener = (data: Buffer, isNotification: boolean): void => {
      if (!isNotification) return;
      seen.push(data);
      if (seen.length < count) return;
      ch.removeListener("data", listener);
      resolve(seen);
    };
    ch.on("data", listener);
  });
}

const text = (list: Buffer[]): string[] => list.map((b) => b.toString("utf8"));

describe("sim: kind gatt (a scenario-defined device) through noble", function () {
  this.timeout(20000);
  let sim: Simulation;
  let central: SimNoble;
  let peripheral: Peripheral;
  let device: GattDevicePeripheral;
  let chars: Map<string, Characteristic>;

  const ch = (uuid: string): Characteristic => {
    const found = chars.get(nobleUuid(uuid));
    assert.ok(found, `characteristic ${uuid} discovered`);
    return found;
  };

  before(async () => {
    sim = new Simulation(parseScenario({ peripherals: [DEVICE] }, ""), { timeScale: TIME_SCALE });
    const built = sim.controller.peripheral(ADDRESS);
    assert.ok(built instanceof GattDevicePeripheral);
    device = built;
    central = nobleFor(sim);
    await central.noble.waitForPoweredOnAsync();
    peripheral = await scanFor(central.noble, (p) => p.address === ADDRESS);
    await peripheral.connectAsync();
    const { characteristics } = await peripheral.discoverAllServicesAndCharacteristicsAsync();
    chars = new Map(characteristics.map((x) => [x.uuid, x]));
  });

  after(async () => {
    if (peripheral?.state === "connected") await peripheral.disconnectAsync();
    central?.dispose();
    sim?.close();
  });

  it("advertises its name, service UUIDs and manufacturer data as noble sees them", () => {
    assert.equal(peripheral.advertisement.localName, "Test Device");
    assert.deepEqual(peripheral.advertisement.serviceUuids, ["181a"]);
    assert.deepEqual(peripheral.advertisement.manufacturerData, Buffer.from("59000102", "hex"), "company 89 little-endian, then the data");
    assert.equal(peripheral.addressType, "random");
  });

  it("shows its table (GAP and GATT added) with each characteristic's properties", () => {
    const table = (peripheral.services ?? []).map((s) => [s.uuid, (s.characteristics ?? []).map((x) => [x.uuid, x.properties])]);
    assert.deepEqual(table, [
      ["1800", [["2a00", ["read"]], ["2a01", ["read"]]]],
      ["1801", [["2a05", ["indicate"]]]],
      ["181a", [["2a6e", ["read", "notify"]]]],
      [
        nobleUuid(SERVICE),
        [
          [nobleUuid(c("01")), ["read"]],
          [nobleUuid(c("02")), ["read", "write"]],
          [nobleUuid(c("03")), ["write"]],
          [nobleUuid(c("04")), ["read"]],
          [nobleUuid(c("05")), ["read", "indicate"]],
          [nobleUuid(c("06")), ["writeWithoutResponse", "write"]],
          [nobleUuid(c("07")), ["notify"]],
          [nobleUuid(c("08")), ["write"]],
          [nobleUuid(c("09")), ["notify"]],
          [nobleUuid(c("0a")), ["read", "notify"]],
        ],
      ],
    ]);
  });

  it("reads text and hex values, and the GAP name", async () => {
    assert.equal((await ch(c("01")).readAsync()).toString("utf8"), "hello");
    assert.deepEqual(await ch(c("04")).readAsync(), Buffer.of(0x01));
    assert.equal((await ch("2a00").readAsync()).toString("utf8"), "Test Device");
    assert.deepEqual(await ch("2a6e").readAsync(), Buffer.of(0, 0), "the initial value, before any notification");
  });

  it("stores a write and reads it back", async () => {
    assert.deepEqual(await ch(c("02")).readAsync(), Buffer.from("00ff", "hex"));
    await ch(c("02")).writeAsync(Buffer.from("abc"), false);
    assert.equal((await ch(c("02")).readAsync()).toString("utf8"), "abc");
  });

  it("takes a long write (Prepare/Execute Write, longer than MTU − 3) and reads the whole value back (Read Blob)", async () => {
    const value = Buffer.from(Array.from({ length: 100 }, (_, i) => (i * 7) & 0xff));
    const prepared = nextAtt(sim, "host-h4", (pdu) => pdu[0] === 0x16);
    await ch(c("02")).writeAsync(value, false);
    await prepared;
    assert.deepEqual(await ch(c("02")).readAsync(), value);
    assert.deepEqual(device.currentValue(c("02")), value);
  });

  it("notifies its schedule in order while subscribed; the last value sent is then the readable value", async () => {
    const temperature = ch("2a6e");
    const cycle = ["0100", "0200", "0300"];
    const seen: string[] = [];
    const record = (data: Buffer, isNotification: boolean): void => {
      if (isNotification) seen.push(data.toString("hex"));
    };
    temperature.on("data", record);
    const four = values(temperature, 4);
    await temperature.subscribeAsync();
    await four;
    await temperature.unsubscribeAsync();
    temperature.removeListener("data", record);
    for (let i = 1; i < seen.length; i++) assert.equal(seen[i], cycle[(cycle.indexOf(seen[i - 1]) + 1) % cycle.length], `value ${i} follows the cycle`);
    assert.equal((await temperature.readAsync()).toString("hex"), seen[seen.length - 1]);
  });

  it("indicates its schedule (ATT Handle Value Indications, each confirmed) to a central that enabled indications", async () => {
    const indicated = ch(c("05"));
    const handle = nextAtt(sim, "h4", (pdu) => pdu[0] === 0x1d);
    const confirmed = nextAtt(sim, "host-h4", (pdu) => pdu[0] === 0x1e);
    const three = values(indicated, 3);
    await indicated.subscribeAsync();
    const got = text(await three);
    await indicated.unsubscribeAsync();
    await handle;
    await confirmed;
    assert.deepEqual(got, ["a", "b", "a"], "the cycle, in order: a tick while an indication awaits its confirmation waits too");
  });

  it("cuts a notified value to MTU − 3 bytes, as a real server does; a read returns the whole value", async () => {
    const long = ch(c("0a"));
    const one = values(long, 1);
    await long.subscribeAsync();
    const [notified] = await one;
    await long.unsubscribeAsync();
    assert.deepEqual(notified, LONG_VALUE.subarray(0, 20));
    assert.deepEqual(await long.readAsync(), LONG_VALUE);
  });

  it("echoes a write on the echoTo characteristic (with and without response)", async () => {
    const tx = ch(c("07"));
    await tx.subscribeAsync();
    const two = values(tx, 2);
    await ch(c("06")).writeAsync(Buffer.from("ping"), true);
    await ch(c("06")).writeAsync(Buffer.from("pong"), false);
    assert.deepEqual(text(await two), ["ping", "pong"]);
    await tx.unsubscribeAsync();
  });

  it("answers a request with a reply split over three notifications, in order", async () => {
    const reply = ch(c("09"));
    await reply.subscribeAsync();
    const three = values(reply, 3);
    await ch(c("08")).writeAsync(Buffer.from("*IDN?\n"), false);
    assert.deepEqual(text(await three), ["ACME,", "X1,", "1.0\n"]);
    await reply.unsubscribeAsync();
  });

  it("waits delayMs (simulated) before a reply, and answers requests in the order they were written", async () => {
    const reply = ch(c("09"));
    await reply.subscribeAsync();
    const arrivals: { value: string; at: number }[] = [];
    const record = (data: Buffer): void => void arrivals.push({ value: data.toString("utf8"), at: sim.clock.now() });
    reply.on("data", record);
    const four = values(reply, 4);
    const writtenAt = sim.clock.now();
    await ch(c("08")).writeAsync(Buffer.from("slow\n"), false);
    await ch(c("08")).writeAsync(Buffer.from("*IDN?\n"), false);
    await four;
    reply.removeListener("data", record);
    await reply.unsubscribeAsync();
    assert.deepEqual(
      arrivals.map((a) => a.value),
      ["late\n", "ACME,", "X1,", "1.0\n"],
    );
    assert.ok(arrivals[0].at - writtenAt >= 500, `the slow reply came ${arrivals[0].at - writtenAt} ms (simulated) after the write`);
  });

  it("answers anything else with `otherwise`, and sends no reply to a central that has not enabled notifications", async () => {
    const reply = ch(c("09"));
    // Not subscribed: this reply is not sent (as on a real server) …
    await ch(c("08")).writeAsync(Buffer.from("*IDN?\n"), false);
    await reply.subscribeAsync();
    const first = values(reply, 1);
    await ch(c("08")).writeAsync(Buffer.from("what?\n"), false);
    // … so the first value after subscribing is the answer to the unknown request.
    assert.deepEqual(text(await first), ["ERR\n"]);
    await reply.unsubscribeAsync();
  });

  it("refuses a read of a characteristic without 'read' with Read Not Permitted (0x02)", async () => {
    const writeOnly = ch(c("03"));
    const error = nextAtt(sim, "h4", (pdu) => pdu[0] === 0x01);
    // noble reports a failed read as an empty value; the ATT error is what a real server sends.
    assert.deepEqual(await writeOnly.readAsync(), Buffer.alloc(0));
    const pdu = await error;
    assert.equal(pdu[1], 0x0a, "for the Read Request");
    assert.equal(pdu[4], 0x02, "Read Not Permitted");
  });

  it("refuses a write to a characteristic without 'write' with Write Not Permitted (0x03), and keeps its value", async () => {
    const readOnly = ch(c("04"));
    const error = nextAtt(sim, "h4", (pdu) => pdu[0] === 0x01);
    // noble never completes a refused write: the ATT error is what a real server sends.
    readOnly.write(Buffer.from("x"), false);
    const pdu = await error;
    assert.equal(pdu[1], 0x12, "for the Write Request");
    assert.equal(pdu[4], 0x03, "Write Not Permitted");
    assert.deepEqual(await readOnly.readAsync(), Buffer.of(0x01));
  });
});

describe("sim: the built-in gatt devices through noble", function () {
  this.timeout(20000);
  let sim: Simulation;
  let central: SimNoble;

  beforeEach(() => {
    sim = new Simulation(parseScenario(DEFAULT_SCENARIO, ""), { timeScale: TIME_SCALE });
    central = nobleFor(sim);
  });

  afterEach(() => {
    central.dispose();
    sim.close();
  });

  it("NUS Console answers help over four notifications, version, and ERR for anything else", async () => {
    await central.noble.waitForPoweredOnAsync();
    const peripheral = await scanFor(central.noble, (p) => p.advertisement.localName === "NUS Console");
    await peripheral.connectAsync();
    const { characteristics } = await peripheral.discoverSomeServicesAndCharacteristicsAsync(["6e400001b5a3f393e0a9e50e24dcca9e"], []);
    const rx = characteristics.find((x) => x.uuid === "6e400002b5a3f393e0a9e50e24dcca9e");
    const tx = characteristics.find((x) => x.uuid === "6e400003b5a3f393e0a9e50e24dcca9e");
    assert.ok(rx && tx);
    await tx.subscribeAsync();
    const help = values(tx, 4);
    await rx.writeAsync(Buffer.from("help\n"), true);
    const lines = text(await help);
    assert.equal(lines[0], "commands:\n");
    assert.ok(lines.every((l) => l.endsWith("\n")));
    assert.match(lines.join(""), /version/);
    const version = values(tx, 1);
    await rx.writeAsync(Buffer.from("version\n"), false);
    assert.match(text(await version)[0], /^NUS Console \d+\.\d+\.\d+\n$/);
    const unknown = values(tx, 1);
    await rx.writeAsync(Buffer.from("reboot\n"), true);
    assert.deepEqual(text(await unknown), ["ERR unknown command\n"]);
    await peripheral.disconnectAsync();
  });

  it("Env Sensor advertises Environmental Sensing and Battery, and serves battery, temperature, humidity and pressure", async () => {
    await central.noble.waitForPoweredOnAsync();
    const peripheral = await scanFor(central.noble, (p) => p.advertisement.localName === "Env Sensor");
    assert.deepEqual(peripheral.advertisement.serviceUuids, ["181a", "180f"]);
    await peripheral.connectAsync();
    const { characteristics } = await peripheral.discoverSomeServicesAndCharacteristicsAsync(["180f", "181a"], []);
    const read = async (uuid: string): Promise<Buffer> => {
      const found = characteristics.find((x) => x.uuid === uuid);
      assert.ok(found, uuid);
      assert.deepEqual(found.properties, ["read", "notify"]);
      return found.readAsync();
    };
    const battery = (await read("2a19")).readUInt8(0);
    assert.ok(battery > 50 && battery <= 100, `battery ${battery} %`);
    const celsius = (await read("2a6e")).readInt16LE(0) / 100;
    assert.ok(celsius > 15 && celsius < 30, `temperature ${celsius} °C`);
    const humidity = (await read("2a6f")).readUInt16LE(0) / 100;
    assert.ok(humidity > 20 && humidity < 80, `humidity ${humidity} %`);
    const pascal = (await read("2a6d")).readUInt32LE(0) / 10;
    assert.ok(pascal > 95000 && pascal < 105000, `pressure ${pascal} Pa`);
    await peripheral.disconnectAsync();
  });
});

describe("sim: kind gatt in simulated time (a scripted central, a manual clock)", () => {
  let clock: ManualClock;
  let central: TestCentral;
  let device: GattDevicePeripheral;

  beforeEach(() => {
    clock = new ManualClock();
    const built = createPeripheral(DEVICE, "peripherals[0]", { clock, link: DEFAULT_LINK, baseDir: "" });
    assert.ok(built instanceof GattDevicePeripheral);
    device = built;
    central = new TestCentral(device);
    central.connect();
    central.discoverAll(23);
  });

  afterEach(() => device.close());

  it("sends the schedule every intervalMs from the subscription on, and nothing once unsubscribed", () => {
    central.subscribe("2a6e");
    clock.advance(99);
    assert.deepEqual(central.valuesOf("2a6e"), []);
    clock.advance(1);
    clock.advance(200);
    assert.deepEqual(central.valuesOf("2a6e").map((v) => v.toString("hex")), ["0100", "0200", "0300"]);
    central.unsubscribe("2a6e");
    clock.advance(1000);
    assert.equal(central.valuesOf("2a6e").length, 3);
    assert.equal(central.read("2a6e").toString("hex"), "0300");
  });

  it("holds the schedule while an indication awaits its confirmation: one outstanding, as ATT allows", async () => {
    central.autoConfirm = false;
    central.subscribe(c("05"));
    clock.advance(100);
    assert.deepEqual(text(central.valuesOf(c("05"))), ["a"]);
    for (let tick = 0; tick < 5; tick++) {
      clock.advance(100);
      assert.deepEqual(text(central.valuesOf(c("05"))), ["a"], "nothing more before the confirmation");
      assert.equal(central.read(c("05")).toString("utf8"), "a", "the schedule waits: the readable value is still the one indicated");
    }
    central.confirm();
    // The confirmation settles the indication's promise: let its callbacks run.
    await new Promise(setImmediate);
    clock.advance(100);
    assert.deepEqual(text(central.valuesOf(c("05"))), ["a", "b"]);
  });

  it("sends a reply only after the Write Response, and after delayMs of simulated time", () => {
    central.subscribe(c("09"));
    const [response] = central.write(c("08"), "slow\n");
    assert.equal(response[0], 0x13, "Write Response");
    clock.advance(499);
    assert.deepEqual(central.valuesOf(c("09")), []);
    clock.advance(1);
    assert.deepEqual(text(central.valuesOf(c("09"))), ["late\n"]);
  });

  it("drops a pending reply when the link drops, and the next connection starts clean", () => {
    central.subscribe(c("09"));
    central.write(c("08"), "slow\n");
    central.disconnect();
    const again = new TestCentral(device);
    again.connect();
    again.discoverAll(23);
    again.subscribe(c("09"));
    clock.advance(1000);
    assert.deepEqual(again.valuesOf(c("09")), []);
    again.write(c("08"), "*IDN?\n");
    clock.advance(0);
    assert.deepEqual(text(again.valuesOf(c("09"))), ["ACME,", "X1,", "1.0\n"]);
  });

  it("lets a test move a reading (setValue) or send one now (sendValue), as the device would", async () => {
    device.setValue(c("04"), Buffer.from("moved"));
    assert.equal(central.read(c("04")).toString("utf8"), "moved");
    assert.equal(central.received.length, 0, "setValue sends nothing");
    assert.equal(await device.sendValue(c("07"), Buffer.from("unsent")), false, "not subscribed: nothing sent");
    assert.equal(device.currentValue(c("07")).toString("utf8"), "unsent");
    central.subscribe(c("07"));
    assert.equal(await device.sendValue(c("07"), LONG_VALUE), true);
    assert.deepEqual(central.valuesOf(c("07")), [LONG_VALUE.subarray(0, 20)], "cut to MTU − 3");
    await assert.rejects(device.sendValue(c("04"), Buffer.of(1)), /no notify\/indicate characteristic/);
  });

  /** Runs due timers and the callbacks of what was delivered, until nothing more happens. */
  async function settle(): Promise<void> {
    let before: number;
    do {
      before = central.received.length;
      await new Promise(setImmediate);
      clock.advance(0);
    } while (central.received.length !== before);
  }

  it("keeps at most 64 replies waiting: a central writing faster than the device answers loses the excess", async () => {
    central.subscribe(c("09"));
    for (let i = 0; i < 200; i++) central.write(c("08"), "?");
    await settle();
    assert.equal(central.valuesOf(c("09")).length, 64);
    assert.ok(text(central.valuesOf(c("09"))).every((v) => v === "ERR\n"));
  });

  it("starts the next reply only once the link has delivered the previous one (backpressure)", async () => {
    central.link.hold = true;
    central.subscribe(c("09"));
    central.write(c("08"), "*IDN?\n");
    central.write(c("08"), "what?\n");
    await settle();
    assert.deepEqual(text(central.valuesOf(c("09"))), ["ACME,", "X1,", "1.0\n"], "the second reply waits");
    central.link.release();
    await settle();
    assert.deepEqual(text(central.valuesOf(c("09"))), ["ACME,", "X1,", "1.0\n", "ERR\n"]);
  });

  it("skips schedule ticks while the link is backed up (at most 32 PDUs queued), then goes on with the cycle in order", async () => {
    central.link.hold = true;
    central.subscribe("2a6e");
    clock.advance(100 * 100);
    const queued = central.valuesOf("2a6e").length;
    assert.ok(queued <= 33, `${queued} notifications queued on a link that delivers none`);
    central.link.release();
    await new Promise(setImmediate);
    central.link.hold = false;
    clock.advance(300);
    const all = central.valuesOf("2a6e").map((v) => v.toString("hex"));
    const cycle = ["0100", "0200", "0300"];
    all.forEach((v, i) => assert.equal(v, cycle[i % 3], `value ${i} in cycle order`));
    assert.equal(all.length, queued + 3);
  });
});

describe("sim: kind gatt scenario validation", () => {
  const FIELD = "peripherals[2]";

  function build(entry: JsonObject): GattDevicePeripheral {
    const p = createPeripheral({ kind: "gatt", address: ADDRESS, ...entry }, FIELD, { clock: new ManualClock(), link: DEFAULT_LINK, baseDir: "" });
    assert.ok(p instanceof GattDevicePeripheral);
    return p;
  }

  function rejects(entry: JsonObject, field: string, problem: RegExp): void {
    assert.throws(
      () => build(entry),
      (e: unknown) => {
        assert.ok(e instanceof ScenarioError, String(e));
        assert.equal(e.field, `${FIELD}.${field}`);
        assert.match(e.problem, problem);
        return true;
      },
    );
  }

  const one = (characteristic: JsonObject, more: JsonObject[] = []): JsonObject => ({ services: [{ uuid: "fff0", characteristics: [characteristic, ...more] }] });

  it("builds a device with defaults: random address, a name from the address, an empty table", () => {
    const p = build({});
    assert.deepEqual([p.kind, p.addressType, p.name], ["gatt", "random", "GATT-0010"]);
  });

  it("starts a scheduled characteristic without a value at the schedule's first value, any other at empty", () => {
    const p = build(one({ uuid: "fff1", properties: ["read", "notify"], notify: { values: [{ text: "first" }, { text: "second" }] } }, [{ uuid: "fff2", properties: ["read"] }]));
    assert.equal(p.currentValue("fff1").toString("utf8"), "first");
    assert.deepEqual(p.currentValue("fff2"), Buffer.alloc(0));
  });

  it("names the field of a replyOn or echoTo that names no notify/indicate characteristic", () => {
    rejects(
      {
        services: [
          { uuid: "fff0", characteristics: [{ uuid: "fff1", properties: ["read"] }] },
          { uuid: "fff8", characteristics: [{ uuid: "fff2", properties: ["notify"] }, { uuid: "fff3", properties: ["write"], onWrite: { replyOn: "fff1", replies: [] } }] },
        ],
      },
      "services[1].characteristics[1].onWrite.replyOn",
      /^names no notify\/indicate characteristic$/,
    );
    rejects(one({ uuid: "fff3", properties: ["write"], onWrite: { echoTo: "fff9" } }), "services[0].characteristics[0].onWrite.echoTo", /names no notify\/indicate/);
  });

  it("names the field of a bad property list", () => {
    rejects(one({ uuid: "fff1", properties: ["read", "broadcast"] }), "services[0].characteristics[0].properties[1]", /must be one of "read", "write", "writeWithoutResponse", "notify", "indicate"/);
    rejects(one({ uuid: "fff1", properties: ["read", "read"] }), "services[0].characteristics[0].properties[1]", /is listed twice/);
    rejects(one({ uuid: "fff1", properties: [] }), "services[0].characteristics[0].properties", /non-empty/);
    rejects(one({ uuid: "fff1" }), "services[0].characteristics[0].properties", /is required/);
  });

  it("names the field of a bad value, without quoting it", () => {
    rejects(one({ uuid: "fff1", properties: ["read"], value: { hex: "00".repeat(513) } }), "services[0].characteristics[0].value.hex", /at most 512 bytes/);
    rejects(one({ uuid: "fff1", properties: ["read"], value: { text: "é".repeat(300) } }), "services[0].characteristics[0].value.text", /at most 512 bytes/);
    rejects(one({ uuid: "fff1", properties: ["read"], value: { hex: "01", text: "a" } }), "services[0].characteristics[0].value", /must be \{ "hex"/);
    rejects(one({ uuid: "fff1", properties: ["read"], value: "01" }), "services[0].characteristics[0].value", /must be \{ "hex"/);
    assert.throws(() => build(one({ uuid: "fff1", properties: ["read"], value: { hex: "zz-secret" } })), (e: Error) => !e.message.includes("secret") && /hex digits in pairs/.test(e.message));
  });

  it("names the field of a bad UUID, a duplicate characteristic, a reserved service, an unknown key", () => {
    rejects({ services: [{ uuid: "not-a-uuid", characteristics: [] }] }, "services[0].uuid", /must be a Bluetooth UUID/);
    rejects(one({ uuid: "2a19", properties: ["read"] }, [{ uuid: "0x2A19", properties: ["read"] }]), "services[0].characteristics[1].uuid", /already used by .*characteristics\[0\]/);
    rejects({ services: [{ uuid: "1800", characteristics: [] }] }, "services[0].uuid", /added by the simulator/);
    rejects(one({ uuid: "2803", properties: ["read"] }), "services[0].characteristics[0].uuid", /declaration or descriptor/);
    rejects(one({ uuid: "fff1", properties: ["read"], colour: "red" }), "services[0].characteristics[0].(key 3)", /unknown key/);
    rejects({ service: [] }, "(key 3)", /unknown option/);
  });

  it("names the field of a bad notify schedule or onWrite", () => {
    rejects(one({ uuid: "fff1", properties: ["notify"], notify: { intervalMs: 5, values: [{ hex: "01" }] } }), "services[0].characteristics[0].notify.intervalMs", /between 10 and/);
    rejects(one({ uuid: "fff1", properties: ["notify"], notify: { values: [] } }), "services[0].characteristics[0].notify.values", /non-empty/);
    rejects(one({ uuid: "fff1", properties: ["read"], notify: { values: [{ hex: "01" }] } }), "services[0].characteristics[0].notify", /needs the property "notify" or "indicate"/);
    rejects(one({ uuid: "fff1", properties: ["read"], onWrite: "store" }), "services[0].characteristics[0].onWrite", /needs the property "write"/);
    rejects(one({ uuid: "fff1", properties: ["write"], onWrite: "echo" }), "services[0].characteristics[0].onWrite", /must be "store"/);
    const replying = (reply: JsonObject): JsonObject => one({ uuid: "fff1", properties: ["write", "notify"], onWrite: { replyOn: "fff1", replies: [reply] } });
    rejects(replying({ request: { text: "a" }, reply: [{ text: "b" }], delayMs: 60001 }), "services[0].characteristics[0].onWrite.replies[0].delayMs", /between 0 and 60000/);
    rejects(replying({ request: { text: "a" }, reply: [] }), "services[0].characteristics[0].onWrite.replies[0].reply", /non-empty/);
    rejects(replying({ reply: [{ text: "b" }] }), "services[0].characteristics[0].onWrite.replies[0].request", /is required/);
  });

  it("bounds the table", () => {
    const services = Array.from({ length: 33 }, (_, i) => ({ uuid: (0xa000 + i).toString(16), characteristics: [] }));
    rejects({ services }, "services", /at most 32/);
    const many = Array.from({ length: 40 }, (_, i) => ({ uuid: (0xb000 + i).toString(16), properties: ["read"] }));
    rejects({ services: [{ uuid: "fff0", characteristics: many }, { uuid: "fff8", characteristics: many }] }, "services[1].characteristics", /at most 64 characteristics/);
  });

  it("refuses advertising data that fits in neither ADV_IND nor the scan response", () => {
    rejects(
      { advertising: { services: ["6e400001-b5a3-f393-e0a9-e50e24dcca9e", "6e400011-b5a3-f393-e0a9-e50e24dcca9e"] } },
      "advertising.services",
      /^advertising data too long: 34 bytes, max 31$/,
    );
    rejects({ advertising: { manufacturerData: { companyId: 1, data: "00".repeat(28) } } }, "advertising.manufacturerData", /^advertising data too long: 32 bytes, max 31$/);
    rejects({ advertising: { manufacturerData: { companyId: 65536 } } }, "advertising.manufacturerData.companyId", /between 0 and 65535/);
    rejects({ advertising: { services: ["180f", "0x180F"] } }, "advertising.services[1]", /same UUID/);
  });

  it("builds the README's example", () => {
    const readme = fs.readFileSync(path.join(__dirname, "..", "..", "README.md"), "utf8");
    const section = readme.slice(readme.indexOf("### Your own device: kind `gatt`"));
    const example = /```json\n([\s\S]*?)```/.exec(section);
    assert.ok(example, "the section has a JSON example");
    const entry = JSON.parse(example[1]) as JsonObject;
    const p = build({ ...entry, address: ADDRESS });
    assert.equal(p.name, "Thermo");
    assert.equal(p.currentValue("2a6e").toString("hex"), "6608");
  });

  it("places manufacturer data after the service UUIDs, in the scan response when ADV_IND is full; the name where it fits", () => {
    /** AD structures as [type, hex data]. */
    const structures = (data: Buffer): [number, string][] => {
      const out: [number, string][] = [];
      for (let i = 0; i < data.length; i += data[i] + 1) out.push([data[i + 1], data.subarray(i + 2, i + 1 + data[i]).toString("hex")]);
      return out;
    };
    const nus = "6e400001-b5a3-f393-e0a9-e50e24dcca9e";
    const nusBytes = Buffer.from(nus.replace(/-/g, ""), "hex").reverse().toString("hex");
    const fits = build({ name: "A rather long device name", advertising: { services: [nus], manufacturerData: { companyId: 0x0059, data: "0102" } } });
    assert.deepEqual(structures(fits.advertisingData()), [
      [0x01, "06"],
      [0x07, nusBytes],
      [0xff, "59000102"],
    ]);
    assert.deepEqual(structures(fits.scanResponseData()), [[0x09, Buffer.from("A rather long device name").toString("hex")]]);
    const full = build({ name: "Short", advertising: { services: [nus], manufacturerData: { companyId: 0x0059, data: "00".repeat(12) } } });
    assert.deepEqual(structures(full.advertisingData()), [
      [0x01, "06"],
      [0x07, nusBytes],
      [0x09, Buffer.from("Short").toString("hex")],
    ]);
    assert.deepEqual(structures(full.scanResponseData()), [[0xff, `5900${"00".repeat(12)}`]]);
  });
});
