/**
 * A private system bus and a mock bluetoothd for the `bluez` transport's tests: Debian's `dbus-daemon` with a
 * configuration written to a temporary directory, and python3-dbusmock's `bluez5` template on it. GATT services,
 * characteristics and descriptors are added through dbusmock's generic interface (AddObject, AddMethod,
 * UpdateProperties, EmitSignal), as BlueZ would export them; every exchange is a real D-Bus message.
 * Missing programs fail the tests naming the Debian package that provides them.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as dbus from "dbus-next";

/** Debian's python3, where python3-dbusmock is installed (a python3 earlier on PATH may be another one). */
export const DEBIAN_PYTHON = "/usr/bin/python3";

export function requireDbusTools(): void {
  const daemon = spawnSync("dbus-daemon", ["--version"], { encoding: "utf8" });
  if (daemon.error || daemon.status !== 0) {
    throw new Error("dbus-daemon is not installed, so the BlueZ tests cannot run. Install Debian's package dbus: apt-get install -y dbus");
  }
  const mock = spawnSync(DEBIAN_PYTHON, ["-c", "import dbusmock"], { encoding: "utf8" });
  if (mock.error || mock.status !== 0) {
    throw new Error(`${DEBIAN_PYTHON} cannot import dbusmock, so the BlueZ tests cannot run. Install Debian's package python3-dbusmock: apt-get install -y python3-dbusmock`);
  }
}

const MOCK_IFACE = "org.freedesktop.DBus.Mock";
const BLUEZ_MOCK_IFACE = "org.bluez.Mock";
const DEVICE_IFACE = "org.bluez.Device1";
const SERVICE_IFACE = "org.bluez.GattService1";
const CHAR_IFACE = "org.bluez.GattCharacteristic1";
const DESC_IFACE = "org.bluez.GattDescriptor1";
const OBJECT_MANAGER = "org.freedesktop.DBus.ObjectManager";

const v = (signature: string, value: unknown): dbus.Variant => new dbus.Variant(signature, value);

/** The daemons of a test run that ends abruptly (a crash, an interrupted mocha) must not outlive it. */
const children = new Set<ChildProcess>();
process.once("exit", () => {
  for (const child of children) child.kill("SIGTERM");
});
function track(child: ChildProcess): ChildProcess {
  children.add(child);
  child.once("exit", () => children.delete(child));
  return child;
}

/**
 * dbusmock emits PropertiesChanged, InterfacesAdded and InterfacesRemoved but does not declare them in its
 * introspection data, where bluetoothd does; dbus-next (and so noble's binding) subscribes only to declared
 * signals. This method, added to the mock, declares them on one object, as bluetoothd's introspection has them.
 */
const DECLARE_SIGNALS = `
import dbus.service
def declare(obj, iface, name, signature, count):
    # dbus-python reads the arguments' names to check them against the signature
    if count == 2:
        def signal(self, first, second):
            pass
    else:
        def signal(self, first, second, third):
            pass
    signal.__name__ = name
    decorated = dbus.service.signal(iface, signature=signature)(signal)
    obj.methods.setdefault(iface, {})[name] = ('', '', '', decorated)
obj = objects[args[0]]
declare(obj, 'org.freedesktop.DBus.Properties', 'PropertiesChanged', 'sa{sv}as', 3)
if args[0] == '/':
    declare(obj, 'org.freedesktop.DBus.ObjectManager', 'InterfacesAdded', 'oa{sa{sv}}', 2)
    declare(obj, 'org.freedesktop.DBus.ObjectManager', 'InterfacesRemoved', 'oas', 2)
`;

function waitFor<T>(what: string, timeoutMs: number, attempt: () => Promise<T | null>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const tick = (): void => {
      attempt().then(
        (value) => {
          if (value !== null) resolve(value);
          else if (Date.now() > deadline) reject(new Error(`${what} within ${timeoutMs} ms`));
          else setTimeout(tick, 50);
        },
        (error: unknown) => reject(error instanceof Error ? error : new Error(String(error))),
      );
    };
    tick();
  });
}

/** A dbus-daemon of our own. `denyBluez`: its policy refuses messages to org.bluez (except the mock's control calls). */
export class PrivateBus {
  private constructor(
    readonly dir: string,
    readonly address: string,
    private readonly daemon: ChildProcess,
    private readonly control: dbus.MessageBus,
  ) {}

