/**
 * hioki-meter: a HIOKI meter (DT4261 and kin) behind a Z3210 BLE adapter. Polls a command (FETC? by default)
 * and sends the commands that arrive as messages; one message per reply. Commands go to the instrument one at
 * a time, whichever node sends them; polls are skipped, never queued, while a command is in flight.
 */
import type { Node, NodeAPI, NodeDef, NodeMessage, NodeMessageInFlow } from "node-red";
import { configuredAdapter } from "./red/ble-config-node";
import type { DeviceSelector, DeviceSession, Lease, PeripheralInfo } from "./ble/pool";
import { encodeHiokiCommand, parseHiokiReply, parseZ3210Name, validateHiokiCommand } from "./protocol/hioki";
import { addressProperty, intProperty, stringProperty, strOrEnvProperty } from "./red/properties";
import { showInvalid, statusFor } from "./red/status";

/** The Z3210 command channel. The adapter's other writable custom service is Silicon Labs OTA: never touched. */
const COMMAND_SERVICE = "275ce3d8-b906-4475-8dd7-76af0db742bf";
const COMMAND_CHARACTERISTIC = "78b028ce-affd-4967-ab9e-dc336c8c94e7";
const DEFAULT_NAME_PREFIX = "Z3210";
const DEFAULT_COMMAND = "FETC?";
/**
 * A reply longer than MTU − 3 bytes arrives as several indications. One of exactly MTU − 3 bytes means "more
 * follows"; the reply ends with a shorter one, or when nothing follows within this gap (a reply whose length is
 * a multiple of MTU − 3). Several connection intervals of a typical link, short enough not to slow polling.
 */
const QUIET_GAP_MS = 100;
/** Nothing the instrument says is this long; a stream that is must be garbage, not a reply. */
const MAX_REPLY_BYTES = 4096;
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

class ReplyTimeoutError extends Error {
  constructor(command: string, ms: number) {
    super(`no reply to ${JSON.stringify(command)} within ${ms} ms`);
    this.name = "ReplyTimeoutError";
  }
}

class LinkLostError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "LinkLostError";
  }
}

/** Joins the indications of one reply (see QUIET_GAP_MS) and bounds the wait for it. */
class ReplyCollector {
  readonly reply: Promise<string>;
  private resolve!: (text: string) => void;
  private reject!: (error: Error) => void;
  private readonly chunks: Buffer[] = [];
  private size = 0;
  private settled = false;
  private replyTimer: NodeJS.Timeout | null;
  private gapTimer: NodeJS.Timeout | null = null;
  private readonly onAbort = (): void => this.fail(new LinkLostError(`connection lost while waiting for the reply to ${JSON.stringify(this.command)}`));

  constructor(
    private readonly command: string,
    timeoutMs: number,
    private readonly signal: AbortSignal,
  ) {
    this.reply = new Promise<string>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
    // Started before the write: the timeout bounds the whole exchange, as the seed's 1 s wait does.
    this.replyTimer = setTimeout(() => this.fail(new ReplyTimeoutError(command, timeoutMs)), timeoutMs);
    signal.addEventListener("abort", this.onAbort, { once: true });
  }

  push(chunk: Buffer, mtu: number): void {
    if (this.settled) return;
    this.chunks.push(chunk);
    this.size += chunk.length;
    if (this.size > MAX_REPLY_BYTES) {
      this.fail(new Error(`reply to ${JSON.stringify(this.command)} is longer than ${MAX_REPLY_BYTES} bytes`));
      return;
    }
    // Once the reply has started, the quiet gap (not the reply timeout) decides where it ends.
    this.clearTimers();
    const full = chunk.length >= mtu - 3;
    const endsLine = chunk.length > 0 && chunk[chunk.length - 1] === 0x0a;
    if (full && !endsLine) this.gapTimer = setTimeout(() => this.complete(), QUIET_GAP_MS);
    else this.complete();
  }

  fail(error: Error): void {
    if (this.settled) return;
    this.settle();
    this.reject(error);
  }

  private complete(): void {
    if (this.settled) return;
    this.settle();
    this.resolve(Buffer.concat(this.chunks).toString("latin1"));
  }

  private settle(): void {
    this.settled = true;
    this.clearTimers();
    this.signal.removeEventListener("abort", this.onAbort);
  }

  private clearTimers(): void {
    if (this.replyTimer) clearTimeout(this.replyTimer);
    if (this.gapTimer) clearTimeout(this.gapTimer);
    this.replyTimer = null;
    this.gapTimer = null;
  }
}

interface Exchange {
  /** The reply text; rejects on timeout, a failed write or a lost link. */
  reply: Promise<string>;
  /** Resolves (never rejects) once the instrument is free again: the write has settled and the reply is over. */
  finished: Promise<void>;
}

/**
 * The command channel of one connection, shared by every node leasing the same instrument: the instrument
 * answers one command at a time and its replies carry nothing that says which command they answer, so
 * commands are serialised here, across nodes, and each reply goes to the command that is in flight.
 */
