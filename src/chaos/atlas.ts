// Storage corruption for `vsr chaos`, applied to a stopped replica's data file, within what the
// protocol promises to survive (the simulator's fault atlas, applied to files):
//   - each episode overwrites 1-3 random sectors (4 KiB of random bytes) of one zone: the WAL
//     headers ring, the WAL prepares ring, or one superblock copy;
//   - a WAL slot is corrupted on one replica only, ever (its owner): a slot's other copies stay
//     intact, so an op a quorum acknowledged is always readable somewhere (a corrupt slot is
//     repaired from peers, and a replica repairs its slots at its own pace, so "only while
//     unrepaired" is not observable from outside: once per slot is the safe reading);
//   - a superblock is corrupted in one copy only, once per replica (its other copies hold the
//     same, newest sequence: every update rewrites all copies);
//   - checkpoints and client replies are never touched (they are not repaired from peers by
//     this replica version: a corrupt current checkpoint stops the replica at open).
// Prepare sectors are drawn from a slot's first sector three times in four: a prepare of a few
// events fits in it, and corrupting bytes past a prepare's size changes nothing.

import fs from "node:fs";
import { sectorSize, headerSize } from "../constants.js";
import { defaultConfig } from "../io/node.js";
import { KvStateMachine } from "../state_machine/kv.js";
import type { PRNG } from "../stdx/prng.js";
import { type Layout, layout, superblockCopies, superblockCopySize } from "../vsr/layout.js";

const attemptsMax = 64;

export class CorruptionAtlas {
    readonly zones: Layout;
    /** The replica owning each WAL slot's corruption, -1 for none. */
    private readonly slotOwner: Int16Array;
    private readonly superblockCorrupted: boolean[];
    sectorsWritten = 0;

    constructor(replicaCount: number) {
        this.zones = layout(defaultConfig, KvStateMachine.sizeBytes(defaultConfig.kvEntriesMax));
        this.slotOwner = new Int16Array(defaultConfig.journalSlotCount).fill(-1);
        this.superblockCorrupted = new Array<boolean>(replicaCount).fill(false);
    }

    /** Corrupts the (stopped) replica's file; returns what it did, for the history. */
    corrupt(replica: number, file: string, prng: PRNG): string {
        const zone = this.superblockCorrupted[replica] ? 1 + prng.int(2) : prng.int(3);
        const count = prng.range(1, 3);
        const offsets: number[] = [];
        for (let attempt = 0; attempt < attemptsMax && offsets.length < count; attempt++) {
            const offset =
                zone === 0
                    ? this.superblockSector(prng)
                    : this.walSector(replica, zone === 1, prng);
            if (offset !== null && !offsets.includes(offset)) offsets.push(offset);
            if (zone === 0) break;
        }
        if (zone === 0) this.superblockCorrupted[replica] = true;
        const fd = fs.openSync(file, "r+");
        try {
            const bytes = new Uint8Array(sectorSize);
            for (const offset of offsets) {
                for (let index = 0; index < sectorSize; index++) bytes[index] = prng.int(256);
                fs.writeSync(fd, bytes, 0, sectorSize, offset);
                this.sectorsWritten++;
            }
            fs.fsyncSync(fd);
        } finally {
            fs.closeSync(fd);
        }
        const name = ["superblock", "wal_headers", "wal_prepares"][zone];
        return `${name} sectors at ${offsets.sort((a, b) => a - b).join(",")}`;
    }

    private superblockSector(prng: PRNG): number {
        const copy = prng.int(superblockCopies);
        const sectorsPerCopy = superblockCopySize / sectorSize;
        return (
            this.zones.superblockOffset +
            (copy * sectorsPerCopy + prng.int(sectorsPerCopy)) * sectorSize
        );
    }

    /** A sector of the WAL headers (or prepares) ring whose slots this replica may corrupt. */
    private walSector(replica: number, headers: boolean, prng: PRNG): number | null {
        const slotCount = defaultConfig.journalSlotCount;
        const slot = prng.int(slotCount);
        let first: number;
        let offset: number;
        let slotsPerSector: number;
        if (headers) {
            slotsPerSector = sectorSize / headerSize;
            first = slot - (slot % slotsPerSector);
            offset = this.zones.walHeadersOffset + (first / slotsPerSector) * sectorSize;
        } else {
            slotsPerSector = 1;
            first = slot;
            const sectorsPerSlot = defaultConfig.messageSizeMax / sectorSize;
            const sector = prng.chance(0.75) ? 0 : prng.int(sectorsPerSlot);
            offset =
                this.zones.walPreparesOffset +
                slot * defaultConfig.messageSizeMax +
                sector * sectorSize;
        }
        for (let index = first; index < first + slotsPerSector; index++) {
            const owner = this.slotOwner[index]!;
            if (owner !== -1 && owner !== replica) return null;
        }
        for (let index = first; index < first + slotsPerSector; index++)
            this.slotOwner[index] = replica;
        return offset;
    }
}
