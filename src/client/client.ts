// The client library: put / get / delete against a vsr-node cluster, with batching, retries and
// at-most-once execution through a registered session (see docs/design.md, Protocol: Clients).
//
// Session: the first call sends `register` (session 0, request = a register attempt counter, so
// every attempt has its own checksum); the reply's session number is then carried by every
// request, numbered 1, 2, 3… At most one request is in flight per session, always: the replica's
// client table relies on it (a request n + 1 is only accepted after n committed).
// Batching: calls made while a request is in flight wait in a FIFO queue; the next request packs
// as many queued events as fit in one message (a call larger than that spans several requests).
// Each caller gets its own results, in event order, from the reply body (80 bytes per event).
// Finding the primary: a request goes to replica `view % replicaCount`, the view learned from
// replies and evictions. When no reply comes within the request timeout (600 ms, doubling with
// jitter up to 5 s) the same request bytes are sent to every replica: backups drop it, the
// primary answers, and a duplicate of a committed request gets the cached reply (so a retried
// put is never applied twice).
// Eviction: an eviction naming our current session fails the calls in flight with
// SESSION_EVICTED (their effect is unknown); later calls re-register transparently. An eviction
// with reason wrongCluster comes from a replica of another cluster (in its cluster's name, the
// one exception to dropping frames of other clusters): every pending call fails with
// WRONG_CLUSTER at once, since no retry can fix a wrong address list or cluster id.
// Timeouts: every call has a deadline; on expiry it rejects with TIMEOUT, or UNREACHABLE when no
// replica connection is open. A timed-out request stays in flight (its outcome is unknown, and
// abandoning it would wedge the session); its results are discarded when they come.
// Time: one coarse interval timer (tickMs) drives retries and deadlines, never a timer per call;
// it holds the process open only while calls are pending.
// Invariants: inflight === none ⇔ no segment is recorded; session === 0 ⇒ the in-flight request
// (if any) is a register; every received frame is validated (header checksum, header rules,
// cluster, size, body checksum) before any field is read.

import { randomBytes } from "node:crypto";
import { assert } from "../stdx/assert.js";
import { copyBytes } from "../stdx/copy.js";
import {
    batchEntryHeaderSize,
    headerSize,
    kvEventSize,
    kvResultSize,
    production,
} from "../constants.js";
import {
    EventKind,
    EventOffset,
    ResultOffset,
    ResultStatus,
    keySizeMax,
    valueSizeMax,
} from "../state_machine/kv.js";
import {
    Command,
    Eviction,
    EvictionReason,
    Frame,
    Operation,
    Reply,
    Request,
    headerCommand,
    invalidHeader,
    readU64,
    setChecksums,
    u128IsZero,
    validBodyChecksum,
    validHeaderChecksum,
    writeU64,
} from "../vsr/header.js";
import { type ClientTransport, WebSocketTransport } from "./transport.js";

export type ClientErrorCode =
    | "KEY_SIZE"
    | "VALUE_SIZE"
    | "TIMEOUT"
    | "UNREACHABLE"
    | "CLOSED"
    | "SESSION_EVICTED"
    | "TABLE_FULL"
    | "INVALID_EVENT"
    | "WRONG_CLUSTER";

/** Every failure of a client call; `code` is stable, the message is for people. */
export class ClientError extends Error {
    override name = "ClientError";
    readonly code: ClientErrorCode;
    /** For a batch call: the indexes of the events that failed (TABLE_FULL), else null. */
    readonly indexes: readonly number[] | null;

    constructor(code: ClientErrorCode, message: string, indexes: readonly number[] | null = null) {
        super(message);
        this.code = code;
        this.indexes = indexes;
    }
}

export type Key = Uint8Array | string;
export type Value = Uint8Array | string;

export interface CallOptions {
    /** Overrides the client's callTimeoutMs for this call. */
    readonly timeoutMs?: number;
}

/**
 * How a client reaches its cluster: `addresses` (every replica's "host:port", in replica order,
 * as given to `vsr start`) and `cluster` (the id given to `vsr format`), over WebSockets; or an
 * explicit `transport` (tests, custom networks), where `cluster` defaults to 0.
 */
export type ClientOptions =
    | (ClientTuning & {
          readonly addresses: readonly string[];
          readonly cluster: number;
          readonly transport?: never;
      })
    | (ClientTuning & {
          readonly transport: ClientTransport;
          readonly cluster?: number;
          readonly addresses?: never;
      });

export interface ClientTuning {
    /** The cluster's messageSizeMax (never more). Default: the production preset's. */
    readonly messageSizeMax?: number;
    /** Default deadline of every call. Default 30 s. */
    readonly callTimeoutMs?: number;
    /** First retry of an unanswered request. Default 600 ms. */
    readonly requestTimeoutMs?: number;
    /** Retry backoff ceiling. Default 5 s. */
    readonly requestTimeoutMsMax?: number;
    /** Resolution of retries and deadlines. Default 10 ms. */
    readonly tickMs?: number;
}

export interface ClientStats {
    /** Requests (register or kv) sent for the first time. */
    requests: number;
    /** Times an unanswered request was re-sent to every replica. */
    retries: number;
    evictions: number;
    /** Frames dropped by validation (checksum, header, cluster, size). */
    framesInvalid: number;
    /** Refusals by a replica of another cluster (each failed every pending call). */
    clusterRejections: number;
}

/** Events of one request, by the replica's arithmetic: header, one batch entry, N events. */
export function eventsPerRequestMax(messageSizeMax: number): number {
    return Math.floor((messageSizeMax - headerSize - batchEntryHeaderSize) / kvEventSize);
}

