/**
 * Generic GATT access on a connected session, for the nodes that work with any characteristic (ble-gatt-out,
 * ble-gatt-request): a write whose kind (with or without response) is checked against the characteristic's
 * properties, and a request/reply exchange, serialised per session across every node using it, in which a reply
 * that comes late (after its request gave up) or is left over is never taken for the answer to a later request.
 * No Node-RED.
 *
 * What noble 2.8 (HCI) does with writes, read in lib/hci-socket/gatt.js: a Write Request longer than MTU − 3 goes
 * out as a long write (Prepare Write Requests of MTU − 5 bytes, then Execute Write), and writeAsync resolves only
 * on the Execute Write Response. noble reports no ATT error for any write: a refused write (short or long) never
 * resolves, so it ends here as the session's write timeout ("timeout-write"), and a Prepare Write refused halfway
 * is not cancelled by noble (the Execute Write that follows may apply the prepared part, as the server decides).
 * A Write Command is sent as one PDU whatever its length, so a longer value is refused here, never truncated.
 */
import { realClock, type Timer, type Timers } from "../protocol/clock";
import { ReplyCollector, type ReplyEnd } from "../protocol/stream-split";
import { formatUuid } from "../protocol/uuid";
import { BleProblemError } from "./problem";
import type { DeviceSession } from "./session";

export type ResponseMode = "auto" | "with" | "without";

/** The longest attribute value (Core Spec Vol 3 Part F 3.2.9): a long write cannot carry more. */
export const MAX_ATTRIBUTE_VALUE = 512;
/** A reply longer than this ends there when its end says nothing smaller: a device that never stops cannot grow memory. */
export const MAX_REPLY_BYTES = 65_536;
/**
 * Before a request is written, values nobody asked for must have stopped for this long (a late reply still coming
 * in): they are discarded, and the write waits, within its own timeout. No wait when the device is quiet.
 */
export const STRAY_QUIET_MS = 50;
/**
 * The longest a request waits for that quiet: a device that notifies on its own all the time (a console printing a
 * log) still gets its requests, and what it sent before the write is still discarded.
 */
export const MAX_STRAY_WAIT_MS = 250;

const WRITE = "write";
const WRITE_WITHOUT_RESPONSE = "writeWithoutResponse";

function problem(key: string, params: Record<string, string | number>): BleProblemError {
  return new BleProblemError({ key, params });
}

function characteristicOf(session: DeviceSession, service: string, characteristic: string): readonly string[] {
  if (session.signal.aborted) throw problem("not-connected", {});
  if (!session.hasCharacteristic(service, characteristic)) {
    throw problem("no-characteristic", { characteristic: formatUuid(characteristic), service: formatUuid(service), address: session.info.address });
  }
  return session.properties(service, characteristic);
}

/**
 * Whether a write of `value` goes without response, or the problem that refuses it: the characteristic missing
 * ("no-characteristic"), lacking the property asked for or any write property ("no-property"), or a value too long
 * ("value-too-long": without response above MTU − 3; "value-too-long-attribute": above 512, what no write can carry).
 */
export function writeKind(session: DeviceSession, service: string, characteristic: string, value: Buffer, response: ResponseMode): { withoutResponse: boolean } {
  const properties = characteristicOf(session, service, characteristic);
  const canWith = properties.includes(WRITE);
  const canWithout = properties.includes(WRITE_WITHOUT_RESPONSE);
  const name = formatUuid(characteristic);
  let withoutResponse: boolean;
  if (response === "with") {
    if (!canWith) throw problem("no-property", { characteristic: name, property: WRITE });
    withoutResponse = false;
  } else if (response === "without") {
    if (!canWithout) throw problem("no-property", { characteristic: name, property: WRITE_WITHOUT_RESPONSE });
    withoutResponse = true;
  } else {
    if (!canWith && !canWithout) throw problem("no-property", { characteristic: name, property: WRITE });
    withoutResponse = !canWith;
  }
  if (withoutResponse && value.length > session.mtu - 3) throw problem("value-too-long", { characteristic: name, length: value.length, max: session.mtu - 3 });
  refuseOverlong(characteristic, value);
  return { withoutResponse };
}

