// View change (VSR Revisited §4.2, with TigerBeetle's refinements): start_view_change
// votes, do_view_change with the log suffix and nack/present bitsets, the new primary's choice
// of the canonical log, truncation of what a nack quorum proves uncommitted, and start_view.
//
// These are functions over the replica (`self`), split out of replica.ts so that each protocol
// lives in a file a reader can hold at once; the replica's state stays in the class, and
// replica.ts dispatches messages and timeouts to them. No state lives at module level.

import { headerSize } from "../constants.js";
import { assert } from "../stdx/assert.js";
import {
    Command,
    DoViewChange,
    Frame,
    Prepare,
    StartView,
    headerCommand,
    headerReplica,
    headerSizeOf,
    headerView,
    invalidHeader,
    prepareOp,
    readU64,
    setChecksums,
    u128Equal,
    validHeaderChecksum,
    writeU64,
} from "./header.js";
import type { Message } from "./message_pool.js";
import { repair } from "./repair.js";
import { type Replica, Status, allZero, popcount } from "./replica.js";
import { copyHeader, syncRequest } from "./state_sync.js";

export function voteStartViewChange(self: Replica): void {
    self.startViewChangeVotes |= 1 << self.replica;
    if (!self.startViewChangeWindowTimeout.running) self.startViewChangeWindowTimeout.start();
    if (!self.startViewChangeMessageTimeout.running) self.startViewChangeMessageTimeout.start();
    sendStartViewChange(self, self.view + 1);
    checkStartViewChangeQuorum(self);
}

export function checkStartViewChangeQuorum(self: Replica): void {
    if (popcount(self.startViewChangeVotes) < self.quorums.viewChange) return;
    transitionToViewChange(self, self.view + 1);
}

export function onStartViewChange(self: Replica, message: Message): void {
    const base = message.offset;
    const view = headerView(self.memory, base);
    const replica = headerReplica(self.memory, base);
    if (view <= self.view) return;
    // A vote for a view beyond the next means a quorum already left the views before it.
    if (view > self.view + 1) transitionToViewChange(self, view - 1);
    self.startViewChangeVotes |= 1 << replica;
    if (!self.startViewChangeWindowTimeout.running) self.startViewChangeWindowTimeout.start();
    checkStartViewChangeQuorum(self);
}

/** A primary is normal in a newer view: join it (it answers with start_view). */
export function jumpToView(self: Replica, view: number): void {
    assert(view > self.view);
    transitionToViewChange(self, view);
}

export function transitionToViewChange(self: Replica, view: number): void {
    assert(view > self.view);
    self.view = view;
    self.status = Status.viewChange;
    self.stats.viewChanges++;
    self.abdicating = false;
    self.startViewChangeVotes = 0;
    self.viewChangeLogInstalled = false;
    self.headTargetOp = 0;
    pipelineClear(self);
    requestQueueClear(self);
    doViewChangesClear(self);
    self.stopAllTimeouts();
    self.viewChangeStatusTimeout.start();
    self.doViewChangeMessageTimeout.start();
    self.repairTimeout.startWithJitter();
    sendStartViewChange(self, view);
    self.superblockFlush(); // do_view_change goes out once the new view is durable.
}

export function pipelineClear(self: Replica): void {
    for (let index = 0; index < self.pipeline.length; index++) {
        const prepare = self.pipeline[index] ?? null;
        if (prepare !== null) self.pool.unref(prepare);
        self.pipeline[index] = null;
        self.pipelineOks[index] = 0;
    }
    self.pipelineHead = 0;
    self.pipelineCount = 0;
}

export function requestQueueClear(self: Replica): void {
    for (let index = 0; index < self.requestQueue.length; index++) {
        const request = self.requestQueue[index] ?? null;
        if (request !== null) self.pool.unref(request);
        self.requestQueue[index] = null;
    }
    self.requestQueueHead = 0;
    self.requestQueueCount = 0;
}

export function doViewChangesClear(self: Replica): void {
    for (let index = 0; index < self.doViewChanges.length; index++) {
        const message = self.doViewChanges[index] ?? null;
        if (message !== null) self.pool.unref(message);
        self.doViewChanges[index] = null;
    }
}

