// `vsr chaos`: Jepsen-style testing of real replica processes. Formats temporary data files,
// starts the replicas on 127.0.0.1 with a fault proxy on every replica → replica path
// (cluster.ts, proxy.ts), runs the workload (workload.ts) and the nemesis (nemesis.ts) for
// --duration-s, then heals every fault, lets the workload's last calls settle, waits for every
// replica to converge (normal, one view, one op, everything committed), reads every key once
// more, checks the history for linearizability (src/check) and prints the figures (stats.ts).
//
// Exit codes: 0 only when the history is linearizable, nothing is lost, the replicas converged
// and no replica exited on its own; 1 otherwise (or when the cluster could not be set up);
// 2 a usage error. Cleanup invariant (as in `vsr benchmark`): every process and proxy it started
// is stopped and the temporary directory removed, on success, failure and SIGINT/SIGTERM.

import { randomInt } from "node:crypto";
import fs from "node:fs";
import { parseArgs } from "node:util";
import { UsageError, integerFlag, runSubcommand } from "../cli_args.js";
import { production } from "../constants.js";
import { PRNG } from "../stdx/prng.js";
import type { HistoryOp } from "../check/history.js";
import { type CheckResult, checkLinearizable } from "../check/linearizability.js";
import { ChaosCluster, ChaosError, type ReplicaStatus } from "./cluster.js";
import { renderHtml } from "./html.js";
import { type FaultCounts, Nemesis, healthyWaitMs } from "./nemesis.js";
import { availability, lostWrites, maxRecoveryMs } from "./stats.js";
import { StatusSampler } from "./views.js";
import { Workload, sleep } from "./workload.js";

const usage = `usage: vsr chaos [--replicas=3|5] [--clients=8] [--keys=4] [--duration-s=60]
                 [--seed=N] [--json] [--history=<file>] [--html=<file>] [--check-time-limit-s=120]
  Starts a local cluster of real replica processes with a fault proxy on every replica path,
  runs long-lived clients doing get/put/delete on a few keys while a nemesis drawn from --seed
  kills (-9), pauses (SIGSTOP), partitions and corrupts (while down) replicas, at most f at a
  time; then heals everything, waits for the replicas to converge and checks the history for
  linearizability. --history writes it as JSON lines, --html as a timeline. Exit 0 only when
  linearizable and nothing is lost. Everything is stopped and removed afterwards.`;

const readyTimeoutMs = 60_000;
const convergeTimeoutMs = 60_000;
const callTimeoutMs = 10_000;

export interface ChaosOptions {
    readonly replicas: number;
    readonly clients: number;
    readonly keys: number;
    readonly durationS: number;
    readonly seed: number;
    readonly json: boolean;
    readonly history: string | null;
    readonly html: string | null;
    readonly checkTimeLimitS: number;
}

export async function commandChaos(args: string[]): Promise<number> {
    let parsedOptions: ChaosOptions | null = null;
    const parsed = await runSubcommand("chaos", usage, args, () => {
        parsedOptions = parseOptions(args);
        return 0;
    });
    if (parsedOptions === null) return parsed;
    const options: ChaosOptions = parsedOptions;
    const run = new ChaosRun(options);
    const onSignal = (signal: NodeJS.Signals): void => {
        process.stderr.write(`\nvsr chaos: ${signal}, stopping the cluster\n`);
        void run.cleanup().finally(() => process.exit(signal === "SIGINT" ? 130 : 143));
    };
    const onExit = (): void => run.cluster.cleanupSync();
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
    process.on("exit", onExit);
    try {
        return await run.run();
    } catch (error) {
        if (!(error instanceof ChaosError)) throw error;
        process.stderr.write(`vsr chaos: ${error.message}\n`);
        return 1;
    } finally {
        await run.cleanup();
        process.off("SIGINT", onSignal);
        process.off("SIGTERM", onSignal);
        process.off("exit", onExit);
    }
}

