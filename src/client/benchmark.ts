// `vsr benchmark`: the all-in-one macro benchmark (what `npm start` runs). It formats one data
// file per replica in a fresh temporary directory on the real disk (os.tmpdir(), so the journal
// runs with O_DIRECT as in production), starts the replicas as child processes
// (`node dist/src/cli.js start`) on free loopback ports, waits until every /status reports
// status normal in one view with one primary, then runs the closed-loop load generator
// (runLoad, in this process, every session over one shared WebSocket connection per replica:
// SharedTransport) once per client count: 1, 8 and 64 clients by default, or only the --clients
// given. It prints one table row per run (ops/s and p50/p99/p999/max latency in ms, then what
// the run cost: young GCs per 100k ops on the busiest replica and in the load generator, the
// largest replica RSS, and CPU seconds per million ops summed over every process — sampled from
// each replica's /metrics before and after the run; --json adds it per process) or, with --json,
// one JSON object, and always cleans up.
//
// Cleanup invariant: every child is stopped (SIGTERM, then SIGKILL after stopTimeoutMs) and the
// temporary directory removed, on success, on failure (a child that exits early, a cluster that
// never becomes ready, a run that completes nothing) and on SIGINT/SIGTERM (Ctrl-C). A process
// 'exit' hook SIGKILLs any child left and removes the directory synchronously, as a last resort.
// Exit codes: 0 success, 1 the benchmark failed (one line on stderr), 2 a usage error.

import { type ChildProcess, spawn } from "node:child_process";
import { randomInt } from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { PerformanceObserver, constants as perfConstants } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { production } from "../constants.js";
import { Client, eventsPerRequestMax } from "./client.js";
import { type LoadReport, type LoadResult, runLoad } from "./load.js";
import { SharedTransport, WebSocketTransport } from "./transport.js";
import { UsageError, integerFlag, runSubcommand } from "../cli_args.js";
import { YoungAllocationMeter } from "../io/young_meter.js";

const usage = `usage:
  vsr benchmark [--replicas=3] [--duration-s=10] [--clients=N[,N...]] [--batch=1]
                [--value-bytes=16] [--json]
  Formats temporary data files, starts a local cluster of --replicas child processes on
  127.0.0.1, and runs the load generator for --duration-s seconds per run: with 1, 8 and 64
  clients in turn, or with each --clients count given (each at most ${production.clientsMax}: the
  cluster's client sessions). Prints ops/s and latency percentiles per run; --json prints one
  object. Everything is stopped and removed afterwards, also on failure or Ctrl-C.`;

const clientCountsDefault = [1, 8, 64] as const;
const readyTimeoutMs = 60_000;
const formatTimeoutMs = 60_000;
const stopTimeoutMs = 5_000;
const statusTimeoutMs = 1_000;

/**
 * Node flags for each replica child (and, on the command line, for the load generator: see
 * `npm start` and scripts/compare_etcd.sh): a young generation of a fixed 16 MiB per semi-space.
 * ws, uWebSockets.js and node:fs allocate a few small objects per message and per I/O, outside
 * our reach; V8's young generation starts at 1 MiB and, holding only garbage, never grows, so it
 * is scavenged every few hundred messages. Sized up front, a scavenge comes once per 16 MiB of
 * that garbage. Not larger: at 64 MiB the scavenges were gone but CPU per op rose by about a
 * quarter (allocation then streams through memory the caches do not hold); 16 MiB cost about
 * 5%. The other cost is resident memory: up to twice 16 MiB once the space has been used.
 */
export const youngGenerationFlags = [
    "--min-semi-space-size=16",
    "--max-semi-space-size=16",
] as const;

/** dist/src/client/benchmark.js → dist/src/cli.js */
const cliPath = fileURLToPath(new URL("../cli.js", import.meta.url));

class BenchmarkError extends Error {}

interface BenchmarkOptions {
    readonly replicas: number;
    readonly durationS: number;
    readonly clientCounts: readonly number[];
    readonly batch: number;
    readonly valueBytes: number;
    readonly json: boolean;
}

