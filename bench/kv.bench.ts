// KV state machine throughput: commit() of 8190-event batches (a 1 MiB message's worth) on a
// 2^20-entry table pre-filled with 2^19 keys of 8..32 bytes (2^15 with --smoke). Rows:
//   put overwrite  puts of existing keys with 0..64-byte values (the table's size is steady);
//   get hit        gets of existing keys (result values copied out);
//   get miss       gets of keys never stored (probe to an empty slot).
// Inputs are encoded into one arena-like buffer before timing; each sample commits one batch,
// rotating through several so the caches see the table, not one batch. Throughput is tinybench's
// median batch rate times 8190. GCs are counted outside tinybench (which allocates per sample):
// a plain loop of commits after a warm-up (and a forced GC with --expose-gc), by countGcs
// (test/gc.ts), which waits until every GC entry of the loop has arrived.
// Run: node --expose-gc dist/bench/kv.bench.js [--json] [--smoke]

import { pathToFileURL } from "node:url";
import { Bench } from "tinybench";
import { assert } from "../src/stdx/assert.js";
import { PRNG } from "../src/stdx/prng.js";
import {
    EventKind,
    KvStateMachine,
    ResultStatus,
    encodeEvent,
    eventSize,
    keySizeMax,
    resultSize,
    valueSizeMax,
} from "../src/state_machine/kv.js";
import { countGcs } from "../test/gc.js";
import { pad } from "./common.js";

interface Options {
    json: boolean;
    smoke: boolean;
}

interface Row {
    task: string;
    eventsPerSecondP50: number;
    batchLatencyMsP50: number;
    batchLatencyMsP99: number;
    youngGcs: number;
    majorGcs: number;
    gcCommits: number;
}

const entriesMax = 1 << 20;
const batchEventCount = 8190;
const seed = 42;

export async function main(options: Options): Promise<void> {
    const setupStartMs = performance.now();
    // Smoke runs (< 2 s in all) pre-fill fewer keys and rotate fewer batches.
    const keyCount = options.smoke ? 1 << 15 : 1 << 19;
    const batchCount = options.smoke ? 2 : 8;
    const tableSize = KvStateMachine.sizeBytes(entriesMax);
    const batchSize = batchEventCount * eventSize;
    const inputOffset = align(tableSize);
    const taskNames = ["put overwrite", "get hit", "get miss"] as const;
    const outputOffset = inputOffset + taskNames.length * batchCount * batchSize;
    const memory = new Uint8Array(outputOffset + batchEventCount * resultSize);
    const table = new KvStateMachine(memory, 0, entriesMax);
    prefill(table, memory, inputOffset, outputOffset, keyCount);
    assert(table.count === keyCount);

    const prng = new PRNG(seed);
    const kinds = [EventKind.put, EventKind.get, EventKind.get] as const;
    for (let task = 0; task < taskNames.length; task++) {
        for (let batch = 0; batch < batchCount; batch++) {
            const batchOffset = inputOffset + (task * batchCount + batch) * batchSize;
            for (let index = 0; index < batchEventCount; index++) {
                // Misses use key numbers beyond keyCount: never stored.
                const keyIndex = prng.int(keyCount) + (task === 2 ? keyCount : 0);
                const value = kinds[task] === EventKind.put ? valueOf(prng) : null;
                const key = keyOf(keyIndex);
                encodeEvent(memory, batchOffset + index * eventSize, kinds[task]!, key, value);
            }
        }
    }
    const setupMs = performance.now() - setupStartMs;

    const rows: Row[] = [];
    for (let task = 0; task < taskNames.length; task++) {
        let batch = 0;
        const commit = (): void => {
            const at = inputOffset + (task * batchCount + batch) * batchSize;
            table.commit(memory, at, batchEventCount, memory, outputOffset);
            batch = (batch + 1) % batchCount;
        };
        rows.push(await measure(taskNames[task]!, commit, batchCount, options.smoke));
        const expected = task === 2 ? ResultStatus.notFound : ResultStatus.ok;
        assert(memory[outputOffset] === expected);
    }
    assert(table.count === keyCount);
    report(rows, keyCount, setupMs, options.json);
}

