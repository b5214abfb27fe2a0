// Every size, count and timeout of vsr-node, in one place, with the relations between them
// asserted when a configuration is built. Two presets: `production` and `test`, the latter tiny
// so that the simulator wraps the journal and fills the client table within a few hundred ops.
// Timeouts are in ticks (one tick = tickMs of real time in production, simulated in the VOPR).

import { assert } from "./stdx/assert.js";

export const headerSize = 256;
export const sectorSize = 4096;
export const replicasMax = 6;
/** Event and result widths of the KV state machine (see state_machine/kv.ts). */
export const kvEventSize = 128;
export const kvResultSize = 80;
/** Each request batched into a prepare is prefixed by a fixed-size entry header. */
export const batchEntryHeaderSize = 64;

export interface Config {
    readonly name: string;
    /** Bound on every message (request, prepare, reply): header plus body. */
    readonly messageSizeMax: number;
    /** Client-session table entries; at most one request in flight per session. */
    readonly clientsMax: number;
    /** Prepares in flight at the primary (uncommitted). */
    readonly pipelinePrepareQueueMax: number;
    /**
     * Of those, how many may be still unwritten on the primary's own disk when it starts the
     * next (group commit: the queue waits for a write and the next prepare carries it all).
     */
    readonly preparesBeingWrittenMax: number;
    /** WAL ring slots: slot = op % journalSlotCount. */
    readonly journalSlotCount: number;
    /** Ops between checkpoints; the WAL may overwrite an op only once a checkpoint covers it. */
    readonly checkpointOps: number;
    /** Concurrent journal writes and reads of one replica. */
    readonly journalWritesMax: number;
    readonly journalReadsMax: number;
    /** Prepares the journal keeps in memory (the WAL itself is on disk; see journal.ts). */
    readonly prepareCacheMax: number;
    /** KV table capacity (power of two). */
    readonly kvEntriesMax: number;
    /** Headers carried in one `headers` reply. */
    readonly requestHeadersMax: number;
    readonly tickMs: number;
    readonly prepareTimeoutTicks: number;
    readonly commitMessageTimeoutTicks: number;
    readonly normalHeartbeatTimeoutTicks: number;
    readonly startViewChangeWindowTimeoutTicks: number;
    readonly startViewChangeMessageTimeoutTicks: number;
    readonly viewChangeStatusTimeoutTicks: number;
    readonly doViewChangeMessageTimeoutTicks: number;
    readonly repairTimeoutTicks: number;
    readonly primaryAbdicateTimeoutTicks: number;
    readonly clientRequestTimeoutTicks: number;
    /** Exponential backoff ceiling for retried timeouts. */
    readonly backoffTicksMax: number;
}

export interface Derived {
    readonly messageBodySizeMax: number;
    /** Suffix of the log carried by do_view_change and start_view: pipeline + 1 headers. */
    readonly viewHeadersMax: number;
    /** Events of the KV machine that fit in one request body. */
    readonly eventsPerRequestMax: number;
    /** Requests waiting for a prepare slot at the primary: bounded by one per session. */
    readonly requestQueueMax: number;
}

export function derive(config: Config): Derived {
    const messageBodySizeMax = config.messageSizeMax - headerSize;
    return {
        messageBodySizeMax,
        viewHeadersMax: config.pipelinePrepareQueueMax + 1,
        eventsPerRequestMax: Math.floor((messageBodySizeMax - batchEntryHeaderSize) / kvEventSize),
        requestQueueMax: config.clientsMax,
    };
}

export const production: Config = verify({
    name: "production",
    // The WAL is disk-resident: memory holds its headers (256 B a slot: 2 MiB) and a cache of
    // 64 prepares (8 MiB), so the window is sized for the disk, not for memory: 8192 slots ×
    // 128 KiB = 1 GiB of prepares zone (written with zeros by `vsr format`). Every
    // prepare costs a synchronous write, so a replica prepares at most ~1,000–2,000 a second on
    // a fast disk (group commit packs concurrent requests into one), and a window of 8192 covers
    // several seconds at that rate, tens at ordinary load, so a lagging replica catches up from
    // the WAL instead of by state sync. Recovery reads one sector per slot (first the headers
    // ring). A checkpoint every 4096 ops leaves the other half of the ring as slack: the
    // primary prepares on while a checkpoint is written (seconds for a big delta: 1671 blocks of
    // 64 KiB after loading a million keys took 5.5 s on a loaded machine). With 8064 the slack
    // was 128 ops, and the cluster stopped for the rest of that checkpoint (a 4.5 s call).
    messageSizeMax: 128 * 1024,
    clientsMax: 64,
    pipelinePrepareQueueMax: 8,
    // One: each prepare costs every replica synchronous I/O (an O_DSYNC write and its read-back;
    // about 150 µs of CPU per I/O on the development VM, mostly thread wake-ups and the virtual
    // disk's doorbell), so fewer, fuller prepares leave more CPU for requests: at 64 clients 18%
    // more ops/s and 18% less CPU per op than with two (measured when a prepare cost two writes).
    // One client never waits for it (its request finds the journal idle).
    preparesBeingWrittenMax: 1,
    journalSlotCount: 8192,
    checkpointOps: 4096,
    journalWritesMax: 32,
    journalReadsMax: 8,
    // Two pipelines (a new primary re-proposes one while the next arrives), the reads in flight
    // and room for the writes in flight, which stay cached until on disk.
    prepareCacheMax: 64,
    kvEntriesMax: 1 << 18,
    requestHeadersMax: 64,
    tickMs: 10,
    prepareTimeoutTicks: 25,
    commitMessageTimeoutTicks: 50,
    normalHeartbeatTimeoutTicks: 200,
    startViewChangeWindowTimeoutTicks: 500,
    startViewChangeMessageTimeoutTicks: 50,
    viewChangeStatusTimeoutTicks: 500,
    doViewChangeMessageTimeoutTicks: 50,
    repairTimeoutTicks: 10,
    primaryAbdicateTimeoutTicks: 1000,
    clientRequestTimeoutTicks: 60,
    backoffTicksMax: 1000,
});

