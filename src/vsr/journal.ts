// The journal (write-ahead log): a ring of `journalSlotCount` slots, slot = op % slotCount. For
// each slot it owns the prepare header (a copy in the arena, all-zero when the slot is empty), the
// prepare message itself (held in memory: the whole WAL window is memory-resident, so commit and
// repair never wait for a read), and whether that prepare is durable.
//
// Write order, per prepare: (1) the prepare goes to the prepares ring; (2) once durable, the whole
// 4 KiB sector of the redundant headers ring that holds its slot is rewritten from memory, with
// every header whose prepare is not durable written as zeros. A crash between (1) and (2) leaves a
// durable prepare beside a stale header, which recovery can fix locally; a header never claims a
// prepare that is not on disk.
//
// Durability (what prepare_ok promises): a prepare is durable once its own write completed and
// then a write of its header sector holding its header completed, both without error. Waiting
// for the header matters: a prepare write that is lost silently (misdirected to another slot)
// leaves the slot's older prepare intact and self-consistent, which recovery could only read as
// "this op never arrived" — a nack of an acknowledged op (storm seed 1335 truncated a committed
// op that way). With the header durable too, that slot reads as a header without its prepare:
// faulty, never nacked, repaired from peers. A header write lost the same way leaves the newer
// prepare beside an older header, which recovery keeps (@M). A crash may tear either write (the
// simulator's storage tears any write in flight on the replica that owns the slot).
//
// Header sectors: at most one write per sector is in flight, so an older image never lands after
// a newer one; a sector that changes while written is marked dirty and written again (coalesced)
// once the write in flight completes. Errors: a failed prepare write is retried (the prepare
// stays not durable, never acknowledged, until a write succeeds); a failed header-sector write is
// retried; a failed recovery read makes the slot (or the header sector) invalid, so recovery marks
// it faulty and repairs it from peers (see below).
//
// Recovery rewrites, before it reports done, every header sector holding a slot it fixed (a
// valid prepare beside a stale header), so "durable" means the same after a restart. A sector
// image never writes zeros for a faulty slot: its known header, else an invalid one (see
// faultyHeaderImage), so a faulty slot is faulty again after the next crash.
//
// Invariants: a prepare is present only under a header with its checksum; durable implies
// present; at most one write per slot and one per header sector is in flight (a newer prepare
// waits for it).
//
// Recovery reads the headers ring in one read. If it fails (EIO: a latent sector error), it is
// read again one sector at a time: a sector that still fails leaves its slots' headers invalid
// (not reserved), and a prepare whose read fails is invalid, so the decision table marks those
// slots faulty for protocol-aware repair instead of failing the whole recovery.

import { assert } from "../stdx/assert.js";
import { type Config, headerSize, sectorSize } from "../constants.js";
import type { Allocator } from "./arena.js";
import { invalidBatch } from "./batch.js";
import {
    Command,
    Frame,
    headerCommand,
    headerSizeOf,
    headerView,
    invalidHeader,
    prepareOp,
    u128Equal,
    validBodyChecksum,
    validHeaderChecksum,
} from "./header.js";
import {
    Decision,
    Relation,
    SlotKind,
    decide,
    recoveryCase,
    recoveryCases,
} from "./journal_recovery.js";
import type { Layout } from "./layout.js";
import { alignUp } from "./layout.js";
import type { Message, MessagePool } from "./message_pool.js";
import { IoResult, type Storage, type StorageCompletion } from "./interfaces.js";

const headersPerSector = sectorSize / headerSize;

class JournalWrite implements StorageCompletion {
    result: IoResult = IoResult.ok;
    readonly journal: Journal;
    /** Arena offset of this write's private header-sector buffer. */
    readonly sectorOffset: number;
    /** The slot whose prepare is written (stage 0), else -1. */
    slot = -1;
    /** The header sector written (stage 1), else -1. */
    sector = -1;
    message: Message | null = null;
    /** 0: writing the prepare; 1: writing the redundant header sector. */
    stage = 0;
    /**
     * Stage 1, per slot of the sector: the slot's generation + 1 when its header is in the image
     * (0: not in it). On success, a slot whose generation is unchanged is durable.
     */
    readonly sectorGenerations: Float64Array;

    constructor(journal: Journal, sectorOffset: number) {
        this.journal = journal;
        this.sectorOffset = sectorOffset;
        this.sectorGenerations = new Float64Array(headersPerSector);
    }