const Inflight = { none: 0, register: 1, kv: 2 } as const;
type Inflight = (typeof Inflight)[keyof typeof Inflight];

const FrameCheck = { valid: 0, invalid: 1, wrongCluster: 2 } as const;
type FrameCheck = (typeof FrameCheck)[keyof typeof FrameCheck];

const textEncoder = new TextEncoder();

// One scratch frame per process, shared by every client: received frames are copied into it and
// validated there, and request checksums are computed there. The checksum module caches a few
// views by identity (a new one costs a DataView), so hashing always through this one view keeps
// many clients in one process (the load generator) allocation-free. Sharing is safe because a
// frame is handled synchronously, start to finish.
let scratchBytes = new Uint8Array(0);
let scratchView = new DataView(scratchBytes.buffer);

function scratchReserve(sizeBytes: number): void {
    if (scratchBytes.length >= sizeBytes) return;
    scratchBytes = new Uint8Array(sizeBytes);
    scratchView = new DataView(scratchBytes.buffer);
}

/**
 * How a callback call ends: `error` null and `result` what the Promise form resolves with, or a
 * ClientError and `result` undefined. Called once, never from inside the call that started it.
 */
export type CallCallback<T> = (error: ClientError | null, result: T) => void;

/**
 * One call (one or many events of one kind) from submission to resolution. Reused: a client
 * keeps the calls that completed with results (the common end) in a free list, with their own
 * event buffer, so a closed loop of single calls allocates no call, events or closures; a call
 * that ended otherwise (timeout, eviction, close) may still sit in the queue or the request in
 * flight, so it is left to the garbage collector.
 */
class PendingCall {
    kind: EventKind = EventKind.put;
    many = false;
    eventCount = 0;
    /** The encoded events, eventCount × 128 bytes, snapshotted at the call. */
    events: Uint8Array;
    /** This call's own room for a single event (events is a view of it for single calls). */
    readonly ownEvents: Buffer = Buffer.alloc(kvEventSize);
    /** A batch call's result statuses (null for a single call: see `status`). */
    statuses: Uint8Array | null = null;
    /** A batch get's values, null for not found (null otherwise: see `value`). */
    values: (Uint8Array | null)[] | null = null;
    /** A single call's result. */
    status = 0;
    value: Uint8Array | null = null;
    deadlineMs = 0;
    /** The Promise form's settle functions, or the callback form's callback (one of the two). */
    resolve: ((value: unknown) => void) | null = null;
    reject: ((error: ClientError) => void) | null = null;
    callback: CallCallback<unknown> | null = null;
    eventsSent = 0;
    eventsDone = 0;
    settled = false;
    /** `events` is a view of the client's spare batch buffer, not yet handed back. */
    spareHeld = false;

    constructor() {
        this.events = this.ownEvents;
    }

    /** Makes the call new: `events` null means a single event, encoded into ownEvents next. */
    reset(kind: EventKind, many: boolean, events: Uint8Array | null): void {
        const own = events === null;
        if (own) this.ownEvents.fill(0);
        this.events = own ? this.ownEvents : events;
        assert(this.events.length % kvEventSize === 0);
        this.kind = kind;
        this.many = many;
        this.eventCount = this.events.length / kvEventSize;
        this.statuses = many ? new Uint8Array(this.eventCount) : null;
        this.values = many && kind === EventKind.get ? new Array(this.eventCount).fill(null) : null;
        this.status = 0;
        this.value = null;
        this.deadlineMs = 0;
        this.resolve = null;
        this.reject = null;
        this.callback = null;
        this.eventsSent = 0;
        this.eventsDone = 0;
        this.settled = false;
        this.spareHeld = false;
    }

    setResult(event: number, status: number, value: Uint8Array | null): void {
        assert(event < this.eventCount);
        if (this.statuses === null) {
            this.status = status;
            this.value = value;
        } else {
            this.statuses[event] = status;
            if (this.values !== null) this.values[event] = value;
        }
    }

    /** Hands the outcome to whoever waits: the callback, or the Promise. */
    finish(error: ClientError | null, result: unknown): void {
        const callback = this.callback;
        if (callback !== null) {
            try {
                callback(error, result);
            } catch (thrown) {
                // The client's state is consistent here; the caller's bug surfaces on its own.
                process.nextTick(rethrow, thrown);
            }
        } else if (error !== null) {
            this.reject!(error);
        } else {
            this.resolve!(result);
        }
    }
}

function rethrow(error: unknown): never {
    throw error;
}

/** Calls kept for reuse per client (more in flight at once are allocated, and dropped after). */
const freeCallsMax = 64;

/** A FIFO of calls: a power-of-two ring that doubles when full (never Array#shift). */
class CallQueue {
    private items: (PendingCall | null)[] = new Array(16).fill(null);
    private head = 0;
    count = 0;

    push(call: PendingCall): void {
        if (this.count === this.items.length) this.grow();
        this.items[(this.head + this.count) & (this.items.length - 1)] = call;
        this.count++;
    }

    peek(): PendingCall | null {
        return this.count === 0 ? null : this.items[this.head]!;
    }

    pop(): void {
        assert(this.count > 0);
        this.items[this.head] = null;
        this.head = (this.head + 1) & (this.items.length - 1);
        this.count--;
    }

    at(index: number): PendingCall {
        assert(index < this.count);
        return this.items[(this.head + index) & (this.items.length - 1)]!;
    }

    private grow(): void {
        const items: (PendingCall | null)[] = new Array(this.items.length * 2).fill(null);
        for (let index = 0; index < this.count; index++) items[index] = this.at(index);
        this.items = items;
        this.head = 0;
    }
}

