// Tests for the simulated packet network: delay and delivery order, determinism per seed, loss,
// replay, path capacity, symmetric and asymmetric partitions (never on client paths), clogs,
// swizzle-clog episodes, heal(), pool references (no leaks, packetsMax holds) and the swarm
// option draws. Test messages are 4 KiB pool messages with a valid size at header offset 96 and
// a tag (u32 at offset 128) that names them in delivery traces. Failures print their seed.

import { test } from "node:test";
import assert from "node:assert/strict";

import { Arena } from "../../src/vsr/arena.js";
import { MessagePool, type Message } from "../../src/vsr/message_pool.js";
import { PRNG } from "../../src/stdx/prng.js";
import {
    Network,
    swarmNetworkOptions,
    type NetworkOptions,
    type PartitionMode,
} from "../../src/sim/network.js";

const messageSizeMax = 4096;
const sizeOffset = 96;
const tagOffset = 128;

/** No faults, delay exactly `delay` ticks. */
function calmOptions(replicaCount: number, clientCount: number): NetworkOptions {
    return {
        nodeCount: replicaCount + clientCount,
        replicaCount,
        pathCapacityMax: 8,
        oneWayDelayMinTicks: 1,
        oneWayDelayMeanTicks: 0,
        packetLossProbability: 0,
        packetReplayProbability: 0,
        partitionMode: "none",
        partitionSymmetry: "symmetric",
        partitionProbability: 0,
        unpartitionProbability: 0,
        partitionStabilityTicks: 0,
        unpartitionStabilityTicks: 0,
        pathClogProbability: 0,
        pathClogDurationMeanTicks: 0,
        swizzleClogProbability: 0,
        swizzleStepMeanTicks: 0,
    };
}

/** Every fault on, hard. */
function brutalOptions(replicaCount: number, clientCount: number): NetworkOptions {
    return {
        ...calmOptions(replicaCount, clientCount),
        pathCapacityMax: 4,
        oneWayDelayMinTicks: 0,
        oneWayDelayMeanTicks: 6,
        packetLossProbability: 0.2,
        packetReplayProbability: 0.4,
        partitionMode: "uniform_partition",
        partitionSymmetry: "asymmetric",
        partitionProbability: 0.05,
        unpartitionProbability: 0.1,
        partitionStabilityTicks: 20,
        unpartitionStabilityTicks: 5,
        pathClogProbability: 0.01,
        pathClogDurationMeanTicks: 20,
        swizzleClogProbability: 0.02,
        swizzleStepMeanTicks: 5,
    };
}

interface Delivery {
    tick: number;
    target: number;
    tag: number;
}

class Harness {
    readonly pool: MessagePool;
    readonly network: Network;
    readonly deliveries: Delivery[] = [];
    readonly freeAtStart: number;
    /** Called after a delivery is recorded, e.g. to reply from inside the callback. */
    onDeliver: ((target: number, message: Message) => void) | null = null;
    private tagNext = 0;

    constructor(options: NetworkOptions, seed: number, extraMessages = 8) {
        const messagesMax = Network.packetsMax(options) + extraMessages;
        const arena = new Arena(MessagePool.sizeBytes(messageSizeMax, messagesMax));
        this.pool = new MessagePool(arena, messageSizeMax, messagesMax);
        this.freeAtStart = this.pool.free;
        this.network = new Network(options, new PRNG(seed), this.pool, (target, message) => {
            assert.ok(message.references > 0);
            const tag = arena.view.getUint32(message.offset + tagOffset, true);
            this.deliveries.push({ tick: this.network.tickCount, target, tag });
            if (this.onDeliver !== null) this.onDeliver(target, message);
        });
    }

