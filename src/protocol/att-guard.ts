/**
 * A gate for ATT PDUs from a remote GATT server before noble's client parses them.
 *
 * noble's hci-socket client (lib/hci-socket/gatt.js) reads notification handles, response entries and list
 * lengths without checking them against the PDU's length, inside its HCI socket's data handler: a truncated or
 * inconsistent PDU from a peripheral throws there, where nothing can catch it, and ends the process. Everything
 * from the radio is untrusted, so H4 ACL traffic towards noble passes through this gate: whole ATT PDUs that are
 * structurally invalid for what noble will do with them are dropped (the request they answer then times out in
 * the pool, which reports it). A truncated Handle Value Indication is not dropped but replaced by an indication of
 * attribute handle 0x0000, which names no characteristic: noble then confirms it, as ATT requires of every
 * indication, so the server is free to send its next one. Valid traffic passes byte for byte, in order, except
 * the server's Exchange MTU Response when the gate is given an AttMtuAgreement (./att-mtu): that one reaches noble
 * carrying the link's agreed MTU.
 *
 * Pure: no noble, no Node-RED.
 */
import { AttOpcode } from "./att";
import type { AttMtuAgreement } from "./att-mtu";
import { CID_ATT, EVT_DISCONNECTION_COMPLETE, H4_ACL, H4_EVENT, PB_CONTINUING } from "./hci";
import { parseAcl } from "./hci-packets";

/** Read By Type attribute types whose entries noble parses with a fixed layout. */
const CHARACTERISTIC_DECLARATION = 0x2803;
const INCLUDE_DECLARATION = 0x2802;

/**
 * Why noble would choke on this ATT PDU from the server, or null when it is safe.
 * `readByType` is the attribute type of the client's last Read By Type request on this link (noble has at most
 * one request outstanding), which decides the entry layout noble expects in a Read By Type Response.
 */
export function unsafeServerPdu(pdu: Uint8Array, readByType: number | null): string | null {
  if (pdu.length === 0) return "empty ATT PDU";
  const op = pdu[0];
  const need = (n: number): string | null => (pdu.length < n ? `ATT opcode 0x${op.toString(16).padStart(2, "0")} needs at least ${n} bytes, got ${pdu.length}` : null);
  switch (op) {
    case AttOpcode.ErrorResponse:
      return need(5);
    case AttOpcode.ExchangeMtuResponse:
      return need(3);
    case AttOpcode.FindInformationResponse: {
      // Find Information Response: format 1 (16-bit UUIDs) or 2 (128-bit), one entry at least, whole entries
      const format = pdu[1];
      if (format !== 0x01 && format !== 0x02) return need(2) ?? `Find Information Response with format ${format}`;
      return list(pdu, format === 0x01 ? 4 : 18, "Find Information Response");
    }
    case AttOpcode.FindByTypeValueResponse: // handle pairs
      return need(5) ?? ((pdu.length - 1) % 4 === 0 ? null : "Find By Type Value Response with a partial entry");
    case AttOpcode.ReadByTypeResponse: {
      // Read By Type Response
      const size = pdu[1];
      if (size === undefined || size < 2) return `Read By Type Response with entry length ${String(size)}`;
      if (readByType === CHARACTERISTIC_DECLARATION && size !== 7 && size !== 21) return `characteristic declarations of ${size} bytes`;
      if (readByType === INCLUDE_DECLARATION && size !== 8 && size !== 22) return `include declarations of ${size} bytes`;
      // Other types (noble asks for the CCCD 0x2902): handle + a 16-bit value
      if (readByType !== CHARACTERISTIC_DECLARATION && readByType !== INCLUDE_DECLARATION && size < 4) return `Read By Type Response entries of ${size} bytes`;
      return list(pdu, size, "Read By Type Response");
    }
    case AttOpcode.ReadByGroupTypeResponse: {
      // Read By Group Type Response: service declarations with 16- or 128-bit UUIDs
      const size = pdu[1];
      if (size !== 6 && size !== 20) return need(2) ?? `Read By Group Type Response entries of ${size} bytes`;
      return list(pdu, size, "Read By Group Type Response");
    }
    case AttOpcode.PrepareWriteResponse:
      return need(5);
    case AttOpcode.HandleValueNotification:
    case AttOpcode.HandleValueIndication:
      return need(3);
    default:
      // Read/Read Blob/Write/Execute Write Responses are read no further than the opcode; requests from the
      // server (even opcodes) get "request not supported" from noble.
      return null;
  }
}

/** A list response: opcode, entry length byte, then at least one whole entry and only whole entries. */
function list(pdu: Uint8Array, entry: number, what: string): string | null {
  if (pdu.length < 2 + entry) return `${what} without a complete entry (${pdu.length} bytes, entries of ${entry})`;
  if ((pdu.length - 2) % entry !== 0) return `${what} with a partial entry (${pdu.length} bytes, entries of ${entry})`;
  return null;
}

