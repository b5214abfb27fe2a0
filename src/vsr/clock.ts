// Cluster time: each replica estimates how far its own wall clock is from the cluster's, so that
// the primary stamps prepares with a time a quorum of clocks agrees on, not with whatever its own
// clock says (it may have jumped, drifted, or been set an hour wrong by an operator).
//
// Samples (TigerBeetle's scheme): a replica pings every peer with its monotonic time m0; the peer
// answers with a pong carrying m0 back and its own wall clock t1; on receipt the replica reads its
// monotonic m2. The peer read t1 somewhere in [m0, m2], so with one_way_delay = (m2 - m0) / 2 the
// offset t1 + one_way_delay - (our time at m2) is right within ± one_way_delay (plus the peer's
// own clock error). "Our time" is the window's start wall clock plus monotonic time elapsed
// since: a jump of our wall clock inside a window moves no sample. Per peer the window keeps the
// sample with the smallest delay (the tightest bound). This replica is always a source with
// offset 0 and delay 0.
//
// Synchronizing: once a window is at least windowMin old and learned something new, every sample
// becomes the interval offset ± (delay + tolerance). Starting at the tolerance maximum, halving
// down to zero, Marzullo's algorithm finds the smallest interval that the most sources agree on;
// the last tolerance at which at least `quorum` sources still agree wins. The window then becomes
// the epoch (the interval in use) and a new window starts. An epoch older than epochMax (drift
// makes old offsets wrong) expires: the clock is unsynchronized until a window agrees again; a
// window that cannot agree within windowMax starts over.
//
// Reading: realtimeSynchronizedUs() is this replica's wall clock clamped into the epoch's interval
// (moved forward by the monotonic time since), or null when unsynchronized. A cluster of one has
// no peers to agree with: its own clock is cluster time.
//
// Left out on purpose: TigerBeetle's asymmetric-delay correction, which can move a sample outside
// its own ± delay bound; without it every interval provably contains the source's true offset.
//
// Memory: per-source samples in typed arrays sized at construction; no allocation after. Times
// (µs, above 2^31) cross calls only through Float64Arrays or as u32 halves written in place: V8
// boxes a double passed to, or returned from, a call it does not inline (a heap number each).

import { assert } from "../stdx/assert.js";
import type { PRNG } from "../stdx/prng.js";
import { type Config, replicasMax } from "../constants.js";
import type { Time } from "./interfaces.js";
import { Timeout } from "./timeout.js";
import { Frame, Pong } from "./header.js";

/** The widest disagreement still called synchronized (TigerBeetle: 10 s). */
export const clockOffsetToleranceMaxUs = 10_000_000;
/** An epoch is used at most this long after its window began (drift accumulates). */
export const clockEpochMaxUs = 60_000_000;
/** A window collects samples at least this long before it may synchronize. */
export const clockWindowMinUs = 2_000_000;
/** A window that has not synchronized by now is discarded. */
export const clockWindowMaxUs = 20_000_000;
/** Each replica pings every peer this often. */
export const clockPingIntervalUs = 1_000_000;

const boundLower = 0;
const boundUpper = 1;

/**
 * Marzullo's algorithm over at most `sourcesMax` closed intervals, in preallocated scratch:
 * the smallest interval contained in the most source intervals. Intervals that only touch
 * (one's upper bound equals another's lower bound) agree at that point.
 */
export class Marzullo {
    readonly sourcesMax: number;
    private readonly offsets: Float64Array;
    private readonly bounds: Uint8Array;
    private readonly sources: Uint8Array;
    private count = 0;
    // The result of the last smallestInterval().
    lowerUs = 0;
    upperUs = 0;
    sourcesTrue = 0;
    sourcesFalse = 0;

    constructor(sourcesMax: number) {
        assert(sourcesMax >= 1 && sourcesMax <= 255);
        this.sourcesMax = sourcesMax;
        this.offsets = new Float64Array(2 * sourcesMax);
        this.bounds = new Uint8Array(2 * sourcesMax);
        this.sources = new Uint8Array(2 * sourcesMax);
    }

