/**
 * The package as the Node-RED Flow Library judges it, and as npm would publish it.
 *
 * The scorecard rules are those `node-red-dev validate` applies (node-red/node-red-dev-cli, src/libs/
 * checkpackage.js, checknodes.js, checkdeps.js; rule ids from its docs/). That tool needs the internet (it clones
 * the repository, downloads the catalogue, asks the npm registry), so each rule is checked here offline from
 * package.json, package-lock.json, the node files, examples/ and the installed Node-RED. Rules that cannot be
 * checked without the network are listed as such below, not skipped silently:
 *
 * - P02 "package name in repository": the tool clones `repository.url` and compares the name in its package.json.
 * - P08 "similar names": compares the name with every package in catalogue.nodered.org.
 * - N01 against the catalogue: checked here only against Node-RED's core nodes and the Node-RED modules installed
 *   in node_modules (the catalogue's own list needs the network).
 * - D03 "out of date dependencies": needs the registry's latest versions. NOT CHECKED: before publishing, run
 *   `npm outdated --omit=dev` (or `node-red-dev validate`) where the registry is reachable.
 * - P06 compares with the registry's `latest`/`maintenance` Node-RED, P07 with the oldest Node.js that `latest`
 *   runs on; here both with the Node-RED this run tests against (the node-red devDependency, Node-RED 4.1, or
 *   Node-RED 5 under `npm run test:nr5`) and the first release of its major.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import { builtinModules } from "node:module";
import * as os from "node:os";
import * as path from "node:path";
import { nodeRedManifest } from "../support/node-red-under-test";
import * as semver from "semver";
import { editorDefinitions, editorScripts, moduleRequests, packageOf, runtimeTypes, type NodeDefinition } from "../support/package-rules";

const ROOT = path.resolve(__dirname, "..", "..");
/**
 * The Node.js majors the project tests on: 20 with Node-RED 4.1 (npm test), 22 with Node-RED 5 (npm run test:nr5);
 * see .ci/run. The checks below hold the declared ranges against these, whatever Node.js runs them.
 */
const TESTED_NODE_MAJORS = [20, 22];

type JsonRecord = Record<string, unknown>;

function isRecord(value: unknown): value is JsonRecord {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function readJson(file: string): unknown {
  return JSON.parse(fs.readFileSync(file, "utf8")) as unknown;
}

function record(value: unknown, what: string): JsonRecord {
  assert.ok(isRecord(value), `${what} must be an object`);
  return value;
}

function stringField(obj: JsonRecord, key: string, what: string): string {
  const value = obj[key];
  assert.ok(typeof value === "string" && value.length > 0, `${what}.${key} must be a non-empty string`);
  return value;
}

const pkg = record(readJson(path.join(ROOT, "package.json")), "package.json");
const nodeRed = record(pkg["node-red"], 'package.json "node-red"');
/** The module name Node-RED serves the package's resources/ under. */
const packageName = stringField(pkg, "name", "package.json");
/** node-red.nodes: set name → runtime .js file, relative to the package. */
const nodeFiles = Object.entries(record(nodeRed.nodes, 'package.json "node-red".nodes')).map(([name, file]) => {
  assert.ok(typeof file === "string", `node-red.nodes.${name} must be a path`);
  return { name, js: file, html: file.replace(".js", ".html") }; // node-red-dev derives the .html name exactly so
});
const dependencies = isRecord(pkg.dependencies) ? pkg.dependencies : {};
/** The Node-RED this run tests against (the node-red devDependency, or Node-RED 5 under npm run test:nr5). */
const installedNodeRed = record(nodeRedManifest(), "node-red's package.json");

/** The lowest version that `range` admits (semver.minVersion); fails when it admits none. */
function lowest(range: string, what: string): string {
  const min = semver.minVersion(range);
  assert.ok(min, `${what} "${range}" admits no version`);
  return min.version;
}

/** The lowest release of `major` that `range` admits, or null when it admits none of that major. */
function lowestOfMajor(range: string, major: number): string | null {
  // Each alternative of the range, narrowed to the major: the comparator sets stay ANDed, the alternatives ORed.
  const narrowed = new semver.Range(range).set.map((set) => [...set.map((c) => c.value).filter(Boolean), `>=${major}.0.0`, `<${major + 1}.0.0-0`].join(" ")).join(" || ");
  return semver.minVersion(narrowed)?.version ?? null;
}

function allFiles(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? allFiles(path.join(dir, e.name)) : [path.join(dir, e.name)]));
}

