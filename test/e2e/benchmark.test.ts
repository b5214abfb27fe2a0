// `vsr benchmark` end to end, in a child process: a one-replica cluster, one short run, --json.
// Beside throughput and latency it reports what the run cost, sampled from each replica's
// /metrics: young GCs per 100k ops and young bytes per op (replicas and load generator), RSS
// per replica, CPU seconds per million ops, in total and per process, and requests per prepare.

import assert from "node:assert/strict";
import { test } from "node:test";
import type { BenchmarkRun } from "../../src/client/benchmark.js";
import { Scope } from "./harness.js";

test("vsr benchmark --json reports GCs per 100k ops, young bytes per op, RSS and CPU per op", {
    timeout: 120_000,
}, async (t) => {
    const scope = Scope.create(t);
    const args = ["benchmark", "--replicas=1", "--duration-s=2", "--clients=4", "--json"];
    const proc = await scope.run(args, { timeoutMs: 110_000 });
    assert.equal(proc.exit?.code, 0, proc.describe());
    const report = JSON.parse(proc.stdout) as { replicas: number; runs: BenchmarkRun[] };
    assert.equal(report.replicas, 1);
    assert.equal(report.runs.length, 1);
    const run = report.runs[0]!;
    assert.equal(run.clients, 4);
    assert.ok(run.ops > 0, "the run completed operations");
    assert.equal(run.replica_young_gcs_per_100k_ops.length, 1);
    assert.ok(run.replica_young_gcs_per_100k_ops[0]! >= 0);
    assert.ok(run.client_young_gcs_per_100k_ops >= 0);
    // Young bytes per op, per process: whole bytes, and both processes allocate something per
    // op (frames, promises), well below a young generation's worth.
    assert.equal(run.replica_young_bytes_per_op.length, 1);
    for (const bytes of [run.replica_young_bytes_per_op[0]!, run.client_young_bytes_per_op]) {
        assert.ok(Number.isInteger(bytes) && bytes >= 0 && bytes < 1 << 20, proc.stdout);
    }
    assert.equal(run.replica_rss_mib.length, 1);
    // The replica holds its arena resident: well above an idle node process, below the budget.
    assert.ok(run.replica_rss_mib[0]! > 32 && run.replica_rss_mib[0]! < 1024, proc.stdout);
    assert.ok(run.cpu_s_per_million_ops > 0, proc.stdout);
    // Per process (the replica, then the load generator): both worked, and they add up to the
    // total (each rounded to 0.01 µs; the total to 0.01 s per 1M ops = 0.01 µs per op).
    assert.equal(run.cpu_us_per_op.length, 2);
    assert.ok(
        run.cpu_us_per_op.every((us) => us > 0),
        proc.stdout,
    );
    const summedUs = run.cpu_us_per_op[0]! + run.cpu_us_per_op[1]!;
    assert.ok(Math.abs(summedUs - run.cpu_s_per_million_ops) <= 0.03, proc.stdout);
    // Each prepare holds at least one request, and at most one per client (one call each).
    assert.ok(run.requests_per_prepare >= 1 && run.requests_per_prepare <= 4, proc.stdout);
});
