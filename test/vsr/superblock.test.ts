// Tests for the superblock (src/vsr/superblock.ts) over the formatted zone (src/vsr/format.ts).
// Goal: open reads back what format and write put down; every write advances the sequence and
// chains to the previous image; a crash at any point of a write leaves a file that opens to
// the old or the new image, never a mix; a damaged copy is ignored and the newest valid copy
// wins wherever it sits; a file with no valid copy does not open.
// Method: a SimStorage holding just the superblock zone. Each "process" is a new Superblock over
// a wiped arena region, opened by pumping storage ticks. Crashes use SimStorage.crash() with a
// torn probability of 1 while copy k is in flight, over several PRNG seeds per k (a tear lands
// each sector of the copy or not); explicit tears and damaged or reordered copies are also
// written straight into the disk image. Properties print fast-check's seed on failure.

import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";

import { headerSize, sectorSize } from "../../src/constants.js";
import { type FaultAtlas, SimStorage, noStorageFaults } from "../../src/sim/storage.js";
import { PRNG } from "../../src/stdx/prng.js";
import { Arena, type ArenaRegion } from "../../src/vsr/arena.js";
import { checksumAttach } from "../../src/vsr/checksum.js";
import { IoResult, type Storage, type StorageCompletion } from "../../src/vsr/interfaces.js";
import { formatSuperblockZone, superblockZoneSize } from "../../src/vsr/format.js";
import { Frame, writeRootPrepare } from "../../src/vsr/header.js";
import { superblockCopies, superblockCopySize } from "../../src/vsr/layout.js";
import { EioStorage } from "./eio_storage.js";
import { Superblock, SuperblockField, formatVersion } from "../../src/vsr/superblock.js";

const cluster = 42;
/** Bytes of a copy outside its checksum: the copy index (16) and padding (17..31). */
const uncheckedFrom = SuperblockField.copy;
const uncheckedTo = 32;

const arena = new Arena(512 * 1024);
checksumAttach(arena.memory);
const region: ArenaRegion = arena.region(256 * 1024);
const scratch = arena.allocate(sectorSize, sectorSize);

function createStorage(seed: number): SimStorage {
    return new SimStorage(
        {
            sizeBytes: superblockZoneSize,
            readLatencyMinTicks: 1,
            readLatencyMeanTicks: 2,
            writeLatencyMinTicks: 1,
            writeLatencyMeanTicks: 3,
            iopsMax: 4,
        },
        arena,
        new PRNG(seed),
    );
}

function formatted(seed: number, replica = 1, replicaCount = 3): SimStorage {
    const storage = createStorage(seed);
    formatSuperblockZone(storage.data, 0, { cluster, replica, replicaCount, kvEntriesMax: 256 });
    return storage;
}

/** Pumps storage ticks until `done()` (bounded). */
function pump(storage: SimStorage, done: () => boolean): void {
    for (let ticks = 0; !done(); ticks++) {
        assert.ok(ticks < 10_000, "I/O did not complete");
        storage.tick();
    }
}

/** A new process: a superblock over a wiped region, opened. Returns null when open fails. */
function open(storage: SimStorage): Superblock | null {
    region.reset();
    const superblock = new Superblock(region, storage);
    let result: boolean | null = null;
    superblock.open((ok) => {
        result = ok;
    });
    pump(storage, () => result !== null);
    return result === true ? superblock : null;
}

function openOrFail(storage: SimStorage): Superblock {
    const superblock = open(storage);
    assert.ok(superblock !== null, "open failed");
    return superblock;
}

/** Stages new VSR state (derived from `seed`) and starts the write; returns the new image. */
function startWrite(superblock: Superblock, seed: number, done: (ok: boolean) => void): Uint8Array {
    superblock.setU32(SuperblockField.view, seed + 3);
    superblock.setU32(SuperblockField.logView, seed + 2);
    superblock.setU64(SuperblockField.commitMax, seed * 10 + 7);
    superblock.setU64(SuperblockField.checkpointOp, seed * 10);
    // One view header (second sector), so that the two sectors of old and new images differ and
    // a tear between them is a real mix. Any bytes do: the superblock does not parse them.
    superblock.setU32(SuperblockField.viewHeadersCount, 1);
    const viewHeader = superblock.staged + SuperblockField.viewHeaders;
    arena.bytes.fill(seed & 0xff, viewHeader, viewHeader + headerSize);
    superblock.write(done);
    // write() set the sequence and parent and sealed copy 0; every copy differs only at byte 16.
    return image(superblock.staged);
}

