// Deterministic state-sync scenario on a small simulated cluster (calm network, no random faults
// or crashes). A replica down while the cluster moves beyond its WAL window comes back and must
// sync a checkpoint. While every chunk it receives names a checkpoint whose anchor (the checksum
// of the prepare at the checkpoint op) is not the committed prepare, it must not install it: the
// image verifies against the chunk's own checksums, so only another replica's log can tell. Before
// the anchor had to be confirmed, the replica installed it and crashed on its next commit (the
// next prepare's parent was not the anchor). Once the chunks are honest, it syncs and catches up.

import { test } from "node:test";
import assert from "node:assert/strict";

import { calmCluster, tickUntil } from "../sim/scenario.js";
import { Command, Sync, headerCommand, headerReplica, setChecksums } from "../../src/vsr/header.js";
import type { Message } from "../../src/vsr/message_pool.js";
import type { Cluster } from "../../src/sim/cluster.js";
import { type Replica, Status } from "../../src/vsr/replica.js";

/**
 * Replica 2 down while the others commit two WAL windows' worth of ops, then restarted: it must
 * sync a checkpoint to catch up to `target`.
 */
function laggingReplica(seed: number): { cluster: Cluster; lagging: Replica; target: number } {
    const cluster = calmCluster(seed, 3);
    cluster.crash(2);
    const r0 = cluster.replicas[0]!;
    const target = 2 * cluster.options.config.journalSlotCount;
    assert.ok(
        tickUntil(cluster, 100_000, () => r0.commitMin >= target),
        `seed ${seed}`,
    );
    cluster.restart(2);
    return { cluster, lagging: cluster.replicas[2]!, target };
}

for (const seed of [1, 2, 3]) {
    const name =
        "a lagging replica does not install a checkpoint whose anchor no other log confirms " +
        `(replicas=3, seed=${seed})`;
    test(name, () => {
        const { cluster, lagging, target } = laggingReplica(seed);
        // Every sync chunk from the replica asked names a wrong anchor (one byte off),
        // re-checksummed so that it is a well-formed message. (Chunks from the others stay
        // honest: they are asked too, to vouch for the anchor with their own checkpoint.)
        let tampered = 0;
        let tampering = true;
        const onMessage = lagging.onMessage.bind(lagging);
        lagging.onMessage = (message: Message): void => {
            const view = cluster.arena.view;
            const sync = headerCommand(view, message.offset) === Command.sync;
            if (tampering && sync && headerReplica(view, message.offset) === lagging.syncPeer) {
                const anchor = message.offset + Sync.anchorChecksum;
                view.setUint8(anchor, view.getUint8(anchor) ^ 0x01);
                setChecksums(cluster.arena.bytes, view, message.offset);
                tampered++;
            }
            onMessage(message);
        };
        tickUntil(cluster, 3_000, () => false);
        assert.ok(tampered > 0, "the lagging replica asked for a checkpoint");
        assert.equal(lagging.stats.stateSyncs, 0, "installed an unconfirmed checkpoint");
        tampering = false;
        const caughtUp = (): boolean =>
            lagging.stats.stateSyncs > 0 &&
            lagging.status === Status.normal &&
            lagging.commitMin >= target;
        assert.ok(tickUntil(cluster, 40_000, caughtUp), `seed ${seed}: no sync`);
        assert.equal(cluster.checkers.violation, null);
    });
}

// Default seed 3830: the only replica besides the sync peer had itself installed that
// checkpoint by state sync, so it held no header at or below it and never answered the anchor's
// header request; the lagging replica asked forever. A peer's own checkpoint at the same op and
// anchor confirms it: here every `headers` reply from a replica other than the sync peer is
// dropped while the lagging replica syncs, and it must still install the checkpoint.
for (const seed of [1, 2, 3]) {
    const name =
        "a sync anchor is confirmed by another replica's checkpoint when no other log holds " +
        `its header (replicas=3, seed=${seed})`;
    test(name, () => {
        const { cluster, lagging, target } = laggingReplica(seed);
        let dropped = 0;
        const onMessage = lagging.onMessage.bind(lagging);
        lagging.onMessage = (message: Message): void => {
            const view = cluster.arena.view;
            const withheld =
                lagging.syncing &&
                headerCommand(view, message.offset) === Command.headers &&
                headerReplica(view, message.offset) !== lagging.syncPeer;
            if (withheld) {
                dropped++;
                return;
            }
            onMessage(message);
        };
        const caughtUp = (): boolean =>
            lagging.stats.stateSyncs > 0 &&
            lagging.status === Status.normal &&
            lagging.commitMin >= target;
        assert.ok(tickUntil(cluster, 40_000, caughtUp), `seed ${seed}: no sync`);
        assert.ok(dropped > 0, "the anchor's header was asked of the other replica");
        assert.ok(lagging.stats.syncAnchorsConfirmedByCheckpoint > 0, "confirmed by a checkpoint");
        assert.equal(cluster.checkers.violation, null);
    });
}
