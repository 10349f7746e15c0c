import { realClock, type Timers } from "../protocol/clock";

export type { Timers } from "../protocol/clock";

export class TimeoutError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "TimeoutError";
  }
}

/** The timers the pool runs on: Node's, or a test's manual clock (test/support/manual-clock.ts). */
export const realTimers: Timers = realClock;

/**
 * Races a promise against a timer. noble has no timeout of its own on connect, subscribe, discovery or
 * disconnect, so every such call in the pool goes through here. The losing promise's rejection is swallowed
 * so it cannot become an unhandled rejection later.
 */
export function withTimeout<T>(promise: Promise<T>, ms: number, what: string, onTimeout?: () => void, timers: Timers = realTimers): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = timers.setTimeout(() => {
      onTimeout?.();
      reject(new TimeoutError(`${what} timed out after ${ms} ms`));
    }, ms);
    promise.then(
      (value) => {
        timer.cancel();
        resolve(value);
      },
      (error: unknown) => {
        timer.cancel();
        reject(error instanceof Error ? error : new Error(String(error)));
      },
    );
  });
}
