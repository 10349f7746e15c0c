/**
 * The advertisement path (issue 14): BTHome advertisements of a busy room from the simulated radio to the ble-scan
 * node's `node.send`, decoded (half of the sensors encrypted, opened with their bind keys), in the Node-RED runtime
 * the other rows use (./run.ts starts it and calls this module).
 *
 * - rate: decoded messages per real second the node sends, over a fixed window once the scan runs;
 * - CPU per 1,000 reports: process.cpuUsage() over the same window (simulator, noble, the pool, Node-RED and the
 *   node together: an upper bound on the node's cost), and what that is of one core at the measured rate;
 * - node alone: the same reports (as noble handed them to the node) replayed through a fresh ScanReports in a
 *   tight loop (best of 5 rounds): the node's own filter, decode and message cost, without the radio and noble.
 * Every message must be decoded (a BTHome object with its temperature); anything else is a failure.
 */
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import type { Node, NodeAPI, NodeMessage } from "node-red";
import type { BleConfigNode } from "../../src/red/ble-config-node";
import { scanOptions, ScanReports, type ReportSource } from "../../src/red/scan-reports";
import { parseBindKeys } from "../../src/protocol/advertisement";
import { helper } from "../support/red";

type NodeModule = (RED: NodeAPI) => void;

export interface ScanModules {
  bleConfig: NodeModule;
  scan: NodeModule;
}

interface ScanRow {
  sensors: number;
  intervalMs: number;
  timeScale: number;
}

/** 100 sensors every 100 ms: 1,000 advertisements per simulated second; the clock speed-up makes the room busier. */
const ROWS: ScanRow[] = [
  { sensors: 100, intervalMs: 100, timeScale: 3 },
  { sensors: 100, intervalMs: 100, timeScale: 6 },
];
const TARGET_RATE = 2000;
/** Under 25 % of one core at the target rate: 125 ms of CPU per 1,000 reports. */
const TARGET_CPU_MS_PER_1000 = 125;
const WINDOW_MS = 3000;

