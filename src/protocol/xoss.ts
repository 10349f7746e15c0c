/**
 * XOSS bike computers' control frames (docs/protocols.md §3, "XOSS"; ekspla/xoss_sync): written to and
 * notified on characteristic 6e400004-… beside the Nordic UART Service. Pure code.
 *
 * Frame: opcode, content (1 … 18 bytes; a single 0x00 when there is none), XOR of all earlier bytes.
 */

export const XOSS_CONTROL_CHARACTERISTIC = "6e400004-b5a3-f393-e0a9-e50e24dcca9e";

/** Longest content of one frame: 1 opcode + 18 + 1 checksum fills a 20-byte write at MTU 23. */
export const XOSS_MAX_CONTENT_BYTES = 18;

export const XossOpcode = {
  /** Sent as `04 00 04`: the device is idle (also its answer to a status request and after a transfer). */
  idle: 0x04,
  /** Fetch a file by name; the device answers `fileAccepted` + the same name, then sends it with YMODEM. */
  fetchFile: 0x05,
  fileAccepted: 0x06,
  /** Upload a file to the device. */
  sendFile: 0x07,
  diskSpace: 0x09,
  /** `free/total` in kB. */
  diskSpaceReply: 0x0a,
  deleteFile: 0x0d,
  /** Set the device's clock (a XOSS G+ Gen1 answers nothing). */
  timeSet: 0x54,
  status: 0xff,
} as const;

/** The device's error opcodes. */
export const XossError = {
  badCommand: 0x11,
  noSuchFile: 0x12,
  outOfMemory: 0x13,
  notIdle: 0x14,
  parseFailed: 0x15,
} as const;

/** The device's error opcodes and what they mean. */
export const XOSS_ERRORS: Readonly<Record<number, string>> = {
  [XossError.badCommand]: "bad command",
  [XossError.noSuchFile]: "no such file",
  [XossError.outOfMemory]: "out of memory",
  [XossError.notIdle]: "not idle",
  [XossError.parseFailed]: "parse failed",
};

export class XossFrameError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "XossFrameError";
  }
}

export interface XossFrame {
  opcode: number;
  /** The content bytes ([0x00] for a frame without content). */
  content: Buffer;
}

export function xorChecksum(bytes: Uint8Array): number {
  let x = 0;
  for (const b of bytes) x ^= b;
  return x;
}

/** opcode + content (or 0x00 when empty) + XOR checksum. */
export function encodeXossFrame(opcode: number, content: Uint8Array = new Uint8Array(0)): Buffer {
  if (!Number.isInteger(opcode) || opcode < 0 || opcode > 0xff) throw new RangeError(`opcode must be a byte, got ${opcode}`);
  if (content.length > XOSS_MAX_CONTENT_BYTES) {
    throw new RangeError(`XOSS frame content is at most ${XOSS_MAX_CONTENT_BYTES} bytes, got ${content.length}`);
  }
  const body = Buffer.concat([Buffer.of(opcode), content.length > 0 ? content : Buffer.of(0)]);
  return Buffer.concat([body, Buffer.of(xorChecksum(body))]);
}

/** Checks length and checksum; throws XossFrameError naming what is wrong. */
export function decodeXossFrame(frame: Uint8Array): XossFrame {
  const bytes = Buffer.from(frame.buffer, frame.byteOffset, frame.length);
  if (bytes.length < 3) throw new XossFrameError(`XOSS control frame too short (${bytes.length} bytes): ${bytes.toString("hex")}`);
  if (bytes.length > XOSS_MAX_CONTENT_BYTES + 2) throw new XossFrameError(`XOSS control frame too long (${bytes.length} bytes)`);
  const body = bytes.subarray(0, bytes.length - 1);
  if (xorChecksum(body) !== bytes[bytes.length - 1]) throw new XossFrameError(`XOSS control frame with a bad checksum: ${bytes.toString("hex")}`);
  return { opcode: bytes[0], content: Buffer.from(body.subarray(1)) };
}

/** A file name no control frame can carry: the reason as a key with parameters (`message` is its English). */
export class XossNameError extends RangeError {
  constructor(
    message: string,
    readonly key: "empty" | "too-long" | "nul",
    readonly params: Readonly<Record<string, string | number>> = {},
  ) {
    super(message);
  }
}

/**
 * Checks a file name the device can be asked for: 1 … 18 bytes of UTF-8 without NUL (NUL is the
 * "no content" marker). Returns its bytes; throws XossNameError (a RangeError) with a reason otherwise.
 */
export function xossFileNameBytes(name: string): Buffer {
  const bytes = Buffer.from(name, "utf8");
  if (bytes.length === 0) throw new XossNameError("XOSS file name must not be empty", "empty");
  if (bytes.length > XOSS_MAX_CONTENT_BYTES) {
    // The name is the user's or a message's: the error says how long it is, not what it is.
    throw new XossNameError(`XOSS file name is ${bytes.length} bytes; a control frame holds at most ${XOSS_MAX_CONTENT_BYTES}`, "too-long", {
      bytes: bytes.length,
      max: XOSS_MAX_CONTENT_BYTES,
    });
  }
  if (bytes.includes(0)) throw new XossNameError("XOSS file name must not contain NUL", "nul");
  return bytes;
}

/** `05` + name + checksum: asks the device to send that file. */
export function fetchFileFrame(name: string): Buffer {
  return encodeXossFrame(XossOpcode.fetchFile, xossFileNameBytes(name));
}

export type XossFetchReply =
  | { kind: "accepted" }
  | { kind: "refused"; code: number; reason: string }
  /** Not an answer to the request (e.g. an idle report): keep waiting. */
  | { kind: "other"; opcode: number };

/**
 * What a notified control frame says about a fetch of `name`: accepted (`06` + the same name), refused (an
 * error opcode, or an acceptance of another name), or unrelated. A damaged frame throws XossFrameError.
 */
export function interpretFetchReply(frame: Uint8Array, name: string): XossFetchReply {
  const { opcode, content } = decodeXossFrame(frame);
  if (opcode === XossOpcode.fileAccepted) {
    if (content.equals(xossFileNameBytes(name))) return { kind: "accepted" };
    return { kind: "refused", code: opcode, reason: `the device accepted a different file (${JSON.stringify(content.toString("utf8"))})` };
  }
  const reason = XOSS_ERRORS[opcode];
  if (reason !== undefined) return { kind: "refused", code: opcode, reason };
  return { kind: "other", opcode };
}

/** True for the `04 00 04` idle report. */
export function isIdleFrame(frame: Uint8Array): boolean {
  return frame.length === 3 && frame[0] === XossOpcode.idle && frame[1] === 0 && frame[2] === XossOpcode.idle;
}
