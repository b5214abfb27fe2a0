// Tests for the per-path fault proxy of `vsr chaos`: bytes flow both ways through it; a cut
// destroys the open connection and refuses new ones (accepted, then closed at once, no byte
// forwarded); a heal lets new connections through again; close() leaves nothing listening.

import { test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { PathProxy } from "../../src/chaos/proxy.js";

async function echoServer(): Promise<{ server: net.Server; port: number }> {
    const server = net.createServer((socket) => {
        socket.on("error", () => {});
        socket.pipe(socket);
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
    return { server, port: (server.address() as net.AddressInfo).port };
}

/** Connects, sends `text`, resolves with what comes back before the socket ends (or 300 ms). */
function roundTrip(port: number, text: string): Promise<{ reply: string; closed: boolean }> {
    return new Promise((resolve) => {
        const socket = net.connect({ host: "127.0.0.1", port });
        let reply = "";
        let closed = false;
        socket.on("error", () => {});
        socket.on("data", (data) => {
            reply += data.toString();
        });
        socket.on("close", () => {
            closed = true;
        });
        socket.on("connect", () => socket.write(text));
        setTimeout(() => {
            socket.destroy();
            resolve({ reply, closed });
        }, 300);
    });
}

test("a path proxy forwards, cuts (closing open connections, refusing new) and heals", async () => {
    const { server, port } = await echoServer();
    const proxy = await PathProxy.open(0, 1, port);
    try {
        assert.deepEqual(await roundTrip(proxy.port, "hello"), { reply: "hello", closed: false });

        const open = net.connect({ host: "127.0.0.1", port: proxy.port });
        open.on("error", () => {});
        const ended = new Promise<void>((resolve) => open.on("close", () => resolve()));
        await new Promise<void>((resolve) => open.on("connect", () => resolve()));
        proxy.setCut(true);
        await ended; // The open connection was cut.

        const refused = await roundTrip(proxy.port, "lost");
        assert.equal(refused.reply, "");
        assert.equal(refused.closed, true);
        assert.ok(proxy.refused >= 1);

        proxy.setCut(false);
        assert.deepEqual(await roundTrip(proxy.port, "again"), { reply: "again", closed: false });
    } finally {
        await proxy.close();
        await new Promise<void>((resolve) => server.close(() => resolve()));
    }
    await assert.rejects(
        new Promise((resolve, reject) => {
            const socket = net.connect({ host: "127.0.0.1", port: proxy.port });
            socket.on("connect", () => {
                socket.destroy();
                resolve(null);
            });
            socket.on("error", reject);
        }),
    );
});
