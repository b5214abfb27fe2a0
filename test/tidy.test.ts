// The tidy test: enforces the house style (shared STYLE.md "Boundaries", "Memory and numbers",
// rules 14-16) on the source text of every .ts file under src/. Method: each file is parsed once
// with the TypeScript compiler API; token rules run on a copy of the text whose comments and
// string literals are blanked (so prose may name a banned construct), imports are read from the
// syntax tree, function lengths from function-like nodes. Each rule is its own test, and every
// failure lists each offender as file:line:column with the construct to use instead.

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { isBuiltin } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";

// Compiled tests run from dist/test/tidy.test.js; the repository root is two levels up.
const root = fileURLToPath(new URL("../../", import.meta.url));
const lineColumnsMax = 100;
const functionLinesMax = 70;

interface SourceText {
    /** Relative to the repository root, with forward slashes: "src/vsr/header.ts". */
    readonly name: string;
    readonly lines: readonly string[];
    /** The lines with comments and string literals blanked; columns are preserved. */
    readonly codeLines: readonly string[];
    readonly file: ts.SourceFile;
}

function walk(directory: string): string[] {
    const found: string[] = [];
    for (const entry of readdirSync(directory, { withFileTypes: true })) {
        const full = path.join(directory, entry.name);
        if (entry.isDirectory()) found.push(...walk(full));
        else if (entry.isFile() && entry.name.endsWith(".ts")) found.push(full);
    }
    return found.sort();
}

function load(full: string): SourceText {
    return parse(path.relative(root, full).split(path.sep).join("/"), readFileSync(full, "utf8"));
}

function parse(name: string, text: string): SourceText {
    const file = ts.createSourceFile(name, text, ts.ScriptTarget.Latest, true);
    return {
        name,
        lines: text.split(/\r?\n/),
        codeLines: blankCommentsAndStrings(file).split(/\r?\n/),
        file,
    };
}

const stringKinds: ReadonlySet<ts.SyntaxKind> = new Set([
    ts.SyntaxKind.StringLiteral,
    ts.SyntaxKind.NoSubstitutionTemplateLiteral,
    ts.SyntaxKind.TemplateHead,
    ts.SyntaxKind.TemplateMiddle,
    ts.SyntaxKind.TemplateTail,
    ts.SyntaxKind.RegularExpressionLiteral,
]);

/** Every comment sits before some token (or the end of file), so leading ranges cover them. */
function blankCommentsAndStrings(file: ts.SourceFile): string {
    const chars = file.text.split("");
    const blank = (from: number, to: number): void => {
        for (let index = from; index < to; index++) {
            if (chars[index] !== "\n" && chars[index] !== "\r") chars[index] = " ";
        }
    };
    const visit = (node: ts.Node): void => {
        if (node.kind >= ts.SyntaxKind.FirstJSDocNode && node.kind <= ts.SyntaxKind.LastJSDocNode) {
            return; // JSDoc is a comment: blanked as the leading range of the next token.
        }
        const children = node.getChildren(file);
        if (children.length > 0) {
            for (const child of children) visit(child);
            return;
        }
        for (const range of ts.getLeadingCommentRanges(file.text, node.pos) ?? []) {
            blank(range.pos, range.end);
        }
        if (stringKinds.has(node.kind)) blank(node.getStart(file), node.end);
    };
    visit(file);
    return chars.join("");
}

const sources: readonly SourceText[] = walk(path.join(root, "src")).map(load);

function under(...directories: string[]): SourceText[] {
    return sources.filter((source) =>
        directories.some((directory) => source.name.startsWith(`src/${directory}/`)),
    );
}

function where(source: SourceText, position: number): string {
    const { line, character } = source.file.getLineAndCharacterOfPosition(position);
    return `${source.name}:${line + 1}:${character + 1}`;
}

function assertNone(offenders: readonly string[], rule: string): void {
    if (offenders.length === 0) return;
    assert.fail(`${offenders.length} violation(s) of "${rule}":\n${offenders.join("\n")}`);
}

