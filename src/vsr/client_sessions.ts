// The client table: one entry per registered client session, updated only when a request
// commits (an uncommitted request number may not survive a view change). Each entry holds the
// session number (the op that committed the client's register), the latest committed request
// number, the op of its latest reply (for oldest-first eviction) and that reply itself, so a
// duplicate of the latest request is answered without executing it twice (at-most-once).
//
// Client ids are u128 kept as four u32 words; lookups scan at most clientsMax entries.

import { assert } from "../stdx/assert.js";
import { Frame, readU64, writeU64 } from "./header.js";
import type { Message, MessagePool } from "./message_pool.js";

export class ClientSessions {
    readonly entriesMax: number;
    private readonly pool: MessagePool;
    private readonly view: DataView;
    /** Four u32 words per entry; all zero when the entry is free (a client id is never zero). */
    private readonly clientIds: Uint32Array;
    private readonly sessions: Float64Array;
    private readonly requests: Float64Array;
    private readonly replyOps: Float64Array;
    private readonly replies: (Message | null)[] = [];
    /** Four u32 words per entry: the checksum of the register request that began the session. */
    private readonly registerChecksums: Uint32Array;
    /** The register's request number: clients number their register attempts upwards. */
    private readonly registerAttempts: Float64Array;
    count = 0;

    constructor(entriesMax: number, pool: MessagePool, view: DataView) {
        assert(entriesMax > 0);
        this.entriesMax = entriesMax;
        this.pool = pool;
        this.view = view;
        this.clientIds = new Uint32Array(entriesMax * 4);
        this.sessions = new Float64Array(entriesMax);
        this.requests = new Float64Array(entriesMax);
        this.replyOps = new Float64Array(entriesMax);
        this.registerChecksums = new Uint32Array(entriesMax * 4);
        this.registerAttempts = new Float64Array(entriesMax);
        for (let index = 0; index < entriesMax; index++) this.replies.push(null);
    }

    /** The entry of the client whose u128 id is at arena offset `clientOffset`, or -1. */
    find(clientOffset: number): number {
        const w0 = this.view.getUint32(clientOffset, true);
        const w1 = this.view.getUint32(clientOffset + 4, true);
        const w2 = this.view.getUint32(clientOffset + 8, true);
        const w3 = this.view.getUint32(clientOffset + 12, true);
        assert((w0 | w1 | w2 | w3) !== 0);
        const ids = this.clientIds;
        for (let entry = 0; entry < this.entriesMax; entry++) {
            const base = entry * 4;
            if (
                ids[base] === w0 &&
                ids[base + 1] === w1 &&
                ids[base + 2] === w2 &&
                ids[base + 3] === w3
            ) {
                return entry;
            }
        }
        return -1;
    }

    session(entry: number): number {
        return this.sessions[entry] ?? 0;
    }

    request(entry: number): number {
        return this.requests[entry] ?? 0;
    }

    reply(entry: number): Message | null {
        return this.replies[entry] ?? null;
    }

    /** The op of the entry's latest reply. */
    replyOp(entry: number): number {
        return this.replyOps[entry] ?? 0;
    }

    /** A session whose latest reply was lost (a corrupt checkpoint reply): to repair. */
    replyMissing(entry: number): boolean {
        return !this.free(entry) && this.replies[entry] === null;
    }

    /** Restores a missing reply from a peer's copy (the caller checked client, op, session). */
    repairReply(entry: number, reply: Message): void {
        assert(this.replyMissing(entry));
        this.replies[entry] = this.pool.ref(reply);
    }

    /** Writes the entry's client id at arena offset `targetOffset` (for eviction messages). */
    writeClientId(entry: number, targetOffset: number): void {
        for (let word = 0; word < 4; word++) {
            this.view.setUint32(
                targetOffset + word * 4,
                this.clientIds[entry * 4 + word] ?? 0,
                true,
            );
        }
    }

    /** The entry to reuse for a new session: a free one, else the one with the oldest reply. */
    evictionCandidate(): number {
        let oldest = -1;
        for (let entry = 0; entry < this.entriesMax; entry++) {
            if (this.free(entry)) return entry;
            if (oldest === -1 || (this.replyOps[entry] ?? 0) < (this.replyOps[oldest] ?? 0))
                oldest = entry;
        }
        assert(oldest >= 0);
        return oldest;
    }

    free(entry: number): boolean {
        const base = entry * 4;
        const ids = this.clientIds;
        return (
            ((ids[base] ?? 0) |
                (ids[base + 1] ?? 0) |
                (ids[base + 2] ?? 0) |
                (ids[base + 3] ?? 0)) ===
            0
        );
    }

