// The real node: one replica of a cluster over its data file (O_DIRECT storage), the uWebSockets
// server and peer links (NodeBus), the wall clock, and one timer driving tick() every tickMs.
// Start-up: read the data file's identity, allocate the whole arena, open the replica (recover
// from superblock, checkpoint and WAL), then listen. SIGINT/SIGTERM stop it cleanly: the timer
// stops, sockets close, in-flight writes complete, the file is fsynced and closed.

import fs from "node:fs";
import { PerformanceObserver, constants as perfConstants } from "node:perf_hooks";
import { type Config, production } from "../constants.js";
import { KvStateMachine } from "../state_machine/kv.js";
import { assert } from "../stdx/assert.js";
import { PRNG } from "../stdx/prng.js";
import { Arena } from "../vsr/arena.js";
import { checksumAttach } from "../vsr/checksum.js";
import { alignUp, layout, superblockCopies, superblockCopySize } from "../vsr/layout.js";
import { MessagePool } from "../vsr/message_pool.js";
import { Replica, Status } from "../vsr/replica.js";
import {
    SuperblockField,
    invalidSuperblockCopy,
    superblockCorruptError,
} from "../vsr/superblock.js";
import { type HttpAnswer, NodeBus } from "./bus.js";
import { DirectStorage } from "./storage_direct.js";
import { RealTime } from "./time.js";

export interface Address {
    readonly host: string;
    readonly port: number;
}

/** Who a data file belongs to, read from its newest valid superblock copy. */
export interface DataFileIdentity {
    readonly cluster: number;
    readonly replica: number;
    readonly replicaCount: number;
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
    };
}

export interface NodeOptions {
    readonly path: string;
    readonly addresses: readonly Address[];
    readonly config: Config;
    readonly log: (line: string) => void;
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
    private readonly options: NodeOptions;
    private timer: NodeJS.Timeout | null = null;
    private readonly lockPath: string;
    private stopping = false;
    /** Garbage collections since start (young = scavenges), for /metrics. */
    private gcYoung = 0;
    private gcMajor = 0;
    private readonly gcObserver = new PerformanceObserver((list) => {
        for (const entry of list.getEntries()) {
            const kind = (entry as { detail?: { kind?: number } }).detail?.kind;
            if (kind === perfConstants.NODE_PERFORMANCE_GC_MINOR) this.gcYoung++;
            else this.gcMajor++;
        }
    });
    readonly startedMs = Date.now();

    constructor(options: NodeOptions) {
        const config = options.config;
        this.options = options;
        this.identity = readIdentity(options.path);
        const { cluster, replica, replicaCount } = this.identity;
        if (options.addresses.length !== replicaCount) {
            throw new NodeError(
                `the data file is replica ${replica} of ${replicaCount}, ` +
                    `but ${options.addresses.length} addresses were given`,
            );
        }
        const kvSize = KvStateMachine.sizeBytes(config.kvEntriesMax);
        const dataLayout = layout(config, kvSize);
        const messagesMax = nodeMessagesMax(config, replicaCount);
        const arena = new Arena(
            MessagePool.sizeBytes(config.messageSizeMax, messagesMax) +
                2 * alignUp(kvSize) + // The KV table and its checkpoint snapshot.
                2 * dataLayout.walHeadersSize +
                (config.journalWritesMax + 64) * 4096 +
                (2 + superblockCopies) * superblockCopySize,
        );
        checksumAttach(arena.memory);
        this.lockPath = lockDataFile(options.path);
        const pool = new MessagePool(arena, config.messageSizeMax, messagesMax);
        this.storage = DirectStorage.open(options.path, arena, {
            iopsMax: config.journalWritesMax + config.journalReadsMax + 4,
            log: options.log,
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
            onMessage: (message) => this.replica.onMessage(message),
            onHttp: (path) => this.http(path),
            log: options.log,
        });
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
        return new Promise((resolve, reject) => {
            this.replica.open((ok) => {
                if (!ok) return reject(new NodeError(this.replica.openError ?? "open failed"));
                try {
                    this.bus.start();
                } catch (error) {
                    return reject(new NodeError((error as Error).message));
                }
                this.gcObserver.observe({ entryTypes: ["gc"] });
                const tickMs = this.options.config.tickMs;
                this.timer = setInterval(() => this.replica.tick(), tickMs);
                resolve();
            });
        });
    }

