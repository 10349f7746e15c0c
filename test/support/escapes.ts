/**
 * Uncaught exceptions and unhandled rejections while a test runs: what would end a Node-RED process. Mocha would
 * blame whichever test happens to be running, or only warn, so a test that must prove nothing escapes collects them
 * itself: mocha's own handlers step aside while it watches and are put back afterwards.
 */

export interface Escapes {
  /** What was thrown or rejected with, in order. */
  readonly seen: unknown[];
  /** Puts the process's previous handlers back; idempotent. */
  stop(): void;
}

/** Collects from now on until `stop()`. */
export function watchEscapes(): Escapes {
  const seen: unknown[] = [];
  const collect = (error: unknown): void => {
    seen.push(error);
  };
  const uncaught = process.listeners("uncaughtException");
  const unhandled = process.listeners("unhandledRejection");
  process.removeAllListeners("uncaughtException");
  process.removeAllListeners("unhandledRejection");
  process.on("uncaughtException", collect);
  process.on("unhandledRejection", collect);
  let stopped = false;
  return {
    seen,
    stop: () => {
      if (stopped) return;
      stopped = true;
      process.removeListener("uncaughtException", collect);
      process.removeListener("unhandledRejection", collect);
      for (const listener of uncaught) process.on("uncaughtException", listener);
      for (const listener of unhandled) process.on("unhandledRejection", listener);
    },
  };
}

/** Runs `body` and returns what escaped meanwhile. */
export async function escapesDuring(body: () => Promise<void>): Promise<unknown[]> {
  const escapes = watchEscapes();
  try {
    await body();
  } finally {
    escapes.stop();
  }
  return escapes.seen;
}
