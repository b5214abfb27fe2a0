// The journal's prepare cache and read path (src/vsr/journal.ts) against a storage whose reads and
// writes complete when the test says, in any order, and may fail: the cache never holds more
// than prepareCacheMax prepares and never evicts one not yet written; a prepare the cache dropped
// is read back from disk and handed to the read callback with the replicas that asked for it; a
// read that fails or returns other bytes makes the slot faulty; a read of a slot that changed
// meanwhile is discarded. A model-based property drives random puts, reads, completions, disk
// corruption and slot changes; every failure prints its seed (FC_SEED replays it).

import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";

import { headerSize, test as testConfig } from "../../src/constants.js";
import { Arena } from "../../src/vsr/arena.js";
import { checksumAttach } from "../../src/vsr/checksum.js";
import { Command, Frame, Prepare, setChecksums, writeU64 } from "../../src/vsr/header.js";
import { IoResult, type Storage, type StorageCompletion } from "../../src/vsr/interfaces.js";
import { Journal } from "../../src/vsr/journal.js";
import { type Layout, layout } from "../../src/vsr/layout.js";
import { type Message, MessagePool } from "../../src/vsr/message_pool.js";

const config = testConfig;
const slotCount = config.journalSlotCount;
const cacheMax = config.prepareCacheMax;
/** A prepare of a header and one sector-filling body, so a body flip is caught by checksum. */
const prepareSize = 2 * headerSize;

interface Io {
    completion: StorageCompletion;
    bufferOffset: number;
    size: number;
    offset: number;
    write: boolean;
    /** A read by a write's completion: the journal verifying a prepare write. */
    readBack: boolean;
}

/** Reads and writes land (copy between `disk` and the arena) only when the test completes them. */
class ManualStorage implements Storage {
    readonly sizeBytes: number;
    readonly disk: Uint8Array;
    readonly pending: Io[] = [];
    readonly arena: Arena;
    /** Reads of prepares (not the read-backs that verify writes). */
    reads = 0;
    private readonly writers = new Set<StorageCompletion>();

    constructor(arena: Arena, dataLayout: Layout) {
        this.arena = arena;
        this.sizeBytes = dataLayout.walPreparesOffset + dataLayout.walPreparesSize;
        this.disk = new Uint8Array(this.sizeBytes);
    }

    read(completion: StorageCompletion, bufferOffset: number, size: number, offset: number) {
        const readBack = this.writers.has(completion);
        if (!readBack) this.reads++;
        this.pending.push({ completion, bufferOffset, size, offset, write: false, readBack });
    }

    write(completion: StorageCompletion, bufferOffset: number, size: number, offset: number) {
        this.writers.add(completion);
        this.pending.push({ completion, bufferOffset, size, offset, write: true, readBack: false });
    }

    /** Completes the pending I/O at `index`: it lands unless it fails. */
    complete(index: number, ok: boolean): void {
        const [io] = this.pending.splice(index, 1);
        assert.ok(io !== undefined);
        const bytes = this.arena.bytes;
        if (ok && io.write) {
            this.disk.set(bytes.subarray(io.bufferOffset, io.bufferOffset + io.size), io.offset);
        } else if (ok) {
            bytes.set(this.disk.subarray(io.offset, io.offset + io.size), io.bufferOffset);
        }
        io.completion.result = ok ? IoResult.ok : IoResult.error;
        io.completion.callback(io.completion);
    }

    /** Completes every pending write and read-back (ok), and those their completions start. */
    drainWrites(): void {
        for (let round = 0; round < 10_000; round++) {
            const index = this.pending.findIndex((io) => io.write || io.readBack);
            if (index < 0) return;
            this.complete(index, true);
        }
        assert.fail("writes did not drain");
    }
}

interface Landed {
    op: number;
    destinations: number;
    /** The prepare's bytes as handed to the callback. */
    bytes: Uint8Array;
    /** The view of the op's latest put when the read landed (-1: unknown). */
    view: number;
}

interface World {
    arena: Arena;
    pool: MessagePool;
    storage: ManualStorage;
    journal: Journal;
    dataLayout: Layout;
    landed: Landed[];
    /** Op → the view of its latest put the journal took (kept by the tests that need it). */
    views: Map<number, number>;
    messagesMax: number;
}

function world(): World {
    const dataLayout = layout(config, 0);
    const messagesMax = cacheMax + config.journalReadsMax + config.journalWritesMax + 8;
    const arena = new Arena(
        MessagePool.sizeBytes(config.messageSizeMax, messagesMax) +
            3 * dataLayout.walHeadersSize +
            config.journalWritesMax * 4096 +
            64 * 1024,
    );
    checksumAttach(arena.memory);
    const pool = new MessagePool(arena, config.messageSizeMax, messagesMax);
    const storage = new ManualStorage(arena, dataLayout);
    const landed: Landed[] = [];
    const views = new Map<number, number>();
    const onRead = (op: number, message: Message, destinations: number): void => {
        const bytes = arena.bytes.slice(message.offset, message.offset + prepareSize);
        landed.push({ op, destinations, bytes, view: views.get(op) ?? -1 });
    };
    const journal = new Journal(config, arena, pool, storage, dataLayout, () => {}, false, onRead);
    return { arena, pool, storage, journal, dataLayout, landed, views, messagesMax };
}

