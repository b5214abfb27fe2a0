// Block repair scenarios on a small simulated cluster (calm network, no random faults). A backup
// is crashed once its grid holds two checkpoints' blocks and the cluster is idle; one block its
// durable index names is then corrupted on its disk. At the restart the block fails its
// checksum: the replica must fetch it from a peer by (address, checksum) and write it back, not
// state-sync the whole image, and end with the same image as its peers and, on its disk, the
// same block bytes at that address as its peers (identical addresses: grid.ts). When no peer
// can serve the block any more (their copies are corrupt too), repair gives up after its bounded
// rounds and the replica state-syncs instead, once the peers' next checkpoint dropped the block
// they found damaged when asked for it (state sync loads blocks from disks too). Seeds are in
// the test names.

import assert from "node:assert/strict";
import { test } from "node:test";
import type { Cluster } from "../../src/sim/cluster.js";
import { namedGridBlocks } from "../grid_disk.js";
import { calmCluster, converge, tickUntil } from "../sim/scenario.js";

const victim = 2;

/** Two checkpoints on the victim, then an idle cluster, then the victim crashed. */
function crashAfterCheckpoints(cluster: Cluster): void {
    const checkpointOps = cluster.options.config.checkpointOps;
    const replica = cluster.replicas[victim]!;
    const seed = cluster.options.seed;
    const checkpointed = () => replica.checkpointOp >= 2 * checkpointOps;
    assert.ok(tickUntil(cluster, 200_000, checkpointed), `two checkpoints (seed ${seed})`);
    for (const client of cluster.clients) client.issuing = false;
    const idle = () => cluster.clients.every((client) => !client.busy);
    assert.ok(tickUntil(cluster, 50_000, idle), `idle clients (seed ${seed})`);
    tickUntil(cluster, 500, () => false); // Checkpoint and superblock writes land.
    cluster.crash(victim);
}

function blockBytes(cluster: Cluster, replica: number, address: number): Uint8Array {
    const zones = cluster.dataLayout;
    const offset = zones.gridOffset + address * zones.gridBlockSize;
    return cluster.storages[replica]!.data.slice(offset, offset + zones.gridBlockSize);
}

function corruptBlock(cluster: Cluster, replica: number, address: number): void {
    const zones = cluster.dataLayout;
    const offset = zones.gridOffset + address * zones.gridBlockSize + 100; // Its first record.
    const data = cluster.storages[replica]!.data;
    data[offset] = (data[offset] ?? 0) ^ 0xff;
}

for (const seed of [1, 2, 3]) {
    test(`a corrupt grid block is repaired from a peer by (address, checksum), not by state sync (replicas=3, seed=${seed})`, () => {
        const cluster = calmCluster(seed, 3);
        crashAfterCheckpoints(cluster);
        const named = namedGridBlocks(cluster.storages[victim]!.data, cluster.dataLayout);
        assert.ok(named.length >= 1, `the durable index names blocks (seed ${seed})`);
        const address = named[seed % named.length]!;
        const good = blockBytes(cluster, victim, address);
        // Deterministic addresses: the peers wrote the same block at the same address.
        assert.deepEqual(blockBytes(cluster, 0, address), good, `r0's block ${address}`);
        corruptBlock(cluster, victim, address);
        cluster.restart(victim);
        converge(cluster, victim);
        const replica = cluster.replicas[victim]!;
        assert.equal(replica.gridRepair.blocksRepaired, 1, `one block repaired (seed ${seed})`);
        assert.equal(replica.stats.stateSyncs, 0, "no state sync");
        assert.equal(replica.stats.checkpointsUnreadable, 0, "the checkpoint read, repaired");
        assert.deepEqual(blockBytes(cluster, victim, address), good, "written back in place");
        // And the cluster goes on (the checkers run on every tick).
        for (const client of cluster.clients) client.issuing = true;
        const further = cluster.replicas[0]!.commitMin + 2 * cluster.options.config.checkpointOps;
        assert.ok(
            tickUntil(cluster, 100_000, () => replica.commitMin >= further),
            "goes on",
        );
    });
}

test("a block no peer can serve any more is left to state sync after bounded rounds (replicas=3, seed=4)", () => {
    const seed = 4;
    const cluster = calmCluster(seed, 3);
    crashAfterCheckpoints(cluster);
    const named = namedGridBlocks(cluster.storages[victim]!.data, cluster.dataLayout);
    const address = named[0]!;
    for (let replica = 0; replica < 3; replica++) corruptBlock(cluster, replica, address);
    cluster.restart(victim);
    // Every disk lost the block: state sync (which loads blocks from disks too) waits for the
    // peers' next checkpoint, which drops the block they found damaged when asked for it.
    const replica = cluster.replicas[victim]!;
    const gaveUp = () => replica.stats.checkpointsUnreadable === 1;
    assert.ok(tickUntil(cluster, 50_000, gaveUp), "gave the checkpoint up");
    const peerCheckpoint = cluster.replicas[0]!.checkpointOp;
    for (const client of cluster.clients) client.issuing = true;
    const moved = () => cluster.replicas[0]!.checkpointOp > peerCheckpoint;
    assert.ok(tickUntil(cluster, 200_000, moved), "the peers checkpointed again");
    for (const client of cluster.clients) client.issuing = false;
    converge(cluster, victim);
    assert.equal(replica.gridRepair.blocksRepaired, 0);
    assert.ok(replica.gridRepair.requestsSent >= 8, "asked every peer, more than once");
    assert.ok(replica.stats.stateSyncs >= 1, "and state-synced");
    const served = cluster.replicas[0]!.gridRepair.requestsUnserved;
    assert.ok(served + cluster.replicas[1]!.gridRepair.requestsUnserved > 0, "peers declined");
    const damaged = cluster.replicas[0]!.gridRepair.blocksDamaged;
    assert.ok(damaged + cluster.replicas[1]!.gridRepair.blocksDamaged > 0, "found it damaged");
});

test("a peer whose copy of the block is corrupt on its disk does not serve it; another peer does (replicas=3, seed=6)", () => {
    const seed = 6;
    const cluster = calmCluster(seed, 3);
    crashAfterCheckpoints(cluster);
    const named = namedGridBlocks(cluster.storages[victim]!.data, cluster.dataLayout);
    const address = named[named.length - 1]!;
    const good = blockBytes(cluster, victim, address);
    corruptBlock(cluster, victim, address);
    corruptBlock(cluster, 0, address); // r0 still names it in memory: it reads, then declines.
    cluster.restart(victim);
    converge(cluster, victim);
    const replica = cluster.replicas[victim]!;
    assert.equal(replica.gridRepair.blocksRepaired, 1, "repaired");
    assert.equal(replica.stats.stateSyncs, 0, "no state sync");
    assert.deepEqual(blockBytes(cluster, victim, address), good, "the good bytes, from r1");
    assert.equal(cluster.replicas[0]!.gridRepair.blocksServed, 0, "r0 sent nothing");
    assert.ok(cluster.replicas[1]!.gridRepair.blocksServed >= 1, "r1 served it");
});
