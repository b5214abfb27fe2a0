// Reading a data file's grid from outside the replica, for tests that damage it on purpose: the
// grid blocks the durable checkpoint's block index names (newest valid superblock copy →
// checkpoint copy → index entries). Works on the simulator's disk image and on a real file.

import fs from "node:fs";
import { IndexField } from "../src/vsr/grid.js";
import {
    type Layout,
    blockIndexEntrySize,
    superblockCopies,
    superblockCopySize,
} from "../src/vsr/layout.js";
import { SuperblockField, invalidSuperblockCopy } from "../src/vsr/superblock.js";

const superblockZoneSize = superblockCopies * superblockCopySize;

/** The file offset of the durable block index, or -1 before the first checkpoint. */
function durableIndexOffset(superblock: Uint8Array, zones: Layout): number {
    const view = new DataView(superblock.buffer, superblock.byteOffset, superblock.byteLength);
    let best = -1;
    let bestSequence = -1;
    for (let copy = 0; copy < superblockCopies; copy++) {
        const base = copy * superblockCopySize;
        if (invalidSuperblockCopy(superblock, view, base) !== null) continue;
        const sequence = view.getUint32(base + SuperblockField.sequence, true);
        if (sequence > bestSequence) {
            best = base;
            bestSequence = sequence;
        }
    }
    if (best < 0) throw new Error("no valid superblock copy");
    if (view.getUint32(best + SuperblockField.checkpointOp, true) === 0) return -1;
    const copy = view.getUint32(best + SuperblockField.checkpointCopy, true);
    return zones.checkpointOffset + copy * zones.checkpointCopySize;
}

function indexAddresses(index: Uint8Array): number[] {
    const view = new DataView(index.buffer, index.byteOffset, index.byteLength);
    const count = view.getUint32(IndexField.blockCount, true);
    const addresses: number[] = [];
    for (let entry = 0; entry < count; entry++) {
        addresses.push(view.getUint32(IndexField.entries + entry * blockIndexEntrySize, true));
    }
    return addresses;
}

/** One entry of a block index: the block's address and checksum (hex, as written). */
export interface NamedBlock {
    address: number;
    checksum: string;
}

/** The (address, checksum) entries the durable block index names, oldest first. */
export function namedGridBlockEntries(data: Uint8Array, zones: Layout): NamedBlock[] {
    const at = durableIndexOffset(data.slice(0, superblockZoneSize), zones);
    if (at < 0) return [];
    const index = data.slice(at, at + zones.checkpointIndexSize);
    const view = new DataView(index.buffer, index.byteOffset, index.byteLength);
    const entries: NamedBlock[] = [];
    for (let entry = 0; entry < view.getUint32(IndexField.blockCount, true); entry++) {
        const base = IndexField.entries + entry * blockIndexEntrySize;
        const checksum = Buffer.from(index.subarray(base + 16, base + 32)).toString("hex");
        entries.push({ address: view.getUint32(base, true), checksum });
    }
    return entries;
}

/** The addresses the durable block index names, oldest first ([] before any checkpoint). */
export function namedGridBlocks(data: Uint8Array, zones: Layout): number[] {
    const at = durableIndexOffset(data.slice(0, superblockZoneSize), zones);
    if (at < 0) return [];
    return indexAddresses(data.slice(at, at + zones.checkpointIndexSize));
}

/** namedGridBlocks of a data file on disk (reads its superblock zone and the index only). */
export function namedGridBlocksOfFile(path: string, zones: Layout): number[] {
    const fd = fs.openSync(path, "r");
    try {
        const at = durableIndexOffset(readFully(fd, 0, superblockZoneSize), zones);
        if (at < 0) return [];
        return indexAddresses(readFully(fd, at, zones.checkpointIndexSize));
    } finally {
        fs.closeSync(fd);
    }
}

function readFully(fd: number, offset: number, size: number): Uint8Array {
    const bytes = new Uint8Array(size);
    for (let done = 0; done < size; ) {
        const count = fs.readSync(fd, bytes, done, size - done, offset + done);
        if (count === 0) throw new Error(`the data file ends before byte ${offset + size}`);
        done += count;
    }
    return bytes;
}
