// The documentation a user gets: README.md and docs/*.md link only to files that exist in the
// repository (no ../shared/, no notes outside it), and the operations guide covers what the
// README promises (replacing a failed replica, /status fields, metrics, alerting, upgrades).

import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../../", import.meta.url));

function markdownFiles(): string[] {
    const docs = fs
        .readdirSync(path.join(root, "docs"))
        .filter((name) => name.endsWith(".md"))
        .map((name) => path.join("docs", name));
    return ["README.md", ...docs];
}

test("every relative link in README.md and docs/ names a file in the repository", () => {
    const broken: string[] = [];
    for (const file of markdownFiles()) {
        const text = fs.readFileSync(path.join(root, file), "utf8");
        for (const match of text.matchAll(/\]\(([^)\s]+)\)/g)) {
            const target = match[1]!.split("#")[0]!;
            if (target === "" || /^[a-z]+:/.test(target)) continue; // An anchor or a URL.
            const resolved = path.resolve(root, path.dirname(file), target);
            const inside = resolved.startsWith(root);
            if (!inside || !fs.existsSync(resolved)) broken.push(`${file}: ${match[1]}`);
        }
        assert.doesNotMatch(text, /\.\.\/shared\//, `${file} points outside the repository`);
    }
    assert.deepEqual(broken, []);
});

test("the operations guide covers replacement, status, metrics, alerts and upgrades", () => {
    const text = fs.readFileSync(path.join(root, "docs", "operations.md"), "utf8");
    for (const heading of [
        "## Replace a failed replica",
        "## Upgrades",
        "## `/status`",
        "## `/metrics`",
        "## What to alert on",
    ]) {
        assert.ok(text.includes(`\n${heading}\n`), heading);
    }
    for (const field of ["role", "log_view", "commit_lag", "last_view_change"]) {
        assert.ok(text.includes(`| \`${field}\` |`), `/status field ${field} is documented`);
    }
});
