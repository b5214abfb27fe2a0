// Block repair: a replica whose recovery found grid blocks it cannot read (EIO, or bytes whose
// checksum, address or index entry do not match) fetches each from a peer by (address, checksum)
// with request_block, writes it back in place, and recovery reads the image again
// (Checkpointer.readImage). The same object serves peers: a request_block is answered only when
// this replica's grid names a block at that address with that checksum (grid.names), and only
// with bytes read from its disk that verify against it: a checkpoint being written may be
// reusing the address, and a read may come back corrupt; nothing half-written is ever sent.
//
// Trust: the block index was verified against the superblock's checksum and each entry names
// its block's checksum, so a block that verifies against its entry is the block that was
// written, whichever replica it came from (replicas write identical blocks at identical
// addresses: grid.ts). Chunks are therefore accepted from any peer.
//
// Bounds: blockServeReadsMax reads in flight for peers (a request beyond them is dropped and
// counted: the requester asks again), one block repaired at a time (assembled from its chunks
// in a buffer of its own, then one write). A repair that makes no progress for stallsMax repair
// timeouts in a row (the peer asked rotates every time, so each peer is asked at least twice)
// gives up: the caller falls back to state sync (every peer may have moved on to a checkpoint
// that no longer holds the block).
//
// State sync loads its image here too (load): every block of the index it received is read
// from this replica's own disk when its grid names that (address, checksum) (replicas that
// executed the same ops wrote the same blocks at the same addresses), else fetched from peers
// as above; each is verified against its entry and applied to the image only, never written
// (the durable index stays readable: state_sync.ts). Up to syncLoadsMax consecutive entries
// are read or fetched at once, each into a preallocated buffer of its own, and applied
// strictly in index order (later records win), so a large image costs about
// blocks / syncLoadsMax round trips, not one per block. A load that stalls for stallsMax
// timeouts gives up like a repair: the caller starts the sync over.

import { assert } from "../stdx/assert.js";
import { headerSize } from "../constants.js";
import type { Allocator } from "./arena.js";
import { checksumEquals } from "./checksum.js";
import { BlockField, type Grid, blockServeReadsMax, syncLoadsMax } from "./grid.js";
import { Block, Command, Frame, RequestBlock, headerReplica, u128Equal } from "./header.js";
import { IoResult, type Storage, type StorageCompletion } from "./interfaces.js";
import type { Layout } from "./layout.js";
import type { Message } from "./message_pool.js";

/** I/Os block repair may have in flight at once (its storage budget). */
export const gridRepairIosMax = blockServeReadsMax + 1 + syncLoadsMax;

/**
 * Repair timeouts in a row without a new chunk, at least, before repair gives up (32: 3.2 s at
 * 100 ms). A replica that just restarted may wait that long for its peer links and for peers'
 * block reads on a loaded machine; giving up sooner trades a 64 KiB fetch for a whole state
 * sync (the grid e2e test once saw that, with 8).
 */
const stallsMin = 32;

/** What the replica lends block repair to talk to peers. */
export interface BlockSender {
    /** A pool message with its frame filled in for `command` (size: the header only). */
    acquireHeader(command: number): Message;
    /** Checksums the message, sends it to `replica` and releases it. */
    sendTo(replica: number, message: Message): void;
}

/** One block I/O: a read served to a peer, or the write-back of a repaired block. */
class BlockIo implements StorageCompletion {
    result: IoResult = IoResult.ok;
    busy = false;
    /** The peer a read serves, or the peer a load slot last asked for its block. */
    peer = 0;
    address = 0;
    /**
     * A load slot's index entry (-1: free), its chunks in hand (a bitset), whether its block
     * is whole and verified (waiting for its turn to be applied), and whether that block came
     * from this replica's own disk (a read of it: busy).
     */
    entry = -1;
    chunks = 0;
    ready = false;
    local = false;
    /** Asked of a peer since the last repair timeout: the next one leaves it be once. */
    asked = false;
    readonly buffer: number;
    /** Arena offset of the checksum the read must verify against. */
    readonly checksum: number;
    private readonly owner: GridRepair;

