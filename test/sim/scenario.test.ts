import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { once } from "node:events";
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { DEFAULT_SCENARIO, MAX_SCENARIO_BYTES, Simulation, jsonSyntaxProblem, loadScenarioFile, parseScenario, type PeripheralFactory } from "../../src/sim/scenario";
import { DEFAULT_LINK } from "../../src/sim/types";
import { ScenarioError, type JsonObject } from "../../src/sim/validate";
import { FakePeripheral } from "../support/fake-peripheral";

const clone = <T>(value: T): T => JSON.parse(JSON.stringify(value)) as T;

/** A minimal valid scenario to break one field at a time. */
function base(): JsonObject {
  return {
    peripherals: [
      { kind: "fake", address: "c0:ff:ee:00:00:01" },
      { kind: "fake", address: "c0:ff:ee:00:00:02" },
    ],
  };
}

function rejects(json: unknown, field: string, message: RegExp): void {
  assert.throws(
    () => parseScenario(json, ""),
    (error: unknown) => {
      assert.ok(error instanceof ScenarioError, `a ScenarioError, got ${String(error)}`);
      assert.equal(error.field, field);
      assert.ok(error.message.startsWith(`scenario: ${field}: `), error.message);
      assert.match(error.message, message);
      return true;
    },
  );
}

const fakeFactory: PeripheralFactory = (spec) => new FakePeripheral({ address: String(spec.address), name: typeof spec.name === "string" ? spec.name : undefined });

