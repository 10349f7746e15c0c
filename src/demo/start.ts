/**
 * `npm start`: Node-RED on 127.0.0.1:1880 (PORT to change it) with this package and Dashboard 2.0 installed
 * into a private user directory (.node-red-demo/, git-ignored), running examples/demo.json against the
 * simulator. The editor is at http://127.0.0.1:1880/, the dashboard at http://127.0.0.1:1880/dashboard.
 */
import * as path from "node:path";
import { launchNodeRed, PACKAGE_ROOT } from "./launch";

const port = Number(process.env.PORT ?? 1880);
console.log(`Demo: editor http://127.0.0.1:${port}/ · dashboard http://127.0.0.1:${port}/dashboard`);
// Keeps a flow the user has changed and deployed; delete .node-red-demo/ to start from the demo again.
const child = launchNodeRed({ userDir: path.join(PACKAGE_ROOT, ".node-red-demo"), port, replaceFlows: false });
for (const signal of ["SIGINT", "SIGTERM"] as const) process.on(signal, () => child.kill(signal));
child.on("exit", (code) => process.exit(code ?? 0));
