/**
 * The pool: one BleAdapter per adapter identity (./registry.ts), and on each adapter one DeviceLink per peripheral
 * (./device-link.ts), leased by the nodes that use it (./lease.ts) and reference-counted. The adapter keeps its
 * transport up (./transport-life.ts), runs one scan of the controller for every lease that waits for its peripheral
 * (./selector.ts) and every advertisement watcher (ble-scan nodes), passive when nobody needs scan responses, and
 * connects one peripheral at a time, bounded by maxConnections and timed out (noble has no timeouts); a link that
 * fails or drops is retried with backoff while any lease holds it. A connected link's GATT session is ./session.ts.
 *
 * About 500 lines: the scanner, the connect queue and the lease bookkeeping act on one set of links and one
 * noble instance, and read best together; every state machine they drive has its own file.
 */
import { EventEmitter } from "node:events";
import type { Noble, Peripheral } from "@stoprocent/noble";
import type { Timers } from "../protocol/clock";
import { HCI_CONNECTION_TIMEOUT } from "../protocol/hci";
import type { ScanType } from "../protocol/scan-parameters";
import { adapterKey, describeTransport, openAdapter, type AdapterDescription, type OpenAdapter, type TransportSettings } from "./adapter";
import { DeviceLink, type BackoffPolicy } from "./device-link";
import { exploreDevice, type ExploreResult } from "./explore";
import { LeaseImpl, type Lease, type LeaseHost, type LeaseOptions, type LeaseState } from "./lease";
import { BleProblemError, problemOf, type BleProblem } from "./problem";
import { infoOf, matches, sameSelector, type DeviceSelector, type PeripheralInfo } from "./selector";
import { closeLink, openSession, type DeviceSession, type Session } from "./session";
import { realTimers, TimeoutError } from "./timeout";
import { TransportLife, type OpenTransport } from "./transport-life";

// What the node layer takes from the pool, from the modules that define it (node files import "./ble/pool").
export type { ConnectionPolicy, Lease, LeaseOptions, LeaseState, UseOptions } from "./lease";
export type { DeviceSelector, PeripheralInfo } from "./selector";
export { matches } from "./selector";
export type { DeviceSession, GattService } from "./session";
export type { ExploreResult } from "./explore";

export interface PoolPolicy extends BackoffPolicy {
  maxConnections: number;
  connectTimeout: number;
  reconnectDelay: number;
  /** Upper bound of the reconnect backoff. */
  maxReconnectDelay: number;
  /** Timeout of each GATT operation (discovery, subscribe, read, write, disconnect). */
  gattTimeout: number;
}

export const DEFAULT_POLICY: PoolPolicy = { maxConnections: 4, connectTimeout: 5000, reconnectDelay: 1000, maxReconnectDelay: 30000, gattTimeout: 5000 };

/** Lease.use() waits this much longer than a connection and its discovery may take, by default. */
const USE_MARGIN_MS = 1000;

/** The MTU asked for when no lease names one (noble 2.8's own default, asked explicitly so it is known). */
const DEFAULT_REQUESTED_MTU = 256;

/** Why a link dropped, from noble's disconnect reason (an HCI reason code over HCI). */
function disconnectProblem(reason: unknown): BleProblem {
  return reason === HCI_CONNECTION_TIMEOUT ? { key: "link-timeout", params: {} } : { key: "disconnected", params: { reason: String(reason) } };
}

/** A receiver of advertising reports (a ble-scan node, the editor's scan). */
interface Watcher {
  readonly active: boolean;
  readonly onReport: (p: Peripheral) => void;
}

/** What an adapter runs on. Tests give a fake noble and a manual clock; everything else uses the defaults. */
export interface AdapterDeps {
  open?: OpenTransport;
  timers?: Timers;
  /** Called as the adapter starts closing, once (the registry forgets it then). */
  onClose?: (adapter: BleAdapter) => void;
}

