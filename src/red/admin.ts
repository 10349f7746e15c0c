/**
 * The editor's admin HTTP endpoints: a bounded device scan for the device nodes' Scan button, a bounded look at
 * one device's GATT table for the generic GATT nodes' Explore button, and the serial ports for the ble-config
 * dialog. All sit behind Node-RED's admin authentication (RED.auth.needsPermission).
 * An error is answered as `{ error: { key, params } }`, a key of the ble-config catalog (below "ble-config.") that
 * the editor words in its user's language (resources/ble-instruments-editor.js errorText).
 */
import * as fs from "node:fs";
import { createRequire } from "node:module";
import * as path from "node:path";
import type { NodeAPI } from "node-red";
import type { NextFunction, Request, Response } from "express";
import { DEFAULT_POLICY, type BleAdapter, type DeviceSelector, type ExploreResult, type PeripheralInfo } from "../ble/pool";
import { acquireAdapter } from "../ble/registry";
import type { ReadFormat } from "../protocol/gatt-value";
import { gattName, suggestedFormat } from "../protocol/gatt-names";
import { formatUuid, uuidFromNoble } from "../protocol/uuid";
import { locateUartDriver } from "../ble/noble-driver";
import { problemOf } from "../ble/problem";
import { transportSettings, TransportUnavailableError, type BleConfigDef, type BleConfigNode } from "./ble-config-node";
import { addressProperty, PropertyError } from "./properties";

export const SCAN_PATH = "/ble-instruments/scan";
export const SERIAL_PORTS_PATH = "/ble-instruments/serial-ports";
export const EXPLORE_PATH = "/ble-instruments/explore";
export const SCAN_SECONDS = { min: 1, max: 15, default: 4 };
/** Time for one explore: find the device, wait for a free connection, connect and discover. */
export const EXPLORE_SECONDS = { min: 1, max: 60, default: 15 };
/** Each scan may open an adapter of its own (an undeployed config node): a burst of clicks must not open dozens. */
export const MAX_CONCURRENT_SCANS = 4;
/** Each explore may hold a connection slot for its whole time: fewer at once than scans. */
export const MAX_CONCURRENT_EXPLORES = 2;
/** The longest advertised name (the Device Name characteristic holds at most 248 bytes). */
export const MAX_NAME_LENGTH = 248;

/** One device as the editor lists it. */
export interface ScanResult {
  name: string;
  address: string;
  addressType: string;
  rssi: number;
  services: string[];
}

/** One characteristic as Explore lists it: what a click fills into a GATT node's dialog, and what helps to choose. */
export interface ExploredCharacteristic {
  /** As the GATT nodes output it (formatUuid): "2a19", or the dashed 128-bit form. */
  uuid: string;
  /** The Bluetooth SIG's name, where it has one. */
  name: string | null;
  properties: string[];
  /** A `format` of ble-gatt-in that suits it ("sig" where a decoder knows it). */
  suggestedFormat: ReadFormat;
  /** The ble-gatt-in `mode` that suits it: notify where it notifies or indicates, else read. */
  suggestedMode: "notify" | "read";
}

export interface ExploredService {
  uuid: string;
  name: string | null;
  characteristics: ExploredCharacteristic[];
}

/** The answer of the explore endpoint. */
export interface ExploreAnswer {
  address: string;
  name: string;
  services: ExploredService[];
}

/** A serial port as the ble-config dialog lists it (the fields of serialport's PortInfo that say which it is). */
export interface SerialPortInfo {
  path: string;
  manufacturer?: string;
  serialNumber?: string;
  vendorId?: string;
  productId?: string;
  pnpId?: string;
}

/** An error as the editor gets it: a ble-config catalog key (below "ble-config.") and its parameters. */
export interface ErrorBody {
  key: string;
  params: Record<string, string | number>;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly body: ErrorBody,
  ) {
    super(`${body.key} ${JSON.stringify(body.params)}`);
  }
}

/** Any error as a catalog key: a property error of the settings (`errors.*`), else the BLE layer's problem (`problem.*`). */
function bodyOf(error: unknown): ErrorBody {
  if (error instanceof HttpError) return error.body;
  if (error instanceof TransportUnavailableError) return { key: `errors.${error.key}`, params: { transport: error.transport, platform: error.platform } };
  if (error instanceof PropertyError) return { key: `errors.${error.key}`, params: { ...error.params } };
  const problem = problemOf(error);
  return { key: `problem.${problem.key}`, params: { ...problem.params } };
}

