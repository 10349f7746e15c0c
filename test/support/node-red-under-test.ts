/**
 * The Node-RED the tests run against: the node-red devDependency (Node-RED 4.1), or the installation that
 * BLE_TEST_NODE_RED names (its node-red package directory). `npm run test:nr5` (test/matrix/nr5.ts) sets it to
 * Node-RED 5, installed with Node.js 22 into .cache/nr5.
 */
import * as fs from "node:fs";
import * as path from "node:path";

const ROOT = path.resolve(__dirname, "..", "..");

function nodeRedDir(): string {
  const chosen = process.env.BLE_TEST_NODE_RED;
  if (!chosen) return path.dirname(require.resolve("node-red/package.json", { paths: [ROOT] }));
  const dir = path.resolve(chosen);
  if (!fs.existsSync(path.join(dir, "red.js"))) throw new Error(`BLE_TEST_NODE_RED=${chosen} is not a node-red package directory (no red.js)`);
  return dir;
}

/** The node-red package directory. */
export const NODE_RED_DIR = nodeRedDir();
/** The command-line launcher (what `node-red` runs). */
export const NODE_RED_MAIN = path.join(NODE_RED_DIR, "red.js");
/** The runtime module (`require("node-red")`), for node-red-node-test-helper. */
export const NODE_RED_RUNTIME = require.resolve(NODE_RED_DIR);

/** node-red's package.json, parsed. */
export function nodeRedManifest(): { version: string; engines?: { node?: string } } {
  return JSON.parse(fs.readFileSync(path.join(NODE_RED_DIR, "package.json"), "utf8")) as { version: string; engines?: { node?: string } };
}
