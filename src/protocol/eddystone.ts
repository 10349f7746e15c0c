/**
 * Eddystone frames in service data of the 16-bit UUID 0xFEAA. Pure code.
 *
 * Every multi-byte field is big-endian. The first byte is the frame type:
 *   0x00 UID  txPower int8 (dBm at 0 m), namespace 10 bytes, instance 6 bytes, [2 reserved bytes]
 *   0x10 URL  txPower int8, URL scheme prefix byte, encoded URL (at most 17 bytes)
 *   0x20 TLM  version byte, then for version 0 (unencrypted): battery mV uint16 (0: not battery powered),
 *             temperature int16 in 8.8 fixed point °C (0x8000: not supported → null), advertising PDU count
 *             uint32, time since power-on uint32 in 0.1 s (reported in seconds).
 *             Version 1 is encrypted TLM (eTLM): it needs the beacon's EID identity key, which this package does
 *             not manage, so it decodes to null — nothing known — like any other frame type (EID 0x30, …).
 * A frame that does not have exactly its layout's length, a URL with a reserved byte (0x0e–0x20, 0x7f–0xff) or an
 * unknown scheme is refused: null, never a half-decoded frame.
 */

export const EDDYSTONE_SERVICE = "feaa";

export type EddystoneFrame =
  | { type: "eddystone-uid"; namespace: string; instance: string; txPower: number }
  | { type: "eddystone-url"; url: string; txPower: number }
  | { type: "eddystone-tlm"; battery: number; temperature: number | null; advertisingCount: number; uptime: number };

const FRAME_UID = 0x00;
const FRAME_URL = 0x10;
const FRAME_TLM = 0x20;

const URL_SCHEMES = ["http://www.", "https://www.", "http://", "https://"] as const;
const URL_EXPANSIONS = [
  ".com/",
  ".org/",
  ".edu/",
  ".net/",
  ".info/",
  ".biz/",
  ".gov/",
  ".com",
  ".org",
  ".edu",
  ".net",
  ".info",
  ".biz",
  ".gov",
] as const;
/** Frame type, txPower, scheme, then at most 17 encoded bytes (a frame is at most 20 bytes). */
const URL_MAX_ENCODED = 17;
const TLM_TEMPERATURE_UNSUPPORTED = -0x8000;

export function decodeEddystone(data: Buffer): EddystoneFrame | null {
  if (data.length < 1) return null;
  switch (data[0]) {
    case FRAME_UID:
      return decodeUid(data);
    case FRAME_URL:
      return decodeUrl(data);
    case FRAME_TLM:
      return decodeTlm(data);
    default:
      return null;
  }
}

function decodeUid(data: Buffer): EddystoneFrame | null {
  // 18 bytes; the specification adds 2 reserved bytes that many beacons leave out.
  if (data.length !== 18 && data.length !== 20) return null;
  return {
    type: "eddystone-uid",
    namespace: data.toString("hex", 2, 12),
    instance: data.toString("hex", 12, 18),
    txPower: data.readInt8(1),
  };
}

function decodeUrl(data: Buffer): EddystoneFrame | null {
  if (data.length < 3 || data.length > 3 + URL_MAX_ENCODED) return null;
  const scheme = URL_SCHEMES[data[2]];
  if (scheme === undefined) return null;
  let url: string = scheme;
  for (let i = 3; i < data.length; i++) {
    const byte = data[i];
    const expansion = URL_EXPANSIONS[byte];
    if (expansion !== undefined) url += expansion;
    else if (byte >= 0x21 && byte <= 0x7e) url += String.fromCharCode(byte);
    else return null;
  }
  return { type: "eddystone-url", url, txPower: data.readInt8(1) };
}

function decodeTlm(data: Buffer): EddystoneFrame | null {
  if (data.length !== 14 || data[1] !== 0x00) return null;
  const temperature = data.readInt16BE(4);
  return {
    type: "eddystone-tlm",
    battery: data.readUInt16BE(2),
    temperature: temperature === TLM_TEMPERATURE_UNSUPPORTED ? null : temperature / 256,
    advertisingCount: data.readUInt32BE(6),
    uptime: data.readUInt32BE(10) / 10,
  };
}
