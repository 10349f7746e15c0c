/**
 * The YMODEM receiver's bounds and its session clock (YmodemSession), with a deterministic clock: a download
 * ends within blockTimeout × (retries + 1) of its last progress whatever the sender does, repeated blocks count
 * as failures, maxBytes bounds a whole batch and maxFiles its length. The property tests drive the session with
 * random interleavings of an honest sender (the pure YmodemSender) and hostile acts.
 */
import { strict as assert } from "node:assert";
import fc from "fast-check";
import { crc16Arc } from "../../src/protocol/crc16";
import { YmodemReceiver, type YmodemEvent } from "../../src/protocol/ymodem";
import { CAN, EOT } from "../../src/protocol/ymodem-block";
import { YmodemSender, type YmodemSenderFile } from "../../src/protocol/ymodem-sender";
import { YmodemSession } from "../../src/protocol/ymodem-session";

const SOH = 0x01;
const ACK = 0x06;
const NAK = 0x15;
const C = 0x43;

/** A seed-dialect frame built by hand (CRC-16/ARC), independent of the sender. */
function seedFrame(seq: number, payload: string | Buffer): Buffer {
  const data = Buffer.alloc(128);
  (typeof payload === "string" ? Buffer.from(payload, "latin1") : payload).copy(data);
  const crc = crc16Arc(data);
  return Buffer.concat([Buffer.of(SOH, seq & 0xff, 0xff - (seq & 0xff)), data, Buffer.of(crc >> 8, crc & 0xff)]);
}

function errorOf(events: YmodemEvent[]): string | null {
  const e = events.find((x) => x.type === "error");
  return e?.type === "error" ? e.error.message : null;
}

const sent = (events: YmodemEvent[]): number[] => events.flatMap((e) => (e.type === "send" ? [...e.bytes] : []));

describe("YMODEM receiver bounds", () => {
  it("a block repeated after every ACK fails after `retries` repeats (each still ACKed)", () => {
    const r = new YmodemReceiver({ crc: "arc", mode: "C", maxBytes: 1 << 20, retries: 2 });
    r.start();
    r.feed(seedFrame(0, "a.bin 300"));
    r.feed(seedFrame(1, "x".repeat(128)));
    assert.deepEqual(sent(r.feed(seedFrame(1, "x".repeat(128)))), [ACK], "a lost ACK: ACKed again");
    assert.deepEqual(sent(r.feed(seedFrame(1, "x".repeat(128)))), [ACK]);
    const last = r.feed(seedFrame(1, "x".repeat(128)));
    assert.match(errorOf(last) ?? "", /block 1 repeated 3 times in a row; gave up after 2 retries \(file "a\.bin", 128 bytes received\)/);
    assert.deepEqual(sent(last), [CAN, CAN]);
  });

  it("a repeated block 0 counts too; a new block resets the count", () => {
    const r = new YmodemReceiver({ crc: "arc", mode: "C", maxBytes: 1 << 20, retries: 1 });
    r.start();
    r.feed(seedFrame(0, "a.bin 300"));
    assert.deepEqual(sent(r.feed(seedFrame(0, "a.bin 300"))), [ACK, C], "ACK and C again");
    r.feed(seedFrame(1, "x".repeat(128)));
    assert.deepEqual(sent(r.feed(seedFrame(1, "x".repeat(128)))), [ACK], "one repeat after the new block is tolerated");
    r.feed(seedFrame(2, "y".repeat(128)));
    assert.equal(r.finished, false);
    const zero = new YmodemReceiver({ crc: "arc", mode: "C", maxBytes: 1 << 20, retries: 1 });
    zero.start();
    zero.feed(seedFrame(0, "a.bin 300"));
    zero.feed(seedFrame(0, "a.bin 300"));
    assert.match(errorOf(zero.feed(seedFrame(0, "a.bin 300"))) ?? "", /block 0 repeated 2 times in a row/);
  });

  it("maxBytes bounds all files of a batch together; maxFiles bounds their number", () => {
    const batch = (maxBytes: number, maxFiles?: number): { files: number; error: string | null } => {
      const r = new YmodemReceiver({ crc: "arc", mode: "C", maxBytes, retries: 3, maxFiles });
      r.start();
      let files = 0;
      for (let i = 0; i < 10; i++) {
        const events = [...r.feed(seedFrame(0, `f${i} 100`)), ...r.feed(seedFrame(1, "z".repeat(100))), ...r.feed(Buffer.of(EOT)), ...r.feed(Buffer.of(EOT))];
        files += events.filter((e) => e.type === "file").length;
        const error = errorOf(events);
        if (error !== null) return { files, error };
      }
      return { files, error: null };
    };
    assert.deepEqual(batch(250), { files: 2, error: 'YMODEM: announced size 100 exceeds the 50 bytes left of maxBytes 250 (file "f2", 0 bytes received)' });
    assert.deepEqual(batch(1 << 20, 4), { files: 4, error: 'YMODEM: the batch has more than 4 files (maxFiles) (file "f4", 0 bytes received)' });
    assert.deepEqual(batch(1000), { files: 10, error: null }, "exactly maxBytes is fine");
    assert.throws(() => new YmodemReceiver({ crc: "arc", mode: "C", maxBytes: 1, retries: 1, maxFiles: 0 }), RangeError);
  });

  it("when every announced byte is in and the EOT never comes, the timeout says EOT is missing", () => {
    const r = new YmodemReceiver({ crc: "arc", mode: "C", maxBytes: 1 << 20, retries: 1 });
    r.start();
    r.feed(seedFrame(0, "a.bin 100"));
    r.feed(seedFrame(1, "z".repeat(100)));
    r.timeout();
    assert.match(errorOf(r.timeout()) ?? "", /timed out 2 times waiting for EOT: all 100 announced bytes arrived but EOT is missing/);
  });
});

