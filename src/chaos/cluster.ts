// The cluster under test in `vsr chaos`: data files formatted in a fresh temporary directory
// (`vsr format`, one child each), replicas started as real `vsr start` processes on 127.0.0.1,
// and a PathProxy (proxy.ts) on every directed replica → replica path. It owns the processes'
// lives: start, kill -9, SIGSTOP / SIGCONT, restart with the same command, and their cleanup.
//
// Invariants: a replica is down (no process), up, or paused (up and SIGSTOPped); a paused
// process is resumed before anything else is done to it (a stopped process ignores SIGTERM).
// An exit the nemesis did not cause is recorded (a replica crash is a finding) with the tail of
// its stderr. cleanup() stops every child and proxy and removes the directory; it is idempotent,
// and cleanupSync() is the process-exit last resort.

import { randomInt } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Child, fetchStatus, freePorts } from "../client/benchmark.js";
import { PathProxy } from "./proxy.js";

const formatTimeoutMs = 60_000;

export class ChaosError extends Error {}

export interface ReplicaStatus {
    readonly cluster: number;
    readonly replica: number;
    readonly status: string;
    readonly view: number;
    readonly op: number;
    readonly commit: number;
    readonly primary: boolean;
}

export interface Crash {
    readonly replica: number;
    readonly exit: string;
    readonly stderr: string;
}

export class ChaosCluster {
    readonly replicaCount: number;
    readonly cluster = randomInt(1, 2 ** 32 - 1);
    readonly dir: string;
    readonly files: string[] = [];
    ports: number[] = [];
    /** proxies[from][to], null on the diagonal. */
    readonly proxies: (PathProxy | null)[][] = [];
    readonly nodes: (Child | null)[] = [];
    readonly paused: boolean[] = [];
    /** Exits the nemesis did not cause. */
    readonly crashes: Crash[] = [];
    private readonly killing = new Set<Child>();
    private readonly formats: Child[] = [];
    private cleaning: Promise<void> | null = null;

    constructor(replicaCount: number) {
        this.replicaCount = replicaCount;
        this.dir = fs.mkdtempSync(path.join(os.tmpdir(), "vsr-chaos-"));
        for (let replica = 0; replica < replicaCount; replica++) {
            this.files.push(path.join(this.dir, `replica_${replica}.vsr`));
            this.nodes.push(null);
            this.paused.push(false);
        }
    }

    /** Client addresses: the replicas' real ports. */
    get clientAddresses(): string[] {
        return this.ports.map((port) => `127.0.0.1:${port}`);
    }

    /** Formats every data file and opens every path proxy. */
    async setup(): Promise<void> {
        this.ports = await freePorts(this.replicaCount);
        for (let replica = 0; replica < this.replicaCount; replica++) {
            await this.format(replica);
        }
        for (let from = 0; from < this.replicaCount; from++) {
            const row: (PathProxy | null)[] = [];
            for (let to = 0; to < this.replicaCount; to++) {
                row.push(from === to ? null : await PathProxy.open(from, to, this.ports[to]!));
            }
            this.proxies.push(row);
        }
    }

    private async format(replica: number): Promise<void> {
        const child = new Child(`format of replica ${replica}`, [
            "format",
            `--cluster=${this.cluster}`,
            `--replica=${replica}`,
            `--replica-count=${this.replicaCount}`,
            this.files[replica]!,
        ]);
        this.formats.push(child);
        if (!(await child.waitExit(formatTimeoutMs))) {
            await child.stop();
            throw new ChaosError(`vsr format did not finish within ${formatTimeoutMs} ms`);
        }
        if (child.exitDescription !== "exit code 0") {
            throw new ChaosError(
                `vsr format failed (${child.exitDescription}): ${child.lastLine()}`,
            );
        }
    }

    /** Replica i's --addresses: its own real port, and the proxy of i → j for every peer j. */
    addressesOf(replica: number): string {
        return this.ports
            .map((port, peer) =>
                peer === replica
                    ? `127.0.0.1:${port}`
                    : `127.0.0.1:${this.proxies[replica]![peer]!.port}`,
            )
            .join(",");
    }

    isUp(replica: number): boolean {
        const node = this.nodes[replica];
        return node !== null && node !== undefined && !node.exited;
    }

    start(replica: number): void {
        if (this.isUp(replica)) throw new ChaosError(`replica ${replica} is already running`);
        const child = new Child(`replica ${replica}`, [
            "start",
            `--addresses=${this.addressesOf(replica)}`,
            this.files[replica]!,
        ]);
        this.nodes[replica] = child;
        this.paused[replica] = false;
        void child.exit.then(() => {
            if (this.killing.has(child) || this.cleaning !== null) return;
            this.crashes.push({
                replica,
                exit: child.exitDescription,
                stderr: child.stderr.split("\n").slice(-20).join("\n"),
            });
        });
    }

    /** kill -9, waiting for the exit. */
    async kill(replica: number): Promise<void> {
        const node = this.nodes[replica];
        if (node === null || node === undefined || node.exited) return;
        this.killing.add(node);
        node.process.kill("SIGKILL");
        await node.exit;
        this.paused[replica] = false;
    }

    pause(replica: number): void {
        if (!this.isUp(replica) || this.paused[replica]) return;
        this.nodes[replica]!.process.kill("SIGSTOP");
        this.paused[replica] = true;
    }

    resume(replica: number): void {
        if (!this.paused[replica]) return;
        this.paused[replica] = false;
        if (this.isUp(replica)) this.nodes[replica]!.process.kill("SIGCONT");
    }

    /** Cuts every path between replicas that `connected` says cannot talk (both directions). */
    partition(connected: (a: number, b: number) => boolean): void {
        for (let from = 0; from < this.replicaCount; from++) {
            for (let to = 0; to < this.replicaCount; to++) {
                this.proxies[from]?.[to]?.setCut(!connected(from, to));
            }
        }
    }

    heal(): void {
        this.partition(() => true);
    }

    async status(replica: number): Promise<ReplicaStatus | null> {
        if (!this.isUp(replica) || this.paused[replica]) return null;
        const status = (await fetchStatus(this.ports[replica]!)) as ReplicaStatus | null;
        if (status === null || status.cluster !== this.cluster || status.replica !== replica) {
            return null;
        }
        return status;
    }

    statuses(): Promise<(ReplicaStatus | null)[]> {
        return Promise.all(this.nodes.map((_, replica) => this.status(replica)));
    }

    /** Stops every child (resuming paused ones first) and proxy, removes the directory. */
    cleanup(): Promise<void> {
        if (this.cleaning === null) {
            this.cleaning = (async () => {
                for (let replica = 0; replica < this.replicaCount; replica++) this.resume(replica);
                const children = [...this.formats, ...this.nodes].filter(
                    (child): child is Child => child !== null,
                );
                await Promise.all(children.map((child) => child.stop()));
                await Promise.all(
                    this.proxies.flat().map((proxy) => (proxy === null ? null : proxy.close())),
                );
                fs.rmSync(this.dir, { recursive: true, force: true });
            })();
        }
        return this.cleaning;
    }

    /** Last resort at process exit: SIGKILL what still runs, remove the directory. */
    cleanupSync(): void {
        for (const child of [...this.formats, ...this.nodes]) {
            if (child !== null && !child.exited) child.process.kill("SIGKILL");
        }
        fs.rmSync(this.dir, { recursive: true, force: true });
    }
}
