// Goal: the WebSocket client link (src/io/ws_client.ts) speaks RFC 6455 with a real server
// (the `ws` library's): binary messages of every length encoding arrive whole and in order
// both ways (masked by us, unmasked by the server), a ping is answered with its pong, text is
// ignored, and a bad handshake, an oversize frame or a server close end the link once. A
// turn's frames leave with one socket write (a frame too big for the staging buffer with one
// more, after them), bufferedBytes() counts what is not yet written, pings and errors reach
// their handlers, and the masking key is never zero. And it
// allocates less: a closed loop of request/reply round trips against an echo server in a worker
// thread (its own heap) costs this thread well under the young-generation bytes of the same
// loop through `ws` (~1.1 KB against ~2.4 KB here; what is left is node's socket write and read
// machinery, one write and one read per round trip, which batching per turn amortizes).

import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { test } from "node:test";
import { Worker } from "node:worker_threads";
import fc from "fast-check";
import WebSocket, { WebSocketServer } from "ws";
import {
    WsClientBuffers,
    WsClientLink,
    WsState,
    nextMaskNonZero,
    wsProtocolErrors,
} from "../../src/io/ws_client.js";
import { YoungAllocationMeter } from "../../src/io/young_meter.js";

const messageSizeMax = 256 * 1024;

interface Events {
    opened: number;
    closed: number;
    frames: Uint8Array[];
    pings?: number;
    errors?: string[];
}

function open(port: number, events: Events): Promise<WsClientLink> {
    return new Promise((resolve, reject) => {
        const link: WsClientLink = new WsClientLink(
            { url: `ws://127.0.0.1:${port}/`, messageSizeMax, handshakeTimeoutMs: 2000 },
            {
                onOpen: () => {
                    events.opened++;
                    resolve(link);
                },
                onFrame: (bytes) => events.frames.push(Uint8Array.from(bytes)),
                onClose: () => {
                    events.closed++;
                    if (events.opened === 0) reject(new Error("closed before open"));
                },
                onPing: () => {
                    events.pings = (events.pings ?? 0) + 1;
                },
                onError: (error) => {
                    assert.equal(events.closed, 0, "onError comes before onClose");
                    (events.errors ??= []).push(error.message);
                },
            },
        );
    });
}

async function withServer(
    body: (server: WebSocketServer, port: number) => Promise<void>,
): Promise<void> {
    const server = new WebSocketServer({ host: "127.0.0.1", port: 0, maxPayload: messageSizeMax });
    await new Promise((resolve) => server.once("listening", resolve));
    try {
        await body(server, (server.address() as AddressInfo).port);
    } finally {
        for (const client of server.clients) client.terminate();
        await new Promise((resolve) => server.close(resolve));
    }
}

async function until(condition: () => boolean, what: string): Promise<void> {
    const deadlineMs = performance.now() + 5000;
    while (!condition()) {
        if (performance.now() > deadlineMs) assert.fail(`timed out waiting for ${what}`);
        await new Promise((resolve) => setTimeout(resolve, 2));
    }
}

function pattern(size: number, seed: number): Uint8Array {
    const bytes = new Uint8Array(size);
    for (let index = 0; index < size; index++) bytes[index] = (index * 31 + seed) & 0xff;
    return bytes;
}

test("binary messages of every length encoding cross both ways whole and in order", () =>
    withServer(async (server, port) => {
        const received: Buffer[] = [];
        server.on("connection", (socket) =>
            socket.on("message", (data: Buffer, isBinary: boolean) => {
                assert.equal(isBinary, true);
                received.push(Buffer.from(data));
                socket.send(data, { binary: true }); // Echo.
            }),
        );
        const events: Events = { opened: 0, closed: 0, frames: [] };
        const link = await open(port, events);
        const sizes = [0, 1, 125, 126, 127, 65535, 65536, 200_000, 3];
        // Sent in one turn: they share a staging buffer or overflow it, in order either way.
        for (let index = 0; index < sizes.length; index++) {
            assert.equal(link.send(pattern(sizes[index]!, index)), true);
        }
        await until(() => events.frames.length === sizes.length, "the echoes");
        for (let index = 0; index < sizes.length; index++) {
            assert.deepEqual(new Uint8Array(received[index]!), pattern(sizes[index]!, index));
            assert.deepEqual(events.frames[index], pattern(sizes[index]!, index));
        }
        link.close();
        await until(() => events.closed === 1, "the close");
        assert.equal(link.state, WsState.closed);
        assert.equal(link.send(new Uint8Array(1)), false);
    }));

