import type { Clock, Timer } from "../protocol/clock";

/**
 * Simulated time on top of Node's timers. Every delay is divided by `timeScale` in real time, and `now()`
 * is multiplied back, so peripherals and the link layer see consistent simulated milliseconds.
 * Timers are unref'd: the simulator alone never keeps a process alive. The simulator's parts see only protocol/clock's
 * `Clock`; `timeScale` is this clock's own setting (the Simulation reports it), not part of that shape.
 */
export class ScaledClock implements Clock {
  private readonly origin = performance.now();

  constructor(readonly timeScale = 1) {
    if (!(timeScale > 0) || !Number.isFinite(timeScale)) throw new RangeError(`timeScale must be a positive number, got ${timeScale}`);
  }

  now(): number {
    return (performance.now() - this.origin) * this.timeScale;
  }

  setTimeout(fn: () => void, ms: number): Timer {
    const handle = setTimeout(fn, Math.max(0, ms / this.timeScale));
    handle.unref();
    return { cancel: () => clearTimeout(handle) };
  }
}
