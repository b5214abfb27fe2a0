// Repair: holes in the log below a trusted op, and trusted headers without their prepare,
// are fetched from peers (request_headers / request_prepare); a replica serves them from its
// journal (reading a prepare back from disk when it is not cached).
// Block repair (grid_repair.ts does the fetching and serving; here is what the replica does
// around it): grid blocks that recovery could not read are fetched from peers while the
// replica holds no state (stateMissing, as before a state sync: nothing executes, no request
// is taken, no checkpoint served, but it acknowledges prepares and votes), then the image is
// read again; when no peer can serve a block, the replica falls back to state sync.
//
// These are functions over the replica (`self`), split out of replica.ts so that each protocol
// lives in a file a reader can hold at once; the replica's state stays in the class, and
// replica.ts dispatches messages and timeouts to them. No state lives at module level.

import { headerSize } from "../constants.js";
import { assert } from "../stdx/assert.js";
import {
    Command,
    Frame,
    Prepare,
    Reply,
    RequestHeaders,
    RequestPrepare,
    RequestReply,
    headerReplica,
    headerSizeOf,
    prepareOp,
    readU64,
    writeU64,
} from "./header.js";
import type { Message } from "./message_pool.js";
import { GridRepair } from "./grid_repair.js";
import { type Replica, Status } from "./replica.js";
import { copyHeader, copyU128, sendRequestSync, syncConfirmFromHeaders } from "./state_sync.js";
import {
    embeddedHeaderValid,
    primaryViewChangeProgress,
    sendDoViewChange,
    trustedHeader,
} from "./view_change.js";

export function repair(self: Replica): void {
    if (self.status === Status.viewChange && !(self.primary && self.viewChangeLogInstalled)) return;
    if (self.status === Status.normal && self.headTargetOp > self.op) {
        sendRequestPrepare(
            self,
            self.primaryIndex(self.view),
            self.headTargetOp,
            self.headTargetChecksum,
        );
    }
    // Oldest first, within a budget: a hole below a trusted op is fetched by the parent
    // checksum it must have; a trusted header without its prepare by its own checksum.
    let budget = self.config.pipelinePrepareQueueMax;
    for (let op = self.commitMin + 1; op <= self.op && budget > 0; op++) {
        if (self.journal.isTrusted(op)) {
            if (self.journal.hasPrepare(op)) continue;
            const header = self.journal.headerOffset(self.journal.slotOf(op));
            sendRequestPrepare(self, repairPeer(self), op, header + Frame.checksum);
            budget--;
        } else if (op < self.op && self.journal.isTrusted(op + 1)) {
            const parent = self.journal.headerOffset(self.journal.slotOf(op + 1)) + Prepare.parent;
            const peer = repairPeer(self);
            const opMin = Math.max(self.commitMin + 1, op - self.config.requestHeadersMax + 1);
            sendRequestPrepare(self, peer, op, parent);
            sendRequestHeaders(self, peer, opMin, op);
            budget--;
        }
    }
    primaryViewChangeProgress(self);
}

/** Backups ask the primary first; a new primary asks a random backup. */
export function repairPeer(self: Replica): number {
    if (self.status === Status.normal && !self.primary && self.prng.chance(0.5)) {
        return self.primaryIndex(self.view);
    }
    let peer = self.prng.int(self.replicaCount - 1);
    if (peer >= self.replica) peer++;
    return peer;
}

export function sendRequestPrepare(
    self: Replica,
    replica: number,
    op: number,
    checksumOffset: number,
): void {
    if (replica === self.replica || self.replicaCount === 1) return;
    const message = self.acquireHeader(Command.requestPrepare);
    copyU128(self, message.offset + RequestPrepare.prepareChecksum, checksumOffset);
    writeU64(self.memory, message.offset + RequestPrepare.prepareOp, op);
    self.stats.repairsRequested++;
    self.sendTo(replica, message);
}

export function sendRequestHeaders(
    self: Replica,
    replica: number,
    opMin: number,
    opMax: number,
): void {
    if (replica === self.replica || self.replicaCount === 1) return;
    const message = self.acquireHeader(Command.requestHeaders);
    writeU64(self.memory, message.offset + RequestHeaders.opMin, opMin);
    writeU64(self.memory, message.offset + RequestHeaders.opMax, opMax);
    self.sendTo(replica, message);
}

