// The simulated packet network: every message between the replicas (nodes 0..R-1) and clients
// (nodes R..N-1) of one simulated cluster goes through here. It owns a copy of each packet in
// flight (a pool message), and delivers packets in a deterministic order: by delivery tick, then
// by send sequence. Only the injected PRNG decides anything, so one seed gives one trace.
//
// Fault model (TigerBeetle's packet simulator, plus FoundationDB's swizzle-clog):
// - Delay: a packet waits max(1, min + exponential(mean)) ticks, so nothing is delivered inside
//   send(); independent delays reorder packets of the same path.
// - Loss: each delivery attempt (duplicates too) is lost with packetLossProbability.
// - Replay: a delivered packet is, with packetReplayProbability, copied and re-queued with a fresh
//   delay, so it arrives again later (and may be replayed again).
// - Capacity: a directed path holds at most pathCapacityMax packets; one more drops, uniformly,
//   one of the queued packets of that path or the new one.
// - Partitions (replica<->replica only): two non-empty sides drawn by partitionMode; symmetric
//   blocks both directions, asymmetric lets one random side still send to the other. A blocked
//   link drops at send and again at delivery. A partition starts with partitionProbability per
//   tick once unpartitionStabilityTicks have passed, and ends with unpartitionProbability per
//   tick once partitionStabilityTicks have passed.
// - Clogs (replica<->replica only, never a node to itself): a clogged path holds the packets that
//   come due. When it unclogs they are due at once, in send order: the time spent clogged counts
//   as their delay. An unclogged path starts a clog with pathClogProbability per tick (drawn as a
//   geometric waiting time, so quiet ticks cost no random draws) lasting 1 + exponential(mean).
// - Swizzle-clog: a random non-empty subset of replicas is clogged one replica at a time (all its
//   replica paths, both ways), then unclogged one at a time in a fresh random order; steps are
//   max(1, exponential(swizzleStepMeanTicks)) ticks apart; at most one episode runs at a time.
// - Client paths (any path touching a client) see delay, loss, replay and capacity only.
// - heal() (liveness mode): partitions and clogs end and held packets come due; loss, replay,
//   partitions, clogs and swizzle-clogs stop for good. Delays and the path capacity stay.
//
// Memory: path p = source * nodeCount + target owns packet slots p*cap .. p*cap+cap-1 (cap =
// pathCapacityMax). pathSlots lists a path's slots occupied-first (a sparse set: O(1) acquire,
// release and random victim). Queued slots sit in one binary min-heap keyed by (delivery tick,
// sequence); held slots (clogged path) sit outside it. Sequences are unique, so the order is
// total. The network holds at most nodeCount^2 * cap pool messages, plus the one it is delivering
// (a replay copy reuses the slot that delivered packet just left).
// Invariant: packetsSent + packetsDuplicated = packetsDelivered + packetsDropped + packetsQueued.

import { assert, unreachable } from "../stdx/assert.js";
import type { PRNG } from "../stdx/prng.js";
import type { Message, MessagePool } from "../vsr/message_pool.js";
import { headerSizeOf } from "../vsr/header.js";
import { headerSize, replicasMax } from "../constants.js";

export type PartitionMode = "none" | "uniform_size" | "uniform_partition" | "isolate_single";
export type PartitionSymmetry = "symmetric" | "asymmetric";

export interface NetworkOptions {
    nodeCount: number;
    replicaCount: number;
    /** Packets queued per directed path; one more drops a random queued packet or the new one. */
    pathCapacityMax: number;
    /** Delay = min + exponential(mean) ticks (at least 1): reorders. */
    oneWayDelayMinTicks: number;
    oneWayDelayMeanTicks: number;
    /** 0..1, per delivery attempt. */
    packetLossProbability: number;
    /** 0..1, per delivered packet: deliver and re-queue a duplicate. */
    packetReplayProbability: number;
    partitionMode: PartitionMode;
    partitionSymmetry: PartitionSymmetry;
    /** Per tick. */
    partitionProbability: number;
    unpartitionProbability: number;
    /** Minimum ticks partitioned / unpartitioned before the state may flip again. */
    partitionStabilityTicks: number;
    unpartitionStabilityTicks: number;
    /** Per tick, per replica path. */
    pathClogProbability: number;
    pathClogDurationMeanTicks: number;
    /** Per tick, the chance to start a swizzle-clog episode when none runs. */
    swizzleClogProbability: number;
    /** Mean ticks between swizzle steps. */
    swizzleStepMeanTicks: number;
}

