/**
 * nus-ymodem-receive: files pulled from a device over the Nordic UART Service with YMODEM, one download per
 * input message, one output message per file.
 *
 * Each download leases the device from the config node's pool and releases it when the download ends: the
 * seed's server disconnects after every transfer, so a lease held between downloads would only make the
 * pool reconnect to a device that has nothing to say. Downloads from one device take turns across nodes (a
 * YMODEM transfer owns the link's whole byte stream). The download itself is src/ble/nus-download.ts, saving
 * src/red/file-save.ts; this file reads the settings, queues the triggers, words the statuses and errors, and
 * builds the output messages.
 */
import type { Node, NodeAPI, NodeDef, NodeMessage, NodeMessageInFlow, NodeStatus } from "node-red";
import { DownloadError, NusDownload, type DownloadFailure, type DownloadResult, type NusDownloadSettings, type ReceivedFile } from "./ble/nus-download";
import type { BleAdapter, DeviceSelector } from "./ble/pool";
import { BleProblemError } from "./ble/problem";
import { XossRequestError } from "./ble/xoss-request";
import { NUS_SERVICE } from "./protocol/nus";
import { xossFileNameBytes, XossNameError } from "./protocol/xoss";
import { YmodemError } from "./protocol/ymodem";
import { configuredAdapter } from "./red/ble-config-node";
import { DeviceTurns } from "./red/device-turns";
import { removeTemps, saveDirectory, saveFile, SaveError } from "./red/file-save";
import { reworded } from "./red/error-text";
import { addressProperty, intProperty, PropertyError, stringProperty, strOrEnvProperty } from "./red/properties";
import { noAdapter, problemText, showInvalid, statusFor, type Translate } from "./red/status";
import { describeYmodemError } from "./red/ymodem-text";

const DEFAULT_DEVICE_NAME = "mpy-nus";
const DEFAULT_MAX_BYTES = 64 * 1024 * 1024;
const DEFAULT_MAX_FILES = 100;
/** Triggers waiting while a download runs; more are refused (a flow that triggers in a loop must not pile up). */
const QUEUE_LIMIT = 10;

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

