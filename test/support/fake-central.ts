/**
 * A fake link and an ATT client that sends exactly the PDUs noble's hci-socket client (lib/hci-socket/gatt.js)
 * sends, in the same order and with the same continuation rules, built byte by byte here (not with the codec
 * under test; only the opcode numbers are protocol/att's). The server answers synchronously, so each request's
 * response is read right after it.
 */
import { AttOpcode } from "../../src/protocol/att";
import { HCI_REMOTE_USER_TERMINATED } from "../../src/protocol/hci";
import type { PeripheralLink, VirtualPeripheral } from "../../src/sim/types";

export class FakeLink implements PeripheralLink {
  /** Every PDU the peripheral sent, in order. */
  readonly sent: Buffer[] = [];
  connected = true;
  /** When true, sendAtt promises stay pending until release(): models a link still sending. */
  hold = false;
  onSend: ((pdu: Buffer) => void) | null = null;
  private readonly held: { resolve: () => void; reject: (e: Error) => void }[] = [];

  get queuedAttPdus(): number {
    return this.held.length;
  }

  sendAtt(pdu: Buffer): Promise<void> {
    if (!this.connected) return Promise.reject(new Error("link down"));
    const copy = Buffer.from(pdu);
    this.sent.push(copy);
    const done = this.hold ? new Promise<void>((resolve, reject) => this.held.push({ resolve, reject })) : Promise.resolve();
    this.onSend?.(copy);
    return done;
  }

  /** Completes the oldest `count` held sends. */
  release(count = Infinity): void {
    for (const h of this.held.splice(0, Math.min(count, this.held.length))) h.resolve();
  }

  /** Peripheral-initiated disconnects, with their reasons. */
  readonly disconnects: number[] = [];

  disconnect(reason = HCI_REMOTE_USER_TERMINATED): void {
    this.disconnects.push(reason);
  }

  drop(): void {
    this.connected = false;
    for (const h of this.held.splice(0)) h.reject(new Error("link down"));
  }
}

export interface DiscoveredDescriptor {
  handle: number;
  uuid: string;
}

export interface DiscoveredCharacteristic {
  uuid: string;
  properties: number;
  startHandle: number;
  valueHandle: number;
  endHandle: number;
  descriptors: DiscoveredDescriptor[];
}

export interface DiscoveredService {
  uuid: string;
  startHandle: number;
  endHandle: number;
  characteristics: DiscoveredCharacteristic[];
}

export interface ReceivedValue {
  handle: number;
  value: Buffer;
  indication: boolean;
}

/** "180d" / 32 hex digits, as the bytes are (little-endian on the wire). */
function uuidOf(bytes: Buffer): string {
  return Buffer.from(bytes).reverse().toString("hex");
}

function normalize(uuid: string): string {
  return uuid.toLowerCase().replace(/-/g, "").replace(/^0x/, "");
}

function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(n, 0);
  return b;
}

export class TestCentral {
  readonly link = new FakeLink();
  mtu = 23;
  services: DiscoveredService[] = [];
  /** Notifications and indications received, in order. */
  readonly received: ReceivedValue[] = [];
  /** Confirm each indication as soon as it arrives (noble confirms every one). */
  autoConfirm = true;
  /** Every PDU that was neither a notification nor an indication: responses, in order. */
  readonly responses: Buffer[] = [];

  constructor(readonly peripheral: VirtualPeripheral) {
    this.link.onSend = (pdu) => this.onPdu(pdu);
  }

  private onPdu(pdu: Buffer): void {
    if (pdu[0] === AttOpcode.HandleValueNotification || pdu[0] === AttOpcode.HandleValueIndication) {
      const indication = pdu[0] === AttOpcode.HandleValueIndication;
      this.received.push({ handle: pdu.readUInt16LE(1), value: pdu.subarray(3), indication });
      if (indication && this.autoConfirm) this.confirm();
    } else {
      this.responses.push(pdu);
    }
  }

  connect(): void {
    this.peripheral.connected(this.link);
  }

  disconnect(reason = HCI_REMOTE_USER_TERMINATED): void {
    this.link.drop();
    this.peripheral.disconnected(reason);
  }

  confirm(): void {
    this.peripheral.receiveAtt(Buffer.of(AttOpcode.HandleValueConfirmation));
  }

