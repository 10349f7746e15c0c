/**
 * The link's ATT MTU as noble itself uses it, through the pool, noble's unmodified HCI stack and the simulator:
 * noble asks for 256, the peripherals answer Exchange MTU with their own maximum (517) as real servers do, and the
 * link runs at 256. noble 2.8 alone adopts the answer (517) and then cuts long reads short and sends Write Requests
 * too large for the link; the HCI driver wrapper gives it the agreed MTU instead.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { BleAdapter, DEFAULT_POLICY, type DeviceSession, type Lease } from "../../src/ble/pool";
import { registerTransport } from "../../src/ble/transports";
import type { GattPeripheral } from "../../src/sim/peripheral";
import { HIOKI_COMMAND_CHARACTERISTIC, HIOKI_COMMAND_SERVICE } from "../../src/protocol/hioki";
import type { HiokiDt4261Peripheral } from "../../src/sim/peripherals/hioki-dt4261";
import { openSimulator } from "../../src/sim/transport";

// The pool alone, without a ble-config node: the simulator transport is registered as that node registers it.
registerTransport("simulator", openSimulator);

const HR = "d8:75:ba:00:00:31";
const METER = "a4:9e:69:00:00:31";

/** Opens a simulator adapter on `scenario` and leases `address`; resolves with the session once connected. */
class Link {
  readonly adapter: BleAdapter;
  private lease: Lease | null = null;
  private readonly dir = fs.mkdtempSync(path.join(os.tmpdir(), "ble-mtu-"));

  constructor(scenario: unknown) {
    const file = path.join(this.dir, "scenario.json");
    fs.writeFileSync(file, JSON.stringify(scenario));
    this.adapter = new BleAdapter({ transport: "simulator", scenario: file, timeScale: 10 }, { ...DEFAULT_POLICY, gattTimeout: 3000 });
    this.adapter.ref();
  }

  connect(address: string): Promise<DeviceSession> {
    return new Promise((resolve, reject) => {
      this.lease = this.adapter.lease({
        selector: { address },
        onState: (state) => {
          if (state.state === "error") reject(new Error(JSON.stringify(state.problem)));
        },
        onConnected: (session) => {
          resolve(session);
          return Promise.resolve();
        },
      });
    });
  }

  peripheral<T extends GattPeripheral>(address: string): T {
    const p = this.adapter.simulation?.controller.peripheral(address);
    assert.ok(p, `the simulation has ${address}`);
    return p as unknown as T;
  }

  async close(): Promise<void> {
    await this.lease?.release();
    await this.adapter.unref();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

describe("sim: the link's ATT MTU as noble uses it (noble asks 256, the server answers 517)", function () {
  this.timeout(20000);

  let link: Link | null = null;

  afterEach(async () => {
    await link?.close();
    link = null;
  });

  it("a 400-byte value (more than MTU − 3) is read whole, with Read Blob after a full Read Response", async () => {
    const model = Array.from({ length: 40 }, (_, i) => `model-${String(i).padStart(4, "0")}`).join("");
    assert.equal(model.length, 400);
    link = new Link({ peripherals: [{ kind: "heart-rate", address: HR, deviceInformation: { model } }] });
    const session = await link.connect(HR);
    const hr = link.peripheral<GattPeripheral>(HR);
    assert.equal(hr.gatt.maxMtu, 517, "the server's own MTU, answered to Exchange MTU");
    assert.equal(hr.gatt.mtu, 256, "the link runs at min(256, 517)");
    const value = await session.read("180a", "2a24");
    assert.equal(value.toString("utf8"), model);
    assert.equal(session.mtu, 256);
    assert.deepEqual(hr.violations, []);
  });

  it("a 301-byte Write Request value reaches the peripheral whole (Prepare/Execute Write), no PDU over the link's MTU", async () => {
    // 50 queries joined by ';' and CR LF: one command line of 301 bytes.
    const line = Array.from({ length: 50 }, () => "FETC?").join(";");
    const bytes = Buffer.from(`${line}\r\n`, "latin1");
    assert.equal(bytes.length, 301);
    link = new Link({ peripherals: [{ kind: "hioki-dt4261", address: METER, values: [1] }] });
    const session = await link.connect(METER);
    const meter = link.peripheral<HiokiDt4261Peripheral>(METER);
    assert.equal(meter.gatt.mtu, 256);
    const replies: string[] = [];
    await session.subscribe(HIOKI_COMMAND_SERVICE, HIOKI_COMMAND_CHARACTERISTIC, (value) => replies.push(value.toString("latin1")));
    await session.write(HIOKI_COMMAND_SERVICE, HIOKI_COMMAND_CHARACTERISTIC, bytes, false);
    assert.deepEqual(meter.commandLog, [line], "the meter got the whole line, once");
    assert.deepEqual(meter.writeTypes, ["write"], "as one (long) write with response");
    assert.deepEqual(meter.violations, []);
  });
});
