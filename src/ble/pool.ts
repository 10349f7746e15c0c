/**
 * The connection pool: one BleAdapter per adapter identity (a module-level registry), and on each adapter one
 * DeviceEntry per peripheral, leased by the nodes that use it and reference-counted. Connection attempts are
 * queued one at a time, bounded by maxConnections, timed out (noble has no timeouts), and retried with backoff
 * while any lease holds the peripheral.
 */
import { EventEmitter } from "node:events";
import type { Characteristic, Noble, Peripheral, Service } from "@stoprocent/noble";
import { adapterKey, adapterProblem, describeTransport, openAdapter, reopensWhenDown, uartNotAnswering, type AdapterDescription, type AdapterEvents, type OpenAdapter, type TransportSettings } from "./adapter";
import { BleProblemError, problemOf, type BleProblem } from "./problem";
import { realTimers, TimeoutError, withTimeout, type Timers } from "./timeout";

export interface PoolPolicy {
  maxConnections: number;
  connectTimeout: number;
  reconnectDelay: number;
  /** Upper bound of the reconnect backoff. */
  maxReconnectDelay: number;
  /** Timeout of each GATT operation (discovery, subscribe, read, write, disconnect). */
  gattTimeout: number;
}

export const DEFAULT_POLICY: PoolPolicy = { maxConnections: 4, connectTimeout: 5000, reconnectDelay: 1000, maxReconnectDelay: 30000, gattTimeout: 5000 };

/** Which peripheral a lease wants. Every given field must match; none given matches anything advertising `service`. */
export interface DeviceSelector {
  address?: string;
  /** Exact advertised name. */
  name?: string;
  /** Advertised name prefix. */
  namePrefix?: string;
  /** A 16-bit ("180d") or 128-bit service UUID the peripheral must advertise when nothing else identifies it. */
  service?: string;
}

export type LeaseState =
  /** `problem`: why the adapter is not usable; null while it is starting. */
  | { state: "adapter"; problem: BleProblem | null }
  | { state: "scanning" }
  | { state: "waiting-slot"; inUse: number; max: number }
  | { state: "connecting"; address: string }
  /** `simulated`: the peripheral is one of the simulator's, not a real device. */
  | { state: "connected"; address: string; name: string; simulated: boolean }
  | { state: "reconnecting"; retryInMs: number; reason: string }
  | { state: "error"; text: string; retryInMs: number };

export interface PeripheralInfo {
  address: string;
  addressType: string;
  name: string;
  rssi: number;
  /** Advertised service UUIDs, lowercase, as noble reports them. */
  serviceUuids: string[];
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
  /** The characteristic's GATT properties ("write", "writeWithoutResponse", "notify", ...); [] when it is absent. */
  properties(service: string, characteristic: string): readonly string[];
  /** Notifications and indications, delivered synchronously in arrival order. Returns the unsubscribe function. */
  subscribe(service: string, characteristic: string, onValue: (value: Buffer) => void): Promise<() => void>;
  read(service: string, characteristic: string): Promise<Buffer>;
  write(service: string, characteristic: string, value: Buffer, withoutResponse: boolean): Promise<void>;
}

export interface LeaseOptions {
  selector: DeviceSelector;
  /**
   * ATT MTU to ask for when this lease causes the connection (the largest of the leases wins; none asking: 256). The
   * link runs at the smaller of this and the peripheral's answer: DeviceSession.mtu.
   */
  mtu?: number;
  onState(state: LeaseState): void;
  /**
   * Runs on every (re)connection: discover what the node needs, subscribe. A rejection drops the
   * connection and retries it with backoff (a device that lacks a characteristic may be a different
   * firmware, or may expose it after a restart).
   */
  onConnected(session: DeviceSession): Promise<void>;
  /** The connection of a session given to onConnected has ended. */
  onDisconnected?(): void;
}

export interface Lease {
  readonly state: LeaseState;
  /** The connected session, if any. */
  readonly session: DeviceSession | null;
  release(): Promise<void>;
}

export function normalizeUuid(uuid: string): string {
  const hex = uuid.toLowerCase().replace(/^0x/, "").replace(/-/g, "");
  // noble reports 16-bit UUIDs as lowercase hex without zero padding ("a00" for 0x0A00)
  return hex.length <= 4 ? hex.replace(/^0+(?=.)/, "") : hex;
}

