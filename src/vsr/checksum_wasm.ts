// The checksum kernel: a TypeScript emitter of the WebAssembly binary that computes the lane hash
// specified in checksum.ts, with 128-bit SIMD, in place over an imported memory (the arena).
// The binary is built here from source at start-up, so the project ships no opaque blob and the
// kernel cannot drift from the TypeScript reference without the cross-check tests noticing.
//
// Module shape (imports "env"."memory"; all pointers are absolute byte offsets in that memory):
//   digest(p, n)              hashes memory[p, p + n), leaves the four result words in globals;
//   digestInto(p, n, target)  digest, then stores the 16 result bytes at memory[target];
//   digestEquals(p, n, e)     digest, then returns 1 when memory[e, e + 16) holds the result;
//   word0() .. word3()        the result words of the last digest (for targets outside memory).
// Invariants: lanes are little-endian (wasm loads are little-endian on every host); the kernel
// never reads outside [p, p + n), so a message at the very end of the arena cannot trap.

import { assert } from "../stdx/assert.js";

export interface LaneHashConstants {
    /** The 16 initial lane words (before the size is mixed in). */
    readonly seedLanes: readonly number[];
    /** The 16 words xored into the four vectors before their final mix128. */
    readonly finalKeys: readonly number[];
    readonly prime1: number;
    readonly prime2: number;
    readonly rotateBits: number;
    readonly fmixPrime1: number;
    readonly fmixPrime2: number;
}

const typeI32 = 0x7f;
const typeV128 = 0x7b;

// Opcodes (core spec §5.4; SIMD opcodes follow the 0xfd prefix as LEB128).
const op = {
    block: 0x02,
    loop: 0x03,
    if: 0x04,
    else: 0x05,
    end: 0x0b,
    br: 0x0c,
    brIf: 0x0d,
    return: 0x0f,
    call: 0x10,
    localGet: 0x20,
    localSet: 0x21,
    localTee: 0x22,
    globalGet: 0x23,
    globalSet: 0x24,
    i32Load: 0x28,
    i32Load8U: 0x2d,
    i32Store: 0x36,
    i32Const: 0x41,
    i32Eq: 0x46,
    i32LtU: 0x49,
    i32LeU: 0x4d,
    i32GeU: 0x4f,
    i32And: 0x71,
    i32Add: 0x6a,
    i32Sub: 0x6b,
    i32Mul: 0x6c,
    i32Or: 0x72,
    i32Xor: 0x73,
    i32Shl: 0x74,
    i32ShrU: 0x76,
} as const;
const simd = {
    load: 0,
    const: 12,
    shuffle: 13,
    splat: 17,
    extractLane: 27,
    replaceLane: 28,
    or: 80,
    xor: 81,
    shl: 171,
    shrU: 173,
    add: 174,
    mul: 181,
} as const;

/** An append-only byte sink with the encodings the kernel needs. */
class Code {
    readonly bytes: number[] = [];

    u8(...values: number[]): this {
        for (const value of values) {
            assert(value >= 0 && value <= 255);
            this.bytes.push(value);
        }
        return this;
    }

    uleb(value: number): this {
        assert(Number.isSafeInteger(value) && value >= 0);
        do {
            const low = value % 128;
            value = Math.floor(value / 128);
            this.bytes.push(value === 0 ? low : low | 0x80);
        } while (value !== 0);
        return this;
    }

    /** Signed LEB128 of a 32-bit value (u32 constants are encoded as their i32 bit pattern). */
    sleb32(value: number): this {
        let rest = value | 0;
        for (;;) {
            const low = rest & 0x7f;
            rest >>= 7;
            const done = (rest === 0 && (low & 0x40) === 0) || (rest === -1 && (low & 0x40) !== 0);
            this.bytes.push(done ? low : low | 0x80);
            if (done) return this;
        }
    }

    name(text: string): this {
        this.uleb(text.length);
        for (let index = 0; index < text.length; index++) this.u8(text.charCodeAt(index));
        return this;
    }

    append(other: Code): this {
        for (const value of other.bytes) this.bytes.push(value);
        return this;
    }

    get(local: number): this {
        return this.u8(op.localGet).uleb(local);
    }

    set(local: number): this {
        return this.u8(op.localSet).uleb(local);
    }

    i32(value: number): this {
        return this.u8(op.i32Const).sleb32(value);
    }

