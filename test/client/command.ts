// Runs a client command (`vsr client`, `vsr load`) in a child process, as src/cli.ts runs it: the
// exported command with these arguments, its result as the exit code. Asynchronous, so a test
// harness in this process keeps ticking while the child talks to it.

import { execFile } from "node:child_process";

const commandsUrl = new URL("../../src/client/commands.js", import.meta.url).href;

export interface CommandOutcome {
    readonly code: number;
    readonly out: string;
    readonly err: string;
}

export function runCommand(
    command: "commandClient" | "commandLoad",
    args: readonly string[],
    stdin = "",
): Promise<CommandOutcome> {
    const script =
        `const { ${command} } = await import(${JSON.stringify(commandsUrl)});` +
        `process.exitCode = await ${command}(JSON.parse(process.argv[1]));`;
    return new Promise((resolve) => {
        const child = execFile(
            process.execPath,
            ["--input-type=module", "-e", script, JSON.stringify(args)],
            { timeout: 20_000 },
            (error, out, err) => {
                const code = error === null ? 0 : typeof error.code === "number" ? error.code : -1;
                resolve({ code, out, err });
            },
        );
        child.stdin!.end(stdin);
    });
}
