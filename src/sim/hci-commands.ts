/**
 * The virtual controller's HCI commands as a table: one small handler per opcode (as Google Bumble's controller
 * has one method per command), so adding a command is adding a row. Every command gets an answer (Command Complete,
 * or Command Status for those that finish with an event): an unknown one is refused with Unknown HCI Command, never
 * left silent, since a host waiting for a reply would hang. The commands are the ones noble sends
 * (shared/docs/noble-hci.md).
 */
import {
  addressToBytes,
  bytesToAddress,
  HCI_COMMAND_DISALLOWED,
  HCI_INVALID_PARAMETERS,
  HCI_SUCCESS,
  HCI_UNKNOWN_COMMAND,
  HCI_UNKNOWN_CONNECTION_ID,
  LE_CONNECTION_UPDATE_COMPLETE,
  OP,
} from "../protocol/hci";
import { buildCommandComplete, buildCommandStatus, buildLeConnectionComplete, buildLeMetaEvent } from "../protocol/hci-packets";
import { supervisionMs } from "./connection";
import type { Initiator } from "./initiator";
import { pduAirTimeUs, type Radio } from "./radio";
import type { Scanner } from "./scanner";
import type { LinkSettings } from "./types";

/** What a command handler reaches of the controller. */
export interface CommandContext {
  readonly link: LinkSettings;
  /** The controller's public address. */
  readonly address: string;
  readonly rssi: number;
  readonly scanner: Scanner;
  readonly initiator: Initiator;
  readonly radio: Radio;
  send(packet: Buffer): void;
  /** HCI Reset: scanning and initiating stop, links vanish without events. */
  reset(): void;
}

/** How a handler answers the command it handles. */
export interface CommandReply {
  /** Command Complete with `status` and return parameters. */
  complete(status: number, result?: Buffer): void;
  /** Command Complete, success. */
  ok(result?: Buffer): void;
  /** Command Status (the command goes on; an event reports the outcome). */
  status(status: number): void;
}

export type CommandHandler = (ctx: CommandContext, params: Buffer, reply: CommandReply) => void;

const HCI_VERSION = 0x09; // Bluetooth 5.0: noble needs >= 6
const MANUFACTURER = 0xffff; // "for internal use": no vendor-specific commands apply
const ACL_BUFFER_COUNT = 8;

function connectionHandle(p: Buffer): number {
  return p.readUInt16LE(0) & 0x0fff;
}

// Controller and baseband, informational ------------------------------------------------------------------------------

const accept: CommandHandler = (_ctx, _p, reply) => reply.ok();

const reset: CommandHandler = (ctx, _p, reply) => {
  ctx.reset();
  reply.ok();
};

const readLeHostSupported: CommandHandler = (_ctx, _p, reply) => reply.ok(Buffer.from([0x01, 0x00]));

const readLocalVersion: CommandHandler = (_ctx, _p, reply) => {
  const r = Buffer.alloc(8);
  r[0] = HCI_VERSION;
  r.writeUInt16LE(0, 1);
  r[3] = HCI_VERSION;
  r.writeUInt16LE(MANUFACTURER, 4);
  r.writeUInt16LE(0, 6);
  reply.ok(r);
};

const readBdAddr: CommandHandler = (ctx, _p, reply) => reply.ok(addressToBytes(ctx.address));

const readBufferSize: CommandHandler = (ctx, _p, reply) => {
  const r = Buffer.alloc(7);
  r.writeUInt16LE(ctx.link.dataLength, 0);
  r[2] = 0;
  r.writeUInt16LE(ACL_BUFFER_COUNT, 3);
  r.writeUInt16LE(0, 5);
  reply.ok(r);
};

const leReadBufferSize: CommandHandler = (ctx, _p, reply) => {
  // One host ACL packet = one link-layer PDU: the host fragments exactly as the air does.
  const r = Buffer.alloc(3);
  r.writeUInt16LE(ctx.link.dataLength, 0);
  r[2] = ACL_BUFFER_COUNT;
  reply.ok(r);
};

