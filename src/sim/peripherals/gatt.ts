/**
 * A scenario-defined GATT device (kind "gatt"): the user describes the advertising and the attribute table
 * (services, characteristics, their properties and values) and what the device does: values notified or indicated
 * on a schedule while the central has enabled them, and per writable characteristic what a write does (store it,
 * echo it on a notify/indicate characteristic, or answer it from a request → reply table). The scenario side
 * (validation, errors naming the field) is in gatt-scenario.ts; this file takes the checked configuration.
 *
 * As on a real server: a notification or indication carries at most ATT_MTU − 3 bytes of the value (Core Spec
 * Vol 3 Part F 3.4.7.1: only the first ATT_MTU − 3 octets are sent), while a read returns the whole value (Read
 * Blob for the rest); one indication is outstanding at a time; nothing is sent to a central that has not enabled
 * notifications or indications of the characteristic.
 */
import { ATT_MAX_VALUE_LENGTH, normalizeUuid } from "../../protocol/att";
import type { Timer } from "../../protocol/clock";
import type { CharacteristicDefinition, CharacteristicPropertyName, ServiceDefinition, Subscription } from "../gatt-server";
import { GattPeripheral, type PeripheralConfig } from "../peripheral";
import { DEFAULT_SERVER_MTU } from "../types";

/** A reply table entry: a write of exactly `request` is answered with one notification per `reply` element. */
export interface GattReply {
  request: Buffer;
  reply: readonly Buffer[];
  /** Simulated milliseconds before the first notification of the reply. */
  delayMs: number;
}

/** What a write to a characteristic does besides storing the value (which every write does). */
export type GattWriteAction =
  | { action: "store" }
  /** The written bytes are notified (or indicated) on characteristic `to`. */
  | { action: "echo"; to: string }
  /** The written value is looked up in `replies`; the answer (or `otherwise`) goes out on characteristic `on`. */
  | { action: "reply"; on: string; replies: readonly GattReply[]; otherwise: readonly Buffer[] };

export interface GattCharacteristicConfig {
  uuid: string;
  properties: readonly CharacteristicPropertyName[];
  /** The initial value (what a read returns until a write or the schedule changes it). */
  value: Buffer;
  /** Values notified or indicated every intervalMs, cycling, while the central has enabled them. */
  notify?: { intervalMs: number; values: readonly Buffer[] };
  onWrite: GattWriteAction;
}

export interface GattServiceConfig {
  uuid: string;
  characteristics: readonly GattCharacteristicConfig[];
}

export interface GattDeviceConfig extends PeripheralConfig {
  /** Default "GATT-" and the address's last two bytes. */
  name?: string;
  advertisedServices?: readonly string[];
  manufacturerData?: { companyId: number; data: Buffer };
  services: readonly GattServiceConfig[];
}

/** Replies and echoes waiting to be sent: a central writing faster than the device answers loses the excess. */
const MAX_QUEUED_REPLIES = 64;
/** Indications of one characteristic queued behind the outstanding one (replies only; the schedule waits): a reply's. */
const MAX_QUEUED_INDICATIONS = 256;
/**
 * ATT PDUs queued on the link above which a schedule tick is skipped (the cycle waits), as a real stack's full
 * notification buffers refuse the application's next value: a schedule faster than a slow link stays bounded.
 */
const MAX_QUEUED_PDUS = 32;

/** One characteristic's run-time state. */
interface CharacteristicState {
  readonly uuid: string;
  readonly config: GattCharacteristicConfig;
  /** What a read returns. */
  current: Buffer;
  /** Next index into notify.values; kept across connections, so a new subscriber sees the cycle go on. */
  position: number;
  ticker: Timer | null;
  /** Indications sent and not yet confirmed (or dropped). */
  indicating: number;
}

interface ReplyJob {
  target: CharacteristicState;
  values: readonly Buffer[];
  delayMs: number;
}

