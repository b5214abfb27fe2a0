// The history of a chaos run: one record per client operation on the KV store, as written to the
// `--history` file (one JSON object per line) and read by the linearizability checker.
//
// Record: {client_id, input: {op, key, value}, output: {value, ok, found?} | null, call, return}.
// `call` and `return` are monotonic nanoseconds since the start of the run (numbers: a run of a
// day is 8.6e13 ns, far below 2^53). Outcomes:
//   ok      return set, output.ok true: the operation took effect exactly once between call and
//           return. get: output.value is what it read (null: absent). delete: output.found says
//           whether the key existed.
//   failed  return set, output.ok false: the operation certainly did not take effect (refused
//           before it was sent, or rejected by the state machine). The checker ignores it.
//   unknown return null, output null (timeout, connection lost, session evicted): the operation
//           may have taken effect at any time after its call, or never.
// Nemesis records ({nemesis: kind, detail, start, end}) and replica status samples
// ({replica_status: {...}}) may share the file; they carry no client_id and the checker skips
// them.

export type OpKind = "put" | "get" | "delete";

export interface OpInput {
    readonly op: OpKind;
    readonly key: string;
    /** The value written by a put; null for get and delete. */
    readonly value: string | null;
}

export interface OpOutput {
    /** get: the value read (null: absent); put and delete: null. */
    readonly value: string | null;
    readonly ok: boolean;
    /** delete only: whether the key existed. */
    readonly found?: boolean;
}

export interface HistoryOp {
    readonly client_id: number;
    readonly input: OpInput;
    readonly output: OpOutput | null;
    readonly call: number;
    readonly return: number | null;
}

export interface NemesisRecord {
    readonly nemesis: string;
    readonly detail: string;
    readonly start: number;
    readonly end: number | null;
}

export type Outcome = "ok" | "failed" | "unknown";

export function outcome(op: HistoryOp): Outcome {
    if (op.return === null || op.output === null) return "unknown";
    return op.output.ok ? "ok" : "failed";
}

/** Parses a history file's text (JSON lines); nemesis records are returned apart. */
export function parseHistory(text: string): { ops: HistoryOp[]; nemesis: NemesisRecord[] } {
    const ops: HistoryOp[] = [];
    const nemesis: NemesisRecord[] = [];
    const lines = text.split("\n");
    for (let index = 0; index < lines.length; index++) {
        const line = (lines[index] as string).trim();
        if (line === "") continue;
        let record: unknown;
        try {
            record = JSON.parse(line);
        } catch {
            throw new Error(`history line ${index + 1} is not JSON`);
        }
        if (typeof record !== "object" || record === null) {
            throw new Error(`history line ${index + 1} is not an object`);
        }
        if ("replica_status" in record) continue; // Samples of /status, for people.
        if ("nemesis" in record) nemesis.push(record as NemesisRecord);
        else ops.push(validOp(record as HistoryOp, index + 1));
    }
    return { ops, nemesis };
}

function validOp(op: HistoryOp, line: number): HistoryOp {
    const bad = (what: string): never => {
        throw new Error(`history line ${line}: ${what}`);
    };
    if (!Number.isInteger(op.client_id)) bad("client_id is not an integer");
    if (typeof op.input !== "object" || op.input === null) bad("input is missing");
    if (!["put", "get", "delete"].includes(op.input.op)) bad("input.op is not put/get/delete");
    if (typeof op.input.key !== "string") bad("input.key is not a string");
    if (op.input.op === "put" && typeof op.input.value !== "string") bad("put without a value");
    if (typeof op.call !== "number") bad("call is not a number");
    if (op.return !== null && typeof op.return !== "number") bad("return is not a number");
    if (op.return !== null && op.return < op.call) bad("return precedes call");
    if ((op.return === null) !== (op.output === null)) bad("output and return disagree");
    if (op.output !== null && op.input.op === "delete" && op.output.ok) {
        if (typeof op.output.found !== "boolean") bad("a delete without output.found");
    }
    return op;
}
