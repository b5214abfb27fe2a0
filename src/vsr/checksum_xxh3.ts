// XXH3-128 (XXH3_128bits of xxHash 0.8: seed 0, the default 192-byte secret) in TypeScript on
// 32-bit integer math: the checksum's fallback (buffers outside the arena, hosts without
// WebAssembly SIMD) and the oracle the WebAssembly kernel (checksum_kernel.wat) is tested
// against. Written from xxHash's specification (doc/xxhash_spec.md), whose section names the
// functions below follow; both implementations are tested against xxHash's published vectors.
//
// Representation: a u64 is two int32 words (low, high) held in locals; a helper that returns a
// u64 (or the four words of a u128) leaves it in `out`, a module-level Int32Array, because
// returning an object would allocate and module-level number variables holding values over 2^30
// can box. Loads are little-endian DataView reads. No allocation per call; no BigInt.
// Result: resultWords[0..4) = low64 (low word first), then high64: the 16 little-endian bytes of
// the u128 (high64 << 64 | low64), which is how checksum.ts stores a checksum.

import { assert } from "../stdx/assert.js";

// The default secret (spec "Secret"), as bytes.
// biome-ignore format: a 16-column byte table.
const secretBytes = [
    0xb8, 0xfe, 0x6c, 0x39, 0x23, 0xa4, 0x4b, 0xbe, 0x7c, 0x01, 0x81, 0x2c, 0xf7, 0x21, 0xad, 0x1c,
    0xde, 0xd4, 0x6d, 0xe9, 0x83, 0x90, 0x97, 0xdb, 0x72, 0x40, 0xa4, 0xa4, 0xb7, 0xb3, 0x67, 0x1f,
    0xcb, 0x79, 0xe6, 0x4e, 0xcc, 0xc0, 0xe5, 0x78, 0x82, 0x5a, 0xd0, 0x7d, 0xcc, 0xff, 0x72, 0x21,
    0xb8, 0x08, 0x46, 0x74, 0xf7, 0x43, 0x24, 0x8e, 0xe0, 0x35, 0x90, 0xe6, 0x81, 0x3a, 0x26, 0x4c,
    0x3c, 0x28, 0x52, 0xbb, 0x91, 0xc3, 0x00, 0xcb, 0x88, 0xd0, 0x65, 0x8b, 0x1b, 0x53, 0x2e, 0xa3,
    0x71, 0x64, 0x48, 0x97, 0xa2, 0x0d, 0xf9, 0x4e, 0x38, 0x19, 0xef, 0x46, 0xa9, 0xde, 0xac, 0xd8,
    0xa8, 0xfa, 0x76, 0x3f, 0xe3, 0x9c, 0x34, 0x3f, 0xf9, 0xdc, 0xbb, 0xc7, 0xc7, 0x0b, 0x4f, 0x1d,
    0x8a, 0x51, 0xe0, 0x4b, 0xcd, 0xb4, 0x59, 0x31, 0xc8, 0x9f, 0x7e, 0xc9, 0xd9, 0x78, 0x73, 0x64,
    0xea, 0xc5, 0xac, 0x83, 0x34, 0xd3, 0xeb, 0xc3, 0xc5, 0x81, 0xa0, 0xff, 0xfa, 0x13, 0x63, 0xeb,
    0x17, 0x0d, 0xdd, 0x51, 0xb7, 0xf0, 0xda, 0x49, 0xd3, 0x16, 0x55, 0x26, 0x29, 0xd4, 0x68, 0x9e,
    0x2b, 0x16, 0xbe, 0x58, 0x7d, 0x47, 0xa1, 0xfc, 0x8f, 0xf8, 0xb8, 0xd1, 0x7a, 0xd0, 0x31, 0xce,
    0x45, 0xcb, 0x3a, 0x8f, 0x95, 0x16, 0x04, 0x28, 0xaf, 0xd7, 0xfb, 0xca, 0xbb, 0x4b, 0x40, 0x7e,
];
const secretSize = 192;
assert(secretBytes.length === secretSize);

/**
 * The little-endian u64 at every byte offset of the secret (XXH3 reads it at odd offsets too):
 * secretWords[2 * o] and secretWords[2 * o + 1] are the low and high words of secret[o, o + 8).
 */
