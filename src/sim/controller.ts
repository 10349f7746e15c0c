import { EventEmitter } from "node:events";
import * as h4 from "../protocol/h4";
import type { LinkSettings, PeripheralLink, SimClock, SimTimer, VirtualPeripheral } from "./types";
import { DEFAULT_LINK } from "./types";

/**
 * A simulated Bluetooth LE controller speaking HCI over H4 to an unmodified host stack (noble).
 * It answers the commands noble sends (see shared/docs/noble-hci.md), reports advertising from its virtual
 * peripherals, and carries ATT between the host and a peripheral over a link-layer model in which every
 * connection event moves a bounded number of PDUs (pdusPerEvent and air time), so no setting beats physics.
 *
 * One radio serves every connection, as in a real adapter: connection events never overlap. A new link's anchor
 * goes into the middle of the largest free gap between the anchors already in use (placeAnchor); an event starts at
 * its anchor (or when the radio frees up) and ends before the next anchor of any connection, its own included,
 * after at least one exchange; a quiet event still costs the empty exchange that keeps the link alive. An event
 * that cannot start before its own next anchor is skipped.
 *
 * Events:
 * - 'h4' (packet: Buffer): exactly one H4 packet towards the host, always asynchronously, in order; packets
 *   produced together (one connection event, one command) are emitted back to back in the same tick.
 * - 'host-h4' (packet: Buffer): a packet the host wrote, synchronously from write() before it is handled, so the
 *   two directions can be observed in the order they happened (a capture needs both; the host's side of the
 *   transport differs between in-process and pty, write() is the one place both pass). Listeners must not keep
 *   or change the buffer.
 * - 'connectionEvent' (info: ConnectionEventInfo): after each connection event, for tests and the bench.
 * - 'power' (address: string, poweredOn: boolean): powerOff()/powerOn() changed a peripheral's power.
 * - 'warning' (message: string): something the host or a peripheral did wrong that the controller tolerated.
 * - 'close': close() was called; nothing is emitted afterwards.
 */

export interface VirtualControllerOptions {
  clock: SimClock;
  link?: LinkSettings;
  /** The controller's own public address (Read BD_ADDR). */
  address?: string;
  /** Simulated period at which every advertising peripheral is reported while scanning. */
  advertisingIntervalMs?: number;
  /** Simulated time from LE Create Connection (peer reachable) to LE Connection Complete. */
  connectDelayMs?: number;
  /** RSSI reported for every peripheral. */
  rssi?: number;
}

export interface ControllerCounters {
  /** HCI commands received. */
  commands: number;
  /** ACL packets and payload bytes host → controller. */
  hostAclPackets: number;
  hostAclBytes: number;
  /** ACL packets and payload bytes controller → host. */
  controllerAclPackets: number;
  controllerAclBytes: number;
  /** Connection events run, over all connections. */
  connectionEvents: number;
  /** Link-layer data PDUs carried central → peripheral and peripheral → central. */
  pdusToPeripheral: number;
  pdusToCentral: number;
  advertisingReports: number;
}

export interface ConnectionEventInfo {
  handle: number;
  address: string;
  /** Simulated time of the event's anchor point. */
  atMs: number;
  /** When the radio started the event: the anchor, or later when another link's event ran over it. */
  startMs: number;
  /** The radio was busy past this link's next anchor: the event did not take place. */
  skipped: boolean;
  toCentralPdus: number;
  toCentralBytes: number;
  toPeripheralPdus: number;
  toPeripheralBytes: number;
  /** Air time used by the event's exchanges (an idle event: its empty exchange), in microseconds. */
  airTimeUs: number;
}

/** LE 1M: preamble 1 + access address 4 + header 2 + CRC 3 = 10 bytes around the payload, 8 µs per byte. */
const PDU_OVERHEAD_BYTES = 10;
const US_PER_BYTE = 8;
/** Inter frame space between the two packets of an exchange and before the next exchange. */
const T_IFS_US = 150;
/** LL_TERMINATE_IND: opcode and error code. */
const LL_TERMINATE_IND_BYTES = 2;

/** Air time of one link-layer packet with `payload` bytes (0 = empty PDU), in microseconds. */
export function pduAirTimeUs(payload: number): number {
  return (payload + PDU_OVERHEAD_BYTES) * US_PER_BYTE;
}

/** Air time of one exchange (central packet, T_IFS, peripheral packet, T_IFS). */
export function exchangeAirTimeUs(centralPayload: number, peripheralPayload: number): number {
  return pduAirTimeUs(centralPayload) + pduAirTimeUs(peripheralPayload) + 2 * T_IFS_US;
}

/**
 * Most data PDUs of `payload` bytes one direction can carry in one connection event while the other direction
 * sends empty PDUs: min(pdusPerEvent, air time). With 7.5 ms: 11 × 27 bytes, 3 × 251 bytes. `slotMs` is the time
 * the event may use (the whole interval for a single connection, less when the radio is shared).
 */
export function maxPdusPerEvent(link: LinkSettings, payload = link.dataLength, slotMs = link.connectionIntervalMs): number {
  const byAirTime = Math.floor((slotMs * 1000) / exchangeAirTimeUs(payload, 0));
  return Math.max(1, Math.min(link.pdusPerEvent, byAirTime));
}

/**
 * Where the controller puts a new link's anchor, as a phase in [0, interval): in the middle of the largest gap
 * between the phases already in use (the first of equal gaps, counting from the smallest phase), or `fallback` on
 * an idle radio. Every link uses the scenario's one interval, so phases alone describe the schedule.
 */