export function parseOptions(args: string[]): ChaosOptions {
    const { values, positionals } = parseArgs({
        args,
        strict: true,
        allowPositionals: true,
        options: {
            replicas: { type: "string" },
            clients: { type: "string" },
            keys: { type: "string" },
            "duration-s": { type: "string" },
            seed: { type: "string" },
            json: { type: "boolean", default: false },
            history: { type: "string" },
            html: { type: "string" },
            "check-time-limit-s": { type: "string" },
        },
    });
    if (positionals.length > 0) throw new UsageError(`unexpected argument '${positionals[0]}'`);
    // Every unknown outcome opens a new session: leave the table room for the final reader.
    const clientsMax = production.clientsMax - 1;
    return {
        replicas: integerFlag("replicas", values.replicas, 3, 6) ?? 3,
        clients: integerFlag("clients", values.clients, 1, clientsMax) ?? 8,
        keys: integerFlag("keys", values.keys, 1, 1000) ?? 4,
        durationS: integerFlag("duration-s", values["duration-s"], 1, 86_400) ?? 60,
        seed: integerFlag("seed", values.seed, 0, Number.MAX_SAFE_INTEGER) ?? randomInt(2 ** 47),
        json: values.json === true,
        history: values.history ?? null,
        html: values.html ?? null,
        checkTimeLimitS:
            integerFlag("check-time-limit-s", values["check-time-limit-s"], 1, 86_400) ?? 120,
    };
}

export interface ChaosReport {
    readonly seed: number;
    readonly replicas: number;
    readonly duration_s: number;
    readonly ops: number;
    readonly ok: number;
    readonly failed: number;
    readonly unknown: number;
    readonly faults: FaultCounts;
    readonly lost: number;
    readonly linearizable: boolean | "unknown";
    readonly availability: number;
    readonly max_unavailable_ms: number;
    readonly max_recovery_ms: number | null;
    readonly converged: boolean;
    readonly converge_ms: number;
    readonly crashes: number;
    /** Episodes after which the cluster was not whole again (all normal, one view) in time. */
    readonly slow_recoveries: number;
    readonly check: {
        readonly ms: number;
        readonly states: number;
        readonly failure: CheckResult["failure"];
    };
}

class ChaosRun {
    readonly options: ChaosOptions;
    readonly cluster: ChaosCluster;
    private readonly startNs = process.hrtime.bigint();
    private workload: Workload | null = null;
    private sampler: StatusSampler | null = null;
    private cleaning: Promise<void> | null = null;

    constructor(options: ChaosOptions) {
        this.options = options;
        this.cluster = new ChaosCluster(options.replicas);
    }

    private readonly nowNs = (): number => Number(process.hrtime.bigint() - this.startNs);

    private say(line: string): void {
        if (!this.options.json) process.stderr.write(`${line}\n`);
    }