export interface NetworkStats {
    packetsSent: number;
    packetsDelivered: number;
    packetsDropped: number;
    packetsDuplicated: number;
    partitions: number;
    clogs: number;
    swizzleClogs: number;
}

const partitionModes: readonly PartitionMode[] = [
    "none",
    "uniform_size",
    "uniform_partition",
    "isolate_single",
];

/**
 * Draws a fault mix per seed (swarm testing). One draw picks a temperament: calm (no faults but
 * delay), brutal (every fault on, in the upper half of its range) or mixed (each fault on or off
 * by a coin, with a random magnitude). Ranges follow TigerBeetle's VOPR with 10 ms ticks.
 */
export function swarmNetworkOptions(
    prng: PRNG,
    replicaCount: number,
    clientCount: number,
): NetworkOptions {
    assert(Number.isInteger(replicaCount) && replicaCount >= 1 && replicaCount <= replicasMax);
    assert(Number.isInteger(clientCount) && clientCount >= 0);
    const temperament = prng.int(5); // 0: calm, 1: brutal, 2..4: mixed.
    const partitionOn = replicaCount >= 2 && swarmMagnitude(prng, temperament, 1) > 0;
    const options: NetworkOptions = {
        nodeCount: replicaCount + clientCount,
        replicaCount,
        pathCapacityMax: prng.range(2, 20),
        oneWayDelayMinTicks: prng.range(0, 3),
        oneWayDelayMeanTicks: prng.range(0, 10),
        packetLossProbability: swarmMagnitude(prng, temperament, 0.3),
        packetReplayProbability: swarmMagnitude(prng, temperament, 0.5),
        partitionMode: partitionOn ? partitionModes[1 + prng.int(3)]! : "none",
        partitionSymmetry: prng.chance(0.5) ? "symmetric" : "asymmetric",
        partitionProbability: 0.03 * prng.float(),
        unpartitionProbability: 0.01 + 0.09 * prng.float(),
        partitionStabilityTicks: prng.range(100, 200),
        unpartitionStabilityTicks: prng.range(0, 20),
        pathClogProbability: swarmMagnitude(prng, temperament, 0.01),
        pathClogDurationMeanTicks: prng.range(0, 500),
        swizzleClogProbability: swarmMagnitude(prng, temperament, 0.002),
        swizzleStepMeanTicks: prng.range(10, 200),
    };
    assertOptions(options);
    return options;
}

function swarmMagnitude(prng: PRNG, temperament: number, max: number): number {
    assert(max > 0);
    if (temperament === 0) return 0;
    if (temperament === 1) return max * (0.5 + 0.5 * prng.float());
    return prng.chance(0.5) ? max * prng.float() : 0;
}

function assertOptions(options: NetworkOptions): void {
    const replicaCount = options.replicaCount;
    assert(Number.isInteger(replicaCount) && replicaCount >= 1 && replicaCount <= replicasMax);
    assert(Number.isInteger(options.nodeCount) && options.nodeCount >= replicaCount);
    assert(options.nodeCount <= 255);
    assert(Number.isInteger(options.pathCapacityMax) && options.pathCapacityMax >= 1);
    assert(Number.isInteger(options.oneWayDelayMinTicks) && options.oneWayDelayMinTicks >= 0);
    assert(options.oneWayDelayMeanTicks >= 0);
    assertProbability(options.packetLossProbability);
    assertProbability(options.packetReplayProbability);
    assert(partitionModes.includes(options.partitionMode));
    assert(options.partitionSymmetry === "symmetric" || options.partitionSymmetry === "asymmetric");
    assertProbability(options.partitionProbability);
    assertProbability(options.unpartitionProbability);
    assert(options.partitionStabilityTicks >= 0);
    assert(options.unpartitionStabilityTicks >= 0);
    assertProbability(options.pathClogProbability);
    assert(options.pathClogDurationMeanTicks >= 0);
    assertProbability(options.swizzleClogProbability);
    assert(options.swizzleStepMeanTicks >= 0);
}