export function placeAnchor(phases: readonly number[], intervalMs: number, fallback = 0): number {
  if (phases.length === 0) return ((fallback % intervalMs) + intervalMs) % intervalMs;
  const sorted = [...phases].sort((a, b) => a - b);
  let best = 0;
  let bestGap = -1;
  for (let i = 0; i < sorted.length; i++) {
    const next = i + 1 < sorted.length ? sorted[i + 1] : sorted[0] + intervalMs;
    const gap = next - sorted[i];
    if (gap > bestGap) {
      bestGap = gap;
      best = sorted[i] + gap / 2;
    }
  }
  return best % intervalMs;
}

/**
 * The time each of `count` links opened one after another on an idle radio may use per event: the gap from its
 * anchor to the next anchor in use (the bench's ceiling for several connections at once).
 */
export function radioSlotsMs(count: number, intervalMs: number): number[] {
  const phases: number[] = [];
  for (let i = 0; i < count; i++) phases.push(placeAnchor(phases, intervalMs));
  const sorted = [...phases].sort((a, b) => a - b);
  return phases.map((phase) => {
    const i = sorted.indexOf(phase);
    return i + 1 < sorted.length ? sorted[i + 1] - phase : sorted[0] + intervalMs - phase;
  });
}

const HCI_VERSION = 0x09; // Bluetooth 5.0: noble needs >= 6
const MANUFACTURER = 0xffff; // "for internal use": no vendor-specific commands apply
const ACL_BUFFER_COUNT = 8;
const MIN_SUPERVISION_MS = 100;
const MAX_SUPERVISION_MS = 32000;
/** Catching up after a late timer runs at most this many events at once; beyond it the link skips ahead. */
const MAX_CATCH_UP_EVENTS = 10000;
const SMP_PAIRING_REQUEST = 0x01;
const SMP_PAIRING_FAILED = 0x05;
const SMP_PAIRING_NOT_SUPPORTED = 0x05;

interface PeripheralEntry {
  peripheral: VirtualPeripheral;
  powered: boolean;
  connection?: Connection;
}

interface PendingCreate {
  address: string;
  addressType: number;
  latency: number;
  supervisionTimeoutMs: number;
  timer?: SimTimer;
}

/** An L2CAP PDU on its way to the central, cut into link-layer fragments as events carry it. */
interface OutgoingPdu {
  data: Buffer;
  offset: number;
  queuedAt: number;
  isAtt: boolean;
  resolve?: () => void;
  reject?: (error: Error) => void;
}

/** An ACL packet from the host waiting to cross the air to the peripheral. */
interface IncomingAcl {
  pb: number;
  data: Buffer;
  offset: number;
  queuedAt: number;
}

interface OutboxItem {
  packet: Buffer;
  delivered?: () => void;
}

class Connection {
  readonly toCentral: OutgoingPdu[] = [];
  readonly toPeripheral: IncomingAcl[] = [];
  attQueued = 0;
  /** L2CAP PDU being reassembled from host fragments. */
  partial?: { cid: number; length: number; chunks: Buffer[]; received: number };
  eventIndex = 0;
  supervisionTimer?: SimTimer;
  /** Set by the host's Disconnect: carried out once the data queued to the peripheral has gone. */
  terminate?: { peripheralReason: number };
  /** Set by the peripheral's PeripheralLink.disconnect: carried out once the data queued to the central has gone. */
  remoteTerminate?: { hostReason: number };
  /** The peripheral went silent (powered off); the link waits for the supervision timeout. */
  lost = false;
  open = true;
  readonly link: PeripheralLink;

  constructor(
    readonly handle: number,
    readonly entry: PeripheralEntry,
    readonly anchorMs: number,
    readonly intervalMs: number,
    public latency: number,
    public supervisionTimeoutMs: number,
    enqueueAtt: (conn: Connection, pdu: Buffer) => Promise<void>,
  ) {
    this.link = new ConnectionLink(this, enqueueAtt);
  }

  /** The anchor of the next event not yet run. */
  get nextAnchorMs(): number {
    return this.anchorMs + (this.eventIndex + 1) * this.intervalMs;
  }
}

/** What the peripheral holds of its connection: nothing of the controller's internals. */
class ConnectionLink implements PeripheralLink {
  constructor(
    private readonly conn: Connection,
    private readonly enqueueAtt: (conn: Connection, pdu: Buffer) => Promise<void>,
  ) {}

  sendAtt(pdu: Buffer): Promise<void> {
    return this.enqueueAtt(this.conn, pdu);
  }

  get queuedAttPdus(): number {
    return this.conn.attQueued;
  }

  get connected(): boolean {
    return this.conn.open && !this.conn.remoteTerminate;
  }

  disconnect(reason = h4.HCI_REMOTE_USER_TERMINATED): void {
    if (this.conn.open) this.conn.remoteTerminate ??= { hostReason: reason };
  }
}

export class VirtualController extends EventEmitter {
  readonly clock: SimClock;
  readonly link: LinkSettings;
  readonly address: string;
  readonly counters: ControllerCounters = {
    commands: 0,
    hostAclPackets: 0,
    hostAclBytes: 0,
    controllerAclPackets: 0,
    controllerAclBytes: 0,
    connectionEvents: 0,
    pdusToPeripheral: 0,
    pdusToCentral: 0,
    advertisingReports: 0,
  };

