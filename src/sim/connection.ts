/**
 * What the parts of the virtual controller share: one link's state (Connection), what its peripheral holds of it
 * (ConnectionLink), a peripheral's place on the controller (PeripheralEntry), and the controller services every part
 * uses (ControllerPorts). The parts: hci-commands.ts (HCI command table), scanner.ts (scanning, advertising
 * reports), initiator.ts (LE Create Connection), radio.ts (connection events on the one radio), l2cap.ts (ACL ↔ L2CAP).
 */
import { HCI_REMOTE_USER_TERMINATED } from "../protocol/hci";
import type { Clock, Timer } from "../protocol/clock";
import type { LinkSettings, PeripheralLink, VirtualPeripheral } from "./types";

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

/** The controller's services its parts use. */
export interface ControllerPorts {
  readonly clock: Clock;
  readonly link: LinkSettings;
  readonly counters: ControllerCounters;
  /** close() was called: nothing is sent or scheduled any more. */
  isClosed(): boolean;
  /** Queues one H4 packet towards the host; `delivered` runs once it has been emitted. */
  send(packet: Buffer, delivered?: () => void): void;
  /** Something the host or a peripheral did wrong that the controller tolerated. */
  warn(message: string): void;
}

export interface PeripheralEntry {
  peripheral: VirtualPeripheral;
  powered: boolean;
  connection?: Connection;
}

/** An L2CAP PDU on its way to the central, cut into link-layer fragments as events carry it. */
export interface OutgoingPdu {
  data: Buffer;
  offset: number;
  queuedAt: number;
  isAtt: boolean;
  resolve?: () => void;
  reject?: (error: Error) => void;
}

/** An ACL packet from the host waiting to cross the air to the peripheral. */
export interface IncomingAcl {
  pb: number;
  data: Buffer;
  offset: number;
  queuedAt: number;
}

const MIN_SUPERVISION_MS = 100;
const MAX_SUPERVISION_MS = 32000;

/** The supervision timeout the controller uses for the host's `units` (10 ms each): within the spec's bounds. */
export function supervisionMs(units: number, intervalMs: number): number {
  return Math.min(MAX_SUPERVISION_MS, Math.max(MIN_SUPERVISION_MS, units * 10, 2 * intervalMs));
}

export class Connection {
  readonly toCentral: OutgoingPdu[] = [];
  readonly toPeripheral: IncomingAcl[] = [];
  attQueued = 0;
  /** L2CAP PDU being reassembled from host fragments. */
  partial?: { cid: number; length: number; chunks: Buffer[]; received: number };
  eventIndex = 0;
  supervisionTimer?: Timer;
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

  disconnect(reason = HCI_REMOTE_USER_TERMINATED): void {
    if (this.conn.open) this.conn.remoteTerminate ??= { hostReason: reason };
  }
}
