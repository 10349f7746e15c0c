import type { PeripheralKind } from "../peripheral";
import type { PeripheralContext, VirtualPeripheral } from "../types";
import { ATT_DEFAULT_MTU, ATT_MAX_MTU } from "../../protocol/att";
import { optionalEnum, optionalInteger, optionalString, rejectUnknownKeys, requireAddress, ScenarioError, type JsonObject } from "../validate";
import { bthomeKind } from "./bthome";
import { eddystoneKind } from "./eddystone";
import { gattKind } from "./gatt-scenario";
import { heartRateKind } from "./heart-rate";
import { iBeaconKind } from "./ibeacon";
import { rawAdvertiserKind } from "./raw-advertiser";
import { hiokiDt4261Kind } from "./hioki-dt4261";
import { nusYmodemReceiverKind } from "./nus-ymodem-receiver-scenario";
import { nusYmodemKind } from "./nus-ymodem-scenario";

/** Every peripheral kind a scenario can name: adding a kind means adding it here, nowhere else. */
const KINDS: readonly PeripheralKind[] = [
  heartRateKind,
  hiokiDt4261Kind,
  nusYmodemKind,
  nusYmodemReceiverKind,
  gattKind,
  // Advertisers (issue 14): beacons and sensors that broadcast.
  iBeaconKind,
  eddystoneKind,
  bthomeKind,
  rawAdvertiserKind,
];

/** Fields every scenario peripheral entry may carry, whatever its kind. */
export const COMMON_PERIPHERAL_FIELDS: readonly string[] = ["kind", "address", "addressType", "name", "serverMtu"];

export const PERIPHERAL_KINDS: readonly string[] = KINDS.map((k) => k.kind);

/**
 * Builds the virtual peripheral described by one entry of a scenario's "peripherals" array.
 * `field` is the entry's JSON path (e.g. "peripherals[0]") for error messages; every option is validated
 * and unknown options are rejected (a typo must not silently fall back to a default).
 */
export function createPeripheral(spec: JsonObject, field: string, ctx: PeripheralContext): VirtualPeripheral {
  const expected = PERIPHERAL_KINDS.map((k) => JSON.stringify(k)).join(", ");
  if (spec.kind === undefined) throw new ScenarioError(`${field}.kind`, `is required (one of ${expected})`);
  const kind = KINDS.find((k) => k.kind === spec.kind);
  if (!kind) throw new ScenarioError(`${field}.kind`, `unknown peripheral kind (expected one of ${expected})`);
  rejectUnknownKeys(spec, [...COMMON_PERIPHERAL_FIELDS, ...kind.options], field, "option");
  const name = spec.name === undefined ? undefined : optionalString(spec, "name", field, "", 248);
  if (name === "") throw new ScenarioError(`${field}.name`, "must not be empty");
  return kind.create(
    spec,
    field,
    {
      address: requireAddress(spec, "address", field),
      addressType: optionalEnum(spec, "addressType", field, ["public", "random"] as const, kind.defaultAddressType),
      name,
      // What the GATT server answers to Exchange MTU, whatever the central asks (real servers answer their own
      // maximum: 517 is common, the seed's NimBLE file server 512).
      serverMtu: optionalInteger(spec, "serverMtu", field, ctx.link.maxMtu, ATT_DEFAULT_MTU, ATT_MAX_MTU),
    },
    ctx,
  );
}
