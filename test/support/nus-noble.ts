/**
 * The central side of NUS YMODEM tests: noble's unmodified HCI stack on a Simulation's virtual controller, and
 * the pure YmodemReceiver wired to it (subscribe TX, write RX without response, a block timer in simulated
 * time). This is what the nus-ymodem-receive node does, minus Node-RED, so simulator and interop tests do not
 * wait for the node.
 */
import { withBindings, type Characteristic, type Noble, type Peripheral } from "@stoprocent/noble";
import { hciPeerPort, registerHciPeer, unregisterHciPeer } from "../../src/ble/hci-peer";
import { installNobleHciDriver } from "../../src/ble/noble-driver";
import type { Simulation } from "../../src/sim/scenario";
import type { Clock, Timer } from "../../src/protocol/clock";
import { YmodemReceiver, type YmodemError, type YmodemEvent, type YmodemReceiverOptions } from "../../src/protocol/ymodem";
import { NUS_RX, NUS_SERVICE, NUS_TX } from "../../src/protocol/nus";
import { XOSS_CONTROL_CHARACTERISTIC } from "../../src/protocol/xoss";

const short = (uuid: string): string => uuid.replace(/-/g, "");

let nextId = 1;

export interface SimNoble {
  noble: Noble;
  /** Stops noble (its exit handlers and poll timer) and unregisters the controller. */
  dispose(): void;
}

/** A noble instance talking HCI to the simulation's virtual controller, in process. */
export function nobleFor(sim: Simulation): SimNoble {
  installNobleHciDriver();
  const id = `nus-ymodem-test-${process.pid}-${nextId++}`;
  registerHciPeer(id, sim.controller);
  const noble = withBindings("hci", { hciDriver: "uart", bindParams: { uart: { port: hciPeerPort(id), baudRate: 1000000 } } });
  return {
    noble,
    dispose() {
      noble.stop();
      noble.removeAllListeners();
      unregisterHciPeer(id);
    },
  };
}

export interface NusConnection {
  peripheral: Peripheral;
  rx: Characteristic;
  tx: Characteristic;
  /** XOSS control characteristic, when the peripheral has one. */
  control: Characteristic | undefined;
}

/** Scans until noble discovers a peripheral that `match` accepts, stops scanning and returns it. */
export async function scanFor(noble: Noble, match: (p: Peripheral) => boolean): Promise<Peripheral> {
  const found = new Promise<Peripheral>((resolve) => {
    const listener = (p: Peripheral): void => {
      if (!match(p)) return;
      noble.removeListener("discover", listener);
      resolve(p);
    };
    noble.on("discover", listener);
  });
  await noble.startScanningAsync([], false);
  const peripheral = await found;
  await noble.stopScanningAsync();
  return peripheral;
}

/** Scans for `address`, connects (asking for `mtu`), discovers NUS. */
export async function connectNus(noble: Noble, address: string, mtu = 247): Promise<NusConnection> {
  await noble.waitForPoweredOnAsync();
  const wanted = address.toLowerCase();
  const peripheral = await scanFor(noble, (p) => p.address === wanted);
  // noble passes connect options on to its GATT client, whose MTU request asks for `mtu` (not in the typings).
  const connectWith = peripheral.connectAsync as (this: Peripheral, options: { mtu: number }) => Promise<void>;
  await connectWith.call(peripheral, { mtu });
  const { characteristics } = await peripheral.discoverSomeServicesAndCharacteristicsAsync([short(NUS_SERVICE)], []);
  const find = (uuid: string): Characteristic | undefined => characteristics.find((c) => c.uuid === short(uuid));
  const rx = find(NUS_RX);
  const tx = find(NUS_TX);
  if (!rx || !tx) throw new Error(`${address}: NUS RX/TX not found (got ${characteristics.map((c) => c.uuid).join(", ")})`);
  return { peripheral, rx, tx, control: find(XOSS_CONTROL_CHARACTERISTIC) };
}

export interface ReceivedFile {
  name: string;
  data: Buffer;
  blocks: number;
  retransmissions: number;
  blockSize: 128 | 1024 | "mixed";
  crc: "arc" | "xmodem";
}

