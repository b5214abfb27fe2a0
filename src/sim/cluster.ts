// The simulated cluster: N replicas and C clients in one process, over one arena, one message
// pool, one seeded PRNG (sub-seeded per component), a simulated network, in-memory storage and
// simulated clocks. The unmodified replica runs here; only its world is simulated.
//
// One cluster tick: the network delivers what is due (replicas and clients react), each storage
// completes due I/O, each replica ticks, each client ticks; then the checkers look at every
// replica. Replica invariants run after every delivery and every tick.

import { assert } from "../stdx/assert.js";
import { PRNG } from "../stdx/prng.js";
import { type Config, headerSize } from "../constants.js";
import { KvStateMachine } from "../state_machine/kv.js";
import { Arena } from "../vsr/arena.js";
import { Command, Eviction, Reply, headerCommand } from "../vsr/header.js";
import type { MessageBus } from "../vsr/interfaces.js";
import { layout } from "../vsr/layout.js";
import { type Message, MessagePool } from "../vsr/message_pool.js";
import { Replica, type ReplicaFaults } from "../vsr/replica.js";
import { checksumAttach } from "../vsr/checksum.js";
import { Checkers } from "./checkers.js";
import { SimClient, type WorkloadOptions } from "./client.js";
import { Network, type NetworkOptions } from "./network.js";
import { SimStorage, type StorageOptions } from "./storage.js";
import { SimTime } from "./time.js";

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
    readonly clockOffsetUsMax: number;
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

export class Cluster {
    readonly options: ClusterOptions;
    readonly prng: PRNG;
    readonly arena: Arena;
    readonly pool: MessagePool;
    readonly network: Network;
    readonly replicas: Replica[] = [];
    readonly storages: SimStorage[] = [];
    readonly times: SimTime[] = [];
    readonly stateMachines: KvStateMachine[] = [];
    readonly clients: SimClient[] = [];
    readonly checkers: Checkers;
    ticks = 0;

    constructor(options: ClusterOptions) {
        const config = options.config;
        assert(options.replicaCount >= 1 && options.replicaCount <= 6);
        assert(options.clientCount >= 1);
        assert(options.network.nodeCount === options.replicaCount + options.clientCount);
        this.options = options;
        this.prng = new PRNG(options.seed);
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
        const kvEntriesMax = config.kvEntriesMax;
        const dataLayout = layout(config, KvStateMachine.sizeBytes(kvEntriesMax));
        for (let index = 0; index < options.replicaCount; index++) {
            this.createReplica(index, dataLayout, kvEntriesMax);
        }
        this.checkers = new Checkers(
            {
                replicaCount: options.replicaCount,
                clientCount: options.clientCount,
                clientsMax: config.clientsMax,
                keyCount: options.workload.keyCount,
                kvCountMax: this.stateMachines[0]?.countMax ?? 0,
                opsMax: options.opsMax,
                messageSizeMax: config.messageSizeMax,
                seed: options.seed,
            },
            this.arena,
        );
        for (let index = 0; index < options.clientCount; index++) this.createClient(index);
        this.arena.seal();
    }

    static messagesMax(options: ClusterOptions): number {
        return (
            options.replicaCount * Replica.messagesMax(options.config, options.replicaCount) +
            Network.packetsMax(options.network) +
            options.clientCount + // A request in flight per client.
            1
        ); // The message a sender holds while the network copies it.
    }

    static arenaSizeBytes(options: ClusterOptions, messagesMax: number): number {
        const config = options.config;
        const perReplica =
            config.journalSlotCount * headerSize +
            config.journalWritesMax * 4096 +
            KvStateMachine.sizeBytes(config.kvEntriesMax) +
            3 * 4096;
        return (
            MessagePool.sizeBytes(config.messageSizeMax, messagesMax) +
            options.replicaCount * perReplica +
            options.clientCount * 16 +
            64 * 1024
        );
    }

    private createReplica(
        index: number,
        dataLayout: ReturnType<typeof layout>,
        kvEntriesMax: number,
    ): void {
        const options = this.options;
        const config = options.config;
        const offsetUs =
            options.clockOffsetUsMax === 0
                ? 0
                : this.prng.range(-options.clockOffsetUsMax, options.clockOffsetUsMax);
        const time = new SimTime(config.tickMs, offsetUs);
        const storage = new SimStorage(
            {
                ...options.storage,
                sizeBytes: dataLayout.totalSize,
                iopsMax: config.journalWritesMax + config.journalReadsMax,
            },
            this.arena,
            new PRNG(this.prng.u53()),
        );
        const kvOffset = this.arena.allocate(KvStateMachine.sizeBytes(kvEntriesMax), 64);
        const stateMachine = new KvStateMachine(this.arena.bytes, kvOffset, kvEntriesMax);
        const replica = new Replica({
            config,
            cluster: options.cluster,
            replica: index,
            replicaCount: options.replicaCount,
            arena: this.arena,
            pool: this.pool,
            time,
            storage,
            layout: dataLayout,
            bus: new ReplicaBus(this, index),
            stateMachine,
            prng: new PRNG(this.prng.u53()),
            hooks: {
                onCommit: (replicaIndex, op, prepare) =>
                    this.checkers.onCommit(replicaIndex, op, prepare),
            },
            faults: options.faults,
        });
        this.times.push(time);
        this.storages.push(storage);
        this.stateMachines.push(stateMachine);
        this.replicas.push(replica);
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
                onEviction: (clientIndex) => checkers.onEviction(clientIndex),
            },
            (source, target, message) => this.network.send(source, target, message),
        );
        this.clients.push(client);
    }

    private deliver(target: number, message: Message): void {
        const replicaCount = this.replicas.length;
        if (target < replicaCount) {
            const replica = this.replicas[target];
            assert(replica !== undefined);
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
            this.storages[index]!.tick();
        }
        for (let index = 0; index < this.replicas.length; index++) {
            const replica = this.replicas[index]!;
            replica.tick();
            if (this.options.checkInvariants) replica.invariants();
            this.checkers.checkCommitMonotonic(index, replica.commitMin);
        }
        for (const client of this.clients) client.tick();
    }

    /** Requests answered so far, across clients. */
    get requestsCompleted(): number {
        let total = 0;
        for (const client of this.clients) total += client.requestsCompleted;
        return total;
    }
}
