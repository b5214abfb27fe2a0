// The simulator replay page's script (inlined by src/web/replay.ts into `vsr sim --html` output):
// reads the trace from the page, then draws one lane per replica on a tick axis (its state over
// time: primary, backup, view change, recovering, down), a network lane (partitions, clogs),
// faults as marks (crashes, restarts, storage faults by zone, torn and misdirected writes),
// view changes as vertical boundaries, the liveness phase, and for a failing run the failure at
// its tick with the op and replicas it names. Below: the commit, requests and replies per bucket.
// Wheel zooms around the pointer, dragging pans; everything is redrawn as SVG text.
"use strict";

const trace = JSON.parse(document.getElementById("trace").textContent);
const replicaCount = trace.replicas;
const ticksTotal = Math.max(1, trace.ticks);
const layout = { left: 110, right: 16, top: 44, lane: 30, gap: 6, chart: 110 };
const marksMax = 4000;
const colours = {
    primary: "#1a3f8f",
    backup: "#90a4ae",
    view_change: "#f9a825",
    recovering: "#8e24aa",
    down: "#ffebee",
};
const view = { t0: 0, t1: ticksTotal };

/** Per replica: state segments {from, to, state, view} built from the status and crash events. */
function buildSegments() {
    const segments = [];
    const open = [];
    for (let replica = 0; replica < replicaCount; replica++) {
        segments.push([]);
        open.push(null);
    }
    const start = (replica, tick, state, viewNumber) => {
        const current = open[replica];
        if (current !== null) {
            if (current.state === state && current.view === viewNumber) return;
            current.to = tick;
            if (current.to > current.from) segments[replica].push(current);
        }
        open[replica] = { from: tick, to: tick, state, view: viewNumber };
    };
    for (const event of trace.events) {
        if (event.kind === "status") {
            const state =
                event.status === "normal" ? (event.primary ? "primary" : "backup") : event.status;
            start(event.replica, event.tick, state, event.view);
        } else if (event.kind === "crash") {
            const current = open[event.replica];
            start(event.replica, event.tick, "down", current === null ? 0 : current.view);
        }
    }
    for (let replica = 0; replica < replicaCount; replica++) {
        const current = open[replica];
        if (current === null) continue;
        current.to = ticksTotal;
        segments[replica].push(current);
    }
    return segments;
}

/** Ticks where the cluster's highest view grew: the view-change boundaries. */
function buildBoundaries() {
    const boundaries = [];
    let highest = 0;
    for (const event of trace.events) {
        if (event.kind !== "status" || event.view <= highest) continue;
        highest = event.view;
        boundaries.push({ tick: event.tick, view: highest });
    }
    return boundaries;
}

/** Network periods: {from, to, pairs} for partitions and for clogs. */
function buildPeriods(kind, field) {
    const periods = [];
    let current = null;
    for (const event of trace.events) {
        if (event.kind !== kind) continue;
        if (current !== null) {
            current.to = event.tick;
            periods.push(current);
            current = null;
        }
        if (event[field].length > 0)
            current = { from: event.tick, to: ticksTotal, pairs: event[field] };
    }
    if (current !== null) periods.push(current);
    return periods;
}

const segments = buildSegments();
const boundaries = buildBoundaries();
const partitions = buildPeriods("partition", "blocked");
const clogs = buildPeriods("clogs", "clogged");
const markKinds = [
    "crash",
    "restart",
    "recovered",
    "storage_fault",
    "torn_write",
    "misdirected_write",
];
const marks = trace.events.filter((event) => markKinds.includes(event.kind));
const heal = trace.events.find((event) => event.kind === "heal");
const failure = trace.failure;

function escape(text) {
    return String(text)
        .replaceAll("&", "&amp;")
        .replaceAll("<", "&lt;")
        .replaceAll(">", "&gt;")
        .replaceAll('"', "&quot;");
}

function plotWidth() {
    const width = document.getElementById("timeline").clientWidth || 1000;
    return Math.max(300, width - layout.left - layout.right);
}

function x(tick, width) {
    return layout.left + ((tick - view.t0) / (view.t1 - view.t0)) * width;
}

function visible(from, to) {
    return to >= view.t0 && from <= view.t1;
}

function laneY(lane) {
    return layout.top + lane * (layout.lane + layout.gap);
}

function describePairs(pairs) {
    return pairs.map((pair) => pair[0] + "→" + pair[1]).join(", ");
}

