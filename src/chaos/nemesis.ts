// The nemesis of `vsr chaos`: faults on real processes, drawn from the run's seed, one episode
// at a time (fault, hold, heal, rest). Kinds come from a shuffled bag of the four, refilled when
// empty, so every kind occurs in any run of four episodes (a 60 s run has about eight).
//   kill        kill -9 of 1..f replicas (the primary half of the time), restarted after the hold.
//   pause       SIGSTOP of 1..f replicas (the primary half of the time) for 3-5 s, longer than
//               the 2 s heartbeat timeout after which backups start a view change; then SIGCONT.
//   partition   cuts replica ↔ replica paths (PathProxy): the primary isolated, a random
//               majority/minority split, or a bridge (one replica sees both sides, the sides do
//               not see each other).
//   corruption  kill -9 of one replica, then random sectors of one zone of its data file are
//               overwritten while it is down (atlas.ts decides where), restarted after the hold.
// At most f replicas are ever down or paused at once (f = (replicas - 1) / 2), so a quorum can
// always make progress once the episode heals: before each episode the nemesis waits (up to
// 10 s, see healthyWaitMs) until every replica answers normal in one view, since a restarted
// replica still opening its data file is as down as a killed one. Holds are 1.5-4 s (pauses
// 3-5 s), rests 0.5-1.5 s after the cluster is whole again. A replica that exits on its own
// (a crash: a finding) is restarted at the next episode and reported. healAll() ends every
// fault.

import type { NemesisRecord } from "../check/history.js";
import { PRNG } from "../stdx/prng.js";
import { CorruptionAtlas } from "./atlas.js";
import type { ChaosCluster } from "./cluster.js";
import { sleep } from "./workload.js";

/** The longest hold: pauses of 3-5 s (longer than the 2 s heartbeat timeout), others 1.5-4 s. */
const holdMsMax = 5000;
/**
 * The wait for a whole cluster before an episode: 10 s, or a twelfth of a short run, so that a
 * 60 s run on a slow machine still has room for four episodes (one of each kind): 4 × (5 s wait
 * + 1.5 s rest + 5 s hold + ~1 s of kills and status reads) < 60 s - 6 s.
 */
export function healthyWaitMs(durationS: number): number {
    return Math.min(10_000, Math.max(2000, Math.round((durationS * 1000) / 12)));
}

export type FaultKind = "kill" | "pause" | "partition" | "corruption";
export const faultKinds: readonly FaultKind[] = ["kill", "pause", "partition", "corruption"];

export interface FaultCounts {
    kills: number;
    pauses: number;
    partitions: number;
    corruptions: number;
}

export class Nemesis {
    readonly records: NemesisRecord[] = [];
    readonly counts: FaultCounts = { kills: 0, pauses: 0, partitions: 0, corruptions: 0 };
    /** Episodes in progress or done, for the progress line. */
    current = "none";
    private readonly cluster: ChaosCluster;
    private readonly prng: PRNG;
    private readonly atlas: CorruptionAtlas;
    private readonly nowNs: () => number;
    private readonly bag: FaultKind[] = [];
    private readonly down = new Set<number>();
    private stopped = false;
    crashesRestarted = 0;
    /** Episodes started although the cluster had not recovered within healthyWaitMs. */
    healthyWaitsTimedOut = 0;

    private readonly healthyWaitMs: number;

    constructor(cluster: ChaosCluster, seed: number, nowNs: () => number, healthyWaitMs: number) {
        this.cluster = cluster;
        this.prng = new PRNG(seed);
        this.atlas = new CorruptionAtlas(cluster.replicaCount);
        this.nowNs = nowNs;
        this.healthyWaitMs = healthyWaitMs;
    }

    get faultsMax(): number {
        return Math.floor((this.cluster.replicaCount - 1) / 2);
    }

    /** Runs episodes until `endNs` leaves no room for another, or stop(). */
    async run(endNs: number): Promise<void> {
        while (!this.stopped) {
            this.restartCrashed();
            await this.waitHealthy(this.healthyWaitMs);
            await sleep(this.prng.range(500, 1500));
            if (this.stopped || this.nowNs() + (holdMsMax + 1000) * 1e6 > endNs) break;
            if (this.faultsMax === 0) continue; // One replica: nothing it could survive.
            await this.episode(this.nextKind());
        }
    }

    /**
     * Until every replica answers normal in one view (a restarted replica has rejoined), or
     * timeoutMs: a replica still starting up counts as down, and faults must not pile up past f.
     */
    private async waitHealthy(timeoutMs: number): Promise<void> {
        const deadline = performance.now() + timeoutMs;
        while (!this.stopped && performance.now() < deadline) {
            const statuses = await this.cluster.statuses();
            const view = statuses[0]?.view;
            if (statuses.every((status) => status?.status === "normal" && status.view === view)) {
                return;
            }
            await sleep(100);
        }
        this.healthyWaitsTimedOut++;
    }

    stop(): void {
        this.stopped = true;
    }