export const test: Config = verify({
    name: "test",
    messageSizeMax: 4096,
    clientsMax: 7,
    pipelinePrepareQueueMax: 4,
    // Two: more prepares in flight at once, so the simulator's view changes meet longer
    // uncommitted suffixes. Any schedule of one is a schedule of two whose requests came later.
    preparesBeingWrittenMax: 2,
    journalSlotCount: 64,
    checkpointOps: 32,
    journalWritesMax: 8,
    journalReadsMax: 4,
    // The least verify() allows: far below the window, so the simulator's replicas read
    // prepares back from disk on most seeds (commit after a restart, repair, view change).
    prepareCacheMax: 12,
    kvEntriesMax: 256,
    requestHeadersMax: 8,
    tickMs: 10,
    prepareTimeoutTicks: 25,
    commitMessageTimeoutTicks: 50,
    normalHeartbeatTimeoutTicks: 200,
    startViewChangeWindowTimeoutTicks: 500,
    startViewChangeMessageTimeoutTicks: 50,
    viewChangeStatusTimeoutTicks: 500,
    doViewChangeMessageTimeoutTicks: 50,
    repairTimeoutTicks: 10,
    primaryAbdicateTimeoutTicks: 1000,
    clientRequestTimeoutTicks: 60,
    backoffTicksMax: 200,
});

export function verify(config: Config): Config {
    assert(config.messageSizeMax % sectorSize === 0);
    assert(config.messageSizeMax >= headerSize + batchEntryHeaderSize + kvEventSize);
    assert(config.messageSizeMax <= 16 * 1024 * 1024);
    assert(config.clientsMax >= 1);
    assert(config.pipelinePrepareQueueMax >= 1);
    assert(config.preparesBeingWrittenMax >= 1);
    assert(config.preparesBeingWrittenMax <= config.pipelinePrepareQueueMax);
    // do_view_change carries nack and present bitsets of viewHeadersMax bits in one u32 each.
    assert(2 * config.pipelinePrepareQueueMax + 1 <= 32);
    // The WAL must hold the whole pipeline plus the view-change suffix with room to spare, so
    // that a wrap never overwrites an op that a view change may still need.
    assert(config.journalSlotCount >= 4 * (config.pipelinePrepareQueueMax + 1));
    assert(isPowerOfTwo(config.journalSlotCount));
    // While the checkpoint at op c + checkpointOps is written, the primary may prepare up to
    // c + slotCount - 1 (the durable checkpoint is c): slotCount - checkpointOps ops of slack,
    // at least two pipelines, and at least a whole interval, so that writing a checkpoint may
    // take as long as executing the ops between two checkpoints without stalling commits.
    assert(config.checkpointOps >= 1);
    assert(config.checkpointOps + 2 * config.pipelinePrepareQueueMax <= config.journalSlotCount);
    assert(2 * config.checkpointOps <= config.journalSlotCount);
    assert(config.journalWritesMax >= config.pipelinePrepareQueueMax);
    assert(config.journalReadsMax >= 1);
    // A do_view_change/request_prepare destination is a bit of a read's u31 mask.
    assert(replicasMax <= 31);
    // A new primary needs its pipeline's prepares cached at once, while the next ones arrive
    // and reads land: below that, view changes could evict what they just read.
    assert(config.prepareCacheMax >= 2 * config.pipelinePrepareQueueMax + config.journalReadsMax);
    assert(config.prepareCacheMax <= config.journalSlotCount);
    assert(isPowerOfTwo(config.kvEntriesMax));
    assert(config.requestHeadersMax >= 1);
    assert(headerSize * config.requestHeadersMax <= config.messageSizeMax - headerSize);
    assert(
        headerSize * (2 * config.pipelinePrepareQueueMax + 1) <= config.messageSizeMax - headerSize,
    );
    assert(config.tickMs > 0);
    // A backup suspects the primary only after several missed heartbeats.
    assert(config.normalHeartbeatTimeoutTicks >= 2 * config.commitMessageTimeoutTicks);
    assert(config.prepareTimeoutTicks < config.normalHeartbeatTimeoutTicks);
    assert(config.backoffTicksMax >= config.prepareTimeoutTicks);
    return config;
}

export function isPowerOfTwo(value: number): boolean {
    return value > 0 && (value & (value - 1)) === 0;
}
