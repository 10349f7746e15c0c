/**
 * Attribute Protocol (ATT, Bluetooth Core Vol 3 Part F) as the simulator's GATT server speaks it:
 * opcodes, error codes, decoding of the PDUs a client sends and encoding of the
 * PDUs a server sends. Pure code: no noble, no Node-RED, no I/O.
 *
 * The client we must satisfy is noble's hci-socket GATT client (lib/hci-socket/gatt.js); the
 * error-code choices below are made with its quirks in mind (see MALFORMED_PDU_ERROR).
 */
import { uuidFromBytes, uuidToBytes } from "./uuid";

export const AttOpcode = {
  ErrorResponse: 0x01,
  ExchangeMtuRequest: 0x02,
  ExchangeMtuResponse: 0x03,
  FindInformationRequest: 0x04,
  FindInformationResponse: 0x05,
  FindByTypeValueRequest: 0x06,
  FindByTypeValueResponse: 0x07,
  ReadByTypeRequest: 0x08,
  ReadByTypeResponse: 0x09,
  ReadRequest: 0x0a,
  ReadResponse: 0x0b,
  ReadBlobRequest: 0x0c,
  ReadBlobResponse: 0x0d,
  ReadMultipleRequest: 0x0e,
  ReadMultipleResponse: 0x0f,
  ReadByGroupTypeRequest: 0x10,
  ReadByGroupTypeResponse: 0x11,
  WriteRequest: 0x12,
  WriteResponse: 0x13,
  PrepareWriteRequest: 0x16,
  PrepareWriteResponse: 0x17,
  ExecuteWriteRequest: 0x18,
  ExecuteWriteResponse: 0x19,
  HandleValueNotification: 0x1b,
  HandleValueIndication: 0x1d,
  HandleValueConfirmation: 0x1e,
  WriteCommand: 0x52,
  SignedWriteCommand: 0xd2,
} as const;

export const AttError = {
  InvalidHandle: 0x01,
  ReadNotPermitted: 0x02,
  WriteNotPermitted: 0x03,
  /** Never sent by our server: noble drops it without completing the request (its queue stalls). */
  InvalidPdu: 0x04,
  /** 0x05, 0x08 and 0x0F make noble start SMP pairing instead of failing the request: never sent. */
  InsufficientAuthentication: 0x05,
  RequestNotSupported: 0x06,
  InvalidOffset: 0x07,
  InsufficientAuthorization: 0x08,
  PrepareQueueFull: 0x09,
  AttributeNotFound: 0x0a,
  AttributeNotLong: 0x0b,
  InsufficientEncryptionKeySize: 0x0c,
  InvalidAttributeValueLength: 0x0d,
  UnlikelyError: 0x0e,
  InsufficientEncryption: 0x0f,
  UnsupportedGroupType: 0x10,
  InsufficientResources: 0x11,
  /** Common Profile and Service Error Code (Core Supplement Part B 1.2). */
  CccdImproperlyConfigured: 0xfd,
} as const;

/**
 * The error we answer a malformed request with (wrong length, bad flags, unknown UUID size).
 * The spec says Invalid PDU (0x04), but noble's client drops an Error Response with 0x04 without
 * completing the pending request, so every later request of that connection would wait forever.
 * Unlikely Error (0x0E) fails just the one request, which is what the spec's 0x04 is meant to do;
 * the server also records the malformed PDU as a violation so tests see it.
 */
export const MALFORMED_PDU_ERROR = AttError.UnlikelyError;

export const ATT_DEFAULT_MTU = 23;
/** The largest ATT_MTU worth negotiating: a 512-byte value (the spec's cap) plus a Prepare Write header. */
export const ATT_MAX_MTU = 517;
export const ATT_MAX_VALUE_LENGTH = 512;

/** GATT declaration and descriptor types (16-bit UUIDs, canonical form). */
export const GattType = {
  PrimaryService: "2800",
  SecondaryService: "2801",
  Include: "2802",
  Characteristic: "2803",
  ExtendedProperties: "2900",
  UserDescription: "2901",
  ClientCharacteristicConfiguration: "2902",
  ServerCharacteristicConfiguration: "2903",
} as const;

