/**
 * The `bluez` transport against a real dbus-daemon (Debian `dbus`) on a private bus, with python3-dbusmock's
 * bluez5 template standing in for bluetoothd: the nodes run in Node-RED, noble's own D-Bus binding talks to the
 * mock in real D-Bus messages, and the test drives the mock (devices, values, failures) over the same bus.
 * Missing dbus-daemon or python3-dbusmock fails the tests, naming the package.
 */
import assert from "node:assert/strict";
import * as path from "node:path";
import type { NodeMessage, NodeStatus } from "node-red";
import bleConfigNode = require("../../src/ble-config");
import heartRateNode = require("../../src/heart-rate");
import hiokiMeterNode = require("../../src/hioki-meter");
import { BluezMock, PrivateBus, requireDbusTools, type MockDevice } from "../support/bluez-mock";
import { collectMessages, helper, isConnected, loadFlow, translate, useNodeRed, waitForStatus, type FlowNode } from "../support/red";

const HR = "D8:75:BA:00:00:01";
const METER = "A4:9E:69:00:00:01";
const HEART_RATE_SERVICE = "0000180d-0000-1000-8000-00805f9b34fb";
const HEART_RATE_MEASUREMENT = "00002a37-0000-1000-8000-00805f9b34fb";
const Z3210_SERVICE = "275ce3d8-b906-4475-8dd7-76af0db742bf";
const Z3210_COMMAND = "78b028ce-affd-4967-ab9e-dc336c8c94e7";

const sensor: MockDevice = {
  adapter: "hci0",
  address: HR,
  name: "44278-33",
  services: [{ uuid: HEART_RATE_SERVICE, characteristics: [{ uuid: HEART_RATE_MEASUREMENT, flags: ["notify"] }] }],
};

/** The Z3210 answers each command written to it with an indication, as the adapter relays the DT4261's reply. */
const meter: MockDevice = {
  adapter: "hci0",
  address: METER,
  name: "Z3210V2.10:DT4261#000000001",
  services: [
    {
      uuid: Z3210_SERVICE,
      characteristics: [
        {
          uuid: Z3210_COMMAND,
          flags: ["write", "indicate"],
          onWrite:
            "self.UpdateProperties('org.bluez.GattCharacteristic1', " +
            "{'Value': dbus.Array([dbus.Byte(b) for b in b'+1.00000000E-04\\r\\n'], signature='y', variant_level=1)})",
        },
      ],
    },
  ],
};

const tab: FlowNode = { id: "f1", type: "tab", label: "bluez" };
const on = { z: "f1", x: 100, y: 100 };
const config = (extra: Record<string, unknown> = {}): FlowNode => ({
  id: "cfg",
  type: "ble-config",
  transport: "bluez",
  bluezAdapter: "hci0",
  connectTimeout: 2000,
  reconnectDelay: 100,
  gattTimeout: 2000,
  ...extra,
});
const hrNode: FlowNode = { id: "hr", type: "heart-rate", ...on, ble: "cfg", address: HR.toLowerCase(), deviceName: "", topic: "hr", wires: [["hr-out"]] };
const meterNode: FlowNode = { id: "meter", type: "hioki-meter", ...on, ble: "cfg", address: "", deviceName: "Z3210", command: "FETC?", interval: 200, replyTimeout: 1000, topic: "meter", wires: [["meter-out"]] };
const sink = (id: string): FlowNode => ({ id, type: "helper", ...on });

const problem = (key: string, params: Record<string, string> = {}): string => translate(`ble-config.problem.${key}`, params);
const isRed = (text: string) => (s: NodeStatus) => s.fill === "red" && s.text === text;

/** A heart-rate measurement: flags 0x16 (8-bit value, contact detected), the value, one RR interval. */
const measurement = (bpm: number): Buffer => Buffer.from([0x16, bpm, 0x00, 0x04]);