/**
 * Refuses a value no write can carry ("value-too-long-attribute": longer than an attribute holds, 512 bytes) before
 * any device is involved: a node checks it before it connects (an idle device is not woken, an absent one not
 * waited for, for a value that cannot be written).
 */
export function refuseOverlong(characteristic: string, value: Buffer): void {
  if (value.length > MAX_ATTRIBUTE_VALUE) throw problem("value-too-long-attribute", { characteristic: formatUuid(characteristic), length: value.length, max: MAX_ATTRIBUTE_VALUE });
}

/**
 * Writes `value` to the characteristic: with response (a long write when it is longer than MTU − 3), or without
 * (one Write Command, at most MTU − 3 bytes), as `response` asks and the characteristic allows ("auto": with response
 * when allowed). Resolves when the write is complete: answered, or handed to the controller without response.
 */
export async function writeValue(session: DeviceSession, service: string, characteristic: string, value: Buffer, response: ResponseMode): Promise<void> {
  const { withoutResponse } = writeKind(session, service, characteristic, value, response);
  await session.write(service, characteristic, value, withoutResponse);
}

/** One request and its reply. UUIDs in any form the session accepts (canonical from the node layer). */
export interface Exchange {
  service: string;
  characteristic: string;
  value: Buffer;
  response: ResponseMode;
  replyService: string;
  replyCharacteristic: string;
  end: ReplyEnd;
  /** Bounds the exchange from its start on (its wait for earlier exchanges is not counted): write and reply. */
  timeoutMs: number;
}

/** The reply routing of one reply characteristic on one session: the exchange it is for, if any. */
interface ReplyRoute {
  subscribed: Promise<void>;
  /** The running exchange's collector; null between exchanges, when every value is discarded. */
  current: ((value: Buffer) => void) | null;
  /** Set while values nobody asked for keep arriving; cleared STRAY_QUIET_MS after the last one. */
  stray: Timer | null;
  /** Requests waiting for the strays to stop. */
  waiting: Set<() => void>;
}

interface SessionExchanges {
  /** The end of the last exchange queued: the next one starts after it. */
  tail: Promise<void>;
  routes: Map<string, ReplyRoute>;
}

const perSession = new WeakMap<DeviceSession, SessionExchanges>();

function exchangesOf(session: DeviceSession): SessionExchanges {
  let s = perSession.get(session);
  if (!s) {
    s = { tail: Promise.resolve(), routes: new Map() };
    perSession.set(session, s);
  }
  return s;
}

/**
 * The route of a reply characteristic: subscribed once per session (notifications or indications, whichever the
 * characteristic has) and kept while the session lasts, so that every value it sends is seen, and a value that
 * belongs to no exchange is discarded.
 */
function routeOf(session: DeviceSession, exchanges: SessionExchanges, service: string, characteristic: string, timers: Timers): ReplyRoute {
  const key = `${service}/${characteristic}`;
  const known = exchanges.routes.get(key);
  if (known) return known;
  const route: ReplyRoute = { subscribed: Promise.resolve(), current: null, stray: null, waiting: new Set() };
  const onValue = (value: Buffer): void => {
    if (route.current) {
      route.current(value);
      return;
    }
    // Nobody asked: a late or leftover reply, discarded. The next request waits until these have stopped.
    route.stray?.cancel();
    route.stray = timers.setTimeout(() => {
      route.stray = null;
      for (const w of [...route.waiting]) w();
    }, STRAY_QUIET_MS);
  };
  route.subscribed = session.subscribe(service, characteristic, onValue).then(() => undefined);
  // A failed subscription is tried again by the next exchange.
  route.subscribed.catch(() => {
    if (exchanges.routes.get(key) === route) exchanges.routes.delete(key);
  });
  exchanges.routes.set(key, route);
  return route;
}

/** Resolves once values nobody asked for have stopped, after MAX_STRAY_WAIT_MS at most, or when `ended` resolves. */
function strayQuiet(route: ReplyRoute, timers: Timers, ended: Promise<void>): Promise<void> {
  return new Promise<void>((resolve) => {
    const go = (): void => {
      route.waiting.delete(go);
      limit.cancel();
      resolve();
    };
    const limit = timers.setTimeout(go, MAX_STRAY_WAIT_MS);
    route.waiting.add(go);
    void ended.then(go);
  });
}

