// The simulator's trace recorder (`vsr sim --trace`, `--html`): a timeline of one run, read off
// the cluster after every tick, never written into it. It only reads public state (replica
// status, view and commit, `cluster.up`, network link and clog state, storage and client
// counters) and draws nothing from any PRNG, so a run with a recorder is the same run as without
// one: same ticks, same faults, same fingerprint (a test asserts it).
//
// What it keeps, bounded:
// - events, on change only: a replica's status/view/role, crash, restart (recovering) and
//   recovered, the set of blocked links (partitions) and of clogged paths, storage faults by
//   zone, torn and misdirected writes, the start of the liveness phase; at most eventsMax (the
//   rest are counted in `eventsDropped`, so a truncated trace says so);
// - series, one point per bucket of ticks: the highest commit, each replica's commit, client
//   requests issued and replies received, packets dropped. Buckets start at 100 ticks and
//   double (pairs merge) whenever more than bucketsMax would be needed, so a run of any length
//   stays within bucketsMax points;
// - the result, and for a failure the failing check with the op and replicas its message names.
// The recorder runs only when asked for; its per-tick work is a few comparisons per replica.

import { assert } from "../stdx/assert.js";
import { Status } from "../vsr/replica.js";
import type { Cluster } from "./cluster.js";
import { zoneCount, zoneNames } from "./storage.js";
import type { SimResult } from "./vopr.js";

export const traceVersion = 1;
export const eventsMax = 100_000;
export const bucketsMax = 2048;
const bucketTicksFirst = 100;

/** One timeline event; `tick` is the cluster tick after which it was seen. */
export type TraceEvent =
    | {
          tick: number;
          kind: "status";
          replica: number;
          status: "normal" | "view_change" | "recovering";
          view: number;
          primary: boolean;
      }
    | { tick: number; kind: "crash" | "restart" | "recovered"; replica: number }
    | { tick: number; kind: "partition"; blocked: [number, number][] }
    | { tick: number; kind: "clogs"; clogged: [number, number][] }
    | {
          tick: number;
          kind: "storage_fault";
          replica: number;
          zone: string;
          count: number;
      }
    | { tick: number; kind: "torn_write" | "misdirected_write"; replica: number; count: number }
    | { tick: number; kind: "heal" };

export interface TraceSeries {
    bucket_ticks: number;
    /** Per bucket: the highest commit of any replica up so far, at the bucket's end. */
    commit: number[];
    /** Per replica, per bucket: that replica's commit at the bucket's end (-1: down). */
    replica_commit: number[][];
    requests: number[];
    replies: number[];
    packets_dropped: number[];
}

export interface TraceFailure {
    kind: "safety" | "liveness";
    check: string;
    tick: number;
    op: number | null;
    replicas: number[];
}

export interface Trace {
    version: number;
    seed: number;
    storm: boolean;
    replicas: number;
    clients: number;
    tick_ms: number;
    ticks: number;
    result: string;
    fingerprint: string;
    faults: Record<string, number>;
    fault_zones: Record<string, number>;
    failure: TraceFailure | null;
    events: TraceEvent[];
    events_dropped: number;
    series: TraceSeries;
}

const statusNames: readonly ("normal" | "view_change" | "recovering")[] = [
    "normal",
    "view_change",
    "recovering",
];

export class TraceRecorder {
    private readonly replicaCount: number;
    private readonly events: TraceEvent[] = [];
    private eventsDropped = 0;
    // Last seen, per replica: status (-1 down), view, primary, up, the Replica object (a new
    // one means a restart began), storage counters.
    private readonly status: Int8Array;
    private readonly view: Float64Array;
    private readonly primary: Uint8Array;
    private readonly up: Uint8Array;
    private readonly replicaObjects: unknown[] = [];
    private readonly zoneFaults: Float64Array;
    private readonly torn: Float64Array;
    private readonly misdirected: Float64Array;
    private blockedMask = 0;
    private cloggedMask = 0;
    // Series: the bucket being filled and the finished ones.
    private bucketTicks = bucketTicksFirst;
    /** Finished buckets (flush() closes the one being filled). */
    readonly series: TraceSeries;
    private readonly bucketsLimit: number;
    private requestsIssued = 0;
    private repliesSeen = 0;
    private droppedSeen = 0;
    private bucketRequests = 0;
    private bucketReplies = 0;
    private bucketDropped = 0;
    private lastTick = 0;

