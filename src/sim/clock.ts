import type { SimClock, SimTimer } from "./types";

/**
 * Simulated time on top of Node's timers. Every delay is divided by `timeScale` in real time, and `now()`
 * is multiplied back, so peripherals and the link layer see consistent simulated milliseconds.
 * Timers are unref'd: the simulator alone never keeps a process alive.
 */
export class ScaledClock implements SimClock {
  private readonly origin = performance.now();

  constructor(readonly timeScale = 1) {
    if (!(timeScale > 0) || !Number.isFinite(timeScale)) throw new RangeError(`timeScale must be a positive number, got ${timeScale}`);
  }

  now(): number {
    return (performance.now() - this.origin) * this.timeScale;
  }

  setTimeout(fn: () => void, ms: number): SimTimer {
    const handle = setTimeout(fn, Math.max(0, ms / this.timeScale));
    handle.unref();
    return { cancel: () => clearTimeout(handle) };
  }
}
