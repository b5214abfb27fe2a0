// The real node: one replica of a cluster over its data file (O_DIRECT storage), the uWebSockets
// server and peer links (NodeBus), the wall clock, and one timer driving tick() every tickMs.
// Start-up: read the data file's identity, allocate the whole arena, open the replica (recover
// from superblock, checkpoint and WAL), then listen. SIGINT/SIGTERM stop it cleanly: the timer
// stops, sockets close, in-flight writes complete, the file is fsynced and closed.
// Observing: after every tick and every delivered message the node samples the replica's public
// state (status, view, checkpoint, stats), which is how view changes, checkpoints, state syncs
// and repairs become log events and duration histograms without hooks in the pure core; the
// sampling compares a few numbers and allocates only when something changed (rare). Durations
// measured this way have the tick's resolution (10 ms): a view change or checkpoint ends during
// a tick or a message, so its end is exact, and a checkpoint's start is its first write to the
// checkpoint zone, seen at the next sample.
// The live page (src/web/live.ts): GET / and its assets are served from memory; once a second the
// node sends its status to its peers (peer_status, off the protocol's path) and records a point
// of history; GET /cluster.json is what this replica knows of the whole cluster.
// The timeline (src/io/timeline.ts, GET /timeline): GCs, event-loop stalls, slow ticks, messages
// and writes, checkpoints, view changes and dropped requests, each with its wall-clock span, so
// that a client's slow operation can be matched with what the replica was doing meanwhile.

import fs from "node:fs";
import { PerformanceObserver } from "node:perf_hooks";
import { type Config, isPowerOfTwo, production, verify } from "../constants.js";
import { KvStateMachine } from "../state_machine/kv.js";
import { assert } from "../stdx/assert.js";
import { PRNG } from "../stdx/prng.js";
import { Arena } from "../vsr/arena.js";
import { checksumAttach } from "../vsr/checksum.js";
import { Grid } from "../vsr/grid.js";
import { gridRepairIosMax } from "../vsr/grid_repair.js";
import {
    type Layout,
    alignUp,
    layout,
    superblockCopies,
    superblockCopySize,
} from "../vsr/layout.js";
import { type Message, MessagePool } from "../vsr/message_pool.js";
import { Replica, Status, prepareRequestBounds } from "../vsr/replica.js";
import {
    SuperblockField,
    invalidSuperblockCopy,
    superblockCorruptError,
} from "../vsr/superblock.js";
import { type HttpAnswer, NodeBus } from "./bus.js";
import { JsonLog, type LogFn, type LogThreshold } from "./log.js";
import {
    Histogram,
    exponentialBounds,
    writeHeader,
    writeHistogramCounts,
    writeSample,
} from "./metrics.js";
import { DirectStorage, type StorageZone, writeSecondsBounds } from "./storage_direct.js";
import { RealTime } from "./time.js";
import { Timeline, TimelineKind, slowStepMs, toWallMs, wallMs } from "./timeline.js";
import { YoungAllocationMeter } from "./young_meter.js";
import { reportIntervalMs } from "../web/cluster_view.js";
import { LivePage } from "../web/live.js";

export interface Address {
    readonly host: string;
    readonly port: number;
}

/** Who a data file belongs to, read from its newest valid superblock copy. */
export interface DataFileIdentity {
    readonly cluster: number;
    readonly replica: number;
    readonly replicaCount: number;
    /** The KV capacity chosen at format time (`vsr format --kv-entries`). */
    readonly kvEntriesMax: number;
}

export class NodeError extends Error {
    override name = "NodeError";
}

/** Reads the identity from the superblock zone (buffered read at start-up, before O_DIRECT). */
export function readIdentity(path: string): DataFileIdentity {
    const size = superblockCopies * superblockCopySize;
    const bytes = new Uint8Array(size);
    let fd: number;
    try {
        fd = fs.openSync(path, "r");
    } catch (error) {
        throw new NodeError(`cannot open data file ${path}: ${(error as Error).message}`);
    }
    try {
        if (fs.readSync(fd, bytes, 0, size, 0) !== size) {
            throw new NodeError(`${path} is too short to be a data file`);
        }
    } finally {
        fs.closeSync(fd);
    }
    const view = new DataView(bytes.buffer);
    let best = -1;
    let bestSequence = -1;
    for (let copy = 0; copy < superblockCopies; copy++) {
        const base = copy * superblockCopySize;
        if (invalidSuperblockCopy(bytes, view, base) !== null) continue;
        const sequence = view.getUint32(base + SuperblockField.sequence, true);
        if (sequence > bestSequence) {
            best = base;
            bestSequence = sequence;
        }
    }
    if (best < 0 && bytes.some((byte) => byte !== 0)) {
        throw new NodeError(`${path}: ${superblockCorruptError}`);
    }
    if (best < 0) throw new NodeError(`${path} has no valid superblock (not a vsr data file?)`);
    return {
        cluster: view.getUint32(best + SuperblockField.cluster, true),
        replica: view.getUint8(best + SuperblockField.replica),
        replicaCount: view.getUint8(best + SuperblockField.replicaCount),
        kvEntriesMax: view.getUint32(best + SuperblockField.kvEntriesMax, true),
    };
}