export function sendStartViewChange(self: Replica, view: number): void {
    const message = self.acquireHeader(Command.startViewChange);
    self.memory.setUint32(message.offset + Frame.view, view, true);
    self.broadcast(message);
}

/**
 * The log suffix, newest first: up to viewHeadersMax headers from headersOp down. An op is
 * nacked when self replica never acknowledged it (no header, a header not chained to its
 * log_view's head, or a prepare not durable) and present when its prepare is durable here.
 * Faulty slots above the highest known header (a recovered replica's unknown head) are not
 * carried as blanks: they would push known headers, and the copies they prove, out of the
 * suffix. The message names them by op > headersOp instead: never nacked, never present.
 */
export function buildDoViewChange(self: Replica): Message {
    const message = self.acquireHeader(Command.doViewChange);
    const base = message.offset;
    const headersOp = doViewChangeHeadersOp(self);
    assert(headersOp <= self.op && self.op - headersOp <= unknownHeadMax(self));
    const count = Math.min(self.derived.viewHeadersMax, headersOp + 1);
    let nacks = 0;
    let presents = 0;
    for (let index = 0; index < count; index++) {
        const op = headersOp - index;
        const target = base + headerSize + index * headerSize;
        // A faulty slot may hold an op self replica acknowledged: never nack it.
        const faulty = self.journal.isFaulty(op);
        if (trustedHeader(self, op)) {
            const source = self.journal.headerOffset(self.journal.slotOf(op));
            copyHeader(self, target, source);
            if (self.journal.isDurable(op) || op <= self.commitMin) presents |= 1 << index;
            else if (!faulty) nacks |= 1 << index;
        } else {
            // Not vouched for, but a durable prepare at self op may be one self replica
            // acknowledged before a restart: neither vouch nor deny (as for a faulty slot).
            self.bytes.fill(0, target, target + headerSize);
            const durable = self.journal.hasHeader(op) && self.journal.isDurable(op);
            if (!faulty && !durable) nacks |= 1 << index;
        }
    }
    self.memory.setUint32(base + Frame.size, headerSize + count * headerSize, true);
    writeU64(self.memory, base + DoViewChange.op, self.op);
    writeU64(self.memory, base + DoViewChange.headersOp, headersOp);
    writeU64(self.memory, base + DoViewChange.logViewOp, self.logViewOp);
    writeU64(
        self.memory,
        base + DoViewChange.commitMax,
        Math.max(self.commitMin, Math.min(self.commitMax, self.op)),
    );
    self.memory.setUint32(base + DoViewChange.logView, self.logView, true);
    self.memory.setUint32(base + DoViewChange.nackBitset, nacks >>> 0, true);
    self.memory.setUint32(base + DoViewChange.presentBitset, presents >>> 0, true);
    setChecksums(self.bytes, self.memory, base);
    assert(invalidHeader(self.memory, base, self.config.messageSizeMax) === null);
    return message;
}

/** Unknown head ops a do_view_change may name above its headers (the rest go as blanks). */
export function unknownHeadMax(self: Replica): number {
    return self.derived.viewHeadersMax;
}

/**
 * The top of the do_view_change suffix: the head, less the faulty slots on top of it whose
 * header self replica does not know (at most unknownHeadMax of them).
 */
export function doViewChangeHeadersOp(self: Replica): number {
    const opMin = Math.max(self.commitMin, self.op - unknownHeadMax(self));
    let headersOp = self.op;
    while (
        headersOp > opMin &&
        !trustedHeader(self, headersOp) &&
        self.journal.isFaulty(headersOp)
    ) {
        headersOp--;
    }
    return headersOp;
}

export function sendDoViewChange(self: Replica): void {
    assert(self.status === Status.viewChange);
    if (self.viewDurable !== self.view) return;
    const message = buildDoViewChange(self);
    const primary = self.primaryIndex(self.view);
    if (primary === self.replica) {
        storeDoViewChange(self, self.replica, message);
    } else {
        self.bus.sendToReplica(primary, message);
    }
    self.pool.unref(message);
}

