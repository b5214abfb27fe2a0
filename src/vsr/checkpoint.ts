// Checkpoints: the state machine's image, the client table and every session's latest reply,
// written to one of two alternating copies so that the previous checkpoint stays intact until
// the superblock points at the new one. Recovery = the checkpoint the superblock names + the
// WAL's ops after it. While a checkpoint is written the replica stops executing ops (the image
// is written straight from the live state, without a copy), and resumes once the superblock
// that names it is durable.
//
// Steps of a write: KV image → serialized client table → each session's reply (into the copy's
// half of the client-replies zone). A read runs the same steps the other way and checks the
// image and table against the checksums the superblock recorded, and each reply against its own
// header checksum and the table.
//
// A write first snapshots the state (a copy of the KV image into a region of its own, the
// client table serialized, a reference on every reply), so execution resumes at once and the
// disk writes proceed from the snapshot.

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
import { type Layout, alignUp, sessionEntrySize } from "./layout.js";
import type { Message, MessagePool } from "./message_pool.js";

const Step = { idle: 0, kv: 1, sessions: 2, replies: 3 } as const;

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
    /** Arena offsets of the checksums of the last image written or expected on read. */
    readonly kvChecksum: number;
    readonly sessionsChecksum: number;
    private step: number = Step.idle;
    private writing = false;
    private copy = 0;
    private entry = 0;
    private readMessage: Message | null = null;
    private readonly readReplies: (Message | null)[] = [];
    /** Arena offset of the KV image snapshot a write proceeds from. */
    private readonly snapshotOffset: number;
    /** The replies of the snapshot (one reference each until the write ends). */
    private readonly snapshotReplies: (Message | null)[] = [];
    private ok = true;
    private doneCallback: ((ok: boolean) => void) | null = null;
    writes = 0;

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
        assert(alignUp(stateMachine.imageSize) === dataLayout.checkpointKvSize);
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
        this.kvChecksum = allocator.allocate(16, 16);
        this.sessionsChecksum = allocator.allocate(16, 16);
        for (let entry = 0; entry < this.clientsMax; entry++) this.readReplies.push(null);
        for (let entry = 0; entry < this.clientsMax; entry++) this.snapshotReplies.push(null);
        this.snapshotOffset = allocator.allocate(dataLayout.checkpointKvSize, sectorSize);
    }

    private releaseSnapshot(): void {
        for (let entry = 0; entry < this.clientsMax; entry++) {
            const reply = this.snapshotReplies[entry] ?? null;
            if (reply !== null) this.pool.unref(reply);
            this.snapshotReplies[entry] = null;
        }
    }

    /** Releases messages held by I/O in flight (the replica is being torn down). */
    releaseAll(): void {
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

    /** Writes the live state to checkpoint copy `copy` (checksums into kvChecksum, …). */
    write(copy: number, callback: (ok: boolean) => void): void {
        assert(this.step === Step.idle);
        assert(copy === 0 || copy === 1);
        this.writing = true;
        this.copy = copy;
        this.ok = true;
        this.doneCallback = callback;
        const image = this.stateMachine;
        const kvSize = this.layout.checkpointKvSize;
        this.bytes.copyWithin(this.snapshotOffset, image.imageOffset, image.imageOffset + kvSize);
        checksum(this.bytes, this.snapshotOffset, image.imageSize, this.bytes, this.kvChecksum);
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
        this.step = Step.kv;
        this.storage.write(this, this.snapshotOffset, kvSize, this.copyOffset(copy));
    }

    /**
     * Restores copy `copy` into the state machine and the (empty) client table, checking the
     * checksums already placed at kvChecksum and sessionsChecksum.
     */
    read(copy: number, callback: (ok: boolean) => void): void {
        assert(this.step === Step.idle);
        assert(this.sessions.count === 0);
        this.writing = false;
        this.copy = copy;
        this.ok = true;
        this.doneCallback = callback;
        this.step = Step.kv;
        const image = this.stateMachine;
        this.storage.read(
            this,
            image.imageOffset,
            this.layout.checkpointKvSize,
            this.copyOffset(copy),
        );
    }

    callback(completion: StorageCompletion): void {
        assert(completion === this);
        if (this.result !== IoResult.ok) this.ok = false;
        if (this.step === Step.kv) return this.afterKv();
        if (this.step === Step.sessions) return this.afterSessions();
        assert(this.step === Step.replies);
        if (!this.writing) this.afterReplyRead();
        this.entry++;
        this.nextReply();
    }

    private afterKv(): void {
        const image = this.stateMachine;
        if (
            !this.writing &&
            !checksumEquals(
                this.bytes,
                image.imageOffset,
                image.imageSize,
                this.bytes,
                this.kvChecksum,
            )
        ) {
            this.ok = false;
        }
        this.step = Step.sessions;
        const offset = this.copyOffset(this.copy) + this.layout.checkpointKvSize;
        const size = this.layout.checkpointSessionsSize;
        if (this.writing) this.storage.write(this, this.sessionsBuffer, size, offset);
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
                    this.storage.write(this, reply.offset, alignUp(size), offset);
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

    private afterReplyRead(): void {
        const message = this.readMessage;
        assert(message !== null);
        this.readMessage = null;
        const entryOffset = this.sessionsBuffer + this.entry * sessionEntrySize;
        if (this.replyValid(message, entryOffset)) {
            this.readReplies[this.entry] = message;
        } else {
            this.pool.unref(message);
        }
    }

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
            this.writes++;
            this.releaseSnapshot();
            return callback(this.ok);
        }
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
