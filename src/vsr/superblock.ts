// The superblock: the replica's durable VSR state (view, log_view, the latest checkpoint and the
// log suffix of log_view), kept in `superblockCopies` copies at the start of the data file.
// Every update writes all copies one at a time with the next sequence number; open reads all
// copies and takes the valid copy with the highest sequence. A replica acts on a new view only
// once the superblock that records it is durable, so a crash never makes it forget a promise.
// Open reads every copy in one read; if that read fails (EIO on one sector), it reads the copies
// one by one and skips those that fail, so one bad sector costs one copy, not the superblock.
// Open fails only when no copy is valid: `corrupt` then says whether the zone held anything at
// all (a corrupt file, to be reformatted and synced from peers) or nothing (never formatted).
// When the copies disagree (a write cut short by a crash, a corrupt or unreadable copy), open
// rewrites every copy with the chosen image (same sequence) before it reports success: the
// replica acts on what it chose, so a crash in the next write (tearing the one copy that held
// it) must not bring back an older image.
//
// Copy layout (2 sectors = 8 KiB, little-endian):
//    0 checksum u128 (covers bytes 32..8192)    16 copy index u8 (excluded: copies are equal)
//   32 version u32   36 cluster u32   40 replica u8   41 replica_count u8
//   48 sequence u64  64 parent u128 (checksum of the previous superblock)
//   80 view u32   84 log_view u32   88 checkpoint_op u64   96 commit_max u64
//  104 checkpoint_copy u32   108 view_headers_count u32
//  112 checkpoint_op_checksum u128 (the prepare at checkpoint_op: the hash chain's anchor)
//  128 index_checksum u128 (the block index)   144 sessions_checksum u128   160 checkpoint_size u32
//  168 log_view_op u64 (the head when log_view's log was installed: WAL entries above it from
//      older views were truncated in memory before a crash)
//  176 kv_entries_max u32 (the KV table's capacity, chosen by `vsr format --kv-entries`)
//  4096.. view headers: the log suffix (newest first) when log_view was set, 256 B each.
// Worked example: copy 2 of the test preset's file lives at bytes 16384..24575.

import { assert } from "../stdx/assert.js";
import { headerSize, sectorSize } from "../constants.js";
import type { Allocator } from "./arena.js";
import { checksum, checksumEquals } from "./checksum.js";
import { readU64, writeU64 } from "./header.js";
import { IoResult, type Storage, type StorageCompletion } from "./interfaces.js";
import { superblockCopies, superblockCopySize } from "./layout.js";

/** 2: the KV image as grid blocks under a block index (1: whole images). */
export const formatVersion = 2;
/** The operator's one line when no superblock copy survives (the replica refuses to start). */
export const superblockCorruptError =
    "every superblock copy is corrupt: reformat this data file (vsr format, same flags) " +
    "and start it again; it will sync from its peers";
export const viewHeadersMax = sectorSize / headerSize;

export const SuperblockField = {
    checksum: 0,
    copy: 16,
    version: 32,
    cluster: 36,
    replica: 40,
    replicaCount: 41,
    sequence: 48,
    parent: 64,
    view: 80,
    logView: 84,
    checkpointOp: 88,
    commitMax: 96,
    checkpointCopy: 104,
    viewHeadersCount: 108,
    checkpointOpChecksum: 112,
    indexChecksum: 128,
    sessionsChecksum: 144,
    checkpointSize: 160,
    logViewOp: 168,
    kvEntriesMax: 176,
    viewHeaders: sectorSize,
} as const;

/** Why a superblock copy at `base` is not valid for this replica, or null. */
export function invalidSuperblockCopy(
    bytes: Uint8Array,
    view: DataView,
    base: number,
): string | null {
    if (!checksumEquals(bytes, base + 32, superblockCopySize - 32, bytes, base)) return "checksum";
    for (let offset = base + SuperblockField.copy + 1; offset < base + 32; offset++) {
        if (bytes[offset] !== 0) return "reserved";
    }
    if (view.getUint32(base + SuperblockField.version, true) !== formatVersion) return "version";
    if (view.getUint32(base + SuperblockField.viewHeadersCount, true) > viewHeadersMax) {
        return "view headers count";
    }
    if (view.getUint32(base + SuperblockField.checkpointCopy, true) > 1) return "checkpoint copy";
    return null;
}

