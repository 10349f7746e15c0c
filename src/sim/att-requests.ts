/**
 * The ATT requests a simulated GATT server answers (shared/docs/noble-hci.md): discovery (Read By Group Type, Read
 * By Type, Find Information, Find By Type Value), reads, writes, prepared writes, each answered from the attribute
 * table as a real server would (one value length per response, within the connection's MTU, the spec's error codes).
 * MTU exchange and indication confirmations change the connection's state: they are the server's (hooks).
 */
import {
  ATT_MAX_VALUE_LENGTH,
  AttError,
  GattType,
  encodeErrorResponse,
  encodeExecuteWriteResponse,
  encodeFindByTypeValueResponse,
  encodeFindInformationResponse,
  encodePrepareWriteResponse,
  encodeReadBlobResponse,
  encodeReadByGroupTypeResponse,
  encodeReadByTypeResponse,
  encodeReadResponse,
  encodeWriteResponse,
  formatUuid,
  type AttClientPdu,
} from "../protocol/att";
import type { Attribute, GattDatabase, GattSession } from "./gatt-database";

/** Prepare queue entries per connection: a 512-byte value at MTU 23 needs 29. */
const MAX_PREPARED_WRITES = 64;

export function hex(value: Buffer): string {
  return value.length === 0 ? "(empty)" : value.toString("hex");
}

export interface AttRequestHooks {
  /** The client did something a real server would refuse or ignore. */
  violation(message: string): void;
  /** Exchange MTU Request: the response. */
  exchangeMtu(s: GattSession, clientRxMtu: number): Buffer;
  /** Handle Value Confirmation. */
  confirmation(s: GattSession): void;
}

export class AttRequests {
  constructor(
    private readonly db: GattDatabase,
    private readonly hooks: AttRequestHooks,
  ) {}

