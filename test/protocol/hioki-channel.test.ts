import assert from "node:assert/strict";
import { seededRandom } from "../../src/sim/random";
import fc from "fast-check";
import { hiokiWriteType } from "../../src/protocol/hioki";
import { type DiscardReport, HiokiChannelError, HiokiCommandChannel } from "../../src/protocol/hioki-channel";
import { ManualClock } from "../support/manual-clock";

const QUIET = 100;
const MAX_REPLY = 256;

/** Promise callbacks (the channel's write results, the test's own bookkeeping) run between timers. */
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

async function runToEnd(clock: ManualClock, maxSteps = 100_000): Promise<void> {
  await settle();
  for (let steps = 0; clock.step(); steps++) {
    assert.ok(steps < maxSteps, "the exchange ends");
    await settle();
  }
}

/**
 * How the meter treats one command. "regular": pieces of MTU − 3, the last shorter; "split": pieces of random
 * sizes; "lone-lf": CR LF after the reply, the LF alone; "full-lf": a full piece ending in LF, then the rest;
 * "late": a regular reply after the command's timeout (but within twice it); "never": no reply; "too-long": a
 * reply over the limit; "write-fails": the write is refused and the meter never sees the command.
 */
const BEHAVIOURS = ["regular", "split", "lone-lf", "full-lf", "late", "never", "too-long", "write-fails"] as const;
type Behaviour = (typeof BEHAVIOURS)[number];

interface CommandPlan {
  behaviour: Behaviour;
  timeoutMs: number;
  /** Where in its allowed range the reply begins (0..1). */
  delay: number;
  length: number;
  seed: number;
  writeMs: number;
  /** Asked this long after the previous command was asked. */
  askAfterMs: number;
}

interface Plan {
  mtu: number;
  commands: CommandPlan[];
  /** Bursts of bytes nobody asked for, sent when the meter has nothing to answer (else skipped). */
  unsolicited: { atMs: number; pieces: number; seed: number }[];
}

const planArb: fc.Arbitrary<Plan> = fc.record({
  mtu: fc.constantFrom(23, 27, 64, 247),
  commands: fc.array(
    fc.record({
      behaviour: fc.constantFrom(...BEHAVIOURS),
      timeoutMs: fc.integer({ min: 150, max: 1000 }),
      delay: fc.double({ min: 0, max: 1, noNaN: true }),
      length: fc.integer({ min: 0, max: 120 }),
      seed: fc.integer(),
      writeMs: fc.integer({ min: 0, max: 60 }),
      askAfterMs: fc.integer({ min: 0, max: 800 }),
    }),
    { minLength: 1, maxLength: 8 },
  ),
  unsolicited: fc.array(fc.record({ atMs: fc.integer({ min: 0, max: 12_000 }), pieces: fc.integer({ min: 1, max: 4 }), seed: fc.integer() }), { maxLength: 4 }),
});

const cut = (bytes: Buffer, size: number): Buffer[] => {
  const out: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += size) out.push(bytes.subarray(i, i + size));
  return out;
};

/** The reply text of command i and the indications that carry it. */
function replyOf(i: number, plan: CommandPlan, mtu: number): { text: string; pieces: Buffer[] } {
  const random = seededRandom(plan.seed);
  const size = mtu - 3;
  const length = plan.behaviour === "too-long" ? MAX_REPLY + 1 + Math.floor(random() * MAX_REPLY) : plan.length;
  let body = `R${i}-`;
  while (body.length < length) body += String.fromCharCode(0x41 + Math.floor(random() * 26));
  const bytes = Buffer.from(body, "latin1");
  switch (plan.behaviour) {
    case "lone-lf":
      return { text: `${body}\r\n`, pieces: [...cut(Buffer.from(`${body}\r`, "latin1"), size), Buffer.from("\n")] };
    case "full-lf": {
      if (bytes.length <= size - 1) return { text: body, pieces: [bytes] };
      const first = Buffer.concat([bytes.subarray(0, size - 1), Buffer.from("\n")]);
      return { text: `${body.slice(0, size - 1)}\n${body.slice(size - 1)}`, pieces: [first, ...cut(bytes.subarray(size - 1), size)] };
    }
    case "split": {
      const pieces: Buffer[] = [];
      for (let at = 0; at < bytes.length; ) {
        const n = 1 + Math.floor(random() * size);
        pieces.push(bytes.subarray(at, at + n));
        at += n;
      }
      return { text: body, pieces };
    }
    default:
      return { text: body, pieces: cut(bytes, size) };
  }
}

