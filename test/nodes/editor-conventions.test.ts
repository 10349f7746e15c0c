/** What the editor dialogs store and show, seen from the runtime: addresses from environment variables, idle status. */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import type { NodeMessage } from "node-red";
import bleConfigNode = require("../../src/ble-config");
import heartRateNode = require("../../src/heart-rate");
import hiokiMeterNode = require("../../src/hioki-meter");
import nusYmodemReceiveNode = require("../../src/nus-ymodem-receive");
import { collectMessages, currentStatus, helper, isConnected, loadFlow, waitForStatus, type FlowNode, useNodeRed } from "../support/red";

const tab: FlowNode = { id: "flow", type: "tab", label: "test" };
const simConfig: FlowNode = { id: "cfg", type: "ble-config", transport: "simulator", simScenario: "", simTimeScale: 10 };
const sink: FlowNode = { id: "out", z: "flow", type: "helper" };

describe("editor conventions at runtime (env addresses, status dots)", function () {
  this.timeout(30000);

  useNodeRed();
  afterEach(() => {
    delete process.env.BLE_TEST_HR_ADDRESS;
  });

  it("takes a device address from an environment variable when the address field's type is env", async () => {
    process.env.BLE_TEST_HR_ADDRESS = "D8-75-BA-00-00-01";
    await loadFlow(
      [bleConfigNode, heartRateNode],
      [simConfig, { id: "hr", z: "flow", type: "heart-rate", ble: "cfg", address: "BLE_TEST_HR_ADDRESS", addressType: "env", deviceName: "", wires: [["out"]] }, sink, tab],
    );
    const [msg] = (await collectMessages(helper.getNode("out"), 1)) as (NodeMessage & { peripheral: { address: string } })[];
    assert.equal(msg.peripheral.address, "d8:75:ba:00:00:01");
  });

  it("reads the variable from the flow's own environment too, and rejects one that holds no address", async () => {
    await loadFlow(
      [bleConfigNode, hiokiMeterNode],
      [
        simConfig,
        { id: "m", z: "flow", type: "hioki-meter", ble: "cfg", address: "METER", addressType: "env", deviceName: "", interval: 0, wires: [[]] },
        { id: "bad", z: "flow", type: "hioki-meter", ble: "cfg", address: "NOT_AN_ADDRESS", addressType: "env", deviceName: "", interval: 0, wires: [[]] },
        { ...tab, env: [{ name: "METER", value: "a4:9e:69:00:00:01", type: "str" }, { name: "NOT_AN_ADDRESS", value: "meter", type: "str" }] },
      ],
    );
    await waitForStatus(helper.getNode("m"), isConnected);
    const bad = currentStatus(helper.getNode("bad"));
    assert.deepEqual(bad, { fill: "red", shape: "ring", text: "invalid configuration" });
  });

  it("shows a grey ring 'idle' on a file-download node until it is triggered", async () => {
    await loadFlow(
      [bleConfigNode, nusYmodemReceiveNode],
      [simConfig, { id: "dl", z: "flow", type: "nus-ymodem-receive", ble: "cfg", address: "", deviceName: "mpy-nus", wires: [["out"]] }, sink, tab],
    );
    assert.deepEqual(currentStatus(helper.getNode("dl")), { fill: "grey", shape: "ring", text: "idle" });
  });

  it("has every message the editor's shared script uses in the ble-config catalog", () => {
    const html = fs.readFileSync(path.join(__dirname, "..", "..", "nodes", "ble-config.html"), "utf8");
    const catalog = JSON.parse(fs.readFileSync(path.join(__dirname, "..", "..", "nodes", "locales", "en-US", "ble-config.json"), "utf8")) as {
      "ble-config": Record<string, Record<string, string>>;
    };
    // t("scan.button"), node._("ble-config.serial.found"), data-i18n="ble-config.label.ms", ...
    const keys = new Set<string>();
    for (const m of html.matchAll(/\bt\("([\w.-]+)"/g)) keys.add(m[1]);
    for (const m of html.matchAll(/(?:_\(|data-i18n="(?:\[\w+\])?)"?ble-config\.([\w.-]+)"/g)) keys.add(m[1]);
    assert.ok(keys.size > 15, `found ${keys.size} keys`);
    for (const key of keys) {
      const [group, name] = key.split(".");
      assert.equal(typeof catalog["ble-config"][group]?.[name], "string", `ble-config.${key} is in the catalog`);
    }
  });
});
