// The closed-loop load generator behind `vsr load`: N client sessions, each keeping exactly one
// call of B puts in flight (put when B = 1, putMany otherwise), the latency of every successful
// call recorded in an HDR histogram in microseconds. Errors (timeouts, evictions, a full table)
// are counted, never fatal. The run ends after a duration or after a total number of calls
// (requests); calls in flight then finish before the clock stops.
//
// Keys: 14 bytes = a random 6-byte run nonce, the client index (u32 LE) and a sequence number
// (u32 LE), so runs and clients never collide. Without --verify the sequence wraps at
// keysPerClient (bounded table use); with --verify every put gets a fresh key and the value is a
// pure function of the key, so at the end every acknowledged key is read back (getMany in
// batches) and compared: a key whose value is missing or different is lost. An acknowledged put
// must survive; lost > 0 is a correctness failure of the cluster.
// Timing: the clock starts after every session registered (a warm-up get per client), so the
// first call's latency does not include the register round trip.

import { randomBytes } from "node:crypto";
import { build as buildHistogram } from "hdr-histogram-js";
import { assert } from "../stdx/assert.js";
import { type Client, ClientError } from "./client.js";

export interface LoadOptions {
    readonly clients: number;
    /** Puts per call. */
    readonly batch: number;
    /** Stop issuing after this long (exclusive with requests). */
    readonly durationS: number | null;
    /** Stop after this many calls in total, across clients (exclusive with durationS). */
    readonly requests: number | null;
    readonly valueBytes: number;
    readonly verify: boolean;
    /** Without verify, each client cycles through this many keys. */
    readonly keysPerClient: number;
    /** Timeout of the warm-up call that registers each session. */
    readonly warmupTimeoutMs: number;
    /** Called about every second with a progress line (null: no progress). */
    readonly progress: ((line: string) => void) | null;
    /**
     * Told of every timed call as it ends, ok or failed (`vsr load --slow-ops` keeps the
     * slowest; see slow_ops.ts). Times are performance.now() readings. Null: nobody listens.
     */
    readonly callObserver: CallObserver | null;
}

export type CallObserver = (
    clientIndex: number,
    startMs: number,
    endMs: number,
    failed: boolean,
) => void;

export interface LatencyUs {
    p50: number;
    p99: number;
    p999: number;
    max: number;
}

export interface LoadReport {
    /** Events acknowledged (batch per successful call). */
    ops: number;
    seconds: number;
    ops_per_s: number;
    latency_us: LatencyUs;
    /** Failed calls. */
    errors: number;
    acked?: number;
    verified?: number;
    lost?: number;
}

export interface LoadResult {
    readonly report: LoadReport;
    /** Failed calls by ClientError code ("OTHER" for anything else). */
    readonly errorCodes: Readonly<Record<string, number>>;
    /** True when no session could register (every warm-up call failed). */
    readonly unreachable: boolean;
}

/** What the load generator needs of a client (tests pass an in-memory fake). */
export type LoadClient = Pick<
    Client,
    "putCallback" | "putManyCallback" | "get" | "getMany" | "close" | "eventsPerRequestMax"
>;

export type ClientFactory = (index: number) => LoadClient;

const keySize = 14;
const verifyRetries = 5;

/** Shared by every client loop of one run. */
class LoadRun {
    readonly options: LoadOptions;
    readonly nonce: Uint8Array = randomBytes(6);
    readonly histogram = buildHistogram({
        useWebAssembly: false,
        lowestDiscernibleValue: 1,
        highestTrackableValue: 3_600_000_000,
        numberOfSignificantValueDigits: 3,
    });
    readonly errorCodes: Record<string, number> = {};
    /** Per client: the first sequence number of every acknowledged call (verify only). */
    readonly acked: number[][] = [];
    callsIssued = 0;
    ops = 0;
    errors = 0;
    endMs = Number.POSITIVE_INFINITY;

    constructor(options: LoadOptions) {
        this.options = options;
    }

    /** Takes a ticket for one more call, or false when the run is over. */
    takeCall(): boolean {
        const requests = this.options.requests;
        if (requests !== null) {
            if (this.callsIssued >= requests) return false;
        } else if (performance.now() >= this.endMs) {
            return false;
        }
        this.callsIssued++;
        return true;
    }

    countError(error: unknown): void {
        this.errors++;
        const code = error instanceof ClientError ? error.code : "OTHER";
        this.errorCodes[code] = (this.errorCodes[code] ?? 0) + 1;
    }

    writeKey(target: Uint8Array, clientIndex: number, sequence: number): void {
        assert(target.length === keySize);
        target.set(this.nonce, 0);
        // Byte by byte (little-endian): a DataView per key was garbage, 1000 a call when batched.
        const low = sequence >>> 0;
        for (let byte = 0; byte < 4; byte++) {
            target[6 + byte] = (clientIndex >>> (8 * byte)) & 0xff;
            target[10 + byte] = (low >>> (8 * byte)) & 0xff;
        }
    }
}

