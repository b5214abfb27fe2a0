// Goal: the simulator is deterministic, its coverage is broad, and its checkers have teeth.
// Method: replay seeds and compare fingerprints; sum what the CI seeds exercised; break the
// replica on purpose (a test-only fault switch) and require the seed set to catch it.

import assert from "node:assert/strict";
import { test } from "node:test";
import { defaultSimOptions, runSimulation } from "../../src/sim/vopr.js";
import { noReplicaFaults } from "../../src/vsr/replica.js";

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

test("a primary that commits without a replication quorum is caught by the seed set", () => {
    let caught = 0;
    for (let seed = 1; seed <= 100; seed++) {
        const result = runSimulation({
            ...defaultSimOptions(seed),
            ticks: 10_000,
            faults: { ...noReplicaFaults, commitWithoutQuorum: true },
        });
        if (result.result === "safety") caught++;
    }
    assert.ok(caught >= 10, `caught ${caught} of 100 seeds`);
});

test("recovery that accepts a corrupt WAL slot is caught under a storm of crashes and faults", () => {
    let caught = 0;
    for (let seed = 1; seed <= 50; seed++) {
        const result = runSimulation({
            ...defaultSimOptions(seed),
            ticks: 20_000,
            storm: true,
            faults: { ...noReplicaFaults, acceptCorruptPrepare: true },
        });
        if (result.result === "safety") caught++;
    }
    assert.ok(caught >= 3, `caught ${caught} of 50 seeds`);
});

test("storm seeds (frequent crashes, torn writes and storage faults) pass every checker", () => {
    const totals: Record<string, number> = {};
    let stateSyncs = 0;
    let parRepairs = 0;
    for (let seed = 1; seed <= 40; seed++) {
        const result = runSimulation({ ...defaultSimOptions(seed), ticks: 20_000, storm: true });
        assert.equal(result.result, "pass", `storm seed ${seed}: ${result.reason}`);
        stateSyncs += result.stateSyncs;
        parRepairs += result.parRepairs;
        for (const [name, count] of Object.entries(result.faults)) {
            totals[name] = (totals[name] ?? 0) + count;
        }
    }
    for (const kind of [
        "crashes",
        "restarts",
        "storage_read_faults",
        "storage_write_faults",
        "torn_writes",
        "misdirected_writes",
    ]) {
        assert.ok((totals[kind] ?? 0) > 0, kind);
    }
    // Coverage: state sync and protocol-aware repair of faulty WAL slots both ran.
    assert.ok(stateSyncs > 0, "state syncs");
    assert.ok(parRepairs > 0, "PAR repairs");
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
