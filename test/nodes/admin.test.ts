import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import bleConfigNode = require("../../src/ble-config");
import heartRateNode = require("../../src/heart-rate");
import { EXPLORE_PATH, MAX_CONCURRENT_SCANS, SCAN_PATH, SERIAL_PORTS_PATH, listSerialPorts, registerAdminEndpoints, type ScanResult } from "../../src/red/admin";
import { openAdapterCount } from "../../src/ble/registry";
import { watchEscapes } from "../support/escapes";
import { collectMessages, currentStatus, helper, isConnected, loadFlow, translate, waitForStatus, type FlowNode, useNodeRed } from "../support/red";

const HR = { name: "44278-33", address: "d8:75:ba:00:00:01", addressType: "random", services: ["180d"] };
const METER = { name: "Z3210V2.10:DT4261#000000001", address: "a4:9e:69:00:00:01", addressType: "public", services: ["1812"] };
const NUS = { name: "mpy-nus", address: "e3:c3:5c:00:00:01", addressType: "random", services: ["6e400001b5a3f393e0a9e50e24dcca9e"] };
const LOADER = { name: "mpy-loader", address: "e3:c3:5c:00:00:02", addressType: "random", services: ["6e400001b5a3f393e0a9e50e24dcca9e"] };
const ENV = { name: "Env Sensor", address: "c0:ff:ee:00:00:01", addressType: "random", services: ["181a", "180f"] };
const CONSOLE = { name: "NUS Console", address: "c0:ff:ee:00:00:02", addressType: "random", services: ["6e400001b5a3f393e0a9e50e24dcca9e"] };
/** The built-in scenario's advertisers (beacons and BTHome sensors that never connect). */
const ADVERTISERS = [
  { name: "demo-ibeacon", address: "c0:1b:ea:c0:00:01", addressType: "random", services: [] },
  { name: "demo-raw", address: "c0:ad:00:00:00:01", addressType: "random", services: [] },
  { name: "demo-bthome", address: "c0:b7:40:00:00:01", addressType: "random", services: [] },
  { name: "demo-bthome-enc", address: "c0:b7:40:00:00:02", addressType: "random", services: [] },
  { name: "demo-eddystone", address: "c0:ed:d1:00:00:01", addressType: "random", services: ["feaa"] },
];

const tab: FlowNode = { id: "flow", type: "tab", label: "test" };
const simConfig: FlowNode = { id: "cfg", type: "ble-config", transport: "simulator", simScenario: "" };

/** What a scan reports apart from the RSSI, which the simulator varies. */
function withoutRssi(results: ScanResult[]): Omit<ScanResult, "rssi">[] {
  return results.map(({ rssi, ...rest }) => {
    assert.equal(typeof rssi, "number");
    return rest;
  });
}

function byAddress(results: ScanResult[]): Omit<ScanResult, "rssi">[] {
  return withoutRssi(results).sort((a, b) => a.address.localeCompare(b.address));
}

/**
 * An error answer as the editor shows it: the body is a ble-config catalog key with its parameters, never a
 * sentence, and the editor words it with the catalog (resources/ble-instruments-editor.js errorText): this text.
 */
function errorText(body: unknown): string {
  const { error } = body as { error: { key: unknown; params: unknown } };
  assert.equal(typeof error.key, "string", `an error key: ${JSON.stringify(body)}`);
  assert.ok(typeof error.params === "object" && error.params !== null, `error parameters: ${JSON.stringify(body)}`);
  return translate(`ble-config.${String(error.key)}`, error.params as Record<string, string | number>);
}

async function scan(query: Record<string, string>): Promise<{ status: number; body: unknown; ms: number }> {
  const started = Date.now();
  const res = await helper.request().get(SCAN_PATH).query(query);
  return { status: res.status, body: res.body as unknown, ms: Date.now() - started };
}

