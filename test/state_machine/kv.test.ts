// Tests for the KV state machine: basics, validation, a full table, a Map-backed model run with
// fast-check commands, determinism of the image, backward-shift deletion across the wrap, and
// a zero-GC steady state. Every property prints its seed on failure (fast-check's default).

import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";

import {
    EventKind,
    EventOffset,
    KvStateMachine,
    ResultStatus,
    decodeResult,
    encodeEvent,
    eventSize,
    keySizeMax,
    resultSize,
    valueSizeMax,
    type Result,
} from "../../src/state_machine/kv.js";
import { countGcs, describeGcs } from "../gc.js";

interface Op {
    kind: EventKind;
    key: Uint8Array;
    value: Uint8Array | null;
}

/** An arena-like memory: the table, then an input region, then an output region. */
class Harness {
    readonly memory: Uint8Array;
    readonly table: KvStateMachine;
    readonly inputOffset: number;
    readonly outputOffset: number;

    constructor(entriesMax: number, eventCountMax: number, offset = 0) {
        const tableSize = KvStateMachine.sizeBytes(entriesMax);
        this.inputOffset = align(offset + tableSize);
        this.outputOffset = align(this.inputOffset + eventCountMax * eventSize);
        this.memory = new Uint8Array(this.outputOffset + eventCountMax * resultSize);
        // Stale bytes everywhere: the constructor must zero its region, commit every result.
        this.memory.fill(0xa5);
        this.table = new KvStateMachine(this.memory, offset, entriesMax);
    }

    run(ops: readonly Op[]): Result[] {
        ops.forEach((op, index) => {
            const eventOffset = this.inputOffset + index * eventSize;
            encodeEvent(this.memory, eventOffset, op.kind, op.key, op.value);
        });
        const written = this.table.commit(
            this.memory,
            this.inputOffset,
            ops.length,
            this.memory,
            this.outputOffset,
        );
        assert.equal(written, ops.length * resultSize);
        return ops.map((_, index) => {
            return decodeResult(this.memory, this.outputOffset + index * resultSize);
        });
    }

    /** Commits one already-encoded event (possibly corrupt); returns its decoded result. */
    runEncoded(event: Uint8Array): Result {
        assert.equal(event.length, eventSize);
        this.memory.set(event, this.inputOffset);
        const written = this.table.commit(
            this.memory,
            this.inputOffset,
            1,
            this.memory,
            this.outputOffset,
        );
        assert.equal(written, resultSize);
        return decodeResult(this.memory, this.outputOffset);
    }

    image(): Uint8Array {
        const { imageOffset, imageSize } = this.table;
        return this.memory.slice(imageOffset, imageOffset + imageSize);
    }
}

function align(offset: number): number {
    return Math.ceil(offset / 64) * 64;
}

function bytes(text: string): Uint8Array {
    return new TextEncoder().encode(text);
}

const put = (key: Uint8Array, value: Uint8Array): Op => ({ kind: EventKind.put, key, value });
const get = (key: Uint8Array): Op => ({ kind: EventKind.get, key, value: null });
const del = (key: Uint8Array): Op => ({ kind: EventKind.delete, key, value: null });
const ok = (value: Uint8Array = new Uint8Array(0)): Result => ({ status: ResultStatus.ok, value });
const notFound: Result = { status: ResultStatus.notFound, value: new Uint8Array(0) };
const tableFull: Result = { status: ResultStatus.tableFull, value: new Uint8Array(0) };
const invalid: Result = { status: ResultStatus.invalidEvent, value: new Uint8Array(0) };

/** A small key space with near misses: zero-extended twins, shared prefixes, both size bounds. */
const keySpace: Uint8Array[] = [
    Uint8Array.of(0x61),
    Uint8Array.of(0x61, 0x00),
    Uint8Array.of(0x00),
    Uint8Array.of(0x00, 0x00, 0x00, 0x00),
    Uint8Array.of(0x00, 0x00, 0x00, 0x00, 0x00),
    new Uint8Array(keySizeMax),
    new Uint8Array(keySizeMax).fill(0xff),
    new Uint8Array(keySizeMax - 1).fill(0xff),
];
for (let index = 0; keySpace.length < 24; index++) {
    keySpace.push(bytes("key-" + index + "-".repeat(index % 27)));
}

