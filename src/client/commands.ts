// The `vsr client` and `vsr load` commands: flag parsing (node:util parseArgs, strict), the
// one-shot put/get/delete, the REPL, and the load generator's report. Both return an exit code
// and never throw for bad input: 0 success, 1 an operating failure (cluster unreachable, timeout,
// eviction, table full, lost writes), 2 a usage error (flags, key or value size). Every failure
// is one line on stderr naming what is wrong.

import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import { production } from "../constants.js";
import { Client, ClientError, checkKey, checkValue, eventsPerRequestMax } from "./client.js";
import { type LoadOptions, type LoadResult, runLoad } from "./load.js";
import { WebSocketTransport, addressUrl } from "./transport.js";
import { UsageError, integerFlag, runSubcommand } from "../cli_args.js";

const clientUsage = `usage:
  vsr client --cluster=<u32> --addresses=<host:port,...> put <key> <value...>
  vsr client --cluster=<u32> --addresses=<host:port,...> get <key>
  vsr client --cluster=<u32> --addresses=<host:port,...> delete <key>
  vsr client --cluster=<u32> --addresses=<host:port,...>     (no command: a REPL on stdin)
  --cluster: the id given to vsr format (required: a replica of another cluster refuses us)
  --addresses: every replica's host:port, in replica order (as given to vsr start)
  --timeout-ms=T: give up on a call after T ms (default 5000)
  --message-size-max=M: the cluster's message size bound (default: the production preset's)
  A value is the rest of the line (UTF-8, at most 64 bytes); a key is 1..32 bytes.`;

const loadUsage = `usage:
  vsr load --cluster=<u32> --addresses=<host:port,...> [--clients=N] [--batch=B]
           [--duration-s=S | --requests=R] [--value-bytes=V] [--json] [--verify]
           [--timeout-ms=T] [--keys-per-client=K] [--message-size-max=M]
  Closed-loop load: N clients (1..4096), each with one request of B events in flight, for S
  seconds (default 10) or R requests in all. Prints throughput and latency percentiles;
  --json prints one JSON object; --verify reads back every acknowledged write at the end.`;

const replHelp = `commands:
  put <key> <value>   store a value (the rest of the line, UTF-8)
  get <key>           print the value, or (not found)
  delete <key>        remove a key
  help                this text
  quit                leave`;

interface CommonFlags {
    readonly addresses: string[];
    readonly cluster: number;
    readonly timeoutMs: number;
    /** The cluster's messageSizeMax (it bounds the events per request). */
    readonly messageSizeMax: number;
}

const commonOptions = {
    addresses: { type: "string" },
    cluster: { type: "string" },
    "timeout-ms": { type: "string" },
    "message-size-max": { type: "string" },
} as const;

function commonFlags(values: Record<string, unknown>, timeoutMsDefault: number): CommonFlags {
    const text = values["addresses"];
    if (typeof text !== "string" || text.trim() === "") {
        throw new UsageError("--addresses=<host:port,...> is required");
    }
    const addresses = text.split(",").map((address) => address.trim());
    for (const address of addresses) {
        try {
            addressUrl(address);
        } catch {
            throw new UsageError(`--addresses: '${address}' is not host:port`);
        }
    }
    const cluster = integerFlag("cluster", values["cluster"], 0, 0xffff_ffff);
    if (cluster === null) {
        throw new UsageError("--cluster=<u32> is required (the id given to vsr format)");
    }
    const messageSizeMax =
        integerFlag("message-size-max", values["message-size-max"], 4096, 16 * 1024 * 1024) ??
        production.messageSizeMax;
    if (messageSizeMax % 4096 !== 0) {
        throw new UsageError(
            `--message-size-max must be a multiple of 4096, got ${messageSizeMax}`,
        );
    }
    return {
        addresses,
        messageSizeMax,
        cluster,
        timeoutMs:
            integerFlag("timeout-ms", values["timeout-ms"], 1, 3_600_000) ?? timeoutMsDefault,
    };
}

function createClient(flags: CommonFlags): Client {
    const messageSizeMax = flags.messageSizeMax;
    return new Client({
        transport: new WebSocketTransport({ addresses: flags.addresses, messageSizeMax }),
        cluster: flags.cluster,
        messageSizeMax,
        callTimeoutMs: flags.timeoutMs,
    });
}

