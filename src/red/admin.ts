/**
 * The editor's admin HTTP endpoints: a bounded device scan for the device nodes' Scan button, and the serial
 * ports for the ble-config dialog. Both sit behind Node-RED's admin authentication (RED.auth.needsPermission).
 */
import * as fs from "node:fs";
import { createRequire } from "node:module";
import * as path from "node:path";
import type { NodeAPI } from "node-red";
import type { NextFunction, Request, Response } from "express";
import { DEFAULT_POLICY, type BleAdapter, type PeripheralInfo } from "../ble/pool";
import { acquireAdapter } from "../ble/registry";
import { uuidFromNoble } from "../protocol/uuid";
import { locateUartDriver } from "../ble/noble-driver";
import { bleTexts, transportSettings, type BleConfigDef, type BleConfigNode } from "./ble-config-node";

export const SCAN_PATH = "/ble-instruments/scan";
export const SERIAL_PORTS_PATH = "/ble-instruments/serial-ports";
export const SCAN_SECONDS = { min: 1, max: 15, default: 4 };
/** Each scan may open an adapter of its own (an undeployed config node): a burst of clicks must not open dozens. */
export const MAX_CONCURRENT_SCANS = 4;

/** One device as the editor lists it. */
export interface ScanResult {
  name: string;
  address: string;
  addressType: string;
  rssi: number;
  services: string[];
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

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** The query parameters Express hands over, each a string when given once. */
type Query = Record<string, unknown>;

function queryString(query: Query, name: string): string {
  const v = query[name];
  if (v === undefined) return "";
  if (typeof v !== "string") throw new HttpError(400, `${name} must be given once`);
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
    throw new HttpError(400, `seconds must be a number from ${SCAN_SECONDS.min} to ${SCAN_SECONDS.max}`);
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
    if (uuid === null) throw new HttpError(400, "service must be a list of 16-bit or 128-bit UUIDs");
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
 * The message with every form in which an error could carry a substituted value (as given, trimmed, JSON-quoted,
 * resolved as a path) replaced by the "${NAME}" it came from: only where the form stands on its own, not inside a
 * longer word or number (a value "0" must not turn "1200" or "hci0" into something else). The errors of src/ble and
 * src/sim name settings rather than quote them; this is what remains for those that cannot help it.
 */
function redact(message: string, substitutions: readonly Substitution[]): string {
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

/** Any error in the ble-config catalog's words (the BLE layer's problems, property errors), else its message. */
type ErrorText = (error: unknown) => string;

/** Runs `scan` on the adapter the request names, holding it open meanwhile when it is a temporary one. */
async function scanOn(RED: NodeAPI, errorText: ErrorText, query: Query, durationMs: number): Promise<PeripheralInfo[]> {
  // Not deployed, the node belongs to no flow yet: its "${NAME}" can only mean the process's environment.
  const fromQuery = settingsFromQuery(query, (name) => process.env[name]);
  if (fromQuery) {
    const { def, substitutions } = fromQuery;
    const message = (error: unknown): string => redact(errorText(error), substitutions);
    let settings;
    try {
      settings = transportSettings(def);
    } catch (error) {
      throw new HttpError(400, message(error));
    }
    // Shares the adapter of a deployed config node with the same settings; otherwise opens one until the scan ends.
    const adapter: BleAdapter = acquireAdapter(settings, DEFAULT_POLICY);
    try {
      return await adapter.scan(durationMs);
    } catch (error) {
      throw new HttpError(503, message(error));
    } finally {
      await adapter.unref();
    }
  }
  const id = queryString(query, "config");
  if (!id) throw new HttpError(400, "config (the id of a ble-config node) or transport is required");
  const node = RED.nodes.getNode(id) as (BleConfigNode & { type?: string }) | null;
  if (!node || node.type !== "ble-config") {
    throw new HttpError(404, "no deployed ble-config node has this config id: deploy it first, or pass its transport settings");
  }
  if (!node.adapter) throw new HttpError(400, node.configError ?? "the ble-config node has no adapter");
  try {
    return await node.adapter.scan(durationMs);
  } catch (error) {
    throw new HttpError(503, errorText(error));
  }
}

function sendError(res: Response, error: unknown, errorText: ErrorText): void {
  if (error instanceof HttpError) res.status(error.status).json({ error: error.message });
  else res.status(503).json({ error: errorText(error) });
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
  // This module is registered by the ble-config node, so RED._ reads its catalog.
  const errorText = bleTexts(RED).error;

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
      sendError(res, error, errorText);
      return;
    }
    if (running >= MAX_CONCURRENT_SCANS) {
      sendError(res, new HttpError(429, `${MAX_CONCURRENT_SCANS} scans are already running; try again when they end`), errorText);
      return;
    }
    running++;
    // Asynchronous throughout: the scan waits on a timer, so flows keep running while it lasts.
    scanOn(RED, errorText, query, seconds * 1000)
      .then((found) => {
        const results: ScanResult[] = found
          .filter((p) => matchesFilter(p, filter))
          .sort((a, b) => b.rssi - a.rssi || a.address.localeCompare(b.address))
          .map((p) => ({ name: p.name, address: p.address, addressType: p.addressType, rssi: p.rssi, services: p.serviceUuids }));
        res.json(results);
      })
      .catch((error: unknown) => sendError(res, error, errorText))
      .finally(() => running--);
  });

  RED.httpAdmin.get(SERIAL_PORTS_PATH, mayRead, (_req: Request, res: Response) => {
    listSerialPorts().then(
      (ports) => res.json(ports),
      (error: unknown) => res.status(500).json({ error: `cannot list serial ports: ${error instanceof Error ? error.message : String(error)}` }),
    );
  });
}
