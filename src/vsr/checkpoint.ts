// Checkpoints: the state machine's image (incrementally, as slot records in grid blocks under a
// block index: see grid.ts), the client table and every session's latest reply. The index and
// the table go to one of two alternating copies, so that the previous checkpoint stays intact
// until the superblock points at the new one; grid blocks are copy-on-write. Recovery = the
// checkpoint the superblock names + the WAL's ops after it.
//
// Steps of a write: grid blocks (one at a time, the delta since the last checkpoint plus a
// bounded amount of cleaning) → block index → serialized client table → each session's reply
// (into the copy's half of the client-replies zone). A read: block index (checked against the
// checksum the superblock recorded) → every block it names, applied oldest first (each checked
// against its own checksum and the index's) → client table (checked likewise) → each reply
// against its own header checksum and the table.
//
// A reply that fails to read (EIO, checksum, wrong client or op) is left out: the session
// stays, with its reply missing, and the replica repairs it from a peer (request_reply). A grid
// block that fails is left out too (grid.missingCount): the replica fetches it from a peer by
// (address, checksum), writes it back and reads the image again (readImage; grid_repair.ts).
// An index or client table that fails is the whole checkpoint failing: the replica then starts
// without state and state-syncs from a peer instead of refusing to start.
//
// A write first snapshots the state: the grid stages the records it will write (cost ∝ the
// change; a change too large for its staging area holds execution until its blocks are built:
// grid.ts), the client table is serialized and every reply referenced, so execution resumes at
// once and the disk writes proceed from the snapshot. Once
// its blocks are written and its index sealed, the snapshot's checkpoint is served to peers by
// state sync: its index, client table and replies as a stream (here), its blocks by
// (address, checksum) from disk (grid_repair.ts).

import { assert } from "../stdx/assert.js";
import { headerSize, sectorSize } from "../constants.js";
import type { Allocator } from "./arena.js";
import { checksum, checksumEquals } from "./checksum.js";
import type { ClientSessions } from "./client_sessions.js";
import {
    Command,
    Frame,
    Reply,
    headerCommand,
    invalidHeader,
    readU64,
    u128Equal,
    validBodyChecksum,
    validHeaderChecksum,
} from "./header.js";
import { IoResult, type StateMachine, type Storage, type StorageCompletion } from "./interfaces.js";
import { Grid, IndexField } from "./grid.js";
import { type Layout, alignUp, sessionEntrySize } from "./layout.js";
import type { Message, MessagePool } from "./message_pool.js";

const Step = { idle: 0, blocks: 1, index: 2, sessions: 3, replies: 4 } as const;

export class Checkpointer implements StorageCompletion {
    result: IoResult = IoResult.ok;
    private readonly storage: Storage;
    private readonly layout: Layout;
    private readonly pool: MessagePool;
    private readonly sessions: ClientSessions;
    private readonly stateMachine: StateMachine;
    private readonly bytes: Uint8Array;
    private readonly view: DataView;
    private readonly messageSizeMax: number;
    private readonly clientsMax: number;
    /** Arena offset of the serialized client table (sector-aligned, checkpointSessionsSize). */
    private readonly sessionsBuffer: number;
    /** The grid: incremental image checkpoints (its index checksum goes to the superblock). */
    readonly grid: Grid;
    /**
     * Arena offsets of checksums: of the block index a state sync being received names (its
     * identity, with the client table's), of the client table written or expected on read.
     */
    readonly syncIndexChecksum: number;
    readonly sessionsChecksum: number;
    /**
     * The snapshot's block index is sealed in grid.indexBuffer (every block of it written): the
     * snapshot may be served to a peer. False while a checkpoint's blocks are being written.
     */
    private snapshotIndexReady = false;
    /** Blocks to read at recovery (the index's count) and the next one. */
    private blocksToRead = 0;
    private step: number = Step.idle;
    private writing = false;
    private copy = 0;
    private entry = 0;
    private readMessage: Message | null = null;
    private readonly readReplies: (Message | null)[] = [];
    /** The replies of the snapshot (one reference each until the next snapshot). */
    private readonly snapshotReplies: (Message | null)[] = [];
    /** The op the snapshot was taken at (0: none yet) and its prepare's checksum. */
    snapshotOp = 0;
    readonly snapshotAnchor: number;
    /** State sync being received: one message per reply being assembled. */
    private readonly syncReplies: (Message | null)[] = [];
    private ok = true;
    private doneCallback: ((ok: boolean) => void) | null = null;
    writes = 0;
    /**
     * Writes the data file refused (EIO) and that were issued again. A checkpoint write is
     * retried until it lands: copy-on-write keeps the durable checkpoint intact meanwhile, and
     * the superblock names the new one only after every write of it landed.
     */
    writeRetries = 0;
    /** The write in flight (arena offset, size, file offset), for a retry. */
    private writeBuffer = 0;
    private writeSize = 0;
    private writeOffset = 0;

