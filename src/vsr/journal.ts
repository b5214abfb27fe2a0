// The journal (write-ahead log): a ring of `journalSlotCount` slots, slot = op % slotCount. For
// each slot it owns the prepare header (a copy in the arena, all-zero when the slot is empty),
// whether the slot holds that header's prepare (`stored`: in the cache, or on disk), and whether
// that prepare is durable. The WAL is disk-resident: memory holds the header ring and a small
// prepare cache (a clock over `prepareCacheMax` pool messages), never a prepare per slot, so the
// window can be long (thousands of slots) while memory stays flat.
//
// Prepare cache: a prepare enters it when it is stored (put) or read back; it leaves when its
// slot changes or the clock evicts it. Only a durable prepare (written and read back) may be
// evicted, since the disk then holds it, so a prepare not durable yet is always cached. When
// every entry is not durable yet a put is refused (counted): a backup repairs the op later,
// and the primary asks `prepareCacheRoom()` before it prepares. Reads: `readPrepare` returns the
// cached prepare, or starts an asynchronous read of it (one of `journalReadsMax` preallocated
// reads, each taking a pool message) and returns null; when the read lands the prepare is cached
// and `readCallback` resumes the consumer (commit, a repair reply to the replicas that asked, a
// new primary's pipeline). A read that fails or whose bytes are not the slot's prepare (latent
// sector error, a misdirected or corrupted write) makes the slot faulty: repaired from peers,
// never nacked.
//
// Write order, per prepare: (1) the prepare goes to the prepares ring; (2) its first sector is
// read back and compared with what was written; (3) once it matched, the whole 4 KiB sector of
// the redundant headers ring that holds its slot is rewritten from memory, with every header
// whose prepare is not durable written as zeros. A crash before (3) lands leaves a durable
// prepare beside a stale header, which recovery fixes locally (@G, @M); a header never claims a
// prepare that is not on disk.
//
// Durability (what prepare_ok promises): a prepare is durable once its write completed without
// error and its first sector read back holds the bytes written. The read-back matters: a
// prepare write that is lost silently (misdirected to another slot) leaves the slot's older
// prepare intact and self-consistent, which recovery could only read as "this op never arrived"
// — a nack of an acknowledged op (storm seed 1335 truncated a committed op that way). The read
// sees the older bytes, and the prepare is written again before it is acknowledged. A prepare
// damaged after that (a latent sector error, another slot's misdirected write) fails its
// checksums when read: faulty, never nacked, repaired from peers, whether its header sector was
// written yet (@C) or not (@B, or @C under an older op's header: a faulty slot stands for the
// newer op of its position, see isFaulty and dropStaleFaultyHeaders). The header sector is not
// waited for: one read instead of a second synchronous write on the acknowledgement's path
// (bench/disk_floor.bench.ts on the development VM, 4 KiB: write then read p50 0.59 ms, write
// then header write 0.93 ms). A crash may tear any write in flight (the simulator's storage
// tears any write in flight on the replica that owns the slot).
//
// Header sectors: at most one write per sector is in flight, so an older image never lands after
// a newer one; a sector that changes while written is marked dirty and written again (coalesced)
// once the write in flight completes. Group commit by time: a prepare that becomes durable only
// marks its sector owed, and the replica's tick writes each owed sector once, one image for all
// its prepares that became durable since (at 10 ms a tick and hundreds of prepares a second,
// one header write per several prepares instead of one each). That only delays a header write,
// never moves it before its prepare, so recovery sees nothing new.
// Errors: a failed or unverified prepare write is retried (the prepare stays not durable, never
// acknowledged, until a write is verified); a failed header-sector write is retried; a failed
// recovery read makes the slot (or the header sector) invalid, so recovery marks it faulty and
// repairs it from peers (see below).
//
// Recovery rewrites, before it reports done, every header sector holding a slot it fixed (a
// valid prepare beside a stale header), so that the ring names every durable prepare again: one
// damaged later is then faulty under its own header (@C). A sector image never writes zeros for
// a faulty slot: its known header, else an invalid one (see faultyHeaderImage), so a faulty slot
// is faulty again after the next crash.
//
// Invariants: a prepare is cached only under a header with its checksum; cached implies stored;
// durable implies stored; not durable implies cached; at most one write per slot and one per
// header sector is in flight (a newer prepare waits for it).
//
// Recovery reads the headers ring in one read. If it fails (EIO: a latent sector error), it is
// read again one sector at a time: a sector that still fails leaves its slots' headers invalid
// (not reserved), and a prepare whose read fails is invalid, so the decision table marks those
// slots faulty for protocol-aware repair instead of failing the whole recovery. Prepares are
// read `journalReadsMax` at a time, each only as far as its header's size (first its header's
// sector, then the rest when larger): a long, sparsely filled WAL recovers in one small read a
// slot. Nothing recovered is cached: commit reads each prepare back when it executes it.

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

const WriteStage = { prepare: 0, headerSector: 1, verify: 2 } as const;

