// The simulated cluster: N replicas and C clients in one process, over one arena, one message
// pool, one seeded PRNG (sub-seeded per component), a simulated network, in-memory storage and
// simulated clocks. The unmodified replica runs here; only its world is simulated.
//
// One cluster tick: the network delivers what is due (replicas and clients react), each storage
// completes due I/O, each replica ticks, each client ticks; then the checkers look at every
// replica. Replica invariants run after every delivery and every tick.

import { assert } from "../stdx/assert.js";
import { PRNG } from "../stdx/prng.js";
import { type Config, sectorSize } from "../constants.js";
import { KvStateMachine } from "../state_machine/kv.js";
import { Arena, type ArenaRegion } from "../vsr/arena.js";
import { formatSuperblockZone } from "../vsr/format.js";
import {
    Command,
    Eviction,
    Frame,
    PrepareOk,
    Reply,
    headerCommand,
    readU64,
} from "../vsr/header.js";
import type { MessageBus } from "../vsr/interfaces.js";
import {
    type Layout,
    alignUp,
    layout,
    superblockCopies,
    superblockCopySize,
} from "../vsr/layout.js";
import { type Message, MessagePool } from "../vsr/message_pool.js";
import { Replica, type ReplicaFaults, Status } from "../vsr/replica.js";
import { Grid } from "../vsr/grid.js";
import { gridRepairIosMax } from "../vsr/grid_repair.js";
import { checksumAttach } from "../vsr/checksum.js";
import { Checkers, type ReplicaState } from "./checkers.js";
import { SimClient, type WorkloadOptions } from "./client.js";
import { Network, type NetworkOptions } from "./network.js";
import {
    ReplicaAtlas,
    SimStorage,
    type StorageFaultOptions,
    type StorageOptions,
    noStorageFaults,
} from "./storage.js";
import { SimTime } from "./time.js";
import { ClockChecker } from "./clock_checker.js";

export interface ClusterOptions {
    readonly seed: number;
    readonly config: Config;
    readonly cluster: number;
    readonly replicaCount: number;
    readonly clientCount: number;
    readonly network: NetworkOptions;
    readonly storage: Omit<StorageOptions, "sizeBytes" | "iopsMax">;
    readonly workload: WorkloadOptions;
    readonly faults: ReplicaFaults | null;
    readonly storageFaults: StorageFaultOptions;
    readonly crashes: CrashOptions;
    readonly clock: ClockOptions;
    readonly checkInvariants: boolean;
    readonly opsMax: number;
}

class ReplicaBus implements MessageBus {
    private readonly cluster: Cluster;
    private readonly replica: number;

    constructor(cluster: Cluster, replica: number) {
        this.cluster = cluster;
        this.replica = replica;
    }

    sendToReplica(replica: number, message: Message): void {
        assert(replica !== this.replica);
        const view = this.cluster.arena.view;
        if (headerCommand(view, message.offset) === Command.prepareOk) {
            this.cluster.checkPrepareOkDurable(this.replica, message);
        }
        this.cluster.network.send(this.replica, replica, message);
    }

    sendToClient(message: Message): void {
        const view = this.cluster.arena.view;
        const command = headerCommand(view, message.offset);
        assert(command === Command.reply || command === Command.eviction);
        const clientOffset =
            message.offset + (command === Command.reply ? Reply.client : Eviction.client);
        const client = view.getUint32(clientOffset, true) - 1;
        assert(client >= 0 && client < this.cluster.clients.length);
        this.cluster.network.send(this.replica, this.cluster.replicas.length + client, message);
    }
}

/**
 * Clock faults (see src/sim/time.ts). Good clocks carry only an offset and drift; a jumping
 * clock or the far-off one is bad (the clock checker counts them against the quorum).
 */
export interface ClockOptions {
    /** Every clock starts within ± this of true time. */
    readonly offsetUsMax: number;
    /** Every clock's rate error is drawn uniformly in ± this (µs per second). */
    readonly driftPpmMax: number;
    /** Each replica's clock jumps with this probability (drawn once per replica). */
    readonly jumpingProbability: number;
    /** On a jumping clock: the chance of a jump per tick, and its size bound (either way). */
    readonly jumpProbability: number;
    readonly jumpUsMax: number;
    /** One replica, drawn, starts this far off (either way; 0: none). */
    readonly farOffUs: number;
}

