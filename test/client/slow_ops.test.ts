// Slow-operation attribution (src/client/slow_ops.ts): the recorder keeps exactly the K slowest
// calls, slowest first, with the retries each client made during each call; attribution lists
// every event overlapping a call (from leadMs before its start to its end) and no other, and
// names a call with nothing beside it unexplained. Failures print fast-check's seed and path.

import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { SlowOpsRecorder, attributeCall, formatSlowOps } from "../../src/client/slow_ops.js";

test("the recorder keeps the K slowest calls, slowest first", () => {
    fc.assert(
        fc.property(
            fc.integer({ min: 1, max: 8 }),
            fc.array(fc.integer({ min: 0, max: 10_000 }), { maxLength: 80 }),
            (capacity, latencies) => {
                const recorder = new SlowOpsRecorder(capacity);
                latencies.forEach((latencyMs, index) => {
                    recorder.observe(index % 3, 1000 + index, 1000 + index + latencyMs, false);
                });
                const expected = latencies
                    .slice()
                    .sort((a, b) => b - a)
                    .slice(0, capacity);
                assert.deepEqual(
                    recorder.calls.map((call) => call.latencyMs),
                    expected,
                );
            },
        ),
        { numRuns: 300 },
    );
});

test("a call's retries are the client's resends since its previous call ended", () => {
    const recorder = new SlowOpsRecorder(4);
    const stats = { retries: 0 };
    recorder.clients[0] = { stats };
    recorder.observe(0, 0, 5, false);
    stats.retries = 2;
    recorder.observe(0, 5, 1300, false);
    recorder.observe(0, 1300, 1310, true);
    const byLatency = recorder.calls.map((call) => [call.latencyMs, call.retries, call.failed]);
    assert.deepEqual(byLatency, [
        [1295, 2, false],
        [10, 0, true],
        [5, 0, false],
    ]);
});

test("attribution lists exactly the events overlapping a call, longest overlap first", () => {
    const call = { clientIndex: 0, startMs: 1000, latencyMs: 100, retries: 0, failed: false };
    const source = {
        name: "replica 1",
        zones: ["superblock", "wal_headers"],
        events: [
            { kind: "gc_young", start_ms: 900, duration_ms: 94, value: 0 }, // Ends 6 ms before.
            // Overlaps the window [995, 1100] (leadMs = 5 before the start) by 15 ms.
            { kind: "gc_major", start_ms: 990, duration_ms: 20, value: 0 },
            { kind: "slow_write", start_ms: 1050, duration_ms: 200, value: 1 }, // Overlaps 50.
            { kind: "checkpoint", start_ms: 1101, duration_ms: 5, value: 7 }, // After the end.
        ],
    };
    const report = attributeCall(call, [source]);
    assert.deepEqual(
        report.events.map((event) => [event.kind, event.offsetMs, event.detail]),
        [
            ["gc_major", -10, ""],
            ["slow_write", 50, "wal_headers"],
        ],
    );
    assert.equal(report.cause, "slow_write (replica 1) 50.0 ms, gc_major (replica 1) 15.0 ms");
    const quiet = attributeCall({ ...call, startMs: 5000 }, [source]);
    assert.equal(quiet.cause, "unexplained");
    const retried = attributeCall({ ...call, startMs: 5000, retries: 1 }, [source]);
    assert.equal(retried.cause, "client retry x1");
    const text = formatSlowOps({
        calls: [report],
        overlapCounts: { slow_write: 1 },
        unreadable: [],
    });
    assert.match(text, /100\.00 ms .* slow_write \(replica 1\) 50\.0 ms/);
    assert.match(text, /calls overlapped by: slow_write 1/);
});
