// End-to-end tests of the KV capacity chosen at format time and of incremental checkpoints on
// real replicas (child processes on loopback ports, O_DIRECT data files).
// - `vsr format --kv-entries=1024` prints the zones (grid included) and the memory the replica
//   will hold; `vsr start` reads the capacity from the file: a load of more keys than fit gets
//   table_full answers and loses nothing, /metrics reports the capacity and the grid blocks
//   checkpoints wrote, and a kill -9 and restart recovers the same capacity and state.
// - A 3-replica cluster under `vsr load --verify`: one backup is killed -9 twice (whatever it
//   was writing, checkpoints included), and while stopped the second time random sectors of its
//   grid zone are overwritten with random bytes. It restarts, repairs from its peers (the
//   damaged blocks its index names by (address, checksum); state sync when its peers no longer
//   hold one), converges, and no acknowledged write is lost (the sectors may hit free blocks or named ones: the diagnostics say what it repaired).
//   The sectors come from a seeded PRNG (VSR_GRID_SEED=<seed> replays the choice).
// - Block repair: once every replica holds the same checkpoint, a backup is killed -9 and
//   random blocks its durable block index names are overwritten with random bytes. It
//   restarts, fetches exactly those blocks from its peers by (address, checksum) (metrics:
//   vsr_grid_blocks_repaired_total; no state sync, no unreadable checkpoint), converges, and
//   `vsr load --verify` loses nothing, also with a healthy backup stopped (so the repaired
//   replica is in every quorum). VSR_GRID_SEED replays the blocks chosen.
// See harness.ts for process ownership and cleanup.

import assert from "node:assert/strict";
import { randomInt } from "node:crypto";
import fs from "node:fs";
import { type TestContext, test } from "node:test";
import { production, sectorSize } from "../../src/constants.js";
import { readIdentity } from "../../src/io/node.js";
import { KvStateMachine } from "../../src/state_machine/kv.js";
import { PRNG } from "../../src/stdx/prng.js";
import { layout } from "../../src/vsr/layout.js";
import { namedGridBlocksOfFile } from "../grid_disk.js";
import {
    httpGet,
    type LoadJson,
    LocalCluster,
    metric,
    Scope,
    sleep,
    type Status,
    waitFor,
} from "./harness.js";

const readyTimeoutMs = 30_000;
const convergeTimeoutMs = 90_000;
/** Both tests' table: small, so a few checkpoints' load touches most of it. */
const kvEntriesMax = 16384;

/** The test's PRNG: from VSR_GRID_SEED, or a fresh seed printed so that a failure replays. */
function gridPrng(t: TestContext): PRNG {
    const seed = Number(process.env["VSR_GRID_SEED"] ?? randomInt(1, 2 ** 47));
    t.diagnostic(`VSR_GRID_SEED=${seed}`);
    return new PRNG(seed);
}

async function loadReport(
    scope: Scope,
    cluster: LocalCluster,
    args: string[],
    timeoutMs: number,
    stderrCheck: ((stderr: string) => void) | null = null,
): Promise<LoadJson> {
    const proc = scope.spawn(["load", ...cluster.clientArgs(), "--verify", "--json", ...args]);
    const exit = await proc.waitExit(timeoutMs);
    assert.equal(exit.code, 0, proc.describe());
    stderrCheck?.(proc.stderr);
    return JSON.parse(proc.stdout.trim().split("\n").pop()!) as LoadJson;
}

async function metrics(cluster: LocalCluster, replica: number): Promise<string> {
    const answer = await httpGet(cluster.ports[replica]!, "/metrics");
    assert.ok(answer !== null && answer.status === 200, "GET /metrics answers");
    return answer.body;
}

