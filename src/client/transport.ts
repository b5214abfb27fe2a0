// The client's transport: how request frames reach replicas and reply frames come back. The
// client library talks only to the `ClientTransport` interface, so tests plug in an in-process
// network and production uses `WebSocketTransport` (one `ws` connection per replica).
//
// Contract: one frame per message in both directions (a 256-byte header and its body, binary);
// send() never blocks and never throws for a closed or unconnected path: the frame is dropped
// and the client's retry timer re-sends it (at most one request is in flight per session, so
// nothing needs queueing here). One exception, for latency: while a path's connection is being
// opened, the latest frame sent to it is held and sent when it opens (a fresh client's first
// request would otherwise wait for a retry); the frame is dropped if that attempt fails, so a
// held frame is never older than one handshake. The bytes handed to send() may be reused by
// the caller as soon as send() returns; the bytes handed to the message handler are valid only
// during the call.
// The transport never interprets frames: validation (checksums, header rules) is the client's.
//
// WebSocketTransport: dials every address at construction and re-dials a closed path after an
// exponential backoff with jitter (reset once a connection opens). Each path is a WsClientLink
// (src/io/ws_client.ts: our own RFC 6455 client, binary frames, no compression), not `ws`,
// because ws allocated about a kilobyte per request and reply, most of a load generator's
// garbage; the link stages a turn's frames and writes them at once. messageSizeMax bounds what
// a replica may push at us. Its timers are unref'd: pending client calls keep the process
// alive, an idle transport does not.
//
// SharedTransport: many client sessions over one WebSocketTransport (one connection per replica
// for all of them), as etcd's clientv3 multiplexes its callers over one HTTP/2 connection. Each
// session() is a ClientTransport of its own; a replica's replies to all of them travel on the
// one connection, so a replica answering a batch of commits writes them with one syscall (the
// bus stages a turn's replies and sends them under one cork per connection) and the receiving
// side reads them with one, instead of one per client each way; the requests its clients send
// in one turn leave in one write too (the link stages them). It is the one transport that reads
// a frame: only the client id, to route a reply or an eviction to its session (each session
// learns its id from the requests it sends, which all carry it at Request.client); a frame
// naming no session, too short, or of another command is dropped and counted. The receiving
// client still validates every frame it is handed, as with a connection of its own.

import { headerSize } from "../constants.js";
import { Command, Eviction, Frame, Reply, Request } from "../vsr/header.js";
import { assert } from "../stdx/assert.js";
import { WsClientLink, WsState } from "../io/ws_client.js";

export type FrameHandler = (replica: number, bytes: Uint8Array) => void;

export interface ClientTransport {
    /** Replicas addressed by index 0..replicaCount-1 (the cluster's replica order). */
    readonly replicaCount: number;
    /** Sends one frame to a replica, or drops it when that path is down. */
    send(replica: number, bytes: Uint8Array): void;
    /** Installs the handler for every received frame (one handler; a later call replaces it). */
    onMessage(handler: FrameHandler): void;
    /** Paths open right now (0 means no replica is reachable). */
    connectedCount(): number;
    /** Closes every path; later sends are dropped. Idempotent. */
    close(): void;
}

export interface WebSocketTransportOptions {
    /** "host:port" (or a full ws:// / wss:// URL) per replica, in replica order. */
    readonly addresses: readonly string[];
    /** Largest frame accepted from a replica. */
    readonly messageSizeMax: number;
    readonly reconnectDelayMsMin?: number;
    readonly reconnectDelayMsMax?: number;
    readonly handshakeTimeoutMs?: number;
}

const reconnectDelayMsMinDefault = 50;
const reconnectDelayMsMaxDefault = 2000;
const handshakeTimeoutMsDefault = 3000;

/** ws://host:port/ for "host:port"; URLs pass through. Throws a TypeError on a bad address. */
export function addressUrl(address: string): string {
    const text = address.trim();
    if (text.startsWith("ws://") || text.startsWith("wss://")) return new URL(text).href;
    const colon = text.lastIndexOf(":");
    const port = Number(text.slice(colon + 1));
    if (colon <= 0 || !Number.isInteger(port) || port < 1 || port > 65535) {
        throw new TypeError(`address '${address}' is not host:port`);
    }
    return new URL(`ws://${text}/`).href;
}