export function onDoViewChange(self: Replica, message: Message): void {
    const base = message.offset;
    const view = headerView(self.memory, base);
    if (view < self.view) return;
    if (!doViewChangeValid(self, message)) {
        self.stats.messagesInvalid++;
        return;
    }
    if (view > self.view) transitionToViewChange(self, view);
    if (!self.primary) return;
    const replica = headerReplica(self.memory, base);
    if (self.status === Status.normal) {
        // A backup missed start_view: send it again.
        if (replica !== self.replica && !self.startViewPending) sendStartView(self, replica);
        return;
    }
    storeDoViewChange(self, replica, message);
}

/**
 * The suffix must be ops headersOp, headersOp-1, … (each a valid prepare header of self
 * cluster, or a blank of zeros), at most viewHeadersMax of them, with bitsets that fit the
 * count, and at most unknownHeadMax unknown ops above it.
 */
export function doViewChangeValid(self: Replica, message: Message): boolean {
    const base = message.offset;
    const op = readU64(self.memory, base + DoViewChange.op);
    const headersOp = readU64(self.memory, base + DoViewChange.headersOp);
    if (headersOp > op || op - headersOp > unknownHeadMax(self)) return false;
    const count = (headerSizeOf(self.memory, base) - headerSize) / headerSize;
    if (count > self.derived.viewHeadersMax || count > headersOp + 1) return false;
    const nacks = self.memory.getUint32(base + DoViewChange.nackBitset, true);
    const presents = self.memory.getUint32(base + DoViewChange.presentBitset, true);
    if (count < 32 && (nacks | presents) >>> count !== 0) return false;
    for (let index = 0; index < count; index++) {
        const offset = base + headerSize + index * headerSize;
        if (headerCommand(self.memory, offset) === Command.reserved) {
            if (!allZero(self.bytes, offset, headerSize)) return false;
            if ((presents & (1 << index)) !== 0) return false;
            continue;
        }
        if (!embeddedHeaderValid(self, offset)) return false;
        if (prepareOp(self.memory, offset) !== headersOp - index) return false;
    }
    return true;
}

export function storeDoViewChange(self: Replica, replica: number, message: Message): void {
    assert(self.status === Status.viewChange && self.primary);
    if (self.viewChangeLogInstalled) return;
    const previous = self.doViewChanges[replica] ?? null;
    if (previous !== null) self.pool.unref(previous);
    self.doViewChanges[replica] = self.pool.ref(message);
    let count = 0;
    for (let index = 0; index < self.replicaCount; index++)
        if (self.doViewChanges[index] !== null) count++;
    if (count < self.quorums.viewChange || self.doViewChanges[self.replica] === null) return;
    if (primaryChooseLog(self)) {
        self.viewChangeLogInstalled = true;
        doViewChangesClear(self);
        primaryViewChangeProgress(self);
        repair(self);
    }
}

/**
 * Chooses the new view's log from the do_view_change quorum (TigerBeetle's rule): canonical
 * messages are those with the highest log_view; ops above the highest committed op are kept
 * unless a nack quorum proves them uncommitted; an op with no canonical header, or with no
 * copy any do_view_change proves while some are still missing, makes the primary wait for
 * more do_view_changes. Returns true once installed.
 *
 * The walk reaches the highest op of any canonical log, its unknown head included: a
 * canonical replica that cannot name an op it may have acknowledged does not let it be
 * dropped without a nack quorum. Only known headers bound which ops were committed.
 */
