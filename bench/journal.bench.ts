// Journal write throughput on the real disk: what a prepare costs to make durable, by write path.
// Each prepare is written to the next slot of a WAL ring (slot = op % slotCount) in a file on a
// real-disk directory (os.tmpdir() unless it is tmpfs, then the repository's parent), at 4 KiB
// and 1 MiB (messageSizeMax). Rows:
//   direct        DirectStorage (O_DIRECT | O_DSYNC) from arena memory, one write in flight;
//   direct x8     the same, 8 writes in flight (the journal pipelines); a sample is a batch of 8
//                 consecutive slots, so this is a lower bound on a continuously full pipeline;
//   buffered      fs.write through the page cache (no O_DSYNC) then fdatasync, per prepare.
// The ring is fully written before timing, so every timed write overwrites allocated blocks (the
// steady state once the journal wraps), not a first-lap block allocation. Figures are tinybench
// medians: prepares/s = samples/s × prepares per sample; MiB/s = prepares/s × prepare size.
// Full runs repeat all rows in 3 interleaved rounds and report the median round (disks drift).
// Run: node dist/bench/journal.bench.js [--json] [--smoke]

import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { Bench } from "tinybench";
import { createDataFile, DirectStorage } from "../src/io/storage_direct.js";
import { assert } from "../src/stdx/assert.js";
import { Arena } from "../src/vsr/arena.js";
import { IoResult, type StorageCompletion } from "../src/vsr/interfaces.js";
import { filesystemOf, realDiskDirectory } from "../test/disk.js";
import { fillPattern, median, pad } from "./common.js";

interface Options {
    json: boolean;
    smoke: boolean;
}

interface Row {
    mode: string;
    prepareSizeBytes: number;
    inFlight: number;
    mebibytesPerSecondP50: number;
    preparesPerSecondP50: number;
    sampleLatencyMsP50: number;
    samples: number;
}

const kib = 1024;
const mib = 1024 * kib;
const prepareSizes = [4 * kib, 1 * mib] as const;
const pipelineDepth = 8;

/** Counts completions of a batch of writes and resolves when all are in. */
class Batch implements StorageCompletion {
    result: IoResult = IoResult.ok;
    outstanding = 0;
    failures = 0;
    resolve: (() => void) | null = null;

    callback(completion: StorageCompletion): void {
        assert(completion === this);
        if (this.result !== IoResult.ok) this.failures++;
        this.outstanding--;
        if (this.outstanding === 0) this.resolve!();
    }
}

/** The ring: one file, DirectStorage over it, a buffered descriptor, the next op per size. */
interface Ring {
    readonly storage: DirectStorage;
    readonly bufferedFd: number;
    readonly arena: Arena;
    readonly ringBytes: number;
    op: number;
}

export async function main(options: Options): Promise<void> {
    const ringBytes = options.smoke ? 8 * mib : 64 * mib;
    const directory = realDiskDirectory("vsr-journal-bench");
    const filePath = path.join(directory, "journal.data");
    const lines: string[] = [];
    try {
        createDataFile(filePath, ringBytes, (fd) => prefill(fd, ringBytes));
        const arena = new Arena(pipelineDepth * mib + 64 * kib);
        fillPattern(arena.bytes);
        const storage = DirectStorage.open(filePath, arena, {
            iopsMax: pipelineDepth,
            log: (line) => lines.push(line),
        });
        const bufferedFd = fs.openSync(filePath, fs.constants.O_RDWR);
        const ring: Ring = { storage, bufferedFd, arena, ringBytes, op: 0 };
        const rows: Row[] = [];
        try {
            rows.push(...(await measureRounds(ring, options.smoke)));
        } finally {
            fs.closeSync(bufferedFd);
            await new Promise<Error | null>((resolve) => storage.close(resolve));
        }
        report(rows, filesystemOf(directory), storage.direct, lines, options.json);
    } finally {
        fs.rmSync(directory, { recursive: true, force: true });
    }
}

const modes: ReadonlyArray<readonly [string, number]> = [
    ["direct", 1],
    ["direct x8", pipelineDepth],
    ["buffered+fdatasync", 1],
];

/**
 * Runs every (size, mode) task once per round, interleaved, so that drift in the machine's load
 * hits every row alike; a row's figures are the medians over rounds of its per-round medians.
 */
