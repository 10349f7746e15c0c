/**
 * The demo as a person sees it: Node-RED started the way `npm start` starts it (this package and Dashboard 2.0 in
 * the user directory, examples/demo.json on the simulator), its editor and dashboard opened in headless Chromium:
 * the editor opens with nothing over it and the demo described for its user, the heart-rate chart receives
 * points, the meter's chart breaks off while the meter is switched off. Screenshots go to test-artifacts/
 * (git-ignored).
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import type { Browser, Page } from "playwright-core";
import { exposeDashboardCharts, launchChromium, type DashboardChartSeries } from "../support/browser";
import { readExample, startDemoNodeRed, type DemoNodeRed } from "../support/demo-node-red";

const ARTIFACTS = path.resolve(__dirname, "..", "..", "test-artifacts");
/** The heart-rate chart of examples/demo.json. */
const HR_CHART = "demo-hr-chart";
/** The meter's chart of examples/demo.json, and its series (the meter node's topic). */
const METER_CHART = "demo-meter-chart";
const METER_SERIES = "DT4261";
/** The built-in sensor's readings (src/sim/scenario.ts DEFAULT_SCENARIO). */
const BUILT_IN_BPM = [45, 46, 47];

/** The chart's series, read from its ECharts instance in the page; null until the chart has mounted. */
function chartSeries(page: Page, id: string): Promise<DashboardChartSeries[] | null> {
  return page.evaluate((chartId) => {
    const chart = window.uiCharts?.[chartId];
    return chart ? chart.chart.getOption().series.map((s) => ({ name: String(s.name), data: s.data })) : null;
  }, id);
}

async function pointCount(page: Page): Promise<number> {
  const series = await chartSeries(page, HR_CHART);
  return series ? series.reduce((n, s) => n + s.data.length, 0) : 0;
}

/** Polls until `predicate` holds; fails with `describe()` of the last state seen. */
async function waitFor(predicate: () => Promise<boolean>, timeoutMs: number, describe: () => Promise<string>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await predicate()) return;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  assert.fail(`not within ${timeoutMs} ms: ${await describe()}`);
}

/** The editor's globals this test reads. */
interface EditorWindow {
  RED?: { nodes?: { eachNode(cb: () => void): void; node(id: string): unknown }; editor: { edit(node: unknown): void } };
}

