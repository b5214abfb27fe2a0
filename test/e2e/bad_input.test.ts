// End-to-end: a real replica (replica count 1) on a loopback port takes hostile input on its one
// port and lives on. Sent: random TCP bytes, random WebSocket binary frames of many sizes, a
// header whose size field claims 1000 bytes (with a bad checksum, and with a valid one) but only
// 256 are sent, a frame over messageSizeMax, a text frame, a message for another cluster, and a
// burst of connections opened and dropped. Afterwards the node still runs, /status answers 200,
// /metrics counts the drops by reason, its log holds no stack trace, and `vsr client` still
// works. The bus closes a connection after a bad frame, so each bad frame gets its own
// connection and the test waits for the server to close it.

import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import net from "node:net";
import { test } from "node:test";
import WebSocket from "ws";
import { headerSize, production } from "../../src/constants.js";
import { Frame, setHeaderChecksum } from "../../src/vsr/header.js";
import {
    LocalCluster,
    Scope,
    hasStackTrace,
    httpGet,
    metric,
    metricSum,
    withTimeout,
    waitFor,
} from "./harness.js";

const closeTimeoutMs = 10_000;

/** Opens a WebSocket to the node (bounded). */
function openWebSocket(port: number): Promise<WebSocket> {
    return new Promise((resolve, reject) => {
        const socket = new WebSocket(`ws://127.0.0.1:${port}/`, { maxPayload: 0 });
        const timer = setTimeout(() => {
            socket.terminate();
            reject(new Error("WebSocket open timed out"));
        }, closeTimeoutMs);
        socket.once("open", () => {
            clearTimeout(timer);
            resolve(socket);
        });
        socket.once("error", (error) => {
            clearTimeout(timer);
            reject(error);
        });
    });
}

/** Sends one frame on a fresh connection and waits for the server to close it. */
async function sendBadFrame(port: number, data: Uint8Array | string): Promise<number> {
    const socket = await openWebSocket(port);
    try {
        return await new Promise<number>((resolve, reject) => {
            const timer = setTimeout(
                () => reject(new Error("the server did not close the connection")),
                closeTimeoutMs,
            );
            socket.on("error", () => {
                // A reset after the close frame: the close event follows.
            });
            socket.once("close", (code) => {
                clearTimeout(timer);
                resolve(code);
            });
            socket.send(data, { binary: typeof data !== "string" });
        });
    } finally {
        socket.terminate();
    }
}

/**
 * Writes bytes on a raw TCP connection, then waits up to 500 ms for the server to close it. uWS
 * closes at once on bytes that cannot start an HTTP request, but waits (its HTTP idle timeout)
 * for the rest of a request that merely has not ended yet; either way we hang up.
 */
function sendRawTcp(port: number, bytes: Uint8Array): Promise<void> {
    return new Promise((resolve) => {
        const socket = net.connect(port, "127.0.0.1");
        const done = (): void => {
            clearTimeout(timer);
            socket.destroy();
            resolve();
        };
        const timer = setTimeout(done, 500);
        socket.on("error", done);
        socket.on("close", done);
        socket.on("data", () => {
            // Whatever uWS answers (400 or nothing) is fine.
        });
        socket.on("connect", () => socket.write(bytes));
    });
}

/** A 256-byte header whose size field says `size` (checksums as given or left random). */
function forgedHeader(cluster: number, size: number, validChecksum: boolean): Uint8Array {
    const bytes = new Uint8Array(headerSize);
    const view = new DataView(bytes.buffer);
    bytes.set(randomBytes(32), Frame.checksum);
    view.setUint32(Frame.cluster, cluster, true);
    view.setUint32(Frame.size, size, true);
    view.setUint8(Frame.command, 5); // request
    if (validChecksum) setHeaderChecksum(bytes, 0);
    return bytes;
}

