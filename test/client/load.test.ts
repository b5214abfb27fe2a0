// Tests for the load generator (src/client/load.ts) and `vsr load`'s flag handling, against an
// in-memory fake client: a Map behind the LoadClient interface, with switches that lose or
// corrupt an acknowledged write, fail calls, or refuse every call (an unreachable cluster).
// The fake answers on a later microtask, like a real client. The run against real replicas
// (the in-process cluster and through WebSockets) lives in client.test.ts with its harness.

import { test } from "node:test";
import assert from "node:assert/strict";

import {
    type CallCallback,
    ClientError,
    type Key,
    type Value,
    eventsPerRequestMax,
} from "../../src/client/client.js";
import { production } from "../../src/constants.js";
import { type LoadClient, type LoadOptions, runLoad, valueOf } from "../../src/client/load.js";
import { runCommand } from "./command.js";

const encoder = new TextEncoder();
const bytesOf = (data: Key | Value): Uint8Array =>
    typeof data === "string" ? encoder.encode(data) : data.slice();
const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString("hex");

/** Shared by the fake clients of one run: the "cluster". */
class FakeStore {
    readonly table = new Map<string, Uint8Array>();
    readonly keySizes = new Set<number>();
    puts = 0;
    putCalls = 0;
    putManyCalls = 0;
    putManySizes = new Set<number>();
    /** Acknowledge the put with this index (0-based, across clients) but do not store it. */
    loseIndex = -1;
    /** Store a different value for the put with this index. */
    corruptIndex = -1;
    /** Reject every n-th put call with TIMEOUT (0: never). */
    failEvery = 0;
    /** Reject every call with UNREACHABLE. */
    unreachable = false;
    closed = 0;

    store(key: Key, value: Value): void {
        const index = this.puts++;
        const keyBytes = bytesOf(key);
        this.keySizes.add(keyBytes.length);
        if (index === this.loseIndex) return;
        const valueBytes = bytesOf(value);
        if (index === this.corruptIndex) valueBytes[0] = (valueBytes[0] ?? 0) ^ 0xff;
        this.table.set(hex(keyBytes), valueBytes);
    }
}

class FakeClient implements LoadClient {
    readonly eventsPerRequestMax = 7;
    constructor(private readonly store: FakeStore) {}

    private answer<T>(compute: () => T): Promise<T> {
        if (this.store.unreachable) {
            return Promise.reject(new ClientError("UNREACHABLE", "no replica is reachable"));
        }
        return Promise.resolve().then(compute);
    }

    private failing(): Promise<never> | null {
        const store = this.store;
        const calls = store.putCalls + store.putManyCalls;
        if (store.failEvery > 0 && calls % store.failEvery === 0) {
            return Promise.reject(new ClientError("TIMEOUT", "no reply"));
        }
        return null;
    }

    put(key: Key, value: Value): Promise<void> {
        this.store.putCalls++;
        const failure = this.failing();
        if (failure !== null) return failure;
        const keyBytes = bytesOf(key);
        const valueBytes = bytesOf(value); // Copied now, as the real client does.
        return this.answer(() => this.store.store(keyBytes, valueBytes));
    }

    putMany(entries: readonly { readonly key: Key; readonly value: Value }[]): Promise<void> {
        this.store.putManyCalls++;
        this.store.putManySizes.add(entries.length);
        const failure = this.failing();
        if (failure !== null) return failure;
        const copies = entries.map((entry) => [bytesOf(entry.key), bytesOf(entry.value)] as const);
        return this.answer(() => {
            for (const [key, value] of copies) this.store.store(key, value);
        });
    }

    // The load generator drives the callback forms; they settle as the Promise forms above do.
    putCallback(key: Key, value: Value, callback: CallCallback<void>): void {
        settle(this.put(key, value), callback);
    }

    putManyCallback(
        entries: readonly { readonly key: Key; readonly value: Value }[],
        callback: CallCallback<void>,
    ): void {
        settle(this.putMany(entries), callback);
    }

    get(key: Key): Promise<Uint8Array | null> {
        const keyBytes = bytesOf(key);
        return this.answer(() => this.store.table.get(hex(keyBytes)) ?? null);
    }