export function primaryChooseLog(self: Replica): boolean {
    assert(self.status === Status.viewChange && self.primary);
    assert(!self.viewChangeLogInstalled && self.doViewChanges[self.replica] !== null);
    const logViewMax = doViewChangeLogViewMax(self);
    // Its own do_view_change is in the quorum: the chosen log is never older than its own.
    assert(logViewMax >= self.logView);
    let opHeadMax = 0;
    let opHeadKnown = 0;
    let logViewOpMin = Number.MAX_SAFE_INTEGER;
    let commitMaxAll = self.commitMin;
    for (let replica = 0; replica < self.replicaCount; replica++) {
        const message = self.doViewChanges[replica] ?? null;
        if (message === null) continue;
        const base = message.offset;
        commitMaxAll = Math.max(commitMaxAll, readU64(self.memory, base + DoViewChange.commitMax));
        if (!canonical(self, base, logViewMax)) continue;
        opHeadMax = Math.max(opHeadMax, readU64(self.memory, base + DoViewChange.op));
        opHeadKnown = Math.max(opHeadKnown, doViewChangeHeadHeader(self, message));
        logViewOpMin = Math.min(logViewOpMin, readU64(self.memory, base + DoViewChange.logViewOp));
    }
    assert(opHeadKnown <= opHeadMax && logViewOpMin <= Number.MAX_SAFE_INTEGER);
    const pipelineMax = self.config.pipelinePrepareQueueMax;
    // Ops more than a pipeline below the canonical head were committed by its primary.
    const opHeadMin = Math.min(opHeadKnown, Math.max(commitMaxAll, opHeadKnown - pipelineMax));
    assert(opHeadMax - opHeadMin <= self.canonicalOffsets.length);
    let opHead = opHeadMax;
    resolveCanonical(self, opHeadMin, opHeadMax, logViewMax);
    // The anchor: the committed op below the suffix, so the chain can be walked down from it.
    const anchorOffset = canonicalAt(self, opHeadMin, opHeadMin, opHeadMax, logViewMax);
    if (anchorOffset < 0 && opHeadMin > self.commitMin) return false;
    for (let op = opHeadMin + 1; op <= opHeadMax; op++) {
        const canonicalOffset = self.canonicalOffsets[op - opHeadMin - 1] ?? -1;
        const nacks = countNacks(self, op, canonicalOffset, logViewMax, logViewOpMin);
        const nackQuorum = self.quorums.nack - (self.faults.truncateOneNackShort ? 1 : 0);
        if (nacks >= nackQuorum) {
            // A committed op was acknowledged by a replication quorum, which every nack
            // quorum intersects.
            assert(op > commitMaxAll);
            opHead = op - 1;
            break;
        }
        if (canonicalOffset < 0) return false;
        if (countCopies(self, op, canonicalOffset) === 0 && !doViewChangesFromAll(self)) {
            return false;
        }
    }
    assert(opHead >= opHeadMin && opHead <= opHeadMax);
    // A primary must be able to announce the log: a suffix of at least its head's header.
    if (opHead === self.commitMin && !self.journal.hasHeader(opHead)) return false;
    if (opHead >= self.windowOpMax()) {
        // This primary lags beyond the chosen log's WAL window and cannot install it; the
        // view change times out and the next primary takes over.
        self.stats.windowFull++;
        return false;
    }
    primaryInstallLog(self, opHeadMin, opHead, commitMaxAll, anchorOffset);
    return true;
}

/**
 * True once every replica's do_view_change is in. Then waiting cannot help an op whose
 * canonical header no do_view_change proves present (replicas in view_change do not repair,
 * so the messages do not change): the op stays, its prepare is fetched by checksum from
 * whichever peer holds it outside its suffix (storm seed 1304: the only copies were on an
 * older log_view's replica whose suffix began higher up).
 */
export function doViewChangesFromAll(self: Replica): boolean {
    for (let replica = 0; replica < self.replicaCount; replica++) {
        if (self.doViewChanges[replica] === null) return false;
    }
    return true;
}

/** True when self replica holds the header of `op` and it belongs to its log. */
export function trustedHeader(self: Replica, op: number): boolean {
    if (op > self.op) return false;
    if (op <= self.commitMin) return self.journal.hasHeader(op);
    return self.journal.isTrusted(op);
}

/**
 * The highest op whose header the do_view_change carries. Its `op` field may be higher (a
 * recovered replica keeps faulty slots above its head inside its log, unknown): that bounds
 * its nacks, but only known headers say how far its log_view's primary had prepared (and
 * so which ops below it were committed).
 */
export function doViewChangeHeadHeader(self: Replica, message: Message): number {
    const base = message.offset;
    const headersOp = readU64(self.memory, base + DoViewChange.headersOp);
    const count = (headerSizeOf(self.memory, base) - headerSize) / headerSize;
    for (let index = 0; index < count; index++) {
        const offset = base + headerSize + index * headerSize;
        if (headerCommand(self.memory, offset) === Command.prepare) return headersOp - index;
    }
    return Math.max(0, headersOp - count);
}

