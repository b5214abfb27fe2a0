// Property tests for the wire format (src/vsr/header.ts) and the prepare batch (src/vsr/batch.ts).
// Method: a model `Message` (frame values, the command's fields as offset/width/value triples and
// a body) is drawn by one fast-check arbitrary per command, within the rules that invalidHeader
// and invalidBatch state; it is encoded into the arena (hashed by the WebAssembly kernel) or a
// plain buffer (hashed by the TypeScript reference) at arbitrary, unaligned offsets. Properties:
// valid messages validate and round-trip (also after a copy to another offset), any flipped bit
// fails a checksum, random bytes never throw, every documented rule rejects its counterexample
// with its reason, and the offset tables tile their bytes. Failures print fast-check's seed.

import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";

import { Arena } from "../../src/vsr/arena.js";
import { checksumAttach } from "../../src/vsr/checksum.js";
import { BatchEntry, invalidBatch } from "../../src/vsr/batch.js";
import {
    Command,
    Commit,
    DoViewChange,
    Eviction,
    EvictionReason,
    Frame,
    Headers,
    Operation,
    PeerStatus,
    Ping,
    Pong,
    Prepare,
    PrepareOk,
    Reply,
    Request,
    RequestHeaders,
    RequestPrepare,
    Block,
    RequestBlock,
    RequestReply,
    RequestSync,
    StartView,
    StartViewChange,
    Sync,
    invalidHeader,
    readU64,
    setChecksums,
    setHeaderChecksum,
    validBodyChecksum,
    validHeaderChecksum,
    writeU64,
} from "../../src/vsr/header.js";
import { AssertionError } from "../../src/stdx/assert.js";
import {
    batchEntryHeaderSize,
    headerSize,
    kvEventSize,
    kvResultSize,
    replicasMax,
    test as testConfig,
} from "../../src/constants.js";

const messageSizeMax = testConfig.messageSizeMax; // 4096
const bodySizeMax = messageSizeMax - headerSize; // 3840: 30 events or 15 headers.
const u64Max = Number.MAX_SAFE_INTEGER;

// One arena for the file, hashed in place by the kernel; plain buffers use the TS reference.
const arena = new Arena(64 * 1024);
checksumAttach(arena.memory);
const arenaBytes = arena.bytes;
const arenaView = arena.view;
const plainBytes = new Uint8Array(3 * messageSizeMax);
const plainView = new DataView(plainBytes.buffer);
const scratchBytes = new Uint8Array(messageSizeMax);
const scratchView = new DataView(scratchBytes.buffer);

// ---------------------------------------------------------------------------------------------
// The model.

type Width = 1 | 2 | 4 | 8 | 16;

interface Field {
    readonly name: string;
    readonly offset: number; // From the header start.
    readonly width: Width;
    readonly value: number | Uint8Array; // Uint8Array for u128, number otherwise.
}

interface Message {
    readonly command: number;
    readonly cluster: number;
    readonly view: number;
    readonly release: number;
    readonly replica: number;
    readonly fields: readonly Field[];
    readonly body: Uint8Array;
    /** Written after setChecksums, then the header checksum is set again (negative cases). */
    readonly patches: readonly Field[];
}

interface FrameValues {
    readonly cluster: number;
    readonly view: number;
    readonly release: number;
    readonly replica: number;
}

function field(name: string, offset: number, width: Width, value: number | Uint8Array): Field {
    return { name, offset, width, value };
}

function message(command: number, frame: FrameValues, fields: Field[], body: Uint8Array): Message {
    return { command, ...frame, fields, body, patches: [] };
}

function withPatches(base: Message, ...patches: Field[]): Message {
    return { ...base, patches: [...base.patches, ...patches] };
}

function withBody(base: Message, body: Uint8Array): Message {
    return { ...base, body };
}

function fieldValue(source: Message, name: string): number {
    const found = source.fields.find((candidate) => candidate.name === name);
    assert.ok(found !== undefined && typeof found.value === "number", name);
    return found.value;
}

function writeField(bytes: Uint8Array, view: DataView, base: number, item: Field): void {
    const offset = base + item.offset;
    if (item.value instanceof Uint8Array) {
        assert.equal(item.value.length, item.width);
        bytes.set(item.value, offset);
        return;
    }
    if (item.width === 1) view.setUint8(offset, item.value);
    else if (item.width === 2) view.setUint16(offset, item.value, true);
    else if (item.width === 4) view.setUint32(offset, item.value, true);
    else if (item.width === 8) writeU64(view, offset, item.value);
    else assert.fail(`field ${item.name}: a number cannot be ${item.width} bytes wide`);
}

/** Encodes `source` at `base` and returns its size. */
function encode(bytes: Uint8Array, view: DataView, base: number, source: Message): number {
    const size = headerSize + source.body.length;
    bytes.fill(0, base, base + headerSize);
    view.setUint32(base + Frame.cluster, source.cluster, true);
    view.setUint32(base + Frame.size, size, true);
    view.setUint32(base + Frame.view, source.view, true);
    view.setUint32(base + Frame.release, source.release, true);
    view.setUint8(base + Frame.command, source.command);
    view.setUint8(base + Frame.replica, source.replica);
    for (const item of source.fields) writeField(bytes, view, base, item);
    bytes.set(source.body, base + headerSize);
    setChecksums(bytes, view, base);
    if (source.patches.length > 0) {
        for (const item of source.patches) writeField(bytes, view, base, item);
        setHeaderChecksum(bytes, base);
    }
    return size;
}

function headerBytes(source: Message): Uint8Array {
    encode(scratchBytes, scratchView, 0, source);
    return scratchBytes.slice(0, headerSize);
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
    const result = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
    let offset = 0;
    for (const part of parts) {
        result.set(part, offset);
        offset += part.length;
    }
    return result;
}

function describe(source: Message): string {
    const fields = source.fields.map((item) => `${item.name}=${String(item.value)}`).join(" ");
    return `command=${source.command} ${fields} body=${source.body.length}B`;
}

// ---------------------------------------------------------------------------------------------
// Arbitraries: one per command, each within the rules of invalidHeader and invalidBatch.

const u8 = fc.integer({ min: 0, max: 0xff });
const u32 = fc.integer({ min: 0, max: 0xffff_ffff });
const u32Positive = fc.integer({ min: 1, max: 0xffff_ffff });
const u64 = fc.maxSafeNat();
const positiveU64 = fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER });
const u64Positive = fc.integer({ min: 1, max: u64Max });
const u128 = fc.uint8Array({ minLength: 16, maxLength: 16 });
const u128NonZero = u128.filter((bytes) => bytes.some((byte) => byte !== 0));
const u64Ordered = fc.tuple(u64, u64).map(([a, b]) => (a <= b ? [a, b] : [b, a]));

const frameArbitrary: fc.Arbitrary<FrameValues> = fc.record({
    cluster: u32,
    view: u32,
    release: u32,
    replica: fc.integer({ min: 0, max: replicasMax - 1 }),
});

function bytesOf(unit: number, countMin: number, countMax: number): fc.Arbitrary<Uint8Array> {
    return fc
        .integer({ min: countMin, max: countMax })
        .chain((count) => fc.uint8Array({ minLength: count * unit, maxLength: count * unit }));
}

const empty = new Uint8Array(0);
/** A request must fit in one prepare as a batch entry: 4096 - 256 - 64 = 3776 bytes. */
const requestBodySizeMax = bodySizeMax - batchEntryHeaderSize;
const entryEventsMax = Math.floor(requestBodySizeMax / kvEventSize); // 29
assert.equal(requestBodySizeMax, 3776);
assert.equal(entryEventsMax, 29);

function requestArbitrary(): fc.Arbitrary<Message> {
    // A register's request number is free (each attempt to start a session gets its own
    // checksum); its session must be 0 and its body empty.
    const register = fc
        .record({ frame: frameArbitrary, client: u128NonZero, request: u32 })
        .map((drawn) =>
            message(
                Command.request,
                drawn.frame,
                [
                    field("client", Request.client, 16, drawn.client),
                    field("session", Request.session, 8, 0),
                    field("request", Request.request, 4, drawn.request),
                    field("operation", Request.operation, 1, Operation.register),
                ],
                empty,
            ),
        );
    const kv = fc
        .record({
            frame: frameArbitrary,
            client: u128NonZero,
            session: u64,
            request: u32Positive,
            body: bytesOf(kvEventSize, 1, entryEventsMax), // Within "request too large".
        })
        .map((drawn) =>
            message(
                Command.request,
                drawn.frame,
                [
                    field("client", Request.client, 16, drawn.client),
                    field("session", Request.session, 8, drawn.session),
                    field("request", Request.request, 4, drawn.request),
                    field("operation", Request.operation, 1, Operation.kv),
                ],
                drawn.body,
            ),
        );
    return fc.oneof(register, kv);
}

