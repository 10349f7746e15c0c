/**
 * nus-ymodem-receive: files pulled from a device over the Nordic UART Service with YMODEM, one download per
 * input message, one output message per file.
 *
 * Each download leases the device from the config node's pool and releases it when the download ends: the
 * seed's server disconnects after every transfer, so a lease held between downloads would only make the
 * pool reconnect to a device that has nothing to say. Downloads from one device take turns across nodes (a
 * YMODEM transfer owns the link's whole byte stream). The protocol and its deadlines are the pure YmodemSession;
 * this file runs its one timer, writes back to the device, saves, and handles Node-RED's messages and status.
 */
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import type { Node, NodeAPI, NodeDef, NodeMessage, NodeMessageInFlow, NodeStatus } from "node-red";
import type { BleAdapter, DeviceSelector, DeviceSession, Lease, LeaseState } from "./ble/pool";
import type { CrcKind } from "./protocol/crc16";
import { numberedFileName, resolveInside, sanitizeFileName } from "./protocol/file-name";
import { fetchFileFrame, interpretFetchReply, XOSS_CONTROL_CHARACTERISTIC, xossFileNameBytes, type XossFetchReply } from "./protocol/xoss";
import { YmodemError, type YmodemEvent } from "./protocol/ymodem";
import { YmodemSession } from "./protocol/ymodem-session";
import { configuredAdapter } from "./red/ble-config-node";
import { DeviceTurns } from "./red/device-turns";
import { addressProperty, intProperty, PropertyError, stringProperty, strOrEnvProperty } from "./red/properties";
import { problemText, showInvalid, statusFor, type Translate } from "./red/status";

const NUS_SERVICE = "6e400001-b5a3-f393-e0a9-e50e24dcca9e";
/** Central → peripheral (we write C/G, ACK, NAK, CAN here). */
const NUS_RX = "6e400002-b5a3-f393-e0a9-e50e24dcca9e";
/** Peripheral → central (the blocks arrive as notifications here). */
const NUS_TX = "6e400003-b5a3-f393-e0a9-e50e24dcca9e";

const DEFAULT_DEVICE_NAME = "mpy-nus";
const DEFAULT_MAX_BYTES = 64 * 1024 * 1024;
const DEFAULT_MAX_FILES = 100;
/** Triggers waiting while a download runs; more are refused (a flow that triggers in a loop must not pile up). */
const QUEUE_LIMIT = 10;
/** A download whose device is not connected by then fails (the pool alone would retry forever). */
const CONNECT_DEADLINE_MS = 30000;
/** Progress status at most this often: the editor does not need a status per block. */
const STATUS_INTERVAL_MS = 500;
/** Names tried when the file name is taken: "a.txt", "a (1).txt" … "a (9999).txt". */
const MAX_NUMBERED_NAMES = 10000;

interface NusYmodemReceiveDef extends NodeDef {
  ble?: string;
  address?: string;
  /** "str" (default) or "env": the address field names an environment variable. */
  addressType?: string;
  deviceName?: string;
  mtu?: string | number;
  crc?: string;
  mode?: string;
  blockTimeout?: string | number;
  retries?: string | number;
  maxBytes?: string | number;
  maxFiles?: string | number;
  directory?: string;
  requestFile?: string;
  topic?: string;
}

interface Settings {
  address: string;
  deviceName: string;
  mtu: number;
  crc: "auto" | CrcKind;
  mode: "C" | "G";
  blockTimeout: number;
  retries: number;
  maxBytes: number;
  maxFiles: number;
  directory: string;
  requestFile: string;
  topic: string;
}

function enumProperty<T extends string>(value: unknown, allowed: readonly T[], fallback: T, name: string): T {
  const s = stringProperty(value);
  if (s === "") return fallback;
  const found = allowed.find((a) => a === s);
  if (found === undefined) {
    const list = allowed.map((a) => JSON.stringify(a)).join(", ");
    // Not the value: it may come from an environment variable.
    throw new PropertyError("one-of", { field: name, allowed: list }, `${name} must be one of ${list}`);
  }
  return found;
}