export const noClockFaultOptions: ClockOptions = {
    offsetUsMax: 0,
    driftPpmMax: 0,
    jumpingProbability: 0,
    jumpProbability: 0,
    jumpUsMax: 0,
    farOffUs: 0,
};

export interface CrashOptions {
    /** Per tick and replica while up. */
    readonly crashProbability: number;
    /** Ticks a crashed replica stays down: uniform in [min, max]. */
    readonly downTicksMin: number;
    readonly downTicksMax: number;
}

export const noCrashes: CrashOptions = { crashProbability: 0, downTicksMin: 1, downTicksMax: 1 };

export class Cluster {
    readonly options: ClusterOptions;
    readonly prng: PRNG;
    readonly arena: Arena;
    readonly pool: MessagePool;
    readonly network: Network;
    readonly dataLayout: Layout;
    readonly replicas: Replica[] = [];
    readonly storages: SimStorage[] = [];
    readonly times: SimTime[] = [];
    /** Per replica: 1 when its clock jumps or is far off (see ClockOptions). */
    readonly clockBad: Uint8Array;
    /** The replica whose clock starts far off (-1: none). */
    readonly farOffReplica: number;
    readonly stateMachines: KvStateMachine[] = [];
    /** Per replica: what the checkers digest (rebuilt with the replica at a restart). */
    readonly states: ReplicaState[] = [];
    private readonly regions: ArenaRegion[] = [];
    private readonly buses: ReplicaBus[] = [];
    private readonly replicaPrngs: PRNG[] = [];
    /** Per replica: 1 while up and open, 0 while crashed or recovering. */
    readonly up: Uint8Array;
    /** Per replica: the tick at which a crashed replica restarts. */
    private readonly restartTicks: Float64Array;
    crashes = 0;
    restarts = 0;
    /** PAR repairs counted by replicas before they crashed (their journals are gone). */
    parRepairsOfCrashed = 0;
    /** Prepare reads from disk (and those that failed) of replicas that crashed since. */
    walReadsOfCrashed = 0;
    walReadErrorsOfCrashed = 0;
    walWritesUnverifiedOfCrashed = 0;
    /** Grid blocks repaired from peers by replicas that crashed since (their counts died). */
    gridBlocksRepairedOfCrashed = 0;
    /** State sync's blocks fetched from peers, and read from its own disk, likewise. */
    syncBlocksFetchedOfCrashed = 0;
    syncBlocksReusedOfCrashed = 0;
    crashOptions: CrashOptions;
    readonly clients: SimClient[] = [];
    readonly checkers: Checkers;
    readonly clockChecker: ClockChecker;
    ticks = 0;

    constructor(options: ClusterOptions) {
        const config = options.config;
        assert(options.replicaCount >= 1 && options.replicaCount <= 6);
        assert(options.clientCount >= 1);
        assert(options.network.nodeCount === options.replicaCount + options.clientCount);
        this.options = options;
        this.crashOptions = options.crashes;
        this.prng = new PRNG(options.seed);
        this.dataLayout = layout(config, KvStateMachine.sizeBytes(config.kvEntriesMax));
        const messagesMax = Cluster.messagesMax(options);
        this.arena = new Arena(Cluster.arenaSizeBytes(options, messagesMax));
        checksumAttach(this.arena.memory);
        this.pool = new MessagePool(this.arena, config.messageSizeMax, messagesMax);
        this.network = new Network(
            options.network,
            new PRNG(this.prng.u53()),
            this.pool,
            (target, message) => this.deliver(target, message),
        );
        this.up = new Uint8Array(options.replicaCount).fill(1);
        this.restartTicks = new Float64Array(options.replicaCount);
        this.clockBad = new Uint8Array(options.replicaCount);
        this.farOffReplica =
            options.clock.farOffUs === 0 ? -1 : this.prng.int(options.replicaCount);
        for (let index = 0; index < options.replicaCount; index++) this.createReplica(index);
        const scratchOffset = this.arena.allocate(config.clientsMax * 64, 16);
        this.checkers = new Checkers(
            {
                replicaCount: options.replicaCount,
                clientCount: options.clientCount,
                clientsMax: config.clientsMax,
                keyCount: options.workload.keyCount,
                kvCountMax: this.stateMachines[0]?.countMax ?? 0,
                opsMax: options.opsMax,
                messageSizeMax: config.messageSizeMax,
                checkpointOps: config.checkpointOps,
                scratchOffset,
                seed: options.seed,
            },
            this.arena,
        );
        this.clockChecker = new ClockChecker(
            this.times,
            this.clockBad,
            this.replicas[0]!.quorums.replication,
            (reason) => this.checkers.fail(reason),
        );
        for (let index = 0; index < options.clientCount; index++) this.createClient(index);
        this.arena.seal();
    }

