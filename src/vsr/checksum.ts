// The 128-bit checksum of headers, bodies and the prepare hash chain: XXH3-128 (xxHash 0.8's
// XXH3_128bits, seed 0, default secret), a specified hash with published test vectors.
// A checksum is stored as the 16 little-endian bytes of the u128 (high64 << 64 | low64), so
// bytes 0..8 are XXH3-128's low64 little-endian and bytes 8..16 its high64 (xxhsum prints the
// same value big-endian, high64 first).
//
// Two implementations of the one function, which must agree bit for bit:
//   checksum_kernel.wat   WebAssembly (SIMD for inputs over 240 bytes), hashing the arena in
//                         place; compiled at build time by scripts/build_checksum_kernel.mjs
//                         (the wabt package) into checksum_kernel.generated.ts, a git-ignored
//                         module of bytes, so src/vsr needs no node: import to load it;
//   checksum_xxh3.ts      TypeScript on 32-bit integers: buffers outside the arena, hosts without
//                         WebAssembly SIMD (the kernel does not validate: everything runs here),
//                         and the oracle the kernel is tested against.
// Why XXH3-128: specified, vectors to test against, and its long loop is 32x32->64 multiplies on
// 64-bit lanes, which WebAssembly SIMD has (i64x2.extmul_low_i32x4_u).
//
// Measured (bench/checksum.bench.ts, tinybench medians; Node 20, 2-core VM under heavy load;
// "lane hash" is the home-made function this replaced, run from the previous commit's bench):
//                          240 B           256 B           4 KiB        1 MiB        heap/call
//   XXH3-128 wasm kernel   4.3 GB/s 56 ns  3.6 GB/s 72 ns  11.4 GB/s    13.5 GB/s    0
//   XXH3-128 TypeScript    0.9 GB/s 262 ns 0.9 GB/s 273 ns  2.1 GB/s     2.1 GB/s    0
//   lane hash wasm kernel  4.3 GB/s 56 ns  3.8 GB/s 68 ns  11.5 GB/s    12.4 GB/s    0
//   lane hash TypeScript   1.1 GB/s 212 ns 1.5 GB/s 177 ns  2.3 GB/s     2.1 GB/s    0
//   md5, node:crypto       0.17 GB/s       0.19 GB/s        0.66 GB/s    0.13 GB/s   330-420 B
// So the specified hash costs about what the home-made one did in the kernel (headers are 240
// bytes: XXH3's scalar medium path), and up to 1.6x in the TypeScript fallback on short inputs.
//
// Invariants: no allocation per call (module-level scratch; a caller's view is looked up once and
// cached, with a DataView over its buffer made only when that buffer is new, i.e. at start-up);
// the kernel and the TypeScript code compute the same function.

import { assert } from "../stdx/assert.js";
import { checksumKernelBytes } from "./checksum_kernel.generated.js";
import { xxh3Digest } from "./checksum_xxh3.js";

export const checksumSize = 16;

/** The result of the TypeScript implementation: four words, low first (see checksum_xxh3.ts). */
const resultWords = new Int32Array(4);
/** Stands in for a DataView while a cache slot holds an arena view (the kernel reads those). */
const placeholderView = new DataView(new ArrayBuffer(8));

// A cache of the callers' views. On Node 20, a typed array's `buffer` and `byteOffset` are runtime
// calls (10-15 ns each, not inlined), more than hashing a header; a view's buffer and byteOffset
// never change, so they are read once per view and found again by identity. Round-robin
// replacement; a miss costs those reads (and a DataView when the view's buffer is new).
const viewCacheSize = 8;
const cachedViews: Array<Uint8Array | null> = [null, null, null, null, null, null, null, null];
const cachedStarts = new Uint32Array(viewCacheSize);
const cachedInKernel = new Uint8Array(viewCacheSize);
const cachedDataViews: Array<DataView<ArrayBufferLike>> = [];
for (let slot = 0; slot < viewCacheSize; slot++) cachedDataViews.push(placeholderView);
let viewCacheVictim = 0;

// The WebAssembly kernel, bound to one memory by checksumAttach().
type DigestFunction = (start: number, size: number) => void;
type DigestIntoFunction = (start: number, size: number, targetStart: number) => void;
type DigestEqualsFunction = (start: number, size: number, expectedStart: number) => number;
type WordFunction = () => number;
/** null until the first attach; false when this host cannot run the kernel (no SIMD). */
let kernelModule: WebAssembly.Module | null | false = null;
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
        xxh3Digest(cachedDataViews[sourceSlot]!, start, size, resultWords);
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
        xxh3Digest(cachedDataViews[sourceSlot]!, start, size, resultWords);
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
    // Pointers are i32 and a range's end must be representable: keep the memory below 2^32.
    assert(memory.buffer.byteLength <= 0xffff_ffff);
    for (let slot = 0; slot < viewCacheSize; slot++) cachedViews[slot] = null;
    if (kernelModule === null) {
        // A host without WebAssembly SIMD (or multi-value) rejects the binary: stay on the
        // TypeScript implementation, which computes the same function.
        const valid = WebAssembly.validate(checksumKernelBytes);
        kernelModule = valid ? new WebAssembly.Module(checksumKernelBytes) : false;
    }
    if (kernelModule === false) {
        kernelBuffer = null;
        return;
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
    assert(typeof kernelDigestInto === "function" && typeof kernelDigestEquals === "function");
    kernelBuffer = memory.buffer;
}

/** True when views of the attached memory are hashed by the WebAssembly kernel (tests, bench). */
export function checksumKernelAttached(): boolean {
    return kernelBuffer !== null;
}

/** The cache slot of `view`, filling one on a miss. */
function viewSlot(view: Uint8Array): number {
    for (let slot = 0; slot < viewCacheSize; slot++) {
        if (cachedViews[slot] === view) return slot;
    }
    const slot = viewCacheVictim;
    viewCacheVictim = (viewCacheVictim + 1) % viewCacheSize;
    const buffer = view.buffer;
    let dataView: DataView<ArrayBufferLike> = placeholderView;
    if (buffer !== kernelBuffer) {
        for (let other = 0; other < viewCacheSize; other++) {
            if (cachedViews[other] !== null && cachedDataViews[other]!.buffer === buffer) {
                dataView = cachedDataViews[other]!;
            }
        }
        if (dataView === placeholderView) dataView = new DataView(buffer);
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