/** Whether a discovered peripheral is the one a selector names (called from noble's discover event: must never throw). */
export function matches(selector: DeviceSelector, p: Peripheral): boolean {
  if (selector.address && p.address.toLowerCase() !== selector.address.toLowerCase()) return false;
  const name = p.advertisement?.localName ?? "";
  if (selector.name && name !== selector.name) return false;
  if (selector.namePrefix && !name.startsWith(selector.namePrefix)) return false;
  if (!selector.address && !selector.name && !selector.namePrefix && selector.service) {
    const wanted = normalizeUuid(selector.service);
    return (p.advertisement?.serviceUuids ?? []).some((u) => normalizeUuid(u) === wanted);
  }
  return true;
}

function infoOf(p: Peripheral): PeripheralInfo {
  return {
    address: p.address.toLowerCase(),
    addressType: p.addressType,
    name: p.advertisement?.localName ?? "",
    rssi: p.rssi,
    serviceUuids: (p.advertisement?.serviceUuids ?? []).map((u) => u.toLowerCase()),
  };
}

type ConnectParams = { mtu?: number };

/** The MTU asked for when no lease names one (noble 2.8's own default, asked explicitly so it is known). */
const DEFAULT_REQUESTED_MTU = 256;

/** One characteristic's notifications on one link, fanned out to every subscriber. */
interface Subscription {
  listeners: Set<(v: Buffer) => void>;
  attached: (data: Buffer, isNotification: boolean) => void;
  /** The CCCD write: every subscriber waits for it, and every one gets its failure. */
  written: Promise<void>;
}

class Session implements DeviceSession {
  private readonly controller = new AbortController();
  private readonly chars = new Map<string, Characteristic>();
  private readonly subscriptions = new Map<string, Subscription>();
  readonly signal = this.controller.signal;

  constructor(
    private readonly peripheral: Peripheral,
    services: Service[],
    private readonly gattTimeout: number,
    private readonly timers: Timers,
  ) {
    for (const s of services) {
      for (const c of s.characteristics ?? []) this.chars.set(`${normalizeUuid(s.uuid)}/${normalizeUuid(c.uuid)}`, c);
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
    return this.chars.has(`${normalizeUuid(service)}/${normalizeUuid(characteristic)}`);
  }

  properties(service: string, characteristic: string): readonly string[] {
    return this.chars.get(`${normalizeUuid(service)}/${normalizeUuid(characteristic)}`)?.properties ?? [];
  }

  private characteristic(service: string, characteristic: string): Characteristic {
    if (this.signal.aborted) throw new Error("not connected");
    const c = this.chars.get(`${normalizeUuid(service)}/${normalizeUuid(characteristic)}`);
    if (!c) throw new Error(`characteristic ${characteristic} of service ${service} not found on ${this.info.address}`);
    return c;
  }

  async subscribe(service: string, characteristic: string, onValue: (value: Buffer) => void): Promise<() => void> {
    const key = `${normalizeUuid(service)}/${normalizeUuid(characteristic)}`;
    const c = this.characteristic(service, characteristic);
    const sub = this.subscriptions.get(key) ?? this.writeCccd(key, c, characteristic);
    // Listeners are in before the CCCD write is answered: a sensor may notify as soon as it has the write, before
    // noble hears the write response, and those first values must not fall into an empty set.
    sub.listeners.add(onValue);
    try {
      await sub.written;
    } catch (error) {
      sub.listeners.delete(onValue);
      throw error;
    }
    return () => {
      sub.listeners.delete(onValue);
      if (sub.listeners.size === 0 && this.subscriptions.get(key) === sub) {
        this.subscriptions.delete(key);
        c.removeListener("data", sub.attached);
        if (!this.signal.aborted) {
          this.timed(c.unsubscribeAsync(), `unsubscribing from ${characteristic}`).catch(() => undefined);
        }
      }
    };
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
    const written = this.timed(c.subscribeAsync(), `subscribing to ${characteristic}`);
    const sub: Subscription = { listeners, attached, written };
    written.catch(() => {
      c.removeListener("data", attached);
      if (this.subscriptions.get(key) === sub) this.subscriptions.delete(key);
    });
    this.subscriptions.set(key, sub);
    return sub;
  }

  async read(service: string, characteristic: string): Promise<Buffer> {
    return this.timed(this.characteristic(service, characteristic).readAsync(), `reading ${characteristic}`);
  }

  async write(service: string, characteristic: string, value: Buffer, withoutResponse: boolean): Promise<void> {
    return this.timed(this.characteristic(service, characteristic).writeAsync(value, withoutResponse), `writing ${characteristic}`);
  }

  /** Every GATT request is bounded by the pool's GATT timeout (noble has none). */
  private timed<T>(request: Promise<T>, what: string): Promise<T> {
    return withTimeout(request, this.gattTimeout, what, undefined, this.timers);
  }

  end(): void {
    for (const [key, sub] of this.subscriptions) {
      this.chars.get(key)?.removeListener("data", sub.attached);
    }
    this.subscriptions.clear();
    this.controller.abort();
  }
}

class LeaseImpl implements Lease {
  state: LeaseState = { state: "scanning" };
  session: DeviceSession | null = null;
  /** The session this lease's setup (onConnected) succeeded on. */
  setUpOn: DeviceSession | null = null;
  released = false;

