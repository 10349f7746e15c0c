/**
 * Hostile input (issue 6) for the simulator: ATT and HCI framing with arbitrary bytes, the GATT servers of the
 * real peripheral kinds with arbitrary PDUs, the virtual controller with arbitrary H4 packets, and scenario files
 * with arbitrary JSON. 10,000 cases per parser unless said otherwise.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import fc from "fast-check";
import { decodeClientPdu } from "../../src/protocol/att";
import { h4PacketLength, H4Splitter } from "../../src/protocol/h4";
import { addressToBytes, HCI_UNKNOWN_COMMAND, OP } from "../../src/protocol/hci";
import { buildAcl, buildCommand, buildEvent, parseAcl, parseCommand, parseCommandComplete, parseCommandStatus, parseDisconnectionComplete, parseEvent, parseLeAdvertisingReports, parseLeConnectionComplete, parseLeMetaEvent, parseNumberOfCompletedPackets } from "../../src/protocol/hci-packets";
import { VirtualController } from "../../src/sim/controller";
import { createPeripheral } from "../../src/sim/peripherals";
import { parseScenario, Simulation } from "../../src/sim/scenario";
import { DEFAULT_LINK, type PeripheralContext } from "../../src/sim/types";
import { ScenarioError } from "../../src/sim/validate";
import { FakeLink } from "../support/fake-central";
import { FakePeripheral } from "../support/fake-peripheral";
import { ManualClock } from "../support/manual-clock";

const HOSTILE_RUNS = 10_000;

describe("hostile input: simulator framing and scenarios", () => {
  describe("ATT: decodeClientPdu", () => {
    it("arbitrary PDUs: decoded values fit in the PDU; rejections carry a reason that names the PDU", () => {
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 40 }), (pdu) => {
          const r = decodeClientPdu(pdu);
          if (r.ok) {
            if ("value" in r.pdu) assert.ok(r.pdu.value.length <= pdu.length - 3);
            return;
          }
          assert.ok(r.reason.length > 0);
          assert.match(r.reason, /empty ATT PDU|malformed .+ \(|unsupported (request|command) 0x|unexpected server-side PDU 0x/);
          assert.equal(r.opcode, pdu.length > 0 ? pdu[0] : 0);
          assert.ok(r.handle >= 0 && r.handle <= 0xffff);
        }),
        { numRuns: HOSTILE_RUNS },
      );
    });
  });

  describe("HCI over H4: H4Splitter and the packet parsers", () => {
    const parsers = [
      parseCommand,
      parseEvent,
      parseAcl,
      parseCommandComplete,
      parseCommandStatus,
      parseDisconnectionComplete,
      parseNumberOfCompletedPackets,
      parseLeMetaEvent,
      parseLeAdvertisingReports,
      parseLeConnectionComplete,
    ] as const;

    it("arbitrary byte streams in arbitrary chunks: packets out ≤ bytes in, held back ≤ one largest packet, every parser answers or says undefined", () => {
      const stream = fc.array(
        fc.oneof(
          fc.uint8Array({ maxLength: 80 }),
          // Packet-shaped starts, so headers with hostile length fields come up often.
          fc.tuple(fc.constantFrom(1, 2, 3, 4, 5), fc.uint8Array({ minLength: 2, maxLength: 60 })).map(([t, rest]) => Uint8Array.from([t, ...rest])),
          fc.tuple(fc.constantFrom(0x3e, 0x0e, 0x0f, 0x05, 0x13), fc.uint8Array({ maxLength: 40 })).map(([code, p]) => buildEvent(code, Buffer.from(p))),
        ),
        { maxLength: 12 },
      );
      fc.assert(
        fc.property(stream, (chunks) => {
          const splitter = new H4Splitter();
          let input = 0;
          let output = 0;
          for (const chunk of chunks) {
            input += chunk.length;
            for (const packet of splitter.push(Buffer.from(chunk))) {
              output += packet.length;
              assert.equal(h4PacketLength(packet), packet.length);
              for (const parse of parsers) parse(packet);
            }
            assert.ok(splitter.pending <= 5 + 0xffff, `holds ${splitter.pending} bytes`);
            assert.equal(output + splitter.pending + splitter.discarded, input);
          }
          // Raw bytes straight into the parsers (a packet the splitter would not have produced).
          for (const chunk of chunks) for (const parse of parsers) parse(Buffer.from(chunk));
        }),
        { numRuns: HOSTILE_RUNS },
      );
    });

    it("h4PacketLength: a length, undefined for a short header, or a RangeError naming the unknown type", () => {
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 8 }), (bytes) => {
          try {
            const n = h4PacketLength(Buffer.from(bytes));
            assert.ok(n === undefined || (n >= 3 && n <= 5 + 0xffff));
          } catch (error) {
            assert.ok(error instanceof RangeError);
            assert.match(error.message, /^unknown H4 packet type 0x[0-9a-f]{2}$/);
          }
        }),
        { numRuns: HOSTILE_RUNS },
      );
    });
  });

  describe("GATT servers of the real peripheral kinds: arbitrary PDUs", () => {
    const ctx = (): PeripheralContext => ({ clock: new ManualClock(), link: { ...DEFAULT_LINK }, baseDir: os.tmpdir() });
    const specs = [
      { kind: "heart-rate", address: "d8:75:ba:00:00:01", rrIntervals: true, energyExpended: true },
      { kind: "hioki-dt4261", address: "a4:9e:69:00:00:01" },
      { kind: "nus-ymodem", address: "e3:c3:5c:00:00:01", sizeBytes: 1000 },
      { kind: "nus-ymodem", address: "e3:c3:5c:00:00:02", xoss: true, files: { "a.fit": { sizeBytes: 100 } } },
      {
        kind: "gatt",
        address: "c0:ff:ee:00:00:01",
        services: [
          {
            uuid: "fff0",
            characteristics: [
              { uuid: "fff1", properties: ["read", "write", "notify"], notify: { intervalMs: 10, values: [{ hex: "01" }, { hex: "00".repeat(40) }] } },
              { uuid: "fff2", properties: ["write", "writeWithoutResponse"], onWrite: { echoTo: "fff3" } },
              { uuid: "fff3", properties: ["notify", "indicate"] },
              { uuid: "fff4", properties: ["write"], onWrite: { replyOn: "fff3", replies: [{ request: { hex: "01" }, reply: [{ hex: "02" }, { hex: "03" }] }], otherwise: [{ text: "ERR" }] } },
            ],
          },
        ],
      },
    ];
    // Requests with plausible handles (the tables are short), and anything at all.
    const pduArb = fc.oneof(
      fc.uint8Array({ maxLength: 30 }),
      fc.tuple(fc.constantFrom(0x02, 0x04, 0x06, 0x08, 0x0a, 0x0c, 0x10, 0x12, 0x16, 0x18, 0x1e, 0x52), fc.integer({ min: 0, max: 40 }), fc.uint8Array({ maxLength: 24 })).map(([op, handle, rest]) =>
        Uint8Array.from([op, handle, 0, ...rest]),
      ),
    );

    for (const spec of specs) {
      const label = `${spec.kind}${"xoss" in spec ? " (xoss)" : ""}`;
      it(`${label}: never throws; every request gets exactly one answer, no larger than the MTU (2,500 sessions of up to 8 PDUs)`, () => {
        fc.assert(
          fc.property(fc.array(pduArb, { minLength: 1, maxLength: 8 }), (pdus) => {
            const c = ctx();
            const peripheral = createPeripheral({ ...spec }, "peripherals[0]", c);
            const link = new FakeLink();
            const answers: Buffer[] = [];
            link.onSend = (pdu) => {
              if (pdu[0] !== 0x1b && pdu[0] !== 0x1d) answers.push(pdu);
            };
            try {
              peripheral.connected(link);
              let mtu = 23;
              for (const pdu of pdus) {
                const before = answers.length;
                peripheral.receiveAtt(Buffer.from(pdu));
                (c.clock as ManualClock).advance(50);
                const op = pdu[0];
                const isRequest = pdu.length > 0 && op % 2 === 0 && (op & 0x40) === 0 && op !== 0x1e;
                const answered = answers.slice(before);
                // Replies to the request itself (an indication's write may come later): exactly one answer.
                assert.equal(answered.length, isRequest ? 1 : 0, `${Buffer.from(pdu).toString("hex")} → ${answered.map((a) => a.toString("hex")).join(",")}`);
                for (const a of answered) {
                  assert.ok(a.length <= mtu, `${a.length} bytes > MTU ${mtu}`);
                  assert.ok(a[0] === 0x01 || a[0] === op + 1, `answer 0x${a[0].toString(16)} to 0x${op.toString(16)}`);
                  if (a[0] === 0x01) assert.ok(![0x04, 0x05, 0x08, 0x0f].includes(a[4]), "never an error that stalls noble or starts pairing");
                  if (a[0] === 0x03) mtu = a.readUInt16LE(1) >= 23 ? Math.min(a.readUInt16LE(1), pdu.length >= 3 ? Math.max(23, Buffer.from(pdu).readUInt16LE(1)) : 23) : 23;
                }
              }
            } finally {
              peripheral.disconnected(0x13);
              peripheral.close();
            }
          }),
          { numRuns: 2500 },
        );
      });
    }
  });

  describe("virtual controller: arbitrary H4 packets from the host", () => {
    it("never throws; every HCI command is answered (Command Complete or Status), unknown ones with an error status", async () => {
      const commandArb = fc.oneof(
        fc.tuple(fc.constantFrom(...Object.values(OP)), fc.uint8Array({ maxLength: 30 })).map(([op, p]) => buildCommand(op, Buffer.from(p))),
        fc.tuple(fc.integer({ min: 0, max: 0xffff }), fc.uint8Array({ maxLength: 12 })).map(([op, p]) => buildCommand(op, Buffer.from(p))),
      );
      const packetArb = fc.oneof(
        { weight: 3, arbitrary: commandArb },
        { weight: 1, arbitrary: fc.uint8Array({ maxLength: 40 }).map((b) => Buffer.from(b)) },
        { weight: 1, arbitrary: fc.tuple(fc.integer({ min: 0, max: 0xffff }), fc.uint8Array({ maxLength: 40 })).map(([hf, d]) => buildAcl(hf & 0x0fff, hf >> 12, Buffer.from(d), hf >> 14)) },
      );
      await fc.assert(
        fc.asyncProperty(fc.array(packetArb, { minLength: 1, maxLength: 10 }), async (packets) => {
          const clock = new ManualClock();
          const controller = new VirtualController({ clock });
          controller.addPeripheral(new FakePeripheral());
          const received: Buffer[] = [];
          controller.on("h4", (p: Buffer) => received.push(p));
          controller.on("warning", () => undefined);
          try {
            let commands = 0;
            for (const packet of packets) {
              controller.write(packet);
              if (parseCommand(packet)) commands++;
              clock.advance(30);
            }
            await new Promise((resolve) => setImmediate(resolve));
            await new Promise((resolve) => setImmediate(resolve));
            const answers = received.filter((p) => parseCommandComplete(p) !== undefined || parseCommandStatus(p) !== undefined);
            assert.equal(answers.length, commands, "one Command Complete or Command Status per command");
            for (const p of received) assert.equal(h4PacketLength(p), p.length, "well-framed H4 towards the host");
            for (const [i, packet] of packets.entries()) {
              const cmd = parseCommand(packet);
              if (cmd && !(Object.values(OP) as number[]).includes(cmd.opcode)) {
                const reply = answers.map((a) => parseCommandComplete(a)).find((a) => a?.opcode === cmd.opcode);
                assert.ok(reply && reply.status === HCI_UNKNOWN_COMMAND, `packet ${i}: unknown command 0x${cmd.opcode.toString(16)} answered Unknown Command`);
              }
            }
          } finally {
            controller.close();
          }
        }),
        { numRuns: HOSTILE_RUNS },
      );
    });

    it("arbitrary L2CAP over a live connection (hostile length fields, continuations): never throws, the peripheral gets at most the bytes sent (2,000 runs)", async () => {
      const aclArb = fc.tuple(fc.constantFrom(0, 1, 2, 3), fc.uint8Array({ maxLength: 27 }));
      await fc.assert(
        fc.asyncProperty(fc.array(aclArb, { minLength: 1, maxLength: 12 }), async (fragments) => {
          const clock = new ManualClock();
          const controller = new VirtualController({ clock });
          const fake = new FakePeripheral();
          controller.addPeripheral(fake);
          const handles: number[] = [];
          controller.on("h4", (p: Buffer) => {
            const c = parseLeConnectionComplete(p);
            if (c) handles.push(c.handle);
          });
          controller.on("warning", () => undefined);
          try {
            const params = Buffer.alloc(25);
            params[5] = 1;
            addressToBytes(fake.address).copy(params, 6);
            params.writeUInt16LE(0x2a, 19);
            controller.write(buildCommand(OP.LE_CREATE_CONNECTION, params));
            clock.advance(20);
            await new Promise((resolve) => setImmediate(resolve));
            assert.equal(handles.length, 1);
            let sent = 0;
            for (const [pb, data] of fragments) {
              sent += data.length;
              controller.write(buildAcl(handles[0], pb, Buffer.from(data)));
              clock.advance(10);
            }
            clock.advance(100);
            const delivered = fake.received.reduce((n, pdu) => n + pdu.length, 0);
            assert.ok(delivered <= sent, `${delivered} bytes delivered of ${sent} sent`);
          } finally {
            controller.close();
          }
        }),
        { numRuns: 2000 },
      );
    });
  });

  describe("scenario files: arbitrary JSON", () => {
    let baseDir: string;
    before(() => {
      // Relative paths in arbitrary scenarios resolve here: an empty directory, so nothing real is read.
      baseDir = fs.mkdtempSync(path.join(os.tmpdir(), "hostile-scenario-"));
    });
    after(() => fs.rmSync(baseDir, { recursive: true, force: true }));

    /** ScenarioError with a message "scenario: <field>: <problem>", or nothing. */
    function expectScenarioOutcome(run: () => void): ScenarioError | null {
      try {
        run();
        return null;
      } catch (error) {
        assert.ok(error instanceof ScenarioError, `not a ScenarioError: ${String(error)}`);
        assert.match(error.message, /^scenario: \S.*: \S/);
        assert.ok(error.field.length > 0);
        return error;
      }
    }

    it("parseScenario on any JSON value: a Scenario or a ScenarioError", () => {
      fc.assert(
        fc.property(fc.jsonValue(), (json) => void expectScenarioOutcome(() => parseScenario(json, baseDir))),
        { numRuns: HOSTILE_RUNS },
      );
    });

    // Scenario-shaped JSON: known keys with hostile values, so the checks past the top level run too.
    const hostile = fc.oneof({ weight: 3, arbitrary: fc.jsonValue({ maxDepth: 2 }) }, { weight: 1, arbitrary: fc.constantFrom(-1, 0, 1, 1.5, 1e308, -0, "", "x", [], {}, null, true) });
    const addressArb = fc.oneof({ weight: 8, arbitrary: fc.constantFrom("d8:75:ba:00:00:01", "A4:9E:69:00:00:01", "e3:c3:5c:00:00:01") }, { weight: 1, arbitrary: hostile });
    /** Mostly a valid value, sometimes a hostile one: the checks behind the first field get their turn too. */
    const v = <T,>(valid: fc.Arbitrary<T>): fc.Arbitrary<unknown> => fc.oneof({ weight: 6, arbitrary: valid }, { weight: 1, arbitrary: hostile });
    /** An option present one time in four (options exclude each other; most entries should still build). */
    const r = <T,>(valid: fc.Arbitrary<T>): fc.Arbitrary<unknown> => fc.oneof({ weight: 3, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: v(valid) });
    const common = { address: addressArb, addressType: r(fc.constantFrom("public", "random")), name: r(fc.string({ minLength: 1, maxLength: 40 })) };
    const hexBytes = (min: number, max: number): fc.Arbitrary<string> => fc.uint8Array({ minLength: min, maxLength: max }).map((b) => Buffer.from(b).toString("hex"));
    const advertiserOptions = { intervalMs: r(fc.integer({ min: 0, max: 20000 })), connectable: r(fc.boolean()), rssi: r(fc.integer({ min: -130, max: 30 })) };
    const kindArb = (kind: string): fc.Arbitrary<unknown> => fc.oneof({ weight: 12, arbitrary: fc.constant(kind) }, { weight: 1, arbitrary: hostile });
    const peripheralArb = fc.oneof(
      fc.record(
        {
          kind: kindArb("heart-rate"),
          ...common,
          bpm: r(fc.array(fc.integer({ min: 1, max: 300 }), { minLength: 1, maxLength: 4 })),
          packets: r(fc.array(fc.uint8Array({ minLength: 1, maxLength: 30 }).map((b) => Buffer.from(b).toString("hex")), { minLength: 1, maxLength: 3 })),
          intervalMs: r(fc.integer({ min: 1, max: 5000 })),
          rrIntervals: r(fc.boolean()),
          energyExpended: r(fc.boolean()),
          bodySensorLocation: r(fc.integer({ min: 0, max: 255 })),
          batteryLevel: r(fc.integer({ min: 0, max: 100 })),
          deviceInformation: r(fc.dictionary(fc.constantFrom("manufacturer", "model", "serial"), fc.string({ maxLength: 70 }))),
        },
        { requiredKeys: ["kind", "address", "name"] },
      ),
      fc.record(
        {
          kind: kindArb("hioki-dt4261"),
          ...common,
          serial: r(fc.string({ maxLength: 40 })),
          values: r(fc.array(fc.double(), { minLength: 1, maxLength: 3 })),
          replies: r(fc.array(fc.string({ maxLength: 600 }), { minLength: 1, maxLength: 2 })),
          counts: r(fc.array(fc.nat(), { minLength: 1, maxLength: 3 })),
          replyDelayMs: r(fc.integer({ min: 0, max: 1000 })),
          batteryLevel: r(fc.integer({ min: 0, max: 100 })),
        },
        { requiredKeys: ["kind", "address", "name"] },
      ),
      fc.record(
        {
          kind: kindArb("nus-ymodem"),
          ...common,
          // Generated files kept small: the 256 MiB cap is a deliberate, tested limit, not a hostile one.
          sizeBytes: r(fc.oneof(fc.integer({ min: -10, max: 5000 }), fc.constantFrom(1e12, 2 ** 31, 1.5, "1"))),
          seed: r(fc.nat()),
          filename: r(fc.string({ maxLength: 120 })),
          file: r(fc.oneof(fc.string({ maxLength: 20 }), fc.constantFrom(".", "..", "/", "missing.bin"))),
          files: r(fc.dictionary(fc.string({ maxLength: 30 }), fc.oneof(fc.record({ sizeBytes: fc.integer({ min: 0, max: 3000 }) }), hostile), { maxKeys: 3 })),
          crc: r(fc.constantFrom("arc", "xmodem")),
          blocks: r(fc.constantFrom("soh", "stx", "auto")),
          corruptBlocks: r(fc.array(fc.nat({ max: 50 }), { minLength: 1, maxLength: 3 })),
          streaming: r(fc.boolean()),
          framing: r(fc.constantFrom("aligned", "packed")),
          dialect: r(fc.constantFrom("seed", "standard")),
          xoss: r(fc.boolean()),
          blockTimeoutMs: r(fc.integer({ min: 10, max: 10000 })),
        },
        { requiredKeys: ["kind", "address", "name"] },
      ),
      fc.record(
        {
          kind: kindArb("gatt"),
          ...common,
          advertising: r(fc.record({ services: r(fc.array(v(fc.constantFrom("180f", "0x181A", "6e400001-b5a3-f393-e0a9-e50e24dcca9e")), { maxLength: 3 })), manufacturerData: r(fc.record({ companyId: v(fc.nat({ max: 0xffff })), data: r(fc.uint8Array({ maxLength: 30 }).map((b) => Buffer.from(b).toString("hex"))) })) })),
          services: r(
            fc.array(
              fc.record({
                uuid: v(fc.constantFrom("fff0", "181a", "1800", "0x180F")),
                characteristics: r(
                  fc.array(
                    fc.record({
                      uuid: v(fc.constantFrom("fff1", "fff2", "2a19", "2803")),
                      properties: v(fc.subarray(["read", "write", "writeWithoutResponse", "notify", "indicate"])),
                      value: r(fc.oneof(fc.record({ hex: v(fc.uint8Array({ maxLength: 20 }).map((b) => Buffer.from(b).toString("hex"))) }), fc.record({ text: v(fc.string({ maxLength: 20 })) }))),
                      notify: r(fc.record({ intervalMs: r(fc.integer({ min: 1, max: 5000 })), values: v(fc.array(fc.record({ text: fc.string({ maxLength: 8 }) }), { maxLength: 3 })) })),
                      onWrite: r(fc.oneof(fc.constant("store"), fc.record({ echoTo: v(fc.constantFrom("fff1", "fff2")) }), fc.record({ replyOn: v(fc.constantFrom("fff1", "fff2")), replies: r(fc.array(fc.record({ request: v(fc.record({ text: fc.string({ maxLength: 4 }) })), reply: v(fc.array(fc.record({ hex: fc.constant("01") }), { maxLength: 2 })), delayMs: r(fc.integer({ min: -1, max: 70000 })) }), { maxLength: 2 })) }))),
                    }),
                    { maxLength: 3 },
                  ),
                ),
              }),
              { maxLength: 2 },
            ),
          ),
        },
        { requiredKeys: ["kind", "address", "name"] },
      ),
      // The advertiser kinds (issue 14).
      fc.record(
        {
          kind: kindArb("ibeacon"),
          ...common,
          uuid: v(fc.uuid()),
          major: r(fc.integer({ min: -1, max: 70000 })),
          minor: r(fc.integer({ min: -1, max: 70000 })),
          measuredPower: r(fc.integer({ min: -130, max: 130 })),
          ...advertiserOptions,
        },
        { requiredKeys: ["kind", "address", "uuid"] },
      ),
      fc.record(
        {
          kind: kindArb("eddystone"),
          ...common,
          uid: r(fc.record({ namespace: v(hexBytes(10, 10)), instance: v(hexBytes(5, 7)) })),
          url: r(fc.oneof(fc.webUrl(), fc.string({ maxLength: 40 }).map((t) => `https://${t}`))),
          tlm: r(fc.oneof(fc.constant(true), fc.record({ batteryMv: r(fc.array(fc.integer({ min: -1, max: 70000 }), { maxLength: 3 })), temperature: r(fc.array(fc.oneof(fc.constant(null), fc.double({ min: -200, max: 200 })), { maxLength: 3 })) }))),
          txPower: r(fc.integer({ min: -120, max: 30 })),
          ...advertiserOptions,
        },
        { requiredKeys: ["kind", "address"] },
      ),
      fc.record(
        {
          kind: kindArb("bthome"),
          ...common,
          measurements: v(
            fc.array(
              fc.record(
                {
                  type: v(fc.constantFrom("temperature", "humidity", "pressure", "battery", "co2", "count", "door", "button", "dimmer", "energy")),
                  objectId: r(fc.integer({ min: 0, max: 0x100 })),
                  values: v(fc.array(fc.oneof(fc.double({ min: -1e6, max: 1e6 }), fc.integer({ min: -300, max: 300 }), fc.boolean(), fc.constantFrom("press", "none", "long_press")), { minLength: 1, maxLength: 4 })),
                },
                { requiredKeys: ["values"] },
              ),
              { minLength: 1, maxLength: 6 },
            ),
          ),
          bindKey: r(hexBytes(15, 17)),
          packetId: r(fc.boolean()),
          triggerBased: r(fc.boolean()),
          repeat: r(fc.integer({ min: 0, max: 20 })),
          changeEveryMs: r(fc.integer({ min: 0, max: 100000 })),
          ...advertiserOptions,
        },
        { requiredKeys: ["kind", "address", "measurements"] },
      ),
      fc.record(
        {
          kind: kindArb("advertiser"),
          address: addressArb,
          data: v(fc.oneof(hexBytes(0, 33), fc.array(hexBytes(0, 33), { minLength: 1, maxLength: 3 }))),
          scanResponse: r(fc.oneof(hexBytes(0, 33), fc.array(hexBytes(0, 33), { maxLength: 3 }))),
          repeat: r(fc.integer({ min: 0, max: 20 })),
          ...advertiserOptions,
        },
        { requiredKeys: ["kind", "address", "data"] },
      ),
      fc.dictionary(fc.string({ maxLength: 12 }), hostile, { maxKeys: 4 }),
    );
    const scenarioArb = fc.record(
      {
        link: r(fc.record({ connectionIntervalMs: r(fc.constantFrom(7.5, 30, 50)), pdusPerEvent: r(fc.integer({ min: 1, max: 10 })), dataLength: r(fc.integer({ min: 27, max: 251 })), maxMtu: r(fc.integer({ min: 23, max: 517 })) })),
        timeScale: r(fc.constantFrom(1, 10, 0.5)),
        peripherals: v(fc.array(peripheralArb, { maxLength: 3 })),
        events: r(fc.array(fc.record({ atMs: v(fc.nat()), address: addressArb, action: v(fc.constantFrom("power-off", "power-on")) }), { maxLength: 3 })),
      },
      { requiredKeys: ["peripherals"] },
    );

    it("scenario-shaped JSON through parseScenario and the Simulation (every peripheral kind built): a running simulation or a ScenarioError", () => {
      let built = 0;
      const rejected = new Map<string, number>();
      fc.assert(
        fc.property(scenarioArb, (json) => {
          // A JSON round trip: what a file can hold (no undefined, no -0).
          const data: unknown = JSON.parse(JSON.stringify(json));
          const error = expectScenarioOutcome(() => {
            const scenario = parseScenario(data, baseDir);
            const sim = new Simulation(scenario, { timeScale: 1 });
            built++;
            sim.close();
          });
          if (error) {
            const key = error.field.replace(/\[\d+\]/g, "[]");
            rejected.set(key, (rejected.get(key) ?? 0) + 1);
          }
        }),
        { numRuns: HOSTILE_RUNS },
      );
      const top = [...rejected].sort((a, b) => b[1] - a[1]).slice(0, 12);
      assert.ok(built > 2000, `only ${built} scenarios got as far as a Simulation; rejected at ${JSON.stringify(top)}`);
    });
  });
});
