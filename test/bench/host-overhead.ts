/**
 * Host overhead (issue 12, "Performance, measured while the hot path is open"): what the package's own layers
 * cost per notification on top of noble, with no simulator in the process while it is measured.
 *
 * Record: the simulator (fixed scenario: one heart-rate sensor, a 7.5 ms link, the sensor's periodic measurements
 * off) writes a BTSnoop capture of everything between it and the host while the host connects, discovers,
 * subscribes and then receives a burst of BURST notifications (uint16 heart rate 0, 1, 2 … — the sequence number).
 * It is recorded twice, once per host below, because each host opens the link with its own requests; the bursts of
 * the two captures must be byte-identical (the bench fails otherwise), so both hosts are measured on the same
 * traffic.
 *
 * Replay (./hci-replay.ts): a replay peer plugged in where the virtual controller goes (the driver wrapper's
 * `virtual:<id>` UART port) answers each packet the host sends with the packets recorded after it, then plays the
 * burst as fast as the host takes it. Two hosts, measured in alternation on the same process:
 * - (a) noble alone: `withBindings('hci', uart port)`, connect, discover 180D/2A37, subscribe, and a bare 'data'
 *   listener that checks the sequence number;
 * - (b) the package: a ble-config node (transport uart, the same kind of port) and a heart-rate node as built
 *   (nodes/*.js) in Node-RED, i.e. noble, the pool, the session's subscription fan-out and the node's decoding and
 *   message building, up to the node's `send()`, which is replaced by the same check as (a)'s listener.
 * Both go through the driver wrapper (the ATT guard) that every HCI transport goes through.
 * CPU is process.cpuUsage() around each burst only (first packet played to last value checked), after warm-up
 * bursts; the figure is the median of REPEATS bursts, in µs per notification.
 *
 * `--profile DIR` (run.ts) also writes a V8 CPU profile of one more burst of each host (DIR/host-a.cpuprofile,
 * DIR/host-b.cpuprofile; see ./cpu-profile.ts), and a summary of where the time went to stderr.
 */
import { randomUUID } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import type { Characteristic, Noble } from "@stoprocent/noble";
import type { Node, NodeAPI, NodeMessage } from "node-red";
import { HEART_RATE_MEASUREMENT, HEART_RATE_SERVICE } from "../../src/protocol/heart-rate";
import { parseScenario, Simulation } from "../../src/sim/scenario";
import { scanFor } from "../support/nus-noble";
import { helper } from "../support/red";
import { profiled } from "./cpu-profile";
import { ReplayPeer, replayScript, type ReplayScript } from "./hci-replay";
import { attachPeer, detachPeer, driverGuards } from "./virtual-port";

type NodeModule = (RED: NodeAPI) => void;

export interface HostOverheadModules {
  bleConfig: NodeModule;
  heartRate: NodeModule;
}

export interface HostOverheadOptions {
  /** Directory for CPU profiles of one burst per host; none when undefined. */
  profileDir?: string;
}

const SENSOR = "d8:75:ba:00:02:01";
/** Air time allows 13 small notifications per 7.5 ms event; the host sees them in event-sized groups. */
const LINK = { connectionIntervalMs: 7.5, pdusPerEvent: 100, dataLength: 27, maxMtu: 23 };
const PER_EVENT = 13;
const BURST = 20_000;
const WARMUP = 3;
const REPEATS = 9;
/** The recording runs the simulated clock faster: the capture keeps simulated time, the replay ignores time. */
const RECORD_TIME_SCALE = 8;
const TARGET_RATIO = 1.5;
const SETUP_TIMEOUT_MS = 30_000;
const BURST_TIMEOUT_MS = 30_000;
const BAUD = 1_000_000;

// ---------------------------------------------------------------------------------------------------------------
// What both hosts check: every burst value once, in order

class Sequence {
  wrong = 0;
  private next = 0;
  private total = 0;
  private resolve: () => void = () => undefined;

  /** Starts a burst of `total` values 0 … total − 1; resolves when the last has arrived. */
  expect(total: number): Promise<void> {
    this.next = 0;
    this.wrong = 0;
    this.total = total;
    return new Promise((resolve) => {
      this.resolve = resolve;
    });
  }

  take(value: unknown): void {
    if (value !== this.next) this.wrong++;
    this.next++;
    if (this.next === this.total) this.resolve();
  }