/** A data file's configuration: the preset with the KV capacity the file was formatted for. */
export function fileConfig(preset: Config, kvEntriesMax: number): Config {
    return verify({ ...preset, kvEntriesMax });
}

/** Bytes of the arena a replica of `config` allocates at start (its memory, but for the heap). */
export function nodeArenaBytes(config: Config, replicaCount: number): number {
    const kvSize = KvStateMachine.sizeBytes(config.kvEntriesMax);
    const dataLayout = layout(config, kvSize);
    const messagesMax = nodeMessagesMax(config, replicaCount);
    return (
        MessagePool.sizeBytes(config.messageSizeMax, messagesMax) +
        alignUp(kvSize) + // The KV table (checkpoints stage their records: Grid.arenaBytes).
        Grid.arenaBytes(dataLayout) +
        3 * dataLayout.walHeadersSize + // The ring and recovery's two scratch rings.
        (config.journalWritesMax + 64) * 4096 +
        (2 + superblockCopies) * superblockCopySize
    );
}

export interface NodeOptions {
    readonly path: string;
    readonly addresses: readonly Address[];
    readonly config: Config;
    /** Events below this level are not logged. */
    readonly logThreshold: LogThreshold;
    /** Where log lines go (each ends with a newline). */
    readonly logWrite: (line: string) => void;
}

/** View-change and checkpoint buckets: 5 ms doubling to ~80 s. */
const phaseSecondsBounds = exponentialBounds(0.005, 2, 15);

/**
 * The data file's zones for the storage metrics, from the layout. Write latency is timed for the
 * journal (both WAL zones: a prepare is acknowledged once both are durable) and the superblock
 * (view changes and checkpoints wait on it); checkpoint data writes are timed as a whole by
 * vsr_checkpoint_duration_seconds. Separate histogram families rather than one with a zone
 * label keep each one a plain series for dashboards.
 */
function storageZones(zones: Layout, journal: Histogram, superblock: Histogram): StorageZone[] {
    return [
        { name: "superblock", offset: zones.superblockOffset, writeSeconds: superblock },
        { name: "wal_headers", offset: zones.walHeadersOffset, writeSeconds: journal },
        { name: "wal_prepares", offset: zones.walPreparesOffset, writeSeconds: journal },
        { name: "client_replies", offset: zones.clientRepliesOffset, writeSeconds: null },
        { name: "checkpoints", offset: zones.checkpointOffset, writeSeconds: null },
        { name: "grid", offset: zones.gridOffset, writeSeconds: null },
    ];
}
const checkpointZone = 4;
const gridZone = 5;

/** The replica's state at the last sample, to notice what changed. */
class Sample {
    status: number = Status.recovering;
    view = 0;
    checkpointOp = 0;
    stateSyncs = 0;
    repairsRequested = 0;
    requestsDropped = 0;
    checkpointBytesWritten = 0;
    /** performance.now() when the current view change began, 0 when none. */
    viewChangeStartedMs = 0;
    /** performance.now() of the first checkpoint write not yet accounted, 0 when none. */
    checkpointStartedMs = 0;
    /** Wall clock (ms since the epoch) of the last view change completed, 0 when none. */
    viewChangeLastMs = 0;
}

/** Messages the node's pool needs: the replica's own, plus inbound frames being handed over. */
function nodeMessagesMax(config: Config, replicaCount: number): number {
    return Replica.messagesMax(config, replicaCount) + 8;
}

