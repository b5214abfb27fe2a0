// The wire format: every message is a 256-byte little-endian header followed by a body of
// `size - 256` bytes. The same header layout is the WAL's prepare header, so a backup journals a
// primary's prepare byte for byte. Fields live at fixed offsets (asserted below to tile the 256
// bytes without overlap); reserved and padding bytes must be zero, so a stale buffer can never
// "bleed" into a valid message.
//
// Frame (bytes 0..128), shared by every command:
//   0 checksum u128 (covers bytes 16..256)   16 checksum padding (zero)
//  32 checksum_body u128 (covers the body)   48 checksum_body padding (zero)
//  64 nonce reserved (zero)                   80 cluster u32, 84..96 reserved
//  96 size u32    100 epoch u32 (zero)    104 view u32    108 release u32
// 112 protocol u16 (zero)   114 command u8   115 replica u8   116..128 reserved
// Bytes 128..256 belong to the command; see the per-command offset tables.
//
// u64 fields are read as two u32 halves into a `number` asserted ≤ 2^53 (no BigInt); u128 fields
// stay bytes and are compared in place.

import { assert } from "../stdx/assert.js";
import {
    batchEntryHeaderSize,
    headerSize,
    kvEventSize,
    replicasMax,
    sectorSize,
} from "../constants.js";
import { checksum, checksumEquals } from "./checksum.js";

export const Command = {
    reserved: 0,
    /**
     * Replica to replica, every ping interval: carries the sender's monotonic time for clock
     * sync. The message bus also sends one, with a zero time, as its connection hello.
     */
    ping: 1,
    /** The answer to a ping: echoes its monotonic time and adds the responder's wall clock. */
    pong: 2,
    request: 5,
    prepare: 6,
    prepareOk: 7,
    reply: 8,
    commit: 9,
    startViewChange: 10,
    doViewChange: 11,
    startView: 12,
    requestHeaders: 14,
    requestPrepare: 15,
    headers: 16,
    eviction: 17,
    /** State sync: ask a peer for part of its latest checkpoint. */
    requestSync: 18,
    /** State sync: a chunk of a checkpoint (KV image, client table, replies as one stream). */
    sync: 19,
    /** Reply repair: ask a peer for a session's latest reply (lost from this replica's disk). */
    requestReply: 20,
    /** Block repair: ask a peer for a grid block by (address, checksum). */
    requestBlock: 21,
    /** Block repair: a chunk of a grid block (the body), as request_block named it. */
    block: 22,
    /**
     * Replica to replica, about once a second, outside the protocol: the sender's status for the
     * live cluster page (src/web). The message bus consumes it; the replica never sees it.
     * Ordinal 30 keeps clear of ordinals the protocol may take next.
     */
    peerStatus: 30,
} as const;
export type Command = (typeof Command)[keyof typeof Command];
export const commandCount = 31; // One past the highest ordinal.

/** Operations below 128 belong to VSR; the state machine's start at 128. */
export const Operation = {
    reserved: 0,
    root: 1,
    register: 2,
    batch: 3,
    kv: 128,
} as const;

export const EvictionReason = {
    noSession: 1,
    sessionTooLow: 2,
    invalidRequest: 3,
    /**
     * The request named another cluster. Sent by the message bus, not the replica: the eviction's
     * Frame.cluster is the replica's own cluster (so the client can say which one it reached),
     * and a client of that other cluster drops it as usual (older clients simply time out).
     */
    wrongCluster: 4,
} as const;
const evictionReasonMax = EvictionReason.wrongCluster;

export const Frame = {
    checksum: 0,
    checksumPadding: 16,
    checksumBody: 32,
    checksumBodyPadding: 48,
    nonceReserved: 64,
    cluster: 80,
    clusterReserved: 84,
    size: 96,
    epoch: 100,
    view: 104,
    release: 108,
    protocol: 112,
    command: 114,
    replica: 115,
    reserved: 116,
    custom: 128,
} as const;