function assertProbability(probability: number): void {
    assert(probability >= 0);
    assert(probability <= 1);
}

const slotFree = 0;
const slotQueued = 1;
const slotHeld = 2;

const swizzleIdle = 0;
const swizzleClogging = 1;
const swizzleUnclogging = 2;

export class Network {
    readonly options: NetworkOptions;
    readonly stats: NetworkStats;
    private readonly prng: PRNG;
    private readonly pool: MessagePool;
    private readonly deliver: (target: number, message: Message) => void;
    private readonly nodeCount: number;
    private readonly replicaCount: number;
    private readonly capacity: number;
    private readonly slotCount: number;

    // Packet slots (see the opening comment).
    private readonly slotDeliveryTick: Float64Array;
    private readonly slotSequence: Float64Array;
    private readonly slotState: Uint8Array;
    private readonly slotMessage: (Message | null)[];
    /** Index of a slot within its path's region of pathSlots. */
    private readonly slotPosition: Int32Array;
    /** Per path, its slots: the first pathPacketCount[path] are occupied. */
    private readonly pathSlots: Int32Array;
    private readonly pathPacketCount: Int32Array;
    private readonly pathHeldCount: Int32Array;
    private readonly heap: Int32Array;
    /** A slot's index in heap, or -1 when it is not queued. */
    private readonly heapPosition: Int32Array;
    private heapCount = 0;
    private heldCount = 0;

    // Path clogs (replica paths only). pathClogUntilTick is 0 while a path is not clogged.
    private readonly pathClogUntilTick: Float64Array;
    private readonly pathClogNextTick: Float64Array;
    /** The earliest clog start or end among all replica paths. */
    private pathClogEventTick = Infinity;
    /** ln(1 - pathClogProbability), for geometric waiting times. */
    private readonly pathClogLogMiss: number;

    private partitioned = false;
    private partitionFlipTick = 0;
    private readonly partitionAsymmetric: boolean;
    /** Side (0 or 1) of each replica while partitioned. */
    private readonly partitionSide: Uint8Array;
    /** Asymmetric partitions: the side that can still send to the other. */
    private partitionSendingSide = 0;
    private readonly replicaScratch: Uint8Array;

    private swizzlePhase = swizzleIdle;
    private readonly swizzleOrder: Uint8Array;
    private swizzleCount = 0;
    private swizzleStepIndex = 0;
    private swizzleStepTick = 0;
    private readonly swizzleClogged: Uint8Array;

    private ticks = 0;
    private sequence = 0;
    private healed = false;
    private delivering = false;

    constructor(
        options: NetworkOptions,
        prng: PRNG,
        pool: MessagePool,
        deliver: (target: number, message: Message) => void,
    ) {
        assertOptions(options);
        this.options = options;
        this.prng = prng;
        this.pool = pool;
        this.deliver = deliver;
        this.nodeCount = options.nodeCount;
        this.replicaCount = options.replicaCount;
        this.capacity = options.pathCapacityMax;
        const pathCount = this.nodeCount * this.nodeCount;
        this.slotCount = pathCount * this.capacity;
        assert(this.slotCount <= 0x7fff_ffff);
        this.stats = {
            packetsSent: 0,
            packetsDelivered: 0,
            packetsDropped: 0,
            packetsDuplicated: 0,
            partitions: 0,
            clogs: 0,
            swizzleClogs: 0,
        };
        this.slotDeliveryTick = new Float64Array(this.slotCount);
        this.slotSequence = new Float64Array(this.slotCount);
        this.slotState = new Uint8Array(this.slotCount);
        this.slotMessage = new Array<Message | null>(this.slotCount).fill(null);
        this.slotPosition = new Int32Array(this.slotCount);
        this.pathSlots = new Int32Array(this.slotCount);
        for (let slot = 0; slot < this.slotCount; slot++) {
            this.pathSlots[slot] = slot;
            this.slotPosition[slot] = slot % this.capacity;
        }
        this.pathPacketCount = new Int32Array(pathCount);
        this.pathHeldCount = new Int32Array(pathCount);
        this.heap = new Int32Array(this.slotCount);
        this.heapPosition = new Int32Array(this.slotCount).fill(-1);
        this.pathClogUntilTick = new Float64Array(pathCount);
        this.pathClogNextTick = new Float64Array(pathCount).fill(Infinity);
        this.pathClogLogMiss = Math.log(1 - options.pathClogProbability);
        this.partitionAsymmetric = options.partitionSymmetry === "asymmetric";
        this.partitionSide = new Uint8Array(this.replicaCount);
        this.replicaScratch = new Uint8Array(this.replicaCount);
        this.swizzleOrder = new Uint8Array(this.replicaCount);
        this.swizzleClogged = new Uint8Array(this.replicaCount);
        this.pathClogScheduleAll();
    }

