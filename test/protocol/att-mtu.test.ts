import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { createRequire } from "node:module";
import fc from "fast-check";
import { AttGuard } from "../../src/protocol/att-guard";
import { agreedMtu, AttMtuAgreement } from "../../src/protocol/att-mtu";
import { CID_ATT, PB_CONTINUING, PB_FIRST_FLUSHABLE, PB_FIRST_NON_FLUSHABLE } from "../../src/protocol/hci";
import { buildAcl, buildDisconnectionComplete, buildL2cap } from "../../src/protocol/hci-packets";

const mtuRequest = (mtu: number): Buffer => Buffer.of(0x02, mtu & 0xff, mtu >> 8);
const mtuResponse = (mtu: number): Buffer => Buffer.of(0x03, mtu & 0xff, mtu >> 8);
/** An ATT PDU as noble writes it to the controller (one packet, PB 00). */
const fromNoble = (handle: number, att: Buffer): Buffer => buildAcl(handle, PB_FIRST_NON_FLUSHABLE, buildL2cap(CID_ATT, att));
/** An ATT PDU from the controller in one packet (PB 10). */
const toNoble = (handle: number, att: Buffer): Buffer => buildAcl(handle, PB_FIRST_FLUSHABLE, buildL2cap(CID_ATT, att));

/** The ATT PDUs in H4 ACL packets towards noble, reassembled per packet sequence (first fragment + continuations). */
function attPdus(packets: Buffer[]): Buffer[] {
  const pdus: Buffer[] = [];
  for (const p of packets) {
    const pb = (p.readUInt16LE(1) >> 12) & 0b11;
    const data = p.subarray(5, 5 + p.readUInt16LE(3));
    if (pb === PB_CONTINUING) pdus[pdus.length - 1] = Buffer.concat([pdus[pdus.length - 1], data]);
    else pdus.push(data);
  }
  return pdus.map((l2cap) => {
    assert.equal(l2cap.readUInt16LE(0), l2cap.length - 4, "the L2CAP length is the PDU's");
    assert.equal(l2cap.readUInt16LE(2), CID_ATT);
    return l2cap.subarray(4);
  });
}

/** noble's own GATT client (unmodified), waiting for the answer to its Exchange MTU Request of `desired`. */
interface NobleGatt extends EventEmitter {
  onAclStreamData(cid: number, data: Buffer): void;
  exchangeMtu(): void;
}
const nobleRequire = createRequire(require.resolve("@stoprocent/noble"));
const Gatt = nobleRequire("./lib/hci-socket/gatt") as new (address: string, aclStream: EventEmitter, desiredMtu: number) => NobleGatt;