describe("admin endpoints (scan, serial ports)", function () {
  this.timeout(30000);

  useNodeRed("every adapter is closed, the temporary ones of scans included");

  it("lists the built-in scenario's devices on a deployed simulator config node, filtered by service or name prefix", async () => {
    await loadFlow([bleConfigNode], [simConfig, tab]);
    const all = await scan({ config: "cfg", seconds: "1" });
    assert.equal(all.status, 200);
    assert.deepEqual(byAddress(all.body as ScanResult[]), [METER, ...ADVERTISERS, ENV, CONSOLE, HR, NUS, LOADER]);

    const heartRate = await scan({ config: "cfg", seconds: "1", service: "180d" });
    assert.deepEqual(withoutRssi(heartRate.body as ScanResult[]), [HR]);

    const nus = await scan({ config: "cfg", seconds: "1", service: "6e400001-b5a3-f393-e0a9-e50e24dcca9e" });
    assert.deepEqual(byAddress(nus.body as ScanResult[]), [CONSOLE, NUS, LOADER]);

    // The HIOKI node's filter: a Z3210 by name, or anything advertising HID.
    const meter = await scan({ config: "cfg", seconds: "1", namePrefix: "Z3210", service: "1812" });
    assert.deepEqual(withoutRssi(meter.body as ScanResult[]), [METER]);
    const byName = await scan({ config: "cfg", seconds: "1", namePrefix: "Z3210" });
    assert.deepEqual(withoutRssi(byName.body as ScanResult[]), [METER]);
  });

  it("answers 404 with a JSON error for a config id that is not a deployed ble-config node", async () => {
    await loadFlow([bleConfigNode], [simConfig, tab]);
    for (const config of ["no-such-node", "flow"]) {
      const res = await scan({ config, seconds: "1" });
      assert.equal(res.status, 404);
      assert.match(errorText(res.body), /no deployed ble-config node/);
    }
    const missing = await scan({ seconds: "1" });
    assert.equal(missing.status, 400);
    assert.match(errorText(missing.body), /config/);
  });

  it("scans for 4 s by default and refuses durations outside 1 to 15 s", async () => {
    await loadFlow([bleConfigNode], [simConfig, tab]);
    for (const seconds of ["0", "0.5", "16", "600", "-1", "soon", "Infinity"]) {
      const res = await scan({ config: "cfg", seconds });
      assert.equal(res.status, 400, `seconds=${seconds}`);
      assert.match(errorText(res.body), /seconds must be a number from 1 to 15/);
    }
    const one = await scan({ config: "cfg", seconds: "1" });
    // A scan lasts at least what was asked (a timer never fires early); how much longer is load, not behaviour.
    assert.ok(one.ms >= 1000, `1 s scan took ${one.ms} ms`);
    const byDefault = await scan({ config: "cfg" });
    assert.equal(byDefault.status, 200);
    assert.ok(byDefault.ms >= 4000, `default scan took ${byDefault.ms} ms`);
  });

  it("scans on a temporary adapter for a config node that is not deployed, and closes it afterwards", async () => {
    await loadFlow([bleConfigNode], [tab]);
    const res = await scan({ config: "new-node", transport: "simulator", simScenario: "", seconds: "1", service: "180d" });
    assert.equal(res.status, 200);
    assert.deepEqual(withoutRssi(res.body as ScanResult[]), [HR]);
    assert.equal(openAdapterCount(), 0, "the temporary adapter is closed once the scan has answered");

    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ble-admin-"));
    const scenario = path.join(dir, "one.json");
    fs.writeFileSync(scenario, JSON.stringify({ peripherals: [{ kind: "heart-rate", address: "d8:75:ba:00:00:42", name: "strap", bpm: [60] }] }));
    const custom = await scan({ transport: "simulator", simScenario: scenario, seconds: "1" });
    assert.deepEqual(withoutRssi(custom.body as ScanResult[]), [{ name: "strap", address: "d8:75:ba:00:00:42", addressType: "random", services: ["180d"] }]);

    // "${NAME}" in a setting means the environment variable, as it will once the node is deployed.
    process.env.BLE_ADMIN_TEST_SCENARIO = scenario;
    try {
      const viaEnv = await scan({ transport: "simulator", simScenario: "${BLE_ADMIN_TEST_SCENARIO}", seconds: "1" });
      assert.equal(viaEnv.status, 200);
      assert.deepEqual(withoutRssi(viaEnv.body as ScanResult[]), [{ name: "strap", address: "d8:75:ba:00:00:42", addressType: "random", services: ["180d"] }]);
    } finally {
      delete process.env.BLE_ADMIN_TEST_SCENARIO;
    }
    const unset = await scan({ transport: "simulator", simScenario: "${BLE_ADMIN_TEST_UNSET}", seconds: "1" });
    assert.equal(unset.status, 503, "an unset variable stays as written: no such scenario file");
    assert.match(errorText(unset.body), /^simScenario: cannot be read \(ENOENT/);
    assert.equal(openAdapterCount(), 0);
  });

  it("answers invalid transport settings with 400 and an unusable adapter with 503, in JSON", async () => {
    await loadFlow([bleConfigNode], [tab]);
    const invalid = await scan({ transport: "carrier-pigeon", seconds: "1" });
    assert.equal(invalid.status, 400);
    assert.match(errorText(invalid.body), /transport must be/);
    const noPort = await scan({ transport: "uart", uartPort: "", seconds: "1" });
    assert.equal(noPort.status, 400);
    assert.match(errorText(noPort.body), /uartPort is required/);
    const badScenario = await scan({ transport: "simulator", simScenario: "/nonexistent/scenario.json", seconds: "1" });
    assert.equal(badScenario.status, 503);
    assert.match(errorText(badScenario.body), /scenario/i);
    const badService = await scan({ transport: "simulator", service: "heart", seconds: "1" });
    assert.equal(badService.status, 400);
  });

  it("answers a uart scan on a path that is no serial port with 503 and the reason, and the process survives", async () => {
    await loadFlow([bleConfigNode], [tab]);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ble-admin-uart-"));
    // serialport emits a failed open's error from a promise handler: unheard, it is an unhandled rejection first.
    const escapes = watchEscapes();
    try {
      const cases: [string, RegExp][] = [
        [path.join(dir, "ttyUSB0"), /no such file/],
        ["/dev/null", /not a serial device/],
        [dir, /not a serial device/],
      ];
      const answers = await Promise.all(cases.map(([uartPort]) => scan({ transport: "uart", uartPort, seconds: "1" })));
      answers.forEach((res, i) => {
        assert.equal(res.status, 503, cases[i][0]);
        assert.match(errorText(res.body), cases[i][1]);
      });
      assert.equal(openAdapterCount(), 0, "every temporary adapter is closed, its serial port released");
      // A deployed adapter that a scan shares, then the scan's own, on the same missing path at once.
      const again = await Promise.all([1, 2].map(() => scan({ transport: "uart", uartPort: cases[0][0], seconds: "1" })));
      assert.deepEqual(
        again.map((a) => a.status),
        [503, 503],
      );
      assert.deepEqual(escapes.seen, [], "no error escaped from the serial port or its driver");
    } finally {
      escapes.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("refuses a scenario that is not a regular file (FIFO, /dev/zero, directory) at once, naming simScenario", async () => {
    await loadFlow([bleConfigNode], [tab]);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ble-admin-fifo-"));
    const fifo = path.join(dir, "scenario.fifo");
    execFileSync("mkfifo", [fifo]);
    // Would hand a valid scenario to whoever opens the FIFO for reading (and without it, a reader would wait forever).
    const writer = spawn("sh", ["-c", 'printf %s "$0" > "$1"', JSON.stringify({ peripherals: [] }), fifo], { stdio: "ignore" });
    try {
      for (const [simScenario, kind] of [
        [fifo, /a FIFO/],
        ["/dev/zero", /a character device/],
        [dir, /a directory/],
      ] as const) {
        const res = await scan({ transport: "simulator", simScenario, seconds: "1" });
        assert.equal(res.status, 503, simScenario);
        const error = errorText(res.body);
        assert.match(error, /simScenario/);
        assert.match(error, kind);
        assert.match(error, /not a regular file/);
      }
      // Meanwhile the endpoint and everything else kept answering.
      const ports = await helper.request().get(SERIAL_PORTS_PATH);
      assert.equal(ports.status, 200);
    } finally {
      writer.kill("SIGKILL");
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("never echoes a file's content or an environment variable's value in its errors", async () => {
    await loadFlow([bleConfigNode], [tab]);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ble-admin-leak-"));
    const shadow = path.join(dir, "shadow");
    fs.writeFileSync(shadow, "root:$6$s3cr3tHash:19000:0:99999:7:::\n");
    const secretDir = path.join(dir, "s3cr3t-dir");
    process.env.BLE_ADMIN_TEST_SECRET_TEXT = "s3cr3t-value";
    process.env.BLE_ADMIN_TEST_SECRET_PATH = path.join(secretDir, "ttyUSB0");
    process.env.BLE_ADMIN_TEST_SECRET_FILE = path.join(secretDir, "scenario.json");
    try {
      const requests: [Record<string, string>, number][] = [
        [{ transport: "simulator", simScenario: shadow }, 503],
        [{ transport: "hci", hciDevice: "${BLE_ADMIN_TEST_SECRET_TEXT}" }, 400],
        [{ transport: "uart", uartPort: "/dev/ttyUSB0", uartBaudRate: "${BLE_ADMIN_TEST_SECRET_TEXT}" }, 400],
        [{ transport: "uart", uartPort: "${BLE_ADMIN_TEST_SECRET_PATH}" }, 503],
        [{ transport: "simulator", simScenario: "${BLE_ADMIN_TEST_SECRET_FILE}" }, 503],
      ];
      for (const [query, status] of requests) {
        const res = await scan({ ...query, seconds: "1" });
        assert.equal(res.status, status, JSON.stringify(query));
        const error = errorText(res.body);
        // Neither the worded text nor the key's parameters (the whole body) carry the data.
        assert.ok(!/s3cr3t|root:/.test(error + JSON.stringify(res.body)), `${JSON.stringify(query)} answered without the data: ${error}`);
      }
      // The error still says which setting is wrong.
      const named = await scan({ transport: "uart", uartPort: "${BLE_ADMIN_TEST_SECRET_PATH}", seconds: "1" });
      assert.match(errorText(named.body), /uartPort.*no such file/);
    } finally {
      delete process.env.BLE_ADMIN_TEST_SECRET_TEXT;
      delete process.env.BLE_ADMIN_TEST_SECRET_PATH;
      delete process.env.BLE_ADMIN_TEST_SECRET_FILE;
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("never quotes a scenario file's values or keys, whatever field they are in, and still names the field", async () => {
    await loadFlow([bleConfigNode], [tab]);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ble-admin-json-"));
    const secret = "s3cr3t-token-0123456789abcdef";
    const hr = { kind: "heart-rate", address: "d8:75:ba:00:00:01" };
    const files: [unknown, RegExp][] = [
      [{ peripherals: [{ kind: "heart-rate", address: secret.slice(0, 17) }] }, /peripherals\[0\]\.address: must look like/],
      [{ peripherals: [{ ...hr, bpm: [60, secret] }] }, /peripherals\[0\]\.bpm\[1\]: must be a whole number/],
      [{ peripherals: [{ ...hr, packets: [secret] }] }, /peripherals\[0\]\.packets\[0\]: must be hex digits/],
      [{ peripherals: [{ ...hr, [secret]: 1 }] }, /peripherals\[0\]\.\(key 3\): unknown option/],
      [{ [secret]: [], peripherals: [] }, /\(key 1\): unknown key/],
      [{ peripherals: [{ kind: secret, address: "d8:75:ba:00:00:01" }] }, /peripherals\[0\]\.kind: unknown peripheral kind/],
      [{ capture: `${secret}/`, peripherals: [] }, /capture: must name a file, not a directory/],
      [{ timeScale: 123456789, peripherals: [] }, /timeScale: must be between/],
    ];
    try {
      for (const [content, field] of files) {
        const file = path.join(dir, "scenario.json");
        fs.writeFileSync(file, JSON.stringify(content));
        const res = await scan({ transport: "simulator", simScenario: file, seconds: "1" });
        assert.equal(res.status, 503, JSON.stringify(content));
        const error = errorText(res.body);
        assert.ok(!/s3cr3t|123456789/.test(error + JSON.stringify(res.body)), `answered without the file's data: ${error}`);
        assert.match(error, field);
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("a scan of a deployed config node whose settings come from environment variables never answers their values", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ble-admin-deployed-"));
    process.env.BLE_ADMIN_TEST_SERIAL = path.join(dir, "s3cr3t-dir", "ttyUSB0");
    process.env.BLE_ADMIN_TEST_SCENARIO_FILE = path.join(dir, "s3cr3t-dir", "scenario.json");
    process.env.BLE_ADMIN_TEST_TRANSPORT = "s3cr3t-transport";
    try {
      await loadFlow(
        [bleConfigNode],
        [
          tab,
          { id: "cfg-uart", type: "ble-config", transport: "uart", uartPort: "${BLE_ADMIN_TEST_SERIAL}", reconnectDelay: 100 },
          { id: "cfg-sim", type: "ble-config", transport: "simulator", simScenario: "${BLE_ADMIN_TEST_SCENARIO_FILE}" },
          { id: "cfg-bad", type: "ble-config", transport: "${BLE_ADMIN_TEST_TRANSPORT}" },
        ],
      );
      for (const [config, status, reason] of [
        ["cfg-bad", 400, /transport must be/],
        ["cfg-sim", 503, /simScenario.*cannot be read/],
        ["cfg-uart", 503, /uartPort.*no such file/],
      ] as const) {
        // Only ble-config.read is needed for this scan: a user who may not see the environment.
        const res = await scan({ config, seconds: "1" });
        assert.equal(res.status, status, config);
        const error = errorText(res.body);
        assert.ok(!/s3cr3t/.test(error + JSON.stringify(res.body)), `${config}: answered without the expanded value: ${error}`);
        assert.match(error, reason);
      }
    } finally {
      delete process.env.BLE_ADMIN_TEST_SERIAL;
      delete process.env.BLE_ADMIN_TEST_SCENARIO_FILE;
      delete process.env.BLE_ADMIN_TEST_TRANSPORT;
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("an environment variable with a short value does not garble the error naming it", async () => {
    await loadFlow([bleConfigNode], [tab]);
    process.env.BLE_ADMIN_TEST_ZERO = "0";
    try {
      const res = await scan({ transport: "uart", uartPort: "/dev/ttyUSB0", uartBaudRate: "${BLE_ADMIN_TEST_ZERO}", seconds: "1" });
      assert.equal(res.status, 400);
      assert.match(errorText(res.body), /uartBaudRate must be a whole number between 1200 and 16000000/);
    } finally {
      delete process.env.BLE_ADMIN_TEST_ZERO;
    }
  });

  it("scans without disturbing a heart-rate node connected through the same adapter", async () => {
    await loadFlow(
      [bleConfigNode, heartRateNode],
      [
        { ...simConfig, simTimeScale: 1 },
        { id: "hr", z: "flow", type: "heart-rate", ble: "cfg", address: "", deviceName: "", topic: "", wires: [["out"]] },
        { id: "out", z: "flow", type: "helper" },
        tab,
      ],
    );
    const hr = helper.getNode("hr");
    await waitForStatus(hr, isConnected);
    await collectMessages(helper.getNode("out"), 1);
    const during = collectMessages(helper.getNode("out"), 2, 5000);
    const res = await scan({ config: "cfg", seconds: "2" });
    // Measurements kept flowing (one per second) while the scan ran, and the link stayed up.
    await during;
    assert.ok(isConnected(currentStatus(hr)!), "still connected after the scan");
    // A connected sensor no longer advertises; the scan still lists it, as the pool knows it.
    assert.ok(withoutRssi(res.body as ScanResult[]).some((d) => d.address === HR.address));
    // The settings of the deployed adapter name the same adapter: a scan with them shares it rather than opening another.
    const shared = await scan({ transport: "simulator", simScenario: "", seconds: "1", service: "180d" });
    assert.deepEqual(withoutRssi(shared.body as ScanResult[]), [HR]);
    assert.equal(openAdapterCount(), 1);
    assert.ok(isConnected(currentStatus(hr)!));
  });

  it(`runs at most ${MAX_CONCURRENT_SCANS} scans at once`, async () => {
    await loadFlow([bleConfigNode], [simConfig, tab]);
    const answers = await Promise.all(Array.from({ length: MAX_CONCURRENT_SCANS + 2 }, () => scan({ config: "cfg", seconds: "1" })));
    const statuses = answers.map((a) => a.status).sort();
    assert.deepEqual(statuses, [...Array(MAX_CONCURRENT_SCANS).fill(200), 429, 429]);
    assert.match(errorText(answers.find((a) => a.status === 429)!.body), /already running/);
  });

  it("protects the endpoints with Node-RED's admin permissions: ble-config.read, and ble-config.write to open an adapter from settings", () => {
    const routes = new Map<string, ((req: unknown, res: unknown, next: () => void) => void)[]>();
    const granted: string[] = [];
    const fakeRed = {
      httpAdmin: { get: (route: string, ...handlers: ((req: unknown, res: unknown, next: () => void) => void)[]) => routes.set(route, handlers) },
      auth: { needsPermission: (permission: string) => (_req: unknown, _res: unknown, next: () => void) => (granted.push(permission), next()) },
    };
    registerAdminEndpoints(fakeRed as unknown as Parameters<typeof registerAdminEndpoints>[0]);
    assert.deepEqual([...routes.keys()].sort(), [EXPLORE_PATH, SCAN_PATH, SERIAL_PORTS_PATH].sort());
    const check = (route: string, query: Record<string, string>): string[] => {
      granted.length = 0;
      let passed = false;
      routes.get(route)![0]({ query }, {}, () => (passed = true));
      assert.ok(passed);
      return [...granted];
    };
    assert.deepEqual(check(SCAN_PATH, { config: "cfg" }), ["ble-config.read"]);
    assert.deepEqual(check(SCAN_PATH, { config: "cfg", transport: "simulator" }), ["ble-config.write"]);
    assert.deepEqual(check(EXPLORE_PATH, { config: "cfg", address: "d8:75:ba:00:00:01" }), ["ble-config.read"]);
    assert.deepEqual(check(EXPLORE_PATH, { config: "cfg", transport: "simulator", address: "d8:75:ba:00:00:01" }), ["ble-config.write"]);
    assert.deepEqual(check(SERIAL_PORTS_PATH, {}), ["ble-config.read"]);
  });

  it("lists serial ports through the serialport copy of the UART driver", async () => {
    await loadFlow([bleConfigNode], [tab]);
    const res = await helper.request().get(SERIAL_PORTS_PATH);
    assert.equal(res.status, 200);
    assert.ok(Array.isArray(res.body));
    assert.deepEqual(res.body, await listSerialPorts());
    for (const port of res.body as { path: unknown }[]) assert.equal(typeof port.path, "string");
  });
});
