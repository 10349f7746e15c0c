/**
 * `npm run bench`, send rows (issue 15): files uploaded through the nus-ymodem-send node as built (nodes/*.js) in a
 * Node-RED runtime to the simulator's `nus-ymodem-receiver` (standard dialect, CRC-16/XMODEM), over noble's HCI
 * stack and the virtual controller, measured as the receive rows are: simulated time from the receiver's first
 * `C`/`G` to the node's output message, every byte checked on the device.
 *
 * Theory (./theory.ts): the link model is symmetric for Write Commands and notifications (3 bytes of ATT header,
 * 4 of L2CAP, one link-layer packet per data length L), so C mode is B × 8 / (N × interval) with
 * N = ⌈packets per frame / P⌉ + 1 (the receiver's ACK takes an event, the next frame leaves in the one after), and
 * G mode is the raw write capacity (full MTU − 3 writes, P per event) times B / (B + 5).
 */
import type { Node, NodeAPI, NodeMessage } from "node-red";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import type { BleConfigNode } from "../../src/red/ble-config-node";
import { maxPdusPerEvent } from "../../src/sim/controller";
import { generateFileContent } from "../../src/sim/peripherals/file-content";
import type { NusYmodemReceiverPeripheral } from "../../src/sim/peripherals/nus-ymodem-receiver";
import type { LinkSettings } from "../../src/sim/types";
import { helper } from "../support/red";
import { alignedStreamingKbps, theoreticalCKbps, theoreticalGKbps, type LinkPoint } from "./theory";

type NodeModule = (RED: NodeAPI) => void;

export interface SendRow {
  intervalMs: number;
  mtu: number;
  dataLength: 27 | 251;
  pdusPerEvent: number;
  blockSize: 128 | 1024;
  mode: "C" | "G";
  sizeBytes: number;
}

const KiB = 1024;
const PDUS = 6;

/** The seed's setting (7.5 ms, MTU 23, SOH) and DLE + MTU 247 + STX, each in C and G. */
export const SEND_ROWS: SendRow[] = [
  { intervalMs: 7.5, mtu: 23, dataLength: 27, pdusPerEvent: PDUS, blockSize: 128, mode: "C", sizeBytes: 40 * KiB },
  { intervalMs: 7.5, mtu: 23, dataLength: 27, pdusPerEvent: PDUS, blockSize: 128, mode: "G", sizeBytes: 64 * KiB },
  { intervalMs: 7.5, mtu: 247, dataLength: 251, pdusPerEvent: PDUS, blockSize: 1024, mode: "C", sizeBytes: 224 * KiB },
  { intervalMs: 7.5, mtu: 247, dataLength: 251, pdusPerEvent: PDUS, blockSize: 1024, mode: "G", sizeBytes: 480 * KiB },
];

const C_TARGET = 0.95;
const G_TARGET = 0.9;
const NUS = "e3:c3:5c:00:00:02";

interface SentMsg extends NodeMessage {
  stats: { bytes: number; blocks: number; retransmissions: number; mtu: number; blockSize: number; crc: string };
}

export interface SendResult {
  row: SendRow;
  effectivePdus: number;
  theoryKbps: number;
  /** G mode: the ceiling when every frame starts a fresh write (packets counted per frame). */
  alignedKbps: number | null;
  achievedKbps: number;
  ratio: number;
  simMs: number;
  retransmissions: number;
}