const leReadLocalSupportedFeatures: CommandHandler = (ctx, _p, reply) => {
  // Only Data Length Extension (byte 0 bit 5), and only when the link uses it; no extended advertising,
  // so noble stays with the legacy scan/connect commands.
  const r = Buffer.alloc(8);
  if (ctx.link.dataLength > 27) r[0] |= 1 << 5;
  reply.ok(r);
};

const leReadMaxDataLength: CommandHandler = (ctx, _p, reply) => {
  const r = Buffer.alloc(8);
  const time = pduAirTimeUs(ctx.link.dataLength + 4); // spec formula: (octets + 14) × 8
  r.writeUInt16LE(ctx.link.dataLength, 0);
  r.writeUInt16LE(time, 2);
  r.writeUInt16LE(ctx.link.dataLength, 4);
  r.writeUInt16LE(time, 6);
  reply.ok(r);
};

// Scanning ------------------------------------------------------------------------------------------------------------

const leSetScanParameters: CommandHandler = (ctx, p, reply) => {
  if (p.length < 7) return reply.complete(HCI_INVALID_PARAMETERS);
  if (ctx.scanner.isScanning) return reply.complete(HCI_COMMAND_DISALLOWED);
  // Scan type 0 passive, 1 active; interval and window in 0.625 ms units, 0x0004 … 0x4000, window ≤ interval.
  const type = p[0];
  const interval = p.readUInt16LE(1);
  const window = p.readUInt16LE(3);
  const inRange = (v: number) => v >= 0x0004 && v <= 0x4000;
  // Own_Address_Type and Scanning_Filter_Policy: 0x00 … 0x03 (the rest reserved).
  if (type > 0x01 || !inRange(interval) || !inRange(window) || window > interval || p[5] > 0x03 || p[6] > 0x03) return reply.complete(HCI_INVALID_PARAMETERS);
  ctx.scanner.setParameters({ active: type === 0x01, intervalMs: interval * 0.625, windowMs: window * 0.625 });
  reply.ok();
};

const leSetScanEnable: CommandHandler = (ctx, p, reply) => {
  // LE_Scan_Enable and Filter_Duplicates are 0x00 or 0x01; other values are reserved, refused as out of range.
  if (p.length < 2 || p[0] > 0x01 || p[1] > 0x01) return reply.complete(HCI_INVALID_PARAMETERS);
  reply.ok();
  ctx.scanner.enable(p[0] === 0x01, p[1] === 0x01);
};

// Connecting ----------------------------------------------------------------------------------------------------------

const leCreateConnection: CommandHandler = (ctx, p, reply) => {
  if (p.length < 25) return reply.status(HCI_INVALID_PARAMETERS);
  if (ctx.initiator.busy) return reply.status(HCI_COMMAND_DISALLOWED);
  reply.status(HCI_SUCCESS);
  ctx.initiator.start({
    addressType: p[5],
    address: bytesToAddress(p.subarray(6, 12)),
    latency: p.readUInt16LE(17),
    supervisionTimeoutMs: supervisionMs(p.readUInt16LE(19), ctx.link.connectionIntervalMs),
  });
};

const leCreateConnectionCancel: CommandHandler = (ctx, _p, reply) => {
  const cancelled = ctx.initiator.cancel();
  if (!cancelled) return reply.complete(HCI_COMMAND_DISALLOWED);
  reply.ok();
  ctx.send(
    buildLeConnectionComplete({
      status: HCI_UNKNOWN_CONNECTION_ID,
      handle: 0,
      role: 0,
      peerAddressType: cancelled.addressType,
      peerAddress: cancelled.address,
      interval: 0,
      latency: 0,
      supervisionTimeout: 0,
      clockAccuracy: 0,
    }),
  );
};

// Links ---------------------------------------------------------------------------------------------------------------

const disconnect: CommandHandler = (ctx, p, reply) => {
  if (p.length < 3) return reply.status(HCI_INVALID_PARAMETERS);
  const conn = ctx.radio.connections.get(connectionHandle(p));
  if (!conn) return reply.status(HCI_UNKNOWN_CONNECTION_ID);
  if (conn.terminate) return reply.status(HCI_COMMAND_DISALLOWED);
  reply.status(HCI_SUCCESS);
  // Carried out by the radio once the data queued to the peripheral has gone.
  conn.terminate = { peripheralReason: p[2] };
};

