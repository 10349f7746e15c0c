import { strict as assert } from "node:assert";
import { addressToBytes, ADV_IND, CID_ATT, CID_LE_SIGNALING, CID_SMP, HCI_COMMAND_DISALLOWED, HCI_UNKNOWN_CONNECTION_ID, OP, PB_CONTINUING, PB_FIRST_FLUSHABLE, PB_FIRST_NON_FLUSHABLE, SCAN_RSP } from "../../src/protocol/hci";
import { buildAcl, buildCommand, buildL2cap, type CommandComplete, parseAcl, parseCommandComplete, parseCommandStatus, parseDisconnectionComplete, parseL2capHeader, parseLeAdvertisingReports, parseLeConnectionComplete, parseNumberOfCompletedPackets } from "../../src/protocol/hci-packets";
import { VirtualController, exchangeAirTimeUs, maxPdusPerEvent, placeAnchor, radioSlotsMs, type ConnectionEventInfo } from "../../src/sim/controller";
import { DEFAULT_LINK, type LinkSettings } from "../../src/sim/types";
import { escapesDuring } from "../support/escapes";
import { FakePeripheral } from "../support/fake-peripheral";
import { ManualClock } from "../support/manual-clock";

/** Plays the host: writes H4 packets, collects what the controller emits. */
class Host {
  readonly received: Buffer[] = [];

  constructor(readonly controller: VirtualController) {
    controller.on("h4", (packet: Buffer) => this.received.push(packet));
  }

  command(op: number, params: Buffer = Buffer.alloc(0)): void {
    this.controller.write(buildCommand(op, params));
  }

  /** Sends an L2CAP PDU as noble does: first fragment PB=00, the rest PB=01, each at most `fragment` bytes. */
  l2cap(handle: number, cid: number, payload: Buffer, fragment = 251): number {
    const frame = buildL2cap(cid, payload);
    let count = 0;
    for (let offset = 0; offset < frame.length; offset += fragment) {
      this.controller.write(buildAcl(handle, offset === 0 ? PB_FIRST_NON_FLUSHABLE : PB_CONTINUING, frame.subarray(offset, offset + fragment)));
      count++;
    }
    return count;
  }

  /** Lets the controller emit what it queued (it always replies on a later tick). */
  async settle(): Promise<void> {
    for (let i = 0; i < 3; i++) await new Promise<void>((resolve) => setImmediate(resolve));
  }

  take(): Buffer[] {
    return this.received.splice(0);
  }

  commandCompletes(packets = this.received): CommandComplete[] {
    return packets.map((p) => parseCommandComplete(p)).filter((c): c is CommandComplete => c !== undefined);
  }

  /** ATT PDUs (CID 4) reassembled from the controller's ACL packets, checking the boundary flags on the way. */
  attFromAcl(packets = this.received): Buffer[] {
    return this.l2capFromAcl(packets)
      .filter((f) => f.cid === CID_ATT)
      .map((f) => f.payload);
  }

  l2capFromAcl(packets = this.received): { cid: number; payload: Buffer }[] {
    const out: { cid: number; payload: Buffer }[] = [];
    let partial: { cid: number; length: number; data: Buffer } | undefined;
    for (const packet of packets) {
      const acl = parseAcl(packet);
      if (!acl) continue;
      if (acl.pb === PB_FIRST_FLUSHABLE) {
        assert.equal(partial, undefined, "a new PDU started before the previous one ended");
        const header = parseL2capHeader(acl.data);
        assert.ok(header);
        partial = { cid: header.cid, length: header.length, data: Buffer.from(acl.data.subarray(4)) };
      } else {
        assert.equal(acl.pb, PB_CONTINUING, "controller → host fragments are PB=10 then PB=01");
        assert.ok(partial, "continuation without a start");
        partial.data = Buffer.concat([partial.data, acl.data]);
      }
      if (partial.data.length === partial.length) {
        out.push({ cid: partial.cid, payload: partial.data });
        partial = undefined;
      }
    }
    return out;
  }
}

function createConnectionParams(address: string, random: boolean, supervisionUnits = 0x2a): Buffer {
  const p = Buffer.alloc(25);
  p.writeUInt16LE(0x60, 0);
  p.writeUInt16LE(0x30, 2);
  p[4] = 0;
  p[5] = random ? 1 : 0;
  addressToBytes(address).copy(p, 6);
  p[12] = 0;
  p.writeUInt16LE(6, 13);
  p.writeUInt16LE(12, 15);
  p.writeUInt16LE(0, 17);
  p.writeUInt16LE(supervisionUnits, 19);
  p.writeUInt16LE(4, 21);
  p.writeUInt16LE(6, 23);
  return p;
}

function setup(link: Partial<LinkSettings> = {}, peripherals = [new FakePeripheral()]) {
  const clock = new ManualClock();
  const controller = new VirtualController({ clock, link: { ...DEFAULT_LINK, ...link } });
  for (const p of peripherals) controller.addPeripheral(p);
  const host = new Host(controller);
  const events: ConnectionEventInfo[] = [];
  controller.on("connectionEvent", (info: ConnectionEventInfo) => events.push(info));
  return { clock, controller, host, events, peripheral: peripherals[0] };
}

/** Connects the host to `peripheral`; returns the connection handle. */
async function connect(ctx: ReturnType<typeof setup>, peripheral = ctx.peripheral, supervisionUnits = 0x2a): Promise<number> {
  ctx.host.command(OP.LE_CREATE_CONNECTION, createConnectionParams(peripheral.address, peripheral.addressType === "random", supervisionUnits));
  ctx.clock.advance(20);
  await ctx.host.settle();
  const complete = ctx.host
    .take()
    .map((p) => parseLeConnectionComplete(p))
    .find((c) => c !== undefined);
  assert.ok(complete, "LE Connection Complete");
  assert.equal(complete.status, 0);
  return complete.handle;
}