/** `address` is the configured address field's value, already looked up when it names an environment variable. */
function parseSettings(def: NusYmodemReceiveDef, address: unknown): Settings {
  const requestFile = stringProperty(def.requestFile);
  if (requestFile) xossFileNameBytes(requestFile);
  return {
    address: addressProperty(address),
    // Absent (a flow written by hand) means the default; an empty field in the editor means "any NUS device".
    deviceName: def.deviceName === undefined ? DEFAULT_DEVICE_NAME : stringProperty(def.deviceName),
    mtu: intProperty(def.mtu, 247, 23, 517, "mtu"),
    crc: enumProperty(def.crc, ["auto", "arc", "xmodem"] as const, "auto", "crc"),
    mode: enumProperty(def.mode, ["C", "G"] as const, "C", "mode"),
    blockTimeout: intProperty(def.blockTimeout, 5000, 100, 600000, "blockTimeout"),
    retries: intProperty(def.retries, 10, 0, 100, "retries"),
    maxBytes: intProperty(def.maxBytes, DEFAULT_MAX_BYTES, 1, 2 ** 31 - 1, "maxBytes"),
    maxFiles: intProperty(def.maxFiles, DEFAULT_MAX_FILES, 1, 100000, "maxFiles"),
    directory: stringProperty(def.directory),
    requestFile,
    topic: stringProperty(def.topic),
  };
}

type InputMessage = NodeMessageInFlow & Record<string, unknown>;
type Send = (msg: NodeMessage | NodeMessage[]) => void;
type Done = (err?: Error) => void;

interface Job {
  msg: InputMessage;
  send: Send;
  done: Done;
}

/** What one download needs from its node. */
interface DownloadContext {
  adapter: BleAdapter;
  settings: Settings;
  t: Translate;
  status(status: NodeStatus): void;
  /** Builds and sends the output message of one file. */
  output(file: ReceivedFile): void;
  /** Temporary files being written, so that closing the node can remove them. */
  temps: Set<string>;
  /** The absolute directory that the configured "Save to" directory names now (see saveDirectory). */
  resolveDirectory(directory: string): string;
}

interface FileStats {
  bytes: number;
  durationMs: number;
  kbps: number;
  blocks: number;
  retransmissions: number;
  mtu: number;
  blockSize: 128 | 1024 | "mixed";
  crc: CrcKind;
}

interface ReceivedFile {
  name: string;
  data: Buffer;
  path: string | null;
  stats: FileStats;
  peripheral: { address: string; name: string };
}

interface Progress {
  name: string;
  size: number | null;
  received: number;
  startedAt: number;
}

/** An error whose message already says how many bytes had arrived. */
class CompleteMessageError extends Error {}

function errorOf(value: unknown): Error {
  return value instanceof Error ? value : new Error(String(value));
}

function kbpsOf(bytes: number, ms: number): number {
  // bits per millisecond = kbit/s
  return ms > 0 ? Math.round(((bytes * 8) / ms) * 10) / 10 : 0;
}

/**
 * Turns on devices per adapter, shared by every download node: two downloads from one device never overlap.
 * (A node that selects by name or service waits for every download on the adapter: it may land on any device.)
 */
const deviceTurns = new WeakMap<BleAdapter, DeviceTurns>();

function turnsOf(adapter: BleAdapter): DeviceTurns {
  let turns = deviceTurns.get(adapter);
  if (!turns) {
    turns = new DeviceTurns();
    deviceTurns.set(adapter, turns);
  }
  return turns;
}

/** One download: lease, optional XOSS request, YMODEM, saving; `run()` resolves with its error or null. */
class Download {
  private readonly ymodem: YmodemSession;
  private lease: Lease | null = null;
  private session: DeviceSession | null = null;
  /** RX accepts write commands: used for every byte except the last ones (see write()). */
  private withoutResponse = false;
  /** RX accepts write requests, whose response tells that the bytes reached the device. */
  private withResponse = false;
  private readonly unsubscribes: (() => void)[] = [];
  private writes: Promise<void> = Promise.resolve();
  private saves: Promise<void> = Promise.resolve();
  /** Wakes the YMODEM session at its next retry or deadline. */
  private wakeTimer: NodeJS.Timeout | null = null;
  private connectTimer: NodeJS.Timeout | null = null;
  private lastLeaseState: LeaseState | null = null;
  private progress: Progress | null = null;
  private lastStatusAt = 0;
  private finished = false;
  private error: Error | null = null;
  private filesReceived = 0;
  private lastFile: ReceivedFile | null = null;
  private resolveRun: (result: { error: Error | null; files: number; last: ReceivedFile | null }) => void = () => undefined;