/**
 * One interval timer per tickMs for every client of the process, instead of one per client:
 * each timer firing costs a few hundred bytes of garbage in Node's timer machinery, so 64
 * clients with a timer each made 6,400 firings a second, garbage of the same order as their
 * requests'. The timer is ref'd (keeps the process alive) while any attached client has pending
 * calls, and cleared when the last client detaches. Invariant: refCount ≤ callbacks.length.
 */
class ClientTicker {
    private static readonly byTickMs = new Map<number, ClientTicker>();
    private readonly tickMs: number;
    private readonly callbacks: (() => void)[] = [];
    private readonly timer: NodeJS.Timeout;
    private refCount = 0;
    private readonly onTimer = (): void => {
        // A callback may detach a client (close from a call's callback): the swap-remove then
        // skips one client for one tick, which only delays its retry or deadline by a tick.
        for (let index = 0; index < this.callbacks.length; index++) this.callbacks[index]!();
    };

    private constructor(tickMs: number) {
        this.tickMs = tickMs;
        this.timer = setInterval(this.onTimer, tickMs);
        this.timer.unref();
    }

    static attach(tickMs: number, callback: () => void): ClientTicker {
        let ticker = ClientTicker.byTickMs.get(tickMs);
        if (ticker === undefined) {
            ticker = new ClientTicker(tickMs);
            ClientTicker.byTickMs.set(tickMs, ticker);
        }
        ticker.callbacks.push(callback);
        return ticker;
    }

    detach(callback: () => void): void {
        const index = this.callbacks.indexOf(callback);
        assert(index !== -1);
        this.callbacks[index] = this.callbacks[this.callbacks.length - 1]!;
        this.callbacks.pop();
        assert(this.refCount <= this.callbacks.length);
        if (this.callbacks.length > 0) return;
        clearInterval(this.timer);
        assert(ClientTicker.byTickMs.get(this.tickMs) === this);
        ClientTicker.byTickMs.delete(this.tickMs);
    }

    ref(): void {
        if (this.refCount++ === 0) this.timer.ref();
        assert(this.refCount <= this.callbacks.length);
    }

    unref(): void {
        assert(this.refCount > 0);
        if (--this.refCount === 0) this.timer.unref();
    }
}

export class Client {
    readonly cluster: number;
    readonly messageSizeMax: number;
    /** Events packed into one request at most. */
    readonly eventsPerRequestMax: number;
    readonly stats: ClientStats = {
        requests: 0,
        retries: 0,
        evictions: 0,
        framesInvalid: 0,
        clusterRejections: 0,
    };
    private readonly transport: ClientTransport;
    private readonly callTimeoutMs: number;
    private readonly requestTimeoutMs: number;
    private readonly requestTimeoutMsMax: number;
    /** This client's u128 id, in the request buffer's own header (Request.client). */
    private readonly requestBytes: Uint8Array;
    private readonly requestView: DataView;
    /** requestBytes[0, Frame.size) (see requestFrame). */
    private requestFrameView: Uint8Array = new Uint8Array(0);
    private readonly queue = new CallQueue();
    /** Segments of the request in flight: events [start, start + count) of a call. */
    private readonly segmentCalls: (PendingCall | null)[] = [];
    private readonly segmentStarts: number[] = [];
    private readonly segmentCounts: number[] = [];
    private segmentCount = 0;
    /** The process-wide timer of this client's tickMs (see ClientTicker). */
    private readonly ticker: ClientTicker;
    /** Bound once: this client's part of the ticker's tick. */
    private readonly tickCallback = (): void => this.tick();
    /** This client holds the ticker's timer ref'd (it has pending calls). */
    private timerRef = false;
    /** Calls kept for reuse (see PendingCall). */
    private readonly freeCalls: PendingCall[] = [];
    private inflight: Inflight = Inflight.none;
    private inflightEventCount = 0;
    private retryAtMs = 0;
    private retryAttempts = 0;
    private pendingCount = 0;
    /**
     * One reusable buffer for a batch call's events (a request's worth): a closed loop of
     * batches copies each call's events into it instead of allocating ~128 KiB of
     * off-heap memory per call (whose accounting drives scavenges). A call holds it until its
     * events are all packed into a request or it settles; meanwhile other calls allocate.
     */
    private spareEvents: Buffer | null = null;
    private spareEventsHeld = false;
    /** The view of the spare that batchEvents handed out last (submit recognizes it). */
    private spareEventsLent: Buffer | null = null;
    /** No pending call's deadline is earlier: ticks before it skip the deadline scan. */
    private deadlineMinMs = Number.POSITIVE_INFINITY;
    private closed = false;
    /** The session number (the op of the register's commit), 0 when not registered. */
    session = 0;
    requestNumber = 0;
    /** The latest view this client has heard of. */
    view = 0;
    private registerAttempts = 0;

    constructor(options: ClientOptions) {
        const messageSizeMax = options.messageSizeMax ?? production.messageSizeMax;
        const cluster = options.cluster ?? 0;
        const transport =
            options.transport ??
            new WebSocketTransport({ addresses: options.addresses, messageSizeMax });
        assert(Number.isInteger(cluster) && cluster >= 0 && cluster <= 0xffff_ffff);
        assert(eventsPerRequestMax(messageSizeMax) >= 1);
        assert(transport.replicaCount >= 1);
        this.transport = transport;
        this.cluster = cluster;
        this.messageSizeMax = messageSizeMax;
        this.eventsPerRequestMax = eventsPerRequestMax(messageSizeMax);
        this.callTimeoutMs = positive(options.callTimeoutMs ?? 30_000, "callTimeoutMs");
        this.requestTimeoutMs = positive(options.requestTimeoutMs ?? 600, "requestTimeoutMs");
        this.requestTimeoutMsMax = Math.max(
            this.requestTimeoutMs,
            positive(options.requestTimeoutMsMax ?? 5000, "requestTimeoutMsMax"),
        );
        this.requestBytes = new Uint8Array(messageSizeMax);
        this.requestView = new DataView(this.requestBytes.buffer);
        scratchReserve(messageSizeMax);
        writeClientId(this.requestBytes, this.requestView, Request.client);
        this.transport.onMessage((replica, bytes) => this.onFrame(replica, bytes));
        this.ticker = ClientTicker.attach(
            positive(options.tickMs ?? 10, "tickMs"),
            this.tickCallback,
        );
    }