  constructor(
    readonly options: LeaseOptions,
    private readonly adapter: BleAdapter,
  ) {}

  setState(state: LeaseState): void {
    if (this.released) return;
    this.state = state;
    this.options.onState(state);
  }

  release(): Promise<void> {
    if (this.released) return Promise.resolve();
    this.released = true;
    return this.adapter.releaseLease(this);
  }
}

type EntryPhase = "resolving" | "queued" | "connecting" | "connected" | "backoff" | "closing";

/** One peripheral on one adapter, shared by every lease whose selector resolved to it. */
class DeviceEntry {
  readonly leases = new Set<LeaseImpl>();
  phase: EntryPhase = "resolving";
  peripheral: Peripheral | null = null;
  session: Session | null = null;
  attempt = 0;
  retryTimer: { cancel(): void } | null = null;
  /** Runs while the link must still stay up before the backoff starts again (see BleAdapter.armBackoffReset). */
  resetTimer: { cancel(): void } | null = null;
  private readonly onDisconnect = (reason: unknown): void => this.adapter.handleDisconnect(this, reason);

  constructor(
    readonly selector: DeviceSelector,
    private readonly adapter: BleAdapter,
  ) {}

  /** Read through a method so that TypeScript does not narrow a phase that changes across awaits. */
  get closing(): boolean {
    return this.phase === "closing";
  }

  get address(): string | null {
    return this.peripheral ? this.peripheral.address.toLowerCase() : (this.selector.address?.toLowerCase() ?? null);
  }

  broadcast(state: LeaseState): void {
    for (const l of this.leases) l.setState(state);
  }

  watch(p: Peripheral): void {
    this.peripheral = p;
    p.on("disconnect", this.onDisconnect);
  }

  unwatch(): void {
    this.peripheral?.removeListener("disconnect", this.onDisconnect);
  }

  cancelRetry(): void {
    this.retryTimer?.cancel();
    this.retryTimer = null;
  }
}

export interface AdapterLog {
  warn(message: string): void;
}

/** What an adapter runs on. Tests give a fake noble and a manual clock; everything else uses the defaults. */
export interface AdapterDeps {
  open?: (settings: TransportSettings, events?: AdapterEvents) => OpenAdapter;
  timers?: Timers;
}

function sameProblem(a: BleProblem, b: BleProblem): boolean {
  return a.key === b.key && JSON.stringify(a.params) === JSON.stringify(b.params);
}

/** One adapter: one noble instance, its scanner, its connection queue and its peripherals. */
export class BleAdapter extends EventEmitter {
  readonly key: string;
  readonly description: AdapterDescription;
  private opened: OpenAdapter | null = null;
  private readonly entries = new Set<DeviceEntry>();
  private readonly leases = new Set<LeaseImpl>();
  private refs = 0;
  private scanning = false;
  private connectBusy = false;
  private closing: Promise<void> | null = null;
  private adapterState = "unknown";
  private openError: Error | null = null;
  /** A uart adapter between opening its port and its first poweredOn: noble's "poweredOff" then only means "starting". */
  private starting = false;
  /** Why the current start of the transport failed, reported by the transport itself (the serial port's open). */
  private attemptProblem: BleProblem | null = null;
  /** Why the last start failed, shown while the next one runs; cleared once the adapter is up. */
  private startProblem: BleProblem | null = null;
  private readonly scanListeners = new Set<(p: Peripheral) => void>();
  private readonly drops = new Set<Promise<void>>();
  private reopenTimer: { cancel(): void } | null = null;
  private reopenAttempt = 0;
  /** A reopen waiting for the old transport to let go of its device. */
  private releasing: Promise<void> | null = null;
  private readonly open: (settings: TransportSettings, events?: AdapterEvents) => OpenAdapter;
  private readonly timers: Timers;

