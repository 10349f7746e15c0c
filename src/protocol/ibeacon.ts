/**
 * Apple iBeacon in manufacturer-specific data. Pure code.
 *
 * Layout of the manufacturer data (as noble reports it, company identifier first, 25 bytes):
 *   4c 00            company identifier 0x004C (Apple), little-endian
 *   02               iBeacon type
 *   15               length of what follows: 21 bytes
 *   16 bytes         proximity UUID, big-endian (written dashed, lowercase)
 *   2 bytes          major, big-endian
 *   2 bytes          minor, big-endian
 *   1 byte           measured power: RSSI at 1 m, int8 dBm
 * Anything else (another company, another Apple type, another length) is not an iBeacon: null.
 */

export const APPLE_COMPANY_ID = 0x004c;
const IBEACON_TYPE = 0x02;
const IBEACON_LENGTH = 0x15;
const IBEACON_BYTES = 4 + IBEACON_LENGTH;

export interface IbeaconFrame {
  type: "ibeacon";
  /** Proximity UUID, "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" lowercase. */
  uuid: string;
  major: number;
  minor: number;
  /** RSSI at 1 m in dBm (int8). */
  measuredPower: number;
}

export function decodeIbeacon(manufacturerData: Buffer): IbeaconFrame | null {
  if (manufacturerData.length !== IBEACON_BYTES) return null;
  if (manufacturerData.readUInt16LE(0) !== APPLE_COMPANY_ID) return null;
  if (manufacturerData[2] !== IBEACON_TYPE || manufacturerData[3] !== IBEACON_LENGTH) return null;
  const hex = manufacturerData.toString("hex", 4, 20);
  const uuid = `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  return {
    type: "ibeacon",
    uuid,
    major: manufacturerData.readUInt16BE(20),
    minor: manufacturerData.readUInt16BE(22),
    measuredPower: manufacturerData.readInt8(24),
  };
}
