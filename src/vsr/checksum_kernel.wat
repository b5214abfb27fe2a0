;; XXH3-128 (seed 0, default secret) as a WebAssembly kernel that hashes the arena in place.
;; Source of the kernel that src/vsr/checksum.ts runs; scripts/build_checksum_kernel.mjs compiles
;; it with the `wabt` package at build time into src/vsr/checksum_kernel.generated.ts (bytes).
;; The function is XXH3_128bits of xxHash 0.8 as written in xxHash's doc/xxhash_spec.md; the
;; pure-TypeScript implementation in checksum_xxh3.ts computes the same function; both are tested
;; against xxHash's published sanity vectors (test/vsr/checksum.test.ts).
;;
;; Interface (imports "env"."memory", the arena; pointers are absolute byte offsets in it):
;;   digest(p, n)              hashes memory[p, p + n) into the globals $low and $high;
;;   digestInto(p, n, t)       digest, then stores low64 then high64 (little-endian) at t;
;;   digestEquals(p, n, e)     digest, then 1 when memory[e, e + 16) holds those 16 bytes;
;;   word0() .. word3()        the result as four u32 words, low first (targets outside memory).
;; Invariants: the kernel reads only memory[p, p + n) (a message at the arena's very end cannot
;; trap); it writes only memory[t, t + 16) in digestInto; wasm loads are little-endian, as XXH3
;; reads its input and secret. No state survives a call except the result globals.
;;
;; Where SIMD pays: inputs over 240 bytes (bodies) run XXH3's stripe loop on four i64x2
;; accumulators; its 32x32->64 multiply is i64x2.extmul_low_i32x4_u. Inputs up to 240 bytes
;; (headers) are a few dependent 64x64->128 multiplies, scalar i64 code.
;; The secret is not in memory (the only memory is the caller's arena): the 64-bit words the
;; algorithm reads from it, at the byte offsets it reads them, are immutable globals named by
;; that offset ($s117 = the little-endian u64 at secret[117:125]), and the 16-byte pairs the
;; stripe loop reads are v128 globals ($v8 = secret[8:24]). Values copied from the spec's
;; 192-byte default secret; any typo fails the published vectors.
(module
    (import "env" "memory" (memory 0))

    ;; The result of the last digest.
    (global $low (mut i64) (i64.const 0))
    (global $high (mut i64) (i64.const 0))
    ;; The stripe loop's eight u64 accumulators, two per vector: acc[2j] in lane 0 of $accJ.
    (global $acc0 (mut v128) (v128.const i64x2 0 0))
    (global $acc1 (mut v128) (v128.const i64x2 0 0))
    (global $acc2 (mut v128) (v128.const i64x2 0 0))
    (global $acc3 (mut v128) (v128.const i64x2 0 0))

    ;; The secret words at the byte offsets XXH3-128 reads them (see the header).
    (global $s0 i64 (i64.const 0xbe4ba423396cfeb8))
    (global $s3 i64 (i64.const 0x81017cbe4ba42339))
    (global $s8 i64 (i64.const 0x1cad21f72c81017c))
    (global $s11 i64 (i64.const 0x6dd4de1cad21f72c))
    (global $s16 i64 (i64.const 0xdb979083e96dd4de))
    (global $s19 i64 (i64.const 0xa44072db979083e9))
    (global $s24 i64 (i64.const 0x1f67b3b7a4a44072))
    (global $s27 i64 (i64.const 0xe679cb1f67b3b7a4))
    (global $s32 i64 (i64.const 0x78e5c0cc4ee679cb))
    (global $s35 i64 (i64.const 0xd05a8278e5c0cc4e))
    (global $s40 i64 (i64.const 0x2172ffcc7dd05a82))
    (global $s43 i64 (i64.const 0x4608b82172ffcc7d))
    (global $s48 i64 (i64.const 0x8e2443f7744608b8))
    (global $s51 i64 (i64.const 0x9035e08e2443f774))
    (global $s56 i64 (i64.const 0x4c263a81e69035e0))
    (global $s59 i64 (i64.const 0x52283c4c263a81e6))
    (global $s64 i64 (i64.const 0xcb00c391bb52283c))
    (global $s67 i64 (i64.const 0x65d088cb00c391bb))
    (global $s72 i64 (i64.const 0xa32e531b8b65d088))
    (global $s75 i64 (i64.const 0x486471a32e531b8b))
    (global $s80 i64 (i64.const 0x4ef90da297486471))
    (global $s83 i64 (i64.const 0xef19384ef90da297))
    (global $s88 i64 (i64.const 0xd8acdea946ef1938))
    (global $s91 i64 (i64.const 0x76faa8d8acdea946))
    (global $s96 i64 (i64.const 0x3f349ce33f76faa8))
    (global $s103 i64 (i64.const 0x4f0bc7c7bbdcf93f))
    (global $s104 i64 (i64.const 0x1d4f0bc7c7bbdcf9))
    (global $s111 i64 (i64.const 0x59b4cd4be0518a1d))
    (global $s112 i64 (i64.const 0x3159b4cd4be0518a))
    (global $s117 i64 (i64.const 0xd9c97e9fc83159b4))
    (global $s119 i64 (i64.const 0x7378d9c97e9fc831))
    (global $s120 i64 (i64.const 0x647378d9c97e9fc8))
    (global $s125 i64 (i64.const 0x3483acc5ea647378))
    (global $s127 i64 (i64.const 0xebd33483acc5ea64))
    (global $s133 i64 (i64.const 0xfaffa081c5c3ebd3))
    (global $s141 i64 (i64.const 0xb751dd0d17eb6313))
    (global $s149 i64 (i64.const 0x29265516d349daf0))
    (global $s157 i64 (i64.const 0x7d58be162b9e68d4))
    (global $s165 i64 (i64.const 0x7ad1b8f88ffca147))
    (global $s173 i64 (i64.const 0x958f3acb45ce31d0))

    ;; The stripe loop's secret pairs: $vN = secret[N:N+16] as two u64 lanes.
    (global $v0 v128 (v128.const i64x2 0xbe4ba423396cfeb8 0x1cad21f72c81017c))
    (global $v8 v128 (v128.const i64x2 0x1cad21f72c81017c 0xdb979083e96dd4de))
    (global $v16 v128 (v128.const i64x2 0xdb979083e96dd4de 0x1f67b3b7a4a44072))
    (global $v24 v128 (v128.const i64x2 0x1f67b3b7a4a44072 0x78e5c0cc4ee679cb))
    (global $v32 v128 (v128.const i64x2 0x78e5c0cc4ee679cb 0x2172ffcc7dd05a82))
    (global $v40 v128 (v128.const i64x2 0x2172ffcc7dd05a82 0x8e2443f7744608b8))
    (global $v48 v128 (v128.const i64x2 0x8e2443f7744608b8 0x4c263a81e69035e0))
    (global $v56 v128 (v128.const i64x2 0x4c263a81e69035e0 0xcb00c391bb52283c))
    (global $v64 v128 (v128.const i64x2 0xcb00c391bb52283c 0xa32e531b8b65d088))
    (global $v72 v128 (v128.const i64x2 0xa32e531b8b65d088 0x4ef90da297486471))
    (global $v80 v128 (v128.const i64x2 0x4ef90da297486471 0xd8acdea946ef1938))
    (global $v88 v128 (v128.const i64x2 0xd8acdea946ef1938 0x3f349ce33f76faa8))
    (global $v96 v128 (v128.const i64x2 0x3f349ce33f76faa8 0x1d4f0bc7c7bbdcf9))
    (global $v104 v128 (v128.const i64x2 0x1d4f0bc7c7bbdcf9 0x3159b4cd4be0518a))
    (global $v112 v128 (v128.const i64x2 0x3159b4cd4be0518a 0x647378d9c97e9fc8))
    (global $v120 v128 (v128.const i64x2 0x647378d9c97e9fc8 0xc3ebd33483acc5ea))
    (global $v128 v128 (v128.const i64x2 0xc3ebd33483acc5ea 0xeb6313faffa081c5))
    (global $v136 v128 (v128.const i64x2 0xeb6313faffa081c5 0x49daf0b751dd0d17))
    (global $v144 v128 (v128.const i64x2 0x49daf0b751dd0d17 0x9e68d429265516d3))
    (global $v152 v128 (v128.const i64x2 0x9e68d429265516d3 0xfca1477d58be162b))
    (global $v160 v128 (v128.const i64x2 0xfca1477d58be162b 0xce31d07ad1b8f88f))
    (global $v168 v128 (v128.const i64x2 0xce31d07ad1b8f88f 0x280416958f3acb45))
    (global $v176 v128 (v128.const i64x2 0x280416958f3acb45 0x7e404bbbcafbd7af))
    (global $v121 v128 (v128.const i64x2 0xea647378d9c97e9f 0xc5c3ebd33483acc5))
    (global $v137 v128 (v128.const i64x2 0x17eb6313faffa081 0xd349daf0b751dd0d))
    (global $v153 v128 (v128.const i64x2 0x2b9e68d429265516 0x8ffca1477d58be16))
    (global $v169 v128 (v128.const i64x2 0x45ce31d07ad1b8f8 0xaf280416958f3acb))

    ;; xxHash's primes (spec "Prime constants").
    (global $prime32_1 i64 (i64.const 0x9e3779b1))
    (global $prime32_2 i64 (i64.const 0x85ebca77))
    (global $prime32_3 i64 (i64.const 0xc2b2ae3d))
    (global $prime64_1 i64 (i64.const 0x9e3779b185ebca87))
    (global $prime64_2 i64 (i64.const 0xc2b2ae3d27d4eb4f))
    (global $prime64_3 i64 (i64.const 0x165667b19e3779f9))
    (global $prime64_4 i64 (i64.const 0x85ebca77c2b2ae63))
    (global $prime64_5 i64 (i64.const 0x27d4eb2f165667c5))
    (global $prime_mx1 i64 (i64.const 0x165667919e3779f9))
    (global $prime_mx2 i64 (i64.const 0x9fb21c651e98df25))

    (func $digest (export "digest") (param $p i32) (param $n i32)
        (if (i32.le_u (local.get $n) (i32.const 16))
            (then (call $hash0to16 (local.get $p) (local.get $n)) (return)))
        (if (i32.le_u (local.get $n) (i32.const 128))
            (then (call $hash17to128 (local.get $p) (local.get $n)) (return)))
        (if (i32.le_u (local.get $n) (i32.const 240))
            (then (call $hash129to240 (local.get $p) (local.get $n)) (return)))
        (call $hashLong (local.get $p) (local.get $n)))

    (func (export "digestInto") (param $p i32) (param $n i32) (param $t i32)
        (call $digest (local.get $p) (local.get $n))
        (i64.store (local.get $t) (global.get $low))
        (i64.store offset=8 (local.get $t) (global.get $high)))

    (func (export "digestEquals") (param $p i32) (param $n i32) (param $e i32) (result i32)
        (call $digest (local.get $p) (local.get $n))
        (i32.and
            (i64.eq (i64.load (local.get $e)) (global.get $low))
            (i64.eq (i64.load offset=8 (local.get $e)) (global.get $high))))

    (func (export "word0") (result i32) (i32.wrap_i64 (global.get $low)))
    (func (export "word1") (result i32)
        (i32.wrap_i64 (i64.shr_u (global.get $low) (i64.const 32))))
    (func (export "word2") (result i32) (i32.wrap_i64 (global.get $high)))
    (func (export "word3") (result i32)
        (i32.wrap_i64 (i64.shr_u (global.get $high) (i64.const 32))))

    ;; ---- Arithmetic helpers ----

    ;; The full 128-bit product of two u64 as (low, high), from four 32x32->64 products.
    ;; The middle sum cannot overflow: (2^32-1)^2 + 2 * (2^32-1) = 2^64 - 1.
    ;; (Node 20 does not inline wasm calls, so hot helpers avoid calling helpers.)
    (func $mul128 (param $a i64) (param $b i64) (result i64 i64)
        (local $aLow i64) (local $aHigh i64) (local $bLow i64) (local $bHigh i64)
        (local $lowLow i64) (local $lowHigh i64) (local $cross i64)
        (local.set $aLow (i64.and (local.get $a) (i64.const 0xffffffff)))
        (local.set $aHigh (i64.shr_u (local.get $a) (i64.const 32)))
        (local.set $bLow (i64.and (local.get $b) (i64.const 0xffffffff)))
        (local.set $bHigh (i64.shr_u (local.get $b) (i64.const 32)))
        (local.set $lowLow (i64.mul (local.get $aLow) (local.get $bLow)))
        (local.set $lowHigh (i64.mul (local.get $aLow) (local.get $bHigh)))
        (local.set $cross
            (i64.add
                (i64.add
                    (i64.shr_u (local.get $lowLow) (i64.const 32))
                    (i64.and (local.get $lowHigh) (i64.const 0xffffffff)))
                (i64.mul (local.get $aHigh) (local.get $bLow))))
        (i64.or
            (i64.shl (local.get $cross) (i64.const 32))
            (i64.and (local.get $lowLow) (i64.const 0xffffffff)))
        (i64.add
            (i64.add
                (i64.mul (local.get $aHigh) (local.get $bHigh))
                (i64.shr_u (local.get $lowHigh) (i64.const 32)))
            (i64.shr_u (local.get $cross) (i64.const 32))))

    ;; XXH3's avalanche (spec "Final Mixing Step").
    (func $avalanche (param $x i64) (result i64)
        (local.set $x (i64.xor (local.get $x) (i64.shr_u (local.get $x) (i64.const 37))))
        (local.set $x (i64.mul (local.get $x) (global.get $prime_mx1)))
        (i64.xor (local.get $x) (i64.shr_u (local.get $x) (i64.const 32))))

    ;; XXH64's avalanche, which XXH3 uses for inputs of 0 to 3 bytes.
    (func $avalancheXxh64 (param $x i64) (result i64)
        (local.set $x (i64.xor (local.get $x) (i64.shr_u (local.get $x) (i64.const 33))))
        (local.set $x (i64.mul (local.get $x) (global.get $prime64_2)))
        (local.set $x (i64.xor (local.get $x) (i64.shr_u (local.get $x) (i64.const 29))))
        (local.set $x (i64.mul (local.get $x) (global.get $prime64_3)))
        (i64.xor (local.get $x) (i64.shr_u (local.get $x) (i64.const 32))))

    (func $bswap32 (param $x i32) (result i32)
        (i32.or
            (i32.and (i32.rotl (local.get $x) (i32.const 8)) (i32.const 0x00ff00ff))
            (i32.and (i32.rotr (local.get $x) (i32.const 8)) (i32.const 0xff00ff00))))

    (func $bswap64 (param $x i64) (result i64)
        (i64.or
            (i64.shl
                (i64.extend_i32_u (call $bswap32 (i32.wrap_i64 (local.get $x))))
                (i64.const 32))
            (i64.extend_i32_u
                (call $bswap32 (i32.wrap_i64 (i64.shr_u (local.get $x) (i64.const 32)))))))

    ;; ---- Inputs of 0 to 16 bytes ----

    (func $hash0to16 (param $p i32) (param $n i32)
        (if (i32.gt_u (local.get $n) (i32.const 8))
            (then (call $hash9to16 (local.get $p) (local.get $n)) (return)))
        (if (i32.ge_u (local.get $n) (i32.const 4))
            (then (call $hash4to8 (local.get $p) (local.get $n)) (return)))
        (if (i32.gt_u (local.get $n) (i32.const 0))
            (then (call $hash1to3 (local.get $p) (local.get $n)) (return)))
        ;; Empty input: secret[64:96] alone.
        (global.set $low (call $avalancheXxh64 (i64.xor (global.get $s64) (global.get $s72))))
        (global.set $high (call $avalancheXxh64 (i64.xor (global.get $s80) (global.get $s88)))))

    ;; 1 to 3 bytes: last byte, length, first byte, middle byte packed into one u32.
    ;; Worked example: "abc" packs as 0x62610363 (middle 'b', first 'a', length 3, last 'c').
    (func $hash1to3 (param $p i32) (param $n i32)
        (local $combined i32)
        (local.set $combined
            (i32.or
                (i32.or
                    (i32.load8_u (i32.sub (i32.add (local.get $p) (local.get $n)) (i32.const 1)))
                    (i32.shl (local.get $n) (i32.const 8)))
                (i32.or
                    (i32.shl (i32.load8_u (local.get $p)) (i32.const 16))
                    (i32.shl
                        (i32.load8_u
                            (i32.add (local.get $p) (i32.shr_u (local.get $n) (i32.const 1))))
                        (i32.const 24)))))
        (global.set $low
            (call $avalancheXxh64
                (i64.xor
                    (call $foldHalves (global.get $s0))
                    (i64.extend_i32_u (local.get $combined)))))
        (global.set $high
            (call $avalancheXxh64
                (i64.xor
                    (call $foldHalves (global.get $s8))
                    (i64.extend_i32_u
                        (i32.rotl (call $bswap32 (local.get $combined)) (i32.const 13)))))))

    ;; The xor of the two u32 halves of a secret word, as a u64.
    (func $foldHalves (param $x i64) (result i64)
        (i64.and
            (i64.xor (local.get $x) (i64.shr_u (local.get $x) (i64.const 32)))
            (i64.const 0xffffffff)))

    ;; 4 to 8 bytes: the first and last four bytes (overlapping below 8).
    (func $hash4to8 (param $p i32) (param $n i32)
        (local $value i64) (local $low i64) (local $high i64)
        (local.set $value
            (i64.xor
                (i64.xor (global.get $s16) (global.get $s24))
                (i64.or
                    (i64.load32_u (local.get $p))
                    (i64.shl
                        (i64.load32_u
                            (i32.sub (i32.add (local.get $p) (local.get $n)) (i32.const 4)))
                        (i64.const 32)))))
        (call $mul128
            (local.get $value)
            (i64.add
                (global.get $prime64_1)
                (i64.shl (i64.extend_i32_u (local.get $n)) (i64.const 2))))
        (local.set $high)
        (local.set $low)
        (local.set $high
            (i64.add (local.get $high) (i64.shl (local.get $low) (i64.const 1))))
        (local.set $low
            (i64.xor (local.get $low) (i64.shr_u (local.get $high) (i64.const 3))))
        (local.set $low
            (i64.xor (local.get $low) (i64.shr_u (local.get $low) (i64.const 35))))
        (local.set $low (i64.mul (local.get $low) (global.get $prime_mx2)))
        (global.set $low
            (i64.xor (local.get $low) (i64.shr_u (local.get $low) (i64.const 28))))
        (global.set $high (call $avalanche (local.get $high))))

    ;; 9 to 16 bytes: the first and last eight bytes (overlapping below 16).
    (func $hash9to16 (param $p i32) (param $n i32)
        (local $first i64) (local $last i64) (local $value2 i64) (local $low i64) (local $high i64)
        (local.set $first (i64.load (local.get $p)))
        (local.set $last
            (i64.load (i32.sub (i32.add (local.get $p) (local.get $n)) (i32.const 8))))
        (local.set $value2
            (i64.xor (i64.xor (global.get $s48) (global.get $s56)) (local.get $last)))
        (call $mul128
            (i64.xor
                (i64.xor (global.get $s32) (global.get $s40))
                (i64.xor (local.get $first) (local.get $last)))
            (global.get $prime64_1))
        (local.set $high)
        (local.set $low)
        (local.set $low
            (i64.add
                (local.get $low)
                (i64.shl
                    (i64.extend_i32_u (i32.sub (local.get $n) (i32.const 1)))
                    (i64.const 54))))
        ;; high += value2 + low32(value2) * (prime32_2 - 1), the spec's simplified form.
        (local.set $high
            (i64.add
                (i64.add (local.get $high) (local.get $value2))
                (i64.mul
                    (i64.and (local.get $value2) (i64.const 0xffffffff))
                    (i64.sub (global.get $prime32_2) (i64.const 1)))))
        (local.set $low (i64.xor (local.get $low) (call $bswap64 (local.get $high))))
        ;; (low, high) *= prime64_2 as a 128 x 64 -> 128 multiply.
        (call $mul128 (local.get $low) (global.get $prime64_2))
        (local.set $value2)
        (local.set $low)
        (global.set $low (call $avalanche (local.get $low)))
        (global.set $high
            (call $avalanche
                (i64.add
                    (local.get $value2)
                    (i64.mul (local.get $high) (global.get $prime64_2))))))

    ;; ---- Inputs of 17 to 240 bytes ----

    ;; XXH128's mix32B with seed 0: acc0 += fold64 of the 16 bytes at p keyed by (key0, key1),
    ;; then acc0 ^= the sum of q's two words; acc1 likewise with p and q exchanged and (key2,
    ;; key3). fold64(a, b) is XXH3's mul128_fold64: the xor of the two halves of the 128-bit
    ;; product, computed as in $mul128 but written out here (the hot step of headers; Node 20
    ;; does not inline wasm calls).
    (func $mix32
        (param $acc0 i64) (param $acc1 i64) (param $p i32) (param $q i32)
        (param $key0 i64) (param $key1 i64) (param $key2 i64) (param $key3 i64)
        (result i64 i64)
        (local $p0 i64) (local $p1 i64) (local $q0 i64) (local $q1 i64)
        (local $aLow i64) (local $aHigh i64) (local $bLow i64) (local $bHigh i64)
        (local $lowLow i64) (local $lowHigh i64) (local $cross i64) (local $fold i64)
        (local.set $p0 (i64.load (local.get $p)))
        (local.set $p1 (i64.load offset=8 (local.get $p)))
        (local.set $q0 (i64.load (local.get $q)))
        (local.set $q1 (i64.load offset=8 (local.get $q)))
        ;; fold = fold64(p0 ^ key0, p1 ^ key1)
        (local.set $aLow
            (i64.and (i64.xor (local.get $p0) (local.get $key0)) (i64.const 0xffffffff)))
        (local.set $aHigh (i64.shr_u (i64.xor (local.get $p0) (local.get $key0)) (i64.const 32)))
        (local.set $bLow
            (i64.and (i64.xor (local.get $p1) (local.get $key1)) (i64.const 0xffffffff)))
        (local.set $bHigh (i64.shr_u (i64.xor (local.get $p1) (local.get $key1)) (i64.const 32)))
        (local.set $lowLow (i64.mul (local.get $aLow) (local.get $bLow)))
        (local.set $lowHigh (i64.mul (local.get $aLow) (local.get $bHigh)))
        (local.set $cross
            (i64.add
                (i64.add
                    (i64.shr_u (local.get $lowLow) (i64.const 32))
                    (i64.and (local.get $lowHigh) (i64.const 0xffffffff)))
                (i64.mul (local.get $aHigh) (local.get $bLow))))
        (local.set $fold
            (i64.xor
                (i64.or
                    (i64.shl (local.get $cross) (i64.const 32))
                    (i64.and (local.get $lowLow) (i64.const 0xffffffff)))
                (i64.add
                    (i64.add
                        (i64.mul (local.get $aHigh) (local.get $bHigh))
                        (i64.shr_u (local.get $lowHigh) (i64.const 32)))
                    (i64.shr_u (local.get $cross) (i64.const 32)))))
        (i64.xor
            (i64.add (local.get $acc0) (local.get $fold))
            (i64.add (local.get $q0) (local.get $q1)))
        ;; fold = fold64(q0 ^ key2, q1 ^ key3)
        (local.set $aLow
            (i64.and (i64.xor (local.get $q0) (local.get $key2)) (i64.const 0xffffffff)))
        (local.set $aHigh (i64.shr_u (i64.xor (local.get $q0) (local.get $key2)) (i64.const 32)))
        (local.set $bLow
            (i64.and (i64.xor (local.get $q1) (local.get $key3)) (i64.const 0xffffffff)))
        (local.set $bHigh (i64.shr_u (i64.xor (local.get $q1) (local.get $key3)) (i64.const 32)))
        (local.set $lowLow (i64.mul (local.get $aLow) (local.get $bLow)))
        (local.set $lowHigh (i64.mul (local.get $aLow) (local.get $bHigh)))
        (local.set $cross
            (i64.add
                (i64.add
                    (i64.shr_u (local.get $lowLow) (i64.const 32))
                    (i64.and (local.get $lowHigh) (i64.const 0xffffffff)))
                (i64.mul (local.get $aHigh) (local.get $bLow))))
        (local.set $fold
            (i64.xor
                (i64.or
                    (i64.shl (local.get $cross) (i64.const 32))
                    (i64.and (local.get $lowLow) (i64.const 0xffffffff)))
                (i64.add
                    (i64.add
                        (i64.mul (local.get $aHigh) (local.get $bHigh))
                        (i64.shr_u (local.get $lowHigh) (i64.const 32)))
                    (i64.shr_u (local.get $cross) (i64.const 32)))))
        (i64.xor
            (i64.add (local.get $acc1) (local.get $fold))
            (i64.add (local.get $p0) (local.get $p1))))

    ;; 17 to 128 bytes: chunk pairs from both ends, innermost first, as far as the input reaches.
    ;; Worked example: 81 bytes mixes (48, 17) with secret[64:96], then (16, 49) with
    ;; secret[32:64], then (0, 65) with secret[0:32] (pairs of chunk start offsets).
    (func $hash17to128 (param $p i32) (param $n i32)
        (local $acc0 i64) (local $acc1 i64) (local $end i32)
        (local.set $acc0 (i64.mul (i64.extend_i32_u (local.get $n)) (global.get $prime64_1)))
        (local.set $end (i32.add (local.get $p) (local.get $n)))
        (if (i32.gt_u (local.get $n) (i32.const 32)) (then
            (if (i32.gt_u (local.get $n) (i32.const 64)) (then
                (if (i32.gt_u (local.get $n) (i32.const 96)) (then
                    (call $mix32 (local.get $acc0) (local.get $acc1)
                        (i32.add (local.get $p) (i32.const 48))
                        (i32.sub (local.get $end) (i32.const 64))
                        (global.get $s96) (global.get $s104)
                        (global.get $s112) (global.get $s120))
                    (local.set $acc1)
                    (local.set $acc0)))
                (call $mix32 (local.get $acc0) (local.get $acc1)
                    (i32.add (local.get $p) (i32.const 32))
                    (i32.sub (local.get $end) (i32.const 48))
                    (global.get $s64) (global.get $s72) (global.get $s80) (global.get $s88))
                (local.set $acc1)
                (local.set $acc0)))
            (call $mix32 (local.get $acc0) (local.get $acc1)
                (i32.add (local.get $p) (i32.const 16))
                (i32.sub (local.get $end) (i32.const 32))
                (global.get $s32) (global.get $s40) (global.get $s48) (global.get $s56))
            (local.set $acc1)
            (local.set $acc0)))
        (call $mix32 (local.get $acc0) (local.get $acc1)
            (local.get $p)
            (i32.sub (local.get $end) (i32.const 16))
            (global.get $s0) (global.get $s8) (global.get $s16) (global.get $s24))
        (call $finish17to240 (local.get $n)))

    ;; 129 to 240 bytes: the first 128 bytes in 32-byte chunks, an avalanche, the remaining whole
    ;; chunks (at most three: 7 * 32 < 240 < 8 * 32) with the secret from offset 3, and the last
    ;; 32 bytes with their halves swapped. Every secret offset here is a constant.
    (func $hash129to240 (param $p i32) (param $n i32)
        (local $acc0 i64) (local $acc1 i64) (local $end i32)
        (local.set $acc0 (i64.mul (i64.extend_i32_u (local.get $n)) (global.get $prime64_1)))
        (local.set $end (i32.add (local.get $p) (local.get $n)))
        (call $mix32 (local.get $acc0) (local.get $acc1)
            (local.get $p) (i32.add (local.get $p) (i32.const 16))
            (global.get $s0) (global.get $s8) (global.get $s16) (global.get $s24))
        (call $mix32 ;; acc0 and acc1 stay on the stack between these four
            (i32.add (local.get $p) (i32.const 32)) (i32.add (local.get $p) (i32.const 48))
            (global.get $s32) (global.get $s40) (global.get $s48) (global.get $s56))
        (call $mix32
            (i32.add (local.get $p) (i32.const 64)) (i32.add (local.get $p) (i32.const 80))
            (global.get $s64) (global.get $s72) (global.get $s80) (global.get $s88))
        (call $mix32
            (i32.add (local.get $p) (i32.const 96)) (i32.add (local.get $p) (i32.const 112))
            (global.get $s96) (global.get $s104) (global.get $s112) (global.get $s120))
        (local.set $acc1)
        (local.set $acc0)
        (local.set $acc0 (call $avalanche (local.get $acc0)))
        (local.set $acc1 (call $avalanche (local.get $acc1)))
        (if (i32.ge_u (local.get $n) (i32.const 160)) (then
            (call $mix32 (local.get $acc0) (local.get $acc1)
                (i32.add (local.get $p) (i32.const 128)) (i32.add (local.get $p) (i32.const 144))
                (global.get $s3) (global.get $s11) (global.get $s19) (global.get $s27))
            (local.set $acc1)
            (local.set $acc0)))
        (if (i32.ge_u (local.get $n) (i32.const 192)) (then
            (call $mix32 (local.get $acc0) (local.get $acc1)
                (i32.add (local.get $p) (i32.const 160)) (i32.add (local.get $p) (i32.const 176))
                (global.get $s35) (global.get $s43) (global.get $s51) (global.get $s59))
            (local.set $acc1)
            (local.set $acc0)))
        (if (i32.ge_u (local.get $n) (i32.const 224)) (then
            (call $mix32 (local.get $acc0) (local.get $acc1)
                (i32.add (local.get $p) (i32.const 192)) (i32.add (local.get $p) (i32.const 208))
                (global.get $s67) (global.get $s75) (global.get $s83) (global.get $s91))
            (local.set $acc1)
            (local.set $acc0)))
        (call $mix32 (local.get $acc0) (local.get $acc1)
            (i32.sub (local.get $end) (i32.const 16)) (i32.sub (local.get $end) (i32.const 32))
            (global.get $s103) (global.get $s111) (global.get $s119) (global.get $s127))
        (call $finish17to240 (local.get $n)))

    ;; The 17..240-byte finalization of the accumulators (acc0, acc1) on the stack.
    (func $finish17to240 (param $acc0 i64) (param $acc1 i64) (param $n i32)
        (global.set $low (call $avalanche (i64.add (local.get $acc0) (local.get $acc1))))
        (global.set $high
            (i64.sub
                (i64.const 0)
                (call $avalanche
                    (i64.add
                        (i64.add
                            (i64.mul (local.get $acc0) (global.get $prime64_1))
                            (i64.mul (local.get $acc1) (global.get $prime64_4)))
                        (i64.mul (i64.extend_i32_u (local.get $n)) (global.get $prime64_2)))))))

    ;; ---- Inputs over 240 bytes: the stripe loop ----

    ;; Blocks of 16 stripes of 64 bytes; after each full block the accumulators are scrambled.
    ;; The last block (1 to 1024 bytes, even when whole) skips the scramble and ends with the
    ;; input's last 64 bytes as an extra stripe (overlapping earlier bytes unless aligned).
    ;; Worked example: 2367 bytes = 2 full blocks (scrambled), then 4 whole stripes of the
    ;; 319-byte last block, then the stripe at byte 2303 with secret[121:185].
    (func $hashLong (param $p i32) (param $n i32)
        (local $end i32) (local $blockEnd i32)
        (global.set $acc0 (v128.const i64x2 0xc2b2ae3d 0x9e3779b185ebca87))
        (global.set $acc1 (v128.const i64x2 0xc2b2ae3d27d4eb4f 0x165667b19e3779f9))
        (global.set $acc2 (v128.const i64x2 0x85ebca77c2b2ae63 0x85ebca77))
        (global.set $acc3 (v128.const i64x2 0x27d4eb2f165667c5 0x9e3779b1))
        (local.set $end (i32.add (local.get $p) (local.get $n)))
        ;; Full blocks while more than one block's worth remains.
        (local.set $blockEnd
            (i32.add (local.get $p)
                (i32.and (i32.sub (local.get $n) (i32.const 1)) (i32.const -1024))))
        (block $blocksDone
            (loop $blocks
                (br_if $blocksDone (i32.ge_u (local.get $p) (local.get $blockEnd)))
                (call $stripes (local.get $p) (i32.const 16))
                (call $scramble)
                (local.set $p (i32.add (local.get $p) (i32.const 1024)))
                (br $blocks)))
        ;; The last block: its whole stripes except a final whole one, then the last 64 bytes.
        (call $stripes
            (local.get $p)
            (i32.shr_u (i32.sub (i32.sub (local.get $end) (local.get $p)) (i32.const 1))
                (i32.const 6)))
        (call $accumulate
            (i32.sub (local.get $end) (i32.const 64))
            (global.get $v121) (global.get $v137) (global.get $v153) (global.get $v169))
        (global.set $low
            (call $merge
                (i64.mul (i64.extend_i32_u (local.get $n)) (global.get $prime64_1))
                (global.get $s11) (global.get $s19) (global.get $s27) (global.get $s35)
                (global.get $s43) (global.get $s51) (global.get $s59) (global.get $s67)))
        (global.set $high
            (call $merge
                (i64.xor
                    (i64.mul (i64.extend_i32_u (local.get $n)) (global.get $prime64_2))
                    (i64.const -1))
                (global.get $s117) (global.get $s125) (global.get $s133) (global.get $s141)
                (global.get $s149) (global.get $s157) (global.get $s165) (global.get $s173))))

    ;; One stripe (64 bytes at p) into the accumulators, with the stripe's four secret pairs.
    ;; XXH3's accumulate, two lanes per vector: with keyed = data ^ key,
    ;;   acc[i ^ 1] += data[i]    and    acc[i] += low32(keyed[i]) * high32(keyed[i]).
    ;; The data's two lanes are swapped by a shuffle; the two multiplies are one
    ;; i64x2.extmul_low_i32x4_u of the keyed lanes' low halves (gathered into i32 lanes 0 and 1)
    ;; by their high halves. The same eight lines for each of the four vectors, written out
    ;; because Node 20 does not inline wasm calls.
    (func $accumulate (param $p i32) (param $key0 v128) (param $key1 v128) (param $key2 v128)
        (param $key3 v128)
        (local $data v128) (local $keyed v128)
        (local.set $data (v128.load offset=0 (local.get $p)))
        (local.set $keyed (v128.xor (local.get $data) (local.get $key0)))
        (global.set $acc0
            (i64x2.add
                (i64x2.add
                    (global.get $acc0)
                    (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7
                        (local.get $data) (local.get $data)))
                (i64x2.extmul_low_i32x4_u
                    (i8x16.shuffle 0 1 2 3 8 9 10 11 0 1 2 3 8 9 10 11
                        (local.get $keyed) (local.get $keyed))
                    (i8x16.shuffle 4 5 6 7 12 13 14 15 4 5 6 7 12 13 14 15
                        (local.get $keyed) (local.get $keyed)))))
        (local.set $data (v128.load offset=16 (local.get $p)))
        (local.set $keyed (v128.xor (local.get $data) (local.get $key1)))
        (global.set $acc1
            (i64x2.add
                (i64x2.add
                    (global.get $acc1)
                    (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7
                        (local.get $data) (local.get $data)))
                (i64x2.extmul_low_i32x4_u
                    (i8x16.shuffle 0 1 2 3 8 9 10 11 0 1 2 3 8 9 10 11
                        (local.get $keyed) (local.get $keyed))
                    (i8x16.shuffle 4 5 6 7 12 13 14 15 4 5 6 7 12 13 14 15
                        (local.get $keyed) (local.get $keyed)))))
        (local.set $data (v128.load offset=32 (local.get $p)))
        (local.set $keyed (v128.xor (local.get $data) (local.get $key2)))
        (global.set $acc2
            (i64x2.add
                (i64x2.add
                    (global.get $acc2)
                    (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7
                        (local.get $data) (local.get $data)))
                (i64x2.extmul_low_i32x4_u
                    (i8x16.shuffle 0 1 2 3 8 9 10 11 0 1 2 3 8 9 10 11
                        (local.get $keyed) (local.get $keyed))
                    (i8x16.shuffle 4 5 6 7 12 13 14 15 4 5 6 7 12 13 14 15
                        (local.get $keyed) (local.get $keyed)))))
        (local.set $data (v128.load offset=48 (local.get $p)))
        (local.set $keyed (v128.xor (local.get $data) (local.get $key3)))
        (global.set $acc3
            (i64x2.add
                (i64x2.add
                    (global.get $acc3)
                    (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7
                        (local.get $data) (local.get $data)))
                (i64x2.extmul_low_i32x4_u
                    (i8x16.shuffle 0 1 2 3 8 9 10 11 0 1 2 3 8 9 10 11
                        (local.get $keyed) (local.get $keyed))
                    (i8x16.shuffle 4 5 6 7 12 13 14 15 4 5 6 7 12 13 14 15
                        (local.get $keyed) (local.get $keyed))))))

    ;; The first `count` (0..16) stripes of the block at p; stripe s reads secret[8s:8s+64].
    (func $stripes (param $p i32) (param $count i32)
        (block $done
            (br_if $done (i32.le_u (local.get $count) (i32.const 0)))
            (call $accumulate (i32.add (local.get $p) (i32.const 0))
                (global.get $v0) (global.get $v16) (global.get $v32) (global.get $v48))
            (br_if $done (i32.le_u (local.get $count) (i32.const 1)))
            (call $accumulate (i32.add (local.get $p) (i32.const 64))
                (global.get $v8) (global.get $v24) (global.get $v40) (global.get $v56))
            (br_if $done (i32.le_u (local.get $count) (i32.const 2)))
            (call $accumulate (i32.add (local.get $p) (i32.const 128))
                (global.get $v16) (global.get $v32) (global.get $v48) (global.get $v64))
            (br_if $done (i32.le_u (local.get $count) (i32.const 3)))
            (call $accumulate (i32.add (local.get $p) (i32.const 192))
                (global.get $v24) (global.get $v40) (global.get $v56) (global.get $v72))
            (br_if $done (i32.le_u (local.get $count) (i32.const 4)))
            (call $accumulate (i32.add (local.get $p) (i32.const 256))
                (global.get $v32) (global.get $v48) (global.get $v64) (global.get $v80))
            (br_if $done (i32.le_u (local.get $count) (i32.const 5)))
            (call $accumulate (i32.add (local.get $p) (i32.const 320))
                (global.get $v40) (global.get $v56) (global.get $v72) (global.get $v88))
            (br_if $done (i32.le_u (local.get $count) (i32.const 6)))
            (call $accumulate (i32.add (local.get $p) (i32.const 384))
                (global.get $v48) (global.get $v64) (global.get $v80) (global.get $v96))
            (br_if $done (i32.le_u (local.get $count) (i32.const 7)))
            (call $accumulate (i32.add (local.get $p) (i32.const 448))
                (global.get $v56) (global.get $v72) (global.get $v88) (global.get $v104))
            (br_if $done (i32.le_u (local.get $count) (i32.const 8)))
            (call $accumulate (i32.add (local.get $p) (i32.const 512))
                (global.get $v64) (global.get $v80) (global.get $v96) (global.get $v112))
            (br_if $done (i32.le_u (local.get $count) (i32.const 9)))
            (call $accumulate (i32.add (local.get $p) (i32.const 576))
                (global.get $v72) (global.get $v88) (global.get $v104) (global.get $v120))
            (br_if $done (i32.le_u (local.get $count) (i32.const 10)))
            (call $accumulate (i32.add (local.get $p) (i32.const 640))
                (global.get $v80) (global.get $v96) (global.get $v112) (global.get $v128))
            (br_if $done (i32.le_u (local.get $count) (i32.const 11)))
            (call $accumulate (i32.add (local.get $p) (i32.const 704))
                (global.get $v88) (global.get $v104) (global.get $v120) (global.get $v136))
            (br_if $done (i32.le_u (local.get $count) (i32.const 12)))
            (call $accumulate (i32.add (local.get $p) (i32.const 768))
                (global.get $v96) (global.get $v112) (global.get $v128) (global.get $v144))
            (br_if $done (i32.le_u (local.get $count) (i32.const 13)))
            (call $accumulate (i32.add (local.get $p) (i32.const 832))
                (global.get $v104) (global.get $v120) (global.get $v136) (global.get $v152))
            (br_if $done (i32.le_u (local.get $count) (i32.const 14)))
            (call $accumulate (i32.add (local.get $p) (i32.const 896))
                (global.get $v112) (global.get $v128) (global.get $v144) (global.get $v160))
            (br_if $done (i32.le_u (local.get $count) (i32.const 15)))
            (call $accumulate (i32.add (local.get $p) (i32.const 960))
                (global.get $v120) (global.get $v136) (global.get $v152) (global.get $v168))))

    ;; After each full block: acc = (acc ^ (acc >> 47) ^ secret[128 + 8i]) * prime32_1.
    (func $scramble
        (global.set $acc0 (call $scrambleLane (global.get $acc0) (global.get $v128)))
        (global.set $acc1 (call $scrambleLane (global.get $acc1) (global.get $v144)))
        (global.set $acc2 (call $scrambleLane (global.get $acc2) (global.get $v160)))
        (global.set $acc3 (call $scrambleLane (global.get $acc3) (global.get $v176))))

    (func $scrambleLane (param $acc v128) (param $key v128) (result v128)
        (i64x2.mul
            (v128.xor
                (v128.xor (local.get $acc) (i64x2.shr_u (local.get $acc) (i32.const 47)))
                (local.get $key))
            (i64x2.splat (global.get $prime32_1))))

    ;; XXH3's mergeAccs: avalanche(init + the fold64 of each keyed accumulator pair).
    (func $merge (param $init i64)
        (param $key0 i64) (param $key1 i64) (param $key2 i64) (param $key3 i64)
        (param $key4 i64) (param $key5 i64) (param $key6 i64) (param $key7 i64)
        (result i64)
        (local $sum i64)
        (local.set $sum (local.get $init))
        (call $mul128
            (i64.xor (i64x2.extract_lane 0 (global.get $acc0)) (local.get $key0))
            (i64.xor (i64x2.extract_lane 1 (global.get $acc0)) (local.get $key1)))
        (local.set $sum (i64.add (i64.xor) (local.get $sum))) ;; fold64 of the product, added
        (call $mul128
            (i64.xor (i64x2.extract_lane 0 (global.get $acc1)) (local.get $key2))
            (i64.xor (i64x2.extract_lane 1 (global.get $acc1)) (local.get $key3)))
        (local.set $sum (i64.add (i64.xor) (local.get $sum))) ;; fold64 of the product, added
        (call $mul128
            (i64.xor (i64x2.extract_lane 0 (global.get $acc2)) (local.get $key4))
            (i64.xor (i64x2.extract_lane 1 (global.get $acc2)) (local.get $key5)))
        (local.set $sum (i64.add (i64.xor) (local.get $sum))) ;; fold64 of the product, added
        (call $mul128
            (i64.xor (i64x2.extract_lane 0 (global.get $acc3)) (local.get $key6))
            (i64.xor (i64x2.extract_lane 1 (global.get $acc3)) (local.get $key7)))
        (local.set $sum (i64.add (i64.xor) (local.get $sum))) ;; fold64 of the product, added
        (call $avalanche (local.get $sum)))
)
