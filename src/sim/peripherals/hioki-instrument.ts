/**
 * The DT4261 behind the virtual HIOKI Z3210 adapter (./hioki-dt4261.ts): what it answers to each command line, and
 * how a reply is cut into indications. No GATT and no timers here; the peripheral feeds it lines and sends its pieces.
 *
 * Choices where the real device is unknown (see shared/docs/protocols.md §2):
 * - The reply carries no CR LF: the seed prints each indication with print() and its log has no blank
 *   lines. A scenario can still send any text through `replies`.
 * - Commands joined with ';' get their answers joined with ';'.
 * - Unknown commands answer "CMD ERR": HIOKI's manuals list "CMD ERR"/"EXE ERR" as the answers of setting
 *   commands to bad input; what an unknown *query* answers is unknown, and we chose CMD ERR for it too.
 * - SCPI's leading root colon is optional (":FETC?" = "FETC?"); long forms ("FETCh?") and lower case are
 *   not accepted.
 * - ":CONF?" answers the last ":CONF <function>,<range>" (default "DCV,AUTO", an invented spelling);
 *   ":STAT?" answers "0"; ":CALC:STAT:MAX?/MIN?/AVER?" are computed over the scenario's `values`.
 * - `replies` replace the answer of every query: commands ending in '?' and "QPID" (which answers
 *   without one); setting commands still answer "OK".
 */
import { formatNr3 } from "../../protocol/hioki";

export const MODEL = "DT4261";
export const ADAPTER_FIRMWARE = "V2.10";
const DEFAULT_CONF = "DCV,AUTO";

export const HIOKI_SPLITS = ["mtu", "lone-lf", "full-lf", "random"] as const;
export type HiokiSplit = (typeof HIOKI_SPLITS)[number];

export interface Dt4261Settings {
  serial: string;
  /** FETC? readings, cycling; not empty. */
  values: readonly number[];
  /** Verbatim answers to every query, cycling; null: computed answers. */
  replies: readonly string[] | null;
  /** :FETCCNT? answers, cycling; not empty. */
  counts: readonly number[];
}

/** The instrument's state (reading cycles, the last :CONF) and its answers. It outlives links, as the meter does. */
export class Dt4261Instrument {
  private valueIndex = 0;
  private replyIndex = 0;
  private countIndex = 0;
  private conf = DEFAULT_CONF;

  constructor(private readonly settings: Dt4261Settings) {}

  /** The reply to one command line (without CR LF): each ';'-separated command answered in turn. */
  answerLine(line: string): string {
    return line
      .split(";")
      .map((command) => this.answer(command))
      .join(";");
  }

  private answer(command: string): string {
    const { values, replies, counts, serial } = this.settings;
    const c = command.startsWith(":") ? command.slice(1) : command;
    const isQuery = c.endsWith("?") || c === "QPID";
    if (isQuery && replies) return replies[this.replyIndex++ % replies.length];
    switch (c) {
      case "FETC?":
        return formatNr3(values[this.valueIndex++ % values.length]);
      case "QPID":
      case "QPID?":
        return MODEL;
      case "FETCCNT?":
        return String(counts[this.countIndex++ % counts.length]);
      case "*IDN?":
        return `HIOKI,${MODEL},${serial},${ADAPTER_FIRMWARE}`;
      case "CONF?":
        return this.conf;
      case "CALC:STAT:MAX?":
        return formatNr3(Math.max(...values));
      case "CALC:STAT:MIN?":
        return formatNr3(Math.min(...values));
      case "CALC:STAT:AVER?":
        return formatNr3(values.reduce((a, b) => a + b, 0) / values.length);
      case "STAT?":
        return "0";
      case "SYST:RST":
        this.conf = DEFAULT_CONF;
        return "OK";
      case "SYST:LLO":
      case "SYST:GTL":
        return "OK";
      default:
        break;
    }
    const conf = /^CONF ([A-Z0-9]+),([A-Z0-9.+-]+)$/.exec(c);
    if (conf) {
      this.conf = `${conf[1]},${conf[2]}`;
      return "OK";
    }
    return "CMD ERR";
  }
}

/** The text repeated (or cut) to exactly `bytes` bytes. */
export function stretch(text: string, bytes: number): string {
  const unit = text === "" ? "0" : text;
  return unit.repeat(Math.ceil(bytes / unit.length)).slice(0, bytes);
}

/**
 * The indications that carry one reply, cut as `split` says; never longer than `size` bytes. "mtu": pieces of `size`
 * bytes, the last shorter; "lone-lf": the reply and CR so cut, then the LF alone; "full-lf": a reply longer than
 * size − 1 bytes has its first size − 1 bytes and an LF in a full-size piece, the rest after it; "random": pieces of
 * 1 to `size` bytes drawn from `random`.
 */
export function replyPieces(reply: string, size: number, split: HiokiSplit, random: () => number): Buffer[] {
  const cut = (bytes: Buffer): Buffer[] => {
    const chunks: Buffer[] = [];
    for (let i = 0; i < bytes.length; i += size) chunks.push(bytes.subarray(i, i + size));
    return chunks;
  };
  const bytes = Buffer.from(reply, "latin1");
  switch (split) {
    case "lone-lf":
      return [...cut(Buffer.concat([bytes, Buffer.from("\r")])), Buffer.from("\n")];
    case "full-lf": {
      if (bytes.length <= size - 1) return [bytes];
      const first = Buffer.concat([bytes.subarray(0, size - 1), Buffer.from("\n")]);
      return [first, ...cut(bytes.subarray(size - 1))];
    }
    case "random": {
      const chunks: Buffer[] = [];
      for (let i = 0; i < bytes.length; ) {
        const n = 1 + Math.floor(random() * size);
        chunks.push(bytes.subarray(i, i + n));
        i += n;
      }
      return chunks.length > 0 ? chunks : [Buffer.alloc(0)];
    }
    case "mtu": {
      const chunks = cut(bytes);
      return chunks.length > 0 ? chunks : [Buffer.alloc(0)];
    }
  }
}
