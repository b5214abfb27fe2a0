// State sync: a replica whose peers' log has moved beyond its WAL window fetches a peer's
// latest checkpoint: its block index, client table and replies as one stream (in order, one
// chunk per round trip), then the image as the blocks that index names, fetched before any
// switch: each block is read from this replica's own disk where its grid names that
// (address, checksum), else fetched from peers by (address, checksum) (grid_repair.ts load),
// verified against its index entry and applied to the image in memory. Only then is the state
// installed and written as this replica's own checkpoint (afresh, at addresses its durable
// index does not name: grid.rebase); the superblock naming it is the switch. Then the log
// above it is repaired as usual (start_view, request_prepare).
//
// Crashes: nothing is written to disk before the whole image is held, and the rebased
// checkpoint never overwrites a block the durable index names, so a crash at any point of a
// sync finds the old checkpoint readable. From the load's start the live image is being
// replaced: the replica holds no state (stateMissing) until the sync installs; a load that
// stalls (no peer holds a block any more: they moved on) starts the sync over, from another
// peer and a newer checkpoint.
//
// Trust: the stream comes from the one replica asked (syncPeer), and every chunk must name
// the same checkpoint (op, stream size, index, client-table and anchor checksums) as its
// first. Index and table must match the checksums (the index names every block's checksum, so
// it identifies the image, and every block is verified against it, whoever served it); the
// anchor (which op the checkpoint ends at) must be confirmed by another log before loading:
// this replica's trusted chain, or the header of that op held by a replica other than
// syncPeer. With two replicas the one peer's word stands (there is no third log).
//
// These are functions over the replica (`self`), split out of replica.ts so that each protocol
// lives in a file a reader can hold at once; the replica's state stays in the class, and
// replica.ts dispatches messages and timeouts to them. No state lives at module level.

import { headerSize } from "../constants.js";
import { assert } from "../stdx/assert.js";
import {
    Command,
    Frame,
    RequestSync,
    Sync,
    headerReplica,
    headerSizeOf,
    prepareOp,
    readU64,
    u128Equal,
    writeU64,
} from "./header.js";
import type { Message } from "./message_pool.js";
import { repairPeer, sendRequestHeaders } from "./repair.js";
import { type Replica, Status, syncStallsMax } from "./replica.js";
import { embeddedHeaderValid, sendDoViewChange, trustedHeader } from "./view_change.js";

export function syncRequest(self: Replica, peer: number): void {
    if (peer === self.replica || self.replicaCount === 1) return;
    // Block repair owns the checkpointer until it finishes or gives up (then syncing starts).
    if (self.gridRepair.repairing) return;
    if (!self.syncing) {
        if (self.checkpointInFlight) return; // Its buffers are the assembly area.
        if (syncDeferred(self)) return;
        self.syncing = true;
        syncRestart(self);
    } else if (self.syncTargetOp > 0) {
        return; // A stream (or its blocks) under way: its chunks and syncRetry drive it.
    }
    self.syncPeer = syncPeerChoose(self, peer);
    sendRequestSync(self);
}

/**
 * The peer to sync from, given the one a trigger suggests (the primary, a start_view's
 * sender): any but the one whose last load was given up. That peer's checkpoint named a block
 * no replica served, and it keeps offering the same checkpoint until its next one, while the
 * triggers keep naming it: storm seed 637 (four replicas) asked the primary, whose copy of one
 * block was damaged, some sixty times, while another replica held that checkpoint whole.
 */
function syncPeerChoose(self: Replica, peer: number): number {
    assert(peer !== self.replica);
    return peer === self.syncPeerAvoided ? peerAfter(self, peer) : peer;
}

/**
 * Ticks a normal replica puts a sync off while its log leads to its next checkpoint and its
 * execution advances (each op executed restarts the count): four sync stalls' worth.
 */
function syncDeferTicksMax(self: Replica): number {
    return 4 * syncStallsMax * self.config.repairTimeoutTicks;
}

