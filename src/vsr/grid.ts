// The grid: the state machine's image on disk as a log of slot records in fixed-size blocks, so
// that a checkpoint costs the size of the change, not the size of the table.
//
// A record is a slot index (u32) and the slot's bytes (one piece per image column). The block
// index (written into the checkpoint copy, its checksum in the superblock) lists the blocks of a
// checkpoint oldest first; recovery zero-fills the image and applies them in that order, later
// records winning, which gives back the exact image (the table is not rebuilt by re-inserting
// keys, so every replica keeps byte-identical images).
//
// A checkpoint (stage, then nextBlock until -1, then sealIndex):
// - the delta: every slot whose dirty bit is set, unless it is empty and no block records it;
// - cleaning: a prefix of the index, oldest first, is dropped and its slots whose latest record
//   it holds are emitted again from the snapshot (an empty one is dropped with the prefix: all
//   its records were in it). Budget: as many records as the delta (so a checkpoint writes at
//   most twice its change), and more whenever the index would otherwise exceed
//   gridIndexBlocksMax (see layout.ts for why 3T blocks always suffice): garbage may build up
//   to half the index, then cleaning keeps pace with it. Blocks whose records are all
//   superseded leave the index for free.
// - emitted slots go in slot order into blocks at the lowest addresses that neither the durable
//   index nor the new one names (copy-on-write: a crash at any point leaves the durable index's
//   blocks intact). A block dropped by checkpoint N is therefore reusable once N is durable.
// Determinism: blocks, addresses and the index are functions of the committed ops (the dirty
// bits between two checkpoint ops) and the index recovered from, never of timing, so replicas
// that executed the same ops write the same blocks at the same addresses: the basis of block
// repair by (address, checksum). latestBlock and liveCount are rebuilt identically by recovery.
//
// Block (gridBlockSize bytes, little-endian):
//    0 checksum u128 (covers 16..blockSize)   16 address u32   20 record count u32
//   24 checkpoint op u64   32 record size u32   36..64 zero   64.. records, then zeros.
// Block index (checkpointIndexSize bytes, written up to its last entry, sector-aligned):
//    0 checksum u128 (covers 16..128 + 32 × count)   16 block count u32   20 block size u32
//   24 checkpoint op u64   32 record size u32   64..128 the image's header (count, …)
//  128 + 32 i: address u32, record count u32, 8 zero bytes, the block's checksum u128.
// e.g. test preset: records of 108 B, 37 per 4 KiB block; a checkpoint after 10 puts to new
// keys writes 1 block and an index of 128 + 32 × blocks bytes (one sector).

import { assert, unreachable } from "../stdx/assert.js";
import type { Allocator } from "./arena.js";
import { checksum, checksumEquals } from "./checksum.js";
import { readU64, writeU64 } from "./header.js";
import type { StateMachine } from "./interfaces.js";
import {
    type Layout,
    alignUp,
    blockIndexEntrySize,
    blockIndexHeaderSize,
    gridBlockHeaderSize,
    imageHeaderSize,
} from "./layout.js";

export const BlockField = {
    checksum: 0,
    address: 16,
    recordCount: 20,
    checkpointOp: 24,
    recordSize: 32,
} as const;

export const IndexField = {
    checksum: 0,
    blockCount: 16,
    blockSize: 20,
    checkpointOp: 24,
    recordSize: 32,
    imageHeader: 64,
    entries: blockIndexHeaderSize,
} as const;

/** Within an index entry. */
const EntryField = { address: 0, recordCount: 4, checksum: 16 } as const;

/** Block reads a replica serves to peers at once (block repair: see grid_repair.ts). */
export const blockServeReadsMax = 2;

const latestNone = -1;
const latestPending = -2;
const flagDurable = 1;
const flagNew = 2;
const flagCleaned = 4;

export class Grid {
    /** Arena offsets: the block being written or read, the index, its checksum. */
    readonly blockBuffer: number;
    readonly indexBuffer: number;
    readonly indexChecksum: number;
    /** The image's state at the last staged checkpoint (refreshed by refreshSnapshot). */
    readonly snapshotOffset: number;
    /** The snapshot region no longer matches any checkpoint: the next refresh copies it all. */
    snapshotStale = true;
    /** The image was replaced wholesale (state sync): the next checkpoint writes it all anew. */
    rebase = false;
    /** The last checkpoint written: its blocks, records and cleaned records (for metrics). */
    blocksWritten = 0;
    recordsWritten = 0;
    recordsCleaned = 0;
    blocksWrittenTotal = 0;

