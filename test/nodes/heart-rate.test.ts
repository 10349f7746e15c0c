import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import type { NodeMessage } from "node-red";
import bleConfigNode = require("../../src/ble-config");
import heartRateNode = require("../../src/heart-rate");
import { openAdapterCount } from "../../src/ble/registry";
import { hciPeerCount } from "../../src/ble/hci-peer";
import { openVirtualSerialPort } from "../../src/sim/pty";
import { DEFAULT_SCENARIO, parseScenario, Simulation } from "../../src/sim/scenario";
import type { BleConfigNode } from "../../src/red/ble-config-node";
import type { HeartRatePeripheral } from "../../src/sim/peripherals/heart-rate";
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

function simulatedSensor(address = HR): HeartRatePeripheral {
  const sensor = adapterOf().simulation?.controller.peripheral(address);
  assert.ok(sensor, `the simulation has a peripheral ${address}`);
  return sensor as unknown as HeartRatePeripheral;
}

/** The bpm values of the built-in scenario's heart-rate sensor, in the order it cycles through them. */
function builtInBpm(): readonly number[] {
  const bpm = DEFAULT_SCENARIO.peripherals.find((p) => p.kind === "heart-rate")?.bpm;
  assert.ok(bpm && bpm.length > 0, "the built-in scenario has a heart-rate sensor with bpm values");
  return bpm;
}

/** `count` values of a list the simulated sensor cycles through, from its position `from` on. */
function cycle(list: readonly number[], from: number, count: number): number[] {
  return Array.from({ length: count }, (_, i) => list[(from + i) % list.length]);
}

/** The payloads a simulated sensor's bursts carry (HeartRatePeripheral.sendBurst: 0, 1, … n−1 per burst). */
function bursts(...lengths: number[]): number[] {
  return lengths.flatMap((n) => Array.from({ length: n }, (_, i) => i));
}

/**
 * Sends a burst of `count` values and then one more burst of a single value (0). Collecting count + 1 messages
 * then shows a lost value (a missing number), a duplicate (a repeated number, also one at the very end of the
 * burst, which would arrive in place of the trailing 0) and any reordering, without waiting for silence.
 */
async function burstThenMarker(sensor: HeartRatePeripheral, count: number): Promise<void> {
  await sensor.sendBurst(count);
  await sensor.sendBurst(1);
}

const payloads = (msgs: NodeMessage[]): unknown[] => msgs.map((m) => m.payload);

