/**
 * The editor as a person uses it, in headless Chromium (Debian's package, driven by playwright-core): add a
 * heart-rate node from the palette, give it a simulator adapter, find the sensor with Scan, wire it to a debug
 * node, deploy, and watch it connect and its readings arrive in the debug sidebar. Screenshots of each step go
 * to test-artifacts/ (git-ignored; kept by CI as artifacts).
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import type { Browser, Locator, Page } from "playwright-core";
import { launchChromium } from "../support/browser";
import { startDemoNodeRed, type DemoNodeRed } from "../support/demo-node-red";

const ARTIFACTS = path.resolve(__dirname, "..", "..", "test-artifacts");
const SENSOR = { name: "44278-33", address: "d8:75:ba:00:00:01" };

/** The flow Node-RED starts with: one tab and the debug node the heart-rate node will be wired to. */
const FLOWS = [
  { id: "e2e-tab", type: "tab", label: "Flow 1", disabled: false, info: "" },
  {
    id: "e2e-debug",
    type: "debug",
    z: "e2e-tab",
    name: "heart beats",
    active: true,
    tosidebar: true,
    console: false,
    tostatus: false,
    complete: "payload",
    targetType: "msg",
    x: 560,
    y: 200,
    wires: [],
  },
];

/** Types into the palette's filter and waits until it shows just the one node type asked for. */
async function filterPalette(page: Page, text: string, type: string): Promise<Locator> {
  const search = page.locator("#red-ui-palette-search input");
  await search.fill("");
  await search.pressSequentially(text, { delay: 20 });
  // The filter runs on each key: wait for the last one, or the node may still move after it became visible.
  await page.waitForFunction((wanted) => {
    const shown = [...document.querySelectorAll<HTMLElement>(".red-ui-palette-node")].filter((e) => e.offsetParent !== null);
    return shown.length === 1 && shown[0].getAttribute("data-palette-type") === wanted;
  }, type);
  return page.locator(`.red-ui-palette-node[data-palette-type="${type}"]`);
}

/** Centre of an element on the page (SVG elements included, which Playwright's click positions handle less well). */
async function centre(locator: Locator): Promise<{ x: number; y: number }> {
  const box = await locator.boundingBox();
  assert.ok(box, "element is visible");
  return { x: box.x + box.width / 2, y: box.y + box.height / 2 };
}

/**
 * A mouse drag in small steps, as jQuery UI and the workspace need to see the pointer move. Hovering first waits
 * for the element to stop moving: the palette animates while its filter collapses categories, and a press on
 * where a node was a moment ago selects text instead of dragging it.
 */
async function drag(page: Page, source: Locator, to: { x: number; y: number }): Promise<void> {
  await source.hover();
  const from = await centre(source);
  await page.mouse.move(from.x, from.y);
  await page.mouse.down();
  await page.mouse.move(from.x + 10, from.y + 5, { steps: 5 });
  await page.mouse.move(to.x, to.y, { steps: 20 });
  await page.mouse.up();
}

