// Tests for the client library (src/client/client.ts), its WebSocket transport and `vsr client`,
// against real replicas in process: three replicas built exactly as src/sim/cluster.ts builds
// them (one arena, a message pool, SimStorage, SimTime, the KV state machine) with the `test`
// config, joined by a tiny network that copies frames between the clients' transports and the
// replicas, and a 1 ms interval that drains the network and ticks storages, clocks and replicas
// (one replica tick per interval, so the replicas' 10 ms ticks run about ten times faster than
// real time: a view change takes a few hundred milliseconds).
// Faults are explicit switches: a transport can drop everything in both directions, and a
// replica can be isolated (every frame to or from it is dropped). A WebSocket gateway (one `ws`
// server per replica) bridges real sockets into the same network for the transport and CLI tests.
// The `test` config's messageSizeMax is 4 KiB: 29 events per request (header, batch entry, events).

import { test } from "node:test";
import assert from "node:assert/strict";
import type { AddressInfo } from "node:net";
import WebSocket, { WebSocketServer } from "ws";

import {
    Client,
    ClientError,
    type ClientTuning,
    eventsPerRequestMax,
} from "../../src/client/client.js";
import { type LoadOptions, runLoad } from "../../src/client/load.js";
import type { ClientTransport, FrameHandler } from "../../src/client/transport.js";
import { SharedTransport, WebSocketTransport } from "../../src/client/transport.js";
import { test as testConfig, headerSize, sectorSize } from "../../src/constants.js";
import { PRNG } from "../../src/stdx/prng.js";
import { SimStorage } from "../../src/sim/storage.js";
import { SimTime } from "../../src/sim/time.js";
import { KvStateMachine } from "../../src/state_machine/kv.js";
import { Arena } from "../../src/vsr/arena.js";
import { checksumAttach } from "../../src/vsr/checksum.js";
import {
    Command,
    Eviction,
    Frame,
    Operation,
    Reply,
    Request,
    headerCommand,
} from "../../src/vsr/header.js";
import type { MessageBus } from "../../src/vsr/interfaces.js";
import { layout } from "../../src/vsr/layout.js";
import { type Message, MessagePool } from "../../src/vsr/message_pool.js";
import { Replica } from "../../src/vsr/replica.js";
import { runCommand } from "./command.js";

const config = testConfig;
const messageSizeMax = config.messageSizeMax;

/** Whoever receives a client's frames: an in-process transport or a WebSocket gateway. */
interface Endpoint {
    deliver(replica: number, bytes: Uint8Array): void;
}

interface Packet {
    readonly source: number;
    /** A replica index, or -1 for a client (then `client` names it). */
    readonly target: number;
    readonly client: string;
    /** Replica to replica: a referenced pool message; otherwise copied bytes. */
    readonly message: Message | null;
    readonly bytes: Uint8Array | null;
}

function clientKey(bytes: Uint8Array, offset: number): string {
    return Buffer.from(bytes.subarray(offset, offset + 16)).toString("hex");
}

class HarnessBus implements MessageBus {
    constructor(
        private readonly harness: Harness,
        private readonly replica: number,
    ) {}

    sendToReplica(replica: number, message: Message): void {
        this.harness.sendFromReplica(this.replica, replica, message);
    }

    sendToClient(message: Message): void {
        this.harness.sendToClient(this.replica, message);
    }
}

class Harness {
    readonly replicaCount: number;
    readonly arena: Arena;
    readonly pool: MessagePool;
    readonly replicas: Replica[] = [];
    readonly storages: SimStorage[] = [];
    readonly times: SimTime[] = [];
    /** kv requests (not registers) delivered to each replica. */
    readonly kvRequests: number[] = [];
    readonly isolated = new Set<number>();
    private readonly endpoints = new Map<string, Endpoint>();
    private readonly transports = new Set<TestTransport>();
    private readonly cleanups: (() => void)[] = [];
    private queue: Packet[] = [];
    private readonly timer: NodeJS.Timeout;
    /** Rejects with the first error thrown inside the network or a replica (then stops). */
    readonly failed: Promise<never>;
    private fail: (error: unknown) => void = () => {};

