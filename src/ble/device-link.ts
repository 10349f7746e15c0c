/**
 * One peripheral on one adapter, shared by every lease whose selector resolved to it, and its state machine: the
 * phase changes only through transition(), which refuses a change the table below does not list, and the link owns
 * its backoff (how long the next retry waits, and when a link has stayed up long enough to start it again).
 *
 *   resolving  → queued (found) · backoff (failed) · closing
 *   queued     → resolving (adapter gone) · connecting · backoff (an attempt from before the adapter restarted failed) · closing
 *   connecting → connected · resolving (adapter gone, link ended) · backoff (failed) · closing
 *   connected  → resolving (link ended) · closing
 *   backoff    → queued (retry due) · resolving (adapter gone) · closing
 *   closing    → (none: the last lease is gone)
 *
 * No noble, no Node-RED: the adapter (./pool.ts) drives it; test/ble/device-link.test.ts steps it on a manual clock.
 */
import type { Peripheral } from "@stoprocent/noble";
import type { Timer, Timers } from "../protocol/clock";
import type { LeaseImpl, LeaseState } from "./lease";
import type { DeviceSelector } from "./selector";
import type { Session } from "./session";

export type LinkPhase = "resolving" | "queued" | "connecting" | "connected" | "backoff" | "closing";

const NEXT: Readonly<Record<LinkPhase, readonly LinkPhase[]>> = {
  resolving: ["queued", "backoff", "closing"],
  queued: ["resolving", "connecting", "backoff", "closing"],
  connecting: ["connected", "resolving", "backoff", "closing"],
  connected: ["resolving", "closing"],
  backoff: ["queued", "resolving", "closing"],
  closing: [],
};

/** A change of phase the state machine does not have: a bug in the pool, never a condition of the radio. */
export class IllegalTransitionError extends Error {
  constructor(
    readonly from: LinkPhase,
    readonly to: LinkPhase,
  ) {
    super(`device link: no transition from ${from} to ${to}`);
    this.name = "IllegalTransitionError";
  }
}

export interface BackoffPolicy {
  reconnectDelay: number;
  /** Upper bound of the reconnect backoff. */
  maxReconnectDelay: number;
}

export class DeviceLink {
  readonly leases = new Set<LeaseImpl>();
  peripheral: Peripheral | null = null;
  session: Session | null = null;
  private current: LinkPhase = "resolving";
  /** Failed attempts since the link last stayed up: the next backoff is reconnectDelay × 2^(attempt − 1). */
  private attempt = 0;
  private retryTimer: Timer | null = null;
  /** Runs while the link must still stay up before the backoff starts again (see armBackoffReset). */
  private resetTimer: Timer | null = null;
  private onDisconnect: ((reason: unknown) => void) | null = null;

  constructor(
    readonly selector: DeviceSelector,
    private readonly policy: BackoffPolicy,
    private readonly timers: Timers,
  ) {}

  get phase(): LinkPhase {
    return this.current;
  }

  /** Whether the link counts against maxConnections. */
  get holdsSlot(): boolean {
    return this.current === "connected" || this.current === "connecting";
  }

  /**
   * The one place the phase changes. Staying in a phase is no change; a change the table in the header does not
   * list throws IllegalTransitionError. Leaving backoff calls its retry off.
   */
  transition(to: LinkPhase): void {
    const from = this.current;
    if (to === from) return;
    if (!NEXT[from].includes(to)) throw new IllegalTransitionError(from, to);
    if (from === "backoff") this.cancelRetry();
    if (to === "closing") {
      this.resetTimer?.cancel();
      this.resetTimer = null;
    }
    this.current = to;
  }

  /**
   * The connection failed or dropped: wait, longer after every failure up to maxReconnectDelay, then `retry` (the
   * link is queued again by then). Returns the wait.
   */
  backOff(retry: () => void): number {
    this.attempt++;
    const delay = Math.min(this.policy.reconnectDelay * 2 ** (this.attempt - 1), this.policy.maxReconnectDelay);
    this.transition("backoff");
    this.cancelRetry();
    this.retryTimer = this.timers.setTimeout(() => {
      this.retryTimer = null;
      this.transition("queued");
      retry();
    }, delay);
    return delay;
  }

  /**
   * The backoff starts again from reconnectDelay only once every lease's setup has succeeded on the link *and*
   * the link has then stayed up for reconnectDelay: a device that accepts the link and then fails setup, or drops
   * it at once (as devices that demand bonding do), is retried ever more slowly, not every reconnectDelay forever.
   * Called whenever a lease's setup succeeds or a lease leaves a connected link; the timer ends with the session.
   */
  armBackoffReset(session: Session): void {
    const allSetUp = (): boolean => this.session === session && !session.signal.aborted && [...this.leases].every((l) => l.setUpOn === session);
    if (this.resetTimer || !allSetUp()) return;
    const ended = (): void => {
      timer.cancel();
      this.resetTimer = null;
    };
    const timer = this.timers.setTimeout(() => {
      this.resetTimer = null;
      session.signal.removeEventListener("abort", ended);
      // A lease that joined meanwhile and is still setting up re-arms this when its setup succeeds.
      if (allSetUp()) this.attempt = 0;
    }, this.policy.reconnectDelay);
    this.resetTimer = timer;
    session.signal.addEventListener("abort", ended, { once: true });
  }

  get address(): string | null {
    return this.peripheral ? this.peripheral.address.toLowerCase() : (this.selector.address?.toLowerCase() ?? null);
  }

  /** The state every lease on this link shows (a lease that joins takes it over). */
  broadcast(state: LeaseState): void {
    for (const l of this.leases) l.setState(state);
  }

  /** The link's peripheral, and the adapter's handler of its disconnection. */
  watch(p: Peripheral, onDisconnect: (reason: unknown) => void): void {
    this.unwatch();
    this.peripheral = p;
    this.onDisconnect = onDisconnect;
    p.on("disconnect", onDisconnect);
  }

  unwatch(): void {
    if (this.peripheral && this.onDisconnect) this.peripheral.removeListener("disconnect", this.onDisconnect);
    this.onDisconnect = null;
  }

  /** The session is over (the link dropped, setup failed, the adapter went away): every lease on it is told. */
  endSession(): void {
    const session = this.session;
    this.session = null;
    if (this.holdsSlot) this.transition("resolving");
    if (!session) return;
    session.end();
    for (const l of this.leases) l.disconnected(session);
  }

  private cancelRetry(): void {
    this.retryTimer?.cancel();
    this.retryTimer = null;
  }
}
