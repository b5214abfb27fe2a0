// The workload of `vsr chaos`: long-lived clients of the client library (one Client each, over
// WebSockets to the replicas' real ports) doing get, put and delete on a few keys, each recorded
// in the history (src/check/history.ts) with monotonic nanosecond call and return times.
//
// Each worker runs one operation at a time (a closed loop with a short random think time, so a
// run of minutes stays a history the checker can search). Every put writes a value no other put
// writes ("<worker>.<sequence>"), which makes a read name the write it saw.
// Outcomes: a result is ok; an error the client raises before sending (KEY_SIZE, VALUE_SIZE,
// INVALID_EVENT) or a TABLE_FULL rejection is a failure that certainly did not take effect; any
// other error (TIMEOUT, UNREACHABLE, SESSION_EVICTED, CLOSED) is unknown: the request may still
// commit. After an unknown outcome the worker closes its client and opens a new one (a new
// session), as Jepsen replaces a crashed process: the old request is abandoned, never retried,
// and the next operation does not queue behind it.
// Randomness: each worker draws from its own PRNG seeded from the run's seed, so the sequence of
// operations a worker issues is the seed's (their timing is the real world's).

import { ClientError, Client } from "../client/client.js";
import { WebSocketTransport } from "../client/transport.js";
import { production } from "../constants.js";
import { PRNG } from "../stdx/prng.js";
import type { HistoryOp, OpInput, OpKind, OpOutput } from "../check/history.js";

export interface WorkloadOptions {
    readonly clients: number;
    readonly keys: number;
    readonly seed: number;
    readonly cluster: number;
    readonly addresses: readonly string[];
    readonly callTimeoutMs: number;
    /** Monotonic nanoseconds since the start of the run. */
    readonly nowNs: () => number;
}

const thinkMsMax = 40;
const definiteFailures = new Set(["KEY_SIZE", "VALUE_SIZE", "INVALID_EVENT", "TABLE_FULL"]);
const textDecoder = new TextDecoder();

export class Workload {
    readonly history: HistoryOp[] = [];
    private readonly options: WorkloadOptions;
    private stopping = false;
    private readonly workers: Promise<void>[] = [];
    private readonly live = new Set<Client>();
    clientsOpened = 0;

    constructor(options: WorkloadOptions) {
        this.options = options;
    }

    keyName(index: number): string {
        return `k${index}`;
    }

    start(): void {
        const seeds = new PRNG(this.options.seed);
        for (let worker = 0; worker < this.options.clients; worker++) {
            this.workers.push(this.work(worker, new PRNG(seeds.u53())));
        }
    }

    /** Stops issuing operations and waits for every worker's operation in flight to end. */
    async stop(): Promise<void> {
        this.stopping = true;
        await Promise.all(this.workers);
    }

    /** Closes every client (after stop, or on Ctrl-C). */
    close(): void {
        for (const client of this.live) client.close();
        this.live.clear();
    }

    openClient(): Client {
        const { addresses, cluster, callTimeoutMs } = this.options;
        const messageSizeMax = production.messageSizeMax;
        const client = new Client({
            transport: new WebSocketTransport({ addresses, messageSizeMax }),
            cluster,
            messageSizeMax,
            callTimeoutMs,
        });
        this.live.add(client);
        this.clientsOpened++;
        return client;
    }

    closeClient(client: Client): void {
        client.close();
        this.live.delete(client);
    }

    private async work(worker: number, prng: PRNG): Promise<void> {
        let client = this.openClient();
        let sequence = 0;
        while (!this.stopping) {
            const key = this.keyName(prng.int(this.options.keys));
            const roll = prng.int(10);
            const kind: OpKind = roll < 4 ? "get" : roll < 8 ? "put" : "delete";
            const value = kind === "put" ? `${worker}.${sequence++}` : null;
            const op = await this.invoke(client, worker, { op: kind, key, value });
            if (op.return === null) {
                this.closeClient(client);
                client = this.openClient();
            }
            await sleep(prng.int(thinkMsMax + 1));
        }
        this.closeClient(client);
    }

    /** Runs one operation and records it. */
    async invoke(client: Client, clientId: number, input: OpInput): Promise<HistoryOp> {
        const call = this.options.nowNs();
        let output: OpOutput | null = null;
        try {
            output = await run(client, input);
        } catch (error) {
            if (!(error instanceof ClientError)) throw error;
            if (definiteFailures.has(error.code)) output = { value: null, ok: false };
        }
        const op: HistoryOp = {
            client_id: clientId,
            input,
            output,
            call,
            return: output === null ? null : this.options.nowNs(),
        };
        this.history.push(op);
        return op;
    }
}

async function run(client: Client, input: OpInput): Promise<OpOutput> {
    switch (input.op) {
        case "put":
            await client.put(input.key, input.value as string);
            return { value: null, ok: true };
        case "get": {
            const value = await client.get(input.key);
            return { value: value === null ? null : textDecoder.decode(value), ok: true };
        }
        case "delete":
            return { value: null, ok: true, found: await client.delete(input.key) };
    }
}

export const sleep = (ms: number): Promise<void> =>
    new Promise((resolve) => setTimeout(resolve, ms));