export class WebSocketTransport implements ClientTransport {
    readonly replicaCount: number;
    private readonly urls: readonly string[];
    private readonly messageSizeMax: number;
    private readonly reconnectDelayMsMin: number;
    private readonly reconnectDelayMsMax: number;
    private readonly handshakeTimeoutMs: number;
    private readonly links: (WsClientLink | null)[] = [];
    private readonly attempts: number[] = [];
    private readonly timers: (NodeJS.Timeout | null)[] = [];
    /** Per path: the latest frame sent while its connection was opening (a copy), or null. */
    private readonly held: (Uint8Array | null)[] = [];
    private handler: FrameHandler | null = null;
    private closed = false;
    /** Frames dropped because their path was not open (for diagnostics). */
    sendsDropped = 0;

    constructor(options: WebSocketTransportOptions) {
        if (options.addresses.length === 0) throw new TypeError("no replica addresses");
        this.urls = options.addresses.map(addressUrl);
        this.replicaCount = this.urls.length;
        this.messageSizeMax = options.messageSizeMax;
        this.reconnectDelayMsMin = options.reconnectDelayMsMin ?? reconnectDelayMsMinDefault;
        this.reconnectDelayMsMax = options.reconnectDelayMsMax ?? reconnectDelayMsMaxDefault;
        this.handshakeTimeoutMs = options.handshakeTimeoutMs ?? handshakeTimeoutMsDefault;
        for (let replica = 0; replica < this.replicaCount; replica++) {
            this.links.push(null);
            this.attempts.push(0);
            this.timers.push(null);
            this.held.push(null);
        }
        for (let replica = 0; replica < this.replicaCount; replica++) this.connect(replica);
    }

    send(replica: number, bytes: Uint8Array): void {
        const link = this.links[replica] ?? null;
        if (link !== null && link.state === WsState.connecting) {
            this.held[replica] = bytes.slice();
            return;
        }
        // The link copies (masks) the frame into its staging buffer: `bytes` may be reused.
        if (link === null || !link.send(bytes)) this.sendsDropped++;
    }

    onMessage(handler: FrameHandler): void {
        this.handler = handler;
    }

    connectedCount(): number {
        let count = 0;
        for (let replica = 0; replica < this.replicaCount; replica++) {
            if (this.links[replica]?.state === WsState.open) count++;
        }
        return count;
    }

    close(): void {
        if (this.closed) return;
        this.closed = true;
        for (let replica = 0; replica < this.replicaCount; replica++) {
            const timer = this.timers[replica] ?? null;
            if (timer !== null) clearTimeout(timer);
            this.timers[replica] = null;
            const link = this.links[replica] ?? null;
            this.links[replica] = null;
            this.held[replica] = null;
            if (link !== null) link.close();
        }
    }

    private connect(replica: number): void {
        if (this.closed) return;
        // The handlers are made once per connection (never per message).
        const link: WsClientLink = new WsClientLink(
            {
                url: this.urls[replica]!,
                messageSizeMax: this.messageSizeMax,
                handshakeTimeoutMs: this.handshakeTimeoutMs,
            },
            {
                onOpen: () => {
                    if (this.links[replica] !== link) return;
                    this.attempts[replica] = 0;
                    const held = this.held[replica] ?? null;
                    this.held[replica] = null;
                    if (held !== null) link.send(held);
                },
                onFrame: (bytes) => {
                    if (this.links[replica] !== link || this.handler === null) return;
                    this.handler(replica, bytes);
                },
                onClose: () => this.onClose(replica, link),
            },
        );
        this.links[replica] = link;
    }

    private onClose(replica: number, link: WsClientLink): void {
        if (this.links[replica] !== link) return;
        this.links[replica] = null;
        if (this.held[replica] !== null) this.sendsDropped++;
        this.held[replica] = null;
        if (this.closed) return;
        const attempt = this.attempts[replica]!;
        this.attempts[replica] = Math.min(attempt + 1, 16);
        const ceilingMs = Math.min(
            this.reconnectDelayMsMax,
            this.reconnectDelayMsMin * 2 ** attempt,
        );
        const delayMs = ceilingMs / 2 + Math.random() * (ceilingMs / 2);
        const timer = setTimeout(() => {
            this.timers[replica] = null;
            this.connect(replica);
        }, delayMs);
        timer.unref();
        this.timers[replica] = timer;
    }
}

/** The u32 (little-endian) at bytes[offset], read without a DataView (no allocation). */
function u32At(bytes: Uint8Array, offset: number): number {
    return (
        (bytes[offset]! |
            (bytes[offset + 1]! << 8) |
            (bytes[offset + 2]! << 16) |
            (bytes[offset + 3]! << 24)) >>>
        0
    );
}