    /** The client id as 32 hex digits (little-endian bytes, as on the wire). */
    get id(): string {
        return Buffer.from(
            this.requestBytes.subarray(Request.client, Request.client + 16),
        ).toString("hex");
    }

    put(key: Key, value: Value, options?: CallOptions): Promise<void> {
        const timeoutMs = this.timeoutOf(options);
        const call = this.singleCall(EventKind.put, key, value);
        return this.submitPromise(call, timeoutMs) as Promise<void>;
    }

    /** The value, or null when the key is not found. */
    get(key: Key, options?: CallOptions): Promise<Uint8Array | null> {
        const timeoutMs = this.timeoutOf(options);
        const call = this.singleCall(EventKind.get, key, null);
        return this.submitPromise(call, timeoutMs) as Promise<Uint8Array | null>;
    }

    /** True when the key existed. */
    delete(key: Key, options?: CallOptions): Promise<boolean> {
        const timeoutMs = this.timeoutOf(options);
        const call = this.singleCall(EventKind.delete, key, null);
        return this.submitPromise(call, timeoutMs) as Promise<boolean>;
    }

    /** Rejects with TABLE_FULL (indexes = the puts that failed) when the table is full. */
    putMany(
        entries: readonly { readonly key: Key; readonly value: Value }[],
        options?: CallOptions,
    ): Promise<void> {
        const timeoutMs = this.timeoutOf(options);
        const call = this.manyCall(EventKind.put, this.encodeEntries(entries));
        return this.submitPromise(call, timeoutMs) as Promise<void>;
    }

    getMany(keys: readonly Key[], options?: CallOptions): Promise<(Uint8Array | null)[]> {
        const timeoutMs = this.timeoutOf(options);
        const call = this.manyCall(EventKind.get, this.encodeKeys(EventKind.get, keys));
        return this.submitPromise(call, timeoutMs) as Promise<(Uint8Array | null)[]>;
    }

    deleteMany(keys: readonly Key[], options?: CallOptions): Promise<boolean[]> {
        const timeoutMs = this.timeoutOf(options);
        const call = this.manyCall(EventKind.delete, this.encodeKeys(EventKind.delete, keys));
        return this.submitPromise(call, timeoutMs) as Promise<boolean[]>;
    }

    // The callback forms: the same calls and outcomes, delivered to `callback` instead of a
    // Promise. A closed loop of single calls through them allocates nothing per call (no
    // Promise, no closure, no call record, no event buffer): what a load generator needs, so
    // that it measures the cluster rather than its own garbage. Input errors (KEY_SIZE,
    // VALUE_SIZE, a bad timeoutMs) still throw at the call, as in the Promise forms.

    putCallback(key: Key, value: Value, callback: CallCallback<void>, options?: CallOptions): void {
        const timeoutMs = this.timeoutOf(options);
        const call = this.singleCall(EventKind.put, key, value);
        this.submitCallback(call, timeoutMs, callback as CallCallback<unknown>);
    }

    getCallback(key: Key, callback: CallCallback<Uint8Array | null>, options?: CallOptions): void {
        const timeoutMs = this.timeoutOf(options);
        const call = this.singleCall(EventKind.get, key, null);
        this.submitCallback(call, timeoutMs, callback as CallCallback<unknown>);
    }

    deleteCallback(key: Key, callback: CallCallback<boolean>, options?: CallOptions): void {
        const timeoutMs = this.timeoutOf(options);
        const call = this.singleCall(EventKind.delete, key, null);
        this.submitCallback(call, timeoutMs, callback as CallCallback<unknown>);
    }

    putManyCallback(
        entries: readonly { readonly key: Key; readonly value: Value }[],
        callback: CallCallback<void>,
        options?: CallOptions,
    ): void {
        const timeoutMs = this.timeoutOf(options);
        const call = this.manyCall(EventKind.put, this.encodeEntries(entries));
        this.submitCallback(call, timeoutMs, callback as CallCallback<unknown>);
    }

    private timeoutOf(options: CallOptions | undefined): number {
        return positive(options?.timeoutMs ?? this.callTimeoutMs, "timeoutMs");
    }

    /** A call of one event, encoded into the call's own buffer (released if encoding throws). */
    private singleCall(kind: EventKind, key: Key, value: Value | null): PendingCall {
        const call = this.acquireCall();
        call.reset(kind, false, null);
        try {
            encode(call.ownEvents, 0, kind, key, value);
        } catch (error) {
            this.releaseCall(call);
            throw error;
        }
        return call;
    }

    private manyCall(kind: EventKind, events: Uint8Array): PendingCall {
        const call = this.acquireCall();
        call.reset(kind, true, events);
        return call;
    }

    private acquireCall(): PendingCall {
        return this.freeCalls.length > 0 ? this.freeCalls.pop()! : new PendingCall();
    }

