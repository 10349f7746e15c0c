import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import type { NodeMessage } from "node-red";
import bleConfigNode = require("../../src/ble-config");
import heartRateNode = require("../../src/heart-rate");
import { openAdapterCount } from "../../src/ble/pool";
import { hciPeerCount } from "../../src/ble/hci-peer";
import { openVirtualSerialPort } from "../../src/sim/pty";
import { DEFAULT_SCENARIO, parseScenario, Simulation } from "../../src/sim/scenario";
import type { BleConfigNode } from "../../src/red/ble-config-node";
import { collectMessages, helper, isConnected, loadFlow, waitForStatus, type FlowNode, useNodeRed } from "../support/red";

const HR = "d8:75:ba:00:00:01";

interface HeartRateMsg extends NodeMessage {
  payload: number;
  heartRate: { bpm: number; sensorContact: boolean | null; energyExpended: number | null; rrIntervals: number[] };
  peripheral: { address: string; name: string };
  topic: string;
}

function writeScenario(scenario: unknown): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ble-hr-"));
  const file = path.join(dir, "scenario.json");
  fs.writeFileSync(file, JSON.stringify(scenario));
  return file;
}

function simConfig(extra: Record<string, unknown> = {}): FlowNode {
  return { id: "cfg", type: "ble-config", transport: "simulator", simScenario: "", simTimeScale: 10, ...extra };
}

function hrNode(id: string, extra: Record<string, unknown> = {}): FlowNode {
  return { id, z: "flow", type: "heart-rate", ble: "cfg", address: "", deviceName: "", topic: "hr", wires: [["out"]], ...extra };
}

const tab: FlowNode = { id: "flow", type: "tab", label: "test" };
const sink: FlowNode = { id: "out", z: "flow", type: "helper" };

function adapterOf(id = "cfg"): NonNullable<BleConfigNode["adapter"]> {
  const cfg = helper.getNode(id) as BleConfigNode;
  assert.ok(cfg.adapter, "config node has an adapter");
  return cfg.adapter;
}