  constructor(
    readonly settings: TransportSettings,
    readonly policy: PoolPolicy,
    deps: AdapterDeps = {},
  ) {
    super();
    this.open = deps.open ?? openAdapter;
    this.timers = deps.timers ?? realTimers;
    this.key = adapterKey(settings);
    this.description = describeTransport(settings);
  }

  get noble(): Noble | null {
    return this.opened?.noble ?? null;
  }

  get simulation(): OpenAdapter["simulation"] {
    return this.opened?.simulation ?? null;
  }

  /** noble's adapter state, or "error" when the transport could not be opened. */
  get state(): string {
    return this.openError ? "error" : this.adapterState;
  }

  /** Why the adapter is not usable, else null. */
  get problem(): BleProblem | null {
    if (this.openError) return problemOf(this.openError);
    if (this.adapterState === "unknown" && this.startProblem) return this.startProblem;
    return adapterProblem(this.settings, this.adapterState, this.opened);
  }

  get connectedCount(): number {
    let n = 0;
    for (const e of this.entries) if (e.phase === "connected" || e.phase === "connecting") n++;
    return n;
  }

  /** Open lazily, on the first reference. Scenario errors surface here as openError. */
  private ensureOpen(): void {
    if (this.opened || this.openError || this.releasing) return;
    if (this.settings.transport === "uart") {
      // Reopened after a start that never came up: say why, or that the controller never answered.
      if (this.starting) this.startProblem = this.attemptProblem ?? uartNotAnswering(this.settings);
      this.attemptProblem = null;
      this.starting = true;
    }
    try {
      const opened: OpenAdapter = this.open(this.settings, {
        // Only while this transport is the current one: a closed one's late report is of no interest.
        transportProblem: (problem) => {
          if (this.opened === opened && !this.closing) this.onTransportProblem(problem);
        },
        problemChanged: () => {
          if (this.opened === opened && !this.closing) this.onTransportProblemChanged();
        },
      });
      this.opened = opened;
    } catch (error) {
      this.openError = error instanceof Error ? error : new Error(String(error));
      this.emit("state", this.state);
      // An absent HCI adapter may be plugged in later: look for it again, with backoff.
      if (this.settings.transport === "hci") this.scheduleReopen();
      return;
    }
    const noble = this.opened.noble;
    // Reading `state` starts noble's bindings now. Left to noble, they start on a later tick after the first
    // stateChange listener, which would start them after close() when a flow is redeployed at once, leaking
    // noble's process handlers and an HCI socket.
    const initial = noble.state;
    // noble logs its own warnings with console.warn; route them through our log instead
    noble.removeAllListeners("warning");
    noble.on("warning", (message: string) => this.emit("warning", message));
    noble.on("stateChange", (state: string) => this.onStateChange(state));
    noble.on("discover", (p: Peripheral) => this.onDiscover(p));
    noble.on("scanStop", () => {
      this.scanning = false;
      this.updateScanning();
    });
    if (initial !== "unknown") this.onStateChange(initial);
    // A serial port that fails to open may never report a state at all: check back, and reopen it if it is not up.
    if (reopensWhenDown(this.settings, "unknown")) this.scheduleReopen();
  }

  ref(): void {
    this.refs++;
    this.ensureOpen();
  }

  async unref(): Promise<void> {
    this.refs--;
    await this.maybeClose();
  }

  private async maybeClose(): Promise<void> {
    if (this.refs > 0 || this.leases.size > 0) return;
    if (!this.closing) this.closing = this.shutdown();
    await this.closing;
  }

  private async shutdown(): Promise<void> {
    if (registry.get(this.key) === this) registry.delete(this.key);
    this.reopenTimer?.cancel();
    this.reopenTimer = null;
    // Disconnects already under way (a node released its lease just before) must finish before noble stops,
    // or their Disconnection Complete never arrives.
    const disconnects = [...this.drops, ...[...this.entries].map((e) => this.dropEntry(e))];
    await Promise.all(disconnects);
    // Waits for the transport to let go of the device (a serial port still opening included): a config node
    // deployed again at once must find its port free.
    const released = this.opened?.close();
    this.opened = null;
    this.scanListeners.clear();
    this.removeAllListeners();
    await Promise.all([released, this.releasing]);
  }

  /** The serial port failed while the adapter was starting: show why, rather than waiting for a timeout. */
  private onTransportProblem(problem: BleProblem): void {
    if (!this.starting) return;
    this.attemptProblem = problem;
    if (this.startProblem && sameProblem(this.startProblem, problem)) return;
    this.startProblem = problem;
    this.emit("state", this.state);
    this.broadcastAdapterState();
  }

