/**
 * `npm start`: Node-RED on 127.0.0.1:1880 with this package installed into a private user directory
 * (.node-red-demo/, git-ignored) and the demo flow running against the simulator.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { spawn } from "node:child_process";

const root = path.resolve(__dirname, "..", "..");
const userDir = path.join(root, ".node-red-demo");
const pkg = JSON.parse(fs.readFileSync(path.join(root, "package.json"), "utf8")) as { name: string };
const port = Number(process.env.PORT ?? 1880);

fs.mkdirSync(path.join(userDir, "node_modules", path.dirname(pkg.name)), { recursive: true });
const link = path.join(userDir, "node_modules", pkg.name);
if (!fs.existsSync(link)) fs.symlinkSync(root, link, "dir");

// Keep a flow the user has changed; start from the demo only when there is none.
const flowFile = path.join(userDir, "flows.json");
if (!fs.existsSync(flowFile)) fs.copyFileSync(path.join(root, "examples", "demo.json"), flowFile);

fs.writeFileSync(
  path.join(userDir, "settings.js"),
  `module.exports = ${JSON.stringify(
    { uiHost: "127.0.0.1", uiPort: port, flowFile: "flows.json", credentialSecret: false, logging: { console: { level: "info" } } },
    null,
    2,
  )};\n`,
);

const red = require.resolve("node-red/red.js", { paths: [root] });
const child = spawn(process.execPath, [red, "--userDir", userDir, "--settings", path.join(userDir, "settings.js")], { stdio: "inherit" });
for (const signal of ["SIGINT", "SIGTERM"] as const) process.on(signal, () => child.kill(signal));
child.on("exit", (code) => process.exit(code ?? 0));
