/**
 * A GATT server for virtual peripherals: an attribute table built from service definitions, the ATT
 * requests noble's client sends (see shared/docs/noble-hci.md), CCCD state, notifications and indications.
 *
 * Handle layout, from handle 1, in definition order: per service its declaration (0x2800), then per
 * characteristic its declaration (0x2803), its value, a CCCD (0x2902) when it can notify or indicate,
 * then its own descriptors. A service ends at its last attribute.
 *
 * One server serves one connection at a time: attach(link) starts a fresh per-connection state (MTU 23,
 * CCCDs off, empty prepare queue), detach() ends it. Requests are answered synchronously, in order,
 * through link.sendAtt.
 */
import { EventEmitter } from "node:events";
import {
  ATT_DEFAULT_MTU,
  ATT_MAX_MTU,
  ATT_MAX_VALUE_LENGTH,
  AttError,
  AttOpcode,
  CharacteristicProperty,
  GattType,
  MALFORMED_PDU_ERROR,
  decodeClientPdu,
  encodeErrorResponse,
  encodeExchangeMtuResponse,
  encodeExecuteWriteResponse,
  encodeFindByTypeValueResponse,
  encodeFindInformationResponse,
  encodeHandleValueIndication,
  encodeHandleValueNotification,
  encodePrepareWriteResponse,
  encodeReadBlobResponse,
  encodeReadByGroupTypeResponse,
  encodeReadByTypeResponse,
  encodeReadResponse,
  encodeWriteResponse,
  formatUuid,
  normalizeUuid,
  uuidToBytes,
  type AttClientPdu,
} from "../protocol/att";
import { DEFAULT_SERVER_MTU, type PeripheralLink } from "./types";

export type CharacteristicPropertyName = "read" | "write" | "writeWithoutResponse" | "notify" | "indicate";

/** A fixed value, or a function called on every read (for values that change). */
export type ValueSource = Buffer | (() => Buffer);

/**
 * Called for an accepted write (Write Request, Write Command, or the assembled value of an Execute Write).
 * Return an ATT error code to refuse it (sent back for requests, dropped for commands); nothing accepts it.
 */
export type WriteHandler = (value: Buffer, withoutResponse: boolean) => void | number;

export interface DescriptorDefinition {
  uuid: string;
  value?: ValueSource;
  /** Makes the descriptor writable (with Write Request only). */
  onWrite?: WriteHandler;
}

export interface CharacteristicDefinition {
  uuid: string;
  properties: readonly CharacteristicPropertyName[];
  /** Read value; a Buffer is replaced by accepted writes. Absent: empty. */
  value?: ValueSource;
  onWrite?: WriteHandler;
  /** Extra descriptors; the CCCD is added automatically for notify/indicate and must not be listed. */
  descriptors?: readonly DescriptorDefinition[];
}

export interface ServiceDefinition {
  uuid: string;
  characteristics: readonly CharacteristicDefinition[];
}

/** CCCD bits of one characteristic on the current connection. */
export interface Subscription {
  notify: boolean;
  indicate: boolean;
}

export interface GattServerEvents {
  /** A CCCD was written with at least one bit set (also when the bits change). */
  subscribed: [characteristicUuid: string, subscription: Subscription];
  /** A CCCD went back to 0, by a write or because the connection ended. */
  unsubscribed: [characteristicUuid: string];
  /** The client's MTU Exchange set the connection's MTU. */
  mtu: [mtu: number];
  /** The client did something a real peripheral would refuse or ignore: tests assert there are none. */
  violation: [message: string];
}

export interface GattServerOptions {
  /**
   * This server's own ATT MTU (23 … 517), the largest it can receive: it answers every Exchange MTU Request
   * with it, whatever the client asked, as real servers do; the link then runs at min(client's, this).
   * Default DEFAULT_SERVER_MTU (517).
   */
  maxMtu?: number;
}

/** One row of the attribute table, for tests and diagnostics. */
export interface AttributeInfo {
  handle: number;
  /** Canonical attribute type UUID ("2800", "2803", "2a37", …). */
  type: string;
  /** Canonical UUID of the service or characteristic this attribute belongs to. */
  owner: string;
  role: "service" | "characteristic" | "value" | "cccd" | "descriptor";
  /** Last handle of the group (services only). */
  endHandle?: number;
}

export interface CharacteristicHandles {
  declaration: number;
  value: number;
  cccd: number | null;
  /** Last handle belonging to the characteristic (its last descriptor, else its value). */
  end: number;
}

