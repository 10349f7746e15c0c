/**
 * Exposes a virtual controller as a serial device (a pty slave such as /dev/pts/3), so any HCI UART host,
 * including noble's own UART driver, can use it through the operating system.
 *
 * The slave must stay open with nobody reading it: node-pty's `open()` starts a reader on the slave that steals
 * the first bytes (the Reset completion the UART driver waits for). Instead an idle process is spawned on the
 * pty; it puts the line discipline in raw mode without echo, prints the slave's path, then sleeps. We talk H4 on
 * the master side.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import type { VirtualController } from "./controller";
import { H4Splitter } from "../protocol/h4";
import { H4_COMMAND, OP } from "../protocol/hci";

export interface VirtualSerialPort {
  /** The slave device path to hand to a UART host (e.g. `bindParams.uart.port`). */
  readonly path: string;
  /** Detaches the controller and ends the pty; resolves once the idle process has exited. */
  close(): Promise<void>;
}

interface Disposable {
  dispose(): void;
}

/** The part of @lydell/node-pty's IPty used here, typed for binary mode (`encoding: null`). */
interface BinaryPty {
  readonly pid: number;
  /** The master side's file descriptor (UnixTerminal). */
  readonly fd?: number;
  onData(listener: (data: Buffer | string) => void): Disposable;
  onExit(listener: (e: { exitCode: number; signal?: number }) => void): Disposable;
  kill(signal?: string): void;
}

const READY_TIMEOUT_MS = 5000;
const EXIT_TIMEOUT_MS = 2000;

export async function openVirtualSerialPort(controller: VirtualController): Promise<VirtualSerialPort> {
  // Loaded here: the pty binding is a dev/optional dependency, needed only by whoever asks for a serial port.
  const nodePty = await import("@lydell/node-pty");
  const pty = nodePty.spawn("/bin/sh", ["-c", "stty raw -echo && tty && exec sleep infinity"], {
    name: "dumb",
    cols: 80,
    rows: 24,
    cwd: os.tmpdir(),
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", LC_ALL: "C" },
    encoding: null,
  }) as unknown as BinaryPty;

  let exited = false;
  const exit = new Promise<void>((resolve) => {
    pty.onExit(() => {
      exited = true;
      resolve();
    });
  });

  const splitter = new H4Splitter();
  let ready = false;
  let banner = "";
  let pending: Buffer[] = [];
  let flushHandle: NodeJS.Immediate | undefined;
  let closed = false;

  const masterFd = pty.fd;
  if (typeof masterFd !== "number") {
    pty.kill("SIGKILL");
    throw new Error("@lydell/node-pty did not expose the pty master's file descriptor");
  }
  let writing = false;
  let retryTimer: NodeJS.Timeout | undefined;
  const writeOut = () => {
    if (writing || closed || exited || pending.length === 0) return;
    // Batched per event-loop tick: one write per connection event is several times faster than one per packet.
    const chunk = Buffer.concat(pending);
    pending = [];
    writing = true;
    const writeFrom = (offset: number) => {
      fs.write(masterFd, chunk, offset, chunk.length - offset, null, (error, written) => {
        if (closed || exited) {
          writing = false;
          return;
        }
        if (error) {
          if (error.code !== "EAGAIN") {
            // The pty is gone (EIO): nobody is left to read what was queued.
            writing = false;
            pending = [];
            return;
          }
          // Buffer full: the host has not read yet. Try again shortly; the event loop stays free for it to read.
          retryTimer = setTimeout(() => {
            retryTimer = undefined;
            writeFrom(offset);
          }, 1);
          retryTimer.unref();
          return;
        }
        if (offset + written < chunk.length) return writeFrom(offset + written);
        writing = false;
        writeOut();
      });
    };
    writeFrom(0);
  };
  const fromHost = (packet: Buffer) => {
    // What was queued for an earlier host session must not reach the one that just reset the controller.
    if (packet.length >= 3 && packet[0] === H4_COMMAND && packet.readUInt16LE(1) === OP.RESET) pending = [];
    controller.write(packet);
  };
  const toHost = (packet: Buffer) => {
    pending.push(packet);
    flushHandle ??= setImmediate(() => {
      flushHandle = undefined;
      writeOut();
    });
  };

  const path = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      pty.kill("SIGKILL");
      reject(new Error(`pty for the virtual controller did not come up within ${READY_TIMEOUT_MS} ms (output: ${JSON.stringify(banner)})`));
    }, READY_TIMEOUT_MS);
    void exit.then(() => {
      clearTimeout(timer);
      if (!ready) reject(new Error(`pty helper exited before it was ready (output: ${JSON.stringify(banner)})`));
    });
    pty.onData((data) => {
      const bytes = typeof data === "string" ? Buffer.from(data, "latin1") : data;
      if (ready) {
        for (const packet of splitter.push(bytes)) fromHost(packet);
        return;
      }
      banner += bytes.toString("latin1");
      const newline = banner.indexOf("\n");
      if (newline < 0) return;
      const slave = banner.slice(0, newline).trim();
      if (!slave.startsWith("/dev/")) {
        clearTimeout(timer);
        pty.kill("SIGKILL");
        reject(new Error(`pty helper did not report a device path (output: ${JSON.stringify(banner)})`));
        return;
      }
      ready = true;
      clearTimeout(timer);
      const rest = Buffer.from(banner.slice(newline + 1), "latin1");
      if (rest.length > 0) for (const packet of splitter.push(rest)) fromHost(packet);
      resolve(slave);
    });
  });

  controller.on("h4", toHost);

  return {
    path,
    async close(): Promise<void> {
      if (closed) return exit;
      closed = true;
      controller.off("h4", toHost);
      if (flushHandle) clearImmediate(flushHandle);
      flushHandle = undefined;
      clearTimeout(retryTimer);
      pending = [];
      if (!exited) pty.kill("SIGHUP");
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        exit,
        new Promise<void>((resolve) => {
          timer = setTimeout(() => {
            pty.kill("SIGKILL");
            resolve();
          }, EXIT_TIMEOUT_MS);
        }),
      ]);
      clearTimeout(timer);
    },
  };
}
