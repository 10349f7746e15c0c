import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { createRequire } from "node:module";
import fc from "fast-check";
import { AttGuard, unsafeServerPdu } from "../../src/protocol/att-guard";
import { CID_ATT, PB_CONTINUING, PB_FIRST_FLUSHABLE } from "../../src/protocol/hci";
import { buildAcl, buildDisconnectionComplete, buildL2cap } from "../../src/protocol/hci-packets";

/** noble's own GATT client (unmodified), the code the guard protects. */
interface NobleGatt extends EventEmitter {
  onAclStreamData(cid: number, data: Buffer): void;
  exchangeMtu(): void;
  discoverServices(uuids: string[]): void;
  discoverCharacteristics(service: string, uuids: string[]): void;
  discoverDescriptors(service: string, characteristic: string): void;
  notify(service: string, characteristic: string, notify: boolean): void;
  read(service: string, characteristic: string): void;
  _services: Record<string, unknown>;
  _characteristics: Record<string, Record<string, unknown>>;
  _descriptors: Record<string, Record<string, unknown>>;
}
const nobleRequire = createRequire(require.resolve("@stoprocent/noble"));
const Gatt = nobleRequire("./lib/hci-socket/gatt") as new (address: string, aclStream: EventEmitter) => NobleGatt;

/** A Gatt with one request of `kind` outstanding, as noble has it while waiting for a server's answer. */
function gattWaitingFor(kind: number): NobleGatt {
  const stream = Object.assign(new EventEmitter(), { write: () => undefined, encrypt: () => undefined });
  const gatt = new Gatt("00:11:22:33:44:55", stream);
  gatt.on("error", () => undefined);
  const service = { uuid: "180d", startHandle: 1, endHandle: 9 };
  const characteristic = { uuid: "2a37", startHandle: 2, valueHandle: 3, endHandle: 9, properties: 0x10 };
  gatt._services = { "180d": service };
  gatt._characteristics = { "180d": { "2a37": characteristic } };
  gatt._descriptors = { "180d": { "2a37": {} } };
  [
    () => gatt.exchangeMtu(),
    () => gatt.discoverServices([]),
    () => gatt.discoverCharacteristics("180d", []),
    () => gatt.discoverDescriptors("180d", "2a37"),
    () => gatt.notify("180d", "2a37", true),
    () => gatt.read("180d", "2a37"),
  ][kind]();
  return gatt;
}
/** The Read By Type attribute type noble asked for in each of those requests (null: no Read By Type). */
const READ_BY_TYPE = [null, null, 0x2803, null, 0x2902, null];