/** Builds the prepare of `op` in `view` at `base`: its body bytes depend on both. */
function build(w: World, base: number, op: number, view: number): void {
    const bytes = w.arena.bytes;
    bytes.fill(0, base, base + prepareSize);
    for (let index = headerSize; index < prepareSize; index++) bytes[base + index] = op + view;
    w.arena.view.setUint32(base + Frame.size, prepareSize, true);
    w.arena.view.setUint8(base + Frame.command, Command.prepare);
    w.arena.view.setUint32(base + Frame.view, view, true);
    writeU64(w.arena.view, base + Prepare.op, op);
    setChecksums(bytes, w.arena.view, base);
}

/** Installs and puts the prepare of `op` in `view`; returns whether the journal took it. */
function put(w: World, op: number, view: number): boolean {
    const message = w.pool.acquire();
    build(w, message.offset, op, view);
    w.journal.setHeader(message.offset);
    const stored = w.journal.putPrepare(message);
    w.pool.unref(message);
    return stored;
}

/** The expected bytes of the prepare of `op` in `view`. */
function expected(w: World, op: number, view: number): Uint8Array {
    const message = w.pool.acquire();
    build(w, message.offset, op, view);
    const bytes = w.arena.bytes.slice(message.offset, message.offset + prepareSize);
    w.pool.unref(message);
    return bytes;
}

/** Puts ops 1..count in view 0, each written before the next (so each is taken). */
function putWritten(w: World, count: number): void {
    for (let op = 1; op <= count; op++) {
        assert.ok(put(w, op, 0));
        w.storage.drainWrites();
    }
}

function completeReads(w: World): void {
    for (let round = 0; round < 1000; round++) {
        const index = w.storage.pending.findIndex((io) => !io.write);
        if (index < 0) return;
        w.storage.complete(index, true);
    }
}

test("the cache keeps at most prepareCacheMax prepares; a dropped one is read back", () => {
    const w = world();
    const count = 3 * cacheMax;
    for (let op = 1; op <= count; op++) {
        assert.ok(put(w, op, 0));
        w.storage.drainWrites();
        w.journal.invariants();
    }
    assert.equal(w.journal.preparesHeld(), cacheMax);
    assert.equal(w.journal.prepare(1), null, "the oldest was evicted");
    assert.ok(w.journal.hasPrepare(1) && w.journal.isDurable(1));
    const reads = w.storage.reads;
    assert.equal(w.journal.readPrepare(1, -1), null);
    assert.equal(w.journal.readPrepare(1, 2), null, "joins the read in flight");
    assert.equal(w.journal.readPrepare(1, 0), null);
    assert.equal(w.storage.reads, reads + 1, "one read of the slot");
    assert.equal(w.journal.cacheMisses, 3);
    completeReads(w);
    assert.equal(w.landed.length, 1);
    const landed = w.landed[0];
    assert.ok(landed !== undefined);
    assert.equal(landed.op, 1);
    assert.equal(landed.destinations, 0b101);
    assert.deepEqual(landed.bytes, expected(w, 1, 0));
    const hit = w.journal.readPrepare(1, -1);
    assert.ok(hit !== null);
    assert.equal(w.journal.cacheHits, 1);
    assert.equal(w.journal.readErrors, 0);
    w.journal.invariants();
    w.journal.releaseAll();
    assert.equal(w.pool.free, w.messagesMax, "the journal leaked pool messages");
});

test("a prepare not yet written is never evicted: a full cache of them refuses a put", () => {
    const w = world();
    for (let op = 1; op <= cacheMax; op++) assert.ok(put(w, op, 0));
    assert.equal(w.journal.prepareCacheRoom(), false);
    assert.equal(put(w, cacheMax + 1, 0), false);
    assert.equal(w.journal.cacheRefusals, 1);
    assert.equal(w.journal.hasPrepare(cacheMax + 1), false);
    w.journal.invariants();
    w.storage.drainWrites();
    assert.equal(w.journal.prepareCacheRoom(), true);
    assert.ok(put(w, cacheMax + 1, 0));
    w.storage.drainWrites();
    for (let op = 1; op <= cacheMax + 1; op++) assert.ok(w.journal.isDurable(op));
    w.journal.invariants();
});