/** The query parameters Express hands over, each a string when given once. */
type Query = Record<string, unknown>;

function queryString(query: Query, name: string): string {
  const v = query[name];
  if (v === undefined) return "";
  if (typeof v !== "string") throw new HttpError(400, { key: "admin.repeated", params: { name } });
  return v.trim();
}

export interface ScanFilter {
  /** Service UUIDs, any of which qualifies a device. */
  services: string[];
  /** Name prefixes, any of which qualifies a device. */
  namePrefixes: string[];
}

/** What a node can talk to: a device advertising one of the services or with one of the name prefixes; no filter, any. */
export function matchesFilter(info: PeripheralInfo, filter: ScanFilter): boolean {
  if (filter.services.length === 0 && filter.namePrefixes.length === 0) return true;
  // What noble reports, read into the canonical form; what is no UUID matches no filter.
  const advertised = new Set(info.serviceUuids.map(uuidFromNoble));
  if (filter.services.some((s) => advertised.has(s))) return true;
  return filter.namePrefixes.some((p) => info.name.startsWith(p));
}

export function parseScanSeconds(raw: string): number {
  if (raw === "") return SCAN_SECONDS.default;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < SCAN_SECONDS.min || n > SCAN_SECONDS.max) {
    throw new HttpError(400, { key: "admin.seconds", params: { min: SCAN_SECONDS.min, max: SCAN_SECONDS.max } });
  }
  return n;
}

function parseFilter(query: Query): ScanFilter {
  const list = (name: string): string[] =>
    queryString(query, name)
      .split(",")
      .map((s) => s.trim())
      .filter((s) => s !== "");
  const services = list("service").map((s) => {
    // A 16-bit UUID may be written without its leading zeros, as noble writes it ("a00"): uuidFromNoble reads both.
    const uuid = /^(0x)?[0-9a-f]{1,4}$|^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/i.test(s) ? uuidFromNoble(s) : null;
    if (uuid === null) throw new HttpError(400, { key: "admin.service", params: {} });
    return uuid;
  });
  return { services, namePrefixes: list("namePrefix") };
}

/** A whole-field environment reference, "${NAME}", as Node-RED substitutes it in a deployed node's properties. */
const ENV_REFERENCE = /^\$\{([^}]+)\}$/;

/** A setting of the request that came from an environment variable: its value must never be sent back. */
interface Substitution {
  reference: string;
  value: string;
}

/**
 * Transport settings from the query: the ble-config dialog's properties, for a config node not deployed yet. A
 * property that is exactly "${NAME}" is replaced by `env(NAME)` when that is set, as the runtime would do when the
 * node is deployed (kept as written otherwise, as the runtime keeps it). The substitutions are listed, so that
 * errors can say "${NAME}" where they would name the value.
 */
function settingsFromQuery(query: Query, env: (name: string) => string | undefined): { def: BleConfigDef; substitutions: Substitution[] } | null {
  const transport = queryString(query, "transport");
  if (!transport) return null;
  const def: Record<string, unknown> = { transport };
  const substitutions: Substitution[] = [];
  for (const name of ["bluezAdapter", "hciDevice", "uartPort", "uartBaudRate", "simScenario"]) {
    let v = queryString(query, name);
    const ref = ENV_REFERENCE.exec(v);
    const value = ref ? env(ref[1]) : undefined;
    if (value !== undefined) {
      substitutions.push({ reference: v, value });
      v = value.trim();
    }
    if (v !== "") def[name] = v;
  }
  const flow = queryString(query, "uartFlowControl");
  if (flow !== "") def.uartFlowControl = flow !== "false";
  return { def: def as unknown as BleConfigDef, substitutions };
}

/**
 * The text with every form in which an error could carry a substituted value (as given, trimmed, JSON-quoted,
 * resolved as a path) replaced by the "${NAME}" it came from: only where the form stands on its own, not inside a
 * longer word or number (a value "0" must not turn "1200" or "hci0" into something else). The errors of src/ble and
 * src/sim name settings rather than quote them; this is what remains for those that cannot help it.
 */
function redactText(message: string, substitutions: readonly Substitution[]): string {
  let out = message;
  for (const { reference, value } of substitutions) {
    const trimmed = value.trim();
    if (trimmed === "") continue;
    const forms = new Set([value, trimmed, JSON.stringify(trimmed).slice(1, -1), path.resolve(trimmed)]);
    // Longest first: a resolved path contains the value itself.
    for (const form of [...forms].filter((f) => f !== "").sort((a, b) => b.length - a.length)) {
      const escaped = form.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
      out = out.replace(new RegExp(`(?<![A-Za-z0-9_])${escaped}(?![A-Za-z0-9_])`, "g"), () => reference);
    }
  }
  return out;
}

