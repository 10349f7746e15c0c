/**
 * Virtual HIOKI Z3210 BLE adapter on a DT4261 multimeter (kind "hioki-dt4261").
 *
 * GATT as seen on the real adapter: 0x1800, 0x1801, 0x180A, 0x180F, 0x1813, 0x1812 (HID), the Silicon Labs
 * OTA service (never to be written: every write is recorded as a violation) and the command service.
 * The central enables indications of the command characteristic 78b028ce…, writes ASCII command lines
 * ending in CR LF (in as many writes as it likes), and gets each line's reply as an indication after
 * replyDelayMs. What the instrument answers, and how a reply is cut, is ./hioki-instrument.ts.
 *
 * Choices where the real device is unknown (see shared/docs/protocols.md §2):
 * - A reply longer than MTU − 3 bytes is split into several indications of MTU − 3 bytes, sent one after
 *   the other's confirmation. (At MTU 23 that is 20 bytes: "DT4261;+0.00000000E+00" is 22 and splits.)
 *   A central must therefore join indications until the reply is complete.
 * - The instrument answers in the order it was asked: a reply is never sent before the reply to an earlier
 *   line, so one slow answer delays the answers behind it (as a serial instrument behind a bridge does).
 *
 * Hostile behaviours a scenario can ask for (the real adapter's are unknown; a central must survive them all):
 * - late answers: `replyDelaysMs` (cycled, one per command line) or `commandDelaysMs` (for given lines);
 * - answers too long: `replyBytesFor` stretches the answer to given lines to a number of bytes (> 4096 is
 *   longer than any real reply);
 * - odd splits (`split`): "lone-lf" ends each reply with CR LF and sends the LF alone in the last indication;
 *   "full-lf" wraps a reply longer than MTU − 4 bytes with an LF so that a full-size indication ends in LF
 *   and the rest follows; "random" sends pieces of random sizes (1 to MTU − 3 bytes, from `splitSeed`).
 * - the write type: `commandWrite` chooses the command characteristic's properties ("write", the default,
 *   "writeWithoutResponse" or "both"); `writeTypes` records the type of every write received.
 */
import { batteryService, deviceInformationService, GattPeripheral, type PeripheralConfig, type PeripheralKind } from "../peripheral";
import { seededRandom } from "../random";
import type { ServiceDefinition } from "../gatt-server";
import type { Timer } from "../../protocol/clock";
import { DEFAULT_SERVER_MTU } from "../types";
import { isObject, keyName, optionalEnum, optionalInteger, optionalNumber, optionalString, ScenarioError, type JsonObject } from "../validate";
import { optionalIntegerList, optionalNumberList, optionalStringList } from "./options";
import { HIOKI_COMMAND_CHARACTERISTIC, HIOKI_COMMAND_SERVICE } from "../../protocol/hioki";
import { ADAPTER_FIRMWARE, Dt4261Instrument, HIOKI_SPLITS, MODEL, replyPieces, stretch, type HiokiSplit } from "./hioki-instrument";

export const HIOKI_UNKNOWN_CHARACTERISTIC = "872f065a-5297-4483-9183-27cd72f7cffc";
export const SILABS_OTA_SERVICE = "1d14d6ee-fd63-4fa1-bfa4-8f47b42119f0";
export const SILABS_OTA_CONTROL = "f7bf3564-fb6d-4e53-88a4-5e37e0326063";
export const HID_SERVICE = "1812";

/** A line longer than this without CR LF is garbage: dropped (and recorded) instead of growing forever. */
const MAX_LINE = 1024;
/** GAP appearance "Keyboard": the adapter is also a HID keyboard that types readings. */
const APPEARANCE_KEYBOARD = 0x03c1;
/** Longest reply `replyBytesFor` may ask for: long enough to overflow any central's bound, short enough for memory. */
const MAX_STRETCHED_REPLY = 65_536;
/** Longest command line `commandDelaysMs` / `replyBytesFor` may name (the central's own limit is 64). */
const MAX_COMMAND_KEY = 64;

/**
 * A minimal boot-keyboard report map (one input report: modifiers, reserved, six key codes), enough for a
 * plausible HID service; nothing reads it but generic tools.
 */
