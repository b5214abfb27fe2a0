// What an operator sees of a live 3-replica cluster: /metrics parsed by a real Prometheus text
// parser (parse-prometheus-text-format, not a regex) with HELP and TYPE for every family and
// latency histograms that fill up (requests at the primary, journal writes, view changes);
// /status with role, log_view, commit lag and the last view change; and logs that are one JSON
// object per line, filtered by --log-level. The primary is killed to force a view change.

import assert from "node:assert/strict";
import { test } from "node:test";
import parsePrometheusTextFormat, { type PrometheusFamily } from "parse-prometheus-text-format";
import { LocalCluster, Scope, httpGet, waitFor } from "./harness.js";

interface StatusJson {
    readonly replica: number;
    readonly status: string;
    readonly role: string;
    readonly view: number;
    readonly log_view: number;
    readonly commit: number;
    readonly commit_max: number;
    readonly commit_lag: number;
    readonly last_view_change: string | null;
    readonly primary: boolean;
}

async function getText(port: number, path: string): Promise<string> {
    const answer = await httpGet(port, path);
    assert.ok(answer !== null && answer.status === 200, `GET ${path} on ${port}`);
    return answer.body;
}

async function metrics(port: number): Promise<Map<string, PrometheusFamily>> {
    const text = await getText(port, "/metrics");
    const families = parsePrometheusTextFormat(text);
    const byName = new Map(families.map((family) => [family.name, family]));
    // Every family the text declares is parsed, with its HELP and a TYPE.
    const declared = text.split("\n").filter((line) => line.startsWith("# TYPE "));
    assert.equal(byName.size, declared.length);
    for (const family of families) {
        assert.notEqual(family.help, "", `${family.name} has # HELP`);
        assert.notEqual(family.type, "UNTYPED", `${family.name} has # TYPE`);
        assert.ok(family.metrics.length > 0, `${family.name} has samples`);
    }
    return byName;
}

/** A histogram's count, after checking its buckets are cumulative and end at +Inf = count. */
function histogramCount(
    families: Map<string, PrometheusFamily>,
    name: string,
    bucketsMin = 10,
): number {
    const family = families.get(name);
    assert.ok(family !== undefined, `${name} is exposed`);
    assert.equal(family.type, "HISTOGRAM");
    const [sample] = family.metrics;
    const buckets = Object.entries(sample!.buckets ?? {});
    assert.ok(buckets.length >= bucketsMin, `${name} has buckets`);
    let previous = 0;
    for (const [, count] of buckets) {
        assert.ok(Number(count) >= previous, `${name} buckets are cumulative`);
        previous = Number(count);
    }
    assert.equal(buckets.at(-1)![0], "+Inf");
    assert.equal(Number(sample!.count), previous);
    assert.ok(Number(sample!.sum) >= 0);
    return previous;
}

function sampleValue(
    families: Map<string, PrometheusFamily>,
    name: string,
    labels: Record<string, string>,
): number {
    const family = families.get(name);
    assert.ok(family !== undefined, `${name} is exposed`);
    const sample = family.metrics.find((candidate) =>
        Object.entries(labels).every(([key, value]) => candidate.labels?.[key] === value),
    );
    assert.ok(sample !== undefined, `${name} ${JSON.stringify(labels)}`);
    return Number(sample.value);
}

/** Every line is one JSON object with time, level, event and msg. */
function logEvents(stderr: string): { level: string; event: string }[] {
    const lines = stderr.split("\n").filter((line) => line !== "");
    return lines.map((line) => {
        const event = JSON.parse(line) as Record<string, unknown>;
        assert.ok(!Number.isNaN(Date.parse(String(event["time"]))), line);
        for (const key of ["level", "event", "msg"])
            assert.equal(typeof event[key], "string", line);
        return { level: event["level"] as string, event: event["event"] as string };
    });
}

