// A brute-force linearizability checker for small KV histories, the reference for the property
// tests of src/check/linearizability.ts: it tries every order of the whole history (all keys
// together, so it also checks the per-key partitioning of the real checker) that respects real
// time (a before b when a returned strictly before b was called), with every unknown operation
// either placed anywhere after its predecessors or left out. Exponential: keep histories ≤ 9 ops.

import { type HistoryOp, outcome } from "../../src/check/history.js";

export function bruteLinearizable(history: readonly HistoryOp[]): boolean {
    const ops = history.filter(
        (op) => outcome(op) !== "failed" && !(outcome(op) === "unknown" && op.input.op === "get"),
    );
    const done = new Array<boolean>(ops.length).fill(false);
    const state = new Map<string, string>();
    const knownTotal = ops.filter((op) => outcome(op) === "ok").length;
    const search = (knownDone: number): boolean => {
        if (knownDone === knownTotal) return true;
        for (let candidate = 0; candidate < ops.length; candidate++) {
            if (done[candidate]) continue;
            const op = ops[candidate]!;
            // Every known op that returned before this call must already be placed.
            const blocked = ops.some(
                (other, index) =>
                    !done[index] && outcome(other) === "ok" && (other.return as number) < op.call,
            );
            if (blocked) continue;
            const key = op.input.key;
            const before = state.get(key);
            if (!allowed(op, before)) continue;
            if (op.input.op === "put") state.set(key, op.input.value as string);
            if (op.input.op === "delete") state.delete(key);
            done[candidate] = true;
            const known = outcome(op) === "ok" ? 1 : 0;
            if (search(knownDone + known)) return true;
            done[candidate] = false;
            if (before === undefined) state.delete(key);
            else state.set(key, before);
        }
        return false;
    };
    return search(0);
}

function allowed(op: HistoryOp, before: string | undefined): boolean {
    if (op.input.op === "put") return true;
    if (op.input.op === "get") return (op.output?.value ?? null) === (before ?? null);
    if (op.output === null) return true; // An unknown delete: either way.
    return op.output.found === (before !== undefined);
}
