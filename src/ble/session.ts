/**
 * The GATT session of one connection, shared by every lease on it: opening it (connect, discovery), characteristics
 * by UUID, every request bounded by the pool's timeouts (noble has none), notifications fanned out from one CCCD
 * write to every subscriber, and closing the link.
 */
import { setMaxListeners } from "node:events";
import type { Characteristic, Peripheral, Service } from "@stoprocent/noble";
import type { Timers } from "../protocol/clock";
import { uuidFromNoble } from "../protocol/uuid";
import { BleProblemError } from "./problem";
import { infoOf, type PeripheralInfo } from "./selector";
import { withTimeout } from "./timeout";

type ConnectParams = { mtu?: number };

export interface LinkTimeouts {
  connectTimeout: number;
  /** Timeout of each GATT operation (discovery, subscribe, read, write, disconnect). */
  gattTimeout: number;
}

/** Every lease let go of the link while it was being set up. */
const RELEASED = { key: "released-while-connecting", params: {} };

/**
 * Connects to `p` asking for `mtu` (or adopts its link) and discovers its services, each step bounded (noble has no
 * timeouts). `wanted` is asked after each step: once it says no, the attempt ends with an error (the caller closes
 * a link that came up all the same). `linked` is called once the link is up, before discovery.
 */
export async function openSession(p: Peripheral, mtu: number, timeouts: LinkTimeouts, timers: Timers, wanted: () => boolean, linked?: () => void): Promise<Session> {
  const address = p.address.toLowerCase();
  const connectParams: ConnectParams = { mtu };
  // A cancelled attempt can still complete: noble resets the controller before connecting, so our
  // LE Create Connection Cancel may reach it first and be refused. Such a link is adopted, not redialled.
  if (p.state !== "connected") {
    await withTimeout(
      (p.connectAsync as (options?: ConnectParams) => Promise<void>).call(p, connectParams),
      timeouts.connectTimeout,
      { key: "timeout-connect", params: { address } },
      () => p.cancelConnect(),
      timers,
    );
  }
  linked?.();
  if (!wanted()) throw new BleProblemError(RELEASED);
  const { services } = await withTimeout(p.discoverAllServicesAndCharacteristicsAsync(), timeouts.gattTimeout, { key: "timeout-discovery", params: { address } }, undefined, timers);
  if (!wanted()) throw new BleProblemError(RELEASED);
  return new Session(p, services, timeouts.gattTimeout, timers);
}

/** Ends `p`'s link or the attempt at one; a disconnect never answered is given up after `gattTimeout`. */
export async function closeLink(p: Peripheral, gattTimeout: number, timers: Timers): Promise<void> {
  if (p.state !== "connected" && p.state !== "connecting") return;
  if (p.state === "connecting") {
    p.cancelConnect();
    return;
  }
  await withTimeout(p.disconnectAsync(), gattTimeout, { key: "timeout-disconnect", params: { address: p.address.toLowerCase() } }, undefined, timers).catch(() => undefined);
}

/** What a node gets while its peripheral is connected. Every call is bounded by the pool's GATT timeout. */
export interface DeviceSession {
  readonly info: PeripheralInfo;
  /**
   * The link's ATT MTU: min(what noble asked for, the peripheral's answer); 23 until the exchange completes. (noble
   * 2.8 alone would adopt the answer, and real servers answer their own maximum, often 517: the HCI driver wrapper
   * gives noble the agreed value, src/protocol/att-mtu.ts.)
   */
  readonly mtu: number;
  /** Aborted when this connection ends (for any reason). */
  readonly signal: AbortSignal;
  hasCharacteristic(service: string, characteristic: string): boolean;
  /**
   * The GATT table discovered when the link came up, in the device's order: canonical UUIDs (src/protocol/uuid.ts),
   * each characteristic's properties as noble reports them; what reads as no UUID (no node could name it) is left
   * out. A copy: nothing the caller does changes the session.
   */
  services(): GattService[];
  /** The characteristic's GATT properties ("write", "writeWithoutResponse", "notify", ...); [] when it is absent. */
  properties(service: string, characteristic: string): readonly string[];
  /**
   * Notifications and indications, delivered synchronously in arrival order. Returns the unsubscribe function.
   * `until`: the subscription also ends when it aborts, e.g. the signal onConnected gets, which aborts when the lease
   * is released (a node's subscriptions then end with its lease, while other leases keep the link and theirs).
   */
  subscribe(service: string, characteristic: string, onValue: (value: Buffer) => void, until?: AbortSignal): Promise<() => void>;
  read(service: string, characteristic: string): Promise<Buffer>;
  write(service: string, characteristic: string, value: Buffer, withoutResponse: boolean): Promise<void>;
}

