// The live page's cost to a replica, piece by piece (the macro view is
// scripts/bench_live_page.mjs, `vsr benchmark` with the page closed and open). Rows:
//   peer_status receive   ClusterView.onPeerStatus of one validated report (per peer, per second);
//   report build          the replica's own report: fields, StatusReport.write (checksums);
//   latency roll          the request histogram's period difference and its p50/p99;
//   cluster.json          the page's data for 3 replicas with a full history (1024 points),
//                         built once a second per open page.
// Per second with 3 replicas and one open page a replica spends 2 receives + 1 build + 1 roll +
// 1 cluster.json; the summary line gives that in µs per second (a fraction of one core).
// GCs: young collections during 1M receives after a warm-up (the receive path allocates nothing).
// Run: node --expose-gc dist/bench/live_page.bench.js [--json] [--smoke]

import { pathToFileURL } from "node:url";
import { Bench } from "tinybench";
import { Histogram, exponentialBounds } from "../src/io/metrics.js";
import { assert } from "../src/stdx/assert.js";
import { ClusterView, type StatusFields, historyPointsMax } from "../src/web/cluster_view.js";
import { LatencyWindow, StatusReport } from "../src/web/status_report.js";
import { countGcs } from "../test/gc.js";
import { pad } from "./common.js";

interface Options {
    json: boolean;
    smoke: boolean;
}

interface Row {
    task: string;
    latencyUsMean: number;
    latencyUsP99: number;
}

function fields(commit: number): StatusFields {
    return {
        view: 4,
        logView: 4,
        status: 0,
        primary: 0,
        op: commit + 3,
        commitMin: commit,
        commitMax: commit + 1,
        checkpointOp: commit - (commit % 1024),
        requestLatencyUsP50: 812,
        requestLatencyUsP99: 2950,
        requestsReplied: 4000,
    };
}

export async function main(options: Options): Promise<void> {
    const view = new ClusterView(3, 0);
    const peer = new StatusReport(1, 1);
    peer.write(fields(100_000));
    const own = new StatusReport(1, 0);
    const ownFields = fields(100_001);
    const histogram = new Histogram("bench_seconds", "bench", exponentialBounds(0.0001, 2, 16));
    const window = new LatencyWindow(histogram.bounds, histogram.counts);
    for (let second = 0; second < historyPointsMax; second++) {
        view.setSelf(fields(second * 1000), second * 1000);
        view.onPeerStatus(1, peer.view, 0, second * 1000);
        view.sample(second * 1000);
    }
    const nowMs = historyPointsMax * 1000;
    let jsonBytes = 0;
    const tasks: [string, () => void][] = [
        ["peer_status receive", () => view.onPeerStatus(1, peer.view, 0, nowMs)],
        ["report build", () => own.write(ownFields)],
        [
            "latency roll",
            () => {
                histogram.observe(0.0009);
                window.roll();
            },
        ],
        ["cluster.json", () => (jsonBytes = view.json(nowMs, 1).length)],
    ];
    const bench = new Bench({
        time: options.smoke ? 50 : 1000,
        warmupTime: options.smoke ? 10 : 200,
    });
    for (const [name, run] of tasks) bench.add(name, run);
    await bench.run();
    const rows: Row[] = bench.tasks.map((task) => {
        const result = task.result;
        assert(result.state === "completed");
        return {
            task: task.name,
            latencyUsMean: result.latency.mean * 1000,
            latencyUsP99: result.latency.p99 * 1000,
        };
    });
    assert(jsonBytes > 0);
    const receives = options.smoke ? 10_000 : 1_000_000;
    const gc = (globalThis as { gc?: () => void }).gc;
    if (gc !== undefined) gc();
    const gcs = await countGcs(() => {
        for (let index = 0; index < receives; index++) view.onPeerStatus(2, peer.view, 0, nowMs);
    });
    const mean = (name: string): number => rows.find((row) => row.task === name)!.latencyUsMean;
    const perSecondUs =
        2 * mean("peer_status receive") +
        mean("report build") +
        mean("latency roll") +
        mean("cluster.json");
    if (options.json) {
        console.log(
            JSON.stringify({
                bench: "live_page",
                rows,
                jsonBytes,
                perSecondUs,
                receives,
                youngGcs: gcs.minor,
            }),
        );
        return;
    }
    console.log(
        `live page: 3 replicas, ${historyPointsMax}-point history, cluster.json ${jsonBytes} bytes`,
    );
    console.log(`  ${pad("task", 22)}${"mean µs".padStart(10)}${"p99 µs".padStart(10)}`);
    for (const row of rows) {
        console.log(
            `  ${pad(row.task, 22)}${row.latencyUsMean.toFixed(2).padStart(10)}` +
                `${row.latencyUsP99.toFixed(2).padStart(10)}`,
        );
    }
    console.log(
        `  per second (2 receives, 1 build, 1 roll, 1 cluster.json): ${perSecondUs.toFixed(0)} µs ` +
            `= ${(perSecondUs / 1e4).toFixed(3)}% of one core`,
    );
    console.log(`  young GCs during ${receives} receives: ${gcs.minor}`);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
    await main({ json: process.argv.includes("--json"), smoke: process.argv.includes("--smoke") });
}
