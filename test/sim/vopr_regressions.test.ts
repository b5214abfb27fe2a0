// Seeds outside the CI ranges that once failed, each kept with its cause. A sweep finds them;
// this file keeps them found. Each must pass every checker, like a CI seed.

import assert from "node:assert/strict";
import { test } from "node:test";
import { type SeedKind, reproduce, runCiSeed } from "./vopr_seeds.js";

interface Regression {
    readonly seed: number;
    readonly kind: SeedKind;
    readonly cause: string;
}

const regressions: readonly Regression[] = [
    {
        seed: 1335,
        kind: "storm",
        cause:
            "safety: a backup acked a prepare whose write was misdirected, before its header " +
            "sector landed; after a crash the slot's older prepare read as a nack of the op",
    },
];

for (const regression of regressions) {
    test(`${regression.kind} seed ${regression.seed} (${regression.cause})`, () => {
        const result = runCiSeed(regression.seed, regression.kind, null);
        const command = reproduce(regression.seed, regression.kind);
        assert.equal(result.result, "pass", `${result.reason}\nreproduce: ${command}`);
    });
}
