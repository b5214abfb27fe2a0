// Tests for `vsr chaos` flag parsing: the defaults, seeds up to 2^53 (a soak draws
// 45-bit seeds), and one-line usage errors for bad values.

import { test } from "node:test";
import assert from "node:assert/strict";
import { parseOptions } from "../../src/chaos/command.js";
import { Nemesis, healthyWaitMs } from "../../src/chaos/nemesis.js";
import { ChaosCluster } from "../../src/chaos/cluster.js";
import { UsageError } from "../../src/cli_args.js";
import { PRNG } from "../../src/stdx/prng.js";

test("vsr chaos defaults: 3 replicas, 8 clients, 4 keys, 60 s, a random seed", () => {
    const options = parseOptions([]);
    assert.equal(options.replicas, 3);
    assert.equal(options.clients, 8);
    assert.equal(options.keys, 4);
    assert.equal(options.durationS, 60);
    assert.equal(options.json, false);
    assert.equal(options.history, null);
    assert.ok(Number.isSafeInteger(options.seed) && options.seed >= 0);
});

test("vsr chaos takes seeds up to 2^53 and derives its streams from them", async () => {
    const seed = 21877777416803;
    const options = parseOptions([`--seed=${seed}`, "--replicas=5", "--json", "--html=x.html"]);
    assert.equal(options.seed, seed);
    assert.equal(options.replicas, 5);
    assert.equal(options.html, "x.html");
    const seeds = new PRNG(options.seed);
    const cluster = new ChaosCluster(5);
    try {
        const nemesis = new Nemesis(cluster, seeds.u53(), () => 0, healthyWaitMs(60));
        assert.equal(nemesis.faultsMax, 2);
        assert.equal(healthyWaitMs(60), 5000);
        assert.equal(healthyWaitMs(1800), 10_000);
    } finally {
        await cluster.cleanup();
    }
});

test("vsr chaos rejects bad flags with a usage error", () => {
    assert.throws(() => parseOptions(["--replicas=2"]), UsageError);
    assert.throws(() => parseOptions(["--duration-s=0"]), UsageError);
    assert.throws(() => parseOptions(["--clients=many"]), UsageError);
    assert.throws(() => parseOptions(["extra"]), UsageError);
    assert.throws(() => parseOptions(["--nemesis=all"]), /Unknown option/);
});
