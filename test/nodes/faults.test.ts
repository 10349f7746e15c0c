/**
 * Faults (issue 6): peripherals that power off at the worst moments, an adapter that goes away, peripherals that
 * misbehave, and Node-RED redeploying or stopping under a running flow. Every test asserts what a user sees:
 * the node's status, Catch-able errors, messages resuming, and on the simulated radio no duplicate links and
 * the other peripherals unaffected. Simulated time runs 20× faster (`simTimeScale`), so "30 s" is 1.5 s.
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import type { Node, NodeMessage, NodeStatus } from "node-red";
import bleConfigNode = require("../../src/ble-config");
import heartRateNode = require("../../src/heart-rate");
import hiokiMeterNode = require("../../src/hioki-meter");
import nusYmodemReceiveNode = require("../../src/nus-ymodem-receive");
import { openAdapterCount } from "../../src/ble/registry";
import { AttError, AttOpcode } from "../../src/protocol/att";
import type { BleConfigNode } from "../../src/red/ble-config-node";
import type { VirtualController } from "../../src/sim/controller";
import { hciPeerCount } from "../../src/ble/hci-peer";
import { GattPeripheral } from "../../src/sim/peripheral";
import { generateFileContent, NusYmodemPeripheral } from "../../src/sim/peripherals/nus-ymodem";
import { openVirtualSerialPort } from "../../src/sim/pty";
import { parseScenario, Simulation } from "../../src/sim/scenario";
import type { PeripheralLink, VirtualPeripheral } from "../../src/sim/types";
import { collectMessages, helper, isConnected, loadFlow, waitForStatus, type FlowNode, useNodeRed } from "../support/red";

const HR = "d8:75:ba:00:00:01";
const METER = "a4:9e:69:00:00:01";
const NUS = "e3:c3:5c:00:00:01";
const SCALE = 20;

interface CaughtMsg extends NodeMessage {
  error: { message: string };
  tag?: number;
}

interface FileMsg extends NodeMessage {
  payload: Buffer;
  stats: { mtu: number };
}

const tempDirs: string[] = [];

function writeScenario(scenario: unknown): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ble-faults-"));
  tempDirs.push(dir);
  const file = path.join(dir, "scenario.json");
  fs.writeFileSync(file, JSON.stringify(scenario));
  return file;
}

const hrPeripheral = (extra: Record<string, unknown> = {}): Record<string, unknown> => ({ kind: "heart-rate", address: HR, name: "44278-33", bpm: [60, 61, 62], intervalMs: 500, ...extra });
const meterPeripheral = (extra: Record<string, unknown> = {}): Record<string, unknown> => ({ kind: "hioki-dt4261", address: METER, name: "Z3210V2.10:DT4261#000000001", values: [1, 2, 3], ...extra });
const nusPeripheral = (extra: Record<string, unknown> = {}): Record<string, unknown> => ({ kind: "nus-ymodem", address: NUS, name: "mpy-nus", filename: "log.bin", sizeBytes: 20000, seed: 3, ...extra });

const z = "f1";
const on = { z, x: 100, y: 100 };
const tab: FlowNode = { id: z, type: "tab", label: "faults" };

function config(scenario: unknown, extra: Record<string, unknown> = {}): FlowNode {
  return { id: "cfg", type: "ble-config", transport: "simulator", simScenario: writeScenario(scenario), simTimeScale: SCALE, reconnectDelay: 100, ...extra };
}
const hrNode = (extra: Record<string, unknown> = {}): FlowNode => ({ id: "hr", ...on, type: "heart-rate", ble: "cfg", address: HR, deviceName: "", topic: "hr", wires: [["outHr"]], ...extra });
const meterNode = (extra: Record<string, unknown> = {}): FlowNode => ({ id: "meter", ...on, type: "hioki-meter", ble: "cfg", address: METER, deviceName: "", command: "FETC?", interval: 100, replyTimeout: 2000, wires: [["outMeter"]], ...extra });
const nusNode = (extra: Record<string, unknown> = {}): FlowNode => ({ id: "dl", ...on, type: "nus-ymodem-receive", ble: "cfg", address: NUS, deviceName: "", blockTimeout: 1000, retries: 10, wires: [["outDl"]], ...extra });
/** Output helpers and a catch node (all nodes of the tab) feeding a helper. */
const sinks = (): FlowNode[] => [
  { id: "outHr", ...on, type: "helper" },
  { id: "outMeter", ...on, type: "helper" },
  { id: "outDl", ...on, type: "helper" },
  { id: "catch", ...on, type: "catch", scope: null, uncaught: false, wires: [["caught"]] },
  { id: "caught", ...on, type: "helper" },
];
const MODULES = [bleConfigNode, heartRateNode, hiokiMeterNode, nusYmodemReceiveNode];

