// The replica: Viewstamped Replication (Revisited) with TigerBeetle's refinements. Pure: it moves
// only through tick(), onMessage() and storage completions, and reaches the world through the
// injected Time, Storage, MessageBus, StateMachine and PRNG. The same code runs in production and
// inside the simulator.
//
// Normal operation: the primary (view % replicaCount) batches queued client requests into one
// prepare, appends it to its journal and sends it to every backup at once (star). A backup
// appends it and answers prepare_ok once the prepare is durable. At a replication quorum the
// primary commits (in op order), replies to the clients, and advertises its commit number in the
// next prepare and in commit heartbeats.
//
// View change: a backup that stops hearing from the primary votes start_view_change for the next
// view; a view-change quorum of votes moves replicas into view_change status, where each sends a
// do_view_change with its log suffix, log_view, and nack/present bitsets to the new primary. The
// new primary picks the log from the do_view_changes with the highest log_view, truncates ops
// that a nack quorum proves uncommitted, repairs what it lacks, and broadcasts start_view.
//
// Trust: a journal slot is trusted when its header belongs to the log of log_view: it came from
// that view's primary (a prepare of the view, the start_view suffix, the new primary's choice) or
// it is the parent of a trusted header (the hash chain). Only trusted ops are committed,
// acknowledged or vouched for in a view change; holes below a trusted op are repaired by
// walking the chain down with request_headers / request_prepare.
//
// Files: this one holds the replica's state, start-up, open, the tick loop, dispatch, normal
// operation, durability and the clock; view_change.ts, state_sync.ts and repair.ts hold those
// protocols as functions over the replica. Members without `private` are shared with those
// files: package-internal, not an API (the package exports the node and the client).

import {
    type Config,
    type Derived,
    batchEntryHeaderSize,
    derive,
    headerSize,
    kvEventSize,
    kvResultSize,
} from "../constants.js";
import { assert } from "../stdx/assert.js";
import { bucketIndex } from "../stdx/bucket.js";
import type { PRNG } from "../stdx/prng.js";
import type { Allocator } from "./arena.js";
import { BatchEntry, invalidBatch } from "./batch.js";
import { Checkpointer } from "./checkpoint.js";
import { GridRepair } from "./grid_repair.js";
import { ClientSessions } from "./client_sessions.js";
import { Clock } from "./clock.js";
import {
    Command,
    Commit,
    Eviction,
    EvictionReason,
    Frame,
    Operation,
    Ping,
    Pong,
    Prepare,
    PrepareOk,
    Reply,
    Request,
    headerCommand,
    headerReplica,
    headerSizeOf,
    headerView,
    invalidHeader,
    prepareOp,
    readU64,
    setChecksums,
    u128Equal,
    u128IsZero,
    u64IsZero,
    validBodyChecksum,
    validHeaderChecksum,
    writeRootPrepare,
    writeU64,
} from "./header.js";
import type { MessageBus, StateMachine, Storage, Time } from "./interfaces.js";
import { Journal } from "./journal.js";
import type { Layout } from "./layout.js";
import type { Message, MessagePool } from "./message_pool.js";
import {
    gridImageReadCallback,
    gridRepairStart,
    gridRepairTimeout,
    gridRepairedCallback,
    journalReadCallback,
    onHeaders,
    onReplyRepair,
    onRequestHeaders,
    onRequestPrepare,
    onRequestReply,
    repair,
    repairPeer,
    repairReplies,
    replyRepairRequest,
} from "./repair.js";
import {
    copyHeader,
    copyU128,
    onRequestSync,
    onSync,
    sendRequestSync,
    syncLoaded,
    syncRequest,
    syncRetry,
} from "./state_sync.js";
import {
    Superblock,
    SuperblockField,
    formatVersion,
    superblockCorruptError,
    viewHeadersMax,
} from "./superblock.js";
import { Timeout } from "./timeout.js";
import {
    doViewChangesClear,
    jumpToView,
    onDoViewChange,
    onStartView,
    onStartViewChange,
    pipelineClear,
    primaryStartView,
    primaryViewChangeProgress,
    requestQueueClear,
    sendDoViewChange,
    sendStartViewChange,
    transitionToViewChange,
    trustedHeader,
    voteStartViewChange,
} from "./view_change.js";

/** Repair timeouts in a row without a new sync chunk before another peer is asked. */
export const syncStallsMax = 8;

export const Status = { normal: 0, viewChange: 1, recovering: 2 } as const;
export type Status = (typeof Status)[keyof typeof Status];

export interface Quorums {
    readonly replication: number;
    readonly viewChange: number;
    readonly nack: number;
}

/** Flexible quorums as TigerBeetle sizes them: replication + viewChange > replicaCount. */
export function quorums(replicaCount: number): Quorums {
    assert(replicaCount >= 1 && replicaCount <= 6);
    const replication = replicaCount === 2 ? 2 : Math.min(3, Math.ceil(replicaCount / 2));
    const viewChange = replicaCount === 2 ? 2 : replicaCount - replication + 1;
    const nack = replicaCount - replication + 1;
    assert(replication + viewChange > replicaCount);
    return { replication, viewChange, nack };
}

/** Test-only switches that break the protocol on purpose, to prove the checkers catch it. */
export interface ReplicaFaults {
    /** The primary commits on its own prepare_ok alone, without a replication quorum. */
    commitWithoutQuorum: boolean;
    /** The primary commits with one prepare_ok fewer than the replication quorum. */
    replicationQuorumOffByOne: boolean;
    /** Recovery accepts a prepare whose body fails its checksum (a corrupt WAL slot). */
    acceptCorruptPrepare: boolean;
    /** A view change takes every do_view_change as canonical, whatever its log_view. */
    canonicalIgnoresLogView: boolean;
    /** A backup acknowledges a prepare as soon as it has it, before its write is durable. */
    prepareOkBeforeDurable: boolean;
    /**
     * The "is this request new?" test passes duplicates: the primary prepares a retransmission
     * of the latest committed request, and execution runs it again (two points, one flaw).
     */
    duplicateReexecuted: boolean;
    /** A backup executes its whole log, past the commit number its primary announced. */
    backupCommitsPastPrimary: boolean;
    /** A view change truncates an op on one nack fewer than the nack quorum. */
    truncateOneNackShort: boolean;
    /** State sync discards the log above the installed checkpoint (ops it acknowledged). */
    stateSyncDropsLog: boolean;
    /** The primary stamps prepares with its raw wall clock (no cluster time, no monotonicity). */
    timestampFromLocalClock: boolean;
}

export const noReplicaFaults: ReplicaFaults = {
    commitWithoutQuorum: false,
    replicationQuorumOffByOne: false,
    acceptCorruptPrepare: false,
    canonicalIgnoresLogView: false,
    prepareOkBeforeDurable: false,
    duplicateReexecuted: false,
    backupCommitsPastPrimary: false,
    truncateOneNackShort: false,
    stateSyncDropsLog: false,
    timestampFromLocalClock: false,
};

/** Observers for the simulator's checkers (null in production). */
export interface ReplicaHooks {
    onCommit(replica: number, op: number, prepare: Message): void;
    /** State sync installed a peer's checkpoint: execution resumes after `op`. */
    onStateSync(replica: number, op: number): void;
    /** Block repair restored the image of checkpoint `op` (the one recovery found damaged). */
    onGridRepaired(replica: number, op: number): void;
}

export interface ReplicaOptions {
    readonly config: Config;
    readonly cluster: number;
    readonly replica: number;
    readonly replicaCount: number;
    readonly arena: Allocator;
    readonly pool: MessagePool;
    readonly time: Time;
    readonly storage: Storage;
    readonly layout: Layout;
    readonly bus: MessageBus;
    readonly stateMachine: StateMachine;
    readonly prng: PRNG;
    readonly hooks: ReplicaHooks | null;
    readonly faults: ReplicaFaults | null;
}

export interface ReplicaStats {
    messagesReceived: number;
    messagesInvalid: number;
    prepares: number;
    commits: number;
    viewChanges: number;
    requestsDropped: number;
    repairsRequested: number;
    preparesRepaired: number;
    evictions: number;
    windowFull: number;
    /** Checkpoints installed from a peer (state sync). */
    stateSyncs: number;
    /** Sync anchors confirmed by another replica's checkpoint at the same op (not a header). */
    syncAnchorsConfirmedByCheckpoint: number;
    /** KV events executed (what users call operations; a prepare batches many). */
    eventsCommitted: number;
    /** request_reply messages sent for session replies lost from this replica's disk. */
    replyRepairsRequested: number;
    /** Lost session replies restored from a peer's copy. */
    repliesRepaired: number;
    /** Starts whose checkpoint could not be read (the state came from a peer instead). */
    checkpointsUnreadable: number;
    /** Superblock writes that failed (EIO on a copy) and were written again. */
    superblockWriteRetries: number;
    /** Client requests packed into the prepares this replica started as primary. */
    requestsPrepared: number;
}

/**
 * Buckets of Replica.prepareRequestCounts: prepares holding 1, 2, ≤ 4, … ≤ 64 requests, then
 * more (each bound twice the last). How full group commit makes prepares, seen from outside.
 */
export const prepareRequestBounds: readonly number[] = [1, 2, 4, 8, 16, 32, 64];

export class Replica {
    readonly config: Config;
    readonly derived: Derived;
    readonly cluster: number;
    readonly replica: number;
    readonly replicaCount: number;
    readonly quorums: Quorums;
    readonly bytes: Uint8Array;
    readonly memory: DataView;
    readonly pool: MessagePool;
    private readonly time: Time;
    readonly bus: MessageBus;
    private readonly stateMachine: StateMachine;
    readonly prng: PRNG;
    readonly hooks: ReplicaHooks | null;
    readonly faults: ReplicaFaults;
    readonly journal: Journal;
    readonly sessions: ClientSessions;
    /** Cluster time from ping/pong samples (Marzullo over a replication quorum of clocks). */
    readonly clock: Clock;
    private readonly superblock: Superblock;
    /** Public for metrics (blocks and bytes per checkpoint); the replica alone drives it. */
    readonly checkpointer: Checkpointer;
    /** Grid blocks fetched from peers by (address, checksum), and served to them. */
    readonly gridRepair: GridRepair;

