// Tests for cluster time (src/vsr/clock.ts).
// Goal: Marzullo's algorithm returns the smallest interval agreed by the most sources; the clock
// turns ping/pong samples into offsets with round-trip bounds, synchronizes only once a window
// is old enough and a quorum agrees, leaves a far-off clock out, expires old epochs, and says
// "unsynchronized" (null) when no quorum agrees.
// Method: Marzullo is property-tested with fast-check against a brute-force count of the
// intervals covering each point (small integer offsets, so ties and touching intervals are
// common); failures print fast-check's seed and path. The clock runs over a hand-driven Time
// whose peers answer pings with a chosen clock error and round trip.

import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";

import { test as config } from "../../src/constants.js";
import { PRNG } from "../../src/stdx/prng.js";
import {
    Clock,
    Marzullo,
    clockEpochMaxUs,
    clockOffsetToleranceMaxUs,
    clockWindowMaxUs,
    clockWindowMinUs,
} from "../../src/vsr/clock.js";
import type { Time } from "../../src/vsr/interfaces.js";

// ---------------------------------------------------------------------------------------------
// Marzullo.

type Interval = readonly [number, number];

function cover(intervals: readonly Interval[], point: number): number {
    let count = 0;
    for (const [lower, upper] of intervals) if (lower <= point && point <= upper) count++;
    return count;
}

/** The most intervals covering one point, and the narrowest region they cover together. */
function bruteForce(intervals: readonly Interval[]): { sourcesTrue: number; widthMin: number } {
    const points = [...new Set(intervals.flat())].sort((a, b) => a - b);
    const sourcesTrue = Math.max(...points.map((point) => cover(intervals, point)));
    let widthMin = Number.POSITIVE_INFINITY;
    for (let index = 0; index < points.length; index++) {
        const point = points[index]!;
        const next = points[index + 1];
        const previous = points[index - 1];
        const rightCount = next === undefined ? 0 : cover(intervals, (point + next) / 2);
        const leftCount = previous === undefined ? 0 : cover(intervals, (previous + point) / 2);
        if (next !== undefined && rightCount === sourcesTrue) {
            widthMin = Math.min(widthMin, next - point);
        }
        const isolated = leftCount < sourcesTrue && rightCount < sourcesTrue;
        if (cover(intervals, point) === sourcesTrue && isolated) widthMin = 0;
    }
    return { sourcesTrue, widthMin };
}

function marzullo(intervals: readonly Interval[]): Marzullo {
    const algorithm = new Marzullo(Math.max(1, intervals.length));
    intervals.forEach(([lower, upper], source) => algorithm.add(source, lower, upper));
    algorithm.smallestInterval();
    return algorithm;
}

const intervalArbitrary = (span: number): fc.Arbitrary<Interval> =>
    fc
        .tuple(fc.integer({ min: -span, max: span }), fc.integer({ min: 0, max: span }))
        .map(([lower, width]) => [lower, lower + width] as const);

for (const span of [8, 1_000_000_000]) {
    test(`Marzullo agrees with a brute-force count over up to 12 intervals (span ${span})`, () => {
        fc.assert(
            fc.property(
                fc.array(intervalArbitrary(span), { minLength: 1, maxLength: 12 }),
                (intervals) => {
                    const result = marzullo(intervals);
                    const expected = bruteForce(intervals);
                    assert.equal(result.sourcesTrue, expected.sourcesTrue);
                    assert.equal(result.sourcesFalse, intervals.length - expected.sourcesTrue);
                    assert.equal(result.upperUs - result.lowerUs, expected.widthMin);
                    // Every point of the answer lies in sourcesTrue intervals.
                    const middle = (result.lowerUs + result.upperUs) / 2;
                    for (const point of [result.lowerUs, middle, result.upperUs]) {
                        assert.equal(cover(intervals, point), result.sourcesTrue);
                    }
                },
            ),
            { numRuns: 2_000 },
        );
    });
}

