/**
 * lrzsz's `rz --ymodem` behind a simulated NUS peripheral, the receiving end of a serial cable: what the central
 * writes to RX goes to rz's stdin, rz's stdout goes out as TX notifications. rz receives into a directory of the
 * caller's (a temporary one), so tests compare the files it wrote byte for byte.
 *
 * A device running a YMODEM receiver loop: rz starts when the central enables TX notifications (so its first `C`
 * has somebody to reach), and after each batch (rz exits at the end-of-batch block 0) the next rz starts at once
 * while the central stays subscribed, up to `runs` batches. rz runs on plain pipes (no terminal); its stdout is
 * paused while the link is behind, like RTS/CTS on a real serial line.
 *
 * `sendOverNus` is the central's side without Node-RED: the pure YmodemSender writing NUS RX through noble.
 */
import { spawn, spawnSync, type ChildProcessByStdio } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import type { Readable, Writable } from "node:stream";
import type { Clock, Timer } from "../../src/protocol/clock";
import { YmodemSender, type YmodemSenderFile, type YmodemSenderStats } from "../../src/protocol/ymodem-sender";
import { NusUartPeripheral } from "../../src/sim/peripherals/nus-uart";
import { parseScenario, Simulation } from "../../src/sim/scenario";
import type { LinkSettings } from "../../src/sim/types";
import type { NusConnection } from "./nus-noble";

export const RZ_MISSING =
  "lrzsz's rz (or lrz) is not installed, so the YMODEM send interop tests cannot run. Install the Debian package lrzsz: apt-get install -y lrzsz";

/** Where lrzsz's receiver is: Debian names it rz, some distributions lrz. Null when neither is there. */
export function locateRz(): string | null {
  const dirs = ["/usr/bin", "/usr/local/bin", ...(process.env.PATH ?? "").split(path.delimiter)].filter((d) => d.length > 0);
  for (const name of ["rz", "lrz"]) {
    for (const dir of dirs) {
      const candidate = path.join(dir, name);
      try {
        fs.accessSync(candidate, fs.constants.X_OK);
      } catch {
        continue;
      }
      // Only lrzsz's: another program called rz would make the tests meaningless.
      const version = spawnSync(candidate, ["--version"], { encoding: "utf8", timeout: 5000 });
      if (`${version.stdout}${version.stderr}`.includes("lrzsz")) return candidate;
    }
  }
  return null;
}

export interface RzExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
}

/** Pause rz's stdout above this many bytes waiting in the peripheral, resume below the low mark. */
const HIGH_WATER = 16 * 1024;
const LOW_WATER = 4 * 1024;
/** Most trace entries kept for failure messages. */
const TRACE_LENGTH = 40;

export interface RzBridgeOptions {
  address: string;
  clock: Clock;
  link: LinkSettings;
  /** rz's path (locateRz()). */
  rz: string;
  /** Where rz writes the files it receives. */
  dir: string;
  /** Batches to receive, one rz run each. Default 1. */
  runs?: number;
  name?: string;
}

export class RzBridge {
  readonly peripheral: NusUartPeripheral;
  /** Bytes the central wrote (towards rz) and bytes rz wrote (towards the central). */
  bytesToRz = 0;
  bytesFromRz = 0;
  /** Bytes rz wrote that could not be sent (no subscriber, link gone). */
  bytesLost = 0;
  /** How each rz run ended, in order. */
  readonly exits: RzExit[] = [];
  /** The last exchanges, newest last, for failure messages. */
  readonly trace: string[] = [];
  private readonly rz: string;
  private readonly dir: string;
  private readonly runs: number;
  private child: ChildProcessByStdio<Writable, Readable, Readable> | null = null;
  private started = 0;
  private stderr = "";
  private readonly waiters: Array<() => void> = [];

  constructor(options: RzBridgeOptions) {
    this.rz = options.rz;
    this.dir = options.dir;
    this.runs = options.runs ?? 1;
    this.peripheral = new NusUartPeripheral({
      address: options.address,
      name: options.name ?? "rz-nus",
      clock: options.clock,
      link: options.link,
      onRx: (bytes) => this.toRz(bytes),
      onTxSubscribed: () => this.startNext(),
    });
  }