    constructor(replicaCount = 3, seed = 1) {
        this.replicaCount = replicaCount;
        const messagesMax = replicaCount * Replica.messagesMax(config, replicaCount) + 1024;
        const perReplica =
            config.journalSlotCount * headerSize +
            config.journalWritesMax * 4096 +
            KvStateMachine.sizeBytes(config.kvEntriesMax) +
            3 * 4096;
        this.arena = new Arena(
            MessagePool.sizeBytes(messageSizeMax, messagesMax) +
                replicaCount * perReplica +
                4 * 1024 * 1024, // Slack for the replicas' own regions (checkpoint buffers).
        );
        checksumAttach(this.arena.memory);
        this.pool = new MessagePool(this.arena, messageSizeMax, messagesMax);
        const prng = new PRNG(seed);
        for (let index = 0; index < replicaCount; index++) this.createReplica(index, prng);
        this.arena.seal();
        this.failed = new Promise<never>((_, reject) => {
            this.fail = reject;
        });
        this.failed.catch(() => {}); // Observed through withHarness's race.
        this.timer = setInterval(() => this.stepOrFail(), 1);
    }

    private stepOrFail(): void {
        try {
            this.step();
        } catch (error) {
            clearInterval(this.timer);
            this.fail(error);
        }
    }

    private createReplica(index: number, prng: PRNG): void {
        const dataLayout = layout(config, KvStateMachine.sizeBytes(config.kvEntriesMax));
        const time = new SimTime(config.tickMs, 0);
        const storage = new SimStorage(
            {
                sizeBytes: dataLayout.totalSize,
                iopsMax: config.journalWritesMax + config.journalReadsMax,
                readLatencyMinTicks: 0,
                readLatencyMeanTicks: 0,
                writeLatencyMinTicks: 0,
                writeLatencyMeanTicks: 0,
            },
            this.arena,
            new PRNG(prng.u53()),
        );
        const kvSizeBytes = KvStateMachine.sizeBytes(config.kvEntriesMax);
        const kvOffset = this.arena.allocate(kvSizeBytes, sectorSize); // Checkpoints: aligned.
        const stateMachine = new KvStateMachine(this.arena.bytes, kvOffset, config.kvEntriesMax);
        const replica = new Replica({
            config,
            cluster: 0,
            replica: index,
            replicaCount: this.replicaCount,
            arena: this.arena,
            pool: this.pool,
            time,
            storage,
            layout: dataLayout,
            bus: new HarnessBus(this, index),
            stateMachine,
            prng: new PRNG(prng.u53()),
            hooks: null,
            faults: null,
        });
        this.times.push(time);
        this.storages.push(storage);
        this.replicas.push(replica);
        this.kvRequests.push(0);
    }

    createTransport(): TestTransport {
        const transport = new TestTransport(this);
        this.transports.add(transport);
        return transport;
    }

    /** Runs `cleanup` when the harness closes (also after a failure, so nothing hangs). */
    onClose(cleanup: () => void): void {
        this.cleanups.push(cleanup);
    }

    close(): void {
        clearInterval(this.timer);
        for (const cleanup of this.cleanups) cleanup();
        for (const transport of this.transports) transport.close();
        for (const packet of this.queue)
            if (packet.message !== null) this.pool.unref(packet.message);
        this.queue = [];
    }

    /** A client frame for a replica; the endpoint is where replies to its client id go. */
    sendFromClient(endpoint: Endpoint, replica: number, bytes: Uint8Array): void {
        if (bytes.length < headerSize || bytes.length > messageSizeMax) return;
        this.endpoints.set(clientKey(bytes, Request.client), endpoint);
        if (this.isolated.has(replica)) return;
        this.queue.push({
            source: -1,
            target: replica,
            client: "",
            message: null,
            bytes: bytes.slice(),
        });
    }

    sendFromReplica(source: number, target: number, message: Message): void {
        assert.notEqual(source, target);
        if (this.isolated.has(source) || this.isolated.has(target)) return;
        this.pool.ref(message);
        this.queue.push({ source, target, client: "", message, bytes: null });
    }

    sendToClient(source: number, message: Message): void {
        if (this.isolated.has(source)) return;
        const view = this.arena.view;
        const base = message.offset;
        const command = headerCommand(view, base);
        assert.ok(command === Command.reply || command === Command.eviction);
        const client = clientKey(
            this.arena.bytes,
            base + (command === Command.reply ? Reply.client : Eviction.client),
        );
        const size = view.getUint32(base + Frame.size, true);
        const bytes = this.arena.bytes.slice(base, base + size);
        this.queue.push({ source, target: -1, client, message: null, bytes });
    }