test("a read that fails or returns other bytes makes the slot faulty until a new copy is durable", () => {
    for (const damage of ["eio", "body", "misdirected"] as const) {
        const w = world();
        putWritten(w, 2 * cacheMax);
        const op = 1;
        const slotOffset =
            w.dataLayout.walPreparesOffset + (op % slotCount) * config.messageSizeMax;
        if (damage === "body") w.storage.disk[slotOffset + headerSize + 7]! ^= 1;
        if (damage === "misdirected") {
            // The slot still holds another prepare of the same op (an older view's, say).
            const other = expected(w, op, 9);
            w.storage.disk.set(other, slotOffset);
        }
        assert.equal(w.journal.readPrepare(op, 1), null);
        const index = w.storage.pending.findIndex((io) => !io.write && !io.readBack);
        w.storage.complete(index, damage !== "eio");
        assert.equal(w.landed.length, 0, damage);
        assert.equal(w.journal.readErrors, 1, damage);
        assert.ok(w.journal.isFaulty(op), damage);
        assert.equal(w.journal.hasPrepare(op), false, damage);
        assert.ok(w.journal.hasHeader(op), "the header stays: repair targets it");
        w.journal.invariants();
        assert.ok(put(w, op, 0));
        // Held again, but the disk does not hold it yet: still never nacked (storm seed 356).
        assert.ok(w.journal.hasPrepare(op) && w.journal.isFaulty(op), damage);
        w.journal.invariants();
        w.storage.drainWrites();
        assert.ok(w.journal.isDurable(op));
        assert.equal(w.journal.isFaulty(op), false);
        w.journal.invariants();
    }
});

test("a read of a slot whose prepare changed meanwhile is discarded", () => {
    const w = world();
    putWritten(w, 2 * cacheMax);
    assert.equal(w.journal.readPrepare(1, -1), null);
    const newer = 1 + slotCount;
    assert.ok(put(w, newer, 3)); // A later wrap takes the slot before the read lands.
    completeReads(w);
    assert.equal(w.landed.length, 0);
    assert.equal(w.journal.readErrors, 0);
    w.storage.drainWrites();
    assert.ok(w.journal.isDurable(newer));
    w.journal.invariants();
});

test("random puts, reads, completions, failures and corruption keep the cache's promises", () => {
    // Ops over a bit more than one lap: slots are reused, and most ops outlive their cache entry.
    const op = fc.integer({ min: 1, max: slotCount + 16 });
    const action = fc.oneof(
        fc.record({ kind: fc.constant("put" as const), op }),
        fc.record({
            kind: fc.constant("read" as const),
            op,
            replica: fc.integer({ min: -1, max: 5 }),
        }),
        fc.record({ kind: fc.constant("complete" as const), pick: fc.nat(), ok: fc.boolean() }),
        fc.record({ kind: fc.constant("corrupt" as const), op }),
        fc.record({ kind: fc.constant("drain" as const) }),
    );
    const seed = Number(process.env.FC_SEED ?? 0xcace);
    let reads = 0;
    fc.assert(
        fc.property(fc.array(action, { minLength: 100, maxLength: 300 }), (actions) => {
            const w = world();
            const views = w.views;
            let view = 0;
            for (const step of actions) {
                if (step.kind === "put") {
                    view++;
                    if (put(w, step.op, view)) views.set(step.op, view);
                } else if (step.kind === "read") {
                    const message = w.journal.readPrepare(step.op, step.replica);
                    if (message !== null) {
                        const bytes = w.arena.bytes.slice(
                            message.offset,
                            message.offset + prepareSize,
                        );
                        assert.deepEqual(bytes, expected(w, step.op, views.get(step.op) ?? -1));
                    }
                } else if (step.kind === "complete" && w.storage.pending.length > 0) {
                    w.storage.complete(step.pick % w.storage.pending.length, step.ok);
                } else if (step.kind === "drain") {
                    w.storage.drainWrites();
                } else if (step.kind === "corrupt") {
                    const slot = step.op % slotCount;
                    const offset = w.dataLayout.walPreparesOffset + slot * config.messageSizeMax;
                    w.storage.disk[offset + headerSize + 3]! ^= 0x10;
                }
                w.journal.invariants();
                assert.ok(w.journal.preparesHeld() <= cacheMax);
            }
            // Whatever a read handed over was the latest put of its op, byte for byte.
            for (const landed of w.landed) {
                assert.deepEqual(landed.bytes, expected(w, landed.op, landed.view));
            }
            reads += w.landed.length;
            w.storage.drainWrites();
            completeReads(w);
            w.journal.invariants();
            w.journal.releaseAll();
            assert.equal(w.pool.free, w.messagesMax, "the journal leaked pool messages");
        }),
        { seed, numRuns: 200 },
    );
    assert.ok(reads > 0, "the property read prepares back from disk");
});
