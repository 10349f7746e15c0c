import assert from "node:assert/strict";
import type { EventEmitter } from "node:events";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import type { Node, NodeMessage } from "node-red";
import bleConfigNode from "../../src/ble-config";
import heartRateNode from "../../src/heart-rate";
import hiokiMeterNode from "../../src/hioki-meter";
import type { BleConfigNode } from "../../src/red/ble-config-node";
import type { HiokiDt4261Peripheral } from "../../src/sim/peripherals/hioki-dt4261";
import { collectMessages, currentStatus, errorCallsOf, helper, isConnected, loadFlow, waitForError, waitForStatus, warningsOf, type FlowNode, useNodeRed } from "../support/red";

const M1 = "a4:9e:69:00:00:01";
const M2 = "a4:9e:69:00:00:02";
const M3 = "a4:9e:69:00:00:03";
const HR1 = "d8:75:ba:00:00:01";
const HR2 = "d8:75:ba:00:00:02";

interface MeterMsg extends NodeMessage {
  payload: number | string | null;
  raw: string;
  model?: string;
  peripheral: { address: string; name: string; model: string | null; serial: string | null };
  topic: string;
}

/** One node of a test flow. */

interface CaughtMsg extends NodeMessage {
  error: { message: string; source: { id: string } };
}

function writeScenario(scenario: unknown): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ble-hioki-"));
  const file = path.join(dir, "scenario.json");
  fs.writeFileSync(file, JSON.stringify(scenario));
  return file;
}

function meter(address: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { kind: "hioki-dt4261", address, ...extra };
}

function heartRate(address: string, bpm: number[]): Record<string, unknown> {
  return { kind: "heart-rate", address, addressType: "random", name: `HR ${address.slice(-2)}`, bpm, intervalMs: 300 };
}

function simConfig(scenario: unknown, extra: Record<string, unknown> = {}): FlowNode {
  return { id: "cfg", type: "ble-config", transport: "simulator", simScenario: writeScenario(scenario), simTimeScale: 10, reconnectDelay: 100, ...extra };
}

// Flow nodes live on a tab with a position: without x/y Node-RED 4 treats a node as a config node.
const tab: FlowNode = { id: "f1", type: "tab", label: "test" };
const on = { z: "f1", x: 100, y: 100 };

function meterNode(id: string, extra: Record<string, unknown> = {}): FlowNode {
  return { id, type: "hioki-meter", ...on, ble: "cfg", address: "", deviceName: "Z3210", command: "FETC?", interval: 20, replyTimeout: 1000, topic: "meter", wires: [[`${id}-out`]], ...extra };
}

function hrNode(id: string, address: string): FlowNode {
  return { id, type: "heart-rate", ...on, ble: "cfg", address, deviceName: "", topic: "heart rate", wires: [[`${id}-out`]] };
}

const sink = (id: string): FlowNode => ({ id: `${id}-out`, type: "helper", ...on });

function catcher(): FlowNode[] {
  return [
    { id: "catch", type: "catch", ...on, scope: null, uncaught: false, wires: [["caught"]] },
    { id: "caught", type: "helper", ...on },
  ];
}


async function load(flow: FlowNode[]): Promise<void> {
  await loadFlow([bleConfigNode, heartRateNode, hiokiMeterNode], [tab, ...flow]);
}

function controller(): NonNullable<NonNullable<BleConfigNode["adapter"]>["simulation"]>["controller"] {
  const cfg = helper.getNode("cfg") as BleConfigNode;
  assert.ok(cfg.adapter?.simulation, "config node runs a simulation");
  return cfg.adapter.simulation.controller;
}

function dt4261(address: string): HiokiDt4261Peripheral {
  return controller().peripheral(address) as unknown as HiokiDt4261Peripheral;
}

const out = (id: string): Node => helper.getNode(`${id}-out`);
const node = (id: string): Node => helper.getNode(id);

