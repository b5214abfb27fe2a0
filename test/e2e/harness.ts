// Helpers for the end-to-end tests: real `vsr` processes (process.execPath dist/src/cli.js …) on
// loopback, over data files in a fresh temporary directory on the real disk (os.tmpdir()).
//
// Ownership: a Scope owns one temporary directory and every process spawned through it. Its
// close() (registered with t.after by Scope.create, so it also runs when the test fails or
// times out) SIGKILLs whatever still runs, waits for every exit and removes the directory. A
// process 'exit' hook SIGKILLs any child left over if the test process itself goes down first.
// Nothing here waits without a bound: every wait takes a timeout and fails with what it last saw.
//
// Isolation: ports come from the kernel (listen on port 0, close), and every cluster gets a
// random cluster id, so a stray process of another run on a reused port rejects our messages
// (wrong cluster) instead of joining the cluster, and /status answers are checked for our
// cluster and replica index before they are believed.

import { type ChildProcess, spawn } from "node:child_process";
import { randomInt } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import type { TestContext } from "node:test";
import { fileURLToPath } from "node:url";
import { freePorts } from "../../src/client/benchmark.js";

/** The built CLI: this file is dist/test/e2e/harness.js. */
export const cliPath = fileURLToPath(new URL("../../src/cli.js", import.meta.url));

/** Output kept per stream (the tail), enough for any error message. */
const outputKeptMax = 256 * 1024;

export interface Exit {
    readonly code: number | null;
    readonly signal: NodeJS.Signals | null;
}

/** Every child spawned by any scope and not yet exited (for the process 'exit' hook). */
const running = new Set<ChildProcess>();
process.once("exit", () => {
    for (const child of running) child.kill("SIGKILL");
});

export const sleep = (ms: number): Promise<void> =>
    new Promise((resolve) => setTimeout(resolve, ms));

/** One spawned `vsr` process, its output and its exit. */
export class Proc {
    readonly child: ChildProcess;
    readonly args: readonly string[];
    stdout = "";
    stderr = "";
    exit: Exit | null = null;
    readonly exited: Promise<Exit>;

    constructor(args: readonly string[], env: NodeJS.ProcessEnv) {
        this.args = args;
        this.child = spawn(process.execPath, [cliPath, ...args], {
            env,
            stdio: ["ignore", "pipe", "pipe"],
        });
        running.add(this.child);
        this.child.stdout?.setEncoding("utf8");
        this.child.stderr?.setEncoding("utf8");
        this.child.stdout?.on("data", (text: string) => {
            this.stdout = (this.stdout + text).slice(-outputKeptMax);
        });
        this.child.stderr?.on("data", (text: string) => {
            this.stderr = (this.stderr + text).slice(-outputKeptMax);
        });
        this.exited = new Promise((resolve) => {
            // 'close' (not 'exit'): the output streams are drained by then.
            this.child.once("close", (code, signal) => {
                running.delete(this.child);
                this.exit = { code, signal };
                resolve(this.exit);
            });
            this.child.once("error", () => {
                running.delete(this.child);
                this.exit = { code: null, signal: null };
                resolve(this.exit);
            });
        });
    }

    get alive(): boolean {
        return this.exit === null;
    }

    kill(signal: NodeJS.Signals): void {
        if (this.exit === null) this.child.kill(signal);
    }

    /** Waits for the exit; on timeout SIGKILLs the process and throws with its output. */
    async waitExit(timeoutMs: number): Promise<Exit> {
        let timer: NodeJS.Timeout | null = null;
        const timeout = new Promise<null>((resolve) => {
            timer = setTimeout(() => resolve(null), timeoutMs);
        });
        const exit = await Promise.race([this.exited, timeout]);
        if (timer !== null) clearTimeout(timer);
        if (exit !== null) return exit;
        this.kill("SIGKILL");
        await this.exited;
        throw new Error(
            `vsr ${this.args.join(" ")}: no exit within ${timeoutMs} ms\n${this.describe()}`,
        );
    }

    /** The command and the tail of its output, for assertion messages. */
    describe(): string {
        const tail = (text: string): string => text.split("\n").slice(-30).join("\n");
        return (
            `command: vsr ${this.args.join(" ")}\nexit: ${JSON.stringify(this.exit)}\n` +
            `stdout:\n${tail(this.stdout)}\nstderr:\n${tail(this.stderr)}`
        );
    }
}

/** A temporary directory and the processes of one test; close() cleans up both. */
export class Scope {
    readonly dir: string;
    private readonly procs: Proc[] = [];
    private closed = false;

    private constructor(dir: string) {
        this.dir = dir;
    }

    /** A scope whose cleanup runs after the test `t`, pass or fail. */
    static create(t: TestContext): Scope {
        const scope = new Scope(fs.mkdtempSync(path.join(os.tmpdir(), "vsr-e2e-")));
        t.after(() => scope.close());
        return scope;
    }