describe("heart-rate node (Node-RED runtime + simulator through noble)", function () {
  this.timeout(30000);

  useNodeRed();

  it("sends one decoded message per measurement of the built-in sensor", async () => {
    await loadFlow([bleConfigNode, heartRateNode], [simConfig(), hrNode("sensor"), sink, tab]);
    const msgs = (await collectMessages(helper.getNode("out"), 3)) as HeartRateMsg[];
    for (const msg of msgs) {
      assert.ok([45, 46, 47].includes(msg.payload), `bpm ${msg.payload} comes from the built-in scenario`);
      assert.equal(msg.heartRate.bpm, msg.payload);
      assert.equal(msg.heartRate.sensorContact, true);
      assert.deepEqual(msg.peripheral, { address: HR, name: "44278-33" });
      assert.equal(msg.topic, "hr");
    }
  });

  it("decodes uint16 values, energy and RR intervals, and reports a malformed measurement as a Catch-able error", async () => {
    const scenario = writeScenario({
      peripherals: [{ kind: "heart-rate", address: HR, name: "raw", packets: ["19A50090016C01", "11", "1631870487 04".replace(" ", ""), "0448"], intervalMs: 200 }],
    });
    await loadFlow(
      [bleConfigNode, heartRateNode],
      [simConfig({ simScenario: scenario }), hrNode("sensor"), sink, { id: "catcher", z: "flow", type: "catch", scope: null, uncaught: false, wires: [["caught"]] }, { id: "caught", z: "flow", type: "helper" }, tab],
    );
    const caught = collectMessages(helper.getNode("caught"), 1);
    const msgs = (await collectMessages(helper.getNode("out"), 3)) as HeartRateMsg[];
    const byBpm = new Map(msgs.map((m) => [m.payload, m.heartRate]));
    assert.deepEqual(byBpm.get(165), { bpm: 165, sensorContact: null, energyExpended: 400, rrIntervals: [(364 * 1000) / 1024] });
    assert.deepEqual(byBpm.get(49), { bpm: 49, sensorContact: true, energyExpended: null, rrIntervals: [(1159 * 1000) / 1024, (1159 * 1000) / 1024] });
    assert.deepEqual(byBpm.get(72), { bpm: 72, sensorContact: false, energyExpended: null, rrIntervals: [] });
    const [error] = (await caught) as (NodeMessage & { error: { message: string }; payload: Buffer })[];
    assert.match(error.error.message, /11/);
    assert.deepEqual(Buffer.from(error.payload), Buffer.from([0x11]));
  });

  it("delivers a burst of notifications sent back to back without losing or reordering one", async () => {
    const scenario = writeScenario({ peripherals: [{ kind: "heart-rate", address: HR, name: "burst", bpm: [60], intervalMs: 3600000 }] });
    await loadFlow([bleConfigNode, heartRateNode], [simConfig({ simScenario: scenario }), hrNode("sensor"), sink, tab]);
    await waitForStatus(helper.getNode("sensor"), isConnected);
    const sensor = adapterOf().simulation!.controller.peripheral(HR) as unknown as { sendBurst(n: number): Promise<void> };
    const count = 2000;
    const received = collectMessages(helper.getNode("out"), count, 20000);
    await sensor.sendBurst(count);
    const msgs = (await received) as HeartRateMsg[];
    assert.deepEqual(
      msgs.map((m) => m.payload),
      Array.from({ length: count }, (_, i) => i),
    );
  });

  it("lets two nodes share one connection to one sensor, both receiving every measurement", async () => {
    await loadFlow(
      [bleConfigNode, heartRateNode],
      [simConfig(), hrNode("a", { address: HR, wires: [["outA"]] }), hrNode("b", { deviceName: "44278-33", wires: [["outB"]] }), { id: "outA", z: "flow", type: "helper" }, { id: "outB", z: "flow", type: "helper" }, tab],
    );
    await Promise.all([waitForStatus(helper.getNode("a"), isConnected), waitForStatus(helper.getNode("b"), isConnected)]);
    const [a, b] = await Promise.all([collectMessages(helper.getNode("outA"), 4), collectMessages(helper.getNode("outB"), 4)]);
    assert.equal(adapterOf().simulation!.controller.connectionCount, 1, "one link for both nodes");
    // Both see the same stream: the last three of A's appear in B's, in order
    const seqA = a.map((m) => (m as HeartRateMsg).payload);
    const seqB = b.map((m) => (m as HeartRateMsg).payload);
    assert.ok(seqA.join(",").includes(seqB.slice(1, 3).join(",")) || seqB.join(",").includes(seqA.slice(1, 3).join(",")));
  });

  it("a node that closes while another keeps the sensor sends nothing more (its listener goes with it)", async () => {
    await loadFlow(
      [bleConfigNode, heartRateNode],
      [simConfig(), hrNode("a", { address: HR, wires: [["outA"]] }), hrNode("b", { address: HR, wires: [["outB"]] }), { id: "outA", z: "flow", type: "helper" }, { id: "outB", z: "flow", type: "helper" }, tab],
    );
    const a = helper.getNode("a");
    await Promise.all([waitForStatus(a, isConnected), waitForStatus(helper.getNode("b"), isConnected)]);
    await collectMessages(helper.getNode("outA"), 1);
    await (a as unknown as { close(removed: boolean): Promise<void> }).close(true);
    let sentAfterClose = 0;
    a.send = () => {
      sentAfterClose++;
    };
    await collectMessages(helper.getNode("outB"), 4);
    assert.equal(adapterOf().simulation!.controller.connectionCount, 1, "the other node still holds the link");
    assert.equal(sentAfterClose, 0, "the closed node sent messages");
  });

  it("shows reconnecting when the sensor powers off, and resumes messages when it is back", async () => {
    await loadFlow([bleConfigNode, heartRateNode], [simConfig({ reconnectDelay: 200 }), hrNode("sensor"), sink, tab]);
    const node = helper.getNode("sensor");
    await waitForStatus(node, isConnected);
    await collectMessages(helper.getNode("out"), 1);
    const controller = adapterOf().simulation!.controller;
    const reconnecting = waitForStatus(node, (s) => s.fill === "yellow" && /reconnecting/.test(String(s.text)));
    controller.powerOff(HR);
    await reconnecting;
    const connectedAgain = waitForStatus(node, isConnected, 20000);
    controller.powerOn(HR);
    await connectedAgain;
    const msgs = (await collectMessages(helper.getNode("out"), 2)) as HeartRateMsg[];
    assert.equal(msgs.length, 2);
  });

  it("rejects a malformed scenario with an error naming the field", async () => {
    const scenario = writeScenario({ peripherals: [{ kind: "heart-rate", address: "not-an-address", name: "x" }] });
    await loadFlow([bleConfigNode, heartRateNode], [simConfig({ simScenario: scenario }), hrNode("sensor"), sink, tab]);
    const status = await waitForStatus(helper.getNode("sensor"), (s) => s.fill === "red");
    assert.match(String(status.text), /peripherals\[0\]\.address/);
  });

  it("reports a missing HCI adapter with the fix, and Node-RED keeps running", async () => {
    await loadFlow([bleConfigNode, heartRateNode], [{ id: "cfg", type: "ble-config", transport: "hci", hciDevice: 0 }, hrNode("sensor"), sink, tab]);
    const status = await waitForStatus(helper.getNode("sensor"), (s) => s.fill === "red");
    assert.match(String(status.text), /hci0/);
  });

  it("works through the uart transport on a serial device (the ESP32 dongle code path, on a pty)", async () => {
    const simulation = new Simulation(parseScenario(DEFAULT_SCENARIO, ""), { timeScale: 10 });
    simulation.start();
    const port = await openVirtualSerialPort(simulation.controller);
    try {
      await loadFlow(
        [bleConfigNode, heartRateNode],
        [{ id: "cfg", type: "ble-config", transport: "uart", uartPort: port.path, uartBaudRate: 1000000 }, hrNode("sensor"), sink, tab],
      );
      const [msg] = (await collectMessages(helper.getNode("out"), 1)) as HeartRateMsg[];
      assert.deepEqual(msg.peripheral, { address: HR, name: "44278-33" });
      assert.ok(simulation.controller.counters.controllerAclPackets > 0, "the readings crossed the pty as H4 ACL packets");
      // noble must be stopped before the port closes (its UART driver would poll for the port again)
      await helper.unload();
    } finally {
      await port.close();
      simulation.close();
    }
  });

  it("releases everything over 50 redeploys: no adapters, listeners or timers left behind", async function () {
    this.timeout(120000);
    // Node-RED's own load/unload leaves a timer; count from after one cycle without BLE nodes.
    await loadFlow([], [sink, tab]);
    await helper.unload();
    const baseline = { sigint: process.listenerCount("SIGINT"), exit: process.listenerCount("exit"), handles: resourceCounts() };
    const flow = (n: number): FlowNode[] => [simConfig({ name: `deploy ${n}` }), hrNode("sensor", { topic: `deploy ${n}` }), sink, tab];
    await loadFlow([bleConfigNode, heartRateNode], flow(0));
    for (let n = 1; n <= 50; n++) {
      await helper.setFlows(flow(n) as Parameters<typeof helper.setFlows>[0], "full");
      // Every tenth deploy runs until connected, the others are torn down mid-connection.
      if (n % 10 === 0) await waitForStatus(helper.getNode("sensor"), isConnected);
    }
    const [msg] = (await collectMessages(helper.getNode("out"), 1)) as HeartRateMsg[];
    assert.equal(msg.topic, "deploy 50");
    assert.equal(openAdapterCount(), 1, "one adapter for the one config node of the last deploy");
    await helper.unload();
    assert.equal(openAdapterCount(), 0);
    assert.equal(hciPeerCount(), 0, "every simulator is unregistered");
    assert.equal(process.listenerCount("SIGINT"), baseline.sigint, "noble's SIGINT handlers are removed");
    assert.equal(process.listenerCount("exit"), baseline.exit, "noble's exit handlers are removed");
    const after = resourceCounts();
    for (const kind of ["Timeout", "TTYWrap", "PipeWrap", "FSReqCallback"]) {
      assert.ok((after[kind] ?? 0) <= (baseline.handles[kind] ?? 0), `${kind}: ${after[kind] ?? 0} active after, ${baseline.handles[kind] ?? 0} before`);
    }
  });
});

/** Active libuv resources by kind (timers, pipes, ...). */
function resourceCounts(): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const kind of process.getActiveResourcesInfo()) counts[kind] = (counts[kind] ?? 0) + 1;
  return counts;
}
