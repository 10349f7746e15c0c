/**
 * A real MQTT broker for the tests: Debian's `mosquitto`, on a free loopback port, anonymous, without
 * persistence, in a temporary directory. Missing mosquitto fails the tests with the command that fixes it.
 */
import { spawn, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { freePort } from "./demo-node-red";

export const MOSQUITTO_MISSING = "mosquitto is not installed, so the MQTT tests cannot run. Install it: apt-get install -y mosquitto";

/** Debian installs the broker in /usr/sbin, which is not on every user's PATH. */
export function locateMosquitto(): string | null {
  const dirs = ["/usr/sbin", "/usr/local/sbin", "/usr/bin", "/usr/local/bin", ...(process.env.PATH ?? "").split(path.delimiter)].filter((d) => d.length > 0);
  for (const dir of dirs) {
    const candidate = path.join(dir, "mosquitto");
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      return candidate;
    } catch {
      continue;
    }
  }
  return null;
}

export interface Broker {
  readonly host: string;
  readonly port: number;
  readonly url: string;
  /** What mosquitto logged so far. */
  log(): string;
  stop(): Promise<void>;
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: "127.0.0.1", port }, () => {
      socket.destroy();
      resolve(true);
    });
    socket.on("error", () => resolve(false));
  });
}

/** Starts a broker on `port` (a restart on the same address), or on a free one. */
export async function startMosquitto(port?: number): Promise<Broker> {
  const binary = locateMosquitto();
  if (binary === null) throw new Error(MOSQUITTO_MISSING);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mosquitto-"));
  port ??= await freePort();
  const config = path.join(dir, "mosquitto.conf");
  // Loopback only, as a test broker must not be reachable from the network; mosquitto 2 refuses anonymous
  // clients unless told; no persistence, so a restarted broker has forgotten every retained message.
  fs.writeFileSync(config, [`listener ${port} 127.0.0.1`, "allow_anonymous true", "persistence false", "log_dest stderr", "log_type all", ""].join("\n"));
  const child: ChildProcess = spawn(binary, ["-c", config], { stdio: ["ignore", "pipe", "pipe"], cwd: dir });
  let output = "";
  child.stdout!.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on("data", (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      const killer = setTimeout(() => child.kill("SIGKILL"), 5000);
      await exited;
      clearTimeout(killer);
    }
    fs.rmSync(dir, { recursive: true, force: true });
  };

  const deadline = Date.now() + 10000;
  while (!(await canConnect(port))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      await stop();
      throw new Error(`mosquitto did not listen on 127.0.0.1:${port}:\n${output}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return { host: "127.0.0.1", port, url: `mqtt://127.0.0.1:${port}`, log: () => output, stop };
}
