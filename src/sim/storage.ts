// Simulated storage: the data file as a byte array in memory, with seeded latency per I/O.
// Reads and writes complete out of order after their latency (a write becomes visible, and
// durable, only at completion), from tick(), never synchronously from the submit. Offsets,
// sizes and buffers are asserted sector-aligned, exactly as the direct-I/O implementation needs,
// so the simulator catches an unaligned access the real disk would refuse.
//
// Fault model (this issue): latency only. Storage faults (corruption, torn and misdirected
// writes, latent sector errors) and crashes come with durable storage.

import { assert } from "../stdx/assert.js";
import type { PRNG } from "../stdx/prng.js";
import { sectorSize } from "../constants.js";
import type { Arena } from "../vsr/arena.js";
import { IoResult, type Storage, type StorageCompletion } from "../vsr/interfaces.js";

export interface StorageOptions {
    readonly sizeBytes: number;
    readonly readLatencyMinTicks: number;
    readonly readLatencyMeanTicks: number;
    readonly writeLatencyMinTicks: number;
    readonly writeLatencyMeanTicks: number;
    /** Bound on reads and writes in flight at once. */
    readonly iopsMax: number;
}

export class SimStorage implements Storage {
    readonly sizeBytes: number;
    readonly data: Uint8Array;
    private readonly dataWords: Int32Array;
    private readonly arenaWords: Int32Array;
    private readonly arena: Arena;
    private readonly prng: PRNG;
    private readonly options: StorageOptions;
    private readonly completions: (StorageCompletion | null)[] = [];
    private readonly bufferOffsets: Float64Array;
    private readonly sizes: Float64Array;
    private readonly offsets: Float64Array;
    private readonly writes: Uint8Array;
    private readonly dueTicks: Float64Array;
    private readonly sequences: Float64Array;
    private sequence = 0;
    private pendingCount = 0;
    ticks = 0;
    readsCompleted = 0;
    writesCompleted = 0;

    constructor(options: StorageOptions, arena: Arena, prng: PRNG) {
        assert(options.sizeBytes % sectorSize === 0);
        assert(options.iopsMax > 0);
        this.sizeBytes = options.sizeBytes;
        this.data = new Uint8Array(options.sizeBytes);
        this.dataWords = new Int32Array(this.data.buffer);
        this.arenaWords = new Int32Array(arena.memory.buffer);
        this.arena = arena;
        this.prng = prng;
        this.options = options;
        for (let index = 0; index < options.iopsMax; index++) this.completions.push(null);
        this.bufferOffsets = new Float64Array(options.iopsMax);
        this.sizes = new Float64Array(options.iopsMax);
        this.offsets = new Float64Array(options.iopsMax);
        this.writes = new Uint8Array(options.iopsMax);
        this.dueTicks = new Float64Array(options.iopsMax);
        this.sequences = new Float64Array(options.iopsMax);
    }

    read(
        completion: StorageCompletion,
        bufferOffset: number,
        sizeBytes: number,
        offsetBytes: number,
    ): void {
        this.submit(completion, bufferOffset, sizeBytes, offsetBytes, false);
    }

    write(
        completion: StorageCompletion,
        bufferOffset: number,
        sizeBytes: number,
        offsetBytes: number,
    ): void {
        this.submit(completion, bufferOffset, sizeBytes, offsetBytes, true);
    }

    get pending(): number {
        return this.pendingCount;
    }

    private submit(
        completion: StorageCompletion,
        bufferOffset: number,
        size: number,
        offset: number,
        write: boolean,
    ): void {
        assert(bufferOffset % sectorSize === 0);
        assert(size > 0 && size % sectorSize === 0);
        assert(offset % sectorSize === 0);
        assert(offset + size <= this.sizeBytes);
        assert(bufferOffset + size <= this.arena.sizeBytes);
        const slot = this.completions.indexOf(null);
        assert(slot >= 0); // The replica bounds its I/O; running out here is its bug.
        const latency = write
            ? this.options.writeLatencyMinTicks +
              this.prng.exponential(this.options.writeLatencyMeanTicks)
            : this.options.readLatencyMinTicks +
              this.prng.exponential(this.options.readLatencyMeanTicks);
        this.completions[slot] = completion;
        this.bufferOffsets[slot] = bufferOffset;
        this.sizes[slot] = size;
        this.offsets[slot] = offset;
        this.writes[slot] = write ? 1 : 0;
        this.dueTicks[slot] = this.ticks + Math.max(1, latency);
        this.sequences[slot] = this.sequence++;
        this.pendingCount++;
    }

    /** Completes every I/O that is due, in (due tick, submission) order. */
    tick(): void {
        this.ticks++;
        while (this.pendingCount > 0) {
            const slot = this.nextDue();
            if (slot < 0) return;
            this.complete(slot);
        }
    }

    private nextDue(): number {
        let best = -1;
        for (let slot = 0; slot < this.completions.length; slot++) {
            if (this.completions[slot] === null || (this.dueTicks[slot] ?? 0) > this.ticks)
                continue;
            if (best < 0 || (this.sequences[slot] ?? 0) < (this.sequences[best] ?? 0)) best = slot;
        }
        return best;
    }

    private complete(slot: number): void {
        const completion = this.completions[slot] ?? null;
        assert(completion !== null);
        const bufferOffset = this.bufferOffsets[slot] ?? 0;
        const size = this.sizes[slot] ?? 0;
        const offset = this.offsets[slot] ?? 0;
        // Word copies between the arena and the disk image: no views are created per I/O.
        if (this.writes[slot] === 1) {
            copyWords(this.arenaWords, bufferOffset >> 2, this.dataWords, offset >> 2, size >> 2);
            this.writesCompleted++;
        } else {
            copyWords(this.dataWords, offset >> 2, this.arenaWords, bufferOffset >> 2, size >> 2);
            this.readsCompleted++;
        }
        this.completions[slot] = null;
        this.pendingCount--;
        completion.result = IoResult.ok;
        completion.callback(completion);
    }
}

function copyWords(
    source: Int32Array,
    sourceIndex: number,
    target: Int32Array,
    targetIndex: number,
    count: number,
): void {
    for (let index = 0; index < count; index++)
        target[targetIndex + index] = source[sourceIndex + index]!;
}
