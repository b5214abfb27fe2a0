// Direct storage: the replica's data file on a real disk, behind the Storage interface. The file
// is opened O_RDWR | O_DIRECT | O_DSYNC, so a write's callback with `ok` means the bytes are on
// stable storage and no page cache sits between the journal and the disk (after an fsync error
// the kernel may mark dirty pages clean: only direct I/O keeps the journal honest). Where the
// filesystem refuses O_DIRECT (EINVAL at open, or at a one-sector probe read right after), the
// file is reopened O_RDWR | O_DSYNC and the fallback is logged once.
//
// Invariants:
// - Every I/O is sector-aligned (4096) in arena offset, size and file offset, and in bounds, as
//   the simulated twin (src/sim/storage.ts) asserts; the arena is a WebAssembly.Memory whose
//   backing store is page-aligned, so an aligned arena offset is a valid O_DIRECT buffer.
// - At most iopsMax I/Os are in flight: a fixed pool of slots, each with its fs callback bound
//   once in the constructor; a free-slot stack makes acquire and release O(1) and allocation-free
//   on our side (Node's fs allocates its own request object per call; that is outside our reach).
// - Each completion's callback runs exactly once, always from an fs callback, never from submit.
// - Operating errors stay here: EIO and any other errno become IoResult.error, ENOSPC becomes
//   IoResult.noSpace; short reads and writes are continued until complete (a read that reaches
//   end of file early is an error: the file shrank under us; under O_DIRECT a continuation that
//   is not sector-aligned is refused by the kernel and also ends as an error). Nothing throws
//   across the boundary: misuse asserts, and every fs failure becomes a result.
// - Open fsyncs the file and its directory before anything is read: a crashed process may have
//   left data in the page cache that never reached the disk, and we must never act on it.
//
// - Counted per zone (the caller names the zones by their first byte): bytes read and written,
//   and, where the zone has a histogram, each write's latency from submit to completion, for
//   /metrics. Counting is a zone lookup over a handful of offsets and a few additions: no
//   allocation per I/O.
//
// Not done: an exclusive advisory lock (flock(LOCK_EX | LOCK_NB)); Node has no flock, so two
// processes opening one data file are not prevented here. Block devices are not accepted yet
// (their fstat size is 0). `createDataFile` writes the whole file with zeros (Node has no
// fallocate), so a full disk fails `vsr format`; an ENOSPC at run time (a filesystem that
// deduplicates or compresses zeros) still reaches the replica as IoResult.noSpace.

import fs from "node:fs";
import path from "node:path";
import { sectorSize } from "../constants.js";
import type { LogFn } from "./log.js";
import { type Histogram, exponentialBounds, writeHeader } from "./metrics.js";
import { type Timeline, TimelineKind, slowWriteMs, toWallMs } from "./timeline.js";
import { assert } from "../stdx/assert.js";
import type { Arena } from "../vsr/arena.js";
import {
    assertStorageIo,
    IoResult,
    type Storage,
    type StorageCompletion,
} from "../vsr/interfaces.js";

export interface DirectStorageOptions {
    /** Bound on reads and writes in flight at once; exceeding it is a programmer error. */
    readonly iopsMax: number;
    /** One line per call, no trailing newline: the fallback notice and I/O errors. */
    readonly log: LogFn;
    /**
     * The data file's zones, by first byte, ascending from 0 (the metrics' `zone` label). An
     * I/O counts for the zone it starts in. Default: one zone, "all".
     */
    readonly zones?: readonly StorageZone[];
    /** Where a write slower than slowWriteMs is recorded (value: its zone). Default: nowhere. */
    readonly timeline?: Timeline;
}

export interface StorageZone {
    readonly name: string;
    readonly offset: number;
    /** Observes the latency of each completed write to the zone (zones may share one). */
    readonly writeSeconds: Histogram | null;
}

/** Write latency buckets: 50 µs doubling to ~1.6 s (a 4 KiB O_DSYNC write here is ~0.2 ms). */
export const writeSecondsBounds = exponentialBounds(0.00005, 2, 16);

