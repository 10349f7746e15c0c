/**
 * The Home Assistant discovery function of examples/mqtt-gateway.json (node mqtt-ha), run in a real Node-RED
 * runtime on BTHome readings as the example's "MQTT topics" function publishes them: each config must be one Home
 * Assistant accepts as it is (test/e2e/mqtt.test.ts checks the whole gateway against a broker, with the simulator's
 * sensors; this covers every measurement the function knows).
 */
import assert from "node:assert/strict";
import type { NodeAPI, NodeMessage } from "node-red";
import { BTHOME_OBJECTS } from "../../src/protocol/bthome-objects";
import { readExample } from "../support/demo-node-red";
import { collectMessages, helper, loadFlow, useNodeRed, type FlowNode } from "../support/red";

// eslint-disable-next-line @typescript-eslint/no-require-imports -- Node-RED's function node has no type declarations
const functionNode = require("@node-red/nodes/core/function/10-function.js") as (RED: NodeAPI) => void;

/**
 * The state classes Home Assistant allows with each sensor device class the function uses (Home Assistant's
 * sensor DEVICE_CLASS_STATE_CLASSES); any other pair is refused by its sensor platform as "impossible".
 */
const STATE_CLASSES: Record<string, readonly string[]> = {
  temperature: ["measurement"],
  humidity: ["measurement"],
  atmospheric_pressure: ["measurement"],
  battery: ["measurement"],
  illuminance: ["measurement"],
  carbon_dioxide: ["measurement"],
  volatile_organic_compounds: ["measurement"],
  pm25: ["measurement"],
  pm10: ["measurement"],
  voltage: ["measurement"],
  current: ["measurement"],
  power: ["measurement"],
  energy: ["total", "total_increasing"],
  moisture: ["measurement"],
  weight: ["measurement", "total", "total_increasing"],
  distance: ["measurement", "total", "total_increasing"],
  speed: ["measurement"],
  volume: ["total", "total_increasing"],
  gas: ["total", "total_increasing"],
  water: ["total", "total_increasing"],
  precipitation: ["measurement", "total", "total_increasing"],
  duration: ["measurement", "total", "total_increasing"],
};

describe("examples/mqtt-gateway.json: Home Assistant discovery (node mqtt-ha)", function () {
  useNodeRed();

  it("announces every numeric BTHome measurement with a state class Home Assistant allows for its device class", async () => {
    const ha = readExample("mqtt-gateway.json").find((n) => n.id === "mqtt-ha") as FlowNode;
    const flow: FlowNode[] = [
      { id: "t", type: "tab", env: [{ name: "MQTT_PREFIX", value: "ble", type: "str" }, { name: "GATEWAY", value: "gw", type: "str" }] },
      { ...ha, z: "t", wires: [["out"]] },
      { id: "out", z: "t", type: "helper" },
    ];
    await loadFlow([functionNode], flow);
    const measurements: Record<string, number> = {};
    for (const o of BTHOME_OBJECTS.values()) if (o.kind === "number" && o.name !== "packetId") measurements[o.name] = 1;
    // One config message per measurement.
    const got = collectMessages(helper.getNode("out"), Object.keys(measurements).length);
    helper.getNode("mqtt-ha").receive({ topic: "ble/gw/c0:b7:40:00:00:01/bthome", payload: { measurements, packetId: 1, rssi: -60, name: null } } as NodeMessage);
    const configs = (await got).map((m) => m.payload as Record<string, unknown>);
    const classes = configs.filter((c) => typeof c.device_class === "string");
    assert.ok(classes.length >= 20, `configs with a device class: ${classes.length}`);
    for (const c of classes) {
      const allowed = STATE_CLASSES[String(c.device_class)];
      assert.ok(allowed, `a device class this test knows: ${String(c.device_class)}`);
      assert.ok(allowed.includes(String(c.state_class)), `${String(c.name)}: device class ${String(c.device_class)} with state class ${String(c.state_class)}`);
    }
  });
});
