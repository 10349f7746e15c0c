/**
 * A real Node-RED (red.js, the editor included) in a child process, with this package installed into a temporary
 * user directory the way a user installs it: a symlink in <userDir>/node_modules, loading the built nodes/.
 */
import { spawn, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";

const root = path.resolve(__dirname, "..", "..");

export interface NodeRedProcess {
  /** The editor's address, ending in "/". */
  readonly url: string;
  readonly userDir: string;
  /** Everything Node-RED printed so far. */
  log(): string;
  stop(): Promise<void>;
}

export interface NodeRedOptions {
  /** The flow file Node-RED starts with. */
  flows: unknown[];
  /** Where Node-RED's output is also written, for a failed run to be read afterwards. */
  logFile?: string;
  startTimeoutMs?: number;
}

/** A loopback port nobody listens on right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => (typeof address === "object" && address ? resolve(address.port) : reject(new Error("no port"))));
    });
  });
}

export async function startNodeRed(options: NodeRedOptions): Promise<NodeRedProcess> {
  const nodesDir = path.join(root, "nodes");
  if (!fs.existsSync(path.join(nodesDir, "ble-config.js")) || !fs.existsSync(path.join(nodesDir, "icons"))) {
    throw new Error(`the package is not built (${nodesDir}): run "npm run build" first`);
  }
  const pkg = JSON.parse(fs.readFileSync(path.join(root, "package.json"), "utf8")) as { name: string };
  const userDir = fs.mkdtempSync(path.join(os.tmpdir(), "ble-node-red-"));
  fs.mkdirSync(path.join(userDir, "node_modules", path.dirname(pkg.name)), { recursive: true });
  fs.symlinkSync(root, path.join(userDir, "node_modules", pkg.name), "dir");
  fs.writeFileSync(path.join(userDir, "flows.json"), JSON.stringify(options.flows, null, 2));
  const port = await freePort();
  const settings = {
    uiHost: "127.0.0.1",
    uiPort: port,
    flowFile: "flows.json",
    credentialSecret: false,
    // Nothing may pop up over the editor: no welcome tour, no telemetry consent, no update notice.
    editorTheme: { tours: false },
    telemetry: { enabled: false, updateNotification: false },
    diagnostics: { enabled: false, ui: false },
    logging: { console: { level: "info" } },
  };
  fs.writeFileSync(path.join(userDir, "settings.js"), `module.exports = ${JSON.stringify(settings, null, 2)};\n`);

  const red = require.resolve("node-red/red.js", { paths: [root] });
  const child: ChildProcess = spawn(process.execPath, [red, "--userDir", userDir, "--settings", path.join(userDir, "settings.js")], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, NODE_RED_ENABLE_PROJECTS: "false" },
  });
  let output = "";
  const logStream = options.logFile ? fs.createWriteStream(options.logFile) : null;
  const onOutput = (chunk: Buffer): void => {
    output += chunk.toString();
    logStream?.write(chunk);
  };
  child.stdout!.on("data", onOutput);
  child.stderr!.on("data", onOutput);
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));

  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      const killer = setTimeout(() => child.kill("SIGKILL"), 10000);
      await exited;
      clearTimeout(killer);
    }
    logStream?.end();
    fs.rmSync(userDir, { recursive: true, force: true });
  };

  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`Node-RED did not start flows within ${options.startTimeoutMs ?? 30000} ms:\n${output}`)), options.startTimeoutMs ?? 30000);
      const check = (): void => {
        if (/Started flows/.test(output)) {
          clearTimeout(timer);
          resolve();
        }
      };
      child.stdout!.on("data", check);
      child.once("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`Node-RED exited with code ${String(code)}:\n${output}`));
      });
      check();
    });
  } catch (error) {
    await stop();
    throw error;
  }
  return { url: `http://127.0.0.1:${port}/`, userDir, log: () => output, stop };
}
