/**
 * Scenarios: which virtual peripherals exist, how the link behaves, and a timeline of events
 * (power a peripheral off, on again). A scenario is JSON; parseScenario checks its shape and names the offending
 * field in every error; each peripheral kind checks its own fields when the Simulation builds it.
 */
import * as path from "node:path";
import { BtsnoopCapture } from "./capture";
import { ScaledClock } from "./clock";
import { VirtualController } from "./controller";
import { createPeripheral } from "./peripherals";
import { readScenarioFile, systemReason } from "./regular-file";
import type { Timer } from "../protocol/clock";
import { DEFAULT_LINK, type LinkSettings, type PeripheralContext, type VirtualPeripheral } from "./types";
import { ScenarioError, isObject, rejectUnknownKeys, optionalEnum, optionalInteger, optionalNumber, requireAddress, requireObject, requireString, type JsonObject } from "./validate";

export type ScenarioAction = "power-off" | "power-on";
const ACTIONS: readonly ScenarioAction[] = ["power-off", "power-on"];

export interface ScenarioPeripheral {
  kind: string;
  /** Normalised (lowercase). */
  address: string;
  /** JSON path of the entry, e.g. "peripherals[1]", for the kind's own error messages. */
  field: string;
  /** The entry as written, with the address normalised; the kind reads its own fields from it. */
  spec: JsonObject;
}

export interface ScenarioEvent {
  /** Simulated milliseconds after Simulation.start(). */
  atMs: number;
  address: string;
  action: ScenarioAction;
}

export interface Scenario {
  link: LinkSettings;
  timeScale: number;
  peripherals: ScenarioPeripheral[];
  /** Sorted by time; events at the same time keep their order. */
  events: ScenarioEvent[];
  /** Directory of the scenario file, for relative paths inside it ("" for the built-in scenario). */
  baseDir: string;
  /**
   * Absolute path of the BTSnoop file the Simulation writes every H4 packet to (field "capture", relative to
   * baseDir); absent when the scenario asks for no capture.
   */
  capture?: string;
}

