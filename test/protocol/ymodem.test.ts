import { strict as assert } from "node:assert";
import fc from "fast-check";
import { crc16Arc, crc16Xmodem, type CrcKind } from "../../src/protocol/crc16";
import { YmodemError, YmodemReceiver, type YmodemEvent, type YmodemReceiverOptions } from "../../src/protocol/ymodem";
import { parseBlock0 } from "../../src/protocol/ymodem-block";
import { YmodemSender, type YmodemSenderFile, type YmodemSenderOptions } from "../../src/protocol/ymodem-sender";

const SOH = 0x01;
const STX = 0x02;
const EOT = 0x04;
const ACK = 0x06;
const NAK = 0x15;
const CAN = 0x18;
const C = 0x43;
const G = 0x47;

// ---------------------------------------------------------------------------------------------------------
// Hand-made frames, built here independently of the sender so the two cannot share a mistake.

function crcOf(kind: CrcKind, data: Uint8Array): number {
  return kind === "arc" ? crc16Arc(data) : crc16Xmodem(data);
}

interface BlockOptions {
  complement?: number;
  crcValue?: number;
}

function block(seq: number, payload: Uint8Array | string, crc: CrcKind, opts: BlockOptions = {}): Buffer {
  const raw = typeof payload === "string" ? Buffer.from(payload, "latin1") : Buffer.from(payload);
  const size = raw.length <= 128 ? 128 : 1024;
  assert.ok(raw.length <= size, "payload too long for a block");
  const data = Buffer.alloc(size); // zero padded unless the caller padded itself
  raw.copy(data);
  const value = opts.crcValue ?? crcOf(crc, data);
  return Buffer.concat([
    Buffer.from([size === 128 ? SOH : STX, seq & 0xff, opts.complement ?? 0xff - (seq & 0xff)]),
    data,
    Buffer.from([value >> 8, value & 0xff]),
  ]);
}

/** A 1024-byte block even for short payloads. */
function stxBlock(seq: number, payload: Uint8Array, crc: CrcKind, pad = 0x1a): Buffer {
  const data = Buffer.alloc(1024, pad);
  Buffer.from(payload).copy(data);
  return block(seq, data, crc);
}

function padded(payload: Uint8Array | string, pad: number, size = 128): Buffer {
  const data = Buffer.alloc(size, pad);
  Buffer.from(typeof payload === "string" ? Buffer.from(payload, "latin1") : payload).copy(data);
  return data;
}

const seedBlock0 = (name: string, size: number, crc: CrcKind = "arc"): Buffer => block(0, `${name} ${size}`, crc);

/** lrzsz layout: name NUL size mtime mode serial filesleft bytesleft, block count in bytes 126-127. */
function standardBlock0(name: string, fields: string, crc: CrcKind = "xmodem", count = 0x0102): Buffer {
  const data = Buffer.alloc(128);
  Buffer.from(`${name}\0${fields}\0`, "latin1").copy(data);
  data[126] = count >> 8;
  data[127] = count & 0xff;
  return block(0, data, crc);
}

const endBlock0 = (crc: CrcKind = "xmodem"): Buffer => block(0, Buffer.alloc(128), crc);

// ---------------------------------------------------------------------------------------------------------
// Event helpers.

type EventOf<T extends YmodemEvent["type"]> = Extract<YmodemEvent, { type: T }>;

function only<T extends YmodemEvent["type"]>(events: YmodemEvent[], type: T): EventOf<T>[] {
  return events.filter((e): e is EventOf<T> => e.type === type);
}

/** Everything the receiver wrote back, as one byte array. */
function sent(events: YmodemEvent[]): number[] {
  return only(events, "send").flatMap((e) => [...e.bytes]);
}

function errorOf(events: YmodemEvent[]): YmodemError {
  const errors = only(events, "error");
  assert.equal(errors.length, 1, `expected one error, got ${JSON.stringify(events.map((e) => e.type))}`);
  assert.ok(errors[0].error instanceof YmodemError);
  return errors[0].error;
}

const defaults: YmodemReceiverOptions = { crc: "auto", mode: "C", maxBytes: 1 << 20, retries: 3 };

function receiver(opts: Partial<YmodemReceiverOptions> = {}): YmodemReceiver {
  const r = new YmodemReceiver({ ...defaults, ...opts });
  r.start();
  return r;
}

/** Feeds several chunks, collecting every event. */
function feedAll(r: YmodemReceiver, ...chunks: Uint8Array[]): YmodemEvent[] {
  return chunks.flatMap((chunk) => r.feed(chunk));
}

/** Feeds a stream one byte per call: the worst fragmentation there is. */
function feedBytes(r: YmodemReceiver, bytes: Uint8Array): YmodemEvent[] {
  const events: YmodemEvent[] = [];
  for (const b of bytes) events.push(...r.feed(Uint8Array.of(b)));
  return events;
}

// ---------------------------------------------------------------------------------------------------------
// Loopback: a sender and a receiver wired back to back, with the transport's chunking in the middle.

type Chunker = (frames: Buffer[]) => Uint8Array[];

const wholeFrames: Chunker = (frames) => frames;

/** Joins the frames and cuts them into pieces of `size` (merging frames, splitting blocks anywhere). */
const fixedChunks =
  (size: number): Chunker =>
  (frames) => {
    const all = Buffer.concat(frames);
    const out: Uint8Array[] = [];
    for (let at = 0; at < all.length; at += size) out.push(all.subarray(at, at + size));
    return out;
  };

/** Joins the frames and cuts them at sizes taken in turn from `sizes` (each ≥ 1). */
function cyclingChunks(sizes: number[]): Chunker {
  let next = 0;
  return (frames) => {
    const all = Buffer.concat(frames);
    const out: Uint8Array[] = [];
    for (let at = 0; at < all.length; ) {
      const size = sizes[next++ % sizes.length];
      out.push(all.subarray(at, at + size));
      at += size;
    }
    return out;
  };
}

interface LoopbackOptions {
  chunker?: Chunker;
  /** Frames pulled per nextFrames() call in G mode. */
  burst?: number;
  /** Return true to lose this write from the receiver (index counts the receiver's writes). */
  dropReply?: (bytes: Buffer, index: number) => boolean;
  /** On a stall, whose timer fires first. */
  stall?: "receiver-first" | "sender-first";
  /** Called before each step; may return frames to inject (e.g. sender.cancel()). */
  interfere?: (step: number, sender: YmodemSender, receiver: YmodemReceiver) => Buffer[] | YmodemEvent[] | void;
  maxSteps?: number;
}

interface LoopbackResult {
  events: YmodemEvent[];
  files: EventOf<"file">[];
  error: YmodemError | null;
  sender: YmodemSender;
  receiver: YmodemReceiver;
  stalls: number;
}

function loopback(sender: YmodemSender, receiver: YmodemReceiver, opts: LoopbackOptions = {}): LoopbackResult {
  const chunker = opts.chunker ?? wholeFrames;
  const events: YmodemEvent[] = [];
  let toSender: Buffer[] = [];
  let writes = 0;
  let stalls = 0;
  const take = (evs: YmodemEvent[]): void => {
    for (const e of evs) {
      events.push(e);
      if (e.type === "send") {
        if (!opts.dropReply?.(e.bytes, writes++)) toSender.push(e.bytes);
      }
    }
  };
  const deliver = (frames: Buffer[]): void => {
    for (const chunk of chunker(frames)) {
      if (receiver.finished) break;
      take(receiver.feed(chunk));
    }
  };
  take(receiver.start());
  const maxSteps = opts.maxSteps ?? 1_000_000;
  for (let step = 0; step < maxSteps; step++) {
    const injected = opts.interfere?.(step, sender, receiver);
    if (injected && injected.length > 0) {
      if (Buffer.isBuffer(injected[0])) deliver(injected as Buffer[]);
      else take(injected as YmodemEvent[]);
    }
    let frames: Buffer[] = [];
    if (toSender.length > 0) {
      const bytes = Buffer.concat(toSender);
      toSender = [];
      frames = sender.receive(bytes);
    } else if (sender.hasPendingFrames) {
      frames = sender.nextFrames(opts.burst ?? 8);
    } else if (receiver.finished) {
      break;
    } else if (sender.state === "done" || sender.state === "aborted") {
      take(receiver.disconnected()); // the peripheral hangs up
      continue;
    } else {
      stalls++;
      if (opts.stall === "sender-first") {
        frames = sender.timeout();
        if (frames.length === 0) take(receiver.timeout());
      } else {
        const before = events.length;
        take(receiver.timeout());
        if (only(events.slice(before), "send").length === 0) frames = sender.timeout();
      }
    }
    if (frames.length > 0) deliver(frames);
  }
  assert.ok(receiver.finished, "loopback did not finish");
  const errors = only(events, "error");
  return { events, files: only(events, "file"), error: errors[0]?.error ?? null, sender, receiver, stalls };
}