export function doViewChangeLogViewMax(self: Replica): number {
    let logViewMax = 0;
    for (let replica = 0; replica < self.replicaCount; replica++) {
        const message = self.doViewChanges[replica] ?? null;
        if (message === null) continue;
        logViewMax = Math.max(
            logViewMax,
            self.memory.getUint32(message.offset + DoViewChange.logView, true),
        );
    }
    return logViewMax;
}

export function canonical(self: Replica, base: number, logViewMax: number): boolean {
    if (self.faults.canonicalIgnoresLogView) return true;
    return self.memory.getUint32(base + DoViewChange.logView, true) === logViewMax;
}

/** Arena offset of the header of `op` in a canonical do_view_change, or -1. */
export function canonicalHeader(self: Replica, op: number, logViewMax: number): number {
    for (let replica = 0; replica < self.replicaCount; replica++) {
        const message = self.doViewChanges[replica] ?? null;
        if (message === null || !canonical(self, message.offset, logViewMax)) continue;
        const offset = doViewChangeHeader(self, message, op);
        if (offset >= 0 && headerCommand(self.memory, offset) === Command.prepare) return offset;
    }
    return -1;
}

/**
 * Arena offset of the body header of `op` in the do_view_change, or -1 outside its suffix
 * (below it, or in its unknown head above headersOp).
 */
export function doViewChangeHeader(self: Replica, message: Message, op: number): number {
    const base = message.offset;
    const headersOp = readU64(self.memory, base + DoViewChange.headersOp);
    const count = (headerSizeOf(self.memory, base) - headerSize) / headerSize;
    const index = headersOp - op;
    if (index < 0 || index >= count) return -1;
    return base + headerSize + index * headerSize;
}

/** True when the do_view_change's nack bit for `op` (inside its suffix) is set. */
export function doViewChangeNacked(self: Replica, message: Message, op: number): boolean {
    const base = message.offset;
    const index = readU64(self.memory, base + DoViewChange.headersOp) - op;
    assert(index >= 0 && index < 32);
    return (self.memory.getUint32(base + DoViewChange.nackBitset, true) & (1 << index)) !== 0;
}

/** True when the do_view_change's present bit for `op` (inside its suffix) is set. */
export function doViewChangePresent(self: Replica, message: Message, op: number): boolean {
    const base = message.offset;
    const index = readU64(self.memory, base + DoViewChange.headersOp) - op;
    assert(index >= 0 && index < 32);
    return (self.memory.getUint32(base + DoViewChange.presentBitset, true) & (1 << index)) !== 0;
}

/**
 * Canonical headers of (opHeadMin, opHeadMax], top down: a canonical do_view_change's own,
 * or, where the canonical replicas lost it (a faulty slot), any do_view_change's header
 * whose checksum is the parent of the canonical header above (the hash chain proves it).
 */
export function resolveCanonical(
    self: Replica,
    opHeadMin: number,
    opHeadMax: number,
    logViewMax: number,
): void {
    for (let op = opHeadMax; op > opHeadMin; op--) {
        self.canonicalOffsets[op - opHeadMin - 1] = canonicalAt(
            self,
            op,
            opHeadMin,
            opHeadMax,
            logViewMax,
        );
    }
}

export function canonicalAt(
    self: Replica,
    op: number,
    opHeadMin: number,
    opHeadMax: number,
    logViewMax: number,
) {
    const own = canonicalHeader(self, op, logViewMax);
    if (own >= 0 || op >= opHeadMax) return own;
    const above = self.canonicalOffsets[op + 1 - opHeadMin - 1] ?? -1;
    if (above < 0) return -1;
    for (let replica = 0; replica < self.replicaCount; replica++) {
        const message = self.doViewChanges[replica] ?? null;
        if (message === null) continue;
        const offset = doViewChangeHeader(self, message, op);
        if (offset < 0 || headerCommand(self.memory, offset) !== Command.prepare) continue;
        if (u128Equal(self.memory, offset + Frame.checksum, above + Prepare.parent)) return offset;
    }
    return -1;
}

