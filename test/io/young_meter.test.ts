// Goal: the young-generation byte meter behind /metrics' vsr_young_allocated_bytes_total and
// `vsr benchmark`'s B/op counts what a run allocates, across the scavenges it causes, and
// nothing else: a run of a known allocation reads as that many bytes (within what V8's object
// headers and the meter's own reads add), and an idle stretch reads as almost nothing.

import assert from "node:assert/strict";
import { test } from "node:test";
import { YoungAllocationMeter } from "../../src/io/young_meter.js";

/** Holds the latest array so the compiler cannot drop the allocation. */
const sink: { last: number[] | null } = { last: null };

/** Allocates `count` arrays of 62 small integers: 16 B of header + 8 B length + 62 × 8 B. */
function allocateArrays(count: number): void {
    for (let index = 0; index < count; index++) sink.last = new Array<number>(62).fill(index);
}

const arrayBytes = 16 + 62 * 8;

test("the young meter counts a run's allocation across the scavenges it causes", () => {
    const meter = new YoungAllocationMeter();
    try {
        allocateArrays(1000); // warm-up: the allocation site is compiled before counting
        const before = meter.read();
        const count = 200_000; // ~100 MiB: several scavenges of any young generation size
        allocateArrays(count);
        const allocated = meter.read() - before;
        const expected = count * arrayBytes;
        assert.ok(
            allocated >= expected * 0.9 && allocated <= expected * 1.25,
            `read ${allocated} B for ${expected} B allocated`,
        );
    } finally {
        meter.stop();
    }
});

test("the young meter reads nearly nothing when nothing is allocated, and never goes back", () => {
    const meter = new YoungAllocationMeter();
    try {
        let last = meter.read();
        const deltas: number[] = [];
        for (let read = 0; read < 100; read++) {
            const now = meter.read();
            assert.ok(now >= last);
            deltas.push(now - last);
            last = now;
        }
        // Each read parses the profiler's (empty) record list and the heap space statistics:
        // about 3 KiB. The median, not the sum: a scavenge that lands inside a read (in the
        // full suite the nursery may be nearly full from the test before) is counted from the
        // statistics' page-level figures, which can add one bounded jump to one read.
        deltas.sort((a, b) => a - b);
        const median = deltas[50]!;
        assert.ok(median < 8192, `median ${median} B per idle read`);
    } finally {
        meter.stop();
    }
});
