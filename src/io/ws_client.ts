// A WebSocket client link (RFC 6455, binary messages only) over one TCP socket, for processes
// that send and receive many small frames and should not collect garbage for each: the client
// transport (the load generator runs 64 sessions over one link per replica) and a replica's
// links to its peers (bus.ts; uWebSockets.js has no client).
//
// Why not `ws`: per received message ws creates a Buffer view for each of the frame's header
// parts and for the data, an array of fragments and an event; per sent message a new masked
// Buffer and a stream write; node's stream machinery adds a chunk Buffer and a nextTick per
// read. Measured in the load generator (vsr benchmark, 64 clients) that was ~1 KB per request
// and reply, most of its garbage once the client's own calls stopped allocating; at a primary
// sending every prepare and commit to each backup, ws's masked copies and stream writes were
// ~17% of its CPU in the batched benchmark.
//
// How: reads land in one reusable buffer (net.connect's `onread`: no chunk Buffer, no stream),
// are appended to an inbox that holds at least one whole frame, and every complete frame is
// parsed in place; a binary message's payload is copied to a frame buffer and handed to
// onFrame as a view that is made again only when the size changes (valid during the call
// only). Sends are masked into one of two staging buffers; the first send of a turn on any link
// schedules one setImmediate (one per process and turn: each is ~200 bytes of garbage), which
// writes each link's frames of the turn with one write. A staging buffer handed to
// the socket is not written again until that write's callback; a frame that does not fit (or
// finds both buffers in flight) goes out in a buffer of its own, after the staged frames, so
// order is kept and nothing is dropped. So a frame waits at most until the end of the turn that
// sent it, and a turn's frames leave with one write (two when one is too big for a staging
// buffer or both are still being written). bufferedBytes() is what was sent and not yet handed
// to the kernel (staged, or queued in the socket), for a caller's back-pressure bound.
// Masking: each frame gets its own xorshift32 key. Masking guards browsers behind caching
// proxies, not us; a key that is never zero keeps every frame a masked copy.
// Handshake: a plain HTTP/1.1 upgrade; the 101 answer must carry the Sec-WebSocket-Accept of
// our key. TLS (wss://) uses tls.connect and 'data' events (one chunk Buffer per read).
// Received control frames: ping is answered with a pong of the same payload (then onPing, for
// a caller that watches a server's pings to detect a silent peer), pong is ignored, close ends
// the link. Socket errors and protocol errors go to onError before onClose. Protocol errors
// (a masked or fragmented frame, a reserved bit or opcode, a frame above messageSizeMax, a bad
// handshake) end the link and are counted by kind.
// Invariants: onOpen is called at most once and before any onFrame; onClose exactly once,
// after which nothing else is called; a frame is delivered whole or not at all.

import { createHash, randomBytes } from "node:crypto";
import net from "node:net";
import tls from "node:tls";
import { assert } from "../stdx/assert.js";
import { copyBytes } from "../stdx/copy.js";

export interface WsClientHandlers {
    /** The handshake completed: send() works from now on. */
    onOpen(): void;
    /** One binary message; `bytes` is valid only during the call. */
    onFrame(bytes: Uint8Array): void;
    /** The link ended (refused, reset, bad handshake, protocol error, closed). Called once. */
    onClose(): void;
    /** The server pinged us (the pong is on its way). */
    onPing?(): void;
    /** Why the link is about to end (a socket or protocol error); onClose follows. */
    onError?(error: Error): void;
}

export interface WsClientOptions {
    /** ws://host:port/path or wss://… */
    readonly url: string;
    /** Largest message accepted (a larger one ends the link). */
    readonly messageSizeMax: number;
    readonly handshakeTimeoutMs: number;
    /** The link's memory, when the caller keeps it across links (see WsClientBuffers). */
    readonly buffers?: WsClientBuffers;
}

export const WsState = { connecting: 0, open: 1, closed: 2 } as const;
export type WsState = (typeof WsState)[keyof typeof WsState];

/** Why links ended on a protocol error, counted per process (for diagnostics and tests). */
export const wsProtocolErrors = {
    handshake: 0,
    masked: 0,
    fragmented: 0,
    reserved: 0,
    oversize: 0,
};

