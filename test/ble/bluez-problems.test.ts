/**
 * The bluez transport's problems name the settings, never their values: the bus address (DBUS_SYSTEM_BUS_ADDRESS)
 * and the adapter name may come from environment variables, and a problem reaches the editor and the log.
 */
import assert from "node:assert/strict";
import { checkBluez } from "../../src/ble/bluez";

describe("bluez: problems name the settings, not their values", () => {
  const saved = process.env.DBUS_SYSTEM_BUS_ADDRESS;
  afterEach(() => {
    if (saved === undefined) delete process.env.DBUS_SYSTEM_BUS_ADDRESS;
    else process.env.DBUS_SYSTEM_BUS_ADDRESS = saved;
  });

  it("a bus address that cannot be parsed: bluez-failed naming DBUS_SYSTEM_BUS_ADDRESS, without the address", async () => {
    process.env.DBUS_SYSTEM_BUS_ADDRESS = "secretkind:token=s3cr3t-value";
    const problem = await checkBluez("hci0");
    assert.equal(problem?.key, "bluez-failed");
    assert.match(String(problem.params.error), /DBUS_SYSTEM_BUS_ADDRESS/);
    assert.doesNotMatch(JSON.stringify(problem), /secretkind|s3cr3t/);
  });

  it("a bus that fails in another way: its error code, without the address", async () => {
    // A TCP address on a port nobody listens on fails with ECONNREFUSED, which is "no D-Bus" (the address is that
    // problem's subject); a host that cannot be resolved fails otherwise.
    process.env.DBUS_SYSTEM_BUS_ADDRESS = "tcp:host=nosuchhost-s3cr3t.invalid,port=1";
    const problem = await checkBluez("hci0");
    assert.equal(problem?.key, "bluez-failed");
    assert.doesNotMatch(JSON.stringify(problem), /s3cr3t/);
  });
});
