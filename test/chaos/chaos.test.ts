// End-to-end tests of `vsr chaos` (real replica processes on 127.0.0.1): the CI run of 60 s with
// 3 replicas must see every nemesis kind at least once, a linearizable history, nothing lost, the
// replicas converged and no crash, and leave no process or file behind; Ctrl-C in the middle of
// a run stops and removes everything it started. The seed is fixed so a failure reproduces with
// the command the test prints.

import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import { Scope, waitFor } from "../e2e/harness.js";

const seed = 20261130;

/** The run's temporary directory, from its first stderr line. */
function runDir(stderr: string): string | null {
    return /^vsr chaos: seed=\d+ replicas=\d+ in (\S+)$/m.exec(stderr)?.[1] ?? null;
}

/** Processes whose command line mentions `text` (the replicas name files in the run's dir). */
function processesMentioning(text: string): number[] {
    const pids: number[] = [];
    for (const entry of fs.readdirSync("/proc")) {
        if (!/^\d+$/.test(entry)) continue;
        try {
            if (fs.readFileSync(`/proc/${entry}/cmdline`, "utf8").includes(text)) {
                pids.push(Number(entry));
            }
        } catch {
            // The process ended while we looked.
        }
    }
    return pids;
}

test("vsr chaos: 60 s, 3 replicas, every nemesis kind, linearizable, nothing lost", async (t) => {
    const scope = Scope.create(t);
    const history = scope.file("history.jsonl");
    const html = scope.file("history.html");
    const args = [
        "chaos",
        "--duration-s=60",
        "--replicas=3",
        `--seed=${seed}`,
        "--json",
        `--history=${history}`,
        `--html=${html}`,
    ];
    const proc = await scope.run(args, { timeoutMs: 300_000 });
    const context = `reproduce: vsr ${args.join(" ")}\n${proc.describe()}`;
    const lines = proc.stdout.trim().split("\n");
    const report = JSON.parse(lines[lines.length - 1] as string);
    t.diagnostic(JSON.stringify(report));
    assert.equal(report.linearizable, true, context);
    assert.equal(report.lost, 0, context);
    assert.equal(report.converged, true, context);
    assert.equal(report.crashes, 0, context);
    assert.equal(proc.exit?.code, 0, context);
    assert.equal(report.seed, seed);
    assert.equal(report.replicas, 3);
    for (const kind of ["kills", "pauses", "partitions", "corruptions"]) {
        assert.ok(report.faults[kind] >= 1, `no ${kind}: ${context}`);
    }
    assert.ok(report.ok > 100, context);
    assert.equal(report.ops, report.ok + report.failed + report.unknown);
    assert.ok(report.availability > 0 && report.availability <= 1);
    const records = fs.readFileSync(history, "utf8").trim().split("\n");
    assert.equal(records.filter((line) => line.includes('"client_id"')).length, report.ops);
    assert.ok(records.some((line) => line.includes('"nemesis":"corruption"')));
    assert.match(fs.readFileSync(html, "utf8"), /<svg/);
    const dir = runDir(proc.stderr);
    assert.ok(dir !== null, context);
    assert.equal(fs.existsSync(dir), false, `${dir} was left behind`);
    assert.deepEqual(processesMentioning(dir), []);
});

test("vsr chaos: Ctrl-C stops every replica and removes the data files", async (t) => {
    const scope = Scope.create(t);
    const proc = scope.spawn(["chaos", "--duration-s=60", "--replicas=3", `--seed=${seed}`]);
    const dir = await waitFor("the run's directory", 60_000, () => runDir(proc.stderr));
    await waitFor("three replicas running", 60_000, () => {
        if (!proc.alive) throw new Error(proc.describe());
        return processesMentioning(`${dir}/replica_`).length === 3;
    });
    proc.kill("SIGINT");
    const exit = await proc.waitExit(30_000);
    assert.equal(exit.code, 130, proc.describe());
    assert.equal(fs.existsSync(dir), false, `${dir} was left behind`);
    assert.deepEqual(processesMentioning(dir), []);
});