    constructor(owner: GridRepair, buffer: number, checksumOffset: number) {
        this.owner = owner;
        this.buffer = buffer;
        this.checksum = checksumOffset;
    }

    callback(completion: StorageCompletion): void {
        assert(completion === this && this.busy);
        this.busy = false;
        this.owner.ioCallback(this);
    }
}

export class GridRepair {
    /** Repairing: recovery left blocks missing and the image waits for them. */
    repairing = false;
    /** Blocks written back from a peer's copy; requests sent; chunks that failed to verify. */
    blocksRepaired = 0;
    requestsSent = 0;
    blocksRejected = 0;
    /** Write-backs refused by the disk (EIO) and issued again. */
    writeRetries = 0;
    /** Blocks served to peers; requests not served (not held, or every read busy). */
    blocksServed = 0;
    requestsUnserved = 0;
    /** Blocks this replica's grid names whose disk copy failed to verify when served. */
    blocksDamaged = 0;
    /** Loading a state sync's image (load); its blocks fetched from peers, read from disk. */
    loading = false;
    syncBlocksFetched = 0;
    syncBlocksReused = 0;
    /** The most blocks of a load read or fetched at once (at most syncLoadsMax). */
    syncLoadsInFlightMax = 0;
    /** Loads given up (no peer served a block): the sync started over. */
    syncLoadsAbandoned = 0;
    /** The blocks of the index being loaded; the next entry to start, and to apply. */
    private loadCount = 0;
    private loadNextEntry = 0;
    private loadApplyEntry = 0;
    private readonly loads: BlockIo[] = [];
    private loadedCallback: (() => void) | null = null;

    private readonly grid: Grid;
    private readonly zones: Layout;
    private readonly storage: Storage;
    private readonly sender: BlockSender;
    private readonly bytes: Uint8Array;
    private readonly view: DataView;
    private readonly replica: number;
    private readonly replicaCount: number;
    /** Bytes of a block per chunk: a message body, or the whole block when that fits. */
    private readonly chunkSize: number;
    private readonly chunkCount: number;
    private readonly stallsMax: number;
    private readonly reads: BlockIo[] = [];
    private readonly write: BlockIo;
    private readonly repairedCallback: () => void;
    /** The missing index entry being fetched (-1: none), its chunks in hand (a bitset). */
    private entry = -1;
    private chunks = 0;
    private peer = 0;
    private stalls = 0;
    private progressed = false;

    constructor(
        allocator: Allocator,
        storage: Storage,
        zones: Layout,
        grid: Grid,
        options: {
            replica: number;
            replicaCount: number;
            messageBodySizeMax: number;
            sender: BlockSender;
            repairedCallback: () => void;
        },
    ) {
        assert(options.replica < options.replicaCount);
        this.grid = grid;
        this.zones = zones;
        this.storage = storage;
        this.sender = options.sender;
        this.bytes = allocator.bytes;
        this.view = allocator.view;
        this.replica = options.replica;
        this.replicaCount = options.replicaCount;
        this.repairedCallback = options.repairedCallback;
        this.chunkSize = Math.min(zones.gridBlockSize, options.messageBodySizeMax);
        this.chunkCount = Math.ceil(zones.gridBlockSize / this.chunkSize);
        assert(this.chunkCount >= 1 && this.chunkCount <= 31); // Chunks in hand: one u31 mask.
        this.stallsMax = Math.max(stallsMin, 2 * (options.replicaCount - 1));
        const checksums = allocator.allocate(16 * gridRepairIosMax, 16);
        for (let index = 0; index < blockServeReadsMax; index++) {
            const buffer = allocator.allocate(zones.gridBlockSize, 4096);
            this.reads.push(new BlockIo(this, buffer, checksums + 16 * index));
        }
        const buffer = allocator.allocate(zones.gridBlockSize, 4096);
        this.write = new BlockIo(this, buffer, checksums + 16 * blockServeReadsMax);
        for (let index = 0; index < syncLoadsMax; index++) {
            const checksum = checksums + 16 * (blockServeReadsMax + 1 + index);
            const loadBuffer = allocator.allocate(zones.gridBlockSize, 4096);
            this.loads.push(new BlockIo(this, loadBuffer, checksum));
        }
        this.peer = (options.replica + 1) % options.replicaCount;
    }