    private readonly zones: Layout;
    private readonly stateMachine: StateMachine;
    private readonly bytes: Uint8Array;
    private readonly view: DataView;
    /** Per address: the checksum of the block there (as the durable or new index names it). */
    private readonly checksums: number;
    /** Per slot: the address of the block with its latest record, latestNone or pending. */
    private readonly latestBlock: Int32Array;
    /** Per address: slots whose latest record the block holds, and records it holds. */
    private readonly liveCount: Int32Array;
    private readonly recordCounts: Int32Array;
    /** The image's columns: byte offset of slot 0, width per slot in words. */
    private readonly columnOffsets: Int32Array;
    private readonly columnWidths: Int32Array;
    /** The whole arena as words (slot bytes are copied word by word). */
    private readonly words: Int32Array;
    /** Per address: its records' slots (recordsPerBlock each): cleaning costs its records. */
    private readonly blockSlots: Int32Array;
    private readonly flags: Uint8Array;
    private readonly durableOrder: Int32Array;
    private durableCount = 0;
    private readonly newOrder: Int32Array;
    private newCount = 0;
    /** Slots the checkpoint being written emits (delta and cleaned), scanned in slot order. */
    private readonly emit: Uint32Array;
    private emitCursor = 0;
    private allocateCursor = 0;
    private checkpointOp = 0;
    /** The index sealed last becomes durable before the next stage (the replica's contract). */
    private promotePending = false;
    /**
     * Entries of the recovered index whose block failed to read (EIO, checksum, address): the
     * image is incomplete until block repair writes them back and recovery reads them again.
     */
    private readonly missing: Uint32Array;
    missingCount = 0;

    /** Arena bytes a Grid and its block repair (grid_repair.ts) carve, besides the snapshot. */
    static arenaBytes(zones: Layout): number {
        const slots = zones.kvSlotCount;
        const blocks = zones.gridBlockCount;
        return (
            zones.gridBlockSize +
            zones.checkpointIndexSize +
            16 +
            blocks * 16 +
            slots * 4 + // latestBlock
            blocks * (4 + 4 + 1 + 4 + 4) + // liveCount, recordCounts, flags, both orders
            Math.ceil(slots / 32) * 4 + // emit
            blocks * zones.gridRecordsPerBlock * 4 + // blockSlots
            Math.ceil(zones.gridIndexBlocksMax / 32) * 4 + // missing
            (blockServeReadsMax + 1) * zones.gridBlockSize + // Block repair: reads, assembly.
            8 * 4096 // Alignment.
        );
    }

