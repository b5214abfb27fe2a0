#!/usr/bin/env node
// The `vsr` command line: argument parsing (node:util parseArgs, strict) into a validated command,
// then dispatch. Bad input gets a one-line error naming what is wrong and exit code 2; a failed
// simulation exits 1 with its reproduction command.

import { parseArgs } from "node:util";
import { runSimulation, defaultSimOptions, type SimResult } from "./sim/vopr.js";

const usage = `usage:
  vsr sim --seed=<n> [--ticks=T] [--replicas=N] [--clients=C] [--json]`;

class UsageError extends Error {}

function main(argv: string[]): number {
    const command = argv[0];
    try {
        switch (command) {
            case "sim":
                return commandSim(argv.slice(1));
            case "help":
            case "--help":
            case undefined:
                process.stdout.write(usage + "\n");
                return command === undefined ? 2 : 0;
            default:
                throw new UsageError(`unknown command '${command}'`);
        }
    } catch (error) {
        if (error instanceof UsageError || isParseArgsError(error)) {
            process.stderr.write(`vsr: ${(error as Error).message}\n${usage}\n`);
            return 2;
        }
        throw error;
    }
}

function isParseArgsError(error: unknown): boolean {
    return (
        error instanceof Error &&
        "code" in error &&
        typeof error.code === "string" &&
        error.code.startsWith("ERR_PARSE_ARGS")
    );
}

function integerFlag(
    name: string,
    text: string | undefined,
    min: number,
    max: number,
): number | null {
    if (text === undefined) return null;
    if (!/^[0-9]+$/.test(text))
        throw new UsageError(`--${name} must be an unsigned integer, got '${text}'`);
    const value = Number(text);
    if (!Number.isSafeInteger(value) || value < min || value > max) {
        throw new UsageError(`--${name} must be between ${min} and ${max}, got '${text}'`);
    }
    return value;
}

function commandSim(args: string[]): number {
    const { values, positionals } = parseArgs({
        args,
        strict: true,
        allowPositionals: true,
        options: {
            seed: { type: "string" },
            ticks: { type: "string" },
            replicas: { type: "string" },
            clients: { type: "string" },
            json: { type: "boolean", default: false },
        },
    });
    if (positionals.length > 0) throw new UsageError(`unexpected argument '${positionals[0]}'`);
    const seed = integerFlag("seed", values.seed, 0, Number.MAX_SAFE_INTEGER);
    if (seed === null) throw new UsageError("--seed is required");
    const defaults = defaultSimOptions(seed);
    const ticks = integerFlag("ticks", values.ticks, 0, 1e9) ?? defaults.ticks;
    const replicaCount = integerFlag("replicas", values.replicas, 1, 6);
    const clientCount = integerFlag("clients", values.clients, 1, 1000);
    const result = runSimulation({ ...defaults, ticks, replicaCount, clientCount });
    const reproduce =
        "vsr sim --seed=" +
        seed +
        (values.ticks !== undefined ? ` --ticks=${ticks}` : "") +
        (replicaCount !== null ? ` --replicas=${replicaCount}` : "") +
        (clientCount !== null ? ` --clients=${clientCount}` : "");
    if (values.json) {
        process.stdout.write(JSON.stringify(toJson(result)) + "\n");
    } else {
        printHuman(result, reproduce);
    }
    return result.result === "pass" ? 0 : 1;
}

function toJson(result: SimResult): Record<string, unknown> {
    return {
        seed: result.seed,
        result: result.result,
        reason: result.reason,
        ticks: result.ticks,
        replicas: result.replicas,
        clients: result.clients,
        ops_committed: result.opsCommitted,
        requests_completed: result.requestsCompleted,
        replies_checked: result.repliesChecked,
        view_changes: result.viewChanges,
        replicas_awaiting_sync: result.replicasAwaitingSync,
        faults: result.faults,
        fingerprint: result.fingerprint,
    };
}

function printHuman(result: SimResult, reproduce: string): void {
    const out = process.stdout;
    out.write(
        `seed=${result.seed} replicas=${result.replicas} clients=${result.clients} ` +
            `ticks=${result.ticks}\n`,
    );
    out.write(
        `ops_committed=${result.opsCommitted} requests_completed=${result.requestsCompleted} ` +
            `replies_checked=${result.repliesChecked} view_changes=${result.viewChanges} ` +
            `replicas_awaiting_sync=${result.replicasAwaitingSync}\n`,
    );
    const faults = Object.entries(result.faults)
        .map(([name, count]) => `${name}=${count}`)
        .join(" ");
    out.write(`faults: ${faults}\n`);
    if (result.result === "pass") {
        out.write("result=pass\n");
    } else {
        out.write(`result=${result.result} check: ${result.reason}\n`);
        out.write(`reproduce: ${reproduce}\n`);
    }
    out.write(`fingerprint=${result.fingerprint}\n`);
}

process.exitCode = main(process.argv.slice(2));
