// Young-generation bytes allocated by this process since start, for /metrics and `vsr benchmark`
// (bytes per op beside GCs per 100k ops: a GC count says how often the young generation filled,
// not how much each op allocates, and at ~0 GCs per run it no longer tells two builds apart).
//
// How: V8 allocates every young object by bumping a pointer in new space (and, for the rare
// object over ~128 KiB, in new_large_object_space), so the bytes allocated are what those spaces
// gained between collections. A v8.GCProfiler records each collection's heap statistics before
// and after; the bytes allocated = Σ over GCs (used before this GC - used after the previous
// one) + (used now - used after the last GC). The profiler hands its records over only when
// stopped, so read() stops it, folds its records in and starts it again at once: a collection
// that runs between the two calls (read() itself allocates the records it parses) is not seen,
// which read() notices (used after the last GC is then above what it gained) and skips; such a
// miss undercounts by at most one young generation, and happens only during a read, which is a
// scrape. Cost while running: the profiler's records, per GC (native memory), nothing per op.
// Invariant: allocatedBytes never decreases.

import v8 from "node:v8";
import { assert } from "../stdx/assert.js";

interface SpaceStatistics {
    readonly spaceName: string;
    readonly spaceUsedSize: number;
}

interface GcRecord {
    readonly beforeGC: { readonly heapSpaceStatistics: readonly SpaceStatistics[] };
    readonly afterGC: { readonly heapSpaceStatistics: readonly SpaceStatistics[] };
}

export class YoungAllocationMeter {
    private profiler = new v8.GCProfiler();
    /** Young bytes allocated before the last folded-in collection. */
    private allocatedBeforeLastGcBytes = 0;
    /** Young bytes in use right after the last folded-in collection (0 at start: see below). */
    private usedAfterLastGcBytes: number;
    private lastReadBytes = 0;

    constructor() {
        // What the young generation held before the meter existed is not this meter's to count.
        this.usedAfterLastGcBytes = currentYoungBytes();
        this.profiler.start();
    }

    /** Young bytes allocated since construction. */
    read(): number {
        const records = (this.profiler.stop() as { statistics: GcRecord[] }).statistics;
        this.profiler = new v8.GCProfiler();
        this.profiler.start();
        for (const record of records) {
            const before = recordYoungBytes(record.beforeGC.heapSpaceStatistics);
            this.allocatedBeforeLastGcBytes += Math.max(0, before - this.usedAfterLastGcBytes);
            this.usedAfterLastGcBytes = recordYoungBytes(record.afterGC.heapSpaceStatistics);
        }
        const now = currentYoungBytes();
        if (now < this.usedAfterLastGcBytes) {
            // A collection the profiler missed: count on from what was read last time.
            this.allocatedBeforeLastGcBytes = Math.max(
                this.allocatedBeforeLastGcBytes,
                this.lastReadBytes,
            );
            this.usedAfterLastGcBytes = now;
        }
        const total = this.allocatedBeforeLastGcBytes + (now - this.usedAfterLastGcBytes);
        assert(total >= this.allocatedBeforeLastGcBytes);
        this.lastReadBytes = Math.max(this.lastReadBytes, total);
        return this.lastReadBytes;
    }

    stop(): void {
        this.profiler.stop();
    }
}

function isYoungSpace(name: string): boolean {
    return name === "new_space" || name === "new_large_object_space";
}

/** Young bytes in use according to one of the profiler's records. */
function recordYoungBytes(spaces: readonly SpaceStatistics[]): number {
    let used = 0;
    for (const space of spaces) if (isYoungSpace(space.spaceName)) used += space.spaceUsedSize;
    assert(used >= 0);
    return used;
}

/** Young bytes in use now. */
function currentYoungBytes(): number {
    let used = 0;
    for (const space of v8.getHeapSpaceStatistics()) {
        if (isYoungSpace(space.space_name)) used += space.space_used_size;
    }
    assert(used >= 0);
    return used;
}
