/**
 * Advertising data from the radio, made safe for noble's parser before it sees it.
 *
 * noble (lib/hci-socket/gap.js parseServices) reads a TX Power Level AD structure's byte without checking that
 * it is there; on a structure with no data the parse throws, noble's catch drops the whole report, and the device
 * is never discovered. Such structures carry nothing, so they are cut out of the report and the rest of it (name,
 * services) goes through. Every other report passes untouched. Pure: no noble, no Node-RED.
 */
import { LE_ADVERTISING_REPORT } from "./hci";
import { buildLeAdvertisingReport, parseLeAdvertisingReports, parseLeMetaEvent } from "./hci-packets";

const TX_POWER_LEVEL = 0x0a;

/** The AD structures without the empty TX Power Level ones, or null when there is none to remove. */
export function withoutEmptyTxPower(data: Buffer): Buffer | null {
  const kept: Buffer[] = [];
  let removed = false;
  for (let i = 0; i + 1 < data.length; ) {
    const length = data[i];
    if (length === 0 || i + 1 + length > data.length) {
      kept.push(data.subarray(i)); // noble stops here by itself
      break;
    }
    if (data[i + 1] === TX_POWER_LEVEL && length < 2) removed = true;
    else kept.push(data.subarray(i, i + 1 + length));
    i += 1 + length;
  }
  return removed ? Buffer.concat(kept) : null;
}

/** The H4 packets to hand to noble for one packet from the controller: the packet itself, or repaired reports. */
export function guardAdvertisingReport(packet: Buffer): Buffer[] {
  const meta = parseLeMetaEvent(packet);
  if (!meta || meta.subevent !== LE_ADVERTISING_REPORT) return [packet];
  const reports = parseLeAdvertisingReports(packet);
  if (!reports) return [packet];
  const repaired = reports.map((r) => withoutEmptyTxPower(r.data));
  if (repaired.every((d) => d === null)) return [packet];
  return reports.map((r, i) => buildLeAdvertisingReport({ ...r, data: repaired[i] ?? r.data }));
}
