// The live cluster page's script: polls /cluster.json once a second (the replica that served the
// page aggregates its peers' reports), renders the replica table and redraws three uPlot charts
// from the history the replica keeps. Plain browser JavaScript, served as is (no build step).
// A failed poll marks the page stale and keeps polling: the replica may be back in a moment.
"use strict";

const pollIntervalMs = 1000;
const chartWidthPx = 420;
const chartHeightPx = 200;
const state = { updates: 0, failures: 0, charts: null, last: null };

function text(cell, value, className) {
    cell.textContent = value === null || value === undefined ? "–" : String(value);
    if (className) cell.className = className;
}

function renderTable(data) {
    const body = document.querySelector("#replicas tbody");
    while (body.rows.length < data.replicas.length) {
        const row = body.insertRow();
        for (let cell = 0; cell < 10; cell++) row.insertCell();
    }
    while (body.rows.length > data.replicas.length) body.deleteRow(-1);
    data.replicas.forEach((replica, index) => {
        const row = body.rows[index];
        const role = replica.up ? replica.role : "–";
        row.className =
            (replica.up ? "up" : "down") + (replica.role === "primary" ? " primary" : "");
        row.dataset.replica = String(replica.replica);
        row.dataset.up = String(replica.up);
        row.dataset.role = replica.up ? replica.role : "down";
        row.dataset.status = replica.status;
        row.dataset.commit = String(replica.commit);
        const self = replica.replica === data.replica ? " (this page)" : "";
        const cells = row.cells;
        text(cells[0], replica.replica + self, "text");
        text(cells[1], replica.up ? "up" : "down", "state text");
        text(cells[2], role, "role text");
        text(cells[3], replica.up ? replica.status : "–", "text status-" + replica.status);
        text(cells[4], replica.view);
        text(cells[5], replica.op);
        text(cells[6], replica.commit);
        text(cells[7], replica.checkpoint);
        text(cells[8], replica.lag);
        text(cells[9], replica.heard_ms_ago === null ? "never" : replica.heard_ms_ago + " ms ago");
    });
}

function makeCharts() {
    const axes = [{}, { size: 60 }];
    const make = (id, series) =>
        new uPlot(
            { width: chartWidthPx, height: chartHeightPx, series: [{}, ...series], axes },
            [[], ...series.map(() => [])],
            document.getElementById(id),
        );
    return {
        commits: make("chart-commits", [{ label: "commits/s", stroke: "#1565c0", width: 2 }]),
        latency: make("chart-latency", [
            { label: "p50 ms", stroke: "#2e7d32", width: 2 },
            { label: "p99 ms", stroke: "#c62828", width: 2 },
        ]),
        views: make("chart-views", [
            { label: "view changes", stroke: "#ef6c00", width: 2, paths: uPlot.paths.bars() },
            { label: "replicas up", stroke: "#546e7a", width: 1 },
        ]),
    };
}

function renderCharts(history) {
    if (state.charts === null) state.charts = makeCharts();
    const time = history.time_s;
    state.charts.commits.setData([time, history.commits_per_s]);
    state.charts.latency.setData([time, history.latency_ms_p50, history.latency_ms_p99]);
    state.charts.views.setData([time, history.view_changes, history.replicas_up]);
}

function render(data) {
    document.title = "vsr cluster " + data.cluster;
    text(document.getElementById("title"), "vsr cluster " + data.cluster);
    const primary = data.primary === null ? "no primary" : "primary: replica " + data.primary;
    const meta = document.getElementById("meta");
    meta.className = "";
    meta.textContent =
        "served by replica " +
        data.replica +
        " of " +
        data.replica_count +
        " · " +
        primary +
        " · updated " +
        new Date(data.now_ms).toLocaleTimeString();
    document.body.dataset.primary = data.primary === null ? "none" : String(data.primary);
    renderTable(data);
    renderCharts(data.history);
}

async function poll() {
    const startedMs = performance.now();
    try {
        const response = await fetch("/cluster.json", { cache: "no-store" });
        if (!response.ok) throw new Error("HTTP " + response.status);
        const data = await response.json();
        state.last = data;
        state.updates++;
        document.body.dataset.updates = String(state.updates);
        render(data);
    } catch (error) {
        state.failures++;
        const meta = document.getElementById("meta");
        meta.className = "stale";
        meta.textContent = "cannot reach the replica (" + error.message + "); retrying";
    } finally {
        // Once a second from the start of each poll, so a slow answer does not stretch the period.
        setTimeout(poll, Math.max(0, pollIntervalMs - (performance.now() - startedMs)));
    }
}

poll();
