// Goal: the checkers have teeth. Each test-only fault switch (ReplicaFaults) breaks the replica
// at one decision point, the way a plausible protocol bug would; the CI seed set must catch
// every one by a safety check (a checker violation or a replica assertion, never only a
// liveness timeout), within the stated number of its seeds.
// Method: run the switch over the CI seeds of the stated kind, in order, with the CI's ticks,
// until one fails safety. The bound is the seed that catches it today with some slack: a
// change that needs more seeds to catch a switch weakened the net and must say why.

import assert from "node:assert/strict";
import { test } from "node:test";
import { type ReplicaFaults, noReplicaFaults } from "../../src/vsr/replica.js";
import {
    type SeedKind,
    ciDefaultSeedCount,
    ciStormSeedCount,
    reproduce,
    runCiSeed,
} from "./vopr_seeds.js";

interface Tooth {
    readonly fault: keyof ReplicaFaults;
    readonly bug: string;
    readonly kind: SeedKind;
    readonly withinSeeds: number;
}

export const teeth: readonly Tooth[] = [
    {
        fault: "commitWithoutQuorum",
        bug: "a primary that commits on its own prepare_ok alone",
        kind: "default",
        withinSeeds: 5,
    },
    {
        fault: "replicationQuorumOffByOne",
        bug: "a replication quorum off by one",
        kind: "default",
        withinSeeds: 5,
    },
    {
        fault: "acceptCorruptPrepare",
        bug: "a recovery that skips the prepare body checksum",
        kind: "storm",
        withinSeeds: 10,
    },
    {
        fault: "canonicalIgnoresLogView",
        bug: "a view change whose canonical log ignores log_view",
        kind: "default",
        // First caught at seed 180 since do_view_change names its unknown head (fewer view
        // changes hinge on which log is canonical).
        withinSeeds: 200,
    },
    {
        fault: "prepareOkBeforeDurable",
        bug: "a backup that sends prepare_ok before its write is durable",
        kind: "default",
        withinSeeds: 10,
    },
    {
        fault: "duplicateReexecuted",
        bug: "a duplicate request executed again",
        kind: "default",
        withinSeeds: 5,
    },
    {
        fault: "backupCommitsPastPrimary",
        bug: "a backup that commits past its primary's commit number",
        kind: "default",
        withinSeeds: 30,
    },
    {
        fault: "truncateOneNackShort",
        bug: "a view change that truncates with one nack too few",
        kind: "default",
        withinSeeds: 25,
    },
    {
        fault: "stateSyncDropsLog",
        bug: "a state sync that drops the log above its checkpoint",
        kind: "storm",
        // Caught at seed 58 since prepare_ok waits for the header sector too: every storm
        // schedule shifted, and the state syncs that expose it happen on other seeds now.
        withinSeeds: 70,
    },
    {
        fault: "timestampFromLocalClock",
        bug: "a primary that stamps prepares with its raw wall clock",
        kind: "default",
        withinSeeds: 5,
    },
];

test("every fault switch has a test, within the CI seed set", () => {
    const switches = Object.keys(noReplicaFaults).sort();
    assert.deepEqual(teeth.map((tooth) => tooth.fault).sort(), switches);
    assert.ok(switches.length >= 8);
    for (const tooth of teeth) {
        const count = tooth.kind === "storm" ? ciStormSeedCount : ciDefaultSeedCount;
        assert.ok(tooth.withinSeeds <= count, tooth.fault);
    }
});

for (const tooth of teeth) {
    const name =
        `${tooth.bug} (${tooth.fault}) is caught by a safety check ` +
        `within ${tooth.withinSeeds} ${tooth.kind} CI seeds`;
    test(name, (t) => {
        const faults: ReplicaFaults = { ...noReplicaFaults, [tooth.fault]: true };
        const liveness: number[] = [];
        for (let seed = 1; seed <= tooth.withinSeeds; seed++) {
            const result = runCiSeed(seed, tooth.kind, faults);
            if (result.result === "safety") {
                const reason = String(result.reason).split("\n")[0];
                t.diagnostic(`caught at seed ${seed}: ${reason} (${reproduce(seed, tooth.kind)})`);
                return;
            }
            if (result.result === "liveness") liveness.push(seed);
        }
        assert.fail(`not caught; liveness failures only at seeds [${liveness.join(", ")}]`);
    });
}
