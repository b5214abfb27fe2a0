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
// - Equal checkpoints, equal state: whenever a replica reaches a checkpoint op (by executing it,
//   by recovering from it, or by state sync), the digest of its KV image and of its client table
//   must equal that of every other replica at the same op, and so must the body of every stored
//   reply. (A table entry may lack its reply: a checkpoint restores, and state sync installs,
//   only replies that validate. Entries are compared whole, reply bodies where present.)
//   The first replica to execute a checkpoint op is also compared with the reference model,
//   which stands at that same op then: every KV entry (whole key, value) and every client-table
//   entry (session, request number, reply op) must be the model's.
// - Durability: a backup acknowledges only a prepare its disk holds (checked by the cluster on
//   seeds whose storage never misplaces or corrupts a write: there the check is exact).
// - Restarts: a replica's durable view and durable checkpoint never go back across a crash.
// - Evictions: a client is only ever told that a session the model issued to it is gone.
// A violation is recorded rather than thrown, so the run reports it with its seed; every check
// still runs after the first one failed (the first reason leads, the count says how many).

import { assert } from "../stdx/assert.js";
import { batchEntryHeaderSize, headerSize, kvEventSize, kvResultSize } from "../constants.js";
import { EventKind, EventOffset, ResultOffset, ResultStatus } from "../state_machine/kv.js";
import type { Arena } from "../vsr/arena.js";
import { BatchEntry } from "../vsr/batch.js";
import { Frame, Operation, Prepare, Reply, Request, readU64, u128Equal } from "../vsr/header.js";
import type { Message } from "../vsr/message_pool.js";
import type { ClientSessions } from "../vsr/client_sessions.js";
import { checksum } from "../vsr/checksum.js";
import { decodeKey } from "./client.js";

/** A replica's state as the checkers digest it: its KV image and its client table. */
export interface ReplicaState {
    readonly imageOffset: number;
    readonly imageSize: number;
    readonly sessions: ClientSessions;
}

