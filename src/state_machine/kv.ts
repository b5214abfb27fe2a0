// The KV state machine: a fixed-capacity hash table living in a region of the process arena,
// fed batches of fixed-size events by the replica's commit path.
//
// Owns: the event (128 B) and result (80 B) layouts, their client-side codecs, and the table.
// Table: open addressing, linear probing over `entriesMax` slots (a power of two), deletion by
// backward shift (no tombstones), at most `countMax` = entriesMax - max(1, entriesMax / 8) live
// entries, so a probe always meets an empty slot.
// Image (the whole state, self-contained for checkpoints and digests), little-endian int32 words:
//     [0, 64)                 header: count, entriesMax, 14 words zero
//     [64, 64 + 8 S)          slot metadata: per slot { hash u32, keySize | valueSize << 8 }
//     [.., + 32 S)            keys, zero-padded to 32 bytes
//     [.., + 64 S)            values, zero-padded to 64 bytes
// e.g. entriesMax S = 16: metadata at 64, keys at 64 + 128 = 192, values at 192 + 512 = 704,
// imageSize = 704 + 1024 = 1728 = 64 + 16 * 104.
// Invariants: a slot is empty iff its metadata word is 0 (keySize ≥ 1 otherwise), and an empty
// slot is all zero bytes; every entry is reachable from its home slot (hash & mask) without
// crossing an empty slot; header count = occupied slots ≤ countMax. The image is a pure function
// of the event sequence (no randomness, no addresses), so replicas agree byte for byte.
// Dirty tracking: every slot whose bytes change (put, delete, a backward shift's move and clear)
// gets its bit set in `dirty`, which the checkpointer reads and clears: a checkpoint writes only
// those slots (see src/vsr/grid.ts). reset() clears the bits (recovery and state sync rebuild
// the image wholesale and tell the checkpointer themselves).
// Events and results are read and written as int32 words, so input and output must start at
// 4-byte-aligned addresses (every event and result size is a multiple of 4). commit() creates no
// objects when they live in `memory`'s buffer (the arena); another buffer costs one Int32Array
// view the first time it is seen (tests and tools only).

import { assert, unreachable } from "../stdx/assert.js";
import type { SlotColumn, SlotGuard } from "../vsr/interfaces.js";

export const eventSize = 128;
export const resultSize = 80;
export const keySizeMax = 32;
export const valueSizeMax = 64;

export const EventKind = { put: 1, get: 2, delete: 3 } as const;
export type EventKind = (typeof EventKind)[keyof typeof EventKind];

export const ResultStatus = { ok: 0, notFound: 1, tableFull: 2, invalidEvent: 3 } as const;
export type ResultStatus = (typeof ResultStatus)[keyof typeof ResultStatus];

/** Byte offsets inside an event; [3, 8) and [104, 128) are reserved and must be zero. */
export const EventOffset = {
    kind: 0,
    keySize: 1,
    valueSize: 2,
    key: 8,
    value: 40,
    reserved: 104,
} as const;

/** Byte offsets inside a result; [2, 16) is reserved and zero. */
export const ResultOffset = { status: 0, valueSize: 1, reserved: 2, value: 16 } as const;

const headerSize = 64;
const metaSizePerSlot = 8;
const slotSize = metaSizePerSlot + keySizeMax + valueSizeMax;
const keyWordCount = keySizeMax / 4;
const valueWordCount = valueSizeMax / 4;
const eventWordCount = eventSize / 4;
const resultWordCount = resultSize / 4;
/** Word indices in an event: 0 kind and sizes, 1 reserved, 2 key, 10 value, 26..32 reserved. */
const eventKeyWord = EventOffset.key / 4;
const eventValueWord = EventOffset.value / 4;
const eventReservedWord = EventOffset.reserved / 4;
/** Word indices inside a result: 0 status/valueSize, 1..4 reserved, 4..20 value. */
const resultValueWord = ResultOffset.value / 4;
/** Keeps every word index below 2^31 so int32 index arithmetic stays exact. */
const entriesMaxLimit = 1 << 25;
const hashSeed = 0x2545f491;

