/**
 * The scan type of the host's LE Set Scan Parameters commands, read and rewritten on their way to the controller.
 *
 * noble always asks for an active scan (the controller sends a scan request to every advertiser and reports its
 * scan response). A passive scan sends nothing: the scanner is invisible and the advertisers' batteries are spared.
 * The BLE layer sits between noble and the HCI driver, so it sets the type there, in the command itself: the
 * legacy command (OGF 0x08, OCF 0x000B: LE_Scan_Type is its first parameter) and the extended one (OCF 0x0041: one
 * Scan_Type per PHY in Scanning_PHYs). Every other packet, and a command whose length does not add up, passes
 * untouched. Reports from a passive scan are completed for noble (withEmptyScanResponses). Pure: no noble, no
 * Node-RED.
 */
import { ADV_IND, ADV_SCAN_IND, H4_COMMAND, OP, opcode, SCAN_RSP } from "./hci";
import { buildLeAdvertisingReport, buildLeMetaEvent, parseLeAdvertisingReports, parseLeMetaEvent } from "./hci-packets";

export type ScanType = "active" | "passive";

/** LE Set Extended Scan Parameters (Core Spec Vol 4 Part E 7.8.64). */
export const LE_SET_EXTENDED_SCAN_PARAMETERS = opcode(0x08, 0x0041);

const PASSIVE = 0x00;
const ACTIVE = 0x01;
/** H4 type, opcode (2), parameter length. */
const HEADER = 4;

/** Offsets (in the H4 packet) of the Scan_Type bytes of a scan parameters command; null when it is none or malformed. */
function scanTypeOffsets(packet: Buffer): number[] | null {
  if (packet.length < HEADER || packet[0] !== H4_COMMAND) return null;
  const op = packet.readUInt16LE(1);
  const length = packet[3];
  if (packet.length !== HEADER + length) return null;
  if (op === OP.LE_SET_SCAN_PARAMETERS) return length === 7 ? [HEADER] : null;
  if (op !== LE_SET_EXTENDED_SCAN_PARAMETERS || length < 3) return null;
  // Own_Address_Type, Scanning_Filter_Policy, Scanning_PHYs; then Scan_Type, Interval (2), Window (2) per PHY bit.
  const phys = packet[HEADER + 2];
  let count = 0;
  for (let bit = phys; bit !== 0; bit >>= 1) count += bit & 1;
  if (count === 0 || length !== 3 + 5 * count) return null;
  return Array.from({ length: count }, (_, i) => HEADER + 3 + 5 * i);
}

/** The scan type a scan parameters command asks for (the first PHY's, for the extended one), else null. */
export function scanTypeOf(packet: Buffer): ScanType | null {
  const offsets = scanTypeOffsets(packet);
  if (!offsets) return null;
  return packet[offsets[0]] === PASSIVE ? "passive" : "active";
}

/**
 * The packet asking for `type`: a scan parameters command whose type differs comes back as a copy with every
 * Scan_Type byte set; anything else (another packet, a malformed command, one already of that type) is returned
 * as it is, the same buffer.
 */
export function withScanType(packet: Buffer, type: ScanType): Buffer {
  const offsets = scanTypeOffsets(packet);
  if (!offsets) return packet;
  const value = type === "passive" ? PASSIVE : ACTIVE;
  if (offsets.every((o) => packet[o] === value)) return packet;
  const copy = Buffer.from(packet);
  for (const o of offsets) copy[o] = value;
  return copy;
}

/**
 * The packets to hand to noble, under a passive scan, for one packet from the controller. noble 2.8
 * (lib/hci-socket/gap.js) reports a connectable or scannable advertiser (ADV_IND, ADV_SCAN_IND) only with a scan
 * response, or on a later report while it has never seen one from that device; a passive scan gets no scan
 * responses, so a device noble once saw with one (an earlier active scan) would never be reported again. Each such
 * report is therefore followed by an empty scan response of the same device and signal strength, which makes noble
 * report it at once (noble merges advertising data: the empty response removes nothing). Every other packet passes
 * as it is.
 */
export function withEmptyScanResponses(packet: Buffer): Buffer[] {
  const meta = parseLeMetaEvent(packet);
  if (meta?.subevent === LE_EXTENDED_ADVERTISING_REPORT) return withEmptyExtendedScanResponses(packet, meta.params);
  const reports = parseLeAdvertisingReports(packet);
  if (!reports) return [packet];
  const completed = reports.filter((r) => r.eventType === ADV_IND || r.eventType === ADV_SCAN_IND);
  if (completed.length === 0) return [packet];
  return [packet, ...completed.map((r) => buildLeAdvertisingReport({ ...r, eventType: SCAN_RSP, data: Buffer.alloc(0) }))];
}

/** LE Extended Advertising Report (Core Spec Vol 4 Part E 7.7.65.13), which noble reads from controllers with the feature. */
export const LE_EXTENDED_ADVERTISING_REPORT = 0x0d;
/** Event_Type bits: connectable, scan response; bits 5–6 the data status (0: complete). */
const EXT_CONNECTABLE = 0x01;
const EXT_SCAN_RESPONSE = 0x08;
const EXT_DATA_STATUS = 0x60;
/** Event type (2), address type, address (6), PHYs (2), SID, TX power, RSSI, interval (2), direct address type and address (7), data length. */
const EXT_REPORT_FIXED = 24;

/**
 * The same completion for extended reports: an empty, complete scan response after each complete connectable report.
 * noble reads a scannable but non-connectable extended report (a legacy ADV_SCAN_IND among them) as non-connectable and
 * reports it at once, so a scan response after it would be a second report of the same advertisement.
 */
function withEmptyExtendedScanResponses(packet: Buffer, params: Buffer): Buffer[] {
  if (params.length < 1) return [packet];
  const extra: Buffer[] = [];
  let at = 1;
  for (let i = 0; i < params[0]; i++) {
    if (at + EXT_REPORT_FIXED > params.length) return [packet];
    const length = params[at + EXT_REPORT_FIXED - 1];
    if (at + EXT_REPORT_FIXED + length > params.length) return [packet];
    const type = params.readUInt16LE(at);
    if ((type & EXT_CONNECTABLE) !== 0 && (type & (EXT_SCAN_RESPONSE | EXT_DATA_STATUS)) === 0) {
      const fixed = Buffer.from(params.subarray(at, at + EXT_REPORT_FIXED));
      fixed.writeUInt16LE(type | EXT_SCAN_RESPONSE, 0);
      fixed[EXT_REPORT_FIXED - 1] = 0;
      extra.push(buildLeMetaEvent(LE_EXTENDED_ADVERTISING_REPORT, Buffer.concat([Buffer.of(1), fixed])));
    }
    at += EXT_REPORT_FIXED + length;
  }
  return [packet, ...extra];
}