/** Characteristic property bits of a characteristic declaration. */
export const CharacteristicProperty = {
  broadcast: 0x01,
  read: 0x02,
  writeWithoutResponse: 0x04,
  write: 0x08,
  notify: 0x10,
  indicate: 0x20,
  authenticatedSignedWrites: 0x40,
  extendedProperties: 0x80,
} as const;

// ---------------------------------------------------------------------------------------------
// UUIDs: their one home is ./uuid (re-exported here for the modules that take them with the codec).

export { formatUuid, normalizeUuid, uuidEquals, uuidFromBytes, uuidToBytes } from "./uuid";

// ---------------------------------------------------------------------------------------------
// Client → server PDUs

export type AttClientPdu =
  | { kind: "exchangeMtu"; clientRxMtu: number }
  | { kind: "findInformation"; startHandle: number; endHandle: number }
  | { kind: "findByTypeValue"; startHandle: number; endHandle: number; attributeType: string; value: Buffer }
  | { kind: "readByType"; startHandle: number; endHandle: number; attributeType: string }
  | { kind: "read"; handle: number }
  | { kind: "readBlob"; handle: number; offset: number }
  | { kind: "readByGroupType"; startHandle: number; endHandle: number; groupType: string }
  | { kind: "write"; handle: number; value: Buffer }
  | { kind: "writeCommand"; handle: number; value: Buffer }
  | { kind: "prepareWrite"; handle: number; offset: number; value: Buffer }
  | { kind: "executeWrite"; execute: boolean }
  | { kind: "confirmation" };

/**
 * What a server does with a PDU it cannot serve: `respond` says whether an Error Response is due
 * (requests) or the PDU is silently dropped (commands, confirmations, PDUs a server never receives).
 */
export interface AttRejectedPdu {
  opcode: number;
  respond: boolean;
  /** Handle for the Error Response (the request's first handle when one could be read, else 0). */
  handle: number;
  error: number;
  reason: string;
}

export type AttDecodeResult = { ok: true; pdu: AttClientPdu } | ({ ok: false } & AttRejectedPdu);

const COMMAND_FLAG = 0x40;

function hex2(n: number): string {
  return `0x${n.toString(16).padStart(2, "0")}`;
}

/**
 * Decodes one PDU sent by an ATT client. Never throws for bad input: a PDU that cannot be served
 * comes back as `{ ok: false, ... }` with the Error Response to send (when one is due).
 *
 * Error codes: unknown request → Request Not Supported (0x06, what the spec asks, and noble
 * completes the request with it); malformed known request → MALFORMED_PDU_ERROR (see there).
 * Handle-range checks (start 0, start > end) are the server's business: they need no decoding.
 */
