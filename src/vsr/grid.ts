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
//   it holds are emitted again (an empty one is dropped with the prefix: all
//   its records were in it). Budget: as many records as the delta (so a checkpoint writes at
//   most twice its change), and more whenever the index would otherwise exceed
//   gridIndexBlocksMax (see layout.ts for why 3T blocks always suffice): garbage may build up
//   to half the index, then cleaning keeps pace with it. Blocks whose records are all
//   superseded leave the index for free.
// - emitted slots go in slot order into blocks at the lowest addresses that neither the durable
//   index nor the new one names (copy-on-write: a crash at any point leaves the durable index's
//   blocks intact). A block dropped by checkpoint N is therefore reusable once N is durable.
//   "Names" holds even when the grid gave the durable image up (flagKept): a state-synced
//   image written afresh (rebase) avoids the blocks the superblock still names.
// - the image at `op` while execution goes on: blocks are built from the live image, and a slot
//   the checkpoint emits but has not put in a block yet is saved, copy-on-write, into a staging
//   area of stagingRecords records just before execution first changes it (the state machine
//   tells its slotGuard, this grid). The area is bounded (1/32 of the slots, at least a block's
//   worth): before executing an op, the replica checks that the area has room for every
//   pending slot the op could change (admits), else execution waits until the checkpoint's
//   last block is built. Cost: a check per changed slot, a copy of the pending ones; no
//   table-sized copy of the image exists.
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
export const blockServeReadsMax = 4;

/** Blocks of a state sync's image read or fetched at once (grid_repair.ts, each a buffer). */
export const syncLoadsMax = 4;

const latestNone = -1;
const latestPending = -2;
/** latestStaged - i: pending, its bytes saved in staging record i (beforeSlotWrite). */
const latestStaged = -3;
const flagDurable = 1;
const flagNew = 2;
const flagCleaned = 4;
/** A peer asked for the block and this replica's disk copy failed to verify (markDamaged). */
const flagDamaged = 8;
/**
 * The durable index names the block (set for every entry when it is recovered, recoverIndex),
 * whether or not this grid still holds its records: recoverBegin keeps it, so that when the
 * replica gives its durable image up (block repair abandoned, or the checkpoint failed to read
 * after its index verified) and state-syncs, the rebased image is not written over blocks the
 * superblock still names. A crash before the new superblock finds them intact (storm seed 356:
 * a rebase overwrote them, and the durable checkpoint no longer read back). Cleared by promote.
 */
const flagKept = 16;

export class Grid {
    /** Arena offsets: the block being written or read, the index, its checksum. */
    readonly blockBuffer: number;
    readonly indexBuffer: number;
    readonly indexChecksum: number;
    /** The staging area: records (slot, bytes at the checkpoint's op) saved copy-on-write. */
    private readonly staging: number;
    readonly stagingRecords: number;
    /** Records saved in the staging area for the checkpoint being written. */
    private stagedCount = 0;
    /** Slots the checkpoint being written emits, and those of them read from the live image. */
    private emittedCount = 0;
    private emittedFromImage = 0;
    /** The image's 64-byte header at the staged op (the index carries it). */
    private readonly imageHeader: number;
    /** Ops whose execution waited for a checkpoint's blocks (the staging area was short). */
    executionHolds = 0;
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

    /** Arena bytes a Grid and its block repair (grid_repair.ts) carve. */
    static arenaBytes(zones: Layout): number {
        const slots = zones.kvSlotCount;
        const blocks = zones.gridBlockCount;
        return (
            stagingRecords(zones) * zones.gridRecordSize +
            imageHeaderSize +
            zones.gridBlockSize +
            zones.checkpointIndexSize +
            16 +
            blocks * 16 +
            slots * 4 + // latestBlock
            blocks * (4 + 4 + 1 + 4 + 4) + // liveCount, recordCounts, flags, both orders
            Math.ceil(slots / 32) * 4 + // emit
            blocks * zones.gridRecordsPerBlock * 4 + // blockSlots
            Math.ceil(zones.gridIndexBlocksMax / 32) * 4 + // missing
            (blockServeReadsMax + 1 + syncLoadsMax) * zones.gridBlockSize + // grid_repair.ts
            8 * 4096 // Alignment.
        );
    }

