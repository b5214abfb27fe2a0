// `vsr chaos --html`: the history as a self-contained HTML page of SVG timelines. One lane per
// client, each operation a bar from call to return (an unknown outcome runs to the end of the
// view, hatched; a failed one is outlined only), coloured by kind; faults are bands across every
// lane with their kind and detail; every bar has a tooltip with the full record. Above the
// clients, one lane per replica shows its sampled status (views.ts): primary, backup, view
// change, recovering or down.
// On a non-linearizable verdict the checker's failing window (the operation stuck at its return,
// the operations overlapping it and the write that set the state) is outlined in red on the
// overview and drawn again in a zoomed timeline of that key alone, around the window.
// Bound: the overview draws at most `barsMax` operations (the first ones; a note says so), so a
// page of a long soak stays loadable; the zoomed view is always complete.

import { type HistoryOp, type NemesisRecord, outcome } from "../check/history.js";
import type { ChaosReport } from "./command.js";
import type { ReplicaStatusRecord } from "./views.js";

const barsMax = 40_000;
const laneHeightPx = 14;
const marginLeftPx = 70;
const colours = { put: "#2f7d32", get: "#1f5fa8", delete: "#c26a00" } as const;
const faultColours: Record<string, string> = {
    kill: "#e53935",
    pause: "#8e24aa",
    partition: "#fb8c00",
    corruption: "#6d4c41",
};

interface View {
    readonly ops: readonly { readonly op: HistoryOp; readonly index: number }[];
    readonly faults: readonly NemesisRecord[];
    readonly startNs: number;
    readonly endNs: number;
    readonly widthPx: number;
    readonly marked: ReadonlySet<number>;
    readonly samples: readonly ReplicaStatusRecord[];
}

const statusColours: Record<string, string> = {
    primary: "#222",
    normal: "#aaa",
    view_change: "#fdd835",
    recovering: "#7e57c2",
    down: "#eee",
};

export function renderHtml(
    history: readonly HistoryOp[],
    faults: readonly NemesisRecord[],
    report: ChaosReport,
    samples: readonly ReplicaStatusRecord[] = [],
): string {
    const failure = report.check.failure;
    const marked = new Set<number>(failure?.opIndexes ?? []);
    let endNs = 1;
    for (const op of history) endNs = Math.max(endNs, op.return ?? op.call);
    for (const fault of faults) endNs = Math.max(endNs, fault.end ?? fault.start);
    const all = history.slice(0, barsMax).map((op, index) => ({ op, index }));
    const overview = svg({
        ops: all,
        faults,
        startNs: 0,
        endNs,
        widthPx: Math.min(20_000, Math.max(1200, Math.round(endNs / 1e7))),
        marked,
        samples,
    });
    let zoom = "";
    if (failure !== null) {
        const window = failure.opIndexes.map((index) => history[index] as HistoryOp);
        const from = Math.min(...window.map((op) => op.call)) - 2e8;
        const to = Math.max(...window.map((op) => op.return ?? op.call)) + 2e8;
        const ops = history
            .map((op, index) => ({ op, index }))
            .filter(({ op }) => op.input.key === failure.key)
            .filter(({ op }) => op.call <= to && (op.return ?? Infinity) >= from);
        zoom =
            `<h2>Failing window: key ${escape(failure.key)} (value there: ` +
            `${escape(String(failure.state))}), operation #${failure.stuckIndex} cannot ` +
            `take effect before its return</h2>\n` +
            svg({ ops, faults, startNs: from, endNs: to, widthPx: 1600, marked, samples });
    }
    const note =
        history.length > barsMax
            ? `<p>The overview shows the first ${barsMax} of ${history.length} operations.</p>`
            : "";
    return (
        `<!doctype html>\n<html><head><meta charset="utf-8"><title>vsr chaos seed ` +
        `${report.seed}</title>\n<style>body{font:13px sans-serif;margin:16px}` +
        `.scroll{overflow-x:auto;border:1px solid #ccc}</style></head><body>\n` +
        `<h1>vsr chaos: seed ${report.seed}, ${report.replicas} replicas, ` +
        `${report.duration_s} s</h1>\n<pre>${escape(JSON.stringify(report, null, 1))}</pre>\n` +
        `${legend()}${note}<div class="scroll">${overview}</div>\n` +
        (zoom === "" ? "" : `<div class="scroll">${zoom}</div>\n`) +
        `</body></html>\n`
    );
}

function legend(): string {
    const item = (colour: string, text: string): string =>
        `<span style="display:inline-block;width:12px;height:10px;background:${colour}"></span> ` +
        `${text} &nbsp; `;
    return (
        `<p>${item(colours.put, "put")}${item(colours.get, "get")}` +
        `${item(colours.delete, "delete")}hatched: unknown outcome; outline only: failed; ` +
        `red outline: the failing window. Replica lanes: ` +
        Object.entries(statusColours)
            .map(([status, colour]) => item(colour, status))
            .join("") +
        `Bands: ` +
        Object.entries(faultColours)
            .map(([kind, colour]) => item(colour, kind))
            .join("") +
        `</p>\n`
    );
}

