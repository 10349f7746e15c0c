/**
 * The scenario kind "nus-ymodem": its options checked (every failure a ScenarioError naming the field) and the files
 * it serves read (regular files only, bounded) or generated, then a NusYmodemPeripheral built from them.
 */
import * as path from "node:path";
import { XOSS_MAX_CONTENT_BYTES } from "../../protocol/xoss";
import type { YmodemSenderFile } from "../../protocol/ymodem-sender";
import type { PeripheralKind } from "../peripheral";
import { readScenarioFile } from "../regular-file";
import { isObject, keyName, optionalEnum, optionalInteger, optionalNumber, optionalString, rejectUnknownKeys, ScenarioError, type JsonObject } from "../validate";
import { generateFileContent } from "./file-content";
import { NusYmodemPeripheral } from "./nus-ymodem";
import { optionalBoolean, optionalIntegerList, rejectTogether } from "./options";

/** Largest generated file: beyond the node's 64 MiB default limit, within reason for memory. */
const MAX_GENERATED_BYTES = 256 * 1024 * 1024;
const FILE_SOURCE_KEYS = ["sizeBytes", "seed"];

function readFileToServe(baseDir: string, relative: string, field: string): Buffer {
  if (relative.length === 0) throw new ScenarioError(field, "must not be empty");
  return readScenarioFile(path.resolve(baseDir, relative), MAX_GENERATED_BYTES, field, { limit: `${MAX_GENERATED_BYTES} bytes`, purpose: "a file to serve" });
}

function generated(obj: JsonObject, field: string): Buffer {
  if (obj.sizeBytes === undefined) throw new ScenarioError(`${field}.sizeBytes`, "is required");
  const size = optionalInteger(obj, "sizeBytes", field, 0, 0, MAX_GENERATED_BYTES);
  const seed = optionalInteger(obj, "seed", field, 0, 0, 0xffffffff);
  return generateFileContent(size, seed);
}

/** A YMODEM file name: non-empty, no NUL, and a block 0 that holds it (checked again by the sender). */
function checkName(name: string, field: string, maxBytes: number): string {
  if (name.length === 0) throw new ScenarioError(field, "must not be empty");
  if (name.includes("\0")) throw new ScenarioError(field, "must not contain NUL");
  if (Buffer.byteLength(name, "utf8") > maxBytes) throw new ScenarioError(field, `must be at most ${maxBytes} bytes in UTF-8`);
  return name;
}

function parseFiles(spec: JsonObject, field: string, baseDir: string, xoss: boolean): YmodemSenderFile[] {
  const at = `${field}.files`;
  if (!isObject(spec.files)) throw new ScenarioError(at, 'must be an object like { "name": "path" }');
  const entries = Object.entries(spec.files);
  if (entries.length === 0) throw new ScenarioError(at, "must name at least one file");
  return entries.map(([name, source], i) => {
    const where = `${at}.${keyName(i)}`;
    checkName(name, where, xoss ? XOSS_MAX_CONTENT_BYTES : 100);
    if (typeof source === "string") return { name, data: readFileToServe(baseDir, source, where) };
    if (isObject(source)) {
      rejectUnknownKeys(source, FILE_SOURCE_KEYS, where, "option");
      return { name, data: generated(source, where) };
    }
    throw new ScenarioError(where, 'must be a path or { "sizeBytes": n, "seed": n }');
  });
}

