// Deterministic view-change scenarios, driven by hand on a small simulated cluster (calm network,
// no random faults or crashes: every fault here is placed on purpose).
//
// Unknown head: a replica acknowledged the head op, then lost both its WAL header and its
// prepare (a corrupt slot on restart). It cannot name its head, so it must not vote as if the
// head ended below that slot: the committed op, held intact only by a replica that is down, must
// survive the view change among the others (it waits for the replica that holds it). Before
// do_view_change named the unknown head (headers_op < op) and the new primary walked up to it,
// the commit=2 case failed: "replica 1 committed op 2 with a different checksum".

import { test } from "node:test";
import assert from "node:assert/strict";

import { calmCluster, corruptSlot, tickUntil } from "../sim/scenario.js";
import { Status } from "../../src/vsr/replica.js";

// A head within a pipeline of the root (before the fix, the view change dropped it and the next
// view committed another op there), and a head further up (the suffix must reach its anchor).
const cases = [
    { seed: 1, commitTarget: 2 },
    { seed: 2, commitTarget: 3 },
    { seed: 3, commitTarget: 12 },
    { seed: 4, commitTarget: 20 },
];
for (const { seed, commitTarget } of cases) {
    const name =
        "a replica that lost its acknowledged head slot does not let a view change drop the " +
        `committed op (replicas=3, commit=${commitTarget}, seed=${seed})`;
    test(name, () => {
        const cluster = calmCluster(seed, 3);
        const [r0, r1] = [cluster.replicas[0]!, cluster.replicas[1]!];
        // r2 is down from the start: ops commit on r0 (the primary) and r1 alone.
        cluster.crash(2);
        assert.ok(
            tickUntil(cluster, 20_000, () => r0.commitMin >= 12),
            `seed ${seed}`,
        );
        for (const client of cluster.clients) client.issuing = false;
        const quiet = (): boolean =>
            !cluster.clients.some((client) => client.busy) &&
            r0.commitMin === r0.op &&
            r1.op === r0.op &&
            r1.journal.isDurable(r1.op) &&
            r1.journal.writesInFlight === 0 &&
            r0.journal.writesInFlight === 0;
        assert.ok(tickUntil(cluster, 20_000, quiet), `seed ${seed}`);
        const head = r0.op;
        assert.ok(head < cluster.options.config.checkpointOps, "no checkpoint in the way");
        // r0 holds the committed head; r1 acknowledged it, then loses that slot entirely.
        cluster.crash(0);
        cluster.crash(1);
        corruptSlot(cluster, 1, head);
        cluster.restart(1);
        cluster.restart(2);
        for (const client of cluster.clients) client.issuing = true;
        // r1 and r2 form a view-change quorum but must not install a log without `head`.
        tickUntil(cluster, 5_000, () => false);
        for (const index of [1, 2]) {
            const replica = cluster.replicas[index]!;
            if (replica.status === Status.normal) {
                assert.ok(replica.op >= head, `replica ${index} dropped op ${head}`);
            }
        }
        // With r0 back, the view change completes with the committed op, and the cluster goes on.
        cluster.restart(0);
        const r0Back = cluster.replicas[0]!;
        const progressed = (): boolean =>
            cluster.replicas.every(
                (replica) => replica.status === Status.normal && replica.commitMin > head,
            ) && r0Back.commitMin > head;
        assert.ok(tickUntil(cluster, 40_000, progressed), `seed ${seed}: no progress`);
        assert.equal(cluster.checkers.violation, null);
    });
}