interface Session {
  readonly link: PeripheralLink;
  mtu: number;
  mtuExchanged: boolean;
  /** CCCD value per characteristic value handle. */
  readonly cccd: Map<number, number>;
  prepared: { handle: number; offset: number; value: Buffer }[];
  readonly indications: PendingIndication[];
  outstanding: PendingIndication | null;
}

interface PendingIndication {
  characteristic: Characteristic;
  value: Buffer;
  resolve: () => void;
  reject: (error: Error) => void;
}

interface Characteristic {
  readonly uuid: string;
  readonly serviceUuid: string;
  readonly properties: number;
  readonly handles: CharacteristicHandles;
  source: ValueSource;
  readonly onWrite?: WriteHandler;
}

interface Attribute {
  readonly handle: number;
  readonly type: string;
  readonly typeBytes: Buffer;
  readonly owner: string;
  readonly role: AttributeInfo["role"];
  readonly endHandle?: number;
  readonly readable: boolean;
  /** Accepts Write Request (and Prepare Write). */
  readonly writable: boolean;
  /** Accepts Write Command. */
  readonly writableWithoutResponse: boolean;
  read(session: Session): Buffer;
  /** Returns 0 on success or an ATT error code. */
  write(session: Session, value: Buffer, withoutResponse: boolean): number;
}

/** Prepare queue entries per connection: a 512-byte value at MTU 23 needs 29. */
const MAX_PREPARED_WRITES = 64;
const CCCD_NOTIFY = 0x0001;
const CCCD_INDICATE = 0x0002;

function propertyBits(properties: readonly CharacteristicPropertyName[]): number {
  return properties.reduce((bits, p) => bits | CharacteristicProperty[p], 0);
}

function readSource(source: ValueSource): Buffer {
  return typeof source === "function" ? source() : source;
}

function hex(value: Buffer): string {
  return value.length === 0 ? "(empty)" : value.toString("hex");
}

export class GattServer extends EventEmitter<GattServerEvents> {
  readonly maxMtu: number;
  private readonly table: Attribute[] = [];
  private readonly characteristics: Characteristic[] = [];
  private session: Session | null = null;

  constructor(services: readonly ServiceDefinition[], options: GattServerOptions = {}) {
    super();
    this.maxMtu = options.maxMtu ?? DEFAULT_SERVER_MTU;
    if (!Number.isInteger(this.maxMtu) || this.maxMtu < ATT_DEFAULT_MTU || this.maxMtu > ATT_MAX_MTU) {
      throw new RangeError(`maxMtu must be a whole number ${ATT_DEFAULT_MTU}..${ATT_MAX_MTU}, got ${this.maxMtu}`);
    }
    for (const service of services) this.addService(service);
    if (this.table.length > 0xfffe) throw new RangeError("attribute table exceeds the 16-bit handle space");
  }

  // ---------------------------------------------------------------------------------------------
  // Attribute table

  private addService(def: ServiceDefinition): void {
    const serviceUuid = normalizeUuid(def.uuid);
    const serviceHandle = this.table.length + 1;
    const serviceValue = uuidToBytes(serviceUuid);
    // The declaration is pushed first with a placeholder end; replaced once the group is complete.
    this.table.push(this.declaration(serviceHandle, GattType.PrimaryService, serviceUuid, "service", serviceValue));
    for (const charDef of def.characteristics) this.addCharacteristic(serviceUuid, charDef);
    this.table[serviceHandle - 1] = this.declaration(serviceHandle, GattType.PrimaryService, serviceUuid, "service", serviceValue, this.table.length);
  }

  private declaration(handle: number, type: string, owner: string, role: Attribute["role"], value: Buffer, endHandle?: number): Attribute {
    return {
      handle,
      type,
      typeBytes: uuidToBytes(type),
      owner,
      role,
      endHandle,
      readable: true,
      writable: false,
      writableWithoutResponse: false,
      read: () => value,
      write: () => AttError.WriteNotPermitted,
    };
  }

