/**
 * The admin endpoints (src/red/admin.ts) under Node-RED's own admin authentication.
 *
 * node-red-node-test-helper cannot show this: helper.settings({ adminAuth }) only changes the settings object its
 * mock runtime hands to nodes. That runtime has no admin API, so RED.auth.needsPermission is the registry's
 * pass-through stub, and its bare Express app has no /auth/token: the scan answers without a token and /auth/token
 * is a 404 there. So this suite starts a real Node-RED (red.js, in a child process) with `adminAuth` in its
 * settings.js, and logs in through Node-RED's own /auth/token. The child runs this package's TypeScript sources
 * through tsx, as the other node tests do, so a change to src/red/admin.ts is tested without a build. Nothing in
 * this (mocha) process is reconfigured: the other test files' helper runtime never sees these settings.
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import { createRequire } from "node:module";
import * as os from "node:os";
import * as path from "node:path";
import { EXPLORE_PATH, SCAN_PATH, SERIAL_PORTS_PATH, type ExploreAnswer, type ScanResult } from "../../src/red/admin";
import { freePort, terminate, waitForOutput } from "../support/demo-node-red";
import { NODE_RED_MAIN } from "../support/node-red-under-test";

const ROOT = path.resolve(__dirname, "..", "..");

/** The bcryptjs Node-RED's editor API itself depends on (it verifies adminAuth passwords with it or @node-rs/bcrypt). */
const bcrypt = createRequire(require.resolve("@node-red/editor-api"))("bcryptjs") as typeof import("bcryptjs");

/** adminAuth users: [name, password, Node-RED permissions]. */
const USERS = {
  admin: { password: "admin-secret", permissions: "*" },
  reader: { password: "reader-secret", permissions: "read" },
  configEditor: { password: "config-secret", permissions: ["ble-config.read", "ble-config.write"] },
  flowsReader: { password: "flows-secret", permissions: ["flows.read"] },
} as const;
type UserName = keyof typeof USERS;

/** The simulator's heart-rate sensor, as the scan reports it without the RSSI (see admin.test.ts). */
const HR = { name: "44278-33", address: "d8:75:ba:00:00:01", addressType: "random", services: ["180d"] };

const FLOW = [
  { id: "flow", type: "tab", label: "admin auth" },
  { id: "cfg", type: "ble-config", transport: "simulator", simScenario: "" },
];

interface AuditEvent {
  event: string;
  permissions?: string;
  path?: string;
  user?: { username?: string };
}

interface RunningNodeRed {
  url: string;
  child: ChildProcess;
  userDir: string;
  output(): string;
  /** Resolves with the first audit event (one already logged included) that satisfies `predicate`. */
  audit(predicate: (e: AuditEvent) => boolean, timeoutMs?: number): Promise<AuditEvent>;
  stop(): Promise<void>;
}

function auditEvents(output: string): AuditEvent[] {
  return output
    .split("\n")
    .map((line) => /\[audit\] (\{.*\})\s*$/.exec(line))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => JSON.parse(m[1]) as AuditEvent);
}

/**
 * A user directory holding settings.js (with adminAuth), flows.json, and a module that hands Node-RED the
 * ble-config node from src/ (loaded through tsx) with its editor file and message catalog from nodes/.
 */
function prepareUserDir(port: number): { userDir: string; settingsFile: string } {
  const userDir = fs.mkdtempSync(path.join(os.tmpdir(), "ble-admin-auth-"));
  const moduleDir = path.join(userDir, "node_modules", "ble-instruments-under-test");
  fs.mkdirSync(moduleDir, { recursive: true });
  fs.writeFileSync(
    path.join(moduleDir, "package.json"),
    JSON.stringify({ name: "ble-instruments-under-test", version: "0.0.0", "node-red": { nodes: { "ble-config": "ble-config.js" } } }),
  );
  fs.writeFileSync(path.join(moduleDir, "ble-config.js"), `module.exports = require(${JSON.stringify(path.join(ROOT, "src", "ble-config.ts"))});\n`);
  fs.symlinkSync(path.join(ROOT, "nodes", "ble-config.html"), path.join(moduleDir, "ble-config.html"));
  fs.symlinkSync(path.join(ROOT, "nodes", "locales"), path.join(moduleDir, "locales"), "dir");
  fs.writeFileSync(path.join(userDir, "flows.json"), JSON.stringify(FLOW));

  const settings = {
    uiHost: "127.0.0.1",
    uiPort: port,
    flowFile: "flows.json",
    credentialSecret: false,
    // audit: Node-RED logs each refused permission, which tells "not logged in" from "not allowed" (both are 401).
    logging: { console: { level: "info", audit: true } },
    editorTheme: { tours: false },
    telemetry: { enabled: false, updateNotification: false },
    diagnostics: { enabled: false, ui: false },
    adminAuth: {
      type: "credentials",
      users: Object.entries(USERS).map(([username, u]) => ({ username, password: bcrypt.hashSync(u.password, 8), permissions: u.permissions })),
    },
  };
  const settingsFile = path.join(userDir, "settings.js");
  fs.writeFileSync(settingsFile, `module.exports = ${JSON.stringify(settings, null, 2)};\n`);
  return { userDir, settingsFile };
}

