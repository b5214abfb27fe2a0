// Tests for TurnCorker (src/io/cork.ts): write coalescing of ws connections per event-loop turn.
// Goal: show that frames sent in one turn are held (the socket corked) until that turn's
// setImmediate, then all arrive, whole and in order; that a second cork of the same socket in
// one turn is not a second cork; that the bound on corked sockets is kept; and that the
// non-zero mask generator never yields a zero mask.
// Method: a ws server on 127.0.0.1 (port 0) echoes nothing and records the frames it receives;
// the client connection is corked before each burst of sends and the socket's corked count is
// read before and after the flush. Frame contents are drawn from a seeded PRNG.

import { test } from "node:test";
import assert from "node:assert/strict";
import { once } from "node:events";
import type { AddressInfo } from "node:net";
import WebSocket, { WebSocketServer } from "ws";

import { TurnCorker, generateMaskNonZero } from "../../src/io/cork.js";
import { PRNG } from "../../src/stdx/prng.js";

interface Pair {
    readonly server: WebSocketServer;
    readonly client: WebSocket;
    readonly received: Buffer[];
}

async function connectPair(): Promise<Pair> {
    const server = new WebSocketServer({ host: "127.0.0.1", port: 0 });
    await once(server, "listening");
    const received: Buffer[] = [];
    server.on("connection", (socket) => {
        socket.on("message", (data: Buffer) => received.push(Buffer.from(data)));
    });
    const port = (server.address() as AddressInfo).port;
    const url = `ws://127.0.0.1:${port}/`;
    const client = new WebSocket(url, { generateMask: generateMaskNonZero });
    await once(client, "open");
    return { server, client, received };
}

async function closePair(pair: Pair): Promise<void> {
    pair.client.terminate();
    for (const socket of pair.server.clients) socket.terminate();
    await new Promise<void>((resolve) => pair.server.close(() => resolve()));
}

function rawCorked(client: WebSocket): number {
    const socket = (client as unknown as { _socket: { writableCorked: number } })._socket;
    return socket.writableCorked;
}

async function waitFor(condition: () => boolean, timeoutMs: number): Promise<void> {
    const deadlineMs = performance.now() + timeoutMs;
    while (!condition()) {
        assert.ok(performance.now() < deadlineMs, "timed out");
        await new Promise((resolve) => setTimeout(resolve, 5));
    }
}

const seed = 0x5eed_c0c;

const heldName = "frames sent in one turn are held until its end, then arrive whole and in order";

test(`${heldName} (seed=${seed})`, async () => {
    const pair = await connectPair();
    const corker = new TurnCorker(2);
    const prng = new PRNG(seed);
    const sent: Buffer[] = [];
    try {
        for (let burst = 0; burst < 4; burst++) {
            const frame = Buffer.alloc(64 + prng.range(0, 512));
            for (let frameIndex = 0; frameIndex < 1 + burst * 3; frameIndex++) {
                for (let index = 0; index < frame.length; index++) {
                    frame[index] = prng.range(0, 255);
                }
                sent.push(Buffer.from(frame));
                corker.cork(pair.client);
                pair.client.send(frame, { binary: true });
                frame.fill(0); // The caller may reuse its bytes at once: ws masked a copy.
            }
            assert.equal(rawCorked(pair.client), 1, "one cork per socket per turn");
            assert.equal(corker.corks, burst + 1);
            await new Promise((resolve) => setImmediate(resolve));
            assert.equal(rawCorked(pair.client), 0, "uncorked at the turn's end");
        }
        await waitFor(() => pair.received.length === sent.length, 5000);
        assert.deepEqual(pair.received, sent);
    } finally {
        await closePair(pair);
    }
});

test("a corker corks at most socketsMax sockets; beyond that frames go out uncorked", async () => {
    const first = await connectPair();
    const second = await connectPair();
    const corker = new TurnCorker(1);
    try {
        corker.cork(first.client);
        corker.cork(second.client);
        assert.equal(rawCorked(first.client), 1);
        assert.equal(rawCorked(second.client), 0);
        corker.flush();
        assert.equal(rawCorked(first.client), 0);
        assert.equal(corker.corks, 1);
    } finally {
        await closePair(first);
        await closePair(second);
    }
});

test("generateMaskNonZero never yields an all-zero mask (100000 draws)", () => {
    const mask = Buffer.alloc(4);
    for (let draw = 0; draw < 100_000; draw++) {
        generateMaskNonZero(mask);
        assert.notEqual(mask.readUInt32LE(0), 0);
    }
});