describe("YmodemSession (deterministic clock)", () => {
  const options = { crc: "arc" as const, mode: "C" as const, maxBytes: 1 << 20, retries: 2, blockTimeout: 1000 };

  /** Runs the session's timer up to `to`, as the node's one timer would. */
  function runUntil(s: YmodemSession, to: number, out: YmodemEvent[]): void {
    for (let at = s.nextWakeAt; at !== null && at <= to; at = s.nextWakeAt) {
      out.push(...s.tick(at));
      assert.ok(s.finished || s.nextWakeAt !== at, "each wake-up moves the timer on");
    }
  }

  it("stray bytes every 400 ms after block 0 do not keep the download alive: it fails at blockTimeout × (retries + 1)", () => {
    const s = new YmodemSession(options);
    s.start(0);
    s.feed(seedFrame(0, "a.bin 1000"), 100);
    const events: YmodemEvent[] = [];
    let finishedAt: number | null = null;
    for (let t = 500; t <= 60_000 && !s.finished; t += 400) {
      for (let at = s.nextWakeAt; at !== null && at < t && !s.finished; at = s.nextWakeAt) {
        events.push(...s.tick(at));
        assert.ok(s.finished || s.nextWakeAt !== at, "each wake-up moves the timer on");
        if (s.finished) finishedAt = at;
      }
      if (s.finished) break;
      events.push(...s.feed(Buffer.of(0x00), t));
      if (s.finished) finishedAt = t;
    }
    assert.equal(finishedAt, 100 + 3000, "block 0 at 100 ms was the last progress");
    assert.match(errorOf(events) ?? "", /no progress for 3000 ms \(blockTimeout 1000 ms × \(retries 2 \+ 1\)\) \(file "a\.bin", 0 bytes received\)/);
  });

  it("a block in progress delays the retry but not the deadline; a new block moves the deadline", () => {
    const s = new YmodemSession(options);
    s.start(0);
    s.feed(seedFrame(0, "a.bin 1000"), 0);
    assert.equal(s.nextWakeAt, 1000, "retry first");
    s.feed(seedFrame(1, "x").subarray(0, 50), 900);
    assert.equal(s.nextWakeAt, 1900, "part of a block is a sign of life");
    s.feed(seedFrame(1, "x").subarray(50), 1500);
    assert.equal(s.lastProgress, 1500);
    assert.equal(s.nextWakeAt, 2500);
    assert.equal(s.progressDeadlineMs, 3000);
  });

  it("deadline after the last file of a batch is the end, not an error", () => {
    const s = new YmodemSession({ ...options, retries: 0 });
    s.start(0);
    s.feed(seedFrame(0, "a.bin 10"), 0);
    s.feed(seedFrame(1, "0123456789"), 10);
    s.feed(Buffer.of(EOT), 20);
    const last = s.feed(Buffer.of(EOT), 30);
    assert.ok(last.some((e) => e.type === "file"));
    const events: YmodemEvent[] = [];
    runUntil(s, 10_000, events);
    assert.deepEqual(
      events.map((e) => e.type),
      ["end"],
    );
  });
});

