// The simulator's checkers. They observe; they never steer.
//
// - Commit agreement: a global history of committed ops (one checksum per op). Every replica's
//   commit of op N must carry the same checksum as the history's op N, and extend the hash chain
//   (its parent is op N-1's checksum). Commit numbers of a replica never go back.
// - Reference model: the first commit of each op replays it through an independent model of the
//   client table and the KV store (arrays over the workload's key space), which yields the
//   expected reply of every request. A client reply must come from a committed op and equal the
//   model's reply byte for byte: together with commit order this makes the client-observed
//   history linearizable (the model is the sequential specification, commit order the
//   linearization).
// - Real time: a request invoked after another request's reply was received must commit in a
//   later op.
// A violation is recorded (first one wins) rather than thrown, so the run reports it with its seed.

import { assert } from "../stdx/assert.js";
import { batchEntryHeaderSize, headerSize, kvEventSize, kvResultSize } from "../constants.js";
import { EventKind, EventOffset, ResultOffset, ResultStatus } from "../state_machine/kv.js";
import type { Arena } from "../vsr/arena.js";
import { BatchEntry } from "../vsr/batch.js";
import { Frame, Operation, Prepare, Reply, Request, readU64, u128Equal } from "../vsr/header.js";
import type { Message } from "../vsr/message_pool.js";
import { checksum } from "../vsr/checksum.js";

/** Executions remembered per client: a reply may arrive after later ones (see below). */
const executionsMax = 4;

export interface CheckerOptions {
    readonly replicaCount: number;
    readonly clientCount: number;
    readonly clientsMax: number;
    readonly keyCount: number;
    /** Live keys the KV table accepts before answering table_full. */
    readonly kvCountMax: number;
    /** Bound on committed ops in one run (history capacity). */
    readonly opsMax: number;
    readonly messageSizeMax: number;
    readonly seed: number;
}

export class Checkers {
    private readonly options: CheckerOptions;
    private readonly arena: Arena;
    /** history[op * 16 ..] = checksum of committed op; historyKnown[op] = 1 once recorded. */
    readonly history: Uint8Array;
    private readonly historyView: DataView;
    opCommitted = 0;
    private readonly replicaCommit: Float64Array;
    violation: string | null = null;

    // The reference model: client table.
    private readonly tableClient: Int32Array;
    private readonly tableSession: Float64Array;
    private readonly tableRequest: Float64Array;
    private readonly tableReplyOp: Float64Array;
    // The reference model: KV store over the workload's key space.
    private readonly valueSizes: Int16Array;
    private readonly values: Uint8Array;
    private liveCount = 0;
    /**
     * Expected replies: per client, a ring of the model's last executions (op, request number,
     * reply body). Usually a reply answers the latest; but a register may execute twice (its
     * session evicted before the client heard back, a retry of it starts a new session), so the
     * reply to the request after the first one can arrive after the second register executed.
     * Only KV requests must be at-most-once: a request number executes once per session.
     */
    private readonly executionOps: Float64Array;
    private readonly executionRequests: Float64Array;
    private readonly executionSizes: Int32Array;
    private readonly executionResults: Uint8Array;
    private readonly executionCursor: Int32Array;
    // Real-time order.
    private maxAckedOp = 0;
    private readonly invokeMaxAckedOp: Float64Array;
    repliesChecked = 0;

    constructor(options: CheckerOptions, arena: Arena) {
        this.options = options;
        this.arena = arena;
        this.history = new Uint8Array((options.opsMax + 1) * 16);
        this.historyView = new DataView(this.history.buffer);
        this.replicaCommit = new Float64Array(options.replicaCount);
        this.tableClient = new Int32Array(options.clientsMax).fill(-1);
        this.tableSession = new Float64Array(options.clientsMax);
        this.tableRequest = new Float64Array(options.clientsMax);
        this.tableReplyOp = new Float64Array(options.clientsMax);
        this.valueSizes = new Int16Array(options.keyCount).fill(-1);
        this.values = new Uint8Array(options.keyCount * 64);
        const executions = options.clientCount * executionsMax;
        this.executionOps = new Float64Array(executions).fill(-1);
        this.executionRequests = new Float64Array(executions);
        this.executionSizes = new Int32Array(executions);
        this.executionResults = new Uint8Array(executions * options.messageSizeMax);
        this.executionCursor = new Int32Array(options.clientCount);
        this.invokeMaxAckedOp = new Float64Array(options.clientCount);
    }

    fail(reason: string): void {
        if (this.violation === null) this.violation = reason;
    }