assert(slotSize === 104);
assert(EventOffset.key + keySizeMax === EventOffset.value);
assert(EventOffset.value + valueSizeMax === EventOffset.reserved);
assert(ResultOffset.value + valueSizeMax === resultSize);
assert(eventSize % 4 === 0 && resultSize % 4 === 0 && EventOffset.reserved % 4 === 0);
// The image is written through Int32Array views: it is little-endian only on a little-endian
// host, which every Node 20 target is.
assert(new Uint8Array(new Uint32Array([1]).buffer)[0] === 1);

export class KvStateMachine {
    readonly entriesMax: number;
    /** Live entries at most: a put of a new key beyond this answers table_full. */
    readonly countMax: number;
    readonly imageOffset: number;
    readonly imageSize: number;
    readonly slotCount: number;
    /** Per slot: metadata (8 B), key (32 B), value (64 B), each in its own column. */
    readonly slotColumns: readonly SlotColumn[];
    readonly dirty: Uint32Array;
    slotGuard: SlotGuard | null = null;

    private readonly memory: Uint8Array;
    /** All of `memory`'s buffer as words: events and results in the arena are read through it. */
    private readonly memoryWords: Int32Array;
    private readonly slotMask: number;
    private readonly header: Int32Array;
    /** Two words per slot: [2 s] hash, [2 s + 1] keySize | valueSize << 8 (0 = empty). */
    private readonly metas: Int32Array;
    private readonly keys: Int32Array;
    private readonly values: Int32Array;
    private inputBuffer: ArrayBufferLike;
    private inputWords: Int32Array;
    private outputBuffer: ArrayBufferLike;
    private outputWords: Int32Array;

    /** Bytes of arena memory the table needs for `entriesMax` entries (power of two). */
    static sizeBytes(entriesMax: number): number {
        assert(Number.isInteger(entriesMax));
        assert(entriesMax >= 2 && entriesMax <= entriesMaxLimit);
        assert((entriesMax & (entriesMax - 1)) === 0);
        return headerSize + entriesMax * slotSize;
    }

    /** The table lives in memory[offset, offset + sizeBytes(entriesMax)). Zeroes it. */
    constructor(memory: Uint8Array, offset: number, entriesMax: number) {
        const sizeBytes = KvStateMachine.sizeBytes(entriesMax);
        assert(Number.isInteger(offset) && offset >= 0);
        assert(offset + sizeBytes <= memory.length);
        assert((memory.byteOffset + offset) % 8 === 0);

        this.entriesMax = entriesMax;
        this.countMax = entriesMax - Math.max(1, entriesMax >>> 3);
        this.imageOffset = offset;
        this.imageSize = sizeBytes;
        this.slotCount = entriesMax;
        const keysOffset = headerSize + entriesMax * metaSizePerSlot;
        this.slotColumns = [
            { offset: headerSize, width: metaSizePerSlot },
            { offset: keysOffset, width: keySizeMax },
            { offset: keysOffset + entriesMax * keySizeMax, width: valueSizeMax },
        ];
        this.dirty = new Uint32Array(Math.ceil(entriesMax / 32));
        this.memory = memory;
        this.memoryWords = wordsOf(memory.buffer);
        this.slotMask = entriesMax - 1;

        const buffer = memory.buffer;
        let at = memory.byteOffset + offset;
        this.header = new Int32Array(buffer, at, headerSize / 4);
        at += headerSize;
        this.metas = new Int32Array(buffer, at, entriesMax * 2);
        at += entriesMax * metaSizePerSlot;
        this.keys = new Int32Array(buffer, at, entriesMax * keyWordCount);
        at += entriesMax * keySizeMax;
        this.values = new Int32Array(buffer, at, entriesMax * valueWordCount);
        at += entriesMax * valueSizeMax;
        assert(at === memory.byteOffset + offset + sizeBytes);

        this.inputBuffer = buffer;
        this.inputWords = this.memoryWords;
        this.outputBuffer = buffer;
        this.outputWords = this.memoryWords;
        this.reset();
        assert(this.countMax >= 1 && this.countMax < entriesMax);
    }

