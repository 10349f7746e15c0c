/**
 * L2CAP on the virtual controller's links: ATT and SMP PDUs queued to the central as whole L2CAP frames (the radio
 * cuts them into link-layer fragments), the host's ACL packets queued to the peripheral, and their reassembly into
 * L2CAP PDUs (PB 00/10 start, 01 continue) handed to the peripheral after the connection event that completed them.
 * Flow control towards the host (Number Of Completed Packets) is the radio's: it knows when a packet crossed the air.
 */
import { CID_ATT, CID_SMP, PB_CONTINUING } from "../protocol/hci";
import { buildL2cap, parseL2capHeader, type AclPacket } from "../protocol/hci-packets";
import type { Connection, ControllerPorts } from "./connection";

const SMP_PAIRING_REQUEST = 0x01;
const SMP_PAIRING_FAILED = 0x05;
const SMP_PAIRING_NOT_SUPPORTED = 0x05;

export class L2cap {
  /** L2CAP PDUs completed during a connection event, handed over after it. */
  private readonly inbound = new Map<Connection, { cid: number; payload: Buffer }[]>();
  /** Simulated time of the connection event being processed, so replies queued during it are stamped with it. */
  private eventTime?: number;

  constructor(
    private readonly ports: ControllerPorts,
    /** The link that carries an ACL handle, or undefined when there is none (or it is being terminated). */
    private readonly connectionFor: (handle: number) => Connection | undefined,
  ) {}

  /** A peripheral's ATT PDU to the central: resolves once its last fragment reached the host. */
  enqueueAtt(conn: Connection, pdu: Buffer): Promise<void> {
    if (!conn.open || conn.remoteTerminate) return Promise.reject(new Error(`not connected to ${conn.entry.peripheral.address}`));
    return new Promise<void>((resolve, reject) => {
      conn.attQueued++;
      conn.toCentral.push({ data: buildL2cap(CID_ATT, pdu), offset: 0, queuedAt: this.now(), isAtt: true, resolve, reject });
    });
  }

  private enqueueL2cap(conn: Connection, cid: number, payload: Buffer): void {
    conn.toCentral.push({ data: buildL2cap(cid, payload), offset: 0, queuedAt: this.now(), isAtt: false });
  }

  private now(): number {
    return this.eventTime ?? this.ports.clock.now();
  }

  /** One ACL packet from the host: it waits for the next connection event of its link. */
  fromHost(acl: AclPacket): void {
    const { counters } = this.ports;
    counters.hostAclPackets++;
    counters.hostAclBytes += acl.data.length;
    const conn = this.connectionFor(acl.handle);
    if (!conn || conn.terminate) return this.ports.warn(`ACL data for unknown connection handle 0x${acl.handle.toString(16)} dropped`);
    conn.toPeripheral.push({ pb: acl.pb, data: Buffer.from(acl.data), offset: 0, queuedAt: this.ports.clock.now() });
  }

  /** A host ACL packet that has crossed the air: reassembled into L2CAP PDUs (PB 00/10 start, 01 continue). */
  received(conn: Connection, pb: number, data: Buffer): void {
    const done = (cid: number, payload: Buffer) => {
      const list = this.inbound.get(conn) ?? [];
      list.push({ cid, payload });
      this.inbound.set(conn, list);
    };
    if (pb === PB_CONTINUING) {
      const partial = conn.partial;
      if (!partial) return this.ports.warn("ACL continuation without a start dropped");
      partial.chunks.push(data);
      partial.received += data.length;
      if (partial.received >= partial.length) {
        conn.partial = undefined;
        done(partial.cid, Buffer.concat(partial.chunks).subarray(0, partial.length));
      }
      return;
    }
    if (conn.partial) this.ports.warn("incomplete L2CAP PDU discarded by a new start fragment");
    conn.partial = undefined;
    const header = parseL2capHeader(data);
    if (!header) return this.ports.warn("ACL start fragment shorter than an L2CAP header dropped");
    const payload = data.subarray(4);
    if (payload.length >= header.length) return done(header.cid, payload.subarray(0, header.length));
    conn.partial = { cid: header.cid, length: header.length, chunks: [payload], received: payload.length };
  }

  /** Hands the PDUs completed in one event to the peripheral, after the event, stamped with its time. */
  deliver(conn: Connection, at: number): void {
    const list = this.inbound.get(conn);
    if (!list) return;
    this.inbound.delete(conn);
    this.eventTime = at;
    try {
      for (const { cid, payload } of list) {
        if (!conn.open) break;
        if (cid === CID_ATT) {
          conn.entry.peripheral.receiveAtt(payload);
        } else if (cid === CID_SMP) {
          // No pairing: a central that asks is told so, and its GATT request stays unanswered (noble-hci.md).
          if (payload[0] === SMP_PAIRING_REQUEST) this.enqueueL2cap(conn, CID_SMP, Buffer.from([SMP_PAIRING_FAILED, SMP_PAIRING_NOT_SUPPORTED]));
        }
        // LE signalling (CID 5) and anything else: the peripheral has nothing to say.
      }
    } finally {
      this.eventTime = undefined;
    }
  }
}