    callback(completion: StorageCompletion): void {
        assert(completion === this);
        this.journal.writeCallback(this);
    }
}

class RecoveryRead implements StorageCompletion {
    result: IoResult = IoResult.ok;
    readonly journal: Journal;
    /** The slot being read (-1: the headers ring). */
    slot = -1;
    /** The headers-ring sector being read alone after the whole read failed (-1: none). */
    sector = -1;
    message: Message | null = null;

    constructor(journal: Journal) {
        this.journal = journal;
    }

    callback(completion: StorageCompletion): void {
        assert(completion === this);
        this.journal.recoveryReadCallback(this);
    }
}

function allZero(bytes: Uint8Array, offset: number, size: number): boolean {
    for (let index = offset; index < offset + size; index++) if (bytes[index] !== 0) return false;
    return true;
}

export class Journal {
    readonly slotCount: number;
    private readonly arena: Allocator;
    private readonly pool: MessagePool;
    private readonly storage: Storage;
    private readonly layout: Layout;
    private readonly messageSizeMax: number;
    /** Arena offset of slot 0's header; slot i's is at headersOffset + i * 256. */
    readonly headersOffset: number;
    private readonly prepares: (Message | null)[] = [];
    private readonly durable: Uint8Array;
    /** Per slot: the prepare's own write completed (its header sector may still be pending). */
    private readonly written: Uint8Array;
    /** Per slot: bumped whenever the slot's prepare is replaced or dropped. */
    private readonly generations: Float64Array;
    private readonly writing: Uint8Array;
    private readonly writePending: Uint8Array;
    /**
     * A faulty slot may hold an op this replica acknowledged but cannot read (found by
     * recovery): repaired from peers, never nacked. Cleared when a prepare is stored there.
     */
    private readonly faulty: Uint8Array;
    faultyCount = 0;
    /**
     * A trusted slot's header belongs to the log of the replica's log_view: it came from that
     * view's primary (a prepare of the view, start_view, or the new primary's own choice), or is
     * the parent of a trusted header. Only trusted ops are committed, acknowledged or vouched
     * for in a view change. Any change of the slot's header clears it.
     */
    private readonly trustedSlots: Uint8Array;
    /** Recovery scratch: the redundant headers ring as read from disk. */
    private readonly recoveryHeaders: number;
    /** Recovery scratch, per headers-ring sector: 1 when its read failed. */
    private readonly recoveryHeaderSectorsFailed: Uint8Array;
    /** Recovery scratch, per slot: 1 when its prepare's read failed. */
    private readonly recoveryPreparesFailed: Uint8Array;
    /** Recovery reads that failed (whole ring, sectors, prepares): each made slots faulty. */
    recoveryReadErrors = 0;
    /** Recovery scratch, per header sector: a slot in it was fixed (its header is stale). */
    private readonly recoveryRewriteSectors: Uint8Array;
    /** The header sector recovery is rewriting (before it reports done), else -1. */
    private recoveryRewriteSector = -1;
    /** Header sectors recovery rewrote because a slot's header on disk was stale. */
    recoveryHeadersRewritten = 0;
    private writePendingCount = 0;
    /** Per header sector: a write of it is in flight. */
    private readonly sectorWriting: Uint8Array;
    /** Per header sector: it changed since the image in flight was taken (write it again). */
    private readonly sectorDirty: Uint8Array;
    private readonly writes: JournalWrite[] = [];
    private readonly writesFree: JournalWrite[] = [];
    /** Called once a prepare is durable (and still the slot's prepare). */
    private readonly durableCallback: (op: number) => void;
    /** Test-only fault: recovery skips the body checksum (proves the checkers catch it). */
    private readonly acceptCorruptPrepare: boolean;
    writesCompleted = 0;
    /** Failed prepare and header-sector writes (each retried). */
    writeErrors = 0;