export function decodeClientPdu(pdu: Uint8Array): AttDecodeResult {
  if (pdu.length === 0) return { ok: false, opcode: 0, respond: false, handle: 0, error: MALFORMED_PDU_ERROR, reason: "empty ATT PDU" };
  const buf = Buffer.from(pdu.buffer, pdu.byteOffset, pdu.byteLength);
  const opcode = buf[0];
  const malformed = (what: string, handle = 0): AttDecodeResult => ({
    ok: false,
    opcode,
    respond: true,
    handle,
    error: MALFORMED_PDU_ERROR,
    reason: `malformed ${what} (${buf.length} bytes: ${buf.toString("hex")})`,
  });
  const firstHandle = (): number => (buf.length >= 3 ? buf.readUInt16LE(1) : 0);
  const ok = (p: AttClientPdu): AttDecodeResult => ({ ok: true, pdu: p });

  switch (opcode) {
    case AttOpcode.ExchangeMtuRequest:
      if (buf.length !== 3) return malformed("Exchange MTU Request");
      return ok({ kind: "exchangeMtu", clientRxMtu: buf.readUInt16LE(1) });
    case AttOpcode.FindInformationRequest:
      if (buf.length !== 5) return malformed("Find Information Request", firstHandle());
      return ok({ kind: "findInformation", startHandle: buf.readUInt16LE(1), endHandle: buf.readUInt16LE(3) });
    case AttOpcode.FindByTypeValueRequest:
      if (buf.length < 7) return malformed("Find By Type Value Request", firstHandle());
      return ok({
        kind: "findByTypeValue",
        startHandle: buf.readUInt16LE(1),
        endHandle: buf.readUInt16LE(3),
        attributeType: uuidFromBytes(buf.subarray(5, 7)),
        value: Buffer.from(buf.subarray(7)),
      });
    case AttOpcode.ReadByTypeRequest:
    case AttOpcode.ReadByGroupTypeRequest: {
      const name = opcode === AttOpcode.ReadByTypeRequest ? "Read By Type Request" : "Read By Group Type Request";
      if (buf.length !== 7 && buf.length !== 21) return malformed(name, firstHandle());
      const startHandle = buf.readUInt16LE(1);
      const endHandle = buf.readUInt16LE(3);
      const type = uuidFromBytes(buf.subarray(5));
      return opcode === AttOpcode.ReadByTypeRequest
        ? ok({ kind: "readByType", startHandle, endHandle, attributeType: type })
        : ok({ kind: "readByGroupType", startHandle, endHandle, groupType: type });
    }
    case AttOpcode.ReadRequest:
      if (buf.length !== 3) return malformed("Read Request", firstHandle());
      return ok({ kind: "read", handle: buf.readUInt16LE(1) });
    case AttOpcode.ReadBlobRequest:
      if (buf.length !== 5) return malformed("Read Blob Request", firstHandle());
      return ok({ kind: "readBlob", handle: buf.readUInt16LE(1), offset: buf.readUInt16LE(3) });
    case AttOpcode.WriteRequest:
      if (buf.length < 3) return malformed("Write Request", firstHandle());
      return ok({ kind: "write", handle: buf.readUInt16LE(1), value: Buffer.from(buf.subarray(3)) });
    case AttOpcode.WriteCommand:
      if (buf.length < 3) return { ok: false, opcode, respond: false, handle: 0, error: MALFORMED_PDU_ERROR, reason: `malformed Write Command (${buf.toString("hex")})` };
      return ok({ kind: "writeCommand", handle: buf.readUInt16LE(1), value: Buffer.from(buf.subarray(3)) });
    case AttOpcode.PrepareWriteRequest:
      if (buf.length < 5) return malformed("Prepare Write Request", firstHandle());
      return ok({ kind: "prepareWrite", handle: buf.readUInt16LE(1), offset: buf.readUInt16LE(3), value: Buffer.from(buf.subarray(5)) });
    case AttOpcode.ExecuteWriteRequest:
      if (buf.length !== 2 || buf[1] > 1) return malformed("Execute Write Request");
      return ok({ kind: "executeWrite", execute: buf[1] === 1 });
    case AttOpcode.HandleValueConfirmation:
      if (buf.length !== 1) return { ok: false, opcode, respond: false, handle: 0, error: MALFORMED_PDU_ERROR, reason: `malformed Handle Value Confirmation (${buf.toString("hex")})` };
      return ok({ kind: "confirmation" });
    default:
      break;
  }
  if (opcode & COMMAND_FLAG) {
    // Commands never get a response, not even an error (Core Vol 3 Part F 3.4.9 / 3.3.1).
    return { ok: false, opcode, respond: false, handle: 0, error: AttError.RequestNotSupported, reason: `unsupported command ${hex2(opcode)}` };
  }
  if (opcode % 2 === 1) {
    // Responses, notifications, indications: a server never expects these from a client.
    return { ok: false, opcode, respond: false, handle: 0, error: AttError.RequestNotSupported, reason: `unexpected server-side PDU ${hex2(opcode)} from the client` };
  }
  return { ok: false, opcode, respond: true, handle: 0, error: AttError.RequestNotSupported, reason: `unsupported request ${hex2(opcode)}` };
}

// ---------------------------------------------------------------------------------------------
// Server → client PDUs

function uint16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(n, 0);
  return b;
}