    static messagesMax(options: ClusterOptions): number {
        return (
            options.replicaCount * Replica.messagesMax(options.config, options.replicaCount) +
            Network.packetsMax(options.network) +
            options.clientCount + // A request in flight per client.
            1 // The message a sender holds while the network copies it.
        );
    }

    /** Arena bytes one replica carves (journal, superblock, checkpoint buffers, KV table). */
    static replicaRegionBytes(config: Config): number {
        const dataLayout = layout(config, KvStateMachine.sizeBytes(config.kvEntriesMax));
        return (
            3 * dataLayout.walHeadersSize + // The ring and recovery's two scratch rings.
            config.journalWritesMax * sectorSize +
            (2 + superblockCopies) * superblockCopySize +
            dataLayout.checkpointSessionsSize +
            alignUp(dataLayout.kvImageSize) + // The KV table (checkpoints: Grid.arenaBytes).
            Grid.arenaBytes(dataLayout) +
            16 * sectorSize // Alignment slack and small fields.
        );
    }

    static arenaSizeBytes(options: ClusterOptions, messagesMax: number): number {
        const config = options.config;
        return (
            MessagePool.sizeBytes(config.messageSizeMax, messagesMax) +
            options.replicaCount * Cluster.replicaRegionBytes(config) +
            options.clientCount * 16 +
            64 * 1024
        );
    }

    private createReplica(index: number): void {
        const options = this.options;
        const config = options.config;
        this.times.push(this.createTime(index));
        const storage = new SimStorage(
            {
                ...options.storage,
                sizeBytes: this.dataLayout.totalSize,
                iopsMax: config.journalWritesMax + config.journalReadsMax + 4 + gridRepairIosMax,
            },
            this.arena,
            new PRNG(this.prng.u53()),
        );
        formatSuperblockZone(storage.data, 0, {
            cluster: options.cluster,
            replica: index,
            replicaCount: options.replicaCount,
            kvEntriesMax: config.kvEntriesMax,
        });
        storage.faults = options.storageFaults;
        storage.atlas = new ReplicaAtlas(index, options.replicaCount, this.dataLayout, config);
        this.storages.push(storage);
        this.regions.push(this.arena.region(Cluster.replicaRegionBytes(config)));
        this.buses.push(new ReplicaBus(this, index));
        this.replicaPrngs.push(new PRNG(this.prng.u53()));
        const { replica, stateMachine } = this.buildReplica(index);
        this.replicas.push(replica);
        this.stateMachines.push(stateMachine);
        this.states.push(replicaState(replica, stateMachine));
    }

    /** The replica's clock, with the faults drawn for it (see ClockOptions). */
    private createTime(index: number): SimTime {
        const clock = this.options.clock;
        const prng = this.prng;
        let offsetUs =
            clock.offsetUsMax === 0 ? 0 : prng.range(-clock.offsetUsMax, clock.offsetUsMax);
        if (index === this.farOffReplica)
            offsetUs += prng.chance(0.5) ? clock.farOffUs : -clock.farOffUs;
        const jumping = clock.jumpingProbability > 0 && prng.chance(clock.jumpingProbability);
        const faults = {
            driftPpm:
                clock.driftPpmMax === 0 ? 0 : prng.range(-clock.driftPpmMax, clock.driftPpmMax),
            jumpProbability: jumping ? clock.jumpProbability : 0,
            jumpUsMax: jumping ? clock.jumpUsMax : 0,
        };
        this.clockBad[index] = jumping || index === this.farOffReplica ? 1 : 0;
        return new SimTime(this.options.config.tickMs, offsetUs, faults, new PRNG(prng.u53()));
    }