    onCommit(replica: number, op: number, prepare: Message): void {
        const view = this.arena.view;
        const base = prepare.offset;
        if (op !== this.replicaCommit[replica]! + 1) {
            this.fail(
                `replica ${replica} committed op ${op} after op ${this.replicaCommit[replica]}`,
            );
        }
        this.replicaCommit[replica] = op;
        if (op > this.options.opsMax) return this.fail(`op ${op} beyond the checker's history`);
        if (op <= this.opCommitted) {
            if (!this.historyEquals(op, base + Frame.checksum)) {
                this.fail(`replica ${replica} committed op ${op} with a different checksum`);
            }
            return;
        }
        assert(op === this.opCommitted + 1);
        if (op > 1 && !this.historyEquals(op - 1, base + Prepare.parent)) {
            this.fail(`op ${op} does not chain to committed op ${op - 1}`);
        }
        copyBytes(this.arena.bytes, base + Frame.checksum, this.history, op * 16, 16);
        this.opCommitted = op;
        this.modelApply(prepare, op);
        if (view.getUint32(base + Frame.size, true) < headerSize) this.fail("prepare size");
    }

    private historyEquals(op: number, offset: number): boolean {
        const view = this.arena.view;
        for (let word = 0; word < 4; word++) {
            if (
                this.historyView.getUint32(op * 16 + word * 4, true) !==
                view.getUint32(offset + word * 4, true)
            ) {
                return false;
            }
        }
        return true;
    }

    /** A crashed replica restarts: it will replay from its checkpoint, reported by onRecovered. */
    onRestart(replica: number): void {
        assert(replica >= 0 && replica < this.options.replicaCount);
    }

    /** A restarted replica resumes from its checkpoint at `commitMin`, never beyond the history. */
    onRecovered(replica: number, commitMin: number): void {
        if (commitMin > this.opCommitted)
            this.fail(`replica ${replica} recovered beyond the history`);
        this.replicaCommit[replica] = commitMin;
    }

    /** State sync moved a replica's execution forward to `op`, a committed checkpoint op. */
    onStateSync(replica: number, op: number): void {
        if (op > this.opCommitted) this.fail(`replica ${replica} synced beyond the history`);
        if (op < this.replicaCommit[replica]!) this.fail(`replica ${replica} synced backwards`);
        this.replicaCommit[replica] = op;
        this.stateSyncs++;
    }

    stateSyncs = 0;

    /** Commit numbers of a replica never go back (called after every step). */
    checkCommitMonotonic(replica: number, commitMin: number): void {
        if (commitMin < this.replicaCommit[replica]!) {
            const previous = this.replicaCommit[replica];
            this.fail(`replica ${replica} commit went back: ${previous} to ${commitMin}`);
        }
    }

    private modelApply(prepare: Message, op: number): void {
        const view = this.arena.view;
        const requestCount = view.getUint32(prepare.offset + Prepare.requestCount, true);
        let cursor = prepare.offset + headerSize;
        for (let index = 0; index < requestCount; index++) {
            const eventCount = view.getUint32(cursor + BatchEntry.eventCount, true);
            const client = view.getUint32(cursor + BatchEntry.client, true) - 1;
            if (client < 0 || client >= this.options.clientCount) {
                this.fail(`op ${op} carries an unknown client`);
                return;
            }
            if (view.getUint8(cursor + BatchEntry.operation) === Operation.register) {
                this.modelRegister(client, op);
            } else {
                this.modelEvents(client, cursor, op, eventCount);
            }
            cursor += batchEntryHeaderSize + eventCount * kvEventSize;
        }
    }

    private modelFind(client: number): number {
        for (let entry = 0; entry < this.options.clientsMax; entry++) {
            if (this.tableClient[entry] === client) return entry;
        }
        return -1;
    }

    private modelRegister(client: number, op: number): void {
        let entry = this.modelFind(client);
        if (entry < 0) {
            let oldest = -1;
            for (let candidate = 0; candidate < this.options.clientsMax; candidate++) {
                if (this.tableClient[candidate] === -1) {
                    oldest = candidate;
                    break;
                }
                if (oldest === -1 || this.tableReplyOp[candidate]! < this.tableReplyOp[oldest]!)
                    oldest = candidate;
            }
            entry = oldest;
        }
        this.tableClient[entry] = client;
        this.tableSession[entry] = op;
        this.tableRequest[entry] = 0;
        this.tableReplyOp[entry] = op;
        this.executionRecord(client, op, 0, 0);
    }

    /** Claims the next slot of the client's execution ring; returns its index. */
    private executionRecord(client: number, op: number, request: number, size: number): number {
        const cursor = this.executionCursor[client]!;
        this.executionCursor[client] = (cursor + 1) % executionsMax;
        const index = client * executionsMax + cursor;
        this.executionOps[index] = op;
        this.executionRequests[index] = request;
        this.executionSizes[index] = size;
        return index;
    }

    private executionAt(client: number, op: number): number {
        for (let slot = 0; slot < executionsMax; slot++) {
            const index = client * executionsMax + slot;
            if (this.executionOps[index] === op) return index;
        }
        return -1;
    }