/** Rejects when `signal` aborts: "not-connected" when the session ended, else "aborted". */
function abortedBy(session: DeviceSession, signal: AbortSignal | undefined): BleProblemError {
  return session.signal.aborted || !signal ? problem("not-connected", {}) : problem("aborted", {});
}

/**
 * Writes the request and resolves with its reply, which ends as `x.end` says (ReplyCollector: a delimiter, quiet,
 * a length; none: the first value), within `x.timeoutMs` ("timeout-reply"). Exchanges on one session run one at a
 * time, in the order they were asked for, whichever node asks. Values on the reply characteristic that arrive
 * while no exchange is writing or waiting are discarded, and a request is not written until such values have
 * stopped for STRAY_QUIET_MS (waiting MAX_STRAY_WAIT_MS at most). A reply that comes after the next
 * request's write cannot be told from that request's reply (nothing in a generic protocol says which request a
 * value answers): a timeout long enough for the device is what prevents it. `signal` withdraws the exchange ("aborted"); the session ending ends it ("not-connected").
 */
export function exchange(session: DeviceSession, x: Exchange, signal?: AbortSignal, timers: Timers = realClock): Promise<Buffer> {
  const exchanges = exchangesOf(session);
  const run = exchanges.tail.then(() => runExchange(session, exchanges, x, signal, timers));
  // The next exchange starts when this one has ended, however it ended.
  exchanges.tail = run.then(
    () => undefined,
    () => undefined,
  );
  return run;
}

async function runExchange(session: DeviceSession, exchanges: SessionExchanges, x: Exchange, signal: AbortSignal | undefined, timers: Timers): Promise<Buffer> {
  if (session.signal.aborted || signal?.aborted) throw abortedBy(session, signal);
  // Checked before anything reaches the device: a request that cannot be written, or a reply that cannot come.
  const { withoutResponse } = writeKind(session, x.service, x.characteristic, x.value, x.response);
  const replyProperties = characteristicOf(session, x.replyService, x.replyCharacteristic);
  if (!replyProperties.includes("notify") && !replyProperties.includes("indicate")) {
    throw problem("no-property", { characteristic: formatUuid(x.replyCharacteristic), property: "notify" });
  }
  const end: ReplyEnd = { ...x.end, maxBytes: x.end.maxBytes ?? MAX_REPLY_BYTES };
  const route = routeOf(session, exchanges, x.replyService, x.replyCharacteristic, timers);

  return new Promise<Buffer>((resolve, reject) => {
    let finished = false;
    let ended = (): void => undefined;
    const endedPromise = new Promise<void>((r) => (ended = r));
    let collector: ReplyCollector | null = null;
    /** The write under way: the exchange ends only once noble is done with it (a next request's write must not overtake it). */
    let writing: Promise<unknown> = Promise.resolve();
    const finish = (outcome: Buffer | BleProblemError | Error): void => {
      if (finished) return;
      finished = true;
      ended();
      timer.cancel();
      collector?.close();
      if (route.current === push) route.current = null;
      signal?.removeEventListener("abort", onAbort);
      session.signal.removeEventListener("abort", onAbort);
      void writing.then(
        () => settle(outcome),
        () => settle(outcome),
      );
    };
    const settle = (outcome: Buffer | Error): void => (outcome instanceof Error ? reject(outcome) : resolve(outcome));
    const push = (value: Buffer): void => collector?.push(value);
    const onAbort = (): void => finish(abortedBy(session, signal));
    const timer = timers.setTimeout(() => finish(problem("timeout-reply", { characteristic: formatUuid(x.replyCharacteristic), ms: x.timeoutMs })), x.timeoutMs);
    signal?.addEventListener("abort", onAbort, { once: true });
    session.signal.addEventListener("abort", onAbort, { once: true });

    const start = async (): Promise<void> => {
      await route.subscribed;
      // Values nobody asked for are still coming in: they stop before this request goes out.
      if (route.stray) await strayQuiet(route, timers, endedPromise);
      if (finished) return;
      collector = new ReplyCollector(end, timers, (reply) => finish(reply));
      route.current = push;
      writing = session.write(x.service, x.characteristic, x.value, withoutResponse);
      await writing;
    };
    start().catch((error: unknown) => finish(error instanceof Error ? error : new Error(String(error))));
  });
}