  private onStateChange(reported: string): void {
    // noble's UART driver reports the adapter down until its first HCI Reset is answered: that is a start, not a
    // failure (noble says "poweredOff" on every normal start).
    const state = this.starting && reported === "poweredOff" ? "unknown" : reported;
    if (state === "poweredOn") {
      this.starting = false;
      this.attemptProblem = null;
      this.startProblem = null;
    }
    const was = this.adapterState;
    this.adapterState = state;
    this.emit("state", state);
    if (state === "poweredOn") {
      this.reopenAttempt = 0;
      this.scanning = false;
      for (const e of this.entries) this.kick(e);
      this.updateScanning();
      return;
    }
    if (was === "poweredOn") {
      // The adapter went away: every link is gone with it. Reconnect when it is back.
      for (const e of this.entries) this.endSession(e);
    }
    for (const e of this.entries) {
      if (e.phase !== "closing") e.phase = "resolving";
    }
    this.broadcastAdapterState();
    if (reopensWhenDown(this.settings, state) && state !== "unknown" && state !== "resetting") this.scheduleReopen();
  }

  /** The transport found out why it is not usable (bluez: after checking the system bus). */
  private onTransportProblemChanged(): void {
    this.emit("state", this.state);
    if (this.adapterState !== "poweredOn") this.broadcastAdapterState();
  }

  /**
   * A serial adapter that closed or never came up (a dongle unplugged, a USB reset) is opened again, with backoff,
   * until it answers.
   * noble's UART driver only retries while the port shows in the system's port list, for a few seconds; reopening
   * the whole transport works for any serial device and never gives up while a node uses the adapter.
   */
  private scheduleReopen(): void {
    if (this.reopenTimer || this.closing) return;
    const backoff = Math.min(this.policy.reconnectDelay * 2 ** this.reopenAttempt, this.policy.maxReconnectDelay);
    // An adapter still starting up gets at least a connect timeout before it is judged.
    const delay = this.adapterState === "unknown" ? Math.max(backoff, this.policy.connectTimeout) : backoff;
    this.reopenAttempt++;
    this.reopenTimer = this.timers.setTimeout(() => {
      this.reopenTimer = null;
      // A transport that could not be opened at all (an absent HCI adapter) is always tried again.
      if (this.closing || (this.opened && !reopensWhenDown(this.settings, this.adapterState))) return;
      const released = this.opened?.close() ?? Promise.resolve();
      this.opened = null;
      this.openError = null;
      this.adapterState = "unknown";
      this.scanning = false;
      this.connectBusy = false;
      for (const e of this.entries) {
        // Peripheral objects belong to the closed noble instance: find the devices again on the new one.
        e.unwatch();
        e.peripheral = null;
        if (e.phase !== "closing") e.phase = "resolving";
      }
      // The new open waits until the old transport has let go of the device: a serial port is locked while open, and
      // opened again too early it would report "in use" instead of the real reason.
      const releasing: Promise<void> = released.then(
        () => this.reopen(releasing),
        () => this.reopen(releasing),
      );
      this.releasing = releasing;
    }, delay);
  }

  private reopen(releasing: Promise<void>): void {
    if (this.releasing === releasing) this.releasing = null;
    if (this.closing) return;
    this.ensureOpen();
    if (this.openError) {
      // The error stays until the next attempt (so the problem is still told, and nothing opens outside the backoff).
      this.broadcastAdapterState();
      this.scheduleReopen();
    }
  }

  private broadcastAdapterState(): void {
    const problem = this.problem;
    const state: LeaseState = { state: "adapter", problem };
    for (const l of this.leases) l.setState(state);
  }

  lease(options: LeaseOptions): Lease {
    this.ensureOpen();
    const lease = new LeaseImpl(options, this);
    this.leases.add(lease);
    let entry = [...this.entries].find((e) => e.phase !== "closing" && sameSelector(e.selector, options.selector));
    if (!entry && options.selector.address) {
      const address = options.selector.address.toLowerCase();
      entry = [...this.entries].find((e) => e.phase !== "closing" && e.address === address);
    }
    if (!entry) {
      entry = new DeviceEntry(options.selector, this);
      this.entries.add(entry);
    }
    this.join(lease, entry);
    if (this.adapterState !== "poweredOn") this.broadcastAdapterState();
    else if (!(entry.phase === "connected" && entry.session)) this.kick(entry);
    return lease;
  }