// ---------------------------------------------------------------------------------------------------------
// Property: random interleavings of an honest sender and hostile acts.

type Act =
  | { kind: "exchange"; chunk: number } // the receiver's answers reach the sender, and all it sends in reply arrives
  | { kind: "deliver"; chunk: number } // the next frame from the sender, in chunks of this size
  | { kind: "reply" } // the receiver's answers reach the sender
  | { kind: "drop-reply" } // ... or are lost
  | { kind: "duplicate" } // the last frame delivered, again
  | { kind: "corrupt"; at: number } // the next frame with one byte flipped
  | { kind: "stray"; byte: number } // a stray byte between frames
  | { kind: "eot" } // an EOT out of place (early, or late)
  | { kind: "sender-timeout" } // the sender's own timer
  | { kind: "wait"; ms: number }; // silence

const chunkSize = fc.constantFrom(20, 64, 244, 2000);
const exchange: fc.Arbitrary<Act> = fc.record({ kind: fc.constant("exchange" as const), chunk: chunkSize });
const hostile: fc.Arbitrary<Act> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant("deliver" as const), chunk: chunkSize }) },
  { weight: 4, arbitrary: fc.constant({ kind: "reply" as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: "drop-reply" as const }) },
  { weight: 2, arbitrary: fc.constant({ kind: "duplicate" as const }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("corrupt" as const), at: fc.nat() }) },
  // Not SOH/STX: a stray frame start would swallow the next frame, and CRC-16 only catches that with odds.
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("stray" as const), byte: fc.constantFrom(0x00, 0x20, 0x43, ACK, NAK, 0xff, CAN, EOT) }) },
  { weight: 1, arbitrary: fc.constant({ kind: "eot" as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: "sender-timeout" as const }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("wait" as const), ms: fc.integer({ min: 0, max: 5000 }) }) },
);
/** From a sender that misbehaves all the time to one that rarely does, so that whole batches also get through. */
const acts: fc.Arbitrary<Act[]> = fc
  .integer({ min: 1, max: 100 })
  .chain((honesty) => fc.array(fc.oneof({ weight: honesty, arbitrary: exchange }, { weight: 4, arbitrary: hostile }), { minLength: 20, maxLength: 400 }));

const fileArb = fc.record({ name: fc.stringMatching(/^[a-z]{1,8}\.bin$/), size: fc.integer({ min: 0, max: 1500 }), seed: fc.nat() });

function content(size: number, seed: number): Buffer {
  const out = Buffer.alloc(size);
  let x = seed | 1;
  for (let i = 0; i < size; i++) {
    x = (Math.imul(x, 1103515245) + 12345) | 0;
    out[i] = x >>> 24;
  }
  return out;
}

