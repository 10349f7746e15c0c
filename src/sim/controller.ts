import { EventEmitter } from "node:events";
import { addressToBytes, H4_ACL, H4_COMMAND, HCI_CONNECTION_TIMEOUT } from "../protocol/hci";
import { parseAcl, parseCommand } from "../protocol/hci-packets";
import type { ControllerCounters, ControllerPorts, PeripheralEntry } from "./connection";
import { dispatchCommand, type CommandContext } from "./hci-commands";
import { Initiator } from "./initiator";
import { L2cap } from "./l2cap";
import { Radio } from "./radio";
import { Scanner } from "./scanner";
import type { Clock } from "../protocol/clock";
import type { LinkSettings, VirtualPeripheral } from "./types";
import { DEFAULT_LINK } from "./types";

// Part of the controller's API since before the split: tests and the bench import them from here.
export type { ControllerCounters } from "./connection";
export { exchangeAirTimeUs, maxPdusPerEvent, placeAnchor, pduAirTimeUs, radioSlotsMs, type ConnectionEventInfo } from "./radio";

/**
 * A simulated Bluetooth LE controller speaking HCI over H4 to an unmodified host stack (noble).
 * It answers the commands noble sends (see shared/docs/noble-hci.md), reports advertising from its virtual
 * peripherals, and carries ATT between the host and a peripheral over a link-layer model in which every
 * connection event moves a bounded number of PDUs (pdusPerEvent and air time), so no setting beats physics.
 *
 * One radio serves every connection, as in a real adapter: connection events never overlap (radio.ts).
 *
 * This class is the controller's face: its options, counters, peripherals and their power, the H4 packets in both
 * directions and their order, and close(). Its parts: hci-commands.ts (the command table), scanner.ts (scanning and
 * advertising reports), initiator.ts (LE Create Connection), radio.ts (link timing and connection events),
 * l2cap.ts (ACL ↔ L2CAP, ATT and SMP to and from the peripheral); connection.ts holds what they share.
 *
 * Events:
 * - 'h4' (packet: Buffer): exactly one H4 packet towards the host, always asynchronously, in order; packets
 *   produced together (one connection event, one command) are emitted back to back in the same tick.
 * - 'host-h4' (packet: Buffer): a packet the host wrote, synchronously from write() before it is handled, so the
 *   two directions can be observed in the order they happened (a capture needs both; the host's side of the
 *   transport differs between in-process and pty, write() is the one place both pass). Listeners must not keep
 *   or change the buffer.
 * - 'connectionEvent' (info: ConnectionEventInfo): after each connection event, for tests and the bench.
 * - 'power' (address: string, poweredOn: boolean): powerOff()/powerOn() changed a peripheral's power.
 * - 'warning' (message: string): something the host or a peripheral did wrong that the controller tolerated.
 * - 'close': close() was called; nothing is emitted afterwards.
 */

export interface VirtualControllerOptions {
  clock: Clock;
  link?: LinkSettings;
  /** The controller's own public address (Read BD_ADDR). */
  address?: string;
  /**
   * Simulated period at which every advertising peripheral without timing of its own is reported while scanning (the
   * advertiser kinds keep their own intervals: VirtualPeripheral.nextAdvertisingEvent).
   */
  advertisingIntervalMs?: number;
  /** Simulated time from LE Create Connection (peer reachable) to LE Connection Complete. */
  connectDelayMs?: number;
  /** RSSI reported for every peripheral. */
  rssi?: number;
}


interface OutboxItem {
  packet: Buffer;
  delivered?: () => void;
}

export class VirtualController extends EventEmitter {
  readonly clock: Clock;
  readonly link: LinkSettings;
  readonly address: string;
  readonly counters: ControllerCounters = {
    commands: 0,
    hostAclPackets: 0,
    hostAclBytes: 0,
    controllerAclPackets: 0,
    controllerAclBytes: 0,
    connectionEvents: 0,
    pdusToPeripheral: 0,
    pdusToCentral: 0,
    advertisingReports: 0,
  };