test("put then get returns the value, and delete removes it (entriesMax=16)", () => {
    const harness = new Harness(16, 8);
    const [a, b] = [bytes("alpha"), bytes("beta")];
    const results = harness.run([
        put(a, bytes("one")),
        put(b, new Uint8Array(valueSizeMax).fill(7)),
        get(a),
        get(b),
        del(a),
        get(a),
        del(a),
        get(b),
    ]);
    assert.deepEqual(results, [
        ok(),
        ok(),
        ok(bytes("one")),
        ok(new Uint8Array(valueSizeMax).fill(7)),
        ok(),
        notFound,
        notFound,
        ok(new Uint8Array(valueSizeMax).fill(7)),
    ]);
    assert.equal(harness.table.count, 1);
    harness.table.invariants();
});

test("put overwrites a value with a shorter or empty one, keeping the count", () => {
    const harness = new Harness(16, 4);
    const key = bytes("k");
    assert.deepEqual(harness.run([put(key, bytes("a long value")), put(key, bytes("ab"))]), [
        ok(),
        ok(),
    ]);
    assert.deepEqual(harness.run([get(key), put(key, new Uint8Array(0)), get(key)]), [
        ok(bytes("ab")),
        ok(),
        ok(),
    ]);
    assert.equal(harness.table.count, 1);
    harness.table.invariants();
});

test("keys that differ only in size or trailing zero bytes are distinct (keys=8)", () => {
    const harness = new Harness(16, 16);
    const keys = keySpace.slice(0, 8);
    const puts = keys.map((key, index) => put(key, Uint8Array.of(index)));
    assert.deepEqual(
        harness.run(puts),
        keys.map(() => ok()),
    );
    const gets = harness.run(keys.map(get));
    assert.deepEqual(
        gets,
        keys.map((_, index) => ok(Uint8Array.of(index))),
    );
    assert.equal(harness.table.count, 8);
});

/** Each case corrupts a valid event (put of key "key", value "value") in one way. */
const invalidCases: [string, (event: Uint8Array) => void][] = [
    ["kind 0", (event) => void (event[EventOffset.kind] = 0)],
    ["kind 4", (event) => void (event[EventOffset.kind] = 4)],
    ["keySize 0", (event) => void (event[EventOffset.keySize] = 0)],
    ["keySize 33", (event) => void (event[EventOffset.keySize] = 33)],
    ["valueSize 65", (event) => void (event[EventOffset.valueSize] = 65)],
    ["valueSize 5 on a get", (event) => void (event[EventOffset.kind] = EventKind.get)],
    ["valueSize 5 on a delete", (event) => void (event[EventOffset.kind] = EventKind.delete)],
    ["reserved byte 3", (event) => void (event[3] = 1)],
    ["reserved byte 7", (event) => void (event[7] = 0x80)],
    ["key padding byte 11", (event) => void (event[EventOffset.key + 3] = 1)],
    ["key padding byte 39", (event) => void (event[EventOffset.key + 31] = 1)],
    ["value padding byte 45", (event) => void (event[EventOffset.value + 5] = 1)],
    ["value padding byte 103", (event) => void (event[EventOffset.value + 63] = 1)],
    ["reserved byte 104", (event) => void (event[104] = 1)],
    ["reserved byte 127", (event) => void (event[127] = 0xff)],
];

for (const [name, corrupt] of invalidCases) {
    test(`an event with ${name} answers invalid_event and changes nothing`, () => {
        const harness = new Harness(16, 2);
        harness.run([put(bytes("key"), bytes("old")), put(bytes("other"), bytes("x"))]);
        const imageBefore = harness.image();
        const event = new Uint8Array(eventSize);
        encodeEvent(event, 0, EventKind.put, bytes("key"), bytes("value"));
        corrupt(event);
        assert.deepEqual(harness.runEncoded(event), invalid);
        assert.deepEqual(harness.image(), imageBefore);
        assert.deepEqual(harness.run([get(bytes("key"))]), [ok(bytes("old"))]);
    });
}