/** One service of a DeviceSession's table (DeviceSession.services). */
export interface GattService {
  uuid: string;
  characteristics: { uuid: string; properties: readonly string[] }[];
}

/** One characteristic's notifications on one link, fanned out to every subscriber. */
interface Subscription {
  listeners: Set<(v: Buffer) => void>;
  attached: (data: Buffer, isNotification: boolean) => void;
  /** The CCCD write: every subscriber waits for it, and every one gets its failure. */
  written: Promise<void>;
}

/** A service/characteristic pair as a map key: canonical UUIDs, whatever spelling noble or the caller uses. */
function keyOf(service: string, characteristic: string): string {
  return `${uuidFromNoble(service) ?? service}/${uuidFromNoble(characteristic) ?? characteristic}`;
}

export class Session implements DeviceSession {
  private readonly controller = new AbortController();
  private readonly chars = new Map<string, Characteristic>();
  private readonly subscriptions = new Map<string, Subscription>();
  private readonly table: GattService[] = [];
  /** The end of the last read or write asked for on each characteristic (keyOf): the next one starts after it. */
  private readonly turns = new Map<string, Promise<void>>();
  readonly signal = this.controller.signal;

  constructor(
    private readonly peripheral: Peripheral,
    services: Service[],
    private readonly gattTimeout: number,
    private readonly timers: Timers,
  ) {
    // Every lease's use() and exchange on this link listens to it, as many as the nodes let wait: bounded by them.
    setMaxListeners(0, this.signal);
    for (const s of services) {
      const characteristics: GattService["characteristics"] = [];
      for (const c of s.characteristics ?? []) {
        this.chars.set(keyOf(s.uuid, c.uuid), c);
        const uuid = uuidFromNoble(c.uuid);
        if (uuid !== null) characteristics.push({ uuid, properties: [...(c.properties ?? [])] });
      }
      const uuid = uuidFromNoble(s.uuid);
      if (uuid !== null) this.table.push({ uuid, characteristics });
    }
  }

  get info(): PeripheralInfo {
    return infoOf(this.peripheral);
  }

  get mtu(): number {
    // noble's own value is the link's: over HCI the driver wrapper rewrites the server's Exchange MTU Response to
    // min(noble's request, the answer) before noble reads it (whatever noble asked: a link it did not match to its
    // pending connect asks 256); BlueZ and the native stacks negotiate it themselves.
    return Math.max(23, this.peripheral.mtu ?? 23);
  }

  hasCharacteristic(service: string, characteristic: string): boolean {
    return this.chars.has(keyOf(service, characteristic));
  }

  services(): GattService[] {
    return this.table.map((s) => ({ uuid: s.uuid, characteristics: s.characteristics.map((c) => ({ uuid: c.uuid, properties: [...c.properties] })) }));
  }

  properties(service: string, characteristic: string): readonly string[] {
    return this.chars.get(keyOf(service, characteristic))?.properties ?? [];
  }

  private characteristic(service: string, characteristic: string): Characteristic {
    if (this.signal.aborted) throw new BleProblemError({ key: "not-connected", params: {} });
    const c = this.chars.get(keyOf(service, characteristic));
    // The UUIDs are the node's configuration and the address the device's identity: neither is data from the device.
    if (!c) throw new BleProblemError({ key: "no-characteristic", params: { characteristic, service, address: this.info.address } });
    return c;
  }

