/**
 * The `bluez` transport: noble's BlueZ D-Bus binding (@stoprocent/noble/lib/dbus, which talks to bluetoothd
 * with the `dbus-next` package), with what it lacks for a long-running server added around it:
 * - before the binding starts, a check of the system bus that names what is wrong (no D-Bus socket, bluetoothd
 *   not running, not authorised by the D-Bus policy, no such adapter) — the binding itself only says "init
 *   failed", and silently takes the first adapter when the named one is missing;
 * - a listener for the bus connection's errors, which the binding does not listen to (an unhandled 'error'
 *   event would end the Node-RED process);
 * - bluetoothd leaving the bus while the adapter is in use is reported as the adapter becoming unusable.
 * It extends the binding class rather than changing it: noble's own code does every D-Bus exchange.
 */
import type { EventEmitter } from "node:events";
import type { MessageBus } from "dbus-next";
import type { Noble } from "@stoprocent/noble";
import { BleProblemError, type BleProblem } from "./problem";
import { withTimeout } from "./timeout";

export const DEFAULT_SYSTEM_BUS = "unix:path=/var/run/dbus/system_bus_socket";
/** How long the check of the system bus may take before the bus counts as not answering. */
const CHECK_TIMEOUT_MS = 5000;
const BLUEZ = "org.bluez";
const ADAPTER_IFACE = "org.bluez.Adapter1";

/** What this module uses of noble's DbusBindings (lib/dbus/bindings.js, @stoprocent/noble 2.8). */
interface DbusBindings extends EventEmitter {
  _bus: MessageBus | null;
  _setState(state: string): void;
  start(): void;
  stop(): void;
}
type DbusBindingsClass = new (options: { adapterId: string }) => DbusBindings;
type NobleClass = new (bindings: DbusBindings) => Noble;

export function systemBusAddress(): string {
  return process.env.DBUS_SYSTEM_BUS_ADDRESS || DEFAULT_SYSTEM_BUS;
}

/** A valid BlueZ adapter name: one element of a D-Bus object path, as `hci0`. */
export function isAdapterName(name: string): boolean {
  return /^[A-Za-z0-9_]{1,32}$/.test(name);
}

function errorCode(error: unknown): string {
  return typeof error === "object" && error !== null && typeof (error as { code?: unknown }).code === "string" ? (error as { code: string }).code : "";
}