const secretWords = new Int32Array(2 * (secretSize - 7));
for (let offset = 0; offset + 8 <= secretSize; offset++) {
    for (let half = 0; half < 2; half++) {
        let word = 0;
        for (let byte = 3; byte >= 0; byte--) {
            word = (word << 8) | secretBytes[offset + half * 4 + byte]!;
        }
        secretWords[2 * offset + half] = word;
    }
}

// xxHash's primes (spec "Prime constants"), as (low, high) words where 64-bit.
const prime32_1 = 0x9e3779b1 | 0;
const prime32_2 = 0x85ebca77 | 0;
const prime32_3 = 0xc2b2ae3d | 0;
const prime64_1Low = 0x85ebca87 | 0;
const prime64_1High = 0x9e3779b1 | 0;
const prime64_2Low = 0x27d4eb4f;
const prime64_2High = 0xc2b2ae3d | 0;
const prime64_3Low = 0x9e3779f9 | 0;
const prime64_3High = 0x165667b1;
const prime64_4Low = 0xc2b2ae63 | 0;
const prime64_4High = 0x85ebca77 | 0;
const prime64_5Low = 0x165667c5;
const prime64_5High = 0x27d4eb2f;
const primeMx1Low = 0x9e3779f9 | 0;
const primeMx1High = 0x16566791;
const primeMx2Low = 0x1e98df25;
const primeMx2High = 0x9fb21c65 | 0;
const twoTo32 = 4294967296;
const twoToMinus32 = 1 / twoTo32;

const stripeSize = 64;
const blockSize = 1024; // 16 stripes: (secretSize - 64) / 8 per block.

/** Results of the u64 helpers (see the header). */
const out = new Int32Array(4);
/** The accumulators, two words each: 17..240 bytes use acc 0 and 1, longer inputs all eight. */
const acc = new Int32Array(16);

/** Leaves XXH3-128 of view[start, start + size) in result[0..4) (see the header). */
export function xxh3Digest(
    view: DataView<ArrayBufferLike>,
    start: number,
    size: number,
    result: Int32Array,
): void {
    assert(result.length >= 4);
    if (size <= 16) hash0to16(view, start, size, result);
    else if (size <= 128) hash17to128(view, start, size, result);
    else if (size <= 240) hash129to240(view, start, size, result);
    else hashLong(view, start, size, result);
}

// ---- Inputs of 0 to 16 bytes (spec "XXH3 Algorithm Description (for small inputs)") ----

function hash0to16(view: DataView<ArrayBufferLike>, p: number, n: number, result: Int32Array) {
    if (n > 8) {
        hash9to16(view, p, n, result);
    } else if (n >= 4) {
        hash4to8(view, p, n, result);
    } else if (n > 0) {
        hash1to3(view, p, n, result);
    } else {
        // Empty input: secret[64:96] alone.
        avalancheXxh64(secretLow(64) ^ secretLow(72), secretHigh(64) ^ secretHigh(72));
        result[0] = out[0]!;
        result[1] = out[1]!;
        avalancheXxh64(secretLow(80) ^ secretLow(88), secretHigh(80) ^ secretHigh(88));
        result[2] = out[0]!;
        result[3] = out[1]!;
    }
}

/** Last byte, length, first byte and middle byte packed into one u32, keyed, avalanched. */
function hash1to3(view: DataView<ArrayBufferLike>, p: number, n: number, result: Int32Array) {
    const combined =
        view.getUint8(p + n - 1) |
        (n << 8) |
        (view.getUint8(p) << 16) |
        (view.getUint8(p + (n >>> 1)) << 24);
    // The secret read as u32s here: secret[0:4] ^ secret[4:8], as a u64 (high word zero).
    avalancheXxh64(secretLow(0) ^ secretHigh(0) ^ combined, 0);
    result[0] = out[0]!;
    result[1] = out[1]!;
    const swapped = bswap32(combined);
    const rotated = (swapped << 13) | (swapped >>> 19);
    avalancheXxh64(secretLow(8) ^ secretHigh(8) ^ rotated, 0);
    result[2] = out[0]!;
    result[3] = out[1]!;
}

