/**
 * Helpers for the offline package checks (test/package/scorecard.test.ts): the node-definition reader of
 * `node-red-dev validate`, the editor scripts an editor file loads from the package's resources/, and a reader of the
 * modules a compiled file loads (version ranges: the `semver` package).
 * JavaScript is parsed with the TypeScript compiler (a devDependency) rather than with regular expressions, so
 * comments, strings and nesting cannot fool the checks.
 */
import * as fs from "node:fs";
import ts from "typescript";

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
