// Fixed-bound histogram bucketing, shared by the node's Prometheus histograms (src/io/metrics.ts)
// and the replica's own counts (requests per prepare): one rule for which bucket a value is in.

/**
 * The index of the first bound that `value` does not exceed (bounds are inclusive upper bounds,
 * increasing); bounds.length when it exceeds them all (the +Inf bucket). No allocation.
 */
export function bucketIndex(bounds: ArrayLike<number>, value: number): number {
    let bucket = 0;
    while (bucket < bounds.length && value > bounds[bucket]!) bucket++;
    return bucket;
}