    get count(): number {
        return this.header[0]!;
    }

    /** Resets to empty: the image becomes all zero but for the header's entriesMax. */
    reset(): void {
        this.header.fill(0);
        this.metas.fill(0);
        this.keys.fill(0);
        this.values.fill(0);
        this.dirty.fill(0);
        this.header[1] = this.entriesMax;
        assert(this.count === 0);
    }

    /**
     * Executes `eventCount` events from input[inputOffset..], writes one result per event at
     * output[outputOffset..]; returns bytes written. Never throws on bad events.
     */
    commit(
        input: Uint8Array,
        inputOffset: number,
        eventCount: number,
        output: Uint8Array,
        outputOffset: number,
    ): number {
        assert(Number.isInteger(eventCount) && eventCount >= 0);
        assert(Number.isInteger(inputOffset) && inputOffset >= 0);
        assert(Number.isInteger(outputOffset) && outputOffset >= 0);
        assert(inputOffset + eventCount * eventSize <= input.length);
        assert(outputOffset + eventCount * resultSize <= output.length);
        assert(this.header[1] === this.entriesMax);

        const inputAt = input.byteOffset + inputOffset;
        const outputAt = output.byteOffset + outputOffset;
        assert(inputAt % 4 === 0 && outputAt % 4 === 0);
        const inputSize = eventCount * eventSize;
        const outputSize = eventCount * resultSize;
        this.assertDisjoint(input.buffer, inputAt, inputSize, output.buffer, outputAt, outputSize);
        this.bindWords(input.buffer, output.buffer);
        const inputWords = this.inputWords;
        const outputWords = this.outputWords;
        // e.g. inputAt 4096: event 2 starts at word (4096 + 2 * 128) / 4 = 1088.
        const inputWord = inputAt >>> 2;
        const outputWord = outputAt >>> 2;
        for (let index = 0; index < eventCount; index++) {
            const eventWord = inputWord + index * eventWordCount;
            const resultWord = outputWord + index * resultWordCount;
            this.execute(inputWords, eventWord, outputWords, resultWord);
        }
        assert(this.count <= this.countMax);
        return outputSize;
    }

    /**
     * An upper bound of the slots `eventCount` events at input[inputOffset..] change, with at
     * most `insertsMax` inserts before or among them: a put changes one slot; a delete changes
     * slots from its key's home slot up to the empty slot that ends the cluster (backward
     * shift), and each insert fills an empty slot, so that end lies at most at the
     * (insertsMax + 1)-th empty slot from home today. A get or an invalid event changes none.
     * Cost: a scan per delete of about 8 (insertsMax + 1) slots (≥ 1/8 of the slots are empty).
     */
    slotsTouchedMax(
        input: Uint8Array,
        inputOffset: number,
        eventCount: number,
        insertsMax: number,
    ): number {
        assert(inputOffset + eventCount * eventSize <= input.length);
        const inputAt = input.byteOffset + inputOffset;
        assert(inputAt % 4 === 0);
        this.bindWords(input.buffer, this.outputBuffer);
        const words = this.inputWords;
        let total = 0;
        for (let index = 0; index < eventCount; index++) {
            const eventWord = (inputAt >>> 2) + index * eventWordCount;
            if (!eventValid(words, eventWord)) continue;
            const header = words[eventWord]!;
            const kind = header & 0xff;
            if (kind === EventKind.put) total += 1;
            if (kind !== EventKind.delete) continue;
            const keySize = (header >>> 8) & 0xff;
            const home = hashKey(words, eventWord + eventKeyWord, keySize) & this.slotMask;
            total += this.clusterEndDistance(home, insertsMax + 1);
        }
        return total;
    }

    /** Slots from `home` up to and including the `empties`-th empty slot from it. */
    private clusterEndDistance(home: number, empties: number): number {
        const metas = this.metas;
        let found = 0;
        let slot = home;
        for (let distance = 1; distance <= this.entriesMax; distance++) {
            if (metas[slot * 2 + 1] === 0) {
                found++;
                if (found === empties) return distance;
            }
            slot = (slot + 1) & this.slotMask;
        }
        return this.entriesMax; // Fewer empty slots than that: every slot, at most.
    }

