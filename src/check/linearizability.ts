// Linearizability checker for the KV history of a chaos run (see history.ts for the record).
//
// Method: Wing & Gong's search with Lowe's just-in-time linearization, per key. A KV map whose
// operations each touch one key is linearizable iff every key's sub-history is (P-compositionality,
// Horn & Kroening), so each key is searched alone: a few thousand operations instead of all.
// Per key, the call and return events are sorted by time (a call before a return at equal times,
// so touching intervals count as concurrent) into a doubly linked list. The search walks it: at a
// call it tries to linearize that operation now (the register model accepts it from the current
// state), lifting its events out of the list and restarting from the head; at a return whose
// operation is not yet linearized it backtracks (that operation had to take effect before now).
// Memoization: a (set of linearized operations, state) pair already explored is not explored
// again. The set is kept exact and compact: the first known operation not yet linearized (all
// before it are), the linearized known operations after it (they overlap it, so they are few),
// and the linearized unknown ones.
// Unknown outcomes (return null) have a call event and no return: they may be linearized at any
// point after their call or never, so the search ends as soon as every known operation is
// linearized. An unknown get constrains nothing and is dropped; failed operations never happened
// and are dropped. An unknown put whose value nobody read can only matter to a delete's `found`:
// each key is searched first without those, and again with them only if that fails.
// Time limit: the search counts its steps and reads the clock every 1024 of them; past the
// deadline the key's verdict is "unknown", and the history's verdict is false if any key is
// non-linearizable, else "unknown" if any key ran out of time, else true.
// Failure report: at the deepest dead end of a non-linearizable key, the operation whose return
// could not be passed, the operations overlapping it and the write that set the state there: the
// smallest window that shows the violation (what `--html` marks).

import { type HistoryOp, outcome } from "./history.js";

export type Verdict = true | false | "unknown";

export interface CheckOptions {
    readonly timeLimitMs: number;
    /** Milliseconds from a monotonic clock (injected so tests can run the clock out). */
    readonly nowMs?: () => number;
}

export interface CheckFailure {
    readonly key: string;
    /** The operation (index into the history) that could not be linearized before its return. */
    readonly stuckIndex: number;
    /** The failing window: indexes into the history, in call order. */
    readonly opIndexes: readonly number[];
    /** The value the key held at the dead end (null: absent). */
    readonly state: string | null;
}

export interface CheckResult {
    readonly linearizable: Verdict;
    readonly keys: number;
    /** Operations searched (ok ones, and unknown puts and deletes). */
    readonly opsChecked: number;
    readonly statesVisited: number;
    readonly failure: CheckFailure | null;
    readonly keysTimedOut: readonly string[];
}

const Kind = { put: 0, get: 1, delete: 2 } as const;
const stepsPerClockRead = 1024;

/** Checks a history (any order of records) against a KV map of registers. */
export function checkLinearizable(
    history: readonly HistoryOp[],
    options: CheckOptions,
): CheckResult {
    const nowMs = options.nowMs ?? (() => performance.now());
    const deadlineMs = nowMs() + options.timeLimitMs;
    const byKey = new Map<string, number[]>();
    for (let index = 0; index < history.length; index++) {
        const op = history[index] as HistoryOp;
        const kind = outcome(op);
        if (kind === "failed") continue;
        if (kind === "unknown" && op.input.op === "get") continue;
        const list = byKey.get(op.input.key);
        if (list === undefined) byKey.set(op.input.key, [index]);
        else list.push(index);
    }
    let opsChecked = 0;
    let statesVisited = 0;
    let failure: CheckFailure | null = null;
    const keysTimedOut: string[] = [];
    for (const [key, indexes] of byKey) {
        opsChecked += indexes.length;
        // First without the unknown puts nobody read (they can only matter to a delete's
        // `found`): if that passes, so does the whole; if not, the whole decides.
        const read = readValues(history, indexes);
        const pruned = indexes.filter((index) => !unreadUnknownPut(history, index, read));
        let search = new KeySearch(history, pruned);
        let verdict = search.run(nowMs, deadlineMs);
        statesVisited += search.statesVisited;
        if (verdict !== true && pruned.length < indexes.length) {
            search = new KeySearch(history, indexes);
            verdict = search.run(nowMs, deadlineMs);
            statesVisited += search.statesVisited;
        }
        if (verdict === "unknown") keysTimedOut.push(key);
        if (verdict === false) {
            failure = search.failure(key);
            break;
        }
    }
    const linearizable: Verdict =
        failure !== null ? false : keysTimedOut.length > 0 ? "unknown" : true;
    return { linearizable, keys: byKey.size, opsChecked, statesVisited, failure, keysTimedOut };
}

function readValues(history: readonly HistoryOp[], indexes: readonly number[]): Set<string> {
    const read = new Set<string>();
    for (const index of indexes) {
        const op = history[index] as HistoryOp;
        const value = op.output?.value ?? null;
        if (op.input.op === "get" && value !== null) read.add(value);
    }
    return read;
}