function drawLanes(parts, width) {
    const involved = failure === null ? [] : failure.replicas;
    for (let replica = 0; replica < replicaCount; replica++) {
        const y = laneY(replica + 1);
        const failed = involved.includes(replica) ? " failed" : "";
        parts.push(`<g class="lane${failed}" data-replica="${replica}">`);
        parts.push(`<text x="8" y="${y + 19}" class="label">replica ${replica}</text>`);
        parts.push(
            `<rect class="lane-bg" x="${layout.left}" y="${y}" width="${width}" height="${layout.lane}"/>`,
        );
        for (const segment of segments[replica]) {
            if (!visible(segment.from, segment.to)) continue;
            const x0 = Math.max(layout.left, x(segment.from, width));
            const x1 = Math.min(layout.left + width, x(segment.to, width));
            const title = `replica ${replica}: ${segment.state}, view ${segment.view}, ticks ${segment.from}–${segment.to}`;
            parts.push(
                `<rect class="seg" data-state="${segment.state}" x="${x0}" y="${y}" width="${Math.max(0.5, x1 - x0)}" height="${layout.lane}" fill="${colours[segment.state]}"><title>${escape(title)}</title></rect>`,
            );
        }
        parts.push("</g>");
    }
}

function drawNetwork(parts, width) {
    const y = laneY(0);
    parts.push(`<text x="8" y="${y + 19}" class="label">network</text>`);
    parts.push(
        `<rect class="lane-bg" x="${layout.left}" y="${y}" width="${width}" height="${layout.lane}"/>`,
    );
    const draw = (periods, kind, top, height) => {
        for (const period of periods) {
            if (!visible(period.from, period.to)) continue;
            const x0 = Math.max(layout.left, x(period.from, width));
            const x1 = Math.min(layout.left + width, x(period.to, width));
            const title = `${kind} ticks ${period.from}–${period.to}: ${describePairs(period.pairs)}`;
            parts.push(
                `<rect class="fault ${kind}" data-kind="${kind}" x="${x0}" y="${y + top}" width="${Math.max(1, x1 - x0)}" height="${height}"><title>${escape(title)}</title></rect>`,
            );
            // The replicas on the blocked or clogged paths get a thin band in their lanes.
            const touched = new Set(period.pairs.flat());
            for (const replica of touched) {
                const laneTop = laneY(replica + 1) + (kind === "partition" ? layout.lane - 5 : 0);
                parts.push(
                    `<rect class="band ${kind}" x="${x0}" y="${laneTop}" width="${Math.max(1, x1 - x0)}" height="5"><title>${escape(title)}</title></rect>`,
                );
            }
        }
    };
    draw(partitions, "partition", 2, layout.lane / 2 - 2);
    draw(clogs, "clog", layout.lane / 2, layout.lane / 2 - 2);
}

function markShape(event, cx, cy) {
    switch (event.kind) {
        case "crash":
            return `<path d="M${cx - 5},${cy - 5}L${cx + 5},${cy + 5}M${cx - 5},${cy + 5}L${cx + 5},${cy - 5}" class="mark crash"/>`;
        case "restart":
        case "recovered":
            return `<circle cx="${cx}" cy="${cy}" r="3.5" class="mark ${event.kind}"/>`;
        case "storage_fault":
            return `<path d="M${cx},${cy - 6}L${cx + 5},${cy + 4}L${cx - 5},${cy + 4}Z" class="mark storage zone-${event.zone}"/>`;
        default:
            return `<path d="M${cx},${cy - 5}L${cx + 5},${cy}L${cx},${cy + 5}L${cx - 5},${cy}Z" class="mark write"/>`;
    }
}

function drawMarks(parts, width) {
    let drawn = 0;
    let hidden = 0;
    for (const event of marks) {
        if (event.tick < view.t0 || event.tick > view.t1) continue;
        if (drawn >= marksMax) {
            hidden++;
            continue;
        }
        drawn++;
        const cx = x(event.tick, width);
        const cy = laneY(event.replica + 1) + layout.lane / 2;
        const detail =
            event.kind === "storage_fault"
                ? `${event.count} storage fault(s) in ${event.zone}`
                : event.kind.replace("_", " ") + (event.count ? ` ×${event.count}` : "");
        const title = `tick ${event.tick}, replica ${event.replica}: ${detail}`;
        parts.push(
            `<g class="fault" data-kind="${event.kind}"><title>${escape(title)}</title>${markShape(event, cx, cy)}</g>`,
        );
    }
    return hidden;
}

