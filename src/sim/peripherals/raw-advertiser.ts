/**
 * A raw advertiser (kind "advertiser"): advertising data and scan response data given in hex, to reproduce any real
 * device byte for byte (malformed ones included: the bytes are not checked as AD structures). A list of data is
 * cycled, each entry sent `repeat` times (or for `changeEveryMs`). ADV_NONCONN_IND without a scan response,
 * ADV_SCAN_IND with one, ADV_IND when `connectable`. The name lives in the data (AD type 0x09), not in "name".
 */
import { AdvertiserPeripheral, ADVERTISER_OPTIONS, MAX_ADV_DATA, packetStep, parseAdvertiserOptions, parseChangeRule, type AdvertiserConfig, type ChangeRule } from "./advertiser";
import type { PeripheralKind } from "../peripheral";
import { ScenarioError, type JsonObject } from "../validate";
import { optionalHexList } from "./options";

export interface RawAdvertiserConfig extends Omit<AdvertiserConfig, "kind" | "name"> {
  data: Buffer[];
  scanResponse: Buffer[] | null;
  change: ChangeRule;
}

export class RawAdvertiserPeripheral extends AdvertiserPeripheral {
  protected readonly maxPayloadLength: number;
  private readonly data: Buffer[];
  private readonly scanResponses: Buffer[] | null;
  private readonly change: ChangeRule;

  constructor(config: RawAdvertiserConfig) {
    super({ ...config, kind: "advertiser" });
    this.data = config.data;
    this.scanResponses = config.scanResponse;
    this.change = config.change;
    this.maxPayloadLength = Math.max(...this.data.map((d) => d.length));
  }

  protected payload(index: number, atMs: number): Buffer {
    return this.data[packetStep(this.change, index, atMs, this.startMs) % this.data.length];
  }

  protected override hasScanResponse(): boolean {
    return this.scanResponses !== null;
  }

  protected override layout(index: number, atMs: number): { data: Buffer; scanResponse: Buffer } {
    const step = packetStep(this.change, index, atMs, this.startMs);
    return {
      data: this.data[step % this.data.length],
      scanResponse: this.scanResponses ? this.scanResponses[step % this.scanResponses.length] : Buffer.alloc(0),
    };
  }
}

function hexList(spec: JsonObject, key: string, field: string): Buffer[] | undefined {
  const list = optionalHexList(spec, key, field, 0, MAX_ADV_DATA);
  if (list && list.length > 1000) throw new ScenarioError(`${field}.${key}`, "must hold at most 1000 entries");
  return list;
}

export const rawAdvertiserKind: PeripheralKind = {
  kind: "advertiser",
  defaultAddressType: "random",
  options: ["data", "scanResponse", "repeat", "changeEveryMs", ...ADVERTISER_OPTIONS],
  create(spec, field, identity, ctx) {
    if (spec.name !== undefined) throw new ScenarioError(`${field}.name`, "is not used by kind \"advertiser\": put a name AD structure (type 0x09) into data");
    const data = hexList(spec, "data", field);
    if (!data) throw new ScenarioError(`${field}.data`, "is required: advertising data in hex (at most 31 bytes), or a list of them");
    return new RawAdvertiserPeripheral({
      address: identity.address,
      addressType: identity.addressType,
      ...parseAdvertiserOptions(spec, field, 100),
      clock: ctx.clock,
      maxMtu: identity.serverMtu,
      data,
      scanResponse: hexList(spec, "scanResponse", field) ?? null,
      change: parseChangeRule(spec, field, 1),
    });
  },
};