/**
 * True when a canonical do_view_change covers `op` but cannot say what it is: a blank it
 * does not nack (a faulty slot), or its unknown head above headersOp.
 */
export function canonicalUnknown(self: Replica, op: number, logViewMax: number): boolean {
    for (let replica = 0; replica < self.replicaCount; replica++) {
        const message = self.doViewChanges[replica] ?? null;
        if (message === null || !canonical(self, message.offset, logViewMax)) continue;
        const head = readU64(self.memory, message.offset + DoViewChange.op);
        if (head < op) continue;
        const offset = doViewChangeHeader(self, message, op);
        if (offset < 0) {
            const headersOp = readU64(self.memory, message.offset + DoViewChange.headersOp);
            if (op > headersOp) return true;
            continue;
        }
        if (headerCommand(self.memory, offset) === Command.prepare) continue;
        if (!doViewChangeNacked(self, message, op)) return true;
    }
    return false;
}

/**
 * Replicas that prove they never acknowledged the canonical op at `op`. Above logViewOpMin
 * (the canonical head when log_view's log was installed, or later), the canonical op was
 * prepared in log_view itself, and a replica whose log_view is older was never normal in
 * that view, so it never acknowledged it, whatever it holds at that op.
 */
export function countNacks(
    self: Replica,
    op: number,
    canonicalOffset: number,
    logViewMax: number,
    logViewOpMin: number,
): number {
    assert(op > self.commitMin); // The walk starts above every committed op it knows.
    assert(canonicalOffset < 0 || prepareOp(self.memory, canonicalOffset) === op);
    // Without a canonical header, another header counts as a nack only if the canonical
    // replicas are sure the op is gone (else it may well be the canonical op itself).
    const headersNack = canonicalOffset >= 0 || !canonicalUnknown(self, op, logViewMax);
    let nacks = 0;
    let messages = 0;
    for (let replica = 0; replica < self.replicaCount; replica++) {
        const message = self.doViewChanges[replica] ?? null;
        if (message === null) continue;
        messages++;
        const base = message.offset;
        if (readU64(self.memory, base + DoViewChange.op) < op) {
            nacks++; // Its log never reached self op.
            continue;
        }
        if (op > logViewOpMin && !canonical(self, base, logViewMax)) {
            nacks++; // Never normal in log_view: it never acknowledged self view's prepares.
            continue;
        }
        const offset = doViewChangeHeader(self, message, op);
        if (offset < 0) continue; // Outside its suffix: it says nothing about self op.
        const nacked = doViewChangeNacked(self, message, op);
        const blank = headerCommand(self.memory, offset) !== Command.prepare;
        if (blank) {
            if (nacked) nacks++;
        } else if (canonicalOffset < 0) {
            if (headersNack) nacks++;
        } else if (
            !u128Equal(self.memory, offset + Frame.checksum, canonicalOffset + Frame.checksum)
        ) {
            nacks++; // It holds another op here, so it never acknowledged the canonical one.
        } else if (nacked) {
            nacks++;
        }
    }
    assert(nacks <= messages && messages <= self.replicaCount);
    return nacks;
}

export function countCopies(self: Replica, op: number, canonicalOffset: number): number {
    assert(canonicalOffset >= 0);
    let copies = 0;
    for (let replica = 0; replica < self.replicaCount; replica++) {
        const message = self.doViewChanges[replica] ?? null;
        if (message === null) continue;
        const offset = doViewChangeHeader(self, message, op);
        if (offset < 0 || !doViewChangePresent(self, message, op)) continue;
        if (u128Equal(self.memory, offset + Frame.checksum, canonicalOffset + Frame.checksum))
            copies++;
    }
    return copies;
}

