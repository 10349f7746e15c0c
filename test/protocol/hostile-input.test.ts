/**
 * Hostile input (issue 6): every parser that reads bytes from a radio or a file, fed arbitrary input.
 * Each property runs HOSTILE_RUNS (10,000) cases unless said otherwise. The rules checked everywhere:
 * - nothing escapes but the parser's documented error type (or a documented "no result" value);
 * - an output is never larger than the input it came from (no length field can make us allocate);
 * - a rejection carries a message that names the problem.
 * The protocol test files hold the functional properties (round trips, exact acceptance rules); this file
 * adds what they leave out, without repeating them.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import type { Peripheral } from "@stoprocent/noble";
import { matches, type DeviceSelector } from "../../src/ble/selector";
import { sanitizeFileName, MAX_FILE_NAME_BYTES } from "../../src/protocol/file-name";
import { decodeHeartRateMeasurement, HeartRateFormatError } from "../../src/protocol/heart-rate";
import { parseHiokiReply, parseNr3, parseZ3210Name } from "../../src/protocol/hioki";
import { decodeXossFrame, interpretFetchReply, XOSS_MAX_CONTENT_BYTES, XossFrameError } from "../../src/protocol/xoss";
import { crc16 } from "../../src/protocol/crc16";
import { YmodemError, YmodemReceiver, type YmodemErrorCode, type YmodemEvent } from "../../src/protocol/ymodem";
import { CAN, EOT, parseBlock0, SOH, STX } from "../../src/protocol/ymodem-block";

const HOSTILE_RUNS = 10_000;

/** Bytes as a radio delivers them: short values mostly, sometimes long ones. */
const radioBytes = (maxLength = 64): fc.Arbitrary<Uint8Array> =>
  fc.oneof({ weight: 4, arbitrary: fc.uint8Array({ maxLength }) }, { weight: 1, arbitrary: fc.uint8Array({ maxLength: 600 }) });

/** Any value at all, for untyped callers (a Node-RED wire can carry anything). */
const anyValue = fc.oneof(fc.anything(), fc.uint8Array(), fc.constantFrom(null, undefined, NaN, Symbol("s")));

