/**
 * XOSS bike computers send a file over NUS YMODEM only when asked for it by name on their control characteristic
 * (docs/protocols.md §3, "XOSS"): write the fetch frame, wait for the device to accept or refuse. No Node-RED; the
 * failures are catalog keys with parameters (`errors.<key>` of the download node), never sentences.
 */
import { NUS_SERVICE } from "../protocol/nus";
import { BleProblemError } from "./problem";
import { fetchFileFrame, interpretFetchReply, XOSS_CONTROL_CHARACTERISTIC, type XossFetchReply } from "../protocol/xoss";
import type { DeviceSession } from "./session";
import type { Timers } from "./timeout";

export class XossRequestError extends Error {
  constructor(
    readonly key: "not-xoss" | "xoss-timeout" | "xoss-refused",
    readonly params: Readonly<Record<string, string | number>> = {},
  ) {
    super(`${key} ${JSON.stringify(params)}`);
    this.name = "XossRequestError";
  }
}

export interface XossRequestOptions {
  /** How long the device has to answer. */
  timeoutMs: number;
  timers: Timers;
  /**
   * Takes the control characteristic's unsubscribe function as soon as there is one (also when the request then
   * fails): the caller keeps the subscription until its download ends.
   */
  keep(unsubscribe: () => void): void;
}

/**
 * Asks `session` for the file `name`; resolves once the device accepted it. Rejects with an XossRequestError when
 * the device has no control characteristic, refuses or does not answer in time, with the frame error for a damaged
 * answer, and with the BleProblemError `link-ended` when the link drops meanwhile.
 */
export async function requestXossFile(session: DeviceSession, name: string, options: XossRequestOptions): Promise<void> {
  if (!session.hasCharacteristic(NUS_SERVICE, XOSS_CONTROL_CHARACTERISTIC)) {
    throw new XossRequestError("not-xoss", { device: session.info.address });
  }
  let settle: (reply: XossFetchReply | Error) => void = () => undefined;
  const reply = new Promise<XossFetchReply | Error>((resolve) => (settle = resolve));
  options.keep(
    await session.subscribe(NUS_SERVICE, XOSS_CONTROL_CHARACTERISTIC, (frame) => {
      try {
        const r = interpretFetchReply(frame, name);
        if (r.kind !== "other") settle(r);
      } catch (error) {
        settle(error instanceof Error ? error : new Error(String(error)));
      }
    }),
  );
  const withoutResponse = session.properties(NUS_SERVICE, XOSS_CONTROL_CHARACTERISTIC).includes("writeWithoutResponse");
  await session.write(NUS_SERVICE, XOSS_CONTROL_CHARACTERISTIC, fetchFileFrame(name), withoutResponse);
  const timer = options.timers.setTimeout(() => settle(new XossRequestError("xoss-timeout", { file: name, ms: options.timeoutMs })), options.timeoutMs);
  const onAbort = (): void => settle(new BleProblemError({ key: "link-ended", params: {} }));
  session.signal.addEventListener("abort", onAbort);
  const answer = await reply;
  timer.cancel();
  session.signal.removeEventListener("abort", onAbort);
  if (answer instanceof Error) throw answer;
  if (answer.kind === "refused") {
    throw new XossRequestError("xoss-refused", { file: name, reason: answer.reason, code: `0x${answer.code.toString(16).padStart(2, "0")}` });
  }
}
