// What one replica knows of the whole cluster, for the live page (GET /cluster.json): the last
// status each replica reported (itself directly, its peers through peer_status messages on the
// peer links) and, once a second, one point of history: commits per second, the primary's request
// latency p50/p99 over that second and the view changes seen in it.
//
// Invariants: every table is sized at construction (replicaCount rows, historySecondsMax points in
// a power-of-two ring); onPeerStatus() writes numbers into typed arrays and allocates nothing
// (it runs on the bus's receive path, once a second per peer). A replica is down when nothing
// was heard from it for downAfterMs: a killed replica stops reporting, and its links close.
// Only json() allocates, and only when the page asks (about once a second per open page).

import { assert } from "../stdx/assert.js";
import { Frame, PeerStatus, readU64 } from "../vsr/header.js";

/** A replica unheard for this long is shown down (reports come every reportIntervalMs). */
export const downAfterMs = 3000;
export const reportIntervalMs = 1000;
/** History kept: ten minutes of one-second points (a power of two for the ring's mask). */
export const historyPointsMax = 1024;
const historyMask = historyPointsMax - 1;

/** One replica's report (status as the replica's Status ordinal). */
export interface StatusFields {
    view: number;
    logView: number;
    status: number;
    primary: number;
    op: number;
    commitMin: number;
    commitMax: number;
    checkpointOp: number;
    requestLatencyUsP50: number;
    requestLatencyUsP99: number;
    requestsReplied: number;
}

/** A report with every field zero (a replica's own, before its first sample). */
export function zeroStatusFields(): StatusFields {
    return {
        view: 0,
        logView: 0,
        status: 0,
        primary: 0,
        op: 0,
        commitMin: 0,
        commitMax: 0,
        checkpointOp: 0,
        requestLatencyUsP50: 0,
        requestLatencyUsP99: 0,
        requestsReplied: 0,
    };
}

const statusNames: readonly string[] = ["normal", "view_change", "recovering"];

export class ClusterView {
    readonly replicaCount: number;
    readonly replica: number;
    private readonly view: Float64Array;
    private readonly logView: Float64Array;
    private readonly status: Uint8Array;
    private readonly primary: Uint8Array;
    private readonly op: Float64Array;
    private readonly commitMin: Float64Array;
    private readonly commitMax: Float64Array;
    private readonly checkpointOp: Float64Array;
    private readonly latencyUsP50: Float64Array;
    private readonly latencyUsP99: Float64Array;
    private readonly replied: Float64Array;
    /** Wall clock (ms) of the last report from each replica; 0: never heard. */
    private readonly heardMs: Float64Array;
    /** Reports refused because they named a replica outside the cluster (counted, dropped). */
    reportsInvalid = 0;
    reportsReceived = 0;
    // History ring: point i lives at index i & historyMask; pointsCount only grows.
    private readonly historyMs = new Float64Array(historyPointsMax);
    private readonly historyCommitsPerS = new Float64Array(historyPointsMax);
    private readonly historyLatencyMsP50 = new Float64Array(historyPointsMax);
    private readonly historyLatencyMsP99 = new Float64Array(historyPointsMax);
    private readonly historyViewChanges = new Float64Array(historyPointsMax);
    private readonly historyUp = new Float64Array(historyPointsMax);
    private pointsCount = 0;
    private lastCommit = -1;
    private lastView = -1;
    private lastSampleMs = 0;

    constructor(replicaCount: number, replica: number) {
        assert(replicaCount >= 1 && replicaCount <= 255);
        assert(replica >= 0 && replica < replicaCount);
        this.replicaCount = replicaCount;
        this.replica = replica;
        this.view = new Float64Array(replicaCount);
        this.logView = new Float64Array(replicaCount);
        this.status = new Uint8Array(replicaCount);
        this.primary = new Uint8Array(replicaCount);
        this.op = new Float64Array(replicaCount);
        this.commitMin = new Float64Array(replicaCount);
        this.commitMax = new Float64Array(replicaCount);
        this.checkpointOp = new Float64Array(replicaCount);
        this.latencyUsP50 = new Float64Array(replicaCount);
        this.latencyUsP99 = new Float64Array(replicaCount);
        this.replied = new Float64Array(replicaCount);
        this.heardMs = new Float64Array(replicaCount);
    }

