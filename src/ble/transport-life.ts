/**
 * An adapter's transport over time: opened lazily, noble's state read for what it means (a UART controller's
 * start is not a power-off), opened again with backoff while it is down or never came up, and why it is not usable.
 * The pool (./pool.ts) hears of every change through TransportEvents and acts on its links; this module knows no
 * links, no leases.
 */
import type { Noble } from "@stoprocent/noble";
import type { Timer, Timers } from "../protocol/clock";
import { adapterProblem, reopensWhenDown, uartNotAnswering, type AdapterEvents, type OpenAdapter, type TransportSettings } from "./adapter";
import { problemOf, type BleProblem } from "./problem";

function sameProblem(a: BleProblem, b: BleProblem): boolean {
  return a.key === b.key && JSON.stringify(a.params) === JSON.stringify(b.params);
}

export type OpenTransport = (settings: TransportSettings, events?: AdapterEvents) => OpenAdapter;

export interface ReopenPolicy {
  reconnectDelay: number;
  maxReconnectDelay: number;
  /** An adapter still starting up gets at least this long before it is judged. */
  connectTimeout: number;
}

/** What the pool hears from its transport. */
export interface TransportEvents {
  /** A transport was opened: its noble instance, to listen to (its state is this module's). */
  opened(noble: Noble): void;
  /** The adapter's state changed (`state`: noble's as interpreted, or "error" when the transport failed to open). */
  stateChanged(state: string, was: string): void;
  /** Why the adapter is not usable changed, its state did not. */
  problemChanged(): void;
  /** The transport is being closed to be opened again: whatever came from its noble instance is gone. */
  reopening(): void;
}

export class TransportLife {
  private opened: OpenAdapter | null = null;
  private adapterState = "unknown";
  private openError: Error | null = null;
  /** A uart adapter between opening its port and its first poweredOn: noble's "poweredOff" then only means "starting". */
  private starting = false;
  /** Why the current start of the transport failed, reported by the transport itself (the serial port's open). */
  private attemptProblem: BleProblem | null = null;
  /** Why the last start failed, shown while the next one runs; cleared once the adapter is up. */
  private startProblem: BleProblem | null = null;
  private reopenTimer: Timer | null = null;
  private reopenAttempt = 0;
  /** A reopen waiting for the old transport to let go of its device. */
  private releasing: Promise<void> | null = null;
  private stopped = false;

  constructor(
    private readonly settings: TransportSettings,
    private readonly policy: ReopenPolicy,
    private readonly open: OpenTransport,
    private readonly timers: Timers,
    private readonly events: TransportEvents,
  ) {}

  get noble(): Noble | null {
    return this.opened?.noble ?? null;
  }

  get simulation(): OpenAdapter["simulation"] {
    return this.opened?.simulation ?? null;
  }

  /** The open transport's scan type switch (absent: it cannot scan passively); undefined while none is open. */
  get scanType(): OpenAdapter["scanType"] {
    return this.opened?.scanType;
  }

  get poweredOn(): boolean {
    return this.adapterState === "poweredOn";
  }

  /** noble's adapter state, or "error" when the transport could not be opened. */
  get state(): string {
    return this.openError ? "error" : this.adapterState;
  }

  /** Why the adapter is not usable (a reason code the node layer words), else null. */
  get problem(): BleProblem | null {
    if (this.openError) return problemOf(this.openError);
    if (this.adapterState === "unknown" && this.startProblem) return this.startProblem;
    return adapterProblem(this.settings, this.adapterState, this.opened);
  }