export class Node {
    readonly identity: DataFileIdentity;
    readonly replica: Replica;
    readonly bus: NodeBus;
    readonly storage: DirectStorage;
    readonly log: LogFn;
    private readonly options: NodeOptions;
    private readonly sample = new Sample();
    readonly viewChangeSeconds = new Histogram(
        "vsr_view_change_duration_seconds",
        "View changes this replica took part in, from leaving normal status to normal again.",
        phaseSecondsBounds,
    );
    readonly journalWriteSeconds = new Histogram(
        "vsr_journal_write_duration_seconds",
        "WAL writes (prepares and redundant header sectors), each from submit to completion.",
        writeSecondsBounds,
    );
    readonly superblockWriteSeconds = new Histogram(
        "vsr_superblock_write_duration_seconds",
        "Superblock writes (view, log_view, checkpoint), submit to durable.",
        writeSecondsBounds,
    );
    readonly checkpointSeconds = new Histogram(
        "vsr_checkpoint_duration_seconds",
        "Checkpoints, from the first write of the snapshot to the superblock naming it durable.",
        phaseSecondsBounds,
    );
    /** What happened when (GET /timeline): ~16k events of 25 bytes, preallocated. */
    readonly timeline = new Timeline(16_384);
    /** performance.now() when the tick timer last fired, 0 before the first tick. */
    private tickLastMs = 0;
    /** Bound once: the tick timer's callback. */
    private readonly tickCallback = (): void => {
        const startMs = performance.now();
        if (this.tickLastMs !== 0) {
            this.timeline.recordTimerLateness(this.tickLastMs, this.options.config.tickMs, startMs);
        }
        this.tickLastMs = startMs;
        this.replica.tick();
        this.observe();
        this.recordStep(TimelineKind.slowTick, startMs);
    };
    /** Bound once: a message from the bus, handed to the replica. */
    private readonly messageCallback = (message: Message): void => {
        const startMs = performance.now();
        this.replica.onMessage(message);
        this.observe();
        this.recordStep(TimelineKind.slowMessage, startMs);
    };
    private timer: NodeJS.Timeout | null = null;
    /** The live cluster page: its files, the cluster view and this replica's reports. */
    readonly live: LivePage;
    /** Bound once: the status report timer's callback (once a second, off the protocol path). */
    private readonly reportCallback = (): void =>
        this.live.report(this.replica, this.bus, Date.now());
    private reportTimer: NodeJS.Timeout | null = null;
    /** Bound once: a peer's status report, from the bus (about once a second per peer). */
    private readonly peerStatusCallback = (peer: number, view: DataView, offset: number): void =>
        this.live.clusterView.onPeerStatus(peer, view, offset, Date.now());
    private readonly lockPath: string;
    private stopping = false;
    /** Garbage collections since start (young = scavenges), for /metrics. */
    private gcYoung = 0;
    private gcMajor = 0;
    private readonly gcObserver = new PerformanceObserver((list) => {
        for (const entry of list.getEntries()) {
            if (this.timeline.recordGc(entry)) this.gcYoung++;
            else this.gcMajor++;
        }
    });
    /** Young-generation bytes allocated, for /metrics (what the young GCs above collect). */
    private readonly youngMeter = new YoungAllocationMeter();
    readonly startedMs = Date.now();

    constructor(options: NodeOptions) {
        this.identity = readIdentity(options.path);
        const { cluster, replica, replicaCount } = this.identity;
        if (
            !isPowerOfTwo(this.identity.kvEntriesMax) ||
            this.identity.kvEntriesMax > kvEntriesLimit
        ) {
            throw new NodeError(`${options.path}: the superblock's KV capacity is not valid`);
        }
        const config = fileConfig(options.config, this.identity.kvEntriesMax);
        this.options = { ...options, config };
        this.log = new JsonLog(options.logThreshold, replica, options.logWrite).log;
        if (options.addresses.length !== replicaCount) {
            throw new NodeError(
                `the data file is replica ${replica} of ${replicaCount}, ` +
                    `but ${options.addresses.length} addresses were given`,
            );
        }
        const kvSize = KvStateMachine.sizeBytes(config.kvEntriesMax);
        const dataLayout = layout(config, kvSize);
        const messagesMax = nodeMessagesMax(config, replicaCount);
        const arena = newNodeArena(nodeArenaBytes(config, replicaCount));
        this.lockPath = lockDataFile(options.path);
        const pool = new MessagePool(arena, config.messageSizeMax, messagesMax);
        this.storage = DirectStorage.open(options.path, arena, {
            iopsMax: config.journalWritesMax + config.journalReadsMax + 4 + gridRepairIosMax,
            log: this.log,
            zones: storageZones(dataLayout, this.journalWriteSeconds, this.superblockWriteSeconds),
            timeline: this.timeline,
        });
        if (this.storage.sizeBytes < dataLayout.totalSize) {
            throw new NodeError(`${options.path} is smaller than this build's data file layout`);
        }
        const kvOffset = arena.allocate(alignUp(kvSize), 4096);
        const stateMachine = new KvStateMachine(arena.bytes, kvOffset, config.kvEntriesMax);
        this.bus = newBus({
            cluster,
            replica,
            addresses: options.addresses,
            pool,
            arena,
            messageSizeMax: config.messageSizeMax,
            onMessage: this.messageCallback,
            onHttp: (path) => this.http(path),
            log: this.log,
            isPrimary: () => this.replica.primary && this.replica.status === Status.normal,
            onPeerStatus: this.peerStatusCallback,
        });
        this.live = newLivePage(cluster, replica, replicaCount, this.bus.requestSeconds);
        this.replica = new Replica({
            config,
            cluster,
            replica,
            replicaCount,
            arena,
            pool,
            time: new RealTime(),
            storage: this.storage,
            layout: dataLayout,
            bus: this.bus,
            stateMachine,
            prng: new PRNG(Date.now() % Number.MAX_SAFE_INTEGER),
            hooks: null,
            faults: null,
        });
        arena.seal();
    }