/**
 * True when a sync should not start yet: the replica is normal, holds state, and its log
 * knows every op from its commitMin to its next checkpoint op (trusted headers: repair fetches
 * any prepare it lacks), and execution advanced within syncDeferTicksMax. Executing those ops
 * writes that checkpoint, which moves its WAL window on: a prepare beyond the window is no
 * reason yet to give its state up (syncing stops execution, and loading resets the image).
 * The peer's checkpoint may be on that peer's disk alone, with a block it can no longer read:
 * seed 931 (four replicas) stalled for good when every backup synced to the primary's
 * checkpoint, whose damaged block only the primary's next checkpoint would have rewritten, and
 * the primary waited for their prepare_oks to commit that checkpoint's op. When execution does
 * not advance (a prepare no peer holds any more), the sync starts after the bound.
 */
function syncDeferred(self: Replica): boolean {
    if (self.status !== Status.normal || self.stateMissing) return false;
    const next = self.checkpointOp + self.config.checkpointOps;
    for (let op = self.commitMin + 1; op <= next; op++) {
        if (!self.journal.isTrusted(op)) return false;
    }
    if (self.commitMin !== self.syncDeferredCommitMin) {
        self.syncDeferredCommitMin = self.commitMin;
        self.syncDeferredTick = self.ticks;
    }
    return self.ticks - self.syncDeferredTick < syncDeferTicksMax(self);
}

/** Forgets the stream being assembled (the next chunk at offset 0 names a new target). */
export function syncRestart(self: Replica): void {
    self.syncTargetOp = 0;
    self.syncOffset = 0;
    self.syncOffsetAtTimeout = 0;
    self.syncStalls = 0;
    self.syncConfirmed = false;
}

/**
 * Repair timeout while syncing: a lost chunk (or confirmation) is asked again; a peer that
 * made no progress for syncStallsMax timeouts in a row (a round trip may take several) is
 * replaced, and the stream starts over from the new one.
 */
export function syncRetry(self: Replica): void {
    assert(self.syncing);
    if (self.gridRepair.loading) {
        if (self.gridRepair.onRepairTimeout()) return;
        // No peer served a block of the target for stallsMax timeouts (they moved on, or
        // their copies are damaged): sync anew, from the next peer. Not a random one: the
        // index came from syncPeer, whose copy of a block may be the only one (a replica that
        // installed its checkpoint by sync wrote its blocks at addresses of its own), and
        // asking it again would stall again (default seed 3830 did, half of its attempts).
        self.gridRepair.stop();
        self.gridRepair.syncLoadsAbandoned++;
        syncRestart(self);
        self.syncPeerAvoided = self.syncPeer;
        self.syncPeer = peerAfter(self, self.syncPeer);
        return sendRequestSync(self);
    }
    if (self.syncOffset !== self.syncOffsetAtTimeout) {
        self.syncOffsetAtTimeout = self.syncOffset;
        self.syncStalls = 0;
    } else {
        self.syncStalls++;
    }
    if (self.syncStalls >= syncStallsMax) {
        const peer = syncPeerChoose(self, repairPeer(self));
        if (peer !== self.syncPeer) syncRestart(self);
        self.syncPeer = peer;
        self.syncStalls = 0;
    }
    const complete = self.syncTargetOp > 0 && self.syncOffset === self.syncStreamSize;
    if (complete)
        syncConfirmRequest(self); // Complete, not yet confirmed: ask again.
    else sendRequestSync(self);
}

/** The replica after `peer` in index order, skipping self replica. */
function peerAfter(self: Replica, peer: number): number {
    assert(self.replicaCount > 1);
    let next = (peer + 1) % self.replicaCount;
    if (next === self.replica) next = (next + 1) % self.replicaCount;
    return next;
}

export function sendRequestSync(self: Replica): void {
    // Without state, even a checkpoint at commitMin itself will do: ask for one above the op
    // before it (peers serve a snapshot newer than the commitMin they are sent).
    // (A load given up before the first checkpoint leaves commitMin 0: any checkpoint will do.)
    const commitMin = self.stateMissing && self.commitMin > 0 ? self.commitMin - 1 : self.commitMin;
    sendRequestSyncTo(self, self.syncPeer, commitMin, self.syncOffset);
}

