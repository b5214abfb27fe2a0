// Runs every benchmark suite in turn: `npm run bench` (add `-- --smoke` for a quick pass, or
// `-- --json` for machine-readable lines). One suite per subject lives beside this file.

import { main as checkpoint } from "./checkpoint.bench.js";
import { main as checksum } from "./checksum.bench.js";
import { main as diskFloor } from "./disk_floor.bench.js";
import { main as journal } from "./journal.bench.js";
import { main as kv } from "./kv.bench.js";
import { main as livePage } from "./live_page.bench.js";
import { main as sim } from "./sim.bench.js";

const options = { json: process.argv.includes("--json"), smoke: process.argv.includes("--smoke") };
const suites: Array<[string, (options: { json: boolean; smoke: boolean }) => Promise<void>]> = [
    ["checksum", checksum],
    ["kv", kv],
    ["journal", journal],
    ["disk_floor", diskFloor],
    ["checkpoint", checkpoint],
    ["sim", sim],
    ["live_page", livePage],
];
for (const [name, suite] of suites) {
    if (!options.json) process.stdout.write(`\n== ${name} ==\n`);
    await suite(options);
}