const opcodeContinuation = 0x0;
const opcodeText = 0x1;
const opcodeBinary = 0x2;
const opcodeClose = 0x8;
const opcodePing = 0x9;
const opcodePong = 0xa;
/** The largest frame header: 2 bytes, an 8-byte length, a 4-byte mask. */
const frameHeaderMax = 14;
const readBufferSize = 64 * 1024;
const handshakeSizeMax = 8 * 1024;
const websocketGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/**
 * A link's memory: a read buffer, the inbox, the frame buffer and two staging buffers (about
 * 4 × messageSizeMax + 128 KiB). A caller that redials (bus.ts's peer links) makes one and hands
 * it to each of its links in turn, so a dial allocates none of it. One link at a time: a link
 * takes the buffers only from a closed one, whose socket is destroyed (no read lands in them,
 * no staged write of it goes out any more) and which touches them no more.
 */
export class WsClientBuffers {
    readonly messageSizeMax: number;
    readonly readBuffer: Buffer;
    readonly inbox: Buffer;
    readonly frameBytes: Buffer;
    readonly staging: [Buffer, Buffer];
    readonly stagingData: [DataView, DataView];
    /** The link using the buffers, if any. */
    owner: WsClientLink | null = null;

    constructor(messageSizeMax: number) {
        assert(Number.isInteger(messageSizeMax) && messageSizeMax > 0);
        this.messageSizeMax = messageSizeMax;
        const frameMax = frameHeaderMax + messageSizeMax;
        this.readBuffer = Buffer.allocUnsafeSlow(readBufferSize);
        this.inbox = Buffer.allocUnsafeSlow(Math.max(frameMax, handshakeSizeMax) + readBufferSize);
        this.frameBytes = Buffer.allocUnsafeSlow(messageSizeMax);
        const stagingSize = Math.max(frameMax, readBufferSize);
        this.staging = [Buffer.allocUnsafeSlow(stagingSize), Buffer.allocUnsafeSlow(stagingSize)];
        this.stagingData = [dataViewOf(this.staging[0]), dataViewOf(this.staging[1])];
    }
}

export class WsClientLink {
    state: WsState = WsState.connecting as WsState;
    /** Frames sent in a buffer of their own (staging full or in flight): allocations. */
    sendsUnstaged = 0;
    /** Socket writes of frames (a turn's staged frames are one; a frame of its own, one). */
    writes = 0;
    /** Text messages received and ignored. */
    textFramesIgnored = 0;
    private readonly handlers: WsClientHandlers;
    private readonly messageSizeMax: number;
    private readonly socket: net.Socket;
    private readonly key: string;
    private readonly handshakeTimer: NodeJS.Timeout;
    /** Bytes received and not yet parsed: inbox[0, inboxFill). Holds a whole frame and a read. */
    private readonly inbox: Buffer;
    private inboxFill = 0;
    /** A binary message's payload, copied out of the inbox for onFrame. */
    private readonly frameBytes: Buffer;
    private frameView: Uint8Array;
    /** Two staging buffers; `staging` is the one being filled. */
    private readonly stagingBuffers: [Buffer, Buffer];
    private readonly stagingInFlight: [boolean, boolean] = [false, false];
    /** Each staging buffer as a DataView, for masking four bytes at a time. */
    private readonly stagingData: [DataView, DataView];
    /** The latest large payload's source and a DataView of it (a replica's arena, say). */
    private sourceBytes: Uint8Array | null = null;
    private sourceData: DataView | null = null;
    /** The latest view written of each staging buffer. */
    private readonly stagingViews: [Buffer, Buffer];
    private staging: 0 | 1 = 0;
    private stagingFill = 0;
    /** In linksStaged, to be flushed at the end of this turn (cleared only there). */
    private flushQueued = false;
    private readonly writtenCallbacks: [() => void, () => void] = [
        () => (this.stagingInFlight[0] = false),
        () => (this.stagingInFlight[1] = false),
    ];

