/**
 * Wireshark's command-line reader as a test oracle for HCI captures (BTSnoop, H4): tshark decodes the capture,
 * and this module turns its per-frame fields into a list of problems and, per connection, the ATT PDUs in order.
 *
 * tshark is lenient: it flags truncated HCI events and reassembly errors as malformed, but shows an unknown ATT
 * opcode as "<unknown>", an unknown L2CAP channel as "Connection oriented channel" and an L2CAP PDU that never
 * completes as a bare ACL frame, all without an expert item. So besides tshark's own verdicts (malformed
 * packets, expert items) every frame must be decoded down to the layer it belongs to; analyze() checks both.
 *
 * tshark is Debian's package `tshark`; tests that need it fail (never skip) when it is missing.
 */
import { execFileSync, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import { AttOpcode } from "../../src/protocol/att";
import { decodeBtsnoop, encodeBtsnoopHeader, encodeBtsnoopRecord } from "../../src/protocol/btsnoop";
import { CID_ATT, H4_ACL, H4_COMMAND, H4_EVENT } from "../../src/protocol/hci";

export const TSHARK_MISSING =
  "tshark (Wireshark's command-line reader) is not installed: apt-get install -y tshark " +
  "(non-interactively: DEBIAN_FRONTEND=noninteractive; the test only reads files, so no capture rights are needed)";

/** The tshark executable, or null when it cannot be run. */
export function locateTshark(): string | null {
  const result = spawnSync("tshark", ["--version"], { encoding: "utf8" });
  return result.status === 0 ? "tshark" : null;
}

/** Expert severities (epan/proto.h PI_*). */
export const SEVERITY_WARN = 0x00600000;
export const SEVERITY_ERROR = 0x00800000;

/** ATT opcodes Core 5.x defines (Vol 3 Part F 3.4.8), with Wireshark's names for messages. */
export const ATT_OPCODES: ReadonlyMap<number, string> = new Map([
  [AttOpcode.ErrorResponse, "Error Response"],
  [AttOpcode.ExchangeMtuRequest, "Exchange MTU Request"],
  [AttOpcode.ExchangeMtuResponse, "Exchange MTU Response"],
  [AttOpcode.FindInformationRequest, "Find Information Request"],
  [AttOpcode.FindInformationResponse, "Find Information Response"],
  [AttOpcode.FindByTypeValueRequest, "Find By Type Value Request"],
  [AttOpcode.FindByTypeValueResponse, "Find By Type Value Response"],
  [AttOpcode.ReadByTypeRequest, "Read By Type Request"],
  [AttOpcode.ReadByTypeResponse, "Read By Type Response"],
  [AttOpcode.ReadRequest, "Read Request"],
  [AttOpcode.ReadResponse, "Read Response"],
  [AttOpcode.ReadBlobRequest, "Read Blob Request"],
  [AttOpcode.ReadBlobResponse, "Read Blob Response"],
  [AttOpcode.ReadMultipleRequest, "Read Multiple Request"],
  [AttOpcode.ReadMultipleResponse, "Read Multiple Response"],
  [AttOpcode.ReadByGroupTypeRequest, "Read By Group Type Request"],
  [AttOpcode.ReadByGroupTypeResponse, "Read By Group Type Response"],
  [AttOpcode.WriteRequest, "Write Request"],
  [AttOpcode.WriteResponse, "Write Response"],
  [AttOpcode.PrepareWriteRequest, "Prepare Write Request"],
  [AttOpcode.PrepareWriteResponse, "Prepare Write Response"],
  [AttOpcode.ExecuteWriteRequest, "Execute Write Request"],
  [AttOpcode.ExecuteWriteResponse, "Execute Write Response"],
  [AttOpcode.HandleValueNotification, "Handle Value Notification"],
  [AttOpcode.HandleValueIndication, "Handle Value Indication"],
  [AttOpcode.HandleValueConfirmation, "Handle Value Confirmation"],
  [AttOpcode.WriteCommand, "Write Command"],
  [AttOpcode.SignedWriteCommand, "Signed Write Command"],
]);

/** Client requests: each is answered by opcode + 1 or an Error Response before the client sends the next. */
const ATT_REQUESTS: ReadonlySet<number> = new Set([
  AttOpcode.ExchangeMtuRequest,
  AttOpcode.FindInformationRequest,
  AttOpcode.FindByTypeValueRequest,
  AttOpcode.ReadByTypeRequest,
  AttOpcode.ReadRequest,
  AttOpcode.ReadBlobRequest,
  AttOpcode.ReadMultipleRequest,
  AttOpcode.ReadByGroupTypeRequest,
  AttOpcode.WriteRequest,
  AttOpcode.PrepareWriteRequest,
  AttOpcode.ExecuteWriteRequest,
]);
const isResponse = (op: number): boolean => op === AttOpcode.ErrorResponse || ATT_REQUESTS.has(op - 1);
const DIRECTION_SENT = 0;
const DIRECTION_RECEIVED = 1;

export interface TsharkFrame {
  /** Every requested field, each occurrence in order ([] when absent). */
  fields: Map<string, string[]>;
}

/** Separators that never occur in tshark's field output for these fields. */
const FIELD_SEPARATOR = "\t";
const OCCURRENCE_SEPARATOR = "\u001f";

function tshark(args: string[]): string {
  // No user profile: a developer's Wireshark preferences must not change what the test sees.
  return execFileSync("tshark", args, {
    encoding: "utf8",
    maxBuffer: 256 * 1024 * 1024,
    env: { ...process.env, WIRESHARK_CONFIG_DIR: "/nonexistent" },
    stdio: ["ignore", "pipe", "pipe"],
  });
}

/**
 * One row per frame with `fields` (tshark -T fields). Two passes (-2), so fragments know the frame their L2CAP
 * PDU was reassembled in, as Wireshark's GUI shows.
 */
export function readFields(capture: string, fields: readonly string[]): TsharkFrame[] {
  const args = ["-r", capture, "-2", "-n", "-T", "fields", "-E", `separator=${FIELD_SEPARATOR}`, "-E", `aggregator=${OCCURRENCE_SEPARATOR}`, "-E", "occurrence=a", "-E", "quote=n"];
  for (const name of fields) args.push("-e", name);
  return tshark(args)
    .split("\n")
    .filter((line) => line.length > 0)
    .map((line) => {
      const values = line.split(FIELD_SEPARATOR);
      const map = new Map<string, string[]>();
      fields.forEach((name, i) => {
        const value = values[i] ?? "";
        map.set(name, value === "" ? [] : value.split(OCCURRENCE_SEPARATOR));
      });
      return { fields: map };
    });
}

export function field(frame: TsharkFrame, name: string): string[] {
  return frame.fields.get(name) ?? [];
}

function first(frame: TsharkFrame, name: string): string | undefined {
  return field(frame, name)[0];
}

function num(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  return Number.isFinite(n) ? n : undefined;
}

/** Fields analyze() reads. */
export const FIELDS = [
  "frame.number",
  "frame.time_epoch",
  "frame.protocols",
  "hci_h4.type",
  "hci_h4.direction",
  "bthci_cmd.opcode",
  "bthci_evt.code",
  "bthci_evt.le_meta_subevent",
  "bthci_evt.status",
  "bthci_evt.connection_handle",
  "bthci_evt.bd_addr",
  "bthci_evt.reason",
  "bthci_acl.chandle",
  "bthci_acl.connect_in",
  "bthci_acl.reassembled_in",
  "btl2cap.cid",
  "btatt.opcode",
  "btatt.req_opcode_in_error",
  "btatt.characteristic_configuration_client.notification",
  "btatt.characteristic_configuration_client.indication",
  "_ws.malformed",
  "_ws.expert.message",
  "_ws.expert.severity",
  "_ws.col.Info",
] as const;

export interface AttPdu {
  frame: number;
  opcode: number;
  /** "sent" = central (host) → peripheral, "received" = peripheral → central. */
  direction: "sent" | "received";
  /** For Error Responses: the request it answers. */
  requestInError?: number;
  /** For CCCD writes Wireshark recognised: the bits written. */
  cccd?: { notification: boolean; indication: boolean };
  info: string;
}

export interface Connection {
  handle: number;
  /** Peer address from LE Connection Complete, as tshark prints it (lowercase, colons). */
  address: string;
  /** Frame of the LE Connection Complete. */
  connectedIn: number;
  /** HCI reason of its Disconnection Complete, if one was seen. */
  disconnectReason?: number;
  att: AttPdu[];
}

export interface ExpertItem {
  frame: TsharkFrame;
  message: string;
  severity: number;
}

export interface Analysis {
  frames: TsharkFrame[];
  /** Everything that is wrong, one line each naming the frame. Empty for a clean capture. */
  problems: string[];
  /** In the order they were opened. */
  connections: Connection[];
  /** Warnings and worse, for the caller's verdict (analyze() itself only counts errors and malformed packets). */
  warnings: ExpertItem[];
}

/**
 * Decodes `capture` with tshark and lists every frame that is malformed, carries an error-level expert item, is of
 * an unknown or misdirected kind, or is not decoded down to its layer (commands to bthci_cmd, events to
 * bthci_evt, ACL to L2CAP on the ATT channel of a connection Wireshark saw open, or a fragment of a PDU that
 * Wireshark reassembled). Warning-level expert items are returned for the caller to judge (see warnings).
 */
export function analyze(capture: string): Analysis {
  const frames = readFields(capture, FIELDS);
  const problems: string[] = [];
  const warnings: ExpertItem[] = [];
  const connections: Connection[] = [];
  const open = new Map<number, Connection>();

  for (const frame of frames) {
    const n = first(frame, "frame.number") ?? "?";
    const info = first(frame, "_ws.col.Info") ?? "";
    const at = `frame ${n} (${info})`;
    const protocols = first(frame, "frame.protocols") ?? "";
    const type = num(first(frame, "hci_h4.type"));
    const direction = num(first(frame, "hci_h4.direction"));

    if (field(frame, "_ws.malformed").length > 0) problems.push(`${at}: malformed`);
    const messages = field(frame, "_ws.expert.message");
    field(frame, "_ws.expert.severity").forEach((s, i) => {
      const severity = Number(s);
      const message = messages[i] ?? "";
      if (severity >= SEVERITY_ERROR) problems.push(`${at}: expert error "${message}"`);
      else if (severity >= SEVERITY_WARN) warnings.push({ frame, message, severity });
    });
    if (/\bUnknown 0x|<unknown>/.test(info)) problems.push(`${at}: unknown to Wireshark`);

    if (type === H4_COMMAND) {
      if (direction !== DIRECTION_SENT) problems.push(`${at}: an HCI command recorded as received by the host`);
      // btcommon: the advertising and EIR data structures inside some commands and events, decoded too.
      if (!/:bthci_cmd(:btcommon)?$/.test(protocols)) problems.push(`${at}: command not decoded as HCI command (${protocols})`);
      const opcode = num(first(frame, "bthci_cmd.opcode"));
      // OGF 0x3f: vendor-specific; the simulator claims no vendor (manufacturer 0xffff), noble must not send any.
      if (opcode === undefined || opcode >> 10 === 0x3f) problems.push(`${at}: vendor-specific or missing opcode`);
    } else if (type === H4_EVENT) {
      if (direction !== DIRECTION_RECEIVED) problems.push(`${at}: an HCI event recorded as sent by the host`);
      if (!/:bthci_evt(:btcommon)?$/.test(protocols)) problems.push(`${at}: event not decoded as HCI event (${protocols})`);
      trackConnections(frame, open, connections, problems, at);
    } else if (type === H4_ACL) {
      const handle = num(first(frame, "bthci_acl.chandle"));
      if (handle === undefined) {
        problems.push(`${at}: ACL without a connection handle`);
        continue;
      }
      if (field(frame, "bthci_acl.connect_in").length === 0) problems.push(`${at}: ACL on handle 0x${handle.toString(16)} outside any connection Wireshark saw open`);
      if (!protocols.includes(":btl2cap")) {
        // A fragment: fine only if Wireshark completed the PDU it belongs to.
        if (field(frame, "bthci_acl.reassembled_in").length === 0) problems.push(`${at}: ACL data that is neither an L2CAP PDU nor part of one Wireshark reassembled`);
        continue;
      }
      const cid = num(first(frame, "btl2cap.cid"));
      if (cid !== CID_ATT || !protocols.includes(":btatt")) {
        problems.push(`${at}: L2CAP on channel 0x${(cid ?? -1).toString(16)}, not ATT (${protocols})`);
        continue;
      }
      const opcode = num(first(frame, "btatt.opcode"));
      if (opcode === undefined || !ATT_OPCODES.has(opcode)) {
        problems.push(`${at}: ATT opcode ${String(first(frame, "btatt.opcode"))} is not one Core defines`);
        continue;
      }
      const conn = open.get(handle);
      if (!conn) {
        problems.push(`${at}: ATT on handle 0x${handle.toString(16)} with no open connection`);
        continue;
      }
      const notification = first(frame, "btatt.characteristic_configuration_client.notification");
      const indication = first(frame, "btatt.characteristic_configuration_client.indication");
      const inError = num(first(frame, "btatt.req_opcode_in_error"));
      conn.att.push({
        frame: Number(n),
        opcode,
        direction: direction === DIRECTION_SENT ? "sent" : "received",
        ...(inError !== undefined ? { requestInError: inError } : {}),
        ...(notification !== undefined && indication !== undefined ? { cccd: { notification: notification === "1", indication: indication === "1" } } : {}),
        info,
      });
    } else {
      problems.push(`${at}: H4 packet type ${String(type)} (the simulator speaks LE: commands, events and ACL only)`);
    }
  }
  for (const conn of connections) problems.push(...attProtocolProblems(conn));
  return { frames, problems, connections, warnings };
}

function trackConnections(frame: TsharkFrame, open: Map<number, Connection>, connections: Connection[], problems: string[], at: string): void {
  const code = num(first(frame, "bthci_evt.code"));
  const frameNumber = Number(first(frame, "frame.number"));
  if (code === 0x3e && num(first(frame, "bthci_evt.le_meta_subevent")) === 0x01 && num(first(frame, "bthci_evt.status")) === 0) {
    const handle = num(first(frame, "bthci_evt.connection_handle"));
    const address = first(frame, "bthci_evt.bd_addr");
    if (handle === undefined || address === undefined) {
      problems.push(`${at}: LE Connection Complete without handle or address`);
      return;
    }
    if (open.has(handle)) problems.push(`${at}: handle 0x${handle.toString(16)} opened twice`);
    const conn: Connection = { handle, address: address.toLowerCase(), connectedIn: frameNumber, att: [] };
    open.set(handle, conn);
    connections.push(conn);
  } else if (code === 0x05 && num(first(frame, "bthci_evt.status")) === 0) {
    const handle = num(first(frame, "bthci_evt.connection_handle"));
    const conn = handle === undefined ? undefined : open.get(handle);
    if (!conn) {
      problems.push(`${at}: Disconnection Complete for a handle that is not open`);
      return;
    }
    conn.disconnectReason = num(first(frame, "bthci_evt.reason"));
    open.delete(conn.handle);
  }
}

/**
 * The ATT rules a capture must keep on one connection (Core Vol 3 Part F 3.3.2): the client has at most one
 * request outstanding and the server answers it with the matching response or an Error Response naming it; the
 * server has at most one indication outstanding and the client confirms it; requests come from the client,
 * notifications and indications from the server.
 */
export function attProtocolProblems(conn: Connection): string[] {
  const problems: string[] = [];
  const where = (pdu: AttPdu) => `handle 0x${conn.handle.toString(16)} (${conn.address}) frame ${pdu.frame} (${pdu.info})`;
  let request: AttPdu | null = null;
  let indication: AttPdu | null = null;
  for (const pdu of conn.att) {
    const op = pdu.opcode;
    const fromClient = pdu.direction === "sent";
    if (ATT_REQUESTS.has(op)) {
      if (!fromClient) problems.push(`${where(pdu)}: a request from the server`);
      else if (request) problems.push(`${where(pdu)}: request sent while frame ${request.frame} is unanswered`);
      request = pdu;
    } else if (isResponse(op)) {
      if (fromClient) problems.push(`${where(pdu)}: a response from the client`);
      else if (!request) problems.push(`${where(pdu)}: response with no request outstanding`);
      else if (op === AttOpcode.ErrorResponse ? pdu.requestInError !== request.opcode : op !== request.opcode + 1) {
        problems.push(`${where(pdu)}: does not answer frame ${request.frame} (${request.info})`);
      }
      request = null;
    } else if (op === AttOpcode.HandleValueIndication) {
      if (fromClient) problems.push(`${where(pdu)}: an indication from the client`);
      else if (indication) problems.push(`${where(pdu)}: indication while frame ${indication.frame} is unconfirmed`);
      indication = pdu;
    } else if (op === AttOpcode.HandleValueConfirmation) {
      if (!fromClient) problems.push(`${where(pdu)}: a confirmation from the server`);
      else if (!indication) problems.push(`${where(pdu)}: confirmation with no indication outstanding`);
      indication = null;
    } else if (op === AttOpcode.HandleValueNotification && fromClient) {
      problems.push(`${where(pdu)}: a notification from the client`);
    } else if ((op === AttOpcode.WriteCommand || op === AttOpcode.SignedWriteCommand) && !fromClient) {
      problems.push(`${where(pdu)}: a write command from the server`);
    }
  }
  // A link that ends loses what was outstanding; one still open must not have left a request unanswered.
  if (conn.disconnectReason === undefined && request) problems.push(`handle 0x${conn.handle.toString(16)}: frame ${request.frame} never answered`);
  if (conn.disconnectReason === undefined && indication) problems.push(`handle 0x${conn.handle.toString(16)}: frame ${indication.frame} never confirmed`);
  return problems;
}

/**
 * The opcodes of `conn` in order of first appearance, leaving out responses and errors (the pairing rules check
 * those): the phases a session went through.
 */
export function attPhases(conn: Connection): number[] {
  const seen: number[] = [];
  for (const pdu of conn.att) {
    if (!isResponse(pdu.opcode) && !seen.includes(pdu.opcode)) seen.push(pdu.opcode);
  }
  return seen;
}

/** "0x12 Write Request" for messages. */
export function attName(opcode: number): string {
  return `0x${opcode.toString(16).padStart(2, "0")} ${ATT_OPCODES.get(opcode) ?? "?"}`;
}

/**
 * Writes a copy of `capture` holding every command and event but only the ACL data of connection `handle`.
 * Wireshark maps attribute handles to UUIDs per adapter, not per connection (packet-btatt.c keys its
 * handle_to_uuid tree by interface, adapter and attribute handle), so with several connections it labels one
 * peripheral's values with another's characteristics and warns about values that do not fit the wrong label.
 * A capture of one connection is labelled correctly.
 */
export function writeConnectionCapture(capture: string, handle: number, out: string): void {
  const file = decodeBtsnoop(fs.readFileSync(capture));
  const kept = file.records.filter((r) => r.packet[0] !== H4_ACL || (r.packet.readUInt16LE(1) & 0x0fff) === handle);
  fs.writeFileSync(
    out,
    Buffer.concat([
      encodeBtsnoopHeader(file.datalink),
      ...kept.map((r) => encodeBtsnoopRecord({ packet: r.packet, direction: r.direction, timestampUs: r.timestampUs, cumulativeDrops: r.cumulativeDrops })),
    ]),
  );
}
