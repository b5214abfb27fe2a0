// Counts the garbage collections a synchronous run causes, for the zero-GC tests and benches.
// Why not "observe, run, await a turn or two": Node creates a 'gc' PerformanceEntry in a native
// immediate queued at the end of each collection (run in the next check phase of the event loop)
// and hands it to observers from a further setImmediate. A timer awaited right after a long
// synchronous run fires before that check phase (its start is the loop's stale cached time), so
// awaiting one or three turns, or a short timer, can see nothing and report 0 GCs.
// Method: observe; provoke a collection (allocate short-lived garbage) and wait until it is
// seen, so the run starts with an empty young generation: garbage left by a warm-up or the test
// runner cannot fill the nursery and make the run's first few bytes trigger a scavenge, and a
// scavenge inside the run means the run itself allocated a nursery's worth. Then run, provoke
// a sentinel collection the same way and wait until an entry that started after the run is
// seen. The native immediates run in order and collections never overlap on the main thread,
// so once the sentinel is seen every collection that started inside the run has been seen too.
// Only entries whose start lies inside the run are counted. Each wait is bounded (2 s): if no
// collection is seen the helper throws, so a broken observer fails loudly instead of reporting 0.

import {
    PerformanceObserver,
    constants,
    performance,
    type PerformanceEntry,
} from "node:perf_hooks";

export interface GcCounts {
    /** Young-generation collections (scavenges) that started inside the run: allocation. */
    readonly minor: number;
    /** Full mark-compact collections that started inside the run. */
    readonly major: number;
    /** Incremental-marking steps and weak-callback processing inside the run. */
    readonly other: number;
    /**
     * heapUsed after the run minus before it. With no GC inside, this is what the run allocated:
     * young objects, plus code and feedback installed by a tier-up.
     */
    readonly heapGrowthBytes: number;
    readonly runMs: number;
}

/** How long to wait for a provoked collection before declaring the observer broken. */
const provokedWaitMsMax = 2000;
/** Garbage allocated per step while waiting (a semi-space is at most 16 MiB by default). */
const provokedStepBytes = 1 << 20;
/** Each garbage array holds 126 eight-byte slots: about 1 KiB with its headers. */
const garbageArrayLength = 126;

const minorKind = constants.NODE_PERFORMANCE_GC_MINOR;
const majorKind = constants.NODE_PERFORMANCE_GC_MAJOR;

/** Holds the latest garbage array so the compiler cannot drop the allocation. */
const garbageSink: { last: unknown[] | null } = { last: null };

/** Runs `run` once, synchronously, and counts the collections that started inside it. */
export async function countGcs(run: () => void): Promise<GcCounts> {
    const entries: PerformanceEntry[] = [];
    const observer = new PerformanceObserver((list) => {
        for (const entry of list.getEntries()) entries.push(entry);
    });
    observer.observe({ entryTypes: ["gc"] });
    let startMs = 0;
    let endMs = 0;
    let heapGrowthBytes = 0;
    try {
        await awaitCollectionAfter(observer, entries, performance.now(), true);
        const heapUsedBefore = process.memoryUsage().heapUsed;
        startMs = performance.now();
        run();
        endMs = performance.now();
        heapGrowthBytes = process.memoryUsage().heapUsed - heapUsedBefore;
        await awaitCollectionAfter(observer, entries, endMs, false);
    } finally {
        observer.disconnect();
    }
    return { ...tally(entries, startMs, endMs), heapGrowthBytes, runMs: endMs - startMs };
}

/**
 * Allocates garbage until the entry of a collection that started after `afterMs` is seen: any
 * kind, or with `emptiesNursery` a scavenge or a mark-compact (not an incremental-marking step).
 */
async function awaitCollectionAfter(
    observer: PerformanceObserver,
    entries: PerformanceEntry[],
    afterMs: number,
    emptiesNursery: boolean,
): Promise<void> {
    const deadlineMs = performance.now() + provokedWaitMsMax;
    for (;;) {
        // Entries queued but not yet dispatched to the callback sit in the observer's buffer.
        for (const entry of observer.takeRecords()) entries.push(entry);
        for (const entry of entries) {
            if (entry.startTime <= afterMs) continue;
            const kind = gcKind(entry);
            if (!emptiesNursery || kind === minorKind || kind === majorKind) return;
        }
        if (performance.now() > deadlineMs) {
            throw new Error(
                `countGcs: no GC entry within ${provokedWaitMsMax} ms of provoking a collection ` +
                    `(${entries.length} entries seen): the 'gc' observer is not delivering`,
            );
        }
        allocateGarbage(provokedStepBytes);
        // A check phase runs the native immediates that turn finished collections into entries.
        await new Promise((resolve) => setImmediate(resolve));
    }
}

function allocateGarbage(sizeBytes: number): void {
    const arrayCount = Math.ceil(sizeBytes / ((garbageArrayLength + 2) * 8));
    for (let index = 0; index < arrayCount; index++) {
        garbageSink.last = new Array<unknown>(garbageArrayLength);
    }
}

/** For diagnostics and failure messages: "0 young, 0 major GCs; heap +1.9 KiB; 141 ms". */
export function describeGcs(gcs: GcCounts): string {
    const heapKiB = (gcs.heapGrowthBytes / 1024).toFixed(1);
    return (
        `${gcs.minor} young, ${gcs.major} major GCs; ` +
        `heap ${gcs.heapGrowthBytes < 0 ? "" : "+"}${heapKiB} KiB; ${gcs.runMs.toFixed(0)} ms`
    );
}

function tally(
    entries: readonly PerformanceEntry[],
    startMs: number,
    endMs: number,
): { minor: number; major: number; other: number } {
    let minor = 0;
    let major = 0;
    let other = 0;
    for (const entry of entries) {
        if (entry.startTime < startMs || entry.startTime > endMs) continue;
        const kind = gcKind(entry);
        if (kind === minorKind) minor++;
        else if (kind === majorKind) major++;
        else other++;
    }
    return { minor, major, other };
}

function gcKind(entry: PerformanceEntry): number {
    return (entry as unknown as { detail: { kind: number } }).detail.kind;
}
