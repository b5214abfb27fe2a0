// The data file's zones, computed from the configuration. Every zone starts and ends on a sector
// boundary, so every read and write of the replica is sector-aligned in offset and length.
//
//   superblock copies | WAL headers ring | WAL prepares ring | client replies | checkpoints
//
// Worked example (test preset: 64 slots, 4 KiB messages, 7 clients): superblock 4 × 8 KiB =
// 32 KiB at 0; WAL headers 64 × 256 B = 16 KiB at 32 KiB; WAL prepares 64 × 4 KiB = 256 KiB at
// 48 KiB; client replies 2 × 7 × 4 KiB = 56 KiB at 304 KiB; then two checkpoint copies (the KV
// image and the serialized client table), each written whole at every checkpoint.

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
    /** Two halves, one per checkpoint copy: copy c's reply of entry e is slot c * clients + e. */
    readonly clientRepliesOffset: number;
    readonly clientRepliesSize: number;
    readonly checkpointOffset: number;
    /** Per copy: the state machine image, then the serialized client table. */
    readonly checkpointCopySize: number;
    readonly checkpointKvSize: number;
    readonly checkpointSessionsSize: number;
    readonly totalSize: number;
}

/** Serialized client-table entry size (see ClientSessions.serialize). */
export const sessionEntrySize = 64;

export function layout(config: Config, kvImageSize: number): Layout {
    assert(kvImageSize >= 0);
    const superblockOffset = 0;
    const walHeadersOffset = superblockOffset + superblockCopies * superblockCopySize;
    const walHeadersSize = alignUp(config.journalSlotCount * headerSize);
    const walPreparesOffset = walHeadersOffset + walHeadersSize;
    const walPreparesSize = config.journalSlotCount * config.messageSizeMax;
    const clientRepliesOffset = walPreparesOffset + walPreparesSize;
    const clientRepliesSize = 2 * config.clientsMax * config.messageSizeMax;
    const checkpointOffset = clientRepliesOffset + clientRepliesSize;
    const checkpointKvSize = alignUp(kvImageSize);
    const checkpointSessionsSize = alignUp(config.clientsMax * sessionEntrySize);
    const checkpointCopySize = checkpointKvSize + checkpointSessionsSize;
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
        checkpointKvSize,
        checkpointSessionsSize,
        totalSize,
    };
}

export function alignUp(size: number): number {
    return Math.ceil(size / sectorSize) * sectorSize;
}