function write(storage: SimStorage, superblock: Superblock, seed: number): Uint8Array {
    let result: boolean | null = null;
    const staged = startWrite(superblock, seed, (ok) => {
        result = ok;
    });
    pump(storage, () => result !== null);
    assert.equal(result, true);
    return staged;
}

function image(offset: number): Uint8Array {
    return arena.bytes.slice(offset, offset + superblockCopySize);
}

function diskCopy(storage: SimStorage, copy: number): Uint8Array {
    const base = copy * superblockCopySize;
    return storage.data.slice(base, base + superblockCopySize);
}

function putCopy(storage: SimStorage, copy: number, copyImage: Uint8Array): void {
    storage.data.set(copyImage, copy * superblockCopySize);
}

/** Equal images, ignoring the bytes outside the checksum (the copy index and its padding). */
function sameImage(a: Uint8Array, b: Uint8Array): boolean {
    assert.equal(a.length, superblockCopySize);
    assert.equal(b.length, superblockCopySize);
    for (let index = 0; index < superblockCopySize; index++) {
        if (index >= uncheckedFrom && index < uncheckedTo) continue;
        if (a[index] !== b[index]) return false;
    }
    return true;
}

function sequenceOf(copyImage: Uint8Array): number {
    const view = new DataView(copyImage.buffer, copyImage.byteOffset, copyImage.byteLength);
    return view.getUint32(SuperblockField.sequence, true);
}

function checksumOf(copyImage: Uint8Array): Uint8Array {
    return copyImage.slice(SuperblockField.checksum, SuperblockField.checksum + 16);
}

function flipByte(storage: SimStorage, copy: number, offset: number, mask: number): void {
    const index = copy * superblockCopySize + offset;
    storage.data[index] = (storage.data[index] ?? 0) ^ mask;
}

// ---------------------------------------------------------------------------------------------
// Format and write.

for (const [replica, replicaCount] of [
    [0, 1],
    [1, 3],
    [5, 6],
] as const) {
    const replicaName = `replica ${replica} of ${replicaCount}`;
    test(`format then open reads back cluster, ${replicaName}, sequence 1 and view 0`, () => {
        const storage = formatted(1, replica, replicaCount);
        const superblock = openOrFail(storage);
        const durable = superblock.durable;
        const view = arena.view;
        assert.equal(superblock.u32(durable, SuperblockField.version), formatVersion);
        assert.equal(superblock.u32(durable, SuperblockField.cluster), cluster);
        assert.equal(view.getUint8(durable + SuperblockField.replica), replica);
        assert.equal(view.getUint8(durable + SuperblockField.replicaCount), replicaCount);
        assert.equal(superblock.u64(durable, SuperblockField.sequence), 1);
        assert.equal(superblock.u32(durable, SuperblockField.view), 0);
        assert.equal(superblock.u32(durable, SuperblockField.logView), 0);
        assert.equal(superblock.u64(durable, SuperblockField.checkpointOp), 0);
        assert.equal(superblock.u64(durable, SuperblockField.commitMax), 0);
        assert.equal(superblock.u64(durable, SuperblockField.logViewOp), 0);
        assert.equal(superblock.u32(durable, SuperblockField.viewHeadersCount), 0);
        assert.deepEqual(
            image(durable + SuperblockField.parent).subarray(0, 16),
            new Uint8Array(16),
        );
        // The hash chain's anchor is the root prepare of this cluster.
        writeRootPrepare(arena.bytes, view, scratch, cluster);
        assert.deepEqual(
            image(durable + SuperblockField.checkpointOpChecksum).subarray(0, 16),
            image(scratch + Frame.checksum).subarray(0, 16),
        );
        // Four copies, equal but for their own copy index.
        for (let copy = 0; copy < superblockCopies; copy++) {
            const copyImage = diskCopy(storage, copy);
            assert.equal(copyImage[SuperblockField.copy], copy);
            assert.ok(sameImage(copyImage, diskCopy(storage, 0)));
        }
    });
}