/** A prepare: the WAL entry, also the repair answer. Body = batch entries (see vsr/batch.ts). */
export const Prepare = {
    parent: 128, // u128: checksum of the prepare at op - 1 (the hash chain).
    op: 144, // u64
    commit: 152, // u64: the primary's commit number when it prepared this op.
    timestamp: 160, // u64: strictly increasing across ops.
    requestCount: 168, // u32: client requests batched into this prepare.
    operation: 172, // u8: root or batch.
    reserved: 173,
} as const;

export const PrepareOk = { prepareChecksum: 128, op: 144, commitMin: 152, reserved: 160 } as const;

export const Request = {
    client: 128,
    session: 144,
    request: 152,
    operation: 156,
    reserved: 157,
} as const;

export const Reply = {
    requestChecksum: 128,
    client: 144,
    op: 160, // u64: the op of the prepare that committed the request.
    commit: 168,
    session: 176,
    request: 184,
    operation: 188,
    reserved: 189,
} as const;

export const Commit = { commitChecksum: 128, commit: 144, reserved: 152 } as const;
export const StartViewChange = { reserved: 128 } as const;
/**
 * Body: the log suffix as headers, newest first, from headersOp down. Bit i of a bitset is body
 * header i. Ops in (headersOp, op] are the sender's unknown head: faulty slots it may have
 * acknowledged but cannot name. logViewOp: its head when log_view's log was installed.
 */
export const DoViewChange = {
    op: 128,
    commitMax: 136,
    logView: 144,
    nackBitset: 148,
    presentBitset: 152,
    headersOp: 156,
    logViewOp: 164,
    reserved: 172,
} as const;
/** Body: the new view's log suffix as headers, newest first. */
export const StartView = { op: 128, commitMax: 136, reserved: 144 } as const;
export const RequestHeaders = { opMin: 128, opMax: 136, reserved: 144 } as const;
export const RequestPrepare = { prepareChecksum: 128, prepareOp: 144, reserved: 152 } as const;
export const Headers = { reserved: 128 } as const;
/** pingMonotonicUs: the sender's monotonic clock when it sent the ping (0: a bus hello). */
export const Ping = { pingMonotonicUs: 128, reserved: 136 } as const;
/** The ping's monotonic time echoed, and the responder's wall clock when it answered. */
export const Pong = { pingMonotonicUs: 128, pongRealtimeUs: 136, reserved: 144 } as const;
/**
 * The sender's view is Frame.view. status: 0 normal, 1 view change, 2 recovering; primary: 1 when
 * primary in normal status. Latency (µs, 0: none) and the count cover requests this replica
 * answered as primary since its previous report.
 */
export const PeerStatus = {
    logView: 128,
    status: 132,
    primary: 133,
    padding: 134,
    op: 136,
    commitMin: 144,
    commitMax: 152,
    checkpointOp: 160,
    requestLatencyUsP50: 168,
    requestLatencyUsP99: 172,
    requestsReplied: 176,
    reserved: 180,
} as const;
/** commitMin: the requester's (it needs a checkpoint above it); offset: the stream byte wanted. */
export const RequestSync = { commitMin: 128, offset: 136, reserved: 144 } as const;
/**
 * A chunk of the checkpoint at checkpointOp: body = stream bytes [offset, offset + body size).
 * Its identity: the checksums of its block index (which names every block's checksum, so the
 * image), of its client table, and of the prepare at checkpointOp.
 */
export const Sync = {
    checkpointOp: 128,
    offset: 136,
    streamSize: 144,
    indexChecksum: 152,
    sessionsChecksum: 168,
    anchorChecksum: 184, // The checksum of the prepare at checkpointOp.
    reserved: 200,
} as const;
/** The client whose latest reply (of the op at replyOp) is wanted; answered with that reply. */
export const RequestReply = { client: 128, replyOp: 144, reserved: 152 } as const;
/**
 * The grid block wanted: the checksum its block index names (u128) and its address. Answered
 * with `block` chunks only by a replica whose disk holds exactly that block.
 */
export const RequestBlock = { blockChecksum: 128, address: 144, reserved: 148 } as const;
/**
 * A chunk of the grid block at `address` whose checksum is blockChecksum: body = block bytes
 * [offset, offset + body size) of a block of blockSize bytes. A block larger than a message
 * body (4 KiB blocks in 4 KiB messages: the test preset) comes as several chunks; 64 KiB blocks
 * in 128 KiB messages (production) as one.
 */
