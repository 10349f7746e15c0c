/**
 * Soak under load (issue 6): seven peripherals on one simulated adapter for a bounded time, with random power
 * cycles, checking that nothing the simulated radio delivered is lost, reordered or duplicated on its way out
 * of the nodes, that memory stays flat and how late the event loop runs.
 *
 * `npm run soak` runs it for 10 minutes (`--minutes N`, `--seed N`); test/nodes/soak-short.test.ts runs the same
 * code for well under a minute in CI. It prints a markdown report; the CLI exits 1 when a check fails.
 *
 * What is counted, per heart-rate sensor:
 * - generated: measurements the peripheral took from its list (HeartRatePeripheral.measurementsSent);
 * - delivered: notifications of 0x2A37 that entered the host as H4 ACL packets (the controller's 'h4' event is
 *   the exact moment noble's driver receives a packet). A measurement taken while the link is down or dropping
 *   never gets there: those are the reconnect window's, and generated − delivered counts them;
 * - out: messages the heart-rate node sent.
 * Every delivered notification must come out exactly once, in order. The sensors send the Energy Expended field,
 * a counter that grows by one per measurement and survives reconnects, so each value is distinct and increasing.
 */
import { parseArgs as parseCommandLine } from "node:util";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { monitorEventLoopDelay } from "node:perf_hooks";
import * as v8 from "node:v8";
import * as vm from "node:vm";
import type { Node, NodeMessage } from "node-red";
import bleConfigNode = require("../../src/ble-config");
import heartRateNode = require("../../src/heart-rate");
import hiokiMeterNode = require("../../src/hioki-meter");
import nusYmodemReceiveNode = require("../../src/nus-ymodem-receive");
import type { BleConfigNode } from "../../src/red/ble-config-node";
import { AttOpcode } from "../../src/protocol/att";
import { CID_ATT, H4_ACL } from "../../src/protocol/hci";
import type { VirtualController } from "../../src/sim/controller";
import type { HeartRatePeripheral } from "../../src/sim/peripherals/heart-rate";
import { generateFileContent } from "../../src/sim/peripherals/nus-ymodem";
import { seededRandom } from "../../src/sim/random";
import type { Simulation } from "../../src/sim/scenario";
import { helper, loadFlow, type FlowNode } from "../support/red";

export interface SoakOptions {
  /** Measured run after the warm-up, in real seconds. */
  durationS: number;
  /** Warm-up before the heap baseline, in real seconds. */
  warmupS: number;
  /** Real seconds between file downloads. */
  downloadEveryS: number;
  /** Real seconds between power cycles: uniform in [min, max]. */
  powerCycleGapS: [number, number];
  /** How long a peripheral stays off: uniform in [min, max] seconds. */
  powerOffS: [number, number];
  seed: number;
  /** Progress lines (stderr in the CLI). */
  log?: (line: string) => void;
}

export interface SoakResult {
  ok: boolean;
  failures: string[];
  report: string;
}

const HEART_RATE = ["d8:75:ba:00:00:01", "d8:75:ba:00:00:02", "d8:75:ba:00:00:03", "d8:75:ba:00:00:04"];
const METERS = ["a4:9e:69:00:00:01", "a4:9e:69:00:00:02"];
const NUS = "e3:c3:5c:00:00:01";
const ALL = [...HEART_RATE, ...METERS, NUS];
const HR_INTERVAL_MS = 20;
const POLL_MS = 100;
const FILE_BYTES = 32 * 1024;
const FILE_SEED = 7;
/** Delivered notifications not yet out when the run stops: in flight through noble and Node-RED, not lost. */
const IN_FLIGHT_ALLOWANCE = 20;
const HEAP_GROWTH_LIMIT = 0.1;
/** monitorEventLoopDelay records each whole sampling interval, so the lag is a sample minus this. */
const LAG_RESOLUTION_MS = 10;

/**
 * A full collection, whether or not node was started with --expose-gc: the flag can be set at run time and the
 * function picked up from a fresh context (tsx and mocha are then run as usual).
 */
function collector(): () => void {
  const existing = (globalThis as { gc?: () => void }).gc;
  if (typeof existing === "function") return existing;
  v8.setFlagsFromString("--expose-gc");
  return vm.runInNewContext("gc") as () => void;
}

