// The 128-bit checksum of headers, bodies and the prepare hash chain.
//
// Algorithm (the "lane hash"; this file is its specification, checksum_wasm.ts a second
// implementation that must agree bit for bit):
//   state   16 u32 lanes s[0..16), seen as four vectors V0..V3 of four lanes;
//           s[i] = seedLanes[i] ^ size (size < 2^32; the arena is a 32-bit memory).
//   stripe  for each 64-byte stripe of the input (the last one zero-padded to 64 bytes), with
//           w[i] the little-endian u32 at byte 4i of the stripe:
//             s[i] = rotl(s[i] + w[i] * prime2, 13) * prime1            (xxHash32's round)
//             V0[j] += V1[j+1]; V2[j] += V3[j+1]     then     V1[j] += V2[j+1]; V3[j] += V0[j+1]
//           (lane indices j+1 taken mod 4; all arithmetic mod 2^32).
//   final   h = mix128(V0 ^ K0) ^ mix128(V1 ^ K1) ^ mix128(V2 ^ K2) ^ mix128(V3 ^ K3), with K the
//           16 finalKeys words; the checksum is h0..h3 as 16 little-endian bytes. mix128 is
//           MurmurHash3 x86_128's finalization (add across words, fmix32 each, add across).
//
// Why this design: it was chosen by measurement (bench/checksum.bench.ts) against
// MurmurHash3_x86_128 and md5. The 16 lanes are independent within a stripe, so the same
// function runs as four i32x4 SIMD vectors in a WebAssembly kernel (multi-GB/s over the arena in
// place) and as 32-bit integer code in TypeScript (the fallback for buffers outside the arena,
// and the reference the kernel is tested against). Every step is a bijection of the 512-bit state
// for a fixed stripe, and each round is a bijection of the stripe word for a fixed state, so two
// inputs of the same size that differ anywhere leave the stripe phase with different states;
// the cross-vector adds spread a difference to other vectors, so it cannot hide in one 32-bit
// lane. The final merge is XXH3's pattern: independent full-avalanche permutations of keyed
// accumulators, xored, so four short dependency chains instead of one long one (short inputs
// are dominated by this step).
//
// Measured (bench/checksum.bench.ts; Node 20, 2-core AMD EPYC VM under load; tinybench medians):
//                                   256 B               1 MiB         heap per call
//   lane hash, WebAssembly kernel   4.7 GB/s (54 ns)    12.6 GB/s     0
//   lane hash, TypeScript           1.5 GB/s (167 ns)   2.3 GB/s      0
//   MurmurHash3_x86_128, TypeScript 2.0 GB/s (126 ns)   4.1 GB/s      0
//   md5, node:crypto                0.19 GB/s           0.71 GB/s     330-420 B
// The kernel wins at both sizes; messages live in the arena, so it is the hot path. Murmur3 is
// faster than this hash's TypeScript form, but a checksum is a wire value: it must not depend on
// which buffer holds the bytes, so the fallback computes the kernel's function, not another one.
//
// Invariants: no allocation per call (module-level scratch; a caller's view is looked up once and
// cached, with a DataView over its buffer made only when that buffer is new, i.e. at start-up);
// little-endian everywhere; the kernel and the TypeScript code compute the same function.

import { assert } from "../stdx/assert.js";
import { checksumKernelBytes, type LaneHashConstants } from "./checksum_wasm.js";

export const checksumSize = 16;

const prime1 = 0x9e3779b1;
const prime2 = 0x85ebca77;
const rotateBits = 13;
const fmixPrime1 = 0x85ebca6b;
const fmixPrime2 = 0xc2b2ae35;
const stripeSize = 64;

/** A Weyl sequence of the golden ratio: word i is (i + 1) * 0x9e3779b9 mod 2^32, all distinct. */
const seedLanes = new Int32Array(16);
const finalKeys = new Int32Array(16);
for (let lane = 0; lane < 16; lane++) {
    seedLanes[lane] = Math.imul(lane + 1, 0x9e3779b9);
    finalKeys[lane] = Math.imul(lane + 17, 0x9e3779b9);
}

const kernelConstants: LaneHashConstants = {
    seedLanes: Array.from(seedLanes),
    finalKeys: Array.from(finalKeys),
    prime1,
    prime2,
    rotateBits,
    fmixPrime1,
    fmixPrime2,
};

// Scratch of the TypeScript implementation.
const laneWords = new Int32Array(16);
const resultWords = new Int32Array(4);
const tailBytes = new Uint8Array(stripeSize);
const tailView = new DataView(tailBytes.buffer);