test("a flipped bit in any reserved or padding byte makes an event invalid", () => {
    const padded = fc.record({
        kind: fc.constantFrom(EventKind.put, EventKind.get, EventKind.delete),
        key: fc.uint8Array({ minLength: 1, maxLength: keySizeMax }),
        value: fc.uint8Array({ minLength: 0, maxLength: valueSizeMax }),
        choice: fc.nat(),
        bit: fc.integer({ min: 0, max: 7 }),
    });
    fc.assert(
        fc.property(padded, ({ kind, key, value, choice, bit }) => {
            const harness = new Harness(8, 1);
            const event = new Uint8Array(eventSize);
            encodeEvent(event, 0, kind, key, kind === EventKind.put ? value : null);
            const valueSize = kind === EventKind.put ? value.length : 0;
            const zeroBytes: number[] = [3, 4, 5, 6, 7];
            for (let i = key.length; i < keySizeMax; i++) zeroBytes.push(EventOffset.key + i);
            for (let i = valueSize; i < valueSizeMax; i++) zeroBytes.push(EventOffset.value + i);
            for (let i = EventOffset.reserved; i < eventSize; i++) zeroBytes.push(i);
            const position = zeroBytes[choice % zeroBytes.length]!;
            assert.equal(event[position], 0);
            event[position]! ^= 1 << bit;
            assert.deepEqual(harness.runEncoded(event), invalid);
            assert.equal(harness.table.count, 0);
        }),
    );
});

test("a full table answers table_full per event while gets, deletes and overwrites work", () => {
    const harness = new Harness(16, 32);
    const countMax = harness.table.countMax;
    assert.equal(countMax, 14);
    const keys = keySpace.slice(0, countMax + 2);
    const results = harness.run(keys.map((key) => put(key, key)));
    assert.deepEqual(
        results,
        keys.map((_, index) => (index < countMax ? ok() : tableFull)),
    );
    assert.equal(harness.table.count, countMax);
    const [first, second, spill] = [keys[0]!, keys[1]!, keys[countMax]!];
    assert.deepEqual(
        harness.run([
            get(first),
            put(first, bytes("new")),
            get(first),
            get(spill),
            del(spill),
            put(spill, spill),
            del(second),
            put(spill, spill),
            put(second, second),
            get(spill),
        ]),
        [
            ok(first),
            ok(),
            ok(bytes("new")),
            notFound,
            notFound,
            tableFull,
            ok(),
            ok(),
            tableFull,
            ok(spill),
        ],
    );
    assert.equal(harness.table.count, countMax);
    harness.table.invariants();
});

interface Model {
    entries: Map<number, Uint8Array>;
    countMax: number;
}

/** The model's answer to one op, applied to the model. */
function modelApply(model: Model, kind: EventKind, keyIndex: number, value: Uint8Array): Result {
    const stored = model.entries.get(keyIndex);
    if (kind === EventKind.get) return stored === undefined ? notFound : ok(stored);
    if (kind === EventKind.delete) {
        return model.entries.delete(keyIndex) ? ok() : notFound;
    }
    if (stored === undefined && model.entries.size >= model.countMax) return tableFull;
    model.entries.set(keyIndex, value);
    return ok();
}

interface ModelOp {
    kind: EventKind;
    keyIndex: number;
    value: Uint8Array;
}

/** Commits a batch of ops in one commit() and checks each result against the model. */
class BatchCommand implements fc.Command<Model, Harness> {
    constructor(readonly ops: readonly ModelOp[]) {}

    check(): boolean {
        return true;
    }

    run(model: Model, harness: Harness): void {
        const results = harness.run(
            this.ops.map(({ kind, keyIndex, value }) => ({
                kind,
                key: keySpace[keyIndex]!,
                value: kind === EventKind.put ? value : null,
            })),
        );
        const expected = this.ops.map((op) => modelApply(model, op.kind, op.keyIndex, op.value));
        assert.deepEqual(results, expected);
        assert.equal(harness.table.count, model.entries.size);
        harness.table.invariants();
    }

    toString(): string {
        const names = ["", "put", "get", "delete"];
        return "batch(" + this.ops.map((op) => names[op.kind] + " " + op.keyIndex).join(", ") + ")";
    }
}

const modelOp = fc.record({
    kind: fc.constantFrom(EventKind.put, EventKind.put, EventKind.get, EventKind.delete),
    keyIndex: fc.nat(keySpace.length - 1),
    value: fc.uint8Array({ minLength: 0, maxLength: valueSizeMax }),
});
const commands = [
    modelOp.map((op) => new BatchCommand([op])),
    fc.array(modelOp, { minLength: 2, maxLength: 12 }).map((ops) => new BatchCommand(ops)),
];

test("the table agrees with a Map model over random put/get/delete batches", () => {
    const entriesMax = fc.constantFrom(2, 8, 16, 32);
    fc.assert(
        fc.property(entriesMax, fc.commands(commands, { size: "+1" }), (size, cmds) => {
            fc.modelRun(() => {
                const real = new Harness(size, 12);
                return { model: { entries: new Map(), countMax: real.table.countMax }, real };
            }, cmds);
        }),
        { numRuns: 300 },
    );
});

