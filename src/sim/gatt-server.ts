/**
 * A GATT server for virtual peripherals: its attribute table (gatt-database.ts), the ATT requests noble's client
 * sends (att-requests.ts), and here the connection: MTU exchange, CCCD state, notifications and indications.
 *
 * One server serves one connection at a time: attach(link) starts a fresh per-connection state (MTU 23,
 * CCCDs off, empty prepare queue), detach() ends it. Requests are answered synchronously, in order,
 * through link.sendAtt.
 */
import { EventEmitter } from "node:events";
import {
  ATT_DEFAULT_MTU,
  ATT_MAX_MTU,
  AttError,
  AttOpcode,
  CharacteristicProperty,
  MALFORMED_PDU_ERROR,
  decodeClientPdu,
  encodeErrorResponse,
  encodeExchangeMtuResponse,
  encodeHandleValueIndication,
  encodeHandleValueNotification,
  formatUuid,
} from "../protocol/att";
import { agreedMtu } from "../protocol/att-mtu";
import { AttRequests, hex } from "./att-requests";
import {
  CCCD_INDICATE,
  CCCD_NOTIFY,
  GattDatabase,
  type AttributeInfo,
  type Characteristic,
  type CharacteristicHandles,
  type GattSession,
  type PendingIndication,
  type ServiceDefinition,
  type Subscription,
} from "./gatt-database";
import { DEFAULT_SERVER_MTU, type PeripheralLink } from "./types";

export type {
  AttributeInfo,
  CharacteristicDefinition,
  CharacteristicHandles,
  CharacteristicPropertyName,
  DescriptorDefinition,
  ServiceDefinition,
  Subscription,
  ValueSource,
  WriteHandler,
} from "./gatt-database";

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

export class GattServer extends EventEmitter<GattServerEvents> {
  readonly maxMtu: number;
  private readonly db: GattDatabase;
  private readonly requests: AttRequests;
  private session: GattSession | null = null;

  constructor(services: readonly ServiceDefinition[], options: GattServerOptions = {}) {
    super();
    this.maxMtu = options.maxMtu ?? DEFAULT_SERVER_MTU;
    if (!Number.isInteger(this.maxMtu) || this.maxMtu < ATT_DEFAULT_MTU || this.maxMtu > ATT_MAX_MTU) {
      throw new RangeError(`maxMtu must be a whole number ${ATT_DEFAULT_MTU}..${ATT_MAX_MTU}, got ${this.maxMtu}`);
    }
    this.db = new GattDatabase(services, (session, ch, value) => this.writeCccd(session, ch, value));
    this.requests = new AttRequests(this.db, {
      violation: (message) => this.violation(message),
      exchangeMtu: (session, clientRxMtu) => this.exchangeMtu(session, clientRxMtu),
      confirmation: (session) => this.confirmation(session),
    });
  }

  /** The attribute table in handle order. */
  get attributes(): readonly AttributeInfo[] {
    return this.db.attributes;
  }

  /** The handles of a characteristic, looked up by UUID (any spelling). */
  handlesOf(characteristicUuid: string): CharacteristicHandles {
    return this.db.handlesOf(characteristicUuid);
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
      if (bits !== 0) this.emit("unsubscribed", this.db.characteristicByValueHandle(valueHandle).uuid);
    }
    s.cccd.clear();
  }

  /** CCCD bits of a characteristic on the current connection (all false while disconnected). */
  subscription(characteristicUuid: string): Subscription {
    const ch = this.db.characteristic(characteristicUuid);
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

  private checkServerInitiated(uuid: string, value: Buffer, mode: "notify" | "indicate"): { session: GattSession; ch: Characteristic } {
    const ch = this.db.characteristic(uuid);
    const session = this.session;
    const name = formatUuid(ch.uuid);
    if (!session) throw new Error(`cannot ${mode} ${name}: not connected`);
    if ((ch.properties & CharacteristicProperty[mode]) === 0) throw new Error(`cannot ${mode} ${name}: the characteristic has no ${mode} property`);
    const bit = mode === "notify" ? CCCD_NOTIFY : CCCD_INDICATE;
    if (((session.cccd.get(ch.handles.value) ?? 0) & bit) === 0) throw new Error(`cannot ${mode} ${name}: the central has not enabled ${mode === "notify" ? "notifications" : "indications"}`);
    if (value.length > session.mtu - 3) throw new RangeError(`cannot ${mode} ${name}: ${value.length} bytes do not fit in MTU ${session.mtu} − 3`);
    return { session, ch };
  }

  private pumpIndications(s: GattSession): void {
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
    const response = this.requests.serve(s, decoded.pdu, pdu[0]);
    if (response) this.send(s, response);
  }

  private send(s: GattSession, pdu: Buffer): void {
    // A response lost with its link needs no handling: the central is gone too.
    s.link.sendAtt(pdu).catch(() => undefined);
  }

  private violation(message: string): void {
    this.emit("violation", message);
  }

  private exchangeMtu(s: GattSession, clientRxMtu: number): Buffer {
    // The answer is the server's own Rx MTU, never the smaller value (Core Spec Vol 3 Part F 3.4.2.2): NimBLE,
    // BlueZ and Bumble do so, and a client that adopts the answer as the link MTU (noble 2.8 does) must be seen
    // to get it wrong here as it does against them.
    if (s.mtuExchanged) {
      // The spec allows one exchange per connection; the link MTU stays what the first one agreed.
      this.violation(`repeated MTU Exchange (client ${clientRxMtu}); MTU stays ${s.mtu}`);
      return encodeExchangeMtuResponse(this.maxMtu);
    }
    s.mtu = agreedMtu(clientRxMtu, this.maxMtu);
    s.mtuExchanged = true;
    this.emit("mtu", s.mtu);
    return encodeExchangeMtuResponse(this.maxMtu);
  }

  private writeCccd(s: GattSession, ch: Characteristic, value: Buffer): number {
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

  private confirmation(s: GattSession): void {
    const done = s.outstanding;
    if (!done) {
      this.violation("Handle Value Confirmation without an outstanding indication");
      return;
    }
    s.outstanding = null;
    done.resolve();
    this.pumpIndications(s);
  }
}