    /** Sends a fresh message (size 256 + body) and returns its tag. */
    send(source: number, target: number, bodySize = 64): number {
        const message = this.pool.acquire();
        const view = this.pool.arena.view;
        const tag = this.tagNext++;
        view.setUint32(message.offset + sizeOffset, 256 + bodySize, true);
        view.setUint32(message.offset + tagOffset, tag, true);
        this.network.send(source, target, message);
        this.pool.unref(message); // The caller keeps only its own reference.
        return tag;
    }

    ticks(count: number): void {
        for (let index = 0; index < count; index++) {
            this.network.tick();
            this.network.invariants();
        }
    }

    /** Heals, then ticks until the network holds nothing. */
    drain(): void {
        this.network.heal();
        for (let index = 0; index < 100_000 && this.network.packetsQueued > 0; index++) {
            this.network.tick();
        }
        this.network.invariants();
        assert.equal(this.network.packetsQueued, 0);
    }

    tagsTo(target: number): number[] {
        return this.deliveries.filter((delivery) => delivery.target === target).map((d) => d.tag);
    }
}

/** Random traffic among all nodes (replies from inside deliveries too) for `ticks` ticks. */
function randomTraffic(harness: Harness, seed: number, ticks: number): void {
    const prng = new PRNG(seed);
    const nodeCount = harness.network.options.nodeCount;
    harness.onDeliver = (target) => {
        if (prng.chance(0.3)) harness.send(target, prng.int(nodeCount), prng.int(3000));
    };
    for (let tick = 0; tick < ticks; tick++) {
        const sends = prng.int(4);
        for (let index = 0; index < sends; index++) {
            harness.send(prng.int(nodeCount), prng.int(nodeCount), prng.int(3000));
        }
        harness.ticks(1);
    }
    harness.onDeliver = null;
}

test("a packet arrives exactly after its delay, never inside send (delay=3, and delay=0)", () => {
    const options = { ...calmOptions(3, 1), oneWayDelayMinTicks: 3 };
    const harness = new Harness(options, 1);
    const tag = harness.send(0, 1);
    harness.ticks(2);
    assert.deepEqual(harness.deliveries, []);
    harness.ticks(1);
    assert.deepEqual(harness.deliveries, [{ tick: 3, target: 1, tag }]);

    const immediate = new Harness({ ...calmOptions(3, 1), oneWayDelayMinTicks: 0 }, 1);
    const self = immediate.send(2, 2);
    assert.deepEqual(immediate.deliveries, []);
    immediate.ticks(1);
    assert.deepEqual(immediate.deliveries, [{ tick: 1, target: 2, tag: self }]);
});

test("same-tick packets arrive in send order, all packets by delivery tick then sequence", () => {
    const harness = new Harness({ ...calmOptions(3, 2), oneWayDelayMinTicks: 2 }, 7);
    const tags = [harness.send(0, 1), harness.send(4, 1), harness.send(1, 1), harness.send(2, 0)];
    harness.ticks(2);
    assert.deepEqual(
        harness.deliveries.map((delivery) => delivery.tag),
        tags,
    );

    const options = { ...calmOptions(3, 2), pathCapacityMax: 64, oneWayDelayMeanTicks: 8 };
    const jittered = new Harness(options, 11);
    const sentTick: number[] = [];
    for (let tick = 0; tick < 40; tick++) {
        for (let index = 0; index < 3; index++) {
            sentTick[jittered.send(tick % 5, (tick + index) % 5)] = tick;
        }
        jittered.ticks(1);
    }
    jittered.drain();
    const deliveries = jittered.deliveries;
    assert.equal(deliveries.length, 120);
    let reordered = false;
    for (let index = 1; index < deliveries.length; index++) {
        const previous = deliveries[index - 1]!;
        const current = deliveries[index]!;
        assert.ok(current.tick >= previous.tick);
        // Within a tick, packets arrive by send sequence (tags grow with it).
        if (current.tick === previous.tick) assert.ok(current.tag > previous.tag);
        if (current.tag < previous.tag) reordered = true;
    }
    for (const delivery of deliveries) assert.ok(delivery.tick > sentTick[delivery.tag]!);
    assert.ok(reordered);
});

