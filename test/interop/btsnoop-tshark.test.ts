/**
 * The simulator's HCI, L2CAP and ATT encoding checked by a decoder nobody here wrote. A scenario with every
 * peripheral kind and "capture" set is driven through noble's unmodified HCI stack: scan, connect, MTU exchange,
 * discovery, a read, descriptor discovery, notifications, indications and their confirmations, writes with and
 * without response, a YMODEM file transfer, a power cycle (supervision timeout, reconnection), with connections
 * overlapping. Wireshark's tshark then reads the capture: no malformed or unknown packet, every packet decoded to
 * the layer it belongs to, the same timestamps we wrote, and on each connection the ATT opcodes in the order
 * the protocol and the session demand.
 *
 * Without tshark this test fails (it does not skip): apt-get install -y tshark.
 * KEEP_CAPTURE=1 keeps the capture directory for a look in Wireshark.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import type { Characteristic, Noble, Peripheral } from "@stoprocent/noble";
import { AttOpcode } from "../../src/protocol/att";
import { BTSNOOP_EPOCH_OFFSET_US, decodeBtsnoop, encodeBtsnoopHeader, encodeBtsnoopRecord, type HciDirection } from "../../src/protocol/btsnoop";
import { CID_ATT, EVT_COMMAND_COMPLETE, HCI_CONNECTION_TIMEOUT, HCI_LOCAL_HOST_TERMINATED, HCI_REMOTE_USER_TERMINATED, OP, PB_FIRST_FLUSHABLE } from "../../src/protocol/hci";
import { buildAcl, buildCommand, buildEvent, buildL2cap, buildLeConnectionComplete } from "../../src/protocol/hci-packets";
import { HIOKI_COMMAND_CHARACTERISTIC } from "../../src/protocol/hioki";
import { generateFileContent } from "../../src/sim/peripherals/nus-ymodem";
import { loadScenarioFile, Simulation } from "../../src/sim/scenario";
import { connectNus, nobleFor, receiveYmodem, type ReceiveResult, type SimNoble } from "../support/nus-noble";
import { analyze, attName, attPhases, field, locateTshark, readFields, TSHARK_MISSING, writeConnectionCapture, type Connection } from "../support/tshark";

const HEART_RATE = "d8:75:ba:00:00:01";
const METER = "a4:9e:69:00:00:01";
const FILE_SERVER = "e3:c3:5c:00:00:01";
const GATT_DEVICE = "c0:ff:ee:00:00:01";
const FILE_SIZE = 5000;
const FILE_SEED = 7;
const BPM = [60, 61, 62, 63, 64, 65, 66, 67];
/** Fast enough for a short test, slow enough that noble's own (real-time) timeouts never fire. */
const TIME_SCALE = 20;
/** The "capture" field's value, relative to the scenario file. */
const CAPTURE = "captures/session.btsnoop";

/**
 * Warnings Wireshark gives for correct packets. Wireshark decodes the Nordic UART characteristics' values as text
 * (FT_STRING), and YMODEM blocks are binary with NUL bytes; its string decoder calls what follows the first NUL
 * "Trailing stray characters".
 */
const NUS_VALUE_AS_TEXT = "Trailing stray characters";
/**
 * Warnings that only the whole capture shows, from Wireshark labelling one connection's attribute handles with
 * another's characteristics (see writeConnectionCapture); each connection's own capture must be free of them.
 */
const CROSS_CONNECTION_LABELS = new Set(["Invalid usage of this characteristic with this opcode", NUS_VALUE_AS_TEXT]);

const short = (uuid: string): string => uuid.replace(/-/g, "");

function waitFor<T>(emitter: { once(event: string, listener: (value: T) => void): unknown }, event: string): Promise<T> {
  return new Promise((resolve) => emitter.once(event, resolve));
}