    clear(): void {
        this.count = 0;
    }

    add(source: number, lowerUs: number, upperUs: number): void {
        assert(this.count + 2 <= 2 * this.sourcesMax);
        assert(source >= 0 && source < 256);
        assert(lowerUs <= upperUs);
        this.push(source, lowerUs, boundLower);
        this.push(source, upperUs, boundUpper);
    }

    private push(source: number, offsetUs: number, bound: number): void {
        // Insertion sort (at most 2 * replicasMax tuples): by offset, lower bounds before upper
        // bounds at the same offset (touching intervals overlap), then by source (determinism).
        let index = this.count++;
        while (index > 0 && this.before(source, offsetUs, bound, index - 1)) {
            this.offsets[index] = this.offsets[index - 1]!;
            this.bounds[index] = this.bounds[index - 1]!;
            this.sources[index] = this.sources[index - 1]!;
            index--;
        }
        this.offsets[index] = offsetUs;
        this.bounds[index] = bound;
        this.sources[index] = source;
    }

    private before(source: number, offsetUs: number, bound: number, index: number): boolean {
        const other = this.offsets[index]!;
        if (offsetUs !== other) return offsetUs < other;
        const otherBound = this.bounds[index]!;
        if (bound !== otherBound) return bound === boundLower;
        return source < this.sources[index]!;
    }

    /**
     * Sweeps the sorted bounds counting open intervals; each lower bound that reaches the best
     * count so far opens a candidate up to the next bound. Ties go to the narrower candidate.
     * Worked example: [0,10], [5,15], [12,20] → one source on 0..5, two on 5..10, one on
     * 10..12, two on 12..15: both candidates have two sources; [12,15] (width 3) beats [5,10].
     */
    smallestInterval(): void {
        assert(this.count % 2 === 0);
        const sources = this.count / 2;
        let open = 0;
        let best = 0;
        let lowerUs = 0;
        let upperUs = 0;
        for (let index = 0; index < this.count; index++) {
            if (this.bounds[index] === boundUpper) {
                open--;
                assert(open >= 0);
                continue;
            }
            open++;
            assert(index + 1 < this.count); // An upper bound follows every lower bound.
            const fromUs = this.offsets[index]!;
            const toUs = this.offsets[index + 1]!;
            if (open > best || (open === best && toUs - fromUs < upperUs - lowerUs)) {
                best = open;
                lowerUs = fromUs;
                upperUs = toUs;
            }
        }
        assert(open === 0);
        assert(lowerUs <= upperUs);
        this.lowerUs = lowerUs;
        this.upperUs = upperUs;
        this.sourcesTrue = best;
        this.sourcesFalse = sources - best;
    }
}

export interface ClockStats {
    samplesLearned: number;
    /** Pongs that could not be a sample: from before the window, or from the future. */
    samplesRejected: number;
    synchronizations: number;
    /** Epochs that aged out before a window could replace them (clock unsynchronized). */
    epochsExpired: number;
    /** Windows that never reached agreement (partitioned, or too many clock faults). */
    windowsExpired: number;
}

// Indices into Samples.at: times kept in a Float64Array, because a double stored in a plain
// field, or passed to a call V8 does not inline, may be boxed (a heap number per store).
/** Monotonic time when the samples began. */
const monotonicAt = 0;
/** Wall clock when the samples began: offsets are relative to it plus monotonic time since. */
const realtimeAt = 1;
/** The agreed offset interval, and the tolerance it was found at. */
const lowerAt = 2;
const upperAt = 3;
const toleranceAt = 4;

/** A set of per-source samples with the time it began: the epoch in use, or the window. */
class Samples {
    readonly offsetUs: Float64Array;
    readonly delayUs: Float64Array;
    readonly sampled: Uint8Array;
    readonly at = new Float64Array(5);
    synchronized = false;
    learned = false;