/** The error's parameters with every substituted value redacted (redactText): the key names the setting. */
function redact(body: ErrorBody, substitutions: readonly Substitution[]): ErrorBody {
  const params: Record<string, string | number> = {};
  for (const [name, value] of Object.entries(body.params)) params[name] = typeof value === "string" ? redactText(value, substitutions) : value;
  return { key: body.key, params };
}

/**
 * Runs `use` on the adapter the request names (a deployed config node, or settings in the query for one that is
 * not deployed), holding it open meanwhile when it is a temporary one. A failure of `use` is a 503.
 */
async function onAdapter<T>(RED: NodeAPI, query: Query, use: (adapter: BleAdapter) => Promise<T>): Promise<T> {
  // Not deployed, the node belongs to no flow yet: its "${NAME}" can only mean the process's environment.
  const fromQuery = settingsFromQuery(query, (name) => process.env[name]);
  if (fromQuery) {
    const { def, substitutions } = fromQuery;
    const body = (error: unknown): ErrorBody => redact(bodyOf(error), substitutions);
    let settings;
    try {
      settings = transportSettings(def);
    } catch (error) {
      throw new HttpError(400, body(error));
    }
    // Shares the adapter of a deployed config node with the same settings; otherwise opens one until `use` ends.
    const adapter: BleAdapter = acquireAdapter(settings, DEFAULT_POLICY);
    try {
      return await use(adapter);
    } catch (error) {
      throw new HttpError(503, body(error));
    } finally {
      await adapter.unref();
    }
  }
  const id = queryString(query, "config");
  if (!id) throw new HttpError(400, { key: "admin.config-required", params: {} });
  const node = RED.nodes.getNode(id) as (BleConfigNode & { type?: string }) | null;
  if (!node || node.type !== "ble-config") throw new HttpError(404, { key: "admin.no-config", params: {} });
  if (!node.adapter) {
    // The deployed node's settings were refused: its reason, as the runtime worded it when it was deployed.
    throw new HttpError(400, node.configError ? { key: "problem.failed", params: { detail: node.configError } } : { key: "admin.no-adapter", params: {} });
  }
  try {
    return await use(node.adapter);
  } catch (error) {
    throw new HttpError(503, bodyOf(error));
  }
}

/** The device an explore request names: `address` (any spelling the nodes accept) or `name` (exact advertised name). */
export function parseDevice(query: Query): DeviceSelector {
  const selector: DeviceSelector = {};
  const address = queryString(query, "address");
  if (address !== "") {
    try {
      selector.address = addressProperty(address);
    } catch {
      throw new HttpError(400, { key: "admin.address", params: {} });
    }
  }
  const name = queryString(query, "name");
  if (name.length > MAX_NAME_LENGTH) throw new HttpError(400, { key: "admin.name", params: { max: MAX_NAME_LENGTH } });
  if (name !== "") selector.name = name;
  if (!selector.address && !selector.name) throw new HttpError(400, { key: "admin.device-required", params: {} });
  return selector;
}

export function parseExploreSeconds(raw: string): number {
  if (raw === "") return EXPLORE_SECONDS.default;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < EXPLORE_SECONDS.min || n > EXPLORE_SECONDS.max) {
    throw new HttpError(400, { key: "admin.seconds", params: { min: EXPLORE_SECONDS.min, max: EXPLORE_SECONDS.max } });
  }
  return n;
}

/** A device's table as the editor lists it: UUIDs as the nodes output them, SIG names, suggested format and mode. */
export function describeTable(result: ExploreResult): ExploreAnswer {
  return {
    address: result.address,
    name: result.name,
    services: result.services.map((s) => ({
      uuid: formatUuid(s.uuid),
      name: gattName(s.uuid),
      characteristics: s.characteristics.map((c) => ({
        uuid: formatUuid(c.uuid),
        name: gattName(c.uuid),
        properties: [...c.properties],
        suggestedFormat: suggestedFormat(c.uuid, c.properties),
        suggestedMode: c.properties.includes("notify") || c.properties.includes("indicate") ? "notify" : "read",
      })),
    })),
  };
}

function sendError(res: Response, error: unknown, status = 503): void {
  res.status(error instanceof HttpError ? error.status : status).json({ error: bodyOf(error) });
}

