// Simulator speed and allocation: simulated ticks per wall second for a 3-replica, 8-client
// cluster under a steady workload (the DESIGN.md §11 figure), and young-generation GCs and heap
// growth per 100k committed ops in steady state. Two rows: with faults drawn from the seed
// (a typical VOPR run), and calm (no network or storage faults, no crashes: the replica's
// steady hot path).
// Invariant checks stay off here (they are for tests); the checkers stay on. GCs are counted by
// countGcs (test/gc.ts): the collections that start during the measured ticks, once every GC
// entry has arrived.
// Run: node --expose-gc dist/bench/sim.bench.js [--json] [--smoke]

import { pathToFileURL } from "node:url";
import { Cluster, noCrashes } from "../src/sim/cluster.js";
import { noStorageFaults } from "../src/sim/storage.js";
import { defaultSimOptions, swarmClusterOptions } from "../src/sim/vopr.js";
import { countGcs } from "../test/gc.js";

interface Options {
    json: boolean;
    smoke: boolean;
}

interface Row {
    name: string;
    ticks: number;
    seconds: number;
    ticksPerSecond: number;
    realTimeMultiple: number;
    opsCommitted: number;
    requestsCompleted: number;
    youngGcs: number;
    youngGcsPer100kOps: number;
    heapGrowthBytes: number;
}

export async function main(options: Options): Promise<void> {
    const ticks = options.smoke ? 5_000 : 200_000;
    const rows = [await measure("3 replicas, 8 clients, calm", 7, ticks, true)];
    rows.push(await measure("3 replicas, 8 clients, seed faults", 7, ticks, false));
    if (options.json) {
        process.stdout.write(JSON.stringify({ bench: "sim", rows }) + "\n");
        return;
    }
    process.stdout.write(
        "case                                  ticks/s   x real  ops/s(sim)" +
            "  young GCs/100k ops  heap Δ\n",
    );
    for (const row of rows) {
        const opsPerSecond = Math.round(row.opsCommitted / row.seconds);
        process.stdout.write(
            `${row.name.padEnd(36)} ${String(Math.round(row.ticksPerSecond)).padStart(8)} ` +
                `${String(Math.round(row.realTimeMultiple)).padStart(7)} ` +
                `${String(opsPerSecond).padStart(11)} ` +
                `${row.youngGcsPer100kOps.toFixed(1).padStart(19)} ` +
                `${(row.heapGrowthBytes / 1024).toFixed(0).padStart(6)} KiB\n`,
        );
    }
}

async function measure(name: string, seed: number, ticks: number, calm: boolean): Promise<Row> {
    const base = defaultSimOptions(seed);
    const clusterOptions = swarmClusterOptions({
        ...base,
        ticks,
        replicaCount: 3,
        clientCount: 8,
        checkInvariants: false,
    });
    const network = calm
        ? {
              ...clusterOptions.network,
              packetLossProbability: 0,
              packetReplayProbability: 0,
              partitionMode: "none" as const,
              pathClogProbability: 0,
              swizzleClogProbability: 0,
          }
        : clusterOptions.network;
    const workload = { ...clusterOptions.workload, thinkTicksMean: 0 };
    // Calm also means no storage faults and no crashes (a restart rebuilds a replica).
    const storageFaults = calm ? noStorageFaults : clusterOptions.storageFaults;
    const crashes = calm ? noCrashes : clusterOptions.crashes;
    const cluster = new Cluster({ ...clusterOptions, network, workload, storageFaults, crashes });
    const warmupTicks = Math.floor(ticks / 10);
    for (let tick = 0; tick < warmupTicks; tick++) cluster.tick();
    const gc = (globalThis as { gc?: () => void }).gc;
    if (gc !== undefined) gc();
    const opsBefore = cluster.checkers.opCommitted;
    const requestsBefore = cluster.requestsCompleted;
    const gcs = await countGcs(() => {
        for (let tick = 0; tick < ticks; tick++) cluster.tick();
    });
    const seconds = gcs.runMs / 1000;
    const youngGcs = gcs.minor;
    if (cluster.checkers.violation !== null) throw new Error(cluster.checkers.violation);
    const opsCommitted = cluster.checkers.opCommitted - opsBefore;
    const tickMs = clusterOptions.config.tickMs;
    return {
        name,
        ticks,
        seconds,
        ticksPerSecond: ticks / seconds,
        realTimeMultiple: (ticks * tickMs) / 1000 / seconds,
        opsCommitted,
        requestsCompleted: cluster.requestsCompleted - requestsBefore,
        youngGcs,
        youngGcsPer100kOps: opsCommitted === 0 ? 0 : (youngGcs * 100_000) / opsCommitted,
        heapGrowthBytes: gcs.heapGrowthBytes,
    };
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
    await main({ json: process.argv.includes("--json"), smoke: process.argv.includes("--smoke") });
}