type IoCallback = (error: NodeJS.ErrnoException | null, bytes: number) => void;
type CloseCallback = (error: Error | null) => void;

const flagsDirect = fs.constants.O_RDWR | fs.constants.O_DIRECT | fs.constants.O_DSYNC;
const flagsBuffered = fs.constants.O_RDWR | fs.constants.O_DSYNC;

/** One in-flight I/O: its request, progress, and the fs callback bound once at construction. */
class IoSlot {
    readonly storage: DirectStorage;
    readonly index: number;
    completion: StorageCompletion | null = null;
    write = false;
    bufferOffset = 0;
    sizeBytes = 0;
    offsetBytes = 0;
    /** Bytes transferred so far: below sizeBytes only between the parts of a short I/O. */
    doneBytes = 0;
    /** The zone the I/O starts in, and when it was submitted (performance.now()). */
    zone = 0;
    submittedMs = 0;
    readonly callback: IoCallback;

    constructor(storage: DirectStorage, index: number) {
        this.storage = storage;
        this.index = index;
        this.callback = this.ioCallback.bind(this);
    }

    private ioCallback(error: NodeJS.ErrnoException | null, bytes: number): void {
        this.storage.slotCallback(this, error, bytes);
    }
}

export class DirectStorage implements Storage {
    readonly fd: number;
    readonly sizeBytes: number;
    /** False when the filesystem refused O_DIRECT and the file was opened O_DSYNC only. */
    readonly direct: boolean;
    readonly path: string;
    private readonly arena: Arena;
    private readonly log: LogFn;
    private readonly slots: IoSlot[] = [];
    /** Stack of free slot indexes; slotsFree[0..slotsFreeCount) are free. */
    private readonly slotsFree: Int32Array;
    private slotsFreeCount = 0;
    private closeCallback: CloseCallback | null = null;
    private closeStarted = false;
    private closeError: Error | null = null;
    private readonly closeFsyncCallback: (error: Error | null) => void;
    private readonly closeCloseCallback: (error: Error | null) => void;
    readsCompleted = 0;
    writesCompleted = 0;
    /** I/Os that failed (any result but ok). */
    ioErrorCount = 0;
    /** Short reads and writes that were continued. */
    ioShortCount = 0;
    readonly zoneNames: readonly string[];
    private readonly zoneOffsets: Float64Array;
    /** Per zone: bytes of completed reads and writes. */
    readonly zoneBytesRead: Float64Array;
    readonly zoneBytesWritten: Float64Array;
    /** Per zone: completed writes' latency, submit to completion (null: not timed). */
    private readonly zoneWriteSeconds: readonly (Histogram | null)[];
    private readonly timeline: Timeline | null;

    private constructor(
        filePath: string,
        fd: number,
        sizeBytes: number,
        direct: boolean,
        arena: Arena,
        options: DirectStorageOptions,
    ) {
        assert(Number.isSafeInteger(options.iopsMax) && options.iopsMax > 0);
        assert(sizeBytes > 0 && sizeBytes % sectorSize === 0);
        this.path = filePath;
        this.fd = fd;
        this.sizeBytes = sizeBytes;
        this.direct = direct;
        this.arena = arena;
        this.log = options.log;
        this.slotsFree = new Int32Array(options.iopsMax);
        for (let index = 0; index < options.iopsMax; index++) {
            this.slots.push(new IoSlot(this, index));
            this.slotsFree[index] = options.iopsMax - 1 - index;
        }
        this.slotsFreeCount = options.iopsMax;
        this.closeFsyncCallback = this.onCloseFsync.bind(this);
        this.closeCloseCallback = this.onCloseClose.bind(this);
        const zones = options.zones ?? [{ name: "all", offset: 0, writeSeconds: null }];
        assert(zones.length >= 1 && zones[0]!.offset === 0);
        for (let zone = 1; zone < zones.length; zone++) {
            assert(zones[zone]!.offset > zones[zone - 1]!.offset);
        }
        this.zoneNames = zones.map((zone) => zone.name);
        this.zoneOffsets = Float64Array.from(zones, (zone) => zone.offset);
        this.zoneBytesRead = new Float64Array(zones.length);
        this.zoneBytesWritten = new Float64Array(zones.length);
        this.zoneWriteSeconds = zones.map((zone) => zone.writeSeconds);
        this.timeline = options.timeline ?? null;
    }

