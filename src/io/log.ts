// The node's log: one JSON object per line on stderr, one line per event worth knowing (view
// change, recovery, repair, state sync, checkpoint, peer up/down, dropped message, I/O error),
// filtered by a minimum level (`vsr start --log-level`). Every line has `time` (ISO 8601),
// `level`, `event` (a stable snake_case name to alert or grep on), `msg` (for people) and the
// replica's index; events may add fields. Nothing here is on a hot path: callers log rare events
// and rate-limit the ones a peer or a client could repeat (drops at the 1st, 2nd, 4th… time).
// A line is built with JSON.stringify, so no message or field can break the framing.

export const logLevels = ["debug", "info", "warn", "error"] as const;
export type LogLevel = (typeof logLevels)[number];
export type LogThreshold = LogLevel | "silent";
export const logThresholds: readonly LogThreshold[] = [...logLevels, "silent"];

export type LogFields = Readonly<Record<string, string | number | boolean | null>>;

/**
 * What the node's parts call. The message alone is enough (event "log", level info), so a test
 * can pass `(line) => lines.push(line)`.
 */
export type LogFn = (message: string, event?: string, level?: LogLevel, fields?: LogFields) => void;

export class JsonLog {
    private readonly thresholdRank: number;
    private readonly replica: number | null;
    private readonly write: (line: string) => void;
    /** Bound once: hand it to the bus and storage as their LogFn. */
    readonly log: LogFn;

    constructor(threshold: LogThreshold, replica: number | null, write: (line: string) => void) {
        this.thresholdRank = logThresholds.indexOf(threshold);
        this.replica = replica;
        this.write = write;
        this.log = (message, event = "log", level = "info", fields) => {
            if (logLevels.indexOf(level) < this.thresholdRank) return;
            const line = {
                time: new Date().toISOString(),
                level,
                event,
                replica: this.replica,
                msg: message,
                ...fields,
            };
            this.write(`${JSON.stringify(line)}\n`);
        };
    }
}
