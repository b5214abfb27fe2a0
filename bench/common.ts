// Small helpers every micro-benchmark shares: the median of its samples, a fixed pseudo-random
// fill for its buffers (the same bytes on every run), and column padding for its tables.

/** The median of the samples (upper middle for an even count); does not reorder its argument. */
export function median(values: number[]): number {
    const sorted = values.slice().sort((a, b) => a - b);
    return sorted[Math.floor(sorted.length / 2)]!;
}

/** Fills with xorshift32 bytes from a fixed seed: incompressible data, the same on every run. */
export function fillPattern(bytes: Uint8Array): void {
    let state = 0x2545f491;
    for (let index = 0; index < bytes.length; index++) {
        state ^= state << 13;
        state ^= state >>> 17;
        state ^= state << 5;
        bytes[index] = state;
    }
}

export function pad(text: string, width: number): string {
    return text.padEnd(width);
}
