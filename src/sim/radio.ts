/**
 * The virtual controller's one radio: link timing (air time of PDUs and exchanges, how many PDUs an event can
 * carry), where a new link's anchor goes, and the connection events of every link, which never overlap.
 *
 * A new link's anchor goes into the middle of the largest free gap between the anchors already in use
 * (placeAnchor); an event starts at its anchor (or when the radio frees up) and ends before the next anchor of any
 * connection, its own included, after at least one exchange; a quiet event still costs the empty exchange that keeps
 * the link alive. An event that cannot start before its own next anchor is skipped. Each event moves a bounded
 * number of PDUs (pdusPerEvent and air time), so no setting beats physics; what crossed the air is reported to the
 * host (ACL fragments, Number Of Completed Packets) and handed to L2CAP.
 */
import { HCI_LOCAL_HOST_TERMINATED, HCI_SUCCESS, PB_CONTINUING, PB_FIRST_FLUSHABLE } from "../protocol/hci";
import { buildAcl, buildDisconnectionComplete, buildLeConnectionComplete, buildNumberOfCompletedPackets } from "../protocol/hci-packets";
import { Connection, type ControllerPorts, type PeripheralEntry } from "./connection";
import type { L2cap } from "./l2cap";
import type { Timer } from "../protocol/clock";
import type { LinkSettings } from "./types";

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
/** Catching up after a late timer runs at most this many events at once; beyond it the link skips ahead. */
const MAX_CATCH_UP_EVENTS = 10000;

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

/** What LE Create Connection asked for, as the link is opened with it. */
export interface LinkRequest {
  address: string;
  addressType: number;
  latency: number;
  supervisionTimeoutMs: number;
}

export interface RadioHooks {
  /** After each connection event (the controller's 'connectionEvent'). */
  connectionEvent(info: ConnectionEventInfo): void;
  /** A link ended; its peripheral may be connectable again. */
  linkClosed(entry: PeripheralEntry): void;
}

export class Radio {
  /** Links up, by connection handle. */
  readonly connections = new Map<number, Connection>();
  private nextHandle = 0x0040;
  /** The timer for the next connection event of any link, and when the radio is free again. */
  private timer?: Timer;
  private timerAt = Infinity;
  private freeAtMs = -Infinity;

  constructor(
    private readonly ports: ControllerPorts,
    private readonly l2cap: L2cap,
    private readonly hooks: RadioHooks,
  ) {}

  private allocateHandle(): number {
    for (;;) {
      const handle = this.nextHandle;
      this.nextHandle = handle >= 0x0eff ? 0x0001 : handle + 1;
      if (!this.connections.has(handle)) return handle;
    }
  }

  /** Opens a link to `entry` (LE Connection Complete to the host) and tells its peripheral. */
  open(entry: PeripheralEntry, request: LinkRequest): void {
    const intervalMs = this.ports.link.connectionIntervalMs;
    const now = this.ports.clock.now();
    // The first anchor comes within one interval of now (the transmit window offset), at the phase that leaves
    // the most room next to the links already on the radio.
    const phase = placeAnchor([...this.connections.values()].map((c) => ((c.anchorMs % intervalMs) + intervalMs) % intervalMs), intervalMs, now);
    const offset = (((phase - now) % intervalMs) + intervalMs) % intervalMs;
    const anchorMs = now + (offset > 1e-9 ? offset : intervalMs) - intervalMs;
    const conn = new Connection(this.allocateHandle(), entry, anchorMs, intervalMs, request.latency, request.supervisionTimeoutMs, (c, pdu) =>
      this.l2cap.enqueueAtt(c, pdu),
    );
    this.connections.set(conn.handle, conn);
    entry.connection = conn;
    this.ports.send(
      buildLeConnectionComplete({
        status: HCI_SUCCESS,
        handle: conn.handle,
        role: 0x00,
        peerAddressType: request.addressType,
        peerAddress: request.address,
        interval: Math.round(intervalMs / 1.25),
        latency: request.latency,
        supervisionTimeout: Math.round(conn.supervisionTimeoutMs / 10),
        clockAccuracy: 0,
      }),
    );
    this.schedule();
    entry.peripheral.connected(conn.link);
  }

  /**
   * Ends a link. `hostReason` goes into Disconnection Complete (when `notifyHost`), `peripheralReason` to the
   * peripheral. ATT PDUs not yet carried are rejected.
   */
  close(conn: Connection, hostReason: number, peripheralReason: number, notifyHost: boolean): void {
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
    if (notifyHost) this.ports.send(buildDisconnectionComplete({ status: HCI_SUCCESS, handle: conn.handle, reason: hostReason }));
    conn.entry.peripheral.disconnected(peripheralReason);
    if (conn.entry.powered) this.hooks.linkClosed(conn.entry);
  }

  /** The controller closes: every link vanishes at once, pending ATT sends reject with `error`. */
  stop(error: Error): void {
    this.timer?.cancel();
    this.timer = undefined;
    for (const conn of this.connections.values()) {
      conn.open = false;
      conn.supervisionTimer?.cancel();
      for (const item of conn.toCentral.splice(0)) item.reject?.(error);
      conn.attQueued = 0;
      conn.entry.connection = undefined;
    }
    this.connections.clear();
  }