interface Entry {
    readonly client: Uint8Array;
    readonly requestChecksum: Uint8Array;
    readonly session: number;
    readonly request: number;
    readonly operation: number;
    readonly events: Uint8Array;
}

function entryArbitrary(entryEventsLimit: number): fc.Arbitrary<Entry> {
    const register = fc
        .record({ client: u128NonZero, requestChecksum: u128, request: u32 })
        .map((drawn) => ({ ...drawn, session: 0, operation: Operation.register, events: empty }));
    const kv = fc.record({
        client: u128NonZero,
        requestChecksum: u128,
        session: u64,
        request: u32Positive,
        operation: fc.constant(Operation.kv),
        events: bytesOf(kvEventSize, 1, entryEventsLimit),
    });
    return fc.oneof(register, kv);
}

/** A batch body of the leading entries that fit; the first always fits (64 + 29·128 ≤ 3840). */
function batchBody(entries: readonly Entry[]): { body: Uint8Array; requestCount: number } {
    const parts: Uint8Array[] = [];
    let size = 0;
    for (const entry of entries) {
        const entrySize = batchEntryHeaderSize + entry.events.length;
        if (size + entrySize > bodySizeMax) break;
        const part = new Uint8Array(entrySize);
        const view = new DataView(part.buffer);
        part.set(entry.client, BatchEntry.client);
        part.set(entry.requestChecksum, BatchEntry.requestChecksum);
        writeU64(view, BatchEntry.session, entry.session);
        view.setUint32(BatchEntry.request, entry.request, true);
        view.setUint8(BatchEntry.operation, entry.operation);
        view.setUint32(BatchEntry.eventCount, entry.events.length / kvEventSize, true);
        part.set(entry.events, batchEntryHeaderSize);
        parts.push(part);
        size += entrySize;
    }
    assert.ok(parts.length >= 1);
    return { body: concat(parts), requestCount: parts.length };
}

function prepareArbitrary(entryEventsLimit: number): fc.Arbitrary<Message> {
    const root = fc
        .record({ frame: frameArbitrary, timestamp: u64 })
        .map((drawn) =>
            message(
                Command.prepare,
                drawn.frame,
                [
                    field("parent", Prepare.parent, 16, new Uint8Array(16)),
                    field("op", Prepare.op, 8, 0),
                    field("commit", Prepare.commit, 8, 0),
                    field("timestamp", Prepare.timestamp, 8, drawn.timestamp),
                    field("requestCount", Prepare.requestCount, 4, 0),
                    field("operation", Prepare.operation, 1, Operation.root),
                ],
                empty,
            ),
        );
    const opCommit = u64Positive.chain((op) =>
        fc.tuple(fc.constant(op), fc.integer({ min: 0, max: op - 1 })),
    );
    const batch = fc
        .record({
            frame: frameArbitrary,
            parent: u128,
            opCommit,
            timestamp: u64Positive,
            entries: fc.array(entryArbitrary(entryEventsLimit), { minLength: 1, maxLength: 8 }),
        })
        .map((drawn) => {
            const { body, requestCount } = batchBody(drawn.entries);
            return message(
                Command.prepare,
                drawn.frame,
                [
                    field("parent", Prepare.parent, 16, drawn.parent),
                    field("op", Prepare.op, 8, drawn.opCommit[0]),
                    field("commit", Prepare.commit, 8, drawn.opCommit[1]),
                    field("timestamp", Prepare.timestamp, 8, drawn.timestamp),
                    field("requestCount", Prepare.requestCount, 4, requestCount),
                    field("operation", Prepare.operation, 1, Operation.batch),
                ],
                body,
            );
        });
    return fc.oneof(root, batch);
}

/** Whole 256-byte headers of valid prepares (small bodies: only their checksum is carried). */
const headerArrayBody = fc
    .array(prepareArbitrary(2), { minLength: 1, maxLength: bodySizeMax / headerSize })
    .map((prepares) => concat(prepares.map(headerBytes)));

function replyArbitrary(): fc.Arbitrary<Message> {
    return fc
        .record({
            frame: frameArbitrary,
            requestChecksum: u128,
            client: u128NonZero,
            op: u64Positive,
            commit: u64,
            session: u64,
            request: u32,
            operation: fc.constantFrom(Operation.register, Operation.kv),
            body: bytesOf(kvResultSize, 0, Math.floor(bodySizeMax / kvResultSize)),
        })
        .map((drawn) =>
            message(
                Command.reply,
                drawn.frame,
                [
                    field("requestChecksum", Reply.requestChecksum, 16, drawn.requestChecksum),
                    field("client", Reply.client, 16, drawn.client),
                    field("op", Reply.op, 8, drawn.op),
                    field("commit", Reply.commit, 8, drawn.commit),
                    field("session", Reply.session, 8, drawn.session),
                    field("request", Reply.request, 4, drawn.request),
                    field("operation", Reply.operation, 1, drawn.operation),
                ],
                drawn.body,
            ),
        );
}

function doViewChangeArbitrary(): fc.Arbitrary<Message> {
    const frameLogView = frameArbitrary.chain((frame) =>
        fc.tuple(fc.constant(frame), fc.integer({ min: 0, max: frame.view })),
    );
    return fc
        .record({
            frameLogView,
            opCommitMax: u64Ordered,
            nack: u32,
            present: u32,
            body: headerArrayBody,
        })
        .map((drawn) =>
            message(
                Command.doViewChange,
                drawn.frameLogView[0],
                [
                    field("op", DoViewChange.op, 8, drawn.opCommitMax[1]!),
                    field("commitMax", DoViewChange.commitMax, 8, drawn.opCommitMax[0]!),
                    field("logView", DoViewChange.logView, 4, drawn.frameLogView[1]),
                    field("nackBitset", DoViewChange.nackBitset, 4, drawn.nack),
                    field("presentBitset", DoViewChange.presentBitset, 4, drawn.present),
                    field("headersOp", DoViewChange.headersOp, 8, drawn.opCommitMax[0]!),
                    field("logViewOp", DoViewChange.logViewOp, 8, drawn.opCommitMax[0]!),
                ],
                drawn.body,
            ),
        );
}

/**
 * A chunk of a checkpoint stream: any 1 to 3840 bytes at `offset`, within the stream
 * (offset + body size ≤ streamSize). Half the draws end the chunk exactly at the stream's end.
 */
function syncArbitrary(): fc.Arbitrary<Message> {
    const chunk = fc
        .integer({ min: 1, max: bodySizeMax })
        .chain((size) =>
            fc.tuple(
                fc.uint8Array({ minLength: size, maxLength: size }),
                fc.integer({ min: size, max: u64Max }),
                fc.boolean(),
            ),
        )
        .chain(([body, streamSize, last]) =>
            fc.tuple(
                fc.constant(body),
                fc.constant(streamSize),
                last
                    ? fc.constant(streamSize - body.length)
                    : fc.integer({ min: 0, max: streamSize - body.length }),
            ),
        );
    return fc
        .record({
            frame: frameArbitrary,
            checkpointOp: u64,
            chunk,
            indexChecksum: u128,
            sessionsChecksum: u128,
            anchorChecksum: u128,
        })
        .map((drawn) => {
            const [body, streamSize, offset] = drawn.chunk;
            return message(
                Command.sync,
                drawn.frame,
                [
                    field("checkpointOp", Sync.checkpointOp, 8, drawn.checkpointOp),
                    field("offset", Sync.offset, 8, offset),
                    field("streamSize", Sync.streamSize, 8, streamSize),
                    field("indexChecksum", Sync.indexChecksum, 16, drawn.indexChecksum),
                    field("sessionsChecksum", Sync.sessionsChecksum, 16, drawn.sessionsChecksum),
                    field("anchorChecksum", Sync.anchorChecksum, 16, drawn.anchorChecksum),
                ],
                body,
            );
        });
}

/** Block sizes a grid may have (whole sectors), up to a few times a message body. */
const blockSizeArbitrary = fc.integer({ min: 1, max: 64 }).map((sectors) => sectors * 4096);

/** A chunk of a block: anywhere inside it, from one byte to a whole message body. */
function blockArbitrary(): fc.Arbitrary<Message> {
    const chunk = blockSizeArbitrary
        .chain((blockSize) =>
            fc.tuple(
                fc.constant(blockSize),
                fc.integer({ min: 1, max: Math.min(bodySizeMax, blockSize) }),
                fc.boolean(),
            ),
        )
        .chain(([blockSize, size, last]) =>
            fc.tuple(
                fc.constant(blockSize),
                fc.uint8Array({ minLength: size, maxLength: size }),
                last
                    ? fc.constant(blockSize - size)
                    : fc.integer({ min: 0, max: blockSize - size }),
            ),
        );
    return fc
        .record({ frame: frameArbitrary, chunk, blockChecksum: u128, address: u32 })
        .map((drawn) => {
            const [blockSize, body, offset] = drawn.chunk;
            return message(
                Command.block,
                drawn.frame,
                [
                    field("blockChecksum", Block.blockChecksum, 16, drawn.blockChecksum),
                    field("address", Block.address, 4, drawn.address),
                    field("offset", Block.offset, 4, offset),
                    field("blockSize", Block.blockSize, 4, blockSize),
                ],
                body,
            );
        });
}