    constructor(options: WsClientOptions, handlers: WsClientHandlers) {
        const url = new URL(options.url);
        assert(url.protocol === "ws:" || url.protocol === "wss:");
        assert(Number.isInteger(options.messageSizeMax) && options.messageSizeMax > 0);
        this.handlers = handlers;
        this.messageSizeMax = options.messageSizeMax;
        const buffers = options.buffers ?? new WsClientBuffers(options.messageSizeMax);
        assert(buffers.messageSizeMax === options.messageSizeMax);
        assert(buffers.owner === null || buffers.owner.isClosed());
        buffers.owner = this;
        this.inbox = buffers.inbox;
        this.frameBytes = buffers.frameBytes;
        this.frameView = this.frameBytes.subarray(0, 0);
        this.stagingBuffers = buffers.staging;
        this.stagingData = buffers.stagingData;
        this.stagingViews = [
            this.stagingBuffers[0].subarray(0, 0),
            this.stagingBuffers[1].subarray(0, 0),
        ];
        this.key = randomBytes(16).toString("base64");
        const host = url.hostname.startsWith("[") ? url.hostname.slice(1, -1) : url.hostname;
        const secure = url.protocol === "wss:";
        const port = url.port === "" ? (secure ? 443 : 80) : Number(url.port);
        const request =
            `GET ${url.pathname}${url.search} HTTP/1.1\r\nHost: ${url.host}\r\n` +
            `Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${this.key}\r\n` +
            `Sec-WebSocket-Version: 13\r\n\r\n`;
        if (secure) {
            this.socket = tls.connect({ host, port, servername: host });
            this.socket.on("data", (chunk: Buffer) => this.onBytes(chunk, chunk.length));
            this.socket.once("secureConnect", () => this.socket.write(request));
        } else {
            this.socket = net.connect({
                host,
                port,
                onread: { buffer: buffers.readBuffer, callback: this.onRead },
            });
            this.socket.once("connect", () => this.socket.write(request));
        }
        this.socket.setNoDelay(true);
        // "close" follows, which ends the link.
        this.socket.on("error", (error: Error) => {
            if (!this.isClosed()) this.handlers.onError?.(error);
        });
        this.socket.on("close", () => this.end());
        this.handshakeTimer = setTimeout(() => this.fail("handshake"), options.handshakeTimeoutMs);
        this.handshakeTimer.unref();
    }

    /**
     * Sends bytes[start, start + size) as one binary message (copied: the bytes may be reused
     * at once); false when not open.
     */
    send(bytes: Uint8Array, start = 0, size = bytes.length - start): boolean {
        if (this.state !== WsState.open) return false;
        assert(start >= 0 && size >= 0 && start + size <= bytes.length);
        assert(size <= this.messageSizeMax);
        this.sendFrame(opcodeBinary, bytes, start, size);
        return true;
    }

    /** Bytes sent and not yet handed to the kernel: staged, or queued in the socket. */
    bufferedBytes(): number {
        return this.stagingFill + this.socket.writableLength;
    }

    /**
     * Ends the link at once (like ws's terminate(): no close handshake, what is queued is
     * discarded): onClose runs before this returns.
     */
    close(): void {
        if (this.state === WsState.closed) return;
        this.socket.destroy();
        this.end(); // Now, not at the socket's close event: nothing is delivered after this.
    }

    /** net's onread callback (bound once): `buffer` is the reusable read buffer. */
    private readonly onRead = (size: number, buffer: Buffer): boolean => {
        this.onBytes(buffer, size);
        return true;
    };

    private onBytes(buffer: Buffer, size: number): void {
        let offset = 0;
        while (offset < size && !this.isClosed()) {
            const room = this.inbox.length - this.inboxFill;
            assert(room > 0); // parse() leaves less than a frame: a read's worth always fits.
            const take = Math.min(room, size - offset);
            copyBytes(this.inbox, this.inboxFill, buffer, offset, take);
            this.inboxFill += take;
            offset += take;
            if (this.state === WsState.connecting) this.parseHandshake();
            if (this.state === WsState.open) this.parseFrames();
        }
    }

    isClosed(): boolean {
        return this.state === WsState.closed;
    }

    private parseHandshake(): void {
        const end = this.inbox.subarray(0, this.inboxFill).indexOf("\r\n\r\n", 0, "latin1");
        if (end === -1) {
            if (this.inboxFill > handshakeSizeMax) this.fail("handshake");
            return;
        }
        const head = this.inbox.toString("latin1", 0, end);
        const lines = head.split("\r\n");
        const accept = createHash("sha1")
            .update(this.key + websocketGuid)
            .digest("base64");
        const acceptLine = lines.find((line) =>
            line.toLowerCase().startsWith("sec-websocket-accept:"),
        );
        const accepted =
            /^HTTP\/1\.1 101 /.test(lines[0] ?? "") &&
            acceptLine !== undefined &&
            acceptLine.slice(acceptLine.indexOf(":") + 1).trim() === accept;
        if (!accepted) return this.fail("handshake");
        this.consume(end + 4);
        clearTimeout(this.handshakeTimer);
        this.state = WsState.open;
        this.handlers.onOpen();
    }