/** serialport's list(), from the very copy the UART driver of @stoprocent/bluetooth-hci-socket loads. */
export async function listSerialPorts(): Promise<SerialPortInfo[]> {
  const fromDriver = createRequire(locateUartDriver());
  const { SerialPort } = fromDriver("serialport") as { SerialPort: { list(): Promise<SerialPortInfo[]> } };
  let ports: SerialPortInfo[];
  try {
    ports = await SerialPort.list();
  } catch (error) {
    // On Linux serialport lists through `udevadm`, absent where udev is (containers, minimal images).
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
    ports = devSerialPorts();
  }
  return ports
    .map((p) => {
      const info: SerialPortInfo = { path: p.path };
      for (const key of ["manufacturer", "serialNumber", "vendorId", "productId", "pnpId"] as const) {
        if (typeof p[key] === "string" && p[key] !== "") info[key] = p[key];
      }
      return info;
    })
    .sort((a, b) => a.path.localeCompare(b.path));
}

/** USB and on-board UARTs by their device names, for machines without udev; ttyS* are left out (always present). */
function devSerialPorts(): SerialPortInfo[] {
  let names: string[];
  try {
    names = fs.readdirSync("/dev");
  } catch {
    return [];
  }
  return names.filter((n) => /^tty(USB|ACM|AMA|XRUSB)\d+$|^ttyTHS\d+$|^rfcomm\d+$/.test(n)).map((n) => ({ path: `/dev/${n}` }));
}

export function registerAdminEndpoints(RED: NodeAPI): void {
  let running = 0;
  let exploring = 0;

  const mayRead = RED.auth.needsPermission("ble-config.read");
  const mayWrite = RED.auth.needsPermission("ble-config.write");
  // Scanning on a deployed adapter only reads. Settings in the request open an adapter (a device, a serial port, a
  // scenario file the runtime reads): that is what deploying a config node does, so it needs the same right.
  const scanPermission = (req: Request, res: Response, next: NextFunction): void => (req.query.transport !== undefined ? mayWrite : mayRead)(req, res, next);

  RED.httpAdmin.get(SCAN_PATH, scanPermission, (req: Request, res: Response) => {
    const query = req.query as Query;
    let seconds: number;
    let filter: ScanFilter;
    try {
      seconds = parseScanSeconds(queryString(query, "seconds"));
      filter = parseFilter(query);
    } catch (error) {
      sendError(res, error);
      return;
    }
    if (running >= MAX_CONCURRENT_SCANS) {
      sendError(res, new HttpError(429, { key: "admin.busy", params: { max: MAX_CONCURRENT_SCANS } }));
      return;
    }
    running++;
    // Asynchronous throughout: the scan waits on a timer, so flows keep running while it lasts.
    onAdapter(RED, query, (adapter) => adapter.scan(seconds * 1000))
      .then((found) => {
        const results: ScanResult[] = found
          .filter((p) => matchesFilter(p, filter))
          .sort((a, b) => b.rssi - a.rssi || a.address.localeCompare(b.address))
          .map((p) => ({ name: p.name, address: p.address, addressType: p.addressType, rssi: p.rssi, services: p.serviceUuids }));
        res.json(results);
      })
      .catch((error: unknown) => sendError(res, error))
      .finally(() => running--);
  });

  // The same rights as a scan: the table of a device is what a scan of it would show, one step further.
  RED.httpAdmin.get(EXPLORE_PATH, scanPermission, (req: Request, res: Response) => {
    const query = req.query as Query;
    let seconds: number;
    let selector: DeviceSelector;
    try {
      seconds = parseExploreSeconds(queryString(query, "seconds"));
      selector = parseDevice(query);
    } catch (error) {
      sendError(res, error);
      return;
    }
    if (exploring >= MAX_CONCURRENT_EXPLORES) {
      sendError(res, new HttpError(429, { key: "admin.explore-busy", params: { max: MAX_CONCURRENT_EXPLORES } }));
      return;
    }
    exploring++;
    onAdapter(RED, query, (adapter) => adapter.explore(selector, seconds * 1000))
      .then((result) => res.json(describeTable(result)))
      .catch((error: unknown) => sendError(res, error))
      .finally(() => exploring--);
  });

  RED.httpAdmin.get(SERIAL_PORTS_PATH, mayRead, (_req: Request, res: Response) => {
    listSerialPorts().then(
      (ports) => res.json(ports),
      // The system's own text (serialport's or udev's), for the dialog's "cannot list serial ports (…)".
      (error: unknown) => sendError(res, error, 500),
    );
  });
}