function ourDefinitions(): { definitions: (NodeDefinition & { file: string })[]; errors: string[] } {
  const definitions: (NodeDefinition & { file: string })[] = [];
  const errors: string[] = [];
  for (const n of nodeFiles) {
    const file = path.join(ROOT, n.html);
    if (!fs.existsSync(file)) {
      errors.push(`${n.html} is missing (node-red-dev reads the editor file next to ${n.js})`);
      continue;
    }
    const read = editorDefinitions(file);
    definitions.push(...read.definitions.map((d) => ({ ...d, file: n.html })));
    errors.push(...read.errors);
  }
  return { definitions, errors };
}

describe("package: Flow Library scorecard (node-red-dev validate rules, offline; P02, P08 and D03 need the network and are not checked, see the file's comment)", () => {
  it("P01 licence: package.json names it and the package carries the licence text", () => {
    const license = stringField(pkg, "license", "package.json");
    const text = fs.readFileSync(path.join(ROOT, "LICENSE"), "utf8");
    assert.ok(text.trim().length > 0, "LICENSE is empty");
    if (license === "MIT") assert.match(text, /Permission is hereby granted, free of charge/, "LICENSE is not the MIT licence that package.json names");
    else assert.match(license, /^[A-Za-z0-9.+-]+( (OR|AND) [A-Za-z0-9.+-]+)*$|^SEE LICENSE IN \S+$/, "an SPDX id, or SEE LICENSE IN <file>");
  });

  it("P03 repository and bugs links: the project's GitHub repository, under the npm scope's name", () => {
    const name = stringField(pkg, "name", "package.json");
    const [scope, bare] = name.slice(1).split("/");
    const home = `https://github.com/${scope}/${bare}`;
    const repository = record(pkg.repository, "package.json repository");
    assert.equal(stringField(repository, "type", "package.json repository"), "git");
    // npm's normalised form (npm pkg fix writes it so): node-red-dev clones this URL (P02).
    assert.equal(stringField(repository, "url", "package.json repository"), `git+${home}.git`);
    assert.equal(stringField(record(pkg.bugs, "package.json bugs"), "url", "package.json bugs"), `${home}/issues`);
    assert.ok(stringField(pkg, "homepage", "package.json").startsWith(home), `homepage must be on ${home}`);
  });

  it("P04 naming: a scoped package name", () => {
    // node-red-dev's pattern; packages created after 2021-12-01 must be scoped.
    assert.match(stringField(pkg, "name", "package.json"), /@[a-z\d][\w-.]+\/[a-z\d][\w-.]*/);
  });

  it('P05 the "node-red" keyword', () => {
    assert.ok(Array.isArray(pkg.keywords) && pkg.keywords.includes("node-red"), 'package.json keywords must contain "node-red"');
  });

  it("P06 node-red.version admits the Node-RED under test", () => {
    const range = stringField(nodeRed, "version", 'package.json "node-red"');
    const current = stringField(installedNodeRed, "version", "node-red's package.json");
    assert.ok(semver.satisfies(current, range), `node-red.version "${range}" excludes Node-RED ${current}`);
  });

  it("P07 engines.node admits the oldest Node.js the Node-RED under test supports, among the Node.js majors this project tests", () => {
    const ours = stringField(record(pkg.engines, "package.json engines"), "node", "package.json engines");
    const theirs = stringField(record(installedNodeRed.engines, "node-red's engines"), "node", "node-red's engines");
    // Node-RED 4.1 runs on Node.js 18.5 too, which this project does not test (nor declare); Node-RED 5 needs 22.9.
    const candidates = TESTED_NODE_MAJORS.map((m) => lowestOfMajor(theirs, m)).filter((v): v is string => v !== null);
    const oldest = candidates.sort(semver.compare)[0];
    assert.ok(oldest, `Node-RED ${String(installedNodeRed.version)} ("${theirs}") runs on none of the tested Node.js majors ${TESTED_NODE_MAJORS.join(", ")}`);
    assert.ok(semver.satisfies(oldest, ours), `engines.node "${ours}" excludes Node.js ${oldest}, the oldest tested Node.js Node-RED ${String(installedNodeRed.version)} runs on ("${theirs}")`);
  });

  it("the declared ranges admit every tested Node.js major and every Node-RED the tests install, and start at the oldest tested ones", () => {
    // Tested: Node-RED 4.1 on Node.js 20 (npm test, npm run test:interop) and Node-RED 5 on Node.js 22 (npm run test:nr5).
    const nodeRange = stringField(record(pkg.engines, "package.json engines"), "node", "package.json engines");
    const redRange = stringField(nodeRed, "version", 'package.json "node-red"');
    for (const major of TESTED_NODE_MAJORS) {
      assert.ok(semver.subset(`^${major}.0.0`, nodeRange), `engines.node "${nodeRange}" does not admit all of Node.js ${major}, a tested major`);
    }
    assert.equal(lowest(nodeRange, "engines.node"), `${Math.min(...TESTED_NODE_MAJORS)}.0.0`, "engines.node must start at the oldest Node.js major tested");
    assert.ok(semver.satisfies(stringField(installedNodeRed, "version", "node-red's package.json"), redRange), `node-red.version "${redRange}" excludes the Node-RED this run tests`);
    const devNodeRed = stringField(record(pkg.devDependencies, "package.json devDependencies"), "node-red", "package.json devDependencies");
    assert.ok(semver.subset(devNodeRed, redRange), `node-red.version "${redRange}" does not admit every Node-RED the devDependency "${devNodeRed}" installs`);
    const oldestTested = semver.parse(lowest(devNodeRed, "the node-red devDependency"));
    assert.ok(oldestTested);
    assert.equal(lowest(redRange, "node-red.version"), `${oldestTested.major}.${oldestTested.minor}.0`, `node-red.version must start at the oldest Node-RED tested (the devDependency ${devNodeRed})`);
  });

  it("N01 node names: each node file registers the same types in the editor and the runtime, none twice, none taken by Node-RED or an installed module", () => {
    const { definitions, errors } = ourDefinitions();
    assert.deepEqual(errors, [], "node-red-dev must read every definition (its errors cost N02, see package-rules.ts)");
    const problems: string[] = [];
    for (const n of nodeFiles) {
      const js = path.join(ROOT, n.js);
      if (!fs.existsSync(js)) {
        problems.push(`${n.js} is missing: run npm run build`);
        continue;
      }
      const editor = definitions.filter((d) => d.file === n.html).map((d) => d.type);
      const runtime = runtimeTypes(js);
      if (JSON.stringify([...editor].sort()) !== JSON.stringify([...runtime].sort())) problems.push(`${n.html} registers [${editor.join(", ")}] but ${n.js} registers [${runtime.join(", ")}]`);
      if (!editor.includes(n.name)) problems.push(`node-red.nodes key "${n.name}" is not a type its files register ([${editor.join(", ")}])`);
    }
    const seen = new Map<string, string>();
    for (const d of definitions) {
      const earlier = seen.get(d.type);
      if (earlier) problems.push(`type "${d.type}" registered by both ${earlier} and ${d.file}`);
      seen.set(d.type, d.file);
    }
    // Offline stand-ins for the catalogue: Node-RED's core nodes and every Node-RED module installed here.
    const taken = new Map<string, string>();
    for (const file of allFiles(path.join(ROOT, "node_modules", "@node-red", "nodes", "core")).filter((f) => f.endsWith(".html"))) {
      for (const d of editorDefinitions(file).definitions) taken.set(d.type, "Node-RED core");
    }
    const modules = fs.readdirSync(path.join(ROOT, "node_modules")).flatMap((e) => (e.startsWith("@") ? fs.readdirSync(path.join(ROOT, "node_modules", e)).map((s) => `${e}/${s}`) : [e]));
    for (const m of modules) {
      const file = path.join(ROOT, "node_modules", m, "package.json");
      if (!fs.existsSync(file)) continue;
      const other = readJson(file);
      if (!isRecord(other) || !isRecord(other["node-red"]) || !isRecord(other["node-red"].nodes)) continue;
      for (const js of Object.values(other["node-red"].nodes)) {
        if (typeof js !== "string") continue;
        const html = path.join(ROOT, "node_modules", m, js.replace(/\.js$/, ".html"));
        if (fs.existsSync(html)) for (const d of editorDefinitions(html).definitions) taken.set(d.type, m);
      }
    }
    assert.ok(taken.has("inject") && taken.has("debug"), "Node-RED's core node definitions were found");
    for (const d of definitions) {
      const owner = taken.get(d.type);
      if (owner) problems.push(`type "${d.type}" is already Node-RED's (${owner})`);
    }
    assert.deepEqual(problems, []);
  });

  it("N02 examples: every file in examples/ is a flow, and every node that is not a config node appears in one", () => {
    const files = allFiles(path.join(ROOT, "examples"));
    assert.ok(files.length > 0, "examples/ holds no flows");
    const used = new Set<string>();
    for (const file of files) {
      // node-red-dev JSON.parses every file under examples/, whatever its name.
      let flow: unknown;
      try {
        flow = readJson(file);
      } catch (error) {
        assert.fail(`${path.relative(ROOT, file)} is not JSON (${(error as Error).message}); node-red-dev parses every file in examples/`);
      }
      assert.ok(Array.isArray(flow), `${path.relative(ROOT, file)} must be an array of nodes (a flow export)`);
      for (const node of flow) if (isRecord(node) && typeof node.type === "string") used.add(node.type);
    }
    const { definitions } = ourDefinitions();
    const needed = definitions.filter((d) => d.category !== "config").map((d) => d.type);
    assert.ok(needed.length > 0);
    assert.deepEqual(
      needed.filter((t) => !used.has(t)),
      [],
      "nodes without an example",
    );
  });

  it("D01 a small number of dependencies (at most 6, the catalogue's 95th percentile)", () => {
    const count = Object.keys(dependencies).length;
    assert.ok(count <= 6, `${count} dependencies: ${Object.keys(dependencies).join(", ")}`);
  });

  it("D02 no known-incompatible package anywhere in the production dependency tree", () => {
    // node-red-dev's badpackages.json, copied: packages that break Node-RED when installed alongside it.
    const bad: Record<string, string> = { "agent-base": "<6.0.0" };
    const lock = record(readJson(path.join(ROOT, "package-lock.json")), "package-lock.json");
    const packages = record(lock.packages, "package-lock.json packages");
    const root = record(packages[""], 'package-lock.json packages[""]');
    assert.deepEqual(root.dependencies ?? {}, dependencies, "package-lock.json is in step with package.json's dependencies (run npm install)");
    const found: string[] = [];
    let production = 0;
    for (const [where, entry] of Object.entries(packages)) {
      if (where === "" || !isRecord(entry) || entry.dev === true) continue;
      production++;
      const name = typeof entry.name === "string" ? entry.name : where.slice(where.lastIndexOf("node_modules/") + "node_modules/".length);
      const version = typeof entry.version === "string" ? entry.version : "";
      const range = bad[name];
      // A pre-release of a bad version is as bad.
      if (range !== undefined && version && semver.satisfies(version, range, { includePrerelease: true })) found.push(`${name}@${version} (${where})`);
    }
    assert.ok(production >= Object.keys(dependencies).length, "the lock file lists the production tree");
    assert.deepEqual(found, []);
  });

  // D03 (all dependencies at their latest versions) needs the npm registry: not checked offline; see the file's comment.
});

