/**
 * Explore as a person uses it, in headless Chromium (Debian's package, driven by playwright-core): open a deployed
 * ble-gatt-in node's dialog, explore the device it is connected to, then find the simulated Env Sensor with Scan,
 * press Explore, read its services and characteristics with their SIG names, and click one to fill the dialog's
 * service, characteristic and mode.
 * Screenshots of each step go to test-artifacts/ (git-ignored).
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import type { Browser, Page } from "playwright-core";
import { launchChromium } from "../support/browser";
import { startDemoNodeRed, type DemoNodeRed } from "../support/demo-node-red";

const ARTIFACTS = path.resolve(__dirname, "..", "..", "test-artifacts");
/** The built-in scenario's environmental sensor (src/sim/scenario.ts DEFAULT_SCENARIO, kind "gatt"). */
const ENV_SENSOR = { name: "Env Sensor", address: "c0:ff:ee:00:00:01" };

/** A simulator adapter and a ble-gatt-in node reading the heart-rate sensor's battery, whose dialog the test opens. */
const FLOWS = [
  { id: "e2e-tab", type: "tab", label: "Flow 1", disabled: false, info: "" },
  { id: "e2e-sim", type: "ble-config", name: "bench simulator", transport: "simulator", simScenario: "" },
  {
    id: "e2e-gatt",
    type: "ble-gatt-in",
    z: "e2e-tab",
    name: "",
    ble: "e2e-sim",
    address: "d8:75:ba:00:00:01",
    addressType: "str",
    deviceName: "",
    service: "180f",
    characteristic: "2a19",
    mode: "read",
    interval: 0,
    format: "buffer",
    x: 300,
    y: 200,
    wires: [[]],
  },
];

describe("Explore in a real browser (Node-RED + headless Chromium)", function () {
  this.timeout(180000);
  let red: DemoNodeRed | null = null;
  let browser: Browser | null = null;
  let page: Page;
  let step = 0;
  const shot = async (name: string): Promise<void> => {
    step++;
    await page.screenshot({ path: path.join(ARTIFACTS, `explore-${String(step).padStart(2, "0")}-${name}.png`) });
  };

  before(async () => {
    // Never skipped: without /usr/bin/chromium this fails, saying "apt-get install -y chromium".
    browser = await launchChromium();
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    red = await startDemoNodeRed({ flows: FLOWS, logFile: path.join(ARTIFACTS, "explore-node-red.log") });
    page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    page.setDefaultTimeout(20000);
  });

  after(async () => {
    await browser?.close();
    await red?.stop();
  });

  afterEach(async function () {
    if (this.currentTest?.state === "failed" && browser) await shot("failure").catch(() => undefined);
  });

  it("explores the device a deployed node is connected to, then scans for another, explores it (SIG names listed), and a click fills service, characteristic and mode", async () => {
    const pageErrors: string[] = [];
    page.on("pageerror", (error) => pageErrors.push(error.message));
    await page.goto(red!.url);
    const node = page.locator('[id="e2e-gatt"]');
    await node.waitFor({ timeout: 60000 });
    const box = await node.locator(".red-ui-flow-node").first().boundingBox();
    assert.ok(box, "the ble-gatt-in node is on the workspace");
    await page.mouse.dblclick(box.x + box.width / 2, box.y + box.height / 2);
    await page.locator("#node-input-service").waitFor();
    const exploreButton = page.locator(".ble-explore-button");
    assert.equal((await exploreButton.innerText()).trim(), "Explore");
    assert.ok(await exploreButton.isEnabled(), "the node names a device: Explore can be pressed");

    // The device the deployed node is connected to: its table comes from that connection, which stays up.
    const status = node.locator(".red-ui-flow-node-status-label", { hasText: /^connected \(simulated\)$/ });
    await status.waitFor({ timeout: 30000 });
    await exploreButton.click();
    await page.locator('.ble-explore-service[data-uuid="180d"]').waitFor({ timeout: 30000 });
    assert.equal(await page.locator('.ble-explore-service[data-uuid="180d"]').innerText(), "Heart Rate (180d)");
    assert.equal(await page.locator('.ble-explore-characteristic[data-service="180f"][data-uuid="2a19"] .ble-explore-name').innerText(), "Battery Level (2a19)");
    await shot("explored-connected-device");
    assert.ok(await status.isVisible(), "the node stayed connected");

    // No device named: nothing to explore.
    await page.evaluate(() => {
      const $ = (window as unknown as { $: (s: string) => { typedInput(m: string, v: string): void } }).$;
      $("#node-input-address").typedInput("value", "");
    });
    assert.ok(await exploreButton.isDisabled(), "no address and no name: Explore is disabled");
    await shot("no-device");

    // Scan, and pick the Env Sensor: Explore is enabled again.
    await page.locator(".ble-scan-button").click();
    const sensor = page.locator(`.ble-scan-device[data-address="${ENV_SENSOR.address}"]`);
    await sensor.waitFor({ timeout: 30000 });
    await sensor.click();
    assert.equal(await page.locator("#node-input-address").inputValue(), ENV_SENSOR.address);
    assert.ok(await exploreButton.isEnabled(), "a picked device can be explored");
    await shot("picked");

    // Explore: a spinner, then the table.
    const request = page.waitForRequest(/\/ble-instruments\/explore\?/);
    await exploreButton.click();
    const url = new URL((await request).url());
    assert.equal(url.searchParams.get("address"), ENV_SENSOR.address);
    assert.equal(url.searchParams.get("config"), "e2e-sim");
    const temperature = page.locator('.ble-explore-characteristic[data-service="181a"][data-uuid="2a6e"]');
    await temperature.waitFor({ timeout: 30000 });
    const services = await page.locator(".ble-explore-service").evaluateAll((items) => items.map((i) => i.textContent));
    assert.deepEqual(services, ["Generic Access (1800)", "Generic Attribute (1801)", "Battery (180f)", "Environmental Sensing (181a)"]);
    assert.equal(await temperature.locator(".ble-explore-name").innerText(), "Temperature (2a6e)");
    assert.equal(await temperature.locator(".ble-explore-properties").innerText(), "read, notify");
    assert.match(await temperature.locator(".ble-explore-format").innerText(), /format sig/);
    await shot("explored");

    // A click fills the dialog and closes the list.
    await temperature.click();
    assert.equal(await page.locator("#node-input-service").inputValue(), "181a");
    assert.equal(await page.locator("#node-input-characteristic").inputValue(), "2a6e");
    assert.equal(await page.locator("#node-input-mode").inputValue(), "notify");
    assert.equal(await page.locator(".ble-explore-characteristic").count(), 0, "the list is closed");
    assert.equal(await page.locator(".ble-explore-status").innerText(), "using Temperature (2a6e) of service Environmental Sensing (181a)");
    await shot("filled-notify");

    // A characteristic that only reads: mode "read".
    await exploreButton.click();
    const deviceName = page.locator('.ble-explore-characteristic[data-service="1800"][data-uuid="2a00"]');
    await deviceName.waitFor({ timeout: 30000 });
    await deviceName.press("Enter");
    assert.equal(await page.locator("#node-input-service").inputValue(), "1800");
    assert.equal(await page.locator("#node-input-characteristic").inputValue(), "2a00");
    assert.equal(await page.locator("#node-input-mode").inputValue(), "read");
    await shot("filled-read");

    await page.locator("#node-dialog-cancel").click();
    await page.locator("#node-input-service").waitFor({ state: "detached" });
    assert.deepEqual(pageErrors, [], "no script errors in the editor");
  });
});