  constructor(
    private readonly ctx: DownloadContext,
    private readonly selector: DeviceSelector,
    /** XOSS file to request first, or "". */
    private readonly requestFile: string,
  ) {
    const { crc, mode, maxBytes, maxFiles, retries, blockTimeout } = ctx.settings;
    this.ymodem = new YmodemSession({ crc, mode, maxBytes, maxFiles, retries, blockTimeout });
  }

  private get t(): Translate {
    return this.ctx.t;
  }

  private get deviceLabel(): string {
    return this.session?.info.address ?? this.selector.address ?? this.selector.name ?? "NUS device";
  }

  run(): Promise<{ error: Error | null; files: number; last: ReceivedFile | null }> {
    const result = new Promise<{ error: Error | null; files: number; last: ReceivedFile | null }>((resolve) => (this.resolveRun = resolve));
    this.connectTimer = setTimeout(() => {
      const state = this.lastLeaseState ? this.lastLeaseState.state : "scanning";
      this.finish(new Error(this.t("errors.connect-timeout", { device: this.deviceLabel, seconds: CONNECT_DEADLINE_MS / 1000, state })));
    }, CONNECT_DEADLINE_MS);
    this.lease = this.ctx.adapter.lease({
      selector: this.selector,
      mtu: this.ctx.settings.mtu,
      onState: (state) => this.onLeaseState(state),
      onConnected: (session) => this.onConnected(session),
      onDisconnected: () => this.apply(this.ymodem.disconnected()),
    });
    return result;
  }

  /** Stops the download from our side (the node is closing). */
  abort(reason: string): void {
    this.finish(new Error(reason));
  }

  private onLeaseState(state: LeaseState): void {
    this.lastLeaseState = state;
    if (this.finished || this.session) return;
    this.ctx.status(statusFor(state, this.t));
    // A missing or broken adapter will not fix itself within a download.
    if (state.state === "adapter" && state.problem) this.finish(new Error(problemText(state.problem)));
  }

  private async onConnected(session: DeviceSession): Promise<void> {
    // The pool may call this from inside lease(), before this.lease is set: continue after it returned.
    await Promise.resolve();
    // One link per download: a reconnection after the link dropped is not used (the download has failed).
    if (this.finished || this.session) return;
    this.session = session;
    if (this.connectTimer) clearTimeout(this.connectTimer);
    this.connectTimer = null;
    try {
      if (!session.hasCharacteristic(NUS_SERVICE, NUS_RX) || !session.hasCharacteristic(NUS_SERVICE, NUS_TX)) {
        throw new Error(this.t("errors.not-nus", { device: session.info.address }));
      }
      // NUS RX normally allows both; a write command saves a round trip per ACK.
      const rx = session.properties(NUS_SERVICE, NUS_RX);
      this.withoutResponse = rx.includes("writeWithoutResponse");
      this.withResponse = rx.includes("write") || !this.withoutResponse;
      this.unsubscribes.push(await session.subscribe(NUS_SERVICE, NUS_TX, (chunk) => this.onData(chunk)));
      if (this.finished) return;
      if (this.requestFile) await this.requestXossFile(session, this.requestFile);
      if (this.finished) return;
      // Green dot: the device is connected (Node-RED's convention); the text says what the transfer is doing.
      this.ctx.status({ fill: "green", shape: "dot", text: this.t("status.starting") });
      this.apply(this.ymodem.start(performance.now()));
    } catch (error) {
      // A drop during setup reaches onDisconnected, which reports it; anything else is reported here.
      if (!session.signal.aborted) this.finish(errorOf(error));
    }
  }