// ---------------------------------------------------------------------------------------------------------------
// npm pack

interface PackResult {
  files: { path: string }[];
}

/**
 * The sources as git sees them (tracked files and new ones it does not ignore) copied to a temporary directory,
 * without the working tree's build output: what `npm pack` on a clean checkout starts from.
 */
function cleanCopy(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ble-pack-"));
  const listed = execFileSync("git", ["ls-files", "-z", "--cached", "--others", "--exclude-standard"], { cwd: ROOT, encoding: "utf8" }).split("\0");
  for (const file of listed) {
    const from = path.join(ROOT, file);
    // Regular files only: deleted-but-tracked files are gone, and the worktree's node_modules link is not a source.
    if (!file || !fs.existsSync(from) || !fs.lstatSync(from).isFile()) continue;
    fs.mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
    fs.copyFileSync(from, path.join(dir, file));
  }
  fs.symlinkSync(fs.realpathSync(path.join(ROOT, "node_modules")), path.join(dir, "node_modules"), "dir");
  return dir;
}

describe("package: npm pack contents (of a clean copy of the sources, built by npm pack itself)", () => {
  let shipped: Set<string>;
  /** Where the package was packed: a clean copy of the sources, built by npm pack's prepack script. */
  let packRoot: string;

  before(function () {
    this.timeout(180000);
    packRoot = cleanCopy();
    assert.ok(!fs.existsSync(path.join(packRoot, nodeFiles[0].js)), "the copy starts without build output");
    // Scripts run, as for npm publish: prepack builds the package. --dry-run: the tarball itself is not written.
    const out = execFileSync("npm", ["pack", "--dry-run", "--json"], { cwd: packRoot, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
    const result = JSON.parse(out) as PackResult[];
    shipped = new Set(result[0].files.map((f) => f.path.split(path.sep).join("/")));
  });

  after(() => {
    if (packRoot) fs.rmSync(packRoot, { recursive: true, force: true });
  });

  it("ships what Node-RED and a user need: nodes, editor files and their scripts, locales, icons, examples, README, LICENSE", () => {
    const { definitions } = ourDefinitions();
    const required = ["package.json", "README.md", "LICENSE", ...nodeFiles.flatMap((n) => [n.js, n.html])];
    // The editor scripts the editor files load from resources/ (Node-RED serves them at resources/<module>/).
    for (const n of nodeFiles) required.push(...editorScripts(path.join(ROOT, n.html), packageName));
    // Node-RED reads message catalogues and help from nodes/locales/<lang>/<node file>.{json,html}.
    for (const n of nodeFiles) {
      const base = path.basename(n.js, ".js");
      required.push(`nodes/locales/en-US/${base}.json`, `nodes/locales/en-US/${base}.html`);
    }
    for (const file of allFiles(path.join(ROOT, "nodes", "locales"))) required.push(path.relative(ROOT, file).split(path.sep).join("/"));
    // Icons: every one the editor definitions name, from the package's icons directory next to the node files.
    for (const d of definitions) if (d.icon && !d.icon.startsWith("font-awesome/")) required.push(`nodes/icons/${d.icon}`);
    for (const file of allFiles(path.join(ROOT, "icons"))) required.push(`nodes/icons/${path.basename(file)}`);
    for (const file of allFiles(path.join(ROOT, "examples"))) required.push(path.relative(ROOT, file).split(path.sep).join("/"));
    assert.deepEqual(
      [...new Set(required)].filter((f) => !shipped.has(f)),
      [],
      "missing from the package",
    );
  });

  it("ships no sources, tests, fixtures, source maps or development launcher", () => {
    const unwanted: [RegExp, string][] = [
      [/^src\//, "TypeScript sources (the package ships the compiled nodes/)"],
      [/^test\//, "tests"],
      [/(^|\/)(fixtures?|__fixtures__|__tests__|test-artifacts)\//, "test fixtures"],
      [/\.(btsnoop|tgz)$/, "captures and packed archives"],
      [/^nodes\/demo\//, "the demo launcher (needs node-red, a devDependency)"],
      [/\.map$/, "source maps (they point at src/, which is not shipped)"],
      [/\.ts$/, "TypeScript files"],
      [/^(tsconfig|eslint\.config|\.mocharc)|^\.ci\//, "build and test configuration"],
      [/^icons\//, "icon sources (the build copies them to nodes/icons)"],
    ];
    const found = [...shipped].flatMap((f) => unwanted.filter(([re]) => re.test(f)).map(([, why]) => `${f}: ${why}`));
    assert.deepEqual(found, []);
  });

  it("ships exactly the code its nodes load, which loads only shipped files, dependencies and Node.js built-ins", () => {
    const builtins = new Set(builtinModules);
    const problems: string[] = [];
    const reached = new Set<string>();
    const queue = nodeFiles.map((n) => n.js);
    while (queue.length > 0) {
      const file = queue.shift() as string;
      if (reached.has(file)) continue;
      reached.add(file);
      for (const { specifier, dynamic } of moduleRequests(path.join(packRoot, file))) {
        if (specifier.startsWith(".")) {
          const base = path.posix.normalize(path.posix.join(path.posix.dirname(file), specifier));
          const target = [base, `${base}.js`, `${base}.json`, `${base}/index.js`].find((c) => shipped.has(c));
          if (!target) problems.push(`${file} loads ${specifier}, which is not in the package`);
          else if (target.endsWith(".js")) queue.push(target);
        } else if (specifier.startsWith("node:") || builtins.has(packageOf(specifier))) {
          continue;
        } else if (!(packageOf(specifier) in dependencies)) {
          problems.push(`${file} ${dynamic ? "imports" : "requires"} ${specifier}, which is not a dependency (users do not get devDependencies)`);
        }
      }
    }
    // Editor scripts run in the browser: an editor file loads them, not a node.
    const editorLoaded = new Set(nodeFiles.flatMap((n) => editorScripts(path.join(packRoot, n.html), packageName)));
    for (const f of shipped) if (f.endsWith(".js") && !reached.has(f) && !editorLoaded.has(f)) problems.push(`${f} is shipped but no node or editor file loads it`);
    for (const f of editorLoaded) if (!shipped.has(f)) problems.push(`${f} is loaded by an editor file but not in the package`);
    assert.deepEqual(problems, []);
  });

  it("ships no source map reference to a file it does not ship", () => {
    const dangling: string[] = [];
    for (const file of [...shipped].filter((f) => f.endsWith(".js"))) {
      const text = fs.readFileSync(path.join(packRoot, file), "utf8");
      for (const [, target] of text.matchAll(/^\/\/# sourceMappingURL=(\S+)\s*$/gm)) {
        if (target.startsWith("data:")) continue;
        const resolved = path.posix.normalize(path.posix.join(path.posix.dirname(file), target));
        if (!shipped.has(resolved)) dangling.push(`${file} -> ${target}`);
      }
    }
    assert.deepEqual(dangling, [], "source map comments pointing at files the package does not contain");
  });

  it("ships no stale build output: every compiled module has its TypeScript source", () => {
    const stale = [...shipped].filter((f) => f.startsWith("nodes/") && f.endsWith(".js") && !fs.existsSync(path.join(packRoot, "src", f.slice("nodes/".length).replace(/\.js$/, ".ts"))));
    assert.deepEqual(stale, [], "compiled files whose source is gone (a clean build would not produce them): delete them before packing");
  });
});