test("a write is read back by the next open, its sequence advanced and its parent chained", () => {
    const storage = formatted(2);
    let previous = image(openOrFail(storage).durable);
    for (let round = 1; round <= 3; round++) {
        const superblock = openOrFail(storage);
        assert.ok(sameImage(image(superblock.durable), previous));
        const written = write(storage, superblock, round);
        assert.ok(sameImage(image(superblock.durable), written), "durable is the new image");
        const reopened = openOrFail(storage);
        const durable = reopened.durable;
        assert.ok(sameImage(image(durable), written));
        assert.equal(reopened.u64(durable, SuperblockField.sequence), round + 1);
        assert.deepEqual(
            image(durable + SuperblockField.parent).subarray(0, 16),
            checksumOf(previous),
        );
        assert.equal(reopened.u32(durable, SuperblockField.view), round + 3);
        assert.equal(reopened.u32(durable, SuperblockField.logView), round + 2);
        assert.equal(reopened.u64(durable, SuperblockField.commitMax), round * 10 + 7);
        assert.equal(reopened.u32(durable, SuperblockField.cluster), cluster);
        for (let copy = 0; copy < superblockCopies; copy++) {
            assert.ok(sameImage(diskCopy(storage, copy), written));
        }
        previous = written;
    }
});

test("two writes in one process chain each to the one before", () => {
    const storage = formatted(3);
    const superblock = openOrFail(storage);
    const first = write(storage, superblock, 1);
    const second = write(storage, superblock, 2);
    assert.equal(sequenceOf(first), 2);
    assert.equal(sequenceOf(second), 3);
    assert.deepEqual(
        second.subarray(SuperblockField.parent, SuperblockField.parent + 16),
        checksumOf(first),
    );
    assert.ok(sameImage(image(openOrFail(storage).durable), second));
});

// ---------------------------------------------------------------------------------------------
// Crashes during a write.

const crashSeeds = 12;

for (let inFlight = 0; inFlight < superblockCopies; inFlight++) {
    const name = `a crash that tears copy ${inFlight} of a write opens to the old or the new image`;
    test(`${name}, never a mix`, () => {
        const outcomes = new Set<string>();
        let mixes = 0;
        for (let seed = 1; seed <= crashSeeds; seed++) {
            const storage = formatted(seed);
            const superblock = openOrFail(storage);
            const old = image(superblock.durable);
            const writesBefore = storage.writesCompleted;
            const written = startWrite(superblock, seed, () =>
                assert.fail("a crashed write completed"),
            );
            // One copy at a time: copy k is in flight once k writes have completed.
            pump(storage, () => storage.writesCompleted - writesBefore === inFlight);
            assert.equal(storage.pending, 1);
            storage.faults = { ...noStorageFaults, crashTornProbability: 1 };
            storage.crash();
            storage.faults = noStorageFaults;
            assert.equal(storage.stats.tornWrites, 1);
            const tornCopy = diskCopy(storage, inFlight);
            if (!sameImage(tornCopy, old) && !sameImage(tornCopy, written)) mixes++;
            const reopened = openOrFail(storage);
            const recovered = image(reopened.durable);
            const isOld = sameImage(recovered, old);
            const isNew = sameImage(recovered, written);
            assert.ok(isOld !== isNew, `seed ${seed}: neither the old nor the new image`);
            // Copies before k hold the new image in full: it must win.
            if (inFlight > 0) assert.ok(isNew, `seed ${seed}: a durable copy was ignored`);
            outcomes.add(isNew ? "new" : "old");
        }
        if (inFlight > 0) assert.deepEqual([...outcomes], ["new"]);
        assert.ok(mixes > 0, "no seed tore the copy into a mix of the two images");
    });
}

