/**
 * The explore endpoint (GET /ble-instruments/explore, src/red/admin.ts) in a real Node-RED runtime against the
 * simulator: the table of a simulated device, a flow's live link shared rather than a second connection opened, a
 * temporary adapter for a config node not deployed, its limits and its answers to bad input. Permissions under
 * Node-RED's adminAuth: admin-auth.test.ts; the editor's button: test/e2e/explore.test.ts.
 */
import assert from "node:assert/strict";
import bleConfigNode = require("../../src/ble-config");
import heartRateNode = require("../../src/heart-rate");
import { EXPLORE_PATH, MAX_CONCURRENT_EXPLORES, MAX_NAME_LENGTH, type ExploreAnswer } from "../../src/red/admin";
import type { BleConfigNode } from "../../src/red/ble-config-node";
import { openAdapterCount } from "../../src/ble/registry";
import { OP } from "../../src/protocol/hci";
import { parseCommand } from "../../src/protocol/hci-packets";
import { collectMessages, currentStatus, helper, isConnected, loadFlow, translate, waitForStatus, type FlowNode, useNodeRed } from "../support/red";

const HR = { name: "44278-33", address: "d8:75:ba:00:00:01" };
const NOBODY = "c0:ff:ee:00:0f:f0";

const tab: FlowNode = { id: "flow", type: "tab", label: "test" };
const simConfig: FlowNode = { id: "cfg", type: "ble-config", transport: "simulator", simScenario: "", simTimeScale: 1 };

/** The simulated heart-rate sensor's table as Explore lists it: SIG names, and "sig" where a decoder knows the value. */
const HR_TABLE: ExploreAnswer["services"] = [
  {
    uuid: "1800",
    name: "Generic Access",
    characteristics: [
      { uuid: "2a00", name: "Device Name", properties: ["read"], suggestedFormat: "utf8", suggestedMode: "read" },
      { uuid: "2a01", name: "Appearance", properties: ["read"], suggestedFormat: "buffer", suggestedMode: "read" },
    ],
  },
  { uuid: "1801", name: "Generic Attribute", characteristics: [{ uuid: "2a05", name: "Service Changed", properties: ["indicate"], suggestedFormat: "buffer", suggestedMode: "notify" }] },
  {
    uuid: "180d",
    name: "Heart Rate",
    characteristics: [
      { uuid: "2a37", name: "Heart Rate Measurement", properties: ["notify"], suggestedFormat: "sig", suggestedMode: "notify" },
      { uuid: "2a38", name: "Body Sensor Location", properties: ["read"], suggestedFormat: "buffer", suggestedMode: "read" },
      { uuid: "2a39", name: "Heart Rate Control Point", properties: ["write"], suggestedFormat: "buffer", suggestedMode: "read" },
    ],
  },
  { uuid: "180f", name: "Battery", characteristics: [{ uuid: "2a19", name: "Battery Level", properties: ["read", "notify"], suggestedFormat: "sig", suggestedMode: "notify" }] },
];

/** An error answer in the editor's words (see admin.test.ts errorText). */
function errorText(body: unknown): string {
  const { error } = body as { error: { key: unknown; params: unknown } };
  assert.equal(typeof error.key, "string", `an error key: ${JSON.stringify(body)}`);
  return translate(`ble-config.${String(error.key)}`, error.params as Record<string, string | number>);
}

async function explore(query: Record<string, string>): Promise<{ status: number; body: unknown }> {
  const res = await helper.request().get(EXPLORE_PATH).query(query);
  return { status: res.status, body: res.body as unknown };
}

function simulation(): NonNullable<NonNullable<BleConfigNode["adapter"]>["simulation"]> {
  const cfg = helper.getNode("cfg") as BleConfigNode;
  assert.ok(cfg.adapter?.simulation, "a simulator adapter");
  return cfg.adapter.simulation;
}

/** Counts the LE Create Connection commands the host sends the simulated controller from now on. */
function countConnects(): { readonly count: number; stop(): void } {
  const controller = simulation().controller;
  const counter = {
    count: 0,
    stop: () => controller.removeListener("host-h4", onCommand),
  };
  const onCommand = (packet: Buffer): void => {
    if (parseCommand(packet)?.opcode === OP.LE_CREATE_CONNECTION) counter.count++;
  };
  controller.on("host-h4", onCommand);
  return counter;
}

