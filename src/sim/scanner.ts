/**
 * Scanning on the virtual controller. Two kinds of advertisers:
 * - devices with their own advertising timing (the advertiser kinds: VirtualPeripheral.nextAdvertisingEvent) send
 *   each event at its own time (interval plus the Core spec's random advDelay) with their own PDU type;
 * - the other (GATT) peripherals are reported together once per controller advertising interval, with ADV_IND.
 * An advertising event is heard when it falls inside the scan window (LE Set Scan Parameters: the window opens at
 * the start of every scan interval, from Scan Enable on; duty cycle = window / interval; noble's 11.25 / 11.25 ms
 * hears everything). An active scan sends a SCAN_REQ to a scannable PDU (ADV_IND, ADV_SCAN_IND) it heard, and the
 * SCAN_RSP comes as a second report; a passive scan sends none. With duplicate filtering each address and report
 * type is reported once per scan (a rebooted device counts as new). Powered-off and connected devices are silent.
 */
import { ADV_IND, ADV_SCAN_IND, SCAN_RSP } from "../protocol/hci";
import { buildLeAdvertisingReport } from "../protocol/hci-packets";
import type { ControllerPorts, PeripheralEntry } from "./connection";
import type { Timer } from "../protocol/clock";
import type { AdvertisingEvent, VirtualPeripheral } from "./types";

/** Longest legacy advertising data. */
const MAX_ADV_DATA = 31;
/** LE Set Scan Parameters units: 0.625 ms. */
const SCAN_UNIT_MS = 0.625;
/** Core spec default scan interval and window (0x0010). */
const DEFAULT_SCAN_MS = 0x0010 * SCAN_UNIT_MS;
/** LE Set Scan Parameters' values after power-up and HCI Reset. */
const DEFAULT_PARAMETERS: ScanParameters = { active: false, intervalMs: DEFAULT_SCAN_MS, windowMs: DEFAULT_SCAN_MS };
/** A late timer reports at most this many advertising events at once; beyond it every device skips ahead. */
const MAX_CATCH_UP_EVENTS = 1000;

/** LE Set Scan Parameters as the controller keeps them. */
export interface ScanParameters {
  active: boolean;
  intervalMs: number;
  windowMs: number;
}

export class Scanner {
  private scanning = false;
  // The Core spec's defaults (Vol 4 Part E 7.8.10): passive, 10 ms every 10 ms, until LE Set Scan Parameters.
  private params: ScanParameters = { ...DEFAULT_PARAMETERS };
  private filterDuplicates = false;
  /** The next advertising event of each device with its own timing, while scanning. */
  private readonly pending = new Map<PeripheralEntry, AdvertisingEvent>();
  private eventTimer?: Timer;
  private eventTimerAt = Infinity;
  private readonly reported = new Set<string>();
  private timer?: Timer;
  private startedAt = 0;
  private round = 0;

  constructor(
    private readonly ports: ControllerPorts,
    private readonly entries: ReadonlyMap<string, PeripheralEntry>,
    private readonly advertisingIntervalMs: number,
    private readonly rssi: number,
  ) {}

  get isScanning(): boolean {
    return this.scanning;
  }

  /** LE Set Scan Parameters: active (scan responses too) or passive, and the scan interval and window. */
  setParameters(params: ScanParameters): void {
    this.params = { ...params };
  }

  get parameters(): ScanParameters {
    return { ...this.params };
  }

  /** LE Set Scan Enable. */
  enable(enable: boolean, filterDuplicates: boolean): void {
    if (!enable) {
      this.scanning = false;
      this.timer?.cancel();
      this.timer = undefined;
      this.stopEvents();
      return;
    }
    this.filterDuplicates = filterDuplicates;
    if (this.scanning) return;
    this.scanning = true;
    this.reported.clear();
    this.startedAt = this.ports.clock.now();
    this.round = 0;
    this.scheduleRound();
    for (const entry of this.entries.values()) this.track(entry);
    this.scheduleEvents();
  }

  /** A peripheral added to the controller: a scan that is running hears it from its next event on. */
  added(entry: PeripheralEntry): void {
    if (!this.scanning) return;
    this.track(entry);
    this.scheduleEvents();
  }

  /** HCI Reset: scanning stops, parameters return to their defaults. */
  reset(): void {
    this.enable(false, false);
    this.params = { ...DEFAULT_PARAMETERS };
  }

  /** A rebooted device is new to the duplicate filter, so a scan that is still running reports it again. */
  forget(address: string): void {
    const key = address.toLowerCase();
    for (const k of [...this.reported]) if (k.startsWith(key)) this.reported.delete(k);
  }

  /** The controller closes. */
  stop(): void {
    this.scanning = false;
    this.timer?.cancel();
    this.stopEvents();
  }

  // Devices with their own advertising timing -------------------------------------------------------------------------