    /** Pool messages the network may hold at once: a full queue on every path plus one packet
     * being delivered (a replay copy takes the slot that packet left). */
    static packetsMax(options: NetworkOptions): number {
        assertOptions(options);
        return options.nodeCount * options.nodeCount * options.pathCapacityMax + 1;
    }

    /** Current simulated time in ticks (the number of tick() calls so far). */
    get tickCount(): number {
        return this.ticks;
    }

    /** Packets the network holds (queued or held by a clog), each with one pool message. */
    get packetsQueued(): number {
        return this.heapCount + this.heldCount;
    }

    /** True while a swizzle-clog episode runs. */
    get swizzleClogActive(): boolean {
        return this.swizzlePhase !== swizzleIdle;
    }

    /** For checkers/debugging: whether source can currently reach target. */
    linkUp(source: number, target: number): boolean {
        assert(source >= 0 && source < this.nodeCount);
        assert(target >= 0 && target < this.nodeCount);
        if (!this.partitioned) return true;
        if (source >= this.replicaCount || target >= this.replicaCount) return true;
        const sourceSide = this.partitionSide[source]!;
        if (sourceSide === this.partitionSide[target]!) return true;
        return this.partitionAsymmetric && sourceSide === this.partitionSendingSide;
    }

    /** For checkers/debugging: whether the path holds its due packets (a clog or swizzle). */
    pathClogged(source: number, target: number): boolean {
        assert(source >= 0 && source < this.nodeCount);
        assert(target >= 0 && target < this.nodeCount);
        if (source === target) return false;
        if (source >= this.replicaCount || target >= this.replicaCount) return false;
        if (this.pathClogUntilTick[source * this.nodeCount + target]! !== 0) return true;
        return this.swizzleClogged[source]! === 1 || this.swizzleClogged[target]! === 1;
    }

    /** For checkers/debugging: whether the running swizzle-clog episode has clogged a replica. */
    replicaSwizzleClogged(replica: number): boolean {
        assert(replica >= 0 && replica < this.replicaCount);
        return this.swizzleClogged[replica] === 1;
    }

    send(source: number, target: number, message: Message): void {
        assert(Number.isInteger(source) && source >= 0 && source < this.nodeCount);
        assert(Number.isInteger(target) && target >= 0 && target < this.nodeCount);
        assert(this.pool.owns(message));
        assert(message.references > 0);
        const sizeBytes = headerSizeOf(this.pool.arena.view, message.offset);
        assert(sizeBytes >= headerSize);
        assert(sizeBytes <= this.pool.messageSizeMax);
        this.stats.packetsSent++;
        if (!this.linkUp(source, target)) {
            this.stats.packetsDropped++;
            return;
        }
        const path = source * this.nodeCount + target;
        if (this.pathPacketCount[path]! === this.capacity) {
            // Drop one of the cap + 1 candidates uniformly; index cap is the new packet.
            const victimIndex = this.prng.int(this.capacity + 1);
            this.stats.packetsDropped++;
            if (victimIndex === this.capacity) return;
            this.packetDrop(this.pathSlots[path * this.capacity + victimIndex]!);
        }
        this.packetEnqueueCopy(path, message.offset, sizeBytes);
    }

    tick(): void {
        assert(!this.delivering); // Not re-entrant from a deliver callback.
        this.ticks++;
        if (!this.healed) {
            this.tickPartition();
            if (this.ticks >= this.pathClogEventTick) this.tickPathClogs();
            this.tickSwizzle();
        }
        this.deliverDue();
        assert(this.heapCount + this.heldCount <= this.slotCount);
    }