/** The built-in scenario. A plain JSON-shaped object, so it reads like a scenario file and can grow like one. */
export const DEFAULT_SCENARIO = {
  link: { ...DEFAULT_LINK },
  peripherals: [
    {
      kind: "heart-rate",
      address: "d8:75:ba:00:00:01",
      addressType: "random",
      name: "44278-33",
      bpm: [45, 46, 47, 46],
      intervalMs: 1000,
    },
    {
      kind: "hioki-dt4261",
      address: "a4:9e:69:00:00:01",
      addressType: "public",
      name: "Z3210V2.10:DT4261#000000001",
      values: [0, 0, -0.0001, -0.0001, 0.0001, 0],
    },
    {
      kind: "nus-ymodem",
      address: "e3:c3:5c:00:00:01",
      addressType: "random",
      name: "mpy-nus",
      filename: "log.bin",
      sizeBytes: 32768,
      seed: 1,
      // The seed's server calls aioble.config(mtu=512): its NimBLE answers 512 whatever the central asks.
      serverMtu: 512,
    },
    {
      // A YMODEM loader taking files from the central (the nus-ymodem-send example's device).
      kind: "nus-ymodem-receiver",
      address: "e3:c3:5c:00:00:02",
      addressType: "random",
      name: "mpy-loader",
    },
    {
      // A battery-powered environmental sensor (kind "gatt"): SIG characteristics for ble-gatt-in's "sig" format.
      kind: "gatt",
      address: "c0:ff:ee:00:00:01",
      addressType: "random",
      name: "Env Sensor",
      // 0xFFFF: the SIG's company identifier for tests.
      advertising: { services: ["181a", "180f"], manufacturerData: { companyId: 65535, data: "0101" } },
      services: [
        {
          uuid: "180f",
          characteristics: [
            // Battery Level, %.
            { uuid: "2a19", properties: ["read", "notify"], notify: { intervalMs: 5000, values: [{ hex: "64" }, { hex: "63" }, { hex: "62" }, { hex: "61" }] } },
          ],
        },
        {
          uuid: "181a",
          characteristics: [
            // Temperature, sint16 in 0.01 °C: 21.50, 21.62, 21.75, 21.81, 21.70, 21.58.
            {
              uuid: "2a6e",
              properties: ["read", "notify"],
              notify: { intervalMs: 1000, values: [{ hex: "6608" }, { hex: "7208" }, { hex: "7f08" }, { hex: "8508" }, { hex: "7a08" }, { hex: "6e08" }] },
            },
            // Humidity, uint16 in 0.01 %: 45.00, 45.20, 45.55, 45.30.
            { uuid: "2a6f", properties: ["read", "notify"], notify: { intervalMs: 1000, values: [{ hex: "9411" }, { hex: "a811" }, { hex: "cb11" }, { hex: "b211" }] } },
            // Pressure, uint32 in 0.1 Pa: 101325.0, 101318.4, 101331.2, 101327.5.
            {
              uuid: "2a6d",
              properties: ["read", "notify"],
              notify: { intervalMs: 2000, values: [{ hex: "02760f00" }, { hex: "c0750f00" }, { hex: "40760f00" }, { hex: "1b760f00" }] },
            },
          ],
        },
      ],
    },
    {
      // A Nordic UART console (kind "gatt"): a line written to RX is answered on TX, the help over four notifications.
      kind: "gatt",
      address: "c0:ff:ee:00:00:02",
      addressType: "random",
      name: "NUS Console",
      advertising: { services: ["6e400001-b5a3-f393-e0a9-e50e24dcca9e"] },
      services: [
        {
          uuid: "6e400001-b5a3-f393-e0a9-e50e24dcca9e",
          characteristics: [
            {
              uuid: "6e400002-b5a3-f393-e0a9-e50e24dcca9e",
              properties: ["write", "writeWithoutResponse"],
              onWrite: {
                replyOn: "6e400003-b5a3-f393-e0a9-e50e24dcca9e",
                replies: [
                  {
                    request: { text: "help\n" },
                    reply: [{ text: "commands:\n" }, { text: "  help     this text\n" }, { text: "  version  firmware version\n" }, { text: "  temp?    temperature in C\n" }],
                  },
                  { request: { text: "version\n" }, reply: [{ text: "NUS Console 1.0.0\n" }] },
                  // A measurement takes a moment.
                  { request: { text: "temp?\n" }, reply: [{ text: "21.50\n" }], delayMs: 50 },
                ],
                otherwise: [{ text: "ERR unknown command\n" }],
              },
            },
            { uuid: "6e400003-b5a3-f393-e0a9-e50e24dcca9e", properties: ["notify"] },
          ],
        },
      ],
    },
    // Advertisers that never connect (the ble-scan demo decodes them): an iBeacon, an Eddystone URL + TLM beacon, two
    // BTHome v2 thermometers — the second encrypted with the BTHome specification's example key (demo only: never use
    // a published key on a real device) — and a raw advertiser given as bytes.
    {
      kind: "ibeacon",
      address: "c0:1b:ea:c0:00:01",
      name: "demo-ibeacon",
      uuid: "e2c56db5-dffb-48d2-b060-d0f5a71096e0",
      major: 1,
      minor: 42,
      measuredPower: -59,
      intervalMs: 300,
    },
    {
      kind: "eddystone",
      address: "c0:ed:d1:00:00:01",
      name: "demo-eddystone",
      url: "https://nodered.org",
      tlm: { batteryMv: [3000, 2995, 2990], temperature: [21.5, 21.75, 22] },
      intervalMs: 300,
    },
    {
      kind: "bthome",
      address: "c0:b7:40:00:00:01",
      name: "demo-bthome",
      measurements: [
        { type: "temperature", values: [21.5, 21.6, 21.7, 21.6] },
        { type: "humidity", values: [45.2, 45, 44.8] },
        { type: "battery", values: [87] },
      ],
      intervalMs: 500,
      repeat: 4,
    },
    {
      kind: "bthome",
      address: "c0:b7:40:00:00:02",
      name: "demo-bthome-enc",
      bindKey: "231d39c1d7cc1ab1aee224cd096db932",
      measurements: [
        { type: "temperature", values: [19.8, 19.9, 20] },
        { type: "humidity", values: [52.5, 52.1] },
      ],
      intervalMs: 500,
      repeat: 4,
    },
    {
      // Flags, the name "demo-raw", manufacturer data of company 0xFFFF; scan response: TX power -12 dBm.
      kind: "advertiser",
      address: "c0:ad:00:00:00:01",
      data: "020106 0909 64656d6f2d726177 05ff ffff 0102",
      scanResponse: "020af4",
      intervalMs: 300,
    },
  ],
  // The meter is switched off and on again, as in the seed's conn_multiple log.
  events: [
    { atMs: 20000, address: "a4:9e:69:00:00:01", action: "power-off" },
    { atMs: 32000, address: "a4:9e:69:00:00:01", action: "power-on" },
    { atMs: 60000, address: "a4:9e:69:00:00:01", action: "power-off" },
    { atMs: 70000, address: "a4:9e:69:00:00:01", action: "power-on" },
  ],
};

