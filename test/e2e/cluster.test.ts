// End-to-end tests of real replicas: `vsr format` and `vsr start` as child processes on loopback
// ports, over O_DIRECT data files in a temporary directory, driven by `vsr load` and `vsr client`.
// - A 3-replica cluster under load loses its primary to kill -9; a backup takes over in a higher
//   view, the killed replica restarts from its data file, every acknowledged write reads back
//   (load --verify: lost = 0) and all three replicas converge on one commit number; the load's
//   --slow-ops report names the client's retry behind the slowest call.
// - A single replica's data survives a clean stop (SIGTERM) and restart.
// - `vsr format` never touches an existing file; `vsr start` refuses bad input with a one-line
//   error; a node refuses to run on uWebSockets.js's pure-JS fallback.
// Two tests pin defects found while writing them, since fixed: the fallback refusal is a
// one-line error, and a second node refuses a data file (lock) or a port (exclusive listen)
// that is already in use.
// See harness.ts for process ownership and cleanup.

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import fs from "node:fs";
import { test } from "node:test";
import type { SlowOpsReport } from "../../src/client/slow_ops.js";
import {
    hasStackTrace,
    type LoadJson,
    LocalCluster,
    Scope,
    sleep,
    type Status,
    waitFor,
} from "./harness.js";

/** Bounds, generous for a loaded 2-core machine. */
const readyTimeoutMs = 30_000;
const failoverTimeoutMs = 20_000;
const convergeTimeoutMs = 30_000;
const loadSeconds = 8;

test("a 3-replica cluster keeps every acknowledged write through a primary kill -9", {
    timeout: 120_000,
}, async (t) => {
    const scope = Scope.create(t);
    const cluster = await LocalCluster.format(scope, 3);
    cluster.startAll();
    const ready = await cluster.waitReady(readyTimeoutMs);
    for (const status of ready) assert.equal(status.direct_io, true, "O_DIRECT on /tmp");
    const load = scope.spawn([
        "load",
        ...cluster.clientArgs(),
        "--clients=8",
        `--duration-s=${loadSeconds}`,
        "--verify",
        "--json",
        "--slow-ops=5",
    ]);

    // Let the load run for ~2 s and make progress, then kill the primary without warning.
    await sleep(2000);
    const before = await waitFor("the primary to commit under load", 15_000, async () => {
        const primary = await cluster.primary();
        return primary !== null && primary.commit > 0 ? primary : null;
    });
    const victim = before.replica;
    cluster.node(victim).kill("SIGKILL");
    const victimExit = await cluster.node(victim).waitExit(10_000);
    assert.equal(victimExit.signal, "SIGKILL");

    const survivors = [0, 1, 2].filter((replica) => replica !== victim);
    const after = await waitFor(
        `a new primary in a view above ${before.view}`,
        failoverTimeoutMs,
        async () => {
            cluster.checkAlive(survivors);
            const primary = await cluster.primary();
            return primary !== null && primary.view > before.view ? primary : null;
        },
        100,
    );
    assert.notEqual(after.replica, victim);

    // The killed replica restarts from its data file with the same command.
    cluster.start(victim);

    const loadExit = await load.waitExit((loadSeconds + 90) * 1000);
    assert.equal(loadExit.code, 0, load.describe());
    const report = JSON.parse(load.stdout.trim().split("\n").pop()!) as LoadJson & {
        slow_ops: SlowOpsReport;
    };
    t.diagnostic(`load: ${JSON.stringify({ ...report, slow_ops: undefined })}`);
    t.diagnostic(
        `failover: replica ${victim} (view ${before.view}) → ` +
            `replica ${after.replica} (view ${after.view})`,
    );
    assert.ok(report.ops > 0, "the load made progress");
    assert.equal(report.lost, 0, "every acknowledged write reads back");
    assert.equal(report.verified, report.acked);
    assert.ok(report.errors <= Math.max(10, report.ops / 100), `errors: ${report.errors}`);
    // --slow-ops: the 5 slowest calls, slowest first; every call in flight when the primary died
    // got no reply until its client resent it, so the slowest call is explained by a retry.
    const slow = report.slow_ops;
    t.diagnostic(`slowest call: ${JSON.stringify({ ...slow.calls[0], events: undefined })}`);
    assert.equal(slow.calls.length, 5);
    for (let index = 1; index < 5; index++) {
        assert.ok(slow.calls[index - 1]!.latencyMs >= slow.calls[index]!.latencyMs);
    }
    assert.ok(slow.calls[0]!.retries >= 1, "the slowest call was resent");
    assert.match(slow.calls[0]!.cause, /^client retry x\d+/);

    // All three replicas (the restarted one included) converge on one commit number.
    const converged = await waitFor(
        "all three replicas to converge on one commit number",
        convergeTimeoutMs,
        async () => {
            cluster.checkAlive([0, 1, 2]);
            const statuses = await cluster.statuses();
            if (statuses.some((status) => status === null || status.status !== "normal")) {
                return null;
            }
            const all = statuses as Status[];
            const commit = all[0]!.commit;
            return all.every((status) => status.commit === commit && status.view === all[0]!.view)
                ? all
                : null;
        },
        250,
    ).catch(async (error: Error) => {
        const last = await cluster.statuses();
        const restarted = cluster.node(victim);
        throw new Error(
            `${error.message}\nlast statuses: ${JSON.stringify(last)}\n` +
                `restarted replica:\n${restarted.describe()}`,
        );
    });
    assert.ok(converged[0]!.commit >= after.commit, "commit numbers never go back");
    t.diagnostic(`converged: commit ${converged[0]!.commit} in view ${converged[0]!.view}`);
});