    /** A replica (and its state machine) over the replica's arena region, as after a boot. */
    private buildReplica(index: number): { replica: Replica; stateMachine: KvStateMachine } {
        const options = this.options;
        const config = options.config;
        const region = this.regions[index]!;
        const kvSize = KvStateMachine.sizeBytes(config.kvEntriesMax);
        const kvOffset = region.allocate(alignUp(kvSize), sectorSize);
        const stateMachine = new KvStateMachine(this.arena.bytes, kvOffset, config.kvEntriesMax);
        const replica = new Replica({
            config,
            cluster: options.cluster,
            replica: index,
            replicaCount: options.replicaCount,
            arena: region,
            pool: this.pool,
            time: this.times[index]!,
            storage: this.storages[index]!,
            layout: this.dataLayout,
            bus: this.buses[index]!,
            stateMachine,
            prng: this.replicaPrngs[index]!,
            hooks: {
                onCommit: (replicaIndex, op, prepare) => {
                    this.onCommit(replicaIndex, op, prepare);
                    this.clockChecker.onCommit(op, prepare, this.arena.view);
                },
                onStateSync: (replicaIndex, op) => {
                    this.checkers.onStateSync(replicaIndex, op);
                    this.checkers.onStateSyncState(replicaIndex, op, this.states[replicaIndex]!);
                },
                onGridRepaired: (replicaIndex, op) => {
                    const state = this.states[replicaIndex]!;
                    this.checkers.onCheckpointState(replicaIndex, op, state, "repaired");
                },
            },
            faults: options.faults,
        });
        return { replica, stateMachine };
    }

    /**
     * A backup's prepare_ok names a prepare its disk must hold, in the op's WAL slot. Exact only
     * where completed writes land whole and in place (no misdirected or corrupted writes on
     * this seed); elsewhere the protocol's view-change checks catch a lost acknowledged op.
     */
    checkPrepareOkDurable(index: number, message: Message): void {
        const faults = this.options.storageFaults;
        if (faults.misdirectProbability > 0 || faults.writeFaultProbability > 0) return;
        const config = this.options.config;
        const view = this.arena.view;
        const op = readU64(view, message.offset + PrepareOk.op);
        const slotOffset =
            this.dataLayout.walPreparesOffset +
            (op % config.journalSlotCount) * config.messageSizeMax;
        // Only the prepare: prepare_ok does not wait for its redundant header (journal.ts).
        const data = this.storages[index]!.data;
        const bytes = this.arena.bytes;
        const acked = message.offset + PrepareOk.prepareChecksum;
        for (let byte = 0; byte < 16; byte++) {
            if (data[slotOffset + Frame.checksum + byte] === bytes[acked + byte]) continue;
            this.checkers.fail(`replica ${index} acknowledged op ${op} before it was durable`);
            return;
        }
    }

    /** Every commit goes to the checkers; at a checkpoint op, so does the state it left. */
    private onCommit(index: number, op: number, prepare: Message): void {
        this.checkers.onCommit(index, op, prepare);
        if (op % this.options.config.checkpointOps === 0) {
            this.checkers.onCheckpointState(index, op, this.states[index]!, "executed");
        }
    }

    /** The replica's process dies: memory gone, writes in flight lost or torn. */
    crash(index: number): void {
        assert(this.up[index] === 1);
        const replica = this.replicas[index]!;
        this.checkers.onCrash(index, replica.viewDurable, replica.checkpointOp);
        this.parRepairsOfCrashed += replica.journal.faultyRepaired;
        this.walReadsOfCrashed += replica.journal.readsStarted;
        this.walReadErrorsOfCrashed += replica.journal.readErrors;
        this.walWritesUnverifiedOfCrashed += replica.journal.writesUnverified;
        this.gridBlocksRepairedOfCrashed += replica.gridRepair.blocksRepaired;
        this.syncBlocksFetchedOfCrashed += replica.gridRepair.syncBlocksFetched;
        this.syncBlocksReusedOfCrashed += replica.gridRepair.syncBlocksReused;
        replica.shutdown();
        this.storages[index]!.crash();
        this.up[index] = 0;
        this.crashes++;
        const crash = this.crashOptions;
        this.restartTicks[index] =
            this.ticks + this.prng.range(crash.downTicksMin, crash.downTicksMax);
    }

