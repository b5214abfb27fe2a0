// The data file's zones, computed from the configuration. Every zone starts and ends on a sector
// boundary, so every read and write of the replica is sector-aligned in offset and length.
//
//   superblock copies | WAL headers ring | WAL prepares ring | client replies | checkpoints | grid
//
// Worked example (test preset: 64 slots, 4 KiB messages, 7 clients, 256 KV entries): superblock
// 4 × 8 KiB = 32 KiB at 0; WAL headers 64 × 256 B = 16 KiB at 32 KiB; WAL prepares 64 × 4 KiB =
// 256 KiB at 48 KiB; client replies 2 × 7 × 4 KiB = 56 KiB at 304 KiB; two checkpoint copies
// (block index 4 KiB + client table 4 KiB) = 16 KiB at 360 KiB; grid 23 × 4 KiB at 376 KiB.
//
// The grid holds the KV table as a log of slot records in fixed-size blocks (see grid.ts). Its
// size: T = ceil(slots / recordsPerBlock) blocks hold one record per slot. A checkpoint's index
// is kept at ≤ 2T blocks (cleaning compacts it), and the blocks a checkpoint writes (each slot at
// most once: the delta plus the cleaned slots) number ≤ T; they must avoid the blocks of the
// durable index (≤ 2T), so 3T blocks always suffice. The 2T bound on the index is what lets
// cleaning work in small steps: at most half of the index's records may be garbage.

import { assert } from "../stdx/assert.js";
import { type Config, headerSize, sectorSize } from "../constants.js";

export const superblockCopies = 4;
export const superblockCopySize = 2 * sectorSize;

/** Bytes of the state machine image's header (copied whole into each block index). */
export const imageHeaderSize = 64;
/** Bytes of a grid block's header and of a block index's header (see grid.ts). */
export const gridBlockHeaderSize = 64;
export const blockIndexHeaderSize = 128;
export const blockIndexEntrySize = 32;
/** Tables of at least this many slots use large blocks (fewer index entries per byte). */
const largeBlockSlotsMin = 1 << 16;

export interface Layout {
    readonly superblockOffset: number;
    readonly walHeadersOffset: number;
    readonly walHeadersSize: number;
    readonly walPreparesOffset: number;
    readonly walPreparesSize: number;
    /** Two halves, one per checkpoint copy: copy c's reply of entry e is slot c * clients + e. */
    readonly clientRepliesOffset: number;
    readonly clientRepliesSize: number;
    readonly checkpointOffset: number;
    /** Per copy: the block index, then the serialized client table. */
    readonly checkpointCopySize: number;
    readonly checkpointIndexSize: number;
    readonly checkpointSessionsSize: number;
    readonly gridOffset: number;
    readonly gridBlockSize: number;
    readonly gridBlockCount: number;
    /** Slot records per block: a record is the slot index (u32) and the slot's bytes. */
    readonly gridRecordsPerBlock: number;
    readonly gridRecordSize: number;
    /** Blocks a block index may name (2T, see above). */
    readonly gridIndexBlocksMax: number;
    /** Slots of the state machine image, and its size. */
    readonly kvSlotCount: number;
    readonly kvImageSize: number;
    readonly totalSize: number;
}

/** Serialized client-table entry size (see ClientSessions.serialize). */
export const sessionEntrySize = 64;

/**
 * The zones for a state machine image of `kvImageSize` bytes: a 64-byte header and
 * `kvSlotCount` slots of equal size (by default the config's KV entries).
 */
export function layout(
    config: Config,
    kvImageSize: number,
    kvSlotCount: number = config.kvEntriesMax,
): Layout {
    assert(kvSlotCount >= 1);
    // 0: no state machine at all (journal tests): an empty grid.
    assert(kvImageSize === 0 || kvImageSize > imageHeaderSize);
    assert(kvImageSize === 0 || (kvImageSize - imageHeaderSize) % kvSlotCount === 0);
    const superblockOffset = 0;
    const walHeadersOffset = superblockOffset + superblockCopies * superblockCopySize;
    const walHeadersSize = alignUp(config.journalSlotCount * headerSize);
    const walPreparesOffset = walHeadersOffset + walHeadersSize;
    const walPreparesSize = config.journalSlotCount * config.messageSizeMax;
    const clientRepliesOffset = walPreparesOffset + walPreparesSize;
    const clientRepliesSize = 2 * config.clientsMax * config.messageSizeMax;
    const checkpointOffset = clientRepliesOffset + clientRepliesSize;
    const grid = kvImageSize === 0 ? gridEmpty : gridGeometry(kvImageSize, kvSlotCount);
    const checkpointIndexSize = alignUp(
        blockIndexHeaderSize + grid.indexBlocksMax * blockIndexEntrySize,
    );
    const checkpointSessionsSize = alignUp(config.clientsMax * sessionEntrySize);
    const checkpointCopySize = checkpointIndexSize + checkpointSessionsSize;
    const gridOffset = checkpointOffset + 2 * checkpointCopySize;
    const totalSize = gridOffset + grid.blockCount * grid.blockSize;
    assert(totalSize % sectorSize === 0);
    return {
        superblockOffset,
        walHeadersOffset,
        walHeadersSize,
        walPreparesOffset,
        walPreparesSize,
        clientRepliesOffset,
        clientRepliesSize,
        checkpointOffset,
        checkpointCopySize,
        checkpointIndexSize,
        checkpointSessionsSize,
        gridOffset,
        gridBlockSize: grid.blockSize,
        gridBlockCount: grid.blockCount,
        gridRecordsPerBlock: grid.recordsPerBlock,
        gridRecordSize: grid.recordSize,
        gridIndexBlocksMax: grid.indexBlocksMax,
        kvSlotCount,
        kvImageSize,
        totalSize,
    };
}

interface GridGeometry {
    readonly blockSize: number;
    readonly recordSize: number;
    readonly recordsPerBlock: number;
    readonly indexBlocksMax: number;
    readonly blockCount: number;
}

const gridEmpty: GridGeometry = {
    blockSize: sectorSize,
    recordSize: 4,
    recordsPerBlock: 0,
    indexBlocksMax: 0,
    blockCount: 0,
};

function gridGeometry(kvImageSize: number, kvSlotCount: number): GridGeometry {
    const blockSize = kvSlotCount >= largeBlockSlotsMin ? 16 * sectorSize : sectorSize;
    const recordSize = 4 + (kvImageSize - imageHeaderSize) / kvSlotCount;
    const recordsPerBlock = Math.floor((blockSize - gridBlockHeaderSize) / recordSize);
    assert(recordsPerBlock >= 1);
    // e.g. 256 slots of 104 B: records of 108 B, 37 per 4 KiB block, T = 7, 21 blocks + 2.
    const tableBlocks = Math.ceil(kvSlotCount / recordsPerBlock);
    const indexBlocksMax = 2 * tableBlocks;
    // 3T suffice (see the file's opening block); two more are slack, asserted never needed.
    const blockCount = 3 * tableBlocks + 2;
    return { blockSize, recordSize, recordsPerBlock, indexBlocksMax, blockCount };
}

export function alignUp(size: number): number {
    return Math.ceil(size / sectorSize) * sectorSize;
}