export interface BenchmarkRun extends LoadReport {
    readonly clients: number;
    /** Per replica: young (scavenge) GCs during the run per 100,000 ops. */
    readonly replica_young_gcs_per_100k_ops: number[];
    /** The load generator's (this process's) young GCs during the run per 100,000 ops. */
    readonly client_young_gcs_per_100k_ops: number;
    /** Per replica: young-generation bytes allocated during the run per op. */
    readonly replica_young_bytes_per_op: number[];
    /** The same in the load generator (this process). */
    readonly client_young_bytes_per_op: number;
    /** Per replica: resident set size at the end of the run. */
    readonly replica_rss_mib: number[];
    /** CPU seconds (user + system) per million ops, replicas and load generator summed. */
    readonly cpu_s_per_million_ops: number;
    /**
     * The same CPU per process, in µs per op: each replica by index, then the load generator
     * last. Load-insensitive where ops/s is not, so levers are compared by it.
     */
    readonly cpu_us_per_op: number[];
    /**
     * Client requests per prepare over the run (all replicas' prepares: the primary's). Group
     * commit's yield: each prepare costs every replica two synchronous writes whatever it holds.
     */
    readonly requests_per_prepare: number;
}

/** What a process has used so far, from /metrics (replicas) or node's own counters. */
interface ProcessSample {
    readonly youngGcs: number;
    readonly youngBytes: number;
    readonly cpuSeconds: number;
    readonly rssBytes: number;
    /** Prepares started as primary, and the client requests they held (zero for a client). */
    readonly prepares: number;
    readonly requestsPrepared: number;
}

export interface StatusJson {
    readonly cluster: number;
    readonly replica: number;
    readonly status: string;
    readonly view: number;
    readonly primary: boolean;
    readonly direct_io: boolean;
}

export async function commandBenchmark(args: string[]): Promise<number> {
    let options: BenchmarkOptions | null = null;
    const parsed = await runSubcommand("benchmark", usage, args, () => {
        options = parseOptions(args);
        return 0;
    });
    if (options === null) return parsed;
    return runBenchmark(options);
}

async function runBenchmark(options: BenchmarkOptions): Promise<number> {
    const bench = new LocalBenchmark(options);
    const onSignal = (signal: NodeJS.Signals): void => {
        process.stderr.write(`\nvsr benchmark: ${signal}, stopping the cluster\n`);
        void bench.cleanup().finally(() => process.exit(signal === "SIGINT" ? 130 : 143));
    };
    const onExit = (): void => bench.cleanupSync();
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
    process.on("exit", onExit);
    try {
        const runs = await bench.run();
        if (options.json) process.stdout.write(`${JSON.stringify(bench.json(runs))}\n`);
        return 0;
    } catch (error) {
        if (!(error instanceof BenchmarkError)) throw error;
        process.stderr.write(`vsr benchmark: ${error.message}\n`);
        return 1;
    } finally {
        await bench.cleanup();
        process.off("SIGINT", onSignal);
        process.off("SIGTERM", onSignal);
        process.off("exit", onExit);
    }
}

function parseOptions(args: string[]): BenchmarkOptions {
    const { values, positionals } = parseArgs({
        args,
        strict: true,
        allowPositionals: true,
        options: {
            replicas: { type: "string" },
            "duration-s": { type: "string" },
            clients: { type: "string" },
            batch: { type: "string" },
            "value-bytes": { type: "string" },
            json: { type: "boolean", default: false },
        },
    });
    if (positionals.length > 0) throw new UsageError(`unexpected argument '${positionals[0]}'`);
    const clients =
        values.clients === undefined
            ? null
            : values.clients
                  .split(",")
                  .map((text) => integerFlag("clients", text, 1, production.clientsMax)!);
    return {
        replicas: integerFlag("replicas", values.replicas, 1, 6) ?? 3,
        durationS: integerFlag("duration-s", values["duration-s"], 1, 3600) ?? 10,
        clientCounts: clients === null ? clientCountsDefault : clients,
        batch:
            integerFlag("batch", values.batch, 1, eventsPerRequestMax(production.messageSizeMax)) ??
            1,
        valueBytes: integerFlag("value-bytes", values["value-bytes"], 0, 64) ?? 16,
        json: values.json === true,
    };
}