    async run(): Promise<number> {
        const { options, cluster } = this;
        // Always (also with --json): the seed reproduces the run, the directory names its files.
        process.stderr.write(
            `vsr chaos: seed=${options.seed} replicas=${options.replicas} in ${cluster.dir}\n`,
        );
        await cluster.setup();
        for (let replica = 0; replica < options.replicas; replica++) cluster.start(replica);
        await this.waitConverged(readyTimeoutMs, "ready");
        // One seed, two streams: the workload's and the nemesis's draws never interleave.
        const seeds = new PRNG(options.seed);
        const workload = new Workload({
            clients: options.clients,
            keys: options.keys,
            seed: seeds.u53(),
            cluster: cluster.cluster,
            addresses: cluster.clientAddresses,
            callTimeoutMs,
            nowNs: this.nowNs,
        });
        this.workload = workload;
        const waitMs = healthyWaitMs(options.durationS);
        const nemesis = new Nemesis(cluster, seeds.u53(), this.nowNs, waitMs);
        const workStartNs = this.nowNs();
        const workEndNs = workStartNs + options.durationS * 1e9;
        const progress = this.progress(workload, nemesis, workStartNs);
        this.sampler = new StatusSampler(cluster, this.nowNs);
        this.sampler.start();
        workload.start();
        await nemesis.run(workEndNs);
        await sleep(Math.max(0, (workEndNs - this.nowNs()) / 1e6));
        nemesis.healAll();
        this.say(`\nvsr chaos: faults healed; waiting for the last calls and convergence`);
        await workload.stop();
        if (progress !== null) clearInterval(progress);
        const quietStartNs = this.nowNs();
        const converged = await this.waitConverged(convergeTimeoutMs, "converged");
        const convergeMs = Math.round((this.nowNs() - quietStartNs) / 1e6);
        this.sampler.stop();
        const finalReads = await this.finalReads(workload);
        workload.close();
        const history = workload.history;
        const report = this.report(history, finalReads, nemesis, converged, convergeMs, workEndNs);
        this.write(history, nemesis, report);
        return report.linearizable === true &&
            report.lost === 0 &&
            report.converged &&
            report.crashes === 0
            ? 0
            : 1;
    }

    private progress(
        workload: Workload,
        nemesis: Nemesis,
        workStartNs: number,
    ): NodeJS.Timeout | null {
        if (process.stderr.isTTY !== true) return null;
        return setInterval(() => {
            const history = workload.history;
            const ok = history.filter((op) => op.return !== null && op.output?.ok).length;
            const unknown = history.filter((op) => op.return === null).length;
            const seconds = Math.round((this.nowNs() - workStartNs) / 1e9);
            const f = nemesis.counts;
            process.stderr.write(
                `\r\u001b[K${seconds}/${this.options.durationS} s  ` +
                    `ops ${history.length}  ok ${ok}  ` +
                    `unknown ${unknown}  faults k${f.kills} p${f.pauses} n${f.partitions} ` +
                    `c${f.corruptions}  now: ${nemesis.current}`,
            );
        }, 1000);
    }

    /**
     * Until every replica answers normal in one view with one op, all of it committed, and one
     * primary; returns false after timeoutMs (throws when `what` is "ready": no run without it).
     */
    private async waitConverged(timeoutMs: number, what: "ready" | "converged"): Promise<boolean> {
        const deadline = performance.now() + timeoutMs;
        let last: (ReplicaStatus | null)[] = [];
        while (performance.now() < deadline) {
            last = await this.cluster.statuses();
            const first = last[0];
            const same = last.every(
                (status) =>
                    status !== null &&
                    first !== null &&
                    first !== undefined &&
                    status.status === "normal" &&
                    status.view === first.view &&
                    status.op === first.op &&
                    status.commit === first.op,
            );
            if (same && last.filter((status) => status?.primary).length === 1) return true;
            await sleep(200);
        }
        if (what === "ready") {
            throw new ChaosError(
                `the cluster was not ready within ${timeoutMs} ms: ` + `${JSON.stringify(last)}`,
            );
        }
        return false;
    }

    /** One get per key from a fresh client (retried on an unknown outcome), into the history. */
    private async finalReads(workload: Workload): Promise<HistoryOp[]> {
        const reads: HistoryOp[] = [];
        for (let key = 0; key < this.options.keys; key++) {
            for (let attempt = 0; attempt < 3; attempt++) {
                const client = workload.openClient();
                const op = await workload.invoke(client, this.options.clients, {
                    op: "get",
                    key: workload.keyName(key),
                    value: null,
                });
                workload.closeClient(client);
                if (op.return !== null) {
                    reads.push(op);
                    break;
                }
            }
        }
        return reads;
    }

