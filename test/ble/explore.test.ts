/**
 * The editor's Explore in the BLE layer (src/ble/explore.ts through BleAdapter.explore) against the fake noble the
 * pool's own tests drive step by step, on a manual clock: what the table says, that a flow's live link is read as it
 * is, and that a temporary lease waits its turn like any node's and never takes a running flow's link away.
 */
import assert from "node:assert/strict";
import { BleAdapter, DEFAULT_POLICY, type DeviceSession, type Lease, type LeaseState, type PoolPolicy } from "../../src/ble/pool";
import { BleProblemError } from "../../src/ble/problem";
import { bindBleCatalog, problemText } from "../../src/red/status";
import { translate } from "../support/catalog";
import { FakeCharacteristic, FakeNoble, FakePeripheral, FakeService } from "../support/fake-noble";
import { ManualClock } from "../support/manual-clock";

bindBleCatalog({ _: translate });

const A = "aa:00:00:00:00:01";
const B = "bb:00:00:00:00:02";
const NUS_SERVICE = "6e400001b5a3f393e0a9e50e24dcca9e";
const NUS_TX = "6e400003b5a3f393e0a9e50e24dcca9e";

/** Lets every promise continuation run (see test/ble/pool.test.ts): how a test asserts that something did not happen. */
const settled = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** A heart-rate strap with a battery and, as noble's HCI stack spells them, a 128-bit UART service. */
function strap(address: string, name = "strap"): { p: FakePeripheral; hr: FakeCharacteristic } {
  const hr = new FakeCharacteristic("2a37", ["notify"]);
  const p = new FakePeripheral({
    address,
    name,
    serviceUuids: ["180d"],
    services: [
      new FakeService("180d", [hr, new FakeCharacteristic("2a38", ["read"])]),
      new FakeService("180f", [new FakeCharacteristic("2a19", ["read", "notify"])]),
      new FakeService(NUS_SERVICE, [new FakeCharacteristic(NUS_TX, ["notify"]), new FakeCharacteristic("6E400002B5A3F393E0A9E50E24DCCA9E", ["write", "writeWithoutResponse"])]),
    ],
  });
  return { p, hr };
}

const STRAP_TABLE = [
  {
    uuid: "180d",
    characteristics: [
      { uuid: "2a37", properties: ["notify"] },
      { uuid: "2a38", properties: ["read"] },
    ],
  },
  { uuid: "180f", characteristics: [{ uuid: "2a19", properties: ["read", "notify"] }] },
  {
    uuid: NUS_SERVICE,
    characteristics: [
      { uuid: NUS_TX, properties: ["notify"] },
      { uuid: "6e400002b5a3f393e0a9e50e24dcca9e", properties: ["write", "writeWithoutResponse"] },
    ],
  },
];

class Harness {
  readonly noble = new FakeNoble();
  readonly clock = new ManualClock();
  readonly adapter: BleAdapter;

  constructor(policy: Partial<PoolPolicy> = {}) {
    this.adapter = new BleAdapter({ transport: "simulator", scenario: "" }, { ...DEFAULT_POLICY, ...policy }, { open: this.noble.opener(), timers: this.clock });
    this.adapter.ref();
    this.noble.setState("poweredOn");
  }

  /** A flow's node on the device: subscribes to 2a37 when given its characteristic, and keeps what it hears. */
  flow(address: string, values: Buffer[] = []): { lease: Lease; states: LeaseState[]; connected: Promise<DeviceSession> } {
    const states: LeaseState[] = [];
    let connected!: (s: DeviceSession) => void;
    const session = new Promise<DeviceSession>((resolve) => (connected = resolve));
    const lease = this.adapter.lease({
      selector: { address },
      onState: (s) => states.push(s),
      onConnected: async (s, leased) => {
        await s.subscribe("180d", "2a37", (v) => values.push(v), leased);
        connected(s);
      },
    });
    return { lease, states, connected: session };
  }
}

async function linkUp(p: FakePeripheral): Promise<void> {
  (await p.calls.next("connect")).resolve();
  (await p.calls.next("discover")).resolve();
}

async function problemOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof BleProblemError, `a BleProblemError, got ${String(error)}`);
    return problemText(error.problem);
  }
  assert.fail("explore resolved");
}