    /** A new process over the same data file: recovers from storage, then rejoins. */
    restart(index: number): void {
        assert(this.up[index] === 0);
        this.regions[index]!.reset();
        const { replica, stateMachine } = this.buildReplica(index);
        this.replicas[index] = replica;
        this.stateMachines[index] = stateMachine;
        this.states[index] = replicaState(replica, stateMachine);
        this.restarts++;
        this.checkers.onRestart(index);
        replica.open((ok) => this.openCallback(index, ok));
    }

    private openCallback(index: number, ok: boolean): void {
        const replica = this.replicas[index]!;
        if (!ok) {
            this.checkers.fail(`replica ${index} could not recover: ${replica.openError}`);
            return;
        }
        this.checkers.onRecovered(
            index,
            replica.commitMin,
            replica.viewDurable,
            replica.checkpointOp,
            // Started without state (its checkpoint was unreadable): nothing to compare until
            // state sync installs one (onStateSyncState).
            replica.stateMissing ? null : this.states[index]!,
        );
        this.up[index] = 1;
    }

    get replicasUp(): number {
        let count = 0;
        for (let index = 0; index < this.up.length; index++) count += this.up[index]!;
        return count;
    }
    private createClient(index: number): void {
        const options = this.options;
        const checkers = this.checkers;
        const client = new SimClient(
            index,
            options.replicaCount + index,
            options.config,
            options.cluster,
            options.replicaCount,
            this.arena,
            this.pool,
            new PRNG(this.prng.u53()),
            options.seed,
            options.workload,
            {
                onInvoke: (clientIndex) => checkers.onInvoke(clientIndex),
                onReply: (clientIndex, request, reply) =>
                    checkers.onReply(clientIndex, request, reply),
                onEviction: (clientIndex, session) => checkers.onEviction(clientIndex, session),
            },
            (source, target, message) => this.network.send(source, target, message),
        );
        this.clients.push(client);
    }

    private deliver(target: number, message: Message): void {
        const replicaCount = this.replicas.length;
        if (target < replicaCount) {
            if (this.up[target] === 0) return; // A crashed or recovering replica hears nothing.
            const replica = this.replicas[target]!;
            replica.onMessage(message);
            if (this.options.checkInvariants) replica.invariants();
            this.checkers.checkCommitMonotonic(target, replica.commitMin);
        } else {
            const client = this.clients[target - replicaCount];
            assert(client !== undefined);
            client.onMessage(message);
        }
    }

    tick(): void {
        this.ticks++;
        this.network.tick();
        for (let index = 0; index < this.replicas.length; index++) {
            this.times[index]!.tick();
            // Storage completes I/O while a replica recovers (its reads), not after a crash.
            if (this.up[index] === 1 || this.replicas[index]!.status === Status.recovering) {
                this.storages[index]!.tick();
            }
        }
        for (let index = 0; index < this.replicas.length; index++) {
            if (this.up[index] === 0) {
                this.tickDown(index);
                continue;
            }
            const replica = this.replicas[index]!;
            replica.tick();
            if (this.options.checkInvariants) replica.invariants();
            this.checkers.checkCommitMonotonic(index, replica.commitMin);
            if (this.prng.chance(this.crashOptions.crashProbability)) this.crash(index);
        }
        for (const client of this.clients) client.tick();
        this.clockChecker.tick(this.replicas, this.up);
    }

    private tickDown(index: number): void {
        const recovering = this.replicas[index]!.status === Status.recovering;
        if (!recovering && this.ticks >= this.restartTicks[index]!) this.restart(index);
    }

    /** Liveness mode: no more crashes or storage faults; every crashed replica restarts now. */
    heal(): void {
        this.crashOptions = noCrashes;
        for (let index = 0; index < this.replicas.length; index++) {
            this.storages[index]!.faults = noStorageFaults;
            if (this.up[index] === 0 && this.replicas[index]!.status !== Status.recovering) {
                this.restartTicks[index] = this.ticks;
            }
        }
        this.network.heal();
    }

    /** Requests answered so far, across clients. */
    get requestsCompleted(): number {
        let total = 0;
        for (const client of this.clients) total += client.requestsCompleted;
        return total;
    }
}

function replicaState(replica: Replica, stateMachine: KvStateMachine): ReplicaState {
    return {
        imageOffset: stateMachine.imageOffset,
        imageSize: stateMachine.imageSize,
        sessions: replica.sessions,
    };
}
