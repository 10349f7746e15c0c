/**
 * The YMODEM receiver's failures as the download node words them: each error's detail, through the node's catalog
 * (nodes/locales/en-US/nus-ymodem-receive.json, `ymodem.*`), gives the same sentence as the error's English message
 * (which the protocol tests and the logs read). One scenario per sentence; the catalog has no sentence no scenario
 * reaches.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { YmodemError, YmodemReceiver, type YmodemEvent, type YmodemReceiverOptions } from "../../src/protocol/ymodem";
import { CAN, EOT, SOH, STX } from "../../src/protocol/ymodem-block";
import { frame } from "../../src/protocol/ymodem-sender";
import { YmodemSession } from "../../src/protocol/ymodem-session";
import { describeYmodemError } from "../../src/red/ymodem-text";
import { translate } from "../support/red";

const t = (key: string, subs?: Record<string, string | number>): string => translate(`nus-ymodem-receive.${key}`, subs);

const OPTIONS: YmodemReceiverOptions = { crc: "xmodem", mode: "C", maxBytes: 100000, retries: 2 };

function block0(header: string, crc: "xmodem" | "arc" = "xmodem"): Buffer {
  const data = Buffer.alloc(128);
  data.write(header, "latin1");
  return frame(SOH, 0, data, crc);
}

/** A standard block 0: name NUL size (or no size). */
const announce = (name: string, size?: number): Buffer => block0(size === undefined ? `${name}\0` : `${name}\0${size}`);
const data = (seq: number, length: 128 | 1024 = 128, fill = 0x41): Buffer => frame(length === 128 ? SOH : STX, seq, Buffer.alloc(length, fill), "xmodem");
const eot = Buffer.from([EOT]);

/** A frame with one bit of its CRC flipped, or of its block number's complement. */
function damaged(f: Buffer, where: "crc" | "header"): Buffer {
  const copy = Buffer.from(f);
  if (where === "crc") copy[copy.length - 1] ^= 1;
  else copy[2] ^= 1;
  return copy;
}

/** Runs the steps on a started receiver and returns the one error it reports. */
function failure(options: Partial<YmodemReceiverOptions>, steps: (r: YmodemReceiver) => YmodemEvent[][]): YmodemError {
  const receiver = new YmodemReceiver({ ...OPTIONS, ...options });
  const events = [receiver.start(), ...steps(receiver)].flat();
  const errors = events.flatMap((e) => (e.type === "error" ? [e.error] : []));
  assert.equal(errors.length, 1, `one error, got ${JSON.stringify(events.map((e) => e.type))}`);
  return errors[0];
}

const repeat = <T>(n: number, f: () => T): T[] => Array.from({ length: n }, f);

