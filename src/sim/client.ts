// A simulated client: registers a session, then sends one request at a time (a random batch of
// KV events over a small key space, so that clients collide on keys) and waits for its reply,
// re-sending the same request to every replica with backoff when no reply comes. Every reply
// and eviction goes to the checker, which holds the reference model.
//
// Keys come in sibling pairs that differ only in the lowest bit of their last byte, so a state
// machine that compares keys by a prefix (or by their size) mixes them up. Key index k, pair
// p = k >> 1: size 3 + p % 30; byte 0..1 = p (u16 LE); byte i >= 2 = (p * 7 + i) & 0xff, the
// last one xor (k & 1). Example: k = 5 (p = 2, size 5) = 02 00 10 11 13; k = 4 ends in 12.
// The checker decodes a key back to its index and requires the whole key to match.

import { assert } from "../stdx/assert.js";
import type { PRNG } from "../stdx/prng.js";
import { type Config, headerSize, kvEventSize } from "../constants.js";
import { EventKind, EventOffset } from "../state_machine/kv.js";
import type { Arena } from "../vsr/arena.js";
import {
    Command,
    Eviction,
    Frame,
    Operation,
    Reply,
    Request,
    headerCommand,
    headerSizeOf,
    invalidHeader,
    readU64,
    setChecksums,
    u128Equal,
    validBodyChecksum,
    validHeaderChecksum,
    writeU64,
} from "../vsr/header.js";
import type { Message, MessagePool } from "../vsr/message_pool.js";

export interface ClientObserver {
    /** A request is sent for the first time (its invocation). */
    onInvoke(client: number, request: Message): void;
    /** The reply to the request in flight arrived. */
    onReply(client: number, request: Message, reply: Message): void;
    /** The session is gone; the request in flight (if any) was abandoned. */
    onEviction(client: number, session: number): void;
}

export interface WorkloadOptions {
    readonly keyCount: number;
    readonly eventsPerRequestMax: number;
    readonly putProbability: number;
    readonly deleteProbability: number;
    readonly invalidEventProbability: number;
    readonly thinkTicksMean: number;
}

export function clientId(
    arenaView: DataView,
    offset: number,
    clientIndex: number,
    seed: number,
): void {
    arenaView.setUint32(offset, clientIndex + 1, true);
    arenaView.setUint32(offset + 4, seed >>> 0, true);
    arenaView.setUint32(offset + 8, Math.floor(seed / 0x1_0000_0000) >>> 0, true);
    arenaView.setUint32(offset + 12, 0x5eed_c1e7, true);
}

export function keySizeOf(keyIndex: number): number {
    return 3 + ((keyIndex >>> 1) % 30);
}

/** Writes the workload key of `keyIndex` at bytes[offset..]; returns its size. */
export function encodeKey(bytes: Uint8Array, offset: number, keyIndex: number): number {
    assert(keyIndex >= 0 && keyIndex <= 0xffff);
    const pair = keyIndex >>> 1;
    const keySize = keySizeOf(keyIndex);
    bytes[offset] = pair & 0xff;
    bytes[offset + 1] = pair >>> 8;
    for (let index = 2; index < keySize; index++) bytes[offset + index] = (pair * 7 + index) & 0xff;
    bytes[offset + keySize - 1] = ((pair * 7 + keySize - 1) & 0xff) ^ (keyIndex & 1);
    return keySize;
}

/** The index of the workload key at bytes[offset..offset+size), or -1 if it is none (whole key). */
export function decodeKey(bytes: Uint8Array, offset: number, size: number): number {
    if (size < 3) return -1;
    const pair = bytes[offset]! | (bytes[offset + 1]! << 8);
    const last = bytes[offset + size - 1]!;
    const keyIndex = pair * 2 + ((last ^ (pair * 7 + size - 1)) & 1);
    if (keyIndex > 0xffff || keySizeOf(keyIndex) !== size) return -1;
    for (let index = 2; index < size; index++) {
        let expected = (pair * 7 + index) & 0xff;
        if (index === size - 1) expected ^= keyIndex & 1;
        if (bytes[offset + index] !== expected) return -1;
    }
    return keyIndex;
}