/** Resolves with the next `count` values of a subscribed characteristic. */
function values(characteristic: Characteristic, count: number): Promise<Buffer[]> {
  return new Promise((resolve) => {
    const seen: Buffer[] = [];
    const listener = (data: Buffer): void => {
      seen.push(Buffer.from(data));
      if (seen.length < count) return;
      characteristic.removeListener("data", listener);
      resolve(seen);
    };
    characteristic.on("data", listener);
  });
}

async function scan(noble: Noble, addresses: string[]): Promise<Map<string, Peripheral>> {
  await noble.waitForPoweredOnAsync();
  const found = new Map<string, Peripheral>();
  const all = new Promise<void>((resolve) => {
    const listener = (p: Peripheral): void => {
      if (!addresses.includes(p.address)) return;
      found.set(p.address, p);
      if (found.size < addresses.length) return;
      noble.removeListener("discover", listener);
      resolve();
    };
    noble.on("discover", listener);
  });
  await noble.startScanningAsync([], false);
  await all;
  await noble.stopScanningAsync();
  return found;
}

function find(list: Characteristic[], uuid: string): Characteristic {
  const c = list.find((x) => x.uuid === short(uuid));
  assert.ok(c, `characteristic ${uuid} discovered (got ${list.map((x) => x.uuid).join(", ")})`);
  return c;
}

/** The heart-rate sensor: discovery, a read, descriptor discovery, notifications (left subscribed). */
async function heartRateSession(peripheral: Peripheral): Promise<void> {
  await peripheral.connectAsync();
  const { characteristics } = await peripheral.discoverSomeServicesAndCharacteristicsAsync(["180d", "180f"], []);
  assert.equal((await find(characteristics, "2a19").readAsync()).length, 1, "battery level read");
  const measurement = find(characteristics, "2a37");
  const descriptors = await measurement.discoverDescriptorsAsync();
  assert.ok(
    descriptors.some((d) => d.uuid === "2902"),
    "the CCCD is found by Find Information",
  );
  const three = values(measurement, 3);
  await measurement.subscribeAsync();
  // The list's position survives reconnects (the sensor continues where it was), so only membership is fixed.
  for (const v of await three) assert.ok(BPM.includes(v[1]), `bpm ${v[1]} from the scenario's list`);
}

/** The meter: full discovery of its many services, commands written with response, replies indicated. */
async function meterSession(peripheral: Peripheral): Promise<void> {
  await peripheral.connectAsync();
  const { characteristics } = await peripheral.discoverAllServicesAndCharacteristicsAsync();
  const command = find(characteristics, HIOKI_COMMAND_CHARACTERISTIC);
  await command.subscribeAsync();
  const replies = values(command, 2);
  await command.writeAsync(Buffer.from("*IDN?\r\n"), false);
  // 22 bytes: with the ATT and L2CAP headers more than one 27-byte ACL packet, so noble fragments it; the reply
  // (47 bytes) comes back fragmented by the controller.
  await command.writeAsync(Buffer.from(":FETC?;:FETC?;:FETC?\r\n"), false);
  const [idn, readings] = (await replies).map((v) => v.toString("latin1"));
  assert.match(idn, /^HIOKI,/);
  assert.equal(readings, "+1.23400000E+00;+1.23400000E+00;+1.23400000E+00");
  await peripheral.disconnectAsync();
}

interface Session {
  capture: string;
  startedMs: number;
  endedMs: number;
  transfer: ReceiveResult;
}