export const Block = {
    blockChecksum: 128,
    address: 144,
    offset: 148,
    blockSize: 152,
    reserved: 156,
} as const;
/** session: the session the eviction ends, so a client ignores an eviction of an older one. */
export const Eviction = { client: 128, session: 144, reason: 152, reserved: 153 } as const;

const u64Max = Number.MAX_SAFE_INTEGER;

export function readU64(view: DataView, offset: number): number {
    const high = view.getUint32(offset + 4, true);
    assert(high <= 0x1f_ffff);
    return view.getUint32(offset, true) + high * 0x1_0000_0000;
}

export function writeU64(view: DataView, offset: number, value: number): void {
    assert(value >= 0);
    assert(value <= u64Max);
    view.setUint32(offset, value >>> 0, true);
    view.setUint32(offset + 4, Math.floor(value / 0x1_0000_0000), true);
}

export function u128Equal(view: DataView, a: number, b: number): boolean {
    return (
        view.getUint32(a, true) === view.getUint32(b, true) &&
        view.getUint32(a + 4, true) === view.getUint32(b + 4, true) &&
        view.getUint32(a + 8, true) === view.getUint32(b + 8, true) &&
        view.getUint32(a + 12, true) === view.getUint32(b + 12, true)
    );
}

export function u128IsZero(view: DataView, offset: number): boolean {
    return (
        (view.getUint32(offset, true) |
            view.getUint32(offset + 4, true) |
            view.getUint32(offset + 8, true) |
            view.getUint32(offset + 12, true)) ===
        0
    );
}

/** Compares both halves as u32s: no double (readU64 of a time above 2^31 may box one). */
export function u64IsZero(view: DataView, offset: number): boolean {
    return (view.getUint32(offset, true) | view.getUint32(offset + 4, true)) === 0;
}

export function headerCommand(view: DataView, base: number): number {
    return view.getUint8(base + Frame.command);
}

export function headerSizeOf(view: DataView, base: number): number {
    return view.getUint32(base + Frame.size, true);
}

export function headerView(view: DataView, base: number): number {
    return view.getUint32(base + Frame.view, true);
}

export function headerReplica(view: DataView, base: number): number {
    return view.getUint8(base + Frame.replica);
}

export function prepareOp(view: DataView, base: number): number {
    return readU64(view, base + Prepare.op);
}

/**
 * Writes the root prepare (op 0: committed by definition, the anchor of every hash chain) at
 * `base`; it depends only on the cluster, so every replica computes the same checksum.
 */
export function writeRootPrepare(bytes: Uint8Array, view: DataView, base: number, cluster: number) {
    bytes.fill(0, base, base + headerSize);
    view.setUint32(base + Frame.cluster, cluster, true);
    view.setUint32(base + Frame.size, headerSize, true);
    view.setUint8(base + Frame.command, Command.prepare);
    view.setUint8(base + Prepare.operation, Operation.root);
    setChecksums(bytes, view, base);
}

/** Sets checksum_body, then checksum (which covers checksum_body): the order matters. */
export function setChecksums(bytes: Uint8Array, view: DataView, base: number): void {
    const size = view.getUint32(base + Frame.size, true);
    assert(size >= headerSize);
    checksum(bytes, base + headerSize, size - headerSize, bytes, base + Frame.checksumBody);
    setHeaderChecksum(bytes, base);
}

export function setHeaderChecksum(bytes: Uint8Array, base: number): void {
    checksum(bytes, base + 16, headerSize - 16, bytes, base + Frame.checksum);
}

export function validHeaderChecksum(bytes: Uint8Array, base: number): boolean {
    return checksumEquals(bytes, base + 16, headerSize - 16, bytes, base + Frame.checksum);
}

export function validBodyChecksum(bytes: Uint8Array, base: number, size: number): boolean {
    assert(size >= headerSize);
    return checksumEquals(
        bytes,
        base + headerSize,
        size - headerSize,
        bytes,
        base + Frame.checksumBody,
    );
}

/** The first reserved byte of each command's custom area (bytes from there to 256 must be zero). */
const reservedFrom: readonly number[] = buildReservedFrom();

