/**
 * Shared and passive scanning in the pool (src/ble/pool.ts watchAdvertisements) against the fake noble of
 * test/support/fake-noble.ts: one controller scan for every watcher, the editor's scan and the pool's own scans;
 * its type passive unless someone needs scan responses; connections undisturbed by watchers.
 */
import assert from "node:assert/strict";
import type { Peripheral } from "@stoprocent/noble";
import { BleAdapter, DEFAULT_POLICY, type DeviceSession, type Lease } from "../../src/ble/pool";
import { FakeCharacteristic, FakeNoble, FakePeripheral, FakeService } from "../support/fake-noble";
import { ManualClock } from "../support/manual-clock";

const SVC = "180d";
const CHR = "2a37";
const A = "aa:00:00:00:00:01";
const B = "bb:00:00:00:00:02";

/** Lets every pending promise continuation run (the fake and the pool wait on nothing else): see pool.test.ts. */
const settled = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

function device(address: string, name = ""): { p: FakePeripheral; chr: FakeCharacteristic } {
  const chr = new FakeCharacteristic(CHR, ["notify"]);
  const p = new FakePeripheral({ address, name, serviceUuids: [SVC], services: [new FakeService(SVC, [chr])] });
  p.calls.auto.add("disconnect");
  return { chr, p };
}

class Harness {
  readonly noble = new FakeNoble();
  readonly clock = new ManualClock();
  readonly adapter = new BleAdapter({ transport: "simulator", scenario: "" }, DEFAULT_POLICY, { open: this.noble.opener(), timers: this.clock });

  constructor() {
    this.adapter.ref();
    this.noble.setState("poweredOn");
  }

  /** A watcher that keeps the addresses it was given. */
  watch(active: boolean): { seen: string[]; stop: () => void } {
    const seen: string[] = [];
    const stop = this.adapter.watchAdvertisements({ active }, (p: Peripheral) => seen.push(p.address));
    return { seen, stop };
  }
}

/** A lease on `address` that subscribes and keeps the values it gets, resolving `connected` once set up. */
function subscriber(adapter: BleAdapter, selector: { address?: string; name?: string }): { lease: Lease; values: Buffer[]; sessions: DeviceSession[]; connected: Promise<void> } {
  const values: Buffer[] = [];
  const sessions: DeviceSession[] = [];
  let resolve = (): void => undefined;
  const connected = new Promise<void>((r) => (resolve = r));
  const lease = adapter.lease({
    selector,
    onState: (s) => {
      if (s.state === "connected") resolve();
    },
    onConnected: async (session) => {
      sessions.push(session);
      await session.subscribe(SVC, CHR, (v) => values.push(v));
    },
  });
  return { lease, values, sessions, connected };
}

