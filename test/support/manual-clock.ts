import type { Clock, Timer } from "../../src/protocol/clock";

/**
 * A Clock that moves only when told: `advance(ms)` runs every timer due within the span, in time order,
 * with `now()` at each timer's due time. Makes link-layer tests exact and free of wall-clock time.
 */
export class ManualClock implements Clock {
  /** Every timer fires this much after its due time, as timers on a busy event loop do. */
  lateMs = 0;
  private time = 0;
  private seq = 0;
  private timers: { at: number; seq: number; fn: () => void; cancelled: boolean }[] = [];

  now(): number {
    return this.time;
  }

  setTimeout(fn: () => void, ms: number): Timer {
    const timer = { at: this.time + Math.max(0, ms) + this.lateMs, seq: this.seq++, fn, cancelled: false };
    this.timers.push(timer);
    return { cancel: () => (timer.cancelled = true) };
  }

  /** Runs the timers due up to now + ms (including ones they schedule inside the span). */
  advance(ms: number): void {
    const end = this.time + ms;
    for (;;) {
      this.timers = this.timers.filter((t) => !t.cancelled);
      let next: (typeof this.timers)[number] | undefined;
      for (const t of this.timers) if (t.at <= end && (!next || t.at < next.at || (t.at === next.at && t.seq < next.seq))) next = t;
      if (!next) break;
      this.timers.splice(this.timers.indexOf(next), 1);
      this.time = Math.max(this.time, next.at);
      next.fn();
    }
    this.time = end;
  }

  /**
   * Runs the earliest timer alone (the first made among equals), with now() at its due time: a whole exchange
   * goes from one timer to the next. false when none is left.
   */
  step(): boolean {
    this.timers = this.timers.filter((t) => !t.cancelled);
    if (this.timers.length === 0) return false;
    const next = this.timers.reduce((a, b) => (b.at < a.at || (b.at === a.at && b.seq < a.seq) ? b : a));
    this.timers.splice(this.timers.indexOf(next), 1);
    this.time = Math.max(this.time, next.at);
    next.fn();
    return true;
  }

  /** Timers still waiting. */
  get pending(): number {
    return this.timers.filter((t) => !t.cancelled).length;
  }
}