    /** Handles every complete frame in the inbox, then moves the rest to its start. */
    private parseFrames(): void {
        const inbox = this.inbox;
        let offset = 0;
        while (this.state === WsState.open && this.inboxFill - offset >= 2) {
            const first = inbox[offset]!;
            const second = inbox[offset + 1]!;
            const length7 = second & 0x7f;
            const headerSize = 2 + (length7 === 126 ? 2 : length7 === 127 ? 8 : 0);
            if (this.inboxFill - offset < headerSize) break;
            let size = length7;
            if (length7 === 126) size = inbox.readUInt16BE(offset + 2);
            if (length7 === 127) {
                const high = inbox.readUInt32BE(offset + 2);
                size = high > 0 ? Number.MAX_SAFE_INTEGER : inbox.readUInt32BE(offset + 6);
            }
            if ((second & 0x80) !== 0) return this.fail("masked"); // A server never masks.
            if ((first & 0x70) !== 0) return this.fail("reserved"); // No extension negotiated.
            if (size > this.messageSizeMax) return this.fail("oversize");
            if (this.inboxFill - offset < headerSize + size) break;
            this.onFrame(first, offset + headerSize, size);
            offset += headerSize + size;
        }
        if (this.state === WsState.open) this.consume(offset);
    }

    private onFrame(first: number, start: number, size: number): void {
        const opcode = first & 0x0f;
        const fin = (first & 0x80) !== 0;
        if (!fin || opcode === opcodeContinuation) return this.fail("fragmented");
        if (opcode === opcodeBinary) {
            copyBytes(this.frameBytes, 0, this.inbox, start, size);
            if (this.frameView.length !== size) this.frameView = this.frameBytes.subarray(0, size);
            this.handlers.onFrame(this.frameView);
        } else if (opcode === opcodeText) {
            this.textFramesIgnored++;
        } else if (opcode === opcodePing) {
            if (size > 125) return this.fail("oversize"); // Control frames carry ≤ 125 bytes.
            this.sendFrame(opcodePong, this.inbox, start, size);
            this.handlers.onPing?.();
        } else if (opcode === opcodeClose) {
            this.close();
        } else if (opcode !== opcodePong) {
            this.fail("reserved");
        }
    }

    /** Drops inbox[0, size): what is left moves to the start. */
    private consume(size: number): void {
        assert(size <= this.inboxFill);
        if (size === 0) return;
        this.inbox.copyWithin(0, size, this.inboxFill); // In place: no view, unlike copy().
        this.inboxFill -= size;
    }

    private sendFrame(opcode: number, source: Uint8Array, start: number, size: number): void {
        const headerSize = 2 + (size < 126 ? 0 : size < 65536 ? 2 : 8) + 4;
        const frameSize = headerSize + size;
        const buffer = this.stagingBuffers[this.staging];
        const staged =
            !this.stagingInFlight[this.staging] && this.stagingFill + frameSize <= buffer.length;
        if (!staged) {
            // Order: what is staged leaves first. Then this frame, in memory of its own.
            this.flush();
            this.sendsUnstaged++;
            const own = Buffer.allocUnsafe(frameSize);
            const ownData = size < maskWordsSizeMin ? null : dataViewOf(own);
            writeFrame(
                own,
                ownData,
                0,
                opcode,
                source,
                this.sourceDataOf(source, size),
                start,
                size,
            );
            this.socket.write(own);
            this.writes++;
            return;
        }
        const sourceData = this.sourceDataOf(source, size);
        const stagingData = this.stagingData[this.staging];
        writeFrame(buffer, stagingData, this.stagingFill, opcode, source, sourceData, start, size);
        this.stagingFill += frameSize;
        if (!this.flushQueued) {
            this.flushQueued = true;
            queueFlush(this);
        }
    }

    /**
     * A DataView of a large payload's source, kept while the source stays the same (a replica
     * sends every message from its arena): null for a small payload, masked byte by byte.
     */
    private sourceDataOf(source: Uint8Array, size: number): DataView | null {
        if (size < maskWordsSizeMin) return null;
        if (this.sourceBytes !== source || this.sourceData?.buffer !== source.buffer) {
            this.sourceBytes = source;
            this.sourceData = dataViewOf(source);
        }
        return this.sourceData;
    }

    /** The turn's end (flushLinksStaged, once per queued link): writes what is staged. */
    endTurn(): void {
        assert(this.flushQueued);
        this.flushQueued = false;
        this.flush();
    }