/** The three kinds on one adapter, with their nodes. */
async function loadAll(scenarioExtra: Record<string, unknown> = {}, configExtra: Record<string, unknown> = {}): Promise<VirtualController> {
  await loadFlow(MODULES, [tab, config({ peripherals: [hrPeripheral(), meterPeripheral(), nusPeripheral()], ...scenarioExtra }, configExtra), hrNode(), meterNode(), nusNode(), ...sinks()]);
  return controller();
}

function controller(): VirtualController {
  const cfg = helper.getNode("cfg") as BleConfigNode;
  assert.ok(cfg.adapter?.simulation, "simulator adapter");
  return cfg.adapter.simulation.controller;
}

function peripheral(c: VirtualController, address: string): GattPeripheral {
  const p = c.peripheral(address);
  assert.ok(p instanceof GattPeripheral, `peripheral ${address}`);
  return p;
}

/** Sends an ATT PDU the peripheral would not send itself, on its current link. */
function injectAtt(p: GattPeripheral, pdu: Buffer): Promise<void> {
  assert.ok(p.isConnected, `${p.address} is connected`);
  return p.injectAtt(pdu);
}

/** Intercepts every ATT PDU the central sends to `p`; `pass()` hands it to the peripheral as usual. */
function tapAtt(p: VirtualPeripheral, tap: (pdu: Buffer, pass: () => void) => void): void {
  const original = p.receiveAtt.bind(p);
  p.receiveAtt = (pdu: Buffer): void => tap(pdu, () => original(pdu));
}

/** Makes `address` be powered off (the scenario's event at atMs 0 may still be pending when the flow is loaded). */
async function poweredOff(c: VirtualController, address: string): Promise<void> {
  while (c.isPoweredOn(address)) await once(c, "power");
}

/** Powers `address` on after `ms` of simulated time. */
function powerOnAfter(c: VirtualController, address: string, ms: number): void {
  c.clock.setTimeout(() => c.powerOn(address), ms);
}

/** Records the largest number of simultaneous links, and links to the same address at once, while it runs. */
function watchLinks(c: VirtualController, peripherals: number): () => void {
  let max = 0;
  const onEvent = (): void => {
    max = Math.max(max, c.connectionCount);
  };
  c.on("connectionEvent", onEvent);
  c.on("power", onEvent);
  return () => {
    c.off("connectionEvent", onEvent);
    c.off("power", onEvent);
    assert.ok(max <= peripherals, `at most ${peripherals} links at once (saw ${max})`);
  };
}

/** Counts the messages a helper node receives from now on. */
function counter(id: string): { readonly count: number } {
  const state = { count: 0 };
  helper.getNode(id).on("input", () => state.count++);
  return state;
}

const node = (id: string): Node => helper.getNode(id);
const isReconnecting = (s: NodeStatus): boolean => s.fill === "yellow" && /reconnecting/.test(String(s.text));

/** The links up after the flow recovered: every device node connected, each peripheral on one link. */
async function allConnected(c: VirtualController): Promise<void> {
  await Promise.all([waitForStatus(node("hr"), isConnected, 20000), waitForStatus(node("meter"), isConnected, 20000)]);
  assert.equal(c.isConnected(HR), true);
  assert.equal(c.isConnected(METER), true);
  assert.equal(c.connectionCount, 2, "one link each to the sensor and the meter, nothing else");
}

