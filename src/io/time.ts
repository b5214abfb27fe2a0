// Real time for a replica process: the host's wall clock and monotonic clock in microseconds.
// The replica reads the wall clock only through its Clock (src/vsr/clock.ts): it answers peers'
// pings with it and clamps it into the interval a quorum of clocks agrees on before stamping a
// prepare. A host clock that steps backwards (NTP, an operator) is held at its previous reading
// here; the cluster-time interval still moves forward with the monotonic clock.
// Millisecond resolution (Date.now) is enough: prepare timestamps are made strictly increasing
// by the replica itself.

import { performance } from "node:perf_hooks";
import { assert } from "../stdx/assert.js";
import type { Time } from "../vsr/interfaces.js";

export class RealTime implements Time {
    private previousUs = 0;

    realtimeUs(): number {
        const nowUs = Date.now() * 1000;
        assert(Number.isSafeInteger(nowUs));
        if (nowUs > this.previousUs) this.previousUs = nowUs;
        assert(this.previousUs >= nowUs); // Clamped: never below the host clock nor the past.
        return this.previousUs;
    }

    /** From the host's monotonic clock (performance.now: milliseconds with a fraction). */
    monotonicUs(): number {
        const nowUs = Math.floor(performance.now() * 1000);
        assert(Number.isSafeInteger(nowUs) && nowUs >= 0);
        return nowUs;
    }
}
