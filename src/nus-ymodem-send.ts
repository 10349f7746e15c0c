/**
 * nus-ymodem-send: a file pushed to a device over the Nordic UART Service with YMODEM, one upload per input message.
 *
 * Each upload leases the device from the config node's pool and releases it when the upload ends, as the receive
 * node's downloads do, and takes its turn on the device with them (src/red/nus-transfer.ts). The upload itself is
 * src/ble/nus-upload.ts; this file reads the settings and the message, words the statuses and errors, and sends the
 * input message on with the transfer's stats.
 */
import type { Node, NodeAPI, NodeDef, NodeMessageInFlow } from "node-red";
import { NusUpload, UploadError, type NusUploadSettings, type UploadFailure, type UploadResult } from "./ble/nus-upload";
import type { DeviceSelector } from "./ble/pool";
import { BleProblemError } from "./ble/problem";
import { AnnouncedNameError, announcedFileName } from "./protocol/file-name";
import { configuredAdapter } from "./red/ble-config-node";
import { nusSelector, TransferQueue, type Done, type InputMessage, type Job, type Send } from "./red/nus-transfer";
import { addressProperty, enumProperty, intProperty, stringProperty, strOrEnvProperty } from "./red/properties";
import { noAdapter, problemText, showInvalid, statusFor, type Translate } from "./red/status";

const DEFAULT_DEVICE_NAME = "mpy-nus";

interface NusYmodemSendDef extends NodeDef {
  ble?: string;
  address?: string;
  /** "str" (default) or "env": the address field names an environment variable. */
  addressType?: string;
  deviceName?: string;
  mtu?: string | number;
  dialect?: string;
  blockSize?: string | number;
  blockTimeout?: string | number;
  retries?: string | number;
  topic?: string;
}

interface Settings extends NusUploadSettings {
  address: string;
  deviceName: string;
  topic: string;
}

/** `address` is the configured address field's value, already looked up when it names an environment variable. */
function parseSettings(def: NusYmodemSendDef, address: unknown): Settings {
  const blockSize = enumProperty(def.blockSize === undefined ? undefined : String(def.blockSize), ["1024", "128"] as const, "1024", "blockSize");
  return {
    address: addressProperty(address),
    // Absent (a flow written by hand) means the default; an empty field in the editor means "any NUS device".
    deviceName: def.deviceName === undefined ? DEFAULT_DEVICE_NAME : stringProperty(def.deviceName),
    mtu: intProperty(def.mtu, 247, 23, 517, "mtu"),
    dialect: enumProperty(def.dialect, ["standard", "seed"] as const, "standard", "dialect"),
    blockSize: blockSize === "1024" ? 1024 : 128,
    blockTimeout: intProperty(def.blockTimeout, 5000, 100, 600000, "blockTimeout"),
    retries: intProperty(def.retries, 10, 0, 100, "retries"),
    topic: stringProperty(def.topic),
  };
}

/** Block 0 of the seed's dialect is `"<name> <size>"` in 128 bytes. */
function seedNameRoom(size: number): number {
  return 128 - 1 - String(size).length;
}

