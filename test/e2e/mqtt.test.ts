/**
 * examples/mqtt-gateway.json against a real broker: Debian's mosquitto on a loopback port, Node-RED started the
 * way `npm start` starts it with the example flow (only the broker's address, the gateway's name and the
 * download directory changed), and an MQTT client (the `mqtt` package) subscribed to the gateway's topics the way
 * a central dashboard or database would be. Checks the topic scheme, the JSON payloads, the retained online
 * states, the gateway's status through birth, last-will and close messages, and the Home Assistant discovery
 * configs (read as Home Assistant's MQTT integration reads them: config, state topic, value template, availability).
 *
 * Without mosquitto these tests fail (they do not skip): `apt-get install -y mosquitto`.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { connectAsync, type MqttClient } from "mqtt";
import { readExample, startDemoNodeRed, type DemoNodeRed } from "../support/demo-node-red";
import { startMosquitto, type Broker } from "../support/mosquitto";

const ARTIFACTS = path.resolve(__dirname, "..", "..", "test-artifacts");
const GATEWAY = "test-gw";
const ROOT = `ble-instruments/${GATEWAY}`;
/** The built-in scenario's devices (src/sim/scenario.ts DEFAULT_SCENARIO), as the example's groups name them. */
const HR = "d8:75:ba:00:00:01";
const METER = "a4:9e:69:00:00:01";
const FILES = "e3:c3:5c:00:00:01";
/** The built-in BTHome sensors: one in the clear, one encrypted with the key the example's ble-scan node holds. */
const BTHOME = "c0:b7:40:00:00:01";
const BTHOME_ENCRYPTED = "c0:b7:40:00:00:02";
/** Home Assistant's default discovery prefix, as the example sets HA_DISCOVERY_PREFIX. */
const HA = "homeassistant";
const haConfigTopic = (address: string, key: string): string => `${HA}/sensor/ble-instruments_${GATEWAY}_${address.replace(/:/g, "_")}_${key}/config`;
const ISO_TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

interface Received {
  topic: string;
  text: string;
  retain: boolean;
  qos: number;
}

type Json = Record<string, unknown>;

const json = (m: Received): Json => JSON.parse(m.text) as Json;

/**
 * What Home Assistant shows for a state message under a discovery config's value template. The example only uses
 * `{{ value_json.<path> }}` and `{{ value_json.<path>[i] }}`; anything else fails the test (it would need checking
 * against Home Assistant's template engine).
 */
function templated(template: string, state: Json): unknown {
  const m = /^\{\{ value_json((?:\.[A-Za-z_][A-Za-z0-9_]*)+)(?:\[(\d+)\])? \}\}$/.exec(template);
  assert.ok(m, `a value template this test can evaluate: ${template}`);
  let value: unknown = state;
  for (const key of m[1].slice(1).split(".")) value = (value as Json | undefined)?.[key];
  return m[2] === undefined ? value : (value as unknown[] | undefined)?.[Number(m[2])];
}

/** The example, pointed at the test's broker and download directory, as gateway "test-gw". */
function gatewayFlow(broker: Broker, downloads: string): Record<string, unknown>[] {
  const flow = readExample("mqtt-gateway.json");
  const brokers = flow.filter((n) => n.type === "mqtt-broker");
  assert.equal(brokers.length, 1, "the example has one broker node");
  Object.assign(brokers[0], { broker: broker.host, port: String(broker.port) });
  const tab = flow.find((n) => n.type === "tab")!;
  const env = tab.env as { name: string; value: string; type: string }[];
  const set = (name: string, value: string): void => {
    const entry = env.find((e) => e.name === name);
    assert.ok(entry, `the example's flow has the environment variable ${name}`);
    Object.assign(entry, { value, type: "str" });
  };
  set("GATEWAY", GATEWAY);
  set("DOWNLOAD_DIR", downloads);
  return flow;
}