describe("protocol/att-mtu (the link's ATT MTU as noble must see it)", () => {
  it("agrees min(client, server), never below 23", () => {
    assert.equal(agreedMtu(256, 517), 256);
    assert.equal(agreedMtu(517, 247), 247);
    assert.equal(agreedMtu(23, 517), 23);
    assert.equal(agreedMtu(256, 5), 23, "a server answering below the minimum");
    assert.equal(agreedMtu(0, 0), 23);
  });

  it("rewrites the server's answer to the request it saw on the same handle; other links and PDUs are left alone", () => {
    const mtu = new AttMtuAgreement();
    mtu.fromClient(0x40, mtuRequest(256));
    mtu.fromClient(0x41, mtuRequest(100));
    assert.deepEqual(mtu.fromServer(0x40, mtuResponse(517)), mtuResponse(256));
    assert.deepEqual(mtu.fromServer(0x41, mtuResponse(517)), mtuResponse(100));
    assert.equal(mtu.fromServer(0x40, mtuResponse(185)), null, "an answer below the request is the agreed MTU already");
    assert.equal(mtu.fromServer(0x42, mtuResponse(517)), null, "no request seen on this link");
    assert.equal(mtu.fromServer(0x40, Buffer.of(0x0b, 1, 2, 3)), null, "a Read Response");
    assert.equal(mtu.fromServer(0x40, Buffer.of(0x03, 1)), null, "too short to carry an MTU");
    assert.deepEqual(mtu.fromServer(0x40, Buffer.of(0x03, 0xff, 0xff, 0x99)), mtuResponse(256), "trailing bytes dropped");
    mtu.forget(0x40);
    assert.equal(mtu.requestedOn(0x40), undefined);
    assert.equal(mtu.fromServer(0x40, mtuResponse(517)), null, "forgotten with its link");
    assert.equal(mtu.requestedOn(0x41), 100);
  });

  it("any request and answer: noble's own client ends with min(request, answer), at least 23", () => {
    fc.assert(
      // noble asks 256 for a desired MTU of 0 (its `|| 256`), so the requests start at 1.
      fc.property(fc.integer({ min: 1, max: 0xffff }), fc.integer({ min: 0, max: 0xffff }), (asked, answered) => {
        const guard = new AttGuard(() => assert.fail("nothing is dropped"), new AttMtuAgreement());
        const stream = Object.assign(new EventEmitter(), {
          write: (_cid: number, data: Buffer) => guard.fromHost(fromNoble(0x40, data)),
          encrypt: () => undefined,
        });
        const gatt = new Gatt("00:11:22:33:44:55", stream, asked);
        let adopted: number | null = null;
        gatt.on("mtu", (_address: string, mtu: number) => (adopted = mtu));
        gatt.exchangeMtu();
        for (const att of attPdus(guard.toHost(toNoble(0x40, mtuResponse(answered))))) gatt.onAclStreamData(CID_ATT, att);
        assert.equal(adopted, Math.max(23, Math.min(asked, answered)));
      }),
    );
  });
});

describe("protocol/att-guard with an AttMtuAgreement", () => {
  it("an Exchange MTU Response split over two ACL fragments reaches noble whole, as one packet, rewritten", () => {
    const guard = new AttGuard(() => assert.fail("nothing is dropped"), new AttMtuAgreement());
    guard.fromHost(fromNoble(0x40, mtuRequest(256)));
    const l2cap = buildL2cap(CID_ATT, mtuResponse(517));
    assert.deepEqual(guard.toHost(buildAcl(0x40, PB_FIRST_FLUSHABLE, l2cap.subarray(0, 5))), [], "held until complete");
    const out = guard.toHost(buildAcl(0x40, PB_CONTINUING, l2cap.subarray(5)));
    assert.equal(out.length, 1);
    assert.equal((out[0].readUInt16LE(1) >> 12) & 0b11, PB_FIRST_FLUSHABLE, "a first fragment, as noble needs");
    assert.equal(out[0].readUInt16LE(1) & 0x0fff, 0x40);
    assert.deepEqual(attPdus(out), [mtuResponse(256)]);
  });

  it("other traffic passes byte for byte; the request is forgotten with Disconnection Complete", () => {
    const guard = new AttGuard(() => assert.fail("nothing is dropped"), new AttMtuAgreement());
    guard.fromHost(fromNoble(0x40, mtuRequest(256)));
    const read = toNoble(0x40, Buffer.of(0x0b, 1, 2, 3));
    assert.deepEqual(guard.toHost(read), [read]);
    const agreed = toNoble(0x40, mtuResponse(200));
    assert.deepEqual(guard.toHost(agreed), [agreed], "already the agreed MTU: the same packet");
    const gone = buildDisconnectionComplete({ status: 0, handle: 0x40, reason: 0x13 });
    assert.deepEqual(guard.toHost(gone), [gone]);
    const next = toNoble(0x40, mtuResponse(517));
    assert.deepEqual(guard.toHost(next), [next], "the next link on the handle has not asked yet");
  });

  it("without an agreement the answer passes as it is", () => {
    const guard = new AttGuard();
    guard.fromHost(fromNoble(0x40, mtuRequest(256)));
    const answer = toNoble(0x40, mtuResponse(517));
    assert.deepEqual(guard.toHost(answer), [answer]);
  });
});
