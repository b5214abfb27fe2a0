// The VOPR: one seed → one PRNG → one whole run. The seed draws the run's shape (swarm testing):
// replica and client counts (unless given), the network's fault mix, which storage fault kinds
// are on and at what rate, crashes, storage latency, clock offsets and the workload. (A storm
// run instead turns frequent crashes and every storage fault kind on.) Two phases:
//   1. Safety: faults on; clients issue requests for `ticks` ticks; the checkers watch.
//   2. Liveness: faults healed (network.heal()), clients stop issuing; within a bound every
//      outstanding request must complete and every replica within the WAL window must converge
//      on the highest commit. Replicas that fell behind their peers' WAL window need state sync
//      (durable checkpoints) and are reported, not waited for.
// After both, replicas up at the same commit must hold the same state (KV image, client table),
// whatever failed before. The result carries a fingerprint: a checksum of the committed history
// and of every replica's final state. The same seed and flags give the same fingerprint on any
// machine.

import { assert } from "../stdx/assert.js";
import { PRNG } from "../stdx/prng.js";
import { type Config, test as testConfig } from "../constants.js";
import { checksum } from "../vsr/checksum.js";
import { type Replica, Status, type ReplicaFaults } from "../vsr/replica.js";
import { stateDigestSize } from "./checkers.js";
import {
    type ClockOptions,
    Cluster,
    type ClusterOptions,
    type CrashOptions,
    noCrashes,
} from "./cluster.js";
import { type StorageFaultOptions, zoneCount, zoneNames } from "./storage.js";
import { swarmNetworkOptions } from "./network.js";
import { type Trace, TraceRecorder } from "./trace.js";

export interface SimOptions {
    readonly seed: number;
    readonly ticks: number;
    readonly replicaCount: number | null;
    readonly clientCount: number | null;
    readonly faults: ReplicaFaults | null;
    readonly config: Config;
    readonly checkInvariants: boolean;
    readonly livenessTicksMax: number;
    /** Storm: frequent crashes and storage faults on every seed (CI storm seeds, --storm). */
    readonly storm: boolean;
}

export type SimResultKind = "pass" | "safety" | "liveness";

export interface SimResult {
    readonly seed: number;
    readonly result: SimResultKind;
    readonly reason: string | null;
    readonly ticks: number;
    readonly replicas: number;
    readonly clients: number;
    readonly opsCommitted: number;
    readonly requestsCompleted: number;
    readonly repliesChecked: number;
    readonly viewChanges: number;
    readonly replicasAwaitingSync: number;
    readonly stateSyncs: number;
    /** Grid blocks that failed to read at recovery and were fetched from a peer. */
    readonly gridBlocksRepaired: number;
    /** Blocks of synced checkpoints fetched from a peer, and read from the replica's own disk. */
    readonly syncBlocksFetched: number;
    readonly syncBlocksReused: number;
    readonly parRepairs: number;
    /** Prepares read back from disk (not cached), and reads that made a slot faulty. */
    readonly walReads: number;
    readonly walReadErrors: number;
    /** Prepare writes whose read-back did not hold them (misdirected, corrupt): written again. */
    readonly walWritesUnverified: number;
    readonly faults: Record<string, number>;
    /** Storage read and write faults per zone of the data file (`faults.zones` in JSON). */
    readonly faultZones: Record<string, number>;
    readonly fingerprint: string;
}

export function defaultSimOptions(seed: number): SimOptions {
    return {
        seed,
        ticks: 20_000,
        replicaCount: null,
        clientCount: null,
        faults: null,
        config: testConfig,
        checkInvariants: true,
        livenessTicksMax: 30_000,
        storm: false,
    };
}