describe("bluez transport (noble's D-Bus binding, a private dbus-daemon, python3-dbusmock's bluez5)", function () {
  this.timeout(60000);

  let bus: PrivateBus | null = null;
  let mock: BluezMock | null = null;
  const savedAddress = process.env.DBUS_SYSTEM_BUS_ADDRESS;

  before(() => {
    requireDbusTools();
  });

  useNodeRed();

  async function startBus(options: { denyBluez?: boolean } = {}): Promise<PrivateBus> {
    bus = await PrivateBus.start(options);
    // dbus-next, which noble's binding uses, connects to the system bus at this address.
    process.env.DBUS_SYSTEM_BUS_ADDRESS = bus.address;
    return bus;
  }

  afterEach(async () => {
    // useNodeRed's afterEach (registered first) has unloaded the flow and checked that the adapter is closed.
    await mock?.stop();
    mock = null;
    await bus?.stop();
    bus = null;
    if (savedAddress === undefined) delete process.env.DBUS_SYSTEM_BUS_ADDRESS;
    else process.env.DBUS_SYSTEM_BUS_ADDRESS = savedAddress;
  });

  it("connects to a heart-rate sensor, discovers it, subscribes, and delivers its notifications; the status does not say simulated", async () => {
    const b = await startBus();
    mock = await BluezMock.start(b);
    await mock.addAdapter("hci0");
    const device = await mock.addDevice(sensor);
    await loadFlow([bleConfigNode, heartRateNode], [tab, config(), hrNode, sink("hr-out")]);
    const status = await waitForStatus(helper.getNode("hr"), isConnected, 20000);
    assert.equal(status.text, translate("ble-config.status.connected"), "a real adapter's device is just connected");
    assert.equal((await mock.calls(device, "Connect")).length, 1);
    const charPath = await mock.characteristicPath(device, HEART_RATE_MEASUREMENT);
    assert.ok(await mock.isNotifying(charPath), "the node started notifications (StartNotify)");

    const received = collectMessages(helper.getNode("hr-out"), 3);
    for (const bpm of [61, 62, 63]) await mock.pushValue(charPath, measurement(bpm));
    const msgs = (await received) as (NodeMessage & { payload: number; heartRate: { rrIntervals: number[] }; peripheral: { address: string; name: string } })[];
    assert.deepEqual(
      msgs.map((m) => m.payload),
      [61, 62, 63],
    );
    assert.deepEqual(msgs[0].heartRate.rrIntervals, [1000]);
    assert.deepEqual(msgs[0].peripheral, { address: HR.toLowerCase(), name: "44278-33" });
  });

  it("writes a command to a HIOKI meter and takes its indicated reply", async () => {
    const b = await startBus();
    mock = await BluezMock.start(b);
    await mock.addAdapter("hci0");
    const device = await mock.addDevice(meter);
    await loadFlow([bleConfigNode, hiokiMeterNode], [tab, config(), meterNode, sink("meter-out")]);
    const [reading] = (await collectMessages(helper.getNode("meter-out"), 1, 20000)) as (NodeMessage & { raw: string; peripheral: { model: string } })[];
    assert.equal(reading.payload, 0.0001);
    assert.equal(reading.raw, "+1.00000000E-04");
    assert.equal(reading.peripheral.model, "DT4261");
    const charPath = await mock.characteristicPath(device, Z3210_COMMAND);
    const writes = await mock.calls(charPath, "WriteValue");
    assert.ok(writes.length >= 1);
    assert.equal(Buffer.from(writes[0][0] as number[]).toString(), "FETC?\r\n");
    const options = writes[0][1] as Record<string, { value: unknown }>;
    assert.equal(options.type?.value, "request", "a write with response, as the Z3210 needs");
  });

  it("reconnects to a device that goes out of range, leaves bluetoothd's cache, and comes back", async () => {
    const b = await startBus();
    mock = await BluezMock.start(b);
    await mock.addAdapter("hci0");
    let device = await mock.addDevice(sensor);
    await loadFlow([bleConfigNode, heartRateNode], [tab, config(), hrNode, sink("hr-out")]);
    const node = helper.getNode("hr");
    await waitForStatus(node, isConnected, 20000);

    await mock.setAway(device, true);
    await waitForStatus(node, (s) => s.fill === "yellow" && /reconnecting|connecting/.test(String(s.text)), 10000);
    await mock.removeDevice("hci0", device);
    // Attempts fail while it is gone; the node keeps trying.
    await waitForStatus(node, (s) => s.fill === "yellow" && /reconnecting/.test(String(s.text)), 10000);

    device = await mock.addDevice(sensor);
    await waitForStatus(node, isConnected, 30000);
    const charPath = await mock.characteristicPath(device, HEART_RATE_MEASUREMENT);
    assert.ok(await mock.isNotifying(charPath), "notifications were started again on the new link");
    const received = collectMessages(helper.getNode("hr-out"), 1);
    await mock.pushValue(charPath, measurement(70));
    assert.equal((await received)[0].payload, 70);
  });

  it("says bluetoothd is not running, and connects once it starts", async () => {
    const b = await startBus();
    await loadFlow([bleConfigNode, heartRateNode], [tab, config(), hrNode, sink("hr-out")]);
    const node = helper.getNode("hr");
    await waitForStatus(node, isRed(problem("bluez-no-bluetoothd")), 15000);

    mock = await BluezMock.start(b);
    await mock.addAdapter("hci0");
    await mock.addDevice(sensor);
    await waitForStatus(node, isConnected, 40000);
  });

  it("says so when bluetoothd stops while a device is connected, and reconnects when it is back", async () => {
    const b = await startBus();
    mock = await BluezMock.start(b);
    await mock.addAdapter("hci0");
    await mock.addDevice(sensor);
    await loadFlow([bleConfigNode, heartRateNode], [tab, config(), hrNode, sink("hr-out")]);
    const node = helper.getNode("hr");
    await waitForStatus(node, isConnected, 20000);

    await mock.stop();
    await waitForStatus(node, isRed(problem("bluez-no-bluetoothd")), 15000);

    mock = await BluezMock.start(b);
    await mock.addAdapter("hci0");
    const device = await mock.addDevice(sensor);
    await waitForStatus(node, isConnected, 40000);
    const received = collectMessages(helper.getNode("hr-out"), 1);
    await mock.pushValue(await mock.characteristicPath(device, HEART_RATE_MEASUREMENT), measurement(80));
    assert.equal((await received)[0].payload, 80);
  });

  it("says the adapter is powered off, and connects when it is powered on", async () => {
    const b = await startBus();
    mock = await BluezMock.start(b);
    await mock.addAdapter("hci0", false);
    await mock.addDevice(sensor);
    await loadFlow([bleConfigNode, heartRateNode], [tab, config(), hrNode, sink("hr-out")]);
    const node = helper.getNode("hr");
    await waitForStatus(node, isRed(problem("bluez-powered-off", { adapter: "hci0" })), 15000);
    await mock.setPowered("hci0", true);
    await waitForStatus(node, isConnected, 20000);
  });

  it("says when the named adapter does not exist, rather than using another", async () => {
    const b = await startBus();
    mock = await BluezMock.start(b);
    await mock.addAdapter("hci0");
    const device = await mock.addDevice(sensor);
    await loadFlow([bleConfigNode, heartRateNode], [tab, config({ bluezAdapter: "hci1" }), hrNode, sink("hr-out")]);
    await waitForStatus(helper.getNode("hr"), isRed(problem("bluez-no-adapter", { adapter: "hci1", available: "hci0" })), 15000);
    assert.equal((await mock.calls(device, "Connect")).length, 0, "nothing was done on hci0");
  });

  it("says the D-Bus policy does not authorise it", async () => {
    const b = await startBus({ denyBluez: true });
    mock = await BluezMock.start(b);
    await mock.addAdapter("hci0");
    await loadFlow([bleConfigNode, heartRateNode], [tab, config(), hrNode, sink("hr-out")]);
    await waitForStatus(
      helper.getNode("hr"),
      isRed(problem("bluez-not-authorised", { adapter: "hci0", detail: "the D-Bus policy refuses messages to org.bluez" })),
      15000,
    );
  });

  it("says there is no D-Bus socket, and Node-RED keeps running", async () => {
    const b = await startBus();
    const missing = `unix:path=${path.join(b.dir, "no-such-socket")}`;
    process.env.DBUS_SYSTEM_BUS_ADDRESS = missing;
    await loadFlow([bleConfigNode, heartRateNode], [tab, config(), hrNode, sink("hr-out")]);
    await waitForStatus(helper.getNode("hr"), isRed(problem("bluez-no-dbus", { address: missing })), 15000);
  });
});
