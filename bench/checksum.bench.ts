// Checksum implementations, measured at 240 B (a header's checksummed bytes: XXH3's medium
// path), 256 B, 4 KiB and 1 MiB (a full body):
//   xxh3 wasm     the shipped path: the XXH3-128 kernel hashing the arena in place (checksum());
//   xxh3 ts       the same function in TypeScript on a plain buffer (the shipped fallback);
//   md5 crypto    node:crypto md5, a reference row (native code, allocates per call).
// The lane hash this replaced is not kept: its figures come from running this file at the commit
// before XXH3 (see checksum.ts's header for both tables).
// Throughput is tinybench's median over samples; each sample hashes >= 64 KiB so the timer
// resolution does not dominate short calls. Allocation is measured outside the timed region:
// the GCs that start during a plain loop of calls (countGcs, test/gc.ts, which waits until
// every GC entry has arrived), then the median heapUsed growth per call over chunks.
// Run: node --expose-gc dist/bench/checksum.bench.js [--json] [--smoke]

import { createHash } from "node:crypto";
import { pathToFileURL } from "node:url";
import { Bench } from "tinybench";
import { assert } from "../src/stdx/assert.js";
import { checksum, checksumAttach, checksumKernelAttached } from "../src/vsr/checksum.js";
import { countGcs } from "../test/gc.js";
import { fillPattern, median, pad } from "./common.js";

interface Options {
    json: boolean;
    smoke: boolean;
}

interface Row {
    candidate: string;
    sizeBytes: number;
    bytesPerSecondP50: number;
    latencyNsP50: number;
    youngGcs: number;
    majorGcs: number;
    allocationCalls: number;
    heapBytesPerCall: number;
}

type Call = () => void;

const sizes = [240, 256, 4096, 1024 * 1024] as const;
const sampleBytesMin = 64 * 1024;
const inputOffset = 4096;
const wasmPageSize = 64 * 1024;

export async function main(options: Options): Promise<void> {
    const memory = new WebAssembly.Memory({ initial: 18, maximum: 18 });
    const sizeMax = sizes[sizes.length - 1]!;
    assert(memory.buffer.byteLength >= inputOffset + sizeMax + wasmPageSize);
    checksumAttach(memory);
    assert(checksumKernelAttached());
    const arena = new Uint8Array(memory.buffer);
    const plain = new Uint8Array(inputOffset + sizeMax);
    fillPattern(plain);
    arena.set(plain);
    const rows: Row[] = [];
    for (const sizeBytes of sizes) {
        const calls: Array<[string, Call]> = [
            ["xxh3 wasm (arena)", () => checksum(arena, inputOffset, sizeBytes, arena, 0)],
            ["xxh3 ts (plain)", () => checksum(plain, inputOffset, sizeBytes, plain, 0)],
            ["md5 node:crypto", md5Call(plain.subarray(inputOffset, inputOffset + sizeBytes))],
        ];
        for (const [candidate, call] of calls) {
            rows.push(await measure(candidate, call, sizeBytes, options.smoke));
        }
    }
    report(rows, options.json);
}

async function measure(candidate: string, call: Call, sizeBytes: number, smoke: boolean) {
    const batch = Math.max(1, Math.floor(sampleBytesMin / sizeBytes));
    const bench = new Bench({
        time: smoke ? 15 : 600,
        warmupTime: smoke ? 5 : 200,
        iterations: smoke ? 4 : 32,
    });
    bench.add(candidate, () => {
        for (let index = 0; index < batch; index++) call();
    });
    await bench.run();
    const result = bench.tasks[0]!.result;
    assert(result.state === "completed");
    const calls = smoke
        ? Math.max(4, Math.floor(2_000_000 / sizeBytes))
        : Math.max(200, Math.floor(256_000_000 / sizeBytes));
    const allocation = await measureAllocation(call, calls);
    return {
        candidate,
        sizeBytes,
        bytesPerSecondP50: result.throughput.p50 * batch * sizeBytes,
        latencyNsP50: (result.latency.p50 * 1e6) / batch,
        youngGcs: allocation.youngGcs,
        majorGcs: allocation.majorGcs,
        allocationCalls: allocation.allocationCalls,
        heapBytesPerCall: allocation.heapBytesPerCall,
    } satisfies Row;
}

