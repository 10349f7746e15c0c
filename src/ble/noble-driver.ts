/**
 * The HCI driver noble uses, wrapped: noble's HCI stack (lib/hci-socket) loads the UART driver of
 * @stoprocent/bluetooth-hci-socket lazily (`require('./lib/uart.js')` in its index.js), and the Linux socket driver
 * beside it, so replacing those modules' exports in Node's module cache before noble starts puts this wrapper under
 * every HCI adapter. It protects real radios and in-process peers alike:
 * - ATT PDUs that would crash noble's parser never reach it, advertising reports it would drop are repaired, and the
 *   server's answer to Exchange MTU reaches noble as the link's agreed MTU (src/protocol/att-*.ts);
 * - noble's LE Set Scan Parameters go out with the scan type the pool chose (a ScanTypeSwitch in `bindParams`):
 *   noble always asks for an active scan, the pool may want a passive one, whose reports are completed so that
 *   noble reports every one (src/protocol/scan-parameters.ts);
 * - a serial port's failures are reported to the adapter's opener (a SerialObserver), never thrown, and a stopped
 *   port is released (closed, or its pending open awaited) instead of being left to end the process;
 * - a UART port named `hciPeerPort(id)` reaches the HCI peer registered as `id` (src/ble/hci-peer.ts) in this
 *   process; every other port goes to the original UART driver, so real serial controllers work in the same process.
 */
import { EventEmitter } from "node:events";
import * as fs from "node:fs";
import { createRequire } from "node:module";
import * as path from "node:path";
import { guardAdvertisingReport } from "../protocol/advertising-guard";
import { AttGuard } from "../protocol/att-guard";
import { AttMtuAgreement } from "../protocol/att-mtu";
import { OP } from "../protocol/hci";
import { buildCommand } from "../protocol/hci-packets";
import { scanTypeOf, withEmptyScanResponses, withScanType, type ScanType } from "../protocol/scan-parameters";
import { hciPeer, hciPeerIdOf, type HciPeer } from "./hci-peer";

const INSTALLED_MARK = Symbol.for("@ble-instruments/node-red-ble-instruments/virtual-hci-driver");

/**
 * Key of an optional SerialObserver in `bindParams.uart` (a symbol: the UART driver reads only the fields it knows).
 * Shared through the symbol registry, like the HCI peer registry, between the built package and its sources.
 */
export const SERIAL_OBSERVER = Symbol.for("@ble-instruments/node-red-ble-instruments/serial-observer");

/** What the opener of a real serial adapter learns from the driver wrapper. */
export interface SerialObserver {
  /** The serial port or its driver failed (the open, a read, a write); reported here, never thrown. */
  error(error: Error): void;
  /** noble stopped the driver; `released` resolves once the port is closed or its pending open has ended. */
  stopped(released: Promise<void>): void;
}

/**
 * Key of an optional ScanTypeSwitch in `bindParams` (a symbol: neither driver reads it, noble passes it through).
 */
export const SCAN_TYPE_SWITCH = Symbol.for("@ble-instruments/node-red-ble-instruments/scan-type-switch");

/**
 * The scan type of one adapter: the pool sets `type` before it starts a scan; the driver wrapper sends every LE Set
 * Scan Parameters of noble's with it, and records in `sent` the type the controller was last given.
 */
export class ScanTypeSwitch {
  type: ScanType = "active";
  sent: ScanType | null = null;
}

function scanSwitchOf(params: unknown): ScanTypeSwitch | undefined {
  if (typeof params !== "object" || params === null) return undefined;
  const found = (params as { [SCAN_TYPE_SWITCH]?: unknown })[SCAN_TYPE_SWITCH];
  return found instanceof ScanTypeSwitch ? found : undefined;
}

/** How long a stopped serial port may take to close, or to finish an open that was pending, before we stop waiting. */
const RELEASE_TIMEOUT_MS = 2000;

