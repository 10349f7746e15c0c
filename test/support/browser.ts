/**
 * Headless Chromium for the end-to-end tests: Debian's `chromium` package driven by playwright-core. No browser
 * is ever downloaded; a machine without it fails the tests with the command that fixes it.
 */
import * as fs from "node:fs";
import { chromium, type Browser, type Page } from "playwright-core";

export const CHROMIUM = "/usr/bin/chromium";

export const CHROMIUM_MISSING = `${CHROMIUM} is missing, so the browser tests cannot run. Install Debian's Chromium: apt-get install -y chromium`;

/** Launches the system Chromium headless, offline-friendly (no update, sync or QUIC traffic). Throws if it is missing. */
export async function launchChromium(): Promise<Browser> {
  // Never a skip: the claim that a person can use this in a browser would otherwise pass untested.
  if (!fs.existsSync(CHROMIUM)) throw new Error(CHROMIUM_MISSING);
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
}

/**
 * A Dashboard 2 chart's series as its ECharts instance holds them: [timestamp, value] per point on a time axis; a
 * null value is a gap, across which the line is not drawn.
 */
export interface DashboardChartSeries {
  name: string;
  data: [number, number | null][];
}

declare global {
  interface Window {
    /** Dashboard 2's charts register here when window.Cypress is set: the hook its own end-to-end tests read. */
    uiCharts?: Record<string, { chart: { getOption(): { series: DashboardChartSeries[] } } }>;
    Cypress?: unknown;
  }
}

/**
 * Makes the dashboard's chart components publish their ECharts instances in window.uiCharts (Dashboard 2 does so
 * for its own Cypress tests), so a test can count the points a chart really holds instead of guessing from pixels.
 * Call before the page loads.
 */
export async function exposeDashboardCharts(page: Page): Promise<void> {
  await page.addInitScript(() => {
    window.Cypress = true;
  });
}