    constructor(
        allocator: Allocator,
        storage: Storage,
        dataLayout: Layout,
        pool: MessagePool,
        sessions: ClientSessions,
        stateMachine: StateMachine,
        messageSizeMax: number,
    ) {
        assert(stateMachine.imageOffset % sectorSize === 0);
        assert(stateMachine.imageSize === dataLayout.kvImageSize);
        this.storage = storage;
        this.layout = dataLayout;
        this.pool = pool;
        this.sessions = sessions;
        this.stateMachine = stateMachine;
        this.bytes = allocator.bytes;
        this.view = allocator.view;
        this.messageSizeMax = messageSizeMax;
        this.clientsMax = sessions.entriesMax;
        this.sessionsBuffer = allocator.allocate(dataLayout.checkpointSessionsSize, sectorSize);
        this.syncIndexChecksum = allocator.allocate(16, 16);
        this.sessionsChecksum = allocator.allocate(16, 16);
        for (let entry = 0; entry < this.clientsMax; entry++) this.readReplies.push(null);
        for (let entry = 0; entry < this.clientsMax; entry++) this.snapshotReplies.push(null);
        this.grid = new Grid(allocator, dataLayout, stateMachine);
        this.snapshotAnchor = allocator.allocate(16, 16);
        for (let entry = 0; entry < this.clientsMax; entry++) this.syncReplies.push(null);
    }

    private releaseSnapshot(): void {
        for (let entry = 0; entry < this.clientsMax; entry++) {
            const reply = this.snapshotReplies[entry] ?? null;
            if (reply !== null) this.pool.unref(reply);
            this.snapshotReplies[entry] = null;
        }
    }

    // -----------------------------------------------------------------------------------------
    // State sync: the snapshot's checkpoint as one byte stream: block index (up to its last
    // entry, sector-aligned; its header says how far) | client table | each reply in entry
    // order (exact sizes, from the table). A lagging replica fetches it chunk by chunk in order,
    // so the index's header arrives before its entries and the table (with every reply's size)
    // before the replies. The image then comes as the blocks the index names (grid_repair.ts).

    private get tableSize(): number {
        return this.clientsMax * sessionEntrySize;
    }

    /** Size of the reply of `entry` in a serialized table at `table` (0: none). */
    private tableReplySize(table: number, entry: number): number {
        const size = this.view.getUint32(table + entry * sessionEntrySize + 56, true);
        return size >= headerSize && size <= this.messageSizeMax ? size : 0;
    }

    /** A peer may be served the snapshot: it exists, with its index sealed. */
    get servable(): boolean {
        return this.snapshotOp > 0 && this.snapshotIndexReady;
    }

    streamSize(): number {
        let size = this.grid.indexStreamSize(true) + this.tableSize;
        for (let entry = 0; entry < this.clientsMax; entry++) {
            size += this.tableReplySize(this.sessionsBuffer, entry);
        }
        return size;
    }

    /**
     * Copies up to `sizeMax` stream bytes from `offset` of the snapshot to the arena at
     * `target`; returns the count. The snapshot must exist and no write may be starting.
     */
    serveStream(offset: number, target: number, sizeMax: number): number {
        assert(this.servable);
        const total = this.streamSize();
        const size = Math.min(sizeMax, total - offset);
        assert(size >= 0);
        for (let done = 0; done < size; ) {
            const piece = this.streamSegment(offset + done, this.sessionsBuffer, true);
            const count = Math.min(size - done, this.segmentRemaining);
            this.bytes.copyWithin(target + done, piece, piece + count);
            done += count;
        }
        return size;
    }