/** Commands whose whole custom area is fields (or reserved) and whose body is empty. */
function fieldsOnlyArbitrary(
    command: number,
    fields: fc.Arbitrary<Field[]>,
): fc.Arbitrary<Message> {
    return fc
        .record({ frame: frameArbitrary, fields })
        .map((drawn) => message(command, drawn.frame, drawn.fields, empty));
}

const arbitraries: ReadonlyMap<number, fc.Arbitrary<Message>> = new Map([
    // A clock ping (a zero time is the bus's hello): one u64 field and an empty body.
    [
        Command.ping,
        fieldsOnlyArbitrary(
            Command.ping,
            u64.map((time) => [field("pingMonotonicUs", Ping.pingMonotonicUs, 8, time)]),
        ),
    ],
    [
        Command.pong,
        fieldsOnlyArbitrary(
            Command.pong,
            fc
                .tuple(positiveU64, positiveU64)
                .map(([ping, pong]) => [
                    field("pingMonotonicUs", Pong.pingMonotonicUs, 8, ping),
                    field("pongRealtimeUs", Pong.pongRealtimeUs, 8, pong),
                ]),
        ),
    ],
    [Command.request, requestArbitrary()],
    [Command.prepare, prepareArbitrary(entryEventsMax)],
    [
        Command.prepareOk,
        fieldsOnlyArbitrary(
            Command.prepareOk,
            fc
                .tuple(u128, u64, u64)
                .map(([checksum, op, commitMin]) => [
                    field("prepareChecksum", PrepareOk.prepareChecksum, 16, checksum),
                    field("op", PrepareOk.op, 8, op),
                    field("commitMin", PrepareOk.commitMin, 8, commitMin),
                ]),
        ),
    ],
    [Command.reply, replyArbitrary()],
    [
        Command.commit,
        fieldsOnlyArbitrary(
            Command.commit,
            fc
                .tuple(u128, u64)
                .map(([checksum, commit]) => [
                    field("commitChecksum", Commit.commitChecksum, 16, checksum),
                    field("commit", Commit.commit, 8, commit),
                ]),
        ),
    ],
    [Command.startViewChange, fieldsOnlyArbitrary(Command.startViewChange, fc.constant([]))],
    [Command.doViewChange, doViewChangeArbitrary()],
    [
        Command.startView,
        fc
            .record({ frame: frameArbitrary, ops: u64Ordered, body: headerArrayBody })
            .map((drawn) =>
                message(
                    Command.startView,
                    drawn.frame,
                    [
                        field("op", StartView.op, 8, drawn.ops[1]!),
                        field("commitMax", StartView.commitMax, 8, drawn.ops[0]!),
                    ],
                    drawn.body,
                ),
            ),
    ],
    [
        Command.requestHeaders,
        fieldsOnlyArbitrary(
            Command.requestHeaders,
            u64Ordered.map(([opMin, opMax]) => [
                field("opMin", RequestHeaders.opMin, 8, opMin!),
                field("opMax", RequestHeaders.opMax, 8, opMax!),
            ]),
        ),
    ],
    [
        Command.requestPrepare,
        fieldsOnlyArbitrary(
            Command.requestPrepare,
            fc
                .tuple(u128, u64)
                .map(([checksum, op]) => [
                    field("prepareChecksum", RequestPrepare.prepareChecksum, 16, checksum),
                    field("prepareOp", RequestPrepare.prepareOp, 8, op),
                ]),
        ),
    ],
    [
        Command.headers,
        fc
            .record({ frame: frameArbitrary, body: headerArrayBody })
            .map((drawn) => message(Command.headers, drawn.frame, [], drawn.body)),
    ],
    [
        Command.eviction,
        fieldsOnlyArbitrary(
            Command.eviction,
            fc
                .tuple(u128NonZero, u64, fc.constantFrom(...Object.values(EvictionReason)))
                .map(([client, session, reason]) => [
                    field("client", Eviction.client, 16, client),
                    field("session", Eviction.session, 8, session),
                    field("reason", Eviction.reason, 1, reason),
                ]),
        ),
    ],
    [
        Command.requestSync,
        fieldsOnlyArbitrary(
            Command.requestSync,
            fc
                .tuple(u64, u64)
                .map(([commitMin, offset]) => [
                    field("commitMin", RequestSync.commitMin, 8, commitMin),
                    field("offset", RequestSync.offset, 8, offset),
                ]),
        ),
    ],
    [Command.sync, syncArbitrary()],
    [
        Command.requestBlock,
        fieldsOnlyArbitrary(
            Command.requestBlock,
            fc
                .tuple(u128, u32)
                .map(([blockChecksum, address]) => [
                    field("blockChecksum", RequestBlock.blockChecksum, 16, blockChecksum),
                    field("address", RequestBlock.address, 4, address),
                ]),
        ),
    ],
    [Command.block, blockArbitrary()],
    [
        Command.requestReply,
        fieldsOnlyArbitrary(
            Command.requestReply,
            fc
                .tuple(u128NonZero, u64Positive)
                .map(([client, replyOp]) => [
                    field("client", RequestReply.client, 16, client),
                    field("replyOp", RequestReply.replyOp, 8, replyOp),
                ]),
        ),
    ],
    [
        Command.peerStatus,
        fieldsOnlyArbitrary(
            Command.peerStatus,
            fc
                .record({
                    logView: u32,
                    status: fc.integer({ min: 0, max: 2 }),
                    primary: fc.integer({ min: 0, max: 1 }),
                    op: u64,
                    commitMin: u64,
                    commitMax: u64,
                    checkpointOp: u64,
                    p50: u32,
                    p99: u32,
                    replied: u32,
                })
                .map((drawn) => [
                    field("logView", PeerStatus.logView, 4, drawn.logView),
                    field("status", PeerStatus.status, 1, drawn.status),
                    field("primary", PeerStatus.primary, 1, drawn.primary),
                    field("op", PeerStatus.op, 8, drawn.op),
                    field("commitMin", PeerStatus.commitMin, 8, drawn.commitMin),
                    field("commitMax", PeerStatus.commitMax, 8, drawn.commitMax),
                    field("checkpointOp", PeerStatus.checkpointOp, 8, drawn.checkpointOp),
                    field("requestLatencyUsP50", PeerStatus.requestLatencyUsP50, 4, drawn.p50),
                    field("requestLatencyUsP99", PeerStatus.requestLatencyUsP99, 4, drawn.p99),
                    field("requestsReplied", PeerStatus.requestsReplied, 4, drawn.replied),
                ]),
        ),
    ],
]);

const commandNames = Object.entries(Command).filter(([, command]) => command !== Command.reserved);

function arbitraryOf(command: number): fc.Arbitrary<Message> {
    const found = arbitraries.get(command);
    assert.ok(found !== undefined, `no arbitrary for command ${command}`);
    return found;
}

const anyMessage = fc
    .constantFrom(...commandNames.map(([, command]) => command))
    .chain(arbitraryOf);

/** Two non-overlapping, unaligned offsets in the arena and one in the plain buffer. */
const placement = fc.record({
    arenaBase: fc.integer({ min: 0, max: 16 * 1024 }),
    arenaCopyBase: fc.integer({ min: 32 * 1024, max: arena.sizeBytes - messageSizeMax }),
    plainBase: fc.integer({ min: 0, max: plainBytes.length - messageSizeMax }),
});

// ---------------------------------------------------------------------------------------------
// The oracle: a message at `base` validates and decodes to its model.

const headerArrayCommands: readonly number[] = [
    Command.doViewChange,
    Command.startView,
    Command.headers,
];

