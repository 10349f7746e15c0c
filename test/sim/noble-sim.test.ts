/**
 * noble's own, unmodified HCI stack against the virtual controller: in process through the replaced UART
 * driver module, and through a pty with noble's real UART driver.
 */
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { withBindings, type Characteristic, type Noble, type Peripheral } from "@stoprocent/noble";
import { OP } from "../../src/protocol/hci";
import { parseCommandStatus, parseLeConnectionComplete } from "../../src/protocol/hci-packets";
import { ScaledClock } from "../../src/sim/clock";
import { VirtualController } from "../../src/sim/controller";
import { hciPeerPort, registerHciPeer, unregisterHciPeer } from "../../src/ble/hci-peer";
import { installNobleHciDriver, locateUartDriver } from "../../src/ble/noble-driver";
import { openVirtualSerialPort, type VirtualSerialPort } from "../../src/sim/pty";
import { DEFAULT_LINK, type LinkSettings } from "../../src/sim/types";
import { FakePeripheral } from "../support/fake-peripheral";
import { scanFor } from "../support/nus-noble";

/** Simulated time runs this much faster than wall-clock time: link timing holds, tests stay quick. */
const TIME_SCALE = 50;

function nobleOn(port: string): Noble {
  return withBindings("hci", { hciDriver: "uart", bindParams: { uart: { port, baudRate: 1000000 } } });
}

/** Resolves with the first packet the controller sends to the host that matches. */
function nextPacket(controller: VirtualController, match: (packet: Buffer) => boolean): Promise<Buffer> {
  return new Promise((resolve) => {
    const listener = (packet: Buffer) => {
      if (!match(packet)) return;
      controller.off("h4", listener);
      resolve(packet);
    };
    controller.on("h4", listener);
  });
}

function discoverByName(noble: Noble, name: string): Promise<Peripheral> {
  return scanFor(noble, (p) => p.advertisement.localName === name);
}

async function characteristics(peripheral: Peripheral): Promise<{ notify: Characteristic; write: Characteristic }> {
  const { characteristics: list } = await peripheral.discoverSomeServicesAndCharacteristicsAsync(["fff0"], ["fff1", "fff2"]);
  const notify = list.find((c) => c.uuid === "fff1");
  const write = list.find((c) => c.uuid === "fff2");
  assert.ok(notify && write, "both characteristics discovered");
  return { notify, write };
}