    status: Status = Status.normal;
    view = 0;
    /** The latest view in which this replica's status was normal. */
    logView = 0;
    /** The head of the log when log_view's log was installed (persisted with it). */
    logViewOp = 0;
    /** The head of the log. */
    op = 0;
    /** The highest op executed by the state machine. */
    commitMin = 0;
    /** The highest op known to be committed by the cluster. */
    commitMax = 0;
    /** Arena offset of the 16-byte checksum of the prepare at commitMin. */
    readonly commitMinChecksum: number;
    /** A head learned from a commit heartbeat while lagging (fetched by request_prepare). */
    headTargetOp = 0;
    readonly headTargetChecksum: number;
    prepareTimestampUs = 0;
    abdicating = false;

    // Durability. The superblock records view, log_view and the latest checkpoint; the replica
    // acts on a view (do_view_change, prepare_ok, start_view) only once it is durable.
    viewDurable = 0;
    logViewDurable = 0;
    /** Another superblock write is wanted once the one in flight completes. */
    private superblockQueued = false;
    /** The op of the latest durable checkpoint: WAL slots of ops up to it may be overwritten. */
    checkpointOp = 0;
    private checkpointCopy = 0;
    /** A checkpoint's snapshot is being written (data, then the superblock naming it). */
    checkpointInFlight = false;
    /**
     * Execution paused at a checkpoint op because the previous checkpoint is still in flight
     * (rare: a checkpoint takes far less than checkpointOps ops to write).
     */
    checkpointing = false;
    private checkpointPendingOp = 0;
    /**
     * The superblock write in flight names the checkpoint just written. Its op alone cannot
     * tell: a sync to the checkpoint at this replica's own op (its image was unreadable) names
     * the same op as every superblock write before it.
     */
    private superblockCarriesCheckpoint = false;
    /** Arena offset of the checksum of the prepare at checkpointPendingOp (the chain anchor). */
    readonly checkpointPendingChecksum: number;
    /** The checkpoint's data is written; the next superblock write names it. */
    private checkpointDataWritten = false;
    /** A new primary's start_view waits for its log_view to be durable. */
    startViewPending = false;
    /** Why open() failed (null when it did not). */
    openError: string | null = null;
    private openCallback: ((ok: boolean) => void) | null = null;
    ticks = 0;

    // The primary's pipeline: prepares in flight, ops commitMax+1 .. commitMax+pipelineCount.
    readonly pipeline: (Message | null)[] = [];
    readonly pipelineOks: Uint32Array;
    pipelineHead = 0;
    pipelineCount = 0;
    // Requests waiting for a prepare (a ring).
    readonly requestQueue: (Message | null)[] = [];
    requestQueueHead = 0;
    requestQueueCount = 0;

    // View change state.
    /** Replicas that voted to leave the current view (for view + 1). */
    startViewChangeVotes = 0;
    readonly doViewChanges: (Message | null)[] = [];
    /** True once the new primary installed the log chosen from a do_view_change quorum. */
    viewChangeLogInstalled = false;
    /** Per op of the chosen suffix: the arena offset of its canonical header (scratch). */
    readonly canonicalOffsets: Float64Array;

    readonly stats: ReplicaStats = {
        messagesReceived: 0,
        messagesInvalid: 0,
        prepares: 0,
        commits: 0,
        viewChanges: 0,
        requestsDropped: 0,
        repairsRequested: 0,
        preparesRepaired: 0,
        evictions: 0,
        windowFull: 0,
        stateSyncs: 0,
        syncAnchorsConfirmedByCheckpoint: 0,
        eventsCommitted: 0,
        replyRepairsRequested: 0,
        repliesRepaired: 0,
        checkpointsUnreadable: 0,
        superblockWriteRetries: 0,
        requestsPrepared: 0,
    };
    /** Prepares started as primary per bucket of prepareRequestBounds (the last: more). */
    readonly prepareRequestCounts = new Float64Array(prepareRequestBounds.length + 1);

    private readonly prepareTimeout: Timeout;
    private readonly commitMessageTimeout: Timeout;
    private readonly normalHeartbeatTimeout: Timeout;
    readonly startViewChangeWindowTimeout: Timeout;
    readonly startViewChangeMessageTimeout: Timeout;
    readonly viewChangeStatusTimeout: Timeout;
    readonly doViewChangeMessageTimeout: Timeout;
    readonly repairTimeout: Timeout;
    private readonly primaryAbdicateTimeout: Timeout;

    constructor(options: ReplicaOptions) {
        const config = options.config;
        assert(options.replica >= 0 && options.replica < options.replicaCount);
        assert(options.cluster >= 0 && options.cluster <= 0xffff_ffff);
        assert(options.pool.messageSizeMax === config.messageSizeMax);
        this.config = config;
        this.derived = derive(config);
        this.cluster = options.cluster;
        this.replica = options.replica;
        this.replicaCount = options.replicaCount;
        this.quorums = quorums(options.replicaCount);
        this.bytes = options.arena.bytes;
        this.memory = options.arena.view;
        this.pool = options.pool;
        this.time = options.time;
        this.bus = options.bus;
        this.stateMachine = options.stateMachine;
        this.prng = options.prng;
        this.hooks = options.hooks;
        this.faults = options.faults ?? noReplicaFaults;
        this.journal = new Journal(
            config,
            options.arena,
            options.pool,
            options.storage,
            options.layout,
            (op) => this.journalDurableCallback(op),
            this.faults.acceptCorruptPrepare,
            (op, prepare, destinations) => journalReadCallback(this, op, prepare, destinations),
        );
        this.sessions = new ClientSessions(config.clientsMax, options.pool, options.arena.view);
        this.superblock = new Superblock(options.arena, options.storage);
        this.checkpointer = new Checkpointer(
            options.arena,
            options.storage,
            options.layout,
            options.pool,
            this.sessions,
            options.stateMachine,
            config.messageSizeMax,
        );
        this.gridRepair = this.createGridRepair(options);
        this.commitMinChecksum = options.arena.allocate(16, 16);
        this.headTargetChecksum = options.arena.allocate(16, 16);
        this.checkpointPendingChecksum = options.arena.allocate(16, 16);
        this.pipelineOks = new Uint32Array(config.pipelinePrepareQueueMax);
        this.fillQueues();
        this.canonicalOffsets = new Float64Array(Replica.canonicalWalkMax(config));
        this.clock = new Clock(options, this.quorums.replication);
        const timeout = (name: string, afterTicks: number): Timeout =>
            new Timeout(name, afterTicks, config.backoffTicksMax, options.prng);
        const c = config;
        this.prepareTimeout = timeout("prepare", c.prepareTimeoutTicks);
        this.commitMessageTimeout = timeout("commit", c.commitMessageTimeoutTicks);
        this.normalHeartbeatTimeout = timeout("heartbeat", c.normalHeartbeatTimeoutTicks);
        this.startViewChangeWindowTimeout = timeout(
            "svc_window",
            c.startViewChangeWindowTimeoutTicks,
        );
        this.startViewChangeMessageTimeout = timeout("svc", c.startViewChangeMessageTimeoutTicks);
        this.viewChangeStatusTimeout = timeout("view_change", c.viewChangeStatusTimeoutTicks);
        this.doViewChangeMessageTimeout = timeout("dvc", c.doViewChangeMessageTimeoutTicks);
        this.repairTimeout = timeout("repair", c.repairTimeoutTicks);
        this.primaryAbdicateTimeout = timeout("abdicate", c.primaryAbdicateTimeoutTicks);

        this.installRoot();
        // Until open() reads the real superblock, the staged image is the freshly formatted one.
        this.superblock.setU128(SuperblockField.checkpointOpChecksum, this.commitMinChecksum);
        this.enterNormalTimeouts();
    }

    private createGridRepair(options: ReplicaOptions): GridRepair {
        return new GridRepair(
            options.arena,
            options.storage,
            options.layout,
            this.checkpointer.grid,
            {
                replica: this.replica,
                replicaCount: this.replicaCount,
                messageBodySizeMax: this.derived.messageBodySizeMax,
                sender: {
                    acquireHeader: (command) => this.acquireHeader(command),
                    sendTo: (replica, message) => this.sendTo(replica, message),
                },
                repairedCallback: () => gridRepairedCallback(this),
            },
        );
    }

    // Completions bound once (no closure per I/O).
    private readonly superblockWriteCallbackBound = (ok: boolean): void =>
        this.superblockWriteCallback(ok);
    readonly gridImageReadCallbackBound = (ok: boolean): void => gridImageReadCallback(this, ok);
    readonly syncLoadedBound = (): void => syncLoaded(this);
    private readonly checkpointWriteCallbackBound = (ok: boolean): void =>
        this.checkpointWriteCallback(ok);

    /** Pool messages one replica may hold at once, by arithmetic (see the comment per term). */
    /** Every queue is sized once, here: a slot per entry, null while free. */
    private fillQueues(): void {
        for (let i = 0; i < this.config.pipelinePrepareQueueMax; i++) this.pipeline.push(null);
        for (let i = 0; i < this.derived.requestQueueMax; i++) this.requestQueue.push(null);
        for (let i = 0; i < this.replicaCount; i++) this.doViewChanges.push(null);
    }

    static messagesMax(config: Config, replicaCount: number): number {
        assert(replicaCount >= 1);
        return (
            config.prepareCacheMax + // The journal's prepare cache (the WAL itself is on disk).
            config.journalReadsMax + // Prepare reads in flight (recovery's reads reuse these).
            config.pipelinePrepareQueueMax + // The pipeline may hold prepares the cache evicted.
            config.journalWritesMax + // Writes in flight may hold prepares the journal released.
            config.clientsMax + // Requests queued for a prepare, at most one per session.
            config.clientsMax + // The latest reply of every session.
            replicaCount + // do_view_change messages held by a new primary.
            config.clientsMax + // Replies a checkpoint snapshot references while written.
            config.clientsMax + // Replies assembled by a state sync being received.
            2
        ); // A message under construction and a reply under construction.
    }

    /**
     * Ops a new primary's walk may span: a pipeline below the known canonical head, up to the
     * highest op of a canonical log (its suffix, then its unknown head; see doViewChangeValid).
     */
    static canonicalWalkMax(config: Config): number {
        return config.pipelinePrepareQueueMax + 2 * derive(config).viewHeadersMax;
    }

