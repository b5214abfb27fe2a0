// The package as a stranger gets it: `npm pack` (the files and exports of package.json), then
// an install of the tarball into a fresh temporary project, offline, from npm's cache (which
// `npm ci` filled; see writeConsumerProject), then:
// - a TypeScript program that imports { Client, ClientError } from "vsr-node" and runs a tiny
//   simulation from "vsr-node/sim" is type-checked by tsc against the shipped declarations
//   (including a @ts-expect-error that must be an error: `addresses` without `cluster`);
// - the program talks to a running replica (a 1-replica cluster started by this test) through
//   the client, connecting by addresses and cluster alone, and gets an immediate WRONG_CLUSTER
//   error for a wrong cluster id;
// - the installed `vsr` bin answers --version, and a one-shot put whose value is several words.

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { LocalCluster, Scope } from "../e2e/harness.js";

const repoRoot = fileURLToPath(new URL("../../../", import.meta.url));
const tscPath = path.join(repoRoot, "node_modules/typescript/bin/tsc");
const typeRoots = path.join(repoRoot, "node_modules/@types");

interface Run {
    readonly code: number;
    readonly out: string;
    readonly err: string;
}

function run(file: string, args: readonly string[], cwd: string, timeoutMs = 60_000): Promise<Run> {
    return new Promise((resolve) => {
        execFile(file, args, { cwd, timeout: timeoutMs }, (error, out, err) => {
            const code = error === null ? 0 : typeof error.code === "number" ? error.code : -1;
            resolve({ code, out, err });
        });
    });
}

/** What the consumer prints: one JSON line. */
interface ConsumerReport {
    readonly got: string | null;
    readonly missing: string | null;
    readonly deleted: boolean;
    readonly wrongCluster: string;
    readonly simResult: string;
}

const consumerSource = `
import { Client, ClientError, type ClientOptions } from "vsr-node";
import { defaultSimOptions, runSimulation } from "vsr-node/sim";

const addresses: string[] = (process.env["VSR_ADDRESSES"] ?? "").split(",");
const cluster = Number(process.env["VSR_CLUSTER"]);

// @ts-expect-error: a client given addresses must name its cluster.
const incomplete: ClientOptions = { addresses };
void incomplete;

const client = new Client({ addresses, cluster, callTimeoutMs: 20_000 });
await client.put("greeting", "hello from another project");
const value: Uint8Array | null = await client.get("greeting");
const got = value === null ? null : new TextDecoder().decode(value);
const missing = await client.get("nothing here");
const deleted: boolean = await client.delete("greeting");
client.close();

const stranger = new Client({ addresses, cluster: (cluster + 1) >>> 0, callTimeoutMs: 20_000 });
let wrongCluster = "none";
try {
    await stranger.get("greeting");
} catch (error) {
    if (error instanceof ClientError) wrongCluster = error.code;
}
stranger.close();

const sim = runSimulation({ ...defaultSimOptions(7), ticks: 1000, replicaCount: 3 });
console.log(JSON.stringify({
    got,
    missing: missing === null ? null : "found",
    deleted,
    wrongCluster,
    simResult: sim.result,
}));
`;

/**
 * The consumer's package.json (vsr-node from the tarball, nothing else) and a lockfile, so that
 * `npm ci --offline` installs from npm's cache alone: npm caches tarballs by integrity but not
 * the registry's metadata, which a plain `npm install` of a tarball needs to resolve its
 * dependencies' ranges. The lockfile pins vsr-node's runtime dependencies to the entries of the
 * repository's own lockfile (what `npm ci` put in the cache, and what the tests ran against).
 */
function writeConsumerProject(project: string, tarballDir: string, tarball: string): void {
    const own = JSON.parse(fs.readFileSync(path.join(repoRoot, "package.json"), "utf8")) as {
        version: string;
        dependencies: Record<string, string>;
        bin: Record<string, string>;
    };
    const lock = JSON.parse(fs.readFileSync(path.join(repoRoot, "package-lock.json"), "utf8")) as {
        packages: Record<string, { dev?: boolean }>;
    };
    fs.copyFileSync(path.join(tarballDir, tarball), path.join(project, tarball));
    const dependencies = { "vsr-node": `file:${tarball}` };
    const packages: Record<string, unknown> = {
        "": { name: "consumer", dependencies },
        "node_modules/vsr-node": {
            version: own.version,
            resolved: `file:${tarball}`,
            dependencies: own.dependencies,
            bin: own.bin,
        },
    };
    for (const [key, entry] of Object.entries(lock.packages)) {
        if (key.startsWith("node_modules/") && entry.dev !== true) packages[key] = entry;
    }
    const manifest = { name: "consumer", private: true, type: "module", dependencies };
    fs.writeFileSync(path.join(project, "package.json"), JSON.stringify(manifest));
    fs.writeFileSync(
        path.join(project, "package-lock.json"),
        JSON.stringify({ name: "consumer", lockfileVersion: 3, requires: true, packages }),
    );
}

