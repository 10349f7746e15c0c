import { EventEmitter } from "node:events";
import type { AddressType, PeripheralLink, VirtualPeripheral } from "../../src/sim/types";

/**
 * A test-only peripheral with a hand-written tiny ATT server (the real GATT server lives elsewhere):
 *
 *   1  primary service 0xFFF0 (handles 1…6)
 *   2  characteristic 0xFFF1: read + notify, value handle 3
 *   3  value
 *   4  CCCD (0x2902)
 *   5  characteristic 0xFFF2: write + write without response, value handle 6
 *   6  value (every write is recorded in `writes`)
 *
 * Events: 'connected', 'disconnected' (reason), 'att' (pdu), 'write' (value).
 */
export interface FakePeripheralOptions {
  address?: string;
  addressType?: AddressType;
  name?: string;
  /** Extra AD structures appended to the advertising data (for malformed-advertisement tests). */
  extraAdvertising?: Buffer;
  maxMtu?: number;
}

const SERVICE_UUID = 0xfff0;
const NOTIFY_UUID = 0xfff1;
const WRITE_UUID = 0xfff2;
const NOTIFY_VALUE_HANDLE = 3;
const CCCD_HANDLE = 4;
const WRITE_VALUE_HANDLE = 6;
const END_HANDLE = 6;

/** Attribute types by handle, as Find Information reports them. */
const TYPES: Record<number, number> = { 1: 0x2800, 2: 0x2803, 3: NOTIFY_UUID, 4: 0x2902, 5: 0x2803, 6: WRITE_UUID };
/** Characteristic declarations: handle → [properties, value handle, uuid]. */
const DECLARATIONS: [number, number, number, number][] = [
  [2, 0x12, NOTIFY_VALUE_HANDLE, NOTIFY_UUID],
  [5, 0x0c, WRITE_VALUE_HANDLE, WRITE_UUID],
];

export class FakePeripheral extends EventEmitter implements VirtualPeripheral {
  readonly kind = "fake";
  readonly address: string;
  readonly addressType: AddressType;
  readonly name: string;
  readonly maxMtu: number;
  readonly extraAdvertising: Buffer;
  link?: PeripheralLink;
  mtu = 23;
  cccd = 0;
  readonly received: Buffer[] = [];
  readonly writes: Buffer[] = [];
  readonly disconnectReasons: number[] = [];
  connections = 0;
  closed = false;

  constructor(options: FakePeripheralOptions = {}) {
    super();
    this.address = options.address ?? "c0:ff:ee:00:00:01";
    this.addressType = options.addressType ?? "random";
    this.name = options.name ?? "fake-1";
    this.maxMtu = options.maxMtu ?? 247;
    this.extraAdvertising = options.extraAdvertising ?? Buffer.alloc(0);
  }

  advertisingData(): Buffer {
    const name = Buffer.from(this.name, "utf8");
    return Buffer.concat([Buffer.from([0x02, 0x01, 0x06]), this.extraAdvertising, Buffer.from([name.length + 1, 0x09]), name]);
  }

  scanResponseData(): Buffer {
    return Buffer.from([0x03, 0x03, SERVICE_UUID & 0xff, SERVICE_UUID >> 8]);
  }

  connected(link: PeripheralLink): void {
    this.link = link;
    this.mtu = 23;
    this.cccd = 0;
    this.connections++;
    this.emit("connected");
  }

  disconnected(reason: number): void {
    this.link = undefined;
    this.disconnectReasons.push(reason);
    this.emit("disconnected", reason);
  }

  close(): void {
    this.closed = true;
  }

  /** Sends one notification of the 0xFFF1 value. */
  notify(value: Buffer): Promise<void> {
    if (!this.link) return Promise.reject(new Error("not connected"));
    return this.link.sendAtt(Buffer.concat([Buffer.from([0x1b, NOTIFY_VALUE_HANDLE, 0]), value]));
  }

  /**
   * Sends `count` notifications of `size` bytes, each starting with its sequence number (uint32 LE), keeping at
   * most `window` PDUs queued in the controller. Resolves when the last one has reached the host.
   */
  async sendNotifications(count: number, size: number, window = count): Promise<void> {
    const inFlight: Promise<void>[] = [];
    for (let i = 0; i < count; i++) {
      const value = Buffer.alloc(Math.max(4, size));
      value.writeUInt32LE(i, 0);
      inFlight.push(this.notify(value));
      if (inFlight.length >= window) await inFlight.shift();
    }
    await Promise.all(inFlight);
  }

