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
import {
    type Address,
    NodeError,
    defaultConfig,
    fileConfig,
    kvEntriesLimit,
    nodeArenaBytes,
    runNode,
} from "./io/node.js";
import { type LogThreshold, logThresholds } from "./io/log.js";
import { createDataFile } from "./io/storage_direct.js";
import { KvStateMachine } from "./state_machine/kv.js";
import { formatSuperblockZone, superblockZoneSize } from "./vsr/format.js";
import { layout } from "./vsr/layout.js";
import { replicasMax } from "./constants.js";
import {
    runSimulation,
    runSimulationTraced,
    defaultSimOptions,
    type SimOptions,
    type SimResult,
} from "./sim/vopr.js";
import { replayHtml } from "./web/replay.js";
import { UsageError, integerFlag, runSubcommand } from "./cli_args.js";

const usage = `usage: vsr <command> [flags]   (vsr <command> --help for its flags)
  format      create a replica's data file
  start       run a replica of a cluster
  client      put, get and delete keys (one command, or a REPL on stdin)
  load        closed-loop load against a running cluster
  benchmark   start a local cluster and measure it
  sim         run one deterministic simulation of a whole cluster
  chaos       run a real local cluster under a nemesis and check linearizability
  vsr --version   print the version`;

/** The smallest --kv-entries (a table of 16 entries holds 14 keys). */
const kvEntriesMin = 16;

const formatUsage = `usage: vsr format --cluster=<u32> --replica=<i> --replica-count=<n>
                  [--kv-entries=<n>] <path>
  Creates the data file of replica <i> (0-based) of a cluster of <n> replicas (1..6), with the
  cluster id <u32> that every replica and client of the cluster must share. Refuses to
  overwrite an existing file. Prints the zone sizes and the memory the replica will hold.
  --kv-entries=<n>   the KV table's capacity, a power of two in [${kvEntriesMin}, ${kvEntriesLimit}]
                     (default ${defaultConfig.kvEntriesMax}); at most 7/8 of it holds keys,
                     beyond that a put answers table_full. \`vsr start\` reads it from the file.`;

const startUsage = `usage: vsr start --addresses=<host:port,...> <path>
  Runs the replica of the data file <path> on addresses[replica] (the file knows its replica
  index; every replica is given the same list, in replica order). One port serves peers and
  clients (WebSocket) and HTTP: GET /status (JSON), GET /metrics (Prometheus text format).
  The port is unauthenticated: run the cluster on a private network (see docs/security.md).
  SIGINT/SIGTERM stop it cleanly.
  --log-level=<debug|info|warn|error|silent>   JSON log lines on stderr at or above (info)`;

/** The simulator's checker keeps 16 bytes per op, and ops ≤ ticks: 10M ticks ≈ 160 MB. */
const simTicksMax = 10_000_000;

/** The simulated network addresses at most 255 nodes, replicas and clients together. */
function simClientsMax(replicaCount: number = replicasMax): number {
    return 255 - replicaCount;
}

const simUsage = `usage: vsr sim --seed=<n> [--ticks=T] [--replicas=N] [--clients=C] [--storm]
               [--json] [--trace=<file.json>] [--html=<file.html>]
  One deterministic simulation: the seed draws the cluster's shape, its faults and the
  workload; --replicas (1..6) and --clients (1..${simClientsMax()}) override the draw;
  --ticks (0..${simTicksMax}) is the length of the faulty phase (default 20000);
  --storm turns on frequent crashes and every storage fault kind.
  Exit 0 when every checker passes, 1 on a safety or liveness failure (with the command that
  reproduces it). The last line is fingerprint=<hex>; --json prints one JSON object instead.
  --trace writes the run's timeline as JSON (replica status and view over time, crashes and
  restarts, partitions and clogs, storage faults by zone, commits, requests and replies, the
  failing check); --html writes one self-contained page replaying it (zoom: wheel, pan: drag).
  Recording does not change the run: the fingerprint is the same with or without them.`;