function assertValidMessage(bytes: Uint8Array, view: DataView, base: number, source: Message) {
    const size = headerSize + source.body.length;
    assert.equal(invalidHeader(view, base, messageSizeMax), null, describe(source));
    assert.ok(validHeaderChecksum(bytes, base), "header checksum");
    assert.ok(validBodyChecksum(bytes, base, size), "body checksum");
    assert.equal(view.getUint32(base + Frame.cluster, true), source.cluster);
    assert.equal(view.getUint32(base + Frame.size, true), size);
    assert.equal(view.getUint32(base + Frame.view, true), source.view);
    assert.equal(view.getUint32(base + Frame.release, true), source.release);
    assert.equal(view.getUint8(base + Frame.command), source.command);
    assert.equal(view.getUint8(base + Frame.replica), source.replica);
    for (const item of source.fields) {
        const offset = base + item.offset;
        if (item.value instanceof Uint8Array) {
            assert.deepEqual(bytes.subarray(offset, offset + 16), item.value, item.name);
        } else if (item.width === 1) {
            assert.equal(view.getUint8(offset), item.value, item.name);
        } else if (item.width === 4) {
            assert.equal(view.getUint32(offset, true), item.value, item.name);
        } else {
            assert.equal(item.width, 8);
            assert.equal(readU64(view, offset), item.value, item.name);
        }
    }
    assert.deepEqual(bytes.subarray(base + headerSize, base + size), source.body, "body");
    if (source.command === Command.prepare) {
        assert.equal(invalidBatch(view, base), null, "batch");
    }
    if (headerArrayCommands.includes(source.command)) {
        for (let offset = base + headerSize; offset < base + size; offset += headerSize) {
            assert.equal(invalidHeader(view, offset, messageSizeMax), null, "body header");
            assert.ok(validHeaderChecksum(bytes, offset), "body header checksum");
            assert.equal(view.getUint8(offset + Frame.command), Command.prepare);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 1. Valid messages of every command validate and round-trip, wherever they are copied.

for (const [name, command] of commandNames) {
    test(`a valid ${name} message validates, round-trips and survives a copy to any offset`, () => {
        fc.assert(
            fc.property(arbitraryOf(command), placement, (source, where) => {
                const size = encode(arenaBytes, arenaView, where.arenaBase, source);
                assertValidMessage(arenaBytes, arenaView, where.arenaBase, source);
                const end = where.arenaBase + size;
                arenaBytes.copyWithin(where.arenaCopyBase, where.arenaBase, end);
                assertValidMessage(arenaBytes, arenaView, where.arenaCopyBase, source);
                // The plain buffer is hashed by the TS reference: both implementations agree.
                plainBytes.set(arenaBytes.subarray(where.arenaBase, end), where.plainBase);
                assertValidMessage(plainBytes, plainView, where.plainBase, source);
            }),
        );
    });
}

// The request bounds, pinned at their edges (the arbitraries reach them only by chance).

test("a kv request of exactly 29 events (3712 of at most 3776 body bytes) validates", () => {
    const kvRequest = arbitraryOf(Command.request).filter(
        (source) => fieldValue(source, "operation") === Operation.kv,
    );
    const body = fc.uint8Array({
        minLength: entryEventsMax * kvEventSize,
        maxLength: entryEventsMax * kvEventSize,
    });
    fc.assert(
        fc.property(kvRequest, body, placement, (source, events, at) => {
            const largest = withBody(source, events);
            encode(arenaBytes, arenaView, at.arenaBase, largest);
            assertValidMessage(arenaBytes, arenaView, at.arenaBase, largest);
        }),
        { numRuns: 50 },
    );
});

test("a register request validates with any request number, including 0 and 2^32 - 1", () => {
    const register = arbitraryOf(Command.request).filter(
        (source) => fieldValue(source, "operation") === Operation.register,
    );
    const number = fc.oneof(fc.constantFrom(0, 1, 0xffff_ffff), u32);
    fc.assert(
        fc.property(register, number, placement, (source, request, at) => {
            const fields = source.fields.map((item) =>
                item.name === "request" ? field("request", Request.request, 4, request) : item,
            );
            const attempt: Message = { ...source, fields };
            encode(arenaBytes, arenaView, at.arenaBase, attempt);
            assertValidMessage(arenaBytes, arenaView, at.arenaBase, attempt);
            assert.equal(fieldValue(attempt, "session"), 0);
            assert.equal(attempt.body.length, 0);
        }),
        { numRuns: 50 },
    );
});

// ---------------------------------------------------------------------------------------------
// 2. Any single flipped bit fails a checksum.

function checksumsValid(bytes: Uint8Array, view: DataView, base: number): boolean {
    if (!validHeaderChecksum(bytes, base)) return false;
    const size = view.getUint32(base + Frame.size, true); // As a receiver would read it.
    if (size < headerSize || base + size > bytes.length) return false;
    return validBodyChecksum(bytes, base, size);
}

test("a single flipped bit anywhere in header or body fails the header or body checksum", () => {
    fc.assert(
        fc.property(
            anyMessage,
            fc.nat(),
            fc.boolean(),
            placement,
            (source, bitSeed, inArena, where) => {
                const bytes = inArena ? arenaBytes : plainBytes;
                const view = inArena ? arenaView : plainView;
                const base = inArena ? where.arenaBase : where.plainBase;
                const size = encode(bytes, view, base, source);
                assert.ok(checksumsValid(bytes, view, base));
                const bit = bitSeed % (size * 8);
                bytes[base + (bit >>> 3)]! ^= 1 << (bit & 7);
                assert.equal(checksumsValid(bytes, view, base), false, `bit ${bit} of ${size}B`);
            },
        ),
        { numRuns: 1000 },
    );
});

// ---------------------------------------------------------------------------------------------
// 3. Random bytes never throw.

/** Calls every validator whose precondition holds on the region [base, end). */
function probe(bytes: Uint8Array, view: DataView, base: number, end: number): void {
    if (end - base < headerSize) return; // Receivers wait for a whole header first.
    assert.equal(typeof validHeaderChecksum(bytes, base), "boolean");
    const reason = invalidHeader(view, base, messageSizeMax);
    assert.ok(reason === null || typeof reason === "string");
    const size = view.getUint32(base + Frame.size, true);
    if (size < headerSize || base + size > end) return;
    assert.equal(typeof validBodyChecksum(bytes, base, size), "boolean");
    if (reason !== null || view.getUint8(base + Frame.command) !== Command.prepare) return;
    const batchReason = invalidBatch(view, base);
    assert.ok(batchReason === null || typeof batchReason === "string");
}

/** Probes `content` in a plain buffer and at the very end of the arena. */
function probeEverywhere(content: Uint8Array, extraBase: number): void {
    const plain = content.slice();
    const plainContentView = new DataView(plain.buffer);
    const arenaBase = arena.sizeBytes - content.length;
    arenaBytes.set(content, arenaBase);
    const bases = [0, content.length - headerSize, extraBase % (content.length + 1)];
    for (const base of bases) {
        if (base < 0) continue;
        probe(plain, plainContentView, base, plain.length);
        probe(arenaBytes, arenaView, arenaBase + base, arena.sizeBytes);
    }
}

test("random bytes of any length never make a validator throw", () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 8192 }), fc.nat(), probeEverywhere), {
        numRuns: 300,
    });
});

/** Offsets of the u64 fields of each command: their high halves must stay ≤ 0x1f_ffff. */
const u64Offsets: ReadonlyMap<number, readonly number[]> = new Map([
    [Command.ping, [Ping.pingMonotonicUs]],
    [Command.pong, [Pong.pingMonotonicUs, Pong.pongRealtimeUs]],
    [Command.prepare, [Prepare.op, Prepare.commit, Prepare.timestamp]],
    [Command.prepareOk, [PrepareOk.op, PrepareOk.commitMin]],
    [Command.request, [Request.session]],
    [Command.reply, [Reply.op, Reply.commit, Reply.session]],
    [Command.commit, [Commit.commit]],
    [
        Command.doViewChange,
        [DoViewChange.op, DoViewChange.commitMax, DoViewChange.headersOp, DoViewChange.logViewOp],
    ],
    [Command.startView, [StartView.op, StartView.commitMax]],
    [Command.requestHeaders, [RequestHeaders.opMin, RequestHeaders.opMax]],
    [Command.requestPrepare, [RequestPrepare.prepareOp]],
    [Command.eviction, [Eviction.session]],
    [Command.requestSync, [RequestSync.commitMin, RequestSync.offset]],
    [Command.sync, [Sync.checkpointOp, Sync.offset, Sync.streamSize]],
    [Command.requestReply, [RequestReply.replyOp]],
    [
        Command.peerStatus,
        [PeerStatus.op, PeerStatus.commitMin, PeerStatus.commitMax, PeerStatus.checkpointOp],
    ],
]);

const reservedFrom: ReadonlyMap<number, number> = new Map([
    [Command.ping, Ping.reserved],
    [Command.pong, Pong.reserved],
    [Command.request, Request.reserved],
    [Command.prepare, Prepare.reserved],
    [Command.prepareOk, PrepareOk.reserved],
    [Command.reply, Reply.reserved],
    [Command.commit, Commit.reserved],
    [Command.startViewChange, StartViewChange.reserved],
    [Command.doViewChange, DoViewChange.reserved],
    [Command.startView, StartView.reserved],
    [Command.requestHeaders, RequestHeaders.reserved],
    [Command.requestPrepare, RequestPrepare.reserved],
    [Command.headers, Headers.reserved],
    [Command.eviction, Eviction.reserved],
    [Command.requestSync, RequestSync.reserved],
    [Command.sync, Sync.reserved],
    [Command.requestReply, RequestReply.reserved],
    [Command.requestBlock, RequestBlock.reserved],
    [Command.block, Block.reserved],
    [Command.peerStatus, PeerStatus.reserved],
]);

