/**
 * The editor's Explore: the GATT table of one device, read through the pool without disturbing any flow. A link a
 * flow's lease holds is read as it is (its session keeps the table discovered when it came up: no new connection,
 * no GATT request). Otherwise a temporary lease goes through the pool like any node's (its scan, its connect queue,
 * maxConnections, the backoff of a link that failed), and is released as soon as the table is read, or when the
 * time is up: it never preempts another lease's link, and a link other leases share stays up when it leaves.
 */
import type { Timers } from "../protocol/clock";
import type { Lease, LeaseOptions, LeaseState } from "./lease";
import { BleProblemError, type BleProblem } from "./problem";
import type { DeviceSelector } from "./selector";
import type { DeviceSession, GattService } from "./session";

/** What Explore shows of a device: its address and advertised name, and its table (DeviceSession.services). */
export interface ExploreResult {
  address: string;
  name: string;
  services: GattService[];
}

/** What exploring needs of an adapter (src/ble/pool.ts BleAdapter). */
export interface ExploreHost {
  /** The session of a live link to the device `selector` names, held by some lease; else null. */
  liveSession(selector: DeviceSelector): DeviceSession | null;
  lease(options: LeaseOptions): Lease;
}

function resultOf(session: DeviceSession): ExploreResult {
  const { address, name } = session.info;
  return { address, name, services: session.services() };
}

/** Why no table was read in time, from the last state the temporary lease was in. */
function timeoutProblem(state: LeaseState, timeoutMs: number): BleProblem {
  const seconds = Math.round(timeoutMs / 100) / 10;
  switch (state.state) {
    case "scanning":
      return { key: "explore-not-found", params: { seconds } };
    case "waiting-slot":
      return { key: "explore-no-slot", params: { inUse: state.inUse, max: state.max } };
    case "reconnecting":
      return state.reason;
    case "error":
      return state.problem;
    case "adapter":
      if (state.problem) return state.problem;
      return { key: "explore-timeout", params: { seconds } };
    default:
      return { key: "explore-timeout", params: { seconds } };
  }
}

/**
 * The table of the device `selector` names (an address or an exact name), within `timeoutMs`. Rejects with a
 * BleProblemError: the device was not found, no connection slot came free, the link failed, or the adapter is
 * unusable. Resolves or rejects only once the temporary lease, if one was taken, is released.
 */
export function exploreDevice(host: ExploreHost, selector: DeviceSelector, timeoutMs: number, timers: Timers): Promise<ExploreResult> {
  const live = host.liveSession(selector);
  if (live) return Promise.resolve(resultOf(live));
  return new Promise<ExploreResult>((resolve, reject) => {
    let settled = false;
    let lease: Lease | null = null;
    const finish = (outcome: () => void): void => {
      if (settled) return;
      settled = true;
      timer.cancel();
      const release = lease ? lease.release() : Promise.resolve();
      release.then(outcome, outcome);
    };
    // The lease's state is set at once (its onState hears it later): the state it is in when the time is up.
    const timer = timers.setTimeout(() => {
      const state = lease?.state ?? { state: "scanning" };
      finish(() => reject(new BleProblemError(timeoutProblem(state, timeoutMs))));
    }, timeoutMs);
    lease = host.lease({
      selector,
      onState: (state) => {
        // An adapter that cannot be used will not become usable by waiting: say why at once.
        if (state.state === "adapter" && state.problem) {
          const problem = state.problem;
          finish(() => reject(new BleProblemError(problem)));
        }
      },
      onConnected: (session) => {
        const result = resultOf(session);
        finish(() => resolve(result));
        return Promise.resolve();
      },
    });
  });
}