const REPORT_MAP = Buffer.from(
  [
    "0501 0906 a101", // Usage Page (Generic Desktop), Usage (Keyboard), Collection (Application)
    "8501", // Report ID 1
    "0507 19e0 29e7 1500 2501 7501 9508 8102", // modifier keys: 8 one-bit variables
    "9501 7508 8101", // one reserved byte
    "9506 7508 1500 2565 0507 1900 2965 8100", // six key codes, 0..101
    "c0", // End Collection
  ]
    .join("")
    .replace(/ /g, ""),
  "hex",
);

export interface HiokiDt4261Config extends PeripheralConfig {
  /** Default "Z3210V2.10:DT4261#<serial>". */
  name?: string;
  /** Default: the address's last three bytes as a 9-digit decimal number. */
  serial?: string;
  /** FETC? readings, cycling; default [0]. */
  values?: number[];
  /** Verbatim answers to every query, cycling; overrides computed answers. */
  replies?: string[];
  /** :FETCCNT? answers, cycling; default [0]. */
  counts?: number[];
  replyDelayMs?: number;
  /** Delays cycled per command line; when given, replace replyDelayMs. */
  replyDelaysMs?: number[];
  /** Delays for given command lines (exactly as received, without CR LF); replace the others for those lines. */
  commandDelaysMs?: Record<string, number>;
  /** The answer to these command lines is stretched (its text repeated) to this many bytes. */
  replyBytesFor?: Record<string, number>;
  /** How replies are cut into indications; default "mtu" (pieces of MTU − 3 bytes, the last shorter). */
  split?: HiokiSplit;
  /** Seed of the piece sizes for split "random". */
  splitSeed?: number;
  /** The command characteristic's write properties; default "write" (Write Request only). */
  commandWrite?: HiokiCommandWrite;
  batteryLevel?: number;
}

export const HIOKI_COMMAND_WRITES = ["write", "writeWithoutResponse", "both"] as const;
export type HiokiCommandWrite = (typeof HIOKI_COMMAND_WRITES)[number];
export type HiokiWriteType = "write" | "writeWithoutResponse";

/** "a4:9e:69:00:30:39" → "000012345": a stable serial per address. */
export function serialFromAddress(address: string): string {
  return String(parseInt(address.slice(-8).replace(/:/g, ""), 16)).padStart(9, "0");
}

/** Commands kept in commandLog. */
const COMMAND_LOG_LENGTH = 1000;

export class HiokiDt4261Peripheral extends GattPeripheral {
  readonly serial: string;
  /** The last COMMAND_LOG_LENGTH command lines received, in order (without CR LF): tests check what nodes send. */
  readonly commandLog: string[] = [];
  /** The type of each of the last COMMAND_LOG_LENGTH writes to the command characteristic, in order. */
  readonly writeTypes: HiokiWriteType[] = [];
  private readonly instrument: Dt4261Instrument;
  private readonly replyDelayMs: number;
  private readonly replyDelaysMs: readonly number[] | null;
  private readonly commandDelaysMs: ReadonlyMap<string, number>;
  private readonly replyBytesFor: ReadonlyMap<string, number>;
  private readonly split: HiokiSplit;
  private readonly random: () => number;
  private readonly commandWrite: HiokiCommandWrite;
  private readonly battery: number;
  private delayIndex = 0;
  /** Replies waiting for their time, in the order the lines arrived; the first one's timer runs. */
  private readonly replyQueue: { dueAt: number; reply: string }[] = [];
  private replyTimer: Timer | null = null;
  private partialLine = "";

  constructor(config: HiokiDt4261Config) {
    const serial = config.serial ?? serialFromAddress(config.address);
    super({
      kind: "hioki-dt4261",
      address: config.address,
      addressType: config.addressType ?? "public",
      name: config.name ?? `Z3210${ADAPTER_FIRMWARE}:${MODEL}#${serial}`,
      clock: config.clock,
      maxMtu: config.maxMtu ?? DEFAULT_SERVER_MTU,
      advertisedServices: [HID_SERVICE],
      appearance: APPEARANCE_KEYBOARD,
    });
    this.serial = serial;
    const values = config.values ?? [0];
    const replies = config.replies ?? null;
    const counts = config.counts ?? [0];
    this.instrument = new Dt4261Instrument({ serial, values, replies, counts });
    this.replyDelayMs = config.replyDelayMs ?? 20;
    this.replyDelaysMs = config.replyDelaysMs ?? null;
    this.commandDelaysMs = new Map(Object.entries(config.commandDelaysMs ?? {}));
    this.replyBytesFor = new Map(Object.entries(config.replyBytesFor ?? {}));
    this.split = config.split ?? "mtu";
    this.random = seededRandom(config.splitSeed ?? 1);
    this.commandWrite = config.commandWrite ?? "write";
    this.battery = config.batteryLevel ?? 100;
    if (values.length === 0 || counts.length === 0 || replies?.length === 0 || this.replyDelaysMs?.length === 0) {
      throw new RangeError("values, counts, replies and replyDelaysMs must not be empty");
    }
  }