  receiveAtt(pdu: Buffer): void {
    this.received.push(Buffer.from(pdu));
    this.emit("att", pdu);
    const op = pdu[0];
    switch (op) {
      case 0x02: {
        const client = pdu.readUInt16LE(1);
        this.mtu = Math.max(23, Math.min(client, this.maxMtu));
        return this.reply(Buffer.from([0x03, this.mtu & 0xff, this.mtu >> 8]));
      }
      case 0x10:
        return this.readByGroupType(pdu);
      case 0x08:
        return this.readByType(pdu);
      case 0x04:
        return this.findInformation(pdu);
      case 0x0a: {
        const handle = pdu.readUInt16LE(1);
        if (handle === NOTIFY_VALUE_HANDLE) return this.reply(Buffer.from([0x0b, ...Buffer.from("fake")]));
        if (handle === CCCD_HANDLE) return this.reply(Buffer.from([0x0b, this.cccd & 0xff, this.cccd >> 8]));
        return this.error(op, handle, handle >= 1 && handle <= END_HANDLE ? 0x02 : 0x01);
      }
      case 0x12:
      case 0x52: {
        const handle = pdu.readUInt16LE(1);
        const value = Buffer.from(pdu.subarray(3));
        if (handle === CCCD_HANDLE && op === 0x12) {
          this.cccd = value.readUInt16LE(0);
          return this.reply(Buffer.from([0x13]));
        }
        if (handle === WRITE_VALUE_HANDLE) {
          this.writes.push(value);
          this.emit("write", value);
          if (op === 0x12) this.reply(Buffer.from([0x13]));
          return;
        }
        if (op === 0x12) this.error(op, handle, 0x03);
        return;
      }
      case 0x1e: // handle value confirmation
        return;
      default:
        // Requests (even opcodes without the command bit) get "request not supported"; commands are dropped.
        if ((op & 0x40) === 0 && op % 2 === 0) this.error(op, 0, 0x06);
    }
  }

  private readByGroupType(pdu: Buffer): void {
    const start = pdu.readUInt16LE(1);
    const end = pdu.readUInt16LE(3);
    if (pdu.length !== 7 || pdu.readUInt16LE(5) !== 0x2800) return this.error(0x10, start, 0x10);
    if (start > 1 || end < 1) return this.error(0x10, start, 0x0a);
    this.reply(Buffer.from([0x11, 6, 1, 0, END_HANDLE, 0, SERVICE_UUID & 0xff, SERVICE_UUID >> 8]));
  }

  private readByType(pdu: Buffer): void {
    const start = pdu.readUInt16LE(1);
    const end = pdu.readUInt16LE(3);
    const type = pdu.length === 7 ? pdu.readUInt16LE(5) : -1;
    if (type === 0x2803) {
      const max = Math.floor((this.mtu - 2) / 7);
      const found = DECLARATIONS.filter(([h]) => h >= start && h <= end).slice(0, max);
      if (found.length === 0) return this.error(0x08, start, 0x0a);
      const body = found.flatMap(([h, props, value, uuid]) => [h & 0xff, h >> 8, props, value & 0xff, value >> 8, uuid & 0xff, uuid >> 8]);
      return this.reply(Buffer.from([0x09, 7, ...body]));
    }
    if (type === 0x2902 && start <= CCCD_HANDLE && end >= CCCD_HANDLE) {
      return this.reply(Buffer.from([0x09, 4, CCCD_HANDLE, 0, this.cccd & 0xff, this.cccd >> 8]));
    }
    this.error(0x08, start, 0x0a);
  }

  private findInformation(pdu: Buffer): void {
    const start = pdu.readUInt16LE(1);
    const end = pdu.readUInt16LE(3);
    if (start === 0 || start > end) return this.error(0x04, start, 0x01);
    const max = Math.floor((this.mtu - 2) / 4);
    const handles = Object.keys(TYPES)
      .map(Number)
      .filter((h) => h >= start && h <= end)
      .slice(0, max);
    if (handles.length === 0) return this.error(0x04, start, 0x0a);
    this.reply(Buffer.from([0x05, 0x01, ...handles.flatMap((h) => [h & 0xff, h >> 8, TYPES[h] & 0xff, TYPES[h] >> 8])]));
  }

  private error(op: number, handle: number, code: number): void {
    this.reply(Buffer.from([0x01, op, handle & 0xff, handle >> 8, code]));
  }

  private reply(pdu: Buffer): void {
    // A reply lost with the link is not this peripheral's problem.
    this.link?.sendAtt(pdu).catch(() => undefined);
  }
}