    /** A peer's peer_status message, already validated by the bus (invalidHeader). */
    onPeerStatus(replica: number, view: DataView, offset: number, nowMs: number): void {
        if (replica >= this.replicaCount || replica === this.replica) {
            this.reportsInvalid++;
            return;
        }
        this.view[replica] = view.getUint32(offset + Frame.view, true);
        this.logView[replica] = view.getUint32(offset + PeerStatus.logView, true);
        this.status[replica] = view.getUint8(offset + PeerStatus.status);
        this.primary[replica] = view.getUint8(offset + PeerStatus.primary);
        this.op[replica] = readU64(view, offset + PeerStatus.op);
        this.commitMin[replica] = readU64(view, offset + PeerStatus.commitMin);
        this.commitMax[replica] = readU64(view, offset + PeerStatus.commitMax);
        this.checkpointOp[replica] = readU64(view, offset + PeerStatus.checkpointOp);
        this.latencyUsP50[replica] = view.getUint32(offset + PeerStatus.requestLatencyUsP50, true);
        this.latencyUsP99[replica] = view.getUint32(offset + PeerStatus.requestLatencyUsP99, true);
        this.replied[replica] = view.getUint32(offset + PeerStatus.requestsReplied, true);
        this.heardMs[replica] = nowMs;
        this.reportsReceived++;
        assert(this.status[replica]! <= 2 && this.primary[replica]! <= 1);
    }

    /** This replica's own status (the same fields it reports to its peers). */
    setSelf(fields: StatusFields, nowMs: number): void {
        const self = this.replica;
        assert(fields.status <= 2 && fields.primary <= 1);
        this.view[self] = fields.view;
        this.logView[self] = fields.logView;
        this.status[self] = fields.status;
        this.primary[self] = fields.primary;
        this.op[self] = fields.op;
        this.commitMin[self] = fields.commitMin;
        this.commitMax[self] = fields.commitMax;
        this.checkpointOp[self] = fields.checkpointOp;
        this.latencyUsP50[self] = fields.requestLatencyUsP50;
        this.latencyUsP99[self] = fields.requestLatencyUsP99;
        this.replied[self] = fields.requestsReplied;
        this.heardMs[self] = nowMs;
    }

    up(replica: number, nowMs: number): boolean {
        const heardMs = this.heardMs[replica]!;
        return heardMs !== 0 && nowMs - heardMs <= downAfterMs;
    }

    /** The replica up and primary in normal status, -1 when none (two: the highest view's). */
    primaryIndex(nowMs: number): number {
        let found = -1;
        for (let replica = 0; replica < this.replicaCount; replica++) {
            if (!this.up(replica, nowMs) || this.primary[replica] !== 1) continue;
            if (found === -1 || this.view[replica]! > this.view[found]!) found = replica;
        }
        return found;
    }

