/**
 * Stream splitting (ble-gatt-in `split`) and reply ends (ble-gatt-request), issue 13: delimiters written as in
 * Node-RED's serial node, messages that do not depend on where notification boundaries fall, the maxBytes bound, the
 * quiet timer on the manual clock, and a reply that ends once and ignores what comes after.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { GattValueError } from "../../src/protocol/gatt-value";
import { DEFAULT_MAX_BYTES, ReplyCollector, StreamSplitter, parseDelimiter, type ReplyEnd, type SplitOptions } from "../../src/protocol/stream-split";
import { ManualClock } from "../support/manual-clock";

const text = (s: string): Buffer => Buffer.from(s, "latin1");
const show = (chunks: Buffer[]): string[] => chunks.map((c) => c.toString("latin1"));

/** A splitter on a manual clock, with what it emitted. */
function splitter(options: SplitOptions): { s: StreamSplitter; out: Buffer[]; clock: ManualClock } {
  const clock = new ManualClock();
  const out: Buffer[] = [];
  return { s: new StreamSplitter(options, clock, (c) => out.push(c)), out, clock };
}

/** A collector on a manual clock, with the replies it gave (at most one is correct). */
function collector(end: ReplyEnd): { r: ReplyCollector; replies: Buffer[]; clock: ManualClock } {
  const clock = new ManualClock();
  const replies: Buffer[] = [];
  return { r: new ReplyCollector(end, clock, (b) => replies.push(b)), replies, clock };
}

function badDelimiter(input: string, params: Record<string, string | number>): void {
  assert.throws(
    () => parseDelimiter(input),
    (e: unknown) => e instanceof GattValueError && e.code === "bad-delimiter" && JSON.stringify(e.params) === JSON.stringify(params),
  );
}

/** Cuts `bytes` at the given positions (sorted, deduplicated, inside the range). */
function cut(bytes: Uint8Array, at: number[]): Buffer[] {
  const points = [...new Set(at.map((p) => p % (bytes.length + 1)))].sort((a, b) => a - b);
  const pieces: Buffer[] = [];
  let from = 0;
  for (const p of [...points, bytes.length]) {
    pieces.push(Buffer.from(bytes.subarray(from, p)));
    from = p;
  }
  return pieces;
}

/**
 * The rule as the module documents it, one byte at a time: a message ends when the pending bytes end with the
 * delimiter (an empty one never matches), or when they reach maxBytes. An independent model for the property tests.
 */
function splitModel(stream: Uint8Array, delimiter: Buffer, maxBytes: number, keepDelimiter: boolean): Buffer[] {
  const out: Buffer[] = [];
  let pending: number[] = [];
  for (const byte of stream) {
    pending.push(byte);
    const ends = delimiter.length > 0 && pending.length >= delimiter.length && Buffer.from(pending.slice(-delimiter.length)).equals(delimiter);
    if (ends) {
      out.push(Buffer.from(keepDelimiter ? pending : pending.slice(0, pending.length - delimiter.length)));
      pending = [];
    } else if (pending.length >= maxBytes) {
      out.push(Buffer.from(pending));
      pending = [];
    }
  }
  return out;
}

