/**
 * Turns on devices, one at a time per device, in the order they were asked for: what lets several nodes share
 * a device whose protocol cannot interleave (a YMODEM download or upload owns the link's whole byte stream).
 *
 * A turn names the device's address (any case), or null when it is not known in advance (a node that picks its
 * device by name or service may end up on any device). Two turns conflict unless both name different addresses.
 * A turn starts once it conflicts with no running turn and with no turn asked for before it (first come, first
 * served: a stream of turns on one device cannot starve a turn waiting for "any device").
 * Pure: no Node-RED, no Bluetooth.
 */
interface Turn {
  address: string | null;
  start: () => void;
}

export class DeviceTurns {
  private readonly running = new Set<Turn>();
  private readonly waiting: Turn[] = [];

  /** Whether a turn on `address` would start at once. */
  isFree(address: string | null): boolean {
    const turn: Turn = { address: normalise(address), start: () => undefined };
    return ![...this.running, ...this.waiting].some((r) => conflict(r, turn));
  }

  /** Turns running or waiting. */
  get size(): number {
    return this.running.size + this.waiting.length;
  }

  /**
   * Resolves with the function that ends the turn when it starts. Rejects with the signal's reason (the turn is
   * withdrawn) when `signal` aborts before that.
   */
  take(address: string | null, signal?: AbortSignal): Promise<() => void> {
    return new Promise((resolve, reject) => {
      if (signal?.aborted) {
        reject(abortReason(signal));
        return;
      }
      const onAbort = (): void => {
        const i = this.waiting.indexOf(turn);
        if (i < 0) return; // already started: the holder ends it
        this.waiting.splice(i, 1);
        reject(abortReason(signal));
        this.startWaiting();
      };
      const turn: Turn = {
        address: normalise(address),
        start: () => {
          signal?.removeEventListener("abort", onAbort);
          let ended = false;
          resolve(() => {
            if (ended) return;
            ended = true;
            this.running.delete(turn);
            this.startWaiting();
          });
        },
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.waiting.push(turn);
      this.startWaiting();
    });
  }

  private startWaiting(): void {
    for (let i = 0; i < this.waiting.length; ) {
      const turn = this.waiting[i];
      const blocked = [...this.running].some((r) => conflict(r, turn)) || this.waiting.slice(0, i).some((w) => conflict(w, turn));
      if (blocked) {
        i++;
        continue;
      }
      this.waiting.splice(i, 1);
      this.running.add(turn);
      turn.start();
    }
  }
}

function normalise(address: string | null): string | null {
  return address === null || address === "" ? null : address.toLowerCase();
}

function conflict(a: Turn, b: Turn): boolean {
  return a.address === null || b.address === null || a.address === b.address;
}

function abortReason(signal: AbortSignal | undefined): Error {
  const reason: unknown = signal?.reason;
  return reason instanceof Error ? reason : new Error("withdrawn");
}

/**
 * Turns per adapter (any object standing for one), shared by every node of the package that owns a device's byte
 * stream: a YMODEM download from a device and an upload to it never overlap, whichever nodes run them.
 */
const turnsByAdapter = new WeakMap<object, DeviceTurns>();

export function turnsOf(adapter: object): DeviceTurns {
  let turns = turnsByAdapter.get(adapter);
  if (!turns) {
    turns = new DeviceTurns();
    turnsByAdapter.set(adapter, turns);
  }
  return turns;
}
