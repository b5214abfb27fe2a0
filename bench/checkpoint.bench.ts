// Incremental checkpoints (src/vsr/grid.ts) on a 2^21-entry table loaded with 2^20 keys
// (2^17 / 2^16 with --smoke), without a disk: blocks are copied into a buffer standing in for
// the grid zone, so the figures are the CPU cost and the bytes a checkpoint writes.
// Rows:
//   full      the first checkpoint after the load (every slot is new);
//   1% delta  each later round puts new values to 1% of the keys (random, existing) and
//             checkpoints: the pause on the execution path (snapshot refresh + staging), the
//             time to build its blocks (paced, one block per write completion), and the bytes
//             it writes (blocks + index) over the table's bytes. Rounds run until cleaning has
//             reached its steady state (the index at its bound) and beyond;
//   recovery  applying the durable index's blocks to an empty table.
// Run: node dist/bench/checkpoint.bench.js [--json] [--smoke]

import { pathToFileURL } from "node:url";
import { test as testConfig } from "../src/constants.js";
import {
    EventKind,
    KvStateMachine,
    ResultStatus,
    encodeEvent,
    eventSize,
    resultSize,
} from "../src/state_machine/kv.js";
import { assert } from "../src/stdx/assert.js";
import { PRNG } from "../src/stdx/prng.js";
import { Arena } from "../src/vsr/arena.js";
import { checksumAttach } from "../src/vsr/checksum.js";
import { Grid, IndexField } from "../src/vsr/grid.js";
import { type Layout, alignUp, layout } from "../src/vsr/layout.js";
import { median, pad } from "./common.js";

interface Options {
    json: boolean;
    smoke: boolean;
}

const batchEventCount = 8190;

class Bench {
    readonly arena: Arena;
    readonly kv: KvStateMachine;
    readonly grid: Grid;
    readonly zones: Layout;
    readonly disk: Uint8Array;
    readonly input: number;
    readonly output: number;
    index = new Uint8Array(0);

    constructor(entriesMax: number) {
        const config = { ...testConfig, kvEntriesMax: entriesMax };
        const imageSize = KvStateMachine.sizeBytes(entriesMax);
        this.zones = layout(config, imageSize);
        const batch = batchEventCount * (eventSize + resultSize);
        this.arena = new Arena(alignUp(imageSize) + Grid.arenaBytes(this.zones) + batch + 2e5);
        checksumAttach(this.arena.memory);
        const kvOffset = this.arena.allocate(alignUp(imageSize), 4096);
        this.kv = new KvStateMachine(this.arena.bytes, kvOffset, entriesMax);
        this.grid = new Grid(this.arena, this.zones, this.kv);
        this.input = this.arena.allocate(batchEventCount * eventSize, 4096);
        this.output = this.arena.allocate(batchEventCount * resultSize, 4096);
        this.disk = new Uint8Array(this.zones.gridBlockCount * this.zones.gridBlockSize);
    }

    /** Puts key numbers `keys` (8-byte keys, 16-byte values drawn from `prng`). */
    put(keys: readonly number[], prng: PRNG): void {
        const bytes = this.arena.bytes;
        const key = new Uint8Array(8);
        const value = new Uint8Array(16);
        for (let first = 0; first < keys.length; first += batchEventCount) {
            const count = Math.min(batchEventCount, keys.length - first);
            for (let index = 0; index < count; index++) {
                new DataView(key.buffer).setFloat64(0, keys[first + index]! + 1, true);
                for (let byte = 0; byte < value.length; byte++) value[byte] = prng.int(256);
                encodeEvent(bytes, this.input + index * eventSize, EventKind.put, key, value);
            }
            this.kv.commit(bytes, this.input, count, bytes, this.output);
            for (let index = 0; index < count; index++) {
                assert(bytes[this.output + index * resultSize] === ResultStatus.ok);
            }
        }
    }

    /** One checkpoint: [pause ms, block-building ms, blocks, bytes written]. */
    checkpoint(op: number): [number, number, number, number] {
        const grid = this.grid;
        const size = this.zones.gridBlockSize;
        const startMs = performance.now();
        grid.stage(op);
        const stagedMs = performance.now();
        for (let address = grid.nextBlock(); address >= 0; address = grid.nextBlock()) {
            this.disk.set(
                this.arena.bytes.subarray(grid.blockBuffer, grid.blockBuffer + size),
                address * size,
            );
        }
        const indexSize = grid.sealIndex();
        const doneMs = performance.now();
        this.index = this.arena.bytes.slice(grid.indexBuffer, grid.indexBuffer + indexSize);
        return [
            stagedMs - startMs,
            doneMs - stagedMs,
            grid.blocksWritten,
            grid.blocksWritten * size + indexSize,
        ];
    }
}