// A cache of the callers' views. On Node 20, a typed array's `buffer` and `byteOffset` are runtime
// calls (10-15 ns each, not inlined), more than hashing a header; a view's buffer and byteOffset
// never change, so they are read once per view and found again by identity. Round-robin
// replacement; a miss costs those reads (and a DataView when the view's buffer is new).
const viewCacheSize = 8;
const cachedViews: Array<Uint8Array | null> = [null, null, null, null, null, null, null, null];
const cachedStarts = new Uint32Array(viewCacheSize);
const cachedInKernel = new Uint8Array(viewCacheSize);
const cachedDataViews: Array<DataView<ArrayBufferLike>> = [];
for (let slot = 0; slot < viewCacheSize; slot++) cachedDataViews.push(tailView);
let viewCacheVictim = 0;

// The WebAssembly kernel, bound to one memory by checksumAttach().
type DigestFunction = (start: number, size: number) => void;
type DigestIntoFunction = (start: number, size: number, targetStart: number) => void;
type DigestEqualsFunction = (start: number, size: number, expectedStart: number) => number;
type WordFunction = () => number;
let kernelModule: WebAssembly.Module | null = null;
let kernelBuffer: ArrayBufferLike | null = null;
let kernelDigest: DigestFunction = unattached;
let kernelDigestInto: DigestIntoFunction = unattached;
let kernelDigestEquals: DigestEqualsFunction = unattached;
let kernelWord0: WordFunction = unattached;
let kernelWord1: WordFunction = unattached;
let kernelWord2: WordFunction = unattached;
let kernelWord3: WordFunction = unattached;

function unattached(): never {
    assert(false);
}

/**
 * Writes the 128-bit checksum of source[offset, offset+size) as 16 little-endian bytes at
 * target[targetOffset].
 */
export function checksum(
    source: Uint8Array,
    offset: number,
    size: number,
    target: Uint8Array,
    targetOffset: number,
): void {
    assertRange(source, offset, size);
    assertRange(target, targetOffset, checksumSize);
    const sourceSlot = viewSlot(source);
    const start = cachedStarts[sourceSlot]! + offset;
    if (cachedInKernel[sourceSlot] === 1) {
        const targetSlot = viewSlot(target);
        if (cachedInKernel[targetSlot] === 1) {
            kernelDigestInto(start, size, cachedStarts[targetSlot]! + targetOffset);
            return;
        }
        kernelDigest(start, size);
        kernelResult();
    } else {
        digestPortable(cachedDataViews[sourceSlot]!, start, size);
    }
    for (let word = 0; word < 4; word++) {
        const value = resultWords[word]!;
        const index = targetOffset + word * 4;
        target[index] = value;
        target[index + 1] = value >>> 8;
        target[index + 2] = value >>> 16;
        target[index + 3] = value >>> 24;
    }
}

/**
 * True when the checksum of source[offset, offset+size) equals the 16 bytes at
 * expected[expectedOffset].
 */
export function checksumEquals(
    source: Uint8Array,
    offset: number,
    size: number,
    expected: Uint8Array,
    expectedOffset: number,
): boolean {
    assertRange(source, offset, size);
    assertRange(expected, expectedOffset, checksumSize);
    const sourceSlot = viewSlot(source);
    const start = cachedStarts[sourceSlot]! + offset;
    if (cachedInKernel[sourceSlot] === 1) {
        const expectedSlot = viewSlot(expected);
        if (cachedInKernel[expectedSlot] === 1) {
            const expectedStart = cachedStarts[expectedSlot]! + expectedOffset;
            return kernelDigestEquals(start, size, expectedStart) === 1;
        }
        kernelDigest(start, size);
        kernelResult();
    } else {
        digestPortable(cachedDataViews[sourceSlot]!, start, size);
    }
    let equal = true;
    for (let word = 0; word < 4; word++) {
        const index = expectedOffset + word * 4;
        const value =
            expected[index]! |
            (expected[index + 1]! << 8) |
            (expected[index + 2]! << 16) |
            (expected[index + 3]! << 24);
        equal = equal && value === resultWords[word];
    }
    return equal;
}

/**
 * Binds the WebAssembly kernel to `memory` (the arena): from now on, views of `memory.buffer` are
 * hashed in place by the SIMD kernel; any other buffer still goes through the TypeScript
 * implementation, which computes the same function. Call at start-up, after the arena exists (a
 * new arena, e.g. the next simulated cluster, re-binds; the previous one falls back to TS).
 */