    /** Writes the staged frames with one write; the other staging buffer is filled next. */
    private flush(): void {
        if (this.stagingFill === 0 || this.state === WsState.closed) return;
        const index = this.staging;
        assert(!this.stagingInFlight[index]);
        this.stagingInFlight[index] = true;
        // The view is made again only when the size changes (a steady load repeats sizes).
        if (this.stagingViews[index].length !== this.stagingFill) {
            this.stagingViews[index] = this.stagingBuffers[index].subarray(0, this.stagingFill);
        }
        this.socket.write(this.stagingViews[index], this.writtenCallbacks[index]);
        this.writes++;
        this.staging = index === 0 ? 1 : 0;
        this.stagingFill = 0;
    }

    private fail(kind: keyof typeof wsProtocolErrors): void {
        if (this.state === WsState.closed) return;
        wsProtocolErrors[kind]++;
        this.handlers.onError?.(new Error(`websocket protocol error (${kind})`));
        this.socket.destroy();
        this.end();
    }

    private end(): void {
        if (this.state === WsState.closed) return;
        this.state = WsState.closed;
        clearTimeout(this.handshakeTimer);
        this.handlers.onClose();
    }
}

/** Links with frames staged this turn: linksStaged[0, linksStagedCount), each once. */
const linksStaged: Array<WsClientLink | null> = [];
let linksStagedCount = 0;
let linksStagedFlushScheduled = false;

function queueFlush(link: WsClientLink): void {
    // Grows to the most links ever staged in one turn, then never allocates again.
    if (linksStagedCount === linksStaged.length) linksStaged.push(link);
    else linksStaged[linksStagedCount] = link;
    linksStagedCount++;
    if (!linksStagedFlushScheduled) {
        linksStagedFlushScheduled = true;
        setImmediate(flushLinksStaged);
    }
}

/** The end of a turn: each link with staged frames writes them (a write never stages more). */
function flushLinksStaged(): void {
    linksStagedFlushScheduled = false;
    for (let index = 0; index < linksStagedCount; index++) {
        const link = linksStaged[index] ?? null;
        assert(link !== null);
        linksStaged[index] = null;
        link.endTurn();
    }
    linksStagedCount = 0;
}

/** Payloads of this many bytes or more are masked four bytes at a time (4× faster). */
const maskWordsSizeMin = 512;

function dataViewOf(bytes: Uint8Array): DataView {
    return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * A masked frame of `size` payload bytes from source[start..] at target[offset..]. With both
 * DataViews, whole words are masked as little-endian u32s: payload byte i is XORed with key
 * byte i % 4, and key bytes 0..3 read little-endian are one u32.
 */
function writeFrame(
    target: Buffer,
    targetData: DataView | null,
    offset: number,
    opcode: number,
    source: Uint8Array,
    sourceData: DataView | null,
    start: number,
    size: number,
): void {
    let at = offset;
    target[at++] = 0x80 | opcode; // FIN: one frame per message.
    if (size < 126) {
        target[at++] = 0x80 | size;
    } else if (size < 65536) {
        target[at++] = 0x80 | 126;
        target.writeUInt16BE(size, at);
        at += 2;
    } else {
        target[at++] = 0x80 | 127;
        target.writeUInt32BE(0, at);
        target.writeUInt32BE(size, at + 4);
        at += 8;
    }
    assert(at + 4 + size <= target.length);
    const mask = nextMaskNonZero();
    target.writeUInt32BE(mask, at);
    for (let byte = 0; byte < 4; byte++) maskBytes[byte] = target[at + byte]!;
    const maskWord = target.readUInt32LE(at);
    at += 4;
    let index = 0;
    if (targetData !== null && sourceData !== null) {
        for (const end = size - 3; index < end; index += 4) {
            const word = sourceData.getUint32(start + index, true) ^ maskWord;
            targetData.setUint32(at + index, word, true);
        }
    }
    for (; index < size; index++) {
        target[at + index] = source[start + index]! ^ maskBytes[index & 3]!;
    }
}

/** The current frame's masking key, byte by byte (the payload's byte i is XORed with [i % 4]). */
const maskBytes = new Uint8Array(4);

// Never zero: a zero key sends the payload as its plain bytes, which masking exists to avoid.
let maskState = (Math.random() * 0xffff_ffff) >>> 0 || 1;

/** The next masking key: xorshift32, which never reaches zero from a non-zero state. */
export function nextMaskNonZero(): number {
    maskState ^= maskState << 13;
    maskState ^= maskState >>> 17;
    maskState ^= maskState << 5;
    maskState >>>= 0;
    assert(maskState !== 0);
    return maskState;
}
