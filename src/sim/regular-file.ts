/**
 * Reading a file a scenario names, safely: only a regular file is read, and at most a given number of bytes.
 * A FIFO would stop the event loop until someone writes to it, a device such as /dev/zero never ends, and opening
 * a serial port can reset what is attached: none of them is even opened. The check is made on the path first, then
 * on the descriptor actually read (the path may change in between); O_NONBLOCK makes opening a FIFO that replaced
 * the file return at once instead of waiting for a writer.
 */
import * as fs from "node:fs";
import { ScenarioError } from "./validate";

/** What is wrong with the file, in words that never quote its content or its path. */
export type FileProblem = { kind: "unreadable"; reason: string } | { kind: "not-regular"; what: string } | { kind: "too-large" };

export class RegularFileError extends Error {
  constructor(readonly problem: FileProblem) {
    super(problem.kind === "unreadable" ? `cannot be read (${problem.reason})` : problem.kind === "not-regular" ? `is ${problem.what}, not a regular file` : "is too large");
    this.name = "RegularFileError";
  }
}

/** What a refusal of a file a scenario names says about it. */
export interface ScenarioFileTexts {
  /** What `maxBytes` is, in words: "1 MiB (1048576 bytes)". */
  limit: string;
  /** What the file is for: "a scenario file", "a file to serve". */
  purpose: string;
  /** Added to the refusal of a directory, FIFO or device: "a scenario must be a JSON file". */
  notRegularHint?: string;
}

/**
 * readRegularFile for a file a scenario names (the one place its problems become a ScenarioError): the error names
 * `field` and says what is wrong, never quoting the path (it holds the scenario's directory) or the content.
 */
export function readScenarioFile(file: string, maxBytes: number, field: string, texts: ScenarioFileTexts): Buffer {
  try {
    return readRegularFile(file, maxBytes);
  } catch (error) {
    if (!(error instanceof RegularFileError)) throw error;
    const { problem } = error;
    if (problem.kind === "too-large") throw new ScenarioError(field, `is larger than ${texts.limit}, the limit for ${texts.purpose}`);
    if (problem.kind === "not-regular" && texts.notRegularHint !== undefined) throw new ScenarioError(field, `${error.message}: ${texts.notRegularHint}`);
    throw new ScenarioError(field, error.message);
  }
}

/** The bytes of a regular file of at most `maxBytes`; anything else throws a RegularFileError. */
export function readRegularFile(file: string, maxBytes: number): Buffer {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(file);
  } catch (error) {
    throw new RegularFileError({ kind: "unreadable", reason: systemReason(error) });
  }
  if (!stat.isFile()) throw new RegularFileError({ kind: "not-regular", what: fileKind(stat) });
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | (fs.constants.O_NONBLOCK ?? 0) | (fs.constants.O_NOCTTY ?? 0));
  } catch (error) {
    throw new RegularFileError({ kind: "unreadable", reason: systemReason(error) });
  }
  try {
    const opened = fs.fstatSync(fd);
    if (!opened.isFile()) throw new RegularFileError({ kind: "not-regular", what: fileKind(opened) });
    if (opened.size > maxBytes) throw new RegularFileError({ kind: "too-large" });
    // One byte more than the file's size: a file that grew since fstat is read up to the limit, never beyond it.
    let buffer = Buffer.alloc(Math.min(opened.size, maxBytes) + 1);
    let length = 0;
    for (;;) {
      if (length === buffer.length) {
        if (length > maxBytes) throw new RegularFileError({ kind: "too-large" });
        const grown = Buffer.alloc(Math.min(buffer.length * 2, maxBytes + 1));
        buffer.copy(grown);
        buffer = grown;
      }
      const n = fs.readSync(fd, buffer, length, buffer.length - length, null);
      if (n === 0) break;
      length += n;
    }
    if (length > maxBytes) throw new RegularFileError({ kind: "too-large" });
    return buffer.subarray(0, length);
  } catch (error) {
    if (error instanceof RegularFileError) throw error;
    throw new RegularFileError({ kind: "unreadable", reason: systemReason(error) });
  } finally {
    fs.closeSync(fd);
  }
}

function fileKind(stat: fs.Stats): string {
  if (stat.isDirectory()) return "a directory";
  if (stat.isFIFO()) return "a FIFO";
  if (stat.isCharacterDevice()) return "a character device";
  if (stat.isBlockDevice()) return "a block device";
  if (stat.isSocket()) return "a socket";
  return "not a file";
}

/** "ENOENT: no such file or directory" from a Node.js file-system error, without the path it repeats. */
export function systemReason(error: unknown): string {
  const e = error as NodeJS.ErrnoException;
  const described = typeof e?.message === "string" ? /^([A-Z][A-Z0-9_]*: [^,]*)/.exec(e.message) : null;
  if (described) return described[1];
  return typeof e?.code === "string" ? e.code : "unknown error";
}