    constructor(
        allocator: Allocator,
        zones: Layout,
        stateMachine: StateMachine,
        snapshotOffset: number,
    ) {
        assert(stateMachine.slotCount === zones.kvSlotCount);
        assert(stateMachine.imageSize === zones.kvImageSize);
        const columns = stateMachine.slotColumns;
        this.columnOffsets = new Int32Array(columns.length);
        this.columnWidths = new Int32Array(columns.length);
        let width = 0;
        for (let column = 0; column < columns.length; column++) {
            assert(columns[column]!.offset % 4 === 0 && columns[column]!.width % 4 === 0);
            this.columnOffsets[column] = columns[column]!.offset;
            this.columnWidths[column] = columns[column]!.width >>> 2;
            width += columns[column]!.width;
        }
        assert(4 + width === zones.gridRecordSize);
        assert(stateMachine.imageOffset % 4 === 0 && snapshotOffset % 4 === 0);
        this.zones = zones;
        this.stateMachine = stateMachine;
        this.bytes = allocator.bytes;
        this.view = allocator.view;
        this.snapshotOffset = snapshotOffset;
        const buffer = allocator.bytes.buffer;
        const slots = zones.kvSlotCount;
        const blocks = zones.gridBlockCount;
        this.blockBuffer = allocator.allocate(zones.gridBlockSize, 4096);
        this.indexBuffer = allocator.allocate(zones.checkpointIndexSize, 4096);
        this.indexChecksum = allocator.allocate(16, 16);
        this.checksums = allocator.allocate(blocks * 16, 16);
        this.latestBlock = new Int32Array(buffer, allocator.allocate(slots * 4, 8), slots);
        this.liveCount = new Int32Array(buffer, allocator.allocate(blocks * 4, 8), blocks);
        this.recordCounts = new Int32Array(buffer, allocator.allocate(blocks * 4, 8), blocks);
        this.flags = new Uint8Array(buffer, allocator.allocate(blocks, 8), blocks);
        this.durableOrder = new Int32Array(buffer, allocator.allocate(blocks * 4, 8), blocks);
        this.newOrder = new Int32Array(buffer, allocator.allocate(blocks * 4, 8), blocks);
        const words = Math.ceil(slots / 32);
        this.emit = new Uint32Array(buffer, allocator.allocate(words * 4, 8), words);
        const listed = blocks * zones.gridRecordsPerBlock;
        this.blockSlots = new Int32Array(buffer, allocator.allocate(listed * 4, 8), listed);
        const missingWords = Math.ceil(zones.gridIndexBlocksMax / 32);
        this.missing = new Uint32Array(
            buffer,
            allocator.allocate(missingWords * 4, 8),
            missingWords,
        );
        this.words = new Int32Array(buffer);
        this.recoverBegin();
        // Allocators hand out zeroed memory (an Arena is fresh, an ArenaRegion is zeroed by its
        // reset), and a fresh table is zero but for its header (which every refresh copies):
        // the snapshot already matches it, and the first checkpoint copies its dirty slots, not
        // the table. Not scanned: reading the 208 MiB region of a 2^21-entry table took 1.6 s
        // of a replica's start-up (a page fault per untouched page). Spot-checked instead.
        const spot = Math.min(4096, stateMachine.imageSize) & ~3;
        const snapshotEnd = snapshotOffset + (stateMachine.imageSize & ~3);
        assert(this.wordsZero(snapshotOffset, spot) && this.wordsZero(snapshotEnd - spot, spot));
        this.snapshotStale = false;
    }

    /** Blocks the durable index names (after recovery or once the last seal is durable). */
    get slotCount(): number {
        return this.zones.kvSlotCount;
    }

    get blockSize(): number {
        return this.zones.gridBlockSize;
    }

    get blockCount(): number {
        return this.zones.gridBlockCount;
    }

    get durableBlocks(): number {
        return this.promotePending ? this.newCount : this.durableCount;
    }

    // -----------------------------------------------------------------------------------------
    // Writing a checkpoint.

    /** Brings the snapshot to the live image: the dirty slots only, unless it is stale. */
    refreshSnapshot(): void {
        const image = this.stateMachine.imageOffset;
        const snapshot = this.snapshotOffset;
        if (this.snapshotStale) {
            this.bytes.copyWithin(snapshot, image, image + this.stateMachine.imageSize);
            this.snapshotStale = false;
            return;
        }
        this.bytes.copyWithin(snapshot, image, image + imageHeaderSize);
        const dirty = this.stateMachine.dirty;
        for (let word = 0; word < dirty.length; word++) {
            let bits = dirty[word]!;
            while (bits !== 0) {
                const bit = 31 - Math.clz32(bits & -bits);
                bits &= bits - 1;
                this.copySlot(image, snapshot, word * 32 + bit);
            }
        }
    }

    /**
     * Chooses what checkpoint `op` writes (the snapshot must be refreshed at `op`) and consumes
     * the dirty bits. The previous sealed index must be durable by now.
     */
    stage(op: number): void {
        assert(op > this.checkpointOp || this.checkpointOp === 0 || this.rebase);
        assert(!this.snapshotStale);
        this.promote();
        this.checkpointOp = op;
        this.emit.fill(0);
        this.emitCursor = 0;
        this.allocateCursor = 0;
        this.newCount = 0;
        this.blocksWritten = 0;
        this.recordsWritten = 0;
        this.recordsCleaned = 0;
        const dirty = this.stateMachine.dirty;
        if (this.rebase) {
            this.rebase = false;
            this.latestBlock.fill(latestNone);
            this.liveCount.fill(0);
            for (let slot = 0; slot < this.zones.kvSlotCount; slot++) {
                if (!this.slotEmpty(this.snapshotOffset, slot)) this.emitSlot(slot);
            }
            dirty.fill(0);
            return;
        }
        let deltaRecords = 0;
        for (let word = 0; word < dirty.length; word++) {
            let bits = dirty[word]!;
            dirty[word] = 0;
            while (bits !== 0) {
                const bit = 31 - Math.clz32(bits & -bits);
                bits &= bits - 1;
                if (this.stageSlot(word * 32 + bit)) deltaRecords++;
            }
        }
        this.clean(deltaRecords);
    }

