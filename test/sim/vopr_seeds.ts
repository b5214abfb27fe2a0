// The CI seed set, shared by the test files that run it (split so node's runner uses both
// cores): default seeds (each draws its own cluster shape and network, storage and crash fault
// mix, swarm style) and storm seeds (frequent crashes, torn writes and storage faults on every
// seed). Every run must pass every checker; a failure names its reproduction command.

import assert from "node:assert/strict";
import { type SimResult, defaultSimOptions, runSimulation } from "../../src/sim/vopr.js";
import type { ReplicaFaults } from "../../src/vsr/replica.js";

export const ciTicks = 20_000;
export const ciDefaultSeedCount = 400;
export const ciStormSeedCount = 200;

export type SeedKind = "default" | "storm";

export function runCiSeed(seed: number, kind: SeedKind, faults: ReplicaFaults | null): SimResult {
    return runSimulation({
        ...defaultSimOptions(seed),
        ticks: ciTicks,
        storm: kind === "storm",
        faults,
    });
}

export function reproduce(seed: number, kind: SeedKind): string {
    return `vsr sim --seed=${seed} --ticks=${ciTicks}${kind === "storm" ? " --storm" : ""}`;
}

/** Sums of what a range of CI seeds exercised. */
export interface SeedTotals {
    seeds: number;
    faults: Record<string, number>;
    /** Per fault kind: seeds on which it happened at least once. */
    seedsWith: Record<string, number>;
    /** Seeds with at least one storage fault of any kind (read, write, torn, misdirected). */
    seedsWithStorageFaults: number;
    stateSyncs: number;
    parRepairs: number;
    viewChanges: number;
    repliesChecked: number;
    replicaCounts: Set<number>;
}

const storageKinds = [
    "storage_read_faults",
    "storage_write_faults",
    "torn_writes",
    "misdirected_writes",
];

/** Runs seeds [first, first + count) of a kind; every one must pass. */
export function runCiSeeds(first: number, count: number, kind: SeedKind): SeedTotals {
    const totals: SeedTotals = {
        seeds: 0,
        faults: {},
        seedsWith: {},
        seedsWithStorageFaults: 0,
        stateSyncs: 0,
        parRepairs: 0,
        viewChanges: 0,
        repliesChecked: 0,
        replicaCounts: new Set(),
    };
    for (let seed = first; seed < first + count; seed++) {
        const result = runCiSeed(seed, kind, null);
        assert.equal(
            result.result,
            "pass",
            `${kind} seed ${seed} failed: ${result.reason}\nreproduce: ${reproduce(seed, kind)}`,
        );
        totals.seeds++;
        totals.stateSyncs += result.stateSyncs;
        totals.parRepairs += result.parRepairs;
        totals.viewChanges += result.viewChanges;
        totals.repliesChecked += result.repliesChecked;
        totals.replicaCounts.add(result.replicas);
        let storage = false;
        for (const [name, count] of Object.entries(result.faults)) {
            totals.faults[name] = (totals.faults[name] ?? 0) + count;
            if (count > 0) totals.seedsWith[name] = (totals.seedsWith[name] ?? 0) + 1;
            if (count > 0 && storageKinds.includes(name)) storage = true;
        }
        if (storage) totals.seedsWithStorageFaults++;
    }
    return totals;
}