/** Runs `body` as subcommand `name`; key or value size errors are usage errors too (exit 2). */
function withUsage(
    name: string,
    usage: string,
    args: readonly string[],
    body: () => Promise<number>,
): Promise<number> {
    return runSubcommand(name, usage, args, async () => {
        try {
            return await body();
        } catch (error) {
            if (
                error instanceof ClientError &&
                (error.code === "KEY_SIZE" || error.code === "VALUE_SIZE")
            ) {
                process.stderr.write(`vsr ${name}: ${error.message}\n`);
                return 2;
            }
            throw error;
        }
    });
}

// ---------------------------------------------------------------------------------------------
// vsr client

export function commandClient(args: string[]): Promise<number> {
    return withUsage("client", clientUsage, args, async () => {
        const { values, positionals } = parseArgs({
            args,
            options: commonOptions,
            allowPositionals: true,
            strict: true,
        });
        const flags = commonFlags(values, 5000);
        if (positionals.length === 0) return repl(flags);
        const operation = parseOperation(positionals);
        const client = createClient(flags);
        try {
            const output = await runOperation(client, operation);
            process.stdout.write(`${output}\n`);
            return 0;
        } catch (error) {
            return reportFailure("client", flags, error);
        } finally {
            client.close();
        }
    });
}

interface Operation {
    readonly name: "put" | "get" | "delete";
    readonly key: Uint8Array;
    readonly value: Uint8Array | null;
}

/**
 * Validates the words of one command (sizes included) before anything is sent. A put's value is
 * every word after the key joined by one space, as the REPL takes the rest of its line.
 */
function parseOperation(words: readonly string[]): Operation {
    const [name, key, ...rest] = words;
    if (name === "put" && key !== undefined && rest.length >= 1) {
        return { name, key: checkKey(key), value: checkValue(rest.join(" ")) };
    }
    if ((name === "get" || name === "delete") && key !== undefined && rest.length === 0) {
        return { name, key: checkKey(key), value: null };
    }
    throw new UsageError(`expected put <key> <value>, get <key> or delete <key>`);
}

