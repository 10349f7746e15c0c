/** The Z3210 command channel wired to a connection (src/ble/hioki-link.ts), on a fake session and a manual clock. */
import assert from "node:assert/strict";
import { HiokiLinkError, openHiokiChannel } from "../../src/ble/hioki-link";
import type { DeviceSession, GattService, PeripheralInfo } from "../../src/ble/pool";
import { encodeHiokiCommand, HIOKI_COMMAND_CHARACTERISTIC, HIOKI_COMMAND_SERVICE } from "../../src/protocol/hioki";
import { HiokiChannelError } from "../../src/protocol/hioki-channel";
import { ManualClock } from "../support/manual-clock";

interface Write {
  bytes: Buffer;
  withoutResponse: boolean;
}

/** A connected Z3210: its command characteristic with the given properties, or none. */
class FakeMeterSession implements DeviceSession {
  readonly info: PeripheralInfo = { address: "a4:9e:69:00:00:01", addressType: "public", name: "Z3210V2.10:DT4261#1", rssi: -50, serviceUuids: [] };
  readonly writes: Write[] = [];
  subscriptions = 0;
  failSubscribe = false;
  listener: ((value: Buffer) => void) | null = null;
  private readonly controller = new AbortController();

  constructor(
    private readonly props: readonly string[] | null,
    readonly mtu = 23,
  ) {}

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  hasCharacteristic(service: string, characteristic: string): boolean {
    return this.props !== null && service === HIOKI_COMMAND_SERVICE && characteristic === HIOKI_COMMAND_CHARACTERISTIC;
  }

  properties(service: string, characteristic: string): readonly string[] {
    return this.hasCharacteristic(service, characteristic) ? (this.props ?? []) : [];
  }

  services(): GattService[] {
    return this.props === null ? [] : [{ uuid: HIOKI_COMMAND_SERVICE, characteristics: [{ uuid: HIOKI_COMMAND_CHARACTERISTIC, properties: this.props }] }];
  }

  subscribe(_service: string, _characteristic: string, onValue: (value: Buffer) => void): Promise<() => void> {
    this.subscriptions++;
    if (this.failSubscribe) return Promise.reject(new Error("subscribe failed"));
    this.listener = onValue;
    return Promise.resolve(() => (this.listener = null));
  }

  read(): Promise<Buffer> {
    return Promise.reject(new Error("not readable"));
  }

  write(_service: string, _characteristic: string, value: Buffer, withoutResponse: boolean): Promise<void> {
    this.writes.push({ bytes: Buffer.from(value), withoutResponse });
    return Promise.resolve();
  }

  drop(): void {
    this.controller.abort();
  }
}

/** Lets the channel's write promises settle, then moves the clock past its quiet gap. */
async function settleAndWait(clock: ManualClock, ms: number): Promise<void> {
  for (let i = 0; i < 3; i++) await new Promise((resolve) => setImmediate(resolve));
  clock.advance(ms);
  for (let i = 0; i < 3; i++) await new Promise((resolve) => setImmediate(resolve));
}

describe("hioki-link: the command channel of a connection", () => {
  it("is one channel per connection, whichever node opens it, with one subscription", async () => {
    const clock = new ManualClock();
    const session = new FakeMeterSession(["write", "writeWithoutResponse", "indicate"]);
    const [a, b] = await Promise.all([openHiokiChannel(session, clock), openHiokiChannel(session, clock)]);
    assert.equal(a, b);
    assert.equal(session.subscriptions, 1);
    const other = await openHiokiChannel(new FakeMeterSession(["write"]), clock);
    assert.notEqual(other, a, "another connection has its own channel");
  });

  it("writes without response in pieces of MTU − 3 when allowed, and the reply goes to the command", async () => {
    const clock = new ManualClock();
    const session = new FakeMeterSession(["write", "writeWithoutResponse", "indicate"], 23);
    const channel = await openHiokiChannel(session, clock);
    const command = "*IDN?;:MEASURE:VOLTAGE:DC?";
    const reply = channel.request(command, encodeHiokiCommand(command), 1000);
    await settleAndWait(clock, 200);
    assert.ok(session.writes.length > 1, "a command longer than 20 bytes goes in pieces");
    assert.ok(session.writes.every((w) => w.withoutResponse && w.bytes.length <= 20));
    assert.deepEqual(Buffer.concat(session.writes.map((w) => w.bytes)), encodeHiokiCommand(command));
    session.listener?.(Buffer.from("HIOKI,DT4261\r\n"));
    assert.equal(await reply, "HIOKI,DT4261\r\n");
  });

  it("writes with response, whole, when Write Without Response is not allowed", async () => {
    const clock = new ManualClock();
    const session = new FakeMeterSession(["write", "indicate"], 23);
    const channel = await openHiokiChannel(session, clock);
    const command = "*IDN?;:MEASURE:VOLTAGE:DC?";
    void channel.request(command, encodeHiokiCommand(command), 1000).catch(() => undefined);
    await settleAndWait(clock, 200);
    assert.deepEqual(session.writes, [{ bytes: encodeHiokiCommand(command), withoutResponse: false }]);
    session.drop();
  });

  it("refuses a device without the command characteristic, or one it cannot write to, without subscribing", async () => {
    const missing = new FakeMeterSession(null);
    await assert.rejects(openHiokiChannel(missing), (e: unknown) => e instanceof HiokiLinkError && e.key === "no-command-channel");
    const readOnly = new FakeMeterSession(["read", "indicate"]);
    await assert.rejects(openHiokiChannel(readOnly), (e: unknown) => e instanceof HiokiLinkError && e.key === "not-writable");
    assert.equal(missing.subscriptions + readOnly.subscriptions, 0);
  });

  it("a failed subscription is not handed out again: the next open subscribes anew", async () => {
    const clock = new ManualClock();
    const session = new FakeMeterSession(["write", "indicate"]);
    session.failSubscribe = true;
    await assert.rejects(openHiokiChannel(session, clock), /subscribe failed/);
    session.failSubscribe = false;
    await openHiokiChannel(session, clock);
    assert.equal(session.subscriptions, 2);
  });

  it("closes with the connection: a command waiting for its reply fails as link-lost", async () => {
    const clock = new ManualClock();
    const session = new FakeMeterSession(["write", "indicate"]);
    const channel = await openHiokiChannel(session, clock);
    const reply = channel.request("FETC?", encodeHiokiCommand("FETC?"), 1000);
    await settleAndWait(clock, 200);
    session.drop();
    await assert.rejects(reply, (e: unknown) => e instanceof HiokiChannelError && e.code === "link-lost");
  });
});