    /** Emits a dirty slot unless it is empty and unrecorded; true when emitted. */
    private stageSlot(slot: number): boolean {
        const previous = this.latestBlock[slot]!;
        assert(previous !== latestPending);
        if (previous >= 0) this.liveCount[previous]! -= 1;
        else if (this.slotEmpty(this.snapshotOffset, slot)) return false;
        this.emitSlot(slot);
        return true;
    }

    private emitSlot(slot: number): void {
        this.emit[slot >>> 5]! |= 1 << (slot & 31);
        this.latestBlock[slot] = latestPending;
    }

    /** The durable index becomes the one sealed last (its superblock is durable now). */
    private promote(): void {
        if (!this.promotePending) return;
        this.promotePending = false;
        const flags = this.flags;
        for (let address = 0; address < flags.length; address++) {
            flags[address] = (flags[address]! & flagNew) === 0 ? 0 : flagDurable;
        }
        for (let index = 0; index < this.newCount; index++) {
            this.durableOrder[index] = this.newOrder[index]!;
        }
        this.durableCount = this.newCount;
    }

    /** Drops an oldest prefix of the index (and dead blocks), re-emitting its live slots. */
    private clean(deltaRecords: number): void {
        const perBlock = this.zones.gridRecordsPerBlock;
        const budget = deltaRecords;
        let remaining = 0;
        for (let index = 0; index < this.durableCount; index++) {
            if (this.liveCount[this.durableOrder[index]!]! > 0) remaining++;
        }
        let cleaned = 0;
        let prefix = true;
        for (let index = 0; index < this.durableCount; index++) {
            const address = this.durableOrder[index]!;
            const live = this.liveCount[address]!;
            if (live === 0) {
                this.flags[address]! |= flagCleaned;
                continue;
            }
            const blocksAfter = remaining + Math.ceil((deltaRecords + cleaned) / perBlock);
            const over = blocksAfter > this.zones.gridIndexBlocksMax;
            if (prefix && (cleaned + live <= budget || over)) {
                this.flags[address]! |= flagCleaned;
                cleaned += live;
                remaining--;
                continue;
            }
            prefix = false;
            this.flags[address]! |= flagNew;
            this.newOrder[this.newCount++] = address;
        }
        const blocksAfter = remaining + Math.ceil((deltaRecords + cleaned) / perBlock);
        assert(blocksAfter <= this.zones.gridIndexBlocksMax);
        if (cleaned > 0) this.cleanSlots();
        this.recordsCleaned = cleaned;
    }

    /** Re-emits every slot whose latest record a cleaned block holds (its record list). */
    private cleanSlots(): void {
        const latest = this.latestBlock;
        const perBlock = this.zones.gridRecordsPerBlock;
        for (let index = 0; index < this.durableCount; index++) {
            const address = this.durableOrder[index]!;
            if ((this.flags[address]! & flagCleaned) === 0) continue;
            if (this.liveCount[address] === 0) continue;
            const first = address * perBlock;
            for (let record = 0; record < this.recordCounts[address]!; record++) {
                const slot = this.blockSlots[first + record]!;
                if (latest[slot] !== address) continue;
                if (this.slotEmpty(this.snapshotOffset, slot)) latest[slot] = latestNone;
                else this.emitSlot(slot);
            }
            this.liveCount[address] = 0;
        }
    }