    /** Delivers every queued packet, including those sent while delivering (bounded). */
    private drain(): void {
        for (let delivered = 0; delivered < 100_000 && this.queue.length > 0; ) {
            const packets = this.queue;
            this.queue = [];
            for (const packet of packets) {
                this.deliver(packet);
                delivered++;
            }
        }
    }

    private deliver(packet: Packet): void {
        if (packet.target < 0) {
            this.endpoints.get(packet.client)?.deliver(packet.source, packet.bytes!);
            return;
        }
        const replica = this.replicas[packet.target]!;
        let message = packet.message;
        if (message === null) {
            const bytes = packet.bytes!;
            message = this.pool.acquire();
            this.arena.bytes.set(bytes, message.offset);
            this.countRequest(packet.target, bytes);
        }
        if (!this.isolated.has(packet.target) && !this.isolated.has(packet.source)) {
            replica.onMessage(message);
            replica.invariants();
        }
        this.pool.unref(message);
    }

    private countRequest(replica: number, bytes: Uint8Array): void {
        const isRequest = bytes[Frame.command] === Command.request;
        if (isRequest && bytes[Request.operation] === Operation.kv) this.kvRequests[replica]!++;
    }

    private step(): void {
        for (let round = 0; round < 4; round++) {
            this.drain();
            for (const storage of this.storages) storage.tick();
        }
        this.drain();
        for (let index = 0; index < this.replicaCount; index++) {
            this.times[index]!.tick();
            this.replicas[index]!.tick();
            this.replicas[index]!.invariants();
        }
        this.drain();
    }
}

/** The in-process transport: frames go through the harness network. */
class TestTransport implements ClientTransport, Endpoint {
    readonly replicaCount: number;
    /** Drops every frame in both directions (the client cannot reach anything). */
    dropAll = false;
    /** What connectedCount() reports while not closed. */
    connected = true;
    private handler: FrameHandler | null = null;
    private closed = false;

    constructor(private readonly harness: Harness) {
        this.replicaCount = harness.replicaCount;
    }

    send(replica: number, bytes: Uint8Array): void {
        if (this.closed || this.dropAll) return;
        this.harness.sendFromClient(this, replica, bytes);
    }

    onMessage(handler: FrameHandler): void {
        this.handler = handler;
    }

    connectedCount(): number {
        return this.closed || !this.connected ? 0 : this.replicaCount;
    }

    close(): void {
        this.closed = true;
    }

    deliver(replica: number, bytes: Uint8Array): void {
        if (this.closed || this.dropAll || this.handler === null) return;
        this.handler(replica, bytes);
    }
}

function testClient(harness: Harness, options: ClientTuning & { readonly cluster?: number } = {}) {
    const transport = harness.createTransport();
    const client = new Client({ transport, messageSizeMax, ...options });
    return { client, transport };
}

async function withHarness(body: (harness: Harness) => Promise<void>): Promise<void> {
    const harness = new Harness();
    try {
        await Promise.race([body(harness), harness.failed]);
    } finally {
        harness.close();
    }
}

const text = (bytes: Uint8Array | null): string | null =>
    bytes === null ? null : Buffer.from(bytes).toString("utf8");

async function rejectsWithCode(promise: Promise<unknown>, code: string): Promise<ClientError> {
    try {
        await promise;
    } catch (error) {
        assert.ok(error instanceof ClientError, `expected a ClientError, got ${String(error)}`);
        assert.equal(error.code, code, error.message);
        return error;
    }
    assert.fail(`expected a rejection with ${code}`);
}

function sleep(ms: number): Promise<void> {
    return new Promise((resolve) => setTimeout(resolve, ms));
}

// ---------------------------------------------------------------------------------------------
// The library against the in-process cluster.

