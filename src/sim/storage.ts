// Simulated storage: the data file as a byte array in memory, with seeded latency per I/O.
// Reads and writes complete out of order after their latency (a write becomes visible, and
// durable, only at completion), from tick(), never synchronously from the submit. Offsets,
// sizes and buffers are asserted sector-aligned, exactly as the direct-I/O implementation needs,
// so the simulator catches an unaligned access the real disk would refuse.
//
// Fault model, each drawn per seed and applied one sector at a time, only where the fault atlas
// (ReplicaAtlas below) says the cluster survives it. Every zone is faulted:
// - superblock: any copy but one per replica, which is never torn by a crash either (so a
//   replica always keeps one good, newest copy);
// - WAL headers and WAL prepares: a slot (its prepare and its header sector) is faultable on
//   one replica only, fewer than a replication quorum, so an intact copy of every acknowledged
//   prepare survives; multi-sector reads (recovery reads the whole header ring at once) fault
//   whichever sector the fault lands on;
// - client replies: entry e of the client table on replica e mod replicaCount only (three or
//   more replicas), so every reply survives on a peer;
// - checkpoints and grid (block indexes and client tables in the checkpoint copies, grid
//   blocks in the grid): on one replica of the cluster only (the last), which repairs its grid
//   blocks from a peer by (address, checksum), or state-syncs from one.
// Kinds of fault:
// - latent sector errors: a read marks one sector of its range bad; reads of a bad sector
//   either return it corrupted (one byte flipped, the same way every time) or fail whole with
//   IoResult.error (EIO, as a disk does), until the sector is rewritten;
// - write corruption: a write lands with one sector corrupted (persistently, as above);
// - write errors: a write fails with IoResult.error (EIO) after none of it, or (where a crash
//   could tear it) a prefix of its sectors, landed; only in zones whose writer retries until a
//   write succeeds (every zone's writer does: see FaultAtlas.writeRetried);
// - misdirected writes: a write lands at another offset of the same zone (the caller names the
//   alternative through the atlas) and the intended place keeps its old bytes;
// - crashes: each write in flight is lost, completed, or torn (a random subset of its sectors
//   written); no completion is ever delivered for an I/O in flight at a crash.
// Faults are counted per zone (stats.zoneFaults, in Zone order).

import { assert } from "../stdx/assert.js";
import type { PRNG } from "../stdx/prng.js";
import { type Config, headerSize, sectorSize } from "../constants.js";
import type { Arena } from "../vsr/arena.js";
import { type Layout, superblockCopies, superblockCopySize } from "../vsr/layout.js";
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
    /** A write fails with EIO (see the fault model above). */
    readonly writeErrorProbability: number;
}

export const noStorageFaults: StorageFaultOptions = {
    readFaultProbability: 0,
    writeFaultProbability: 0,
    misdirectProbability: 0,
    crashTornProbability: 0,
    writeErrorProbability: 0,
};

/** The data file's zones, for the atlas and the per-zone fault counters. */
export const Zone = {
    superblock: 0,
    walHeaders: 1,
    walPrepares: 2,
    clientReplies: 3,
    checkpoints: 4,
    grid: 5,
} as const;
export const zoneCount = 6;
/** Zone names as reported by `vsr sim --json` (faults.zones), in Zone order. */
export const zoneNames: readonly string[] = [
    "superblock",
    "wal_headers",
    "wal_prepares",
    "client_replies",
    "checkpoints",
    "grid",
];

/** What a bad sector does when read: come back corrupted, or fail the whole read (EIO). */
const SectorFault = { none: 0, corrupt: 1, eio: 2 } as const;

/** Where faults may land (the cluster's atlas); `misdirectTarget` returns -1 when none may. */
export interface FaultAtlas {
    /** The zone (a Zone value) of the sector at `offset`. */
    zone(offset: number): number;
    /** Whether a fault may land on the one sector at `offset`. */
    faultable(offset: number): boolean;
    /** Whether a write in flight at a crash may be torn here (else it is lost or lands whole). */
    tearable(offset: number, size: number): boolean;
    /** Whether the zone's writer retries a failed write (so an EIO may be returned there). */
    writeRetried(offset: number): boolean;
    misdirectTarget(offset: number, size: number): number;
}

export interface StorageStats {
    readFaults: number;
    writeFaults: number;
    /** Writes failed with EIO. */
    writeErrors: number;
    misdirectedWrites: number;
    tornWrites: number;
    /** Read and write faults placed, per zone (Zone order). */
    readonly zoneFaults: Float64Array;
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
    /** One byte per sector: a SectorFault while a latent error or a corrupt write sits there. */
    private readonly badSectors: Uint8Array;
    readonly stats: StorageStats = {
        readFaults: 0,
        writeFaults: 0,
        writeErrors: 0,
        misdirectedWrites: 0,
        tornWrites: 0,
        zoneFaults: new Float64Array(zoneCount),
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
        let result: IoResult = IoResult.ok;
        if (this.writes[slot] === 1) {
            result = this.completeWrite(bufferOffset, size, offset);
            this.writesCompleted++;
        } else {
            result = this.completeRead(bufferOffset, size, offset);
            this.readsCompleted++;
        }
        this.completions[slot] = null;
        this.pendingCount--;
        completion.result = result;
        completion.callback(completion);
    }