type Outcome = { reply: string; at: number } | { error: HiokiChannelError; at: number };

/**
 * Plays the plan: a meter that answers in order as each command's behaviour says, with pieces of one reply
 * less than the quiet gap apart, and unsolicited bursts only while it has nothing to answer.
 */
async function play(plan: Plan): Promise<{ outcomes: Outcome[]; asked: number[]; sent: number; arrivals: number[]; discards: DiscardReport[] }> {
  const clock = new ManualClock();
  const random = seededRandom(plan.commands.length * 7919 + plan.mtu);
  let sent = 0;
  const arrivals: number[] = [];
  /** The meter has something to answer (or is answering) until this time. */
  let busyUntil = -Infinity;
  const discards: DiscardReport[] = [];
  // The meter's functions below use the channel only once the clock runs.
  const channel: HiokiCommandChannel = new HiokiCommandChannel({ clock, write: (bytes) => meterReceives(bytes), mtu: () => plan.mtu, quietGapMs: QUIET, maxReplyBytes: MAX_REPLY });

  const arrive = (piece: Buffer): void => {
    sent += piece.length;
    arrivals.push(clock.now());
    channel.receive(piece);
  };
  /** Schedules the pieces from `startAt`; the first one at once when `startAt` is now and `now` says so. */
  const transmit = (pieces: Buffer[], startAt: number, now = false): number => {
    let at = startAt;
    pieces.forEach((piece, n) => {
      if (n === 0 && now) arrive(piece);
      else clock.setTimeout(() => arrive(piece), at - clock.now());
      at += Math.floor(random() * QUIET); // less than the gap, so the pieces belong together
    });
    return at;
  };

  const meterReceives = (bytes: Buffer): Promise<void> => {
    const i = Number(/^C(\d+)\?/.exec(bytes.toString("latin1"))?.[1]);
    const command = plan.commands[i];
    const done = new Promise<void>((resolve, reject) => clock.setTimeout(() => (command.behaviour === "write-fails" ? reject(new Error("Write Not Permitted")) : resolve()), command.writeMs));
    const now = clock.now();
    if (command.behaviour === "write-fails") {
      // Bytes while the write is pending would be taken for its reply: the meter is quiet until it is refused.
      busyUntil = now + command.writeMs + 1;
      return done;
    }
    const t = command.timeoutMs;
    if (command.behaviour === "never") {
      busyUntil = now + 2 * t + QUIET + 1;
      return done;
    }
    const delay = command.behaviour === "late" ? t + 1 + Math.floor(command.delay * (t - 2)) : Math.floor(command.delay * (t - 1));
    const end = transmit(replyOf(i, command, plan.mtu).pieces, now + delay);
    busyUntil = end + QUIET + 1;
    return done;
  };

  for (const burst of plan.unsolicited) {
    clock.setTimeout(() => {
      if (clock.now() < busyUntil) return;
      const r = seededRandom(burst.seed);
      const pieces = Array.from({ length: burst.pieces }, () => Buffer.alloc(1 + Math.floor(r() * (plan.mtu - 3)), "#"));
      // The first byte leaves now, while the meter is idle: no command can be written between decision and byte.
      busyUntil = transmit(pieces, clock.now(), true) + QUIET + 1;
    }, burst.atMs);
  }

  const outcomes: Outcome[] = [];
  const asked: number[] = [];
  let askAt = 0;
  plan.commands.forEach((command, i) => {
    askAt += command.askAfterMs;
    clock.setTimeout(() => {
      asked[i] = clock.now();
      const text = `C${i}?`;
      channel
        .request(text, Buffer.from(`${text}\r\n`), command.timeoutMs, { onDiscard: (report) => discards.push(report) })
        .then(
          (reply) => (outcomes[i] = { reply, at: clock.now() }),
          (error: HiokiChannelError) => (outcomes[i] = { error, at: clock.now() }),
        );
    }, askAt);
  });

  await runToEnd(clock);
  return { outcomes, asked, sent, arrivals, discards };
}

