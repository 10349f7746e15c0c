/**
 * HCI over H4 (the UART transport): one packet-type byte, then the HCI packet.
 * Pure functions and one incremental splitter; no I/O, no noble.
 * Multi-byte HCI fields are little-endian; Bluetooth addresses travel least significant byte first.
 */

export const H4_COMMAND = 0x01;
export const H4_ACL = 0x02;
export const H4_SCO = 0x03;
export const H4_EVENT = 0x04;
export const H4_ISO = 0x05;

/** HCI event codes. */
export const EVT_DISCONNECTION_COMPLETE = 0x05;
export const EVT_COMMAND_COMPLETE = 0x0e;
export const EVT_COMMAND_STATUS = 0x0f;
export const EVT_NUMBER_OF_COMPLETED_PACKETS = 0x13;
export const EVT_LE_META = 0x3e;

/** LE Meta subevent codes. */
export const LE_CONNECTION_COMPLETE = 0x01;
export const LE_ADVERTISING_REPORT = 0x02;
export const LE_CONNECTION_UPDATE_COMPLETE = 0x03;

/** Advertising report event types (legacy). */
export const ADV_IND = 0x00;
export const ADV_DIRECT_IND = 0x01;
export const ADV_SCAN_IND = 0x02;
export const ADV_NONCONN_IND = 0x03;
export const SCAN_RSP = 0x04;

/** ACL Packet_Boundary_Flag values. */
export const PB_FIRST_NON_FLUSHABLE = 0b00;
export const PB_CONTINUING = 0b01;
export const PB_FIRST_FLUSHABLE = 0b10;

/** L2CAP fixed channels on LE. */
export const CID_ATT = 0x0004;
export const CID_LE_SIGNALING = 0x0005;
export const CID_SMP = 0x0006;

/** HCI status / reason codes used by the simulator. */
export const HCI_SUCCESS = 0x00;
export const HCI_UNKNOWN_COMMAND = 0x01;
export const HCI_UNKNOWN_CONNECTION_ID = 0x02;
export const HCI_CONNECTION_TIMEOUT = 0x08;
export const HCI_COMMAND_DISALLOWED = 0x0c;
export const HCI_INVALID_PARAMETERS = 0x12;
export const HCI_REMOTE_USER_TERMINATED = 0x13;
export const HCI_LOCAL_HOST_TERMINATED = 0x16;

export function opcode(ogf: number, ocf: number): number {
  return ((ogf & 0x3f) << 10) | (ocf & 0x3ff);
}

/** Command opcodes the virtual controller knows. */
export const OP = {
  DISCONNECT: opcode(0x01, 0x0006),
  SET_EVENT_MASK: opcode(0x03, 0x0001),
  RESET: opcode(0x03, 0x0003),
  SET_EVENT_FILTER: opcode(0x03, 0x0005),
  READ_LE_HOST_SUPPORTED: opcode(0x03, 0x006c),
  WRITE_LE_HOST_SUPPORTED: opcode(0x03, 0x006d),
  READ_LOCAL_VERSION: opcode(0x04, 0x0001),
  READ_LOCAL_SUPPORTED_COMMANDS: opcode(0x04, 0x0002),
  READ_BUFFER_SIZE: opcode(0x04, 0x0005),
  READ_BD_ADDR: opcode(0x04, 0x0009),
  READ_RSSI: opcode(0x05, 0x0005),
  LE_SET_EVENT_MASK: opcode(0x08, 0x0001),
  LE_READ_BUFFER_SIZE: opcode(0x08, 0x0002),
  LE_READ_LOCAL_SUPPORTED_FEATURES: opcode(0x08, 0x0003),
  LE_SET_SCAN_PARAMETERS: opcode(0x08, 0x000b),
  LE_SET_SCAN_ENABLE: opcode(0x08, 0x000c),
  LE_CREATE_CONNECTION: opcode(0x08, 0x000d),
  LE_CREATE_CONNECTION_CANCEL: opcode(0x08, 0x000e),
  LE_CONNECTION_UPDATE: opcode(0x08, 0x0013),
  LE_SET_DATA_LENGTH: opcode(0x08, 0x0022),
  LE_READ_MAX_DATA_LENGTH: opcode(0x08, 0x002f),
} as const;

// ---------------------------------------------------------------------------------------------------------------------
// Addresses

const ADDRESS = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;

/** "d8:75:ba:00:00:01" → 6 bytes, least significant first (HCI order). */
export function addressToBytes(address: string): Buffer {
  if (!ADDRESS.test(address)) throw new RangeError(`not a Bluetooth address: ${JSON.stringify(address)}`);
  return Buffer.from(address.split(":").reverse().join(""), "hex");
}