    primaryIndex(view: number): number {
        return view % this.replicaCount;
    }

    get primary(): boolean {
        return this.primaryIndex(this.view) === this.replica;
    }

    // ---------------------------------------------------------------------------------------
    // Start-up.

    /** Op 0 is the root prepare: committed by definition, the anchor of the hash chain. */
    private installRoot(): void {
        const root = this.pool.acquire();
        const base = root.offset;
        writeRootPrepare(this.bytes, this.memory, base, this.cluster);
        assert(invalidHeader(this.memory, base, this.config.messageSizeMax) === null);
        this.journal.setHeader(base);
        copyU128(this, this.commitMinChecksum, base + Frame.checksum);
        this.pool.unref(root);
        assert(this.journal.hasHeader(0));
    }

    // ---------------------------------------------------------------------------------------
    // Open: recover from the data file (superblock → checkpoint → WAL), then rejoin.

    /**
     * Recovers the replica from its storage. Until the callback, the replica ignores ticks and
     * messages. On failure `openError` says why (another cluster's file, a corrupt WAL, …).
     */
    open(callback: (ok: boolean) => void): void {
        assert(this.openCallback === null);
        this.status = Status.recovering;
        this.stopAllTimeouts();
        this.openCallback = callback;
        this.superblock.open((ok) => this.openSuperblockCallback(ok));
    }

    private openFinish(error: string | null): void {
        const callback = this.openCallback;
        assert(callback !== null);
        this.openCallback = null;
        this.openError = error;
        callback(error === null);
    }

    private openSuperblockCallback(ok: boolean): void {
        if (!ok && this.superblock.corrupt) return this.openFinish(superblockCorruptError);
        if (!ok) return this.openFinish("no valid superblock: not a formatted data file");
        const superblock = this.superblock;
        const durable = superblock.durable;
        const view = this.memory;
        if (superblock.u32(durable, SuperblockField.cluster) !== this.cluster) {
            return this.openFinish("the data file belongs to another cluster");
        }
        if (view.getUint8(durable + SuperblockField.replica) !== this.replica) {
            return this.openFinish("the data file belongs to another replica index");
        }
        if (view.getUint8(durable + SuperblockField.replicaCount) !== this.replicaCount) {
            return this.openFinish("the data file was formatted for another replica count");
        }
        const kvEntriesMax = superblock.u32(durable, SuperblockField.kvEntriesMax);
        if (kvEntriesMax !== this.checkpointer.grid.slotCount) {
            return this.openFinish("the data file was formatted for another KV capacity");
        }
        this.checkpointOp = superblock.u64(durable, SuperblockField.checkpointOp);
        this.checkpointCopy = superblock.u32(durable, SuperblockField.checkpointCopy);
        if (this.checkpointOp === 0) return this.openCheckpointCallback(true);
        this.stateMachine.reset();
        this.checkpointer.read(
            this.checkpointCopy,
            durable + SuperblockField.indexChecksum,
            durable + SuperblockField.sessionsChecksum,
            (readOk) => this.openCheckpointCallback(readOk),
        );
    }

    private openCheckpointCallback(ok: boolean): void {
        if (!ok && this.replicaCount === 1) {
            return this.openFinish("the checkpoint is corrupt and a single replica has no peer");
        }
        const blocksMissing = ok && this.checkpointer.grid.missingCount > 0;
        if (blocksMissing && this.replicaCount === 1) {
            return this.openFinish("a grid block is corrupt and a single replica has no peer");
        }
        if (!ok) this.openWithoutState();
        else if (blocksMissing) {
            // Blocks fail to read: fetched from peers (block repair) once open; until the image
            // is whole again the replica holds no state, as in openWithoutState.
            this.stateMissing = true;
        } else if (this.checkpointOp > 0) {
            const anchor = this.superblock.durable + SuperblockField.checkpointOpChecksum;
            this.checkpointer.snapshot(this.checkpointOp, anchor);
        }
        const solo = this.replicaCount === 1;
        this.journal.recover(this.cluster, solo, (recovered) =>
            this.openJournalCallback(recovered),
        );
    }

    private openJournalCallback(ok: boolean): void {
        if (!ok) return this.openFinish("the WAL could not be read");
        const durable = this.superblock.durable;
        this.view = this.superblock.u32(durable, SuperblockField.view);
        this.logView = this.superblock.u32(durable, SuperblockField.logView);
        this.viewDurable = this.view;
        this.logViewDurable = this.logView;
        this.commitMin = this.checkpointOp;
        this.commitMax = Math.max(
            this.checkpointOp,
            this.superblock.u64(durable, SuperblockField.commitMax),
        );
        copyU128(this, this.commitMinChecksum, durable + SuperblockField.checkpointOpChecksum);
        this.recoverLog(durable);
        if (this.replicaCount === 1 && !this.recoverSoloTail()) {
            return this.openFinish(
                "the WAL is corrupt and a single replica has no peer to repair it",
            );
        }
        this.openFinish(null);
        this.rejoin();
        if (this.checkpointer.grid.missingCount > 0) gridRepairStart(this);
        else if (this.stateMissing) sendRequestSync(this);
    }

    /**
     * The checkpoint the superblock names cannot be read (a bad sector, a corrupt copy): start
     * without state, at the checkpoint's op, and fetch that checkpoint (or a newer one) from a
     * peer by state sync. Until it is installed nothing executes, no request is taken and no
     * checkpoint is served; the WAL and the VSR state (view, log) are intact, so the replica
     * still acknowledges prepares and votes in view changes.
     */
    openWithoutState(): void {
        assert(this.checkpointOp > 0);
        assert(!this.syncing);
        this.stateMachine.reset();
        this.sessions.clear();
        this.stats.checkpointsUnreadable++;
        this.stateMissing = true;
        this.syncing = true;
        this.syncTargetOp = 0;
        this.syncOffset = 0;
        this.syncPeer = repairPeer(this);
    }

    /** Rebuilds the log from the recovered WAL and the superblock's log suffix. */
    private recoverLog(durable: number): void {
        const slotCount = this.journal.slotCount;
        const suffixCount = this.superblock.u32(durable, SuperblockField.viewHeadersCount);
        const suffix = durable + SuperblockField.viewHeaders;
        this.logViewOp = this.superblock.u64(durable, SuperblockField.logViewOp);
        this.journal.dropStaleFaultyHeaders(this.checkpointOp);
        const suffixHead = Math.max(this.checkpointOp, this.logViewOp);
        let head = this.checkpointOp;
        for (let op = this.checkpointOp + 1; op < this.checkpointOp + slotCount; op++) {
            if (!this.journal.hasHeader(op)) continue;
            const offset = this.journal.headerOffset(this.journal.slotOf(op));
            // Above the suffix, only ops prepared in log_view belong to the log: older ones were
            // truncated by a start_view (in memory) before the crash.
            if (op > suffixHead && headerView(this.memory, offset) !== this.logView) {
                this.journal.removeHeader(op);
                continue;
            }
            head = op;
        }
        for (let index = suffixCount - 1; index >= 0; index--) {
            const offset = suffix + index * headerSize;
            const op = prepareOp(this.memory, offset);
            if (op <= this.checkpointOp) continue;
            this.journal.setHeader(offset);
            this.journal.trust(op);
            head = Math.max(head, op);
        }
        // Faulty slots right above the head may hold prepares this replica acknowledged (a
        // corrupt head looks like a torn tail): keep them inside the log, neither vouched for
        // nor nacked, so a view change cannot truncate them on this replica's word alone.
        const limit = Math.min(
            head + this.config.pipelinePrepareQueueMax,
            this.checkpointOp + slotCount - 1,
        );
        while (
            head < limit &&
            !this.journal.hasHeader(head + 1) &&
            this.journal.isFaulty(head + 1)
        ) {
            head++;
        }
        // The log of log_view reached logViewOp when it was installed: ops up to it whose slots
        // lost them are faulty (unknown, never nacked), not absent.
        while (head < this.logViewOp && head < this.checkpointOp + slotCount - 1) {
            head++;
            if (!this.journal.hasHeader(head)) this.journal.markFaultyOp(head);
        }
        this.op = head;
        // A header known only from the superblock's suffix, whose WAL slot is intact but older,
        // was never durable here, so never acknowledged: nacking it is safe. A corrupt slot was
        // classified faulty by the journal (never nacked).
        // An op prepared in log_view came from that view's primary: it is in log_view's log.
        for (let op = head; op > this.checkpointOp; op--) {
            if (!this.journal.hasHeader(op)) continue;
            const offset = this.journal.headerOffset(this.journal.slotOf(op));
            if (headerView(this.memory, offset) === this.logView) this.journal.trust(op);
        }
        for (let op = head; op > this.checkpointOp; op--) {
            if (this.journal.isTrusted(op)) this.extendChain(op);
            if (!this.journal.hasHeader(op)) continue;
            const offset = this.journal.headerOffset(this.journal.slotOf(op));
            this.prepareTimestampUs = Math.max(
                this.prepareTimestampUs,
                readU64(this.memory, offset + Prepare.timestamp),
            );
        }
    }

    /**
     * One replica commits an op only once it and every op before it are durable, so the log
     * ends at its first unreadable op: ops after it were never committed (a torn tail), unless
     * the superblock already recorded them as committed, which means the WAL is corrupt.
     */
    private recoverSoloTail(): boolean {
        const committed = this.superblock.u64(this.superblock.durable, SuperblockField.commitMax);
        for (let op = this.commitMin + 1; op <= this.op; op++) {
            if (this.journal.isTrusted(op) && this.journal.hasPrepare(op)) continue;
            if (op <= committed) return false;
            for (let k = this.op; k >= op; k--) this.journal.removeHeader(k);
            this.op = op - 1;
            break;
        }
        this.commitMax = this.op;
        return true;
    }

