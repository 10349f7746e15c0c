/**
 * A lease's connection policy and its use of the link (src/ble/lease.ts, src/ble/pool.ts), against the fake noble
 * on a manual clock: `connection: { idleMs }` connects only for Lease.use() and lets go idleMs after the last use;
 * use() waits for the link within a bound and never hangs; Lease.disconnect() drops the link once, and leases that
 * keep it see it come back at once.
 */
import assert from "node:assert/strict";
import { BleAdapter, DEFAULT_POLICY, type ConnectionPolicy, type DeviceSession, type Lease, type LeaseState } from "../../src/ble/pool";
import { BleProblemError } from "../../src/ble/problem";
import { FakeCharacteristic, FakeNoble, FakePeripheral, FakeService } from "../support/fake-noble";
import { ManualClock } from "../support/manual-clock";

const A = "aa:00:00:00:00:01";
const IDLE_MS = 10_000;

/** Lets every promise continuation the last step started run (the fake and the pool wait on nothing else): how a test sees that something did not happen. */
const settled = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

class Harness {
  readonly noble = new FakeNoble();
  readonly clock = new ManualClock();
  readonly adapter: BleAdapter;
  readonly p: FakePeripheral;

  constructor() {
    this.adapter = new BleAdapter({ transport: "simulator", scenario: "" }, DEFAULT_POLICY, { open: this.noble.opener(), timers: this.clock });
    this.adapter.ref();
    this.noble.setState("poweredOn");
    this.p = new FakePeripheral({ address: A, serviceUuids: ["180d"], services: [new FakeService("180d", [new FakeCharacteristic("2a37", ["notify"])])] });
    this.p.calls.auto.add("connect").add("discover").add("disconnect");
  }

  lease(connection: ConnectionPolicy): { lease: Lease; states: LeaseState[]; next: (name: LeaseState["state"]) => Promise<void> } {
    const states: LeaseState[] = [];
    const waiters: (() => void)[] = [];
    const lease = this.adapter.lease({
      selector: { address: A },
      connection,
      onState: (state) => {
        states.push(state);
        for (const w of waiters.splice(0)) w();
      },
      onConnected: () => Promise.resolve(),
    });
    /** Waits for the next state named `name` (from the states not yet seen by an earlier call). */
    let seen = 0;
    const next = async (name: LeaseState["state"]): Promise<void> => {
      for (;;) {
        while (seen >= states.length) await new Promise<void>((resolve) => waiters.push(resolve));
        if (states[seen++].state === name) return;
      }
    };
    return { lease, states, next };
  }
}