/** Runs the whole session with capture on; the capture file is complete when this resolves. */
async function runSession(dir: string, own: { sim?: Simulation; central?: SimNoble }): Promise<Session> {
  fs.mkdirSync(path.join(dir, "captures"));
  const scenarioFile = path.join(dir, "scenario.json");
  fs.writeFileSync(
    scenarioFile,
    JSON.stringify({
      // 27-byte link-layer payloads: every ATT PDU longer than 23 bytes (27 less the L2CAP header) crosses as several
      // ACL fragments, both ways, so Wireshark's L2CAP reassembly checks the controller's fragmentation (and noble's).
      link: { dataLength: 27 },
      capture: CAPTURE,
      peripherals: [
        { kind: "heart-rate", address: HEART_RATE, bpm: BPM, intervalMs: 200 },
        { kind: "hioki-dt4261", address: METER, values: [1.234] },
        { kind: "nus-ymodem", address: FILE_SERVER, filename: "capture.bin", sizeBytes: FILE_SIZE, seed: FILE_SEED },
      ],
    }),
  );
  const startedMs = Date.now();
  const sim = new Simulation(loadScenarioFile(scenarioFile), { timeScale: TIME_SCALE });
  own.sim = sim;
  sim.start();
  const central = nobleFor(sim);
  own.central = central;
  const found = await scan(central.noble, [HEART_RATE, METER, FILE_SERVER]);
  const hr = found.get(HEART_RATE) as Peripheral;

  // Heart rate, then a power cycle: the link is lost (supervision timeout) and noble connects again.
  await heartRateSession(hr);
  const lost = waitFor<number>(hr, "disconnect");
  sim.controller.powerOff(HEART_RATE);
  assert.equal(await lost, HCI_CONNECTION_TIMEOUT);
  sim.controller.powerOn(HEART_RATE);
  await heartRateSession(hr);

  // The sensor keeps notifying from here on: the other connections' traffic interleaves with it.
  await meterSession(found.get(METER) as Peripheral);

  // YMODEM over NUS: blocks arrive as notifications, the receiver's C/ACKs leave as Write Commands, and the
  // file server hangs up after the batch.
  const nus = await connectNus(central.noble, FILE_SERVER, 247);
  const transfer = await receiveYmodem(nus, sim.clock);
  assert.equal(transfer.error, null);
  assert.equal(transfer.files.length, 1);
  assert.deepEqual(transfer.files[0].data, generateFileContent(FILE_SIZE, FILE_SEED));

  await hr.disconnectAsync();
  central.dispose();
  own.central = undefined;
  sim.close();
  own.sim = undefined;
  return { capture: path.join(dir, CAPTURE), startedMs, endedMs: Date.now(), transfer };
}

/** tshark's "seconds.nanoseconds" as whole microseconds. */
function epochMicros(text: string): bigint {
  const [seconds, fraction = ""] = text.split(".");
  return BigInt(seconds) * 1000000n + BigInt((fraction + "000000").slice(0, 6));
}

function describeConnection(conn: Connection): string {
  return `handle 0x${conn.handle.toString(16)} to ${conn.address}: ${attPhases(conn).map(attName).join(", ")}`;
}

