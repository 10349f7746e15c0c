/**
 * Scanning on the virtual controller: while the host scans, every advertising peripheral (powered, not connected)
 * is reported once per advertising interval, ADV_IND and, for an active scan, SCAN_RSP; with duplicate filtering
 * each address and report type once per scan (a rebooted device counts as new).
 */
import { ADV_IND, SCAN_RSP } from "../protocol/hci";
import { buildLeAdvertisingReport } from "../protocol/hci-packets";
import type { ControllerPorts, PeripheralEntry } from "./connection";
import type { Timer } from "../protocol/clock";
import type { VirtualPeripheral } from "./types";

/** Longest legacy advertising data. */
const MAX_ADV_DATA = 31;

export class Scanner {
  private scanning = false;
  private activeScan = true;
  private filterDuplicates = false;
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

  /** LE Set Scan Parameters: active (scan responses too) or passive. */
  setActive(active: boolean): void {
    this.activeScan = active;
  }

  /** LE Set Scan Enable. */
  enable(enable: boolean, filterDuplicates: boolean): void {
    if (!enable) {
      this.scanning = false;
      this.timer?.cancel();
      this.timer = undefined;
      return;
    }
    this.filterDuplicates = filterDuplicates;
    if (this.scanning) return;
    this.scanning = true;
    this.reported.clear();
    this.startedAt = this.ports.clock.now();
    this.round = 0;
    this.scheduleRound();
  }

  /** HCI Reset: scanning stops, parameters return to their defaults. */
  reset(): void {
    this.enable(false, false);
    this.activeScan = true;
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
    for (const entry of this.entries.values()) {
      if (!entry.powered || entry.connection) continue;
      const p = entry.peripheral;
      this.report(p, ADV_IND, p.advertisingData());
      if (this.activeScan) this.report(p, SCAN_RSP, p.scanResponseData());
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
    this.ports.send(buildLeAdvertisingReport({ eventType, addressType: p.addressType === "random" ? 1 : 0, address: p.address.toLowerCase(), data, rssi: this.rssi }));
  }
}