    /** Keeps a call nothing refers to any more (not queued, not in a request) for reuse. */
    private releaseCall(call: PendingCall): void {
        assert(!call.spareHeld);
        call.resolve = null;
        call.reject = null;
        call.callback = null;
        call.value = null;
        call.values = null;
        if (this.freeCalls.length < freeCallsMax) this.freeCalls.push(call);
    }

    private encodeEntries(
        entries: readonly { readonly key: Key; readonly value: Value }[],
    ): Buffer {
        const events = this.batchEvents(entries.length);
        for (let index = 0; index < entries.length; index++) {
            const entry = entries[index]!;
            encode(events, index * kvEventSize, EventKind.put, entry.key, entry.value);
        }
        return events;
    }

    private encodeKeys(kind: EventKind, keys: readonly Key[]): Buffer {
        const events = this.batchEvents(keys.length);
        for (let index = 0; index < keys.length; index++) {
            encode(events, index * kvEventSize, kind, keys[index]!, null);
        }
        return events;
    }

    /**
     * Zeroed room for a batch of `eventCount` events: the spare buffer when it is free and the
     * batch fits one request, else a new one. Encoding may still throw (a key too long): the
     * spare is then simply free again, since only submit marks it held.
     */
    private batchEvents(eventCount: number): Buffer {
        const size = eventCount * kvEventSize;
        if (this.spareEventsHeld || eventCount > this.eventsPerRequestMax) {
            return eventBuffer(eventCount);
        }
        if (this.spareEvents === null) {
            // Its own memory (never a slice of Node's shared pool, which other calls use).
            this.spareEvents = Buffer.allocUnsafeSlow(this.eventsPerRequestMax * kvEventSize);
        }
        const events = this.spareEvents.subarray(0, size);
        events.fill(0);
        this.spareEventsLent = events;
        return events;
    }

    /** Hands the spare events buffer back once `call` no longer reads its events. */
    private releaseEvents(call: PendingCall): void {
        if (!call.spareHeld) return;
        call.spareHeld = false;
        assert(this.spareEventsHeld);
        this.spareEventsHeld = false;
    }

    /** Rejects every pending call with CLOSED, stops the timer and closes the transport. */
    close(): void {
        if (this.closed) return;
        this.closed = true;
        if (this.timerRef) this.ticker.unref();
        this.timerRef = false;
        this.ticker.detach(this.tickCallback);
        const error = closedError();
        this.failInflight(error);
        while (this.queue.count > 0) {
            const call = this.queue.peek()!;
            this.queue.pop();
            this.settleError(call, error);
        }
        this.transport.close();
        assert(this.pendingCount === 0);
    }

    private submitPromise(call: PendingCall, timeoutMs: number): Promise<unknown> {
        if (this.closed || call.eventCount === 0) {
            const empty = emptyResult(call.kind);
            this.releaseCall(call);
            if (this.closed) return Promise.reject(closedError());
            return Promise.resolve(empty);
        }
        // The executor runs synchronously: both functions are set before the call is queued.
        const promise = new Promise<unknown>((resolve, reject) => {
            call.resolve = resolve;
            call.reject = reject;
        });
        this.enqueue(call, timeoutMs);
        return promise;
    }

    private submitCallback(
        call: PendingCall,
        timeoutMs: number,
        callback: CallCallback<unknown>,
    ): void {
        if (this.closed || call.eventCount === 0) {
            const empty = emptyResult(call.kind);
            this.releaseCall(call);
            // Never from inside the call: a loop that calls again from its callback would recurse.
            if (this.closed) process.nextTick(callback, closedError(), undefined);
            else process.nextTick(callback, null, empty);
            return;
        }
        call.callback = callback;
        this.enqueue(call, timeoutMs);
    }

    private enqueue(call: PendingCall, timeoutMs: number): void {
        const deadlineMs = performance.now() + timeoutMs;
        call.deadlineMs = deadlineMs;
        if (call.events === this.spareEventsLent) {
            assert(!this.spareEventsHeld);
            this.spareEventsLent = null;
            this.spareEventsHeld = true;
            call.spareHeld = true;
        }
        this.deadlineMinMs = Math.min(this.deadlineMinMs, deadlineMs);
        this.queue.push(call);
        this.pendingCount++;
        if (!this.timerRef) {
            this.ticker.ref();
            this.timerRef = true;
        }
        this.pump();
    }

    /** Starts the next request when none is in flight and calls are waiting. */
    private pump(): void {
        if (this.inflight !== Inflight.none || this.closed) return;
        this.dropSettledHead();
        if (this.queue.count === 0) return;
        if (this.session === 0) this.sendRegister();
        else this.sendEvents();
    }

    private sendRegister(): void {
        assert(this.inflight === Inflight.none);
        assert(this.session === 0);
        this.registerAttempts++;
        this.writeRequestHeader(Operation.register, 0, 0, this.registerAttempts);
        this.inflight = Inflight.register;
        this.inflightEventCount = 0;
        this.sendInflight();
    }

    private sendEvents(): void {
        assert(this.inflight === Inflight.none);
        assert(this.session !== 0);
        const count = this.packEvents();
        if (count === 0) return;
        this.requestNumber++;
        assert(this.requestNumber <= 0xffff_ffff); // Request.request is a u32.
        this.writeRequestHeader(Operation.kv, count, this.session, this.requestNumber);
        this.inflight = Inflight.kv;
        this.inflightEventCount = count;
        this.sendInflight();
    }

