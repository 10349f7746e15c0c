/**
 * The advertiser kinds (ibeacon, eddystone, bthome, advertiser) and the scanning model behind them, seen through
 * noble's own, unmodified HCI stack on the virtual controller, on a manual clock: what noble's advertisement holds,
 * how often each device is heard, the scan window, passive against active scanning, repeated packets, and BTHome
 * encryption checked with an independent decryption (Node's crypto, written from the BTHome specification here).
 */
import { strict as assert } from "node:assert";
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { EventEmitter } from "node:events";
import { withBindings, type Noble, type Peripheral } from "@stoprocent/noble";
import { AdvertisementError, decodeAdvertisement, ReplayGuard } from "../../src/protocol/advertisement";
import { ADV_IND, ADV_NONCONN_IND, ADV_SCAN_IND, H4_COMMAND, OP, SCAN_RSP } from "../../src/protocol/hci";
import { buildCommand, parseCommandComplete, parseLeAdvertisingReports, type AdvertisingReport } from "../../src/protocol/hci-packets";
import { hciPeerPort, registerHciPeer, unregisterHciPeer, type HciPeer } from "../../src/ble/hci-peer";
import { installNobleHciDriver } from "../../src/ble/noble-driver";
import { VirtualController } from "../../src/sim/controller";
import { createPeripheral } from "../../src/sim/peripherals";
import { encryptBthome } from "../../src/sim/peripherals/bthome";
import { DEFAULT_SCENARIO, parseScenario } from "../../src/sim/scenario";
import { DEFAULT_LINK } from "../../src/sim/types";
import { ScenarioError, type JsonObject } from "../../src/sim/validate";
import { ManualClock } from "../support/manual-clock";

const h = (text: string): Buffer => Buffer.from(text.replace(/[\s-]/g, ""), "hex");
const settle = async (): Promise<void> => {
  for (let i = 0; i < 4; i++) await new Promise<void>((resolve) => setImmediate(resolve));
};

/** What noble told about one report ('discover' with duplicates allowed), copied at once (noble reuses its objects). */
interface Seen {
  address: string;
  connectable: boolean;
  localName: string | undefined;
  manufacturerData: Buffer | undefined;
  serviceData: { uuid: string; data: Buffer }[];
}

/** How the test rewrites noble's LE Set Scan Parameters (noble always asks active, 11.25 ms / 11.25 ms). */
interface ScanOverride {
  passive?: boolean;
  intervalMs?: number;
  windowMs?: number;
}

/**
 * Stands between noble and the controller as the BLE layer's guard does, rewriting LE Set Scan Parameters: the way
 * a passive scan or another duty cycle reaches the controller without patching noble.
 */
class ScanParametersPeer extends EventEmitter implements HciPeer {
  constructor(
    private readonly controller: VirtualController,
    private readonly override: ScanOverride,
  ) {
    super();
    controller.on("h4", (packet: Buffer) => this.emit("h4", packet));
    controller.on("close", () => this.emit("close"));
  }

  get isClosed(): boolean {
    return this.controller.isClosed;
  }

  write(packet: Buffer): void {
    if (packet[0] === H4_COMMAND && packet.length >= 11 && packet.readUInt16LE(1) === OP.LE_SET_SCAN_PARAMETERS) {
      packet = Buffer.from(packet);
      if (this.override.passive) packet[4] = 0x00;
      if (this.override.intervalMs !== undefined) packet.writeUInt16LE(Math.round(this.override.intervalMs / 0.625), 5);
      if (this.override.windowMs !== undefined) packet.writeUInt16LE(Math.round(this.override.windowMs / 0.625), 7);
    }
    this.controller.write(packet);
  }
}

let nextId = 1;

/** Virtual advertisers, a virtual controller on a manual clock, and noble scanning it. */
class Air {
  readonly clock = new ManualClock();
  readonly controller = new VirtualController({ clock: this.clock, link: DEFAULT_LINK });
  readonly noble: Noble;
  /** Every report the controller sent to noble. */
  readonly reports: AdvertisingReport[] = [];
  /** Every 'discover' noble emitted. */
  readonly seen: Seen[] = [];
  /** noble's peripheral objects by address. */
  readonly peripherals = new Map<string, Peripheral>();
  private readonly id = `advertisers-test-${nextId++}`;