test("src/ holds TypeScript sources to check", () => {
    assert.ok(sources.length > 0, `no .ts files under ${path.join(root, "src")}`);
    assert.ok(sources.some((source) => source.name === "src/vsr/header.ts"));
});

// ---------------------------------------------------------------------------------------------
// Banned constructs, matched on code (comments and strings blanked) unless `inComments`.

interface Ban {
    readonly construct: string;
    readonly pattern: RegExp;
    readonly replacement: string;
    readonly inComments: boolean;
}

function ban(construct: string, pattern: RegExp, replacement: string, inComments = false): Ban {
    assert.ok(!pattern.global, "a global RegExp keeps lastIndex between lines");
    return { construct, pattern, replacement, inComments };
}

const noDate = ban(
    "Date",
    /\bDate\b/,
    "take wall-clock time from the injected Time (realtimeUs) and measure durations in ticks",
);
const noRandom = ban(
    "Math.random",
    /\bMath\s*\.\s*random\b/,
    "draw from the seeded PRNG (src/stdx/prng.ts) passed in at construction",
);
const noTimers = ban(
    "setTimeout/setInterval/setImmediate",
    /\b(setTimeout|setInterval|setImmediate)\b/,
    "count ticks with a Timeout (src/vsr/timeout.ts) fired from tick()",
);

const pureBans: readonly Ban[] = [
    noDate,
    noRandom,
    noTimers,
    ban(
        "process.",
        /(?<![.\w$])process\s*\./,
        "take configuration as arguments; stdio and exit codes belong in src/cli.ts",
    ),
    ban(
        "Promise",
        /\bPromise\b/,
        "complete through a callback bound once in the constructor (`<caller>Callback`)",
    ),
    ban(
        "async",
        /(?<![.\w$])async\b/,
        "complete through a callback bound once in the constructor (`<caller>Callback`)",
    ),
    ban(
        "await",
        /(?<![.\w$])await\b/,
        "complete through a callback bound once in the constructor (`<caller>Callback`)",
    ),
    ban(
        "BigInt",
        /\b(BigInt|BigInt64Array|BigUint64Array|bigint)\b|\b(0[xX][\da-fA-F_]+|\d[\d_]*)n\b/,
        "a u64 is a number ≤ 2^53 read as two u32 halves (readU64/writeU64 in " +
            "src/vsr/header.ts); a u128 stays bytes, compared with u128Equal",
    ),
    ban(
        "getBigUint64/setBigUint64",
        /\b(get|set)Big(Ui|I)nt64\b/,
        "readU64/writeU64 in src/vsr/header.ts (no allocation)",
    ),
    ban(
        "console.",
        /(?<![.\w$])console\s*\./,
        "count the event and return a reason; src/io, src/sim or src/cli.ts log it",
    ),
    ban(
        ".shift()",
        /\.\s*shift\s*\(\s*\)/,
        "a power-of-two ring over a typed array (index & mask), never Array#shift",
    ),
    ban(
        "delete",
        /(?<![.\w$])delete\s/,
        "initialize every field in the constructor and set it to null instead of deleting it",
    ),
    ban("FIXME", /FIXME/, "fix it before it lands, or leave a TODO that says why", true),
];

const simBans: readonly Ban[] = [
    { ...noDate, replacement: "use the simulated clock (src/sim/time.ts) in ticks" },
    { ...noRandom, replacement: "draw from the cluster's seeded PRNG (src/stdx/prng.ts)" },
    { ...noTimers, replacement: "schedule by simulated ticks in the cluster's tick loop" },
    ban(
        "process.hrtime",
        /\bprocess\s*\.\s*hrtime\b/,
        "use the simulated clock (src/sim/time.ts); wall time belongs in src/cli.ts",
    ),
    ban(
        "performance.now",
        /\bperformance\s*\.\s*now\b/,
        "use the simulated clock (src/sim/time.ts); wall time belongs in src/cli.ts",
    ),
];