    /** The zone an offset falls in (the last zone starting at or before it). */
    private zoneOf(offset: number): number {
        let zone = this.zoneOffsets.length - 1;
        while (this.zoneOffsets[zone]! > offset) zone--;
        assert(zone >= 0);
        return zone;
    }

    /** Per-zone byte counters, in Prometheus text format (the histograms are the caller's). */
    metricsText(lines: string[]): void {
        const zones = this.zoneNames;
        writeHeader(
            lines,
            "vsr_storage_read_bytes_total",
            "counter",
            "Bytes read from the data file, by zone.",
        );
        for (let zone = 0; zone < zones.length; zone++) {
            lines.push(
                `vsr_storage_read_bytes_total{zone="${zones[zone]}"} ${this.zoneBytesRead[zone]}`,
            );
        }
        writeHeader(
            lines,
            "vsr_storage_written_bytes_total",
            "counter",
            "Bytes written to the data file, by zone.",
        );
        for (let zone = 0; zone < zones.length; zone++) {
            const bytes = this.zoneBytesWritten[zone];
            lines.push(`vsr_storage_written_bytes_total{zone="${zones[zone]}"} ${bytes}`);
        }
    }

    /**
     * Opens an existing data file (synchronously: this runs once, at start-up). Throws on
     * operator errors (missing file, wrong size) with a one-line message and a `code`.
     */
    static open(filePath: string, arena: Arena, options: DirectStorageOptions): DirectStorage {
        let fd = openFlagsOrNull(filePath, flagsDirect);
        const openedDirect = fd !== null;
        if (fd === null) fd = fs.openSync(filePath, flagsBuffered);
        let sizeBytes = 0;
        let direct = openedDirect;
        try {
            sizeBytes = dataFileSizeBytes(filePath, fd);
            // Never act on data a crashed process may have left unsynced (TigerBeetle's
            // "fsync before read"): flush the file and the directory entry that names it.
            fs.fsyncSync(fd);
            fsyncDirectory(path.dirname(filePath));
            if (openedDirect) direct = directReadWorks(fd);
        } catch (error) {
            closeQuietly(fd);
            throw error;
        }
        if (!direct) {
            if (openedDirect) {
                fs.closeSync(fd); // The probe refused O_DIRECT: reopen without it.
                fd = fs.openSync(filePath, flagsBuffered);
            }
            options.log(
                `storage: ${filePath}: the filesystem refuses O_DIRECT (EINVAL); ` +
                    "falling back to O_DSYNC through the page cache (not for production)",
                "direct_io_refused",
                "warn",
            );
        }
        return new DirectStorage(filePath, fd, sizeBytes, direct, arena, options);
    }

    read(
        completion: StorageCompletion,
        bufferOffset: number,
        sizeBytes: number,
        offsetBytes: number,
    ): void {
        this.submit(completion, bufferOffset, sizeBytes, offsetBytes, false);
    }

    write(
        completion: StorageCompletion,
        bufferOffset: number,
        sizeBytes: number,
        offsetBytes: number,
    ): void {
        this.submit(completion, bufferOffset, sizeBytes, offsetBytes, true);
    }

    /** I/Os in flight. */
    get pending(): number {
        return this.slots.length - this.slotsFreeCount;
    }

    /**
     * Waits for in-flight I/O to complete, then fsyncs and closes the file. Submitting after
     * close() is a programmer error. The callback gets the first fsync or close error, if any.
     */
    close(callback: CloseCallback): void {
        assert(this.closeCallback === null);
        assert(!this.closeStarted);
        this.closeCallback = callback;
        this.closeMaybe();
    }

