/**
 * The attribute table of a simulated GATT server, built from service definitions, and the per-connection state
 * its attributes read and write (GattSession). Handle layout, from handle 1, in definition order: per service its
 * declaration (0x2800), then per characteristic its declaration (0x2803), its value, a CCCD (0x2902) when it can
 * notify or indicate, then its own descriptors. A service ends at its last attribute.
 */
import { AttError, CharacteristicProperty, GattType, formatUuid, normalizeUuid, uuidToBytes } from "../protocol/att";
import type { PeripheralLink } from "./types";

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

/** One connection's state: its MTU, CCCDs, prepare queue and indications. */
export interface GattSession {
  readonly link: PeripheralLink;
  mtu: number;
  mtuExchanged: boolean;
  /** CCCD value per characteristic value handle. */
  readonly cccd: Map<number, number>;
  prepared: { handle: number; offset: number; value: Buffer }[];
  readonly indications: PendingIndication[];
  outstanding: PendingIndication | null;
}

export interface PendingIndication {
  characteristic: Characteristic;
  value: Buffer;
  resolve: () => void;
  reject: (error: Error) => void;
}

export interface Characteristic {
  readonly uuid: string;
  readonly serviceUuid: string;
  readonly properties: number;
  readonly handles: CharacteristicHandles;
  source: ValueSource;
  readonly onWrite?: WriteHandler;
}

export interface Attribute {
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
  read(session: GattSession): Buffer;
  /** Returns 0 on success or an ATT error code. */
  write(session: GattSession, value: Buffer, withoutResponse: boolean): number;
}

export const CCCD_NOTIFY = 0x0001;
export const CCCD_INDICATE = 0x0002;

function propertyBits(properties: readonly CharacteristicPropertyName[]): number {
  return properties.reduce((bits, p) => bits | CharacteristicProperty[p], 0);
}

function readSource(source: ValueSource): Buffer {
  return typeof source === "function" ? source() : source;
}

/** Applies a CCCD write on a connection; 0 or an ATT error code. */
export type CccdWriter = (session: GattSession, ch: Characteristic, value: Buffer) => number;

export class GattDatabase {
  /** Attributes in handle order: handle h is table[h − 1]. */
  readonly table: Attribute[] = [];
  readonly characteristics: Characteristic[] = [];

  constructor(
    services: readonly ServiceDefinition[],
    private readonly writeCccd: CccdWriter,
  ) {
    for (const service of services) this.addService(service);
    if (this.table.length > 0xfffe) throw new RangeError("attribute table exceeds the 16-bit handle space");
  }

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

  characteristic(uuid: string): Characteristic {
    const wanted = normalizeUuid(uuid);
    const found = this.characteristics.filter((c) => c.uuid === wanted);
    if (found.length === 0) throw new Error(`no characteristic ${formatUuid(wanted)} in this GATT server`);
    if (found.length > 1) throw new Error(`characteristic ${formatUuid(wanted)} appears in more than one service`);
    return found[0];
  }


  characteristicByValueHandle(handle: number): Characteristic {
    const ch = this.characteristics.find((c) => c.handles.value === handle);
    if (!ch) throw new Error(`no characteristic value at handle ${handle}`);
    return ch;
  }

  /** The attributes from `start` to `end` (both included) that exist. */
  inRange(start: number, end: number): Attribute[] {
    return this.table.slice(start - 1, Math.min(end, this.table.length));
  }
}
