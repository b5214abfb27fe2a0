// The data file's zones, computed from the configuration. Every zone starts and ends on a sector
// boundary, so every read and write of the replica is sector-aligned in offset and length.
//
//   superblock copies | WAL headers ring | WAL prepares ring | client replies | checkpoints
//
// Worked example (test preset: 64 slots, 4 KiB messages, 7 clients): superblock 4 × 8 KiB =
// 32 KiB at 0; WAL headers 64 × 256 B = 16 KiB at 32 KiB; WAL prepares 64 × 4 KiB = 256 KiB at
// 48 KiB; client replies 7 × 4 KiB = 28 KiB at 304 KiB; then two checkpoint copies.

import { assert } from "../stdx/assert.js";
import { type Config, headerSize, sectorSize } from "../constants.js";

export const superblockCopies = 4;
export const superblockCopySize = 2 * sectorSize;

export interface Layout {
    readonly superblockOffset: number;
    readonly walHeadersOffset: number;
    readonly walHeadersSize: number;
    readonly walPreparesOffset: number;
    readonly walPreparesSize: number;
    readonly clientRepliesOffset: number;
    readonly clientRepliesSize: number;
    readonly checkpointOffset: number;
    readonly checkpointCopySize: number;
    readonly totalSize: number;
}

export function layout(config: Config, checkpointImageSize: number): Layout {
    assert(checkpointImageSize >= 0);
    const superblockOffset = 0;
    const walHeadersOffset = superblockOffset + superblockCopies * superblockCopySize;
    const walHeadersSize = alignUp(config.journalSlotCount * headerSize);
    const walPreparesOffset = walHeadersOffset + walHeadersSize;
    const walPreparesSize = config.journalSlotCount * config.messageSizeMax;
    const clientRepliesOffset = walPreparesOffset + walPreparesSize;
    const clientRepliesSize = config.clientsMax * config.messageSizeMax;
    const checkpointOffset = clientRepliesOffset + clientRepliesSize;
    const checkpointCopySize = alignUp(checkpointImageSize);
    const totalSize = checkpointOffset + 2 * checkpointCopySize;
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
        totalSize,
    };
}

export function alignUp(size: number): number {
    return Math.ceil(size / sectorSize) * sectorSize;
}
