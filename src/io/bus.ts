// The real message bus: one uWebSockets.js server per replica on addresses[replica], serving
// WebSocket (peers and clients, one message per binary frame) and HTTP (`GET /*` → onHttp), plus
// one outbound link to every other replica (uWebSockets.js has no client: our own WsClientLink,
// src/io/ws_client.ts, which masks a turn's frames into reused staging buffers and writes them
// with one write; `ws` made a masked copy and a stream write per frame, ~17% of a primary's
// CPU in the batched benchmark and most of its young garbage per op).
//
// Dial scheme: every replica dials every other replica and sends only on the link it dialed;
// links it accepts are receive-only. So each ordered pair (i → j) has its own TCP connection,
// owned, reconnected and backed off by the sender alone: no tie-breaking between two replicas
// dialing each other at once, and no question of which of two links to send on (TigerBeetle
// dials only higher indices and shares one link both ways; that saves half the connections but
// needs both ends to agree on the link's state). A dialed link's first frame is a `ping` naming
// the dialer; the acceptor then treats the connection as a peer link for that replica. Like
// TigerBeetle's, the transport has no authentication: run the cluster on a private network.
//
// Roles: an accepted connection's first valid message decides its role. A ping from a replica
// index < replicaCount and not ours makes it a peer link; anything else makes it a client
// connection, which may send only `request` ("a client can never speak as a replica"). The
// client table maps each client id (u128) to the connection that last carried its request
// (128 sets × 8 ways, least recently used evicted), which is where sendToClient sends replies.
//
// Inbound frames: the ArrayBuffer uWS hands us is valid only during the callback. Size bounds are
// checked on the raw frame; then the bytes are copied into a pool message and validated there
// (header checksum, invalidHeader, size field == frame size, cluster, body checksum) before any
// role check or delivery; an invalid message is released at once and never reaches onMessage.
// Validating in the arena rather than in uWS's buffer is deliberate: the checksum's WebAssembly
// kernel hashes only arena memory (12.6 GB/s at 1 MiB vs 2.3 GB/s for the TypeScript fallback,
// see vsr/checksum.ts), and hashing a foreign buffer would allocate a DataView per frame and
// evict the arena from the checksum's view cache. The copy is needed either way.
//
// Invariants: bad input (text frame, bad size, checksum, header, cluster, role) is dropped,
// counted by reason, logged at the 1st, 2nd, 4th, 8th… occurrence, and closes its connection;
// it never throws. A client's well-formed request for another cluster is also answered, with an
// eviction (reason wrongCluster) in our cluster's name, so that client fails at once.
// Sends never block: a message for a closed link or a full send buffer
// (> sendBufferedMax bytes queued) is dropped and counted, since VSR tolerates loss. Sends copy
// the message's bytes synchronously (uWS copies; a peer link masks them into its staging
// buffer or a buffer of the frame's own), so the caller keeps its reference and may reuse
// the message at once. Frames to one peer in one event-loop turn leave in one write (the
// link's staging; a frame too big for it goes out on its own, after what was staged).
// Peer status: a peer_status message (about once a second per link, for the live page) is
// accepted only on a peer link in that peer's name, goes to onPeerStatus and never to the replica.
// Request latency (vsr_request_duration_seconds) is timed here, at the primary: from a client
// request's arrival to the reply sent on its connection.

import { STATUS_CODES } from "node:http";
import type * as Uws from "uWebSockets.js";
import { assert } from "../stdx/assert.js";
import { headerSize, replicasMax } from "../constants.js";
import type { Arena } from "../vsr/arena.js";
import type { MessageBus } from "../vsr/interfaces.js";
import type { Message, MessagePool } from "../vsr/message_pool.js";
import {
    Command,
    Eviction,
    EvictionReason,
    Frame,
    Ping,
    Reply,
    Request,
    commandCount,
    invalidHeader,
    setChecksums,
    u64IsZero,
    validBodyChecksum,
    validHeaderChecksum,
} from "../vsr/header.js";
import type { LogFn } from "./log.js";
import { Histogram, exponentialBounds } from "./metrics.js";
import { type UwsModule, loadUws } from "./uws.js";
import { WsClientBuffers, WsClientLink, WsState } from "./ws_client.js";

export interface HttpAnswer {
    readonly status: number;
    readonly contentType: string;
    readonly body: string;
    /** The Cache-Control header, when the answer may be cached (static assets). */
    readonly cacheControl?: string;
}

/** Receives a peer's valid peer_status report, read in place during the call. */
export type PeerStatusCallback = (replica: number, view: DataView, offset: number) => void;

export interface NodeBusOptions {
    readonly cluster: number;
    readonly replica: number;
    readonly addresses: readonly { readonly host: string; readonly port: number }[];
    readonly pool: MessagePool;
    readonly arena: Pick<Arena, "bytes" | "view">;
    readonly messageSizeMax: number;
    /** A valid inbound message; the bus holds a reference during the call only. */
    readonly onMessage: (message: Message) => void;
    /** Answers `GET <path>`; null means 404. */
    readonly onHttp: (path: string) => HttpAnswer | null;
    /** Peer up/down and drops, as events (see io/log.ts). */
    readonly log: LogFn;
    /** Whether we are the primary now: request latency is timed at the primary only. */
    readonly isPrimary?: () => boolean;
    /**
     * A peer's peer_status report (validated; the sender is the link's replica), read in place
     * during the call. Not given: reports are received, counted and ignored.
     */
    readonly onPeerStatus?: PeerStatusCallback;
    /**
     * How long a dialed link may hear no ping from its peer's server before it is closed and
     * redialed (default linkSilenceMaxMs; tests shorten it).
     */
    readonly linkSilenceMaxMs?: number;
}

/** Request latency buckets: 100 µs doubling to ~3.3 s. */
const requestSecondsBounds = exponentialBounds(0.0001, 2, 16);

