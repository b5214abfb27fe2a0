// Tests for the KV linearizability checker: hand-made linearizable and non-linearizable
// histories (stale read, lost write, a read of a value never written, a write that appears
// twice, unknown outcomes either way), the time limit's "unknown" verdict, the failure window,
// and a fast-check property against the brute-force checker (test/check/brute.ts) on small
// histories, both random ones and ones generated from a sequential execution (linearizable by
// construction). Failures print the fast-check seed.

import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import type { HistoryOp, OpKind } from "../../src/check/history.js";
import { parseHistory } from "../../src/check/history.js";
import { checkLinearizable } from "../../src/check/linearizability.js";
import { bruteLinearizable } from "./brute.js";

const limit = { timeLimitMs: 10_000 };

function op(
    kind: OpKind,
    key: string,
    value: string | null,
    call: number,
    ret: number | null,
    result: { value?: string | null; found?: boolean; ok?: boolean } = {},
): HistoryOp {
    return {
        client_id: 0,
        input: { op: kind, key, value: kind === "put" ? value : null },
        output:
            ret === null
                ? null
                : kind === "delete"
                  ? { value: null, ok: result.ok ?? true, found: result.found ?? false }
                  : { value: kind === "get" ? value : null, ok: result.ok ?? true },
        call,
        return: ret,
    };
}

const put = (key: string, value: string, call: number, ret: number | null): HistoryOp =>
    op("put", key, value, call, ret);
const get = (key: string, value: string | null, call: number, ret: number | null): HistoryOp =>
    op("get", key, value, call, ret);
const del = (key: string, found: boolean, call: number, ret: number | null): HistoryOp =>
    op("delete", key, null, call, ret, { found });

function verdict(history: HistoryOp[]): boolean | "unknown" {
    return checkLinearizable(history, limit).linearizable;
}

test("an empty history and sequential histories are linearizable", () => {
    assert.equal(verdict([]), true);
    assert.equal(verdict([put("k", "a", 0, 1), get("k", "a", 2, 3), del("k", true, 4, 5)]), true);
    const absent = [get("k", null, 0, 1), del("k", false, 2, 3), get("k", null, 4, 5)];
    assert.equal(verdict(absent), true);
});

test("concurrent writes may be read in either order", () => {
    const writes = [put("k", "a", 0, 10), put("k", "b", 1, 11)];
    assert.equal(verdict([...writes, get("k", "a", 12, 13)]), true);
    assert.equal(verdict([...writes, get("k", "b", 12, 13)]), true);
});

test("a stale read is not linearizable", () => {
    const history = [put("k", "a", 0, 1), put("k", "b", 2, 3), get("k", "a", 4, 5)];
    const result = checkLinearizable(history, limit);
    assert.equal(result.linearizable, false);
    assert.equal(result.failure?.key, "k");
    assert.equal(result.failure?.stuckIndex, 2);
});

test("a lost write (acknowledged, then read as absent) is not linearizable", () => {
    assert.equal(verdict([put("k", "a", 0, 1), get("k", null, 2, 3)]), false);
    assert.equal(verdict([put("k", "a", 0, 1), del("k", false, 2, 3)]), false);
});

test("a read of a value never written is not linearizable", () => {
    assert.equal(verdict([put("k", "a", 0, 1), get("k", "z", 2, 3)]), false);
    assert.equal(verdict([get("k", "z", 0, 1)]), false);
});

test("a write that appears twice is not linearizable", () => {
    // a, then b overwrote it, then a is seen again though it was written once.
    const history = [
        put("k", "a", 0, 1),
        get("k", "a", 2, 3),
        put("k", "b", 4, 5),
        get("k", "b", 6, 7),
        get("k", "a", 8, 9),
    ];
    assert.equal(verdict(history), false);
});

test("an unknown write may take effect late, or never", () => {
    const late = [put("k", "a", 0, null), get("k", null, 5, 6), get("k", "a", 7, 8)];
    assert.equal(verdict(late), true);
    assert.equal(verdict([put("k", "a", 0, null), get("k", null, 5, 6)]), true);
    // But not before its call, and not twice.
    assert.equal(verdict([get("k", "a", 0, 1), put("k", "a", 2, null)]), false);
    const twice = [
        put("k", "a", 0, null),
        get("k", "a", 2, 3),
        put("k", "b", 4, 5),
        get("k", "a", 6, 7),
    ];
    assert.equal(verdict(twice), false);
});

test("failed operations and unknown reads constrain nothing", () => {
    const failedPut = op("put", "k", "a", 0, 1, { ok: false });
    assert.equal(verdict([failedPut, get("k", null, 2, 3)]), true);
    assert.equal(verdict([get("k", "z", 0, null), get("k", null, 2, 3)]), true);
});