    /** Recovers from the data file, then listens and starts the tick loop. */
    start(): Promise<void> {
        const startedMs = performance.now();
        return new Promise((resolve, reject) => {
            this.replica.open((ok) => {
                if (!ok) return reject(new NodeError(this.replica.openError ?? "open failed"));
                try {
                    this.bus.start();
                } catch (error) {
                    return reject(new NodeError((error as Error).message));
                }
                // Logged once listening: a node that cannot listen fails with one line only.
                this.logRecovered(performance.now() - startedMs);
                this.gcObserver.observe({ entryTypes: ["gc"] });
                const tickMs = this.options.config.tickMs;
                this.timer = setInterval(this.tickCallback, tickMs);
                this.reportCallback();
                this.reportTimer = setInterval(this.reportCallback, reportIntervalMs);
                resolve();
            });
        });
    }

    async stop(): Promise<void> {
        if (this.stopping) return;
        this.stopping = true;
        if (this.timer !== null) clearInterval(this.timer);
        if (this.reportTimer !== null) clearInterval(this.reportTimer);
        this.gcObserver.disconnect();
        this.youngMeter.stop();
        await this.bus.close();
        await new Promise<void>((resolve) => this.storage.close(() => resolve()));
        fs.rmSync(this.lockPath, { force: true });
    }

    private http(path: string): HttpAnswer | null {
        if (path === "/status") {
            return { status: 200, contentType: "application/json", body: this.statusJson() };
        }
        if (path === "/timeline") {
            const body = this.timeline.json(this.identity.replica, this.storage.zoneNames);
            return { status: 200, contentType: "application/json", body };
        }
        if (path === "/metrics") {
            const body = this.metricsText() + this.bus.metricsText();
            return { status: 200, contentType: "text/plain; version=0.0.4", body };
        }
        return this.live.answer(path, Date.now());
    }

    statusJson(): string {
        const replica = this.replica;
        const status = ["normal", "view_change", "recovering"][replica.status] ?? "unknown";
        const primary = replica.primary && replica.status === Status.normal;
        const viewChangeLastMs = this.sample.viewChangeLastMs;
        return JSON.stringify({
            cluster: this.identity.cluster,
            replica: this.identity.replica,
            replica_count: this.identity.replicaCount,
            status,
            role: primary ? "primary" : "backup",
            view: replica.view,
            log_view: replica.logView,
            op: replica.op,
            commit: replica.commitMin,
            commit_max: replica.commitMax,
            commit_lag: replica.commitMax - replica.commitMin,
            checkpoint: replica.checkpointOp,
            last_view_change:
                viewChangeLastMs === 0 ? null : new Date(viewChangeLastMs).toISOString(),
            primary,
            direct_io: this.storage.direct,
            uptime_s: Math.floor((Date.now() - this.startedMs) / 1000),
        });
    }

