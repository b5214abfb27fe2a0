// Protocol-aware recovery of the WAL at start-up. For every slot we read the redundant header
// (H, from the headers ring) and the prepare (P, from the prepares ring), classify each as
// reserved (all zero: never written), invalid (bad checksum, wrong cluster or wrong slot: torn,
// corrupt or misdirected) or valid, and look the pair up in the decision table below. The table
// is data, with one test per row (test/vsr/journal_recovery.test.ts).
//
// Decisions:
//   clean   H and P agree: the slot holds P.
//   fix     P is valid and H merely stale or unreadable: the slot holds P (H is rewritten later).
//   faulty  the slot may hold an op this replica acknowledged, but its prepare cannot be read:
//           it is repaired from peers and never nacked in a view change (a faulty slot might
//           have been acked). When H is valid its header is known and the repair targets it.
//   empty   nothing was ever written here.
// A faulty slot whose op cannot be known and whose position lies beyond the recovered head is a
// torn tail (a write in flight at the crash): outside the log, like any op above the head.

import { assert } from "../stdx/assert.js";

export const SlotKind = { reserved: 0, invalid: 1, valid: 2 } as const;
export type SlotKind = (typeof SlotKind)[keyof typeof SlotKind];

export const Decision = { empty: 0, clean: 1, fix: 2, faulty: 3 } as const;
export type Decision = (typeof Decision)[keyof typeof Decision];

/** How two valid entries relate (only when both H and P are valid). */
export const Relation = {
    none: 0,
    identical: 1,
    headerOlder: 2,
    headerNewer: 3,
    sameOpDifferent: 4,
} as const;
export type Relation = (typeof Relation)[keyof typeof Relation];

export interface RecoveryCase {
    readonly label: string;
    readonly header: SlotKind;
    readonly prepare: SlotKind;
    readonly relation: Relation;
    /** Only for (H invalid, P valid): whether P's op is the highest op seen in the WAL. */
    readonly prepareOpMax: boolean | null;
    /** Decision with several replicas (peers can repair), and with one (nobody can). */
    readonly decision: Decision;
    readonly decisionSolo: Decision;
    readonly why: string;
}

const { reserved, invalid, valid } = SlotKind;
const { empty, clean, fix, faulty } = Decision;
const any = null;

/** The decision table (after TigerBeetle's recovery cases @A–@P, adapted to this journal). */
export const recoveryCases: readonly RecoveryCase[] = [
    {
        label: "@A",
        header: invalid,
        prepare: invalid,
        relation: Relation.none,
        prepareOpMax: any,
        decision: faulty,
        decisionSolo: faulty,
        why: "both unreadable",
    },
    {
        label: "@B",
        header: reserved,
        prepare: invalid,
        relation: Relation.none,
        prepareOpMax: any,
        decision: faulty,
        decisionSolo: faulty,
        why: "a prepare written (perhaps torn), header not yet",
    },
    {
        label: "@C",
        header: valid,
        prepare: invalid,
        relation: Relation.none,
        prepareOpMax: any,
        decision: faulty,
        decisionSolo: faulty,
        why: "known header, prepare corrupt",
    },
    {
        label: "@D",
        header: invalid,
        prepare: reserved,
        relation: Relation.none,
        prepareOpMax: any,
        decision: faulty,
        decisionSolo: empty,
        why: "header sector corrupt, prepare never written",
    },
    {
        label: "@E",
        header: invalid,
        prepare: valid,
        relation: Relation.none,
        prepareOpMax: false,
        decision: faulty,
        decisionSolo: fix,
        why: "header corrupt below the head: P may be stale",
    },
    {
        label: "@F",
        header: invalid,
        prepare: valid,
        relation: Relation.none,
        prepareOpMax: true,
        decision: fix,
        decisionSolo: fix,
        why: "header corrupt at the head: P is the newest",
    },
    {
        label: "@G",
        header: reserved,
        prepare: valid,
        relation: Relation.none,
        prepareOpMax: any,
        decision: fix,
        decisionSolo: fix,
        why: "crash between prepare write and header write",
    },
    {
        label: "@K",
        header: valid,
        prepare: reserved,
        relation: Relation.none,
        prepareOpMax: any,
        decision: faulty,
        decisionSolo: faulty,
        why: "header claims a prepare that is missing",
    },
    {
        label: "@L",
        header: reserved,
        prepare: reserved,
        relation: Relation.none,
        prepareOpMax: any,
        decision: empty,
        decisionSolo: empty,
        why: "never written",
    },
    {
        label: "@M",
        header: valid,
        prepare: valid,
        relation: Relation.headerOlder,
        prepareOpMax: any,
        decision: fix,
        decisionSolo: fix,
        why: "ring wrapped, header write of the newer op lost",
    },
    {
        label: "@N",
        header: valid,
        prepare: valid,
        relation: Relation.headerNewer,
        prepareOpMax: any,
        decision: faulty,
        decisionSolo: faulty,
        why: "newer header, its prepare lost or misdirected",
    },
    {
        label: "@O",
        header: valid,
        prepare: valid,
        relation: Relation.sameOpDifferent,
        prepareOpMax: any,
        decision: faulty,
        decisionSolo: faulty,
        why: "same op, different content: cannot tell",
    },
    {
        label: "@P",
        header: valid,
        prepare: valid,
        relation: Relation.identical,
        prepareOpMax: any,
        decision: clean,
        decisionSolo: clean,
        why: "identical",
    },
];

/** Looks up the case for a slot; every combination of inputs has exactly one. */
export function recoveryCase(
    header: SlotKind,
    prepare: SlotKind,
    relation: Relation,
    prepareOpMax: boolean,
): RecoveryCase {
    let found: RecoveryCase | null = null;
    for (const row of recoveryCases) {
        if (row.header !== header || row.prepare !== prepare || row.relation !== relation) continue;
        if (row.prepareOpMax !== null && row.prepareOpMax !== prepareOpMax) continue;
        assert(found === null);
        found = row;
    }
    assert(found !== null);
    return found;
}

export function decide(row: RecoveryCase, solo: boolean): Decision {
    return solo ? row.decisionSolo : row.decision;
}
