#!/usr/bin/env node
// The live page's cost to the replica: `vsr benchmark` with the page closed and open, in
// alternating rounds (the machine is shared, so single runs are noisy; compare the medians).
// "Open" is what an open page does to its replica: the page and its assets once, then
// /cluster.json every second, here aimed at replica 0 (the primary in view 0, the worst case).
// Usage: node scripts/bench_live_page.mjs [--rounds=3] [--clients=8] [--duration-s=10]
// Prints one line per run and the medians. Needs a build (npm run build).

import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const cli = fileURLToPath(new URL("../dist/src/cli.js", import.meta.url));
const { values } = parseArgs({
    options: {
        rounds: { type: "string", default: "3" },
        clients: { type: "string", default: "8" },
        "duration-s": { type: "string", default: "10" },
    },
});
const rounds = Number(values.rounds);
const flags = [`--clients=${values.clients}`, `--duration-s=${values["duration-s"]}`];

/** Polls like an open page until stop() (the page's assets once, then the data every second). */
function openPage(port) {
    const base = `http://127.0.0.1:${port}`;
    let polls = 0;
    let failures = 0;
    const get = (path) =>
        fetch(base + path, { signal: AbortSignal.timeout(2000) })
            .then((response) => response.text())
            .then(() => polls++)
            .catch(() => failures++);
    get("/").then(() => Promise.all([get("/assets/app.js"), get("/assets/style.css")]));
    const timer = setInterval(() => get("/cluster.json"), 1000);
    return () => {
        clearInterval(timer);
        return { polls, failures };
    };
}

function runBenchmark(open) {
    return new Promise((resolve, reject) => {
        const child = spawn(process.execPath, [cli, "benchmark", ...flags], {
            stdio: ["ignore", "pipe", "pipe"],
        });
        let stdout = "";
        let stderr = "";
        let stop = null;
        child.stdout.on("data", (chunk) => {
            stdout += chunk;
        });
        child.stderr.on("data", (chunk) => {
            stderr += chunk;
            const match = /starting \d+ replicas on 127\.0\.0\.1:(\d+)/.exec(stderr);
            if (open && stop === null && match !== null) stop = openPage(Number(match[1]));
        });
        child.on("close", (code) => {
            const page = stop === null ? null : stop();
            const row = stdout
                .split("\n")
                .map((line) => line.trim().split(/\s+/).map(Number))
                .find((cells) => cells.length === 7 && cells.every(Number.isFinite));
            if (code !== 0 || row === undefined) {
                reject(new Error(`benchmark failed (${code}): ${stderr}${stdout}`));
                return;
            }
            resolve({ opsPerS: row[1], p50Ms: row[2], p99Ms: row[3], page });
        });
    });
}

const median = (numbers) => {
    const sorted = [...numbers].sort((a, b) => a - b);
    return sorted[Math.floor(sorted.length / 2)];
};

const results = { closed: [], open: [] };
for (let round = 1; round <= rounds; round++) {
    for (const mode of ["closed", "open"]) {
        const run = await runBenchmark(mode === "open");
        results[mode].push(run);
        const page = run.page === null ? "" : `  page polls ${run.page.polls}`;
        console.log(
            `round ${round} page ${mode.padEnd(6)} ops/s ${String(run.opsPerS).padStart(7)}` +
                `  p50 ${run.p50Ms.toFixed(2)} ms  p99 ${run.p99Ms.toFixed(2)} ms${page}`,
        );
    }
}
for (const mode of ["closed", "open"]) {
    const runs = results[mode];
    console.log(
        `median page ${mode.padEnd(6)} ops/s ${median(runs.map((run) => run.opsPerS))}` +
            `  p50 ${median(runs.map((run) => run.p50Ms)).toFixed(2)} ms` +
            `  p99 ${median(runs.map((run) => run.p99Ms)).toFixed(2)} ms`,
    );
}
