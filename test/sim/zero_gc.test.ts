// Goal: the replica's steady state allocates nothing (DESIGN target: at most one young GC per
// 100k committed ops). Method: a calm simulated cluster (3 replicas, 8 clients that never think;
// no loss, replay, partitions, clogs, swizzle-clogs, storage faults, clock jumps or crashes,
// since a restart rebuilds a replica; invariant checks off, checkers on) is warmed up for 300k
// ticks, until its code is optimized and its pools are in use, then run for 100k more inside
// countGcs (test/gc.ts), which starts the run with an empty young generation and counts the collections
// that start inside it once every GC entry has arrived. The count covers the whole simulated
// world (network, clients, checkers), so it bounds the replica's own allocation from above. The
// run must commit thousands of ops, so that "no GC" cannot come from a cluster that does
// nothing. The diagnostic line also gives the heap growth per op: with no GC inside the run,
// that is what it allocated. Why 300k: after 100k, about half the runs of this same seed still
// saw 2-3 scavenges (~1 MiB, ~50 B/op) from late tier-up (the same seed otherwise allocates
// nothing: 0.3-1.4 B/op); 300k gave 0 in 8 of 8 runs.

import { test } from "node:test";
import assert from "node:assert/strict";

import { Cluster, noCrashes } from "../../src/sim/cluster.js";
import { noStorageFaults } from "../../src/sim/storage.js";
import { defaultSimOptions, swarmClusterOptions } from "../../src/sim/vopr.js";
import { countGcs, describeGcs } from "../gc.js";

const seed = 7;
const warmupTicks = 300_000;
const measuredTicks = 100_000;
const opsCommittedMin = 5_000;
const youngGcsPer100kOpsMax = 2;

function calmCluster(): Cluster {
    const options = swarmClusterOptions({
        ...defaultSimOptions(seed),
        ticks: warmupTicks + measuredTicks,
        replicaCount: 3,
        clientCount: 8,
        checkInvariants: false,
    });
    const network = {
        ...options.network,
        packetLossProbability: 0,
        packetReplayProbability: 0,
        partitionMode: "none" as const,
        pathClogProbability: 0,
        swizzleClogProbability: 0,
    };
    const workload = { ...options.workload, thinkTicksMean: 0 };
    return new Cluster({
        ...options,
        network,
        workload,
        storageFaults: noStorageFaults,
        crashes: noCrashes,
        // Clocks keep their offsets and drift but never jump (a jump is a rare event whose
        // first run deoptimizes the tick loop, like a crash would).
        clock: { ...options.clock, jumpingProbability: 0 },
    });
}

const name = "a calm cluster (3 replicas, 8 clients) runs 100k steady ticks without young GCs";
test(name, async (t) => {
    const cluster = calmCluster();
    for (let tick = 0; tick < warmupTicks; tick++) cluster.tick();
    assert.equal(cluster.checkers.violation, null);
    const opsBefore = cluster.checkers.opCommitted;
    const requestsBefore = cluster.requestsCompleted;
    const gcs = await countGcs(() => {
        for (let tick = 0; tick < measuredTicks; tick++) cluster.tick();
    });
    assert.equal(cluster.checkers.violation, null);
    const opsCommitted = cluster.checkers.opCommitted - opsBefore;
    const requestsCompleted = cluster.requestsCompleted - requestsBefore;
    const youngGcsPer100kOps = (gcs.minor * 100_000) / Math.max(1, opsCommitted);
    const bytesPerOp = (gcs.heapGrowthBytes / Math.max(1, opsCommitted)).toFixed(1);
    const figures =
        `${describeGcs(gcs)} (${bytesPerOp} B/op); ` +
        `${opsCommitted} ops, ${requestsCompleted} requests`;
    assert.ok(opsCommitted >= opsCommittedMin, `too few ops to measure: ${figures}`);
    assert.ok(requestsCompleted > 0, figures);
    t.diagnostic(figures);
    assert.ok(youngGcsPer100kOps <= youngGcsPer100kOpsMax, figures);
});