function sendRequestSyncTo(self: Replica, peer: number, commitMin: number, offset: number): void {
    const message = self.acquireHeader(Command.requestSync);
    writeU64(self.memory, message.offset + RequestSync.commitMin, commitMin);
    writeU64(self.memory, message.offset + RequestSync.offset, offset);
    self.sendTo(peer, message);
}

export function onRequestSync(self: Replica, message: Message): void {
    const base = message.offset;
    const replica = headerReplica(self.memory, base);
    const snapshotOp = self.checkpointer.snapshotOp;
    if (replica === self.replica || self.syncing) return;
    if (!self.checkpointer.servable) return; // None, or its blocks are still being written.
    if (snapshotOp <= readU64(self.memory, base + RequestSync.commitMin)) {
        return; // Nothing newer to offer.
    }
    const streamSize = self.checkpointer.streamSize();
    // An offset beyond self stream was into another (older) checkpoint's: start it over.
    let offset = readU64(self.memory, base + RequestSync.offset);
    if (offset >= streamSize) offset = 0;
    const chunk = self.acquireHeader(Command.sync);
    const size = self.checkpointer.serveStream(
        offset,
        chunk.offset + headerSize,
        self.derived.messageBodySizeMax,
    );
    self.memory.setUint32(chunk.offset + Frame.size, headerSize + size, true);
    writeU64(self.memory, chunk.offset + Sync.checkpointOp, snapshotOp);
    writeU64(self.memory, chunk.offset + Sync.offset, offset);
    writeU64(self.memory, chunk.offset + Sync.streamSize, streamSize);
    copyU128(self, chunk.offset + Sync.indexChecksum, self.checkpointer.grid.indexChecksum);
    copyU128(self, chunk.offset + Sync.sessionsChecksum, self.checkpointer.sessionsChecksum);
    copyU128(self, chunk.offset + Sync.anchorChecksum, self.checkpointer.snapshotAnchor);
    self.sendTo(replica, chunk);
}

/** Copies a whole header inside the arena. */
export function copyHeader(self: Replica, target: number, source: number): void {
    self.bytes.copyWithin(target, source, source + headerSize);
}

/** Copies a u128 (a checksum or an id) inside the arena. */
export function copyU128(self: Replica, target: number, source: number): void {
    self.bytes.copyWithin(target, source, source + 16);
}

export function onSync(self: Replica, message: Message): void {
    const base = message.offset;
    if (!self.syncing) return;
    if (headerReplica(self.memory, base) !== self.syncPeer) return syncConfirmFromChunk(self, base);
    if (self.gridRepair.loading) return; // The stream is in: its blocks are being loaded.
    const op = readU64(self.memory, base + Sync.checkpointOp);
    if (op < self.commitMin || op % self.config.checkpointOps !== 0) return;
    // At its own op only when started without state (its checkpoint was unreadable).
    if (op === self.commitMin && !self.stateMissing) return;
    if (op < self.syncTargetOp) return; // A late chunk of an older checkpoint.
    const offset = readU64(self.memory, base + Sync.offset);
    const size = headerSizeOf(self.memory, base) - headerSize;
    if (op !== self.syncTargetOp || !syncIdentityEquals(self, base)) {
        // Another checkpoint than the one being assembled: start over, from its first byte.
        syncRestart(self);
        if (offset !== 0) return sendRequestSync(self);
        self.syncTargetOp = op;
        self.syncStreamSize = readU64(self.memory, base + Sync.streamSize);
        copyU128(self, self.checkpointer.syncIndexChecksum, base + Sync.indexChecksum);
        copyU128(self, self.checkpointer.sessionsChecksum, base + Sync.sessionsChecksum);
        copyU128(self, self.checkpointPendingChecksum, base + Sync.anchorChecksum);
        self.checkpointer.receiveBegin();
        syncConfirmLocal(self);
        if (!self.syncConfirmed) syncConfirmRequest(self);
    }
    assert(syncIdentityEquals(self, base) && op === self.syncTargetOp);
    if (offset !== self.syncOffset) return; // A duplicate or a stale chunk.
    if (self.syncOffset + size > self.syncStreamSize) return;
    if (!self.checkpointer.receive(offset, base + headerSize, size)) {
        syncRestart(self); // Bytes beyond what its index and table describe: start over.
        return;
    }
    self.syncOffset += size;
    if (self.syncOffset < self.syncStreamSize) return sendRequestSync(self);
    if (self.syncConfirmed) syncInstall(self);
}

