/**
 * hioki-meter: a HIOKI meter (DT4261 and kin) behind a Z3210 BLE adapter. Polls a command (FETC? by default)
 * and sends the commands that arrive as messages; one message per reply. Commands go to the instrument one at
 * a time, whichever node sends them (the command channel shared across nodes: src/ble/hioki-link.ts); polls are
 * skipped, never queued, while a command is in flight.
 */
import type { Node, NodeAPI, NodeDef, NodeMessage, NodeMessageInFlow } from "node-red";
import { HiokiLinkError, MAX_REPLY_BYTES, openHiokiChannel } from "./ble/hioki-link";
import type { DeviceSelector, Lease, PeripheralInfo } from "./ble/pool";
import { BleProblemError } from "./ble/problem";
import { encodeHiokiCommand, HiokiCommandError, parseHiokiReply, parseZ3210Name, validateHiokiCommand } from "./protocol/hioki";
import { HiokiChannelError, type DiscardReport, type HiokiCommandChannel } from "./protocol/hioki-channel";
import { configuredAdapter } from "./red/ble-config-node";
import { reworded } from "./red/error-text";
import { addressProperty, intProperty, stringProperty, strOrEnvProperty } from "./red/properties";
import { connectedStatus, problemText, showInvalid, statusFor } from "./red/status";

const DEFAULT_NAME_PREFIX = "Z3210";
const DEFAULT_COMMAND = "FETC?";
/** Input commands waiting behind the one in flight; beyond this a flow is sending faster than the meter answers. */
const MAX_WAITING_INPUTS = 100;

interface HiokiMeterDef extends NodeDef {
  ble?: string;
  address?: string;
  /** "str" (default) or "env": the address field names an environment variable. */
  addressType?: string;
  deviceName?: string;
  command?: string;
  interval?: string | number;
  replyTimeout?: string | number;
  topic?: string;
}

interface MeterPeripheral {
  address: string;
  name: string;
  /** From the advertised name ("Z3210V2.10:DT4261#123456789"); null when the name does not say. */
  model: string | null;
  serial: string | null;
}

/** A lost link, which the pool's "reconnecting" status already shows. */
class LinkLostError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "LinkLostError";
  }
}

function describePeripheral(info: PeripheralInfo): MeterPeripheral {
  const parsed = parseZ3210Name(info.name);
  return { address: info.address, name: info.name, model: parsed ? parsed.model : null, serial: parsed && parsed.serial !== "" ? parsed.serial : null };
}

interface InputJob {
  command: string;
  /** msg.payload was a command string (non-numeric replies become the payload), not a poll trigger. */
  fromPayload: boolean;
  msg: NodeMessageInFlow & Record<string, unknown>;
  send: (msg: NodeMessage) => void;
  done: (err?: Error) => void;
}

type Job = { kind: "poll" } | ({ kind: "input" } & InputJob);

