/**
 * A stand-in for noble (the Noble object, its Peripherals and Characteristics) that a test drives step by step:
 * every call the pool makes (connect, discovery, subscribe, disconnect, ...) is recorded and left pending until
 * the test answers it, unless the test asked for that kind of call to be answered at once (`auto`). Nothing in
 * here uses time, so with a ManualClock under the pool every run is the same.
 */
import { EventEmitter } from "node:events";
import type { Noble } from "@stoprocent/noble";
import type { TransportSettings } from "../../src/ble/adapter";
import type { OpenAdapter } from "../../src/ble/adapter";
import { ScanTypeSwitch } from "../../src/ble/noble-driver";

/** One call the pool made, waiting for the test's answer. */
export class Pending {
  settled = false;

  constructor(
    readonly op: string,
    readonly args: readonly unknown[],
    private readonly complete: () => void,
    private readonly fail: (error: Error) => void,
  ) {}

  resolve(): void {
    if (this.settled) return;
    this.settled = true;
    this.complete();
  }

  reject(error: Error): void {
    if (this.settled) return;
    this.settled = true;
    this.fail(error);
  }
}

/** The calls of one fake object, by operation. */
class Calls<Op extends string> {
  /** Operations answered (successfully) as soon as the pool makes them. */
  readonly auto = new Set<Op>();
  private readonly all: { op: Op; pending: Pending; taken: boolean }[] = [];
  private readonly events = new EventEmitter();

  /** Records a call; `complete` and `fail` run when the test (or `auto`) answers it. */
  make<T>(op: Op, args: readonly unknown[], complete: () => T, fail: (error: Error) => void = () => undefined): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const pending = new Pending(
        op,
        args,
        () => resolve(complete()),
        (error) => {
          fail(error);
          reject(error);
        },
      );
      const call = { op, pending, taken: false };
      this.all.push(call);
      if (this.auto.has(op)) {
        call.taken = true;
        pending.resolve();
        return;
      }
      this.events.emit(op);
    });
  }

  /** How many times the pool has made this call. */
  count(op: Op): number {
    return this.all.filter((c) => c.op === op).length;
  }

  /** Calls of `op` not answered yet (taken by the test or not). */
  open(op: Op): Pending[] {
    return this.all.filter((c) => c.op === op && !c.pending.settled).map((c) => c.pending);
  }

  /** The oldest call of `op` the test has not taken yet; waits for the pool to make one. */
  next(op: Op): Promise<Pending> {
    const call = this.all.find((c) => c.op === op && !c.taken);
    if (call) {
      call.taken = true;
      return Promise.resolve(call.pending);
    }
    return new Promise((resolve) => this.events.once(op, () => resolve(this.next(op))));
  }
}

export type CharacteristicOp = "subscribe" | "unsubscribe" | "read" | "write";

export class FakeCharacteristic extends EventEmitter {
  readonly calls = new Calls<CharacteristicOp>();
  /** What a read returns. */
  value = Buffer.alloc(0);
  readonly writes: { value: Buffer; withoutResponse: boolean }[] = [];

  constructor(
    readonly uuid: string,
    readonly properties: string[] = ["read", "write", "notify"],
  ) {
    super();
    this.calls.auto.add("unsubscribe").add("read").add("write");
  }

  subscribeAsync(): Promise<void> {
    return this.calls.make("subscribe", [], () => undefined);
  }

  unsubscribeAsync(): Promise<void> {
    return this.calls.make("unsubscribe", [], () => undefined);
  }

  readAsync(): Promise<Buffer> {
    return this.calls.make("read", [], () => {
      // noble emits read responses on 'data' too, with isNotification false
      this.emit("data", this.value, false);
      return this.value;
    });
  }

  writeAsync(value: Buffer, withoutResponse: boolean): Promise<void> {
    this.writes.push({ value: Buffer.from(value), withoutResponse });
    return this.calls.make("write", [value, withoutResponse], () => undefined);
  }

  /** The peripheral notifies (or indicates) a value. */
  notify(value: Buffer): void {
    this.emit("data", value, true);
  }
}

export class FakeService {
  constructor(
    readonly uuid: string,
    readonly characteristics: FakeCharacteristic[],
  ) {}
}