/** The value stored under a key: valueBytes bytes, a pure function of the key. */
export function valueOf(key: Uint8Array, target: Uint8Array): void {
    let hash = 0x811c9dc5; // FNV-1a of the key seeds the stream.
    for (let index = 0; index < key.length; index++) {
        hash = Math.imul(hash ^ key[index]!, 0x01000193);
    }
    // xorshift32, four bytes a step (cheap: this runs per event in the timed loop); never stuck
    // at zero, since a zero seed is replaced.
    let state = hash === 0 ? 0x9e3779b9 : hash;
    for (let index = 0; index < target.length; index += 4) {
        state ^= state << 13;
        state ^= state >>> 17;
        state ^= state << 5;
        for (let byte = 0; byte < 4 && index + byte < target.length; byte++) {
            target[index + byte] = (state >>> (8 * byte)) & 0xff;
        }
    }
}

export async function runLoad(
    options: LoadOptions,
    createClient: ClientFactory,
): Promise<LoadResult> {
    assert(options.clients >= 1 && options.batch >= 1);
    assert((options.durationS === null) !== (options.requests === null));
    const run = new LoadRun(options);
    const clients: LoadClient[] = [];
    for (let index = 0; index < options.clients; index++) clients.push(createClient(index));
    try {
        const registered = await warmUp(run, clients);
        if (registered === 0) return result(run, 0, null, true);
        const startMs = performance.now();
        if (options.durationS !== null) run.endMs = startMs + options.durationS * 1000;
        const progress = startProgress(run, startMs);
        await Promise.all(clients.map((client, index) => clientLoop(run, client, index)));
        const seconds = (performance.now() - startMs) / 1000;
        if (progress !== null) clearInterval(progress);
        const verified = options.verify ? await verifyAll(run, clients) : null;
        return result(run, seconds, verified, false);
    } finally {
        for (const client of clients) client.close();
    }
}

/** One get per client, so that every session registers before the clock starts. */
async function warmUp(run: LoadRun, clients: readonly LoadClient[]): Promise<number> {
    const key = new Uint8Array(keySize);
    run.writeKey(key, 0xffff_ffff, 0xffff_ffff);
    const outcomes = await Promise.allSettled(
        clients.map((client) => client.get(key, { timeoutMs: run.options.warmupTimeoutMs })),
    );
    let registered = 0;
    for (const outcome of outcomes) {
        if (outcome.status === "fulfilled") registered++;
        else run.countError(outcome.reason);
    }
    return registered;
}

function startProgress(run: LoadRun, startMs: number): NodeJS.Timeout | null {
    const progress = run.options.progress;
    if (progress === null) return null;
    let opsBefore = 0;
    const timer = setInterval(() => {
        const seconds = (performance.now() - startMs) / 1000;
        progress(
            `${seconds.toFixed(0)} s  ops ${run.ops}  ops/s ${run.ops - opsBefore}  ` +
                `errors ${run.errors}`,
        );
        opsBefore = run.ops;
    }, 1000);
    timer.unref();
    return timer;
}

/** One session's closed loop: one call of `batch` puts in flight, until the run is over. */
function clientLoop(run: LoadRun, client: LoadClient, clientIndex: number): Promise<void> {
    return new Promise((resolve) => new LoadLoop(run, client, clientIndex, resolve).next());
}

/**
 * The loop of clientLoop, driven by the client's callback forms: each call's callback records
 * it and starts the next, so the timed loop allocates no Promise, closure or async frame per
 * call (the load generator's own garbage would otherwise be what its GC figures measure).
 */
class LoadLoop {
    private readonly run: LoadRun;
    private readonly client: LoadClient;
    private readonly clientIndex: number;
    private readonly done: () => void;
    /** Per client: the first sequence number of every acknowledged call (verify only). */
    private readonly acked: number[] = [];
    /** The client copies keys and values when a call is made, so these buffers are reused. */
    private readonly entries: { key: Uint8Array; value: Uint8Array }[] = [];
    private sequence = 0;
    /** The first sequence number and the start of the call in flight. */
    private first = 0;
    private startMs = 0;
    /** Bound once: every call's completion. */
    private readonly callCallback = (error: ClientError | null): void => this.onCall(error);
    /** Bound once: the next call after one that threw at the call (see next()). */
    private readonly nextCallback = (): void => this.next();

    constructor(run: LoadRun, client: LoadClient, clientIndex: number, done: () => void) {
        this.run = run;
        this.client = client;
        this.clientIndex = clientIndex;
        this.done = done;
        run.acked[clientIndex] = this.acked;
        for (let index = 0; index < run.options.batch; index++) {
            this.entries.push({
                key: new Uint8Array(keySize),
                value: new Uint8Array(run.options.valueBytes),
            });
        }
    }