describe("stream split and reply end (issue 13)", () => {
  describe("parseDelimiter (as in Node-RED's serial node)", () => {
    it("escapes \\n \\r \\t \\0 \\\\ and \\xHH; other text as UTF-8", () => {
      assert.deepEqual(parseDelimiter("\\n"), text("\n"));
      assert.deepEqual(parseDelimiter("\\r\\n"), text("\r\n"));
      assert.deepEqual(parseDelimiter("\\t"), text("\t"));
      assert.deepEqual(parseDelimiter("\\x1b"), Buffer.of(0x1b));
      assert.deepEqual(parseDelimiter("\\x1B[0m"), Buffer.from("\x1b[0m"));
      assert.deepEqual(parseDelimiter("\\0"), Buffer.of(0));
      assert.deepEqual(parseDelimiter("a\\\\b"), text("a\\b"));
      assert.deepEqual(parseDelimiter("END"), text("END"));
      assert.deepEqual(parseDelimiter("°"), Buffer.from("°", "utf8"));
    });

    it("a text starting with 0x is bytes in hex: 0x0d0a, 0x0D 0A, 0x0d:0a", () => {
      for (const t of ["0x0d0a", "0X0D0A", "0x0d 0a", "0x0d:0a"]) assert.deepEqual(parseDelimiter(t), text("\r\n"), t);
      assert.deepEqual(parseDelimiter("0x03"), Buffer.of(3));
    });

    it("refuses an empty delimiter, bad hex and unknown or cut-short escapes, naming the problem and position", () => {
      badDelimiter("", { problem: "empty" });
      badDelimiter("0x", { problem: "hex" });
      badDelimiter("0x0d0", { problem: "hex" });
      badDelimiter("0xzz", { problem: "hex" });
      badDelimiter("ab\\q", { problem: "escape", position: 2 });
      badDelimiter("\\x4", { problem: "escape", position: 0 });
      badDelimiter("\\x4g", { problem: "escape", position: 0 });
      badDelimiter("a\\", { problem: "escape", position: 1 });
    });
  });

  describe("StreamSplitter", () => {
    it("none: every value is one message, as received (an empty value too)", () => {
      const { s, out } = splitter({ mode: "none" });
      s.push(text("ab"));
      s.push(Buffer.alloc(0));
      s.push(text("c\n"));
      assert.deepEqual(show(out), ["ab", "", "c\n"]);
    });

    it("delimiter: a line split over three notifications, and two lines in one notification", () => {
      const { s, out } = splitter({ mode: "delimiter", delimiter: text("\n") });
      s.push(text("tem"));
      s.push(text("p=2"));
      assert.deepEqual(out, []);
      s.push(text("1.5\nhum=40\nrest"));
      assert.deepEqual(show(out), ["temp=21.5", "hum=40"]);
    });

    it("delimiter: a two-byte delimiter split across notifications is still found; keepDelimiter keeps it", () => {
      const { s, out } = splitter({ mode: "delimiter", delimiter: text("\r\n"), keepDelimiter: true });
      s.push(text("OK\r"));
      assert.deepEqual(out, []);
      s.push(text("\nERR\r\n"));
      assert.deepEqual(show(out), ["OK\r\n", "ERR\r\n"]);
    });

    it("delimiter: a lone \\r without \\n is data; consecutive delimiters give empty messages", () => {
      const { s, out } = splitter({ mode: "delimiter", delimiter: text("\r\n") });
      s.push(text("a\rb\r\n\r\nc\r\n"));
      assert.deepEqual(show(out), ["a\rb", "", "c"]);
    });

    it("delimiter: maxBytes reached without a delimiter emits the pending bytes as one message, then goes on", () => {
      const { s, out } = splitter({ mode: "delimiter", delimiter: text("\n"), maxBytes: 4 });
      s.push(text("abcdef"));
      assert.deepEqual(show(out), ["abcd"]);
      s.push(text("\nxy\n"));
      assert.deepEqual(show(out), ["abcd", "ef", "xy"]);
    });

    it("delimiter: a delimiter ending exactly at maxBytes still ends the message (with or without keepDelimiter)", () => {
      const a = splitter({ mode: "delimiter", delimiter: text("\r\n"), maxBytes: 4 });
      a.s.push(text("ab\r\ncd"));
      assert.deepEqual(show(a.out), ["ab"]);
      const b = splitter({ mode: "delimiter", delimiter: text("\r\n"), maxBytes: 4, keepDelimiter: true });
      b.s.push(text("ab\r\ncd"));
      assert.deepEqual(show(b.out), ["ab\r\n"]);
    });

    it("delimiter: the default bound is 65536 bytes: a 200 kB stream without delimiter comes out in 64 KiB messages, nothing lost", () => {
      assert.equal(DEFAULT_MAX_BYTES, 65536);
      const { s, out } = splitter({ mode: "delimiter", delimiter: text("\n") });
      const data = Buffer.alloc(200_000, 0x41);
      for (let i = 0; i < data.length; i += 244) s.push(data.subarray(i, i + 244));
      assert.deepEqual(out.map((c) => c.length), [65536, 65536, 65536]);
      s.push(text("\n"));
      assert.deepEqual(out.map((c) => c.length), [65536, 65536, 65536, 200_000 - 3 * 65536]);
    });

    it("quiet: a message after quietMs without data; each value restarts the wait", () => {
      const { s, out, clock } = splitter({ mode: "quiet", quietMs: 50 });
      s.push(text("ab"));
      clock.advance(40);
      s.push(text("cd"));
      clock.advance(40);
      assert.deepEqual(out, []);
      clock.advance(10);
      assert.deepEqual(show(out), ["abcd"]);
      clock.advance(1000);
      assert.deepEqual(show(out), ["abcd"]);
      s.push(text("e"));
      clock.advance(50);
      assert.deepEqual(show(out), ["abcd", "e"]);
      assert.equal(clock.pending, 0);
    });

    it("quiet: maxBytes emits at once; the rest waits for the quiet time", () => {
      const { s, out, clock } = splitter({ mode: "quiet", quietMs: 50, maxBytes: 3 });
      s.push(text("abcdefg"));
      assert.deepEqual(show(out), ["abc", "def"]);
      clock.advance(50);
      assert.deepEqual(show(out), ["abc", "def", "g"]);
    });

    it("close: cancels the quiet timer, drops pending bytes and ignores later values", () => {
      const { s, out, clock } = splitter({ mode: "quiet", quietMs: 50 });
      s.push(text("ab"));
      s.close();
      assert.equal(clock.pending, 0);
      clock.advance(100);
      s.push(text("cd"));
      clock.advance(100);
      assert.deepEqual(out, []);
      const d = splitter({ mode: "delimiter", delimiter: text("\n") });
      d.s.close();
      d.s.push(text("x\n"));
      assert.deepEqual(d.out, []);
    });

    it("refuses options a mode needs but lacks, naming the option", () => {
      const bad = (o: SplitOptions, option: string): void =>
        assert.throws(() => splitter(o), (e: unknown) => e instanceof GattValueError && e.code === "bad-split-option" && e.params.option === option);
      bad({ mode: "delimiter" }, "delimiter");
      bad({ mode: "delimiter", delimiter: Buffer.alloc(0) }, "delimiter");
      bad({ mode: "quiet" }, "quietMs");
      bad({ mode: "quiet", quietMs: 0 }, "quietMs");
      bad({ mode: "none", maxBytes: 0 }, "maxBytes");
      bad({ mode: "none", maxBytes: 1.5 }, "maxBytes");
      bad({ mode: "lines" as SplitOptions["mode"] }, "mode");
    });

    it("emitted messages are copies: changing one does not change what comes next", () => {
      const { s, out } = splitter({ mode: "delimiter", delimiter: text("\n") });
      s.push(text("ab\ncd"));
      out[0].fill(0x7a);
      s.push(text("\n"));
      assert.deepEqual(show(out), ["zz", "cd"]);
    });

    it("property: any cut of a stream into notifications gives the same messages as one push (delimiter, any maxBytes, keepDelimiter)", () => {
      fc.assert(
        fc.property(
          fc.uint8Array({ maxLength: 120 }).map((b) => b.map((x) => x % 4)), // a small alphabet, so delimiters occur often
          fc.uint8Array({ minLength: 1, maxLength: 3 }).map((b) => Buffer.from(b.map((x) => x % 4))),
          fc.array(fc.nat(), { maxLength: 20 }),
          fc.integer({ min: 1, max: 40 }),
          fc.boolean(),
          (stream, delimiter, cuts, maxBytes, keepDelimiter) => {
            const options: SplitOptions = { mode: "delimiter", delimiter, maxBytes, keepDelimiter };
            const whole = splitter(options);
            whole.s.push(Buffer.from(stream));
            const pieces = splitter(options);
            for (const piece of cut(stream, cuts)) pieces.s.push(piece);
            assert.deepEqual(pieces.out, whole.out);
            assert.deepEqual(whole.out, splitModel(stream, delimiter, maxBytes, keepDelimiter));
            // Nothing lost, nothing invented: the messages and what is still pending make up the stream.
            const emitted = whole.out.reduce((n, c) => n + c.length, 0);
            assert.ok(emitted <= stream.length);
            if (keepDelimiter) assert.deepEqual(Buffer.concat(whole.out), Buffer.from(stream.subarray(0, emitted)));
            for (const c of whole.out) assert.ok(c.length <= maxBytes);
          },
        ),
        { numRuns: 3000 },
      );
    });

    it("property: any cut gives the same messages in quiet mode when the notifications arrive together", () => {
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 100 }), fc.array(fc.nat(), { maxLength: 20 }), fc.integer({ min: 1, max: 30 }), (stream, cuts, maxBytes) => {
          const whole = splitter({ mode: "quiet", quietMs: 20, maxBytes });
          whole.s.push(Buffer.from(stream));
          whole.clock.advance(20);
          const pieces = splitter({ mode: "quiet", quietMs: 20, maxBytes });
          for (const piece of cut(stream, cuts)) pieces.s.push(piece);
          pieces.clock.advance(20);
          assert.deepEqual(pieces.out, whole.out);
          assert.deepEqual(Buffer.concat(whole.out), Buffer.from(stream));
        }),
      );
    });
  });

  describe("ReplyCollector", () => {
    it("none set: the first value is the reply, whole; later values are discarded", () => {
      const { r, replies } = collector({});
      r.push(text("ACME,X1"));
      r.push(text("more"));
      assert.deepEqual(show(replies), ["ACME,X1"]);
    });

    it("0 and an empty delimiter count as not set", () => {
      const { r, replies } = collector({ length: 0, quietMs: 0, delimiter: Buffer.alloc(0) });
      r.push(text("x"));
      assert.deepEqual(show(replies), ["x"]);
    });

    it("delimiter: a reply over three notifications ends at the delimiter; bytes after it are discarded", () => {
      const { r, replies } = collector({ delimiter: text("\n") });
      r.push(text("ACME,"));
      r.push(text("X1,"));
      assert.deepEqual(replies, []);
      r.push(text("1.0\nLATE"));
      r.push(text("more\n"));
      assert.deepEqual(show(replies), ["ACME,X1,1.0"]);
    });

    it("delimiter split across notifications, kept with keepDelimiter", () => {
      const { r, replies } = collector({ delimiter: text("\r\n"), keepDelimiter: true });
      r.push(text("OK\r"));
      r.push(text("\n"));
      assert.deepEqual(show(replies), ["OK\r\n"]);
    });

    it("length: exactly that many bytes, the rest discarded", () => {
      const { r, replies } = collector({ length: 5 });
      r.push(text("abc"));
      r.push(text("defg"));
      assert.deepEqual(show(replies), ["abcde"]);
    });

    it("delimiter and length: whichever comes first in the bytes", () => {
      const a = collector({ delimiter: text("\n"), length: 4 });
      a.r.push(text("abcdef\n"));
      assert.deepEqual(show(a.replies), ["abcd"]);
      const b = collector({ delimiter: text("\n"), length: 10 });
      b.r.push(text("ab\ncdef"));
      assert.deepEqual(show(b.replies), ["ab"]);
      const c = collector({ delimiter: text("\n"), length: 3, keepDelimiter: true });
      c.r.push(text("ab\ncd"));
      assert.deepEqual(show(c.replies), ["ab\n"]);
    });

    it("quiet: ends quietMs after the last value (the wait starts with the first value)", () => {
      const { r, replies, clock } = collector({ quietMs: 30 });
      clock.advance(100);
      assert.equal(clock.pending, 0);
      r.push(text("ab"));
      clock.advance(20);
      r.push(text("cd"));
      clock.advance(29);
      assert.deepEqual(replies, []);
      clock.advance(1);
      assert.deepEqual(show(replies), ["abcd"]);
      r.push(text("late"));
      clock.advance(100);
      assert.deepEqual(show(replies), ["abcd"]);
    });

    it("quiet and delimiter: the delimiter ends it early and cancels the timer", () => {
      const { r, replies, clock } = collector({ quietMs: 30, delimiter: text(">") });
      r.push(text("ab"));
      r.push(text("c>d"));
      assert.deepEqual(show(replies), ["abc"]);
      assert.equal(clock.pending, 0);
      clock.advance(100);
      assert.equal(replies.length, 1);
    });

    it("maxBytes bounds a reply whose delimiter never comes", () => {
      const { r, replies } = collector({ delimiter: text("\n"), maxBytes: 8 });
      r.push(text("0123456"));
      assert.deepEqual(replies, []);
      r.push(text("789"));
      assert.deepEqual(show(replies), ["01234567"]);
    });

    it("close: cancels the timer, never calls done, ignores later values", () => {
      const { r, replies, clock } = collector({ quietMs: 30 });
      r.push(text("ab"));
      r.close();
      assert.equal(clock.pending, 0);
      clock.advance(100);
      r.push(text("\n"));
      assert.deepEqual(replies, []);
    });

    it("refuses a negative or fractional length, a bad quietMs or maxBytes", () => {
      const bad = (end: ReplyEnd, option: string): void =>
        assert.throws(() => collector(end), (e: unknown) => e instanceof GattValueError && e.code === "bad-split-option" && e.params.option === option);
      bad({ length: -1 }, "length");
      bad({ length: 2.5 }, "length");
      bad({ quietMs: -5 }, "quietMs");
      bad({ quietMs: NaN }, "quietMs");
      bad({ maxBytes: 0 }, "maxBytes");
    });

    it("property: the reply does not depend on how it was cut into notifications, and done is called at most once", () => {
      fc.assert(
        fc.property(
          fc.uint8Array({ maxLength: 80 }).map((b) => b.map((x) => x % 4)),
          fc.option(fc.uint8Array({ minLength: 1, maxLength: 2 }).map((b) => Buffer.from(b.map((x) => x % 4))), { nil: undefined }),
          fc.integer({ min: 0, max: 30 }),
          fc.integer({ min: 1, max: 60 }),
          fc.array(fc.nat(), { maxLength: 15 }),
          fc.boolean(),
          (stream, delimiter, length, maxBytes, cuts, keepDelimiter) => {
            fc.pre(delimiter !== undefined || length > 0);
            const end: ReplyEnd = { delimiter, length, maxBytes, keepDelimiter };
            const whole = collector(end);
            whole.r.push(Buffer.from(stream));
            const pieces = collector(end);
            for (const piece of cut(stream, cuts)) pieces.r.push(piece);
            assert.ok(whole.replies.length <= 1 && pieces.replies.length <= 1);
            assert.deepEqual(pieces.replies, whole.replies);
            // The model: the first message the splitter would cut with maxBytes = min(length, maxBytes).
            const first = splitModel(stream, delimiter ?? Buffer.alloc(0), Math.min(maxBytes, length || Infinity), keepDelimiter)[0];
            assert.deepEqual(whole.replies, first === undefined ? [] : [first]);
            if (whole.replies.length === 1) {
              const reply = whole.replies[0];
              assert.ok(reply.length <= Math.min(maxBytes, length || Infinity));
              assert.deepEqual(reply, Buffer.from(stream.subarray(0, reply.length)));
            }
          },
        ),
        { numRuns: 3000 },
      );
    });
  });
});