test("a replica survives hostile input on its port", { timeout: 90_000 }, async (t) => {
    const scope = Scope.create(t);
    const cluster = await LocalCluster.format(scope, 1);
    const node = cluster.start(0);
    await cluster.waitReady(30_000);
    const port = cluster.ports[0]!;

    // Random TCP bytes (not HTTP), and bytes after a valid-looking request line.
    for (const size of [1, 100, 4096, 65536]) await sendRawTcp(port, randomBytes(size));
    await sendRawTcp(port, Buffer.concat([Buffer.from("GET / HTTP/1.1\r\n"), randomBytes(512)]));

    // Random binary frames: too short for a header, and header-sized or longer with garbage.
    for (const size of [0, 1, 100, headerSize - 1]) {
        await sendBadFrame(port, randomBytes(size));
    }
    for (const size of [headerSize, headerSize + 1, 4096, 65536]) {
        await sendBadFrame(port, randomBytes(size));
    }
    // A forged size field: 1000 bytes claimed, 256 sent, with a bad and with a valid checksum.
    await sendBadFrame(port, forgedHeader(cluster.cluster, 1000, false));
    await sendBadFrame(port, forgedHeader(cluster.cluster, 1000, true));
    // Oversized: more than messageSizeMax of the production preset.
    const oversizeCode = await sendBadFrame(port, randomBytes(production.messageSizeMax + 4096));
    t.diagnostic(`oversized frame: closed with code ${oversizeCode}`);
    // A text frame.
    await sendBadFrame(port, "put key value");
    // A well-formed client of another cluster: dropped (wrong_cluster) and answered with a
    // wrongCluster eviction, which the client turns into an immediate one-line error naming the
    // cluster it reached (well before its 20 s timeout).
    const strangerStartMs = performance.now();
    const stranger = await scope.run([
        "client",
        `--cluster=${(cluster.cluster + 1) >>> 0}`,
        `--addresses=${cluster.addresses}`,
        "--timeout-ms=20000",
        "get",
        "key",
    ]);
    const strangerMs = performance.now() - strangerStartMs;
    assert.equal(stranger.exit?.code, 1, stranger.describe());
    assert.equal(hasStackTrace(stranger.stderr), false, stranger.describe());
    assert.match(
        stranger.stderr,
        new RegExp(`^vsr client: .*belongs to cluster ${cluster.cluster}, not to cluster \\d+\n$`),
    );
    assert.ok(strangerMs < 10_000, `the rejection took ${strangerMs} ms`);

    // A burst of 50 connections opened and dropped: half before the handshake completes, half
    // after; and 50 raw TCP connections closed at once.
    const burst: Promise<void>[] = [];
    for (let index = 0; index < 50; index++) {
        burst.push(
            new Promise<void>((resolve) => {
                const socket = new WebSocket(`ws://127.0.0.1:${port}/`);
                socket.on("error", () => {
                    // Terminated before open: expected.
                });
                socket.once("close", () => resolve());
                if (index % 2 === 0) socket.terminate();
                else socket.once("open", () => socket.terminate());
            }),
        );
        const raw = net.connect(port, "127.0.0.1");
        raw.on("error", () => {});
        raw.once("connect", () => raw.destroy());
    }
    await withTimeout(Promise.all(burst), closeTimeoutMs, "the connection burst to settle");

    // The node lives on and answers.
    assert.ok(node.alive, node.describe());
    const status = await httpGet(port, "/status");
    assert.equal(status?.status, 200);
    assert.equal((JSON.parse(status.body) as { status: string }).status, "normal");

    const dropped = (reason: string, body: string): number =>
        metric(body, "vsr_messages_dropped_total", `reason="${reason}"`);
    const metrics = await waitFor("drop counters in /metrics", 10_000, async () => {
        const answer = await httpGet(port, "/metrics");
        return answer !== null && answer.status === 200 && dropped("oversize", answer.body) > 0
            ? answer.body
            : null;
    });
    t.diagnostic(
        metrics
            .split("\n")
            .filter((line) => line.startsWith("vsr_messages_dropped_total") && !line.endsWith(" 0"))
            .join(", "),
    );
    assert.ok(metricSum(metrics, "vsr_messages_dropped_total") > 0);
    assert.ok(dropped("undersize", metrics) >= 3, "short frames");
    assert.ok(dropped("invalid_checksum", metrics) >= 5, "garbage headers");
    assert.ok(dropped("invalid_header", metrics) >= 1, "size field != frame size");
    assert.ok(dropped("oversize", metrics) >= 1, "frame > messageSizeMax");
    assert.ok(dropped("text_frame", metrics) >= 1, "text frame");
    assert.ok(dropped("wrong_cluster", metrics) >= 1, "another cluster's client");

    // Clients still get served, and the log shows no escaped exception.
    const client = (...words: string[]): Promise<string> => cluster.client(...words);
    assert.equal(await client("put", "still", "alive"), "ok");
    assert.equal(await client("get", "still"), "alive");
    assert.ok(node.alive, node.describe());
    assert.equal(hasStackTrace(node.stderr), false, node.describe());
});