function banOffenders(files: readonly SourceText[], rule: Ban): string[] {
    const offenders: string[] = [];
    for (const source of files) {
        const lines = rule.inComments ? source.lines : source.codeLines;
        lines.forEach((line, index) => {
            const match = rule.pattern.exec(line);
            if (match === null) return;
            offenders.push(
                `${source.name}:${index + 1}:${match.index + 1}: ${rule.construct}` +
                    ` → ${rule.replacement}\n    ${source.lines[index]!.trim()}`,
            );
        });
    }
    return offenders;
}

const pureDirectories = ["vsr", "state_machine", "stdx"];
const pureLabel = "src/vsr, src/state_machine and src/stdx";

for (const rule of pureBans) {
    test(`${pureLabel} never use ${rule.construct} (pure core)`, () => {
        assertNone(banOffenders(under(...pureDirectories), rule), `pure: no ${rule.construct}`);
    });
}

for (const rule of simBans) {
    test(`src/sim never uses ${rule.construct} (the simulator is deterministic)`, () => {
        assertNone(banOffenders(under("sim"), rule), `simulator: no ${rule.construct}`);
    });
}

test("the bans match code, not comments, strings or look-alike names", () => {
    const sample = parse(
        "src/vsr/sample.ts",
        [
            "// No BigInt, Date, Promise or console.log here: prose may name them. FIXME",
            "/** await the delete of process.env */",
            'const text = "Date.now() 10n await";',
            "const kind = EventKind.delete + fan + 0xffn;",
            "const when = Date.now();",
            "queue.shift();",
            "delete table.key;",
            "const big = 0x1fn;",
            "async function run(): Promise<void> { await other(); }",
        ].join("\n"),
    );
    const lineOf = (rule: Ban): number[] =>
        banOffenders([sample], rule).map((offender) => Number(offender.split(":")[1]));
    const byName = (construct: string): Ban =>
        pureBans.find((rule) => rule.construct === construct)!;
    assert.deepEqual(lineOf(noDate), [5]);
    assert.deepEqual(lineOf(byName(".shift()")), [6]);
    assert.deepEqual(lineOf(byName("delete")), [7]);
    assert.deepEqual(lineOf(byName("BigInt")), [4, 8]);
    assert.deepEqual(lineOf(byName("async")), [9]);
    assert.deepEqual(lineOf(byName("await")), [9]);
    assert.deepEqual(lineOf(byName("Promise")), [9]);
    assert.deepEqual(lineOf(byName("console.")), []);
    assert.deepEqual(lineOf(byName("FIXME")), [1]);
});

// ---------------------------------------------------------------------------------------------
// Imports, read from the syntax tree.

interface ModuleReference {
    readonly specifier: string;
    readonly position: number;
    /** `import type` / `export type`: erased at compile time. */
    readonly typeOnly: boolean;
}

function moduleReferences(file: ts.SourceFile): ModuleReference[] {
    const references: ModuleReference[] = [];
    const visit = (node: ts.Node): void => {
        if (ts.isImportDeclaration(node) && ts.isStringLiteral(node.moduleSpecifier)) {
            references.push({
                specifier: node.moduleSpecifier.text,
                position: node.getStart(file),
                typeOnly: node.importClause?.isTypeOnly ?? false,
            });
        } else if (
            ts.isExportDeclaration(node) &&
            node.moduleSpecifier !== undefined &&
            ts.isStringLiteral(node.moduleSpecifier)
        ) {
            references.push({
                specifier: node.moduleSpecifier.text,
                position: node.getStart(file),
                typeOnly: node.isTypeOnly,
            });
        } else if (
            ts.isCallExpression(node) &&
            node.expression.kind === ts.SyntaxKind.ImportKeyword
        ) {
            const argument = node.arguments[0];
            references.push({
                specifier:
                    argument !== undefined && ts.isStringLiteralLike(argument)
                        ? argument.text
                        : "<computed>",
                position: node.getStart(file),
                typeOnly: false,
            });
        } else if (
            ts.isImportTypeNode(node) &&
            ts.isLiteralTypeNode(node.argument) &&
            ts.isStringLiteral(node.argument.literal)
        ) {
            references.push({
                specifier: node.argument.literal.text,
                position: node.getStart(file),
                typeOnly: true,
            });
        }
        ts.forEachChild(node, visit);
    };
    visit(file);
    return references;
}

