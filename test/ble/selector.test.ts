/** Which peripheral a selector names (src/ble/selector.ts), as noble reports peripherals. */
import assert from "node:assert/strict";
import type { Peripheral } from "@stoprocent/noble";
import { matches, sameSelector } from "../../src/ble/selector";

const peripheral = (serviceUuids: string[], localName = ""): Peripheral =>
  ({ id: "aa0000000001", address: "aa:00:00:00:00:01", addressType: "public", rssi: -50, advertisement: { localName, serviceUuids } }) as unknown as Peripheral;

describe("device selector (src/ble/selector.ts)", () => {
  it("a service selector matches the service however noble spells it: short hex (HCI), 4 digits (BlueZ), the 128-bit Base UUID form", () => {
    for (const spelling of ["a00", "0a00", "00000a00-0000-1000-8000-00805f9b34fb", "00000a0000001000800000805f9b34fb"]) {
      assert.equal(matches({ service: "0A00" }, peripheral([spelling])), true, spelling);
      assert.equal(matches({ service: "0x0a00" }, peripheral([spelling])), true, spelling);
    }
    // noble's HCI stack reports a 128-bit UUID as 32 hex digits even when it is a SIG UUID on the Base UUID.
    assert.equal(matches({ service: "180d" }, peripheral(["0000180d00001000800000805f9b34fb"])), true);
    assert.equal(matches({ service: "180d" }, peripheral(["180f", "a00"])), false);
    assert.equal(matches({ service: "6e400001-b5a3-f393-e0a9-e50e24dcca9e" }, peripheral(["6e400001b5a3f393e0a9e50e24dcca9e"])), true);
  });

  it("what is no UUID matches nothing and throws nothing", () => {
    assert.equal(matches({ service: "180d" }, peripheral(["not a uuid", ""])), false);
    assert.equal(matches({ service: "nonsense" }, peripheral(["nonsense"])), false);
  });

  it("two selectors naming one service in different spellings are the same selector", () => {
    assert.equal(sameSelector({ service: "180D" }, { service: "0000180d-0000-1000-8000-00805f9b34fb" }), true);
    assert.equal(sameSelector({ address: "AA:00:00:00:00:01" }, { address: "aa:00:00:00:00:01" }), true);
    assert.equal(sameSelector({ service: "180d" }, { service: "180f" }), false);
  });
});