    /** Checks every table invariant by a full scan: O(entriesMax), for tests and recovery. */
    invariants(): void {
        assert(this.header[1] === this.entriesMax);
        for (let word = 2; word < headerSize / 4; word++) assert(this.header[word] === 0);
        let occupied = 0;
        for (let slot = 0; slot < this.entriesMax; slot++) {
            const meta = this.metas[slot * 2 + 1]!;
            if (meta === 0) {
                assert(this.slotZero(slot));
                continue;
            }
            occupied += 1;
            const keySize = meta & 0xff;
            const valueSize = (meta >>> 8) & 0xff;
            assert(keySize >= 1 && keySize <= keySizeMax);
            assert(valueSize <= valueSizeMax && meta >>> 16 === 0);
            assert(paddingZero(this.keys, slot * keyWordCount, keyWordCount, keySize));
            assert(paddingZero(this.values, slot * valueWordCount, valueWordCount, valueSize));
            const hash = this.metas[slot * 2]!;
            assert(hash === hashKey(this.keys, slot * keyWordCount, keySize));
            // Reachable: no empty slot between the home slot and this one.
            const mask = this.slotMask;
            for (let probe = hash & mask; probe !== slot; probe = (probe + 1) & mask) {
                assert(this.metas[probe * 2 + 1] !== 0);
            }
        }
        assert(occupied === this.count);
        assert(occupied <= this.countMax);
    }

    private execute(
        input: Int32Array,
        eventWord: number,
        output: Int32Array,
        resultWord: number,
    ): void {
        if (!eventValid(input, eventWord)) {
            writeResult(output, resultWord, ResultStatus.invalidEvent, 0, this.values, -1);
            return;
        }
        const header = input[eventWord]!;
        const kind = header & 0xff;
        const keySize = (header >>> 8) & 0xff;
        const keyWord = eventWord + eventKeyWord;
        const hash = hashKey(input, keyWord, keySize);
        const found = this.find(input, keyWord, keySize, hash);

        if (kind === EventKind.get) {
            if (found < 0) {
                writeResult(output, resultWord, ResultStatus.notFound, 0, this.values, -1);
            } else {
                const valueSize = (this.metas[found * 2 + 1]! >>> 8) & 0xff;
                writeResult(output, resultWord, ResultStatus.ok, valueSize, this.values, found);
            }
        } else if (kind === EventKind.put) {
            const valueSize = (header >>> 16) & 0xff;
            const status = this.put(input, eventWord, keySize, valueSize, hash, found);
            writeResult(output, resultWord, status, 0, this.values, -1);
        } else {
            assert(kind === EventKind.delete);
            if (found < 0) {
                writeResult(output, resultWord, ResultStatus.notFound, 0, this.values, -1);
            } else {
                this.remove(found);
                writeResult(output, resultWord, ResultStatus.ok, 0, this.values, -1);
            }
        }
    }

    /** Returns the slot holding the key, or -1 - (the empty slot that ends its probe). */
    private find(input: Int32Array, keyWord: number, keySize: number, hash: number): number {
        const metas = this.metas;
        const mask = this.slotMask;
        let slot = hash & mask;
        for (let probe = 0; probe < this.entriesMax; probe++) {
            const meta = metas[slot * 2 + 1]!;
            if (meta === 0) return -1 - slot;
            if (metas[slot * 2] === hash && (meta & 0xff) === keySize) {
                if (this.keyEqual(slot, input, keyWord, keySize)) return slot;
            }
            slot = (slot + 1) & mask;
        }
        // countMax < entriesMax leaves an empty slot on every probe sequence.
        return unreachable();
    }