  private addCharacteristic(serviceUuid: string, def: CharacteristicDefinition): void {
    const uuid = normalizeUuid(def.uuid);
    const properties = propertyBits(def.properties);
    const declarationHandle = this.table.length + 1;
    const valueHandle = declarationHandle + 1;
    const hasCccd = (properties & (CharacteristicProperty.notify | CharacteristicProperty.indicate)) !== 0;
    const descriptors = def.descriptors ?? [];
    for (const d of descriptors) {
      if (normalizeUuid(d.uuid) === GattType.ClientCharacteristicConfiguration) {
        throw new Error(`characteristic ${formatUuid(uuid)}: the CCCD is added automatically, do not list it`);
      }
    }
    const handles: CharacteristicHandles = {
      declaration: declarationHandle,
      value: valueHandle,
      cccd: hasCccd ? valueHandle + 1 : null,
      end: valueHandle + (hasCccd ? 1 : 0) + descriptors.length,
    };
    const ch: Characteristic = { uuid, serviceUuid, properties, handles, source: def.value ?? Buffer.alloc(0), onWrite: def.onWrite };
    this.characteristics.push(ch);

    const declValue = Buffer.concat([Buffer.of(properties, valueHandle & 0xff, valueHandle >> 8), uuidToBytes(uuid)]);
    this.table.push(this.declaration(declarationHandle, GattType.Characteristic, uuid, "characteristic", declValue));

    this.table.push({
      handle: valueHandle,
      type: uuid,
      typeBytes: uuidToBytes(uuid),
      owner: uuid,
      role: "value",
      readable: (properties & CharacteristicProperty.read) !== 0,
      writable: (properties & CharacteristicProperty.write) !== 0,
      writableWithoutResponse: (properties & CharacteristicProperty.writeWithoutResponse) !== 0,
      read: () => readSource(ch.source),
      write: (_session, value, withoutResponse) => {
        const result = ch.onWrite?.(value, withoutResponse);
        if (typeof result === "number" && result !== 0) return result;
        if (Buffer.isBuffer(ch.source)) ch.source = Buffer.from(value);
        return 0;
      },
    });

    if (hasCccd) {
      const cccdHandle = valueHandle + 1;
      this.table.push({
        handle: cccdHandle,
        type: GattType.ClientCharacteristicConfiguration,
        typeBytes: uuidToBytes(GattType.ClientCharacteristicConfiguration),
        owner: uuid,
        role: "cccd",
        readable: true,
        writable: true,
        // A Write Command to a CCCD is legal ATT; noble uses Write Request, others may not.
        writableWithoutResponse: true,
        read: (session) => {
          const b = Buffer.alloc(2);
          b.writeUInt16LE(session.cccd.get(valueHandle) ?? 0, 0);
          return b;
        },
        write: (session, value) => this.writeCccd(session, ch, value),
      });
    }

    for (const d of descriptors) {
      const type = normalizeUuid(d.uuid);
      const source = d.value ?? Buffer.alloc(0);
      const onWrite = d.onWrite;
      this.table.push({
        handle: this.table.length + 1,
        type,
        typeBytes: uuidToBytes(type),
        owner: uuid,
        role: "descriptor",
        readable: true,
        writable: onWrite !== undefined,
        writableWithoutResponse: false,
        read: () => readSource(source),
        write: (_session, value, withoutResponse) => {
          const result = onWrite?.(value, withoutResponse);
          return typeof result === "number" ? result : 0;
        },
      });
    }
  }

  /** The attribute table in handle order. */
  get attributes(): readonly AttributeInfo[] {
    return this.table.map((a) => ({ handle: a.handle, type: a.type, owner: a.owner, role: a.role, ...(a.endHandle !== undefined ? { endHandle: a.endHandle } : {}) }));
  }

  /** The handles of a characteristic, looked up by UUID (any spelling). */
  handlesOf(characteristicUuid: string): CharacteristicHandles {
    return { ...this.characteristic(characteristicUuid).handles };
  }

  private characteristic(uuid: string): Characteristic {
    const wanted = normalizeUuid(uuid);
    const found = this.characteristics.filter((c) => c.uuid === wanted);
    if (found.length === 0) throw new Error(`no characteristic ${formatUuid(wanted)} in this GATT server`);
    if (found.length > 1) throw new Error(`characteristic ${formatUuid(wanted)} appears in more than one service`);
    return found[0];
  }

  // ---------------------------------------------------------------------------------------------
  // Connection

  get connected(): boolean {
    return this.session !== null;
  }

  /**
   * The connection's ATT MTU: min(client's Rx MTU, maxMtu) once the client has exchanged it, 23 before and while
   * disconnected. Notifications, indications and client PDUs are bounded by this, not by maxMtu.
   */
  get mtu(): number {
    return this.session?.mtu ?? ATT_DEFAULT_MTU;
  }