  private readonly advertisingIntervalMs: number;
  private readonly connectDelayMs: number;
  private readonly rssi: number;
  private readonly entries = new Map<string, PeripheralEntry>();
  private readonly connections = new Map<number, Connection>();
  private nextHandle = 0x0040;
  private pendingCreate?: PendingCreate;

  private scanning = false;
  private activeScan = true;
  private filterDuplicates = false;
  private readonly reported = new Set<string>();
  private scanTimer?: SimTimer;
  private scanStartedAt = 0;
  private scanRound = 0;

  /** L2CAP PDUs completed during a connection event, handed over after it. */
  private readonly inbound = new Map<Connection, { cid: number; payload: Buffer }[]>();
  private outbox: OutboxItem[] = [];
  private flushHandle?: NodeJS.Immediate;
  /** Simulated time of the connection event being processed, so replies queued during it are stamped with it. */
  private eventTime?: number;
  /** The one radio: the timer for the next connection event of any link, and when the radio is free again. */
  private radioTimer?: SimTimer;
  private radioTimerAt = Infinity;
  private radioFreeAtMs = -Infinity;
  private closed = false;

  constructor(options: VirtualControllerOptions) {
    super();
    this.clock = options.clock;
    this.link = { ...(options.link ?? DEFAULT_LINK) };
    this.address = (options.address ?? "02:00:00:00:00:01").toLowerCase();
    h4.addressToBytes(this.address); // validates
    this.advertisingIntervalMs = options.advertisingIntervalMs ?? 100;
    this.connectDelayMs = options.connectDelayMs ?? 10;
    this.rssi = options.rssi ?? -55;
    const { connectionIntervalMs, pdusPerEvent, dataLength } = this.link;
    if (!(connectionIntervalMs >= 7.5 && connectionIntervalMs <= 4000)) throw new RangeError(`connectionIntervalMs must be 7.5 … 4000, got ${connectionIntervalMs}`);
    if (!(Number.isInteger(pdusPerEvent) && pdusPerEvent >= 1)) throw new RangeError(`pdusPerEvent must be a whole number >= 1, got ${pdusPerEvent}`);
    if (!(Number.isInteger(dataLength) && dataLength >= 27 && dataLength <= 251)) throw new RangeError(`dataLength must be 27 … 251, got ${dataLength}`);
  }

  // -------------------------------------------------------------------------------------------------------------------
  // Peripherals

  addPeripheral(peripheral: VirtualPeripheral): void {
    const address = peripheral.address.toLowerCase();
    h4.addressToBytes(address);
    if (this.entries.has(address)) throw new Error(`a peripheral with address ${address} already exists`);
    this.entries.set(address, { peripheral, powered: true });
  }

  peripheral(address: string): VirtualPeripheral | undefined {
    return this.entries.get(address.toLowerCase())?.peripheral;
  }

  peripherals(): VirtualPeripheral[] {
    return [...this.entries.values()].map((e) => e.peripheral);
  }

  isPoweredOn(address: string): boolean {
    return this.entry(address).powered;
  }

  /** Links currently up (a test of connection sharing counts them). */
  get connectionCount(): number {
    return this.connections.size;
  }

  isConnected(address: string): boolean {
    return this.entry(address).connection !== undefined;
  }

  /** The peripheral stops advertising; a link to it is lost after the supervision timeout (reason 0x08). */
  powerOff(address: string): void {
    const entry = this.entry(address);
    if (!entry.powered || this.closed) return;
    entry.powered = false;
    const pending = this.pendingCreate;
    if (pending && pending.address === entry.peripheral.address.toLowerCase()) {
      pending.timer?.cancel();
      pending.timer = undefined;
    }
    const conn = entry.connection;
    if (conn && !conn.lost) {
      conn.lost = true;
      conn.supervisionTimer = this.clock.setTimeout(() => {
        conn.supervisionTimer = undefined;
        this.closeConnection(conn, h4.HCI_CONNECTION_TIMEOUT, h4.HCI_CONNECTION_TIMEOUT, true);
      }, conn.supervisionTimeoutMs);
    }
    this.emit("power", entry.peripheral.address, false);
  }

  /** The peripheral advertises again (and a pending LE Create Connection to it completes). */
  powerOn(address: string): void {
    const entry = this.entry(address);
    if (entry.powered || this.closed) return;
    entry.powered = true;
    // A rebooted device is new to the duplicate filter, so a scan that is still running reports it again.
    const key = entry.peripheral.address.toLowerCase();
    for (const k of [...this.reported]) if (k.startsWith(key)) this.reported.delete(k);
    this.tryCompleteConnection();
    this.emit("power", entry.peripheral.address, true);
  }

  private entry(address: string): PeripheralEntry {
    const entry = this.entries.get(address.toLowerCase());
    if (!entry) throw new Error(`no virtual peripheral with address ${address}`);
    return entry;
  }

  // -------------------------------------------------------------------------------------------------------------------
  // Host → controller

  /** One H4 packet from the host. */
  write(packet: Buffer): void {
    if (this.closed || packet.length === 0) return;
    this.emit("host-h4", packet);
    if (packet[0] === h4.H4_COMMAND) {
      const cmd = h4.parseCommand(packet);
      if (!cmd) return this.warn(`truncated HCI command ${packet.toString("hex")}`);
      this.counters.commands++;
      this.onCommand(cmd.opcode, cmd.params);
    } else if (packet[0] === h4.H4_ACL) {
      const acl = h4.parseAcl(packet);
      if (!acl) return this.warn(`truncated ACL packet ${packet.toString("hex")}`);
      this.onHostAcl(acl);
    } else {
      this.warn(`ignored H4 packet type 0x${packet[0].toString(16)}`);
    }
  }