  /** Sends a request and returns its single response. */
  request(pdu: Buffer): Buffer {
    const before = this.responses.length;
    this.peripheral.receiveAtt(pdu);
    const got = this.responses.slice(before);
    if (got.length !== 1) throw new Error(`expected one response to ${pdu.toString("hex")}, got ${got.length}: ${got.map((p) => p.toString("hex")).join(" ")}`);
    return got[0];
  }

  /** Sends a command (no response expected); throws if the server answers anyway. */
  command(pdu: Buffer): void {
    const before = this.responses.length;
    this.peripheral.receiveAtt(pdu);
    if (this.responses.length !== before) throw new Error(`command ${pdu.toString("hex")} got a response: ${this.responses[before].toString("hex")}`);
  }

  /**
   * Exchange MTU; the link then runs at min(desired, the server's answer), as the spec says (noble 2.8 adopts the
   * answer instead; the pool corrects for that, this client models a correct one).
   */
  exchangeMtu(desired = 256): number {
    const res = this.request(Buffer.concat([Buffer.of(AttOpcode.ExchangeMtuRequest), u16(desired)]));
    if (res[0] === AttOpcode.ExchangeMtuResponse) this.mtu = Math.max(23, Math.min(desired, res.readUInt16LE(1)));
    return this.mtu;
  }

  /** noble's discoverServices: Read By Group Type 0x2800 from 1 until an error or an end handle 0xffff. */
  discoverServices(): DiscoveredService[] {
    const services: DiscoveredService[] = [];
    let start = 1;
    for (;;) {
      const res = this.request(Buffer.concat([Buffer.of(AttOpcode.ReadByGroupTypeRequest), u16(start), u16(0xffff), u16(0x2800)]));
      if (res[0] !== AttOpcode.ReadByGroupTypeResponse) break;
      const length = res[1];
      for (let o = 2; o + length <= res.length; o += length) {
        services.push({ startHandle: res.readUInt16LE(o), endHandle: res.readUInt16LE(o + 2), uuid: uuidOf(res.subarray(o + 4, o + length)), characteristics: [] });
      }
      const last = services[services.length - 1];
      if (last.endHandle === 0xffff) break;
      start = last.endHandle + 1;
    }
    this.services = services;
    return services;
  }

  /** noble's discoverCharacteristics: Read By Type 0x2803 until an error or a value handle at the service end. */
  discoverCharacteristics(service: DiscoveredService): DiscoveredCharacteristic[] {
    const chars: DiscoveredCharacteristic[] = [];
    let start = service.startHandle;
    for (;;) {
      const res = this.request(Buffer.concat([Buffer.of(AttOpcode.ReadByTypeRequest), u16(start), u16(service.endHandle), u16(0x2803)]));
      if (res[0] !== AttOpcode.ReadByTypeResponse) break;
      const length = res[1];
      for (let o = 2; o + length <= res.length; o += length) {
        chars.push({
          startHandle: res.readUInt16LE(o),
          properties: res[o + 2],
          valueHandle: res.readUInt16LE(o + 3),
          uuid: uuidOf(res.subarray(o + 5, o + length)),
          endHandle: 0,
          descriptors: [],
        });
      }
      const last = chars[chars.length - 1];
      if (last.valueHandle === service.endHandle) break;
      start = last.valueHandle + 1;
    }
    chars.forEach((c, i) => (c.endHandle = i + 1 < chars.length ? chars[i + 1].startHandle - 1 : service.endHandle));
    service.characteristics = chars;
    return chars;
  }

  /** noble's discoverDescriptors: Find Information from value + 1 (even past the end) until an error or the end. */
  discoverDescriptors(ch: DiscoveredCharacteristic): DiscoveredDescriptor[] {
    const found: DiscoveredDescriptor[] = [];
    let start = ch.valueHandle + 1;
    for (;;) {
      const res = this.request(Buffer.concat([Buffer.of(AttOpcode.FindInformationRequest), u16(start), u16(ch.endHandle)]));
      if (res[0] !== AttOpcode.FindInformationResponse) break;
      const size = res[1] === 0x01 ? 2 : 16;
      for (let o = 2; o + 2 + size <= res.length; o += 2 + size) found.push({ handle: res.readUInt16LE(o), uuid: uuidOf(res.subarray(o + 2, o + 2 + size)) });
      const last = found[found.length - 1];
      if (last.handle === ch.endHandle) break;
      start = last.handle + 1;
    }
    ch.descriptors = found;
    return found;
  }

  /** MTU exchange, then every service, characteristic and descriptor. */
  discoverAll(desiredMtu = 256): DiscoveredService[] {
    this.exchangeMtu(desiredMtu);
    for (const s of this.discoverServices()) {
      for (const c of this.discoverCharacteristics(s)) this.discoverDescriptors(c);
    }
    return this.services;
  }

