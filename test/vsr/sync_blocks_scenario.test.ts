// State sync by blocks on a small simulated cluster (calm network, no random faults). A backup
// is down while the cluster moves beyond its WAL window; at its restart it must state-sync. The
// image comes as the blocks the target's index names: those its own durable index names with
// the same (address, checksum) are read from its disk, exactly the others are fetched from
// peers. Crashed in the middle of that load, or after it while its rebased checkpoint is being
// written, it recovers its old checkpoint whole (nothing the durable index names was
// overwritten) and syncs again. Seeds are in the test names.

import assert from "node:assert/strict";
import { test } from "node:test";
import type { Cluster } from "../../src/sim/cluster.js";
import { syncLoadsMax } from "../../src/vsr/grid.js";
import { Status } from "../../src/vsr/replica.js";
import { type NamedBlock, namedGridBlockEntries } from "../grid_disk.js";
import { calmCluster, converge, tickUntil } from "../sim/scenario.js";

const lagging = 2;

/**
 * The lagging replica checkpoints three times over 150 keys, then is down while the others run
 * past its WAL over 2 keys: their checkpoints keep most blocks it holds (few slots change, so
 * cleaning is slow), and add some it lacks.
 */
function lagBehind(cluster: Cluster): void {
    const config = cluster.options.config;
    const seed = cluster.options.seed;
    const replica = cluster.replicas[lagging]!;
    // The clients read the cluster's workload object at every event: narrowing its key space
    // in place (the checkers sized for 150 keys) concentrates the writes.
    const workload = cluster.options.workload as { keyCount: number };
    assert.equal(workload.keyCount, 150);
    const checkpointed = () => replica.checkpointOp >= 3 * config.checkpointOps;
    assert.ok(tickUntil(cluster, 200_000, checkpointed), `three checkpoints (seed ${seed})`);
    workload.keyCount = 2;
    tickUntil(cluster, 500, () => false); // Its superblock write lands.
    cluster.crash(lagging);
    const r0 = cluster.replicas[0]!;
    const target = r0.commitMin + 2 * config.journalSlotCount;
    assert.ok(
        tickUntil(cluster, 400_000, () => r0.commitMin >= target),
        `seed ${seed}`,
    );
    for (const client of cluster.clients) client.issuing = false;
    const idle = () => cluster.clients.every((client) => !client.busy);
    assert.ok(tickUntil(cluster, 50_000, idle), `idle clients (seed ${seed})`);
    tickUntil(cluster, 500, () => false); // Checkpoint and superblock writes land.
}

function entries(cluster: Cluster, replica: number): NamedBlock[] {
    return namedGridBlockEntries(cluster.storages[replica]!.data, cluster.dataLayout);
}

for (const seed of [1, 2, 3]) {
    test(`a lagging replica syncs by blocks: it fetches exactly those its disk lacks (replicas=3, seed=${seed})`, () => {
        const cluster = calmCluster(seed, 3, 150);
        lagBehind(cluster);
        const target = entries(cluster, 0);
        assert.deepEqual(entries(cluster, 1), target, "peers' indexes are identical");
        const own = new Set(entries(cluster, lagging).map((e) => `${e.address}:${e.checksum}`));
        const held = target.filter((e) => own.has(`${e.address}:${e.checksum}`)).length;
        cluster.restart(lagging);
        converge(cluster, lagging);
        const replica = cluster.replicas[lagging]!;
        assert.equal(replica.stats.stateSyncs, 1, "one state sync");
        assert.equal(replica.gridRepair.syncBlocksReused, held, "read from its own disk");
        assert.equal(replica.gridRepair.syncBlocksFetched, target.length - held, "fetched");
        assert.ok(target.length - held > 0, `the target has blocks it lacks (seed ${seed})`);
        assert.ok(held > 0, `and blocks its disk holds (seed ${seed})`);
        // Several blocks at once (applied in index order: the image equals r0's).
        const inFlight = Math.min(syncLoadsMax, target.length);
        assert.equal(replica.gridRepair.syncLoadsInFlightMax, inFlight);
    });
}

/** Restarts the lagging replica, crashes it once `when` holds, restarts it: old checkpoint. */
function crashDuringSync(cluster: Cluster, when: () => boolean, what: string): void {
    const seed = cluster.options.seed;
    const before = entries(cluster, lagging);
    const checkpointOp = cluster.replicas[lagging]!.checkpointOp;
    cluster.restart(lagging);
    assert.ok(tickUntil(cluster, 100_000, when), `${what} (seed ${seed})`);
    cluster.crash(lagging);
    assert.deepEqual(entries(cluster, lagging), before, "the durable index is the old one");
    cluster.restart(lagging);
    const replica = cluster.replicas[lagging]!;
    assert.ok(
        tickUntil(cluster, 10_000, () => replica.status !== Status.recovering),
        "opened",
    );
    assert.equal(replica.checkpointOp, checkpointOp, "recovered the old checkpoint");
    assert.equal(replica.stats.checkpointsUnreadable, 0, "its index and table read whole");
    assert.equal(replica.checkpointer.blocksUnreadable, 0, "every block it names read whole");
    converge(cluster, lagging);
    assert.equal(replica.stats.stateSyncs, 1, "then synced again");
}

for (const seed of [2, 3]) {
    test(`a crash in the middle of a sync's block load leaves the old checkpoint readable (replicas=3, seed=${seed})`, () => {
        const cluster = calmCluster(seed, 3, 150);
        lagBehind(cluster);
        const loading = () => {
            const repair = cluster.replicas[lagging]!.gridRepair;
            return repair.loading && repair.syncBlocksFetched + repair.syncBlocksReused >= 1;
        };
        crashDuringSync(cluster, loading, "a load under way");
    });

    test(`a crash while a synced image is written as a checkpoint leaves the old one readable (replicas=3, seed=${seed})`, () => {
        const cluster = calmCluster(seed, 3, 150);
        lagBehind(cluster);
        const writing = () => {
            const replica = cluster.replicas[lagging]!;
            const blocks = replica.checkpointer.grid.blocksWritten;
            return replica.stats.stateSyncs === 1 && replica.checkpointer.busy && blocks >= 2;
        };
        crashDuringSync(cluster, writing, "the synced image's blocks being written");
    });
}
