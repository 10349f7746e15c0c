/**
 * The nus-ymodem-receiver virtual peripheral: a device that receives YMODEM on NUS. The central side is noble's real
 * HCI stack on the virtual controller with the pure YmodemSender writing RX without response in MTU − 3 pieces (what
 * the nus-ymodem-send node does, minus Node-RED); the receiver's C/G, ACK, NAK and CAN come back as TX notifications.
 */
import assert from "node:assert/strict";
import type { Noble } from "@stoprocent/noble";
import type { Clock, Timer } from "../../src/protocol/clock";
import { WANT_CRC } from "../../src/protocol/ymodem-block";
import { YmodemSender, type YmodemSenderFile, type YmodemSenderOptions } from "../../src/protocol/ymodem-sender";
import { generateFileContent } from "../../src/sim/peripherals/file-content";
import { createPeripheral } from "../../src/sim/peripherals/index";
import { NusYmodemReceiverPeripheral, type NusYmodemReceiverTransfer, type ReceivedYmodemFile } from "../../src/sim/peripherals/nus-ymodem-receiver";
import { parseScenario, Simulation } from "../../src/sim/scenario";
import { DEFAULT_LINK } from "../../src/sim/types";
import type { JsonObject } from "../../src/sim/validate";
import { ManualClock } from "../support/manual-clock";
import { connectNus, nobleFor, type NusConnection, type SimNoble } from "../support/nus-noble";

const ADDRESS = "e3:c3:5c:00:00:21";
/** Simulated time runs this much faster: the link's timing holds, tests stay quick. */
const TIME_SCALE = 50;

interface SendRun {
  sender: YmodemSender;
  /** How the receiver saw the transfer end. */
  transfer: NusYmodemReceiverTransfer;
  /** Files the receiver completed during this transfer. */
  files: ReceivedYmodemFile[];
  /** Every TX notification from the receiver, in order. */
  notifications: Buffer[];
}

/**
 * Sends `files` with a fresh YmodemSender over an established NUS connection: the receiver's notifications feed the
 * sender, its frames are written to RX without response in MTU − 3 pieces, in order (in G mode built one at a time as
 * the writes go out). Resolves when the receiver reports the transfer's end and the sender has finished.
 */
async function sendYmodem(conn: NusConnection, p: NusYmodemReceiverPeripheral, clock: Clock, options: Partial<YmodemSenderOptions> & { files: YmodemSenderFile[] }): Promise<SendRun> {
  const sender = new YmodemSender({
    dialect: p.dialect,
    crc: p.dialect === "seed" ? "arc" : "xmodem",
    blocks: "auto",
    streaming: true,
    maxBurst: 2,
    retries: 10,
    ...options,
  });
  const notifications: Buffer[] = [];
  const files: ReceivedYmodemFile[] = [];
  const queue: Buffer[] = [];
  let pumping = false;
  let timer = null as Timer | null;
  let senderSettled: () => void = () => undefined;
  const senderDone = new Promise<void>((resolve) => (senderSettled = resolve));
  const checkSender = (): void => {
    if (sender.state === "done" || sender.state === "aborted") {
      timer?.cancel();
      senderSettled();
    }
  };
  const armTimer = (): void => {
    timer?.cancel();
    timer = clock.setTimeout(() => {
      queue.push(...sender.timeout());
      void pump();
      armTimer();
    }, 10_000);
  };
  const pump = async (): Promise<void> => {
    if (pumping) return;
    pumping = true;
    try {
      for (;;) {
        const frame = queue.shift() ?? sender.nextFrames(1)[0];
        if (frame === undefined) break;
        const room = p.mtu - 3;
        for (let at = 0; at < frame.length; at += room) await conn.rx.writeAsync(frame.subarray(at, at + room), true);
      }
    } finally {
      pumping = false;
    }
    checkSender();
  };
  const onData = (data: Buffer): void => {
    notifications.push(Buffer.from(data));
    queue.push(...sender.receive(data));
    armTimer();
    void pump();
    checkSender();
  };
  const onFile = (file: ReceivedYmodemFile): number => files.push(file);
  const ended = new Promise<NusYmodemReceiverTransfer>((resolve) => p.events.once("transfer", resolve));
  p.events.on("file", onFile);
  conn.tx.on("data", onData);
  armTimer();
  try {
    const transfer = await ended;
    await senderDone;
    return { sender, transfer, files, notifications };
  } finally {
    timer?.cancel();
    conn.tx.removeListener("data", onData);
    p.events.removeListener("file", onFile);
  }
}

function contents(size: number, seed: number): Buffer {
  return generateFileContent(size, seed);
}

describe("sim: nus-ymodem-receiver peripheral", () => {
  let sim: Simulation | undefined;
  let central: SimNoble | undefined;

  afterEach(() => {
    central?.dispose();
    central = undefined;
    sim?.close();
    sim = undefined;
  });

  function simulate(peripheral: JsonObject, link: JsonObject = {}): { sim: Simulation; p: NusYmodemReceiverPeripheral; noble: Noble } {
    sim = new Simulation(parseScenario({ link, peripherals: [{ kind: "nus-ymodem-receiver", address: ADDRESS, ...peripheral }] }, ""), { timeScale: TIME_SCALE });
    central = nobleFor(sim);
    const p = sim.controller.peripheral(ADDRESS);
    assert.ok(p instanceof NusYmodemReceiverPeripheral);
    return { sim, p, noble: central.noble };
  }

  async function connected(peripheral: JsonObject, link: JsonObject = {}): Promise<{ sim: Simulation; p: NusYmodemReceiverPeripheral; conn: NusConnection }> {
    const s = simulate(peripheral, link);
    const conn = await connectNus(s.noble, ADDRESS, 247);
    await conn.tx.subscribeAsync();
    return { sim: s.sim, p: s.p, conn };
  }

  it("receives a 1000-byte file from a standard YMODEM sender byte-exact (C, ACK per block, empty block 0 ends the batch)", async () => {
    const { sim: s, p, conn } = await connected({});
    const data = contents(1000, 1);
    const run = await sendYmodem(conn, p, s.clock, { files: [{ name: "config.json", data }] });
    assert.equal(run.transfer.outcome, "completed");
    assert.deepEqual(run.transfer.files, ["config.json"]);
    assert.equal(run.sender.state, "done");
    assert.equal(p.received.length, 1);
    assert.equal(p.received[0].name, "config.json");
    assert.equal(p.received[0].size, 1000);
    assert.ok(p.received[0].data.equals(data));
    assert.deepEqual(run.files, p.received);
    assert.equal(run.notifications[0][0], WANT_CRC, "the receiver starts with C");
    assert.deepEqual(p.violations, []);
  });

  it("is a registered scenario kind with documented defaults", () => {
    const p = createPeripheral({ kind: "nus-ymodem-receiver", address: ADDRESS }, "peripherals[0]", { clock: new ManualClock(), link: DEFAULT_LINK, baseDir: "" });
    assert.ok(p instanceof NusYmodemReceiverPeripheral);
    assert.deepEqual([p.kind, p.name, p.addressType, p.dialect, p.startMode], ["nus-ymodem-receiver", "mpy-nus", "random", "standard", "C"]);
    assert.equal(p.lastTransfer, null);
    assert.deepEqual(p.received, []);
  });
});
