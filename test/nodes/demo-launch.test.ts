/** The demo launcher's user directory (src/demo/launch.ts): a flow's inline credentials go where Node-RED reads them. */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { prepareUserDir } from "../../src/demo/launch";

describe("demo launcher: flows.json and flows_cred.json", () => {
  it("moves the credentials an example carries (ble-scan's bind keys) to flows_cred.json, out of flows.json", () => {
    const userDir = fs.mkdtempSync(path.join(os.tmpdir(), "ble-launch-"));
    try {
      prepareUserDir({ userDir, port: 1880, flowSource: path.join(__dirname, "..", "..", "examples", "bthome-dashboard.json"), replaceFlows: true });
      const flows = JSON.parse(fs.readFileSync(path.join(userDir, "flows.json"), "utf8")) as { id: string; credentials?: unknown }[];
      assert.ok(flows.some((n) => n.id === "bth-scan"));
      assert.deepEqual(flows.filter((n) => "credentials" in n), []);
      const creds = JSON.parse(fs.readFileSync(path.join(userDir, "flows_cred.json"), "utf8")) as Record<string, { bindKeys?: string }>;
      assert.match(String(creds["bth-scan"]?.bindKeys), /^c0:b7:40:00:00:02 = [0-9a-f]{32}$/);

      // A flow without credentials leaves no stale file behind.
      prepareUserDir({ userDir, port: 1880, flowSource: path.join(__dirname, "..", "..", "examples", "heart-rate-chart.json"), replaceFlows: true });
      assert.equal(fs.existsSync(path.join(userDir, "flows_cred.json")), false);
    } finally {
      fs.rmSync(userDir, { recursive: true, force: true });
    }
  });
});