test("the same seed gives the same delivery trace, another seed a different one", () => {
    const traces: string[] = [];
    for (const seed of [42, 42, 43]) {
        const harness = new Harness(brutalOptions(5, 2), seed);
        randomTraffic(harness, 1000, 2000);
        harness.drain();
        assert.ok(harness.deliveries.length > 1000);
        traces.push(JSON.stringify([harness.deliveries, harness.network.stats]));
    }
    assert.equal(traces[0], traces[1]);
    assert.notEqual(traces[0], traces[2]);
});

test("loss of 100% drops every packet and counts it", () => {
    const harness = new Harness({ ...calmOptions(3, 1), packetLossProbability: 1 }, 3);
    for (let index = 0; index < 20; index++) harness.send(index % 4, (index + 1) % 4);
    harness.ticks(10);
    assert.deepEqual(harness.deliveries, []);
    assert.equal(harness.network.stats.packetsSent, 20);
    assert.equal(harness.network.stats.packetsDropped, 20);
    assert.equal(harness.network.packetsQueued, 0);
    assert.equal(harness.pool.free, harness.freeAtStart);
});

test("replay delivers a packet again later, byte for byte (replay=50%)", () => {
    const options = { ...calmOptions(2, 1), pathCapacityMax: 64, packetReplayProbability: 0.5 };
    const harness = new Harness(options, 5);
    harness.onDeliver = (_target, message) => {
        assert.equal(harness.pool.arena.view.getUint32(message.offset + sizeOffset, true), 320);
    };
    for (let index = 0; index < 50; index++) harness.send(0, 1);
    harness.ticks(200);
    harness.drain();
    const stats = harness.network.stats;
    assert.ok(stats.packetsDuplicated > 10);
    assert.equal(stats.packetsDelivered, 50 + stats.packetsDuplicated);
    assert.equal(stats.packetsDropped, 0);
    const seen = new Set(harness.tagsTo(1));
    assert.equal(seen.size, 50);
    assert.ok(harness.deliveries.length > seen.size);
    assert.equal(harness.pool.free, harness.freeAtStart);
});

test("a full path drops a random queued packet or the new one (capacity=2)", () => {
    const options = { ...calmOptions(2, 0), pathCapacityMax: 2, oneWayDelayMinTicks: 5 };
    const harness = new Harness(options, 9);
    for (let index = 0; index < 6; index++) harness.send(0, 1);
    harness.send(1, 0); // Another path: unaffected.
    harness.ticks(5);
    assert.equal(harness.tagsTo(1).length, 2);
    assert.equal(harness.tagsTo(0).length, 1);
    assert.equal(harness.network.stats.packetsDropped, 4);
    assert.equal(harness.pool.free, harness.freeAtStart);
});

/** Replica classes under mutual reachability, and whether each cross pair is one-way. */
function partitionShape(network: Network, replicaCount: number): number[][] {
    const classes: number[][] = [];
    for (let replica = 0; replica < replicaCount; replica++) {
        const home = classes.find((members) => {
            const other = members[0]!;
            return network.linkUp(replica, other) && network.linkUp(other, replica);
        });
        if (home === undefined) classes.push([replica]);
        else home.push(replica);
    }
    return classes;
}

const modes: PartitionMode[] = ["uniform_size", "uniform_partition", "isolate_single"];
for (const mode of modes) {
    for (const symmetry of ["symmetric", "asymmetric"] as const) {
        test(`a ${symmetry} ${mode} partition blocks the right links, never clients`, () => {
            for (let seed = 1; seed <= 40; seed++) {
                checkPartition(mode, symmetry, seed, 2 + (seed % 5));
            }
        });
    }
}

