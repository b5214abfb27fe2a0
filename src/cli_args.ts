// Helpers shared by the command-line entry points (src/cli.ts, src/client/commands.ts,
// src/client/benchmark.ts): one kind of usage error, one integer-flag parser, and one wrapper
// that gives every subcommand the same --help/-h and the same one-line usage errors (exit 2,
// naming what is wrong and pointing at `vsr <command> --help` instead of printing the usage).

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

/** True when the arguments ask for help: --help or -h before any `--` terminator. */
export function wantsHelp(args: readonly string[]): boolean {
    for (const arg of args) {
        if (arg === "--") return false;
        if (arg === "--help" || arg === "-h") return true;
    }
    return false;
}

/**
 * The one line printed for a usage error of `vsr <name>`. parseArgs appends a paragraph of
 * advice to some messages ("To specify a positional argument…"): only its first sentence is kept.
 */
export function usageErrorLine(name: string, error: Error): string {
    const message = isParseArgsError(error) ? firstSentence(error.message) : error.message;
    return `vsr ${name}: ${message} (see vsr ${name} --help)\n`;
}

function firstSentence(text: string): string {
    const end = text.indexOf(". ");
    return end < 0 ? text : text.slice(0, end);
}

/**
 * Runs one subcommand: `--help`/`-h` prints its usage on stdout (exit 0); a usage error
 * (UsageError or a parseArgs error) prints one line on stderr (exit 2). Other errors propagate.
 */
export async function runSubcommand(
    name: string,
    usage: string,
    args: readonly string[],
    body: () => number | Promise<number>,
): Promise<number> {
    if (wantsHelp(args)) {
        process.stdout.write(`${usage}\n`);
        return 0;
    }
    try {
        return await body();
    } catch (error) {
        if (error instanceof UsageError || isParseArgsError(error)) {
            process.stderr.write(usageErrorLine(name, error as Error));
            return 2;
        }
        throw error;
    }
}
