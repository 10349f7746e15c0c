/**
 * Opening a uart adapter, as users see it: a normal start is quiet (no red status, nothing logged as a warning or
 * an error), a failure names the operating system's reason, and no failure of the serial port or its driver can
 * escape as an uncaught exception, whatever the flow does meanwhile (deploy, redeploy, stop).
 */
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import * as fs from "node:fs";
import { createRequire } from "node:module";
import * as os from "node:os";
import * as path from "node:path";
import bleConfigNode = require("../../src/ble-config");
import heartRateNode = require("../../src/heart-rate");
import { serialPortProblem } from "../../src/ble/adapter";
import { DEFAULT_POLICY } from "../../src/ble/pool";
import { acquireAdapter, openAdapterCount } from "../../src/ble/registry";
import type { VirtualController } from "../../src/sim/controller";
import { locateUartDriver } from "../../src/ble/noble-driver";
import { openVirtualSerialPort } from "../../src/sim/pty";
import { DEFAULT_SCENARIO, parseScenario, Simulation } from "../../src/sim/scenario";
import { watchEscapes } from "../support/escapes";
import { collectMessages, helper, isConnected, loadFlow, statusesOf, waitForStatus, warningsAndErrors, type FlowNode, useNodeRed } from "../support/red";

const tab: FlowNode = { id: "flow", type: "tab", label: "test" };
const sink: FlowNode = { id: "out", z: "flow", type: "helper" };
const hrNode: FlowNode = { id: "hr", z: "flow", type: "heart-rate", ble: "cfg", address: "", deviceName: "", topic: "", wires: [["out"]] };
const uartConfig = (port: string, extra: Record<string, unknown> = {}): FlowNode => ({
  id: "cfg",
  type: "ble-config",
  transport: "uart",
  uartPort: port,
  uartBaudRate: 1000000,
  reconnectDelay: 100,
  ...extra,
});

/** The node types of the test flows, whose warnings and errors are checked. */
const FLOW_TYPES = ["ble-config", "heart-rate"];

type SerialPortClass = new (options: { path: string; baudRate: number; autoOpen?: boolean }) => SerialPortLike;
type SerialPortLike = NodeJS.EventEmitter & {
  readonly path: string;
  readonly opening: boolean;
  open(cb?: (error: Error | null) => void): void;
  close(cb: (error: Error | null) => void): void;
};

/** The serialport the UART driver uses. */
function serialPortClass(): SerialPortClass {
  return (createRequire(locateUartDriver())("serialport") as { SerialPort: SerialPortClass }).SerialPort;
}

/** Every serial port opened (by the UART driver included) until `restore()`: a spy on serialport's open. */
function spyOnSerialOpens(): { ports: SerialPortLike[]; restore(): void } {
  const proto = serialPortClass().prototype;
  const own = Object.prototype.hasOwnProperty.call(proto, "open");
  const original = proto.open;
  const ports: SerialPortLike[] = [];
  proto.open = function (this: SerialPortLike, cb?: (error: Error | null) => void): void {
    ports.push(this);
    original.call(this, cb);
  };
  return {
    ports,
    restore: () => {
      if (own) proto.open = original;
      else delete (proto as Partial<SerialPortLike>).open;
    },
  };
}

