/**
 * A node's hold on a peripheral: what it asks for (LeaseOptions), what it is told (LeaseState), and the Lease it
 * holds. Callbacks are never synchronous: the pool queues them, in order, and runs them on a later microtask, so a
 * node always holds its Lease before it hears anything, and a released lease hears nothing more.
 */
import type { BleProblem } from "./problem";
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
  | { state: "error"; problem: BleProblem; retryInMs: number };

export interface LeaseOptions {
  selector: DeviceSelector;
  /**
   * ATT MTU to ask for when this lease causes the connection (the largest of the leases wins; none asking: 256). The
   * link runs at the smaller of this and the peripheral's answer: DeviceSession.mtu.
   */
  mtu?: number;
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
  release(): Promise<void>;
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

  constructor(
    readonly options: LeaseOptions,
    private readonly onRelease: (lease: LeaseImpl) => Promise<void>,
  ) {}

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
    return this.onRelease(this);
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