/** The part of serialport's SerialPort that a stopped driver leaves behind. */
interface SerialDevice extends EventEmitter {
  readonly opening: boolean;
  readonly closing: boolean;
  readonly isOpen: boolean;
  close(callback?: (error: Error | null) => void): void;
}

/**
 * The UART driver's serial port (its `_serialDevice`: the driver offers no public way to it). Checked by shape, so a
 * driver that changed gives undefined rather than a wrong object.
 */
function serialDeviceOf(driver: HciDriver): SerialDevice | undefined {
  const device = (driver as { _serialDevice?: unknown })._serialDevice;
  if (!(device instanceof EventEmitter)) return undefined;
  const d = device as Partial<SerialDevice>;
  if (typeof d.close !== "function" || typeof d.opening !== "boolean" || typeof d.isOpen !== "boolean") return undefined;
  return device as SerialDevice;
}

/**
 * Keeps what the driver's stop() leaves behind from ending the process, and closes it. stop() removes every
 * listener from the port, even while its open is pending: the open's failure (ENOENT, EISDIR, ENOTTY, a lock) or a
 * failing close would then be emitted as `error` to nobody, an uncaught exception; an open that succeeds would leave
 * the port open. Resolves once the port is closed or its open has failed (or after RELEASE_TIMEOUT_MS).
 */
function releaseSerialDevice(device: SerialDevice): Promise<void> {
  device.on("error", () => {
    // Nothing is listening any more: whatever the port still reports is of no use to anyone.
  });
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, RELEASE_TIMEOUT_MS);
    timer.unref();
    const done = (): void => {
      clearTimeout(timer);
      resolve();
    };
    if (device.opening) {
      device.once("open", () => device.close(() => done()));
      device.once("error", done);
    } else if (device.closing) {
      device.once("close", done);
      device.once("error", done);
    } else if (device.isOpen) {
      device.close(() => done());
    } else {
      done();
    }
  });
}

function observerOf(params: unknown): SerialObserver | undefined {
  if (typeof params !== "object" || params === null) return undefined;
  const uart = (params as { uart?: unknown }).uart;
  if (typeof uart !== "object" || uart === null) return undefined;
  const observer = (uart as { [SERIAL_OBSERVER]?: unknown })[SERIAL_OBSERVER];
  if (typeof observer !== "object" || observer === null) return undefined;
  const o = observer as Partial<SerialObserver>;
  return typeof o.error === "function" && typeof o.stopped === "function" ? (observer as SerialObserver) : undefined;
}

/** The part of a driver noble uses (lib/hci-socket/hci.js). */
interface HciDriver extends EventEmitter {
  bindRaw(devId: unknown, params: unknown): void;
  bindUser(devId: unknown, params: unknown, mode?: string): void;
  bindControl?(): void;
  start(): void;
  stop(): void;
  setFilter(filter: Buffer): void;
  write(data: Buffer): void;
  isDevUp(): boolean;
  reset?(): void;
  getDeviceList?(): unknown;
}

type HciDriverClass = new (...args: unknown[]) => HciDriver;

function layoutChanged(detail: string): Error {
  return new Error(
    `the @stoprocent/bluetooth-hci-socket layout changed: ${detail}. The BLE layer wraps that package's ` +
      `lazily loaded UART driver (lib/uart.js); check the installed version against the range in package.json.`,
  );
}

/**
 * The absolute path of the UART driver module that noble will load. `packageDir` is the directory of
 * @stoprocent/bluetooth-hci-socket (default: the copy noble resolves). Throws if the file is not where expected
 * or index.js no longer loads it by that name.
 */
