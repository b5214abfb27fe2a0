// Simulated storage: the data file as a byte array in memory, with seeded latency per I/O.
// Reads and writes complete out of order after their latency (a write becomes visible, and
// durable, only at completion), from tick(), never synchronously from the submit. Offsets,
// sizes and buffers are asserted sector-aligned, exactly as the direct-I/O implementation needs,
// so the simulator catches an unaligned access the real disk would refuse.
//
// Fault model, each drawn per seed and applied only where the cluster can survive it (the
// `faultable(offset, size)` predicate: the cluster's fault atlas, which allows a WAL slot to be
// faulty on fewer replicas than a replication quorum, and never the superblock or checkpoints):
// - latent sector errors: a read marks one sector of its range bad; reads of a bad sector
//   return it corrupted (one byte flipped, the same way every time) until it is rewritten;
// - write corruption: a write lands with one sector corrupted (persistently, as above);
// - misdirected writes: a write lands at another offset of the same zone (the caller names the
//   alternative through the atlas) and the intended place keeps its old bytes;
// - crashes: each write in flight is lost, completed, or torn (a random subset of its sectors
//   written); no completion is ever delivered for an I/O in flight at a crash.

import { assert } from "../stdx/assert.js";
import type { PRNG } from "../stdx/prng.js";
import { sectorSize } from "../constants.js";
import type { Arena } from "../vsr/arena.js";
import {
    assertStorageIo,
    IoResult,
    type Storage,
    type StorageCompletion,
} from "../vsr/interfaces.js";

export interface StorageOptions {
    readonly sizeBytes: number;
    readonly readLatencyMinTicks: number;
    readonly readLatencyMeanTicks: number;
    readonly writeLatencyMinTicks: number;
    readonly writeLatencyMeanTicks: number;
    /** Bound on reads and writes in flight at once. */
    readonly iopsMax: number;
}

export interface StorageFaultOptions {
    readonly readFaultProbability: number;
    readonly writeFaultProbability: number;
    readonly misdirectProbability: number;
    readonly crashTornProbability: number;
}

export const noStorageFaults: StorageFaultOptions = {
    readFaultProbability: 0,
    writeFaultProbability: 0,
    misdirectProbability: 0,
    crashTornProbability: 0,
};

/** Where faults may land (the cluster's atlas); `misdirectTarget` returns -1 when none may. */
export interface FaultAtlas {
    faultable(offset: number, size: number): boolean;
    /** Whether a write in flight at a crash may be torn here (else it is lost or lands whole). */
    tearable(offset: number, size: number): boolean;
    misdirectTarget(offset: number, size: number): number;
}

export interface StorageStats {
    readFaults: number;
    writeFaults: number;
    misdirectedWrites: number;
    tornWrites: number;
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
    faults: StorageFaultOptions = noStorageFaults;
    atlas: FaultAtlas | null = null;
    /** One byte per sector: 1 while a latent error or a corrupt write sits there. */
    private readonly badSectors: Uint8Array;
    readonly stats: StorageStats = {
        readFaults: 0,
        writeFaults: 0,
        misdirectedWrites: 0,
        tornWrites: 0,
    };

    constructor(options: StorageOptions, arena: Arena, prng: PRNG) {
        assert(options.sizeBytes % sectorSize === 0);
        assert(options.iopsMax > 0);
        this.sizeBytes = options.sizeBytes;
        this.data = new Uint8Array(options.sizeBytes);
        this.badSectors = new Uint8Array(options.sizeBytes / sectorSize);
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
        assertStorageIo(this, this.arena.sizeBytes, bufferOffset, size, offset);
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
        if (this.writes[slot] === 1) {
            this.completeWrite(bufferOffset, size, offset);
            this.writesCompleted++;
        } else {
            this.completeRead(bufferOffset, size, offset);
            this.readsCompleted++;
        }
        this.completions[slot] = null;
        this.pendingCount--;
        completion.result = IoResult.ok;
        completion.callback(completion);
    }