const plausible = fc.record({
    content: fc.uint8Array({ minLength: headerSize, maxLength: 8192 }),
    command: fc.oneof(fc.constantFrom(...reservedFrom.keys()), u8),
    size: fc.oneof(fc.integer({ min: headerSize, max: messageSizeMax }), u32),
    scrub: fc.boolean(),
    prepareOperation: fc.constantFrom(Operation.root, Operation.batch),
    requestCount: fc.integer({ min: 0, max: 12 }),
    extraBase: fc.nat(),
});

test("random bytes with a plausible command, size and zeroed reserved bytes never throw", () => {
    fc.assert(
        fc.property(plausible, (drawn) => {
            const content = drawn.content;
            const view = new DataView(content.buffer);
            view.setUint8(Frame.command, drawn.command);
            view.setUint32(Frame.size, Math.min(drawn.size, content.length), true);
            if (drawn.scrub) {
                // Pass the frame checks so that the command's own rules and the batch run.
                content.fill(0, Frame.checksumPadding, Frame.checksumBody);
                content.fill(0, Frame.checksumBodyPadding, Frame.cluster);
                content.fill(0, Frame.clusterReserved, Frame.size);
                content.fill(0, Frame.epoch, Frame.view);
                content.fill(0, Frame.protocol, Frame.command);
                content.fill(0, Frame.reserved, Frame.custom);
                content.fill(0, reservedFrom.get(drawn.command) ?? headerSize, headerSize);
                view.setUint8(Frame.replica, view.getUint8(Frame.replica) % replicasMax);
                for (const offset of u64Offsets.get(drawn.command) ?? []) {
                    view.setUint32(offset + 4, view.getUint32(offset + 4, true) & 0x1f_ffff, true);
                }
                if (drawn.command === Command.prepare) {
                    view.setUint8(Prepare.operation, drawn.prepareOperation);
                    view.setUint32(Prepare.requestCount, drawn.requestCount, true);
                }
            }
            probeEverywhere(content, drawn.extraBase);
        }),
        { numRuns: 1000 },
    );
});

const batchPrepare = prepareArbitrary(entryEventsMax).filter(
    (source) => fieldValue(source, "operation") === Operation.batch,
);

test("a valid prepare with random bytes written over its batch never makes invalidBatch throw", () => {
    const writes = fc.array(fc.tuple(fc.nat(), u8), { minLength: 1, maxLength: 16 });
    fc.assert(
        fc.property(batchPrepare, writes, (source, overwrites) => {
            const body = source.body.slice();
            for (const [index, value] of overwrites) body[index % body.length] = value;
            const base = 0;
            encode(plainBytes, plainView, base, withBody(source, body));
            assert.equal(invalidHeader(plainView, base, messageSizeMax), null);
            const reason = invalidBatch(plainView, base);
            assert.ok(reason === null || typeof reason === "string");
        }),
        { numRuns: 1000 },
    );
});

// ---------------------------------------------------------------------------------------------
// 4. Negative space: each rule rejects its counterexample with its reason, even though the
//    checksums are valid (the counterexample is re-hashed after the change).

interface Counterexample {
    readonly name: string;
    readonly reason: string;
    readonly arbitrary: fc.Arbitrary<Message>;
}

function patched(
    command: number | null,
    patch: (source: Message) => fc.Arbitrary<Message>,
): fc.Arbitrary<Message> {
    return (command === null ? anyMessage : arbitraryOf(command)).chain(patch);
}

function reservedRange(from: number, to: number, reason: string): Counterexample {
    return {
        name: `a nonzero byte in [${from}, ${to})`,
        reason,
        arbitrary: patched(null, (source) =>
            fc
                .tuple(fc.integer({ min: from, max: to - 1 }), fc.integer({ min: 1, max: 0xff }))
                .map(([offset, value]) => withPatches(source, field("byte", offset, 1, value))),
        ),
    };
}

const unknownCommands = Array.from({ length: 256 }, (_, index) => index).filter(
    (command) => !reservedFrom.has(command),
);

function oneField(
    command: number,
    name: string,
    offset: number,
    width: Width,
    values: fc.Arbitrary<number | Uint8Array>,
): fc.Arbitrary<Message> {
    return patched(command, (source) =>
        values.map((value) => withPatches(source, field(name, offset, width, value))),
    );
}

/** Messages of `command` filtered by a predicate on their model. */
function where(command: number, predicate: (source: Message) => boolean): fc.Arbitrary<Message> {
    return arbitraryOf(command).filter(predicate);
}

const isRegister = (source: Message) => fieldValue(source, "operation") === Operation.register;
const isKv = (source: Message) => fieldValue(source, "operation") === Operation.kv;
const isRoot = (source: Message) => fieldValue(source, "operation") === Operation.root;
const isBatch = (source: Message) => fieldValue(source, "operation") === Operation.batch;
const zero128 = fc.constant(new Uint8Array(16));
// Within the request bound, so that the partial event is the only thing wrong.
const notEvents = fc
    .integer({ min: 1, max: requestBodySizeMax })
    .filter((n) => n % kvEventSize !== 0);
const notHeaders = fc.integer({ min: 1, max: bodySizeMax }).filter((n) => n % headerSize !== 0);

function article(word: string): string {
    return /^[aeiou]/.test(word) ? "an" : "a";
}

function sized(count: number): Uint8Array {
    return new Uint8Array(count);
}

const frameCounterexamples: Counterexample[] = [
    reservedRange(Frame.checksumPadding, Frame.checksumBody, "checksum padding"),
    reservedRange(Frame.checksumBodyPadding, Frame.cluster, "nonce/padding"),
    reservedRange(Frame.clusterReserved, Frame.size, "cluster reserved"),
    reservedRange(Frame.reserved, Frame.custom, "frame reserved"),
    {
        name: "a nonzero byte in the command's reserved tail",
        reason: "reserved",
        arbitrary: patched(null, (source) => {
            const from = reservedFrom.get(source.command) ?? headerSize;
            return fc
                .tuple(
                    fc.integer({ min: from, max: headerSize - 1 }),
                    fc.integer({ min: 1, max: 0xff }),
                )
                .map(([offset, value]) => withPatches(source, field("byte", offset, 1, value)));
        }),
    },
    {
        name: "epoch != 0",
        reason: "epoch != 0",
        arbitrary: patched(null, (source) =>
            u32Positive.map((epoch) => withPatches(source, field("epoch", Frame.epoch, 4, epoch))),
        ),
    },
    {
        name: "protocol != 0",
        reason: "protocol != 0",
        arbitrary: patched(null, (source) =>
            fc
                .integer({ min: 1, max: 0xffff })
                .map((value) => withPatches(source, field("protocol", Frame.protocol, 2, value))),
        ),
    },
    {
        name: "size < 256",
        reason: "size < header size",
        arbitrary: patched(null, (source) =>
            fc
                .integer({ min: 0, max: headerSize - 1 })
                .map((size) => withPatches(source, field("size", Frame.size, 4, size))),
        ),
    },
    {
        name: "size > messageSizeMax",
        reason: "size > message size max",
        arbitrary: patched(null, (source) =>
            fc
                .integer({ min: messageSizeMax + 1, max: 0xffff_ffff })
                .map((size) => withPatches(source, field("size", Frame.size, 4, size))),
        ),
    },
    {
        name: "an unknown command",
        reason: "command unknown",
        arbitrary: patched(null, (source) =>
            fc
                .constantFrom(...unknownCommands)
                .map((command) => withPatches(source, field("command", Frame.command, 1, command))),
        ),
    },
    {
        name: "a replica index ≥ replicasMax",
        reason: "replica index",
        arbitrary: patched(null, (source) =>
            fc
                .integer({ min: replicasMax, max: 0xff })
                .map((replica) => withPatches(source, field("replica", Frame.replica, 1, replica))),
        ),
    },
    {
        name: "a u64 field above 2^53",
        reason: "u64 above 2^53",
        arbitrary: fc
            .constantFrom(...u64Offsets.keys())
            .chain(arbitraryOf)
            .chain((source) => {
                const offsets = u64Offsets.get(source.command)!;
                return fc
                    .tuple(
                        fc.constantFrom(...offsets),
                        fc.integer({ min: 0x20_0000, max: 0xffff_ffff }),
                    )
                    .map(([offset, high]) =>
                        withPatches(source, field("high", offset + 4, 4, high)),
                    );
            }),
    },
];

