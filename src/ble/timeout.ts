import { realClock, type Timers } from "../protocol/clock";
import { BleProblemError, type BleProblem } from "./problem";

export type { Timers } from "../protocol/clock";

/** A request that was not answered in time: a BleProblem (its key names the request; `ms` the time waited). */
export class TimeoutError extends BleProblemError {
  constructor(problem: BleProblem) {
    super(problem);
    this.name = "TimeoutError";
  }
}

/** The timers the pool runs on: Node's, or a test's manual clock (test/support/manual-clock.ts). */
export const realTimers: Timers = realClock;

/**
 * Races a promise against a timer. noble has no timeout of its own on connect, subscribe, discovery or
 * disconnect, so every such call in the pool goes through here. The losing promise's rejection is swallowed
 * so it cannot become an unhandled rejection later. `what`: the problem a timeout is (`ble-config.problem.<key>`),
 * given `ms` as a parameter too.
 */
export function withTimeout<T>(promise: Promise<T>, ms: number, what: BleProblem, onTimeout?: () => void, timers: Timers = realTimers): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = timers.setTimeout(() => {
      onTimeout?.();
      reject(new TimeoutError({ key: what.key, params: { ...what.params, ms } }));
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