describe("demo in a real browser (npm start's Node-RED + headless Chromium)", function () {
  this.timeout(120000);
  let red: DemoNodeRed | null = null;
  let browser: Browser | null = null;

  before(async () => {
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    browser = await launchChromium();
    red = await startDemoNodeRed({ flows: readExample("demo.json"), logFile: path.join(ARTIFACTS, "dashboard-node-red.log") });
  });

  after(async () => {
    await browser?.close();
    await red?.stop();
  });

  it("opens the editor with nothing over it, the demo described for its user, and the file server's Mode shown whole", async () => {
    const page = await browser!.newPage({ viewport: { width: 1400, height: 900 } });
    page.setDefaultTimeout(20000);
    const errors: string[] = [];
    page.on("pageerror", (error) => errors.push(error.message));
    try {
      await page.goto(red!.url);
      // The editor has loaded the flows and taken its loading bar down: what it shows over itself on a first
      // start (Node-RED 4.1's question about update notifications) is in the page by then.
      await page.waitForFunction(() => {
        let count = 0;
        (window as EditorWindow).RED?.nodes?.eachNode(() => count++);
        const loading = document.querySelector("#red-ui-loading-progress");
        return count > 0 && !!loading && getComputedStyle(loading).display === "none";
      });
      const dialogs = await page.locator(".red-ui-dialog h2").allInnerTexts();
      assert.deepEqual(dialogs, [], "no dialog over the editor");
      assert.equal(await page.locator(".red-ui-shade:visible, .red-ui-tourGuide-shade:visible").count(), 0, "nothing shades the editor");

      // The demo's description in the info sidebar: what there is to see and try, with a working dashboard link.
      const description = page.locator(".red-ui-sidebar-info .red-ui-help").first();
      await description.getByText(/Download log\.bin/).first().waitFor();
      const text = await description.innerText();
      assert.doesNotMatch(text, /npm start|noble|\bHCI\b|seed|conn_multiple|repository|src\//i, "the description speaks to a user, not to a developer of the package");
      for (const seen of [/heart rate/i, /HIOKI/, /switch(es|ed)? (itself )?off/i, /Download log\.bin/]) assert.match(text, seen);
      const links = await description.locator("a").evaluateAll((as) => as.map((a) => (a as HTMLAnchorElement).href));
      assert.ok(links.includes(`${red!.url}dashboard`), `a link to this Node-RED's dashboard, got ${JSON.stringify(links)}`);
      await page.screenshot({ path: path.join(ARTIFACTS, "demo-editor.png") });

      // The file server's dialog: the Mode drop-down is as wide as it needs to be to show each choice whole.
      await page.evaluate(() => {
        const RED = (window as EditorWindow).RED!;
        RED.editor.edit(RED.nodes!.node("demo-dl"));
      });
      const mode = page.locator("#node-input-mode");
      await mode.waitFor();
      await mode.selectOption("G");
      const fit = await mode.evaluate((select: HTMLSelectElement) => {
        // A copy left to size itself: as wide as its longest choice, arrow and padding included.
        const free = select.cloneNode(true) as HTMLSelectElement;
        free.removeAttribute("id");
        free.style.width = "auto";
        free.style.maxWidth = "none";
        select.parentElement!.appendChild(free);
        const needed = free.offsetWidth;
        free.remove();
        return { needed, has: select.offsetWidth, right: select.getBoundingClientRect().right, rowRight: select.parentElement!.getBoundingClientRect().right };
      });
      assert.ok(fit.has >= fit.needed, `the Mode drop-down needs ${fit.needed} px to show its choices and has ${fit.has} px`);
      assert.ok(fit.right <= fit.rowRight, "the Mode drop-down stays inside the dialog");
      await page.screenshot({ path: path.join(ARTIFACTS, "demo-file-server-dialog.png") });
      await page.locator("#node-dialog-cancel").click();
      assert.deepEqual(errors, [], "no script errors in the editor");
    } finally {
      await page.close();
    }
  });

  it("opens the dashboard page and sees the heart-rate chart receive points", async () => {
    const page = await browser!.newPage({ viewport: { width: 1280, height: 900 } });
    page.setDefaultTimeout(20000);
    await exposeDashboardCharts(page);
    // The other side of the same thing: chart messages arriving over the dashboard's socket.io connection.
    let chartFrames = 0;
    page.on("websocket", (ws) => {
      ws.on("framereceived", ({ payload }) => {
        if (typeof payload === "string" && payload.includes(`"msg-input:${HR_CHART}"`)) chartFrames++;
      });
    });
    const errors: string[] = [];
    page.on("pageerror", (error) => errors.push(error.message));

    try {
      await page.goto(`${red!.url}dashboard`);
      // /dashboard opens the first page: the demo's.
      await page.locator(`#nrdb-ui-widget-${HR_CHART} canvas`).first().waitFor({ state: "visible" });
      await page.getByText("Heart rate", { exact: true }).first().waitFor();

      await waitFor(
        async () => (await pointCount(page)) > 0,
        20000,
        async () => `the chart never got a point (chart ${JSON.stringify(await chartSeries(page, HR_CHART))}, page errors ${JSON.stringify(errors)})`,
      );
      const first = await pointCount(page);
      const framesBefore = chartFrames;
      // The sensor measures once a second: three more points within 15 s, each a frame on the socket.
      await waitFor(
        async () => (await pointCount(page)) >= first + 3,
        15000,
        async () => `points stayed at ${await pointCount(page)} (from ${first}); ${chartFrames - framesBefore} chart frames arrived`,
      );
      assert.ok(chartFrames - framesBefore >= 3, `the points came over the dashboard's websocket (${chartFrames - framesBefore} frames)`);

      const series = (await chartSeries(page, HR_CHART))!;
      assert.equal(series.length, 1, "one series: the heart-rate node's topic");
      assert.equal(series[0].name, "heart rate");
      const points = series[0].data;
      for (const [time, bpm] of points) {
        assert.ok(bpm !== null && BUILT_IN_BPM.includes(bpm), `bpm ${bpm} is one the simulated sensor sends`);
        assert.ok(Math.abs(time - Date.now()) < 10 * 60 * 1000, `point time ${new Date(time).toISOString()} is recent`);
      }
      for (let i = 1; i < points.length; i++) assert.ok(points[i][0] >= points[i - 1][0], "points are in time order");
      // The text widget beside the chart shows the latest reading.
      await page.getByText(/^\d+ bpm$/).first().waitFor();
      assert.deepEqual(errors, [], "no script errors in the page");
    } finally {
      await page.screenshot({ path: path.join(ARTIFACTS, "dashboard.png"), fullPage: true }).catch(() => undefined);
      await page.close();
    }
  });

  it("breaks the meter's chart off while the meter is switched off (20–32 s after deploy), and draws on when it is back", async () => {
    const page = await browser!.newPage({ viewport: { width: 1280, height: 900 } });
    page.setDefaultTimeout(20000);
    await exposeDashboardCharts(page);
    try {
      await page.goto(`${red!.url}dashboard`);
      // A reading, then a gap (a point without a value: ECharts does not join a line across it), then a reading.
      const describe = async (): Promise<string> => JSON.stringify(await chartSeries(page, METER_CHART));
      await waitFor(
        async () => {
          const meter = (await chartSeries(page, METER_CHART))?.find((s) => s.name === METER_SERIES);
          if (!meter) return false;
          const values = meter.data.map(([, value]) => value);
          const gap = values.indexOf(null);
          return gap > 0 && typeof values[gap - 1] === "number" && values.slice(gap + 1).some((v) => typeof v === "number");
        },
        60000,
        describe,
      );
      const option = await page.evaluate((id) => window.uiCharts![id].chart.getOption().series as { connectNulls?: boolean }[], METER_CHART);
      assert.ok(option.every((s) => s.connectNulls !== true), "the line is not joined across the gap");
      await page.screenshot({ path: path.join(ARTIFACTS, "dashboard-meter-gap.png"), fullPage: true });
    } finally {
      await page.close();
    }
  });

  it("downloads log.bin from the file server when the dashboard's button is pressed", async () => {
    const page = await browser!.newPage({ viewport: { width: 1280, height: 900 } });
    page.setDefaultTimeout(20000);
    try {
      await page.goto(`${red!.url}dashboard`);
      await page.getByRole("button", { name: "Download log.bin" }).click();
      // The summary the flow makes of msg.stats: the simulated server's 32 KiB file arrived whole.
      await page.locator("#nrdb-ui-widget-demo-dl-text").getByText(/^log\.bin: 32768 bytes in \d+ ms/).waitFor({ timeout: 30000 });
    } finally {
      await page.screenshot({ path: path.join(ARTIFACTS, "dashboard-download.png"), fullPage: true }).catch(() => undefined);
      await page.close();
    }
  });
});