  private onCommand(op: number, p: Buffer): void {
    const complete = (status: number, result?: Buffer) => this.send(h4.buildCommandComplete(op, status, result));
    const ok = (result?: Buffer) => complete(h4.HCI_SUCCESS, result);
    switch (op) {
      case h4.OP.RESET:
        this.reset();
        return ok();
      case h4.OP.SET_EVENT_MASK:
      case h4.OP.LE_SET_EVENT_MASK:
      case h4.OP.SET_EVENT_FILTER:
      case h4.OP.WRITE_LE_HOST_SUPPORTED:
        return ok();
      case h4.OP.READ_LE_HOST_SUPPORTED:
        return ok(Buffer.from([0x01, 0x00]));
      case h4.OP.READ_LOCAL_VERSION: {
        const r = Buffer.alloc(8);
        r[0] = HCI_VERSION;
        r.writeUInt16LE(0, 1);
        r[3] = HCI_VERSION;
        r.writeUInt16LE(MANUFACTURER, 4);
        r.writeUInt16LE(0, 6);
        return ok(r);
      }
      case h4.OP.READ_BD_ADDR:
        return ok(h4.addressToBytes(this.address));
      case h4.OP.READ_BUFFER_SIZE: {
        const r = Buffer.alloc(7);
        r.writeUInt16LE(this.link.dataLength, 0);
        r[2] = 0;
        r.writeUInt16LE(ACL_BUFFER_COUNT, 3);
        r.writeUInt16LE(0, 5);
        return ok(r);
      }
      case h4.OP.LE_READ_BUFFER_SIZE: {
        // One host ACL packet = one link-layer PDU: the host fragments exactly as the air does.
        const r = Buffer.alloc(3);
        r.writeUInt16LE(this.link.dataLength, 0);
        r[2] = ACL_BUFFER_COUNT;
        return ok(r);
      }
      case h4.OP.LE_READ_LOCAL_SUPPORTED_FEATURES: {
        // Only Data Length Extension (byte 0 bit 5), and only when the link uses it; no extended advertising,
        // so noble stays with the legacy scan/connect commands.
        const r = Buffer.alloc(8);
        if (this.link.dataLength > 27) r[0] |= 1 << 5;
        return ok(r);
      }
      case h4.OP.LE_READ_MAX_DATA_LENGTH: {
        const r = Buffer.alloc(8);
        const time = pduAirTimeUs(this.link.dataLength + 4); // spec formula: (octets + 14) × 8
        r.writeUInt16LE(this.link.dataLength, 0);
        r.writeUInt16LE(time, 2);
        r.writeUInt16LE(this.link.dataLength, 4);
        r.writeUInt16LE(time, 6);
        return ok(r);
      }
      case h4.OP.LE_SET_DATA_LENGTH: {
        if (p.length < 6) return complete(h4.HCI_INVALID_PARAMETERS, Buffer.alloc(2));
        const handle = p.readUInt16LE(0) & 0x0fff;
        const known = this.connections.has(handle);
        return complete(known ? h4.HCI_SUCCESS : h4.HCI_UNKNOWN_CONNECTION_ID, p.subarray(0, 2));
      }
      case h4.OP.LE_SET_SCAN_PARAMETERS:
        if (p.length < 7) return complete(h4.HCI_INVALID_PARAMETERS);
        if (this.scanning) return complete(h4.HCI_COMMAND_DISALLOWED);
        this.activeScan = p[0] === 0x01;
        return ok();
      case h4.OP.LE_SET_SCAN_ENABLE:
        if (p.length < 2) return complete(h4.HCI_INVALID_PARAMETERS);
        ok();
        return this.setScan(p[0] === 0x01, p[1] === 0x01);
      case h4.OP.LE_CREATE_CONNECTION:
        return this.createConnection(op, p);
      case h4.OP.LE_CREATE_CONNECTION_CANCEL:
        return this.cancelCreateConnection(op);
      case h4.OP.DISCONNECT: {
        if (p.length < 3) return this.send(h4.buildCommandStatus(op, h4.HCI_INVALID_PARAMETERS));
        const conn = this.connections.get(p.readUInt16LE(0) & 0x0fff);
        if (!conn) return this.send(h4.buildCommandStatus(op, h4.HCI_UNKNOWN_CONNECTION_ID));
        if (conn.terminate) return this.send(h4.buildCommandStatus(op, h4.HCI_COMMAND_DISALLOWED));
        this.send(h4.buildCommandStatus(op, h4.HCI_SUCCESS));
        conn.terminate = { peripheralReason: p[2] };
        return;
      }
      case h4.OP.LE_CONNECTION_UPDATE: {
        if (p.length < 14) return this.send(h4.buildCommandStatus(op, h4.HCI_INVALID_PARAMETERS));
        const conn = this.connections.get(p.readUInt16LE(0) & 0x0fff);
        if (!conn) return this.send(h4.buildCommandStatus(op, h4.HCI_UNKNOWN_CONNECTION_ID));
        this.send(h4.buildCommandStatus(op, h4.HCI_SUCCESS));
        // The interval is a property of the simulated link; latency and supervision timeout follow the host.
        conn.latency = p.readUInt16LE(6);
        conn.supervisionTimeoutMs = this.supervisionMs(p.readUInt16LE(8), conn.intervalMs);
        const r = Buffer.alloc(9);
        r[0] = h4.HCI_SUCCESS;
        r.writeUInt16LE(conn.handle, 1);
        r.writeUInt16LE(Math.round(conn.intervalMs / 1.25), 3);
        r.writeUInt16LE(conn.latency, 5);
        r.writeUInt16LE(Math.round(conn.supervisionTimeoutMs / 10), 7);
        return this.send(h4.buildLeMetaEvent(h4.LE_CONNECTION_UPDATE_COMPLETE, r));
      }
      case h4.OP.READ_RSSI: {
        const handle = p.length >= 2 ? p.readUInt16LE(0) & 0x0fff : 0;
        const r = Buffer.alloc(3);
        r.writeUInt16LE(handle, 0);
        r.writeInt8(this.rssi, 2);
        return complete(this.connections.has(handle) ? h4.HCI_SUCCESS : h4.HCI_UNKNOWN_CONNECTION_ID, r);
      }
      default:
        // Never stay silent: a host waiting for a reply would hang.
        return complete(h4.HCI_UNKNOWN_COMMAND);
    }
  }