describe("connection policy and use of the link (fake noble, manual clock)", () => {
  it("idle: no connection until use(); the link stays idleMs after the last use, then goes; the next use() connects again", async () => {
    const h = new Harness();
    const u = h.lease({ idleMs: IDLE_MS });
    h.noble.discover(h.p);
    await settled();
    assert.equal(h.p.calls.count("connect"), 0, "an idle lease alone does not connect");
    assert.equal(h.noble.scanning, false, "nor scan");
    assert.deepEqual(u.lease.state, { state: "idle" });

    const address = await u.lease.use((session) => Promise.resolve(session.info.address));
    assert.equal(address, A);
    assert.equal(h.p.calls.count("connect"), 1);
    h.clock.advance(IDLE_MS - 1);
    await settled();
    assert.equal(h.p.state, "connected", "still wanted inside the idle time");
    h.clock.advance(1);
    await u.next("idle");
    assert.equal(h.p.calls.count("disconnect"), 1);
    assert.equal(h.p.state, "disconnected");
    h.clock.advance(DEFAULT_POLICY.maxReconnectDelay);
    await settled();
    assert.equal(h.p.calls.count("connect"), 1, "not reconnected: nobody needs it");

    await u.lease.use(() => Promise.resolve());
    assert.equal(h.p.calls.count("connect"), 2, "the next use() connects again");
    await u.lease.release();
  });

  it("idle: a use inside the idle time keeps the link and starts the idle time again", async () => {
    const h = new Harness();
    const u = h.lease({ idleMs: IDLE_MS });
    h.noble.discover(h.p);
    await u.lease.use(() => Promise.resolve());
    h.clock.advance(IDLE_MS - 1);
    await u.lease.use(() => Promise.resolve());
    h.clock.advance(IDLE_MS - 1);
    await settled();
    assert.equal(h.p.calls.count("disconnect"), 0);
    assert.equal(h.p.calls.count("connect"), 1, "one link for both uses");
    h.clock.advance(1);
    await u.next("idle");
    assert.equal(h.p.calls.count("disconnect"), 1);
  });

  it("idle: a keep lease on the same device keeps the link past an idle lease's idle time", async () => {
    const h = new Harness();
    const idle = h.lease({ idleMs: IDLE_MS });
    const keep = h.lease("keep");
    h.noble.discover(h.p);
    await keep.next("connected");
    await idle.lease.use(() => Promise.resolve());
    h.clock.advance(IDLE_MS * 2);
    await settled();
    assert.equal(h.p.calls.count("disconnect"), 0);
    await keep.lease.release();
    await idle.next("idle");
    assert.equal(h.p.calls.count("disconnect"), 1, "the idle lease alone lets it go once the keep lease is gone");
  });

  it("use() gives up after its timeout when the device never shows up, and on release", async () => {
    const h = new Harness();
    const u = h.lease({ idleMs: IDLE_MS });
    const waiting = u.lease.use(() => Promise.resolve("ran"), { timeoutMs: 3000 });
    const outcome = waiting.then(
      () => null,
      (error: unknown) => error,
    );
    h.clock.advance(2999);
    await settled();
    h.clock.advance(1);
    const error = await outcome;
    assert.ok(error instanceof BleProblemError);
    assert.deepEqual(error.problem, { key: "timeout-use", params: { ms: 3000 } });

    const released = u.lease.use(() => Promise.resolve("ran")).catch((e: unknown) => e);
    await u.lease.release();
    const e2 = await released;
    assert.ok(e2 instanceof BleProblemError);
    assert.equal(e2.problem.key, "released");
  });

  it("use() that times out while the adapter cannot be used says why, not only that no connection came", async () => {
    const h = new Harness();
    const u = h.lease("keep");
    h.noble.setState("poweredOff");
    const outcome = u.lease.use(() => Promise.resolve("ran"), { timeoutMs: 3000 }).catch((e: unknown) => e);
    h.clock.advance(3000);
    const error = await outcome;
    assert.ok(error instanceof BleProblemError);
    assert.deepEqual(error.problem, { key: "simulator-state", params: { state: "poweredOff" } });
  });

  it("use() on a keep lease runs on the connected session; the session ending aborts fn's signal", async () => {
    const h = new Harness();
    const u = h.lease("keep");
    h.noble.discover(h.p);
    let seen: AbortSignal | null = null;
    const running = u.lease.use(
      (_session: DeviceSession, signal) =>
        new Promise<string>((resolve) => {
          seen = signal;
          signal.addEventListener("abort", () => resolve("aborted"));
        }),
    );
    await u.next("connected");
    await settled();
    assert.ok(seen && !(seen as AbortSignal).aborted);
    h.p.drop(0x08);
    assert.equal(await running, "aborted");
  });

  it("disconnect(): the link drops once; another keep lease sees it reconnect at once, not after a backoff", async () => {
    const h = new Harness();
    const first = h.lease("keep");
    const other = h.lease("keep");
    h.noble.discover(h.p);
    await other.next("connected");
    await first.lease.disconnect();
    assert.equal(h.p.calls.count("disconnect"), 1);
    await other.next("reconnecting");
    // No clock advance: the reconnect is not a backoff.
    await other.next("connected");
    assert.equal(h.p.calls.count("connect"), 2);
    assert.equal(h.p.calls.count("disconnect"), 1, "once");
  });

  it("disconnect() of an idle lease: the link stays down until the next use()", async () => {
    const h = new Harness();
    const u = h.lease({ idleMs: IDLE_MS });
    h.noble.discover(h.p);
    await u.lease.use(() => Promise.resolve());
    await u.lease.disconnect();
    assert.equal(h.p.calls.count("disconnect"), 1);
    assert.deepEqual(u.lease.state, { state: "idle" });
    h.clock.advance(IDLE_MS * 2);
    await settled();
    assert.equal(h.p.calls.count("connect"), 1);
    await u.lease.use(() => Promise.resolve());
    assert.equal(h.p.calls.count("connect"), 2);
  });
});
