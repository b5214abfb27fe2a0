// Prometheus text exposition for the real node: fixed-bucket histograms and the helpers that
// write a metric family with its `# HELP` and `# TYPE` lines.
//
// A Histogram is built once at start-up (its bucket bounds fixed) and observe() touches only a
// Float64Array and two numbers: no allocation on the paths it measures (journal writes, client
// requests). Buckets are stored non-cumulative and summed when the text is written, which is
// off the hot path (a scrape). Values are in seconds, as Prometheus' base unit wants.
// Invariants: bounds strictly increase; count equals the sum of the bucket counts (the last
// bucket is +Inf); sum is the sum of every observed value.

import { assert } from "../stdx/assert.js";
import { bucketIndex } from "../stdx/bucket.js";

/** Bucket bounds in seconds: `count` bounds from `first`, each `factor` times the previous. */
export function exponentialBounds(first: number, factor: number, count: number): Float64Array {
    assert(first > 0 && factor > 1 && count >= 1);
    const bounds = new Float64Array(count);
    for (let index = 0; index < count; index++) bounds[index] = first * factor ** index;
    return bounds;
}

export class Histogram {
    readonly name: string;
    readonly help: string;
    /** Upper bounds (inclusive), seconds; the implicit last bucket is +Inf. */
    readonly bounds: Float64Array;
    /** Observations per bucket, non-cumulative; index bounds.length is +Inf. */
    readonly counts: Float64Array;
    count = 0;
    sumSeconds = 0;

    constructor(name: string, help: string, bounds: Float64Array) {
        assert(/^[a-z_][a-z0-9_]*$/.test(name) && bounds.length >= 1);
        for (let index = 1; index < bounds.length; index++) {
            assert(bounds[index]! > bounds[index - 1]!);
        }
        this.name = name;
        this.help = help;
        this.bounds = bounds;
        this.counts = new Float64Array(bounds.length + 1);
    }

    observe(seconds: number): void {
        assert(seconds >= 0);
        this.counts[bucketIndex(this.bounds, seconds)]! += 1;
        this.count++;
        this.sumSeconds += seconds;
    }

    /** Writes `_bucket` (cumulative), `_sum` and `_count` lines; `labels` is `k="v",…` or "". */
    writeSeries(lines: string[], labels: string): void {
        const count = writeBuckets(lines, this.name, labels, this.bounds, this.counts);
        assert(count === this.count);
        const suffix = labels === "" ? "" : `{${labels}}`;
        lines.push(`${this.name}_sum${suffix} ${this.sumSeconds}`);
        lines.push(`${this.name}_count${suffix} ${this.count}`);
    }

    /** The whole family: HELP, TYPE and the one unlabelled series. */
    writeFamily(lines: string[]): void {
        writeHeader(lines, this.name, "histogram", this.help);
        this.writeSeries(lines, "");
    }
}

/**
 * Writes the cumulative `_bucket` lines of non-cumulative `counts` (one more than `bounds`: the
 * last is +Inf); returns the total count.
 */
function writeBuckets(
    lines: string[],
    name: string,
    labels: string,
    bounds: ArrayLike<number>,
    counts: ArrayLike<number>,
): number {
    assert(counts.length === bounds.length + 1);
    const prefix = labels === "" ? "" : `${labels},`;
    let cumulative = 0;
    for (let bucket = 0; bucket < bounds.length; bucket++) {
        cumulative += counts[bucket]!;
        lines.push(`${name}_bucket{${prefix}le="${formatBound(bounds[bucket]!)}"} ${cumulative}`);
    }
    cumulative += counts[bounds.length]!;
    lines.push(`${name}_bucket{${prefix}le="+Inf"} ${cumulative}`);
    return cumulative;
}

/**
 * A histogram family whose buckets someone else counted (non-cumulative `counts`, the last one
 * +Inf) and whose observations add up to `sum`: e.g. the replica's requests per prepare.
 */
export function writeHistogramCounts(
    lines: string[],
    name: string,
    help: string,
    bounds: ArrayLike<number>,
    counts: ArrayLike<number>,
    sum: number,
): void {
    writeHeader(lines, name, "histogram", help);
    const count = writeBuckets(lines, name, "", bounds, counts);
    lines.push(`${name}_sum ${sum}`);
    lines.push(`${name}_count ${count}`);
}

/** Bounds like 0.0001 print as they are; float noise (0.30000000000000004) is rounded away. */
function formatBound(seconds: number): string {
    return String(Number(seconds.toPrecision(6)));
}

export function writeHeader(lines: string[], name: string, type: string, help: string): void {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
}

/** One family with a single unlabelled sample. */
export function writeSample(
    lines: string[],
    name: string,
    type: "counter" | "gauge",
    help: string,
    value: number,
): void {
    writeHeader(lines, name, type, help);
    lines.push(`${name} ${value}`);
}