  async releaseLease(lease: LeaseImpl): Promise<void> {
    this.leases.delete(lease);
    const entry = [...this.entries].find((e) => e.leases.has(lease));
    if (entry) {
      entry.leases.delete(lease);
      if (entry.leases.size === 0) await this.dropEntry(entry);
      // A lease whose setup was still pending no longer keeps the others' link from counting as up.
      else if (entry.session) this.armBackoffReset(entry, entry.session);
    }
    this.updateScanning();
    this.processQueue();
    await this.maybeClose();
  }

  /** Scan for a bounded time, reporting every peripheral seen (for the editor's Scan button). */
  async scan(durationMs: number): Promise<PeripheralInfo[]> {
    // A closed adapter must not be reopened by ensureOpen(): it is out of the registry and nobody would close it.
    if (this.closing) throw new BleProblemError({ key: "adapter-closed", params: {} });
    this.ensureOpen();
    // `problem` is null while noble's state is still unknown, and set at once when the transport failed to open.
    if (this.problem) throw new BleProblemError(this.problem);
    const seen = new Map<string, PeripheralInfo>();
    const listener = (p: Peripheral): void => {
      seen.set(p.address.toLowerCase(), infoOf(p));
    };
    this.scanListeners.add(listener);
    this.updateScanning();
    await new Promise<void>((resolve) => this.timers.setTimeout(resolve, durationMs));
    this.scanListeners.delete(listener);
    this.updateScanning();
    // An adapter that failed while scanning (or never powered on) found nothing: say why rather than "no devices".
    if (this.problem) throw new BleProblemError(this.problem);
    for (const e of this.entries) if (e.peripheral) seen.set(e.peripheral.address.toLowerCase(), infoOf(e.peripheral));
    return [...seen.values()];
  }

  private onDiscover(p: Peripheral): void {
    for (const l of this.scanListeners) l(p);
    for (const e of this.entries) {
      if (e.phase !== "resolving") continue;
      const known = e.peripheral;
      if (known ? known.id === p.id : matches(e.selector, p)) {
        if (!known) {
          // Another entry may already hold this peripheral (e.g. one node by address, one by name): join it.
          const holder = [...this.entries].find((o) => o !== e && o.peripheral?.id === p.id && o.phase !== "closing");
          if (holder) {
            this.merge(e, holder);
            continue;
          }
          e.watch(p);
        }
        e.phase = "queued";
        e.cancelRetry();
      }
    }
    this.processQueue();
    this.updateScanning();
  }

  /** `from`'s leases join `into`, the entry that already holds their peripheral. */
  private merge(from: DeviceEntry, into: DeviceEntry): void {
    this.entries.delete(from);
    for (const l of from.leases) this.join(l, into);
    from.leases.clear();
  }

  /**
   * A lease joins an entry: on a connected link it runs its setup at once; otherwise it takes the state the
   * entry's other leases show (connecting, waiting for a slot, reconnecting in N s), which is its own from now on.
   */
  private join(lease: LeaseImpl, entry: DeviceEntry): void {
    const current = [...entry.leases][0]?.state;
    entry.leases.add(lease);
    if (entry.phase === "connected" && entry.session) this.runSetup(entry, lease, entry.session);
    else if (current) lease.setState(current);
  }

  /**
   * Put an entry on its way to a connection: scan if its peripheral is unknown, else queue. An entry in backoff
   * waits for its retry timer, whoever joins it meanwhile.
   */
  private kick(entry: DeviceEntry): void {
    if (entry.phase === "closing" || entry.phase === "connected" || entry.phase === "connecting" || entry.phase === "backoff") return;
    if (this.adapterState !== "poweredOn") return;
    entry.phase = entry.peripheral ? "queued" : "resolving";
    if (entry.phase === "resolving") entry.broadcast({ state: "scanning" });
    this.processQueue();
    this.updateScanning();
  }

  private updateScanning(): void {
    const noble = this.noble;
    if (!noble || this.adapterState !== "poweredOn" || this.closing) return;
    const wanted = !this.connectBusy && (this.scanListeners.size > 0 || [...this.entries].some((e) => e.phase === "resolving" && e.leases.size > 0));
    if (wanted && !this.scanning) {
      this.scanning = true;
      // Duplicates on: a peripheral that comes back must be reported again, not only the first time noble saw it.
      noble.startScanning([], true);
    } else if (!wanted && this.scanning) {
      this.scanning = false;
      noble.stopScanning();
    }
  }

