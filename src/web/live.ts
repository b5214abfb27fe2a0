// The live page's side of a running replica, in one object the node owns: the page's files
// (PageAssets), what this replica knows of the cluster (ClusterView), its own peer_status report
// and the request latency window it summarizes. The node calls report() once a second from a
// timer (off the protocol's path), routes HTTP paths through answer(), and hands peer reports
// from the bus to clusterView.onPeerStatus().

import type { HttpAnswer, NodeBus } from "../io/bus.js";
import type { Histogram } from "../io/metrics.js";
import { assert } from "../stdx/assert.js";
import { type Replica, Status } from "../vsr/replica.js";
import { PageAssets } from "./assets.js";
import { ClusterView, type StatusFields, zeroStatusFields } from "./cluster_view.js";
import { LatencyWindow, StatusReport } from "./status_report.js";

export class LivePage {
    readonly clusterView: ClusterView;
    private readonly cluster: number;
    private readonly assets = new PageAssets();
    private readonly statusReport: StatusReport;
    private readonly latencyWindow: LatencyWindow;
    private readonly fields: StatusFields = zeroStatusFields();

    /** Throws when the page's files are missing (an installation error). */
    constructor(cluster: number, replica: number, replicaCount: number, requests: Histogram) {
        this.cluster = cluster;
        this.clusterView = new ClusterView(replicaCount, replica);
        this.statusReport = new StatusReport(cluster, replica);
        this.latencyWindow = new LatencyWindow(requests.bounds, requests.counts);
    }

    /** GET / and the page's assets, /cluster.json; null for any other path. */
    answer(path: string, nowMs: number): HttpAnswer | null {
        if (path === "/cluster.json") {
            const body = this.clusterView.json(nowMs, this.cluster);
            return { status: 200, contentType: "application/json", body, cacheControl: "no-store" };
        }
        return this.assets.answer(path);
    }

    /** Once a second: our status to the peers and to the cluster view, and a history point. */
    report(replica: Replica, bus: NodeBus, nowMs: number): void {
        const fields = this.fields;
        assert(replica.replica === this.clusterView.replica);
        this.latencyWindow.roll();
        fields.view = replica.view;
        fields.logView = replica.logView;
        fields.status = replica.status;
        fields.primary = replica.primary && replica.status === Status.normal ? 1 : 0;
        fields.op = replica.op;
        fields.commitMin = replica.commitMin;
        fields.commitMax = replica.commitMax;
        fields.checkpointOp = replica.checkpointOp;
        fields.requestLatencyUsP50 = this.latencyWindow.latencyUsP50;
        fields.requestLatencyUsP99 = this.latencyWindow.latencyUsP99;
        fields.requestsReplied = this.latencyWindow.count;
        this.statusReport.write(fields);
        bus.sendPeerStatus(this.statusReport.bytes, this.statusReport.view);
        this.clusterView.setSelf(fields, nowMs);
        this.clusterView.sample(nowMs);
    }
}