export function primaryInstallLog(
    self: Replica,
    opHeadMin: number,
    opHead: number,
    commitMaxAll: number,
    anchorOffset: number,
): void {
    assert(opHead >= opHeadMin);
    assert(opHeadMin >= self.commitMin);
    // The new log replaces the old one: trust is re-established from the chosen headers.
    self.journal.distrustAll();
    for (let op = self.op; op > opHead; op--) self.journal.removeHeader(op);
    if (opHeadMin > self.commitMin) {
        assert(anchorOffset >= 0);
        self.journal.setHeader(anchorOffset);
        self.journal.trust(opHeadMin);
    }
    for (let op = opHeadMin + 1; op <= opHead; op++) {
        // The walk kept only ops with a canonical header (primaryChooseLog).
        const canonicalOffset = self.canonicalOffsets[op - opHeadMin - 1] ?? -1;
        assert(canonicalOffset >= 0 && prepareOp(self.memory, canonicalOffset) === op);
        self.journal.setHeader(canonicalOffset);
        self.journal.trust(op);
    }
    self.op = opHead;
    self.commitMax = Math.max(self.commitMax, Math.min(commitMaxAll, opHead), opHeadMin);
    self.logView = self.view;
    self.logViewOp = opHead;
    if (opHead > self.commitMin) self.extendChain(Math.max(opHeadMin, self.commitMin + 1));
    self.superblockFlush();
}

/** The new primary waits until every op above commitMin is present, then goes normal. */
export function primaryViewChangeProgress(self: Replica): void {
    if (self.status !== Status.viewChange || !self.primary || !self.viewChangeLogInstalled) return;
    for (let op = self.commitMin + 1; op <= self.op; op++) {
        if (!self.journal.isTrusted(op) || !self.journal.hasPrepare(op)) return;
    }
    self.commitJournal();
    // Execution may pause at a checkpoint: finish once it resumes and catches up. Without
    // state (awaiting state sync) it cannot execute at all: it leads once synced.
    if (self.commitMin < self.commitMax || self.stateMissing) return;
    // The pipeline takes the uncommitted prepares: read back any the cache dropped (the
    // read callback comes back here).
    let cached = true;
    for (let op = self.commitMax + 1; op <= self.op; op++) {
        if (self.journal.readPrepare(op, -1) === null) cached = false;
    }
    if (!cached) return;
    primaryFinishViewChange(self);
}

export function primaryFinishViewChange(self: Replica): void {
    assert(self.op - self.commitMax <= self.pipeline.length);
    self.status = Status.normal;
    self.startViewChangeVotes = 0;
    pipelineClear(self);
    for (let op = self.commitMax + 1; op <= self.op; op++) {
        const prepare = self.journal.prepare(op);
        assert(prepare !== null);
        self.pipeline[self.pipelineCount] = self.pool.ref(prepare);
        self.pipelineOks[self.pipelineCount] = 0;
        self.pipelineCount++;
    }
    const head = self.journal.headerOffset(self.journal.slotOf(self.op));
    self.prepareTimestampUs = Math.max(
        self.prepareTimestampUs,
        readU64(self.memory, head + Prepare.timestamp),
    );
    self.enterNormalTimeouts();
    self.startViewPending = true;
    primaryStartView(self);
}

/** Announces the new view once its log_view is durable, then resumes normal work. */
export function primaryStartView(self: Replica): void {
    if (!self.startViewPending || self.logViewDurable !== self.view) return;
    assert(self.status === Status.normal && self.primary);
    self.startViewPending = false;
    for (let replica = 0; replica < self.replicaCount; replica++) {
        if (replica !== self.replica) sendStartView(self, replica);
    }
    for (let op = self.commitMax + 1; op <= self.op; op++) {
        if (self.journal.isDurable(op)) self.journalDurableCallback(op);
    }
    self.primaryCommitPipeline();
    self.primaryPipelinePrepare();
}

