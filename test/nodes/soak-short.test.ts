import assert from "node:assert/strict";
import { runSoak } from "../soak/soak";
import { useNodeRed } from "../support/red";

/**
 * The soak of issue 6 in its CI form: the same code as `npm run soak` (test/soak/soak.ts), shortened to about
 * 40 s, with faults and downloads made more frequent so that each kind happens several times.
 */
describe("soak, short form (seven peripherals, power cycles, downloads)", function () {
  this.timeout(90000);

  useNodeRed();

  it("loses, reorders and duplicates nothing the radio delivered, and keeps the heap flat", async () => {
    const result = await runSoak({ durationS: 30, warmupS: 8, downloadEveryS: 10, powerCycleGapS: [3, 6], powerOffS: [0.5, 2], seed: 6 });
    assert.ok(result.ok, `${result.failures.join("\n")}\n\n${result.report}`);
  });
});
