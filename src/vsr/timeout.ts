// A timeout is a tick counter: `tick()` advances it, `fired()` says it expired. Backoff and jitter
// come from the replica's seeded PRNG, so the simulator replays them exactly. A fired timeout must
// be reset (or stopped) by its handler; one left fired would fire on every tick.

import { assert } from "../stdx/assert.js";
import type { PRNG } from "../stdx/prng.js";

export class Timeout {
    readonly name: string;
    /** Ticks from a reset to firing, before backoff. */
    readonly afterTicks: number;
    private readonly backoffTicksMax: number;
    private readonly prng: PRNG;
    ticks = 0;
    /** The current deadline in ticks since the last reset (afterTicks, or more after backoff). */
    deadlineTicks: number;
    attempts = 0;
    running = false;

    constructor(name: string, afterTicks: number, backoffTicksMax: number, prng: PRNG) {
        assert(afterTicks > 0);
        assert(backoffTicksMax > 0);
        this.name = name;
        this.afterTicks = afterTicks;
        this.deadlineTicks = afterTicks;
        // A timeout longer than the common backoff ceiling keeps its own length as the ceiling.
        this.backoffTicksMax = Math.max(backoffTicksMax, afterTicks);
        this.prng = prng;
    }

    start(): void {
        this.attempts = 0;
        this.ticks = 0;
        this.deadlineTicks = this.afterTicks;
        this.running = true;
    }

    /** Restarts with a deadline drawn uniformly from [after/2, after*3/2]: no thundering herd. */
    startWithJitter(): void {
        this.start();
        const half = Math.max(1, this.afterTicks >> 1);
        this.deadlineTicks = half + this.prng.int(this.afterTicks + 1);
    }

    stop(): void {
        this.running = false;
        this.ticks = 0;
        this.attempts = 0;
    }

    reset(): void {
        assert(this.running);
        this.ticks = 0;
        this.attempts = 0;
        this.deadlineTicks = this.afterTicks;
    }

    /** After a retry: exponential backoff with full jitter, capped at backoffTicksMax. */
    backoff(): void {
        assert(this.running);
        this.ticks = 0;
        this.attempts = Math.min(this.attempts + 1, 16);
        const ceiling = Math.min(this.backoffTicksMax, this.afterTicks * 2 ** this.attempts);
        this.deadlineTicks = this.afterTicks + this.prng.int(ceiling - this.afterTicks + 1);
    }

    tick(): void {
        if (this.running) this.ticks++;
    }

    fired(): boolean {
        return this.running && this.ticks >= this.deadlineTicks;
    }
}
