// Hand-driven scenarios on a small simulated cluster: a calm network, no random storage faults,
// crashes or clock faults, so every fault a scenario test needs is placed on purpose.

import assert from "node:assert/strict";

import { headerSize } from "../../src/constants.js";
import { Cluster, type CrashOptions, noClockFaultOptions } from "../../src/sim/cluster.js";
import { noStorageFaults } from "../../src/sim/storage.js";
import { defaultSimOptions, swarmClusterOptions } from "../../src/sim/vopr.js";
import { Status } from "../../src/vsr/replica.js";

/** Crashed replicas stay down until the scenario restarts them. */
const downUntilRestarted: CrashOptions = {
    crashProbability: 0,
    downTicksMin: 1e9,
    downTicksMax: 1e9,
};

/**
 * The seed's cluster with every random fault off (delay and reordering stay); `keyCount`, if
 * given, replaces the seed's key space.
 */
export function calmCluster(seed: number, replicaCount: number, keyCount = 0): Cluster {
    const options = swarmClusterOptions({
        ...defaultSimOptions(seed),
        replicaCount,
        clientCount: 2,
    });
    return new Cluster({
        ...options,
        network: {
            ...options.network,
            packetLossProbability: 0,
            packetReplayProbability: 0,
            partitionMode: "none",
            pathClogProbability: 0,
            swizzleClogProbability: 0,
        },
        workload: {
            ...options.workload,
            thinkTicksMean: 2,
            keyCount: keyCount > 0 ? keyCount : options.workload.keyCount,
        },
        storageFaults: noStorageFaults,
        crashes: downUntilRestarted,
        clock: noClockFaultOptions,
    });
}

/** Ticks until `done` (true) or `ticksMax` ticks (then done's answer); every tick is checked. */
export function tickUntil(cluster: Cluster, ticksMax: number, done: () => boolean): boolean {
    for (let tick = 0; tick < ticksMax; tick++) {
        if (done()) return true;
        cluster.tick();
        assert.equal(cluster.checkers.violation, null, `seed ${cluster.options.seed}`);
    }
    return done();
}

/** Flips a byte of the WAL header and of the prepare in the slot of `op`: both unreadable. */
export function corruptSlot(cluster: Cluster, replica: number, op: number): void {
    const data = cluster.storages[replica]!.data;
    const dataLayout = cluster.dataLayout;
    const slot = op % cluster.options.config.journalSlotCount;
    const header = dataLayout.walHeadersOffset + slot * headerSize;
    const prepare = dataLayout.walPreparesOffset + slot * cluster.options.config.messageSizeMax;
    data[header + 40] = (data[header + 40] ?? 0) ^ 0xff;
    data[prepare + 40] = (data[prepare + 40] ?? 0) ^ 0xff;
}

/**
 * Ticks until every replica is normal, holds state and is at replica 0's commit, then asserts
 * that `replica`'s KV image is byte for byte replica 0's (a repaired or synced replica has
 * exactly its peers' state).
 */
export function converge(cluster: Cluster, replica: number): void {
    const seed = cluster.options.seed;
    const converged = () => {
        const commit = cluster.replicas[0]!.commitMin;
        return cluster.replicas.every(
            (r) => r.status === Status.normal && !r.stateMissing && r.commitMin === commit,
        );
    };
    assert.ok(tickUntil(cluster, 100_000, converged), `convergence (seed ${seed})`);
    const bytes = cluster.arena.bytes;
    const image = (index: number): Uint8Array => {
        const machine = cluster.stateMachines[index]!;
        return bytes.slice(machine.imageOffset, machine.imageOffset + machine.imageSize);
    };
    assert.deepEqual(image(replica), image(0), `the same image as its peers (seed ${seed})`);
}