export const DropReason = {
    invalidChecksum: 0,
    invalidHeader: 1,
    wrongCluster: 2,
    oversize: 3,
    undersize: 4,
    textFrame: 5,
    clientSentReplicaCommand: 6,
    peerChangedReplica: 7,
    sendQueueFull: 8,
    noLink: 9,
    unknownClient: 10,
    poolExhausted: 11,
    connectionsFull: 12,
} as const;
export type DropReason = (typeof DropReason)[keyof typeof DropReason];

/** Prometheus label of each DropReason, by ordinal. */
export const dropReasonNames: readonly string[] = [
    "invalid_checksum",
    "invalid_header",
    "wrong_cluster",
    "oversize",
    "undersize",
    "text_frame",
    "client_sent_replica_command",
    "peer_changed_replica",
    "send_queue_full",
    "no_link",
    "unknown_client",
    "pool_exhausted",
    "connections_full",
];
const dropReasonCount = dropReasonNames.length;
assert(Object.keys(DropReason).length === dropReasonCount);

/** Which drops are the sender's fault (its connection is closed); the rest are local. */
const dropClosesConnection: readonly boolean[] = dropReasonNames.map(
    (_, reason) =>
        reason !== DropReason.poolExhausted &&
        reason !== DropReason.sendQueueFull &&
        reason !== DropReason.noLink &&
        reason !== DropReason.unknownClient,
);

/** snake_case name of each command ordinal ("" for unused ordinals), for metric labels. */
const commandNames: readonly string[] = buildCommandNames();

function buildCommandNames(): string[] {
    const names: string[] = [];
    for (let command = 0; command < commandCount; command++) names.push("");
    for (const [name, command] of Object.entries(Command)) {
        names[command] = name.replace(/[A-Z]/g, (letter) => `_${letter.toLowerCase()}`);
    }
    return names;
}

/** Resolution of uWS timeouts is 4 s; uWS pings an idle socket about every idleTimeoutS / 2. */
const idleTimeoutS = 8;
/** A dialed link that has heard no ping from its peer's server for this long is dead. */
const linkSilenceMaxMs = 3 * idleTimeoutS * 1000;
const livenessCheckMs = 1000;
const reconnectDelayMinMs = 50;
const reconnectDelayMaxMs = 1000;
/** Accepted WebSocket connections (peers, clients, not yet identified), beyond which we refuse. */
export const connectionsMax = 1024;
/** uSockets' LIBUS_LISTEN_EXCLUSIVE_PORT listen option. */
const listenExclusivePort = 1;
/** Frames a send buffer may hold before messages are dropped (in units of messageSizeMax). */
const sendBufferedMessagesMax = 8;
/** uWS closes a socket whose message exceeds maxPayloadLength, with this close reason. */
const tooBigReason = "Received too big message";

const Role = { pending: 0, peer: 1, client: 2 } as const;
type Role = (typeof Role)[keyof typeof Role];

const accepted = -1;

/** An accepted WebSocket connection (the uWS socket's user data points here). */
export class Connection {
    role: Role = Role.pending;
    /** The peer's replica index when role is peer, else -1. */
    replica = -1;
    socket: Uws.WebSocket<UserData> | null = null;
}

interface UserData {
    readonly connection: Connection;
}

/** Our outbound link to one peer replica. */
class PeerLink {
    readonly replica: number;
    readonly url: string;
    /** Every dial's link uses these (made once: a dial allocates no buffers). */
    readonly buffers: WsClientBuffers;
    socket: WsClientLink | null = null;
    open = false;
    /** Consecutive dials that did not open, for the backoff; 0 after an open. */
    failures = 0;
    dials = 0;
    lastPingMs = 0;
    timer: NodeJS.Timeout | null = null;
    readonly reconnectCallback: () => void;

    constructor(
        replica: number,
        url: string,
        messageSizeMax: number,
        reconnectCallback: () => void,
    ) {
        this.replica = replica;
        this.url = url;
        this.buffers = new WsClientBuffers(messageSizeMax);
        this.reconnectCallback = reconnectCallback;
    }
}

const stageSlots = 128;
/** Frames larger than this go out at once (their write is amortized over their many events). */
const stageSlotSizeMax = 4096;

/**
 * Client-bound frames (replies, evictions) of one event-loop turn, copied aside and sent at the
 * turn's end (setImmediate) with one corked write per connection. A primary committing a batch
 * answers many clients at once, and one shared connection (SharedTransport) carries many of
 * them: sent as they were made, each reply was a write(2) of its own, since the replica runs
 * inside another socket's uWS callback (or an fs callback), where uWS cannot cork this one.
 * Copies, not pool references: the pool is sized without them, and a reply is a few hundred
 * bytes. Fixed slots with one Buffer view each, made again only when the size changes, so the
 * steady state allocates nothing but one Immediate per turn.
 */
class ClientStage {
    private readonly bytes = Buffer.alloc(stageSlots * stageSlotSizeMax);
    private readonly views: Array<Buffer | null> = [];
    private readonly connections: Array<Connection | null> = [];
    count = 0;
    private flushScheduled = false;
    private readonly flushCallback: () => void;

    constructor(flushCallback: () => void) {
        this.flushCallback = flushCallback;
        for (let slot = 0; slot < stageSlots; slot++) {
            this.views.push(null);
            this.connections.push(null);
        }
    }

    /** Copies the frame into a slot for the flush; false when it is too big or none is free. */
    add(connection: Connection, frame: Buffer): boolean {
        const size = frame.length;
        if (size > stageSlotSizeMax || this.count === stageSlots) return false;
        const slot = this.count;
        let view = this.views[slot] ?? null;
        if (view === null || view.length !== size) {
            view = this.bytes.subarray(slot * stageSlotSizeMax, slot * stageSlotSizeMax + size);
            this.views[slot] = view;
        }
        assert(frame.copy(view, 0, 0, size) === size);
        this.connections[slot] = connection;
        this.count++;
        if (!this.flushScheduled) {
            this.flushScheduled = true;
            setImmediate(this.flushCallback);
        }
        return true;
    }

