/**
 * Real hardware never loads the simulator: a process that loads the package's node files and the editor's admin
 * endpoints, and opens an adapter on each real transport (hci, uart, bluez), has no src/sim module loaded. A child
 * process, so that what other tests loaded does not count.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import * as path from "node:path";

const ROOT = path.resolve(__dirname, "..", "..");

/** Runs in the child: loads and opens, then prints the loaded modules under src/ as JSON. */
const CHILD = `
const path = require("node:path");
const root = process.env.LAYERS_ROOT;
const from = (file) => require(path.join(root, "src", file));
for (const node of Object.keys(require(path.join(root, "package.json"))["node-red"].nodes)) from(node);
from("red/admin");
const { DEFAULT_POLICY } = from("ble/pool");
const { acquireAdapter } = from("ble/registry");
const adapters = [
  { transport: "hci", hciDevice: 57 },
  { transport: "uart", port: path.join(root, "no-such-dir", "ttyUSB0"), baudRate: 1000000, flowControl: true },
  { transport: "bluez", adapter: "hci0" },
].map((settings) => acquireAdapter(settings, DEFAULT_POLICY));
// Each transport's failure (no adapter, no port, no bus) arrives as a problem: by then it has loaded what it uses.
Promise.all(adapters.map((a) => a.problem ? null : new Promise((resolve) => a.on("state", () => a.problem && resolve()))))
  .then(() => Promise.all(adapters.map((a) => a.unref())))
  .then(() => {
    const src = path.join(root, "src") + path.sep;
    process.stdout.write(JSON.stringify(Object.keys(require.cache).filter((f) => f.startsWith(src)).map((f) => path.relative(src, f))));
  });
`;

/** Runs in the child: the pool alone, nobody having registered the simulator, asked for a simulator adapter. */
const UNREGISTERED = `
const path = require("node:path");
const { DEFAULT_POLICY } = require(path.join(process.env.LAYERS_ROOT, "src", "ble", "pool"));
const { acquireAdapter } = require(path.join(process.env.LAYERS_ROOT, "src", "ble", "registry"));
const adapter = acquireAdapter({ transport: "simulator", scenario: "" }, DEFAULT_POLICY);
const problem = adapter.problem;
const sim = path.join(process.env.LAYERS_ROOT, "src", "sim") + path.sep;
adapter.unref().then(() => process.stdout.write(JSON.stringify({ problem, sim: Object.keys(require.cache).filter((f) => f.startsWith(sim)) })));
`;

function runChild<T>(script: string): Promise<T> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      ["--require", require.resolve("tsx/cjs"), "-e", script],
      // A system bus that is not there: the bluez transport fails at once, naming it.
      { cwd: ROOT, env: { ...process.env, LAYERS_ROOT: ROOT, DBUS_SYSTEM_BUS_ADDRESS: `unix:path=${path.join(ROOT, "no-such-dir", "bus")}` }, timeout: 60000 },
      (error, stdout, stderr) => (error ? reject(new Error(`${error.message}\n${stderr}`)) : resolve(JSON.parse(stdout) as T)),
    );
  });
}

describe("layers: real adapters without the simulator", function () {
  this.timeout(60000);

  it("loads no src/sim module when the node files are loaded and hci, uart and bluez adapters are opened", async () => {
    const loaded = await runChild<string[]>(CHILD);
    // The premise: the child did load the BLE layer, the node files and the admin endpoints.
    for (const file of ["ble/pool.ts", "ble/adapter.ts", "ble-config.ts", "red/admin.ts"]) assert.ok(loaded.includes(file), `${file} was loaded`);
    assert.deepEqual(
      loaded.filter((f) => f.startsWith(`sim${path.sep}`)),
      [],
      "simulator modules loaded",
    );
  });

  it("opens the simulator only once the node layer registered it: the pool alone says so, and loads nothing of src/sim", async () => {
    const { problem, sim } = await runChild<{ problem: unknown; sim: string[] }>(UNREGISTERED);
    assert.deepEqual(problem, { key: "transport-not-registered", params: { transport: "simulator" } });
    assert.deepEqual(sim, [], "simulator modules loaded");
  });
});