    /** One history point: called once a second, after setSelf. */
    sample(nowMs: number): void {
        let commit = 0;
        let viewMax = 0;
        let upCount = 0;
        for (let replica = 0; replica < this.replicaCount; replica++) {
            if (!this.up(replica, nowMs)) continue;
            upCount++;
            commit = Math.max(commit, this.commitMax[replica]!, this.commitMin[replica]!);
            viewMax = Math.max(viewMax, this.view[replica]!);
        }
        const seconds = this.lastSampleMs === 0 ? 0 : (nowMs - this.lastSampleMs) / 1000;
        const primary = this.primaryIndex(nowMs);
        const index = this.pointsCount & historyMask;
        this.historyMs[index] = nowMs;
        const committed = this.lastCommit < 0 ? 0 : Math.max(0, commit - this.lastCommit);
        this.historyCommitsPerS[index] = seconds <= 0 ? 0 : committed / seconds;
        this.historyLatencyMsP50[index] = primary < 0 ? 0 : this.latencyUsP50[primary]! / 1000;
        this.historyLatencyMsP99[index] = primary < 0 ? 0 : this.latencyUsP99[primary]! / 1000;
        const viewChanges = this.lastView < 0 ? 0 : Math.max(0, viewMax - this.lastView);
        this.historyViewChanges[index] = viewChanges;
        this.historyUp[index] = upCount;
        this.pointsCount++;
        this.lastCommit = Math.max(this.lastCommit, commit);
        this.lastView = Math.max(this.lastView, viewMax);
        this.lastSampleMs = nowMs;
    }

    /** The page's data: every replica's row and the history, oldest point first. */
    json(nowMs: number, cluster: number): string {
        const replicas = [];
        const primary = this.primaryIndex(nowMs);
        for (let replica = 0; replica < this.replicaCount; replica++) {
            const heardMs = this.heardMs[replica]!;
            const up = this.up(replica, nowMs);
            replicas.push({
                replica,
                up,
                role: replica === primary ? "primary" : "backup",
                status: statusNames[this.status[replica]!] ?? "unknown",
                view: this.view[replica],
                log_view: this.logView[replica],
                op: this.op[replica],
                commit: this.commitMin[replica],
                commit_max: this.commitMax[replica],
                checkpoint: this.checkpointOp[replica],
                lag: up ? this.lag(replica, nowMs) : null,
                heard_ms_ago: heardMs === 0 ? null : Math.max(0, Math.round(nowMs - heardMs)),
            });
        }
        return JSON.stringify({
            cluster,
            replica: this.replica,
            replica_count: this.replicaCount,
            primary: primary < 0 ? null : primary,
            now_ms: nowMs,
            down_after_ms: downAfterMs,
            replicas,
            history: this.historyJson(),
        });
    }

    /**
     * Ops `replica` is behind: the highest commit it knows of (its commit_max) or that a replica
     * up reported no later than it did, minus its commit. Only earlier reports count: reports are
     * up to a second apart, and a later one is ahead by a second of commits, not by lag. E.g. at
     * 600 commits/s the primary reporting 0.6 s before its backups is not 360 ops behind them.
     */
    private lag(replica: number, nowMs: number): number {
        const heardMs = this.heardMs[replica]!;
        let highest = this.commitMax[replica]!;
        for (let other = 0; other < this.replicaCount; other++) {
            if (!this.up(other, nowMs) || this.heardMs[other]! > heardMs) continue;
            highest = Math.max(highest, this.commitMin[other]!);
        }
        return Math.max(0, highest - this.commitMin[replica]!);
    }

    private historyJson(): Record<string, number[]> {
        const count = Math.min(this.pointsCount, historyPointsMax);
        const first = this.pointsCount - count;
        const columns = {
            time_s: [] as number[],
            commits_per_s: [] as number[],
            latency_ms_p50: [] as number[],
            latency_ms_p99: [] as number[],
            view_changes: [] as number[],
            replicas_up: [] as number[],
        };
        for (let point = first; point < this.pointsCount; point++) {
            const index = point & historyMask;
            columns.time_s.push(this.historyMs[index]! / 1000);
            columns.commits_per_s.push(Math.round(this.historyCommitsPerS[index]!));
            columns.latency_ms_p50.push(round3(this.historyLatencyMsP50[index]!));
            columns.latency_ms_p99.push(round3(this.historyLatencyMsP99[index]!));
            columns.view_changes.push(this.historyViewChanges[index]!);
            columns.replicas_up.push(this.historyUp[index]!);
        }
        return columns;
    }
}

function round3(value: number): number {
    return Math.round(value * 1000) / 1000;
}
