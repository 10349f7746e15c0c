/**
 * A lease's callbacks (src/ble/lease.ts) are never synchronous: a node holds its Lease before the pool calls it
 * back, whatever state the link is in when the node asks, and the callbacks come in the order the pool made them.
 */
import assert from "node:assert/strict";
import { BleAdapter, DEFAULT_POLICY, type Lease, type LeaseState } from "../../src/ble/pool";
import { FakeCharacteristic, FakeNoble, FakePeripheral, FakeService } from "../support/fake-noble";
import { ManualClock } from "../support/manual-clock";

const A = "aa:00:00:00:00:01";

function harness(): { noble: FakeNoble; adapter: BleAdapter; p: FakePeripheral } {
  const noble = new FakeNoble();
  const adapter = new BleAdapter({ transport: "simulator", scenario: "" }, DEFAULT_POLICY, { open: noble.opener(), timers: new ManualClock() });
  adapter.ref();
  const p = new FakePeripheral({ address: A, serviceUuids: ["180d"], services: [new FakeService("180d", [new FakeCharacteristic("2a37", ["notify"])])] });
  p.calls.auto.add("connect").add("discover").add("disconnect");
  return { noble, adapter, p };
}

/** Leases the peripheral and records, for each callback, whether the caller already held its Lease. */
function lease(adapter: BleAdapter): { lease: Lease; calls: string[]; connected: Promise<void> } {
  let held: Lease | null = null;
  const calls: string[] = [];
  let resolveConnected = (): void => undefined;
  const connected = new Promise<void>((resolve) => (resolveConnected = resolve));
  held = adapter.lease({
    selector: { address: A },
    onState: (state: LeaseState) => {
      calls.push(`${held ? "" : "before lease() returned: "}onState ${state.state}`);
      if (state.state === "connected") resolveConnected();
    },
    onConnected: () => {
      calls.push(`${held ? "" : "before lease() returned: "}onConnected`);
      return Promise.resolve();
    },
  });
  return { lease: held, calls, connected };
}

describe("lease callbacks (src/ble/lease.ts)", () => {
  it("on a link that is already up, onConnected and onState come after lease() returned", async () => {
    const { noble, adapter, p } = harness();
    noble.setState("poweredOn");
    const first = lease(adapter);
    noble.discover(p);
    await first.connected;
    const second = lease(adapter);
    assert.deepEqual([...second.calls], [], "nothing is called back from inside lease()");
    await second.connected;
    assert.deepEqual(second.calls, ["onConnected", "onState connected"]);
    await second.lease.release();
    await first.lease.release();
    await adapter.unref();
  });

  it("on an adapter that is not up yet, the adapter state comes after lease() returned", async () => {
    const { noble, adapter, p } = harness();
    const only = lease(adapter);
    assert.deepEqual([...only.calls], [], "nothing is called back from inside lease()");
    noble.setState("poweredOn");
    noble.discover(p);
    await only.connected;
    assert.equal(only.calls[0], "onState adapter");
    assert.ok(only.calls.every((c) => !c.startsWith("before")), JSON.stringify(only.calls));
    await only.lease.release();
    await adapter.unref();
  });

  it("a lease joining a link being connected is told so after lease() returned", async () => {
    const { noble, adapter, p } = harness();
    p.calls.auto.delete("connect");
    noble.setState("poweredOn");
    const first = lease(adapter);
    noble.discover(p);
    const connect = await p.calls.next("connect");
    const second = lease(adapter);
    assert.deepEqual([...second.calls], []);
    assert.deepEqual(second.lease.state, { state: "connecting", address: A }, "the Lease shows the state at once");
    connect.resolve();
    await second.connected;
    assert.deepEqual(second.calls, ["onState connecting", "onConnected", "onState connected"]);
    await second.lease.release();
    await first.lease.release();
    await adapter.unref();
  });
});
