// peer_status over real sockets (src/io/bus.ts): a replica's report reaches its peer's
// onPeerStatus in the sender's name and never its replica (onMessage); a client connection that
// sends one is refused like any replica command from a client (counted, connection closed), so
// a client can never paint the page. Ports come from the kernel; everything is closed after.

import assert from "node:assert/strict";
import net from "node:net";
import { test } from "node:test";
import WebSocket from "ws";
import { headerSize } from "../../src/constants.js";
import { DropReason, NodeBus } from "../../src/io/bus.js";
import { Arena } from "../../src/vsr/arena.js";
import { checksumAttach } from "../../src/vsr/checksum.js";
import { Command, Frame, PeerStatus, readU64 } from "../../src/vsr/header.js";
import { MessagePool } from "../../src/vsr/message_pool.js";
import { StatusReport } from "../../src/web/status_report.js";

const cluster = 11;
const messageSizeMax = 4096;

async function freePort(): Promise<number> {
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const address = server.address() as net.AddressInfo;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    return address.port;
}

async function until(what: string, predicate: () => boolean, timeoutMs = 10_000): Promise<void> {
    const deadlineMs = Date.now() + timeoutMs;
    while (!predicate()) {
        if (Date.now() > deadlineMs) assert.fail(`timed out waiting for ${what}`);
        await new Promise((resolve) => setTimeout(resolve, 10));
    }
}

interface Heard {
    replica: number;
    view: number;
    commitMin: number;
}

function bus(replica: number, addresses: { host: string; port: number }[], heard: Heard[]) {
    const arena = new Arena(MessagePool.sizeBytes(messageSizeMax, 32));
    checksumAttach(arena.memory);
    const delivered: number[] = [];
    const node = new NodeBus({
        cluster,
        replica,
        addresses,
        pool: new MessagePool(arena, messageSizeMax, 32),
        arena,
        messageSizeMax,
        onMessage: (message) => delivered.push(arena.view.getUint8(message.offset + Frame.command)),
        onHttp: () => null,
        log: () => undefined,
        onPeerStatus: (peer, view, offset) =>
            heard.push({
                replica: peer,
                view: view.getUint32(offset + Frame.view, true),
                commitMin: readU64(view, offset + PeerStatus.commitMin),
            }),
    });
    node.start();
    return { node, delivered };
}

test("a peer's status report reaches onPeerStatus, in its name, and never the replica", async () => {
    const addresses = [];
    for (let index = 0; index < 2; index++) {
        addresses.push({ host: "127.0.0.1", port: await freePort() });
    }
    const heard0: Heard[] = [];
    const heard1: Heard[] = [];
    const a = bus(0, addresses, heard0);
    const b = bus(1, addresses, heard1);
    try {
        const report = new StatusReport(cluster, 1);
        report.write({
            view: 3,
            logView: 3,
            status: 0,
            primary: 1,
            op: 120,
            commitMin: 118,
            commitMax: 119,
            checkpointOp: 64,
            requestLatencyUsP50: 800,
            requestLatencyUsP99: 2400,
            requestsReplied: 55,
        });
        await until("b's link to a", () => b.node.sendPeerStatus(report.bytes, report.view) === 1);
        await until("a hearing b", () => heard0.length > 0);
        assert.deepEqual(heard0[0], { replica: 1, view: 3, commitMin: 118 });
        assert.ok(a.node.counters.messagesReceived[Command.peerStatus]! >= 1);
        assert.ok(b.node.counters.messagesSent[Command.peerStatus]! >= 1);
        assert.equal(a.delivered.includes(Command.peerStatus), false);
        assert.equal(heard1.length, 0);
    } finally {
        await a.node.close();
        await b.node.close();
    }
});

test("a client connection sending a peer_status is dropped, counted and closed", async () => {
    const addresses = [{ host: "127.0.0.1", port: await freePort() }];
    const heard: Heard[] = [];
    const a = bus(0, addresses, heard);
    try {
        // In replica 0's own name, then as a (non-existent) replica 1: neither is believed.
        for (const sender of [0, 1]) {
            const report = new StatusReport(cluster, sender);
            report.write({
                view: 9,
                logView: 9,
                status: 0,
                primary: 1,
                op: 1,
                commitMin: 1,
                commitMax: 1,
                checkpointOp: 0,
                requestLatencyUsP50: 0,
                requestLatencyUsP99: 0,
                requestsReplied: 0,
            });
            assert.equal(report.bytes.length, headerSize);
            const before = a.node.counters.dropped[DropReason.clientSentReplicaCommand]!;
            const socket = new WebSocket(`ws://127.0.0.1:${addresses[0]!.port}`);
            await new Promise<void>((resolve, reject) => {
                socket.once("open", () => resolve());
                socket.once("error", reject);
            });
            const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
            socket.send(report.bytes);
            await closed;
            assert.equal(a.node.counters.dropped[DropReason.clientSentReplicaCommand], before + 1);
        }
        assert.equal(heard.length, 0);
        assert.equal(a.delivered.length, 0);
    } finally {
        await a.node.close();
    }
});
