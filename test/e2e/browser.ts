// A real browser for the page tests: Debian's chromium driven by puppeteer-core (no browser
// download). A missing chromium fails the test loudly with how to install it: these tests are
// part of CI (.ci/run installs the package), never skipped.
// Screenshots go to the test's temporary directory, or to $VSR_SCREENSHOTS_DIR when set (how
// docs/images/ is refreshed: VSR_SCREENSHOTS_DIR=docs/images node --test dist/test/e2e/...).

import fs from "node:fs";
import path from "node:path";
import type { TestContext } from "node:test";
import puppeteer, { type Browser, type Page } from "puppeteer-core";
import type { Scope } from "./harness.js";

const candidates = ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"];

/** The chromium executable: $CHROMIUM_PATH, else Debian's; throws with the fix when absent. */
export function chromiumPath(): string {
    const configured = process.env["CHROMIUM_PATH"];
    if (configured !== undefined && configured !== "") {
        if (!fs.existsSync(configured)) throw new Error(`CHROMIUM_PATH=${configured} not found`);
        return configured;
    }
    const found = candidates.find((candidate) => fs.existsSync(candidate));
    if (found === undefined) {
        throw new Error(
            "chromium is not installed: apt-get install -y chromium (Debian's package), " +
                `or set CHROMIUM_PATH (looked in ${candidates.join(", ")})`,
        );
    }
    return found;
}

/** A headless chromium, closed after the test `t` whatever happens. */
export async function launchBrowser(t: TestContext): Promise<Browser> {
    const browser = await puppeteer.launch({
        executablePath: chromiumPath(),
        headless: true,
        // As root in CI containers chromium's sandbox cannot start; the pages are our own.
        args: ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"],
        timeout: 60_000,
    });
    t.after(() => browser.close());
    return browser;
}

/** A page of `browser` whose script errors fail the test (collected, checked by the caller). */
export async function openPage(
    browser: Browser,
    widthPx: number,
    heightPx: number,
): Promise<{ page: Page; errors: string[] }> {
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on("pageerror", (error) => errors.push(String(error)));
    await page.setViewport({ width: widthPx, height: heightPx });
    return { page, errors };
}

/** Where a screenshot named `name` goes (see the file comment). */
export function screenshotPath(scope: Scope, name: string): string {
    const directory = process.env["VSR_SCREENSHOTS_DIR"];
    if (directory === undefined || directory === "") return scope.file(name);
    fs.mkdirSync(directory, { recursive: true });
    return path.resolve(directory, name);
}

/** Takes a full-page screenshot and checks it is a non-trivial PNG. */
export async function screenshot(page: Page, file: string): Promise<void> {
    await page.screenshot({ path: file as `${string}.png`, fullPage: true });
    const bytes = fs.readFileSync(file);
    const signature = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
    if (!signature.every((byte, index) => bytes[index] === byte) || bytes.length < 10_000) {
        throw new Error(`${file} is not a screenshot (${bytes.length} bytes)`);
    }
}
