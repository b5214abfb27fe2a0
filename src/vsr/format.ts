// The initial image of a data file: every superblock copy at sequence 1 (view 0, log_view 0,
// no checkpoint yet, the root prepare as the hash chain's anchor). Every other zone starts as
// zeros, which recovery reads as never-written slots. Used by `vsr format` and the simulator.

import { assert } from "../stdx/assert.js";
import { headerSize, isPowerOfTwo } from "../constants.js";
import { Frame, writeRootPrepare, writeU64 } from "./header.js";
import { superblockCopies, superblockCopySize } from "./layout.js";
import { SuperblockField, formatVersion, sealSuperblockCopy } from "./superblock.js";

/** Bytes of the superblock zone (all copies). */
export const superblockZoneSize = superblockCopies * superblockCopySize;

export interface FormatOptions {
    readonly cluster: number;
    readonly replica: number;
    readonly replicaCount: number;
    /** The KV table's capacity (a power of two): it sizes the table, grid and arena. */
    readonly kvEntriesMax: number;
}

/** Writes the superblock zone's initial bytes into target[offset, offset + superblockZoneSize). */
export function formatSuperblockZone(target: Uint8Array, offset: number, options: FormatOptions) {
    assert(options.replica >= 0 && options.replica < options.replicaCount);
    assert(options.replicaCount >= 1 && options.replicaCount <= 6);
    assert(offset + superblockZoneSize <= target.length);
    const view = new DataView(target.buffer, target.byteOffset, target.byteLength);
    const image = offset;
    target.fill(0, offset, offset + superblockZoneSize);
    view.setUint32(image + SuperblockField.version, formatVersion, true);
    view.setUint32(image + SuperblockField.cluster, options.cluster, true);
    view.setUint8(image + SuperblockField.replica, options.replica);
    view.setUint8(image + SuperblockField.replicaCount, options.replicaCount);
    assert(isPowerOfTwo(options.kvEntriesMax));
    view.setUint32(image + SuperblockField.kvEntriesMax, options.kvEntriesMax, true);
    writeU64(view, image + SuperblockField.sequence, 1);
    // The root prepare's checksum anchors the chain while no checkpoint exists. Build it in the
    // second copy's space (overwritten below) to avoid a scratch buffer.
    const scratch = offset + superblockCopySize;
    writeRootPrepare(target, view, scratch, options.cluster);
    target.copyWithin(
        image + SuperblockField.checkpointOpChecksum,
        scratch + Frame.checksum,
        scratch + Frame.checksum + 16,
    );
    target.fill(0, scratch, scratch + headerSize);
    for (let copy = superblockCopies - 1; copy >= 0; copy--) {
        const base = offset + copy * superblockCopySize;
        if (copy > 0) target.copyWithin(base, image, image + superblockCopySize);
        sealSuperblockCopy(target, view, base, copy);
    }
}