describe("faults (Node-RED runtime + simulator through noble)", function () {
  this.timeout(30000);

  useNodeRed();
  after(() => {
    for (const dir of tempDirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
  });

  describe("a peripheral powers off", () => {
    it("mid-stream (heart rate): reconnecting, the meter keeps delivering, messages resume 1 s later on one link", async () => {
      const c = await loadAll();
      await allConnected(c);
      const links = watchLinks(c, 3);
      const meterMsgs = counter("outMeter");
      const reconnecting = waitForStatus(node("hr"), isReconnecting);
      c.powerOff(HR);
      await reconnecting;
      const during = meterMsgs.count;
      await collectMessages(node("outMeter"), 3);
      assert.ok(meterMsgs.count >= during + 3, "the meter delivers while the sensor is away");
      powerOnAfter(c, HR, 1000);
      await collectMessages(node("outHr"), 2, 20000);
      await allConnected(c);
      links();
    });

    it("and comes back after 30 s (simulated): still retrying on its own, then delivering", async () => {
      const c = await loadAll();
      await allConnected(c);
      const links = watchLinks(c, 3);
      const reconnecting = waitForStatus(node("hr"), isReconnecting);
      c.powerOff(HR);
      await reconnecting;
      const offAt = c.clock.now();
      powerOnAfter(c, HR, 30000);
      await collectMessages(node("outHr"), 2, 20000);
      assert.ok(c.clock.now() - offAt >= 30000, "the messages are from after the power-on");
      await allConnected(c);
      links();
    });

    it("flapping ten times in a minute: every message afterwards, one link, the meter never stops", async function () {
      this.timeout(60000);
      const c = await loadAll();
      await allConnected(c);
      const links = watchLinks(c, 3);
      const meterMsgs = counter("outMeter");
      let flips = 0;
      const lastPowerOn = new Promise<void>((resolve) => {
        const flip = (): void => {
          if (++flips === 20) resolve();
        };
        for (let i = 0; i < 10; i++) {
          c.clock.setTimeout(() => {
            c.powerOff(HR);
            flip();
          }, i * 6000 + 1000);
          c.clock.setTimeout(() => {
            c.powerOn(HR);
            flip();
          }, i * 6000 + 4000);
        }
      });
      // After the last power-on (at 58 s) the sensor reconnects and delivers again.
      await lastPowerOn;
      const before = meterMsgs.count;
      await collectMessages(node("outHr"), 2, 20000);
      await allConnected(c);
      // Polled every 100 ms for 3 s of real time: about 30 readings; a stalled pool would give none after the first flap.
      assert.ok(before >= 10, `the meter kept delivering during the minute (${before} readings)`);
      links();
    });

    it("a command write never answered (meter) is a Catch-able error naming the write's timeout in words, not a reason code", async () => {
      const c = await loadAll({}, { gattTimeout: 500 });
      await allConnected(c);
      const caught = collectMessages(node("caught"), 1, 20000);
      tapAtt(peripheral(c, METER), (pdu, pass) => {
        if (!(pdu[0] === AttOpcode.WriteRequest && pdu.subarray(3).toString("latin1").startsWith("*IDN?"))) pass();
      });
      node("meter").receive({ payload: "*IDN?", tag: 6 } as NodeMessage);
      const [err] = (await caught) as CaughtMsg[];
      assert.equal(err.tag, 6);
      assert.match(err.error.message, /writing "\*IDN\?" to the meter failed: writing 78b028ce-affd-4967-ab9e-dc336c8c94e7 timed out after 500 ms$/);
    });

    it("mid-poll (meter): the command in flight is a Catch-able error, the meter reconnects and polling resumes", async () => {
      const c = await loadAll({}, {});
      await allConnected(c);
      const meter = peripheral(c, METER);
      const caught = collectMessages(node("caught"), 1);
      // Power off the moment the command reaches the meter: its reply never comes.
      tapAtt(meter, (pdu, pass) => {
        if (pdu[0] === AttOpcode.WriteRequest && pdu.subarray(3).toString("latin1").startsWith("*IDN?")) c.powerOff(METER);
        else pass();
      });
      node("meter").receive({ payload: "*IDN?", tag: 5 } as NodeMessage);
      const [err] = (await caught) as CaughtMsg[];
      assert.equal(err.tag, 5, "the error carries the message in flight");
      assert.match(err.error.message, /connection lost|no reply/);
      await waitForStatus(node("meter"), isReconnecting);
      powerOnAfter(c, METER, 1000);
      await collectMessages(node("outMeter"), 2, 20000);
      await allConnected(c);
    });

    it("mid-file (nus): a Catch-able error; the others keep delivering; the next download succeeds on a fresh link", async () => {
      const c = await loadAll({ peripherals: [hrPeripheral(), meterPeripheral(), nusPeripheral({ sizeBytes: 400_000 })] });
      await allConnected(c);
      const caught = collectMessages(node("caught"), 1, 20000);
      const progress = waitForStatus(node("dl"), (s) => /\d+%/.test(String(s.text)), 20000);
      node("dl").receive({ payload: true, tag: 1 } as NodeMessage);
      await progress;
      c.powerOff(NUS);
      const [err] = (await caught) as CaughtMsg[];
      assert.equal(err.tag, 1);
      assert.match(err.error.message, /disconnected during the file/);
      await Promise.all([collectMessages(node("outHr"), 2), collectMessages(node("outMeter"), 2)]);
      assert.equal(c.isConnected(NUS), false);
      c.powerOn(NUS);
      const file = collectMessages(node("outDl"), 1, 30000);
      node("dl").receive({ payload: true, tag: 2 } as NodeMessage);
      const [msg] = (await file) as FileMsg[];
      assert.ok(msg.payload.equals(generateFileContent(400_000, 3)));
      assert.ok(isConnected(await waitForStatus(node("hr"), isConnected)) && isConnected(await waitForStatus(node("meter"), isConnected)));
      assert.ok(c.connectionCount <= 3);
    });

    it("during connection setup (right after LE Connection Complete): no connected status, a retry connects once it is back", async () => {
      const c = await loadAll({ events: [{ atMs: 0, address: HR, action: "power-off" }] });
      await poweredOff(c, HR);
      const hr = peripheral(c, HR);
      const connected = hr.connected.bind(hr);
      let cut = 0;
      hr.connected = (link: PeripheralLink): void => {
        connected(link);
        if (cut++ === 0) {
          c.powerOff(HR);
          powerOnAfter(c, HR, 1000);
        }
      };
      const statuses: NodeStatus[] = [];
      const onStatus = (call: { args: NodeStatus[] }): void => void statuses.push(call.args[0]);
      (node("hr") as unknown as NodeJS.EventEmitter).on("call:status", onStatus);
      c.powerOn(HR);
      await collectMessages(node("outHr"), 2, 20000);
      assert.equal(cut, 2, "a second connection after the lost one");
      const firstConnected = statuses.findIndex(isConnected);
      assert.ok(statuses.slice(0, firstConnected).some((s) => s.fill === "yellow" && /reconnecting|connecting/.test(String(s.text))));
      await allConnected(c);
    });

    it("during service discovery (the first Read By Group Type): a clear status, then it connects once back", async () => {
      const c = await loadAll({ events: [{ atMs: 0, address: HR, action: "power-off" }] });
      await poweredOff(c, HR);
      let cut = false;
      tapAtt(peripheral(c, HR), (pdu, pass) => {
        if (!cut && pdu[0] === AttOpcode.ReadByGroupTypeRequest) {
          cut = true;
          c.powerOff(HR);
          powerOnAfter(c, HR, 1000);
          return;
        }
        pass();
      });
      const lost = waitForStatus(node("hr"), (s) => isReconnecting(s) || s.fill === "red", 20000);
      c.powerOn(HR);
      const status = await lost;
      assert.ok(cut, "discovery was cut");
      assert.match(String(status.text), /reconnecting|timed out|disconnected|lost/);
      await collectMessages(node("outHr"), 2, 20000);
      await allConnected(c);
    });
  });

  describe("the adapter goes away", () => {
    it("closing the uart port under a running flow shows the adapter error on every node; unloading stops everything", async () => {
      const simulation = new Simulation(parseScenario({ peripherals: [hrPeripheral(), meterPeripheral()] }, ""), { timeScale: SCALE });
      simulation.start();
      const port = await openVirtualSerialPort(simulation.controller);
      try {
        await loadFlow(MODULES, [tab, { id: "cfg", type: "ble-config", transport: "uart", uartPort: port.path, uartBaudRate: 1000000, reconnectDelay: 100 }, hrNode(), meterNode(), ...sinks()]);
        await Promise.all([waitForStatus(node("hr"), isConnected, 20000), waitForStatus(node("meter"), isConnected, 20000)]);
        await collectMessages(node("outHr"), 1);
        const adapterError = (s: NodeStatus): boolean => s.fill === "red" && String(s.text).includes("HCI UART (uartPort)");
        const errors = Promise.all([waitForStatus(node("hr"), adapterError, 20000), waitForStatus(node("meter"), adapterError, 20000)]);
        await port.close();
        const [status] = await errors;
        // The pty is gone as an unplugged dongle is: "no such file" once its device node has gone, else "closed".
        assert.match(String(status.text), /closed or not answering|no such file \(ENOENT\)/);
        // An input while the adapter is gone is refused at once, as a Catch-able error.
        const caught = collectMessages(node("caught"), 1);
        node("meter").receive({ payload: "*IDN?" });
        const [err] = (await caught) as CaughtMsg[];
        assert.match(err.error.message, /not connected/);
        await helper.unload();
        assert.equal(openAdapterCount(), 0);
      } finally {
        await port.close();
        simulation.close();
      }
    });
  });

  describe("the adapter comes back", () => {
    it("a uart adapter that closes and reappears at its path is reopened: nodes recover without a redeploy", async () => {
      const simulation = new Simulation(parseScenario({ peripherals: [hrPeripheral()] }, ""), { timeScale: SCALE });
      simulation.start();
      // A stable device path in front of the pty, as udev gives a dongle (/dev/serial/by-id/...).
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ble-uart-"));
      const devicePath = path.join(dir, "ttyBLE");
      let port = await openVirtualSerialPort(simulation.controller);
      fs.symlinkSync(port.path, devicePath);
      try {
        await loadFlow(MODULES, [tab, { id: "cfg", type: "ble-config", transport: "uart", uartPort: devicePath, uartBaudRate: 1000000, reconnectDelay: 100 }, hrNode(), ...sinks()]);
        await waitForStatus(node("hr"), isConnected, 20000);
        await collectMessages(node("outHr"), 1);
        const gone = waitForStatus(node("hr"), (s) => s.fill === "red" && String(s.text).includes("HCI UART (uartPort)"), 20000);
        await port.close();
        fs.unlinkSync(devicePath);
        await gone;
        // The dongle is plugged in again: a new device behind the same path.
        const back = waitForStatus(node("hr"), isConnected, 30000);
        port = await openVirtualSerialPort(simulation.controller);
        fs.symlinkSync(port.path, devicePath);
        await back;
        const [msg] = await collectMessages(node("outHr"), 1);
        assert.equal((msg as NodeMessage & { peripheral: { address: string } }).peripheral.address, HR);
        await helper.unload();
        assert.equal(openAdapterCount(), 0);
      } finally {
        await port.close();
        simulation.close();
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });
  });

  describe("the peripheral misbehaves", () => {
    it("a notification before the subscription is confirmed: delivered once, in order, no error, and the stream goes on", async () => {
      const c = await loadAll({ peripherals: [hrPeripheral({ bpm: [60] })], events: [{ atMs: 0, address: HR, action: "power-off" }] });
      await poweredOff(c, HR);
      const hr = peripheral(c, HR);
      const handles = hr.gatt.handlesOf("2a37");
      tapAtt(hr, (pdu, pass) => {
        if (pdu[0] === AttOpcode.WriteRequest && pdu.readUInt16LE(1) === handles.cccd) {
          // Flags 0 (uint8 bpm), 99 bpm: queued before the Write Response, so noble sees it first.
          const value = Buffer.of(AttOpcode.HandleValueNotification, 0, 0, 0x00, 99);
          value.writeUInt16LE(handles.value, 1);
          void injectAtt(hr, value);
        }
        pass();
      });
      const msgs = collectMessages(node("outHr"), 3);
      const errors = counter("caught");
      c.powerOn(HR);
      const payloads = (await msgs).map((m) => m.payload);
      // The pool listens before it writes the CCCD, so the early value arrives, once, first.
      assert.deepEqual(payloads, [99, 60, 60]);
      assert.equal(errors.count, 0, "no error");
      await waitForStatus(node("hr"), isConnected);
    });

    it("a subscription never confirmed (CCCD write unanswered) ends in a clear error status after the configured GATT timeout and a retry, never a hang", async () => {
      const c = await loadAll({ peripherals: [hrPeripheral(), meterPeripheral()], events: [{ atMs: 0, address: METER, action: "power-off" }] }, { gattTimeout: 1500 });
      await poweredOff(c, METER);
      const meter = peripheral(c, METER);
      const cccd = meter.gatt.handlesOf("78b028ce-affd-4967-ab9e-dc336c8c94e7").cccd;
      let swallowed = 0;
      tapAtt(meter, (pdu, pass) => {
        if (pdu[0] === AttOpcode.WriteRequest && pdu.readUInt16LE(1) === cccd && swallowed === 0) swallowed++;
        else pass();
      });
      const error = waitForStatus(node("meter"), (s) => s.fill === "red", 20000);
      c.powerOn(METER);
      const status = await error;
      assert.match(String(status.text), /subscribing to 78b028ce-affd-4967-ab9e-dc336c8c94e7 timed out after 1500 ms \(retry in \d+ s\)/);
      // The retry subscribes normally and polling starts; the sensor was never disturbed.
      await collectMessages(node("outMeter"), 2, 20000);
      await allConnected(c);
    });

    it("indications never confirmed (the confirmations are lost): the meter falls silent, the node says so without hanging, and recovers with a new link", async () => {
      const c = await loadAll({ peripherals: [hrPeripheral(), meterPeripheral()] });
      const meter = peripheral(c, METER);
      let lose = true;
      tapAtt(meter, (pdu, pass) => {
        if (pdu[0] === AttOpcode.HandleValueConfirmation && lose) return;
        pass();
      });
      // The first reply gets through; without its confirmation the meter may not indicate again.
      await collectMessages(node("outMeter"), 1, 20000);
      await waitForStatus(node("meter"), (s) => s.fill === "yellow" && /no reply/.test(String(s.text)), 20000);
      const caught = collectMessages(node("caught"), 1, 20000);
      node("meter").receive({ payload: "FETC?" });
      const [err] = (await caught) as CaughtMsg[];
      assert.match(err.error.message, /no reply|timed out/i);
      // A new link starts with no indication outstanding.
      lose = false;
      c.powerOff(METER);
      await waitForStatus(node("meter"), (s) => s.fill === "yellow" && /reconnecting|connecting/.test(String(s.text)), 20000);
      c.powerOn(METER);
      await waitForStatus(node("meter"), isConnected, 20000);
      await collectMessages(node("outMeter"), 2, 20000);
      await allConnected(c);
    });

    it("a truncated indication is confirmed all the same (the guard passes it on naming no attribute), so the meter's next replies still arrive", async () => {
      await loadFlow(MODULES, [tab, config({ peripherals: [meterPeripheral()] }), meterNode({ interval: 0 }), ...sinks()]);
      const c = controller();
      await waitForStatus(node("meter"), isConnected, 20000);
      const meter = peripheral(c, METER);
      // Polling is off: no real indication is outstanding, so a confirmation now can only answer ours.
      let confirmations = 0;
      const waiting = new Map<number, () => void>();
      const confirmation = (n: number): Promise<void> => (confirmations >= n ? Promise.resolve() : new Promise((resolve) => waiting.set(n, resolve)));
      tapAtt(meter, (pdu, pass) => {
        if (pdu[0] !== AttOpcode.HandleValueConfirmation) return pass();
        confirmations++;
        waiting.get(confirmations)?.();
        // The meter's GATT server never sent our indication: it does not see its confirmation.
        if (confirmations > 1) pass();
      });
      const warnings: string[] = [];
      const onWarning = (w: Error & { code?: string }): void => {
        if (w.code === "BLE_MALFORMED_ATT") warnings.push(w.message);
      };
      process.on("warning", onWarning);
      try {
        void injectAtt(meter, Buffer.of(AttOpcode.HandleValueIndication, 0x03));
        await confirmation(1);
        const out = collectMessages(node("outMeter"), 1, 20000);
        node("meter").receive({ payload: "FETC?" });
        const [msg] = await out;
        assert.equal(msg.payload, 1);
        await confirmation(2); // the reply's, as for any indication
        assert.equal(warnings.length, 1);
        assert.match(warnings[0], /ATT opcode 0x1d needs at least 3 bytes, got 2; passed on as an indication of handle 0x0000/);
      } finally {
        process.off("warning", onWarning);
      }
    });

    it("an MTU exchange refused (Request Not Supported): the file still arrives, at MTU 23", async () => {
      const c = await loadAll({ peripherals: [nusPeripheral()], events: [{ atMs: 0, address: NUS, action: "power-off" }] });
      await poweredOff(c, NUS);
      const nus = peripheral(c, NUS);
      let refused = 0;
      tapAtt(nus, (pdu, pass) => {
        if (pdu[0] !== AttOpcode.ExchangeMtuRequest) return pass();
        refused++;
        void injectAtt(nus, Buffer.of(AttOpcode.ErrorResponse, AttOpcode.ExchangeMtuRequest, 0, 0, AttError.RequestNotSupported));
      });
      c.powerOn(NUS);
      const file = collectMessages(node("outDl"), 1, 30000);
      node("dl").receive({ payload: true } as NodeMessage);
      const [msg] = (await file) as FileMsg[];
      assert.ok(refused >= 1, "the MTU request was refused");
      assert.ok(msg.payload.equals(generateFileContent(20000, 3)));
      assert.equal(msg.stats.mtu, 23);
    });

    it("a characteristic missing (a Z3210 name without the command channel): a clear error status, retried with a doubling backoff", async () => {
      // A heart-rate sensor that calls itself a Z3210: the meter node finds it, but not its command characteristic.
      // reconnectDelay 1000 ms, so that each backoff shows in the status's whole seconds: 1 s, 2 s, 4 s.
      await loadFlow(MODULES, [tab, config({ peripherals: [hrPeripheral({ address: METER, name: "Z3210V2.10:DT4261#1" })] }, { reconnectDelay: 1000 }), meterNode(), ...sinks()]);
      for (const seconds of [1, 2, 4]) {
        const error = await waitForStatus(node("meter"), (s) => s.fill === "red", 20000);
        assert.match(String(error.text), new RegExp(`no Z3210 command characteristic 78b028ce-affd-4967-ab9e-dc336c8c94e7 on this device \\(retry in ${seconds} s\\)`));
        assert.ok(controller().connectionCount <= 1, "never more than the one link to the wrong device");
        // Retried: the status goes through connecting again before the next error.
        if (seconds < 4) await waitForStatus(node("meter"), (s) => s.fill === "yellow", 20000);
      }
    });

    it("a service that appears only after reconnect: an error status first, then the stream", async () => {
      const c = await loadAll({ peripherals: [hrPeripheral()], events: [{ atMs: 0, address: HR, action: "power-off" }] });
      await poweredOff(c, HR);
      const hr = peripheral(c, HR);
      // The first connection sees no heart-rate service (a firmware that starts it late); the table is rebuilt
      // for the next connection, with the service.
      hr.hideServices(true);
      const missing = waitForStatus(node("hr"), (s) => s.fill === "red", 20000);
      c.powerOn(HR);
      const status = await missing;
      assert.match(String(status.text), /characteristic 2a37 of service 180d not found/);
      hr.hideServices(false);
      await collectMessages(node("outHr"), 2, 20000);
      await waitForStatus(node("hr"), isConnected);
      assert.equal(c.connectionCount, 1);
    });
  });

  describe("Node-RED redeploys and stops", () => {
    /** Baseline of process-wide listeners noble adds per adapter, taken with no BLE node loaded. */
    async function baseline(): Promise<{ sigint: number; exit: number }> {
      await loadFlow([], [tab]);
      await helper.unload();
      return { sigint: process.listenerCount("SIGINT"), exit: process.listenerCount("exit") };
    }

    function assertNothingLeft(base: { sigint: number; exit: number }): void {
      assert.equal(openAdapterCount(), 0, "no adapter open");
      assert.equal(hciPeerCount(), 0, "no simulator registered");
      assert.equal(process.listenerCount("SIGINT"), base.sigint, "SIGINT listeners back to baseline");
      assert.equal(process.listenerCount("exit"), base.exit, "exit listeners back to baseline");
    }

    for (const type of ["full", "nodes", "flows"] as const) {
      it(`a "${type}" redeploy during a file transfer ends the transfer, and the redeployed flow downloads again`, async function () {
        this.timeout(60000);
        const base = await baseline();
        const scenario = { peripherals: [hrPeripheral(), nusPeripheral({ sizeBytes: 400_000 })] };
        const cfg = config(scenario);
        const flow = (topic: string): FlowNode[] => [tab, cfg, hrNode(), nusNode({ topic }), ...sinks()];
        await loadFlow(MODULES, flow("before"));
        const c = controller();
        const nus = peripheral(c, NUS);
        assert.ok(nus instanceof NusYmodemPeripheral);
        const progress = waitForStatus(node("dl"), (s) => /\d+%/.test(String(s.text)), 20000);
        node("dl").receive({ payload: true } as NodeMessage);
        await progress;
        // The nus node is changed: "nodes" and "flows" restart it (and leave the config node), "full" restarts all.
        await helper.setFlows(flow("after") as Parameters<typeof helper.setFlows>[0], type);
        if (type !== "full") {
          assert.equal(controller(), c, "the adapter stayed");
          assert.equal(c.isConnected(NUS), false, "the download's link was closed by the redeploy");
          assert.ok(nus.transfers.length >= 1 && nus.transfers[0].outcome !== "done");
        } else {
          assert.equal(c.isClosed, true, "the old simulator is closed");
          assert.equal(c.connectionCount, 0);
        }
        const file = collectMessages(node("outDl"), 1, 30000);
        node("dl").receive({ payload: true } as NodeMessage);
        const [msg] = (await file) as FileMsg[];
        assert.equal(msg.topic, "after");
        assert.ok(msg.payload.equals(generateFileContent(400_000, 3)));
        const last = controller();
        let linksAtClose = -1;
        const close = last.close.bind(last);
        last.close = (): void => {
          linksAtClose = last.connectionCount;
          close();
        };
        await helper.unload();
        assert.equal(linksAtClose, 0, "every link was disconnected before the simulator stopped");
        assertNothingLeft(base);
      });
    }

    it("a redeploy during a connection attempt (discovery unanswered) ends it cleanly; the new flow connects once", async () => {
      const base = await baseline();
      const cfg = config({ peripherals: [hrPeripheral()], events: [{ atMs: 0, address: HR, action: "power-off" }] });
      await loadFlow(MODULES, [tab, cfg, hrNode(), ...sinks()]);
      const c = controller();
      await poweredOff(c, HR);
      // The first service discovery request goes unanswered: the attempt hangs in "connecting" (until the pool's timeout).
      let stalled = false;
      let stall!: () => void;
      const stalledNow = new Promise<void>((resolve) => (stall = resolve));
      tapAtt(peripheral(c, HR), (pdu, pass) => {
        if (!stalled && pdu[0] === AttOpcode.ReadByGroupTypeRequest) {
          stalled = true;
          stall();
          return;
        }
        pass();
      });
      c.powerOn(HR);
      await stalledNow;
      assert.match(String((await waitForStatus(node("hr"), (s) => s.fill === "yellow")).text), /connecting/);
      await helper.setFlows([tab, cfg, hrNode({ topic: "new" }), ...sinks()] as Parameters<typeof helper.setFlows>[0], "nodes");
      assert.equal(controller(), c, "same adapter");
      const [msg] = await collectMessages(node("outHr"), 1, 20000);
      assert.equal(msg.topic, "new");
      assert.equal(c.connectionCount, 1, "one link: the abandoned attempt left none behind");
      await helper.unload();
      assertNothingLeft(base);
    });

    it("stopping Node-RED while connected disconnects every link and leaks nothing", async () => {
      const base = await baseline();
      const c = await loadAll();
      await allConnected(c);
      let linksAtClose = -1;
      const close = c.close.bind(c);
      c.close = (): void => {
        linksAtClose = c.connectionCount;
        close();
      };
      await helper.unload();
      assert.equal(linksAtClose, 0, "the links were disconnected before the simulator stopped");
      assert.equal(c.isClosed, true);
      assert.equal(c.connectionCount, 0);
      assertNothingLeft(base);
    });
  });
});