  get received(): number {
    return this.next;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The two hosts

interface Host {
  readonly sequence: Sequence;
  close(): Promise<void>;
}

function withDeadline<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms / 1000} s`)), ms);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

function nobleOn(port: string): Noble {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { withBindings } = require("@stoprocent/noble") as typeof import("@stoprocent/noble");
  return withBindings("hci", { hciDriver: "uart", bindParams: { uart: { port, baudRate: BAUD } } });
}

/** (a): noble alone, connected and subscribed through its own API, with a bare listener. */
async function openBareNoble(port: string): Promise<Host> {
  const sequence = new Sequence();
  const noble = nobleOn(port);
  const close = (): Promise<void> => {
    try {
      noble.stop();
    } catch {
      // A noble that never came up has nothing to stop.
    }
    noble.removeAllListeners();
    return Promise.resolve();
  };
  try {
    await withDeadline(
      (async () => {
        await noble.waitForPoweredOnAsync(SETUP_TIMEOUT_MS);
        const peripheral = await scanFor(noble, (p) => p.address.toLowerCase() === SENSOR);
        await peripheral.connectAsync();
        const { characteristics } = await peripheral.discoverSomeServicesAndCharacteristicsAsync([HEART_RATE_SERVICE], [HEART_RATE_MEASUREMENT]);
        const measurement: Characteristic | undefined = characteristics[0];
        if (!measurement) throw new Error("the sensor has no heart-rate measurement characteristic");
        measurement.on("data", (data: Buffer, isNotification: boolean) => {
          if (isNotification) sequence.take(data.readUInt16LE(1));
        });
        await measurement.subscribeAsync();
      })(),
      SETUP_TIMEOUT_MS,
      "noble connecting and subscribing",
    );
  } catch (error) {
    await close();
    throw error;
  }
  return { sequence, close };
}

/**
 * (b): the package in Node-RED. The flow is loaded and this returns at once: the node connects and subscribes
 * on its own (the caller waits for the sensor or the replay to say it has).
 */
async function loadNodeFlow(modules: HostOverheadModules, port: string): Promise<Host> {
  const sequence = new Sequence();
  const flow = [
    { id: "hotab", type: "tab" },
    { id: "hocfg", type: "ble-config", transport: "uart", uartPort: port, uartBaudRate: BAUD },
    { id: "hohr", z: "hotab", type: "heart-rate", ble: "hocfg", address: SENSOR, deviceName: "", topic: "", wires: [[]] },
  ];
  await helper.load([modules.bleConfig, modules.heartRate] as Parameters<typeof helper.load>[0], flow as Parameters<typeof helper.load>[1]);
  const node = helper.getNode("hohr") as Node | null;
  if (!node) throw new Error("the heart-rate node was not created");
  node.send = (msg?: NodeMessage | (NodeMessage | NodeMessage[] | null)[]): void => {
    sequence.take((msg as { payload?: unknown } | undefined)?.payload);
  };
  return { sequence, close: () => helper.unload() };
}

// ---------------------------------------------------------------------------------------------------------------
// Recording

interface BurstSensor {
  sendBurst(count: number): Promise<void>;
}

async function whenSubscribed(sensor: BurstSensor, what: string): Promise<void> {
  const deadline = performance.now() + SETUP_TIMEOUT_MS;
  for (;;) {
    try {
      // An empty burst resolves only once the central has enabled notifications.
      await sensor.sendBurst(0);
      return;
    } catch (error) {
      if (performance.now() > deadline) throw new Error(`${what}: the sensor saw no subscription within ${SETUP_TIMEOUT_MS / 1000} s`, { cause: error });
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
}

/** Runs the simulator with `open` as its host and returns the capture: setup, then the burst. */
async function record(dir: string, name: string, open: (port: string) => Promise<Host>): Promise<Buffer> {
  const captureFile = path.join(dir, `${name}.btsnoop`);
  const scenario = parseScenario(
    {
      link: LINK,
      // No periodic measurements: only the burst travels once the host has subscribed.
      peripherals: [{ kind: "heart-rate", address: SENSOR, name: "bench-host", bpm: [60], intervalMs: 3_600_000 }],
      capture: captureFile,
    },
    dir,
  );
  const simulation = new Simulation(scenario, { timeScale: RECORD_TIME_SCALE });
  const id = `bench-record-${name}-${randomUUID()}`;
  let host: Host | null = null;
  try {
    const port = attachPeer(id, simulation.controller);
    simulation.start();
    host = await open(port);
    const sensor = simulation.controller.peripheral(SENSOR) as unknown as BurstSensor | undefined;
    if (!sensor) throw new Error(`recording ${name}: no sensor ${SENSOR} in the simulation`);
    await whenSubscribed(sensor, `recording ${name}`);
    const all = host.sequence.expect(BURST);
    await withDeadline(Promise.all([sensor.sendBurst(BURST), all]), BURST_TIMEOUT_MS * 4, `recording ${name}: the burst`);
    if (host.sequence.wrong > 0) throw new Error(`recording ${name}: ${host.sequence.wrong} of ${BURST} values arrived out of sequence`);
    // Everything up to the last value is in the capture once it is flushed; the host's teardown is not.
    simulation.capture?.flush();
    return fs.readFileSync(captureFile);
  } finally {
    await host?.close();
    simulation.close();
    detachPeer(id);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Replay and measurement

interface Replayed {
  label: "a" | "b";
  peer: ReplayPeer;
  host: Host;
  id: string;
  /** µs of process CPU per notification, one per measured burst. */
  samples: number[];
}

async function replay(label: "a" | "b", script: ReplayScript, open: (port: string) => Promise<Host>): Promise<Replayed> {
  const peer = new ReplayPeer(script);
  const id = `bench-replay-${label}-${randomUUID()}`;
  const port = attachPeer(id, peer);
  let host: Host | null = null;
  try {
    host = await open(port);
    await withDeadline(peer.whenSetUp(), SETUP_TIMEOUT_MS, `replay ${label}: the host's setup`);
    // The last reply (the CCCD write's response) has been handled; let its promise chains settle.
    for (let i = 0; i < 10; i++) await new Promise((resolve) => setImmediate(resolve));
    if (peer.mismatches.length > 0) throw new Error(`replay ${label}: the host did not send what it sent while recording: ${peer.mismatches.join("; ")}`);
    return { label, peer, host, id, samples: [] };
  } catch (error) {
    await host?.close();
    detachPeer(id);
    throw error;
  }
}