  /** XOSS: ask for a file by name on the control characteristic and wait for the device to accept it. */
  private async requestXossFile(session: DeviceSession, name: string): Promise<void> {
    if (!session.hasCharacteristic(NUS_SERVICE, XOSS_CONTROL_CHARACTERISTIC)) {
      throw new Error(this.t("errors.not-xoss", { device: session.info.address }));
    }
    this.ctx.status({ fill: "green", shape: "dot", text: this.t("status.requesting", { file: name }) });
    let settle: (reply: XossFetchReply | Error) => void = () => undefined;
    const reply = new Promise<XossFetchReply | Error>((resolve) => (settle = resolve));
    this.unsubscribes.push(
      await session.subscribe(NUS_SERVICE, XOSS_CONTROL_CHARACTERISTIC, (frame) => {
        try {
          const r = interpretFetchReply(frame, name);
          if (r.kind !== "other") settle(r);
        } catch (error) {
          settle(errorOf(error));
        }
      }),
    );
    const withoutResponse = session.properties(NUS_SERVICE, XOSS_CONTROL_CHARACTERISTIC).includes("writeWithoutResponse");
    await session.write(NUS_SERVICE, XOSS_CONTROL_CHARACTERISTIC, fetchFileFrame(name), withoutResponse);
    const timer = setTimeout(() => settle(new Error(this.t("errors.xoss-timeout", { file: name, ms: this.ctx.settings.blockTimeout }))), this.ctx.settings.blockTimeout);
    const onAbort = (): void => settle(new Error("disconnected"));
    session.signal.addEventListener("abort", onAbort);
    const answer = await reply;
    clearTimeout(timer);
    session.signal.removeEventListener("abort", onAbort);
    if (answer instanceof Error) throw answer;
    if (answer.kind === "refused") {
      throw new Error(this.t("errors.xoss-refused", { file: name, reason: answer.reason, code: `0x${answer.code.toString(16).padStart(2, "0")}` }));
    }
  }

  private onData(chunk: Buffer): void {
    if (this.finished) return;
    this.apply(this.ymodem.feed(chunk, performance.now()));
  }

  private onWake(): void {
    this.wakeTimer = null;
    if (this.finished) return;
    this.apply(this.ymodem.tick(performance.now()));
  }

  /** One timer, set to the session's next retry or deadline (every apply() moves it). */
  private schedule(): void {
    if (this.wakeTimer) clearTimeout(this.wakeTimer);
    this.wakeTimer = null;
    const at = this.ymodem.nextWakeAt;
    if (this.finished || at === null) return;
    this.wakeTimer = setTimeout(() => this.onWake(), Math.max(0, Math.ceil(at - performance.now())));
  }

  private apply(events: YmodemEvent[]): void {
    // The bytes that end the transfer (the last ACK, CAN CAN) must reach the device before the lease release
    // may disconnect it; a write request's response says they did.
    const last = events.some((e) => e.type === "end" || e.type === "error" || (e.type === "file" && this.requestFile !== ""));
    for (const event of events) {
      switch (event.type) {
        case "send":
          this.write(event.bytes, last);
          break;
        case "file-start":
          this.progress = { name: event.name, size: event.size, received: 0, startedAt: performance.now() };
          this.showProgress(true);
          break;
        case "progress":
          if (this.progress) this.progress.received = event.received;
          this.showProgress(false);
          break;
        case "file":
          this.onFile(event);
          break;
        case "end":
          this.finish(null);
          break;
        case "error":
          this.finish(event.error);
          break;
      }
    }
    this.schedule();
  }

  /**
   * Writes go out in order, one after another (the pool bounds each by its GATT timeout). Write commands
   * save a round trip per ACK; `confirmed` asks for a write request when RX allows one.
   */
  private write(bytes: Buffer, confirmed: boolean): void {
    const session = this.session;
    if (!session || session.signal.aborted) return;
    const withoutResponse = this.withoutResponse && !(confirmed && this.withResponse);
    this.writes = this.writes
      .then(() => session.write(NUS_SERVICE, NUS_RX, bytes, withoutResponse))
      .catch((error: unknown) => {
        // A write lost to a disconnect is reported by the disconnect itself.
        if (!session.signal.aborted) this.finish(new Error(this.t("errors.write-failed", { error: errorOf(error).message })));
      });
  }

  private showProgress(force: boolean): void {
    const p = this.progress;
    if (!p || this.finished) return;
    const now = performance.now();
    if (!force && now - this.lastStatusAt < STATUS_INTERVAL_MS) return;
    this.lastStatusAt = now;
    const kbps = kbpsOf(p.received, now - p.startedAt);
    const text =
      p.size !== null && p.size > 0
        ? this.t("status.progress", { file: p.name, percent: Math.floor((p.received * 100) / p.size), kbps })
        : this.t("status.progress-unsized", { file: p.name, bytes: p.received, kbps });
    this.ctx.status({ fill: "green", shape: "dot", text });
  }

