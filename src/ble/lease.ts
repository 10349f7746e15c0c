/**
 * A node's hold on a peripheral: what it asks for (LeaseOptions), what it is told (LeaseState), and the Lease it
 * holds. Callbacks are never synchronous: the pool queues them, in order, and runs them on a later microtask, so a
 * node always holds its Lease before it hears anything, and a released lease hears nothing more.
 */
import { setMaxListeners } from "node:events";
import type { Timer, Timers } from "../protocol/clock";
import { BleProblemError, type BleProblem } from "./problem";
import type { DeviceSelector } from "./selector";
import type { DeviceSession } from "./session";

export type LeaseState =
  /** The adapter is not usable: `problem` says why; null while it is starting (waiting for it). */
  | { state: "adapter"; problem: BleProblem | null }
  | { state: "scanning" }
  | { state: "waiting-slot"; inUse: number; max: number }
  | { state: "connecting"; address: string }
  /** `simulated`: the peripheral is one of the simulator's, not a real device. */
  | { state: "connected"; address: string; name: string; simulated: boolean }
  /** The link failed or dropped; it is tried again in `retryInMs`. */
  | { state: "reconnecting"; retryInMs: number; reason: BleProblem }
  /** This lease's setup (onConnected) failed on the link; it is tried again in `retryInMs`. */
  | { state: "error"; problem: BleProblem; retryInMs: number }
  /** No lease needs the link now (every lease on it has `connection: { idleMs }` and none is in use): not connected, by choice. */
  | { state: "idle" };

/**
 * How a lease wants its link. "keep": always, reconnecting with backoff. `{ idleMs }`: only inside Lease.use() and
 * for idleMs after the last use settled; then, when no other lease wants it, the pool disconnects it (next use()
 * connects again).
 */
export type ConnectionPolicy = "keep" | { idleMs: number };

export interface UseOptions {
  /** Aborts the wait for the link and the run of `fn` (its signal aborts too). */
  signal?: AbortSignal;
  /** Bound of the wait for a connected session (not of `fn`). Default: the pool's connectTimeout + gattTimeout + 1 s. */
  timeoutMs?: number;
}

export interface LeaseOptions {
  selector: DeviceSelector;
  /**
   * ATT MTU to ask for when this lease causes the connection (the largest of the leases wins; none asking: 256). The
   * link runs at the smaller of this and the peripheral's answer: DeviceSession.mtu.
   */
  mtu?: number;
  /** Default "keep". */
  connection?: ConnectionPolicy;
  onState(state: LeaseState): void;
  /**
   * Runs on every (re)connection: discover what the node needs, subscribe. A rejection drops the
   * connection and retries it with backoff (a device that lacks a characteristic may be a different
   * firmware, or may expose it after a restart). `leased` aborts when this lease stops using this session (the
   * lease is released, or the connection ends): give it to DeviceSession.subscribe so the node's subscriptions
   * end with its lease.
   */
  onConnected(session: DeviceSession, leased: AbortSignal): Promise<void>;
  /** The connection of a session given to onConnected has ended. */
  onDisconnected?(): void;
}

export interface Lease {
  /** The state last reported (set at once; onState hears it on a later microtask). */
  readonly state: LeaseState;
  /** The connected session, if any. */
  readonly session: DeviceSession | null;
  /**
   * Runs `fn` on this lease's connected session (set up: onConnected has succeeded on it), waiting for one first and
   * making an idle lease's link come up. The wait is bounded: it rejects with a BleProblemError "timeout-use" after
   * options.timeoutMs (the adapter's own problem instead when it is not usable then), "released" once the lease is released, "aborted" when options.signal aborts. `fn`'s signal
   * aborts when the session ends, the lease is released or options.signal aborts. Settles with `fn`'s outcome.
   */
  use<T>(fn: (session: DeviceSession, signal: AbortSignal) => Promise<T>, options?: UseOptions): Promise<T>;
  /**
   * Drops this lease's link once (msg.disconnect). Leases that keep the link see it reconnect at once (no backoff:
   * it was asked for); idle ones stay down until their next use(). Resolves when the link is down (at once when it
   * was not up).
   */
  disconnect(): Promise<void>;
  release(): Promise<void>;
}

