// The CI seed set, shared by the test files that run it (split so node's runner can use both
// cores). Each seed draws its own cluster shape and fault mix; every run must pass every checker.

import assert from "node:assert/strict";
import { runSimulation, defaultSimOptions, type SimResult } from "../../src/sim/vopr.js";

export const ciTicks = 20_000;
export const ciSeedFirst = 1;
export const ciSeedCount = 200;

export function runSeed(seed: number): SimResult {
    const result = runSimulation({ ...defaultSimOptions(seed), ticks: ciTicks });
    assert.equal(
        result.result,
        "pass",
        `seed ${seed} failed: ${result.reason}\nreproduce: vsr sim --seed=${seed} --ticks=${ciTicks}`,
    );
    return result;
}