const leConnectionUpdate: CommandHandler = (ctx, p, reply) => {
  if (p.length < 14) return reply.status(HCI_INVALID_PARAMETERS);
  const conn = ctx.radio.connections.get(connectionHandle(p));
  if (!conn) return reply.status(HCI_UNKNOWN_CONNECTION_ID);
  reply.status(HCI_SUCCESS);
  // The interval is a property of the simulated link; latency and supervision timeout follow the host.
  conn.latency = p.readUInt16LE(6);
  conn.supervisionTimeoutMs = supervisionMs(p.readUInt16LE(8), conn.intervalMs);
  const r = Buffer.alloc(9);
  r[0] = HCI_SUCCESS;
  r.writeUInt16LE(conn.handle, 1);
  r.writeUInt16LE(Math.round(conn.intervalMs / 1.25), 3);
  r.writeUInt16LE(conn.latency, 5);
  r.writeUInt16LE(Math.round(conn.supervisionTimeoutMs / 10), 7);
  ctx.send(buildLeMetaEvent(LE_CONNECTION_UPDATE_COMPLETE, r));
};

const leSetDataLength: CommandHandler = (ctx, p, reply) => {
  if (p.length < 6) return reply.complete(HCI_INVALID_PARAMETERS, Buffer.alloc(2));
  const known = ctx.radio.connections.has(connectionHandle(p));
  reply.complete(known ? HCI_SUCCESS : HCI_UNKNOWN_CONNECTION_ID, p.subarray(0, 2));
};

const readRssi: CommandHandler = (ctx, p, reply) => {
  const handle = p.length >= 2 ? connectionHandle(p) : 0;
  const r = Buffer.alloc(3);
  r.writeUInt16LE(handle, 0);
  r.writeInt8(ctx.rssi, 2);
  reply.complete(ctx.radio.connections.has(handle) ? HCI_SUCCESS : HCI_UNKNOWN_CONNECTION_ID, r);
};

/** Opcode → handler. */
export const HCI_COMMANDS: ReadonlyMap<number, CommandHandler> = new Map<number, CommandHandler>([
  [OP.RESET, reset],
  [OP.SET_EVENT_MASK, accept],
  [OP.LE_SET_EVENT_MASK, accept],
  [OP.SET_EVENT_FILTER, accept],
  [OP.WRITE_LE_HOST_SUPPORTED, accept],
  [OP.READ_LE_HOST_SUPPORTED, readLeHostSupported],
  [OP.READ_LOCAL_VERSION, readLocalVersion],
  [OP.READ_BD_ADDR, readBdAddr],
  [OP.READ_BUFFER_SIZE, readBufferSize],
  [OP.LE_READ_BUFFER_SIZE, leReadBufferSize],
  [OP.LE_READ_LOCAL_SUPPORTED_FEATURES, leReadLocalSupportedFeatures],
  [OP.LE_READ_MAX_DATA_LENGTH, leReadMaxDataLength],
  [OP.LE_SET_DATA_LENGTH, leSetDataLength],
  [OP.LE_SET_SCAN_PARAMETERS, leSetScanParameters],
  [OP.LE_SET_SCAN_ENABLE, leSetScanEnable],
  [OP.LE_CREATE_CONNECTION, leCreateConnection],
  [OP.LE_CREATE_CONNECTION_CANCEL, leCreateConnectionCancel],
  [OP.DISCONNECT, disconnect],
  [OP.LE_CONNECTION_UPDATE, leConnectionUpdate],
  [OP.READ_RSSI, readRssi],
]);

/** Runs the handler of `op`, or refuses an unknown command. */
export function dispatchCommand(ctx: CommandContext, op: number, params: Buffer): void {
  const reply: CommandReply = {
    complete: (status, result) => ctx.send(buildCommandComplete(op, status, result)),
    ok: (result) => ctx.send(buildCommandComplete(op, HCI_SUCCESS, result)),
    status: (status) => ctx.send(buildCommandStatus(op, status)),
  };
  const handler = HCI_COMMANDS.get(op);
  if (handler) handler(ctx, params, reply);
  else reply.complete(HCI_UNKNOWN_COMMAND);
}