const commandCounterexamples: Counterexample[] = [
    {
        name: "a register request with a body",
        reason: "register body not empty",
        arbitrary: where(Command.request, isRegister).chain((source) =>
            fc.integer({ min: 1, max: bodySizeMax }).map((size) => withBody(source, sized(size))),
        ),
    },
    {
        name: "a register request with a session",
        reason: "register session != 0",
        arbitrary: where(Command.request, isRegister).chain((source) =>
            u64Positive.map((session) =>
                withPatches(source, field("session", Request.session, 8, session)),
            ),
        ),
    },
    {
        name: "a kv request with request number 0",
        reason: "request number == 0",
        arbitrary: where(Command.request, isKv).map((source) =>
            withPatches(source, field("request", Request.request, 4, 0)),
        ),
    },
    {
        name: "a kv request without events",
        reason: "request body empty",
        arbitrary: where(Command.request, isKv).map((source) => withBody(source, empty)),
    },
    {
        name: "a kv request with a partial event",
        reason: "request body not a whole number of events",
        arbitrary: where(Command.request, isKv).chain((source) =>
            notEvents.map((size) => withBody(source, sized(size))),
        ),
    },
    {
        name: "a kv request of 30 events (the first whole-event size beyond the bound)",
        reason: "request too large",
        arbitrary: where(Command.request, isKv).chain((source) =>
            fc
                .uint8Array({
                    minLength: (entryEventsMax + 1) * kvEventSize,
                    maxLength: (entryEventsMax + 1) * kvEventSize,
                })
                .map((body) => withBody(source, body)),
        ),
    },
    {
        name: "a kv request of more than 3776 body bytes",
        reason: "request too large",
        arbitrary: where(Command.request, isKv).chain((source) =>
            fc
                .integer({ min: requestBodySizeMax + 1, max: bodySizeMax })
                .map((size) => withBody(source, sized(size))),
        ),
    },
    {
        name: "a request from client 0",
        reason: "request client == 0",
        arbitrary: oneField(Command.request, "client", Request.client, 16, zero128),
    },
    {
        name: "a request with an unknown operation",
        reason: "request operation unknown",
        arbitrary: oneField(
            Command.request,
            "operation",
            Request.operation,
            1,
            u8.filter((value) => value !== Operation.register && value !== Operation.kv),
        ),
    },
    {
        name: "a root prepare with op != 0",
        reason: "root op != 0",
        arbitrary: where(Command.prepare, isRoot).chain((source) =>
            u64Positive.map((op) => withPatches(source, field("op", Prepare.op, 8, op))),
        ),
    },
    {
        name: "a root prepare with a body",
        reason: "root body not empty",
        arbitrary: where(Command.prepare, isRoot).chain((source) =>
            fc.integer({ min: 1, max: bodySizeMax }).map((size) => withBody(source, sized(size))),
        ),
    },
    {
        name: "a root prepare with a parent",
        reason: "root parent != 0",
        arbitrary: where(Command.prepare, isRoot).chain((source) =>
            u128NonZero.map((parent) =>
                withPatches(source, field("parent", Prepare.parent, 16, parent)),
            ),
        ),
    },
    {
        name: "a root prepare with a commit",
        reason: "root commit != 0",
        arbitrary: where(Command.prepare, isRoot).chain((source) =>
            u64Positive.map((commit) =>
                withPatches(source, field("commit", Prepare.commit, 8, commit)),
            ),
        ),
    },
    {
        name: "a root prepare with requests",
        reason: "root requests",
        arbitrary: where(Command.prepare, isRoot).chain((source) =>
            u32Positive.map((count) =>
                withPatches(source, field("requestCount", Prepare.requestCount, 4, count)),
            ),
        ),
    },
    {
        name: "a prepare with an unknown operation",
        reason: "prepare operation unknown",
        arbitrary: oneField(
            Command.prepare,
            "operation",
            Prepare.operation,
            1,
            u8.filter((value) => value !== Operation.root && value !== Operation.batch),
        ),
    },
    {
        name: "a batch prepare with op 0",
        reason: "prepare op == 0",
        arbitrary: where(Command.prepare, isBatch).map((source) =>
            withPatches(source, field("op", Prepare.op, 8, 0)),
        ),
    },
    {
        name: "a batch prepare with commit ≥ op",
        reason: "prepare commit >= op",
        arbitrary: where(Command.prepare, isBatch).chain((source) =>
            fc
                .integer({ min: fieldValue(source, "op"), max: u64Max })
                .map((commit) => withPatches(source, field("commit", Prepare.commit, 8, commit))),
        ),
    },
    {
        name: "a batch prepare with timestamp 0",
        reason: "prepare timestamp == 0",
        arbitrary: where(Command.prepare, isBatch).map((source) =>
            withPatches(source, field("timestamp", Prepare.timestamp, 8, 0)),
        ),
    },
    {
        name: "a batch prepare without requests",
        reason: "prepare without requests",
        arbitrary: where(Command.prepare, isBatch).map((source) =>
            withPatches(source, field("requestCount", Prepare.requestCount, 4, 0)),
        ),
    },
    {
        name: "a batch prepare without a body",
        reason: "prepare body empty",
        arbitrary: where(Command.prepare, isBatch).map((source) => withBody(source, empty)),
    },
    {
        name: "a reply to client 0",
        reason: "reply client == 0",
        arbitrary: oneField(Command.reply, "client", Reply.client, 16, zero128),
    },
    {
        name: "a reply with op 0",
        reason: "reply op == 0",
        arbitrary: oneField(Command.reply, "op", Reply.op, 8, fc.constant(0)),
    },
    {
        name: "a do_view_change with log_view > view",
        reason: "log_view > view",
        arbitrary: arbitraryOf(Command.doViewChange)
            .filter((source) => source.view < 0xffff_ffff)
            .chain((source) =>
                fc
                    .integer({ min: source.view + 1, max: 0xffff_ffff })
                    .map((logView) =>
                        withPatches(source, field("logView", DoViewChange.logView, 4, logView)),
                    ),
            ),
    },
    {
        name: "a do_view_change with commit_max > op",
        reason: "commit_max > op",
        arbitrary: arbitraryOf(Command.doViewChange)
            .filter((s) => fieldValue(s, "op") < u64Max)
            .chain((source) =>
                fc
                    .integer({ min: fieldValue(source, "op") + 1, max: u64Max })
                    .map((commitMax) =>
                        withPatches(
                            source,
                            field("commitMax", DoViewChange.commitMax, 8, commitMax),
                        ),
                    ),
            ),
    },
    {
        name: "a do_view_change with headers_op > op",
        reason: "headers_op > op",
        arbitrary: arbitraryOf(Command.doViewChange)
            .filter((s) => fieldValue(s, "op") < u64Max)
            .chain((source) =>
                fc
                    .integer({ min: fieldValue(source, "op") + 1, max: u64Max })
                    .map((headersOp) =>
                        withPatches(
                            source,
                            field("headersOp", DoViewChange.headersOp, 8, headersOp),
                        ),
                    ),
            ),
    },
    {
        name: "a start_view with commit_max > op",
        reason: "commit_max > op",
        arbitrary: arbitraryOf(Command.startView)
            .filter((s) => fieldValue(s, "op") < u64Max)
            .chain((source) =>
                fc
                    .integer({ min: fieldValue(source, "op") + 1, max: u64Max })
                    .map((commitMax) =>
                        withPatches(source, field("commitMax", StartView.commitMax, 8, commitMax)),
                    ),
            ),
    },
    {
        name: "a request_headers with op_min > op_max",
        reason: "op_min > op_max",
        arbitrary: arbitraryOf(Command.requestHeaders)
            .filter((source) => fieldValue(source, "opMax") < u64Max)
            .chain((source) =>
                fc
                    .integer({ min: fieldValue(source, "opMax") + 1, max: u64Max })
                    .map((opMin) =>
                        withPatches(source, field("opMin", RequestHeaders.opMin, 8, opMin)),
                    ),
            ),
    },
    {
        name: "a pong to a hello (ping time 0)",
        reason: "pong ping time == 0",
        arbitrary: oneField(
            Command.pong,
            "pingMonotonicUs",
            Pong.pingMonotonicUs,
            8,
            fc.constant(0),
        ),
    },
    {
        name: "a pong without a wall clock",
        reason: "pong realtime == 0",
        arbitrary: oneField(Command.pong, "pongRealtimeUs", Pong.pongRealtimeUs, 8, fc.constant(0)),
    },
    {
        name: "an eviction of client 0",
        reason: "eviction client == 0",
        arbitrary: oneField(Command.eviction, "client", Eviction.client, 16, zero128),
    },
    {
        name: "a peer_status with an unknown status",
        reason: "peer_status status > 2",
        arbitrary: oneField(
            Command.peerStatus,
            "status",
            PeerStatus.status,
            1,
            fc.integer({ min: 3, max: 255 }),
        ),
    },
    {
        name: "a peer_status with a primary flag above 1",
        reason: "peer_status primary > 1",
        arbitrary: oneField(
            Command.peerStatus,
            "primary",
            PeerStatus.primary,
            1,
            fc.integer({ min: 2, max: 255 }),
        ),
    },
    {
        name: "a peer_status with non-zero padding",
        reason: "padding",
        arbitrary: oneField(
            Command.peerStatus,
            "padding",
            PeerStatus.padding,
            1,
            fc.integer({ min: 1, max: 255 }),
        ),
    },
    {
        name: "an eviction without a reason",
        reason: "eviction reason == 0",
        arbitrary: oneField(Command.eviction, "reason", Eviction.reason, 1, fc.constant(0)),
    },
    {
        name: "an eviction with a reason this build does not know",
        reason: "eviction reason unknown",
        arbitrary: oneField(
            Command.eviction,
            "reason",
            Eviction.reason,
            1,
            fc.integer({ min: EvictionReason.wrongCluster + 1, max: 255 }),
        ),
    },
    {
        name: "a block without a chunk",
        reason: "block chunk empty",
        arbitrary: arbitraryOf(Command.block).map((source) => withBody(source, empty)),
    },
    {
        name: "a block of zero bytes or of a part of a sector",
        reason: "block size not whole sectors",
        arbitrary: arbitraryOf(Command.block).chain((source) =>
            fc
                .oneof(
                    fc.constant(0),
                    u32.filter((size) => size % 4096 !== 0),
                )
                .map((blockSize) =>
                    withPatches(source, field("blockSize", Block.blockSize, 4, blockSize)),
                ),
        ),
    },
    {
        name: "a block chunk that ends past the block",
        reason: "block chunk beyond the block",
        arbitrary: arbitraryOf(Command.block).chain((source) => {
            // The first offset that overruns, or any above it up to 2^32 - 1.
            const first = fieldValue(source, "blockSize") - source.body.length + 1;
            return fc
                .oneof(fc.constant(first), fc.integer({ min: first, max: 0xffff_ffff }))
                .map((offset) => withPatches(source, field("offset", Block.offset, 4, offset)));
        }),
    },
    {
        name: "a sync without a chunk",
        reason: "sync chunk empty",
        arbitrary: arbitraryOf(Command.sync).map((source) => withBody(source, empty)),
    },
    {
        name: "a sync whose stream ends before the chunk does",
        reason: "sync chunk beyond the stream",
        arbitrary: arbitraryOf(Command.sync).chain((source) => {
            const end = fieldValue(source, "offset") + source.body.length;
            return fc
                .oneof(fc.constant(end - 1), fc.integer({ min: 0, max: end - 1 }))
                .map((streamSize) =>
                    withPatches(source, field("streamSize", Sync.streamSize, 8, streamSize)),
                );
        }),
    },
    {
        name: "a sync whose chunk starts too late in the stream",
        reason: "sync chunk beyond the stream",
        arbitrary: arbitraryOf(Command.sync).chain((source) => {
            // The first offset that overruns, or any above it up to 2^53 - 1 (offset + body
            // size may then pass 2^53, where doubles round, and must still be rejected).
            const first = fieldValue(source, "streamSize") - source.body.length + 1;
            return fc
                .oneof(fc.constant(first), fc.integer({ min: first, max: u64Max }))
                .map((offset) => withPatches(source, field("offset", Sync.offset, 8, offset)));
        }),
    },
    {
        name: "a sync whose chunk grew past the stream's end",
        reason: "sync chunk beyond the stream",
        arbitrary: where(
            Command.sync,
            (source) => fieldValue(source, "offset") + bodySizeMax <= u64Max,
        ).chain((source) => {
            // Move the stream's end to `room` bytes past the offset, then send a longer body.
            const offset = fieldValue(source, "offset");
            return fc
                .integer({ min: 1, max: bodySizeMax - 1 })
                .chain((room) =>
                    fc
                        .integer({ min: room + 1, max: bodySizeMax })
                        .map((size) =>
                            withPatches(
                                withBody(source, sized(size)),
                                field("streamSize", Sync.streamSize, 8, offset + room),
                            ),
                        ),
                );
        }),
    },
];