    /** Bytes left in the segment found by the last streamSegment(). */
    private segmentRemaining = 0;

    /**
     * The arena offset of stream byte `offset` (snapshot side when serving, assembly side when
     * receiving), and the bytes left in its segment (segmentRemaining); -1 beyond the end.
     */
    private streamSegment(offset: number, table: number, serving: boolean): number {
        // Receiving, the index's size is known once its header is in (stream order).
        const indexSize = this.grid.indexStreamSize(serving || offset >= IndexField.entries);
        if (offset < indexSize) {
            this.segmentRemaining = indexSize - offset;
            return this.grid.indexBuffer + offset;
        }
        let start = indexSize;
        if (offset < start + this.tableSize) {
            this.segmentRemaining = start + this.tableSize - offset;
            return this.sessionsBuffer + (offset - start);
        }
        start += this.tableSize;
        for (let entry = 0; entry < this.clientsMax; entry++) {
            const size = this.tableReplySize(table, entry);
            if (offset < start + size) {
                this.segmentRemaining = start + size - offset;
                const reply = serving ? this.snapshotReplies[entry] : this.syncReply(entry);
                assert(reply !== null && reply !== undefined);
                return reply.offset + (offset - start);
            }
            start += size;
        }
        return -1;
    }

    private syncReply(entry: number): Message {
        let message = this.syncReplies[entry] ?? null;
        if (message === null) {
            message = this.pool.acquire();
            this.syncReplies[entry] = message;
        }
        return message;
    }

    /** Starts assembling a stream (into the index buffer, table buffer and pool messages). */
    receiveBegin(): void {
        assert(this.step === Step.idle);
        this.releaseSync();
        this.releaseSnapshot();
        this.snapshotOp = 0; // The buffers now hold a stream in assembly, not a snapshot.
        this.snapshotIndexReady = false;
        this.bytes.fill(0, this.grid.indexBuffer, this.grid.indexBuffer + IndexField.entries);
    }

    /**
     * Stores stream bytes [offset, offset + size) from the arena at `source`; false when they
     * reach beyond the stream its index and table describe (a peer's inconsistent stream).
     */
    receive(offset: number, source: number, size: number): boolean {
        for (let done = 0; done < size; ) {
            const piece = this.streamSegment(offset + done, this.sessionsBuffer, false);
            if (piece < 0) return false;
            const count = Math.min(size - done, this.segmentRemaining);
            this.bytes.copyWithin(piece, source + done, source + done + count);
            done += count;
        }
        return true;
    }

    /**
     * Checks the assembled stream against the checksums at syncIndexChecksum and
     * sessionsChecksum; returns the index's block count, or -1 (the stream is dropped then).
     * If they match, the live image is reset: the blocks rebuild it next (GridRepair.load).
     */
    receiveVerify(): number {
        const tableOk = checksumEquals(
            this.bytes,
            this.sessionsBuffer,
            this.tableSize,
            this.bytes,
            this.sessionsChecksum,
        );
        const count = tableOk ? this.grid.indexValid(this.syncIndexChecksum) : -1;
        if (count < 0) this.releaseSync();
        else this.stateMachine.reset();
        return count;
    }

    /**
     * Every block of the received index is applied to the (reset) image: installs the image's
     * header, the client table (cleared first) and its replies. The next checkpoint writes the
     * whole image afresh (grid.rebase), at addresses the durable index does not name.
     */
    receiveInstall(): void {
        this.grid.recoverFinish();
        this.grid.rebase = true;
        this.sessions.clear();
        for (let entry = 0; entry < this.clientsMax; entry++) {
            const entryOffset = this.sessionsBuffer + entry * sessionEntrySize;
            const message = this.syncReplies[entry] ?? null;
            const reply =
                message !== null && this.replyValid(message, entryOffset) ? message : null;
            this.sessions.deserialize(entry, entryOffset, reply);
        }
        this.releaseSync();
    }

    private releaseSync(): void {
        for (let entry = 0; entry < this.clientsMax; entry++) {
            const message = this.syncReplies[entry] ?? null;
            if (message !== null) this.pool.unref(message);
            this.syncReplies[entry] = null;
        }
    }

