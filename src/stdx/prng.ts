// The only source of randomness in the replica, the state machine and the simulator: a seeded
// xoshiro128** generator on int32 arithmetic (no allocation, no BigInt). A seed is an unsigned
// integer up to 2^53; it is split into two 32-bit halves and expanded with splitmix32, so every
// seed gives a distinct, non-zero state.

import { assert } from "./assert.js";

export class PRNG {
    /** xoshiro128** state as int32 words: typed-array slots never box a number on the heap. */
    private readonly state = new Int32Array(4);

    constructor(seed: number) {
        this.reseed(seed);
    }

    reseed(seed: number): void {
        assert(Number.isSafeInteger(seed));
        assert(seed >= 0);
        const low = seed >>> 0;
        const high = Math.floor(seed / 0x1_0000_0000) >>> 0;
        let word = (low ^ Math.imul(high, 0x9e3779b9)) >>> 0;
        word = splitmix32(word ^ 0x6a09e667);
        this.state[0] = word;
        word = splitmix32(word ^ high);
        this.state[1] = word;
        word = splitmix32(word ^ low);
        this.state[2] = word;
        word = splitmix32(word ^ 0xbb67ae85);
        this.state[3] = word | 1;
    }

    /** The next output as an int32 (its bits are the uniformly distributed u32). */
    private next(): number {
        const state = this.state;
        const s0 = state[0]!;
        const s1 = state[1]!;
        const s2 = state[2]!;
        const s3 = state[3]!;
        const result = Math.imul(rotl(Math.imul(s1, 5), 7), 9);
        const t = s1 << 9;
        const n2 = s2 ^ s0;
        const n3 = s3 ^ s1;
        state[1] = s1 ^ n2;
        state[0] = s0 ^ n3;
        state[2] = n2 ^ t;
        state[3] = rotl(n3, 11);
        return result;
    }

    /** A uniformly distributed unsigned 32-bit integer. */
    u32(): number {
        return this.next() >>> 0;
    }

    /** A uniform integer in [0, bound), bound ≤ 2^32, without modulo bias worth measuring. */
    int(bound: number): number {
        assert(bound > 0);
        assert(bound <= 0x1_0000_0000);
        return Math.floor(((this.next() >>> 0) / 0x1_0000_0000) * bound);
    }

    /** A uniform integer in [min, max] inclusive. */
    range(min: number, max: number): number {
        assert(min <= max);
        return min + this.int(max - min + 1);
    }

    /**
     * A uniform float in [0, 1). Not for hot paths: a fraction returned from a call the compiler
     * did not inline is a heap number. The methods below draw their own fractions.
     */
    float(): number {
        return (this.next() >>> 0) / 0x1_0000_0000;
    }

    /** True with the given probability in [0, 1]. */
    chance(probability: number): boolean {
        assert(probability >= 0);
        assert(probability <= 1);
        // float() < probability, with both sides scaled by 2^32 (exact): the same draws, and no
        // fraction crosses a call.
        return this.next() >>> 0 < probability * 0x1_0000_0000;
    }

    /**
     * One draw among three outcomes: 0 with probability `cumulativeFirst`, 1 with probability
     * `cumulativeSecond - cumulativeFirst`, else 2 (the same draw as comparing one float()).
     */
    pickOfThree(cumulativeFirst: number, cumulativeSecond: number): number {
        assert(cumulativeFirst >= 0 && cumulativeFirst <= cumulativeSecond);
        assert(cumulativeSecond <= 1);
        const draw = this.next() >>> 0;
        if (draw < cumulativeFirst * 0x1_0000_0000) return 0;
        return draw < cumulativeSecond * 0x1_0000_0000 ? 1 : 2;
    }

    /** An exponentially distributed integer with the given mean (≥ 0). */
    exponential(mean: number): number {
        assert(mean >= 0);
        if (mean === 0) return 0;
        const uniform = 1 - (this.next() >>> 0) / 0x1_0000_0000; // (0, 1], as 1 - float()
        return Math.floor(-Math.log(uniform) * mean);
    }

    /** A 53-bit unsigned integer, e.g. to derive sub-seeds. */
    u53(): number {
        return (this.u32() & 0x1f_ffff) * 0x1_0000_0000 + this.u32();
    }
}

function rotl(x: number, k: number): number {
    return (x << k) | (x >>> (32 - k));
}

function splitmix32(input: number): number {
    let z = (input + 0x9e3779b9) >>> 0;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
}
