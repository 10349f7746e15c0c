/**
 * The dashboard demo as a person sees it: Node-RED started the way `npm start` starts it (this package and
 * Dashboard 2.0 in the user directory, examples/demo.json on the simulator), the dashboard opened in headless
 * Chromium, and the heart-rate chart seen receiving points. A screenshot goes to test-artifacts/ (git-ignored).
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

describe("dashboard demo in a real browser (npm start's Node-RED + headless Chromium)", function () {
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
        assert.ok(BUILT_IN_BPM.includes(bpm), `bpm ${bpm} is one the simulated sensor sends`);
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