  private readonly entries = new Map<string, PeripheralEntry>();
  private readonly l2cap: L2cap;
  private readonly radio: Radio;
  private readonly scanner: Scanner;
  private readonly initiator: Initiator;
  private readonly commandContext: CommandContext;
  private outbox: OutboxItem[] = [];
  private flushHandle?: NodeJS.Immediate;
  private closed = false;

  constructor(options: VirtualControllerOptions) {
    super();
    this.clock = options.clock;
    this.link = { ...(options.link ?? DEFAULT_LINK) };
    this.address = (options.address ?? "02:00:00:00:00:01").toLowerCase();
    addressToBytes(this.address); // validates
    const advertisingIntervalMs = options.advertisingIntervalMs ?? 100;
    const connectDelayMs = options.connectDelayMs ?? 10;
    const rssi = options.rssi ?? -55;
    const { connectionIntervalMs, pdusPerEvent, dataLength } = this.link;
    if (!(connectionIntervalMs >= 7.5 && connectionIntervalMs <= 4000)) throw new RangeError(`connectionIntervalMs must be 7.5 … 4000, got ${connectionIntervalMs}`);
    if (!(Number.isInteger(pdusPerEvent) && pdusPerEvent >= 1)) throw new RangeError(`pdusPerEvent must be a whole number >= 1, got ${pdusPerEvent}`);
    if (!(Number.isInteger(dataLength) && dataLength >= 27 && dataLength <= 251)) throw new RangeError(`dataLength must be 27 … 251, got ${dataLength}`);

    const ports: ControllerPorts = {
      clock: this.clock,
      link: this.link,
      counters: this.counters,
      isClosed: () => this.closed,
      send: (packet, delivered) => this.send(packet, delivered),
      warn: (message) => this.warn(message),
    };
    this.l2cap = new L2cap(ports, (handle) => this.radio.connections.get(handle));
    this.radio = new Radio(ports, this.l2cap, {
      connectionEvent: (info) => this.emit("connectionEvent", info),
      linkClosed: () => this.initiator.tryComplete(),
    });
    this.scanner = new Scanner(ports, this.entries, advertisingIntervalMs, rssi);
    this.initiator = new Initiator(ports, this.entries, this.radio, connectDelayMs);
    this.commandContext = {
      link: this.link,
      address: this.address,
      rssi,
      scanner: this.scanner,
      initiator: this.initiator,
      radio: this.radio,
      send: (packet) => this.send(packet),
      reset: () => this.reset(),
    };
  }

  // -------------------------------------------------------------------------------------------------------------------
  // Peripherals

  addPeripheral(peripheral: VirtualPeripheral): void {
    const address = peripheral.address.toLowerCase();
    addressToBytes(address);
    if (this.entries.has(address)) throw new Error(`a peripheral with address ${address} already exists`);
    const entry = { peripheral, powered: true };
    this.entries.set(address, entry);
    this.scanner.added(entry);
  }

  peripheral(address: string): VirtualPeripheral | undefined {
    return this.entries.get(address.toLowerCase())?.peripheral;
  }

  peripherals(): VirtualPeripheral[] {
    return [...this.entries.values()].map((e) => e.peripheral);
  }

  isPoweredOn(address: string): boolean {
    return this.entry(address).powered;
  }

  /** Links currently up (a test of connection sharing counts them). */
  get connectionCount(): number {
    return this.radio.connections.size;
  }

  isConnected(address: string): boolean {
    return this.entry(address).connection !== undefined;
  }

  /** The peripheral stops advertising; a link to it is lost after the supervision timeout (reason 0x08). */
  powerOff(address: string): void {
    const entry = this.entry(address);
    if (!entry.powered || this.closed) return;
    entry.powered = false;
    this.initiator.peerPoweredOff(entry);
    const conn = entry.connection;
    if (conn && !conn.lost) {
      conn.lost = true;
      conn.supervisionTimer = this.clock.setTimeout(() => {
        conn.supervisionTimer = undefined;
        this.radio.close(conn, HCI_CONNECTION_TIMEOUT, HCI_CONNECTION_TIMEOUT, true);
      }, conn.supervisionTimeoutMs);
    }
    this.emit("power", entry.peripheral.address, false);
  }