    /** Fills blockBuffer with the next block to write; its address, or -1 when none is left. */
    nextBlock(): number {
        let slot = this.nextEmitted(this.emitCursor);
        if (slot < 0) return -1;
        const zones = this.zones;
        const address = this.allocate();
        const base = this.blockBuffer;
        this.bytes.fill(0, base, base + zones.gridBlockSize);
        let count = 0;
        while (slot >= 0 && count < zones.gridRecordsPerBlock) {
            const record = base + gridBlockHeaderSize + count * zones.gridRecordSize;
            this.view.setUint32(record, slot, true);
            this.copySlotOut(this.snapshotOffset, slot, record + 4);
            this.blockSlots[address * zones.gridRecordsPerBlock + count] = slot;
            this.latestBlock[slot] = address;
            count++;
            this.emitCursor = slot + 1;
            slot = this.nextEmitted(this.emitCursor);
        }
        this.view.setUint32(base + BlockField.address, address, true);
        this.view.setUint32(base + BlockField.recordCount, count, true);
        writeU64(this.view, base + BlockField.checkpointOp, this.checkpointOp);
        this.view.setUint32(base + BlockField.recordSize, zones.gridRecordSize, true);
        checksum(this.bytes, base + 16, zones.gridBlockSize - 16, this.bytes, base);
        this.bytes.copyWithin(this.checksums + address * 16, base, base + 16);
        this.liveCount[address] = count;
        this.recordCounts[address] = count;
        this.flags[address]! |= flagNew;
        this.newOrder[this.newCount++] = address;
        assert(this.newCount <= zones.gridIndexBlocksMax);
        this.blocksWritten++;
        this.blocksWrittenTotal++;
        this.recordsWritten += count;
        return address;
    }

    /** The lowest address neither index names. */
    private allocate(): number {
        const flags = this.flags;
        while (this.allocateCursor < flags.length) {
            const address = this.allocateCursor++;
            if ((flags[address]! & (flagDurable | flagNew)) === 0) return address;
        }
        return unreachable(); // The grid is full: its 3T bound (layout.ts) is broken.
    }

    /** The first emitted slot at or after `from`, or -1. */
    private nextEmitted(from: number): number {
        const emit = this.emit;
        let word = from >>> 5;
        if (word >= emit.length) return -1;
        let bits = emit[word]! & (-1 << (from & 31));
        while (bits === 0) {
            word++;
            if (word >= emit.length) return -1;
            bits = emit[word]!;
        }
        return word * 32 + 31 - Math.clz32(bits & -bits);
    }

    /** Serializes the new index into indexBuffer (checksum also at indexChecksum); its size. */
    sealIndex(): number {
        assert(this.nextEmitted(this.emitCursor) < 0);
        const base = this.indexBuffer;
        const view = this.view;
        const size = IndexField.entries + this.newCount * blockIndexEntrySize;
        assert(size <= this.zones.checkpointIndexSize);
        this.bytes.fill(0, base, base + alignUp(size));
        view.setUint32(base + IndexField.blockCount, this.newCount, true);
        view.setUint32(base + IndexField.blockSize, this.zones.gridBlockSize, true);
        writeU64(view, base + IndexField.checkpointOp, this.checkpointOp);
        view.setUint32(base + IndexField.recordSize, this.zones.gridRecordSize, true);
        const header = this.snapshotOffset;
        this.bytes.copyWithin(base + IndexField.imageHeader, header, header + imageHeaderSize);
        for (let index = 0; index < this.newCount; index++) {
            const address = this.newOrder[index]!;
            const entry = base + IndexField.entries + index * blockIndexEntrySize;
            view.setUint32(entry + EntryField.address, address, true);
            view.setUint32(entry + EntryField.recordCount, this.recordCounts[address]!, true);
            const stored = this.checksums + address * 16;
            this.bytes.copyWithin(entry + EntryField.checksum, stored, stored + 16);
        }
        checksum(this.bytes, base + 16, size - 16, this.bytes, base);
        this.bytes.copyWithin(this.indexChecksum, base, base + 16);
        this.promotePending = true;
        return alignUp(size);
    }

    // -----------------------------------------------------------------------------------------
    // Recovery: the index at indexBuffer, then each block at blockBuffer in index order.

    /** Forgets every block (before a recovery, or at format: no checkpoint yet). */
    recoverBegin(): void {
        this.latestBlock.fill(latestNone);
        this.liveCount.fill(0);
        this.flags.fill(0);
        this.durableCount = 0;
        this.newCount = 0;
        this.promotePending = false;
        this.snapshotStale = true;
        this.rebase = false;
        this.checkpointOp = 0;
        this.missing.fill(0);
        this.missingCount = 0;
    }