    constructor(
        config: Config,
        arena: Allocator,
        pool: MessagePool,
        storage: Storage,
        dataLayout: Layout,
        durableCallback: (op: number) => void,
        acceptCorruptPrepare = false,
    ) {
        this.acceptCorruptPrepare = acceptCorruptPrepare;
        this.slotCount = config.journalSlotCount;
        this.arena = arena;
        this.pool = pool;
        this.storage = storage;
        this.layout = dataLayout;
        this.messageSizeMax = config.messageSizeMax;
        this.durableCallback = durableCallback;
        this.headersOffset = arena.allocate(this.slotCount * headerSize, sectorSize);
        arena.bytes.fill(0, this.headersOffset, this.headersOffset + this.slotCount * headerSize);
        for (let slot = 0; slot < this.slotCount; slot++) this.prepares.push(null);
        this.durable = new Uint8Array(this.slotCount);
        this.written = new Uint8Array(this.slotCount);
        this.generations = new Float64Array(this.slotCount);
        this.writing = new Uint8Array(this.slotCount);
        this.writePending = new Uint8Array(this.slotCount);
        this.faulty = new Uint8Array(this.slotCount);
        this.trustedSlots = new Uint8Array(this.slotCount);
        assert(this.slotCount % headersPerSector === 0);
        this.sectorWriting = new Uint8Array(this.slotCount / headersPerSector);
        this.sectorDirty = new Uint8Array(this.slotCount / headersPerSector);
        this.recoveryHeaders = arena.allocate(dataLayout.walHeadersSize, sectorSize);
        this.recoveryHeaderSectorsFailed = new Uint8Array(dataLayout.walHeadersSize / sectorSize);
        this.recoveryPreparesFailed = new Uint8Array(this.slotCount);
        this.recoveryRewriteSectors = new Uint8Array(this.slotCount / headersPerSector);
        this.recoveryRead = new RecoveryRead(this);
        const sectors = arena.allocate(config.journalWritesMax * sectorSize, sectorSize);
        for (let index = 0; index < config.journalWritesMax; index++) {
            const write = new JournalWrite(this, sectors + index * sectorSize);
            this.writes.push(write);
            this.writesFree.push(write);
        }
    }

    slotOf(op: number): number {
        return op % this.slotCount;
    }

    headerOffset(slot: number): number {
        assert(slot >= 0 && slot < this.slotCount);
        return this.headersOffset + slot * headerSize;
    }

    /** True when the slot of `op` holds a header for exactly `op`. */
    hasHeader(op: number): boolean {
        const offset = this.headerOffset(this.slotOf(op));
        const view = this.arena.view;
        return headerCommand(view, offset) === Command.prepare && prepareOp(view, offset) === op;
    }

    /** True when the header of `op` is present with the checksum at `checksumOffset`. */
    hasHeaderWithChecksum(op: number, checksumOffset: number): boolean {
        if (!this.hasHeader(op)) return false;
        return u128Equal(
            this.arena.view,
            this.headerOffset(this.slotOf(op)) + Frame.checksum,
            checksumOffset,
        );
    }

    /** The prepare of `op` when it is in memory under a matching header. */
    prepare(op: number): Message | null {
        if (!this.hasHeader(op)) return null;
        const message = this.prepares[this.slotOf(op)] ?? null;
        if (message !== null) assert(prepareOp(this.arena.view, message.offset) === op);
        return message;
    }

    isDurable(op: number): boolean {
        const slot = this.slotOf(op);
        return this.prepare(op) !== null && this.durable[slot] === 1;
    }

    /**
     * Installs the header at `sourceOffset` into its slot. A different prepare held by the slot
     * (an older wrap, or a truncated op) is released.
     */
    setHeader(sourceOffset: number): void {
        const view = this.arena.view;
        assert(headerCommand(view, sourceOffset) === Command.prepare);
        const slot = this.slotOf(prepareOp(view, sourceOffset));
        const target = this.headerOffset(slot);
        if (u128Equal(view, target + Frame.checksum, sourceOffset + Frame.checksum)) return;
        this.releasePrepare(slot);
        this.trustedSlots[slot] = 0;
        this.arena.bytes.copyWithin(target, sourceOffset, sourceOffset + headerSize);
    }

    /** Empties the slot of `op` (truncation), if it holds `op`. */
    removeHeader(op: number): void {
        if (!this.hasHeader(op)) return;
        const slot = this.slotOf(op);
        this.releasePrepare(slot);
        this.trustedSlots[slot] = 0;
        const offset = this.headerOffset(slot);
        this.arena.bytes.fill(0, offset, offset + headerSize);
    }

    /** Stores the prepare under its (already installed) header and starts its durable write. */
    putPrepare(message: Message): void {
        const view = this.arena.view;
        const op = prepareOp(view, message.offset);
        const slot = this.slotOf(op);
        assert(this.hasHeaderWithChecksum(op, message.offset + Frame.checksum));
        if (this.prepares[slot] !== null) return; // Already held (a duplicate or a repair race).
        this.clearFaulty(slot);
        this.prepares[slot] = this.pool.ref(message);
        this.slotReset(slot);
        if (this.writing[slot] === 1) {
            this.markWritePending(slot);
            return;
        }
        this.writeStart(slot);
    }