const notification = (size: number, seq = 0) => {
  const pdu = Buffer.alloc(3 + size);
  pdu[0] = 0x1b;
  pdu.writeUInt16LE(3, 1);
  if (size >= 4) pdu.writeUInt32LE(seq, 3);
  return pdu;
};

describe("sim/controller", () => {
  describe("initialisation (the commands noble sends)", () => {
    it("answers Reset with exactly the completion noble's UART driver waits for, and never synchronously", async () => {
      const { host } = setup();
      host.command(OP.RESET);
      assert.equal(host.received.length, 0, "no reply inside write()");
      await host.settle();
      assert.deepEqual(
        host.take().map((p) => p.toString("hex")),
        ["040e0401030c00"],
      );
    });

    it("answers noble's burst of init commands in order, with what noble needs", async () => {
      const { host, controller } = setup();
      const burst = [
        OP.RESET,
        OP.LE_READ_LOCAL_SUPPORTED_FEATURES,
        OP.SET_EVENT_MASK,
        OP.LE_SET_EVENT_MASK,
        OP.READ_LOCAL_VERSION,
        OP.READ_BD_ADDR,
        OP.LE_READ_MAX_DATA_LENGTH,
        OP.WRITE_LE_HOST_SUPPORTED,
        OP.READ_LE_HOST_SUPPORTED,
        OP.LE_READ_BUFFER_SIZE,
        OP.READ_BUFFER_SIZE,
        OP.READ_BD_ADDR,
      ];
      for (const op of burst) host.command(op, op === OP.SET_EVENT_MASK || op === OP.LE_SET_EVENT_MASK ? Buffer.alloc(8, 0xff) : Buffer.alloc(0));
      host.command(OP.LE_SET_SCAN_ENABLE, Buffer.from([0, 1]));
      host.command(OP.LE_SET_SCAN_PARAMETERS, Buffer.from([1, 0x12, 0, 0x12, 0, 0, 0]));
      await host.settle();
      const replies = host.commandCompletes(host.take());
      assert.deepEqual(
        replies.map((r) => r.opcode),
        [...burst, OP.LE_SET_SCAN_ENABLE, OP.LE_SET_SCAN_PARAMETERS],
      );
      for (const r of replies) assert.equal(r.status, 0, `status of 0x${r.opcode.toString(16)}`);
      const by = (op: number) => replies.find((r) => r.opcode === op)?.result ?? Buffer.alloc(0);
      assert.ok(by(OP.READ_LOCAL_VERSION)[0] >= 6, "HCI version >= 6");
      const features = by(OP.LE_READ_LOCAL_SUPPORTED_FEATURES);
      assert.equal(features.length, 8);
      assert.equal(features[0] & 0x20, 0x20, "DLE bit with dataLength 251");
      assert.equal(features[1] & 0x18, 0, "no coded PHY, no extended advertising");
      assert.deepEqual([...by(OP.LE_READ_BUFFER_SIZE)], [251, 0, 8]);
      assert.equal(by(OP.READ_BD_ADDR).toString("hex"), addressToBytes(controller.address).toString("hex"));
      const max = by(OP.LE_READ_MAX_DATA_LENGTH);
      assert.equal(max.readUInt16LE(0), 251);
      assert.ok(max.readUInt16LE(2) >= 0x148);
    });

    it("without DLE (dataLength 27) clears the feature bit and sizes the ACL buffers to 27", async () => {
      const { host } = setup({ dataLength: 27 });
      host.command(OP.LE_READ_LOCAL_SUPPORTED_FEATURES);
      host.command(OP.LE_READ_BUFFER_SIZE);
      await host.settle();
      const [features, buffers] = host.commandCompletes(host.take());
      assert.equal(features.result[0] & 0x20, 0);
      assert.deepEqual([...buffers.result], [27, 0, 8]);
    });

    it("answers unknown commands with Command Complete status 0x01, never with silence", async () => {
      const { host } = setup();
      host.command(0x2041, Buffer.alloc(8)); // LE Set Extended Scan Parameters
      host.command(0xfc01, Buffer.alloc(6)); // vendor specific
      await host.settle();
      assert.deepEqual(
        host.commandCompletes(host.take()).map((r) => [r.opcode, r.status]),
        [
          [0x2041, 0x01],
          [0xfc01, 0x01],
        ],
      );
    });
  });

  describe("scanning", () => {
    const two = () => [new FakePeripheral({ address: "c0:ff:ee:00:00:01", name: "one" }), new FakePeripheral({ address: "c0:ff:ee:00:00:02", name: "two", addressType: "public" })];

    it("reports ADV_IND then SCAN_RSP per peripheral, one report per event, every advertising interval", async () => {
      const ctx = setup({}, two());
      ctx.host.command(OP.LE_SET_SCAN_PARAMETERS, Buffer.from([1, 0x12, 0, 0x12, 0, 0, 0]));
      ctx.host.command(OP.LE_SET_SCAN_ENABLE, Buffer.from([1, 0]));
      ctx.clock.advance(250);
      await ctx.host.settle();
      const packets = ctx.host.take();
      assert.equal(ctx.host.commandCompletes(packets).length, 2, "replies come first");
      const reports = packets.map((p) => parseLeAdvertisingReports(p)).filter((r) => r !== undefined);
      for (const r of reports) assert.equal(r.length, 1, "one report per event");
      const flat = reports.map((r) => r[0]);
      assert.equal(flat.length, 3 * 4, "rounds at 0, 100 and 200 ms");
      assert.deepEqual(
        flat.slice(0, 4).map((r) => [r.address, r.eventType, r.addressType]),
        [
          ["c0:ff:ee:00:00:01", ADV_IND, 1],
          ["c0:ff:ee:00:00:01", SCAN_RSP, 1],
          ["c0:ff:ee:00:00:02", ADV_IND, 0],
          ["c0:ff:ee:00:00:02", SCAN_RSP, 0],
        ],
      );
      assert.deepEqual(flat[0].data, ctx.peripheral.advertisingData());
      assert.deepEqual(flat[1].data, ctx.peripheral.scanResponseData());
    });

    it("with duplicate filtering reports each peripheral once per scan, again after re-enabling", async () => {
      const ctx = setup({}, two());
      ctx.host.command(OP.LE_SET_SCAN_PARAMETERS, Buffer.from([1, 0x12, 0, 0x12, 0, 0, 0]));
      ctx.host.command(OP.LE_SET_SCAN_ENABLE, Buffer.from([1, 1]));
      ctx.clock.advance(1000);
      await ctx.host.settle();
      const count = () => ctx.host.take().filter((p) => parseLeAdvertisingReports(p)).length;
      assert.equal(count(), 4);
      ctx.host.command(OP.LE_SET_SCAN_ENABLE, Buffer.from([0, 1]));
      ctx.host.command(OP.LE_SET_SCAN_ENABLE, Buffer.from([1, 1]));
      ctx.clock.advance(1000);
      await ctx.host.settle();
      assert.equal(count(), 4);
    });

    it("leaves out powered-off and connected peripherals, and reports a peripheral again when it powers on", async () => {
      const [one, two_] = two();
      const ctx = setup({}, [one, two_]);
      ctx.controller.powerOff(two_.address);
      await connect(ctx, one);
      ctx.host.command(OP.LE_SET_SCAN_PARAMETERS, Buffer.from([1, 0x12, 0, 0x12, 0, 0, 0]));
      ctx.host.command(OP.LE_SET_SCAN_ENABLE, Buffer.from([1, 1]));
      ctx.clock.advance(500);
      await ctx.host.settle();
      const addresses = () =>
        ctx.host
          .take()
          .map((p) => parseLeAdvertisingReports(p))
          .filter((r) => r !== undefined)
          .map((r) => r[0].address);
      assert.deepEqual(addresses(), []);
      ctx.controller.powerOn(two_.address);
      ctx.clock.advance(200);
      await ctx.host.settle();
      assert.deepEqual(addresses(), [two_.address, two_.address]);
    });

    it("scans passively until told otherwise (Core spec default LE_Scan_Type 0x00), also after a Reset", async () => {
      const ctx = setup();
      const types = () =>
        ctx.host
          .take()
          .map((p) => parseLeAdvertisingReports(p))
          .filter((r) => r !== undefined)
          .map((r) => r[0].eventType);
      ctx.host.command(OP.LE_SET_SCAN_ENABLE, Buffer.from([1, 0]));
      ctx.clock.advance(150);
      await ctx.host.settle();
      assert.deepEqual(types(), [ADV_IND, ADV_IND], "no SCAN_REQ, so no SCAN_RSP, before LE Set Scan Parameters");
      ctx.host.command(OP.LE_SET_SCAN_ENABLE, Buffer.from([0, 0]));
      ctx.host.command(OP.LE_SET_SCAN_PARAMETERS, Buffer.from([1, 0x12, 0, 0x12, 0, 0, 0]));
      ctx.host.command(OP.RESET);
      ctx.host.command(OP.LE_SET_SCAN_ENABLE, Buffer.from([1, 0]));
      ctx.clock.advance(150);
      await ctx.host.settle();
      assert.deepEqual(types(), [ADV_IND, ADV_IND], "Reset returns the parameters to passive");
    });

    it("refuses LE Set Scan Enable with a reserved value (Invalid HCI Command Parameters 0x12) and keeps its state", async () => {
      const ctx = setup();
      ctx.host.command(OP.LE_SET_SCAN_ENABLE, Buffer.from([1, 0]));
      ctx.host.command(OP.LE_SET_SCAN_ENABLE, Buffer.from([2, 0])); // no such LE_Scan_Enable
      ctx.host.command(OP.LE_SET_SCAN_ENABLE, Buffer.from([0, 2])); // no such Filter_Duplicates
      ctx.clock.advance(150);
      await ctx.host.settle();
      const packets = ctx.host.take();
      assert.deepEqual(
        ctx.host.commandCompletes(packets).map((c) => c.status),
        [0x00, 0x12, 0x12],
      );
      assert.equal(packets.filter((p) => parseLeAdvertisingReports(p)).length, 2, "still scanning: neither refused command stopped it");
    });

    it("sends no scan responses to a passive scan, and stops on Scan Enable off and on Reset", async () => {
      const ctx = setup();
      ctx.host.command(OP.LE_SET_SCAN_PARAMETERS, Buffer.from([0, 0x12, 0, 0x12, 0, 0, 0]));
      ctx.host.command(OP.LE_SET_SCAN_ENABLE, Buffer.from([1, 0]));
      ctx.clock.advance(150);
      await ctx.host.settle();
      const types = () =>
        ctx.host
          .take()
          .map((p) => parseLeAdvertisingReports(p))
          .filter((r) => r !== undefined)
          .map((r) => r[0].eventType);
      assert.deepEqual(types(), [ADV_IND, ADV_IND]);
      ctx.host.command(OP.LE_SET_SCAN_ENABLE, Buffer.from([0, 0]));
      ctx.clock.advance(500);
      await ctx.host.settle();
      assert.deepEqual(types(), []);
      ctx.host.command(OP.LE_SET_SCAN_ENABLE, Buffer.from([1, 0]));
      ctx.host.command(OP.RESET);
      ctx.clock.advance(500);
      await ctx.host.settle();
      assert.deepEqual(types(), []);
    });
  });

  describe("connections", () => {
    it("LE Create Connection: Command Status, then LE Connection Complete as central with the peer's address", async () => {
      const ctx = setup();
      ctx.host.command(OP.LE_CREATE_CONNECTION, createConnectionParams(ctx.peripheral.address, true));
      await ctx.host.settle();
      assert.deepEqual(parseCommandStatus(ctx.host.take()[0]), { status: 0, numCommandPackets: 1, opcode: OP.LE_CREATE_CONNECTION });
      ctx.clock.advance(20);
      await ctx.host.settle();
      const complete = parseLeConnectionComplete(ctx.host.take()[0]);
      assert.ok(complete);
      assert.deepEqual({ ...complete, handle: 0 }, { status: 0, handle: 0, role: 0, peerAddressType: 1, peerAddress: ctx.peripheral.address, interval: 6, latency: 0, supervisionTimeout: 42, clockAccuracy: 0 });
      assert.equal(ctx.peripheral.connections, 1);
      assert.ok(ctx.peripheral.link?.connected);
      assert.ok(ctx.controller.isConnected(ctx.peripheral.address));
    });

    it("does not complete towards a powered-off peripheral until LE Create Connection Cancel: Command Complete, then Connection Complete 0x02", async () => {
      const ctx = setup();
      ctx.controller.powerOff(ctx.peripheral.address);
      ctx.host.command(OP.LE_CREATE_CONNECTION, createConnectionParams(ctx.peripheral.address, true));
      ctx.clock.advance(10000);
      await ctx.host.settle();
      assert.equal(ctx.host.take().length, 1, "only the Command Status");
      ctx.host.command(OP.LE_CREATE_CONNECTION_CANCEL);
      await ctx.host.settle();
      const [cc, complete] = ctx.host.take();
      assert.deepEqual(parseCommandComplete(cc), { numCommandPackets: 1, opcode: OP.LE_CREATE_CONNECTION_CANCEL, status: 0, result: Buffer.alloc(0) });
      const c = parseLeConnectionComplete(complete);
      assert.equal(c?.status, 0x02);
      assert.equal(c?.peerAddress, ctx.peripheral.address);
      assert.equal(ctx.peripheral.connections, 0);
      // Nothing to cancel any more.
      ctx.host.command(OP.LE_CREATE_CONNECTION_CANCEL);
      await ctx.host.settle();
      assert.equal(ctx.host.commandCompletes(ctx.host.take())[0].status, HCI_COMMAND_DISALLOWED);
    });

    it("completes a pending LE Create Connection when the peripheral powers on", async () => {
      const ctx = setup();
      ctx.controller.powerOff(ctx.peripheral.address);
      ctx.host.command(OP.LE_CREATE_CONNECTION, createConnectionParams(ctx.peripheral.address, true));
      ctx.clock.advance(1000);
      ctx.controller.powerOn(ctx.peripheral.address);
      ctx.clock.advance(20);
      await ctx.host.settle();
      assert.equal(parseLeConnectionComplete(ctx.host.take()[1])?.status, 0);
    });

    it("connects only to the address type it was given, and refuses a second Create Connection while one is pending", async () => {
      const ctx = setup();
      ctx.host.command(OP.LE_CREATE_CONNECTION, createConnectionParams(ctx.peripheral.address, false));
      ctx.host.command(OP.LE_CREATE_CONNECTION, createConnectionParams(ctx.peripheral.address, true));
      ctx.clock.advance(1000);
      await ctx.host.settle();
      const packets = ctx.host.take();
      assert.deepEqual(
        packets.map((p) => parseCommandStatus(p)?.status),
        [0, HCI_COMMAND_DISALLOWED],
      );
    });

    it("Disconnect: Command Status, then Disconnection Complete (0x16 local host) to the host and 0x13 to the peripheral", async () => {
      const ctx = setup();
      const handle = await connect(ctx);
      const params = Buffer.from([handle & 0xff, handle >> 8, 0x13]);
      ctx.host.command(OP.DISCONNECT, params);
      ctx.host.command(OP.DISCONNECT, Buffer.from([0x99, 0x00, 0x13]));
      ctx.clock.advance(10);
      await ctx.host.settle();
      const [status, unknown, done] = ctx.host.take();
      assert.equal(parseCommandStatus(status)?.status, 0);
      assert.equal(parseCommandStatus(unknown)?.status, HCI_UNKNOWN_CONNECTION_ID);
      assert.deepEqual(parseDisconnectionComplete(done), { status: 0, handle, reason: 0x16 });
      assert.deepEqual(ctx.peripheral.disconnectReasons, [0x13]);
      assert.equal(ctx.controller.isConnected(ctx.peripheral.address), false);
    });

    it("Disconnect after a Write Command: the write reaches the peripheral before the link ends", async () => {
      const ctx = setup();
      const handle = await connect(ctx);
      ctx.host.l2cap(handle, CID_ATT, Buffer.from([0x52, 0x10, 0x00, 0x06])); // Write Command: a final ACK
      ctx.host.command(OP.DISCONNECT, Buffer.from([handle & 0xff, handle >> 8, 0x13]));
      ctx.clock.advance(30);
      await ctx.host.settle();
      assert.deepEqual(ctx.peripheral.received, [Buffer.from([0x52, 0x10, 0x00, 0x06])]);
      assert.deepEqual(ctx.peripheral.disconnectReasons, [0x13]);
      assert.equal(ctx.controller.isConnected(ctx.peripheral.address), false);
    });

    it("a peripheral hangs up: queued notifications first, then Disconnection Complete 0x13 to the host, 0x16 to the peripheral", async () => {
      const ctx = setup();
      const handle = await connect(ctx);
      const link = ctx.peripheral.link!;
      const sent = [link.sendAtt(notification(20, 1)), link.sendAtt(notification(20, 2))];
      link.disconnect();
      link.disconnect();
      assert.equal(link.connected, false, "a hanging-up link takes nothing more");
      await assert.rejects(link.sendAtt(notification(20, 3)), /not connected/);
      ctx.clock.advance(30);
      await ctx.host.settle();
      await Promise.all(sent);
      const packets = ctx.host.take();
      assert.equal(ctx.host.attFromAcl(packets).length, 2, "both queued notifications reached the host");
      const done = packets.map((p) => parseDisconnectionComplete(p)).filter((d) => d !== undefined);
      assert.deepEqual(done, [{ status: 0, handle, reason: 0x13 }]);
      assert.deepEqual(ctx.peripheral.disconnectReasons, [0x16]);
    });

    it("power-off while connected: Disconnection Complete 0x08 after the supervision timeout, pending sends rejected", async () => {
      const ctx = setup();
      const handle = await connect(ctx, ctx.peripheral, 50); // 500 ms
      ctx.controller.powerOff(ctx.peripheral.address);
      const sent = ctx.peripheral.notify(Buffer.from("lost"));
      const rejected = assert.rejects(sent, /dropped/);
      ctx.clock.advance(490);
      await ctx.host.settle();
      assert.equal(
        ctx.host.take().filter((p) => parseDisconnectionComplete(p)).length,
        0,
        "no disconnection before the supervision timeout",
      );
      ctx.clock.advance(20);
      await ctx.host.settle();
      assert.deepEqual(parseDisconnectionComplete(ctx.host.take()[0]), { status: 0, handle, reason: 0x08 });
      assert.deepEqual(ctx.peripheral.disconnectReasons, [0x08]);
      await rejected;
      assert.equal(ctx.host.attFromAcl().length, 0, "nothing reached the host from a powered-off peripheral");
    });

    it("clamps the supervision timeout to at least 100 ms", async () => {
      const ctx = setup();
      await connect(ctx, ctx.peripheral, 1); // 10 ms asked
      ctx.controller.powerOff(ctx.peripheral.address);
      ctx.clock.advance(95);
      assert.deepEqual(ctx.peripheral.disconnectReasons, []);
      ctx.clock.advance(10);
      assert.deepEqual(ctx.peripheral.disconnectReasons, [0x08]);
    });

    it("Reset drops links without events; the peripheral survives and advertises again", async () => {
      const ctx = setup();
      await connect(ctx);
      ctx.host.command(OP.RESET);
      ctx.host.command(OP.LE_SET_SCAN_ENABLE, Buffer.from([1, 0]));
      ctx.clock.advance(50);
      await ctx.host.settle();
      const packets = ctx.host.take();
      assert.equal(packets.filter((p) => parseDisconnectionComplete(p)).length, 0);
      assert.equal(packets.filter((p) => parseLeAdvertisingReports(p)).length, 1, "its ADV_IND (Reset made the scan passive)");
      assert.deepEqual(ctx.peripheral.disconnectReasons, [0x08]);
      assert.equal(ctx.controller.peripheral(ctx.peripheral.address), ctx.peripheral);
      await connect(ctx);
      assert.equal(ctx.peripheral.connections, 2);
    });
  });

  describe("ACL and L2CAP", () => {
    it("reassembles host fragments (PB 00 then 01) into ATT PDUs and completes every host packet", async () => {
      const ctx = setup({ dataLength: 27 });
      const handle = await connect(ctx);
      const value = Buffer.alloc(100, 0x5a);
      const write = Buffer.concat([Buffer.from([0x52, 6, 0]), value]);
      let sent = ctx.host.l2cap(handle, CID_ATT, Buffer.from([0x02, 0x00, 0x01]), 27);
      sent += ctx.host.l2cap(handle, CID_ATT, write, 27);
      assert.equal(sent, 1 + Math.ceil((write.length + 4) / 27));
      ctx.clock.advance(100);
      await ctx.host.settle();
      assert.deepEqual(ctx.peripheral.received, [Buffer.from([0x02, 0x00, 0x01]), write]);
      assert.deepEqual(ctx.peripheral.writes, [value]);
      const completed = ctx.host.received.map((p) => parseNumberOfCompletedPackets(p)).filter((c) => c !== undefined);
      assert.equal(
        completed.flat().reduce((n, c) => (assert.equal(c.handle, handle), n + c.count), 0),
        sent,
        "Number Of Completed Packets for every host packet",
      );
      assert.equal(ctx.controller.counters.hostAclPackets, sent);
      assert.deepEqual(ctx.host.attFromAcl(), [Buffer.from([0x03, 247, 0])], "MTU response");
    });

    it("answers an SMP Pairing Request with Pairing Failed (pairing not supported) and ignores the signalling channel", async () => {
      const ctx = setup();
      const handle = await connect(ctx);
      ctx.host.l2cap(handle, CID_LE_SIGNALING, Buffer.from([0x12, 0x01, 0x08, 0x00, 0x06, 0x00, 0x0c, 0x00, 0x00, 0x00, 0x2a, 0x00]));
      ctx.host.l2cap(handle, CID_SMP, Buffer.from([0x01, 0x03, 0x00, 0x01, 0x10, 0x00, 0x01]));
      ctx.clock.advance(50);
      await ctx.host.settle();
      assert.deepEqual(ctx.host.l2capFromAcl(), [{ cid: CID_SMP, payload: Buffer.from([0x05, 0x05]) }]);
      assert.deepEqual(ctx.peripheral.received, []);
    });

    it("fragments peripheral PDUs (PB=10 first, then PB=01, none above dataLength) and resolves sendAtt once the host has the last fragment", async () => {
      const ctx = setup({ dataLength: 27, pdusPerEvent: 4 });
      const handle = await connect(ctx);
      const pdu = notification(200);
      let resolved = false;
      let packetsAtResolution = 0;
      const sent = ctx.peripheral.notify(pdu.subarray(3)).then(() => {
        resolved = true;
        packetsAtResolution = ctx.host.received.length;
      });
      assert.equal(ctx.peripheral.link?.queuedAttPdus, 1);
      const fragments = Math.ceil((pdu.length + 4) / 27);
      ctx.clock.advance(7.5 * (Math.ceil(fragments / 4) - 1));
      await ctx.host.settle();
      assert.equal(resolved, false, "not before the last fragment");
      ctx.clock.advance(7.5);
      await ctx.host.settle();
      await sent;
      assert.equal(packetsAtResolution, fragments);
      const acl = ctx.host.received.map((p) => parseAcl(p)).filter((a) => a !== undefined);
      assert.equal(acl.length, fragments);
      assert.deepEqual(
        acl.map((a) => a.pb),
        [PB_FIRST_FLUSHABLE, ...Array<number>(fragments - 1).fill(PB_CONTINUING)],
      );
      for (const a of acl) {
        assert.equal(a.handle, handle);
        assert.ok(a.data.length <= 27);
      }
      assert.deepEqual(ctx.host.attFromAcl(), [pdu]);
      assert.equal(ctx.peripheral.link?.queuedAttPdus, 0);
    });

    it("an 'h4' listener that throws on a PDU's last fragment still completes that send: the transmit window does not shrink", async () => {
      const ctx = setup({ dataLength: 251, pdusPerEvent: 6 });
      await connect(ctx);
      const link = ctx.peripheral.link;
      assert.ok(link);
      const failure = new Error("host listener failed");
      let throwOnNextAcl = true;
      ctx.controller.on("h4", (packet: Buffer) => {
        if (throwOnNextAcl && parseAcl(packet)) {
          throwOnNextAcl = false;
          throw failure;
        }
      });
      const settled: string[] = [];
      // An 'h4' listener's exception surfaces from the controller's flush on a later tick, as an uncaught exception.
      const thrown = await escapesDuring(async () => {
        for (const seq of [1, 2]) {
          link.sendAtt(notification(20, seq)).then(
            () => settled.push(`sent ${seq}`),
            () => settled.push(`failed ${seq}`),
          );
        }
        assert.equal(link.queuedAttPdus, 2);
        ctx.clock.advance(7.5);
        await ctx.host.settle();
      });
      assert.deepEqual(thrown, [failure], "the listener's error is not swallowed");
      assert.deepEqual(settled, ["sent 1", "sent 2"], "both sends complete, the first one's packet went to the host before the listener threw");
      assert.equal(link.queuedAttPdus, 0, "nothing stays counted as queued");
      assert.deepEqual(ctx.host.attFromAcl(), [notification(20, 1), notification(20, 2)], "each packet reached the host once, in order");
    });
  });

  describe("link timing", () => {
    /** Queues `count` notifications of `size` value bytes and runs the link until they are all through. */
    async function burst(link: Partial<LinkSettings>, count: number, size: number) {
      const ctx = setup(link);
      await connect(ctx);
      ctx.events.length = 0;
      const done = ctx.peripheral.sendNotifications(count, size);
      const l2capLength = 3 + size + 4;
      const pdus = count * Math.ceil(l2capLength / ctx.controller.link.dataLength);
      const perEvent = maxPdusPerEvent(ctx.controller.link, Math.min(l2capLength, ctx.controller.link.dataLength));
      ctx.clock.advance(ctx.controller.link.connectionIntervalMs * (Math.ceil(pdus / perEvent) + 2));
      await ctx.host.settle();
      await done;
      const carrying = ctx.events.filter((e) => e.toCentralPdus > 0);
      const att = ctx.host.attFromAcl();
      assert.equal(att.length, count);
      att.forEach((pdu, i) => assert.equal(pdu.readUInt32LE(3), i, "in order"));
      return { ctx, carrying, pdus, perEvent };
    }

    const cases: { name: string; link: Partial<LinkSettings>; size: number; expected: number }[] = [
      { name: "27-byte PDUs at 7.5 ms: air time allows 11 even if pdusPerEvent says 20", link: { dataLength: 27, pdusPerEvent: 20 }, size: 20, expected: 11 },
      { name: "251-byte PDUs at 7.5 ms: air time allows 3 even if pdusPerEvent says 6", link: { dataLength: 251, pdusPerEvent: 6 }, size: 244, expected: 3 },
      { name: "pdusPerEvent 4 bounds 27-byte PDUs below the air time", link: { dataLength: 27, pdusPerEvent: 4 }, size: 20, expected: 4 },
      { name: "a 30 ms interval fits 11 PDUs of 251 bytes, bounded by pdusPerEvent 8", link: { dataLength: 251, pdusPerEvent: 8, connectionIntervalMs: 30 }, size: 244, expected: 8 },
    ];
    for (const c of cases) {
      it(`carries at most min(pdusPerEvent, air time) PDUs per event: ${c.name}`, async () => {
        const { carrying, pdus, perEvent } = await burst(c.link, 120, c.size);
        assert.equal(perEvent, c.expected);
        assert.equal(Math.max(...carrying.map((e) => e.toCentralPdus)), c.expected);
        for (const e of carrying) assert.ok(e.airTimeUs <= (c.link.connectionIntervalMs ?? 7.5) * 1000, "the event fits its interval");
        // Every event but the last is full: the link runs at exactly the bound, no faster, no slower.
        assert.equal(carrying.length, Math.ceil(pdus / c.expected));
        assert.equal(carrying.slice(0, -1).every((e) => e.toCentralPdus === c.expected), true);
      });
    }

    it("splits a PDU longer than dataLength over ceil(length / dataLength) link-layer PDUs", async () => {
      const { carrying } = await burst({ dataLength: 27, pdusPerEvent: 6 }, 10, 240); // 247-byte L2CAP PDUs: 10 fragments each
      assert.equal(
        carrying.reduce((n, e) => n + e.toCentralPdus, 0),
        10 * Math.ceil(247 / 27),
      );
      assert.equal(carrying.length, Math.ceil((10 * 10) / 6));
    });

    it("keeps connection events on an absolute schedule when timers fire late", async () => {
      const ctx = setup({ connectionIntervalMs: 7.5 });
      await connect(ctx);
      ctx.events.length = 0;
      ctx.clock.lateMs = 3.2;
      const from = ctx.clock.now();
      ctx.clock.advance(1000);
      const times = ctx.events.map((e) => e.atMs);
      for (let i = 1; i < times.length; i++) assert.equal(times[i] - times[i - 1], 7.5);
      assert.ok(Math.abs(times.length - 1000 / 7.5) <= 2, `about ${1000 / 7.5} events, got ${times.length}`);
      assert.ok(times[0] > from - 7.5 && times[0] <= from + 7.5);
    });

    it("bounds the central → peripheral direction the same way and completes host packets per event", async () => {
      const ctx = setup({ dataLength: 27, pdusPerEvent: 4 });
      const handle = await connect(ctx);
      ctx.events.length = 0;
      // Like noble: at most 8 packets outstanding, more only as Number Of Completed Packets come back.
      let credits = 8;
      let toSend = 40;
      const completions: number[] = [];
      while (toSend > 0 || credits < 8) {
        while (credits > 0 && toSend > 0) {
          ctx.host.l2cap(handle, CID_ATT, Buffer.concat([Buffer.from([0x52, 6, 0]), Buffer.alloc(20, toSend)]), 27);
          credits--;
          toSend--;
        }
        ctx.clock.advance(7.5);
        await ctx.host.settle();
        for (const p of ctx.host.take()) {
          for (const c of parseNumberOfCompletedPackets(p) ?? []) {
            credits += c.count;
            completions.push(c.count);
          }
        }
      }
      assert.equal(ctx.peripheral.writes.length, 40);
      const carrying = ctx.events.filter((e) => e.toPeripheralPdus > 0);
      assert.equal(Math.max(...carrying.map((e) => e.toPeripheralPdus)), 4);
      assert.equal(carrying.length, 10);
      assert.deepEqual(completions, Array<number>(10).fill(4));
    });

    it("shares an event's air time between both directions", async () => {
      const ctx = setup({ dataLength: 251, pdusPerEvent: 6 });
      const handle = await connect(ctx);
      ctx.events.length = 0;
      for (let i = 0; i < 6; i++) void ctx.peripheral.notify(Buffer.alloc(244));
      for (let i = 0; i < 6; i++) ctx.host.l2cap(handle, CID_ATT, Buffer.concat([Buffer.from([0x52, 6, 0]), Buffer.alloc(244)]));
      ctx.clock.advance(7.5);
      const [event] = ctx.events;
      // Two full exchanges (251 bytes each way) take 8.95 ms: only one fits a 7.5 ms event.
      assert.ok(2 * exchangeAirTimeUs(251, 251) > 7500);
      assert.equal(event.toCentralPdus, 1);
      assert.equal(event.toPeripheralPdus, 1);
      await ctx.host.settle();
    });

    it("exposes queued ATT PDUs for backpressure and counts traffic", async () => {
      const ctx = setup({ dataLength: 251, pdusPerEvent: 6 });
      await connect(ctx);
      const link = ctx.peripheral.link;
      assert.ok(link);
      const all = Promise.all(Array.from({ length: 9 }, () => link.sendAtt(notification(100))));
      assert.equal(link.queuedAttPdus, 9);
      ctx.clock.advance(7.5);
      await ctx.host.settle();
      const perEvent = maxPdusPerEvent(ctx.controller.link, 107);
      assert.equal(perEvent, 5, "air time: 5 × 1316 µs fit 7.5 ms");
      assert.equal(link.queuedAttPdus, 9 - perEvent);
      ctx.clock.advance(15);
      await ctx.host.settle();
      await all;
      assert.equal(link.queuedAttPdus, 0);
      assert.equal(ctx.controller.counters.controllerAclPackets, 9);
      assert.equal(ctx.controller.counters.controllerAclBytes, 9 * 107);
      assert.ok(ctx.controller.counters.connectionEvents >= 3);
    });
  });

  describe("one radio for every link", () => {
    const sensors = (n: number) => Array.from({ length: n }, (_, i) => new FakePeripheral({ address: `c0:ff:ee:00:00:${(i + 1).toString(16).padStart(2, "0")}` }));

    /** Connects every peripheral of `ctx`, one after another as noble does; returns their handles. */
    async function connectAll(ctx: ReturnType<typeof setup>, peripherals: FakePeripheral[]): Promise<number[]> {
      const handles: number[] = [];
      for (const p of peripherals) handles.push(await connect(ctx, p));
      ctx.events.length = 0;
      return handles;
    }

    /** Events in the order the radio ran them never overlap. */
    function assertNoOverlap(events: ConnectionEventInfo[]): void {
      const ran = events.filter((e) => !e.skipped).sort((a, b) => a.startMs - b.startMs);
      for (let i = 1; i < ran.length; i++) {
        const previousEnd = ran[i - 1].startMs + ran[i - 1].airTimeUs / 1000;
        assert.ok(ran[i].startMs >= previousEnd - 1e-9, `event of 0x${ran[i].handle.toString(16)} at ${ran[i].startMs} ms starts before the previous one ends (${previousEnd} ms)`);
      }
    }

    /** The ATT PDUs the host received on one connection. */
    const attOn = (host: Host, packets: Buffer[], handle: number) => host.attFromAcl(packets.filter((p) => parseAcl(p)?.handle === handle));

    it("places each new link's anchor in the middle of the largest free gap", () => {
      assert.equal(placeAnchor([], 7.5, 20), 5);
      assert.equal(placeAnchor([1], 7.5), 4.75);
      assert.deepEqual([placeAnchor([0, 3.75], 7.5), placeAnchor([0, 1.875, 3.75], 7.5)], [1.875, 5.625]);
      const slots = radioSlotsMs(7, 7.5);
      assert.equal(slots.reduce((a, b) => a + b, 0), 7.5, "the slots cover the interval once");
      assert.deepEqual([...slots].sort((a, b) => a - b), [0.9375, 0.9375, 0.9375, 0.9375, 0.9375, 0.9375, 1.875]);
    });

    it("two busy links share the interval: events never overlap and together they carry what one link alone would", async () => {
      const peripherals = sensors(2);
      const ctx = setup({ dataLength: 27, pdusPerEvent: 20 }, peripherals);
      const handles = await connectAll(ctx, peripherals);
      const count = 200;
      const done = Promise.all(peripherals.map((p) => p.sendNotifications(count, 4)));
      const l2cap = 3 + 4 + 4;
      const alone = maxPdusPerEvent(ctx.controller.link, l2cap);
      const [slotA, slotB] = radioSlotsMs(2, 7.5);
      const shared = maxPdusPerEvent(ctx.controller.link, l2cap, slotA) + maxPdusPerEvent(ctx.controller.link, l2cap, slotB);
      assert.equal(alone, 13);
      assert.equal(shared, 12, "two half intervals hold 6 + 6 exchanges of 564 µs");
      ctx.clock.advance(7.5 * (Math.ceil((2 * count) / shared) + 2));
      await ctx.host.settle();
      await done;
      const packets = ctx.host.take();
      for (const handle of handles) {
        const att = attOn(ctx.host, packets, handle);
        assert.equal(att.length, count);
        att.forEach((pdu, i) => assert.equal(pdu.readUInt32LE(3), i, "in order"));
      }
      assertNoOverlap(ctx.events);
      for (const e of ctx.events) assert.ok(e.toCentralPdus <= 6, `at most 6 notifications in half an interval, got ${e.toCentralPdus}`);
      // Over every interval the two links together carried no more than one radio can.
      const busy = ctx.events.filter((e) => e.toCentralPdus > 0);
      const firstAt = Math.min(...busy.map((e) => e.atMs));
      const perInterval = new Map<number, number>();
      for (const e of busy) {
        const k = Math.floor((e.atMs - firstAt) / 7.5);
        perInterval.set(k, (perInterval.get(k) ?? 0) + e.toCentralPdus);
      }
      assert.ok(Math.max(...perInterval.values()) <= alone, `at most ${alone} notifications per interval on one radio`);
      assert.equal(busy.length, 2 * Math.ceil(count / 6), "each link's event is full until its burst ends");
    });

    it("a busy link next to idle ones: the idle links still cost an empty exchange and the busy one keeps to its slot", async () => {
      const peripherals = sensors(3);
      const ctx = setup({ dataLength: 27, pdusPerEvent: 20 }, peripherals);
      const [busyHandle] = await connectAll(ctx, peripherals);
      const done = peripherals[0].sendNotifications(100, 4);
      ctx.clock.advance(7.5 * 40);
      await ctx.host.settle();
      await done;
      const idle = ctx.events.filter((e) => e.handle !== busyHandle);
      assert.ok(idle.length >= 2 * 30);
      for (const e of idle) assert.equal(e.airTimeUs, exchangeAirTimeUs(0, 0));
      const slot = radioSlotsMs(3, 7.5)[0];
      const busy = ctx.events.filter((e) => e.handle === busyHandle && e.toCentralPdus > 0);
      assert.equal(Math.max(...busy.map((e) => e.toCentralPdus)), maxPdusPerEvent(ctx.controller.link, 11, slot));
      assertNoOverlap(ctx.events);
    });

    it("seven links of 251-byte PDUs, longer than their slots: no overlap, no link starves, every notification arrives in order", async () => {
      const peripherals = sensors(7);
      const ctx = setup({ dataLength: 251, pdusPerEvent: 6 }, peripherals);
      const handles = await connectAll(ctx, peripherals);
      const count = 30;
      const done = Promise.all(peripherals.map((p) => p.sendNotifications(count, 240)));
      // One exchange (2.47 ms) overruns a 0.94 ms slot: each link gets at least one exchange per event it runs.
      ctx.clock.advance(7.5 * (7 * count) + 100);
      await ctx.host.settle();
      await done;
      const packets = ctx.host.take();
      for (const handle of handles) {
        const att = attOn(ctx.host, packets, handle);
        assert.equal(att.length, count, `link 0x${handle.toString(16)}`);
        att.forEach((pdu, i) => assert.equal(pdu.readUInt32LE(3), i, "in order"));
      }
      assertNoOverlap(ctx.events);
      assert.ok(ctx.events.some((e) => e.skipped), "a crowded radio skips events");
    });
  });

  describe("close", () => {
    it("cancels every timer, rejects pending sends, closes the peripherals and emits nothing afterwards", async () => {
      const ctx = setup();
      await connect(ctx);
      ctx.host.command(OP.LE_SET_SCAN_ENABLE, Buffer.from([1, 0]));
      const pending = ctx.peripheral.notify(Buffer.alloc(10));
      let closedEvents = 0;
      ctx.controller.on("close", () => closedEvents++);
      ctx.controller.close();
      ctx.controller.close();
      await assert.rejects(pending, /closed/);
      assert.equal(ctx.peripheral.closed, true);
      assert.equal(closedEvents, 1);
      ctx.host.take();
      ctx.host.command(OP.RESET);
      ctx.clock.advance(5000);
      await ctx.host.settle();
      assert.deepEqual(ctx.host.received, []);
      assert.equal(ctx.clock.pending, 0);
    });
  });
});
