/**
 * What an advertisement says, when it is a format this package knows: iBeacon (manufacturer data), Eddystone UID /
 * URL / TLM (service data feaa), BTHome v2 (service data fcd2, plain or encrypted). Pure code.
 *
 * Everything here reads bytes from the radio: nothing is trusted, no length field is allocated from, nothing throws
 * but AdvertisementError — and that only for a BTHome advertisement (see advertisement-error.ts for the codes and what
 * the node does with each). Anything else that does not decode is null: nothing known.
 */
import type { ReplayGuard } from "./bind-keys";
import { BTHOME_SERVICE, decodeBthome } from "./bthome";
import { decodeEddystone, EDDYSTONE_SERVICE } from "./eddystone";
import { decodeIbeacon } from "./ibeacon";
import { uuidFromNoble } from "./uuid";

export { AdvertisementError, ADVERTISEMENT_ERROR_CODES, type AdvertisementErrorCode } from "./advertisement-error";
export { bindKeyLookup, parseBindKeys, ReplayGuard } from "./bind-keys";

export interface AdvertisementData {
  /** The device address, "aa:bb:cc:dd:ee:ff" in any case (the BTHome nonce and the bind key lookup use it). */
  address: string;
  /** Manufacturer-specific data as advertised: the company identifier (2 bytes, little-endian) first. */
  manufacturerData?: Buffer;
  /** Service data: the UUID in any spelling noble or normalizeUuid reads ("feaa", "FEAA", 128-bit), and its bytes. */
  serviceData: { uuid: string; data: Buffer }[];
}

export type Decoded =
  | { type: "ibeacon"; uuid: string; major: number; minor: number; measuredPower: number }
  | { type: "eddystone-uid"; namespace: string; instance: string; txPower: number }
  | { type: "eddystone-url"; url: string; txPower: number }
  | { type: "eddystone-tlm"; battery: number; temperature: number | null; advertisingCount: number; uptime: number }
  | ({ type: "bthome"; packetId?: number; encrypted: boolean } & Record<string, unknown>);

/**
 * The decoded content of an advertisement, or null when it is none of the known formats (or a known one that does not
 * decode: a refused Eddystone URL, an encrypted Eddystone TLM). BTHome wins over Eddystone, Eddystone over iBeacon,
 * when a device advertises more than one; the first service data of a UUID counts.
 *
 * `bindKey` gives the AES key of an address (called with the address in lowercase); `replay` refuses an encrypted
 * BTHome advertisement whose counter is not above the last accepted one from its device.
 * Throws AdvertisementError only for BTHome: "bthome-replay" means drop it silently; the other codes are problems
 * worth a (rate-limited) error naming the device.
 */
export function decodeAdvertisement(
  ad: AdvertisementData,
  bindKey?: (address: string) => Buffer | undefined,
  replay?: ReplayGuard,
): Decoded | null {
  const address = String(ad.address).toLowerCase();
  const serviceData = Array.isArray(ad.serviceData) ? ad.serviceData : [];
  const bthome = findServiceData(serviceData, BTHOME_SERVICE);
  if (bthome !== undefined) return decodeBthome(address, bthome, bindKey, replay);
  const eddystone = findServiceData(serviceData, EDDYSTONE_SERVICE);
  if (eddystone !== undefined) {
    const frame = decodeEddystone(eddystone);
    if (frame !== null) return frame;
  }
  if (Buffer.isBuffer(ad.manufacturerData)) return decodeIbeacon(ad.manufacturerData);
  return null;
}

function findServiceData(serviceData: readonly { uuid: string; data: Buffer }[], uuid: string): Buffer | undefined {
  for (const entry of serviceData) {
    if (typeof entry?.uuid === "string" && Buffer.isBuffer(entry.data) && uuidFromNoble(entry.uuid) === uuid) return entry.data;
  }
  return undefined;
}
