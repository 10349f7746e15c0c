/**
 * BTSnoop capture files (the format of Frontline's HCI logger, read by Wireshark, tshark and BlueZ's btmon).
 * Pure encoding and decoding; no I/O.
 *
 * File: a 16-byte header ("btsnoop\0", version 1, datalink type), then records. Every integer is big-endian,
 * unlike HCI itself.
 * Record: original length (4), included length (4), packet flags (4), cumulative drops (4), timestamp (8,
 * microseconds since midnight 1 January of year 0 AD), then the packet bytes.
 * Flags, as Wireshark's wiretap/btsnoop.c and BlueZ's src/shared/btsnoop.c read and write them:
 * bit 0 is the direction, 0 = sent by the host (host → controller), 1 = received by the host
 * (controller → host); bit 1 is 1 for commands and events, 0 for data (ACL, SCO, ISO).
 * With datalink 1002 (HCI UART, H4) each packet keeps its H4 packet-type byte, so the bytes recorded are exactly
 * the bytes the simulator and noble exchange.
 */
import { H4_COMMAND, H4_EVENT } from "./hci";

export const BTSNOOP_MAGIC = Buffer.from("btsnoop\0", "latin1");
export const BTSNOOP_VERSION = 1;
/** Datalink types of the format. */
export const DATALINK_HCI_UNENCAPSULATED = 1001;
export const DATALINK_HCI_UART = 1002;
export const BTSNOOP_HEADER_LENGTH = 16;
export const BTSNOOP_RECORD_HEADER_LENGTH = 24;

export const FLAG_RECEIVED = 0x01;
export const FLAG_COMMAND_OR_EVENT = 0x02;

/** Microseconds from 0000-01-01T00:00:00 to the Unix epoch, the format's time base (0x00dcddb30f2f8000). */
export const BTSNOOP_EPOCH_OFFSET_US = 0x00dcddb30f2f8000n;

/** Which side sent the packet, from the host's point of view. */
export type HciDirection = "host-to-controller" | "controller-to-host";


export function encodeBtsnoopHeader(datalink = DATALINK_HCI_UART): Buffer {
  const header = Buffer.alloc(BTSNOOP_HEADER_LENGTH);
  BTSNOOP_MAGIC.copy(header, 0);
  header.writeUInt32BE(BTSNOOP_VERSION, 8);
  header.writeUInt32BE(datalink, 12);
  return header;
}

/** BTSnoop timestamp of a Unix time in (fractional) milliseconds. */
export function btsnoopTimestamp(unixMs: number): bigint {
  return BigInt(Math.round(unixMs * 1000)) + BTSNOOP_EPOCH_OFFSET_US;
}

/** Unix time in milliseconds of a BTSnoop timestamp (microsecond resolution kept as a fraction). */
export function unixMsOfBtsnoopTimestamp(timestampUs: bigint): number {
  return Number(timestampUs - BTSNOOP_EPOCH_OFFSET_US) / 1000;
}

/**
 * Packet flags of an H4 packet. The command/event bit comes from the H4 type byte, because that is what the
 * packet is; a command travels host → controller and an event the other way, whatever `direction` says, but the
 * direction bit is taken from `direction` so a misbehaving host or controller is recorded as it happened.
 */
export function btsnoopFlags(h4Packet: Buffer, direction: HciDirection): number {
  const type = h4Packet.length > 0 ? h4Packet[0] : -1;
  const commandOrEvent = type === H4_COMMAND || type === H4_EVENT ? FLAG_COMMAND_OR_EVENT : 0;
  return commandOrEvent | (direction === "controller-to-host" ? FLAG_RECEIVED : 0);
}

export interface BtsnoopRecordInput {
  /** The whole H4 packet, type byte included (datalink 1002). */
  packet: Buffer;
  direction: HciDirection;
  /** Microseconds since 0 AD, see btsnoopTimestamp. */
  timestampUs: bigint;
  /** Packets lost before this one since the capture began; 0 for the simulator, which loses none. */
  cumulativeDrops?: number;
}

/** One record: its 24-byte header followed by the packet. */
export function encodeBtsnoopRecord(record: BtsnoopRecordInput): Buffer {
  const { packet } = record;
  const out = Buffer.alloc(BTSNOOP_RECORD_HEADER_LENGTH + packet.length);
  out.writeUInt32BE(packet.length, 0); // original length
  out.writeUInt32BE(packet.length, 4); // included length: never truncated
  out.writeUInt32BE(btsnoopFlags(packet, record.direction), 8);
  out.writeUInt32BE(record.cumulativeDrops ?? 0, 12);
  out.writeBigInt64BE(record.timestampUs, 16);
  packet.copy(out, BTSNOOP_RECORD_HEADER_LENGTH);
  return out;
}

export interface BtsnoopRecord {
  originalLength: number;
  flags: number;
  direction: HciDirection;
  commandOrEvent: boolean;
  cumulativeDrops: number;
  timestampUs: bigint;
  packet: Buffer;
}

export interface BtsnoopFile {
  version: number;
  datalink: number;
  records: BtsnoopRecord[];
  /** Bytes after the last whole record (a capture cut short while being written). */
  trailingBytes: number;
}

/**
 * Decodes a capture (tests read back what the simulator wrote). Throws on a bad header or a record whose included
 * length exceeds its original length; a truncated last record is reported in `trailingBytes`, not thrown, since
 * a capture being written is legitimately cut short. Lengths are checked against the input before any copy, so
 * a hostile length never allocates.
 */
export function decodeBtsnoop(file: Buffer): BtsnoopFile {
  if (file.length < BTSNOOP_HEADER_LENGTH) throw new Error(`btsnoop: ${file.length} bytes is shorter than the 16-byte file header`);
  if (!file.subarray(0, 8).equals(BTSNOOP_MAGIC)) throw new Error(`btsnoop: bad identification pattern ${file.subarray(0, 8).toString("hex")}`);
  const version = file.readUInt32BE(8);
  if (version !== BTSNOOP_VERSION) throw new Error(`btsnoop: unsupported version ${version}`);
  const datalink = file.readUInt32BE(12);
  const records: BtsnoopRecord[] = [];
  let offset = BTSNOOP_HEADER_LENGTH;
  while (file.length - offset >= BTSNOOP_RECORD_HEADER_LENGTH) {
    const originalLength = file.readUInt32BE(offset);
    const includedLength = file.readUInt32BE(offset + 4);
    if (includedLength > originalLength) throw new Error(`btsnoop: record at byte ${offset} includes ${includedLength} bytes of a ${originalLength}-byte packet`);
    if (file.length - offset - BTSNOOP_RECORD_HEADER_LENGTH < includedLength) break;
    const flags = file.readUInt32BE(offset + 8);
    const start = offset + BTSNOOP_RECORD_HEADER_LENGTH;
    records.push({
      originalLength,
      flags,
      direction: (flags & FLAG_RECEIVED) !== 0 ? "controller-to-host" : "host-to-controller",
      commandOrEvent: (flags & FLAG_COMMAND_OR_EVENT) !== 0,
      cumulativeDrops: file.readUInt32BE(offset + 12),
      timestampUs: file.readBigInt64BE(offset + 16),
      packet: Buffer.from(file.subarray(start, start + includedLength)),
    });
    offset = start + includedLength;
  }
  return { version, datalink, records, trailingBytes: file.length - offset };
}
