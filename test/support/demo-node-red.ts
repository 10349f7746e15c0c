/**
 * Node-RED in a child process set up exactly as `npm start` sets it up (src/demo/launch.ts: this package and
 * Dashboard 2.0 linked into the user directory), on a free loopback port, in a temporary user directory, with a
 * flow of the test's choosing: one of the examples, possibly adapted (a broker's port, a download directory).
 */
import type { ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { launchNodeRed, PACKAGE_ROOT } from "../../src/demo/launch";
import { NODE_RED_MAIN } from "./node-red-under-test";

/** A loopback port nobody listens on right now. */
/** Ends a child process: SIGTERM, then SIGKILL if it is still there after `graceMs`; resolves once it has exited. */
export async function terminate(child: ChildProcess, graceMs = 10000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill("SIGTERM");
  const killer = setTimeout(() => child.kill("SIGKILL"), graceMs);
  await exited;
  clearTimeout(killer);
}

/**
 * Resolves with what `test` finds in a child's output, checked now and whenever the child writes to stdout;
 * rejects if the child exits first or nothing is found within `ms`. `output()` is everything it wrote so far.
 */
export function waitForOutput<T>(child: ChildProcess, output: () => string, test: () => T | undefined, what: string, ms: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const check = (): void => {
      const found = test();
      if (found === undefined) return;
      done();
      resolve(found);
    };
    const onExit = (code: number | null): void => {
      done();
      reject(new Error(`Node-RED exited with code ${String(code)} while waiting for ${what}:\n${output()}`));
    };
    const timer = setTimeout(() => {
      done();
      reject(new Error(`no ${what} within ${ms} ms:\n${output()}`));
    }, ms);
    const done = (): void => {
      clearTimeout(timer);
      child.stdout!.removeListener("data", check);
      child.removeListener("exit", onExit);
    };
    child.stdout!.on("data", check);
    child.once("exit", onExit);
    check();
  });
}

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

export interface DemoNodeRed {
  /** The editor's address, ending in "/"; the dashboard is at `${url}dashboard`. */
  readonly url: string;
  readonly userDir: string;
  readonly child: ChildProcess;
  /** Everything Node-RED printed so far. */
  log(): string;
  /** SIGTERM (Node-RED closes its flows: MQTT close messages are sent), then SIGKILL after 10 s; removes userDir. */
  stop(): Promise<void>;
  /** Ends Node-RED at once, as a power cut would (no close messages: the broker sends the last will). */
  kill(): Promise<void>;
}

export interface DemoNodeRedOptions {
  /** The flow Node-RED starts with. */
  flows: unknown[];
  /** Where Node-RED's output is also written, so a failed run can be read afterwards. */
  logFile?: string;
  startTimeoutMs?: number;
  /** Extra environment variables for Node-RED (e.g. HOME, which the file-download example saves under). */
  env?: Record<string, string>;
}

/** An example flow from examples/, parsed. */
export function readExample(file: string): Record<string, unknown>[] {
  return JSON.parse(fs.readFileSync(path.join(PACKAGE_ROOT, "examples", file), "utf8")) as Record<string, unknown>[];
}

export async function startDemoNodeRed(options: DemoNodeRedOptions): Promise<DemoNodeRed> {
  if (!fs.existsSync(path.join(PACKAGE_ROOT, "nodes", "ble-config.js"))) {
    throw new Error(`the package is not built (${path.join(PACKAGE_ROOT, "nodes")}): run "npm run build" first`);
  }
  const userDir = fs.mkdtempSync(path.join(os.tmpdir(), "ble-demo-red-"));
  const flowSource = path.join(userDir, "test-flow.json");
  fs.writeFileSync(flowSource, JSON.stringify(options.flows, null, 2));
  const port = await freePort();
  const child = launchNodeRed({
    userDir,
    port,
    flowSource,
    replaceFlows: true,
    nodeRedMain: NODE_RED_MAIN,
    stdio: ["ignore", "pipe", "pipe"],
    // No settings of the tests' own: the editor opens as `npm start` opens it (nothing to dismiss over it).
    env: { NODE_RED_ENABLE_PROJECTS: "false", ...options.env },
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
  const running = (): boolean => child.exitCode === null && child.signalCode === null;
  const cleanUp = (): void => {
    logStream?.end();
    fs.rmSync(userDir, { recursive: true, force: true });
  };

  const stop = async (): Promise<void> => {
    await terminate(child);
    cleanUp();
  };
  const kill = async (): Promise<void> => {
    if (running()) {
      child.kill("SIGKILL");
      await exited;
    }
    cleanUp();
  };

  const timeoutMs = options.startTimeoutMs ?? 30000;
  try {
    await waitForOutput(child, () => output, () => (/Started flows/.test(output) ? true : undefined), '"Started flows"', timeoutMs);
  } catch (error) {
    await stop();
    throw error;
  }
  return { url: `http://127.0.0.1:${port}/`, userDir, child, log: () => output, stop, kill };
}