    /** After recovery: a solo replica resumes; others rejoin through a view change. */
    private rejoin(): void {
        if (this.replicaCount === 1) {
            // A restart bumps the view: an op truncated as torn may be prepared again, and must
            // never be in the same view as the prepare it replaces.
            this.view++;
            this.logView = this.view;
            this.logViewOp = this.op;
            this.status = Status.normal;
            this.enterNormalTimeouts();
            this.superblockFlush();
            this.commitJournal();
            return;
        }
        const fresh = this.view === 0 && this.op === 0 && this.checkpointOp === 0;
        if (fresh) {
            this.status = Status.normal;
            this.enterNormalTimeouts();
            return;
        }
        if (this.primaryIndex(this.view) === this.replica) {
            // A primary must not resume its own view: it may have lost prepares it announced.
            this.status = Status.viewChange;
            transitionToViewChange(this, this.view + 1);
            return;
        }
        // A backup asks the primary of its view for start_view (it answers a do_view_change).
        this.status = Status.viewChange;
        this.stopAllTimeouts();
        this.viewChangeStatusTimeout.start();
        this.doViewChangeMessageTimeout.start();
        this.repairTimeout.startWithJitter();
        sendDoViewChange(this);
    }

    /** Releases every pool message the replica holds: the process (or simulated node) is gone. */
    shutdown(): void {
        this.journal.releaseAll();
        pipelineClear(this);
        requestQueueClear(this);
        doViewChangesClear(this);
        this.sessions.releaseAll();
        this.checkpointer.releaseAll();
        this.stopAllTimeouts();
        this.clock.pingTimeout.stop();
    }

    // ---------------------------------------------------------------------------------------
    // The tick loop: every timeout is a counter advanced here and fired from one table.

    tick(): void {
        this.ticks++;
        if (this.status === Status.recovering) return;
        this.tickClock();
        this.journal.tick();
        this.prepareTimeout.tick();
        this.commitMessageTimeout.tick();
        this.normalHeartbeatTimeout.tick();
        this.startViewChangeWindowTimeout.tick();
        this.startViewChangeMessageTimeout.tick();
        this.viewChangeStatusTimeout.tick();
        this.doViewChangeMessageTimeout.tick();
        this.repairTimeout.tick();
        this.primaryAbdicateTimeout.tick();

        if (this.prepareTimeout.fired()) this.onPrepareTimeout();
        if (this.commitMessageTimeout.fired()) this.onCommitMessageTimeout();
        if (this.normalHeartbeatTimeout.fired()) this.onNormalHeartbeatTimeout();
        if (this.startViewChangeWindowTimeout.fired()) this.onStartViewChangeWindowTimeout();
        if (this.startViewChangeMessageTimeout.fired()) this.onStartViewChangeMessageTimeout();
        if (this.viewChangeStatusTimeout.fired()) this.onViewChangeStatusTimeout();
        if (this.doViewChangeMessageTimeout.fired()) this.onDoViewChangeMessageTimeout();
        if (this.repairTimeout.fired()) this.onRepairTimeout();
        if (this.primaryAbdicateTimeout.fired()) this.onPrimaryAbdicateTimeout();
    }

    enterNormalTimeouts(): void {
        this.stopAllTimeouts();
        this.repairTimeout.startWithJitter();
        if (this.primary) {
            this.commitMessageTimeout.start();
            if (this.pipelineCount > 0) {
                this.prepareTimeout.start();
                this.primaryAbdicateTimeout.start();
            }
        } else {
            this.normalHeartbeatTimeout.startWithJitter();
        }
    }

    stopAllTimeouts(): void {
        this.prepareTimeout.stop();
        this.commitMessageTimeout.stop();
        this.normalHeartbeatTimeout.stop();
        this.startViewChangeWindowTimeout.stop();
        this.startViewChangeMessageTimeout.stop();
        this.viewChangeStatusTimeout.stop();
        this.doViewChangeMessageTimeout.stop();
        this.repairTimeout.stop();
        this.primaryAbdicateTimeout.stop();
    }

    private onPrepareTimeout(): void {
        assert(this.status === Status.normal && this.primary);
        if (this.pipelineCount === 0) {
            this.prepareTimeout.stop();
            return;
        }
        // Re-send every prepare in flight to each replica that has not acknowledged it.
        for (let index = 0; index < this.pipelineCount; index++) {
            const slot = (this.pipelineHead + index) % this.pipeline.length;
            const prepare = this.pipeline[slot] ?? null;
            assert(prepare !== null);
            const oks = this.pipelineOks[slot] ?? 0;
            for (let replica = 0; replica < this.replicaCount; replica++) {
                if (replica === this.replica || (oks & (1 << replica)) !== 0) continue;
                this.bus.sendToReplica(replica, prepare);
            }
        }
        this.prepareTimeout.backoff();
    }

    private onCommitMessageTimeout(): void {
        assert(this.status === Status.normal && this.primary);
        this.commitMessageTimeout.reset();
        // An abdicating primary goes quiet so that the backups elect a primary that can commit.
        if (this.abdicating) return;
        const message = this.acquireHeader(Command.commit);
        const base = message.offset;
        copyU128(this, base + Commit.commitChecksum, this.commitMinChecksum);
        // The executed op: its checksum is known (commitMax may run ahead during a checkpoint).
        assert(this.commitMin <= this.commitMax);
        writeU64(this.memory, base + Commit.commit, this.commitMin);
        this.broadcast(message);
    }

    private onNormalHeartbeatTimeout(): void {
        assert(this.status === Status.normal && !this.primary);
        this.normalHeartbeatTimeout.reset();
        voteStartViewChange(this);
    }

    private onStartViewChangeWindowTimeout(): void {
        // Votes expire, except this replica's own: an old quorum must not trigger a view change.
        this.startViewChangeWindowTimeout.stop();
        this.startViewChangeVotes &= 1 << this.replica;
    }

    private onStartViewChangeMessageTimeout(): void {
        this.startViewChangeMessageTimeout.reset();
        if ((this.startViewChangeVotes & (1 << this.replica)) === 0) {
            this.startViewChangeMessageTimeout.stop();
            return;
        }
        sendStartViewChange(this, this.view + 1);
    }

    private onViewChangeStatusTimeout(): void {
        assert(this.status === Status.viewChange);
        this.viewChangeStatusTimeout.reset();
        // The view change is taking too long (its primary may be down): vote for the next one.
        voteStartViewChange(this);
    }

    private onDoViewChangeMessageTimeout(): void {
        assert(this.status === Status.viewChange);
        this.doViewChangeMessageTimeout.reset();
        if (this.primary) {
            if (this.viewChangeLogInstalled) return;
            // Nudge the backups that have not sent their do_view_change yet, and refresh this
            // replica's own (prepares repaired since may now be present).
            sendStartViewChange(this, this.view);
            sendDoViewChange(this);
            return;
        }
        sendDoViewChange(this);
    }

    private onRepairTimeout(): void {
        this.repairTimeout.startWithJitter();
        if (this.syncing) syncRetry(this);
        if (this.gridRepair.repairing) gridRepairTimeout(this);
        repair(this);
        repairReplies(this);
    }

    private onPrimaryAbdicateTimeout(): void {
        assert(this.status === Status.normal && this.primary);
        this.primaryAbdicateTimeout.stop();
        if (this.pipelineCount > 0) this.abdicating = true;
    }

    // ---------------------------------------------------------------------------------------
    // Receiving.

    /**
     * Entry point for every message. The caller (the bus) keeps its reference for the duration
     * of the call; the replica takes its own reference for anything it keeps.
     */
    onMessage(message: Message): void {
        assert(this.pool.owns(message));
        assert(message.references > 0);
        this.stats.messagesReceived++;
        if (this.status === Status.recovering) return;
        if (!this.valid(message)) {
            this.stats.messagesInvalid++;
            return;
        }
        const base = message.offset;
        switch (headerCommand(this.memory, base)) {
            case Command.request:
                return this.onRequest(message);
            case Command.prepare:
                return this.onPrepare(message);
            case Command.prepareOk:
                return this.onPrepareOk(message);
            case Command.commit:
                return this.onCommit(message);
            case Command.startViewChange:
                return onStartViewChange(this, message);
            case Command.doViewChange:
                return onDoViewChange(this, message);
            case Command.startView:
                return onStartView(this, message);
            case Command.requestHeaders:
                return onRequestHeaders(this, message);
            case Command.requestPrepare:
                return onRequestPrepare(this, message);
            case Command.headers:
                return onHeaders(this, message);
            case Command.requestSync:
                return onRequestSync(this, message);
            case Command.sync:
                return onSync(this, message);
            case Command.ping:
                return this.onPing(message);
            case Command.pong:
                return this.onPong(message);
            case Command.requestReply:
                return onRequestReply(this, message);
            case Command.reply:
                return onReplyRepair(this, message);
            case Command.requestBlock:
                return this.gridRepair.onRequestBlock(message);
            case Command.block:
                return this.gridRepair.onBlock(message);
            default:
                // Evictions are for clients: a replica ignores them.
                this.stats.messagesInvalid++;
                return;
        }
    }

    private valid(message: Message): boolean {
        const base = message.offset;
        if (!validHeaderChecksum(this.bytes, base)) return false;
        if (invalidHeader(this.memory, base, this.config.messageSizeMax) !== null) return false;
        if (this.memory.getUint32(base + Frame.cluster, true) !== this.cluster) return false;
        if (!validBodyChecksum(this.bytes, base, headerSizeOf(this.memory, base))) return false;
        const command = headerCommand(this.memory, base);
        if (command !== Command.request && headerReplica(this.memory, base) >= this.replicaCount) {
            return false;
        }
        if (command === Command.prepare && prepareOp(this.memory, base) > 0) {
            if (invalidBatch(this.memory, base) !== null) return false;
        }
        return true;
    }

    // ---------------------------------------------------------------------------------------
    // Normal operation: requests, prepares, prepare_oks, commits, replies.