    private metricsText(): string {
        const lines: string[] = [];
        for (const [name, help, value] of this.gauges()) {
            writeSample(lines, name, "gauge", help, value);
        }
        for (const [name, help, value] of [
            ...this.counters(),
            ...this.walCounters(),
            ...this.gridRepairCounters(),
        ]) {
            writeSample(lines, name, "counter", help, value);
        }
        writeHeader(lines, "vsr_gc_total", "counter", "Garbage collections, by kind.");
        lines.push(`vsr_gc_total{kind="young"} ${this.gcYoung}`);
        lines.push(`vsr_gc_total{kind="major"} ${this.gcMajor}`);
        writeSample(
            lines,
            "vsr_young_allocated_bytes_total",
            "counter",
            "Bytes allocated in V8's young generation (what young GCs collect).",
            this.youngMeter.read(),
        );
        // The standard process metrics (Prometheus naming), read on scrape only.
        const cpu = process.cpuUsage();
        writeSample(
            lines,
            "process_cpu_seconds_total",
            "counter",
            "User and system CPU time of the replica process.",
            (cpu.user + cpu.system) / 1e6,
        );
        writeSample(
            lines,
            "process_resident_memory_bytes",
            "gauge",
            "Resident set size of the replica process.",
            process.memoryUsage.rss(),
        );
        this.viewChangeSeconds.writeFamily(lines);
        this.checkpointSeconds.writeFamily(lines);
        this.journalWriteSeconds.writeFamily(lines);
        this.superblockWriteSeconds.writeFamily(lines);
        writeHistogramCounts(
            lines,
            "vsr_prepare_requests",
            "Client requests per prepare this replica started as primary (group commit).",
            prepareRequestBounds,
            this.replica.prepareRequestCounts,
            this.replica.stats.requestsPrepared,
        );
        this.storage.metricsText(lines);
        return lines.join("\n") + "\n";
    }

    /** [name, help, value] of each gauge sampled from the replica. */
    private gauges(): [string, string, number][] {
        const replica = this.replica;
        const checkpointer = replica.checkpointer;
        const grid = checkpointer.grid;
        const primary = replica.primary && replica.status === Status.normal;
        return [
            ["vsr_view", "The replica's current view.", replica.view],
            ["vsr_log_view", "The latest view in which the replica was normal.", replica.logView],
            ["vsr_op", "The head of the replica's log.", replica.op],
            ["vsr_commit", "The highest op executed by the replica.", replica.commitMin],
            ["vsr_commit_max", "The highest op known committed by the cluster.", replica.commitMax],
            [
                "vsr_commit_lag",
                "Committed ops not yet executed here (commit_max - commit): a lagging replica.",
                replica.commitMax - replica.commitMin,
            ],
            ["vsr_checkpoint_op", "The op of the latest durable checkpoint.", replica.checkpointOp],
            [
                "vsr_checkpoint_blocks_written",
                "Grid blocks the latest checkpoint wrote (its delta and cleaning).",
                grid.blocksWritten,
            ],
            [
                "vsr_checkpoint_bytes_written",
                "Bytes of the KV image the latest checkpoint wrote (grid blocks and block index).",
                grid.blocksWritten * grid.blockSize + checkpointer.indexBytesWritten,
            ],
            [
                "vsr_checkpoint_records_written",
                "Slot records the latest checkpoint wrote, of which cleaning re-emitted some.",
                grid.recordsWritten,
            ],
            [
                "vsr_checkpoint_records_cleaned",
                "Slot records the latest checkpoint re-emitted to free the oldest blocks.",
                grid.recordsCleaned,
            ],
            [
                "vsr_grid_blocks_used",
                "Grid blocks the durable block index names.",
                grid.durableBlocks,
            ],
            ["vsr_grid_blocks", "Grid blocks in the data file.", grid.blockCount],
            [
                "vsr_checkpoint_staging_records",
                "Slot records the checkpoint staging area holds (copy-on-write of pending slots).",
                grid.stagingRecords,
            ],
            [
                "vsr_kv_entries_max",
                "The KV table's capacity (vsr format --kv-entries).",
                grid.slotCount,
            ],
            ["vsr_status", "0 normal, 1 view change, 2 recovering.", replica.status],
            [
                "vsr_primary",
                "1 when this replica is the primary in normal status.",
                primary ? 1 : 0,
            ],
        ];
    }

    /** [name, help, value] of each counter of the WAL's prepare cache and reads. */
    private walCounters(): [string, string, number][] {
        const journal = this.replica.journal;
        return [
            [
                "vsr_prepare_cache_hits_total",
                "Prepares the WAL served from its in-memory cache.",
                journal.cacheHits,
            ],
            [
                "vsr_prepare_cache_misses_total",
                "Prepares the WAL had to read back from disk.",
                journal.cacheMisses,
            ],
            ["vsr_wal_reads_total", "Prepare reads from the WAL started.", journal.readsStarted],
            [
                "vsr_wal_read_errors_total",
                "Prepare reads that failed or were corrupt (slot repaired from peers).",
                journal.readErrors,
            ],
        ];
    }