  /** HCI Reset: scanning and initiating stop, links vanish without events (the host forgets them too). */
  private reset(): void {
    this.setScan(false, false);
    this.activeScan = true;
    if (this.pendingCreate) {
      this.pendingCreate.timer?.cancel();
      this.pendingCreate = undefined;
    }
    // The peripheral just stops hearing the central: for it, a supervision timeout.
    for (const conn of [...this.connections.values()]) this.closeConnection(conn, h4.HCI_CONNECTION_TIMEOUT, h4.HCI_CONNECTION_TIMEOUT, false);
  }

  // -------------------------------------------------------------------------------------------------------------------
  // Scanning

  private setScan(enable: boolean, filterDuplicates: boolean): void {
    if (!enable) {
      this.scanning = false;
      this.scanTimer?.cancel();
      this.scanTimer = undefined;
      return;
    }
    this.filterDuplicates = filterDuplicates;
    if (this.scanning) return;
    this.scanning = true;
    this.reported.clear();
    this.scanStartedAt = this.clock.now();
    this.scanRound = 0;
    this.scheduleScanRound();
  }

  private scheduleScanRound(): void {
    const at = this.scanStartedAt + this.scanRound * this.advertisingIntervalMs;
    this.scanTimer = this.clock.setTimeout(() => this.scanRoundDue(), at - this.clock.now());
  }

  private scanRoundDue(): void {
    this.scanTimer = undefined;
    if (!this.scanning || this.closed) return;
    this.reportAdvertisers();
    // A late timer reports once and moves to the next slot ahead: no flood of stale reports.
    const elapsed = this.clock.now() - this.scanStartedAt;
    this.scanRound = Math.max(this.scanRound + 1, Math.floor(elapsed / this.advertisingIntervalMs) + 1);
    this.scheduleScanRound();
  }

  private reportAdvertisers(): void {
    for (const entry of this.entries.values()) {
      if (!entry.powered || entry.connection) continue;
      const p = entry.peripheral;
      this.report(p, h4.ADV_IND, p.advertisingData());
      if (this.activeScan) this.report(p, h4.SCAN_RSP, p.scanResponseData());
    }
  }

  private report(p: VirtualPeripheral, eventType: number, data: Buffer): void {
    const key = `${p.address.toLowerCase()}/${eventType}`;
    if (this.filterDuplicates && this.reported.has(key)) return;
    this.reported.add(key);
    if (data.length > 31) {
      this.warn(`${p.address}: advertising data of ${data.length} bytes cut to 31`);
      data = data.subarray(0, 31);
    }
    this.counters.advertisingReports++;
    this.send(h4.buildLeAdvertisingReport({ eventType, addressType: p.addressType === "random" ? 1 : 0, address: p.address.toLowerCase(), data, rssi: this.rssi }));
  }

  // -------------------------------------------------------------------------------------------------------------------
  // Connecting

  private supervisionMs(units: number, intervalMs: number): number {
    return Math.min(MAX_SUPERVISION_MS, Math.max(MIN_SUPERVISION_MS, units * 10, 2 * intervalMs));
  }

  private createConnection(op: number, p: Buffer): void {
    if (p.length < 25) return this.send(h4.buildCommandStatus(op, h4.HCI_INVALID_PARAMETERS));
    if (this.pendingCreate) return this.send(h4.buildCommandStatus(op, h4.HCI_COMMAND_DISALLOWED));
    this.send(h4.buildCommandStatus(op, h4.HCI_SUCCESS));
    this.pendingCreate = {
      addressType: p[5],
      address: h4.bytesToAddress(p.subarray(6, 12)),
      latency: p.readUInt16LE(17),
      supervisionTimeoutMs: this.supervisionMs(p.readUInt16LE(19), this.link.connectionIntervalMs),
    };
    this.tryCompleteConnection();
  }

  /** Completes the pending LE Create Connection once its peer advertises (powered on, not connected). */
  private tryCompleteConnection(): void {
    const pending = this.pendingCreate;
    if (!pending || pending.timer) return;
    const entry = this.entries.get(pending.address);
    // The initiator only connects to the address and address type it was given, as real hardware does.
    if (!entry || !entry.powered || entry.connection) return;
    if ((entry.peripheral.addressType === "random" ? 1 : 0) !== pending.addressType) return;
    pending.timer = this.clock.setTimeout(() => {
      pending.timer = undefined;
      if (this.pendingCreate !== pending || !entry.powered || entry.connection) return;
      this.pendingCreate = undefined;
      this.openConnection(entry, pending);
    }, this.connectDelayMs);
  }