    /** bucketsLimit: even, at least 2 (tests use a small one to see buckets merge). */
    constructor(cluster: Cluster, bucketsLimit = bucketsMax) {
        assert(bucketsLimit >= 2 && bucketsLimit % 2 === 0);
        this.bucketsLimit = bucketsLimit;
        const count = cluster.replicas.length;
        this.replicaCount = count;
        this.status = new Int8Array(count).fill(-2); // -2: not seen yet, so tick 0 records.
        this.view = new Float64Array(count);
        this.primary = new Uint8Array(count);
        this.up = new Uint8Array(count).fill(1);
        this.zoneFaults = new Float64Array(count * zoneCount);
        this.torn = new Float64Array(count);
        this.misdirected = new Float64Array(count);
        for (const replica of cluster.replicas) this.replicaObjects.push(replica);
        const replicaCommit: number[][] = [];
        for (let index = 0; index < count; index++) replicaCommit.push([]);
        this.series = {
            bucket_ticks: this.bucketTicks,
            commit: [],
            replica_commit: replicaCommit,
            requests: [],
            replies: [],
            packets_dropped: [],
        };
        assert(count >= 1 && count <= 6); // Link masks below use 36 bits at most.
    }

    /** Reads the cluster after a tick (or at the start, tick 0). */
    observe(cluster: Cluster): void {
        const tick = cluster.ticks;
        assert(tick >= this.lastTick);
        this.lastTick = tick;
        for (let index = 0; index < this.replicaCount; index++) this.observeReplica(cluster, index);
        this.observeNetwork(cluster);
        this.observeClients(cluster);
        if (tick > 0 && tick % this.bucketTicks === 0) this.closeBucket(cluster);
    }

    /** The liveness phase begins: faults heal. */
    onHeal(cluster: Cluster): void {
        this.push({ tick: cluster.ticks, kind: "heal" });
    }

    private push(event: TraceEvent): void {
        if (this.events.length >= eventsMax) {
            this.eventsDropped++;
            return;
        }
        this.events.push(event);
    }

    private observeReplica(cluster: Cluster, index: number): void {
        const tick = cluster.ticks;
        const replica = cluster.replicas[index]!;
        if (replica !== this.replicaObjects[index]) {
            this.replicaObjects[index] = replica;
            this.push({ tick, kind: "restart", replica: index });
        }
        const up = cluster.up[index]!;
        if (up !== this.up[index]) {
            this.up[index] = up;
            this.push({ tick, kind: up === 1 ? "recovered" : "crash", replica: index });
        }
        // A crashed replica keeps its last state object; it shows as down until it restarts.
        const crashed = up === 0 && replica.status !== Status.recovering;
        const status: number = crashed ? -1 : replica.status;
        const primary = !crashed && replica.status === Status.normal && replica.primary ? 1 : 0;
        if (
            status !== this.status[index] ||
            replica.view !== this.view[index] ||
            primary !== this.primary[index]
        ) {
            this.status[index] = status;
            this.view[index] = replica.view;
            this.primary[index] = primary;
            if (status >= 0) {
                const name = statusNames[status]!;
                const view = replica.view;
                this.push({
                    tick,
                    kind: "status",
                    replica: index,
                    status: name,
                    view,
                    primary: primary === 1,
                });
            }
        }
        this.observeStorage(cluster, index);
    }

    private observeStorage(cluster: Cluster, index: number): void {
        const tick = cluster.ticks;
        const stats = cluster.storages[index]!.stats;
        for (let zone = 0; zone < zoneCount; zone++) {
            const seen = this.zoneFaults[index * zoneCount + zone]!;
            const now = stats.zoneFaults[zone]!;
            if (now === seen) continue;
            this.zoneFaults[index * zoneCount + zone] = now;
            const zoneName = zoneNames[zone]!;
            this.push({
                tick,
                kind: "storage_fault",
                replica: index,
                zone: zoneName,
                count: now - seen,
            });
        }
        if (stats.tornWrites !== this.torn[index]) {
            const count = stats.tornWrites - this.torn[index]!;
            this.torn[index] = stats.tornWrites;
            this.push({ tick, kind: "torn_write", replica: index, count });
        }
        if (stats.misdirectedWrites !== this.misdirected[index]) {
            const count = stats.misdirectedWrites - this.misdirected[index]!;
            this.misdirected[index] = stats.misdirectedWrites;
            this.push({ tick, kind: "misdirected_write", replica: index, count });
        }
    }

    /** Blocked links and clogged paths between replicas, as 36-bit masks (bit = from * 6 + to). */
    private observeNetwork(cluster: Cluster): void {
        const network = cluster.network;
        let blocked = 0;
        let clogged = 0;
        for (let from = 0; from < this.replicaCount; from++) {
            for (let to = 0; to < this.replicaCount; to++) {
                if (from === to) continue;
                const bit = 2 ** (from * 6 + to);
                if (!network.linkUp(from, to)) blocked += bit;
                if (network.pathClogged(from, to)) clogged += bit;
            }
        }
        const tick = cluster.ticks;
        if (blocked !== this.blockedMask) {
            this.blockedMask = blocked;
            this.push({ tick, kind: "partition", blocked: this.pairs(blocked) });
        }
        if (clogged !== this.cloggedMask) {
            this.cloggedMask = clogged;
            this.push({ tick, kind: "clogs", clogged: this.pairs(clogged) });
        }
        const dropped = network.stats.packetsDropped;
        this.bucketDropped += dropped - this.droppedSeen;
        this.droppedSeen = dropped;
    }

