// The arena: all long-lived memory of a process (or of one simulated cluster) in one
// `WebAssembly.Memory`, sized once at start-up and never grown (grow() would detach every view).
// Its backing store is page-aligned, which O_DIRECT needs, so sector-aligned offsets inside it
// are valid direct-I/O buffers. Consumers carve regions with allocate() during construction;
// seal() then forbids any further allocation, so "allocating after start-up" is a crash.

import { assert } from "../stdx/assert.js";

const wasmPageSize = 64 * 1024;

/** What a component needs to carve its memory: the arena itself, or a region of it. */
export interface Allocator {
    readonly memory: WebAssembly.Memory;
    readonly bytes: Uint8Array;
    readonly view: DataView;
    allocate(sizeBytes: number, alignment: number): number;
}

export class Arena implements Allocator {
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

    /**
     * A fixed region of this arena with its own bump allocator, for a component that is rebuilt
     * in place (a simulated replica restarting after a crash reuses its region).
     */
    region(sizeBytes: number): ArenaRegion {
        const offset = this.allocate(sizeBytes, 4096);
        return new ArenaRegion(this, offset, sizeBytes);
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

export class ArenaRegion implements Allocator {
    readonly memory: WebAssembly.Memory;
    readonly bytes: Uint8Array;
    readonly view: DataView;
    readonly offset: number;
    readonly sizeBytes: number;
    private usedBytes = 0;

    constructor(arena: Arena, offset: number, sizeBytes: number) {
        assert(offset % 4096 === 0);
        assert(offset + sizeBytes <= arena.sizeBytes);
        this.memory = arena.memory;
        this.bytes = arena.bytes;
        this.view = arena.view;
        this.offset = offset;
        this.sizeBytes = sizeBytes;
    }

    allocate(sizeBytes: number, alignment: number): number {
        assert(sizeBytes >= 0);
        assert(alignment > 0 && (alignment & (alignment - 1)) === 0);
        assert(alignment <= 4096);
        const offset = Math.ceil((this.offset + this.usedBytes) / alignment) * alignment;
        assert(offset + sizeBytes <= this.offset + this.sizeBytes);
        this.usedBytes = offset + sizeBytes - this.offset;
        return offset;
    }

    /** Forgets every allocation (and zeroes the region): the owner is being rebuilt. */
    reset(): void {
        this.usedBytes = 0;
        this.bytes.fill(0, this.offset, this.offset + this.sizeBytes);
    }
}