async function burst(r: Replayed): Promise<number> {
  const all = r.host.sequence.expect(BURST);
  const cpu0 = process.cpuUsage();
  await r.peer.playBurst(PER_EVENT);
  await withDeadline(all, BURST_TIMEOUT_MS, `replay ${r.label}: the burst (${r.host.sequence.received} of ${BURST} values arrived)`);
  const cpu = process.cpuUsage(cpu0);
  if (r.host.sequence.wrong > 0) throw new Error(`replay ${r.label}: ${r.host.sequence.wrong} of ${BURST} values arrived out of sequence`);
  return (cpu.user + cpu.system) / BURST;
}

/** The replay peer emitting the burst to nobody: the harness's own share of both figures. */
async function harnessBurst(script: ReplayScript): Promise<number> {
  const peer = new ReplayPeer(script);
  const cpu0 = process.cpuUsage();
  await peer.playBurst(PER_EVENT);
  const cpu = process.cpuUsage(cpu0);
  return (cpu.user + cpu.system) / BURST;
}

/** The driver wrapper's guards alone on the burst, batched like the replay: their share of both figures. */
async function guardBurst(script: ReplayScript): Promise<number> {
  const guards = driverGuards();
  let passed = 0;
  const cpu0 = process.cpuUsage();
  for (let i = 0; i < script.burst.length; i += PER_EVENT) {
    const end = Math.min(script.burst.length, i + PER_EVENT);
    for (let j = i; j < end; j++) passed += guards(script.burst[j]);
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  const cpu = process.cpuUsage(cpu0);
  if (passed !== script.burst.length) throw new Error(`the driver's guards passed ${passed} of ${script.burst.length} notifications`);
  return (cpu.user + cpu.system) / BURST;
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((x, y) => x - y);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

async function profileBurst(r: Replayed, dir: string, log: (line: string) => void): Promise<void> {
  const file = path.join(dir, `host-${r.label}.cpuprofile`);
  const summary = await profiled(() => burst(r), file);
  log(`host ${r.label}: profile of one burst in ${file}\n${summary.map((l) => `  ${l}`).join("\n")}\n`);
}

// ---------------------------------------------------------------------------------------------------------------

export interface HostOverheadResult {
  aUs: number;
  bUs: number;
  harnessUs: number;
  /** The driver wrapper's guards alone, per notification (in both a and b). */
  guardUs: number;
  ratio: number;
  /** b against noble without the wrapper: b / (a − guards). */
  ratioToNoble: number;
  aSamples: number[];
  bSamples: number[];
}

/** Runs inside an already started Node-RED test server; returns markdown and failures. */
export async function runHostOverheadBench(modules: HostOverheadModules, log: (line: string) => void, options: HostOverheadOptions = {}): Promise<{ markdown: string; failures: string[]; result: HostOverheadResult | null }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ble-hbench-"));
  const failures: string[] = [];
  let result: HostOverheadResult | null = null;
  const open: Replayed[] = [];
  try {
    log(`host overhead: recording ${BURST} notifications from the simulator, twice…\n`);
    const scriptA = replayScript(await record(dir, "a", openBareNoble));
    const scriptB = replayScript(await record(dir, "b", (port) => loadNodeFlow(modules, port)));
    for (const [label, script] of [["a", scriptA], ["b", scriptB]] as const) {
      if (script.burst.length !== BURST) throw new Error(`recording ${label}: the capture ends in ${script.burst.length} notifications, expected ${BURST}`);
    }
    if (!scriptA.burst.every((p, i) => p.equals(scriptB.burst[i]))) throw new Error("the two recordings' bursts differ: (a) and (b) would not be measured on the same traffic");
    log(`host overhead: replaying (setup: ${scriptA.steps.length} host packets for (a), ${scriptB.steps.length} for (b))…\n`);
    open.push(await replay("a", scriptA, openBareNoble));
    open.push(await replay("b", scriptB, (port) => loadNodeFlow(modules, port)));
    const harness: number[] = [];
    const guard: number[] = [];
    for (let round = 0; round < WARMUP + REPEATS; round++) {
      // Alternating which host goes first spreads drift (garbage collection, other processes) over both.
      const order = round % 2 === 0 ? open : [...open].reverse();
      for (const r of order) {
        const us = await burst(r);
        if (round >= WARMUP) r.samples.push(us);
      }
      const h = await harnessBurst(scriptA);
      const g = await guardBurst(scriptA);
      if (round >= WARMUP) {
        harness.push(h);
        guard.push(g);
      }
    }
    const [a, b] = open;
    const aUs = median(a.samples);
    const bUs = median(b.samples);
    const guardUs = median(guard);
    result = { aUs, bUs, harnessUs: median(harness), guardUs, ratio: bUs / aUs, ratioToNoble: bUs / (aUs - guardUs), aSamples: a.samples, bSamples: b.samples };
    if (options.profileDir !== undefined) {
      for (const r of open) await profileBurst(r, options.profileDir, log);
    }
  } catch (error) {
    failures.push(`host overhead: ${error instanceof Error ? error.message : String(error)}`);
  } finally {
    for (const r of open) {
      await r.host.close();
      r.peer.close();
      detachPeer(r.id);
    }
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return { markdown: markdown(result), failures, result };
}

function markdown(r: HostOverheadResult | null): string {
  const header = [
    "notifications per burst",
    "(a) noble + bare listener, µs CPU/notification",
    "(b) + pool, session, heart-rate node to node.send, µs CPU/notification",
    "ratio (b)/(a)",
    `target (≤ ${TARGET_RATIO})`,
    "driver wrapper's guards, µs (in a and b)",
    "(b)/(a − guards)",
  ];
  const lines = [`| ${header.join(" | ")} |`, `|${header.map(() => "---").join("|")}|`];
  if (r) {
    lines.push(`| ${[BURST, r.aUs.toFixed(2), r.bUs.toFixed(2), r.ratio.toFixed(2), r.ratio <= TARGET_RATIO ? "PASS" : "MISS", r.guardUs.toFixed(2), r.ratioToNoble.toFixed(2)].join(" | ")} |`);
  }
  const spread = (samples: number[]): string => `${Math.min(...samples).toFixed(2)}–${Math.max(...samples).toFixed(2)}`;
  return [
    "## Host overhead: recorded HCI traffic replayed into noble (npm run bench)",
    "",
    `A capture of the simulator (one heart-rate sensor, ${LINK.connectionIntervalMs} ms link, a burst of ${BURST} uint16 notifications after connecting and subscribing) replayed with no simulator in the process: the replay peer answers each packet the host sends with what followed it in the recording, then plays the burst ${PER_EVENT} packets per event-loop turn, as fast as the host takes it. Node ${process.version}, ${os.cpus()[0]?.model ?? "unknown CPU"}.`,
    "",
    lines.join("\n"),
    "",
    "Notes:",
    "- (a) = noble's HCI stack (hci, ACL stream, GATT, characteristic 'data' event) with a bare listener that checks the sequence number. (b) = the same, plus the pool's session fan-out, the heart-rate node's decoding and message, up to its node.send() (replaced by the same check). Both go through the driver wrapper that every HCI transport goes through; its guards (ATT and advertising, measured alone on the same packets) are ours, so (b)/(a − guards) is the package against noble without it.",
    `- CPU = process.cpuUsage() around each burst, median of ${REPEATS} bursts per host after ${WARMUP} warm-up rounds, the hosts alternating.${r ? ` Spread: (a) ${spread(r.aSamples)}, (b) ${spread(r.bSamples)} µs. The replay peer alone (emitting to no host) costs ${r.harnessUs.toFixed(2)} µs per notification, included in both.` : ""}`,
  ].join("\n");
}
