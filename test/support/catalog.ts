/**
 * The package's message catalogs as Node-RED words them: the test helper's RED._ returns the message key, so tests
 * look it up here in nodes/locales/en-US/<type>.json with __name__ substitutions. Doing the same checks that every
 * key a node uses is in its catalog, and lets tests assert the text a user reads.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";

const catalogs = new Map<string, unknown>();

const PACKAGE_NAME = (JSON.parse(fs.readFileSync(path.join(__dirname, "..", "..", "package.json"), "utf8")) as { name: string }).name;

export function translate(namespacedKey: string, substitutions?: Record<string, string | number>): string {
  // A key with a namespace, as any node reaches another node set's catalog ("<module>/<set>:<key>"), must name this
  // package's set whose catalog holds it.
  const colon = namespacedKey.indexOf(":");
  const key = colon === -1 ? namespacedKey : namespacedKey.slice(colon + 1);
  const type = key.split(".")[0];
  if (colon !== -1) assert.equal(namespacedKey.slice(0, colon), `${PACKAGE_NAME}/${type}`, `the namespace of ${namespacedKey}`);
  if (!catalogs.has(type)) {
    const file = path.join(__dirname, "..", "..", "nodes", "locales", "en-US", `${type}.json`);
    catalogs.set(type, fs.existsSync(file) ? JSON.parse(fs.readFileSync(file, "utf8")) : undefined);
  }
  let entry: unknown = catalogs.get(type);
  for (const part of key.split(".")) entry = typeof entry === "object" && entry !== null ? (entry as Record<string, unknown>)[part] : undefined;
  assert.equal(typeof entry, "string", `message ${key} is in the catalog`);
  return String(entry).replace(/__(\w+)__/g, (whole, name: string) => (substitutions && name in substitutions ? String(substitutions[name]) : whole));
}