test("put, get and delete round-trip through a 3-replica cluster", () =>
    withHarness(async (harness) => {
        const { client } = testClient(harness);
        assert.equal(await client.get("alpha"), null);
        await client.put("alpha", "one");
        assert.equal(text(await client.get("alpha")), "one");
        await client.put("alpha", "two");
        assert.equal(text(await client.get(new TextEncoder().encode("alpha"))), "two");
        assert.equal(await client.delete("alpha"), true);
        assert.equal(await client.delete("alpha"), false);
        assert.equal(await client.get("alpha"), null);
        // An empty value is a value: get returns zero bytes, not null.
        await client.put(new Uint8Array([0, 1, 2]), new Uint8Array(0));
        assert.deepEqual(await client.get(new Uint8Array([0, 1, 2])), new Uint8Array(0));
        // Batch variants answer in event order.
        await client.putMany([
            { key: "k1", value: "v1" },
            { key: "k2", value: "v2" },
        ]);
        const values = await client.getMany(["k2", "missing", "k1"]);
        assert.deepEqual(values.map(text), ["v2", null, "v1"]);
        assert.deepEqual(await client.deleteMany(["k1", "missing"]), [true, false]);
        assert.ok(client.session > 0);
        assert.equal(client.stats.retries, 0);
        client.close();
    }));

test("concurrent calls batch into few requests (100 puts, 29 events per request)", () =>
    withHarness(async (harness) => {
        const { client } = testClient(harness);
        assert.equal(client.eventsPerRequestMax, 29);
        assert.equal(eventsPerRequestMax(1024 * 1024), 8189);
        const puts: Promise<void>[] = [];
        for (let index = 0; index < 100; index++)
            puts.push(client.put(`key-${index}`, `v${index}`));
        await Promise.all(puts);
        // One register, then ceil(100 / 29) = 4 requests of 29, 29, 29 and 13 events.
        assert.equal(client.stats.requests, 5);
        assert.equal(harness.kvRequests[0], 4);
        // One call larger than a request spans several, and keeps its event order.
        const keys = Array.from({ length: 100 }, (_, index) => `key-${99 - index}`);
        const values = await client.getMany(keys);
        assert.deepEqual(
            values.map(text),
            keys.map((key) => `v${key.slice(4)}`),
        );
        assert.equal(client.stats.requests, 9);
        client.close();
    }));

test("batch calls sharing the client's spare events buffer keep their own events", () =>
    withHarness(async (harness) => {
        const { client } = testClient(harness);
        const batch = (tag: string, count: number) =>
            Array.from({ length: count }, (_, index) => ({
                key: `${tag}-${index}`,
                value: `${tag}${index}`,
            }));
        // Back to back (the spare is reused), overlapping (the first holds it while queued,
        // the others allocate), and one split across two requests behind a smaller one.
        await client.putMany(batch("a", 20));
        await client.putMany(batch("b", 20));
        await Promise.all([
            client.putMany(batch("c", 20)),
            client.putMany(batch("d", 20)),
            client.putMany(batch("e", 29)),
        ]);
        for (const tag of ["a", "b", "c", "d", "e"]) {
            const entries = batch(tag, tag === "e" ? 29 : 20);
            const values = await client.getMany(entries.map((entry) => entry.key));
            assert.deepEqual(
                values.map(text),
                entries.map((entry) => entry.value),
                tag,
            );
        }
        // A call whose key is refused before it is submitted leaves the spare free.
        assert.throws(() => client.putMany([{ key: "x".repeat(1000), value: "v" }]));
        await client.putMany(batch("f", 3));
        assert.deepEqual((await client.getMany(["f-0", "f-2"])).map(text), ["f0", "f2"]);
        client.close();
    }));

test("keys and values outside their sizes throw KEY_SIZE / VALUE_SIZE and send nothing", () =>
    withHarness(async (harness) => {
        const { client } = testClient(harness);
        const code = (call: () => unknown, expected: string): void => {
            assert.throws(call, (error: unknown) => {
                assert.ok(error instanceof ClientError);
                assert.equal(error.code, expected);
                return true;
            });
        };
        code(() => client.put("", "v"), "KEY_SIZE");
        code(() => client.get("k".repeat(33)), "KEY_SIZE");
        code(() => client.delete(new Uint8Array(33)), "KEY_SIZE");
        code(() => client.get("é".repeat(17)), "KEY_SIZE"); // 34 bytes of UTF-8.
        code(() => client.put("k", "v".repeat(65)), "VALUE_SIZE");
        code(
            () =>
                client.putMany([
                    { key: "ok", value: "" },
                    { key: "", value: "" },
                ]),
            "KEY_SIZE",
        );
        code(() => client.getMany(["ok", "x".repeat(40)]), "KEY_SIZE");
        // Boundaries are accepted.
        await client.put("k".repeat(32), "v".repeat(64));
        assert.equal(text(await client.get("k".repeat(32))), "v".repeat(64));
        assert.equal(harness.kvRequests[0], 2); // Only the two valid calls went out.
        client.close();
    }));