interface PendingPdu {
  packets: Buffer[];
  data: Buffer[];
  received: number;
  /** ATT PDU length + 4 (L2CAP header). */
  total: number;
}

/**
 * The gate over one HCI transport: `fromHost` sees every H4 packet noble writes (to learn its Read By Type
 * requests, and its Exchange MTU Request for `mtu`), `toHost` every H4 packet towards noble and returns the
 * packets to deliver now (held fragments of an ATT PDU are released together once the PDU is complete and safe,
 * or dropped together with `onDrop`; an Exchange MTU Response that `mtu` rewrites goes as one packet).
 */
export class AttGuard {
  private readonly readByType = new Map<number, number | null>();
  private readonly pending = new Map<number, PendingPdu>();

  constructor(
    private readonly onDrop: (reason: string) => void = () => undefined,
    private readonly mtu?: AttMtuAgreement,
  ) {}

  fromHost(packet: Buffer): void {
    const acl = parseAcl(packet);
    // A request's first fragment carries its opcode and parameters (noble's ACL packets hold at least 27 bytes).
    if (!acl || acl.pb === PB_CONTINUING || acl.data.length < 5) return;
    if (acl.data.readUInt16LE(2) !== CID_ATT) return;
    const att = acl.data.subarray(4);
    this.mtu?.fromClient(acl.handle, att);
    if (att[0] !== AttOpcode.ReadByTypeRequest) return;
    // Read By Type Request: opcode, start, end, then a 16-bit (or 128-bit) attribute type
    this.readByType.set(acl.handle, att.length >= 7 ? att.readUInt16LE(5) : null);
  }

  toHost(packet: Buffer): Buffer[] {
    // Disconnection Complete (event 0x05): the handle may be reused by the next link.
    if (packet.length >= 6 && packet[0] === H4_EVENT && packet[1] === EVT_DISCONNECTION_COMPLETE) this.forget(packet.readUInt16LE(4) & 0x0fff);
    const acl = parseAcl(packet);
    if (!acl) return [packet];
    const held = this.pending.get(acl.handle);
    if (acl.pb === PB_CONTINUING) {
      if (!held) return [packet];
      held.packets.push(packet);
      held.data.push(acl.data);
      held.received += acl.data.length;
      return held.received >= held.total ? this.release(acl.handle, held) : [];
    }
    // A new PDU starts: whatever was held for this link never completed; noble drops it too.
    if (held) this.pending.delete(acl.handle);
    if (acl.data.length < 4 || acl.data.readUInt16LE(2) !== CID_ATT) return [packet];
    const pdu: PendingPdu = { packets: [packet], data: [acl.data], received: acl.data.length, total: acl.data.readUInt16LE(0) + 4 };
    if (pdu.received >= pdu.total) return this.release(acl.handle, pdu);
    this.pending.set(acl.handle, pdu);
    return [];
  }

  /** A link is gone (Disconnection Complete): forget what was learnt and held for its handle. */
  forget(handle: number): void {
    this.readByType.delete(handle);
    this.pending.delete(handle);
    this.mtu?.forget(handle);
  }

  private release(handle: number, pdu: PendingPdu): Buffer[] {
    this.pending.delete(handle);
    const l2cap = pdu.data.length === 1 ? pdu.data[0] : Buffer.concat(pdu.data);
    const att = l2cap.subarray(4, pdu.total);
    const reason = unsafeServerPdu(att, this.readByType.get(handle) ?? null);
    if (reason === null) {
      const agreed = this.mtu?.fromServer(handle, att);
      return agreed ? [attPacket(pdu.packets[0], agreed)] : pdu.packets;
    }
    const link = `connection 0x${handle.toString(16).padStart(4, "0")}`;
    if (att[0] === AttOpcode.HandleValueIndication) {
      this.onDrop(`${link}: ${reason}; passed on as an indication of handle 0x0000 so that it is confirmed`);
      return [attPacket(pdu.packets[0], UNNAMED_INDICATION)];
    }
    this.onDrop(`${link}: dropped ${reason}`);
    return [];
  }
}

/** A Handle Value Indication of attribute handle 0x0000 and an empty value. */
const UNNAMED_INDICATION = Buffer.of(AttOpcode.HandleValueIndication, 0x00, 0x00);

/** One ACL packet carrying the ATT PDU `att` whole, on the link (and with the flags) of the PDU's first fragment `first`. */
function attPacket(first: Buffer, att: Uint8Array): Buffer {
  const packet = Buffer.alloc(9 + att.length);
  packet[0] = H4_ACL;
  packet.writeUInt16LE(first.readUInt16LE(1), 1); // handle and flags of the PDU's first fragment
  packet.writeUInt16LE(4 + att.length, 3);
  packet.writeUInt16LE(att.length, 5); // L2CAP length
  packet.writeUInt16LE(CID_ATT, 7);
  packet.set(att, 9);
  return packet;
}
