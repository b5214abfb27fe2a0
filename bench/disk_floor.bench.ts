// The disk's floor under a replica's acknowledgement: the latency of each O_DIRECT | O_DSYNC
// write (DirectStorage, the replica's own path, from page-aligned WebAssembly.Memory arena
// memory) in a file on a real-disk directory, per write, as p50 / p99 / max. Cases:
//   one          one write of the size;
//   write+read   a prepare of the size, then, once it completed, an O_DIRECT read of its first
//                4 KiB sector: what a backup waits for before its prepare_ok (the journal's
//                read-back; its header sector follows unwaited);
//   two in seq   a prepare of the size, then, once it completed, a 4 KiB header-ring sector
//                elsewhere in the file (the acknowledgement path before the read-back);
//   two at once  both submitted together, done when both are (what overlapping the two writes
//                would save, were the recovery table sound with it);
//   buffered+fdatasync  a write through the page cache, then fdatasync (what etcd's WAL does).
// Sizes: 4 KiB (one sector: a prepare of one request of one put, the 1-client case) and 16 KiB
// (a prepare of ~100 batched puts). Every offset was written once before timing (the steady
// state of a wrapped journal, no block allocation). The cases are interleaved in rounds so
// that drift in the machine's load hits every row alike.
// Run: node dist/bench/disk_floor.bench.js [--json] [--smoke]

import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { createDataFile, DirectStorage } from "../src/io/storage_direct.js";
import { assert } from "../src/stdx/assert.js";
import { Arena } from "../src/vsr/arena.js";
import { IoResult, type StorageCompletion } from "../src/vsr/interfaces.js";
import { filesystemOf, realDiskDirectory } from "../test/disk.js";
import { fillPattern, pad } from "./common.js";

interface Options {
    json: boolean;
    smoke: boolean;
}

interface Row {
    case: string;
    sizeBytes: number;
    p50Ms: number;
    p99Ms: number;
    maxMs: number;
    samples: number;
}

const kib = 1024;
const sizes = [4 * kib, 16 * kib] as const;
const cases = ["one", "write+read", "two in seq", "two at once", "buffered+fdatasync"] as const;
type Case = (typeof cases)[number];
/** The prepares ring: 256 slots of 16 KiB; the header sectors live after it (64 of 4 KiB). */
const prepareSlots = 256;
const prepareSlotBytes = 16 * kib;
const headerSectors = 64;
const fileBytes = prepareSlots * prepareSlotBytes + headerSectors * 4 * kib;

/** Calls `resolve` once `outstanding` reads and writes completed. */
class Waiter implements StorageCompletion {
    result: IoResult = IoResult.ok;
    outstanding = 0;
    failures = 0;
    resolve: (() => void) | null = null;

    callback(completion: StorageCompletion): void {
        assert(completion === this);
        assert(this.outstanding > 0);
        if (this.result !== IoResult.ok) this.failures++;
        this.outstanding--;
        if (this.outstanding === 0) this.resolve!();
    }
}

interface Disk {
    readonly storage: DirectStorage;
    readonly bufferedFd: number;
    readonly arena: Arena;
    readonly waiter: Waiter;
    op: number;
}

export async function main(options: Options): Promise<void> {
    const directory = realDiskDirectory("vsr-disk-floor");
    const filePath = path.join(directory, "floor.data");
    const lines: string[] = [];
    try {
        createDataFile(filePath, fileBytes, (fd) => prefill(fd));
        const arena = new Arena(64 * kib);
        fillPattern(arena.bytes);
        const storage = DirectStorage.open(filePath, arena, {
            iopsMax: 2,
            log: (line) => lines.push(line),
        });
        const bufferedFd = fs.openSync(filePath, fs.constants.O_RDWR);
        const disk: Disk = { storage, bufferedFd, arena, waiter: new Waiter(), op: 0 };
        let rows: Row[];
        try {
            rows = await measureRounds(disk, options.smoke ? 50 : 500, options.smoke ? 1 : 4);
        } finally {
            fs.closeSync(bufferedFd);
            await new Promise<Error | null>((resolve) => storage.close(resolve));
        }
        assert(disk.waiter.failures === 0);
        report(rows, filesystemOf(directory), storage.direct, lines, options.json);
    } finally {
        fs.rmSync(directory, { recursive: true, force: true });
    }
}