  /** Open lazily, on the first use. Scenario errors surface here as openError. */
  ensureOpen(): void {
    if (this.opened || this.openError || this.releasing) return;
    if (this.settings.transport === "uart") {
      // Reopened after a start that never came up: say why, or that the controller never answered.
      if (this.starting) this.startProblem = this.attemptProblem ?? uartNotAnswering(this.settings);
      this.attemptProblem = null;
      this.starting = true;
    }
    let opened: OpenAdapter;
    try {
      opened = this.open(this.settings, {
        // Only while this transport is the current one: a closed one's late report is of no interest.
        transportProblem: (problem) => {
          if (this.opened === opened && !this.stopped) this.onTransportProblem(problem);
        },
        problemChanged: () => {
          if (this.opened === opened && !this.stopped) this.events.problemChanged();
        },
      });
      this.opened = opened;
    } catch (error) {
      this.openError = error instanceof Error ? error : new Error(String(error));
      this.events.stateChanged(this.state, this.adapterState);
      // An absent HCI adapter may be plugged in later: look for it again, with backoff.
      if (this.settings.transport === "hci") this.scheduleReopen();
      return;
    }
    const noble = opened.noble;
    // Reading `state` starts noble's bindings now. Left to noble, they start on a later tick after the first
    // stateChange listener, which would start them after close() when a flow is redeployed at once, leaking
    // noble's process handlers and an HCI socket.
    const initial = noble.state;
    // noble logs its own warnings with console.warn; the pool routes them through its log instead
    noble.removeAllListeners("warning");
    this.events.opened(noble);
    noble.on("stateChange", (state: string) => this.onStateChange(state));
    if (initial !== "unknown") this.onStateChange(initial);
    // A serial port that fails to open may never report a state at all: check back, and reopen it if it is not up.
    if (reopensWhenDown(this.settings, "unknown")) this.scheduleReopen();
  }

  /** Nothing is opened again and no report is passed on from now on (the adapter is closing). */
  stop(): void {
    this.stopped = true;
    this.reopenTimer?.cancel();
    this.reopenTimer = null;
  }

  /** Closes the transport; resolves once it has let go of its device (a serial port still opening included). */
  async release(): Promise<void> {
    const released = this.opened?.close();
    this.opened = null;
    await Promise.all([released, this.releasing]);
  }

  /** The serial port failed while the adapter was starting: show why, rather than waiting for a timeout. */
  private onTransportProblem(problem: BleProblem): void {
    if (!this.starting) return;
    this.attemptProblem = problem;
    if (this.startProblem && sameProblem(this.startProblem, problem)) return;
    this.startProblem = problem;
    this.events.problemChanged();
  }

  private onStateChange(reported: string): void {
    // noble's UART driver reports the adapter down until its first HCI Reset is answered: that is a start, not a
    // failure (noble says "poweredOff" on every normal start).
    const state = this.starting && reported === "poweredOff" ? "unknown" : reported;
    if (state === "poweredOn") {
      this.starting = false;
      this.attemptProblem = null;
      this.startProblem = null;
      this.reopenAttempt = 0;
    }
    const was = this.adapterState;
    this.adapterState = state;
    this.events.stateChanged(state, was);
    if (state !== "poweredOn" && reopensWhenDown(this.settings, state) && state !== "unknown" && state !== "resetting") this.scheduleReopen();
  }

  /**
   * A serial adapter that closed or never came up (a dongle unplugged, a USB reset) is opened again, with backoff,
   * until it answers.
   * noble's UART driver only retries while the port shows in the system's port list, for a few seconds; reopening
   * the whole transport works for any serial device and never gives up while a node uses the adapter.
   */
  private scheduleReopen(): void {
    if (this.reopenTimer || this.stopped) return;
    const backoff = Math.min(this.policy.reconnectDelay * 2 ** this.reopenAttempt, this.policy.maxReconnectDelay);
    // An adapter still starting up gets at least a connect timeout before it is judged.
    const delay = this.adapterState === "unknown" ? Math.max(backoff, this.policy.connectTimeout) : backoff;
    this.reopenAttempt++;
    this.reopenTimer = this.timers.setTimeout(() => {
      this.reopenTimer = null;
      // A transport that could not be opened at all (an absent HCI adapter) is always tried again.
      if (this.stopped || (this.opened && !reopensWhenDown(this.settings, this.adapterState))) return;
      const released = this.opened?.close() ?? Promise.resolve();
      this.opened = null;
      this.openError = null;
      this.adapterState = "unknown";
      this.events.reopening();
      // The new open waits until the old transport has let go of the device: a serial port is locked while open, and
      // opened again too early it would report "in use" instead of the real reason.
      const releasing: Promise<void> = released.then(
        () => this.reopen(releasing),
        () => this.reopen(releasing),
      );
      this.releasing = releasing;
    }, delay);
  }

  private reopen(releasing: Promise<void>): void {
    if (this.releasing === releasing) this.releasing = null;
    if (this.stopped) return;
    this.ensureOpen();
    // A failed open keeps its error until the next attempt (so the problem is still told, and nothing opens
    // outside the backoff).
    if (this.openError) this.scheduleReopen();
  }
}