describe("HIOKI command channel (protocol/hioki-channel)", () => {
  describe("property: against a meter that is on time, late, silent, too long, oddly split or chatty", () => {
    it("no reply reaches the wrong command; every command ends within its bound; every discarded byte is reported", async () => {
      await fc.assert(
        fc.asyncProperty(planArb, async (plan) => {
          const { outcomes, asked, sent, arrivals, discards } = await play(plan);
          let delivered = 0;
          let previousEnd = 0;
          let previousFailed = 0;
          plan.commands.forEach((command, i) => {
            const outcome = outcomes[i];
            assert.ok(outcome, `command ${i} ended`);
            const { text } = replyOf(i, command, plan.mtu);
            if ("reply" in outcome) {
              delivered += outcome.reply.length;
              if (command.behaviour === "split") assert.ok(outcome.reply !== "" && text.startsWith(outcome.reply), `command ${i} got ${JSON.stringify(outcome.reply)}, not part of ${JSON.stringify(text)}`);
              else assert.equal(outcome.reply, text, `command ${i} (${command.behaviour}) gets exactly its reply`);
              assert.ok(["regular", "split", "lone-lf", "full-lf"].includes(command.behaviour), `command ${i} (${command.behaviour}) got a reply`);
            } else {
              const expected: Partial<Record<Behaviour, string>> = { late: "timeout", never: "timeout", "too-long": "too-long", "write-fails": "write-failed" };
              if (outcome.error.code === "not-sent") {
                // Refused only while the meter was still sending (a long tail, a late reply, chatter).
                assert.ok(
                  arrivals.some((t) => t > outcome.at - QUIET && t <= outcome.at),
                  `command ${i} not sent at ${outcome.at} although the link was quiet`,
                );
              } else assert.equal(outcome.error.code, expected[command.behaviour], `command ${i} (${command.behaviour}) failed with ${outcome.error.code}`);
            }
            // Its turn began when it was asked or when the one before it ended; then, at most: the late window of
            // a failed predecessor, its timeout waiting for quiet, its timeout for the reply to begin, and the
            // pieces of the longest reply allowed, each within the quiet gap.
            const turn = Math.max(asked[i], previousEnd);
            const replyMs = (Math.ceil((MAX_REPLY + 1) / (plan.mtu - 3)) + 2) * QUIET;
            const bound = previousFailed + 2 * command.timeoutMs + replyMs;
            assert.ok(outcome.at - turn <= bound, `command ${i} ended ${outcome.at - turn} ms into its turn, bound ${bound}`);
            previousEnd = outcome.at;
            previousFailed = "error" in outcome && ["timeout", "write-failed"].includes(outcome.error.code) ? command.timeoutMs : 0;
          });
          assert.equal(
            discards.reduce((sum, d) => sum + d.bytes, 0),
            sent - delivered,
            "every byte the meter sent was delivered in a reply or reported as discarded",
          );
        }),
        { numRuns: 500 },
      );
    });
  });

  describe("examples", () => {
    function setup(mtu = 23): { clock: ManualClock; channel: HiokiCommandChannel; written: string[]; discards: DiscardReport[]; ask(command: string, timeoutMs?: number): Promise<string> } {
      const clock = new ManualClock();
      const written: string[] = [];
      const discards: DiscardReport[] = [];
      const channel = new HiokiCommandChannel({
        clock,
        write: (bytes) => {
          written.push(bytes.toString("latin1").trimEnd());
          return Promise.resolve();
        },
        mtu: () => mtu,
        quietGapMs: QUIET,
        maxReplyBytes: MAX_REPLY,
      });
      const ask = (command: string, timeoutMs = 500): Promise<string> => channel.request(command, Buffer.from(`${command}\r\n`), timeoutMs, { onDiscard: (d) => discards.push(d) });
      return { clock, channel, written, discards, ask };
    }

    const at = (clock: ManualClock, ms: number, fn: () => void): void => void clock.setTimeout(fn, ms - clock.now());
    const errorCode = (p: Promise<unknown>): Promise<string> => p.then(
      () => "resolved",
      (e: unknown) => (e instanceof HiokiChannelError ? e.code : String(e)),
    );

    it("a late reply is discarded and reported as late; the next command waits for the late window and gets its own reply", async () => {
      const { clock, channel, written, discards, ask } = setup();
      const idn = errorCode(ask("*IDN?", 500));
      const max = ask(":CALC:STAT:MAX?", 500);
      at(clock, 700, () => channel.receive(Buffer.from("HIOKI,DT4261")));
      at(clock, 1001, () => channel.receive(Buffer.from("+5.0E+00")));
      await runToEnd(clock);
      assert.equal(await idn, "timeout");
      assert.equal(await max, "+5.0E+00");
      assert.deepEqual(discards, [{ bytes: 12, reason: "late", command: "*IDN?" }]);
      assert.deepEqual(written, ["*IDN?", ":CALC:STAT:MAX?"]);
    });

    it("bytes before any command are kept as an unsolicited report for the first command", async () => {
      const { clock, channel, discards, ask } = setup();
      channel.receive(Buffer.from("###"));
      at(clock, 50, () => void ask("FETC?").catch(() => undefined));
      await runToEnd(clock);
      assert.deepEqual(discards, [{ bytes: 3, reason: "unsolicited", command: null }]);
    });

    it("a meter that never stops sending: the command is not sent and fails within its timeout", async () => {
      const { clock, channel, written, ask } = setup();
      let chatter = 0;
      const babble = (): void => {
        channel.receive(Buffer.from("#"));
        if (++chatter < 40) clock.setTimeout(babble, 50);
      };
      babble();
      const fetch = errorCode(ask("FETC?", 300));
      await runToEnd(clock);
      assert.equal(await fetch, "not-sent");
      assert.deepEqual(written, []);
    });

    it("a lost link fails the command in flight and those waiting, and refuses new ones", async () => {
      const { channel, ask } = setup();
      const first = errorCode(ask("FETC?"));
      const second = errorCode(ask("QPID"));
      channel.close();
      assert.deepEqual(await Promise.all([first, second, errorCode(ask("*IDN?"))]), ["link-lost", "link-lost", "link-lost"]);
    });

    it("a write that throws at once fails its command with write-failed", async () => {
      const clock = new ManualClock();
      const channel = new HiokiCommandChannel({
        clock,
        write: () => {
          throw new Error("not connected");
        },
        mtu: () => 247,
      });
      const failed = channel.request("FETC?", Buffer.from("FETC?\r\n"), 100).then(
        () => null,
        (e: unknown) => e,
      );
      await runToEnd(clock);
      const error = await failed;
      assert.ok(error instanceof HiokiChannelError && error.code === "write-failed" && /not connected/.test(error.message), String(error));
    });
  });

  describe("hiokiWriteType (aioble's rule)", () => {
    it("writes without response whenever the characteristic allows it, with response only when it allows nothing else", () => {
      assert.equal(hiokiWriteType(["write", "indicate"]), "withResponse");
      assert.equal(hiokiWriteType(["writeWithoutResponse", "indicate"]), "withoutResponse");
      assert.equal(hiokiWriteType(["write", "writeWithoutResponse", "indicate"]), "withoutResponse");
      assert.equal(hiokiWriteType(["read", "indicate"]), null);
    });
  });
});