function checkPartition(
    mode: PartitionMode,
    symmetry: "symmetric" | "asymmetric",
    seed: number,
    replicaCount: number,
): void {
    const options: NetworkOptions = {
        ...calmOptions(replicaCount, 2),
        partitionMode: mode,
        partitionSymmetry: symmetry,
        partitionProbability: 1,
    };
    const harness = new Harness(options, seed);
    const network = harness.network;
    harness.ticks(1);
    assert.equal(network.stats.partitions, 1, `seed=${seed}`);
    const classes = partitionShape(network, replicaCount);
    assert.equal(classes.length, 2, `seed=${seed}`);
    if (mode === "isolate_single") assert.ok(classes.some((members) => members.length === 1));
    const [sideA, sideB] = [classes[0]!, classes[1]!];
    const aToB = network.linkUp(sideA[0]!, sideB[0]!);
    const bToA = network.linkUp(sideB[0]!, sideA[0]!);
    assert.equal(aToB || bToA, symmetry === "asymmetric", `seed=${seed}`);
    for (const a of sideA) {
        for (const b of sideB) {
            assert.equal(network.linkUp(a, b), aToB);
            assert.equal(network.linkUp(b, a), bToA);
        }
    }
    for (let client = replicaCount; client < options.nodeCount; client++) {
        for (let node = 0; node < options.nodeCount; node++) {
            assert.ok(network.linkUp(client, node) && network.linkUp(node, client));
        }
    }
    // A blocked link drops at send; client packets get through.
    const [blockedSource, blockedTarget] = aToB ? [sideB[0]!, sideA[0]!] : [sideA[0]!, sideB[0]!];
    harness.send(blockedSource, blockedTarget);
    harness.send(replicaCount, sideA[0]!);
    harness.send(sideB[0]!, replicaCount + 1);
    harness.ticks(2);
    assert.equal(network.stats.packetsDropped, 1);
    assert.deepEqual(
        harness.deliveries.map((delivery) => delivery.target).sort(),
        [replicaCount + 1, sideA[0]!].sort(),
    );
}

test("a partition drops packets already in flight across it, and heals after stability", () => {
    const options: NetworkOptions = {
        ...calmOptions(3, 1),
        oneWayDelayMinTicks: 10,
        partitionMode: "isolate_single",
        partitionProbability: 1,
        unpartitionProbability: 1,
        partitionStabilityTicks: 30,
        unpartitionStabilityTicks: 5,
    };
    const harness = new Harness(options, 21);
    for (let source = 0; source < 3; source++) {
        for (let target = 0; target < 3; target++) {
            if (source !== target) harness.send(source, target);
        }
    }
    harness.ticks(4);
    assert.equal(partitionShape(harness.network, 3).length, 1);
    harness.ticks(1); // Unpartitioned for 5 ticks: now the isolated replica's 4 links are down.
    assert.equal(partitionShape(harness.network, 3).length, 2);
    harness.ticks(5); // The packets sent at tick 0 come due at tick 10.
    assert.equal(harness.deliveries.length, 2);
    assert.equal(harness.network.stats.packetsDropped, 4);
    harness.ticks(24);
    assert.equal(partitionShape(harness.network, 3).length, 2);
    harness.ticks(1); // Partitioned for 30 ticks, then healed with probability 1.
    assert.equal(partitionShape(harness.network, 3).length, 1);
    harness.ticks(4);
    assert.equal(harness.network.stats.partitions, 1);
    harness.ticks(1); // Unpartitioned for 5 ticks, then partitioned again.
    assert.equal(harness.network.stats.partitions, 2);
});

test("a single replica is never partitioned or clogged (replicas=1)", () => {
    const options: NetworkOptions = {
        ...brutalOptions(1, 3),
        partitionMode: "uniform_size",
        partitionProbability: 1,
        pathClogProbability: 1,
        swizzleClogProbability: 1,
    };
    const harness = new Harness(options, 2);
    randomTraffic(harness, 2, 300);
    const stats = harness.network.stats;
    assert.equal(stats.partitions + stats.clogs + stats.swizzleClogs, 0);
    harness.drain();
});