    heal(): void {
        assert(!this.delivering);
        this.healed = true;
        this.partitioned = false;
        this.partitionFlipTick = this.ticks;
        this.swizzlePhase = swizzleIdle;
        this.swizzleClogged.fill(0);
        this.pathClogUntilTick.fill(0);
        this.pathClogNextTick.fill(Infinity);
        this.pathClogEventTick = Infinity;
        const pathCount = this.nodeCount * this.nodeCount;
        for (let path = 0; path < pathCount; path++) this.pathRelease(path);
        assert(this.heldCount === 0);
    }

    /** Checks the bookkeeping from scratch (O(slots)); for tests. */
    invariants(): void {
        let queued = 0;
        let held = 0;
        for (let slot = 0; slot < this.slotCount; slot++) {
            const state = this.slotState[slot]!;
            assert((state === slotFree) === (this.slotMessage[slot] === null));
            assert((state === slotQueued) === this.heapPosition[slot]! >= 0);
            if (state === slotQueued) queued++;
            if (state === slotHeld) held++;
            const path = Math.floor(slot / this.capacity);
            const position = this.slotPosition[slot]!;
            assert(this.pathSlots[path * this.capacity + position] === slot);
            assert(position < this.pathPacketCount[path]! === (state !== slotFree));
        }
        assert(queued === this.heapCount);
        assert(held === this.heldCount);
        for (let index = 1; index < this.heapCount; index++) {
            const parentIndex = (index - 1) >> 1;
            assert(!this.heapLess(this.heap[index]!, this.heap[parentIndex]!));
        }
        const stats = this.stats;
        const outcomes = stats.packetsDelivered + stats.packetsDropped + queued + held;
        assert(stats.packetsSent + stats.packetsDuplicated === outcomes);
    }

    private delayTicks(): number {
        const options = this.options;
        const jitter = this.prng.exponential(options.oneWayDelayMeanTicks);
        const delay = options.oneWayDelayMinTicks + jitter;
        return delay === 0 ? 1 : delay;
    }

    private deliverDue(): void {
        // Every delivery or replay copy is due no earlier than the next tick, so each iteration
        // removes one packet due now: at most slotCount iterations.
        for (let iteration = 0; iteration <= this.slotCount; iteration++) {
            if (this.heapCount === 0) return;
            const slot = this.heap[0]!;
            if (this.slotDeliveryTick[slot]! > this.ticks) return;
            this.heapRemove(0);
            const path = Math.floor(slot / this.capacity);
            const source = Math.floor(path / this.nodeCount);
            const target = path - source * this.nodeCount;
            if (!this.linkUp(source, target)) {
                this.stats.packetsDropped++;
                this.packetFree(slot);
            } else if (this.pathClogged(source, target)) {
                this.slotState[slot] = slotHeld;
                this.pathHeldCount[path]!++;
                this.heldCount++;
            } else {
                this.packetDeliver(slot, path, target);
            }
        }
        unreachable();
    }

    private packetDeliver(slot: number, path: number, target: number): void {
        const message = this.slotMessage[slot];
        assert(message !== undefined && message !== null);
        assert(message.references > 0);
        this.slotMessage[slot] = null;
        this.slotRelease(slot);
        const options = this.options;
        if (!this.healed && options.packetLossProbability > 0) {
            if (this.prng.chance(options.packetLossProbability)) {
                this.stats.packetsDropped++;
                this.pool.unref(message);
                return;
            }
        }
        if (!this.healed && options.packetReplayProbability > 0) {
            if (this.prng.chance(options.packetReplayProbability)) {
                // The path has a free slot: the one this packet just left.
                assert(this.pathPacketCount[path]! < this.capacity);
                const sizeBytes = headerSizeOf(this.pool.arena.view, message.offset);
                this.packetEnqueueCopy(path, message.offset, sizeBytes);
                this.stats.packetsDuplicated++;
            }
        }
        this.stats.packetsDelivered++;
        this.delivering = true;
        this.deliver(target, message);
        this.delivering = false;
        this.pool.unref(message);
    }