    // -----------------------------------------------------------------------------------------
    // Serving peers.

    onRequestBlock(message: Message): void {
        const base = message.offset;
        const peer = headerReplica(this.view, base);
        if (peer === this.replica) return;
        const address = this.view.getUint32(base + RequestBlock.address, true);
        if (!this.grid.names(address, base + RequestBlock.blockChecksum)) {
            this.requestsUnserved++;
            return;
        }
        let read: BlockIo | null = null;
        for (const candidate of this.reads) {
            if (!candidate.busy) {
                read = candidate;
                break;
            }
        }
        if (read === null) {
            this.requestsUnserved++;
            return;
        }
        read.busy = true;
        read.peer = peer;
        read.address = address;
        const checksumFrom = base + RequestBlock.blockChecksum;
        this.bytes.copyWithin(read.checksum, checksumFrom, checksumFrom + 16);
        this.storage.read(read, read.buffer, this.zones.gridBlockSize, this.blockOffset(address));
    }

    ioCallback(io: BlockIo): void {
        if (io.local) return this.localReadCallback(io);
        if (io === this.write) return this.writeCallback();
        const verified = io.result === IoResult.ok && this.blockVerifies(io.buffer, io);
        if (!verified) {
            this.requestsUnserved++; // Reused by a checkpoint since, or a bad read: not sent.
            // Still named: the copy on disk is damaged; the next checkpoint rewrites its records.
            if (this.grid.markDamaged(io.address, io.checksum)) this.blocksDamaged++;
            return;
        }
        this.blocksServed++;
        for (let offset = 0; offset < this.zones.gridBlockSize; offset += this.chunkSize) {
            this.sendChunk(io, offset);
        }
    }

    private sendChunk(io: BlockIo, offset: number): void {
        const size = Math.min(this.chunkSize, this.zones.gridBlockSize - offset);
        const message = this.sender.acquireHeader(Command.block);
        const base = message.offset;
        this.bytes.copyWithin(base + Block.blockChecksum, io.checksum, io.checksum + 16);
        this.view.setUint32(base + Block.address, io.address, true);
        this.view.setUint32(base + Block.offset, offset, true);
        this.view.setUint32(base + Block.blockSize, this.zones.gridBlockSize, true);
        const from = io.buffer + offset;
        this.bytes.copyWithin(base + headerSize, from, from + size);
        this.view.setUint32(base + Frame.size, headerSize + size, true);
        this.sender.sendTo(io.peer, message);
    }

    /** The block at `buffer` is whole and is the one `io` names (checksum and address). */
    private blockVerifies(buffer: number, io: BlockIo): boolean {
        const size = this.zones.gridBlockSize;
        if (!checksumEquals(this.bytes, buffer + 16, size - 16, this.bytes, buffer)) return false;
        if (!u128Equal(this.view, buffer + BlockField.checksum, io.checksum)) return false;
        return this.view.getUint32(buffer + BlockField.address, true) === io.address;
    }

    private blockOffset(address: number): number {
        assert(address < this.zones.gridBlockCount);
        return this.zones.gridOffset + address * this.zones.gridBlockSize;
    }

    // -----------------------------------------------------------------------------------------
    // Repairing this replica's grid.

    /**
     * Recovery left grid.missingCount blocks missing: fetch them, oldest entry first. Each
     * call is one pass (the image is read again after it); see passes.
     */
    start(): void {
        assert(this.grid.missingCount > 0);
        assert(!this.write.busy);
        this.passes++;
        this.repairing = true;
        this.entry = -1;
        this.stalls = 0;
        this.progressed = false;
        this.requestNext();
    }

