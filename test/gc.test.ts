// Goal: the GC counter behind every zero-GC test and bench (test/gc.ts) can never pass silently.
// Method: positive and negative controls. A loop that allocates must report minor GCs (so a
// counter that sees nothing fails here, not vacuously elsewhere); a loop over a preallocated
// typed array must report none; collections from before the run, delivered late while the
// counter waits, must not be charged to the run; and garbage left in the nursery before the run
// must not make a small allocation inside it trigger a scavenge.

import { test } from "node:test";
import assert from "node:assert/strict";
import { PerformanceObserver, performance } from "node:perf_hooks";
import v8 from "node:v8";

import { countGcs } from "./gc.js";

/** Keeps each run's last object reachable so the compiler cannot drop the allocations. */
const sink: { last: unknown } = { last: null };

function allocate(objectCount: number): void {
    for (let index = 0; index < objectCount; index++) {
        sink.last = { index, a: index + 1, b: index + 2, c: index + 3 };
    }
}

const words = new Int32Array(1 << 16);

/** Int32 arithmetic only: values stay small integers even in unoptimized code (no boxing). */
function sumWords(passes: number): number {
    let sum = 0;
    for (let pass = 0; pass < passes; pass++) {
        for (let index = 0; index < words.length; index++) {
            words[index] = (words[index]! + index + pass) | 0;
            sum = (sum + words[index]!) | 0;
        }
    }
    return sum;
}

test("a loop that allocates 4 million short-lived objects shows minor GCs", async () => {
    allocate(100_000); // Warm-up: the measured loop runs optimized code, as in the real tests.
    // About 56 bytes each, 200+ MiB in all: several times the largest young generation (16 MiB).
    const counts = await countGcs(() => allocate(4_000_000));
    assert.ok(counts.minor >= 3, `minor GCs ${counts.minor} (major ${counts.major})`);
});

test("a loop over a preallocated typed array shows no GC (100 passes over 256 KiB)", async () => {
    let sum = sumWords(50);
    const counts = await countGcs(() => {
        sum = sumWords(100);
    });
    assert.equal(counts.minor, 0, `minor GCs ${counts.minor} in ${counts.runMs.toFixed(0)} ms`);
    assert.ok(counts.runMs > 5, "the run must be long enough to catch a stray allocation");
    assert.ok(counts.heapGrowthBytes < 64 * 1024, `heap growth ${counts.heapGrowthBytes} B`);
    assert.ok(Number.isInteger(sum));
});

test("collections from before the run are not counted, though they arrive later", async () => {
    // A second observer makes Node create entries for the earlier collections; they reach the
    // counter's observer too only if it leaks, and they arrive while countGcs waits.
    let earlier = 0;
    let allocatedMs = Number.POSITIVE_INFINITY;
    const witness = new PerformanceObserver((list) => {
        for (const entry of list.getEntries()) if (entry.startTime < allocatedMs) earlier++;
    });
    witness.observe({ entryTypes: ["gc"] });
    allocate(2_000_000);
    allocatedMs = performance.now();
    let sum = 0;
    const counts = await countGcs(() => {
        sum = sumWords(20);
    });
    await new Promise((resolve) => setTimeout(resolve, 20));
    witness.disconnect();
    assert.ok(earlier > 0, "the controls must have produced earlier collections");
    assert.equal(counts.minor + counts.major, 0);
    assert.ok(Number.isInteger(sum));
});

function nurseryAvailableBytes(): number {
    const space = v8.getHeapSpaceStatistics().find((s) => s.space_name === "new_space");
    assert.ok(space !== undefined);
    return space.space_available_size;
}

test("a run allocating 256 KiB into a nearly full nursery shows no GC, and its bytes", async () => {
    // Fill the young generation to within 64 KiB of a scavenge, as a warm-up would.
    allocate(1_000);
    for (let step = 0; step < 1_000_000 && nurseryAvailableBytes() > 64 * 1024; step++) {
        sink.last = new Array<number>(62);
    }
    assert.ok(nurseryAvailableBytes() <= 64 * 1024);
    const objectCount = (256 * 1024) / 56;
    const counts = await countGcs(() => allocate(objectCount));
    assert.equal(counts.minor + counts.major, 0);
    assert.ok(counts.heapGrowthBytes >= 200 * 1024, `heap growth ${counts.heapGrowthBytes} B`);
});