function address(i: number): string {
  return `c0:00:00:00:${((i >> 8) & 0xff).toString(16).padStart(2, "0")}:${(i & 0xff).toString(16).padStart(2, "0")}`;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

interface RowResult {
  row: ScanRow;
  offered: number;
  sent: number;
  rate: number;
  cpuMsPer1000: number;
  coreShare: number;
  nodeAloneRate: number;
}

async function runRow(modules: ScanModules, row: ScanRow, dir: string, n: number): Promise<RowResult> {
  const keys = Array.from({ length: row.sensors }, (_, i) => (i % 2 === 0 ? crypto.randomBytes(16).toString("hex") : null));
  const scenarioFile = path.join(dir, `scan-${n}.json`);
  fs.writeFileSync(
    scenarioFile,
    JSON.stringify({
      peripherals: keys.map((key, i) => ({
        kind: "bthome",
        address: address(i),
        measurements: [
          { type: "temperature", values: [20 + (i % 10), 21, 22] },
          { type: "humidity", values: [40, 45, 50] },
          { type: "battery", values: [90] },
        ],
        repeat: 1,
        intervalMs: row.intervalMs,
        ...(key ? { bindKey: key } : {}),
      })),
    }),
  );
  const bindKeys = keys.flatMap((key, i) => (key ? [`${address(i)} = ${key}`] : [])).join("\n");
  const z = "sbench";
  const flow = [
    { id: z, type: "tab" },
    { id: "cfg", type: "ble-config", transport: "simulator", simScenario: scenarioFile, simTimeScale: row.timeScale },
    { id: "scan", z, type: "ble-scan", ble: "cfg", service: "fcd2", topic: "", wires: [["out"]] },
    { id: "out", z, type: "helper" },
  ];
  await helper.load([modules.bleConfig, modules.scan] as Parameters<typeof helper.load>[0], flow as Parameters<typeof helper.load>[1], { scan: { bindKeys } } as Parameters<typeof helper.load>[2]);
  try {
    const cfg = helper.getNode("cfg") as BleConfigNode;
    const adapter = cfg.adapter;
    if (!adapter?.simulation) throw new Error(`scan row ${n}: the config node opened no simulator (${cfg.configError ?? "no adapter"})`);
    // What noble hands the node, copied, for the node-alone replay.
    const recorded: ReportSource[] = [];
    const unwatch = adapter.watchAdvertisements({ active: false }, (p) => {
      if (recorded.length < 5000) {
        const ad = p.advertisement;
        recorded.push({
          address: p.address,
          addressType: p.addressType,
          rssi: p.rssi,
          connectable: p.connectable,
          advertisement: { localName: ad.localName, serviceUuids: [...ad.serviceUuids], serviceData: ad.serviceData.map((s) => ({ uuid: s.uuid, data: Buffer.from(s.data) })) },
        });
      }
    });

    let sent = 0;
    let undecoded = 0;
    let started: () => void = () => undefined;
    const first = new Promise<void>((resolve) => (started = resolve));
    const node = helper.getNode("scan") as Node;
    const send = node.send.bind(node);
    node.send = (msg?: NodeMessage | (NodeMessage | NodeMessage[] | null)[]): void => {
      const decoded = (msg as { payload?: { decoded?: { type?: string; temperature?: unknown } } } | undefined)?.payload?.decoded;
      if (decoded?.type !== "bthome" || typeof decoded.temperature !== "number") undecoded++;
      sent++;
      started();
      send(msg);
    };
    await Promise.race([first, sleep(20_000)]);
    if (sent === 0) throw new Error(`scan row ${n}: no message within 20 s`);
    // Let the scan settle, then measure a fixed window.
    await sleep(500);
    const sent0 = sent;
    const cpu0 = process.cpuUsage();
    const real0 = performance.now();
    await sleep(WINDOW_MS);
    const cpu = process.cpuUsage(cpu0);
    const realMs = performance.now() - real0;
    const count = sent - sent0;
    unwatch();
    if (undecoded > 0) throw new Error(`scan row ${n}: ${undecoded} messages were not decoded BTHome readings`);

    // The node alone: the recorded reports through a fresh ScanReports, in a loop.
    let best = 0;
    for (let round = 0; round < 5; round++) {
      const reports = new ScanReports(scanOptions({ service: "fcd2" }, parseBindKeys(bindKeys)));
      const t0 = performance.now();
      let ok = 0;
      for (const r of recorded) if (reports.handle(r)?.kind === "message") ok++;
      const dt = performance.now() - t0;
      if (ok > 0) best = Math.max(best, ok / (dt / 1000));
    }
    const rate = count / (realMs / 1000);
    const cpuMsPer1000 = (cpu.user + cpu.system) / 1000 / (count / 1000);
    return {
      row,
      offered: row.sensors * (1000 / row.intervalMs) * row.timeScale,
      sent: count,
      rate,
      cpuMsPer1000,
      coreShare: (cpu.user + cpu.system) / 1000 / realMs,
      nodeAloneRate: best,
    };
  } finally {
    await helper.unload();
  }
}

const fmt = (x: number, digits = 0): string => (Number.isFinite(x) ? x.toFixed(digits) : "–");

export async function runScanBench(modules: ScanModules, log: (line: string) => void): Promise<{ markdown: string; failures: string[] }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ble-scan-bench-"));
  const results: RowResult[] = [];
  const failures: string[] = [];
  try {
    for (const [i, row] of ROWS.entries()) {
      log(`scan row ${i + 1}: ${row.sensors} BTHome sensors every ${row.intervalMs} ms, timeScale ${row.timeScale}…\n`);
      try {
        results.push(await runRow(modules, row, dir, i + 1));
      } catch (error) {
        failures.push(error instanceof Error ? error.message : String(error));
      }
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const lines = [
    "## Advertisements through ble-scan (npm run bench)",
    "",
    `BTHome v2 sensors (half of them AES-CCM encrypted, opened with their bind keys) on the simulator transport, passive scan, one ble-scan node (service filter fcd2, decode on) in a Node-RED runtime. Node ${process.version}, ${os.cpus()[0]?.model ?? "unknown CPU"}.`,
    "",
    "| row | sensors × interval | timeScale | offered /s | decoded msgs /s | CPU ms / 1,000 (process) | process CPU, share of one core | node alone /s |",
    "|---|---|---|---|---|---|---|---|",
    ...results.map((r, i) => `| ${i + 1} | ${r.row.sensors} × ${r.row.intervalMs} ms | ${r.row.timeScale} | ${fmt(r.offered)} | ${fmt(r.rate)} | ${fmt(r.cpuMsPer1000, 1)} | ${fmt(r.coreShare * 100)} % | ${fmt(r.nodeAloneRate)} |`),
    "",
    `Targets (informational): ≥ ${TARGET_RATE} decoded reports/s with < 25 % of one core for the node (${TARGET_CPU_MS_PER_1000} ms of CPU per 1,000 reports). The process figures include the simulator and noble; 'node alone' replays the same reports through the node's ScanReports (filter, decode, decrypt, message) in a loop.`,
  ];
  return { markdown: lines.join("\n"), failures };
}