    private completeWrite(bufferOffset: number, size: number, offset: number): IoResult {
        const atlas = this.atlas;
        if (
            atlas !== null &&
            this.faults.writeErrorProbability > 0 &&
            atlas.writeRetried(offset) &&
            this.prng.chance(this.faults.writeErrorProbability)
        ) {
            this.writeError(bufferOffset, size, offset, atlas);
            return IoResult.error;
        }
        let target = offset;
        if (atlas !== null && this.prng.chance(this.faults.misdirectProbability)) {
            const misdirected = atlas.misdirectTarget(offset, size);
            if (misdirected >= 0) {
                target = misdirected;
                this.stats.misdirectedWrites++;
            }
        }
        this.writeSectors(bufferOffset, size, target);
        if (atlas !== null && this.prng.chance(this.faults.writeFaultProbability)) {
            const sector = target + this.prng.int(size / sectorSize) * sectorSize;
            if (atlas.faultable(sector)) {
                this.corruptSector(sector, SectorFault.corrupt);
                this.stats.writeFaults++;
                this.stats.zoneFaults[atlas.zone(sector)]! += 1;
            }
        }
        return IoResult.ok;
    }

    /** An EIO: nothing lands, or (where a crash could tear the write) a prefix of its sectors. */
    private writeError(
        bufferOffset: number,
        size: number,
        offset: number,
        atlas: FaultAtlas,
    ): void {
        this.stats.writeErrors++;
        this.stats.zoneFaults[atlas.zone(offset)]! += 1;
        if (!atlas.tearable(offset, size)) return;
        const sectors = this.prng.int(size / sectorSize);
        if (sectors > 0) this.writeSectors(bufferOffset, sectors * sectorSize, offset);
    }

    /** Copies the range to the arena; a bad sector comes back corrupted, or fails it (EIO). */
    private completeRead(bufferOffset: number, size: number, offset: number): IoResult {
        const atlas = this.atlas;
        if (atlas !== null && this.prng.chance(this.faults.readFaultProbability)) {
            // One sector of the range, wherever it lies: a multi-sector read (the superblock's
            // copies, the WAL header ring at recovery) is hit like any other.
            const sector = offset + this.prng.int(size / sectorSize) * sectorSize;
            if (atlas.faultable(sector)) {
                const eio = this.prng.chance(0.5);
                this.corruptSector(sector, eio ? SectorFault.eio : SectorFault.corrupt);
                this.stats.readFaults++;
                this.stats.zoneFaults[atlas.zone(sector)]! += 1;
            }
        }
        copyWords(this.dataWords, offset >> 2, this.arenaWords, bufferOffset >> 2, size >> 2);
        let result: IoResult = IoResult.ok;
        // Bad sectors read back corrupted: one byte flipped at a position derived from the
        // sector's index, so a re-read gives the same wrong bytes (a latent sector error).
        for (let sector = offset / sectorSize; sector < (offset + size) / sectorSize; sector++) {
            const fault = this.badSectors[sector] ?? SectorFault.none;
            if (fault === SectorFault.none) continue;
            if (fault === SectorFault.eio) result = IoResult.error;
            // Within the sector's first 512 bytes: where a prepare's header and body start, so
            // that a fault lands on bytes that matter rather than on zero padding.
            const within = (sector * 7919) % 512;
            const position = bufferOffset + (sector * sectorSize - offset) + within;
            this.arena.bytes[position] = (this.arena.bytes[position] ?? 0) ^ 0x5a;
        }
        return result;
    }

    /** Copies a written range to the disk image; rewritten sectors are good again (remapped). */
    private writeSectors(bufferOffset: number, size: number, offset: number): void {
        copyWords(this.arenaWords, bufferOffset >> 2, this.dataWords, offset >> 2, size >> 2);
        this.badSectors.fill(0, offset / sectorSize, (offset + size) / sectorSize);
    }

    private corruptSector(offset: number, fault: number): void {
        assert(fault === SectorFault.corrupt || fault === SectorFault.eio);
        this.badSectors[offset / sectorSize] = fault;
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
            if (size === sectorSize) this.corruptSector(offset, SectorFault.corrupt);
            return;
        }
        if (this.prng.chance(0.5)) this.writeSectors(bufferOffset, size, offset);
    }

    /** Bad sectors (latent errors and corrupt writes) on the disk now, for tests. */
    badSectorCount(): number {
        let count = 0;
        for (let sector = 0; sector < this.badSectors.length; sector++) {
            if (this.badSectors[sector] !== SectorFault.none) count++;
        }
        return count;
    }
}