    private packetEnqueueCopy(path: number, offset: number, sizeBytes: number): void {
        const count = this.pathPacketCount[path]!;
        assert(count < this.capacity);
        const slot = this.pathSlots[path * this.capacity + count]!;
        assert(this.slotState[slot] === slotFree);
        this.pathPacketCount[path] = count + 1;
        const copy = this.pool.acquire();
        this.pool.arena.bytes.copyWithin(copy.offset, offset, offset + sizeBytes);
        assert(this.sequence < Number.MAX_SAFE_INTEGER);
        this.slotMessage[slot] = copy;
        this.slotSequence[slot] = this.sequence++;
        this.slotDeliveryTick[slot] = this.ticks + this.delayTicks();
        this.slotState[slot] = slotQueued;
        this.heapPush(slot);
    }

    /** Drops a queued or held packet (capacity overflow). */
    private packetDrop(slot: number): void {
        const state = this.slotState[slot]!;
        assert(state === slotQueued || state === slotHeld);
        if (state === slotQueued) {
            this.heapRemove(this.heapPosition[slot]!);
        } else {
            this.pathHeldCount[Math.floor(slot / this.capacity)]!--;
            this.heldCount--;
        }
        this.packetFree(slot);
    }

    /** Frees a slot already out of the heap and the held count, with its message. */
    private packetFree(slot: number): void {
        const message = this.slotMessage[slot];
        assert(message !== undefined && message !== null);
        this.slotMessage[slot] = null;
        this.slotRelease(slot);
        this.pool.unref(message);
    }

    /** Returns a slot to its path's free part (swap with the last occupied slot). */
    private slotRelease(slot: number): void {
        assert(this.heapPosition[slot] === -1);
        const path = Math.floor(slot / this.capacity);
        const base = path * this.capacity;
        const last = this.pathPacketCount[path]! - 1;
        assert(last >= 0);
        const position = this.slotPosition[slot]!;
        assert(position <= last);
        const lastSlot = this.pathSlots[base + last]!;
        this.pathSlots[base + position] = lastSlot;
        this.slotPosition[lastSlot] = position;
        this.pathSlots[base + last] = slot;
        this.slotPosition[slot] = last;
        this.pathPacketCount[path] = last;
        this.slotState[slot] = slotFree;
    }

    /** Makes the held packets of a path that is no longer clogged due now, in send order. */
    private pathRelease(path: number): void {
        if (this.pathHeldCount[path]! === 0) return;
        const source = Math.floor(path / this.nodeCount);
        if (this.pathClogged(source, path - source * this.nodeCount)) return;
        const base = path * this.capacity;
        const count = this.pathPacketCount[path]!;
        for (let position = 0; position < count; position++) {
            const slot = this.pathSlots[base + position]!;
            if (this.slotState[slot] !== slotHeld) continue;
            this.slotState[slot] = slotQueued;
            this.slotDeliveryTick[slot] = this.ticks;
            this.heapPush(slot);
            this.heldCount--;
        }
        this.pathHeldCount[path] = 0;
        assert(this.heldCount >= 0);
    }

    private tickPartition(): void {
        const options = this.options;
        if (options.partitionMode === "none" || this.replicaCount < 2) return;
        const stableTicks = this.ticks - this.partitionFlipTick;
        if (this.partitioned) {
            if (stableTicks < options.partitionStabilityTicks) return;
            if (options.unpartitionProbability === 0) return;
            if (!this.prng.chance(options.unpartitionProbability)) return;
            this.partitioned = false;
            this.partitionFlipTick = this.ticks;
        } else {
            if (stableTicks < options.unpartitionStabilityTicks) return;
            if (options.partitionProbability === 0) return;
            if (!this.prng.chance(options.partitionProbability)) return;
            this.partitionStart();
        }
    }

    private partitionStart(): void {
        const replicaCount = this.replicaCount;
        assert(replicaCount >= 2);
        const side = this.partitionSide;
        side.fill(0);
        switch (this.options.partitionMode) {
            case "uniform_size": {
                const sizeOne = this.prng.range(1, replicaCount - 1);
                this.replicasShuffle();
                for (let index = 0; index < sizeOne; index++) side[this.replicaScratch[index]!] = 1;
                break;
            }
            case "uniform_partition": {
                let sideOneCount = 0;
                for (let replica = 0; replica < replicaCount; replica++) {
                    side[replica] = this.prng.int(2);
                    sideOneCount += side[replica]!;
                }
                // All on one side: move one random replica across.
                if (sideOneCount === 0 || sideOneCount === replicaCount) {
                    const replica = this.prng.int(replicaCount);
                    side[replica] = 1 - side[replica]!;
                }
                break;
            }
            case "isolate_single":
                side[this.prng.int(replicaCount)] = 1;
                break;
            case "none":
                unreachable();
        }
        this.partitionSendingSide = this.partitionAsymmetric ? this.prng.int(2) : 0;
        this.partitioned = true;
        this.partitionFlipTick = this.ticks;
        this.stats.partitions++;
    }

