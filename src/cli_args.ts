// Helpers shared by the command-line entry points (src/cli.ts, src/client/commands.ts,
// src/client/benchmark.ts): one kind of usage error and one integer-flag parser, so every
// command words and exits on bad flags the same way.

/** Bad flags or arguments: reported as one line, exit code 2. */
export class UsageError extends Error {}

/** True for the errors parseArgs throws on unknown or malformed flags (a usage error). */
export function isParseArgsError(error: unknown): boolean {
    return (
        error instanceof Error &&
        "code" in error &&
        typeof error.code === "string" &&
        error.code.startsWith("ERR_PARSE_ARGS")
    );
}

/** An unsigned integer flag within [min, max], or null when absent. */
export function integerFlag(name: string, text: unknown, min: number, max: number): number | null {
    if (text === undefined) return null;
    if (typeof text !== "string" || !/^[0-9]+$/.test(text)) {
        throw new UsageError(`--${name} must be an unsigned integer, got '${String(text)}'`);
    }
    const value = Number(text);
    if (!Number.isSafeInteger(value) || value < min || value > max) {
        throw new UsageError(`--${name} must be between ${min} and ${max}, got '${text}'`);
    }
    return value;
}