interface Settings extends NusDownloadSettings {
  address: string;
  deviceName: string;
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

function errorOf(value: unknown): Error {
  return value instanceof Error ? value : new Error(String(value));
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

/** A failed download in the user's words: the device, the cause, and how far the current file had come. */
function describeFailure(failure: DownloadFailure, t: Translate): string {
  const device = failure.device ?? t("errors.any-device");
  const cause = failure.cause;
  // The BLE layer's problems in the shared catalog's words; anything else is the operating system's own text.
  const words = (e: Error): string => (e instanceof BleProblemError ? problemText(e.problem) : e.message);
  let error: string;
  if (cause instanceof DownloadError) error = t(`errors.${cause.key}`, { device, ...cause.params, ...(cause.reason ? { error: words(cause.reason) } : {}) });
  else if (cause instanceof XossRequestError) error = t(`errors.${cause.key}`, { device, ...cause.params });
  else if (cause instanceof YmodemError) error = describeYmodemError(cause, t);
  else error = words(cause);
  if (failure.where === "in-cause") return t("errors.failed-on", { device, error });
  const where = failure.where ? t("errors.where-file", failure.where) : t("errors.where-none");
  return t("errors.failed-on-where", { device, error, where });
}

type InputMessage = NodeMessageInFlow & Record<string, unknown>;
type Send = (msg: NodeMessage | NodeMessage[]) => void;
type Done = (err?: Error) => void;

interface Job {
  msg: InputMessage;
  send: Send;
  done: Done;
}

export = function register(RED: NodeAPI): void {
  function NusYmodemReceive(this: Node, def: NusYmodemReceiveDef): void {
    RED.nodes.createNode(this, def);
    const t: Translate = (key, subs) => RED._(`nus-ymodem-receive.${key}`, subs);
    /** A file name that cannot be requested, in the user's words (`xoss-name.<key>`). */
    const refusedName = (error: unknown): unknown => (error instanceof XossNameError ? reworded(error, t(`xoss-name.${error.key}`, error.params)) : error);
    let settings: Settings | null = null;
    let problem: string | null = null;
    try {
      settings = parseSettings(def, strOrEnvProperty(RED, this, def.address, def.addressType));
    } catch (error) {
      problem = showInvalid(this, t, refusedName(error));
    }
    const configured = settings ? configuredAdapter(RED, this, def.ble) : null;
    if (configured?.problem) problem = configured.problem;

    const queue: Job[] = [];
    const temps = new Set<string>();
    let current: NusDownload | null = null;
    /** Withdraws the wait for a turn on the device (the node is closing). */
    let waitingTurn: AbortController | null = null;
    /** The loop running queued downloads one after another, while there are any. */
    let draining: Promise<void> | null = null;
    let closing = false;
    let lastStatus: NodeStatus = {};

    /** Sets the status, with the number of waiting triggers appended while there are any. */
    const status = (s: NodeStatus): void => {
      lastStatus = s;
      const queued = s.text !== undefined && queue.length > 0;
      this.status(queued ? { ...s, text: t("status.queued", { status: String(s.text), count: queue.length }) } : s);
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

    /** One file: saved when a directory is set, then sent as a copy of the trigger message. */
    async function deliver(cfg: Settings, job: Job, file: ReceivedFile): Promise<void> {
      // The directory is read when a file is saved, as the file nodes read it for each message.
      const dir = cfg.directory ? saveDirectory(cfg.directory, (RED.settings as unknown as Record<string, unknown>).fileWorkingDirectory) : null;
      const saved =
        dir === null
          ? null
          : await saveFile(dir, file.name, file.data, temps).catch((error: unknown) => {
              throw error instanceof SaveError ? new Error(t(`errors.${error.key}`, error.params)) : error;
            });
      const out = RED.util.cloneMessage(job.msg) as InputMessage;
      out.payload = file.data;
      out.filename = file.name;
      out.size = file.data.length;
      if (saved !== null) out.path = saved;
      else delete out.path;
      out.stats = file.stats;
      out.peripheral = file.peripheral;
      if (cfg.topic) out.topic = cfg.topic;
      job.send(out);
    }

    async function runJob(job: Job): Promise<void> {
      const cfg = settings;
      const adapter = configured?.adapter;
      if (!cfg || !adapter) {
        job.done(new Error(problem ?? noAdapter.reason()));
        return;
      }
      let selector: DeviceSelector;
      let requestFile: string;
      try {
        selector = selectorFor(cfg, job.msg);
        requestFile = requestFileFor(cfg, job.msg);
      } catch (error) {
        job.done(errorOf(refusedName(error)));
        return;
      }
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
      let result: DownloadResult;
      try {
        current = new NusDownload({
          adapter,
          settings: cfg,
          selector,
          requestFile,
          onLeaseState: (state) => status(statusFor(state)),
          // Green dot: the device is connected (Node-RED's convention); the text says what the transfer is doing.
          onStep: (step) => status({ fill: "green", shape: "dot", text: t(`status.${step.key}`, step.params) }),
          deliver: (file) => deliver(cfg, job, file),
        });
        result = await current.run();
      } finally {
        current = null;
        endTurn();
      }
      if (result.failure) {
        const error = new Error(describeFailure(result.failure, t));
        status({ fill: "red", shape: "ring", text: t("status.failed", { error: error.message }) });
        job.done(error);
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
      current?.abort();
      waitingTurn?.abort();
      Promise.resolve(draining)
        // saveFile removes its own temporary file; this catches one whose removal was interrupted.
        .then(() => removeTemps(temps))
        .then(done, () => done());
    });
  }
  RED.nodes.registerType("nus-ymodem-receive", NusYmodemReceive);
};