    private modelEvents(client: number, entryOffset: number, op: number, eventCount: number): void {
        const view = this.arena.view;
        const entry = this.modelFind(client);
        const session = readU64(view, entryOffset + BatchEntry.session);
        const request = view.getUint32(entryOffset + BatchEntry.request, true);
        if (entry < 0 || this.tableSession[entry] !== session) return;
        if (request !== this.tableRequest[entry]! + 1) return;
        this.tableRequest[entry] = request;
        this.tableReplyOp[entry] = op;
        const execution = this.executionRecord(client, op, request, eventCount * kvResultSize);
        const resultsBase = execution * this.options.messageSizeMax;
        this.executionResults.fill(0, resultsBase, resultsBase + eventCount * kvResultSize);
        for (let index = 0; index < eventCount; index++) {
            this.modelEvent(
                entryOffset + batchEntryHeaderSize + index * kvEventSize,
                resultsBase + index * kvResultSize,
            );
        }
    }

    /** The KV specification for the workload's events (see sim/client.ts for the key format). */
    private modelEvent(eventOffset: number, resultOffset: number): void {
        const bytes = this.arena.bytes;
        const results = this.executionResults;
        const kind = bytes[eventOffset + EventOffset.kind]!;
        const keySize = bytes[eventOffset + EventOffset.keySize]!;
        if (keySize === 0) {
            results[resultOffset + ResultOffset.status] = ResultStatus.invalidEvent;
            return;
        }
        const key =
            bytes[eventOffset + EventOffset.key]! |
            (bytes[eventOffset + EventOffset.key + 1]! << 8);
        assert(key < this.options.keyCount);
        const present = this.valueSizes[key]! >= 0;
        if (kind === EventKind.put) {
            if (!present && this.liveCount >= this.options.kvCountMax) {
                results[resultOffset + ResultOffset.status] = ResultStatus.tableFull;
                return;
            }
            if (!present) this.liveCount++;
            const valueSize = bytes[eventOffset + EventOffset.valueSize]!;
            this.valueSizes[key] = valueSize;
            const source = eventOffset + EventOffset.value;
            copyBytes(bytes, source, this.values, key * 64, 64);
            results[resultOffset + ResultOffset.status] = ResultStatus.ok;
        } else if (kind === EventKind.get) {
            if (!present) {
                results[resultOffset + ResultOffset.status] = ResultStatus.notFound;
                return;
            }
            const valueSize = this.valueSizes[key]!;
            results[resultOffset + ResultOffset.status] = ResultStatus.ok;
            results[resultOffset + ResultOffset.valueSize] = valueSize;
            copyBytes(this.values, key * 64, results, resultOffset + ResultOffset.value, valueSize);
        } else {
            if (!present) {
                results[resultOffset + ResultOffset.status] = ResultStatus.notFound;
                return;
            }
            this.valueSizes[key] = -1;
            this.liveCount--;
            results[resultOffset + ResultOffset.status] = ResultStatus.ok;
        }
    }

    onInvoke(client: number): void {
        this.invokeMaxAckedOp[client] = this.maxAckedOp;
    }

    onReply(client: number, request: Message, reply: Message): void {
        const view = this.arena.view;
        const op = readU64(view, reply.offset + Reply.op);
        this.repliesChecked++;
        if (op > this.opCommitted)
            return this.fail(`client ${client} got a reply for uncommitted op ${op}`);
        if (op <= this.invokeMaxAckedOp[client]!) {
            const acked = this.invokeMaxAckedOp[client];
            this.fail(`client ${client}: reply op ${op} <= op ${acked} acked before invoke`);
        }
        const registering =
            view.getUint8(request.offset + Request.operation) === Operation.register;
        const number = registering ? 0 : view.getUint32(request.offset + Request.request, true);
        const execution = this.executionAt(client, op);
        if (execution < 0 || this.executionRequests[execution] !== number) {
            return this.fail(
                `client ${client} request ${number}: the model did not execute it at op ${op}`,
            );
        }
        const size = view.getUint32(reply.offset + Frame.size, true) - headerSize;
        if (size !== this.executionSizes[execution])
            return this.fail(`client ${client}: reply size ${size}`);
        const base = execution * this.options.messageSizeMax;
        for (let index = 0; index < size; index++) {
            if (
                this.arena.bytes[reply.offset + headerSize + index] !==
                this.executionResults[base + index]
            ) {
                return this.fail(
                    `client ${client} request ${number}: reply differs from model at ${index}`,
                );
            }
        }
        if (
            !u128Equal(view, reply.offset + Reply.requestChecksum, request.offset + Frame.checksum)
        ) {
            this.fail(`client ${client}: reply for another request`);
        }
        this.maxAckedOp = Math.max(this.maxAckedOp, op);
    }

    onEviction(client: number): void {
        assert(client >= 0 && client < this.options.clientCount);
    }

    /** A digest of the committed history (for the run's fingerprint). */
    historyDigest(target: Uint8Array, targetOffset: number): void {
        checksum(this.history, 16, this.opCommitted * 16, target, targetOffset);
    }
}

/** Copies between distinct buffers without creating views (the checkers run on every commit). */
function copyBytes(
    source: Uint8Array,
    sourceOffset: number,
    target: Uint8Array,
    targetOffset: number,
    size: number,
): void {
    for (let index = 0; index < size; index++)
        target[targetOffset + index] = source[sourceOffset + index]!;
}
