// The replica's own peer_status report, built about once a second into one buffer allocated at
// start-up (outside the arena: it is only ever sent), and the request latency of the last
// report period, estimated from the bus's request histogram.
//
// Latency: the histogram is cumulative with doubling buckets (100 µs, 200 µs, …). A period's
// distribution is the difference of the bucket counts since the previous report; a quantile
// is interpolated linearly inside the bucket that holds it. Worked example: 10 requests, 4 in
// (0.2, 0.4] ms and 6 in (0.4, 0.8] ms: p50 is the 5th, the first of the second bucket's 6, so
// 0.4 + (5 - 4) / 6 * 0.4 ≈ 0.47 ms. The estimate is within a bucket (a factor of 2) of the
// truth, which is what a chart of seconds-long trends needs.

import { headerSize } from "../constants.js";
import { assert, unreachable } from "../stdx/assert.js";
import { Command, Frame, PeerStatus, setChecksums, writeU64 } from "../vsr/header.js";
import type { StatusFields } from "./cluster_view.js";

/** The quantile q (0..1) of a non-cumulative bucket histogram, in the bounds' unit; 0 if empty. */
export function bucketQuantile(bounds: Float64Array, counts: Float64Array, q: number): number {
    assert(counts.length === bounds.length + 1 && q > 0 && q <= 1);
    let total = 0;
    for (let bucket = 0; bucket < counts.length; bucket++) total += counts[bucket]!;
    if (total === 0) return 0;
    const rank = Math.max(1, Math.ceil(q * total));
    let below = 0;
    for (let bucket = 0; bucket < counts.length; bucket++) {
        const count = counts[bucket]!;
        if (below + count >= rank) {
            const lower = bucket === 0 ? 0 : bounds[bucket - 1]!;
            // The +Inf bucket has no upper edge: report its lower one.
            if (bucket === bounds.length) return lower;
            const upper = bounds[bucket]!;
            return lower + ((rank - below) / count) * (upper - lower);
        }
        below += count;
    }
    return unreachable();
}

/** Per period: the difference of a cumulative histogram's counts since the last call. */
export class LatencyWindow {
    private readonly bounds: Float64Array;
    private readonly counts: Float64Array;
    private readonly previous: Float64Array;
    private readonly delta: Float64Array;
    latencyUsP50 = 0;
    latencyUsP99 = 0;
    count = 0;

    /** `counts` is the live histogram's (read, never written). Bounds in seconds. */
    constructor(bounds: Float64Array, counts: Float64Array) {
        assert(counts.length === bounds.length + 1);
        this.bounds = bounds;
        this.counts = counts;
        this.previous = new Float64Array(counts.length);
        this.delta = new Float64Array(counts.length);
        this.previous.set(counts);
    }

    /** Closes the period: latency fields now describe it; the next period starts. */
    roll(): void {
        let count = 0;
        for (let bucket = 0; bucket < this.counts.length; bucket++) {
            const value = this.counts[bucket]! - this.previous[bucket]!;
            assert(value >= 0); // The histogram only grows.
            this.delta[bucket] = value;
            count += value;
        }
        this.previous.set(this.counts);
        this.count = count;
        this.latencyUsP50 = Math.round(1e6 * bucketQuantile(this.bounds, this.delta, 0.5));
        this.latencyUsP99 = Math.round(1e6 * bucketQuantile(this.bounds, this.delta, 0.99));
    }
}

const u32Max = 0xffff_ffff;

/** The peer_status header of `replica` in `cluster`, rewritten in place by write(). */
export class StatusReport {
    readonly bytes = new Uint8Array(headerSize);
    readonly view = new DataView(this.bytes.buffer);

    constructor(cluster: number, replica: number) {
        this.view.setUint32(Frame.cluster, cluster, true);
        this.view.setUint32(Frame.size, headerSize, true);
        this.view.setUint8(Frame.command, Command.peerStatus);
        this.view.setUint8(Frame.replica, replica);
    }

    write(fields: StatusFields): void {
        const view = this.view;
        assert(fields.status <= 2 && fields.primary <= 1);
        view.setUint32(Frame.view, fields.view, true);
        view.setUint32(PeerStatus.logView, fields.logView, true);
        view.setUint8(PeerStatus.status, fields.status);
        view.setUint8(PeerStatus.primary, fields.primary);
        writeU64(view, PeerStatus.op, fields.op);
        writeU64(view, PeerStatus.commitMin, fields.commitMin);
        writeU64(view, PeerStatus.commitMax, fields.commitMax);
        writeU64(view, PeerStatus.checkpointOp, fields.checkpointOp);
        view.setUint32(
            PeerStatus.requestLatencyUsP50,
            Math.min(u32Max, fields.requestLatencyUsP50),
            true,
        );
        view.setUint32(
            PeerStatus.requestLatencyUsP99,
            Math.min(u32Max, fields.requestLatencyUsP99),
            true,
        );
        view.setUint32(PeerStatus.requestsReplied, Math.min(u32Max, fields.requestsReplied), true);
        setChecksums(this.bytes, view, 0);
    }
}
