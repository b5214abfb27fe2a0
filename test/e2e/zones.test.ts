// End-to-end: a replica whose data file is damaged outside the superblock repairs from its peers.
// Method: a 3-replica cluster on O_DIRECT data files takes load (`vsr load --verify`) for several
// checkpoints; one backup is killed and random sectors of every zone but the superblock (WAL
// headers, WAL prepares, client replies, both checkpoint copies, grid blocks) are overwritten
// with random bytes; it restarts from that file. It must start (not refuse), state-sync the checkpoint it can
// no longer read, repair its WAL from peers, converge with them, and then carry the cluster as
// one of a quorum of two while another replica is down, with no acknowledged write lost.
// The sectors come from a seeded PRNG whose seed is printed (a failure replays with
// VSR_ZONES_SEED=<seed>). A second test pins the one refusal: every superblock copy corrupt.
// See harness.ts for process ownership and cleanup.

import assert from "node:assert/strict";
import { randomInt } from "node:crypto";
import fs from "node:fs";
import { test } from "node:test";
import { production, sectorSize } from "../../src/constants.js";
import { KvStateMachine } from "../../src/state_machine/kv.js";
import { PRNG } from "../../src/stdx/prng.js";
import { type Layout, layout } from "../../src/vsr/layout.js";
import {
    hasStackTrace,
    httpGet,
    type LoadJson,
    LocalCluster,
    metric,
    type Proc,
    Scope,
    sleep,
    type Status,
    waitFor,
} from "./harness.js";

const readyTimeoutMs = 30_000;
const convergeTimeoutMs = 90_000;

/** The layout `vsr format` gives a data file (the CLI formats with the production preset). */
function fileLayout(): Layout {
    return layout(production, KvStateMachine.sizeBytes(production.kvEntriesMax));
}

interface ZoneDamage {
    readonly name: string;
    readonly offset: number;
    readonly size: number;
    readonly sectors: number;
}

/** The zones to damage (all but the superblock) and how many sectors of each. */
function damagePlan(zones: Layout): ZoneDamage[] {
    const checkpoints = zones.totalSize - zones.checkpointOffset;
    return [
        {
            name: "wal_headers",
            offset: zones.walHeadersOffset,
            size: zones.walHeadersSize,
            sectors: 4,
        },
        {
            name: "wal_prepares",
            offset: zones.walPreparesOffset,
            size: zones.walPreparesSize,
            sectors: 48,
        },
        {
            name: "client_replies",
            offset: zones.clientRepliesOffset,
            size: zones.clientRepliesSize,
            sectors: 16,
        },
        // Each copy's block index (its first sector, always written): whichever copy the
        // superblock names, it no longer reads back.
        {
            name: "checkpoint_0",
            offset: zones.checkpointOffset,
            size: sectorSize,
            sectors: 1,
        },
        {
            name: "checkpoint_1",
            offset: zones.checkpointOffset + zones.checkpointCopySize,
            size: sectorSize,
            sectors: 1,
        },
        {
            name: "grid",
            offset: zones.gridOffset,
            size: zones.gridBlockCount * zones.gridBlockSize,
            sectors: 16,
        },
        { name: "checkpoints", offset: zones.checkpointOffset, size: checkpoints, sectors: 16 },
    ];
}

/** Overwrites random sectors of each planned zone with random bytes; returns the count. */
function damage(path: string, plan: readonly ZoneDamage[], prng: PRNG): number {
    const fd = fs.openSync(path, "r+");
    const sector = new Uint8Array(sectorSize);
    let count = 0;
    try {
        for (const zone of plan) {
            assert.equal(zone.offset % sectorSize, 0);
            for (let index = 0; index < zone.sectors; index++) {
                const at = zone.offset + prng.int(zone.size / sectorSize) * sectorSize;
                for (let byte = 0; byte < sectorSize; byte++) sector[byte] = prng.int(256);
                fs.writeSync(fd, sector, 0, sectorSize, at);
                count++;
            }
        }
        fs.fsyncSync(fd);
    } finally {
        fs.closeSync(fd);
    }
    return count;
}

function loadArgs(cluster: LocalCluster, seconds: number): string[] {
    const duration = `--duration-s=${seconds}`;
    return ["load", ...cluster.clientArgs(), "--clients=8", duration, "--verify", "--json"];
}

/** One verified load run of `seconds` against the cluster; the listed replicas must stay up. */
async function runLoad(
    scope: Scope,
    cluster: LocalCluster,
    seconds: number,
    up: readonly number[],
): Promise<LoadJson> {
    const proc = scope.spawn(loadArgs(cluster, seconds));
    const report = await loadResult(proc, (seconds + 120) * 1000);
    cluster.checkAlive(up);
    return report;
}

async function loadResult(proc: Proc, timeoutMs: number): Promise<LoadJson> {
    const exit = await proc.waitExit(timeoutMs);
    assert.equal(exit.code, 0, proc.describe());
    return JSON.parse(proc.stdout.trim().split("\n").pop()!) as LoadJson;
}

/** Waits until the replicas all answer normal, in one view, at one commit number. */
async function converge(cluster: LocalCluster, replicas: readonly number[]): Promise<Status[]> {
    return waitFor(
        `replicas ${replicas.join(",")} to converge on one commit number`,
        convergeTimeoutMs,
        async () => {
            cluster.checkAlive(replicas);
            const statuses = await Promise.all(replicas.map((replica) => cluster.status(replica)));
            if (statuses.some((status) => status === null || status.status !== "normal")) {
                return null;
            }
            const all = statuses as Status[];
            const first = all[0]!;
            const same = all.every((s) => s.commit === first.commit && s.view === first.view);
            return same ? all : null;
        },
        250,
    );
}