    getMany(keys: readonly Key[]): Promise<(Uint8Array | null)[]> {
        assert.ok(keys.length <= this.eventsPerRequestMax);
        const copies = keys.map(bytesOf);
        return this.answer(() => copies.map((key) => this.store.table.get(hex(key)) ?? null));
    }

    close(): void {
        this.store.closed++;
    }
}

function settle(promise: Promise<void>, callback: CallCallback<void>): void {
    promise.then(
        () => callback(null, undefined),
        (error: ClientError) => callback(error, undefined),
    );
}

function options(overrides: Partial<LoadOptions>): LoadOptions {
    return {
        clients: 3,
        batch: 1,
        durationS: null,
        requests: 30,
        valueBytes: 16,
        verify: false,
        keysPerClient: 1024,
        warmupTimeoutMs: 1000,
        progress: null,
        callObserver: null,
        ...overrides,
    };
}

test("runLoad issues exactly --requests calls and reports the contract's JSON keys", async () => {
    const store = new FakeStore();
    const loaded = await runLoad(options({ requests: 30 }), () => new FakeClient(store));
    const report = JSON.parse(JSON.stringify(loaded.report));
    assert.deepEqual(Object.keys(report), ["ops", "seconds", "ops_per_s", "latency_us", "errors"]);
    assert.deepEqual(Object.keys(report.latency_us), ["p50", "p99", "p999", "max"]);
    assert.equal(report.ops, 30);
    assert.equal(report.errors, 0);
    assert.equal(store.putCalls, 30);
    assert.equal(store.putManyCalls, 0);
    assert.ok(report.latency_us.p50 <= report.latency_us.p99);
    assert.ok(report.latency_us.p999 <= report.latency_us.max);
    assert.equal(store.closed, 3);
    assert.equal(loaded.unreachable, false);
});

test("a batch of B puts goes out as one putMany of B entries, ops counting events", async () => {
    const store = new FakeStore();
    const loaded = await runLoad(
        options({ clients: 2, batch: 5, requests: 12, verify: true }),
        () => new FakeClient(store),
    );
    assert.equal(store.putManyCalls, 12);
    assert.deepEqual([...store.putManySizes], [5]);
    assert.equal(loaded.report.ops, 60);
    assert.equal(store.table.size, 60); // Every key distinct under verify.
    assert.deepEqual([...store.keySizes], [14]); // ≤ 32 bytes.
    assert.deepEqual(
        [loaded.report.acked, loaded.report.verified, loaded.report.lost],
        [60, 60, 0],
    );
});

test("without verify each client cycles through keysPerClient keys", async () => {
    const store = new FakeStore();
    await runLoad(
        options({ clients: 2, requests: 40, keysPerClient: 4 }),
        () => new FakeClient(store),
    );
    assert.equal(store.table.size, 8);
});

test("verify counts an acknowledged but missing write as lost (lost = 1)", async () => {
    const store = new FakeStore();
    store.loseIndex = 17;
    const loaded = await runLoad(options({ verify: true }), () => new FakeClient(store));
    assert.deepEqual(
        [loaded.report.acked, loaded.report.verified, loaded.report.lost],
        [30, 29, 1],
    );
});

test("verify counts an acknowledged write with another value as lost (1-byte values)", async () => {
    const store = new FakeStore();
    store.corruptIndex = 3;
    const loaded = await runLoad(
        options({ verify: true, valueBytes: 1 }),
        () => new FakeClient(store),
    );
    assert.equal(loaded.report.lost, 1);
});

test("failed calls are counted by code, not fatal, and never acknowledged", async () => {
    const store = new FakeStore();
    store.failEvery = 4;
    const loaded = await runLoad(
        options({ clients: 1, requests: 20, verify: true }),
        () => new FakeClient(store),
    );
    const report = loaded.report;
    assert.equal(report.errors, 5);
    assert.deepEqual(loaded.errorCodes, { TIMEOUT: 5 });
    assert.equal(report.ops, 15);
    assert.deepEqual([report.acked, report.verified, report.lost], [15, 15, 0]);
});