/** A child process of the benchmark (and of `vsr chaos`), with the tail of its stderr. */
export class Child {
    readonly name: string;
    readonly process: ChildProcess;
    stderr = "";
    exited = false;
    exitDescription = "";
    readonly exit: Promise<void>;

    constructor(name: string, args: readonly string[], nodeFlags: readonly string[] = []) {
        this.name = name;
        this.process = spawn(process.execPath, [...nodeFlags, cliPath, ...args], {
            stdio: ["ignore", "ignore", "pipe"],
        });
        this.process.stderr?.setEncoding("utf8");
        this.process.stderr?.on("data", (text: string) => {
            this.stderr = (this.stderr + text).slice(-8192);
        });
        this.exit = new Promise((resolve) => {
            const done = (description: string): void => {
                if (this.exited) return;
                this.exited = true;
                this.exitDescription = description;
                resolve();
            };
            this.process.once("error", (error) => done(error.message));
            this.process.once("close", (code, signal) =>
                done(signal === null ? `exit code ${code}` : `signal ${signal}`),
            );
        });
    }

    /**
     * The line of its stderr that says what went wrong: the last `vsr…` line (a vsr error is
     * one line), else the last `…Error: …` line of a stack trace, else the last line.
     */
    lastLine(): string {
        const lines = this.stderr
            .trim()
            .split("\n")
            .filter((line) => line.trim() !== "");
        const pick = (pattern: RegExp): string | undefined =>
            lines.filter((line) => pattern.test(line)).pop();
        return pick(/^vsr/) ?? pick(/^\w*Error: /) ?? lines.pop() ?? "(no output)";
    }

    /** Waits for the exit up to timeoutMs; true if it exited. */
    async waitExit(timeoutMs: number): Promise<boolean> {
        let timer: NodeJS.Timeout | null = null;
        const timeout = new Promise<void>((resolve) => {
            timer = setTimeout(resolve, timeoutMs);
        });
        await Promise.race([this.exit, timeout]);
        if (timer !== null) clearTimeout(timer);
        return this.exited;
    }

    /** SIGTERM, then SIGKILL if it has not exited within stopTimeoutMs. */
    async stop(): Promise<void> {
        if (this.exited) return;
        this.process.kill("SIGTERM");
        if (await this.waitExit(stopTimeoutMs)) return;
        this.process.kill("SIGKILL");
        await this.exit;
    }
}

class LocalBenchmark {
    private readonly options: BenchmarkOptions;
    private readonly cluster = randomInt(1, 2 ** 32 - 1);
    private dir: string | null = null;
    private readonly children: Child[] = [];
    private ports: number[] = [];
    private directIo = false;
    private cleaning: Promise<void> | null = null;

    constructor(options: BenchmarkOptions) {
        this.options = options;
    }

    private progress(line: string): void {
        if (!this.options.json) process.stderr.write(`${line}\n`);
    }

    async run(): Promise<BenchmarkRun[]> {
        const { replicas } = this.options;
        this.dir = fs.mkdtempSync(path.join(os.tmpdir(), "vsr-benchmark-"));
        this.ports = await freePorts(replicas);
        const addresses = this.ports.map((port) => `127.0.0.1:${port}`);
        this.progress(`formatting ${replicas} data files in ${this.dir}`);
        const files: string[] = [];
        for (let replica = 0; replica < replicas; replica++) {
            const file = path.join(this.dir, `replica_${replica}.vsr`);
            files.push(file);
            await this.format(replica, file);
        }
        this.progress(`starting ${replicas} replicas on ${addresses.join(",")}`);
        for (let replica = 0; replica < replicas; replica++) {
            this.children.push(
                new Child(
                    `replica ${replica}`,
                    ["start", `--addresses=${addresses.join(",")}`, files[replica]!],
                    youngGenerationFlags,
                ),
            );
        }
        await this.waitReady();
        const runs: BenchmarkRun[] = [];
        this.printHeader();
        for (const clients of this.options.clientCounts) {
            const run = await this.load(addresses, clients);
            runs.push(run);
            this.printRow(run);
        }
        return runs;
    }