    /** Passes since open: a block that fails again after passesMax of them is left to sync. */
    passes = 0;
    static readonly passesMax = 4;

    /** Done (the image read whole), or abandoned (state sync replaces the image). */
    stop(): void {
        this.repairing = false;
        this.loading = false;
        this.loadedCallback = null;
        this.entry = -1;
        this.chunks = 0;
        // A read of this replica's own copy may still be in flight: its slot stays busy (and
        // is not reused) until it lands, and it lands as a stale one (entry -1).
        for (const slot of this.loads) this.loadSlotFree(slot);
    }

    // -----------------------------------------------------------------------------------------
    // Loading a state sync's image.

    /**
     * Applies the `count` blocks the valid index at grid.indexBuffer names to the (reset)
     * image, in index order, asking `peer` first (the one whose index it is); `callback` once
     * all are applied. onRepairTimeout returns false when no peer served a block wanted for
     * stallsMax timeouts: the caller gives up (stop) and syncs anew.
     */
    load(count: number, peer: number, callback: () => void): void {
        assert(!this.repairing && !this.loading && !this.write.busy);
        assert(peer !== this.replica && peer < this.replicaCount);
        this.loading = true;
        this.peer = peer;
        this.loadCount = count;
        this.loadNextEntry = 0;
        this.loadApplyEntry = 0;
        this.loadedCallback = callback;
        this.stalls = 0;
        this.progressed = false;
        this.loadApply();
    }

    /** Applies the ready blocks in index order, then gives free slots the next entries. */
    private loadApply(): void {
        assert(this.loading);
        for (let applied = true; applied; ) {
            applied = false;
            for (const slot of this.loads) {
                if (slot.entry !== this.loadApplyEntry || !slot.ready) continue;
                if (!this.grid.applySyncBlock(slot.buffer, slot.entry)) {
                    // Verified against its entry, yet its records name slots beyond the table:
                    // not a block of this index after all. Asked again.
                    this.blocksRejected++;
                    slot.ready = false;
                    slot.local = false;
                    this.loadRequest(slot);
                    continue;
                }
                if (slot.local) this.syncBlocksReused++;
                else this.syncBlocksFetched++;
                this.progressed = true;
                this.loadSlotFree(slot);
                this.loadApplyEntry++;
                applied = true;
            }
        }
        if (this.loadApplyEntry === this.loadCount) {
            const callback = this.loadedCallback;
            assert(callback !== null);
            this.stop();
            return callback();
        }
        let inFlight = 0;
        for (const slot of this.loads) {
            if (slot.entry < 0 && !slot.busy && this.loadNextEntry < this.loadCount) {
                slot.entry = this.loadNextEntry++;
                this.loadStart(slot);
            }
            if (slot.entry >= 0) inFlight++;
        }
        this.syncLoadsInFlightMax = Math.max(this.syncLoadsInFlightMax, inFlight);
    }

    /** A slot's entry: read from this replica's disk if its grid names it, else fetched. */
    private loadStart(slot: BlockIo): void {
        const address = this.grid.entryAddress(slot.entry);
        const checksumFrom = this.grid.entryChecksum(slot.entry);
        slot.address = address;
        this.bytes.copyWithin(slot.checksum, checksumFrom, checksumFrom + 16);
        if (!this.grid.names(address, checksumFrom)) return this.loadRequest(slot);
        slot.busy = true;
        slot.local = true;
        const size = this.zones.gridBlockSize;
        this.storage.read(slot, slot.buffer, size, this.blockOffset(address));
    }

    private localReadCallback(slot: BlockIo): void {
        if (slot.entry < 0 || !this.loading) {
            // Given up meanwhile: the slot is free again (a new load may take it now).
            slot.local = false;
            if (this.loading) this.loadApply();
            return;
        }
        if (slot.result === IoResult.ok && this.blockVerifies(slot.buffer, slot)) {
            slot.ready = true;
            return this.loadApply();
        }
        slot.local = false;
        this.loadRequest(slot); // Its own copy is damaged: a peer's then.
    }