    /** Copies queued events into the request body; records one segment per call touched. */
    private packEvents(): number {
        assert(this.segmentCount === 0);
        let count = 0;
        while (this.queue.count > 0 && count < this.eventsPerRequestMax) {
            const call = this.queue.peek()!;
            if (call.settled) {
                this.queue.pop();
                continue;
            }
            const take = Math.min(
                call.eventCount - call.eventsSent,
                this.eventsPerRequestMax - count,
            );
            assert(take > 0);
            copyBytes(
                this.requestBytes,
                headerSize + count * kvEventSize,
                call.events,
                call.eventsSent * kvEventSize,
                take * kvEventSize,
            );
            this.segmentCalls[this.segmentCount] = call;
            this.segmentStarts[this.segmentCount] = call.eventsSent;
            this.segmentCounts[this.segmentCount] = take;
            this.segmentCount++;
            call.eventsSent += take;
            count += take;
            if (call.eventsSent === call.eventCount) {
                this.queue.pop();
                this.releaseEvents(call); // Its events are in the request now.
            }
        }
        return count;
    }

    private writeRequestHeader(
        operation: number,
        eventCount: number,
        session: number,
        request: number,
    ): void {
        const bytes = this.requestBytes;
        const view = this.requestView;
        // Everything but the client id (bytes 128..144) is rewritten: zero the rest first, so no
        // field of the previous request survives.
        bytes.fill(0, 0, Request.client);
        bytes.fill(0, Request.client + 16, headerSize);
        view.setUint32(Frame.cluster, this.cluster, true);
        view.setUint32(Frame.size, headerSize + eventCount * kvEventSize, true);
        view.setUint32(Frame.view, this.view, true);
        view.setUint8(Frame.command, Command.request);
        writeU64(view, Request.session, session);
        view.setUint32(Request.request, request, true);
        view.setUint8(Request.operation, operation);
        const size = headerSize + eventCount * kvEventSize;
        copyBytes(scratchBytes, 0, bytes, 0, size);
        setChecksums(scratchBytes, scratchView, 0);
        copyBytes(bytes, 0, scratchBytes, 0, Frame.cluster); // checksum and checksum_body.
        assert(invalidHeader(view, 0, this.messageSizeMax) === null);
    }

    private sendInflight(): void {
        this.stats.requests++;
        this.retryAttempts = 0;
        this.retryAtMs = performance.now() + this.requestTimeoutMs;
        this.transport.send(this.view % this.transport.replicaCount, this.requestFrame());
    }

    /**
     * The request's bytes as framed (Frame.size of them): a view of requestBytes, made again only
     * when the size changes (a closed loop of same-sized calls makes it once).
     */
    private requestFrame(): Uint8Array {
        const size = this.requestView.getUint32(Frame.size, true);
        assert(size >= headerSize && size <= this.requestBytes.length);
        if (this.requestFrameView.length !== size) {
            this.requestFrameView = this.requestBytes.subarray(0, size);
        }
        return this.requestFrameView;
    }

    /** The primary may have changed: re-send the same bytes (same checksum) to every replica. */
    private retry(nowMs: number): void {
        assert(this.inflight !== Inflight.none);
        this.stats.retries++;
        const frame = this.requestFrame();
        for (let replica = 0; replica < this.transport.replicaCount; replica++) {
            this.transport.send(replica, frame);
        }
        this.retryAttempts = Math.min(this.retryAttempts + 1, 16);
        const ceilingMs = Math.min(
            this.requestTimeoutMsMax,
            this.requestTimeoutMs * 2 ** this.retryAttempts,
        );
        this.retryAtMs = nowMs + ceilingMs / 2 + Math.random() * (ceilingMs / 2);
    }

    private tick(): void {
        if (this.closed) return;
        const nowMs = performance.now();
        if (this.inflight !== Inflight.none && nowMs >= this.retryAtMs) this.retry(nowMs);
        if (nowMs >= this.deadlineMinMs) this.expireCalls(nowMs);
        if (this.pendingCount === 0 && this.timerRef) {
            this.ticker.unref();
            this.timerRef = false;
        }
    }

    /** Rejects every call past its deadline, in flight or queued; finds the next deadline. */
    private expireCalls(nowMs: number): void {
        let deadlineMinMs = Number.POSITIVE_INFINITY;
        for (let index = 0; index < this.segmentCount + this.queue.count; index++) {
            const call =
                index < this.segmentCount
                    ? this.segmentCalls[index]!
                    : this.queue.at(index - this.segmentCount);
            if (call.settled) continue;
            if (nowMs >= call.deadlineMs) this.settleError(call, this.timeout());
            else deadlineMinMs = Math.min(deadlineMinMs, call.deadlineMs);
        }
        this.deadlineMinMs = deadlineMinMs;
        // An unanswered register serves only the calls behind it; with none left, keep it
        // in flight anyway: a register is harmless to repeat and its reply installs a session.
        this.dropSettledHead();
    }

    private timeout(): ClientError {
        if (this.transport.connectedCount() === 0) {
            return new ClientError("UNREACHABLE", "no replica of the cluster is reachable");
        }
        return new ClientError("TIMEOUT", "no reply from the cluster before the call's deadline");
    }

    private dropSettledHead(): void {
        while (this.queue.count > 0 && this.queue.peek()!.settled) this.queue.pop();
    }

    // -----------------------------------------------------------------------------------------
    // Receiving.

    private onFrame(replica: number, bytes: Uint8Array): void {
        if (this.closed) return;
        const check = this.checkFrame(bytes);
        if (check === FrameCheck.wrongCluster && this.isClusterRejection()) {
            return this.onWrongCluster(replica);
        }
        if (check !== FrameCheck.valid) {
            this.stats.framesInvalid++;
            return;
        }
        const command = headerCommand(scratchView, 0);
        if (command === Command.reply) this.onReply();
        else if (command === Command.eviction) this.onEviction();
    }