    private submit(
        completion: StorageCompletion,
        bufferOffset: number,
        size: number,
        offset: number,
        write: boolean,
    ): void {
        assert(this.closeCallback === null);
        assertStorageIo(this, this.arena.sizeBytes, bufferOffset, size, offset);
        assert(this.slotsFreeCount > 0); // The replica bounds its I/O; running out is its bug.
        this.slotsFreeCount--;
        const slot = this.slots[this.slotsFree[this.slotsFreeCount]!]!;
        assert(slot.completion === null);
        slot.completion = completion;
        slot.write = write;
        slot.bufferOffset = bufferOffset;
        slot.sizeBytes = size;
        slot.offsetBytes = offset;
        slot.doneBytes = 0;
        slot.zone = this.zoneOf(offset);
        slot.submittedMs = performance.now();
        this.issue(slot);
    }

    /** Issues the remaining part of the slot's I/O (all of it, unless continuing a short one). */
    private issue(slot: IoSlot): void {
        assert(slot.completion !== null);
        assert(slot.doneBytes < slot.sizeBytes);
        const bufferOffset = slot.bufferOffset + slot.doneBytes;
        const size = slot.sizeBytes - slot.doneBytes;
        const position = slot.offsetBytes + slot.doneBytes;
        if (slot.write) {
            fs.write(this.fd, this.arena.bytes, bufferOffset, size, position, slot.callback);
        } else {
            fs.read(this.fd, this.arena.bytes, bufferOffset, size, position, slot.callback);
        }
    }

    /** Re-entry point of every fs.read / fs.write (through IoSlot.callback). */
    slotCallback(slot: IoSlot, error: NodeJS.ErrnoException | null, bytes: number): void {
        assert(slot.completion !== null);
        assert(slot === this.slots[slot.index]);
        if (error !== null) {
            this.complete(slot, resultOf(error), error.code ?? "EIO");
            return;
        }
        assert(Number.isSafeInteger(bytes) && bytes >= 0);
        assert(slot.doneBytes + bytes <= slot.sizeBytes);
        // Zero bytes: a read at end of file (the file shrank), or a write that cannot progress.
        // Either would loop forever if continued.
        if (bytes === 0) {
            this.complete(slot, IoResult.error, slot.write ? "EWRITEZERO" : "EOF");
            return;
        }
        slot.doneBytes += bytes;
        if (slot.doneBytes < slot.sizeBytes) {
            this.ioShortCount++;
            this.issue(slot); // Bounded: each part transfers at least one byte.
            return;
        }
        this.complete(slot, IoResult.ok, "");
    }

    private complete(slot: IoSlot, result: IoResult, code: string): void {
        const completion = slot.completion;
        assert(completion !== null);
        assert(this.slotsFreeCount < this.slots.length);
        if (result === IoResult.ok) {
            if (slot.write) {
                this.writesCompleted++;
                this.zoneBytesWritten[slot.zone]! += slot.sizeBytes;
                const histogram = this.zoneWriteSeconds[slot.zone]!;
                const durationMs = performance.now() - slot.submittedMs;
                if (histogram !== null) histogram.observe(durationMs / 1000);
                if (this.timeline !== null && durationMs >= slowWriteMs) {
                    const startMs = toWallMs(slot.submittedMs);
                    this.timeline.record(TimelineKind.slowWrite, startMs, durationMs, slot.zone);
                }
            } else {
                this.readsCompleted++;
                this.zoneBytesRead[slot.zone]! += slot.sizeBytes;
            }
        } else {
            this.ioErrorCount++;
            this.logError(slot, code);
        }
        // Release before the callback, so that it may submit the next I/O into this slot.
        slot.completion = null;
        this.slotsFree[this.slotsFreeCount] = slot.index;
        this.slotsFreeCount++;
        completion.result = result;
        completion.callback(completion);
        this.closeMaybe();
    }

    /** Logs the 1st, 2nd, 4th, 8th, ... error: a failing disk cannot flood the log. */
    private logError(slot: IoSlot, code: string): void {
        const count = this.ioErrorCount;
        if ((count & (count - 1)) !== 0) return;
        this.log(
            `storage: ${this.path}: ${slot.write ? "write" : "read"} of ${slot.sizeBytes} bytes ` +
                `at offset ${slot.offsetBytes} failed (${code}); ${count} I/O error(s) so far`,
            "io_error",
            "error",
            { code, zone: this.zoneNames[slot.zone]!, count, rate_limited: true },
        );
    }

