// The simulator's clock checks (observers, like src/sim/checkers.ts, reporting through its fail):
//
// - Timestamps: committed prepares carry strictly increasing timestamps. Ops are first committed
//   in op order (the commit checker asserts it), so comparing each new op with the previous one
//   covers the whole committed log, across view changes, restarts and clock jumps.
// - Cluster time: while fewer clocks are bad than a replication quorum (so every quorum that can
//   agree holds a good clock), every synchronized replica's realtimeSynchronizedUs() is within
//   its clock's error bound (tolerance + 2 × widest sample delay) plus the worst error of a good
//   clock so far of the true simulated time. Bad clocks are the jumping and the far-off ones;
//   good clocks only carry their initial offset and drift. Under the same condition no committed
//   timestamp is ahead of true time by more than any synchronized reading can be (tolerance max
//   plus a round trip, at most windowMax, plus a good clock's error): a far-off primary's clock
//   never reaches the log.

import { assert } from "../stdx/assert.js";
import { clockOffsetToleranceMaxUs, clockWindowMaxUs } from "../vsr/clock.js";
import { Prepare } from "../vsr/header.js";
import type { Message } from "../vsr/message_pool.js";
import type { Replica } from "../vsr/replica.js";
import { Status } from "../vsr/replica.js";
import { type SimTime, epochUs } from "./time.js";

/** Cluster time is checked every this many ticks (reading it is not free). */
const syncCheckIntervalTicks = 10;

export class ClockChecker {
    private readonly times: readonly SimTime[];
    /** Per replica: 1 when its clock may jump or is far off. */
    private readonly clockBad: Uint8Array;
    private readonly fail: (reason: string) => void;
    /** True when every quorum of clocks holds a good one, so cluster time must be accurate. */
    readonly quorumGood: boolean;
    private opLast = 0;
    /** The timestamp of the latest op committed (the log's time). */
    timestampLastUs = 0;
    /** The worst |error| of any good clock so far. */
    private goodErrorMaxUs = 0;
    private ticks = 0;
    /** Cluster-time readings compared with true time (coverage for tests). */
    syncChecks = 0;
    timestampChecks = 0;

    constructor(
        times: readonly SimTime[],
        clockBad: Uint8Array,
        quorum: number,
        fail: (reason: string) => void,
    ) {
        assert(times.length === clockBad.length);
        assert(quorum >= 1 && quorum <= times.length);
        this.times = times;
        this.clockBad = clockBad;
        this.fail = fail;
        let bad = 0;
        for (let index = 0; index < clockBad.length; index++) bad += clockBad[index]!;
        this.quorumGood = bad < quorum;
    }

    /** A replica committed `op` (from the replica's onCommit hook). */
    onCommit(op: number, prepare: Message, view: DataView): void {
        if (op <= this.opLast) return; // Committed before: the commit checker compares checksums.
        // Read here, not through readU64 or SimTime methods: a timestamp (> 2^31) returned from a
        // call the compiler did not inline is a heap number, and the zero-GC test counts those.
        const timestampOffset = prepare.offset + Prepare.timestamp;
        const timestampUs =
            view.getUint32(timestampOffset, true) +
            view.getUint32(timestampOffset + 4, true) * 0x1_0000_0000;
        // The commit checker fails a first commit out of op order; this check needs no gap.
        if (op === this.opLast + 1 && timestampUs <= this.timestampLastUs) {
            const how = timestampUs === this.timestampLastUs ? "repeats" : "goes back from";
            this.fail(
                `op ${op} timestamp ${timestampUs} ${how} op ${this.opLast} timestamp ` +
                    `${this.timestampLastUs}: prepare timestamps must strictly increase`,
            );
        }
        const time = this.times[0]!;
        const aheadUs = timestampUs - (epochUs + time.ticks * time.tickUs);
        const aheadMaxUs = clockOffsetToleranceMaxUs + clockWindowMaxUs + this.goodErrorMaxUs;
        if (this.quorumGood && aheadUs > aheadMaxUs) {
            this.fail(`op ${op} timestamp is ${aheadUs} us ahead of true time (max ${aheadMaxUs})`);
        }
        this.opLast = op;
        this.timestampLastUs = timestampUs;
        this.timestampChecks++;
    }

    /** After every cluster tick. */
    tick(replicas: readonly Replica[], up: Uint8Array): void {
        this.ticks++;
        for (let index = 0; index < this.times.length; index++) {
            if (this.clockBad[index] === 1) continue;
            const errorUs = Math.abs(this.times[index]!.errorUs());
            if (errorUs > this.goodErrorMaxUs) this.goodErrorMaxUs = errorUs;
        }
        if (!this.quorumGood || this.ticks % syncCheckIntervalTicks !== 0) return;
        for (let index = 0; index < replicas.length; index++) {
            const replica = replicas[index]!;
            if (up[index] === 0 || replica.status === Status.recovering) continue;
            this.checkSynchronized(index, replica);
        }
    }

    private checkSynchronized(index: number, replica: Replica): void {
        // Fields, not return values: no heap number per reading (the zero-GC test counts these).
        if (!replica.clock.readSynchronized()) return;
        const time = this.times[index]!;
        const errorUs = replica.clock.synchronizedUs[0]! - (epochUs + time.ticks * time.tickUs);
        const boundUs = replica.clock.errorBoundUs() + this.goodErrorMaxUs;
        this.syncChecks++;
        if (Math.abs(errorUs) > boundUs) {
            this.fail(
                `replica ${index} cluster time is ${errorUs} us from true time ` +
                    `(bound ${boundUs} us) although a quorum of clocks is good`,
            );
        }
    }
}
