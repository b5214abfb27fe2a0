// Tests for the real storage (src/io/storage_direct.ts) and the format-time file creation.
// Goal: what the replica relies on holds on a real disk: aligned writes from the arena are read
// back byte-exact (through DirectStorage and, independently, through a plain readFileSync),
// O_DIRECT | O_DSYNC is really set on ext4 (checked in /proc/self/fdinfo), misuse asserts,
// iopsMax I/Os run at once, errors become result codes, close drains in-flight writes, and
// createDataFile never clobbers an existing file nor leaves its temporary file behind, and
// writes the whole file (zeros), directly where the filesystem allows, else through the cache.
// Method: files live in a fresh directory on a real disk (os.tmpdir() unless it is tmpfs, then
// the repository's parent), removed at the end. Data is drawn from a seeded PRNG (the seed is in
// each test's name). A filesystem refusing O_DIRECT is simulated by mocking fs.openSync or the
// probe's fs.readSync to fail with EINVAL: on this kernel (6.6+) even tmpfs accepts O_DIRECT.

import { after, before, mock, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";

import { createDataFile, DirectStorage } from "../../src/io/storage_direct.js";
import { AssertionError } from "../../src/stdx/assert.js";
import { PRNG } from "../../src/stdx/prng.js";
import { Arena } from "../../src/vsr/arena.js";
import { IoResult, type StorageCompletion } from "../../src/vsr/interfaces.js";
import { filesystemOf, realDiskDirectory } from "../disk.js";

const sector = 4096;
const kib = 1024;
const mib = 1024 * kib;

let directory = "";

before(() => {
    directory = realDiskDirectory("vsr-storage-direct-test");
});

after(() => {
    fs.rmSync(directory, { recursive: true, force: true });
});

/** A completion that records its calls and checks it never runs synchronously from submit. */
class TestCompletion implements StorageCompletion {
    result: IoResult = IoResult.ok;
    calls = 0;
    submitted = false;
    /** When set, the callback appends "write <result>" / "read <result>" here. */
    events: string[] | null = null;
    private resolve: ((result: IoResult) => void) | null = null;
    readonly done: Promise<IoResult>;

    constructor() {
        this.done = new Promise((resolve) => {
            this.resolve = resolve;
        });
    }

    callback(completion: StorageCompletion): void {
        assert.equal(completion, this);
        assert.ok(this.submitted, "the callback ran synchronously from the submit");
        this.calls++;
        assert.equal(this.calls, 1, "the callback ran more than once");
        this.events?.push(`completion ${this.result}`);
        this.resolve!(this.result);
    }
}

function submit(
    storage: DirectStorage,
    write: boolean,
    bufferOffset: number,
    sizeBytes: number,
    offsetBytes: number,
): TestCompletion {
    const completion = new TestCompletion();
    if (write) storage.write(completion, bufferOffset, sizeBytes, offsetBytes);
    else storage.read(completion, bufferOffset, sizeBytes, offsetBytes);
    completion.submitted = true;
    return completion;
}

function io(
    storage: DirectStorage,
    write: boolean,
    bufferOffset: number,
    sizeBytes: number,
    offsetBytes: number,
): Promise<IoResult> {
    return submit(storage, write, bufferOffset, sizeBytes, offsetBytes).done;
}

function closeStorage(storage: DirectStorage): Promise<Error | null> {
    return new Promise((resolve) => storage.close(resolve));
}

function fill(prng: PRNG, bytes: Uint8Array, offset: number, size: number): void {
    for (let index = 0; index < size; index++) bytes[offset + index] = prng.u32() & 0xff;
}

function newFile(name: string, sizeBytes: number): string {
    const filePath = path.join(directory, name);
    createDataFile(filePath, sizeBytes, () => {});
    return filePath;
}

/** The open flags of a file descriptor, from /proc/self/fdinfo (octal "flags:" line). */
function fdFlags(fd: number): number {
    const info = fs.readFileSync(`/proc/self/fdinfo/${fd}`, "utf8");
    const match = /^flags:\s*([0-7]+)$/m.exec(info);
    assert.ok(match !== null);
    return Number.parseInt(match[1]!, 8);
}

function open(filePath: string, arena: Arena, iopsMax: number, lines: string[] = []) {
    return DirectStorage.open(filePath, arena, { iopsMax, log: (line) => lines.push(line) });
}

function assertAssertion(call: () => void): void {
    assert.throws(call, AssertionError);
}

test("direct storage round-trips random aligned blocks with O_DIRECT (seed=1)", async () => {
    const prng = new PRNG(1);
    const fileSize = 8 * mib;
    const arena = new Arena(4 * mib);
    const storage = open(newFile("random.data", fileSize), arena, 4);
    assert.equal(storage.sizeBytes, fileSize);
    if (filesystemOf(directory) === "ext4") {
        assert.equal(storage.direct, true);
        assert.ok((fdFlags(storage.fd) & fs.constants.O_DIRECT) !== 0);
    }
    assert.ok((fdFlags(storage.fd) & fs.constants.O_DSYNC) !== 0);
    const model = new Uint8Array(fileSize);
    const half = 2 * mib;
    for (let round = 0; round < 64; round++) {
        const size = prng.range(1, 64) * sector;
        const offset = prng.int((fileSize - size) / sector + 1) * sector;
        const source = prng.int((half - size) / sector + 1) * sector;
        const target = half + prng.int((half - size) / sector + 1) * sector;
        fill(prng, arena.bytes, source, size);
        assert.equal(await io(storage, true, source, size, offset), IoResult.ok);
        model.set(arena.bytes.subarray(source, source + size), offset);
        arena.bytes.fill(0, target, target + size);
        assert.equal(await io(storage, false, target, size, offset), IoResult.ok);
        assert.deepEqual(
            arena.bytes.subarray(target, target + size),
            arena.bytes.subarray(source, source + size),
        );
    }
    assert.equal(await closeStorage(storage), null);
    assert.deepEqual(new Uint8Array(fs.readFileSync(storage.path)), model);
});

test("direct storage asserts alignment and bounds of buffer, size and file offset", async () => {
    const arena = new Arena(256 * kib);
    const storage = open(newFile("alignment.data", 64 * kib), arena, 2);
    const completion = new TestCompletion();
    const calls: Array<[number, number, number]> = [
        [512, sector, 0], // unaligned arena offset
        [0, 100, 0], // unaligned size
        [0, 0, 0], // empty
        [0, sector, 512], // unaligned file offset
        [0, 2 * sector, 64 * kib - sector], // past the end of the file
        [arena.sizeBytes - sector, 2 * sector, 0], // past the end of the arena
        [-sector, sector, 0], // negative arena offset
        [0, sector, -sector], // negative file offset
    ];
    for (const [bufferOffset, size, offset] of calls) {
        assertAssertion(() => storage.read(completion, bufferOffset, size, offset));
        assertAssertion(() => storage.write(completion, bufferOffset, size, offset));
    }
    assert.equal(storage.pending, 0);
    assert.equal(completion.calls, 0);
    assert.equal(await io(storage, true, 0, sector, 64 * kib - sector), IoResult.ok);
    assert.equal(await closeStorage(storage), null);
});

test("direct storage runs iopsMax concurrent writes and reads (iopsMax=32)", async () => {
    const prng = new PRNG(2);
    const iopsMax = 32;
    const size = 64 * kib;
    const arena = new Arena(2 * iopsMax * size);
    const storage = open(newFile("concurrent.data", iopsMax * size), arena, iopsMax);
    fill(prng, arena.bytes, 0, iopsMax * size);
    const writes: TestCompletion[] = [];
    // Slot i's block goes to file block (i * 7) % 32, so neighbours land apart.
    for (let index = 0; index < iopsMax; index++) {
        writes.push(submit(storage, true, index * size, size, ((index * 7) % iopsMax) * size));
    }
    assert.equal(storage.pending, iopsMax);
    assertAssertion(() => storage.write(new TestCompletion(), 0, size, 0));
    assert.deepEqual(
        await Promise.all(writes.map((write) => write.done)),
        writes.map(() => 0),
    );
    assert.equal(storage.pending, 0);
    const reads: TestCompletion[] = [];
    const base = iopsMax * size;
    for (let index = 0; index < iopsMax; index++) {
        reads.push(submit(storage, false, base + index * size, size, index * size));
    }
    assert.equal(storage.pending, iopsMax);
    assert.deepEqual(
        await Promise.all(reads.map((read) => read.done)),
        reads.map(() => 0),
    );
    for (let index = 0; index < iopsMax; index++) {
        const source = ((index * 23) % iopsMax) * size; // 23 = 7⁻¹ mod 32
        const target = base + index * size;
        assert.deepEqual(
            arena.bytes.subarray(target, target + size),
            arena.bytes.subarray(source, source + size),
        );
    }
    assert.equal(storage.writesCompleted, iopsMax);
    assert.equal(storage.readsCompleted, iopsMax);
    assert.equal(await closeStorage(storage), null);
});

test("a completion may resubmit into its freed slot from its callback (iopsMax=1)", async () => {
    const arena = new Arena(64 * kib);
    const storage = open(newFile("resubmit.data", 64 * kib), arena, 1);
    arena.bytes.fill(7, 0, sector);
    const second = new TestCompletion();
    const first = new TestCompletion();
    first.callback = (completion) => {
        TestCompletion.prototype.callback.call(first, completion);
        storage.read(second, sector, sector, 0);
        second.submitted = true;
    };
    storage.write(first, 0, sector, 0);
    first.submitted = true;
    assert.equal(await first.done, IoResult.ok);
    assert.equal(await second.done, IoResult.ok);
    assert.deepEqual(arena.bytes.subarray(sector, 2 * sector), arena.bytes.subarray(0, sector));
    assert.equal(await closeStorage(storage), null);
});

async function assertFallback(name: string, refuse: () => void): Promise<void> {
    const filePath = newFile(name, 64 * kib);
    const arena = new Arena(64 * kib);
    const lines: string[] = [];
    refuse();
    let storage: DirectStorage;
    try {
        storage = open(filePath, arena, 2, lines);
    } finally {
        mock.restoreAll();
    }
    assert.equal(storage.direct, false);
    assert.equal(lines.length, 1);
    assert.match(lines[0]!, /refuses O_DIRECT .*falling back to O_DSYNC/);
    assert.equal(fdFlags(storage.fd) & fs.constants.O_DIRECT, 0);
    assert.ok((fdFlags(storage.fd) & fs.constants.O_DSYNC) !== 0);
    // The fallback works: a write and a read round-trip through the page cache.
    arena.bytes.fill(0xab, 0, sector);
    assert.equal(await io(storage, true, 0, sector, sector), IoResult.ok);
    assert.equal(await io(storage, false, sector, sector, sector), IoResult.ok);
    assert.equal(arena.bytes[2 * sector - 1], 0xab);
    assert.equal(await closeStorage(storage), null);
    assert.equal(fs.readFileSync(filePath)[sector], 0xab);
    assert.equal(lines.length, 1);
}

test("open falls back to O_DSYNC, logging once, when open refuses O_DIRECT", async () => {
    const openSync = fs.openSync;
    await assertFallback("fallback_open.data", () => {
        mock.method(fs, "openSync", (...args: Parameters<typeof fs.openSync>) => {
            if (typeof args[1] === "number" && (args[1] & fs.constants.O_DIRECT) !== 0) {
                throw Object.assign(new Error("EINVAL: invalid argument, open"), {
                    code: "EINVAL",
                });
            }
            return openSync(...args);
        });
    });
});

test("open falls back to O_DSYNC, logging once, when the probe refuses O_DIRECT", async () => {
    await assertFallback("fallback_probe.data", () => {
        mock.method(fs, "readSync", () => {
            throw Object.assign(new Error("EINVAL: invalid argument, read"), { code: "EINVAL" });
        });
    });
});

test("open refuses a file whose size is not a non-zero multiple of 4096 (EDATAFILE)", () => {
    for (const [name, size] of [
        ["odd.data", 4096 + 512],
        ["empty.data", 0],
    ] as const) {
        const filePath = path.join(directory, name);
        fs.writeFileSync(filePath, new Uint8Array(size));
        assert.throws(() => open(filePath, new Arena(64 * kib), 1), { code: "EDATAFILE" });
    }
    assert.throws(() => open(path.join(directory, "missing.data"), new Arena(64 * kib), 1), {
        code: "ENOENT",
    });
});

function temporaryFiles(): string[] {
    return fs.readdirSync(directory).filter((name) => name.includes(".tmp-"));
}

test("createDataFile refuses an existing file, leaves it byte-identical and no temp file", () => {
    const filePath = path.join(directory, "existing.data");
    const original = new Uint8Array(3 * sector + 17);
    fill(new PRNG(3), original, 0, original.length);
    fs.writeFileSync(filePath, original);
    let initialized = false;
    assert.throws(
        () =>
            createDataFile(filePath, 16 * sector, () => {
                initialized = true;
            }),
        (error: NodeJS.ErrnoException) =>
            error.code === "EEXIST" && /already exists: refusing to format/.test(error.message),
    );
    assert.equal(initialized, false);
    assert.deepEqual(new Uint8Array(fs.readFileSync(filePath)), original);
    assert.deepEqual(temporaryFiles(), []);
});

test("createDataFile sizes the file and keeps what initialize wrote at aligned offsets", () => {
    const filePath = path.join(directory, "formatted.data");
    const superblock = new Uint8Array(sector).fill(0x5a);
    createDataFile(filePath, 1 * mib, (fd) => {
        assert.equal(fs.writeSync(fd, superblock, 0, sector, 2 * sector), sector);
    });
    const bytes = fs.readFileSync(filePath);
    assert.equal(bytes.length, 1 * mib);
    assert.deepEqual(new Uint8Array(bytes.subarray(2 * sector, 3 * sector)), superblock);
    assert.equal(bytes[2 * sector - 1], 0);
    assert.equal(bytes[3 * sector], 0);
    assert.deepEqual(temporaryFiles(), []);
});

/** Bytes the filesystem has allocated to the file (st_blocks counts 512-byte units). */
function allocatedBytes(filePath: string): number {
    return fs.statSync(filePath).blocks * 512;
}

test("createDataFile allocates every block: zeros written, nothing left sparse", () => {
    // Not a multiple of the 4 MiB write: the last write is a short one.
    const sizeBytes = 9 * mib + 3 * sector;
    const filePath = path.join(directory, "allocated.data");
    createDataFile(filePath, sizeBytes, () => {});
    assert.ok(allocatedBytes(filePath) >= sizeBytes, `${allocatedBytes(filePath)} allocated`);
    const bytes = fs.readFileSync(filePath);
    assert.equal(bytes.length, sizeBytes);
    assert.equal(
        bytes.findIndex((byte) => byte !== 0),
        -1,
    );
});

test("createDataFile zero-fills through the page cache where direct writes are refused", () => {
    const writeSync = fs.writeSync;
    const openSync = fs.openSync;
    const directFds = new Set<number>();
    let refused = 0;
    mock.method(fs, "openSync", (...args: Parameters<typeof fs.openSync>) => {
        const fd = openSync(...args);
        if (typeof args[1] === "number" && (args[1] & fs.constants.O_DIRECT) !== 0) {
            directFds.add(fd);
        }
        return fd;
    });
    const closeSync = fs.closeSync;
    mock.method(fs, "closeSync", (fd: number) => {
        directFds.delete(fd); // The number is reused by the next open.
        closeSync(fd);
    });
    // As tmpfs once did: O_DIRECT accepted at open, every direct write refused.
    mock.method(fs, "writeSync", (...args: Parameters<typeof fs.writeSync>) => {
        if (directFds.has(args[0])) {
            refused++;
            throw Object.assign(new Error("EINVAL: invalid argument, write"), { code: "EINVAL" });
        }
        return (writeSync as (...a: Parameters<typeof fs.writeSync>) => number)(...args);
    });
    const filePath = path.join(directory, "buffered.data");
    const superblock = new Uint8Array(sector).fill(0x3c);
    try {
        createDataFile(filePath, 2 * mib, (fd) => {
            assert.equal(fs.writeSync(fd, superblock, 0, sector, 0), sector);
        });
    } finally {
        mock.restoreAll();
    }
    assert.equal(refused, 1); // Only the first direct write is tried.
    assert.ok(allocatedBytes(filePath) >= 2 * mib);
    const bytes = fs.readFileSync(filePath);
    assert.deepEqual(new Uint8Array(bytes.subarray(0, sector)), superblock);
    assert.equal(
        bytes.subarray(sector).findIndex((byte) => byte !== 0),
        -1,
    );
    assert.deepEqual(temporaryFiles(), []);
});

test("createDataFile removes its temporary file and creates nothing when initialize throws", () => {
    const filePath = path.join(directory, "failed.data");
    assert.throws(
        () =>
            createDataFile(filePath, 16 * sector, () => {
                throw new Error("initialize failed");
            }),
        /initialize failed/,
    );
    assert.equal(fs.existsSync(filePath), false);
    assert.deepEqual(temporaryFiles(), []);
});

test("a read past the end of a file that shrank returns an error result, not a throw", async () => {
    const arena = new Arena(64 * kib);
    const lines: string[] = [];
    const storage = open(newFile("shrunk.data", 64 * kib), arena, 2, lines);
    fs.truncateSync(storage.path, 32 * kib); // Another process shrinks the file under us.
    // Wholly past the new end of file: the first read returns 0 bytes.
    assert.equal(await io(storage, false, 0, sector, 48 * kib), IoResult.error);
    // Straddling it: a short read of 4 KiB, continued, then end of file.
    assert.equal(await io(storage, false, 0, 2 * sector, 28 * kib), IoResult.error);
    assert.equal(storage.ioShortCount, 1);
    assert.equal(storage.ioErrorCount, 2);
    assert.equal(lines.length, 2);
    assert.match(lines[0]!, /read of 4096 bytes at offset 49152 failed \(EOF\)/);
    // The storage is still usable.
    assert.equal(await io(storage, false, 0, sector, 0), IoResult.ok);
    assert.equal(await closeStorage(storage), null);
});

test("close waits for in-flight writes, then fsyncs and closes (8 writes of 256 KiB)", async () => {
    const prng = new PRNG(4);
    const size = 256 * kib;
    const arena = new Arena(8 * size);
    const storage = open(newFile("close.data", 8 * size), arena, 8);
    fill(prng, arena.bytes, 0, 8 * size);
    const events: string[] = [];
    const writes: TestCompletion[] = [];
    for (let index = 0; index < 8; index++) {
        const write = new TestCompletion();
        write.events = events;
        storage.write(write, index * size, size, index * size);
        write.submitted = true;
        writes.push(write);
    }
    const closed = new Promise<Error | null>((resolve) =>
        storage.close((error) => {
            events.push("close");
            assert.equal(storage.pending, 0);
            resolve(error);
        }),
    );
    assertAssertion(() => storage.write(new TestCompletion(), 0, sector, 0));
    assert.equal(await closed, null);
    await Promise.all(writes.map((write) => write.done));
    assert.equal(events.length, 9);
    assert.equal(events[8], "close");
    assert.ok(events.slice(0, 8).every((event) => event === `completion ${IoResult.ok}`));
    assert.throws(() => fs.fstatSync(storage.fd), { code: "EBADF" });
    assert.deepEqual(
        new Uint8Array(fs.readFileSync(storage.path)),
        arena.bytes.subarray(0, 8 * size),
    );
});