test("vsr format --kv-entries sizes the table and grid; vsr start reads it from the file", {
    timeout: 600_000,
}, async (t) => {
    const scope = Scope.create(t);
    const formatProc = await scope.run([
        "format",
        "--cluster=9",
        "--replica=0",
        "--replica-count=1",
        "--kv-entries=1024",
        scope.file("printed.vsr"),
    ]);
    assert.equal(formatProc.exit?.code, 0, formatProc.describe());
    const zones = layout({ ...production, kvEntriesMax: 1024 }, KvStateMachine.sizeBytes(1024));
    assert.match(formatProc.stdout, /kv_entries=1024/);
    assert.match(formatProc.stdout, /grid +[0-9.]+ MiB \([0-9]+ blocks of 4 KiB\)/);
    assert.match(formatProc.stdout, /memory: KV table 0\.10 MiB, arena [0-9.]+ MiB/);
    assert.equal(fs.statSync(scope.file("printed.vsr")).size, zones.totalSize);
    assert.equal(readIdentity(scope.file("printed.vsr")).kvEntriesMax, 1024);

    const cluster = await LocalCluster.format(scope, 1, "small", ["--kv-entries=1024"]);
    cluster.startAll();
    await cluster.waitReady(readyTimeoutMs);
    // 8 clients × 200 keys = 1600 keys > 896 (7/8 of 1024): the rest answer table_full.
    const report = await loadReport(
        scope,
        cluster,
        ["--clients=8", "--keys-per-client=200", "--requests=4000"],
        120_000,
        (stderr) => {
            // stdout keeps the JSON contract; stderr says what failed and why.
            assert.match(stderr, /^vsr load: errors TABLE_FULL=[0-9]+$/m);
            assert.match(stderr, /KV table is full .*--kv-entries.*--verify writes a new key/);
        },
    );
    t.diagnostic(`load: ${JSON.stringify(report)}`);
    assert.ok(report.errors > 0, "puts beyond capacity answer table_full");
    assert.equal(report.lost, 0);
    assert.equal(report.verified, report.acked);
    // Then one client, one op per call (a prepare per request), until the first checkpoint (the
    // long WAL takes one per production.checkpointOps ops). Its puts of new keys answer
    // table_full, which commits an op all the same: the load may exit 1 (no put acknowledged).
    for (let run = 0; ; run++) {
        const status = (await cluster.statuses())[0];
        if (status !== null && status !== undefined && status.checkpoint > 0) break;
        assert.ok(run < 8, "a checkpoint within 8 loads");
        const args = ["--clients=1", `--requests=${production.checkpointOps}`];
        const proc = scope.spawn(["load", ...cluster.clientArgs(), ...args]);
        const exit = await proc.waitExit(120_000);
        assert.ok(exit.code === 0 || exit.code === 1, proc.describe());
    }
    const before = await metrics(cluster, 0);
    assert.equal(metric(before, "vsr_kv_entries_max"), 1024);
    assert.ok(metric(before, "vsr_checkpoint_blocks_written_total") > 0, "grid blocks written");
    assert.ok(metric(before, "vsr_grid_blocks_used") > 0);
    const checkpointOp = metric(before, "vsr_checkpoint_op");
    assert.ok(checkpointOp > 0, "a checkpoint was taken");

    cluster.node(0).kill("SIGKILL");
    await cluster.node(0).waitExit(10_000);
    cluster.start(0);
    const [status] = await cluster.waitReady(readyTimeoutMs);
    assert.ok(status!.commit >= checkpointOp);
    const after = await metrics(cluster, 0);
    assert.equal(metric(after, "vsr_kv_entries_max"), 1024);
    assert.equal(metric(after, "vsr_checkpoints_unreadable_total"), 0);
    assert.equal(metric(after, "vsr_grid_blocks_used"), metric(before, "vsr_grid_blocks_used"));
});

/** Overwrites `count` random sectors of the grid zone with random bytes. */
function damageGrid(path: string, kvEntriesMax: number, count: number, prng: PRNG): void {
    const zones = layout({ ...production, kvEntriesMax }, KvStateMachine.sizeBytes(kvEntriesMax));
    const sectors = (zones.gridBlockCount * zones.gridBlockSize) / sectorSize;
    const fd = fs.openSync(path, "r+");
    const sector = new Uint8Array(sectorSize);
    try {
        for (let index = 0; index < count; index++) {
            for (let byte = 0; byte < sectorSize; byte++) sector[byte] = prng.int(256);
            fs.writeSync(fd, sector, 0, sectorSize, zones.gridOffset + prng.int(sectors) * 4096);
        }
        fs.fsyncSync(fd);
    } finally {
        fs.closeSync(fd);
    }
}

