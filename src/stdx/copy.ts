// Byte copies between typed arrays without garbage for the small copies of a hot path.

import { assert } from "./assert.js";

/** Copies larger than this use TypedArray#set (its one subarray is small beside the bytes). */
const copyLoopBytesMax = 4096;

/**
 * Copies size bytes from source[sourceOffset…] to target[targetOffset…]. Up to copyLoopBytesMax
 * byte by byte: `set` of a part needs a subarray, and Buffer#copy makes a view (~80–100 bytes of
 * garbage) per call, several per request of a few hundred bytes in the client and its link.
 */
export function copyBytes(
    target: Uint8Array,
    targetOffset: number,
    source: Uint8Array,
    sourceOffset: number,
    size: number,
): void {
    assert(targetOffset + size <= target.length && sourceOffset + size <= source.length);
    if (size > copyLoopBytesMax) {
        target.set(source.subarray(sourceOffset, sourceOffset + size), targetOffset);
        return;
    }
    for (let index = 0; index < size; index++) {
        target[targetOffset + index] = source[sourceOffset + index]!;
    }
}