/** One adapter: its transport (./transport-life.ts), its scanner, its connection queue and its peripherals. */
export class BleAdapter extends EventEmitter {
  readonly key: string;
  readonly description: AdapterDescription;
  private readonly transport: TransportLife;
  private readonly entries = new Set<DeviceLink>();
  private readonly leases = new Set<LeaseImpl>();
  private refs = 0;
  /** Whether we asked noble to scan (and have not asked it to stop since). */
  private scanning = false;
  /** The type the current scan was started with. */
  private scanType: ScanType = "active";
  /** A connection is being made (discovery included): the next one waits. */
  private connectBusy = false;
  /**
   * LE Create Connection is pending. noble's HCI stack stops the scan before it initiates (and resets the controller
   * first when no other link is up), so there is no scanning until the link is up or the attempt has failed.
   */
  private initiating = false;
  private closing: Promise<void> | null = null;
  private readonly watchers = new Set<Watcher>();
  private readonly drops = new Set<Promise<void>>();
  /** Links being closed while their entry stays (idle, or msg.disconnect): no connection to them until it is done. */
  private readonly closingLinks = new Map<DeviceLink, Promise<void>>();
  private readonly timers: Timers;
  /** Leases' setups (onConnected) still running on each session (absent: none). */
  private readonly setupsRunning = new WeakMap<DeviceSession, number>();
  private readonly host: LeaseHost;
  private readonly onClose: ((adapter: BleAdapter) => void) | undefined;

  constructor(
    readonly settings: TransportSettings,
    readonly policy: PoolPolicy,
    deps: AdapterDeps = {},
  ) {
    super();
    this.timers = deps.timers ?? realTimers;
    this.onClose = deps.onClose;
    this.host = {
      timers: this.timers,
      useTimeoutMs: policy.connectTimeout + policy.gattTimeout + USE_MARGIN_MS,
      release: (l) => this.releaseLease(l),
      reconsider: (l) => {
        const entry = this.entryOf(l);
        if (entry) this.reconsider(entry);
      },
      disconnect: (l) => this.disconnectLease(l),
      setupsSettled: (session) => !this.setupsRunning.get(session),
    };
    this.key = adapterKey(settings);
    this.description = describeTransport(settings);
    this.transport = new TransportLife(settings, policy, deps.open ?? openAdapter, this.timers, {
      opened: (noble) => {
        noble.on("warning", (message: string) => this.emit("warning", message));
        noble.on("discover", (p: Peripheral) => this.onDiscover(p));
        noble.on("scanStop", () => {
          this.scanning = false;
          this.updateScanning();
        });
      },
      stateChanged: (state, was) => this.onStateChange(state, was),
      problemChanged: () => {
        this.emit("state", this.state);
        if (!this.transport.poweredOn) this.broadcastAdapterState();
      },
      reopening: () => {
        this.scanning = false;
        this.connectBusy = false;
        this.initiating = false;
        for (const e of this.entries) {
          // Peripheral objects belong to the closed noble instance: find the devices again on the new one.
          e.unwatch();
          e.peripheral = null;
          if (e.phase !== "closing") e.transition("resolving");
        }
      },
    });
  }

  get noble(): Noble | null {
    return this.transport.noble;
  }

  get simulation(): OpenAdapter["simulation"] {
    return this.transport.simulation;
  }

  /** noble's adapter state, or "error" when the transport could not be opened. */
  get state(): string {
    return this.transport.state;
  }

  /** Why the adapter is not usable, else null. */
  get problem(): BleProblem | null {
    return this.transport.problem;
  }

  get connectedCount(): number {
    let n = 0;
    for (const e of this.entries) if (e.holdsSlot) n++;
    return n;
  }

  ref(): void {
    this.refs++;
    this.transport.ensureOpen();
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
    this.onClose?.(this);
    this.transport.stop();
    // Disconnects already under way (a node released its lease just before) must finish before noble stops,
    // or their Disconnection Complete never arrives.
    const disconnects = [...this.drops, ...this.closingLinks.values(), ...[...this.entries].map((e) => this.dropEntry(e))];
    await Promise.all(disconnects);
    // Waits for the transport to let go of the device (a serial port still opening included): a config node
    // deployed again at once must find its port free.
    const released = this.transport.release();
    this.watchers.clear();
    this.removeAllListeners();
    await released;
  }

  /** The adapter's state changed (noble's, or the transport failed to open). */
  private onStateChange(state: string, was: string): void {
    this.emit("state", this.state);
    if (state === "poweredOn") {
      this.scanning = false;
      for (const e of this.entries) this.kick(e);
      this.updateScanning();
      return;
    }
    if (was === "poweredOn") {
      // The adapter went away: every link is gone with it. Reconnect when it is back.
      for (const e of this.entries) e.endSession();
    }
    for (const e of this.entries) if (e.phase !== "closing") e.transition("resolving");
    this.broadcastAdapterState();
  }

  private broadcastAdapterState(): void {
    const state: LeaseState = { state: "adapter", problem: this.transport.problem };
    for (const l of this.leases) l.setState(state);
  }

