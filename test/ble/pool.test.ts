/**
 * The connection pool's state machine (src/ble/pool.ts) against a fake noble that the test drives step by step:
 * every connect, discovery, subscribe and disconnect the pool asks for waits for the test's answer, and the
 * pool's timers run on a manual clock. Each test asserts what a node sees (its lease states, its session, the
 * values it gets) and what the radio sees (connect, cancel and disconnect calls).
 */
import assert from "node:assert/strict";
import { BleAdapter, DEFAULT_POLICY, type DeviceSelector, type DeviceSession, type Lease, type LeaseState, type PoolPolicy } from "../../src/ble/pool";
import { BleProblemError } from "../../src/ble/problem";
import { bindBleCatalog, problemText } from "../../src/red/status";
import { translate } from "../support/catalog";
import { FakeCharacteristic, FakeNoble, FakePeripheral, FakeService } from "../support/fake-noble";
import { ManualClock } from "../support/manual-clock";

const SVC = "180d";
const CHR = "2a37";
const A = "aa:00:00:00:00:01";
const B = "bb:00:00:00:00:02";

/**
 * Lets every promise continuation the last step started run. Neither the pool nor the fake waits on anything but
 * promises and the manual clock, so once the event loop has turned, whatever was going to happen has happened:
 * this is how a test asserts that something did *not* happen. It never stands in for an event a test waits for.
 */
const settled = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

function device(address: string, name = ""): { p: FakePeripheral; chr: FakeCharacteristic } {
  const chr = new FakeCharacteristic(CHR, ["notify"]);
  const p = new FakePeripheral({ address, name, serviceUuids: [SVC], services: [new FakeService(SVC, [chr])] });
  return { p, chr };
}

bindBleCatalog({ _: translate });

/** A lease state as its user reads it: the reason codes worded by the shared catalog (nodes/locales/en-US/ble-config.json). */
type Worded =
  | Exclude<LeaseState, { state: "adapter" | "reconnecting" | "error" }>
  | { state: "adapter"; text: string; error: boolean }
  | { state: "reconnecting"; retryInMs: number; reason: string }
  | { state: "error"; text: string; retryInMs: number };

function worded(state: LeaseState): Worded {
  switch (state.state) {
    case "adapter":
      return { state: "adapter", text: state.problem ? problemText(state.problem) : "", error: state.problem !== null };
    case "reconnecting":
      return { state: "reconnecting", retryInMs: state.retryInMs, reason: problemText(state.reason) };
    case "error":
      return { state: "error", text: problemText(state.problem), retryInMs: state.retryInMs };
    default:
      return state;
  }
}

/** A node's use of the pool: its lease, and everything the pool told it (worded as the node words it). */
class User {
  readonly states: Worded[] = [];
  readonly sessions: DeviceSession[] = [];
  readonly values: Buffer[] = [];
  disconnects = 0;
  readonly lease: Lease;
  private readonly waiters: (() => void)[] = [];

  constructor(adapter: BleAdapter, selector: DeviceSelector, setup: (session: DeviceSession, user: User, leased: AbortSignal) => Promise<void>) {
    this.lease = adapter.lease({
      selector,
      onState: (state) => {
        this.states.push(worded(state));
        for (const w of this.waiters.splice(0)) w();
      },
      onConnected: (session, leased) => {
        this.sessions.push(session);
        return setup(session, this, leased);
      },
      onDisconnected: () => this.disconnects++,
    });
  }

  get state(): Worded {
    return worded(this.lease.state);
  }

  /** The first state from index `from` on (default: the next one set) that satisfies `predicate`. */
  async waitFor(predicate: (state: Worded) => boolean, from = this.states.length): Promise<Worded> {
    for (let i = from; ; i++) {
      while (i >= this.states.length) await new Promise<void>((resolve) => this.waiters.push(resolve));
      if (predicate(this.states[i])) return this.states[i];
    }
  }
}

const is =
  (name: Worded["state"]) =>
  (state: Worded): boolean =>
    state.state === name;

/** A node that needs nothing but the link. */
const linkOnly = (): Promise<void> => Promise.resolve();
/** A node that subscribes to the characteristic (as heart-rate does) and keeps its values. */
const subscribing = async (session: DeviceSession, user: User): Promise<void> => {
  await session.subscribe(SVC, CHR, (value) => user.values.push(value));
};

class Harness {
  readonly noble = new FakeNoble();
  readonly clock = new ManualClock();
  readonly adapter: BleAdapter;