    private async format(replica: number, file: string): Promise<void> {
        const child = new Child(`format of replica ${replica}`, [
            "format",
            `--cluster=${this.cluster}`,
            `--replica=${replica}`,
            `--replica-count=${this.options.replicas}`,
            file,
        ]);
        this.children.push(child);
        if (!(await child.waitExit(formatTimeoutMs))) {
            await child.stop();
            throw new BenchmarkError(`vsr format did not finish within ${formatTimeoutMs} ms`);
        }
        if (child.exitDescription !== "exit code 0") {
            throw new BenchmarkError(
                `vsr format failed (${child.exitDescription}): ${child.lastLine()}`,
            );
        }
    }

    /** Until every replica reports status normal in one view with exactly one primary. */
    private async waitReady(): Promise<void> {
        const deadline = performance.now() + readyTimeoutMs;
        let last = "no answer";
        for (;;) {
            for (const child of this.children) {
                if (child.exited && child.name.startsWith("replica")) {
                    throw new BenchmarkError(
                        `${child.name} exited during start-up (${child.exitDescription}): ` +
                            child.lastLine(),
                    );
                }
            }
            const statuses = await Promise.all(this.ports.map((port) => fetchStatus(port)));
            const ready =
                statuses.every(
                    (status, replica) =>
                        status !== null &&
                        status.cluster === this.cluster &&
                        status.replica === replica &&
                        status.status === "normal" &&
                        status.view === statuses[0]?.view,
                ) && statuses.filter((status) => status?.primary === true).length === 1;
            if (ready) {
                const primary = statuses.find((status) => status?.primary === true)!;
                this.directIo = statuses.every((status) => status?.direct_io === true);
                this.progress(
                    `cluster ready: primary replica ${primary.replica}, view ${primary.view}, ` +
                        `direct I/O ${this.directIo ? "on" : "off"}`,
                );
                return;
            }
            last = JSON.stringify(statuses);
            if (performance.now() > deadline) {
                throw new BenchmarkError(
                    `the cluster was not ready within ${readyTimeoutMs} ms (last /status: ${last})`,
                );
            }
            await new Promise((resolve) => setTimeout(resolve, 100));
        }
    }

    private async load(addresses: readonly string[], clients: number): Promise<BenchmarkRun> {
        const before = await this.sampleReplicas();
        const clientGcs = new YoungGcCounter();
        const clientYoung = new YoungAllocationMeter();
        const clientCpuBefore = process.cpuUsage();
        const progress = process.stderr.isTTY === true && !this.options.json;
        const loaded = await this.runClients(addresses, clients, progress);
        clientGcs.stop();
        const clientYoungBytes = clientYoung.read();
        clientYoung.stop();
        const clientCpu = process.cpuUsage(clientCpuBefore);
        const after = await this.sampleReplicas();
        if (progress) process.stderr.write("\r\u001b[K");
        for (const child of this.children) {
            if (child.exited && child.name.startsWith("replica")) {
                throw new BenchmarkError(
                    `${child.name} exited during the run (${child.exitDescription}): ` +
                        child.lastLine(),
                );
            }
        }
        if (loaded.unreachable) {
            throw new BenchmarkError(`no client session could register with the cluster`);
        }
        if (loaded.report.ops === 0) {
            throw new BenchmarkError(`the run with ${clients} clients completed no operation`);
        }
        const ops = loaded.report.ops;
        const per100k = (count: number): number => round2((count * 100_000) / ops);
        const processCpuSeconds = after.map(
            (sample, replica) => sample.cpuSeconds - before[replica]!.cpuSeconds,
        );
        processCpuSeconds.push((clientCpu.user + clientCpu.system) / 1e6);
        const cpuSeconds = processCpuSeconds.reduce((sum, seconds) => sum + seconds, 0);
        return {
            clients,
            ...loaded.report,
            replica_young_gcs_per_100k_ops: after.map((sample, replica) =>
                per100k(sample.youngGcs - before[replica]!.youngGcs),
            ),
            client_young_gcs_per_100k_ops: per100k(clientGcs.count),
            replica_young_bytes_per_op: after.map((sample, replica) =>
                Math.round((sample.youngBytes - before[replica]!.youngBytes) / ops),
            ),
            client_young_bytes_per_op: Math.round(clientYoungBytes / ops),
            replica_rss_mib: after.map((sample) => round2(sample.rssBytes / 2 ** 20)),
            cpu_s_per_million_ops: round2((cpuSeconds * 1e6) / ops),
            cpu_us_per_op: processCpuSeconds.map((seconds) => round2((seconds * 1e6) / ops)),
            requests_per_prepare: requestsPerPrepare(before, after),
        };
    }