    /** Fills replicaScratch with a random permutation of the replicas (Fisher-Yates). */
    private replicasShuffle(): void {
        const scratch = this.replicaScratch;
        for (let replica = 0; replica < this.replicaCount; replica++) scratch[replica] = replica;
        for (let index = this.replicaCount - 1; index > 0; index--) {
            const other = this.prng.int(index + 1);
            const swap = scratch[index]!;
            scratch[index] = scratch[other]!;
            scratch[other] = swap;
        }
    }

    private tickPathClogs(): void {
        const nodeCount = this.nodeCount;
        let eventTick = Infinity;
        for (let source = 0; source < this.replicaCount; source++) {
            for (let target = 0; target < this.replicaCount; target++) {
                if (source === target) continue;
                const path = source * nodeCount + target;
                const untilTick = this.pathClogUntilTick[path]!;
                if (untilTick !== 0 && untilTick <= this.ticks) {
                    this.pathClogUntilTick[path] = 0;
                    this.pathClogSchedule(path);
                    this.pathRelease(path);
                } else if (untilTick === 0 && this.pathClogNextTick[path]! <= this.ticks) {
                    const mean = this.options.pathClogDurationMeanTicks;
                    this.pathClogUntilTick[path] = this.ticks + 1 + this.prng.exponential(mean);
                    this.stats.clogs++;
                }
                const next = this.pathClogUntilTick[path]!;
                eventTick = Math.min(eventTick, next !== 0 ? next : this.pathClogNextTick[path]!);
            }
        }
        assert(eventTick > this.ticks);
        this.pathClogEventTick = eventTick;
    }

    private pathClogScheduleAll(): void {
        let eventTick = Infinity;
        for (let source = 0; source < this.replicaCount; source++) {
            for (let target = 0; target < this.replicaCount; target++) {
                if (source === target) continue;
                const path = source * this.nodeCount + target;
                this.pathClogSchedule(path);
                eventTick = Math.min(eventTick, this.pathClogNextTick[path]!);
            }
        }
        this.pathClogEventTick = eventTick;
    }

    /** Draws when an unclogged path clogs next: a geometric number of ticks after this one. */
    private pathClogSchedule(path: number): void {
        assert(this.pathClogUntilTick[path] === 0);
        const probability = this.options.pathClogProbability;
        if (probability === 0) {
            this.pathClogNextTick[path] = Infinity;
        } else if (probability === 1) {
            this.pathClogNextTick[path] = this.ticks + 1;
        } else {
            // P(wait = k) = (1 - p)^k * p, the number of misses before the first hit.
            const uniform = 1 - this.prng.float(); // (0, 1]
            const wait = Math.floor(Math.log(uniform) / this.pathClogLogMiss);
            this.pathClogNextTick[path] = this.ticks + 1 + Math.min(wait, Number.MAX_SAFE_INTEGER);
        }
    }

    private tickSwizzle(): void {
        const options = this.options;
        if (this.replicaCount < 2) return;
        if (this.swizzlePhase === swizzleIdle) {
            if (options.swizzleClogProbability === 0) return;
            if (!this.prng.chance(options.swizzleClogProbability)) return;
            this.swizzleStart();
            return;
        }
        if (this.ticks < this.swizzleStepTick) return;
        const replica = this.swizzleOrder[this.swizzleStepIndex]!;
        this.swizzleStepIndex++;
        if (this.swizzlePhase === swizzleClogging) {
            assert(this.swizzleClogged[replica] === 0);
            this.swizzleClogged[replica] = 1;
            if (this.swizzleStepIndex === this.swizzleCount) {
                this.swizzleOrderShuffle();
                this.swizzlePhase = swizzleUnclogging;
                this.swizzleStepIndex = 0;
            }
        } else {
            assert(this.swizzleClogged[replica] === 1);
            this.swizzleClogged[replica] = 0;
            this.replicaRelease(replica);
            if (this.swizzleStepIndex === this.swizzleCount) this.swizzlePhase = swizzleIdle;
        }
        this.swizzleStepTick = this.ticks + this.swizzleStepTicks();
    }