test("a call times out: TIMEOUT when every frame is dropped, UNREACHABLE when unconnected", () =>
    withHarness(async (harness) => {
        const { client, transport } = testClient(harness, { requestTimeoutMs: 50 });
        transport.dropAll = true;
        const started = performance.now();
        await rejectsWithCode(client.put("k", "v", { timeoutMs: 300 }), "TIMEOUT");
        const elapsedMs = performance.now() - started;
        assert.ok(elapsedMs >= 290 && elapsedMs < 1000, `timed out after ${elapsedMs} ms`);
        assert.ok(client.stats.retries >= 1);
        transport.connected = false;
        const error = await rejectsWithCode(client.get("k", { timeoutMs: 100 }), "UNREACHABLE");
        assert.match(error.message, /no replica/);
        // The cluster comes back: the register still in flight is answered, and calls work.
        transport.dropAll = false;
        transport.connected = true;
        await client.put("k", "v");
        assert.equal(text(await client.get("k")), "v");
        client.close();
    }));

test("calls succeed after the primary is cut off and replicas 1 and 2 elect a new one", () =>
    withHarness(async (harness) => {
        const { client } = testClient(harness, { callTimeoutMs: 15_000 });
        await client.put("before", "1");
        assert.equal(client.view, 0);
        harness.isolated.add(0);
        await client.put("after", "2");
        assert.ok(client.view >= 1, `client view ${client.view}`);
        assert.ok(client.stats.retries >= 1);
        assert.ok(harness.replicas[1]!.view >= 1 && harness.replicas[2]!.view >= 1);
        assert.equal(text(await client.get("before")), "1");
        assert.equal(text(await client.get("after")), "2");
        client.close();
    }));

test("an evicted session fails the call in flight with SESSION_EVICTED, then re-registers", () =>
    withHarness(async (harness) => {
        const { client, transport } = testClient(harness, {
            requestTimeoutMs: 50,
            requestTimeoutMsMax: 100,
        });
        await client.put("a1", "x");
        const session = client.session;
        transport.dropAll = true;
        const inflight = client.put("a2", "x", { timeoutMs: 20_000 });
        // clientsMax (7) new sessions push ours, the oldest, out of the client table.
        const others = Array.from({ length: config.clientsMax }, () => testClient(harness).client);
        for (const other of others) await other.put("other", "y");
        transport.dropAll = false;
        const error = await rejectsWithCode(inflight, "SESSION_EVICTED");
        assert.match(error.message, /evicted/);
        assert.equal(client.stats.evictions, 1);
        await client.put("a3", "z");
        assert.ok(client.session > session);
        assert.equal(text(await client.get("a3")), "z");
        for (const other of others) other.close();
        client.close();
    }));

test("close() rejects pending calls with CLOSED, and later calls too", () =>
    withHarness(async (harness) => {
        const { client, transport } = testClient(harness);
        transport.dropAll = true;
        const pending = [client.put("k", "v"), client.get("k")];
        await sleep(20);
        client.close();
        for (const call of pending) await rejectsWithCode(call, "CLOSED");
        await rejectsWithCode(client.get("k"), "CLOSED");
    }));

test("a corrupted reply is ignored and the retried request gets the cached reply", () =>
    withHarness(async (harness) => {
        // A transport that flips one body bit of the first reply it sees.
        const transport = harness.createTransport();
        let corrupted = 0;
        const deliver = transport.deliver.bind(transport);
        transport.deliver = (replica, bytes) => {
            if (corrupted === 0 && bytes[Frame.command] === Command.reply && bytes.length > 256) {
                corrupted++;
                const copy = bytes.slice();
                copy[copy.length - 1]! ^= 1;
                return deliver(replica, copy);
            }
            return deliver(replica, bytes);
        };
        const client = new Client({ transport, messageSizeMax, requestTimeoutMs: 50 });
        await client.put("k", "v");
        assert.equal(corrupted, 1);
        assert.equal(client.stats.framesInvalid, 1);
        assert.ok(client.stats.retries >= 1);
        assert.equal(text(await client.get("k")), "v");
        client.close();
    }));

