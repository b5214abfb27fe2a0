// The live page's data path without a network: a replica's status goes through its peer_status
// header (StatusReport) into a peer's ClusterView field for field; a replica unheard for
// downAfterMs shows down; the primary is the one up replica reporting primary; history points
// carry commits per second and view changes; the latency window's quantiles come from the
// histogram's buckets of the last period only. Properties print their seed on failure.

import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { headerSize } from "../../src/constants.js";
import { Histogram, exponentialBounds } from "../../src/io/metrics.js";
import { invalidHeader, validHeaderChecksum } from "../../src/vsr/header.js";
import {
    ClusterView,
    type StatusFields,
    downAfterMs,
    historyPointsMax,
    zeroStatusFields,
} from "../../src/web/cluster_view.js";
import { LatencyWindow, StatusReport, bucketQuantile } from "../../src/web/status_report.js";

const u32 = fc.integer({ min: 0, max: 0xffff_ffff });
const u53 = fc.maxSafeNat();
const statusFields: fc.Arbitrary<StatusFields> = fc.record({
    view: u32,
    logView: u32,
    status: fc.integer({ min: 0, max: 2 }),
    primary: fc.integer({ min: 0, max: 1 }),
    op: u53,
    commitMin: u53,
    commitMax: u53,
    checkpointOp: u53,
    requestLatencyUsP50: u32,
    requestLatencyUsP99: u32,
    requestsReplied: u32,
});

function fields(overrides: Partial<StatusFields>): StatusFields {
    return {
        ...zeroStatusFields(),
        ...overrides,
    };
}

interface Shown {
    replica: number;
    up: boolean;
    role: string;
    status: string;
    view: number;
    log_view: number;
    op: number;
    commit: number;
    commit_max: number;
    checkpoint: number;
    lag: number | null;
}

function shown(view: ClusterView, nowMs: number): { primary: number | null; replicas: Shown[] } {
    return JSON.parse(view.json(nowMs, 9)) as { primary: number | null; replicas: Shown[] };
}

/** Sends `report` from `replica` to a ClusterView of replica 0 through the header bytes. */
function deliver(view: ClusterView, replica: number, report: StatusFields, nowMs: number): void {
    const status = new StatusReport(9, replica);
    status.write(report);
    assert.equal(invalidHeader(status.view, 0, headerSize), null);
    assert.ok(validHeaderChecksum(status.bytes, 0));
    view.onPeerStatus(replica, status.view, 0, nowMs);
}

test("a peer's status reaches the cluster view field for field through peer_status", () => {
    fc.assert(
        fc.property(statusFields, fc.integer({ min: 1, max: 5 }), (report, replica) => {
            const view = new ClusterView(6, 0);
            deliver(view, replica, report, 1000);
            const row = shown(view, 1000).replicas[replica]!;
            assert.equal(row.up, true);
            assert.equal(row.view, report.view);
            assert.equal(row.log_view, report.logView);
            assert.equal(row.status, ["normal", "view_change", "recovering"][report.status]);
            assert.equal(row.op, report.op);
            assert.equal(row.commit, report.commitMin);
            assert.equal(row.commit_max, report.commitMax);
            assert.equal(row.checkpoint, report.checkpointOp);
            assert.equal(row.role, report.primary === 1 ? "primary" : "backup");
            assert.equal(view.reportsReceived, 1);
        }),
    );
});

test("a report naming this replica or one outside the cluster is counted and ignored", () => {
    const view = new ClusterView(3, 0);
    const report = new StatusReport(9, 0);
    report.write(fields({ view: 4 }));
    view.onPeerStatus(0, report.view, 0, 1000);
    view.onPeerStatus(5, report.view, 0, 1000);
    assert.equal(view.reportsInvalid, 2);
    assert.equal(view.reportsReceived, 0);
    assert.equal(shown(view, 1000).replicas[0]!.up, false);
});

test(`a replica unheard for more than ${downAfterMs} ms is down, and no longer primary`, () => {
    const view = new ClusterView(3, 0);
    view.setSelf(fields({ view: 1 }), 1000);
    deliver(view, 1, fields({ view: 1, primary: 1, commitMin: 50 }), 1000);
    deliver(view, 2, fields({ view: 1, commitMin: 40 }), 1000);
    let page = shown(view, 1000 + downAfterMs);
    assert.equal(page.primary, 1);
    assert.deepEqual(
        page.replicas.map((row) => [row.up, row.lag]),
        [
            [true, 50],
            [true, 0],
            [true, 10],
        ],
    );
    view.setSelf(fields({ view: 2 }), 1000 + downAfterMs + 1);
    page = shown(view, 1000 + downAfterMs + 1);
    assert.equal(page.primary, null);
    assert.equal(page.replicas[1]!.up, false);
    assert.equal(page.replicas[1]!.lag, null);
    assert.equal(page.replicas[0]!.up, true);
});