class JournalWrite implements StorageCompletion {
    result: IoResult = IoResult.ok;
    readonly journal: Journal;
    /**
     * Arena offset of this write's private sector buffer: the header-sector image it writes, or
     * the prepare's first sector read back to verify it.
     */
    readonly sectorOffset: number;
    /** The slot whose prepare is written or verified (stages prepare, verify), else -1. */
    slot = -1;
    /** The header sector written (stage headerSector), else -1. */
    sector = -1;
    message: Message | null = null;
    stage: number = WriteStage.prepare;

    constructor(journal: Journal, sectorOffset: number) {
        this.journal = journal;
        this.sectorOffset = sectorOffset;
    }

    callback(completion: StorageCompletion): void {
        assert(completion === this);
        this.journal.writeCallback(this);
    }
}

/**
 * Called when a prepare read back from disk landed intact (it is cached, when the cache had
 * room): `destinations` has bit r set for each replica r that asked for it (request_prepare).
 */
export type JournalReadCallback = (op: number, message: Message, destinations: number) => void;

class JournalRead implements StorageCompletion {
    result: IoResult = IoResult.ok;
    readonly journal: Journal;
    /** The slot read (-1: free). */
    slot = -1;
    /** The slot's generation when the read started: a landing read of an older one is stale. */
    generation = 0;
    /** Bit r: replica r asked for this prepare. */
    destinations = 0;
    message: Message | null = null;

    constructor(journal: Journal) {
        this.journal = journal;
    }

    callback(completion: StorageCompletion): void {
        assert(completion === this);
        this.journal.readCallbackFor(this);
    }
}

class RecoveryRead implements StorageCompletion {
    result: IoResult = IoResult.ok;
    readonly journal: Journal;
    /** The slot being read (-1: the headers ring, or none). */
    slot = -1;
    /** The headers-ring sector being read alone after the whole read failed (-1: none). */
    sector = -1;
    /** Reading a prepare: 0 its first sector, 1 the rest of it. */
    stage = 0;
    message: Message | null = null;

    constructor(journal: Journal) {
        this.journal = journal;
    }

    callback(completion: StorageCompletion): void {
        assert(completion === this);
        this.journal.recoveryReadCallback(this);
    }
}