test("two tables fed the same events have byte-identical images", () => {
    const sequence = fc.array(fc.array(modelOp, { minLength: 1, maxLength: 12 }), {
        maxLength: 40,
    });
    fc.assert(
        fc.property(sequence, (batches) => {
            const a = new Harness(16, 12, 0);
            const b = new Harness(16, 12, 4096);
            for (const batch of batches) {
                const ops = batch.map(({ kind, keyIndex, value }) => ({
                    kind,
                    key: keySpace[keyIndex]!,
                    value: kind === EventKind.put ? value : null,
                }));
                assert.deepEqual(a.run(ops), b.run(ops));
            }
            assert.deepEqual(a.image(), b.image());
            a.table.reset();
            assert.deepEqual(a.image(), new Harness(16, 1).image());
        }),
    );
});

/** Slots whose bytes differ between two images of a table of `entriesMax`, by its columns. */
function changedSlots(table: KvStateMachine, before: Uint8Array, after: Uint8Array): number[] {
    const changed: number[] = [];
    for (let slot = 0; slot < table.slotCount; slot++) {
        const differs = table.slotColumns.some((column) => {
            const at = column.offset + slot * column.width;
            for (let index = at; index < at + column.width; index++) {
                if (before[index] !== after[index]) return true;
            }
            return false;
        });
        if (differs) changed.push(slot);
    }
    return changed;
}

test("every slot a batch changes (puts, deletes, backward shifts) is marked dirty", () => {
    const sequence = fc.array(fc.array(modelOp, { minLength: 1, maxLength: 12 }), {
        maxLength: 40,
    });
    fc.assert(
        fc.property(fc.constantFrom(8, 16, 32), sequence, (entriesMax, batches) => {
            const harness = new Harness(entriesMax, 12);
            const table = harness.table;
            for (const batch of batches) {
                const before = harness.image();
                table.dirty.fill(0);
                harness.run(
                    batch.map(({ kind, keyIndex, value }) => ({
                        kind,
                        key: keySpace[keyIndex]!,
                        value: kind === EventKind.put ? value : null,
                    })),
                );
                const changed = changedSlots(table, before, harness.image());
                for (const slot of changed) {
                    assert.ok((table.dirty[slot >>> 5]! & (1 << (slot & 31))) !== 0, `${slot}`);
                }
                // No more than the changed slots and one per put (an overwrite with the same
                // value marks its slot without changing it).
                let marked = 0;
                for (let slot = 0; slot < entriesMax; slot++) {
                    if ((table.dirty[slot >>> 5]! & (1 << (slot & 31))) !== 0) marked++;
                }
                const puts = batch.filter((op) => op.kind === EventKind.put).length;
                assert.ok(marked <= changed.length + puts, `${marked} marked`);
            }
            table.reset();
            assert.ok(
                table.dirty.every((word) => word === 0),
                "reset clears the dirty bits",
            );
        }),
        { numRuns: 300 },
    );
});

/** The home slot of a key in a table of 16, read from the image's documented layout. */
function homeSlot(key: Uint8Array): number {
    const harness = new Harness(16, 1);
    harness.run([put(key, new Uint8Array(0))]);
    const metaAt = harness.table.imageOffset + 64;
    for (let slot = 0; slot < 16; slot++) {
        if (harness.memory[metaAt + slot * 8 + 4] !== 0) return slot;
    }
    return assert.fail();
}

test("backward-shift deletion keeps a cluster that wraps past the last slot reachable", () => {
    // Three keys homed at slot 14, three at 15, two at 0: the cluster runs 14..15, 0..5.
    const wanted = [14, 14, 14, 15, 15, 15, 0, 0];
    const keys: Uint8Array[] = [];
    for (let index = 0; keys.length < wanted.length; index++) {
        const key = bytes("wrap-" + index);
        const home = homeSlot(key);
        const need = wanted.filter((slot) => slot === home).length;
        if (keys.filter((k) => homeSlot(k) === home).length < need) keys.push(key);
        assert.ok(index < 100_000);
    }
    const orders = [
        [0, 1, 2, 3, 4, 5, 6, 7],
        [3, 0, 6, 1, 7, 2, 5, 4],
        [7, 6, 5, 4, 3, 2, 1, 0],
    ];
    for (const order of orders) {
        const harness = new Harness(16, 16);
        harness.run(keys.map((key) => put(key, key)));
        const live = new Set(keys);
        for (const index of order) {
            const key = keys[index]!;
            assert.deepEqual(harness.run([del(key)]), [ok()]);
            live.delete(key);
            harness.table.invariants();
            const results = harness.run(keys.map(get));
            assert.deepEqual(
                results,
                keys.map((k) => (live.has(k) ? ok(k) : notFound)),
            );
        }
        assert.equal(harness.table.count, 0);
    }
});

