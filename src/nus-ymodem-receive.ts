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
import type { Node, NodeAPI, NodeDef, NodeMessageInFlow } from "node-red";
import { DownloadError, NusDownload, type DownloadFailure, type DownloadResult, type NusDownloadSettings, type ReceivedFile } from "./ble/nus-download";
import type { DeviceSelector } from "./ble/pool";
import { BleProblemError } from "./ble/problem";
import { XossRequestError } from "./ble/xoss-request";
import { xossFileNameBytes, XossNameError } from "./protocol/xoss";
import { YmodemError } from "./protocol/ymodem";
import { configuredAdapter } from "./red/ble-config-node";
import { removeTemps, saveDirectory, saveFile, SaveError } from "./red/file-save";
import { reworded } from "./red/error-text";
import { nusSelector, TransferQueue, type Done, type InputMessage, type Job, type Send } from "./red/nus-transfer";
import { addressProperty, enumProperty, intProperty, stringProperty, strOrEnvProperty } from "./red/properties";
import { noAdapter, problemText, showInvalid, statusFor, type Translate } from "./red/status";
import { describeYmodemError } from "./red/ymodem-text";

const DEFAULT_DEVICE_NAME = "mpy-nus";
const DEFAULT_MAX_BYTES = 64 * 1024 * 1024;
const DEFAULT_MAX_FILES = 100;

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

    const temps = new Set<string>();
    let current: NusDownload | null = null;
    // Downloads one after another (a bounded number waiting), each in its turn on the device.
    const queue = new TransferQueue(t, (s) => this.status(s), (job) => runJob(job));
    const status = (s: Parameters<typeof queue.status>[0]): void => queue.status(s);
    // Nothing connects until a message arrives: grey ring, Node-RED's "idle".
    if (!problem) status({ fill: "grey", shape: "ring", text: t("status.idle") });

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
        selector = nusSelector(cfg, job.msg);
        requestFile = requestFileFor(cfg, job.msg);
      } catch (error) {
        job.done(errorOf(refusedName(error)));
        return;
      }
      const endTurn = await queue.takeTurn(adapter, selector.address ?? null, job);
      if (!endTurn) return;
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

    this.on("input", (msg: NodeMessageInFlow, send: Send, done: Done) => queue.push({ msg: msg as InputMessage, send, done }));

    this.on("close", (_removed: boolean, done: () => void) => {
      // Triggers that never started are dropped quietly; the running one ends with an error saying why.
      const closed = queue.close();
      current?.abort();
      closed
        // saveFile removes its own temporary file; this catches one whose removal was interrupted.
        .then(() => removeTemps(temps))
        .then(done, () => done());
    });
  }
  RED.nodes.registerType("nus-ymodem-receive", NusYmodemReceive);
};
