/**
 * A malformed Heart Rate Measurement in the user's words: the key and parameters of the protocol's
 * HeartRateFormatError, worded by the heart-rate catalog (`format.*`); the same sentence as the error's English
 * message (test/nodes/protocol-texts.test.ts).
 */
import type { HeartRateFormatError } from "../protocol/heart-rate";
import type { Translate } from "./status";

export function describeHeartRateFormatError(error: HeartRateFormatError, t: Translate): string {
  if (error.key === "not-bytes") return t("format.not-bytes", error.params);
  const length = Number(error.params.length);
  const value = t(length === 1 ? "format.value-one" : "format.value", { length });
  return t("format.message", { what: t(`format.${error.key}`, error.params), value });
}