    /**
     * Starts a session in `entry` (free, or evicted by the caller) for the client at
     * `clientOffset`; `registerChecksumOffset` holds the checksum of the register request.
     */
    register(
        entry: number,
        clientOffset: number,
        registerChecksumOffset: number,
        attempt: number,
        session: number,
        reply: Message,
    ): void {
        assert(this.free(entry));
        assert(session > 0);
        for (let word = 0; word < 4; word++) {
            this.clientIds[entry * 4 + word] = this.view.getUint32(clientOffset + word * 4, true);
            this.registerChecksums[entry * 4 + word] = this.view.getUint32(
                registerChecksumOffset + word * 4,
                true,
            );
        }
        this.sessions[entry] = session;
        this.registerAttempts[entry] = attempt;
        this.count++;
        this.update(entry, 0, session, reply);
    }

    /** Records the entry's latest committed request and its reply (the table takes a reference). */
    update(entry: number, request: number, replyOp: number, reply: Message): void {
        assert(!this.free(entry));
        assert(request >= (this.requests[entry] ?? 0));
        const previous = this.replies[entry] ?? null;
        this.requests[entry] = request;
        this.replyOps[entry] = replyOp;
        this.replies[entry] = this.pool.ref(reply);
        if (previous !== null) this.pool.unref(previous);
    }

    /** True when the session began with the register whose checksum is at `checksumOffset`. */
    registeredBy(entry: number, checksumOffset: number): boolean {
        for (let word = 0; word < 4; word++) {
            if (
                this.registerChecksums[entry * 4 + word] !==
                this.view.getUint32(checksumOffset + word * 4, true)
            ) {
                return false;
            }
        }
        return true;
    }

    /**
     * Serialized entry (64 bytes, for checkpoints): 0 client u128, 16 register checksum u128,
     * 32 session u64, 40 request u64, 48 reply op u64, 56 reply size u32, 60 register attempt u32.
     */
    static readonly entrySize = 64;

    serialize(entry: number, target: number): void {
        const view = this.view;
        for (let word = 0; word < 4; word++) {
            view.setUint32(target + word * 4, this.clientIds[entry * 4 + word] ?? 0, true);
            view.setUint32(
                target + 16 + word * 4,
                this.registerChecksums[entry * 4 + word] ?? 0,
                true,
            );
        }
        writeU64(view, target + 32, this.sessions[entry] ?? 0);
        writeU64(view, target + 40, this.requests[entry] ?? 0);
        writeU64(view, target + 48, this.replyOps[entry] ?? 0);
        const reply = this.replies[entry] ?? null;
        view.setUint32(
            target + 56,
            reply === null ? 0 : view.getUint32(reply.offset + Frame.size, true),
            true,
        );
        view.setUint32(target + 60, this.registerAttempts[entry] ?? 0, true);
    }

    /** Restores a serialized entry; the reply (validated by the caller) may be null. */
    deserialize(entry: number, source: number, reply: Message | null): void {
        const view = this.view;
        assert(this.free(entry));
        for (let word = 0; word < 4; word++) {
            this.clientIds[entry * 4 + word] = view.getUint32(source + word * 4, true);
            this.registerChecksums[entry * 4 + word] = view.getUint32(source + 16 + word * 4, true);
        }
        if (this.free(entry)) return; // An empty entry.
        this.sessions[entry] = readU64(view, source + 32);
        this.requests[entry] = readU64(view, source + 40);
        this.replyOps[entry] = readU64(view, source + 48);
        this.registerAttempts[entry] = view.getUint32(source + 60, true);
        this.replies[entry] = reply === null ? null : this.pool.ref(reply);
        this.count++;
    }

    /** Empties the table (state sync replaces it whole). */
    clear(): void {
        for (let entry = 0; entry < this.entriesMax; entry++) {
            if (!this.free(entry)) this.evict(entry);
        }
        assert(this.count === 0);
    }

    /** Releases every reply (the replica is shutting down or being rebuilt). */
    releaseAll(): void {
        for (let entry = 0; entry < this.entriesMax; entry++) {
            const reply = this.replies[entry] ?? null;
            if (reply !== null) this.pool.unref(reply);
            this.replies[entry] = null;
        }
    }

    registerAttempt(entry: number): number {
        return this.registerAttempts[entry] ?? 0;
    }

    evict(entry: number): void {
        assert(!this.free(entry));
        const previous = this.replies[entry] ?? null;
        if (previous !== null) this.pool.unref(previous);
        this.replies[entry] = null;
        for (let word = 0; word < 4; word++) this.clientIds[entry * 4 + word] = 0;
        this.sessions[entry] = 0;
        this.requests[entry] = 0;
        this.replyOps[entry] = 0;
        this.registerAttempts[entry] = 0;
        this.count--;
        assert(this.count >= 0);
    }
}