  /**
   * Connection events sit on absolute anchors (anchor + n × interval), so late timers do not drift the links. One
   * timer serves the radio: it wakes for the earliest anchor of any link.
   */
  private schedule(): void {
    let next = Infinity;
    for (const conn of this.connections.values()) next = Math.min(next, conn.nextAnchorMs);
    if (next === this.timerAt && this.timer) return;
    this.timer?.cancel();
    this.timer = undefined;
    this.timerAt = next;
    if (next === Infinity || this.ports.isClosed()) return;
    this.timer = this.ports.clock.setTimeout(() => this.eventsDue(), next - this.ports.clock.now());
  }

  /** Runs every event that is due, of all links, in anchor order (the radio serves one at a time). */
  private eventsDue(): void {
    this.timer = undefined;
    this.timerAt = Infinity;
    if (this.ports.isClosed()) return;
    // The tolerance absorbs float rounding between the timer's delay and the anchor it was computed from.
    const now = this.ports.clock.now() + 1e-6;
    let ran = 0;
    for (;;) {
      let conn: Connection | undefined;
      for (const c of this.connections.values()) if (!conn || c.nextAnchorMs < conn.nextAnchorMs) conn = c;
      if (!conn || conn.nextAnchorMs > now || this.ports.isClosed()) break;
      if (++ran > MAX_CATCH_UP_EVENTS) {
        // Far behind (a stalled process): every link skips to its latest anchor, the radio starts afresh.
        for (const c of this.connections.values()) c.eventIndex = Math.max(c.eventIndex, Math.floor((now - c.anchorMs) / c.intervalMs));
        this.freeAtMs = -Infinity;
        break;
      }
      conn.eventIndex++;
      this.runEvent(conn, conn.anchorMs + conn.eventIndex * conn.intervalMs);
    }
    this.schedule();
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

  private runEvent(conn: Connection, at: number): void {
    const { counters, link } = this.ports;
    counters.connectionEvents++;
    const info: ConnectionEventInfo = {
      handle: conn.handle,
      address: conn.entry.peripheral.address,
      atMs: at,
      startMs: Math.max(at, this.freeAtMs),
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
      this.hooks.connectionEvent(info);
      return;
    }
    const endMs = this.eventEndMs(conn, at);
    const finish = () => {
      this.freeAtMs = info.startMs + info.airTimeUs / 1000;
      this.hooks.connectionEvent(info);
    };
    if (conn.terminate && !conn.lost && conn.toPeripheral.length === 0) {
      // LL_TERMINATE_IND goes out after the data already queued to the peripheral (a last Write Command must
      // not be lost); the host hears 0x16, the peripheral the host's reason.
      // (Towards a silent peripheral it is never acknowledged: the supervision timeout ends the link instead.)
      info.airTimeUs = exchangeAirTimeUs(LL_TERMINATE_IND_BYTES, 0);
      finish();
      this.close(conn, HCI_LOCAL_HOST_TERMINATED, conn.terminate.peripheralReason, true);
      return;
    }
    if (conn.remoteTerminate && !conn.lost && conn.toCentral.length === 0) {
      info.airTimeUs = exchangeAirTimeUs(0, LL_TERMINATE_IND_BYTES);
      finish();
      this.close(conn, conn.remoteTerminate.hostReason, HCI_LOCAL_HOST_TERMINATED, true);
      return;
    }
    if (conn.lost) {
      // Nobody answers the central: its empty packet goes out, the answer never comes, the link waits for the
      // supervision timeout.
      info.airTimeUs = pduAirTimeUs(0) + 2 * T_IFS_US;
      finish();
      return;
    }
    const dl = link.dataLength;
    const budgetUs = (endMs - info.startMs) * 1000;
    let completedHostPackets = 0;
    for (;;) {
      const up = info.toPeripheralPdus < link.pdusPerEvent ? conn.toPeripheral[0] : undefined;
      const upOk = up !== undefined && up.queuedAt <= at;
      const down = info.toCentralPdus < link.pdusPerEvent ? conn.toCentral[0] : undefined;
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
        counters.pdusToPeripheral++;
        if (up.offset >= up.data.length) {
          conn.toPeripheral.shift();
          completedHostPackets++;
          this.l2cap.received(conn, up.pb, up.data);
        }
      }
      if (downOk) {
        const first = down.offset === 0;
        const fragment = down.data.subarray(down.offset, down.offset + downLen);
        down.offset += downLen;
        info.toCentralPdus++;
        info.toCentralBytes += downLen;
        counters.pdusToCentral++;
        counters.controllerAclPackets++;
        counters.controllerAclBytes += downLen;
        const last = down.offset >= down.data.length;
        if (last) conn.toCentral.shift();
        const delivered = last
          ? () => {
              if (down.isAtt) conn.attQueued--;
              down.resolve?.();
            }
          : undefined;
        this.ports.send(buildAcl(conn.handle, first ? PB_FIRST_FLUSHABLE : PB_CONTINUING, fragment), delivered);
      }
    }
    // Nothing to carry: the empty exchange that keeps the link alive still takes the radio.
    if (info.airTimeUs === 0) info.airTimeUs = exchangeAirTimeUs(0, 0);
    // Flow control: the host's packets that crossed the air free its controller buffers.
    if (completedHostPackets > 0) this.ports.send(buildNumberOfCompletedPackets([{ handle: conn.handle, count: completedHostPackets }]));
    finish();
    this.l2cap.deliver(conn, at);
  }
}