    /** The connection of the first slot not yet taken, or null. */
    nextConnection(): Connection | null {
        for (let slot = 0; slot < this.count; slot++) {
            const connection = this.connections[slot] ?? null;
            if (connection !== null) return connection;
        }
        return null;
    }

    connectionOf(slot: number): Connection | null {
        assert(slot >= 0 && slot < this.count);
        return this.connections[slot] ?? null;
    }

    /** The slot's frame (valid until the next add), marking the slot sent. */
    take(slot: number): Buffer {
        assert(slot >= 0 && slot < this.count && this.connections[slot] !== null);
        this.connections[slot] = null;
        const view = this.views[slot] ?? null;
        assert(view !== null);
        return view;
    }

    clear(): void {
        for (let slot = 0; slot < this.count; slot++) assert(this.connections[slot] === null);
        this.count = 0;
        this.flushScheduled = false;
    }
}

export class BusCounters {
    /** Valid messages received, by command ordinal (pings included). */
    readonly messagesReceived = new Float64Array(commandCount);
    /** Messages handed to a socket, by command ordinal (pings included). */
    readonly messagesSent = new Float64Array(commandCount);
    /** Messages or frames dropped, by DropReason. */
    readonly dropped = new Float64Array(dropReasonCount);
    connectionsAccepted = 0;
    /** Gauges. */
    peerLinksOpen = 0;
    peerConnectionsOpen = 0;
    clientConnectionsOpen = 0;
    pendingConnectionsOpen = 0;
    /** Dials of a peer after its first. */
    reconnects = 0;
}

// Sized so that the sessions a replica keeps (clientsMax: 64 in production) never evict each
// other: 64 random ids over 128 sets average half an id per set, and some set gets 9 or more
// with a probability of about 4e-7. With 64 sets of 4 ways, 5 of 64 random ids shared a set
// in about one run in four: those clients evicted one another, their
// replies were dropped as unknown_client and each call waited for its 600 ms retry (the max of
// 611 ms at 64 clients in compare_etcd.sh and bench_tail.sh).
const clientTableSetBits = 7;
const clientTableWays = 8;
const clientTableEntries = (1 << clientTableSetBits) * clientTableWays;

/**
 * Client id (u128, kept as four u32 words) → the connection that last carried its request, and
 * when that request reached us as primary. Kept per client, not per connection: one connection
 * may carry many clients' sessions (a load generator multiplexes them).
 * Set-associative: 128 sets of 8 ways; a new id evicts the least recently used way of its set.
 * Exported for tests.
 */
export class ClientTable {
    private readonly ids = new Uint32Array(clientTableEntries * 4);
    private readonly connections: Array<Connection | null> = [];
    private readonly usedAt = new Float64Array(clientTableEntries);
    /**
     * Per entry: when the client's oldest unanswered request reached us as primary
     * (performance.now()), 0 when none (one request per session is in flight).
     */
    readonly requestStartedMs = new Float64Array(clientTableEntries);
    private clock = 0;

    constructor() {
        for (let entry = 0; entry < clientTableEntries; entry++) this.connections.push(null);
    }

    /**
     * Records that the client whose id is at view[offset] spoke over `connection`; returns
     * its entry.
     */
    set(view: DataView, offset: number, connection: Connection): number {
        const first = this.setOf(view, offset) * clientTableWays;
        let victim = first;
        for (let entry = first; entry < first + clientTableWays; entry++) {
            if (this.connections[entry] !== null && this.matches(entry, view, offset)) {
                victim = entry;
                break;
            }
            if (this.usedAt[entry]! < this.usedAt[victim]!) victim = entry;
        }
        if (this.connections[victim] === null || !this.matches(victim, view, offset)) {
            this.requestStartedMs[victim] = 0; // A new client in this entry.
        }
        for (let word = 0; word < 4; word++) {
            this.ids[victim * 4 + word] = view.getUint32(offset + word * 4, true);
        }
        this.connections[victim] = connection;
        this.usedAt[victim] = ++this.clock;
        assert(this.matches(victim, view, offset));
        return victim;
    }

    /** The entry of the client whose id is at view[offset], or -1. */
    find(view: DataView, offset: number): number {
        const first = this.setOf(view, offset) * clientTableWays;
        for (let entry = first; entry < first + clientTableWays; entry++) {
            if (this.connections[entry] === null || !this.matches(entry, view, offset)) continue;
            this.usedAt[entry] = ++this.clock;
            return entry;
        }
        return -1;
    }

    connection(entry: number): Connection {
        const connection = this.connections[entry] ?? null;
        assert(connection !== null);
        return connection;
    }

    /** Forgets every client of a closed connection. */
    forget(connection: Connection): void {
        for (let entry = 0; entry < clientTableEntries; entry++) {
            if (this.connections[entry] !== connection) continue;
            this.connections[entry] = null;
            this.usedAt[entry] = 0;
            this.requestStartedMs[entry] = 0;
        }
    }

    private setOf(view: DataView, offset: number): number {
        const mixed =
            view.getUint32(offset, true) ^
            view.getUint32(offset + 4, true) ^
            view.getUint32(offset + 8, true) ^
            view.getUint32(offset + 12, true);
        return Math.imul(mixed, 0x9e3779b1) >>> (32 - clientTableSetBits);
    }

    private matches(entry: number, view: DataView, offset: number): boolean {
        const base = entry * 4;
        return (
            this.ids[base] === view.getUint32(offset, true) &&
            this.ids[base + 1] === view.getUint32(offset + 4, true) &&
            this.ids[base + 2] === view.getUint32(offset + 8, true) &&
            this.ids[base + 3] === view.getUint32(offset + 12, true)
        );
    }
}