async function runOperation(client: Client, operation: Operation): Promise<string> {
    switch (operation.name) {
        case "put":
            await client.put(operation.key, operation.value!);
            return "ok";
        case "get": {
            const value = await client.get(operation.key);
            return value === null ? "(not found)" : printable(value);
        }
        case "delete":
            return (await client.delete(operation.key)) ? "deleted" : "(not found)";
    }
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** A value as UTF-8 text when it is valid UTF-8 without control characters, else 0x<hex>. */
function printable(value: Uint8Array): string {
    try {
        const text = utf8.decode(value);
        if (!/[\u0000-\u001f\u007f]/.test(text)) return text;
    } catch {
        // Not UTF-8: fall through to hex.
    }
    return `0x${Buffer.from(value).toString("hex")}`;
}

function failureMessage(flags: CommonFlags, error: unknown): string {
    if (!(error instanceof ClientError)) return String(error);
    switch (error.code) {
        case "UNREACHABLE":
            return `no replica reachable at ${flags.addresses.join(",")}`;
        case "TIMEOUT":
            return (
                `no reply within ${flags.timeoutMs} ms ` +
                `(is the cluster up, and is its id ${flags.cluster}?)`
            );
        case "WRONG_CLUSTER":
            return error.message;
        default:
            return `${error.code}: ${error.message}`;
    }
}

function reportFailure(name: string, flags: CommonFlags, error: unknown): number {
    process.stderr.write(`vsr ${name}: ${failureMessage(flags, error)}\n`);
    return 1;
}

/** A small REPL: one command per line, each answered or failed on one line. */
async function repl(flags: CommonFlags): Promise<number> {
    const client = createClient(flags);
    const interactive = process.stdin.isTTY === true;
    const lines = createInterface({
        input: process.stdin,
        output: process.stdout,
        terminal: interactive,
    });
    if (interactive) lines.setPrompt("vsr> ");
    if (interactive) lines.prompt();
    try {
        for await (const line of lines) {
            if (!(await replLine(client, flags, line))) break;
            if (interactive) lines.prompt();
        }
    } finally {
        lines.close();
        client.close();
    }
    return 0;
}

/** Runs one REPL line; false to quit. */
async function replLine(client: Client, flags: CommonFlags, line: string): Promise<boolean> {
    const text = line.trim();
    if (text === "") return true;
    if (text === "quit" || text === "exit") return false;
    if (text === "help") {
        process.stdout.write(`${replHelp}\n`);
        return true;
    }
    const match = /^(\S+)(?:\s+(\S+))?(?:\s+(.*))?$/.exec(text);
    const words = [match?.[1], match?.[2], match?.[3]].filter(
        (word): word is string => word !== undefined,
    );
    try {
        const output = await runOperation(client, parseOperation(words));
        process.stdout.write(`${output}\n`);
    } catch (error) {
        if (error instanceof UsageError) process.stderr.write(`${error.message} (try help)\n`);
        else process.stderr.write(`${failureMessage(flags, error)}\n`);
    }
    return true;
}

// ---------------------------------------------------------------------------------------------
// vsr load

export function commandLoad(args: string[]): Promise<number> {
    return withUsage("load", loadUsage, args, async () => {
        const { values } = parseArgs({
            args,
            options: {
                ...commonOptions,
                clients: { type: "string" },
                batch: { type: "string" },
                "duration-s": { type: "string" },
                requests: { type: "string" },
                "value-bytes": { type: "string" },
                "keys-per-client": { type: "string" },
                json: { type: "boolean" },
                verify: { type: "boolean" },
            },
            allowPositionals: false,
            strict: true,
        });
        const flags = commonFlags(values, 30_000);
        const options = loadOptions(values, flags);
        const loaded = await runLoad(options, () => createClient(flags));
        return printLoad(flags, options, loaded, values.json === true);
    });
}

function loadOptions(values: Record<string, unknown>, flags: CommonFlags): LoadOptions {
    const durationS = integerFlag("duration-s", values["duration-s"], 1, 86_400);
    const requests = integerFlag("requests", values["requests"], 1, 2 ** 31);
    if (durationS !== null && requests !== null) {
        throw new UsageError("--duration-s and --requests are exclusive");
    }
    const batchMax = eventsPerRequestMax(flags.messageSizeMax);
    const progress = process.stderr.isTTY === true && values["json"] !== true;
    return {
        clients: integerFlag("clients", values["clients"], 1, 4096) ?? 1,
        batch: integerFlag("batch", values["batch"], 1, batchMax) ?? 1,
        durationS: requests === null ? (durationS ?? 10) : null,
        requests,
        valueBytes: integerFlag("value-bytes", values["value-bytes"], 0, 64) ?? 16,
        verify: values["verify"] === true,
        keysPerClient:
            integerFlag("keys-per-client", values["keys-per-client"], 1, 2 ** 31) ?? 1024,
        // A cluster just started may still be electing its first primary (seconds on a loaded
        // machine): registration gets up to 15 s, or --timeout-ms if shorter.
        warmupTimeoutMs: Math.min(flags.timeoutMs, 15_000),
        progress: progress ? (line) => process.stderr.write(`\r\u001b[K${line}`) : null,
    };
}

function printLoad(
    flags: CommonFlags,
    options: LoadOptions,
    loaded: LoadResult,
    json: boolean,
): number {
    const report = loaded.report;
    if (options.progress !== null) process.stderr.write("\r\u001b[K");
    if (loaded.unreachable) {
        process.stderr.write(
            `vsr load: no session could register with ${flags.addresses.join(",")}\n`,
        );
    }
    const codes = Object.entries(loaded.errorCodes)
        .map(([code, count]) => `${code}=${count}`)
        .join(" ");
    if (json) {
        process.stdout.write(`${JSON.stringify(report)}\n`);
        // stdout keeps the contract's keys; what the errors were goes to stderr.
        if (codes !== "") process.stderr.write(`vsr load: errors ${codes}\n`);
    } else {
        const latency = report.latency_us;
        process.stdout.write(
            `clients ${options.clients}  batch ${options.batch}  seconds ${report.seconds}\n` +
                `ops ${report.ops}  ops/s ${report.ops_per_s}  errors ${report.errors}` +
                (codes === "" ? "" : ` (${codes})`) +
                `\nlatency us  p50 ${latency.p50}  p99 ${latency.p99}  p999 ${latency.p999}` +
                `  max ${latency.max}\n`,
        );
        if (report.lost !== undefined) {
            process.stdout.write(
                `verify  acked ${report.acked}  verified ${report.verified}  lost ${report.lost}\n`,
            );
        }
    }
    if ((loaded.errorCodes["TABLE_FULL"] ?? 0) > 0) {
        // Every put of a new key fails once the table holds 7/8 of its capacity: say why.
        process.stderr.write(
            "vsr load: the cluster's KV table is full (its capacity is chosen at format time: " +
                `vsr format --kv-entries=<n>)` +
                (options.verify ? "; --verify writes a new key per put\n" : "\n"),
        );
    }
    if ((report.lost ?? 0) > 0) {
        process.stderr.write(`vsr load: ${report.lost} acknowledged writes were lost\n`);
        return 1;
    }
    return loaded.unreachable || report.ops === 0 ? 1 : 0;
}