/** The first and last four bytes (overlapping below 8) times prime64_1 + 4n, to 128 bits. */
function hash4to8(view: DataView<ArrayBufferLike>, p: number, n: number, result: Int32Array) {
    const valueLow = secretLow(16) ^ secretLow(24) ^ view.getInt32(p, true);
    const valueHigh = secretHigh(16) ^ secretHigh(24) ^ view.getInt32(p + n - 4, true);
    // prime64_1's low word plus 4n (n <= 8) stays below 2^32: no carry into the high word.
    multiply128(valueLow, valueHigh, (prime64_1Low >>> 0) + (n << 2), prime64_1High);
    let low = out[0]!;
    let lowHigh = out[1]!;
    // high += low << 1
    add64(out[2]!, out[3]!, low << 1, (lowHigh << 1) | (low >>> 31));
    const high = out[0]!;
    const highHigh = out[1]!;
    // low ^= high >> 3; low ^= low >> 35; low *= primeMx2; low ^= low >> 28
    low ^= (high >>> 3) | (highHigh << 29);
    lowHigh ^= highHigh >>> 3;
    low ^= lowHigh >>> 3;
    multiply64(low, lowHigh, primeMx2Low, primeMx2High);
    low = out[0]!;
    lowHigh = out[1]!;
    result[0] = low ^ ((low >>> 28) | (lowHigh << 4));
    result[1] = lowHigh ^ (lowHigh >>> 28);
    avalanche(high, highHigh);
    result[2] = out[0]!;
    result[3] = out[1]!;
}

/** The first and last eight bytes (overlapping below 16), multiplied to 128 bits twice. */
function hash9to16(view: DataView<ArrayBufferLike>, p: number, n: number, result: Int32Array) {
    const lastLow = view.getInt32(p + n - 8, true);
    const lastHigh = view.getInt32(p + n - 4, true);
    const value1Low = secretLow(32) ^ secretLow(40) ^ view.getInt32(p, true) ^ lastLow;
    const value1High = secretHigh(32) ^ secretHigh(40) ^ view.getInt32(p + 4, true) ^ lastHigh;
    const value2Low = secretLow(48) ^ secretLow(56) ^ lastLow;
    const value2High = secretHigh(48) ^ secretHigh(56) ^ lastHigh;
    multiply128(value1Low, value1High, prime64_1Low, prime64_1High);
    // low = product.low + ((n - 1) << 54): only the high word changes.
    const low = out[0]!;
    const lowHigh = (out[1]! + ((n - 1) << 22)) | 0;
    // high = product.high + value2 + low32(value2) * (prime32_2 - 1)
    add64(out[2]!, out[3]!, value2Low, value2High);
    const partialLow = out[0]!;
    const partialHigh = out[1]!;
    multiply32(value2Low, prime32_2 - 1);
    add64(partialLow, partialHigh, out[0]!, out[1]!);
    const high = out[0]!;
    const highHigh = out[1]!;
    // low ^= bswap64(high); then (low, high) *= prime64_2 as a 128 x 64 -> 128 multiply.
    multiply128(low ^ bswap32(highHigh), lowHigh ^ bswap32(high), prime64_2Low, prime64_2High);
    const productHighLow = out[2]!;
    const productHighHigh = out[3]!;
    avalanche(out[0]!, out[1]!);
    result[0] = out[0]!;
    result[1] = out[1]!;
    multiply64(high, highHigh, prime64_2Low, prime64_2High);
    add64(productHighLow, productHighHigh, out[0]!, out[1]!);
    avalanche(out[0]!, out[1]!);
    result[2] = out[0]!;
    result[3] = out[1]!;
}

// ---- Inputs of 17 to 240 bytes (spec "XXH3 Algorithm Description (for medium inputs)") ----

/** Chunk pairs from both ends, innermost first, as far as the input reaches. */
function hash17to128(view: DataView<ArrayBufferLike>, p: number, n: number, result: Int32Array) {
    startMedium(n);
    const end = p + n;
    if (n > 32) {
        if (n > 64) {
            if (n > 96) mix32(view, p + 48, end - 64, 96);
            mix32(view, p + 32, end - 48, 64);
        }
        mix32(view, p + 16, end - 32, 32);
    }
    mix32(view, p, end - 16, 0);
    finishMedium(n, result);
}

/**
 * The first 128 bytes in 32-byte chunks, an avalanche, the remaining whole chunks with the
 * secret from offset 3, and the last 32 bytes with their halves swapped.
 */