/** dist/src/cli.js → the package's own package.json, in the repository and when installed. */
function version(): string {
    const url = new URL("../../package.json", import.meta.url);
    return (JSON.parse(fs.readFileSync(url, "utf8")) as { version: string }).version;
}

async function main(argv: string[]): Promise<number> {
    const command = argv[0];
    const args = argv.slice(1);
    try {
        switch (command) {
            case "format":
                return await runSubcommand("format", formatUsage, args, () => commandFormat(args));
            case "start":
                return await runSubcommand("start", startUsage, args, () => commandStart(args));
            case "sim":
                return await runSubcommand("sim", simUsage, args, () => commandSim(args));
            case "client":
                return await commandClient(args);
            case "load":
                return await commandLoad(args);
            case "benchmark":
                return await commandBenchmark(args);
            case "chaos":
                return await commandChaos(args);
            case "help":
            case "--help":
            case "-h":
                process.stdout.write(usage + "\n");
                return 0;
            case "--version":
            case "-v":
                process.stdout.write(version() + "\n");
                return 0;
            case undefined:
                process.stderr.write(usage + "\n");
                return 2;
            default:
                process.stderr.write(`vsr: unknown command '${command}' (see vsr --help)\n`);
                return 2;
        }
    } catch (error) {
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
            storm: { type: "boolean", default: false },
            json: { type: "boolean", default: false },
            trace: { type: "string" },
            html: { type: "string" },
        },
    });
    if (positionals.length > 0) throw new UsageError(`unexpected argument '${positionals[0]}'`);
    if (values.trace === "") throw new UsageError("--trace needs a file name");
    if (values.html === "") throw new UsageError("--html needs a file name");
    const seed = integerFlag("seed", values.seed, 0, Number.MAX_SAFE_INTEGER);
    if (seed === null) throw new UsageError("--seed is required");
    const defaults = defaultSimOptions(seed);
    const ticks = integerFlag("ticks", values.ticks, 0, simTicksMax) ?? defaults.ticks;
    const replicaCount = integerFlag("replicas", values.replicas, 1, replicasMax);
    const clientsMax = simClientsMax(replicaCount ?? replicasMax);
    const clientCount = integerFlag("clients", values.clients, 1, clientsMax);
    const storm = values.storm;
    const simOptions = { ...defaults, ticks, replicaCount, clientCount, storm };
    const reproduce =
        "vsr sim --seed=" +
        seed +
        (values.ticks !== undefined ? ` --ticks=${ticks}` : "") +
        (replicaCount !== null ? ` --replicas=${replicaCount}` : "") +
        (clientCount !== null ? ` --clients=${clientCount}` : "") +
        (storm ? " --storm" : "");
    const result = simulate(simOptions, values.trace ?? null, values.html ?? null, reproduce);
    if (values.json) {
        process.stdout.write(JSON.stringify(toJson(result)) + "\n");
    } else {
        printHuman(result, reproduce);
    }
    return result.result === "pass" ? 0 : 1;
}

