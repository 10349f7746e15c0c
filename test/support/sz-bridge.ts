/**
 * lrzsz's `sz` behind a simulated NUS peripheral: the peripheral's RX bytes go to sz's stdin, sz's stdout goes
 * out as TX notifications. A NUS "serial cable" with a YMODEM implementation nobody here wrote at its far end.
 *
 * sz runs on plain pipes (no terminal) and reports progress on stderr. Its stdout is paused while the link is
 * behind (like RTS/CTS on a real serial line), so a streaming sz cannot pile a whole file up in the peripheral.
 */
import { spawn, spawnSync, type ChildProcessByStdio } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import type { Readable, Writable } from "node:stream";
import { NusUartPeripheral } from "../../src/sim/peripherals/nus-uart";
import { parseScenario, Simulation } from "../../src/sim/scenario";
import type { Clock } from "../../src/protocol/clock";
import type { LinkSettings } from "../../src/sim/types";

export const SZ_MISSING =
  "lrzsz's sz (or lsz) is not installed, so the YMODEM interop tests cannot run. Install it: apt-get install -y lrzsz";

/** Where lrzsz's sender is: Debian names it sz, some distributions lsz. Null when neither is there. */
export function locateSz(): string | null {
  const dirs = ["/usr/bin", "/usr/local/bin", ...(process.env.PATH ?? "").split(path.delimiter)].filter((d) => d.length > 0);
  for (const name of ["sz", "lsz"]) {
    for (const dir of dirs) {
      const candidate = path.join(dir, name);
      try {
        fs.accessSync(candidate, fs.constants.X_OK);
      } catch {
        continue;
      }
      // Only lrzsz's: another program called sz would make the tests meaningless.
      const version = spawnSync(candidate, ["--version"], { encoding: "utf8", timeout: 5000 });
      if (`${version.stdout}${version.stderr}`.includes("lrzsz")) return candidate;
    }
  }
  return null;
}

export interface SzExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
}

/** Pause sz's stdout above this many bytes waiting in the peripheral, resume below the low mark. */
const HIGH_WATER = 16 * 1024;
const LOW_WATER = 4 * 1024;

export class SzBridge {
  readonly peripheral: NusUartPeripheral;
  /** Bytes sz wrote (towards the central) and bytes the central sent (towards sz). */
  bytesFromSz = 0;
  bytesToSz = 0;
  /** Bytes sz wrote that could not be sent (no subscriber, link gone): a cable with nobody at the far end. */
  bytesLost = 0;
  /** The last exchanges, newest last ("to sz: 0643", "from sz: 1029 bytes 02 01 fe …"), for failure messages. */
  readonly trace: string[] = [];
  private child: ChildProcessByStdio<Writable, Readable, Readable> | null = null;
  private exitPromise: Promise<SzExit> | null = null;
  private stderr = "";

  constructor(options: { address: string; clock: Clock; link: LinkSettings; name?: string }) {
    this.peripheral = new NusUartPeripheral({
      address: options.address,
      name: options.name ?? "sz-nus",
      clock: options.clock,
      link: options.link,
      onRx: (bytes) => this.toSz(bytes),
    });
  }

  /** A Simulation whose only peripheral is this bridge's, at `address`. */
  static simulation(address: string, options: { timeScale: number; link?: Partial<LinkSettings> }): { sim: Simulation; bridge: SzBridge } {
    let bridge: SzBridge | null = null;
    const scenario = parseScenario({ link: options.link ?? {}, peripherals: [{ kind: "nus-uart", address }] }, "");
    const sim = new Simulation(scenario, {
      timeScale: options.timeScale,
      createPeripheral: (spec, _field, ctx) => {
        bridge = new SzBridge({ address: String(spec.address), clock: ctx.clock, link: ctx.link });
        return bridge.peripheral;
      },
    });
    if (bridge === null) throw new Error("the simulation did not build the sz bridge");
    return { sim, bridge };
  }

  /** Starts `sz args…` in `cwd`; it waits for the receiver's C or G. */
  start(sz: string, args: readonly string[], cwd: string): void {
    if (this.child) throw new Error("sz already started");
    const child = spawn(sz, args, { cwd, stdio: ["pipe", "pipe", "pipe"] });
    this.child = child;
    child.stderr.setEncoding("latin1");
    child.stderr.on("data", (text: string) => (this.stderr += text));
    // sz exits when the batch is over; the central's last ACK may then meet a closed pipe (EPIPE): harmless.
    child.stdin.on("error", () => undefined);
    child.stdout.on("data", (chunk: Buffer) => this.fromSz(chunk));
    this.exitPromise = new Promise<SzExit>((resolve) => {
      child.on("error", (error) => resolve({ code: null, signal: null, stderr: `${this.stderr}\n${error.message}` }));
      child.on("close", (code, signal) => resolve({ code, signal, stderr: this.stderr }));
    });
  }

  /** Resolves when sz has exited (rejects after `timeoutMs`, killing it). */
  exited(timeoutMs = 60_000): Promise<SzExit> {
    const exit = this.exitPromise;
    if (!exit) return Promise.reject(new Error("sz was not started"));
    return new Promise<SzExit>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.stop();
        reject(new Error(`sz did not exit within ${timeoutMs} ms; its stderr: ${JSON.stringify(this.stderr)}; last exchanges: ${this.trace.join(" | ")}`));
      }, timeoutMs);
      void exit.then((result) => {
        clearTimeout(timer);
        resolve(result);
      });
    });
  }

  get stderrText(): string {
    return this.stderr;
  }

  /** Kills sz if it is still running. */
  stop(): void {
    const child = this.child;
    if (child && child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
  }

  private toSz(bytes: Buffer): void {
    const child = this.child;
    if (!child || !child.stdin.writable) return;
    this.bytesToSz += bytes.length;
    this.note(`to sz: ${bytes.toString("hex")}`);
    child.stdin.write(bytes);
  }

  private note(entry: string): void {
    this.trace.push(`${entry} (peripheral ${this.peripheral.isConnected ? "connected" : "not connected"})`);
    if (this.trace.length > 40) this.trace.shift();
  }

  private fromSz(chunk: Buffer): void {
    this.bytesFromSz += chunk.length;
    this.note(`from sz: ${chunk.length} bytes ${chunk.subarray(0, 4).toString("hex")}`);
    const stdout = this.child?.stdout;
    this.peripheral.sendTx(chunk).then(
      () => {
        if (stdout?.isPaused() && this.peripheral.pendingTx < LOW_WATER) stdout.resume();
      },
      () => {
        this.bytesLost += chunk.length;
        stdout?.resume();
      },
    );
    if (this.peripheral.pendingTx > HIGH_WATER) stdout?.pause();
  }
}