    file(name: string): string {
        return path.join(this.dir, name);
    }

    spawn(args: readonly string[], env: NodeJS.ProcessEnv = {}): Proc {
        if (this.closed) throw new Error("scope is closed");
        const proc = new Proc(args, { ...process.env, ...env });
        this.procs.push(proc);
        return proc;
    }

    /** Runs a command to completion (bounded) and returns the process with its output. */
    async run(
        args: readonly string[],
        options: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {},
    ): Promise<Proc> {
        const proc = this.spawn(args, options.env);
        await proc.waitExit(options.timeoutMs ?? 30_000);
        return proc;
    }

    /** SIGKILLs every process still running, waits for them, removes the directory. */
    async close(): Promise<void> {
        if (this.closed) return;
        this.closed = true;
        for (const proc of this.procs) proc.kill("SIGKILL");
        await Promise.all(this.procs.map((proc) => proc.exited));
        fs.rmSync(this.dir, { recursive: true, force: true });
    }
}

export { freePorts };

/** Resolves as `promise` does, or rejects after timeoutMs (the timer never outlives it). */
export async function withTimeout<T>(
    promise: Promise<T>,
    timeoutMs: number,
    what: string,
): Promise<T> {
    let timer: NodeJS.Timeout | null = null;
    const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(
            () => reject(new Error(`timed out after ${timeoutMs} ms: ${what}`)),
            timeoutMs,
        );
    });
    try {
        return await Promise.race([promise, timeout]);
    } finally {
        if (timer !== null) clearTimeout(timer);
    }
}

/** Polls `probe` every intervalMs until it returns a value (not null/undefined/false). */
export async function waitFor<T>(
    what: string,
    timeoutMs: number,
    probe: () => Promise<T | null | undefined | false> | T | null | undefined | false,
    intervalMs = 100,
): Promise<T> {
    const deadline = performance.now() + timeoutMs;
    let last: unknown = null;
    for (;;) {
        try {
            const value = await probe();
            if (value !== null && value !== undefined && value !== false) return value;
            last = value;
        } catch (error) {
            last = error instanceof Error ? error.message : error;
        }
        if (performance.now() >= deadline) {
            throw new Error(
                `timed out after ${timeoutMs} ms waiting for ${what} ` +
                    `(last: ${JSON.stringify(last)})`,
            );
        }
        await sleep(intervalMs);
    }
}

/** What `vsr load --json` reports (the fields the tests read). */
export interface LoadJson {
    ops: number;
    seconds: number;
    ops_per_s: number;
    latency_us: { p50: number; p99: number; p999: number; max: number };
    errors: number;
    acked: number;
    verified: number;
    lost: number;
}

export interface Status {
    readonly cluster: number;
    readonly replica: number;
    readonly replica_count: number;
    readonly status: string;
    readonly view: number;
    readonly op: number;
    readonly commit: number;
    readonly checkpoint: number;
    readonly primary: boolean;
    readonly direct_io: boolean;
}

/** GET http://127.0.0.1:port/path with a bound; null when the node does not answer. */
export async function httpGet(
    port: number,
    urlPath: string,
    timeoutMs = 2000,
): Promise<{ status: number; body: string } | null> {
    try {
        const response = await fetch(`http://127.0.0.1:${port}${urlPath}`, {
            signal: AbortSignal.timeout(timeoutMs),
        });
        return { status: response.status, body: await response.text() };
    } catch {
        return null;
    }
}

/** A random cluster id (never 0, the default, so a forgotten --cluster fails loudly). */
export function randomCluster(): number {
    return randomInt(1, 2 ** 32 - 1);
}

/** Formats data files and runs their replicas as child processes on free loopback ports. */
export class LocalCluster {
    readonly scope: Scope;
    readonly cluster: number;
    readonly replicaCount: number;
    readonly ports: readonly number[];
    readonly files: readonly string[];
    /** `--addresses=…` for start, client and load. */
    readonly addresses: string;
    readonly nodes: (Proc | null)[];

    private constructor(scope: Scope, cluster: number, ports: number[], name: string) {
        this.scope = scope;
        this.cluster = cluster;
        this.replicaCount = ports.length;
        this.ports = ports;
        this.files = ports.map((_, replica) => scope.file(`${name}_${replica}.vsr`));
        this.addresses = ports.map((port) => `127.0.0.1:${port}`).join(",");
        this.nodes = ports.map(() => null);
    }

