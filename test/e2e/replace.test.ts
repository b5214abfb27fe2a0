// Replacing a failed replica, exactly as docs/operations.md tells an operator: a backup's data
// file is lost; its process is gone; a new file is formatted with the same cluster id, replica
// index and replica count, and started with the same --addresses. The new replica catches up
// from its peers (repair) until its commit reaches the primary's, and then the cluster survives
// losing another replica (the old primary): every write acknowledged before, during and after
// the replacement reads back.

import assert from "node:assert/strict";
import fs from "node:fs";
import { test } from "node:test";
import { Client } from "../../src/client/client.js";
import { LocalCluster, Scope, waitFor } from "./harness.js";

test("a replica whose data file was lost is replaced by a freshly formatted one", {
    timeout: 120_000,
}, async (t) => {
    const scope = Scope.create(t);
    const cluster = await LocalCluster.format(scope, 3);
    cluster.startAll();
    const ready = await cluster.waitReady(30_000);
    const primary = ready.find((status) => status.primary)!.replica;
    const failed = (primary + 1) % 3;
    for (let index = 0; index < 5; index++) {
        assert.equal(await cluster.client("put", `before-${index}`, `value ${index}`), "ok");
    }

    // The disk of a backup dies: its process and its data file are gone.
    cluster.node(failed).kill("SIGKILL");
    await cluster.node(failed).waitExit(10_000);
    fs.rmSync(cluster.files[failed]!);
    fs.rmSync(`${cluster.files[failed]!}.lock`, { force: true });
    assert.equal(await cluster.client("put", "during", "the outage"), "ok");

    // Replace it: format with the same identity, start with the same command.
    const format = await scope.run([
        "format",
        `--cluster=${cluster.cluster}`,
        `--replica=${failed}`,
        "--replica-count=3",
        cluster.files[failed]!,
    ]);
    assert.equal(format.exit?.code, 0, format.describe());
    cluster.start(failed);
    const replacedMs = performance.now();
    const caughtUp = await waitFor("the new replica to catch up", 60_000, async () => {
        cluster.checkAlive([0, 1, 2]);
        const statuses = await cluster.statuses();
        const leader = statuses.find((status) => status?.primary === true);
        const fresh = statuses[failed];
        if (leader === undefined || leader === null || fresh === null || fresh === undefined) {
            return null;
        }
        return fresh.status === "normal" && fresh.commit >= leader.commit ? fresh : null;
    });
    t.diagnostic(
        `replaced replica ${failed} caught up to commit ${caughtUp.commit} ` +
            `in ${Math.round(performance.now() - replacedMs)} ms`,
    );

    // Now the old primary fails: the two others (one of them new) carry on with every write.
    const startedMs = performance.now();
    cluster.node(primary).kill("SIGKILL");
    await cluster.node(primary).waitExit(10_000);
    const addresses = cluster.addresses.split(",");
    const client = new Client({ addresses, cluster: cluster.cluster, callTimeoutMs: 60_000 });
    const text = (value: Uint8Array | null): string | null =>
        value === null ? null : new TextDecoder().decode(value);
    try {
        for (let index = 0; index < 5; index++) {
            assert.equal(text(await client.get(`before-${index}`)), `value ${index}`);
        }
        assert.equal(text(await client.get("during")), "the outage");
        await client.put("after", "replacement");
        assert.equal(text(await client.get("after")), "replacement");
    } finally {
        client.close();
    }
    t.diagnostic(
        `served after the primary's loss in ${Math.round(performance.now() - startedMs)} ms`,
    );
});
