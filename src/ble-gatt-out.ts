/**
 * ble-gatt-out: writes each message's payload to one characteristic of any BLE device. `format` encodes it
 * (src/protocol/gatt-value.ts), `response` chooses write with or without response, and a value longer than the
 * link's MTU − 3 goes as a long write where the characteristic allows it (src/ble/gatt-access.ts). The message is
 * done when the write is: the response arrived, or, without response, the controller has it.
 */
import type { Node, NodeAPI, NodeMessageInFlow } from "node-red";
import { refuseOverlong, writeValue, type ResponseMode } from "./ble/gatt-access";
import type { Lease } from "./ble/lease";
import { encodeValue, WRITE_FORMATS, type WriteFormat } from "./protocol/gatt-value";
import { formatUuid } from "./protocol/uuid";
import { configuredAdapter } from "./red/ble-config-node";
import { closingController, disconnectFor, explainError, parseTarget, wantsDisconnect, type GattNodeDef, type GattTarget } from "./red/gatt-common";
import { enumProperty } from "./red/properties";
import { showInvalid, statusFor, type Translate } from "./red/status";

/** Writes waiting for the device; beyond this a flow sends faster than the device takes them. */
const MAX_PENDING_WRITES = 100;

interface GattOutDef extends GattNodeDef {
  response?: string;
}

interface Settings {
  target: GattTarget;
  format: WriteFormat;
  response: ResponseMode;
}

function parseSettings(RED: NodeAPI, node: Node, def: GattOutDef): Settings {
  return {
    target: parseTarget(RED, node, def),
    format: enumProperty(def.format, WRITE_FORMATS, "auto", "format"),
    response: enumProperty(def.response, ["auto", "with", "without"] as const, "auto", "response"),
  };
}

type Done = (error?: Error) => void;

export = function register(RED: NodeAPI): void {
  function BleGattOut(this: Node, def: GattOutDef): void {
    RED.nodes.createNode(this, def);
    const t: Translate = (key, subs) => RED._(`ble-gatt-out.${key}`, subs);
    let settings: Settings;
    try {
      settings = parseSettings(RED, this, def);
    } catch (error) {
      showInvalid(this, t, error);
      return;
    }
    const { adapter } = configuredAdapter(RED, this, def.ble);
    if (!adapter) return;
    const { target, format, response } = settings;
    const service = formatUuid(target.service);
    const characteristic = formatUuid(target.characteristic);
    const closing = closingController();
    let pending = 0;

    const lease: Lease = adapter.lease({
      selector: target.selector,
      connection: target.connection,
      onState: (state) => this.status(statusFor(state)),
      // Nothing to set up: each write finds the characteristic (and names it when it is missing).
      onConnected: async () => undefined,
    });

    this.on("input", (msg: NodeMessageInFlow, _send: unknown, done: Done) => {
      if (wantsDisconnect(msg)) {
        disconnectFor(lease, t, done);
        return;
      }
      let value: Buffer;
      try {
        value = encodeValue(format, msg.payload);
        refuseOverlong(characteristic, value);
      } catch (error) {
        done(explainError(error, t));
        return;
      }
      if (pending >= MAX_PENDING_WRITES) {
        done(new Error(t("errors.too-many", { max: MAX_PENDING_WRITES })));
        return;
      }
      pending++;
      lease.use((session) => writeValue(session, service, characteristic, value, response), { signal: closing.signal }).then(
        () => {
          pending--;
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
      lease.release().then(done, () => done());
    });
  }
  RED.nodes.registerType("ble-gatt-out", BleGattOut);
};
