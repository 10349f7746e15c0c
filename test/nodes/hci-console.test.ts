/**
 * What a user sees on Node-RED's console when an `hci` adapter is configured but not plugged in: our own error
 * line, and nothing from noble (which prints "adapter does not support Bluetooth Low Energy … [sudo]
 * NOBLE_HCI_DEVICE_ID=x" whenever it is started without an adapter). A real Node-RED in a child process, started
 * the way `npm start` starts it (the built package: run `npm run build` first), since noble writes to the console
 * directly and a console is what a child process has.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import { DEFAULT_POLICY } from "../../src/ble/pool";
import { acquireAdapter } from "../../src/ble/registry";
import { startDemoNodeRed, waitForOutput, type DemoNodeRed } from "../support/demo-node-red";

/** An HCI device index no machine running the tests has. */
const ABSENT = 57;

const FLOW = [
  { id: "tab", type: "tab", label: "no adapter" },
  { id: "cfg", type: "ble-config", name: "dongle", transport: "hci", hciDevice: ABSENT, maxConnections: 4, connectTimeout: 1000, reconnectDelay: 100 },
  { id: "hr", type: "heart-rate", z: "tab", name: "strap", ble: "cfg", address: "d8:75:ba:00:00:01", addressType: "str", deviceName: "", topic: "", wires: [] },
];

describe("hci transport without its adapter, on the console (a real Node-RED process)", function () {
  this.timeout(60000);
  let red: DemoNodeRed | null = null;

  before(function () {
    // The premise: hci57 is absent here.
    assert.ok(!fs.existsSync(`/sys/class/bluetooth/hci${ABSENT}`), `this machine has hci${ABSENT}`);
  });

  after(async () => {
    await red?.stop();
  });

  it("logs our own line naming the missing adapter, and nothing from noble, through start, redeploy and stop", async () => {
    red = await startDemoNodeRed({ flows: FLOW });
    const ours = new RegExp(`\\[error\\] \\[ble-config:dongle\\] no Bluetooth adapter hci${ABSENT} on this machine`);
    await waitForOutput(red.child, red.log, () => (ours.test(red!.log()) ? true : undefined), "the missing-adapter error", 20000);
    // A redeploy opens the adapter again (noble printed its advice at each start), then Node-RED stops.
    const deployed = await fetch(`${red.url}flows`, {
      method: "POST",
      headers: { "content-type": "application/json", "node-red-deployment-type": "full" },
      body: JSON.stringify(FLOW),
    });
    assert.ok(deployed.ok, `deploy: ${deployed.status}`);
    await waitForOutput(red.child, red.log, () => (red!.log().split(ours).length > 2 ? true : undefined), "the error again after the redeploy", 20000);
    const child = red.child;
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    child.kill("SIGTERM");
    await exited;
    const log = red.log();
    assert.doesNotMatch(log, /noble|NOBLE_HCI_DEVICE_ID|does not support Bluetooth|sudo/i, "noble's advice on the console");
    const lines = log.split("\n").filter((line) => /\[(error|warn)\]/.test(line) && !/Projects disabled|unencrypted credentials/.test(line));
    assert.deepEqual(
      lines.map((line) => line.replace(/^.*?\[(error|warn)\]/, "[$1]")),
      Array(2).fill(`[error] [ble-config:dongle] no Bluetooth adapter hci${ABSENT} on this machine (nothing in /sys/class/bluetooth); plug one in, pick another HCI device index, or use the bluez (BlueZ over D-Bus), uart or simulator transport`),
      "one line per deploy, ours",
    );
  });

  it("leaves noble unstarted and looks for the adapter again with backoff, so plugging one in needs no redeploy", async () => {
    const adapter = acquireAdapter({ transport: "hci", hciDevice: ABSENT }, { ...DEFAULT_POLICY, connectTimeout: 20, reconnectDelay: 10, maxReconnectDelay: 40 });
    try {
      // A reason code, which the ble-config node words ("no Bluetooth adapter hci57 on this machine …", above).
      const missing = { key: "hci-missing", params: { device: `hci${ABSENT}` } };
      assert.deepEqual(adapter.problem, missing);
      assert.equal(adapter.noble, null, "noble is not started without an adapter");
      // Each look reports the adapter's state again (still missing here): three looks, without a deploy.
      let looks = 0;
      let nobleStarted = false;
      await new Promise<void>((resolve) => {
        adapter.on("state", () => {
          nobleStarted ||= adapter.noble !== null;
          if (++looks === 3) resolve();
        });
      });
      assert.equal(nobleStarted, false, "noble is not started by a look either");
      // Between looks the adapter still says why it is not usable (a node deployed now shows it, a scan answers it).
      assert.deepEqual(adapter.problem, missing);
    } finally {
      await adapter.unref();
    }
  });
});