function nodeImportOffenders(files: readonly SourceText[], replacement: string): string[] {
    const offenders: string[] = [];
    for (const source of files) {
        for (const reference of moduleReferences(source.file)) {
            if (!reference.specifier.startsWith("node:") && !isBuiltin(reference.specifier)) {
                continue;
            }
            offenders.push(
                `${where(source, reference.position)}: imports ` +
                    `"${reference.specifier}" → ${replacement}`,
            );
        }
    }
    return offenders;
}

/** The src/ directory a relative specifier of `source` lands in ("io", "sim", ...), or null. */
function targetDirectory(source: SourceText, specifier: string): string | null {
    if (!specifier.startsWith(".")) return null;
    const directory = path.posix.dirname(source.name);
    const target = path.posix.normalize(path.posix.join(directory, specifier));
    const parts = target.split("/");
    return parts[0] === "src" && parts.length > 2 ? parts[1]! : null;
}

test(`${pureLabel} import no node: modules (the world comes in through interfaces)`, () => {
    assertNone(
        nodeImportOffenders(
            under(...pureDirectories),
            "declare what you need in src/vsr/interfaces.ts; src/io and src/sim implement it",
        ),
        "pure: no node: imports",
    );
});

test("src/sim imports no node: modules (the simulator is deterministic; src/cli.ts may)", () => {
    assertNone(
        nodeImportOffenders(
            under("sim"),
            "take it from the simulated world (src/sim) or move the code to src/cli.ts",
        ),
        "simulator: no node: imports",
    );
});

function ioSimImportOffenders(files: readonly SourceText[]): string[] {
    const offenders: string[] = [];
    for (const source of files) {
        for (const reference of moduleReferences(source.file)) {
            const target = targetDirectory(source, reference.specifier);
            if (target !== "io" && target !== "sim") continue;
            offenders.push(
                `${where(source, reference.position)}: imports ` +
                    `"${reference.specifier}" → depend on an interface in src/vsr/interfaces.ts; ` +
                    "the caller passes the implementation in",
            );
        }
    }
    return offenders;
}

function stateMachineImportOffenders(files: readonly SourceText[]): string[] {
    const offenders: string[] = [];
    for (const source of files) {
        for (const reference of moduleReferences(source.file)) {
            if (targetDirectory(source, reference.specifier) !== "state_machine") continue;
            if (reference.typeOnly) continue;
            offenders.push(
                `${where(source, reference.position)}: imports ` +
                    `"${reference.specifier}" → \`import type { ... }\` (the replica gets the ` +
                    "state machine through the StateMachine interface in src/vsr/interfaces.ts)",
            );
        }
    }
    return offenders;
}

test("src/vsr never imports src/io or src/sim (they implement its interfaces)", () => {
    assertNone(ioSimImportOffenders(under("vsr")), "src/vsr: no imports from src/io or src/sim");
});

test("src/vsr imports src/state_machine only with `import type`", () => {
    assertNone(
        stateMachineImportOffenders(under("vsr")),
        "src/vsr: state_machine imports are type-only",
    );
});

// ---------------------------------------------------------------------------------------------
// Shape: line width, function length, opening comment.

test(`every line in src/ fits in ${lineColumnsMax} columns`, () => {
    const offenders: string[] = [];
    for (const source of sources) {
        source.lines.forEach((line, index) => {
            const columns = [...line].length; // Code points: "≤" is one column.
            if (columns <= lineColumnsMax) return;
            offenders.push(`${source.name}:${index + 1}: ${columns} columns`);
        });
    }
    assertNone(
        offenders,
        `lines ≤ ${lineColumnsMax} columns (wrap after an operator, a comma ` +
            "or an opening bracket; split long conditions into named constants)",
    );
});

