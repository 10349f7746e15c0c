/**
 * A BTSnoop file of every H4 packet between noble and the virtual controller (scenario field "capture"), for
 * Wireshark, tshark or btmon.
 *
 * Records are encoded when the packet passes (the buffers are not ours to keep) and written synchronously once
 * per event-loop tick, or sooner when a lot is pending: one write per tick keeps the cost off the notification
 * path, synchronous writes keep the file in packet order and complete the moment close() returns, and a crash
 * loses at most the current tick. A failing write (disk full) stops the capture with a process warning instead of
 * throwing into the simulation: the capture is a debugging aid and must never take the simulated radio down.
 */
import * as fs from "node:fs";
import { btsnoopTimestamp, encodeBtsnoopHeader, encodeBtsnoopRecord, type HciDirection } from "../protocol/btsnoop";

/** Pending bytes that trigger an immediate write instead of waiting for the end of the tick. */
const FLUSH_BYTES = 256 * 1024;

export class BtsnoopCapture {
  /** Packets recorded so far. */
  packets = 0;
  /** Why the capture stopped early, if it did. */
  error: Error | null = null;
  private fd: number | null;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private flushHandle: NodeJS.Immediate | undefined;

  /**
   * Creates (or truncates) `file` and writes the file header; throws what fs.openSync throws.
   * `nowUnixMs` stamps each record.
   */
  constructor(
    readonly file: string,
    private readonly nowUnixMs: () => number,
  ) {
    const fd = fs.openSync(file, "w");
    try {
      writeAll(fd, encodeBtsnoopHeader());
    } catch (error) {
      fs.closeSync(fd);
      throw error;
    }
    this.fd = fd;
  }

  record(packet: Buffer, direction: HciDirection): void {
    if (this.fd === null) return;
    const record = encodeBtsnoopRecord({ packet, direction, timestampUs: btsnoopTimestamp(this.nowUnixMs()) });
    this.pending.push(record);
    this.pendingBytes += record.length;
    this.packets++;
    if (this.pendingBytes >= FLUSH_BYTES) {
      this.flush();
      return;
    }
    if (!this.flushHandle) {
      this.flushHandle = setImmediate(() => {
        this.flushHandle = undefined;
        this.flush();
      });
      // The capture alone never keeps a process alive, like the simulator's timers.
      this.flushHandle.unref();
    }
  }

  /** Writes what is pending. */
  flush(): void {
    if (this.flushHandle) clearImmediate(this.flushHandle);
    this.flushHandle = undefined;
    const fd = this.fd;
    if (fd === null || this.pending.length === 0) return;
    const chunk = this.pending.length === 1 ? this.pending[0] : Buffer.concat(this.pending, this.pendingBytes);
    this.pending = [];
    this.pendingBytes = 0;
    try {
      writeAll(fd, chunk);
    } catch (error) {
      this.error = error instanceof Error ? error : new Error(String(error));
      this.closeFd();
      process.emitWarning(`simulator capture ${this.file} stopped: ${this.error.message}`, { code: "BLE_SIM_CAPTURE" });
    }
  }

  /** Writes what is pending and closes the file (idempotent). */
  close(): void {
    this.flush();
    this.closeFd();
  }

  get closed(): boolean {
    return this.fd === null;
  }

  private closeFd(): void {
    if (this.flushHandle) clearImmediate(this.flushHandle);
    this.flushHandle = undefined;
    this.pending = [];
    this.pendingBytes = 0;
    const fd = this.fd;
    this.fd = null;
    if (fd === null) return;
    try {
      fs.closeSync(fd);
    } catch {
      // Closing can only fail for a descriptor that is already gone; there is nothing left to release.
    }
  }
}

/** fs.writeSync may write less than asked (it does on pipes and full disks); loop until all is out. */
function writeAll(fd: number, data: Buffer): void {
  let offset = 0;
  while (offset < data.length) {
    const written = fs.writeSync(fd, data, offset, data.length - offset);
    // No progress and no error would loop forever.
    if (written <= 0) throw new Error(`write returned ${written} with ${data.length - offset} bytes left`);
    offset += written;
  }
}