/** Draws the run's shape from the seed; explicit counts override the draw. */
export function swarmClusterOptions(options: SimOptions): ClusterOptions {
    const prng = new PRNG(options.seed);
    const config = options.config;
    const replicaCount = options.replicaCount ?? prng.range(1, 6);
    const clientCount = options.clientCount ?? prng.range(1, 2 * config.clientsMax - 1);
    assert(replicaCount >= 1 && replicaCount <= 6);
    assert(clientCount >= 1);
    const putProbability = 0.2 + prng.float() * 0.5;
    return {
        seed: prng.u53(),
        config,
        cluster: prng.u32(),
        replicaCount,
        clientCount,
        network: swarmNetworkOptions(prng, replicaCount, clientCount),
        storage: {
            readLatencyMinTicks: prng.range(0, 2),
            readLatencyMeanTicks: prng.range(0, 5),
            writeLatencyMinTicks: prng.range(0, 3),
            writeLatencyMeanTicks: prng.range(0, 10),
        },
        workload: {
            keyCount: prng.chance(0.3) ? prng.range(200, 400) : prng.range(1, 64),
            eventsPerRequestMax: prng.range(
                1,
                Math.floor((config.messageSizeMax - 256 - 64) / 128),
            ),
            putProbability,
            deleteProbability: prng.float() * (1 - putProbability) * 0.5,
            invalidEventProbability: prng.chance(0.2) ? 0.02 : 0,
            thinkTicksMean: prng.range(0, 20),
        },
        faults: options.faults,
        storageFaults: options.storm
            ? stormStorageFaults(replicaCount)
            : swarmStorageFaults(prng, replicaCount),
        crashes: options.storm ? stormCrashes : swarmCrashes(prng),
        clock: swarmClockOptions(prng),
        checkInvariants: options.checkInvariants,
        opsMax: options.ticks + options.livenessTicksMax + 16,
    };
}

/**
 * Clock faults per seed: offsets (up to 2 s) and drift (up to 500 ppm) on half the seeds each;
 * jumping clocks (steps up to 20 s either way, about one a minute) on a third; one replica up to
 * 2 h off on a third. Other seeds keep perfect clocks.
 */
function swarmClockOptions(prng: PRNG): ClockOptions {
    const jumping = prng.chance(0.33);
    return {
        offsetUsMax: prng.chance(0.5) ? prng.range(1, 2_000_000) : 0,
        driftPpmMax: prng.chance(0.5) ? prng.range(1, 500) : 0,
        jumpingProbability: jumping ? 0.2 + 0.8 * prng.float() : 0,
        jumpProbability: jumping ? 1 / prng.range(1_000, 20_000) : 0,
        jumpUsMax: jumping ? prng.range(1_000, 20_000_000) : 0,
        farOffUs: prng.chance(0.33) ? prng.range(60, 7_200) * 1_000_000 : 0,
    };
}

/**
 * Storage faults per seed, swarm style: each kind is on or off by its own draw (so some seeds
 * run one kind alone, some all of them, some none), at a rate drawn per seed. Always off with
 * one replica, which has no peer to repair from.
 */
function swarmStorageFaults(prng: PRNG, replicaCount: number): StorageFaultOptions {
    const on = replicaCount >= 2;
    return {
        readFaultProbability: swarmRate(prng, on, 0.7, 0.05),
        writeFaultProbability: swarmRate(prng, on, 0.6, 0.05),
        misdirectProbability: swarmRate(prng, on, 0.5, 0.05),
        crashTornProbability: prng.chance(0.8) ? prng.float() : 0,
        writeErrorProbability: swarmRate(prng, on, 0.4, 0.02),
    };
}

/** With probability `share` (and only if allowed), a rate in (0, rateMax]; else 0. */
function swarmRate(prng: PRNG, allowed: boolean, share: number, rateMax: number): number {
    if (!prng.chance(share) || !allowed) return 0;
    return rateMax * (0.05 + 0.95 * prng.float());
}

function stormStorageFaults(replicaCount: number): StorageFaultOptions {
    const on = replicaCount >= 2 ? 0.1 : 0;
    return {
        readFaultProbability: on,
        writeFaultProbability: on,
        misdirectProbability: on,
        crashTornProbability: 1,
        writeErrorProbability: on / 5,
    };
}

const stormCrashes: CrashOptions = { crashProbability: 0.001, downTicksMin: 10, downTicksMax: 500 };