export class NodeBus implements MessageBus {
    readonly counters = new BusCounters();
    readonly cluster: number;
    readonly replica: number;
    readonly replicaCount: number;
    readonly messageSizeMax: number;
    readonly sendBufferedMax: number;
    private readonly pool: MessagePool;
    private readonly bytes: Uint8Array;
    private readonly view: DataView;
    private readonly onMessageCallback: (message: Message) => void;
    private readonly onHttpCallback: (path: string) => HttpAnswer | null;
    private readonly log: LogFn;
    private readonly isPrimary: () => boolean;
    private readonly onPeerStatusCallback: PeerStatusCallback;
    /** Client requests at the primary, received to reply sent. */
    readonly requestSeconds = new Histogram(
        "vsr_request_duration_seconds",
        "Client requests at the primary, from receipt to reply sent (batching, replication, " +
            "commit, execution).",
        requestSecondsBounds,
    );
    private readonly uws: UwsModule;
    private readonly app: Uws.TemplatedApp;
    private readonly host: string;
    private readonly port: number;
    private listenSocket: Uws.us_listen_socket | null = null;
    private readonly links: Array<PeerLink | null> = [];
    private readonly connections = new Set<Connection>();
    private readonly clients = new ClientTable();
    /** Our hello to peers, built once (outside the arena: it is sent, never received). */
    private readonly pingBytes = new Uint8Array(headerSize);
    /**
     * Per pool message (by index): a Buffer over its bytes as last sent, kept while its size
     * stays the same. uWS's send needs a view of exactly the frame; a new one per send was
     * ~150 bytes of garbage per message sent. Views never outlive the arena: it never grows.
     */
    private readonly frameViews: Array<Buffer | null> = [];
    /** Client frames of this turn, sent at its end, one write per connection (ClientStage). */
    private readonly stage: ClientStage;
    private flushConnection: Connection | null = null;
    /** Why the last message failed invalidHeader (a constant string), for the drop log. */
    private dropDetail = "";
    private livenessTimer: NodeJS.Timeout | null = null;
    private readonly linkSilenceMaxMs: number;
    private state: "new" | "started" | "closed" = "new";

    constructor(options: NodeBusOptions) {
        const replicaCount = options.addresses.length;
        assert(replicaCount >= 1 && replicaCount <= replicasMax);
        assert(Number.isInteger(options.replica));
        assert(options.replica >= 0 && options.replica < replicaCount);
        assert(Number.isInteger(options.cluster) && options.cluster >= 0);
        assert(options.cluster <= 0xffff_ffff);
        assert(options.messageSizeMax >= headerSize);
        assert(options.messageSizeMax <= options.pool.messageSizeMax);
        this.cluster = options.cluster;
        this.replica = options.replica;
        this.replicaCount = replicaCount;
        this.messageSizeMax = options.messageSizeMax;
        this.sendBufferedMax = sendBufferedMessagesMax * options.messageSizeMax;
        this.pool = options.pool;
        this.bytes = options.arena.bytes;
        this.view = options.arena.view;
        this.onMessageCallback = options.onMessage;
        this.onHttpCallback = options.onHttp;
        this.log = options.log;
        this.isPrimary = options.isPrimary ?? (() => false);
        this.onPeerStatusCallback = options.onPeerStatus ?? (() => undefined);
        this.linkSilenceMaxMs = options.linkSilenceMaxMs ?? linkSilenceMaxMs;
        assert(this.linkSilenceMaxMs > 0);
        const address = options.addresses[options.replica];
        assert(address !== undefined);
        this.host = address.host;
        this.port = address.port;
        for (let replica = 0; replica < replicaCount; replica++) {
            const peer = options.addresses[replica];
            assert(peer !== undefined);
            assert(Number.isInteger(peer.port) && peer.port >= 0 && peer.port <= 0xffff);
            if (replica === this.replica) {
                this.links.push(null);
                continue;
            }
            const url = `ws://${peer.host}:${peer.port}`;
            const link: PeerLink = new PeerLink(replica, url, this.messageSizeMax, () =>
                this.onReconnectTimeout(link),
            );
            this.links.push(link);
        }
        for (let index = 0; index < this.pool.messagesMax; index++) this.frameViews.push(null);
        this.stage = new ClientStage(this.onStageFlush);
        this.buildPing();
        this.uws = loadUws(); // Throws (the node refuses to start) without the native binding.
        this.app = this.buildApp();
    }

    /** Listens on addresses[replica] and starts dialing the peers; throws if it cannot listen. */
    start(): void {
        assert(this.state === "new");
        let listenSocket: Uws.us_listen_socket | false = false;
        // Exclusive: without it uSockets sets SO_REUSEPORT and a second node on the same port
        // would silently share its connections.
        const listen = this.app.listen as unknown as (
            host: string,
            port: number,
            options: number,
            callback: (socket: Uws.us_listen_socket | false) => void,
        ) => void;
        listen.call(this.app, this.host, this.port, listenExclusivePort, (socket) => {
            listenSocket = socket;
        });
        if (listenSocket === false) {
            throw new Error(`cannot listen on ${this.host}:${this.port} (address in use?)`);
        }
        this.listenSocket = listenSocket;
        this.state = "started";
        for (const link of this.links) if (link !== null) this.dial(link);
        this.livenessTimer = setInterval(this.onLivenessTimeout, livenessCheckMs);
    }

    /** The port actually listened on (differs from the address when it was 0). */
    get listenPort(): number {
        assert(this.listenSocket !== null);
        return this.uws.us_socket_local_port(this.listenSocket as Uws.us_socket);
    }

