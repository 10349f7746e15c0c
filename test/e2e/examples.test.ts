/**
 * Every flow in examples/ runs as-is: all of them imported into one Node-RED (as a user importing them one
 * after another from Import > Examples, which reuses config nodes of the same id), started the way `npm start`
 * starts it. Node-RED lists them as examples; they deploy without errors; every device node on the simulator
 * connects (the uart one, without its ESP32 dongle, says so); every chart and gauge of every dashboard page gets
 * data; the file-download example saves under the home directory; the file-upload example sends its file.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import type { NodeStatus } from "node-red";
import type { Browser, Page } from "playwright-core";
import { PACKAGE_ROOT } from "../../src/demo/launch";
import { exposeDashboardCharts, launchChromium } from "../support/browser";
import { readExample, startDemoNodeRed, type DemoNodeRed } from "../support/demo-node-red";

const ARTIFACTS = path.resolve(__dirname, "..", "..", "test-artifacts");
const PACKAGE = "@ble-instruments/node-red-ble-instruments";
const EXAMPLES = fs
  .readdirSync(path.join(PACKAGE_ROOT, "examples"))
  .filter((f) => f.endsWith(".json"))
  .sort();
const DEVICE_TYPES = ["heart-rate", "hioki-meter", "nus-ymodem-receive", "nus-ymodem-send", "ble-gatt-in", "ble-gatt-out", "ble-gatt-request"];

type FlowNode = Record<string, unknown> & { id: string; type: string };

interface Imported {
  flows: FlowNode[];
  /** Example file of each node. */
  origin: Map<string, string>;
}

/** All examples in one flow file; a config node shared by several examples (same id) is taken once. */
function importAll(): Imported {
  const flows: FlowNode[] = [];
  const origin = new Map<string, string>();
  for (const file of EXAMPLES) {
    for (const node of readExample(file) as FlowNode[]) {
      const earlier = flows.find((n) => n.id === node.id);
      if (earlier) {
        // The editor reuses an existing config node of the same id on import: the copies must be the same node.
        assert.ok(!("z" in node) && !("wires" in node), `${file}: ${node.id} reuses the id of a node of ${origin.get(node.id)}`);
        assert.deepEqual(node, earlier, `${file}: the shared config node ${node.id} is the same as in ${origin.get(node.id)}`);
        continue;
      }
      flows.push(node);
      origin.set(node.id, file);
    }
  }
  return { flows, origin };
}

/** The editor's node registry, as far as this test reads it (a global of the editor page). */
interface EditorNode {
  id: string;
  type: string;
  status?: NodeStatus;
  /** Set by the editor's validation: false draws the red triangle. */
  valid?: boolean;
  validationErrors?: string[];
}
interface EditorNodes {
  eachNode(cb: (n: EditorNode) => void): void;
  eachConfig(cb: (n: EditorNode) => void): void;
}