  protected services(): ServiceDefinition[] {
    return [
      deviceInformationService({ manufacturer: "HIOKI E.E. CORPORATION", model: "Z3210", serial: this.serial, firmware: ADAPTER_FIRMWARE }),
      batteryService(() => this.battery),
      {
        uuid: "1813",
        characteristics: [
          // Scan Interval Window: the central may tell us its scan parameters; nothing to do with them.
          { uuid: "2a4f", properties: ["writeWithoutResponse"] },
          { uuid: "2a31", properties: ["notify"] },
        ],
      },
      {
        uuid: HID_SERVICE,
        characteristics: [
          { uuid: "2a4a", properties: ["read"], value: Buffer.of(0x11, 0x01, 0x00, 0x02) }, // HID 1.11, no country, normally connectable
          { uuid: "2a4b", properties: ["read"], value: REPORT_MAP },
          { uuid: "2a4d", properties: ["read"], value: Buffer.alloc(8), descriptors: [{ uuid: "2908", value: Buffer.of(0x01, 0x01) }] }, // input report 1
          { uuid: "2a4e", properties: ["read"], value: Buffer.of(0x01) }, // report protocol
        ],
      },
      {
        uuid: SILABS_OTA_SERVICE,
        characteristics: [{ uuid: SILABS_OTA_CONTROL, properties: ["write"], onWrite: (value) => this.recordViolation(`OTA control characteristic ${SILABS_OTA_CONTROL} written: ${value.toString("hex")}`) }],
      },
      {
        uuid: HIOKI_COMMAND_SERVICE,
        characteristics: [
          {
            uuid: HIOKI_COMMAND_CHARACTERISTIC,
            properties: [...WRITE_PROPERTIES[this.commandWrite], "indicate"],
            onWrite: (value, withoutResponse) => this.receiveCommandBytes(value, withoutResponse),
          },
          { uuid: HIOKI_UNKNOWN_CHARACTERISTIC, properties: ["read", "notify"], value: Buffer.alloc(0) },
        ],
      },
    ];
  }

  protected override onDisconnected(): void {
    // Half a command and unsent replies do not survive the link; the reading cycles do (they are the instrument's).
    this.partialLine = "";
    this.replyQueue.length = 0;
    this.replyTimer = null; // the base class cancels every timer on disconnect
  }

  private receiveCommandBytes(value: Buffer, withoutResponse: boolean): void {
    this.writeTypes.push(withoutResponse ? "writeWithoutResponse" : "write");
    if (this.writeTypes.length > COMMAND_LOG_LENGTH) this.writeTypes.splice(0, this.writeTypes.length - COMMAND_LOG_LENGTH);
    this.partialLine += value.toString("latin1");
    let end: number;
    while ((end = this.partialLine.indexOf("\r\n")) >= 0) {
      const line = this.partialLine.slice(0, end);
      this.partialLine = this.partialLine.slice(end + 2);
      this.commandLine(line);
    }
    if (this.partialLine.length > MAX_LINE) {
      this.recordViolation(`command without CR LF after ${this.partialLine.length} bytes dropped`);
      this.partialLine = "";
    }
  }

  private commandLine(line: string): void {
    this.commandLog.push(line);
    // Bounded: a meter polled for days in a demo or a soak must not grow without end; tests read the recent past.
    if (this.commandLog.length > COMMAND_LOG_LENGTH) this.commandLog.splice(0, this.commandLog.length - COMMAND_LOG_LENGTH);
    if (line === "") return;
    // Answers are computed now, so readings advance in the order commands arrived.
    let reply = this.instrument.answerLine(line);
    const stretchTo = this.replyBytesFor.get(line);
    if (stretchTo !== undefined) reply = stretch(reply, stretchTo);
    const delay = this.commandDelaysMs.get(line) ?? (this.replyDelaysMs ? this.replyDelaysMs[this.delayIndex++ % this.replyDelaysMs.length] : this.replyDelayMs);
    // Never before an earlier line's reply: the instrument answers in order.
    const last = this.replyQueue[this.replyQueue.length - 1];
    this.replyQueue.push({ dueAt: Math.max(this.clock.now() + delay, last ? last.dueAt : 0), reply });
    this.scheduleReply();
  }