    /** Releases messages held by I/O in flight (the replica is being torn down). */
    releaseAll(): void {
        this.releaseSync();
        this.releaseSnapshot();
        if (this.readMessage !== null) this.pool.unref(this.readMessage);
        this.readMessage = null;
        for (let entry = 0; entry < this.clientsMax; entry++) {
            const reply = this.readReplies[entry] ?? null;
            if (reply !== null) this.pool.unref(reply);
            this.readReplies[entry] = null;
        }
        this.step = Step.idle;
    }

    get busy(): boolean {
        return this.step !== Step.idle;
    }

    private copyOffset(copy: number): number {
        return this.layout.checkpointOffset + copy * this.layout.checkpointCopySize;
    }

    private replyOffset(copy: number, entry: number): number {
        return (
            this.layout.clientRepliesOffset + (copy * this.clientsMax + entry) * this.messageSizeMax
        );
    }

    /** Writes the live state as checkpoint `op` into copy `copy` and the grid. */
    write(copy: number, op: number, anchorOffset: number, callback: (ok: boolean) => void): void {
        assert(this.step === Step.idle);
        assert(copy === 0 || copy === 1);
        this.writing = true;
        this.copy = copy;
        this.ok = true;
        this.doneCallback = callback;
        this.snapshot(op, anchorOffset);
        this.snapshotIndexReady = false; // Until sealIndex, after the last block.
        this.grid.stage(op);
        this.step = Step.blocks;
        this.writeBlock();
    }

    /** Writes the grid's next block, or once none is left, the index. */
    private writeBlock(): void {
        const grid = this.grid;
        const zones = this.layout;
        const address = grid.nextBlock();
        if (address >= 0) {
            const offset = zones.gridOffset + address * zones.gridBlockSize;
            this.writeAt(grid.blockBuffer, zones.gridBlockSize, offset);
            return;
        }
        const size = grid.sealIndex();
        this.snapshotIndexReady = true; // Every block is written: peers may sync from it.
        this.indexBytesWritten = size;
        this.step = Step.index;
        this.writeAt(grid.indexBuffer, size, this.copyOffset(this.copy));
    }

    /** Bytes of the last index written (with its blocks, the checkpoint's image cost). */
    indexBytesWritten = 0;

    /**
     * Takes a snapshot of the live state at `op` (no I/O): the basis of a checkpoint write, or,
     * right after recovery, of the checkpoint just read (so peers can sync from it at once).
     */
    snapshot(op: number, anchorOffset: number): void {
        assert(this.step === Step.idle);
        assert(op > 0);
        this.releaseSnapshot();
        this.snapshotOp = op;
        this.bytes.copyWithin(this.snapshotAnchor, anchorOffset, anchorOffset + 16);
        // Right after a read, the index just read is in indexBuffer (write() clears this).
        this.snapshotIndexReady = true;
        for (let entry = 0; entry < this.clientsMax; entry++) {
            const reply = this.sessions.reply(entry);
            this.snapshotReplies[entry] = reply === null ? null : this.pool.ref(reply);
        }
        const tableSize = this.clientsMax * sessionEntrySize;
        this.bytes.fill(
            0,
            this.sessionsBuffer,
            this.sessionsBuffer + this.layout.checkpointSessionsSize,
        );
        for (let entry = 0; entry < this.clientsMax; entry++) {
            this.sessions.serialize(entry, this.sessionsBuffer + entry * sessionEntrySize);
        }
        checksum(this.bytes, this.sessionsBuffer, tableSize, this.bytes, this.sessionsChecksum);
    }

    /**
     * Restores copy `copy` and the grid blocks its index names into the (reset) state machine
     * and the (empty) client table; `indexChecksum` and `sessionsChecksum` are the superblock's.
     */
    read(
        copy: number,
        indexChecksum: number,
        sessionsChecksum: number,
        callback: (ok: boolean) => void,
    ): void {
        assert(this.step === Step.idle);
        assert(this.sessions.count === 0);
        this.writing = false;
        this.imageOnly = false;
        this.copy = copy;
        this.ok = true;
        this.doneCallback = callback;
        this.bytes.copyWithin(this.sessionsChecksum, sessionsChecksum, sessionsChecksum + 16);
        this.grid.recoverBegin();
        this.bytes.copyWithin(this.grid.indexChecksum, indexChecksum, indexChecksum + 16);
        this.blocksToRead = -1;
        this.entry = 0;
        this.step = Step.index;
        const size = this.layout.checkpointIndexSize;
        this.storage.read(this, this.grid.indexBuffer, size, this.copyOffset(copy));
    }