function functionName(node: ts.FunctionLikeDeclaration, file: ts.SourceFile): string {
    if (ts.isConstructorDeclaration(node)) return "constructor";
    if (node.name !== undefined) return node.name.getText(file);
    const parent = node.parent;
    if (
        ts.isVariableDeclaration(parent) ||
        ts.isPropertyDeclaration(parent) ||
        ts.isPropertyAssignment(parent)
    ) {
        return parent.name.getText(file);
    }
    return ts.isArrowFunction(node) ? "<arrow function>" : "<function expression>";
}

function isFunctionWithBody(node: ts.Node): node is ts.FunctionLikeDeclaration {
    return (
        (ts.isFunctionDeclaration(node) ||
            ts.isMethodDeclaration(node) ||
            ts.isConstructorDeclaration(node) ||
            ts.isArrowFunction(node) ||
            ts.isFunctionExpression(node) ||
            ts.isGetAccessorDeclaration(node) ||
            ts.isSetAccessorDeclaration(node)) &&
        node.body !== undefined
    );
}

function functionOffenders(files: readonly SourceText[]): string[] {
    const offenders: string[] = [];
    for (const source of files) {
        const file = source.file;
        const visit = (node: ts.Node): void => {
            if (isFunctionWithBody(node)) {
                const start = node.getStart(file); // After leading comments and JSDoc.
                const first = file.getLineAndCharacterOfPosition(start).line;
                const last = file.getLineAndCharacterOfPosition(node.end).line;
                const lineCount = last - first + 1;
                if (lineCount > functionLinesMax) {
                    offenders.push(
                        `${where(source, start)}: ${functionName(node, file)} is ` +
                            `${lineCount} lines → split it to ≤ ${functionLinesMax}: control flow ` +
                            "in the caller, pure leaves below",
                    );
                }
            }
            ts.forEachChild(node, visit);
        };
        visit(file);
    }
    return offenders;
}

test(`every function in src/ is at most ${functionLinesMax} lines long`, () => {
    assertNone(functionOffenders(sources), `functions ≤ ${functionLinesMax} lines`);
});

test("the import and function rules catch their counterexamples", () => {
    const body = Array.from({ length: functionLinesMax - 1 }, (_, index) => `    f(${index});`);
    const sample = parse(
        "src/vsr/sample.ts",
        [
            'import { Bus } from "../io/bus.js";',
            'import type { Network } from "../sim/network.js";',
            'import { KvStateMachine } from "../state_machine/kv.js";',
            'import { type EventKind } from "../state_machine/kv.js";',
            'import type { Result } from "../state_machine/kv.js";',
            'import { readFileSync } from "node:fs";',
            'import { assert } from "../stdx/assert.js";',
            "function long(): void {",
            ...body,
            "}",
            "const short = (): void => {",
            ...body.slice(1),
            "};",
        ].join("\n"),
    );
    const lines = (offenders: string[]): number[] =>
        offenders.map((offender) => Number(offender.split(":")[1]));
    assert.deepEqual(lines(ioSimImportOffenders([sample])), [1, 2]);
    assert.deepEqual(lines(stateMachineImportOffenders([sample])), [3, 4]);
    assert.deepEqual(lines(nodeImportOffenders([sample], "")), [6]);
    assert.deepEqual(lines(functionOffenders([sample])), [8]);
});

test("every file in src/ opens with a comment block", () => {
    const offenders: string[] = [];
    for (const source of sources) {
        // A shebang (src/cli.ts) comes first by necessity; the comment block follows it.
        const index = source.lines.findIndex(
            (line, lineIndex) => line.trim() !== "" && !(lineIndex === 0 && line.startsWith("#!")),
        );
        const first = index < 0 ? "" : source.lines[index]!.trim();
        if (first.startsWith("//") || first.startsWith("/*")) continue;
        offenders.push(
            `${source.name}:${index + 1}: starts with code → open with a short ` +
                "comment: what the file owns, its invariants (and in src/sim its fault model)",
        );
    }
    assertNone(offenders, "files open with a comment block");
});