/** What a lease needs of its pool beyond release. */
export interface LeaseHost {
  readonly timers: Timers;
  /** The bound of use()'s wait when the caller gives none. */
  readonly useTimeoutMs: number;
  release(lease: LeaseImpl): Promise<void>;
  /** Whether the lease wants its link changed: the pool connects or lets go as the leases want. */
  reconsider(lease: LeaseImpl): void;
  disconnect(lease: LeaseImpl): Promise<void>;
  /**
   * No lease's setup (onConnected) is still running on `session`. use() waits for it: on a link that has just come
   * up, one node's write must not reach the device before another node's subscription to the reply is in place.
   */
  setupsSettled(session: DeviceSession): boolean;
}

/** The pool's side of a lease. */
export class LeaseImpl implements Lease {
  state: LeaseState = { state: "scanning" };
  session: DeviceSession | null = null;
  /** The session this lease's setup (onConnected) succeeded on. */
  setUpOn: DeviceSession | null = null;
  released = false;
  /** Aborts when this lease stops using `session`. */
  private using: AbortController | null = null;
  private readonly pending: (() => void)[] = [];
  /** use() calls waiting or running. */
  private busy = 0;
  /** Runs while an idle lease still wants its link after its last use. */
  private idleTimer: Timer | null = null;
  /** use() calls waiting for a set-up session. */
  private readonly waiters = new Set<() => void>();
  /** Aborts on release (every use() ends). */
  private readonly releasing = new AbortController();

  constructor(
    readonly options: LeaseOptions,
    private readonly host: LeaseHost,
  ) {
    // Every use() waiting or running listens to it: as many as the node lets wait, which bounds them (a burst of a
    // node's messages is not a leak for Node.js to warn about).
    setMaxListeners(0, this.releasing.signal);
  }

  /** The idle time of an idle lease; null for "keep". */
  get idleMs(): number | null {
    const c = this.options.connection;
    return c === undefined || c === "keep" ? null : Math.max(0, c.idleMs);
  }

  /** The lease needs a connection now: a keep lease always, an idle one while a use() waits or runs. */
  get needsLink(): boolean {
    return !this.released && (this.idleMs === null || this.busy > 0);
  }

  /** The lease wants an existing connection kept: it needs one, or an idle lease's last use was less than idleMs ago. */
  get keepsLink(): boolean {
    return this.needsLink || (!this.released && this.idleTimer !== null);
  }

  /** The lease's setup succeeded on `session`: use() calls waiting for it go on. */
  markSetUp(session: DeviceSession): void {
    this.setUpOn = session;
    this.recheck();
  }

  /** Something use() waits for may have changed (another lease's setup settled): waiting calls look again. */
  recheck(): void {
    for (const w of [...this.waiters]) w();
  }

  private ready(): DeviceSession | null {
    const s = this.session;
    return s && this.setUpOn === s && !s.signal.aborted && this.host.setupsSettled(s) ? s : null;
  }

  async use<T>(fn: (session: DeviceSession, signal: AbortSignal) => Promise<T>, options: UseOptions = {}): Promise<T> {
    if (this.released) throw new BleProblemError({ key: "released", params: {} });
    if (options.signal?.aborted) throw new BleProblemError({ key: "aborted", params: {} });
    this.busy++;
    this.idleTimer?.cancel();
    this.idleTimer = null;
    try {
      if (!this.ready()) this.host.reconsider(this);
      const session = await this.waitReady(options.timeoutMs ?? this.host.useTimeoutMs, options.signal);
      // fn's signal aborts with any of these (by hand: AbortSignal.any is newer than Node 20.0), and lets go of them after.
      const sources = [session.signal, this.releasing.signal, ...(options.signal ? [options.signal] : [])];
      const linked = new AbortController();
      const abort = (): void => linked.abort();
      for (const source of sources) {
        if (source.aborted) linked.abort();
        else source.addEventListener("abort", abort, { once: true });
      }
      try {
        return await fn(session, linked.signal);
      } finally {
        for (const source of sources) source.removeEventListener("abort", abort);
      }
    } finally {
      this.busy--;
      if (this.busy === 0 && !this.released && this.idleMs !== null) {
        this.idleTimer = this.host.timers.setTimeout(() => {
          this.idleTimer = null;
          this.host.reconsider(this);
        }, this.idleMs);
      }
    }
  }