    /**
     * The closed loop itself: every session over one connection per replica, as etcd's load
     * generator shares one clientv3 connection among its workers.
     */
    private async runClients(
        addresses: readonly string[],
        clients: number,
        progress: boolean,
    ): Promise<LoadResult> {
        const { batch, durationS, valueBytes } = this.options;
        const messageSizeMax = production.messageSizeMax;
        const shared = new SharedTransport(new WebSocketTransport({ addresses, messageSizeMax }));
        if (!(await shared.waitConnected(readyTimeoutMs))) {
            shared.close();
            throw new BenchmarkError(`the load generator could not connect to every replica`);
        }
        return runLoad(
            {
                clients,
                batch,
                durationS,
                requests: null,
                valueBytes,
                verify: false,
                keysPerClient: 1024,
                warmupTimeoutMs: 10_000,
                progress: progress
                    ? (line) => process.stderr.write(`\r\u001b[K${clients} clients: ${line}`)
                    : null,
                callObserver: null,
            },
            () =>
                new Client({
                    transport: shared.session(),
                    cluster: this.cluster,
                    messageSizeMax,
                    callTimeoutMs: 30_000,
                }),
        ).finally(() => shared.close());
    }

    /** Every replica's process counters (a replica that does not answer fails the run). */
    private async sampleReplicas(): Promise<ProcessSample[]> {
        const samples = await Promise.all(this.ports.map((port) => fetchProcessSample(port)));
        return samples.map((sample, replica) => {
            if (sample === null) {
                throw new BenchmarkError(`replica ${replica} did not answer /metrics`);
            }
            return sample;
        });
    }

    private printHeader(): void {
        if (this.options.json) return;
        const { replicas, durationS, batch, valueBytes } = this.options;
        process.stdout.write(
            `vsr benchmark: ${replicas} replica${replicas === 1 ? "" : "s"} on 127.0.0.1, ` +
                `direct I/O ${this.directIo ? "on" : "off"}, ${durationS} s per run, ` +
                `batch ${batch}, ${valueBytes}-byte values\n` +
                `${cells(tableColumns)}\n`,
        );
    }

    private printRow(run: BenchmarkRun): void {
        if (this.options.json) return;
        const ms = (us: number): string => (us / 1000).toFixed(2);
        const latency = run.latency_us;
        process.stdout.write(
            `${cells([
                String(run.clients),
                String(run.ops_per_s),
                ms(latency.p50),
                ms(latency.p99),
                ms(latency.p999),
                ms(latency.max),
                String(run.errors),
                String(Math.max(...run.replica_young_gcs_per_100k_ops)),
                String(run.client_young_gcs_per_100k_ops),
                String(Math.max(...run.replica_young_bytes_per_op)),
                String(run.client_young_bytes_per_op),
                String(Math.max(...run.replica_rss_mib).toFixed(0)),
                String(run.cpu_s_per_million_ops),
                run.requests_per_prepare.toFixed(1),
            ])}\n`,
        );
    }

    json(runs: readonly BenchmarkRun[]): Record<string, unknown> {
        const { replicas, durationS, batch, valueBytes } = this.options;
        return {
            replicas,
            duration_s: durationS,
            batch,
            value_bytes: valueBytes,
            direct_io: this.directIo,
            runs,
        };
    }

    /** Stops every child (SIGTERM, then SIGKILL) and removes the directory; idempotent. */
    cleanup(): Promise<void> {
        if (this.cleaning === null) {
            this.cleaning = (async () => {
                await Promise.all(this.children.map((child) => child.stop()));
                this.removeDir();
            })();
        }
        return this.cleaning;
    }

    /** Last resort at process exit: SIGKILL what still runs, remove the directory. */
    cleanupSync(): void {
        for (const child of this.children) if (!child.exited) child.process.kill("SIGKILL");
        this.removeDir();
    }

    private removeDir(): void {
        if (this.dir === null) return;
        fs.rmSync(this.dir, { recursive: true, force: true });
        this.dir = null;
    }
}

