/**
 * ble-gatt-request: a command and its reply in one exchange, on any BLE device (the generic form of what the
 * meter node does). Each message's payload is written to `characteristic` (format auto, as ble-gatt-out writes it),
 * the reply collected from `replyCharacteristic` (notifications or indications) until `delimiter`, `quietMs` of
 * silence or `length` bytes (none set: the first value), within `timeout`, and sent on the same message, formatted
 * by `format`. Exchanges on one device run one at a time across every node using it, and a late or leftover reply is
 * never the answer to a later request (src/ble/gatt-access.ts). One message in, one message out or a Catch-able error.
 */
import type { Node, NodeAPI, NodeMessage, NodeMessageInFlow } from "node-red";
import { exchange, MAX_REPLY_BYTES, refuseOverlong, type Exchange, type ResponseMode } from "./ble/gatt-access";
import type { Lease } from "./ble/lease";
import { decodeValue, encodeValue, type ReadFormat } from "./protocol/gatt-value";
import type { ReplyEnd } from "./protocol/stream-split";
import { configuredAdapter } from "./red/ble-config-node";
import {
  closingController,
  delimiterProperty,
  disconnectFor,
  explainError,
  gattFields,
  parseTarget,
  readFormatProperty,
  setGattFields,
  uuidProperty,
  wantsDisconnect,
  type GattNodeDef,
  type GattTarget,
} from "./red/gatt-common";
import { enumProperty, intProperty } from "./red/properties";
import { showInvalid, statusFor, type Translate } from "./red/status";

/** Requests waiting for the device; beyond this a flow sends faster than the device answers. */
const MAX_PENDING_REQUESTS = 100;
const DEFAULT_TIMEOUT_MS = 5000;

interface GattRequestDef extends GattNodeDef {
  replyCharacteristic?: string;
  length?: string | number;
  timeout?: string | number;
  response?: string;
}

interface Settings {
  target: GattTarget;
  replyCharacteristic: string;
  format: ReadFormat;
  response: ResponseMode;
  end: ReplyEnd;
  timeoutMs: number;
}

function parseSettings(RED: NodeAPI, node: Node, def: GattRequestDef): Settings {
  const target = parseTarget(RED, node, def);
  const replyCharacteristic = typeof def.replyCharacteristic === "string" && def.replyCharacteristic.trim() !== "" ? uuidProperty(def.replyCharacteristic, "replyCharacteristic") : target.characteristic;
  // Each end is optional here (empty or 0: not used), unlike ble-gatt-in's split, whose delimiter defaults to \n.
  const delimiter = typeof def.delimiter === "string" && def.delimiter !== "" ? delimiterProperty(def.delimiter) : undefined;
  const quietMs = intProperty(def.quietMs, 0, 0, 600_000, "quietMs");
  const length = intProperty(def.length, 0, 0, MAX_REPLY_BYTES, "length");
  const end: ReplyEnd = {
    ...(delimiter ? { delimiter, keepDelimiter: def.keepDelimiter === true || def.keepDelimiter === "true" } : {}),
    ...(quietMs > 0 ? { quietMs } : {}),
    ...(length > 0 ? { length } : {}),
    maxBytes: MAX_REPLY_BYTES,
  };
  return {
    target,
    replyCharacteristic,
    format: readFormatProperty(def.format, replyCharacteristic),
    response: enumProperty(def.response, ["auto", "with", "without"] as const, "auto", "response"),
    end,
    timeoutMs: intProperty(def.timeout, DEFAULT_TIMEOUT_MS, 1, 600_000, "timeout"),
  };
}

type Done = (error?: Error) => void;
type Send = (msg: NodeMessage) => void;

export = function register(RED: NodeAPI): void {
  function BleGattRequest(this: Node, def: GattRequestDef): void {
    RED.nodes.createNode(this, def);
    const t: Translate = (key, subs) => RED._(`ble-gatt-request.${key}`, subs);
    let settings: Settings;
    try {
      settings = parseSettings(RED, this, def);
    } catch (error) {
      showInvalid(this, t, error);
      return;
    }
    const { adapter } = configuredAdapter(RED, this, def.ble);
    if (!adapter) return;
    const { target, replyCharacteristic, format, response, end, timeoutMs } = settings;
    const closing = closingController();
    let pending = 0;
    /** The status shows a failed request; the lease's next state puts its own back. */
    let failed = false;

    const lease: Lease = adapter.lease({
      selector: target.selector,
      connection: target.connection,
      onState: (state) => {
        failed = false;
        this.status(statusFor(state));
      },
      // Nothing to set up: each request finds its characteristics (and names one that is missing or lacks a property).
      onConnected: async () => undefined,
    });

    const request = (msg: NodeMessageInFlow, send: Send, done: Done): void => {
      let value: Buffer;
      try {
        value = encodeValue("auto", msg.payload);
        refuseOverlong(target.characteristic, value);
      } catch (error) {
        done(explainError(error, t));
        return;
      }
      if (pending >= MAX_PENDING_REQUESTS) {
        done(new Error(t("errors.too-many", { max: MAX_PENDING_REQUESTS })));
        return;
      }
      pending++;
      const x: Exchange = {
        service: target.service,
        characteristic: target.characteristic,
        value,
        response,
        replyService: target.service,
        replyCharacteristic,
        end,
        timeoutMs,
      };
      lease
        .use(async (session, signal) => {
          const reply = await exchange(session, x, signal);
          return { reply, info: session.info };
        }, { signal: closing.signal })
        .then(({ reply, info }) => {
          const payload = decodeValue(format, reply, replyCharacteristic);
          const out = msg as NodeMessageInFlow & Record<string, unknown>;
          out.payload = payload;
          setGattFields(out, gattFields(info, { service: target.service, characteristic: replyCharacteristic }), target.topic, true);
          if (failed) {
            failed = false;
            this.status(statusFor(lease.state));
          }
          send(out);
          done();
        })
        .catch((error: unknown) => {
          // The flow is stopping: the message completes quietly rather than as an error on every redeploy.
          if (closing.signal.aborted) {
            done();
            return;
          }
          const problem = explainError(error, t);
          failed = true;
          this.status({ fill: "yellow", shape: "ring", text: problem.message });
          done(problem);
        })
        .finally(() => pending--);
    };

    this.on("input", (msg: NodeMessageInFlow, send: Send, done: Done) => {
      if (wantsDisconnect(msg)) {
        disconnectFor(lease, t, done);
        return;
      }
      request(msg, send, done);
    });

    this.on("close", (_removed: boolean, done: () => void) => {
      closing.abort();
      lease.release().then(done, () => done());
    });
  }
  RED.nodes.registerType("ble-gatt-request", BleGattRequest);
};