test("an unreachable cluster ends the run before the clock starts", async () => {
    const store = new FakeStore();
    store.unreachable = true;
    const loaded = await runLoad(options({ clients: 2 }), () => new FakeClient(store));
    assert.equal(loaded.unreachable, true);
    assert.equal(loaded.report.ops, 0);
    assert.equal(loaded.report.errors, 2);
    assert.deepEqual(loaded.errorCodes, { UNREACHABLE: 2 });
    assert.equal(store.putCalls, 0);
    assert.equal(store.closed, 2);
});

test("a run bounded by duration stops issuing after it (durationS = 1)", async () => {
    const store = new FakeStore();
    const loaded = await runLoad(
        options({ clients: 2, durationS: 1, requests: null }),
        () => new FakeClient(store),
    );
    assert.ok(loaded.report.seconds >= 1 && loaded.report.seconds < 1.5);
    assert.ok(loaded.report.ops > 100);
    const opsPerS = loaded.report.ops / loaded.report.seconds; // seconds is rounded to 1 ms.
    assert.ok(Math.abs(loaded.report.ops_per_s - opsPerS) <= opsPerS * 0.002);
});

test("values are a pure function of the key", () => {
    const a = new Uint8Array(16);
    const b = new Uint8Array(16);
    valueOf(encoder.encode("key-1"), a);
    valueOf(encoder.encode("key-1"), b);
    assert.deepEqual(a, b);
    valueOf(encoder.encode("key-2"), b);
    assert.notDeepEqual(a, b);
});

// ---------------------------------------------------------------------------------------------
// `vsr load` flags, in a child process as src/cli.ts runs it.

test("vsr load rejects bad flags with exit 2 and one line naming the flag", async () => {
    const batchMax = eventsPerRequestMax(production.messageSizeMax);
    const batchRange = new RegExp(`--batch must be between 1 and ${batchMax}`);
    const cases: [string[], RegExp][] = [
        [["--requests=5"], /--addresses=<host:port,...> is required/],
        [["--addresses=nohost"], /--addresses: 'nohost' is not host:port/],
        [["--cluster=0", "--addresses=127.0.0.1:1", "--duration-s=1", "--requests=5"], /exclusive/],
        [["--cluster=0", "--addresses=127.0.0.1:1", "--batch=0"], batchRange],
        [["--cluster=0", "--addresses=127.0.0.1:1", `--batch=${batchMax + 1}`], batchRange],
        [
            ["--cluster=0", "--addresses=127.0.0.1:1", "--message-size-max=4096", "--batch=30"],
            /--batch must be between 1 and 29/,
        ],
        [
            ["--cluster=0", "--addresses=127.0.0.1:1", "--value-bytes=65"],
            /--value-bytes must be between 0/,
        ],
        [
            ["--cluster=0", "--addresses=127.0.0.1:1", "--clients=x"],
            /--clients must be an unsigned integer/,
        ],
        [["--cluster=0", "--addresses=127.0.0.1:1", "--bogus"], /bogus/],
    ];
    const results = await Promise.all(cases.map(([args]) => runCommand("commandLoad", args)));
    results.forEach((result, index) => {
        const [args, pattern] = cases[index]!;
        assert.equal(result.code, 2, `${args.join(" ")}: ${result.err}`);
        assert.equal(result.out, "");
        assert.match(result.err.split("\n")[0]!, /^vsr load: /);
        assert.match(result.err.split("\n")[0]!, pattern);
    });
});

test("vsr load against an unreachable cluster exits 1 quickly, still printing JSON", async () => {
    const started = performance.now();
    const result = await runCommand("commandLoad", [
        "--cluster=0",
        "--addresses=127.0.0.1:1",
        "--requests=10",
        "--timeout-ms=300",
        "--json",
    ]);
    assert.ok(performance.now() - started < 5000);
    assert.equal(result.code, 1);
    // The one failed call (the warm-up) is named by kind on stderr, also with --json.
    assert.equal(
        result.err,
        "vsr load: no session could register with 127.0.0.1:1\nvsr load: errors UNREACHABLE=1\n",
    );
    const report = JSON.parse(result.out);
    assert.deepEqual([report.ops, report.errors], [0, 1]);
});
