// A Storage for tests of read-error handling: reads and writes go to a SimStorage, and every
// read whose range covers one of the bad sectors completes with IoResult.error (EIO), the way a
// disk fails a whole multi-sector read over one latent sector error. One read at a time.

import assert from "node:assert/strict";
import type { SimStorage } from "../../src/sim/storage.js";
import { IoResult, type Storage, type StorageCompletion } from "../../src/vsr/interfaces.js";

export class EioStorage implements Storage, StorageCompletion {
    readonly sizeBytes: number;
    readonly inner: SimStorage;
    private readonly badOffsets: readonly number[];
    result: IoResult = IoResult.ok;
    private pending: StorageCompletion | null = null;
    private failing = false;
    readsFailed = 0;

    constructor(inner: SimStorage, badOffsets: readonly number[]) {
        this.sizeBytes = inner.sizeBytes;
        this.inner = inner;
        this.badOffsets = badOffsets;
    }

    read(completion: StorageCompletion, buffer: number, size: number, offset: number): void {
        assert.equal(this.pending, null, "one read at a time");
        this.pending = completion;
        this.failing = this.badOffsets.some((bad) => offset <= bad && bad < offset + size);
        this.inner.read(this, buffer, size, offset);
    }

    write(completion: StorageCompletion, buffer: number, size: number, offset: number): void {
        this.inner.write(completion, buffer, size, offset);
    }

    callback(): void {
        const completion = this.pending;
        assert.ok(completion !== null);
        this.pending = null;
        if (this.failing) this.readsFailed++;
        completion.result = this.failing ? IoResult.error : IoResult.ok;
        completion.callback(completion);
    }
}