export function onRequestPrepare(self: Replica, message: Message): void {
    const base = message.offset;
    const replica = headerReplica(self.memory, base);
    if (replica === self.replica) return;
    const op = readU64(self.memory, base + RequestPrepare.prepareOp);
    if (!self.journal.hasHeaderWithChecksum(op, base + RequestPrepare.prepareChecksum)) return;
    // From the cache, or once read from disk (journalReadCallback sends it then).
    const prepare = self.journal.readPrepare(op, replica);
    if (prepare !== null) self.bus.sendToReplica(replica, prepare);
}

/**
 * A prepare read back from disk landed: answer the replicas that asked for it, then resume
 * whatever waited for it (execution, a new primary's pipeline).
 */
export function journalReadCallback(
    self: Replica,
    op: number,
    prepare: Message,
    destinations: number,
): void {
    assert(self.journal.hasHeaderWithChecksum(op, prepare.offset + Frame.checksum));
    for (let replica = 0; replica < self.replicaCount; replica++) {
        if ((destinations & (1 << replica)) !== 0) self.bus.sendToReplica(replica, prepare);
    }
    self.executeCommitted();
    primaryViewChangeProgress(self);
}

export function onRequestHeaders(self: Replica, message: Message): void {
    const base = message.offset;
    const replica = headerReplica(self.memory, base);
    if (replica === self.replica) return;
    const opMin = readU64(self.memory, base + RequestHeaders.opMin);
    const opMax = Math.min(self.op, readU64(self.memory, base + RequestHeaders.opMax));
    const reply = self.acquireHeader(Command.headers);
    let count = 0;
    for (let op = opMax; op >= opMin && count < self.config.requestHeadersMax; op--) {
        if (!trustedHeader(self, op)) continue;
        const source = self.journal.headerOffset(self.journal.slotOf(op));
        copyHeader(self, reply.offset + headerSize + count * headerSize, source);
        count++;
    }
    if (count === 0) {
        self.pool.unref(reply);
        return;
    }
    self.memory.setUint32(reply.offset + Frame.size, headerSize + count * headerSize, true);
    self.sendTo(replica, reply);
}

export function onHeaders(self: Replica, message: Message): void {
    const base = message.offset;
    syncConfirmFromHeaders(self, message);
    const count = (headerSizeOf(self.memory, base) - headerSize) / headerSize;
    for (let index = 0; index < count; index++) {
        const offset = base + headerSize + index * headerSize;
        if (!embeddedHeaderValid(self, offset)) return;
        const op = prepareOp(self.memory, offset);
        if (op <= self.commitMin || op >= self.op || self.journal.isTrusted(op)) continue;
        if (!self.journal.isTrusted(op + 1)) continue;
        if (!self.parentOfEquals(op + 1, offset + Frame.checksum)) continue;
        self.journal.setHeader(offset);
        self.journal.trust(op);
        self.extendChain(op);
    }
    self.executeCommitted();
    primaryViewChangeProgress(self);
}

// -----------------------------------------------------------------------------------------------
// Reply repair: a session's latest reply lost from this replica's disk (a corrupt or
// unreadable reply of the checkpoint) is fetched from a peer, whose copy of the same reply
// (same client, op and session; the body is the same deterministic result) replaces it.
// Until then the client's retry of that request is neither executed again nor answered:
// it triggers the repair, and the reply goes to the client as soon as it arrives.

/** Asks every peer for the reply of `entry` (a header-only message, so broadcast). */
export function replyRepairRequest(self: Replica, entry: number): void {
    assert(self.sessions.replyMissing(entry));
    if (self.replicaCount === 1) return;
    const message = self.acquireHeader(Command.requestReply);
    self.sessions.writeClientId(entry, message.offset + RequestReply.client);
    writeU64(self.memory, message.offset + RequestReply.replyOp, self.sessions.replyOp(entry));
    self.stats.replyRepairsRequested++;
    self.broadcast(message);
}