export function locateUartDriver(packageDir?: string): string {
  let dir = packageDir;
  if (dir === undefined) {
    const fromHere = createRequire(__filename);
    let nobleDir: string;
    try {
      nobleDir = path.dirname(fromHere.resolve("@stoprocent/noble/package.json"));
    } catch {
      throw new Error("@stoprocent/noble is not installed");
    }
    try {
      dir = path.dirname(createRequire(path.join(nobleDir, "index.js")).resolve("@stoprocent/bluetooth-hci-socket/package.json"));
    } catch {
      throw layoutChanged(`noble (${nobleDir}) cannot resolve it`);
    }
  }
  const driver = path.join(dir, "lib", "uart.js");
  if (!fs.existsSync(driver)) throw layoutChanged(`${driver} does not exist`);
  let index: string;
  try {
    index = fs.readFileSync(path.join(dir, "index.js"), "utf8");
  } catch {
    throw layoutChanged(`${path.join(dir, "index.js")} cannot be read`);
  }
  if (!/require\(\s*['"]\.\/lib\/uart(\.js)?['"]\s*\)/.test(index)) throw layoutChanged(`${path.join(dir, "index.js")} no longer loads ./lib/uart.js`);
  return driver;
}

/**
 * Installs the wrapper (idempotent). Call before noble starts its HCI bindings (`withBindings('hci', …)`; for an HCI
 * peer `{ hciDriver: 'uart', bindParams: { uart: { port: hciPeerPort(id), baudRate } } }`).
 */
export function installNobleHciDriver(packageDir?: string): void {
  const uart = locateUartDriver(packageDir);
  wrapDriverModule(uart);
  // The Linux socket driver gets the same wrapper for its ATT guard (it never sees a peer port). Where the
  // platform has no native driver (it is loaded only on Linux), there is nothing to wrap.
  const native = path.join(path.dirname(uart), "native.js");
  if (process.platform === "linux" && fs.existsSync(native)) wrapDriverModule(native);
}

function wrapDriverModule(driverPath: string): void {
  const load = createRequire(driverPath);
  const current: unknown = load(driverPath);
  if (typeof current !== "function") throw layoutChanged(`${driverPath} does not export a driver class`);
  if ((current as { [INSTALLED_MARK]?: true })[INSTALLED_MARK]) return;
  const cached = load.cache[driverPath];
  if (!cached) throw layoutChanged(`${driverPath} is not in Node's module cache after loading it`);
  cached.exports = wrappedDriver(current as HciDriverClass);
}

function portOf(params: unknown): string | undefined {
  if (typeof params === "object" && params !== null) {
    const uart = (params as { uart?: unknown }).uart;
    if (typeof uart === "object" && uart !== null) {
      const port = (uart as { port?: unknown }).port;
      if (typeof port === "string" && port.length > 0) return port;
    }
  }
  // Same fallback as the original driver.
  return process.env.BLUETOOTH_HCI_SOCKET_UART_PORT;
}

function wrappedDriver(Original: HciDriverClass): HciDriverClass {
  class WrappedHciDriver extends EventEmitter implements HciDriver {
    private readonly ctorArgs: unknown[];
    /** The original driver (UART or native socket), for real adapters. */
    private inner?: HciDriver;
    /** The in-process peer, for a port named hciPeerPort(id). */
    private peer?: HciPeer;
    private observer?: SerialObserver;
    private scanSwitch?: ScanTypeSwitch;
    private up = false;
    /**
     * ATT PDUs that would crash noble's parser never reach it, and advertising reports it would drop are repaired,
     * from real radios and in-process peers alike. The server's answer to Exchange MTU reaches noble as the link's
     * agreed MTU, min(noble's request, the answer): noble 2.8 takes the answer as the MTU it reads and writes with.
     */
    private readonly guard = new AttGuard((reason) => process.emitWarning(`BLE: ${reason}`, { code: "BLE_MALFORMED_ATT" }), new AttMtuAgreement());
    private readonly deliver = (packet: Buffer): void => {
      const passive = this.scanSwitch?.sent === "passive";
      for (const p of this.guard.toHost(packet)) {
        for (const q of guardAdvertisingReport(p)) {
          if (passive) for (const r of withEmptyScanResponses(q)) this.emit("data", r);
          else this.emit("data", q);
        }
      }
    };
    private readonly onPacket = (packet: Buffer) => {
      if (this.up) this.deliver(packet);
    };
    private readonly onPeerClose = () => {
      if (!this.up) return;
      this.up = false;
      this.emit("state", false);
    };

    constructor(...args: unknown[]) {
      super();
      this.ctorArgs = args;
    }

    bindRaw(devId: unknown, params: unknown): void {
      this.bind(devId, params, "raw");
    }

    bindUser(devId: unknown, params: unknown, mode = "user"): void {
      this.bind(devId, params, mode);
    }

    private bind(devId: unknown, params: unknown, mode: string): void {
      this.scanSwitch = scanSwitchOf(params) ?? this.scanSwitch;
      const port = portOf(params);
      const id = port === undefined ? undefined : hciPeerIdOf(port);
      if (id !== undefined) {
        const peer = hciPeer(id);
        if (!peer) throw new Error(`no HCI peer is registered as "${id}"`);
        this.peer = peer;
        return;
      }
      this.observer = observerOf(params) ?? this.observer;
      const inner = this.inner ?? new Original(...this.ctorArgs);
      if (!this.inner) {
        this.inner = inner;
        inner.on("data", this.deliver);
        inner.on("state", (...args: unknown[]) => this.emit("state", ...args));
        inner.on("error", (error: unknown) => {
          const e = error instanceof Error ? error : new Error(String(error));
          this.observer?.error(e);
          // noble listens while it runs; an `error` emitted to nobody would be an uncaught exception.
          if (this.listenerCount("error") > 0) this.emit("error", e);
        });
      }
      if (mode === "raw") inner.bindRaw(devId, params);
      else inner.bindUser(devId, params, mode);
    }

    bindControl(): void {
      this.inner?.bindControl?.();
    }

    start(): void {
      if (this.inner) return this.inner.start();
      const peer = this.peer;
      if (!peer) throw new Error("HCI peer driver started before bindRaw/bindUser");
      if (this.up) return;
      if (peer.isClosed) return;
      this.up = true;
      peer.on("h4", this.onPacket);
      peer.on("close", this.onPeerClose);
    }

    stop(): void {
      if (this.inner) {
        const device = serialDeviceOf(this.inner);
        try {
          this.inner.stop();
        } finally {
          const released = device ? releaseSerialDevice(device) : Promise.resolve();
          this.observer?.stopped(released);
        }
        return;
      }
      this.up = false;
      this.peer?.off("h4", this.onPacket);
      this.peer?.off("close", this.onPeerClose);
    }

    setFilter(filter: Buffer): void {
      this.inner?.setFilter(filter);
    }

    write(packet: Buffer): void {
      const data = this.scanSwitch ? this.withScanType(packet, this.scanSwitch) : packet;
      this.guard.fromHost(data);
      if (this.inner) return this.inner.write(data);
      if (this.up) this.peer?.write(data);
    }

    /** A scan parameters command with the switch's type (and the type recorded); any other packet as it is. */
    private withScanType(packet: Buffer, scanSwitch: ScanTypeSwitch): Buffer {
      const out = withScanType(packet, scanSwitch.type);
      const type = scanTypeOf(out);
      if (type) scanSwitch.sent = type;
      return out;
    }

    isDevUp(): boolean {
      if (this.inner) return this.inner.isDevUp();
      return this.up;
    }

    reset(): void {
      if (this.inner) return this.inner.reset?.();
      if (this.up) this.peer?.write(buildCommand(OP.RESET));
    }

    getDeviceList(): unknown {
      return (this.inner ?? new Original(...this.ctorArgs)).getDeviceList?.();
    }
  }
  Object.defineProperty(WrappedHciDriver, INSTALLED_MARK, { value: true });
  return WrappedHciDriver;
}
