// Goal: the simulator is deterministic and its seeds cover every cluster shape and network fault.
// Method: replay seeds and compare fingerprints; sum what a range of seeds exercised. (The CI
// seed set runs in vopr_ci_*.test.ts and vopr_storm_*.test.ts, the fault switches in
// vopr_teeth.test.ts.)

import assert from "node:assert/strict";
import { test } from "node:test";
import { defaultSimOptions, runSimulation } from "../../src/sim/vopr.js";

test("the same seed gives the same fingerprint, byte for byte", () => {
    for (const seed of [3, 17, 2 ** 53 - 1]) {
        const first = runSimulation({ ...defaultSimOptions(seed), ticks: 5_000 });
        const second = runSimulation({ ...defaultSimOptions(seed), ticks: 5_000 });
        assert.equal(first.fingerprint, second.fingerprint);
        assert.deepEqual(first, second);
    }
});

test("different seeds give different runs", () => {
    const fingerprints = new Set<string>();
    for (let seed = 100; seed < 110; seed++) {
        fingerprints.add(runSimulation({ ...defaultSimOptions(seed), ticks: 3_000 }).fingerprint);
    }
    assert.equal(fingerprints.size, 10);
});

test("the seed set covers every replica count and every network fault kind", () => {
    const replicaCounts = new Set<number>();
    const faults: Record<string, number> = {};
    let viewChanges = 0;
    let repliesChecked = 0;
    for (let seed = 1; seed <= 60; seed++) {
        const result = runSimulation({ ...defaultSimOptions(seed), ticks: 5_000 });
        assert.equal(result.result, "pass", `seed ${seed}: ${result.reason}`);
        replicaCounts.add(result.replicas);
        for (const [name, count] of Object.entries(result.faults)) {
            faults[name] = (faults[name] ?? 0) + count;
        }
        viewChanges += result.viewChanges;
        repliesChecked += result.repliesChecked;
    }
    assert.deepEqual([...replicaCounts].sort(), [1, 2, 3, 4, 5, 6]);
    for (const kind of ["packets_dropped", "packets_duplicated", "partitions", "clogs"]) {
        assert.ok((faults[kind] ?? 0) > 0, kind);
    }
    assert.ok((faults["swizzle_clogs"] ?? 0) > 0, "swizzle_clogs");
    assert.ok(viewChanges > 0);
    assert.ok(repliesChecked > 10_000);
});

test("explicit replica and client counts override the seed's draw", () => {
    for (let replicas = 1; replicas <= 6; replicas++) {
        const result = runSimulation({
            ...defaultSimOptions(42),
            ticks: 3_000,
            replicaCount: replicas,
            clientCount: 3,
        });
        assert.equal(result.replicas, replicas);
        assert.equal(result.clients, 3);
        assert.equal(result.result, "pass", String(result.reason));
        assert.ok(result.requestsCompleted > 0);
    }
});