export function encodeErrorResponse(requestOpcode: number, handle: number, error: number): Buffer {
  const b = Buffer.alloc(5);
  b[0] = AttOpcode.ErrorResponse;
  b[1] = requestOpcode;
  b.writeUInt16LE(handle, 2);
  b[4] = error;
  return b;
}

export function encodeExchangeMtuResponse(serverRxMtu: number): Buffer {
  return Buffer.concat([Buffer.of(AttOpcode.ExchangeMtuResponse), uint16(serverRxMtu)]);
}

/** Entries must all have UUIDs of one size (format 0x01 = 16-bit, 0x02 = 128-bit). */
export function encodeFindInformationResponse(entries: readonly { handle: number; type: string }[]): Buffer {
  const types = entries.map((e) => uuidToBytes(e.type));
  const size = types[0]?.length ?? 2;
  if (entries.length === 0 || types.some((t) => t.length !== size)) throw new RangeError("Find Information Response needs at least one entry and one UUID size");
  return Buffer.concat([Buffer.of(AttOpcode.FindInformationResponse, size === 2 ? 0x01 : 0x02), ...entries.flatMap((e, i) => [uint16(e.handle), types[i]])]);
}

export function encodeFindByTypeValueResponse(entries: readonly { handle: number; groupEndHandle: number }[]): Buffer {
  if (entries.length === 0) throw new RangeError("Find By Type Value Response needs at least one entry");
  return Buffer.concat([Buffer.of(AttOpcode.FindByTypeValueResponse), ...entries.flatMap((e) => [uint16(e.handle), uint16(e.groupEndHandle)])]);
}

/** Every value must have the same length (the PDU carries one length for all entries). */
export function encodeReadByTypeResponse(entries: readonly { handle: number; value: Buffer }[]): Buffer {
  const length = 2 + (entries[0]?.value.length ?? 0);
  if (entries.length === 0 || length > 255 || entries.some((e) => e.value.length + 2 !== length)) {
    throw new RangeError("Read By Type Response needs at least one entry, all of one length ≤ 253");
  }
  return Buffer.concat([Buffer.of(AttOpcode.ReadByTypeResponse, length), ...entries.flatMap((e) => [uint16(e.handle), e.value])]);
}

/** Every group value (the service UUID) must have the same length. */
export function encodeReadByGroupTypeResponse(entries: readonly { handle: number; groupEndHandle: number; value: Buffer }[]): Buffer {
  const length = 4 + (entries[0]?.value.length ?? 0);
  if (entries.length === 0 || length > 255 || entries.some((e) => e.value.length + 4 !== length)) {
    throw new RangeError("Read By Group Type Response needs at least one entry, all of one length ≤ 251");
  }
  return Buffer.concat([Buffer.of(AttOpcode.ReadByGroupTypeResponse, length), ...entries.flatMap((e) => [uint16(e.handle), uint16(e.groupEndHandle), e.value])]);
}

export function encodeReadResponse(value: Buffer): Buffer {
  return Buffer.concat([Buffer.of(AttOpcode.ReadResponse), value]);
}

export function encodeReadBlobResponse(value: Buffer): Buffer {
  return Buffer.concat([Buffer.of(AttOpcode.ReadBlobResponse), value]);
}

export function encodeWriteResponse(): Buffer {
  return Buffer.of(AttOpcode.WriteResponse);
}

/** Echoes the request's handle, offset and value: the client checks them. */
export function encodePrepareWriteResponse(handle: number, offset: number, value: Buffer): Buffer {
  return Buffer.concat([Buffer.of(AttOpcode.PrepareWriteResponse), uint16(handle), uint16(offset), value]);
}

export function encodeExecuteWriteResponse(): Buffer {
  return Buffer.of(AttOpcode.ExecuteWriteResponse);
}

export function encodeHandleValueNotification(handle: number, value: Buffer): Buffer {
  return Buffer.concat([Buffer.of(AttOpcode.HandleValueNotification), uint16(handle), value]);
}

export function encodeHandleValueIndication(handle: number, value: Buffer): Buffer {
  return Buffer.concat([Buffer.of(AttOpcode.HandleValueIndication), uint16(handle), value]);
}