    constructor(sourceCount: number) {
        this.offsetUs = new Float64Array(sourceCount);
        this.delayUs = new Float64Array(sourceCount);
        this.sampled = new Uint8Array(sourceCount);
    }

    /** Starts over at `now` ([0] monotonic, [1] wall clock), with only our own sample. */
    reset(self: number, now: Float64Array): void {
        this.sampled.fill(0);
        this.offsetUs.fill(0);
        this.delayUs.fill(0);
        // A replica's own reading has no offset and no delay.
        this.sampled[self] = 1;
        this.at.fill(0);
        this.at[monotonicAt] = now[0]!;
        this.at[realtimeAt] = now[1]!;
        this.synchronized = false;
        this.learned = false;
    }

    copyFrom(other: Samples): void {
        this.offsetUs.set(other.offsetUs);
        this.delayUs.set(other.delayUs);
        this.sampled.set(other.sampled);
        this.at.set(other.at);
        this.synchronized = other.synchronized;
        this.learned = other.learned;
    }

    delayMaxUs(): number {
        let max = 0;
        for (let source = 0; source < this.sampled.length; source++) {
            if (this.sampled[source] === 1) max = Math.max(max, this.delayUs[source]!);
        }
        return max;
    }
}

/** What a Clock needs from the replica's options. */
export interface ClockOptions {
    readonly config: Config;
    readonly replica: number;
    readonly replicaCount: number;
    readonly time: Time;
    readonly prng: PRNG;
}

export class Clock {
    readonly replica: number;
    readonly replicaCount: number;
    /** Sources (this replica included) that must agree: the replication quorum. */
    readonly quorum: number;
    /** A cluster of one has nobody to agree with: its own clock is cluster time. */
    readonly synchronizationDisabled: boolean;
    private readonly time: Time;
    private readonly epoch: Samples;
    private readonly window: Samples;
    private readonly marzullo: Marzullo;
    /**
     * A sample's m0, t1, m2 between learn()/learnPong() and learnSample(): values above 2^31
     * passed as arguments to a call V8 does not inline would be boxed (a heap number each).
     */
    private readonly sample = new Float64Array(3);
    /**
     * Read once per tick: [0] monotonic, [1] wall clock. Pings and window starts use it, so
     * code that runs a few times a second reads no time through a call (see `sample`).
     */
    private readonly now = new Float64Array(2);
    /** [0]: cluster time when readSynchronized() last returned true. */
    readonly synchronizedUs = new Float64Array(1);
    /** Fires every clockPingIntervalUs (in ticks): the replica then pings every peer. */
    readonly pingTimeout: Timeout;
    readonly stats: ClockStats = {
        samplesLearned: 0,
        samplesRejected: 0,
        synchronizations: 0,
        epochsExpired: 0,
        windowsExpired: 0,
    };

    constructor(options: ClockOptions, quorum: number) {
        const replica = options.replica;
        const replicaCount = options.replicaCount;
        const time = options.time;
        assert(replicaCount >= 1 && replicaCount <= replicasMax);
        assert(replica >= 0 && replica < replicaCount);
        assert(quorum >= 1 && quorum <= replicaCount);
        assert(replicaCount === 1 || quorum >= 2);
        this.replica = replica;
        this.replicaCount = replicaCount;
        this.quorum = quorum;
        this.synchronizationDisabled = replicaCount === 1;
        this.time = time;
        this.epoch = new Samples(replicaCount);
        this.window = new Samples(replicaCount);
        this.marzullo = new Marzullo(replicaCount);
        this.now[0] = time.monotonicUs();
        this.now[1] = time.realtimeUs();
        const config = options.config;
        const pingTicks = Math.max(1, Math.round(clockPingIntervalUs / (config.tickMs * 1000)));
        this.pingTimeout = new Timeout("ping", pingTicks, config.backoffTicksMax, options.prng);
        this.epoch.reset(replica, this.now);
        this.window.reset(replica, this.now);
    }