/** Every message a subscriber gets, in order, with a way to wait for the next one that matches. */
class Subscriber {
  readonly messages: Received[] = [];
  private constructor(readonly client: MqttClient) {
    client.on("message", (topic, payload, packet) => this.messages.push({ topic, text: payload.toString("utf8"), retain: packet.retain, qos: packet.qos }));
  }

  static async connect(broker: Broker, filter: string): Promise<Subscriber> {
    const client = await connectAsync(broker.url, { clientId: `test-${process.pid}-${Math.random().toString(16).slice(2)}`, reconnectPeriod: 0 });
    const subscriber = new Subscriber(client);
    await client.subscribeAsync(filter, { qos: 1 });
    return subscriber;
  }

  /** Resolves with the first message (from `from` on) that matches; fails after timeoutMs listing what came. */
  async next(match: (m: Received) => boolean, timeoutMs: number, from = 0): Promise<Received> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.messages.slice(from).find(match);
      if (found) return found;
      if (Date.now() > deadline) {
        const seen = this.messages.slice(from).map((m) => `${m.topic} ${m.text.slice(0, 80)}`);
        assert.fail(`no matching message within ${timeoutMs} ms; got ${seen.length}:\n${seen.slice(-20).join("\n")}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  /** All messages on `topic` so far. */
  on(topic: string): Received[] {
    return this.messages.filter((m) => m.topic === topic);
  }

  async close(): Promise<void> {
    await this.client.endAsync();
  }
}

/**
 * What a client connecting now is given as retained on `filter` (a dashboard starting up late): mosquitto sends
 * retained messages right after the subscription, so half a second of quiet ends the list.
 */
async function retained(broker: Broker, filter: string): Promise<Map<string, Received>> {
  const late = await Subscriber.connect(broker, filter);
  let count = -1;
  while (count !== late.messages.length) {
    count = late.messages.length;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  await late.close();
  return new Map(late.messages.filter((m) => m.retain).map((m) => [m.topic, m]));
}

describe("MQTT gateway example against a real broker (mosquitto on loopback)", function () {
  this.timeout(120000);
  let broker: Broker | null = null;
  let red: DemoNodeRed | null = null;
  let central: Subscriber | null = null;
  /** Home Assistant's MQTT integration: subscribed to the discovery prefix before the gateway starts. */
  let homeAssistant: Subscriber | null = null;
  let downloads = "";

  before(async () => {
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    broker = await startMosquitto();
    downloads = fs.mkdtempSync(path.join(os.tmpdir(), "mqtt-downloads-"));
    // Subscribed before the gateway starts, as a central subscriber would be: nothing published is missed.
    central = await Subscriber.connect(broker, `${ROOT}/#`);
    homeAssistant = await Subscriber.connect(broker, `${HA}/#`);
    red = await startDemoNodeRed({ flows: gatewayFlow(broker, downloads), logFile: path.join(ARTIFACTS, "mqtt-node-red.log") });
  });

  after(async () => {
    await central?.close();
    await homeAssistant?.close();
    await red?.stop();
    await broker?.stop();
    if (downloads) fs.rmSync(downloads, { recursive: true, force: true });
  });

  it("announces the gateway online, retained, through the broker node's birth message", async () => {
    await central!.next((m) => m.topic === `${ROOT}/status` && m.text === "online", 15000);
    const kept = await retained(broker!, `${ROOT}/status`);
    assert.equal(kept.get(`${ROOT}/status`)?.text, "online");
  });

  it("publishes every heart-rate measurement as JSON under <prefix>/<gateway>/<address>/heart-rate", async () => {
    const topic = `${ROOT}/${HR}/heart-rate`;
    const from = central!.messages.length;
    const readings = (): Received[] => central!.messages.slice(from).filter((m) => m.topic === topic);
    // One a second from the simulated sensor.
    await central!.next(() => readings().length >= 3, 15000, from);
    for (const m of readings()) {
      const reading = json(m);
      assert.ok([45, 46, 47].includes(reading.bpm as number), `bpm ${String(reading.bpm)} from the simulated sensor`);
      assert.equal(reading.sensorContact, true);
      assert.equal(reading.energyExpended, null);
      assert.ok(Array.isArray(reading.rrIntervals));
      assert.equal(reading.name, "44278-33");
      assert.match(reading.time as string, ISO_TIME);
      assert.equal(m.qos, 0);
      assert.equal(m.retain, false, "readings are a stream, not retained state");
    }
  });