/** True when the sectors at arena offsets `a` and `b` hold the same bytes. */
function sectorEqual(bytes: Uint8Array, a: number, b: number): boolean {
    for (let index = 0; index < sectorSize; index++) {
        if (bytes[a + index] !== bytes[b + index]) return false;
    }
    return true;
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
    /** Per slot: the cached prepare (the cache's reference), or null. */
    private readonly prepares: (Message | null)[] = [];
    /** Per slot: the slot holds its header's prepare (cached, or written to disk). */
    private readonly stored: Uint8Array;
    /**
     * Per slot: the prepare's write completed and read back intact (acknowledgeable; the disk
     * holds it, so its cache entry may go; its header sector may still be owed).
     */
    private readonly durable: Uint8Array;
    /** Per slot: bumped whenever the slot's prepare is replaced or dropped. */
    private readonly generations: Float64Array;
    private readonly writing: Uint8Array;
    private readonly writePending: Uint8Array;
    /**
     * A faulty slot may hold an op this replica acknowledged but cannot read (found by
     * recovery): repaired from peers, never nacked. Cleared only once a prepare stored there
     * is durable: until then the slot still stands for a possible acknowledgement that no
     * disk of this replica backs (see putPrepare).
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
    /** Cache entries (clock): per entry its slot (-1: free), and its referenced bit. */
    readonly prepareCacheMax: number;
    private readonly cacheEntrySlots: Int32Array;
    private readonly cacheReferenced: Uint8Array;
    /** Per slot: its cache entry, or -1. */
    private readonly slotCacheEntries: Int32Array;
    private cacheHand = 0;
    private cacheCount = 0;
    /** readPrepare calls answered from the cache, and those that had to go to disk. */
    cacheHits = 0;
    cacheMisses = 0;
    /** Puts refused because every cache entry held a prepare not yet written. */
    cacheRefusals = 0;
    private readonly reads: JournalRead[] = [];
    private readonly readsFree: JournalRead[] = [];
    private readonly readCallback: JournalReadCallback | null;
    /** Prepare reads from disk started (commit, repair, view change; not recovery). */
    readsStarted = 0;
    /** Prepare reads that failed or returned other bytes than the slot's prepare (faulty). */
    readErrors = 0;
    /** Recovery scratch: the redundant headers ring as read from disk. */
    private readonly recoveryHeaders: number;
    /** Recovery scratch: per slot, the header of the prepare read from the prepares ring. */
    private readonly recoveryPrepareHeaders: number;
    /** Recovery scratch: per slot, the SlotKind of that prepare. */
    private readonly recoveryPrepareKinds: Uint8Array;
    /** Recovery scratch, per headers-ring sector: 1 when its read failed. */
    private readonly recoveryHeaderSectorsFailed: Uint8Array;
    /** Recovery reads that failed (whole ring, sectors, prepares): each made slots faulty. */
    recoveryReadErrors = 0;
    /** Recovery scratch, per header sector: a slot in it was fixed (its header is stale). */
    private readonly recoveryRewriteSectors: Uint8Array;
    /** The header sector recovery is rewriting (before it reports done), else -1. */
    private recoveryRewriteSector = -1;
    private writePendingCount = 0;
    /**
     * Slots whose prepare write waits for a free write, oldest first (a ring over slotCount
     * entries, each slot at most once, per writePendingQueued): a released write takes the
     * oldest in O(1) instead of scanning every slot.
     */
    private readonly writePendingRing: Int32Array;
    private readonly writePendingQueued: Uint8Array;
    private writePendingHead = 0;
    private writePendingQueuedCount = 0;
    /** Per header sector: a prepare of it became durable since its image was last taken. */
    private readonly sectorHeaderOwed: Uint8Array;
    /** Header sectors owed a write (the ones tick() writes). */
    private sectorsOwed = 0;
    /** Header-sector images written (each covers every durable prepare of its sector). */
    headerSectorWrites = 0;
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
    /**
     * Prepare writes whose first sector read back other bytes, or whose read-back failed (a
     * misdirected or corrupted write, a latent sector error): each written again.
     */
    writesUnverified = 0;

    constructor(
        config: Config,
        arena: Allocator,
        pool: MessagePool,
        storage: Storage,
        dataLayout: Layout,
        durableCallback: (op: number) => void,
        acceptCorruptPrepare = false,
        readCallback: JournalReadCallback | null = null,
    ) {
        this.readCallback = readCallback;
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
        this.stored = new Uint8Array(this.slotCount);
        this.prepareCacheMax = config.prepareCacheMax;
        this.cacheEntrySlots = new Int32Array(this.prepareCacheMax).fill(-1);
        this.cacheReferenced = new Uint8Array(this.prepareCacheMax);
        this.slotCacheEntries = new Int32Array(this.slotCount).fill(-1);
        for (let index = 0; index < config.journalReadsMax; index++) {
            const read = new JournalRead(this);
            this.reads.push(read);
            this.readsFree.push(read);
        }
        this.durable = new Uint8Array(this.slotCount);
        this.generations = new Float64Array(this.slotCount);
        this.writing = new Uint8Array(this.slotCount);
        this.writePending = new Uint8Array(this.slotCount);
        this.writePendingRing = new Int32Array(this.slotCount);
        this.writePendingQueued = new Uint8Array(this.slotCount);
        this.faulty = new Uint8Array(this.slotCount);
        this.trustedSlots = new Uint8Array(this.slotCount);
        assert(this.slotCount % headersPerSector === 0);
        this.sectorWriting = new Uint8Array(this.slotCount / headersPerSector);
        this.sectorDirty = new Uint8Array(this.slotCount / headersPerSector);
        this.sectorHeaderOwed = new Uint8Array(this.slotCount / headersPerSector);
        this.recoveryHeaders = arena.allocate(dataLayout.walHeadersSize, sectorSize);
        this.recoveryHeaderSectorsFailed = new Uint8Array(dataLayout.walHeadersSize / sectorSize);
        this.recoveryPrepareHeaders = arena.allocate(dataLayout.walHeadersSize, sectorSize);
        this.recoveryPrepareKinds = new Uint8Array(this.slotCount);
        this.recoveryRewriteSectors = new Uint8Array(this.slotCount / headersPerSector);
        for (let index = 0; index < config.journalReadsMax; index++) {
            this.recoveryReads.push(new RecoveryRead(this));
        }
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

    /** File offset of the slot's place in the prepares ring. */
    private prepareOffsetOf(slot: number): number {
        return this.layout.walPreparesOffset + slot * this.messageSizeMax;
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

    /** The prepare of `op` when it is cached under a matching header (no read, no counting). */
    prepare(op: number): Message | null {
        if (!this.hasHeader(op)) return null;
        const message = this.prepares[this.slotOf(op)] ?? null;
        if (message !== null) assert(prepareOp(this.arena.view, message.offset) === op);
        return message;
    }

    /** True when the slot holds the prepare of `op` (cached, or written to disk). */
    hasPrepare(op: number): boolean {
        return this.hasHeader(op) && this.stored[this.slotOf(op)] === 1;
    }

    isDurable(op: number): boolean {
        return this.hasPrepare(op) && this.durable[this.slotOf(op)] === 1;
    }

    /**
     * The prepare of `op` from the cache; else, when the slot holds it on disk, starts (or
     * joins) its read and returns null: readCallback resumes the consumer when it lands, with
     * bit `destination` set in its destinations (-1: no replica waits for it).
     */
    readPrepare(op: number, destination: number): Message | null {
        assert(destination >= -1 && destination < 31);
        if (!this.hasPrepare(op)) return null;
        const slot = this.slotOf(op);
        const message = this.prepares[slot] ?? null;
        if (message !== null) {
            this.cacheHits++;
            this.cacheReferenced[this.slotCacheEntries[slot] ?? -1] = 1;
            return message;
        }
        this.cacheMisses++;
        this.readStart(slot, destination);
        return null;
    }

    /** Starts reads of the uncached prepares of opMin..opMax while reads are free (commit). */
    prefetch(opMin: number, opMax: number): void {
        for (let op = opMin; op <= opMax && this.readsFree.length > 0; op++) {
            const slot = this.slotOf(op);
            if (this.hasPrepare(op) && this.prepares[slot] === null) this.readStart(slot, -1);
        }
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

    /**
     * Stores the prepare under its (already installed) header and starts its durable write.
     * Returns false when refused: every cache entry holds a prepare not yet written.
     */
    putPrepare(message: Message): boolean {
        const view = this.arena.view;
        const op = prepareOp(view, message.offset);
        const slot = this.slotOf(op);
        assert(this.hasHeaderWithChecksum(op, message.offset + Frame.checksum));
        if (this.stored[slot] === 1) {
            // Already held (a duplicate or a repair race): at most it saves a read.
            if (this.prepares[slot] === null) this.cacheInsert(slot, message);
            return true;
        }
        if (!this.cacheInsert(slot, message)) return false;
        // A faulty slot stays faulty until this prepare is durable (verifyCallback): the op may
        // be one this replica acknowledged before it lost it, and a do_view_change built
        // meanwhile must not nack it because its repaired copy is still being written. Storm
        // seed 356: a new primary repaired its committed op 100 into a faulty slot, nacked it
        // while the write was in flight, and with two replicas one nack truncated it.
        this.stored[slot] = 1;
        this.slotReset(slot);
        if (this.writing[slot] === 1) {
            this.markWritePending(slot);
            return true;
        }
        this.writeStart(slot);
        return true;
    }

    private releasePrepare(slot: number): void {
        if (this.stored[slot] === 0) return;
        if (this.prepares[slot] !== null) this.cacheDrop(slot);
        this.stored[slot] = 0;
        this.slotReset(slot);
    }

    /** True when a put would be taken: a cache entry is free or holds a written prepare. */
    prepareCacheRoom(): boolean {
        if (this.cacheCount < this.prepareCacheMax) return true;
        for (let entry = 0; entry < this.prepareCacheMax; entry++) {
            if (this.evictable(this.cacheEntrySlots[entry] ?? -1)) return true;
        }
        return false;
    }

    private evictable(slot: number): boolean {
        assert(slot >= 0 && this.prepares[slot] !== null);
        return this.durable[slot] === 1 && this.writing[slot] === 0;
    }

    /** Caches the slot's prepare, evicting a written one when full; false when none can go. */
    private cacheInsert(slot: number, message: Message): boolean {
        assert(this.prepares[slot] === null && this.slotCacheEntries[slot] === -1);
        let entry = -1;
        if (this.cacheCount < this.prepareCacheMax) {
            entry = this.cacheEntrySlots.indexOf(-1);
        } else {
            entry = this.cacheEvict();
            if (entry < 0) {
                this.cacheRefusals++;
                return false;
            }
        }
        assert(entry >= 0 && this.cacheEntrySlots[entry] === -1);
        this.cacheEntrySlots[entry] = slot;
        this.cacheReferenced[entry] = 1;
        this.slotCacheEntries[slot] = entry;
        this.prepares[slot] = this.pool.ref(message);
        this.cacheCount++;
        return true;
    }

    /** Clock: the first written entry not referenced since the hand last passed; -1: none. */
    private cacheEvict(): number {
        for (let step = 0; step < 2 * this.prepareCacheMax; step++) {
            const entry = this.cacheHand;
            this.cacheHand = (this.cacheHand + 1) % this.prepareCacheMax;
            const slot = this.cacheEntrySlots[entry] ?? -1;
            if (!this.evictable(slot)) continue;
            if (this.cacheReferenced[entry] === 1) {
                this.cacheReferenced[entry] = 0;
                continue;
            }
            this.cacheDrop(slot);
            return entry;
        }
        return -1;
    }

    /** Takes the slot's prepare out of the cache (it stays stored when written). */
    private cacheDrop(slot: number): void {
        const message = this.prepares[slot] ?? null;
        const entry = this.slotCacheEntries[slot] ?? -1;
        assert(message !== null && entry >= 0);
        this.prepares[slot] = null;
        this.slotCacheEntries[slot] = -1;
        this.cacheEntrySlots[entry] = -1;
        this.cacheCount--;
        this.pool.unref(message);
    }

    /** Starts (or joins) the read of the slot's prepare from disk; false when no read is free. */
    private readStart(slot: number, destination: number): boolean {
        assert(this.stored[slot] === 1 && this.prepares[slot] === null);
        assert(this.durable[slot] === 1 && this.writing[slot] === 0);
        const generation = this.generations[slot] ?? 0;
        const bit = destination >= 0 ? 1 << destination : 0;
        // Indexed, not for-of: an array iterator is an allocation unless the compiler elides it.
        const reads = this.reads;
        for (let index = 0; index < reads.length; index++) {
            const pending = reads[index]!;
            if (pending.slot !== slot || pending.generation !== generation) continue;
            pending.destinations |= bit;
            return true;
        }
        const read = this.readsFree.pop();
        if (read === undefined) return false; // Retried by the consumer once a read lands.
        assert(read.slot === -1 && read.message === null);
        read.slot = slot;
        read.generation = generation;
        read.destinations = bit;
        read.message = this.pool.acquire();
        this.readsStarted++;
        const size = alignUp(headerSizeOf(this.arena.view, this.headerOffset(slot)));
        const offset = this.prepareOffsetOf(slot);
        this.storage.read(read, read.message.offset, size, offset);
        return true;
    }

    /** Re-entry point for a landed prepare read (bound through JournalRead.callback). */
    readCallbackFor(read: JournalRead): void {
        const slot = read.slot;
        const message = read.message;
        const destinations = read.destinations;
        assert(slot >= 0 && message !== null);
        read.slot = -1;
        read.message = null;
        read.destinations = 0;
        this.readsFree.push(read);
        const current =
            read.generation === (this.generations[slot] ?? 0) &&
            this.stored[slot] === 1 &&
            this.prepares[slot] === null;
        if (current) this.readLanded(slot, message, read.result === IoResult.ok, destinations);
        this.pool.unref(message);
    }

    private readLanded(slot: number, message: Message, ok: boolean, destinations: number): void {
        const header = this.headerOffset(slot);
        const bytes = this.arena.bytes;
        const view = this.arena.view;
        const base = message.offset;
        const intact =
            ok &&
            validHeaderChecksum(bytes, base) &&
            u128Equal(view, base + Frame.checksum, header + Frame.checksum) &&
            (this.acceptCorruptPrepare || this.validBody(base));
        if (!intact) {
            // The disk lost it (a latent sector error, a misdirected or corrupt write): the op
            // may have been acknowledged, so it is repaired from peers, never nacked.
            this.readErrors++;
            this.releasePrepare(slot);
            this.markFaulty(slot);
            return;
        }
        this.cacheInsert(slot, message);
        if (this.readCallback !== null) {
            this.readCallback(prepareOp(this.arena.view, header), message, destinations);
        }
    }

    /** The slot's prepare changed: nothing of it is written yet, older images do not count. */
    private slotReset(slot: number): void {
        this.durable[slot] = 0;
        this.generations[slot] = (this.generations[slot] ?? 0) + 1;
    }

    private markWritePending(slot: number): void {
        if (this.writePending[slot] === 1) return;
        this.writePending[slot] = 1;
        this.writePendingCount++;
        if (this.writePendingQueued[slot] === 1) return; // Still queued from an earlier mark.
        assert(this.writePendingQueuedCount < this.slotCount);
        const tail = (this.writePendingHead + this.writePendingQueuedCount) % this.slotCount;
        this.writePendingRing[tail] = slot;
        this.writePendingQueued[slot] = 1;
        this.writePendingQueuedCount++;
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
        write.stage = WriteStage.prepare;
        const size = headerSizeOf(this.arena.view, message.offset);
        const sizeAligned = alignUp(size);
        assert(sizeAligned <= this.messageSizeMax);
        // Sector padding is zeroed: no stale bytes reach the disk, and the image is deterministic.
        this.arena.bytes.fill(0, message.offset + size, message.offset + sizeAligned);
        const offset = this.prepareOffsetOf(slot);
        this.storage.write(write, message.offset, sizeAligned, offset);
    }

    /** Re-entry point for a completed I/O of a write (bound through JournalWrite.callback). */
    writeCallback(write: JournalWrite): void {
        if (write.stage === WriteStage.headerSector) return this.headerSectorCallback(write);
        if (write.stage === WriteStage.verify) return this.verifyCallback(write);
        const slot = write.slot;
        const message = write.message;
        assert(message !== null && slot >= 0);
        if (write.result === IoResult.ok && this.prepares[slot] === message) {
            // Read the first sector back before calling it durable (see the top): a write that
            // landed elsewhere or not at all shows there as the slot's older bytes.
            write.stage = WriteStage.verify;
            const offset = this.prepareOffsetOf(slot);
            this.storage.read(write, write.sectorOffset, sectorSize, offset);
            return;
        }
        if (write.result !== IoResult.ok) {
            this.writeErrors++;
            // Retried once this write is released (writePrepareDone restarts pending slots): the
            // prepare stays not durable, so it is never acknowledged meanwhile.
            if (this.prepares[slot] === message) this.markWritePending(slot);
        }
        this.prepareWriteFinished(write, -1);
    }

    /** The prepare's first sector, read back: durable when it holds what was written. */
    private verifyCallback(write: JournalWrite): void {
        const slot = write.slot;
        const message = write.message;
        assert(message !== null && slot >= 0);
        const current = this.prepares[slot] === message;
        const landed =
            write.result === IoResult.ok &&
            sectorEqual(this.arena.bytes, write.sectorOffset, message.offset);
        let durableOp = -1;
        if (!landed) {
            this.writesUnverified++;
            if (current) this.markWritePending(slot); // Written again, never acknowledged first.
        } else if (current) {
            this.durable[slot] = 1;
            this.clearFaulty(slot); // Repaired: the disk holds the prepare again.
            this.owe(Math.floor(slot / headersPerSector));
            durableOp = prepareOp(this.arena.view, this.headerOffset(slot));
        }
        this.prepareWriteFinished(write, durableOp);
    }

    private owe(sector: number): void {
        if (this.sectorHeaderOwed[sector] === 1) return;
        this.sectorHeaderOwed[sector] = 1;
        this.sectorsOwed++;
    }

    /**
     * Once a tick: writes the header sectors of the prepares that became durable since, one
     * image per sector for all of them (group commit by time: one header write per sector per
     * tick at most, however many prepares). A sector waits for the next tick when no write is
     * free. Nobody waits for these writes (see the top).
     */
    tick(): void {
        if (this.sectorsOwed === 0) return;
        for (let sector = 0; sector < this.sectorHeaderOwed.length; sector++) {
            if (this.sectorHeaderOwed[sector] === 0) continue;
            const write = this.writesFree.pop();
            if (write === undefined) return;
            this.headerSectorWrite(write, sector);
            if (this.sectorsOwed === 0) return;
        }
    }

    /**
     * Ends a prepare write (written and verified, failed, or overtaken by a newer prepare of the
     * slot): frees the slot for its next write and the write for the next waiting one, then
     * calls back `durableOp` (-1: none) last, since the replica may write again from inside.
     */
    private prepareWriteFinished(write: JournalWrite, durableOp: number): void {
        this.writePrepareDone(write);
        this.writeRelease(write);
        if (durableOp >= 0) this.durableCallback(durableOp);
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
            if (this.prepares[slot] !== null && this.durable[slot] === 0) this.writeStartWith(slot);
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
        // The image taken now (or by the write in flight, once it lands) holds every slot
        // written so far: no header write is owed any more.
        if (this.sectorHeaderOwed[sector] === 1) {
            this.sectorHeaderOwed[sector] = 0;
            this.sectorsOwed--;
        }
        if (this.sectorWriting[sector] === 1) {
            this.sectorDirty[sector] = 1;
            this.writeRelease(write);
            return;
        }
        this.sectorWriting[sector] = 1;
        this.sectorDirty[sector] = 0;
        this.headerSectorWrites++;
        write.stage = WriteStage.headerSector;
        write.sector = sector;
        const first = sector * headersPerSector;
        const bytes = this.arena.bytes;
        for (let index = 0; index < headersPerSector; index++) {
            const slot = first + index;
            const target = write.sectorOffset + index * headerSize;
            if (this.durable[slot] === 1) {
                const source = this.headerOffset(slot);
                bytes.copyWithin(target, source, source + headerSize);
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
        if (write.result !== IoResult.ok) {
            this.writeErrors++;
            this.sectorDirty[sector] = 1; // Retried: the headers on disk are stale meanwhile.
        }
        if (this.sectorDirty[sector] === 1) this.headerSectorWrite(write, sector);
        else this.writeRelease(write);
        if (sector === this.recoveryRewriteSector && this.sectorWriting[sector] === 0) {
            this.recoveryRewriteNext(sector + 1);
        }
    }

    /** Returns a write to the free list and starts a waiting prepare write with it. */
    private writeRelease(write: JournalWrite): void {
        assert(write.slot === -1 && write.sector === -1 && write.message === null);
        write.stage = WriteStage.prepare;
        this.writesFree.push(write);
        this.writePendingFlush();
    }

    /**
     * Starts waiting prepare writes, oldest first, while writes are free: O(1) a start. A queued
     * slot whose own write is still in flight leaves the queue but stays pending:
     * writePrepareDone restarts it when that write completes.
     */
    private writePendingFlush(): void {
        while (this.writePendingQueuedCount > 0 && this.writesFree.length > 0) {
            const slot = this.writePendingRing[this.writePendingHead]!;
            this.writePendingHead = (this.writePendingHead + 1) % this.slotCount;
            this.writePendingQueuedCount--;
            assert(this.writePendingQueued[slot] === 1);
            this.writePendingQueued[slot] = 0;
            if (this.writePending[slot] === 0 || this.writing[slot] === 1) continue;
            this.writePending[slot] = 0;
            this.writePendingCount--;
            if (this.prepares[slot] !== null && this.durable[slot] === 0) this.writeStart(slot);
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
        for (const read of this.reads) {
            if (read.message !== null) this.pool.unref(read.message);
            read.message = null;
        }
        for (const read of this.recoveryReads) {
            if (read.message !== null) this.pool.unref(read.message);
            read.message = null;
        }
    }

    // -----------------------------------------------------------------------------------------
    // Recovery: read both rings, classify every slot (journal_recovery.ts), install the result.

    private readonly recoveryReads: RecoveryRead[] = [];
    private recoveryCallback: ((ok: boolean) => void) | null = null;
    private recoveryCluster = 0;
    private recoverySolo = false;
    /** The next slot whose prepare a recovery read takes, and the slots classified so far. */
    private recoverySlotNext = 0;
    private recoverySlotsDone = 0;
    recoveryCases: Int32Array = new Int32Array(0);

    /** Reads the WAL and installs what it holds; `solo` selects the one-replica decisions. */
    recover(cluster: number, solo: boolean, callback: (ok: boolean) => void): void {
        assert(this.recoveryCallback === null);
        this.recoveryCallback = callback;
        this.recoveryCluster = cluster;
        this.recoverySolo = solo;
        if (this.recoveryCases.length === 0) this.recoveryCases = new Int32Array(this.slotCount);
        this.recoverySlotNext = 0;
        this.recoverySlotsDone = 0;
        const read = this.recoveryReads[0];
        assert(read !== undefined);
        read.slot = -1;
        read.sector = -1;
        this.recoveryHeaderSectorsFailed.fill(0);
        this.recoveryPrepareKinds.fill(SlotKind.invalid);
        this.recoveryRewriteSectors.fill(0);
        this.storage.read(
            read,
            this.recoveryHeaders,
            this.layout.walHeadersSize,
            this.layout.walHeadersOffset,
        );
    }

    recoveryReadCallback(read: RecoveryRead): void {
        const failed = read.result !== IoResult.ok;
        if (failed) this.recoveryReadErrors++;
        if (read.slot < 0) {
            if (!this.recoveryHeadersRead(read, failed)) return;
            // The headers ring is in: every recovery read now reads prepares.
            for (const other of this.recoveryReads) {
                other.message = this.pool.acquire();
                this.recoveryPrepareNext(other);
            }
            return;
        }
        if (!this.recoveryPrepareRead(read, failed)) return;
        this.recoverySlotsDone++;
        if (this.recoverySlotsDone === this.slotCount) {
            for (const other of this.recoveryReads) {
                if (other.message !== null) this.pool.unref(other.message);
                other.message = null;
            }
            this.recoveryClassify();
            this.recoveryDone();
            return;
        }
        this.recoveryPrepareNext(read);
    }

    /** Starts the read of the next slot's prepare header sector, if any slot is left. */
    private recoveryPrepareNext(read: RecoveryRead): void {
        read.slot = -1;
        if (this.recoverySlotNext === this.slotCount) return;
        const message = read.message;
        assert(message !== null);
        read.slot = this.recoverySlotNext++;
        read.stage = 0;
        const offset = this.prepareOffsetOf(read.slot);
        this.storage.read(read, message.offset, sectorSize, offset);
    }

    /**
     * A prepare read completed: reads the rest of a valid prepare larger than a sector, else
     * records the slot's prepare kind (and its header). Returns true once the slot is done.
     */
    private recoveryPrepareRead(read: RecoveryRead, failed: boolean): boolean {
        const message = read.message;
        assert(message !== null && read.slot >= 0);
        const slot = read.slot;
        const base = message.offset;
        let kind: SlotKind = failed ? SlotKind.invalid : this.headerKind(base, slot);
        if (kind === SlotKind.valid && read.stage === 0) {
            const sizeAligned = alignUp(headerSizeOf(this.arena.view, base));
            if (sizeAligned > sectorSize) {
                read.stage = 1;
                const offset = this.prepareOffsetOf(slot);
                const rest = sizeAligned - sectorSize;
                this.storage.read(read, base + sectorSize, rest, offset + sectorSize);
                return false;
            }
        }
        if (kind === SlotKind.valid) kind = this.bodyKind(base);
        this.recoveryPrepareKinds[slot] = kind;
        const target = this.recoveryPrepareHeaders + slot * headerSize;
        this.arena.bytes.copyWithin(target, base, base + headerSize);
        return true;
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
            return this.headerSectorWrite(write, sector);
        }
        const callback = this.recoveryCallback;
        assert(callback !== null);
        this.recoveryCallback = null;
        callback(true);
    }

    /** The kind of a redundant header of the slot: its sector's read failed, or as headerKind. */
    private redundantHeaderKind(slot: number): SlotKind {
        const sector = Math.floor(slot / headersPerSector);
        // Unreadable: whatever it held, it may matter.
        if (this.recoveryHeaderSectorsFailed[sector] === 1) return SlotKind.invalid;
        return this.headerKind(this.recoveryHeaders + slot * headerSize, slot);
    }

    /** Classifies a header read from either ring (the prepare's body is bodyKind's). */
    private headerKind(base: number, slot: number): SlotKind {
        const view = this.arena.view;
        if (allZero(this.arena.bytes, base, headerSize)) return SlotKind.reserved;
        if (!validHeaderChecksum(this.arena.bytes, base)) return SlotKind.invalid;
        if (invalidHeader(view, base, this.messageSizeMax) !== null) return SlotKind.invalid;
        if (headerCommand(view, base) !== Command.prepare) return SlotKind.invalid;
        if (view.getUint32(base + Frame.cluster, true) !== this.recoveryCluster)
            return SlotKind.invalid;
        // In another slot's place: a misdirected write.
        if (prepareOp(view, base) % this.slotCount !== slot) return SlotKind.invalid;
        return SlotKind.valid;
    }

    /** The body checksum of a prepare whose header is valid, read in full at `base`. */
    private validBody(base: number): boolean {
        return validBodyChecksum(this.arena.bytes, base, headerSizeOf(this.arena.view, base));
    }

    /** The body of a prepare whose header is valid, read in full at `base`. */
    private bodyKind(base: number): SlotKind {
        const view = this.arena.view;
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
            if (this.redundantHeaderKind(slot) === SlotKind.valid) {
                opMax = Math.max(opMax, prepareOp(view, header));
            }
            if (this.recoveryPrepareKinds[slot] === SlotKind.valid) {
                const prepare = this.recoveryPrepareHeaders + slot * headerSize;
                opMax = Math.max(opMax, prepareOp(view, prepare));
            }
        }
        for (let slot = 0; slot < this.slotCount; slot++) this.recoverSlot(slot, opMax);
    }

    private recoverSlot(slot: number, opMax: number): void {
        const view = this.arena.view;
        const header = this.recoveryHeaders + slot * headerSize;
        const prepare = this.recoveryPrepareHeaders + slot * headerSize;
        const headerKind = this.redundantHeaderKind(slot);
        const prepareKind = (this.recoveryPrepareKinds[slot] ?? SlotKind.invalid) as SlotKind;
        let relation: Relation = Relation.none;
        if (headerKind === SlotKind.valid && prepareKind === SlotKind.valid) {
            const headerOp = prepareOp(view, header);
            const op = prepareOp(view, prepare);
            if (u128Equal(view, header + Frame.checksum, prepare + Frame.checksum)) {
                relation = Relation.identical;
            } else if (headerOp < op) relation = Relation.headerOlder;
            else if (headerOp > op) relation = Relation.headerNewer;
            else if (headerView(view, header) < headerView(view, prepare)) {
                // The op prepared again in a later view (its header write was lost): a header
                // is written only after its prepare is durable, and a later view's log never
                // brings back an older view's prepare of an op, so the prepare is the newer.
                relation = Relation.headerOlder;
            } else relation = Relation.sameOpDifferent;
        }
        const prepareIsMax = prepareKind === SlotKind.valid && prepareOp(view, prepare) === opMax;
        const row = recoveryCase(headerKind, prepareKind, relation, prepareIsMax);
        const decision = decide(row, this.recoverySolo);
        this.recoveryCases[slot] = recoveryCases.indexOf(row);
        if (decision === Decision.clean || decision === Decision.fix) {
            this.installRecovered(slot, prepare);
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

    /** Installs a prepare found on disk (its header at `prepareHeader`): durable, not cached. */
    private installRecovered(slot: number, prepareHeader: number): void {
        this.setHeader(prepareHeader);
        assert(this.stored[slot] === 0 && this.prepares[slot] === null);
        this.stored[slot] = 1;
        this.durable[slot] = 1;
    }

    /**
     * Slot states: a prepare sits only under its own header; cached and durable imply stored;
     * not durable implies cached; a faulty slot holds no durable prepare; the cache's maps agree;
     * one write per slot and per header sector, each held by a write.
     */
    invariants(): void {
        const view = this.arena.view;
        let slotsWriting = 0;
        let cached = 0;
        for (let slot = 0; slot < this.slotCount; slot++) {
            const message = this.prepares[slot] ?? null;
            const entry = this.slotCacheEntries[slot] ?? -1;
            if (message !== null) {
                const header = this.headerOffset(slot);
                assert(u128Equal(view, header + Frame.checksum, message.offset + Frame.checksum));
                assert(this.stored[slot] === 1);
                assert(entry >= 0 && this.cacheEntrySlots[entry] === slot);
                cached++;
            } else {
                assert(entry === -1);
            }
            if (this.stored[slot] === 1) {
                assert(this.hasHeader(prepareOp(view, this.headerOffset(slot))));
                // Faulty and stored: a repaired prepare not durable yet (never nacked).
                assert(this.faulty[slot] === 0 || this.durable[slot] === 0);
                assert(this.durable[slot] === 1 || message !== null);
            } else {
                assert(this.durable[slot] === 0);
            }
            slotsWriting += this.writing[slot] ?? 0;
        }
        assert(cached === this.cacheCount && cached <= this.prepareCacheMax);
        assert(this.readsFree.length <= this.reads.length);
        let sectorsWriting = 0;
        let sectorsOwed = 0;
        for (let sector = 0; sector < this.sectorWriting.length; sector++) {
            sectorsWriting += this.sectorWriting[sector] ?? 0;
            sectorsOwed += this.sectorHeaderOwed[sector] ?? 0;
        }
        assert(sectorsOwed === this.sectorsOwed);
        let queued = 0;
        for (let slot = 0; slot < this.slotCount; slot++) {
            queued += this.writePendingQueued[slot] ?? 0;
            // Pending and neither queued nor being written would never be started.
            if (this.writePending[slot] === 1) {
                assert(this.writePendingQueued[slot] === 1 || this.writing[slot] === 1);
            }
        }
        assert(queued === this.writePendingQueuedCount);
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

    /** Prepares held in memory: the cache's (for pool accounting in tests). */
    preparesHeld(): number {
        return this.cacheCount;
    }

    get readsInFlight(): number {
        return this.reads.length - this.readsFree.length;
    }

    get writesInFlight(): number {
        return this.writes.length - this.writesFree.length;
    }
}