    private nextKind(): FaultKind {
        if (this.bag.length === 0) {
            const kinds = [...faultKinds];
            for (let index = kinds.length - 1; index > 0; index--) {
                const other = this.prng.int(index + 1);
                [kinds[index], kinds[other]] = [kinds[other]!, kinds[index]!];
            }
            this.bag.push(...kinds);
        }
        return this.bag.pop()!;
    }

    private async episode(kind: FaultKind): Promise<void> {
        const start = this.nowNs();
        let detail = "";
        let heal: () => Promise<void> | void;
        const holdMs =
            kind === "pause" ? this.prng.range(3000, holdMsMax) : this.prng.range(1500, 4000);
        if (kind === "kill" || kind === "pause") {
            const victims = await this.victims(this.prng.range(1, this.faultsMax));
            detail = `replicas ${victims.join(",")}`;
            if (kind === "kill") {
                for (const replica of victims) await this.killReplica(replica);
                this.counts.kills++;
                heal = () => this.restart(victims);
            } else {
                for (const replica of victims) this.cluster.pause(replica);
                this.counts.pauses++;
                heal = () => {
                    for (const replica of victims) this.cluster.resume(replica);
                };
            }
        } else if (kind === "partition") {
            detail = await this.partition();
            this.counts.partitions++;
            heal = () => this.cluster.heal();
        } else {
            const replica = this.prng.int(this.cluster.replicaCount);
            await this.killReplica(replica);
            const file = this.cluster.files[replica]!;
            detail = `replica ${replica}: ${this.atlas.corrupt(replica, file, this.prng)}`;
            this.counts.corruptions++;
            heal = () => this.restart([replica]);
        }
        this.current = `${kind} ${detail}`;
        const record = { nemesis: kind, detail, start, end: null as number | null };
        this.records.push(record);
        await sleep(holdMs);
        await heal();
        record.end = this.nowNs();
        this.current = "none";
    }

    /** `count` distinct replicas, the primary first half of the time. */
    private async victims(count: number): Promise<number[]> {
        const all = Array.from({ length: this.cluster.replicaCount }, (_, replica) => replica);
        const chosen: number[] = [];
        if (this.prng.chance(0.5)) {
            const primary = await this.primary();
            if (primary !== null) chosen.push(primary);
        }
        while (chosen.length < count) {
            const candidates = all.filter((replica) => !chosen.includes(replica));
            chosen.push(candidates[this.prng.int(candidates.length)]!);
        }
        return chosen.sort((a, b) => a - b);
    }

    private async primary(): Promise<number | null> {
        const statuses = await this.cluster.statuses();
        const primary = statuses.find((status) => status?.primary && status.status === "normal");
        return primary?.replica ?? null;
    }

    private async partition(): Promise<string> {
        const count = this.cluster.replicaCount;
        const mode = this.prng.int(3);
        const order = Array.from({ length: count }, (_, replica) => replica);
        for (let index = count - 1; index > 0; index--) {
            const other = this.prng.int(index + 1);
            [order[index], order[other]] = [order[other]!, order[index]!];
        }
        const side = new Array<number>(count).fill(0);
        if (mode === 0) {
            const primary = (await this.primary()) ?? order[0]!;
            side[primary] = 1;
            this.cluster.partition((a, b) => side[a] === side[b]);
            return `primary ${primary} isolated`;
        }
        if (mode === 1) {
            const minority = order.slice(0, this.prng.range(1, this.faultsMax));
            for (const replica of minority) side[replica] = 1;
            this.cluster.partition((a, b) => side[a] === side[b]);
            return `minority ${minority.sort().join(",")} | majority`;
        }
        // Bridge: order[0] talks to everyone; the rest split in two sides that cannot talk.
        const bridge = order[0]!;
        const rest = order.slice(1);
        const left = rest.slice(0, Math.ceil(rest.length / 2));
        for (const replica of left) side[replica] = 1;
        side[bridge] = 2;
        this.cluster.partition((a, b) => side[a] === side[b] || side[a] === 2 || side[b] === 2);
        return (
            `bridge ${bridge} between ${left.sort().join(",")} and ` +
            `${rest
                .filter((replica) => !left.includes(replica))
                .sort()
                .join(",")}`
        );
    }

    private async killReplica(replica: number): Promise<void> {
        this.down.add(replica);
        await this.cluster.kill(replica);
    }

    private restart(replicas: readonly number[]): void {
        for (const replica of replicas) {
            this.down.delete(replica);
            if (!this.cluster.isUp(replica)) this.cluster.start(replica);
        }
    }

    /** Restarts replicas that exited on their own (the cluster records the crash). */
    private restartCrashed(): void {
        for (let replica = 0; replica < this.cluster.replicaCount; replica++) {
            if (this.down.has(replica) || this.cluster.isUp(replica)) continue;
            this.cluster.start(replica);
            this.crashesRestarted++;
        }
    }

    /** Ends every fault: paths healed, paused replicas resumed, down ones restarted. */
    healAll(): void {
        this.stop();
        this.cluster.heal();
        for (let replica = 0; replica < this.cluster.replicaCount; replica++) {
            this.cluster.resume(replica);
        }
        this.restart([...this.down]);
        this.restartCrashed();
    }
}