function svg(view: View): string {
    const replicas = 1 + Math.max(-1, ...view.samples.map((s) => s.replica_status.replica));
    const lanes = [...new Set(view.ops.map(({ op }) => op.client_id))].sort((a, b) => a - b);
    const heightPx = (replicas + lanes.length + 2) * laneHeightPx;
    const spanNs = Math.max(1, view.endNs - view.startNs);
    const x = (ns: number): number =>
        marginLeftPx +
        (Math.min(Math.max(ns, view.startNs), view.endNs) - view.startNs) *
            ((view.widthPx - marginLeftPx) / spanNs);
    const parts: string[] = [
        `<svg xmlns="http://www.w3.org/2000/svg" width="${view.widthPx}" height="${heightPx}">`,
        `<defs><pattern id="hatch" width="4" height="4" patternUnits="userSpaceOnUse">` +
            `<path d="M0,4 l4,-4" stroke="#999" stroke-width="1"/></pattern></defs>`,
    ];
    for (const fault of view.faults) {
        const end = fault.end ?? view.endNs;
        if (end < view.startNs || fault.start > view.endNs) continue;
        const colour = faultColours[fault.nemesis] ?? "#999";
        const left = x(fault.start);
        parts.push(
            `<rect x="${left}" y="0" width="${Math.max(1, x(end) - left)}" height="${heightPx}" ` +
                `fill="${colour}" opacity="0.12"><title>${escape(fault.nemesis)}: ` +
                `${escape(fault.detail)}</title></rect>` +
                `<text x="${left + 2}" y="10" font-size="9" fill="${colour}">` +
                `${escape(fault.nemesis)}</text>`,
        );
    }
    for (let replica = 0; replica < replicas; replica++) {
        parts.push(...statusLane(view, replica, x));
    }
    lanes.forEach((lane, row) => {
        const y = (replicas + row + 2) * laneHeightPx - 3;
        parts.push(`<text x="2" y="${y}" font-size="10">client ${lane}</text>`);
    });
    for (const { op, index } of view.ops) {
        parts.push(bar(op, index, view, lanes.indexOf(op.client_id) + replicas, x));
    }
    parts.push(`</svg>`);
    return parts.join("\n");
}

/** One lane of a replica's sampled status: primary, backup, view change, recovering, down. */
function statusLane(view: View, replica: number, x: (ns: number) => number): string[] {
    const y = (replica + 1) * laneHeightPx + 2;
    const parts = [
        `<text x="2" y="${y + laneHeightPx - 5}" font-size="10">replica ${replica}</text>`,
    ];
    const mine = view.samples
        .map((sample) => sample.replica_status)
        .filter((sample) => sample.replica === replica);
    mine.forEach((sample, index) => {
        const end = mine[index + 1]?.at ?? view.endNs;
        if (end < view.startNs || sample.at > view.endNs) return;
        const name = sample.primary && sample.status === "normal" ? "primary" : sample.status;
        const left = x(sample.at);
        const width = Math.max(1, x(end) - left);
        parts.push(
            `<rect x="${left.toFixed(1)}" y="${y}" width="${width.toFixed(1)}" ` +
                `height="${laneHeightPx - 4}" fill="${statusColours[name] ?? "#f06292"}">` +
                `<title>replica ${replica}: ${escape(name)} view ${sample.view}</title></rect>`,
        );
    });
    return parts;
}

function bar(
    op: HistoryOp,
    index: number,
    view: View,
    row: number,
    x: (ns: number) => number,
): string {
    const fate = outcome(op);
    const y = (row + 1) * laneHeightPx + 2;
    const left = x(op.call);
    const width = Math.max(1.5, x(op.return ?? view.endNs) - left);
    const colour = colours[op.input.op];
    const fill = fate === "unknown" ? "url(#hatch)" : fate === "failed" ? "none" : colour;
    const marked = view.marked.has(index);
    const stroke = marked ? ` stroke="red" stroke-width="2"` : ` stroke="${colour}"`;
    const title = `#${index} ${JSON.stringify(op)}`;
    return (
        `<rect x="${left.toFixed(1)}" y="${y}" width="${width.toFixed(1)}" ` +
        `height="${laneHeightPx - 4}" fill="${fill}"${stroke}>` +
        `<title>${escape(title)}</title></rect>`
    );
}

function escape(text: string): string {
    return text
        .replaceAll("&", "&amp;")
        .replaceAll("<", "&lt;")
        .replaceAll(">", "&gt;")
        .replaceAll('"', "&quot;");
}