/** 6 bytes in HCI order → "d8:75:ba:00:00:01" (lowercase). */
export function bytesToAddress(bytes: Buffer): string {
  if (bytes.length !== 6) throw new RangeError(`an address is 6 bytes, got ${bytes.length}`);
  return Array.from(bytes)
    .reverse()
    .map((b) => b.toString(16).padStart(2, "0"))
    .join(":");
}

// ---------------------------------------------------------------------------------------------------------------------
// Splitting a byte stream into H4 packets

/** Header size (type byte included) and the offset/width of the length field, per packet type. */
function headerOf(type: number): { header: number; lengthAt: number; lengthBytes: 1 | 2 } | undefined {
  switch (type) {
    case H4_COMMAND:
      return { header: 4, lengthAt: 3, lengthBytes: 1 };
    case H4_ACL:
      return { header: 5, lengthAt: 3, lengthBytes: 2 };
    case H4_SCO:
      return { header: 4, lengthAt: 3, lengthBytes: 1 };
    case H4_EVENT:
      return { header: 3, lengthAt: 2, lengthBytes: 1 };
    case H4_ISO:
      // ISO_Data_Load_Length is 14 bits; the two top bits are RFU.
      return { header: 5, lengthAt: 3, lengthBytes: 2 };
    default:
      return undefined;
  }
}

/** Total size of the H4 packet at the start of `buf`, or undefined if its header is not complete yet. */
export function h4PacketLength(buf: Buffer): number | undefined {
  if (buf.length < 1) return undefined;
  const h = headerOf(buf[0]);
  if (!h) throw new RangeError(`unknown H4 packet type 0x${buf[0].toString(16).padStart(2, "0")}`);
  if (buf.length < h.header) return undefined;
  const len = h.lengthBytes === 1 ? buf[h.lengthAt] : buf.readUInt16LE(h.lengthAt) & (buf[0] === H4_ISO ? 0x3fff : 0xffff);
  return h.header + len;
}

/**
 * Turns an arbitrarily chunked byte stream (a serial port, a pty) into whole H4 packets.
 * Bytes that cannot start a packet are skipped one by one (counted in `discarded`) so the stream resynchronises.
 */
export class H4Splitter {
  private buffer: Buffer = Buffer.alloc(0);
  /** Bytes skipped because they did not start a known packet type. */
  discarded = 0;

  /** Feed bytes; returns the packets completed by them, in order (each a copy, safe to keep). */
  push(chunk: Buffer): Buffer[] {
    this.buffer = this.buffer.length === 0 ? Buffer.from(chunk) : Buffer.concat([this.buffer, chunk]);
    const packets: Buffer[] = [];
    let offset = 0;
    while (offset < this.buffer.length) {
      if (!headerOf(this.buffer[offset])) {
        offset++;
        this.discarded++;
        continue;
      }
      const total = h4PacketLength(this.buffer.subarray(offset));
      if (total === undefined || offset + total > this.buffer.length) break;
      packets.push(Buffer.from(this.buffer.subarray(offset, offset + total)));
      offset += total;
    }
    this.buffer = this.buffer.subarray(offset);
    return packets;
  }

  /** Bytes held back waiting for the rest of a packet. */
  get pending(): number {
    return this.buffer.length;
  }

  reset(): void {
    this.buffer = Buffer.alloc(0);
  }
}

// ---------------------------------------------------------------------------------------------------------------------
// Commands

export interface HciCommand {
  opcode: number;
  params: Buffer;
}

export function buildCommand(op: number, params: Buffer = Buffer.alloc(0)): Buffer {
  if (params.length > 255) throw new RangeError("command parameters exceed 255 bytes");
  const head = Buffer.from([H4_COMMAND, op & 0xff, op >> 8, params.length]);
  return Buffer.concat([head, params]);
}

/** Parses an H4 command packet; undefined if it is not one or is truncated. */
export function parseCommand(packet: Buffer): HciCommand | undefined {
  if (packet.length < 4 || packet[0] !== H4_COMMAND) return undefined;
  const len = packet[3];
  if (packet.length < 4 + len) return undefined;
  return { opcode: packet.readUInt16LE(1), params: packet.subarray(4, 4 + len) };
}

// ---------------------------------------------------------------------------------------------------------------------
// Events

export interface HciEvent {
  code: number;
  params: Buffer;
}

export function buildEvent(code: number, params: Buffer): Buffer {
  if (params.length > 255) throw new RangeError("event parameters exceed 255 bytes");
  return Buffer.concat([Buffer.from([H4_EVENT, code, params.length]), params]);
}

export function parseEvent(packet: Buffer): HciEvent | undefined {
  if (packet.length < 3 || packet[0] !== H4_EVENT) return undefined;
  const len = packet[2];
  if (packet.length < 3 + len) return undefined;
  return { code: packet[1], params: packet.subarray(3, 3 + len) };
}