    /** Copies the frame into the scratch frame and validates it there. */
    private checkFrame(bytes: Uint8Array): FrameCheck {
        if (bytes.length < headerSize || bytes.length > this.messageSizeMax) {
            return FrameCheck.invalid;
        }
        const view = scratchView;
        scratchBytes.set(bytes, 0);
        if (!validHeaderChecksum(scratchBytes, 0)) return FrameCheck.invalid;
        if (invalidHeader(view, 0, this.messageSizeMax) !== null) return FrameCheck.invalid;
        if (view.getUint32(Frame.size, true) !== bytes.length) return FrameCheck.invalid;
        if (!validBodyChecksum(scratchBytes, 0, bytes.length)) return FrameCheck.invalid;
        if (view.getUint32(Frame.cluster, true) !== this.cluster) return FrameCheck.wrongCluster;
        return FrameCheck.valid;
    }

    /** The validated frame (of another cluster) is a wrongCluster eviction naming this client. */
    private isClusterRejection(): boolean {
        return (
            headerCommand(scratchView, 0) === Command.eviction &&
            scratchView.getUint8(Eviction.reason) === EvictionReason.wrongCluster &&
            sameU128(scratchBytes, Eviction.client, this.requestBytes, Request.client)
        );
    }

    /**
     * A replica of another cluster refused our request: the addresses or the cluster id are
     * wrong, and no retry can fix that. Every pending call fails at once, naming the cluster
     * reached; later calls are sent again (and fail the same way while the mistake lasts).
     */
    private onWrongCluster(replica: number): void {
        const theirs = scratchView.getUint32(Frame.cluster, true);
        this.stats.clusterRejections++;
        const error = new ClientError(
            "WRONG_CLUSTER",
            `the replica at address ${replica} belongs to cluster ${theirs}, ` +
                `not to cluster ${this.cluster}`,
        );
        this.failInflight(error);
        while (this.queue.count > 0) {
            const call = this.queue.peek()!;
            this.queue.pop();
            this.settleError(call, error);
        }
        assert(this.pendingCount === 0);
    }

    private onReply(): void {
        const view = scratchView;
        if (this.inflight === Inflight.none) return;
        if (!sameU128(scratchBytes, Reply.client, this.requestBytes, Request.client)) return;
        if (!sameU128(scratchBytes, Reply.requestChecksum, this.requestBytes, Frame.checksum)) {
            return;
        }
        const bodySize = view.getUint32(Frame.size, true) - headerSize;
        if (bodySize !== this.inflightEventCount * kvResultSize) {
            this.stats.framesInvalid++;
            return;
        }
        this.view = Math.max(this.view, view.getUint32(Frame.view, true));
        if (this.inflight === Inflight.register) {
            const session = readU64(view, Reply.session);
            if (session === 0) {
                this.stats.framesInvalid++;
                return;
            }
            this.session = session;
            this.requestNumber = 0;
        } else {
            this.deliverResults();
        }
        this.inflight = Inflight.none;
        this.inflightEventCount = 0;
        this.pump();
    }

    /** Hands each segment of the reply body to its call; completes the calls now done. */
    private deliverResults(): void {
        let result = headerSize;
        for (let index = 0; index < this.segmentCount; index++) {
            const call = this.segmentCalls[index]!;
            const start = this.segmentStarts[index]!;
            const count = this.segmentCounts[index]!;
            this.segmentCalls[index] = null;
            if (!call.settled) {
                for (let event = start; event < start + count; event++) {
                    this.decodeResult(call, event, result + (event - start) * kvResultSize);
                }
                call.eventsDone += count;
                if (call.eventsDone === call.eventCount) this.settleResults(call);
            }
            result += count * kvResultSize;
        }
        this.segmentCount = 0;
    }

    private decodeResult(call: PendingCall, event: number, offset: number): void {
        const bytes = scratchBytes;
        let status = bytes[offset + ResultOffset.status]!;
        const valueSize = bytes[offset + ResultOffset.valueSize]!;
        if (status > ResultStatus.invalidEvent || valueSize > valueSizeMax) {
            status = ResultStatus.invalidEvent; // A replica bug, not ours to crash on.
        }
        const at = offset + ResultOffset.value;
        const isValue = call.kind === EventKind.get && status === ResultStatus.ok;
        call.setResult(event, status, isValue ? bytes.slice(at, at + valueSize) : null);
    }

    private onEviction(): void {
        const view = scratchView;
        if (!sameU128(scratchBytes, Eviction.client, this.requestBytes, Request.client)) return;
        // An eviction names the session it ends: one of an earlier session is stale.
        if (this.session === 0 || readU64(view, Eviction.session) !== this.session) return;
        this.view = Math.max(this.view, view.getUint32(Frame.view, true));
        this.stats.evictions++;
        this.session = 0;
        this.requestNumber = 0;
        this.failInflight(
            new ClientError(
                "SESSION_EVICTED",
                "the cluster evicted this client's session; the call's outcome is unknown",
            ),
        );
        this.pump();
    }

    /** Abandons the request in flight, rejecting every call it carries. */
    private failInflight(error: ClientError): void {
        for (let index = 0; index < this.segmentCount; index++) {
            const call = this.segmentCalls[index]!;
            this.segmentCalls[index] = null;
            this.settleError(call, error);
        }
        this.segmentCount = 0;
        this.inflight = Inflight.none;
        this.inflightEventCount = 0;
    }

    private settleError(call: PendingCall, error: ClientError): void {
        if (call.settled) return;
        this.releaseEvents(call); // A settled call's events are never packed.
        call.settled = true;
        this.pendingCount--;
        call.finish(error, undefined);
    }