const TOP_KEYS = ["link", "timeScale", "peripherals", "events", "capture"];
const LINK_KEYS = ["connectionIntervalMs", "pdusPerEvent", "dataLength", "maxMtu"];
const EVENT_KEYS = ["atMs", "address", "action"];

function parseLink(value: unknown): LinkSettings {
  if (value === undefined) return { ...DEFAULT_LINK };
  const link = requireObject(value, "link");
  rejectUnknownKeys(link, LINK_KEYS, "link", "key");
  const connectionIntervalMs = optionalNumber(link, "connectionIntervalMs", "link", DEFAULT_LINK.connectionIntervalMs, 7.5, 4000);
  const steps = connectionIntervalMs / 1.25;
  if (Math.abs(steps - Math.round(steps)) > 1e-9) {
    throw new ScenarioError("link.connectionIntervalMs", "must be a multiple of 1.25 ms");
  }
  return {
    connectionIntervalMs,
    pdusPerEvent: optionalInteger(link, "pdusPerEvent", "link", DEFAULT_LINK.pdusPerEvent, 1, 100),
    dataLength: optionalInteger(link, "dataLength", "link", DEFAULT_LINK.dataLength, 27, 251),
    maxMtu: optionalInteger(link, "maxMtu", "link", DEFAULT_LINK.maxMtu, 23, 517),
  };
}

/** Longest "capture" path accepted: PATH_MAX on Linux. */
const MAX_CAPTURE_PATH = 4096;

/**
 * The "capture" field: a file path, relative to the scenario's directory. Only its shape is checked here
 * (parseScenario does no I/O); whether it can be written is found out when the Simulation opens it.
 */
function parseCapture(value: unknown, baseDir: string): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "string") throw new ScenarioError("capture", "must be a string: the path of the BTSnoop file to write");
  if (value.trim() === "") throw new ScenarioError("capture", "must not be empty");
  if (value.length > MAX_CAPTURE_PATH) throw new ScenarioError("capture", `must be at most ${MAX_CAPTURE_PATH} characters`);
  // A NUL would reach the file system call and fail there with a less helpful message.
  if (value.includes("\0")) throw new ScenarioError("capture", "must not contain a NUL character");
  if (value.endsWith("/") || value.endsWith(path.sep)) throw new ScenarioError("capture", "must name a file, not a directory");
  return path.resolve(baseDir, value);
}