  /** Starts serving a new connection with fresh state; a previous one is detached first. */
  attach(link: PeripheralLink): void {
    if (this.session) this.detach();
    this.session = { link, mtu: ATT_DEFAULT_MTU, mtuExchanged: false, cccd: new Map(), prepared: [], indications: [], outstanding: null };
  }

  /**
   * Ends the current connection: pending indications reject, CCCDs reset (an `unsubscribed` event for
   * each one that was on), the prepare queue is dropped.
   */
  detach(): void {
    const s = this.session;
    if (!s) return;
    this.session = null;
    const gone = new Error("disconnected");
    const pending = [...(s.outstanding ? [s.outstanding] : []), ...s.indications.splice(0)];
    s.outstanding = null;
    for (const p of pending) p.reject(gone);
    for (const [valueHandle, bits] of s.cccd) {
      if (bits !== 0) this.emit("unsubscribed", this.characteristicByValueHandle(valueHandle).uuid);
    }
    s.cccd.clear();
  }

  private characteristicByValueHandle(handle: number): Characteristic {
    const ch = this.characteristics.find((c) => c.handles.value === handle);
    if (!ch) throw new Error(`no characteristic value at handle ${handle}`);
    return ch;
  }

  /** CCCD bits of a characteristic on the current connection (all false while disconnected). */
  subscription(characteristicUuid: string): Subscription {
    const ch = this.characteristic(characteristicUuid);
    const bits = this.session?.cccd.get(ch.handles.value) ?? 0;
    return { notify: (bits & CCCD_NOTIFY) !== 0, indicate: (bits & CCCD_INDICATE) !== 0 };
  }

  isSubscribed(characteristicUuid: string, mode: "notify" | "indicate"): boolean {
    return this.subscription(characteristicUuid)[mode];
  }

  // ---------------------------------------------------------------------------------------------
  // Server-initiated PDUs

  /**
   * Sends one notification. Resolves when the link has delivered it; rejects if the link drops first.
   * Throws (synchronously: these are programming errors of the peripheral) when not connected, when the
   * central has not enabled notifications, or when the value does not fit in MTU − 3 bytes: a value is
   * never truncated silently.
   */
  notify(characteristicUuid: string, value: Buffer): Promise<void> {
    const { session, ch } = this.checkServerInitiated(characteristicUuid, value, "notify");
    return session.link.sendAtt(encodeHandleValueNotification(ch.handles.value, value));
  }

  /**
   * Sends one indication. Resolves when the central confirms it. One indication is outstanding at a time
   * (ATT allows no more); later ones wait in order. Rejects if the link drops or the central disables
   * indications before it is sent. Throws like notify().
   */
  indicate(characteristicUuid: string, value: Buffer): Promise<void> {
    const { session, ch } = this.checkServerInitiated(characteristicUuid, value, "indicate");
    return new Promise<void>((resolve, reject) => {
      session.indications.push({ characteristic: ch, value: Buffer.from(value), resolve, reject });
      this.pumpIndications(session);
    });
  }

  /** Indications queued or awaiting confirmation on this connection. */
  get pendingIndications(): number {
    const s = this.session;
    return s ? s.indications.length + (s.outstanding ? 1 : 0) : 0;
  }

  private checkServerInitiated(uuid: string, value: Buffer, mode: "notify" | "indicate"): { session: Session; ch: Characteristic } {
    const ch = this.characteristic(uuid);
    const session = this.session;
    const name = formatUuid(ch.uuid);
    if (!session) throw new Error(`cannot ${mode} ${name}: not connected`);
    if ((ch.properties & CharacteristicProperty[mode]) === 0) throw new Error(`cannot ${mode} ${name}: the characteristic has no ${mode} property`);
    const bit = mode === "notify" ? CCCD_NOTIFY : CCCD_INDICATE;
    if (((session.cccd.get(ch.handles.value) ?? 0) & bit) === 0) throw new Error(`cannot ${mode} ${name}: the central has not enabled ${mode === "notify" ? "notifications" : "indications"}`);
    if (value.length > session.mtu - 3) throw new RangeError(`cannot ${mode} ${name}: ${value.length} bytes do not fit in MTU ${session.mtu} − 3`);
    return { session, ch };
  }