export function checksumAttach(memory: WebAssembly.Memory): void {
    if (kernelModule === null) {
        kernelModule = new WebAssembly.Module(checksumKernelBytes(kernelConstants));
    }
    const instance = new WebAssembly.Instance(kernelModule, { env: { memory } });
    const exports = instance.exports;
    kernelDigest = exports["digest"] as DigestFunction;
    kernelDigestInto = exports["digestInto"] as DigestIntoFunction;
    kernelDigestEquals = exports["digestEquals"] as DigestEqualsFunction;
    kernelWord0 = exports["word0"] as WordFunction;
    kernelWord1 = exports["word1"] as WordFunction;
    kernelWord2 = exports["word2"] as WordFunction;
    kernelWord3 = exports["word3"] as WordFunction;
    assert(typeof kernelDigest === "function" && typeof kernelWord3 === "function");
    // Pointers are i32 and the tail code computes p + 64: keep every address below 2^32 - 64.
    assert(memory.buffer.byteLength <= 0xffff_ffff - stripeSize);
    kernelBuffer = memory.buffer;
    for (let slot = 0; slot < viewCacheSize; slot++) cachedViews[slot] = null;
}

/** The cache slot of `view`, filling one on a miss. */
function viewSlot(view: Uint8Array): number {
    for (let slot = 0; slot < viewCacheSize; slot++) {
        if (cachedViews[slot] === view) return slot;
    }
    const slot = viewCacheVictim;
    viewCacheVictim = (viewCacheVictim + 1) % viewCacheSize;
    const buffer = view.buffer;
    let dataView: DataView<ArrayBufferLike> = tailView;
    if (buffer !== kernelBuffer) {
        for (let other = 0; other < viewCacheSize; other++) {
            if (cachedViews[other] !== null && cachedDataViews[other]!.buffer === buffer) {
                dataView = cachedDataViews[other]!;
            }
        }
        if (dataView === tailView) dataView = new DataView(buffer);
    }
    const byteOffset = view.byteOffset;
    assert(byteOffset + view.length <= 0xffff_ffff); // Starts are u32: see cachedStarts.
    cachedViews[slot] = view;
    cachedStarts[slot] = byteOffset;
    cachedInKernel[slot] = buffer === kernelBuffer ? 1 : 0;
    cachedDataViews[slot] = dataView;
    return slot;
}

/** offset and size are u32 (integers in [0, 2^32)) and the range lies inside the view. */
function assertRange(bytes: Uint8Array, offset: number, size: number): void {
    assert(offset >>> 0 === offset);
    assert(size >>> 0 === size);
    assert(offset + size <= bytes.length);
}

function kernelResult(): void {
    resultWords[0] = kernelWord0();
    resultWords[1] = kernelWord1();
    resultWords[2] = kernelWord2();
    resultWords[3] = kernelWord3();
}

/** The TypeScript implementation: leaves the checksum of view[start, +size) in resultWords. */
function digestPortable(view: DataView<ArrayBufferLike>, start: number, size: number): void {
    const tailSize = size % stripeSize;
    const stripesEnd = start + size - tailSize;
    for (let lane = 0; lane < 16; lane++) laneWords[lane] = seedLanes[lane]! ^ size;
    absorbStripes(view, start, stripesEnd);
    if (tailSize > 0) {
        // Worked example: size 70 = one stripe of 64, then bytes [64, 70) at tailBytes[0, 6)
        // and 58 zero bytes of padding.
        const wordsEnd = tailSize - (tailSize % 4);
        for (let index = 0; index < wordsEnd; index += 4) {
            tailView.setInt32(index, view.getInt32(stripesEnd + index, true), true);
        }
        for (let index = wordsEnd; index < tailSize; index++) {
            tailBytes[index] = view.getUint8(stripesEnd + index);
        }
        tailBytes.fill(0, tailSize);
        absorbStripes(tailView, 0, stripeSize);
    }
    finalize();
}

