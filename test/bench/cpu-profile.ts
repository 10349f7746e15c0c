/**
 * A V8 CPU profile of one piece of async work (the inspector's Profiler, as `node --cpu-prof` records it, but
 * around that work only), written as a .cpuprofile file (Chrome DevTools and speedscope read it), with a summary
 * of where the time went: by owner (this package's build output, noble, Node.js itself, garbage collection…) and
 * by function (self time).
 */
import * as fs from "node:fs";
import * as inspector from "node:inspector/promises";
import * as path from "node:path";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples?: number[];
}

type Frame = ProfileNode["callFrame"];

/** Who a frame's code belongs to. */
function ownerOf(frame: Frame): string {
  const url = frame.url;
  if (url === "") return frame.functionName.startsWith("(") ? frame.functionName : "native";
  if (url.startsWith("node:")) return "Node.js";
  const inModules = url.lastIndexOf("node_modules/");
  if (inModules >= 0) {
    const parts = url.slice(inModules + "node_modules/".length).split("/");
    return parts[0].startsWith("@") ? `${parts[0]}/${parts[1]}` : parts[0];
  }
  if (/\/nodes\//.test(url)) return "this package (nodes/)";
  if (/\/test\//.test(url)) return "bench harness (test/)";
  return url;
}

function where(frame: Frame): string {
  const file = frame.url.replace(/^file:\/\//, "").replace(/^.*node_modules\//, "").replace(/^.*\/(src|nodes|test)\//, "$1/");
  return `${frame.functionName || "(anonymous)"} (${file || "native"}:${frame.lineNumber + 1})`;
}

function shares(profile: CpuProfile, key: (frame: Frame) => string, top: number): string[] {
  const byId = new Map(profile.nodes.map((n) => [n.id, n.callFrame]));
  const samples = profile.samples ?? [];
  const counts = new Map<string, number>();
  for (const id of samples) {
    const frame = byId.get(id);
    if (frame) counts.set(key(frame), (counts.get(key(frame)) ?? 0) + 1);
  }
  return [...counts.entries()]
    .sort((x, y) => y[1] - x[1])
    .slice(0, top)
    .map(([k, n]) => `${((n / Math.max(1, samples.length)) * 100).toFixed(1)}% ${k}`);
}

/** Runs `work` under the profiler, writes the profile to `file`, and returns a summary (lines of text). */
export async function profiled(work: () => Promise<unknown>, file: string): Promise<string[]> {
  const session = new inspector.Session();
  session.connect();
  try {
    await session.post("Profiler.enable");
    await session.post("Profiler.setSamplingInterval", { interval: 50 });
    await session.post("Profiler.start");
    await work();
    const { profile } = (await session.post("Profiler.stop")) as { profile: CpuProfile };
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, JSON.stringify(profile));
    return [`self time by owner:`, ...shares(profile, ownerOf, 10).map((l) => `  ${l}`), `self time by function, top 25:`, ...shares(profile, where, 25).map((l) => `  ${l}`)];
  } finally {
    session.disconnect();
  }
}