    /** [name, help, value] of each counter of the replica and its storage. */
    private counters(): [string, string, number][] {
        const replica = this.replica;
        const stats = replica.stats;
        const storage = this.storage;
        return [
            ["vsr_ops_committed_total", "Ops (prepares) executed by this replica.", stats.commits],
            ["vsr_prepares_total", "Prepares this replica started as primary.", stats.prepares],
            ["vsr_view_changes_total", "View changes this replica entered.", stats.viewChanges],
            [
                "vsr_requests_dropped_total",
                "Client requests dropped (queue full, not primary, view change).",
                stats.requestsDropped,
            ],
            [
                "vsr_messages_invalid_total",
                "Messages the replica refused after the bus's checks.",
                stats.messagesInvalid,
            ],
            ["vsr_journal_writes_total", "WAL writes completed.", replica.journal.writesCompleted],
            [
                "vsr_journal_write_errors_total",
                "WAL writes that failed.",
                replica.journal.writeErrors,
            ],
            [
                "vsr_journal_writes_unverified_total",
                "Prepare writes whose read-back did not hold them (written again).",
                replica.journal.writesUnverified,
            ],
            [
                "vsr_journal_header_sector_writes_total",
                "Redundant header sectors written (one per sector per tick at most).",
                replica.journal.headerSectorWrites,
            ],
            ["vsr_storage_writes_total", "Data file writes completed.", storage.writesCompleted],
            ["vsr_storage_reads_total", "Data file reads completed.", storage.readsCompleted],
            [
                "vsr_storage_errors_total",
                "Data file reads and writes that failed (EIO, ENOSPC...).",
                storage.ioErrorCount,
            ],
            [
                "vsr_repairs_requested_total",
                "Headers or prepares this replica asked its peers for.",
                stats.repairsRequested,
            ],
            ["vsr_state_syncs_total", "Checkpoints installed from a peer.", stats.stateSyncs],
            [
                "vsr_sync_anchors_confirmed_by_checkpoint_total",
                "Sync anchors confirmed by another replica's checkpoint, not a header.",
                stats.syncAnchorsConfirmedByCheckpoint,
            ],
            [
                "vsr_checkpoint_blocks_written_total",
                "Grid blocks written by checkpoints since start.",
                replica.checkpointer.grid.blocksWrittenTotal,
            ],
            [
                "vsr_checkpoint_execution_holds_total",
                "Ops whose execution waited for a checkpoint's blocks (staging area short).",
                replica.checkpointer.grid.executionHolds,
            ],
            [
                "vsr_events_committed_total",
                "KV events (puts, gets, deletes) executed.",
                stats.eventsCommitted,
            ],
            ...this.repairCounters(),
        ];
    }

    /** [name, help, value] of the counters of faults the replica survived by repair or retry. */
    private repairCounters(): [string, string, number][] {
        const replica = this.replica;
        const stats = replica.stats;
        return [
            [
                "vsr_journal_faulty_repaired_total",
                "Faulty WAL slots (found by recovery) repaired from peers.",
                replica.journal.faultyRepaired,
            ],
            [
                "vsr_checkpoints_unreadable_total",
                "Checkpoints found unreadable at start-up (replaced by state sync).",
                stats.checkpointsUnreadable,
            ],
            [
                "vsr_superblock_write_retries_total",
                "Superblock writes that failed on some copy and were written again.",
                stats.superblockWriteRetries,
            ],
            [
                "vsr_checkpoint_write_retries_total",
                "Checkpoint writes (copies, replies, grid) refused by the disk and issued again.",
                replica.checkpointer.writeRetries,
            ],
            [
                "vsr_replies_repaired_total",
                "Client replies lost from the disk and repaired from a peer.",
                stats.repliesRepaired,
            ],
        ];
    }

    /** [name, help, value] of each block repair counter (grid blocks fetched and served). */
    private gridRepairCounters(): [string, string, number][] {
        const gridRepair = this.replica.gridRepair;
        return [
            [
                "vsr_grid_blocks_repaired_total",
                "Grid blocks unreadable at start-up, fetched from a peer and written back.",
                gridRepair.blocksRepaired,
            ],
            [
                "vsr_grid_blocks_served_total",
                "Grid blocks read from disk and sent to a peer repairing its own.",
                gridRepair.blocksServed,
            ],
            [
                "vsr_sync_blocks_fetched_total",
                "Grid blocks of a state sync's checkpoint fetched from a peer.",
                gridRepair.syncBlocksFetched,
            ],
            [
                "vsr_sync_blocks_reused_total",
                "Grid blocks of a state sync's checkpoint read from this replica's own disk.",
                gridRepair.syncBlocksReused,
            ],
        ];
    }

