// Simulated time: the cluster's tick counter turned into wall-clock microseconds, with a fixed
// per-replica clock offset drawn from the seed (clocks disagree; only the primary's own clock
// stamps prepares, and it must stay monotonic whatever its offset).

import { assert } from "../stdx/assert.js";
import type { Time } from "../vsr/interfaces.js";

/** 2026-01-01T00:00:00Z in microseconds: a fixed epoch, so runs never depend on the host clock. */
const epochUs = 1_767_225_600_000_000;

export class SimTime implements Time {
    ticks = 0;
    private readonly tickUs: number;
    private readonly offsetUs: number;

    constructor(tickMs: number, offsetUs: number) {
        assert(tickMs > 0);
        assert(Math.abs(offsetUs) < 3600 * 1_000_000);
        this.tickUs = tickMs * 1000;
        this.offsetUs = offsetUs;
    }

    tick(): void {
        this.ticks++;
    }

    realtimeUs(): number {
        return epochUs + this.offsetUs + this.ticks * this.tickUs;
    }
}