function drawVerticals(parts, width, height) {
    for (const boundary of boundaries) {
        if (boundary.tick < view.t0 || boundary.tick > view.t1) continue;
        const bx = x(boundary.tick, width);
        parts.push(
            `<g class="view-boundary" data-view="${boundary.view}"><line x1="${bx}" x2="${bx}" y1="${layout.top - 4}" y2="${height}"/><text x="${bx + 2}" y="${layout.top - 8}">v${boundary.view}</text><title>view ${boundary.view} from tick ${boundary.tick}</title></g>`,
        );
    }
    if (heal !== undefined && heal.tick >= view.t0 && heal.tick <= view.t1) {
        const hx = x(heal.tick, width);
        const anchor = hx > layout.left + width * 0.7 ? "end" : "start";
        parts.push(
            `<g class="heal"><line x1="${hx}" x2="${hx}" y1="4" y2="${height}"/><text x="${anchor === "end" ? hx - 3 : hx + 3}" y="12" text-anchor="${anchor}">faults healed (liveness phase)</text></g>`,
        );
    }
    if (failure !== null && failure.tick >= view.t0 && failure.tick <= view.t1) {
        const fx = x(failure.tick, width);
        const what = `${failure.kind} failure at tick ${failure.tick}`;
        parts.push(
            `<g class="failure-mark"><line x1="${fx}" x2="${fx}" y1="4" y2="${height}"/><text x="${fx - 4}" y="26" text-anchor="end">${escape(what)}</text><title>${escape(failure.check)}</title></g>`,
        );
    }
}

function drawCharts(parts, width, top) {
    const series = trace.series;
    const count = series.commit.length;
    if (count === 0) return top;
    const bucket = series.bucket_ticks;
    const height = layout.chart;
    const y0 = top + height;
    parts.push(`<text x="8" y="${top + 14}" class="label">commit</text>`);
    parts.push(`<text x="8" y="${top + 30}" class="label small">requests</text>`);
    parts.push(`<text x="8" y="${top + 44}" class="label small">replies</text>`);
    parts.push(
        `<rect class="lane-bg" x="${layout.left}" y="${top}" width="${width}" height="${height}"/>`,
    );
    const commitMax = Math.max(1, ...series.commit);
    const countMax = Math.max(1, ...series.requests, ...series.replies);
    const points = [];
    for (let index = 0; index < count; index++) {
        const tick = Math.min(ticksTotal, (index + 1) * bucket);
        if (tick < view.t0 - bucket || tick > view.t1 + bucket) continue;
        const px = x(tick, width);
        points.push(
            px.toFixed(1) +
                "," +
                (y0 - (series.commit[index] / commitMax) * (height - 4)).toFixed(1),
        );
        const barWidth = Math.max(1, (bucket / (view.t1 - view.t0)) * width * 0.4);
        const requests = (series.requests[index] / countMax) * (height / 2);
        const replies = (series.replies[index] / countMax) * (height / 2);
        parts.push(
            `<rect class="bar requests" x="${px - barWidth}" y="${y0 - requests}" width="${barWidth}" height="${requests}"/>`,
        );
        parts.push(
            `<rect class="bar replies" x="${px}" y="${y0 - replies}" width="${barWidth}" height="${replies}"/>`,
        );
    }
    parts.push(
        `<polyline class="commit" points="${points.join(" ")}"><title>highest commit (max ${commitMax})</title></polyline>`,
    );
    return y0;
}

function drawAxis(parts, width, y) {
    const span = view.t1 - view.t0;
    const step = 10 ** Math.floor(Math.log10(span / 5));
    const stride = span / step > 20 ? step * 5 : span / step > 8 ? step * 2 : step;
    for (let tick = Math.ceil(view.t0 / stride) * stride; tick <= view.t1; tick += stride) {
        const ax = x(tick, width);
        parts.push(
            `<line class="tick" x1="${ax}" x2="${ax}" y1="${y}" y2="${y + 5}"/><text class="axis" x="${ax}" y="${y + 17}" text-anchor="middle">${Math.round(tick)}</text>`,
        );
    }
    parts.push(
        `<text class="axis" x="${layout.left + width}" y="${y + 32}" text-anchor="end">tick (${trace.tick_ms} ms each)</text>`,
    );
}

function render() {
    const width = plotWidth();
    const parts = [];
    const lanesBottom = laneY(replicaCount + 1);
    drawLanes(parts, width);
    drawNetwork(parts, width);
    const hidden = drawMarks(parts, width);
    const chartsBottom = drawCharts(parts, width, lanesBottom + 4);
    drawVerticals(parts, width, chartsBottom);
    drawAxis(parts, width, chartsBottom + 2);
    const height = chartsBottom + 40;
    const svg = `<svg id="timeline-svg" xmlns="http://www.w3.org/2000/svg" width="${width + layout.left + layout.right}" height="${height}">${parts.join("")}</svg>`;
    document.getElementById("timeline").innerHTML = svg;
    const seconds = ((view.t1 - view.t0) * trace.tick_ms) / 1000;
    document.getElementById("range").textContent =
        `ticks ${Math.round(view.t0)}–${Math.round(view.t1)} (${seconds.toFixed(1)} s simulated)` +
        (hidden > 0 ? `, ${hidden} marks not drawn: zoom in` : "");
}

