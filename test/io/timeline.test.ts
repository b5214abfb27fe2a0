// The node's timeline (src/io/timeline.ts): a ring of the last `capacity` events, oldest first in
// its JSON, each event's fields as recorded, the overwritten count exact. Failures print
// fast-check's seed and path.

import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import {
    Timeline,
    TimelineKind,
    slowLoopMs,
    timelineKindNames,
    toWallMs,
} from "../../src/io/timeline.js";

interface Parsed {
    replica: number;
    zones: string[];
    overwritten: number;
    events: { kind: string; start_ms: number; duration_ms: number; value: number }[];
}

const kindCount = timelineKindNames.length;

test("a timeline's JSON holds its last capacity events, oldest first, as recorded", () => {
    fc.assert(
        fc.property(
            fc.integer({ min: 1, max: 16 }),
            fc.array(
                fc.record({
                    kind: fc.integer({ min: 0, max: kindCount - 1 }),
                    startMs: fc.integer({ min: 0, max: 2e12 }),
                    durationMs: fc.integer({ min: 0, max: 100_000 }),
                    value: fc.integer({ min: 0, max: 1e6 }),
                }),
                { maxLength: 60 },
            ),
            (capacity, events) => {
                const timeline = new Timeline(capacity);
                for (const event of events) {
                    timeline.record(event.kind, event.startMs, event.durationMs, event.value);
                }
                const parsed = JSON.parse(timeline.json(2, ["a", "b"])) as Parsed;
                const kept = events.slice(Math.max(0, events.length - capacity));
                assert.equal(parsed.replica, 2);
                assert.deepEqual(parsed.zones, ["a", "b"]);
                assert.equal(parsed.overwritten, events.length - kept.length);
                assert.equal(timeline.count, events.length);
                assert.deepEqual(
                    parsed.events,
                    kept.map((event) => ({
                        kind: timelineKindNames[event.kind],
                        start_ms: event.startMs,
                        duration_ms: event.durationMs,
                        value: event.value,
                    })),
                );
            },
        ),
        { numRuns: 300 },
    );
});

test("a timeline refuses a negative duration and an unknown kind", () => {
    const timeline = new Timeline(4);
    assert.throws(() => timeline.record(TimelineKind.gcYoung, 0, -1, 0));
    assert.throws(() => timeline.record(kindCount as TimelineKind, 0, 1, 0));
    assert.equal(timeline.count, 0);
});

test("a timer slowLoopMs or more late is a loop stall from its due time; less is nothing", () => {
    const timeline = new Timeline(4);
    timeline.recordTimerLateness(1000, 10, 1010 + slowLoopMs - 1);
    assert.equal(timeline.count, 0);
    timeline.recordTimerLateness(1000, 10, 1010 + slowLoopMs + 2);
    const parsed = JSON.parse(timeline.json(0, [])) as Parsed;
    assert.deepEqual(parsed.events, [
        {
            kind: "loop_stall",
            start_ms: Number(toWallMs(1010).toFixed(3)),
            duration_ms: slowLoopMs + 2,
            value: 0,
        },
    ]);
});