test("a clogged path holds its packets and delivers them once it unclogs", () => {
    const options: NetworkOptions = {
        ...calmOptions(2, 1),
        pathClogProbability: 0.05,
        pathClogDurationMeanTicks: 30,
    };
    const harness = new Harness(options, 17);
    const network = harness.network;
    harness.ticks(1);
    let clogged = 0;
    for (let tick = 0; tick < 2000; tick++) {
        harness.send(0, 1);
        harness.send(2, 0); // A client path: never clogged.
        const before = harness.deliveries.length;
        const cloggedBefore = network.pathClogged(0, 1);
        harness.ticks(1);
        const toReplica = harness.deliveries.slice(before).filter((d) => d.target === 1);
        if (network.pathClogged(0, 1)) {
            clogged++;
            assert.equal(toReplica.length, 0);
        } else if (cloggedBefore) {
            assert.ok(toReplica.length > 1); // The held packets arrive at once.
        }
        assert.ok(!network.pathClogged(2, 0) && !network.pathClogged(0, 2));
        assert.ok(!network.pathClogged(0, 0));
    }
    assert.ok(network.stats.clogs > 5);
    assert.ok(clogged > 100);
    const capacityDrops = network.stats.packetsDropped;
    harness.drain();
    assert.equal(harness.tagsTo(1).length + capacityDrops, 2000);
    assert.equal(harness.tagsTo(0).length, 2000);
});

test("a swizzle-clog episode clogs then unclogs every chosen replica one at a time", () => {
    for (let seed = 1; seed <= 20; seed++) {
        const replicaCount = 2 + (seed % 5);
        const options: NetworkOptions = {
            ...calmOptions(replicaCount, 1),
            pathCapacityMax: 64,
            swizzleClogProbability: 1,
            swizzleStepMeanTicks: 4,
        };
        const harness = new Harness(options, seed);
        checkSwizzleEpisode(harness, replicaCount, seed);
    }
});

function checkSwizzleEpisode(harness: Harness, replicaCount: number, seed: number): void {
    const network = harness.network;
    harness.ticks(1);
    assert.equal(network.stats.swizzleClogs, 1);
    const chosen = new Set<number>();
    const counts: number[] = [];
    for (let tick = 0; tick < 10_000 && network.swizzleClogActive; tick++) {
        harness.send(tick % replicaCount, (tick + 1) % replicaCount);
        harness.ticks(1);
        let count = 0;
        for (let replica = 0; replica < replicaCount; replica++) {
            const swizzled = network.replicaSwizzleClogged(replica);
            if (swizzled) chosen.add(replica);
            count += swizzled ? 1 : 0;
            for (let other = 0; other < replicaCount; other++) {
                const otherSwizzled = network.replicaSwizzleClogged(other);
                const expected = other !== replica && (swizzled || otherSwizzled);
                assert.equal(network.pathClogged(replica, other), expected);
            }
            assert.ok(!network.pathClogged(replica, replicaCount));
        }
        counts.push(count);
    }
    assert.ok(!network.swizzleClogActive, `seed=${seed}`);
    assert.equal(network.stats.swizzleClogs, 1);
    // Up one replica at a time to all chosen, then down one at a time to none.
    const peak = counts.indexOf(chosen.size);
    assert.ok(chosen.size >= 1 && peak >= 0, `seed=${seed}`);
    for (let index = 1; index < counts.length; index++) {
        const step = counts[index]! - counts[index - 1]!;
        assert.ok(index <= peak ? step === 0 || step === 1 : step === 0 || step === -1);
    }
    assert.equal(counts[counts.length - 1], 0);
    const sent = network.stats.packetsSent;
    harness.drain();
    assert.equal(harness.deliveries.length, sent); // Held, never dropped.
}