// The u64 rule once per command with u64 fields (the shared counterexample above draws one
// command per run, so a command, such as request_sync or sync, could go untested for a run).
for (const [command, offsets] of u64Offsets) {
    const name = commandNames.find(([, value]) => value === command)![0];
    commandCounterexamples.push({
        name: `${article(name)} ${name} with a u64 field above 2^53`,
        reason: "u64 above 2^53",
        arbitrary: arbitraryOf(command).chain((source) =>
            fc
                .tuple(
                    fc.constantFrom(...offsets),
                    fc.oneof(
                        fc.constant(0x20_0000),
                        fc.integer({ min: 0x20_0000, max: 0xffff_ffff }),
                    ),
                )
                .map(([offset, high]) => withPatches(source, field("high", offset + 4, 4, high))),
        ),
    });
}

for (const command of headerArrayCommands) {
    const name = commandNames.find(([, value]) => value === command)![0];
    commandCounterexamples.push(
        {
            name: `a ${name} without headers`,
            reason: "header array empty",
            arbitrary: arbitraryOf(command).map((source) => withBody(source, empty)),
        },
        {
            name: `a ${name} with a partial header`,
            reason: "body not a whole number of headers",
            arbitrary: arbitraryOf(command).chain((source) =>
                notHeaders.map((size) => withBody(source, sized(size))),
            ),
        },
    );
}

const emptyBodyCommands: readonly number[] = [
    Command.ping,
    Command.pong,
    Command.prepareOk,
    Command.commit,
    Command.startViewChange,
    Command.requestHeaders,
    Command.requestPrepare,
    Command.eviction,
    Command.requestSync,
    Command.requestBlock,
    Command.peerStatus,
];
for (const command of emptyBodyCommands) {
    const name = commandNames.find(([, value]) => value === command)![0];
    commandCounterexamples.push({
        name: `${article(name)} ${name} with a body`,
        reason: "body not empty",
        arbitrary: arbitraryOf(command).chain((source) =>
            fc.integer({ min: 1, max: bodySizeMax }).map((size) => withBody(source, sized(size))),
        ),
    });
}

for (const counterexample of [...frameCounterexamples, ...commandCounterexamples]) {
    test(`invalidHeader rejects ${counterexample.name} ("${counterexample.reason}")`, () => {
        fc.assert(
            fc.property(counterexample.arbitrary, placement, (source, at) => {
                encode(arenaBytes, arenaView, at.arenaBase, source);
                assert.ok(validHeaderChecksum(arenaBytes, at.arenaBase), "re-hashed");
                const reason = invalidHeader(arenaView, at.arenaBase, messageSizeMax);
                assert.equal(reason, counterexample.reason, describe(source));
            }),
            { numRuns: 50 },
        );
    });
}

// Batch counterexamples: the prepare header stays valid, the body breaks one batch rule.

/** A batch prepare whose first entry (at body offset 0) is rewritten by `change`. */
function firstEntry(change: (entry: DataView) => void): fc.Arbitrary<Message> {
    return batchPrepare.map((source) => {
        const body = source.body.slice();
        change(new DataView(body.buffer, 0, batchEntryHeaderSize));
        return withBody(source, body);
    });
}

const batchCounterexamples: Counterexample[] = [
    {
        name: "more requests than entries",
        reason: "batch entry beyond body",
        arbitrary: batchPrepare.map((source) =>
            withPatches(
                source,
                field(
                    "requestCount",
                    Prepare.requestCount,
                    4,
                    fieldValue(source, "requestCount") + 1,
                ),
            ),
        ),
    },
    {
        name: "fewer requests than entries",
        reason: "batch body size mismatch",
        arbitrary: batchPrepare
            .filter((source) => fieldValue(source, "requestCount") >= 2)
            .map((source) =>
                withPatches(
                    source,
                    field(
                        "requestCount",
                        Prepare.requestCount,
                        4,
                        fieldValue(source, "requestCount") - 1,
                    ),
                ),
            ),
    },
    {
        name: "trailing bytes after the last entry",
        reason: "batch body size mismatch",
        arbitrary: batchPrepare
            .filter((source) => source.body.length < bodySizeMax)
            .chain((source) =>
                fc
                    .integer({ min: 1, max: bodySizeMax - source.body.length })
                    .map((extra) => withBody(source, concat([source.body, sized(extra)]))),
            ),
    },
    {
        name: "a register entry with events",
        reason: "register with events",
        arbitrary: firstEntry((entry) => {
            entry.setUint8(BatchEntry.operation, Operation.register);
            entry.setUint32(BatchEntry.eventCount, 1, true);
        }),
    },
    {
        name: "a kv entry without events",
        reason: "kv entry without events",
        arbitrary: firstEntry((entry) => {
            entry.setUint8(BatchEntry.operation, Operation.kv);
            entry.setUint32(BatchEntry.eventCount, 0, true);
        }),
    },
    {
        name: "an entry with an unknown operation",
        reason: "batch entry operation unknown",
        arbitrary: firstEntry((entry) => entry.setUint8(BatchEntry.operation, Operation.root)),
    },
    {
        name: "an entry from client 0",
        reason: "batch entry client == 0",
        arbitrary: firstEntry((entry) => {
            for (let index = 0; index < 16; index++) entry.setUint8(BatchEntry.client + index, 0);
        }),
    },
    {
        name: "an entry with a session above 2^53",
        reason: "session",
        arbitrary: firstEntry((entry) => entry.setUint32(BatchEntry.session + 4, 0x20_0000, true)),
    },
];