  constructor(policy: Partial<PoolPolicy> = {}) {
    this.adapter = new BleAdapter({ transport: "simulator", scenario: "" }, { ...DEFAULT_POLICY, ...policy }, { open: this.noble.opener(), timers: this.clock });
    // Held as a config node holds it, so that the adapter outlives the leases of a test.
    this.adapter.ref();
    this.noble.setState("poweredOn");
  }

  user(selector: DeviceSelector, setup: (session: DeviceSession, user: User, leased: AbortSignal) => Promise<void> = linkOnly): User {
    return new User(this.adapter, selector, setup);
  }

  /** Drops the config node's reference: the adapter closes once no lease is left. */
  async close(): Promise<void> {
    await this.adapter.unref();
  }
}

/** Answers the connect and the discovery of `p`, in that order. */
async function linkUp(p: FakePeripheral): Promise<void> {
  (await p.calls.next("connect")).resolve();
  (await p.calls.next("discover")).resolve();
}

describe("connection pool (fake noble, manual clock)", () => {
  describe("connect queue and slots", () => {
    it("connects one peripheral at a time, without scanning meanwhile; the next waits for the first one's discovery", async () => {
      const h = new Harness();
      const a = device(A);
      const b = device(B);
      const ua = h.user({ address: A });
      const ub = h.user({ address: B });
      assert.equal(h.noble.scanning, true, "scanning for the two peripherals");
      h.noble.discover(a.p);
      h.noble.discover(b.p);
      const connectA = await a.p.calls.next("connect");
      assert.deepEqual(ua.state, { state: "connecting", address: A });
      assert.equal(h.noble.scanning, false, "no scanning while a connection is being made");
      connectA.resolve();
      await settled();
      assert.equal(b.p.calls.count("connect"), 0, "the second waits while the first is discovering");
      (await a.p.calls.next("discover")).resolve();
      await ua.waitFor(is("connected"), 0);
      await b.p.calls.next("connect");
      assert.deepEqual(ub.state, { state: "connecting", address: B });
      assert.equal(a.p.calls.count("connect"), 1);
    });

    it("maxConnections: another peripheral shows waiting-slot and connects once a link is free", async () => {
      const h = new Harness({ maxConnections: 1 });
      const a = device(A);
      const b = device(B);
      a.p.calls.auto.add("disconnect");
      const ua = h.user({ address: A });
      h.noble.discover(a.p);
      await linkUp(a.p);
      await ua.waitFor(is("connected"), 0);
      const ub = h.user({ address: B });
      h.noble.discover(b.p);
      assert.deepEqual(ub.state, { state: "waiting-slot", inUse: 1, max: 1 });
      await settled();
      assert.equal(b.p.calls.count("connect"), 0);
      await ua.lease.release();
      assert.equal(a.p.state, "disconnected");
      await b.p.calls.next("connect");
      assert.deepEqual(ub.state, { state: "connecting", address: B });
    });

    it("a connect that fails puts the entry into backoff and lets the queue go on", async () => {
      const h = new Harness();
      const a = device(A);
      const b = device(B);
      const ua = h.user({ address: A });
      h.user({ address: B });
      h.noble.discover(a.p);
      h.noble.discover(b.p);
      (await a.p.calls.next("connect")).reject(new Error("connection failed to be established"));
      assert.deepEqual(await ua.waitFor(is("reconnecting")), { state: "reconnecting", retryInMs: 1000, reason: "connection failed to be established" });
      await b.p.calls.next("connect");
    });
  });

  describe("a lease joining an entry shares its state", () => {
    it("a second lease on a peripheral being connected shows connecting at once", async () => {
      const h = new Harness();
      const a = device(A);
      const u1 = h.user({ address: A });
      h.noble.discover(a.p);
      await a.p.calls.next("connect");
      const u2 = h.user({ address: A });
      assert.deepEqual(u2.state, { state: "connecting", address: A }, "the Lease holds the state at once");
      // The callback comes after lease() returned (src/ble/lease.ts), and it is that state.
      await settled();
      assert.deepEqual(u2.states, [{ state: "connecting", address: A }]);
      assert.deepEqual(u1.state, u2.state);
      assert.equal(a.p.calls.count("connect"), 1);
    });

    it("a second lease on a peripheral in backoff shows the backoff at once, and waits for it", async () => {
      const h = new Harness();
      const a = device(A);
      const u1 = h.user({ address: A });
      h.noble.discover(a.p);
      (await a.p.calls.next("connect")).reject(new Error("connection failed to be established"));
      const backoff = await u1.waitFor(is("reconnecting"));
      const u2 = h.user({ address: A });
      assert.deepEqual(u2.state, backoff, "the Lease holds the state at once");
      await settled();
      assert.deepEqual(u2.states, [backoff]);
      assert.equal(a.p.calls.count("connect"), 1, "the new lease does not cut the backoff short");
      h.clock.advance(1000);
      await a.p.calls.next("connect");
      assert.deepEqual(u2.state, { state: "connecting", address: A });
    });
  });

  describe("merge: leases that name one peripheral differently share one entry", () => {
    it("a lease by name joining a connected lease by address gets the same link and runs its own setup on it", async () => {
      const h = new Harness();
      const a = device(A, "meter");
      const byAddress = h.user({ address: A });
      h.noble.discover(a.p);
      await linkUp(a.p);
      await byAddress.waitFor(is("connected"), 0);
      const byName = h.user({ name: "meter" });
      assert.equal(h.noble.scanning, true);
      h.noble.discover(a.p);
      assert.deepEqual(await byName.waitFor(is("connected"), 0), { state: "connected", address: A, name: "meter", simulated: false });
      assert.equal(byName.sessions[0], byAddress.sessions[0], "one session");
      assert.equal(a.p.calls.count("connect"), 1, "one link");
    });


    it("a lease by name joining a lease in backoff is given that state at once (not left 'scanning')", async () => {
      const h = new Harness();
      const a = device(A, "meter");
      const byAddress = h.user({ address: A });
      h.noble.discover(a.p);
      (await a.p.calls.next("connect")).reject(new Error("connection failed to be established"));
      const backoff = await byAddress.waitFor(is("reconnecting"));
      const byName = h.user({ name: "meter" });
      h.noble.discover(a.p);
      assert.deepEqual(byName.state, backoff);
      // And from then on they go together.
      h.clock.advance(1000);
      await a.p.calls.next("connect");
      assert.deepEqual(byName.state, { state: "connecting", address: A });
      assert.deepEqual(byAddress.state, { state: "connecting", address: A });
    });
  });

  describe("backoff", () => {
    const policy = { reconnectDelay: 100, maxReconnectDelay: 400 };

    /** Advances the clock to just before `delay` and checks no attempt starts early, then to the delay. */
    async function waitOutBackoff(h: Harness, p: FakePeripheral, delay: number): Promise<void> {
      const connects = p.calls.count("connect");
      h.clock.advance(delay - 1);
      await settled();
      assert.equal(p.calls.count("connect"), connects, `no new attempt before ${delay} ms`);
      h.clock.advance(1);
    }

    it("grows 1×, 2×, 4× reconnectDelay up to maxReconnectDelay for a device whose subscription always fails", async () => {
      const h = new Harness(policy);
      const a = device(A);
      a.p.calls.auto.add("connect").add("discover").add("disconnect");
      const u = h.user({ address: A }, subscribing);
      h.noble.discover(a.p);
      for (const delay of [100, 200, 400, 400]) {
        (await a.chr.calls.next("subscribe")).reject(new Error("CCCD write refused"));
        assert.deepEqual(await u.waitFor(is("error")), { state: "error", text: "CCCD write refused", retryInMs: delay });
        assert.equal(a.p.state, "disconnected", "the link was dropped");
        await waitOutBackoff(h, a.p, delay);
      }
      await a.chr.calls.next("subscribe");
      assert.equal(a.p.calls.count("connect"), 5, "one attempt per backoff");
    });

    it("grows for a link that drops during setup, every time", async () => {
      const h = new Harness(policy);
      const a = device(A);
      a.p.calls.auto.add("connect").add("discover");
      const u = h.user({ address: A }, subscribing);
      h.noble.discover(a.p);
      for (const delay of [100, 200, 400]) {
        await a.chr.calls.next("subscribe");
        const from = u.states.length;
        a.p.drop(0x08);
        assert.deepEqual(await u.waitFor(is("reconnecting"), from), { state: "reconnecting", retryInMs: delay, reason: "connection lost (supervision timeout)" });
        await waitOutBackoff(h, a.p, delay);
      }
    });

    it("grows for a link that drops right after its setup succeeded (a device that wants bonding)", async () => {
      const h = new Harness(policy);
      const a = device(A);
      a.p.calls.auto.add("connect").add("discover");
      const u = h.user({ address: A }, subscribing);
      h.noble.discover(a.p);
      for (const delay of [100, 200, 400, 400]) {
        (await a.chr.calls.next("subscribe")).resolve();
        await u.waitFor(is("connected"));
        const from = u.states.length;
        a.p.drop(0x13);
        assert.deepEqual(await u.waitFor(is("reconnecting"), from), { state: "reconnecting", retryInMs: delay, reason: "disconnected (19)" });
        await waitOutBackoff(h, a.p, delay);
      }
    });

    /** Fails two attempts (the backoff is then at 2× reconnectDelay) and brings the third link up. */
    async function twoFailuresThenLinkUp(h: Harness, a: ReturnType<typeof device>, u: User): Promise<void> {
      a.p.calls.auto.add("discover").add("disconnect");
      h.noble.discover(a.p);
      for (const delay of [100, 200]) {
        (await a.p.calls.next("connect")).reject(new Error("connection failed to be established"));
        await u.waitFor(is("reconnecting"));
        h.clock.advance(delay);
      }
      (await a.p.calls.next("connect")).resolve();
    }

    /** The link stays up for `upForMs`, then is lost: the delay of the retry the lease is shown. */
    async function retryAfterLinkLost(h: Harness, a: ReturnType<typeof device>, u: User, upForMs: number): Promise<number> {
      h.clock.advance(upForMs);
      const from = u.states.length;
      a.p.drop(0x08);
      const state = await u.waitFor(is("reconnecting"), from);
      assert.ok(state.state === "reconnecting" && state.reason === "connection lost (supervision timeout)", JSON.stringify(state));
      return state.retryInMs;
    }

    for (const { upForMs, retryInMs, what } of [
      { upForMs: 100, retryInMs: 100, what: "starts again from reconnectDelay once the link has stayed up for reconnectDelay after its setup" },
      { upForMs: 99, retryInMs: 400, what: "a link lost just before reconnectDelay has passed after its setup still counts as failed" },
    ]) {
      it(what, async () => {
        const h = new Harness(policy);
        const a = device(A);
        a.chr.calls.auto.add("subscribe");
        const u = h.user({ address: A }, subscribing);
        await twoFailuresThenLinkUp(h, a, u);
        await u.waitFor(is("connected"));
        assert.equal(await retryAfterLinkLost(h, a, u, upForMs), retryInMs);
        assert.equal(h.clock.pending, 1, "only the retry is scheduled: the ended link's timer is gone");
      });
    }

    it("a lease released while its setup is pending does not keep the others' link from resetting the backoff", async () => {
      const h = new Harness(policy);
      const a = device(A);
      const stays = h.user({ address: A });
      let slowSetupStarted!: () => void;
      const started = new Promise<void>((resolve) => (slowSetupStarted = resolve));
      const leaves = h.user({ address: A }, () => {
        slowSetupStarted();
        // Never answers: a setup still pending when its node is closed.
        return new Promise<void>(() => undefined);
      });
      await twoFailuresThenLinkUp(h, a, stays);
      await Promise.all([stays.waitFor(is("connected")), started]);
      await leaves.lease.release();
      assert.equal(a.p.state, "connected", "the remaining lease keeps the link");
      assert.equal(await retryAfterLinkLost(h, a, stays, 100), 100);
    });

    it("does not reset while one of two leases' setup on the link still fails", async () => {
      const h = new Harness(policy);
      const a = device(A);
      a.p.calls.auto.add("connect").add("discover").add("disconnect");
      const good = h.user({ address: A });
      const bad = h.user({ address: A }, () => Promise.reject(new Error("no command characteristic")));
      h.noble.discover(a.p);
      for (const delay of [100, 200, 400]) {
        assert.deepEqual(await bad.waitFor(is("error")), { state: "error", text: "no command characteristic", retryInMs: delay });
        h.clock.advance(delay);
      }
      assert.ok(good.sessions.length >= 3);
    });
  });

  describe("subscriptions", () => {
    it("fans one notification out to every subscriber with one CCCD write; the last unsubscribe writes it off", async () => {
      const h = new Harness();
      const a = device(A);
      a.p.calls.auto.add("connect").add("discover");
      a.chr.calls.auto.add("subscribe");
      const unsubscribes: (() => void)[] = [];
      const setup = async (session: DeviceSession, user: User): Promise<void> => {
        unsubscribes.push(await session.subscribe(SVC, CHR, (value) => user.values.push(value)));
      };
      const u1 = h.user({ address: A }, setup);
      h.noble.discover(a.p);
      await u1.waitFor(is("connected"), 0);
      const u2 = h.user({ address: A }, setup);
      await u2.waitFor(is("connected"), 0);
      assert.equal(a.chr.calls.count("subscribe"), 1, "one CCCD write for both");
      a.chr.notify(Buffer.of(1));
      a.chr.notify(Buffer.of(2));
      assert.deepEqual(u1.values, [Buffer.of(1), Buffer.of(2)]);
      assert.deepEqual(u2.values, [Buffer.of(1), Buffer.of(2)]);
      // A read response also comes as 'data' from noble: not a value pushed to subscribers.
      a.chr.value = Buffer.of(9);
      assert.deepEqual(await u1.sessions[0].read(SVC, CHR), Buffer.of(9));
      unsubscribes[0]();
      a.chr.notify(Buffer.of(3));
      assert.deepEqual(u1.values, [Buffer.of(1), Buffer.of(2)]);
      assert.deepEqual(u2.values, [Buffer.of(1), Buffer.of(2), Buffer.of(3)]);
      assert.equal(a.chr.calls.count("unsubscribe"), 0, "still subscribed for the other");
      unsubscribes[1]();
      assert.equal(a.chr.calls.count("unsubscribe"), 1);
    });

    it("subscriptions made with the lease's signal end with the lease; the other lease keeps the link and its own", async () => {
      const h = new Harness();
      const a = device(A);
      a.p.calls.auto.add("connect").add("discover").add("disconnect");
      a.chr.calls.auto.add("subscribe").add("unsubscribe");
      const untilReleased = async (session: DeviceSession, user: User, leased: AbortSignal): Promise<void> => {
        await session.subscribe(SVC, CHR, (value) => user.values.push(value), leased);
      };
      const leaves = h.user({ address: A }, untilReleased);
      const stays = h.user({ address: A }, untilReleased);
      h.noble.discover(a.p);
      await Promise.all([leaves.waitFor(is("connected"), 0), stays.waitFor(is("connected"), 0)]);
      a.chr.notify(Buffer.of(1));
      await leaves.lease.release();
      a.chr.notify(Buffer.of(2));
      assert.deepEqual(leaves.values, [Buffer.of(1)], "nothing after its release, though nobody unsubscribed by hand");
      assert.deepEqual(stays.values, [Buffer.of(1), Buffer.of(2)]);
      assert.equal(a.chr.calls.count("unsubscribe"), 0, "still subscribed for the other lease");
      assert.equal(a.p.state, "connected");
      await stays.lease.release();
      assert.equal(a.p.state, "disconnected");
      await h.close();
    });


    it("a second subscriber joining while the CCCD write is pending waits for it, and gets its failure", async () => {
      const h = new Harness();
      const a = device(A);
      a.p.calls.auto.add("connect").add("discover").add("disconnect");
      const outcomes: string[] = [];
      const setup = (tag: string) => async (session: DeviceSession, user: User) => {
        try {
          await session.subscribe(SVC, CHR, (value) => user.values.push(value));
          outcomes.push(`${tag} subscribed`);
        } catch (error) {
          outcomes.push(`${tag}: ${(error as Error).message}`);
          throw error;
        }
      };
      h.user({ address: A }, setup("first"));
      h.noble.discover(a.p);
      const write = await a.chr.calls.next("subscribe");
      h.user({ address: A }, setup("second"));
      await settled();
      assert.deepEqual(outcomes, [], "nobody is subscribed before the CCCD write is answered");
      assert.equal(a.chr.calls.count("subscribe"), 1);
      write.reject(new Error("CCCD write refused"));
      await settled();
      assert.deepEqual(outcomes.sort(), ["first: CCCD write refused", "second: CCCD write refused"]);
    });

    it("a second subscriber joining while the CCCD write is pending gets the values once it is answered", async () => {
      const h = new Harness();
      const a = device(A);
      a.p.calls.auto.add("connect").add("discover");
      const u1 = h.user({ address: A }, subscribing);
      h.noble.discover(a.p);
      const write = await a.chr.calls.next("subscribe");
      const u2 = h.user({ address: A }, subscribing);
      write.resolve();
      await Promise.all([u1.waitFor(is("connected"), 0), u2.waitFor(is("connected"), 0)]);
      a.chr.notify(Buffer.of(7));
      assert.deepEqual(u1.values, [Buffer.of(7)]);
      assert.deepEqual(u2.values, [Buffer.of(7)]);
    });
  });

  describe("timeouts", () => {
    const policy = { connectTimeout: 1000, gattTimeout: 500, reconnectDelay: 100 };

    it("a connect never answered is cancelled after connectTimeout and retried", async () => {
      const h = new Harness(policy);
      const a = device(A);
      const u = h.user({ address: A });
      h.noble.discover(a.p);
      await a.p.calls.next("connect");
      h.clock.advance(999);
      await settled();
      assert.equal(a.p.cancels, 0);
      h.clock.advance(1);
      assert.deepEqual(await u.waitFor(is("reconnecting")), { state: "reconnecting", retryInMs: 100, reason: "timeout during connection" });
      assert.equal(a.p.cancels, 1, "LE Create Connection Cancel");
    });

    it("a discovery never answered drops the link after gattTimeout", async () => {
      const h = new Harness(policy);
      const a = device(A);
      a.p.calls.auto.add("connect").add("disconnect");
      const u = h.user({ address: A });
      h.noble.discover(a.p);
      await a.p.calls.next("discover");
      h.clock.advance(500);
      assert.deepEqual(await u.waitFor(is("reconnecting")), { state: "reconnecting", retryInMs: 100, reason: "timeout during connection" });
      assert.equal(a.p.state, "disconnected");
      assert.equal(u.sessions.length, 0, "no setup ran");
    });

    it("a subscription never answered is an error naming it, and the link is dropped", async () => {
      const h = new Harness(policy);
      const a = device(A);
      a.p.calls.auto.add("connect").add("discover").add("disconnect");
      const u = h.user({ address: A }, subscribing);
      h.noble.discover(a.p);
      await a.chr.calls.next("subscribe");
      h.clock.advance(500);
      assert.deepEqual(await u.waitFor(is("error")), { state: "error", text: `subscribing to ${CHR} timed out after 500 ms`, retryInMs: 100 });
      assert.equal(a.p.state, "disconnected");
      assert.equal(u.disconnects, 1);
    });

    it("a characteristic the device lacks is an error naming it and the device (a reason code the catalog words)", async () => {
      const h = new Harness(policy);
      const a = device(A);
      a.p.calls.auto.add("connect").add("discover").add("disconnect");
      const u = h.user({ address: A }, async (session) => {
        await session.subscribe(SVC, "2a38", () => undefined);
      });
      h.noble.discover(a.p);
      assert.deepEqual(await u.waitFor(is("error")), { state: "error", text: `characteristic 2a38 of service ${SVC} not found on ${A}`, retryInMs: 100 });
    });

    it("a request on a session that has ended is refused as 'not connected', a BleProblemError", async () => {
      const h = new Harness(policy);
      const a = device(A);
      a.p.calls.auto.add("connect").add("discover").add("disconnect");
      const u = h.user({ address: A });
      h.noble.discover(a.p);
      await u.waitFor(is("connected"), 0);
      const session = u.sessions[0];
      a.p.drop(0x08);
      await u.waitFor(is("reconnecting"));
      const error = await session.read(SVC, CHR).then(
        () => assert.fail("read on an ended session"),
        (e: unknown) => e,
      );
      assert.ok(error instanceof BleProblemError, String(error));
      assert.equal(error.name, "BleProblemError");
      assert.equal(problemText(error.problem), "not connected");
    });

    it("a release whose disconnect is never answered still completes after gattTimeout", async () => {
      const h = new Harness(policy);
      const a = device(A);
      const u = h.user({ address: A });
      h.noble.discover(a.p);
      await linkUp(a.p);
      await u.waitFor(is("connected"), 0);
      let released = false;
      const release = u.lease.release().then(() => (released = true));
      await a.p.calls.next("disconnect");
      await settled();
      assert.equal(released, false);
      h.clock.advance(500);
      await release;
    });
  });

  describe("the adapter", () => {
    it("a scan lasts its duration on the pool's clock and reports every peripheral seen meanwhile", async () => {
      const h = new Harness();
      const a = device(A, "meter");
      const b = device(B);
      const scan = h.adapter.scan(4000);
      assert.equal(h.noble.scanning, true);
      h.noble.discover(a.p);
      h.clock.advance(3999);
      h.noble.discover(b.p);
      let done = false;
      void scan.then(() => (done = true));
      await settled();
      assert.equal(done, false, "still scanning before its duration");
      h.clock.advance(1);
      const seen = await scan;
      assert.deepEqual(seen.map((p) => [p.address, p.name]).sort(), [[A, "meter"], [B, ""]]);
      assert.equal(h.noble.scanning, false, "scanning stops with the scan");
    });

    it("powered off under a connected link: the session ends, the lease says why; powered on again: set up anew", async () => {
      const h = new Harness();
      const a = device(A);
      a.p.calls.auto.add("connect").add("discover");
      a.chr.calls.auto.add("subscribe");
      const u = h.user({ address: A }, subscribing);
      h.noble.discover(a.p);
      await u.waitFor(is("connected"), 0);
      const first = u.sessions[0];
      h.noble.setState("poweredOff");
      a.p.drop(0x16);
      assert.equal(first.signal.aborted, true);
      // onDisconnected, like every lease callback, comes on a later microtask.
      await settled();
      assert.equal(u.disconnects, 1);
      assert.deepEqual(u.state, { state: "adapter", text: "simulator adapter is poweredOff", error: true });
      h.noble.setState("poweredOn");
      await u.waitFor(is("connected"));
      assert.equal(u.sessions.length, 2);
      assert.equal(a.p.calls.count("connect"), 2);
      a.chr.notify(Buffer.of(1));
      assert.deepEqual(u.values, [Buffer.of(1)]);
    });
  });

  describe("a lease released in every phase: the link ends, nothing is retried, the adapter closes", () => {
    interface Reached {
      h: Harness;
      a: ReturnType<typeof device>;
      u: User;
      /** Runs after the release: the radio's late answers to what was pending. */
      late?: () => void;
      /** Other leases, released before the adapter is closed. */
      others?: User[];
    }

    const phases: { phase: string; reach: () => Promise<Reached> }[] = [
      {
        phase: "resolving (scanning)",
        reach: async () => {
          const h = new Harness();
          const a = device(A);
          const u = h.user({ address: A });
          assert.equal(h.noble.scanning, true);
          return { h, a, u };
        },
      },
      {
        phase: "queued (behind another connection)",
        reach: async () => {
          const h = new Harness();
          const other = device(B);
          const a = device(A);
          const otherUser = h.user({ address: B });
          const u = h.user({ address: A });
          h.noble.discover(other.p);
          h.noble.discover(a.p);
          const connect = await other.p.calls.next("connect");
          other.p.calls.auto.add("discover").add("disconnect");
          return { h, a, u, late: () => connect.resolve(), others: [otherUser] };
        },
      },
      {
        phase: "waiting for a slot",
        reach: async () => {
          const h = new Harness({ maxConnections: 1 });
          const other = device(B);
          const a = device(A);
          other.p.calls.auto.add("connect").add("discover").add("disconnect");
          const otherUser = h.user({ address: B });
          h.noble.discover(other.p);
          await otherUser.waitFor(is("connected"), 0);
          const u = h.user({ address: A });
          h.noble.discover(a.p);
          assert.equal(u.state.state, "waiting-slot");
          return { h, a, u, others: [otherUser] };
        },
      },
      {
        phase: "connecting",
        reach: async () => {
          const h = new Harness();
          const a = device(A);
          const u = h.user({ address: A });
          h.noble.discover(a.p);
          await a.p.calls.next("connect");
          return { h, a, u };
        },
      },
      {
        phase: "connecting, the cancel too late (the link comes up anyway)",
        reach: async () => {
          const h = new Harness();
          const a = device(A);
          a.p.cancelWorks = false;
          const u = h.user({ address: A });
          h.noble.discover(a.p);
          const connect = await a.p.calls.next("connect");
          return { h, a, u, late: () => connect.resolve() };
        },
      },
      {
        phase: "discovery",
        reach: async () => {
          const h = new Harness();
          const a = device(A);
          const u = h.user({ address: A });
          h.noble.discover(a.p);
          (await a.p.calls.next("connect")).resolve();
          const discovery = await a.p.calls.next("discover");
          return { h, a, u, late: () => discovery.resolve() };
        },
      },
      {
        phase: "setup (subscription pending)",
        reach: async () => {
          const h = new Harness();
          const a = device(A);
          const u = h.user({ address: A }, subscribing);
          h.noble.discover(a.p);
          await linkUp(a.p);
          const write = await a.chr.calls.next("subscribe");
          return { h, a, u, late: () => write.resolve() };
        },
      },
      {
        phase: "connected",
        reach: async () => {
          const h = new Harness();
          const a = device(A);
          a.chr.calls.auto.add("subscribe");
          const u = h.user({ address: A }, subscribing);
          h.noble.discover(a.p);
          await linkUp(a.p);
          await u.waitFor(is("connected"), 0);
          return { h, a, u };
        },
      },
      {
        phase: "backoff",
        reach: async () => {
          const h = new Harness();
          const a = device(A);
          const u = h.user({ address: A });
          h.noble.discover(a.p);
          (await a.p.calls.next("connect")).reject(new Error("connection failed to be established"));
          await u.waitFor(is("reconnecting"));
          return { h, a, u };
        },
      },
    ];

    for (const { phase, reach } of phases) {
      it(phase, async () => {
        const { h, a, u, late, others = [] } = await reach();
        a.p.calls.auto.add("disconnect");
        const connects = a.p.calls.count("connect");
        const states = u.states.length;
        const sessions = u.sessions.length;
        await u.lease.release();
        late?.();
        await settled();
        // Every timeout the pool had running runs out, and every backoff too.
        for (let i = 0; i < 10; i++) {
          h.clock.advance(DEFAULT_POLICY.maxReconnectDelay);
          await settled();
        }
        assert.equal(a.p.state, "disconnected", "no link left to the peripheral");
        assert.equal(a.p.calls.count("connect"), connects, "no new attempt");
        assert.equal(u.states.length, states, "no state after the release");
        assert.equal(u.sessions.length, sessions, "no setup after the release");
        assert.equal(h.noble.scanning, false, "not scanning for it");
        assert.equal(h.clock.pending, 0, "no timer left");
        for (const other of others) await other.lease.release();
        await h.close();
        assert.equal(h.noble.closed, true, "the adapter closed");
      });
    }

    it("one of two leases released while connected: the other keeps the link and its values", async () => {
      const h = new Harness();
      const a = device(A);
      a.p.calls.auto.add("connect").add("discover").add("disconnect");
      a.chr.calls.auto.add("subscribe");
      const u1 = h.user({ address: A }, subscribing);
      const u2 = h.user({ address: A }, subscribing);
      h.noble.discover(a.p);
      await Promise.all([u1.waitFor(is("connected"), 0), u2.waitFor(is("connected"), 0)]);
      await u1.lease.release();
      assert.equal(a.p.state, "connected");
      a.chr.notify(Buffer.of(5));
      assert.deepEqual(u2.values, [Buffer.of(5)]);
      await u2.lease.release();
      assert.equal(a.p.state, "disconnected");
      await h.close();
      assert.equal(h.noble.closed, true);
    });
  });
});