    simd(opcode: number): this {
        return this.u8(0xfd).uleb(opcode);
    }

    /** v128.const with the same 32-bit word in every lane (or four given words). */
    v128(words: readonly number[]): this {
        assert(words.length === 4);
        this.simd(simd.const);
        for (const word of words) {
            for (let shift = 0; shift < 32; shift += 8) this.u8((word >>> shift) & 0xff);
        }
        return this;
    }

    /** A memory argument: alignment exponent 0 (unaligned is fine), then the static offset. */
    memarg(offset: number): this {
        return this.uleb(0).uleb(offset);
    }
}

// Function indices (no imported functions, so defined functions start at 0).
const fnTailWord = 0;
const fnDigest = 1;
const fnDigestInto = 2;
const fnDigestEquals = 3;
const fnWord0 = 4;

// Locals of digest: params p, n; i32 end, h0..h3, a0..a3; v128 v0..v3, w, t, prime1, prime2.
const lP = 0;
const lN = 1;
const lEnd = 2;
const lH0 = 3;
const lA0 = 7;
const lV0 = 11;
const lW = 15;
const lT = 16;
const lPrime1 = 17;
const lPrime2 = 18;

/** The binary of the kernel module for the given constants. */
export function checksumKernelBytes(constants: LaneHashConstants): Uint8Array {
    assert(constants.seedLanes.length === 16);
    assert(constants.finalKeys.length === 16);
    assert(constants.rotateBits > 0 && constants.rotateBits < 32);
    const module = new Code().u8(0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00);
    section(module, 1, typeSection());
    section(module, 2, importSection());
    section(module, 3, new Code().uleb(8).u8(4, 0, 1, 2, 3, 3, 3, 3));
    section(module, 6, globalSection());
    section(module, 7, exportSection());
    section(module, 10, codeSection(constants));
    const bytes = Uint8Array.from(module.bytes);
    assert(WebAssembly.validate(bytes));
    return bytes;
}

function section(module: Code, id: number, body: Code): void {
    module.u8(id).uleb(body.bytes.length).append(body);
}

function typeSection(): Code {
    const code = new Code().uleb(5);
    code.u8(0x60, 2, typeI32, typeI32, 0); // 0: digest (p, n)
    code.u8(0x60, 3, typeI32, typeI32, typeI32, 0); // 1: digestInto (p, n, target)
    code.u8(0x60, 3, typeI32, typeI32, typeI32, 1, typeI32); // 2: digestEquals -> i32
    code.u8(0x60, 0, 1, typeI32); // 3: word() -> i32
    code.u8(0x60, 2, typeI32, typeI32, 1, typeI32); // 4: tailWord (q, end) -> i32
    return code;
}

function importSection(): Code {
    // One memory, minimum 0 pages, no maximum: any unshared memory (the arena) satisfies it.
    return new Code().uleb(1).name("env").name("memory").u8(0x02, 0x00).uleb(0);
}

function globalSection(): Code {
    const code = new Code().uleb(4);
    for (let index = 0; index < 4; index++) code.u8(typeI32, 1).i32(0).u8(op.end);
    return code;
}

function exportSection(): Code {
    const code = new Code().uleb(7);
    code.name("digest").u8(0x00).uleb(fnDigest);
    code.name("digestInto").u8(0x00).uleb(fnDigestInto);
    code.name("digestEquals").u8(0x00).uleb(fnDigestEquals);
    for (let index = 0; index < 4; index++) {
        code.name("word" + String(index))
            .u8(0x00)
            .uleb(fnWord0 + index);
    }
    return code;
}

function codeSection(constants: LaneHashConstants): Code {
    const bodies = [tailWordBody(), digestBody(constants), digestIntoBody(), digestEqualsBody()];
    for (let index = 0; index < 4; index++) {
        bodies.push(new Code().uleb(0).u8(op.globalGet).uleb(index).u8(op.end));
    }
    const code = new Code().uleb(bodies.length);
    for (const body of bodies) code.uleb(body.bytes.length).append(body);
    return code;
}

/**
 * tailWord(q, end): the little-endian word at q with bytes at or past `end` read as zero.
 * Worked example: bytes "abc" at q and end = q + 3 give 0x00636261.
 */