  /** A Simulation whose only peripheral is this bridge's, at `address`. */
  static simulation(
    address: string,
    options: { rz: string; dir: string; runs?: number; timeScale: number; link?: Partial<LinkSettings> },
  ): { sim: Simulation; bridge: RzBridge } {
    let bridge: RzBridge | null = null;
    const scenario = parseScenario({ link: options.link ?? {}, peripherals: [{ kind: "nus-uart", address }] }, "");
    const sim = new Simulation(scenario, {
      timeScale: options.timeScale,
      createPeripheral: (spec, _field, ctx) => {
        bridge = new RzBridge({ address: String(spec.address), clock: ctx.clock, link: ctx.link, rz: options.rz, dir: options.dir, runs: options.runs });
        return bridge.peripheral;
      },
    });
    if (bridge === null) throw new Error("the simulation did not build the rz bridge");
    return { sim, bridge };
  }

  get stderrText(): string {
    return this.stderr;
  }

  /** Resolves once `count` rz runs have exited; rejects after `timeoutMs` (real time), killing rz. */
  exited(count = this.runs, timeoutMs = 60_000): Promise<RzExit[]> {
    return new Promise<RzExit[]>((resolve, reject) => {
      const check = (): boolean => {
        if (this.exits.length < count) return false;
        clearTimeout(timer);
        resolve(this.exits.slice(0, count));
        return true;
      };
      const timer = setTimeout(() => {
        const index = this.waiters.indexOf(waiter);
        if (index >= 0) this.waiters.splice(index, 1);
        this.stop();
        reject(
          new Error(
            `${count} rz run(s) did not end within ${timeoutMs} ms (${this.exits.length} did); rz's stderr: ${JSON.stringify(this.stderr.slice(-2000))}; last exchanges: ${this.trace.join(" | ")}`,
          ),
        );
      }, timeoutMs);
      const waiter = (): void => {
        if (check()) this.waiters.splice(this.waiters.indexOf(waiter), 1);
      };
      if (!check()) this.waiters.push(waiter);
    });
  }