/** Per (case, size): `perRound` timed writes in each of `rounds` rounds, pooled. */
async function measureRounds(disk: Disk, perRound: number, rounds: number): Promise<Row[]> {
    const samples = new Map<string, number[]>();
    for (let round = 0; round < rounds; round++) {
        for (const size of sizes) {
            for (const kind of cases) {
                const key = `${kind}/${size}`;
                const list = samples.get(key) ?? [];
                samples.set(key, list);
                for (let index = 0; index < perRound; index++) {
                    const startMs = performance.now();
                    await writeCase(disk, kind, size);
                    list.push(performance.now() - startMs);
                }
            }
        }
    }
    const rows: Row[] = [];
    for (const size of sizes) {
        for (const kind of cases) {
            const list = samples.get(`${kind}/${size}`)!.sort((a, b) => a - b);
            rows.push({
                case: kind,
                sizeBytes: size,
                p50Ms: quantile(list, 0.5),
                p99Ms: quantile(list, 0.99),
                maxMs: list[list.length - 1]!,
                samples: list.length,
            });
        }
    }
    return rows;
}

function quantile(sorted: readonly number[], q: number): number {
    assert(sorted.length > 0);
    return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

/** One sample of a case; the prepare goes to the next ring slot, its header to its sector. */
async function writeCase(disk: Disk, kind: Case, size: number): Promise<void> {
    const slot = disk.op++ % prepareSlots;
    const prepareOffset = slot * prepareSlotBytes;
    const headerOffset = prepareSlots * prepareSlotBytes + (slot % headerSectors) * 4 * kib;
    switch (kind) {
        case "one":
            return writes(disk, [[0, size, prepareOffset]]);
        case "write+read":
            await writes(disk, [[0, size, prepareOffset]]);
            return readSector(disk, 48 * kib, prepareOffset);
        case "two in seq":
            await writes(disk, [[0, size, prepareOffset]]);
            return writes(disk, [[32 * kib, 4 * kib, headerOffset]]);
        case "two at once":
            return writes(disk, [
                [0, size, prepareOffset],
                [32 * kib, 4 * kib, headerOffset],
            ]);
        case "buffered+fdatasync":
            return writeBuffered(disk, size, prepareOffset);
    }
}

/** Submits every [arena offset, size, file offset] write at once; resolves when all landed. */
function writes(disk: Disk, list: readonly (readonly [number, number, number])[]): Promise<void> {
    return new Promise<void>((resolve) => {
        const waiter = disk.waiter;
        assert(waiter.outstanding === 0);
        waiter.resolve = resolve;
        waiter.outstanding = list.length;
        for (const [bufferOffset, size, offset] of list) {
            disk.storage.write(waiter, bufferOffset, size, offset);
        }
    });
}

/** Reads one 4 KiB sector at `offset` into the arena at `bufferOffset`; resolves when read. */
function readSector(disk: Disk, bufferOffset: number, offset: number): Promise<void> {
    return new Promise<void>((resolve) => {
        const waiter = disk.waiter;
        assert(waiter.outstanding === 0);
        waiter.resolve = resolve;
        waiter.outstanding = 1;
        disk.storage.read(waiter, bufferOffset, 4 * kib, offset);
    });
}

function writeBuffered(disk: Disk, size: number, offset: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
        fs.write(disk.bufferedFd, disk.arena.bytes, 0, size, offset, (error, written) => {
            if (error !== null) return reject(error);
            assert(written === size);
            fs.fdatasync(disk.bufferedFd, (syncError) => {
                if (syncError !== null) reject(syncError);
                else resolve();
            });
        });
    });
}

function prefill(fd: number): void {
    const zeros = new Uint8Array(256 * kib);
    for (let offset = 0; offset < fileBytes; offset += zeros.length) {
        const size = Math.min(zeros.length, fileBytes - offset);
        assert(fs.writeSync(fd, zeros, 0, size, offset) === size);
    }
    fs.fsyncSync(fd);
}

function report(rows: Row[], filesystem: string, direct: boolean, lines: string[], json: boolean) {
    if (json) {
        console.log(JSON.stringify({ bench: "disk_floor", filesystem, direct, rows }));
        return;
    }
    for (const line of lines) console.log(line);
    console.log(`filesystem ${filesystem}, O_DIRECT ${direct ? "on" : "refused"}; ms per sample`);
    console.log(
        pad("case", 20) + pad("size", 8) + pad("p50", 9) + pad("p99", 9) + pad("max", 9) + "n",
    );
    for (const row of rows) {
        console.log(
            pad(row.case, 20) +
                pad(`${row.sizeBytes / kib} KiB`, 8) +
                pad(row.p50Ms.toFixed(3), 9) +
                pad(row.p99Ms.toFixed(3), 9) +
                pad(row.maxMs.toFixed(3), 9) +
                row.samples,
        );
    }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
    await main({ json: process.argv.includes("--json"), smoke: process.argv.includes("--smoke") });
}
