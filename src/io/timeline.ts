// The node's timeline: a bounded ring of timestamped events that can stall a client's request,
// kept so that a slow operation seen by a client can be explained afterwards (`vsr load
// --slow-ops=N` reads it from every replica with GET /timeline). What it records, each as a
// span [startMs, startMs + durationMs] on the wall clock (ms since the epoch, fractional, from
// performance.timeOrigin + performance.now(): comparable across processes of one machine):
// - garbage collections (young or major), from the GC observer;
// - event-loop stalls: the tick timer firing later than its interval by slowLoopMs or more
//   (whatever held the loop: GC, a long handler, the machine's other processes);
// - slow synchronous steps: one tick() or one delivered message taking slowStepMs or more;
// - slow writes: a data-file write taking slowWriteMs or more from submit to durable (value: the
//   storage zone's index);
// - checkpoints (value: grid blocks written), view changes, state syncs, and client requests the
//   replica dropped (value: how many since the previous sample).
// Invariants: at most `capacity` events, the oldest overwritten first (counted in `overwritten`);
// recording allocates nothing (typed arrays, preallocated at start); only the JSON answer of
// GET /timeline builds strings, on request.

import { type PerformanceEntry, constants as perfConstants } from "node:perf_hooks";
import { assert } from "../stdx/assert.js";

export enum TimelineKind {
    gcYoung = 0,
    gcMajor = 1,
    loopStall = 2,
    slowTick = 3,
    slowMessage = 4,
    slowWrite = 5,
    checkpoint = 6,
    viewChange = 7,
    stateSync = 8,
    requestsDropped = 9,
}

export const timelineKindNames: readonly string[] = [
    "gc_young",
    "gc_major",
    "loop_stall",
    "slow_tick",
    "slow_message",
    "slow_write",
    "checkpoint",
    "view_change",
    "state_sync",
    "requests_dropped",
];

/** A tick timer this much later than its interval is recorded as a loop stall. */
export const slowLoopMs = 10;
/** One tick() or one message handled taking this long is recorded. */
export const slowStepMs = 5;
/** A write taking this long from submit to durable is recorded. */
export const slowWriteMs = 5;

/** A performance.now() reading on the wall clock (ms since the epoch), as the timeline keeps. */
export function toWallMs(monotonicMs: number): number {
    return performance.timeOrigin + monotonicMs;
}

/** Wall-clock milliseconds since the epoch, fractional, on the monotonic clock's scale. */
export function wallMs(): number {
    return toWallMs(performance.now());
}

export class Timeline {
    readonly capacity: number;
    private readonly startMs: Float64Array;
    private readonly durationMs: Float64Array;
    private readonly value: Float64Array;
    private readonly kind: Uint8Array;
    /** Events recorded since start; the ring holds the last min(count, capacity). */
    count = 0;

    constructor(capacity: number) {
        assert(Number.isInteger(capacity) && capacity >= 1);
        this.capacity = capacity;
        this.startMs = new Float64Array(capacity);
        this.durationMs = new Float64Array(capacity);
        this.value = new Float64Array(capacity);
        this.kind = new Uint8Array(capacity);
    }

    get overwritten(): number {
        return Math.max(0, this.count - this.capacity);
    }

    record(kind: TimelineKind, startMs: number, durationMs: number, value: number): void {
        assert(kind >= 0 && kind < timelineKindNames.length);
        assert(durationMs >= 0);
        const index = this.count % this.capacity;
        this.kind[index] = kind;
        this.startMs[index] = startMs;
        this.durationMs[index] = durationMs;
        this.value[index] = value;
        this.count++;
    }

    /** Records a GC observer's entry; returns whether it was a young (minor) collection. */
    recordGc(entry: PerformanceEntry): boolean {
        const kind = (entry as { detail?: { kind?: number } }).detail?.kind;
        const young = kind === perfConstants.NODE_PERFORMANCE_GC_MINOR;
        const timelineKind = young ? TimelineKind.gcYoung : TimelineKind.gcMajor;
        this.record(timelineKind, toWallMs(entry.startTime), entry.duration, kind ?? 0);
        return young;
    }

    /**
     * A timer due every intervalMs fired at nowMs, last at lastMs (performance.now() readings):
     * records a loop stall when it came slowLoopMs or more late (whatever held the loop).
     */
    recordTimerLateness(lastMs: number, intervalMs: number, nowMs: number): void {
        const dueMs = lastMs + intervalMs;
        if (nowMs - dueMs >= slowLoopMs) {
            this.record(TimelineKind.loopStall, toWallMs(dueMs), nowMs - dueMs, 0);
        }
    }

    /**
     * The events held, oldest first, as the JSON body of GET /timeline; `zones` names the
     * storage zones a slow write's value indexes.
     */
    json(replica: number, zones: readonly string[]): string {
        const held = Math.min(this.count, this.capacity);
        const events: string[] = [];
        for (let position = this.count - held; position < this.count; position++) {
            const index = position % this.capacity;
            events.push(
                `{"kind":"${timelineKindNames[this.kind[index]!]}",` +
                    `"start_ms":${this.startMs[index]!.toFixed(3)},` +
                    `"duration_ms":${this.durationMs[index]!.toFixed(3)},` +
                    `"value":${this.value[index]}}`,
            );
        }
        return (
            `{"replica":${replica},"now_ms":${wallMs().toFixed(3)},` +
            `"zones":${JSON.stringify(zones)},` +
            `"overwritten":${this.overwritten},"events":[${events.join(",")}]}`
        );
    }
}
