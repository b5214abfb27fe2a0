// Replica status samples for `vsr chaos`: every 250 ms during the run each replica's /status
// (or "down" when it does not answer: killed, paused or partitioned from us) is read, and a
// record is kept whenever a replica's status, view or primary flag changes. They go to the
// history file as {replica_status: {...}} lines and to the HTML as a lane per replica, which is
// what explains a stretch of unavailability (a view change that takes long, a replica stuck
// recovering). Bounded: one record per change, and changes need a fault or a view change.

import type { ChaosCluster } from "./cluster.js";

export interface ReplicaStatusRecord {
    readonly replica_status: {
        readonly at: number;
        readonly replica: number;
        readonly status: string;
        readonly view: number;
        readonly primary: boolean;
        readonly commit: number;
    };
}

const sampleIntervalMs = 250;

export class StatusSampler {
    readonly records: ReplicaStatusRecord[] = [];
    private readonly cluster: ChaosCluster;
    private readonly nowNs: () => number;
    private readonly last: string[];
    private timer: NodeJS.Timeout | null = null;
    private busy = false;

    constructor(cluster: ChaosCluster, nowNs: () => number) {
        this.cluster = cluster;
        this.nowNs = nowNs;
        this.last = new Array<string>(cluster.replicaCount).fill("");
    }

    start(): void {
        this.timer = setInterval(() => void this.sample(), sampleIntervalMs);
    }

    stop(): void {
        if (this.timer !== null) clearInterval(this.timer);
        this.timer = null;
    }

    private async sample(): Promise<void> {
        if (this.busy) return; // A slow answer: skip a beat rather than pile up requests.
        this.busy = true;
        try {
            const statuses = await this.cluster.statuses();
            const at = this.nowNs();
            statuses.forEach((status, replica) => {
                const record = {
                    at,
                    replica,
                    status: status?.status ?? "down",
                    view: status?.view ?? -1,
                    primary: status?.primary ?? false,
                    commit: status?.commit ?? -1,
                };
                const key = `${record.status}/${record.view}/${record.primary}`;
                if (key === this.last[replica]) return;
                this.last[replica] = key;
                this.records.push({ replica_status: record });
            });
        } finally {
            this.busy = false;
        }
    }
}