function buildReservedFrom(): number[] {
    const table: number[] = [];
    for (let command = 0; command < commandCount; command++) table.push(-1);
    table[Command.request] = Request.reserved;
    table[Command.prepare] = Prepare.reserved;
    table[Command.prepareOk] = PrepareOk.reserved;
    table[Command.reply] = Reply.reserved;
    table[Command.commit] = Commit.reserved;
    table[Command.startViewChange] = StartViewChange.reserved;
    table[Command.doViewChange] = DoViewChange.reserved;
    table[Command.startView] = StartView.reserved;
    table[Command.requestHeaders] = RequestHeaders.reserved;
    table[Command.requestPrepare] = RequestPrepare.reserved;
    table[Command.headers] = Headers.reserved;
    table[Command.ping] = Ping.reserved;
    table[Command.pong] = Pong.reserved;
    table[Command.requestSync] = RequestSync.reserved;
    table[Command.sync] = Sync.reserved;
    table[Command.eviction] = Eviction.reserved;
    table[Command.requestReply] = RequestReply.reserved;
    table[Command.requestBlock] = RequestBlock.reserved;
    table[Command.block] = Block.reserved;
    table[Command.peerStatus] = PeerStatus.reserved;
    return table;
}

export function commandValid(command: number): boolean {
    return command < commandCount && (reservedFrom[command] ?? -1) >= 0;
}

function zero(view: DataView, from: number, to: number): boolean {
    for (let offset = from; offset < to; offset++) {
        if (view.getUint8(offset) !== 0) return false;
    }
    return true;
}

/**
 * Why the header at `base` is not a valid message header, or null when it is. Checks the frame
 * and the command's own field rules; it does not check checksums or the cluster (the caller
 * does, so that it can count each kind of rejection). Returns constant strings: no allocation.
 */
export function invalidHeader(view: DataView, base: number, messageSizeMax: number): string | null {
    const command = view.getUint8(base + Frame.command);
    if (!commandValid(command)) return "command unknown";
    const size = view.getUint32(base + Frame.size, true);
    if (size < headerSize) return "size < header size";
    if (size > messageSizeMax) return "size > message size max";
    if (!zero(view, base + Frame.checksumPadding, base + Frame.checksumBody))
        return "checksum padding";
    if (!zero(view, base + Frame.checksumBodyPadding, base + Frame.cluster)) return "nonce/padding";
    if (!zero(view, base + Frame.clusterReserved, base + Frame.size)) return "cluster reserved";
    if (view.getUint32(base + Frame.epoch, true) !== 0) return "epoch != 0";
    if (view.getUint16(base + Frame.protocol, true) !== 0) return "protocol != 0";
    if (!zero(view, base + Frame.reserved, base + Frame.custom)) return "frame reserved";
    if (!zero(view, base + (reservedFrom[command] ?? 0), base + headerSize)) return "reserved";
    if (view.getUint8(base + Frame.replica) >= replicasMax) return "replica index";
    if (!highHalvesSafe(view, base, command)) return "u64 above 2^53";
    return invalidCommand(view, base, command, size, messageSizeMax);
}