const consumerTsconfig = {
    compilerOptions: {
        target: "es2022",
        module: "nodenext",
        moduleResolution: "nodenext",
        strict: true,
        // As `tsc --init` sets it: the consumer's own code is checked against our declarations.
        skipLibCheck: true,
        types: ["node"],
        typeRoots: [typeRoots],
        outDir: "out",
    },
    include: ["consumer.ts"],
};

test("the packed package installs offline, type-checks and talks to a cluster", {
    timeout: 180_000,
}, async (t) => {
    const scope = Scope.create(t);
    const project = scope.file("consumer");
    fs.mkdirSync(project);
    const npm = process.platform === "win32" ? "npm.cmd" : "npm";

    const packed = await run(
        npm,
        ["pack", "--ignore-scripts", "--json", "--pack-destination", scope.dir],
        repoRoot,
    );
    assert.equal(packed.code, 0, packed.err);
    const [info] = JSON.parse(packed.out) as { filename: string; files: { path: string }[] }[];
    const shipped = info!.files.map((file) => file.path);
    t.diagnostic(`packed ${info!.filename}: ${shipped.length} files`);
    for (const file of ["package.json", "README.md", "dist/src/index.js", "dist/src/index.d.ts"]) {
        assert.ok(shipped.includes(file), `${file} is in the tarball`);
    }
    assert.ok(shipped.includes("dist/src/cli.js"), "the vsr bin is in the tarball");
    assert.ok(
        shipped.some((file) => file.startsWith("docs/")),
        "docs/ is in the tarball",
    );
    assert.ok(shipped.includes("docs/operations.md"), "docs/ is in the tarball");
    assert.ok(!shipped.some((file) => file.startsWith("dist/test/")), "tests are not shipped");

    writeConsumerProject(project, scope.dir, info!.filename);
    const installed = await run(
        npm,
        ["ci", "--offline", "--no-audit", "--no-fund", "--ignore-scripts"],
        project,
        120_000,
    );
    assert.equal(installed.code, 0, installed.err);

    fs.writeFileSync(path.join(project, "consumer.ts"), consumerSource);
    fs.writeFileSync(path.join(project, "tsconfig.json"), JSON.stringify(consumerTsconfig));
    const compiled = await run(process.execPath, [tscPath, "-p", "."], project);
    assert.equal(compiled.code, 0, `tsc:\n${compiled.out}${compiled.err}`);

    const cluster = await LocalCluster.format(scope, 1);
    cluster.start(0);
    await cluster.waitReady(30_000);
    const consumer = await new Promise<Run>((resolve) => {
        execFile(
            process.execPath,
            ["out/consumer.js"],
            {
                cwd: project,
                timeout: 60_000,
                env: {
                    ...process.env,
                    VSR_ADDRESSES: cluster.addresses,
                    VSR_CLUSTER: String(cluster.cluster),
                },
            },
            (error, out, err) => resolve({ code: error === null ? 0 : 1, out, err }),
        );
    });
    assert.equal(consumer.code, 0, consumer.err);
    const report = JSON.parse(consumer.out.trim()) as ConsumerReport;
    assert.deepEqual(report, {
        got: "hello from another project",
        missing: null,
        deleted: true,
        wrongCluster: "WRONG_CLUSTER",
        simResult: "pass",
    });

    const bin = path.join(project, "node_modules/.bin/vsr");
    const version = await run(bin, ["--version"], project);
    assert.equal(version.code, 0, version.err);
    assert.match(version.out, /^\d+\.\d+\.\d+\n$/);
    const flags = [`--cluster=${cluster.cluster}`, `--addresses=${cluster.addresses}`];
    const put = await run(bin, ["client", ...flags, "put", "motto", "several", "words"], project);
    assert.deepEqual([put.code, put.out, put.err], [0, "ok\n", ""]);
    const get = await run(bin, ["client", ...flags, "get", "motto"], project);
    assert.deepEqual([get.code, get.out, get.err], [0, "several words\n", ""]);
});