function randomBytes(length: number, seed: number): Buffer {
  const out = Buffer.alloc(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

function senderFor(files: YmodemSenderFile[], opts: Partial<YmodemSenderOptions> = {}): YmodemSender {
  const dialect = opts.dialect ?? "standard";
  return new YmodemSender({
    files,
    dialect,
    crc: opts.crc ?? (dialect === "seed" ? "arc" : "xmodem"),
    blocks: opts.blocks ?? "auto",
    streaming: opts.streaming ?? true,
    ...opts,
  });
}

function assertSameFiles(result: LoopbackResult, files: YmodemSenderFile[]): void {
  assert.equal(result.error, null, result.error?.message);
  assert.equal(result.files.length, files.length);
  files.forEach((f, i) => {
    assert.equal(result.files[i].name, f.name);
    assert.equal(result.files[i].size, f.data.length, `size of ${f.name}`);
    assert.ok(result.files[i].data.equals(f.data), `content of ${f.name}`);
  });
  assert.equal(only(result.events, "end").length, 1);
}

// =========================================================================================================

describe("protocol/ymodem", () => {
  describe("parseBlock0", () => {
    it("reads the seed layout \"<name> <size>\", splitting at the last space", () => {
      assert.deepEqual(parseBlock0(padded("20240101.fit 12345", 0)), {
        kind: "file",
        name: "20240101.fit",
        size: 12345,
        dialect: "seed",
      });
      assert.deepEqual(parseBlock0(padded("my file.txt 7", 0)), { kind: "file", name: "my file.txt", size: 7, dialect: "seed" });
    });

    it("reads the standard layout with decimal size and octal mtime and mode, ignoring lrzsz's block count", () => {
      const data = padded("log.txt\x0012345 14567234567 100644 0 1 12345\x00", 0);
      data[126] = 0x00;
      data[127] = 0x61;
      assert.deepEqual(parseBlock0(data), {
        kind: "file",
        name: "log.txt",
        size: 12345,
        dialect: "standard",
        mtime: 0o14567234567,
        mode: 0o100644,
      });
    });

    it("treats a first byte NUL as end of batch, even with bytes after it", () => {
      assert.deepEqual(parseBlock0(new Uint8Array(128)), { kind: "end" });
      assert.deepEqual(parseBlock0(padded("\0\0junk", 0)), { kind: "end" });
    });

    it("reports no size when none is given, and leaves out a zero (unknown) mtime or mode", () => {
      assert.deepEqual(parseBlock0(padded("plain.bin", 0)), { kind: "file", name: "plain.bin", size: null, dialect: "standard" });
      assert.deepEqual(parseBlock0(padded("a\x00 0 0", 0)), { kind: "file", name: "a", size: null, dialect: "standard" });
      assert.deepEqual(parseBlock0(padded("a\x0010 0 0", 0)), { kind: "file", name: "a", size: 10, dialect: "standard" });
      assert.deepEqual(parseBlock0(padded("a\x00x9 0", 0)), { kind: "file", name: "a", size: null, dialect: "standard" });
    });

    it("decodes names as UTF-8", () => {
      const header = parseBlock0(padded(Buffer.from("Grüße.txt 3", "utf8"), 0));
      assert.equal(header.kind === "file" && header.name, "Grüße.txt");
    });
  });

  // =======================================================================================================

  describe("YmodemReceiver on hand-made streams", () => {
    it("starts with C, or G in G mode, once", () => {
      const c = new YmodemReceiver(defaults);
      assert.deepEqual(sent(c.start()), [C]);
      assert.deepEqual(c.start(), []);
      assert.deepEqual(sent(new YmodemReceiver({ ...defaults, mode: "G" }).start()), [G]);
      assert.deepEqual(new YmodemReceiver(defaults).feed(seedBlock0("a", 1)), [], "bytes before start() are ignored");
    });

    it("receives a seed-dialect file: ARC CRC, space layout, NAK-then-ACK EOT, disconnect ends", () => {
      const r = receiver();
      let ev = r.feed(seedBlock0("ride.fit", 5));
      assert.deepEqual(only(ev, "file-start"), [{ type: "file-start", name: "ride.fit", size: 5, dialect: "seed", crc: "arc" }]);
      assert.deepEqual(sent(ev), [ACK, C]);
      ev = r.feed(block(1, "hello", "arc"));
      assert.deepEqual(sent(ev), [ACK]);
      assert.deepEqual(only(ev, "progress"), [{ type: "progress", name: "ride.fit", received: 5, size: 5, blocks: 1 }]);
      assert.deepEqual(sent(r.feed(Uint8Array.of(EOT))), [NAK]);
      ev = r.feed(Uint8Array.of(EOT));
      assert.deepEqual(sent(ev), [ACK], "seed: no C after the file");
      const [file] = only(ev, "file");
      assert.equal(file.data.toString(), "hello");
      assert.deepEqual({ ...file, data: null }, {
        type: "file",
        name: "ride.fit",
        data: null,
        size: 5,
        blocks: 1,
        retransmissions: 0,
        blockSize: 128,
        crc: "arc",
      });
      assert.equal(r.finished, false);
      assert.deepEqual(r.disconnected(), [{ type: "end" }]);
      assert.equal(r.finished, true);
      assert.deepEqual(r.disconnected(), []);
    });

    it("receives a standard batch: XMODEM CRC, NUL layout, C after each file, empty block 0 ends", () => {
      const r = receiver();
      let ev = r.feed(standardBlock0("a.txt", "3 14567234567 100644 0 2 1027"));
      assert.deepEqual(only(ev, "file-start"), [
        { type: "file-start", name: "a.txt", size: 3, dialect: "standard", crc: "xmodem", mtime: 0o14567234567, mode: 0o100644 },
      ]);
      assert.deepEqual(sent(ev), [ACK, C]);
      assert.deepEqual(sent(r.feed(block(1, padded("abc", 0x1a), "xmodem"))), [ACK]);
      assert.deepEqual(sent(r.feed(Uint8Array.of(EOT))), [NAK]);
      ev = r.feed(Uint8Array.of(EOT));
      assert.deepEqual(sent(ev), [ACK, C], "standard: C for the next block 0");
      assert.equal(only(ev, "file")[0].data.toString(), "abc");

      ev = r.feed(standardBlock0("b.bin", "1024 0 0 0 1 1024"));
      assert.equal(only(ev, "file-start")[0].mtime, undefined, "mtime 0 means unknown");
      assert.equal(only(ev, "file-start")[0].mode, undefined);
      ev = feedAll(r, stxBlock(1, randomBytes(1024, 1), "xmodem"), Uint8Array.of(EOT), Uint8Array.of(EOT));
      const [file] = only(ev, "file");
      assert.ok(file.data.equals(randomBytes(1024, 1)));
      assert.equal(file.blockSize, 1024);

      ev = r.feed(endBlock0());
      assert.deepEqual(sent(ev), [ACK]);
      assert.deepEqual(only(ev, "end").length, 1);
      assert.equal(r.finished, true);
      assert.equal(r.stats.filesReceived, 2);
    });

    it("an empty block 0 first means an empty batch", () => {
      const r = receiver();
      const ev = r.feed(endBlock0());
      assert.deepEqual(sent(ev), [ACK]);
      assert.deepEqual(only(ev, "end").length, 1);
    });

    it("reports mixed block sizes", () => {
      const r = receiver();
      r.feed(standardBlock0("m", "1100"));
      const ev = feedAll(r, stxBlock(1, randomBytes(1024, 2), "xmodem"), block(2, randomBytes(76, 3), "xmodem"), Uint8Array.of(EOT, EOT));
      const [file] = only(ev, "file");
      assert.equal(file.blockSize, "mixed");
      assert.ok(file.data.equals(Buffer.concat([randomBytes(1024, 2), randomBytes(76, 3)])));
    });

    describe("CRC", () => {
      it("auto: block 0 decides, and that CRC holds for the session", () => {
        const r = receiver();
        assert.equal(only(r.feed(seedBlock0("x", 4, "arc")), "file-start")[0].crc, "arc");
        // A data block with an XMODEM CRC is now a bad block.
        assert.deepEqual(sent(r.feed(block(1, "abcd", "xmodem"))), [NAK]);
        assert.deepEqual(sent(r.feed(block(1, "abcd", "arc"))), [ACK]);
      });

      it("auto: a seed layout with an XMODEM CRC is still read (dialect and CRC are told apart separately)", () => {
        const r = receiver();
        const [start] = only(r.feed(seedBlock0("x", 4, "xmodem")), "file-start");
        assert.equal(start.crc, "xmodem");
        assert.equal(start.dialect, "seed");
      });

      it("auto: a block 0 matching neither CRC is NAKed, and the resend accepted", () => {
        const r = receiver();
        const good = seedBlock0("x", 4);
        const bad = Buffer.from(good);
        bad[131] ^= 0x01;
        assert.deepEqual(sent(r.feed(bad)), [NAK]);
        assert.deepEqual(sent(r.feed(good)), [ACK, C]);
      });

      it("fixed: a block 0 with the other CRC is NAKed", () => {
        const r = receiver({ crc: "arc" });
        assert.deepEqual(sent(r.feed(standardBlock0("x", "4", "xmodem"))), [NAK]);
        assert.deepEqual(sent(r.feed(standardBlock0("x", "4", "arc"))), [ACK, C]);
        const x = receiver({ crc: "xmodem" });
        assert.deepEqual(sent(x.feed(seedBlock0("x", 4, "arc"))), [NAK]);
      });

      it("a data block with a bad CRC is NAKed and counted as a retransmission", () => {
        const r = receiver();
        r.feed(seedBlock0("x", 4));
        const good = block(1, "abcd", "arc");
        const bad = Buffer.from(good);
        bad[50] ^= 0x80;
        assert.deepEqual(sent(r.feed(bad)), [NAK]);
        assert.deepEqual(sent(r.feed(good)), [ACK]);
        const [file] = only(feedAll(r, Uint8Array.of(EOT), Uint8Array.of(EOT)), "file");
        assert.equal(file.data.toString(), "abcd");
        assert.equal(file.retransmissions, 1);
      });
    });

    describe("block numbers", () => {
      it("NAKs a wrong complement, then takes the resend", () => {
        const r = receiver();
        r.feed(seedBlock0("x", 4));
        assert.deepEqual(sent(r.feed(block(1, "abcd", "arc", { complement: 0xfd }))), [NAK]);
        assert.deepEqual(sent(r.feed(block(1, "abcd", "arc"))), [ACK]);
        const [file] = only(feedAll(r, Uint8Array.of(EOT, EOT)), "file");
        assert.equal(file.data.toString(), "abcd");
        assert.equal(file.retransmissions, 1);
      });

      it("ACKs a repeated previous block (lost ACK) without writing it twice", () => {
        const r = receiver();
        r.feed(seedBlock0("x", 200));
        const b1 = block(1, randomBytes(128, 5), "arc");
        const b2 = block(2, randomBytes(72, 6), "arc");
        assert.deepEqual(sent(r.feed(b1)), [ACK]);
        const dup = r.feed(b1);
        assert.deepEqual(sent(dup), [ACK]);
        assert.equal(only(dup, "progress").length, 0, "a duplicate is not progress");
        assert.deepEqual(sent(r.feed(b2)), [ACK]);
        const [file] = only(feedAll(r, Uint8Array.of(EOT), Uint8Array.of(EOT)), "file");
        assert.ok(file.data.equals(Buffer.concat([randomBytes(128, 5), randomBytes(72, 6)])));
        assert.equal(file.blocks, 2);
        assert.equal(file.retransmissions, 1);
      });

      it("answers a repeated block 0 (lost ACK + C) with ACK and C again", () => {
        const r = receiver();
        r.feed(standardBlock0("x", "3"));
        assert.deepEqual(sent(r.feed(standardBlock0("x", "3"))), [ACK, C]);
        assert.deepEqual(sent(r.feed(block(1, "abc", "xmodem"))), [ACK]);
      });

      it("cancels when a block is neither the expected nor the previous one", () => {
        const r = receiver();
        r.feed(seedBlock0("lost.bin", 1000));
        r.feed(block(1, randomBytes(128, 1), "arc"));
        const ev = r.feed(block(3, randomBytes(128, 2), "arc"));
        assert.deepEqual(sent(ev), [CAN, CAN]);
        const error = errorOf(ev);
        assert.equal(error.code, "sequence");
        assert.equal(error.bytesReceived, 128);
        assert.equal(error.fileName, "lost.bin");
        assert.match(error.message, /sequence lost: got block 3, expected 2/);
        assert.match(error.message, /"lost\.bin", 128 bytes received/);
        assert.equal(r.finished, true);
        assert.deepEqual(r.feed(block(2, "x", "arc")), [], "nothing after the end");
      });

      it("cancels when the first block after start is not block 0", () => {
        const r = receiver({ crc: "arc" });
        const ev = r.feed(block(5, "stale", "arc"));
        assert.deepEqual(sent(ev), [CAN, CAN]);
        assert.equal(errorOf(ev).code, "sequence");
      });

      it("follows block numbers across the wrap from 255 to 0", () => {
        const r = receiver();
        const blocks = 300;
        r.feed(seedBlock0("wrap.bin", blocks * 128));
        const expected: Buffer[] = [];
        for (let n = 1; n <= blocks; n++) {
          const data = randomBytes(128, n);
          expected.push(data);
          assert.deepEqual(sent(r.feed(block(n, data, "arc"))), [ACK], `block ${n}`);
        }
        const [file] = only(feedAll(r, Uint8Array.of(EOT), Uint8Array.of(EOT)), "file");
        assert.ok(file.data.equals(Buffer.concat(expected)));
        assert.equal(file.blocks, blocks);
      });
    });

    describe("size and padding", () => {
      it("cuts to the announced size: a file ending in zeros stays whole (seed pads with zeros)", () => {
        const r = receiver();
        const content = Buffer.from("data\0\0\0", "latin1");
        r.feed(seedBlock0("z.bin", content.length));
        const [file] = only(feedAll(r, block(1, content, "arc"), Uint8Array.of(EOT, EOT)), "file");
        assert.ok(file.data.equals(content));
      });

      it("cuts to the announced size: a file ending in 0x1A stays whole", () => {
        const r = receiver();
        const content = Buffer.from("text\x1a\x1a", "latin1");
        r.feed(standardBlock0("s.txt", `${content.length}`));
        const [file] = only(feedAll(r, block(1, padded(content, 0x1a), "xmodem"), Uint8Array.of(EOT, EOT)), "file");
        assert.ok(file.data.equals(content));
      });

      it("without a size, strips 0x1A padding from the last block only", () => {
        const r = receiver();
        r.feed(standardBlock0("nosize.txt", ""));
        const first = Buffer.alloc(128, 0x1a); // a full block of 0x1A that is data
        const ev = feedAll(r, block(1, first, "xmodem"), block(2, padded("end\0", 0x1a), "xmodem"), Uint8Array.of(EOT, EOT));
        assert.deepEqual(only(ev, "progress").map((p) => p.size), [null, null]);
        const [file] = only(ev, "file");
        assert.ok(file.data.equals(Buffer.concat([first, Buffer.from("end\0", "latin1")])));
      });

      it("without a size, grows its buffer as needed (100 KB, past the initial 64 KiB)", () => {
        const r = receiver({ mode: "G" });
        r.feed(standardBlock0("grow.bin", ""));
        const content = randomBytes(100_000, 77);
        const frames: Buffer[] = [];
        for (let n = 1, at = 0; at < content.length; n++, at += 1024) frames.push(stxBlock(n, content.subarray(at, at + 1024), "xmodem"));
        const ev = feedAll(r, ...fixedChunks(244)([...frames, Buffer.from([EOT])]));
        const [file] = only(ev, "file");
        assert.ok(file.data.equals(content));
        assert.ok(r.stats.peakBufferBytes >= 100_352 && r.stats.peakBufferBytes <= 2 * 65_536);
      });

      it("without a size, a last block of nothing but 0x1A leaves the earlier blocks whole", () => {
        const r = receiver();
        r.feed(standardBlock0("nosize.bin", ""));
        const first = padded("abc", 0x1a);
        const [file] = only(
          feedAll(r, block(1, first, "xmodem"), block(2, Buffer.alloc(128, 0x1a), "xmodem"), Uint8Array.of(EOT, EOT)),
          "file",
        );
        assert.ok(file.data.equals(first));
      });

      it("refuses an announced size above maxBytes before storing anything", () => {
        const r = receiver({ maxBytes: 1000 });
        const ev = r.feed(seedBlock0("huge.fit", 1001));
        assert.deepEqual(sent(ev), [CAN, CAN], "no ACK for block 0");
        assert.equal(only(ev, "file-start").length, 0);
        const error = errorOf(ev);
        assert.equal(error.code, "too-large");
        assert.equal(error.bytesReceived, 0);
        assert.equal(error.fileName, "huge.fit");
        assert.match(error.message, /announced size 1001 exceeds maxBytes 1000/);
        assert.equal(r.stats.peakBufferBytes, 0);
      });

      it("refuses absurd sizes (beyond any safe integer)", () => {
        const r = receiver();
        const error = errorOf(r.feed(block(0, "x 99999999999999999999999", "arc")));
        assert.equal(error.code, "too-large");
      });

      it("takes a file of exactly maxBytes", () => {
        const r = receiver({ maxBytes: 128 });
        r.feed(seedBlock0("x", 128));
        const [file] = only(feedAll(r, block(1, randomBytes(128, 9), "arc"), Uint8Array.of(EOT, EOT)), "file");
        assert.equal(file.size, 128);
        assert.equal(r.stats.peakBufferBytes, 128);
      });

      it("fails when the sender sends more blocks than the announced size needs", () => {
        const r = receiver();
        r.feed(seedBlock0("liar.bin", 100));
        assert.deepEqual(sent(r.feed(block(1, randomBytes(100, 1), "arc"))), [ACK]);
        const ev = r.feed(block(2, randomBytes(128, 2), "arc"));
        assert.deepEqual(sent(ev), [CAN, CAN]);
        const error = errorOf(ev);
        assert.equal(error.code, "size-mismatch");
        assert.equal(error.bytesReceived, 100);
        assert.equal(r.stats.peakBufferBytes, 100);
      });

      it("without a size, stops at maxBytes and never allocates more than maxBytes + 1024", () => {
        const maxBytes = 3000;
        const r = receiver({ maxBytes });
        r.feed(standardBlock0("endless", ""));
        let ev: YmodemEvent[] = [];
        for (let n = 1; n < 10 && !r.finished; n++) ev = r.feed(stxBlock(n, randomBytes(1024, n), "xmodem"));
        const error = errorOf(ev);
        assert.equal(error.code, "too-large");
        assert.equal(error.bytesReceived, 3072);
        assert.ok(r.stats.peakBufferBytes <= maxBytes + 1024, String(r.stats.peakBufferBytes));
      });

      it("without a size, checks maxBytes after stripping the padding", () => {
        const r = receiver({ maxBytes: 130 });
        r.feed(standardBlock0("n", ""));
        let ev = feedAll(r, block(1, randomBytes(128, 1), "xmodem"), block(2, padded("xy", 0x1a), "xmodem"), Uint8Array.of(EOT, EOT));
        assert.equal(only(ev, "file")[0].size, 130);
        const over = receiver({ maxBytes: 129 });
        over.feed(standardBlock0("n", ""));
        ev = feedAll(over, block(1, randomBytes(128, 1), "xmodem"), block(2, padded("xy", 0x1a), "xmodem"), Uint8Array.of(EOT, EOT));
        assert.equal(errorOf(ev).code, "too-large");
      });

      it("fails when EOT comes before the announced size was reached (after confirming the EOT)", () => {
        const r = receiver();
        r.feed(seedBlock0("short.bin", 300));
        r.feed(block(1, randomBytes(128, 1), "arc"));
        assert.deepEqual(sent(r.feed(Uint8Array.of(EOT))), [NAK]);
        const ev = r.feed(Uint8Array.of(EOT));
        assert.deepEqual(sent(ev), [CAN, CAN]);
        const error = errorOf(ev);
        assert.equal(error.code, "size-mismatch");
        assert.match(error.message, /after 128 of the announced 300 bytes/);
      });

      it("receives a zero-length file (EOT right after block 0)", () => {
        const r = receiver();
        r.feed(seedBlock0("empty", 0));
        const ev = feedAll(r, Uint8Array.of(EOT), Uint8Array.of(EOT));
        const [file] = only(ev, "file");
        assert.equal(file.size, 0);
        assert.equal(file.blocks, 0);
        assert.equal(file.blockSize, 128);
      });

      it("fails a zero-length announcement followed by data", () => {
        const r = receiver();
        r.feed(seedBlock0("empty", 0));
        assert.equal(errorOf(r.feed(block(1, "x", "arc"))).code, "size-mismatch");
      });
    });

    describe("framing", () => {
      it("reassembles blocks from any fragmentation, one byte at a time included", () => {
        const r = receiver();
        const content = randomBytes(1500, 7);
        let ev = feedBytes(r, seedBlock0("f", 1500));
        assert.deepEqual(sent(ev), [ACK, C]);
        ev = feedBytes(r, stxBlock(1, content.subarray(0, 1024), "arc", 0));
        assert.deepEqual(sent(ev), [ACK]);
        assert.deepEqual(sent(feedBytes(r, block(2, content.subarray(1024, 1152), "arc"))), [ACK]);
        assert.deepEqual(sent(feedAll(r, ...fixedChunks(7)([block(3, content.subarray(1152, 1280), "arc")]))), [ACK]);
        assert.deepEqual(sent(feedAll(r, ...fixedChunks(20)([stxBlock(4, content.subarray(1280), "arc", 0)]))), [ACK]);
        const [file] = only(feedAll(r, Uint8Array.of(EOT), Uint8Array.of(EOT)), "file");
        assert.ok(file.data.equals(content));
      });

      it("takes several blocks in one chunk, and a chunk holding the end of one block and the start of the next (G)", () => {
        const r = receiver({ mode: "G" });
        const content = randomBytes(5000, 11);
        const stream: Buffer[] = [];
        for (let n = 1, at = 0; at < content.length; n++, at += 1024) stream.push(stxBlock(n, content.subarray(at, at + 1024), "xmodem"));
        stream.push(Buffer.from([EOT]));
        let ev = r.feed(standardBlock0("g.bin", "5000"));
        assert.deepEqual(sent(ev), [ACK, G]);
        const all = Buffer.concat(stream);
        ev = feedAll(r, all.subarray(0, 2500), all.subarray(2500, 2501), all.subarray(2501));
        assert.deepEqual(sent(ev), [ACK, G], "no ACK per block in G mode; EOT ACKed at once, then G");
        assert.equal(only(ev, "progress").length, 5);
        assert.ok(only(ev, "file")[0].data.equals(content));
        ev = r.feed(endBlock0());
        assert.deepEqual(sent(ev), [ACK]);
        assert.equal(only(ev, "end").length, 1);
      });

      it("treats 0x04 and 0x18 inside a block as data, even alone in a notification", () => {
        const r = receiver();
        const content = Buffer.from([EOT, CAN, CAN, EOT, 1, 2, EOT]);
        r.feed(seedBlock0("eot.bin", content.length));
        const frame = block(1, content, "arc");
        // Cut so that single bytes 0x04 and 0x18 0x18 arrive as their own chunks.
        const ev = feedAll(r, frame.subarray(0, 3), frame.subarray(3, 4), frame.subarray(4, 6), frame.subarray(6, 7), frame.subarray(7));
        assert.deepEqual(sent(ev), [ACK]);
        assert.equal(only(ev, "error").length, 0);
        const [file] = only(feedAll(r, Uint8Array.of(EOT), Uint8Array.of(EOT)), "file");
        assert.ok(file.data.equals(content));
      });

      it("discards garbage between blocks", () => {
        const r = receiver();
        let ev = feedAll(r, Buffer.from("boot ok\r\n"), seedBlock0("g", 3));
        assert.deepEqual(sent(ev), [ACK, C]);
        ev = feedAll(r, Buffer.from([0xff, 0x00, 0x43]), block(1, "abc", "arc"), Buffer.from("~~"));
        assert.deepEqual(sent(ev), [ACK]);
        const [file] = only(feedAll(r, Uint8Array.of(EOT), Buffer.from("x"), Uint8Array.of(EOT)), "file");
        assert.equal(file.data.toString(), "abc");
      });

      it("NAKs after garbage when the caller's timer fires", () => {
        const r = receiver();
        r.feed(seedBlock0("g", 300));
        r.feed(block(1, randomBytes(128, 1), "arc"));
        assert.deepEqual(r.feed(Buffer.from("noise")), []);
        assert.deepEqual(sent(r.timeout()), [NAK]);
        assert.deepEqual(sent(r.feed(block(2, randomBytes(128, 2), "arc"))), [ACK]);
      });

      it("drops a half block when the timer fires and takes the resent block whole", () => {
        const r = receiver();
        r.feed(seedBlock0("h", 300));
        const b1 = block(1, randomBytes(128, 1), "arc");
        r.feed(b1.subarray(0, 60));
        assert.deepEqual(sent(r.timeout()), [C], "no data block yet: ask with C again");
        assert.deepEqual(sent(r.feed(b1)), [ACK]);
        const b2 = block(2, randomBytes(128, 2), "arc");
        r.feed(b2.subarray(0, 60));
        assert.deepEqual(sent(r.timeout()), [NAK]);
        assert.deepEqual(sent(r.feed(b2)), [ACK]);
      });

      it("ignores what follows a NAKed block in the same chunk (it was sent before our NAK)", () => {
        const r = receiver();
        r.feed(seedBlock0("p", 300));
        const bad = block(1, randomBytes(128, 1), "arc", { crcValue: 0 });
        const ev = r.feed(Buffer.concat([bad, Buffer.from([CAN, CAN, EOT])]));
        assert.deepEqual(sent(ev), [NAK]);
        assert.equal(r.finished, false);
      });

      it("accepts a 1K block 0 (sz uses one when the header does not fit 128 bytes)", () => {
        const r = receiver();
        const name = "n".repeat(200);
        const data = Buffer.alloc(1024);
        Buffer.from(`${name}\x005 0 100644`, "latin1").copy(data);
        const ev = r.feed(block(0, data, "xmodem"));
        assert.equal(only(ev, "file-start")[0].name, name);
        assert.deepEqual(sent(ev), [ACK, C]);
      });
    });

    describe("EOT", () => {
      it("answers a repeated final EOT (lost ACK) with ACK (and C in the standard dialect)", () => {
        const std = receiver();
        feedAll(std, standardBlock0("s", "0"), Uint8Array.of(EOT), Uint8Array.of(EOT));
        assert.deepEqual(sent(std.feed(Uint8Array.of(EOT))), [ACK, C]);
        const seed = receiver();
        feedAll(seed, seedBlock0("s", 0), Uint8Array.of(EOT), Uint8Array.of(EOT));
        assert.deepEqual(sent(seed.feed(Uint8Array.of(EOT))), [ACK]);
      });

      it("ignores an EOT before any file", () => {
        const r = receiver();
        assert.deepEqual(r.feed(Uint8Array.of(EOT)), []);
        assert.deepEqual(sent(r.feed(seedBlock0("a", 0))), [ACK, C]);
      });

      it("a block after a NAKed EOT (the EOT was noise) continues the file", () => {
        const r = receiver();
        r.feed(seedBlock0("n", 200));
        r.feed(block(1, randomBytes(128, 1), "arc"));
        assert.deepEqual(sent(r.feed(Uint8Array.of(EOT))), [NAK]);
        assert.deepEqual(sent(r.feed(block(2, randomBytes(72, 2), "arc"))), [ACK]);
        assert.deepEqual(sent(r.feed(Uint8Array.of(EOT))), [NAK], "a fresh EOT is NAKed again");
        assert.equal(only(r.feed(Uint8Array.of(EOT)), "file").length, 1);
      });

      it("NAKs again when the timer fires after a NAKed EOT", () => {
        const r = receiver();
        feedAll(r, seedBlock0("n", 1), block(1, "x", "arc"), Uint8Array.of(EOT));
        assert.deepEqual(sent(r.timeout()), [NAK]);
        assert.equal(only(r.feed(Uint8Array.of(EOT)), "file").length, 1);
      });
    });

    describe("seed dialect after a file", () => {
      it("takes another block 0 without a C, and ends on an empty block 0", () => {
        const r = receiver();
        feedAll(r, seedBlock0("a", 1), block(1, "A", "arc"), Uint8Array.of(EOT, EOT));
        let ev = r.feed(seedBlock0("b", 1));
        assert.equal(only(ev, "file-start")[0].name, "b");
        ev = feedAll(r, block(1, "B", "arc"), Uint8Array.of(EOT, EOT));
        assert.equal(only(ev, "file")[0].data.toString(), "B");
        ev = r.feed(endBlock0("arc"));
        assert.deepEqual(sent(ev), [ACK]);
        assert.equal(only(ev, "end").length, 1);
        assert.equal(r.stats.filesReceived, 2);
      });

      it("ends on the timer when nothing more comes", () => {
        const r = receiver();
        feedAll(r, seedBlock0("a", 1), block(1, "A", "arc"), Uint8Array.of(EOT, EOT));
        assert.deepEqual(r.timeout(), [{ type: "end" }]);
        assert.equal(r.finished, true);
      });
    });

    describe("cancel", () => {
      it("aborts on CAN CAN from the sender, sending nothing back", () => {
        const r = receiver();
        r.feed(seedBlock0("c.bin", 500));
        r.feed(block(1, randomBytes(128, 1), "arc"));
        const ev = r.feed(Uint8Array.of(CAN, CAN));
        assert.deepEqual(sent(ev), []);
        const error = errorOf(ev);
        assert.equal(error.code, "cancelled-by-sender");
        assert.match(error.message, /cancelled by sender \(file "c\.bin", 128 bytes received\)/);
        assert.equal(r.finished, true);
      });

      it("takes CAN CAN split over two notifications", () => {
        const r = receiver();
        r.feed(seedBlock0("c.bin", 500));
        assert.deepEqual(r.feed(Uint8Array.of(CAN)), []);
        assert.equal(errorOf(r.feed(Uint8Array.of(CAN))).code, "cancelled-by-sender");
      });

      it("ignores a single CAN (as lrzsz does), also one followed by other bytes and a CAN", () => {
        const r = receiver();
        r.feed(seedBlock0("c", 3));
        assert.deepEqual(r.feed(Uint8Array.of(CAN)), []);
        assert.deepEqual(sent(r.feed(block(1, "abc", "arc"))), [ACK]);
        assert.deepEqual(r.feed(Uint8Array.of(CAN, 0x20, CAN)), []);
        assert.equal(r.finished, false);
        assert.equal(only(feedAll(r, Uint8Array.of(EOT, EOT)), "file").length, 1);
      });

      it("cancel() sends CAN CAN and reports the cancellation", () => {
        const r = receiver();
        r.feed(seedBlock0("u.bin", 500));
        r.feed(block(1, randomBytes(128, 1), "arc"));
        const ev = r.cancel();
        assert.deepEqual(sent(ev), [CAN, CAN]);
        const error = errorOf(ev);
        assert.equal(error.code, "cancelled");
        assert.equal(error.bytesReceived, 128);
        assert.equal(r.finished, true);
        assert.deepEqual(r.cancel(), []);
        assert.deepEqual(r.timeout(), []);
        assert.deepEqual(r.feed(block(2, "x", "arc")), []);
      });
    });

    describe("timeouts and retries", () => {
      it("repeats C while waiting for block 0, then gives up with CAN CAN after `retries`", () => {
        const r = receiver({ retries: 2 });
        assert.deepEqual(sent(r.timeout()), [C]);
        assert.deepEqual(sent(r.timeout()), [C]);
        const ev = r.timeout();
        assert.deepEqual(sent(ev), [CAN, CAN]);
        const error = errorOf(ev);
        assert.equal(error.code, "retries");
        assert.match(error.message, /timed out 3 times waiting for block 0/);
      });

      it("repeats G in G mode while waiting for block 0", () => {
        const r = receiver({ mode: "G" });
        assert.deepEqual(sent(r.timeout()), [G]);
      });

      it("a good block resets the count", () => {
        const r = receiver({ retries: 1 });
        r.feed(seedBlock0("r", 1000));
        assert.deepEqual(sent(r.timeout()), [C]);
        r.feed(block(1, randomBytes(128, 1), "arc"));
        assert.deepEqual(sent(r.timeout()), [NAK]);
        r.feed(block(2, randomBytes(128, 2), "arc"));
        assert.deepEqual(sent(r.timeout()), [NAK]);
        const error = errorOf(r.timeout());
        assert.equal(error.code, "retries");
        assert.match(error.message, /waiting for data block 3 \(file "r", 256 bytes received\)/);
      });

      it("bad blocks count as failures too", () => {
        const r = receiver({ retries: 2 });
        r.feed(seedBlock0("b", 100));
        const bad = block(1, "x", "arc", { crcValue: 1 });
        assert.deepEqual(sent(r.feed(bad)), [NAK]);
        assert.deepEqual(sent(r.timeout()), [C]);
        const ev = r.feed(bad);
        assert.deepEqual(sent(ev), [CAN, CAN]);
        assert.equal(errorOf(ev).code, "retries");
      });

      it("standard dialect: ends (with CAN CAN) when the end-of-batch block 0 never comes after complete files", () => {
        const r = receiver({ retries: 1 });
        feedAll(r, standardBlock0("a", "1"), block(1, "A", "xmodem"), Uint8Array.of(EOT, EOT));
        assert.deepEqual(sent(r.timeout()), [C]);
        const ev = r.timeout();
        assert.deepEqual(sent(ev), [CAN, CAN]);
        assert.equal(only(ev, "end").length, 1);
        assert.equal(only(ev, "error").length, 0);
      });

      it("in G mode sends nothing on a timeout mid-stream, but still counts it", () => {
        const r = receiver({ mode: "G", retries: 1 });
        feedAll(r, standardBlock0("g", "300"), block(1, randomBytes(128, 1), "xmodem"));
        assert.deepEqual(r.timeout(), []);
        assert.equal(errorOf(r.timeout()).code, "retries");
      });
    });

    describe("G mode", () => {
      it("sends nothing per data block, ACKs the first EOT, and G gets the end block", () => {
        const r = receiver({ mode: "G" });
        let ev = r.feed(standardBlock0("g", "200"));
        assert.deepEqual(sent(ev), [ACK, G]);
        ev = feedAll(r, block(1, randomBytes(128, 1), "xmodem"), block(2, randomBytes(72, 2), "xmodem"));
        assert.deepEqual(sent(ev), []);
        ev = r.feed(Uint8Array.of(EOT));
        assert.deepEqual(sent(ev), [ACK, G]);
        assert.equal(only(ev, "file").length, 1);
        ev = r.feed(endBlock0());
        assert.deepEqual(sent(ev), [ACK]);
        assert.equal(only(ev, "end").length, 1);
      });

      it("a bad data block is fatal (G cannot resend)", () => {
        const r = receiver({ mode: "G" });
        r.feed(standardBlock0("g.bin", "300"));
        r.feed(block(1, randomBytes(128, 1), "xmodem"));
        const ev = r.feed(block(2, randomBytes(128, 2), "xmodem", { crcValue: 0x1234 }));
        assert.deepEqual(sent(ev), [CAN, CAN]);
        const error = errorOf(ev);
        assert.equal(error.code, "bad-block");
        assert.match(error.message, /YMODEM-g/);
        assert.equal(error.bytesReceived, 128);
      });

      it("a bad block 0 is still NAKed (block 0 is acknowledged in G mode too)", () => {
        const r = receiver({ mode: "G" });
        const bad = standardBlock0("g", "1");
        bad[100] ^= 0x55;
        assert.deepEqual(sent(r.feed(bad)), [NAK]);
        assert.deepEqual(sent(r.feed(standardBlock0("g", "1"))), [ACK, G]);
      });

      it("a seed-dialect file in G mode ends with a single ACK", () => {
        const r = receiver({ mode: "G" });
        const ev = feedAll(r, seedBlock0("s", 1), block(1, "x", "arc"), Uint8Array.of(EOT));
        assert.deepEqual(sent(ev), [ACK, G, ACK]);
        assert.deepEqual(r.disconnected(), [{ type: "end" }]);
      });

      it("a short file at EOT is fatal at once", () => {
        const r = receiver({ mode: "G" });
        const ev = feedAll(r, standardBlock0("s", "500"), block(1, "x", "xmodem"), Uint8Array.of(EOT));
        assert.equal(errorOf(ev).code, "size-mismatch");
      });
    });

    describe("disconnect", () => {
      it("mid-file is an error telling how far it got", () => {
        const r = receiver();
        feedAll(r, seedBlock0("d.fit", 1000), block(1, randomBytes(128, 1), "arc"), block(2, randomBytes(128, 2), "arc"));
        const ev = r.disconnected();
        assert.deepEqual(sent(ev), []);
        const error = errorOf(ev);
        assert.equal(error.code, "disconnected");
        assert.equal(error.bytesReceived, 256);
        assert.match(error.message, /disconnected during the file \(file "d\.fit", 256 bytes received\)/);
      });

      it("before any file is an error", () => {
        assert.equal(errorOf(receiver().disconnected()).code, "disconnected");
      });

      it("after a complete standard file, while waiting for the next block 0, is the end", () => {
        const r = receiver();
        feedAll(r, standardBlock0("a", "1"), block(1, "A", "xmodem"), Uint8Array.of(EOT, EOT));
        assert.deepEqual(r.disconnected(), [{ type: "end" }]);
      });
    });

    it("rejects nonsensical options", () => {
      assert.throws(() => new YmodemReceiver({ ...defaults, maxBytes: -1 }), RangeError);
      assert.throws(() => new YmodemReceiver({ ...defaults, retries: 1.5 }), RangeError);
    });

    // Speed is measured by `npm run bench`, not asserted here.
    it("receives an 8 MiB G-mode stream of 244-byte notifications byte-exact", () => {
      const mib = 8;
      const content = randomBytes(mib << 20, 42);
      const sender = senderFor([{ name: "big.bin", data: content }], { blocks: "stx", maxBurst: 1 << 30 });
      const r = new YmodemReceiver({ ...defaults, mode: "G", maxBytes: content.length });
      // MTU 247 → 244-byte notifications.
      const setup = [...sender.receive(Uint8Array.of(G)), ...sender.receive(Uint8Array.of(ACK, G))];
      const chunks = fixedChunks(244)(setup.slice(1));
      r.start();
      r.feed(setup[0]);
      let file: EventOf<"file"> | undefined;
      for (const chunk of chunks) {
        for (const e of r.feed(chunk)) if (e.type === "file") file = e;
      }
      assert.ok(file, "file received");
      assert.ok(file.data.equals(content));
    });
  });

  // =======================================================================================================

  describe("YmodemSender", () => {
    const file = (name: string, size: number, seed = 1): YmodemSenderFile => ({ name, data: randomBytes(size, seed) });

    it("seed: block 0 \"name size\" zero padded with ARC, data zero padded, no end block", () => {
      const s = senderFor([file("ride.fit", 130)], { dialect: "seed", crc: "arc", blocks: "soh" });
      assert.equal(s.state, "waiting-start");
      const [b0] = s.receive(Uint8Array.of(C));
      assert.ok(b0.equals(seedBlock0("ride.fit", 130)));
      assert.equal(s.state, "sending");
      assert.deepEqual(s.receive(Uint8Array.of(ACK)), []);
      const [b1] = s.receive(Uint8Array.of(C));
      assert.ok(b1.equals(block(1, randomBytes(130, 1).subarray(0, 128), "arc")));
      const [b2] = s.receive(Uint8Array.of(ACK));
      assert.ok(b2.equals(block(2, randomBytes(130, 1).subarray(128), "arc")), "zero padding");
      assert.deepEqual(s.receive(Uint8Array.of(ACK)), [Buffer.from([EOT])]);
      assert.deepEqual(s.receive(Uint8Array.of(NAK)), [Buffer.from([EOT])]);
      assert.deepEqual(s.receive(Uint8Array.of(ACK)), []);
      assert.equal(s.state, "done");
      assert.equal(s.done, true);
      assert.deepEqual(s.stats, { framesSent: 5, blocksSent: 2, retransmissions: 0, filesSent: 1, bytesSent: 130 });
    });

    it("seed: several files follow each other without a C", () => {
      const s = senderFor([file("a", 1), file("b", 1, 2)], { dialect: "seed" });
      s.receive(Uint8Array.of(C));
      s.receive(Uint8Array.of(ACK));
      s.receive(Uint8Array.of(C));
      s.receive(Uint8Array.of(ACK)); // block 1 ACKed → EOT
      s.receive(Uint8Array.of(NAK)); // EOT again
      const [next] = s.receive(Uint8Array.of(ACK));
      assert.ok(next.equals(seedBlock0("b", 1)));
    });

    it("standard: lrzsz-style block 0 with octal fields and block count, 0x1A padding, end block", () => {
      const data = randomBytes(200, 3);
      const s = senderFor([{ name: "log.txt", data, mtime: 0o14567234567, mode: 0o100600 }], { dialect: "standard", crc: "xmodem", blocks: "soh" });
      const [b0] = s.receive(Uint8Array.of(C));
      assert.equal(b0[0], SOH);
      const header = b0.subarray(3, 131);
      const text = header.toString("latin1");
      assert.ok(text.startsWith("log.txt\x00200 14567234567 100600 0 1 200\x00"), JSON.stringify(text.slice(0, 60)));
      assert.equal(header[126], 0);
      assert.equal(header[127], 2, "block count in the last bytes, as sz");
      assert.deepEqual(parseBlock0(header), { kind: "file", name: "log.txt", size: 200, dialect: "standard", mtime: 0o14567234567, mode: 0o100600 });
      s.receive(Uint8Array.of(ACK));
      s.receive(Uint8Array.of(C));
      const [b2] = s.receive(Uint8Array.of(ACK));
      assert.ok(b2.equals(block(2, padded(data.subarray(128), 0x1a), "xmodem")));
      s.receive(Uint8Array.of(ACK)); // EOT
      assert.deepEqual(s.receive(Uint8Array.of(ACK, C)), [endBlock0()]);
      assert.equal(s.state, "sending");
      s.receive(Uint8Array.of(ACK));
      assert.equal(s.done, true);
    });

    it("standard: a header too long for 128 bytes goes in a 1K block 0; the seed refuses it", () => {
      const long = "x".repeat(150);
      const [b0] = senderFor([{ name: long, data: Buffer.alloc(1) }]).receive(Uint8Array.of(C));
      assert.equal(b0.length, 1029);
      assert.throws(() => senderFor([{ name: long, data: Buffer.alloc(1) }], { dialect: "seed" }), RangeError);
      assert.throws(() => senderFor([{ name: "", data: Buffer.alloc(1) }]), RangeError);
      assert.throws(() => senderFor([{ name: "a\0b", data: Buffer.alloc(1) }]), RangeError);
    });

    it("block sizes: soh, stx, and auto (STX while more than 896 bytes remain)", () => {
      const sizesOf = (size: number, blocks: "soh" | "stx" | "auto"): number[] => {
        const s = senderFor([file("f", size)], { blocks });
        s.receive(Uint8Array.of(C));
        s.receive(Uint8Array.of(ACK));
        const out: number[] = [];
        for (let frames = s.receive(Uint8Array.of(C)); frames[0].length > 1; frames = s.receive(Uint8Array.of(ACK))) out.push(frames[0].length - 5);
        return out;
      };
      assert.deepEqual(sizesOf(300, "soh"), [128, 128, 128]);
      assert.deepEqual(sizesOf(1, "stx"), [1024]);
      assert.deepEqual(sizesOf(1920, "auto"), [1024, 128, 128, 128, 128, 128, 128, 128]);
      assert.deepEqual(sizesOf(1921, "auto"), [1024, 1024]);
      assert.deepEqual(sizesOf(896, "auto"), [128, 128, 128, 128, 128, 128, 128]);
      assert.deepEqual(sizesOf(897, "auto"), [1024]);
      assert.deepEqual(sizesOf(0, "auto"), []);
    });

    it("G mode: streams after G, at most maxBurst frames per call, the rest from nextFrames; EOT last", () => {
      const s = senderFor([file("g", 10 * 1024)], { blocks: "stx", maxBurst: 3 });
      s.receive(Uint8Array.of(G));
      s.receive(Uint8Array.of(ACK));
      const frames = s.receive(Uint8Array.of(G));
      assert.equal(frames.length, 3);
      assert.equal(s.hasPendingFrames, true);
      assert.deepEqual(s.receive(Uint8Array.of(NAK, C, ACK)), [], "G streams regardless");
      frames.push(...s.nextFrames(4), ...s.nextFrames());
      assert.equal(frames.length, 10);
      frames.push(...s.nextFrames(100));
      assert.equal(frames.length, 11);
      assert.deepEqual(frames[10], Buffer.from([EOT]));
      assert.equal(s.hasPendingFrames, false);
      assert.deepEqual(s.nextFrames(5), []);
      s.receive(Uint8Array.of(ACK));
      assert.deepEqual(s.receive(Uint8Array.of(G)), [endBlock0()]);
    });

    it("ignores G unless streaming is enabled", () => {
      const s = senderFor([file("g", 10)], { streaming: false });
      assert.deepEqual(s.receive(Uint8Array.of(G)), []);
      assert.equal(s.receive(Uint8Array.of(C)).length, 1);
    });

    it("resends on NAK and on timeout; gives up with CAN CAN after its retries", () => {
      const s = senderFor([file("t", 10)], { retries: 2 });
      const [b0] = s.receive(Uint8Array.of(C));
      assert.deepEqual(s.timeout(), [b0]);
      assert.deepEqual(s.timeout(), [b0]);
      assert.deepEqual(s.timeout(), [Buffer.from([CAN, CAN])]);
      assert.equal(s.state, "aborted");
      assert.equal(s.abortedBy, "sender");
      assert.equal(s.stats.retransmissions, 2);
    });

    it("counts every resend of one frame against its retries (a receiver that NAKs forever is given up); progress starts the count again", () => {
      const s = senderFor([file("t", 300)], { retries: 2, blocks: "soh" });
      const [b0] = s.receive(Uint8Array.of(C));
      assert.deepEqual(s.receive(Uint8Array.of(NAK)), [b0]);
      assert.deepEqual(s.receive(Uint8Array.of(C)), [b0], "C again: block 0 was lost");
      s.receive(Uint8Array.of(ACK));
      const [b1] = s.receive(Uint8Array.of(C));
      assert.deepEqual(s.receive(Uint8Array.of(NAK)), [b1], "a new frame: its own count");
      assert.deepEqual(s.timeout(), [b1]);
      assert.deepEqual(s.receive(Uint8Array.of(NAK)), [Buffer.from([CAN, CAN])]);
      assert.equal(s.state, "aborted");
      assert.equal(s.abortedBy, "sender");
      assert.equal(s.bytesAcknowledged, 0);
    });

    it("says how many file bytes the receiver acknowledged, and who cancelled", () => {
      const s = senderFor([file("t", 300)], { blocks: "soh" });
      s.receive(Uint8Array.of(C));
      s.receive(Uint8Array.of(ACK));
      s.receive(Uint8Array.of(C));
      assert.equal(s.bytesAcknowledged, 0, "block 1 sent, not acknowledged");
      s.receive(Uint8Array.of(ACK));
      assert.equal(s.bytesAcknowledged, 128);
      s.receive(Uint8Array.of(CAN, CAN));
      assert.equal(s.abortedBy, "receiver");
      assert.equal(s.bytesAcknowledged, 128);
    });

    it("sends nothing on timeout while waiting for the receiver to start", () => {
      const s = senderFor([file("t", 10)]);
      assert.deepEqual(s.timeout(), []);
      assert.equal(s.state, "waiting-start");
    });

    it("aborts on CAN CAN and ignores a single CAN", () => {
      const s = senderFor([file("t", 300)], { blocks: "soh" });
      s.receive(Uint8Array.of(C));
      s.receive(Uint8Array.of(ACK));
      s.receive(Uint8Array.of(C));
      assert.equal(s.receive(Uint8Array.of(CAN, ACK)).length, 1, "CAN then ACK: the ACK counts");
      assert.deepEqual(s.receive(Uint8Array.of(CAN, CAN, ACK)), []);
      assert.equal(s.state, "aborted");
      assert.deepEqual(s.timeout(), []);
    });

    it("cancel() sends CAN CAN", () => {
      const s = senderFor([file("t", 300)]);
      s.receive(Uint8Array.of(C));
      assert.deepEqual(s.cancel(), [Buffer.from([CAN, CAN])]);
      assert.equal(s.state, "aborted");
      assert.deepEqual(s.cancel(), []);
    });

    it("corrupts only the first transmission of the listed blocks", () => {
      const s = senderFor([file("c", 300)], { blocks: "soh", corruptBlocks: [0, 2] });
      const [bad0] = s.receive(Uint8Array.of(C));
      const [good0] = s.receive(Uint8Array.of(NAK));
      assert.notDeepEqual(bad0, good0);
      assert.equal(bad0.length, good0.length);
      assert.equal([...bad0].filter((b, i) => b !== good0[i]).length, 1, "one byte flipped");
      assert.ok(good0.equals(standardBlock0("c", "300 0 100644 0 1 300", "xmodem", 3)), "resend is clean");
      s.receive(Uint8Array.of(ACK));
      s.receive(Uint8Array.of(C));
      const [bad2] = s.receive(Uint8Array.of(ACK));
      const [good2] = s.receive(Uint8Array.of(NAK));
      assert.ok(good2.equals(block(2, randomBytes(300, 1).subarray(128, 256), "xmodem")));
      assert.notDeepEqual(bad2, good2);
    });

    it("an empty file: EOT right after the C, resent when the receiver repeats its C (the EOT was lost)", () => {
      const s = senderFor([{ name: "e", data: Buffer.alloc(0) }]);
      s.receive(Uint8Array.of(C));
      assert.deepEqual(s.receive(Uint8Array.of(ACK, C)), [Buffer.from([EOT])]);
      assert.deepEqual(s.receive(Uint8Array.of(C)), [Buffer.from([EOT])]);
      assert.deepEqual(s.receive(Uint8Array.of(NAK)), [Buffer.from([EOT])]);
      assert.equal(s.stats.retransmissions, 1, "the NAK-then-ACK repeat is not a retransmission");
    });

    it("sends an empty batch as just the end block", () => {
      const s = senderFor([]);
      assert.deepEqual(s.receive(Uint8Array.of(C)), [endBlock0()]);
      s.receive(Uint8Array.of(ACK));
      assert.equal(s.done, true);
    });
  });

  // =======================================================================================================

  describe("sender ↔ receiver loopback", () => {
    const sizes = [0, 1, 127, 128, 129, 1023, 1024, 1025];
    const batch = sizes.map((size, i) => ({ name: `file-${size}.bin`, data: randomBytes(size, i + 100) }));

    for (const dialect of ["seed", "standard"] as const) {
      for (const crc of ["arc", "xmodem"] as const) {
        for (const blocks of ["soh", "stx", "auto"] as const) {
          for (const mode of ["C", "G"] as const) {
            it(`${dialect}, CRC-16/${crc.toUpperCase()}, ${blocks}, ${mode} mode: sizes ${sizes.join(", ")} as one batch`, () => {
              for (const [rxCrc, chunker] of [
                ["auto", wholeFrames],
                [crc, fixedChunks(20)],
                ["auto", fixedChunks(7)],
              ] as const) {
                const result = loopback(
                  senderFor(batch, { dialect, crc, blocks }),
                  new YmodemReceiver({ ...defaults, crc: rxCrc, mode }),
                  { chunker },
                );
                assertSameFiles(result, batch);
                assert.equal(result.stalls, 0, "no timer needed");
                assert.equal(result.sender.state, "done");
                const starts = only(result.events, "file-start");
                assert.ok(starts.every((s) => s.dialect === dialect && s.crc === crc && s.size !== null));
                for (const f of result.files) {
                  assert.equal(f.crc, crc);
                  assert.equal(f.retransmissions, 0);
                  if (blocks === "soh" && f.size > 0) assert.equal(f.blockSize, 128);
                  if (blocks === "stx" && f.size > 0) assert.equal(f.blockSize, 1024);
                }
                if (blocks === "auto") assert.equal(result.files.find((f) => f.size === 1025)?.blockSize, "mixed");
              }
            });
          }
        }
      }
    }

    it("keeps a file ending in zeros and one ending in 0x1A whole, in both dialects", () => {
      const files = [
        { name: "zeros.bin", data: Buffer.concat([randomBytes(200, 1), Buffer.alloc(100)]) },
        { name: "subs.txt", data: Buffer.concat([Buffer.from("text"), Buffer.alloc(130, 0x1a)]) },
        { name: "only-zero.bin", data: Buffer.alloc(128) },
      ];
      for (const dialect of ["seed", "standard"] as const) {
        assertSameFiles(loopback(senderFor(files, { dialect }), new YmodemReceiver(defaults)), files);
      }
    });

    it("recovers corrupted blocks (block 0 and data) in C mode and counts the retransmissions", () => {
      const files = [{ name: "c.bin", data: randomBytes(5000, 5) }];
      for (const dialect of ["seed", "standard"] as const) {
        const sender = senderFor(files, { dialect, corruptBlocks: [0, 1, 3] });
        const result = loopback(sender, new YmodemReceiver({ ...defaults, mode: "C" }), { chunker: fixedChunks(20) });
        assertSameFiles(result, files);
        assert.equal(result.files[0].retransmissions, 2, "blocks 1 and 3");
        assert.equal(sender.stats.retransmissions, 3);
      }
    });

    it("a corrupted block in G mode is fatal, and the sender stops on the CAN CAN", () => {
      const sender = senderFor([{ name: "g.bin", data: randomBytes(5000, 5) }], { corruptBlocks: [2] });
      const result = loopback(sender, new YmodemReceiver({ ...defaults, mode: "G" }), { chunker: fixedChunks(100) });
      assert.equal(result.error?.code, "bad-block");
      assert.equal(result.error?.bytesReceived, 1024);
      assert.equal(sender.state, "aborted");
    });

    it("a lost ACK makes the sender resend; the duplicate is ACKed and not written twice", () => {
      const files = [{ name: "lost-ack.bin", data: randomBytes(1000, 8) }];
      for (const stall of ["receiver-first", "sender-first"] as const) {
        let dropped = false;
        const result = loopback(senderFor(files, { dialect: "seed", blocks: "soh" }), new YmodemReceiver(defaults), {
          stall,
          // writes: C, ACK C (block 0), ACK (block 1), ACK (block 2) ← lost
          dropReply: (bytes, index) => {
            if (index === 3 && bytes[0] === ACK) return (dropped = true);
            return false;
          },
        });
        assert.ok(dropped);
        assertSameFiles(result, files);
        assert.equal(result.files[0].blocks, 8);
        assert.equal(result.files[0].retransmissions, stall === "sender-first" ? 1 : 2, "duplicate (+ the NAK that asked for it)");
        assert.ok(result.stalls >= 1);
      }
    });

    it("a lost C after block 0 is repeated by the receiver's timer", () => {
      const files = [{ name: "c.bin", data: randomBytes(300, 8) }];
      const result = loopback(senderFor(files), new YmodemReceiver(defaults), {
        dropReply: (_bytes, index) => index === 1, // ACK C for block 0
      });
      assertSameFiles(result, files);
    });

    it("refuses a file above maxBytes before any data, in both dialects; the sender stops", () => {
      for (const dialect of ["seed", "standard"] as const) {
        const sender = senderFor([{ name: "big.bin", data: randomBytes(70_000, 1) }], { dialect });
        const receiver = new YmodemReceiver({ ...defaults, maxBytes: 65_536 });
        const result = loopback(sender, receiver);
        assert.equal(result.error?.code, "too-large");
        assert.match(result.error?.message ?? "", /announced size 70000 exceeds maxBytes 65536/);
        assert.equal(only(result.events, "progress").length, 0);
        assert.equal(receiver.stats.peakBufferBytes, 0);
        assert.equal(sender.state, "aborted");
        assert.equal(sender.stats.blocksSent, 0);
      }
    });

    it("CAN CAN from the receiver mid-file stops the sender", () => {
      const sender = senderFor([{ name: "a.bin", data: randomBytes(10_000, 1) }], { blocks: "soh" });
      const result = loopback(sender, new YmodemReceiver(defaults), {
        interfere: (step, _s, r) => (step === 10 && !r.finished ? r.cancel() : undefined),
      });
      assert.equal(result.error?.code, "cancelled");
      assert.ok(result.error.bytesReceived > 0);
      assert.equal(sender.state, "aborted");
    });

    it("CAN CAN from the sender mid-file stops the receiver", () => {
      const sender = senderFor([{ name: "a.bin", data: randomBytes(10_000, 1) }], { blocks: "soh" });
      const result = loopback(sender, new YmodemReceiver(defaults), {
        chunker: fixedChunks(7),
        interfere: (step, s) => (step === 10 ? s.cancel() : undefined),
      });
      assert.equal(result.error?.code, "cancelled-by-sender");
      assert.equal(result.error.fileName, "a.bin");
      assert.ok(result.error.bytesReceived > 0);
    });

    it("seed sender hangs up after its last file: the disconnect ends the session", () => {
      const files = [{ name: "a", data: randomBytes(10, 1) }];
      const result = loopback(senderFor(files, { dialect: "seed" }), new YmodemReceiver(defaults));
      assertSameFiles(result, files);
      assert.equal(result.stalls, 0);
    });

    it("works when the receiver asks for G but the sender does not stream: timeouts, then an error", () => {
      const result = loopback(senderFor([{ name: "a", data: randomBytes(10, 1) }], { streaming: false }), new YmodemReceiver({ ...defaults, mode: "G" }));
      assert.equal(result.error?.code, "retries");
    });
  });

  // =======================================================================================================

  describe("properties", () => {
    const fileArb = (maxLength: number) =>
      fc.record({
        name: fc.stringMatching(/^[A-Za-z0-9_.-]{1,24}$/),
        body: fc.uint8Array({ maxLength }),
        // Tails that a careless receiver would strip.
        tail: fc.constantFrom(new Uint8Array(0), Uint8Array.of(0), Uint8Array.of(0x1a, 0x1a), Uint8Array.of(EOT), Uint8Array.of(CAN, CAN)),
      });

    const settingsArb = fc.record({
      dialect: fc.constantFrom("seed" as const, "standard" as const),
      crc: fc.constantFrom("arc" as const, "xmodem" as const),
      blocks: fc.constantFrom("soh" as const, "stx" as const, "auto" as const),
      mode: fc.constantFrom("C" as const, "G" as const),
      autoCrc: fc.boolean(),
      cuts: fc.array(fc.integer({ min: 1, max: 300 }), { minLength: 1, maxLength: 20 }),
      burst: fc.integer({ min: 1, max: 40 }),
    });

    function roundTrip(
      files: YmodemSenderFile[],
      s: { dialect: "seed" | "standard"; crc: CrcKind; blocks: "soh" | "stx" | "auto"; mode: "C" | "G"; autoCrc: boolean; cuts: number[]; burst: number },
      corruptBlocks: number[] = [],
    ): void {
      const sender = senderFor(files, { dialect: s.dialect, crc: s.crc, blocks: s.blocks, corruptBlocks });
      const receiver = new YmodemReceiver({ crc: s.autoCrc ? "auto" : s.crc, mode: s.mode, maxBytes: 1 << 20, retries: 5 });
      const result = loopback(sender, receiver, { chunker: cyclingChunks(s.cuts), burst: s.burst });
      assertSameFiles(result, files);
    }

    it("random files, random chunking (merging and splitting frames): byte-identical (1000 runs)", () => {
      fc.assert(
        fc.property(fc.array(fileArb(1500), { minLength: 1, maxLength: 3 }), settingsArb, (raw, settings) => {
          const files = raw.map((f, i) => ({ name: `${i}-${f.name}`, data: Buffer.concat([f.body, f.tail]) }));
          roundTrip(files, settings);
        }),
        { numRuns: 1000 },
      );
    });

    it("random ~100 KB files: byte-identical (a few runs)", () => {
      fc.assert(
        fc.property(fc.integer({ min: 90_000, max: 110_000 }), fc.nat(), settingsArb, (size, seed, settings) => {
          roundTrip([{ name: "big.bin", data: randomBytes(size, seed + 1) }], settings);
        }),
        { numRuns: 6 },
      );
    });

    it("random corrupted data blocks are recovered in C mode (300 runs)", () => {
      fc.assert(
        fc.property(
          fileArb(4000),
          settingsArb,
          fc.uniqueArray(fc.integer({ min: 1, max: 40 }), { maxLength: 5 }),
          (f, settings, corrupt) => {
            roundTrip([{ name: f.name, data: Buffer.concat([f.body, f.tail]) }], { ...settings, mode: "C" }, corrupt);
          },
        ),
        { numRuns: 300 },
      );
    });

    // Random input built from protocol-shaped pieces, so it reaches deep states, plus raw noise. A frame's
    // number is often "next": resolved at replay from a running count (reset by EOT), so that plausible
    // sessions (block 0, 1, 2, …, EOT) come up often, with damage, repeats and jumps mixed in.
    type Piece =
      | { kind: "bytes"; bytes: Uint8Array }
      | { kind: "frame"; seq: number | "next" | "repeat"; stx: boolean; crc: CrcKind | "session"; payload: Uint8Array; damage: string }
      | { kind: "timeout" | "disconnect" | "cancel" };
    const headerArb = fc.oneof(
      fc.tuple(fc.stringMatching(/^[a-z]{1,8}$/), fc.integer({ min: 0, max: 6000 })).map(([n, size]) => Buffer.from(`${n} ${size}`)),
      fc
        .tuple(fc.stringMatching(/^[a-z]{1,8}$/), fc.oneof(fc.integer({ min: 0, max: 6000 }).map(String), fc.constant(""), fc.constant("99999999999999999999")))
        .map(([n, size]) => Buffer.from(`${n}\0${size} 17 644`)),
    );
    const pieceArb: fc.Arbitrary<Piece> = fc.oneof(
      { weight: 2, arbitrary: fc.uint8Array({ maxLength: 40 }).map((bytes): Piece => ({ kind: "bytes", bytes })) },
      {
        weight: 8,
        arbitrary: fc.record({
          kind: fc.constant("frame" as const),
          seq: fc.oneof(
            { weight: 6, arbitrary: fc.constant("next" as const) },
            { weight: 1, arbitrary: fc.constant("repeat" as const) },
            { weight: 1, arbitrary: fc.integer({ min: 0, max: 255 }) },
          ),
          stx: fc.boolean(),
          crc: fc.constantFrom("session" as const, "session" as const, "session" as const, "arc" as const, "xmodem" as const),
          payload: fc.oneof(headerArb, fc.uint8Array({ maxLength: 128 }), fc.constant(new Uint8Array(0))),
          damage: fc.constantFrom("none", "none", "none", "none", "crc", "complement", "truncate"),
        }),
      },
      { weight: 2, arbitrary: fc.constantFrom(Uint8Array.of(EOT), Uint8Array.of(EOT, EOT), Uint8Array.of(CAN), Uint8Array.of(CAN, CAN)).map((bytes): Piece => ({ kind: "bytes", bytes })) },
      { weight: 1, arbitrary: fc.constantFrom<Piece>({ kind: "timeout" }, { kind: "disconnect" }, { kind: "cancel" }) },
    );

    /** Turns a piece into bytes, tracking the block count so "next" and "repeat" mean something. */
    function render(piece: Piece, count: { next: number }, sessionCrc: CrcKind): Uint8Array {
      if (piece.kind === "bytes") {
        if (piece.bytes.includes(EOT) && piece.bytes.length <= 2) count.next = 0;
        return piece.bytes;
      }
      if (piece.kind !== "frame") return new Uint8Array(0);
      const seq = piece.seq === "next" ? count.next++ : piece.seq === "repeat" ? Math.max(0, count.next - 1) : piece.seq;
      const data = Buffer.alloc(piece.stx ? 1024 : 128, seq === 0 ? 0 : 0x1a);
      Buffer.from(piece.payload).copy(data);
      const crc = piece.crc === "session" ? sessionCrc : piece.crc;
      const frame = block(seq, data, crc, {
        complement: piece.damage === "complement" ? seq & 0xff : undefined,
        crcValue: piece.damage === "crc" ? (crcOf(crc, data) ^ 0x0101) & 0xffff : undefined,
      });
      return piece.damage === "truncate" ? frame.subarray(0, frame.length >> 1) : frame;
    }

    it("random input never throws, only reports YmodemErrors, and never allocates beyond maxBytes + 1024 (10,000 runs)", () => {
      // What the runs reached, to show the input gets past block 0 and not just into the garbage path.
      const reached = new Map<string, number>();
      const tally = (key: string): void => void reached.set(key, (reached.get(key) ?? 0) + 1);
      fc.assert(
        fc.property(
          fc.array(pieceArb, { maxLength: 30 }),
          fc.record({
            maxBytes: fc.integer({ min: 0, max: 5000 }),
            retries: fc.integer({ min: 0, max: 4 }),
            crc: fc.constantFrom("auto" as const, "arc" as const, "xmodem" as const),
            mode: fc.constantFrom("C" as const, "G" as const),
          }),
          fc.array(fc.integer({ min: 1, max: 200 }), { minLength: 1, maxLength: 8 }),
          fc.constantFrom("arc" as const, "xmodem" as const),
          (pieces, opts, cuts, sessionCrc) => {
            const r = new YmodemReceiver(opts);
            const events: YmodemEvent[] = [...r.start()];
            const chunker = cyclingChunks(cuts);
            const count = { next: 0 };
            for (const piece of pieces) {
              let out: YmodemEvent[] = [];
              if (piece.kind === "bytes" || piece.kind === "frame") {
                for (const chunk of chunker([Buffer.from(render(piece, count, sessionCrc))])) out.push(...r.feed(chunk));
              } else if (piece.kind === "timeout") out = r.timeout();
              else if (piece.kind === "disconnect") out = r.disconnected();
              else out = r.cancel();
              if (events.some((e) => e.type === "error" || e.type === "end")) assert.deepEqual(out, [], "silent once finished");
              events.push(...out);
              assert.ok(r.stats.peakBufferBytes <= opts.maxBytes + 1024, `allocated ${r.stats.peakBufferBytes}`);
            }
            const terminal = events.filter((e) => e.type === "error" || e.type === "end");
            assert.ok(terminal.length <= 1);
            assert.equal(r.finished, terminal.length === 1);
            for (const e of events) {
              if (e.type === "error") {
                assert.ok(e.error instanceof YmodemError);
                assert.ok(e.error.bytesReceived >= 0 && e.error.bytesReceived <= opts.maxBytes + 1024);
              }
              if (e.type === "file") assert.ok(e.size <= opts.maxBytes && e.data.length === e.size);
              if (e.type === "send") assert.ok(e.bytes.length >= 1 && e.bytes.length <= 2);
              tally(e.type === "error" ? `error:${e.error.code}` : e.type);
            }
          },
        ),
        { numRuns: 10_000 },
      );
      for (const key of ["file-start", "progress", "file", "end", "error:sequence", "error:too-large", "error:size-mismatch", "error:cancelled-by-sender", "error:retries"]) {
        assert.ok((reached.get(key) ?? 0) > 0, `never reached ${key}: ${JSON.stringify([...reached])}`);
      }
    });
  });
});