export function sendStartView(self: Replica, replica: number): void {
    assert(self.status === Status.normal && self.primary);
    const message = self.acquireHeader(Command.startView);
    const base = message.offset;
    // The suffix: every uncommitted op, then committed ones while self replica still holds
    // them (after a state sync or a wrap, older headers are gone).
    const countMax = Math.min(self.derived.viewHeadersMax, self.op + 1);
    let count = 0;
    for (let index = 0; index < countMax; index++) {
        const op = self.op - index;
        if (!self.journal.hasHeader(op)) {
            assert(op <= self.commitMin);
            break;
        }
        const source = self.journal.headerOffset(self.journal.slotOf(op));
        copyHeader(self, base + headerSize + index * headerSize, source);
        count++;
    }
    assert(count > 0);
    self.memory.setUint32(base + Frame.size, headerSize + count * headerSize, true);
    writeU64(self.memory, base + StartView.op, self.op);
    writeU64(self.memory, base + StartView.commitMax, self.commitMax);
    setChecksums(self.bytes, self.memory, base);
    self.bus.sendToReplica(replica, message);
    self.pool.unref(message);
}

export function onStartView(self: Replica, message: Message): void {
    const base = message.offset;
    const view = headerView(self.memory, base);
    if (view < self.view) return;
    if (view === self.view && self.status === Status.normal) return;
    if (
        headerReplica(self.memory, base) !== self.primaryIndex(view) ||
        self.primaryIndex(view) === self.replica
    )
        return;
    const op = readU64(self.memory, base + StartView.op);
    const count = (headerSizeOf(self.memory, base) - headerSize) / headerSize;
    if (!startViewValid(self, message, op, count)) return;
    if (op >= self.windowOpMax()) {
        // The new view's log is beyond self replica's WAL window: installing it would
        // overwrite ops not yet executed here. Only state sync can bring it back.
        self.stats.windowFull++;
        syncRequest(self, headerReplica(self.memory, base));
        return;
    }
    // Everything self replica committed is in the new view's log (quorum intersection), so
    // an honest primary never sends less; drop such a message rather than trust it.
    if (op < self.commitMin) {
        self.stats.messagesInvalid++;
        return;
    }
    if (view > self.view) transitionToViewChange(self, view);
    self.journal.distrustAll();
    for (let k = self.op; k > op; k--) self.journal.removeHeader(k);
    for (let index = count - 1; index >= 0; index--) {
        const offset = base + headerSize + index * headerSize;
        if (op - index <= self.commitMin) continue;
        self.journal.setHeader(offset);
        self.journal.trust(op - index);
    }
    self.op = op;
    const suffixMin = Math.max(self.commitMin + 1, op - count + 1);
    if (op > self.commitMin) self.extendChain(suffixMin);
    assert(self.view === view && (op <= self.commitMin || self.journal.isTrusted(op)));
    assert(self.commitMin <= self.op && self.status === Status.viewChange);
    self.logView = view;
    self.logViewOp = op;
    self.superblockFlush();
    self.status = Status.normal;
    doViewChangesClear(self);
    self.startViewChangeVotes = 0;
    self.advanceCommitMax(readU64(self.memory, base + StartView.commitMax));
    self.enterNormalTimeouts();
    for (let k = self.commitMax + 1; k <= self.op; k++) {
        if (self.journal.isTrusted(k) && self.journal.isDurable(k)) self.sendPrepareOk(k);
    }
    self.commitJournal();
    repair(self);
}

/** The start_view suffix must be ops op, op-1, … chained by parent checksums. */
export function startViewValid(
    self: Replica,
    message: Message,
    op: number,
    count: number,
): boolean {
    const base = message.offset;
    // At least the head's header: without it the log could not be announced (and trusted).
    if (count < 1 || count > op + 1) return false;
    for (let index = 0; index < count; index++) {
        const offset = base + headerSize + index * headerSize;
        if (!embeddedHeaderValid(self, offset)) return false;
        if (prepareOp(self.memory, offset) !== op - index) return false;
        if (
            index > 0 &&
            !u128Equal(self.memory, offset - headerSize + Prepare.parent, offset + Frame.checksum)
        ) {
            return false;
        }
    }
    return true;
}

/** A prepare header carried inside a body: checksummed, well-formed, of self cluster. */
export function embeddedHeaderValid(self: Replica, offset: number): boolean {
    if (headerCommand(self.memory, offset) !== Command.prepare) return false;
    if (!validHeaderChecksum(self.bytes, offset)) return false;
    if (invalidHeader(self.memory, offset, self.config.messageSizeMax) !== null) return false;
    return self.memory.getUint32(offset + Frame.cluster, true) === self.cluster;
}
