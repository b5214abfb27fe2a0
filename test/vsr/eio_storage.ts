// A Storage for tests of read-error handling: reads and writes go to a SimStorage, and every
// read whose range covers one of the bad sectors completes with IoResult.error (EIO), the way a
// disk fails a whole multi-sector read over one latent sector error. Reads may overlap.

import assert from "node:assert/strict";
import type { SimStorage } from "../../src/sim/storage.js";
import { IoResult, type Storage, type StorageCompletion } from "../../src/vsr/interfaces.js";

/** One read in flight: whether it covers a bad sector, and whom to tell. */
class EioRead implements StorageCompletion {
    result: IoResult = IoResult.ok;
    readonly storage: EioStorage;
    readonly completion: StorageCompletion;
    readonly failing: boolean;

    constructor(storage: EioStorage, completion: StorageCompletion, failing: boolean) {
        this.storage = storage;
        this.completion = completion;
        this.failing = failing;
    }

    callback(): void {
        if (this.failing) this.storage.readsFailed++;
        this.completion.result = this.failing ? IoResult.error : IoResult.ok;
        this.completion.callback(this.completion);
    }
}

export class EioStorage implements Storage {
    readonly sizeBytes: number;
    readonly inner: SimStorage;
    private readonly badOffsets: readonly number[];
    readsFailed = 0;

    constructor(inner: SimStorage, badOffsets: readonly number[]) {
        this.sizeBytes = inner.sizeBytes;
        this.inner = inner;
        this.badOffsets = badOffsets;
    }

    read(completion: StorageCompletion, buffer: number, size: number, offset: number): void {
        const failing = this.badOffsets.some((bad) => offset <= bad && bad < offset + size);
        assert.ok(size > 0);
        this.inner.read(new EioRead(this, completion, failing), buffer, size, offset);
    }

    write(completion: StorageCompletion, buffer: number, size: number, offset: number): void {
        this.inner.write(completion, buffer, size, offset);
    }
}