  async subscribe(service: string, characteristic: string, onValue: (value: Buffer) => void, until?: AbortSignal): Promise<() => void> {
    const key = keyOf(service, characteristic);
    const c = this.characteristic(service, characteristic);
    if (until?.aborted) return () => undefined;
    const sub = this.subscriptions.get(key) ?? this.writeCccd(key, c, characteristic);
    // Listeners are in before the CCCD write is answered: a sensor may notify as soon as it has the write, before
    // noble hears the write response, and those first values must not fall into an empty set.
    sub.listeners.add(onValue);
    const unsubscribe = (): void => {
      until?.removeEventListener("abort", unsubscribe);
      if (!sub.listeners.delete(onValue)) return;
      if (sub.listeners.size === 0 && this.subscriptions.get(key) === sub) {
        this.subscriptions.delete(key);
        c.removeListener("data", sub.attached);
        if (!this.signal.aborted) {
          this.timed(c.unsubscribeAsync(), "timeout-unsubscribe", characteristic).catch(() => undefined);
        }
      }
    };
    until?.addEventListener("abort", unsubscribe, { once: true });
    try {
      await sub.written;
    } catch (error) {
      until?.removeEventListener("abort", unsubscribe);
      sub.listeners.delete(onValue);
      throw error;
    }
    return unsubscribe;
  }

  /** Starts one subscription to `c`, shared by every subscriber; it is forgotten if the CCCD write fails. */
  private writeCccd(key: string, c: Characteristic, characteristic: string): Subscription {
    const listeners = new Set<(v: Buffer) => void>();
    const attached = (data: Buffer, isNotification: boolean): void => {
      // noble also emits 'data' for read responses; only notifications and indications are values pushed to us
      if (!isNotification) return;
      for (const l of listeners) l(data);
    };
    c.on("data", attached);
    const written = this.timed(c.subscribeAsync(), "timeout-subscribe", characteristic);
    const sub: Subscription = { listeners, attached, written };
    written.catch(() => {
      c.removeListener("data", attached);
      if (this.subscriptions.get(key) === sub) this.subscriptions.delete(key);
    });
    this.subscriptions.set(key, sub);
    return sub;
  }

  async read(service: string, characteristic: string): Promise<Buffer> {
    const c = this.characteristic(service, characteristic);
    return this.inTurn(keyOf(service, characteristic), () => this.timed(c.readAsync(), "timeout-read", characteristic));
  }

  async write(service: string, characteristic: string, value: Buffer, withoutResponse: boolean): Promise<void> {
    const c = this.characteristic(service, characteristic);
    return this.inTurn(keyOf(service, characteristic), () => this.timed(c.writeAsync(value, withoutResponse), "timeout-write", characteristic));
  }

  /**
   * Runs `request` once every read and write asked for before on the same characteristic has settled. noble 2.8
   * keeps one write callback per characteristic (onceExclusive: a second write drops the first one's, which then
   * never resolves) and hands the first read response to every pending read: two requests on one characteristic
   * at once lose one of them. Each request's GATT timeout starts when its turn comes.
   */
  private inTurn<T>(key: string, request: () => Promise<T>): Promise<T> {
    const before = this.turns.get(key) ?? Promise.resolve();
    const mine = before.then(() => {
      if (this.signal.aborted) throw new BleProblemError({ key: "not-connected", params: {} });
      return request();
    });
    const settled = mine.then(
      () => undefined,
      () => undefined,
    );
    this.turns.set(key, settled);
    void settled.then(() => {
      if (this.turns.get(key) === settled) this.turns.delete(key);
    });
    return mine;
  }

  /** Every GATT request is bounded by the pool's GATT timeout (noble has none); `key` is its timeout's problem. */
  private timed<T>(request: Promise<T>, key: string, characteristic: string): Promise<T> {
    return withTimeout(request, this.gattTimeout, { key, params: { characteristic } }, undefined, this.timers);
  }

  end(): void {
    for (const [key, sub] of this.subscriptions) {
      this.chars.get(key)?.removeListener("data", sub.attached);
    }
    this.subscriptions.clear();
    this.controller.abort();
  }
}