/** Puts keys 0..keyCount through commit() itself, one batch at a time. */
function prefill(
    table: KvStateMachine,
    memory: Uint8Array,
    at: number,
    outputAt: number,
    keyCount: number,
): void {
    const prng = new PRNG(seed + 1);
    for (let first = 0; first < keyCount; first += batchEventCount) {
        const eventCount = Math.min(batchEventCount, keyCount - first);
        for (let index = 0; index < eventCount; index++) {
            const key = keyOf(first + index);
            encodeEvent(memory, at + index * eventSize, EventKind.put, key, valueOf(prng));
        }
        table.commit(memory, at, eventCount, memory, outputAt);
        for (let index = 0; index < eventCount; index++) {
            assert(memory[outputAt + index * resultSize] === ResultStatus.ok);
        }
    }
}

const keyScratch = new Uint8Array(keySizeMax);
const valueScratch = new Uint8Array(valueSizeMax);

/** Key number n: 8..32 bytes, its first four the number, the rest a xorshift of it. */
function keyOf(keyIndex: number): Uint8Array {
    const keySize = 8 + (keyIndex % (keySizeMax - 7));
    let state = (keyIndex * 0x9e3779b1) | 1;
    for (let index = 0; index < keySize; index++) {
        state ^= state << 13;
        state ^= state >>> 17;
        state ^= state << 5;
        keyScratch[index] = index < 4 ? keyIndex >>> (index * 8) : state;
    }
    return keyScratch.subarray(0, keySize);
}

function valueOf(prng: PRNG): Uint8Array {
    const valueSize = prng.int(valueSizeMax + 1);
    for (let index = 0; index < valueSize; index++) valueScratch[index] = prng.u32();
    return valueScratch.subarray(0, valueSize);
}

async function measure(
    task: string,
    commit: () => void,
    batchCount: number,
    smoke: boolean,
): Promise<Row> {
    const bench = new Bench({
        time: smoke ? 30 : 1000,
        warmupTime: smoke ? 10 : 200,
        iterations: smoke ? 4 : 64,
    });
    bench.add(task, commit);
    await bench.run();
    const result = bench.tasks[0]!.result;
    assert(result.state === "completed");
    const gcCommits = smoke ? 16 : 256;
    const gcs = await gcsDuringCommits(commit, batchCount, gcCommits);
    return {
        task,
        eventsPerSecondP50: result.throughput.p50 * batchEventCount,
        batchLatencyMsP50: result.latency.p50,
        batchLatencyMsP99: result.latency.p99,
        youngGcs: gcs.minor,
        majorGcs: gcs.major,
        gcCommits,
    };
}

/** GCs that start during `commits` batch commits, after a warm-up and a forced GC. */
async function gcsDuringCommits(
    commit: () => void,
    warmups: number,
    commits: number,
): Promise<{ minor: number; major: number }> {
    for (let index = 0; index < warmups; index++) commit();
    const gc = (globalThis as { gc?: () => void }).gc;
    if (gc !== undefined) gc();
    return await countGcs(() => {
        for (let index = 0; index < commits; index++) commit();
    });
}

function report(rows: Row[], keyCount: number, setupMs: number, json: boolean): void {
    if (json) {
        console.log(
            JSON.stringify({
                bench: "kv",
                entriesMax,
                keyCount,
                batchEventCount,
                setupMs: Math.round(setupMs),
                rows,
            }),
        );
        return;
    }
    console.log(
        `kv: entriesMax 2^20, ${keyCount} keys, ${batchEventCount}-event batches, ` +
            `setup ${setupMs.toFixed(0)} ms`,
    );
    console.log(
        pad("task", 15) +
            pad("Mevents/s p50", 15) +
            pad("batch ms p50", 14) +
            pad("batch ms p99", 14) +
            "young+major GCs/commits",
    );
    for (const row of rows) {
        console.log(
            pad(row.task, 15) +
                pad((row.eventsPerSecondP50 / 1e6).toFixed(2), 15) +
                pad(row.batchLatencyMsP50.toFixed(3), 14) +
                pad(row.batchLatencyMsP99.toFixed(3), 14) +
                row.youngGcs +
                "+" +
                row.majorGcs +
                "/" +
                row.gcCommits,
        );
    }
}

function align(offset: number): number {
    return Math.ceil(offset / 4096) * 4096;
}

const entry = process.argv[1];
if (entry !== undefined && import.meta.url === pathToFileURL(entry).href) {
    const args = process.argv.slice(2);
    await main({ json: args.includes("--json"), smoke: args.includes("--smoke") });
}