  private onFile(event: Extract<YmodemEvent, { type: "file" }>): void {
    const session = this.session;
    const durationMs = this.progress ? performance.now() - this.progress.startedAt : 0;
    this.progress = null;
    const stats: FileStats = {
      bytes: event.size,
      durationMs: Math.round(durationMs),
      kbps: kbpsOf(event.size, durationMs),
      blocks: event.blocks,
      retransmissions: event.retransmissions,
      mtu: session?.mtu ?? 23,
      blockSize: event.blockSize,
      crc: event.crc,
    };
    const peripheral = { address: session?.info.address ?? "", name: session?.info.name ?? "" };
    // The seed's sender may stay quiet for a block timeout before the download ends: show the file as done now.
    this.ctx.status({ fill: "green", shape: "dot", text: this.t("status.done", { file: event.name, bytes: event.size, kbps: stats.kbps }) });
    const { directory } = this.ctx.settings;
    this.saves = this.saves
      .then(async () => {
        if (this.error) return; // the download already failed: a later file is not delivered
        const saved = directory ? await saveFile(this.ctx.resolveDirectory(directory), event.name, event.data, this.ctx.temps) : null;
        const file: ReceivedFile = { name: event.name, data: event.data, path: saved, stats, peripheral };
        this.filesReceived++;
        this.lastFile = file;
        this.ctx.output(file);
      })
      .catch((error: unknown) => {
        this.finish(new CompleteMessageError(this.t("errors.save-failed", { file: event.name, bytes: event.size, error: errorOf(error).message })));
      });
    // XOSS sends the one requested file and stays connected (it reports idle on the control characteristic).
    if (this.requestFile) this.finish(null);
  }

  /** Ends the download once: stop timers, cancel the transfer if it runs, flush writes, finish saving, release. */
  private finish(error: Error | null): void {
    if (this.finished) {
      // A save that fails after the transfer ended still fails the download.
      if (error && !this.error) this.error = this.describe(error);
      return;
    }
    this.finished = true;
    this.error = error ? this.describe(error) : null;
    if (this.wakeTimer) clearTimeout(this.wakeTimer);
    if (this.connectTimer) clearTimeout(this.connectTimer);
    this.wakeTimer = this.connectTimer = null;
    if (error && !this.ymodem.finished) {
      // Tell a sender that is still sending that we stopped (CAN CAN); the receiver's own error is ours already.
      for (const event of this.ymodem.cancel()) if (event.type === "send") this.writeFinal(event.bytes);
    }
    void this.cleanup();
  }

  /** Like write(), for the last bytes after finish() (no failure can be reported any more). */
  private writeFinal(bytes: Buffer): void {
    const session = this.session;
    if (!session || session.signal.aborted) return;
    const withoutResponse = this.withoutResponse && !this.withResponse;
    this.writes = this.writes.then(() => session.write(NUS_SERVICE, NUS_RX, bytes, withoutResponse)).catch(() => undefined);
  }

  private async cleanup(): Promise<void> {
    // The final ACK (or CAN CAN) must reach the device before the lease release may disconnect it.
    await this.writes;
    await this.saves;
    for (const unsubscribe of this.unsubscribes.splice(0)) unsubscribe();
    // run() assigned the lease synchronously after lease() returned; the awaits above came after that.
    await this.lease?.release().catch(() => undefined);
    this.resolveRun({ error: this.error, files: this.filesReceived, last: this.lastFile });
  }

  /** Every failure says how many bytes of the current file had arrived. */
  private describe(error: Error): Error {
    if (error instanceof YmodemError || error instanceof CompleteMessageError) return new Error(`${this.deviceLabel}: ${error.message}`);
    const p = this.progress;
    const where = p ? this.t("errors.where-file", { file: p.name, bytes: p.received }) : this.t("errors.where-none");
    return new Error(`${this.deviceLabel}: ${error.message}, ${where}`);
  }
}

/**
 * The absolute directory that a "Save to" directory names, as Node-RED's file nodes resolve a file name: an
 * absolute path as it is, a relative one against the `fileWorkingDirectory` setting when that is set, else
 * against the process's working directory. (Environment variables, "${NAME}", the runtime has already
 * substituted when it created the node.)
 */