/** Runs the simulation; with a trace or html file, records the run and writes the file(s). */
function simulate(
    options: SimOptions,
    tracePath: string | null,
    htmlPath: string | null,
    reproduce: string,
): SimResult {
    if (tracePath === null && htmlPath === null) return runSimulation(options);
    const { result, trace } = runSimulationTraced(options);
    if (tracePath !== null) fs.writeFileSync(tracePath, JSON.stringify(trace) + "\n");
    if (htmlPath !== null) fs.writeFileSync(htmlPath, replayHtml(trace, reproduce));
    return result;
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
        grid_blocks_repaired: result.gridBlocksRepaired,
        sync_blocks_fetched: result.syncBlocksFetched,
        sync_blocks_reused: result.syncBlocksReused,
        par_repairs: result.parRepairs,
        wal_reads: result.walReads,
        wal_read_errors: result.walReadErrors,
        wal_writes_unverified: result.walWritesUnverified,
        faults: { ...result.faults, zones: result.faultZones },
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
            `state_syncs=${result.stateSyncs} grid_blocks_repaired=${result.gridBlocksRepaired} ` +
            `sync_blocks_fetched=${result.syncBlocksFetched} ` +
            `sync_blocks_reused=${result.syncBlocksReused} ` +
            `par_repairs=${result.parRepairs} ` +
            `wal_reads=${result.walReads} wal_read_errors=${result.walReadErrors} ` +
            `wal_writes_unverified=${result.walWritesUnverified}\n`,
    );
    const faults = Object.entries(result.faults)
        .map(([name, count]) => `${name}=${count}`)
        .join(" ");
    const zones = Object.entries(result.faultZones)
        .map(([name, count]) => `${name}=${count}`)
        .join(" ");
    out.write(`faults: ${faults}\n`);
    out.write(`faults per zone: ${zones}\n`);
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
            "kv-entries": { type: "string" },
        },
    });
    const kvEntries = integerFlag("kv-entries", values["kv-entries"], kvEntriesMin, kvEntriesLimit);
    if (kvEntries !== null && (kvEntries & (kvEntries - 1)) !== 0) {
        throw new UsageError(`--kv-entries must be a power of two, not ${kvEntries}`);
    }
    const cluster = integerFlag("cluster", values.cluster, 0, 0xffff_ffff);
    const replicaCount = integerFlag("replica-count", values["replica-count"], 1, 6);
    if (cluster === null) throw new UsageError("--cluster is required");
    if (replicaCount === null) throw new UsageError("--replica-count is required");
    const replica = integerFlag("replica", values.replica, 0, replicaCount - 1);
    if (replica === null) throw new UsageError("--replica is required");
    const path = onePath(positionals);
    const config = fileConfig(defaultConfig, kvEntries ?? defaultConfig.kvEntriesMax);
    const kvEntriesMax = config.kvEntriesMax;
    const kvSize = KvStateMachine.sizeBytes(kvEntriesMax);
    const zones = layout(config, kvSize);
    createDataFile(path, zones.totalSize, (fd) => {
        const image = new Uint8Array(superblockZoneSize);
        formatSuperblockZone(image, 0, { cluster, replica, replicaCount, kvEntriesMax });
        fs.writeSync(fd, image, 0, image.length, zones.superblockOffset);
    });
    const mib = (bytes: number): string => (bytes / (1024 * 1024)).toFixed(2) + " MiB";
    const grid = zones.gridBlockCount * zones.gridBlockSize;
    process.stdout.write(
        `formatted ${path}: cluster=${cluster} replica=${replica} replica_count=${replicaCount}` +
            ` kv_entries=${kvEntriesMax}\n` +
            `  superblock      ${mib(zones.walHeadersOffset)}\n` +
            `  wal headers     ${mib(zones.walHeadersSize)}\n` +
            `  wal prepares    ${mib(zones.walPreparesSize)}\n` +
            `  client replies  ${mib(zones.clientRepliesSize)}\n` +
            `  checkpoints     ${mib(2 * zones.checkpointCopySize)}` +
            ` (block index and client table, two copies)\n` +
            `  grid            ${mib(grid)} (${zones.gridBlockCount} blocks of` +
            ` ${zones.gridBlockSize / 1024} KiB)\n` +
            `  total           ${mib(zones.totalSize)}\n` +
            `memory: KV table ${mib(kvSize)}, arena ${mib(nodeArenaBytes(config, replicaCount))}` +
            ` (table, copy-on-write staging, grid metadata, messages, WAL buffers)\n`,
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
        options: { addresses: { type: "string" }, "log-level": { type: "string" } },
    });
    const addresses = parseAddresses(values.addresses);
    const logThreshold = (values["log-level"] ?? "info") as LogThreshold;
    if (!logThresholds.includes(logThreshold)) {
        throw new UsageError(
            `--log-level must be one of ${logThresholds.join(", ")}, got '${logThreshold}'`,
        );
    }
    const path = onePath(positionals);
    const logWrite = (line: string): void => {
        process.stderr.write(line);
    };
    return runNode({ path, addresses, config: defaultConfig, logThreshold, logWrite });
}

process.exitCode = await main(process.argv.slice(2));