function hash129to240(view: DataView<ArrayBufferLike>, p: number, n: number, result: Int32Array) {
    startMedium(n);
    for (let chunk = 0; chunk < 4; chunk++) {
        mix32(view, p + chunk * 32, p + chunk * 32 + 16, chunk * 32);
    }
    for (let word = 0; word < 4; word += 2) {
        avalanche(acc[word]!, acc[word + 1]!);
        acc[word] = out[0]!;
        acc[word + 1] = out[1]!;
    }
    const chunks = n >>> 5;
    for (let chunk = 4; chunk < chunks; chunk++) {
        mix32(view, p + chunk * 32, p + chunk * 32 + 16, (chunk - 4) * 32 + 3);
    }
    mix32(view, p + n - 16, p + n - 32, 103);
    finishMedium(n, result);
}

/** acc0 = n * prime64_1, acc1 = 0. */
function startMedium(n: number): void {
    multiply64(n, 0, prime64_1Low, prime64_1High);
    acc[0] = out[0]!;
    acc[1] = out[1]!;
    acc[2] = 0;
    acc[3] = 0;
}

/**
 * XXH128's mix32B with seed 0: acc0 = (acc0 + fold64 of the 16 bytes at p keyed by
 * secret[k, k + 16)) ^ (the sum of q's two u64); acc1 likewise with p and q exchanged and the
 * key's next 16 bytes. The hot step of headers, so its u64 sums are written out.
 */
function mix32(view: DataView<ArrayBufferLike>, p: number, q: number, keyOffset: number): void {
    const p0 = view.getInt32(p, true);
    const p1 = view.getInt32(p + 4, true);
    const p2 = view.getInt32(p + 8, true);
    const p3 = view.getInt32(p + 12, true);
    const q0 = view.getInt32(q, true);
    const q1 = view.getInt32(q + 4, true);
    const q2 = view.getInt32(q + 8, true);
    const q3 = view.getInt32(q + 12, true);
    // acc0 += fold64(p ^ key); acc0 ^= q's word sum.
    fold64(p0 ^ secretLow(keyOffset), p1 ^ secretHigh(keyOffset), p2, p3, keyOffset + 8);
    let sum = (acc[0]! >>> 0) + (out[0]! >>> 0);
    let carry = sum >= twoTo32 ? 1 : 0;
    const acc0Low = sum | 0;
    const acc0High = (acc[1]! + out[1]! + carry) | 0;
    sum = (q0 >>> 0) + (q2 >>> 0);
    carry = sum >= twoTo32 ? 1 : 0;
    acc[0] = acc0Low ^ (sum | 0);
    acc[1] = acc0High ^ ((q1 + q3 + carry) | 0);
    // acc1 += fold64(q ^ key'); acc1 ^= p's word sum.
    fold64(q0 ^ secretLow(keyOffset + 16), q1 ^ secretHigh(keyOffset + 16), q2, q3, keyOffset + 24);
    sum = (acc[2]! >>> 0) + (out[0]! >>> 0);
    carry = sum >= twoTo32 ? 1 : 0;
    const acc1Low = sum | 0;
    const acc1High = (acc[3]! + out[1]! + carry) | 0;
    sum = (p0 >>> 0) + (p2 >>> 0);
    carry = sum >= twoTo32 ? 1 : 0;
    acc[2] = acc1Low ^ (sum | 0);
    acc[3] = acc1High ^ ((p1 + p3 + carry) | 0);
}

/**
 * out[0..2) = XXH3's mul128_fold64 of a and (bLow, bHigh) ^ secret[bKey, bKey + 8): the xor of
 * the two halves of their 128-bit product.
 */
function fold64(aLow: number, aHigh: number, bLow: number, bHigh: number, bKey: number): void {
    multiply128(aLow, aHigh, bLow ^ secretLow(bKey), bHigh ^ secretHigh(bKey));
    out[0] = out[0]! ^ out[2]!;
    out[1] = out[1]! ^ out[3]!;
}

