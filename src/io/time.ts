// Real time for a replica process: wall-clock microseconds from the host clock, used only to
// stamp prepares. The host clock may step backwards (NTP, an operator), but the primary's
// timestamps must not, so the value is clamped: it never goes below the previous one returned.
// Millisecond resolution (Date.now) is enough: prepare timestamps are made strictly increasing
// by the replica itself.

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
}
