/**
 * Helpers for the offline package checks (test/package/scorecard.test.ts): a small semver range evaluator,
 * the node-definition reader of `node-red-dev validate`, the editor scripts an editor file loads from the package's
 * resources/, and a reader of the modules a compiled file loads.
 * JavaScript is parsed with the TypeScript compiler (a devDependency) rather than with regular expressions, so
 * comments, strings and nesting cannot fool the checks.
 */
import * as fs from "node:fs";
import ts from "typescript";

// ---------------------------------------------------------------------------------------------------------------
// Semver ranges

type Triple = [number, number, number];

/** Comparators `op version`; a range is an OR of AND-sets of them. */
interface Comparator {
  op: ">=" | ">" | "<=" | "<" | "=";
  version: Triple;
}

function parseVersion(text: string): Triple {
  // Pre-release and build tags are cut: the ranges checked here compare releases.
  const match = /^v?(\d+)\.(\d+)\.(\d+)(?:[-+].*)?$/.exec(text.trim());
  if (!match) throw new Error(`not a version: ${JSON.stringify(text)}`);
  return [Number(match[1]), Number(match[2]), Number(match[3])];
}

function compare(a: Triple, b: Triple): number {
  for (let i = 0; i < 3; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return 0;
}

/** "18" / "18.5" / "18.5.1" (x, X and * allowed in place of missing parts) as the comparators npm reads them. */
function partial(op: string, text: string): Comparator[] {
  const match = /^v?(\d+|[xX*])(?:\.(\d+|[xX*]))?(?:\.(\d+|[xX*]))?$/.exec(text);
  if (!match) throw new Error(`unsupported version in a range: ${JSON.stringify(text)}`);
  const parts = [match[1], match[2], match[3]].map((p) => (p === undefined || /^[xX*]$/.test(p) ? undefined : Number(p)));
  const [major, minor, patch] = parts;
  if (major === undefined) return []; // "*": anything
  const low: Triple = [major, minor ?? 0, patch ?? 0];
  // The first release after the partial version: "18" → 19.0.0, "18.5" → 18.6.0.
  const next: Triple = minor === undefined ? [major + 1, 0, 0] : patch === undefined ? [major, minor + 1, 0] : [major, minor, patch];
  const complete = minor !== undefined && patch !== undefined;
  switch (op) {
    case ">=":
      return [{ op: ">=", version: low }];
    case ">":
      return [complete ? { op: ">", version: low } : { op: ">=", version: next }];
    case "<":
      return [{ op: "<", version: low }];
    case "<=":
      return [complete ? { op: "<=", version: low } : { op: "<", version: next }];
    case "^": {
      const upper: Triple = major > 0 ? [major + 1, 0, 0] : (minor ?? 0) > 0 || patch === undefined ? [0, (minor ?? 0) + 1, 0] : [0, 0, (patch ?? 0) + 1];
      return [
        { op: ">=", version: low },
        { op: "<", version: minor === undefined ? [major + 1, 0, 0] : upper },
      ];
    }
    case "~":
      return [
        { op: ">=", version: low },
        { op: "<", version: minor === undefined ? [major + 1, 0, 0] : [major, minor + 1, 0] },
      ];
    default:
      // "=" or no operator: an exact version, or every version the partial one covers.
      if (complete) return [{ op: "=", version: low }];
      return [
        { op: ">=", version: low },
        { op: "<", version: next },
      ];
  }
}

/**
 * Parses the range forms package.json fields use: `||` alternatives of space-separated comparators
 * (>=, >, <=, <, =, ^, ~, bare and partial versions, x-ranges). Hyphen ranges and pre-release ranges throw: the
 * caller must see that the evaluator needs extending, not get a wrong answer.
 */
export function parseRange(range: string): Comparator[][] {
  return range.split("||").map((alternative) => {
    const tokens = alternative.trim().replace(/(>=|<=|>|<|=|\^|~)\s+/g, "$1").split(/\s+/).filter(Boolean);
    if (tokens.includes("-")) throw new Error(`hyphen ranges are not supported here: ${JSON.stringify(range)}`);
    return tokens.flatMap((token) => {
      const match = /^(>=|<=|>|<|=|\^|~)?(.*)$/.exec(token) as RegExpExecArray;
      return partial(match[1] ?? "=", match[2]);
    });
  });
}

export function satisfies(version: string, range: string): boolean {
  const v = parseVersion(version);
  return parseRange(range).some((set) =>
    set.every((c) => {
      const d = compare(v, c.version);
      return c.op === ">=" ? d >= 0 : c.op === ">" ? d > 0 : c.op === "<=" ? d <= 0 : c.op === "<" ? d < 0 : d === 0;
    }),
  );
}

/** The lowest version `range` admits (semver.minVersion), for the lower-bounded forms above. */
export function minVersion(range: string): string {
  const candidates = parseRange(range).map((set) => {
    let low: Triple = [0, 0, 0];
    for (const c of set) {
      const bound: Triple = c.op === ">" ? [c.version[0], c.version[1], c.version[2] + 1] : c.op === ">=" || c.op === "=" ? c.version : [0, 0, 0];
      if (compare(bound, low) > 0) low = bound;
    }
    return low;
  });
  const min = candidates.filter((c) => satisfies(c.join("."), range)).sort(compare)[0];
  if (!min) throw new Error(`no version satisfies ${JSON.stringify(range)}`);
  return min.join(".");
}

// ---------------------------------------------------------------------------------------------------------------
// Node definitions, as `node-red-dev validate` reads them

/**
 * The <script> blocks node-red-dev reads: only those with type="text/javascript" (its regular expression, in
 * src/libs/checknodes.js getNodeDefinitions). A definition in any other block is invisible to the scorecard.
 */
const VALIDATOR_SCRIPT = /<script.+?type=['"]text\/javascript['"].*?>([\S\s]*?)<\/script>/gi;

export interface NodeDefinition {
  type: string;
  /** The `category` literal, if the definition has one. */
  category?: string;
  /** `icon` literal, if any. */
  icon?: string;
}

export interface EditorDefinitions {
  definitions: NodeDefinition[];
  /**
   * What node-red-dev would record as errors. Any error makes it add a node type called "__errors__" to its list,
   * which then has no example and fails N02, so every one of these costs a scorecard point.
   */
  errors: string[];
}

function walk(node: ts.Node, visit: (n: ts.Node) => void): void {
  visit(node);
  ts.forEachChild(node, (child) => walk(child, visit));
}

function isRegisterType(node: ts.Node): node is ts.CallExpression {
  return ts.isCallExpression(node) && ts.isPropertyAccessExpression(node.expression) && node.expression.name.text === "registerType";
}

/** acorn's `Literal`: strings, numbers, booleans, null, regular expressions. Not templates, not `-1`. */
function isAcornLiteral(node: ts.Expression): boolean {
  return (
    ts.isStringLiteral(node) ||
    ts.isNumericLiteral(node) ||
    ts.isRegularExpressionLiteral(node) ||
    node.kind === ts.SyntaxKind.TrueKeyword ||
    node.kind === ts.SyntaxKind.FalseKeyword ||
    node.kind === ts.SyntaxKind.NullKeyword
  );
}

/** Properties node-red-dev reads from a definition, and the form each must have for it to read them. */
const MUST_BE_OBJECT = ["defaults", "credentials"];
const MUST_BE_LITERAL = ["icon", "color", "inputs", "outputs", "category"];

/** The node types an editor .html file registers, read the way node-red-dev reads them. */
export function editorDefinitions(file: string): EditorDefinitions {
  const html = fs.readFileSync(file, "utf8");
  const definitions: NodeDefinition[] = [];
  const errors: string[] = [];
  const blocks = [...html.matchAll(VALIDATOR_SCRIPT)].map((m) => m[1]);
  if (blocks.length === 0) errors.push(`${file}: no <script type="text/javascript"> block (node-red-dev stops with "No <script> sections found")`);
  blocks.forEach((block, i) => {
    const source = ts.createSourceFile(`${file}#script${i}.js`, block, ts.ScriptTarget.Latest, true, ts.ScriptKind.JS);
    walk(source, (node) => {
      if (!isRegisterType(node)) return;
      const [typeArg, defArg] = node.arguments;
      if (!typeArg || !ts.isStringLiteral(typeArg)) {
        errors.push(`${file}: registerType with a type that is not a string literal`);
        return;
      }
      if (!defArg || !ts.isObjectLiteralExpression(defArg)) {
        errors.push(`${file}: registerType("${typeArg.text}") with a definition that is not an object literal`);
        return;
      }
      const def: NodeDefinition = { type: typeArg.text };
      for (const prop of defArg.properties) {
        if (!ts.isPropertyAssignment(prop) || !(ts.isIdentifier(prop.name) || ts.isStringLiteral(prop.name))) continue;
        const key = prop.name.text;
        const value = prop.initializer;
        if (MUST_BE_OBJECT.includes(key) && !ts.isObjectLiteralExpression(value)) errors.push(`${file}: "${typeArg.text}".${key} is not an inline object (node-red-dev: ${key}-not-inline)`);
        if (MUST_BE_LITERAL.includes(key) && !isAcornLiteral(value)) errors.push(`${file}: "${typeArg.text}".${key} is not a literal (node-red-dev: ${key}-not-inline)`);
        if (key === "category" && ts.isStringLiteral(value)) def.category = value.text;
        if (key === "icon" && ts.isStringLiteral(value)) def.icon = value.text;
      }
      definitions.push(def);
    });
  });
  if (blocks.length > 0 && definitions.length === 0 && errors.length === 0) errors.push(`${file}: no registerType (node-red-dev stops with "No type definitions found")`);
  return { definitions, errors };
}

/**
 * Files of the package's resources/ folder an editor .html file loads with `<script src="resources/<module>/…">`
 * (Node-RED serves <module>/resources/ there), as paths inside the package ("resources/…"). A script of another
 * module, or of an absolute URL, is not listed.
 */
export function editorScripts(file: string, moduleName: string): string[] {
  const html = fs.readFileSync(file, "utf8");
  const prefix = `resources/${moduleName}/`;
  return [...html.matchAll(/<script\b[^>]*\bsrc=["']([^"']+)["']/gi)].map((m) => m[1]).filter((src) => src.startsWith(prefix)).map((src) => `resources/${src.slice(prefix.length)}`);
}

/** Types a runtime .js file registers: `RED.nodes.registerType("<literal>", …)`. */
export function runtimeTypes(file: string): string[] {
  const source = ts.createSourceFile(file, fs.readFileSync(file, "utf8"), ts.ScriptTarget.Latest, true, ts.ScriptKind.JS);
  const types: string[] = [];
  walk(source, (node) => {
    if (!isRegisterType(node)) return;
    const [typeArg] = node.arguments;
    types.push(typeArg && ts.isStringLiteral(typeArg) ? typeArg.text : "<not a string literal>");
  });
  return types;
}

// ---------------------------------------------------------------------------------------------------------------
// Modules a compiled file loads

export interface ModuleRequest {
  specifier: string;
  /** `import(…)` rather than `require(…)`: loaded only when that code runs. */
  dynamic: boolean;
}

/** Every `require("…")` and `import("…")` with a literal specifier in a CommonJS file. */
export function moduleRequests(file: string): ModuleRequest[] {
  const source = ts.createSourceFile(file, fs.readFileSync(file, "utf8"), ts.ScriptTarget.Latest, true, ts.ScriptKind.JS);
  const requests: ModuleRequest[] = [];
  walk(source, (node) => {
    if (!ts.isCallExpression(node)) return;
    const [arg] = node.arguments;
    if (!arg || !ts.isStringLiteralLike(arg)) return;
    if (ts.isIdentifier(node.expression) && node.expression.text === "require") requests.push({ specifier: arg.text, dynamic: false });
    else if (node.expression.kind === ts.SyntaxKind.ImportKeyword) requests.push({ specifier: arg.text, dynamic: true });
  });
  return requests;
}

/** "crc/calculators/crc16" → "crc", "@scope/name/sub" → "@scope/name". */
export function packageOf(specifier: string): string {
  const parts = specifier.split("/");
  return specifier.startsWith("@") ? parts.slice(0, 2).join("/") : parts[0];
}
