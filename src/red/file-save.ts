/**
 * Saving received files as Node-RED's file nodes save theirs: a "Save to" directory resolved against the
 * `fileWorkingDirectory` setting, and files that never overwrite one already there. No Node-RED here (the node
 * passes the setting in), only the file system.
 */
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { numberedFileName, resolveInside, sanitizeFileName } from "../protocol/file-name";

/** Why a file was not saved, as an error catalog key with parameters (errors of the file system aside). */
export class SaveError extends Error {
  constructor(
    readonly key: "no-free-name" | "save-cancelled",
    readonly params: Readonly<Record<string, string | number>> = {},
  ) {
    super(`${key} ${JSON.stringify(params)}`);
    this.name = "SaveError";
  }
}

/** Names tried when the file name is taken: "a.txt", "a (1).txt" … "a (9999).txt". */
const MAX_NUMBERED_NAMES = 10000;

/**
 * The absolute directory that a "Save to" directory names, as Node-RED's file nodes resolve a file name: an
 * absolute path as it is, a relative one against the `fileWorkingDirectory` setting when that is set, else
 * against the process's working directory. (Environment variables, "${NAME}", the runtime has already
 * substituted when it created the node.)
 */
export function saveDirectory(directory: string, fileWorkingDirectory: unknown): string {
  return typeof fileWorkingDirectory === "string" && fileWorkingDirectory !== "" ? path.resolve(fileWorkingDirectory, directory) : path.resolve(directory);
}

/**
 * Saves `data` under the sanitised remote name in the absolute directory `dir`, never overwriting: the bytes go to a
 * temporary file first, which is then hard-linked to the first free name ("a.txt", "a (1).txt", ...);
 * link() fails instead of replacing an existing file, so a name taken meanwhile is never clobbered.
 * File systems without hard links fall back to check-then-rename. Returns the final path.
 * `temps` holds the temporary files being written, so that a closing node can remove them (removing one from the
 * set cancels its save).
 */
export async function saveFile(dir: string, remoteName: string, data: Buffer, temps: Set<string>): Promise<string> {
  await fs.promises.mkdir(dir, { recursive: true });
  const safeName = sanitizeFileName(remoteName);
  const temp = path.join(dir, `.nus-ymodem-${crypto.randomBytes(6).toString("hex")}.part`);
  temps.add(temp);
  try {
    await fs.promises.writeFile(temp, data, { flag: "wx" });
    for (let n = 0; n < MAX_NUMBERED_NAMES; n++) {
      if (!temps.has(temp)) throw new SaveError("save-cancelled");
      const candidate = resolveInside(dir, numberedFileName(safeName, n));
      if (await publish(temp, candidate)) return candidate;
    }
    throw new SaveError("no-free-name", { name: JSON.stringify(safeName), dir });
  } finally {
    temps.delete(temp);
    await fs.promises.rm(temp, { force: true });
  }
}

/** Removes temporary files whose removal was interrupted (a node closing mid-save). */
export async function removeTemps(temps: Set<string>): Promise<void> {
  await Promise.all([...temps].map((temp) => fs.promises.rm(temp, { force: true }).catch(() => undefined)));
  temps.clear();
}

const NO_HARD_LINKS = new Set(["EPERM", "ENOTSUP", "EOPNOTSUPP", "ENOSYS", "EXDEV", "EMLINK"]);

/** true when `temp` now also lives at `target`; false when `target` exists. */
async function publish(temp: string, target: string): Promise<boolean> {
  try {
    await fs.promises.link(temp, target);
    return true;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? "";
    if (code === "EEXIST") return false;
    if (!NO_HARD_LINKS.has(code)) throw error;
  }
  try {
    await fs.promises.lstat(target);
    return false;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
  }
  await fs.promises.rename(temp, target);
  return true;
}
