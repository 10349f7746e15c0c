/**
 * File names that come from a remote device (YMODEM block 0), made safe to save on this machine; and the name a
 * sender announces for a local file (announcedFileName). Pure code: no file system access, only path arithmetic.
 *
 * A remote name is untrusted. The sanitised name is a single path component that is valid on Linux,
 * macOS and Windows, so it can never climb out of, or point elsewhere from, the directory it is saved in.
 */
import * as path from "node:path";

/** Cap in UTF-8 bytes: leaves room under the usual 255-byte limit for a " (9999)" suffix. */
export const MAX_FILE_NAME_BYTES = 200;

/** Used when nothing usable is left of the remote name ("", ".", "..", "/", "\u0000" ...). */
export const FALLBACK_FILE_NAME = "download";

/** Longest extension kept when a long name is cut (so "x…x.fit" stays a .fit file). */
const MAX_KEPT_EXTENSION_BYTES = 20;

// Unpaired UTF-16 surrogates cannot be written as UTF-8; Buffer would turn each into 3 bytes of U+FFFD.
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;
// C0/C1 controls (NUL included), line/paragraph separators, and the bidi overrides that can make
// "evil\u202Etxt.exe" display as "evilexe.txt".
const UNSAFE_CHARACTERS = /[\p{Cc}\p{Zl}\p{Zp}\u200E\u200F\u202A-\u202E\u2066-\u2069]/gu;
// Reserved on Windows (":" would also open an NTFS alternate data stream).
const WINDOWS_RESERVED_CHARACTERS = /[<>:"|?*]/g;
const SEPARATORS = /[/\\]+/;
// Windows device names, with or without an extension ("CON", "nul.txt", "COM1.fit"). Windows judges the part
// before the first dot with its trailing spaces removed, so "CON .txt" is the console too; CONIN$, CONOUT$
// (the console's input and output) and CLOCK$ are device names as well.
const WINDOWS_DEVICE_NAME = /^(con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³]|conin\$|conout\$|clock\$) *(\..*)?$/i;

function utf8Length(text: string): number {
  return Buffer.byteLength(text, "utf8");
}

/** Cuts `text` to at most `max` UTF-8 bytes at a code point boundary. */
function truncateUtf8(text: string, max: number): string {
  if (utf8Length(text) <= max) return text;
  let out = "";
  let bytes = 0;
  for (const ch of text) {
    const n = utf8Length(ch);
    if (bytes + n > max) break;
    out += ch;
    bytes += n;
  }
  return out;
}

/** Windows drops trailing dots and spaces; leading dots would hide the file (or make "." / ".."). */
function trimDotsAndSpaces(text: string): string {
  return text.replace(/^[.\s]+/u, "").replace(/[.\s]+$/u, "");
}

/** Splits "name.ext" at the last dot; "" when there is no usable extension. */
function splitExtension(name: string): { stem: string; ext: string } {
  const dot = name.lastIndexOf(".");
  if (dot <= 0 || dot === name.length - 1) return { stem: name, ext: "" };
  return { stem: name.slice(0, dot), ext: name.slice(dot) };
}

/**
 * A safe local file name for a name announced by a remote device:
 * - unpaired surrogates, control characters (NUL included), line separators, bidi overrides and the
 *   characters Windows reserves (`<>:"|?*`) become "_";
 * - path separators (`/` and `\`) split the name; components that are empty or only dots and spaces
 *   (".", "..", "...") are dropped and the rest joined with "_" ("../../etc/passwd" → "etc_passwd",
 *   "/abs/path" → "abs_path");
 * - leading dots and spaces and trailing dots and spaces go (no hidden files, nothing Windows would rewrite);
 * - Windows device names ("CON", "nul.txt", "CON .txt", "CONIN$") get a "_" prefix;
 * - the result is cut to `maxBytes` UTF-8 bytes, keeping a short extension;
 * - an empty result becomes "download".
 * The result is never empty, never "." or "..", has no separator, and sanitising it again changes nothing.
 */