/** Seals a superblock image built at `base`: copy index, then checksum (over bytes 32..). */
export function sealSuperblockCopy(bytes: Uint8Array, view: DataView, base: number, copy: number) {
    view.setUint8(base + SuperblockField.copy, copy);
    checksum(bytes, base + 32, superblockCopySize - 32, bytes, base + SuperblockField.checksum);
}

class SuperblockIo implements StorageCompletion {
    result: IoResult = IoResult.ok;
    readonly superblock: Superblock;

    constructor(superblock: Superblock) {
        this.superblock = superblock;
    }

    callback(completion: StorageCompletion): void {
        assert(completion === this);
        this.superblock.ioCallback();
    }
}

/**
 * The durable copy of the VSR state. The owner edits the `staged` image (through the setters),
 * then calls write(); `durable` is the image of the last completed write. One I/O at a time.
 */
export class Superblock {
    private readonly storage: Storage;
    private readonly bytes: Uint8Array;
    private readonly view: DataView;
    /** Arena offset of the image being written (and, during open, of the copies read). */
    readonly staged: number;
    /** Arena offset of the image of the last durable write (or the one chosen at open). */
    readonly durable: number;
    /** Arena offset of the read buffer: all copies, one after the other. */
    private readonly readBuffer: number;
    private readonly io: SuperblockIo;
    private copy = 0;
    private reading = false;
    /** Open's fallback: reading copy `copy` alone (the read of all copies failed). */
    private readingCopies = false;
    /** Per copy during open: 1 when its read failed. */
    private readonly copyReadFailed: Uint8Array;
    /** After a failed open: some copy held non-zero bytes (corrupt, not unformatted). */
    corrupt = false;
    /** Copies skipped at open because their read failed (latent sector errors). */
    copyReadErrors = 0;
    writing = false;
    private doneCallback: ((ok: boolean) => void) | null = null;
    writeErrors = 0;
    /** Some copy write of the write in flight failed. */
    private writeFailed = false;
    /** The write in flight is open's repair of disagreeing copies (best effort). */
    private repairing = false;

    constructor(allocator: Allocator, storage: Storage) {
        this.storage = storage;
        this.bytes = allocator.bytes;
        this.view = allocator.view;
        this.staged = allocator.allocate(superblockCopySize, sectorSize);
        this.durable = allocator.allocate(superblockCopySize, sectorSize);
        this.readBuffer = allocator.allocate(superblockCopies * superblockCopySize, sectorSize);
        this.copyReadFailed = new Uint8Array(superblockCopies);
        this.io = new SuperblockIo(this);
    }

    u32(offset: number, field: number): number {
        return this.view.getUint32(offset + field, true);
    }

    u64(offset: number, field: number): number {
        return readU64(this.view, offset + field);
    }

    setU8(field: number, value: number): void {
        this.view.setUint8(this.staged + field, value);
    }

    setU32(field: number, value: number): void {
        this.view.setUint32(this.staged + field, value, true);
    }

    setU64(field: number, value: number): void {
        writeU64(this.view, this.staged + field, value);
    }

    /** Copies 16 bytes from the arena into the staged image's field. */
    setU128(field: number, sourceOffset: number): void {
        this.bytes.copyWithin(this.staged + field, sourceOffset, sourceOffset + 16);
    }

    /** Writes every copy of the staged image (sequence = durable sequence + 1). */
    write(callback: (ok: boolean) => void): void {
        assert(!this.writing && !this.reading);
        this.writing = true;
        this.writeFailed = false;
        this.doneCallback = callback;
        const sequence = this.u64(this.durable, SuperblockField.sequence) + 1;
        writeU64(this.view, this.staged + SuperblockField.sequence, sequence);
        this.bytes.copyWithin(
            this.staged + SuperblockField.parent,
            this.durable + SuperblockField.checksum,
            this.durable + SuperblockField.checksum + 16,
        );
        this.copy = 0;
        this.writeCopy();
    }

    private writeCopy(): void {
        sealSuperblockCopy(this.bytes, this.view, this.staged, this.copy);
        this.storage.write(
            this.io,
            this.staged,
            superblockCopySize,
            this.copy * superblockCopySize,
        );
    }