    private onRequest(message: Message): void {
        // Without state (awaiting state sync) the client table is unknown: take nothing.
        if (this.status !== Status.normal || !this.primary || this.stateMissing) {
            this.stats.requestsDropped++;
            return;
        }
        const base = message.offset;
        const clientOffset = base + Request.client;
        const entry = this.sessions.find(clientOffset);
        if (this.memory.getUint8(base + Request.operation) === Operation.register) {
            if (entry >= 0) {
                // Clients number their register attempts upwards: an older attempt is a stale
                // duplicate (drop it), the same one is answered again while its reply is the
                // latest, and only a newer one (the client lost its session) starts a session.
                const attempt = this.memory.getUint32(base + Request.request, true);
                const stored = this.sessions.registerAttempt(entry);
                if (attempt < stored) return this.dropRequest();
                if (attempt === stored) {
                    const same = this.sessions.registeredBy(entry, base + Frame.checksum);
                    if (same && this.sessions.request(entry) === 0) this.resendReply(entry);
                    return;
                }
            }
            return this.enqueueRequest(message);
        }
        const session = readU64(this.memory, base + Request.session);
        if (entry < 0) return this.sendEviction(clientOffset, session, EvictionReason.noSession);
        const sessionStored = this.sessions.session(entry);
        if (session < sessionStored) {
            return this.sendEviction(clientOffset, session, EvictionReason.sessionTooLow);
        }
        if (session > sessionStored) return this.dropRequest();
        const request = this.memory.getUint32(base + Request.request, true);
        const requestStored = this.sessions.request(entry);
        if (request === requestStored) {
            if (!this.faults.duplicateReexecuted) return this.resendReplyIfSame(entry, message);
        } else if (request !== requestStored + 1) {
            return this.dropRequest();
        }
        this.enqueueRequest(message);
    }

    private dropRequest(): void {
        this.stats.requestsDropped++;
    }

    private enqueueRequest(message: Message): void {
        const clientOffset = message.offset + Request.client;
        if (this.requestInFlight(clientOffset)) return this.dropRequest();
        if (this.requestQueueCount === this.requestQueue.length) return this.dropRequest();
        const slot = (this.requestQueueHead + this.requestQueueCount) % this.requestQueue.length;
        assert(this.requestQueue[slot] === null);
        this.requestQueue[slot] = this.pool.ref(message);
        this.requestQueueCount++;
        this.primaryPipelinePrepare();
    }

    /** True when a request of this client waits in the queue or sits in an uncommitted prepare. */
    private requestInFlight(clientOffset: number): boolean {
        for (let index = 0; index < this.requestQueueCount; index++) {
            const queued =
                this.requestQueue[(this.requestQueueHead + index) % this.requestQueue.length];
            assert(queued !== null && queued !== undefined);
            if (u128Equal(this.memory, queued.offset + Request.client, clientOffset)) return true;
        }
        for (let index = 0; index < this.pipelineCount; index++) {
            const prepare = this.pipeline[(this.pipelineHead + index) % this.pipeline.length];
            assert(prepare !== null && prepare !== undefined);
            const requestCount = this.memory.getUint32(prepare.offset + Prepare.requestCount, true);
            let cursor = prepare.offset + headerSize;
            for (let entry = 0; entry < requestCount; entry++) {
                if (u128Equal(this.memory, cursor + BatchEntry.client, clientOffset)) return true;
                cursor +=
                    batchEntryHeaderSize +
                    this.memory.getUint32(cursor + BatchEntry.eventCount, true) * kvEventSize;
            }
        }
        return false;
    }

    /**
     * Prepares of the pipeline not yet durable here. Group commit: while
     * config.preparesBeingWrittenMax prepares are being written, new requests wait in the queue
     * and the next prepare carries them all, so a disk whose flushes are the bottleneck (or
     * whose writes cost the CPU) writes fewer, fuller prepares.
     */
    private pipelineDurableBacklog(): number {
        let backlog = 0;
        for (let op = this.commitMax + 1; op <= this.op; op++) {
            if (!this.journal.isDurable(op)) backlog++;
        }
        return backlog;
    }

    /** Packs queued requests into prepares while the pipeline and the journal window have room. */
    primaryPipelinePrepare(): void {
        while (
            this.status === Status.normal &&
            this.primary &&
            this.logViewDurable === this.view &&
            !this.startViewPending &&
            this.requestQueueCount > 0 &&
            this.pipelineCount < this.pipeline.length &&
            this.pipelineDurableBacklog() < this.config.preparesBeingWrittenMax &&
            this.op + 1 < this.windowOpMax() &&
            this.journal.prepareCacheRoom()
        ) {
            const prepare = this.pool.acquire();
            const requestCount = this.packRequests(prepare);
            assert(requestCount > 0);
            this.stampPrepare(prepare, requestCount);
            this.journal.setHeader(prepare.offset);
            this.op++;
            const stored = this.journal.putPrepare(prepare);
            assert(stored); // prepareCacheRoom() said it would be taken.
            this.journal.trust(this.op);
            const slot = (this.pipelineHead + this.pipelineCount) % this.pipeline.length;
            this.pipeline[slot] = prepare; // The pipeline takes over the acquire's reference.
            this.pipelineOks[slot] = 0;
            this.pipelineCount++;
            this.stats.prepares++;
            this.stats.requestsPrepared += requestCount;
            this.prepareRequestCounts[bucketIndex(prepareRequestBounds, requestCount)]! += 1;
            this.broadcast(prepare, false);
            if (!this.prepareTimeout.running) this.prepareTimeout.start();
            if (!this.primaryAbdicateTimeout.running) this.primaryAbdicateTimeout.start();
        }
    }

    /** Copies as many queued requests as fit into the prepare's body; returns how many. */
    private packRequests(prepare: Message): number {
        const limit = prepare.offset + this.config.messageSizeMax;
        let cursor = prepare.offset + headerSize;
        let count = 0;
        while (this.requestQueueCount > 0) {
            const request = this.requestQueue[this.requestQueueHead] ?? null;
            assert(request !== null);
            const base = request.offset;
            const eventsSize = headerSizeOf(this.memory, base) - headerSize;
            if (cursor + batchEntryHeaderSize + eventsSize > limit) break;
            this.bytes.fill(0, cursor, cursor + batchEntryHeaderSize);
            copyU128(this, cursor + BatchEntry.client, base + Request.client);
            copyU128(this, cursor + BatchEntry.requestChecksum, base + Frame.checksum);
            writeU64(
                this.memory,
                cursor + BatchEntry.session,
                readU64(this.memory, base + Request.session),
            );
            this.memory.setUint32(
                cursor + BatchEntry.request,
                this.memory.getUint32(base + Request.request, true),
                true,
            );
            this.memory.setUint8(
                cursor + BatchEntry.operation,
                this.memory.getUint8(base + Request.operation),
            );
            this.memory.setUint32(cursor + BatchEntry.eventCount, eventsSize / kvEventSize, true);
            this.bytes.copyWithin(
                cursor + batchEntryHeaderSize,
                base + headerSize,
                base + headerSize + eventsSize,
            );
            cursor += batchEntryHeaderSize + eventsSize;
            count++;
            this.requestQueue[this.requestQueueHead] = null;
            this.requestQueueHead = (this.requestQueueHead + 1) % this.requestQueue.length;
            this.requestQueueCount--;
            this.pool.unref(request);
        }
        this.memory.setUint32(prepare.offset + Frame.size, cursor - prepare.offset, true);
        return count;
    }

    private stampPrepare(prepare: Message, requestCount: number): void {
        const base = prepare.offset;
        // The parent is the head's checksum (after recovery the head may be the checkpoint op,
        // known only by the checksum the superblock recorded).
        const parent = this.journal.hasHeader(this.op)
            ? this.journal.headerOffset(this.journal.slotOf(this.op)) + Frame.checksum
            : this.commitMinChecksum;
        assert(this.journal.hasHeader(this.op) || this.op === this.commitMin);
        this.stampTimestamp();
        const size = headerSizeOf(this.memory, base); // Set by packRequests; setFrame resets it.
        this.setFrame(base, Command.prepare);
        this.memory.setUint32(base + Frame.size, size, true);
        copyU128(this, base + Prepare.parent, parent);
        writeU64(this.memory, base + Prepare.op, this.op + 1);
        writeU64(this.memory, base + Prepare.commit, this.commitMax);
        // Written as halves in place: passing a value above 2^31 to a call V8 does not inline
        // boxes it (a heap number per prepare, measured by test/sim/zero_gc.test.ts).
        const timestampUs = this.prepareTimestampUs;
        this.memory.setUint32(base + Prepare.timestamp, timestampUs >>> 0, true);
        this.memory.setUint32(
            base + Prepare.timestamp + 4,
            Math.floor(timestampUs / 0x1_0000_0000),
            true,
        );
        this.memory.setUint32(base + Prepare.requestCount, requestCount, true);
        this.memory.setUint8(base + Prepare.operation, Operation.batch);
        setChecksums(this.bytes, this.memory, base);
        assert(invalidHeader(this.memory, base, this.config.messageSizeMax) === null);
        assert(invalidBatch(this.memory, base) === null);
    }

    private onPrepare(message: Message): void {
        const base = message.offset;
        const op = prepareOp(this.memory, base);
        if (op <= this.commitMin) return; // Committed here already (a duplicate or a late repair).
        if (this.repairPrepare(message, op)) return;
        const view = headerView(this.memory, base);
        if (view > this.view) return jumpToView(this, view);
        if (view < this.view || this.status !== Status.normal || this.primary) return;
        if (headerReplica(this.memory, base) !== this.primaryIndex(this.view)) return;
        this.normalHeartbeatTimeout.reset();
        this.startViewChangeVotes &= ~(1 << this.replica);
        if (op >= this.windowOpMax()) {
            // Accepting it would overwrite a slot this replica has not executed yet.
            this.stats.windowFull++;
            syncRequest(this, this.primaryIndex(this.view));
            return;
        }
        if (op <= this.op) {
            // An op of this view from its primary is trusted wherever it lands (a late packet).
            if (!this.journal.isTrusted(op)) this.installTrusted(message, op);
        } else {
            this.appendPrepare(message, op);
        }
        if (this.faults.prepareOkBeforeDurable) this.sendPrepareOk(op);
        const commit = readU64(this.memory, base + Prepare.commit);
        this.advanceCommitMax(this.faults.backupCommitsPastPrimary ? this.op : commit);
        this.commitJournal();
    }

    /** A new head from this view's primary: extends the log (possibly across a gap). */
    private appendPrepare(message: Message, op: number): void {
        assert(op > this.op);
        this.op = op;
        this.installTrusted(message, op);
    }

    /** Stores a prepare known to belong to the log, trusts it, and chains trust below it. */
    private installTrusted(message: Message, op: number): void {
        assert(op > this.commitMin && op <= this.op);
        this.journal.setHeader(message.offset);
        this.journal.putPrepare(message);
        this.journal.trust(op);
        this.extendChain(op);
    }

