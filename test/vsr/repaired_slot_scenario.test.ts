// A faulty WAL slot stays "maybe acknowledged" until its repaired prepare is durable (storm seed
// 356, without depending on it). Shape: two replicas commit an op; one of them (r0) then loses
// that op's prepare on its disk (its header still reads: recovery case @C, faulty) and restarts.
// It fetches the prepare from r1 and stores it; while the write of that copy is in flight, a
// do_view_change it builds must not nack the op: with two replicas one nack is a nack quorum,
// and in seed 356 that truncated committed op 100 (the next primary prepared another op 100).
// Once the copy is durable the slot is no longer faulty and the op is present. The cluster then
// converges and goes on; the checkers run on every tick. Seeds are in the test names.

import assert from "node:assert/strict";
import { test } from "node:test";

import { headerSize } from "../../src/constants.js";
import type { Cluster } from "../../src/sim/cluster.js";
import { DoViewChange, Frame, readU64 } from "../../src/vsr/header.js";
import { Status } from "../../src/vsr/replica.js";
import { buildDoViewChange } from "../../src/vsr/view_change.js";
import { calmCluster, tickUntil } from "../sim/scenario.js";

/** Flips a byte of the prepare (not the header) in the slot of `op`: recovery case @C. */
function corruptPrepare(cluster: Cluster, replica: number, op: number): void {
    const data = cluster.storages[replica]!.data;
    const config = cluster.options.config;
    const slot = op % config.journalSlotCount;
    const prepare = cluster.dataLayout.walPreparesOffset + slot * config.messageSizeMax;
    data[prepare + 40] = (data[prepare + 40] ?? 0) ^ 0xff;
}

/** True when the header sector on `replica`'s disk holds the header of `op` it holds. */
function headerOnDisk(cluster: Cluster, index: number, op: number): boolean {
    const journal = cluster.replicas[index]!.journal;
    if (!journal.hasHeader(op)) return false;
    const config = cluster.options.config;
    const onDisk =
        cluster.dataLayout.walHeadersOffset + (op % config.journalSlotCount) * headerSize;
    const inMemory = journal.headerOffset(journal.slotOf(op));
    const data = cluster.storages[index]!.data;
    for (let byte = 0; byte < 16; byte++) {
        if (data[onDisk + byte] !== cluster.arena.bytes[inMemory + byte]) return false;
    }
    return true;
}

/** The nack and present bits a do_view_change of `index` would carry for `op` now. */
function doViewChangeBits(cluster: Cluster, index: number, op: number) {
    const replica = cluster.replicas[index]!;
    const message = buildDoViewChange(replica);
    const memory = replica.memory;
    const base = message.offset;
    const headersOp = readU64(memory, base + DoViewChange.headersOp);
    const count = (memory.getUint32(base + Frame.size, true) - headerSize) / headerSize;
    const bit = headersOp - op;
    assert.ok(bit >= 0 && bit < count, `op ${op} is inside the suffix`);
    const nack = (memory.getUint32(base + DoViewChange.nackBitset, true) >>> bit) & 1;
    const present = (memory.getUint32(base + DoViewChange.presentBitset, true) >>> bit) & 1;
    replica.pool.unref(message);
    return { nack, present };
}

/** Hex of the checksum of the header `replica` holds for `op`. */
function headerChecksum(cluster: Cluster, index: number, op: number): string {
    const journal = cluster.replicas[index]!.journal;
    assert.ok(journal.hasHeader(op));
    const offset = journal.headerOffset(journal.slotOf(op));
    return Buffer.from(cluster.arena.bytes.subarray(offset, offset + 16)).toString("hex");
}

for (const seed of [1, 2, 3, 4]) {
    test(`a repaired faulty slot is never nacked while its copy is written (replicas=2, seed=${seed})`, () => {
        const cluster = calmCluster(seed, 2);
        const [r0, r1] = [cluster.replicas[0]!, cluster.replicas[1]!];
        assert.ok(
            tickUntil(cluster, 20_000, () => r0.commitMin >= 3),
            `commits (seed ${seed})`,
        );
        // Crash the primary (r0) when both replicas hold an op durably (both acknowledged it:
        // r1's prepare_ok is on its way) that r0 has not committed yet, and r0's header sector
        // holds it too (it follows the prepare, unwaited).
        let op = 0;
        const acknowledged = (): boolean => {
            for (let candidate = r0.op; candidate > r0.commitMax; candidate--) {
                if (
                    r0.journal.isDurable(candidate) &&
                    r1.journal.isDurable(candidate) &&
                    headerOnDisk(cluster, 0, candidate)
                ) {
                    op = candidate;
                    return true;
                }
            }
            return false;
        };
        assert.ok(tickUntil(cluster, 20_000, acknowledged), `an acknowledged op (seed ${seed})`);
        assert.ok(op < cluster.options.config.checkpointOps, "no checkpoint in the way");
        const checksum = headerChecksum(cluster, 1, op);
        cluster.crash(0);
        for (const client of cluster.clients) client.issuing = false;
        // r0's disk loses the prepare; its header still reads: faulty, never nacked.
        corruptPrepare(cluster, 0, op);
        cluster.restart(0);
        const back = cluster.replicas[0]!;
        assert.ok(tickUntil(cluster, 5_000, () => back.status !== Status.recovering));
        assert.ok(back.journal.hasHeader(op) && back.journal.isFaulty(op), "@C: faulty");
        // The view change keeps `op` (r1 holds it); r0 then fetches its prepare from r1. No
        // replica commits it before r0's copy is durable (r0's prepare_ok is the quorum's).
        const writing = () => back.journal.hasPrepare(op) && !back.journal.isDurable(op);
        assert.ok(tickUntil(cluster, 20_000, writing), `repair stored (seed ${seed})`);
        assert.ok(op > back.commitMin, "not executed: its bits say what the journal knows");
        assert.ok(back.journal.isFaulty(op), "faulty until the repaired copy is durable");
        const during = doViewChangeBits(cluster, 0, op);
        assert.deepEqual(during, { nack: 0, present: 0 }, "r0 acknowledged it before the crash");
        assert.ok(
            tickUntil(cluster, 5_000, () => back.journal.isDurable(op)),
            "durable",
        );
        assert.ok(!back.journal.isFaulty(op), "repaired");
        assert.equal(back.journal.faultyRepaired, 1);
        assert.equal(doViewChangeBits(cluster, 0, op).nack, 0);
        // The op commits as it was prepared, and the cluster goes on (checkers on every tick).
        for (const client of cluster.clients) client.issuing = true;
        const further = (): boolean =>
            cluster.replicas.every(
                (replica) => replica.status === Status.normal && replica.commitMin > op + 4,
            );
        assert.ok(tickUntil(cluster, 40_000, further), `progress (seed ${seed})`);
        assert.equal(headerChecksum(cluster, 0, op), checksum);
        assert.equal(headerChecksum(cluster, 1, op), checksum);
    });
}