    /** Reads every copy and chooses the valid one with the highest sequence (into `durable`). */
    open(callback: (ok: boolean) => void): void {
        assert(!this.writing && !this.reading);
        this.reading = true;
        this.readingCopies = false;
        this.copyReadFailed.fill(0);
        this.corrupt = false;
        this.doneCallback = callback;
        this.storage.read(this.io, this.readBuffer, superblockCopies * superblockCopySize, 0);
    }

    ioCallback(): void {
        const callback = this.doneCallback;
        assert(callback !== null);
        if (this.reading) {
            if (!this.openReadNext()) return;
            this.reading = false;
            const ok = this.chooseNewest();
            if (ok && this.copiesAgreeing < superblockCopies) return this.openRepair();
            this.doneCallback = null;
            callback(ok);
            return;
        }
        assert(this.writing);
        if (this.io.result !== IoResult.ok) {
            this.writeErrors++;
            this.writeFailed = true;
        }
        this.copy++;
        if (this.copy < superblockCopies) return this.writeCopy();
        this.writing = false;
        this.doneCallback = null;
        if (this.repairing) {
            // The chosen image is durable already (in at least one valid copy): a failed repair
            // leaves copies disagreeing, which the next write (of every copy) resolves.
            this.repairing = false;
            return callback(true);
        }
        // A failed copy write means the staged state may not be durable: the caller must not
        // act on it, and writes again (durable keeps the last image known to be on disk).
        if (this.writeFailed) return callback(false);
        this.bytes.copyWithin(this.durable, this.staged, this.staged + superblockCopySize);
        callback(true);
    }

    /**
     * After an open read completes: starts the next per-copy read when the read of all copies
     * failed (or a per-copy read is done and copies remain); returns true once all are read.
     */
    private openReadNext(): boolean {
        const failed = this.io.result !== IoResult.ok;
        if (!this.readingCopies) {
            if (!failed) return true;
            this.readingCopies = true;
            this.copy = 0;
        } else {
            if (failed) {
                this.copyReadFailed[this.copy] = 1;
                this.copyReadErrors++;
            }
            this.copy++;
            if (this.copy === superblockCopies) return true;
        }
        const offset = this.copy * superblockCopySize;
        this.storage.read(this.io, this.readBuffer + offset, superblockCopySize, offset);
        return false;
    }

    /** Open's repair: writes the chosen image (staged, its sequence kept) to every copy. */
    private openRepair(): void {
        assert(!this.writing && !this.reading);
        this.writing = true;
        this.writeFailed = false;
        this.repairing = true;
        this.copy = 0;
        this.copiesRepaired++;
        this.writeCopy();
    }

    /** Opens that found the copies disagreeing and rewrote them. */
    copiesRepaired = 0;
    /** After chooseNewest: copies valid and identical to the chosen one. */
    private copiesAgreeing = 0;

    private chooseNewest(): boolean {
        let best = -1;
        let bestSequence = -1;
        for (let copy = 0; copy < superblockCopies; copy++) {
            const base = this.readBuffer + copy * superblockCopySize;
            if (this.copyReadFailed[copy] === 1) {
                this.corrupt = true;
                continue;
            }
            if (
                invalidSuperblockCopy(this.bytes, this.view, base) !== null ||
                this.view.getUint8(base + SuperblockField.copy) !== copy // Misdirected.
            ) {
                if (!allZero(this.bytes, base, superblockCopySize)) this.corrupt = true;
                continue;
            }
            const sequence = this.u64(base, SuperblockField.sequence);
            if (sequence > bestSequence) {
                best = base;
                bestSequence = sequence;
            }
        }
        if (best < 0) return false;
        this.corrupt = false;
        this.copiesAgreeing = 0;
        for (let copy = 0; copy < superblockCopies; copy++) {
            const base = this.readBuffer + copy * superblockCopySize;
            if (this.copyReadFailed[copy] === 1) continue;
            if (checksumEquals(this.bytes, best + 32, superblockCopySize - 32, this.bytes, base)) {
                this.copiesAgreeing++;
            }
        }
        this.bytes.copyWithin(this.durable, best, best + superblockCopySize);
        this.bytes.copyWithin(this.staged, best, best + superblockCopySize);
        return true;
    }
}

function allZero(bytes: Uint8Array, offset: number, size: number): boolean {
    for (let index = offset; index < offset + size; index++) if (bytes[index] !== 0) return false;
    return true;
}