/** Crashes per seed: none for a quarter of seeds, else a few per run. */
function swarmCrashes(prng: PRNG): CrashOptions {
    if (prng.chance(0.25)) return noCrashes;
    return {
        crashProbability: prng.float() * 0.0002,
        downTicksMin: prng.range(1, 100),
        downTicksMax: prng.range(100, 3000),
    };
}

export function runSimulation(options: SimOptions): SimResult {
    const cluster = new Cluster(swarmClusterOptions(options));
    return run(cluster, options, null);
}

/**
 * The same run as runSimulation (same fingerprint), with its timeline recorded (src/sim/trace.ts)
 * for `vsr sim --trace` and `--html`.
 */
export function runSimulationTraced(options: SimOptions): { result: SimResult; trace: Trace } {
    const cluster = new Cluster(swarmClusterOptions(options));
    const recorder = new TraceRecorder(cluster);
    const result = run(cluster, options, recorder);
    return { result, trace: recorder.finish(cluster, result, options.storm) };
}

function run(cluster: Cluster, options: SimOptions, recorder: TraceRecorder | null): SimResult {
    assert(options.ticks >= 0);
    let kind: SimResultKind = "pass";
    let reason: string | null = null;
    recorder?.observe(cluster);
    try {
        for (let tick = 0; tick < options.ticks && cluster.checkers.violation === null; tick++) {
            cluster.tick();
            recorder?.observe(cluster);
        }
        if (cluster.checkers.violation === null)
            reason = runLiveness(cluster, options.livenessTicksMax, recorder);
        if (reason !== null) kind = "liveness";
    } catch (error) {
        const stack = error instanceof Error ? (error.stack ?? error.message) : String(error);
        // The assertion helpers' own frames say nothing: start at the caller.
        const frames = stack.split("\n").filter((line) => !line.includes("stdx/assert."));
        reason = "replica crashed: " + frames.slice(0, 6).join("\n");
        kind = "safety";
    }
    // Every check runs, whatever failed before it: the final state comparison too.
    stateDivergence(cluster);
    const checkers = cluster.checkers;
    if (checkers.violation !== null) {
        const more = checkers.violations - 1;
        const first = kind === "safety" ? `${reason}; then ` : "";
        reason = first + checkers.violation + (more > 0 ? ` (and ${more} more)` : "");
        kind = "safety";
    }
    return summarize(cluster, options.seed, kind, reason);
}

/** Returns null when the cluster converged after healing, else why not. */
function runLiveness(
    cluster: Cluster,
    ticksMax: number,
    recorder: TraceRecorder | null,
): string | null {
    for (const client of cluster.clients) client.issuing = false;
    cluster.heal();
    recorder?.onHeal(cluster);
    for (let tick = 0; tick < ticksMax; tick++) {
        if (converged(cluster) === null) return null;
        cluster.tick();
        recorder?.observe(cluster);
        if (cluster.checkers.violation !== null) return null;
    }
    return converged(cluster);
}

function converged(cluster: Cluster): string | null {
    for (const client of cluster.clients) {
        if (client.busy) return `client ${client.index} still has a request outstanding`;
    }
    const commitTarget = commitHighest(cluster);
    for (const replica of cluster.replicas) {
        if (cluster.up[replica.replica] === 0) return `replica ${replica.replica} is down`;
        if (replica.status !== Status.normal) return `replica ${replica.replica} is not normal`;
        if (replica.stateMissing) return `replica ${replica.replica} awaits its state (sync)`;
        if (replica.commitMin !== commitTarget) {
            return `replica ${replica.replica} commit ${replica.commitMin} != ${commitTarget}`;
        }
    }
    return null;
}

function commitHighest(cluster: Cluster): number {
    let highest = 0;
    for (const replica of cluster.replicas) highest = Math.max(highest, replica.commitMin);
    return highest;
}

/**
 * A replica this far behind cannot catch up through its WAL: either the cluster's log reaches
 * beyond its WAL window (its durable checkpoint + slot count), or its peers' WALs no longer hold
 * the ops it has yet to execute. Only state sync brings it back.
 */