/** Digest bytes: the KV image's checksum, then the client table's. */
export const stateDigestSize = 32;
/** Scratch bytes per client-table entry: the serialized entry (ClientSessions.entrySize). */
const sessionScratchSize = 64;
/** Offset of the reply size in a serialized entry: left out (a reply may be missing). */
const sessionReplySizeOffset = 56;

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
    readonly checkpointOps: number;
    /** Arena offset of clientsMax * 64 scratch bytes for client-table digests. */
    readonly scratchOffset: number;
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
    violations = 0;
    /** Per checkpoint (op / checkpointOps): the state digest of the first replica there. */
    private readonly checkpointDigests: Uint8Array;
    private readonly checkpointKnown: Uint8Array;
    private readonly digest: Uint8Array;
    /** Per checkpoint and client-table entry: the checksum of the first reply body seen. */
    private readonly checkpointReplies: Uint8Array;
    private readonly checkpointReplyKnown: Uint8Array;
    /** Reply bodies compared at checkpoints; entries that lacked their reply. */
    checkpointRepliesCompared = 0;
    checkpointRepliesMissing = 0;
    checkpointsCompared = 0;
    // Restarts: the durable view and checkpoint at the last crash, and whether it is down.
    private readonly crashViewDurable: Float64Array;
    private readonly crashCheckpointOp: Float64Array;
    private readonly replicaDown: Uint8Array;
    /** Per client: the op of the latest register the model executed (its newest session). */
    private readonly sessionLatest: Float64Array;

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
        const checkpoints = Math.floor(options.opsMax / options.checkpointOps) + 1;
        this.checkpointDigests = new Uint8Array(checkpoints * stateDigestSize);
        this.checkpointKnown = new Uint8Array(checkpoints);
        this.digest = new Uint8Array(stateDigestSize);
        this.checkpointReplies = new Uint8Array(checkpoints * options.clientsMax * 16);
        this.checkpointReplyKnown = new Uint8Array(checkpoints * options.clientsMax);
        this.crashViewDurable = new Float64Array(options.replicaCount);
        this.crashCheckpointOp = new Float64Array(options.replicaCount);
        this.replicaDown = new Uint8Array(options.replicaCount);
        this.sessionLatest = new Float64Array(options.clientCount);
    }

    fail(reason: string): void {
        this.violations++;
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

    /** The replica's process dies; what its superblock made durable must survive. */
    onCrash(replica: number, viewDurable: number, checkpointOp: number): void {
        assert(this.replicaDown[replica] === 0);
        this.replicaDown[replica] = 1;
        this.crashViewDurable[replica] = viewDurable;
        this.crashCheckpointOp[replica] = checkpointOp;
    }

    /** A crashed replica restarts: it will replay from its checkpoint, reported by onRecovered. */
    onRestart(replica: number): void {
        assert(replica >= 0 && replica < this.options.replicaCount);
        if (this.replicaDown[replica] !== 1) this.fail(`replica ${replica} restarted while up`);
    }

    /**
     * A restarted replica resumes from its durable checkpoint at `checkpointOp` (= commitMin):
     * never beyond the history, never before what was durable at the crash, in the same state
     * as every replica that executed that op (`state` null: it started without state, which a
     * state sync installs and reports later).
     */
    onRecovered(
        replica: number,
        commitMin: number,
        viewDurable: number,
        checkpointOp: number,
        state: ReplicaState | null,
    ): void {
        if (this.replicaDown[replica] !== 1) this.fail(`replica ${replica} recovered while up`);
        this.replicaDown[replica] = 0;
        if (commitMin > this.opCommitted)
            this.fail(`replica ${replica} recovered beyond the history`);
        if (viewDurable < this.crashViewDurable[replica]!) {
            const before = this.crashViewDurable[replica];
            this.fail(`replica ${replica} durable view went back: ${before} to ${viewDurable}`);
        }
        if (checkpointOp < this.crashCheckpointOp[replica]!) {
            const before = this.crashCheckpointOp[replica];
            this.fail(`replica ${replica} checkpoint went back: ${before} to ${checkpointOp}`);
        }
        if (commitMin !== checkpointOp) {
            this.fail(`replica ${replica} recovered at op ${commitMin}, not ${checkpointOp}`);
        }
        this.replicaCommit[replica] = commitMin;
        if (checkpointOp > 0 && state !== null) {
            this.onCheckpointState(replica, checkpointOp, state, "recovered");
        }
    }

    /**
     * A replica holds the state of checkpoint op `op` (after executing it, recovering from it or
     * syncing to it): its digest must equal the first one recorded for that op.
     */
    onCheckpointState(replica: number, op: number, state: ReplicaState, how: string): void {
        assert(op % this.options.checkpointOps === 0 && op > 0);
        const index = op / this.options.checkpointOps;
        if (index >= this.checkpointKnown.length) return; // Beyond the history (failed above).
        this.stateDigest(state, this.digest, 0);
        const base = index * stateDigestSize;
        if (this.checkpointKnown[index] === 0) {
            this.checkpointKnown[index] = 1;
            copyBytes(this.digest, 0, this.checkpointDigests, base, stateDigestSize);
            if (op === this.opCommitted) {
                this.modelCompareKv(replica, op, state);
                this.modelCompareSessions(replica, op, state);
            }
        } else {
            this.checkpointsCompared++;
            for (let byte = 0; byte < stateDigestSize; byte++) {
                if (this.checkpointDigests[base + byte] === this.digest[byte]) continue;
                const what = byte < 16 ? "KV image" : "client table";
                this.fail(`replica ${replica} ${how} checkpoint op ${op}: its ${what} differs`);
                break;
            }
        }
        this.checkpointRepliesCheck(replica, op, index, state);
    }

    /** Reply bodies at a checkpoint: the first one seen per entry, then compared to it. */
    private checkpointRepliesCheck(
        replica: number,
        op: number,
        index: number,
        state: ReplicaState,
    ): void {
        const clientsMax = this.options.clientsMax;
        for (let entry = 0; entry < clientsMax; entry++) {
            const known = index * clientsMax + entry;
            if (state.sessions.free(entry)) continue;
            if (!this.replyDigest(state, entry, this.digest, 0)) {
                this.checkpointRepliesMissing++;
                continue;
            }
            if (this.checkpointReplyKnown[known] === 0) {
                this.checkpointReplyKnown[known] = 1;
                copyBytes(this.digest, 0, this.checkpointReplies, known * 16, 16);
                continue;
            }
            this.checkpointRepliesCompared++;
            for (let byte = 0; byte < 16; byte++) {
                if (this.checkpointReplies[known * 16 + byte] === this.digest[byte]) continue;
                const what = `the reply of table entry ${entry} differs`;
                return this.fail(`replica ${replica} at checkpoint op ${op}: ${what}`);
            }
        }
    }

    /** Writes the checksum of the entry's reply body; false when the entry holds no reply. */
    replyDigest(state: ReplicaState, entry: number, target: Uint8Array, offset: number): boolean {
        const reply = state.sessions.reply(entry);
        if (reply === null) return false;
        const size = this.arena.view.getUint32(reply.offset + Frame.size, true);
        assert(size >= headerSize && size <= this.options.messageSizeMax);
        checksum(this.arena.bytes, reply.offset + headerSize, size - headerSize, target, offset);
        return true;
    }

    /**
     * The replica's KV image against the model (layout in state_machine/kv.ts): as many entries,
     * and each one a workload key the model holds with the same value.
     */
    private modelCompareKv(replica: number, op: number, state: ReplicaState): void {
        const view = this.arena.view;
        const bytes = this.arena.bytes;
        const image = state.imageOffset;
        const count = view.getInt32(image, true);
        const slots = view.getInt32(image + 4, true);
        const metas = image + 64;
        const keys = metas + slots * 8;
        const values = keys + slots * 32;
        assert(values + slots * 64 === image + state.imageSize);
        if (count !== this.liveCount) {
            const model = this.liveCount;
            return this.fail(`replica ${replica} at op ${op}: ${count} keys, the model ${model}`);
        }
        for (let slot = 0; slot < slots; slot++) {
            const sizes = view.getUint32(metas + slot * 8 + 4, true);
            if (sizes === 0) continue;
            const keySize = sizes & 0xff;
            const valueSize = (sizes >>> 8) & 0xff;
            const key = decodeKey(bytes, keys + slot * 32, keySize);
            let same = key >= 0 && key < this.options.keyCount;
            same = same && this.valueSizes[key] === valueSize;
            for (let index = 0; same && index < valueSize; index++) {
                same = bytes[values + slot * 64 + index] === this.values[key * 64 + index];
            }
            if (!same) return this.fail(`replica ${replica} at op ${op}: KV slot ${slot} differs`);
        }
    }

    /** The replica's client table against the model's: the same clients, sessions, requests. */
    private modelCompareSessions(replica: number, op: number, state: ReplicaState): void {
        const view = this.arena.view;
        const sessions = state.sessions;
        const scratch = this.options.scratchOffset;
        let modelCount = 0;
        for (let entry = 0; entry < this.options.clientsMax; entry++) {
            if (this.tableClient[entry] !== -1) modelCount++;
        }
        if (sessions.count !== modelCount) {
            return this.fail(`replica ${replica} at op ${op}: ${sessions.count} sessions`);
        }
        for (let entry = 0; entry < sessions.entriesMax; entry++) {
            if (sessions.free(entry)) continue;
            sessions.serialize(entry, scratch);
            const client = view.getUint32(scratch, true) - 1;
            const model = this.modelFind(client);
            if (
                model < 0 ||
                readU64(view, scratch + 32) !== this.tableSession[model] ||
                readU64(view, scratch + 40) !== this.tableRequest[model] ||
                readU64(view, scratch + 48) !== this.tableReplyOp[model]
            ) {
                const what = `client ${client}'s session, request or reply op`;
                return this.fail(`replica ${replica} at op ${op}: ${what} not the model's`);
            }
        }
    }

    /** Writes the digest of the replica's KV image and client table (stateDigestSize bytes). */
    stateDigest(state: ReplicaState, target: Uint8Array, targetOffset: number): void {
        const bytes = this.arena.bytes;
        checksum(bytes, state.imageOffset, state.imageSize, target, targetOffset);
        const scratch = this.options.scratchOffset;
        const sessions = state.sessions;
        assert(sessions.entriesMax === this.options.clientsMax);
        for (let entry = 0; entry < sessions.entriesMax; entry++) {
            const entryOffset = scratch + entry * sessionScratchSize;
            sessions.serialize(entry, entryOffset);
            this.arena.view.setUint32(entryOffset + sessionReplySizeOffset, 0, true);
        }
        const tableSize = sessions.entriesMax * sessionScratchSize;
        checksum(bytes, scratch, tableSize, target, targetOffset + 16);
    }

    /** State sync moved a replica's execution forward to `op`, a committed checkpoint op. */
    onStateSync(replica: number, op: number): void {
        if (op > this.opCommitted) this.fail(`replica ${replica} synced beyond the history`);
        if (op < this.replicaCommit[replica]!) this.fail(`replica ${replica} synced backwards`);
        this.replicaCommit[replica] = op;
        this.stateSyncs++;
    }

    /** The state a replica installed by state sync (called once it holds it). */
    onStateSyncState(replica: number, op: number, state: ReplicaState): void {
        this.onCheckpointState(replica, op, state, "synced");
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
        this.sessionLatest[client] = op;
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
        // The whole key names the model's entry: a prefix or a size alone would not.
        const key = decodeKey(bytes, eventOffset + EventOffset.key, keySize);
        if (key < 0 || key >= this.options.keyCount) return this.fail("a key outside the workload");
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

    /** The client's session `session` is gone: it must be one the model registered for it. */
    onEviction(client: number, session: number): void {
        assert(client >= 0 && client < this.options.clientCount);
        if (session <= 0 || session > this.sessionLatest[client]!) {
            this.fail(`client ${client} evicted from session ${session} it never had`);
            return;
        }
        if (session > this.opCommitted || !this.registeredAt(client, session)) {
            this.fail(`client ${client} evicted from session ${session}: not its register`);
        }
    }

    /** True when op `op` of the history is a register of `client` (its session number). */
    private registeredAt(client: number, op: number): boolean {
        const entry = this.modelFind(client);
        if (entry >= 0 && this.tableSession[entry] === op) return true;
        // An older session: it was this client's if the model registered it then (the ring of
        // executions remembers recent ones; older sessions are only bounded by sessionLatest).
        for (let slot = 0; slot < executionsMax; slot++) {
            const index = client * executionsMax + slot;
            if (this.executionOps[index] === op) return this.executionRequests[index] === 0;
        }
        return true;
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
