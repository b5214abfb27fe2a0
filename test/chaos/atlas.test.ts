// Tests for the corruption atlas of `vsr chaos`, on sparse files of the real data file size:
// after many corruption episodes over three replicas (seeded), no WAL slot is corrupt on two
// replicas (headers or prepares), at most one superblock copy per replica is touched, and the
// client replies and checkpoints are never written.

import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { CorruptionAtlas } from "../../src/chaos/atlas.js";
import { headerSize, sectorSize } from "../../src/constants.js";
import { defaultConfig } from "../../src/io/node.js";
import { PRNG } from "../../src/stdx/prng.js";
import { superblockCopySize } from "../../src/vsr/layout.js";

/** Offsets of the non-zero sectors of the file in [from, to). */
function dirtySectors(file: string, from: number, to: number): number[] {
    const fd = fs.openSync(file, "r");
    const chunk = Buffer.alloc(1 << 20);
    const zero = Buffer.alloc(sectorSize);
    const dirty: number[] = [];
    try {
        for (let offset = from; offset < to; offset += chunk.length) {
            const length = fs.readSync(fd, chunk, 0, Math.min(chunk.length, to - offset), offset);
            for (let sector = 0; sector < length; sector += sectorSize) {
                if (!chunk.subarray(sector, sector + sectorSize).equals(zero)) {
                    dirty.push(offset + sector);
                }
            }
        }
    } finally {
        fs.closeSync(fd);
    }
    return dirty;
}

test("corruption never hits a WAL slot on two replicas nor two superblock copies", (t) => {
    const seed = Date.now();
    t.diagnostic(`seed=${seed}`);
    const replicaCount = 3;
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "vsr-atlas-"));
    t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
    const atlas = new CorruptionAtlas(replicaCount);
    const zones = atlas.zones;
    const files = Array.from({ length: replicaCount }, (_, replica) => {
        const file = path.join(dir, `replica_${replica}.vsr`);
        fs.writeFileSync(file, "");
        fs.truncateSync(file, zones.totalSize);
        return file;
    });
    const prng = new PRNG(seed);
    for (let episode = 0; episode < 90; episode++) {
        const replica = prng.int(replicaCount);
        assert.match(atlas.corrupt(replica, files[replica]!, prng), /sectors at/);
    }
    const owners = new Map<number, number>();
    const slotOf = (offset: number): number =>
        offset < zones.walPreparesOffset
            ? ((offset - zones.walHeadersOffset) / headerSize) | 0
            : ((offset - zones.walPreparesOffset) / defaultConfig.messageSizeMax) | 0;
    for (let replica = 0; replica < replicaCount; replica++) {
        const file = files[replica]!;
        const superblock = dirtySectors(file, 0, zones.walHeadersOffset);
        const copies = new Set(superblock.map((offset) => Math.floor(offset / superblockCopySize)));
        assert.ok(copies.size <= 1, `replica ${replica}: superblock copies ${[...copies]}`);
        const wal = dirtySectors(file, zones.walHeadersOffset, zones.clientRepliesOffset);
        for (const offset of wal) {
            const first = slotOf(offset);
            const slots = offset < zones.walPreparesOffset ? sectorSize / headerSize : 1;
            for (let slot = first; slot < first + slots; slot++) {
                const owner = owners.get(slot) ?? replica;
                assert.equal(owner, replica, `slot ${slot} corrupt on ${owner} and ${replica}`);
                owners.set(slot, replica);
            }
        }
        assert.deepEqual(dirtySectors(file, zones.clientRepliesOffset, zones.totalSize), []);
    }
    assert.ok(owners.size > 0);
});
