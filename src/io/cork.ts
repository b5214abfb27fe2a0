// Write coalescing for `ws` connections: the frames sent on a connection during one turn of the
// event loop leave in one write (writev) at the end of that turn instead of one write each.
//
// Why: a replica answering a batch of commits, a backup acknowledging the prepares one disk
// completion made durable, a load generator whose clients each send their next request on
// reading a burst of replies: all send several frames on one connection in one turn. Each
// frame was its own write(2), and on loopback each write also runs the receiver's TCP input
// path in the sender's process (measured at 64 clients: the load generator made 0.95 writes
// per request, the primary 0.2 writes per op to its backups).
//
// How: the first frame a turn sends on a connection corks the connection's net.Socket (node's
// Writable then queues writes in memory) and schedules one setImmediate; that callback (the
// check phase of the same loop iteration: after every I/O callback of this poll, before the
// next poll waits) uncorks every socket it corked, which writes their queues with one writev
// each. So a frame waits at most for the rest of its own turn, never for a timer or the next
// I/O event.
//
// Invariants: a socket is corked by us at most once at a time (nested corks are legal in node,
// but one uncork per cork is what lets the queue flush), every cork is paired with one uncork
// in the next flush, and at most `socketsMax` sockets are corked at once (beyond that a frame
// goes out uncorked: correct, only not coalesced). ws copies every client frame as it masks it
// (see bus.ts: the mask is never zero), so a queued write never reads memory the caller reuses.
// A connection corked here must mask with generateMaskNonZero: ws sends the caller's own bytes,
// unmasked and uncopied, when a mask comes out all zero (once in 2^32 frames with its default).
// `ws` does not expose its net.Socket: it is read from the `_socket` field, and a connection
// without one (not yet open, or closed) is simply not corked.

import { Socket } from "node:net";
import type WebSocket from "ws";
import { assert } from "../stdx/assert.js";

export class TurnCorker {
    private readonly socketsMax: number;
    /** Sockets corked since the last flush: slots 0..count-1. */
    private readonly sockets: Array<Socket | null> = [];
    private count = 0;
    private flushScheduled = false;
    private readonly flushCallback = (): void => this.flush();
    /** Sockets corked (a measure of the writes saved: frames sent minus this). */
    corks = 0;

    constructor(socketsMax: number) {
        assert(Number.isInteger(socketsMax) && socketsMax >= 1);
        this.socketsMax = socketsMax;
        for (let index = 0; index < socketsMax; index++) this.sockets.push(null);
    }

    /** Corks the connection's socket until the end of this turn (if not corked already). */
    cork(connection: WebSocket): void {
        const socket = rawSocketOf(connection);
        if (socket === null || socket.destroyed) return;
        for (let index = 0; index < this.count; index++) {
            if (this.sockets[index] === socket) return;
        }
        if (this.count === this.socketsMax) return;
        socket.cork();
        this.sockets[this.count] = socket;
        this.count++;
        this.corks++;
        if (!this.flushScheduled) {
            this.flushScheduled = true;
            setImmediate(this.flushCallback);
        }
    }

    /** Uncorks every socket corked this turn: each writes its queued frames at once. */
    flush(): void {
        this.flushScheduled = false;
        const count = this.count;
        this.count = 0;
        for (let index = 0; index < count; index++) {
            const socket = this.sockets[index] ?? null;
            assert(socket !== null);
            this.sockets[index] = null;
            socket.uncork();
        }
        assert(this.count === 0);
    }
}

/** The net.Socket under a ws connection, or null while it has none. */
function rawSocketOf(connection: WebSocket): Socket | null {
    const socket = (connection as unknown as { _socket?: unknown })._socket;
    return socket instanceof Socket ? socket : null;
}

// WebSocket masking (client → server) is for browsers behind caching proxies; it does not matter
// between our processes. It does matter that the mask is never zero: ws then sends the caller's
// buffer itself instead of a masked copy, and that buffer may be reused as soon as send returns.
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

/** ws's generateMask option (peer links): a key that is never zero. */
export function generateMaskNonZero(mask: Buffer): void {
    mask.writeUInt32LE(nextMaskNonZero(), 0);
}