/** runLoad's options for a test: a bounded run, no progress, no observer, unless overridden. */
function loadOptions(
    overrides: Partial<LoadOptions> & Pick<LoadOptions, "clients" | "batch">,
): LoadOptions {
    return {
        durationS: null,
        requests: null,
        valueBytes: 16,
        verify: false,
        keysPerClient: 1024,
        warmupTimeoutMs: 5000,
        progress: null,
        callObserver: null,
        ...overrides,
    };
}

test("the load generator with verify reports lost = 0 in the contract's JSON shape", () =>
    withHarness(async (harness) => {
        const loaded = await runLoad(
            loadOptions({ clients: 3, batch: 5, requests: 30, verify: true }),
            () => testClient(harness).client,
        );
        const report = JSON.parse(JSON.stringify(loaded.report));
        assert.deepEqual(Object.keys(report), [
            "ops",
            "seconds",
            "ops_per_s",
            "latency_us",
            "errors",
            "acked",
            "verified",
            "lost",
        ]);
        assert.deepEqual(Object.keys(report.latency_us), ["p50", "p99", "p999", "max"]);
        for (const value of Object.values(report.latency_us)) assert.equal(typeof value, "number");
        assert.equal(report.ops, 150);
        assert.equal(report.errors, 0);
        assert.equal(report.acked, 150);
        assert.equal(report.verified, 150);
        assert.equal(report.lost, 0);
        assert.ok(report.seconds > 0 && report.ops_per_s > 0);
        assert.ok(report.latency_us.p50 > 0 && report.latency_us.p50 <= report.latency_us.max);
        assert.equal(loaded.unreachable, false);
    }));

test("the load generator runs for a duration with one put per call", () =>
    withHarness(async (harness) => {
        const loaded = await runLoad(
            loadOptions({ clients: 2, batch: 1, durationS: 1, valueBytes: 0, keysPerClient: 50 }),
            () => testClient(harness).client,
        );
        const report = loaded.report;
        assert.ok(report.ops > 0);
        assert.ok(report.seconds >= 1 && report.seconds < 3, `seconds ${report.seconds}`);
        assert.equal(report.errors, 0);
        assert.equal(report.lost, undefined);
        assert.ok(report.ops_per_s > 0);
    }));

test("the load generator counts errors without stopping: a full table under verify", () =>
    withHarness(async (harness) => {
        // Fresh keys for every put: the test table (countMax 224 of 256 slots) fills up.
        const loaded = await runLoad(
            loadOptions({ clients: 2, batch: 4, requests: 80, valueBytes: 8, verify: true }),
            () => testClient(harness).client,
        );
        const report = loaded.report;
        assert.ok(report.errors > 0);
        assert.equal(loaded.errorCodes["TABLE_FULL"], report.errors);
        assert.equal(report.acked, report.ops);
        assert.ok(report.ops <= 224 && report.ops + report.errors * 4 === 320);
        assert.equal(report.lost, 0);
    }));

// ---------------------------------------------------------------------------------------------
// Real sockets: a WebSocket gateway per replica, the WebSocketTransport and `vsr client`.

/** One `ws` server per replica, bridging sockets into the harness network. */
class Gateway {
    readonly servers: WebSocketServer[] = [];
    /** Per client id: its socket to each replica. */
    private readonly sockets = new Map<string, (WebSocket | null)[]>();

    constructor(private readonly harness: Harness) {
        harness.onClose(() => void this.close());
    }

    async listen(): Promise<string> {
        for (let replica = 0; replica < this.harness.replicaCount; replica++) {
            const server = new WebSocketServer({
                host: "127.0.0.1",
                port: 0,
                perMessageDeflate: false,
            });
            await new Promise<void>((resolve) => server.once("listening", () => resolve()));
            server.on("connection", (socket) => this.onConnection(replica, socket));
            this.servers.push(server);
        }
        return this.servers
            .map((server) => `127.0.0.1:${(server.address() as AddressInfo).port}`)
            .join(",");
    }