describe("sim/scenario", () => {
  describe("parseScenario", () => {
    it("accepts the built-in scenario, which is plain JSON", () => {
      assert.deepEqual(clone(DEFAULT_SCENARIO), DEFAULT_SCENARIO);
      const s = parseScenario(clone(DEFAULT_SCENARIO), "");
      assert.deepEqual(s.link, DEFAULT_LINK);
      assert.equal(s.timeScale, 1);
      assert.deepEqual(
        s.events.map((e) => [e.atMs, e.action]),
        [
          [20000, "power-off"],
          [32000, "power-on"],
          [60000, "power-off"],
          [70000, "power-on"],
        ],
        "the meter is switched off and on, as in the seed's log",
      );
      assert.deepEqual(
        s.peripherals.map((p) => [p.kind, p.address, p.field]),
        [
          ["heart-rate", "d8:75:ba:00:00:01", "peripherals[0]"],
          ["hioki-dt4261", "a4:9e:69:00:00:01", "peripherals[1]"],
          ["nus-ymodem", "e3:c3:5c:00:00:01", "peripherals[2]"],
          ["nus-ymodem-receiver", "e3:c3:5c:00:00:02", "peripherals[3]"],
          ["gatt", "c0:ff:ee:00:00:01", "peripherals[4]"],
          ["gatt", "c0:ff:ee:00:00:02", "peripherals[5]"],
          ["ibeacon", "c0:1b:ea:c0:00:01", "peripherals[6]"],
          ["eddystone", "c0:ed:d1:00:00:01", "peripherals[7]"],
          ["bthome", "c0:b7:40:00:00:01", "peripherals[8]"],
          ["bthome", "c0:b7:40:00:00:02", "peripherals[9]"],
          ["advertiser", "c0:ad:00:00:00:01", "peripherals[10]"],
        ],
      );
      assert.deepEqual(s.peripherals[0].spec.bpm, [45, 46, 47, 46]);
    });

    it("fills link defaults, normalises addresses and sorts events stably by time", () => {
      const json = {
        peripherals: [
          { kind: "fake", address: "C0:FF:EE:00:00:01" },
          { kind: "fake", address: "c0:ff:ee:00:00:02" },
        ],
        link: { dataLength: 27 },
        timeScale: 10,
        events: [
          { atMs: 500, address: "C0:FF:EE:00:00:02", action: "power-on" },
          { atMs: 100, address: "c0:ff:ee:00:00:01", action: "power-off" },
          { atMs: 500, address: "c0:ff:ee:00:00:01", action: "power-on" },
        ],
      };
      const s = parseScenario(json, "/scenarios");
      assert.deepEqual(s.link, { ...DEFAULT_LINK, dataLength: 27 });
      assert.equal(s.timeScale, 10);
      assert.equal(s.baseDir, "/scenarios");
      assert.equal(s.peripherals[0].address, "c0:ff:ee:00:00:01");
      assert.equal(s.peripherals[0].spec.address, "c0:ff:ee:00:00:01");
      assert.deepEqual(s.events, [
        { atMs: 100, address: "c0:ff:ee:00:00:01", action: "power-off" },
        { atMs: 500, address: "c0:ff:ee:00:00:02", action: "power-on" },
        { atMs: 500, address: "c0:ff:ee:00:00:01", action: "power-on" },
      ]);
    });

    it("names the field in every error", () => {
      rejects([], "(top level)", /must be a JSON object/);
      rejects({ ...base(), peripheral: [] }, "(key 2)", /unknown key; expected one of "link", "timeScale", "peripherals", "events"/);
      rejects({ ...base(), timeScale: 0 }, "timeScale", /between 0.01 and 10000/);
      rejects({ ...base(), timeScale: "fast" }, "timeScale", /must be a number/);
      rejects({ ...base(), link: 5 }, "link", /must be an object/);
      rejects({ ...base(), link: { interval: 7.5 } }, "link.(key 1)", /unknown key/);
      rejects({ ...base(), link: { connectionIntervalMs: 5 } }, "link.connectionIntervalMs", /between 7.5 and 4000/);
      rejects({ ...base(), link: { connectionIntervalMs: 8 } }, "link.connectionIntervalMs", /multiple of 1.25/);
      rejects({ ...base(), link: { dataLength: 300 } }, "link.dataLength", /between 27 and 251/);
      rejects({ ...base(), link: { pdusPerEvent: 1.5 } }, "link.pdusPerEvent", /whole number/);
      rejects({ ...base(), link: { maxMtu: "big" } }, "link.maxMtu", /must be a number/);
      rejects({}, "peripherals", /is required/);
      rejects({ peripherals: {} }, "peripherals", /must be an array/);
      rejects({ peripherals: [{ kind: "fake", address: "c0:ff:ee:00:00:01" }, 7] }, "peripherals[1]", /must be an object/);
      rejects({ peripherals: [{ address: "c0:ff:ee:00:00:01" }] }, "peripherals[0].kind", /is required/);
      rejects({ peripherals: [{ kind: "fake", address: "c0:ff:ee:00:00:01" }, { kind: "fake", address: "c0:ff:ee:00:01" }] }, "peripherals[1].address", /must look like "d8:75:ba:00:00:01"$/);
      rejects({ peripherals: [{ kind: "fake", address: "c0:ff:ee:00:00:01" }, { kind: "fake", address: "C0:FF:EE:00:00:01" }] }, "peripherals[1].address", /: is already used by peripherals\[0\]$/);
      rejects({ ...base(), events: {} }, "events", /must be an array/);
      rejects({ ...base(), events: [{ address: "c0:ff:ee:00:00:01", action: "power-off" }] }, "events[0].atMs", /is required/);
      rejects({ ...base(), events: [{ atMs: -1, address: "c0:ff:ee:00:00:01", action: "power-off" }] }, "events[0].atMs", /between 0/);
      rejects({ ...base(), events: [{ atMs: 1, address: "c0:ff:ee:00:00:09", action: "power-off" }] }, "events[0].address", /no peripheral has this address$/);
      rejects({ ...base(), events: [{ atMs: 1, address: "c0:ff:ee:00:00:01" }] }, "events[0].action", /is required/);
      rejects({ ...base(), events: [{ atMs: 1, address: "c0:ff:ee:00:00:01", action: "reboot" }] }, "events[0].action", /must be one of "power-off", "power-on"/);
      rejects({ ...base(), events: [{ atMs: 1, address: "c0:ff:ee:00:00:01", action: "power-on", at: 3 }] }, "events[0].(key 4)", /unknown key/);
    });
  });

  describe("loadScenarioFile", () => {
    let dir: string;
    beforeEach(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), "scenario-"))));
    afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

    it("loads a file and takes its directory as baseDir", () => {
      const file = path.join(dir, "two.json");
      fs.writeFileSync(file, JSON.stringify(base()));
      const s = loadScenarioFile(file);
      assert.equal(s.baseDir, dir);
      assert.equal(s.peripherals.length, 2);
    });

    it("reports JSON syntax errors with the file, line and column", () => {
      const file = path.join(dir, "broken.json");
      fs.writeFileSync(file, '{\n  "peripherals": [\n    { "kind": "fake", }\n  ]\n}\n');
      assert.throws(() => loadScenarioFile(file), (error: unknown) => {
        assert.ok(error instanceof ScenarioError);
        assert.match(error.message, new RegExp(`^scenario: ${file.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}: is not valid JSON: .*\\(line 3, column \\d+\\)$`));
        return true;
      });
    });

    it("reports unreadable files and names the file in field errors", () => {
      assert.throws(() => loadScenarioFile(path.join(dir, "missing.json")), /scenario: .*missing\.json: cannot be read \(ENOENT/);
      const file = path.join(dir, "bad.json");
      fs.writeFileSync(file, JSON.stringify({ peripherals: [{ kind: "fake", address: "nope" }] }));
      assert.throws(() => loadScenarioFile(file), (error: unknown) => {
        assert.ok(error instanceof ScenarioError);
        assert.equal(error.field, "peripherals[0].address");
        assert.ok(error.message.startsWith("scenario: peripherals[0].address: must look like"));
        assert.ok(error.message.endsWith(`(in ${file})`));
        return true;
      });
    });
  });

  describe("loadScenarioFile: only regular files of bounded size, and errors that never quote the file", () => {
    let dir: string;
    let writer: ChildProcess | undefined;
    beforeEach(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), "scenario-"))));
    afterEach(() => {
      writer?.kill("SIGKILL");
      writer = undefined;
      fs.rmSync(dir, { recursive: true, force: true });
    });

    /** Asserts that loading `file` fails with `problem`, and returns what the error says after naming the file. */
    const refused = (file: string, problem: RegExp): string => {
      let said = "";
      assert.throws(
        () => loadScenarioFile(file),
        (error: unknown) => {
          assert.ok(error instanceof ScenarioError, `a ScenarioError, got ${String(error)}`);
          const prefix = `scenario: ${path.resolve(file)}: `;
          assert.ok(error.message.startsWith(prefix), error.message);
          said = error.message.slice(prefix.length);
          assert.match(said, problem);
          return true;
        },
      );
      return said;
    };

    it("refuses a FIFO at once, without waiting for a writer (reading one would stop the event loop)", () => {
      const fifo = path.join(dir, "scenario.fifo");
      execFileSync("mkfifo", [fifo]);
      // A writer that would hand over a valid scenario as soon as someone opens the FIFO for reading: a loader that
      // reads the FIFO gets it (and, without this writer, would wait forever).
      writer = spawn("sh", ["-c", 'printf %s "$0" > "$1"', JSON.stringify(base()), fifo], { stdio: "ignore" });
      refused(fifo, /is a FIFO, not a regular file/);
    });

    it("refuses a character device such as /dev/zero (reading it would grow without end)", () => {
      refused("/dev/zero", /is a character device, not a regular file/);
    });

    it("refuses a directory", () => {
      refused(dir, /is a directory, not a regular file/);
    });

    it(`refuses a file over ${MAX_SCENARIO_BYTES} bytes (1 MiB)`, () => {
      const big = path.join(dir, "big.json");
      // A valid scenario, so only the size can be the reason.
      fs.writeFileSync(big, JSON.stringify(base()) + " ".repeat(MAX_SCENARIO_BYTES));
      refused(big, /is larger than 1 MiB/);
    });

    it("never quotes the file's content in a JSON syntax error (a secret file named as a scenario stays secret)", () => {
      const shadow = path.join(dir, "shadow");
      fs.writeFileSync(shadow, "root:$6$s3cr3tHash:19000:0:99999:7:::\nbin:*:19000:0:99999:7:::\n");
      const quoted = path.join(dir, "quoted.json");
      fs.writeFileSync(quoted, "{ \"peripherals\": 's3cr3t' }");
      for (const file of [shadow, quoted]) {
        const said = refused(file, /is not valid JSON/);
        assert.ok(!/s3cr3t|root|bin:|peripherals/.test(said), `no file content in ${JSON.stringify(said)}`);
      }
    });
  });

  describe("jsonSyntaxProblem: JSON.parse's words, never a character of the file", () => {
    const text = '{ "a": rs3cr3t }';
    for (const message of [
      // Node 18 and earlier name the character itself.
      "Unexpected token r in JSON at position 7",
      "Unexpected token } in JSON at position 15",
      // Node 20 and later quote it, with the text around it.
      `Unexpected token 'r', "{ "a": rs3cr3t }" is not valid JSON`,
    ]) {
      it(message, () => {
        const said = jsonSyntaxProblem(text, message);
        assert.match(said, /^unexpected character/);
        assert.ok(!/\br\b|'r'|\}|s3cr3t/.test(said), said);
      });
    }
    it("keeps the words and the line and column when nothing of the file is quoted", () => {
      assert.equal(jsonSyntaxProblem('{\n "a" 1 }', "Expected ':' after property name in JSON at position 7"), "expected ':' after property name (line 2, column 6)");
      assert.equal(jsonSyntaxProblem("{", "Unexpected end of JSON input"), "it ends too early");
    });
  });

  describe("Simulation", () => {
    it("builds the scenario's peripherals on one controller with the scenario's link", () => {
      const sim = new Simulation(parseScenario({ ...base(), link: { dataLength: 27 } }, ""), { createPeripheral: fakeFactory });
      try {
        assert.deepEqual(
          sim.controller.peripherals().map((p) => p.address),
          ["c0:ff:ee:00:00:01", "c0:ff:ee:00:00:02"],
        );
        assert.equal(sim.controller.link.dataLength, 27);
        assert.equal(sim.clock.timeScale, 1);
      } finally {
        sim.close();
      }
    });

    it("runs the events timeline after start(), in simulated time", async () => {
      const json = {
        ...base(),
        events: [
          { atMs: 200, address: "c0:ff:ee:00:00:01", action: "power-on" },
          { atMs: 100, address: "c0:ff:ee:00:00:01", action: "power-off" },
        ],
      };
      const sim = new Simulation(parseScenario(json, ""), { createPeripheral: fakeFactory, timeScale: 1000 });
      try {
        const seen: [string, boolean, number][] = [];
        sim.controller.on("power", (address: string, on: boolean) => seen.push([address, on, sim.clock.now()]));
        const done = new Promise<void>((resolve) => sim.controller.on("power", (_a: string, on: boolean) => on && resolve()));
        assert.equal(sim.clock.timeScale, 1000, "the option overrides the scenario");
        sim.start();
        sim.start();
        await done;
        assert.deepEqual(
          seen.map(([a, on]) => [a, on]),
          [
            ["c0:ff:ee:00:00:01", false],
            ["c0:ff:ee:00:00:01", true],
          ],
        );
        assert.ok(seen[0][2] >= 100 && seen[1][2] >= 200);
      } finally {
        sim.close();
      }
    });

    it("close() cancels the timeline and closes every peripheral", async () => {
      const json = { ...base(), events: [{ atMs: 0, address: "c0:ff:ee:00:00:02", action: "power-off" }] };
      const built: FakePeripheral[] = [];
      const sim = new Simulation(parseScenario(json, ""), {
        createPeripheral: (spec, field, ctx) => {
          const p = fakeFactory(spec, field, ctx) as FakePeripheral;
          built.push(p);
          return p;
        },
      });
      const closing = once(sim.controller, "close");
      sim.start();
      sim.close();
      sim.close();
      await closing;
      assert.deepEqual(
        built.map((p) => p.closed),
        [true, true],
      );
      assert.equal(sim.controller.isPoweredOn("c0:ff:ee:00:00:02"), true, "the cancelled event never ran");
    });

    it("lets a peripheral kind's ScenarioError through and closes what was already built", () => {
      const built: FakePeripheral[] = [];
      assert.throws(
        () =>
          new Simulation(parseScenario(base(), ""), {
            createPeripheral: (spec, field, ctx) => {
              if (field === "peripherals[1]") throw new ScenarioError(`${field}.bpm`, "must be a list");
              const p = fakeFactory(spec, field, ctx) as FakePeripheral;
              built.push(p);
              return p;
            },
          }),
        /scenario: peripherals\[1\]\.bpm: must be a list/,
      );
      assert.equal(built[0].closed, true);
    });

    it("builds the built-in scenario with the real peripheral kinds", () => {
      const sim = new Simulation(parseScenario(DEFAULT_SCENARIO, ""));
      try {
        const p = sim.controller.peripheral("d8:75:ba:00:00:01");
        assert.ok(p);
        assert.equal(p.kind, "heart-rate");
        assert.equal(p.name, "44278-33");
        assert.equal(p.addressType, "random");
      } finally {
        sim.close();
      }
    });
  });
});