/** Resolves once the node has logged `count` debug messages matching `pattern` (counting those before the call). */
function debugLogged(n: Node, pattern: RegExp, count: number, timeoutMs = 5000): Promise<void> {
  const spy = n.debug as unknown as { getCalls(): { thisValue: unknown; args: unknown[] }[] };
  const logged = (): number => spy.getCalls().filter((c) => c.thisValue === n && pattern.test(String(c.args[0]))).length;
  const events = n as unknown as EventEmitter;
  return new Promise((resolve, reject) => {
    const check = (): void => {
      if (logged() < count) return;
      clearTimeout(timer);
      events.removeListener("call:debug", check);
      resolve();
    };
    const timer = setTimeout(() => {
      events.removeListener("call:debug", check);
      reject(new Error(`${count} debug messages matching ${String(pattern)} not within ${timeoutMs} ms; got ${logged()}`));
    }, timeoutMs);
    events.on("call:debug", check);
    check();
  });
}

const text = (n: Node): string => String(currentStatus(n)?.text ?? "");
const isReconnecting = (s: { fill?: string; text?: unknown }): boolean => s.fill === "yellow" && /reconnecting/.test(String(s.text));

describe("hioki-meter node (Node-RED runtime + simulator through noble)", function () {
  this.timeout(30000);

  useNodeRed();

  it("polls FETC? and sends each reading as a number, with the instrument from its advertised name", async () => {
    await load([simConfig({ peripherals: [meter(M1, { values: [0.0001, -0.0001, 1.5, 0] })] }), meterNode("m"), sink("m")]);
    const msgs = (await collectMessages(out("m"), 4)) as MeterMsg[];
    assert.deepEqual(
      msgs.map((m) => m.payload),
      [0.0001, -0.0001, 1.5, 0],
    );
    assert.deepEqual(
      msgs.map((m) => m.raw),
      ["+1.00000000E-04", "-1.00000000E-04", "+1.50000000E+00", "+0.00000000E+00"],
    );
    for (const m of msgs) {
      assert.deepEqual(m.peripheral, { address: M1, name: "Z3210V2.10:DT4261#000000001", model: "DT4261", serial: "000000001" });
      assert.equal(m.topic, "meter");
      assert.equal("model" in m, false, "FETC? carries no model");
    }
    assert.ok(isConnected(currentStatus(node("m"))!));
    const log = dt4261(M1).commandLog;
    assert.ok(log.length >= 4 && log.every((c) => c === "FETC?"), `only FETC? was sent: ${JSON.stringify(log)}`);
    assert.deepEqual(dt4261(M1).violations, []);
  });

  it("with its defaults (no address, name prefix Z3210, FETC?) finds the DT4261 of the built-in scenario", async () => {
    const builtIn = { id: "cfg", type: "ble-config", transport: "simulator", simScenario: "", simTimeScale: 10 };
    await load([builtIn, { id: "m", type: "hioki-meter", ...on, ble: "cfg", wires: [["m-out"]] }, sink("m")]);
    const [msg] = (await collectMessages(out("m"), 1)) as MeterMsg[];
    assert.equal(typeof msg.payload, "number");
    assert.deepEqual(msg.peripheral, { address: M1, name: "Z3210V2.10:DT4261#000000001", model: "DT4261", serial: "000000001" });
    assert.equal(msg.topic, "");
    assert.equal(dt4261(M1).commandLog[0], "FETC?");
  });

  it("QPID;FETC? gives msg.model and the value, joining a reply split over two indications (MTU 23)", async () => {
    const scenario = { link: { maxMtu: 23 }, peripherals: [meter(M1, { values: [0, -0.0001] })] };
    await load([simConfig(scenario), meterNode("m", { command: "QPID;FETC?" }), sink("m")]);
    const msgs = (await collectMessages(out("m"), 3)) as MeterMsg[];
    assert.equal(dt4261(M1).gatt.mtu, 23, "the link really runs at MTU 23, so 22-byte replies come in two indications");
    assert.deepEqual(
      msgs.map((m) => [m.payload, m.model, m.raw]),
      [
        [0, "DT4261", "DT4261;+0.00000000E+00"],
        [-0.0001, "DT4261", "DT4261;-1.00000000E-04"],
        [0, "DT4261", "DT4261;+0.00000000E+00"],
      ],
    );
    assert.deepEqual(dt4261(M1).violations, []);
  });

  it("finishes a reply that fills whole indications after a quiet gap (MTU 23, 20- and 40-byte replies)", async () => {
    const twenty = "ABCDEFGHIJKLMNOPQRST";
    const scenario = { link: { maxMtu: 23 }, peripherals: [meter(M1, { replies: [twenty, twenty + twenty, "+2.00000000E+00"] })] };
    await load([simConfig(scenario), meterNode("m"), sink("m")]);
    const msgs = (await collectMessages(out("m"), 3)) as MeterMsg[];
    assert.deepEqual(
      msgs.map((m) => [m.payload, m.raw]),
      [
        [null, twenty],
        [null, twenty + twenty],
        [2, "+2.00000000E+00"],
      ],
    );
  });

  it(":FETCCNT? gives the counts as integers", async () => {
    await load([simConfig({ peripherals: [meter(M1, { counts: [3000, 0, 123456] })] }), meterNode("m", { command: ":FETCCNT?" }), sink("m")]);
    const msgs = (await collectMessages(out("m"), 3)) as MeterMsg[];
    assert.deepEqual(
      msgs.map((m) => [m.payload, m.raw]),
      [
        [3000, "3000"],
        [0, "0"],
        [123456, "123456"],
      ],
    );
    assert.deepEqual(dt4261(M1).commandLog.slice(0, 3), [":FETCCNT?", ":FETCCNT?", ":FETCCNT?"]);
  });

  it("a reply that is not a number gives payload null and the text in msg.raw, never NaN or an error", async () => {
    const scenario = { peripherals: [meter(M1, { replies: ["CMD ERR", "+9.9E+37", "OVER", ""] })] };
    await load([simConfig(scenario), meterNode("m"), sink("m"), ...catcher()]);
    const msgs = (await collectMessages(out("m"), 4)) as MeterMsg[];
    assert.deepEqual(
      msgs.map((m) => [m.payload, m.raw]),
      [
        [null, "CMD ERR"],
        [9.9e37, "+9.9E+37"],
        [null, "OVER"],
        [null, ""],
      ],
    );
    assert.deepEqual(errorCallsOf(node("m")), []);
    assert.ok(isConnected(currentStatus(node("m"))!));
  });

  it("sends a string payload as one command, in order, and answers on the same message; other payloads poll once", async () => {
    await load([simConfig({ peripherals: [meter(M1, { values: [1, 2] })] }), meterNode("m", { interval: 0, topic: "" }), sink("m")]);
    await waitForStatus(node("m"), isConnected);
    const replies = collectMessages(out("m"), 4);
    // All four at once: they wait their turn, one command at the instrument at a time.
    node("m").receive({ payload: "*IDN?", topic: "identify", tag: 7 } as NodeMessage);
    node("m").receive({ payload: "FETC?" });
    node("m").receive({ payload: "NOPE?" });
    node("m").receive({ payload: true });
    const msgs = (await replies) as (MeterMsg & { tag?: number })[];
    assert.deepEqual(
      msgs.map((m) => [m.payload, m.raw]),
      [
        ["HIOKI,DT4261,000000001,V2.10", "HIOKI,DT4261,000000001,V2.10"],
        [1, "+1.00000000E+00"],
        ["CMD ERR", "CMD ERR"],
        [2, "+2.00000000E+00"],
      ],
    );
    assert.equal(msgs[0].tag, 7, "the input message's own properties travel on");
    assert.equal(msgs[0].topic, "identify", "no configured topic: the message keeps its own");
    assert.equal(msgs[0].peripheral.address, M1);
    assert.deepEqual(dt4261(M1).commandLog, ["*IDN?", "FETC?", "NOPE?", "FETC?"]);
  });

  it("rejects a command containing CR LF (or too long) with a Catch-able error; nothing reaches the instrument", async () => {
    await load([simConfig({ peripherals: [meter(M1)] }), meterNode("m", { interval: 0 }), sink("m"), ...catcher()]);
    await waitForStatus(node("m"), isConnected);
    const caught = collectMessages(helper.getNode("caught"), 2);
    node("m").receive({ payload: "FETC?\r\n:SYST:RST" });
    node("m").receive({ payload: "FETC?;".repeat(11) });
    const [crlf, long] = (await caught) as CaughtMsg[];
    assert.match(crlf.error.message, /CR \(U\+000D\) at position 6/);
    assert.equal(crlf.payload, "FETC?\r\n:SYST:RST", "the Catch node gets the offending message");
    assert.equal(crlf.error.source.id, "m");
    assert.match(long.error.message, /66 characters long, at most 64/);
    // A valid command afterwards gets through; had the bad ones been written, the log would show them first.
    const reply = collectMessages(out("m"), 1);
    node("m").receive({ payload: "*IDN?" });
    await reply;
    assert.deepEqual(dt4261(M1).commandLog, ["*IDN?"]);
    assert.deepEqual(dt4261(M1).violations, []);
  });

  it("an input while the meter is not connected is a Catch-able 'not connected' error", async () => {
    const scenario = { peripherals: [meter(M1)], events: [{ atMs: 0, address: M1, action: "power-off" }] };
    await load([simConfig(scenario), meterNode("m"), sink("m"), ...catcher()]);
    await waitForStatus(node("m"), (s) => s.fill === "yellow" && s.text === "scanning");
    const caught = collectMessages(helper.getNode("caught"), 1);
    const reported = waitForError(node("m"));
    node("m").receive({ payload: "FETC?" });
    const [msg] = (await caught) as CaughtMsg[];
    assert.match(msg.error.message, /not connected/);
    const [error] = await reported;
    assert.match(String(error), /not connected/);
    assert.deepEqual(dt4261(M1).commandLog, []);
  });

  it("a poll without reply shows 'no reply' and polling goes on; an input command without reply is a Catch-able error", async () => {
    const scenario = { peripherals: [meter(M1, { replyDelayMs: 60000 })] };
    await load([simConfig(scenario), meterNode("m", { replyTimeout: 50 }), sink("m"), ...catcher()]);
    const status = await waitForStatus(node("m"), (s) => s.fill === "yellow" && s.text === "no reply to FETC?");
    assert.equal(status.shape, "ring");
    // Each poll is written, then times out (logged at debug level: polls repeat).
    await debugLogged(node("m"), /^poll: no reply/, 3);
    assert.ok(dt4261(M1).commandLog.length >= 3, "three polls written");
    assert.deepEqual(errorCallsOf(node("m")), [], "a poll without reply is not an error");
    const caught = collectMessages(helper.getNode("caught"), 1);
    node("m").receive({ payload: "*IDN?", topic: "mine" });
    const [msg] = (await caught) as CaughtMsg[];
    assert.match(msg.error.message, /no reply to "\*IDN\?" within 50 ms/);
    assert.equal(msg.topic, "mine");
    assert.ok(dt4261(M1).commandLog.includes("*IDN?"));
  });

  it("keeps one command in flight per instrument when two nodes share it, and each gets its own replies", async () => {
    await load([
      simConfig({ peripherals: [meter(M1, { values: [5, 6, 7] })] }),
      meterNode("a", { address: M1, interval: 15 }),
      meterNode("b", { deviceName: "Z3210V2.10:DT4261", command: "QPID;FETC?", interval: 15 }),
      sink("a"),
      sink("b"),
    ]);
    const [a, b] = (await Promise.all([collectMessages(out("a"), 6), collectMessages(out("b"), 6)])) as [MeterMsg[], MeterMsg[]];
    for (const m of a) assert.match(m.raw, /^[+-]\d\.\d{8}E[+-]\d\d$/, `node a got only FETC? replies: ${m.raw}`);
    for (const m of b) assert.match(m.raw, /^DT4261;[+-]\d\.\d{8}E[+-]\d\d$/, `node b got only QPID;FETC? replies: ${m.raw}`);
    for (const m of [...a, ...b]) assert.ok([5, 6, 7].includes(m.payload as number));
    assert.equal(controller().isConnected(M1), true);
    assert.deepEqual(dt4261(M1).violations, []);
  });

  it("powered off mid-poll: reconnecting, a heart-rate node beside it keeps delivering, polling resumes when it is back", async () => {
    // The meter takes 200 ms (simulated) to answer, so a poll is in flight when it is switched off.
    const scenario = { peripherals: [meter(M1, { values: [0, -0.0001], replyDelayMs: 200 }), heartRate(HR1, [48, 47, 46])] };
    await load([simConfig(scenario), meterNode("m"), sink("m"), hrNode("hr", HR1), sink("hr")]);
    await Promise.all([waitForStatus(node("hr"), isConnected), collectMessages(out("m"), 2)]);

    const log = dt4261(M1).commandLog;
    const written = log.length;
    // The reply to a poll in flight now, then the reply to one written after it.
    await collectMessages(out("m"), 2);
    assert.ok(log.length > written, "the next poll written");
    let readingsWhileOff = 0;
    const countReading = (): void => {
      readingsWhileOff++;
    };
    out("m").on("input", countReading);
    const reconnecting = waitForStatus(node("m"), isReconnecting);
    controller().powerOff(M1);
    await reconnecting;
    const beats = (await collectMessages(out("hr"), 3)) as (NodeMessage & { payload: number })[];
    assert.ok(beats.every((m) => [48, 47, 46].includes(m.payload)));
    assert.equal(controller().isPoweredOn(M1), false, "all three beats came while the meter was off");
    assert.ok(!isConnected(currentStatus(node("m"))!), `meter status while off: ${text(node("m"))}`);

    const connected = waitForStatus(node("m"), isConnected, 20000);
    controller().powerOn(M1);
    out("m").removeListener("input", countReading);
    assert.equal(readingsWhileOff, 0, "no reading while the meter was off");
    await connected;
    const after = (await collectMessages(out("m"), 2)) as MeterMsg[];
    assert.ok(after.every((m) => m.payload === 0 || m.payload === -0.0001));
    assert.deepEqual(errorCallsOf(node("m")), [], "a meter that powers off is a status, not an error");
    assert.deepEqual(dt4261(M1).violations, []);
  });

  it("runs four peripherals at once (two meters, two heart-rate sensors), each node delivering and reconnecting on its own", async () => {
    const scenario = {
      peripherals: [meter(M1, { values: [1, 2] }), meter(M2, { values: [-3, -4] }), heartRate(HR1, [60]), heartRate(HR2, [90])],
    };
    await load([
      simConfig(scenario),
      meterNode("m1", { address: M1 }),
      meterNode("m2", { address: M2 }),
      hrNode("hr1", HR1),
      hrNode("hr2", HR2),
      ...["m1", "m2", "hr1", "hr2"].map(sink),
    ]);
    const [m1, m2, hr1, hr2] = await Promise.all(["m1", "m2", "hr1", "hr2"].map((id) => collectMessages(out(id), 3)));
    assert.ok((m1 as MeterMsg[]).every((m) => [1, 2].includes(m.payload as number) && m.peripheral.address === M1));
    assert.ok((m2 as MeterMsg[]).every((m) => [-3, -4].includes(m.payload as number) && m.peripheral.address === M2));
    assert.ok(hr1.every((m) => m.payload === 60));
    assert.ok(hr2.every((m) => m.payload === 90));
    for (const a of [M1, M2, HR1, HR2]) assert.equal(controller().isConnected(a), true, `${a} connected`);

    // One meter goes away: only its node notices; the other three keep delivering.
    const reconnecting = waitForStatus(node("m2"), isReconnecting);
    controller().powerOff(M2);
    await reconnecting;
    await Promise.all(["m1", "hr1", "hr2"].map((id) => collectMessages(out(id), 2)));
    assert.ok(!isConnected(currentStatus(node("m2"))!));
    for (const id of ["m1", "hr1", "hr2"]) assert.ok(isConnected(currentStatus(node(id))!), `${id} still connected`);
    controller().powerOn(M2);
    const back = (await collectMessages(out("m2"), 2)) as MeterMsg[];
    assert.ok(back.every((m) => m.peripheral.address === M2));
    for (const a of [M1, M2]) assert.deepEqual(dt4261(a).violations, []);
  });

  it("with maxConnections 4, a fifth device (a third meter) shows 'waiting for a free link' and connects when a link frees", async () => {
    const scenario = {
      peripherals: [meter(M1), meter(M2), meter(M3, { values: [33] }), heartRate(HR1, [60]), heartRate(HR2, [90])],
      // The third meter appears only once the other four are connected, so the order is known.
      events: [{ atMs: 0, address: M3, action: "power-off" }],
    };
    const ids = ["m1", "m2", "hr1", "hr2", "m3"];
    await load([
      simConfig(scenario, { maxConnections: 4 }),
      meterNode("m1", { address: M1 }),
      meterNode("m2", { address: M2 }),
      hrNode("hr1", HR1),
      hrNode("hr2", HR2),
      meterNode("m3", { address: M3 }),
      ...ids.map(sink),
    ]);
    await Promise.all(["m1", "m2", "hr1", "hr2"].map((id) => waitForStatus(node(id), isConnected)));

    const waiting = waitForStatus(node("m3"), (s) => s.fill === "yellow" && s.text === "waiting for a free link (4/4)");
    controller().powerOn(M3);
    await waiting;
    await Promise.all(["m1", "m2", "hr1", "hr2"].map((id) => collectMessages(out(id), 2)));
    assert.equal(controller().isConnected(M3), false);
    assert.equal(text(node("m3")), "waiting for a free link (4/4)");

    const connected = waitForStatus(node("m3"), isConnected);
    controller().powerOff(HR2);
    await connected;
    const msgs = (await collectMessages(out("m3"), 2)) as MeterMsg[];
    assert.ok(msgs.every((m) => m.payload === 33 && m.peripheral.address === M3));
    assert.ok(!isConnected(currentStatus(node("hr2"))!), `hr2: ${text(node("hr2"))}`);
    for (const a of [M1, M2, M3]) assert.deepEqual(dt4261(a).violations, []);
  });

  it("refuses an invalid configured command at deploy, with a red status", async () => {
    await load([simConfig({ peripherals: [meter(M1)] }), meterNode("m", { command: "FETC?\tX" }), sink("m")]);
    const status = await waitForStatus(node("m"), (s) => s.fill === "red");
    assert.equal(status.text, "invalid configuration");
    const [error] = errorCallsOf(node("m"));
    assert.match(String(error[0]), /TAB/);
  });
});

