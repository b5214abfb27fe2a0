// Where the direct-I/O tests and benchmarks put their files: a fresh directory on a real disk.
// os.tmpdir() is used unless it is tmpfs, where O_DIRECT means something else (or nothing); then
// the repository's parent directory, which lives on the machine's disk.

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const tmpfsMagic = 0x01021994;
const filesystemNames: Record<number, string> = {
    [0xef53]: "ext4",
    [0x58465342]: "xfs",
    [0x9123683e]: "btrfs",
    [tmpfsMagic]: "tmpfs",
};

/** Creates a fresh directory named prefix-XXXXXX on a real disk; the caller removes it. */
export function realDiskDirectory(prefix: string): string {
    let base = os.tmpdir();
    if (fs.statfsSync(base).type === tmpfsMagic) {
        // Compiled to dist/test/disk.js: three levels up is the repository's parent.
        base = fileURLToPath(new URL("../../../", import.meta.url));
    }
    return fs.mkdtempSync(path.join(base, prefix + "-"));
}

/** The filesystem a directory lives on, by name, or its statfs magic in hex. */
export function filesystemOf(directory: string): string {
    const type = fs.statfsSync(directory).type;
    return filesystemNames[type] ?? "0x" + type.toString(16);
}
