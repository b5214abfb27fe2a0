// Goal: every storm seed of the CI seed set (half 0 of them) passes safety and liveness under
// frequent crashes, torn writes and storage faults, and the storm exercises every fault kind,
// state sync and protocol-aware repair.
// Method: run each seed's whole simulation in-process, assert the result, sum the faults.

import assert from "node:assert/strict";
import { test } from "node:test";
import { ciStormSeedCount, runCiSeeds } from "./vopr_seeds.js";

const count = ciStormSeedCount / 2;
const first = 1 + 0 * count;

test(`storm seeds ${first}..${first + count - 1} pass every checker and exercise every fault`, () => {
    const totals = runCiSeeds(first, count, "storm");
    for (const kind of [
        "crashes",
        "restarts",
        "storage_read_faults",
        "storage_write_faults",
        "torn_writes",
        "misdirected_writes",
    ]) {
        assert.ok((totals.faults[kind] ?? 0) > 0, kind);
    }
    assert.ok(totals.stateSyncs > 0, "state syncs");
    assert.ok(totals.parRepairs > 0, "PAR repairs");
});
