// The `vsr` command line as a new user meets it, in child processes: --help/-h on `vsr` and on
// every subcommand (usage on stdout, exit 0), `vsr --version`, and usage errors as one line on
// stderr naming the flag and pointing at `vsr <command> --help` (exit 2, no usage dump, no stack
// trace), including the simulator's range checks (too many clients, too many ticks).

import assert from "node:assert/strict";
import fs from "node:fs";
import { test } from "node:test";
import { Scope, hasStackTrace } from "./harness.js";

const subcommands = ["format", "start", "client", "load", "benchmark", "sim"] as const;

const packageVersion = (
    JSON.parse(fs.readFileSync(new URL("../../../package.json", import.meta.url), "utf8")) as {
        version: string;
    }
).version;

test("vsr --help, -h and every subcommand's --help print usage on stdout and exit 0", {
    timeout: 60_000,
}, async (t) => {
    const scope = Scope.create(t);
    const runs = [["--help"], ["-h"], ...subcommands.flatMap((name) => [[name, "--help"]])];
    runs.push(["sim", "-h"], ["client", "--addresses=nohost", "-h"]);
    const procs = await Promise.all(runs.map((args) => scope.run(args)));
    procs.forEach((proc, index) => {
        const args = runs[index]!;
        assert.equal(proc.exit?.code, 0, proc.describe());
        assert.equal(proc.stderr, "", proc.describe());
        assert.match(proc.stdout, /^usage/, proc.describe());
        const name = args[0]!.startsWith("-") ? "<command>" : args[0]!;
        assert.ok(proc.stdout.includes(`vsr ${name}`), proc.describe());
    });
});

test("vsr --version prints the package version", { timeout: 30_000 }, async (t) => {
    const scope = Scope.create(t);
    const proc = await scope.run(["--version"]);
    assert.equal(proc.exit?.code, 0, proc.describe());
    assert.equal(proc.stdout, `${packageVersion}\n`);
});

test("usage errors are one line pointing at --help, exit 2", { timeout: 60_000 }, async (t) => {
    const scope = Scope.create(t);
    const cases: [string[], RegExp][] = [
        [["frobnicate"], /^vsr: unknown command 'frobnicate' \(see vsr --help\)$/],
        [["start", "--bogus", "x.vsr"], /^vsr start: Unknown option '--bogus' \(see vsr start/],
        [["start", "--log-level=loud", "--addresses=127.0.0.1:1", "x.vsr"], /--log-level must/],
        [["sim", "--seed=1", "--clients=300"], /^vsr sim: --clients must be between 1 and 249/],
        [["sim", "--seed=1", "--replicas=3", "--clients=253"], /between 1 and 252, got '253'/],
        [["sim", "--seed=1", "--ticks=1000000000"], /^vsr sim: --ticks must be between 0 and/],
        [["sim", "--seed=1", "--replicas=7"], /^vsr sim: --replicas must be between 1 and 6/],
        [["sim", "--seed=x"], /^vsr sim: --seed must be an unsigned integer/],
        [["sim"], /^vsr sim: --seed is required \(see vsr sim --help\)$/],
        [["format", "--cluster=1", "--replica=3", "--replica-count=3", "f"], /--replica must/],
        [
            ["format", "--cluster=1", "--replica=0", "--replica-count=1", "--kv-entries=1000", "f"],
            /^vsr format: --kv-entries must be a power of two, not 1000/,
        ],
        [
            ["format", "--cluster=1", "--replica=0", "--replica-count=1", "--kv-entries=8", "f"],
            /^vsr format: --kv-entries must be between 16 and 8388608/,
        ],
        [["client", "--addresses=127.0.0.1:1", "get", "k"], /^vsr client: --cluster=<u32> is/],
        [["load", "--cluster=1", "--addresses=127.0.0.1:1", "--clients=0"], /--clients must/],
        [["benchmark", "--replicas=9"], /^vsr benchmark: --replicas must be between 1 and 6/],
    ];
    const procs = await Promise.all(cases.map(([args]) => scope.run(args)));
    procs.forEach((proc, index) => {
        const [, pattern] = cases[index]!;
        assert.equal(proc.exit?.code, 2, proc.describe());
        assert.equal(proc.stdout, "", proc.describe());
        assert.equal(hasStackTrace(proc.stderr), false, proc.describe());
        const lines = proc.stderr.trimEnd().split("\n");
        assert.equal(lines.length, 1, proc.describe());
        assert.match(lines[0]!, pattern, proc.describe());
        assert.match(lines[0]!, /\(see vsr( [a-z]+)? --help\)$/, proc.describe());
    });
});