  private pumpIndications(s: Session): void {
    // A confirmation may arrive synchronously inside sendAtt (a fake link); `outstanding` is set before
    // sending, so the nested pump sends the next one and this loop then stops.
    while (this.session === s && !s.outstanding && s.indications.length > 0) {
      const next = s.indications.shift() as PendingIndication;
      const ch = next.characteristic;
      if (((s.cccd.get(ch.handles.value) ?? 0) & CCCD_INDICATE) === 0) {
        next.reject(new Error(`indication on ${formatUuid(ch.uuid)} dropped: the central disabled indications`));
        continue;
      }
      s.outstanding = next;
      s.link.sendAtt(encodeHandleValueIndication(ch.handles.value, next.value)).catch((error: unknown) => {
        if (s.outstanding !== next) return;
        s.outstanding = null;
        next.reject(error instanceof Error ? error : new Error(String(error)));
        this.pumpIndications(s);
      });
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Client PDUs

  /** One complete ATT PDU from the central. Ignored while no connection is attached. */
  handlePdu(pdu: Buffer): void {
    const s = this.session;
    if (!s) {
      this.violation(`ATT PDU ${hex(pdu)} received while not connected`);
      return;
    }
    const decoded = decodeClientPdu(pdu);
    if (!decoded.ok) {
      this.violation(decoded.reason);
      if (decoded.respond) this.send(s, encodeErrorResponse(decoded.opcode, decoded.handle, decoded.error));
      return;
    }
    if (pdu.length > s.mtu) {
      // A real server cannot receive more than its MTU; noble never splits a Write Command, so this
      // catches a node writing too much without response.
      this.violation(`ATT PDU of ${pdu.length} bytes exceeds MTU ${s.mtu}: ${hex(pdu)}`);
      if (pdu[0] !== AttOpcode.WriteCommand && pdu[0] !== AttOpcode.HandleValueConfirmation) {
        this.send(s, encodeErrorResponse(pdu[0], pdu.length >= 3 ? pdu.readUInt16LE(1) : 0, MALFORMED_PDU_ERROR));
      }
      return;
    }
    const response = this.serve(s, decoded.pdu, pdu[0]);
    if (response) this.send(s, response);
  }

  private send(s: Session, pdu: Buffer): void {
    // A response lost with its link needs no handling: the central is gone too.
    s.link.sendAtt(pdu).catch(() => undefined);
  }

  private violation(message: string): void {
    this.emit("violation", message);
  }

  private serve(s: Session, req: AttClientPdu, opcode: number): Buffer | null {
    const error = (handle: number, code: number): Buffer => encodeErrorResponse(opcode, handle, code);
    switch (req.kind) {
      case "exchangeMtu":
        return this.exchangeMtu(s, req.clientRxMtu);
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
        const attr = this.table[req.handle - 1];
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
        if (code !== 0) this.violation(`Write Command to handle ${req.handle} dropped (ATT error 0x${code.toString(16).padStart(2, "0")}): ${hex(req.value)}`);
        return null;
      }
      case "prepareWrite": {
        const attr = this.table[req.handle - 1];
        if (req.handle === 0 || !attr) return error(req.handle, AttError.InvalidHandle);
        if (!attr.writable) return error(req.handle, AttError.WriteNotPermitted);
        if (s.prepared.length >= MAX_PREPARED_WRITES) return error(req.handle, AttError.PrepareQueueFull);
        s.prepared.push({ handle: req.handle, offset: req.offset, value: req.value });
        return encodePrepareWriteResponse(req.handle, req.offset, req.value);
      }
      case "executeWrite":
        return this.executeWrite(s, req.execute, error);
      case "confirmation": {
        const done = s.outstanding;
        if (!done) {
          this.violation("Handle Value Confirmation without an outstanding indication");
          return null;
        }
        s.outstanding = null;
        done.resolve();
        this.pumpIndications(s);
        return null;
      }
    }
  }

  private exchangeMtu(s: Session, clientRxMtu: number): Buffer {
    // The answer is the server's own Rx MTU, never the smaller value (Core Spec Vol 3 Part F 3.4.2.2): NimBLE,
    // BlueZ and Bumble do so, and a client that adopts the answer as the link MTU (noble 2.8 does) must be seen
    // to get it wrong here as it does against them.
    if (s.mtuExchanged) {
      // The spec allows one exchange per connection; the link MTU stays what the first one agreed.
      this.violation(`repeated MTU Exchange (client ${clientRxMtu}); MTU stays ${s.mtu}`);
      return encodeExchangeMtuResponse(this.maxMtu);
    }
    s.mtu = Math.max(ATT_DEFAULT_MTU, Math.min(clientRxMtu, this.maxMtu));
    s.mtuExchanged = true;
    this.emit("mtu", s.mtu);
    return encodeExchangeMtuResponse(this.maxMtu);
  }

  private rangeError(start: number, end: number, error: (h: number, c: number) => Buffer): Buffer | null {
    return start === 0 || start > end ? error(start, AttError.InvalidHandle) : null;
  }

  private inRange(start: number, end: number): Attribute[] {
    return this.table.slice(start - 1, Math.min(end, this.table.length));
  }

  private readByGroupType(s: Session, start: number, end: number, groupType: string, error: (h: number, c: number) => Buffer): Buffer {
    const bad = this.rangeError(start, end, error);
    if (bad) return bad;
    if (groupType !== GattType.PrimaryService && groupType !== GattType.SecondaryService) return error(start, AttError.UnsupportedGroupType);
    const groups = this.inRange(start, end).filter((a) => a.type === groupType);
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

  private readByType(s: Session, start: number, end: number, type: string, error: (h: number, c: number) => Buffer): Buffer {
    const bad = this.rangeError(start, end, error);
    if (bad) return bad;
    const matches = this.inRange(start, end).filter((a) => a.type === type);
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

  private findInformation(s: Session, start: number, end: number, error: (h: number, c: number) => Buffer): Buffer {
    // noble sends this even when a characteristic has no descriptors (start > end): Invalid Handle ends
    // its descriptor discovery cleanly.
    const bad = this.rangeError(start, end, error);
    if (bad) return bad;
    const found = this.inRange(start, end);
    if (found.length === 0) return error(start, AttError.AttributeNotFound);
    const size = found[0].typeBytes.length;
    const entries: { handle: number; type: string }[] = [];
    for (const a of found) {
      if (a.typeBytes.length !== size || 2 + (entries.length + 1) * (2 + size) > s.mtu) break;
      entries.push({ handle: a.handle, type: a.type });
    }
    return encodeFindInformationResponse(entries);
  }

  private findByTypeValue(s: Session, start: number, end: number, type: string, value: Buffer, error: (h: number, c: number) => Buffer): Buffer {
    const bad = this.rangeError(start, end, error);
    if (bad) return bad;
    const entries: { handle: number; groupEndHandle: number }[] = [];
    for (const a of this.inRange(start, end)) {
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
  private readAttribute(s: Session, attr: Attribute): Buffer | null {
    try {
      return attr.read(s);
    } catch (e) {
      this.violation(`reading handle ${attr.handle} (${formatUuid(attr.owner)}) threw: ${e instanceof Error ? e.message : String(e)}`);
      return null;
    }
  }

  /** Checks and applies one write; 0 or an ATT error code. */
  private writeAttribute(s: Session, handle: number, value: Buffer, withoutResponse: boolean): number {
    const attr = this.table[handle - 1];
    if (handle === 0 || !attr) return AttError.InvalidHandle;
    if (!(withoutResponse ? attr.writableWithoutResponse : attr.writable)) return AttError.WriteNotPermitted;
    if (value.length > ATT_MAX_VALUE_LENGTH) return AttError.InvalidAttributeValueLength;
    return attr.write(s, value, withoutResponse);
  }

  private writeCccd(s: Session, ch: Characteristic, value: Buffer): number {
    if (value.length !== 2) return AttError.InvalidAttributeValueLength;
    const bits = value.readUInt16LE(0);
    const allowed =
      ((ch.properties & CharacteristicProperty.notify) !== 0 ? CCCD_NOTIFY : 0) | ((ch.properties & CharacteristicProperty.indicate) !== 0 ? CCCD_INDICATE : 0);
    if ((bits & ~allowed) !== 0) {
      this.violation(`CCCD of ${formatUuid(ch.uuid)} written with 0x${bits.toString(16).padStart(4, "0")}, characteristic allows 0x${allowed.toString(16).padStart(4, "0")}`);
      return AttError.CccdImproperlyConfigured;
    }
    const before = s.cccd.get(ch.handles.value) ?? 0;
    s.cccd.set(ch.handles.value, bits);
    if (bits !== 0 && bits !== before) this.emit("subscribed", ch.uuid, { notify: (bits & CCCD_NOTIFY) !== 0, indicate: (bits & CCCD_INDICATE) !== 0 });
    if (bits === 0 && before !== 0) this.emit("unsubscribed", ch.uuid);
    return 0;
  }

  private executeWrite(s: Session, execute: boolean, error: (h: number, c: number) => Buffer): Buffer {
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
  }
}
