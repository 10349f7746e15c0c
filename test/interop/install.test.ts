/**
 * The package as a Node-RED user gets it. The repository's committed HEAD is cloned (a clean clone: no build output,
 * no node_modules), `npm install` and `npm pack` run there as they would before `npm publish`, and the tarball is
 * installed into a fresh Node-RED user directory by Node-RED's own palette manager: the tarball is uploaded to the
 * admin API (`POST /nodes`, as the palette's "upload module" does), and Node-RED runs its bundled npm with its own
 * arguments (`npm install --no-audit --no-update-notifier --no-fund --save --save-prefix=~ --omit=dev
 * --engine-strict -- <tarball>`, @node-red/registry/lib/installer.js) in the user directory, install scripts and
 * all, exactly as for a package from the Flow Library. Then every node type must load (`GET /nodes`) and a deployed
 * simulator flow must deliver a heart-rate reading.
 *
 * The same install runs a second time with no python3, make or C/C++ compiler reachable (PATH holds only node, npm,
 * git and sh; npm_config_python points nowhere), as in Node-RED's Docker image or on Raspberry Pi OS Lite, from the
 * command line with `npm install --ignore-scripts`, the README's way round for such systems. The palette manager's own
 * install cannot succeed there today: @stoprocent/noble's install script rebuilds its (on Linux empty) native module
 * from source, because its Linux prebuilds do not load; see the README's "Build tools on Linux".
 *
 * Node-RED and Node.js are the ones under test: the node-red devDependency on this Node.js, or Node-RED 5 on
 * Node.js 22 under `npm run test:nr5` (test/support/node-red-under-test.ts). Needs git and the npm registry.
 */
import assert from "node:assert/strict";
import { execFileSync, spawn, spawnSync, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { freePort, terminate, waitForOutput } from "../support/demo-node-red";
import { NODE_RED_DIR, NODE_RED_MAIN, nodeRedManifest } from "../support/node-red-under-test";

const ROOT = path.resolve(__dirname, "..", "..");
const PACKAGE = JSON.parse(fs.readFileSync(path.join(ROOT, "package.json"), "utf8")) as { name: string; "node-red": { nodes: Record<string, string> } };
const NODE_TYPES = ["ble-config", "ble-gatt-in", "ble-gatt-out", "ble-gatt-request", "ble-scan", "heart-rate", "hioki-meter", "nus-ymodem-receive", "nus-ymodem-send"];

/**
 * The environment a user's Node-RED runs in: this one without the variables npm sets for the script running the
 * tests (npm_config_*, npm_package_*, …), which would otherwise reach the palette manager's npm.
 */
function userEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^npm_/i.test(k) && k !== "INIT_CWD") env[k] = v;
  // The Node.js under test runs npm and the install scripts (`#!/usr/bin/env node`).
  env.PATH = `${path.dirname(process.execPath)}${path.delimiter}${env.PATH ?? ""}`;
  return { ...env, ...extra };
}