    /** Closes the listen socket, every accepted connection and dialed link; stops reconnects. */
    close(): Promise<void> {
        if (this.state === "closed") return Promise.resolve();
        this.state = "closed";
        if (this.livenessTimer !== null) clearInterval(this.livenessTimer);
        this.livenessTimer = null;
        for (const link of this.links) {
            if (link === null) continue;
            if (link.timer !== null) clearTimeout(link.timer);
            link.timer = null;
            link.socket?.close(); // Its onClose runs now: no redial, the bus is closed.
            assert(link.socket === null && !link.open);
        }
        if (this.listenSocket !== null) this.uws.us_listen_socket_close(this.listenSocket);
        this.listenSocket = null;
        for (const connection of Array.from(this.connections)) connection.socket?.close();
        assert(this.connections.size === 0);
        return Promise.resolve();
    }

    sendToReplica(replica: number, message: Message): void {
        assert(replica !== this.replica); // Sending to ourselves is the replica's bug.
        assert(replica >= 0 && replica < this.replicaCount);
        const size = this.outboundSize(message);
        const link = this.links[replica];
        assert(link !== null && link !== undefined);
        const socket = link.socket;
        if (!link.open || socket === null || socket.state !== WsState.open) {
            this.drop(DropReason.noLink);
            return;
        }
        if (socket.bufferedBytes() + size > this.sendBufferedMax) {
            this.drop(DropReason.sendQueueFull);
            return;
        }
        // Masked into the link's staging: this turn's frames to the peer leave in one write.
        const sent = socket.send(this.bytes, message.offset, size);
        assert(sent); // The link is open: checked above.
        this.counters.messagesSent[this.view.getUint8(message.offset + Frame.command)]! += 1;
    }

    /**
     * Sends a peer_status header (built by the caller outside the arena, checksummed) on every
     * open link; off the protocol's path: about once a second. Returns the links it went on.
     */
    sendPeerStatus(bytes: Uint8Array, view: DataView): number {
        assert(bytes.length === headerSize);
        assert(view.getUint8(Frame.command) === Command.peerStatus);
        assert(view.getUint8(Frame.replica) === this.replica);
        assert(view.getUint32(Frame.cluster, true) === this.cluster);
        let sent = 0;
        for (const link of this.links) {
            const socket = link === null ? null : link.socket;
            if (link === null || socket === null || !link.open) continue;
            if (socket.state !== WsState.open) continue;
            if (socket.bufferedBytes() + headerSize > this.sendBufferedMax) {
                this.drop(DropReason.sendQueueFull);
                continue;
            }
            // Masked into a copy: the caller's bytes stay intact.
            const queued = socket.send(bytes);
            assert(queued);
            this.counters.messagesSent[Command.peerStatus]! += 1;
            sent++;
        }
        return sent;
    }

    sendToClient(message: Message): void {
        const size = this.outboundSize(message);
        const command = this.view.getUint8(message.offset + Frame.command);
        assert(command === Command.reply || command === Command.eviction);
        const clientOffset =
            message.offset + (command === Command.reply ? Reply.client : Eviction.client);
        const entry = this.clients.find(this.view, clientOffset);
        const connection = entry === -1 ? null : this.clients.connection(entry);
        const socket = connection === null ? null : connection.socket;
        if (socket === null) {
            this.drop(DropReason.unknownClient);
            return;
        }
        assert(connection !== null && connection.role === Role.client);
        const frame = this.frameView(message, size);
        if (!this.stage.add(connection, frame)) {
            this.sendToConnection(connection, frame); // Too big or the stage is full: now.
        }
        const startedMs = this.clients.requestStartedMs[entry]!;
        this.clients.requestStartedMs[entry] = 0;
        if (command === Command.reply && startedMs !== 0) {
            this.requestSeconds.observe((performance.now() - startedMs) / 1000);
        }
    }

    /** Sends a frame on a client connection now, or drops it (closed, or its buffer full). */
    private sendToConnection(connection: Connection, frame: Uint8Array): void {
        const socket = connection.socket;
        if (socket === null) {
            this.drop(DropReason.unknownClient); // Closed since the frame was staged.
            return;
        }
        if (socket.getBufferedAmount() + frame.length > this.sendBufferedMax) {
            this.drop(DropReason.sendQueueFull);
            return;
        }
        if (socket.send(frame, true, false) === 2) {
            this.drop(DropReason.sendQueueFull); // Over uWS's maxBackpressure: dropped.
            return;
        }
        this.counters.messagesSent[frame[Frame.command]!]! += 1;
    }

    /**
     * Sends every staged frame, one corked write per connection. Runs from setImmediate, where
     * no uWS socket is corked, so each connection's cork takes effect.
     */
    private readonly onStageFlush = (): void => {
        const stage = this.stage;
        let connection = stage.nextConnection();
        while (connection !== null) {
            const socket = connection.socket;
            this.flushConnection = connection;
            if (socket === null) this.flushConnectionStaged();
            else socket.cork(this.flushConnectionStaged);
            this.flushConnection = null;
            connection = stage.nextConnection();
        }
        stage.clear();
    };

    /** Sends the staged frames of flushConnection (inside its socket's cork). */
    private readonly flushConnectionStaged = (): void => {
        const connection = this.flushConnection;
        assert(connection !== null);
        const stage = this.stage;
        for (let slot = 0; slot < stage.count; slot++) {
            if (stage.connectionOf(slot) !== connection) continue;
            this.sendToConnection(connection, stage.take(slot));
        }
    };