test("keys are checked apart and the failure names the key and its window", () => {
    const history = [
        put("x", "1", 0, 1),
        put("y", "2", 0, 1),
        get("x", "1", 2, 3),
        get("y", null, 2, 4),
        put("x", "3", 5, 6),
    ];
    const result = checkLinearizable(history, limit);
    assert.equal(result.linearizable, false);
    assert.equal(result.keys, 2);
    assert.equal(result.failure?.key, "y");
    assert.deepEqual(result.failure?.opIndexes, [1, 3]);
});

test("past the time limit the verdict is unknown", () => {
    // Many unknown writes of distinct values and a read that no order explains: the search
    // would try every subset; a clock that jumps past the deadline stops it.
    const history: HistoryOp[] = [];
    for (let index = 0; index < 40; index++) history.push(put("k", `v${index}`, index, null));
    for (let index = 0; index < 40; index++) {
        history.push(get("k", `v${index}`, 100 + 2 * index, 101 + 2 * index));
    }
    history.push(get("k", "v0", 500, 501));
    let clock = 0;
    const result = checkLinearizable(history, { timeLimitMs: 1, nowMs: () => clock++ });
    assert.equal(result.linearizable, "unknown");
    assert.deepEqual(result.keysTimedOut, ["k"]);
});

test("parseHistory reads JSON lines, keeps nemesis records apart and rejects bad lines", () => {
    const text =
        JSON.stringify(put("k", "a", 0, 1)) +
        "\n" +
        JSON.stringify({ nemesis: "kill", detail: "replica 1", start: 0, end: 5 }) +
        "\n\n";
    const { ops, nemesis } = parseHistory(text);
    assert.equal(ops.length, 1);
    assert.equal(nemesis.length, 1);
    assert.throws(() => parseHistory("{"), /line 1 is not JSON/);
    assert.throws(() => parseHistory(JSON.stringify({ ...put("k", "a", 5, 1) })), /precedes/);
});

// Property: the checker agrees with the brute-force checker on small random histories.

const values = ["a", "b", "c"];
const keys = ["x", "y"];

const arbitraryOp = fc
    .record({
        kind: fc.constantFrom<OpKind>("put", "get", "delete"),
        key: fc.constantFrom(...keys),
        value: fc.constantFrom(...values),
        read: fc.constantFrom<string | null>(null, ...values),
        found: fc.boolean(),
        call: fc.integer({ min: 0, max: 20 }),
        duration: fc.integer({ min: 0, max: 8 }),
        fate: fc.constantFrom("ok", "ok", "ok", "ok", "unknown", "failed"),
    })
    .map((r): HistoryOp => {
        const ret = r.fate === "unknown" ? null : r.call + r.duration;
        const value = r.kind === "get" ? r.read : r.value;
        return op(r.kind, r.key, value, r.call, ret, { found: r.found, ok: r.fate !== "failed" });
    });

test("the checker agrees with brute force on small random histories", () => {
    fc.assert(
        fc.property(fc.array(arbitraryOp, { minLength: 0, maxLength: 8 }), (history) => {
            const expected = bruteLinearizable(history);
            assert.equal(checkLinearizable(history, limit).linearizable, expected);
        }),
        { numRuns: 3000 },
    );
});

/** A history whose outcomes come from one sequential execution at points inside the calls. */
const linearizableHistory = fc
    .array(
        fc.record({
            kind: fc.constantFrom<OpKind>("put", "get", "delete"),
            key: fc.constantFrom(...keys),
            value: fc.constantFrom(...values),
            call: fc.integer({ min: 0, max: 30 }),
            before: fc.integer({ min: 0, max: 6 }),
            after: fc.integer({ min: 0, max: 6 }),
            fate: fc.constantFrom("ok", "ok", "ok", "unknown", "unknown-never"),
        }),
        { maxLength: 9 },
    )
    .map((records) => {
        const order = records
            .map((record, index) => ({ record, index, point: record.call + record.before }))
            .sort((a, b) => a.point - b.point || a.index - b.index);
        const state = new Map<string, string>();
        const history: HistoryOp[] = [];
        for (const { record, point } of order) {
            const happens = record.fate !== "unknown-never";
            const ret = record.fate === "ok" ? point + record.after : null;
            const before = state.get(record.key) ?? null;
            if (happens && record.kind === "put") state.set(record.key, record.value);
            if (happens && record.kind === "delete") state.delete(record.key);
            const value = record.kind === "get" ? before : record.value;
            history.push(
                op(record.kind, record.key, value, record.call, ret, {
                    found: before !== null,
                }),
            );
        }
        return history;
    });

test("histories from a sequential execution are linearizable for both checkers", () => {
    fc.assert(
        fc.property(linearizableHistory, (history) => {
            assert.equal(bruteLinearizable(history), true);
            assert.equal(checkLinearizable(history, limit).linearizable, true);
        }),
        { numRuns: 2000 },
    );
});