  it("publishes the HIOKI meter's readings under <prefix>/<gateway>/<address>/reading", async () => {
    const m = await central!.next((x) => x.topic === `${ROOT}/${METER}/reading`, 15000);
    const reading = json(m);
    assert.equal(typeof reading.value, "number");
    assert.match(reading.raw as string, /^DT4261;[+-]\d\.\d+E[+-]\d\d$/);
    assert.equal(reading.model, "DT4261");
    assert.equal(reading.serial, "000000001");
    assert.equal(reading.name, "Z3210V2.10:DT4261#000000001");
    assert.match(reading.time as string, ISO_TIME);
  });

  it("announces the heart-rate sensor and the meter to Home Assistant, retained, with device, unit, state topic and availability", async () => {
    for (const [address, key] of [[HR, "heart_rate"], [METER, "reading"]] as const) {
      const m = await homeAssistant!.next((x) => x.topic === haConfigTopic(address, key), 15000);
      assert.equal(m.qos, 1);
      // Retained: a Home Assistant that starts after the gateway is given the config on subscribing.
      assert.deepEqual(json((await retained(broker!, m.topic)).get(m.topic)!), json(m));
      const config = json(m);
      assert.equal(config.unique_id, `ble-instruments_${GATEWAY}_${address.replace(/:/g, "_")}_${key}`);
      assert.equal(config.state_class, "measurement");
      const device = config.device as Json;
      assert.deepEqual(device.identifiers, [`ble-instruments-${address.replace(/:/g, "_")}`]);
      assert.deepEqual(device.connections, [["bluetooth", address]]);
      // Availability is the gateway's own status and the device's online state, both required.
      assert.equal(config.availability_mode, "all");
      const availability = config.availability as Json[];
      assert.deepEqual(availability[0], { topic: `${ROOT}/status` });
      assert.equal(availability[1].topic, `${ROOT}/${address}/online`);
      assert.equal(availability[1].value_template, "{{ 'online' if value_json.online else 'offline' }}");
    }
    const heartRate = json(homeAssistant!.on(haConfigTopic(HR, "heart_rate"))[0]);
    assert.equal(heartRate.unit_of_measurement, "bpm");
    assert.equal(heartRate.state_topic, `${ROOT}/${HR}/heart-rate`);
    assert.equal((heartRate.device as Json).name, "44278-33");
    const meter = json(homeAssistant!.on(haConfigTopic(METER, "reading"))[0]);
    assert.equal(meter.state_topic, `${ROOT}/${METER}/reading`);
    assert.equal((meter.device as Json).model, "DT4261");
  });

  it("gives Home Assistant a number under each config's value template from the state topic it names", async () => {
    for (const [address, key] of [[HR, "heart_rate"], [METER, "reading"]] as const) {
      const config = json(homeAssistant!.on(haConfigTopic(address, key))[0]);
      const state = await central!.next((x) => x.topic === config.state_topic, 15000);
      const value = templated(String(config.value_template), json(state));
      assert.equal(typeof value, "number", `${key}: ${String(config.value_template)} on ${state.text}`);
    }
    // Announced once: every reading since has not repeated the configs.
    assert.equal(homeAssistant!.on(haConfigTopic(HR, "heart_rate")).length, 1);
    assert.equal(homeAssistant!.on(haConfigTopic(METER, "reading")).length, 1);
  });

