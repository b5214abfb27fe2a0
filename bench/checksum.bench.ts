// Checksum candidates, measured: the figures that chose src/vsr/checksum.ts's algorithm and
// implementation. Rows, each at 256 B (a header's worth) and 1 MiB (a full body):
//   lane128 wasm   the shipped path: the SIMD kernel hashing the arena in place (checksum());
//   lane128 ts     the same function in TypeScript on a plain buffer (the shipped fallback);
//   murmur3 ts     MurmurHash3_x86_128 on 32-bit integer math (the classic pure-TS candidate,
//                  kept here as the losing row; not used by the project, so not pinned);
//   md5 crypto     node:crypto md5, a reference row (native code, allocates per call).
// Throughput is tinybench's median over samples; each sample hashes >= 64 KiB so the timer
// resolution does not dominate 256-byte calls. Allocation is measured outside the timed region:
// the GCs that start during a plain loop of calls (countGcs, test/gc.ts, which waits until
// every GC entry has arrived), then the median heapUsed growth per call over chunks.
// Run: node --expose-gc dist/bench/checksum.bench.js [--json] [--smoke]

import { createHash } from "node:crypto";
import { pathToFileURL } from "node:url";
import { Bench } from "tinybench";
import { assert } from "../src/stdx/assert.js";
import { checksum, checksumAttach, checksumSize } from "../src/vsr/checksum.js";
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

const sizes = [256, 1024 * 1024] as const;
const sampleBytesMin = 64 * 1024;
const inputOffset = 4096;
const wasmPageSize = 64 * 1024;

export async function main(options: Options): Promise<void> {
    const memory = new WebAssembly.Memory({ initial: 18, maximum: 18 });
    assert(memory.buffer.byteLength >= inputOffset + sizes[1] + wasmPageSize);
    checksumAttach(memory);
    const arena = new Uint8Array(memory.buffer);
    const plain = new Uint8Array(inputOffset + sizes[1]);
    fillPattern(plain);
    arena.set(plain);
    const rows: Row[] = [];
    for (const sizeBytes of sizes) {
        const calls: Array<[string, Call]> = [
            ["lane128 wasm (arena)", () => checksum(arena, inputOffset, sizeBytes, arena, 0)],
            ["lane128 ts (plain)", () => checksum(plain, inputOffset, sizeBytes, plain, 0)],
            ["murmur3_x86_128 ts", () => murmur3(plain, inputOffset, sizeBytes, plain, 0)],
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
                pad(row.sizeBytes >= 1024 * 1024 ? "1 MiB" : row.sizeBytes + " B", 9) +
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

// MurmurHash3_x86_128 (Austin Appleby, public domain), seed 0, the losing candidate. Reads
// little-endian words through a DataView cached by buffer identity, allocation-free like the
// winner, so the comparison is of the algorithms.
let murmurBuffer: ArrayBufferLike | null = null;
let murmurView = new DataView(new ArrayBuffer(16)) as DataView<ArrayBufferLike>;
const murmurWords = new Int32Array(4);
const c1 = 0x239b961b;
const c2 = 0xab0e9789;
const c3 = 0x38b34ae5;
const c4 = 0xa1e38b93;

function murmur3(
    source: Uint8Array,
    offset: number,
    size: number,
    target: Uint8Array,
    targetOffset: number,
): void {
    assert(offset + size <= source.length && targetOffset + checksumSize <= target.length);
    if (source.buffer !== murmurBuffer) {
        murmurBuffer = source.buffer;
        murmurView = new DataView(source.buffer);
    }
    const view = murmurView;
    const start = source.byteOffset + offset;
    const blocksEnd = start + size - (size % 16);
    let h1 = 0,
        h2 = 0,
        h3 = 0,
        h4 = 0;
    for (let p = start; p < blocksEnd; p += 16) {
        h1 ^= mixK(view.getInt32(p, true), c1, 15, c2);
        h1 = (Math.imul(rotl(h1, 19) + h2, 5) + 0x561ccd1b) | 0;
        h2 ^= mixK(view.getInt32(p + 4, true), c2, 16, c3);
        h2 = (Math.imul(rotl(h2, 17) + h3, 5) + 0x0bcaa747) | 0;
        h3 ^= mixK(view.getInt32(p + 8, true), c3, 17, c4);
        h3 = (Math.imul(rotl(h3, 15) + h4, 5) + 0x96cd1c35) | 0;
        h4 ^= mixK(view.getInt32(p + 12, true), c4, 18, c1);
        h4 = (Math.imul(rotl(h4, 13) + h1, 5) + 0x32ac3b17) | 0;
    }
    murmurWords.fill(0);
    for (let index = 0; index < size % 16; index++) {
        const word = index >>> 2;
        const byte = view.getUint8(blocksEnd + index);
        murmurWords[word] = murmurWords[word]! | (byte << ((index & 3) * 8));
    }
    if (size % 16 > 12) h4 ^= mixK(murmurWords[3]!, c4, 18, c1);
    if (size % 16 > 8) h3 ^= mixK(murmurWords[2]!, c3, 17, c4);
    if (size % 16 > 4) h2 ^= mixK(murmurWords[1]!, c2, 16, c3);
    if (size % 16 > 0) h1 ^= mixK(murmurWords[0]!, c1, 15, c2);
    murmurWords[0] = h1 ^ size;
    murmurWords[1] = h2 ^ size;
    murmurWords[2] = h3 ^ size;
    murmurWords[3] = h4 ^ size;
    murmurFinal(target, targetOffset);
}

function murmurFinal(target: Uint8Array, targetOffset: number): void {
    let h1 = murmurWords[0]!,
        h2 = murmurWords[1]!,
        h3 = murmurWords[2]!,
        h4 = murmurWords[3]!;
    h1 = (h1 + h2 + h3 + h4) | 0;
    h2 = (h2 + h1) | 0;
    h3 = (h3 + h1) | 0;
    h4 = (h4 + h1) | 0;
    h1 = fmix32(h1);
    h2 = fmix32(h2);
    h3 = fmix32(h3);
    h4 = fmix32(h4);
    h1 = (h1 + h2 + h3 + h4) | 0;
    h2 = (h2 + h1) | 0;
    h3 = (h3 + h1) | 0;
    h4 = (h4 + h1) | 0;
    murmurWords[0] = h1;
    murmurWords[1] = h2;
    murmurWords[2] = h3;
    murmurWords[3] = h4;
    for (let index = 0; index < checksumSize; index++) {
        target[targetOffset + index] = murmurWords[index >>> 2]! >>> ((index & 3) * 8);
    }
}

function mixK(k: number, multiplier1: number, bits: number, multiplier2: number): number {
    return Math.imul(rotl(Math.imul(k, multiplier1), bits), multiplier2);
}

function rotl(value: number, bits: number): number {
    return (value << bits) | (value >>> (32 - bits));
}

function fmix32(value: number): number {
    let h = value;
    h ^= h >>> 16;
    h = Math.imul(h, 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    return h ^ (h >>> 16);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
    await main({ json: process.argv.includes("--json"), smoke: process.argv.includes("--smoke") });
}