    /**
     * Formats one data file per replica (`vsr format`, checked), named `<name>_<i>.vsr`, with
     * `formatArgs` (e.g. --kv-entries) added.
     */
    static async format(
        scope: Scope,
        replicaCount: number,
        name = "replica",
        formatArgs: readonly string[] = [],
    ): Promise<LocalCluster> {
        const ports = await freePorts(replicaCount);
        const cluster = new LocalCluster(scope, randomCluster(), ports, name);
        for (let replica = 0; replica < replicaCount; replica++) {
            const proc = await scope.run(
                [
                    "format",
                    `--cluster=${cluster.cluster}`,
                    `--replica=${replica}`,
                    `--replica-count=${replicaCount}`,
                    ...formatArgs,
                    cluster.files[replica]!,
                ],
                { timeoutMs: 60_000 },
            );
            if (proc.exit?.code !== 0) throw new Error(`format failed\n${proc.describe()}`);
        }
        return cluster;
    }

    /** `vsr start` for one replica (the same command every time, so a restart is a repeat). */
    start(replica: number, env: NodeJS.ProcessEnv = {}): Proc {
        const previous = this.nodes[replica];
        if (previous !== null && previous !== undefined && previous.alive) {
            throw new Error(`replica ${replica} is already running`);
        }
        const proc = this.scope.spawn(
            ["start", `--addresses=${this.addresses}`, this.files[replica]!],
            env,
        );
        this.nodes[replica] = proc;
        return proc;
    }

    startAll(): void {
        for (let replica = 0; replica < this.replicaCount; replica++) this.start(replica);
    }

    node(replica: number): Proc {
        const proc = this.nodes[replica];
        if (proc === null || proc === undefined) throw new Error(`replica ${replica} not started`);
        return proc;
    }

    /** The replica's /status, or null when it does not answer (or is not ours). */
    async status(replica: number): Promise<Status | null> {
        const answer = await httpGet(this.ports[replica]!, "/status");
        if (answer === null || answer.status !== 200) return null;
        const status = JSON.parse(answer.body) as Status;
        if (status.cluster !== this.cluster || status.replica !== replica) {
            throw new Error(`port ${this.ports[replica]} answers for another node: ${answer.body}`);
        }
        return status;
    }

    /** Every replica's /status (null where it does not answer). */
    statuses(): Promise<(Status | null)[]> {
        return Promise.all(this.ports.map((_, replica) => this.status(replica)));
    }

    /** Throws (with its output) if a node that should run has exited. */
    checkAlive(replicas: readonly number[]): void {
        for (const replica of replicas) {
            const proc = this.node(replica);
            if (!proc.alive) throw new Error(`replica ${replica} exited\n${proc.describe()}`);
        }
    }

    /** Waits until every replica answers with status normal and one of them is primary. */
    async waitReady(timeoutMs: number): Promise<Status[]> {
        const replicas = this.ports.map((_, replica) => replica);
        return waitFor(
            `all ${this.replicaCount} replicas normal with a primary`,
            timeoutMs,
            async () => {
                this.checkAlive(replicas);
                const statuses = await this.statuses();
                if (statuses.some((status) => status === null || status.status !== "normal")) {
                    return null;
                }
                const all = statuses as Status[];
                const view = all[0]!.view;
                if (all.some((status) => status.view !== view)) return null;
                return all.filter((status) => status.primary).length === 1 ? all : null;
            },
            200,
        );
    }

    /** The replica reporting primary in status normal, if any. */
    async primary(): Promise<Status | null> {
        const statuses = await this.statuses();
        return (
            statuses.find((status) => status?.primary === true && status.status === "normal") ??
            null
        );
    }

    /** Arguments for `vsr client` / `vsr load` against this cluster. */
    clientArgs(): string[] {
        return [`--cluster=${this.cluster}`, `--addresses=${this.addresses}`];
    }

    /** Runs `vsr client <words>` against this cluster; it must succeed. Returns its output line. */
    async client(...words: string[]): Promise<string> {
        const proc = await this.scope.run(["client", ...this.clientArgs(), ...words]);
        if (proc.exit?.code !== 0) throw new Error(`vsr client failed: ${proc.describe()}`);
        return proc.stdout.trim();
    }
}

/** The value of a Prometheus sample `name{labels}` in a /metrics body (0 when absent). */
export function metric(body: string, name: string, labels = ""): number {
    const wanted = labels === "" ? name : `${name}{${labels}}`;
    for (const line of body.split("\n")) {
        if (line.startsWith("#")) continue;
        const space = line.lastIndexOf(" ");
        if (space > 0 && line.slice(0, space) === wanted) return Number(line.slice(space + 1));
    }
    return 0;
}

/** The sum of every sample of a metric family, over all its labels. */
export function metricSum(body: string, name: string): number {
    let sum = 0;
    for (const line of body.split("\n")) {
        if (line.startsWith("#")) continue;
        const space = line.lastIndexOf(" ");
        const key = line.slice(0, space);
        if (key === name || key.startsWith(`${name}{`)) sum += Number(line.slice(space + 1));
    }
    return sum;
}

/** True when text reads like a stack trace (a thrown error escaped to the top). */
export function hasStackTrace(text: string): boolean {
    return /^\s+at .+[(:]/m.test(text) || /^Node\.js v\d+/m.test(text);
}
