/**
 * Time as the state machines see it: one-shot timers and, where needed, the current time. Node's in production, a
 * manual clock in tests (test/support/manual-clock.ts), so that every timeout and backoff can be stepped exactly.
 * The one definition of the shape: the pool (src/ble), the HIOKI command channel and the simulator's clock use it.
 */

/** A scheduled call that can be called off. */
export interface Timer {
  cancel(): void;
}

/** One-shot timers. */
export interface Timers {
  setTimeout(fn: () => void, ms: number): Timer;
}

/** One-shot timers and milliseconds on a monotonic clock. */
export interface Clock extends Timers {
  now(): number;
}

/** Node's timers and performance.now(). */
export const realClock: Clock = {
  now: () => performance.now(),
  setTimeout(fn, ms) {
    const timer = setTimeout(fn, ms);
    return { cancel: () => clearTimeout(timer) };
  },
};
