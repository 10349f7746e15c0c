/**
 * The command channel of a connected HIOKI Z3210 adapter, shared by every node leasing the same instrument: the
 * instrument answers one command at a time and its replies carry nothing that says which command they answer,
 * so commands are serialised there, across nodes, and each reply goes to the command that asked (the channel's
 * state machine is the pure src/protocol/hioki-channel.ts; this file wires it to a DeviceSession). No Node-RED.
 */
import { HIOKI_COMMAND_CHARACTERISTIC, HIOKI_COMMAND_SERVICE, hiokiWriteType } from "../protocol/hioki";
import { HiokiCommandChannel, type ChannelClock } from "../protocol/hioki-channel";
import type { DeviceSession } from "./session";

// The adapter's other writable custom service is Silicon Labs OTA: never touched.
/**
 * A reply longer than MTU − 3 bytes arrives as several indications; a reply of full-size indications ends when
 * nothing follows within this gap, and every command waits for this much quiet before it is written (see
 * protocol/hioki-channel.ts). Several connection intervals of a typical link, short enough not to slow polling.
 */
export const QUIET_GAP_MS = 100;
/** Nothing the instrument says is this long; a stream that is must be garbage, not a reply. */
export const MAX_REPLY_BYTES = 4096;

/** A device that cannot carry the commands, as an error catalog key (`errors.<key>`): never a sentence. */
export class HiokiLinkError extends Error {
  constructor(readonly key: "no-command-channel" | "not-writable") {
    super(key);
    this.name = "HiokiLinkError";
  }
}

/** Node's timers for the channel. */
const realClock: ChannelClock = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => {
    const handle = setTimeout(fn, ms);
    return { cancel: () => clearTimeout(handle) };
  },
};

/** One channel per connection, whichever node opens it first. */
const channels = new WeakMap<DeviceSession, Promise<HiokiCommandChannel>>();

/**
 * A Write Command carries at most the link's MTU − 3 bytes (noble sends whatever it is given as one PDU, which a
 * server drops), so a longer command line goes out in pieces, in order; the meter collects the line up to CR LF.
 * A Write Request of any length is noble's to split (it uses a long write when the value does not fit).
 */
async function writeCommand(session: DeviceSession, bytes: Buffer, withoutResponse: boolean): Promise<void> {
  if (!withoutResponse) return session.write(HIOKI_COMMAND_SERVICE, HIOKI_COMMAND_CHARACTERISTIC, bytes, false);
  const piece = session.mtu - 3;
  for (let offset = 0; offset < bytes.length; offset += piece) {
    await session.write(HIOKI_COMMAND_SERVICE, HIOKI_COMMAND_CHARACTERISTIC, bytes.subarray(offset, offset + piece), true);
  }
}

/**
 * The command channel of `session`: the one already open on it, or a new one once its indications are on.
 * Rejects with a HiokiLinkError when the device has no command characteristic or cannot be written to; a failed
 * subscription rejects too (the caller's lease then drops the connection and the pool retries), and the next
 * call tries again. The channel closes when the session ends.
 */
export function openHiokiChannel(session: DeviceSession, clock: ChannelClock = realClock): Promise<HiokiCommandChannel> {
  const open = channels.get(session);
  if (open) return open;
  if (!session.hasCharacteristic(HIOKI_COMMAND_SERVICE, HIOKI_COMMAND_CHARACTERISTIC)) return Promise.reject(new HiokiLinkError("no-command-channel"));
  // The seed's rule (aioble's): with response only when Write Without Response is not allowed.
  const writeType = hiokiWriteType(session.properties(HIOKI_COMMAND_SERVICE, HIOKI_COMMAND_CHARACTERISTIC));
  if (writeType === null) return Promise.reject(new HiokiLinkError("not-writable"));
  const withoutResponse = writeType === "withoutResponse";
  const channel = new HiokiCommandChannel({
    clock,
    write: (bytes) => writeCommand(session, bytes, withoutResponse),
    mtu: () => session.mtu,
    quietGapMs: QUIET_GAP_MS,
    maxReplyBytes: MAX_REPLY_BYTES,
  });
  session.signal.addEventListener("abort", () => channel.close(), { once: true });
  const opening = session.subscribe(HIOKI_COMMAND_SERVICE, HIOKI_COMMAND_CHARACTERISTIC, (value) => channel.receive(value)).then(() => channel);
  // Never hand out the failed promise again.
  opening.catch(() => channels.delete(session));
  channels.set(session, opening);
  return opening;
}