for (const [name, newSectors] of [
    ["its first sector", [0]],
    ["its second sector", [1]],
] as const) {
    test(`a copy torn to ${name} of the new image is ignored`, () => {
        const storage = formatted(4);
        const old = image(openOrFail(storage).durable);
        const newImage = write(storage, openOrFail(storage), 1);
        // Copies 1..3 old; copy 0 a mix of the two images, sector by sector.
        for (let copy = 0; copy < superblockCopies; copy++) {
            const copyImage = old.slice();
            copyImage[SuperblockField.copy] = copy;
            putCopy(storage, copy, copyImage);
        }
        for (const sector of [0, 1]) {
            const from = sector * sectorSize;
            const to = from + sectorSize;
            assert.notDeepEqual(old.subarray(from, to), newImage.subarray(from, to));
        }
        const torn = old.slice();
        for (const sector of newSectors) {
            const from = sector * sectorSize;
            torn.set(newImage.subarray(from, from + sectorSize), from);
        }
        putCopy(storage, 0, torn);
        assert.ok(sameImage(image(openOrFail(storage).durable), old));
    });
}

test("with all four copies corrupted, open fails", () => {
    const storage = formatted(5);
    write(storage, openOrFail(storage), 1);
    for (let copy = 0; copy < superblockCopies; copy++) flipByte(storage, copy, 100 + copy, 0x01);
    assert.equal(open(storage), null);
});

/** A disk whose every write fails (EIO, as DirectStorage reports it) and changes nothing. */
class FailingStorage implements Storage {
    readonly sizeBytes = superblockZoneSize;
    private inFlight: StorageCompletion | null = null;

    read(): void {
        assert.fail("not used");
    }

    write(completion: StorageCompletion): void {
        assert.equal(this.inFlight, null);
        this.inFlight = completion;
    }

    tick(): void {
        const completion = this.inFlight;
        if (completion === null) return;
        this.inFlight = null;
        completion.result = IoResult.error;
        completion.callback(completion);
    }
}

test("a write whose every copy fails is not reported durable", () => {
    region.reset();
    const storage = new FailingStorage();
    const superblock = new Superblock(region, storage);
    let result: boolean | null = null;
    superblock.write((ok) => {
        result = ok;
    });
    for (let tick = 0; tick < superblockCopies && result === null; tick++) storage.tick();
    assert.equal(superblock.writeErrors, superblockCopies);
    assert.equal(result, false);
});

/** A fault atlas that lets every superblock write fail (the superblock's writer retries). */
const writeErrorAtlas: FaultAtlas = {
    zone: () => 0,
    faultable: () => false,
    tearable: () => false,
    writeRetried: () => true,
    misdirectTarget: () => -1,
};

test("after a failed write durable stays put; the next write lands as its successor", () => {
    const storage = formatted(4);
    const superblock = openOrFail(storage);
    const before = image(superblock.durable);
    storage.atlas = writeErrorAtlas;
    storage.faults = { ...noStorageFaults, writeErrorProbability: 1 };
    let result: boolean | null = null;
    startWrite(superblock, 1, (ok) => {
        result = ok;
    });
    pump(storage, () => result !== null);
    assert.equal(result, false);
    assert.equal(storage.stats.writeErrors, superblockCopies);
    assert.ok(sameImage(image(superblock.durable), before), "durable must not move on a failure");
    storage.faults = noStorageFaults;
    const written = write(storage, superblock, 1);
    assert.equal(sequenceOf(written), sequenceOf(before) + 1, "the retry keeps the sequence");
    const reopened = openOrFail(storage);
    assert.ok(sameImage(image(reopened.durable), written));
});

test("a zeroed superblock zone does not open", () => {
    assert.equal(open(createStorage(6)), null);
});

/** Opens over `storage` and returns the superblock and whether open succeeded. */
function openEio(storage: EioStorage): { superblock: Superblock; ok: boolean } {
    region.reset();
    const superblock = new Superblock(region, storage);
    let result: boolean | null = null;
    superblock.open((ok) => {
        result = ok;
    });
    pump(storage.inner, () => result !== null);
    return { superblock, ok: result === true };
}

test("a failed read of all copies falls back to a read per copy and skips the failing one", () => {
    for (let bad = 0; bad < superblockCopies; bad++) {
        const disk = formatted(11 + bad);
        const written = write(disk, openOrFail(disk), 1);
        const storage = new EioStorage(disk, [bad * superblockCopySize + sectorSize]);
        const { superblock, ok } = openEio(storage);
        assert.equal(ok, true, `copy ${bad} unreadable`);
        assert.equal(storage.readsFailed, 2, "the read of all copies, then the bad copy's");
        assert.equal(superblock.copyReadErrors, 1);
        assert.ok(sameImage(image(superblock.durable), written));
    }
});

