// The replica's whole world, as three small interfaces with a real implementation in src/io and
// a simulated one in src/sim. The replica imports these as types only, so the core never loads
// I/O code. Every buffer is named by its absolute byte offset in the process arena (no views are
// created per call), and every completion is a preallocated object whose callback was bound once.

import { sectorSize } from "../constants.js";
import { assert } from "../stdx/assert.js";
import type { Message } from "./message_pool.js";

export interface Time {
    /**
     * Wall-clock time in microseconds since the Unix epoch. It may jump either way and drift:
     * the replica reads it only through its Clock (src/vsr/clock.ts).
     */
    realtimeUs(): number;
    /** Microseconds since an arbitrary start; never goes backwards (clock-sync round trips). */
    monotonicUs(): number;
}

export const IoResult = {
    ok: 0,
    /** EIO or a latent sector error. */
    error: 1,
    /** ENOSPC. */
    noSpace: 2,
} as const;
export type IoResult = (typeof IoResult)[keyof typeof IoResult];

export interface StorageCompletion {
    result: IoResult;
    /** Called exactly once per submitted read or write, never synchronously from the submit. */
    callback(completion: StorageCompletion): void;
}

export interface Storage {
    readonly sizeBytes: number;
    /** Reads sizeBytes at offsetBytes of the data file into the arena at bufferOffset. */
    read(
        completion: StorageCompletion,
        bufferOffset: number,
        sizeBytes: number,
        offsetBytes: number,
    ): void;
    /** Writes; when the callback runs with `ok`, the bytes are durable. */
    write(
        completion: StorageCompletion,
        bufferOffset: number,
        sizeBytes: number,
        offsetBytes: number,
    ): void;
}

/**
 * The Storage contract every implementation checks on submit, so the simulator holds the replica
 * to exactly what the real disk demands: whole sectors, inside the file and inside the arena.
 */
export function assertStorageIo(
    storage: Storage,
    arenaSizeBytes: number,
    bufferOffset: number,
    sizeBytes: number,
    offsetBytes: number,
): void {
    assert(Number.isSafeInteger(bufferOffset) && bufferOffset >= 0);
    assert(Number.isSafeInteger(offsetBytes) && offsetBytes >= 0);
    assert(bufferOffset % sectorSize === 0);
    assert(sizeBytes > 0 && sizeBytes % sectorSize === 0);
    assert(offsetBytes % sectorSize === 0);
    assert(offsetBytes + sizeBytes <= storage.sizeBytes);
    assert(bufferOffset + sizeBytes <= arenaSizeBytes);
}

export interface MessageBus {
    /** Sends to a replica. The bus copies or references it; the caller keeps its reference. */
    sendToReplica(replica: number, message: Message): void;
    /** Sends a reply or eviction to the client named in its header. */
    sendToClient(message: Message): void;
}

export interface StateMachine {
    /** Executes eventCount events at input[inputOffset..]; results go to output[outputOffset..]. */
    commit(
        input: Uint8Array,
        inputOffset: number,
        eventCount: number,
        output: Uint8Array,
        outputOffset: number,
    ): number;
    reset(): void;
    readonly imageOffset: number;
    readonly imageSize: number;
    /**
     * The image after its 64-byte header is `slotCount` slots stored in columns: slot s owns
     * bytes [offset + s * width, + width) of each column (offsets from the image's start). A
     * slot is empty iff all its bytes are zero.
     */
    readonly slotCount: number;
    readonly slotColumns: readonly SlotColumn[];
    /** Bit s (word s >>> 5, bit s & 31) is set when slot s changed; the checkpointer clears. */
    readonly dirty: Uint32Array;
    /**
     * Told before any slot's bytes change (set by the grid: a checkpoint being written saves
     * the slot's bytes at its op first). reset() changes slots without telling it.
     */
    slotGuard: SlotGuard | null;
    /**
     * An upper bound of the slots that executing `eventCount` events at input[inputOffset..]
     * changes, when at most `insertsMax` new keys are inserted before or among them.
     */
    slotsTouchedMax(
        input: Uint8Array,
        inputOffset: number,
        eventCount: number,
        insertsMax: number,
    ): number;
}

export interface SlotGuard {
    beforeSlotWrite(slot: number): void;
}

export interface SlotColumn {
    readonly offset: number;
    readonly width: number;
}