describe("editor in a real browser (Node-RED + headless Chromium)", function () {
  this.timeout(180000);
  let red: DemoNodeRed | null = null;
  let browser: Browser | null = null;
  let page: Page;
  let step = 0;
  const shot = async (name: string): Promise<void> => {
    step++;
    await page.screenshot({ path: path.join(ARTIFACTS, `editor-${String(step).padStart(2, "0")}-${name}.png`) });
  };

  before(async () => {
    // Never skipped: without /usr/bin/chromium this fails, saying "apt-get install -y chromium".
    browser = await launchChromium();
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    red = await startDemoNodeRed({ flows: FLOWS, logFile: path.join(ARTIFACTS, "editor-node-red.log") });
    page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    page.setDefaultTimeout(20000);
  });

  after(async () => {
    await browser?.close();
    await red?.stop();
  });

  afterEach(async function () {
    if (this.currentTest?.state === "failed" && browser) await shot("failure").catch(() => undefined);
  });

  it("serves the editor's shared script from the package's resources/ folder, where each node's editor file loads it", async () => {
    const { name } = JSON.parse(fs.readFileSync(path.resolve(__dirname, "..", "..", "package.json"), "utf8")) as { name: string };
    const response = await fetch(`${red!.url}resources/${name}/ble-instruments-editor.js`);
    assert.equal(response.status, 200);
    assert.match(String(response.headers.get("content-type")), /javascript/);
    assert.match(await response.text(), /window\.BleInstrumentsEditor = /);
  });

  it("adds a heart-rate node from the palette, scans for the simulated sensor, deploys, and shows it connected with readings in the debug sidebar", async () => {
    const pageErrors: string[] = [];
    page.on("pageerror", (error) => pageErrors.push(error.message));
    await page.goto(red!.url);
    const paletteNode = page.locator('.red-ui-palette-node[data-palette-type="heart-rate"]');
    await paletteNode.waitFor({ state: "attached", timeout: 60000 });
    await page.locator('[id="e2e-debug"]').waitFor();

    // The palette: a category of our own; filter it down the way a user looking for the node would.
    await filterPalette(page, "heart", "heart-rate");
    assert.equal(await page.locator(".red-ui-palette-category", { has: paletteNode }).locator(".red-ui-palette-header").innerText(), "BLE instruments");
    await shot("palette");

    // Drag the node onto the workspace, left of the debug node.
    const debugNode = page.locator('[id="e2e-debug"]');
    const debugAt = await centre(debugNode.locator(".red-ui-flow-node").first());
    await drag(page, paletteNode, { x: debugAt.x - 320, y: debugAt.y });
    const hrId = await page.waitForFunction(() => {
      const found = (window as unknown as { RED: { nodes: { filterNodes(f: { type: string }): { id: string }[] } } }).RED.nodes.filterNodes({ type: "heart-rate" });
      return found.length === 1 ? found[0].id : null;
    });
    const hrNode = page.locator(`[id="${String(await hrId.jsonValue())}"]`);
    await hrNode.waitFor();
    await shot("dropped");

    // Open its dialog and add a simulator adapter with the config node's own dialog.
    await page.mouse.dblclick(...(Object.values(await centre(hrNode.locator(".red-ui-flow-node").first())) as [number, number]));
    await page.locator("#node-input-address").waitFor({ state: "attached" });
    const addAdapter = page.locator("#node-input-btn-ble-add");
    await addAdapter.click();
    const transport = page.locator("#node-config-input-transport");
    await transport.waitFor();
    // The platform's own Bluetooth (BlueZ on Linux, where the tests run), never invented readings by default.
    assert.equal(await transport.inputValue(), "bluez", "a new adapter defaults to BlueZ on Linux, not the simulator");
    assert.deepEqual(
      await transport.locator("option").evaluateAll((options) => options.map((o) => (o as HTMLOptionElement).value)),
      ["bluez", "simulator", "hci", "uart"],
      "Linux offers no native transport",
    );
    await transport.selectOption("simulator");
    await page.locator("#node-config-input-name").fill("bench simulator");
    await shot("adapter-dialog");
    await page.locator("#node-config-dialog-ok").click();
    await transport.waitFor({ state: "detached" });
    const bleSelect = page.locator("#node-input-ble");
    await page.waitForFunction(() => {
      const select = document.querySelector<HTMLSelectElement>("#node-input-ble");
      return !!select && select.value !== "" && select.value !== "_ADD_";
    });
    assert.match(await bleSelect.locator("option:checked").innerText(), /bench simulator/);

    // Scan: a spinner while it runs, then the sensors the node can use.
    const scan = page.locator(".ble-scan-button");
    const scanRequest = page.waitForRequest(/\/ble-instruments\/scan\?/);
    await scan.click();
    // The adapter is not deployed yet: the editor sends its settings, and the runtime opens it for the scan.
    assert.match((await scanRequest).url(), /[?&]transport=simulator(&|$)/);
    await page.locator(".ble-scan-status .fa-spinner").waitFor();
    await shot("scanning");
    const sensor = page.locator(`.ble-scan-device[data-address="${SENSOR.address}"]`);
    await sensor.waitFor({ timeout: 30000 });
    assert.equal(await page.locator(".ble-scan-device").count(), 1, "only heart-rate sensors are listed (not the meter or the file server)");
    assert.equal(await sensor.locator(".ble-scan-name").innerText(), SENSOR.name);
    assert.match(await sensor.locator(".ble-scan-rssi").innerText(), /^-\d+ dBm$/);
    assert.match(await sensor.innerText(), /Heart Rate/);
    await shot("scan-results");
    await sensor.click();
    assert.equal(await page.locator("#node-input-address").inputValue(), SENSOR.address);
    assert.equal(await page.locator("#node-input-deviceName").inputValue(), SENSOR.name);
    assert.ok(await scan.isEnabled(), "Scan can be pressed again");
    await shot("sensor-picked");
    await page.locator("#node-dialog-ok").click();
    await page.locator("#node-input-address").waitFor({ state: "detached" });
    // The label shows what the node is bound to.
    await hrNode.locator(".red-ui-flow-node-label", { hasText: SENSOR.name }).waitFor();

    // Wire its output to the debug node's input.
    await drag(page, hrNode.locator(".red-ui-flow-port-output"), await centre(debugNode.locator(".red-ui-flow-port-input")));
    await page.locator(".red-ui-flow-link-path").first().waitFor({ state: "attached" });
    await shot("wired");

    // Deploy, then watch the status turn green "connected" and readings arrive in the debug sidebar.
    await page.locator("#red-ui-header-button-deploy").click();
    await page.locator(".red-ui-notification", { hasText: /deployed/i }).first().waitFor();
    const status = hrNode.locator(".red-ui-flow-node-status-group");
    await status.locator(".red-ui-flow-node-status-label", { hasText: /^connected \(simulated\)$/ }).waitFor({ timeout: 30000 });
    assert.match(String(await status.locator(".red-ui-flow-node-status").getAttribute("class")), /red-ui-flow-node-status-dot-green/);
    await shot("connected");

    // The editor's own call: Node-RED 4 and 5 lay the sidebar's tab buttons out differently.
    await page.evaluate(() => (window as unknown as { RED: { sidebar: { show(id: string): void } } }).RED.sidebar.show("debug"));
    const message = page.locator(".red-ui-debug-msg", { has: page.locator(".red-ui-debug-msg-name", { hasText: "heart beats" }) }).first();
    await message.waitFor({ timeout: 30000 });
    const payload = (await message.locator(".red-ui-debug-msg-payload").innerText()).trim();
    assert.ok(["45", "46", "47"].includes(payload), `a heart rate of the built-in sensor in the debug sidebar, got ${JSON.stringify(payload)}`);
    await shot("debug-sidebar");
    assert.deepEqual(pageErrors, [], "no script errors in the editor");
  });

  it("scans on the deployed adapter for a HIOKI meter, shows only the chosen transport's fields, lists serial ports, and shows a scan error", async () => {
    const pageErrors: string[] = [];
    page.on("pageerror", (error) => pageErrors.push(error.message));
    const paletteNode = await filterPalette(page, "hioki", "hioki-meter");
    const chart = await page.locator("#red-ui-workspace-chart").boundingBox();
    assert.ok(chart);
    await drag(page, paletteNode, { x: chart.x + 200, y: chart.y + 400 });
    const meterId = await page.waitForFunction(() => {
      const found = (window as unknown as { RED: { nodes: { filterNodes(f: { type: string }): { id: string }[] } } }).RED.nodes.filterNodes({ type: "hioki-meter" });
      return found.length === 1 ? found[0].id : null;
    });
    const meterNode = page.locator(`[id="${String(await meterId.jsonValue())}"]`);
    await page.mouse.dblclick(...(Object.values(await centre(meterNode.locator(".red-ui-flow-node").first())) as [number, number]));
    await page.locator("#node-input-address").waitFor({ state: "attached" });
    // The adapter deployed by the previous test: the scan runs on that running adapter.
    await page.locator("#node-input-ble").selectOption({ label: "bench simulator" });
    const scanRequest = page.waitForRequest(/\/ble-instruments\/scan\?/);
    await page.locator(".ble-scan-button").click();
    assert.doesNotMatch((await scanRequest).url(), /transport=/, "a deployed adapter is named by its id alone");
    const meter = page.locator('.ble-scan-device[data-address="a4:9e:69:00:00:01"]');
    await meter.waitFor({ timeout: 30000 });
    assert.equal(await page.locator(".ble-scan-device").count(), 1, "only the Z3210 is listed");
    assert.equal(await meter.locator(".ble-scan-name").innerText(), "Z3210V2.10:DT4261#000000001");
    await shot("hioki-scan");

    // A new adapter: each transport shows its own fields only.
    await page.locator("#node-input-btn-ble-add").click();
    const transport = page.locator("#node-config-input-transport");
    await transport.waitFor();
    const visible = async (): Promise<Record<string, boolean>> => ({
      bluezAdapter: await page.locator("#node-config-input-bluezAdapter").isVisible(),
      hciDevice: await page.locator("#node-config-input-hciDevice").isVisible(),
      uartPort: await page.locator("#node-config-input-uartPort").isVisible(),
      uartBaudRate: await page.locator("#node-config-input-uartBaudRate").isVisible(),
      simScenario: await page.locator("#node-config-input-simScenario").isVisible(),
    });
    assert.deepEqual(await visible(), { bluezAdapter: true, hciDevice: false, uartPort: false, uartBaudRate: false, simScenario: false });
    await transport.selectOption("hci");
    assert.deepEqual(await visible(), { bluezAdapter: false, hciDevice: true, uartPort: false, uartBaudRate: false, simScenario: false });
    await transport.selectOption("uart");
    assert.deepEqual(await visible(), { bluezAdapter: false, hciDevice: false, uartPort: true, uartBaudRate: true, simScenario: false });
    // The serial ports of the machine are offered (this one may have none); an empty port is marked invalid.
    await page.locator("#node-config-uartPort-status", { hasText: /serial port/ }).waitFor();
    const port = page.locator("#node-config-input-uartPort");
    assert.match(String(await port.getAttribute("class")), /input-error/, "a missing serial port is marked red");
    await shot("adapter-uart");
    await port.pressSequentially("/dev/ttyUSB9", { delay: 10 });
    await page.waitForFunction(() => !document.querySelector("#node-config-input-uartPort")!.classList.contains("input-error"));
    const baud = page.locator("#node-config-input-uartBaudRate");
    await baud.fill("fast");
    await baud.dispatchEvent("change");
    assert.match(String(await baud.getAttribute("class")), /input-error/, "a baud rate that is not a number is marked red");
    await baud.fill("1000000");
    await baud.dispatchEvent("change");

    // Back to the simulator, with a scenario file that does not exist: the scan reports why it failed.
    await transport.selectOption("simulator");
    await page.locator("#node-config-input-simScenario").fill("/nonexistent/scenario.json");
    await page.locator("#node-config-dialog-ok").click();
    await transport.waitFor({ state: "detached" });
    await page.locator(".ble-scan-button").click();
    const error = page.locator(".ble-scan-status.ble-scan-error");
    await error.waitFor({ timeout: 30000 });
    // The setting is named, never its value (the path could come from an environment variable).
    assert.match(await error.innerText(), /scan failed: simScenario: cannot be read \(ENOENT/);
    await shot("scan-error");
    await page.locator("#node-dialog-cancel").click();
    assert.deepEqual(pageErrors, [], "no script errors in the editor");
  });

  it("marks a ble-scan node's bind-key list red while a line is wrong, naming the line and never the key", async () => {
    type EditorWindow = {
      RED: {
        view: { importNodes(nodes: object[]): void };
        nodes: { node(id: string): unknown; getType(type: string): { credentials: { bindKeys: { validate(v: string, opt: object): true | string } } } };
        editor: { edit(node: unknown): void };
      };
    };
    const key = "231d39c1d7cc1ab1aee224cd096db932";
    // The editor is open when the tests before this one ran; alone, this test opens it.
    if (!(await page.evaluate(() => "RED" in window))) {
      await page.goto(red!.url);
      await page.locator('[id="e2e-debug"]').waitFor({ timeout: 60000 });
    }
    await page.evaluate(() => {
      const { RED } = window as unknown as EditorWindow;
      RED.view.importNodes([{ id: "e2e-scan", type: "ble-scan", z: "e2e-tab", name: "bthome", x: 200, y: 400, wires: [[]] }]);
      RED.editor.edit(RED.nodes.node("e2e-scan"));
    });
    const keys = page.locator("#node-input-bindKeys");
    await keys.waitFor();
    const validity = async (text: string): Promise<boolean> => {
      await keys.fill(text);
      await keys.dispatchEvent("change");
      return !/input-error/.test(String(await keys.getAttribute("class")));
    };
    assert.equal(await validity(`# kitchen\nc0:b7:40:00:00:02 = ${key}`), true, "a good list with a comment");
    assert.equal(await validity(`c0:b7:40:00:00:02 = ${key}\nC0-B7-40-00-00-03 = ${key}`), false, "an address with dashes");
    assert.equal(await validity(`c0:b7:40:00:00:02 = ${key.slice(1)}`), false, "a key of 31 digits");
    assert.equal(await validity(`c0:b7:40:00:00:02 = ${key}\nC0:B7:40:00:00:02 = ${key}`), false, "the same address twice");
    assert.equal(await validity(`c0:b7:40:00:00:02 ${key}`), false, "no '='");
    assert.equal(await validity("__PWRD__"), true, "a stored list, not shown again");
    assert.equal(await validity(""), true, "none");
    const message = await page.evaluate(
      (k) => (window as unknown as EditorWindow).RED.nodes.getType("ble-scan").credentials.bindKeys.validate(`# kitchen\nc0:b7:40:00:00:02 = ${k}x`, {}),
      key,
    );
    assert.equal(message, "Bind keys, line 2: the key must be 32 hex digits");
    await shot("scan-bind-keys");
    await page.locator("#node-dialog-cancel").click();
  });
});