export class SimClient {
    readonly index: number;
    readonly node: number;
    private readonly config: Config;
    private readonly cluster: number;
    private readonly replicaCount: number;
    private readonly arena: Arena;
    private readonly pool: MessagePool;
    private readonly prng: PRNG;
    private readonly workload: WorkloadOptions;
    private readonly observer: ClientObserver;
    private readonly send: (source: number, target: number, message: Message) => void;
    /** Arena offset of this client's u128 id. */
    readonly idOffset: number;
    session = 0;
    requestNumber = 0;
    view = 0;
    private inflight: Message | null = null;
    private retryTicks = 0;
    private retryDeadlineTicks = 0;
    private retryAttempts = 0;
    private thinkTicks = 0;
    /** False once the simulation stops issuing new requests (the liveness phase). */
    issuing = true;
    requestsCompleted = 0;
    /** KV requests issued since start (requestNumber restarts with each new session). */
    requestsIssued = 0;
    private registerAttempts = 0;
    evictions = 0;

    constructor(
        index: number,
        node: number,
        config: Config,
        cluster: number,
        replicaCount: number,
        arena: Arena,
        pool: MessagePool,
        prng: PRNG,
        seed: number,
        workload: WorkloadOptions,
        observer: ClientObserver,
        send: (source: number, target: number, message: Message) => void,
    ) {
        assert(workload.keyCount >= 1 && workload.keyCount <= 0xffff);
        assert(workload.eventsPerRequestMax >= 1);
        this.index = index;
        this.node = node;
        this.config = config;
        this.cluster = cluster;
        this.replicaCount = replicaCount;
        this.arena = arena;
        this.pool = pool;
        this.prng = prng;
        this.workload = workload;
        this.observer = observer;
        this.send = send;
        this.idOffset = arena.allocate(16, 16);
        clientId(arena.view, this.idOffset, index, seed);
        this.thinkTicks = prng.exponential(workload.thinkTicksMean);
    }

    get busy(): boolean {
        return this.inflight !== null;
    }

    tick(): void {
        if (this.inflight !== null) {
            this.retryTicks++;
            if (this.retryTicks >= this.retryDeadlineTicks) this.retry();
            return;
        }
        if (!this.issuing) return;
        if (this.thinkTicks > 0) {
            this.thinkTicks--;
            return;
        }
        if (this.session === 0) this.startRequest(Operation.register, 0);
        else this.startRequest(Operation.kv, this.prng.range(1, this.workload.eventsPerRequestMax));
    }

    private startRequest(operation: number, eventCount: number): void {
        assert(this.inflight === null);
        const message = this.pool.acquire();
        const base = message.offset;
        const view = this.arena.view;
        view.setUint32(base + Frame.cluster, this.cluster, true);
        view.setUint32(base + Frame.size, headerSize + eventCount * kvEventSize, true);
        view.setUint32(base + Frame.view, this.view, true);
        view.setUint8(base + Frame.command, Command.request);
        this.arena.bytes.copyWithin(base + Request.client, this.idOffset, this.idOffset + 16);
        if (operation === Operation.kv) {
            this.requestNumber++;
            this.requestsIssued++;
            writeU64(view, base + Request.session, this.session);
            view.setUint32(base + Request.request, this.requestNumber, true);
        } else {
            this.registerAttempts++;
            view.setUint32(base + Request.request, this.registerAttempts, true);
        }
        view.setUint8(base + Request.operation, operation);
        for (let index = 0; index < eventCount; index++) {
            this.encodeRandomEvent(base + headerSize + index * kvEventSize);
        }
        setChecksums(this.arena.bytes, view, base);
        assert(invalidHeader(view, base, this.config.messageSizeMax) === null);
        this.inflight = message;
        this.retryAttempts = 0;
        this.retryTicks = 0;
        this.retryDeadlineTicks = this.config.clientRequestTimeoutTicks;
        this.observer.onInvoke(this.index, message);
        this.send(this.node, this.view % this.replicaCount, message);
    }