async function runSendRow(nodes: { bleConfig: NodeModule; send: NodeModule }, row: SendRow, index: number, timeScale: number, dir: string): Promise<SendResult> {
  const link: LinkSettings = { connectionIntervalMs: row.intervalMs, pdusPerEvent: row.pdusPerEvent, dataLength: row.dataLength, maxMtu: row.mtu };
  const point: LinkPoint = { connectionIntervalMs: row.intervalMs, mtu: row.mtu, dataLength: row.dataLength, pdusPerEvent: maxPdusPerEvent(link) };
  const theoryKbps = row.mode === "C" ? theoreticalCKbps(point, row.blockSize) : theoreticalGKbps(point, row.blockSize);
  const scenarioFile = path.join(dir, `send-${index}.json`);
  fs.writeFileSync(
    scenarioFile,
    JSON.stringify({ link, peripherals: [{ kind: "nus-ymodem-receiver", address: NUS, dialect: "standard", start: row.mode, blockTimeoutMs: 5000 }] }),
  );
  const z = "bench-send";
  const on = { z, x: 100, y: 100 };
  const flow = [
    { id: z, type: "tab" },
    { id: "cfg", type: "ble-config", transport: "simulator", simScenario: scenarioFile, simTimeScale: timeScale },
    {
      id: "up",
      ...on,
      type: "nus-ymodem-send",
      ble: "cfg",
      address: NUS,
      deviceName: "",
      mtu: row.mtu,
      dialect: "standard",
      blockSize: String(row.blockSize),
      blockTimeout: Math.max(1000, Math.round(5000 / timeScale)),
      retries: 10,
      wires: [["out"]],
    },
    { id: "out", ...on, type: "helper" },
    { id: "catch", ...on, type: "catch", scope: ["up"], uncaught: false, wires: [["caught"]] },
    { id: "caught", ...on, type: "helper" },
  ];
  await helper.load([nodes.bleConfig, nodes.send] as Parameters<typeof helper.load>[0], flow as Parameters<typeof helper.load>[1]);
  try {
    const simulation = (helper.getNode("cfg") as BleConfigNode).adapter?.simulation;
    if (!simulation) throw new Error(`send row ${index}: the config node opened no simulator`);
    const device = simulation.controller.peripheral(NUS) as unknown as NusYmodemReceiverPeripheral;
    // The receiver's first C/G (its first TX notification) starts the clock.
    let startSim: number | null = null;
    const sendTx = device.sendTx.bind(device);
    device.sendTx = (bytes, options) => {
      if (startSim === null) startSim = simulation.clock.now();
      return sendTx(bytes, options);
    };
    const data = generateFileContent(row.sizeBytes, 2000 + index);
    const deadlineMs = (row.sizeBytes * 8) / (theoryKbps / 3) / timeScale + 30_000;
    const outcome = await new Promise<{ msg: SentMsg; endSim: number } | Error>((resolve) => {
      const timer = setTimeout(() => resolve(new Error(`no output within ${Math.round(deadlineMs / 1000)} s`)), deadlineMs);
      helper.getNode("out").on("input", (msg: NodeMessage) => {
        const endSim = simulation.clock.now();
        clearTimeout(timer);
        resolve({ msg: msg as SentMsg, endSim });
      });
      helper.getNode("caught").on("input", (msg: NodeMessage) => {
        clearTimeout(timer);
        resolve(new Error(`the node reported: ${(msg as NodeMessage & { error?: { message?: string } }).error?.message ?? "an error"}`));
      });
      (helper.getNode("up") as Node).receive({ payload: data, filename: `bench-${index}.bin` } as NodeMessage);
    });
    if (outcome instanceof Error) throw new Error(`send row ${index}: ${outcome.message}`);
    if (startSim === null) throw new Error(`send row ${index}: the receiver never sent C/G`);
    const file = device.received.at(-1);
    if (!file || !file.data.equals(data)) throw new Error(`send row ${index}: the device did not receive the file byte-exact`);
    if (outcome.msg.stats.mtu !== row.mtu) throw new Error(`send row ${index}: MTU ${outcome.msg.stats.mtu}, expected ${row.mtu}`);
    const simMs = outcome.endSim - startSim;
    const achievedKbps = (row.sizeBytes * 8) / simMs;
    return { row, effectivePdus: point.pdusPerEvent, theoryKbps, alignedKbps: row.mode === "G" ? alignedStreamingKbps(point, row.blockSize) : null, achievedKbps, ratio: achievedKbps / theoryKbps, simMs, retransmissions: outcome.msg.stats.retransmissions };
  } finally {
    await helper.unload();
  }
}

/** Runs the send rows (the helper's server already started); a markdown table and the failures. */
export async function runSendBench(
  nodes: { bleConfig: NodeModule; send: NodeModule },
  log: (line: string) => void,
  options: { timeScale: number; rows?: number[] | null },
): Promise<{ markdown: string; failures: string[] }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ble-bench-send-"));
  const results: SendResult[] = [];
  const failures: string[] = [];
  try {
    for (const [i, row] of SEND_ROWS.entries()) {
      if (options.rows && !options.rows.includes(i + 1)) continue;
      log(`send row ${i + 1}: ${row.intervalMs} ms, MTU ${row.mtu}, ${row.blockSize === 128 ? "SOH" : "STX"}, ${row.mode}…\n`);
      try {
        results.push(await runSendRow(nodes, row, i + 1, options.timeScale, dir));
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        failures.push(message);
        log(`FAILED: ${message}\n`);
      }
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const header = ["interval", "MTU", "data length", "PDUs/event", "block", "mode", "file", "achieved kbps", "theoretical kbps", "ratio", "target", "frame-aligned writes: ceiling kbps (ratio)", "retransmissions"];
  const lines = [`| ${header.join(" | ")} |`, `|${header.map(() => "---").join("|")}|`];
  for (const r of results) {
    const target = r.row.mode === "C" ? C_TARGET : G_TARGET;
    lines.push(
      `| ${[
        `${r.row.intervalMs} ms`,
        String(r.row.mtu),
        r.row.dataLength === 27 ? "27" : "251 (DLE)",
        `${r.effectivePdus} (of ${r.row.pdusPerEvent})`,
        r.row.blockSize === 128 ? "SOH 128" : "STX 1024",
        r.row.mode,
        `${r.row.sizeBytes / KiB} KiB`,
        r.achievedKbps.toFixed(1),
        r.theoryKbps.toFixed(1),
        r.ratio.toFixed(3),
        `≥ ${target.toFixed(2)} ${r.ratio >= target ? "PASS" : "MISS"}`,
        r.alignedKbps === null ? "–" : `${r.alignedKbps.toFixed(1)} (${(r.alignedKbps / r.theoryKbps).toFixed(3)})`,
        String(r.retransmissions),
      ].join(" | ")} |`,
    );
  }
  const markdown = [
    "## YMODEM over NUS, sending: throughput (npm run bench)",
    "",
    "Through the nus-ymodem-send node as built in a Node-RED runtime → noble → virtual controller → nus-ymodem-receiver (standard dialect, CRC-16/XMODEM). Achieved = file bits / simulated time from the receiver's first C/G to the node's output message. Theoretical: C mode B × 8 / (N × interval), N = ⌈packets per frame / P⌉ + 1; G mode the raw write capacity × B/(B+5). A sender that starts every frame in a fresh write (no frame shares a write with the next) cannot exceed the frame-aligned ceiling shown beside it.",
    "",
    ...lines,
  ].join("\n");
  return { markdown, failures };
}
