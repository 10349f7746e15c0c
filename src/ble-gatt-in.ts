/**
 * ble-gatt-in: the values of one characteristic of any BLE device. `mode` notify subscribes (notifications or
 * indications, whichever the characteristic has) and sends a message per value, or per chunk of the stream when
 * `split` cuts it at a delimiter or after a quiet time; `mode` read reads every `interval` ms, and on every message
 * that arrives, whose payload the value then becomes. `format` decodes each value (src/protocol/gatt-value.ts).
 */
import type { Node, NodeAPI, NodeMessage, NodeMessageInFlow } from "node-red";
import type { Lease } from "./ble/lease";
import type { DeviceSession } from "./ble/session";
import { realClock } from "./protocol/clock";
import { decodeValue, type ReadFormat } from "./protocol/gatt-value";
import { StreamSplitter, type SplitOptions } from "./protocol/stream-split";
import { formatUuid } from "./protocol/uuid";
import { configuredAdapter } from "./red/ble-config-node";
import {
  closingController,
  disconnectFor,
  explainError,
  gattFields,
  parseTarget,
  readFormatProperty,
  setGattFields,
  splitProperties,
  wantsDisconnect,
  type GattFields,
  type GattNodeDef,
  type GattTarget,
} from "./red/gatt-common";
import { enumProperty, intProperty } from "./red/properties";
import { problemText, showInvalid, statusFor, type Translate } from "./red/status";

/** Reads asked for by messages and not yet answered; beyond this a flow sends faster than the device answers. */
const MAX_PENDING_READS = 100;

interface GattInDef extends GattNodeDef {
  mode?: string;
  interval?: string | number;
}

interface Settings {
  target: GattTarget;
  mode: "notify" | "read";
  interval: number;
  format: ReadFormat;
  split: SplitOptions;
}

function parseSettings(RED: NodeAPI, node: Node, def: GattInDef): Settings {
  const target = parseTarget(RED, node, def);
  const mode = enumProperty(def.mode, ["notify", "read"] as const, "notify", "mode");
  return {
    target,
    mode,
    // The editor's default too (nodes/ble-gatt-in.html). Read only in read mode: in notify mode the dialog hides it.
    interval: mode === "read" ? intProperty(def.interval, 1000, 0, 86_400_000, "interval") : 0,
    format: readFormatProperty(def.format, target.characteristic),
    // Notify mode only, as the dialog shows it: a read is one value, never split.
    split: mode === "notify" ? splitProperties(def) : { mode: "none" },
  };
}

type Done = (error?: Error) => void;
type Send = (msg: NodeMessage) => void;