    get synchronized(): boolean {
        return this.synchronizationDisabled || this.epoch.synchronized;
    }

    /** Learns from a pong: `m0` our ping's monotonic time, `t1` the peer's wall clock. */
    learn(source: number, m0Us: number, t1Us: number, m2Us: number): void {
        this.sample[0] = m0Us;
        this.sample[1] = t1Us;
        this.sample[2] = m2Us;
        this.learnSample(source);
    }

    /** Learns from a valid pong at `base` (its u64 fields read in place), received now. */
    learnPong(view: DataView, base: number): void {
        const m0 = base + Pong.pingMonotonicUs;
        const t1 = base + Pong.pongRealtimeUs;
        this.sample[0] = view.getUint32(m0, true) + view.getUint32(m0 + 4, true) * 0x1_0000_0000;
        this.sample[1] = view.getUint32(t1, true) + view.getUint32(t1 + 4, true) * 0x1_0000_0000;
        this.sample[2] = this.time.monotonicUs();
        this.learnSample(view.getUint8(base + Frame.replica));
    }

    /** Writes this tick's monotonic time (never 0: a hello's) into a ping at `offset`. */
    writeMonotonicUs(view: DataView, offset: number): void {
        let timeUs = this.now[0]!;
        if (timeUs === 0) timeUs = 1;
        assert(Number.isSafeInteger(timeUs));
        view.setUint32(offset, timeUs >>> 0, true);
        view.setUint32(offset + 4, Math.floor(timeUs / 0x1_0000_0000), true);
    }

    /** Writes our raw wall clock into a pong at `offset`: peers judge it; it stamps nothing. */
    writeRealtimeUs(view: DataView, offset: number): void {
        const timeUs = this.time.realtimeUs();
        assert(Number.isSafeInteger(timeUs) && timeUs > 0);
        view.setUint32(offset, timeUs >>> 0, true);
        view.setUint32(offset + 4, Math.floor(timeUs / 0x1_0000_0000), true);
    }

    private learnSample(source: number): void {
        const m0Us = this.sample[0]!;
        const t1Us = this.sample[1]!;
        const m2Us = this.sample[2]!;
        assert(source !== this.replica);
        assert(source >= 0 && source < this.replicaCount);
        assert(m0Us >= 0 && t1Us >= 0 && m2Us >= 0);
        if (this.synchronizationDisabled) return;
        const window = this.window;
        // m0 after m2 cannot come from our own ping; m0 before the window belongs to a
        // discarded window (its offset would be measured against another start).
        const windowMonotonicUs = window.at[monotonicAt]!;
        if (m0Us > m2Us || m0Us < windowMonotonicUs) {
            this.stats.samplesRejected++;
            return;
        }
        const elapsedUs = m2Us - windowMonotonicUs;
        if (elapsedUs > clockWindowMaxUs) {
            this.stats.samplesRejected++;
            return;
        }
        const delayUs = Math.floor((m2Us - m0Us) / 2);
        const offsetUs = t1Us + delayUs - (window.at[realtimeAt]! + elapsedUs);
        // The smaller the delay, the tighter the bound: keep the best sample per source (a
        // newer one wins a tie).
        if (window.sampled[source] === 0 || delayUs <= window.delayUs[source]!) {
            window.sampled[source] = 1;
            window.offsetUs[source] = offsetUs;
            window.delayUs[source] = delayUs;
        }
        window.learned = true;
        this.stats.samplesLearned++;
    }

    /** Called every tick: synchronizes a ready window, expires an old epoch. */
    tick(): void {
        this.now[0] = this.time.monotonicUs();
        this.now[1] = this.time.realtimeUs();
        if (this.synchronizationDisabled) return;
        this.synchronize();
        if (this.now[0]! - this.epoch.at[monotonicAt]! >= clockEpochMaxUs) {
            if (this.epoch.synchronized) this.stats.epochsExpired++;
            this.epoch.reset(this.replica, this.now);
        }
        const windowMonotonicUs = this.window.at[monotonicAt]!;
        assert(windowMonotonicUs >= this.epoch.at[monotonicAt]! || !this.epoch.synchronized);
    }

