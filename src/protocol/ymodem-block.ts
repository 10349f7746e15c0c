/**
 * YMODEM's block level (docs/protocols.md §3): the control bytes, the two frame sizes, and what a block 0 says in
 * each dialect; which CRC a block 0 was sent with. Pure code shared by the receiver (ymodem.ts) and the sender
 * (ymodem-sender.ts).
 */
import { crc16Arc, crc16Xmodem, type CrcKind } from "./crc16";

export const SOH = 0x01;
export const STX = 0x02;
export const EOT = 0x04;
export const ACK = 0x06;
export const NAK = 0x15;
export const CAN = 0x18;
/** 'C': start in CRC mode, one ACK per block. */
export const WANT_CRC = 0x43;
/** 'G': start YMODEM-g, blocks stream without ACKs. */
export const WANT_G = 0x47;
/** SUB: standard YMODEM pads the last block with it. */
export const CPMEOF = 0x1a;

/** Header (3) + data + CRC (2). */
export const SOH_FRAME_LENGTH = 133;
export const STX_FRAME_LENGTH = 1029;

export type YmodemDialect = "seed" | "standard";

/** What block 0 says. */
export type Block0Header =
  | { kind: "end" }
  | { kind: "file"; name: string; size: number | null; dialect: YmodemDialect; mtime?: number; mode?: number };

const DECIMAL = /^[0-9]+$/;
const OCTAL = /^[0-7]+$/;

/**
 * Parses the data of a block 0. A first byte NUL means end of batch. Otherwise the layout decides the
 * dialect: something after the first NUL (lrzsz's size field) → standard; else `"<name> <digits>"` →
 * seed (split at the last space, so names may contain spaces); else a standard header without a size.
 * lrzsz writes a block count in bytes 126–127, so nothing here relies on block 0 ending in zeros.
 */
export function parseBlock0(data: Uint8Array): Block0Header {
  if (data.length === 0 || data[0] === 0) return { kind: "end" };
  const bytes = Buffer.from(data.buffer, data.byteOffset, data.length);
  let nul = bytes.indexOf(0);
  if (nul < 0) nul = bytes.length;
  const first = bytes.toString("utf8", 0, nul);
  if (nul + 1 < bytes.length && bytes[nul + 1] !== 0) {
    let end = bytes.indexOf(0, nul + 1);
    if (end < 0) end = bytes.length;
    // Fields are single-space separated and positional: an empty field is an absent value.
    const fields = bytes.toString("latin1", nul + 1, end).split(" ");
    const header: Block0Header = { kind: "file", name: first, size: null, dialect: "standard" };
    if (fields[0] !== undefined && DECIMAL.test(fields[0])) header.size = Number(fields[0]);
    // YMODEM: an mtime or mode of 0 means "unknown", so only real values are reported. A run of hundreds of
    // octal digits parses to Infinity (or loses precision): not a real value either.
    const mtime = fields[1] !== undefined && OCTAL.test(fields[1]) ? parseInt(fields[1], 8) : 0;
    if (mtime > 0 && Number.isSafeInteger(mtime)) header.mtime = mtime;
    const mode = fields[2] !== undefined && OCTAL.test(fields[2]) ? parseInt(fields[2], 8) : 0;
    if (mode > 0 && Number.isSafeInteger(mode)) header.mode = mode;
    return header;
  }
  const space = first.lastIndexOf(" ");
  if (space > 0) {
    const sizeText = first.slice(space + 1);
    const name = first.slice(0, space).trimEnd();
    if (name.length > 0 && DECIMAL.test(sizeText)) {
      return { kind: "file", name, size: Number(sizeText), dialect: "seed" };
    }
  }
  return { kind: "file", name: first, size: null, dialect: "standard" };
}

/**
 * The CRC a block 0 carries when the receiver does not know it yet: CRC-16/ARC (seed, XOSS) or CRC-16/XMODEM
 * (lrzsz), or null when neither matches. Both match an all-zero block (end of batch); a rare non-zero tie goes by
 * the layout, and the header parsed for it is returned with it.
 */
export function block0Crc(data: Buffer, sentCrc: number): { crc: CrcKind; header?: Block0Header } | null {
  const arc = crc16Arc(data) === sentCrc;
  const xmodem = crc16Xmodem(data) === sentCrc;
  if (!arc && !xmodem) return null;
  if (arc && xmodem) {
    const header = parseBlock0(data);
    return { crc: header.kind === "file" && header.dialect === "seed" ? "arc" : "xmodem", header };
  }
  return { crc: arc ? "arc" : "xmodem" };
}