describe("connection pool: the session's ATT MTU (fake noble)", () => {
  /** One lease on `p` asking for `mtu` (none: the pool's default); its session once connected. */
  async function sessionOf(h: Harness, p: FakePeripheral, mtu?: number): Promise<{ lease: Lease; session: DeviceSession }> {
    let connected: (session: DeviceSession) => void = () => undefined;
    const session = new Promise<DeviceSession>((resolve) => (connected = resolve));
    const lease = h.adapter.lease({
      selector: { address: p.address },
      ...(mtu === undefined ? {} : { mtu }),
      onState: () => undefined,
      onConnected: (s) => {
        connected(s);
        return Promise.resolve();
      },
    });
    h.noble.discover(p);
    await linkUp(p);
    return { lease, session: await session };
  }

  it("asks noble for the largest MTU its leases name, else 256", async () => {
    const h = new Harness();
    const a = new FakePeripheral({ address: A, serviceUuids: [SVC] });
    const b = new FakePeripheral({ address: B, serviceUuids: [SVC] });
    const lease = (address: string, mtu?: number): Lease =>
      h.adapter.lease({ selector: { address }, ...(mtu === undefined ? {} : { mtu }), onState: () => undefined, onConnected: () => Promise.resolve() });
    lease(A, 100);
    lease(A, 185);
    lease(B);
    h.noble.discover(a);
    h.noble.discover(b);
    await linkUp(a);
    await linkUp(b);
    assert.deepEqual([a.connectOptions, b.connectOptions], [[{ mtu: 185 }], [{ mtu: 256 }]]);
  });

  it("is the MTU noble reports, also when the pool asked for another (noble asks 256 on a link it did not match to its connect)", async () => {
    // The HCI driver wrapper gives noble the agreed MTU, min(what noble really asked, the server's answer); the
    // session takes noble's value as it is, whatever the pool asked for.
    const h = new Harness();
    const p = new FakePeripheral({ address: A, serviceUuids: [SVC], mtu: 256 });
    const { session } = await sessionOf(h, p, 100);
    assert.deepEqual(p.connectOptions, [{ mtu: 100 }]);
    assert.equal(session.mtu, 256);
    p.mtu = 185;
    assert.equal(session.mtu, 185, "read from noble at every use");
  });

  it("is 23 until noble has an MTU, and never below 23", async () => {
    const h = new Harness();
    const p = new FakePeripheral({ address: A, serviceUuids: [SVC], mtu: 185 });
    const { session } = await sessionOf(h, p);
    assert.equal(session.mtu, 185);
    p.mtu = null;
    assert.equal(session.mtu, 23, "exchange not complete");
    p.mtu = 20;
    assert.equal(session.mtu, 23, "an impossible MTU");
  });
});