test("Marzullo: worked examples (ties go to the narrower, touching intervals agree)", () => {
    const first = marzullo([
        [0, 10],
        [5, 15],
        [12, 20],
    ]);
    assert.deepEqual([first.lowerUs, first.upperUs, first.sourcesTrue], [12, 15, 2]);
    const touching = marzullo([
        [0, 5],
        [5, 9],
    ]);
    assert.deepEqual([touching.lowerUs, touching.upperUs, touching.sourcesTrue], [5, 5, 2]);
    const narrower = marzullo([
        [0, 10],
        [2, 9],
        [20, 30],
        [21, 22],
    ]);
    assert.deepEqual([narrower.lowerUs, narrower.upperUs, narrower.sourcesTrue], [21, 22, 2]);
    const none = new Marzullo(3);
    none.smallestInterval();
    assert.deepEqual([none.sourcesTrue, none.sourcesFalse], [0, 0]);
});

// ---------------------------------------------------------------------------------------------
// Clock.

const epochUs = 1_767_225_600_000_000;
const hourUs = 3_600_000_000;

/** True time plus this replica's error; monotonic time is true time since the start. */
class ManualTime implements Time {
    trueUs = 0;
    errorUs = 0;

    monotonicUs(): number {
        return this.trueUs + 1;
    }

    realtimeUs(): number {
        return epochUs + this.trueUs + this.errorUs;
    }
}

interface Peer {
    readonly replica: number;
    /** The peer's clock error (its wall clock minus true time). */
    readonly errorUs: number;
    /** How long the ping takes to reach the peer, and the pong to come back. */
    readonly forwardUs: number;
    readonly backwardUs: number;
}

function clockOf(replicaCount: number, time: ManualTime): Clock {
    const options = { config, replica: 0, replicaCount, time, prng: new PRNG(1) };
    return new Clock(options, replicaCount <= 2 ? replicaCount : Math.ceil(replicaCount / 2));
}

/** One ping/pong round trip per peer, then ticks to fill `durationUs` in steps of 100 ms. */
function run(clock: Clock, time: ManualTime, peers: readonly Peer[], durationUs: number): void {
    const endUs = time.trueUs + durationUs;
    while (time.trueUs < endUs) {
        const startUs = time.trueUs;
        for (const peer of peers) {
            const m0 = time.monotonicUs();
            const t1 = epochUs + startUs + peer.forwardUs + peer.errorUs;
            time.trueUs = startUs + peer.forwardUs + peer.backwardUs;
            clock.learn(peer.replica, m0, t1, time.monotonicUs());
            time.trueUs = startUs;
        }
        time.trueUs = startUs + 100_000;
        clock.tick();
    }
}

function errorOf(clock: Clock, time: ManualTime): number {
    const clusterUs = clock.realtimeSynchronizedUs();
    assert.notEqual(clusterUs, null, "synchronized");
    return (clusterUs as number) - (epochUs + time.trueUs);
}

test("a sample's offset is right within its one-way delay, and synchronized time is near true", () => {
    const time = new ManualTime();
    const clock = clockOf(3, time);
    const peers = [
        { replica: 1, errorUs: 0, forwardUs: 3_000, backwardUs: 3_000 },
        { replica: 2, errorUs: 0, forwardUs: 1_000, backwardUs: 9_000 },
    ];
    run(clock, time, peers, clockWindowMinUs + 200_000);
    assert.ok(clock.synchronized);
    assert.equal(clock.stats.synchronizations, 1);
    // Our own clock agrees with peer 1 exactly, so even tolerance 0 has a quorum.
    assert.equal(errorOf(clock, time), 0);
    assert.equal(clock.errorBoundUs(), 2 * 5_000);
});