/** Absorbs the stripes of view[start, end) into laneWords; (end - start) % 64 === 0. */
function absorbStripes(view: DataView<ArrayBufferLike>, start: number, end: number): void {
    assert((end - start) % stripeSize === 0);
    let s0 = laneWords[0]!,
        s1 = laneWords[1]!,
        s2 = laneWords[2]!,
        s3 = laneWords[3]!;
    let s4 = laneWords[4]!,
        s5 = laneWords[5]!,
        s6 = laneWords[6]!,
        s7 = laneWords[7]!;
    let s8 = laneWords[8]!,
        s9 = laneWords[9]!,
        s10 = laneWords[10]!,
        s11 = laneWords[11]!;
    let s12 = laneWords[12]!,
        s13 = laneWords[13]!,
        s14 = laneWords[14]!,
        s15 = laneWords[15]!;
    for (let p = start; p < end; p += stripeSize) {
        s0 = round(s0, view.getInt32(p, true));
        s1 = round(s1, view.getInt32(p + 4, true));
        s2 = round(s2, view.getInt32(p + 8, true));
        s3 = round(s3, view.getInt32(p + 12, true));
        s4 = round(s4, view.getInt32(p + 16, true));
        s5 = round(s5, view.getInt32(p + 20, true));
        s6 = round(s6, view.getInt32(p + 24, true));
        s7 = round(s7, view.getInt32(p + 28, true));
        s8 = round(s8, view.getInt32(p + 32, true));
        s9 = round(s9, view.getInt32(p + 36, true));
        s10 = round(s10, view.getInt32(p + 40, true));
        s11 = round(s11, view.getInt32(p + 44, true));
        s12 = round(s12, view.getInt32(p + 48, true));
        s13 = round(s13, view.getInt32(p + 52, true));
        s14 = round(s14, view.getInt32(p + 56, true));
        s15 = round(s15, view.getInt32(p + 60, true));
        // Phase 1: V0[j] += V1[j+1], V2[j] += V3[j+1]. Phase 2: V1[j] += V2[j+1], V3[j] += V0[j+1].
        s0 = (s0 + s5) | 0;
        s1 = (s1 + s6) | 0;
        s2 = (s2 + s7) | 0;
        s3 = (s3 + s4) | 0;
        s8 = (s8 + s13) | 0;
        s9 = (s9 + s14) | 0;
        s10 = (s10 + s15) | 0;
        s11 = (s11 + s12) | 0;
        s4 = (s4 + s9) | 0;
        s5 = (s5 + s10) | 0;
        s6 = (s6 + s11) | 0;
        s7 = (s7 + s8) | 0;
        s12 = (s12 + s1) | 0;
        s13 = (s13 + s2) | 0;
        s14 = (s14 + s3) | 0;
        s15 = (s15 + s0) | 0;
    }
    laneWords[0] = s0;
    laneWords[1] = s1;
    laneWords[2] = s2;
    laneWords[3] = s3;
    laneWords[4] = s4;
    laneWords[5] = s5;
    laneWords[6] = s6;
    laneWords[7] = s7;
    laneWords[8] = s8;
    laneWords[9] = s9;
    laneWords[10] = s10;
    laneWords[11] = s11;
    laneWords[12] = s12;
    laneWords[13] = s13;
    laneWords[14] = s14;
    laneWords[15] = s15;
}

/** xxHash32's round: a bijection of `lane` for a fixed `word`, and of `word` for a fixed `lane`. */
function round(lane: number, word: number): number {
    const sum = (lane + Math.imul(word, prime2)) | 0;
    return Math.imul((sum << rotateBits) | (sum >>> (32 - rotateBits)), prime1);
}

/** Merges laneWords into resultWords: the xor over vectors k of mix128(Vk ^ Kk). */
function finalize(): void {
    let r0 = 0,
        r1 = 0,
        r2 = 0,
        r3 = 0;
    for (let vector = 0; vector < 4; vector++) {
        const lane = vector * 4;
        let h0 = laneWords[lane]! ^ finalKeys[lane]!;
        let h1 = laneWords[lane + 1]! ^ finalKeys[lane + 1]!;
        let h2 = laneWords[lane + 2]! ^ finalKeys[lane + 2]!;
        let h3 = laneWords[lane + 3]! ^ finalKeys[lane + 3]!;
        // mix128: MurmurHash3 x86_128's finalization, a full-avalanche bijection on 128 bits.
        h0 = (h0 + h1 + h2 + h3) | 0;
        h1 = (h1 + h0) | 0;
        h2 = (h2 + h0) | 0;
        h3 = (h3 + h0) | 0;
        h0 = fmix32(h0);
        h1 = fmix32(h1);
        h2 = fmix32(h2);
        h3 = fmix32(h3);
        h0 = (h0 + h1 + h2 + h3) | 0;
        h1 = (h1 + h0) | 0;
        h2 = (h2 + h0) | 0;
        h3 = (h3 + h0) | 0;
        r0 ^= h0;
        r1 ^= h1;
        r2 ^= h2;
        r3 ^= h3;
    }
    resultWords[0] = r0;
    resultWords[1] = r1;
    resultWords[2] = r2;
    resultWords[3] = r3;
}

function fmix32(value: number): number {
    let h = value;
    h ^= h >>> 16;
    h = Math.imul(h, fmixPrime1);
    h ^= h >>> 13;
    h = Math.imul(h, fmixPrime2);
    h ^= h >>> 16;
    return h;
}