    private encodeRandomEvent(offset: number): void {
        const bytes = this.arena.bytes;
        bytes.fill(0, offset, offset + kvEventSize);
        const workload = this.workload;
        const pick = this.prng.pickOfThree(
            workload.putProbability,
            workload.putProbability + workload.deleteProbability,
        );
        const kind = pick === 0 ? EventKind.put : pick === 1 ? EventKind.delete : EventKind.get;
        const keyIndex = this.prng.int(workload.keyCount);
        bytes[offset + EventOffset.kind] = kind;
        if (this.prng.chance(workload.invalidEventProbability)) return; // keySize 0: invalid.
        bytes[offset + EventOffset.keySize] = encodeKey(bytes, offset + EventOffset.key, keyIndex);
        if (kind !== EventKind.put) return;
        const valueSize = this.prng.int(65);
        bytes[offset + EventOffset.valueSize] = valueSize;
        for (let index = 0; index < valueSize; index++) {
            bytes[offset + EventOffset.value + index] = this.prng.int(256);
        }
    }

    private retry(): void {
        const message = this.inflight;
        assert(message !== null);
        // The primary may have changed: re-send the same request (same checksum) to everyone.
        for (let replica = 0; replica < this.replicaCount; replica++)
            this.send(this.node, replica, message);
        this.retryAttempts = Math.min(this.retryAttempts + 1, 6);
        this.retryTicks = 0;
        const ceiling = this.config.clientRequestTimeoutTicks * 2 ** this.retryAttempts;
        this.retryDeadlineTicks =
            this.config.clientRequestTimeoutTicks +
            this.prng.int(Math.min(ceiling, this.config.backoffTicksMax * 4));
    }

    onMessage(message: Message): void {
        const view = this.arena.view;
        const base = message.offset;
        if (!validHeaderChecksum(this.arena.bytes, base)) return;
        if (invalidHeader(view, base, this.config.messageSizeMax) !== null) return;
        if (!validBodyChecksum(this.arena.bytes, base, headerSizeOf(view, base))) return;
        const command = headerCommand(view, base);
        if (command === Command.eviction) return this.onEviction(message);
        if (command !== Command.reply) return;
        const inflight = this.inflight;
        if (inflight === null) return;
        if (!u128Equal(view, base + Reply.client, this.idOffset)) return;
        if (!u128Equal(view, base + Reply.requestChecksum, inflight.offset + Frame.checksum))
            return;
        this.view = Math.max(this.view, view.getUint32(base + Frame.view, true));
        if (view.getUint8(inflight.offset + Request.operation) === Operation.register) {
            this.session = readU64(view, base + Reply.session);
            this.requestNumber = 0;
        }
        this.observer.onReply(this.index, inflight, message);
        this.release();
        this.requestsCompleted++;
        this.thinkTicks = this.prng.exponential(this.workload.thinkTicksMean);
    }

    private onEviction(message: Message): void {
        const view = this.arena.view;
        if (!u128Equal(view, message.offset + Eviction.client, this.idOffset)) return;
        // An eviction names the session it ends: one of an earlier session is stale.
        if (this.session === 0 || readU64(view, message.offset + Eviction.session) !== this.session)
            return;
        this.evictions++;
        this.observer.onEviction(this.index, this.session);
        this.session = 0;
        this.requestNumber = 0;
        this.release();
    }

    private release(): void {
        if (this.inflight === null) return;
        this.pool.unref(this.inflight);
        this.inflight = null;
    }

    /** Releases pool messages (end of a run). */
    close(): void {
        this.release();
    }
}