/** Validates a scenario (already parsed from JSON). `baseDir` resolves relative paths inside it. */
export function parseScenario(json: unknown, baseDir: string): Scenario {
  if (!isObject(json)) throw new ScenarioError("(top level)", "must be a JSON object");
  rejectUnknownKeys(json, TOP_KEYS, "", "key");
  const link = parseLink(json.link);
  const capture = parseCapture(json.capture, baseDir);
  const timeScale = json.timeScale ?? 1;
  if (typeof timeScale !== "number" || !Number.isFinite(timeScale)) throw new ScenarioError("timeScale", "must be a number");
  if (timeScale < 0.01 || timeScale > 10000) throw new ScenarioError("timeScale", "must be between 0.01 and 10000");

  if (json.peripherals === undefined) throw new ScenarioError("peripherals", "is required (an array of peripheral entries)");
  if (!Array.isArray(json.peripherals)) throw new ScenarioError("peripherals", "must be an array");
  const peripherals: ScenarioPeripheral[] = [];
  const byAddress = new Map<string, string>();
  json.peripherals.forEach((entry: unknown, i: number) => {
    const field = `peripherals[${i}]`;
    const spec = requireObject(entry, field);
    const kind = requireString(spec, "kind", field, 64);
    const address = requireAddress(spec, "address", field);
    const earlier = byAddress.get(address);
    if (earlier !== undefined) throw new ScenarioError(`${field}.address`, `is already used by ${earlier}`);
    byAddress.set(address, field);
    peripherals.push({ kind, address, field, spec: { ...spec, address } });
  });

  const events: ScenarioEvent[] = [];
  if (json.events !== undefined) {
    if (!Array.isArray(json.events)) throw new ScenarioError("events", "must be an array");
    json.events.forEach((entry: unknown, i: number) => {
      const field = `events[${i}]`;
      const ev = requireObject(entry, field);
      rejectUnknownKeys(ev, EVENT_KEYS, field, "key");
      if (ev.atMs === undefined) throw new ScenarioError(`${field}.atMs`, "is required");
      const atMs = optionalNumber(ev, "atMs", field, 0, 0, 365 * 24 * 3600 * 1000);
      const address = requireAddress(ev, "address", field);
      if (!byAddress.has(address)) throw new ScenarioError(`${field}.address`, "no peripheral has this address");
      if (ev.action === undefined) throw new ScenarioError(`${field}.action`, `is required (${ACTIONS.map((a) => JSON.stringify(a)).join(" or ")})`);
      const action = optionalEnum(ev, "action", field, ACTIONS, "power-off");
      events.push({ atMs, address, action });
    });
  }
  // Array.prototype.sort is stable: same-time events keep the file's order.
  events.sort((a, b) => a.atMs - b.atMs);

  // The key is left out rather than set to undefined, so scenarios without a capture compare as before.
  return { link, timeScale, peripherals, events, baseDir, ...(capture !== undefined ? { capture } : {}) };
}

/** The largest scenario file loadScenarioFile reads: 1 MiB, far more than any scenario needs. */
export const MAX_SCENARIO_BYTES = 1024 * 1024;

/**
 * Reads and validates a scenario file; unreadable files and JSON syntax errors are ScenarioErrors too.
 * Only a regular file of at most MAX_SCENARIO_BYTES is read: a FIFO would stop the event loop until someone writes
 * to it, a device such as /dev/zero never ends. Errors name the file and the problem, never its content.
 */
export function loadScenarioFile(file: string): Scenario {
  const resolved = path.resolve(file);
  const text = readScenarioText(resolved);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new ScenarioError(resolved, `is not valid JSON: ${jsonSyntaxProblem(text, error instanceof Error ? error.message : String(error))}`);
  }
  try {
    const scenario = parseScenario(json, path.dirname(resolved));
    // The capture file is truncated when the simulation starts: naming the scenario itself would destroy it.
    if (scenario.capture === resolved) throw new ScenarioError("capture", "must not be the scenario file itself");
    return scenario;
  } catch (error) {
    if (error instanceof ScenarioError) throw new ScenarioError(error.field, error.problem, resolved);
    throw error;
  }
}

/** The file's text, if it is a regular file of at most MAX_SCENARIO_BYTES (see readRegularFile). */
function readScenarioText(resolved: string): string {
  return readScenarioFile(resolved, MAX_SCENARIO_BYTES, resolved, {
    limit: `1 MiB (${MAX_SCENARIO_BYTES} bytes)`,
    purpose: "a scenario file",
    notRegularHint: "a scenario must be a JSON file",
  }).toString("utf8");
}

/**
 * What is wrong with the JSON, and where, from JSON.parse's message, which V8 sometimes completes with a quote of
 * the text around the error: only messages made of words and quoted punctuation are kept, never a quote of the file.
 */
