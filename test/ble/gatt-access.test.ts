/**
 * Generic GATT access (src/ble/gatt-access.ts) on a session of the fake noble, on a manual clock: writes checked
 * against the characteristic's properties and the link's MTU, and request/reply exchanges serialised per session
 * in which a late reply is never the answer to a later request.
 */
import assert from "node:assert/strict";
import { exchange, writeValue, type Exchange } from "../../src/ble/gatt-access";
import { BleAdapter, DEFAULT_POLICY, type DeviceSession } from "../../src/ble/pool";
import { BleProblemError, type BleProblem } from "../../src/ble/problem";
import { FakeCharacteristic, FakeNoble, FakePeripheral, FakeService } from "../support/fake-noble";
import { ManualClock } from "../support/manual-clock";

const A = "aa:00:00:00:00:01";
const SVC = "fff0";
/** write + notify: the request and its reply on one characteristic. */
const RW = "fff1";
/** write without response only */
const WO = "fff2";
/** read only */
const RO = "fff3";

const settled = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

async function rejection(promise: Promise<unknown>): Promise<BleProblem> {
  const error = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  assert.ok(error instanceof BleProblemError, `expected a BleProblemError, got ${String(error)}`);
  return error.problem;
}

async function connected(mtu = 23): Promise<{ clock: ManualClock; session: DeviceSession; rw: FakeCharacteristic; wo: FakeCharacteristic; p: FakePeripheral }> {
  const noble = new FakeNoble();
  const clock = new ManualClock();
  const adapter = new BleAdapter({ transport: "simulator", scenario: "" }, DEFAULT_POLICY, { open: noble.opener(), timers: clock });
  adapter.ref();
  noble.setState("poweredOn");
  const rw = new FakeCharacteristic(RW, ["write", "notify"]);
  const wo = new FakeCharacteristic(WO, ["writeWithoutResponse"]);
  const ro = new FakeCharacteristic(RO, ["read"]);
  rw.calls.auto.add("subscribe");
  // The test answers the writes of the request characteristic (written()), so that it knows when one was made.
  rw.calls.auto.delete("write");
  const p = new FakePeripheral({ address: A, mtu, serviceUuids: [SVC], services: [new FakeService(SVC, [rw, wo, ro])] });
  p.calls.auto.add("connect").add("discover").add("disconnect");
  const lease = adapter.lease({ selector: { address: A }, onState: () => undefined, onConnected: () => Promise.resolve() });
  noble.discover(p);
  const session = await lease.use((s) => Promise.resolve(s));
  return { clock, session, rw, wo, p };
}

/** Answers the next write the code under test makes to `c` (its Write Response). */
async function written(c: FakeCharacteristic): Promise<void> {
  (await c.calls.next("write")).resolve();
}

const request = (value: string, extra: Partial<Exchange> = {}): Exchange => ({
  service: SVC,
  characteristic: RW,
  value: Buffer.from(value),
  response: "auto",
  replyService: SVC,
  replyCharacteristic: RW,
  end: { delimiter: Buffer.from("\n") },
  timeoutMs: 1000,
  ...extra,
});