describe("heart-rate node (Node-RED runtime + simulator through noble)", function () {
  this.timeout(30000);

  useNodeRed();

  it("sends one decoded message per measurement of the built-in sensor", async () => {
    await loadFlow([bleConfigNode, heartRateNode], [simConfig(), hrNode("sensor"), sink, tab]);
    // The sensor measures from the start of its list once subscribed: a whole cycle and the start of the next one,
    // in order, shows a value lost, repeated or changed on the way.
    const bpm = builtInBpm();
    const msgs = (await collectMessages(helper.getNode("out"), bpm.length + 1)) as HeartRateMsg[];
    assert.deepEqual(payloads(msgs), cycle(bpm, 0, bpm.length + 1));
    for (const msg of msgs) {
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
    // The packets in the scenario's order, the malformed one (0x11) left out of the output.
    assert.deepEqual(
      msgs.map((m) => m.heartRate),
      [
        { bpm: 165, sensorContact: null, energyExpended: 400, rrIntervals: [(364 * 1000) / 1024] },
        { bpm: 49, sensorContact: true, energyExpended: null, rrIntervals: [(1159 * 1000) / 1024, (1159 * 1000) / 1024] },
        { bpm: 72, sensorContact: false, energyExpended: null, rrIntervals: [] },
      ],
    );
    assert.deepEqual(payloads(msgs), [165, 49, 72]);
    const [error] = (await caught) as (NodeMessage & { error: { message: string }; payload: Buffer })[];
    // The problem and the length, never the received bytes (the payload carries them): flags 0x11 are not echoed.
    assert.match(error.error.message, /uint16 heart rate at bytes 1-2.*\(1 byte\)$/);
    assert.doesNotMatch(error.error.message, /11/);
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
    // Periodic measurements off: only the numbered bursts travel.
    const scenario = writeScenario({ peripherals: [{ kind: "heart-rate", address: HR, name: "shared", bpm: [60], intervalMs: 3600000 }] });
    await loadFlow(
      [bleConfigNode, heartRateNode],
      [
        simConfig({ simScenario: scenario }),
        hrNode("a", { address: HR, wires: [["outA"]] }),
        hrNode("b", { deviceName: "shared", wires: [["outB"]] }),
        { id: "outA", z: "flow", type: "helper" },
        { id: "outB", z: "flow", type: "helper" },
        tab,
      ],
    );
    await Promise.all([waitForStatus(helper.getNode("a"), isConnected), waitForStatus(helper.getNode("b"), isConnected)]);
    assert.equal(adapterOf().simulation!.controller.connectionCount, 1, "one link for both nodes");
    const count = 200;
    const received = Promise.all([collectMessages(helper.getNode("outA"), count + 1), collectMessages(helper.getNode("outB"), count + 1)]);
    await burstThenMarker(simulatedSensor(), count);
    const [a, b] = await received;
    assert.deepEqual(payloads(a), bursts(count, 1), "node a: every value the sensor sent, once, in order");
    assert.deepEqual(payloads(b), bursts(count, 1), "node b: every value the sensor sent, once, in order");
    assert.equal(adapterOf().simulation!.controller.connectionCount, 1, "still one link for both nodes");
  });

  it("a node that closes while another keeps the sensor sends nothing more (its listener goes with it)", async () => {
    // Periodic measurements off: only the numbered bursts travel.
    const scenario = writeScenario({ peripherals: [{ kind: "heart-rate", address: HR, name: "closing", bpm: [60], intervalMs: 3600000 }] });
    await loadFlow(
      [bleConfigNode, heartRateNode],
      [
        simConfig({ simScenario: scenario }),
        hrNode("a", { address: HR, wires: [["outA"]] }),
        hrNode("b", { address: HR, wires: [["outB"]] }),
        { id: "outA", z: "flow", type: "helper" },
        { id: "outB", z: "flow", type: "helper" },
        tab,
      ],
    );
    const a = helper.getNode("a");
    await Promise.all([waitForStatus(a, isConnected), waitForStatus(helper.getNode("b"), isConnected)]);
    const sensor = simulatedSensor();
    const before = Promise.all([collectMessages(helper.getNode("outA"), 1), collectMessages(helper.getNode("outB"), 1)]);
    await sensor.sendBurst(1);
    assert.deepEqual((await before).map(payloads), [[0], [0]], "both nodes receive while both are open");
    await (a as unknown as { close(removed: boolean): Promise<void> }).close(true);
    const outA: NodeMessage[] = [];
    helper.getNode("outA").on("input", (msg: NodeMessage) => outA.push(msg));
    // b gets the whole burst and then the marker: by then anything the closed node would send has arrived (both
    // nodes' listeners run on the same notification, and Node-RED delivers each node's messages in order).
    const count = 100;
    const received = collectMessages(helper.getNode("outB"), count + 1);
    await burstThenMarker(sensor, count);
    assert.deepEqual(payloads(await received), bursts(count, 1), "the other node receives the next values, none lost or repeated");
    assert.equal(adapterOf().simulation!.controller.connectionCount, 1, "the other node still holds the link");
    assert.deepEqual(payloads(outA), [], "the closed node's output stays silent");
  });

  it("shows reconnecting when the sensor powers off, and resumes messages when it is back", async () => {
    // Distinct values, so each message shows which measurement it is.
    const bpm = Array.from({ length: 12 }, (_, i) => 60 + i);
    const scenario = writeScenario({ peripherals: [{ kind: "heart-rate", address: HR, name: "reconnects", bpm, intervalMs: 1000 }] });
    await loadFlow([bleConfigNode, heartRateNode], [simConfig({ simScenario: scenario, reconnectDelay: 200 }), hrNode("sensor"), sink, tab]);
    const node = helper.getNode("sensor");
    const first = collectMessages(helper.getNode("out"), 2);
    await waitForStatus(node, isConnected);
    assert.deepEqual(payloads(await first), cycle(bpm, 0, 2));
    const controller = adapterOf().simulation!.controller;
    const sensor = simulatedSensor();
    const reconnecting = waitForStatus(node, (s) => s.fill === "yellow" && /reconnecting/.test(String(s.text)));
    controller.powerOff(HR);
    await reconnecting;
    const connectedAgain = waitForStatus(node, isConnected, 20000);
    controller.powerOn(HR);
    await connectedAgain;
    // Subscribed again; the sensor's next measurement comes one interval later and continues its list.
    const from = sensor.measurementsSent;
    const msgs = (await collectMessages(helper.getNode("out"), 3)) as HeartRateMsg[];
    assert.deepEqual(payloads(msgs), cycle(bpm, from, 3), "the measurements taken after the reconnection, in order");
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