test("metrics, status and logs tell an operator what a cluster is doing", {
    timeout: 120_000,
}, async (t) => {
    const scope = Scope.create(t);
    const cluster = await LocalCluster.format(scope, 3);
    cluster.startAll();
    const ready = await cluster.waitReady(30_000);
    const first = ready.find((status) => status.primary)!;
    assert.equal(await cluster.client("put", "motto", "three", "words", "here"), "ok");
    assert.equal(await cluster.client("get", "motto"), "three words here");

    const port = (replica: number): number => cluster.ports[replica]!;
    const primaryMetrics = await metrics(port(first.replica));
    assert.ok(histogramCount(primaryMetrics, "vsr_request_duration_seconds") >= 2);
    assert.ok(histogramCount(primaryMetrics, "vsr_journal_write_duration_seconds") > 0);
    histogramCount(primaryMetrics, "vsr_superblock_write_duration_seconds");
    histogramCount(primaryMetrics, "vsr_checkpoint_duration_seconds");
    // Requests per prepare (1, 2, 4 … 64, +Inf): the register and the two calls, one at a time,
    // so each prepare held exactly one request; a backup starts none.
    const prepares = histogramCount(primaryMetrics, "vsr_prepare_requests", 8);
    assert.ok(prepares >= 3, `${prepares} prepares`);
    const requestsFamily = primaryMetrics.get("vsr_prepare_requests")!.metrics[0]!;
    assert.equal(Number(requestsFamily.buckets!["1"]), prepares);
    assert.equal(Number(requestsFamily.sum), prepares);
    const written = { zone: "wal_prepares" };
    assert.ok(sampleValue(primaryMetrics, "vsr_storage_written_bytes_total", written) > 0);
    const status = JSON.parse(await getText(port(first.replica), "/status")) as StatusJson;
    assert.equal(status.role, "primary");
    assert.equal(status.log_view, status.view);
    assert.equal(status.commit_lag, status.commit_max - status.commit);
    const backup = (first.replica + 1) % 3;
    const backupStatus = JSON.parse(await getText(port(backup), "/status")) as StatusJson;
    assert.equal(backupStatus.role, "backup");
    assert.ok(backupStatus.commit_lag >= 0);
    // A backup answers no client: its request histogram stays empty.
    const backupMetrics = await metrics(port(backup));
    assert.equal(histogramCount(backupMetrics, "vsr_request_duration_seconds"), 0);
    assert.equal(histogramCount(backupMetrics, "vsr_prepare_requests", 8), 0);

    // Kill the primary: a survivor takes over after a view change, timed and logged.
    cluster.node(first.replica).kill("SIGKILL");
    await cluster.node(first.replica).waitExit(10_000);
    const next = await waitFor("a new primary", 30_000, async () => {
        const primary = await cluster.primary();
        return primary !== null && primary.view > first.view ? primary : null;
    });
    const after = await metrics(port(next.replica));
    assert.ok(histogramCount(after, "vsr_view_change_duration_seconds") >= 1);
    // The new view is durable before the replica acts in it: a superblock write, timed.
    assert.ok(histogramCount(after, "vsr_superblock_write_duration_seconds") > 0);
    const nextStatus = JSON.parse(await getText(port(next.replica), "/status")) as StatusJson;
    assert.equal(nextStatus.role, "primary");
    assert.ok(nextStatus.last_view_change !== null);
    assert.ok(Date.parse(nextStatus.last_view_change) <= Date.now());
    const events = logEvents(cluster.node(next.replica).stderr);
    for (const name of ["recovered", "listening", "view_change_started", "view_change"]) {
        assert.ok(
            events.some((event) => event.event === name),
            `${name} logged: ${JSON.stringify(events)}`,
        );
    }
    assert.ok(
        events.some((event) => event.event === "peer_down"),
        "the dead peer is logged",
    );

    // The killed replica restarts at --log-level=warn: no info lines, and it still serves.
    const restarted = scope.spawn([
        "start",
        "--log-level=warn",
        `--addresses=${cluster.addresses}`,
        cluster.files[first.replica]!,
    ]);
    await waitFor("the restarted replica to answer", 30_000, () => cluster.status(first.replica));
    assert.ok(restarted.alive, restarted.describe());
    for (const event of logEvents(restarted.stderr)) {
        assert.ok(event.level === "warn" || event.level === "error", JSON.stringify(event));
    }
});