  constructor(specs: JsonObject[], override: ScanOverride = {}) {
    specs.forEach((spec, i) => this.controller.addPeripheral(createPeripheral(spec, `peripherals[${i}]`, { clock: this.clock, link: DEFAULT_LINK, baseDir: "" })));
    this.controller.on("h4", (packet: Buffer) => this.reports.push(...(parseLeAdvertisingReports(packet) ?? [])));
    installNobleHciDriver();
    registerHciPeer(this.id, new ScanParametersPeer(this.controller, override));
    this.noble = withBindings("hci", { hciDriver: "uart", bindParams: { uart: { port: hciPeerPort(this.id), baudRate: 1000000 } } });
    this.noble.on("discover", (p: Peripheral) => {
      const a = p.advertisement;
      this.peripherals.set(p.address, p);
      this.seen.push({
        address: p.address,
        connectable: p.connectable,
        localName: a.localName,
        manufacturerData: a.manufacturerData ? Buffer.from(a.manufacturerData) : undefined,
        serviceData: (a.serviceData ?? []).map((s) => ({ uuid: s.uuid, data: Buffer.from(s.data) })),
      });
    });
  }

  /** Powers noble on and starts its scan (duplicates allowed: one 'discover' per report). */
  async scan(): Promise<void> {
    await this.noble.waitForPoweredOnAsync();
    await this.noble.startScanningAsync([], true);
  }

  /** Lets `ms` of simulated time pass and noble take in what the controller heard meanwhile. */
  async run(ms: number): Promise<void> {
    this.clock.advance(ms);
    await settle();
  }

  /** Moves the clock in small steps until `promise` settles (a connection needs connection events). */
  async pump<T>(promise: Promise<T>, maxMs = 30000): Promise<T> {
    let done = false;
    const watched = promise.finally(() => (done = true));
    for (let t = 0; t < maxMs && !done; t += 7.5) await this.run(7.5);
    return watched;
  }

  of(address: string): Seen[] {
    return this.seen.filter((s) => s.address === address);
  }

  reportsOf(address: string, eventType?: number): AdvertisingReport[] {
    return this.reports.filter((r) => r.address === address && (eventType === undefined || r.eventType === eventType));
  }

  close(): void {
    this.noble.stop();
    this.noble.removeAllListeners();
    unregisterHciPeer(this.id);
    this.controller.close();
  }
}

const IBEACON_UUID = "e2c56db5-dffb-48d2-b060-d0f5a71096e0";
const BIND_KEY = "231d39c1d7cc1ab1aee224cd096db932";

/** BTHome v2 decryption as the specification describes it, written here independently of the simulator's encoder. */
function decryptBthome(address: string, serviceData: Buffer, key: string): { deviceInfo: number; counter: number; plain: Buffer } {
  const deviceInfo = serviceData[0];
  const cipher = serviceData.subarray(1, serviceData.length - 8);
  const counterBytes = serviceData.subarray(serviceData.length - 8, serviceData.length - 4);
  const mic = serviceData.subarray(serviceData.length - 4);
  const nonce = Buffer.concat([h(address.replace(/:/g, "")), h("d2fc"), Buffer.of(deviceInfo), counterBytes]);
  const decipher = crypto.createDecipheriv("aes-128-ccm", h(key), nonce, { authTagLength: 4 });
  decipher.setAuthTag(mic);
  const plain = Buffer.concat([decipher.update(cipher), decipher.final()]);
  return { deviceInfo, counter: counterBytes.readUInt32LE(0), plain };
}

/** Runs of equal consecutive buffers: [length, …]. */
function runLengths(list: Buffer[]): number[] {
  const runs: number[] = [];
  list.forEach((b, i) => {
    if (i > 0 && b.equals(list[i - 1])) runs[runs.length - 1]++;
    else runs.push(1);
  });
  return runs;
}