    private closeMaybe(): void {
        if (this.closeCallback === null || this.closeStarted) return;
        if (this.slotsFreeCount < this.slots.length) return; // In flight: the last one re-enters.
        this.closeStarted = true;
        fs.fsync(this.fd, this.closeFsyncCallback);
    }

    private onCloseFsync(error: Error | null): void {
        assert(this.closeStarted);
        this.closeError = error;
        fs.close(this.fd, this.closeCloseCallback);
    }

    private onCloseClose(error: Error | null): void {
        const callback = this.closeCallback;
        assert(callback !== null);
        assert(this.pending === 0);
        callback(this.closeError ?? error);
    }
}

/**
 * Creates a data file for `vsr format`, atomically: a temporary file beside `filePath` is
 * sized, initialized by the caller (aligned fs.writeSync calls), fsynced and only then given
 * its name, so a crash never leaves a half-formatted file under the real name. Refuses an
 * existing `filePath` (code EEXIST) and leaves it untouched; on any failure the temporary file
 * is removed and the error rethrown.
 */
export function createDataFile(
    filePath: string,
    sizeBytes: number,
    initialize: (fd: number) => void,
): void {
    assert(Number.isSafeInteger(sizeBytes) && sizeBytes > 0);
    assert(sizeBytes % sectorSize === 0);
    if (fs.lstatSync(filePath, { throwIfNoEntry: false }) !== undefined) {
        throw existsError(filePath);
    }
    const tempPath = `${filePath}.tmp-${process.pid}`;
    const flags = fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_EXCL;
    const fd = fs.openSync(tempPath, flags, 0o644); // Not ours to remove if this fails.
    let fdOpen = true;
    try {
        fs.ftruncateSync(fd, sizeBytes);
        zeroFill(tempPath, sizeBytes);
        initialize(fd);
        fs.fsyncSync(fd);
        fdOpen = false;
        fs.closeSync(fd);
        publish(tempPath, filePath);
        fsyncDirectory(path.dirname(filePath));
    } catch (error) {
        if (fdOpen) closeQuietly(fd);
        removeQuietly(tempPath);
        throw error;
    }
}

/** Bytes per write of zeroFill: large enough to run at the disk's sequential speed. */
const zeroFillChunkBytes = 4 * 1024 * 1024;

/**
 * Writes zeros over the whole file, so every block is allocated and written once at format
 * time. A sparse file allocates its blocks on the first lap of the WAL and grid: each of those
 * writes then also commits filesystem metadata, on the commit path (measured here: 4 KiB
 * O_DIRECT | O_DSYNC writes at a 128 KiB stride, three processes at once, p50 0.94 ms into a
 * sparse file and 0.63 ms into a written one), and a full disk would surface as ENOSPC long
 * after format instead of at it. Direct I/O where the filesystem takes it, so the zeros do not
 * fill the page cache that the replica's direct writes would then have to invalidate.
 */
function zeroFill(filePath: string, sizeBytes: number): void {
    assert(sizeBytes % sectorSize === 0);
    // Page-aligned (direct I/O) and zero: a fresh WebAssembly.Memory.
    const pages = zeroFillChunkBytes / (64 * 1024);
    const zeros = new Uint8Array(new WebAssembly.Memory({ initial: pages, maximum: pages }).buffer);
    const flagsWrite = fs.constants.O_WRONLY;
    const fdDirect = openFlagsOrNull(filePath, flagsWrite | fs.constants.O_DIRECT);
    if (fdDirect !== null && zeroFillFd(fdDirect, zeros, sizeBytes)) return;
    // No direct I/O here (or it is refused at the first write, as on tmpfs): buffered.
    const written = zeroFillFd(fs.openSync(filePath, flagsWrite), zeros, sizeBytes);
    assert(written); // Buffered writes have no alignment to refuse.
}