export class GattDevicePeripheral extends GattPeripheral {
  private readonly config: readonly GattServiceConfig[];
  /** Per service, per characteristic, in definition order. */
  private readonly states: CharacteristicState[][];
  /** Characteristics that can notify or indicate, by canonical UUID (unique in the device). */
  private readonly sources = new Map<string, CharacteristicState>();
  private readonly jobs: ReplyJob[] = [];
  /** A reply is waiting for its delay or for the delivery of its notifications: the next one waits. */
  private jobBusy = false;
  /** Bumped per disconnect: an indication of an older link settling must not touch the new one's counters. */
  private generation = 0;

  constructor(config: GattDeviceConfig) {
    super({
      kind: "gatt",
      address: config.address,
      addressType: config.addressType ?? "random",
      name: config.name ?? `GATT-${config.address.slice(-5).replace(":", "").toUpperCase()}`,
      clock: config.clock,
      maxMtu: config.maxMtu ?? DEFAULT_SERVER_MTU,
      advertisedServices: config.advertisedServices,
      manufacturerData: config.manufacturerData,
    });
    this.config = config.services;
    this.states = config.services.map((service) =>
      service.characteristics.map((c) => ({
        uuid: normalizeUuid(c.uuid),
        config: c,
        current: Buffer.from(c.value),
        position: 0,
        ticker: null,
        indicating: 0,
      })),
    );
    for (const state of this.states.flat()) {
      if (!state.config.properties.includes("notify") && !state.config.properties.includes("indicate")) continue;
      if (this.sources.has(state.uuid)) throw new RangeError(`characteristic ${state.uuid} can notify or indicate and appears more than once`);
      this.sources.set(state.uuid, state);
    }
    for (const state of this.states.flat()) {
      const action = state.config.onWrite;
      const target = action.action === "echo" ? action.to : action.action === "reply" ? action.on : null;
      if (target !== null && !this.sources.has(normalizeUuid(target))) throw new RangeError(`characteristic ${state.uuid}: no notify/indicate characteristic ${target}`);
    }
  }

  protected services(): ServiceDefinition[] {
    return this.config.map((service, i) => ({
      uuid: service.uuid,
      characteristics: this.states[i].map((state): CharacteristicDefinition => {
        const writable = state.config.properties.includes("write") || state.config.properties.includes("writeWithoutResponse");
        return {
          uuid: state.uuid,
          properties: state.config.properties,
          value: () => state.current,
          ...(writable ? { onWrite: (value: Buffer) => this.written(state, value) } : {}),
        };
      }),
    }));
  }

  /** What a read of the characteristic returns now (its first instance when the UUID appears in several services). */
  currentValue(characteristicUuid: string): Buffer {
    return Buffer.from(this.state(characteristicUuid).current);
  }

  /** Changes what a read of the characteristic returns (nothing is sent): a test's way to move a reading. */
  setValue(characteristicUuid: string, value: Buffer): void {
    if (value.length > ATT_MAX_VALUE_LENGTH) throw new RangeError(`a value is at most ${ATT_MAX_VALUE_LENGTH} bytes, got ${value.length}`);
    this.state(characteristicUuid).current = Buffer.from(value);
  }

  /**
   * The device sends `value` on a notify/indicate characteristic now, as its schedule would: it becomes the readable
   * value and goes out (cut to MTU − 3) if the central enabled notifications or indications. Resolves true once
   * delivered (an indication: confirmed), false when nothing was sent. For tests that need exact values.
   */
  sendValue(characteristicUuid: string, value: Buffer): Promise<boolean> {
    const state = this.sources.get(normalizeUuid(characteristicUuid));
    if (!state) return Promise.reject(new Error(`no notify/indicate characteristic ${characteristicUuid} in this device`));
    if (value.length > ATT_MAX_VALUE_LENGTH) return Promise.reject(new RangeError(`a value is at most ${ATT_MAX_VALUE_LENGTH} bytes, got ${value.length}`));
    state.current = Buffer.from(value);
    return this.send(state, state.current, MAX_QUEUED_INDICATIONS);
  }

  private state(characteristicUuid: string): CharacteristicState {
    const wanted = normalizeUuid(characteristicUuid);
    const found = this.states.flat().find((s) => s.uuid === wanted);
    if (!found) throw new Error(`no characteristic ${characteristicUuid} in this device`);
    return found;
  }