export type PeripheralOp = "connect" | "discover" | "disconnect";

export interface FakePeripheralOptions {
  address: string;
  name?: string;
  serviceUuids?: string[];
  services?: FakeService[];
  /** The ATT MTU noble reports once connected. */
  mtu?: number;
}

export class FakePeripheral extends EventEmitter {
  readonly calls = new Calls<PeripheralOp>();
  readonly id: string;
  readonly address: string;
  readonly addressType = "public";
  readonly connectable = true;
  readonly advertisement: { localName: string; serviceUuids: string[] };
  readonly rssi = -50;
  readonly services: FakeService[];
  mtu: number | null = null;
  state: "disconnected" | "connecting" | "connected" | "disconnecting" = "disconnected";
  /** Options of each connect call. */
  readonly connectOptions: unknown[] = [];
  cancels = 0;
  /**
   * When false, cancelConnect() does not end a pending connect: the controller already had the link (noble's
   * reset before connecting lets the cancel arrive late), and the test decides how the connect call ends.
   */
  cancelWorks = true;
  private readonly connectedMtu: number;

  constructor(options: FakePeripheralOptions) {
    super();
    this.address = options.address;
    this.id = options.address.replace(/:/g, "").toLowerCase();
    this.advertisement = { localName: options.name ?? "", serviceUuids: options.serviceUuids ?? [] };
    this.services = options.services ?? [];
    this.connectedMtu = options.mtu ?? 23;
  }

  connectAsync(options?: unknown): Promise<void> {
    this.connectOptions.push(options);
    this.state = "connecting";
    return this.calls.make(
      "connect",
      [options],
      () => {
        this.state = "connected";
        this.mtu = this.connectedMtu;
      },
      () => {
        this.state = "disconnected";
      },
    );
  }

  cancelConnect(): void {
    this.cancels++;
    if (!this.cancelWorks) return;
    for (const call of this.calls.open("connect")) call.reject(new Error("connection canceled"));
  }

  discoverAllServicesAndCharacteristicsAsync(): Promise<{ services: FakeService[]; characteristics: FakeCharacteristic[] }> {
    return this.calls.make("discover", [], () => ({ services: this.services, characteristics: this.services.flatMap((s) => s.characteristics) }));
  }

  disconnectAsync(): Promise<void> {
    this.state = "disconnecting";
    return this.calls.make("disconnect", [], () => this.linkGone(0x16));
  }

  /** The link ends from the peripheral's side (or the radio's): noble emits 'disconnect' with the HCI reason. */
  drop(reason = 0x08): void {
    this.linkGone(reason);
  }

  private linkGone(reason: number): void {
    this.state = "disconnected";
    this.mtu = null;
    this.emit("disconnect", reason);
  }
}

/** noble as the pool uses it: state, scanning, and the discover/stateChange events. */
export class FakeNoble extends EventEmitter {
  state = "unknown";
  scanning = false;
  scanStarts = 0;
  closed = false;
  /** The scan type the pool sets for the driver wrapper (an HCI transport's); `sent` is set by startScanning here. */
  readonly scanType = new ScanTypeSwitch();

  startScanning(): void {
    this.scanning = true;
    this.scanStarts++;
    // noble sends Scan Parameters with every start, which the driver wrapper sends with the switch's type.
    this.scanType.sent = this.scanType.type;
  }

  stopScanning(): void {
    this.scanning = false;
  }

  stop(): void {
    this.scanning = false;
  }

  setState(state: string): void {
    this.state = state;
    this.emit("stateChange", state);
  }

  /** An advertising report from `p` (noble's 'discover'). */
  discover(p: FakePeripheral): void {
    this.emit("discover", p);
  }

  /**
   * An opener for BleAdapter that hands it this fake instead of a real noble; `passive: false` stands for a stack
   * that scans by itself (BlueZ over D-Bus), whose scan type the pool cannot set.
   */
  opener(options: { passive?: boolean } = {}): (settings: TransportSettings) => OpenAdapter {
    return () => ({
      noble: this as unknown as Noble,
      simulation: null,
      ...(options.passive === false ? {} : { scanType: this.scanType }),
      close: () => {
        this.closed = true;
        this.removeAllListeners();
        return Promise.resolve();
      },
    });
  }
}