function saveDirectory(directory: string, fileWorkingDirectory: unknown): string {
  return typeof fileWorkingDirectory === "string" && fileWorkingDirectory !== "" ? path.resolve(fileWorkingDirectory, directory) : path.resolve(directory);
}

/**
 * Saves `data` under the sanitised remote name in the absolute directory `dir`, never overwriting: the bytes go to a
 * temporary file first, which is then hard-linked to the first free name ("a.txt", "a (1).txt", ...);
 * link() fails instead of replacing an existing file, so a name taken meanwhile is never clobbered.
 * File systems without hard links fall back to check-then-rename. Returns the final path.
 */
async function saveFile(dir: string, remoteName: string, data: Buffer, temps: Set<string>): Promise<string> {
  await fs.promises.mkdir(dir, { recursive: true });
  const safeName = sanitizeFileName(remoteName);
  const temp = path.join(dir, `.nus-ymodem-${crypto.randomBytes(6).toString("hex")}.part`);
  temps.add(temp);
  try {
    await fs.promises.writeFile(temp, data, { flag: "wx" });
    for (let n = 0; n < MAX_NUMBERED_NAMES; n++) {
      if (!temps.has(temp)) throw new Error("cancelled");
      const candidate = resolveInside(dir, numberedFileName(safeName, n));
      if (await publish(temp, candidate)) return candidate;
    }
    throw new Error(`no free name for ${JSON.stringify(safeName)} in ${dir}`);
  } finally {
    temps.delete(temp);
    await fs.promises.rm(temp, { force: true });
  }
}

const NO_HARD_LINKS = new Set(["EPERM", "ENOTSUP", "EOPNOTSUPP", "ENOSYS", "EXDEV", "EMLINK"]);

/** true when `temp` now also lives at `target`; false when `target` exists. */
async function publish(temp: string, target: string): Promise<boolean> {
  try {
    await fs.promises.link(temp, target);
    return true;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? "";
    if (code === "EEXIST") return false;
    if (!NO_HARD_LINKS.has(code)) throw error;
  }
  try {
    await fs.promises.lstat(target);
    return false;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
  }
  await fs.promises.rename(temp, target);
  return true;
}