    /**
     * Checks the index read into indexBuffer against the checksum at `expected` (the
     * superblock's); returns its block count, or -1 when it is not the index expected.
     */
    recoverIndex(expected: number): number {
        const base = this.indexBuffer;
        const view = this.view;
        const count = view.getUint32(base + IndexField.blockCount, true);
        if (count > this.zones.gridIndexBlocksMax) return -1;
        const size = IndexField.entries + count * blockIndexEntrySize;
        if (!checksumEquals(this.bytes, base + 16, size - 16, this.bytes, expected)) return -1;
        if (!u128Same(this.bytes, base, expected)) return -1; // Its own copy agrees too.
        if (view.getUint32(base + IndexField.blockSize, true) !== this.zones.gridBlockSize) {
            return -1;
        }
        if (view.getUint32(base + IndexField.recordSize, true) !== this.zones.gridRecordSize) {
            return -1;
        }
        this.checkpointOp = readU64(view, base + IndexField.checkpointOp);
        this.bytes.copyWithin(this.indexChecksum, expected, expected + 16);
        return count;
    }

    /** The address of entry `index` of the recovered index, or -1 if it is not a valid one. */
    recoverAddress(index: number): number {
        const entry = this.indexBuffer + IndexField.entries + index * blockIndexEntrySize;
        const address = this.view.getUint32(entry + EntryField.address, true);
        if (address >= this.zones.gridBlockCount) return -1;
        if (this.flags[address] !== 0) return -1; // Named twice.
        return address;
    }

    /** Checks the block at blockBuffer against entry `index` and applies its records. */
    recoverBlock(index: number): boolean {
        const zones = this.zones;
        const view = this.view;
        const base = this.blockBuffer;
        const entry = this.indexBuffer + IndexField.entries + index * blockIndexEntrySize;
        const address = view.getUint32(entry + EntryField.address, true);
        const count = view.getUint32(base + BlockField.recordCount, true);
        if (!checksumEquals(this.bytes, base + 16, zones.gridBlockSize - 16, this.bytes, base)) {
            return false;
        }
        if (!u128Same(this.bytes, base, entry + EntryField.checksum)) return false;
        if (view.getUint32(base + BlockField.address, true) !== address) return false;
        if (view.getUint32(entry + EntryField.recordCount, true) !== count) return false;
        if (count === 0 || count > zones.gridRecordsPerBlock) return false;
        if (readU64(view, base + BlockField.checkpointOp) > this.checkpointOp) return false;
        const image = this.stateMachine.imageOffset;
        for (let record = 0; record < count; record++) {
            const at = base + gridBlockHeaderSize + record * zones.gridRecordSize;
            const slot = view.getUint32(at, true);
            if (slot >= zones.kvSlotCount) return false;
            const previous = this.latestBlock[slot]!;
            if (previous >= 0) this.liveCount[previous]! -= 1;
            this.copySlotIn(at + 4, image, slot);
            this.latestBlock[slot] = address;
            this.blockSlots[address * zones.gridRecordsPerBlock + record] = slot;
        }
        this.liveCount[address] = count;
        this.recordCounts[address] = count;
        this.flags[address] = flagDurable;
        this.durableOrder[this.durableCount++] = address;
        this.bytes.copyWithin(this.checksums + address * 16, base, base + 16);
        return true;
    }

    // -----------------------------------------------------------------------------------------
    // Block repair (grid_repair.ts): blocks of the recovered index that failed to read.

    /** Entry `index` of the recovered index failed to read: it is fetched from a peer. */
    markMissing(index: number): void {
        assert(index >= 0 && index < this.zones.gridIndexBlocksMax);
        const bit = 1 << (index & 31);
        assert((this.missing[index >>> 5]! & bit) === 0);
        this.missing[index >>> 5]! |= bit;
        this.missingCount++;
    }

    /** Entry `index`'s block is on disk again (written back from a peer's copy). */
    clearMissing(index: number): void {
        const bit = 1 << (index & 31);
        assert((this.missing[index >>> 5]! & bit) !== 0);
        this.missing[index >>> 5]! &= ~bit;
        this.missingCount--;
        assert(this.missingCount >= 0);
    }

