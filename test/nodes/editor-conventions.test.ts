/** What the editor dialogs store and show, seen from the runtime: addresses from environment variables, idle status. */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import type { NodeMessage } from "node-red";
import bleConfigNode = require("../../src/ble-config");
import heartRateNode = require("../../src/heart-rate");
import hiokiMeterNode = require("../../src/hioki-meter");
import nusYmodemReceiveNode = require("../../src/nus-ymodem-receive");
import { collectMessages, currentStatus, helper, isConnected, loadFlow, waitForStatus, type FlowNode, useNodeRed } from "../support/red";

const tab: FlowNode = { id: "flow", type: "tab", label: "test" };
const simConfig: FlowNode = { id: "cfg", type: "ble-config", transport: "simulator", simScenario: "", simTimeScale: 10 };
const sink: FlowNode = { id: "out", z: "flow", type: "helper" };

describe("editor conventions at runtime (env addresses, status dots)", function () {
  this.timeout(30000);

  useNodeRed();
  afterEach(() => {
    delete process.env.BLE_TEST_HR_ADDRESS;
  });

  it("takes a device address from an environment variable when the address field's type is env", async () => {
    process.env.BLE_TEST_HR_ADDRESS = "D8-75-BA-00-00-01";
    await loadFlow(
      [bleConfigNode, heartRateNode],
      [simConfig, { id: "hr", z: "flow", type: "heart-rate", ble: "cfg", address: "BLE_TEST_HR_ADDRESS", addressType: "env", deviceName: "", wires: [["out"]] }, sink, tab],
    );
    const [msg] = (await collectMessages(helper.getNode("out"), 1)) as (NodeMessage & { peripheral: { address: string } })[];
    assert.equal(msg.peripheral.address, "d8:75:ba:00:00:01");
  });

  it("reads the variable from the flow's own environment too, and rejects one that holds no address", async () => {
    await loadFlow(
      [bleConfigNode, hiokiMeterNode],
      [
        simConfig,
        { id: "m", z: "flow", type: "hioki-meter", ble: "cfg", address: "METER", addressType: "env", deviceName: "", interval: 0, wires: [[]] },
        { id: "bad", z: "flow", type: "hioki-meter", ble: "cfg", address: "NOT_AN_ADDRESS", addressType: "env", deviceName: "", interval: 0, wires: [[]] },
        { ...tab, env: [{ name: "METER", value: "a4:9e:69:00:00:01", type: "str" }, { name: "NOT_AN_ADDRESS", value: "meter", type: "str" }] },
      ],
    );
    await waitForStatus(helper.getNode("m"), isConnected);
    const bad = currentStatus(helper.getNode("bad"));
    assert.deepEqual(bad, { fill: "red", shape: "ring", text: "invalid configuration" });
  });

  it("shows a grey ring 'idle' on a file-download node until it is triggered", async () => {
    await loadFlow(
      [bleConfigNode, nusYmodemReceiveNode],
      [simConfig, { id: "dl", z: "flow", type: "nus-ymodem-receive", ble: "cfg", address: "", deviceName: "mpy-nus", wires: [["out"]] }, sink, tab],
    );
    assert.deepEqual(currentStatus(helper.getNode("dl")), { fill: "grey", shape: "ring", text: "idle" });
  });

  it("has every message the editor's shared script uses in the ble-config catalog", () => {
    const html = ["nodes/ble-config.html", "resources/ble-instruments-editor.js"].map((f) => fs.readFileSync(path.join(__dirname, "..", "..", f), "utf8")).join("\n");
    const catalog = JSON.parse(fs.readFileSync(path.join(__dirname, "..", "..", "nodes", "locales", "en-US", "ble-config.json"), "utf8")) as {
      "ble-config": Record<string, Record<string, string>>;
    };
    // t("scan.button"), node._("ble-config.serial.found"), data-i18n="ble-config.label.ms", ...
    const keys = new Set<string>();
    for (const m of html.matchAll(/\bt\("([\w.-]+)"/g)) keys.add(m[1]);
    for (const m of html.matchAll(/(?:_\(|data-i18n="(?:\[\w+\])?)"?ble-config\.([\w.-]+)"/g)) keys.add(m[1]);
    assert.ok(keys.size > 15, `found ${keys.size} keys`);
    for (const key of keys) {
      const [group, name] = key.split(".");
      assert.equal(typeof catalog["ble-config"][group]?.[name], "string", `ble-config.${key} is in the catalog`);
    }
  });
});

describe("the editor's shared script (resources/ble-instruments-editor.js)", () => {
  const ROOT = path.join(__dirname, "..", "..");
  const { name } = JSON.parse(fs.readFileSync(path.join(ROOT, "package.json"), "utf8")) as { name: string };
  const htmlFiles = fs.readdirSync(path.join(ROOT, "nodes")).filter((f) => f.endsWith(".html"));

  it("is loaded by every node's editor file from resources/<module name>/, where Node-RED serves the package's resources/", () => {
    assert.equal(htmlFiles.length, 9);
    for (const file of htmlFiles) {
      const html = fs.readFileSync(path.join(ROOT, "nodes", file), "utf8");
      const sources = [...html.matchAll(/<script\b[^>]*\bsrc="([^"]+)"/g)].map((m) => m[1]);
      // Relative: the editor prefixes its own root (httpAdminRoot) to it, and runs it before the file's other scripts.
      assert.deepEqual(sources, [`resources/${name}/ble-instruments-editor.js`], `${file} loads the shared script`);
      assert.doesNotMatch(html, /BleInstrumentsEditor\s*=/, `${file} does not define the shared script itself`);
    }
    assert.match(fs.readFileSync(path.join(ROOT, "resources", "ble-instruments-editor.js"), "utf8"), /window\.BleInstrumentsEditor = /);
  });
});

/**
 * The message catalogs (nodes/locales/en-US/<type>.json) against the code: every key the runtime or the editor asks
 * for is in the catalog, and every catalog key is asked for somewhere. The runtime side reads the sources a node
 * file loads (src/<type>.ts and its relative imports): `t("group.key")` and `RED._("<type>.group.key")` calls, and
 * keys built at run time (`t(\`errors.${error.key}\`)`), whose catalog keys count as used when the rest of the key
 * is a string literal in those sources (the error's or event's own code). The editor side reads nodes/<type>.html
 * and the shared editor script.
 */
describe("message catalogs: every key used exists, every key is used", () => {
  const ROOT = path.join(__dirname, "..", "..");
  const TYPES = ["ble-config", "heart-rate", "hioki-meter", "nus-ymodem-receive", "nus-ymodem-send", "ble-gatt-in", "ble-gatt-out", "ble-gatt-request", "ble-scan"];
  /** Device nodes word the shared helpers of src/red/ with their own catalog where those take the node's t(). */
  const DEVICE_TYPES = TYPES.filter((type) => type !== "ble-config");

  function flatten(value: unknown, prefix: string, into: Set<string>): Set<string> {
    if (typeof value === "string") into.add(prefix);
    else if (typeof value === "object" && value !== null) for (const [k, v] of Object.entries(value)) flatten(v, prefix ? `${prefix}.${k}` : k, into);
    return into;
  }

  function catalogKeys(type: string): Set<string> {
    const json = JSON.parse(fs.readFileSync(path.join(ROOT, "nodes", "locales", "en-US", `${type}.json`), "utf8")) as Record<string, unknown>;
    return flatten(json[type], "", new Set());
  }

  /** src/<type>.ts and every source it imports (values, not `import type`), transitively. */
  function reachable(type: string): string[] {
    const seen = new Set<string>();
    const queue = [path.join(ROOT, "src", `${type}.ts`)];
    while (queue.length > 0) {
      const file = queue.shift() as string;
      if (seen.has(file)) continue;
      seen.add(file);
      const source = fs.readFileSync(file, "utf8");
      for (const m of source.matchAll(/^import (?!type\b)[^;]*?from "(\.[^"]+)"|require\("(\.[^"]+)"\)/gm)) {
        const target = path.resolve(path.dirname(file), m[1] ?? m[2]);
        queue.push(fs.existsSync(`${target}.ts`) ? `${target}.ts` : path.join(target, "index.ts"));
      }
    }
    return [...seen];
  }

  interface Uses {
    /** Keys asked for literally. */
    literal: Set<string>;
    /** Prefixes of keys built at run time, and the string literals that may complete them. */
    prefixes: Set<string>;
    words: Set<string>;
  }

  function runtimeUses(type: string): Uses {
    const uses: Uses = { literal: new Set(), prefixes: new Set(), words: new Set() };
    const own = `${type}.`;
    // ble-config's catalog holds the texts every node shares (the BLE layer's problems): any node's sources use them.
    const files = type === "ble-config" ? [...new Set(TYPES.flatMap(reachable))] : reachable(type);
    for (const file of files) {
      const source = fs.readFileSync(file, "utf8");
      const sharedHelper = path.dirname(file) === path.join(ROOT, "src", "red");
      const wordsWithT = path.basename(file, ".ts") === type || (sharedHelper && DEVICE_TYPES.includes(type));
      for (const m of source.matchAll(/"([^"\\\n]*)"/g)) uses.words.add(m[1]);
      for (const m of source.matchAll(/RED\._\(\s*"([\w.-]+)"/g)) if (m[1].startsWith(own)) uses.literal.add(m[1].slice(own.length));
      for (const m of source.matchAll(/RED\._\(\s*`([\w.-]*)\$\{/g)) if (m[1].startsWith(own)) uses.prefixes.add(m[1].slice(own.length));
      if (type === "ble-config") {
        // The texts every node shares (src/red/status.ts's shared()): the ble-config catalog's, by namespaced key.
        for (const m of source.matchAll(/\bshared\(\s*"([\w.-]+)"/g)) uses.literal.add(m[1]);
        for (const m of source.matchAll(/\bshared\(\s*`([\w.-]*)\$\{/g)) uses.prefixes.add(m[1]);
        for (const m of source.matchAll(/\bshared\(\s*[^"`)]*\?\s*"([\w.-]+)"\s*:\s*"([\w.-]+)"/g)) uses.literal.add(m[1]).add(m[2]);
      }
      if (!wordsWithT) continue;
      for (const m of source.matchAll(/\bt\(\s*"([\w.-]+)"/g)) uses.literal.add(m[1]);
      for (const m of source.matchAll(/\bt\(\s*`([\w.-]*)\$\{/g)) uses.prefixes.add(m[1]);
      // t(cond ? "status.a" : "status.b"): the keys as literals of their own.
      for (const m of source.matchAll(/\bt\(\s*[^"`)]*\?\s*"([\w.-]+)"\s*:\s*"([\w.-]+)"/g)) uses.literal.add(m[1]).add(m[2]);
    }
    return uses;
  }

  /** Keys the editor asks for: data-i18n attributes, this._/node._ calls, and the shared script's t() (ble-config's). */
  function editorUses(type: string): Set<string> {
    const keys = new Set<string>();
    const own = `${type}.`;
    const files = [path.join(ROOT, "nodes", `${type}.html`)];
    const resources = path.join(ROOT, "resources");
    if (type === "ble-config" && fs.existsSync(resources)) for (const f of fs.readdirSync(resources)) files.push(path.join(resources, f));
    for (const file of files) {
      const text = fs.readFileSync(file, "utf8");
      for (const m of text.matchAll(/data-i18n="(?:\[\w+\])?([\w.:-]+)"/g)) if (m[1].startsWith(own)) keys.add(m[1].slice(own.length));
      // Not `def._("ble-config." + key)`: a key built from parts is the shared script's t(), read below.
      for (const m of text.matchAll(/\b_\(\s*"([\w.-]+)"(?!\s*\+)/g)) if (m[1].startsWith(own)) keys.add(m[1].slice(own.length));
      if (type === "ble-config" || file.startsWith(resources)) for (const m of text.matchAll(/\bt\(\s*"([\w.-]+)"/g)) keys.add(m[1]);
    }
    return keys;
  }

  for (const type of TYPES) {
    it(`${type}: every key the runtime and the editor ask for is in its catalog`, () => {
      const catalog = catalogKeys(type);
      const asked = [...runtimeUses(type).literal, ...editorUses(type)];
      assert.ok(asked.length > 5, `found ${asked.length} keys`);
      assert.deepEqual(
        asked.filter((key) => !catalog.has(key)),
        [],
        `keys missing from nodes/locales/en-US/${type}.json`,
      );
    });

    it(`${type}: every key in its catalog is used`, () => {
      const uses = runtimeUses(type);
      const editor = editorUses(type);
      const used = (key: string): boolean =>
        uses.literal.has(key) ||
        editor.has(key) ||
        uses.words.has(key) ||
        [...uses.prefixes].some((prefix) => key.startsWith(prefix) && uses.words.has(key.slice(prefix.length)));
      assert.deepEqual(
        [...catalogKeys(type)].filter((key) => !used(key)),
        [],
        `keys of nodes/locales/en-US/${type}.json that nothing uses`,
      );
    });
  }
});