    /**
     * Reads the image again from the checkpoint read last: its index, then every block (the
     * client table and replies stay as that read left them). After block repair wrote the
     * missing blocks back; the callback's `ok` is false when the index no longer reads, and
     * grid.missingCount says whether some block still failed.
     */
    readImage(callback: (ok: boolean) => void): void {
        assert(this.step === Step.idle);
        assert(this.snapshotOp === 0); // No snapshot of an incomplete image was ever taken.
        this.writing = false;
        this.imageOnly = true;
        this.ok = true;
        this.doneCallback = callback;
        this.stateMachine.reset();
        this.grid.recoverBegin();
        this.blocksToRead = -1;
        this.entry = 0;
        this.step = Step.index;
        const size = this.layout.checkpointIndexSize;
        this.storage.read(this, this.grid.indexBuffer, size, this.copyOffset(this.copy));
    }

    /** The read in progress is readImage's: it ends after the blocks. */
    private imageOnly = false;

    private writeAt(buffer: number, size: number, offset: number): void {
        this.writeBuffer = buffer;
        this.writeSize = size;
        this.writeOffset = offset;
        this.storage.write(this, buffer, size, offset);
    }

    callback(completion: StorageCompletion): void {
        assert(completion === this);
        const failed = this.result !== IoResult.ok;
        if (failed && this.writing) {
            this.writeRetries++;
            this.storage.write(this, this.writeBuffer, this.writeSize, this.writeOffset);
            return;
        }
        const replyRead = this.step === Step.replies && !this.writing;
        // A block that fails to read is repaired from a peer (grid_repair.ts), not fatal.
        const blockRead = this.step === Step.blocks && !this.writing;
        if (failed && !replyRead && !blockRead) this.ok = false;
        if (this.step === Step.blocks) return this.afterBlock(failed);
        if (this.step === Step.index) return this.afterIndex();
        if (this.step === Step.sessions) return this.afterSessions();
        assert(this.step === Step.replies);
        if (replyRead) this.afterReplyRead(failed);
        this.entry++;
        this.nextReply();
    }

    private afterBlock(failed: boolean): void {
        if (this.writing) {
            if (!this.ok) return this.finish();
            return this.writeBlock();
        }
        assert(this.ok);
        // A block that is not the one its index entry names (EIO, corrupt, misdirected) is
        // left out; the others are still applied, in order, but the image stays incomplete
        // (recoverFinish waits) until the missing ones are written back and read again.
        if (failed || !this.grid.recoverBlock(this.entry)) {
            this.grid.markMissing(this.entry);
            this.blocksUnreadable++;
        }
        this.entry++;
        this.readBlock();
    }

    /** Grid blocks that failed to read at recovery, across reads (repaired from peers). */
    blocksUnreadable = 0;

    /** Reads the index's next block, or once all are applied, the client table. */
    private readBlock(): void {
        if (this.entry < this.blocksToRead) {
            const zones = this.layout;
            const address = this.grid.recoverAddress(this.entry);
            if (address < 0) {
                this.ok = false;
                return this.finish();
            }
            const offset = zones.gridOffset + address * zones.gridBlockSize;
            this.storage.read(this, this.grid.blockBuffer, zones.gridBlockSize, offset);
            return;
        }
        if (this.grid.missingCount === 0) this.grid.recoverFinish();
        if (this.imageOnly) return this.finish();
        this.sessionsIo();
    }

    private afterIndex(): void {
        if (this.writing) return this.sessionsIo();
        if (this.ok) this.blocksToRead = this.grid.recoverIndex(this.grid.indexChecksum);
        if (this.blocksToRead < 0) this.ok = false;
        if (!this.ok) return this.finish();
        this.step = Step.blocks;
        this.entry = 0;
        this.readBlock();
    }