    /** Bytes written to checkpoint copies and grid blocks: a change means a checkpoint runs. */
    private checkpointBytesWritten(): number {
        const written = this.storage.zoneBytesWritten;
        return written[checkpointZone]! + written[gridZone]!;
    }

    /** Records a tick or a message handled in slowStepMs or more (a synchronous stall). */
    private recordStep(kind: TimelineKind, startMs: number): void {
        const durationMs = performance.now() - startMs;
        if (durationMs >= slowStepMs) {
            this.timeline.record(kind, toWallMs(startMs), durationMs, this.replica.commitMin);
        }
    }

    /** Compares the replica's state with the last sample; logs and times what changed. */
    private observe(): void {
        const replica = this.replica;
        const sample = this.sample;
        if (replica.status !== sample.status || replica.view !== sample.view) this.observeView();
        const checkpointBytes = this.checkpointBytesWritten();
        if (checkpointBytes !== sample.checkpointBytesWritten) {
            sample.checkpointBytesWritten = checkpointBytes;
            if (sample.checkpointStartedMs === 0) sample.checkpointStartedMs = performance.now();
        }
        if (replica.checkpointOp !== sample.checkpointOp) this.observeCheckpoint();
        const dropped = replica.stats.requestsDropped;
        if (dropped !== sample.requestsDropped) {
            const count = dropped - sample.requestsDropped;
            sample.requestsDropped = dropped;
            this.timeline.record(TimelineKind.requestsDropped, wallMs(), 0, count);
        }
        const repairs = replica.stats.repairsRequested;
        if (repairs !== sample.repairsRequested) {
            sample.repairsRequested = repairs;
            // Logged at the 1st, 2nd, 4th… request: a long repair is seen, never a flood.
            if ((repairs & (repairs - 1)) === 0) {
                this.log(`repair: ${repairs} requests to peers so far`, "repair", "info", {
                    repairs_requested: repairs,
                    op: replica.op,
                    commit: replica.commitMin,
                    rate_limited: true,
                });
            }
        }
    }

    private observeView(): void {
        const replica = this.replica;
        const sample = this.sample;
        const nowMs = performance.now();
        const wasNormal = sample.status === Status.normal;
        sample.status = replica.status;
        sample.view = replica.view;
        if (replica.status === Status.viewChange) {
            if (sample.viewChangeStartedMs === 0) sample.viewChangeStartedMs = nowMs;
            if (wasNormal) {
                this.log(
                    `view change: leaving view for ${replica.view}`,
                    "view_change_started",
                    "warn",
                    {
                        view: replica.view,
                        log_view: replica.logView,
                    },
                );
            }
            return;
        }
        if (replica.status !== Status.normal) return;
        const durationMs =
            sample.viewChangeStartedMs === 0 ? 0 : nowMs - sample.viewChangeStartedMs;
        if (sample.viewChangeStartedMs !== 0) {
            this.viewChangeSeconds.observe(durationMs / 1000);
            this.timeline.record(
                TimelineKind.viewChange,
                toWallMs(sample.viewChangeStartedMs),
                durationMs,
                replica.view,
            );
        }
        sample.viewChangeStartedMs = 0;
        sample.viewChangeLastMs = Date.now();
        const primary = replica.primary;
        this.log(
            `view change: normal in view ${replica.view} as ${primary ? "primary" : "backup"}`,
            "view_change",
            "info",
            {
                view: replica.view,
                role: primary ? "primary" : "backup",
                duration_ms: Math.round(durationMs),
            },
        );
    }

    private observeCheckpoint(): void {
        const replica = this.replica;
        const sample = this.sample;
        const nowMs = performance.now();
        sample.checkpointOp = replica.checkpointOp;
        const durationMs =
            sample.checkpointStartedMs === 0 ? 0 : nowMs - sample.checkpointStartedMs;
        sample.checkpointStartedMs = 0;
        const stateSync = replica.stats.stateSyncs !== sample.stateSyncs;
        this.timeline.record(
            stateSync ? TimelineKind.stateSync : TimelineKind.checkpoint,
            toWallMs(nowMs - durationMs),
            durationMs,
            replica.checkpointer.grid.blocksWritten,
        );
        if (stateSync) {
            sample.stateSyncs = replica.stats.stateSyncs;
            this.log(
                `state sync: installed a peer's checkpoint at op ${replica.checkpointOp}`,
                "state_sync",
                "warn",
                {
                    checkpoint: replica.checkpointOp,
                    duration_ms: Math.round(durationMs),
                },
            );
            return;
        }
        this.checkpointSeconds.observe(durationMs / 1000);
        this.log(`checkpoint at op ${replica.checkpointOp}`, "checkpoint", "info", {
            checkpoint: replica.checkpointOp,
            duration_ms: Math.round(durationMs),
        });
    }