    private swizzleStart(): void {
        assert(this.swizzlePhase === swizzleIdle);
        let count = 0;
        for (let replica = 0; replica < this.replicaCount; replica++) {
            assert(this.swizzleClogged[replica] === 0);
            if (this.prng.int(2) === 1) this.swizzleOrder[count++] = replica;
        }
        if (count === 0) this.swizzleOrder[count++] = this.prng.int(this.replicaCount);
        this.swizzleCount = count;
        this.swizzleOrderShuffle();
        this.swizzlePhase = swizzleClogging;
        this.swizzleStepIndex = 0;
        this.swizzleStepTick = this.ticks + this.swizzleStepTicks();
        this.stats.swizzleClogs++;
    }

    private swizzleOrderShuffle(): void {
        const order = this.swizzleOrder;
        for (let index = this.swizzleCount - 1; index > 0; index--) {
            const other = this.prng.int(index + 1);
            const swap = order[index]!;
            order[index] = order[other]!;
            order[other] = swap;
        }
    }

    private swizzleStepTicks(): number {
        const ticks = this.prng.exponential(this.options.swizzleStepMeanTicks);
        return ticks === 0 ? 1 : ticks;
    }

    /** Releases every replica path of a replica that is no longer clogged. */
    private replicaRelease(replica: number): void {
        for (let other = 0; other < this.replicaCount; other++) {
            if (other === replica) continue;
            this.pathRelease(replica * this.nodeCount + other);
            this.pathRelease(other * this.nodeCount + replica);
        }
    }

    private heapLess(a: number, b: number): boolean {
        const tickA = this.slotDeliveryTick[a]!;
        const tickB = this.slotDeliveryTick[b]!;
        if (tickA !== tickB) return tickA < tickB;
        return this.slotSequence[a]! < this.slotSequence[b]!;
    }

    private heapPush(slot: number): void {
        assert(this.heapPosition[slot] === -1);
        assert(this.heapCount < this.slotCount);
        const index = this.heapCount++;
        this.heap[index] = slot;
        this.heapPosition[slot] = index;
        this.heapSiftUp(index);
    }

    /** Removes the slot at heap index `index`. */
    private heapRemove(index: number): void {
        assert(index >= 0 && index < this.heapCount);
        const slot = this.heap[index]!;
        const last = --this.heapCount;
        this.heapPosition[slot] = -1;
        if (index === last) return;
        const moved = this.heap[last]!;
        this.heap[index] = moved;
        this.heapPosition[moved] = index;
        if (index > 0 && this.heapLess(moved, this.heap[(index - 1) >> 1]!)) {
            this.heapSiftUp(index);
        } else {
            this.heapSiftDown(index);
        }
    }

    /** Bounded: the index halves each step. */
    private heapSiftUp(start: number): void {
        const heap = this.heap;
        let index = start;
        const slot = heap[index]!;
        while (index > 0) {
            const parentIndex = (index - 1) >> 1;
            const parent = heap[parentIndex]!;
            if (!this.heapLess(slot, parent)) break;
            heap[index] = parent;
            this.heapPosition[parent] = index;
            index = parentIndex;
        }
        heap[index] = slot;
        this.heapPosition[slot] = index;
    }

    /** Bounded: the index at least doubles each step. */
    private heapSiftDown(start: number): void {
        const heap = this.heap;
        const count = this.heapCount;
        let index = start;
        const slot = heap[index]!;
        for (;;) {
            const left = 2 * index + 1;
            if (left >= count) break;
            const right = left + 1;
            let child = left;
            if (right < count && this.heapLess(heap[right]!, heap[left]!)) child = right;
            if (!this.heapLess(heap[child]!, slot)) break;
            heap[index] = heap[child]!;
            this.heapPosition[heap[index]!] = index;
            index = child;
        }
        heap[index] = slot;
        this.heapPosition[slot] = index;
    }
}