const headersPerSector = sectorSize / headerSize;

/**
 * The fault atlas of one replica of a cluster: where a fault may land so that the cluster
 * survives it (see the fault model at the top of this file).
 */
export class ReplicaAtlas implements FaultAtlas {
    private readonly replica: number;
    private readonly replicaCount: number;
    private readonly dataLayout: Layout;
    private readonly messageSizeMax: number;
    private readonly clientsMax: number;

    constructor(replica: number, replicaCount: number, dataLayout: Layout, config: Config) {
        assert(replica >= 0 && replica < replicaCount);
        assert(dataLayout.walHeadersOffset === superblockCopies * superblockCopySize);
        this.replica = replica;
        this.replicaCount = replicaCount;
        this.dataLayout = dataLayout;
        this.messageSizeMax = config.messageSizeMax;
        this.clientsMax = config.clientsMax;
    }

    zone(offset: number): number {
        const zones = this.dataLayout;
        assert(offset >= 0 && offset < zones.totalSize);
        if (offset < zones.walHeadersOffset) return Zone.superblock;
        if (offset < zones.walPreparesOffset) return Zone.walHeaders;
        if (offset < zones.clientRepliesOffset) return Zone.walPrepares;
        if (offset < zones.checkpointOffset) return Zone.clientReplies;
        if (offset < zones.gridOffset) return Zone.checkpoints;
        return Zone.grid;
    }

    /** One replica of two or more owns each index: fewer than any replication quorum. */
    private owner(index: number): boolean {
        return this.replicaCount >= 2 && index % this.replicaCount === this.replica;
    }

    faultable(offset: number): boolean {
        assert(offset % sectorSize === 0);
        const zones = this.dataLayout;
        switch (this.zone(offset)) {
            case Zone.superblock:
                // Every copy but one: the untouched copy holds the newest durable superblock.
                return Math.floor(offset / superblockCopySize) !== this.replica % superblockCopies;
            case Zone.walHeaders:
                return this.owner((offset - zones.walHeadersOffset) / sectorSize);
            case Zone.walPrepares: {
                const slot = Math.floor((offset - zones.walPreparesOffset) / this.messageSizeMax);
                return this.owner(Math.floor(slot / headersPerSector));
            }
            case Zone.clientReplies: {
                // With two replicas a reply lost on one might also be missing on the other
                // (state-synced from the first before it repaired it): three or more only.
                const slot = Math.floor((offset - zones.clientRepliesOffset) / this.messageSizeMax);
                return this.replicaCount >= 3 && this.owner(slot % this.clientsMax);
            }
            default:
                // One replica's checkpoints (block indexes, client tables and grid blocks) only:
                // its peers keep good ones to sync it from.
                return this.replicaCount >= 2 && this.replica === this.replicaCount - 1;
        }
    }

    /**
     * Torn writes follow the atlas in the WAL (a prepare torn on every replica could be one
     * they all acknowledged, or block a view change) and in the superblock (a tear of the one
     * copy faults never touch, beside faulted others, would leave no valid copy); elsewhere
     * they are always survivable.
     */
    tearable(offset: number, size: number): boolean {
        assert(size > 0);
        const zone = this.zone(offset);
        if (zone === Zone.clientReplies || zone === Zone.checkpoints || zone === Zone.grid) {
            return true;
        }
        return this.faultable(offset);
    }

    /**
     * Every writer retries a failed write until one succeeds and acts on nothing it carried
     * before: the superblock, the WAL, and the checkpointer (checkpoint copies, client replies,
     * grid blocks).
     */
    writeRetried(offset: number): boolean {
        assert(this.zone(offset) < zoneCount);
        return true;
    }

    misdirectTarget(offset: number, size: number): number {
        if (this.zone(offset) !== Zone.walPrepares || !this.faultable(offset)) return -1;
        const prepares = this.dataLayout.walPreparesOffset;
        const slot = Math.floor((offset - prepares) / this.messageSizeMax);
        assert(Math.floor((offset + size - 1 - prepares) / this.messageSizeMax) === slot);
        // Two replicas too: a backup acknowledges a prepare only once its header sector landed
        // as well (journal.ts), so a misdirected prepare leaves "header without its prepare"
        // (faulty, never nacked), not "an older op", which one nack would truncate. Storm
        // seeds 1-300 with --replicas=2 pass with misdirects on.
        if (this.replicaCount <= 1) return -1;
        // Another slot of the same header sector: one this replica may have faulty as well.
        const first = slot - (slot % headersPerSector);
        const target = first + ((slot - first + 1) % headersPerSector);
        return offset + (target - slot) * this.messageSizeMax;
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