    /** Fetches a slot's block: asked first of the peer whose index it is. */
    private loadRequest(slot: BlockIo): void {
        slot.peer = this.peer;
        this.loadAsk(slot);
    }

    private loadAsk(slot: BlockIo): void {
        assert(this.loading && slot.entry >= 0 && !slot.busy && !slot.ready);
        slot.chunks = 0;
        slot.asked = true;
        this.sendRequestFor(slot.entry, slot.peer);
    }

    private loadSlotFree(slot: BlockIo): void {
        slot.entry = -1;
        slot.chunks = 0;
        slot.ready = false;
        if (!slot.busy) slot.local = false;
    }

    /** A chunk of a block being loaded: assembled in the slot fetching it, from any peer. */
    private loadOnBlock(message: Message): void {
        const base = message.offset;
        const view = this.view;
        const address = view.getUint32(base + Block.address, true);
        let slot: BlockIo | null = null;
        for (const candidate of this.loads) {
            if (candidate.entry < 0 || candidate.busy || candidate.ready) continue;
            if (candidate.address !== address) continue;
            if (!u128Equal(view, base + Block.blockChecksum, candidate.checksum)) continue;
            slot = candidate;
            break;
        }
        if (slot === null) return; // A late answer, or a duplicate of a block in hand.
        const chunks = this.chunkIn(message, slot.buffer, slot.chunks);
        if (chunks < 0) return;
        this.progressed = true;
        if (chunks !== (1 << this.chunkCount) - 1) {
            slot.chunks = chunks;
            return;
        }
        slot.chunks = 0;
        if (!this.blockVerifies(slot.buffer, slot)) {
            this.blocksRejected++; // Chunks of different copies, or corrupt in transit.
            return;
        }
        slot.ready = true;
        this.loadApply();
    }

    /**
     * Copies the chunk `message` carries into `buffer` if it fits the block's geometry and is
     * not in `chunks` yet; returns the chunks in hand then, or -1 when it is dropped.
     */
    private chunkIn(message: Message, buffer: number, chunks: number): number {
        const base = message.offset;
        const view = this.view;
        const blockSize = this.zones.gridBlockSize;
        const offset = view.getUint32(base + Block.offset, true);
        const size = view.getUint32(base + Frame.size, true) - headerSize;
        if (view.getUint32(base + Block.blockSize, true) !== blockSize) return -1;
        if (offset % this.chunkSize !== 0) return -1;
        if (size !== Math.min(this.chunkSize, blockSize - offset)) return -1;
        const chunk = offset / this.chunkSize;
        if ((chunks & (1 << chunk)) !== 0) return -1; // A duplicate.
        const body = base + headerSize;
        this.bytes.copyWithin(buffer + offset, body, body + size);
        return chunks | (1 << chunk);
    }

    /**
     * Repair timeout: ask again (another peer) for the block being fetched. False once no
     * chunk arrived for stallsMax timeouts in a row: no peer can serve it; the caller syncs.
     */
    onRepairTimeout(): boolean {
        assert(this.repairing || this.loading);
        if (this.loading) return this.loadTimeout();
        if (this.entry < 0) return true; // Every block is back: the image is being read.
        // A write-back in flight is progress to come (and must land before anyone else writes
        // the grid: giving up now could let it land over a block state sync wrote since).
        if (this.write.busy) return true;
        if (this.progressed) this.stalls = 0;
        else this.stalls++;
        this.progressed = false;
        if (this.stalls >= this.stallsMax) return false;
        this.peer = this.nextPeer(this.peer);
        this.sendRequest();
        return true;
    }

