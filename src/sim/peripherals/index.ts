import type { PeripheralContext, VirtualPeripheral } from "../types";
import { ScenarioError, type JsonObject } from "../validate";

/**
 * Builds the virtual peripheral described by one entry of a scenario's "peripherals" array.
 * `field` is the entry's JSON path (e.g. "peripherals[0]") for error messages.
 */
export function createPeripheral(spec: JsonObject, field: string, _ctx: PeripheralContext): VirtualPeripheral {
  throw new ScenarioError(`${field}.kind`, `unknown peripheral kind ${JSON.stringify(spec.kind)}`);
}
