/**
 * The scenario kind "nus-ymodem-receiver": its options checked (every failure a ScenarioError naming the field, never
 * quoting the value), then a NusYmodemReceiverPeripheral built from them.
 */
import type { PeripheralKind } from "../peripheral";
import { optionalEnum, optionalInteger, type JsonObject } from "../validate";
import { DEFAULT_RECEIVER_MAX_BYTES, NusYmodemReceiverPeripheral } from "./nus-ymodem-receiver";
import { optionalIntegerList } from "./options";

/** Largest maxBytes a scenario may ask for (what one transfer may hold in memory). */
const MAX_RECEIVER_BYTES = 256 * 1024 * 1024;

function optionalTxWindow(spec: JsonObject, field: string): number | undefined {
  return spec.txWindow === undefined ? undefined : optionalInteger(spec, "txWindow", field, 8, 1, 64);
}

export const nusYmodemReceiverKind: PeripheralKind = {
  kind: "nus-ymodem-receiver",
  defaultAddressType: "random",
  options: ["dialect", "start", "corruptBlocks", "blockTimeoutMs", "retries", "maxBytes", "txWindow"],
  create(spec, field, identity, ctx) {
    return new NusYmodemReceiverPeripheral({
      ...identity,
      clock: ctx.clock,
      maxMtu: identity.serverMtu,
      link: ctx.link,
      txWindow: optionalTxWindow(spec, field),
      dialect: optionalEnum(spec, "dialect", field, ["standard", "seed"] as const, "standard"),
      start: optionalEnum(spec, "start", field, ["C", "G"] as const, "C"),
      corruptBlocks: optionalIntegerList(spec, "corruptBlocks", field, 0, 0x7fffffff),
      blockTimeoutMs: optionalInteger(spec, "blockTimeoutMs", field, 3000, 10, 600_000),
      retries: optionalInteger(spec, "retries", field, 10, 0, 1000),
      maxBytes: optionalInteger(spec, "maxBytes", field, DEFAULT_RECEIVER_MAX_BYTES, 0, MAX_RECEIVER_BYTES),
    });
  },
};