export function sanitizeFileName(remote: string, maxBytes = MAX_FILE_NAME_BYTES): string {
  if (!Number.isInteger(maxBytes) || maxBytes < FALLBACK_FILE_NAME.length + 1) {
    throw new RangeError(`maxBytes must be an integer ≥ ${FALLBACK_FILE_NAME.length + 1}`);
  }
  const cleaned = remote.replace(LONE_SURROGATE, "_").normalize("NFC").replace(UNSAFE_CHARACTERS, "_").replace(WINDOWS_RESERVED_CHARACTERS, "_");
  const parts = cleaned
    .split(SEPARATORS)
    .map((part) => part.trim())
    .filter((part) => !/^[.\s]*$/u.test(part));
  let name = trimDotsAndSpaces(parts.join("_"));
  if (utf8Length(name) > maxBytes) {
    const { stem, ext } = splitExtension(name);
    // The extension may take at most half the budget, so a stem always survives.
    // A long "extension" is just part of the name: cut the whole name then.
    const keepExt = ext !== "" && utf8Length(ext) <= Math.min(MAX_KEPT_EXTENSION_BYTES, maxBytes / 2) ? ext : "";
    const cut = keepExt ? stem : name;
    name = trimDotsAndSpaces(trimDotsAndSpaces(truncateUtf8(cut, maxBytes - utf8Length(keepExt))) + keepExt);
  }
  if (WINDOWS_DEVICE_NAME.test(name)) name = truncateUtf8(`_${name}`, maxBytes);
  // NFC of a cut name can differ from the cut of an NFC name; normalising again keeps the function idempotent.
  name = trimDotsAndSpaces(name.normalize("NFC"));
  if (name === "" || utf8Length(name) > maxBytes) return FALLBACK_FILE_NAME;
  return name;
}

/** The n-th alternative of a name that is taken: 0 → "a.txt", 1 → "a (1).txt", 2 → "a (2).txt". */
export function numberedFileName(name: string, n: number): string {
  if (!Number.isInteger(n) || n < 0) throw new RangeError("n must be an integer ≥ 0");
  if (n === 0) return name;
  const { stem, ext } = splitExtension(name);
  return `${stem} (${n})${ext}`;
}

/**
 * `directory` joined with `name`, resolved, after checking that the result is a direct child of the
 * directory (a last line of defence: a sanitised name always passes).
 */
export function resolveInside(directory: string, name: string, pathApi: path.PlatformPath = path): string {
  const dir = pathApi.resolve(directory);
  const full = pathApi.resolve(dir, name);
  if (pathApi.dirname(full) !== dir || pathApi.basename(full) !== name) {
    throw new Error(`refusing to save ${JSON.stringify(name)}: it would not land directly inside ${dir}`);
  }
  return full;
}

/** Why a name cannot be announced to a device: `key` for the node's catalog, `params` never quote the name. */
export class AnnouncedNameError extends RangeError {
  constructor(
    readonly key: "empty" | "unprintable" | "too-long",
    readonly params: Readonly<Record<string, number>> = {},
  ) {
    super(`file name ${key} ${JSON.stringify(params)}`);
    this.name = "AnnouncedNameError";
  }
}

/**
 * The name a sender announces for a local file (YMODEM block 0): its last path component ("/data/config.json" →
 * "config.json", as a file-in node's msg.filename is a path), which must be printable (no control characters, line
 * separators, bidi overrides or lone surrogates), not "." or "..", and at most `maxBytes` UTF-8 bytes. Anything
 * else is refused rather than changed: the device would store a name the user did not choose.
 */
export function announcedFileName(name: string, maxBytes = MAX_FILE_NAME_BYTES): string {
  const last = name.split(SEPARATORS).filter((part) => part !== "").at(-1) ?? "";
  if (last === "" || last === "." || last === ".." || last.trim() === "") throw new AnnouncedNameError("empty");
  if (new RegExp(LONE_SURROGATE.source).test(last) || new RegExp(UNSAFE_CHARACTERS.source, "u").test(last)) throw new AnnouncedNameError("unprintable");
  const bytes = utf8Length(last);
  if (bytes > maxBytes) throw new AnnouncedNameError("too-long", { bytes, max: maxBytes });
  return last;
}