test("no window synchronizes before windowMin, and an epoch expires after epochMax", () => {
    const time = new ManualTime();
    const clock = clockOf(3, time);
    const peer = { replica: 1, errorUs: 0, forwardUs: 1_000, backwardUs: 1_000 };
    run(clock, time, [peer], clockWindowMinUs - 200_000);
    assert.equal(clock.realtimeSynchronizedUs(), null);
    run(clock, time, [peer], 400_000);
    assert.notEqual(clock.realtimeSynchronizedUs(), null);
    // Silence: no new window can synchronize, so the epoch ages out.
    run(clock, time, [], clockEpochMaxUs);
    assert.equal(clock.realtimeSynchronizedUs(), null);
    assert.equal(clock.stats.epochsExpired, 1);
    assert.ok(clock.stats.windowsExpired >= 1);
});

test("a replica whose clock is an hour off is left out of cluster time (replicas=3)", () => {
    const time = new ManualTime();
    const clock = clockOf(3, time);
    const peers = [
        { replica: 1, errorUs: 40_000, forwardUs: 2_000, backwardUs: 2_000 },
        { replica: 2, errorUs: hourUs, forwardUs: 2_000, backwardUs: 2_000 },
    ];
    run(clock, time, peers, clockWindowMinUs + 200_000);
    const errorUs = errorOf(clock, time);
    assert.ok(errorUs >= 0 && errorUs <= 40_000 + 2_000, String(errorUs));
});

test("our own clock an hour off is clamped into the cluster's interval (replicas=3)", () => {
    const time = new ManualTime();
    time.errorUs = hourUs;
    const clock = clockOf(3, time);
    const peers = [
        { replica: 1, errorUs: 0, forwardUs: 2_000, backwardUs: 2_000 },
        { replica: 2, errorUs: 10_000, forwardUs: 2_000, backwardUs: 2_000 },
    ];
    run(clock, time, peers, clockWindowMinUs + 200_000);
    assert.ok(Math.abs(errorOf(clock, time)) <= clock.errorBoundUs() + 10_000);
    // A jump of our clock after synchronizing moves cluster time no further than the interval.
    time.errorUs = -hourUs;
    assert.ok(Math.abs(errorOf(clock, time)) <= clock.errorBoundUs() + 10_000);
});

test("no quorum within the tolerance leaves the clock unsynchronized (null)", () => {
    const time = new ManualTime();
    const clock = clockOf(3, time);
    const peers = [
        { replica: 1, errorUs: 3 * clockOffsetToleranceMaxUs, forwardUs: 1_000, backwardUs: 1_000 },
        {
            replica: 2,
            errorUs: -3 * clockOffsetToleranceMaxUs,
            forwardUs: 1_000,
            backwardUs: 1_000,
        },
    ];
    run(clock, time, peers, clockWindowMaxUs + 1_000_000);
    assert.equal(clock.realtimeSynchronizedUs(), null);
    assert.equal(clock.synchronized, false);
    assert.equal(clock.stats.synchronizations, 0);
    assert.ok(clock.stats.windowsExpired >= 1);
    // Alone (no peer heard at all) it never synchronizes either.
    const lonely = clockOf(5, new ManualTime());
    for (let tick = 0; tick < 1_000; tick++) lonely.tick();
    assert.equal(lonely.realtimeSynchronizedUs(), null);
});

test("pongs from before the window or from the future are rejected, not learned", () => {
    const time = new ManualTime();
    const clock = clockOf(3, time);
    time.trueUs = 1_000_000;
    clock.learn(1, 0, epochUs, time.monotonicUs()); // m0 before the window began.
    clock.learn(1, time.monotonicUs() + 10, epochUs, time.monotonicUs()); // m0 after m2.
    assert.equal(clock.stats.samplesRejected, 2);
    assert.equal(clock.stats.samplesLearned, 0);
});

test("a cluster of one uses its own clock as cluster time", () => {
    const time = new ManualTime();
    time.errorUs = 123;
    const clock = clockOf(1, time);
    assert.ok(clock.synchronized);
    assert.equal(errorOf(clock, time), 123);
    assert.equal(clock.errorBoundUs(), 0);
});