    /**
     * A load's timeout: every block still being fetched is asked of the peer after the one
     * it last asked. The rotation is per slot: a slot is asked again only every other timeout,
     * so one rotation shared by all slots, with two peers, asked every block again of the same
     * peer for good, one whose grid may not name it (storm seed 318: never the index's owner).
     */
    private loadTimeout(): boolean {
        if (this.progressed) this.stalls = 0;
        else this.stalls++;
        this.progressed = false;
        if (this.stalls >= this.stallsMax) return false;
        for (const slot of this.loads) {
            if (slot.entry < 0 || slot.busy || slot.ready) continue;
            // Asked only just now: its answer may well be on its way (a round trip can take
            // about a timeout); asking again would only make a peer read it twice.
            if (slot.asked) {
                slot.asked = false;
                continue;
            }
            slot.peer = this.nextPeer(slot.peer);
            this.loadAsk(slot);
        }
        return true;
    }

    /** The next missing entry (after the one just written), asked of the current peer. */
    private requestNext(): void {
        assert(this.repairing && !this.write.busy);
        this.entry = this.grid.nextMissing(this.entry < 0 ? 0 : this.entry);
        this.chunks = 0;
        if (this.entry < 0) return this.repairedCallback();
        this.sendRequest();
    }

    private sendRequest(): void {
        assert(this.entry >= 0);
        this.sendRequestFor(this.entry, this.peer);
    }

    /** Asks `peer` for the block index entry `entry` names. */
    private sendRequestFor(entry: number, peer: number): void {
        const message = this.sender.acquireHeader(Command.requestBlock);
        const base = message.offset;
        const checksumFrom = this.grid.entryChecksum(entry);
        this.bytes.copyWithin(base + RequestBlock.blockChecksum, checksumFrom, checksumFrom + 16);
        this.view.setUint32(base + RequestBlock.address, this.grid.entryAddress(entry), true);
        this.requestsSent++;
        this.sender.sendTo(peer, message);
    }

    /** A chunk of a block (from any peer: the block is verified whole before it is written). */
    onBlock(message: Message): void {
        if (this.loading) return this.loadOnBlock(message);
        if (!this.repairing || this.write.busy || this.entry < 0) return;
        const base = message.offset;
        const view = this.view;
        const address = this.grid.entryAddress(this.entry);
        if (view.getUint32(base + Block.address, true) !== address) return;
        if (!u128Equal(view, base + Block.blockChecksum, this.grid.entryChecksum(this.entry))) {
            return; // Another block (a late answer): not the one being fetched.
        }
        const blockSize = this.zones.gridBlockSize;
        const chunks = this.chunkIn(message, this.write.buffer, this.chunks);
        if (chunks < 0) return;
        this.chunks = chunks;
        this.progressed = true;
        if (this.chunks !== (1 << this.chunkCount) - 1) return;
        this.chunks = 0;
        this.write.address = address;
        const checksumFrom = this.grid.entryChecksum(this.entry);
        this.bytes.copyWithin(this.write.checksum, checksumFrom, checksumFrom + 16);
        if (!this.blockVerifies(this.write.buffer, this.write)) {
            this.blocksRejected++; // Chunks of different copies, or corrupt in transit.
            return;
        }
        this.write.busy = true;
        this.storage.write(this.write, this.write.buffer, blockSize, this.blockOffset(address));
    }

    private writeCallback(): void {
        if (!this.repairing) return; // Abandoned meanwhile: state sync owns the image now.
        assert(this.entry >= 0);
        if (this.write.result !== IoResult.ok) {
            // EIO: the verified block is still in the buffer; write it again (as every writer
            // of the data file does) until it lands.
            this.writeRetries++;
            this.write.busy = true;
            const size = this.zones.gridBlockSize;
            this.storage.write(
                this.write,
                this.write.buffer,
                size,
                this.blockOffset(this.write.address),
            );
            return;
        }
        this.grid.clearMissing(this.entry);
        this.blocksRepaired++;
        this.progressed = true;
        this.requestNext();
    }

    private nextPeer(peer: number): number {
        assert(this.replicaCount >= 2);
        let next = (peer + 1) % this.replicaCount;
        if (next === this.replica) next = (next + 1) % this.replicaCount;
        return next;
    }
}