function unreadUnknownPut(
    history: readonly HistoryOp[],
    index: number,
    read: Set<string>,
): boolean {
    const op = history[index] as HistoryOp;
    return op.input.op === "put" && op.return === null && !read.has(op.input.value as string);
}

/** The search over one key's operations, sorted by call time. */
class KeySearch {
    private readonly history: readonly HistoryOp[];
    /** History index of each operation, in call order. */
    private readonly index: Int32Array;
    private readonly kind: Uint8Array;
    /** put: the value written; get: the value read (interned, 0 = absent). */
    private readonly value: Int32Array;
    /** delete: 1 found, 0 not found, 2 unknown. */
    private readonly found: Uint8Array;
    private readonly known: Uint8Array;
    /** The operations with an unknown outcome, in call order (for the memo key). */
    private readonly unknownOps: Int32Array;
    private readonly call: Float64Array;
    private readonly ret: Float64Array;
    private readonly values: (string | null)[] = [null];
    private readonly count: number;
    // Events: the linked list (head sentinel = eventCount, end = -1).
    private readonly eventOp: Int32Array;
    private readonly eventIsCall: Uint8Array;
    private readonly next: Int32Array;
    private readonly prev: Int32Array;
    private readonly callEvent: Int32Array;
    private readonly returnEvent: Int32Array;
    private readonly head: number;
    // Search state.
    private readonly linearized: Uint8Array;
    private lowWater = 0;
    private knownLeft = 0;
    private state = 0;
    private readonly stackOp: Int32Array;
    private readonly stackState: Int32Array;
    private depth = 0;
    private readonly visited = new Set<string>();
    statesVisited = 0;
    private deepest = -1;
    private stuckOp = -1;
    private stuckState = 0;
    private stuckWriter = -1;

    constructor(history: readonly HistoryOp[], indexes: readonly number[]) {
        this.history = history;
        const sorted = [...indexes].sort(
            (a, b) => (history[a] as HistoryOp).call - (history[b] as HistoryOp).call,
        );
        const count = sorted.length;
        this.count = count;
        this.index = Int32Array.from(sorted);
        this.kind = new Uint8Array(count);
        this.value = new Int32Array(count);
        this.found = new Uint8Array(count);
        this.known = new Uint8Array(count);
        this.call = new Float64Array(count);
        this.ret = new Float64Array(count).fill(Infinity);
        this.linearized = new Uint8Array(count);
        this.stackOp = new Int32Array(count);
        this.stackState = new Int32Array(count);
        this.callEvent = new Int32Array(count);
        this.returnEvent = new Int32Array(count).fill(-1);
        this.decode();
        this.unknownOps = Int32Array.from(
            Array.from({ length: count }, (_, op) => op).filter((op) => this.known[op] === 0),
        );
        const eventCount = count + this.knownLeft;
        this.head = eventCount;
        this.eventOp = new Int32Array(eventCount);
        this.eventIsCall = new Uint8Array(eventCount);
        this.next = new Int32Array(eventCount + 1);
        this.prev = new Int32Array(eventCount + 1);
        this.buildList();
        this.advanceLowWater();
    }

    private decode(): void {
        const interned = new Map<string, number>();
        const intern = (text: string | null): number => {
            if (text === null) return 0;
            let id = interned.get(text);
            if (id === undefined) {
                id = this.values.length;
                this.values.push(text);
                interned.set(text, id);
            }
            return id;
        };
        for (let op = 0; op < this.count; op++) {
            const record = this.history[this.index[op] as number] as HistoryOp;
            const known = outcome(record) === "ok";
            this.kind[op] = Kind[record.input.op];
            this.call[op] = record.call;
            if (known) {
                this.known[op] = 1;
                this.knownLeft++;
                this.ret[op] = record.return as number;
            }
            if (record.input.op === "put") this.value[op] = intern(record.input.value);
            if (record.input.op === "get") this.value[op] = intern(record.output?.value ?? null);
            if (record.input.op === "delete") {
                this.found[op] = known ? (record.output?.found === true ? 1 : 0) : 2;
            }
        }
    }

    private buildList(): void {
        const events: number[] = [];
        for (let op = 0; op < this.count; op++) {
            events.push(op * 2);
            if (this.known[op] === 1) events.push(op * 2 + 1);
        }
        // By time; at equal times a call first (touching intervals are concurrent).
        const time = (event: number): number =>
            event % 2 === 0 ? (this.call[event >> 1] as number) : (this.ret[event >> 1] as number);
        events.sort((a, b) => time(a) - time(b) || (a % 2) - (b % 2) || a - b);
        let previous = this.head;
        for (let position = 0; position < events.length; position++) {
            const event = events[position] as number;
            const op = event >> 1;
            this.eventOp[position] = op;
            this.eventIsCall[position] = event % 2 === 0 ? 1 : 0;
            if (event % 2 === 0) this.callEvent[op] = position;
            else this.returnEvent[op] = position;
            this.next[previous] = position;
            this.prev[position] = previous;
            previous = position;
        }
        this.next[previous] = -1;
    }