describe("shared and passive scanning (fake noble)", () => {
  it("two watchers share one scan; stopping one keeps the other's reports; the last one stops the scan", () => {
    const h = new Harness();
    const a = device(A);
    const w1 = h.watch(false);
    const w2 = h.watch(false);
    assert.equal(h.noble.scanning, true);
    assert.equal(h.noble.scanStarts, 1, "one scan of the controller for both");
    h.noble.discover(a.p);
    assert.deepEqual([w1.seen, w2.seen], [[A], [A]]);
    w1.stop();
    assert.equal(h.noble.scanning, true, "the other watcher keeps the scan");
    h.noble.discover(a.p);
    assert.deepEqual([w1.seen, w2.seen], [[A], [A, A]]);
    w2.stop();
    assert.equal(h.noble.scanning, false);
  });

  it("scans passively unless a watcher wants active; the type changes with a stop and a new start", () => {
    const h = new Harness();
    const passive = h.watch(false);
    assert.equal(h.noble.scanType.sent, "passive");
    assert.equal(h.adapter.currentScanType, "passive");
    const active = h.watch(true);
    assert.equal(h.noble.scanType.sent, "active", "an active watcher gets scan responses");
    assert.equal(h.noble.scanStarts, 2);
    active.stop();
    assert.equal(h.noble.scanType.sent, "passive", "back to passive once nobody wants active");
    assert.equal(h.noble.scanning, true);
    passive.stop();
    assert.equal(h.noble.scanning, false);
  });

  it("a lease looking for its peripheral makes the scan active (names are in scan responses); once linked, passive again", async () => {
    const h = new Harness();
    const a = device(A, "Strap");
    h.watch(false);
    assert.equal(h.noble.scanType.sent, "passive");
    const user = subscriber(h.adapter, { address: A });
    assert.equal(h.noble.scanType.sent, "active");
    h.noble.discover(a.p);
    (await a.p.calls.next("connect")).resolve();
    (await a.p.calls.next("discover")).resolve();
    (await a.chr.calls.next("subscribe")).resolve();
    await user.connected;
    assert.equal(h.noble.scanType.sent, "passive");
    assert.equal(h.noble.scanning, true);
    await user.lease.release();
  });

  it("connecting pauses the scan only while the controller initiates: it runs again during discovery", async () => {
    const h = new Harness();
    const a = device(A);
    const found = h.adapter.scan(10000);
    const user = subscriber(h.adapter, { address: A });
    h.noble.discover(a.p);
    const connect = await a.p.calls.next("connect");
    assert.equal(h.noble.scanning, false, "noble's HCI stack cannot scan while it initiates");
    connect.resolve();
    const discovery = await a.p.calls.next("discover");
    assert.equal(h.noble.scanning, true, "the scan is back as soon as the link is up");
    discovery.resolve();
    (await a.chr.calls.next("subscribe")).resolve();
    await user.connected;
    h.clock.advance(10000);
    assert.deepEqual((await found).map((i) => i.address), [A]);
    await user.lease.release();
  });

  it("a failed connect gives the scan back at once", async () => {
    const h = new Harness();
    const a = device(A);
    const w = h.watch(false);
    subscriber(h.adapter, { address: A });
    h.noble.discover(a.p);
    (await a.p.calls.next("connect")).reject(new Error("connection failed to be established"));
    await settled();
    assert.equal(h.noble.scanning, true);
    h.noble.discover(device(B).p);
    assert.deepEqual(w.seen, [A, B]);
  });

  it("starting and stopping watchers beside a connected device neither disconnects it nor stops its values", async () => {
    const h = new Harness();
    const a = device(A);
    const user = subscriber(h.adapter, { address: A });
    h.noble.discover(a.p);
    (await a.p.calls.next("connect")).resolve();
    (await a.p.calls.next("discover")).resolve();
    (await a.chr.calls.next("subscribe")).resolve();
    await user.connected;
    for (let i = 0; i < 3; i++) {
      const w = h.watch(i % 2 === 0);
      a.chr.notify(Buffer.of(i));
      w.stop();
    }
    a.chr.notify(Buffer.of(9));
    await settled();
    assert.equal(a.p.calls.count("disconnect"), 0);
    assert.equal(a.p.calls.count("connect"), 1);
    assert.deepEqual(user.values.map((v) => v[0]), [0, 1, 2, 9]);
    assert.equal(user.sessions[0].signal.aborted, false);
    await user.lease.release();
  });

  it("an adapter whose stack scans by itself (BlueZ) says its scans are active, and watchers still share one", () => {
    const noble = new FakeNoble();
    const adapter = new BleAdapter({ transport: "bluez", adapter: "hci0" }, DEFAULT_POLICY, { open: noble.opener({ passive: false }), timers: new ManualClock() });
    adapter.ref();
    noble.setState("poweredOn");
    assert.equal(adapter.canScanPassively, false);
    const seen: string[] = [];
    adapter.watchAdvertisements({ active: false }, (p) => seen.push(p.address));
    adapter.watchAdvertisements({ active: true }, () => undefined);
    assert.equal(adapter.currentScanType, "active");
    assert.equal(noble.scanStarts, 1, "no restart for a type the stack would not take");
    noble.discover(device(A).p);
    assert.deepEqual(seen, [A]);
  });

  it("a watcher that throws does not keep reports from the others", () => {
    const h = new Harness();
    h.adapter.on("warning", () => undefined);
    h.adapter.watchAdvertisements({ active: false }, () => {
      throw new Error("boom");
    });
    const w = h.watch(false);
    h.noble.discover(device(A).p);
    assert.deepEqual(w.seen, [A]);
  });
});