test("a backup killed -9 under load, its grid blocks then corrupted, repairs and loses nothing", {
    timeout: 400_000,
}, async (t) => {
    const prng = gridPrng(t);
    const scope = Scope.create(t);
    const cluster = await LocalCluster.format(scope, 3, "replica", [
        `--kv-entries=${kvEntriesMax}`,
    ]);
    cluster.startAll();
    await cluster.waitReady(readyTimeoutMs);
    // Long enough for the victim's first checkpoint (one per production.checkpointOps ops).
    const seconds = 60;
    const load = scope.spawn([
        "load",
        ...cluster.clientArgs(),
        "--clients=8",
        "--keys-per-client=300",
        `--duration-s=${seconds}`,
        "--verify",
        "--json",
    ]);
    await sleep(3000);
    const primary = await waitFor("a primary", 15_000, () => cluster.primary());
    const victim = (primary.replica + 1) % 3;
    for (let round = 0; round < 2; round++) {
        await sleep(2000 + prng.int(3000));
        if (round === 1) {
            // Its grid must hold a checkpoint's blocks before they are damaged.
            await waitFor("the victim's first checkpoint", seconds * 1000, async () => {
                const status = (await cluster.statuses())[victim];
                return status !== null && status !== undefined && status.checkpoint > 0
                    ? status
                    : null;
            });
        }
        cluster.node(victim).kill("SIGKILL");
        await cluster.node(victim).waitExit(10_000);
        if (round === 1) damageGrid(cluster.files[victim]!, kvEntriesMax, 64, prng);
        cluster.start(victim);
    }
    const exit = await load.waitExit((seconds + 120) * 1000);
    assert.equal(exit.code, 0, load.describe());
    const report = JSON.parse(load.stdout.trim().split("\n").pop()!) as LoadJson;
    t.diagnostic(`load: ${JSON.stringify(report)}`);
    assert.ok(report.ops > 0);
    assert.equal(report.lost, 0, "every acknowledged write reads back");
    assert.equal(report.verified, report.acked);
    const converged = await waitFor("three replicas on one commit", convergeTimeoutMs, async () => {
        cluster.checkAlive([0, 1, 2]);
        const statuses = await cluster.statuses();
        if (statuses.some((status) => status === null || status.status !== "normal")) return null;
        const all = statuses as Status[];
        return all.every((status) => status.commit === all[0]!.commit) ? all : null;
    });
    t.diagnostic(`converged at commit ${converged[0]!.commit}`);
    const body = await metrics(cluster, victim);
    t.diagnostic(
        `victim: state syncs ${metric(body, "vsr_state_syncs_total")}, ` +
            `unreadable checkpoints ${metric(body, "vsr_checkpoints_unreadable_total")}, ` +
            `grid blocks repaired ${metric(body, "vsr_grid_blocks_repaired_total")}`,
    );
});

/** Overwrites the first sector (the block header) of each block at `addresses` with noise. */
function damageBlocks(path: string, kvEntriesMax: number, addresses: number[], prng: PRNG): void {
    const zones = layout({ ...production, kvEntriesMax }, KvStateMachine.sizeBytes(kvEntriesMax));
    const fd = fs.openSync(path, "r+");
    const sector = new Uint8Array(sectorSize);
    try {
        for (const address of addresses) {
            for (let byte = 0; byte < sectorSize; byte++) sector[byte] = prng.int(256);
            fs.writeSync(
                fd,
                sector,
                0,
                sectorSize,
                zones.gridOffset + address * zones.gridBlockSize,
            );
        }
        fs.fsyncSync(fd);
    } finally {
        fs.closeSync(fd);
    }
}

/** Every replica up, normal, on one commit (and view). */
async function converged(cluster: LocalCluster, replicas: number[]): Promise<Status[]> {
    return waitFor("replicas on one commit", convergeTimeoutMs, async () => {
        cluster.checkAlive(replicas);
        const statuses = await cluster.statuses();
        const up = replicas.map((replica) => statuses[replica] ?? null);
        if (up.some((status) => status === null || status.status !== "normal")) return null;
        const all = up as Status[];
        return all.every((status) => status.commit === all[0]!.commit) ? all : null;
    });
}

