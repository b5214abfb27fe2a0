// Goal: clock faults matter in the simulator and the clock checks have teeth. Seeds with drifting,
// jumping and far-off clocks pass every checker while cluster time is compared with true time;
// a primary whose clock is an hour ahead never puts its time in the log; and a replica that
// stamps prepares from its raw local clock (the test-only switch timestampFromLocalClock) is
// caught by the timestamp checks, going back or running ahead.
// Method: seeds are picked from the swarm by their drawn clock options (cheap: no run), then
// run; the explicit cluster uses the swarm's options for one seed with only the clock replaced.

import { test } from "node:test";
import assert from "node:assert/strict";

import { Cluster, type ClusterOptions, noClockFaultOptions } from "../../src/sim/cluster.js";
import { defaultSimOptions, runSimulation, swarmClusterOptions } from "../../src/sim/vopr.js";
import { type ReplicaFaults, noReplicaFaults } from "../../src/vsr/replica.js";

const hourUs = 3_600_000_000;
const rawClock: ReplicaFaults = { ...noReplicaFaults, timestampFromLocalClock: true };

/** The first `count` seeds from 1 whose drawn options satisfy `wanted`. */
function seedsWhere(count: number, wanted: (options: ClusterOptions) => boolean): number[] {
    const seeds: number[] = [];
    for (let seed = 1; seeds.length < count; seed++) {
        assert.ok(seed < 10_000, "no such seed");
        if (wanted(swarmClusterOptions(defaultSimOptions(seed)))) seeds.push(seed);
    }
    return seeds;
}

test("seeds with drift, jumps and a far-off clock pass every checker (replicas>=3)", () => {
    const candidates = seedsWhere(
        40,
        (options) =>
            options.replicaCount >= 3 &&
            options.clock.driftPpmMax > 0 &&
            options.clock.jumpingProbability > 0 &&
            options.clock.farOffUs > 0,
    );
    let seeds = 0;
    let syncChecks = 0;
    let timestampChecks = 0;
    let jumps = 0;
    for (const seed of candidates) {
        const cluster = new Cluster(swarmClusterOptions(defaultSimOptions(seed)));
        // Only seeds where every quorum holds a good clock have cluster time to check.
        if (!cluster.clockChecker.quorumGood || seeds === 3) continue;
        seeds++;
        for (let tick = 0; tick < 10_000; tick++) cluster.tick();
        assert.equal(cluster.checkers.violation, null, `seed ${seed}`);
        syncChecks += cluster.clockChecker.syncChecks;
        timestampChecks += cluster.clockChecker.timestampChecks;
        for (const time of cluster.times) jumps += time.jumps;
        const result = runSimulation({ ...defaultSimOptions(seed), ticks: 10_000 });
        assert.equal(result.result, "pass", `seed ${seed}: ${result.reason}`);
    }
    assert.equal(seeds, 3);
    assert.ok(syncChecks > 1_000, `cluster time checked ${syncChecks} times`);
    assert.ok(timestampChecks > 100, `timestamps checked ${timestampChecks} times`);
    assert.ok(jumps > 0, "some clock jumped");
});

/** Three replicas whose first primary (replica 0) starts an hour ahead; clocks otherwise good. */
function hourAheadPrimary(faults: ReplicaFaults | null): Cluster {
    for (let seed = 1; seed < 100; seed++) {
        const options = swarmClusterOptions({
            ...defaultSimOptions(seed),
            replicaCount: 3,
            faults,
        });
        const clock = { ...noClockFaultOptions, farOffUs: hourUs };
        const cluster = new Cluster({ ...options, clock });
        if (cluster.farOffReplica === 0 && cluster.times[0]!.errorUs() > 0) return cluster;
    }
    assert.fail("no seed below 100 puts the hour-ahead clock on replica 0");
}

test("a primary whose clock is an hour ahead never puts its time in the log (replicas=3)", () => {
    const cluster = hourAheadPrimary(null);
    assert.ok(cluster.clockChecker.quorumGood);
    for (let tick = 0; tick < 5_000; tick++) cluster.tick();
    assert.equal(cluster.checkers.violation, null);
    assert.ok(cluster.checkers.opCommitted > 10, `${cluster.checkers.opCommitted} ops`);
    const aheadUs = cluster.clockChecker.timestampLastUs - cluster.times[1]!.trueRealtimeUs();
    assert.ok(aheadUs <= 1_000_000, `the log's time is ${aheadUs} us ahead`);
    assert.ok(cluster.clockChecker.syncChecks > 0);
});

test("the same primary stamping from its raw clock is caught running an hour ahead", () => {
    const cluster = hourAheadPrimary(rawClock);
    for (let tick = 0; tick < 5_000 && cluster.checkers.violation === null; tick++) {
        cluster.tick();
    }
    assert.match(String(cluster.checkers.violation), /ahead of true time/);
});

test("prepare timestamps from the raw local clock are caught by the seed set", () => {
    const seeds = seedsWhere(
        32,
        (options) => options.clock.farOffUs > 0 || options.clock.jumpingProbability > 0,
    );
    const reasons: string[] = [];
    for (const seed of seeds) {
        const result = runSimulation({
            ...defaultSimOptions(seed),
            ticks: 5_000,
            faults: rawClock,
        });
        if (result.result === "safety") reasons.push(String(result.reason));
    }
    assert.ok(reasons.length >= 16, `caught ${reasons.length} of ${seeds.length} seeds`);
    const went = (pattern: RegExp): number =>
        reasons.filter((reason) => pattern.test(reason)).length;
    assert.ok(went(/goes back from/) >= 1, "a timestamp went back");
    assert.ok(went(/ahead of true time/) >= 1, "a timestamp ran ahead");
});