    private releasePrepare(slot: number): void {
        const message = this.prepares[slot] ?? null;
        if (message === null) return;
        this.prepares[slot] = null;
        this.slotReset(slot);
        this.pool.unref(message);
    }

    /** The slot's prepare changed: nothing of it is written yet, older images do not count. */
    private slotReset(slot: number): void {
        this.durable[slot] = 0;
        this.written[slot] = 0;
        this.generations[slot] = (this.generations[slot] ?? 0) + 1;
    }

    private markWritePending(slot: number): void {
        if (this.writePending[slot] === 1) return;
        this.writePending[slot] = 1;
        this.writePendingCount++;
    }

    private writeStart(slot: number): void {
        assert(this.writing[slot] === 0);
        const message = this.prepares[slot] ?? null;
        assert(message !== null);
        const write = this.writesFree.pop();
        if (write === undefined) {
            this.markWritePending(slot);
            return;
        }
        assert(write.slot === -1 && write.sector === -1 && write.message === null);
        this.writing[slot] = 1;
        write.slot = slot;
        write.message = this.pool.ref(message);
        write.stage = 0;
        const size = headerSizeOf(this.arena.view, message.offset);
        const sizeAligned = alignUp(size);
        assert(sizeAligned <= this.messageSizeMax);
        // Sector padding is zeroed: no stale bytes reach the disk, and the image is deterministic.
        this.arena.bytes.fill(0, message.offset + size, message.offset + sizeAligned);
        const offset = this.layout.walPreparesOffset + slot * this.messageSizeMax;
        this.storage.write(write, message.offset, sizeAligned, offset);
    }

    /** Re-entry point for a completed write (bound through JournalWrite.callback). */
    writeCallback(write: JournalWrite): void {
        if (write.stage === 1) return this.headerSectorCallback(write);
        const slot = write.slot;
        const message = write.message;
        assert(message !== null && slot >= 0);
        const current = this.prepares[slot] ?? null;
        const ok = write.result === IoResult.ok;
        if (!ok) {
            this.writeErrors++;
            // Retried once this write is released (writePrepareDone restarts pending slots): the
            // prepare stays not durable, so it is never acknowledged meanwhile.
            if (current === message) this.markWritePending(slot);
            this.writePrepareDone(write);
            this.writeRelease(write);
            return;
        }
        const sector = Math.floor(slot / headersPerSector);
        if (current === message) this.written[slot] = 1;
        this.writePrepareDone(write);
        if (current === message) {
            // Durable (and acknowledged) once its header sector lands too (see the top).
            this.headerSectorWrite(write, sector);
        } else {
            this.writeRelease(write);
        }
    }

    /** The slot's part of a prepare write is over: the slot may be written again. */
    private writePrepareDone(write: JournalWrite): void {
        const slot = write.slot;
        const message = write.message;
        assert(message !== null);
        assert(this.writing[slot] === 1);
        this.writing[slot] = 0;
        write.message = null;
        write.slot = -1;
        this.pool.unref(message);
        this.writesCompleted++;
        if (this.writePending[slot] === 1) {
            this.writePending[slot] = 0;
            this.writePendingCount--;
            if (this.prepares[slot] !== null && this.written[slot] === 0) this.writeStartWith(slot);
        }
    }

    /** Starts the slot's write, or leaves it pending when no write is free. */
    private writeStartWith(slot: number): void {
        if (this.writing[slot] === 1) return this.markWritePending(slot);
        this.writeStart(slot);
    }

    /**
     * Writes the header sector with `write` (already holding no slot), or, when that sector is
     * being written, marks it dirty for the write in flight to repeat and releases `write`.
     */
    private headerSectorWrite(write: JournalWrite, sector: number): void {
        assert(write.slot === -1 && write.message === null);
        if (this.sectorWriting[sector] === 1) {
            this.sectorDirty[sector] = 1;
            this.writeRelease(write);
            return;
        }
        this.sectorWriting[sector] = 1;
        this.sectorDirty[sector] = 0;
        write.stage = 1;
        write.sector = sector;
        const first = sector * headersPerSector;
        const bytes = this.arena.bytes;
        for (let index = 0; index < headersPerSector; index++) {
            const slot = first + index;
            const target = write.sectorOffset + index * headerSize;
            write.sectorGenerations[index] = 0;
            if (this.written[slot] === 1) {
                const source = this.headerOffset(slot);
                bytes.copyWithin(target, source, source + headerSize);
                write.sectorGenerations[index] = (this.generations[slot] ?? 0) + 1;
            } else if (this.faulty[slot] === 1) {
                this.faultyHeaderImage(slot, target);
            } else {
                bytes.fill(0, target, target + headerSize);
            }
        }
        const offset = this.layout.walHeadersOffset + sector * sectorSize;
        this.storage.write(write, write.sectorOffset, sectorSize, offset);
    }

