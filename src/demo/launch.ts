/**
 * Node-RED with this package (and the dashboard the examples draw on) in a private user directory: what
 * `npm start` runs, and what the end-to-end tests start on a free port. One implementation for both, so the
 * tests exercise the demo exactly as a user starts it.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { spawn, type ChildProcess, type StdioOptions } from "node:child_process";

/** The repository (or installed package) root: nodes/demo/launch.js is two levels below it. */
export const PACKAGE_ROOT = path.resolve(__dirname, "..", "..");

/** The flow `npm start` runs. */
export const DEMO_FLOW = path.join(PACKAGE_ROOT, "examples", "demo.json");

/**
 * Modules linked into the user directory besides this package. The dashboard is only a devDependency (the
 * examples use it, the nodes do not), so Node-RED, which looks for nodes in <userDir>/node_modules, would not
 * find it there otherwise.
 */
const LINKED_MODULES = ["@flowfuse/node-red-dashboard"];

export interface LaunchOptions {
  /** Node-RED's user directory; created if missing. */
  userDir: string;
  port: number;
  /** Interface to listen on; loopback by default, as the demo has no login. */
  host?: string;
  /** Flow copied to <userDir>/flows.json; default examples/demo.json. */
  flowSource?: string;
  /**
   * Replace an existing flows.json with flowSource. `npm start` keeps the user's edits (false); tests always
   * start from the example (true).
   */
  replaceFlows?: boolean;
  /** Node-RED's console log level; default "info". */
  logLevel?: "fatal" | "error" | "warn" | "info" | "debug" | "trace";
  /** Further settings.js entries (JSON-serialisable); they replace the demo's entries of the same name. */
  settings?: Record<string, unknown>;
  /** Extra environment variables for Node-RED. */
  env?: Record<string, string>;
  /** Node-RED's red.js; default the node-red installed next to this package (the devDependency). */
  nodeRedMain?: string;
  /** Child's stdio; default "inherit". */
  stdio?: StdioOptions;
}

/** The package name from package.json: the scoped directory it must appear under in node_modules. */
function packageName(): string {
  return (JSON.parse(fs.readFileSync(path.join(PACKAGE_ROOT, "package.json"), "utf8")) as { name: string }).name;
}

/** Makes <userDir>/node_modules/<name> a symlink to `target`, replacing a link that points elsewhere. */
function linkModule(userDir: string, name: string, target: string): void {
  const link = path.join(userDir, "node_modules", name);
  fs.mkdirSync(path.dirname(link), { recursive: true });
  let existing: string | null = null;
  try {
    existing = fs.readlinkSync(link);
  } catch {
    // Not a symlink (or absent): a real directory there is the user's own install, and is left alone.
    if (fs.existsSync(link)) return;
  }
  if (existing !== null) {
    if (path.resolve(path.dirname(link), existing) === target) return;
    fs.unlinkSync(link);
  }
  fs.symlinkSync(target, link, "dir");
}

/** Where a linked module is installed next to this package: its own node_modules, or the one it is installed in. */
function resolveModuleDir(name: string): string {
  const manifest = require.resolve(`${name}/package.json`, { paths: [PACKAGE_ROOT] });
  return path.dirname(manifest);
}

/**
 * Copies a flow to flows.json. Credentials a node carries in the flow (as an example does, for the editor's import to
 * take) go to flows_cred.json, where Node-RED reads them at start (unencrypted: credentialSecret is false below),
 * as a deploy from the editor would put them; Node-RED ignores them in flows.json itself.
 */
function writeFlows(source: string, flowFile: string): void {
  const flow = JSON.parse(fs.readFileSync(source, "utf8")) as unknown;
  const credentials: Record<string, unknown> = {};
  if (Array.isArray(flow)) {
    for (const node of flow as Record<string, unknown>[]) {
      if (typeof node?.id === "string" && typeof node.credentials === "object" && node.credentials !== null) {
        credentials[node.id] = node.credentials;
        delete node.credentials;
      }
    }
  }
  fs.writeFileSync(flowFile, JSON.stringify(flow, null, 2));
  const credFile = path.join(path.dirname(flowFile), "flows_cred.json");
  if (Object.keys(credentials).length > 0) fs.writeFileSync(credFile, JSON.stringify(credentials, null, 2));
  else fs.rmSync(credFile, { force: true });
}

/** Writes the user directory: module links, settings.js, and flows.json (see replaceFlows). Returns settings.js. */
export function prepareUserDir(opts: LaunchOptions): string {
  const { userDir } = opts;
  fs.mkdirSync(userDir, { recursive: true });
  linkModule(userDir, packageName(), PACKAGE_ROOT);
  for (const name of LINKED_MODULES) {
    let dir: string;
    try {
      dir = resolveModuleDir(name);
    } catch {
      throw new Error(`${name} is not installed; it is a devDependency of this repository: run npm install`);
    }
    linkModule(userDir, name, dir);
  }

  const flowFile = path.join(userDir, "flows.json");
  if (opts.replaceFlows || !fs.existsSync(flowFile)) writeFlows(opts.flowSource ?? DEMO_FLOW, flowFile);

  const settings = {
    uiHost: opts.host ?? "127.0.0.1",
    uiPort: opts.port,
    flowFile: "flows.json",
    // The demo flows hold no secrets; without this Node-RED would generate a key and warn about it.
    credentialSecret: false,
    logging: { console: { level: opts.logLevel ?? "info" } },
    // Nothing over the editor on first start: Node-RED 4.1 asks whether to send usage data for update
    // notifications (telemetry: a question for a user's own installation, not for a demo), then runs its welcome
    // tour of Node-RED's latest features.
    telemetry: { enabled: false },
    editorTheme: { tours: false },
    ...opts.settings,
  };
  const settingsFile = path.join(userDir, "settings.js");
  fs.writeFileSync(settingsFile, `module.exports = ${JSON.stringify(settings, null, 2)};\n`);
  return settingsFile;
}

/** Prepares the user directory and starts Node-RED in a child process (the same Node.js as the caller). */
export function launchNodeRed(opts: LaunchOptions): ChildProcess {
  const settingsFile = prepareUserDir(opts);
  const red = opts.nodeRedMain ?? require.resolve("node-red/red.js", { paths: [PACKAGE_ROOT] });
  return spawn(process.execPath, [red, "--userDir", opts.userDir, "--settings", settingsFile], {
    stdio: opts.stdio ?? "inherit",
    env: { ...process.env, ...opts.env },
  });
}