    private synchronize(): void {
        const window = this.window;
        assert(!window.synchronized);
        const elapsedUs = this.now[0]! - window.at[monotonicAt]!;
        if (elapsedUs < clockWindowMinUs) return;
        if (elapsedUs >= clockWindowMaxUs) {
            this.stats.windowsExpired++;
            window.reset(this.replica, this.now);
            return;
        }
        if (!window.learned) return;
        window.learned = false; // Pongs arrive in bursts: synchronize once per new learning.
        // Halve the tolerance while a quorum still agrees: prefer the tightest agreement.
        let toleranceUs = clockOffsetToleranceMaxUs;
        for (let round = 0; round < 64; round++) {
            this.agree(toleranceUs);
            if (this.marzullo.sourcesTrue < this.quorum) break;
            window.synchronized = true;
            window.at[lowerAt] = this.marzullo.lowerUs;
            window.at[upperAt] = this.marzullo.upperUs;
            window.at[toleranceAt] = toleranceUs;
            if (toleranceUs === 0) break;
            toleranceUs = Math.floor(toleranceUs / 2);
        }
        if (!window.synchronized) return;
        assert(window.at[lowerAt]! <= window.at[upperAt]!);
        this.epoch.copyFrom(window);
        window.reset(this.replica, this.now);
        this.stats.synchronizations++;
    }

    private agree(toleranceUs: number): void {
        const window = this.window;
        assert(window.sampled[this.replica] === 1 && window.offsetUs[this.replica] === 0);
        this.marzullo.clear();
        for (let source = 0; source < this.replicaCount; source++) {
            if (window.sampled[source] === 0) continue;
            const offsetUs = window.offsetUs[source]!;
            const boundUs = window.delayUs[source]! + toleranceUs;
            this.marzullo.add(source, offsetUs - boundUs, offsetUs + boundUs);
        }
        this.marzullo.smallestInterval();
    }

    /**
     * This replica's wall clock clamped into the cluster-time interval, or null when no quorum
     * of clocks agrees (the primary then stamps prepares from the log alone; see Replica).
     */
    realtimeSynchronizedUs(): number | null {
        return this.readSynchronized() ? this.synchronizedUs[0]! : null;
    }

    /** The same without allocating: true and synchronizedUs set, or false when unsynchronized. */
    readSynchronized(): boolean {
        const realtimeUs = this.time.realtimeUs();
        if (this.synchronizationDisabled) {
            this.synchronizedUs[0] = realtimeUs;
            return true;
        }
        const epoch = this.epoch;
        if (!epoch.synchronized) return false;
        const at = epoch.at;
        const baseUs = at[realtimeAt]! + (this.time.monotonicUs() - at[monotonicAt]!);
        const lowerUs = baseUs + at[lowerAt]!;
        const upperUs = baseUs + at[upperAt]!;
        assert(lowerUs <= upperUs);
        this.synchronizedUs[0] =
            realtimeUs < lowerUs ? lowerUs : realtimeUs > upperUs ? upperUs : realtimeUs;
        assert(this.synchronizedUs[0]! > 0);
        return true;
    }

    /**
     * How far realtimeSynchronizedUs() may be from true time, beyond the error of the truest
     * clock among the agreeing sources: the tolerance plus twice the widest delay (a sample is
     * right within ± its delay, and the interval lies within ± delay + tolerance of it).
     */
    errorBoundUs(): number {
        if (this.synchronizationDisabled) return 0;
        assert(this.epoch.synchronized);
        return this.epoch.at[toleranceAt]! + 2 * this.epoch.delayMaxUs();
    }
}