    /**
     * A faulty slot keeps what recovery must see again after a crash: its header when known (a
     * claim: the slot stays faulty, @C/@K/@N), else an invalid header (@A/@B/@E). Zeros would
     * turn "unknown" into "never written" and a stale prepare beside it into @G: installed as
     * the slot's op, and the newer op it hides nacked in a view change.
     */
    private faultyHeaderImage(slot: number, target: number): void {
        const source = this.headerOffset(slot);
        const bytes = this.arena.bytes;
        if (headerCommand(this.arena.view, source) === Command.prepare) {
            bytes.copyWithin(target, source, source + headerSize);
        } else {
            bytes.fill(0xff, target, target + headerSize); // No valid checksum: invalid.
        }
    }

    private headerSectorCallback(write: JournalWrite): void {
        const sector = write.sector;
        assert(sector >= 0 && this.sectorWriting[sector] === 1);
        this.sectorWriting[sector] = 0;
        write.sector = -1;
        write.stage = 0;
        let durableSlots = 0; // Bit i: slot first + i became durable with this image.
        if (write.result !== IoResult.ok) {
            this.writeErrors++;
            this.sectorDirty[sector] = 1; // Retried: the headers on disk are stale meanwhile.
        } else {
            durableSlots = this.sectorLanded(write, sector);
        }
        if (this.sectorDirty[sector] === 1) this.headerSectorWrite(write, sector);
        else this.writeRelease(write);
        if (sector === this.recoveryRewriteSector && this.sectorWriting[sector] === 0) {
            assert(durableSlots === 0); // Recovered slots are durable already.
            return this.recoveryRewriteNext(sector + 1);
        }
        // Callbacks last: the replica may write again from inside them.
        const first = sector * headersPerSector;
        for (let index = 0; index < headersPerSector; index++) {
            if ((durableSlots & (1 << index)) === 0) continue;
            const message = this.prepares[first + index] ?? null;
            if (message === null || this.durable[first + index] === 0) continue;
            this.durableCallback(prepareOp(this.arena.view, message.offset));
        }
    }

    /** Marks durable each written slot whose header this image held; returns them as bits. */
    private sectorLanded(write: JournalWrite, sector: number): number {
        const first = sector * headersPerSector;
        let durableSlots = 0;
        for (let index = 0; index < headersPerSector; index++) {
            const slot = first + index;
            const generation = write.sectorGenerations[index] ?? 0;
            if (generation === 0 || generation !== (this.generations[slot] ?? 0) + 1) continue;
            if (this.written[slot] === 0 || this.durable[slot] === 1) continue;
            assert(this.prepares[slot] !== null);
            this.durable[slot] = 1;
            durableSlots |= 1 << index;
        }
        return durableSlots;
    }

    /** Returns a write to the free list and starts a waiting prepare write with it. */
    private writeRelease(write: JournalWrite): void {
        assert(write.slot === -1 && write.sector === -1 && write.message === null);
        write.stage = 0;
        this.writesFree.push(write);
        this.writePendingFlush();
    }

    private writePendingFlush(): void {
        for (let slot = 0; slot < this.slotCount && this.writePendingCount > 0; slot++) {
            if (this.writesFree.length === 0) return;
            if (this.writePending[slot] === 0 || this.writing[slot] === 1) continue;
            this.writePending[slot] = 0;
            this.writePendingCount--;
            if (this.prepares[slot] !== null && this.written[slot] === 0) this.writeStart(slot);
        }
    }

    trust(op: number): void {
        assert(this.hasHeader(op));
        this.trustedSlots[this.slotOf(op)] = 1;
    }

    isTrusted(op: number): boolean {
        return this.trustedSlots[this.slotOf(op)] === 1 && this.hasHeader(op);
    }

    /** Forgets all trust (a new view's log is being installed). */
    distrustAll(): void {
        this.trustedSlots.fill(0);
    }

