// A prepare's body is a batch: the primary packs every queued client request that fits into one
// prepare, each as a 64-byte entry header followed by the request's events. Committing the
// prepare executes the entries in order and answers each client with its own reply.
//
// Entry header (offsets from the entry start):
//   0 client u128   16 request_checksum u128 (the client's request header checksum)
//  32 session u64   40 request u32   44 operation u8   45..48 reserved
//  48 event_count u32   52..64 reserved
// Example: two requests of 3 and 1 KV events make a body of (64 + 3·128) + (64 + 1·128) = 640 B.

import { batchEntryHeaderSize, headerSize, kvEventSize } from "../constants.js";
import { Frame, Operation, Prepare, u128IsZero } from "./header.js";

export const BatchEntry = {
    client: 0,
    requestChecksum: 16,
    session: 32,
    request: 40,
    operation: 44,
    reserved: 45,
    eventCount: 48,
    reservedTail: 52,
} as const;

/** Why the batch body of the prepare at `base` is malformed, or null. */
export function invalidBatch(view: DataView, base: number): string | null {
    const size = view.getUint32(base + Frame.size, true);
    const requestCount = view.getUint32(base + Prepare.requestCount, true);
    const end = base + size;
    let cursor = base + headerSize;
    for (let index = 0; index < requestCount; index++) {
        if (cursor + batchEntryHeaderSize > end) return "batch entry beyond body";
        const operation = view.getUint8(cursor + BatchEntry.operation);
        const eventCount = view.getUint32(cursor + BatchEntry.eventCount, true);
        if (operation === Operation.register) {
            if (eventCount !== 0) return "register with events";
        } else if (operation === Operation.kv) {
            if (eventCount === 0) return "kv entry without events";
        } else {
            return "batch entry operation unknown";
        }
        if (u128IsZero(view, cursor + BatchEntry.client)) return "batch entry client == 0";
        if (!zeroBytes(view, cursor + BatchEntry.reserved, cursor + BatchEntry.eventCount)) {
            return "batch entry reserved";
        }
        if (!zeroBytes(view, cursor + BatchEntry.reservedTail, cursor + batchEntryHeaderSize)) {
            return "batch entry reserved tail";
        }
        if (view.getUint32(cursor + BatchEntry.session + 4, true) > 0x1f_ffff) return "session";
        cursor += batchEntryHeaderSize + eventCount * kvEventSize;
    }
    return cursor === end ? null : "batch body size mismatch";
}

function zeroBytes(view: DataView, from: number, to: number): boolean {
    for (let offset = from; offset < to; offset++) if (view.getUint8(offset) !== 0) return false;
    return true;
}

export function entrySize(view: DataView, entryOffset: number): number {
    return (
        batchEntryHeaderSize +
        view.getUint32(entryOffset + BatchEntry.eventCount, true) * kvEventSize
    );
}