  private track(entry: PeripheralEntry): void {
    const p = entry.peripheral;
    if (!p.nextAdvertisingEvent || this.pending.has(entry)) return;
    this.pending.set(entry, p.nextAdvertisingEvent(this.ports.clock.now()));
  }

  private stopEvents(): void {
    this.eventTimer?.cancel();
    this.eventTimer = undefined;
    this.eventTimerAt = Infinity;
    this.pending.clear();
  }

  /** One timer for the earliest pending event of any device. */
  private scheduleEvents(): void {
    let next = Infinity;
    for (const ev of this.pending.values()) next = Math.min(next, ev.atMs);
    if (next === this.eventTimerAt && this.eventTimer) return;
    this.eventTimer?.cancel();
    this.eventTimer = undefined;
    this.eventTimerAt = next;
    if (next === Infinity || !this.scanning || this.ports.isClosed()) return;
    this.eventTimer = this.ports.clock.setTimeout(() => this.eventsDue(), next - this.ports.clock.now());
  }

  /** Every event that is due, of all devices, in time order (what the controller heard meanwhile). */
  private eventsDue(): void {
    this.eventTimer = undefined;
    this.eventTimerAt = Infinity;
    if (!this.scanning || this.ports.isClosed()) return;
    // The tolerance absorbs float rounding between the timer's delay and the event time it was computed from.
    const now = this.ports.clock.now() + 1e-6;
    let ran = 0;
    for (;;) {
      let due: [PeripheralEntry, AdvertisingEvent] | undefined;
      for (const item of this.pending) if (!due || item[1].atMs < due[1].atMs) due = item;
      if (!due || due[1].atMs > now) break;
      const [entry, ev] = due;
      if (++ran > MAX_CATCH_UP_EVENTS) {
        // Far behind (a stalled process): every device skips to its next event from now on.
        for (const e of this.pending.keys()) this.pending.set(e, e.peripheral.nextAdvertisingEvent?.(now) ?? ev);
        break;
      }
      this.hear(entry, ev);
      if (!this.scanning) return;
      this.pending.set(entry, entry.peripheral.nextAdvertisingEvent?.(ev.atMs) ?? ev);
    }
    this.scheduleEvents();
  }

  /** An advertising event on air: reported when the scan window is open, with the scan response to an active scan. */
  private hear(entry: PeripheralEntry, ev: AdvertisingEvent): void {
    if (!entry.powered || entry.connection || !this.inWindow(ev.atMs)) return;
    const p = entry.peripheral;
    this.report(p, ev.pduType, ev.data);
    if (this.params.active && (ev.pduType === ADV_IND || ev.pduType === ADV_SCAN_IND)) this.report(p, SCAN_RSP, ev.scanResponse);
  }

  /** The scan window opens at the start of every scan interval, counted from Scan Enable. */
  private inWindow(atMs: number): boolean {
    const { intervalMs, windowMs } = this.params;
    if (windowMs >= intervalMs) return true;
    const phase = (((atMs - this.startedAt) % intervalMs) + intervalMs) % intervalMs;
    return phase < windowMs;
  }

  private scheduleRound(): void {
    const at = this.startedAt + this.round * this.advertisingIntervalMs;
    this.timer = this.ports.clock.setTimeout(() => this.roundDue(), at - this.ports.clock.now());
  }

  private roundDue(): void {
    this.timer = undefined;
    if (!this.scanning || this.ports.isClosed()) return;
    this.reportAdvertisers();
    // A late timer reports once and moves to the next slot ahead: no flood of stale reports.
    const elapsed = this.ports.clock.now() - this.startedAt;
    this.round = Math.max(this.round + 1, Math.floor(elapsed / this.advertisingIntervalMs) + 1);
    this.scheduleRound();
  }

  private reportAdvertisers(): void {
    const now = this.ports.clock.now();
    if (!this.inWindow(now)) return;
    for (const entry of this.entries.values()) {
      if (!entry.powered || entry.connection || entry.peripheral.nextAdvertisingEvent) continue;
      const p = entry.peripheral;
      this.report(p, ADV_IND, p.advertisingData());
      if (this.params.active) this.report(p, SCAN_RSP, p.scanResponseData());
    }
  }

  private report(p: VirtualPeripheral, eventType: number, data: Buffer): void {
    const key = `${p.address.toLowerCase()}/${eventType}`;
    if (this.filterDuplicates && this.reported.has(key)) return;
    this.reported.add(key);
    if (data.length > MAX_ADV_DATA) {
      this.ports.warn(`${p.address}: advertising data of ${data.length} bytes cut to ${MAX_ADV_DATA}`);
      data = data.subarray(0, MAX_ADV_DATA);
    }
    this.ports.counters.advertisingReports++;
    this.ports.send(buildLeAdvertisingReport({ eventType, addressType: p.addressType === "random" ? 1 : 0, address: p.address.toLowerCase(), data, rssi: p.rssi ?? this.rssi }));
  }
}
