/**
 * Which transport a ble-config gets, and what a user sees of it: the platform's own Bluetooth by default (never the
 * simulator unless chosen), transports the platform lacks refused with a status saying so, and device nodes on the
 * simulator saying "simulated" when connected.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import bleConfigNode = require("../../src/ble-config");
import heartRateNode = require("../../src/heart-rate");
import hiokiMeterNode = require("../../src/hioki-meter");
import { transportSettings, TransportUnavailableError, type BleConfigDef } from "../../src/red/ble-config-node";
import { collectMessages, helper, isConnected, loadFlow, translate, useNodeRed, waitForStatus, type FlowNode } from "../support/red";

const tab: FlowNode = { id: "f1", type: "tab", label: "transports" };
/** A ble-config node as the editor saves it, with these properties. */
const def = (properties: Partial<BleConfigDef> = {}): BleConfigDef => ({ id: "c", type: "ble-config", name: "", z: "", ...properties });
const on = { z: "f1", x: 100, y: 100 };

describe("ble-config transports", function () {
  this.timeout(30000);

  describe("settings", () => {
    it("gives a node without a transport the platform's own Bluetooth: bluez on Linux, native on macOS and Windows", () => {
      assert.deepEqual(transportSettings(def(), "linux"), { transport: "bluez", adapter: "hci0" });
      assert.deepEqual(transportSettings(def(), "darwin"), { transport: "native" });
      assert.deepEqual(transportSettings(def(), "win32"), { transport: "native" });
    });

    it("takes the BlueZ adapter by name, and refuses a name that cannot be a D-Bus path element", () => {
      assert.deepEqual(transportSettings(def({ transport: "bluez", bluezAdapter: "hci1" }), "linux"), { transport: "bluez", adapter: "hci1" });
      assert.throws(() => transportSettings(def({ transport: "bluez", bluezAdapter: "../hci0" }), "linux"), /bluezAdapter/);
    });

    it("refuses native on Linux and bluez on macOS and Windows", () => {
      assert.throws(() => transportSettings(def({ transport: "native" }), "linux"), TransportUnavailableError);
      assert.throws(() => transportSettings(def({ transport: "bluez" }), "darwin"), TransportUnavailableError);
      assert.throws(() => transportSettings(def({ transport: "bluez" }), "win32"), TransportUnavailableError);
    });

    it("keeps every example on an explicit transport: none relies on the default", () => {
      const dir = path.join(__dirname, "..", "..", "examples");
      for (const file of fs.readdirSync(dir).filter((f) => f.endsWith(".json"))) {
        const flow = JSON.parse(fs.readFileSync(path.join(dir, file), "utf8")) as FlowNode[];
        const configs = flow.filter((n) => n.type === "ble-config");
        assert.ok(configs.length > 0, `${file} has a ble-config node`);
        for (const c of configs) assert.ok(c.transport === "simulator" || c.transport === "uart", `${file}: ${c.id} names its transport (${String(c.transport)})`);
      }
    });
  });

  describe("in Node-RED", () => {
    useNodeRed();

    it("shows a device node on the simulator as connected (simulated), for the pool's status and the meter's own", async () => {
      await loadFlow(
        [bleConfigNode, heartRateNode, hiokiMeterNode],
        [
          tab,
          { id: "cfg", type: "ble-config", transport: "simulator", simScenario: "", simTimeScale: 10 },
          { id: "hr", type: "heart-rate", ...on, ble: "cfg", address: "", deviceName: "", topic: "", wires: [[]] },
          { id: "meter", type: "hioki-meter", ...on, ble: "cfg", address: "", deviceName: "Z3210", command: "FETC?", interval: 100, replyTimeout: 1000, topic: "", wires: [["meter-out"]] },
          { id: "meter-out", type: "helper", ...on },
        ],
      );
      const hr = await waitForStatus(helper.getNode("hr"), isConnected);
      assert.equal(hr.text, translate("ble-config.status.connected-simulated"));
      assert.equal(hr.text, "connected (simulated)");
      // The meter puts "connected" back after each good reply: the same shared text.
      await collectMessages(helper.getNode("meter-out"), 2);
      const meter = await waitForStatus(helper.getNode("meter"), isConnected);
      assert.equal(meter.text, translate("ble-config.status.connected-simulated"));
      assert.equal(meter.text, "connected (simulated)");
    });

    it("refuses a native adapter on Linux (where the tests run) with a red status that says so", async () => {
      await loadFlow(
        [bleConfigNode, heartRateNode],
        [tab, { id: "cfg", type: "ble-config", transport: "native" }, { id: "hr", type: "heart-rate", ...on, ble: "cfg", address: "", deviceName: "", topic: "", wires: [[]] }],
      );
      const status = await waitForStatus(helper.getNode("hr"), (s) => s.fill === "red");
      assert.equal(status.text, translate("ble-config.errors.native-unavailable", { platform: "linux" }));
    });
  });
});