describe("explore endpoint (a device's GATT table for the editor)", function () {
  this.timeout(30000);

  useNodeRed("every adapter is closed, the temporary ones of explores included");

  it("lists the simulated heart-rate sensor's services and characteristics, by address or by name, and closes the link it opened", async () => {
    await loadFlow([bleConfigNode], [simConfig, tab]);
    const connects = countConnects();
    const res = await explore({ config: "cfg", address: HR.address.toUpperCase().replace(/:/g, "-") });
    connects.stop();
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.deepEqual(res.body, { address: HR.address, name: HR.name, services: HR_TABLE });
    assert.equal(connects.count, 1, "one connection of its own");
    assert.equal(simulation().controller.connectionCount, 0, "the explore's own link is closed once it has answered");

    const byName = await explore({ config: "cfg", name: HR.name });
    assert.equal(byName.status, 200);
    assert.equal((byName.body as ExploreAnswer).address, HR.address);
  });

  it("lists a scenario-defined device's 128-bit UUIDs in the dashed form the GATT nodes output (the built-in NUS Console)", async () => {
    await loadFlow([bleConfigNode], [simConfig, tab]);
    const res = await explore({ config: "cfg", name: "NUS Console" });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const answer = res.body as ExploreAnswer;
    assert.equal(answer.address, "c0:ff:ee:00:00:02");
    assert.deepEqual(answer.services.at(-1), {
      uuid: "6e400001-b5a3-f393-e0a9-e50e24dcca9e",
      name: "Nordic UART Service",
      characteristics: [
        { uuid: "6e400002-b5a3-f393-e0a9-e50e24dcca9e", name: "Nordic UART RX", properties: ["writeWithoutResponse", "write"], suggestedFormat: "buffer", suggestedMode: "read" },
        { uuid: "6e400003-b5a3-f393-e0a9-e50e24dcca9e", name: "Nordic UART TX", properties: ["notify"], suggestedFormat: "buffer", suggestedMode: "notify" },
      ],
    });
  });

  it("reads the table of a device a flow is connected to from that link: no second connection, the flow keeps receiving", async () => {
    await loadFlow(
      [bleConfigNode, heartRateNode],
      [
        simConfig,
        { id: "hr", z: "flow", type: "heart-rate", ble: "cfg", address: HR.address, deviceName: "", topic: "", wires: [["out"]] },
        { id: "out", z: "flow", type: "helper" },
        tab,
      ],
    );
    const hr = helper.getNode("hr");
    await waitForStatus(hr, isConnected);
    await collectMessages(helper.getNode("out"), 1);
    const connects = countConnects();
    try {
      const res = await explore({ config: "cfg", address: HR.address });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.deepEqual((res.body as ExploreAnswer).services, HR_TABLE);
      // The readings go on over the same link (one a second).
      await collectMessages(helper.getNode("out"), 2, 5000);
      assert.equal(connects.count, 0, "the host asked the controller for no connection while exploring");
      assert.equal(simulation().controller.connectionCount, 1);
      assert.ok(isConnected(currentStatus(hr)!), "the heart-rate node is still connected");
    } finally {
      connects.stop();
    }
  });

  it("explores on a temporary adapter for a config node that is not deployed, and closes it afterwards", async () => {
    await loadFlow([bleConfigNode], [tab]);
    const res = await explore({ config: "new-node", transport: "simulator", simScenario: "", address: HR.address });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.deepEqual((res.body as ExploreAnswer).services, HR_TABLE);
    assert.equal(openAdapterCount(), 0, "the temporary adapter is closed once the explore has answered");
  });

  it("answers a device that is not found within `seconds` with 503 and a sentence saying so", async () => {
    await loadFlow([bleConfigNode], [simConfig, tab]);
    const res = await explore({ config: "cfg", address: NOBODY, seconds: "1" });
    assert.equal(res.status, 503);
    assert.match(errorText(res.body), /^device not found within 1 s/);
  });

  it("refuses bad input with 400, naming the parameter, and never quotes it", async () => {
    await loadFlow([bleConfigNode], [simConfig, tab]);
    const cases: [Record<string, string>, RegExp][] = [
      [{ config: "cfg" }, /address \(a Bluetooth address\) or name .* is required/],
      [{ config: "cfg", address: "s3cr3t:not:an:address" }, /^address must be a Bluetooth address/],
      [{ config: "cfg", address: "d8:75:ba:00:00" }, /^address must be a Bluetooth address/],
      [{ config: "cfg", name: "s".repeat(MAX_NAME_LENGTH + 1) }, new RegExp(`^name must be at most ${MAX_NAME_LENGTH} characters`)],
      [{ config: "cfg", address: HR.address, seconds: "0" }, /^seconds must be a number from 1 to 60/],
      [{ config: "cfg", address: HR.address, seconds: "s3cr3t" }, /^seconds must be a number from 1 to 60/],
      [{ config: "cfg", address: HR.address, seconds: "61" }, /^seconds must be a number from 1 to 60/],
      [{ address: HR.address }, /^config \(the id of a ble-config node\) or transport is required/],
      [{ transport: "carrier-pigeon", address: HR.address }, /transport must be/],
    ];
    for (const [query, text] of cases) {
      const res = await explore(query);
      assert.equal(res.status, 400, JSON.stringify(query));
      const error = errorText(res.body);
      assert.match(error, text);
      assert.ok(!/s3cr3t|sssss/.test(JSON.stringify(res.body)), `the answer does not quote the input: ${JSON.stringify(res.body)}`);
    }
    const twice = await helper.request().get(`${EXPLORE_PATH}?config=cfg&address=${HR.address}&address=${NOBODY}`);
    assert.equal(twice.status, 400);
    assert.equal(errorText(twice.body), "address must be given once");
    const unknown = await explore({ config: "no-such-node", address: HR.address });
    assert.equal(unknown.status, 404);
  });

  it(`runs at most ${MAX_CONCURRENT_EXPLORES} explores at once`, async () => {
    await loadFlow([bleConfigNode], [simConfig, tab]);
    const addresses = Array.from({ length: MAX_CONCURRENT_EXPLORES + 1 }, (_, i) => `c0:ff:ee:00:0f:f${i}`);
    const answers = await Promise.all(addresses.map((address) => explore({ config: "cfg", address, seconds: "2" })));
    const statuses = answers.map((a) => a.status).sort();
    assert.deepEqual(statuses, [429, ...Array(MAX_CONCURRENT_EXPLORES).fill(503)]);
    assert.equal(errorText(answers.find((a) => a.status === 429)!.body), `${MAX_CONCURRENT_EXPLORES} explores are already running; try again when they end`);
    // Once they have ended, the next one runs.
    const after = await explore({ config: "cfg", address: HR.address });
    assert.equal(after.status, 200);
  });
});