export interface CommandComplete {
  numCommandPackets: number;
  opcode: number;
  status: number;
  /** Return parameters after the status byte. */
  result: Buffer;
}

export function buildCommandComplete(op: number, status: number, result: Buffer = Buffer.alloc(0), numCommandPackets = 1): Buffer {
  return buildEvent(EVT_COMMAND_COMPLETE, Buffer.concat([Buffer.from([numCommandPackets, op & 0xff, op >> 8, status]), result]));
}

export function parseCommandComplete(packet: Buffer): CommandComplete | undefined {
  const ev = parseEvent(packet);
  if (!ev || ev.code !== EVT_COMMAND_COMPLETE || ev.params.length < 4) return undefined;
  return { numCommandPackets: ev.params[0], opcode: ev.params.readUInt16LE(1), status: ev.params[3], result: ev.params.subarray(4) };
}

export interface CommandStatus {
  status: number;
  numCommandPackets: number;
  opcode: number;
}

export function buildCommandStatus(op: number, status: number, numCommandPackets = 1): Buffer {
  return buildEvent(EVT_COMMAND_STATUS, Buffer.from([status, numCommandPackets, op & 0xff, op >> 8]));
}

export function parseCommandStatus(packet: Buffer): CommandStatus | undefined {
  const ev = parseEvent(packet);
  if (!ev || ev.code !== EVT_COMMAND_STATUS || ev.params.length < 4) return undefined;
  return { status: ev.params[0], numCommandPackets: ev.params[1], opcode: ev.params.readUInt16LE(2) };
}

export interface DisconnectionComplete {
  status: number;
  handle: number;
  reason: number;
}

export function buildDisconnectionComplete(d: DisconnectionComplete): Buffer {
  const p = Buffer.alloc(4);
  p[0] = d.status;
  p.writeUInt16LE(d.handle & 0x0fff, 1);
  p[3] = d.reason;
  return buildEvent(EVT_DISCONNECTION_COMPLETE, p);
}

export function parseDisconnectionComplete(packet: Buffer): DisconnectionComplete | undefined {
  const ev = parseEvent(packet);
  if (!ev || ev.code !== EVT_DISCONNECTION_COMPLETE || ev.params.length < 4) return undefined;
  return { status: ev.params[0], handle: ev.params.readUInt16LE(1) & 0x0fff, reason: ev.params[3] };
}

export interface CompletedPackets {
  handle: number;
  count: number;
}

export function buildNumberOfCompletedPackets(entries: readonly CompletedPackets[]): Buffer {
  const p = Buffer.alloc(1 + 4 * entries.length);
  p[0] = entries.length;
  entries.forEach((e, i) => {
    p.writeUInt16LE(e.handle & 0x0fff, 1 + 4 * i);
    p.writeUInt16LE(e.count, 3 + 4 * i);
  });
  return buildEvent(EVT_NUMBER_OF_COMPLETED_PACKETS, p);
}

export function parseNumberOfCompletedPackets(packet: Buffer): CompletedPackets[] | undefined {
  const ev = parseEvent(packet);
  if (!ev || ev.code !== EVT_NUMBER_OF_COMPLETED_PACKETS || ev.params.length < 1) return undefined;
  const n = ev.params[0];
  if (ev.params.length < 1 + 4 * n) return undefined;
  const out: CompletedPackets[] = [];
  for (let i = 0; i < n; i++) out.push({ handle: ev.params.readUInt16LE(1 + 4 * i) & 0x0fff, count: ev.params.readUInt16LE(3 + 4 * i) });
  return out;
}

// LE Meta events ------------------------------------------------------------------------------------------------------

export function buildLeMetaEvent(subevent: number, params: Buffer): Buffer {
  return buildEvent(EVT_LE_META, Buffer.concat([Buffer.from([subevent]), params]));
}

/** Subevent code and its parameters, or undefined if the packet is not an LE Meta event. */
export function parseLeMetaEvent(packet: Buffer): { subevent: number; params: Buffer } | undefined {
  const ev = parseEvent(packet);
  if (!ev || ev.code !== EVT_LE_META || ev.params.length < 1) return undefined;
  return { subevent: ev.params[0], params: ev.params.subarray(1) };
}

export interface AdvertisingReport {
  eventType: number;
  /** 0 public, 1 random. */
  addressType: number;
  address: string;
  data: Buffer;
  rssi: number;
}

/** An LE Advertising Report event carrying exactly one report (noble expects one per event). */
export function buildLeAdvertisingReport(r: AdvertisingReport): Buffer {
  if (r.data.length > 31) throw new RangeError("advertising data exceeds 31 bytes");
  const p = Buffer.alloc(1 + 1 + 1 + 6 + 1 + r.data.length + 1);
  p[0] = 1;
  p[1] = r.eventType;
  p[2] = r.addressType;
  addressToBytes(r.address).copy(p, 3);
  p[9] = r.data.length;
  r.data.copy(p, 10);
  p.writeInt8(r.rssi, 10 + r.data.length);
  return buildLeMetaEvent(LE_ADVERTISING_REPORT, p);
}

