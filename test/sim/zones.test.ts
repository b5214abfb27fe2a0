// Goal: the simulator faults every zone of the data file, and replicas repair each from peers.
// Method: storm seeds (frequent crashes and storage faults) must fault every zone and still pass
// every checker; then targeted runs on a calm 3-replica cluster: a crashed replica's
// checkpoint copies (or its grid blocks, or its stored client replies) are corrupted on its
// disk, and after the restart it must not refuse to start but state-sync the checkpoint (or
// fetch the blocks by (address, checksum), or the replies with request_reply), converge with
// its peers on the same state, and leave no reply missing.
// Every run is replayable from its seed (printed in assertion messages).

import assert from "node:assert/strict";
import { test } from "node:test";
import { Cluster, noCrashes } from "../../src/sim/cluster.js";
import { noStorageFaults, zoneNames } from "../../src/sim/storage.js";
import { defaultSimOptions, runSimulation, swarmClusterOptions } from "../../src/sim/vopr.js";
import { sectorSize } from "../../src/constants.js";
import { Status } from "../../src/vsr/replica.js";

test("storm seeds fault every zone of the data file and pass every checker", () => {
    const zones: Record<string, number> = {};
    for (let seed = 1; seed <= 10; seed++) {
        const result = runSimulation({ ...defaultSimOptions(seed), storm: true });
        assert.equal(result.result, "pass", `storm seed ${seed}: ${result.reason}`);
        for (const [name, count] of Object.entries(result.faultZones)) {
            zones[name] = (zones[name] ?? 0) + count;
        }
    }
    assert.deepEqual(Object.keys(zones), zoneNames);
    for (const name of zoneNames) assert.ok((zones[name] ?? 0) > 0, name);
});

const victim = 2;

/** A calm 3-replica cluster (no crashes, storage faults or network faults) of seed `seed`. */
function calmCluster(seed: number): Cluster {
    const simOptions = { ...defaultSimOptions(seed), replicaCount: 3, clientCount: 4 };
    const options = swarmClusterOptions(simOptions);
    const cluster = new Cluster({
        ...options,
        storageFaults: noStorageFaults,
        crashes: noCrashes,
    });
    cluster.heal();
    return cluster;
}

function tickUntil(cluster: Cluster, what: string, ticksMax: number, done: () => boolean): void {
    for (let tick = 0; !done(); tick++) {
        const seed = cluster.options.seed;
        assert.ok(tick < ticksMax, `${what} within ${ticksMax} ticks (cluster seed ${seed})`);
        cluster.tick();
        assert.equal(cluster.checkers.violation, null);
    }
}

/**
 * Runs until the victim wrote a checkpoint, then lets only client 0 go on until the victim wrote
 * another (so the other clients' latest replies are the ones that checkpoint stored, and its
 * peers hold the same), then stops the clients and crashes the victim.
 */
function crashAfterCheckpoints(cluster: Cluster): void {
    const checkpointOps = cluster.options.config.checkpointOps;
    const replica = cluster.replicas[victim]!;
    tickUntil(cluster, "a checkpoint", 200_000, () => replica.checkpointOp >= checkpointOps);
    const others = cluster.clients.slice(1);
    for (const client of others) client.issuing = false;
    tickUntil(cluster, "idle clients", 50_000, () => others.every((client) => !client.busy));
    const checkpointOp = replica.checkpointOp;
    tickUntil(cluster, "another checkpoint", 200_000, () => {
        return replica.checkpointOp >= checkpointOp + checkpointOps;
    });
    cluster.clients[0]!.issuing = false;
    tickUntil(cluster, "idle", 50_000, () => cluster.clients.every((client) => !client.busy));
    cluster.crash(victim); // It restarts at the next tick, over whatever its disk then holds.
}

/** Runs until every replica is up, normal, in sync with state, at the same commit. */
function converge(cluster: Cluster): void {
    tickUntil(cluster, "convergence", 200_000, () => {
        const commit = cluster.replicas[0]!.commitMin;
        return cluster.replicas.every(
            (replica, index) =>
                cluster.up[index] === 1 &&
                replica.status === Status.normal &&
                !replica.stateMissing &&
                replica.commitMin === commit,
        );
    });
    const bytes = cluster.arena.bytes;
    const image = (index: number): Uint8Array => {
        const machine = cluster.stateMachines[index]!;
        return bytes.slice(machine.imageOffset, machine.imageOffset + machine.imageSize);
    };
    assert.deepEqual(image(victim), image(0), "the same state as its peers");
}

