/**
 * The status every device node shows for its lease (src/red/status.ts): the texts come from ble-config's catalog
 * (ble-config.status.*, ble-config.problem.*) through Node-RED's namespaced key, whichever node asks.
 */
import assert from "node:assert/strict";
import type { LeaseState } from "../../src/ble/lease";
import bleConfigNode = require("../../src/ble-config");
import bleScanNode = require("../../src/ble-scan");
import heartRateNode = require("../../src/heart-rate");
import hiokiMeterNode = require("../../src/hioki-meter");
import nusYmodemReceiveNode = require("../../src/nus-ymodem-receive");
import nusYmodemSendNode = require("../../src/nus-ymodem-send");
import bleGattInNode = require("../../src/ble-gatt-in");
import bleGattOutNode = require("../../src/ble-gatt-out");
import bleGattRequestNode = require("../../src/ble-gatt-request");
import { BLE_CATALOG, bindBleCatalog, problemText, statusFor } from "../../src/red/status";
import { translate } from "../support/catalog";
import { errorsOf, helper, loadFlow, useNodeRed, waitForStatus } from "../support/red";

describe("lease states as node status (src/red/status.ts)", () => {
  const asked: string[] = [];
  before(() =>
    bindBleCatalog({
      _: (key, substitutions) => {
        asked.push(key);
        return translate(key, substitutions);
      },
    }),
  );

  const cases: [LeaseState, { fill: string; shape: string; text: string }][] = [
    [{ state: "adapter", problem: null }, { fill: "yellow", shape: "ring", text: "waiting for adapter" }],
    [{ state: "adapter", problem: { key: "hci-down", params: { device: "hci0" } } }, { fill: "red", shape: "ring", text: 'hci0 is down: bring it up with "sudo hciconfig hci0 up" (or "bluetoothctl power on")' }],
    [{ state: "scanning" }, { fill: "yellow", shape: "ring", text: "scanning" }],
    [{ state: "waiting-slot", inUse: 4, max: 4 }, { fill: "yellow", shape: "ring", text: "waiting for a free link (4/4)" }],
    [{ state: "connecting", address: "aa:00:00:00:00:01" }, { fill: "yellow", shape: "ring", text: "connecting" }],
    [{ state: "connected", address: "aa:00:00:00:00:01", name: "", simulated: false }, { fill: "green", shape: "dot", text: "connected" }],
    [{ state: "connected", address: "aa:00:00:00:00:01", name: "", simulated: true }, { fill: "green", shape: "dot", text: "connected (simulated)" }],
    [{ state: "reconnecting", retryInMs: 1500, reason: { key: "link-timeout", params: {} } }, { fill: "yellow", shape: "ring", text: "reconnecting in 2 s" }],
    [{ state: "error", retryInMs: 4000, problem: { key: "failed", params: { detail: "no command characteristic" } } }, { fill: "red", shape: "ring", text: "no command characteristic (retry in 4 s)" }],
    [{ state: "error", retryInMs: 1000, problem: { key: "disconnected", params: { reason: "19" } } }, { fill: "red", shape: "ring", text: "disconnected (19) (retry in 1 s)" }],
    [{ state: "error", retryInMs: 1000, problem: { key: "connect-timeout", params: {} } }, { fill: "red", shape: "ring", text: "timeout during connection (retry in 1 s)" }],
    [{ state: "idle" }, { fill: "grey", shape: "ring", text: "idle (connects when used)" }],
  ];
  for (const [state, expected] of cases) {
    it(`${JSON.stringify(state)}: ${expected.text}`, () => {
      assert.deepEqual(statusFor(state), expected);
    });
  }

  it("words the GATT session's problems as the sentences they were (reason codes with parameters, ble-config.problem.*)", () => {
    const sentences: [string, Record<string, string | number>, string][] = [
      ["timeout-connect", { address: "aa:00:00:00:00:01", ms: 5000 }, "connecting to aa:00:00:00:00:01 timed out after 5000 ms"],
      ["timeout-discovery", { address: "aa:00:00:00:00:01", ms: 5000 }, "service discovery on aa:00:00:00:00:01 timed out after 5000 ms"],
      ["timeout-disconnect", { address: "aa:00:00:00:00:01", ms: 5000 }, "disconnecting aa:00:00:00:00:01 timed out after 5000 ms"],
      ["timeout-subscribe", { characteristic: "2a37", ms: 500 }, "subscribing to 2a37 timed out after 500 ms"],
      ["timeout-unsubscribe", { characteristic: "2a37", ms: 500 }, "unsubscribing from 2a37 timed out after 500 ms"],
      ["timeout-read", { characteristic: "2a37", ms: 500 }, "reading 2a37 timed out after 500 ms"],
      ["timeout-write", { characteristic: "6e400002", ms: 500 }, "writing 6e400002 timed out after 500 ms"],
      ["bluez-timeout", { adapter: "hci0", call: "org.freedesktop.DBus.NameHasOwner", ms: 3000 }, "BlueZ over D-Bus failed on hci0: org.freedesktop.DBus.NameHasOwner timed out after 3000 ms"],
      ["not-connected", {}, "not connected"],
      ["link-ended", {}, "disconnected"],
      ["released-while-connecting", {}, "released while connecting"],
      ["no-characteristic", { characteristic: "2a38", service: "180d", address: "aa:00:00:00:00:01" }, "characteristic 2a38 of service 180d not found on aa:00:00:00:00:01"],
      ["no-property", { characteristic: "2a19", property: "write" }, "characteristic 2a19 does not allow write"],
      ["value-too-long", { characteristic: "fff2", length: 100, max: 20 }, "a value of 100 bytes is too long for fff2 without response (at most 20 on this link)"],
      ["value-too-long-attribute", { characteristic: "fff1", length: 600, max: 512 }, "a value of 600 bytes is too long for fff1 (a characteristic holds at most 512)"],
      ["timeout-use", { ms: 11000 }, "no connection within 11000 ms"],
      ["timeout-reply", { characteristic: "fff1", ms: 1000 }, "no complete reply on fff1 within 1000 ms"],
    ];
    for (const [key, params, text] of sentences) assert.equal(problemText({ key, params }), text, key);
  });

  it("asks for every text by ble-config's namespaced key, so any node's RED._ finds it", () => {
    asked.length = 0;
    statusFor({ state: "reconnecting", retryInMs: 1000, reason: { key: "link-timeout", params: {} } });
    statusFor({ state: "error", retryInMs: 1000, problem: { key: "failed", params: { detail: "x" } } });
    assert.ok(asked.length >= 2);
    for (const key of asked) assert.ok(key.startsWith(`${BLE_CATALOG}:ble-config.`), key);
  });
});

