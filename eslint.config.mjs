import * as fs from "node:fs";
import { URL } from "node:url";
import js from "@eslint/js";
import tseslint from "typescript-eslint";

/**
 * The layers of src/ (issue 12): each imports downward only.
 *   src/protocol  pure: no Node-RED, no noble, nothing else of src/
 *   src/ble       noble and the pool: src/protocol only (no src/sim, src/red, node files, Node-RED)
 *   src/sim       the simulator: src/protocol only (and Node built-ins); reached through its transport registration
 *   src/red       Node-RED glue shared by the node files: anything but src/sim
 *   src/<type>.ts the node files; only src/ble-config.ts wires the simulator in (registerTransport)
 * Import specifiers are matched by path segment (`../sim/x`, `./red/status`); node files (the types of package.json's
 * node-red.nodes) by the name reached from a layer's folder (`../heart-rate`). `import`, `import x = require()`, `require()`, `import()` and `typeof import()` all count.
 */
const nodeFiles = Object.keys(JSON.parse(fs.readFileSync(new URL("./package.json", import.meta.url), "utf8"))["node-red"].nodes);
const WHY = {
  sim: "the simulator is a transport that src/ble-config.ts registers (src/ble/transports.ts); in-process controllers are HCI peers (src/ble/hci-peer.ts)",
  ble: "src/ble sits above it; implement its interfaces structurally (as src/sim/transport.ts does HciPeer) for src/ble-config.ts to wire, and move shared protocol facts down into src/protocol",
  red: "Node-RED glue belongs above the BLE layer; report a BleProblem (src/ble/problem.ts) and let the node layer word it",
  node: "node files are the top layer; move what is shared into src/red (Node-RED glue) or src/ble (no Node-RED)",
  nodeRed: "Node-RED is only for the node layer (src/red, src/<type>.ts)",
  noble: "noble is only for the BLE layer (src/ble)",
};
const segment = (names) => `(^|/)(${names.join("|")})(/|$)`;
const layerRules = (layer, forbidden) => {
  const targets = [
    forbidden.ble && { regex: segment(["ble"]), message: `${layer} may not import src/ble: ${WHY.ble}` },
    forbidden.sim && { regex: segment(["sim"]), message: `${layer} may not import src/sim: ${WHY.sim}` },
    forbidden.red && { regex: segment(["red", "demo"]), message: `${layer} may not import src/red or src/demo: ${WHY.red}` },
    forbidden.node && { regex: `^(\\.\\./)+(${nodeFiles.join("|")})$`, message: `${layer} may not import a node file (src/<type>.ts): ${WHY.node}` },
    forbidden.nodeRed && { regex: "^(node-red|@node-red/)", message: `${layer} may not import Node-RED: ${WHY.nodeRed}` },
    forbidden.noble && { regex: "^@stoprocent/", message: `${layer} may not import noble (@stoprocent/*): ${WHY.noble}` },
  ].filter(Boolean);
  const call = (regex) => `/${regex.replaceAll("/", "\\/")}/`;
  return {
    "@typescript-eslint/no-restricted-imports": ["error", { patterns: targets.map(({ regex, message }) => ({ regex, message })) }],
    "no-restricted-syntax": [
      "error",
      ...targets.flatMap(({ regex, message }) => [
        { selector: `CallExpression[callee.name="require"][arguments.0.value=${call(regex)}]`, message },
        { selector: `ImportExpression[source.value=${call(regex)}]`, message },
        { selector: `TSImportType[argument.literal.value=${call(regex)}]`, message },
      ]),
    ],
  };
};

export default tseslint.config(
  { ignores: ["node_modules/", "nodes/**/*.js", "coverage/", "test-artifacts/"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ["**/*.ts"],
    rules: {
      "@typescript-eslint/no-explicit-any": "error",
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_" }],
      // `import x = require(...)` is how TypeScript imports the `export =` modules Node-RED loads
      "@typescript-eslint/no-require-imports": ["error", { allowAsImport: true }],
    },
  },
  {
    files: ["src/protocol/**/*.ts"],
    rules: layerRules("src/protocol", { ble: true, sim: true, red: true, node: true, nodeRed: true, noble: true }),
  },
  { files: ["src/ble/**/*.ts"], rules: layerRules("src/ble", { sim: true, red: true, node: true, nodeRed: true }) },
  { files: ["src/sim/**/*.ts"], rules: layerRules("src/sim", { ble: true, red: true, node: true, nodeRed: true, noble: true }) },
  { files: ["src/red/**/*.ts"], rules: layerRules("src/red", { sim: true }) },
  {
    files: ["src/*.ts"],
    ignores: ["src/ble-config.ts"],
    rules: layerRules("a node file other than src/ble-config.ts", { sim: true }),
  },
  {
    files: ["**/*.js", "**/*.mjs"],
    languageOptions: { globals: { require: "readonly", module: "writable", process: "readonly", console: "readonly", __dirname: "readonly" } },
  },
);
