/**
 * The per-device state machine (src/ble/device-link.ts) on its own: no noble, no Node-RED, a manual clock. Which
 * phase changes exist, that no other one can happen, and the backoff it owns.
 */
import assert from "node:assert/strict";
import { DeviceLink, IllegalTransitionError, type LinkPhase } from "../../src/ble/device-link";
import type { Session } from "../../src/ble/session";
import { ManualClock } from "../support/manual-clock";

const POLICY = { reconnectDelay: 100, maxReconnectDelay: 400 };
const PHASES: readonly LinkPhase[] = ["resolving", "queued", "connecting", "connected", "backoff", "closing"];

/** The phase changes a link may make, written out here apart from the module's own table. */
const ALLOWED = new Set([
  "resolving>queued",
  "resolving>backoff",
  "resolving>closing",
  "queued>resolving",
  "queued>connecting",
  "queued>backoff",
  "queued>closing",
  "connecting>connected",
  "connecting>resolving",
  "connecting>backoff",
  "connecting>closing",
  "connected>resolving",
  "connected>closing",
  "backoff>queued",
  "backoff>resolving",
  "backoff>closing",
]);

function link(clock = new ManualClock()): { link: DeviceLink; clock: ManualClock } {
  return { link: new DeviceLink({ address: "aa:00:00:00:00:01" }, POLICY, clock), clock };
}

/** A fresh link brought to `phase` by allowed changes only. */
function at(phase: LinkPhase): DeviceLink {
  const l = link().link;
  const path: Record<LinkPhase, LinkPhase[]> = {
    resolving: [],
    queued: ["queued"],
    connecting: ["queued", "connecting"],
    connected: ["queued", "connecting", "connected"],
    backoff: ["backoff"],
    closing: ["closing"],
  };
  for (const p of path[phase]) l.transition(p);
  assert.equal(l.phase, phase);
  return l;
}

/** What a link uses of a session: the signal that ends with the connection, and its end. */
function session(): Session {
  const controller = new AbortController();
  return { signal: controller.signal, end: () => controller.abort() } as unknown as Session;
}

describe("device link: the per-device state machine (src/ble/device-link.ts)", () => {
  it("starts resolving (looking for its peripheral)", () => {
    assert.equal(link().link.phase, "resolving");
  });

  for (const from of PHASES) {
    it(`from ${from}: makes exactly the allowed changes, refuses every other one and stays ${from}`, () => {
      for (const to of PHASES) {
        const l = at(from);
        if (to === from) {
          l.transition(to);
          assert.equal(l.phase, from, "staying is no change");
        } else if (ALLOWED.has(`${from}>${to}`)) {
          l.transition(to);
          assert.equal(l.phase, to);
        } else {
          assert.throws(() => l.transition(to), (e: unknown) => e instanceof IllegalTransitionError && e.from === from && e.to === to, `${from} → ${to}`);
          assert.equal(l.phase, from, `a refused change leaves the phase (${from} → ${to})`);
        }
      }
    });
  }

  it("holds a connection slot while connecting and connected only", () => {
    assert.deepEqual(
      PHASES.filter((p) => at(p).holdsSlot),
      ["connecting", "connected"],
    );
  });

  describe("backoff", () => {
    it("waits reconnectDelay × 1, 2, 4… up to maxReconnectDelay, and is queued again when the wait is over", () => {
      const { link: l, clock } = link();
      l.transition("queued");
      l.transition("connecting");
      for (const expected of [100, 200, 400, 400]) {
        let retries = 0;
        const delay = l.backOff(() => retries++);
        assert.equal(delay, expected);
        assert.equal(l.phase, "backoff");
        clock.advance(delay - 1);
        assert.equal(retries, 0, `no retry before ${delay} ms`);
        clock.advance(1);
        assert.equal(retries, 1);
        assert.equal(l.phase, "queued", "the retry finds the link queued");
        l.transition("connecting");
      }
    });

    it("a link that leaves backoff early (the adapter went away, the last lease left) is not retried by the old wait", () => {
      for (const to of ["resolving", "closing"] as const) {
        const { link: l, clock } = link();
        let retries = 0;
        l.backOff(() => retries++);
        l.transition(to);
        clock.advance(10_000);
        assert.equal(retries, 0, `left for ${to}`);
        assert.equal(l.phase, to);
        assert.equal(clock.pending, 0, "no timer left");
      }
    });

    /** Backed off twice (100, 200 ms), then connected with its setup done: the backoff reset is armed. */
    function connectedAfterTwoBackoffs(): ReturnType<typeof link> {
      const made = link();
      const { link: l, clock } = made;
      l.backOff(() => undefined);
      clock.advance(100);
      l.backOff(() => undefined);
      clock.advance(200);
      l.transition("connecting");
      l.transition("connected");
      l.session = session();
      l.armBackoffReset(l.session);
      return made;
    }

    it("starts again from reconnectDelay once a link stayed up reconnectDelay after every lease's setup", () => {
      const { link: l, clock } = connectedAfterTwoBackoffs();
      clock.advance(100);
      l.endSession();
      assert.equal(l.backOff(() => undefined), 100);
    });

    it("keeps growing for a link lost before it stayed up reconnectDelay (a device that drops every link at once)", () => {
      const { link: l, clock } = connectedAfterTwoBackoffs();
      clock.advance(99);
      l.endSession();
      assert.equal(l.phase, "resolving");
      assert.equal(l.backOff(() => undefined), 400);
      assert.equal(clock.pending, 1, "only the retry is waiting: the ended session's reset is gone");
    });
  });
});