    async stop(): Promise<void> {
        if (this.stopping) return;
        this.stopping = true;
        if (this.timer !== null) clearInterval(this.timer);
        this.gcObserver.disconnect();
        await this.bus.close();
        await new Promise<void>((resolve) => this.storage.close(() => resolve()));
        fs.rmSync(this.lockPath, { force: true });
    }

    private http(path: string): HttpAnswer | null {
        if (path === "/status") {
            return { status: 200, contentType: "application/json", body: this.statusJson() };
        }
        if (path === "/metrics") {
            const body = this.metricsText() + this.bus.metricsText();
            return { status: 200, contentType: "text/plain; version=0.0.4", body };
        }
        return null;
    }

    statusJson(): string {
        const replica = this.replica;
        const status = ["normal", "view_change", "recovering"][replica.status] ?? "unknown";
        return JSON.stringify({
            cluster: this.identity.cluster,
            replica: this.identity.replica,
            replica_count: this.identity.replicaCount,
            status,
            view: replica.view,
            op: replica.op,
            commit: replica.commitMin,
            checkpoint: replica.checkpointOp,
            primary: replica.primary && replica.status === Status.normal,
            direct_io: this.storage.direct,
        });
    }

    private metricsText(): string {
        const replica = this.replica;
        const stats = replica.stats;
        const lines = [
            "# TYPE vsr_ops_committed_total counter",
            `vsr_ops_committed_total ${stats.commits}`,
            "# TYPE vsr_prepares_total counter",
            `vsr_prepares_total ${stats.prepares}`,
            "# TYPE vsr_view_changes_total counter",
            `vsr_view_changes_total ${stats.viewChanges}`,
            "# TYPE vsr_view gauge",
            `vsr_view ${replica.view}`,
            "# TYPE vsr_commit gauge",
            `vsr_commit ${replica.commitMin}`,
            "# TYPE vsr_checkpoint_op gauge",
            `vsr_checkpoint_op ${replica.checkpointOp}`,
            "# TYPE vsr_requests_dropped_total counter",
            `vsr_requests_dropped_total ${stats.requestsDropped}`,
            "# TYPE vsr_messages_invalid_total counter",
            `vsr_messages_invalid_total ${stats.messagesInvalid}`,
            "# TYPE vsr_journal_writes_total counter",
            `vsr_journal_writes_total ${replica.journal.writesCompleted}`,
            "# TYPE vsr_journal_write_errors_total counter",
            `vsr_journal_write_errors_total ${replica.journal.writeErrors}`,
            "# TYPE vsr_storage_writes_total counter",
            `vsr_storage_writes_total ${this.storage.writesCompleted}`,
            "# TYPE vsr_storage_reads_total counter",
            `vsr_storage_reads_total ${this.storage.readsCompleted}`,
            "# TYPE vsr_repairs_requested_total counter",
            `vsr_repairs_requested_total ${stats.repairsRequested}`,
            "# TYPE vsr_journal_faulty_repaired_total counter",
            `vsr_journal_faulty_repaired_total ${replica.journal.faultyRepaired}`,
            "# TYPE vsr_state_syncs_total counter",
            `vsr_state_syncs_total ${stats.stateSyncs}`,
            "# TYPE vsr_checkpoints_unreadable_total counter",
            `vsr_checkpoints_unreadable_total ${stats.checkpointsUnreadable}`,
            "# TYPE vsr_replies_repaired_total counter",
            `vsr_replies_repaired_total ${stats.repliesRepaired}`,
            "# TYPE vsr_gc_total counter",
            `vsr_gc_total{kind="young"} ${this.gcYoung}`,
            `vsr_gc_total{kind="major"} ${this.gcMajor}`,
            "# TYPE vsr_events_committed_total counter",
            `vsr_events_committed_total ${stats.eventsCommitted}`,
        ];
        return lines.join("\n") + "\n";
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
    options.log(
        `vsr: replica ${replica} of ${replicaCount} listening on ${address.host}:${address.port}` +
            ` (direct I/O ${node.storage.direct ? "on" : "off"})`,
    );
    await new Promise<void>((resolve) => {
        const stop = (): void => resolve();
        process.once("SIGINT", stop);
        process.once("SIGTERM", stop);
    });
    await node.stop();
    options.log("vsr: stopped");
    return 0;
}

export const defaultConfig = production;