    /** The counters in Prometheus text exposition format. */
    metricsText(): string {
        const counters = this.counters;
        const lines: string[] = [];
        const family = (name: string, type: string, help: string): void => {
            lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
        };
        family("vsr_messages_received_total", "counter", "Valid messages received by command.");
        for (let command = 0; command < commandCount; command++) {
            const label = commandNames[command];
            if (label === "" || label === undefined) continue;
            const count = counters.messagesReceived[command];
            lines.push(`vsr_messages_received_total{command="${label}"} ${count}`);
        }
        family("vsr_messages_sent_total", "counter", "Messages sent by command.");
        for (let command = 0; command < commandCount; command++) {
            const label = commandNames[command];
            if (label === "" || label === undefined) continue;
            const count = counters.messagesSent[command];
            lines.push(`vsr_messages_sent_total{command="${label}"} ${count}`);
        }
        family("vsr_messages_dropped_total", "counter", "Frames or messages dropped by reason.");
        for (let reason = 0; reason < dropReasonCount; reason++) {
            const count = counters.dropped[reason];
            lines.push(`vsr_messages_dropped_total{reason="${dropReasonNames[reason]}"} ${count}`);
        }
        family("vsr_connections_open", "gauge", "Open connections by kind.");
        lines.push(
            `vsr_connections_open{kind="peer_outbound"} ${counters.peerLinksOpen}`,
            `vsr_connections_open{kind="peer_inbound"} ${counters.peerConnectionsOpen}`,
            `vsr_connections_open{kind="client"} ${counters.clientConnectionsOpen}`,
            `vsr_connections_open{kind="pending"} ${counters.pendingConnectionsOpen}`,
        );
        family("vsr_connections_accepted_total", "counter", "WebSocket connections accepted.");
        lines.push(`vsr_connections_accepted_total ${counters.connectionsAccepted}`);
        family("vsr_peer_reconnects_total", "counter", "Dials of a peer after the first.");
        lines.push(`vsr_peer_reconnects_total ${counters.reconnects}`);
        this.requestSeconds.writeFamily(lines);
        return lines.join("\n") + "\n";
    }

    // -----------------------------------------------------------------------------------------
    // Server side: uWS callbacks, bound once here.

    private buildApp(): Uws.TemplatedApp {
        const app = this.uws.App();
        app.ws<UserData>("/*", {
            compression: this.uws.DISABLED,
            maxPayloadLength: this.messageSizeMax,
            idleTimeout: idleTimeoutS,
            // uWS drops a send beyond this; sendToClient checks its own, lower bound first.
            maxBackpressure: this.sendBufferedMax + this.messageSizeMax,
            closeOnBackpressureLimit: 0,
            sendPingsAutomatically: true,
            upgrade: this.onUpgrade,
            open: this.onSocketOpen,
            message: this.onSocketMessage,
            close: this.onSocketClose,
        });
        app.get("/*", this.onHttpGet);
        app.any("/*", this.onHttpOther);
        return app;
    }

    private readonly onUpgrade = (
        response: Uws.HttpResponse,
        request: Uws.HttpRequest,
        context: Uws.us_socket_context_t,
    ): void => {
        if (this.connections.size >= connectionsMax || this.state !== "started") {
            if (this.state === "started") this.drop(DropReason.connectionsFull);
            response.writeStatus("503 Service Unavailable").end("too many connections\n", true);
            return;
        }
        const userData: UserData = { connection: new Connection() };
        response.upgrade(
            userData,
            request.getHeader("sec-websocket-key"),
            request.getHeader("sec-websocket-protocol"),
            request.getHeader("sec-websocket-extensions"),
            context,
        );
    };

    private readonly onSocketOpen = (socket: Uws.WebSocket<UserData>): void => {
        const connection = socket.getUserData().connection;
        assert(connection.socket === null && connection.role === Role.pending);
        connection.socket = socket;
        this.connections.add(connection);
        this.counters.connectionsAccepted++;
        this.counters.pendingConnectionsOpen++;
    };

    private readonly onSocketClose = (
        socket: Uws.WebSocket<UserData>,
        code: number,
        reason: ArrayBuffer,
    ): void => {
        const connection = socket.getUserData().connection;
        assert(connection.socket === socket);
        assert(this.connections.delete(connection));
        connection.socket = null;
        if (connection.role === Role.pending) this.counters.pendingConnectionsOpen--;
        if (connection.role === Role.peer) this.counters.peerConnectionsOpen--;
        if (connection.role === Role.client) {
            this.counters.clientConnectionsOpen--;
            this.clients.forget(connection);
        }
        if (connection.role === Role.peer) {
            const peer = connection.replica;
            this.log(`bus: peer ${peer} link closed`, "peer_down", "warn", { peer, link: "in" });
        }
        if (code === 1006 && Buffer.from(reason).toString() === tooBigReason) {
            this.drop(DropReason.oversize); // uWS closed it: frame > maxPayloadLength.
        }
    };

    private readonly onSocketMessage = (
        socket: Uws.WebSocket<UserData>,
        data: ArrayBuffer,
        isBinary: boolean,
    ): void => {
        const connection = socket.getUserData().connection;
        assert(connection.socket === socket);
        const result = this.receive(connection, data, isBinary);
        if (result === accepted) return;
        this.drop(result);
        if (dropClosesConnection[result] && connection.socket !== null) connection.socket.close();
    };

    private readonly onHttpGet = (response: Uws.HttpResponse, request: Uws.HttpRequest): void => {
        const answer = this.onHttpCallback(request.getUrl());
        if (answer === null) {
            response
                .writeStatus("404 Not Found")
                .writeHeader("content-type", "text/plain; charset=utf-8")
                .end("not found\n");
            return;
        }
        const statusText = STATUS_CODES[answer.status] ?? "Unknown";
        response
            .writeStatus(`${answer.status} ${statusText}`)
            .writeHeader("content-type", answer.contentType);
        if (answer.cacheControl !== undefined) {
            response.writeHeader("cache-control", answer.cacheControl);
        }
        response.end(answer.body);
    };

    private readonly onHttpOther = (response: Uws.HttpResponse): void => {
        response
            .writeStatus("405 Method Not Allowed")
            .writeHeader("allow", "GET")
            .end("method not allowed\n");
    };

    // -----------------------------------------------------------------------------------------
    // Inbound messages.