describe("sim: advertiser kinds through noble's HCI stack", function () {
  let air: Air | undefined;

  afterEach(() => {
    air?.close();
    air = undefined;
  });

  describe("what each kind sends", () => {
    it("ibeacon: Apple's manufacturer data with UUID, major, minor and measured power; no name: ADV_NONCONN_IND, not connectable", async () => {
      air = new Air([{ kind: "ibeacon", address: "c0:00:00:00:00:01", uuid: IBEACON_UUID, major: 258, minor: 772, measuredPower: -59 }]);
      await air.scan();
      await air.run(1000);
      const seen = air.of("c0:00:00:00:00:01");
      assert.ok(seen.length > 0, "discovered");
      assert.deepEqual(seen[0].manufacturerData, h(`4c00 0215 ${IBEACON_UUID} 0102 0304 c5`));
      assert.equal(seen[0].connectable, false);
      assert.deepEqual(new Set(air.reportsOf("c0:00:00:00:00:01").map((r) => r.eventType)), new Set([ADV_NONCONN_IND]), "no scan request to a non-scannable PDU");
    });

    it("a name that does not fit beside the payload goes into the scan response (ADV_SCAN_IND), which an active scan gets", async () => {
      air = new Air([{ kind: "ibeacon", address: "c0:00:00:00:00:02", name: "hall-beacon", uuid: IBEACON_UUID }]);
      await air.scan();
      await air.run(1000);
      const seen = air.of("c0:00:00:00:00:02");
      assert.ok(seen.some((s) => s.localName === "hall-beacon"));
      assert.ok(air.reportsOf("c0:00:00:00:00:02", ADV_SCAN_IND).length > 0);
      assert.ok(air.reportsOf("c0:00:00:00:00:02", SCAN_RSP).length > 0);
    });

    it("eddystone: UID, URL and TLM frames in turn as service data 0xFEAA; TLM counts advertisements and uptime on the sim clock", async () => {
      air = new Air([
        {
          kind: "eddystone",
          address: "c0:00:00:00:00:03",
          txPower: -18,
          uid: { namespace: "00112233445566778899", instance: "a1a2a3a4a5a6" },
          url: "https://www.example.org/x",
          tlm: { batteryMv: [3000, 2990], temperature: [21.5, -1.25] },
          intervalMs: 200,
        },
      ]);
      // The beacon advertises from the start; the scan begins 5 s later.
      air.clock.advance(5000);
      await air.scan();
      await air.run(3000);
      const frames = air.of("c0:00:00:00:00:03").map((s) => s.serviceData.find((d) => d.uuid === "feaa")?.data ?? Buffer.alloc(0));
      assert.ok(frames.length >= 12, `frames heard: ${frames.length}`);
      assert.ok(frames.some((f) => f.equals(h("00 ee 00112233445566778899 a1a2a3a4a5a6 0000"))), "UID frame");
      // https://www. = 0x01, "example", .org/ = 0x01, "x".
      assert.ok(frames.some((f) => f.equals(Buffer.concat([h("10 ee 01"), Buffer.from("example"), h("01"), Buffer.from("x")]))), "URL frame");
      const tlm = frames.filter((f) => f[0] === 0x20).map((f) => ({ battery: f.readUInt16BE(2), temperature: f.readInt16BE(4) / 256, count: f.readUInt32BE(6), uptime: f.readUInt32BE(10) }));
      assert.ok(tlm.length >= 4);
      assert.deepEqual(new Set(tlm.map((t) => t.battery)), new Set([3000, 2990]), "battery cycled");
      assert.deepEqual(new Set(tlm.map((t) => t.temperature)), new Set([21.5, -1.25]), "temperature cycled, 8.8 fixed point");
      // Every event carries one frame of three: consecutive TLM frames are three advertisements apart.
      for (let i = 1; i < tlm.length; i++) assert.equal(tlm[i].count - tlm[i - 1].count, 3);
      // Counted since power-on, not since the scan began: 5 s at 200–210 ms per event is about 24 events.
      assert.ok(tlm[0].count > 20, `first count ${tlm[0].count}`);
      assert.ok(tlm[0].uptime >= 50 && tlm[tlm.length - 1].uptime <= 80, "uptime in 0.1 s on the sim clock");
    });

    it("bthome: service data 0xFCD2 with the v2 objects; each packet repeated, then the next values and packet id", async () => {
      air = new Air([
        {
          kind: "bthome",
          address: "c0:00:00:00:00:04",
          name: "th",
          measurements: [
            { type: "humidity", values: [50.55, 60] },
            { type: "temperature", values: [25.06, -3.5] },
            { type: "battery", values: [90] },
            { type: "motion", values: [true, false] },
            { type: "button", values: ["press", "none"] },
          ],
          intervalMs: 100,
          repeat: 3,
        },
      ]);
      await air.scan();
      await air.run(3000);
      const seen = air.of("c0:00:00:00:00:04");
      assert.equal(seen[0].localName, "th", "short name in the advertisement itself");
      const packets = seen.map((s) => s.serviceData.find((d) => d.uuid === "fcd2")?.data ?? Buffer.alloc(0));
      const runs = runLengths(packets);
      assert.ok(runs.length >= 5, `packets: ${runs.length}`);
      // The first and last runs may be cut by the scan's start and end; every other one is exactly `repeat` long.
      assert.deepEqual(runs.slice(1, -1), runs.slice(1, -1).map(() => 3));
      const distinct = packets.filter((p, i) => i === 0 || !p.equals(packets[i - 1]));
      const ids = distinct.map((p) => p[2]);
      for (let i = 1; i < ids.length; i++) assert.equal(ids[i], (ids[i - 1] + 1) % 256, "packet id counts packets");
      // Objects in id order: packet id, battery 0x01, temperature 0x02 (0.01 °C), humidity 0x03 (0.01 %), motion 0x21, button 0x3A.
      const even = distinct.find((p) => p[2] % 2 === 0);
      const odd = distinct.find((p) => p[2] % 2 === 1);
      assert.ok(even && odd);
      assert.deepEqual(even.subarray(3), h("01 5a 02 ca09 03 bf13 21 01 3a 01"));
      assert.deepEqual(odd.subarray(3), h("01 5a 02 a2fe 03 7017 21 00 3a 00"));
      assert.equal(even[0], 0x40, "device information: BTHome v2, not encrypted");
    });

    it("bthome with a bind key: AES-CCM that decrypts with the key; the counter grows per new packet, repeats carry the same one", async () => {
      const address = "54:48:e6:8f:80:a5";
      air = new Air([
        { kind: "bthome", address, measurements: [{ type: "temperature", values: [25.06, 25.1] }, { type: "humidity", values: [50.55] }], bindKey: BIND_KEY, intervalMs: 100, repeat: 2 },
      ]);
      await air.scan();
      await air.run(2000);
      const packets = air.of(address).map((s) => s.serviceData.find((d) => d.uuid === "fcd2")?.data ?? Buffer.alloc(0));
      assert.ok(packets.length >= 10);
      const decrypted = packets.map((p) => decryptBthome(address, p, BIND_KEY));
      assert.equal(decrypted[0].deviceInfo, 0x41, "BTHome v2, encrypted");
      for (let i = 1; i < decrypted.length; i++) {
        const step = decrypted[i].counter - decrypted[i - 1].counter;
        assert.ok(step === 0 || step === 1, "counter never goes back");
        assert.equal(step === 0, packets[i].equals(packets[i - 1]), "same counter exactly when the packet repeats");
      }
      const temperatures = new Set(decrypted.map((d) => d.plain.readInt16LE(d.plain.indexOf(0x02, 2) + 1) / 100));
      assert.deepEqual(temperatures, new Set([25.06, 25.1]));
      assert.ok(decrypted.every((d) => d.plain[0] === 0x00 && d.plain.subarray(-3).equals(h("03 bf13"))), "packet id first, humidity last");
      assert.throws(() => decryptBthome(address, packets[0], "00".repeat(16)), "a wrong key fails the MIC");
    });

    it("bthome encryption reproduces the BTHome specification's example (key, address, counter 0x33221100)", () => {
      const body = encryptBthome(h("02 ca09 03 bf13"), h(BIND_KEY), "54:48:e6:8f:80:a5", 0x41, 0x33221100);
      assert.deepEqual(body, h("a47266c95f73 00112233 78237214"));
    });

    it("src/protocol's decoders (an independent implementation) read back the scenario's values; a replay guard drops the repeats", async () => {
      const encrypted = "54:48:e6:8f:80:a5";
      air = new Air([
        { kind: "ibeacon", address: "c0:00:00:00:06:01", uuid: IBEACON_UUID, major: 7, minor: 9, measuredPower: -61 },
        { kind: "eddystone", address: "c0:00:00:00:06:02", txPower: -12, uid: { namespace: "00112233445566778899", instance: "a1a2a3a4a5a6" }, url: "https://www.example.org/x", tlm: { batteryMv: [2950], temperature: [-4.5] } },
        {
          kind: "bthome",
          address: "c0:00:00:00:06:03",
          measurements: [
            { type: "temperature", values: [-3.5] },
            { objectId: 0x45, values: [21.4] },
            { type: "massKg", values: [1.5] },
            { type: "co2", values: [1234] },
            { type: "batteryLow", values: [true] },
            { type: "button", values: ["double_press"] },
            { type: "dimmer", values: [-3] },
          ],
        },
        { kind: "bthome", address: encrypted, bindKey: BIND_KEY, measurements: [{ type: "temperature", values: [25.06, 25.1] }, { type: "humidity", values: [50.55] }], intervalMs: 100, repeat: 3 },
      ]);
      await air.scan();
      await air.run(3000);
      const guard = new ReplayGuard();
      const decode = (s: Seen) => {
        try {
          return decodeAdvertisement({ address: s.address, serviceData: s.serviceData, ...(s.manufacturerData ? { manufacturerData: s.manufacturerData } : {}) }, (a) => (a === encrypted ? h(BIND_KEY) : undefined), guard);
        } catch (error) {
          if (error instanceof AdvertisementError && error.code === "bthome-replay") return "replay";
          throw error;
        }
      };
      const decoded = (address: string) => air?.of(address).map(decode) ?? [];
      assert.deepEqual(decoded("c0:00:00:00:06:01")[0], { type: "ibeacon", uuid: IBEACON_UUID, major: 7, minor: 9, measuredPower: -61 });
      const eddystone = decoded("c0:00:00:00:06:02");
      assert.deepEqual(eddystone[0], { type: "eddystone-uid", namespace: "00112233445566778899", instance: "a1a2a3a4a5a6", txPower: -12 });
      assert.deepEqual(eddystone[1], { type: "eddystone-url", url: "https://www.example.org/x", txPower: -12 });
      assert.deepEqual({ ...(eddystone[2] as object), advertisingCount: 0, uptime: 0 }, { type: "eddystone-tlm", battery: 2950, temperature: -4.5, advertisingCount: 0, uptime: 0 });
      const plain = decoded("c0:00:00:00:06:03")[0];
      assert.ok(plain && plain !== "replay");
      assert.deepEqual({ ...plain, packetId: 0 }, {
        type: "bthome",
        encrypted: false,
        triggerBased: false,
        packetId: 0,
        temperature: [-3.5, 21.4],
        massKg: 1.5,
        co2: 1234,
        batteryLow: true,
        button: "double_press",
        dimmer: { event: "rotate_left", steps: 3 },
      });
      // The encrypted sensor repeats each packet three times: the guard accepts the first of each, drops the rest.
      const secret = decoded(encrypted);
      const accepted = secret.filter((d) => d !== "replay");
      assert.ok(accepted.length >= 5, `accepted ${accepted.length}`);
      assert.ok(secret.filter((d) => d === "replay").length >= 2 * (accepted.length - 1), "the repeats are replays");
      assert.deepEqual(new Set(accepted.map((d) => (d as Record<string, unknown>).temperature)), new Set([25.06, 25.1]));
      assert.ok(accepted.every((d) => (d as Record<string, unknown>).encrypted === true && (d as Record<string, unknown>).humidity === 50.55));
    });

    it("advertiser: raw advertising and scan response bytes, cycled with repeat", async () => {
      air = new Air([
        { kind: "advertiser", address: "c0:00:00:00:00:05", data: ["020106 05ff3412aabb", "020106 05ff3412ccdd"], scanResponse: "0809 72617764617461", repeat: 2, intervalMs: 100 },
      ]);
      await air.scan();
      await air.run(1000);
      const seen = air.of("c0:00:00:00:00:05");
      assert.equal(seen.at(-1)?.localName, "rawdata", "from the scan response");
      const data = air.reportsOf("c0:00:00:00:00:05", ADV_SCAN_IND).map((r) => r.data.toString("hex"));
      assert.deepEqual(new Set(data), new Set(["02010605ff3412aabb", "02010605ff3412ccdd"]));
      assert.deepEqual(runLengths(data.map((d) => h(d))).slice(1, -1), runLengths(data.map((d) => h(d))).slice(1, -1).map(() => 2));
      assert.ok(seen.some((s) => s.manufacturerData?.equals(h("3412aabb"))) && seen.some((s) => s.manufacturerData?.equals(h("3412ccdd"))));
    });
  });

  describe("timing and scanning", () => {
    it("each device advertises every intervalMs plus 0–10 ms advDelay on the sim clock", async () => {
      air = new Air([
        { kind: "advertiser", address: "c0:00:00:00:01:00", data: "020106", intervalMs: 100 },
        { kind: "advertiser", address: "c0:00:00:00:01:01", data: "020106", intervalMs: 1000 },
        { kind: "advertiser", address: "c0:00:00:00:01:02", data: "020106", intervalMs: 20 },
      ]);
      await air.scan();
      await air.run(10000);
      const count = (a: string) => air?.of(a).length ?? 0;
      // 10 s / (interval + up to 10 ms), ± the one event the window's edges can cut.
      const expect = (a: string, interval: number) => {
        const n = count(a);
        assert.ok(n >= Math.floor(10000 / (interval + 10)) - 1 && n <= Math.ceil(10000 / interval) + 1, `${a}: ${n} reports at ${interval} ms`);
      };
      expect("c0:00:00:00:01:00", 100);
      expect("c0:00:00:00:01:01", 1000);
      expect("c0:00:00:00:01:02", 20);
      // advDelay is random: the 20 ms device's mean period is well above 20 ms and below 30 ms.
      const mean = 10000 / count("c0:00:00:00:01:02");
      assert.ok(mean > 22 && mean < 28, `mean period ${mean} ms`);
    });

    it("only advertisements inside the scan window are heard: a 25 % duty cycle hears about a quarter", async () => {
      const devices = [0, 1, 2, 3].map((i) => ({ kind: "advertiser", address: `c0:00:00:00:02:0${i}`, data: "020106", intervalMs: 100 }));
      air = new Air(devices, { intervalMs: 100, windowMs: 25 });
      await air.scan();
      await air.run(60000);
      const heard = air.seen.length;
      // 4 devices × 60 s / 105 ms ≈ 2,286 advertisements.
      assert.ok(heard > 0.18 * 2286 && heard < 0.32 * 2286, `heard ${heard} of about 2286`);
    });

    it("a passive scan sends no scan request: no SCAN_RSP report and no scan response data in noble; an active one gets both", async () => {
      const spec = { kind: "advertiser", address: "c0:00:00:00:03:00", data: "020106 05ff3412aabb", scanResponse: "0809 72617764617461", intervalMs: 100 };
      const beacon = { kind: "ibeacon", address: "c0:00:00:00:03:01", name: "passive-test-beacon", uuid: IBEACON_UUID };
      air = new Air([spec, beacon], { passive: true });
      await air.scan();
      await air.run(2000);
      assert.equal(air.reports.filter((r) => r.eventType === SCAN_RSP).length, 0);
      for (const address of [spec.address, beacon.address]) {
        const seen = air.of(address);
        assert.ok(seen.length > 0, `${address} discovered passively`);
        assert.ok(seen.every((s) => s.localName === undefined), "the name lives only in the scan response");
      }
      assert.ok(air.of(spec.address).every((s) => s.manufacturerData?.equals(h("3412aabb"))));
      air.close();

      air = new Air([spec, beacon]);
      await air.scan();
      await air.run(2000);
      assert.ok(air.reportsOf(spec.address, SCAN_RSP).length > 0);
      assert.equal(air.of(spec.address).at(-1)?.localName, "rawdata");
      assert.equal(air.of(beacon.address).at(-1)?.localName, "passive-test-beacon");
    });

    it("a connectable advertiser (connectable: true) sends ADV_IND and accepts a connection; a beacon ignores one", async () => {
      air = new Air([
        { kind: "ibeacon", address: "c0:00:00:00:04:00", uuid: IBEACON_UUID, connectable: true },
        { kind: "ibeacon", address: "c0:00:00:00:04:01", uuid: IBEACON_UUID },
      ]);
      await air.scan();
      await air.run(1000);
      assert.ok(air.reportsOf("c0:00:00:00:04:00", ADV_IND).length > 0);
      const connectable = air.peripherals.get("c0:00:00:00:04:00");
      const beacon = air.peripherals.get("c0:00:00:00:04:01");
      assert.ok(connectable && beacon);
      await air.noble.stopScanningAsync();

      const attempt = beacon.connectAsync();
      await air.run(2000);
      assert.equal(air.controller.isConnected(beacon.address), false, "the beacon ignored the connection request");
      beacon.cancelConnect();
      await assert.rejects(attempt);

      await air.pump(connectable.connectAsync());
      assert.equal(air.controller.isConnected(connectable.address), true);
      const services = await air.pump(connectable.discoverServicesAsync());
      assert.deepEqual(services.map((s) => s.uuid).sort(), ["1800", "1801"]);
      await air.pump(connectable.disconnectAsync());
    });

    it("LE Set Scan Parameters outside the spec's ranges is refused with Invalid Parameters, leaving the last good ones", async () => {
      air = new Air([{ kind: "advertiser", address: "c0:00:00:00:05:00", data: "020106", scanResponse: "020af4", rssi: -81 }]);
      // noble initialises (and sets its own parameters) first; the test then plays the host.
      await air.noble.waitForPoweredOnAsync();
      await settle();
      const replies: number[] = [];
      air.controller.on("h4", (packet: Buffer) => {
        const complete = parseCommandComplete(packet);
        if (complete?.opcode === OP.LE_SET_SCAN_PARAMETERS) replies.push(complete.status);
      });
      const params = (type: number, interval: number, window: number) => {
        const p = Buffer.alloc(7);
        p[0] = type;
        p.writeUInt16LE(interval, 1);
        p.writeUInt16LE(window, 3);
        air?.controller.write(buildCommand(OP.LE_SET_SCAN_PARAMETERS, p));
      };
      params(0x00, 0x0010, 0x0010); // passive, 10 ms / 10 ms: accepted
      params(0x02, 0x0010, 0x0010); // no such scan type
      params(0x01, 0x0003, 0x0003); // interval below 2.5 ms
      params(0x01, 0x4001, 0x0010); // interval above 10.24 s
      params(0x01, 0x0010, 0x0020); // window longer than the interval
      const raw = (p: number[]) => air?.controller.write(buildCommand(OP.LE_SET_SCAN_PARAMETERS, Buffer.from(p)));
      raw([0x01, 0x10, 0x00, 0x10, 0x00, 0x04, 0x00]); // no such Own_Address_Type
      raw([0x01, 0x10, 0x00, 0x10, 0x00, 0x00, 0x04]); // no such Scanning_Filter_Policy
      await settle();
      assert.deepEqual(replies, [0x00, 0x12, 0x12, 0x12, 0x12, 0x12, 0x12]);
      air.controller.write(buildCommand(OP.LE_SET_SCAN_ENABLE, Buffer.from([1, 0])));
      await air.run(1000);
      const reports = air.reportsOf("c0:00:00:00:05:00");
      assert.ok(reports.length > 0);
      assert.ok(reports.every((r) => r.eventType === ADV_SCAN_IND), "still passive: no scan response");
      assert.ok(reports.every((r) => r.rssi === -81), "the device's own RSSI");
    });

    it("the README's example scenario runs: every device heard", async () => {
      const readme = fs.readFileSync(path.join(__dirname, "..", "..", "README.md"), "utf8");
      const section = readme.slice(readme.indexOf("### Advertisers: beacons and sensors that never connect"));
      const example = /```json\n([\s\S]*?)```/.exec(section);
      assert.ok(example, "the section has a JSON example");
      const scenario = parseScenario(JSON.parse(example[1]), "");
      air = new Air(scenario.peripherals.map((p) => p.spec));
      await air.scan();
      await air.run(2000);
      for (const p of scenario.peripherals) assert.ok(air.of(p.address).length > 0, `${p.kind} ${p.address} heard`);
    });

    it("the built-in scenario's advertisers are all heard within a second", async () => {
      const specs = (DEFAULT_SCENARIO.peripherals as unknown as JsonObject[]).filter((p) => ["ibeacon", "eddystone", "bthome", "advertiser"].includes(String(p.kind)));
      assert.equal(specs.length, 5);
      air = new Air(specs);
      await air.scan();
      await air.run(1000);
      for (const spec of specs) assert.ok(air.of(String(spec.address)).length > 0, `${String(spec.address)} heard`);
      const encrypted = specs.find((s) => s.bindKey !== undefined);
      assert.ok(encrypted);
      const packet = air.of(String(encrypted.address))[0].serviceData.find((d) => d.uuid === "fcd2");
      assert.ok(packet);
      assert.equal(decryptBthome(String(encrypted.address), packet.data, String(encrypted.bindKey)).plain[0], 0x00, "decrypts with the documented demo key");
    });
  });

  describe("scenario validation", () => {
    const ctx = { clock: new ManualClock(), link: DEFAULT_LINK, baseDir: "" };
    const build = (spec: JsonObject) => createPeripheral({ address: "c0:00:00:00:09:00", ...spec }, "peripherals[0]", ctx).close();
    const SECRET = "zz-secret-zz";
    const cases: [string, JsonObject, string, RegExp][] = [
      ["ibeacon without uuid", { kind: "ibeacon" }, "peripherals[0].uuid", /is required/],
      ["ibeacon uuid", { kind: "ibeacon", uuid: SECRET }, "peripherals[0].uuid", /128-bit UUID/],
      ["ibeacon major", { kind: "ibeacon", uuid: IBEACON_UUID, major: 70000 }, "peripherals[0].major", /between 0 and 65535/],
      ["interval below 20 ms", { kind: "ibeacon", uuid: IBEACON_UUID, intervalMs: 10 }, "peripherals[0].intervalMs", /between 20 and 10240/],
      ["unknown option", { kind: "ibeacon", uuid: IBEACON_UUID, [SECRET]: 1 }, "peripherals[0].(key 4)", /unknown option/],
      ["eddystone without frames", { kind: "eddystone" }, "peripherals[0].uid", /at least one frame/],
      ["eddystone url scheme", { kind: "eddystone", url: `ftp://${SECRET}` }, "peripherals[0].url", /must start with/],
      ["eddystone url length", { kind: "eddystone", url: `https://${SECRET}${SECRET}.com` }, "peripherals[0].url", /encodes to \d+ bytes/],
      ["eddystone namespace", { kind: "eddystone", uid: { namespace: "0011", instance: "a1a2a3a4a5a6" } }, "peripherals[0].uid.namespace", /20 hex digits/],
      ["eddystone tlm temperature", { kind: "eddystone", tlm: { temperature: [20, 300] } }, "peripherals[0].tlm.temperature[1]", /-127.99 to 127.99/],
      ["bthome without measurements", { kind: "bthome" }, "peripherals[0].measurements", /is required/],
      ["bthome measurements not a list", { kind: "bthome", measurements: { type: "battery" } }, "peripherals[0].measurements", /must be a list/],
      ["bthome no values", { kind: "bthome", measurements: [{ type: "battery" }] }, "peripherals[0].measurements[0].values", /is required/],
      ["bthome unknown object id", { kind: "bthome", measurements: [{ objectId: 0x99, values: [1] }] }, "peripherals[0].measurements[0].objectId", /not a BTHome object id/],
      ["bthome button event", { kind: "bthome", measurements: [{ type: "button", values: ["press", SECRET] }] }, "peripherals[0].measurements[0].values[1]", /must be one of "none"/],
      ["bthome unknown type", { kind: "bthome", measurements: [{ type: "temperature", values: [1] }, { type: SECRET, values: [1] }] }, "peripherals[0].measurements[1].type", /not a BTHome object name/],
      ["bthome value range", { kind: "bthome", measurements: [{ type: "humidity", values: [50, 700] }] }, "peripherals[0].measurements[0].values[1]", /between 0 and 655.35/],
      ["bthome binary value", { kind: "bthome", measurements: [{ type: "door", values: ["open"] }] }, "peripherals[0].measurements[0].values[0]", /true or false/],
      ["bthome objectId mismatch", { kind: "bthome", measurements: [{ type: "humidity", objectId: 0x45, values: [1] }] }, "peripherals[0].measurements[0].type", /does not match objectId/],
      ["bthome measurement key", { kind: "bthome", measurements: [{ type: "battery", values: [1], [SECRET]: 2 }] }, "peripherals[0].measurements[0].(key 3)", /unknown key/],
      ["bthome bind key", { kind: "bthome", measurements: [{ type: "battery", values: [1] }], bindKey: "00".repeat(15) }, "peripherals[0].bindKey", /32 hex digits/],
      [
        "bthome too large when encrypted",
        { kind: "bthome", bindKey: BIND_KEY, measurements: ["temperature", "humidity", "pressure", "illuminance"].map((type) => ({ type, values: [1] })) },
        "peripherals[0].measurements",
        /take 16 bytes, at most 15 fit in one advertisement when encrypted/,
      ],
      ["bthome repeat with changeEveryMs", { kind: "bthome", measurements: [{ type: "battery", values: [1] }], repeat: 2, changeEveryMs: 1000 }, "peripherals[0].repeat", /cannot be combined/],
      ["advertiser without data", { kind: "advertiser" }, "peripherals[0].data", /is required/],
      ["advertiser data over 31 bytes", { kind: "advertiser", data: "00".repeat(32) }, "peripherals[0].data[0]", /0 to 31 bytes/],
      ["advertiser scan response hex", { kind: "advertiser", data: "020106", scanResponse: [SECRET] }, "peripherals[0].scanResponse[0]", /hex/],
      ["advertiser name", { kind: "advertiser", data: "020106", name: SECRET }, "peripherals[0].name", /not used by kind "advertiser"/],
      ["rssi", { kind: "advertiser", data: "020106", rssi: -200 }, "peripherals[0].rssi", /between -127 and 20/],
    ];
    for (const [what, spec, field, problem] of cases) {
      it(`${what}: names ${field}`, () => {
        assert.throws(
          () => build(spec),
          (e: unknown) => {
            assert.ok(e instanceof ScenarioError, String(e));
            assert.equal(e.field, field);
            assert.match(e.problem, problem);
            assert.ok(!e.message.includes(SECRET), "the value is never echoed");
            return true;
          },
        );
      });
    }
  });
});