/** Runs a command to completion; on failure the error carries its output. */
function run(command: string, args: string[], cwd: string, env: NodeJS.ProcessEnv): string {
  const result = spawnSync(command, args, { cwd, env, encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
  if (result.status !== 0) throw new Error(`${command} ${args.join(" ")} failed (${String(result.status ?? result.signal ?? result.error)}):\n${result.stdout}\n${result.stderr}`);
  return result.stdout;
}

/**
 * A PATH directory with only node, npm, git and sh (npm runs install scripts through sh; every Linux system has
 * one): no python3, make, cc or g++.
 */
function bareBin(dir: string): string {
  const bin = path.join(dir, "bin");
  fs.mkdirSync(bin, { recursive: true });
  const git = execFileSync("sh", ["-c", "command -v git"], { encoding: "utf8" }).trim();
  fs.symlinkSync(process.execPath, path.join(bin, "node"));
  // The npm Node-RED's palette manager runs (@node-red/registry's dependency).
  const registry = path.dirname(require.resolve("@node-red/registry/package.json", { paths: [NODE_RED_DIR] }));
  fs.symlinkSync(path.join(path.dirname(require.resolve("npm/package.json", { paths: [registry] })), "bin", "npm-cli.js"), path.join(bin, "npm"));
  fs.symlinkSync(git, path.join(bin, "git"));
  fs.symlinkSync("/bin/sh", path.join(bin, "sh"));
  return bin;
}

interface RunningNodeRed {
  url: string;
  child: ChildProcess;
  log(): string;
  stop(): Promise<void>;
}

/** Node-RED (the one under test) in a fresh user directory, with its palette manager enabled as by default. */
async function startNodeRed(userDir: string, env: NodeJS.ProcessEnv): Promise<RunningNodeRed> {
  fs.mkdirSync(userDir, { recursive: true });
  const port = await freePort();
  const settings = {
    uiHost: "127.0.0.1",
    uiPort: port,
    flowFile: "flows.json",
    credentialSecret: false,
    logging: { console: { level: "info" } },
    editorTheme: { tours: false },
    telemetry: { enabled: false, updateNotification: false },
    diagnostics: { enabled: false, ui: false },
  };
  const settingsFile = path.join(userDir, "settings.js");
  fs.writeFileSync(settingsFile, `module.exports = ${JSON.stringify(settings, null, 2)};\n`);
  const child = spawn(process.execPath, [NODE_RED_MAIN, "--userDir", userDir, "--settings", settingsFile], { cwd: userDir, env, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout!.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on("data", (chunk: Buffer) => (output += chunk.toString()));
  const stop = (): Promise<void> => terminate(child);
  try {
    await waitForOutput(child, () => output, () => (/Server now running at/.test(output) ? true : undefined), '"Server now running"', 60000);
  } catch (error) {
    await stop();
    throw error;
  }
  return { url: `http://127.0.0.1:${port}/`, child, log: () => output, stop };
}

interface NodeSet {
  id: string;
  module: string;
  types: string[];
  enabled: boolean;
  err?: unknown;
}

/** What the palette manager's "upload module" does: the tarball as multipart field "tarball" to POST /nodes. */
async function uploadThroughPalette(red: RunningNodeRed, tarball: string): Promise<{ status: number; body: string }> {
  const form = new FormData();
  form.append("tarball", new Blob([fs.readFileSync(tarball)], { type: "application/gzip" }), path.basename(tarball));
  const response = await fetch(`${red.url}nodes`, { method: "POST", body: form });
  return { status: response.status, body: await response.text() };
}

/** A simulator adapter, a heart-rate node for the simulated sensor, and a debug node writing to Node-RED's log. */
const FLOW = [
  { id: "install-tab", type: "tab", label: "Installed package" },
  {
    id: "install-sim",
    type: "ble-config",
    name: "simulator",
    transport: "simulator",
    hciDevice: 0,
    uartPort: "",
    uartBaudRate: 1000000,
    uartFlowControl: true,
    simScenario: "",
    maxConnections: 4,
    connectTimeout: 5000,
    reconnectDelay: 1000,
    gattTimeout: 5000,
  },
  { id: "install-hr", type: "heart-rate", z: "install-tab", name: "", ble: "install-sim", address: "", addressType: "str", deviceName: "44278-33", topic: "heart rate", x: 150, y: 80, wires: [["install-out"]] },
  { id: "install-out", type: "debug", z: "install-tab", name: "installed-hr", active: true, tosidebar: false, console: true, tostatus: false, complete: "payload", targetType: "msg", x: 380, y: 80, wires: [] },
];

/** Installs the tarball through the palette manager, then checks it as loadedAndRunning does. */
async function installAndRun(red: RunningNodeRed, tarball: string): Promise<number> {
  const installed = await uploadThroughPalette(red, tarball);
  assert.equal(installed.status, 200, `the palette manager's install failed (HTTP ${installed.status}): ${installed.body}\n--- Node-RED's log:\n${red.log()}`);
  return loadedAndRunning(red);
}

/** Checks every node type of the package loaded (GET /nodes), deploys FLOW and waits for a heart-rate reading. */
async function loadedAndRunning(red: RunningNodeRed): Promise<number> {
  const response = await fetch(`${red.url}nodes`, { headers: { Accept: "application/json" } });
  assert.equal(response.status, 200);
  const sets = ((await response.json()) as NodeSet[]).filter((s) => s.module === PACKAGE.name);
  assert.deepEqual(sets.map((s) => s.types).flat().sort(), NODE_TYPES, `the package's node sets: ${JSON.stringify(sets)}`);
  for (const set of sets) {
    assert.equal(set.enabled, true, `${set.id} is not enabled`);
    assert.equal(set.err, undefined, `${set.id} failed to load: ${JSON.stringify(set.err)}`);
  }

  const deployed = await fetch(`${red.url}flows`, {
    method: "POST",
    headers: { "Content-Type": "application/json", "Node-RED-Deployment-Type": "full" },
    body: JSON.stringify(FLOW),
  });
  assert.equal(deployed.status, 204, `deploy: ${await deployed.text()}`);
  const since = red.log().length;
  const bpm = await waitForOutput(
    red.child,
    red.log,
    () => {
      const match = /\[debug:installed-hr\] (\d+)\s*$/m.exec(red.log().slice(since));
      return match ? Number(match[1]) : undefined;
    },
    "a heart-rate reading from the installed package",
    60000,
  );
  assert.ok(bpm > 0 && bpm < 300, `a heart rate in beats per minute, got ${bpm}`);
  return bpm;
}

describe(`install: a clean clone packed and installed by Node-RED ${nodeRedManifest().version}'s palette manager on Node.js ${process.versions.node}`, function () {
  this.timeout(15 * 60 * 1000);
  let work: string;
  let tarball: string;
  let shipped: string[];

  before(function () {
    this.timeout(15 * 60 * 1000);
    work = fs.mkdtempSync(path.join(os.tmpdir(), "ble-install-"));
    const src = path.join(work, "src");
    const head = execFileSync("git", ["rev-parse", "HEAD"], { cwd: ROOT, encoding: "utf8" }).trim();
    run("git", ["clone", "--quiet", "--no-checkout", ROOT, src], work, userEnv());
    run("git", ["checkout", "--quiet", "--detach", head], src, userEnv());
    assert.ok(!fs.existsSync(path.join(src, "nodes", "ble-config.js")), "a clean clone holds no build output");
    run("npm", ["install", "--no-audit", "--no-fund"], src, userEnv());
    const packed = JSON.parse(run("npm", ["pack", "--json", "--pack-destination", work], src, userEnv())) as { filename: string; files: { path: string }[] }[];
    tarball = path.join(work, packed[0].filename);
    shipped = packed[0].files.map((f) => f.path);
  });

  after(() => {
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  it("npm pack of the clean clone carries the compiled nodes (prepack builds them)", () => {
    for (const file of Object.values(PACKAGE["node-red"].nodes)) assert.ok(shipped.includes(file), `${file} is not in the package`);
    assert.ok(fs.statSync(tarball).size > 0);
  });

  it("installs through the palette manager into a fresh user directory, loads every node type, and runs a simulator flow", async () => {
    const red = await startNodeRed(path.join(work, "user-dir"), userEnv({ NODE_RED_ENABLE_PROJECTS: "false" }));
    try {
      await installAndRun(red, tarball);
    } finally {
      await red.stop();
    }
  });

  /** An environment with no python3, make or C/C++ compiler: PATH holds only node, npm, git and sh. */
  function withoutBuildTools(): NodeJS.ProcessEnv {
    const bin = path.join(work, "bare", "bin");
    if (!fs.existsSync(bin)) bareBin(path.join(work, "bare"));
    const env: NodeJS.ProcessEnv = { HOME: process.env.HOME ?? os.homedir(), PATH: bin, npm_config_python: path.join(work, "no-python", "python3"), NODE_RED_ENABLE_PROJECTS: "false" };
    // How this machine reaches the registry (temporary directory, certificate authorities, proxies), not build tools.
    for (const [k, v] of Object.entries(process.env)) if (/^(TMPDIR|NODE_EXTRA_CA_CERTS|SSL_CERT_FILE|SSL_CERT_DIR|https?_proxy|no_proxy)$/i.test(k)) env[k] = v;
    // The environment really lacks them (sh's command -v searches PATH as npm and node-gyp do).
    const probe = spawnSync("sh", ["-c", "command -v python3 python make cc gcc g++ c++ clang"], { env, encoding: "utf8" });
    assert.equal(probe.stdout.trim(), "", `build tools reachable: ${probe.stdout}`);
    return env;
  }

  it("without build tools, npm install --ignore-scripts in the user directory gives a working package (the README's way round)", async () => {
    const env = withoutBuildTools();
    const userDir = path.join(work, "cli-user-dir");
    fs.mkdirSync(userDir, { recursive: true });
    run("npm", ["install", "--ignore-scripts", "--no-audit", "--no-fund", "--omit=dev", "--", tarball], userDir, env);
    const red = await startNodeRed(userDir, env);
    try {
      await loadedAndRunning(red);
    } finally {
      await red.stop();
    }
  });
});