test("a ping is answered with its pong; text is ignored; a server close ends the link", () =>
    withServer(async (server, port) => {
        let pong: Buffer | null = null;
        let serverSocket: WebSocket | null = null;
        server.on("connection", (socket) => {
            serverSocket = socket;
            socket.on("pong", (data: Buffer) => (pong = Buffer.from(data)));
        });
        const events: Events = { opened: 0, closed: 0, frames: [] };
        const link = await open(port, events);
        await until(() => serverSocket !== null, "the server's side");
        assert.equal(events.pings ?? 0, 0);
        serverSocket!.ping(Buffer.from("are you there"));
        await until(() => pong !== null, "the pong");
        assert.equal(pong!.toString(), "are you there");
        assert.equal(events.pings, 1);
        serverSocket!.send("some text");
        serverSocket!.send(Buffer.from([1, 2, 3]), { binary: true });
        await until(() => events.frames.length === 1, "the binary message");
        assert.equal(link.textFramesIgnored, 1);
        assert.deepEqual(events.frames[0], new Uint8Array([1, 2, 3]));
        serverSocket!.close(1000, "bye");
        await until(() => events.closed === 1, "the close");
        assert.equal(events.opened, 1);
    }));

test("a frame above messageSizeMax ends the link and is counted", () =>
    withServer(async (server, port) => {
        server.on("connection", (socket) => socket.send(new Uint8Array(messageSizeMax + 1)));
        const before = wsProtocolErrors.oversize;
        const events: Events = { opened: 0, closed: 0, frames: [] };
        await open(port, events);
        await until(() => events.closed === 1, "the close");
        assert.equal(events.frames.length, 0);
        assert.equal(wsProtocolErrors.oversize, before + 1);
    }));

test("a server that does not upgrade ends the link before it opens", async () => {
    const server = http.createServer((_request, response) => response.writeHead(404).end());
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    try {
        const port = (server.address() as AddressInfo).port;
        const before = wsProtocolErrors.handshake;
        const events: Events = { opened: 0, closed: 0, frames: [] };
        await assert.rejects(open(port, events), /closed before open/);
        assert.equal(events.opened, 0);
        assert.equal(wsProtocolErrors.handshake, before + 1);
        assert.deepEqual(events.errors, ["websocket protocol error (handshake)"]);
    } finally {
        server.closeAllConnections();
        await new Promise((resolve) => server.close(resolve));
    }
});

test("a refused connection reports its error, then closes once", async () => {
    const server = http.createServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const port = (server.address() as AddressInfo).port;
    await new Promise((resolve) => server.close(resolve)); // Nothing listens there now.
    const events: Events = { opened: 0, closed: 0, frames: [] };
    await assert.rejects(open(port, events), /closed before open/);
    assert.equal(events.closed, 1);
    assert.equal(events.errors?.length, 1);
    assert.match(events.errors![0]!, /ECONNREFUSED/);
});

test("a turn's frames leave in one write, a frame too big for staging in one more, in order", () =>
    withServer(async (server, port) => {
        const received: Buffer[] = [];
        server.on("connection", (socket) =>
            socket.on("message", (data: Buffer) => received.push(Buffer.from(data))),
        );
        const events: Events = { opened: 0, closed: 0, frames: [] };
        const link = await open(port, events);
        await until(() => link.bufferedBytes() === 0, "the handshake's bytes to leave");
        const sent: Uint8Array[] = [];
        const scratch = new Uint8Array(messageSizeMax);
        // The caller reuses one buffer for every frame: each is copied as it is sent.
        const sendPattern = (size: number, seed: number): void => {
            scratch.set(pattern(size, seed));
            sent.push(scratch.slice(0, size));
            assert.equal(link.send(scratch, 0, size), true);
            scratch.fill(0, 0, size);
        };

        // Small frames: all staged, one write at the turn's end; their bytes are counted.
        const writesBefore = link.writes;
        for (let index = 0; index < 10; index++) sendPattern(100, index);
        assert.equal(link.writes, writesBefore, "nothing is written before the turn ends");
        assert.equal(link.bufferedBytes(), 10 * (2 + 4 + 100)); // Header, mask, payload.
        await new Promise((resolve) => setImmediate(resolve));
        assert.equal(link.writes, writesBefore + 1);

        // Two 100 KB frames fill the staging buffer (256 KiB + a frame header) most of the way:
        // the third flushes them (one write) and goes out in a buffer of its own (one more).
        await until(() => link.bufferedBytes() === 0, "the first turn's write");
        const unstagedBefore = link.sendsUnstaged;
        for (let index = 0; index < 3; index++) sendPattern(100_000, 10 + index);
        assert.equal(link.writes, writesBefore + 3);
        assert.equal(link.sendsUnstaged, unstagedBefore + 1);
        sendPattern(7, 13); // Staged again, after the big ones: written at the turn's end.
        await new Promise((resolve) => setImmediate(resolve));
        assert.equal(link.writes, writesBefore + 4);

        await until(() => received.length === sent.length, "every frame");
        for (let index = 0; index < sent.length; index++) {
            assert.deepEqual(new Uint8Array(received[index]!), sent[index]);
        }
        await until(() => link.bufferedBytes() === 0, "everything written");
        link.close();
    }));