  it("publishes each BTHome sensor's readings (the encrypted one decrypted) and announces each measurement to Home Assistant", async () => {
    // The encrypted sensor's name does not fit beside its data: it is in its scan response, which a passive scan never
    // asks for. Home Assistant then names the device by its address.
    for (const [address, name] of [[BTHOME, "demo-bthome"], [BTHOME_ENCRYPTED, null]] as const) {
      const state = await central!.next((x) => x.topic === `${ROOT}/${address}/bthome`, 15000);
      const reading = json(state);
      assert.equal(reading.name, name);
      assert.equal(typeof reading.rssi, "number");
      const measurements = reading.measurements as Json;
      assert.equal(typeof measurements.temperature, "number", state.text);
      assert.equal(typeof measurements.humidity, "number", state.text);
      for (const [key, deviceClass, unit] of [["temperature", "temperature", "°C"], ["humidity", "humidity", "%"]] as const) {
        const m = await homeAssistant!.next((x) => x.topic === haConfigTopic(address, key), 15000);
        const config = json(m);
        assert.equal(config.device_class, deviceClass);
        assert.equal(config.unit_of_measurement, unit);
        assert.equal(config.state_topic, `${ROOT}/${address}/bthome`);
        assert.equal(typeof templated(String(config.value_template), reading), "number");
        // A sensor that only broadcasts has no online state of its own: the gateway's status is its availability.
        assert.deepEqual(config.availability, [{ topic: `${ROOT}/status` }]);
        assert.equal((config.device as Json).name, name ?? address);
      }
    }
    // The unencrypted sensor also reports its battery.
    const battery = json(await homeAssistant!.next((x) => x.topic === haConfigTopic(BTHOME, "battery"), 15000));
    assert.equal(battery.device_class, "battery");
    assert.equal(battery.unit_of_measurement, "%");
  });

  it("keeps each connected device's online state retained for subscribers that come later", async () => {
    await central!.next((m) => m.topic === `${ROOT}/${METER}/online` && json(m).online === true, 15000);
    const kept = await retained(broker!, `${ROOT}/+/online`);
    for (const device of [HR, METER]) {
      const state = kept.get(`${ROOT}/${device}/online`);
      assert.ok(state, `${device}'s online state is retained; retained: ${[...kept.keys()].join(", ")}`);
      assert.equal(json(state).online, true);
      assert.equal(json(state).status, "connected (simulated)", "the gateway's devices here are the simulator's");
      assert.match(json(state).time as string, ISO_TIME);
    }
  });

  it("publishes the file-transfer result when the download is triggered, and keeps the file on the gateway", async () => {
    const from = central!.messages.length;
    // The inject node's button in the editor does exactly this request.
    const response = await fetch(`${red!.url}inject/mqtt-dl-inject`, { method: "POST" });
    assert.equal(response.status, 200, await response.text());
    const m = await central!.next((x) => x.topic === `${ROOT}/${FILES}/file`, 30000, from);
    const result = json(m);
    assert.equal(result.ok, true, m.text);
    assert.equal(result.filename, "log.bin");
    assert.equal(result.size, 32768);
    assert.equal(result.name, "mpy-nus");
    assert.equal(path.dirname(result.path as string), fs.realpathSync(downloads));
    assert.equal(fs.statSync(result.path as string).size, 32768, "the file is saved in DOWNLOAD_DIR");
    const stats = result.stats as Json;
    assert.equal(stats.bytes, 32768);
    assert.equal(typeof stats.kbps, "number");
    assert.equal(m.qos, 1);
    // The file server's link was up for the transfer: its online state went true on the way.
    assert.ok(central!.on(`${ROOT}/${FILES}/online`).some((x) => json(x).online === true), "the file server was online during the transfer");
  });