    /** True when the slot of `op` is faulty and holds `op`'s header or no header at all. */
    isFaulty(op: number): boolean {
        const slot = this.slotOf(op);
        if (this.faulty[slot] === 0) return false;
        const offset = this.headerOffset(slot);
        return headerCommand(this.arena.view, offset) !== Command.prepare || this.hasHeader(op);
    }

    /**
     * Empties every faulty slot whose known header is of an op at or below `op` (recovery: ops
     * a checkpoint covers). It stays faulty: with the stale header gone, it stands for the newer
     * op whose prepare it was being written with.
     */
    dropStaleFaultyHeaders(op: number): void {
        const view = this.arena.view;
        for (let slot = 0; slot < this.slotCount; slot++) {
            if (this.faulty[slot] === 0) continue;
            const offset = this.headerOffset(slot);
            if (headerCommand(view, offset) !== Command.prepare) continue;
            if (prepareOp(view, offset) > op) continue;
            this.releasePrepare(slot);
            this.trustedSlots[slot] = 0;
            this.arena.bytes.fill(0, offset, offset + headerSize);
        }
    }

    /**
     * Marks the slot of `op` faulty: recovery knows the op existed but not its prepare. A header
     * of an older op left in the slot (an earlier wrap this replica never overwrote, e.g. it
     * skipped those ops by state sync) is dropped: otherwise the slot would be neither `op`'s
     * header nor faulty for `op` (isFaulty reads a stale header as another op's), and `op` would
     * vanish from the log below its head (storm seed 99).
     */
    markFaultyOp(op: number): void {
        assert(!this.hasHeader(op));
        const slot = this.slotOf(op);
        const offset = this.headerOffset(slot);
        const view = this.arena.view;
        if (headerCommand(view, offset) === Command.prepare) {
            assert(prepareOp(view, offset) < op);
            this.releasePrepare(slot);
            this.trustedSlots[slot] = 0;
            this.arena.bytes.fill(0, offset, offset + headerSize);
        }
        this.markFaulty(slot);
        assert(this.isFaulty(op));
    }

    private markFaulty(slot: number): void {
        if (this.faulty[slot] === 1) return;
        this.faulty[slot] = 1;
        this.faultyCount++;
    }

    private clearFaulty(slot: number): void {
        if (this.faulty[slot] === 0) return;
        this.faulty[slot] = 0;
        this.faultyCount--;
        this.faultyRepaired++;
    }

    /** Faulty slots that received their prepare again (protocol-aware recovery at work). */
    faultyRepaired = 0;

    /** Releases every message the journal holds (a crash: in-flight I/O will never complete). */
    releaseAll(): void {
        for (let slot = 0; slot < this.slotCount; slot++) this.releasePrepare(slot);
        for (const write of this.writes) {
            if (write.message !== null) this.pool.unref(write.message);
            write.message = null;
        }
        if (this.recoveryRead.message !== null) this.pool.unref(this.recoveryRead.message);
        this.recoveryRead.message = null;
    }

    // -----------------------------------------------------------------------------------------
    // Recovery: read both rings, classify every slot (journal_recovery.ts), install the result.

    private readonly recoveryRead: RecoveryRead;
    private recoveryCallback: ((ok: boolean) => void) | null = null;
    private recoveryCluster = 0;
    private recoverySolo = false;
    /** Per slot during recovery: the pool message read from the prepares ring. */
    private readonly recoveryPrepares: (Message | null)[] = [];
    recoveryCases: Int32Array = new Int32Array(0);

    /** Reads the WAL and installs what it holds; `solo` selects the one-replica decisions. */
    recover(cluster: number, solo: boolean, callback: (ok: boolean) => void): void {
        assert(this.recoveryCallback === null);
        this.recoveryCallback = callback;
        this.recoveryCluster = cluster;
        this.recoverySolo = solo;
        if (this.recoveryPrepares.length === 0) {
            for (let slot = 0; slot < this.slotCount; slot++) this.recoveryPrepares.push(null);
            this.recoveryCases = new Int32Array(this.slotCount);
        }
        this.recoveryRead.slot = -1;
        this.recoveryRead.sector = -1;
        this.recoveryHeaderSectorsFailed.fill(0);
        this.recoveryPreparesFailed.fill(0);
        this.recoveryRewriteSectors.fill(0);
        this.storage.read(
            this.recoveryRead,
            this.recoveryHeaders,
            this.layout.walHeadersSize,
            this.layout.walHeadersOffset,
        );
    }