function awaitingSync(cluster: Cluster, replica: Replica): boolean {
    const config = cluster.options.config;
    let opHighest = 0;
    for (const peer of cluster.replicas) opHighest = Math.max(opHighest, peer.op);
    if (opHighest >= replica.checkpointOp + config.journalSlotCount) return true;
    const lag = commitHighest(cluster) - replica.commitMin;
    return lag >= config.journalSlotCount - config.pipelinePrepareQueueMax - 1;
}

/**
 * Replicas up at the end that executed the same ops must hold the same state: KV image and
 * client table (a violation goes to the checkers).
 */
function stateDivergence(cluster: Cluster): void {
    const replicaCount = cluster.replicas.length;
    const digests = new Uint8Array(replicaCount * stateDigestSize);
    for (let index = 0; index < replicaCount; index++) {
        cluster.checkers.stateDigest(cluster.states[index]!, digests, index * stateDigestSize);
    }
    for (let a = 0; a < replicaCount; a++) {
        for (let b = a + 1; b < replicaCount; b++) {
            if (cluster.up[a] === 0 || cluster.up[b] === 0) continue;
            if (cluster.replicas[a]!.stateMissing || cluster.replicas[b]!.stateMissing) continue;
            const op = cluster.replicas[a]!.commitMin;
            if (op !== cluster.replicas[b]!.commitMin) continue;
            for (let byte = 0; byte < stateDigestSize; byte++) {
                if (digests[a * stateDigestSize + byte] === digests[b * stateDigestSize + byte])
                    continue;
                const what = byte < 16 ? "KV image" : "client table";
                cluster.checkers.fail(`replicas ${a} and ${b} differ in ${what} at op ${op}`);
                break;
            }
            repliesDivergence(cluster, a, b, op);
        }
    }
}

/** Replies both replicas hold for the same client-table entry must have the same body. */
function repliesDivergence(cluster: Cluster, a: number, b: number, op: number): void {
    const checkers = cluster.checkers;
    const digests = new Uint8Array(32);
    const entriesMax = cluster.options.config.clientsMax;
    for (let entry = 0; entry < entriesMax; entry++) {
        if (!checkers.replyDigest(cluster.states[a]!, entry, digests, 0)) continue;
        if (!checkers.replyDigest(cluster.states[b]!, entry, digests, 16)) continue;
        for (let byte = 0; byte < 16; byte++) {
            if (digests[byte] === digests[16 + byte]) continue;
            checkers.fail(
                `replicas ${a} and ${b} differ in the reply of entry ${entry} at op ${op}`,
            );
            return;
        }
    }
}

function summarize(
    cluster: Cluster,
    seed: number,
    kind: SimResultKind,
    reason: string | null,
): SimResult {
    let viewChanges = 0;
    let awaiting = 0;
    for (const replica of cluster.replicas) {
        viewChanges += replica.stats.viewChanges;
        if (awaitingSync(cluster, replica)) awaiting++;
    }
    const stats = cluster.network.stats;
    return {
        seed,
        result: kind,
        reason,
        ticks: cluster.ticks,
        replicas: cluster.replicas.length,
        clients: cluster.clients.length,
        opsCommitted: cluster.checkers.opCommitted,
        requestsCompleted: cluster.requestsCompleted,
        repliesChecked: cluster.checkers.repliesChecked,
        viewChanges,
        replicasAwaitingSync: awaiting,
        stateSyncs: cluster.checkers.stateSyncs,
        gridBlocksRepaired: gridBlocksRepaired(cluster),
        syncBlocksFetched: syncBlocks(cluster, true),
        syncBlocksReused: syncBlocks(cluster, false),
        parRepairs: parRepairs(cluster),
        walReads: walReads(cluster, false),
        walReadErrors: walReads(cluster, true),
        walWritesUnverified: walWritesUnverified(cluster),
        faults: {
            packets_dropped: stats.packetsDropped,
            packets_duplicated: stats.packetsDuplicated,
            partitions: stats.partitions,
            clogs: stats.clogs,
            swizzle_clogs: stats.swizzleClogs,
            crashes: cluster.crashes,
            restarts: cluster.restarts,
            storage_read_faults: sumStorage(cluster, "readFaults"),
            storage_write_faults: sumStorage(cluster, "writeFaults"),
            torn_writes: sumStorage(cluster, "tornWrites"),
            misdirected_writes: sumStorage(cluster, "misdirectedWrites"),
            storage_write_errors: sumStorage(cluster, "writeErrors"),
        },
        faultZones: zoneFaults(cluster),
        fingerprint: fingerprint(cluster),
    };
}

