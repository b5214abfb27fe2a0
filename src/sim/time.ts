// Simulated time: the cluster's tick counter turned into microseconds. The monotonic clock is
// ideal (ticks × tick length: timeouts and round trips are measured in it). The wall clock is
// the true simulated time plus this replica's clock error.
//
// Fault model (drawn per replica from the seed, see ClockFaults):
// - offset: a fixed error from the start (a clock set wrong; large for a "far-off" replica);
// - drift: the clock runs fast or slow by driftPpm (µs per second of true time), without bound;
// - jumps: with jumpProbability per tick the clock steps by a uniform amount in ±jumpUsMax,
//   forwards or backwards (an NTP step, an operator); steps accumulate, bounded to ±1 h.
// The wall clock may therefore go backwards; the replica must keep its prepare timestamps
// strictly increasing anyway, and agree on cluster time with the clocks that are good.

import { assert } from "../stdx/assert.js";
import type { PRNG } from "../stdx/prng.js";
import type { Time } from "../vsr/interfaces.js";

/** 2026-01-01T00:00:00Z in microseconds: a fixed epoch, so runs never depend on the host clock. */
export const epochUs = 1_767_225_600_000_000;
const hourUs = 3600 * 1_000_000;

/** Faults beyond the fixed offset (which every SimTime takes). */
export interface ClockFaults {
    /** Rate error: the clock gains this many µs per second of true time (negative: loses). */
    readonly driftPpm: number;
    /** 0..1, per tick. */
    readonly jumpProbability: number;
    readonly jumpUsMax: number;
}

export const noClockFaults: ClockFaults = {
    driftPpm: 0,
    jumpProbability: 0,
    jumpUsMax: 0,
};

export class SimTime implements Time {
    ticks = 0;
    readonly tickUs: number;
    private readonly offsetUs: number;
    private readonly faults: ClockFaults;
    private readonly prng: PRNG | null;
    /** The sum of the jumps so far. */
    private jumpsUs = 0;
    jumps = 0;
    /**
     * [0]: the wall clock at this tick, computed once per tick: realtimeUs() stays a load that
     * V8 inlines (a double returned from a call it does not inline is boxed).
     */
    private readonly nowUs = new Float64Array(1);

    /** offsetUs: the wall clock's error at tick 0. */
    constructor(
        tickMs: number,
        offsetUs: number,
        faults: ClockFaults = noClockFaults,
        prng: PRNG | null = null,
    ) {
        assert(tickMs > 0);
        assert(Math.abs(offsetUs) <= 3 * hourUs);
        assert(Math.abs(faults.driftPpm) <= 10_000);
        assert(faults.jumpProbability >= 0 && faults.jumpProbability <= 1);
        assert(faults.jumpProbability === 0 || prng !== null);
        assert(faults.jumpUsMax >= 0 && faults.jumpUsMax <= hourUs);
        this.tickUs = tickMs * 1000;
        this.offsetUs = offsetUs;
        this.faults = faults;
        this.prng = prng;
        this.nowUs[0] = epochUs + this.errorUs();
    }

    tick(): void {
        this.ticks++;
        this.jump();
        this.nowUs[0] = epochUs + this.ticks * this.tickUs + this.errorUs();
    }

    private jump(): void {
        const prng = this.prng;
        if (prng === null || this.faults.jumpProbability === 0) return;
        if (!prng.chance(this.faults.jumpProbability)) return;
        const jumpUs = prng.range(-this.faults.jumpUsMax, this.faults.jumpUsMax);
        this.jumpsUs = Math.min(hourUs, Math.max(-hourUs, this.jumpsUs + jumpUs));
        this.jumps++;
    }

    monotonicUs(): number {
        return this.ticks * this.tickUs;
    }

    /** What a perfect clock would read now (for the checkers, never for the replica). */
    trueRealtimeUs(): number {
        return epochUs + this.ticks * this.tickUs;
    }

    /** This clock's error now: wall clock minus true time. */
    errorUs(): number {
        const elapsedUs = this.ticks * this.tickUs;
        const driftUs = Math.round((elapsedUs * this.faults.driftPpm) / 1_000_000);
        return this.offsetUs + driftUs + this.jumpsUs;
    }

    realtimeUs(): number {
        return this.nowUs[0]!;
    }
}