    recoveryReadCallback(read: RecoveryRead): void {
        const failed = read.result !== IoResult.ok;
        if (failed) this.recoveryReadErrors++;
        if (read.slot < 0 && !this.recoveryHeadersRead(read, failed)) return;
        if (read.slot >= 0) {
            if (failed) this.recoveryPreparesFailed[read.slot] = 1;
            this.recoveryPrepares[read.slot] = read.message;
            read.message = null;
        }
        read.slot++;
        if (read.slot < this.slotCount) {
            read.message = this.pool.acquire();
            const offset = this.layout.walPreparesOffset + read.slot * this.messageSizeMax;
            this.storage.read(read, read.message.offset, this.messageSizeMax, offset);
            return;
        }
        this.recoveryClassify();
        this.recoveryDone();
    }

    /**
     * A read of the headers ring completed: on failure, falls back to (or goes on with) reads of
     * one sector at a time. Returns true once the ring is read, as well as it can be.
     */
    private recoveryHeadersRead(read: RecoveryRead, failed: boolean): boolean {
        assert(read.slot === -1 && read.message === null);
        const sectors = this.recoveryHeaderSectorsFailed.length;
        if (read.sector < 0) {
            if (!failed) return true;
            read.sector = 0;
        } else {
            if (failed) this.recoveryHeaderSectorsFailed[read.sector] = 1;
            read.sector++;
            if (read.sector === sectors) return true;
        }
        const offset = read.sector * sectorSize;
        this.storage.read(
            read,
            this.recoveryHeaders + offset,
            sectorSize,
            this.layout.walHeadersOffset + offset,
        );
        return false;
    }

    private recoveryDone(): void {
        assert(this.recoveryCallback !== null);
        for (let slot = 0; slot < this.slotCount; slot++) {
            const message = this.recoveryPrepares[slot] ?? null;
            if (message !== null) this.pool.unref(message);
            this.recoveryPrepares[slot] = null;
        }
        this.recoveryRewriteNext(0);
    }

    /** Rewrites, one at a time, the header sectors from `from` on that hold a fixed slot. */
    private recoveryRewriteNext(from: number): void {
        this.recoveryRewriteSector = -1;
        for (let sector = from; sector < this.recoveryRewriteSectors.length; sector++) {
            if (this.recoveryRewriteSectors[sector] === 0) continue;
            const write = this.writesFree.pop();
            assert(write !== undefined); // Nothing else writes while recovery runs.
            this.recoveryRewriteSector = sector;
            this.recoveryHeadersRewritten++;
            return this.headerSectorWrite(write, sector);
        }
        const callback = this.recoveryCallback;
        assert(callback !== null);
        this.recoveryCallback = null;
        callback(true);
    }

    private slotKind(base: number, slot: number, isPrepare: boolean): SlotKind {
        const view = this.arena.view;
        const failed = isPrepare
            ? this.recoveryPreparesFailed[slot] === 1
            : this.recoveryHeaderSectorsFailed[Math.floor(slot / headersPerSector)] === 1;
        if (failed) return SlotKind.invalid; // Unreadable: whatever it held, it may matter.
        if (allZero(this.arena.bytes, base, headerSize)) return SlotKind.reserved;
        if (!validHeaderChecksum(this.arena.bytes, base)) return SlotKind.invalid;
        if (invalidHeader(view, base, this.messageSizeMax) !== null) return SlotKind.invalid;
        if (headerCommand(view, base) !== Command.prepare) return SlotKind.invalid;
        if (view.getUint32(base + Frame.cluster, true) !== this.recoveryCluster)
            return SlotKind.invalid;
        // In another slot's place: a misdirected write.
        if (prepareOp(view, base) % this.slotCount !== slot) return SlotKind.invalid;
        if (!isPrepare) return SlotKind.valid;
        const size = headerSizeOf(view, base);
        if (!this.acceptCorruptPrepare && !validBodyChecksum(this.arena.bytes, base, size)) {
            return SlotKind.invalid;
        }
        if (prepareOp(view, base) > 0 && invalidBatch(view, base) !== null) return SlotKind.invalid;
        return SlotKind.valid;
    }

    private recoveryClassify(): void {
        const view = this.arena.view;
        let opMax = -1;
        for (let slot = 0; slot < this.slotCount; slot++) {
            const header = this.recoveryHeaders + slot * headerSize;
            if (this.slotKind(header, slot, false) === SlotKind.valid) {
                opMax = Math.max(opMax, prepareOp(view, header));
            }
            const message = this.recoveryPrepares[slot] ?? null;
            assert(message !== null);
            if (this.slotKind(message.offset, slot, true) === SlotKind.valid) {
                opMax = Math.max(opMax, prepareOp(view, message.offset));
            }
        }
        for (let slot = 0; slot < this.slotCount; slot++) this.recoverSlot(slot, opMax);
    }