function renderSummary() {
    const faults = Object.entries(trace.faults)
        .filter((entry) => entry[1] > 0)
        .map((entry) => `${entry[0]}=${entry[1]}`)
        .join(" ");
    const zones = Object.entries(trace.fault_zones)
        .filter((entry) => entry[1] > 0)
        .map((entry) => `${entry[0]}=${entry[1]}`)
        .join(" ");
    const summary = document.getElementById("summary");
    summary.innerHTML =
        `<p><b>${replicaCount}</b> replicas, <b>${trace.clients}</b> clients, <b>${trace.ticks}</b> ticks · result <b class="result-${trace.result}">${trace.result}</b> · fingerprint <code>${trace.fingerprint}</code></p>` +
        `<p>faults: ${escape(faults || "none")}${zones ? " · storage faults by zone: " + escape(zones) : ""}</p>` +
        (trace.events_dropped > 0
            ? `<p class="warning">${trace.events_dropped} events not recorded (trace bound)</p>`
            : "");
    if (failure === null) return;
    const box = document.getElementById("failure");
    box.hidden = false;
    box.dataset.op = failure.op === null ? "" : String(failure.op);
    box.dataset.replicas = failure.replicas.join(",");
    const op = failure.op === null ? "" : ` · op <b>${failure.op}</b>`;
    const replicas =
        failure.replicas.length === 0
            ? ""
            : ` · replica${failure.replicas.length > 1 ? "s" : ""} <b>${failure.replicas.join(", ")}</b>`;
    box.innerHTML = `<h2>${escape(failure.kind)} failure at tick ${failure.tick}${op}${replicas}</h2><pre>${escape(failure.check)}</pre>`;
}

function renderLegend() {
    const items = Object.entries(colours).map(
        (entry) =>
            `<span><i style="background:${entry[1]}"></i>${entry[0].replace("_", " ")}</span>`,
    );
    items.push(
        '<span><i class="partition"></i>partition</span>',
        '<span><i class="clog"></i>clog</span>',
    );
    items.push(
        "<span>× crash · ● restart/recovered · ▲ storage fault · ◆ torn/misdirected write</span>",
    );
    document.getElementById("legend").innerHTML = items.join("");
}

function zoom(factor, anchorTick) {
    const span = Math.min(ticksTotal, Math.max(20, (view.t1 - view.t0) * factor));
    const ratio = (anchorTick - view.t0) / (view.t1 - view.t0);
    let t0 = anchorTick - ratio * span;
    t0 = Math.max(0, Math.min(ticksTotal - span, t0));
    view.t0 = t0;
    view.t1 = t0 + span;
    render();
}

function tickAt(clientX) {
    const box = document.getElementById("timeline").getBoundingClientRect();
    const width = plotWidth();
    const offset = Math.max(0, Math.min(width, clientX - box.left - layout.left));
    return view.t0 + (offset / width) * (view.t1 - view.t0);
}

function bind() {
    const timeline = document.getElementById("timeline");
    timeline.addEventListener(
        "wheel",
        (event) => {
            event.preventDefault();
            zoom(event.deltaY < 0 ? 0.8 : 1.25, tickAt(event.clientX));
        },
        { passive: false },
    );
    let drag = null;
    timeline.addEventListener("mousedown", (event) => {
        drag = { x: event.clientX, t0: view.t0, t1: view.t1 };
    });
    window.addEventListener("mouseup", () => {
        drag = null;
    });
    window.addEventListener("mousemove", (event) => {
        if (drag === null) return;
        const span = drag.t1 - drag.t0;
        const shift = ((drag.x - event.clientX) / plotWidth()) * span;
        const t0 = Math.max(0, Math.min(ticksTotal - span, drag.t0 + shift));
        view.t0 = t0;
        view.t1 = t0 + span;
        render();
    });
    document.getElementById("reset").addEventListener("click", () => {
        view.t0 = 0;
        view.t1 = ticksTotal;
        render();
    });
    window.addEventListener("resize", render);
}

renderSummary();
renderLegend();
render();
bind();
document.body.dataset.rendered = "true";