/** Resolves with the sequence numbers of the next `count` notifications. */
function notifications(characteristic: Characteristic, count: number): Promise<number[]> {
  return new Promise((resolve) => {
    const seen: number[] = [];
    const listener = (data: Buffer) => {
      seen.push(data.readUInt32LE(0));
      if (seen.length < count) return;
      characteristic.removeListener("data", listener);
      resolve(seen);
    };
    characteristic.on("data", listener);
  });
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

describe("sim: noble against the virtual controller", function () {
  let controller: VirtualController;
  let fake: FakePeripheral;
  let noble: Noble | undefined;
  let id: string | undefined;
  let port: VirtualSerialPort | undefined;
  let nextId = 1;

  function simulate(link: Partial<LinkSettings> = {}): void {
    controller = new VirtualController({ clock: new ScaledClock(TIME_SCALE), link: { ...DEFAULT_LINK, ...link } });
    fake = new FakePeripheral({ name: "fake-sensor" });
    controller.addPeripheral(fake);
  }

  function inProcess(): Noble {
    installNobleHciDriver();
    id = `noble-sim-${nextId++}`;
    registerHciPeer(id, controller);
    noble = nobleOn(hciPeerPort(id));
    return noble;
  }

  afterEach(async () => {
    // noble installs SIGINT/exit handlers and a 1 s poll timer: stop it or mocha never exits.
    noble?.stop();
    noble?.removeAllListeners();
    noble = undefined;
    await port?.close();
    port = undefined;
    if (id) unregisterHciPeer(id);
    id = undefined;
    controller.close();
  });

  describe("in process (replaced UART driver module)", () => {
    it("powers on, discovers by name, connects, discovers GATT, subscribes, gets 2,000 notifications in order, writes, disconnects", async () => {
      simulate();
      const n = inProcess();
      await n.waitForPoweredOnAsync();
      const peripheral = await discoverByName(n, "fake-sensor");
      assert.equal(peripheral.address, fake.address);
      assert.equal(peripheral.addressType, "random");
      await peripheral.connectAsync();
      const { notify, write } = await characteristics(peripheral);
      assert.equal(fake.mtu, 247, "MTU exchanged up to the peripheral's maximum");
      assert.deepEqual(notify.properties, ["read", "notify"]);
      await notify.subscribeAsync();
      assert.equal(fake.cccd, 1);

      const received = notifications(notify, 2000);
      await fake.sendNotifications(2000, 20);
      assert.deepEqual(await received, range(2000), "all 2,000, in order, none lost");

      // Central → peripheral, through noble's ACL flow control (8 buffers, Number Of Completed Packets).
      for (let i = 0; i < 50; i++) await write.writeAsync(Buffer.from([i, ...Buffer.alloc(100, i)]), true);
      await write.writeAsync(Buffer.from("done"), false);
      assert.equal(fake.writes.length, 51);
      fake.writes.slice(0, 50).forEach((w, i) => assert.equal(w[0], i));

      const reason = new Promise<unknown>((resolve) => peripheral.once("disconnect", resolve));
      await peripheral.disconnectAsync();
      assert.equal(await reason, 0x16, "noble hears 'terminated by local host'");
      assert.deepEqual(fake.disconnectReasons, [0x13], "the peripheral hears 'remote user terminated'");
      assert.ok(controller.counters.controllerAclPackets >= 2000);
      assert.ok(controller.counters.hostAclPackets >= 51);
    });

    it("a truncated notification from the peripheral is dropped before noble's parser, which would throw on it; the link goes on", async () => {
      simulate();
      const n = inProcess();
      await n.waitForPoweredOnAsync();
      const peripheral = await discoverByName(n, "fake-sensor");
      await peripheral.connectAsync();
      const { notify } = await characteristics(peripheral);
      await notify.subscribeAsync();
      const warned = new Promise<string>((resolve) => {
        const onWarning = (w: Error & { code?: string }) => {
          if (w.code !== "BLE_MALFORMED_ATT") return;
          process.off("warning", onWarning);
          resolve(w.message);
        };
        process.on("warning", onWarning);
      });
      const received = notifications(notify, 3);
      await fake.link!.sendAtt(Buffer.from([0x1b, 0x01])); // opcode and half a handle
      assert.match(await warned, /dropped ATT opcode 0x1b needs at least 3 bytes, got 2/);
      await fake.sendNotifications(3, 4);
      assert.deepEqual(await received, range(3), "the notifications after it arrive");
    });

    it("a peripheral advertising an empty TX Power Level structure is still discovered by name (noble alone drops the report)", async () => {
      controller = new VirtualController({ clock: new ScaledClock(TIME_SCALE), link: DEFAULT_LINK });
      fake = new FakePeripheral({ name: "odd-adv", extraAdvertising: Buffer.from([0x01, 0x0a]) });
      controller.addPeripheral(fake);
      const n = inProcess();
      await n.waitForPoweredOnAsync();
      const peripheral = await discoverByName(n, "odd-adv");
      assert.equal(peripheral.address, fake.address);
    });

    it("a power-off while connected gives 'disconnect' with reason 8, and noble reconnects after power-on", async () => {
      simulate();
      const n = inProcess();
      await n.waitForPoweredOnAsync();
      const peripheral = await discoverByName(n, "fake-sensor");
      await peripheral.connectAsync();
      const first = await characteristics(peripheral);
      await first.notify.subscribeAsync();

      const disconnected = new Promise<unknown>((resolve) => peripheral.once("disconnect", resolve));
      controller.powerOff(fake.address);
      assert.equal(await disconnected, 8);
      assert.deepEqual(fake.disconnectReasons, [0x08]);

      controller.powerOn(fake.address);
      await peripheral.connectAsync();
      const again = await characteristics(peripheral);
      await again.notify.subscribeAsync();
      const received = notifications(again.notify, 100);
      await fake.sendNotifications(100, 20);
      assert.deepEqual(await received, range(100));
      assert.equal(fake.connections, 2);
    });

    it("cancelConnect towards a silent peripheral: LE Create Connection Cancel, Connection Complete 0x02, and a later connect works", async () => {
      simulate();
      const n = inProcess();
      await n.waitForPoweredOnAsync();
      const peripheral = await discoverByName(n, "fake-sensor");
      controller.powerOff(fake.address);

      const createStatus = nextPacket(controller, (p) => parseCommandStatus(p)?.opcode === OP.LE_CREATE_CONNECTION);
      const attempt = peripheral.connectAsync();
      assert.equal(parseCommandStatus(await createStatus)?.status, 0);
      const cancelled = nextPacket(controller, (p) => parseLeConnectionComplete(p) !== undefined);
      peripheral.cancelConnect();
      await assert.rejects(attempt, /cancel/);
      const complete = parseLeConnectionComplete(await cancelled);
      assert.equal(complete?.status, 0x02);
      assert.equal(complete?.peerAddress, fake.address);

      controller.powerOn(fake.address);
      await peripheral.connectAsync();
      assert.equal(peripheral.state, "connected");
      await peripheral.disconnectAsync();
    });

    it("an unregistered virtual port leaves noble 'unsupported' instead of crashing", async () => {
      simulate();
      installNobleHciDriver();
      noble = nobleOn(hciPeerPort("nobody-registered-this"));
      // noble prints advice for real adapters on 'unsupported'; keep the test output clean.
      const log = console.log;
      console.log = () => undefined;
      try {
        const state = await new Promise<string>((resolve) => noble?.on("stateChange", resolve));
        assert.equal(state, "unsupported");
      } finally {
        console.log = log;
      }
    });
  });

  describe("over a pty with noble's UART driver", () => {
    it("survives the driver's own Reset, then discovers, connects, subscribes, streams and disconnects", async () => {
      simulate({ dataLength: 27, pdusPerEvent: 6 });
      // Installed, yet a real port name must still reach the original UART driver.
      installNobleHciDriver();
      port = await openVirtualSerialPort(controller);
      assert.match(port.path, /^\/dev\//);
      const n = nobleOn(port.path);
      noble = n;
      const states: string[] = [];
      n.on("stateChange", (s: string) => states.push(s));
      await n.waitForPoweredOnAsync();
      assert.deepEqual(states, ["poweredOff", "poweredOn"]);
      const peripheral = await discoverByName(n, "fake-sensor");
      await peripheral.connectAsync();
      const { notify } = await characteristics(peripheral);
      await notify.subscribeAsync();
      const received = notifications(notify, 2000);
      await fake.sendNotifications(2000, 20);
      assert.deepEqual(await received, range(2000), "all 2,000, in order, none lost");
      await peripheral.disconnectAsync();
      assert.deepEqual(fake.disconnectReasons, [0x13]);
    });
  });

  describe("the driver module path", () => {
    let dir: string;
    beforeEach(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), "hci-socket-layout-"))));
    afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

    it("is found where noble loads it from", () => {
      simulate();
      const driver = locateUartDriver();
      assert.ok(fs.existsSync(driver));
      assert.ok(driver.endsWith(path.join("@stoprocent", "bluetooth-hci-socket", "lib", "uart.js")));
    });

    it("fails loudly when the package no longer has lib/uart.js", () => {
      simulate();
      fs.writeFileSync(path.join(dir, "index.js"), "module.exports = require('./lib/uart.js');\n");
      assert.throws(() => locateUartDriver(dir), /@stoprocent\/bluetooth-hci-socket layout changed: .*lib\/uart\.js does not exist/);
      assert.throws(() => installNobleHciDriver(dir), /layout changed/);
    });

    it("fails loudly when index.js no longer loads ./lib/uart.js", () => {
      simulate();
      fs.mkdirSync(path.join(dir, "lib"));
      fs.writeFileSync(path.join(dir, "lib", "uart.js"), "module.exports = class {};\n");
      fs.writeFileSync(path.join(dir, "index.js"), "module.exports = require('./lib/serial-driver.js');\n");
      assert.throws(() => locateUartDriver(dir), /layout changed: .*no longer loads \.\/lib\/uart\.js/);
    });
  });
});