  characteristic(uuid: string): DiscoveredCharacteristic {
    const wanted = normalize(uuid);
    for (const s of this.services) for (const c of s.characteristics) if (c.uuid === wanted) return c;
    throw new Error(`characteristic ${uuid} not discovered`);
  }

  /**
   * noble's notify(true/false): Read By Type 0x2902 over the characteristic's range, then a Write Request
   * of bit 0 (notify) or, only when it cannot notify, bit 1 (indicate). Returns both responses.
   */
  setNotify(uuid: string, on: boolean): { lookup: Buffer; write: Buffer | null } {
    const ch = this.characteristic(uuid);
    const lookup = this.request(Buffer.concat([Buffer.of(AttOpcode.ReadByTypeRequest), u16(ch.startHandle), u16(ch.endHandle), u16(0x2902)]));
    if (lookup[0] !== AttOpcode.ReadByTypeResponse) return { lookup, write: null };
    const handle = lookup.readUInt16LE(2);
    let value = lookup.readUInt16LE(4);
    const bit = ch.properties & 0x10 ? 0x0001 : ch.properties & 0x20 ? 0x0002 : 0;
    value = on ? value | bit : value & ~bit;
    const write = this.request(Buffer.concat([Buffer.of(AttOpcode.WriteRequest), u16(handle), u16(value)]));
    return { lookup, write };
  }

  subscribe(uuid: string): Buffer {
    const { lookup, write } = this.setNotify(uuid, true);
    if (!write || write[0] !== AttOpcode.WriteResponse) throw new Error(`subscribe ${uuid} failed: ${lookup.toString("hex")} ${write?.toString("hex") ?? ""}`);
    return write;
  }

  unsubscribe(uuid: string): Buffer {
    const { write } = this.setNotify(uuid, false);
    if (!write) throw new Error(`unsubscribe ${uuid} failed`);
    return write;
  }

  /** noble's read: Read, then Read Blob while a response fills the MTU. Returns the value or the error PDU. */
  readHandle(handle: number): { value: Buffer; error: Buffer | null } {
    let value = Buffer.alloc(0);
    let res = this.request(Buffer.concat([Buffer.of(AttOpcode.ReadRequest), u16(handle)]));
    while (res[0] === AttOpcode.ReadResponse || res[0] === AttOpcode.ReadBlobResponse) {
      value = Buffer.concat([value, res.subarray(1)]);
      if (res.length !== this.mtu) return { value, error: null };
      res = this.request(Buffer.concat([Buffer.of(AttOpcode.ReadBlobRequest), u16(handle), u16(value.length)]));
    }
    return { value, error: res };
  }

  read(uuid: string): Buffer {
    const { value, error } = this.readHandle(this.characteristic(uuid).valueHandle);
    if (error) throw new Error(`read ${uuid} failed: ${error.toString("hex")}`);
    return value;
  }

  /** noble's write: Write Command; Write Request up to MTU − 3; else Prepare Writes of MTU − 5 and Execute. */
  writeHandle(handle: number, data: Buffer, withoutResponse = false): Buffer[] {
    if (withoutResponse) {
      this.command(Buffer.concat([Buffer.of(AttOpcode.WriteCommand), u16(handle), data]));
      return [];
    }
    if (data.length + 3 <= this.mtu) return [this.request(Buffer.concat([Buffer.of(AttOpcode.WriteRequest), u16(handle), data]))];
    const responses: Buffer[] = [];
    const limit = this.mtu - 5;
    for (let offset = 0; offset < data.length; offset += limit) {
      responses.push(this.request(Buffer.concat([Buffer.of(AttOpcode.PrepareWriteRequest), u16(handle), u16(offset), data.subarray(offset, offset + limit)])));
    }
    responses.push(this.request(Buffer.of(AttOpcode.ExecuteWriteRequest, 0x01)));
    return responses;
  }

  write(uuid: string, data: Buffer | string, withoutResponse = false): Buffer[] {
    return this.writeHandle(this.characteristic(uuid).valueHandle, typeof data === "string" ? Buffer.from(data, "latin1") : data, withoutResponse);
  }

  /** Values received on a characteristic, in order. */
  valuesOf(uuid: string): Buffer[] {
    const handle = this.characteristic(uuid).valueHandle;
    return this.received.filter((r) => r.handle === handle).map((r) => r.value);
  }
}