test("with every copy corrupt or unreadable, open fails and calls the zone corrupt", () => {
    const disk = formatted(15);
    write(disk, openOrFail(disk), 1);
    for (let copy = 1; copy < superblockCopies; copy++) flipByte(disk, copy, 200 + copy, 0x10);
    const { superblock, ok } = openEio(new EioStorage(disk, [0]));
    assert.equal(ok, false);
    assert.equal(superblock.copyReadErrors, 1);
    assert.equal(superblock.corrupt, true, "not mistaken for an unformatted file");
});

test("an all-zero superblock zone is unformatted, not corrupt", () => {
    const { superblock, ok } = openEio(new EioStorage(createStorage(16), []));
    assert.equal(ok, false);
    assert.equal(superblock.corrupt, false);
});

// ---------------------------------------------------------------------------------------------
// Damaged and reordered copies.

/** Images of sequence 1 (format), 2 and 3 (two writes), indexed by sequence - 1. */
function threeImages(): Uint8Array[] {
    const storage = formatted(7);
    const images = [image(openOrFail(storage).durable)];
    const superblock = openOrFail(storage);
    images.push(write(storage, superblock, 1));
    images.push(write(storage, superblock, 2));
    return images;
}

const images = threeImages();

/** A disk whose copy c holds the image of sequence assignment[c] (0: zeros, never written). */
function diskOf(assignment: readonly number[]): SimStorage {
    const storage = createStorage(8);
    for (let copy = 0; copy < superblockCopies; copy++) {
        const sequence = assignment[copy] ?? 0;
        if (sequence === 0) continue;
        const copyImage = images[sequence - 1]!.slice();
        copyImage[SuperblockField.copy] = copy;
        putCopy(storage, copy, copyImage);
    }
    return storage;
}

test("the valid copy with the highest sequence wins wherever it sits (all 81 arrangements)", () => {
    for (let code = 0; code < 3 ** superblockCopies; code++) {
        const assignment: number[] = [];
        for (
            let copy = 0, rest = code;
            copy < superblockCopies;
            copy++, rest = Math.floor(rest / 3)
        ) {
            assignment.push(1 + (rest % 3));
        }
        const superblock = openOrFail(diskOf(assignment));
        const newest = Math.max(...assignment);
        assert.ok(sameImage(image(superblock.durable), images[newest - 1]!), `${assignment}`);
    }
});

test("a copy with a flipped byte is ignored, and the newest of the rest wins", () => {
    // Offsets inside the checksum: the checksum itself (0..15) or the bytes it covers (32..).
    const offset = fc.oneof(
        fc.integer({ min: 0, max: uncheckedFrom - 1 }),
        fc.integer({ min: uncheckedTo, max: superblockCopySize - 1 }),
    );
    const arrangement = fc.array(fc.integer({ min: 0, max: 3 }), {
        minLength: superblockCopies,
        maxLength: superblockCopies,
    });
    fc.assert(
        fc.property(
            arrangement,
            fc.array(
                fc.tuple(fc.integer({ min: 0, max: 3 }), offset, fc.integer({ min: 1, max: 255 })),
                {
                    maxLength: 4,
                },
            ),
            (assignment, flips) => {
                const storage = diskOf(assignment);
                const damaged = new Set<number>();
                for (const [copy, at, mask] of flips) {
                    flipByte(storage, copy, at, mask);
                    damaged.add(copy);
                }
                let newest = 0;
                for (let copy = 0; copy < superblockCopies; copy++) {
                    if (damaged.has(copy)) continue;
                    newest = Math.max(newest, assignment[copy] ?? 0);
                }
                const superblock = open(storage);
                if (newest === 0) {
                    assert.equal(superblock, null);
                } else {
                    assert.ok(superblock !== null);
                    assert.ok(sameImage(image(superblock.durable), images[newest - 1]!));
                }
            },
        ),
        { numRuns: 300 },
    );
});

test("the newest copy wins even when copy 0 holds an older valid image", () => {
    for (let copy = 1; copy < superblockCopies; copy++) {
        const assignment = [1, 1, 1, 1];
        assignment[copy] = 2;
        const superblock = openOrFail(diskOf(assignment));
        assert.equal(superblock.u64(superblock.durable, SuperblockField.sequence), 2);
    }
});