    /** The first missing entry at or after `from`, wrapping around; -1 when none is. */
    nextMissing(from: number): number {
        if (this.missingCount === 0) return -1;
        const entries = this.zones.gridIndexBlocksMax;
        for (let step = 0; step < entries; step++) {
            const index = (from + step) % entries;
            if ((this.missing[index >>> 5]! & (1 << (index & 31))) !== 0) return index;
        }
        return unreachable(); // missingCount > 0 names a set bit.
    }

    /** The address entry `index` of the recovered index names (checked by recoverAddress). */
    entryAddress(index: number): number {
        const entry = this.indexBuffer + IndexField.entries + index * blockIndexEntrySize;
        return this.view.getUint32(entry + EntryField.address, true);
    }

    /** Arena offset of the checksum entry `index` of the recovered index names. */
    entryChecksum(index: number): number {
        const entry = this.indexBuffer + IndexField.entries + index * blockIndexEntrySize;
        return entry + EntryField.checksum;
    }

    /**
     * True when the durable index, or the one being written, names a block at `address` with
     * the checksum at `checksumOffset`: a block worth reading for a peer (the bytes read are
     * verified again before they are served, since a checkpoint may reuse the address).
     */
    names(address: number, checksumOffset: number): boolean {
        if (address >= this.zones.gridBlockCount) return false;
        if (this.flags[address] === 0) return false;
        return u128Same(this.bytes, this.checksums + address * 16, checksumOffset);
    }

    /** Every block applied: the image header (count, …) comes from the index. */
    recoverFinish(): void {
        const header = this.indexBuffer + IndexField.imageHeader;
        const image = this.stateMachine.imageOffset;
        this.bytes.copyWithin(image, header, header + imageHeaderSize);
        this.snapshotStale = true;
    }

    // -----------------------------------------------------------------------------------------
    // Slot bytes, column by column.

    // Every offset and width here is a multiple of 4 (asserted in the constructor): the bytes
    // move as int32 words, a slot's 104 bytes in 26 reads and writes.

    private copySlot(from: number, to: number, slot: number): void {
        const words = this.words;
        for (let column = 0; column < this.columnOffsets.length; column++) {
            const width = this.columnWidths[column]!;
            const at = (this.columnOffsets[column]! >>> 2) + slot * width;
            const source = (from >>> 2) + at;
            const target = (to >>> 2) + at;
            for (let word = 0; word < width; word++) words[target + word] = words[source + word]!;
        }
    }

    /** Copies slot `slot` of the image at `image` to `target`, columns back to back. */
    private copySlotOut(image: number, slot: number, target: number): void {
        const words = this.words;
        let to = target >>> 2;
        for (let column = 0; column < this.columnOffsets.length; column++) {
            const width = this.columnWidths[column]!;
            const from = ((image + this.columnOffsets[column]!) >>> 2) + slot * width;
            for (let word = 0; word < width; word++) words[to + word] = words[from + word]!;
            to += width;
        }
    }

    private copySlotIn(source: number, image: number, slot: number): void {
        const words = this.words;
        let from = source >>> 2;
        for (let column = 0; column < this.columnOffsets.length; column++) {
            const width = this.columnWidths[column]!;
            const to = ((image + this.columnOffsets[column]!) >>> 2) + slot * width;
            for (let word = 0; word < width; word++) words[to + word] = words[from + word]!;
            from += width;
        }
    }

    private wordsZero(offset: number, size: number): boolean {
        const words = this.words;
        const first = offset >>> 2;
        for (let word = first; word < first + (size >>> 2); word++) {
            if (words[word] !== 0) return false;
        }
        return true;
    }

    private slotEmpty(image: number, slot: number): boolean {
        const words = this.words;
        for (let column = 0; column < this.columnOffsets.length; column++) {
            const width = this.columnWidths[column]!;
            const at = ((image + this.columnOffsets[column]!) >>> 2) + slot * width;
            for (let word = at; word < at + width; word++) if (words[word] !== 0) return false;
        }
        return true;
    }
}

function u128Same(bytes: Uint8Array, left: number, right: number): boolean {
    for (let index = 0; index < 16; index++) {
        if (bytes[left + index] !== bytes[right + index]) return false;
    }
    return true;
}