    private onConnection(replica: number, socket: WebSocket): void {
        socket.on("message", (data: Buffer, isBinary: boolean) => {
            if (!isBinary || data.length < headerSize) return;
            const key = clientKey(data, Request.client);
            let sockets = this.sockets.get(key);
            if (sockets === undefined) {
                sockets = new Array(this.harness.replicaCount).fill(null);
                this.sockets.set(key, sockets);
            }
            sockets[replica] = socket;
            const endpoint: Endpoint = {
                deliver: (source, bytes) => sockets[source]?.send(bytes, { binary: true }),
            };
            this.harness.sendFromClient(endpoint, replica, data);
        });
    }

    async close(): Promise<void> {
        const servers = this.servers.splice(0);
        for (const server of servers) {
            for (const socket of server.clients) socket.terminate();
            await new Promise<void>((resolve) => server.close(() => resolve()));
        }
    }
}

test("sessions of a SharedTransport share one path and each gets only its own replies", () =>
    withHarness(async (harness) => {
        const inner = harness.createTransport();
        const shared = new SharedTransport(inner);
        const loaded = await runLoad(
            loadOptions({ clients: 4, batch: 3, requests: 40, verify: true }),
            () => new Client({ transport: shared.session(), messageSizeMax }),
        );
        assert.equal(loaded.report.errors, 0);
        assert.equal(loaded.report.lost, 0);
        assert.equal(loaded.report.verified, 120);
        assert.equal(shared.framesUnrouted, 0);
        assert.equal(shared.sessionCount, 0, "runLoad closed its clients, detaching them");
        assert.equal(inner.connectedCount(), 3, "a session's close leaves the path open");

        // Frames that name no open session are dropped and counted, never handed to a client.
        const client = new Client({ transport: shared.session(), messageSizeMax });
        await client.put("shared", "yes");
        const stranger = new Uint8Array(headerSize);
        stranger[Frame.command] = Command.reply;
        stranger.fill(0xab, Reply.client, Reply.client + 16);
        inner.deliver(0, stranger);
        inner.deliver(0, stranger.subarray(0, headerSize - 1)); // Too short to name anyone.
        const ping = new Uint8Array(headerSize);
        ping[Frame.command] = Command.ping;
        inner.deliver(0, ping);
        assert.equal(shared.framesUnrouted, 3);
        assert.equal(client.stats.framesInvalid, 0);
        assert.equal(text(await client.get("shared")), "yes");
        shared.close();
        assert.equal(shared.sessionCount, 0);
        assert.equal(inner.connectedCount(), 0);
        // Its connections gone, the client reaches no replica (it is not closed itself).
        await rejectsWithCode(client.get("shared", { timeoutMs: 200 }), "UNREACHABLE");
        client.close();
    }));

test("the WebSocket transport reaches the cluster through real sockets", () =>
    withHarness(async (harness) => {
        const gateway = new Gateway(harness);
        const addresses = (await gateway.listen()).split(",");
        const transport = new WebSocketTransport({ addresses, messageSizeMax });
        const client = new Client({ transport, messageSizeMax });
        try {
            await client.put("socket", "yes");
            assert.equal(text(await client.get("socket")), "yes");
            assert.equal(transport.connectedCount(), 3);
            // Every connection dropped by the server: the transport re-dials, the call retries.
            for (const server of gateway.servers) {
                for (const socket of server.clients) socket.terminate();
            }
            await client.put("socket", "again", { timeoutMs: 10_000 });
            assert.equal(text(await client.get("socket")), "again");
        } finally {
            client.close();
            await gateway.close();
        }
        assert.equal(transport.connectedCount(), 0);
    }));

test("vsr client runs put, get and delete against the cluster", () =>
    withHarness(async (harness) => {
        const gateway = new Gateway(harness);
        const flag = `--addresses=${await gateway.listen()}`;
        try {
            const run = (...words: string[]) =>
                runCommand("commandClient", [
                    flag,
                    "--cluster=0",
                    "--message-size-max=4096",
                    ...words,
                ]);
            assert.deepEqual(await run("put", "city", "Zürich"), { code: 0, out: "ok\n", err: "" });
            assert.deepEqual(await run("get", "city"), { code: 0, out: "Zürich\n", err: "" });
            assert.deepEqual(await run("delete", "city"), { code: 0, out: "deleted\n", err: "" });
            assert.deepEqual(await run("get", "city"), { code: 0, out: "(not found)\n", err: "" });
        } finally {
            await gateway.close();
        }
    }));

