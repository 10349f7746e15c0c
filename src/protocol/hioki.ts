/**
 * HIOKI Z3210 BLE adapter (DT4261 multimeter and kin): advertised name, commands, replies.
 *
 * Pure code: strings in, plain objects out. No Node-RED, no noble.
 *
 * The adapter carries the instrument's ASCII remote-control protocol: the central writes
 * one command line ending in CR LF; the reply arrives as an indication. Several commands
 * may be joined with ';' and their answers come back joined with ';'. Numbers are NR3
 * ("+1.00000000E-04") or integers (":FETCCNT?" → "3000").
 *
 * Unknown to us: how the DT4261 reports overrange over BLE (a sentinel number or text),
 * and whether a reply ends in CR LF. So any reply part that is not a plain number yields
 * value null, never NaN and never an exception; the caller still gets the text in parts.
 */

/** The Z3210's command channel: a custom service whose characteristic takes command lines and indicates replies. */
export const HIOKI_COMMAND_SERVICE = "275ce3d8-b906-4475-8dd7-76af0db742bf";
export const HIOKI_COMMAND_CHARACTERISTIC = "78b028ce-affd-4967-ab9e-dc336c8c94e7";

/**
 * Removes the given characters from the end (and the start, if asked). A loop, not a regex:
 * /[...]+$/ backtracks quadratically on long runs that do not reach the end.
 */
function trimChars(s: string, chars: string, start: boolean): string {
  let end = s.length;
  while (end > 0 && chars.includes(s[end - 1])) end--;
  let begin = 0;
  if (start) while (begin < end && chars.includes(s[begin])) begin++;
  return s.slice(begin, end);
}

export interface Z3210Name {
  /** Adapter firmware, with its "V": "V2.10". */
  adapterFirmware: string;
  /** Instrument model: "DT4261". */
  model: string;
  /** Instrument serial number; "" when the name carries none. */
  serial: string;
}

