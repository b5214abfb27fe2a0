// Goal: seeds that once failed stay fixed. Method: each named seed runs whole, as the sweep ran it
// (CI ticks), and must pass every checker. Each is listed with the cause it found; where a hand
// scenario reproduces that cause, the scenario is named too. (A seed's run changes with any
// protocol change, so it may later pass without reaching its old fault: the scenarios are the
// lasting guard, the seeds the original shape of each failure.)

import assert from "node:assert/strict";
import { test } from "node:test";
import { reproduce, runCiSeed } from "./vopr_seeds.js";

const stormRegressions: readonly { seed: number; cause: string }[] = [
    {
        seed: 248,
        cause:
            "state sync distrusted the log above a hole at checkpoint + 1; the backup never " +
            "executed again (scenario: test/vsr/liveness_scenario.test.ts)",
    },
    { seed: 645, cause: "as 248, the replica in view_change stopped vouching for its log" },
    { seed: 819, cause: "as 645" },
    { seed: 864, cause: "as 645" },
    {
        seed: 1304,
        cause:
            "a new primary with every do_view_change in waited forever for a copy of a " +
            "canonical op that only an older log_view's replica held, below its suffix",
    },
    {
        seed: 1335,
        cause:
            "safety: a backup acked a prepare whose write was misdirected, before its header " +
            "sector landed; after a crash the slot's older prepare read as a nack of the op " +
            "(unit tests: test/vsr/journal.test.ts, durable only once both writes landed)",
    },
    {
        seed: 356,
        cause:
            "safety (2 replicas): a new primary repaired its committed op into a faulty slot " +
            "and nacked it while the copy's write was in flight (the slot stopped being " +
            "faulty when the copy arrived); one nack truncated the op (scenario: " +
            "test/vsr/repaired_slot_scenario.test.ts). Also, with grid3's sync by blocks, a " +
            "rebase wrote over blocks the durable index named (test/vsr/grid.test.ts)",
    },
    {
        seed: 318,
        cause:
            "liveness: a state sync's block loads never finished. A block not yet fetched was " +
            "asked again every other repair timeout while one peer rotation shared by all " +
            "slots alternated between the two peers, so a slot first asked in the wrong " +
            "phase was asked again only of the peer whose grid did not name it (a replica " +
            "that installed its checkpoint by sync writes its blocks at its own addresses)",
    },
    {
        seed: 637,
        cause:
            "liveness (4 replicas): a replica synced from the primary, whose copy of one " +
            "block of its checkpoint was damaged, some sixty times: every load given up went " +
            "to the next peer, but the next trigger (a prepare beyond its window, from the " +
            "primary) named the primary again; another replica held that checkpoint whole",
    },
];

for (const { seed, cause } of stormRegressions) {
    test(`storm seed ${seed} passes every checker (a former failure)`, () => {
        const result = runCiSeed(seed, "storm", null);
        assert.equal(
            result.result,
            "pass",
            `${result.reason}\ncause once: ${cause}\nreproduce: ${reproduce(seed, "storm")}`,
        );
    });
}

const defaultRegressions: readonly { seed: number; cause: string }[] = [
    {
        seed: 1588,
        cause:
            "liveness: a solo primary replaying its log from disk after a restart prepared and " +
            "acked new ops meanwhile; primaryCommitPipeline waited for execution, and when the " +
            "replay caught up (in a read callback) nothing called it again: never committed",
    },
    {
        seed: 931,
        cause:
            "liveness (4 replicas, sync by blocks): backups lagging in execution synced to the " +
            "primary's checkpoint, the only copy, with a block damaged on its disk; only the " +
            "primary's next checkpoint would rewrite it, and that op waited for their " +
            "prepare_oks. A backup whose log leads to its next checkpoint now executes there",
    },
    {
        seed: 771,
        cause:
            "safety (4 replicas, found with parallel sync loads): a checkpoint dropped a " +
            "damaged block from the middle of its index without re-recording its empty " +
            "slots; an older block still held a deleted key's record, and a replica that " +
            "synced from that checkpoint had the key back (test/vsr/grid.test.ts)",
    },
    {
        seed: 3830,
        cause:
            "liveness: a replica behind the WAL window never synced. The sync peer's image " +
            "was confirmable only by the third replica, which had itself synced to that " +
            "checkpoint and held no header at or below it; the other peer's checkpoint had a " +
            "damaged block at addresses only it used. A peer's checkpoint at the same op and " +
            "anchor now confirms (scenario: test/vsr/state_sync_scenario.test.ts)",
    },
];

for (const { seed, cause } of defaultRegressions) {
    test(`default seed ${seed} passes every checker (a former failure)`, () => {
        const result = runCiSeed(seed, "default", null);
        assert.equal(
            result.result,
            "pass",
            `${result.reason}\ncause once: ${cause}\nreproduce: ${reproduce(seed, "default")}`,
        );
    });
}
