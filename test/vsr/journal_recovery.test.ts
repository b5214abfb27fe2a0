// Tests for the WAL's start-up recovery (src/vsr/journal.ts `recover`, with the decision table of
// src/vsr/journal_recovery.ts).
// Goal: every row of the decision table is reachable from real bytes on disk and yields its
// decision; the table covers every input exactly once; and a journal that appends, crashes
// (with torn writes) and suffers latent sector errors never loses a durable prepare nor
// recovers a corrupt one.
// Method: a SimStorage over the test preset's layout. Row tests write the redundant header (H,
// headers ring) and the prepare (P, prepares ring) of one slot byte for byte, built by the same
// header code the replica uses (valid = correct checksums, cluster and slot; invalid = one
// flipped byte, or another cluster, slot or command; reserved = zeros), recover, and check the
// case chosen and the slot's state. The model test (a random sequence of fc.Command objects run
// by fc.modelRun) appends prepares, ticks storage, corrupts disk bytes, crashes (torn writes) and
// restarts a new journal over the same storage, checking each recovery against a model of which
// prepares are durable and intact; it reports what the runs reached (a diagnostic) and asserts
// that this coverage is not trivial. Failures print fast-check's seed and path.

import { type TestContext, test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";

import {
    batchEntryHeaderSize,
    headerSize,
    sectorSize,
    test as config,
} from "../../src/constants.js";
import { SimStorage, noStorageFaults } from "../../src/sim/storage.js";
import { KvStateMachine } from "../../src/state_machine/kv.js";
import { AssertionError } from "../../src/stdx/assert.js";
import { PRNG } from "../../src/stdx/prng.js";
import { Arena, type ArenaRegion } from "../../src/vsr/arena.js";
import { BatchEntry } from "../../src/vsr/batch.js";
import { checksumAttach } from "../../src/vsr/checksum.js";
import {
    Command,
    Commit,
    Frame,
    Operation,
    Prepare,
    headerCommand,
    prepareOp,
    setChecksums,
    writeU64,
} from "../../src/vsr/header.js";
import type { Storage } from "../../src/vsr/interfaces.js";
import { Journal } from "../../src/vsr/journal.js";
import {
    Decision,
    type RecoveryCase,
    Relation,
    SlotKind,
    decide,
    recoveryCase,
    recoveryCases,
} from "../../src/vsr/journal_recovery.js";
import { layout } from "../../src/vsr/layout.js";
import { type Message, MessagePool } from "../../src/vsr/message_pool.js";
import { EioStorage } from "./eio_storage.js";

const slotCount = config.journalSlotCount; // 64
const messageSizeMax = config.messageSizeMax; // 4096: one sector per prepare slot.
const dataLayout = layout(config, KvStateMachine.sizeBytes(config.kvEntriesMax));
const cluster = 7;
/** The smallest valid prepare: a header and one register entry. */
const prepareSize = headerSize + batchEntryHeaderSize;

/** Pool messages: recovery holds one per slot while it classifies, the journal one per slot. */
const messagesMax = 2 * slotCount + config.journalWritesMax + 4;
const journalRegionBytes =
    3 * dataLayout.walHeadersSize + config.journalWritesMax * sectorSize + 4 * sectorSize;

/**
 * One arena per test or property run (so a failed run cannot leak pool messages into the next
 * one while fast-check shrinks): the pool, one journal region reused across restarts, and three
 * scratch images (a redundant header, a prepare, the model's canonical prepare).
 */
class World {
    readonly arena: Arena;
    readonly bytes: Uint8Array;
    readonly view: DataView;
    readonly pool: MessagePool;
    private readonly region: ArenaRegion;
    readonly scratchHeader: number;
    readonly scratchPrepare: number;
    readonly scratchCanonical: number;

    constructor() {
        this.arena = new Arena(
            MessagePool.sizeBytes(messageSizeMax, messagesMax) +
                journalRegionBytes +
                4 * messageSizeMax +
                64 * 1024,
        );
        checksumAttach(this.arena.memory);
        this.bytes = this.arena.bytes;
        this.view = this.arena.view;
        this.pool = new MessagePool(this.arena, messageSizeMax, messagesMax);
        this.region = this.arena.region(journalRegionBytes);
        this.scratchHeader = this.arena.allocate(messageSizeMax, sectorSize);
        this.scratchPrepare = this.arena.allocate(messageSizeMax, sectorSize);
        this.scratchCanonical = this.arena.allocate(messageSizeMax, sectorSize);
    }

    createStorage(seed: number): SimStorage {
        return new SimStorage(
            {
                sizeBytes: dataLayout.totalSize,
                readLatencyMinTicks: 1,
                readLatencyMeanTicks: 1,
                writeLatencyMinTicks: 1,
                writeLatencyMeanTicks: 4,
                iopsMax: config.journalWritesMax + config.journalReadsMax + 4,
            },
            this.arena,
            new PRNG(seed),
        );
    }

    /** A new process's journal over `storage` (the region is wiped, as after a restart). */
    createJournal(storage: Storage, durableCallback: (op: number) => void): Journal {
        this.region.reset();
        return new Journal(config, this.region, this.pool, storage, dataLayout, durableCallback);
    }

    /**
     * Builds a valid prepare at arena offset `base`: a batch of one register entry. The bytes
     * depend only on the options, so the model can rebuild the canonical prepare of any op.
     */
    buildPrepare(base: number, options: PrepareOptions): void {
        const { bytes, view } = this;
        const op = options.op;
        assert.ok(op > 0);
        bytes.fill(0, base, base + messageSizeMax);
        view.setUint32(base + Frame.cluster, options.cluster ?? cluster, true);
        view.setUint32(base + Frame.size, prepareSize, true);
        view.setUint32(base + Frame.view, options.view ?? 0, true);
        view.setUint8(base + Frame.command, Command.prepare);
        view.setUint32(base + Prepare.parent, op * 31 + 1, true); // Unchecked here: any hash.
        writeU64(view, base + Prepare.op, op);
        writeU64(view, base + Prepare.commit, op - 1);
        writeU64(view, base + Prepare.timestamp, 1_000_000 + op);
        view.setUint32(base + Prepare.requestCount, 1, true);
        view.setUint8(base + Prepare.operation, Operation.batch);
        const entry = base + headerSize;
        view.setUint32(entry + BatchEntry.client, options.client ?? 1 + (op % 5), true);
        view.setUint8(entry + BatchEntry.operation, Operation.register);
        setChecksums(bytes, view, base);
    }

    /** A valid `commit` message: right checksums and cluster, wrong command for the WAL. */
    buildCommit(base: number, commit: number): void {
        const { bytes, view } = this;
        bytes.fill(0, base, base + messageSizeMax);
        view.setUint32(base + Frame.cluster, cluster, true);
        view.setUint32(base + Frame.size, headerSize, true);
        view.setUint8(base + Frame.command, Command.commit);
        writeU64(view, base + Commit.commit, commit);
        setChecksums(bytes, view, base);
    }

    /** Writes the header at `base` into the headers ring at `slot`, bypassing the journal. */
    putDiskHeader(storage: SimStorage, slot: number, base: number): void {
        storage.data.set(this.bytes.subarray(base, base + headerSize), diskHeaderOffset(slot));
    }

    /** Writes the message at `base` into the prepares ring at `slot`, bypassing the journal. */
    putDiskPrepare(storage: SimStorage, slot: number, base: number): void {
        storage.data.set(this.bytes.subarray(base, base + messageSizeMax), diskPrepareOffset(slot));
    }

    flip(base: number, offset: number): void {
        this.bytes[base + offset] = (this.bytes[base + offset] ?? 0) ^ 0x20;
    }

    sameBytes(a: number, b: number, size: number): boolean {
        const bytes = this.bytes;
        for (let index = 0; index < size; index++) {
            if (bytes[a + index] !== bytes[b + index]) return false;
        }
        return true;
    }
}

interface PrepareOptions {
    readonly op: number;
    readonly view?: number;
    readonly cluster?: number;
    /** Zero makes the batch malformed (a register entry needs a client). */
    readonly client?: number;
}

function diskHeaderOffset(slot: number): number {
    return dataLayout.walHeadersOffset + slot * headerSize;
}

function diskPrepareOffset(slot: number): number {
    return dataLayout.walPreparesOffset + slot * messageSizeMax;
}

/** The index of the row labelled `label` (what `Journal.recoveryCases` records per slot). */
function caseIndex(label: string): number {
    const index = recoveryCases.findIndex((row) => row.label === label);
    assert.ok(index >= 0, label);
    return index;
}

function ignoreDurable(_op: number): void {}

/** Runs recovery to completion, pumping storage ticks (bounded). */
function recover(journal: Journal, storage: SimStorage, solo: boolean): void {
    let result: boolean | null = null;
    journal.recover(cluster, solo, (ok) => {
        result = ok;
    });
    for (let ticks = 0; result === null; ticks++) {
        assert.ok(ticks < 100_000, "recovery did not finish");
        storage.tick();
    }
    assert.equal(result, true);
}

/** Reads the prepare of `op` through the journal's read path (a miss, then a landed read). */
function readBack(journal: Journal, storage: SimStorage, op: number): Message {
    const misses = journal.cacheMisses;
    assert.equal(journal.readPrepare(op, -1), null);
    assert.equal(journal.cacheMisses, misses + 1);
    for (let ticks = 0; journal.readsInFlight > 0; ticks++) {
        assert.ok(ticks < 100_000, "the read did not land");
        storage.tick();
    }
    const message = journal.readPrepare(op, -1);
    assert.ok(message !== null, "the prepare read back is cached");
    assert.equal(journal.readErrors, 0);
    return message;
}

// ---------------------------------------------------------------------------------------------
// One test per row: the row's inputs, written as bytes into slot 5.

const caseSlot = 5;

interface CaseOps {
    /** The op of P (when P is built) and of H. */
    readonly prepareOp: number;
    readonly headerOp: number;
}

/**
 * Writes H and P of `caseSlot` for the row's kinds and relation: valid/valid pairs differ in op
 * (a lap of the ring apart) or, for sameOpDifferent, in view. A row that needs P not to be the
 * highest op gets a clean neighbour (caseSlot + 1, a higher op). H is left in scratchHeader and
 * P in scratchPrepare for the checks.
 */
function writeCase(world: World, storage: SimStorage, row: RecoveryCase): CaseOps {
    let headerOp = caseSlot;
    let opOfPrepare = caseSlot;
    if (row.relation === Relation.headerOlder) opOfPrepare += slotCount;
    if (row.relation === Relation.headerNewer) headerOp += slotCount;
    const headerView = row.relation === Relation.sameOpDifferent ? 1 : 0;
    const { scratchHeader, scratchPrepare, scratchCanonical } = world;
    world.buildPrepare(scratchHeader, { op: headerOp, view: headerView });
    if (row.header === SlotKind.invalid) world.flip(scratchHeader, Prepare.timestamp);
    if (row.header !== SlotKind.reserved) world.putDiskHeader(storage, caseSlot, scratchHeader);
    world.buildPrepare(scratchPrepare, { op: opOfPrepare });
    if (row.prepare === SlotKind.invalid) world.flip(scratchPrepare, headerSize + 1);
    if (row.prepare !== SlotKind.reserved) world.putDiskPrepare(storage, caseSlot, scratchPrepare);
    if (row.prepareOpMax === false) {
        world.buildPrepare(scratchCanonical, { op: caseSlot + 1 });
        world.putDiskHeader(storage, caseSlot + 1, scratchCanonical);
        world.putDiskPrepare(storage, caseSlot + 1, scratchCanonical);
    }
    return { prepareOp: opOfPrepare, headerOp };
}

/** The slot's state after recovery matches the decision. */
function checkDecision(
    world: World,
    storage: SimStorage,
    journal: Journal,
    row: RecoveryCase,
    decision: Decision,
    ops: CaseOps,
): void {
    const { prepareOp: opOfPrepare, headerOp } = ops;
    switch (decision) {
        case Decision.clean:
        case Decision.fix: {
            const checksumOffset = world.scratchPrepare + Frame.checksum;
            assert.ok(journal.hasHeaderWithChecksum(opOfPrepare, checksumOffset));
            // Recovery caches nothing: the prepare is read back from disk, as commit would.
            assert.equal(journal.prepare(opOfPrepare), null);
            assert.ok(journal.hasPrepare(opOfPrepare));
            const message = readBack(journal, storage, opOfPrepare);
            assert.ok(world.sameBytes(message.offset, world.scratchPrepare, prepareSize));
            assert.ok(journal.isDurable(opOfPrepare));
            assert.equal(journal.isFaulty(opOfPrepare), false);
            assert.equal(journal.faultyCount, 0);
            break;
        }
        case Decision.faulty: {
            assert.equal(journal.faultyCount, 1);
            const op = row.header === SlotKind.valid ? headerOp : caseSlot;
            assert.equal(journal.isFaulty(op), true);
            assert.equal(journal.prepare(op), null);
            assert.equal(journal.hasPrepare(op), false);
            assert.equal(journal.readPrepare(op, -1), null);
            assert.equal(journal.readsInFlight, 0);
            assert.equal(journal.isDurable(op), false);
            // The header is installed exactly when H was valid (and then it is H, not P).
            assert.equal(journal.hasHeader(op), row.header === SlotKind.valid);
            if (row.header === SlotKind.valid) {
                const checksumOffset = world.scratchHeader + Frame.checksum;
                assert.ok(journal.hasHeaderWithChecksum(op, checksumOffset));
            }
            if (opOfPrepare !== op) assert.equal(journal.hasHeader(opOfPrepare), false);
            break;
        }
        case Decision.empty: {
            assert.equal(journal.faultyCount, 0);
            for (const op of [caseSlot, caseSlot + slotCount]) {
                assert.equal(journal.hasHeader(op), false);
                assert.equal(journal.isFaulty(op), false);
            }
            break;
        }
        default:
            assert.fail("unknown decision");
    }
}

function runCase(row: RecoveryCase, solo: boolean): void {
    const world = new World();
    const storage = world.createStorage(1);
    const ops = writeCase(world, storage, row);
    const journal = world.createJournal(storage, ignoreDurable);
    recover(journal, storage, solo);
    assert.equal(journal.recoveryCases[caseSlot], recoveryCases.indexOf(row));
    for (let slot = 0; slot < slotCount; slot++) {
        if (slot === caseSlot) continue;
        const neighbour = slot === caseSlot + 1 && row.prepareOpMax === false;
        assert.equal(journal.recoveryCases[slot], caseIndex(neighbour ? "@P" : "@L"));
    }
    checkDecision(world, storage, journal, row, decide(row, solo), ops);
    journal.releaseAll();
    assert.equal(world.pool.free, messagesMax, "recovery leaked pool messages");
}

for (const row of recoveryCases) {
    test(`journal recovery case ${row.label}: ${row.why} (replicas=3)`, () => runCase(row, false));
    if (row.decisionSolo !== row.decision) {
        test(`journal recovery case ${row.label}: ${row.why} (replicas=1)`, () =>
            runCase(row, true));
    }
}

// ---------------------------------------------------------------------------------------------
// What "invalid" means: each way a slot can be unreadable, misdirected or foreign.

interface Damage {
    readonly name: string;
    /** Builds the damaged image at `base`, for `caseSlot`. */
    readonly build: (world: World, base: number) => void;
}

const damages: readonly Damage[] = [
    {
        name: "a flipped header byte",
        build: (world, base) => {
            world.buildPrepare(base, { op: caseSlot });
            world.flip(base, Frame.view);
        },
    },
    {
        name: "a flipped checksum byte",
        build: (world, base) => {
            world.buildPrepare(base, { op: caseSlot });
            world.flip(base, Frame.checksum + 3);
        },
    },
    {
        name: "another cluster",
        build: (world, base) => world.buildPrepare(base, { op: caseSlot, cluster: cluster + 1 }),
    },
    {
        name: "the op of another slot (a misdirected write)",
        build: (world, base) => world.buildPrepare(base, { op: caseSlot + 1 }),
    },
    {
        name: "a valid commit message instead of a prepare",
        build: (world, base) => world.buildCommit(base, caseSlot),
    },
];

const prepareDamages: readonly Damage[] = [
    ...damages,
    {
        name: "a flipped body byte",
        build: (world, base) => {
            world.buildPrepare(base, { op: caseSlot });
            world.flip(base, headerSize + BatchEntry.client);
        },
    },
    {
        name: "a malformed batch under valid checksums",
        build: (world, base) => world.buildPrepare(base, { op: caseSlot, client: 0 }),
    },
];

/** Recovers a storage holding only the damaged slot; returns the journal for checks. */
function recoverDamaged(damage: Damage, ring: "headers" | "prepares"): Journal {
    const world = new World();
    const storage = world.createStorage(2);
    damage.build(world, world.scratchPrepare);
    if (ring === "headers") world.putDiskHeader(storage, caseSlot, world.scratchPrepare);
    else world.putDiskPrepare(storage, caseSlot, world.scratchPrepare);
    const journal = world.createJournal(storage, ignoreDurable);
    recover(journal, storage, false);
    assert.equal(journal.isFaulty(caseSlot), true);
    assert.equal(journal.hasHeader(caseSlot), false);
    assert.equal(journal.hasHeader(caseSlot + 1), false);
    assert.equal(journal.faultyCount, 1);
    return journal;
}

for (const damage of prepareDamages) {
    test(`journal recovery reads a prepare with ${damage.name} as invalid (case @B)`, () => {
        const journal = recoverDamaged(damage, "prepares");
        assert.equal(journal.recoveryCases[caseSlot], caseIndex("@B"));
    });
}

for (const damage of damages) {
    const name = `journal recovery reads a redundant header with ${damage.name} as invalid`;
    test(`${name} (case @D)`, () => {
        const journal = recoverDamaged(damage, "headers");
        assert.equal(journal.recoveryCases[caseSlot], caseIndex("@D"));
    });
}

test("journal recovery takes the highest op from either ring for the @E/@F distinction", () => {
    // Slot 5: H corrupt, P valid op 5. Slot 6 holds only a valid redundant header of op 6 (its
    // prepare lost: @K): the header alone makes op 6 the maximum, so slot 5 is @E, not @F.
    const world = new World();
    const storage = world.createStorage(4);
    const { scratchHeader, scratchPrepare, scratchCanonical } = world;
    world.buildPrepare(scratchHeader, { op: caseSlot });
    world.flip(scratchHeader, Prepare.timestamp);
    world.putDiskHeader(storage, caseSlot, scratchHeader);
    world.buildPrepare(scratchPrepare, { op: caseSlot });
    world.putDiskPrepare(storage, caseSlot, scratchPrepare);
    world.buildPrepare(scratchCanonical, { op: caseSlot + 1 });
    world.putDiskHeader(storage, caseSlot + 1, scratchCanonical);
    const journal = world.createJournal(storage, ignoreDurable);
    recover(journal, storage, false);
    assert.equal(journal.recoveryCases[caseSlot], caseIndex("@E"));
    assert.equal(journal.recoveryCases[caseSlot + 1], caseIndex("@K"));
    assert.equal(journal.faultyCount, 2);
});

test("journal recovery keeps a prepare of a later view beside its op's older header (case @M)", () => {
    // Slot 5: H is op 5 prepared in view 0; P is op 5 prepared again in view 1, durable, whose
    // header write was lost. A header is written only after its prepare is durable, so P is the
    // newer: installed as recovered (not faulty). The reverse (H newer) stays @O, faulty.
    for (const [headerViewNumber, prepareViewNumber, label] of [
        [0, 1, "@M"],
        [1, 0, "@O"],
    ] as const) {
        const world = new World();
        const storage = world.createStorage(4);
        const { scratchHeader, scratchPrepare } = world;
        world.buildPrepare(scratchHeader, { op: caseSlot, view: headerViewNumber });
        world.putDiskHeader(storage, caseSlot, scratchHeader);
        world.buildPrepare(scratchPrepare, { op: caseSlot, view: prepareViewNumber });
        world.putDiskPrepare(storage, caseSlot, scratchPrepare);
        const journal = world.createJournal(storage, ignoreDurable);
        recover(journal, storage, false);
        assert.equal(journal.recoveryCases[caseSlot], caseIndex(label));
        const recovered = label === "@M";
        assert.equal(journal.isFaulty(caseSlot), !recovered);
        assert.equal(journal.isDurable(caseSlot), recovered);
        if (recovered) {
            assert.ok(journal.hasHeaderWithChecksum(caseSlot, scratchPrepare + Frame.checksum));
        }
        journal.releaseAll();
    }
});

/** Clean slots 5 (header sector 0) and 20 (sector 1), recovered through `eio`'s failures. */
function recoverThroughEio(badOffsets: (storage: SimStorage) => number[]): {
    journal: Journal;
    eio: EioStorage;
} {
    const world = new World();
    const storage = world.createStorage(5);
    for (const op of [caseSlot, caseSlot + 15]) {
        world.buildPrepare(world.scratchPrepare, { op });
        world.putDiskHeader(storage, op, world.scratchPrepare);
        world.putDiskPrepare(storage, op, world.scratchPrepare);
    }
    const eio = new EioStorage(storage, badOffsets(storage));
    const journal = world.createJournal(eio, ignoreDurable);
    let result: boolean | null = null;
    journal.recover(cluster, false, (ok) => {
        result = ok;
    });
    for (let ticks = 0; result === null; ticks++) {
        assert.ok(ticks < 100_000, "recovery did not finish");
        storage.tick();
    }
    assert.equal(result, true, "read errors never fail recovery");
    return { journal, eio };
}

test("journal recovery re-reads the header ring sector by sector when its one read fails", () => {
    // EIO on header sector 0 (slots 0..15): the ring read fails, then only that sector's read.
    const { journal, eio } = recoverThroughEio(() => [dataLayout.walHeadersOffset]);
    assert.equal(eio.readsFailed, 2);
    assert.equal(journal.recoveryReadErrors, 2);
    // Slot 5's header is unreadable (invalid, not reserved) beside a valid prepare below the
    // highest op (20): @E, faulty, for repair from peers. Slot 20, in a good sector, is clean.
    assert.equal(journal.recoveryCases[caseSlot], caseIndex("@E"));
    assert.equal(journal.isFaulty(caseSlot), true);
    assert.equal(journal.recoveryCases[caseSlot + 15], caseIndex("@P"));
    assert.ok(journal.hasPrepare(caseSlot + 15));
    // Empty slots of the failed sector are faulty too (@D: a header was perhaps there): all 16
    // slots of sector 0 and none of the others.
    assert.equal(journal.recoveryCases[caseSlot + 1], caseIndex("@D"));
    assert.equal(journal.faultyCount, sectorSize / headerSize);
});

test("journal recovery treats a prepare whose read fails as invalid (faulty, not fatal)", () => {
    const { journal, eio } = recoverThroughEio(() => [diskPrepareOffset(caseSlot + 15)]);
    assert.equal(eio.readsFailed, 1);
    assert.equal(journal.recoveryCases[caseSlot + 15], caseIndex("@C"));
    assert.equal(journal.isFaulty(caseSlot + 15), true);
    assert.equal(journal.recoveryCases[caseSlot], caseIndex("@P"));
    assert.equal(journal.faultyCount, 1);
});

// ---------------------------------------------------------------------------------------------
// The table itself: complete, unambiguous, and TigerBeetle's decisions.

const kinds = [SlotKind.reserved, SlotKind.invalid, SlotKind.valid] as const;
const pairRelations = [
    Relation.identical,
    Relation.headerOlder,
    Relation.headerNewer,
    Relation.sameOpDifferent,
] as const;

/** Every input combination recovery can produce: a relation only between two valid entries. */
function consistentInputs(): [SlotKind, SlotKind, Relation, boolean][] {
    const inputs: [SlotKind, SlotKind, Relation, boolean][] = [];
    for (const header of kinds) {
        for (const prepare of kinds) {
            const both = header === SlotKind.valid && prepare === SlotKind.valid;
            for (const relation of both ? pairRelations : [Relation.none]) {
                for (const opMax of [false, true]) inputs.push([header, prepare, relation, opMax]);
            }
        }
    }
    return inputs;
}

test("the recovery table maps each consistent input to exactly one row and uses every row", () => {
    const used = new Set<RecoveryCase>();
    for (const [header, prepare, relation, opMax] of consistentInputs()) {
        const matches = recoveryCases.filter(
            (row) =>
                row.header === header &&
                row.prepare === prepare &&
                row.relation === relation &&
                (row.prepareOpMax === null || row.prepareOpMax === opMax),
        );
        const input = `H=${header} P=${prepare} relation=${relation} opMax=${opMax}`;
        assert.equal(matches.length, 1, input);
        assert.equal(recoveryCase(header, prepare, relation, opMax), matches[0], input);
        used.add(matches[0]!);
    }
    assert.equal(used.size, recoveryCases.length);
    assert.equal(new Set(recoveryCases.map((row) => row.label)).size, recoveryCases.length);
});

test("the recovery table weighs the op maximum only for a bad header beside a good prepare", () => {
    for (const [header, prepare, relation] of consistentInputs()) {
        const below = recoveryCase(header, prepare, relation, false);
        const top = recoveryCase(header, prepare, relation, true);
        const matters = header === SlotKind.invalid && prepare === SlotKind.valid;
        assert.equal(below !== top, matters, `H=${header} P=${prepare}`);
    }
    for (const row of recoveryCases) {
        const matters = row.header === SlotKind.invalid && row.prepare === SlotKind.valid;
        assert.equal(row.prepareOpMax !== null, matters, row.label);
    }
});

test("the recovery table rejects a relation between entries that are not both valid", () => {
    assert.throws(
        () => recoveryCase(SlotKind.valid, SlotKind.valid, Relation.none, false),
        AssertionError,
    );
    assert.throws(
        () => recoveryCase(SlotKind.reserved, SlotKind.valid, Relation.identical, false),
        AssertionError,
    );
});

test("the recovery table's decisions agree with TigerBeetle's (research notes §6.4)", () => {
    // "vsr" is faulty; "nil" empty; "eql" clean. TigerBeetle's @D with one replica is "fix" of
    // a slot whose prepare was never written: the same outcome as empty.
    const { empty, clean, fix, faulty } = Decision;
    const expected: Record<string, [Decision, Decision]> = {
        "@A": [faulty, faulty],
        "@B": [faulty, faulty],
        "@C": [faulty, faulty],
        "@D": [faulty, empty],
        "@E": [faulty, fix],
        "@F": [fix, fix],
        "@G": [fix, fix],
        "@K": [faulty, faulty],
        "@L": [empty, empty],
        "@M": [fix, fix],
        "@N": [faulty, faulty],
        "@O": [faulty, faulty],
        "@P": [clean, clean],
    };
    assert.deepEqual(Object.keys(expected).sort(), recoveryCases.map((row) => row.label).sort());
    for (const row of recoveryCases) {
        assert.deepEqual([row.decision, row.decisionSolo], expected[row.label], row.label);
    }
});

// ---------------------------------------------------------------------------------------------
// The model test: append, tick, corrupt, crash and restart.

interface Model {
    readonly solo: boolean;
    nextOp: number;
    /**
     * Per slot: the op whose prepare is durable (its callback fired, or recovery found it) and
     * whose disk bytes were not corrupted or overwritten since; 0 when none.
     */
    readonly intact: Int32Array;
    /**
     * Per slot: its prepare bytes were flipped since the slot's latest append. A prepare becomes
     * durable only when its header sector lands, which may be after such a flip of the prepare
     * already written: that prepare is then not intact even though its callback fires.
     */
    readonly corrupted: Uint8Array;
    readonly coverage: Coverage;
}

/** What the runs exercised, summed over runs (reported, and asserted to be non-trivial). */
interface Coverage {
    runs: number;
    /** Runs whose ops wrapped the ring at least once. */
    wrappedRuns: number;
    restarts: number;
    /** Intact prepares checked at a recovery, and those recovered faulty (@E, replicas=3). */
    intactChecked: number;
    intactFaulty: number;
    /** Recovery cases seen, by label. */
    readonly cases: Map<string, number>;
}

class Harness {
    readonly world: World;
    readonly storage: SimStorage;
    readonly model: Model;
    journal: Journal;
    private readonly durableCallback = (op: number): void => {
        const slot = op % slotCount;
        if (this.model.corrupted[slot] === 0) this.model.intact[slot] = op;
    };

    constructor(seed: number, model: Model) {
        this.world = new World();
        this.storage = this.world.createStorage(seed);
        this.model = model;
        this.journal = this.world.createJournal(this.storage, this.durableCallback);
    }

    append(): void {
        const op = this.model.nextOp++;
        const pool = this.world.pool;
        const message = pool.acquire();
        this.world.buildPrepare(message.offset, { op });
        this.model.intact[op % slotCount] = 0; // Overwritten: durable again once its write is.
        this.model.corrupted[op % slotCount] = 0;
        this.journal.setHeader(message.offset);
        this.journal.putPrepare(message);
        pool.unref(message);
    }

    crashAndRestart(tornProbability: number): void {
        this.storage.faults = { ...noStorageFaults, crashTornProbability: tornProbability };
        this.storage.crash();
        this.storage.faults = noStorageFaults;
        this.journal.releaseAll();
        const free = this.world.pool.free;
        assert.equal(free, messagesMax, "the crashed journal leaked pool messages");
        this.journal = this.world.createJournal(this.storage, this.durableCallback);
        recover(this.journal, this.storage, this.model.solo);
        this.model.coverage.restarts++;
        this.check();
    }

    /** Recovery against the model; what it recovered clean is durable and intact from now on. */
    private check(): void {
        const journal = this.journal;
        const model = this.model;
        const { view, scratchCanonical } = this.world;
        assert.equal(this.world.pool.free, messagesMax - journal.preparesHeld());
        for (let slot = 0; slot < slotCount; slot++) {
            const header = journal.headerOffset(slot);
            let op = -1;
            if (headerCommand(view, header) === Command.prepare) {
                op = prepareOp(view, header);
                assert.equal(op % slotCount, slot);
                assert.ok(op >= 1 && op < model.nextOp, `slot ${slot}: op ${op} never appended`);
                // Recovery caches nothing: read back what it kept, through the read path.
                assert.equal(journal.prepare(op), null);
                if (journal.hasPrepare(op)) {
                    const message = readBack(journal, this.storage, op);
                    this.world.buildPrepare(scratchCanonical, { op });
                    assert.ok(
                        this.world.sameBytes(message.offset, scratchCanonical, prepareSize),
                        `slot ${slot}: op ${op} recovered with corrupt bytes`,
                    );
                    assert.ok(journal.isDurable(op));
                    assert.equal(journal.isFaulty(op), false);
                    // Durable = prepare and header on disk: recovery rewrote a stale header
                    // (a fixed slot) before it reported done.
                    const onDisk = diskHeaderOffset(slot);
                    assert.ok(
                        this.world.sameBytes(header, scratchCanonical, headerSize) &&
                            this.storage.data
                                .subarray(onDisk, onDisk + headerSize)
                                .every((byte, index) => byte === view.getUint8(header + index)),
                        `slot ${slot}: op ${op} recovered durable, but its header is not on disk`,
                    );
                }
            }
            const row = recoveryCases[journal.recoveryCases[slot] ?? -1]?.label ?? "?";
            const cases = model.coverage.cases;
            cases.set(row, (cases.get(row) ?? 0) + 1);
            const intact = model.intact[slot] ?? 0;
            if (intact > 0) model.coverage.intactChecked++;
            if (intact > 0 && !journal.hasPrepare(intact)) {
                model.coverage.intactFaulty++;
                // With peers, a prepare beside an unreadable header below the head is repaired
                // from them (@E): it must then be faulty, never dropped or replaced.
                assert.ok(
                    !model.solo && row === "@E" && journal.isFaulty(intact),
                    `slot ${slot}: durable op ${intact} not recovered (case ${row})`,
                );
            }
            if (op >= 1 && journal.hasPrepare(op)) {
                model.intact[slot] = op;
                model.corrupted[slot] = 0; // Read back whole: these bytes are the durable ones.
            }
        }
    }
}

type JournalCommand = fc.Command<Model, Harness>;

class AppendCommand implements JournalCommand {
    constructor(readonly count: number) {}
    check(): boolean {
        return true;
    }
    run(_model: Model, harness: Harness): void {
        for (let index = 0; index < this.count; index++) harness.append();
    }
    toString(): string {
        return `append(${this.count})`;
    }
}

class TickCommand implements JournalCommand {
    constructor(readonly ticks: number) {}
    check(): boolean {
        return true;
    }
    run(_model: Model, harness: Harness): void {
        for (let tick = 0; tick < this.ticks; tick++) harness.storage.tick();
    }
    toString(): string {
        return `tick(${this.ticks})`;
    }
}

/** A latent sector error in a prepare slot: one byte flipped on disk, under the journal. */
class CorruptPrepareCommand implements JournalCommand {
    constructor(
        readonly slot: number,
        readonly byte: number,
        readonly mask: number,
    ) {}
    check(): boolean {
        return true;
    }
    run(model: Model, harness: Harness): void {
        const offset = diskPrepareOffset(this.slot) + this.byte;
        harness.storage.data[offset] = (harness.storage.data[offset] ?? 0) ^ this.mask;
        model.intact[this.slot] = 0;
        model.corrupted[this.slot] = 1;
    }
    toString(): string {
        return `corruptPrepare(slot=${this.slot}, byte=${this.byte}, mask=${this.mask})`;
    }
}

/** A latent error in the headers ring: the prepares stay intact, so nothing durable is lost. */
class CorruptHeaderCommand implements JournalCommand {
    constructor(
        readonly slot: number,
        readonly byte: number,
        readonly mask: number,
    ) {}
    check(): boolean {
        return true;
    }
    run(_model: Model, harness: Harness): void {
        const offset = diskHeaderOffset(this.slot) + this.byte;
        harness.storage.data[offset] = (harness.storage.data[offset] ?? 0) ^ this.mask;
    }
    toString(): string {
        return `corruptHeader(slot=${this.slot}, byte=${this.byte}, mask=${this.mask})`;
    }
}

class CrashCommand implements JournalCommand {
    constructor(readonly tornProbability: number) {}
    check(): boolean {
        return true;
    }
    run(_model: Model, harness: Harness): void {
        harness.crashAndRestart(this.tornProbability);
    }
    toString(): string {
        return `crashAndRestart(torn=${this.tornProbability})`;
    }
}

const slotArbitrary = fc.integer({ min: 0, max: slotCount - 1 });
const maskArbitrary = fc.integer({ min: 1, max: 255 });
const appendArbitrary = fc.integer({ min: 1, max: 6 }).map((count) => new AppendCommand(count));
const tickArbitrary = fc.integer({ min: 1, max: 12 }).map((ticks) => new TickCommand(ticks));
const commandArbitraries = [
    appendArbitrary,
    appendArbitrary,
    appendArbitrary,
    tickArbitrary,
    tickArbitrary,
    // Mostly inside the prepare (320 bytes), sometimes in the sector's zero padding.
    fc
        .tuple(
            slotArbitrary,
            fc.oneof(
                fc.integer({ min: 0, max: prepareSize - 1 }),
                fc.integer({ min: 0, max: messageSizeMax - 1 }),
            ),
            maskArbitrary,
        )
        .map(([slot, byte, mask]) => new CorruptPrepareCommand(slot, byte, mask)),
    fc
        .tuple(slotArbitrary, fc.integer({ min: 0, max: headerSize - 1 }), maskArbitrary)
        .map(([slot, byte, mask]) => new CorruptHeaderCommand(slot, byte, mask)),
    fc.constantFrom(0, 0.5, 1).map((torn) => new CrashCommand(torn)),
];

function modelTest(solo: boolean, numRuns: number): Coverage {
    const coverage: Coverage = {
        runs: 0,
        wrappedRuns: 0,
        restarts: 0,
        intactChecked: 0,
        intactFaulty: 0,
        cases: new Map(),
    };
    fc.assert(
        fc.property(
            fc.integer({ min: 0, max: 0x7fff_ffff }),
            // A plain array rather than fc.commands, for a minimum length: ~120 ops wrap the
            // ring about twice (fast-check still shrinks it and prints each command).
            fc.array(fc.oneof(...commandArbitraries), { minLength: 80, maxLength: 200 }),
            (seed, commands) => {
                const model: Model = {
                    solo,
                    nextOp: 1,
                    intact: new Int32Array(slotCount),
                    corrupted: new Uint8Array(slotCount),
                    coverage,
                };
                const harness = new Harness(seed, model);
                fc.modelRun(() => ({ model, real: harness }), commands);
                harness.crashAndRestart(0.5); // Every run ends with a recovery to check.
                harness.journal.releaseAll();
                coverage.runs++;
                if (model.nextOp > slotCount) coverage.wrappedRuns++;
            },
        ),
        { numRuns },
    );
    return coverage;
}

function report(t: TestContext, coverage: Coverage): void {
    const cases = [...coverage.cases].sort().map(([label, count]) => `${label}=${count}`);
    t.diagnostic(
        `runs ${coverage.runs}, wrapped ${coverage.wrappedRuns}, restarts ${coverage.restarts}, ` +
            `intact checked ${coverage.intactChecked} (faulty ${coverage.intactFaulty}); ` +
            `cases ${cases.join(" ")}`,
    );
    assert.ok(coverage.wrappedRuns * 10 >= coverage.runs * 9, "most runs must wrap the ring");
    assert.ok(coverage.intactChecked >= coverage.runs * slotCount, "too few prepares checked");
    for (const label of ["@B", "@C", "@E", "@G", "@M", "@P"]) {
        assert.ok((coverage.cases.get(label) ?? 0) > 0, `no run reached case ${label}`);
    }
    // The write order (a redundant header only after its prepare is durable) rules out a header
    // of another content than its op's prepare on disk. A header without its prepare (@K) or
    // newer than it (@N) comes only from a faulty slot's header kept as a claim (journal.ts,
    // faultyHeaderImage: with claims written invalid instead, runs reach neither): faulty
    // again after the crash, never nacked.
    assert.equal(coverage.cases.get("@O") ?? 0, 0, "case @O reached");
}

const modelName = "a journal that appends, crashes and suffers latent errors recovers every";

test(`${modelName} durable prepare (replicas=1)`, (t) => {
    const coverage = modelTest(true, 200);
    report(t, coverage);
    assert.equal(coverage.intactFaulty, 0);
});

test(`${modelName} durable prepare or marks it faulty (replicas=3)`, (t) => {
    report(t, modelTest(false, 200));
});