  private cancelCreateConnection(op: number): void {
    const pending = this.pendingCreate;
    if (!pending) return this.send(h4.buildCommandComplete(op, h4.HCI_COMMAND_DISALLOWED));
    pending.timer?.cancel();
    this.pendingCreate = undefined;
    this.send(h4.buildCommandComplete(op, h4.HCI_SUCCESS));
    this.send(
      h4.buildLeConnectionComplete({
        status: h4.HCI_UNKNOWN_CONNECTION_ID,
        handle: 0,
        role: 0,
        peerAddressType: pending.addressType,
        peerAddress: pending.address,
        interval: 0,
        latency: 0,
        supervisionTimeout: 0,
        clockAccuracy: 0,
      }),
    );
  }

  private allocateHandle(): number {
    for (;;) {
      const handle = this.nextHandle;
      this.nextHandle = handle >= 0x0eff ? 0x0001 : handle + 1;
      if (!this.connections.has(handle)) return handle;
    }
  }

  private openConnection(entry: PeripheralEntry, pending: PendingCreate): void {
    const intervalMs = this.link.connectionIntervalMs;
    const now = this.clock.now();
    // The first anchor comes within one interval of now (the transmit window offset), at the phase that leaves
    // the most room next to the links already on the radio.
    const phase = placeAnchor([...this.connections.values()].map((c) => ((c.anchorMs % intervalMs) + intervalMs) % intervalMs), intervalMs, now);
    const offset = (((phase - now) % intervalMs) + intervalMs) % intervalMs;
    const anchorMs = now + (offset > 1e-9 ? offset : intervalMs) - intervalMs;
    const conn = new Connection(this.allocateHandle(), entry, anchorMs, intervalMs, pending.latency, pending.supervisionTimeoutMs, (c, pdu) =>
      this.enqueueAtt(c, pdu),
    );
    this.connections.set(conn.handle, conn);
    entry.connection = conn;
    this.send(
      h4.buildLeConnectionComplete({
        status: h4.HCI_SUCCESS,
        handle: conn.handle,
        role: 0x00,
        peerAddressType: pending.addressType,
        peerAddress: pending.address,
        interval: Math.round(intervalMs / 1.25),
        latency: pending.latency,
        supervisionTimeout: Math.round(conn.supervisionTimeoutMs / 10),
        clockAccuracy: 0,
      }),
    );
    this.scheduleRadio();
    entry.peripheral.connected(conn.link);
  }

  /**
   * Ends a link. `hostReason` goes into Disconnection Complete (when `notifyHost`), `peripheralReason` to the
   * peripheral. ATT PDUs not yet carried are rejected.
   */
  private closeConnection(conn: Connection, hostReason: number, peripheralReason: number, notifyHost: boolean): void {
    if (!conn.open) return;
    conn.open = false;
    conn.supervisionTimer?.cancel();
    this.connections.delete(conn.handle);
    if (conn.entry.connection === conn) conn.entry.connection = undefined;
    const error = new Error(`link to ${conn.entry.peripheral.address} dropped (reason 0x${peripheralReason.toString(16).padStart(2, "0")})`);
    for (const item of conn.toCentral.splice(0)) {
      if (item.isAtt) conn.attQueued--;
      item.reject?.(error);
    }
    conn.toPeripheral.length = 0;
    if (notifyHost) this.send(h4.buildDisconnectionComplete({ status: h4.HCI_SUCCESS, handle: conn.handle, reason: hostReason }));
    conn.entry.peripheral.disconnected(peripheralReason);
    if (conn.entry.powered) this.tryCompleteConnection();
  }

  // -------------------------------------------------------------------------------------------------------------------
  // Link layer

  private enqueueAtt(conn: Connection, pdu: Buffer): Promise<void> {
    if (!conn.open || conn.remoteTerminate) return Promise.reject(new Error(`not connected to ${conn.entry.peripheral.address}`));
    return new Promise<void>((resolve, reject) => {
      conn.attQueued++;
      conn.toCentral.push({ data: h4.buildL2cap(h4.CID_ATT, pdu), offset: 0, queuedAt: this.now(), isAtt: true, resolve, reject });
    });
  }

  private enqueueL2cap(conn: Connection, cid: number, payload: Buffer): void {
    conn.toCentral.push({ data: h4.buildL2cap(cid, payload), offset: 0, queuedAt: this.now(), isAtt: false });
  }

  private now(): number {
    return this.eventTime ?? this.clock.now();
  }

  private onHostAcl(acl: h4.AclPacket): void {
    this.counters.hostAclPackets++;
    this.counters.hostAclBytes += acl.data.length;
    const conn = this.connections.get(acl.handle);
    if (!conn || conn.terminate) return this.warn(`ACL data for unknown connection handle 0x${acl.handle.toString(16)} dropped`);
    conn.toPeripheral.push({ pb: acl.pb, data: Buffer.from(acl.data), offset: 0, queuedAt: this.clock.now() });
  }

  /**
   * Connection events sit on absolute anchors (anchor + n × interval), so late timers do not drift the links. One
   * timer serves the radio: it wakes for the earliest anchor of any link.
   */
  private scheduleRadio(): void {
    let next = Infinity;
    for (const conn of this.connections.values()) next = Math.min(next, conn.nextAnchorMs);
    if (next === this.radioTimerAt && this.radioTimer) return;
    this.radioTimer?.cancel();
    this.radioTimer = undefined;
    this.radioTimerAt = next;
    if (next === Infinity || this.closed) return;
    this.radioTimer = this.clock.setTimeout(() => this.connectionEventsDue(), next - this.clock.now());
  }