/** All reports of an LE Advertising Report event. */
export function parseLeAdvertisingReports(packet: Buffer): AdvertisingReport[] | undefined {
  const meta = parseLeMetaEvent(packet);
  if (!meta || meta.subevent !== LE_ADVERTISING_REPORT || meta.params.length < 1) return undefined;
  const out: AdvertisingReport[] = [];
  let p = meta.params.subarray(1);
  for (let i = 0; i < meta.params[0]; i++) {
    if (p.length < 10) return undefined;
    const len = p[8];
    if (p.length < 10 + len) return undefined;
    out.push({ eventType: p[0], addressType: p[1], address: bytesToAddress(p.subarray(2, 8)), data: Buffer.from(p.subarray(9, 9 + len)), rssi: p.readInt8(9 + len) });
    p = p.subarray(10 + len);
  }
  return out;
}

export interface LeConnectionComplete {
  status: number;
  handle: number;
  /** 0x00 central, 0x01 peripheral. */
  role: number;
  peerAddressType: number;
  peerAddress: string;
  /** Units of 1.25 ms. */
  interval: number;
  latency: number;
  /** Units of 10 ms. */
  supervisionTimeout: number;
  clockAccuracy: number;
}

export function buildLeConnectionComplete(c: LeConnectionComplete): Buffer {
  const p = Buffer.alloc(18);
  p[0] = c.status;
  p.writeUInt16LE(c.handle & 0x0fff, 1);
  p[3] = c.role;
  p[4] = c.peerAddressType;
  addressToBytes(c.peerAddress).copy(p, 5);
  p.writeUInt16LE(c.interval, 11);
  p.writeUInt16LE(c.latency, 13);
  p.writeUInt16LE(c.supervisionTimeout, 15);
  p[17] = c.clockAccuracy;
  return buildLeMetaEvent(LE_CONNECTION_COMPLETE, p);
}

export function parseLeConnectionComplete(packet: Buffer): LeConnectionComplete | undefined {
  const meta = parseLeMetaEvent(packet);
  if (!meta || meta.subevent !== LE_CONNECTION_COMPLETE || meta.params.length < 18) return undefined;
  const p = meta.params;
  return {
    status: p[0],
    handle: p.readUInt16LE(1) & 0x0fff,
    role: p[3],
    peerAddressType: p[4],
    peerAddress: bytesToAddress(p.subarray(5, 11)),
    interval: p.readUInt16LE(11),
    latency: p.readUInt16LE(13),
    supervisionTimeout: p.readUInt16LE(15),
    clockAccuracy: p[17],
  };
}

// ---------------------------------------------------------------------------------------------------------------------
// ACL data and L2CAP

export interface AclPacket {
  handle: number;
  /** Packet_Boundary_Flag (2 bits). */
  pb: number;
  /** Broadcast_Flag (2 bits). */
  bc: number;
  data: Buffer;
}

export function buildAcl(handle: number, pb: number, data: Buffer, bc = 0): Buffer {
  if (data.length > 0xffff) throw new RangeError("ACL payload exceeds 65535 bytes");
  const head = Buffer.alloc(5);
  head[0] = H4_ACL;
  head.writeUInt16LE((handle & 0x0fff) | ((pb & 0b11) << 12) | ((bc & 0b11) << 14), 1);
  head.writeUInt16LE(data.length, 3);
  return Buffer.concat([head, data]);
}

/** Parses an H4 ACL packet; undefined if it is not one or is truncated. */
export function parseAcl(packet: Buffer): AclPacket | undefined {
  if (packet.length < 5 || packet[0] !== H4_ACL) return undefined;
  const hf = packet.readUInt16LE(1);
  const len = packet.readUInt16LE(3);
  if (packet.length < 5 + len) return undefined;
  return { handle: hf & 0x0fff, pb: (hf >> 12) & 0b11, bc: (hf >> 14) & 0b11, data: packet.subarray(5, 5 + len) };
}

export interface L2capHeader {
  /** Payload length (header excluded). */
  length: number;
  cid: number;
}

/** L2CAP basic frame: length, channel id, payload. */
export function buildL2cap(cid: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(4);
  head.writeUInt16LE(payload.length, 0);
  head.writeUInt16LE(cid, 2);
  return Buffer.concat([head, payload]);
}

export function parseL2capHeader(buf: Buffer): L2capHeader | undefined {
  if (buf.length < 4) return undefined;
  return { length: buf.readUInt16LE(0), cid: buf.readUInt16LE(2) };
}