    constructor(allocator: Allocator, zones: Layout, stateMachine: StateMachine) {
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
        assert(stateMachine.imageOffset % 4 === 0);
        this.zones = zones;
        this.stateMachine = stateMachine;
        this.bytes = allocator.bytes;
        this.view = allocator.view;
        this.stagingRecords = stagingRecords(zones);
        this.staging = allocator.allocate(this.stagingRecords * zones.gridRecordSize, 4096);
        this.imageHeader = allocator.allocate(imageHeaderSize, 16);
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
        stateMachine.slotGuard = this;
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

    /**
     * Chooses what checkpoint `op` writes (the live image is the state at `op`) and consumes
     * the dirty bits. The previous sealed index must be durable by now.
     */
    stage(op: number): void {
        assert(this.pendingUnsaved === 0);
        const image = this.stateMachine.imageOffset;
        this.bytes.copyWithin(this.imageHeader, image, image + imageHeaderSize);
        this.stagedCount = 0;
        this.emittedCount = 0;
        this.emittedFromImage = 0;
        this.choose(op);
    }

    /** Pending slots (emitted, not in a block yet) whose bytes are still the live image's. */
    get pendingUnsaved(): number {
        return this.emittedCount - this.emittedFromImage - this.stagedCount;
    }

    /** Records the staging area can still take. */
    get stagingRoom(): number {
        return this.stagingRecords - this.stagedCount;
    }

    /**
     * Before executing an op that changes at most `slotsMax` slots: true when the staging area
     * can save every pending slot it may change; false counts a hold (execution waits for the
     * checkpoint's blocks: pendingUnsaved is 0 once the last one is built).
     */
    admits(slotsMax: number): boolean {
        if (slotsMax <= this.stagingRoom || this.pendingUnsaved <= this.stagingRoom) return true;
        this.executionHolds++;
        return false;
    }

    /** The state machine is about to change `slot`: save it first if a checkpoint needs it. */
    beforeSlotWrite(slot: number): void {
        if (this.latestBlock[slot] !== latestPending) return;
        assert(this.stagedCount < this.stagingRecords); // The replica checked admits().
        const record = this.staging + this.stagedCount * this.zones.gridRecordSize;
        this.view.setUint32(record, slot, true);
        this.copySlotOut(this.stateMachine.imageOffset, slot, record + 4);
        this.latestBlock[slot] = latestStaged - this.stagedCount;
        this.stagedCount++;
    }

    private choose(op: number): void {
        assert(op > this.checkpointOp || this.checkpointOp === 0 || this.rebase);
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
            const image = this.stateMachine.imageOffset;
            for (let slot = 0; slot < this.zones.kvSlotCount; slot++) {
                if (!this.slotEmpty(image, slot)) this.emitSlot(slot);
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
        else if (this.slotEmpty(this.stateMachine.imageOffset, slot)) return false;
        this.emitSlot(slot);
        return true;
    }

    private emitSlot(slot: number): void {
        this.emit[slot >>> 5]! |= 1 << (slot & 31);
        this.latestBlock[slot] = latestPending;
        this.emittedCount++;
    }

    /** The durable index becomes the one sealed last (its superblock is durable now). */
    private promote(): void {
        if (!this.promotePending) return;
        this.promotePending = false;
        const flags = this.flags;
        for (let address = 0; address < flags.length; address++) {
            const flag = flags[address]!;
            // flagKept goes too: the index it stood for is no longer the durable one.
            flags[address] = (flag & flagNew) === 0 ? 0 : flagDurable | (flag & flagDamaged);
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
            const damaged = (this.flags[address]! & flagDamaged) !== 0;
            if ((prefix && (cleaned + live <= budget || over)) || damaged) {
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
        const image = this.stateMachine.imageOffset;
        const perBlock = this.zones.gridRecordsPerBlock;
        for (let index = 0; index < this.durableCount; index++) {
            const address = this.durableOrder[index]!;
            if ((this.flags[address]! & flagCleaned) === 0) continue;
            if (this.liveCount[address] === 0) continue;
            const first = address * perBlock;
            // An empty slot needs no record when every record of it leaves with the dropped
            // prefix (its older blocks are in the prefix too). A damaged block is dropped
            // wherever it is: an older block left in the index may still hold a live record
            // of the slot, so its empty record is written again (default seed 771: the
            // slot came back from the dead in the index a peer state-synced from).
            const damaged = (this.flags[address]! & flagDamaged) !== 0;
            for (let record = 0; record < this.recordCounts[address]!; record++) {
                const slot = this.blockSlots[first + record]!;
                if (latest[slot] !== address) continue;
                if (!damaged && this.slotEmpty(image, slot)) latest[slot] = latestNone;
                else this.emitSlot(slot);
            }
            this.liveCount[address] = 0;
        }
    }

    /** Fills blockBuffer with the next block to write; its address, or -1 when none is left. */
    nextBlock(): number {
        let slot = this.nextEmitted(this.emitCursor);
        if (slot < 0) {
            assert(this.pendingUnsaved === 0);
            return -1;
        }
        const zones = this.zones;
        const address = this.allocate();
        const base = this.blockBuffer;
        this.bytes.fill(0, base, base + zones.gridBlockSize);
        let count = 0;
        while (slot >= 0 && count < zones.gridRecordsPerBlock) {
            const record = base + gridBlockHeaderSize + count * zones.gridRecordSize;
            const latest = this.latestBlock[slot]!;
            if (latest === latestPending) {
                this.view.setUint32(record, slot, true);
                this.copySlotOut(this.stateMachine.imageOffset, slot, record + 4);
                this.emittedFromImage++;
            } else {
                assert(latest <= latestStaged);
                const staged = this.staging + (latestStaged - latest) * zones.gridRecordSize;
                assert(this.view.getUint32(staged, true) === slot);
                this.bytes.copyWithin(record, staged, staged + zones.gridRecordSize);
            }
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
            if ((flags[address]! & (flagDurable | flagNew | flagKept)) === 0) return address;
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
        const header = this.imageHeader;
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

    /**
     * Forgets every block's records (before a recovery, or at format: no checkpoint yet, or
     * when the durable image is given up), but not which addresses the durable index names
     * (flagKept): those stay unallocated until a newer index is durable.
     */
    recoverBegin(): void {
        this.latestBlock.fill(latestNone);
        this.liveCount.fill(0);
        const flags = this.flags;
        for (let address = 0; address < flags.length; address++) flags[address]! &= flagKept;
        this.durableCount = 0;
        this.newCount = 0;
        this.promotePending = false;
        this.stagedCount = 0;
        this.emittedCount = 0;
        this.emittedFromImage = 0;
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
        const count = this.indexValid(expected);
        if (count < 0) return -1;
        for (let index = 0; index < count; index++) {
            const address = this.entryAddress(index);
            if (address < this.zones.gridBlockCount) this.flags[address]! |= flagKept;
        }
        this.checkpointOp = readU64(this.view, this.indexBuffer + IndexField.checkpointOp);
        this.bytes.copyWithin(this.indexChecksum, expected, expected + 16);
        return count;
    }

    /**
     * The block count of the index at indexBuffer if it matches the checksum at `expected` and
     * this grid's geometry, else -1. Changes nothing (state sync checks a peer's index so).
     */
    indexValid(expected: number): number {
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
        return count;
    }

    /**
     * Bytes of the index at indexBuffer as state sync streams it: up to its last entry,
     * sector-aligned (as written), bounded by the zone (a peer's count is checked later, by
     * indexValid). Before its header is whole, the header alone.
     */
    indexStreamSize(headerWhole: boolean): number {
        if (!headerWhole) return IndexField.entries;
        const count = this.view.getUint32(this.indexBuffer + IndexField.blockCount, true);
        const entries = Math.min(count, this.zones.gridIndexBlocksMax);
        const size = alignUp(IndexField.entries + entries * blockIndexEntrySize);
        return Math.min(size, this.zones.checkpointIndexSize);
    }

    /**
     * State sync: applies the block at `buffer` to the image if it is the one entry `index` of
     * the (valid) index at indexBuffer names. Only the image changes: the grid's own records
     * (flags, addresses, liveness) stay the durable index's, so that no block it names is
     * overwritten before the synced image is durable as a checkpoint of this replica's own.
     */
    applySyncBlock(buffer: number, index: number): boolean {
        if (!this.blockMatches(buffer, index)) return false;
        const zones = this.zones;
        const view = this.view;
        const count = view.getUint32(buffer + BlockField.recordCount, true);
        for (let record = 0; record < count; record++) {
            const at = buffer + gridBlockHeaderSize + record * zones.gridRecordSize;
            if (view.getUint32(at, true) >= zones.kvSlotCount) return false;
        }
        const image = this.stateMachine.imageOffset;
        for (let record = 0; record < count; record++) {
            const at = buffer + gridBlockHeaderSize + record * zones.gridRecordSize;
            this.copySlotIn(at + 4, image, view.getUint32(at, true));
        }
        return true;
    }

    /** The block at `buffer` is whole and is the one entry `index` of the index names. */
    private blockMatches(buffer: number, index: number): boolean {
        const zones = this.zones;
        const view = this.view;
        const entry = this.indexBuffer + IndexField.entries + index * blockIndexEntrySize;
        const count = view.getUint32(buffer + BlockField.recordCount, true);
        const op = readU64(view, this.indexBuffer + IndexField.checkpointOp);
        const size = zones.gridBlockSize;
        if (!checksumEquals(this.bytes, buffer + 16, size - 16, this.bytes, buffer)) return false;
        if (!u128Same(this.bytes, buffer, entry + EntryField.checksum)) return false;
        if (view.getUint32(buffer + BlockField.address, true) !== this.entryAddress(index)) {
            return false;
        }
        if (view.getUint32(entry + EntryField.recordCount, true) !== count) return false;
        if (count === 0 || count > zones.gridRecordsPerBlock) return false;
        return readU64(view, buffer + BlockField.checkpointOp) <= op;
    }

    /** The address of entry `index` of the recovered index, or -1 if it is not a valid one. */
    recoverAddress(index: number): number {
        const entry = this.indexBuffer + IndexField.entries + index * blockIndexEntrySize;
        const address = this.view.getUint32(entry + EntryField.address, true);
        if (address >= this.zones.gridBlockCount) return -1;
        if ((this.flags[address]! & ~flagKept) !== 0) return -1; // Named twice.
        return address;
    }

    /** Checks the block at blockBuffer against entry `index` and applies its records. */
    recoverBlock(index: number): boolean {
        const zones = this.zones;
        const view = this.view;
        const base = this.blockBuffer;
        const address = this.entryAddress(index);
        const count = view.getUint32(base + BlockField.recordCount, true);
        if (!this.blockMatches(base, index)) return false;
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
        this.flags[address]! |= flagDurable; // Beside flagKept (recoverIndex).
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
        if ((this.flags[address]! & (flagDurable | flagNew)) === 0) return false;
        return u128Same(this.bytes, this.checksums + address * 16, checksumOffset);
    }

    /**
     * This replica's disk copy of the block at `address` failed to verify when read for a peer
     * (while the grid still names it with the checksum at `checksumOffset`): the next
     * checkpoint drops it from the index and writes its live records anew (as cleaning does),
     * so that a checkpoint whose every copy of a block is lost becomes servable again (state
     * sync loads blocks only from disks). True when marked now.
     */
    markDamaged(address: number, checksumOffset: number): boolean {
        if (!this.names(address, checksumOffset)) return false; // Reused meanwhile: not ours.
        if ((this.flags[address]! & flagDamaged) !== 0) return false;
        this.flags[address]! |= flagDamaged;
        return true;
    }

    /** Every block applied: the image header (count, …) comes from the index. */
    recoverFinish(): void {
        const header = this.indexBuffer + IndexField.imageHeader;
        const image = this.stateMachine.imageOffset;
        this.bytes.copyWithin(image, header, header + imageHeaderSize);
    }

    // -----------------------------------------------------------------------------------------
    // Slot bytes, column by column.

    // Every offset and width here is a multiple of 4 (asserted in the constructor): the bytes
    // move as int32 words, a slot's 104 bytes in 26 reads and writes.

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

/**
 * Records the staging area holds: 1/32 of the slots (3% of the table's memory), at least one
 * block's worth (so that the simulator's small tables wait for it often), at most every slot.
 * Only pending slots that execution changes before their block is built take a record; an op
 * that might need more than is left waits (admits).
 */
export function stagingRecords(zones: Layout): number {
    const slots = zones.kvSlotCount;
    return Math.min(slots, Math.max(zones.gridRecordsPerBlock, slots >>> 5));
}

function u128Same(bytes: Uint8Array, left: number, right: number): boolean {
    for (let index = 0; index < 16; index++) {
        if (bytes[left + index] !== bytes[right + index]) return false;
    }
    return true;
}