// Z3210 + firmware (V and a digit first) + ':' + model + optional '#' + serial.
// Model and serial exclude ':' '#' and spaces so a garbled name is rejected, not misread.
const Z3210_NAME = /^Z3210(V[0-9][0-9A-Za-z.]*):([A-Za-z0-9][A-Za-z0-9_.-]*)(?:#([A-Za-z0-9_.-]*))?$/;

/**
 * "Z3210V2.10:DT4261#123456789" → { adapterFirmware: "V2.10", model: "DT4261", serial: "123456789" }.
 * A missing "#serial" (or an empty one) gives serial "". Trailing NULs/spaces (padded
 * advertising data) are ignored. Anything else: null.
 */
export function parseZ3210Name(name: string): Z3210Name | null {
  if (typeof name !== "string") return null;
  const m = Z3210_NAME.exec(trimChars(name, "\0 ", false));
  if (!m) return null;
  return { adapterFirmware: m[1], model: m[2], serial: m[3] ?? "" };
}

// Sign, mantissa with at least one digit ("1", "1.", "1.5", ".5"), optional exponent.
// Written without overlapping quantifiers so arbitrary input cannot make it backtrack badly.
const PLAIN_NUMBER = /^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$/;

/**
 * Parses an NR1 ("3000", "-12"), NR2 ("1.5", "+.5") or NR3 ("+1.00000000E-04") number.
 * Surrounding spaces, tabs, CR, LF and NUL are ignored; anything else that is not exactly
 * such a number gives null: "", "1e", "Infinity", "0x10", " 1 2", "1,5". Never NaN;
 * an exponent beyond the double range ("1E+999") gives null, a tiny one underflows to 0.
 * Negative zero is returned as 0 (it would only surprise equality checks downstream).
 */
export function parseNr3(text: string): number | null {
  if (typeof text !== "string") return null;
  const t = trimChars(text, " \t\r\n\0", true);
  if (!PLAIN_NUMBER.test(t)) return null;
  const n = Number(t);
  if (!Number.isFinite(n)) return null;
  return n === 0 ? 0 : n;
}

/**
 * Formats like the instrument: sign, one digit, '.', 8 digits, 'E', sign, 2-digit exponent
 * (3 digits when needed): 0.0001 → "+1.00000000E-04", 0 → "+0.00000000E+00",
 * -1.5 → "-1.50000000E+00". Nine significant digits, so a round trip through parseNr3 is
 * within 5e-9 relative. -0 formats as "+0.00000000E+00". Throws RangeError for NaN/±Infinity.
 */
export function formatNr3(value: number): string {
  if (typeof value !== "number" || !Number.isFinite(value)) throw new RangeError(`formatNr3: not a finite number: ${String(value)}`);
  const sign = value < 0 ? "-" : "+";
  // toExponential rounds correctly, including 9.999999999 → "1.00000000e+1".
  const [mantissa, exponent] = Math.abs(value).toExponential(8).split("e");
  const expSign = exponent.startsWith("-") ? "-" : "+";
  const expDigits = exponent.replace(/^[+-]/, "").padStart(2, "0");
  return `${sign}${mantissa}E${expSign}${expDigits}`;
}

export interface HiokiReply {
  /** The reply text without trailing CR, LF and NUL. */
  raw: string;
  /** raw split on ';' (empty array for an empty reply); one part per answering command. */
  parts: string[];
  /**
   * The measured value: the number answering the last measuring query (FETC?, :FETCCNT?,
   * :CALC:STAT:...?), or the reply itself when it is a single number. null when that answer is
   * not a number ("CMD ERR", "EXE ERR", an overrange marker we do not know, anything else),
   * or when the parts cannot be matched to the command's queries.
   */
  value: number | null;
  /** The answer to QPID (e.g. "DT4261") when the command contained QPID; else null. */
  model: string | null;
}

/** Answers to setting commands and errors, which are never a model name. */
const STATUS_WORDS = new Set(["OK", "CMD ERR", "EXE ERR"]);

/** One ';'-separated command, upper-cased, without the leading ':' of SCPI root paths. */
function normalizeCommandPart(part: string): string {
  return part.trim().toUpperCase().replace(/^:/, "");
}

function isQpid(cmd: string): boolean {
  return cmd === "QPID" || cmd === "QPID?";
}

/** Measuring queries, in SCPI short or long form: FETC?/FETCH?, FETCCNT?, CALC:STAT:<x>? */
function isMeasuringQuery(cmd: string): boolean {
  return /^FETC(?:H)?(?:CNT)?\?$/.test(cmd) || /^CALC(?:ULATE)?:STAT(?:ISTICS)?:[A-Z0-9:]+\?$/.test(cmd);
}

/** A command that answers: a query ending in '?', or QPID (which has no '?'). */
function isQuery(cmd: string): boolean {
  return cmd.endsWith("?") || isQpid(cmd);
}

/**
 * Splits a reply and picks out the model (answer to QPID) and the measured value.
 *
 * Matching parts to commands: when the reply has one part per command, they pair in order;
 * otherwise, when it has one part per query (setting commands answered nothing), they pair
 * with the queries in order. If neither count fits, no part is attributed: model is null and
 * value is only set for a single-number reply. Never throws.
 */
export function parseHiokiReply(raw: string, command: string): HiokiReply {
  const text = typeof raw === "string" ? trimChars(raw, "\r\n\0", false) : "";
  const parts = text === "" ? [] : text.split(";");

  const commands = (typeof command === "string" ? command : "").split(";").map(normalizeCommandPart).filter((c) => c !== "");
  const queries = commands.filter(isQuery);
  let answered: string[] | null = null;
  if (parts.length === commands.length) answered = commands;
  else if (parts.length === queries.length) answered = queries;

  let model: string | null = null;
  let value: number | null = null;
  let sawMeasuringQuery = false;
  if (answered !== null) {
    for (let i = 0; i < parts.length; i++) {
      const cmd = answered[i];
      const answer = parts[i].trim();
      if (isQpid(cmd) && answer !== "" && !STATUS_WORDS.has(answer)) model = answer;
      if (isMeasuringQuery(cmd)) {
        sawMeasuringQuery = true;
        value = parseNr3(answer); // the last one wins, even when it is not a number
      }
    }
  }
  if (!sawMeasuringQuery && parts.length === 1) value = parseNr3(parts[0]);

  return { raw: text, parts, value, model };
}

export class HiokiCommandError extends Error {
  /** The problem as a key with parameters, for a user interface to word (`message` is its English). */
  constructor(
    message: string,
    readonly key: string,
    readonly params: Readonly<Record<string, string | number>> = {},
  ) {
    super(message);
    this.name = "HiokiCommandError";
  }
}

export const HIOKI_COMMAND_MAX_LENGTH = 64;

const CONTROL_NAMES: Record<number, string> = { 0x00: "NUL", 0x09: "TAB", 0x0a: "LF", 0x0d: "CR", 0x1b: "ESC", 0x7f: "DEL" };

/** The character in words, and the error key that names its kind, with parameters. */
function describeChar(ch: string): { text: string; key: string; params: Record<string, string> } {
  const cp = ch.codePointAt(0) ?? 0;
  const code = `U+${cp.toString(16).toUpperCase().padStart(4, "0")}`;
  const name = CONTROL_NAMES[cp];
  if (name !== undefined) return { text: `${name} (${code})`, key: "not-printable-named", params: { name, code } };
  if (cp < 0x20 || (cp >= 0x7f && cp < 0xa0)) return { text: `control character ${code}`, key: "not-printable-control", params: { code } };
  if (cp >= 0xd800 && cp <= 0xdfff) return { text: `lone surrogate ${code}`, key: "not-printable-surrogate", params: { code } };
  return { text: `non-ASCII character "${ch}" (${code})`, key: "not-printable-non-ascii", params: { char: ch, code } };
}

/**
 * Checks a command line before it is written: printable ASCII only (0x20-0x7E), 1 to 64
 * characters after trimming surrounding spaces. Returns the trimmed command; the caller
 * appends CR LF (see encodeHiokiCommand). Throws HiokiCommandError naming the first
 * offending character and its 1-based position in the given string.
 */
export function validateHiokiCommand(command: string): string {
  if (typeof command !== "string") {
    const type = command === null ? "null" : typeof command;
    throw new HiokiCommandError(`HIOKI command must be a string, got ${type}`, "not-string", { type });
  }
  let position = 0;
  for (const ch of command) {
    position += 1;
    const cp = ch.codePointAt(0) ?? 0;
    if (cp < 0x20 || cp > 0x7e) {
      const line = cp === 0x0d || cp === 0x0a;
      const hint = line ? "; send one command line without CR/LF (the terminator is added for you), join commands with ';'" : "";
      const what = describeChar(ch);
      throw new HiokiCommandError(`HIOKI command: ${what.text} at position ${position} is not printable ASCII${hint}`, line ? "line-break" : what.key, {
        ...what.params,
        position,
      });
    }
  }
  const trimmed = trimChars(command, " ", true);
  if (trimmed.length === 0) throw new HiokiCommandError("HIOKI command is empty", "empty");
  if (trimmed.length > HIOKI_COMMAND_MAX_LENGTH) {
    throw new HiokiCommandError(`HIOKI command is ${trimmed.length} characters long, at most ${HIOKI_COMMAND_MAX_LENGTH} allowed`, "too-long", {
      length: trimmed.length,
      max: HIOKI_COMMAND_MAX_LENGTH,
    });
  }
  return trimmed;
}

/** The bytes to write to the command characteristic: the validated command plus CR LF. */
export function encodeHiokiCommand(command: string): Buffer {
  return Buffer.from(`${validateHiokiCommand(command)}\r\n`, "latin1");
}

/**
 * How to write to the command characteristic, from its GATT properties, by the rule of aioble's
 * Characteristic.write (the seed's hioki_z3210.py, the only code known to work with a real Z3210): with
 * response only when the characteristic does not allow Write Without Response; a characteristic that allows
 * both is written without response. null when it allows neither.
 */
export function hiokiWriteType(properties: readonly string[]): "withoutResponse" | "withResponse" | null {
  if (properties.includes("writeWithoutResponse")) return "withoutResponse";
  if (properties.includes("write")) return "withResponse";
  return null;
}
