/**
 * heart-rate: a standard Bluetooth heart-rate sensor (service 0x180D). One message per 0x2A37 notification,
 * fully decoded; nothing is dropped or merged.
 */
import type { Node, NodeAPI, NodeDef, NodeMessage } from "node-red";
import { configuredAdapter } from "./red/ble-config-node";
import type { DeviceSelector, Lease } from "./ble/pool";
import { decodeHeartRateMeasurement, HEART_RATE_MEASUREMENT, HEART_RATE_SERVICE, HeartRateFormatError } from "./protocol/heart-rate";
import { reworded } from "./red/error-text";
import { describeHeartRateFormatError } from "./red/heart-rate-text";
import { addressProperty, stringProperty, strOrEnvProperty } from "./red/properties";
import { showInvalid, statusFor } from "./red/status";


interface HeartRateDef extends NodeDef {
  ble?: string;
  address?: string;
  /** "str" (default) or "env": the address field names an environment variable. */
  addressType?: string;
  deviceName?: string;
  topic?: string;
}

export = function register(RED: NodeAPI): void {
  function HeartRate(this: Node, def: HeartRateDef): void {
    RED.nodes.createNode(this, def);
    const t = (key: string, subs?: Record<string, string | number>): string => RED._(`heart-rate.${key}`, subs);
    let selector: DeviceSelector;
    try {
      const address = addressProperty(strOrEnvProperty(RED, this, def.address, def.addressType));
      const name = stringProperty(def.deviceName);
      selector = address ? { address, ...(name ? { name } : {}) } : name ? { name } : { service: HEART_RATE_SERVICE };
    } catch (error) {
      showInvalid(this, t, error);
      return;
    }
    const { adapter } = configuredAdapter(RED, this, def.ble);
    if (!adapter) return;
    const topic = stringProperty(def.topic);
    const lease: Lease = adapter.lease({
      selector,
      onState: (state) => this.status(statusFor(state)),
      // The link is shared: when this node closes, another node may keep it, so this node's listener goes with its
      // lease (`leased` aborts on release and when the link ends).
      onConnected: async (session, leased) => {
        const peripheral = { address: session.info.address, name: session.info.name };
        const onValue = (value: Buffer): void => {
          let m;
          try {
            m = decodeHeartRateMeasurement(value);
          } catch (error) {
            const msg: NodeMessage & Record<string, unknown> = { payload: Buffer.from(value), peripheral, topic };
            const problem = error instanceof HeartRateFormatError ? reworded(error, describeHeartRateFormatError(error, t)) : error instanceof Error ? error : new Error(String(error));
            this.error(problem, msg);
            return;
          }
          const heartRate = { bpm: m.bpm, sensorContact: m.sensorContact, energyExpended: m.energyExpended, rrIntervals: m.rrIntervals };
          this.send({ payload: m.bpm, heartRate, peripheral, topic } as NodeMessage);
        };
        await session.subscribe(HEART_RATE_SERVICE, HEART_RATE_MEASUREMENT, onValue, leased);
      },
    });
    this.on("close", (_removed: boolean, done: () => void) => {
      lease.release().then(done, () => done());
    });
  }
  RED.nodes.registerType("heart-rate", HeartRate);
};