describe("Explore in the BLE layer (fake noble, manual clock)", () => {
  it("a session's table lists services and characteristics in the device's order, canonical UUIDs, properties as reported; a copy", async () => {
    const h = new Harness();
    const { p, hr } = strap(A);
    hr.calls.auto.add("subscribe");
    const flow = h.flow(A);
    h.noble.discover(p);
    await linkUp(p);
    const session = await flow.connected;
    assert.deepEqual(session.services(), STRAP_TABLE);
    const copy = session.services();
    copy[0].characteristics.length = 0;
    (copy[1].characteristics[0].properties as string[]).push("write");
    assert.deepEqual(session.services(), STRAP_TABLE, "what a caller does with the table does not change the session's");
  });

  it("a table leaves out what reads as no UUID (no node could name it), rather than passing the radio's text on", async () => {
    const h = new Harness();
    const p = new FakePeripheral({
      address: A,
      services: [
        new FakeService("180f", [new FakeCharacteristic("2a19", ["read"]), new FakeCharacteristic("not-a-uuid<script>", ["read"])]),
        new FakeService("s3cr3t", [new FakeCharacteristic("2a00", ["read"])]),
      ],
    });
    p.calls.auto.add("disconnect");
    const explored = h.adapter.explore({ address: A }, 10000);
    h.noble.discover(p);
    await linkUp(p);
    assert.deepEqual((await explored).services, [{ uuid: "180f", characteristics: [{ uuid: "2a19", properties: ["read"] }] }]);
  });

  it("a device nobody holds: scans, connects with a temporary lease, reads the table and disconnects again", async () => {
    const h = new Harness();
    const { p } = strap(A, "strap");
    p.calls.auto.add("disconnect");
    const explored = h.adapter.explore({ address: A }, 10000);
    assert.equal(h.noble.scanning, true, "the temporary lease scans for the device");
    h.noble.discover(p);
    await linkUp(p);
    assert.deepEqual(await explored, { address: A, name: "strap", services: STRAP_TABLE });
    assert.equal(p.calls.count("disconnect"), 1, "the link the explore opened is closed by the time it answers");
    assert.equal(p.state, "disconnected");
    assert.equal(h.adapter.connectedCount, 0);
    // By name, the same way.
    const byName = h.adapter.explore({ name: "strap" }, 10000);
    h.noble.discover(p);
    await linkUp(p);
    assert.equal((await byName).address, A);
  });

  it("a device a flow holds connected: its live session's table, with no connect, no discovery, no disconnect; the flow keeps its values", async () => {
    const h = new Harness();
    const { p, hr } = strap(A);
    hr.calls.auto.add("subscribe");
    const values: Buffer[] = [];
    const flow = h.flow(A, values);
    h.noble.discover(p);
    await linkUp(p);
    await flow.connected;
    const result = await h.adapter.explore({ address: A.toUpperCase() }, 10000);
    assert.deepEqual(result.services, STRAP_TABLE);
    await settled();
    assert.deepEqual([p.calls.count("connect"), p.calls.count("discover"), p.calls.count("disconnect")], [1, 1, 0]);
    hr.notify(Buffer.of(0, 61));
    assert.deepEqual(values, [Buffer.of(0, 61)], "the flow's subscription is untouched");
    assert.equal(flow.lease.state.state, "connected");
  });

  it("a device an idle node uses now and then: connected for the explore only, and let go again, the node still idle", async () => {
    const h = new Harness();
    const { p } = strap(A);
    p.calls.auto.add("disconnect");
    const lease = h.adapter.lease({ selector: { address: A }, connection: { idleMs: 10000 }, onState: () => undefined, onConnected: () => Promise.resolve() });
    await settled();
    assert.equal(lease.state.state, "idle");
    assert.equal(h.noble.scanning, false, "nobody needs the link");
    const explored = h.adapter.explore({ address: A }, 10000);
    h.noble.discover(p);
    await linkUp(p);
    assert.deepEqual((await explored).services, STRAP_TABLE);
    await settled();
    assert.equal(p.calls.count("disconnect"), 1, "the link the explore needed is let go");
    assert.equal(lease.state.state, "idle");
    await lease.release();
  });

  it("waits for a free slot and never preempts a flow's link: all slots taken, it gives up after its time, saying so", async () => {
    const h = new Harness({ maxConnections: 1 });
    const a = strap(A);
    const b = strap(B);
    a.hr.calls.auto.add("subscribe");
    const flow = h.flow(A);
    h.noble.discover(a.p);
    await linkUp(a.p);
    await flow.connected;
    const explored = h.adapter.explore({ address: B }, 8000);
    h.noble.discover(b.p);
    await settled();
    assert.equal(b.p.calls.count("connect"), 0, "no connection beyond maxConnections");
    h.clock.advance(8000);
    assert.equal(await problemOf(explored), "no connection free for exploring: 1 of 1 in use by flows (the adapter's Max links)");
    assert.equal(a.p.calls.count("disconnect"), 0, "the flow's link was never dropped");
    assert.equal(flow.lease.state.state, "connected");
    // The explore's lease is gone: when the slot frees, nothing connects to B.
    a.p.calls.auto.add("disconnect");
    await flow.lease.release();
    await settled();
    assert.equal(b.p.calls.count("connect"), 0);
  });

  it("a device that is not found in time: a problem that says so, and the scan for it ends", async () => {
    const h = new Harness();
    const explored = h.adapter.explore({ address: A }, 5000);
    assert.equal(h.noble.scanning, true);
    h.clock.advance(5000);
    assert.equal(await problemOf(explored), "device not found within 5 s: is it switched on, in range and advertising (not connected to another central)?");
    assert.equal(h.noble.scanning, false, "no lease is left scanning for it");
  });

  it("a flow's link in backoff is not redialled early: the explore waits for the retry, and reports the link's failure if time runs out", async () => {
    const h = new Harness({ reconnectDelay: 4000 });
    const { p } = strap(A);
    const flow = h.flow(A);
    h.noble.discover(p);
    (await p.calls.next("connect")).reject(new Error("connection failed to be established"));
    await settled();
    assert.equal(flow.lease.state.state, "reconnecting");
    const explored = h.adapter.explore({ address: A }, 3000);
    h.clock.advance(3000);
    assert.equal(await problemOf(explored), "connection failed to be established");
    assert.equal(p.calls.count("connect"), 1, "no connection attempt before the flow's backoff is over");
    assert.equal(flow.lease.state.state, "reconnecting", "the flow's link keeps its own backoff");
  });

  it("an adapter that cannot be used is reported at once", async () => {
    const h = new Harness();
    h.noble.setState("poweredOff");
    const explored = h.adapter.explore({ address: A }, 60000);
    assert.equal(await problemOf(explored), "simulator adapter is poweredOff");
    assert.equal(h.clock.pending > 0, false, "no timer left behind");
  });
});