test("a backup whose data file lost random sectors outside the superblock repairs from peers", {
    timeout: 600_000,
}, async (t) => {
    const seed = Number(process.env["VSR_ZONES_SEED"] ?? randomInt(1, 2 ** 31));
    t.diagnostic(`seed ${seed} (replay: VSR_ZONES_SEED=${seed})`);
    const prng = new PRNG(seed);
    const scope = Scope.create(t);
    const cluster = await LocalCluster.format(scope, 3);
    const zones = fileLayout();
    assert.equal(fs.statSync(cluster.files[0]!).size, zones.totalSize, "data file layout");
    cluster.startAll();
    const ready = await cluster.waitReady(readyTimeoutMs);
    const primary = ready.find((status) => status.primary)!.replica;
    const victim = (primary + 1) % 3;
    const other = (primary + 2) % 3;

    // Load (each run verified) until the victim has written a checkpoint (the one damaged
    // below). The WAL is long (a checkpoint per 4096 ops, tens of seconds of this load on a
    // busy machine), so one checkpoint, not several as with the old 448-op window.
    const checkpointOps = production.checkpointOps;
    for (let run = 1; ; run++) {
        const report = await runLoad(scope, cluster, 10, [0, 1, 2]);
        assert.equal(report.lost, 0, `load ${run}: every acknowledged write reads back`);
        const status = await cluster.status(victim);
        t.diagnostic(`load ${run}: ${JSON.stringify(report)}, victim at ${JSON.stringify(status)}`);
        if (status !== null && status.checkpoint >= checkpointOps) break;
        assert.ok(run < 30, "a checkpoint within 30 loads");
    }
    cluster.node(victim).kill("SIGKILL");
    await cluster.node(victim).waitExit(10_000);
    const damaged = damage(cluster.files[victim]!, damagePlan(zones), prng);
    t.diagnostic(`replica ${victim}: ${damaged} sectors overwritten outside the superblock`);

    // It restarts on the damaged file while the other two take more load.
    const during = scope.spawn(loadArgs(cluster, 8));
    await sleep(2000);
    cluster.start(victim);
    const duringReport = await loadResult(during, 120_000);
    t.diagnostic(`load while it restarts: ${JSON.stringify(duringReport)}`);
    assert.ok(duringReport.ops > 0);
    assert.equal(duringReport.lost, 0, "every acknowledged write reads back");

    const converged = await converge(cluster, [0, 1, 2]).catch(async (error: Error) => {
        throw new Error(`${error.message}\n${cluster.node(victim).describe()}`);
    });
    t.diagnostic(`converged at commit ${converged[0]!.commit}, view ${converged[0]!.view}`);
    const metrics = await httpGet(cluster.ports[victim]!, "/metrics");
    assert.ok(metrics !== null && metrics.status === 200);
    const unreadable = metric(metrics.body, "vsr_checkpoints_unreadable_total");
    const syncs = metric(metrics.body, "vsr_state_syncs_total");
    const walRepaired = metric(metrics.body, "vsr_journal_faulty_repaired_total");
    t.diagnostic(
        `replica ${victim}: checkpoints unreadable ${unreadable}, state syncs ${syncs}, ` +
            `faulty WAL slots repaired ${walRepaired}`,
    );
    assert.equal(unreadable, 1, "the damaged checkpoint was detected at start-up");
    assert.ok(syncs >= 1, "and replaced by a peer's through state sync");

    // Now another replica goes down: the repaired one is needed for every quorum.
    cluster.node(other).kill("SIGKILL");
    await cluster.node(other).waitExit(10_000);
    const secondReport = await runLoad(scope, cluster, 5, [primary, victim]);
    t.diagnostic(`load 2 (replica ${other} down): ${JSON.stringify(secondReport)}`);
    assert.ok(secondReport.ops > 0, "the two remaining replicas commit");
    assert.equal(secondReport.lost, 0, "every acknowledged write reads back");
    const survivors = [primary, victim];
    const after = await converge(cluster, survivors);
    assert.ok(after[0]!.commit > converged[0]!.commit, "commits went on with the repaired replica");
});

test("a replica whose every superblock copy is corrupt refuses to start with one line", {
    timeout: 60_000,
}, async (t) => {
    const scope = Scope.create(t);
    const cluster = await LocalCluster.format(scope, 3);
    const zones = fileLayout();
    const prng = new PRNG(randomInt(1, 2 ** 31));
    damage(
        cluster.files[1]!,
        [{ name: "superblock", offset: 0, size: zones.walHeadersOffset, sectors: 64 }],
        prng,
    );
    // Random sectors may miss a copy: overwrite every sector of the zone to be sure.
    const fd = fs.openSync(cluster.files[1]!, "r+");
    const garbage = new Uint8Array(zones.walHeadersOffset).fill(0xa5);
    fs.writeSync(fd, garbage, 0, garbage.length, 0);
    fs.closeSync(fd);
    const proc = cluster.start(1);
    const exit = await proc.waitExit(30_000);
    assert.notEqual(exit.code, 0);
    assert.ok(!hasStackTrace(proc.stderr), proc.describe());
    const lines = proc.stderr.trim().split("\n");
    assert.equal(lines.length, 1, proc.describe());
    assert.match(lines[0]!, /every superblock copy is corrupt: reformat/);
});