/** True when the chunk names the checkpoint being assembled (op, checksums, size). */
export function syncIdentityEquals(self: Replica, base: number): boolean {
    if (self.syncTargetOp === 0) return false;
    return (
        readU64(self.memory, base + Sync.streamSize) === self.syncStreamSize &&
        u128Equal(self.memory, base + Sync.indexChecksum, self.checkpointer.syncIndexChecksum) &&
        u128Equal(self.memory, base + Sync.sessionsChecksum, self.checkpointer.sessionsChecksum) &&
        u128Equal(self.memory, base + Sync.anchorChecksum, self.checkpointPendingChecksum)
    );
}

/**
 * Confirms the anchor from self replica's own log (a trusted header of the op, or of the op
 * above whose parent it is), or, with two replicas, from the only peer's word: there is no
 * third log to ask, and that peer's checkpoint is of ops it executed, so committed.
 */
export function syncConfirmLocal(self: Replica): void {
    const op = self.syncTargetOp;
    const anchor = self.checkpointPendingChecksum;
    assert(op > 0 && !self.syncConfirmed);
    if (self.replicaCount === 2) self.syncConfirmed = true;
    else if (trustedHeader(self, op) && self.journal.hasHeaderWithChecksum(op, anchor)) {
        self.syncConfirmed = true;
    } else if (self.journal.isTrusted(op + 1) && self.parentOfEquals(op + 1, anchor)) {
        self.syncConfirmed = true;
    }
}

/**
 * Asks every replica but syncPeer for the header of the target op (onHeaders confirms) and
 * for its own checkpoint's first chunk (onSync confirms when it names the same op and
 * anchor). Both are needed: a replica that itself installed a state sync at that checkpoint
 * holds no header at or below it (default seed 3830: the only other replica had synced to the
 * same checkpoint, so the header request went unanswered for good), yet its checkpoint's
 * anchor was confirmed when it installed it, and executing ops gives the same anchor.
 */
export function syncConfirmRequest(self: Replica): void {
    assert(self.syncing && self.syncTargetOp > 0);
    for (let replica = 0; replica < self.replicaCount; replica++) {
        if (replica === self.replica || replica === self.syncPeer) continue;
        sendRequestHeaders(self, replica, self.syncTargetOp, self.syncTargetOp);
        sendRequestSyncTo(self, replica, self.syncTargetOp - 1, 0);
    }
}

/** A chunk from a replica other than syncPeer: its checkpoint may vouch for the anchor. */
function syncConfirmFromChunk(self: Replica, base: number): void {
    assert(self.syncing && headerReplica(self.memory, base) !== self.syncPeer);
    if (self.syncTargetOp === 0 || self.syncConfirmed) return;
    if (readU64(self.memory, base + Sync.checkpointOp) !== self.syncTargetOp) return;
    // Another checkpoint at the same op with another anchor proves nothing (a bug, or a
    // mix-up): only the same anchor confirms.
    if (!u128Equal(self.memory, base + Sync.anchorChecksum, self.checkpointPendingChecksum)) return;
    self.stats.syncAnchorsConfirmedByCheckpoint++;
    syncConfirm(self);
}

function syncConfirm(self: Replica): void {
    assert(!self.syncConfirmed && !self.gridRepair.loading);
    self.syncConfirmed = true;
    if (self.syncOffset === self.syncStreamSize) syncInstall(self);
}