function highHalvesSafe(view: DataView, base: number, command: number): boolean {
    // Every u64 field of the custom area sits at one of these offsets for its command; reading
    // one above 2^53 would trip readU64's assertion, so reject it here as bad input.
    switch (command) {
        case Command.prepare:
            return (
                safe(view, base + Prepare.op) &&
                safe(view, base + Prepare.commit) &&
                safe(view, base + Prepare.timestamp)
            );
        case Command.prepareOk:
            return safe(view, base + PrepareOk.op) && safe(view, base + PrepareOk.commitMin);
        case Command.request:
            return safe(view, base + Request.session);
        case Command.reply:
            return (
                safe(view, base + Reply.op) &&
                safe(view, base + Reply.commit) &&
                safe(view, base + Reply.session)
            );
        case Command.commit:
            return safe(view, base + Commit.commit);
        case Command.doViewChange:
            return (
                safe(view, base + DoViewChange.op) &&
                safe(view, base + DoViewChange.commitMax) &&
                safe(view, base + DoViewChange.headersOp) &&
                safe(view, base + DoViewChange.logViewOp)
            );
        case Command.startView:
            return safe(view, base + StartView.op) && safe(view, base + StartView.commitMax);
        case Command.requestHeaders:
            return (
                safe(view, base + RequestHeaders.opMin) && safe(view, base + RequestHeaders.opMax)
            );
        case Command.requestPrepare:
            return safe(view, base + RequestPrepare.prepareOp);
        case Command.eviction:
            return safe(view, base + Eviction.session);
        case Command.requestReply:
            return safe(view, base + RequestReply.replyOp);
        case Command.requestSync:
            return (
                safe(view, base + RequestSync.commitMin) && safe(view, base + RequestSync.offset)
            );
        case Command.ping:
            return safe(view, base + Ping.pingMonotonicUs);
        case Command.pong:
            return (
                safe(view, base + Pong.pingMonotonicUs) && safe(view, base + Pong.pongRealtimeUs)
            );
        case Command.peerStatus:
            return (
                safe(view, base + PeerStatus.op) &&
                safe(view, base + PeerStatus.commitMin) &&
                safe(view, base + PeerStatus.commitMax) &&
                safe(view, base + PeerStatus.checkpointOp)
            );
        case Command.sync:
            return (
                safe(view, base + Sync.checkpointOp) &&
                safe(view, base + Sync.offset) &&
                safe(view, base + Sync.streamSize)
            );
        default:
            return true;
    }
}

function safe(view: DataView, offset: number): boolean {
    return view.getUint32(offset + 4, true) <= 0x1f_ffff;
}

function invalidCommand(
    view: DataView,
    base: number,
    command: number,
    size: number,
    messageSizeMax: number,
): string | null {
    const bodySize = size - headerSize;
    switch (command) {
        case Command.request:
            return invalidRequest(view, base, bodySize, messageSizeMax);
        case Command.prepare:
            return invalidPrepare(view, base, bodySize);
        case Command.reply:
            if (u128IsZero(view, base + Reply.client)) return "reply client == 0";
            if (readU64(view, base + Reply.op) === 0) return "reply op == 0";
            return null;
        case Command.doViewChange:
            return invalidDoViewChange(view, base, bodySize);
        case Command.startView:
            if (readU64(view, base + StartView.commitMax) > readU64(view, base + StartView.op)) {
                return "commit_max > op";
            }
            return invalidHeaderArray(bodySize);
        case Command.headers:
            return invalidHeaderArray(bodySize);
        case Command.pong:
            // A pong answers a clock ping, never a hello (whose time is zero).
            if (u64IsZero(view, base + Pong.pingMonotonicUs)) return "pong ping time == 0";
            if (u64IsZero(view, base + Pong.pongRealtimeUs)) return "pong realtime == 0";
            return bodySize === 0 ? null : "body not empty";
        case Command.requestHeaders:
            if (
                readU64(view, base + RequestHeaders.opMin) >
                readU64(view, base + RequestHeaders.opMax)
            ) {
                return "op_min > op_max";
            }
            return bodySize === 0 ? null : "body not empty";
        case Command.requestReply:
            if (u128IsZero(view, base + RequestReply.client)) return "request_reply client == 0";
            if (readU64(view, base + RequestReply.replyOp) === 0) return "request_reply op == 0";
            return bodySize === 0 ? null : "body not empty";
        case Command.eviction:
            if (u128IsZero(view, base + Eviction.client)) return "eviction client == 0";
            if (view.getUint8(base + Eviction.reason) === 0) return "eviction reason == 0";
            if (view.getUint8(base + Eviction.reason) > evictionReasonMax) {
                return "eviction reason unknown";
            }
            return bodySize === 0 ? null : "body not empty";
        case Command.peerStatus:
            if (view.getUint8(base + PeerStatus.status) > 2) return "peer_status status > 2";
            if (view.getUint8(base + PeerStatus.primary) > 1) return "peer_status primary > 1";
            if (view.getUint16(base + PeerStatus.padding, true) !== 0) return "padding";
            return bodySize === 0 ? null : "body not empty";
        case Command.block:
            return invalidBlock(view, base, bodySize);
        case Command.sync:
            if (
                readU64(view, base + Sync.offset) + bodySize >
                readU64(view, base + Sync.streamSize)
            ) {
                return "sync chunk beyond the stream";
            }
            return bodySize === 0 ? "sync chunk empty" : null;
        default:
            return bodySize === 0 ? null : "body not empty";
    }
}

