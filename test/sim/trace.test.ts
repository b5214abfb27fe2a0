// The trace recorder (src/sim/trace.ts) and the replay page builder (src/web/replay.ts):
// - recording never changes the run: the same fingerprint and result with and without it
//   (default and storm seeds), also through the CLI's --trace/--html;
// - the same seed gives the same trace and the same page, byte for byte;
// - the series stays within its bucket bound however long the run, and its counts add up;
// - a failing check's op and replicas are read from its message;
// - the page is self-contained (no external URL) and the trace cannot end its <script>.

import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { Cluster } from "../../src/sim/cluster.js";
import { TraceRecorder, failureOf } from "../../src/sim/trace.js";
import {
    type SimOptions,
    type SimResult,
    defaultSimOptions,
    runSimulation,
    runSimulationTraced,
    swarmClusterOptions,
} from "../../src/sim/vopr.js";
import { replayHtml, scriptSafeJson } from "../../src/web/replay.js";

const cliPath = fileURLToPath(new URL("../../src/cli.js", import.meta.url));
const ticks = 4000;

function options(seed: number, storm: boolean): SimOptions {
    return { ...defaultSimOptions(seed), ticks, storm };
}

for (const storm of [false, true]) {
    test(`recording a run changes nothing: same fingerprint (seeds 1-4, storm=${storm})`, () => {
        for (let seed = 1; seed <= 4; seed++) {
            const plain = runSimulation(options(seed, storm));
            const { result, trace } = runSimulationTraced(options(seed, storm));
            assert.equal(result.fingerprint, plain.fingerprint, `seed ${seed}`);
            assert.equal(result.result, plain.result, `seed ${seed}`);
            assert.equal(result.ticks, plain.ticks, `seed ${seed}`);
            assert.equal(trace.ticks, plain.ticks);
            assert.equal(trace.fingerprint, plain.fingerprint);
            assert.equal(trace.replicas, plain.replicas);
            const statuses = trace.events.filter((event) => event.kind === "status");
            assert.ok(statuses.length >= plain.replicas, "every replica's first status");
        }
    });
}

test("the same seed gives the same trace and the same replay page, byte for byte", () => {
    const first = runSimulationTraced(options(5, true)).trace;
    const second = runSimulationTraced(options(5, true)).trace;
    assert.equal(JSON.stringify(first), JSON.stringify(second));
    assert.equal(replayHtml(first, "vsr sim --seed=5"), replayHtml(second, "vsr sim --seed=5"));
    const crashes = first.events.filter((event) => event.kind === "crash").length;
    assert.equal(crashes, first.faults["crashes"], "every crash is in the timeline");
});

test("the series stays within its bucket bound and its counts add up", () => {
    const cluster = new Cluster(swarmClusterOptions({ ...defaultSimOptions(8), ticks: 20_000 }));
    const recorder = new TraceRecorder(cluster, 8);
    recorder.observe(cluster);
    for (let tick = 0; tick < 12_345; tick++) {
        cluster.tick();
        recorder.observe(cluster);
    }
    const series = recorder.flush(cluster);
    assert.ok(series.commit.length <= 9 && series.commit.length >= 4, String(series.commit.length));
    assert.equal(series.bucket_ticks, (2048 * 100) / 128, "100 ticks doubled 4 times");
    const sum = (values: number[]): number => values.reduce((a, b) => a + b, 0);
    assert.equal(sum(series.replies), cluster.requestsCompleted);
    assert.equal(sum(series.packets_dropped), cluster.network.stats.packetsDropped);
    let requests = 0;
    for (const client of cluster.clients) requests += client.requestsIssued;
    assert.equal(sum(series.requests), requests);
    for (let index = 1; index < series.commit.length; index++) {
        assert.ok(series.commit[index]! >= series.commit[index - 1]!, "commit never goes back");
    }
    for (const commits of series.replica_commit) assert.equal(commits.length, series.commit.length);
});

function failed(reason: string): SimResult {
    const passing = runSimulation({ ...defaultSimOptions(1), ticks: 10 });
    return { ...passing, result: "safety", reason };
}

test("a failure's op and replicas are read from the failing check's message", () => {
    const cases: [string, number | null, number[]][] = [
        ["replicas 0 and 1 differ in KV image at op 123", 123, [0, 1]],
        ["replica 2 acknowledged op 5 before it was durable (and 3 more)", 5, [2]],
        ["client 7 request 1: the model did not execute it at op 16", 16, []],
        ["replica crashed: AssertionError\n    at replica 4 op 9", null, []],
    ];
    for (const [reason, op, replicas] of cases) {
        const failure = failureOf(failed(reason))!;
        assert.equal(failure.op, op, reason);
        assert.deepEqual(failure.replicas, replicas, reason);
        assert.equal(failure.check, reason);
    }
    assert.equal(failureOf(runSimulation({ ...defaultSimOptions(1), ticks: 10 })), null);
});

test("the replay page is self-contained and the trace cannot close its script", () => {
    const { trace } = runSimulationTraced(options(3, false));
    const hostile = { ...trace, failure: failureOf(failed("</script><script>alert(1)</script>")) };
    const html = replayHtml(hostile, "vsr sim --seed=3 <x>");
    assert.equal(html.match(/<\/script>/g)?.length, 2, "only the page's own two scripts end");
    assert.doesNotMatch(html, /\b(src|href)=/, "nothing loaded from elsewhere");
    assert.match(html, /vsr sim --seed=3 &lt;x&gt;/);
    assert.equal(JSON.parse(scriptSafeJson("a</script>\u2028")), "a</script>\u2028");
});

test("vsr sim --trace/--html: same fingerprint as without, same files from the same seed", () => {
    const directory = fs.mkdtempSync(path.join(os.tmpdir(), "vsr-trace-"));
    try {
        const sim = (...flags: string[]): string =>
            execFileSync(process.execPath, [cliPath, "sim", "--seed=2", "--ticks=3000", ...flags], {
                encoding: "utf8",
            });
        const fingerprint = (output: string): string => /fingerprint=([0-9a-f]+)/.exec(output)![1]!;
        const plain = sim();
        const files = ["a", "b"].map((name) => ({
            trace: path.join(directory, `${name}.json`),
            html: path.join(directory, `${name}.html`),
        }));
        for (const file of files) {
            const output = sim(`--trace=${file.trace}`, `--html=${file.html}`);
            assert.equal(fingerprint(output), fingerprint(plain));
        }
        assert.ok(fs.readFileSync(files[0]!.html).equals(fs.readFileSync(files[1]!.html)));
        assert.ok(fs.readFileSync(files[0]!.trace).equals(fs.readFileSync(files[1]!.trace)));
        const trace = JSON.parse(fs.readFileSync(files[0]!.trace, "utf8")) as { seed: number };
        assert.equal(trace.seed, 2);
    } finally {
        fs.rmSync(directory, { recursive: true, force: true });
    }
});

test("vsr sim --trace/--html: an empty name is a usage error, an unwritable path one line", () => {
    const run = (...flags: string[]) =>
        spawnSync(process.execPath, [cliPath, "sim", "--seed=1", "--ticks=10", ...flags], {
            encoding: "utf8",
        });
    for (const flag of ["--trace=", "--html="]) {
        const empty = run(flag);
        assert.equal(empty.status, 2, empty.stderr);
        assert.match(empty.stderr, /^vsr sim: --(trace|html) needs a file name/);
    }
    const unwritable = run("--html=/nonexistent-directory/replay.html");
    assert.equal(unwritable.status, 1);
    assert.match(unwritable.stderr, /^vsr: ENOENT: .*replay\.html'\n$/);
});