    private recoverSlot(slot: number, opMax: number): void {
        const view = this.arena.view;
        const header = this.recoveryHeaders + slot * headerSize;
        const message = this.recoveryPrepares[slot] ?? null;
        assert(message !== null);
        const headerKind = this.slotKind(header, slot, false);
        const prepareKind = this.slotKind(message.offset, slot, true);
        let relation: Relation = Relation.none;
        if (headerKind === SlotKind.valid && prepareKind === SlotKind.valid) {
            const headerOp = prepareOp(view, header);
            const op = prepareOp(view, message.offset);
            if (u128Equal(view, header + Frame.checksum, message.offset + Frame.checksum)) {
                relation = Relation.identical;
            } else if (headerOp < op) relation = Relation.headerOlder;
            else if (headerOp > op) relation = Relation.headerNewer;
            else if (headerView(view, header) < headerView(view, message.offset)) {
                // The op prepared again in a later view (its header write was lost): a header
                // is written only after its prepare is durable, and a later view's log never
                // brings back an older view's prepare of an op, so the prepare is the newer.
                relation = Relation.headerOlder;
            } else relation = Relation.sameOpDifferent;
        }
        const prepareIsMax =
            prepareKind === SlotKind.valid && prepareOp(view, message.offset) === opMax;
        const row = recoveryCase(headerKind, prepareKind, relation, prepareIsMax);
        const decision = decide(row, this.recoverySolo);
        this.recoveryCases[slot] = recoveryCases.indexOf(row);
        if (decision === Decision.clean || decision === Decision.fix) {
            this.installRecovered(slot, message);
            // The header on disk is stale: rewrite its sector before recovery reports done, so
            // that "durable" (prepare_ok) keeps meaning prepare and header on disk.
            if (decision === Decision.fix) {
                this.recoveryRewriteSectors[Math.floor(slot / headersPerSector)] = 1;
            }
        } else if (decision === Decision.faulty) {
            if (headerKind === SlotKind.valid) this.setHeader(header);
            this.markFaulty(slot);
        }
    }

    /** Installs a prepare read from disk: already durable, no write. */
    private installRecovered(slot: number, message: Message): void {
        this.setHeader(message.offset);
        assert(this.prepares[slot] === null);
        this.prepares[slot] = this.pool.ref(message);
        this.durable[slot] = 1;
        this.written[slot] = 1;
    }

    /**
     * Slot states: a prepare sits only under its own header; durable implies present; a faulty
     * slot holds no prepare; one write per slot and per header sector, each held by a write.
     */
    invariants(): void {
        const view = this.arena.view;
        let slotsWriting = 0;
        for (let slot = 0; slot < this.slotCount; slot++) {
            const message = this.prepares[slot] ?? null;
            if (message !== null) {
                const header = this.headerOffset(slot);
                assert(u128Equal(view, header + Frame.checksum, message.offset + Frame.checksum));
                assert(this.faulty[slot] === 0);
                assert(this.durable[slot] === 0 || this.written[slot] === 1);
            } else {
                assert(this.durable[slot] === 0 && this.written[slot] === 0);
            }
            slotsWriting += this.writing[slot] ?? 0;
        }
        let sectorsWriting = 0;
        for (let sector = 0; sector < this.sectorWriting.length; sector++) {
            sectorsWriting += this.sectorWriting[sector] ?? 0;
        }
        let prepareWrites = 0;
        let sectorWrites = 0;
        for (const write of this.writes) {
            if (write.slot >= 0) prepareWrites++;
            if (write.sector >= 0) sectorWrites++;
            assert(write.slot < 0 || write.sector < 0);
        }
        assert(prepareWrites === slotsWriting && sectorWrites === sectorsWriting);
        assert(prepareWrites + sectorWrites === this.writesInFlight);
    }

    /** Prepares held in memory (for pool accounting in tests). */
    preparesHeld(): number {
        let count = 0;
        for (let slot = 0; slot < this.slotCount; slot++) if (this.prepares[slot] !== null) count++;
        return count;
    }

    get writesInFlight(): number {
        return this.writes.length - this.writesFree.length;
    }
}