/**
 * node-red-node-test-helper wraps Node.prototype's methods (send, status, error, …) and the log in sinon spies,
 * which keep every call's arguments: over a soak that is every message, a growing heap that users' Node-RED does
 * not have. Forgetting the recorded calls every second keeps the measurement about the package.
 */
function forgetHelperSpies(): void {
  const internals = helper as unknown as { _NodePrototype?: Record<string, unknown>; _logSpy?: unknown };
  const spies = [...Object.values(internals._NodePrototype ?? {}), internals._logSpy];
  for (const spy of spies) {
    const reset = (spy as { resetHistory?: unknown } | null)?.resetHistory;
    if (typeof reset === "function") (reset as () => void).call(spy);
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Per sensor: the stream check (delivered values waiting to come out) and its counts. */
interface Stream {
  address: string;
  waiting: number[];
  delivered: number;
  out: number;
  lost: number;
  reordered: number;
  duplicated: number;
  lastOut: number;
}

interface HeartRateMsg extends NodeMessage {
  heartRate?: { energyExpended?: number | null };
  peripheral?: { address?: string };
}

/**
 * The Energy Expended value of a heart-rate notification in an H4 packet towards the host, or null for any other
 * packet. A 0x2A37 value of a few bytes travels as one unfragmented ACL packet (the link's data length is 251).
 */
function energyOf(packet: Buffer): { handle: number; energy: number } | null {
  if (packet.length < 13 || packet[0] !== H4_ACL) return null;
  const handle = packet.readUInt16LE(1) & 0x0fff;
  if (packet.readUInt16LE(7) !== CID_ATT || packet[9] !== AttOpcode.HandleValueNotification) return null;
  const value = packet.subarray(12);
  const flags = value[0];
  // Heart-rate measurement with Energy Expended (bit 3); other notifications (battery) never have it.
  if ((flags & 0x08) === 0 || value.length < 2) return null;
  const at = 1 + ((flags & 0x01) !== 0 ? 2 : 1);
  if (value.length < at + 2) return null;
  return { handle, energy: value.readUInt16LE(at) };
}

function scenario(): unknown {
  return {
    peripherals: [
      ...HEART_RATE.map((address, i) => ({
        kind: "heart-rate",
        address,
        name: `HRM-${i + 1}`,
        bpm: [60 + i, 61 + i, 62 + i],
        energyExpended: true,
        intervalMs: HR_INTERVAL_MS,
      })),
      ...METERS.map((address, i) => ({
        kind: "hioki-dt4261",
        address,
        addressType: "public",
        name: `Z3210V2.10:DT4261#00000000${i + 1}`,
        values: [0, 0.0001, -0.0001, 1.5],
      })),
      { kind: "nus-ymodem", address: NUS, name: "mpy-nus", filename: "soak.bin", sizeBytes: FILE_BYTES, seed: FILE_SEED },
    ],
    // Power cycles are driven from here (seeded), not the scenario's timeline: the run's length is a parameter.
    events: [],
    timeScale: 1,
  };
}

function flow(scenarioFile: string, directory: string): FlowNode[] {
  const z = "soak";
  return [
    { id: z, type: "tab", label: "soak" },
    { id: "cfg", type: "ble-config", transport: "simulator", simScenario: scenarioFile, maxConnections: 7, reconnectDelay: 200 },
    ...HEART_RATE.map((address, i) => ({ id: `hr${i}`, z, type: "heart-rate", ble: "cfg", address, deviceName: "", topic: `heart rate ${i + 1}`, wires: [["hrOut"]] })),
    ...METERS.map((address, i) => ({ id: `m${i}`, z, type: "hioki-meter", ble: "cfg", address, deviceName: "", interval: POLL_MS, topic: `meter ${i + 1}`, wires: [["meterOut"]] })),
    { id: "dl", z, type: "nus-ymodem-receive", ble: "cfg", address: NUS, deviceName: "", mtu: 247, mode: "C", crc: "auto", directory, wires: [["fileOut"]] },
    { id: "hrOut", z, type: "helper" },
    { id: "meterOut", z, type: "helper" },
    { id: "fileOut", z, type: "helper" },
    { id: "catchAll", z, type: "catch", scope: null, uncaught: false, wires: [["caught"]] },
    { id: "caught", z, type: "helper" },
  ];
}

const mb = (bytes: number): string => (bytes / 1024 / 1024).toFixed(1);

/** Runs the soak inside an already started Node-RED test server (helper.startServer). Unloads the flow at the end. */
export async function runSoak(options: SoakOptions): Promise<SoakResult> {
  const log = options.log ?? ((): void => undefined);
  const gc = collector();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ble-soak-"));
  const scenarioFile = path.join(dir, "scenario.json");
  fs.writeFileSync(scenarioFile, JSON.stringify(scenario()));
  const files = path.join(dir, "files");
  fs.mkdirSync(files);
  const expectedFile = generateFileContent(FILE_BYTES, FILE_SEED);
  const random = seededRandom(options.seed);
  const failures: string[] = [];
  const timers = new Set<NodeJS.Timeout>();
  const later = (ms: number, fn: () => void): void => {
    const timer = setTimeout(() => {
      timers.delete(timer);
      fn();
    }, ms);
    timers.add(timer);
  };

  await loadFlow([bleConfigNode, heartRateNode, hiokiMeterNode, nusYmodemReceiveNode], flow(scenarioFile, files));
  try {
    const cfg = helper.getNode("cfg") as BleConfigNode;
    const simulation: Simulation | null | undefined = cfg.adapter?.simulation;
    if (!simulation) throw new Error(`the config node opened no simulator (${cfg.configError ?? "no adapter"})`);
    const controller: VirtualController = simulation.controller;
    const sensors = HEART_RATE.map((a) => controller.peripheral(a) as unknown as HeartRatePeripheral);

    // ---- the heart-rate streams
    const streams = new Map<string, Stream>(HEART_RATE.map((address) => [address, { address, waiting: [], delivered: 0, out: 0, lost: 0, reordered: 0, duplicated: 0, lastOut: -1 }]));
    const addressOfHandle = new Map<number, string>();
    controller.on("connectionEvent", (info: { handle: number; address: string }) => {
      addressOfHandle.set(info.handle, info.address);
    });
    // Prepended: counted before noble's driver (the other 'h4' listener) hands the packet on.
    controller.prependListener("h4", (packet: Buffer) => {
      const n = energyOf(packet);
      if (!n) return;
      const stream = streams.get(addressOfHandle.get(n.handle) ?? "");
      if (!stream) return;
      stream.delivered++;
      stream.waiting.push(n.energy);
    });
    let strayMessages = 0;
    helper.getNode("hrOut").on("input", (msg: HeartRateMsg) => {
      const stream = streams.get(msg.peripheral?.address ?? "");
      const energy = msg.heartRate?.energyExpended;
      if (!stream || typeof energy !== "number") {
        strayMessages++;
        return;
      }
      stream.out++;
      if (energy <= stream.lastOut) {
        // Already out (or older than the last one out): a duplicate if it was seen, a reordering otherwise.
        if (stream.waiting.includes(energy)) stream.reordered++;
        else stream.duplicated++;
        return;
      }
      stream.lastOut = energy;
      const at = stream.waiting.indexOf(energy);
      if (at < 0) {
        // Never delivered to the host: the node made it up, or it came twice through different paths.
        stream.duplicated++;
        return;
      }
      // Anything delivered before it that has not come out is lost (or will come later: then counted reordered).
      stream.lost += at;
      stream.waiting.splice(0, at + 1);
    });

    // ---- meters and downloads
    const meterOut = new Map<string, number>(METERS.map((a) => [a, 0]));
    helper.getNode("meterOut").on("input", (msg: HeartRateMsg) => {
      const a = msg.peripheral?.address ?? "";
      meterOut.set(a, (meterOut.get(a) ?? 0) + 1);
    });
    /** Simulated-power state of the NUS device over the current download: a failure then is the fault's, not ours. */
    let nusCycledDuringDownload = false;
    let downloadRunning = false;
    const downloads = { started: 0, ok: 0, failedInPowerCycle: 0, failed: 0, corrupt: 0, skippedBusy: 0 };
    const errors: string[] = [];
    const finishDownload = (ok: boolean, detail?: string): void => {
      if (!downloadRunning) return;
      downloadRunning = false;
      if (ok) downloads.ok++;
      else if (nusCycledDuringDownload) downloads.failedInPowerCycle++;
      else {
        downloads.failed++;
        failures.push(`a download failed with the device powered: ${detail ?? "?"}`);
      }
    };
    helper.getNode("fileOut").on("input", (msg: NodeMessage & { payload?: unknown; filename?: string }) => {
      const data = Buffer.isBuffer(msg.payload) ? msg.payload : typeof msg.filename === "string" && fs.existsSync(msg.filename) ? fs.readFileSync(msg.filename) : null;
      if (!data || !data.equals(expectedFile)) {
        downloads.corrupt++;
        failures.push(`a downloaded file is not byte-exact (${data ? data.length : "no"} bytes)`);
      }
      // Saved copies are deleted at once: the soak must not fill the disk.
      for (const f of fs.readdirSync(files)) fs.rmSync(path.join(files, f), { force: true });
      finishDownload(true);
    });
    helper.getNode("caught").on("input", (msg: NodeMessage & { error?: { message?: string; source?: { id?: string } } }) => {
      const text = `${msg.error?.source?.id ?? "?"}: ${msg.error?.message ?? "error"}`;
      if (errors.length < 20) errors.push(text);
      if (msg.error?.source?.id === "dl") finishDownload(false, text);
    });
    const trigger = (): void => {
      if (downloadRunning) {
        downloads.skippedBusy++;
        return;
      }
      downloadRunning = true;
      nusCycledDuringDownload = !controller.isPoweredOn(NUS);
      downloads.started++;
      (helper.getNode("dl") as Node).receive({ payload: true } as NodeMessage);
    };

    // ---- power cycles (seeded)
    const cycles: string[] = [];
    let cycling = true;
    let powerCycles = 0;
    const scheduleCycle = (): void => {
      const [gmin, gmax] = options.powerCycleGapS;
      later((gmin + random() * (gmax - gmin)) * 1000, () => {
        if (!cycling) return;
        const address = ALL[Math.floor(random() * ALL.length)];
        const [omin, omax] = options.powerOffS;
        const offMs = Math.round((omin + random() * (omax - omin)) * 1000);
        controller.powerOff(address);
        powerCycles++;
        if (address === NUS && downloadRunning) nusCycledDuringDownload = true;
        if (cycles.length < 200) cycles.push(`${address} off ${(offMs / 1000).toFixed(1)} s`);
        later(offMs, () => {
          controller.powerOn(address);
          scheduleCycle();
        });
      });
    };

    // ---- warm-up, then the measured run
    const start = performance.now();
    const downloadTimer = setInterval(trigger, options.downloadEveryS * 1000);
    trigger();
    log(`warming up for ${options.warmupS} s…`);
    for (const warmEnd = performance.now() + options.warmupS * 1000; performance.now() < warmEnd; ) {
      await sleep(Math.min(1000, warmEnd - performance.now()));
      forgetHelperSpies();
    }
    gc();
    const heapWarm = process.memoryUsage().heapUsed;
    const rssWarm = process.memoryUsage().rss;
    const lag = monitorEventLoopDelay({ resolution: LAG_RESOLUTION_MS });
    lag.enable();
    const cpu0 = process.cpuUsage();
    const meters0 = METERS.map((a) => meterOut.get(a) ?? 0);
    scheduleCycle();
    const heapSamples: number[] = [];
    const end = performance.now() + options.durationS * 1000;
    let nextLog = performance.now() + 60_000;
    while (performance.now() < end) {
      await sleep(Math.min(1000, end - performance.now()));
      forgetHelperSpies();
      heapSamples.push(process.memoryUsage().heapUsed);
      if (performance.now() >= nextLog) {
        nextLog += 60_000;
        const out = [...streams.values()].reduce((n, s) => n + s.out, 0);
        log(`${((performance.now() - start) / 60000).toFixed(1)} min: ${out} heart-rate messages, ${powerCycles} power cycles, ${downloads.ok} files, heap ${mb(process.memoryUsage().heapUsed)} MB`);
      }
    }

    // ---- stop: no new faults, everything powered, let the streams settle, then read the counts at once
    cycling = false;
    clearInterval(downloadTimer);
    for (const timer of timers) clearTimeout(timer);
    timers.clear();
    for (const a of ALL) controller.powerOn(a);
    lag.disable();
    const cpu = process.cpuUsage(cpu0);
    const measuredS = (performance.now() - start) / 1000 - options.warmupS;
    // A download still running gets time to finish (or to fail) before it is judged.
    const until = performance.now() + 30_000;
    while (downloadRunning && performance.now() < until) await sleep(100);
    if (downloadRunning) {
      failures.push("the last download neither finished nor failed within 30 s after the run");
      downloadRunning = false;
    }
    forgetHelperSpies();
    gc();
    const heapEnd = process.memoryUsage().heapUsed;
    const rssEnd = process.memoryUsage().rss;
    const tail = heapSamples.slice(-60);
    const heapTailMin = tail.length ? Math.min(...tail) : heapEnd;

    const rows: string[] = [];
    let totals = { generated: 0, delivered: 0, out: 0, lost: 0, reordered: 0, duplicated: 0, inFlight: 0, window: 0 };
    HEART_RATE.forEach((address, i) => {
      const s = streams.get(address)!;
      // From the flow's start (warm-up included): the stream check covers all of it.
      const generated = sensors[i].measurementsSent;
      const delivered = s.delivered;
      const out = s.out;
      const inFlight = s.waiting.length;
      // Left waiting beyond what can be in flight: delivered to the host and never out.
      const lost = s.lost + Math.max(0, inFlight - IN_FLIGHT_ALLOWANCE);
      const window = generated - delivered;
      totals = {
        generated: totals.generated + generated,
        delivered: totals.delivered + delivered,
        out: totals.out + out,
        lost: totals.lost + lost,
        reordered: totals.reordered + s.reordered,
        duplicated: totals.duplicated + s.duplicated,
        inFlight: totals.inFlight + Math.min(inFlight, IN_FLIGHT_ALLOWANCE),
        window: totals.window + window,
      };
      rows.push(`| ${address} | ${generated} | ${delivered} | ${window} | ${out} | ${lost} | ${s.reordered} | ${s.duplicated} |`);
    });
    if (totals.lost > 0) failures.push(`${totals.lost} heart-rate notifications delivered to the host never came out of the nodes`);
    if (totals.reordered > 0) failures.push(`${totals.reordered} heart-rate messages out of order`);
    if (totals.duplicated > 0) failures.push(`${totals.duplicated} heart-rate messages duplicated (or never delivered by the simulator)`);
    // A run in which nothing flowed proves nothing: each sensor must have delivered most of its 50 Hz.
    const expectedPerSensor = ((measuredS + options.warmupS) * 1000) / HR_INTERVAL_MS;
    if (totals.out < 0.5 * expectedPerSensor * HEART_RATE.length) failures.push(`only ${totals.out} heart-rate messages in ${measuredS.toFixed(0)} s (expected about ${Math.round(expectedPerSensor * HEART_RATE.length)})`);
    if (strayMessages > 0) failures.push(`${strayMessages} heart-rate messages without a known sensor or energy value`);
    const growth = (heapEnd - heapWarm) / heapWarm;
    if (growth > HEAP_GROWTH_LIMIT) failures.push(`heap grew ${(growth * 100).toFixed(1)} % (limit ${HEAP_GROWTH_LIMIT * 100} %)`);
    const meterMsgs = METERS.map((a, i) => (meterOut.get(a) ?? 0) - meters0[i]);
    if (meterMsgs.some((n) => n < measuredS)) failures.push(`a meter sent fewer than one message per second: ${meterMsgs.join(", ")}`);
    if (downloads.ok === 0) failures.push("no file was downloaded");
    const lagMs = (ns: number): string => Math.max(0, ns / 1e6 - LAG_RESOLUTION_MS).toFixed(2);
    const sortedHeap = [...heapSamples].sort((a, b) => a - b);

    const report = [
      `## Soak (${(measuredS + options.warmupS).toFixed(0)} s including warm-up, seed ${options.seed})`,
      "",
      `Seven peripherals on one simulated adapter (maxConnections 7, link ${controller.link.connectionIntervalMs} ms / ${controller.link.pdusPerEvent} PDUs per event / data length ${controller.link.dataLength}, timeScale 1): four heart-rate sensors notifying every ${HR_INTERVAL_MS} ms, two HIOKI meters polled every ${POLL_MS} ms, one nus-ymodem server (${FILE_BYTES / 1024} KiB file) downloaded every ${options.downloadEveryS} s; a random peripheral powered off for ${options.powerOffS[0]}–${options.powerOffS[1]} s every ${options.powerCycleGapS[0]}–${options.powerCycleGapS[1]} s. Ran ${(measuredS + options.warmupS).toFixed(0)} s: a ${options.warmupS} s warm-up (heap baseline), then ${measuredS.toFixed(0)} s measured (heap, event loop, CPU, power cycles); the message counts cover the whole run. Node ${process.version}, ${os.cpus()[0]?.model ?? "unknown CPU"}.`,
      "",
      "| heart-rate sensor | generated | delivered to host | not delivered (taken during power-off windows, or queued at the stop) | messages out | lost | reordered | duplicated |",
      "|---|---|---|---|---|---|---|---|",
      ...rows,
      `| **total** | ${totals.generated} | ${totals.delivered} | ${totals.window} | ${totals.out} | **${totals.lost}** | **${totals.reordered}** | **${totals.duplicated}** |`,
      "",
      `- in flight at the stop (delivered, not yet out; not counted as lost): ${totals.inFlight}`,
      `- power cycles: ${powerCycles}`,
      `- meter messages: ${meterMsgs.join(" + ")} (${(meterMsgs.reduce((a, b) => a + b, 0) / measuredS).toFixed(1)}/s for 2 × ${1000 / POLL_MS}/s polls; polls are skipped while a command is in flight or the meter is off)`,
      `- file downloads: ${downloads.ok} byte-exact, ${downloads.failedInPowerCycle} failed because the device was power-cycled during them, ${downloads.failed} failed otherwise, ${downloads.corrupt} corrupt, ${downloads.skippedBusy} triggers skipped (previous still running)`,
      `- heap used (after a forced GC): ${mb(heapWarm)} MB after warm-up, ${mb(heapEnd)} MB after the run: ${growth >= 0 ? "+" : ""}${(growth * 100).toFixed(1)} % (limit +${HEAP_GROWTH_LIMIT * 100} %); without GC over the run min ${mb(sortedHeap[0] ?? 0)} / max ${mb(sortedHeap[sortedHeap.length - 1] ?? 0)} MB, min over the last minute ${mb(heapTailMin)} MB; RSS ${mb(rssWarm)} → ${mb(rssEnd)} MB`,
      `- event-loop lag (beyond the ${LAG_RESOLUTION_MS} ms sampling timer): p50 ${lagMs(lag.percentile(50))} ms, p99 ${lagMs(lag.percentile(99))} ms, max ${lagMs(lag.max)} ms`,
      `- CPU: ${((cpu.user + cpu.system) / 1000 / measuredS / 10).toFixed(1)} % of one core (${((cpu.user + cpu.system) / 1000).toFixed(0)} ms over ${measuredS.toFixed(0)} s)`,
      `- Catch-able errors seen (first ${Math.min(errors.length, 20)}): ${errors.length ? errors.map((e) => `\`${e}\``).join("; ") : "none"}`,
      "",
      failures.length === 0 ? "**PASS**: zero lost, zero reordered, zero duplicated; heap flat." : `**FAIL**:\n${failures.map((f) => `- ${f}`).join("\n")}`,
    ].join("\n");
    return { ok: failures.length === 0, failures, report };
  } finally {
    for (const timer of timers) clearTimeout(timer);
    await helper.unload();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function parseArgs(argv: string[]): { minutes: number; seed: number } {
  const { values } = parseCommandLine({ args: argv.filter((a) => a !== "--"), options: { minutes: { type: "string" }, seed: { type: "string" } } });
  const minutes = Number(values.minutes ?? 10);
  // Bounded: the soak must stop by itself within 10 minutes.
  if (!(minutes >= 0.5 && minutes <= 10)) throw new Error("--minutes must be a number from 0.5 to 10");
  const seed = Number(values.seed ?? 1);
  if (!Number.isInteger(seed)) throw new Error("--seed must be an integer");
  return { minutes, seed };
}

async function main(): Promise<number> {
  const { minutes, seed } = parseArgs(process.argv.slice(2));
  // The warm-up and the final settling are inside the bound: 10 % warm-up (at most a minute), 30 s reserve.
  const totalS = minutes * 60;
  const warmupS = Math.min(60, Math.round(totalS * 0.1));
  const durationS = Math.max(10, totalS - warmupS - 35);
  await new Promise<void>((resolve) => helper.startServer(() => resolve()));
  try {
    const result = await runSoak({
      durationS,
      warmupS,
      downloadEveryS: 60,
      powerCycleGapS: [15, 45],
      powerOffS: [0.5, 10],
      seed,
      log: (line) => process.stderr.write(`${line}\n`),
    });
    process.stdout.write(`${result.report}\n`);
    return result.ok ? 0 : 1;
  } finally {
    await new Promise<void>((resolve) => helper.stopServer(() => resolve()));
  }
}

if (require.main === module) {
  main().then(
    (code) => process.exit(code),
    (error: unknown) => {
      process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
      process.exit(1);
    },
  );
}