describe("YmodemSession against random senders (property)", () => {
  it("ends within blockTimeout × (retries + 1) of its last progress, delivers only whole announced files, never more than maxBytes / maxFiles", () => {
    fc.assert(
      fc.property(
        fc.record({
          files: fc.array(fileArb, { minLength: 1, maxLength: 3 }),
          dialect: fc.constantFrom("seed" as const, "standard" as const),
          blocks: fc.constantFrom("soh" as const, "stx" as const, "auto" as const),
          retries: fc.integer({ min: 0, max: 3 }),
          blockTimeout: fc.integer({ min: 100, max: 2000 }),
          maxBytes: fc.oneof(fc.integer({ min: 1, max: 3000 }), fc.constant(1 << 20)),
          maxFiles: fc.integer({ min: 1, max: 4 }),
          acts,
          // Simulated time each act takes; silence comes from "wait".
          step: fc.integer({ min: 0, max: 60 }),
        }),
        (c) => {
          const files: YmodemSenderFile[] = c.files.map((f, i) => ({ name: `${i}${f.name}`, data: content(f.size, f.seed) }));
          const sender = new YmodemSender({ files, dialect: c.dialect, crc: c.dialect === "seed" ? "arc" : "xmodem", blocks: c.blocks, streaming: false });
          const session = new YmodemSession({ crc: "auto", mode: "C", maxBytes: c.maxBytes, maxFiles: c.maxFiles, retries: c.retries, blockTimeout: c.blockTimeout });
          const deadline = session.progressDeadlineMs;
          let now = 0;
          let lastProgress = 0;
          const toSender: number[] = [];
          const toReceiver: Buffer[] = [];
          let lastDelivered: Buffer | null = null;
          const received: { name: string; data: Buffer }[] = [];
          let announced: number | null = null;
          let ended = false;

          const handle = (events: YmodemEvent[]): void => {
            for (const e of events) {
              assert.ok(!ended, "nothing after the end");
              if (e.type === "send") toSender.push(...e.bytes);
              else if (e.type === "file-start") {
                announced = e.size;
                lastProgress = now;
              } else if (e.type === "progress") lastProgress = now;
              else if (e.type === "file") {
                lastProgress = now;
                if (announced !== null) assert.equal(e.data.length, announced, "bytes out = bytes announced");
                received.push({ name: e.name, data: e.data });
              } else {
                assert.ok(now <= lastProgress + deadline, `ended at ${now}, ${now - lastProgress} ms after the last progress (deadline ${deadline})`);
                ended = true;
              }
            }
            if (!session.finished) assert.notEqual(session.nextWakeAt, null, "a running session always has a timer");
          };
          /** Simulated time passes: the session's timer fires at its due times. */
          const advance = (to: number): void => {
            for (let at = session.nextWakeAt; at !== null && at <= to && !session.finished; at = session.nextWakeAt) {
              assert.ok(at >= now, "the timer never goes back in time");
              now = at;
              handle(session.tick(at));
              assert.ok(session.finished || session.nextWakeAt !== at, "each wake-up moves the timer on");
            }
            now = Math.max(now, to);
            if (!session.finished) assert.ok(now < lastProgress + deadline, `still running ${now - lastProgress} ms after the last progress`);
          };
          const feed = (bytes: Buffer): void => {
            if (!session.finished) handle(session.feed(bytes, now));
          };

          handle(session.start(now));
          for (const a of c.acts) {
            if (session.finished) break;
            advance(now + c.step);
            if (session.finished) break;
            switch (a.kind) {
              case "exchange": {
                // Nothing in flight either way: time passes until the receiver's timer asks again.
                if (toSender.length === 0 && toReceiver.length === 0) advance(session.nextWakeAt ?? now);
                if (session.finished) break;
                toReceiver.push(...sender.receive(Buffer.from(toSender.splice(0))));
                for (let frame = toReceiver.shift(); frame && !session.finished; frame = toReceiver.shift()) {
                  lastDelivered = frame;
                  for (let i = 0; i < frame.length && !session.finished; i += a.chunk) feed(frame.subarray(i, i + a.chunk));
                }
                break;
              }
              case "deliver": {
                const frame = toReceiver.shift();
                if (!frame) break;
                lastDelivered = frame;
                for (let i = 0; i < frame.length && !session.finished; i += a.chunk) feed(frame.subarray(i, i + a.chunk));
                break;
              }
              case "reply":
                toReceiver.push(...sender.receive(Buffer.from(toSender.splice(0))));
                break;
              case "drop-reply":
                toSender.length = 0;
                break;
              case "duplicate":
                if (lastDelivered) feed(lastDelivered);
                break;
              case "corrupt":
                if (toReceiver.length > 0) {
                  const bad = Buffer.from(toReceiver[0]);
                  bad[a.at % bad.length] ^= 0x5a;
                  toReceiver[0] = bad;
                }
                break;
              case "stray":
                feed(Buffer.of(a.byte));
                break;
              case "eot":
                feed(Buffer.of(EOT));
                break;
              case "sender-timeout":
                toReceiver.push(...sender.timeout());
                break;
              case "wait":
                advance(now + a.ms);
                break;
            }
          }
          // Then the sender falls silent: the session must end on its own, within the deadline.
          advance(now + deadline + c.blockTimeout);
          assert.ok(session.finished, "the session ended");

          assert.ok(received.length <= c.maxFiles, `${received.length} files > maxFiles ${c.maxFiles}`);
          const total = received.reduce((n, f) => n + f.data.length, 0);
          assert.ok(total <= c.maxBytes, `${total} bytes > maxBytes ${c.maxBytes}`);
          assert.ok(session.stats.peakBufferBytes <= c.maxBytes + 1024);
          received.forEach((f, i) => {
            assert.equal(f.name, files[i].name, "files arrive in the sender's order");
            assert.ok(f.data.equals(files[i].data), `file ${i} is byte-exact`);
          });
        },
      ),
      { numRuns: 1500 },
    );
  });

  it("whatever bytes arrive, whenever, the session ends within the deadline of its last progress", () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ gap: fc.integer({ min: 0, max: 3000 }), bytes: fc.uint8Array({ maxLength: 300 }) }), { maxLength: 200 }),
        fc.integer({ min: 0, max: 3 }),
        fc.integer({ min: 100, max: 2000 }),
        (chunks, retries, blockTimeout) => {
          const s = new YmodemSession({ crc: "auto", mode: "C", maxBytes: 5000, retries, blockTimeout });
          let now = 0;
          let lastProgress = 0;
          let endedAt: number | null = null;
          const handle = (events: YmodemEvent[]): void => {
            for (const e of events) {
              if (e.type === "file-start" || e.type === "progress" || e.type === "file") lastProgress = now;
              if (e.type === "error" || e.type === "end") endedAt = now;
            }
          };
          handle(s.start(0));
          const bound = (): number => lastProgress + s.progressDeadlineMs;
          for (const c of [...chunks, { gap: s.progressDeadlineMs + blockTimeout, bytes: new Uint8Array() }]) {
            const target = now + c.gap;
            for (let at = s.nextWakeAt; at !== null && at <= target; at = s.nextWakeAt) {
              now = at;
              handle(s.tick(at));
              assert.ok(s.finished || s.nextWakeAt !== at, "each wake-up moves the timer on");
            }
            now = target;
            if (s.finished) break;
            assert.ok(now < bound(), "running past the deadline");
            handle(s.feed(c.bytes, now));
          }
          assert.ok(s.finished);
          assert.ok(endedAt !== null && endedAt <= bound(), `ended at ${endedAt}, bound ${bound()}`);
        },
      ),
      { numRuns: 1000 },
    );
  });
});