test("commit reads input and writes output in buffers other than the table's memory", () => {
    const memory = new Uint8Array(KvStateMachine.sizeBytes(8));
    const table = new KvStateMachine(memory, 0, 8);
    const input = new Uint8Array(3 * eventSize + 8);
    const output = new Uint8Array(3 * resultSize + 4).fill(0xee);
    encodeEvent(input, 8, EventKind.put, bytes("x"), bytes("y"));
    encodeEvent(input, 8 + eventSize, EventKind.get, bytes("x"), null);
    encodeEvent(input, 8 + 2 * eventSize, EventKind.get, bytes("z"), null);
    assert.equal(table.commit(input, 8, 3, output, 4), 3 * resultSize);
    assert.deepEqual(
        [0, 1, 2].map((index) => decodeResult(output, 4 + index * resultSize)),
        [ok(), ok(bytes("y")), notFound],
    );
    assert.equal(output[3], 0xee);
    assert.equal(table.commit(input, 8, 0, output, 4), 0);
});

test("commit rejects misaligned or overlapping regions as programmer errors", () => {
    const harness = new Harness(8, 4);
    const { memory, table, inputOffset, outputOffset } = harness;
    assert.throws(() => table.commit(memory, inputOffset + 2, 1, memory, outputOffset));
    assert.throws(() => table.commit(memory, inputOffset, 1, memory, outputOffset + 1));
    assert.throws(() => table.commit(memory, 0, 1, memory, outputOffset));
    assert.throws(() => table.commit(memory, inputOffset, 1, memory, table.imageOffset));
    assert.throws(() => table.commit(memory, inputOffset, 2, memory, inputOffset + eventSize));
    assert.throws(() => table.commit(memory, inputOffset, 5, memory, outputOffset));
});

test("the constructor rejects an entriesMax that is not a power of two (entriesMax=12)", () => {
    assert.throws(() => KvStateMachine.sizeBytes(12));
    assert.throws(() => KvStateMachine.sizeBytes(1));
    assert.throws(() => new KvStateMachine(new Uint8Array(64), 0, 16));
});

test("commit allocates nothing: no young GC or heap growth in 200k 30-event commits", async (t) => {
    const batchCount = 64;
    const eventCount = 30;
    const harness = new Harness(1 << 12, batchCount * eventCount);
    const { memory, table, inputOffset, outputOffset } = harness;
    let seed = 1;
    const next = (bound: number): number => {
        seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
        return (seed >>> 8) % bound;
    };
    for (let index = 0; index < batchCount * eventCount; index++) {
        const key = bytes("gc-" + next(2048));
        const kind = [EventKind.put, EventKind.get, EventKind.delete][next(3)]!;
        const value = kind === EventKind.put ? new Uint8Array(next(65)).fill(index) : null;
        encodeEvent(memory, inputOffset + index * eventSize, kind, key, value);
    }
    const commitBatches = (commitCount: number): void => {
        for (let index = 0; index < commitCount; index++) {
            const batch = index % batchCount;
            table.commit(
                memory,
                inputOffset + batch * eventCount * eventSize,
                eventCount,
                memory,
                outputOffset + batch * eventCount * resultSize,
            );
        }
    };
    commitBatches(20_000); // Warm-up: let the optimizing compiler settle first.
    // countGcs starts the loop with an empty young generation and counts only the collections
    // that start inside it, once every entry has arrived: garbage and GCs of the runner or of
    // earlier tests are not charged to commit().
    const gcs = await countGcs(() => commitBatches(200_000));
    t.diagnostic(describeGcs(gcs));
    assert.equal(gcs.minor, 0, describeGcs(gcs));
    // One 16-byte object per commit would add 3.2 MB; code installed by a late tier-up of
    // commit() (seen under load) adds ~0.25 MB.
    assert.ok(gcs.heapGrowthBytes < 1024 * 1024, describeGcs(gcs));
    table.invariants();
});