for (const counterexample of batchCounterexamples) {
    test(`invalidBatch rejects ${counterexample.name} ("${counterexample.reason}")`, () => {
        fc.assert(
            fc.property(counterexample.arbitrary, placement, (source, at) => {
                encode(arenaBytes, arenaView, at.arenaBase, source);
                assert.equal(invalidHeader(arenaView, at.arenaBase, messageSizeMax), null);
                const reason = invalidBatch(arenaView, at.arenaBase);
                assert.equal(reason, counterexample.reason, describe(source));
            }),
            { numRuns: 50 },
        );
    });
}

// Every reserved byte must be zero: a stale buffer can never bleed into a valid message.
test("invalidBatch rejects a nonzero reserved byte in an entry", () => {
    const reservedOffsets = [45, 46, 47, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63];
    const value = fc.integer({ min: 1, max: 0xff });
    const arbitrary = fc
        .tuple(fc.constantFrom(...reservedOffsets), value)
        .chain(([offset, value]) => firstEntry((entry) => entry.setUint8(offset, value)));
    fc.assert(
        fc.property(arbitrary, (source) => {
            encode(plainBytes, plainView, 0, source);
            assert.equal(invalidHeader(plainView, 0, messageSizeMax), null);
            assert.notEqual(invalidBatch(plainView, 0), null, describe(source));
        }),
        { numRuns: 50 },
    );
});

// ---------------------------------------------------------------------------------------------
// 5. u64 codec and the offset tables.

test("writeU64 then readU64 round-trips every safe integer at any offset", () => {
    const bytes = new Uint8Array(64);
    const view = new DataView(bytes.buffer);
    fc.assert(
        fc.property(fc.maxSafeNat(), fc.integer({ min: 0, max: 56 }), (value, offset) => {
            writeU64(view, offset, value);
            assert.equal(readU64(view, offset), value);
            assert.equal(view.getBigUint64(offset, true), BigInt(value)); // An independent oracle.
        }),
        { numRuns: 1000 },
    );
});

test("readU64 and writeU64 crash on values above 2^53 - 1", () => {
    const view = new DataView(new ArrayBuffer(8));
    assert.throws(() => writeU64(view, 0, u64Max + 1), AssertionError);
    view.setUint32(4, 0x20_0000, true);
    assert.throws(() => readU64(view, 0), AssertionError);
});

/** Each field's width; 0 means "to the end of the table" (reserved tails). */
const layouts: ReadonlyArray<{
    name: string;
    table: Readonly<Record<string, number>>;
    widths: Readonly<Record<string, number>>;
    start: number;
    end: number;
}> = [
    {
        name: "Frame",
        table: Frame,
        start: 0,
        end: headerSize,
        widths: {
            checksum: 16,
            checksumPadding: 16,
            checksumBody: 16,
            checksumBodyPadding: 16,
            nonceReserved: 16,
            cluster: 4,
            clusterReserved: 12,
            size: 4,
            epoch: 4,
            view: 4,
            release: 4,
            protocol: 2,
            command: 1,
            replica: 1,
            reserved: 12,
            custom: 0,
        },
    },
    {
        name: "Prepare",
        table: Prepare,
        start: Frame.custom,
        end: headerSize,
        widths: {
            parent: 16,
            op: 8,
            commit: 8,
            timestamp: 8,
            requestCount: 4,
            operation: 1,
            reserved: 0,
        },
    },
    {
        name: "PrepareOk",
        table: PrepareOk,
        start: Frame.custom,
        end: headerSize,
        widths: { prepareChecksum: 16, op: 8, commitMin: 8, reserved: 0 },
    },
    {
        name: "Request",
        table: Request,
        start: Frame.custom,
        end: headerSize,
        widths: { client: 16, session: 8, request: 4, operation: 1, reserved: 0 },
    },
    {
        name: "Reply",
        table: Reply,
        start: Frame.custom,
        end: headerSize,
        widths: {
            requestChecksum: 16,
            client: 16,
            op: 8,
            commit: 8,
            session: 8,
            request: 4,
            operation: 1,
            reserved: 0,
        },
    },
    {
        name: "Commit",
        table: Commit,
        start: Frame.custom,
        end: headerSize,
        widths: { commitChecksum: 16, commit: 8, reserved: 0 },
    },
    {
        name: "StartViewChange",
        table: StartViewChange,
        start: Frame.custom,
        end: headerSize,
        widths: { reserved: 0 },
    },
    {
        name: "DoViewChange",
        table: DoViewChange,
        start: Frame.custom,
        end: headerSize,
        widths: {
            op: 8,
            commitMax: 8,
            logView: 4,
            nackBitset: 4,
            presentBitset: 4,
            headersOp: 8,
            logViewOp: 8,
            reserved: 0,
        },
    },
    {
        name: "StartView",
        table: StartView,
        start: Frame.custom,
        end: headerSize,
        widths: { op: 8, commitMax: 8, reserved: 0 },
    },
    {
        name: "RequestHeaders",
        table: RequestHeaders,
        start: Frame.custom,
        end: headerSize,
        widths: { opMin: 8, opMax: 8, reserved: 0 },
    },
    {
        name: "RequestPrepare",
        table: RequestPrepare,
        start: Frame.custom,
        end: headerSize,
        widths: { prepareChecksum: 16, prepareOp: 8, reserved: 0 },
    },
    {
        name: "Headers",
        table: Headers,
        start: Frame.custom,
        end: headerSize,
        widths: { reserved: 0 },
    },
    {
        name: "Ping",
        table: Ping,
        start: Frame.custom,
        end: headerSize,
        widths: { pingMonotonicUs: 8, reserved: 0 },
    },
    {
        name: "Pong",
        table: Pong,
        start: Frame.custom,
        end: headerSize,
        widths: { pingMonotonicUs: 8, pongRealtimeUs: 8, reserved: 0 },
    },
    {
        name: "RequestSync",
        table: RequestSync,
        start: Frame.custom,
        end: headerSize,
        widths: { commitMin: 8, offset: 8, reserved: 0 },
    },
    {
        name: "RequestReply",
        table: RequestReply,
        start: Frame.custom,
        end: headerSize,
        widths: { client: 16, replyOp: 8, reserved: 0 },
    },
    {
        name: "RequestBlock",
        table: RequestBlock,
        start: Frame.custom,
        end: headerSize,
        widths: { blockChecksum: 16, address: 4, reserved: 0 },
    },
    {
        name: "Block",
        table: Block,
        start: Frame.custom,
        end: headerSize,
        widths: { blockChecksum: 16, address: 4, offset: 4, blockSize: 4, reserved: 0 },
    },
    {
        name: "Sync",
        table: Sync,
        start: Frame.custom,
        end: headerSize,
        widths: {
            checkpointOp: 8,
            offset: 8,
            streamSize: 8,
            indexChecksum: 16,
            sessionsChecksum: 16,
            anchorChecksum: 16,
            reserved: 0,
        },
    },
    {
        name: "Eviction",
        table: Eviction,
        start: Frame.custom,
        end: headerSize,
        widths: { client: 16, session: 8, reason: 1, reserved: 0 },
    },
    {
        name: "BatchEntry",
        table: BatchEntry,
        start: 0,
        end: batchEntryHeaderSize,
        widths: {
            client: 16,
            requestChecksum: 16,
            session: 8,
            request: 4,
            operation: 1,
            reserved: 3,
            eventCount: 4,
            reservedTail: 12,
        },
    },
];

for (const layout of layouts) {
    test(`the ${layout.name} offsets increase and tile [${layout.start}, ${layout.end})`, () => {
        // Same keys in the same order: a new field must be given a width here.
        assert.deepEqual(Object.keys(layout.table), Object.keys(layout.widths));
        let expected = layout.start;
        for (const [key, offset] of Object.entries(layout.table)) {
            assert.equal(offset, expected, `${layout.name}.${key} starts where the last ends`);
            assert.ok(offset < layout.end, `${layout.name}.${key} < ${layout.end}`);
            const width = layout.widths[key]!;
            expected = width === 0 ? layout.end : offset + width;
        }
        assert.equal(expected, layout.end, `${layout.name} ends at ${layout.end}`);
    });
}