  it("marks the meter offline while it is switched off and online again when it is back (retained)", async () => {
    // The built-in scenario switches the meter off 20 s after the flow started, and on again at 32 s.
    const topic = `${ROOT}/${METER}/online`;
    // Before its first connection a device is offline too (scanning, connecting): look for the change after it.
    const onAt = central!.messages.findIndex((m) => m.topic === topic && json(m).online === true);
    assert.ok(onAt >= 0, "the meter was online");
    const offMessage = await central!.next((m) => m.topic === topic && json(m).online === false, 40000, onAt + 1);
    assert.equal(offMessage.qos, 1);
    assert.match(json(offMessage).status as string, /connecting|reconnecting/, "the status text says why");
    // The broker keeps the latest state for late subscribers (offline, unless the meter is already back).
    const kept = (await retained(broker!, topic)).get(topic);
    assert.ok(kept, "the state is retained");
    assert.deepEqual(json(kept), json(central!.on(topic).at(-1)!));
    const offAt = central!.messages.indexOf(offMessage);
    await central!.next((m) => m.topic === topic && json(m).online === true, 30000, offAt + 1);
    const readingsAfter = central!.messages.length;
    await central!.next((m) => m.topic === `${ROOT}/${METER}/reading`, 15000, readingsAfter);
  });

  it("publishes the online states again after the broker was restarted and lost them", async () => {
    // mqtt out drops what it is given while disconnected, and this broker keeps nothing across a restart: only
    // the gateway publishing again on reconnection puts the states back.
    const port = broker!.port;
    await central!.close();
    await broker!.stop();
    broker = await startMosquitto(port);
    central = await Subscriber.connect(broker, `${ROOT}/#`);
    // Node-RED's MQTT client retries every few seconds.
    await central.next((m) => m.topic === `${ROOT}/status` && m.text === "online", 30000);
    await central.next((m) => m.topic === `${ROOT}/${HR}/online`, 10000);
    const kept = await retained(broker, `${ROOT}/+/online`);
    assert.equal(json(kept.get(`${ROOT}/${HR}/online`)!).online, true, "the sensor is online again for late subscribers");
    const meter = kept.get(`${ROOT}/${METER}/online`);
    assert.ok(meter, "the meter's state is back too");
    assert.deepEqual(json(meter), json(central.on(`${ROOT}/${METER}/online`).at(-1)!));
    // The restarted broker lost the discovery configs too: the gateway announced them again.
    const configs = await retained(broker, `${HA}/#`);
    assert.ok(configs.has(haConfigTopic(HR, "heart_rate")), `the heart-rate config is back; retained: ${[...configs.keys()].join(", ")}`);
    assert.ok(configs.has(haConfigTopic(METER, "reading")), "the meter's config is back");
  });

  it("has the broker announce the gateway offline when the gateway dies (last will)", async () => {
    const from = central!.messages.length;
    // As a power cut would: no chance to say goodbye; the broker sees the connection drop.
    await red!.kill();
    red = null;
    await central!.next((m) => m.topic === `${ROOT}/status` && m.text === "offline", 15000, from);
    assert.equal((await retained(broker!, `${ROOT}/status`)).get(`${ROOT}/status`)?.text, "offline");
  });

  it("comes back online when the gateway restarts, and says offline itself on a clean stop (close message)", async () => {
    const from = central!.messages.length;
    red = await startDemoNodeRed({ flows: gatewayFlow(broker!, downloads), logFile: path.join(ARTIFACTS, "mqtt-node-red-2.log") });
    await central!.next((m) => m.topic === `${ROOT}/status` && m.text === "online", 15000, from);
    // Devices are published again as they connect.
    await central!.next((m) => m.topic === `${ROOT}/${HR}/online` && json(m).online === true, 15000, from);
    const stopping = central!.messages.length;
    await red.stop();
    red = null;
    await central!.next((m) => m.topic === `${ROOT}/status` && m.text === "offline", 15000, stopping);
    // Home Assistant marks every announced entity unavailable: their availability names this topic.
    const config = json((await retained(broker!, haConfigTopic(HR, "heart_rate"))).get(haConfigTopic(HR, "heart_rate"))!);
    const availability = config.availability as Json[];
    assert.equal((await retained(broker!, String(availability[0].topic))).get(String(availability[0].topic))?.text, "offline");
  });
});