    /** Starts the next call, or ends the loop when the run is over. */
    next(): void {
        const run = this.run;
        if (!run.takeCall()) return this.done();
        const { batch, verify, keysPerClient } = run.options;
        this.first = this.sequence;
        for (let index = 0; index < batch; index++) {
            const entry = this.entries[index]!;
            const sequence = verify ? this.sequence : this.sequence % keysPerClient;
            run.writeKey(entry.key, this.clientIndex, sequence);
            valueOf(entry.key, entry.value);
            this.sequence++;
        }
        this.startMs = performance.now();
        try {
            if (batch === 1) {
                const entry = this.entries[0]!;
                this.client.putCallback(entry.key, entry.value, this.callCallback);
            } else {
                this.client.putManyCallback(this.entries, this.callCallback);
            }
        } catch (error) {
            // Refused at the call (bad input): counted; the next call waits a turn, not a stack.
            this.countFailure(error);
            setImmediate(this.nextCallback);
        }
    }

    private onCall(error: ClientError | null): void {
        if (error !== null) {
            this.countFailure(error);
        } else {
            const run = this.run;
            const endMs = performance.now();
            run.histogram.recordValue(Math.max(1, Math.round((endMs - this.startMs) * 1000)));
            run.ops += run.options.batch;
            if (run.options.verify) this.acked.push(this.first);
            const observer = run.options.callObserver;
            if (observer !== null) observer(this.clientIndex, this.startMs, endMs, false);
        }
        this.next();
    }

    private countFailure(error: unknown): void {
        const run = this.run;
        run.countError(error);
        const observer = run.options.callObserver;
        if (observer !== null) observer(this.clientIndex, this.startMs, performance.now(), true);
    }
}

interface Verified {
    readonly acked: number;
    readonly verified: number;
}

/** Reads back every acknowledged key, each client its own, in getMany batches. */
async function verifyAll(run: LoadRun, clients: readonly LoadClient[]): Promise<Verified> {
    const counts = await Promise.all(
        clients.map((client, index) => verifyClient(run, client, index)),
    );
    let verified = 0;
    for (const count of counts) verified += count;
    let acked = 0;
    for (const firsts of run.acked) acked += (firsts ?? []).length * run.options.batch;
    return { acked, verified };
}

async function verifyClient(
    run: LoadRun,
    client: LoadClient,
    clientIndex: number,
): Promise<number> {
    const batch = run.options.batch;
    const sequences: number[] = [];
    for (const first of run.acked[clientIndex] ?? []) {
        for (let offset = 0; offset < batch; offset++) sequences.push(first + offset);
    }
    const chunkSize = Math.min(client.eventsPerRequestMax, 1024);
    let verified = 0;
    for (let from = 0; from < sequences.length; from += chunkSize) {
        const keys = sequences.slice(from, from + chunkSize).map((sequence) => {
            const key = new Uint8Array(keySize);
            run.writeKey(key, clientIndex, sequence);
            return key;
        });
        const values = await readBack(run, client, keys);
        if (values === null) continue; // Unreadable after retries: counted as lost.
        const expected = new Uint8Array(run.options.valueBytes);
        for (let index = 0; index < keys.length; index++) {
            valueOf(keys[index]!, expected);
            const value = values[index] ?? null;
            if (value !== null && bytesEqual(value, expected)) verified++;
        }
    }
    return verified;
}

async function readBack(
    run: LoadRun,
    client: LoadClient,
    keys: readonly Uint8Array[],
): Promise<(Uint8Array | null)[] | null> {
    for (let attempt = 0; attempt < verifyRetries; attempt++) {
        try {
            return await client.getMany(keys);
        } catch (error) {
            run.countError(error);
        }
    }
    return null;
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
    if (a.length !== b.length) return false;
    for (let index = 0; index < a.length; index++) if (a[index] !== b[index]) return false;
    return true;
}

function result(
    run: LoadRun,
    seconds: number,
    verified: Verified | null,
    unreachable: boolean,
): LoadResult {
    const histogram = run.histogram;
    const empty = histogram.totalCount === 0;
    const max = empty ? 0 : histogram.maxValue;
    // A percentile is reported as its bucket's highest equivalent value, which can exceed the
    // exact maximum by the histogram's resolution (0.1 %): clamp, so p999 ≤ max always.
    const percentile = (p: number): number =>
        empty ? 0 : Math.min(max, histogram.getValueAtPercentile(p));
    const report: LoadReport = {
        ops: run.ops,
        seconds: round(seconds, 3),
        ops_per_s: seconds > 0 ? Math.round(run.ops / seconds) : 0,
        latency_us: { p50: percentile(50), p99: percentile(99), p999: percentile(99.9), max },
        errors: run.errors,
    };
    if (verified !== null) {
        report.acked = verified.acked;
        report.verified = verified.verified;
        report.lost = verified.acked - verified.verified;
    }
    histogram.destroy();
    return { report, errorCodes: run.errorCodes, unreachable };
}

function round(value: number, digits: number): number {
    const scale = 10 ** digits;
    return Math.round(value * scale) / scale;
}
