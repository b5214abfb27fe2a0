// Histograms for /metrics: any sequence of observations gives cumulative buckets that end at
// +Inf = count, a sum equal to the observations' sum, and text that a Prometheus parser reads
// back to the same numbers, labelled or not. Failures print fast-check's seed and path.

import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import parsePrometheusTextFormat from "parse-prometheus-text-format";
import { Histogram, exponentialBounds, writeHeader } from "../../src/io/metrics.js";

const bounds = exponentialBounds(0.0001, 2, 16);

test("a histogram's exposition parses back to its observations", () => {
    fc.assert(
        fc.property(
            fc.array(fc.double({ min: 0, max: 20, noNaN: true }), { maxLength: 200 }),
            (values) => {
                const histogram = new Histogram("vsr_test_seconds", "A test histogram.", bounds);
                for (const value of values) histogram.observe(value);
                const lines: string[] = [];
                histogram.writeFamily(lines);
                const [family] = parsePrometheusTextFormat(`${lines.join("\n")}\n`);
                assert.equal(family!.name, "vsr_test_seconds");
                assert.equal(family!.type, "HISTOGRAM");
                assert.equal(family!.help, "A test histogram.");
                const sample = family!.metrics[0]!;
                assert.equal(Number(sample.count), values.length);
                const sum = values.reduce((total, value) => total + value, 0);
                assert.ok(Math.abs(Number(sample.sum) - sum) <= 1e-9 * Math.max(1, sum));
                const buckets = sample.buckets!;
                assert.equal(Number(buckets["+Inf"]), values.length);
                for (const bound of bounds) {
                    const le = String(Number(bound.toPrecision(6)));
                    const expected = values.filter((value) => value <= bound).length;
                    assert.equal(Number(buckets[le]), expected, `le=${le}`);
                }
            },
        ),
        { numRuns: 200 },
    );
});

test("a labelled series carries its labels on every line", () => {
    const histogram = new Histogram("vsr_test_seconds", "A test histogram.", bounds);
    histogram.observe(0.001);
    const lines: string[] = [];
    writeHeader(lines, histogram.name, "histogram", histogram.help);
    histogram.writeSeries(lines, 'zone="wal"');
    const samples = lines.filter((line) => !line.startsWith("#"));
    assert.equal(samples.length, bounds.length + 3);
    for (const line of samples) assert.match(line, /\{zone="wal"(,le="[^"]+")?\} /);
    assert.equal(samples.at(-1), 'vsr_test_seconds_count{zone="wal"} 1');
});