  /** Runs every event that is due, of all links, in anchor order (the radio serves one at a time). */
  private connectionEventsDue(): void {
    this.radioTimer = undefined;
    this.radioTimerAt = Infinity;
    if (this.closed) return;
    // The tolerance absorbs float rounding between the timer's delay and the anchor it was computed from.
    const now = this.clock.now() + 1e-6;
    let ran = 0;
    for (;;) {
      let conn: Connection | undefined;
      for (const c of this.connections.values()) if (!conn || c.nextAnchorMs < conn.nextAnchorMs) conn = c;
      if (!conn || conn.nextAnchorMs > now || this.closed) break;
      if (++ran > MAX_CATCH_UP_EVENTS) {
        // Far behind (a stalled process): every link skips to its latest anchor, the radio starts afresh.
        for (const c of this.connections.values()) c.eventIndex = Math.max(c.eventIndex, Math.floor((now - c.anchorMs) / c.intervalMs));
        this.radioFreeAtMs = -Infinity;
        break;
      }
      conn.eventIndex++;
      this.runConnectionEvent(conn, conn.anchorMs + conn.eventIndex * conn.intervalMs);
    }
    this.scheduleRadio();
  }

  /**
   * When the event anchored at `at` must end: before its own next anchor and before the next anchor of every other
   * link (those events are still to run, in anchor order).
   */
  private eventEndMs(conn: Connection, at: number): number {
    let end = at + conn.intervalMs;
    for (const c of this.connections.values()) if (c !== conn) end = Math.min(end, c.nextAnchorMs);
    return end;
  }

  private runConnectionEvent(conn: Connection, at: number): void {
    this.counters.connectionEvents++;
    const info: ConnectionEventInfo = {
      handle: conn.handle,
      address: conn.entry.peripheral.address,
      atMs: at,
      startMs: Math.max(at, this.radioFreeAtMs),
      toCentralPdus: 0,
      toCentralBytes: 0,
      toPeripheralPdus: 0,
      toPeripheralBytes: 0,
      airTimeUs: 0,
      skipped: false,
    };
    if (info.startMs >= at + conn.intervalMs) {
      // The radio is busy until past this link's next anchor: the event does not happen (the peripheral hears
      // nothing and waits for the next one).
      info.skipped = true;
      this.emit("connectionEvent", info);
      return;
    }
    const endMs = this.eventEndMs(conn, at);
    const finish = () => {
      this.radioFreeAtMs = info.startMs + info.airTimeUs / 1000;
      this.emit("connectionEvent", info);
    };
    if (conn.terminate && !conn.lost && conn.toPeripheral.length === 0) {
      // LL_TERMINATE_IND goes out after the data already queued to the peripheral (a last Write Command must
      // not be lost); the host hears 0x16, the peripheral the host's reason.
      // (Towards a silent peripheral it is never acknowledged: the supervision timeout ends the link instead.)
      info.airTimeUs = exchangeAirTimeUs(LL_TERMINATE_IND_BYTES, 0);
      finish();
      this.closeConnection(conn, h4.HCI_LOCAL_HOST_TERMINATED, conn.terminate.peripheralReason, true);
      return;
    }
    if (conn.remoteTerminate && !conn.lost && conn.toCentral.length === 0) {
      info.airTimeUs = exchangeAirTimeUs(0, LL_TERMINATE_IND_BYTES);
      finish();
      this.closeConnection(conn, conn.remoteTerminate.hostReason, h4.HCI_LOCAL_HOST_TERMINATED, true);
      return;
    }
    if (conn.lost) {
      // Nobody answers the central: its empty packet goes out, the answer never comes, the link waits for the
      // supervision timeout.
      info.airTimeUs = pduAirTimeUs(0) + 2 * T_IFS_US;
      finish();
      return;
    }
    const dl = this.link.dataLength;
    const budgetUs = (endMs - info.startMs) * 1000;
    const completedHostPackets: Buffer[] = [];
    for (;;) {
      const up = info.toPeripheralPdus < this.link.pdusPerEvent ? conn.toPeripheral[0] : undefined;
      const upOk = up !== undefined && up.queuedAt <= at;
      const down = info.toCentralPdus < this.link.pdusPerEvent ? conn.toCentral[0] : undefined;
      const downOk = down !== undefined && down.queuedAt <= at;
      if (!upOk && !downOk) break;
      const upLen = upOk ? Math.min(dl, up.data.length - up.offset) : 0;
      const downLen = downOk ? Math.min(dl, down.data.length - down.offset) : 0;
      const cost = exchangeAirTimeUs(upLen, downLen);
      // The first exchange always happens: an event is at least one exchange (a single link always has room for
      // it: even two 251-byte PDUs take less than the shortest interval; on a crowded radio it delays the next).
      if (info.airTimeUs > 0 && info.airTimeUs + cost > budgetUs) break;
      info.airTimeUs += cost;
      if (upOk) {
        up.offset += upLen;
        info.toPeripheralPdus++;
        info.toPeripheralBytes += upLen;
        this.counters.pdusToPeripheral++;
        if (up.offset >= up.data.length) {
          conn.toPeripheral.shift();
          completedHostPackets.push(up.data);
          this.feedL2cap(conn, up.pb, up.data);
        }
      }
      if (downOk) {
        const first = down.offset === 0;
        const fragment = down.data.subarray(down.offset, down.offset + downLen);
        down.offset += downLen;
        info.toCentralPdus++;
        info.toCentralBytes += downLen;
        this.counters.pdusToCentral++;
        this.counters.controllerAclPackets++;
        this.counters.controllerAclBytes += downLen;
        const last = down.offset >= down.data.length;
        if (last) conn.toCentral.shift();
        const delivered = last
          ? () => {
              if (down.isAtt) conn.attQueued--;
              down.resolve?.();
            }
          : undefined;
        this.send(h4.buildAcl(conn.handle, first ? h4.PB_FIRST_FLUSHABLE : h4.PB_CONTINUING, fragment), delivered);
      }
    }
    // Nothing to carry: the empty exchange that keeps the link alive still takes the radio.
    if (info.airTimeUs === 0) info.airTimeUs = exchangeAirTimeUs(0, 0);
    if (completedHostPackets.length > 0) {
      this.send(h4.buildNumberOfCompletedPackets([{ handle: conn.handle, count: completedHostPackets.length }]));
    }
    finish();
    this.deliverToPeripheral(conn, at);
  }