describe("hioki-meter node: the link's ATT MTU, with a meter that answers Exchange MTU with its own maximum", function () {
  this.timeout(30000);

  useNodeRed();

  it("joins a 271-byte reply sent as 253 + 18 bytes on a link of MTU 256 (noble asks 256, the meter answers 517)", async () => {
    // 17 readings joined by commas: 17 × 15 + 16 = 271 bytes.
    const long = Array.from({ length: 17 }, (_, i) => `+${String(i + 1).padStart(2, "0")}.0000000E+00`).join(",");
    assert.equal(long.length, 271);
    const scenario = { peripherals: [meter(M1, { serverMtu: 517, replies: [long, "+2.00000000E+00"] })] };
    await load([simConfig(scenario), meterNode("m"), sink("m")]);
    const msgs = (await collectMessages(out("m"), 2)) as MeterMsg[];
    assert.equal(dt4261(M1).gatt.mtu, 256, "the link runs at min(256, 517): the reply comes as indications of 253 and 18 bytes");
    assert.deepEqual(
      msgs.map((m) => [m.payload, m.raw]),
      [
        [null, long],
        [2, "+2.00000000E+00"],
      ],
    );
    assert.deepEqual(dt4261(M1).violations, []);
  });
});

describe("hioki-meter: a reply never reaches the wrong command (late, too long, oddly split)", function () {
  this.timeout(30000);

  useNodeRed();

  /** Sends the commands at once (they queue) and resolves with what came back for each: a message or an error. */
  async function ask(commands: string[]): Promise<{ payload?: unknown; raw?: string; error?: string }[]> {
    const results: { payload?: unknown; raw?: string; error?: string }[] = [];
    const onMsg = (msg: NodeMessage & { raw?: string; tag?: number }): void => {
      results[msg.tag ?? -1] = { payload: msg.payload, raw: msg.raw };
    };
    const onCaught = (msg: NodeMessage): void => {
      const caught = msg as CaughtMsg & { tag?: number };
      results[caught.tag ?? -1] = { error: caught.error.message };
    };
    let answered: () => void = () => undefined;
    const allAnswered = new Promise<void>((resolve) => (answered = resolve));
    const check = (): void => {
      if (commands.every((_c, i) => results[i] !== undefined)) answered();
    };
    // After the listeners that record each answer.
    out("m").on("input", onMsg);
    helper.getNode("caught").on("input", onCaught);
    out("m").on("input", check);
    helper.getNode("caught").on("input", check);
    let timer: NodeJS.Timeout | undefined;
    try {
      commands.forEach((payload, tag) => node("m").receive({ payload, tag } as NodeMessage));
      await Promise.race([
        allAnswered,
        new Promise((_resolve, reject) => {
          timer = setTimeout(() => reject(new Error(`not within 15000 ms: an answer to each of ${JSON.stringify(commands)}`)), 15000);
        }),
      ]);
    } finally {
      clearTimeout(timer);
      out("m").removeListener("input", check);
      helper.getNode("caught").removeListener("input", check);
      out("m").removeListener("input", onMsg);
      helper.getNode("caught").removeListener("input", onCaught);
    }
    return results;
  }

  async function meterFlow(scenario: unknown, extra: Record<string, unknown> = {}): Promise<void> {
    await load([simConfig(scenario), meterNode("m", { interval: 0, ...extra }), sink("m"), ...catcher()]);
    await waitForStatus(node("m"), isConnected);
  }

  it("a reply that comes after its timeout is discarded (with a warning), not taken as the next command's answer", async () => {
    // Simulated time runs 10× faster: the meter answers *IDN? after 1500 ms of real time; the node gives up after
    // 1000 ms and holds the next command back until 2000 ms (margins of 500 ms for a busy machine).
    await meterFlow({ peripherals: [meter(M1, { values: [2, 5], commandDelaysMs: { "*IDN?": 15000 } })] }, { replyTimeout: 1000 });
    const [idn, max, fetch] = await ask(["*IDN?", ":CALC:STAT:MAX?", "FETC?"]);
    assert.match(String(idn.error), /no reply to "\*IDN\?" within 1000 ms/);
    assert.deepEqual(max, { payload: 5, raw: "+5.00000000E+00" }, "the statistics query gets its own answer, not the identification");
    assert.deepEqual(fetch, { payload: 2, raw: "+2.00000000E+00" });
    const [warning, ...more] = warningsOf(node("m"));
    assert.deepEqual(more, []);
    assert.match(warning, /discarded 28 bytes .*after "\*IDN\?" had failed/);
    assert.doesNotMatch(warning, /HIOKI|DT4261/, "the warning never echoes what the meter sent");
    assert.deepEqual(dt4261(M1).commandLog, ["*IDN?", ":CALC:STAT:MAX?", "FETC?"]);
  });

  it("a reply over 4096 bytes fails its own command; its tail is discarded, not handed down the queue", async () => {
    await meterFlow({ peripherals: [meter(M1, { values: [1, 2], replyBytesFor: { "*IDN?": 5000 } })] });
    const [idn, first, second] = await ask(["*IDN?", "FETC?", "FETC?"]);
    assert.match(String(idn.error), /reply to "\*IDN\?" is longer than 4096 bytes/);
    assert.deepEqual([first, second], [
      { payload: 1, raw: "+1.00000000E+00" },
      { payload: 2, raw: "+2.00000000E+00" },
    ]);
    const [warning, ...more] = warningsOf(node("m"));
    assert.deepEqual(more, []);
    assert.match(warning, /discarded 5000 bytes .*longer than 4096 bytes.*"\*IDN\?"/);
    assert.doesNotMatch(warning, /HIOKI|DT4261/);
  });

  it("an LF at the end of a full-size indication does not end the reply (MTU 23)", async () => {
    await meterFlow({ link: { maxMtu: 23 }, peripherals: [meter(M1, { values: [1, 2], split: "full-lf" })] });
    assert.equal(dt4261(M1).gatt.mtu, 23);
    const results = await ask(["*IDN?", "FETC?", "FETC?"]);
    assert.deepEqual(results, [
      { payload: "HIOKI,DT4261,000000\n001,V2.10", raw: "HIOKI,DT4261,000000\n001,V2.10" },
      { payload: 1, raw: "+1.00000000E+00" },
      { payload: 2, raw: "+2.00000000E+00" },
    ]);
    assert.deepEqual(warningsOf(node("m")), []);
  });

  it("an LF alone in the last indication (a reply ending in CR LF) belongs to its reply (MTU 23)", async () => {
    await meterFlow({ link: { maxMtu: 23 }, peripherals: [meter(M1, { values: [1, 2], split: "lone-lf" })] });
    const results = await ask(["QPID;FETC?", "FETC?", "*IDN?"]);
    assert.deepEqual(results, [
      { payload: 1, raw: "DT4261;+1.00000000E+00" },
      { payload: 2, raw: "+2.00000000E+00" },
      { payload: "HIOKI,DT4261,000000001,V2.10", raw: "HIOKI,DT4261,000000001,V2.10" },
    ]);
    assert.deepEqual(warningsOf(node("m")), []);
  });

  it("pieces of random sizes: each command gets at most its own reply, what was cut off is discarded with a warning", async () => {
    await meterFlow({ link: { maxMtu: 23 }, peripherals: [meter(M1, { split: "random", splitSeed: 5 })] });
    const expected = ["HIOKI,DT4261,000000001,V2.10", "DCV,AUTO", "DT4261", "HIOKI,DT4261,000000001,V2.10", "OK", "DCV,AUTO"];
    const commands = ["*IDN?", ":CONF?", "QPID", "*IDN?", ":SYST:LLO", ":CONF?"];
    const results = await ask(commands);
    results.forEach((r, i) => {
      assert.equal(r.error, undefined, `${commands[i]}: ${String(r.error)}`);
      assert.ok(r.raw !== undefined && r.raw !== "" && expected[i].startsWith(r.raw), `${commands[i]} got ${JSON.stringify(r.raw)}, not part of its own reply`);
    });
    const cut = results.filter((r, i) => r.raw !== expected[i]).length;
    assert.ok(cut > 0, "this seed cuts some reply short");
    assert.equal(warningsOf(node("m")).length, cut, "one warning per reply cut short");
    for (const w of warningsOf(node("m"))) assert.match(w, /discarded \d+ bytes .*after the reply to "[^"]+" was complete/);
  });
});