    /** Returns `accepted` or the DropReason. Never throws on input. */
    private receive(connection: Connection, data: ArrayBuffer, isBinary: boolean): number {
        if (!isBinary) return DropReason.textFrame;
        const size = data.byteLength;
        if (size < headerSize) return DropReason.undersize;
        if (size > this.messageSizeMax) return DropReason.oversize; // uWS enforces it too.
        if (this.pool.free === 0) return DropReason.poolExhausted;
        const message = this.pool.acquire();
        this.bytes.set(new Uint8Array(data), message.offset);
        let result = this.validate(message.offset, size);
        if (result === accepted) result = this.route(connection, message);
        if (result === DropReason.wrongCluster) this.rejectWrongCluster(connection, message.offset);
        this.pool.unref(message);
        return result;
    }

    /** Validates the message at `offset`, `size` bytes as framed, before anything reads it. */
    private validate(offset: number, size: number): number {
        if (!validHeaderChecksum(this.bytes, offset)) {
            this.dropDetail = "header checksum";
            return DropReason.invalidChecksum;
        }
        const reason = invalidHeader(this.view, offset, this.messageSizeMax);
        if (reason !== null) {
            this.dropDetail = reason;
            return DropReason.invalidHeader;
        }
        if (this.view.getUint32(offset + Frame.size, true) !== size) {
            this.dropDetail = "size field != frame size";
            return DropReason.invalidHeader;
        }
        if (this.view.getUint32(offset + Frame.cluster, true) !== this.cluster) {
            return DropReason.wrongCluster;
        }
        if (!validBodyChecksum(this.bytes, offset, size)) {
            this.dropDetail = "body checksum";
            return DropReason.invalidChecksum;
        }
        return accepted;
    }

    /**
     * Answers a client's request for another cluster with an eviction (reason wrongCluster) in
     * our cluster's name, then ends the connection gracefully (so the answer is flushed first),
     * rather than leaving the client to time out. Built in place over the request: Eviction.client
     * and Eviction.session sit where Request.client and Request.session do; everything else is
     * rewritten. A peer link is never answered: a replica of another cluster is a config error
     * for its operator, logged by the drop.
     */
    private rejectWrongCluster(connection: Connection, offset: number): void {
        const socket = connection.socket;
        if (socket === null || connection.role === Role.peer) return;
        if (this.view.getUint8(offset + Frame.command) !== Command.request) return;
        assert(Eviction.client === Request.client && Eviction.session === Request.session);
        this.bytes.fill(0, offset, offset + Eviction.client);
        this.bytes.fill(0, offset + Eviction.reason, offset + headerSize);
        this.view.setUint32(offset + Frame.cluster, this.cluster, true);
        this.view.setUint32(offset + Frame.size, headerSize, true);
        this.view.setUint8(offset + Frame.command, Command.eviction);
        this.view.setUint8(offset + Frame.replica, this.replica);
        this.view.setUint8(offset + Eviction.reason, EvictionReason.wrongCluster);
        setChecksums(this.bytes, this.view, offset);
        assert(invalidHeader(this.view, offset, this.messageSizeMax) === null);
        socket.send(this.bytes.subarray(offset, offset + headerSize), true, false);
        this.counters.messagesSent[Command.eviction]! += 1;
        socket.end(1008, "wrong cluster"); // Policy violation; the close handler clears socket.
    }

    /** Applies the connection's role rules to a valid message and delivers it. */
    private route(connection: Connection, message: Message): number {
        const command = this.view.getUint8(message.offset + Frame.command);
        if (command === Command.ping) {
            // A hello (time zero) names the peer; a clock ping also goes to the replica.
            const result = this.onPing(connection, message.offset);
            const hello = u64IsZero(this.view, message.offset + Ping.pingMonotonicUs);
            if (result === accepted && !hello) this.onMessageCallback(message);
            return result;
        }
        if (command === Command.peerStatus) return this.onPeerStatus(connection, message.offset);
        if (connection.role === Role.pending) this.becomeClient(connection);
        if (connection.role === Role.client) {
            if (command !== Command.request) return DropReason.clientSentReplicaCommand;
            const entry = this.clients.set(this.view, message.offset + Request.client, connection);
            if (this.clients.requestStartedMs[entry] === 0 && this.isPrimary()) {
                this.clients.requestStartedMs[entry] = performance.now();
            }
        }
        this.counters.messagesReceived[command]! += 1;
        this.onMessageCallback(message);
        assert(message.references > 0);
        return accepted;
    }

    private onPing(connection: Connection, offset: number): number {
        const replica = this.view.getUint8(offset + Frame.replica);
        if (connection.role === Role.pending) {
            if (replica >= this.replicaCount || replica === this.replica) {
                this.becomeClient(connection);
                return DropReason.clientSentReplicaCommand;
            }
            connection.role = Role.peer;
            connection.replica = replica;
            this.counters.pendingConnectionsOpen--;
            this.counters.peerConnectionsOpen++;
            const fields = { peer: replica, link: "in" };
            this.log(`bus: peer ${replica} connected`, "peer_up", "info", fields);
        }
        if (connection.role === Role.client) return DropReason.clientSentReplicaCommand;
        assert(connection.role === Role.peer);
        if (replica !== connection.replica) return DropReason.peerChangedReplica;
        this.counters.messagesReceived[Command.ping]! += 1;
        return accepted;
    }

    /** A peer's status report: only on a peer link, in that peer's name; never to the replica. */
    private onPeerStatus(connection: Connection, offset: number): number {
        if (connection.role === Role.pending) this.becomeClient(connection);
        if (connection.role === Role.client) return DropReason.clientSentReplicaCommand;
        assert(connection.role === Role.peer);
        const replica = this.view.getUint8(offset + Frame.replica);
        if (replica !== connection.replica) return DropReason.peerChangedReplica;
        this.counters.messagesReceived[Command.peerStatus]! += 1;
        this.onPeerStatusCallback(replica, this.view, offset);
        return accepted;
    }

    private becomeClient(connection: Connection): void {
        assert(connection.role === Role.pending);
        connection.role = Role.client;
        this.counters.pendingConnectionsOpen--;
        this.counters.clientConnectionsOpen++;
    }

