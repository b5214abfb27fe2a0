// The only source of randomness in the replica, the state machine and the simulator: a seeded
// xoshiro128** generator on int32 arithmetic (no allocation, no BigInt). A seed is an unsigned
// integer up to 2^53; it is split into two 32-bit halves and expanded with splitmix32, so every
// seed gives a distinct, non-zero state.

import { assert } from "./assert.js";

export class PRNG {
    private s0 = 0;
    private s1 = 0;
    private s2 = 0;
    private s3 = 0;

    constructor(seed: number) {
        this.reseed(seed);
    }

    reseed(seed: number): void {
        assert(Number.isSafeInteger(seed));
        assert(seed >= 0);
        const low = seed >>> 0;
        const high = Math.floor(seed / 0x1_0000_0000) >>> 0;
        let state = (low ^ Math.imul(high, 0x9e3779b9)) >>> 0;
        state = splitmix32(state ^ 0x6a09e667);
        this.s0 = state;
        state = splitmix32(state ^ high);
        this.s1 = state;
        state = splitmix32(state ^ low);
        this.s2 = state;
        state = splitmix32(state ^ 0xbb67ae85);
        this.s3 = state | 1;
    }

    /** A uniformly distributed unsigned 32-bit integer. */
    u32(): number {
        const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
        const t = this.s1 << 9;
        this.s2 ^= this.s0;
        this.s3 ^= this.s1;
        this.s1 ^= this.s2;
        this.s0 ^= this.s3;
        this.s2 ^= t;
        this.s3 = rotl(this.s3, 11);
        return result;
    }

    /** A uniform integer in [0, bound), bound ≤ 2^32, without modulo bias worth measuring. */
    int(bound: number): number {
        assert(bound > 0);
        assert(bound <= 0x1_0000_0000);
        return Math.floor((this.u32() / 0x1_0000_0000) * bound);
    }

    /** A uniform integer in [min, max] inclusive. */
    range(min: number, max: number): number {
        assert(min <= max);
        return min + this.int(max - min + 1);
    }

    /** A uniform float in [0, 1). */
    float(): number {
        return this.u32() / 0x1_0000_0000;
    }

    /** True with the given probability in [0, 1]. */
    chance(probability: number): boolean {
        assert(probability >= 0);
        assert(probability <= 1);
        return this.float() < probability;
    }

    /** An exponentially distributed integer with the given mean (≥ 0). */
    exponential(mean: number): number {
        assert(mean >= 0);
        if (mean === 0) return 0;
        const uniform = 1 - this.float(); // (0, 1]
        return Math.floor(-Math.log(uniform) * mean);
    }

    /** A 53-bit unsigned integer, e.g. to derive sub-seeds. */
    u53(): number {
        return (this.u32() & 0x1f_ffff) * 0x1_0000_0000 + this.u32();
    }
}

function rotl(x: number, k: number): number {
    return ((x << k) | (x >>> (32 - k))) >>> 0;
}

function splitmix32(input: number): number {
    let z = (input + 0x9e3779b9) >>> 0;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
}