describe("a device node without an adapter (the shared ble-config texts, in a Node-RED runtime)", function () {
  this.timeout(30000);
  useNodeRed();

  it("every device node shows the one shared 'no adapter' ring and logs the one shared reason", async () => {
    const types = ["heart-rate", "hioki-meter", "nus-ymodem-receive", "nus-ymodem-send", "ble-gatt-in", "ble-gatt-out", "ble-gatt-request", "ble-scan"];
    await loadFlow(
      [bleConfigNode, heartRateNode, hiokiMeterNode, nusYmodemReceiveNode, nusYmodemSendNode, bleGattInNode, bleGattOutNode, bleGattRequestNode, bleScanNode],
      [
        { id: "flow", type: "tab" },
        // service and characteristic: the generic GATT nodes need them (the others ignore them).
        ...types.map((type) => ({ id: `n-${type}`, z: "flow", type, ble: "", address: "aa:00:00:00:00:01", service: "180f", characteristic: "2a19" })),
      ],
    );
    for (const type of types) {
      const node = helper.getNode(`n-${type}`);
      await waitForStatus(node, (s) => s.fill === "red" && s.shape === "ring" && s.text === "no adapter");
      assert.deepEqual(errorsOf(node), ["no Bluetooth adapter configured"], type);
    }
  });
});