  lease(options: LeaseOptions): Lease {
    this.transport.ensureOpen();
    const lease = new LeaseImpl(options, this.host);
    this.leases.add(lease);
    let entry = [...this.entries].find((e) => e.phase !== "closing" && sameSelector(e.selector, options.selector));
    if (!entry && options.selector.address) {
      const address = options.selector.address.toLowerCase();
      entry = [...this.entries].find((e) => e.phase !== "closing" && e.address === address);
    }
    if (!entry) {
      entry = new DeviceLink(options.selector, this.policy, this.timers);
      this.entries.add(entry);
    }
    this.join(lease, entry);
    if (!this.transport.poweredOn) this.broadcastAdapterState();
    else if (!(entry.phase === "connected" && entry.session)) {
      if (needsLink(entry)) this.kick(entry);
      else if (entry.phase !== "connecting") lease.setState({ state: "idle" });
    }
    return lease;
  }

  private entryOf(lease: LeaseImpl): DeviceLink | undefined {
    return [...this.entries].find((e) => e.leases.has(lease));
  }

  /**
   * What the leases want of a link changed (a use() began, an idle time ran out, a lease left): connect a link that
   * is needed, let go of one that no lease keeps.
   */
  private reconsider(entry: DeviceLink): void {
    if (!this.entries.has(entry) || entry.phase === "closing") return;
    if (needsLink(entry)) {
      if (!(entry.phase === "connected" && entry.session)) this.kick(entry);
      return;
    }
    if (keepsLink(entry)) return;
    if (entry.phase === "connected") void this.closeIdle(entry, null);
    else if (entry.phase !== "connecting") {
      // Scanning, queued or backing off for a link nobody needs any more: stop looking (connect() lets go of a link
      // that comes up unwanted).
      entry.broadcast({ state: "idle" });
      this.updateScanning();
    }
  }

  /**
   * Closes an entry's link while the entry stays (its leases are still held): every lease on it is told the session
   * ended and shows `state` (null: "idle" once the link is down); once it is down, a link still needed is connected
   * again at once.
   */
  private closeIdle(entry: DeviceLink, state: LeaseState | null): Promise<void> {
    const running = this.closingLinks.get(entry);
    if (running) return running;
    const p = entry.peripheral;
    entry.endSession();
    // Known: no scan for it; the connect queue passes it over until the link is down.
    if (p) entry.transition("queued");
    if (state) entry.broadcast(state);
    const closing = (p ? closeLink(p, this.policy.gattTimeout, this.timers) : Promise.resolve()).finally(() => {
      this.closingLinks.delete(entry);
      if (!this.entries.has(entry) || entry.phase === "closing") return;
      if (needsLink(entry)) this.kick(entry);
      else entry.broadcast({ state: "idle" });
      this.processQueue();
      this.updateScanning();
    });
    this.closingLinks.set(entry, closing);
    this.processQueue();
    return closing;
  }

  /** msg.disconnect: the lease's link goes down once; leases that need it see it come back at once. */
  private async disconnectLease(lease: LeaseImpl): Promise<void> {
    const entry = this.entryOf(lease);
    if (!entry) return;
    const running = this.closingLinks.get(entry);
    if (running) return running;
    if (entry.phase !== "connected") return;
    await this.closeIdle(entry, { state: "reconnecting", retryInMs: 0, reason: { key: "disconnect-asked", params: {} } });
  }

  private async releaseLease(lease: LeaseImpl): Promise<void> {
    this.leases.delete(lease);
    const entry = [...this.entries].find((e) => e.leases.has(lease));
    if (entry) {
      entry.leases.delete(lease);
      if (entry.leases.size === 0) {
        const closing = this.closingLinks.get(entry);
        if (closing) await closing;
        await this.dropEntry(entry);
      } else {
        // A lease whose setup was still pending no longer keeps the others' link from counting as up.
        if (entry.session) entry.armBackoffReset(entry.session);
        // It may have been the one lease that kept the link.
        this.reconsider(entry);
      }
    }
    this.updateScanning();
    this.processQueue();
    await this.maybeClose();
  }

  /**
   * Whether this adapter's scans can be passive: over HCI (a socket, a serial controller, the simulator) our driver
   * wrapper sets the scan type; BlueZ over D-Bus and the systems' own stacks (macOS, Windows) always scan actively.
   */
  get canScanPassively(): boolean {
    const t = this.settings.transport;
    return t === "hci" || t === "uart" || t === "simulator";
  }