  /** The peripheral advertises again (and a pending LE Create Connection to it completes). */
  powerOn(address: string): void {
    const entry = this.entry(address);
    if (entry.powered || this.closed) return;
    entry.powered = true;
    this.scanner.forget(entry.peripheral.address);
    this.initiator.tryComplete();
    this.emit("power", entry.peripheral.address, true);
  }

  private entry(address: string): PeripheralEntry {
    const entry = this.entries.get(address.toLowerCase());
    if (!entry) throw new Error(`no virtual peripheral with address ${address}`);
    return entry;
  }

  // -------------------------------------------------------------------------------------------------------------------
  // Host → controller

  /** One H4 packet from the host. */
  write(packet: Buffer): void {
    if (this.closed || packet.length === 0) return;
    this.emit("host-h4", packet);
    if (packet[0] === H4_COMMAND) {
      const cmd = parseCommand(packet);
      if (!cmd) return this.warn(`truncated HCI command ${packet.toString("hex")}`);
      this.counters.commands++;
      dispatchCommand(this.commandContext, cmd.opcode, cmd.params);
    } else if (packet[0] === H4_ACL) {
      const acl = parseAcl(packet);
      if (!acl) return this.warn(`truncated ACL packet ${packet.toString("hex")}`);
      this.l2cap.fromHost(acl);
    } else {
      this.warn(`ignored H4 packet type 0x${packet[0].toString(16)}`);
    }
  }

  /** HCI Reset: scanning and initiating stop, links vanish without events (the host forgets them too). */
  private reset(): void {
    this.scanner.reset();
    this.initiator.reset();
    // The peripheral just stops hearing the central: for it, a supervision timeout.
    for (const conn of [...this.radio.connections.values()]) this.radio.close(conn, HCI_CONNECTION_TIMEOUT, HCI_CONNECTION_TIMEOUT, false);
  }

  // -------------------------------------------------------------------------------------------------------------------
  // Controller → host

  private send(packet: Buffer, delivered?: () => void): void {
    if (this.closed) return;
    this.outbox.push({ packet, delivered });
    this.flushHandle ??= setImmediate(() => this.flush());
  }

  /**
   * Emits what was queued before this tick, one packet per 'h4'. Packets queued while emitting (replies to
   * what the host writes from its handlers) wait for the next tick, so the host never sees a reentrant reply.
   * A listener that throws does not undo the emission: the packet counts as delivered (its send completes, so
   * the transmit window stays whole), the error propagates as from any emitter, and the rest of the batch
   * follows on the next tick.
   */
  private flush(): void {
    this.flushHandle = undefined;
    const batch = this.outbox;
    this.outbox = [];
    let i = 0;
    try {
      for (; i < batch.length && !this.closed; i++) {
        const item = batch[i];
        try {
          this.emit("h4", item.packet);
        } finally {
          item.delivered?.();
        }
      }
    } finally {
      if (i + 1 < batch.length && !this.closed) {
        this.outbox = batch.slice(i + 1).concat(this.outbox);
      }
      if (this.outbox.length > 0 && !this.closed) this.flushHandle ??= setImmediate(() => this.flush());
    }
  }

  private warn(message: string): void {
    if (this.listenerCount("warning") > 0) this.emit("warning", message);
  }

  /** Ends the simulation: timers cancelled, pending ATT sends rejected, peripherals closed; no event after 'close'. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.flushHandle) clearImmediate(this.flushHandle);
    this.flushHandle = undefined;
    this.outbox = [];
    this.scanner.stop();
    this.initiator.reset();
    this.radio.stop(new Error("virtual controller closed"));
    for (const entry of this.entries.values()) entry.peripheral.close();
    this.emit("close");
  }

  get isClosed(): boolean {
    return this.closed;
  }
}
