// The arena: all long-lived memory of a process (or of one simulated cluster) in one
// `WebAssembly.Memory`, sized once at start-up and never grown (grow() would detach every view).
// Its backing store is page-aligned, which O_DIRECT needs, so sector-aligned offsets inside it
// are valid direct-I/O buffers. Consumers carve regions with allocate() during construction;
// seal() then forbids any further allocation, so "allocating after start-up" is a crash.

import { assert } from "../stdx/assert.js";

const wasmPageSize = 64 * 1024;

export class Arena {
    readonly memory: WebAssembly.Memory;
    readonly bytes: Uint8Array;
    readonly view: DataView;
    readonly sizeBytes: number;
    private usedBytes = 0;
    private sealed = false;

    constructor(sizeBytes: number) {
        assert(Number.isSafeInteger(sizeBytes));
        assert(sizeBytes > 0);
        const pages = Math.ceil(sizeBytes / wasmPageSize);
        assert(pages <= 65536); // 4 GiB: the limit of a 32-bit WebAssembly memory.
        this.memory = new WebAssembly.Memory({ initial: pages, maximum: pages });
        this.sizeBytes = pages * wasmPageSize;
        this.bytes = new Uint8Array(this.memory.buffer);
        this.view = new DataView(this.memory.buffer);
        assert(this.bytes.byteLength === this.sizeBytes);
    }

    /** Carves `sizeBytes` at `alignment` (a power of two); returns the offset. */
    allocate(sizeBytes: number, alignment: number): number {
        assert(!this.sealed);
        assert(sizeBytes >= 0);
        assert(alignment > 0 && (alignment & (alignment - 1)) === 0);
        const offset = Math.ceil(this.usedBytes / alignment) * alignment;
        assert(offset + sizeBytes <= this.sizeBytes);
        this.usedBytes = offset + sizeBytes;
        return offset;
    }

    get allocatedBytes(): number {
        return this.usedBytes;
    }

    seal(): void {
        assert(!this.sealed);
        this.sealed = true;
    }

    /** Bytes a caller must request to fit regions of the given sizes at the given alignment. */
    static sizeFor(regionSizes: readonly number[], alignment: number): number {
        let total = 0;
        for (const size of regionSizes) total = Math.ceil(total / alignment) * alignment + size;
        return total + alignment;
    }
}