/** low = avalanche(acc0 + acc1); high = -avalanche(acc0 * p1 + acc1 * p4 + n * p2). */
function finishMedium(n: number, result: Int32Array): void {
    add64(acc[0]!, acc[1]!, acc[2]!, acc[3]!);
    avalanche(out[0]!, out[1]!);
    result[0] = out[0]!;
    result[1] = out[1]!;
    multiply64(acc[0]!, acc[1]!, prime64_1Low, prime64_1High);
    let sumLow = out[0]!;
    let sumHigh = out[1]!;
    multiply64(acc[2]!, acc[3]!, prime64_4Low, prime64_4High);
    add64(sumLow, sumHigh, out[0]!, out[1]!);
    sumLow = out[0]!;
    sumHigh = out[1]!;
    multiply64(n, 0, prime64_2Low, prime64_2High);
    add64(sumLow, sumHigh, out[0]!, out[1]!);
    avalanche(out[0]!, out[1]!);
    // Negation mod 2^64: ~x + 1.
    const low = out[0]!;
    result[2] = -low | 0;
    result[3] = (~out[1]! + (low === 0 ? 1 : 0)) | 0;
}

// ---- Inputs over 240 bytes (spec "XXH3 Algorithm Description (for large inputs)") ----

/**
 * Blocks of 16 stripes, each full block followed by a scramble; the last block (1 to 1024
 * bytes, even when whole) without one, then the input's last 64 bytes as an extra stripe.
 * Worked example: 2367 bytes = 2 scrambled blocks, 4 whole stripes of the 319-byte last block,
 * then the stripe at byte 2303 with secret[121:185].
 */
function hashLong(view: DataView<ArrayBufferLike>, p: number, n: number, result: Int32Array) {
    setAcc(0, prime32_3, 0);
    setAcc(1, prime64_1Low, prime64_1High);
    setAcc(2, prime64_2Low, prime64_2High);
    setAcc(3, prime64_3Low, prime64_3High);
    setAcc(4, prime64_4Low, prime64_4High);
    setAcc(5, prime32_2, 0);
    setAcc(6, prime64_5Low, prime64_5High);
    setAcc(7, prime32_1, 0);
    const end = p + n;
    const blockEnd = p + (n - 1) - ((n - 1) % blockSize);
    let block = p;
    for (; block < blockEnd; block += blockSize) {
        accumulateStripes(view, block, 16);
        scramble();
    }
    accumulateStripes(view, block, (end - block - 1) >>> 6);
    accumulate(view, end - stripeSize, secretSize - stripeSize - 7);
    multiply64(n, 0, prime64_1Low, prime64_1High);
    merge(out[0]!, out[1]!, 11);
    result[0] = out[0]!;
    result[1] = out[1]!;
    multiply64(n, 0, prime64_2Low, prime64_2High);
    merge(~out[0]!, ~out[1]!, secretSize - stripeSize - 11);
    result[2] = out[0]!;
    result[3] = out[1]!;
}

/**
 * The first `stripes` stripes of the block at p (stripe s reads secret[8s, 8s + 64)), one pair
 * of lanes at a time: lanes 2j and 2j + 1 only feed each other (acc[i ^ 1] += data[i]), so each
 * pair runs over the stripes with its four accumulator words in locals.
 */
function accumulateStripes(view: DataView<ArrayBufferLike>, p: number, stripes: number): void {
    for (let lane = 0; lane < 8; lane += 2) accumulatePair(view, p, stripes, lane);
}

/**
 * XXH3's accumulate for lanes `lane` (even) and `lane + 1` over `stripes` stripes at p: with d
 * a lane's u64 and k = d ^ its secret word, acc[i ^ 1] += d and acc[i] += low32(k) * high32(k).
 * The u64 arithmetic is written out (the hot loop of long inputs); products as in multiply32.
 */
