#!/usr/bin/env node
// The `vsr` command line: argument parsing (node:util parseArgs, strict) into a validated command,
// then dispatch. Bad input gets a one-line error naming what is wrong and exit code 2; a failed
// simulation exits 1 with its reproduction command.

// Journal writes are synchronous O_DSYNC syscalls on libuv's thread pool: its default of four
// threads would cap the writes in flight (set before the pool starts, at the first fs call).
process.env["UV_THREADPOOL_SIZE"] ??= "16";

import fs from "node:fs";
import { parseArgs } from "node:util";
import { commandBenchmark } from "./client/benchmark.js";
import { commandChaos } from "./chaos/command.js";
import { commandClient, commandLoad } from "./client/commands.js";
import { type Address, NodeError, defaultConfig, runNode } from "./io/node.js";
import { createDataFile } from "./io/storage_direct.js";
import { KvStateMachine } from "./state_machine/kv.js";
import { formatSuperblockZone, superblockZoneSize } from "./vsr/format.js";
import { layout } from "./vsr/layout.js";
import { runSimulation, defaultSimOptions, type SimResult } from "./sim/vopr.js";
import { UsageError, integerFlag, isParseArgsError } from "./cli_args.js";

const usage = `usage:
  vsr format --cluster=<u32> --replica=<i> --replica-count=<n> <path>
  vsr start --addresses=<host:port,...> <path>
  vsr client --addresses=<host:port,...> [put <key> <value> | get <key> | delete <key>]
  vsr load --addresses=<...> [--clients=N] [--batch=B] [--duration-s=S | --requests=R]
           [--value-bytes=V] [--verify] [--json]
  vsr benchmark [--replicas=3] [--duration-s=10] [--clients=N] [--batch=B] [--json]
  vsr sim --seed=<n> [--ticks=T] [--replicas=N] [--clients=C] [--json]`;

async function main(argv: string[]): Promise<number> {
    const command = argv[0];
    try {
        switch (command) {
            case "format":
                return commandFormat(argv.slice(1));
            case "start":
                return await commandStart(argv.slice(1));
            case "sim":
                return commandSim(argv.slice(1));
            case "client":
                return await commandClient(argv.slice(1));
            case "load":
                return await commandLoad(argv.slice(1));
            case "benchmark":
                return await commandBenchmark(argv.slice(1));
            case "chaos":
                return await commandChaos(argv.slice(1));
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
        if (error instanceof NodeError || isOperatingError(error)) {
            process.stderr.write(`vsr: ${(error as Error).message}\n`);
            return 1;
        }
        throw error;
    }
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
        state_syncs: result.stateSyncs,
        par_repairs: result.parRepairs,
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
            `replicas_awaiting_sync=${result.replicasAwaitingSync} ` +
            `state_syncs=${result.stateSyncs} par_repairs=${result.parRepairs}\n`,
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

function isOperatingError(error: unknown): boolean {
    return (
        error instanceof Error &&
        "code" in error &&
        typeof error.code === "string" &&
        /^E[A-Z]+$/.test(error.code)
    );
}

function commandFormat(args: string[]): number {
    const { values, positionals } = parseArgs({
        args,
        strict: true,
        allowPositionals: true,
        options: {
            cluster: { type: "string" },
            replica: { type: "string" },
            "replica-count": { type: "string" },
        },
    });
    const cluster = integerFlag("cluster", values.cluster, 0, 0xffff_ffff);
    const replicaCount = integerFlag("replica-count", values["replica-count"], 1, 6);
    if (cluster === null) throw new UsageError("--cluster is required");
    if (replicaCount === null) throw new UsageError("--replica-count is required");
    const replica = integerFlag("replica", values.replica, 0, replicaCount - 1);
    if (replica === null) throw new UsageError("--replica is required");
    const path = onePath(positionals);
    const config = defaultConfig;
    const zones = layout(config, KvStateMachine.sizeBytes(config.kvEntriesMax));
    createDataFile(path, zones.totalSize, (fd) => {
        const image = new Uint8Array(superblockZoneSize);
        formatSuperblockZone(image, 0, { cluster, replica, replicaCount });
        fs.writeSync(fd, image, 0, image.length, zones.superblockOffset);
    });
    const mib = (bytes: number): string => (bytes / (1024 * 1024)).toFixed(2) + " MiB";
    process.stdout.write(
        `formatted ${path}: cluster=${cluster} replica=${replica} replica_count=${replicaCount}\n` +
            `  superblock      ${mib(zones.walHeadersOffset)}\n` +
            `  wal headers     ${mib(zones.walHeadersSize)}\n` +
            `  wal prepares    ${mib(zones.walPreparesSize)}\n` +
            `  client replies  ${mib(zones.clientRepliesSize)}\n` +
            `  checkpoints     ${mib(2 * zones.checkpointCopySize)}\n` +
            `  total           ${mib(zones.totalSize)}\n`,
    );
    return 0;
}

function onePath(positionals: string[]): string {
    if (positionals.length !== 1) throw new UsageError("exactly one data file path is required");
    return positionals[0] as string;
}

export function parseAddresses(text: string | undefined): Address[] {
    if (text === undefined || text === "") throw new UsageError("--addresses is required");
    return text.split(",").map((part) => {
        const match = /^([^:]+):([0-9]{1,5})$/.exec(part.trim());
        const port = match === null ? -1 : Number(match[2]);
        if (match === null || port < 1 || port > 65535) {
            throw new UsageError(`bad address '${part}': expected host:port`);
        }
        return { host: match[1] as string, port };
    });
}

async function commandStart(args: string[]): Promise<number> {
    const { values, positionals } = parseArgs({
        args,
        strict: true,
        allowPositionals: true,
        options: { addresses: { type: "string" } },
    });
    const addresses = parseAddresses(values.addresses);
    const path = onePath(positionals);
    const log = (line: string): void => {
        process.stderr.write(line + "\n");
    };
    return runNode({ path, addresses, config: defaultConfig, log });
}

process.exitCode = await main(process.argv.slice(2));