  /** Kills the running rz, if any, and starts no other. */
  stop(): void {
    this.started = Math.max(this.started, this.runs);
    const child = this.child;
    if (child && child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  }

  /** Starts the next rz run when none is running, runs remain and the central listens to TX. */
  private startNext(): void {
    if (this.child !== null || this.started >= this.runs || !this.peripheral.txSubscribed) return;
    this.started++;
    // rz's --ymodem: CRC-16, `C` to start, file names and sizes from block 0, written into cwd.
    const child = spawn(this.rz, ["--ymodem"], { cwd: this.dir, stdio: ["pipe", "pipe", "pipe"] });
    this.child = child;
    this.note(`rz run ${this.started} started`);
    child.stderr.setEncoding("latin1");
    child.stderr.on("data", (text: string) => (this.stderr += text));
    // rz exits when the batch is over; a last write from the central may then meet a closed pipe (EPIPE).
    child.stdin.on("error", () => undefined);
    child.stdout.on("data", (chunk: Buffer) => this.fromRz(chunk));
    let ended = false;
    const end = (exit: RzExit): void => {
      if (ended) return;
      ended = true;
      this.child = null;
      this.exits.push(exit);
      this.note(`rz run ${this.exits.length} exited: code ${String(exit.code)}, signal ${String(exit.signal)}`);
      for (const waiter of this.waiters.slice()) waiter();
      this.startNext();
    };
    child.on("error", (error) => end({ code: null, signal: null, stderr: `${this.stderr}\n${error.message}` }));
    child.on("close", (code, signal) => end({ code, signal, stderr: this.stderr }));
  }

  private toRz(bytes: Buffer): void {
    const child = this.child;
    this.bytesToRz += bytes.length;
    if (bytes.length <= 8) this.note(`to rz: ${bytes.toString("hex")}`);
    if (!child || !child.stdin.writable) return;
    child.stdin.write(bytes);
  }

  private fromRz(chunk: Buffer): void {
    this.bytesFromRz += chunk.length;
    this.note(`from rz: ${chunk.subarray(0, 8).toString("hex")}${chunk.length > 8 ? "…" : ""}`);
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

  private note(entry: string): void {
    this.trace.push(entry);
    if (this.trace.length > TRACE_LENGTH) this.trace.shift();
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The central's side without Node-RED

export interface SendOptions {
  /** 1024 (STX, the last block padded) or 128 (SOH). Default 1024. */
  blockSize?: 128 | 1024;
  /** Accept the receiver's `G`. Default true. */
  streaming?: boolean;
  /** Simulated ms without an answer before the sender resends (or gives up after its retries). Default 10 s. */
  blockTimeoutMs?: number;
  retries?: number;
}

export interface SendResult {
  /** null: the batch ended with the receiver's ACK of the end-of-batch block 0. */
  error: string | null;
  stats: YmodemSenderStats;
  /** Simulated time from the receiver's first byte to the last frame's answer. */
  durationMs: number;
  /** Writes (Write Commands) to RX and their bytes. */
  writes: number;
  bytesWritten: number;
}

/**
 * A long-lived reader of TX: bytes that arrive while no sender is running (a receiver's first `C` of its next
 * batch) wait here, as in a UART's receive buffer.
 */
export class TxReader {
  private buffered: Buffer[] = [];
  private consumer: ((bytes: Buffer) => void) | null = null;
  private readonly listener = (data: Buffer): void => {
    const bytes = Buffer.from(data);
    if (this.consumer) this.consumer(bytes);
    else this.buffered.push(bytes);
  };

  constructor(private readonly conn: NusConnection) {}

  async open(): Promise<void> {
    this.conn.tx.on("data", this.listener);
    await this.conn.tx.subscribeAsync();
  }

  close(): void {
    this.conn.tx.removeListener("data", this.listener);
  }

  /** Hands every byte, buffered ones first, to `consumer` until release(). */
  take(consumer: (bytes: Buffer) => void): void {
    this.consumer = consumer;
    for (const bytes of this.buffered.splice(0)) consumer(bytes);
  }

  release(): void {
    this.consumer = null;
  }
}

/**
 * Sends `files` as one YMODEM batch (standard dialect, CRC-16/XMODEM, as the nus-ymodem-send node's default) over
 * NUS: every frame written to RX as Write Commands of at most MTU − 3 bytes, in order.
 */
export async function sendOverNus(conn: NusConnection, reader: TxReader, clock: Clock, files: YmodemSenderFile[], options: SendOptions = {}): Promise<SendResult> {
  const sender = new YmodemSender({
    files,
    dialect: "standard",
    crc: "xmodem",
    blocks: (options.blockSize ?? 1024) === 1024 ? "stx" : "soh",
    streaming: options.streaming ?? true,
    retries: options.retries ?? 10,
  });
  const piece = (conn.peripheral.mtu ?? 23) - 3;
  const blockTimeoutMs = options.blockTimeoutMs ?? 10_000;
  const result: SendResult = { error: null, stats: sender.stats, durationMs: 0, writes: 0, bytesWritten: 0 };
  let timer: Timer | null = null;
  let started: number | null = null;
  let writing = false;
  let failed: string | null = null;
  const queue: Buffer[] = [];
  let settle: () => void = () => undefined;
  const finished = new Promise<void>((resolve) => (settle = resolve));

  const over = (): boolean => failed !== null || sender.state === "done" || sender.state === "aborted";
  let ended = false;
  const end = (): void => {
    if (ended) return;
    ended = true;
    timer?.cancel();
    timer = null;
    reader.release();
    conn.peripheral.removeListener("disconnect", onDisconnect);
    result.durationMs = started === null ? 0 : clock.now() - started;
    result.stats = sender.stats;
    if (failed !== null) result.error = failed;
    else if (sender.state === "aborted") result.error = "the transfer was cancelled (CAN CAN)";
    settle();
  };
  const arm = (): void => {
    timer?.cancel();
    timer = clock.setTimeout(() => {
      timer = null;
      if (!ended) push(sender.timeout());
    }, blockTimeoutMs);
  };
  // Frames leave in order, one Write Command per MTU − 3 bytes; in G mode more frames are pulled as writes finish.
  const pump = async (): Promise<void> => {
    if (writing) return;
    writing = true;
    // The answer's clock starts when the frame has been written.
    timer?.cancel();
    timer = null;
    try {
      for (;;) {
        if (queue.length === 0 && sender.hasPendingFrames) queue.push(...sender.nextFrames(4));
        const frame = queue.shift();
        if (!frame) break;
        for (let at = 0; at < frame.length; at += piece) {
          const part = frame.subarray(at, at + piece);
          await conn.rx.writeAsync(part, true);
          result.writes++;
          result.bytesWritten += part.length;
        }
      }
    } catch (error) {
      failed = `writing RX failed: ${error instanceof Error ? error.message : String(error)}`;
    } finally {
      writing = false;
    }
    if (over()) end();
    else if (!ended) arm();
  };
  const push = (frames: Buffer[]): void => {
    queue.push(...frames);
    if (frames.length > 0 || sender.hasPendingFrames) void pump();
    else if (over()) end();
    else if (!writing) arm();
  };
  const onDisconnect = (): void => {
    failed = "the link dropped";
    end();
  };
  conn.peripheral.once("disconnect", onDisconnect);
  reader.take((bytes) => {
    if (started === null) started = clock.now();
    push(sender.receive(bytes));
  });
  if (!over()) arm();
  await finished;
  return result;
}
