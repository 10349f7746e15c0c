/**
 * HCI over H4 (the UART transport): one packet-type byte, then the HCI packet. This file frames a byte stream into
 * packets (h4PacketLength, H4Splitter). Pure: no I/O, no noble. The HCI numbers are hci.ts's and the packet codec is
 * hci-packets.ts's: import them from there. Only the simulator's serial-port bridge (src/sim/pty.ts, a development
 * tool) frames H4 itself: noble's UART driver does it for the package, which therefore does not ship this file.
 */
import { H4_ACL, H4_COMMAND, H4_EVENT, H4_ISO, H4_SCO } from "./hci";

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