/** From the repair timeout: every session whose reply is missing asks again. */
export function repairReplies(self: Replica): void {
    if (self.stateMissing) return;
    for (let entry = 0; entry < self.sessions.entriesMax; entry++) {
        if (self.sessions.replyMissing(entry)) replyRepairRequest(self, entry);
    }
}

export function onRequestReply(self: Replica, message: Message): void {
    const base = message.offset;
    const replica = headerReplica(self.memory, base);
    if (replica === self.replica) return;
    const entry = self.sessions.find(base + RequestReply.client);
    if (entry < 0) return;
    const reply = self.sessions.reply(entry);
    if (reply === null) return;
    if (self.sessions.replyOp(entry) !== readU64(self.memory, base + RequestReply.replyOp)) {
        return; // Another reply (the session moved on, or self replica lags): no answer.
    }
    self.bus.sendToReplica(replica, reply);
}

/** A peer's copy of a reply self replica lost (valid() checked both checksums). */
export function onReplyRepair(self: Replica, message: Message): void {
    const base = message.offset;
    if (headerReplica(self.memory, base) === self.replica) return;
    const entry = self.sessions.find(base + Reply.client);
    if (entry < 0 || !self.sessions.replyMissing(entry)) return;
    if (readU64(self.memory, base + Reply.op) !== self.sessions.replyOp(entry)) return;
    if (readU64(self.memory, base + Reply.session) !== self.sessions.session(entry)) return;
    self.sessions.repairReply(entry, message);
    self.stats.repliesRepaired++;
    if (self.status === Status.normal && self.primary) self.bus.sendToClient(message);
}

// -------------------------------------------------------------------------------------------
// Block repair.

/** Open found grid blocks missing: fetch them (the replica is open and without state). */
export function gridRepairStart(self: Replica): void {
    assert(self.stateMissing && !self.syncing);
    assert(self.commitMin === self.checkpointOp && self.checkpointOp > 0);
    self.gridRepair.start();
}

/** Repair timeout: ask again (another peer), or, after bounded rounds, state-sync instead. */
export function gridRepairTimeout(self: Replica): void {
    assert(self.gridRepair.repairing);
    if (!self.gridRepair.onRepairTimeout()) gridRepairAbandon(self);
}

/** Every missing block is on disk again: read the image again (index, then every block). */
export function gridRepairedCallback(self: Replica): void {
    assert(self.gridRepair.repairing && self.stateMissing);
    self.checkpointer.readImage(self.gridImageReadCallbackBound);
}

export function gridImageReadCallback(self: Replica, ok: boolean): void {
    assert(self.gridRepair.repairing && self.stateMissing && !self.syncing);
    const missing = self.checkpointer.grid.missingCount;
    if (ok && missing === 0) return gridRepairFinish(self);
    // A block read badly again (a new fault, or a write-back that did not stick): another
    // pass, a bounded number of times.
    if (ok && self.gridRepair.passes < GridRepair.passesMax) return self.gridRepair.start();
    gridRepairAbandon(self);
}

/** The image of the durable checkpoint is whole again: the replica holds state once more. */
function gridRepairFinish(self: Replica): void {
    assert(self.commitMin === self.checkpointOp);
    self.gridRepair.stop();
    self.stateMissing = false;
    // Nothing executed meanwhile: commitMinChecksum is still the checkpoint's anchor.
    self.checkpointer.snapshot(self.checkpointOp, self.commitMinChecksum);
    if (self.hooks !== null) self.hooks.onGridRepaired(self.replica, self.checkpointOp);
    self.commitJournal();
    if (self.status === Status.viewChange) {
        sendDoViewChange(self);
        primaryViewChangeProgress(self);
    }
}

/** No peer could serve a block (or it keeps failing): give the checkpoint up, state-sync. */
function gridRepairAbandon(self: Replica): void {
    assert(self.stateMissing && !self.syncing);
    self.gridRepair.stop();
    // Its records are forgotten as for an unreadable checkpoint, but not its addresses
    // (grid flagKept): the synced checkpoint is written afresh around them, so a crash before
    // it is durable finds this one, still repairable.
    self.checkpointer.grid.recoverBegin();
    self.openWithoutState();
    sendRequestSync(self);
}