    private put(
        input: Int32Array,
        eventWord: number,
        keySize: number,
        valueSize: number,
        hash: number,
        found: number,
    ): ResultStatus {
        let slot = found;
        if (found < 0) {
            if (this.count >= this.countMax) return ResultStatus.tableFull;
            slot = -1 - found;
            assert(this.metas[slot * 2 + 1] === 0);
            if (this.slotGuard !== null) this.slotGuard.beforeSlotWrite(slot);
            this.metas[slot * 2] = hash;
            const keys = this.keys;
            const keyBase = slot * keyWordCount;
            const keyWord = eventWord + eventKeyWord;
            for (let word = 0; word < keyWordCount; word++) {
                keys[keyBase + word] = input[keyWord + word]!;
            }
            this.header[0] = this.count + 1;
        }
        assert(this.metas[slot * 2] === hash);
        if (found >= 0 && this.slotGuard !== null) this.slotGuard.beforeSlotWrite(slot);
        this.dirty[slot >>> 5]! |= 1 << (slot & 31);
        this.metas[slot * 2 + 1] = keySize | (valueSize << 8);
        // The event's value padding is validated zero, so copying all words keeps ours zero.
        const values = this.values;
        const valueBase = slot * valueWordCount;
        const valueWord = eventWord + eventValueWord;
        for (let word = 0; word < valueWordCount; word++) {
            values[valueBase + word] = input[valueWord + word]!;
        }
        return ResultStatus.ok;
    }

    /**
     * Backward-shift deletion: walk the cluster after the hole; an entry moves into the hole
     * unless its home lies cyclically in (hole, next], where moving would put it before home.
     * e.g. mask 15, hole 14, next 1: home 15 gives (1 - 15) & 15 = 2 < (1 - 14) & 15 = 3, so
     * it stays; home 13 gives 4 ≥ 3, so it moves to 14 and 1 becomes the hole.
     */
    private remove(slot: number): void {
        assert(this.metas[slot * 2 + 1] !== 0);
        const metas = this.metas;
        const mask = this.slotMask;
        let hole = slot;
        let next = (slot + 1) & mask;
        for (let probe = 0; probe < this.entriesMax; probe++) {
            if (metas[next * 2 + 1] === 0) break;
            const home = metas[next * 2]! & mask;
            if (((next - home) & mask) >= ((next - hole) & mask)) {
                this.move(next, hole);
                hole = next;
            }
            next = (next + 1) & mask;
        }
        this.clear(hole);
        this.header[0] = this.count - 1;
        assert(this.count >= 0);
    }

    private move(source: number, target: number): void {
        assert(source !== target);
        assert(this.metas[source * 2 + 1] !== 0);
        const metas = this.metas;
        if (this.slotGuard !== null) this.slotGuard.beforeSlotWrite(target);
        this.dirty[target >>> 5]! |= 1 << (target & 31);
        metas[target * 2] = metas[source * 2]!;
        metas[target * 2 + 1] = metas[source * 2 + 1]!;
        const keys = this.keys;
        for (let word = 0; word < keyWordCount; word++) {
            keys[target * keyWordCount + word] = keys[source * keyWordCount + word]!;
        }
        const values = this.values;
        for (let word = 0; word < valueWordCount; word++) {
            values[target * valueWordCount + word] = values[source * valueWordCount + word]!;
        }
    }

    private clear(slot: number): void {
        if (this.slotGuard !== null) this.slotGuard.beforeSlotWrite(slot);
        this.dirty[slot >>> 5]! |= 1 << (slot & 31);
        this.metas[slot * 2] = 0;
        this.metas[slot * 2 + 1] = 0;
        for (let word = 0; word < keyWordCount; word++) this.keys[slot * keyWordCount + word] = 0;
        for (let word = 0; word < valueWordCount; word++) {
            this.values[slot * valueWordCount + word] = 0;
        }
        assert(this.slotZero(slot));
    }

    private keyEqual(slot: number, input: Int32Array, keyWord: number, keySize: number): boolean {
        // Both sides have zero padding beyond keySize, so whole words compare exactly.
        const keys = this.keys;
        const base = slot * keyWordCount;
        const wordCount = (keySize + 3) >>> 2;
        for (let word = 0; word < wordCount; word++) {
            if (keys[base + word] !== input[keyWord + word]) return false;
        }
        return true;
    }

