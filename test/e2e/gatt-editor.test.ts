/**
 * The generic GATT nodes' dialogs in headless Chromium: the Nordic UART preset fills the NUS service and the
 * characteristic each node needs (TX for ble-gatt-in, with utf8 and a split at \n; RX for ble-gatt-out), the rows
 * that do not apply are hidden, a UUID the runtime would refuse is marked, and what the dialog stores is what the
 * runtime reads.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import type { Browser, Page } from "playwright-core";
import { launchChromium } from "../support/browser";
import { SIG_CHARACTERISTICS } from "../../src/protocol/sig-decoders";
import { startDemoNodeRed, type DemoNodeRed } from "../support/demo-node-red";

const ARTIFACTS = path.resolve(__dirname, "..", "..", "test-artifacts");
const NUS_SERVICE = "6e400001-b5a3-f393-e0a9-e50e24dcca9e";

const FLOWS = [
  { id: "gatt-tab", type: "tab", label: "Flow 1", disabled: false, info: "" },
  { id: "gatt-sim", type: "ble-config", name: "sim", transport: "simulator", simScenario: "" },
  { id: "gatt-in", type: "ble-gatt-in", z: "gatt-tab", name: "", ble: "gatt-sim", address: "", addressType: "str", deviceName: "", service: "180f", characteristic: "2a19", x: 200, y: 100, wires: [[]] },
  { id: "gatt-out", type: "ble-gatt-out", z: "gatt-tab", name: "", ble: "gatt-sim", address: "", addressType: "str", deviceName: "", service: "180f", characteristic: "2a19", x: 200, y: 200, wires: [] },
  { id: "gatt-request", type: "ble-gatt-request", z: "gatt-tab", name: "", ble: "gatt-sim", address: "", addressType: "str", deviceName: "", service: "ccc0", characteristic: "ccc1", x: 200, y: 300, wires: [[]] },
  { id: "gatt-request-bare", type: "ble-gatt-request", z: "gatt-tab", ble: "gatt-sim", service: "ccc0", characteristic: "ccc1", x: 200, y: 400, wires: [[]] },
];

interface EditorGlobals {
  RED: { nodes: { node(id: string): Record<string, unknown> }; editor: { edit(node: unknown): void } };
}

describe("generic GATT nodes' dialogs in a real browser (Nordic UART preset)", function () {
  this.timeout(120000);
  let red: DemoNodeRed | null = null;
  let browser: Browser | null = null;
  let page: Page;

  before(async () => {
    browser = await launchChromium();
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    red = await startDemoNodeRed({ flows: FLOWS, logFile: path.join(ARTIFACTS, "gatt-editor-node-red.log") });
    page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    page.setDefaultTimeout(20000);
    await page.goto(red.url);
    await page.locator('[id="gatt-in"]').waitFor({ timeout: 60000 });
  });

  after(async () => {
    await browser?.close();
    await red?.stop();
  });

  afterEach(async function () {
    if (this.currentTest?.state === "failed") await page.screenshot({ path: path.join(ARTIFACTS, "gatt-editor-failure.png") }).catch(() => undefined);
  });

  async function edit(id: string): Promise<void> {
    await page.evaluate((nodeId) => {
      const { RED } = window as unknown as EditorGlobals;
      RED.editor.edit(RED.nodes.node(nodeId));
    }, id);
    await page.locator("#node-input-service").waitFor();
  }

  async function done(): Promise<void> {
    await page.locator("#node-dialog-ok").click();
    await page.locator("#node-input-service").waitFor({ state: "detached" });
  }

  const stored = (id: string): Promise<Record<string, unknown>> =>
    page.evaluate((nodeId) => {
      const n = (window as unknown as EditorGlobals).RED.nodes.node(nodeId);
      return { service: n.service, characteristic: n.characteristic, mode: n.mode, format: n.format, split: n.split, delimiter: n.delimiter, keepDelimiter: n.keepDelimiter, valid: n.valid };
    }, id);

  it("ble-gatt-in: the preset fills NUS TX, utf8 and a split at \\n, and shows the delimiter rows", async () => {
    const pageErrors: string[] = [];
    page.on("pageerror", (error) => pageErrors.push(error.message));
    await edit("gatt-in");
    assert.equal(await page.locator("#node-input-format option").count(), 16, "buffer, utf8, hex, 12 numeric formats, sig");
    assert.equal(await page.locator("#node-input-delimiter").isVisible(), false, "no delimiter row without split at a delimiter");
    assert.equal(await page.locator("#node-input-interval").isVisible(), false, "no interval row in notify mode");
    assert.equal(await page.locator("#node-input-idleSeconds").isVisible(), false, "no idle time while the connection is kept");
    assert.equal(await page.locator(".ble-explore-row").count(), 1, "a row for the Explore button");
    await page.locator(".ble-nus-preset").click();
    assert.equal(await page.locator("#node-input-delimiter").isVisible(), true);
    await page.screenshot({ path: path.join(ARTIFACTS, "gatt-editor-in-nus.png") });
    await done();
    assert.deepEqual(await stored("gatt-in"), {
      service: NUS_SERVICE,
      characteristic: "6e400003-b5a3-f393-e0a9-e50e24dcca9e",
      mode: "notify",
      format: "utf8",
      split: "delimiter",
      delimiter: "\\n",
      keepDelimiter: false,
      valid: true,
    });
    assert.deepEqual(pageErrors, []);
  });

  it("ble-gatt-out: the preset fills NUS RX; a UUID the runtime would refuse is marked invalid", async () => {
    await edit("gatt-out");
    assert.equal(await page.locator("#node-input-format option").count(), 15, "auto, utf8, hex, 12 numeric formats");
    await page.locator(".ble-nus-preset").click();
    assert.equal(await page.locator("#node-input-characteristic").inputValue(), "6e400002-b5a3-f393-e0a9-e50e24dcca9e");
    await page.locator("#node-input-connection").selectOption("idle");
    assert.equal(await page.locator("#node-input-idleSeconds").isVisible(), true, "the idle time shows for connection idle");
    await done();
    const out = await stored("gatt-out");
    assert.equal(out.service, NUS_SERVICE);
    assert.equal(out.valid, true);

    await edit("gatt-out");
    await page.locator("#node-input-characteristic").fill("2a1");
    await done();
    assert.equal((await stored("gatt-out")).valid, false, "a 3-digit UUID is not one");
  });

  it("a delimiter the runtime would refuse is marked invalid (gatt in with split at a delimiter, gatt request)", async () => {
    await edit("gatt-in");
    await page.locator("#node-input-split").selectOption("delimiter");
    await page.locator("#node-input-delimiter").fill("\\q");
    await done();
    assert.equal((await stored("gatt-in")).valid, false, "\\q is no escape");

    await edit("gatt-in");
    await page.locator("#node-input-delimiter").fill("0x0d0a");
    await done();
    assert.equal((await stored("gatt-in")).valid, true, "bytes in hex");

    await edit("gatt-in");
    await page.locator("#node-input-delimiter").fill("\\q");
    await page.locator("#node-input-split").selectOption("none");
    await done();
    assert.equal((await stored("gatt-in")).valid, true, "the delimiter is not used without split at a delimiter");

    await edit("gatt-request");
    await page.locator("#node-input-delimiter").fill("0x0d0");
    await done();
    assert.equal((await stored("gatt-request")).valid, false, "0x0d0 is not whole bytes");

    await edit("gatt-request");
    await page.locator("#node-input-delimiter").fill("\\r\\n");
    await done();
    assert.equal((await stored("gatt-request")).valid, true);
  });

  it("ble-gatt-request written without response and connection shows their defaults, as the runtime reads it", async () => {
    await edit("gatt-request-bare");
    assert.equal(await page.locator("#node-input-response").inputValue(), "auto");
    assert.equal(await page.locator("#node-input-connection").inputValue(), "keep");
    await page.locator("#node-dialog-cancel").click();
    await page.locator("#node-input-service").waitFor({ state: "detached" });
  });

  it("format sig for a characteristic without a SIG decoder is marked invalid, as the runtime refuses it", async () => {
    await edit("gatt-in");
    await page.locator("#node-input-characteristic").fill("aaa1");
    await page.locator("#node-input-format").selectOption("sig");
    await done();
    assert.equal((await stored("gatt-in")).valid, false, "aaa1 has no SIG definition");

    await edit("gatt-in");
    await page.locator("#node-input-characteristic").fill("0x2A19");
    await done();
    assert.equal((await stored("gatt-in")).valid, true, "Battery Level, in any spelling");

    await edit("gatt-in");
    await page.locator("#node-input-characteristic").fill("00002a37-0000-1000-8000-00805f9b34fb");
    await done();
    assert.equal((await stored("gatt-in")).valid, true, "Heart Rate Measurement in its 128-bit form");

    await edit("gatt-request-bare");
    await page.locator("#node-input-format").selectOption("sig");
    await done();
    assert.equal((await stored("gatt-request-bare")).valid, false, "the reply characteristic ccc1 has no SIG definition");

    await edit("gatt-request-bare");
    await page.locator("#node-input-replyCharacteristic").fill("2a6e");
    await done();
    assert.equal((await stored("gatt-request-bare")).valid, true, "the reply comes from Temperature");
  });

  it("the editor knows the same SIG decoders as the runtime", () => {
    const script = fs.readFileSync(path.join(__dirname, "..", "..", "resources", "ble-instruments-editor.js"), "utf8");
    const list = /var SIG_CHARACTERISTICS = (\[[^\]]*\]);/.exec(script);
    assert.ok(list, "the editor's list");
    assert.deepEqual(JSON.parse(list[1]), [...SIG_CHARACTERISTICS]);
  });

  it("a setting that is hidden and unused (idle time of a kept connection, quiet time without that split) does not make the node invalid", async () => {
    await edit("gatt-out");
    await page.locator("#node-input-characteristic").fill("6e400002-b5a3-f393-e0a9-e50e24dcca9e");
    await page.locator("#node-input-connection").selectOption("idle");
    await page.locator("#node-input-idleSeconds").fill("0");
    await page.locator("#node-input-connection").selectOption("keep");
    await done();
    assert.equal((await stored("gatt-out")).valid, true, "keep connected: the runtime does not read the idle time");

    await edit("gatt-out");
    await page.locator("#node-input-connection").selectOption("idle");
    await done();
    assert.equal((await stored("gatt-out")).valid, false, "connect when used: an idle time of 0 s is refused");

    await edit("gatt-in");
    await page.locator("#node-input-characteristic").fill("2a19");
    await page.locator("#node-input-split").selectOption("quiet");
    await page.locator("#node-input-quietMs").fill("0");
    await page.locator("#node-input-split").selectOption("none");
    await done();
    assert.equal((await stored("gatt-in")).valid, true, "no split after a quiet time: the runtime does not read the quiet time");

    await edit("gatt-in");
    await page.locator("#node-input-mode").selectOption("read");
    await page.locator("#node-input-interval").fill("-1");
    await page.locator("#node-input-mode").selectOption("notify");
    await done();
    assert.equal((await stored("gatt-in")).valid, true, "notify mode: the runtime does not read the interval");

    await edit("gatt-in");
    await page.locator("#node-input-split").selectOption("delimiter");
    await page.locator("#node-input-delimiter").fill("\\q");
    await page.locator("#node-input-mode").selectOption("read");
    await page.locator("#node-input-interval").fill("0");
    await done();
    assert.equal((await stored("gatt-in")).valid, true, "read mode: the runtime does not split, nor read the delimiter");
  });
});
