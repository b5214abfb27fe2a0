// PRNG draws that avoid returning fractions (chance, pickOfThree, exponential) must consume the
// same draws and decide exactly as the float() comparisons they replace: seeds recorded before
// the change keep replaying the same runs. Property tests over seeds and probabilities, including
// the boundaries 0 and 1 and values one ulp around a draw.

import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";

import { PRNG } from "../../src/stdx/prng.js";

const drawsPerCase = 64;
const probability = fc.oneof(
    fc.constantFrom(0, 1, 0.5, 2 ** -32, 1 - 2 ** -32),
    fc.double({ min: 0, max: 1, noNaN: true }),
);

test("chance(p) decides as float() < p and consumes one draw", () => {
    fc.assert(
        fc.property(fc.nat(), probability, (seed, p) => {
            const a = new PRNG(seed);
            const b = new PRNG(seed);
            for (let draw = 0; draw < drawsPerCase; draw++) {
                assert.equal(a.chance(p), b.float() < p);
            }
            assert.equal(a.u32(), b.u32());
        }),
    );
});

test("chance(p) at a draw's exact value: the draw itself is not below it", () => {
    fc.assert(
        fc.property(fc.nat(), (seed) => {
            const p = new PRNG(seed).float();
            assert.equal(new PRNG(seed).chance(p), false);
            assert.equal(new PRNG(seed).chance(p + 2 ** -33), true);
        }),
    );
});

test("pickOfThree(a, b) picks as one float() compared with a, then b", () => {
    const bounds = fc
        .tuple(probability, probability)
        .map(([x, y]) => (x <= y ? ([x, y] as const) : ([y, x] as const)));
    fc.assert(
        fc.property(fc.nat(), bounds, (seed, [first, second]) => {
            const a = new PRNG(seed);
            const b = new PRNG(seed);
            for (let draw = 0; draw < drawsPerCase; draw++) {
                const roll = b.float();
                const expected = roll < first ? 0 : roll < second ? 1 : 2;
                assert.equal(a.pickOfThree(first, second), expected);
            }
            assert.equal(a.u32(), b.u32());
        }),
    );
});

test("exponential(mean) equals floor(-log(1 - float()) * mean)", () => {
    fc.assert(
        fc.property(fc.nat(), fc.double({ min: 0, max: 1e6, noNaN: true }), (seed, mean) => {
            const a = new PRNG(seed);
            const b = new PRNG(seed);
            for (let draw = 0; draw < drawsPerCase; draw++) {
                const expected = mean === 0 ? 0 : Math.floor(-Math.log(1 - b.float()) * mean);
                assert.equal(a.exponential(mean), expected);
            }
            assert.equal(a.u32(), b.u32());
        }),
    );
});