    /**
     * Completes a call whose every event has its result. Nothing refers to it afterwards (its
     * events were all sent, so it left the queue, and deliverResults cleared its segments), so
     * it is kept for reuse once its caller has been told.
     */
    private settleResults(call: PendingCall): void {
        assert(!call.settled);
        this.releaseEvents(call);
        call.settled = true;
        this.pendingCount--;
        if (call.statuses === null) settleSingle(call);
        else settleMany(call, call.statuses);
        this.releaseCall(call);
    }
}

function settleSingle(call: PendingCall): void {
    const status = call.status;
    if (status === ResultStatus.invalidEvent) {
        call.finish(new ClientError("INVALID_EVENT", "the cluster refused the event"), undefined);
    } else if (call.kind === EventKind.put) {
        if (status === ResultStatus.ok) call.finish(null, undefined);
        else call.finish(new ClientError("TABLE_FULL", "the cluster's table is full"), undefined);
    } else if (call.kind === EventKind.get) {
        call.finish(null, call.value);
    } else {
        call.finish(null, status === ResultStatus.ok);
    }
}

function settleMany(call: PendingCall, statuses: Uint8Array): void {
    const failed = statusIndexes(statuses, ResultStatus.invalidEvent);
    if (failed.length > 0) {
        const error = new ClientError("INVALID_EVENT", "the cluster refused an event", failed);
        call.finish(error, undefined);
    } else if (call.kind === EventKind.put) {
        const full = statusIndexes(statuses, ResultStatus.tableFull);
        if (full.length === 0) return call.finish(null, undefined);
        const error = new ClientError("TABLE_FULL", tableFullMessage(call, full), full);
        call.finish(error, undefined);
    } else if (call.kind === EventKind.get) {
        call.finish(null, call.values);
    } else {
        call.finish(
            null,
            Array.from(statuses, (status) => status === ResultStatus.ok),
        );
    }
}

/** What a call of no events resolves with. */
function emptyResult(kind: EventKind): unknown {
    return kind === EventKind.put ? undefined : [];
}

function closedError(): ClientError {
    return new ClientError("CLOSED", "the client was closed");
}

function tableFullMessage(call: PendingCall, full: readonly number[]): string {
    return `the cluster's table is full: ${full.length} of ${call.eventCount} puts failed`;
}

function statusIndexes(statuses: Uint8Array, status: number): number[] {
    const indexes: number[] = [];
    for (let index = 0; index < statuses.length; index++) {
        if (statuses[index] === status) indexes.push(index);
    }
    return indexes;
}

function sameU128(a: Uint8Array, aOffset: number, b: Uint8Array, bOffset: number): boolean {
    for (let index = 0; index < 16; index++) {
        if (a[aOffset + index] !== b[bOffset + index]) return false;
    }
    return true;
}

/** A random, non-zero u128 client id at bytes[offset..offset + 16). */
function writeClientId(bytes: Uint8Array, view: DataView, offset: number): void {
    do {
        bytes.set(randomBytes(16), offset);
    } while (u128IsZero(view, offset));
}

function positive(value: number, name: string): number {
    if (!Number.isFinite(value) || value <= 0) {
        throw new RangeError(`${name} must be a positive number of milliseconds`);
    }
    return value;
}

/** UTF-8 bytes of a string key or value; byte arrays pass through. */
function toBytes(data: Key): Uint8Array {
    return typeof data === "string" ? textEncoder.encode(data) : data;
}

/** A key's bytes, validated (for callers that hold keys, e.g. the CLI). */
export function checkKey(key: Key): Uint8Array {
    const bytes = toBytes(key);
    checkKeySize(bytes.length);
    return bytes;
}

/** A value's bytes, validated. */
export function checkValue(value: Value): Uint8Array {
    const bytes = toBytes(value);
    checkValueSize(bytes.length);
    return bytes;
}

function checkKeySize(size: number): void {
    if (size >= 1 && size <= keySizeMax) return;
    throw new ClientError("KEY_SIZE", `a key is 1..${keySizeMax} bytes, this one is ${size}`);
}

function checkValueSize(size: number): void {
    if (size <= valueSizeMax) return;
    throw new ClientError("VALUE_SIZE", `a value is 0..${valueSizeMax} bytes, this one is ${size}`);
}

/** Zeroed room for `eventCount` events (small ones come from Node's buffer pool). */
function eventBuffer(eventCount: number): Buffer {
    return Buffer.allocUnsafe(eventCount * kvEventSize).fill(0);
}

function sizeOf(data: Key): number {
    return typeof data === "string" ? Buffer.byteLength(data, "utf8") : data.length;
}

/** Writes a key or value at target[offset..]; its size was checked (no intermediate copy). */
function writeData(target: Buffer, offset: number, data: Key): void {
    if (typeof data === "string") target.write(data, offset, "utf8");
    else target.set(data, offset);
}

/** Validates and encodes one event at target[offset..offset + 128), which is zero. */
function encode(
    target: Buffer,
    offset: number,
    kind: EventKind,
    key: Key,
    value: Value | null,
): void {
    const keySize = sizeOf(key);
    checkKeySize(keySize);
    const valueSize = value === null ? 0 : sizeOf(value);
    checkValueSize(valueSize);
    target[offset + EventOffset.kind] = kind;
    target[offset + EventOffset.keySize] = keySize;
    target[offset + EventOffset.valueSize] = valueSize;
    writeData(target, offset + EventOffset.key, key);
    if (value !== null) writeData(target, offset + EventOffset.value, value);
}