/** A `headers` reply from a replica other than syncPeer may hold the target's header. */
export function syncConfirmFromHeaders(self: Replica, message: Message): void {
    const base = message.offset;
    if (!self.syncing || self.syncTargetOp === 0 || self.syncConfirmed) return;
    if (headerReplica(self.memory, base) === self.syncPeer) return;
    const count = (headerSizeOf(self.memory, base) - headerSize) / headerSize;
    for (let index = 0; index < count; index++) {
        const offset = base + headerSize + index * headerSize;
        if (!embeddedHeaderValid(self, offset)) return;
        if (prepareOp(self.memory, offset) !== self.syncTargetOp) continue;
        // A different header proves nothing (a stale log may hold another op there).
        if (!u128Equal(self.memory, offset + Frame.checksum, self.checkpointPendingChecksum))
            continue;
        return syncConfirm(self);
    }
}

/**
 * The whole stream arrived and its anchor is confirmed: verify index and table, then load the
 * image from the blocks the index names (syncLoaded installs it). The live image is replaced
 * from here on: the replica holds no state until then.
 */
export function syncInstall(self: Replica): void {
    assert(self.syncing && self.syncConfirmed && self.syncOffset === self.syncStreamSize);
    // Without state, the checkpoint at its own op will do (it was unreadable).
    assert(self.syncTargetOp > (self.stateMissing ? self.commitMin - 1 : self.commitMin));
    assert(!self.checkpointInFlight && !self.checkpointing); // Syncing began without one.
    const count = self.checkpointer.receiveVerify();
    if (count < 0) {
        // Corrupt in transit or a peer's mix-up: the next trigger starts over (the replica
        // stays syncing: the repair timeout asks again).
        syncRestart(self);
        return;
    }
    self.stateMissing = true; // receiveVerify reset the image: the blocks rebuild it.
    self.gridRepair.load(count, self.syncPeer, self.syncLoadedBound);
}

/** Every block of the target is applied: install the state and checkpoint it as this one's. */
export function syncLoaded(self: Replica): void {
    assert(self.syncing && self.stateMissing && !self.gridRepair.loading);
    self.checkpointer.receiveInstall();
    self.syncing = false;
    self.syncPeerAvoided = -1;
    self.stateMissing = false;
    const op = self.syncTargetOp;
    // The log above the checkpoint stays: self replica may have acknowledged those ops
    // (it fell behind in execution, not necessarily in its log).
    self.commitMin = op;
    self.commitMax = Math.max(self.commitMax, op);
    if (self.faults.stateSyncDropsLog) {
        for (let above = self.op; above > op; above--) self.journal.removeHeader(above);
        self.op = op;
    }
    self.op = Math.max(self.op, op);
    // A trusted op + 1 that does not chain to the checkpoint proves log_view's log older
    // than the checkpoint: nothing above is vouched for any more (a durable op is still
    // never nacked). A hole or an untrusted header at op + 1 proves nothing: the trusted
    // ops above are still the log of log_view, and dropping their trust would leave a
    // backup nothing to repair towards (storm seed 248). Executing them stays safe: ops up
    // to commitMax were committed in log_view's log, so they chain to the checkpoint
    // (commitJournal asserts it), and ops above it wait for that view's commit number.
    const above = op + 1;
    if (
        self.op > op &&
        self.journal.isTrusted(above) &&
        !self.parentOfEquals(above, self.checkpointPendingChecksum)
    ) {
        self.journal.distrustAll();
    }
    copyU128(self, self.commitMinChecksum, self.checkpointPendingChecksum);
    assert(self.commitMin === op && self.op >= op && !self.stateMissing);
    // Whatever stays trusted above the checkpoint chains to it.
    const chained = self.parentOfEquals(above, self.commitMinChecksum);
    assert(self.op === op || !self.journal.isTrusted(above) || chained);
    self.headTargetOp = 0;
    self.stats.stateSyncs++;
    if (self.hooks !== null) self.hooks.onStateSync(self.replica, op);
    self.checkpointStart();
    if (self.status === Status.viewChange) sendDoViewChange(self);
}
