// The live cluster page's files, read once at start-up into memory and served by the replica's
// HTTP routes: the page (src/web/static/index.html), its script and style sheet, and uPlot (the
// chart library, from node_modules/uplot, resolved like an import). Nothing is read per request.
//
// Caching: the page itself is `no-cache` (a new build shows at the next load); its own script and
// style are revalidated after five minutes; uPlot's URL names its version, so it is immutable.
// A missing file is an installation error: the node refuses to start with a one-line message
// (the caller turns the thrown error into one).

import fs from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { HttpAnswer } from "../io/bus.js";

/** src/web/static, from this file's place in the build (dist/src/web/assets.js) or the source. */
export function staticDirectory(): string {
    const here = path.dirname(fileURLToPath(import.meta.url));
    const candidates = [
        path.join(here, "static"),
        path.join(here, "../../../src/web/static"), // dist/src/web → the repository's src/web.
    ];
    for (const candidate of candidates) {
        if (fs.existsSync(path.join(candidate, "index.html"))) return candidate;
    }
    throw new Error(`the live page's files are missing (looked in ${candidates.join(", ")})`);
}

/** uPlot's installed version and file paths. */
export function uplotFiles(): { version: string; script: string; style: string } {
    const require = createRequire(import.meta.url);
    const packageJson = require.resolve("uplot/package.json");
    const version = (JSON.parse(fs.readFileSync(packageJson, "utf8")) as { version: string })
        .version;
    const dist = path.join(path.dirname(packageJson), "dist");
    return {
        version,
        script: path.join(dist, "uPlot.iife.min.js"),
        style: path.join(dist, "uPlot.min.css"),
    };
}

const html = "text/html; charset=utf-8";
const javascript = "text/javascript; charset=utf-8";
const css = "text/css; charset=utf-8";
const noCache = "no-cache";
const shortCache = "public, max-age=300";
const immutable = "public, max-age=31536000, immutable";

export class PageAssets {
    /** Path → answer; built once, never changed. */
    private readonly routes = new Map<string, HttpAnswer>();

    constructor() {
        const directory = staticDirectory();
        const uplot = uplotFiles();
        const read = (file: string): string => fs.readFileSync(file, "utf8");
        const scriptPath = `/assets/uplot-${uplot.version}.min.js`;
        const stylePath = `/assets/uplot-${uplot.version}.min.css`;
        const page = read(path.join(directory, "index.html"))
            .replaceAll("{{uplot_script}}", scriptPath)
            .replaceAll("{{uplot_style}}", stylePath);
        const answer = (contentType: string, body: string, cacheControl: string): HttpAnswer => ({
            status: 200,
            contentType,
            body,
            cacheControl,
        });
        this.routes.set("/", answer(html, page, noCache));
        this.routes.set("/index.html", answer(html, page, noCache));
        const app = read(path.join(directory, "app.js"));
        this.routes.set("/assets/app.js", answer(javascript, app, shortCache));
        const style = read(path.join(directory, "style.css"));
        this.routes.set("/assets/style.css", answer(css, style, shortCache));
        this.routes.set(scriptPath, answer(javascript, read(uplot.script), immutable));
        this.routes.set(stylePath, answer(css, read(uplot.style), immutable));
    }

    /** The answer for `GET path`, or null when the path is not one of the page's. */
    answer(urlPath: string): HttpAnswer | null {
        return this.routes.get(urlPath) ?? null;
    }
}