export = function register(RED: NodeAPI): void {
  function NusYmodemSend(this: Node, def: NusYmodemSendDef): void {
    RED.nodes.createNode(this, def);
    const t: Translate = (key, subs) => RED._(`nus-ymodem-send.${key}`, subs);
    let settings: Settings | null = null;
    let problem: string | null = null;
    try {
      settings = parseSettings(def, strOrEnvProperty(RED, this, def.address, def.addressType));
    } catch (error) {
      problem = showInvalid(this, t, error);
    }
    const configured = settings ? configuredAdapter(RED, this, def.ble) : null;
    if (configured?.problem) problem = configured.problem;

    let current: NusUpload | null = null;
    // Uploads one after another (a bounded number waiting), each in its turn on the device.
    const queue = new TransferQueue(t, (s) => this.status(s), (job) => runJob(job));
    const status = (s: Parameters<typeof queue.status>[0]): void => queue.status(s);
    // Nothing connects until a message arrives: grey ring, Node-RED's "idle".
    if (!problem) status({ fill: "grey", shape: "ring", text: t("status.idle") });

    /** The file of a message: its bytes and the name to announce, or an error in the user's words. */
    function fileOf(cfg: Settings, msg: InputMessage): { name: string; data: Buffer } {
      const payload = msg.payload;
      let data: Buffer;
      if (Buffer.isBuffer(payload)) data = payload;
      else if (typeof payload === "string") data = Buffer.from(payload, "utf8");
      else throw new Error(t("errors.payload-type", { type: payload === null ? "null" : typeof payload }));
      const filename = msg.filename;
      if (filename === undefined || filename === null || filename === "") throw new Error(t("errors.filename-missing"));
      if (typeof filename !== "string") throw new Error(t("errors.filename-type", { type: typeof filename }));
      let name: string;
      try {
        name = announcedFileName(filename);
      } catch (error) {
        if (error instanceof AnnouncedNameError) throw new Error(t(`errors.filename-${error.key}`, error.params), { cause: error });
        throw error;
      }
      const bytes = Buffer.byteLength(name, "utf8");
      if (cfg.dialect === "seed" && bytes > seedNameRoom(data.length)) throw new Error(t("errors.filename-too-long-seed", { bytes, max: seedNameRoom(data.length) }));
      return { name, data };
    }

    /** A failed upload in the user's words: the device, the cause, and how many bytes the receiver acknowledged. */
    function describeFailure(failure: UploadFailure, size: number): string {
      const device = failure.device ?? t("errors.any-device");
      const cause = failure.cause;
      const words = (e: Error): string => (e instanceof BleProblemError ? problemText(e.problem) : e.message);
      const error = cause instanceof UploadError ? t(`errors.${cause.key}`, { device, ...cause.params, ...(cause.reason ? { error: words(cause.reason) } : {}) }) : words(cause);
      return t("errors.failed-on", { device, error, acknowledged: failure.acknowledged, size });
    }

    async function runJob(job: Job): Promise<void> {
      const cfg = settings;
      const adapter = configured?.adapter;
      if (!cfg || !adapter) {
        job.done(new Error(problem ?? noAdapter.reason()));
        return;
      }
      let selector: DeviceSelector;
      let file: { name: string; data: Buffer };
      try {
        selector = nusSelector(cfg, job.msg);
        file = fileOf(cfg, job.msg);
      } catch (error) {
        job.done(error instanceof Error ? error : new Error(String(error)));
        return;
      }
      const endTurn = await queue.takeTurn(adapter, selector.address ?? null, job);
      if (!endTurn) return;
      let result: UploadResult;
      try {
        current = new NusUpload({
          adapter,
          settings: cfg,
          selector,
          file,
          onLeaseState: (state) => status(statusFor(state)),
          // Green dot: the device is connected (Node-RED's convention); the text says what the transfer is doing.
          onStep: (step) => status({ fill: "green", shape: "dot", text: t(`status.${step.key}`, step.params) }),
        });
        result = await current.run();
      } finally {
        current = null;
        endTurn();
      }
      if (result.failure || !result.stats) {
        const error = new Error(result.failure ? describeFailure(result.failure, file.data.length) : t("errors.closed"));
        status({ fill: "red", shape: "ring", text: t("status.failed", { error: error.message }) });
        job.done(error);
        return;
      }
      const stats = result.stats;
      status({ fill: "green", shape: "dot", text: t("status.sent", { file: file.name, bytes: stats.bytes, kbps: stats.kbps }) });
      const out = job.msg;
      out.stats = stats;
      if (cfg.topic) out.topic = cfg.topic;
      job.send(out);
      job.done();
    }

    this.on("input", (msg: NodeMessageInFlow, send: Send, done: Done) => queue.push({ msg: msg as InputMessage, send, done }));

    this.on("close", (_removed: boolean, done: () => void) => {
      // Triggers that never started are dropped quietly; the running one sends CAN CAN and ends with an error.
      const closed = queue.close();
      current?.abort();
      closed.then(done, () => done());
    });
  }
  RED.nodes.registerType("nus-ymodem-send", NusYmodemSend);
};