export function jsonSyntaxProblem(text: string, message: string): string {
  if (/^Unexpected end of JSON input/.test(message)) return "it ends too early";
  const positioned = /^(.*) in JSON at position (\d+)/.exec(message);
  // "Unexpected token r in JSON at position 7" (Node 18 and earlier) names the file's character itself.
  if (/^Unexpected token\b/.test(message)) {
    return `unexpected character${positioned ? lineAndColumn(text, Number(positioned[2])) : ""} (check quotes, commas and comments, which JSON does not allow)`;
  }
  if (positioned && /^[A-Za-z -]*(?:'[^\sA-Za-z0-9'"]'[A-Za-z -]*)*$/.test(positioned[1])) {
    return `${positioned[1].charAt(0).toLowerCase()}${positioned[1].slice(1)}${lineAndColumn(text, Number(positioned[2]))}`;
  }
  return "unexpected character (check quotes, commas and comments, which JSON does not allow)";
}

/** " (line L, column C)" of a position in the text. */
function lineAndColumn(text: string, position: number): string {
  const before = text.slice(0, position);
  const line = before.split("\n").length;
  const column = before.length - before.lastIndexOf("\n");
  return ` (line ${line}, column ${column})`;
}

export type PeripheralFactory = (spec: JsonObject, field: string, ctx: PeripheralContext) => VirtualPeripheral;

export interface SimulationOptions {
  /** Overrides the scenario's timeScale. */
  timeScale?: number;
  /** Builds peripherals; defaults to the kinds in ./peripherals (tests inject their own). */
  createPeripheral?: PeripheralFactory;
}

/**
 * A running scenario: a clock, a virtual controller with the scenario's peripherals, and its timeline; and,
 * when the scenario names one, a capture file of every H4 packet in both directions.
 */
export class Simulation {
  readonly scenario: Scenario;
  readonly clock: ScaledClock;
  readonly controller: VirtualController;
  /** The open capture (scenario field "capture"), or null. */
  readonly capture: BtsnoopCapture | null = null;
  private timers: Timer[] = [];
  private started = false;
  private closed = false;

  constructor(scenario: Scenario, opts: SimulationOptions = {}) {
    this.scenario = scenario;
    this.clock = new ScaledClock(opts.timeScale ?? scenario.timeScale);
    this.controller = new VirtualController({ clock: this.clock, link: scenario.link });
    const factory = opts.createPeripheral ?? createPeripheral;
    const ctx: PeripheralContext = { clock: this.clock, link: scenario.link, baseDir: scenario.baseDir };
    try {
      if (scenario.capture !== undefined) this.capture = this.openCapture(scenario.capture);
      for (const entry of scenario.peripherals) {
        const peripheral = factory(entry.spec, entry.field, ctx);
        try {
          if (peripheral.address.toLowerCase() !== entry.address) {
            throw new Error(`${entry.field}: the ${entry.kind} factory built a peripheral with address ${peripheral.address}, expected ${entry.address}`);
          }
          this.controller.addPeripheral(peripheral);
        } catch (error) {
          peripheral.close();
          throw error;
        }
      }
    } catch (error) {
      this.controller.close();
      this.capture?.close();
      throw error;
    }
  }

  /**
   * Opens the capture and records both directions. Listening from the constructor puts the capture first among
   * the 'h4' listeners, so a packet is recorded before noble sees it and before anything noble writes back.
   * Timestamps are simulated time from the wall-clock moment the simulation began: with a timeScale the capture
   * shows the intervals the simulated radio keeps, not the compressed real ones.
   */
  private openCapture(file: string): BtsnoopCapture {
    const startUnixMs = Date.now() - this.clock.now();
    let capture: BtsnoopCapture;
    try {
      capture = new BtsnoopCapture(file, () => startUnixMs + this.clock.now());
    } catch (error) {
      // Not the path: it is the scenario's directory, which may come from an environment variable.
      throw new ScenarioError("capture", `cannot be written (${systemReason(error)})`);
    }
    this.controller.on("h4", (packet: Buffer) => capture.record(packet, "controller-to-host"));
    this.controller.on("host-h4", (packet: Buffer) => capture.record(packet, "host-to-controller"));
    return capture;
  }

  /** Starts the events timeline (idempotent). Peripherals advertise from construction on. */
  start(): void {
    if (this.started || this.closed) return;
    this.started = true;
    for (const ev of this.scenario.events) {
      this.timers.push(
        this.clock.setTimeout(() => {
          if (this.closed) return;
          if (ev.action === "power-off") this.controller.powerOff(ev.address);
          else this.controller.powerOn(ev.address);
        }, ev.atMs),
      );
    }
  }

  /** Cancels the timeline, closes the controller and every peripheral, and completes the capture file (idempotent). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const timer of this.timers) timer.cancel();
    this.timers = [];
    this.controller.close();
    // After the controller: nothing more can pass, so the file is complete once close() returns.
    this.capture?.close();
  }
}