function accumulatePair(view: DataView<ArrayBufferLike>, p: number, stripes: number, lane: number) {
    let evenLow = acc[2 * lane]!;
    let evenHigh = acc[2 * lane + 1]!;
    let oddLow = acc[2 * lane + 2]!;
    let oddHigh = acc[2 * lane + 3]!;
    for (let stripe = 0; stripe < stripes; stripe++) {
        const at = p + stripe * stripeSize + lane * 8;
        const key = 2 * (stripe * 8 + lane * 8);
        const evenDataLow = view.getInt32(at, true);
        const evenDataHigh = view.getInt32(at + 4, true);
        const oddDataLow = view.getInt32(at + 8, true);
        const oddDataHigh = view.getInt32(at + 12, true);
        const evenKeyedLow = (evenDataLow ^ secretWords[key]!) >>> 0;
        const evenKeyedHigh = (evenDataHigh ^ secretWords[key + 1]!) >>> 0;
        const oddKeyedLow = (oddDataLow ^ secretWords[key + 16]!) >>> 0;
        const oddKeyedHigh = (oddDataHigh ^ secretWords[key + 17]!) >>> 0;
        // acc[even] += odd data + even product; acc[odd] += even data + odd product.
        let productLow = Math.imul(evenKeyedLow, evenKeyedHigh) >>> 0;
        let productHigh = Math.round((evenKeyedLow * evenKeyedHigh - productLow) * twoToMinus32);
        let sum = (evenLow >>> 0) + (oddDataLow >>> 0) + productLow;
        evenLow = sum | 0;
        evenHigh = (evenHigh + oddDataHigh + productHigh + Math.floor(sum * twoToMinus32)) | 0;
        productLow = Math.imul(oddKeyedLow, oddKeyedHigh) >>> 0;
        productHigh = Math.round((oddKeyedLow * oddKeyedHigh - productLow) * twoToMinus32);
        sum = (oddLow >>> 0) + (evenDataLow >>> 0) + productLow;
        oddLow = sum | 0;
        oddHigh = (oddHigh + evenDataHigh + productHigh + Math.floor(sum * twoToMinus32)) | 0;
    }
    acc[2 * lane] = evenLow;
    acc[2 * lane + 1] = evenHigh;
    acc[2 * lane + 2] = oddLow;
    acc[2 * lane + 3] = oddHigh;
}

function setAcc(index: number, low: number, high: number): void {
    acc[2 * index] = low;
    acc[2 * index + 1] = high;
}

/**
 * One stripe: for each lane i, with d its u64 and k = d ^ secret word i,
 * acc[i ^ 1] += d and acc[i] += low32(k) * high32(k). The hot loop of long inputs, so the u64
 * arithmetic is written out here (see multiply32 for the product's high word).
 */
function accumulate(view: DataView<ArrayBufferLike>, p: number, keyOffset: number): void {
    for (let lane = 0; lane < 8; lane++) {
        const dataLow = view.getInt32(p + lane * 8, true);
        const dataHigh = view.getInt32(p + lane * 8 + 4, true);
        const keyed = 2 * (keyOffset + lane * 8);
        const keyedLow = (dataLow ^ secretWords[keyed]!) >>> 0;
        const keyedHigh = (dataHigh ^ secretWords[keyed + 1]!) >>> 0;
        const productLow = Math.imul(keyedLow, keyedHigh) >>> 0;
        const productHigh = Math.round((keyedLow * keyedHigh - productLow) * twoToMinus32);
        const swapped = 2 * (lane ^ 1);
        const swappedLow = (acc[swapped]! >>> 0) + (dataLow >>> 0);
        acc[swapped] = swappedLow;
        acc[swapped + 1] = acc[swapped + 1]! + dataHigh + (swappedLow >= twoTo32 ? 1 : 0);
        const ownLow = (acc[2 * lane]! >>> 0) + productLow;
        acc[2 * lane] = ownLow;
        acc[2 * lane + 1] = acc[2 * lane + 1]! + productHigh + (ownLow >= twoTo32 ? 1 : 0);
    }
}

/** After each full block: acc = (acc ^ (acc >> 47) ^ secret[128 + 8i]) * prime32_1. */
function scramble(): void {
    for (let lane = 0; lane < 8; lane++) {
        const key = secretSize - stripeSize + lane * 8;
        const high = acc[2 * lane + 1]!;
        const low = acc[2 * lane]! ^ (high >>> 15) ^ secretLow(key);
        multiply64(low, high ^ secretHigh(key), prime32_1, 0);
        acc[2 * lane] = out[0]!;
        acc[2 * lane + 1] = out[1]!;
    }
}

/** XXH3's mergeAccs: avalanche(init + the fold64 of each keyed accumulator pair). */
function merge(initLow: number, initHigh: number, keyOffset: number): void {
    let low = initLow;
    let high = initHigh;
    for (let pair = 0; pair < 4; pair++) {
        const key = keyOffset + pair * 16;
        multiply128(
            acc[4 * pair]! ^ secretLow(key),
            acc[4 * pair + 1]! ^ secretHigh(key),
            acc[4 * pair + 2]! ^ secretLow(key + 8),
            acc[4 * pair + 3]! ^ secretHigh(key + 8),
        );
        add64(low, high, out[0]! ^ out[2]!, out[1]! ^ out[3]!);
        low = out[0]!;
        high = out[1]!;
    }
    avalanche(low, high);
}

