/** Which peripheral a lease wants, and what a scan tells of a peripheral: read from noble's reports, never trusted. */
import type { Peripheral } from "@stoprocent/noble";
import { normalizeUuid, uuidFromNoble } from "../protocol/uuid";

/** Which peripheral a lease wants. Every given field must match; none given matches anything advertising `service`. */
export interface DeviceSelector {
  address?: string;
  /** Exact advertised name. */
  name?: string;
  /** Advertised name prefix. */
  namePrefix?: string;
  /** A 16-bit ("180d") or 128-bit service UUID the peripheral must advertise when nothing else identifies it. */
  service?: string;
}

export interface PeripheralInfo {
  address: string;
  addressType: string;
  name: string;
  rssi: number;
  /** Advertised service UUIDs, lowercase, as noble reports them (src/protocol/uuid.ts uuidFromNoble reads them). */
  serviceUuids: string[];
}

/** The selector's service in canonical form; null when it names none or no UUID (such a selector matches no service). */
function wantedService(selector: DeviceSelector): string | null {
  if (!selector.service) return null;
  try {
    return normalizeUuid(selector.service);
  } catch {
    return null;
  }
}

/** Whether a discovered peripheral is the one a selector names (called from noble's discover event: must never throw). */
export function matches(selector: DeviceSelector, p: Peripheral): boolean {
  if (selector.address && p.address.toLowerCase() !== selector.address.toLowerCase()) return false;
  const name = p.advertisement?.localName ?? "";
  if (selector.name && name !== selector.name) return false;
  if (selector.namePrefix && !name.startsWith(selector.namePrefix)) return false;
  if (!selector.address && !selector.name && !selector.namePrefix && selector.service) {
    const wanted = wantedService(selector);
    if (wanted === null) return false;
    return (p.advertisement?.serviceUuids ?? []).some((u) => typeof u === "string" && uuidFromNoble(u) === wanted);
  }
  return true;
}

/** Whether two selectors name the same peripheral in the same way (then their leases share one link). */
export function sameSelector(a: DeviceSelector, b: DeviceSelector): boolean {
  return (
    (a.address ?? "").toLowerCase() === (b.address ?? "").toLowerCase() &&
    (a.name ?? "") === (b.name ?? "") &&
    (a.namePrefix ?? "") === (b.namePrefix ?? "") &&
    (wantedService(a) ?? a.service ?? "") === (wantedService(b) ?? b.service ?? "")
  );
}

export function infoOf(p: Peripheral): PeripheralInfo {
  return {
    address: p.address.toLowerCase(),
    addressType: p.addressType,
    name: p.advertisement?.localName ?? "",
    rssi: p.rssi,
    serviceUuids: (p.advertisement?.serviceUuids ?? []).map((u) => u.toLowerCase()),
  };
}