test("links that send in one turn each write once at its end, in the order of their frames", () =>
    withServer(async (server, port) => {
        const received: string[] = [];
        server.on("connection", (socket) =>
            socket.on("message", (data: Buffer) => received.push(data.toString())),
        );
        const links: WsClientLink[] = [];
        for (let index = 0; index < 3; index++) {
            links.push(await open(port, { opened: 0, closed: 0, frames: [] }));
        }
        const writesBefore = links.map((link) => link.writes);
        const sent: string[] = [];
        for (let round = 0; round < 4; round++) {
            for (let index = 0; index < links.length; index++) {
                const text = `link ${index} frame ${round}`;
                sent.push(text);
                assert.equal(links[index]!.send(Buffer.from(text)), true);
            }
        }
        links[1]!.close(); // Closed with frames staged: they are discarded, the others go out.
        await new Promise((resolve) => setImmediate(resolve));
        assert.deepEqual(
            links.map((link, index) => link.writes - writesBefore[index]!),
            [1, 0, 1],
        );
        const expected = sent.filter((text) => !text.startsWith("link 1 "));
        await until(() => received.length === expected.length, "the frames");
        for (const link of [0, 2]) {
            const mine = (text: string): boolean => text.startsWith(`link ${link} `);
            assert.deepEqual(received.filter(mine), expected.filter(mine));
        }
        links[0]!.close();
        links[2]!.close();
    }));

test("frames of any size from any offset arrive intact (masked by words or by bytes)", () =>
    withServer(async (server, port) => {
        const received: Buffer[] = [];
        server.on("connection", (socket) =>
            socket.on("message", (data: Buffer) => received.push(Buffer.from(data))),
        );
        const link = await open(port, { opened: 0, closed: 0, frames: [] });
        // An odd byteOffset: the DataViews read and write words at unaligned addresses.
        const source = pattern(70_008, 99).subarray(3);
        const frame = fc.record({
            start: fc.integer({ min: 0, max: 7 }),
            size: fc.oneof(
                fc.integer({ min: 0, max: 1100 }),
                fc.integer({ min: 60_000, max: 65_600 }),
            ),
        });
        await fc.assert(
            fc.asyncProperty(fc.array(frame, { minLength: 1, maxLength: 8 }), async (frames) => {
                received.length = 0;
                for (const { start, size } of frames)
                    assert.equal(link.send(source, start, size), true);
                await until(() => received.length === frames.length, "the frames");
                for (let index = 0; index < frames.length; index++) {
                    const { start, size } = frames[index]!;
                    const expected = source.subarray(start, start + size);
                    assert.deepEqual(new Uint8Array(received[index]!), expected);
                }
            }),
            { numRuns: 40 },
        );
        link.close();
    }));