  private processQueue(): void {
    if (this.connectBusy || this.adapterState !== "poweredOn" || this.closing) return;
    const queued = [...this.entries].filter((e) => e.phase === "queued" && e.leases.size > 0);
    if (queued.length === 0) return;
    const inUse = [...this.entries].filter((e) => e.phase === "connected").length;
    if (inUse >= this.policy.maxConnections) {
      for (const e of queued) e.broadcast({ state: "waiting-slot", inUse, max: this.policy.maxConnections });
      return;
    }
    const next = queued[0];
    void this.connect(next);
  }

  private async connect(entry: DeviceEntry): Promise<void> {
    const p = entry.peripheral;
    if (!p) return;
    this.connectBusy = true;
    entry.phase = "connecting";
    this.updateScanning();
    const address = p.address.toLowerCase();
    entry.broadcast({ state: "connecting", address });
    // The largest MTU a lease asks for (23 included: a node that asks for 23 gets 23); none: the default.
    const asked = [...entry.leases].flatMap((l) => (l.options.mtu === undefined ? [] : [l.options.mtu]));
    const requestedMtu = asked.length > 0 ? Math.max(23, ...asked) : DEFAULT_REQUESTED_MTU;
    try {
      const connectParams: ConnectParams = { mtu: requestedMtu };
      // A cancelled attempt can still complete: noble resets the controller before connecting, so our
      // LE Create Connection Cancel may reach it first and be refused. Such a link is adopted, not redialled.
      if (p.state !== "connected") await withTimeout(
        (p.connectAsync as (options?: ConnectParams) => Promise<void>).call(p, connectParams),
        this.policy.connectTimeout,
        `connecting to ${address}`,
        () => p.cancelConnect(),
        this.timers,
      );
      if (entry.phase !== "connecting") throw new Error("released while connecting");
      const { services } = await withTimeout(
        p.discoverAllServicesAndCharacteristicsAsync(),
        this.policy.gattTimeout,
        `service discovery on ${address}`,
        undefined,
        this.timers,
      );
      if (entry.phase !== "connecting") throw new Error("released while connecting");
      const session = new Session(p, services, this.policy.gattTimeout, this.timers);
      entry.session = session;
      entry.phase = "connected";
      this.connectBusy = false;
      this.processQueue();
      this.updateScanning();
      for (const l of entry.leases) this.runSetup(entry, l, session);
    } catch (error) {
      const reason = error instanceof TimeoutError ? "timeout during connection" : error instanceof Error ? error.message : String(error);
      if (entry.closing || entry.leases.size === 0) {
        // Released while connecting, and the cancel came too late: the link is up all the same, and nobody holds it.
        // It is closed before the next connection starts (a connected peripheral does not advertise, so no other
        // lease could find it and adopt it).
        if (p.state === "connected") await this.disconnectPeripheral(p);
        this.connectBusy = false;
        this.processQueue();
        this.updateScanning();
        return;
      }
      this.connectBusy = false;
      // A connection that came up but failed discovery must not linger.
      if (p.state === "connected") await this.disconnectPeripheral(p);
      this.scheduleRetry(entry, reason, false);
      this.processQueue();
      this.updateScanning();
    }
  }

  /** A lease is "connected" once its own setup (discovery, subscriptions) has succeeded on the shared link. */
  private runSetup(entry: DeviceEntry, lease: LeaseImpl, session: Session): void {
    lease.session = session;
    lease.options.onConnected(session).then(
      () => {
        if (session.signal.aborted || lease.released) return;
        lease.setUpOn = session;
        this.armBackoffReset(entry, session);
        const info = session.info;
        lease.setState({ state: "connected", address: info.address, name: info.name, simulated: this.simulation !== null });
      },
      (error: unknown) => {
        if (session.signal.aborted || lease.released) return;
        const text = error instanceof Error ? error.message : String(error);
        // Setup failures drop the connection: see LeaseOptions.onConnected.
        this.endSession(entry);
        const p = entry.peripheral;
        if (p) void this.disconnectPeripheral(p);
        this.scheduleRetry(entry, text, true);
      },
    );
  }