test("vsr client without a command reads commands from stdin (the REPL)", () =>
    withHarness(async (harness) => {
        const gateway = new Gateway(harness);
        const flag = `--addresses=${await gateway.listen()}`;
        const input = [
            "put greeting hello world",
            "get greeting",
            "get nothing",
            "delete greeting",
            "get greeting",
            "frobnicate x",
            `get ${"k".repeat(33)}`,
            "help",
            "quit",
            "get never-reached",
        ];
        try {
            const { code, out, err } = await runCommand(
                "commandClient",
                [flag, "--cluster=0", "--message-size-max=4096"],
                `${input.join("\n")}\n`,
            );
            assert.equal(code, 0, err);
            const lines = out.trim().split("\n");
            assert.deepEqual(lines.slice(0, 5), [
                "ok",
                "hello world",
                "(not found)",
                "deleted",
                "(not found)",
            ]);
            assert.equal(lines[5], "commands:");
            assert.equal(lines.length, 11); // help is six lines; nothing after quit.
            assert.deepEqual(err.trim().split("\n"), [
                "expected put <key> <value>, get <key> or delete <key> (try help)",
                "KEY_SIZE: a key is 1..32 bytes, this one is 33",
            ]);
        } finally {
            await gateway.close();
        }
    }));

test("vsr client fails in one line: bad sizes or flags exit 2, no cluster exits 1", async () => {
    const run = (...args: string[]) => runCommand("commandClient", ["--cluster=0", ...args]);
    const tooLong = await run("--addresses=127.0.0.1:1", "get", "k".repeat(33));
    assert.deepEqual(tooLong, {
        code: 2,
        out: "",
        err: "vsr client: a key is 1..32 bytes, this one is 33\n",
    });
    const tooBig = await run("--addresses=127.0.0.1:1", "put", "k", "v".repeat(65));
    assert.equal(tooBig.code, 2);
    assert.match(tooBig.err, /^vsr client: a value is 0\.\.64 bytes, this one is 65\n$/);
    const badFlag = await run("--addresses=127.0.0.1:1", "--nope", "get", "k");
    assert.equal(badFlag.code, 2);
    assert.match(badFlag.err, /^vsr client: .*--nope/);
    const noAddresses = await run("get", "k");
    assert.equal(noAddresses.code, 2);
    assert.equal(
        noAddresses.err,
        "vsr client: --addresses=<host:port,...> is required (see vsr client --help)\n",
    );
    const badCommand = await run("--addresses=127.0.0.1:1", "frobnicate", "k");
    assert.equal(badCommand.code, 2);
    const unreachable = await run(
        "--addresses=127.0.0.1:1,127.0.0.1:2",
        "--timeout-ms=300",
        "get",
        "k",
    );
    assert.deepEqual(unreachable, {
        code: 1,
        out: "",
        err: "vsr client: no replica reachable at 127.0.0.1:1,127.0.0.1:2\n",
    });
});

test("vsr load --json --verify prints one JSON object and exits 0", () =>
    withHarness(async (harness) => {
        const gateway = new Gateway(harness);
        const flag = `--addresses=${await gateway.listen()}`;
        try {
            const args = [
                flag,
                "--cluster=0",
                "--message-size-max=4096", // The test config's: read-backs of 29 keys at most.
                "--clients=2",
                "--batch=3",
                "--requests=20",
                "--json",
                "--verify",
            ];
            const { code, out, err } = await runCommand("commandLoad", args);
            assert.equal(code, 0, err);
            assert.equal(err, "");
            const lines = out.trim().split("\n");
            assert.equal(lines.length, 1);
            const report = JSON.parse(lines[0]!);
            assert.equal(report.ops, 60);
            assert.equal(report.errors, 0);
            assert.deepEqual([report.acked, report.verified, report.lost], [60, 60, 0]);
        } finally {
            await gateway.close();
        }
    }));
