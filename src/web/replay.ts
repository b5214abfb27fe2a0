// `vsr sim --html`: one self-contained page replaying a simulator trace (src/sim/trace.ts). The
// page inlines everything it needs: the trace as JSON, its script (static/replay.js: a lane per
// replica on a tick axis with zoom and pan, faults as marks, view changes as boundaries, the
// failure at the end) and its style. No network access, no timestamps: the same trace gives the
// same bytes, so the same seed gives the same file.

import fs from "node:fs";
import path from "node:path";
import type { Trace } from "../sim/trace.js";
import { staticDirectory } from "./assets.js";

/** JSON that is safe inside a <script> element: no "</" and no HTML comment openers. */
export function scriptSafeJson(value: unknown): string {
    return JSON.stringify(value)
        .replaceAll("<", "\\u003c")
        .replaceAll("\u2028", "\\u2028")
        .replaceAll("\u2029", "\\u2029");
}

function escapeHtml(text: string): string {
    return text
        .replaceAll("&", "&amp;")
        .replaceAll("<", "&lt;")
        .replaceAll(">", "&gt;")
        .replaceAll('"', "&quot;");
}

/** The page for `trace`; `reproduce` is the command line that reruns the seed. */
export function replayHtml(trace: Trace, reproduce: string): string {
    const directory = staticDirectory();
    const script = fs.readFileSync(path.join(directory, "replay.js"), "utf8");
    const style = fs.readFileSync(path.join(directory, "replay.css"), "utf8");
    const title = `vsr sim seed ${trace.seed}${trace.storm ? " (storm)" : ""}: ${trace.result}`;
    return [
        "<!doctype html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        `<title>${escapeHtml(title)}</title>`,
        `<style>\n${style}</style>`,
        "</head>",
        `<body data-result="${escapeHtml(trace.result)}">`,
        `<header><h1>${escapeHtml(title)}</h1>`,
        `<p class="reproduce"><code>${escapeHtml(reproduce)}</code></p></header>`,
        '<section id="summary"></section>',
        '<section id="failure" hidden></section>',
        '<div id="controls"><button id="reset" type="button">reset zoom</button>',
        '<span id="range"></span> <span class="hint">wheel: zoom · drag: pan</span></div>',
        '<div id="timeline"></div>',
        '<div id="legend"></div>',
        `<script type="application/json" id="trace">${scriptSafeJson(trace)}</script>`,
        `<script>\n${script}</script>`,
        "</body>",
        "</html>",
        "",
    ].join("\n");
}