const tableColumns = [
    "clients",
    "ops/s",
    "p50 ms",
    "p99 ms",
    "p999 ms",
    "max ms",
    "errors",
    "GC/100k", // Young GCs per 100k ops, on the busiest replica.
    "cGC/100k", // The same in the load generator.
    "B/op", // Young-generation bytes allocated per op, on the busiest replica.
    "cB/op", // The same in the load generator.
    "RSS MiB", // The largest replica's.
    "CPU s/1M", // CPU seconds per million ops, every process summed.
    "req/prep", // Client requests per prepare (group commit).
];

/** Requests per prepare between two samples of every replica (0 when none was prepared). */
function requestsPerPrepare(
    before: readonly ProcessSample[],
    after: readonly ProcessSample[],
): number {
    let prepares = 0;
    let requests = 0;
    for (let replica = 0; replica < after.length; replica++) {
        prepares += after[replica]!.prepares - before[replica]!.prepares;
        requests += after[replica]!.requestsPrepared - before[replica]!.requestsPrepared;
    }
    return prepares === 0 ? 0 : round2(requests / prepares);
}

function cells(values: readonly string[]): string {
    return values.map((value) => value.padStart(10)).join("");
}

function round2(value: number): number {
    return Math.round(value * 100) / 100;
}

/** Counts this process's young GCs from construction to stop(). */
class YoungGcCounter {
    count = 0;
    private readonly observer = new PerformanceObserver((list) => {
        for (const entry of list.getEntries()) {
            const kind = (entry as { detail?: { kind?: number } }).detail?.kind;
            if (kind === perfConstants.NODE_PERFORMANCE_GC_MINOR) this.count++;
        }
    });

    constructor() {
        this.observer.observe({ entryTypes: ["gc"] });
    }

    stop(): void {
        this.observer.disconnect();
    }
}

/** A replica's GC, CPU and RSS counters from its /metrics, or null if it does not answer. */
export async function fetchProcessSample(port: number): Promise<ProcessSample | null> {
    try {
        const response = await fetch(`http://127.0.0.1:${port}/metrics`, {
            signal: AbortSignal.timeout(statusTimeoutMs),
        });
        if (response.status !== 200) return null;
        const text = await response.text();
        const value = (pattern: RegExp): number => {
            const match = pattern.exec(text);
            if (match === null) throw new BenchmarkError(`/metrics lacks ${pattern.source}`);
            return Number(match[1]);
        };
        return {
            youngGcs: value(/^vsr_gc_total\{kind="young"\} (\S+)$/m),
            youngBytes: value(/^vsr_young_allocated_bytes_total (\S+)$/m),
            cpuSeconds: value(/^process_cpu_seconds_total (\S+)$/m),
            rssBytes: value(/^process_resident_memory_bytes (\S+)$/m),
            prepares: value(/^vsr_prepare_requests_count (\S+)$/m),
            requestsPrepared: value(/^vsr_prepare_requests_sum (\S+)$/m),
        };
    } catch (error) {
        if (error instanceof BenchmarkError) throw error;
        return null;
    }
}

export async function fetchStatus(port: number): Promise<StatusJson | null> {
    try {
        const response = await fetch(`http://127.0.0.1:${port}/status`, {
            signal: AbortSignal.timeout(statusTimeoutMs),
        });
        if (response.status !== 200) return null;
        return (await response.json()) as StatusJson;
    } catch {
        return null;
    }
}

/** `count` distinct free TCP ports on 127.0.0.1 (held open together, then released). */
export async function freePorts(count: number): Promise<number[]> {
    const servers: net.Server[] = [];
    try {
        const ports: number[] = [];
        for (let index = 0; index < count; index++) {
            const server = net.createServer();
            servers.push(server);
            await new Promise<void>((resolve, reject) => {
                server.once("error", reject);
                server.listen(0, "127.0.0.1", () => resolve());
            });
            const address = server.address();
            if (address === null || typeof address === "string") {
                throw new BenchmarkError("could not find a free port");
            }
            ports.push(address.port);
        }
        return ports;
    } finally {
        await Promise.all(
            servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))),
        );
    }
}
