// Helpers shared by the command-line entry points (src/cli.ts, src/client/commands.ts,
// src/client/benchmark.ts): recognizing node:util parseArgs's own usage errors.

/** True for the errors parseArgs throws on unknown or malformed flags (a usage error). */
export function isParseArgsError(error: unknown): boolean {
    return (
        error instanceof Error &&
        "code" in error &&
        typeof error.code === "string" &&
        error.code.startsWith("ERR_PARSE_ARGS")
    );
}
