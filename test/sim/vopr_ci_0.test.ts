// Goal: every seed of the CI seed set passes safety and liveness (half 0 of the set).
// Method: run each seed's whole simulation in-process and assert the result.

import { test } from "node:test";
import { ciSeedCount, ciSeedFirst, runSeed } from "./vopr_seeds.js";

const half = 0;
const seedFirst = ciSeedFirst + half * (ciSeedCount / 2);

test(`simulator seeds ${seedFirst}..${seedFirst + ciSeedCount / 2 - 1} pass every checker`, () => {
    for (let seed = seedFirst; seed < seedFirst + ciSeedCount / 2; seed++) runSeed(seed);
});