describe("hioki-meter: the write type follows the command characteristic's properties (as aioble does)", function () {
  this.timeout(30000);

  useNodeRed();

  for (const [commandWrite, expected] of [
    ["write", "write"],
    ["writeWithoutResponse", "writeWithoutResponse"],
    ["both", "writeWithoutResponse"],
  ] as const) {
    it(`a meter whose command characteristic allows ${commandWrite === "both" ? "both types" : `only ${commandWrite}`} is written with ${expected}`, async () => {
      await load([simConfig({ peripherals: [meter(M1, { values: [3, 4], commandWrite })] }), meterNode("m"), sink("m"), ...catcher()]);
      const msgs = (await collectMessages(out("m"), 3)) as MeterMsg[];
      assert.deepEqual(
        msgs.map((m) => m.payload),
        [3, 4, 3],
      );
      const types = dt4261(M1).writeTypes;
      assert.ok(types.length >= 3 && types.every((t) => t === expected), `write types: ${JSON.stringify(types)}`);
      assert.deepEqual(dt4261(M1).violations, []);
    });
  }

  it("a command longer than one Write Command (MTU 23, 43 bytes with CR LF) reaches a write-without-response meter whole", async () => {
    const command = ":SYSTem:COMMunicate:BLUEtooth:NAME:FULL?";
    await load([
      simConfig({ peripherals: [meter(M1, { serverMtu: 23, commandWrite: "writeWithoutResponse", replies: ["+1.00000000E+00"] })] }),
      meterNode("m", { command }),
      sink("m"),
      ...catcher(),
    ]);
    const msgs = (await collectMessages(out("m"), 2)) as MeterMsg[];
    assert.deepEqual(
      msgs.map((m) => m.payload),
      [1, 1],
    );
    assert.equal(dt4261(M1).gatt.mtu, 23);
    assert.deepEqual(dt4261(M1).violations, [], "every Write Command fits the link's MTU");
  });
});