function tailWordBody(): Code {
    const q = 0;
    const end = 1;
    const word = 2;
    const shift = 3;
    const code = new Code().uleb(1).uleb(2).u8(typeI32);
    code.get(q).get(end).u8(op.i32GeU, op.if, 0x40).i32(0).u8(op.return, op.end);
    code.get(end).get(q).u8(op.i32Sub).i32(4).u8(op.i32GeU, op.if, 0x40);
    code.get(q).u8(op.i32Load).memarg(0).u8(op.return, op.end); // The whole word.
    code.u8(op.loop, 0x40);
    code.get(word).get(q).u8(op.i32Load8U).memarg(0).get(shift).u8(op.i32Shl, op.i32Or);
    code.set(word);
    code.get(shift).i32(8).u8(op.i32Add).set(shift);
    code.get(q).i32(1).u8(op.i32Add).u8(op.localTee).uleb(q);
    code.get(end).u8(op.i32LtU, op.brIf).uleb(0);
    code.u8(op.end);
    return code.get(word).u8(op.end);
}

function digestBody(c: LaneHashConstants): Code {
    const code = new Code().uleb(2).uleb(9).u8(typeI32).uleb(8).u8(typeV128);
    code.get(lP).get(lN).u8(op.i32Add).set(lEnd);
    code.v128([c.prime1, c.prime1, c.prime1, c.prime1]).set(lPrime1);
    code.v128([c.prime2, c.prime2, c.prime2, c.prime2]).set(lPrime2);
    for (let vector = 0; vector < 4; vector++) {
        code.v128(c.seedLanes.slice(vector * 4, vector * 4 + 4));
        code.get(lN)
            .simd(simd.splat)
            .simd(simd.xor)
            .set(lV0 + vector);
    }
    // block $done: loop $stripes: while end - p >= 64: absorb the 64 bytes at p.
    code.u8(op.block, 0x40, op.loop, 0x40);
    code.get(lEnd).get(lP).u8(op.i32Sub).i32(64).u8(op.i32LtU, op.brIf).uleb(1);
    for (let vector = 0; vector < 4; vector++) {
        code.get(lP)
            .simd(simd.load)
            .memarg(vector * 16)
            .set(lW);
        emitRound(code, lV0 + vector, c.rotateBits);
    }
    emitMix(code);
    code.get(lP).i32(64).u8(op.i32Add).set(lP);
    code.u8(op.br).uleb(0).u8(op.end, op.end);
    // The final partial stripe (1..63 bytes), zero-padded: per vector a whole load, zeros, or
    // (for the one vector that straddles the end) four tailWord calls.
    code.get(lP).get(lEnd).u8(op.i32LtU, op.if, 0x40);
    for (let vector = 0; vector < 4; vector++) {
        emitTailVector(code, vector);
        emitRound(code, lV0 + vector, c.rotateBits);
    }
    emitMix(code);
    code.u8(op.end);
    emitFinal(code, c);
    return code.u8(op.end);
}

/**
 * w = the 16 bytes at p + 16 * vector, with bytes at or past `end` read as zero. Here
 * 1 <= end - p <= 63. Worked example: end - p = 40 gives vector 0 and 1 whole loads, vector 2
 * (bytes 32..47) eight real bytes and eight zeros, vector 3 zeros.
 */
function emitTailVector(code: Code, vector: number): void {
    const blockV128 = typeV128;
    code.get(lEnd)
        .get(lP)
        .u8(op.i32Sub)
        .i32(vector * 16 + 16)
        .u8(op.i32GeU, op.if, blockV128);
    code.get(lP)
        .simd(simd.load)
        .memarg(vector * 16);
    code.u8(op.else);
    code.get(lEnd)
        .get(lP)
        .u8(op.i32Sub)
        .i32(vector * 16)
        .u8(op.i32LeU, op.if, blockV128);
    code.v128([0, 0, 0, 0]);
    code.u8(op.else);
    code.v128([0, 0, 0, 0]);
    for (let lane = 0; lane < 4; lane++) {
        code.get(lP)
            .i32(vector * 16 + lane * 4)
            .u8(op.i32Add)
            .get(lEnd);
        code.u8(op.call).uleb(fnTailWord).simd(simd.replaceLane).u8(lane);
    }
    code.u8(op.end, op.end).set(lW);
}

