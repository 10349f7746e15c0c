/**
 * HCI packets in their H4 form (type byte first): commands, events (Command Complete/Status, Disconnection Complete,
 * Number Of Completed Packets, LE Meta: advertising report, connection complete), ACL data and L2CAP basic frames.
 * Pure builders and parsers: a parser returns undefined for a packet that is not its kind or is truncated.
 * Multi-byte HCI fields are little-endian.
 */
import {
  addressToBytes,
  bytesToAddress,
  EVT_COMMAND_COMPLETE,
  EVT_COMMAND_STATUS,
  EVT_DISCONNECTION_COMPLETE,
  EVT_LE_META,
  EVT_NUMBER_OF_COMPLETED_PACKETS,
  H4_ACL,
  H4_COMMAND,
  H4_EVENT,
  LE_ADVERTISING_REPORT,
  LE_CONNECTION_COMPLETE,
} from "./hci";

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

/** Connection_Handle is 12 bits; the top four bits of its two bytes are flags (ACL) or reserved (events). */
const HANDLE_MASK = 0x0fff;

/**
 * Event parameters of `size` bytes that start as Disconnection Complete and LE Connection Complete do: Status (one
 * byte), then Connection_Handle (two bytes); the caller fills the rest.
 */
function statusAndHandle(size: number, status: number, handle: number): Buffer {
  const p = Buffer.alloc(size);
  p[0] = status;
  p.writeUInt16LE(handle & HANDLE_MASK, 1);
  return p;
}

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
  const p = statusAndHandle(4, d.status, d.handle);
  p[3] = d.reason;
  return buildEvent(EVT_DISCONNECTION_COMPLETE, p);
}

export function parseDisconnectionComplete(packet: Buffer): DisconnectionComplete | undefined {
  const ev = parseEvent(packet);
  if (!ev || ev.code !== EVT_DISCONNECTION_COMPLETE || ev.params.length < 4) return undefined;
  return { status: ev.params[0], handle: ev.params.readUInt16LE(1) & HANDLE_MASK, reason: ev.params[3] };
}

export interface CompletedPackets {
  handle: number;
  count: number;
}

export function buildNumberOfCompletedPackets(entries: readonly CompletedPackets[]): Buffer {
  const p = Buffer.alloc(1 + 4 * entries.length);
  p[0] = entries.length;
  entries.forEach((e, i) => {
    p.writeUInt16LE(e.handle & HANDLE_MASK, 1 + 4 * i);
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
  for (let i = 0; i < n; i++) out.push({ handle: ev.params.readUInt16LE(1 + 4 * i) & HANDLE_MASK, count: ev.params.readUInt16LE(3 + 4 * i) });
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
  const p = statusAndHandle(18, c.status, c.handle);
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
    handle: p.readUInt16LE(1) & HANDLE_MASK,
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
  head.writeUInt16LE((handle & HANDLE_MASK) | ((pb & 0b11) << 12) | ((bc & 0b11) << 14), 1);
  head.writeUInt16LE(data.length, 3);
  return Buffer.concat([head, data]);
}

/** Parses an H4 ACL packet; undefined if it is not one or is truncated. */
export function parseAcl(packet: Buffer): AclPacket | undefined {
  if (packet.length < 5 || packet[0] !== H4_ACL) return undefined;
  const hf = packet.readUInt16LE(1);
  const len = packet.readUInt16LE(3);
  if (packet.length < 5 + len) return undefined;
  return { handle: hf & HANDLE_MASK, pb: (hf >> 12) & 0b11, bc: (hf >> 14) & 0b11, data: packet.subarray(5, 5 + len) };
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