    private report(
        history: readonly HistoryOp[],
        finalReads: readonly HistoryOp[],
        nemesis: Nemesis,
        converged: boolean,
        convergeMs: number,
        workEndNs: number,
    ): ChaosReport {
        const checkStart = performance.now();
        const check = checkLinearizable(history, {
            timeLimitMs: this.options.checkTimeLimitS * 1000,
        });
        const checkMs = Math.round(performance.now() - checkStart);
        let workStartNs = workEndNs;
        for (const op of history) workStartNs = Math.min(workStartNs, op.call);
        const served = availability(history, workStartNs, workEndNs);
        const count = (kind: "ok" | "failed" | "unknown"): number =>
            history.filter((op) =>
                kind === "unknown"
                    ? op.return === null
                    : op.return !== null && op.output?.ok === (kind === "ok"),
            ).length;
        return {
            seed: this.options.seed,
            replicas: this.options.replicas,
            duration_s: this.options.durationS,
            ops: history.length,
            ok: count("ok"),
            failed: count("failed"),
            unknown: count("unknown"),
            faults: { ...nemesis.counts },
            lost: lostWrites(history, finalReads),
            linearizable: check.linearizable,
            availability: served.availability,
            max_unavailable_ms: served.maxUnavailableMs,
            max_recovery_ms: maxRecoveryMs(history, nemesis.records),
            converged: converged && finalReads.length === this.options.keys,
            converge_ms: convergeMs,
            crashes: this.cluster.crashes.length,
            slow_recoveries: nemesis.healthyWaitsTimedOut,
            check: { ms: checkMs, states: check.statesVisited, failure: check.failure },
        };
    }

    private write(history: readonly HistoryOp[], nemesis: Nemesis, report: ChaosReport): void {
        const { options } = this;
        if (options.history !== null) {
            const records = [...history, ...nemesis.records, ...(this.sampler?.records ?? [])];
            const lines = records.map((record) => JSON.stringify(record));
            fs.writeFileSync(options.history, lines.join("\n") + "\n");
        }
        if (options.html !== null) {
            const samples = this.sampler?.records ?? [];
            fs.writeFileSync(options.html, renderHtml(history, nemesis.records, report, samples));
        }
        for (const crash of this.cluster.crashes) {
            process.stderr.write(
                `vsr chaos: replica ${crash.replica} exited on its own ` +
                    `(${crash.exit}):\n${crash.stderr}\n`,
            );
        }
        if (options.json) {
            process.stdout.write(`${JSON.stringify(report)}\n`);
            return;
        }
        const f = report.faults;
        process.stdout.write(
            `seed=${report.seed} replicas=${report.replicas} duration_s=${report.duration_s}\n` +
                `ops=${report.ops} ok=${report.ok} failed=${report.failed} ` +
                `unknown=${report.unknown}\n` +
                `faults: kills=${f.kills} pauses=${f.pauses} partitions=${f.partitions} ` +
                `corruptions=${f.corruptions}\n` +
                `availability=${report.availability} ` +
                `max_unavailable_ms=${report.max_unavailable_ms} ` +
                `max_recovery_ms=${report.max_recovery_ms}\n` +
                `converged=${report.converged} (${report.converge_ms} ms) ` +
                `crashes=${report.crashes}\n` +
                `linearizable=${report.linearizable} (${report.check.ms} ms, ` +
                `${report.check.states} states) lost=${report.lost}\n`,
        );
        if (report.check.failure !== null) {
            const failure = report.check.failure;
            process.stdout.write(
                `not linearizable: key ${failure.key}, operations ` +
                    `${failure.opIndexes.join(",")} (stuck at ${failure.stuckIndex})\n`,
            );
        }
        if (report.linearizable !== true || report.lost > 0) {
            process.stdout.write(
                `reproduce: vsr chaos --seed=${report.seed} --replicas=${report.replicas} ` +
                    `--duration-s=${report.duration_s} --history=<file>\n`,
            );
        }
    }

    cleanup(): Promise<void> {
        if (this.cleaning === null) {
            this.workload?.close();
            this.sampler?.stop();
            this.cleaning = this.cluster.cleanup();
        }
        return this.cleaning;
    }
}
