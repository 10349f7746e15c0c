import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import type { NodeMessage } from "node-red";
import bleConfigNode = require("../../src/ble-config");
import heartRateNode = require("../../src/heart-rate");
import hiokiMeterNode = require("../../src/hioki-meter");
import nusYmodemReceiveNode = require("../../src/nus-ymodem-receive");
import { collectMessages, errorsOf, helper, loadFlow, useNodeRed, waitForStatus, type FlowNode } from "../support/red";

/** The address field typed as an environment variable ("env" in the editor's typed input). */
const UNSET = "BLE_ENV_ADDRESS_TEST_UNSET";
const SET = "BLE_ENV_ADDRESS_TEST_SET";
const HR = "d8:75:ba:00:00:01";

const z = "flow";
const on = { z, x: 100, y: 100 };
const tab: FlowNode = { id: z, type: "tab", label: "test" };
// The built-in scenario: one heart-rate sensor, one meter, one NUS device — each node would find "any" of its kind.
const simConfig: FlowNode = { id: "cfg", type: "ble-config", transport: "simulator", simScenario: "", simTimeScale: 10 };
const sink: FlowNode = { id: "out", ...on, type: "helper" };

const NODES: Record<string, FlowNode> = {
  "heart-rate": { id: "dev", ...on, type: "heart-rate", ble: "cfg", deviceName: "", topic: "", wires: [["out"]] },
  "nus-ymodem-receive": { id: "dev", ...on, type: "nus-ymodem-receive", ble: "cfg", deviceName: "", topic: "", wires: [["out"]] },
  "hioki-meter": { id: "dev", ...on, type: "hioki-meter", ble: "cfg", deviceName: "", command: "", interval: 0, topic: "", wires: [["out"]] },
};
const MODULES = [bleConfigNode, heartRateNode, hiokiMeterNode, nusYmodemReceiveNode];

/** The node's message catalog entry `errors.<key>`, with its substitutions made. */
function catalogText(type: string, key: string, subs: Record<string, string>): string {
  const file = path.join(__dirname, "../../nodes/locales/en-US", `${type}.json`);
  const catalog = JSON.parse(fs.readFileSync(file, "utf8")) as Record<string, { errors: Record<string, string | undefined> }>;
  const text = catalog[type].errors[key];
  assert.ok(text !== undefined, `${type}: errors.${key} is in the catalog`);
  return Object.entries(subs).reduce((t, [name, value]) => t.split(`__${name}__`).join(value), text);
}

describe("device nodes: an address typed as an environment variable", function () {
  this.timeout(30000);
  useNodeRed();

  afterEach(() => {
    delete process.env[UNSET];
    delete process.env[SET];
  });

  for (const type of Object.keys(NODES)) {
    it(`${type}: an unset variable is an invalid configuration (red status), not "any device"`, async () => {
      delete process.env[UNSET];
      await loadFlow(MODULES, [tab, simConfig, { ...NODES[type], address: UNSET, addressType: "env" }, sink]);
      const dev = helper.getNode("dev");
      const status = await waitForStatus(dev, (s) => s.fill === "red");
      assert.deepEqual(status, { fill: "red", shape: "ring", text: "invalid configuration" });
      const errors = errorsOf(dev);
      // The node's own catalog words it, naming the field and the variable.
      const expected = catalogText(type, "env-unset", { field: "address", variable: UNSET });
      assert.ok(expected.includes("address") && expected.includes(UNSET));
      assert.ok(errors.includes(expected), `the log says ${JSON.stringify(expected)}: ${JSON.stringify(errors)}`);
    });

    it(`${type}: a variable set to an empty value or to something that is not an address is refused without echoing it`, async () => {
      for (const value of ["", "  ", "secret-token-4711"]) {
        process.env[SET] = value;
        await loadFlow(MODULES, [tab, simConfig, { ...NODES[type], address: SET, addressType: "env" }, sink]);
        const dev = helper.getNode("dev");
        const status = await waitForStatus(dev, (s) => s.fill === "red");
        assert.equal(status.text, "invalid configuration", `value ${JSON.stringify(value)}`);
        const errors = errorsOf(dev);
        assert.ok(errors.length > 0);
        for (const e of errors) assert.ok(!e.includes("secret-token"), `the log does not echo the variable's value: ${e}`);
        const expected = value.trim() === "" ? catalogText(type, "env-unset", { field: "address", variable: SET }) : catalogText(type, "address", { field: "address" });
        assert.ok(errors.includes(expected), `the log says ${JSON.stringify(expected)}: ${JSON.stringify(errors)}`);
        await helper.unload();
      }
    });
  }

  it("heart-rate: a set variable selects that device", async () => {
    process.env[SET] = HR.toUpperCase();
    await loadFlow(MODULES, [tab, simConfig, { ...NODES["heart-rate"], address: SET, addressType: "env" }, sink]);
    const [msg] = (await collectMessages(helper.getNode("out"), 1)) as (NodeMessage & { peripheral: { address: string } })[];
    assert.equal(msg.peripheral.address, HR);
  });
});
