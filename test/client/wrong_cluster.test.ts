// The client's side of the wrong-cluster rejection (the bus's side is in test/e2e/bad_input):
// a valid eviction with reason wrongCluster, in another cluster's name, that names this client
// fails every pending call at once with WRONG_CLUSTER naming the cluster reached; the same frame
// naming another client, with a bad checksum, or any other command of another cluster is
// dropped as invalid and changes nothing.

import assert from "node:assert/strict";
import { test } from "node:test";
import { Client, ClientError } from "../../src/client/client.js";
import type { ClientTransport, FrameHandler } from "../../src/client/transport.js";
import { headerSize } from "../../src/constants.js";
import {
    Command,
    Eviction,
    EvictionReason,
    Frame,
    Request,
    setChecksums,
} from "../../src/vsr/header.js";

/** Records what the client sends; the test delivers frames by hand. */
class ManualTransport implements ClientTransport {
    readonly replicaCount = 3;
    readonly sent: Uint8Array[] = [];
    handler: FrameHandler | null = null;

    send(_replica: number, bytes: Uint8Array): void {
        this.sent.push(bytes.slice());
    }

    onMessage(handler: FrameHandler): void {
        this.handler = handler;
    }

    connectedCount(): number {
        return this.replicaCount;
    }

    close(): void {}
}

/** A header-only frame of `command` in `cluster` naming the client of the request `request`. */
function frame(request: Uint8Array, cluster: number, command: number, reason: number): Uint8Array {
    const bytes = new Uint8Array(headerSize);
    const view = new DataView(bytes.buffer);
    view.setUint32(Frame.cluster, cluster, true);
    view.setUint32(Frame.size, headerSize, true);
    view.setUint8(Frame.command, command);
    bytes.set(request.subarray(Request.client, Request.client + 16), Eviction.client);
    view.setUint8(Eviction.reason, reason);
    setChecksums(bytes, view, 0);
    return bytes;
}

function setup(): { client: Client; transport: ManualTransport; call: Promise<unknown> } {
    const transport = new ManualTransport();
    const client = new Client({ transport, cluster: 7, callTimeoutMs: 60_000 });
    const call = client.get("key");
    call.catch(() => {}); // Observed by each test.
    assert.equal(transport.sent.length, 1, "the register went out");
    return { client, transport, call };
}

test("a wrongCluster eviction naming this client fails every pending call at once", async () => {
    const { client, transport, call } = setup();
    const second = client.put("other", "value");
    transport.handler!(
        1,
        frame(transport.sent[0]!, 9, Command.eviction, EvictionReason.wrongCluster),
    );
    for (const pending of [call, second]) {
        await assert.rejects(pending, (error: unknown) => {
            assert.ok(error instanceof ClientError);
            assert.equal(error.code, "WRONG_CLUSTER");
            assert.match(error.message, /address 1 belongs to cluster 9, not to cluster 7/);
            return true;
        });
    }
    assert.equal(client.stats.clusterRejections, 1);
    client.close();
});

test("frames of another cluster that are not our rejection are dropped as invalid", async () => {
    const { client, transport, call } = setup();
    const request = transport.sent[0]!;
    const stranger = request.slice();
    stranger[Request.client] = stranger[Request.client]! ^ 0xff; // Another client's id.
    const corrupt = frame(request, 9, Command.eviction, EvictionReason.wrongCluster);
    corrupt[Frame.view] = 1; // After the checksum: the header checksum fails.
    const frames = [
        frame(stranger, 9, Command.eviction, EvictionReason.wrongCluster),
        frame(request, 9, Command.eviction, EvictionReason.noSession),
        corrupt,
    ];
    for (const bytes of frames) transport.handler!(0, bytes);
    assert.equal(client.stats.framesInvalid, frames.length);
    assert.equal(client.stats.clusterRejections, 0);
    client.close();
    await assert.rejects(call, (error: unknown) => (error as ClientError).code === "CLOSED");
});