describe("interop: tshark reads the simulator's btsnoop capture", function () {
  let dir = "";
  const own: { sim?: Simulation; central?: SimNoble } = {};

  before(() => {
    // A missing tshark must fail the run, not skip it: the claim would otherwise pass untested.
    if (locateTshark() === null) throw new Error(TSHARK_MISSING);
  });

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "btsnoop-tshark-"));
  });

  afterEach(() => {
    own.central?.dispose();
    own.central = undefined;
    own.sim?.close();
    own.sim = undefined;
    if (process.env.KEEP_CAPTURE) console.log(`    capture kept in ${dir}`);
    else fs.rmSync(dir, { recursive: true, force: true });
  });

  it("the checks find what a broken capture gets wrong (so a clean verdict means something)", () => {
    const connect = buildLeConnectionComplete({ status: 0, handle: 0x40, role: 0, peerAddressType: 1, peerAddress: HEART_RATE, interval: 6, latency: 0, supervisionTimeout: 100, clockAccuracy: 0 });
    const att = (pdu: number[]) => buildAcl(0x40, PB_FIRST_FLUSHABLE, buildL2cap(CID_ATT, Buffer.from(pdu)));
    const packets: [Buffer, HciDirection][] = [
      [buildCommand(OP.RESET), "host-to-controller"], // 1: fine
      [buildCommand(0x2fff, Buffer.from([1])), "host-to-controller"], // 2: unknown LE command
      [buildCommand(0xfc01), "host-to-controller"], // 3: vendor-specific command
      [buildEvent(0x7a, Buffer.from([1])), "controller-to-host"], // 4: unknown event
      [buildEvent(EVT_COMMAND_COMPLETE, Buffer.from([1])), "controller-to-host"], // 5: truncated Command Complete
      [connect, "controller-to-host"], // 6: fine
      [att([0x30, 1, 2]), "controller-to-host"], // 7: no such ATT opcode
      [buildAcl(0x40, PB_FIRST_FLUSHABLE, buildL2cap(0x99, Buffer.from([1, 2]))), "controller-to-host"], // 8: not the ATT channel
      [buildAcl(0x40, PB_FIRST_FLUSHABLE, Buffer.from([10, 0, 4, 0, 0x1b])), "controller-to-host"], // 9: L2CAP PDU never completed
      [buildAcl(0x41, PB_FIRST_FLUSHABLE, buildL2cap(CID_ATT, Buffer.from([0x1b, 1, 0, 5]))), "controller-to-host"], // 10: no such connection
      [att([0x0a, 3, 0]), "host-to-controller"], // 11: Read Request …
      [att([0x13]), "controller-to-host"], // 12: … answered by a Write Response
      [att([0x02, 0x17, 0]), "controller-to-host"], // 13: a request from the server
      [buildEvent(EVT_COMMAND_COMPLETE, Buffer.from([1, 0x03, 0x0c, 0])), "host-to-controller"], // 14: event recorded as sent
    ];
    const file = path.join(dir, "broken.btsnoop");
    const timestampUs = BigInt(Date.now()) * 1000n + BTSNOOP_EPOCH_OFFSET_US;
    fs.writeFileSync(file, Buffer.concat([encodeBtsnoopHeader(), ...packets.map(([packet, direction]) => encodeBtsnoopRecord({ packet, direction, timestampUs }))]));
    const { problems } = analyze(file);
    const flagged = new Set(problems.map((p) => Number(/^(?:frame|handle 0x[0-9a-f]+ \(.*?\) frame) (\d+)/.exec(p)?.[1])));
    for (const n of [2, 3, 4, 5, 7, 8, 9, 10, 12, 13, 14]) assert.ok(flagged.has(n), `frame ${n} flagged; problems:\n${problems.join("\n")}`);
    for (const n of [1, 6, 11]) assert.ok(!flagged.has(n), `frame ${n} is fine; problems:\n${problems.join("\n")}`);
  });

  it("every peripheral kind from connect to power cycle: nothing malformed or unknown, ATT in protocol order", async () => {
    const session = await runSession(dir, own);

    // Our own reading of the file, and tshark's, agree on every record and every timestamp.
    const ours = decodeBtsnoop(fs.readFileSync(session.capture));
    assert.equal(ours.datalink, 1002);
    assert.equal(ours.trailingBytes, 0, "the capture ends with a whole record");
    const { frames, problems, connections, warnings } = analyze(session.capture);
    assert.equal(frames.length, ours.records.length, "tshark reads every record");
    frames.forEach((f, i) => {
      const us = epochMicros(field(f, "frame.time_epoch")[0]);
      assert.equal(us, ours.records[i].timestampUs - BTSNOOP_EPOCH_OFFSET_US, `frame ${i + 1}: tshark's time is the one we wrote`);
    });
    // Simulated time from the start of the run: it runs TIME_SCALE times faster than the wall clock, never backwards.
    const micros = ours.records.map((r) => r.timestampUs - BTSNOOP_EPOCH_OFFSET_US);
    for (let i = 1; i < micros.length; i++) assert.ok(micros[i] >= micros[i - 1], `record ${i + 1} is not earlier than record ${i}`);
    const latest = BigInt(Math.ceil(session.startedMs + (session.endedMs - session.startedMs) * TIME_SCALE)) * 1000n;
    assert.ok(micros[0] >= BigInt(session.startedMs) * 1000n && micros[micros.length - 1] <= latest, "timestamps within the run, in simulated time");

    assert.deepEqual(problems, [], "no malformed, unknown, undecoded or out-of-protocol packet");
    // Both sides fragmented L2CAP PDUs over ACL, and Wireshark put every fragment back together (analyze() flags a
    // fragment it could not reassemble).
    const fragments = (direction: string) => frames.filter((f) => field(f, "hci_h4.type")[0] === "0x02" && field(f, "hci_h4.direction")[0] === direction && !field(f, "frame.protocols")[0].includes(":btl2cap"));
    assert.ok(fragments("0x00").length > 0, "noble fragmented a write");
    assert.ok(fragments("0x01").length > 0, "the controller fragmented a notification or indication");

    // The four connections, in the order they were made, and how each ended.
    assert.deepEqual(
      connections.map((c) => [c.address, c.disconnectReason]),
      [
        [HEART_RATE, HCI_CONNECTION_TIMEOUT], // powered off while connected
        [HEART_RATE, HCI_LOCAL_HOST_TERMINATED], // the reconnection, closed by noble at the end
        [METER, HCI_LOCAL_HOST_TERMINATED],
        [FILE_SERVER, HCI_REMOTE_USER_TERMINATED], // the file server hangs up after the batch
      ],
    );
    const [hr1, hr2, meter, files] = connections;

    // What each session did, in order of first appearance (responses are checked by the pairing rules).
    const heartRatePhases = [AttOpcode.ExchangeMtuRequest, AttOpcode.ReadByGroupTypeRequest, AttOpcode.ReadByTypeRequest, AttOpcode.ReadRequest, AttOpcode.FindInformationRequest, AttOpcode.WriteRequest, AttOpcode.HandleValueNotification];
    for (const hr of [hr1, hr2]) assert.deepEqual(attPhases(hr).map(attName), heartRatePhases.map(attName), describeConnection(hr));
    assert.deepEqual(attPhases(meter).map(attName), [AttOpcode.ExchangeMtuRequest, AttOpcode.ReadByGroupTypeRequest, AttOpcode.ReadByTypeRequest, AttOpcode.WriteRequest, AttOpcode.HandleValueIndication, AttOpcode.HandleValueConfirmation].map(attName), describeConnection(meter));
    assert.deepEqual(attPhases(files).map(attName), [AttOpcode.ExchangeMtuRequest, AttOpcode.ReadByGroupTypeRequest, AttOpcode.ReadByTypeRequest, AttOpcode.WriteRequest, AttOpcode.WriteCommand, AttOpcode.HandleValueNotification].map(attName), describeConnection(files));

    // Wireshark recognised each subscription as a CCCD write with the right bit. (Before writing, noble reads the
    // CCCD with Read By Type; Wireshark decodes that response's 0x0000 as a CCCD too, hence the filter on writes.)
    const cccd = (c: Connection) => c.att.filter((p) => p.cccd && p.opcode === AttOpcode.WriteRequest).map((p) => p.cccd);
    assert.deepEqual(cccd(hr1), [{ notification: true, indication: false }]);
    assert.deepEqual(cccd(hr2), [{ notification: true, indication: false }]);
    assert.deepEqual(cccd(meter), [{ notification: false, indication: true }]);
    assert.deepEqual(cccd(files), [{ notification: true, indication: false }]);

    // Counts Wireshark sees (after reassembly) equal what noble delivered and sent.
    const count = (c: Connection, op: number) => c.att.filter((p) => p.opcode === op).length;
    assert.ok(count(hr1, AttOpcode.HandleValueNotification) >= 3 && count(hr2, AttOpcode.HandleValueNotification) >= 3);
    assert.equal(count(meter, AttOpcode.HandleValueIndication), 2);
    assert.equal(count(meter, AttOpcode.HandleValueConfirmation), 2);
    assert.equal(count(files, AttOpcode.HandleValueNotification), session.transfer.notifications.length, "one notification per TX value the receiver got");
    assert.equal(count(files, AttOpcode.WriteCommand), session.transfer.written.length, "one Write Command per C/ACK/NAK the receiver sent");
    // The transfer interleaved with the sensor's notifications: the controller multiplexed two links.
    const transferFrames = files.att.map((p) => p.frame);
    const [from, to] = [Math.min(...transferFrames), Math.max(...transferFrames)];
    assert.ok(hr2.att.some((p) => p.opcode === AttOpcode.HandleValueNotification && p.frame > from && p.frame < to), "heart-rate notifications during the transfer");

    // Warnings: in the whole capture only Wireshark's cross-connection labels; in each connection's own capture
    // none, but the file server's binary YMODEM values in the characteristic Wireshark reads as text.
    const unexpected = warnings.filter((w) => !CROSS_CONNECTION_LABELS.has(w.message));
    assert.deepEqual(
      unexpected.map((w) => `frame ${field(w.frame, "frame.number")[0]}: ${w.message}`),
      [],
    );
    for (const conn of connections) {
      const single = path.join(dir, `connection-${conn.handle.toString(16)}.btsnoop`);
      writeConnectionCapture(session.capture, conn.handle, single);
      const alone = analyze(single);
      assert.deepEqual(alone.problems, [], `${single}: no problems`);
      const left = alone.warnings.filter((w) => {
        const isNusValue = conn === files && w.message === NUS_VALUE_AS_TEXT && field(w.frame, "btatt.opcode")[0] === "0x1b";
        return !isNusValue;
      });
      assert.deepEqual(
        left.map((w) => `frame ${field(w.frame, "frame.number")[0]} (${field(w.frame, "_ws.col.Info")[0]}): ${w.message}`),
        [],
        `connection to ${conn.address}: no warnings of its own`,
      );
    }

    // Wireshark's own Heart Rate Measurement decoder (correctly labelled in a connection's own capture) reads
    // the scenario's bpm values out of the simulator's encoding.
    for (const conn of [hr1, hr2]) {
      const bpm = readFields(path.join(dir, `connection-${conn.handle.toString(16)}.btsnoop`), ["btatt.heart_rate_measurement.value.8"]).flatMap((f) => field(f, "btatt.heart_rate_measurement.value.8").map(Number));
      assert.equal(bpm.length, count(conn, AttOpcode.HandleValueNotification), "every notification decoded as a Heart Rate Measurement");
      for (const v of bpm) assert.ok(BPM.includes(v), `bpm ${v} from the scenario's list`);
    }
  });
  it("the gatt kind: manufacturer data, Read Blob, a long write, a reply by indication: nothing malformed or unknown, ATT in protocol order", async () => {
    fs.mkdirSync(path.join(dir, "captures"));
    const scenarioFile = path.join(dir, "scenario.json");
    const long = "0123456789".repeat(6);
    fs.writeFileSync(
      scenarioFile,
      JSON.stringify({
        link: { dataLength: 27 },
        capture: CAPTURE,
        peripherals: [
          {
            kind: "gatt",
            address: GATT_DEVICE,
            name: "Capture",
            serverMtu: 23,
            advertising: { services: ["fff0"], manufacturerData: { companyId: 89, data: "0102" } },
            services: [
              {
                uuid: "fff0",
                characteristics: [
                  { uuid: "fff1", properties: ["read", "write"], value: { text: long } },
                  { uuid: "fff2", properties: ["write"], onWrite: { replyOn: "fff3", replies: [{ request: { text: "?" }, reply: [{ text: "a" }, { text: "b" }] }] } },
                  { uuid: "fff3", properties: ["indicate"] },
                ],
              },
            ],
          },
        ],
      }),
    );
    const sim = new Simulation(loadScenarioFile(scenarioFile), { timeScale: TIME_SCALE });
    own.sim = sim;
    const central = nobleFor(sim);
    own.central = central;
    const peripheral = (await scan(central.noble, [GATT_DEVICE])).get(GATT_DEVICE) as Peripheral;
    await peripheral.connectAsync();
    const { characteristics } = await peripheral.discoverAllServicesAndCharacteristicsAsync();
    assert.equal((await find(characteristics, "fff1").readAsync()).toString("utf8"), long);
    await find(characteristics, "fff1").writeAsync(Buffer.from(long.toUpperCase()), false);
    const reply = find(characteristics, "fff3");
    await reply.subscribeAsync();
    const two = values(reply, 2);
    await find(characteristics, "fff2").writeAsync(Buffer.from("?"), false);
    assert.deepEqual((await two).map((v) => v.toString("utf8")), ["a", "b"]);
    await peripheral.disconnectAsync();
    central.dispose();
    own.central = undefined;
    sim.close();
    own.sim = undefined;

    const capture = path.join(dir, CAPTURE);
    const { problems, connections } = analyze(capture);
    assert.deepEqual(problems, [], "no malformed, unknown, undecoded or out-of-protocol packet");
    assert.deepEqual(
      connections.map((c) => [c.address, c.disconnectReason]),
      [[GATT_DEVICE, HCI_LOCAL_HOST_TERMINATED]],
    );
    assert.deepEqual(
      attPhases(connections[0]).map(attName),
      [
        AttOpcode.ExchangeMtuRequest,
        AttOpcode.ReadByGroupTypeRequest,
        AttOpcode.ReadByTypeRequest,
        AttOpcode.ReadRequest,
        AttOpcode.ReadBlobRequest,
        AttOpcode.PrepareWriteRequest,
        AttOpcode.ExecuteWriteRequest,
        AttOpcode.WriteRequest,
        AttOpcode.HandleValueIndication,
        AttOpcode.HandleValueConfirmation,
      ].map(attName),
      describeConnection(connections[0]),
    );
    // Wireshark's own advertising decoder reads the manufacturer data: company 89 (Nordic Semiconductor), 01 02.
    const ads = readFields(capture, ["btcommon.eir_ad.entry.company_id", "btcommon.eir_ad.entry.data"]).filter((f) => field(f, "btcommon.eir_ad.entry.company_id").length > 0);
    assert.ok(ads.length > 0, "advertising reports with manufacturer data");
    for (const ad of ads) {
      assert.deepEqual(field(ad, "btcommon.eir_ad.entry.company_id"), ["0x0059"]);
      assert.deepEqual(field(ad, "btcommon.eir_ad.entry.data").map((d) => d.replace(/:/g, "")), ["0102"]);
    }
  });

  it("the advertiser kinds: Wireshark decodes their PDU types, names, manufacturer and service data, nothing malformed", async () => {
    fs.mkdirSync(path.join(dir, "captures"));
    const scenarioFile = path.join(dir, "scenario.json");
    const beacon = { address: "c0:00:00:00:0a:01", uuid: "e2c56db5-dffb-48d2-b060-d0f5a71096e0", major: 513, minor: 1027 };
    const eddystone = "c0:00:00:00:0a:02";
    const bthome = "c0:00:00:00:0a:03";
    const raw = "c0:00:00:00:0a:04";
    fs.writeFileSync(
      scenarioFile,
      JSON.stringify({
        capture: CAPTURE,
        peripherals: [
          { kind: "ibeacon", ...beacon, name: "cap-beacon", measuredPower: -60, intervalMs: 100 },
          { kind: "eddystone", address: eddystone, uid: { namespace: "00112233445566778899", instance: "a1a2a3a4a5a6" }, url: "https://example.com", tlm: true, intervalMs: 100 },
          { kind: "bthome", address: bthome, name: "cap-th", measurements: [{ type: "temperature", values: [21.5] }], bindKey: "231d39c1d7cc1ab1aee224cd096db932", intervalMs: 100 },
          { kind: "advertiser", address: raw, data: "020106 0709 6361702d7261", scanResponse: "020af4", intervalMs: 100 },
        ],
      }),
    );
    const sim = new Simulation(loadScenarioFile(scenarioFile), { timeScale: TIME_SCALE });
    own.sim = sim;
    const central = nobleFor(sim);
    own.central = central;
    // Duplicates allowed (the controller then reports every advertisement), until each device was heard 6 times.
    const noble = central.noble;
    await noble.waitForPoweredOnAsync();
    const heard = new Map<string, number>();
    const enough = new Promise<void>((resolve) => {
      noble.on("discover", (p: Peripheral) => {
        heard.set(p.address, (heard.get(p.address) ?? 0) + 1);
        if ([beacon.address, eddystone, bthome, raw].every((a) => (heard.get(a) ?? 0) >= 6)) resolve();
      });
    });
    await noble.startScanningAsync([], true);
    await enough;
    await noble.stopScanningAsync();
    central.dispose();
    own.central = undefined;
    sim.close();
    own.sim = undefined;

    const capture = path.join(dir, CAPTURE);
    assert.deepEqual(analyze(capture).problems, [], "no malformed, unknown or undecoded packet");
    const reports = readFields(capture, [
      "bthci_evt.bd_addr",
      "bthci_evt.le_advts_event_type",
      "btcommon.eir_ad.entry.company_id",
      "btcommon.eir_ad.entry.data",
      "btcommon.eir_ad.entry.device_name",
      "btcommon.eir_ad.entry.uuid_16",
      "btcommon.eir_ad.entry.service_data",
      "btcommon.eir_ad.entry.power_level",
    ]).filter((f) => field(f, "bthci_evt.le_advts_event_type").length > 0);
    const of = (address: string) => reports.filter((f) => field(f, "bthci_evt.bd_addr")[0] === address);
    const types = (address: string) => new Set(of(address).map((f) => Number(field(f, "bthci_evt.le_advts_event_type")[0])));
    // ADV_SCAN_IND (2) and its SCAN_RSP (4) where a scan response exists; ADV_NONCONN_IND (3) where none does.
    assert.deepEqual(types(beacon.address), new Set([2, 4]));
    assert.deepEqual(types(eddystone), new Set([3]));
    assert.deepEqual(types(bthome), new Set([3]), "a short name fits beside the encrypted packet");
    assert.deepEqual(types(raw), new Set([2, 4]));
    // Wireshark 4.0 shows the iBeacon bytes as Apple's manufacturer data (its iBeacon fields stay empty on HCI events).
    const apple = of(beacon.address).filter((f) => field(f, "btcommon.eir_ad.entry.company_id").length > 0);
    assert.ok(apple.length > 0, "manufacturer data in the advertisements");
    for (const f of apple) {
      assert.deepEqual(field(f, "btcommon.eir_ad.entry.company_id"), ["0x004c"]);
      assert.deepEqual(field(f, "btcommon.eir_ad.entry.data").map((d) => d.replace(/:/g, "")), [`0215${beacon.uuid.replace(/-/g, "")}02010403c4`]);
    }
    assert.ok(of(beacon.address).some((f) => field(f, "btcommon.eir_ad.entry.device_name")[0] === "cap-beacon"), "the name in the scan response");
    assert.ok(of(bthome).some((f) => field(f, "btcommon.eir_ad.entry.device_name")[0] === "cap-th"));
    assert.ok(of(raw).some((f) => field(f, "btcommon.eir_ad.entry.device_name")[0] === "cap-ra"));
    assert.ok(of(raw).some((f) => field(f, "btcommon.eir_ad.entry.power_level")[0] === "-12"));
    const frames = new Set(of(eddystone).flatMap((f) => field(f, "btcommon.eir_ad.entry.service_data").map((d) => d.replace(/:/g, "").slice(0, 2))));
    assert.deepEqual(frames, new Set(["00", "10", "20"]), "UID, URL and TLM frames as service data");
    assert.ok(of(eddystone).every((f) => field(f, "btcommon.eir_ad.entry.uuid_16").every((u) => u === "0xfeaa")));
    assert.ok(of(bthome).every((f) => field(f, "btcommon.eir_ad.entry.uuid_16")[0] === "0xfcd2"), "BTHome service data");
  });
});