// ---- u64 arithmetic on (low, high) int32 words; results in `out` ----

function secretLow(offset: number): number {
    return secretWords[2 * offset]!;
}

function secretHigh(offset: number): number {
    return secretWords[2 * offset + 1]!;
}

/**
 * out[0..2) = the u64 product of the u32s a and b. The low word is Math.imul's; the high word
 * comes from the double product a * b, which is within 2^11 of the exact product (53-bit
 * mantissa, product below 2^64): subtracting the exact low word and scaling by 2^-32 leaves the
 * high word within 2^-20 of an integer, so rounding gives it exactly.
 */
function multiply32(a: number, b: number): void {
    const aUnsigned = a >>> 0;
    const bUnsigned = b >>> 0;
    const low = Math.imul(aUnsigned, bUnsigned) >>> 0;
    out[0] = low;
    out[1] = Math.round((aUnsigned * bUnsigned - low) * twoToMinus32);
}

/** out[0..2) = a * b mod 2^64. */
function multiply64(aLow: number, aHigh: number, bLow: number, bHigh: number): void {
    multiply32(aLow, bLow);
    out[1] = out[1]! + Math.imul(aLow, bHigh) + Math.imul(aHigh, bLow);
}

/**
 * out[0..4) = the 128-bit product of the u64s a and b, low word first: four 32x32->64 partial
 * products (high words as in multiply32, written out: this is the hot step of 17..240-byte
 * inputs), summed by columns.
 */
function multiply128(aLow: number, aHigh: number, bLow: number, bHigh: number): void {
    const a0 = aLow >>> 0;
    const a1 = aHigh >>> 0;
    const b0 = bLow >>> 0;
    const b1 = bHigh >>> 0;
    const lowLowLow = Math.imul(a0, b0) >>> 0;
    const lowLowHigh = Math.round((a0 * b0 - lowLowLow) * twoToMinus32);
    const lowHighLow = Math.imul(a0, b1) >>> 0;
    const lowHighHigh = Math.round((a0 * b1 - lowHighLow) * twoToMinus32);
    const highLowLow = Math.imul(a1, b0) >>> 0;
    const highLowHigh = Math.round((a1 * b0 - highLowLow) * twoToMinus32);
    const highHighLow = Math.imul(a1, b1) >>> 0;
    const highHighHigh = Math.round((a1 * b1 - highHighLow) * twoToMinus32);
    // Column sums below 2^34: exact in a double; an Int32Array store keeps them mod 2^32.
    const column1 = lowLowHigh + lowHighLow + highLowLow;
    const column2 = highHighLow + lowHighHigh + highLowHigh + Math.floor(column1 * twoToMinus32);
    out[0] = lowLowLow;
    out[1] = column1;
    out[2] = column2;
    out[3] = highHighHigh + Math.floor(column2 * twoToMinus32);
}

/** out[0..2) = a + b mod 2^64. */
function add64(aLow: number, aHigh: number, bLow: number, bHigh: number): void {
    const low = (aLow >>> 0) + (bLow >>> 0);
    out[0] = low;
    out[1] = aHigh + bHigh + (low >= twoTo32 ? 1 : 0);
}

/** XXH3's avalanche: x ^= x >> 37; x *= primeMx1; x ^= x >> 32. */
function avalanche(low: number, high: number): void {
    multiply64(low ^ (high >>> 5), high, primeMx1Low, primeMx1High);
    out[0] = out[0]! ^ out[1]!;
}

/** XXH64's avalanche (XXH3 uses it below 4 bytes). */
function avalancheXxh64(low: number, high: number): void {
    multiply64(low ^ (high >>> 1), high, prime64_2Low, prime64_2High);
    const mixedLow = out[0]!;
    const mixedHigh = out[1]!;
    multiply64(
        mixedLow ^ ((mixedLow >>> 29) | (mixedHigh << 3)),
        mixedHigh ^ (mixedHigh >>> 29),
        prime64_3Low,
        prime64_3High,
    );
    out[0] = out[0]! ^ out[1]!;
}

function bswap32(value: number): number {
    return (
        ((value & 0xff) << 24) | ((value & 0xff00) << 8) | ((value >>> 8) & 0xff00) | (value >>> 24)
    );
}