test("history points carry commits per second, view changes and replicas up, bounded", () => {
    const view = new ClusterView(2, 0);
    let nowMs = 10_000;
    for (let second = 0; second < historyPointsMax + 10; second++) {
        const viewNumber = second < 5 ? 0 : 1; // One view change at the 6th second.
        view.setSelf(fields({ view: viewNumber, commitMin: second * 300 }), nowMs);
        view.sample(nowMs);
        nowMs += 1000;
    }
    const history = (JSON.parse(view.json(nowMs, 1)) as { history: Record<string, number[]> })
        .history;
    assert.equal(history["time_s"]!.length, historyPointsMax);
    assert.ok(history["commits_per_s"]!.every((value) => value === 300));
    assert.ok(history["replicas_up"]!.every((value) => value === 1));
    assert.equal(
        history["view_changes"]!.reduce((a, b) => a + b, 0),
        0,
        "the change scrolled out",
    );
    const fresh = new ClusterView(2, 0);
    for (let second = 0; second < 8; second++) {
        fresh.setSelf(fields({ view: second < 5 ? 0 : 1 }), 1000 * (second + 1));
        fresh.sample(1000 * (second + 1));
    }
    const points = (JSON.parse(fresh.json(9000, 1)) as { history: Record<string, number[]> })
        .history["view_changes"]!;
    assert.deepEqual(points, [0, 0, 0, 0, 0, 1, 0, 0]);
});

test("bucketQuantile lands in the bucket that holds the quantile's rank", () => {
    const bounds = exponentialBounds(0.0001, 2, 16);
    fc.assert(
        fc.property(
            fc.array(fc.double({ min: 0.00001, max: 5, noNaN: true }), { minLength: 1 }),
            fc.constantFrom(0.5, 0.9, 0.99, 1),
            (samples, q) => {
                const histogram = new Histogram("test_seconds", "test", bounds);
                for (const sample of samples) histogram.observe(sample);
                const sorted = [...samples].sort((a, b) => a - b);
                const truth = sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)]!;
                const estimate = bucketQuantile(bounds, histogram.counts, q);
                let bucket = 0;
                while (bucket < bounds.length && truth > bounds[bucket]!) bucket++;
                const lower = bucket === 0 ? 0 : bounds[bucket - 1]!;
                const upper = bucket === bounds.length ? lower : bounds[bucket]!;
                assert.ok(
                    estimate >= lower && estimate <= upper,
                    `${estimate} ∉ [${lower}, ${upper}]`,
                );
            },
        ),
    );
    assert.equal(bucketQuantile(bounds, new Float64Array(bounds.length + 1), 0.5), 0);
});

test("the latency window describes only the requests of the period just closed", () => {
    const histogram = new Histogram("test_seconds", "test", exponentialBounds(0.0001, 2, 16));
    for (let index = 0; index < 100; index++) histogram.observe(0.5); // Before the window.
    const window = new LatencyWindow(histogram.bounds, histogram.counts);
    for (let index = 0; index < 10; index++) histogram.observe(0.0003);
    window.roll();
    assert.equal(window.count, 10);
    assert.ok(window.latencyUsP50 > 200 && window.latencyUsP50 <= 400, String(window.latencyUsP50));
    assert.ok(window.latencyUsP99 <= 400);
    window.roll();
    assert.deepEqual([window.count, window.latencyUsP50, window.latencyUsP99], [0, 0, 0]);
});

test("lag counts only reports no later than the replica's own (reports are skewed)", () => {
    const view = new ClusterView(3, 0);
    // The primary reported first; its backups 600 ms later, 360 commits further on.
    deliver(view, 1, fields({ view: 1, primary: 1, commitMin: 1000, commitMax: 1000 }), 10_000);
    deliver(view, 2, fields({ view: 1, commitMin: 1360, commitMax: 1360 }), 10_600);
    view.setSelf(fields({ view: 1, commitMin: 700, commitMax: 1360 }), 10_600);
    const lag = shown(view, 10_700).replicas.map((row) => row.lag);
    assert.deepEqual(lag, [660, 0, 0], "the primary is not behind; replica 0 is");
});