  /**
   * The backoff starts again from reconnectDelay only once every lease's setup has succeeded on the link *and*
   * the link has then stayed up for reconnectDelay: a device that accepts the link and then fails setup, or drops
   * it at once (as devices that demand bonding do), is retried ever more slowly, not every reconnectDelay forever.
   * Called whenever a lease's setup succeeds or a lease leaves a connected entry; the timer ends with the session.
   */
  private armBackoffReset(entry: DeviceEntry, session: Session): void {
    const allSetUp = (): boolean => entry.session === session && !session.signal.aborted && [...entry.leases].every((l) => l.setUpOn === session);
    if (entry.resetTimer || !allSetUp()) return;
    const ended = (): void => {
      timer.cancel();
      entry.resetTimer = null;
    };
    const timer = this.timers.setTimeout(() => {
      entry.resetTimer = null;
      session.signal.removeEventListener("abort", ended);
      // A lease that joined meanwhile and is still setting up re-arms this when its setup succeeds.
      if (allSetUp()) entry.attempt = 0;
    }, this.policy.reconnectDelay);
    entry.resetTimer = timer;
    session.signal.addEventListener("abort", ended, { once: true });
  }

  private scheduleRetry(entry: DeviceEntry, reason: string, isError: boolean): void {
    entry.attempt++;
    const delay = Math.min(this.policy.reconnectDelay * 2 ** (entry.attempt - 1), this.policy.maxReconnectDelay);
    entry.phase = "backoff";
    entry.broadcast(isError ? { state: "error", text: reason, retryInMs: delay } : { state: "reconnecting", retryInMs: delay, reason });
    entry.cancelRetry();
    entry.retryTimer = this.timers.setTimeout(() => {
      entry.retryTimer = null;
      if (entry.phase !== "backoff") return;
      entry.phase = "queued";
      this.kick(entry);
    }, delay);
  }

  /** noble reported the link gone. */
  handleDisconnect(entry: DeviceEntry, reason: unknown): void {
    if (entry.phase !== "connected") return;
    this.endSession(entry);
    if (entry.leases.size === 0) return;
    const text = typeof reason === "number" && reason === 0x08 ? "connection lost (supervision timeout)" : `disconnected (${String(reason)})`;
    this.scheduleRetry(entry, text, false);
    this.processQueue();
  }

  private endSession(entry: DeviceEntry): void {
    const session = entry.session;
    entry.session = null;
    if (entry.phase === "connected" || entry.phase === "connecting") entry.phase = "resolving";
    if (!session) return;
    session.end();
    for (const l of entry.leases) {
      if (l.session === session) {
        l.session = null;
        l.options.onDisconnected?.();
      }
    }
  }

  private async disconnectPeripheral(p: Peripheral): Promise<void> {
    if (p.state !== "connected" && p.state !== "connecting") return;
    if (p.state === "connecting") {
      p.cancelConnect();
      return;
    }
    await withTimeout(p.disconnectAsync(), this.policy.gattTimeout, `disconnecting ${p.address}`, undefined, this.timers).catch(() => undefined);
  }

  private dropEntry(entry: DeviceEntry): Promise<void> {
    const drop = this.disconnectEntry(entry);
    this.drops.add(drop);
    return drop.finally(() => this.drops.delete(drop));
  }

  private async disconnectEntry(entry: DeviceEntry): Promise<void> {
    const wasConnected = entry.phase === "connected" || entry.phase === "connecting";
    entry.phase = "closing";
    entry.cancelRetry();
    this.entries.delete(entry);
    const session = entry.session;
    entry.session = null;
    session?.end();
    const p = entry.peripheral;
    entry.unwatch();
    if (p && wasConnected) await this.disconnectPeripheral(p);
  }
}

function sameSelector(a: DeviceSelector, b: DeviceSelector): boolean {
  return (
    (a.address ?? "").toLowerCase() === (b.address ?? "").toLowerCase() &&
    (a.name ?? "") === (b.name ?? "") &&
    (a.namePrefix ?? "") === (b.namePrefix ?? "") &&
    normalizeUuid(a.service ?? "") === normalizeUuid(b.service ?? "")
  );
}

const registry = new Map<string, BleAdapter>();

/**
 * The adapter for these settings, shared by every config node that names the same adapter.
 * The first user's policy applies; the caller holds a reference until it calls unref().
 */
export function acquireAdapter(settings: TransportSettings, policy: PoolPolicy): BleAdapter {
  const key = adapterKey(settings);
  let adapter = registry.get(key);
  if (!adapter) {
    adapter = new BleAdapter(settings, policy);
    registry.set(key, adapter);
  }
  adapter.ref();
  return adapter;
}

/** Adapters currently open (for tests that check nothing leaks). */
export function openAdapterCount(): number {
  return registry.size;
}