export const nusYmodemKind: PeripheralKind = {
  kind: "nus-ymodem",
  defaultAddressType: "random",
  options: [
    "file",
    "sizeBytes",
    "seed",
    "filename",
    "files",
    "crc",
    "blocks",
    "corruptBlocks",
    "streaming",
    "framing",
    "dialect",
    "blockTimeoutMs",
    "xoss",
    "chatterMs",
    "repeatBlock",
    "endlessBatch",
    "withholdEot",
  ],
  create(spec, field, identity, ctx) {
    const xoss = optionalBoolean(spec, "xoss", field, false);
    if (xoss) {
      for (const key of ["file", "sizeBytes", "seed", "filename"]) {
        if (spec[key] !== undefined) throw new ScenarioError(`${field}.${key}`, "cannot be combined with xoss (name the device's files in files)");
      }
      if (spec.files === undefined) throw new ScenarioError(`${field}.files`, 'is required with xoss (an object like { "name": "path" })');
    }
    rejectTogether(spec, "file", ["sizeBytes", "seed", "files"], field);
    // The hostile behaviours: one per peripheral, each a different way of never finishing.
    rejectTogether(spec, "chatterMs", ["repeatBlock", "endlessBatch", "withholdEot"], field);
    rejectTogether(spec, "repeatBlock", ["endlessBatch", "withholdEot"], field);
    rejectTogether(spec, "endlessBatch", ["withholdEot", "xoss"], field);
    rejectTogether(spec, "files", ["sizeBytes", "seed", "filename"], field);
    const dialect = optionalEnum(spec, "dialect", field, ["seed", "standard"] as const, "seed");
    // The seed's block 0 is `"name size"` in 128 bytes; sz puts a longer standard header in a 1K block 0.
    const maxName = dialect === "seed" ? 100 : 1000;
    let files: YmodemSenderFile[];
    if (spec.files !== undefined) {
      files = parseFiles(spec, field, ctx.baseDir, xoss);
    } else if (spec.file !== undefined) {
      const relative = optionalString(spec, "file", field, "", 4096);
      const data = readFileToServe(ctx.baseDir, relative, `${field}.file`);
      const name = spec.filename === undefined ? path.basename(relative) : optionalString(spec, "filename", field, "", maxName);
      files = [{ name: checkName(name, `${field}.filename`, maxName), data }];
    } else {
      // Neither: a generated file, 100,000 bytes (not a multiple of 128 or 1024), named like the seed's test file.
      const data = spec.sizeBytes === undefined ? generateFileContent(100_000, optionalInteger(spec, "seed", field, 0, 0, 0xffffffff)) : generated(spec, field);
      const name = optionalString(spec, "filename", field, "test.bin", maxName);
      files = [{ name: checkName(name, `${field}.filename`, maxName), data }];
    }
    const crc = spec.crc === undefined ? undefined : optionalEnum(spec, "crc", field, ["arc", "xmodem"] as const, "arc");
    try {
      return new NusYmodemPeripheral({
        ...identity,
        clock: ctx.clock,
        maxMtu: identity.serverMtu,
        link: ctx.link,
        files,
        dialect,
        crc,
        blocks: optionalEnum(spec, "blocks", field, ["soh", "stx", "auto"] as const, "auto"),
        corruptBlocks: optionalIntegerList(spec, "corruptBlocks", field, 0, 0x7fffffff),
        streaming: optionalBoolean(spec, "streaming", field, false),
        framing: optionalEnum(spec, "framing", field, ["aligned", "packed"] as const, "aligned"),
        blockTimeoutMs: optionalNumber(spec, "blockTimeoutMs", field, 5000, 10, 600_000),
        xoss,
        chatterMs: spec.chatterMs === undefined ? undefined : optionalNumber(spec, "chatterMs", field, 400, 1, 600_000),
        repeatBlock: spec.repeatBlock === undefined ? undefined : optionalEnum(spec, "repeatBlock", field, ["block0", "data"] as const, "data"),
        endlessBatch: optionalBoolean(spec, "endlessBatch", field, false),
        withholdEot: optionalBoolean(spec, "withholdEot", field, false),
      });
    } catch (error) {
      // The sender's own check of block 0 (a name that does not fit with its size).
      if (error instanceof RangeError) throw new ScenarioError(`${field}.${spec.files !== undefined ? "files" : "filename"}`, error.message);
      throw error;
    }
  },
};