    private drop(reason: number): void {
        assert(reason >= 0 && reason < dropReasonCount);
        const count = ++this.counters.dropped[reason]!;
        // Logged at the 1st, 2nd, 4th, 8th… occurrence of each reason: seen, never a flood.
        if ((count & (count - 1)) !== 0) return;
        const detail = reason === DropReason.invalidHeader ? ` (${this.dropDetail})` : "";
        const name = dropReasonNames[reason]!;
        this.log(`bus: dropped ${name}${detail}, ${count} so far`, "message_dropped", "warn", {
            reason: name,
            count,
            rate_limited: true, // Logged at powers of two only.
        });
    }

    /** The byte size of an outbound message, with its frame checked (the pair of validate()). */
    private outboundSize(message: Message): number {
        assert(this.pool.owns(message) && message.references > 0);
        const size = this.view.getUint32(message.offset + Frame.size, true);
        assert(size >= headerSize && size <= this.messageSizeMax);
        assert(this.view.getUint32(message.offset + Frame.cluster, true) === this.cluster);
        assert(validHeaderChecksum(this.bytes, message.offset));
        return size;
    }

    /** The message's first `size` bytes as a Buffer over the arena (see frameViews). */
    private frameView(message: Message, size: number): Buffer {
        let view = this.frameViews[message.index] ?? null;
        if (view === null || view.length !== size) {
            const bytes = this.bytes;
            view = Buffer.from(bytes.buffer, bytes.byteOffset + message.offset, size);
            this.frameViews[message.index] = view;
        }
        assert(view.byteOffset === this.bytes.byteOffset + message.offset);
        return view;
    }

    // -----------------------------------------------------------------------------------------
    // Outbound links to peers (WsClientLink).

    private buildPing(): void {
        const view = new DataView(this.pingBytes.buffer);
        view.setUint32(Frame.cluster, this.cluster, true);
        view.setUint32(Frame.size, headerSize, true);
        view.setUint8(Frame.command, Command.ping);
        view.setUint8(Frame.replica, this.replica);
        setChecksums(this.pingBytes, view, 0);
        assert(invalidHeader(view, 0, this.messageSizeMax) === null);
        assert(validHeaderChecksum(this.pingBytes, 0));
    }

    private dial(link: PeerLink): void {
        assert(this.state === "started");
        assert(link.socket === null && link.timer === null && !link.open);
        if (link.dials > 0) this.counters.reconnects++;
        link.dials++;
        // Handlers are made per dial: dials are rare (backed off), never on the message path.
        const socket: WsClientLink = new WsClientLink(
            {
                url: link.url,
                messageSizeMax: this.messageSizeMax,
                handshakeTimeoutMs: 2 * reconnectDelayMaxMs,
                buffers: link.buffers,
            },
            {
                onOpen: () => this.onLinkOpen(link, socket),
                // A peer sends on the link it dialed, never on this one: nothing to deliver.
                onFrame: () => {},
                onClose: () => this.onLinkClose(link, socket),
                onError: (error: Error) => this.onLinkError(link, error),
                onPing: () => {
                    link.lastPingMs = Date.now();
                },
            },
        );
        link.socket = socket;
    }

    private onLinkOpen(link: PeerLink, socket: WsClientLink): void {
        if (link.socket !== socket || this.state !== "started") return;
        assert(!link.open);
        link.open = true;
        link.failures = 0;
        link.lastPingMs = Date.now();
        this.counters.peerLinksOpen++;
        const sent = socket.send(this.pingBytes); // Masked into a copy: pingBytes stays intact.
        assert(sent);
        this.counters.messagesSent[Command.ping]! += 1;
        const fields = { peer: link.replica, link: "out" };
        this.log(`bus: link to replica ${link.replica} open`, "peer_up", "info", fields);
    }

    private onLinkClose(link: PeerLink, socket: WsClientLink): void {
        if (link.socket !== socket) return;
        link.socket = null;
        if (link.open) {
            link.open = false;
            this.counters.peerLinksOpen--;
            const fields = { peer: link.replica, link: "out" };
            this.log(`bus: link to replica ${link.replica} closed`, "peer_down", "warn", fields);
        } else {
            link.failures++;
        }
        if (this.state !== "started") return;
        // Exponential backoff with jitter: ceiling 50 ms · 2^failures, then a uniform draw in
        // [ceiling, 2 · ceiling), clamped to 1 s. E.g. failures = 3: 400 ms ≤ delay < 800 ms.
        const ceilingMs = reconnectDelayMinMs * 2 ** Math.min(link.failures, 10);
        const delayMs = Math.min(reconnectDelayMaxMs, ceilingMs * (1 + Math.random()));
        assert(delayMs >= reconnectDelayMinMs && delayMs <= reconnectDelayMaxMs);
        link.timer = setTimeout(link.reconnectCallback, delayMs);
    }

    private onLinkError(link: PeerLink, error: Error): void {
        // A close event follows every error; only the first failure of an outage is logged.
        if (link.open || link.failures === 0) {
            const message = `bus: link to replica ${link.replica}: ${error.message}`;
            this.log(message, "peer_error", "warn", { peer: link.replica, link: "out" });
        }
    }

    private onReconnectTimeout(link: PeerLink): void {
        link.timer = null;
        if (this.state === "started") this.dial(link);
    }

    /** uWS pings an idle peer link every idleTimeoutS / 2; silence means a dead peer or path. */
    private readonly onLivenessTimeout = (): void => {
        const nowMs = Date.now();
        for (const link of this.links) {
            if (link === null || !link.open || link.socket === null) continue;
            if (nowMs - link.lastPingMs <= this.linkSilenceMaxMs) continue;
            const message = `bus: link to replica ${link.replica} silent, reconnecting`;
            this.log(message, "peer_down", "warn", { peer: link.replica, link: "out" });
            link.socket.close(); // Its onClose, now, schedules the redial.
        }
    };
}