    /** Writes or reads the client table (after the index on a write, the blocks on a read). */
    private sessionsIo(): void {
        this.step = Step.sessions;
        const offset = this.copyOffset(this.copy) + this.layout.checkpointIndexSize;
        const size = this.layout.checkpointSessionsSize;
        if (this.writing) this.writeAt(this.sessionsBuffer, size, offset);
        else this.storage.read(this, this.sessionsBuffer, size, offset);
    }

    private afterSessions(): void {
        if (!this.writing) {
            const tableSize = this.clientsMax * sessionEntrySize;
            if (
                !checksumEquals(
                    this.bytes,
                    this.sessionsBuffer,
                    tableSize,
                    this.bytes,
                    this.sessionsChecksum,
                )
            ) {
                this.ok = false;
            }
        }
        this.step = Step.replies;
        this.entry = 0;
        this.nextReply();
    }

    /** Issues the next reply write or read, or finishes. */
    private nextReply(): void {
        while (this.entry < this.clientsMax && this.ok) {
            const size = this.replySize(this.entry);
            if (size > 0) {
                const offset = this.replyOffset(this.copy, this.entry);
                if (this.writing) {
                    const reply = this.snapshotReplies[this.entry] ?? null;
                    assert(reply !== null);
                    this.bytes.fill(0, reply.offset + size, reply.offset + alignUp(size));
                    this.writeAt(reply.offset, alignUp(size), offset);
                } else {
                    this.readMessage = this.pool.acquire();
                    this.storage.read(this, this.readMessage.offset, alignUp(size), offset);
                }
                return;
            }
            this.entry++;
        }
        this.finish();
    }

    private replySize(entry: number): number {
        if (this.writing) {
            const reply = this.snapshotReplies[entry] ?? null;
            return reply === null ? 0 : this.view.getUint32(reply.offset + Frame.size, true);
        }
        const size = this.view.getUint32(this.sessionsBuffer + entry * sessionEntrySize + 56, true);
        return size >= headerSize && size <= this.messageSizeMax ? size : 0;
    }

    private afterReplyRead(failed: boolean): void {
        const message = this.readMessage;
        assert(message !== null);
        this.readMessage = null;
        const entryOffset = this.sessionsBuffer + this.entry * sessionEntrySize;
        if (!failed && this.replyValid(message, entryOffset)) {
            this.readReplies[this.entry] = message;
        } else {
            this.repliesMissing++;
            this.pool.unref(message);
        }
    }

    /** Replies a checkpoint read left out (unreadable or corrupt): repaired from peers. */
    repliesMissing = 0;

    private replyValid(message: Message, entryOffset: number): boolean {
        const base = message.offset;
        const view = this.view;
        if (!validHeaderChecksum(this.bytes, base)) return false;
        if (invalidHeader(view, base, this.messageSizeMax) !== null) return false;
        if (headerCommand(view, base) !== Command.reply) return false;
        if (!validBodyChecksum(this.bytes, base, view.getUint32(base + Frame.size, true)))
            return false;
        if (!u128Equal(view, base + Reply.client, entryOffset)) return false;
        return readU64(view, base + Reply.op) === readU64(view, entryOffset + 48);
    }

    private finish(): void {
        const callback = this.doneCallback;
        assert(callback !== null);
        this.step = Step.idle;
        this.doneCallback = null;
        if (this.writing) {
            // The snapshot stays (with its reply references) until the next one: peers that
            // fell behind the WAL are synced from it.
            this.writes++;
            return callback(this.ok);
        }
        // A checkpoint that failed to read is replaced by state sync: forget its blocks.
        if (!this.ok) this.grid.recoverBegin();
        if (this.imageOnly) return callback(this.ok);
        for (let entry = 0; entry < this.clientsMax; entry++) {
            const reply = this.readReplies[entry] ?? null;
            this.readReplies[entry] = null;
            if (this.ok)
                this.sessions.deserialize(
                    entry,
                    this.sessionsBuffer + entry * sessionEntrySize,
                    reply,
                );
            if (reply !== null) this.pool.unref(reply);
        }
        callback(this.ok);
    }
}