    private pairs(mask: number): [number, number][] {
        const pairs: [number, number][] = [];
        for (let from = 0; from < this.replicaCount; from++) {
            for (let to = 0; to < this.replicaCount; to++) {
                if (from !== to && Math.floor(mask / 2 ** (from * 6 + to)) % 2 === 1) {
                    pairs.push([from, to]);
                }
            }
        }
        return pairs;
    }

    private observeClients(cluster: Cluster): void {
        let requests = 0;
        for (const client of cluster.clients) requests += client.requestsIssued;
        const replies = cluster.requestsCompleted;
        this.bucketRequests += requests - this.requestsIssued;
        this.bucketReplies += replies - this.repliesSeen;
        this.requestsIssued = requests;
        this.repliesSeen = replies;
    }

    /** Returns whether buckets merged (the one just closed went back to be filled again). */
    private closeBucket(cluster: Cluster): boolean {
        const series = this.series;
        // The cluster's commit never goes back, even while every replica is down.
        let commit = series.commit.length === 0 ? 0 : series.commit[series.commit.length - 1]!;
        for (let index = 0; index < this.replicaCount; index++) {
            const replica = cluster.replicas[index]!;
            const down = cluster.up[index] === 0;
            series.replica_commit[index]!.push(down ? -1 : replica.commitMin);
            if (!down) commit = Math.max(commit, replica.commitMin);
        }
        series.commit.push(commit);
        series.requests.push(this.bucketRequests);
        series.replies.push(this.bucketReplies);
        series.packets_dropped.push(this.bucketDropped);
        this.bucketRequests = 0;
        this.bucketReplies = 0;
        this.bucketDropped = 0;
        if (series.commit.length <= this.bucketsLimit) return false;
        this.mergeBuckets();
        return true;
    }

    /**
     * Halves the resolution: bucket pairs merge (commits keep the later, counts add). The count
     * is odd here (bucketsMax + 1); the last bucket goes back into the one being filled, which
     * the doubled bucket size makes span it: e.g. buckets of 100 ticks closed up to tick 204900
     * become buckets of 200, and the one now filling spans ticks 204800 to 205000.
     */
    private mergeBuckets(): void {
        const series = this.series;
        assert(series.commit.length % 2 === 1);
        series.commit.pop();
        for (const commits of series.replica_commit) commits.pop();
        this.bucketRequests += series.requests.pop()!;
        this.bucketReplies += series.replies.pop()!;
        this.bucketDropped += series.packets_dropped.pop()!;
        const later = (values: number[]): number[] => values.filter((_, index) => index % 2 === 1);
        const sums = (values: number[]): number[] => {
            const merged: number[] = [];
            for (let index = 0; index < values.length; index += 2) {
                merged.push(values[index]! + values[index + 1]!);
            }
            return merged;
        };
        series.commit = later(series.commit);
        series.replica_commit = series.replica_commit.map(later);
        series.requests = sums(series.requests);
        series.replies = sums(series.replies);
        series.packets_dropped = sums(series.packets_dropped);
        this.bucketTicks *= 2;
        series.bucket_ticks = this.bucketTicks;
        assert(series.commit.length === this.bucketsLimit / 2);
    }

    /** The whole trace, after the run (the recorder is done). */
    /** Closes the bucket being filled (the run's last, partial one); the series is complete. */
    flush(cluster: Cluster): TraceSeries {
        if (cluster.ticks % this.bucketTicks === 0) return this.series;
        if (this.closeBucket(cluster)) this.closeBucket(cluster);
        return this.series;
    }

    finish(cluster: Cluster, result: SimResult, storm: boolean): Trace {
        this.flush(cluster);
        return {
            version: traceVersion,
            seed: result.seed,
            storm,
            replicas: result.replicas,
            clients: result.clients,
            tick_ms: cluster.options.config.tickMs,
            ticks: result.ticks,
            result: result.result,
            fingerprint: result.fingerprint,
            faults: result.faults,
            fault_zones: result.faultZones,
            failure: failureOf(result),
            events: this.events,
            events_dropped: this.eventsDropped,
            series: this.series,
        };
    }
}

/** The failing check, with the op and the replicas its message names (first line only). */
export function failureOf(result: SimResult): TraceFailure | null {
    if (result.result === "pass") return null;
    const check = result.reason ?? "unknown";
    const line = check.split("\n")[0]!;
    const opMatch = /\bop (\d+)/.exec(line);
    const replicas = new Set<number>();
    for (const match of line.matchAll(/\breplicas? ((?:\d+)(?:(?:, | and )\d+)*)/g)) {
        for (const number of match[1]!.split(/, | and /)) replicas.add(Number(number));
    }
    return {
        kind: result.result,
        check,
        tick: result.ticks,
        op: opMatch === null ? null : Number(opMatch[1]),
        replicas: [...replicas].sort((a, b) => a - b),
    };
}