/** Returns false, having written nothing, when the first write is refused with EINVAL. */
function zeroFillFd(fd: number, zeros: Uint8Array, sizeBytes: number): boolean {
    try {
        for (let offset = 0; offset < sizeBytes; ) {
            const length = Math.min(zeros.length, sizeBytes - offset);
            try {
                offset += fs.writeSync(fd, zeros, 0, length, offset);
            } catch (error) {
                if (offset === 0 && errorCode(error) === "EINVAL") return false;
                throw error;
            }
        }
        fs.fsyncSync(fd);
        return true;
    } finally {
        fs.closeSync(fd);
    }
}

/**
 * Gives the temporary file its final name without ever replacing an existing file: link(2)
 * fails with EEXIST atomically, where rename(2) would silently overwrite a file created after
 * our check. Filesystems without hard links fall back to check-then-rename.
 */
function publish(tempPath: string, filePath: string): void {
    try {
        fs.linkSync(tempPath, filePath);
    } catch (error) {
        const code = errorCode(error);
        if (code === "EEXIST") throw existsError(filePath);
        if (code !== "EPERM" && code !== "ENOTSUP" && code !== "EOPNOTSUPP") throw error;
        if (fs.lstatSync(filePath, { throwIfNoEntry: false }) !== undefined) {
            throw existsError(filePath);
        }
        fs.renameSync(tempPath, filePath);
        return;
    }
    fs.unlinkSync(tempPath);
}

/** The file descriptor, or null if the filesystem refuses these flags (EINVAL). */
function openFlagsOrNull(filePath: string, flags: number): number | null {
    try {
        return fs.openSync(filePath, flags);
    } catch (error) {
        if (errorCode(error) === "EINVAL") return null;
        throw error;
    }
}

/** Some filesystems accept O_DIRECT at open and refuse the I/O: read one sector to find out. */
function directReadWorks(fd: number): boolean {
    // A private page-aligned page: the arena's bytes belong to its owners.
    const probe = new Uint8Array(new WebAssembly.Memory({ initial: 1, maximum: 1 }).buffer);
    assert(probe.byteLength >= sectorSize);
    try {
        fs.readSync(fd, probe, 0, sectorSize, 0);
    } catch (error) {
        // Only the alignment question is asked here; EIO is the replica's to handle later.
        if (errorCode(error) === "EINVAL") return false;
    }
    return true;
}

function dataFileSizeBytes(filePath: string, fd: number): number {
    const stat = fs.fstatSync(fd);
    if (!stat.isFile() || stat.size === 0 || stat.size % sectorSize !== 0) {
        throw codedError(
            `${filePath} is not a data file: expected a regular file whose size is a ` +
                `non-zero multiple of ${sectorSize} bytes, found ${stat.size} bytes`,
            "EDATAFILE",
        );
    }
    assert(Number.isSafeInteger(stat.size));
    return stat.size;
}

function fsyncDirectory(directory: string): void {
    const fd = fs.openSync(directory, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
    try {
        fs.fsyncSync(fd);
    } finally {
        fs.closeSync(fd);
    }
}

function resultOf(error: NodeJS.ErrnoException): IoResult {
    return error.code === "ENOSPC" ? IoResult.noSpace : IoResult.error;
}

function existsError(filePath: string): Error {
    return codedError(
        `${filePath} already exists: refusing to format over it (remove it first if it is ` +
            "really unwanted)",
        "EEXIST",
    );
}

function codedError(message: string, code: string): Error {
    const error = new Error(message) as NodeJS.ErrnoException;
    error.code = code;
    return error;
}

function errorCode(error: unknown): string | null {
    if (typeof error !== "object" || error === null || !("code" in error)) return null;
    return typeof error.code === "string" ? error.code : null;
}

function closeQuietly(fd: number): void {
    try {
        fs.closeSync(fd);
    } catch {
        // Already failing: the first error is the one to report.
    }
}

function removeQuietly(filePath: string): void {
    try {
        fs.unlinkSync(filePath);
    } catch {
        // Already gone (published, or never fully created): nothing to clean.
    }
}