describe("uart adapter start-up and failures", function () {
  this.timeout(30000);
  useNodeRed();

  let dir: string;
  beforeEach(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), "ble-uart-start-"))));
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("a normal start on a serial port shows no red status and logs no warning or error before 'connected'", async () => {
    const simulation = new Simulation(parseScenario(DEFAULT_SCENARIO, ""), { timeScale: 10 });
    simulation.start();
    const port = await openVirtualSerialPort(simulation.controller);
    try {
      await loadFlow([bleConfigNode, heartRateNode], [tab, uartConfig(port.path), hrNode, sink]);
      const hr = helper.getNode("hr");
      await waitForStatus(hr, isConnected, 20000);
      await collectMessages(helper.getNode("out"), 1);
      const shown = statusesOf(hr);
      assert.ok(shown.length >= 2, `statuses were recorded: ${JSON.stringify(shown)}`);
      assert.deepEqual(
        shown.filter((s) => s.fill === "red"),
        [],
        `no red status on the way: ${shown.map((s) => `${s.fill}/${String(s.text)}`).join(", ")}`,
      );
      assert.deepEqual(warningsAndErrors(FLOW_TYPES), [], "nothing logged as a warning or an error");
      await helper.unload();
    } finally {
      await port.close();
      simulation.close();
    }
  });

  const failures: { what: string; port: () => string; reason: RegExp }[] = [
    { what: "a missing device", port: () => path.join(dir, "ttyUSB-missing"), reason: /no such file/ },
    { what: "a directory", port: () => dir, reason: /not a serial device/ },
    { what: "a character device that is not a tty (/dev/null)", port: () => "/dev/null", reason: /not a serial device/ },
  ];
  for (const { what, port, reason } of failures) {
    it(`${what}: the status and the log name the operating system's reason, and nothing escapes`, async () => {
      const uncaught = watchEscapes();
      try {
        await loadFlow([bleConfigNode, heartRateNode], [tab, uartConfig(port()), hrNode, sink]);
        const status = await waitForStatus(helper.getNode("hr"), (s) => s.fill === "red", 20000);
        assert.match(String(status.text), reason);
        // The setting, not its value: the port may come from an environment variable, and the status is for anyone.
        assert.match(String(status.text), /uartPort/);
        assert.ok(!String(status.text).includes(port()), `the status does not quote the port's path: ${String(status.text)}`);
        assert.doesNotMatch(String(status.text), /closed or not answering/);
        assert.ok(
          warningsAndErrors(FLOW_TYPES).some((m) => reason.test(m)),
          `the ble-config node logs the reason: ${JSON.stringify(warningsAndErrors(FLOW_TYPES))}`,
        );
        await helper.unload();
        assert.equal(openAdapterCount(), 0);
        assert.deepEqual(uncaught.seen, []);
      } finally {
        uncaught.stop();
      }
    });
  }

  it("a serial port another program holds: 'in use'", async () => {
    const simulation = new Simulation(parseScenario(DEFAULT_SCENARIO, ""), { timeScale: 10 });
    simulation.start();
    const port = await openVirtualSerialPort(simulation.controller);
    // The same serialport the UART driver uses, and its default: an exclusive lock on the device.
    const SerialPort = serialPortClass();
    const holder = new SerialPort({ path: port.path, baudRate: 1000000 });
    try {
      await new Promise<void>((resolve, reject) => {
        holder.once("open", resolve);
        holder.once("error", reject);
      });
      await loadFlow([bleConfigNode, heartRateNode], [tab, uartConfig(port.path), hrNode, sink]);
      const status = await waitForStatus(helper.getNode("hr"), (s) => s.fill === "red", 20000);
      assert.match(String(status.text), /in use/);
      await helper.unload();
    } finally {
      await new Promise<void>((resolve) => holder.close(() => resolve()));
      await port.close();
      simulation.close();
    }
  });

  it("a serial port that opens but never answers HCI Reset: a red status saying so, after the connect timeout", async () => {
    // A pty with nothing behind it: what the host writes goes nowhere.
    const silent = Object.assign(new EventEmitter(), { write: (): void => undefined }) as unknown as VirtualController;
    const port = await openVirtualSerialPort(silent);
    try {
      await loadFlow([bleConfigNode, heartRateNode], [tab, uartConfig(port.path, { connectTimeout: 200 }), hrNode, sink]);
      const status = await waitForStatus(helper.getNode("hr"), (s) => s.fill === "red", 20000);
      assert.match(String(status.text), /\(uartPort\) opened but did not answer HCI Reset/);
      // The port is reopened, with backoff, each time only once the last open has let go of it: a reopen that
      // raced the release would find the port locked and call it "in use by another program".
      const reds = (): string[] => statusesOf(helper.getNode("hr")).filter((s) => s.fill === "red").map((s) => String(s.text));
      for (let seen = reds().length; seen < 4; seen = reds().length) {
        await waitForStatus(helper.getNode("hr"), (s) => s.fill === "red" && reds().length > seen, 20000);
      }
      for (const text of reds()) assert.match(text, /\(uartPort\) opened but did not answer HCI Reset/);
      await helper.unload();
    } finally {
      await port.close();
    }
  });

  it("deploy and an immediate redeploy (the first port still opening), then stop: every adapter closed, nothing escapes", async () => {
    const uncaught = watchEscapes();
    try {
      for (const port of [path.join(dir, "ttyUSB-missing"), dir, "/dev/null"]) {
        await loadFlow([bleConfigNode, heartRateNode], [tab, uartConfig(port), hrNode, sink]);
        // A full deploy closes the config node while its serial port's open is still pending, and opens it again.
        await helper.setFlows([tab, uartConfig(port, { name: "again" }), hrNode, sink] as Parameters<typeof helper.setFlows>[0], "full");
        await helper.setFlows([tab, uartConfig(port, { name: "and again" }), hrNode, sink] as Parameters<typeof helper.setFlows>[0], "full");
        await helper.unload();
        assert.equal(openAdapterCount(), 0, `no adapter left open (${port})`);
      }
      assert.deepEqual(uncaught.seen, []);
    } finally {
      uncaught.stop();
    }
  });

  it("an adapter released while its serial port is still opening (a config node deployed and at once replaced): nothing escapes", async () => {
    const uncaught = watchEscapes();
    const opens = spyOnSerialOpens();
    try {
      const ports = [path.join(dir, "ttyUSB-missing"), dir, "/dev/null"];
      for (const port of ports) {
        // What a ble-config node does when it is created and then closed by the next deploy, before any I/O completes.
        const adapter = acquireAdapter({ transport: "uart", port, baudRate: 1000000, flowControl: true }, DEFAULT_POLICY);
        const released = adapter.unref();
        assert.deepEqual(
          opens.ports.filter((p) => p.opening).map((p) => p.path),
          [port],
          "released while its port is still opening",
        );
        await released;
        assert.deepEqual(
          opens.ports.filter((p) => p.opening).map((p) => p.path),
          [],
          "unref() resolves once the port's open has ended (and its failure was emitted)",
        );
      }
      assert.equal(openAdapterCount(), 0);
      // An error emitted to nobody is a rejection that Node.js reports once the current tick's promise jobs have run.
      await new Promise<void>((resolve) => setImmediate(resolve));
      assert.deepEqual(uncaught.seen, []);
    } finally {
      opens.restore();
      uncaught.stop();
    }
  });

  it("names the reason for each way serialport's open fails with the operating system's own code, permission denied and locks included", () => {
    const catalog = (JSON.parse(fs.readFileSync(path.join(__dirname, "../../nodes/locales/en-US/ble-config.json"), "utf8")) as { "ble-config": { problem: Record<string, string> } })["ble-config"].problem;
    const port = "/dev/ttyUSB0";
    const cases: [string, string, string][] = [
      ["Error: No such file or directory, cannot open /dev/ttyUSB0", "uart-no-such-file", "ENOENT"],
      ["Error: Permission denied, cannot open /dev/ttyUSB0", "uart-permission", "EACCES"],
      ["Error: Operation not permitted, cannot open /dev/ttyUSB0", "uart-permission", "EPERM"],
      ["Error: Is a directory, cannot open /dev/ttyUSB0", "uart-directory", "EISDIR"],
      ["Error: Inappropriate ioctl for device setting custom baud rate of 1000000", "uart-not-tty", "ENOTTY"],
      // serialport's flock(LOCK_EX | LOCK_NB) on a port another program holds fails with EWOULDBLOCK, which is EAGAIN.
      ["Error Resource temporarily unavailable Cannot lock port", "uart-in-use", "EAGAIN"],
      ["Error: Device or resource busy, cannot open /dev/ttyUSB0", "uart-in-use", "EBUSY"],
    ];
    for (const [message, key, code] of cases) {
      assert.deepEqual(serialPortProblem(port, new Error(message)), { key, params: { code } }, message);
      assert.match(catalog[key], /__code__/, `the catalog's ${key} shows the code`);
    }
    // Anything else: the operating system's own words, not a guess, and not the port's path.
    const other = serialPortProblem(port, new Error("Error: Input/output error, cannot open /dev/ttyUSB0"));
    assert.deepEqual(other, { key: "uart-failed", params: { reason: "Input/output error" } });
    assert.match(catalog[other.key], /__reason__/);
  });
});
