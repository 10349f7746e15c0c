/**
 * The ATT MTU of a link as the client must use it: the smaller of the client's and the server's Rx MTU (Core Spec
 * Vol 3 Part F 3.4.2.2), never below 23.
 *
 * noble 2.8's client (lib/hci-socket/gatt.js, exchangeMtu) adopts the server's answer to Exchange MTU as the link
 * MTU, and real servers answer with their own maximum (517 is common). noble then ends a long read at the first
 * response that is not exactly that size (so a value over MTU − 3 comes back cut short) and sends a Write Request
 * of up to answer − 3 bytes as one PDU, too large for the link. AttMtuAgreement remembers each connection's Exchange
 * MTU Request (what the client really asked, whoever decided it) and rewrites the server's Exchange MTU Response to
 * the agreed value before noble parses it, so noble's MTU is the link's.
 *
 * Pure: no noble, no Node-RED. It sees whole ATT PDUs; reassembly from ACL fragments is the caller's (AttGuard).
 */
import { ATT_DEFAULT_MTU, AttOpcode } from "./att";

/** The link's ATT MTU from both Rx MTUs: min(client, server), at least 23. */
export function agreedMtu(clientRxMtu: number, serverRxMtu: number): number {
  return Math.max(ATT_DEFAULT_MTU, Math.min(clientRxMtu, serverRxMtu));
}

/** Exchange MTU Response of `mtu`. */
function exchangeMtuResponse(mtu: number): Buffer {
  const pdu = Buffer.alloc(3);
  pdu[0] = AttOpcode.ExchangeMtuResponse;
  pdu.writeUInt16LE(mtu, 1);
  return pdu;
}

/** Per connection handle: the client's Exchange MTU Request, and the server's answer rewritten to the agreed MTU. */
export class AttMtuAgreement {
  private readonly requested = new Map<number, number>();

  /** A whole (or first fragment of an) ATT PDU the client sends on `handle`: its Exchange MTU Request is remembered. */
  fromClient(handle: number, pdu: Uint8Array): void {
    if (pdu.length >= 3 && pdu[0] === AttOpcode.ExchangeMtuRequest) this.requested.set(handle, pdu[1] | (pdu[2] << 8));
  }

  /**
   * A whole ATT PDU from the server on `handle`: an Exchange MTU Response to a remembered request comes back as the
   * Response of the agreed MTU (a new buffer); anything else, and a response whose value already is the agreed
   * MTU, as null (pass it on unchanged). A response too short to carry an MTU is left to the caller's checks.
   */
  fromServer(handle: number, pdu: Uint8Array): Buffer | null {
    if (pdu.length < 3 || pdu[0] !== AttOpcode.ExchangeMtuResponse) return null;
    const client = this.requested.get(handle);
    if (client === undefined) return null;
    const server = pdu[1] | (pdu[2] << 8);
    const mtu = agreedMtu(client, server);
    return mtu === server && pdu.length === 3 ? null : exchangeMtuResponse(mtu);
  }

  /** The MTU the client asked for on `handle`, if it has sent an Exchange MTU Request. */
  requestedOn(handle: number): number | undefined {
    return this.requested.get(handle);
  }

  /** The link is gone (Disconnection Complete): the handle may be reused by the next one. */
  forget(handle: number): void {
    this.requested.delete(handle);
  }
}