    private logRecovered(durationMs: number): void {
        const replica = this.replica;
        const sample = this.sample;
        sample.status = replica.status;
        sample.view = replica.view;
        sample.checkpointOp = replica.checkpointOp;
        sample.stateSyncs = replica.stats.stateSyncs;
        sample.repairsRequested = replica.stats.repairsRequested;
        sample.requestsDropped = replica.stats.requestsDropped;
        sample.checkpointBytesWritten = this.checkpointBytesWritten();
        this.log(
            `recovered: view ${replica.view}, op ${replica.op}, commit ${replica.commitMin}`,
            "recovered",
            "info",
            {
                view: replica.view,
                log_view: replica.logView,
                op: replica.op,
                commit: replica.commitMin,
                checkpoint: replica.checkpointOp,
                status: ["normal", "view_change", "recovering"][replica.status] ?? "unknown",
                duration_ms: Math.round(durationMs),
            },
        );
    }
}

/**
 * The process's arena with every page faulted in: a fresh WebAssembly.Memory is mapped lazily,
 * and a first write to a page costs 30-190 us on this VM (a fault). Left to the hot path, those
 * faults came as stalls (7-15 s at the first checkpoint after loading 1M keys, whose snapshot
 * region was untouched until then, on a loaded machine); start-up pays them once instead.
 */
function newNodeArena(sizeBytes: number): Arena {
    const arena = new Arena(sizeBytes);
    arena.bytes.fill(0);
    checksumAttach(arena.memory);
    return arena;
}

/** The live page; its files missing is an installation error, said in one line. */
function newLivePage(...args: ConstructorParameters<typeof LivePage>): LivePage {
    try {
        return new LivePage(...args);
    } catch (error) {
        throw new NodeError((error as Error).message);
    }
}

/** The bus, with a refusal to run on uWebSockets.js's pure-JS fallback as a one-line error. */
function newBus(options: ConstructorParameters<typeof NodeBus>[0]): NodeBus {
    try {
        return new NodeBus(options);
    } catch (error) {
        throw new NodeError((error as Error).message);
    }
}

/**
 * One process per data file: a lock file beside it holds the owner's pid (Node has no flock).
 * A lock left by a dead process (kill -9) is taken over.
 */
function lockDataFile(path: string): string {
    const lockPath = path + ".lock";
    for (let attempt = 0; attempt < 2; attempt++) {
        try {
            const fd = fs.openSync(lockPath, "wx");
            fs.writeSync(fd, String(process.pid));
            fs.closeSync(fd);
            return lockPath;
        } catch (error) {
            if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
            const pid = Number(fs.readFileSync(lockPath, "utf8"));
            if (Number.isInteger(pid) && pid > 0 && processAlive(pid)) {
                throw new NodeError(`${path} is in use by process ${pid} (lock ${lockPath})`);
            }
            fs.rmSync(lockPath, { force: true }); // Stale: its process is gone.
        }
    }
    throw new NodeError(`cannot lock ${path}`);
}

function processAlive(pid: number): boolean {
    try {
        process.kill(pid, 0);
        return true;
    } catch (error) {
        return (error as NodeJS.ErrnoException).code === "EPERM";
    }
}

/** Runs a node until SIGINT/SIGTERM; resolves with the exit code. */
export async function runNode(options: NodeOptions): Promise<number> {
    const node = new Node(options);
    await node.start();
    const { replica, replicaCount } = node.identity;
    const address = options.addresses[replica];
    assert(address !== undefined);
    node.log(
        `vsr: replica ${replica} of ${replicaCount} listening on ${address.host}:${address.port}` +
            ` (direct I/O ${node.storage.direct ? "on" : "off"})`,
        "listening",
        "info",
        { host: address.host, port: address.port, direct_io: node.storage.direct },
    );
    await new Promise<void>((resolve) => {
        const stop = (): void => resolve();
        process.once("SIGINT", stop);
        process.once("SIGTERM", stop);
    });
    await node.stop();
    node.log("vsr: stopped", "stopped", "info");
    return 0;
}

export const defaultConfig = production;
/** The largest --kv-entries: two tables (live and snapshot) must fit the 4 GiB arena. */
export const kvEntriesLimit = 1 << 23;