  protected override onSubscribed(uuid: string, _subscription: Subscription): void {
    const state = this.sources.get(uuid);
    const schedule = state?.config.notify;
    if (!state || !schedule || state.ticker) return;
    state.ticker = this.setRepeating(schedule.intervalMs, () => this.tick(state, schedule.values));
  }

  protected override onUnsubscribed(uuid: string): void {
    const state = this.sources.get(uuid);
    if (!state) return;
    state.ticker?.cancel();
    state.ticker = null;
  }

  protected override onDisconnected(): void {
    // The base class has cancelled every timer already.
    for (const state of this.sources.values()) {
      state.ticker = null;
      state.indicating = 0;
    }
    this.jobs.length = 0;
    this.jobBusy = false;
    this.generation++;
  }

  private tick(state: CharacteristicState, values: readonly Buffer[]): void {
    // One indication outstanding at a time, as the ATT layer allows: a tick while it waits for its confirmation is
    // skipped, and the cycle goes on from where it was (the central sees every value, in order, later).
    if (state.indicating > 0 && !this.gatt.isSubscribed(state.uuid, "notify")) return;
    if ((this.link?.queuedAttPdus ?? 0) >= MAX_QUEUED_PDUS) return;
    const value = values[state.position];
    state.position = (state.position + 1) % values.length;
    state.current = value;
    void this.send(state, value, 0);
  }

  private written(state: CharacteristicState, value: Buffer): void {
    state.current = Buffer.from(value);
    const action = state.config.onWrite;
    if (action.action === "echo") {
      this.enqueue({ target: this.source(action.to), values: [state.current], delayMs: 0 });
    } else if (action.action === "reply") {
      const match = action.replies.find((r) => r.request.equals(value));
      const values = match ? match.reply : action.otherwise;
      if (values.length > 0) this.enqueue({ target: this.source(action.on), values, delayMs: match ? match.delayMs : 0 });
    }
  }

  private source(uuid: string): CharacteristicState {
    return this.sources.get(normalizeUuid(uuid)) as CharacteristicState;
  }

  /**
   * Replies go out one after the other, in the order of the writes, each after its delay; the first one no earlier
   * than the next turn of the event loop, so the Write Response goes before it, as on a real device.
   */
  private enqueue(job: ReplyJob): void {
    if (this.jobs.length >= MAX_QUEUED_REPLIES) return;
    this.jobs.push(job);
    this.pumpJobs();
  }

  private pumpJobs(): void {
    if (this.jobBusy || this.jobs.length === 0 || !this.isConnected) return;
    const job = this.jobs[0];
    const generation = this.generation;
    this.jobBusy = true;
    this.setTimer(job.delayMs, () => {
      this.jobs.shift();
      let last: Promise<boolean> = Promise.resolve(false);
      for (const value of job.values) {
        job.target.current = value;
        last = this.send(job.target, value, MAX_QUEUED_INDICATIONS);
      }
      // The next reply starts once this one has been delivered (indications: confirmed): backpressure on the link.
      void last.then(() => {
        if (generation !== this.generation) return;
        this.jobBusy = false;
        this.pumpJobs();
      });
    });
  }

  /**
   * Notifies the value (or indicates it, when the central enabled indications only), cut to the connection's
   * MTU − 3; nothing when the central enabled neither, or when `maxQueued` indications already wait. Resolves
   * (never rejects) true once it has been delivered (an indication: confirmed), false when dropped or lost.
   */
  private send(state: CharacteristicState, value: Buffer, maxQueued: number): Promise<boolean> {
    if (!this.isConnected) return Promise.resolve(false);
    const gatt = this.gatt;
    const subscription = gatt.subscription(state.uuid);
    const payload = value.subarray(0, gatt.mtu - 3);
    if (subscription.notify) {
      // A notification lost with its link needs no handling.
      return gatt.notify(state.uuid, payload).then(
        () => true,
        () => false,
      );
    }
    if (!subscription.indicate || state.indicating > maxQueued) return Promise.resolve(false);
    state.indicating++;
    const generation = this.generation;
    const settled = (delivered: boolean): boolean => {
      if (generation === this.generation) state.indicating--;
      return delivered;
    };
    return gatt.indicate(state.uuid, payload).then(
      () => settled(true),
      () => settled(false),
    );
  }
}