export = function register(RED: NodeAPI): void {
  function BleGattIn(this: Node, def: GattInDef): void {
    RED.nodes.createNode(this, def);
    const t: Translate = (key, subs) => RED._(`ble-gatt-in.${key}`, subs);
    let settings: Settings;
    try {
      settings = parseSettings(RED, this, def);
    } catch (error) {
      showInvalid(this, t, error);
      return;
    }
    const { adapter } = configuredAdapter(RED, this, def.ble);
    if (!adapter) return;
    const { target, mode, interval, format, split } = settings;
    // The session is asked in the dashed form, which its errors then name (a 128-bit UUID as users write it).
    const service = formatUuid(target.service);
    const characteristic = formatUuid(target.characteristic);
    const closing = closingController();
    let pending = 0;
    /** The last reason a poll failed, logged once until a read succeeds. */
    let pollProblem: string | null = null;

    const lacks = (what: "notify" | "read"): Error => new Error(t(`errors.no-${what}`, { characteristic, service }));

    /** A value as a message's payload; a value `format` cannot decode is a Catch-able error on `msg`. */
    const decoded = (value: Buffer, msg: Record<string, unknown>): boolean => {
      try {
        msg.payload = decodeValue(format, value, target.characteristic);
        return true;
      } catch (error) {
        msg.payload = Buffer.from(value);
        this.error(explainError(error, t), msg);
        return false;
      }
    };

    const newMessage = (value: Buffer, fields: GattFields): void => {
      const msg: Record<string, unknown> = {};
      setGattFields(msg, fields, target.topic, false);
      if (decoded(value, msg)) this.send(msg as NodeMessage);
    };

    /**
     * Why this node cannot use the connected device (its characteristic is missing or cannot push values), shown
     * instead of the green dot. Not a setup failure: that would drop the link every other node on the device uses.
     */
    let unusable: string | null = null;
    /**
     * A message of the node's own for an error no input message caused (a poll, a link coming up), so a Catch node
     * gets it too: what the node reads, and its topic.
     */
    const ownMessage = (): NodeMessage => {
      const msg: Record<string, unknown> = { service, characteristic };
      if (target.topic) msg.topic = target.topic;
      return msg as NodeMessage;
    };
    const showUnusable = (text: string): void => {
      if (text !== unusable) this.error(new Error(text), ownMessage()); // once per cause, not on every reconnect
      unusable = text;
      this.status({ fill: "red", shape: "ring", text });
    };

    const onConnected = async (session: DeviceSession, leased: AbortSignal): Promise<void> => {
      if (mode === "read") return;
      if (!session.hasCharacteristic(service, characteristic)) {
        return showUnusable(problemText({ key: "no-characteristic", params: { characteristic, service, address: session.info.address } }));
      }
      const properties = session.properties(service, characteristic);
      if (!properties.includes("notify") && !properties.includes("indicate")) return showUnusable(lacks("notify").message);
      unusable = null;
      const fields = gattFields(session.info, target);
      if (split.mode === "none") {
        await session.subscribe(service, characteristic, (value) => newMessage(value, fields), leased);
        return;
      }
      // A new stream per link: a line cut by a disconnect is not glued to what comes after the reconnect.
      const splitter = new StreamSplitter(split, realClock, (chunk) => newMessage(chunk, fields));
      leased.addEventListener("abort", () => splitter.close(), { once: true });
      await session.subscribe(service, characteristic, (value) => splitter.push(value), leased);
    };

    const lease: Lease = adapter.lease({
      selector: target.selector,
      connection: target.connection,
      onState: (state) => {
        if (state.state === "connected" && unusable !== null) this.status({ fill: "red", shape: "ring", text: unusable });
        else this.status(statusFor(state));
      },
      onConnected,
    });

    /** One read through the lease (connecting an idle one): the value and the device it came from. */
    const read = (): Promise<{ value: Buffer; fields: GattFields }> =>
      lease.use(
        async (session) => {
          const properties = session.properties(service, characteristic);
          if (session.hasCharacteristic(service, characteristic) && !properties.includes("read")) throw lacks("read");
          const value = await session.read(service, characteristic);
          return { value, fields: gattFields(session.info, target) };
        },
        { signal: closing.signal },
      );

    let polling = false;
    const poll = (): void => {
      if (polling || closing.signal.aborted) return; // a slow device: ticks are skipped, never queued
      polling = true;
      read().then(
        ({ value, fields }) => {
          polling = false;
          if (closing.signal.aborted) return;
          if (pollProblem !== null) this.status(statusFor(lease.state));
          pollProblem = null;
          newMessage(value, fields);
        },
        (error: unknown) => {
          polling = false;
          if (closing.signal.aborted) return;
          // Every tick would log the same failure: once, until a read succeeds; the status says it meanwhile.
          const problem = explainError(error, t);
          if (problem.message !== pollProblem) this.error(problem, ownMessage());
          pollProblem = problem.message;
          this.status({ fill: "yellow", shape: "ring", text: problem.message });
        },
      );
    };
    const timer = mode === "read" && interval > 0 ? setInterval(poll, interval) : null;

    this.on("input", (msg: NodeMessageInFlow, send: Send, done: Done) => {
      if (wantsDisconnect(msg)) {
        disconnectFor(lease, t, done);
        return;
      }
      if (mode === "notify") {
        // Notifications flow while the link is up; a message wakes an idle link for its idle time.
        if (target.connection === "keep") done();
        else lease.use(async () => undefined, { signal: closing.signal }).then(() => done(), (error: unknown) => done(explainError(error, t)));
        return;
      }
      if (pending >= MAX_PENDING_READS) {
        done(new Error(t("errors.too-many", { max: MAX_PENDING_READS })));
        return;
      }
      pending++;
      read().then(
        ({ value, fields }) => {
          pending--;
          if (closing.signal.aborted) return done();
          const out = msg as NodeMessageInFlow & Record<string, unknown>;
          setGattFields(out, fields, target.topic, true);
          try {
            out.payload = decodeValue(format, value, target.characteristic);
          } catch (error) {
            out.payload = Buffer.from(value);
            done(explainError(error, t));
            return;
          }
          send(out);
          done();
        },
        (error: unknown) => {
          pending--;
          // The flow is stopping: the message completes quietly rather than as an error on every redeploy.
          done(closing.signal.aborted ? undefined : explainError(error, t));
        },
      );
    });

    this.on("close", (_removed: boolean, done: () => void) => {
      closing.abort();
      if (timer) clearInterval(timer);
      lease.release().then(done, () => done());
    });
  }
  RED.nodes.registerType("ble-gatt-in", BleGattIn);
};