test("a stopped backup whose grid blocks are corrupted repairs them from peers by (address, checksum)", {
    timeout: 600_000,
}, async (t) => {
    const prng = gridPrng(t);
    const scope = Scope.create(t);
    const zones = layout({ ...production, kvEntriesMax }, KvStateMachine.sizeBytes(kvEntriesMax));
    const cluster = await LocalCluster.format(scope, 3, "repair", [`--kv-entries=${kvEntriesMax}`]);
    cluster.startAll();
    await cluster.waitReady(readyTimeoutMs);
    // Loads until all three hold the same checkpoint (one per production.checkpointOps ops).
    for (let run = 0; ; run++) {
        const statuses = await converged(cluster, [0, 1, 2]);
        const checkpoint = statuses[0]!.checkpoint;
        if (checkpoint > 0 && statuses.every((status) => status.checkpoint === checkpoint)) break;
        assert.ok(run < 8, "a checkpoint on every replica within 8 loads");
        // One client, one op per call: a prepare per request (bounded keys: no --verify).
        const args = [
            "--clients=1",
            "--keys-per-client=300",
            `--requests=${production.checkpointOps}`,
        ];
        const proc = scope.spawn(["load", ...cluster.clientArgs(), ...args]);
        const exit = await proc.waitExit(180_000);
        assert.equal(exit.code, 0, proc.describe());
    }
    const primary = await waitFor("a primary", 15_000, () => cluster.primary());
    const victim = (primary.replica + 1) % 3;
    const healthy = (primary.replica + 2) % 3;
    cluster.node(victim).kill("SIGKILL");
    await cluster.node(victim).waitExit(10_000);
    const named = namedGridBlocksOfFile(cluster.files[victim]!, zones);
    assert.ok(named.length > 0, "the durable index names blocks");
    const chosen = new Set<number>();
    const wanted = Math.min(4, named.length);
    while (chosen.size < wanted) chosen.add(named[prng.int(named.length)]!);
    const addresses = [...chosen];
    t.diagnostic(`damaged blocks ${addresses.join(",")} of ${named.length} named`);
    damageBlocks(cluster.files[victim]!, kvEntriesMax, addresses, prng);
    cluster.start(victim);
    // /status may report a commit it has not executed yet: wait for the repair itself.
    const body = await waitFor("the victim repaired or synced", convergeTimeoutMs, async () => {
        cluster.checkAlive([victim]);
        const text = await httpGet(cluster.ports[victim]!, "/metrics");
        if (text === null || text.status !== 200) return null;
        const repaired = metric(text.body, "vsr_grid_blocks_repaired_total");
        const synced = metric(text.body, "vsr_state_syncs_total");
        return repaired === addresses.length || synced > 0 ? text.body : null;
    });
    await converged(cluster, [0, 1, 2]);
    assert.equal(metric(body, "vsr_grid_blocks_repaired_total"), addresses.length);
    assert.equal(metric(body, "vsr_state_syncs_total"), 0, "repaired, not state-synced");
    assert.equal(metric(body, "vsr_checkpoints_unreadable_total"), 0);
    let served = 0;
    for (const peer of [primary.replica, healthy]) {
        served += metric(await metrics(cluster, peer), "vsr_grid_blocks_served_total");
    }
    assert.ok(served >= addresses.length, `peers served the blocks (${served})`);
    const args = ["--clients=8", "--duration-s=5"];
    const report = await loadReport(scope, cluster, args, 120_000);
    assert.ok(report.ops > 0);
    assert.equal(report.lost, 0, "every acknowledged write reads back");
    // With a healthy backup stopped, every quorum includes the repaired replica.
    cluster.node(healthy).kill("SIGKILL");
    await cluster.node(healthy).waitExit(10_000);
    const alone = await loadReport(scope, cluster, args, 120_000);
    t.diagnostic(`load without replica ${healthy}: ${JSON.stringify(alone)}`);
    assert.ok(alone.ops > 0);
    assert.equal(alone.lost, 0);
    assert.equal(alone.verified, alone.acked);
});