async function measureRounds(ring: Ring, smoke: boolean): Promise<Row[]> {
    const roundCount = smoke ? 1 : 3;
    const rounds: Row[][] = [];
    for (let round = 0; round < roundCount; round++) {
        const rows: Row[] = [];
        for (const size of prepareSizes) {
            for (const [mode, inFlight] of modes) {
                rows.push(await measure(ring, mode, size, inFlight, smoke));
            }
        }
        rounds.push(rows);
    }
    return rounds[0]!.map((first, index) => {
        const each = rounds.map((rows) => rows[index]!);
        return {
            ...first,
            mebibytesPerSecondP50: median(each.map((row) => row.mebibytesPerSecondP50)),
            preparesPerSecondP50: median(each.map((row) => row.preparesPerSecondP50)),
            sampleLatencyMsP50: median(each.map((row) => row.sampleLatencyMsP50)),
            samples: each.reduce((sum, row) => sum + row.samples, 0),
        };
    });
}

async function measure(ring: Ring, mode: string, size: number, inFlight: number, smoke: boolean) {
    const slotCount = ring.ringBytes / size;
    assert(Number.isInteger(slotCount) && slotCount >= inFlight);
    const batch = new Batch();
    const write =
        mode === "buffered+fdatasync"
            ? () => writeBuffered(ring, size, slotCount)
            : () => writeDirect(ring, batch, size, slotCount, inFlight);
    const bench = new Bench({
        time: smoke ? 60 : 500,
        warmupTime: smoke ? 10 : 100,
        iterations: smoke ? 3 : 8,
        warmupIterations: smoke ? 1 : 2,
    });
    bench.add(mode, write, { async: true }); // Declared: tinybench would probe by calling it.
    await bench.run();
    const result = bench.tasks[0]!.result;
    if (result.state === "errored") throw result.error;
    assert(result.state === "completed");
    assert(batch.failures === 0);
    const preparesPerSecondP50 = result.throughput.p50 * inFlight;
    return {
        mode,
        prepareSizeBytes: size,
        inFlight,
        mebibytesPerSecondP50: (preparesPerSecondP50 * size) / mib,
        preparesPerSecondP50,
        sampleLatencyMsP50: result.latency.p50,
        samples: result.latency.samplesCount,
    } satisfies Row;
}

/** Writes `inFlight` prepares to consecutive ring slots at once, from distinct arena buffers. */
function writeDirect(ring: Ring, batch: Batch, size: number, slotCount: number, inFlight: number) {
    return new Promise<void>((resolve) => {
        assert(batch.outstanding === 0);
        batch.resolve = resolve;
        batch.outstanding = inFlight;
        for (let index = 0; index < inFlight; index++) {
            const slot = ring.op++ % slotCount;
            ring.storage.write(batch, index * mib, size, slot * size);
        }
    });
}

/** One prepare through the page cache, made durable by fdatasync before the next. */
function writeBuffered(ring: Ring, size: number, slotCount: number) {
    return new Promise<void>((resolve, reject) => {
        const slot = ring.op++ % slotCount;
        fs.write(ring.bufferedFd, ring.arena.bytes, 0, size, slot * size, (error, written) => {
            if (error !== null) return reject(error);
            assert(written === size);
            fs.fdatasync(ring.bufferedFd, (syncError) => {
                if (syncError !== null) reject(syncError);
                else resolve();
            });
        });
    });
}

function prefill(fd: number, ringBytes: number): void {
    const zeros = new Uint8Array(mib);
    for (let offset = 0; offset < ringBytes; offset += mib) {
        const size = Math.min(mib, ringBytes - offset);
        assert(fs.writeSync(fd, zeros, 0, size, offset) === size);
    }
}

function report(rows: Row[], filesystem: string, direct: boolean, lines: string[], json: boolean) {
    if (json) {
        console.log(JSON.stringify({ bench: "journal", filesystem, direct, rows }));
        return;
    }
    for (const line of lines) console.log(line);
    console.log(`filesystem ${filesystem}, O_DIRECT ${direct ? "on" : "refused"}`);
    console.log(
        pad("mode", 20) +
            pad("prepare", 9) +
            pad("MiB/s p50", 11) +
            pad("prepares/s p50", 16) +
            pad("ms/sample p50", 15) +
            "samples",
    );
    for (const row of rows) {
        console.log(
            pad(row.mode, 20) +
                pad(
                    row.prepareSizeBytes >= mib ? "1 MiB" : row.prepareSizeBytes / kib + " KiB",
                    9,
                ) +
                pad(row.mebibytesPerSecondP50.toFixed(1), 11) +
                pad(row.preparesPerSecondP50.toFixed(0), 16) +
                pad(row.sampleLatencyMsP50.toFixed(3), 15) +
                row.samples,
        );
    }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
    await main({ json: process.argv.includes("--json"), smoke: process.argv.includes("--smoke") });
}
