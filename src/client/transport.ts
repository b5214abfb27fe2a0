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
// exponential backoff with jitter (reset once a connection opens); per-message deflate is off
// (frames are small and checksummed, and compression costs latency); maxPayload bounds what a
// replica may push at us. Its timers are unref'd: pending client calls keep the process alive,
// an idle transport does not.

import WebSocket from "ws";

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
    private readonly sockets: (WebSocket | null)[] = [];
    private readonly open: boolean[] = [];
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
            this.sockets.push(null);
            this.open.push(false);
            this.attempts.push(0);
            this.timers.push(null);
            this.held.push(null);
        }
        for (let replica = 0; replica < this.replicaCount; replica++) this.connect(replica);
    }

    send(replica: number, bytes: Uint8Array): void {
        const socket = this.sockets[replica] ?? null;
        if (socket !== null && socket.readyState === WebSocket.CONNECTING) {
            this.held[replica] = bytes.slice();
            return;
        }
        if (socket === null || !this.open[replica] || socket.readyState !== WebSocket.OPEN) {
            this.sendsDropped++;
            return;
        }
        // ws masks client frames into a new buffer when the data is not its own (readOnly), so
        // the caller may reuse `bytes` right away.
        socket.send(bytes, { binary: true });
    }

    onMessage(handler: FrameHandler): void {
        this.handler = handler;
    }

    connectedCount(): number {
        let count = 0;
        for (let replica = 0; replica < this.replicaCount; replica++) {
            if (this.open[replica]) count++;
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
            const socket = this.sockets[replica] ?? null;
            this.sockets[replica] = null;
            this.open[replica] = false;
            this.held[replica] = null;
            if (socket !== null) socket.terminate();
        }
    }

    private connect(replica: number): void {
        if (this.closed) return;
        const socket = new WebSocket(this.urls[replica]!, {
            perMessageDeflate: false,
            maxPayload: this.messageSizeMax,
            handshakeTimeout: this.handshakeTimeoutMs,
        });
        socket.binaryType = "nodebuffer";
        this.sockets[replica] = socket;
        socket.on("open", () => {
            if (this.sockets[replica] !== socket) return;
            this.open[replica] = true;
            this.attempts[replica] = 0;
            const held = this.held[replica] ?? null;
            this.held[replica] = null;
            if (held !== null) socket.send(held, { binary: true });
        });
        socket.on("message", (data: WebSocket.RawData, isBinary: boolean) => {
            if (!isBinary || this.sockets[replica] !== socket || this.handler === null) return;
            if (data instanceof Uint8Array) this.handler(replica, data);
        });
        // Connection errors (refused, reset, handshake timeout) are followed by "close", which
        // schedules the re-dial; the listener only keeps them from becoming uncaught.
        socket.on("error", () => {});
        socket.on("close", () => this.onClose(replica, socket));
    }

    private onClose(replica: number, socket: WebSocket): void {
        if (this.sockets[replica] !== socket) return;
        this.sockets[replica] = null;
        this.open[replica] = false;
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