  /** The type of the scan running now, null when the adapter is not scanning. */
  get currentScanType(): ScanType | null {
    if (!this.scanning) return null;
    return this.transport.scanType ? this.scanType : "active";
  }

  /**
   * Receives every advertising report of this adapter until the returned function is called. All watchers, the
   * editor's scan and the pool's own scans for peripherals share one scan of the controller, passive unless a
   * watcher asks for `active` (scan responses: names, more services) or a lease is looking for its peripheral.
   * Watching never disturbs a connection; a connection being made pauses the scan only while the
   * controller initiates it. `onReport` is called from noble's event: it must return quickly and never throw.
   */
  watchAdvertisements(options: { active: boolean }, onReport: (p: Peripheral) => void): () => void {
    // A closed adapter must not be reopened by ensureOpen(): it is out of the registry and nobody would close it.
    if (this.closing) throw new BleProblemError({ key: "adapter-closed", params: {} });
    this.transport.ensureOpen();
    const watcher: Watcher = { active: options.active, onReport };
    this.watchers.add(watcher);
    this.updateScanning();
    return () => {
      if (!this.watchers.delete(watcher)) return;
      this.updateScanning();
    };
  }

  /** Scan for a bounded time, reporting every peripheral seen (for the editor's Scan button). */
  async scan(durationMs: number): Promise<PeripheralInfo[]> {
    // A closed adapter must not be reopened by ensureOpen(): it is out of the registry and nobody would close it.
    if (this.closing) throw new BleProblemError({ key: "adapter-closed", params: {} });
    this.transport.ensureOpen();
    // `problem` is null while noble's state is still unknown, and set at once when the transport failed to open.
    if (this.problem) throw new BleProblemError(this.problem);
    const seen = new Map<string, PeripheralInfo>();
    // Active: the editor lists names, which are often in the scan response only.
    const unwatch = this.watchAdvertisements({ active: true }, (p) => {
      seen.set(p.address.toLowerCase(), infoOf(p));
    });
    await new Promise<void>((resolve) => this.timers.setTimeout(resolve, durationMs));
    unwatch();
    // An adapter that failed while scanning (or never powered on) found nothing: say why rather than "no devices".
    if (this.problem) throw new BleProblemError(this.problem);
    for (const e of this.entries) if (e.peripheral) seen.set(e.peripheral.address.toLowerCase(), infoOf(e.peripheral));
    return [...seen.values()];
  }

  /**
   * The GATT table of the device `selector` names (for the editor's Explore button), within `timeoutMs`: read from
   * a flow's live link to it if there is one, else through a temporary lease (./explore.ts).
   */
  async explore(selector: DeviceSelector, timeoutMs: number): Promise<ExploreResult> {
    if (this.closing) throw new BleProblemError({ key: "adapter-closed", params: {} });
    this.transport.ensureOpen();
    if (this.problem) throw new BleProblemError(this.problem);
    return exploreDevice(this, selector, timeoutMs, this.timers);
  }

  /** The session of a connected link to the device `selector` names, if a lease holds one. */
  liveSession(selector: DeviceSelector): DeviceSession | null {
    for (const e of this.entries) {
      if (e.phase === "connected" && e.session && !e.session.signal.aborted && e.peripheral && matches(selector, e.peripheral)) return e.session;
    }
    return null;
  }