  /** Reassembles L2CAP PDUs from the host's ACL packets (PB 00/10 start, 01 continue). */
  private feedL2cap(conn: Connection, pb: number, data: Buffer): void {
    const done = (cid: number, payload: Buffer) => {
      const list = this.inbound.get(conn) ?? [];
      list.push({ cid, payload });
      this.inbound.set(conn, list);
    };
    if (pb === h4.PB_CONTINUING) {
      const partial = conn.partial;
      if (!partial) return this.warn("ACL continuation without a start dropped");
      partial.chunks.push(data);
      partial.received += data.length;
      if (partial.received >= partial.length) {
        conn.partial = undefined;
        done(partial.cid, Buffer.concat(partial.chunks).subarray(0, partial.length));
      }
      return;
    }
    if (conn.partial) this.warn("incomplete L2CAP PDU discarded by a new start fragment");
    conn.partial = undefined;
    const header = h4.parseL2capHeader(data);
    if (!header) return this.warn("ACL start fragment shorter than an L2CAP header dropped");
    const payload = data.subarray(4);
    if (payload.length >= header.length) return done(header.cid, payload.subarray(0, header.length));
    conn.partial = { cid: header.cid, length: header.length, chunks: [payload], received: payload.length };
  }

  /** Hands the PDUs completed in one event to the peripheral, after the event, stamped with its time. */
  private deliverToPeripheral(conn: Connection, at: number): void {
    const list = this.inbound.get(conn);
    if (!list) return;
    this.inbound.delete(conn);
    this.eventTime = at;
    try {
      for (const { cid, payload } of list) {
        if (!conn.open) break;
        if (cid === h4.CID_ATT) {
          conn.entry.peripheral.receiveAtt(payload);
        } else if (cid === h4.CID_SMP) {
          // No pairing: a central that asks is told so, and its GATT request stays unanswered (noble-hci.md).
          if (payload[0] === SMP_PAIRING_REQUEST) this.enqueueL2cap(conn, h4.CID_SMP, Buffer.from([SMP_PAIRING_FAILED, SMP_PAIRING_NOT_SUPPORTED]));
        }
        // LE signalling (CID 5) and anything else: the peripheral has nothing to say.
      }
    } finally {
      this.eventTime = undefined;
    }
  }

  // -------------------------------------------------------------------------------------------------------------------
  // Controller → host

  private send(packet: Buffer, delivered?: () => void): void {
    if (this.closed) return;
    this.outbox.push({ packet, delivered });
    this.flushHandle ??= setImmediate(() => this.flush());
  }

  /**
   * Emits what was queued before this tick, one packet per 'h4'. Packets queued while emitting (replies to
   * what the host writes from its handlers) wait for the next tick, so the host never sees a reentrant reply.
   * A listener that throws does not undo the emission: the packet counts as delivered (its send completes, so
   * the transmit window stays whole), the error propagates as from any emitter, and the rest of the batch
   * follows on the next tick.
   */
  private flush(): void {
    this.flushHandle = undefined;
    const batch = this.outbox;
    this.outbox = [];
    let i = 0;
    try {
      for (; i < batch.length && !this.closed; i++) {
        const item = batch[i];
        try {
          this.emit("h4", item.packet);
        } finally {
          item.delivered?.();
        }
      }
    } finally {
      if (i + 1 < batch.length && !this.closed) {
        this.outbox = batch.slice(i + 1).concat(this.outbox);
      }
      if (this.outbox.length > 0 && !this.closed) this.flushHandle ??= setImmediate(() => this.flush());
    }
  }

  private warn(message: string): void {
    if (this.listenerCount("warning") > 0) this.emit("warning", message);
  }

  /** Ends the simulation: timers cancelled, pending ATT sends rejected, peripherals closed; no event after 'close'. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.flushHandle) clearImmediate(this.flushHandle);
    this.flushHandle = undefined;
    this.outbox = [];
    this.scanning = false;
    this.scanTimer?.cancel();
    this.pendingCreate?.timer?.cancel();
    this.pendingCreate = undefined;
    this.radioTimer?.cancel();
    this.radioTimer = undefined;
    const error = new Error("virtual controller closed");
    for (const conn of this.connections.values()) {
      conn.open = false;
      conn.supervisionTimer?.cancel();
      for (const item of conn.toCentral.splice(0)) item.reject?.(error);
      conn.attQueued = 0;
      conn.entry.connection = undefined;
    }
    this.connections.clear();
    for (const entry of this.entries.values()) entry.peripheral.close();
    this.emit("close");
  }

  get isClosed(): boolean {
    return this.closed;
  }
}
