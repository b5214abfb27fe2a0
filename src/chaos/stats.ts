// Figures of a chaos run, computed from its history (pure functions, times in nanoseconds):
//   availability        the fraction of whole seconds of the workload in which at least one
//                       operation returned ok;
//   max_unavailable_ms  the longest stretch of the workload without an ok return;
//   max_recovery_ms     the longest time from a fault's heal to the next ok return;
//   lost                keys whose final read (after every fault healed and the replicas
//                       converged) shows an acknowledged write missing: the value read is not one
//                       a write could have left last. A write may be last unless an acknowledged
//                       write began after it returned; an unknown write may always be last (or
//                       never have happened); the initial absence only when no write was
//                       acknowledged.

import { type HistoryOp, type NemesisRecord, outcome } from "../check/history.js";

const nsPerMs = 1e6;
const nsPerS = 1e9;

export interface Availability {
    readonly availability: number;
    readonly maxUnavailableMs: number;
}

/** Over the workload window [startNs, endNs). */
export function availability(
    history: readonly HistoryOp[],
    startNs: number,
    endNs: number,
): Availability {
    const seconds = Math.max(1, Math.ceil((endNs - startNs) / nsPerS));
    const served = new Uint8Array(seconds);
    const returns: number[] = [];
    for (const op of history) {
        if (outcome(op) !== "ok") continue;
        const at = op.return as number;
        if (at < startNs || at >= endNs) continue;
        served[Math.floor((at - startNs) / nsPerS)] = 1;
        returns.push(at);
    }
    returns.sort((a, b) => a - b);
    let gapMax = 0;
    let previous = startNs;
    for (const at of returns) {
        gapMax = Math.max(gapMax, at - previous);
        previous = at;
    }
    gapMax = Math.max(gapMax, endNs - previous);
    const servedCount = served.reduce((sum, bit) => sum + bit, 0);
    return {
        availability: Number((servedCount / seconds).toFixed(4)),
        maxUnavailableMs: Math.round(gapMax / nsPerMs),
    };
}

/** The longest time from a healed fault to the next ok return (null: no fault healed). */
export function maxRecoveryMs(
    history: readonly HistoryOp[],
    records: readonly NemesisRecord[],
): number | null {
    const returns = history
        .filter((op) => outcome(op) === "ok")
        .map((op) => op.return as number)
        .sort((a, b) => a - b);
    let worst: number | null = null;
    for (const record of records) {
        if (record.end === null) continue;
        const next = returns.find((at) => at >= (record.end as number));
        if (next === undefined) continue;
        worst = Math.max(worst ?? 0, Math.round((next - record.end) / nsPerMs));
    }
    return worst;
}

/** Keys whose final read shows a lost acknowledged write (see the file comment). */
export function lostWrites(
    history: readonly HistoryOp[],
    finalReads: readonly HistoryOp[],
): number {
    let lost = 0;
    for (const read of finalReads) {
        if (outcome(read) !== "ok") continue;
        const key = read.input.key;
        const writes = history.filter(
            (op) => op.input.key === key && op.input.op !== "get" && outcome(op) !== "failed",
        );
        const acknowledged = writes.filter((op) => outcome(op) === "ok");
        const possible = new Set<string | null>();
        if (acknowledged.length === 0) possible.add(null);
        for (const write of writes) {
            const superseded =
                write.return !== null &&
                acknowledged.some((other) => other.call > (write.return as number));
            if (!superseded) possible.add(write.input.op === "put" ? write.input.value : null);
        }
        if (!possible.has(read.output?.value ?? null)) lost++;
    }
    return lost;
}
