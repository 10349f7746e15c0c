/**
 * The control point of a simulated XOSS bike computer (ekspla/xoss_sync; docs/protocols.md §3): the frames the
 * central writes to characteristic 6e400004-… and the device's answers, notified on it. Framing, opcodes and error
 * codes are protocol/xoss.ts's; this file is the device's side: what it answers, and when it starts a YMODEM session.
 * It only serves files (uploads, deletes and unknown commands are refused).
 */
import type { YmodemSenderFile } from "../../protocol/ymodem-sender";
import { decodeXossFrame, encodeXossFrame, XOSS_MAX_CONTENT_BYTES, XossError, XossFrameError, XossOpcode } from "../../protocol/xoss";

/** The list the device serves beside its files, one name a line. */
export const FILELIST_NAME = "filelist.txt";

/** Total disk space a real G+ reports, in kB. */
export const DEFAULT_DISK_TOTAL_KB = 8104;

/** One control frame, as the central wrote it or as the device answered. */
export interface XossControlFrame {
  direction: "in" | "out";
  frame: Buffer;
}

/** What the control point needs of the peripheral. */
export interface XossDevice {
  readonly files: readonly YmodemSenderFile[];
  /** A YMODEM session is running: the device is not idle. */
  isBusy(): boolean;
  /** Starts sending `file` with YMODEM. */
  serve(file: YmodemSenderFile): void;
  /** Cancels the running session (CAN CAN) and ends it. */
  abort(): void;
  /** Notifies `frame` on the control characteristic, when the central has enabled notifications. */
  notify(frame: Buffer): void;
}

/**
 * The files a XOSS device serves: `files` and a generated filelist.txt unless one is given. Throws RangeError for a
 * name a control frame cannot carry.
 */
export function xossFiles(files: readonly YmodemSenderFile[]): YmodemSenderFile[] {
  const served = files.slice();
  if (!served.some((f) => f.name === FILELIST_NAME)) served.push({ name: FILELIST_NAME, data: Buffer.from(served.map((f) => `${f.name}\n`).join(""), "utf8") });
  for (const f of served) {
    const bytes = Buffer.byteLength(f.name, "utf8");
    if (bytes === 0 || bytes > XOSS_MAX_CONTENT_BYTES) throw new RangeError(`XOSS file names are 1 to ${XOSS_MAX_CONTENT_BYTES} bytes: ${JSON.stringify(f.name)}`);
  }
  return served;
}

export class XossControl {
  constructor(
    private readonly device: XossDevice,
    private readonly diskTotalKb: number,
    /** Every control frame received and sent, in order (for tests). */
    readonly log: XossControlFrame[],
  ) {}

  /** A frame the central wrote. */
  receive(frame: Buffer): void {
    this.log.push({ direction: "in", frame });
    let opcode: number;
    let content: Buffer;
    try {
      ({ opcode, content } = decodeXossFrame(frame));
    } catch (error) {
      if (!(error instanceof XossFrameError)) throw error;
      this.send(XossError.parseFailed);
      return;
    }
    if (opcode === XossOpcode.idle) {
      // xoss_sync sends 04 00 04 when a status request goes unanswered: back to idle, whatever was running.
      if (this.device.isBusy()) this.device.abort();
      this.send(XossOpcode.idle);
      return;
    }
    if (this.device.isBusy()) {
      this.send(XossError.notIdle);
      return;
    }
    switch (opcode) {
      case XossOpcode.status:
        this.send(XossOpcode.idle);
        return;
      case XossOpcode.diskSpace: {
        const usedKb = Math.ceil(this.device.files.reduce((n, f) => n + f.data.length, 0) / 1024);
        this.send(XossOpcode.diskSpaceReply, Buffer.from(`${Math.max(0, this.diskTotalKb - usedKb)}/${this.diskTotalKb}`, "utf8"));
        return;
      }
      case XossOpcode.fetchFile: {
        const name = content.toString("utf8");
        const file = this.device.files.find((f) => f.name === name);
        if (!file) {
          this.send(XossError.noSuchFile, content);
          return;
        }
        this.send(XossOpcode.fileAccepted, content);
        this.device.serve(file);
        return;
      }
      case XossOpcode.timeSet:
        return; // a XOSS G+ Gen1 sets its clock and answers nothing (xoss_sync waits 1 s instead)
      default:
        // Uploads (07), deletes (0d) and anything unknown: this device only serves files.
        this.send(XossError.badCommand);
    }
  }

  /** A transfer finished: the device reports that it is idle again. */
  transferDone(): void {
    this.send(XossOpcode.idle);
  }

  private send(opcode: number, content?: Buffer): void {
    const frame = encodeXossFrame(opcode, content);
    this.log.push({ direction: "out", frame });
    this.device.notify(frame);
  }
}
