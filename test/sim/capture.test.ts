/**
 * The scenario field "capture": validated like every other field, and a Simulation that has it records every H4
 * packet in both directions, in the order they passed, in a BTSnoop file that is complete once close() returns.
 * (test/interop/btsnoop-tshark.test.ts has Wireshark read a real noble session's capture.)
 */
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { decodeBtsnoop, unixMsOfBtsnoopTimestamp } from "../../src/protocol/btsnoop";
import { OP } from "../../src/protocol/hci";
import { buildCommand } from "../../src/protocol/hci-packets";
import { Simulation, loadScenarioFile, parseScenario, type PeripheralFactory } from "../../src/sim/scenario";
import { ScenarioError, type JsonObject } from "../../src/sim/validate";
import { FakePeripheral } from "../support/fake-peripheral";

const fakeFactory: PeripheralFactory = (spec) => new FakePeripheral({ address: String(spec.address) });

function scenario(extra: JsonObject = {}): JsonObject {
  return { peripherals: [{ kind: "fake", address: "c0:ff:ee:00:00:01" }], ...extra };
}

function rejects(json: unknown, message: RegExp): void {
  assert.throws(
    () => parseScenario(json, "/scenarios"),
    (error: unknown) => {
      assert.ok(error instanceof ScenarioError, `a ScenarioError, got ${String(error)}`);
      assert.equal(error.field, "capture");
      assert.match(error.message, message);
      return true;
    },
  );
}

/** Resolves with the next `count` packets the controller sends to the host. */
function nextPackets(sim: Simulation, count: number): Promise<Buffer[]> {
  return new Promise((resolve) => {
    const seen: Buffer[] = [];
    const listener = (packet: Buffer): void => {
      seen.push(Buffer.from(packet));
      if (seen.length < count) return;
      sim.controller.off("h4", listener);
      resolve(seen);
    };
    sim.controller.on("h4", listener);
  });
}

describe("sim/capture (scenario field \"capture\")", () => {
  let dir: string;
  beforeEach(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), "capture-"))));
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  describe("parseScenario", () => {
    it("resolves the path against the scenario's directory and leaves the key out when absent", () => {
      assert.equal(parseScenario(scenario({ capture: "out/hci.btsnoop" }), "/scenarios").capture, "/scenarios/out/hci.btsnoop");
      assert.equal(parseScenario(scenario({ capture: "/var/tmp/hci.btsnoop" }), "/scenarios").capture, "/var/tmp/hci.btsnoop");
      assert.equal("capture" in parseScenario(scenario(), "/scenarios"), false);
    });

    it("names the field in every error", () => {
      rejects(scenario({ capture: 1 }), /must be a string/);
      rejects(scenario({ capture: "" }), /must not be empty/);
      rejects(scenario({ capture: "  " }), /must not be empty/);
      rejects(scenario({ capture: "a\0b" }), /NUL/);
      rejects(scenario({ capture: "captures/" }), /must name a file, not a directory/);
      rejects(scenario({ capture: "x".repeat(5000) }), /at most 4096 characters/);
    });

    it("refuses the scenario file itself, which opening the capture would truncate", () => {
      const file = path.join(dir, "self.json");
      fs.writeFileSync(file, JSON.stringify(scenario({ capture: "self.json" })));
      assert.throws(() => loadScenarioFile(file), (error: unknown) => {
        assert.ok(error instanceof ScenarioError);
        assert.equal(error.field, "capture");
        assert.match(error.message, /must not be the scenario file itself/);
        return true;
      });
      assert.ok(fs.readFileSync(file, "utf8").includes("peripherals"), "the scenario is untouched");
    });
  });

  describe("Simulation", () => {
    it("writes both directions in the order they passed, stamped with simulated time, complete after close()", async () => {
      const file = path.join(dir, "scenario.json");
      fs.writeFileSync(file, JSON.stringify(scenario({ capture: "hci.btsnoop" })));
      const before = Date.now();
      const sim = new Simulation(loadScenarioFile(file), { createPeripheral: fakeFactory });
      const expected: { packet: Buffer; direction: string }[] = [];
      try {
        assert.equal(sim.capture?.file, path.join(dir, "hci.btsnoop"));
        for (const command of [buildCommand(OP.RESET), buildCommand(OP.READ_BD_ADDR)]) {
          const reply = nextPackets(sim, 1);
          sim.controller.write(command);
          expected.push({ packet: command, direction: "host-to-controller" });
          expected.push({ packet: (await reply)[0], direction: "controller-to-host" });
        }
      } finally {
        sim.close();
      }
      const after = Date.now();
      assert.equal(sim.capture?.closed, true);
      const capture = decodeBtsnoop(fs.readFileSync(path.join(dir, "hci.btsnoop")));
      assert.equal(capture.datalink, 1002);
      assert.equal(capture.trailingBytes, 0);
      assert.deepEqual(
        capture.records.map((r) => ({ packet: r.packet, direction: r.direction })),
        expected,
      );
      assert.deepEqual(
        capture.records.map((r) => r.flags),
        [0x02, 0x03, 0x02, 0x03],
        "commands sent by the host, events received by it",
      );
      const times = capture.records.map((r) => unixMsOfBtsnoopTimestamp(r.timestampUs));
      for (let i = 1; i < times.length; i++) assert.ok(times[i] >= times[i - 1], "time never runs backwards");
      // timeScale 1: simulated time is wall-clock time (1 ms of slack for the microsecond rounding).
      assert.ok(times[0] >= before - 1 && times[times.length - 1] <= after + 1, `${times.join(", ")} within ${before} … ${after}`);
    });

    it("reports an unwritable capture as a ScenarioError naming the field, before building any peripheral", () => {
      const built: FakePeripheral[] = [];
      const json = scenario({ capture: "no-such-directory/hci.btsnoop" });
      assert.throws(
        () =>
          new Simulation(parseScenario(json, dir), {
            createPeripheral: (spec, field, ctx) => {
              const p = fakeFactory(spec, field, ctx) as FakePeripheral;
              built.push(p);
              return p;
            },
          }),
        (error: unknown) => {
          assert.ok(error instanceof ScenarioError);
          assert.equal(error.field, "capture");
          assert.match(error.message, /capture: cannot be written \(ENOENT/);
          assert.doesNotMatch(error.message, /no-such-directory/, "not the path, which holds the scenario's directory");
          return true;
        },
      );
      assert.equal(built.length, 0, "nothing was built before the capture failed");
    });

    it("closes the capture when a peripheral fails to build", () => {
      const file = path.join(dir, "partial.btsnoop");
      assert.throws(
        () =>
          new Simulation(parseScenario(scenario({ capture: file }), dir), {
            createPeripheral: () => {
              throw new ScenarioError("peripherals[0].bpm", "must be a list");
            },
          }),
        /peripherals\[0\]\.bpm/,
      );
      // The header alone: the capture was opened before the peripherals, and closed again when one failed.
      assert.equal(fs.readFileSync(file).length, 16);
      const open = fs.readdirSync("/proc/self/fd").filter((fd) => {
        try {
          return fs.readlinkSync(`/proc/self/fd/${fd}`) === file;
        } catch {
          return false;
        }
      });
      assert.deepEqual(open, [], "no descriptor left open on the capture");
    });

    it("writes nothing when the scenario has no capture", () => {
      const sim = new Simulation(parseScenario(scenario(), dir), { createPeripheral: fakeFactory });
      sim.close();
      assert.equal(sim.capture, null);
      assert.deepEqual(fs.readdirSync(dir), []);
    });
  });
});