export = function register(RED: NodeAPI): void {
  function NusYmodemReceive(this: Node, def: NusYmodemReceiveDef): void {
    RED.nodes.createNode(this, def);
    const t: Translate = (key, subs) => RED._(`nus-ymodem-receive.${key}`, subs);
    let settings: Settings | null = null;
    let problem: string | null = null;
    try {
      settings = parseSettings(def, strOrEnvProperty(RED, this, def.address, def.addressType));
    } catch (error) {
      problem = showInvalid(this, t, error);
    }
    const configured = settings ? configuredAdapter(RED, this, def.ble, t) : null;
    if (configured?.problem) problem = configured.problem;

    const queue: Job[] = [];
    const temps = new Set<string>();
    let current: Download | null = null;
    /** Withdraws the wait for a turn on the device (the node is closing). */
    let waitingTurn: AbortController | null = null;
    /** The loop running queued downloads one after another, while there are any. */
    let draining: Promise<void> | null = null;
    let closing = false;
    let lastStatus: NodeStatus = {};

    /** Sets the status, with the number of waiting triggers appended while there are any. */
    const status = (s: NodeStatus): void => {
      lastStatus = s;
      const suffix = queue.length > 0 ? ` ${t("status.queued", { count: queue.length })}` : "";
      this.status(s.text !== undefined && suffix ? { ...s, text: `${String(s.text)}${suffix}` } : s);
    };
    // Nothing connects until a message arrives: grey ring, Node-RED's "idle".
    if (!problem) status({ fill: "grey", shape: "ring", text: t("status.idle") });

    function selectorFor(cfg: Settings, msg: InputMessage): DeviceSelector {
      if (msg.address !== undefined && msg.address !== null && msg.address !== "") {
        return { address: addressProperty(msg.address) };
      }
      // The address, when known, identifies the device alone: its advertised name may differ from the default.
      if (cfg.address) return { address: cfg.address };
      return cfg.deviceName ? { name: cfg.deviceName } : { service: NUS_SERVICE };
    }

    function requestFileFor(cfg: Settings, msg: InputMessage): string {
      if (msg.filename === undefined || msg.filename === null || msg.filename === "") return cfg.requestFile;
      if (typeof msg.filename !== "string") throw new TypeError(t("errors.bad-filename", { type: typeof msg.filename }));
      xossFileNameBytes(msg.filename);
      return msg.filename;
    }

    async function runJob(job: Job): Promise<void> {
      const cfg = settings;
      const adapter = configured?.adapter;
      if (!cfg || !adapter) {
        job.done(new Error(problem ?? t("errors.no-adapter")));
        return;
      }
      let selector: DeviceSelector;
      let requestFile: string;
      try {
        selector = selectorFor(cfg, job.msg);
        requestFile = requestFileFor(cfg, job.msg);
      } catch (error) {
        job.done(errorOf(error));
        return;
      }
      const output = (file: ReceivedFile): void => {
        const out = RED.util.cloneMessage(job.msg) as InputMessage;
        out.payload = file.data;
        out.filename = file.name;
        out.size = file.data.length;
        if (file.path !== null) out.path = file.path;
        else delete out.path;
        out.stats = file.stats;
        out.peripheral = file.peripheral;
        if (cfg.topic) out.topic = cfg.topic;
        job.send(out);
      };
      // Read when a file is saved, as the file nodes read it for each message.
      const resolveDirectory = (directory: string): string => saveDirectory(directory, (RED.settings as unknown as Record<string, unknown>).fileWorkingDirectory);
      // Another node may be downloading from this device: wait for its turn to end (its download is bounded).
      const turns = turnsOf(adapter);
      const address = selector.address ?? null;
      if (!turns.isFree(address)) status({ fill: "yellow", shape: "ring", text: t("status.waiting-turn") });
      waitingTurn = new AbortController();
      let endTurn: () => void;
      try {
        endTurn = await turns.take(address, waitingTurn.signal);
      } catch {
        job.done(new Error(t("errors.closed")));
        return;
      } finally {
        waitingTurn = null;
      }
      if (closing) {
        endTurn();
        job.done(new Error(t("errors.closed")));
        return;
      }
      let result: Awaited<ReturnType<Download["run"]>>;
      try {
        current = new Download({ adapter, settings: cfg, t, status, temps, output, resolveDirectory }, selector, requestFile);
        result = await current.run();
      } finally {
        current = null;
        endTurn();
      }
      if (result.error) {
        status({ fill: "red", shape: "ring", text: t("status.failed", { error: result.error.message }) });
        job.done(result.error);
        return;
      }
      const last = result.last;
      // The link is released after every download: the node is idle again (grey ring), the text says how it ended.
      if (result.files === 0 || last === null) status({ fill: "grey", shape: "ring", text: t("status.no-file") });
      else if (result.files === 1) status({ fill: "green", shape: "dot", text: t("status.done", { file: last.name, bytes: last.stats.bytes, kbps: last.stats.kbps }) });
      else status({ fill: "green", shape: "dot", text: t("status.done-batch", { files: result.files }) });
      job.done();
    }

    async function drain(): Promise<void> {
      for (let job = queue.shift(); job && !closing; job = queue.shift()) await runJob(job);
      draining = null;
    }

    this.on("input", (msg: NodeMessageInFlow, send: Send, done: Done) => {
      if (closing) {
        done();
        return;
      }
      if (draining && queue.length >= QUEUE_LIMIT) {
        // Refused, never interleaved: one link carries one YMODEM transfer at a time.
        done(new Error(t("errors.queue-full", { limit: QUEUE_LIMIT })));
        return;
      }
      queue.push({ msg: msg as InputMessage, send, done });
      if (draining) status(lastStatus);
      else draining = drain();
    });

    this.on("close", (_removed: boolean, done: () => void) => {
      closing = true;
      // Triggers that never started are dropped quietly; the running one ends with an error saying why.
      for (const job of queue.splice(0)) job.done();
      current?.abort(t("errors.closed"));
      waitingTurn?.abort();
      Promise.resolve(draining)
        .then(async () => {
          // saveFile removes its own temporary file; this catches one whose removal was interrupted.
          await Promise.all([...temps].map((temp) => fs.promises.rm(temp, { force: true }).catch(() => undefined)));
          temps.clear();
        })
        .then(done, () => done());
    });
  }
  RED.nodes.registerType("nus-ymodem-receive", NusYmodemReceive);
};