    /**
     * A prepare that fills a hole: its header is known (or it is the next link down the chain,
     * or the head a commit heartbeat announced). Returns true when it was consumed as repair.
     */
    private repairPrepare(message: Message, op: number): boolean {
        const checksum = message.offset + Frame.checksum;
        if (this.journal.hasHeaderWithChecksum(op, checksum)) {
            if (!this.journal.hasPrepare(op)) {
                if (this.journal.putPrepare(message)) this.stats.preparesRepaired++;
                this.executeCommitted();
                primaryViewChangeProgress(this);
            } else if (this.journal.isDurable(op)) {
                // The primary re-sent it: our prepare_ok was lost (or sent before the op was
                // chained), so acknowledge again.
                this.journalDurableCallback(op);
            }
            return true;
        }
        if (
            op < this.op &&
            !this.journal.isTrusted(op) &&
            this.journal.isTrusted(op + 1) &&
            this.parentOfEquals(op + 1, checksum)
        ) {
            this.installTrusted(message, op);
            this.stats.preparesRepaired++;
            this.executeCommitted();
            primaryViewChangeProgress(this);
            return true;
        }
        if (
            this.status === Status.normal &&
            op === this.headTargetOp &&
            op > this.op &&
            op < this.windowOpMax() &&
            u128Equal(this.memory, checksum, this.headTargetChecksum)
        ) {
            this.appendPrepare(message, op);
            this.headTargetOp = 0;
            this.stats.preparesRepaired++;
            this.commitJournal();
            return true;
        }
        return false;
    }

    /** True when the header of `op` is present and its parent is the checksum at the offset. */
    parentOfEquals(op: number, checksumOffset: number): boolean {
        if (!this.journal.hasHeader(op)) return false;
        const offset = this.journal.headerOffset(this.journal.slotOf(op));
        return u128Equal(this.memory, offset + Prepare.parent, checksumOffset);
    }

    /** From the trusted op `op` down: trusts each header that is the parent of the one above. */
    extendChain(op: number): void {
        assert(this.journal.isTrusted(op));
        for (let below = op - 1; below > this.commitMin; below--) {
            if (this.journal.isTrusted(below) || !this.journal.hasHeader(below)) return;
            const offset = this.journal.headerOffset(this.journal.slotOf(below));
            if (!this.parentOfEquals(below + 1, offset + Frame.checksum)) return;
            this.journal.trust(below);
        }
    }

    /** Ops beyond this would overwrite a WAL slot that no durable checkpoint covers yet. */
    windowOpMax(): number {
        return this.checkpointOp + this.journal.slotCount;
    }

    advanceCommitMax(commit: number): void {
        if (commit > this.commitMax) this.commitMax = commit;
    }

    journalDurableCallback(op: number): void {
        if (this.status !== Status.normal) return;
        if (this.logViewDurable !== this.view) return; // Acknowledge only in a durable view.
        if (!this.journal.isTrusted(op) || op <= this.commitMax || op > this.op) return;
        if (this.primary) {
            this.primaryCountOk(
                op,
                this.replica,
                this.journal.headerOffset(this.journal.slotOf(op)),
            );
            this.primaryPipelinePrepare(); // A write finished: the queue may go out now.
        } else {
            this.sendPrepareOk(op);
        }
    }

    sendPrepareOk(op: number): void {
        assert(!this.primary);
        if (this.logViewDurable !== this.view) return; // Sent again once the view is durable.
        assert(this.journal.isDurable(op) || this.faults.prepareOkBeforeDurable);
        const header = this.journal.headerOffset(this.journal.slotOf(op));
        const message = this.acquireHeader(Command.prepareOk);
        const base = message.offset;
        copyU128(this, base + PrepareOk.prepareChecksum, header + Frame.checksum);
        writeU64(this.memory, base + PrepareOk.op, op);
        writeU64(this.memory, base + PrepareOk.commitMin, this.commitMin);
        this.sendTo(this.primaryIndex(this.view), message);
    }

    private onPrepareOk(message: Message): void {
        const base = message.offset;
        if (this.status !== Status.normal || !this.primary) return;
        if (headerView(this.memory, base) !== this.view) return;
        const op = readU64(this.memory, base + PrepareOk.op);
        this.primaryCountOk(op, headerReplica(this.memory, base), base + PrepareOk.prepareChecksum);
    }

    /** Counts an ack of the pipeline prepare `op` whose checksum is at checksumOffset. */
    private primaryCountOk(op: number, replica: number, checksumOffset: number): void {
        assert(this.primary);
        if (op <= this.commitMax || op > this.commitMax + this.pipelineCount) return;
        const slot = (this.pipelineHead + (op - this.commitMax - 1)) % this.pipeline.length;
        const prepare = this.pipeline[slot] ?? null;
        assert(prepare !== null);
        assert(prepareOp(this.memory, prepare.offset) === op);
        if (!u128Equal(this.memory, prepare.offset + Frame.checksum, checksumOffset)) return;
        this.pipelineOks[slot] = (this.pipelineOks[slot] ?? 0) | (1 << replica);
        this.primaryCommitPipeline();
    }

    primaryCommitPipeline(): void {
        if (this.logViewDurable !== this.view) return;
        let progressed = false;
        // Execution may lag commitMax (a checkpoint in flight, or a replay after a restart).
        while (this.pipelineCount > 0 && !this.checkpointing && this.commitMin === this.commitMax) {
            const oks = this.pipelineOks[this.pipelineHead] ?? 0;
            let quorum = this.faults.commitWithoutQuorum ? 1 : this.quorums.replication;
            if (this.faults.replicationQuorumOffByOne) quorum--;
            if (popcount(oks) < quorum) break;
            const prepare = this.pipeline[this.pipelineHead] ?? null;
            assert(prepare !== null);
            if (!this.stagingAdmits(prepare)) break; // The checkpoint's completion resumes.
            assert(prepareOp(this.memory, prepare.offset) === this.commitMax + 1);
            this.commitMax++;
            this.commitJournal();
            assert(this.commitMin === this.commitMax);
            this.pipeline[this.pipelineHead] = null;
            this.pipelineOks[this.pipelineHead] = 0;
            this.pipelineHead = (this.pipelineHead + 1) % this.pipeline.length;
            this.pipelineCount--;
            this.pool.unref(prepare);
            progressed = true;
        }
        if (!progressed) return;
        this.abdicating = false;
        if (this.pipelineCount === 0) {
            this.prepareTimeout.stop();
            this.primaryAbdicateTimeout.stop();
        } else {
            this.prepareTimeout.start();
            this.primaryAbdicateTimeout.start();
        }
        this.primaryPipelinePrepare();
    }

    private onCommit(message: Message): void {
        const base = message.offset;
        const view = headerView(this.memory, base);
        if (view > this.view) return jumpToView(this, view);
        if (view < this.view || this.status !== Status.normal || this.primary) return;
        if (headerReplica(this.memory, base) !== this.primaryIndex(view)) return;
        this.normalHeartbeatTimeout.reset();
        this.startViewChangeVotes &= ~(1 << this.replica);
        const commit = readU64(this.memory, base + Commit.commit);
        this.advanceCommitMax(commit);
        if (commit > this.op) {
            // This replica lags the head: fetch the committed op to anchor the chain again.
            this.headTargetOp = commit;
            copyU128(this, this.headTargetChecksum, base + Commit.commitChecksum);
        }
        this.commitJournal();
    }

    /** Executes committed ops in order while their prepares are present and trusted. */
    /**
     * Executes what is committed, then lets a primary commit its pipeline: acks that came in
     * while execution lagged (a replay reading prepares back from disk, a repaired prepare)
     * found primaryCommitPipeline waiting for execution, and no further ack may ever come to
     * call it again (a solo replica has no peers; every backup may have acked already).
     * Seed 1588: a solo primary replaying after a restart prepared 4 ops meanwhile, acked them
     * itself, and never committed them.
     */
    executeCommitted(): void {
        this.commitJournal();
        if (this.status === Status.normal && this.primary) this.primaryCommitPipeline();
    }

    commitJournal(): void {
        while (
            this.commitMin < this.commitMax &&
            this.commitMin < this.op &&
            !this.checkpointing &&
            !this.syncing &&
            !this.stateMissing
        ) {
            const op = this.commitMin + 1;
            if (!this.journal.isTrusted(op)) return;
            const prepare = this.pipelinePrepareOf(op) ?? this.journal.readPrepare(op, -1);
            if (prepare === null) {
                // On disk (a read is on its way: journalReadCallback resumes) or missing
                // (repair fetches it). Read the next few committed ones meanwhile (a few: this
                // runs per message, and the window spans thousands of ops).
                const ahead = op + this.config.journalReadsMax;
                this.journal.prefetch(op + 1, Math.min(this.commitMax, this.op, ahead));
                return;
            }
            // The chain links this op to the last one executed; anything else is divergence.
            assert(u128Equal(this.memory, prepare.offset + Prepare.parent, this.commitMinChecksum));
            // The checkpoint being written saves the slots it may change first; if it might
            // lack room, execution waits for its blocks (checkpointWriteCallback resumes).
            if (!this.stagingAdmits(prepare)) return;
            this.commitPrepare(prepare, op);
            this.commitMin = op;
            copyU128(this, this.commitMinChecksum, prepare.offset + Frame.checksum);
            this.stats.commits++;
            if (this.hooks !== null) this.hooks.onCommit(this.replica, op, prepare);
            if (op % this.config.checkpointOps === 0) {
                if (this.checkpointInFlight) this.checkpointing = true;
                else this.checkpointStart();
            }
        }
    }

    /**
     * The primary's pipeline holds its uncommitted prepares: execution takes them from there,
     * never waiting for a read of one the journal's cache dropped (the primary commits its
     * pipeline synchronously).
     */
    private pipelinePrepareOf(op: number): Message | null {
        if (!this.primary || this.pipelineCount === 0) return null;
        const head = this.pipeline[this.pipelineHead] ?? null;
        assert(head !== null);
        const index = op - prepareOp(this.memory, head.offset);
        if (index < 0 || index >= this.pipelineCount) return null;
        const prepare = this.pipeline[(this.pipelineHead + index) % this.pipeline.length] ?? null;
        assert(prepare !== null);
        if (!this.journal.hasHeaderWithChecksum(op, prepare.offset + Frame.checksum)) return null;
        return prepare;
    }