/** Recovers a fresh table from `bench`'s disk and index; milliseconds. */
function recover(bench: Bench): number {
    const fresh = new Bench(bench.zones.kvSlotCount);
    const grid = fresh.grid;
    const bytes = fresh.arena.bytes;
    const size = bench.zones.gridBlockSize;
    const startMs = performance.now();
    fresh.kv.reset();
    grid.recoverBegin();
    bytes.set(bench.index, grid.indexBuffer);
    bytes.copyWithin(grid.indexChecksum, grid.indexBuffer, grid.indexBuffer + 16);
    const count = grid.recoverIndex(grid.indexChecksum);
    assert(count >= 0);
    for (let index = 0; index < count; index++) {
        const address = grid.recoverAddress(index);
        bytes.set(bench.disk.subarray(address * size, (address + 1) * size), grid.blockBuffer);
        assert(grid.recoverBlock(index));
    }
    grid.recoverFinish();
    const elapsedMs = performance.now() - startMs;
    const image = bench.kv.imageOffset;
    const freshImage = fresh.kv.imageOffset;
    const length = bench.kv.imageSize;
    assert(
        Buffer.compare(
            bench.arena.bytes.subarray(image, image + length),
            bytes.subarray(freshImage, freshImage + length),
        ) === 0,
    );
    return elapsedMs;
}

export async function main(options: Options): Promise<void> {
    const entriesMax = options.smoke ? 1 << 17 : 1 << 21;
    const keyCount = entriesMax / 2;
    const bench = new Bench(entriesMax);
    const prng = new PRNG(7);
    const all: number[] = [];
    for (let key = 0; key < keyCount; key++) all.push(key);
    bench.put(all, prng);
    const tableBytes = bench.kv.imageSize;
    const [fullPause, fullBuild, fullBlocks, fullBytes] = bench.checkpoint(1);
    const rounds = options.smoke ? 60 : 400;
    const touched = Math.floor(keyCount / 100);
    const pauses: number[] = [];
    const builds: number[] = [];
    const ratios: number[] = [];
    let blocksMax = 0;
    let indexBlocksMax = 0;
    for (let round = 0; round < rounds; round++) {
        const keys: number[] = [];
        for (let index = 0; index < touched; index++) keys.push(prng.int(keyCount));
        bench.put(keys, prng);
        const [pause, build, blocks, bytes] = bench.checkpoint(2 + round);
        pauses.push(pause);
        builds.push(build);
        ratios.push(bytes / tableBytes);
        blocksMax = Math.max(blocksMax, blocks);
        const count = new DataView(bench.index.buffer).getUint32(IndexField.blockCount, true);
        indexBlocksMax = Math.max(indexBlocksMax, count);
    }
    const recoveryMs = recover(bench);
    const figures = {
        entries_max: entriesMax,
        keys: keyCount,
        table_bytes: tableBytes,
        grid_blocks: bench.zones.gridBlockCount,
        block_bytes: bench.zones.gridBlockSize,
        full_checkpoint: {
            pause_ms: fullPause,
            build_ms: fullBuild,
            blocks: fullBlocks,
            bytes: fullBytes,
        },
        delta_1pct: {
            rounds,
            keys_touched: touched,
            pause_ms_p50: median(pauses),
            pause_ms_max: Math.max(...pauses),
            build_ms_p50: median(builds),
            bytes_ratio_p50: median(ratios),
            bytes_ratio_max: Math.max(...ratios),
            blocks_max: blocksMax,
            index_blocks_max: indexBlocksMax,
            index_blocks_bound: bench.zones.gridIndexBlocksMax,
        },
        recovery_ms: recoveryMs,
    };
    if (options.json) {
        process.stdout.write(`${JSON.stringify({ suite: "checkpoint", ...figures })}\n`);
        return;
    }
    const mib = (bytes: number): string => `${(bytes / 2 ** 20).toFixed(2)} MiB`;
    const pct = (ratio: number): string => `${(ratio * 100).toFixed(2)}%`;
    process.stdout.write(
        `table ${entriesMax} entries, ${keyCount} keys, ${mib(tableBytes)}; grid ` +
            `${bench.zones.gridBlockCount} blocks of ${bench.zones.gridBlockSize / 1024} KiB\n` +
            `${pad("full", 10)} pause ${fullPause.toFixed(1)} ms, build ${fullBuild.toFixed(1)} ms, ` +
            `${fullBlocks} blocks, ${mib(fullBytes)}\n` +
            `${pad("1% delta", 10)} ${rounds} rounds of ${touched} puts: pause p50 ` +
            `${median(pauses).toFixed(2)} ms (max ${Math.max(...pauses).toFixed(2)}), build p50 ` +
            `${median(builds).toFixed(2)} ms, written p50 ${pct(median(ratios))} of the table ` +
            `(max ${pct(Math.max(...ratios))}), blocks max ${blocksMax}, index max ` +
            `${indexBlocksMax}/${bench.zones.gridIndexBlocksMax}\n` +
            `${pad("recovery", 10)} ${recoveryMs.toFixed(0)} ms (CPU: verify and apply every block)\n`,
    );
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
    await main({ json: process.argv.includes("--json"), smoke: process.argv.includes("--smoke") });
}
