// Tests for the figures of a chaos run (availability, longest unavailability, recovery after a
// heal, lost writes from the final reads) on hand-made histories, and for the HTML timeline
// (lanes, fault bands, unknown outcomes, the failing window outlined and zoomed).

import { test } from "node:test";
import assert from "node:assert/strict";
import type { HistoryOp, NemesisRecord, OpKind } from "../../src/check/history.js";
import { checkLinearizable } from "../../src/check/linearizability.js";
import type { ChaosReport } from "../../src/chaos/command.js";
import { renderHtml } from "../../src/chaos/html.js";
import { availability, lostWrites, maxRecoveryMs } from "../../src/chaos/stats.js";

const s = 1e9;

function op(
    kind: OpKind,
    key: string,
    value: string | null,
    call: number,
    ret: number | null,
    client = 0,
): HistoryOp {
    return {
        client_id: client,
        input: { op: kind, key, value: kind === "put" ? value : null },
        output:
            ret === null
                ? null
                : { value: kind === "get" ? value : null, ok: true, found: kind === "delete" },
        call,
        return: ret,
    };
}

test("availability counts seconds with an ok return; the longest gap spans the window", () => {
    const history = [
        op("put", "k", "a", 0.1 * s, 0.2 * s),
        op("get", "k", "a", 0.3 * s, 1.5 * s),
        op("get", "k", "a", 2 * s, null), // Unknown: serves nothing.
        op("get", "k", "a", 3.2 * s, 3.9 * s),
    ];
    const figures = availability(history, 0, 4 * s);
    assert.equal(figures.availability, 0.75);
    assert.equal(figures.maxUnavailableMs, 2400);
    assert.deepEqual(availability([], 0, 2 * s), { availability: 0, maxUnavailableMs: 2000 });
});

test("recovery is the time from a heal to the next ok return, worst over faults", () => {
    const history = [op("put", "k", "a", 0, 1 * s), op("put", "k", "b", 5 * s, 6.5 * s)];
    const faults: NemesisRecord[] = [
        { nemesis: "kill", detail: "replicas 0", start: 0.5 * s, end: 0.9 * s },
        { nemesis: "pause", detail: "replicas 1", start: 2 * s, end: 4 * s },
        { nemesis: "partition", detail: "", start: 7 * s, end: 8 * s }, // Nothing after it.
    ];
    assert.equal(maxRecoveryMs(history, faults), 2500);
    assert.equal(maxRecoveryMs(history, []), null);
});

test("a final read is lost only when no write could have been the last", () => {
    const writes = [
        op("put", "k", "a", 0, 1 * s),
        op("put", "k", "b", 2 * s, 3 * s),
        op("put", "k", "c", 2.5 * s, null), // Unknown: may be last, or never.
    ];
    const read = (value: string | null): HistoryOp => op("get", "k", value, 10 * s, 11 * s);
    assert.equal(lostWrites(writes, [read("b")]), 0);
    assert.equal(lostWrites(writes, [read("c")]), 0);
    assert.equal(lostWrites(writes, [read("a")]), 1); // b was acknowledged after a.
    assert.equal(lostWrites(writes, [read(null)]), 1);
    assert.equal(lostWrites([op("put", "k", "a", 0, null)], [read(null)]), 0);
    const deleted = [...writes, op("delete", "k", null, 4 * s, 5 * s)];
    assert.equal(lostWrites(deleted, [read(null)]), 0);
    assert.equal(lostWrites(deleted, [read("b")]), 1);
});

function report(failure: ChaosReport["check"]["failure"]): ChaosReport {
    return {
        seed: 7,
        replicas: 3,
        duration_s: 10,
        ops: 4,
        ok: 3,
        failed: 0,
        unknown: 1,
        faults: { kills: 1, pauses: 0, partitions: 0, corruptions: 0 },
        lost: 0,
        linearizable: failure === null,
        availability: 1,
        max_unavailable_ms: 0,
        max_recovery_ms: null,
        converged: true,
        converge_ms: 0,
        crashes: 0,
        slow_recoveries: 0,
        check: { ms: 0, states: 0, failure },
    };
}

test("the HTML timeline draws lanes, faults and outlines the failing window", () => {
    const history = [
        op("put", "k", "a", 0, 1 * s, 0),
        op("put", "k", "b", 2 * s, 3 * s, 1),
        op("get", "k", "a", 4 * s, 5 * s, 0), // Stale: b was acknowledged before.
        op("put", "x", "<&>", 4 * s, null, 2),
    ];
    const faults: NemesisRecord[] = [
        { nemesis: "kill", detail: "replicas 1", start: 1 * s, end: 2 * s },
    ];
    const check = checkLinearizable(history, { timeLimitMs: 1000 });
    assert.equal(check.linearizable, false);
    const html = renderHtml(history, faults, report(check.failure));
    assert.match(html, /^<!doctype html>/);
    assert.match(html, /client 0<\/text>/);
    assert.match(html, /client 2<\/text>/);
    assert.match(html, /kill: replicas 1/);
    assert.match(html, /url\(#hatch\)/);
    assert.match(html, /Failing window: key k/);
    assert.ok(html.includes('stroke="red"'));
    assert.ok(!html.includes("<&>"), "values are escaped");
    const clean = renderHtml(history.slice(0, 2), [], report(null));
    assert.ok(!clean.includes('stroke="red"'));
    assert.ok(!clean.includes("Failing window"));
});