    /**
     * True when the checkpoint being written can save (copy-on-write: grid.ts) every slot that
     * executing `prepare` may change. The bound is computed only when the staging area could
     * not take every slot still pending anyway.
     */
    private stagingAdmits(prepare: Message): boolean {
        const grid = this.checkpointer.grid;
        if (grid.pendingUnsaved <= grid.stagingRoom) return true;
        const base = prepare.offset;
        const requestCount = this.memory.getUint32(base + Prepare.requestCount, true);
        let events = 0;
        let cursor = base + headerSize;
        for (let index = 0; index < requestCount; index++) {
            const eventCount = this.memory.getUint32(cursor + BatchEntry.eventCount, true);
            if (this.memory.getUint8(cursor + BatchEntry.operation) !== Operation.register) {
                events += eventCount;
            }
            cursor += batchEntryHeaderSize + eventCount * kvEventSize;
        }
        let slots = 0;
        cursor = base + headerSize;
        for (let index = 0; index < requestCount; index++) {
            const eventCount = this.memory.getUint32(cursor + BatchEntry.eventCount, true);
            if (this.memory.getUint8(cursor + BatchEntry.operation) !== Operation.register) {
                const input = cursor + batchEntryHeaderSize;
                slots += this.stateMachine.slotsTouchedMax(this.bytes, input, eventCount, events);
            }
            cursor += batchEntryHeaderSize + eventCount * kvEventSize;
        }
        return grid.admits(slots);
    }

    /** Executes every request batched in the prepare and records (and sends) each reply. */
    private commitPrepare(prepare: Message, op: number): void {
        const base = prepare.offset;
        const requestCount = this.memory.getUint32(base + Prepare.requestCount, true);
        let cursor = base + headerSize;
        for (let index = 0; index < requestCount; index++) {
            const eventCount = this.memory.getUint32(cursor + BatchEntry.eventCount, true);
            if (this.memory.getUint8(cursor + BatchEntry.operation) === Operation.register) {
                this.commitRegister(cursor, op);
            } else {
                this.commitEvents(cursor, op, eventCount);
            }
            cursor += batchEntryHeaderSize + eventCount * kvEventSize;
        }
        assert(cursor === base + headerSizeOf(this.memory, base));
    }

    private commitRegister(entryOffset: number, op: number): void {
        const clientOffset = entryOffset + BatchEntry.client;
        let entry = this.sessions.find(clientOffset);
        if (entry >= 0) {
            this.sessions.evict(entry); // A client registering again starts a new session.
        } else {
            entry = this.sessions.evictionCandidate();
            if (!this.sessions.free(entry)) {
                this.stats.evictions++;
                if (this.status === Status.normal && this.primary) {
                    const evicted = this.acquireHeader(Command.eviction);
                    this.sessions.writeClientId(entry, evicted.offset + Eviction.client);
                    writeU64(
                        this.memory,
                        evicted.offset + Eviction.session,
                        this.sessions.session(entry),
                    );
                    this.sendEvictionMessage(evicted, EvictionReason.noSession);
                }
                this.sessions.evict(entry);
            }
        }
        const reply = this.buildReply(entryOffset, op, op, 0);
        this.sessions.register(
            entry,
            clientOffset,
            entryOffset + BatchEntry.requestChecksum,
            this.memory.getUint32(entryOffset + BatchEntry.request, true),
            op,
            reply,
        );
        this.sendReplyAndRelease(reply);
    }

    private commitEvents(entryOffset: number, op: number, eventCount: number): void {
        const entry = this.sessions.find(entryOffset + BatchEntry.client);
        const session = readU64(this.memory, entryOffset + BatchEntry.session);
        const request = this.memory.getUint32(entryOffset + BatchEntry.request, true);
        // The session may have been evicted (or replaced) between prepare and commit: every
        // replica skips the request alike, and the client learns of it when it retries.
        if (entry < 0 || this.sessions.session(entry) !== session) return;
        const requestStored = this.sessions.request(entry);
        const duplicate = this.faults.duplicateReexecuted && request <= requestStored;
        if (request !== requestStored + 1 && !duplicate) return;
        const reply = this.buildReply(entryOffset, op, session, eventCount * kvResultSize);
        const written = this.stateMachine.commit(
            this.bytes,
            entryOffset + batchEntryHeaderSize,
            eventCount,
            this.bytes,
            reply.offset + headerSize,
        );
        assert(written === eventCount * kvResultSize);
        setChecksums(this.bytes, this.memory, reply.offset);
        this.sessions.update(entry, request, op, reply);
        this.stats.eventsCommitted += eventCount;
        this.sendReplyAndRelease(reply);
    }

    /** A reply header for the batch entry; the caller fills the body and sets the checksums. */
    private buildReply(
        entryOffset: number,
        op: number,
        session: number,
        bodySize: number,
    ): Message {
        const reply = this.acquireHeader(Command.reply);
        const base = reply.offset;
        this.memory.setUint32(base + Frame.size, headerSize + bodySize, true);
        copyU128(this, base + Reply.requestChecksum, entryOffset + BatchEntry.requestChecksum);
        copyU128(this, base + Reply.client, entryOffset + BatchEntry.client);
        writeU64(this.memory, base + Reply.op, op);
        writeU64(this.memory, base + Reply.commit, op);
        writeU64(this.memory, base + Reply.session, session);
        this.memory.setUint32(
            base + Reply.request,
            this.memory.getUint32(entryOffset + BatchEntry.request, true),
            true,
        );
        this.memory.setUint8(
            base + Reply.operation,
            this.memory.getUint8(entryOffset + BatchEntry.operation),
        );
        if (bodySize === 0) setChecksums(this.bytes, this.memory, base);
        return reply;
    }

    private sendReplyAndRelease(reply: Message): void {
        if (this.status === Status.normal && this.primary) this.bus.sendToClient(reply);
        this.pool.unref(reply);
    }

    private resendReply(entry: number): void {
        const reply = this.sessions.reply(entry);
        if (reply === null) return replyRepairRequest(this, entry);
        this.bus.sendToClient(reply);
    }

    private resendReplyIfSame(entry: number, request: Message): void {
        const reply = this.sessions.reply(entry);
        // The request committed but its reply was lost from disk: never execute it again; fetch
        // the reply from a peer (it goes to the client when it arrives, and answers the retry).
        if (reply === null) return replyRepairRequest(this, entry);
        if (
            !u128Equal(
                this.memory,
                reply.offset + Reply.requestChecksum,
                request.offset + Frame.checksum,
            )
        ) {
            return this.dropRequest();
        }
        this.bus.sendToClient(reply);
    }

    private sendEviction(clientOffset: number, session: number, reason: number): void {
        const message = this.acquireHeader(Command.eviction);
        copyU128(this, message.offset + Eviction.client, clientOffset);
        writeU64(this.memory, message.offset + Eviction.session, session);
        this.sendEvictionMessage(message, reason);
    }

    private sendEvictionMessage(message: Message, reason: number): void {
        this.memory.setUint8(message.offset + Eviction.reason, reason);
        setChecksums(this.bytes, this.memory, message.offset);
        assert(invalidHeader(this.memory, message.offset, this.config.messageSizeMax) === null);
        this.bus.sendToClient(message);
        this.pool.unref(message);
    }

    // ---------------------------------------------------------------------------------------
    // Durability: the superblock and checkpoints.

    /** Writes the current VSR state to the superblock (coalesced with a write in flight). */
    superblockFlush(): void {
        if (this.superblock.writing) {
            this.superblockQueued = true;
            return;
        }
        this.superblockStage();
        this.superblock.write(this.superblockWriteCallbackBound);
    }

    private superblockStage(): void {
        const superblock = this.superblock;
        superblock.setU32(SuperblockField.version, formatVersion);
        superblock.setU32(SuperblockField.cluster, this.cluster);
        superblock.setU8(SuperblockField.replica, this.replica);
        superblock.setU8(SuperblockField.replicaCount, this.replicaCount);
        superblock.setU32(SuperblockField.kvEntriesMax, this.checkpointer.grid.slotCount);
        superblock.setU32(SuperblockField.view, this.view);
        superblock.setU32(SuperblockField.logView, this.logView);
        superblock.setU64(SuperblockField.logViewOp, this.logViewOp);
        superblock.setU64(SuperblockField.commitMax, Math.max(this.commitMin, this.commitMax));
        this.superblockCarriesCheckpoint = this.checkpointDataWritten;
        if (this.checkpointDataWritten) {
            superblock.setU64(SuperblockField.checkpointOp, this.checkpointPendingOp);
            superblock.setU32(SuperblockField.checkpointCopy, 1 - this.checkpointCopy);
            superblock.setU128(
                SuperblockField.checkpointOpChecksum,
                this.checkpointPendingChecksum,
            );
            const index = this.checkpointer.grid.indexChecksum;
            superblock.setU128(SuperblockField.indexChecksum, index);
            superblock.setU128(
                SuperblockField.sessionsChecksum,
                this.checkpointer.sessionsChecksum,
            );
        }
        // The log suffix of log_view: trusted headers from the head down (recovery drops WAL
        // entries of older views above it, which a start_view truncated only in memory).
        // Gaps (faulty or unrepaired slots) are skipped, not ends: each header carries its op.
        let count = 0;
        for (let op = this.op; op > this.checkpointOp && count < viewHeadersMax; op--) {
            if (!trustedHeader(this, op)) continue; // Executed or trusted: in log_view's log.
            const source = this.journal.headerOffset(this.journal.slotOf(op));
            const target = superblock.staged + SuperblockField.viewHeaders + count * headerSize;
            copyHeader(this, target, source);
            count++;
        }
        superblock.setU32(SuperblockField.viewHeadersCount, count);
    }