  private scheduleReply(): void {
    if (this.replyTimer || this.replyQueue.length === 0) return;
    this.replyTimer = this.setTimer(Math.max(0, this.replyQueue[0].dueAt - this.clock.now()), () => {
      this.replyTimer = null;
      const next = this.replyQueue.shift();
      if (next) this.sendReply(next.reply);
      this.scheduleReply();
    });
  }

  private sendReply(reply: string): void {
    if (!this.gatt.isSubscribed(HIOKI_COMMAND_CHARACTERISTIC, "indicate")) {
      this.recordViolation(`reply ${JSON.stringify(reply)} dropped: the central has not enabled indications of ${HIOKI_COMMAND_CHARACTERISTIC}`);
      return;
    }
    // Indications queue in the GATT server, one outstanding at a time; a link drop rejects them.
    for (const chunk of replyPieces(reply, this.gatt.mtu - 3, this.split, this.random)) this.gatt.indicate(HIOKI_COMMAND_CHARACTERISTIC, chunk).catch(() => undefined);
  }
}

const WRITE_PROPERTIES: Record<HiokiCommandWrite, ("write" | "writeWithoutResponse")[]> = {
  write: ["write"],
  writeWithoutResponse: ["writeWithoutResponse"],
  both: ["write", "writeWithoutResponse"],
};

/** { "<command line>": number } with each line 1..64 printable ASCII characters and each number in [min, max]. */
function optionalCommandMap(obj: JsonObject, key: string, field: string, min: number, max: number): Record<string, number> | undefined {
  const value = obj[key];
  if (value === undefined) return undefined;
  if (!isObject(value)) throw new ScenarioError(`${field}.${key}`, 'must be an object like { "*IDN?": 1500 }');
  const result: Record<string, number> = {};
  for (const [i, [line, n]] of Object.entries(value).entries()) {
    const at = `${field}.${key}.${keyName(i)}`;
    if (!/^[\x20-\x7e]+$/.test(line) || line.length > MAX_COMMAND_KEY) {
      throw new ScenarioError(at, `the key must be a command line of 1 to ${MAX_COMMAND_KEY} printable ASCII characters, without CR LF`);
    }
    if (typeof n !== "number" || !Number.isInteger(n) || n < min || n > max) throw new ScenarioError(at, `must be a whole number between ${min} and ${max}`);
    result[line] = n;
  }
  return result;
}

export const hiokiDt4261Kind: PeripheralKind = {
  kind: "hioki-dt4261",
  defaultAddressType: "public",
  options: ["serial", "values", "replies", "counts", "replyDelayMs", "replyDelaysMs", "commandDelaysMs", "replyBytesFor", "split", "splitSeed", "commandWrite", "batteryLevel"],
  create(spec, field, identity, ctx) {
    const serial = optionalString(spec, "serial", field, serialFromAddress(identity.address), 32);
    if (!/^[A-Za-z0-9_.-]+$/.test(serial)) throw new ScenarioError(`${field}.serial`, "must be letters, digits, '_', '.' or '-' (it goes into the advertised name)");
    return new HiokiDt4261Peripheral({
      ...identity,
      serial,
      clock: ctx.clock,
      maxMtu: identity.serverMtu,
      values: optionalNumberList(spec, "values", field),
      replies: optionalStringList(spec, "replies", field, 512),
      counts: optionalIntegerList(spec, "counts", field, 0, Number.MAX_SAFE_INTEGER),
      replyDelayMs: optionalNumber(spec, "replyDelayMs", field, 20, 0, 60_000),
      replyDelaysMs: optionalIntegerList(spec, "replyDelaysMs", field, 0, 60_000),
      commandDelaysMs: optionalCommandMap(spec, "commandDelaysMs", field, 0, 60_000),
      replyBytesFor: optionalCommandMap(spec, "replyBytesFor", field, 1, MAX_STRETCHED_REPLY),
      split: optionalEnum(spec, "split", field, HIOKI_SPLITS, "mtu"),
      splitSeed: optionalInteger(spec, "splitSeed", field, 1, 0, 0xffffffff),
      commandWrite: optionalEnum(spec, "commandWrite", field, HIOKI_COMMAND_WRITES, "write"),
      batteryLevel: optionalInteger(spec, "batteryLevel", field, 100, 0, 100),
    });
  },
};