function dbusErrorType(error: unknown): string {
  return typeof error === "object" && error !== null && typeof (error as { type?: unknown }).type === "string" ? (error as { type: string }).type : "";
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * An error's words for a problem's `error` parameter: the system's error code or D-Bus's error name when it has one,
 * else its message with the adapter name and the bus address replaced by the settings they come from (either may
 * come from an environment variable, and the catalog's texts name them already).
 */
function errorWords(error: unknown, adapter: string): string {
  const code = errorCode(error);
  if (code !== "") return code;
  const type = dbusErrorType(error);
  if (type !== "") return type;
  return withoutSettings(messageOf(error), adapter);
}

function withoutSettings(message: string, adapter: string): string {
  const address = systemBusAddress();
  // The address as a whole, and each value in it ("unix:path=/run/dbus/x,guid=…": /run/dbus/x, …), longest first.
  const values = [address, ...address.split(/[;,]/).map((pair) => pair.slice(pair.indexOf("=") + 1))].filter((v) => v.length > 0);
  let out = message;
  for (const value of values.sort((a, b) => b.length - a.length)) out = out.split(value).join("DBUS_SYSTEM_BUS_ADDRESS");
  if (adapter === "") return out;
  const name = adapter.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  return out.replace(new RegExp(`(?<![A-Za-z0-9_])${name}(?![A-Za-z0-9_])`, "g"), "bluezAdapter");
}

/** What a failure to reach or use the bus means for the user. */
function problemOfBusError(error: unknown, adapter: string): BleProblem {
  // A call the bus did not answer in time (withTimeout): its own problem, on this adapter.
  if (error instanceof BleProblemError) return { key: error.problem.key, params: { ...error.problem.params, adapter } };
  const address = systemBusAddress();
  const code = errorCode(error);
  if (code === "ENOENT" || code === "ECONNREFUSED" || code === "ENOTDIR") return { key: "bluez-no-dbus", params: { address } };
  if (code === "EACCES" || code === "EPERM") return { key: "bluez-not-authorised", params: { adapter, detail: `no permission to open the system bus (${code})` } };
  const type = dbusErrorType(error);
  if (type === "org.freedesktop.DBus.Error.AccessDenied") return { key: "bluez-not-authorised", params: { adapter, detail: "the D-Bus policy refuses messages to org.bluez" } };
  if (type === "org.freedesktop.DBus.Error.ServiceUnknown" || type === "org.freedesktop.DBus.Error.NameHasNoOwner") return { key: "bluez-no-bluetoothd", params: {} };
  return { key: "bluez-failed", params: { adapter, error: errorWords(error, adapter) } };
}

/**
 * Looks at the system bus the way the binding will use it and says what would stop it, or null when the adapter
 * is there (powered or not: the binding reports the power state itself, and follows it). Bounded in time; opens
 * and closes a connection of its own.
 */
export async function checkBluez(adapter: string): Promise<BleProblem | null> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const dbus = require("dbus-next") as typeof import("dbus-next");
  let bus: MessageBus;
  try {
    bus = dbus.systemBus();
  } catch {
    // dbus-next refuses an address it cannot parse before it opens anything (its words quote the address).
    return { key: "bluez-failed", params: { adapter, error: "DBUS_SYSTEM_BUS_ADDRESS is not a D-Bus address" } };
  }
  let failed: (error: unknown) => void = () => undefined;
  const broken = new Promise<never>((_, reject) => {
    failed = reject;
  });
  broken.catch(() => undefined);
  bus.on("error", (error: unknown) => failed(error));
  const call = (destination: string, path: string, iface: string, member: string, signature = "", body: unknown[] = []): Promise<unknown[]> =>
    withTimeout(
      Promise.race([bus.call(new dbus.Message({ destination, path, interface: iface, member, signature, body })), broken]),
      CHECK_TIMEOUT_MS,
      { key: "bluez-timeout", params: { call: `${iface}.${member}` } },
    ).then((reply) => reply?.body ?? []);
  try {
    const [owned] = await call("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "NameHasOwner", "s", [BLUEZ]);
    if (owned !== true) return { key: "bluez-no-bluetoothd", params: {} };
    const [managed] = await call(BLUEZ, "/", "org.freedesktop.DBus.ObjectManager", "GetManagedObjects");
    const adapters = Object.entries((managed ?? {}) as Record<string, Record<string, unknown>>)
      .filter(([, ifaces]) => ADAPTER_IFACE in ifaces)
      .map(([path]) => path.slice(path.lastIndexOf("/") + 1))
      .sort();
    if (!adapters.includes(adapter)) return { key: "bluez-no-adapter", params: { adapter, available: adapters.join(", ") || "none" } };
    return null;
  } catch (error) {
    return problemOfBusError(error, adapter);
  } finally {
    try {
      bus.disconnect();
    } catch {
      // a connection that never opened has nothing to close
    }
  }
}

let bindingsClass: DbusBindingsClass | null = null;

/** noble's D-Bus binding class, extended with the check before start and the bus watch (see the top of this file). */
function checkedBindingsClass(): DbusBindingsClass {
  if (bindingsClass) return bindingsClass;
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const Base = require("@stoprocent/noble/lib/dbus/bindings") as DbusBindingsClass;
  class CheckedDbusBindings extends Base {
    private stopped = false;
    problem: BleProblem | null = null;
    onProblem: () => void = () => undefined;

    constructor(private readonly options: { adapterId: string }) {
      super(options);
    }

    override start(): void {
      checkBluez(this.options.adapterId).then(
        (problem) => {
          if (this.stopped) return;
          if (problem) {
            this.fail(problem);
            return;
          }
          super.start();
          this.watchBus();
        },
        (error: unknown) => this.fail({ key: "bluez-failed", params: { adapter: this.options.adapterId, error: errorWords(error, this.options.adapterId) } }),
      );
    }

    override stop(): void {
      this.stopped = true;
      super.stop();
    }

    private fail(problem: BleProblem): void {
      if (this.stopped) return;
      this.problem = problem;
      this.onProblem();
      this._setState("unsupported");
    }

    private watchBus(): void {
      const bus = this._bus;
      if (!bus) return;
      bus.on("error", (error: unknown) => this.fail(problemOfBusError(error, this.options.adapterId)));
      // The binding's own start-up failures (a race with bluetoothd going away) are explained by a fresh check.
      this.on("stateChange", (state: string) => {
        if (state !== "unsupported" || this.problem || this.stopped) return;
        void checkBluez(this.options.adapterId).then((problem) => {
          if (this.stopped) return;
          this.problem = problem ?? { key: "bluez-failed", params: { adapter: this.options.adapterId, error: "the BlueZ binding could not start" } };
          this.onProblem();
        });
      });
      bus
        .getProxyObject("org.freedesktop.DBus", "/org/freedesktop/DBus")
        .then((proxy) => {
          if (this.stopped) return;
          proxy.getInterface("org.freedesktop.DBus").on("NameOwnerChanged", (name: string, _old: string, owner: string) => {
            if (name === BLUEZ && !owner) this.fail({ key: "bluez-no-bluetoothd", params: {} });
          });
        })
        .catch(() => undefined);
    }
  }
  bindingsClass = CheckedDbusBindings;
  return bindingsClass;
}

export interface BluezNoble {
  noble: Noble;
  /** What the pre-start check or the bus watch found wrong, or null. */
  problem(): BleProblem | null;
}

/** An un-started noble on BlueZ adapter `adapter`; `onProblem` is called when problem() changes. */
export function bluezNoble(adapter: string, onProblem: () => void): BluezNoble {
  const Bindings = checkedBindingsClass();
  const bindings = new Bindings({ adapterId: adapter }) as DbusBindings & { problem: BleProblem | null; onProblem: () => void };
  bindings.onProblem = onProblem;
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const NobleCtor = require("@stoprocent/noble/lib/noble") as NobleClass;
  return { noble: new NobleCtor(bindings), problem: () => bindings.problem };
}