async function startNodeRed(timeoutMs = 30000): Promise<RunningNodeRed> {
  const port = await freePort();
  const { userDir, settingsFile } = prepareUserDir(port);
  const child = spawn(process.execPath, ["--require", require.resolve("tsx/cjs"), NODE_RED_MAIN, "--userDir", userDir, "--settings", settingsFile], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, NODE_RED_ENABLE_PROJECTS: "false" },
  });
  let output = "";
  child.stdout!.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on("data", (chunk: Buffer) => (output += chunk.toString()));

  const stop = async (): Promise<void> => {
    await terminate(child);
    fs.rmSync(userDir, { recursive: true, force: true });
  };

  try {
    await waitForOutput(child, () => output, () => (/Started flows/.test(output) ? true : undefined), '"Started flows"', timeoutMs);
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    url: `http://127.0.0.1:${port}`,
    child,
    userDir,
    output: () => output,
    audit: (predicate, ms = 10000) => waitForOutput(child, () => output, () => auditEvents(output).find(predicate), "matching audit event", ms),
    stop,
  };
}

describe("admin endpoints under Node-RED adminAuth (a real Node-RED process)", function () {
  this.timeout(60000);

  let red: RunningNodeRed;
  const tokens = new Map<UserName, string>();

  before(async () => {
    red = await startNodeRed();
  });

  after(async () => {
    await red?.stop();
  });

  /** A bearer token from Node-RED's own login endpoint, as the editor obtains one (scope "": the user's permissions). */
  async function login(user: UserName): Promise<string> {
    const cached = tokens.get(user);
    if (cached) return cached;
    const res = await fetch(`${red.url}/auth/token`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ client_id: "node-red-editor", grant_type: "password", scope: "", username: user, password: USERS[user].password }),
    });
    const text = await res.text();
    assert.equal(res.status, 200, `login as ${user}: ${text}`);
    const body = JSON.parse(text) as { access_token?: unknown; token_type?: unknown };
    assert.equal(body.token_type, "Bearer");
    assert.equal(typeof body.access_token, "string");
    tokens.set(user, body.access_token as string);
    return body.access_token as string;
  }

  async function get(route: string, query: Record<string, string>, as: UserName | { token: string } | null): Promise<{ status: number; body: unknown }> {
    const headers: Record<string, string> = {};
    if (as !== null) headers.authorization = `Bearer ${typeof as === "string" ? await login(as) : as.token}`;
    const res = await fetch(`${red.url}${route}?${new URLSearchParams(query).toString()}`, { headers });
    const text = await res.text();
    let body: unknown = text;
    try {
      body = JSON.parse(text);
    } catch {
      // not JSON (a refusal has an empty or plain-text body)
    }
    return { status: res.status, body };
  }

  const scanDeployed = { config: "cfg", seconds: "1", service: "180d" };
  const scanFromSettings = { transport: "simulator", simScenario: "", seconds: "1", service: "180d" };
  const exploreDeployed = { config: "cfg", address: HR.address };
  const exploreFromSettings = { transport: "simulator", simScenario: "", address: HR.address };

  function exploredServices(body: unknown): string[] {
    const answer = body as ExploreAnswer;
    assert.equal(answer.address, HR.address, JSON.stringify(body));
    return answer.services.map((s) => s.uuid);
  }

  function devices(body: unknown): Omit<ScanResult, "rssi">[] {
    assert.ok(Array.isArray(body), `a list of devices, got ${JSON.stringify(body)}`);
    return (body as ScanResult[]).map(({ rssi, ...rest }) => {
      assert.equal(typeof rssi, "number");
      return rest;
    });
  }

  it("gives the editor the runtime's platform and the transport a new ble-config gets there (its settings)", async () => {
    const { status, body } = await get("/settings", {}, "admin");
    assert.equal(status, 200);
    const settings = body as { bleConfigPlatform?: unknown; bleConfigDefaultTransport?: unknown };
    assert.equal(settings.bleConfigPlatform, process.platform);
    // The one default of the runtime (a node saved without a transport gets it too), not a copy in the editor.
    assert.equal(settings.bleConfigDefaultTransport, process.platform === "linux" ? "bluez" : process.platform === "darwin" || process.platform === "win32" ? "native" : "hci");
  });

  it("runs Node-RED with admin authentication on: a credentials login, and its own /flows refused without a token", async () => {
    const login = await fetch(`${red.url}/auth/login`);
    assert.equal(login.status, 200);
    assert.equal(((await login.json()) as { type?: string }).type, "credentials");
    assert.equal((await fetch(`${red.url}/flows`)).status, 401);
  });

  it("refuses the endpoints without a token, or with a token Node-RED did not issue, with 401", async () => {
    for (const as of [null, { token: "not-a-token-node-red-issued" }]) {
      for (const [route, query] of [
        [SCAN_PATH, scanDeployed],
        [SCAN_PATH, scanFromSettings],
        [EXPLORE_PATH, exploreDeployed],
        [EXPLORE_PATH, exploreFromSettings],
        [SERIAL_PORTS_PATH, {}],
      ] as const) {
        const res = await get(route, query, as);
        assert.equal(res.status, 401, `${route}?${new URLSearchParams(query).toString()} ${as ? "with a made-up token" : "without a token"}`);
        assert.ok(!Array.isArray(res.body), "no results in a refusal");
      }
    }
  });

  it('lets a read-only user (permissions "read") scan the deployed adapter and list serial ports, but not open an adapter from settings', async () => {
    const scan = await get(SCAN_PATH, scanDeployed, "reader");
    assert.equal(scan.status, 200);
    assert.deepEqual(devices(scan.body), [HR]);

    const ports = await get(SERIAL_PORTS_PATH, {}, "reader");
    assert.equal(ports.status, 200);
    assert.ok(Array.isArray(ports.body));

    // Node-RED answers a logged-in user without the permission with 401 as well (not 403): the audit log says why.
    const fromSettings = await get(SCAN_PATH, scanFromSettings, "reader");
    assert.equal(fromSettings.status, 401);
    assert.ok(!Array.isArray(fromSettings.body));
    const refused = await red.audit((e) => e.event === "permission.fail" && e.user?.username === "reader");
    assert.equal(refused.permissions, "ble-config.write");
    assert.equal(refused.path, SCAN_PATH);

    // Explore: the same rights as a scan.
    const explored = await get(EXPLORE_PATH, exploreDeployed, "reader");
    assert.equal(explored.status, 200, JSON.stringify(explored.body));
    assert.deepEqual(exploredServices(explored.body), ["1800", "1801", "180d", "180f"]);
    const exploreFromSettingsRefused = await get(EXPLORE_PATH, exploreFromSettings, "reader");
    assert.equal(exploreFromSettingsRefused.status, 401);
    const exploreRefused = await red.audit((e) => e.event === "permission.fail" && e.user?.username === "reader" && e.path === EXPLORE_PATH);
    assert.equal(exploreRefused.permissions, "ble-config.write");
  });

  it("refuses a user whose permissions do not include ble-config.read (only flows.read)", async () => {
    const scan = await get(SCAN_PATH, scanDeployed, "flowsReader");
    assert.equal(scan.status, 401);
    const ports = await get(SERIAL_PORTS_PATH, {}, "flowsReader");
    assert.equal(ports.status, 401);
    const explored = await get(EXPLORE_PATH, exploreDeployed, "flowsReader");
    assert.equal(explored.status, 401);
    const refused = await red.audit((e) => e.event === "permission.fail" && e.user?.username === "flowsReader" && e.path === SERIAL_PORTS_PATH);
    assert.equal(refused.permissions, "ble-config.read");
  });

  for (const user of ["admin", "configEditor"] as const) {
    it(`lets ${user} (${JSON.stringify(USERS[user].permissions)}) use the endpoints, a scan and an explore on an adapter opened from settings included`, async () => {
      const fromSettings = await get(SCAN_PATH, scanFromSettings, user);
      assert.equal(fromSettings.status, 200, JSON.stringify(fromSettings.body));
      assert.deepEqual(devices(fromSettings.body), [HR]);

      const deployed = await get(SCAN_PATH, scanDeployed, user);
      assert.equal(deployed.status, 200, JSON.stringify(deployed.body));
      assert.deepEqual(devices(deployed.body), [HR]);

      const ports = await get(SERIAL_PORTS_PATH, {}, user);
      assert.equal(ports.status, 200);
      assert.ok(Array.isArray(ports.body));

      const explored = await get(EXPLORE_PATH, exploreFromSettings, user);
      assert.equal(explored.status, 200, JSON.stringify(explored.body));
      assert.deepEqual(exploredServices(explored.body), ["1800", "1801", "180d", "180f"]);
    });
  }
});
