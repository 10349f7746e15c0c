/** A YMODEM failure in the user's words: the receiver's error detail worded by the node's catalog (`ymodem.*`). */
import type { YmodemError } from "../protocol/ymodem";
import type { Translate } from "./status";

/** The same sentence as `error.message` (its English), from the catalog: "YMODEM: <what> (<where>)". */
export function describeYmodemError(error: YmodemError, t: Translate): string {
  const { why, ...params } = error.params;
  const what = t(`ymodem.${error.detail}`, why === undefined ? params : { ...params, why: t(`ymodem.why.${String(why)}`, params) });
  const where = error.fileName !== null ? t("errors.where-file", { file: error.fileName, bytes: error.bytesReceived }) : t("errors.where-none");
  return t("ymodem.message", { what, where });
}
