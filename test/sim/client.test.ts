// Goal: the simulated workload's keys tell the model apart what a prefix or a size would not.
// Method: every key index round-trips through encodeKey/decodeKey; sibling keys share their
// first two bytes and their size yet decode apart; a flipped bit anywhere in a key never
// decodes to the same index (fast-check, replayable from its printed seed).

import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { decodeKey, encodeKey, keySizeOf } from "../../src/sim/client.js";

test("every workload key decodes back to its index (0..65535)", () => {
    const key = new Uint8Array(32);
    for (let index = 0; index <= 0xffff; index++) {
        const size = encodeKey(key, 0, index);
        assert.equal(size, keySizeOf(index));
        assert.ok(size >= 3 && size <= 32);
        assert.equal(decodeKey(key, 0, size), index);
    }
});

test("sibling keys share their first two bytes and size, and differ in one bit", () => {
    const even = new Uint8Array(32);
    const odd = new Uint8Array(32);
    for (let pair = 0; pair < 0x8000; pair += 97) {
        const size = encodeKey(even, 0, pair * 2);
        assert.equal(encodeKey(odd, 0, pair * 2 + 1), size);
        let differing = 0;
        for (let index = 0; index < size; index++) differing += even[index] === odd[index] ? 0 : 1;
        assert.equal(differing, 1);
        assert.equal(even[size - 1]! ^ odd[size - 1]!, 1);
        assert.notEqual(decodeKey(even, 0, size), decodeKey(odd, 0, size));
    }
});

test("a key with a flipped bit or another size never decodes to the same index", () => {
    fc.assert(
        fc.property(
            fc.integer({ min: 0, max: 0xffff }),
            fc.nat(),
            fc.integer({ min: 0, max: 7 }),
            fc.integer({ min: 1, max: 32 }),
            (index, position, bit, otherSize) => {
                const key = new Uint8Array(32);
                const size = encodeKey(key, 0, index);
                if (otherSize !== size) assert.notEqual(decodeKey(key, 0, otherSize), index);
                key[position % size]! ^= 1 << bit;
                assert.notEqual(decodeKey(key, 0, size), index);
            },
        ),
        { numRuns: 2000 },
    );
});