/** v = rotl(v + w * prime2, rotateBits) * prime1, lane-wise (the xxHash32 round). */
function emitRound(code: Code, vector: number, rotateBits: number): void {
    code.get(vector).get(lW).get(lPrime2).simd(simd.mul).simd(simd.add);
    code.u8(op.localTee).uleb(lT).i32(rotateBits).simd(simd.shl);
    code.get(lT)
        .i32(32 - rotateBits)
        .simd(simd.shrU)
        .simd(simd.or);
    code.get(lPrime1).simd(simd.mul).set(vector);
}

/** The two triangular phases: v0 += rot(v1), v2 += rot(v3); then v1 += rot(v2), v3 += rot(v0). */
function emitMix(code: Code): void {
    const pairs = [
        [0, 1],
        [2, 3],
        [1, 2],
        [3, 0],
    ] as const;
    for (const [into, from] of pairs) {
        code.get(lV0 + into)
            .get(lV0 + from)
            .get(lV0 + from)
            .simd(simd.shuffle);
        for (let index = 0; index < 16; index++) code.u8((index + 4) % 16);
        code.simd(simd.add).set(lV0 + into);
    }
}

/** a = mix128(v0 ^ k0) ^ ... ^ mix128(v3 ^ k3): four independent chains; a goes to the globals. */
function emitFinal(code: Code, c: LaneHashConstants): void {
    for (let vector = 0; vector < 4; vector++) {
        for (let lane = 0; lane < 4; lane++) {
            code.get(lV0 + vector)
                .simd(simd.extractLane)
                .u8(lane);
            code.i32(c.finalKeys[vector * 4 + lane]!)
                .u8(op.i32Xor)
                .set(lH0 + lane);
        }
        emitMix128(code, c);
        for (let lane = 0; lane < 4; lane++) {
            if (vector === 0) {
                code.get(lH0 + lane).set(lA0 + lane);
            } else {
                code.get(lA0 + lane)
                    .get(lH0 + lane)
                    .u8(op.i32Xor)
                    .set(lA0 + lane);
            }
        }
    }
    for (let lane = 0; lane < 4; lane++)
        code.get(lA0 + lane)
            .u8(op.globalSet)
            .uleb(lane);
}

/** MurmurHash3 x86_128's finalization: add across words, fmix32 each word, add across again. */
function emitMix128(code: Code, c: LaneHashConstants): void {
    emitCrossAdd(code);
    for (let lane = 0; lane < 4; lane++) {
        const h = lH0 + lane;
        code.get(h).get(h).i32(16).u8(op.i32ShrU, op.i32Xor).i32(c.fmixPrime1).u8(op.i32Mul);
        code.set(h);
        code.get(h).get(h).i32(13).u8(op.i32ShrU, op.i32Xor).i32(c.fmixPrime2).u8(op.i32Mul);
        code.set(h);
        code.get(h).get(h).i32(16).u8(op.i32ShrU, op.i32Xor).set(h);
    }
    emitCrossAdd(code);
}

/** h0 += h1 + h2 + h3; then h1 += h0, h2 += h0, h3 += h0 (invertible: triangular). */
function emitCrossAdd(code: Code): void {
    code.get(lH0)
        .get(lH0 + 1)
        .u8(op.i32Add)
        .get(lH0 + 2)
        .u8(op.i32Add)
        .get(lH0 + 3);
    code.u8(op.i32Add).set(lH0);
    for (let lane = 1; lane < 4; lane++) {
        code.get(lH0 + lane)
            .get(lH0)
            .u8(op.i32Add)
            .set(lH0 + lane);
    }
}

function digestIntoBody(): Code {
    const code = new Code().uleb(0);
    code.get(0).get(1).u8(op.call).uleb(fnDigest);
    for (let lane = 0; lane < 4; lane++) {
        code.get(2)
            .u8(op.globalGet)
            .uleb(lane)
            .u8(op.i32Store)
            .memarg(lane * 4);
    }
    return code.u8(op.end);
}

/** 1 when all four words match: the AND of four i32.eq results. */
function digestEqualsBody(): Code {
    const code = new Code().uleb(0);
    code.get(0).get(1).u8(op.call).uleb(fnDigest);
    for (let lane = 0; lane < 4; lane++) {
        code.get(2)
            .u8(op.i32Load)
            .memarg(lane * 4)
            .u8(op.globalGet)
            .uleb(lane)
            .u8(op.i32Eq);
        if (lane > 0) code.u8(op.i32And);
    }
    return code.u8(op.end);
}