    private completeWrite(bufferOffset: number, size: number, offset: number): void {
        const atlas = this.atlas;
        let target = offset;
        if (atlas !== null && this.prng.chance(this.faults.misdirectProbability)) {
            const misdirected = atlas.misdirectTarget(offset, size);
            if (misdirected >= 0) {
                target = misdirected;
                this.stats.misdirectedWrites++;
            }
        }
        this.writeSectors(bufferOffset, size, target);
        const faultable = atlas !== null && atlas.faultable(target, size);
        if (faultable && this.prng.chance(this.faults.writeFaultProbability)) {
            this.corruptSector(target + this.prng.int(size / sectorSize) * sectorSize);
            this.stats.writeFaults++;
        }
    }

    private completeRead(bufferOffset: number, size: number, offset: number): void {
        const atlas = this.atlas;
        if (
            atlas !== null &&
            atlas.faultable(offset, size) &&
            this.prng.chance(this.faults.readFaultProbability)
        ) {
            this.corruptSector(offset + this.prng.int(size / sectorSize) * sectorSize);
            this.stats.readFaults++;
        }
        copyWords(this.dataWords, offset >> 2, this.arenaWords, bufferOffset >> 2, size >> 2);
        // Bad sectors read back corrupted: one byte flipped at a position derived from the
        // sector's index, so a re-read gives the same wrong bytes (a latent sector error).
        for (let sector = offset / sectorSize; sector < (offset + size) / sectorSize; sector++) {
            if (this.badSectors[sector] === 0) continue;
            // Within the sector's first 512 bytes: where a prepare's header and body start, so
            // that a fault lands on bytes that matter rather than on zero padding.
            const within = (sector * 7919) % 512;
            const position = bufferOffset + (sector * sectorSize - offset) + within;
            this.arena.bytes[position] = (this.arena.bytes[position] ?? 0) ^ 0x5a;
        }
    }

    /** Copies a written range to the disk image; rewritten sectors are good again (remapped). */
    private writeSectors(bufferOffset: number, size: number, offset: number): void {
        copyWords(this.arenaWords, bufferOffset >> 2, this.dataWords, offset >> 2, size >> 2);
        this.badSectors.fill(0, offset / sectorSize, (offset + size) / sectorSize);
    }

    private corruptSector(offset: number): void {
        this.badSectors[offset / sectorSize] = 1;
    }

    /**
     * The process dies: every I/O in flight is abandoned without a completion. Each write in
     * flight is lost, completed, or (with crashTornProbability) torn: some of its sectors land.
     */
    crash(): void {
        for (let slot = 0; slot < this.completions.length; slot++) {
            if (this.completions[slot] === null) continue;
            if (this.writes[slot] === 1) this.crashWrite(slot);
            this.completions[slot] = null;
        }
        this.pendingCount = 0;
    }

    private crashWrite(slot: number): void {
        const bufferOffset = this.bufferOffsets[slot] ?? 0;
        const size = this.sizes[slot] ?? 0;
        const offset = this.offsets[slot] ?? 0;
        const tearable = this.atlas === null || this.atlas.tearable(offset, size);
        if (tearable && this.prng.chance(this.faults.crashTornProbability)) {
            this.stats.tornWrites++;
            for (let sector = 0; sector < size / sectorSize; sector++) {
                if (this.prng.chance(0.5)) {
                    this.writeSectors(
                        bufferOffset + sector * sectorSize,
                        sectorSize,
                        offset + sector * sectorSize,
                    );
                }
            }
            // A torn single-sector write lands partially: the sector is left corrupt.
            if (size === sectorSize) this.corruptSector(offset);
            return;
        }
        if (this.prng.chance(0.5)) this.writeSectors(bufferOffset, size, offset);
    }

    /** True when any sector in the range is bad (for the atlas's bookkeeping in tests). */
    badSectorCount(): number {
        let count = 0;
        for (let sector = 0; sector < this.badSectors.length; sector++)
            count += this.badSectors[sector] ?? 0;
        return count;
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