class CommandChannel {
  private current: ReplyCollector | null = null;
  private tail: Promise<void> = Promise.resolve();

  private constructor(private readonly session: DeviceSession) {}

  static open(session: DeviceSession): Promise<CommandChannel> {
    let opening = channels.get(session);
    if (!opening) {
      const channel = new CommandChannel(session);
      opening = session.subscribe(COMMAND_SERVICE, COMMAND_CHARACTERISTIC, (value) => channel.receive(value)).then(() => channel);
      // A failed subscription drops the connection (the pool retries); never hand out the failed promise again.
      opening.catch(() => channels.delete(session));
      channels.set(session, opening);
    }
    return opening;
  }

  /** Queues one command (already validated) behind those in flight. */
  request(command: string, timeoutMs: number): Exchange {
    let bytes: Buffer;
    try {
      bytes = encodeHiokiCommand(command);
    } catch (error) {
      return { reply: Promise.reject(error instanceof Error ? error : new Error(String(error))), finished: Promise.resolve() };
    }
    let started!: (c: ReplyCollector | Error) => void;
    const ready = new Promise<ReplyCollector | Error>((resolve) => (started = resolve));
    const run = async (): Promise<void> => {
      if (this.session.signal.aborted) {
        started(new LinkLostError("not connected"));
        return;
      }
      const collector = new ReplyCollector(command, timeoutMs, this.session.signal);
      this.current = collector;
      started(collector);
      const write = Promise.resolve().then(() => this.session.write(COMMAND_SERVICE, COMMAND_CHARACTERISTIC, bytes, false));
      write.catch((error: unknown) => {
        // After a lost link the write fails too; the collector already says why, better than the write can.
        const reason = error instanceof Error ? error.message : String(error);
        collector.fail(this.session.signal.aborted ? new LinkLostError(reason) : new Error(`writing ${JSON.stringify(command)} failed: ${reason}`));
      });
      // The next command waits for both: a write still pending on a dying link must not get company.
      // Once the link is gone there is no link to pile up on: stop waiting for a write noble may never settle.
      const signal = this.session.signal;
      let onAbort = (): void => undefined;
      const linkGone = new Promise<void>((resolve) => {
        onAbort = resolve;
        signal.addEventListener("abort", onAbort, { once: true });
      });
      await Promise.race([Promise.allSettled([write, collector.reply]), linkGone]);
      signal.removeEventListener("abort", onAbort);
      if (this.current === collector) this.current = null;
    };
    // Never rejects, so one failed exchange cannot stall the commands queued behind it.
    const finished = this.tail.then(run).catch((error: unknown) => started(error instanceof Error ? error : new Error(String(error))));
    this.tail = finished;
    const reply = ready.then((c) => (c instanceof Error ? Promise.reject(c) : c.reply));
    return { reply, finished };
  }

  private receive(value: Buffer): void {
    // An indication with no command in flight is a late reply to one that timed out: nobody to give it to.
    this.current?.push(value, this.session.mtu);
  }
}

const channels = new WeakMap<DeviceSession, Promise<CommandChannel>>();

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
      showInvalid(this, t, error);
      return;
    }
    const { adapter } = configuredAdapter(RED, this, def.ble, t);
    if (!adapter) return;
    const topic = stringProperty(def.topic);

    let channel: CommandChannel | null = null;
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
      this.status({ fill: "green", shape: "dot", text: t(adapter.simulation ? "status.connected-simulated" : "status.connected") });
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

    const report = (job: Job, error: Error): void => {
      // A lost link shows as the pool's "reconnecting"; anything else the instrument did shows here.
      if (!(error instanceof LinkLostError)) {
        replyProblem = true;
        const text = error instanceof ReplyTimeoutError ? t("status.no-reply", { command: job.kind === "poll" ? command : job.command }) : error.message;
        this.status({ fill: "yellow", shape: "ring", text });
      }
      if (job.kind === "input") job.done(error);
      else this.debug(`poll: ${error.message}`); // polls repeat: an error per tick would flood the log
    };

    const run = async (job: Job, ch: CommandChannel, from: MeterPeripheral): Promise<void> => {
      busy = true;
      const exchange = ch.request(job.kind === "poll" ? command : job.command, replyTimeout);
      const outcome = await exchange.reply.then(
        (raw) => ({ raw }),
        (error: unknown) => ({ error: error instanceof Error ? error : new Error(String(error)) }),
      );
      if (closed) {
        if (job.kind === "input") job.done();
      } else if ("error" in outcome) report(job, outcome.error);
      else deliver(job, outcome.raw, from);
      await exchange.finished;
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
        else this.status(statusFor(state, t));
      },
      onConnected: async (session) => {
        if (!session.hasCharacteristic(COMMAND_SERVICE, COMMAND_CHARACTERISTIC)) throw new Error(t("errors.no-command-channel"));
        const ch = await CommandChannel.open(session);
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
          done(error instanceof Error ? error : new Error(String(error)));
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
