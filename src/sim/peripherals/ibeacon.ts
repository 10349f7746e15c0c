/**
 * Virtual iBeacon (kind "ibeacon"): Apple's proximity beacon layout, built here from its published structure
 * (manufacturer specific data, company 0x004C, type 0x02, length 0x15, proximity UUID, major and minor big-endian,
 * measured power at 1 m as a signed byte), sent as ADV_NONCONN_IND every intervalMs (default 100 ms).
 */
import { AdvertiserPeripheral, ADVERTISER_OPTIONS, adStructure, parseAdvertiserOptions, type AdvertiserConfig } from "./advertiser";
import type { PeripheralKind } from "../peripheral";
import { optionalInteger, ScenarioError, type JsonObject } from "../validate";

const AD_MANUFACTURER_DATA = 0xff;
const APPLE = 0x004c;
const IBEACON_TYPE = 0x02;
const IBEACON_LENGTH = 0x15;

export interface IBeacon {
  /** 16 bytes. */
  uuid: Buffer;
  major: number;
  minor: number;
  /** RSSI at 1 m, dBm. */
  measuredPower: number;
}

/** The iBeacon manufacturer-specific-data AD structure (27 bytes). */
export function encodeIBeacon(b: IBeacon): Buffer {
  const data = Buffer.alloc(2 + 2 + 16 + 5);
  data.writeUInt16LE(APPLE, 0);
  data[2] = IBEACON_TYPE;
  data[3] = IBEACON_LENGTH;
  b.uuid.copy(data, 4);
  data.writeUInt16BE(b.major, 20);
  data.writeUInt16BE(b.minor, 22);
  data.writeInt8(b.measuredPower, 24);
  return adStructure(AD_MANUFACTURER_DATA, data);
}

export class IBeaconPeripheral extends AdvertiserPeripheral {
  protected readonly maxPayloadLength: number;
  private readonly structure: Buffer;

  constructor(config: Omit<AdvertiserConfig, "kind"> & { beacon: IBeacon }) {
    super({ ...config, kind: "ibeacon" });
    this.structure = encodeIBeacon(config.beacon);
    this.maxPayloadLength = this.structure.length;
  }

  protected payload(): Buffer {
    return this.structure;
  }
}

/** A 128-bit UUID as 32 hex digits, dashes allowed. */
export function parseUuid128(obj: JsonObject, key: string, field: string): Buffer {
  const value = obj[key];
  if (value === undefined) throw new ScenarioError(`${field}.${key}`, "is required");
  const problem = 'must be a 128-bit UUID like "e2c56db5-dffb-48d2-b060-d0f5a71096e0"';
  if (typeof value !== "string" || value.length > 36) throw new ScenarioError(`${field}.${key}`, problem);
  const compact = value.replace(/-/g, "");
  if (!/^[0-9a-fA-F]{32}$/.test(compact)) throw new ScenarioError(`${field}.${key}`, problem);
  return Buffer.from(compact, "hex");
}

export const iBeaconKind: PeripheralKind = {
  kind: "ibeacon",
  defaultAddressType: "random",
  options: ["uuid", "major", "minor", "measuredPower", ...ADVERTISER_OPTIONS],
  create(spec, field, identity, ctx) {
    const beacon: IBeacon = {
      uuid: parseUuid128(spec, "uuid", field),
      major: optionalInteger(spec, "major", field, 0, 0, 0xffff),
      minor: optionalInteger(spec, "minor", field, 0, 0, 0xffff),
      measuredPower: optionalInteger(spec, "measuredPower", field, -59, -128, 127),
    };
    return new IBeaconPeripheral({ ...identity, ...parseAdvertiserOptions(spec, field, 100), clock: ctx.clock, maxMtu: identity.serverMtu, beacon });
  },
};