test("data survives a clean stop and restart of a single replica", {
    timeout: 60_000,
}, async (t) => {
    const scope = Scope.create(t);
    const cluster = await LocalCluster.format(scope, 1);
    cluster.start(0);
    await cluster.waitReady(readyTimeoutMs);
    const client = (...words: string[]): Promise<string> => cluster.client(...words);
    assert.equal(await client("put", "greeting", "hello, disk"), "ok");
    assert.equal(await client("put", "doomed", "x"), "ok");
    assert.equal(await client("delete", "doomed"), "deleted");
    assert.equal(await client("get", "greeting"), "hello, disk");

    const stopped = await cluster.status(0);
    assert.ok(stopped !== null && stopped.commit > 0);
    const first = cluster.node(0);
    first.kill("SIGTERM");
    const exit = await first.waitExit(15_000);
    assert.equal(exit.code, 0, first.describe());
    assert.match(first.stderr, /vsr: stopped/);

    cluster.start(0);
    const [status] = await cluster.waitReady(readyTimeoutMs);
    assert.ok(status!.commit >= stopped.commit, `commit ${status!.commit} after restart`);
    assert.equal(await client("get", "greeting"), "hello, disk");
    assert.equal(await client("get", "doomed"), "(not found)");
});

async function sha256(path: string): Promise<string> {
    const hash = createHash("sha256");
    for await (const chunk of fs.createReadStream(path)) hash.update(chunk as Buffer);
    return hash.digest("hex");
}

/** Asserts a failed command: non-zero exit, one `vsr…` line on stderr, no stack trace. */
function assertOneLineError(
    proc: { exit: { code: number | null } | null; stderr: string; describe(): string },
    pattern: RegExp,
): void {
    assert.notEqual(proc.exit?.code, 0, proc.describe());
    assert.notEqual(proc.exit?.code, null, proc.describe());
    assert.equal(hasStackTrace(proc.stderr), false, proc.describe());
    const lines = proc.stderr.trim().split("\n");
    assert.equal(lines.length, 1, proc.describe());
    assert.match(lines[0]!, /^vsr/);
    assert.match(lines[0]!, pattern);
}

test("vsr format refuses an existing file and leaves it byte-identical", {
    timeout: 60_000,
}, async (t) => {
    const scope = Scope.create(t);
    const cluster = await LocalCluster.format(scope, 1);
    const path = cluster.files[0]!;
    const before = await sha256(path);
    const sizeBefore = fs.statSync(path).size;
    for (const flags of [
        [`--cluster=${cluster.cluster}`, "--replica=0", "--replica-count=1"],
        ["--cluster=1", "--replica=2", "--replica-count=3"],
    ]) {
        const proc = await scope.run(["format", ...flags, path]);
        assertOneLineError(proc, /exists/);
    }
    // Not a data file either: still refused, still untouched.
    const other = scope.file("notes.txt");
    fs.writeFileSync(other, "precious\n");
    assertOneLineError(
        await scope.run(["format", "--cluster=1", "--replica=0", "--replica-count=1", other]),
        /exists/,
    );
    assert.equal(fs.readFileSync(other, "utf8"), "precious\n");
    assert.equal(fs.statSync(path).size, sizeBefore);
    assert.equal(await sha256(path), before);
});