describe("hostile input: parsers of radio bytes", () => {
  describe("heart-rate measurement (0x2A37)", () => {
    it("arbitrary bytes: a result no larger than the input, or a HeartRateFormatError that names the problem and the length, never the bytes", () => {
      fc.assert(
        fc.property(radioBytes(), (value) => {
          try {
            const m = decodeHeartRateMeasurement(value);
            // One RR interval per 2 bytes after flags and heart rate: never more entries than the value holds.
            assert.ok(m.rrIntervalsRaw.length <= Math.floor((value.length - 2) / 2));
            assert.equal(m.rrIntervals.length, m.rrIntervalsRaw.length);
          } catch (error) {
            assert.ok(error instanceof HeartRateFormatError, `unexpected ${String(error)}`);
            assert.match(error.message, /^heart rate measurement: .*(empty|ends early|odd number)/);
            // The value's length ends the message, and nothing of the value follows it.
            assert.ok(error.message.endsWith(`(${value.length} byte${value.length === 1 ? "" : "s"})`), error.message);
          }
        }),
        { numRuns: HOSTILE_RUNS },
      );
    });

    it("anything that is not bytes is a HeartRateFormatError, never a TypeError", () => {
      fc.assert(
        fc.property(anyValue, (value) => {
          try {
            decodeHeartRateMeasurement(value as Uint8Array);
          } catch (error) {
            assert.ok(error instanceof HeartRateFormatError, `unexpected ${String(error)}`);
            assert.ok(error.message.length > 0);
          }
        }),
        { numRuns: 2000 },
      );
    });
  });

  describe("HIOKI replies (indications decoded as latin1)", () => {
    const commandArb = fc.oneof(fc.constantFrom("FETC?", "QPID;FETC?", ":FETCCNT?", "QPID", ":CONF DCV;FETC?", ":CALC:STAT:MAX?;FETC?"), fc.string({ maxLength: 40 }));

    it("arbitrary reply bytes: parts and raw never exceed the reply, value is a finite number or null", () => {
      fc.assert(
        fc.property(radioBytes(200), commandArb, (bytes, command) => {
          const raw = Buffer.from(bytes).toString("latin1");
          const r = parseHiokiReply(raw, command);
          assert.ok(r.raw.length <= raw.length);
          assert.ok(r.parts.length <= raw.length + 1);
          assert.ok(r.parts.join(";").length <= raw.length);
          assert.ok(r.value === null || Number.isFinite(r.value));
          assert.ok(r.model === null || (r.model.length > 0 && r.model.length <= raw.length));
        }),
        { numRuns: HOSTILE_RUNS },
      );
    });

    it("advertised names from arbitrary bytes (utf8, as noble decodes them): a Z3210Name or null, never a throw", () => {
      fc.assert(
        fc.property(radioBytes(31), (bytes) => {
          const name = Buffer.from(bytes).toString("utf8");
          const z = parseZ3210Name(name);
          if (z !== null) assert.ok(z.adapterFirmware.length + z.model.length + z.serial.length < name.length);
        }),
        { numRuns: HOSTILE_RUNS },
      );
    });

    it("answers long adversarial replies (no regex backtracking: a regression shows as a mocha timeout)", () => {
      const nasty = ["1".repeat(65536) + "e", "+" + "1".repeat(32768) + "." + "1".repeat(32768) + "x", ";".repeat(65536), "\r".repeat(65536) + "x", " ".repeat(65536) + "1 "];
      for (const raw of nasty) {
        const value = parseHiokiReply(raw, "QPID;FETC?").value;
        assert.ok(value === null || Number.isFinite(value), JSON.stringify(raw.slice(0, 20)));
        const n = parseNr3(raw);
        assert.ok(n === null || Number.isFinite(n));
      }
      assert.equal(parseZ3210Name(`Z3210V${"1".repeat(65536)}:`), null);
    });
  });

  describe("XOSS control frames", () => {
    it("arbitrary bytes: a frame whose content fits in the input and in 18 bytes, or an XossFrameError naming the problem", () => {
      fc.assert(
        fc.property(radioBytes(24), (bytes) => {
          try {
            const f = decodeXossFrame(bytes);
            assert.ok(f.content.length <= XOSS_MAX_CONTENT_BYTES && f.content.length === bytes.length - 2);
            assert.ok(f.opcode >= 0 && f.opcode <= 255);
          } catch (error) {
            assert.ok(error instanceof XossFrameError, `unexpected ${String(error)}`);
            assert.match(error.message, /^XOSS control frame (too short|too long|with a bad checksum)/);
          }
        }),
        { numRuns: HOSTILE_RUNS },
      );
    });

    it("interpretFetchReply on arbitrary frames (checksum fixed half the time): accepted, refused with a reason, other, or XossFrameError", () => {
      const frameArb = fc.oneof(
        radioBytes(24),
        fc.uint8Array({ minLength: 2, maxLength: 19 }).map((body) => Buffer.concat([body, Buffer.of(body.reduce((x, b) => x ^ b, 0))])),
      );
      fc.assert(
        fc.property(frameArb, fc.constantFrom("Setting.json", "20240101123456.fit", "a"), (frame, name) => {
          try {
            const r = interpretFetchReply(frame, name);
            if (r.kind === "refused") assert.ok(r.reason.length > 0);
          } catch (error) {
            assert.ok(error instanceof XossFrameError, `unexpected ${String(error)}`);
          }
        }),
        { numRuns: HOSTILE_RUNS },
      );
    });
  });

  describe("YMODEM block 0 (parseBlock0)", () => {
    // Block 0 as it arrives: 128 or 1024 bytes, arbitrary, or shaped like a header with hostile fields.
    const field = fc.oneof(fc.stringMatching(/^[0-9]{0,30}$/), fc.stringMatching(/^[0-7]{300,400}$/), fc.string({ maxLength: 20 }));
    const block0Arb = fc.oneof(
      fc.uint8Array({ maxLength: 1024 }),
      fc.tuple(fc.string({ maxLength: 200 }), field, field, field, fc.constantFrom(128, 1024)).map(([name, size, mtime, mode, len]) => {
        const b = Buffer.alloc(len);
        Buffer.from(`${name}\0${size} ${mtime} ${mode}`).copy(b);
        return b;
      }),
      fc.tuple(fc.string({ maxLength: 100 }), field).map(([name, size]) => {
        const b = Buffer.alloc(128);
        Buffer.from(`${name} ${size}`).copy(b);
        return b;
      }),
    );

    it("arbitrary block 0: end or a file whose name fits in the block, with size/mtime/mode null or non-negative", () => {
      fc.assert(
        fc.property(block0Arb, (data) => {
          const h = parseBlock0(data);
          if (h.kind === "end") return;
          assert.ok(Buffer.byteLength(h.name, "utf8") <= data.length * 3, "a name cannot outgrow its bytes (U+FFFD is 3 bytes per bad byte)");
          assert.ok(!h.name.includes("\0"));
          assert.ok(h.size === null || (h.size >= 0 && !Number.isNaN(h.size)));
          if (h.mtime !== undefined) assert.ok(h.mtime > 0 && Number.isSafeInteger(h.mtime), `mtime ${h.mtime}`);
          if (h.mode !== undefined) assert.ok(h.mode > 0 && Number.isSafeInteger(h.mode), `mode ${h.mode}`);
          // What the node does with the name: a safe file name, whatever the block held.
          const safe = sanitizeFileName(h.name);
          assert.ok(safe.length > 0 && Buffer.byteLength(safe, "utf8") <= MAX_FILE_NAME_BYTES);
        }),
        { numRuns: HOSTILE_RUNS },
      );
    });
  });

  describe("YMODEM receiver (block stream)", () => {
    const CODES: readonly YmodemErrorCode[] = ["cancelled-by-sender", "cancelled", "too-large", "sequence", "size-mismatch", "bad-block", "retries", "disconnected"];

    function frame(seq: number, data: Buffer, crc: "arc" | "xmodem"): Buffer {
      const c = crc16(crc, data);
      return Buffer.concat([Buffer.of(data.length === 128 ? SOH : STX, seq & 0xff, ~seq & 0xff), data, Buffer.of(c >> 8, c & 0xff)]);
    }

    /** Every event of a finished or running receiver obeys the bounds; errors are YmodemErrors with a clear message. */
    function checkEvents(events: YmodemEvent[], maxBytes: number, inputBytes: number): void {
      for (const e of events) {
        if (e.type === "error") {
          assert.ok(e.error instanceof YmodemError);
          assert.ok(CODES.includes(e.error.code), e.error.code);
          assert.match(e.error.message, /^YMODEM: \S.* \((file ".*", )?\d+ bytes received\)$/s);
        }
        if (e.type === "file") assert.ok(e.data.length <= Math.min(maxBytes, inputBytes));
        if (e.type === "progress") assert.ok(e.received <= inputBytes);
      }
    }

    it("arbitrary byte streams with well-formed frames mixed in: only YmodemErrors, clear messages, output ≤ input, buffer ≤ maxBytes + 1024", () => {
      const chunkArb = fc.oneof(
        { weight: 3, arbitrary: fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)) },
        { weight: 1, arbitrary: fc.constantFrom(Buffer.of(EOT), Buffer.of(CAN, CAN), Buffer.of(SOH), Buffer.of(STX)) },
        {
          weight: 2,
          arbitrary: fc
            .tuple(fc.integer({ min: 0, max: 3 }), fc.boolean(), fc.string({ maxLength: 30 }), fc.oneof(fc.nat({ max: 1 << 22 }).map(String), fc.stringMatching(/^[0-9]{10,40}$/)), fc.constantFrom("arc" as const, "xmodem" as const))
            .map(([seq, stx, name, size, crc]) => {
              const data = Buffer.alloc(stx ? 1024 : 128, seq === 0 ? 0 : 0x1a);
              if (seq === 0) Buffer.from(crc === "arc" ? `${name} ${size}` : `${name}\0${size}`).copy(data);
              return frame(seq, data, crc);
            }),
        },
      );
      fc.assert(
        fc.property(
          fc.array(chunkArb, { maxLength: 12 }),
          fc.record({ maxBytes: fc.integer({ min: 0, max: 1 << 21 }), retries: fc.integer({ min: 0, max: 3 }), crc: fc.constantFrom("auto" as const, "arc" as const, "xmodem" as const), mode: fc.constantFrom("C" as const, "G" as const) }),
          fc.array(fc.constantFrom("timeout" as const, "none" as const), { maxLength: 12 }),
          (chunks, opts, between) => {
            const r = new YmodemReceiver(opts);
            const events = r.start();
            let input = 0;
            chunks.forEach((chunk, i) => {
              input += chunk.length;
              events.push(...r.feed(chunk));
              if (between[i] === "timeout") events.push(...r.timeout());
              assert.ok(r.stats.peakBufferBytes <= opts.maxBytes + 1024, `allocated ${r.stats.peakBufferBytes} for maxBytes ${opts.maxBytes}`);
            });
            events.push(...r.disconnected());
            checkEvents(events, opts.maxBytes, input);
          },
        ),
        { numRuns: HOSTILE_RUNS },
      );
    });

    it("a size-less (standard) file that never ends: the buffer stops at maxBytes + 1024 and the error says too large (300 runs)", () => {
      fc.assert(
        fc.property(fc.integer({ min: 0, max: 300_000 }), fc.constantFrom("C" as const, "G" as const), fc.integer({ min: 1, max: 4 }), (maxBytes, mode, burst) => {
          const r = new YmodemReceiver({ crc: "xmodem", mode, maxBytes, retries: 3 });
          const events = r.start();
          const header = Buffer.alloc(128);
          Buffer.from("endless.bin\0").copy(header); // no size: the receiver must grow its buffer
          events.push(...r.feed(frame(0, header, "xmodem")));
          const data = Buffer.alloc(1024, 0x55);
          let seq = 1;
          let input = 0;
          while (!r.finished && seq < 400) {
            const burstFrames = Buffer.concat(Array.from({ length: burst }, () => frame(seq++, data, "xmodem")));
            input += burstFrames.length;
            events.push(...r.feed(burstFrames));
            assert.ok(r.stats.peakBufferBytes <= maxBytes + 1024, `allocated ${r.stats.peakBufferBytes}`);
          }
          checkEvents(events, maxBytes, input);
          const error = events.find((e) => e.type === "error");
          if (maxBytes < 300 * 1024) {
            assert.ok(error && error.type === "error" && error.error.code === "too-large", JSON.stringify(events.map((e) => e.type)));
            assert.match(error.error.message, /exceeds maxBytes \d+/);
          }
        }),
        { numRuns: 300 },
      );
    });
  });

  describe("advertisements as the pool's selector sees them (noble parses the AD structures)", () => {
    // What noble's gap.js can hand over: localName any UTF-8 decode (or absent), service UUIDs as hex without
    // padding ("a00"), 128-bit hex, or odd strings; some fields missing altogether after a merge.
    const uuidString = fc.oneof(
      fc.integer({ min: 0, max: 0xffff }).map((n) => n.toString(16)),
      fc.uint8Array({ minLength: 16, maxLength: 16 }).map((b) => Buffer.from(b).toString("hex")),
      fc.string({ maxLength: 40 }),
      fc.constantFrom("", "0x", "-", "0000180d-0000-1000-8000-00805f9b34fb", "0x180D", "000"),
    );
    const advertisementArb = fc.option(
      fc.record(
        {
          localName: fc.option(fc.oneof(fc.string({ maxLength: 40 }), fc.uint8Array({ maxLength: 29 }).map((b) => Buffer.from(b).toString("utf8"))), { nil: undefined }),
          serviceUuids: fc.option(fc.array(uuidString, { maxLength: 6 }), { nil: undefined }),
          txPowerLevel: fc.option(fc.integer({ min: -128, max: 127 }), { nil: undefined }),
          manufacturerData: fc.option(fc.uint8Array({ maxLength: 27 }).map((b) => Buffer.from(b)), { nil: undefined }),
          serviceData: fc.array(fc.record({ uuid: uuidString, data: fc.uint8Array({ maxLength: 20 }).map((b) => Buffer.from(b)) }), { maxLength: 3 }),
          serviceSolicitationUuids: fc.array(uuidString, { maxLength: 3 }),
        },
        { requiredKeys: [] },
      ),
      { nil: undefined },
    );
    const addressArb = fc.oneof(
      fc.uint8Array({ minLength: 6, maxLength: 6 }).map((b) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join(":")),
      fc.constantFrom("", "unknown"),
      fc.string({ maxLength: 20 }),
    );
    const selectorArb: fc.Arbitrary<DeviceSelector> = fc.record(
      { address: fc.oneof(addressArb, fc.constant("")), name: fc.string({ maxLength: 20 }), namePrefix: fc.string({ maxLength: 5 }), service: uuidString },
      { requiredKeys: [] },
    );

    it("matches() never throws on arbitrary advertisement objects, and only matches what the selector names", () => {
      fc.assert(
        fc.property(selectorArb, addressArb, advertisementArb, (selector, address, advertisement) => {
          const p = { id: address.replace(/:/g, ""), address, addressType: "random", rssi: -60, advertisement } as unknown as Peripheral;
          const result = matches(selector, p);
          assert.equal(typeof result, "boolean");
          if (result && selector.address) assert.equal(address.toLowerCase(), selector.address.toLowerCase());
          if (result && selector.name) assert.equal(advertisement?.localName, selector.name);
          if (result && selector.namePrefix) assert.ok((advertisement?.localName ?? "").startsWith(selector.namePrefix));
        }),
        { numRuns: HOSTILE_RUNS },
      );
    });
  });
});