  static async start(options: { denyBluez?: boolean } = {}): Promise<PrivateBus> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ble-bluez-"));
    const socket = path.join(dir, "system_bus_socket");
    const deny = options.denyBluez
      ? `<deny send_destination="org.bluez"/>
    <allow send_destination="org.bluez" send_interface="${MOCK_IFACE}"/>
    <allow send_destination="org.bluez" send_interface="${BLUEZ_MOCK_IFACE}"/>
    <allow send_destination="org.bluez" send_interface="org.bluez.test.Setup"/>
    <allow send_destination="org.bluez" send_interface="org.bluez.test.Radio"/>`
      : "";
    fs.writeFileSync(
      path.join(dir, "bus.conf"),
      `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <listen>unix:path=${socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
    ${deny}
  </policy>
</busconfig>
`,
    );
    const daemon = track(spawn("dbus-daemon", ["--config-file", path.join(dir, "bus.conf"), "--nofork", "--nopidfile", "--print-address=1"], {
      stdio: ["ignore", "pipe", "pipe"],
    }));
    let stderr = "";
    daemon.stderr?.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    const address = await new Promise<string>((resolve, reject) => {
      let out = "";
      daemon.stdout?.on("data", (chunk: Buffer) => {
        out += chunk.toString();
        const line = out.split("\n")[0];
        if (out.includes("\n")) resolve(line.trim());
      });
      daemon.once("exit", (code) => reject(new Error(`dbus-daemon exited (${String(code)}): ${stderr}`)));
      daemon.once("error", reject);
    });
    const control = dbus.sessionBus({ busAddress: address });
    control.on("error", () => undefined);
    return new PrivateBus(dir, address, daemon, control);
  }

  /** A method call on the bus, as the test's own client. */
  async call(destination: string, objectPath: string, iface: string, member: string, signature = "", body: unknown[] = []): Promise<unknown[]> {
    const reply = await this.control.call(new dbus.Message({ destination, path: objectPath, interface: iface, member, signature, body }));
    return reply?.body ?? [];
  }

  async hasOwner(name: string): Promise<boolean> {
    const [owned] = await this.call("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "NameHasOwner", "s", [name]);
    return owned === true;
  }

  async stop(): Promise<void> {
    this.control.disconnect();
    if (this.daemon.exitCode === null) {
      const exited = new Promise((resolve) => this.daemon.once("exit", resolve));
      this.daemon.kill("SIGTERM");
      await exited;
    }
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

export interface GattCharacteristic {
  uuid: string;
  flags: string[];
  /** Python run by WriteValue (dbusmock code: `self`, `args`, `dbus`); default: nothing but the call log. */
  onWrite?: string;
}

export interface GattService {
  uuid: string;
  characteristics: GattCharacteristic[];
}

export interface MockDevice {
  adapter: string;
  address: string;
  name: string;
  services: GattService[];
}

/** python3-dbusmock's bluez5 template on a PrivateBus: bluetoothd as its clients see it. */
export class BluezMock {
  private constructor(
    private readonly bus: PrivateBus,
    private readonly process: ChildProcess,
  ) {}

  static async start(bus: PrivateBus): Promise<BluezMock> {
    const child = track(
      spawn(DEBIAN_PYTHON, ["-m", "dbusmock", "--system", "--template", "bluez5"], {
        env: { ...process.env, DBUS_SYSTEM_BUS_ADDRESS: bus.address },
        stdio: ["ignore", "ignore", "pipe"],
      }),
    );
    let stderr = "";
    child.stderr?.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<never>((_, reject) => child.once("exit", (code) => reject(new Error(`dbusmock exited (${String(code)}): ${stderr}`))));
    exited.catch(() => undefined);
    await Promise.race([waitFor("the mock bluetoothd did not take org.bluez", 10000, async () => ((await bus.hasOwner("org.bluez")) ? true : null)), exited]);
    const mock = new BluezMock(bus, child);
    await mock.mock("/", "AddMethod", "sssss", ["org.bluez.test.Setup", "DeclareSignals", "s", "", DECLARE_SIGNALS]);
    await mock.declareSignals("/");
    return mock;
  }

  private declareSignals(objectPath: string): Promise<unknown[]> {
    return this.bus.call("org.bluez", "/", "org.bluez.test.Setup", "DeclareSignals", "s", [objectPath]);
  }

  private mock(objectPath: string, member: string, signature: string, body: unknown[]): Promise<unknown[]> {
    return this.bus.call("org.bluez", objectPath, MOCK_IFACE, member, signature, body);
  }

  async addAdapter(name: string, powered = true): Promise<void> {
    await this.bus.call("org.bluez", "/", BLUEZ_MOCK_IFACE, "AddAdapter", "ss", [name, "node-red-test"]);
    await this.declareSignals(`/org/bluez/${name}`);
    if (!powered) await this.setPowered(name, false);
  }

  setPowered(adapter: string, powered: boolean): Promise<unknown[]> {
    return this.mock(`/org/bluez/${adapter}`, "UpdateProperties", "sa{sv}", ["org.bluez.Adapter1", { Powered: v("b", powered) }]);
  }

  /**
   * A device and its GATT database. Connect and Disconnect behave as bluetoothd's do for an LE device in range:
   * Connected and ServicesResolved follow; while the device is away (setAway), Connect fails as a page timeout does.
   */
  async addDevice(device: MockDevice): Promise<string> {
    const [objectPath] = (await this.bus.call("org.bluez", "/", BLUEZ_MOCK_IFACE, "AddDevice", "sss", [device.adapter, device.address, device.name])) as [string];
    await this.declareSignals(objectPath);
    const uuids = device.services.map((s) => s.uuid);
    await this.mock(objectPath, "UpdateProperties", "sa{sv}", [DEVICE_IFACE, { UUIDs: v("as", uuids) }]);
    const setConnected = (connected: boolean): string =>
      `self.UpdateProperties('${DEVICE_IFACE}', {'Connected': dbus.Boolean(${connected ? "True" : "False"}, variant_level=1), ` +
      `'ServicesResolved': dbus.Boolean(${connected ? "True" : "False"}, variant_level=1)})`;
    await this.mock(objectPath, "AddMethod", "sssss", [
      DEVICE_IFACE,
      "Connect",
      "",
      "",
      `if getattr(self, 'away', False):\n    raise dbus.exceptions.DBusException('Page Timeout', name='org.bluez.Error.Failed')\n${setConnected(true)}`,
    ]);
    await this.mock(objectPath, "AddMethod", "sssss", [DEVICE_IFACE, "Disconnect", "", "", setConnected(false)]);
    // The test's handle on the radio: the device goes out of range (the link drops) or comes back.
    await this.mock(objectPath, "AddMethod", "sssss", [
      "org.bluez.test.Radio",
      "SetAway",
      "b",
      "",
      `self.away = bool(args[0])\nif self.away and self.props['${DEVICE_IFACE}']['Connected']:\n    ${setConnected(false)}`,
    ]);
    let handle = 0x000a;
    for (const service of device.services) {
      const servicePath = `${objectPath}/service${handle.toString(16).padStart(4, "0")}`;
      handle++;
      await this.addObject(servicePath, SERVICE_IFACE, { UUID: v("s", service.uuid), Primary: v("b", true), Device: v("o", objectPath) }, []);
      for (const c of service.characteristics) {
        const charPath = `${servicePath}/char${handle.toString(16).padStart(4, "0")}`;
        handle += 2;
        await this.addObject(
          charPath,
          CHAR_IFACE,
          { UUID: v("s", c.uuid), Service: v("o", servicePath), Flags: v("as", c.flags), Value: v("ay", Buffer.alloc(0)), Notifying: v("b", false) },
          [
            ["ReadValue", "a{sv}", "ay", "ret = self.props['org.bluez.GattCharacteristic1']['Value']"],
            ["WriteValue", "aya{sv}", "", c.onWrite ?? ""],
            ["StartNotify", "", "", `self.UpdateProperties('${CHAR_IFACE}', {'Notifying': dbus.Boolean(True, variant_level=1)})`],
            ["StopNotify", "", "", `self.UpdateProperties('${CHAR_IFACE}', {'Notifying': dbus.Boolean(False, variant_level=1)})`],
          ],
        );
        if (c.flags.includes("notify") || c.flags.includes("indicate")) {
          const descPath = `${charPath}/desc${handle.toString(16).padStart(4, "0")}`;
          handle++;
          await this.addObject(descPath, DESC_IFACE, { UUID: v("s", "00002902-0000-1000-8000-00805f9b34fb"), Characteristic: v("o", charPath) }, [
            ["ReadValue", "a{sv}", "ay", "ret = dbus.ByteArray(b'\\x00\\x00')"],
            ["WriteValue", "aya{sv}", "", ""],
          ]);
        }
      }
    }
    return objectPath;
  }

  /** An object as bluetoothd exports it: on the bus, and announced by the object manager's InterfacesAdded. */
  private async addObject(objectPath: string, iface: string, props: Record<string, dbus.Variant>, methods: [string, string, string, string][]): Promise<void> {
    await this.mock("/", "AddObject", "ssa{sv}a(ssss)", [objectPath, iface, props, methods]);
    await this.declareSignals(objectPath);
    await this.mock("/", "EmitSignal", "sssav", [OBJECT_MANAGER, "InterfacesAdded", "oa{sa{sv}}", [v("o", objectPath), v("a{sa{sv}}", { [iface]: props })]]);
  }

  /** The path of a characteristic by its UUID, under a device. */
  async characteristicPath(deviceObject: string, uuid: string): Promise<string> {
    const [managed] = (await this.bus.call("org.bluez", "/", OBJECT_MANAGER, "GetManagedObjects")) as [Record<string, Record<string, Record<string, dbus.Variant>>>];
    for (const [p, ifaces] of Object.entries(managed)) {
      if (p.startsWith(`${deviceObject}/`) && ifaces[CHAR_IFACE]?.UUID?.value === uuid) return p;
    }
    throw new Error(`no characteristic ${uuid} under ${deviceObject}`);
  }

  /** A notification or indication: bluetoothd sets Value, and PropertiesChanged carries it to the subscriber. */
  async pushValue(charPath: string, value: Buffer): Promise<void> {
    await this.mock(charPath, "UpdateProperties", "sa{sv}", [CHAR_IFACE, { Value: v("ay", value) }]);
  }

  /** The arguments of every call of `method` on the object, oldest first (dbusmock's call log). */
  async calls(objectPath: string, method: string): Promise<unknown[][]> {
    const [calls] = (await this.mock(objectPath, "GetMethodCalls", "s", [method])) as [[bigint, unknown[]][]];
    return calls.map(([, args]) => args.map((a) => (a instanceof dbus.Variant ? a.value : a)));
  }

  async isNotifying(charPath: string): Promise<boolean> {
    const [value] = (await this.bus.call("org.bluez", charPath, "org.freedesktop.DBus.Properties", "Get", "ss", [CHAR_IFACE, "Notifying"])) as [dbus.Variant];
    return value.value === true;
  }

  setAway(deviceObject: string, away: boolean): Promise<unknown[]> {
    return this.bus.call("org.bluez", deviceObject, "org.bluez.test.Radio", "SetAway", "b", [away]);
  }

  /** The device leaves bluetoothd's cache, as it does some time after an unpaired device stops advertising. */
  async removeDevice(adapter: string, deviceObject: string): Promise<void> {
    const [managed] = (await this.bus.call("org.bluez", "/", OBJECT_MANAGER, "GetManagedObjects")) as [Record<string, Record<string, unknown>>];
    const children = Object.entries(managed)
      .filter(([p]) => p.startsWith(`${deviceObject}/`))
      .sort(([a], [b]) => b.length - a.length);
    for (const [p, ifaces] of children) {
      await this.mock("/", "RemoveObject", "s", [p]);
      await this.mock("/", "EmitSignal", "sssav", [OBJECT_MANAGER, "InterfacesRemoved", "oas", [v("o", p), v("as", Object.keys(ifaces).filter((i) => i.startsWith("org.bluez.")))]]);
    }
    await this.bus.call("org.bluez", `/org/bluez/${adapter}`, "org.bluez.Adapter1", "RemoveDevice", "o", [deviceObject]);
  }

  /** bluetoothd stops (its name leaves the bus). */
  async stop(): Promise<void> {
    if (this.process.exitCode !== null || this.process.signalCode !== null) return;
    const exited = new Promise((resolve) => this.process.once("exit", resolve));
    this.process.kill("SIGTERM");
    await exited;
  }
}