export = function register(RED: NodeAPI): void {
  function HiokiMeter(this: Node, def: HiokiMeterDef): void {
    RED.nodes.createNode(this, def);
    const t = (key: string, subs?: Record<string, string | number>): string => RED._(`hioki-meter.${key}`, subs);
    /** A command that cannot be sent, in the user's words (`command.<key>`). */
    const refused = (error: unknown): unknown => (error instanceof HiokiCommandError ? reworded(error, t(`command.${error.key}`, error.params)) : error);
    let selector: DeviceSelector;
    let command: string;
    let interval: number;
    let replyTimeout: number;
    try {
      const address = addressProperty(strOrEnvProperty(RED, this, def.address, def.addressType));
      const prefix = stringProperty(def.deviceName);
      // Without an address, the name prefix is all that tells a Z3210 apart: never match just anything.
      selector = address ? { address, ...(prefix ? { namePrefix: prefix } : {}) } : { namePrefix: prefix || DEFAULT_NAME_PREFIX };
      command = validateHiokiCommand(stringProperty(def.command) || DEFAULT_COMMAND);
      interval = intProperty(def.interval, 500, 0, 86_400_000, "interval");
      replyTimeout = intProperty(def.replyTimeout, 1000, 10, 600_000, "replyTimeout");
    } catch (error) {
      showInvalid(this, t, refused(error));
      return;
    }
    const { adapter } = configuredAdapter(RED, this, def.ble);
    if (!adapter) return;
    const topic = stringProperty(def.topic);

    let channel: HiokiCommandChannel | null = null;
    let peripheral: MeterPeripheral | null = null;
    /** This node has a command at the instrument (its own; other nodes' commands queue in the channel). */
    let busy = false;
    const waiting: InputJob[] = [];
    /** The status shows a reply problem; the next good reply puts "connected" back. */
    let replyProblem = false;
    let skippedPolls = 0;
    let closed = false;

    const showConnected = (): void => {
      replyProblem = false;
      this.status(connectedStatus(adapter.simulation !== null));
    };

    const failWaiting = (error: Error): void => {
      for (const job of waiting.splice(0)) job.done(error);
    };

    const deliver = (job: Job, raw: string, from: MeterPeripheral): void => {
      const reply = parseHiokiReply(raw, job.kind === "poll" ? command : job.command);
      if (replyProblem) showConnected();
      if (job.kind === "poll") {
        const msg: NodeMessage & Record<string, unknown> = { payload: reply.value, raw: reply.raw, peripheral: { ...from }, topic };
        if (reply.model !== null) msg.model = reply.model;
        this.send(msg);
        return;
      }
      const msg = job.msg;
      msg.payload = reply.value ?? (job.fromPayload ? reply.raw : null);
      msg.raw = reply.raw;
      if (reply.model !== null) msg.model = reply.model;
      else delete msg.model; // a model from upstream would be read as this instrument's
      msg.peripheral = { ...from };
      if (topic) msg.topic = topic;
      job.send(msg);
      job.done();
    };

    /** The channel's error in the user's words (a catalog key per cause). */
    const explain = (error: unknown): Error => {
      if (!(error instanceof HiokiChannelError)) return error instanceof Error ? error : new Error(String(error));
      // A failed write's cause is the BLE layer's (a problem, worded by the shared catalog) or the system's own text.
      const reason = error.detail.cause instanceof BleProblemError ? problemText(error.detail.cause.problem) : (error.detail.reason ?? "");
      const subs = { command: error.command, ms: error.detail.ms ?? 0, max: error.detail.maxBytes ?? MAX_REPLY_BYTES, reason };
      if (error.code === "link-lost") return new LinkLostError(t("errors.link-lost-waiting", subs));
      return new Error(t(`errors.${error.code}`, subs));
    };

    const report = (job: Job, error: unknown): void => {
      const problem = explain(error);
      // A lost link shows as the pool's "reconnecting"; anything else the instrument did shows here.
      if (!(problem instanceof LinkLostError)) {
        replyProblem = true;
        const timedOut = error instanceof HiokiChannelError && error.code === "timeout";
        const text = timedOut ? t("status.no-reply", { command: job.kind === "poll" ? command : job.command }) : problem.message;
        this.status({ fill: "yellow", shape: "ring", text });
      }
      if (job.kind === "input") job.done(problem);
      else this.debug(`poll: ${problem.message}`); // polls repeat: an error per tick would flood the log
    };

    /** Bytes the channel threw away after (or before) one of this node's commands: said, never echoed. */
    const warnDiscarded = (report: DiscardReport): void => {
      if (closed) return;
      this.warn(t(`warnings.discarded-${report.reason}`, { bytes: report.bytes, command: report.command ?? "", max: MAX_REPLY_BYTES }));
    };

    const run = async (job: Job, ch: HiokiCommandChannel, from: MeterPeripheral): Promise<void> => {
      busy = true;
      const cmd = job.kind === "poll" ? command : job.command;
      const outcome = await Promise.resolve()
        .then(() => ch.request(cmd, encodeHiokiCommand(cmd), replyTimeout, { onDiscard: warnDiscarded }))
        .then(
          (raw) => ({ raw }),
          (error: unknown) => ({ error }),
        );
      if (closed) {
        if (job.kind === "input") job.done();
      } else if ("error" in outcome) report(job, outcome.error);
      else deliver(job, outcome.raw, from);
      busy = false;
      pump();
    };

    const pump = (): void => {
      if (busy || closed || !channel || !peripheral) return;
      const job = waiting.shift();
      if (job) void run({ kind: "input", ...job }, channel, peripheral);
    };

    const poll = (): void => {
      if (closed || !channel || !peripheral) return;
      if (busy || waiting.length > 0) {
        skippedPolls++;
        this.debug(`poll skipped, a command is in flight (${skippedPolls} skipped so far)`);
        return;
      }
      void run({ kind: "poll" }, channel, peripheral);
    };

    const lease: Lease = adapter.lease({
      selector,
      onState: (state) => {
        // "connected" from the pool means linked; the node is ready only once indications are on (onConnected).
        if (state.state === "connected" && !channel) this.status({ fill: "yellow", shape: "ring", text: t("status.subscribing") });
        else if (state.state === "connected") showConnected();
        else this.status(statusFor(state));
      },
      onConnected: async (session) => {
        // A rejection drops the connection and the pool retries, showing why in the node's words.
        const ch = await openHiokiChannel(session).catch((error: unknown) => {
          throw error instanceof HiokiLinkError ? new Error(t(`errors.${error.key}`)) : error;
        });
        if (closed || session.signal.aborted) return;
        channel = ch;
        peripheral = describePeripheral(session.info);
        session.signal.addEventListener("abort", () => {
          if (channel === ch) channel = null;
        });
        showConnected();
        pump();
        if (interval > 0) poll();
      },
      onDisconnected: () => {
        channel = null;
        failWaiting(new LinkLostError(t("errors.link-lost")));
      },
    });

    const timer = interval > 0 ? setInterval(poll, interval) : null;

    this.on("input", (msg: NodeMessageInFlow, send: (msg: NodeMessage) => void, done: (err?: Error) => void) => {
      const fromPayload = typeof msg.payload === "string";
      let cmd = command;
      if (fromPayload) {
        try {
          cmd = validateHiokiCommand(msg.payload as string);
        } catch (error) {
          const problem = refused(error);
          done(problem instanceof Error ? problem : new Error(String(problem)));
          return;
        }
      }
      if (!channel) {
        done(new Error(t("errors.not-connected")));
        return;
      }
      if (waiting.length >= MAX_WAITING_INPUTS) {
        done(new Error(t("errors.too-many", { max: MAX_WAITING_INPUTS })));
        return;
      }
      waiting.push({ command: cmd, fromPayload, msg: msg as NodeMessageInFlow & Record<string, unknown>, send, done });
      pump();
    });

    this.on("close", (_removed: boolean, done: () => void) => {
      closed = true;
      if (timer) clearInterval(timer);
      // The flow is stopping: messages still waiting complete quietly rather than as errors on every redeploy.
      for (const job of waiting.splice(0)) job.done();
      lease.release().then(done, () => done());
    });
  }
  RED.nodes.registerType("hioki-meter", HiokiMeter);
};