/** Storage faults per zone across replicas, by zone name. */
function zoneFaults(cluster: Cluster): Record<string, number> {
    const zones: Record<string, number> = {};
    for (let zone = 0; zone < zoneCount; zone++) {
        let total = 0;
        for (const storage of cluster.storages) total += storage.stats.zoneFaults[zone]!;
        zones[zoneNames[zone]!] = total;
    }
    return zones;
}

/** Faulty WAL slots (found by recovery) repaired from peers, across the run. */
function parRepairs(cluster: Cluster): number {
    let total = cluster.parRepairsOfCrashed;
    for (const replica of cluster.replicas) total += replica.journal.faultyRepaired;
    return total;
}

/** Grid blocks repaired from peers (block repair at recovery) across the run. */
function gridBlocksRepaired(cluster: Cluster): number {
    let total = cluster.gridBlocksRepairedOfCrashed;
    for (const replica of cluster.replicas) total += replica.gridRepair.blocksRepaired;
    return total;
}

/** State sync's blocks fetched from peers (or read from the replica's own disk), run-wide. */
function syncBlocks(cluster: Cluster, fetched: boolean): number {
    let total = fetched ? cluster.syncBlocksFetchedOfCrashed : cluster.syncBlocksReusedOfCrashed;
    for (const replica of cluster.replicas) {
        const repair = replica.gridRepair;
        total += fetched ? repair.syncBlocksFetched : repair.syncBlocksReused;
    }
    return total;
}

/** Prepare reads from disk (or, with `errors`, those that failed) across the run. */
function walReads(cluster: Cluster, errors: boolean): number {
    let total = errors ? cluster.walReadErrorsOfCrashed : cluster.walReadsOfCrashed;
    for (const replica of cluster.replicas) {
        total += errors ? replica.journal.readErrors : replica.journal.readsStarted;
    }
    return total;
}

function walWritesUnverified(cluster: Cluster): number {
    let total = cluster.walWritesUnverifiedOfCrashed;
    for (const replica of cluster.replicas) total += replica.journal.writesUnverified;
    return total;
}

function sumStorage(
    cluster: Cluster,
    kind: "readFaults" | "writeFaults" | "writeErrors" | "tornWrites" | "misdirectedWrites",
): number {
    let total = 0;
    for (const storage of cluster.storages) total += storage.stats[kind];
    return total;
}

/** Checksum of the committed history and each replica's commit, view, status and state. */
function fingerprint(cluster: Cluster): string {
    const replicaCount = cluster.replicas.length;
    const scratch = new Uint8Array(16 + replicaCount * 32);
    const view = new DataView(scratch.buffer);
    cluster.checkers.historyDigest(scratch, 0);
    for (let index = 0; index < replicaCount; index++) {
        const replica = cluster.replicas[index]!;
        const stateMachine = cluster.stateMachines[index]!;
        const base = 16 + index * 32;
        view.setFloat64(base, replica.commitMin, true);
        view.setUint32(base + 8, replica.view, true);
        view.setUint32(base + 12, replica.status, true);
        checksum(
            cluster.arena.bytes,
            stateMachine.imageOffset,
            stateMachine.imageSize,
            scratch,
            base + 16,
        );
    }
    const digest = new Uint8Array(16);
    checksum(scratch, 0, scratch.length, digest, 0);
    let hex = "";
    for (let index = 15; index >= 0; index--)
        hex += (digest[index] ?? 0).toString(16).padStart(2, "0");
    return hex;
}