test("a replica whose checkpoint is corrupt on disk state-syncs it instead of refusing", () => {
    const cluster = calmCluster(21);
    crashAfterCheckpoints(cluster);
    const zones = cluster.dataLayout;
    const data = cluster.storages[victim]!.data;
    for (let copy = 0; copy < 2; copy++) {
        const offset = zones.checkpointOffset + copy * zones.checkpointCopySize + sectorSize;
        data[offset + 7] = (data[offset + 7] ?? 0) ^ 0xff;
    }
    converge(cluster);
    const replica = cluster.replicas[victim]!;
    assert.equal(replica.stats.checkpointsUnreadable, 1);
    assert.ok(replica.stats.stateSyncs >= 1);
});

test("a replica whose grid blocks are corrupt on disk fetches them from peers by (address, checksum)", () => {
    const cluster = calmCluster(23);
    crashAfterCheckpoints(cluster);
    const zones = cluster.dataLayout;
    const data = cluster.storages[victim]!.data;
    // One byte of every block's records: whichever blocks the durable index names.
    for (let address = 0; address < zones.gridBlockCount; address++) {
        const offset = zones.gridOffset + address * zones.gridBlockSize + 100;
        data[offset] = (data[offset] ?? 0) ^ 0xff;
    }
    converge(cluster);
    const replica = cluster.replicas[victim]!;
    assert.ok(replica.gridRepair.blocksRepaired >= 1, "blocks repaired");
    assert.equal(replica.stats.checkpointsUnreadable, 0, "the checkpoint read, repaired");
    assert.equal(replica.stats.stateSyncs, 0, "no state sync");
});

test("a replica whose stored client replies are corrupt fetches them from peers", () => {
    const seed = Number(process.env["VSR_REPLY_SEED"] ?? 22);
    const cluster = calmCluster(seed);
    crashAfterCheckpoints(cluster);
    const zones = cluster.dataLayout;
    const data = cluster.storages[victim]!.data;
    // The first sector of every reply slot, in both halves (whichever the checkpoint uses).
    for (let offset = zones.clientRepliesOffset; offset < zones.checkpointOffset; ) {
        data[offset + 3] = (data[offset + 3] ?? 0) ^ 0xff;
        offset += cluster.options.config.messageSizeMax;
    }
    converge(cluster);
    const replica = cluster.replicas[victim]!;
    tickUntil(cluster, "every reply repaired", 50_000, () => {
        for (let entry = 0; entry < replica.sessions.entriesMax; entry++) {
            if (replica.sessions.replyMissing(entry)) return false;
        }
        return true;
    });
    assert.equal(replica.stats.checkpointsUnreadable, 0, "the checkpoint itself is intact");
    assert.ok(replica.stats.repliesRepaired > 0, `replies repaired (seed ${seed})`);
});

test("checkpoint writes the disk refuses (EIO) are issued again until they land", () => {
    const seed = 24;
    const simOptions = { ...defaultSimOptions(seed), replicaCount: 3, clientCount: 4 };
    const cluster = new Cluster({
        ...swarmClusterOptions(simOptions),
        storageFaults: noStorageFaults,
        crashes: noCrashes,
    });
    cluster.heal(); // A calm network; then write errors only, in every zone.
    const writeErrors = { ...noStorageFaults, writeErrorProbability: 0.2 };
    for (const storage of cluster.storages) storage.faults = writeErrors;
    const checkpointOps = cluster.options.config.checkpointOps;
    tickUntil(cluster, "three checkpoints and 30 grid blocks everywhere", 1_000_000, () =>
        cluster.replicas.every(
            (replica) =>
                replica.checkpointOp >= 3 * checkpointOps &&
                replica.checkpointer.grid.blocksWrittenTotal >= 30,
        ),
    );
    const retries = cluster.replicas.map((replica) => replica.checkpointer.writeRetries);
    assert.ok(
        retries.every((count) => count > 0),
        `every replica retried checkpoint writes (seed ${seed}): ${retries.join(", ")}`,
    );
    const zones = cluster.storages.map((storage) => storage.stats.zoneFaults);
    for (const name of ["checkpoints", "grid"]) {
        const zone = zoneNames.indexOf(name);
        const faults = zones.reduce((sum, counts) => sum + counts[zone]!, 0);
        assert.ok(faults > 0, `${name}: write errors placed (seed ${seed})`);
    }
    converge(cluster);
});