  private onDiscover(p: Peripheral): void {
    for (const w of this.watchers) {
      try {
        w.onReport(p);
      } catch (error) {
        // A watcher's mistake must not keep the report from the others, nor from the pool's own scans.
        this.emit("warning", `advertisement watcher failed: ${error instanceof Error ? error.message : String(error)}`);
      }
    }
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
          e.watch(p, (reason) => this.handleDisconnect(e, reason));
        }
        e.transition("queued");
      }
    }
    this.processQueue();
    this.updateScanning();
  }

  /** `from`'s leases join `into`, the entry that already holds their peripheral. */
  private merge(from: DeviceLink, into: DeviceLink): void {
    this.entries.delete(from);
    for (const l of from.leases) this.join(l, into);
    from.leases.clear();
  }

  /**
   * A lease joins an entry: on a connected link it runs its setup at once; otherwise it takes the state the
   * entry's other leases show (connecting, waiting for a slot, reconnecting in N s), which is its own from now on.
   */
  private join(lease: LeaseImpl, entry: DeviceLink): void {
    const current = [...entry.leases].find((l) => l !== lease)?.state;
    entry.leases.add(lease);
    if (entry.phase === "connected" && entry.session) this.runSetup(entry, lease, entry.session);
    else if (current) lease.setState(current);
  }

  /**
   * Put an entry on its way to a connection: scan if its peripheral is unknown, else queue. An entry in backoff
   * waits for its retry timer, whoever joins it meanwhile.
   */
  private kick(entry: DeviceLink): void {
    if (entry.phase !== "resolving" && entry.phase !== "queued") return;
    if (!this.transport.poweredOn) return;
    if (!needsLink(entry)) {
      entry.broadcast({ state: "idle" });
      return;
    }
    entry.transition(entry.peripheral ? "queued" : "resolving");
    if (entry.phase === "resolving") entry.broadcast({ state: "scanning" });
    this.processQueue();
    this.updateScanning();
  }

  /**
   * Passive, unless a watcher wants an active scan or a lease is looking for its peripheral: a name (which selects
   * a peripheral and which device nodes report), and services that did not fit, are often only in the scan
   * response, which only an active scan asks for.
   */
  private wantedScanType(): ScanType {
    for (const w of this.watchers) if (w.active) return "active";
    for (const e of this.entries) if (e.phase === "resolving" && needsLink(e)) return "active";
    return "passive";
  }

  private updateScanning(): void {
    const noble = this.noble;
    if (!noble || !this.transport.poweredOn || this.closing) return;
    const wanted = !this.initiating && (this.watchers.size > 0 || [...this.entries].some((e) => e.phase === "resolving" && needsLink(e)));
    const scanType = this.transport.scanType;
    const type = this.wantedScanType();
    if (this.scanning && (!wanted || (scanType && type !== this.scanType))) {
      // Another type: the controller takes new parameters only while it does not scan, so stop, then start again.
      // noble's HCI stack ignores a start while its stop is not yet confirmed; its scanStop then starts it again.
      this.scanning = false;
      noble.stopScanning();
    }
    if (wanted && !this.scanning) {
      this.scanning = true;
      this.scanType = type;
      // noble sends Scan Enable (off), Scan Parameters (our driver wrapper sets their type), Scan Enable (on).
      if (scanType) scanType.type = type;
      // Duplicates on: a peripheral that comes back must be reported again, not only the first time noble saw it.
      noble.startScanning([], true);
    }
  }

  private processQueue(): void {
    if (this.connectBusy || !this.transport.poweredOn || this.closing) return;
    const queued = [...this.entries].filter((e) => e.phase === "queued" && needsLink(e) && !this.closingLinks.has(e));
    if (queued.length === 0) return;
    const inUse = [...this.entries].filter((e) => e.phase === "connected").length;
    if (inUse >= this.policy.maxConnections) {
      for (const e of queued) e.broadcast({ state: "waiting-slot", inUse, max: this.policy.maxConnections });
      return;
    }
    const next = queued[0];
    void this.connect(next);
  }

  private async connect(entry: DeviceLink): Promise<void> {
    const p = entry.peripheral;
    if (!p) return;
    this.connectBusy = true;
    entry.transition("connecting");
    const address = p.address.toLowerCase();
    entry.broadcast({ state: "connecting", address });
    // The largest MTU a lease asks for (23 included: a node that asks for 23 gets 23); none: the default.
    const asked = [...entry.leases].flatMap((l) => (l.options.mtu === undefined ? [] : [l.options.mtu]));
    const requestedMtu = asked.length > 0 ? Math.max(23, ...asked) : DEFAULT_REQUESTED_MTU;
    this.initiating = true;
    this.updateScanning();
    // The scan resumes as soon as the controller no longer initiates: the link is up (discovery runs beside it).
    const linked = (): void => {
      if (!this.initiating) return;
      this.initiating = false;
      this.updateScanning();
    };
    try {
      const session = await openSession(p, requestedMtu, this.policy, this.timers, () => entry.phase === "connecting", linked);
      entry.session = session;
      entry.transition("connected");
      this.connectBusy = false;
      this.processQueue();
      this.updateScanning();
      for (const l of entry.leases) this.runSetup(entry, l, session);
      // Every use() that wanted it gave up meanwhile (and its idle time ran out): the link is let go again.
      if (!keepsLink(entry)) this.reconsider(entry);
    } catch (error) {
      linked();
      const reason: BleProblem = error instanceof TimeoutError ? { key: "connect-timeout", params: {} } : problemOf(error);
      if (entry.phase === "closing" || entry.leases.size === 0) {
        // Released while connecting, and the cancel came too late: the link is up all the same, and nobody holds it.
        // It is closed before the next connection starts (a connected peripheral does not advertise, so no other
        // lease could find it and adopt it).
        if (p.state === "connected") await closeLink(p, this.policy.gattTimeout, this.timers);
        this.connectBusy = false;
        this.processQueue();
        this.updateScanning();
        return;
      }
      this.connectBusy = false;
      // A connection that came up but failed discovery must not linger.
      if (p.state === "connected") await closeLink(p, this.policy.gattTimeout, this.timers);
      // Released meanwhile: dropEntry has taken it out.
      if (!this.entries.has(entry)) return;
      if (!needsLink(entry)) {
        // Nobody needs the link any more (idle leases only, none in use): no retry; the next use() tries again.
        entry.transition("resolving");
        entry.broadcast({ state: "idle" });
        this.processQueue();
        this.updateScanning();
        return;
      }
      this.scheduleRetry(entry, { state: "reconnecting", retryInMs: 0, reason });
      this.processQueue();
      this.updateScanning();
    }
  }

  /** A lease is "connected" once its own setup (discovery, subscriptions) has succeeded on the shared link. */
  private runSetup(entry: DeviceLink, lease: LeaseImpl, session: Session): void {
    this.setupsRunning.set(session, (this.setupsRunning.get(session) ?? 0) + 1);
    const settled = (): void => {
      const left = (this.setupsRunning.get(session) ?? 1) - 1;
      if (left > 0) this.setupsRunning.set(session, left);
      else this.setupsRunning.delete(session);
      // use() calls waiting for the others' setups go on (after markSetUp below, for this lease's own).
      if (left === 0) queueMicrotask(() => {
        for (const l of entry.leases) l.recheck();
      });
    };
    lease.connect(session).finally(settled).then(
      () => {
        if (session.signal.aborted || lease.released) return;
        lease.markSetUp(session);
        entry.armBackoffReset(session);
        const info = session.info;
        lease.setState({ state: "connected", address: info.address, name: info.name, simulated: this.simulation !== null });
      },
      (error: unknown) => {
        if (session.signal.aborted || lease.released) return;
        // Setup failures drop the connection: see LeaseOptions.onConnected.
        entry.endSession();
        const p = entry.peripheral;
        if (p) void closeLink(p, this.policy.gattTimeout, this.timers);
        this.scheduleRetry(entry, { state: "error", problem: problemOf(error), retryInMs: 0 });
      },
    );
  }

  /** The link backs off, every lease showing `state` with the wait, and is queued again when the wait is over. */
  private scheduleRetry(entry: DeviceLink, state: Extract<LeaseState, { state: "reconnecting" | "error" }>): void {
    const retryInMs = entry.backOff(() => this.kick(entry));
    entry.broadcast({ ...state, retryInMs });
  }

  /** noble reported the link gone. */
  private handleDisconnect(entry: DeviceLink, reason: unknown): void {
    if (entry.phase !== "connected") return;
    entry.endSession();
    if (entry.leases.size === 0) return;
    if (!needsLink(entry)) {
      // Idle leases only, none in use: the link is not retried; the next use() connects again.
      entry.broadcast({ state: "idle" });
      return;
    }
    this.scheduleRetry(entry, { state: "reconnecting", retryInMs: 0, reason: disconnectProblem(reason) });
    this.processQueue();
  }

  private dropEntry(entry: DeviceLink): Promise<void> {
    const drop = this.disconnectEntry(entry);
    this.drops.add(drop);
    return drop.finally(() => this.drops.delete(drop));
  }

  private async disconnectEntry(entry: DeviceLink): Promise<void> {
    const wasConnected = entry.holdsSlot;
    entry.transition("closing");
    this.entries.delete(entry);
    const session = entry.session;
    entry.session = null;
    session?.end();
    const p = entry.peripheral;
    entry.unwatch();
    if (p && wasConnected) await closeLink(p, this.policy.gattTimeout, this.timers);
  }
}

/** Some lease needs the link now (a keep lease, or a use() waiting or running). */
function needsLink(entry: DeviceLink): boolean {
  for (const l of entry.leases) if (l.needsLink) return true;
  return false;
}

/** Some lease wants the link kept if it is up (needs it, or is inside an idle lease's idle time). */
function keepsLink(entry: DeviceLink): boolean {
  for (const l of entry.leases) if (l.keepsLink) return true;
  return false;
}