function invalidBlock(view: DataView, base: number, bodySize: number): string | null {
    const blockSize = view.getUint32(base + Block.blockSize, true);
    if (blockSize === 0 || blockSize % sectorSize !== 0) return "block size not whole sectors";
    if (bodySize === 0) return "block chunk empty";
    // Both below 2^32: the sum is exact in a double.
    if (view.getUint32(base + Block.offset, true) + bodySize > blockSize) {
        return "block chunk beyond the block";
    }
    return null;
}

function invalidDoViewChange(view: DataView, base: number, bodySize: number): string | null {
    const op = readU64(view, base + DoViewChange.op);
    if (view.getUint32(base + DoViewChange.logView, true) > headerView(view, base)) {
        return "log_view > view";
    }
    if (readU64(view, base + DoViewChange.commitMax) > op) return "commit_max > op";
    if (readU64(view, base + DoViewChange.headersOp) > op) return "headers_op > op";
    return invalidHeaderArray(bodySize);
}

function invalidRequest(
    view: DataView,
    base: number,
    bodySize: number,
    messageSizeMax: number,
): string | null {
    if (u128IsZero(view, base + Request.client)) return "request client == 0";
    const operation = view.getUint8(base + Request.operation);
    if (operation === Operation.register) {
        // A register's request number is free: clients vary it so that each attempt to start a
        // session has its own checksum (a stale reply to an earlier register never matches).
        if (readU64(view, base + Request.session) !== 0) return "register session != 0";
        return bodySize === 0 ? null : "register body not empty";
    }
    if (operation !== Operation.kv) return "request operation unknown";
    if (view.getUint32(base + Request.request, true) === 0) return "request number == 0";
    if (bodySize === 0) return "request body empty";
    // The primary wraps each request in a batch entry: it must fit in one prepare.
    if (bodySize > messageSizeMax - headerSize - batchEntryHeaderSize) return "request too large";
    return bodySize % kvEventSize === 0 ? null : "request body not a whole number of events";
}

function invalidPrepare(view: DataView, base: number, bodySize: number): string | null {
    const op = readU64(view, base + Prepare.op);
    const operation = view.getUint8(base + Prepare.operation);
    if (operation === Operation.root) {
        if (op !== 0) return "root op != 0";
        if (bodySize !== 0) return "root body not empty";
        if (!u128IsZero(view, base + Prepare.parent)) return "root parent != 0";
        if (readU64(view, base + Prepare.commit) !== 0) return "root commit != 0";
        return view.getUint32(base + Prepare.requestCount, true) === 0 ? null : "root requests";
    }
    if (operation !== Operation.batch) return "prepare operation unknown";
    if (op === 0) return "prepare op == 0";
    if (readU64(view, base + Prepare.commit) >= op) return "prepare commit >= op";
    if (readU64(view, base + Prepare.timestamp) === 0) return "prepare timestamp == 0";
    if (view.getUint32(base + Prepare.requestCount, true) === 0) return "prepare without requests";
    return bodySize === 0 ? "prepare body empty" : null;
}

function invalidHeaderArray(bodySize: number): string | null {
    if (bodySize === 0) return "header array empty";
    return bodySize % headerSize === 0 ? null : "body not a whole number of headers";
}

// Load-time check: the frame and every command table tile their bytes in increasing order.
function assertLayout(table: Readonly<Record<string, number>>, from: number): void {
    let previous = from - 1;
    for (const key in table) {
        const offset = table[key] ?? -1;
        assert(offset > previous);
        assert(offset <= headerSize);
        previous = offset;
    }
}
assertLayout(Frame, 0);
for (const table of [
    Prepare,
    PrepareOk,
    Request,
    Reply,
    Commit,
    DoViewChange,
    StartView,
    RequestHeaders,
    RequestPrepare,
    Eviction,
    RequestSync,
    Sync,
    Ping,
    Pong,
    RequestReply,
    RequestBlock,
    Block,
]) {
    assertLayout(table, Frame.custom);
}