describe("protocol/att-guard (what reaches noble's GATT client from a peripheral)", () => {
  it("names what is wrong with truncated or inconsistent server PDUs", () => {
    assert.match(unsafeServerPdu(Buffer.alloc(0), null)!, /empty/);
    assert.match(unsafeServerPdu(Buffer.from("1b01", "hex"), null)!, /0x1b needs at least 3 bytes, got 2/);
    assert.match(unsafeServerPdu(Buffer.from("1d", "hex"), null)!, /0x1d/);
    assert.match(unsafeServerPdu(Buffer.from("1106", "hex"), null)!, /without a complete entry/);
    assert.match(unsafeServerPdu(Buffer.from("11060100ffff0d1801", "hex"), null)!, /partial entry/);
    assert.match(unsafeServerPdu(Buffer.from("0900", "hex"), 0x2803)!, /entry length 0/);
    assert.match(unsafeServerPdu(Buffer.from("0904020003", "hex"), 0x2803)!, /characteristic declarations of 4 bytes/);
    assert.match(unsafeServerPdu(Buffer.from("0503", "hex"), null)!, /format 3/);
    assert.match(unsafeServerPdu(Buffer.from("0108", "hex"), null)!, /0x01 needs at least 5/);
  });

  it("passes well-formed PDUs", () => {
    for (const [hex, type] of [
      ["1b0300063c", null],
      ["1b0300", null],
      ["031700", null],
      ["11060100ffff0d18", null],
      ["09070200100300372a", 0x2803],
      ["090404000100", 0x2902],
      ["050104000229", null],
      ["0b", null],
      ["13", null],
      ["0108020a0a", null],
    ] as const) {
      assert.equal(unsafeServerPdu(Buffer.from(hex, "hex"), type), null, hex);
    }
  });

  it("whatever it passes, noble's client parses without throwing (10,000 arbitrary PDUs against every kind of pending request)", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 5 }), fc.uint8Array({ minLength: 0, maxLength: 60 }), fc.constantFrom(0x01, 0x03, 0x05, 0x07, 0x09, 0x0b, 0x11, 0x13, 0x17, 0x1b, 0x1d), fc.boolean(), (kind, body, op, keepOp) => {
        const pdu = Buffer.from(keepOp && body.length > 0 ? [op, ...body.subarray(1)] : body);
        if (unsafeServerPdu(pdu, READ_BY_TYPE[kind]) !== null) return;
        const gatt = gattWaitingFor(kind);
        gatt.onAclStreamData(CID_ATT, pdu);
      }),
      { numRuns: 10000 },
    );
  });

  it("without the guard, noble's client does throw on such PDUs (so the property above can fail)", () => {
    assert.throws(() => gattWaitingFor(1).onAclStreamData(CID_ATT, Buffer.from("1b01", "hex")), RangeError);
    assert.throws(() => gattWaitingFor(1).onAclStreamData(CID_ATT, Buffer.from("1106", "hex")), TypeError);
  });

  describe("AttGuard over an H4 stream", () => {
    const att = (handle: number, pdu: Buffer, pb = PB_FIRST_FLUSHABLE): Buffer => buildAcl(handle, pb, buildL2cap(CID_ATT, pdu));

    it("passes good PDUs at once and drops bad ones, saying why", () => {
      const drops: string[] = [];
      const guard = new AttGuard((r) => drops.push(r));
      const good = att(0x40, Buffer.from("1b0300063c", "hex"));
      assert.deepEqual(guard.toHost(good), [good]);
      assert.deepEqual(guard.toHost(att(0x40, Buffer.from("1b01", "hex"))), []);
      assert.deepEqual(drops, ["connection 0x0040: dropped ATT opcode 0x1b needs at least 3 bytes, got 2"]);
      const event = buildDisconnectionComplete({ status: 0, handle: 0x40, reason: 0x13 });
      assert.deepEqual(guard.toHost(event), [event], "events pass");
    });

    it("passes a truncated indication on as one of handle 0x0000, which noble confirms without reading past its end", () => {
      const drops: string[] = [];
      const guard = new AttGuard((r) => drops.push(r));
      const [out, ...rest] = guard.toHost(att(0x40, Buffer.from("1d03", "hex")));
      assert.deepEqual(rest, []);
      assert.deepEqual(out, att(0x40, Buffer.from("1d0000", "hex")));
      assert.deepEqual(drops, ["connection 0x0040: ATT opcode 0x1d needs at least 3 bytes, got 2; passed on as an indication of handle 0x0000 so that it is confirmed"]);
      // noble's client takes it: no throw, a Handle Value Confirmation (0x1e) written, no characteristic notified.
      const written: Buffer[] = [];
      const stream = Object.assign(new EventEmitter(), { write: (_cid: number, data: Buffer) => written.push(Buffer.from(data)), encrypt: () => undefined });
      const gatt = new Gatt("00:11:22:33:44:55", stream);
      gatt._services = { "180d": { uuid: "180d", startHandle: 1, endHandle: 9 } };
      gatt._characteristics = { "180d": { "2a37": { uuid: "2a37", startHandle: 2, valueHandle: 3, endHandle: 9, properties: 0x20 } } };
      const notified: unknown[] = [];
      gatt.on("notification", (...args: unknown[]) => notified.push(args));
      gatt.onAclStreamData(CID_ATT, out.subarray(9));
      assert.deepEqual(written, [Buffer.from([0x1e])]);
      assert.deepEqual(notified, []);
    });

    it("holds the fragments of a PDU until it is complete, then releases them together, in order", () => {
      const guard = new AttGuard();
      const frame = buildL2cap(CID_ATT, Buffer.concat([Buffer.from("1b0300", "hex"), Buffer.alloc(60, 7)]));
      const first = buildAcl(0x41, PB_FIRST_FLUSHABLE, frame.subarray(0, 27));
      const second = buildAcl(0x41, PB_CONTINUING, frame.subarray(27, 54));
      const last = buildAcl(0x41, PB_CONTINUING, frame.subarray(54));
      const other = att(0x42, Buffer.from("1b0400aa", "hex"));
      assert.deepEqual(guard.toHost(first), []);
      assert.deepEqual(guard.toHost(other), [other], "other links are not held up");
      assert.deepEqual(guard.toHost(second), []);
      assert.deepEqual(guard.toHost(last), [first, second, last]);
    });

    it("judges a Read By Type Response by the request noble sent on that link", () => {
      const guard = new AttGuard();
      // noble asks for characteristic declarations (0x2803)...
      guard.fromHost(att(0x40, Buffer.from("080100ffff0328", "hex")));
      // ...and gets 4-byte entries, which it would read past the end
      assert.deepEqual(guard.toHost(att(0x40, Buffer.from("090402000300", "hex"))), []);
      // the same answer to a CCCD lookup (0x2902) is fine
      guard.fromHost(att(0x40, Buffer.from("080200090229", "hex")));
      const cccd = att(0x40, Buffer.from("090402000000", "hex"));
      assert.deepEqual(guard.toHost(cccd), [cccd]);
    });
  });
});