export interface ReceiveResult {
  files: ReceivedFile[];
  error: YmodemError | null;
  /** Every event, sends included, for protocol assertions. */
  events: YmodemEvent[];
  /** Bytes the central wrote to RX. */
  written: Buffer[];
  /** Notifications received on TX, as they arrived (their sizes show the fragmentation). */
  notifications: Buffer[];
  /** Simulated time from subscribing to the end. */
  durationMs: number;
}

export interface ReceiveOptions extends Partial<YmodemReceiverOptions> {
  /** Simulated ms without a byte before the receiver's timeout. Default 5000. */
  blockTimeoutMs?: number;
}

/** Receives YMODEM over NUS until the receiver ends (batch end, disconnect after the seed's last file) or fails. */
export async function receiveYmodem(conn: NusConnection, clock: Clock, options: ReceiveOptions = {}): Promise<ReceiveResult> {
  const receiver = new YmodemReceiver({
    crc: options.crc ?? "auto",
    mode: options.mode ?? "C",
    maxBytes: options.maxBytes ?? 64 * 1024 * 1024,
    retries: options.retries ?? 10,
  });
  const blockTimeoutMs = options.blockTimeoutMs ?? 5000;
  const result: ReceiveResult = { files: [], error: null, events: [], written: [], notifications: [], durationMs: 0 };
  let timer: Timer | null = null;
  let writes: Promise<void> = Promise.resolve();
  let finished = false;
  let started = 0;
  let settle: () => void = () => undefined;
  const done = new Promise<void>((resolve) => (settle = resolve));

  const finish = (): void => {
    if (finished) return;
    finished = true;
    timer?.cancel();
    conn.tx.removeListener("data", onData);
    conn.peripheral.removeListener("disconnect", onDisconnect);
    result.durationMs = clock.now() - started;
    // The last ACK must leave before the caller disconnects.
    writes.then(settle, settle);
  };
  const handle = (events: YmodemEvent[]): void => {
    for (const e of events) {
      result.events.push(e);
      if (e.type === "send") {
        const bytes = e.bytes;
        result.written.push(bytes);
        // In order, one Write Command each (what the node does); a write lost with the link ends nothing here.
        writes = writes.then(() => conn.rx.writeAsync(bytes, true)).catch(() => undefined);
      } else if (e.type === "file") {
        result.files.push({ name: e.name, data: e.data, blocks: e.blocks, retransmissions: e.retransmissions, blockSize: e.blockSize, crc: e.crc });
      } else if (e.type === "error") {
        result.error = e.error;
        finish();
      } else if (e.type === "end") {
        finish();
      }
    }
    if (!finished) {
      timer?.cancel();
      timer = clock.setTimeout(() => handle(receiver.timeout()), blockTimeoutMs);
    }
  };
  const onData = (data: Buffer): void => {
    result.notifications.push(Buffer.from(data));
    handle(receiver.feed(data));
  };
  const onDisconnect = (): void => handle(receiver.disconnected());
  conn.tx.on("data", onData);
  conn.peripheral.once("disconnect", onDisconnect);
  await conn.tx.subscribeAsync();
  started = clock.now();
  handle(receiver.start());
  await done;
  return result;
}

const subscribedControls = new WeakSet<Characteristic>();

/** The XOSS control exchange: write a frame (subscribing first), resolve with the next control notification. */
export async function xossRequest(conn: NusConnection, frame: Buffer, timeoutMs = 5000): Promise<Buffer> {
  const control = conn.control;
  if (!control) throw new Error("no XOSS control characteristic");
  if (!subscribedControls.has(control)) {
    await control.subscribeAsync();
    subscribedControls.add(control);
  }
  const reply = new Promise<Buffer>((resolve, reject) => {
    const timer = setTimeout(() => {
      control.removeListener("data", listener);
      reject(new Error(`no XOSS reply to ${frame.toString("hex")}`));
    }, timeoutMs);
    const listener = (data: Buffer): void => {
      clearTimeout(timer);
      control.removeListener("data", listener);
      resolve(Buffer.from(data));
    };
    control.on("data", listener);
  });
  await control.writeAsync(frame, false);
  return reply;
}