/** Every sentence the receiver can fail with, and a way to make it say that. */
const SCENARIOS: Record<string, () => YmodemError> = {
  "cancelled-by-sender": () => failure({}, (r) => [r.feed(Buffer.from([CAN, CAN]))]),
  cancelled: () => failure({}, (r) => [r.feed(announce("a.bin", 300)), r.cancel()]),
  "timeouts-block0": () => failure({}, (r) => repeat(3, () => r.timeout())),
  "timeouts-data": () => failure({}, (r) => [r.feed(announce("a.bin", 300)), r.feed(data(1)), ...repeat(3, () => r.timeout())]),
  "timeouts-eot": () => failure({}, (r) => [r.feed(announce("a.bin", 100)), r.feed(data(1)), r.feed(eot), ...repeat(3, () => r.timeout())]),
  "timeouts-eot-missing": () => failure({}, (r) => [r.feed(announce("a.bin", 100)), r.feed(data(1)), ...repeat(3, () => r.timeout())]),
  stalled: () => {
    const session = new YmodemSession({ ...OPTIONS, blockTimeout: 1000 });
    const events = [session.start(0), session.feed(announce("a.bin", 300), 10), session.tick(1010), session.tick(2010), session.tick(3010)].flat();
    return (events.find((e) => e.type === "error") as { error: YmodemError }).error;
  },
  "stalled-eot-missing": () => {
    const session = new YmodemSession({ ...OPTIONS, retries: 5, blockTimeout: 1000 });
    const events = [session.start(0), session.feed(announce("a.bin", 100), 10), session.feed(data(1), 20)];
    for (let now = 1020; now <= 6020; now += 1000) events.push(session.tick(now));
    const error = events.flat().find((e) => e.type === "error");
    assert.ok(error?.type === "error");
    return error.error;
  },
  "disconnected-file": () => failure({}, (r) => [r.feed(announce("a.bin", 300)), r.feed(data(1)), r.disconnected()]),
  "disconnected-none": () => failure({}, (r) => [r.disconnected()]),
  repeated: () => failure({}, (r) => [r.feed(announce("a.bin", 300)), r.feed(data(1)), ...repeat(3, () => r.feed(data(1)))]),
  sequence: () => failure({}, (r) => [r.feed(announce("a.bin", 300)), r.feed(data(5))]),
  "sequence-block0": () => failure({}, (r) => [r.feed(data(3))]),
  "too-many-files": () => failure({ maxFiles: 1 }, (r) => [r.feed(announce("a.bin", 10)), r.feed(data(1)), r.feed(eot), r.feed(eot), r.feed(announce("b.bin", 10))]),
  "too-large-announced": () => failure({ maxBytes: 100 }, (r) => [r.feed(announce("big.bin", 1000))]),
  "too-large-announced-left": () =>
    failure({ maxBytes: 300 }, (r) => [r.feed(announce("a.bin", 200)), r.feed(data(1)), r.feed(data(2)), r.feed(eot), r.feed(eot), r.feed(announce("b.bin", 200))]),
  "too-large-file": () => failure({ maxBytes: 100 }, (r) => [r.feed(announce("u.bin")), r.feed(data(1)), r.feed(data(2))]),
  "too-large-file-left": () =>
    failure({ maxBytes: 300 }, (r) => [r.feed(announce("a.bin", 200)), r.feed(data(1)), r.feed(data(2)), r.feed(eot), r.feed(eot), r.feed(announce("u.bin")), r.feed(data(1)), r.feed(eot), r.feed(eot)]),
  "more-blocks": () => failure({}, (r) => [r.feed(announce("a.bin", 100)), r.feed(data(1)), r.feed(data(2))]),
  "ended-early": () => failure({}, (r) => [r.feed(announce("a.bin", 300)), r.feed(data(1)), r.feed(eot), r.feed(eot)]),
  "bad-block-g:header": () => failure({ mode: "G" }, (r) => [r.feed(announce("a.bin", 300)), r.feed(damaged(data(1), "header"))]),
  "bad-block-g:crc": () => failure({ mode: "G" }, (r) => [r.feed(announce("a.bin", 300)), r.feed(damaged(data(1), "crc"))]),
  "bad-block-retries:header": () => failure({}, (r) => [r.feed(announce("a.bin", 300)), ...repeat(3, () => r.feed(damaged(data(1), "header")))]),
  "bad-block-retries:crc": () => failure({}, (r) => [r.feed(announce("a.bin", 300)), ...repeat(3, () => r.feed(damaged(data(1), "crc")))]),
  "bad-block-retries:header-block0": () => failure({}, (r) => repeat(3, () => r.feed(damaged(announce("a.bin", 300), "header")))),
  "bad-block-retries:crc-block0": () => failure({}, (r) => repeat(3, () => r.feed(damaged(announce("a.bin", 300), "crc")))),
  "bad-block-retries:crc-block0-unknown": () => failure({ crc: "auto" }, (r) => repeat(3, () => r.feed(damaged(announce("a.bin", 300), "crc")))),
};

describe("YMODEM failures in the download node's words (catalog ymodem.*)", () => {
  for (const [name, make] of Object.entries(SCENARIOS)) {
    it(`${name}: the catalog's sentence is the error's English message`, () => {
      const error = make();
      const [detail, why] = name.split(":");
      assert.equal(error.detail, detail);
      if (why !== undefined) assert.equal(error.params.why, why);
      assert.equal(describeYmodemError(error, t), error.message);
    });
  }

  it("has a scenario for every sentence of the catalog", () => {
    const catalog = JSON.parse(fs.readFileSync(path.join(__dirname, "..", "..", "nodes", "locales", "en-US", "nus-ymodem-receive.json"), "utf8")) as {
      "nus-ymodem-receive": { ymodem: Record<string, unknown> & { why: Record<string, string> } };
    };
    const { message, why, ...details } = catalog["nus-ymodem-receive"].ymodem;
    assert.equal(typeof message, "string");
    const covered = Object.keys(SCENARIOS).map((name) => name.split(":"));
    assert.deepEqual(Object.keys(details).sort(), [...new Set(covered.map(([detail]) => detail))].sort());
    assert.deepEqual(Object.keys(why).sort(), covered.flatMap(([, w]) => (w === undefined ? [] : [w])).filter((w, i, all) => all.indexOf(w) === i).sort());
  });
});