  private waitReady(timeoutMs: number, signal: AbortSignal | undefined): Promise<DeviceSession> {
    const now = this.ready();
    if (now) return Promise.resolve(now);
    return new Promise<DeviceSession>((resolve, reject) => {
      const finish = (outcome: DeviceSession | BleProblemError): void => {
        this.waiters.delete(check);
        timer.cancel();
        signal?.removeEventListener("abort", aborted);
        this.releasing.signal.removeEventListener("abort", released);
        if (outcome instanceof BleProblemError) reject(outcome);
        else resolve(outcome);
      };
      const check = (): void => {
        const s = this.ready();
        if (s) finish(s);
      };
      const aborted = (): void => finish(new BleProblemError({ key: "aborted", params: {} }));
      const released = (): void => finish(new BleProblemError({ key: "released", params: {} }));
      const timer = this.host.timers.setTimeout(() => {
        // An adapter that cannot be used says why (hci0 is down, ...), better than "no connection in time".
        const state = this.state;
        finish(new BleProblemError(state.state === "adapter" && state.problem ? state.problem : { key: "timeout-use", params: { ms: timeoutMs } }));
      }, timeoutMs);
      this.waiters.add(check);
      signal?.addEventListener("abort", aborted, { once: true });
      this.releasing.signal.addEventListener("abort", released, { once: true });
    });
  }

  disconnect(): Promise<void> {
    if (this.released) return Promise.resolve();
    return this.host.disconnect(this);
  }

  setState(state: LeaseState): void {
    if (this.released) return;
    this.state = state;
    this.deliver(() => this.options.onState(state));
  }

  /**
   * Gives the lease a connected session: onConnected runs on a later microtask, unless the lease is released or the
   * session has ended by then. Settles with onConnected's outcome (resolves at once when it did not run).
   */
  connect(session: DeviceSession): Promise<void> {
    this.using?.abort();
    const using = new AbortController();
    this.using = using;
    this.session = session;
    return new Promise<void>((resolve, reject) => {
      this.deliver(() => {
        if (session.signal.aborted || using.signal.aborted) return resolve();
        try {
          this.options.onConnected(session, using.signal).then(resolve, reject);
        } catch (error) {
          reject(error instanceof Error ? error : new Error(String(error)));
        }
      }, resolve);
    });
  }

  /** The session this lease used has ended: onDisconnected, after everything reported before. */
  disconnected(session: DeviceSession): void {
    if (this.session !== session) return;
    this.session = null;
    this.using?.abort();
    this.using = null;
    this.deliver(() => this.options.onDisconnected?.());
  }

  release(): Promise<void> {
    if (this.released) return Promise.resolve();
    this.released = true;
    this.using?.abort();
    this.using = null;
    this.idleTimer?.cancel();
    this.idleTimer = null;
    this.releasing.abort();
    return this.host.release(this);
  }

  /** Queues a callback for a later microtask, in order; dropped once the lease is released (`dropped` runs then). */
  private deliver(callback: () => void, dropped?: () => void): void {
    this.pending.push(() => (this.released ? dropped?.() : callback()));
    if (this.pending.length === 1) queueMicrotask(() => this.flush());
  }

  private flush(): void {
    // Callbacks queued while these run (a node that acts on its state) are flushed next, after these.
    for (const run of this.pending.splice(0)) {
      try {
        run();
      } catch (error) {
        // A node's callback that throws is its own bug: it surfaces as it did when callbacks were synchronous, and
        // does not keep the callbacks after it from running.
        queueMicrotask(() => {
          throw error;
        });
      }
    }
  }
}