const connectPollMs = 10;

/** One client session of a SharedTransport. */
class SharedSession implements ClientTransport {
    readonly replicaCount: number;
    private readonly shared: SharedTransport;
    /** The session's client id as four u32 words, learned from its first request. */
    readonly id = new Uint32Array(4);
    idKnown = false;
    handler: FrameHandler | null = null;
    closed = false;

    constructor(shared: SharedTransport) {
        this.shared = shared;
        this.replicaCount = shared.replicaCount;
    }

    send(replica: number, bytes: Uint8Array): void {
        if (this.closed) return;
        assert(bytes.length >= headerSize);
        assert(bytes[Frame.command] === Command.request); // A client sends only requests.
        if (!this.idKnown) {
            for (let word = 0; word < 4; word++) {
                this.id[word] = u32At(bytes, Request.client + word * 4);
            }
            this.idKnown = true;
        }
        assert(this.matches(bytes, Request.client)); // A client's id never changes.
        this.shared.sendFrame(replica, bytes);
    }

    onMessage(handler: FrameHandler): void {
        this.handler = handler;
    }

    connectedCount(): number {
        return this.closed ? 0 : this.shared.connectedCount();
    }

    /** Detaches the session; the shared connections stay (SharedTransport.close ends them). */
    close(): void {
        if (this.closed) return;
        this.closed = true;
        this.handler = null;
        this.shared.detach(this);
    }

    matches(bytes: Uint8Array, offset: number): boolean {
        return (
            this.idKnown &&
            this.id[0] === u32At(bytes, offset) &&
            this.id[1] === u32At(bytes, offset + 4) &&
            this.id[2] === u32At(bytes, offset + 8) &&
            this.id[3] === u32At(bytes, offset + 12)
        );
    }
}

/** Client sessions multiplexed over one WebSocketTransport (see the top of this file). */
export class SharedTransport {
    readonly replicaCount: number;
    private readonly inner: ClientTransport;
    private readonly sessions: SharedSession[] = [];
    /** Frames received that named no open session (or were not a reply or eviction). */
    framesUnrouted = 0;

    /** Takes ownership of `inner` (usually a WebSocketTransport): close() closes it. */
    constructor(inner: ClientTransport) {
        this.inner = inner;
        this.replicaCount = inner.replicaCount;
        inner.onMessage((replica, bytes) => this.route(replica, bytes));
    }

    /** A new session's transport, for one Client. */
    session(): ClientTransport {
        const session = new SharedSession(this);
        this.sessions.push(session);
        return session;
    }

    /** Sessions attached (not closed). */
    get sessionCount(): number {
        return this.sessions.length;
    }

    connectedCount(): number {
        return this.inner.connectedCount();
    }

    /**
     * Resolves true once every replica's path is open, false after timeoutMs: sessions created
     * before then would see their first requests dropped (a path that is still connecting holds
     * one frame, not one per session) and wait for a retry.
     */
    async waitConnected(timeoutMs: number): Promise<boolean> {
        const deadlineMs = performance.now() + timeoutMs;
        while (this.inner.connectedCount() < this.replicaCount) {
            if (performance.now() >= deadlineMs) return false;
            await new Promise((resolve) => setTimeout(resolve, connectPollMs));
        }
        return true;
    }

    /** Closes every session and the connections. Idempotent. */
    close(): void {
        while (this.sessions.length > 0) this.sessions[this.sessions.length - 1]!.close();
        this.inner.close();
    }

    sendFrame(replica: number, bytes: Uint8Array): void {
        this.inner.send(replica, bytes);
    }

    detach(session: SharedSession): void {
        const index = this.sessions.indexOf(session);
        assert(index !== -1);
        this.sessions[index] = this.sessions[this.sessions.length - 1]!;
        this.sessions.pop();
    }

    private route(replica: number, bytes: Uint8Array): void {
        const command = bytes.length >= headerSize ? bytes[Frame.command] : -1;
        let clientOffset = -1;
        if (command === Command.reply) clientOffset = Reply.client;
        if (command === Command.eviction) clientOffset = Eviction.client;
        if (clientOffset !== -1) {
            for (let index = 0; index < this.sessions.length; index++) {
                const session = this.sessions[index]!;
                if (!session.matches(bytes, clientOffset)) continue;
                if (session.handler !== null) session.handler(replica, bytes);
                return;
            }
        }
        this.framesUnrouted++;
    }
}