test("heal() ends partitions and clogs and stops every fault but delay", () => {
    const options: NetworkOptions = { ...brutalOptions(5, 2), pathCapacityMax: 64 };
    const harness = new Harness(options, 31);
    randomTraffic(harness, 31, 3000);
    const network = harness.network;
    const stats = network.stats;
    assert.ok(stats.partitions > 0 && stats.clogs > 0 && stats.swizzleClogs > 0);
    assert.ok(stats.packetsDropped > 0 && stats.packetsDuplicated > 0);
    harness.drain();
    const before = { ...stats };
    for (let source = 0; source < 7; source++) {
        for (let target = 0; target < 7; target++) {
            assert.ok(network.linkUp(source, target));
            assert.ok(!network.pathClogged(source, target));
        }
    }
    const deliveredBefore = harness.deliveries.length;
    for (let tick = 0; tick < 3000; tick++) {
        harness.send(tick % 7, (tick * 3) % 7);
        harness.ticks(1);
    }
    harness.drain();
    assert.equal(harness.deliveries.length - deliveredBefore, 3000);
    assert.equal(stats.packetsDropped, before.packetsDropped);
    assert.equal(stats.packetsDuplicated, before.packetsDuplicated);
    assert.equal(stats.partitions, before.partitions);
    assert.equal(stats.clogs, before.clogs);
    assert.equal(stats.swizzleClogs, before.swizzleClogs);
});

test("pool references return to the start after heavy faulty traffic, within packetsMax", () => {
    for (const seed of [1, 2, 3]) {
        const options = swarmNetworkOptions(new PRNG(seed), 6, 3);
        const brutal = { ...brutalOptions(6, 3), pathCapacityMax: options.pathCapacityMax };
        // One message beyond packetsMax: the sender's own, even when it replies inside a delivery.
        const harness = new Harness(brutal, seed, 1);
        randomTraffic(harness, seed, 5000);
        harness.drain();
        const stats = harness.network.stats;
        assert.equal(harness.pool.free, harness.freeAtStart, `seed=${seed}`);
        assert.equal(
            stats.packetsSent + stats.packetsDuplicated,
            harness.deliveries.length + stats.packetsDropped,
        );
    }
});

test("swarmNetworkOptions draws valid, varied mixes per seed (replicas=1..6)", () => {
    const mixes = new Set<string>();
    let calm = 0;
    let lossy = 0;
    let partitioning = 0;
    for (let seed = 0; seed < 300; seed++) {
        const replicaCount = 1 + (seed % 6);
        const options = swarmNetworkOptions(new PRNG(seed), replicaCount, seed % 4);
        assert.equal(options.nodeCount, replicaCount + (seed % 4));
        assert.ok(options.packetLossProbability >= 0 && options.packetLossProbability <= 0.3);
        assert.ok(options.packetReplayProbability >= 0 && options.packetReplayProbability <= 0.5);
        assert.ok(options.oneWayDelayMinTicks >= 0 && options.oneWayDelayMinTicks <= 3);
        assert.ok(options.oneWayDelayMeanTicks >= 0 && options.oneWayDelayMeanTicks <= 10);
        assert.ok(options.pathCapacityMax >= 2 && options.pathCapacityMax <= 20);
        assert.ok(options.partitionProbability <= 0.03 && options.pathClogProbability <= 0.01);
        if (replicaCount === 1) assert.equal(options.partitionMode, "none");
        if (options.packetLossProbability === 0 && options.pathClogProbability === 0) calm++;
        if (options.packetLossProbability > 0.15) lossy++;
        if (options.partitionMode !== "none") partitioning++;
        mixes.add(JSON.stringify(options));
        new Network(options, new PRNG(seed), new MessagePool(new Arena(1 << 16), 4096, 1), noop);
    }
    assert.equal(mixes.size, 300);
    assert.ok(calm > 30 && lossy > 30 && partitioning > 30);
    const again = swarmNetworkOptions(new PRNG(7), 3, 2);
    assert.deepEqual(again, swarmNetworkOptions(new PRNG(7), 3, 2));
});

function noop(): void {}
