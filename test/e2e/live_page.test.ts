// The live cluster page in a real browser (chromium through puppeteer-core, see browser.ts): a
// 3-replica cluster under load; a backup's page must show three replicas, one primary and the
// commit advancing; after kill -9 of the primary the page shows that replica down and a new
// primary, within the view-change time plus the down threshold. Screenshots of both states.
// Also: the page and its assets come with the right content types and caching.

import assert from "node:assert/strict";
import { test } from "node:test";
import type { Page } from "puppeteer-core";
import { downAfterMs } from "../../src/web/cluster_view.js";
import { launchBrowser, openPage, screenshot, screenshotPath } from "./browser.js";
import { LocalCluster, Scope, sleep, waitFor } from "./harness.js";

const readyTimeoutMs = 30_000;
/** A view change (bounded by 20 s, as in cluster.test.ts) + the down threshold + polls. */
const failoverShownTimeoutMs = 30_000;

interface Row {
    replica: number;
    up: boolean;
    role: string;
    status: string;
    commit: number;
}

function rows(page: Page): Promise<Row[]> {
    return page.$$eval("#replicas tbody tr", (trs) =>
        trs.map((tr) => ({
            replica: Number(tr.getAttribute("data-replica")),
            up: tr.getAttribute("data-up") === "true",
            role: tr.getAttribute("data-role") ?? "",
            status: tr.getAttribute("data-status") ?? "",
            commit: Number(tr.getAttribute("data-commit")),
        })),
    );
}

async function assets(port: number): Promise<void> {
    const get = (path: string) => fetch(`http://127.0.0.1:${port}${path}`);
    const page = await get("/");
    assert.equal(page.status, 200);
    assert.equal(page.headers.get("content-type"), "text/html; charset=utf-8");
    assert.equal(page.headers.get("cache-control"), "no-cache");
    const html = await page.text();
    const uplot = /src="(\/assets\/uplot-[0-9.]+\.min\.js)"/.exec(html);
    assert.ok(uplot !== null, "the page names uPlot's versioned URL");
    const script = await get(uplot[1]!);
    assert.equal(script.headers.get("content-type"), "text/javascript; charset=utf-8");
    assert.match(script.headers.get("cache-control") ?? "", /immutable/);
    assert.match(await script.text(), /uPlot/);
    const app = await get("/assets/app.js");
    assert.equal(app.headers.get("content-type"), "text/javascript; charset=utf-8");
    const style = await get("/assets/style.css");
    assert.equal(style.headers.get("content-type"), "text/css; charset=utf-8");
    const data = await get("/cluster.json");
    assert.equal(data.headers.get("content-type"), "application/json");
    assert.equal(data.headers.get("cache-control"), "no-store");
    assert.equal((await get("/assets/nothing.js")).status, 404);
}

test("the live page shows the cluster, its commits, and a killed primary as down", {
    timeout: 180_000,
}, async (t) => {
    const scope = Scope.create(t);
    const cluster = await LocalCluster.format(scope, 3, "live");
    cluster.startAll();
    const ready = await cluster.waitReady(readyTimeoutMs);
    let observer = [0, 1, 2].find((replica) => !ready[replica]!.primary)!;
    await assets(cluster.ports[observer]!);
    const load = scope.spawn(["load", ...cluster.clientArgs(), "--clients=4", "--duration-s=60"]);

    const browser = await launchBrowser(t);
    const { page, errors } = await openPage(browser, 1400, 900);
    // The page must agree with /status on who is primary. Under a loaded machine a view change
    // may move the primary; if it moves to the page's own replica, the page moves to another
    // (the primary is killed below, and the page must outlive it).
    let primary = -1;
    let first: Row[] = [];
    for (let attempt = 0; attempt < 3 && (primary < 0 || primary === observer); attempt++) {
        if (primary === observer) observer = [0, 1, 2].find((replica) => replica !== primary)!;
        await page.goto(`http://127.0.0.1:${cluster.ports[observer]!}/`, { waitUntil: "load" });
        first = await waitFor(
            "three replicas up, one primary (as /status says)",
            30_000,
            async () => {
                const shown = await rows(page);
                if (shown.length !== 3 || !shown.every((row) => row.up)) return null;
                const primaries = shown.filter((row) => row.role === "primary");
                if (primaries.length !== 1 || primaries[0]!.commit === 0) return null;
                const status = await cluster.status(primaries[0]!.replica);
                return status !== null && status.primary ? shown : null;
            },
        );
        primary = first.find((row) => row.role === "primary")!.replica;
    }
    assert.notEqual(primary, observer, "the page is served by a backup");
    const commitBefore = first.find((row) => row.replica === primary)!.commit;
    await waitFor("the commit shown to advance", 20_000, async () => {
        const shown = await rows(page);
        return shown.find((row) => row.replica === primary)!.commit > commitBefore;
    });
    // Let the charts gather a few seconds of history before the picture.
    await sleep(4000);
    const charts = await page.$$eval(".uplot", (plots) => plots.length);
    assert.equal(charts, 3, "three uPlot charts");
    await screenshot(page, screenshotPath(scope, "live_page.png"));

    const killedAt = performance.now();
    cluster.node(primary).kill("SIGKILL");
    await cluster.node(primary).waitExit(10_000);
    const after = await waitFor(
        `replica ${primary} shown down and a new primary`,
        failoverShownTimeoutMs,
        async () => {
            const shown = await rows(page);
            const victim = shown.find((row) => row.replica === primary)!;
            const next = shown.filter((row) => row.up && row.role === "primary");
            return !victim.up && next.length === 1 && next[0]!.replica !== primary ? shown : null;
        },
        200,
    );
    const shownMs = Math.round(performance.now() - killedAt);
    t.diagnostic(
        `down and new primary shown ${shownMs} ms after kill -9 (down after ${downAfterMs} ms)`,
    );
    assert.equal(after.find((row) => row.replica === primary)!.role, "down");
    await sleep(3000);
    await screenshot(page, screenshotPath(scope, "live_page_failover.png"));
    assert.deepEqual(errors, [], "no script errors on the page");
    load.kill("SIGKILL");
});