describe("generic GATT access (src/ble/gatt-access.ts, fake noble)", () => {
  describe("writeValue", () => {
    it("writes a value longer than MTU − 3 whole with response (noble's long write), and refuses it without response naming the sizes", async () => {
      const { session, rw, wo } = await connected(23);
      const long = Buffer.alloc(100, 0x41);
      const writing = writeValue(session, SVC, RW, long, "with");
      await written(rw);
      await writing;
      assert.deepEqual(rw.writes, [{ value: long, withoutResponse: false }], "one write of the whole value, with response");
      assert.deepEqual(await rejection(writeValue(session, SVC, WO, long, "auto")), { key: "value-too-long", params: { characteristic: WO, length: 100, max: 20 } });
      assert.deepEqual(wo.writes, [], "nothing written, nothing truncated");
      await writeValue(session, SVC, WO, long.subarray(0, 20), "auto");
      assert.deepEqual(wo.writes, [{ value: long.subarray(0, 20), withoutResponse: true }], "auto: without response where that is all the characteristic allows");
    });

    it("refuses a value longer than an attribute can hold (512) even with response", async () => {
      const { session, rw } = await connected(247);
      assert.deepEqual(await rejection(writeValue(session, SVC, RW, Buffer.alloc(513), "with")), { key: "value-too-long-attribute", params: { characteristic: RW, length: 513, max: 512 } });
      assert.deepEqual(rw.writes, []);
    });

    it("names a characteristic that is missing or lacks the property asked for", async () => {
      const { session } = await connected();
      assert.deepEqual(await rejection(writeValue(session, SVC, "fff9", Buffer.of(1), "auto")), { key: "no-characteristic", params: { characteristic: "fff9", service: SVC, address: A } });
      assert.deepEqual(await rejection(writeValue(session, SVC, RW, Buffer.of(1), "without")), { key: "no-property", params: { characteristic: RW, property: "writeWithoutResponse" } });
      assert.deepEqual(await rejection(writeValue(session, SVC, WO, Buffer.of(1), "with")), { key: "no-property", params: { characteristic: WO, property: "write" } });
      assert.deepEqual(await rejection(writeValue(session, SVC, RO, Buffer.of(1), "auto")), { key: "no-property", params: { characteristic: RO, property: "write" } });
    });
  });

  describe("exchange", () => {
    it("collects a reply over several notifications up to the delimiter", async () => {
      const { clock, session, rw } = await connected();
      const reply = exchange(session, request("*IDN?\n"), undefined, clock);
      await written(rw);
      rw.notify(Buffer.from("ACME,"));
      rw.notify(Buffer.from("X1,"));
      rw.notify(Buffer.from("1.0\nrest"));
      assert.equal((await reply).toString(), "ACME,X1,1.0");
    });

    it("serialises exchanges on one session: the second request is written only once the first has its reply", async () => {
      const { clock, session, rw } = await connected();
      const first = exchange(session, request("A?\n"), undefined, clock);
      const second = exchange(session, request("B?\n"), undefined, clock);
      await written(rw);
      await settled();
      assert.deepEqual(
        rw.writes.map((w) => w.value.toString()),
        ["A?\n"],
        "the second waits",
      );
      rw.notify(Buffer.from("a\n"));
      assert.equal((await first).toString(), "a");
      await written(rw);
      assert.deepEqual(
        rw.writes.map((w) => w.value.toString()),
        ["A?\n", "B?\n"],
      );
      rw.notify(Buffer.from("b\n"));
      assert.equal((await second).toString(), "b");
    });

    it("a reply that comes after its request timed out is never the answer to the next request", async () => {
      const { clock, session, rw } = await connected();
      const first = exchange(session, request("SLOW?\n"), undefined, clock);
      await written(rw);
      clock.advance(1000);
      assert.deepEqual(await rejection(first), { key: "timeout-reply", params: { characteristic: RW, ms: 1000 } });
      // The slow device answers now, between the two requests.
      rw.notify(Buffer.from("late\n"));
      const second = exchange(session, request("FAST?\n"), undefined, clock);
      await settled();
      // The request waits for the strays to stop before it is written.
      clock.advance(50);
      await written(rw);
      rw.notify(Buffer.from("fast\n"));
      assert.equal((await second).toString(), "fast");
    });

    it("ends with not-connected when the link drops while waiting, and with aborted when withdrawn; the next exchange runs", async () => {
      const { clock, session, rw, p } = await connected();
      const withdrawn = new AbortController();
      const first = exchange(session, request("A?\n"), withdrawn.signal, clock);
      await written(rw);
      withdrawn.abort();
      assert.deepEqual(await rejection(first), { key: "aborted", params: {} });
      const second = exchange(session, request("B?\n"), undefined, clock);
      await written(rw);
      p.drop(0x08);
      assert.deepEqual(await rejection(second), { key: "not-connected", params: {} });
      assert.deepEqual(await rejection(exchange(session, request("C?\n"), undefined, clock)), { key: "not-connected", params: {} });
    });

    it("refuses a reply characteristic without notify or indicate before writing anything", async () => {
      const { clock, session, rw } = await connected();
      assert.deepEqual(await rejection(exchange(session, request("X\n", { replyCharacteristic: RO }), undefined, clock)), {
        key: "no-property",
        params: { characteristic: RO, property: "notify" },
      });
      assert.deepEqual(rw.writes, []);
    });
  });
});