test("links take turns on one WsClientBuffers: a closed one's, never an open one's", () =>
    withServer(async (server, port) => {
        const received: Buffer[] = [];
        server.on("connection", (socket) =>
            socket.on("message", (data: Buffer) => {
                received.push(Buffer.from(data));
                socket.send(data, { binary: true }); // Echo: the inbox and frame buffer too.
            }),
        );
        const buffers = new WsClientBuffers(messageSizeMax);
        const options = {
            url: `ws://127.0.0.1:${port}/`,
            messageSizeMax,
            handshakeTimeoutMs: 2000,
        };
        for (let round = 0; round < 3; round++) {
            received.length = 0;
            const events: Events = { opened: 0, closed: 0, frames: [] };
            const link = await new Promise<WsClientLink>((resolve, reject) => {
                const created: WsClientLink = new WsClientLink(
                    { ...options, buffers },
                    {
                        onOpen: () => resolve(created),
                        onFrame: (bytes) => events.frames.push(Uint8Array.from(bytes)),
                        onClose: () => reject(new Error("closed")),
                    },
                );
            });
            assert.equal(buffers.owner, link);
            assert.throws(
                () =>
                    new WsClientLink(
                        { ...options, buffers },
                        {
                            onOpen: () => {},
                            onFrame: () => {},
                            onClose: () => {},
                        },
                    ),
            );
            const sizes = [5, 700, 100_000, 3];
            for (let index = 0; index < sizes.length; index++) {
                assert.equal(link.send(pattern(sizes[index]!, round * 10 + index)), true);
            }
            await until(() => events.frames.length === sizes.length, "the echoes");
            for (let index = 0; index < sizes.length; index++) {
                const expected = pattern(sizes[index]!, round * 10 + index);
                assert.deepEqual(new Uint8Array(received[index]!), expected);
                assert.deepEqual(events.frames[index], expected);
            }
            link.close();
        }
    }));

test("the masking key is never zero (100000 draws)", () => {
    for (let draw = 0; draw < 100_000; draw++) assert.notEqual(nextMaskNonZero(), 0);
});

/** An echo server in a worker thread: its allocations are not this thread's. */
async function echoWorker(): Promise<{ port: number; worker: Worker }> {
    const source = `
        const { parentPort } = require("node:worker_threads");
        const { WebSocketServer } = require(${JSON.stringify(require_ws())});
        const server = new WebSocketServer({ host: "127.0.0.1", port: 0 });
        server.on("connection", (socket) =>
            socket.on("message", (data) => socket.send(data, { binary: true })));
        server.on("listening", () => parentPort.postMessage(server.address().port));`;
    const worker = new Worker(source, { eval: true });
    const port = await new Promise<number>((resolve) => worker.once("message", resolve));
    return { port, worker };
}

function require_ws(): string {
    return new URL("../../../node_modules/ws/index.js", import.meta.url).pathname;
}

/** Young bytes this thread allocates per round trip of a 336-byte request and its echo. */
async function bytesPerRoundTrip(
    send: (bytes: Uint8Array) => void,
    onReply: (callback: () => void) => void,
    roundTrips: number,
): Promise<number> {
    const request = pattern(336, 7);
    let left = 0;
    let done: () => void = () => {};
    onReply(() => {
        if (--left > 0) send(request);
        else done();
    });
    const run = (count: number): Promise<void> =>
        new Promise((resolve) => {
            left = count;
            done = resolve;
            send(request);
        });
    await run(500); // Warm-up.
    const meter = new YoungAllocationMeter();
    try {
        const before = meter.read();
        await run(roundTrips);
        return (meter.read() - before) / roundTrips;
    } finally {
        meter.stop();
    }
}

test("a round trip through the link allocates under 60% of what ws allocates", async () => {
    const { port, worker } = await echoWorker();
    try {
        let onLinkReply: () => void = () => {};
        const events: Events = { opened: 0, closed: 0, frames: [] };
        const link = await new Promise<WsClientLink>((resolve) => {
            const created: WsClientLink = new WsClientLink(
                { url: `ws://127.0.0.1:${port}/`, messageSizeMax, handshakeTimeoutMs: 2000 },
                {
                    onOpen: () => resolve(created),
                    onFrame: () => onLinkReply(),
                    onClose: () => events.closed++,
                },
            );
        });
        const linkBytes = await bytesPerRoundTrip(
            (bytes) => link.send(bytes),
            (callback) => (onLinkReply = callback),
            5000,
        );
        link.close();
        const socket = new WebSocket(`ws://127.0.0.1:${port}/`);
        await new Promise((resolve) => socket.once("open", resolve));
        const wsBytes = await bytesPerRoundTrip(
            (bytes) => socket.send(bytes),
            (callback) => socket.on("message", callback),
            5000,
        );
        socket.terminate();
        assert.ok(
            linkBytes < wsBytes * 0.6,
            `link ${linkBytes.toFixed(0)} B, ws ${wsBytes.toFixed(0)} B per round trip`,
        );
    } finally {
        await worker.terminate();
    }
});