    private slotZero(slot: number): boolean {
        if (this.metas[slot * 2] !== 0 || this.metas[slot * 2 + 1] !== 0) return false;
        if (!paddingZero(this.keys, slot * keyWordCount, keyWordCount, 0)) return false;
        return paddingZero(this.values, slot * valueWordCount, valueWordCount, 0);
    }

    private bindWords(inputBuffer: ArrayBufferLike, outputBuffer: ArrayBufferLike): void {
        if (inputBuffer !== this.inputBuffer) {
            this.inputBuffer = inputBuffer;
            this.inputWords = this.wordsFor(inputBuffer, this.outputBuffer, this.outputWords);
        }
        if (outputBuffer !== this.outputBuffer) {
            this.outputBuffer = outputBuffer;
            this.outputWords = this.wordsFor(outputBuffer, this.inputBuffer, this.inputWords);
        }
        assert(this.inputWords.buffer === inputBuffer);
        assert(this.outputWords.buffer === outputBuffer);
    }

    /** Words of `buffer`: the arena's or the other side's view; a new one only for a stranger. */
    private wordsFor(
        buffer: ArrayBufferLike,
        otherBuffer: ArrayBufferLike,
        otherWords: Int32Array,
    ): Int32Array {
        if (buffer === this.memory.buffer) return this.memoryWords;
        if (buffer === otherBuffer) return otherWords;
        return wordsOf(buffer);
    }

    private assertDisjoint(
        inputBuffer: ArrayBufferLike,
        inputAt: number,
        inputSize: number,
        outputBuffer: ArrayBufferLike,
        outputAt: number,
        outputSize: number,
    ): void {
        const imageAt = this.memory.byteOffset + this.imageOffset;
        if (inputBuffer === this.memory.buffer) {
            assert(disjoint(inputAt, inputSize, imageAt, this.imageSize));
        }
        if (outputBuffer === this.memory.buffer) {
            assert(disjoint(outputAt, outputSize, imageAt, this.imageSize));
        }
        if (inputBuffer === outputBuffer) {
            assert(disjoint(inputAt, inputSize, outputAt, outputSize));
        }
    }
}

/** A whole buffer as int32 words (a trailing partial word is never addressed). */
function wordsOf(buffer: ArrayBufferLike): Int32Array {
    return new Int32Array(buffer, 0, buffer.byteLength >>> 2);
}

function disjoint(aAt: number, aSize: number, bAt: number, bSize: number): boolean {
    return aSize === 0 || bSize === 0 || aAt + aSize <= bAt || bAt + bSize <= aAt;
}

/** Validates everything but the table: kinds, sizes, reserved bytes and padding. */
function eventValid(input: Int32Array, eventWord: number): boolean {
    const header = input[eventWord]!;
    const kind = header & 0xff;
    const keySize = (header >>> 8) & 0xff;
    const valueSize = (header >>> 16) & 0xff;
    if (header >>> 24 !== 0) return false;
    if (input[eventWord + 1] !== 0) return false;
    if (kind === EventKind.put) {
        if (valueSize > valueSizeMax) return false;
    } else if (kind === EventKind.get || kind === EventKind.delete) {
        if (valueSize !== 0) return false;
    } else {
        return false;
    }
    if (keySize === 0 || keySize > keySizeMax) return false;
    if (!paddingZero(input, eventWord + eventKeyWord, keyWordCount, keySize)) return false;
    if (!paddingZero(input, eventWord + eventValueWord, valueWordCount, valueSize)) return false;
    let reserved = 0;
    for (let word = eventReservedWord; word < eventWordCount; word++) {
        reserved |= input[eventWord + word]!;
    }
    return reserved === 0;
}

/**
 * True if the bytes of a `wordCount`-word field beyond its first `size` bytes are zero.
 * e.g. size 5: word 0 is all data, word 1 keeps its low byte (mask -1 << 8), words 2.. are 0.
 */
function paddingZero(words: Int32Array, base: number, wordCount: number, size: number): boolean {
    let padding = 0;
    const sizeInWord = size & 3;
    let word = size >>> 2;
    if (sizeInWord !== 0) {
        padding = words[base + word]! & (-1 << (sizeInWord * 8));
        word += 1;
    }
    for (; word < wordCount; word++) padding |= words[base + word]!;
    return padding === 0;
}