    /** True: linearizable; false: not; "unknown": out of time. */
    run(nowMs: () => number, deadlineMs: number): Verdict {
        let cursor = this.next[this.head] as number;
        let steps = 0;
        for (;;) {
            if (this.knownLeft === 0 || cursor === -1) return true;
            steps++;
            if (steps % stepsPerClockRead === 0 && nowMs() > deadlineMs) return "unknown";
            const op = this.eventOp[cursor] as number;
            if (this.eventIsCall[cursor] === 1) {
                if (this.tryLinearize(op)) {
                    cursor = this.next[this.head] as number;
                } else {
                    cursor = this.next[cursor] as number;
                }
                continue;
            }
            // The return of an operation not linearized yet: backtrack.
            this.noteDeadEnd(op);
            if (this.depth === 0) return false;
            const undone = this.undoLast();
            cursor = this.next[this.callEvent[undone] as number] as number;
        }
    }

    /** Applies `op` at the current state if the model allows it and the result is unexplored. */
    private tryLinearize(op: number): boolean {
        const stateAfter = this.step(op);
        if (stateAfter < 0) return false;
        this.mark(op, 1);
        const key = this.memoKey(stateAfter);
        if (this.visited.has(key)) {
            this.mark(op, 0);
            return false;
        }
        this.visited.add(key);
        this.statesVisited++;
        this.stackOp[this.depth] = op;
        this.stackState[this.depth] = this.state;
        this.depth++;
        this.state = stateAfter;
        this.lift(op);
        return true;
    }

    private undoLast(): number {
        this.depth--;
        const op = this.stackOp[this.depth] as number;
        this.state = this.stackState[this.depth] as number;
        this.mark(op, 0);
        this.unlift(op);
        return op;
    }

    /** The register model: the state after `op`, or -1 if `op` cannot happen at this state. */
    private step(op: number): number {
        const kind = this.kind[op];
        if (kind === Kind.put) return this.value[op] as number;
        if (kind === Kind.get) return this.value[op] === this.state ? this.state : -1;
        const found = this.found[op];
        if (found === 2 || (found === 1) === (this.state !== 0)) return 0;
        return -1;
    }

    private mark(op: number, linearized: number): void {
        this.linearized[op] = linearized;
        if (this.known[op] === 0) return;
        this.knownLeft += linearized === 1 ? -1 : 1;
        if (linearized === 0 && op < this.lowWater) this.lowWater = op;
        if (linearized === 1 && op === this.lowWater) this.advanceLowWater();
    }

    private advanceLowWater(): void {
        while (
            this.lowWater < this.count &&
            (this.known[this.lowWater] === 0 || this.linearized[this.lowWater] === 1)
        ) {
            this.lowWater++;
        }
    }

    private memoKey(state: number): string {
        let key = `${state}|${this.lowWater}`;
        const limit = this.lowWater < this.count ? (this.ret[this.lowWater] as number) : Infinity;
        for (let op = this.lowWater + 1; op < this.count && this.call[op]! <= limit; op++) {
            if (this.known[op] === 1 && this.linearized[op] === 1) key += `,${op}`;
        }
        key += "|";
        for (let index = 0; index < this.unknownOps.length; index++) {
            const op = this.unknownOps[index] as number;
            if (this.linearized[op] === 1) key += `${op},`;
        }
        return key;
    }

    private lift(op: number): void {
        this.unlink(this.callEvent[op] as number);
        const event = this.returnEvent[op] as number;
        if (event >= 0) this.unlink(event);
    }

    /** Re-inserts in the reverse order of lift (dancing links: the neighbours are unchanged). */
    private unlift(op: number): void {
        const event = this.returnEvent[op] as number;
        if (event >= 0) this.relink(event);
        this.relink(this.callEvent[op] as number);
    }

    private unlink(event: number): void {
        const before = this.prev[event] as number;
        const after = this.next[event] as number;
        this.next[before] = after;
        if (after !== -1) this.prev[after] = before;
    }

    private relink(event: number): void {
        const before = this.prev[event] as number;
        const after = this.next[event] as number;
        this.next[before] = event;
        if (after !== -1) this.prev[after] = event;
    }

    private noteDeadEnd(op: number): void {
        if (this.depth <= this.deepest) return;
        this.deepest = this.depth;
        this.stuckOp = op;
        this.stuckState = this.state;
        this.stuckWriter = -1;
        for (let level = this.depth - 1; level >= 0; level--) {
            const candidate = this.stackOp[level] as number;
            if (this.kind[candidate] !== Kind.get) {
                this.stuckWriter = candidate;
                break;
            }
        }
    }

    failure(key: string): CheckFailure {
        const stuck = this.stuckOp;
        const window: number[] = [];
        for (let op = 0; op < this.count; op++) {
            const overlaps =
                this.call[op]! <= this.ret[stuck]! && this.ret[op]! >= this.call[stuck]!;
            if (overlaps || op === this.stuckWriter) window.push(this.index[op] as number);
        }
        return {
            key,
            stuckIndex: this.index[stuck] as number,
            opIndexes: window,
            state: this.values[this.stuckState] ?? null,
        };
    }
}