describe("examples: each runs as-is on the simulator (all imported into one Node-RED, in a browser)", function () {
  this.timeout(120000);
  const { flows, origin } = importAll();
  let home = "";
  let red: DemoNodeRed | null = null;
  let browser: Browser | null = null;

  before(async () => {
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    browser = await launchChromium();
    // The file-download example saves to ${HOME}/ble-downloads: a home of the test's own.
    home = fs.mkdtempSync(path.join(os.tmpdir(), "examples-home-"));
    red = await startDemoNodeRed({ flows, env: { HOME: home }, logFile: path.join(ARTIFACTS, "examples-node-red.log") });
  });

  after(async () => {
    await browser?.close();
    await red?.stop();
    if (home) fs.rmSync(home, { recursive: true, force: true });
  });

  /** A new page on the editor, once it has loaded the flows (closed again if that fails). */
  async function openEditor(): Promise<Page> {
    const page = await browser!.newPage({ viewport: { width: 1400, height: 900 } });
    try {
      await page.goto(red!.url);
      await page.waitForFunction(() => {
        let count = 0;
        (window as unknown as { RED?: { nodes?: EditorNodes } }).RED?.nodes?.eachNode(() => count++);
        return count > 0;
      });
      return page;
    } catch (error) {
      await page.close();
      throw error;
    }
  }

  it("are listed by Node-RED for Import > Examples", async () => {
    const response = await fetch(`${red!.url}library/examples/flows/${PACKAGE}/`);
    assert.equal(response.status, 200);
    const listed = ((await response.json()) as { fn?: string }[]).map((e) => e.fn).sort();
    assert.deepEqual(
      listed,
      EXAMPLES.map((f) => f.replace(/\.json$/, "")),
    );
    for (const file of EXAMPLES) {
      const flow = (await (await fetch(`${red!.url}library/examples/flows/${PACKAGE}/${file.replace(/\.json$/, "")}`)).json()) as FlowNode[];
      const tab = flow.find((n) => n.type === "tab");
      assert.ok(tab && typeof tab.info === "string" && tab.info.length > 100, `${file} explains itself in its flow's info`);
    }
  });

  it("deploy without errors (only the uart example's missing dongle is reported)", async () => {
    // Give the flows a moment to report what goes wrong at start.
    await new Promise((resolve) => setTimeout(resolve, 3000));
    const log = red!.log();
    assert.doesNotMatch(log, /missing types|Waiting for missing|Circular config/i);
    const errors = log.split("\n").filter((line) => /\[(error|warn)\]/.test(line) && !/Projects disabled|unencrypted credentials/.test(line));
    assert.deepEqual(
      errors.filter((line) => !/\[ble-config:ESP32 dongle\] HCI UART \(uartPort\)/.test(line)),
      [],
    );
  });

  it("open in the editor with no node marked invalid", async () => {
    const page = await openEditor();
    try {
      // What the editor marks with a red triangle: a property its definition does not accept, or one missing.
      const invalid = await page.evaluate(() => {
        // No named functions in here: the test runner's compiler would wrap them in a helper the page lacks.
        const all: EditorNode[] = [];
        const nodes = (window as unknown as { RED: { nodes: EditorNodes } }).RED.nodes;
        nodes.eachNode((n) => void all.push(n));
        nodes.eachConfig((n) => void all.push(n));
        return all
          .filter((n) => n.valid === false || (n.validationErrors ?? []).length > 0)
          .map((n) => `${n.type} ${n.id}: ${JSON.stringify(n.validationErrors ?? [])}`);
      });
      assert.deepEqual(invalid.map((line) => `${origin.get(line.split(" ")[1]) ?? "?"}: ${line}`), []);
    } finally {
      await page.close();
    }
  });

  it("connect every device node on the simulator; the uart one says its port does not exist", async () => {
    const page = await openEditor();
    try {
      const statuses = (): Promise<{ id: string; type: string; status?: NodeStatus }[]> =>
        page.evaluate((types) => {
          const found: { id: string; type: string; status?: NodeStatus }[] = [];
          // Inside the page: only what the callback itself holds exists there.
          (window as unknown as { RED: { nodes: EditorNodes } }).RED.nodes.eachNode((n) => {
            if (types.includes(n.type)) found.push({ id: n.id, type: n.type, status: n.status });
          });
          return found;
        }, DEVICE_TYPES);
      // Generic GATT nodes whose connection is "idle" connect only when used: they stay grey until then.
      const keepsLink = (n: FlowNode): boolean => n.type.startsWith("ble-gatt-") && n.connection !== "idle";
      const polled = flows.filter((n) => n.type === "heart-rate" || n.type === "hioki-meter" || keepsLink(n));
      const onSimulator = polled.filter((n) => n.ble === "ble-sim").map((n) => n.id);
      const onUart = polled.filter((n) => n.ble === "ble-uart").map((n) => n.id);
      assert.ok(onSimulator.length >= 8 && onUart.length === 1);
      const deadline = Date.now() + 30000;
      let last: { id: string; type: string; status?: NodeStatus }[] = [];
      for (;;) {
        last = await statuses();
        const byId = new Map(last.map((n) => [n.id, n.status]));
        const connected = onSimulator.every((id) => byId.get(id)?.fill === "green" && byId.get(id)?.shape === "dot");
        const uart = byId.get(onUart[0]);
        // The dongle's port is not there: the status says so (naming the setting, not the path), not that the port is
        // closed or does not answer.
        if (connected && uart?.fill === "red" && /HCI UART \(uartPort\): no such file/.test(String(uart.text))) break;
        if (Date.now() > deadline) {
          const describe = last.map((n) => `${origin.get(n.id)} ${n.id}: ${n.status?.fill ?? "-"}/${n.status?.shape ?? "-"} ${String(n.status?.text ?? "")}`);
          assert.fail(`device nodes did not all reach their state:\n${describe.join("\n")}`);
        }
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
      await page.screenshot({ path: path.join(ARTIFACTS, "examples-editor.png") });
    } finally {
      await page.close();
    }
  });

  it("label each device node by its device, also where its address is its group's ${DEVICE} (mqtt-gateway)", async () => {
    const fromGroup = flows.filter((n) => DEVICE_TYPES.includes(n.type) && /^\$\{\w+\}$/.test(String(n.address)));
    assert.ok(fromGroup.length >= 3, "the mqtt-gateway example's device nodes take their address from their group");
    const page = await openEditor();
    try {
      for (const node of fromGroup) {
        const variable = String(node.address).slice(2, -1);
        const group = flows.find((g) => g.id === node.g);
        const device = (group?.env as { name: string; value: string }[] | undefined)?.find((e) => e.name === variable)?.value;
        assert.ok(device, `${node.id}: its group sets ${variable}`);
        await page.evaluate((tab) => (window as unknown as { RED: { workspaces: { show(id: string): void } } }).RED.workspaces.show(tab), String(node.z));
        const label = page.locator(`[id="${node.id}"] .red-ui-flow-node-label`);
        await label.waitFor();
        assert.equal((await label.textContent())?.trim(), device, `${origin.get(node.id)}: ${node.type} ${node.id} is labelled by its device`);
      }
      await page.screenshot({ path: path.join(ARTIFACTS, "examples-mqtt-gateway-labels.png") });
    } finally {
      await page.close();
    }
  });

  it("fill every chart and gauge of every dashboard page", async () => {
    const pages = flows.filter((n) => n.type === "ui-page");
    assert.ok(pages.length >= 4, "demo, heart rate, meter, several devices");
    for (const uiPage of pages) {
      const groups = new Set(flows.filter((n) => n.type === "ui-group" && n.page === uiPage.id).map((n) => n.id));
      const charts = flows.filter((n) => n.type === "ui-chart" && groups.has(n.group as string)).map((n) => n.id);
      const gauges = flows.filter((n) => n.type === "ui-gauge" && groups.has(n.group as string)).map((n) => n.id);
      const page: Page = await browser!.newPage({ viewport: { width: 1280, height: 900 } });
      await exposeDashboardCharts(page);
      try {
        await page.goto(`${red!.url}dashboard${String(uiPage.path)}`);
        for (const id of charts) {
          await page
            .waitForFunction((chart) => (window.uiCharts?.[chart]?.chart.getOption().series ?? []).some((s) => s.data.length > 0), id, { timeout: 20000 })
            .catch(() => assert.fail(`${origin.get(id)}: chart ${id} on ${String(uiPage.path)} got no points`));
        }
        for (const id of gauges) {
          // The gauge prints its value in the middle: a number once the first reading has arrived.
          await page
            .locator(`#nrdb-ui-widget-${id}`)
            .getByText(/^-?\d+(\.\d+)?$/)
            .first()
            .waitFor({ timeout: 20000 })
            .catch(() => assert.fail(`${origin.get(id)}: gauge ${id} on ${String(uiPage.path)} shows no value`));
        }
        await page.screenshot({ path: path.join(ARTIFACTS, `examples-dashboard${String(uiPage.path).replace(/\//g, "-")}.png`), fullPage: true });
      } finally {
        await page.close();
      }
    }
  });

  it("save the downloaded file under ~/ble-downloads (file-download example)", async () => {
    const inject = flows.find((n) => n.type === "inject" && origin.get(n.id) === "file-download-to-directory.json");
    assert.ok(inject);
    const response = await fetch(`${red!.url}inject/${inject.id}`, { method: "POST" });
    assert.equal(response.status, 200);
    const file = path.join(home, "ble-downloads", "log.bin");
    const deadline = Date.now() + 30000;
    while (!fs.existsSync(file)) {
      assert.ok(Date.now() < deadline, `${file} did not appear; log:\n${red!.log().slice(-2000)}`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    assert.equal(fs.statSync(file).size, 32768);
  });

  it("send the written sample file to the simulated loader (file-upload example)", async () => {
    const inject = (name: string): FlowNode | undefined => flows.find((n) => n.type === "inject" && n.name === name && origin.get(n.id) === "file-upload-to-device.json");
    const write = inject("1. write a sample file");
    const upload = inject("2. upload");
    const sender = flows.find((n) => n.type === "nus-ymodem-send" && origin.get(n.id) === "file-upload-to-device.json");
    assert.ok(write && upload && sender);
    assert.equal((await fetch(`${red!.url}inject/${write.id}`, { method: "POST" })).status, 200);
    const file = path.join(home, "ble-uploads", "hello.txt");
    // The file node opens the file before it writes, so the file exists (empty) for a moment: wait for the
    // sample's whole text plus the newline the node appends, not only for the name.
    const size = Buffer.byteLength(String(write.payload)) + 1;
    const deadline = Date.now() + 30000;
    while (!fs.existsSync(file) || fs.statSync(file).size < size) {
      assert.ok(Date.now() < deadline, `${file} did not reach ${size} B; log:\n${red!.log().slice(-2000)}`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    assert.equal(fs.statSync(file).size, size);
    const page = await openEditor();
    try {
      assert.equal((await fetch(`${red!.url}inject/${upload.id}`, { method: "POST" })).status, 200);
      // The node's green dot names the file and its size once the device has acknowledged all of it.
      const expected = `hello.txt: ${size} B, `;
      await page
        .waitForFunction(
          ({ id, text }) => {
            let found = "";
            (window as unknown as { RED: { nodes: EditorNodes } }).RED.nodes.eachNode((n) => {
              if (n.id === id && n.status?.fill === "green") found = String(n.status.text ?? "");
            });
            return found.startsWith(text);
          },
          { id: sender.id, text: expected },
          { timeout: 30000 },
        )
        .catch(() => assert.fail(`the upload did not end with "${expected}…"; log:\n${red!.log().slice(-2000)}`));
    } finally {
      await page.close();
    }
  });

  it("answer a console command over the Nordic UART Service (nus-console example)", async () => {
    const version = flows.find((n) => n.type === "inject" && n.name === "version" && origin.get(n.id) === "nus-console.json");
    const debug = flows.find((n) => n.type === "debug" && origin.get(n.id) === "nus-console.json");
    assert.ok(version && debug);
    const page = await openEditor();
    try {
      assert.equal((await fetch(`${red!.url}inject/${version.id}`, { method: "POST" })).status, 200);
      // The debug node shows the last reply in its status: the device's answer, collected from its notifications.
      await page
        .waitForFunction(
          ({ id, text }) => {
            let found = "";
            (window as unknown as { RED: { nodes: EditorNodes } }).RED.nodes.eachNode((n) => {
              if (n.id === id) found = String(n.status?.text ?? "");
            });
            return found.trim() === text;
          },
          { id: debug.id, text: "NUS Console 1.0.0" },
          { timeout: 30000 },
        )
        .catch(() => assert.fail(`no reply to "version"; log:\n${red!.log().slice(-2000)}`));
    } finally {
      await page.close();
    }
  });
});