/**
 * GCs that start during `calls` calls in a plain loop (after a warm-up and a forced GC when
 * --expose-gc is given), then heap growth per call: the median growth of chunks of at most 1000
 * calls minus the median growth of empty chunks (memoryUsage() itself allocates, so it stays out
 * of the GC-counted loop). Chunks are small so that most contain no scavenge (a scavenge makes
 * its chunk's growth negative) and the median is one without.
 */
async function measureAllocation(call: Call, calls: number) {
    const chunkCalls = Math.min(1000, calls);
    const chunkCount = Math.floor(calls / chunkCalls);
    const allocationCalls = chunkCount * chunkCalls;
    for (let index = 0; index < Math.min(calls, 10_000); index++) call();
    const gc = (globalThis as { gc?: () => void }).gc;
    if (gc !== undefined) gc();
    const gcs = await countGcs(() => {
        for (let index = 0; index < allocationCalls; index++) call();
    });
    const deltas: number[] = [];
    const baselines: number[] = [];
    for (let chunk = 0; chunk < chunkCount; chunk++) {
        const before = process.memoryUsage().heapUsed;
        for (let index = 0; index < chunkCalls; index++) call();
        const middle = process.memoryUsage().heapUsed;
        const after = process.memoryUsage().heapUsed;
        deltas.push(middle - before);
        baselines.push(after - middle);
    }
    const growthBytes = Math.max(0, median(deltas) - median(baselines));
    return {
        youngGcs: gcs.minor,
        majorGcs: gcs.major,
        allocationCalls,
        heapBytesPerCall: growthBytes / chunkCalls,
    };
}

function sizeLabel(sizeBytes: number): string {
    if (sizeBytes >= 1024 * 1024) return sizeBytes / (1024 * 1024) + " MiB";
    if (sizeBytes >= 1024) return sizeBytes / 1024 + " KiB";
    return sizeBytes + " B";
}

function md5Call(view: Uint8Array): Call {
    return () => {
        createHash("md5").update(view).digest();
    };
}

function report(rows: Row[], json: boolean): void {
    const fastest: Record<string, string> = {};
    for (const sizeBytes of sizes) {
        let best: Row | null = null;
        for (const row of rows) {
            if (row.sizeBytes !== sizeBytes) continue;
            if (best === null || row.bytesPerSecondP50 > best.bytesPerSecondP50) best = row;
        }
        fastest[String(sizeBytes)] = best === null ? "" : best.candidate;
    }
    if (json) {
        console.log(JSON.stringify({ bench: "checksum", rows, fastest }));
        return;
    }
    console.log(
        pad("candidate", 22) +
            pad("size", 9) +
            pad("GB/s p50", 10) +
            pad("ns/call p50", 13) +
            pad("young+major GCs/calls", 23) +
            "heap B/call",
    );
    for (const row of rows) {
        console.log(
            pad(row.candidate, 22) +
                pad(sizeLabel(row.sizeBytes), 9) +
                pad((row.bytesPerSecondP50 / 1e9).toFixed(2), 10) +
                pad(row.latencyNsP50.toFixed(0), 13) +
                pad(row.youngGcs + "+" + row.majorGcs + "/" + row.allocationCalls, 23) +
                row.heapBytesPerCall.toFixed(1),
        );
    }
    for (const sizeBytes of sizes) {
        console.log("fastest at " + sizeBytes + " B: " + fastest[String(sizeBytes)]);
    }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
    await main({ json: process.argv.includes("--json"), smoke: process.argv.includes("--smoke") });
}