/**
 * MurmurHash3 (x86, 32-bit) over (keySize, key words) in int32 arithmetic, for an event's key
 * and a stored one alike. Padding is zero, so whole words hash the key bytes alone.
 */
function hashKey(words: Int32Array, base: number, keySize: number): number {
    let hash = hashSeed ^ Math.imul(keySize, 0x9e3779b1);
    const wordCount = (keySize + 3) >>> 2;
    for (let word = 0; word < wordCount; word++) {
        let k = words[base + word]!;
        k = Math.imul(k, 0xcc9e2d51);
        k = (k << 15) | (k >>> 17);
        k = Math.imul(k, 0x1b873593);
        hash ^= k;
        hash = (hash << 13) | (hash >>> 19);
        hash = (Math.imul(hash, 5) + 0xe6546b64) | 0;
    }
    hash ^= hash >>> 16;
    hash = Math.imul(hash, 0x85ebca6b);
    hash ^= hash >>> 13;
    hash = Math.imul(hash, 0xc2b2ae35);
    hash ^= hash >>> 16;
    return hash;
}

/** Writes a whole result, reserved bytes and padding included (output may hold old bytes). */
function writeResult(
    output: Int32Array,
    resultWord: number,
    status: ResultStatus,
    valueSize: number,
    values: Int32Array,
    slot: number,
): void {
    assert(slot >= 0 || valueSize === 0);
    output[resultWord] = status | (valueSize << 8);
    for (let word = 1; word < resultValueWord; word++) output[resultWord + word] = 0;
    const valueWord = resultWord + resultValueWord;
    if (slot < 0) {
        for (let word = 0; word < valueWordCount; word++) output[valueWord + word] = 0;
    } else {
        const base = slot * valueWordCount;
        for (let word = 0; word < valueWordCount; word++) {
            output[valueWord + word] = values[base + word]!;
        }
    }
}

/** Encodes one event at target[offset..offset + eventSize) (client helper; may allocate). */
export function encodeEvent(
    target: Uint8Array,
    offset: number,
    kind: EventKind,
    key: Uint8Array,
    value: Uint8Array | null,
): void {
    assert(offset >= 0 && offset + eventSize <= target.length);
    assert(kind === EventKind.put || kind === EventKind.get || kind === EventKind.delete);
    assert(key.length >= 1 && key.length <= keySizeMax);
    assert((value !== null) === (kind === EventKind.put));
    const valueSize = value === null ? 0 : value.length;
    assert(valueSize <= valueSizeMax);
    target.fill(0, offset, offset + eventSize);
    target[offset + EventOffset.kind] = kind;
    target[offset + EventOffset.keySize] = key.length;
    target[offset + EventOffset.valueSize] = valueSize;
    target.set(key, offset + EventOffset.key);
    if (value !== null) target.set(value, offset + EventOffset.value);
}

export interface Result {
    status: ResultStatus;
    /** A copy of the value: empty unless the result answers a successful get. */
    value: Uint8Array;
}

/** Decodes one result at source[offset..offset + resultSize), asserting its zero bytes. */
export function decodeResult(source: Uint8Array, offset: number): Result {
    assert(offset >= 0 && offset + resultSize <= source.length);
    const status = source[offset + ResultOffset.status]!;
    const valueSize = source[offset + ResultOffset.valueSize]!;
    assert(status <= ResultStatus.invalidEvent);
    assert(valueSize <= valueSizeMax);
    assert(status === ResultStatus.ok || valueSize === 0);
    for (let index = ResultOffset.reserved; index < ResultOffset.value; index++) {
        assert(source[offset + index] === 0);
    }
    for (let index = valueSize; index < valueSizeMax; index++) {
        assert(source[offset + ResultOffset.value + index] === 0);
    }
    const valueAt = offset + ResultOffset.value;
    return { status: status as ResultStatus, value: source.slice(valueAt, valueAt + valueSize) };
}