  /** The response to one decoded client PDU, or null when none is due (commands, confirmations). */
  serve(s: GattSession, req: AttClientPdu, opcode: number): Buffer | null {
    const error = (handle: number, code: number): Buffer => encodeErrorResponse(opcode, handle, code);
    switch (req.kind) {
      case "exchangeMtu":
        return this.hooks.exchangeMtu(s, req.clientRxMtu);
      case "readByGroupType":
        return this.readByGroupType(s, req.startHandle, req.endHandle, req.groupType, error);
      case "readByType":
        return this.readByType(s, req.startHandle, req.endHandle, req.attributeType, error);
      case "findInformation":
        return this.findInformation(s, req.startHandle, req.endHandle, error);
      case "findByTypeValue":
        return this.findByTypeValue(s, req.startHandle, req.endHandle, req.attributeType, req.value, error);
      case "read":
      case "readBlob": {
        const offset = req.kind === "readBlob" ? req.offset : 0;
        const attr = this.db.table[req.handle - 1];
        if (req.handle === 0 || !attr) return error(req.handle, AttError.InvalidHandle);
        if (!attr.readable) return error(req.handle, AttError.ReadNotPermitted);
        const value = this.readAttribute(s, attr);
        if (value === null) return error(req.handle, AttError.UnlikelyError);
        // offset == length is a valid empty read: noble asks for it when a value is exactly MTU − 1 long.
        if (offset > value.length) return error(req.handle, AttError.InvalidOffset);
        const part = value.subarray(offset, offset + s.mtu - 1);
        return req.kind === "read" ? encodeReadResponse(part) : encodeReadBlobResponse(part);
      }
      case "write": {
        const code = this.writeAttribute(s, req.handle, req.value, false);
        return code === 0 ? encodeWriteResponse() : error(req.handle, code);
      }
      case "writeCommand": {
        const code = this.writeAttribute(s, req.handle, req.value, true);
        if (code !== 0) this.hooks.violation(`Write Command to handle ${req.handle} dropped (ATT error 0x${code.toString(16).padStart(2, "0")}): ${hex(req.value)}`);
        return null;
      }
      case "prepareWrite": {
        const attr = this.db.table[req.handle - 1];
        if (req.handle === 0 || !attr) return error(req.handle, AttError.InvalidHandle);
        if (!attr.writable) return error(req.handle, AttError.WriteNotPermitted);
        if (s.prepared.length >= MAX_PREPARED_WRITES) return error(req.handle, AttError.PrepareQueueFull);
        s.prepared.push({ handle: req.handle, offset: req.offset, value: req.value });
        return encodePrepareWriteResponse(req.handle, req.offset, req.value);
      }
      case "executeWrite":
        return this.executeWrite(s, req.execute, error);
      case "confirmation":
        this.hooks.confirmation(s);
        return null;
    }
  }
  private rangeError(start: number, end: number, error: (h: number, c: number) => Buffer): Buffer | null {
    return start === 0 || start > end ? error(start, AttError.InvalidHandle) : null;
  }
  private readByGroupType(s: GattSession, start: number, end: number, groupType: string, error: (h: number, c: number) => Buffer): Buffer {
    const bad = this.rangeError(start, end, error);
    if (bad) return bad;
    if (groupType !== GattType.PrimaryService && groupType !== GattType.SecondaryService) return error(start, AttError.UnsupportedGroupType);
    const groups = this.db.inRange(start, end).filter((a) => a.type === groupType);
    if (groups.length === 0) return error(start, AttError.AttributeNotFound);
    const entries: { handle: number; groupEndHandle: number; value: Buffer }[] = [];
    const size = groups[0].read(s).length;
    for (const g of groups) {
      const value = g.read(s);
      // One length per response (16-bit and 128-bit services go in separate responses) and within MTU.
      if (value.length !== size || 2 + (entries.length + 1) * (4 + size) > s.mtu) break;
      entries.push({ handle: g.handle, groupEndHandle: g.endHandle ?? g.handle, value });
    }
    return encodeReadByGroupTypeResponse(entries);
  }
  private readByType(s: GattSession, start: number, end: number, type: string, error: (h: number, c: number) => Buffer): Buffer {
    const bad = this.rangeError(start, end, error);
    if (bad) return bad;
    const matches = this.db.inRange(start, end).filter((a) => a.type === type);
    if (matches.length === 0) return error(start, AttError.AttributeNotFound);
    if (!matches[0].readable) return error(matches[0].handle, AttError.ReadNotPermitted);
    const maxValue = Math.min(s.mtu - 4, 253);
    const entries: { handle: number; value: Buffer }[] = [];
    let size = -1;
    for (const a of matches) {
      if (!a.readable) break;
      const full = this.readAttribute(s, a);
      if (full === null) {
        if (entries.length === 0) return error(a.handle, AttError.UnlikelyError);
        break;
      }
      const value = full.subarray(0, maxValue);
      if (size === -1) size = value.length;
      if (value.length !== size || 2 + (entries.length + 1) * (2 + size) > s.mtu) break;
      entries.push({ handle: a.handle, value });
    }
    return encodeReadByTypeResponse(entries);
  }
  private findInformation(s: GattSession, start: number, end: number, error: (h: number, c: number) => Buffer): Buffer {
    // noble sends this even when a characteristic has no descriptors (start > end): Invalid Handle ends
    // its descriptor discovery cleanly.
    const bad = this.rangeError(start, end, error);
    if (bad) return bad;
    const found = this.db.inRange(start, end);
    if (found.length === 0) return error(start, AttError.AttributeNotFound);
    const size = found[0].typeBytes.length;
    const entries: { handle: number; type: string }[] = [];
    for (const a of found) {
      if (a.typeBytes.length !== size || 2 + (entries.length + 1) * (2 + size) > s.mtu) break;
      entries.push({ handle: a.handle, type: a.type });
    }
    return encodeFindInformationResponse(entries);
  }
  private findByTypeValue(s: GattSession, start: number, end: number, type: string, value: Buffer, error: (h: number, c: number) => Buffer): Buffer {
    const bad = this.rangeError(start, end, error);
    if (bad) return bad;
    const entries: { handle: number; groupEndHandle: number }[] = [];
    for (const a of this.db.inRange(start, end)) {
      if (a.type !== type || !a.readable) continue;
      const v = this.readAttribute(s, a);
      if (v === null || !v.equals(value)) continue;
      if (1 + (entries.length + 1) * 4 > s.mtu) break;
      entries.push({ handle: a.handle, groupEndHandle: a.endHandle ?? a.handle });
    }
    if (entries.length === 0) return error(start, AttError.AttributeNotFound);
    return encodeFindByTypeValueResponse(entries);
  }
  /** Reads an attribute; a throwing value function is a simulator bug, reported and answered with Unlikely Error. */
  private readAttribute(s: GattSession, attr: Attribute): Buffer | null {
    try {
      return attr.read(s);
    } catch (e) {
      this.hooks.violation(`reading handle ${attr.handle} (${formatUuid(attr.owner)}) threw: ${e instanceof Error ? e.message : String(e)}`);
      return null;
    }
  }
  /** Checks and applies one write; 0 or an ATT error code. */
  private writeAttribute(s: GattSession, handle: number, value: Buffer, withoutResponse: boolean): number {
    const attr = this.db.table[handle - 1];
    if (handle === 0 || !attr) return AttError.InvalidHandle;
    if (!(withoutResponse ? attr.writableWithoutResponse : attr.writable)) return AttError.WriteNotPermitted;
    if (value.length > ATT_MAX_VALUE_LENGTH) return AttError.InvalidAttributeValueLength;
    return attr.write(s, value, withoutResponse);
  }
  private executeWrite(s: GattSession, execute: boolean, error: (h: number, c: number) => Buffer): Buffer {
    const prepared = s.prepared;
    s.prepared = [];
    if (!execute) return encodeExecuteWriteResponse();
    // Assemble each handle's value from its parts in order; a part may not leave a gap.
    const values = new Map<number, Buffer>();
    for (const part of prepared) {
      const current = values.get(part.handle) ?? Buffer.alloc(0);
      if (part.offset > current.length) return error(part.handle, AttError.InvalidOffset);
      const next = Buffer.alloc(Math.max(current.length, part.offset + part.value.length));
      current.copy(next);
      part.value.copy(next, part.offset);
      if (next.length > ATT_MAX_VALUE_LENGTH) return error(part.handle, AttError.InvalidAttributeValueLength);
      values.set(part.handle, next);
    }
    for (const [handle, value] of values) {
      const code = this.writeAttribute(s, handle, value, false);
      if (code !== 0) return error(handle, code);
    }
    return encodeExecuteWriteResponse();
  }}