    private superblockWriteCallback(ok: boolean): void {
        if (!ok) {
            // EIO on some copy: nothing it carried counts as durable yet. Write again, with the
            // latest state (a queued write is folded in); every waiter waits for that one.
            this.stats.superblockWriteRetries++;
            this.superblockQueued = false;
            return this.superblockFlush();
        }
        const durable = this.superblock.durable;
        this.viewDurable = this.superblock.u32(durable, SuperblockField.view);
        this.logViewDurable = this.superblock.u32(durable, SuperblockField.logView);
        const checkpointOp = this.superblock.u64(durable, SuperblockField.checkpointOp);
        if (this.checkpointDataWritten && this.superblockCarriesCheckpoint) {
            assert(checkpointOp === this.checkpointPendingOp);
            this.superblockCarriesCheckpoint = false;
            this.checkpointOp = checkpointOp;
            this.checkpointCopy = 1 - this.checkpointCopy;
            this.checkpointDataWritten = false;
            this.checkpointInFlight = false;
            if (this.checkpointing) {
                // Execution waited at the next checkpoint op: snapshot it, then resume.
                this.checkpointing = false;
                this.checkpointStart();
            }
        }
        if (this.superblockQueued) {
            this.superblockQueued = false;
            this.superblockFlush();
        }
        this.afterSuperblockDurable();
    }

    /** Whatever waited for the view (or a checkpoint) to be durable goes ahead now. */
    private afterSuperblockDurable(): void {
        if (this.status === Status.viewChange) {
            sendDoViewChange(this);
            this.commitJournal();
            primaryViewChangeProgress(this);
        } else if (this.status === Status.normal && this.primary) {
            primaryStartView(this);
            this.commitJournal();
            this.primaryCommitPipeline();
            this.primaryPipelinePrepare();
        } else if (this.status === Status.normal) {
            for (let op = this.commitMax + 1; op <= this.op; op++) {
                if (this.journal.isTrusted(op) && this.journal.isDurable(op))
                    this.sendPrepareOk(op);
            }
            this.commitJournal();
        }
    }

    /** After executing a checkpoint op: snapshot the state and write it (execution goes on). */
    checkpointStart(): void {
        assert(!this.checkpointInFlight && !this.checkpointing);
        assert(this.commitMin % this.config.checkpointOps === 0);
        this.checkpointInFlight = true;
        this.checkpointPendingOp = this.commitMin;
        copyU128(this, this.checkpointPendingChecksum, this.commitMinChecksum);
        this.checkpointer.write(
            1 - this.checkpointCopy,
            this.checkpointPendingOp,
            this.checkpointPendingChecksum,
            this.checkpointWriteCallbackBound,
        );
    }

    private checkpointWriteCallback(ok: boolean): void {
        assert(this.checkpointInFlight);
        // The checkpointer issues a refused write again until it lands (never reports failure).
        assert(ok);
        this.checkpointDataWritten = true;
        this.superblockFlush();
        // Execution may have waited for the checkpoint's blocks (stagingAdmits).
        this.executeCommitted();
    }

    // ---------------------------------------------------------------------------------------
    // State sync state (the protocol lives in state_sync.ts).

    syncing = false;
    /** Started without state (the checkpoint was unreadable): syncing until one installs. */
    stateMissing = false;
    /** The replica asked: chunks from any other are ignored. */
    syncPeer = 0;
    /** The peer whose last load was given up (-1: none): not asked again first (state_sync.ts). */
    syncPeerAvoided = -1;
    syncTargetOp = 0;
    syncOffset = 0;
    syncStreamSize = 0;
    /** syncOffset when the repair timeout last fired, and timeouts in a row without progress. */
    syncOffsetAtTimeout = 0;
    syncStalls = 0;
    /** A sync put off while the WAL leads to the next checkpoint: since when (state_sync.ts). */
    syncDeferredCommitMin = -1;
    syncDeferredTick = 0;
    /**
     * The target's anchor (the checksum of the prepare at its op) is confirmed by a log other
     * than the snapshot's own: this replica's trusted chain, the header of that op in the log
     * of a replica other than syncPeer (the op is committed, so a replica whose log holds it
     * holds the committed prepare), or such a replica's own checkpoint at that op with that
     * anchor. Installation waits for it.
     */
    syncConfirmed = false;

    // ---------------------------------------------------------------------------------------
    // Sending.

    private setFrame(base: number, command: number): void {
        this.memory.setUint32(base + Frame.cluster, this.cluster, true);
        this.memory.setUint32(base + Frame.size, headerSize, true);
        this.memory.setUint32(base + Frame.view, this.view, true);
        this.memory.setUint8(base + Frame.command, command);
        this.memory.setUint8(base + Frame.replica, this.replica);
    }

    /** A pool message with its frame filled in (size = header only); the caller holds it. */
    acquireHeader(command: number): Message {
        const message = this.pool.acquire();
        this.setFrame(message.offset, command);
        return message;
    }

    /** Checksums, sends and releases. */
    sendTo(replica: number, message: Message): void {
        assert(replica !== this.replica);
        setChecksums(this.bytes, this.memory, message.offset);
        this.bus.sendToReplica(replica, message);
        this.pool.unref(message);
    }

    /** Sends to every other replica; checksums and releases unless `release` is false. */
    broadcast(message: Message, release = true): void {
        if (release) setChecksums(this.bytes, this.memory, message.offset);
        for (let replica = 0; replica < this.replicaCount; replica++) {
            if (replica !== this.replica) this.bus.sendToReplica(replica, message);
        }
        if (release) this.pool.unref(message);
    }

    // ---------------------------------------------------------------------------------------
    // Clock: ping/pong samples, cluster time, prepare timestamps (see src/vsr/clock.ts).

    /** The ping timeout lives in the clock and runs in every status but recovering. */
    private tickClock(): void {
        const pingTimeout = this.clock.pingTimeout;
        if (!pingTimeout.running) pingTimeout.startWithJitter();
        this.clock.tick();
        pingTimeout.tick();
        if (pingTimeout.fired()) this.onPingTimeout();
    }

    private onPingTimeout(): void {
        this.clock.pingTimeout.reset();
        if (this.replicaCount === 1) return;
        const message = this.acquireHeader(Command.ping);
        this.clock.writeMonotonicUs(this.memory, message.offset + Ping.pingMonotonicUs);
        this.broadcast(message);
    }

    /** Answers a clock ping with our wall clock; the peer turns it into an offset sample. */
    private onPing(message: Message): void {
        const base = message.offset;
        const source = headerReplica(this.memory, base);
        if (source === this.replica) return;
        if (u64IsZero(this.memory, base + Ping.pingMonotonicUs)) return; // A bus hello.
        const pong = this.acquireHeader(Command.pong);
        this.bytes.copyWithin(
            pong.offset + Pong.pingMonotonicUs,
            base + Ping.pingMonotonicUs,
            base + Ping.pingMonotonicUs + 8,
        );
        this.clock.writeRealtimeUs(this.memory, pong.offset + Pong.pongRealtimeUs);
        assert(!u64IsZero(this.memory, pong.offset + Pong.pongRealtimeUs));
        this.sendTo(source, pong);
    }

    private onPong(message: Message): void {
        const base = message.offset;
        const source = headerReplica(this.memory, base);
        if (source === this.replica || this.replicaCount === 1) return;
        this.clock.learnPong(this.memory, base);
    }

    /**
     * Sets the next prepare's timestamp: strictly above the previous one, which the primary learns
     * from the log's head when it takes over (primaryFinishViewChange) or recovers (recoverLog);
     * and cluster time when a quorum of clocks agrees. Unsynchronized, the primary does not trust
     * its own wall clock (it may be an hour off, or have jumped): it stamps the previous
     * timestamp + 1 until a quorum agrees, so one bad clock never drags the log's time with it.
     */
    private stampTimestamp(): void {
        if (this.faults.timestampFromLocalClock) {
            // Test-only: the raw wall clock, which a jump or a slower new primary sends back.
            this.prepareTimestampUs = this.time.realtimeUs();
            return;
        }
        const nextUs = this.prepareTimestampUs + 1;
        const synchronized = this.clock.readSynchronized();
        // Read from the clock's field, not returned: no heap number per prepare.
        this.prepareTimestampUs = synchronized
            ? Math.max(nextUs, this.clock.synchronizedUs[0]!)
            : nextUs;
        assert(this.prepareTimestampUs >= nextUs || this.faults.timestampFromLocalClock);
    }

    // ---------------------------------------------------------------------------------------
    // Invariants, checked after every step in tests.

    invariants(): void {
        assert(this.commitMin <= this.commitMax || this.commitMin <= this.op);
        assert(this.commitMin <= this.op);
        // Right after a state sync the head is the synced checkpoint op, beyond the window of
        // the old checkpoint until the new one is durable.
        assert(this.op < this.windowOpMax() || this.op === this.commitMin);
        assert(this.logView <= this.view);
        if (this.status === Status.normal) assert(this.logView === this.view);
        if (this.status === Status.normal && this.primary) {
            assert(this.commitMin <= this.commitMax);
            assert(this.pipelineCount === this.op - this.commitMax);
            for (let op = this.commitMin + 1; op <= this.op; op++) {
                assert(this.journal.isTrusted(op));
            }
        } else {
            assert(this.pipelineCount === 0);
            assert(this.requestQueueCount === 0);
        }
        assert(
            this.op === this.commitMin ||
                this.journal.hasHeader(this.op) ||
                this.journal.isFaulty(this.op),
        );
        assert(this.sessions.count <= this.sessions.entriesMax);
        assert(!u128IsZero(this.memory, this.commitMinChecksum));
        if (this.gridRepair.repairing) assert(this.stateMissing && !this.syncing);
        if (this.gridRepair.loading) assert(this.stateMissing && this.syncing);
        // Pending slots of a checkpoint exist only while one is being written.
        if (this.checkpointer.grid.pendingUnsaved > 0) assert(this.checkpointInFlight);
        if (this.syncing && this.syncTargetOp > 0) {
            assert(this.syncOffset <= this.syncStreamSize);
            // Without state, the checkpoint at its own op will do (it was unreadable).
            const opMin = this.stateMissing ? this.commitMin : this.commitMin + 1;
            assert(this.syncTargetOp >= opMin);
        }
        this.journal.invariants();
    }
}

export function allZero(bytes: Uint8Array, offset: number, size: number): boolean {
    for (let index = offset; index < offset + size; index++) if (bytes[index] !== 0) return false;
    return true;
}

export function popcount(bits: number): number {
    let count = 0;
    let value = bits >>> 0;
    while (value !== 0) {
        value &= value - 1;
        count++;
    }
    return count;
}