test("vsr start refuses bad input with a one-line error", { timeout: 60_000 }, async (t) => {
    const scope = Scope.create(t);
    const cluster = await LocalCluster.format(scope, 1);
    const port = cluster.ports[0]!;
    const start = (addresses: string, path: string): Promise<import("./harness.js").Proc> =>
        scope.run(["start", `--addresses=${addresses}`, path], { timeoutMs: 20_000 });

    // A data file of a 1-replica cluster started with three addresses.
    assertOneLineError(
        await start(
            `127.0.0.1:${port},127.0.0.1:${port + 1},127.0.0.1:${port + 2}`,
            cluster.files[0]!,
        ),
        /replica 0 of 1.*3 addresses/,
    );
    // No such file.
    assertOneLineError(await start(`127.0.0.1:${port}`, scope.file("missing.vsr")), /missing\.vsr/);
    // A file that is not a data file.
    const junk = scope.file("junk.vsr");
    fs.writeFileSync(junk, Buffer.alloc(1024 * 1024, 0x5a));
    assertOneLineError(await start(`127.0.0.1:${port}`, junk), /junk\.vsr/);
    // Bad flags: usage errors exit 2 and name the flag.
    const badAddress = await start("localhost", cluster.files[0]!);
    assert.equal(badAddress.exit?.code, 2, badAddress.describe());
    assert.match(badAddress.stderr.split("\n")[0]!, /address/);
    assert.equal(hasStackTrace(badAddress.stderr), false, badAddress.describe());
});

test("vsr start refuses to run without uWebSockets.js's native binding", {
    timeout: 60_000,
}, async (t) => {
    const scope = Scope.create(t);
    const cluster = await LocalCluster.format(scope, 1);
    const proc = cluster.start(0, { UWS_USE_FALLBACK: "1" });
    const exit = await proc.waitExit(20_000);
    assert.notEqual(exit.code, 0, proc.describe());
    assert.equal(exit.signal, null, proc.describe());
    assert.match(proc.stderr, /native binding/, proc.describe());
    assert.equal(await cluster.status(0), null, "nothing listens");
});

test("the native-binding refusal is a one-line error, not a stack trace", {
    timeout: 60_000,
}, async (t) => {
    const scope = Scope.create(t);
    const cluster = await LocalCluster.format(scope, 1);
    const proc = cluster.start(0, { UWS_USE_FALLBACK: "1" });
    await proc.waitExit(20_000);
    // The package itself prints a warning line about the fallback before we refuse.
    const ours = proc.stderr
        .split("\n")
        .filter((line) => line !== "" && !line.startsWith("Using µWS fallback"))
        .join("\n");
    assertOneLineError(
        { exit: proc.exit, stderr: ours, describe: () => proc.describe() },
        /native binding/,
    );
});

test("a second vsr start refuses a data file or a port that is already in use", {
    timeout: 60_000,
}, async (t) => {
    const scope = Scope.create(t);
    const cluster = await LocalCluster.format(scope, 1);
    cluster.start(0);
    await cluster.waitReady(readyTimeoutMs);
    const other = await LocalCluster.format(scope, 1, "other");
    const address = `--addresses=127.0.0.1:${cluster.ports[0]}`;
    // The same data file on another port, and another data file on the same port.
    const sameFile = scope.spawn([
        "start",
        `--addresses=127.0.0.1:${other.ports[0]}`,
        cluster.files[0]!,
    ]);
    const samePort = scope.spawn(["start", address, other.files[0]!]);
    // Bounded generously: the second node recovers its own file before it tries to listen, and
    // recovery reads the whole WAL (seconds on a loaded 2-core machine).
    const exitTimeoutMs = 30_000;
    const exits = await Promise.allSettled([
        sameFile.waitExit(exitTimeoutMs),
        samePort.waitExit(exitTimeoutMs),
    ]);
    assert.ok(cluster.node(0).alive, "the first node runs on");
    for (const [index, proc] of [sameFile, samePort].entries()) {
        const exit = exits[index]!;
        assert.equal(exit.status, "fulfilled", `still running:\n${proc.describe()}`);
        assertOneLineError(proc, /in use|lock|listen/);
    }
});
