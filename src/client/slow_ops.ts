// Slow-operation attribution for `vsr load --slow-ops=N`: keeps the N slowest calls of a run
// (when each started, how long it took, which client, how many times its request was resent),
// records this process's own GCs and event-loop stalls, and afterwards reads every replica's
// timeline (GET /timeline, src/io/timeline.ts) to list, for each slow call, what overlapped it:
// GCs, loop stalls, slow ticks, messages and writes, checkpoints, view changes and dropped
// requests, on which process. A slow call with nothing beside it is reported as unexplained.
// Times: every process stamps events with performance.timeOrigin + performance.now() (ms since
// the epoch, fractional), so the timelines of processes on one machine line up to well under a
// millisecond. Only calls of the timed loop are kept (the warm-up and --verify reads are not).
// Cost while the load runs: a comparison per call, and an insertion into a sorted array of N
// when a call beats the slowest kept; the local timeline is a preallocated ring.

import { PerformanceObserver } from "node:perf_hooks";
import { assert } from "../stdx/assert.js";
import { Timeline, TimelineKind, timelineKindNames, toWallMs } from "../io/timeline.js";
import type { CallObserver } from "./load.js";
import { addressUrl } from "./transport.js";

/** What the recorder reads of a client: its request counters (client.ts ClientStats). */
export interface RetryCounting {
    readonly stats: { readonly retries: number };
}

export interface SlowCall {
    readonly clientIndex: number;
    /** Wall clock (ms since the epoch) when the call was made. */
    readonly startMs: number;
    readonly latencyMs: number;
    /** Times the request was resent to every replica (the client's request timeout fired). */
    readonly retries: number;
    readonly failed: boolean;
}

/** One event of some process's timeline that overlapped a slow call. */
export interface OverlapEvent {
    /** "client" or "replica <i>". */
    readonly source: string;
    readonly kind: string;
    /** Event start relative to the call's start (negative: it began before). */
    readonly offsetMs: number;
    readonly durationMs: number;
    /** Zone of a slow write, grid blocks of a checkpoint, requests dropped; else "". */
    readonly detail: string;
}

export interface SlowCallReport extends SlowCall {
    readonly events: readonly OverlapEvent[];
    /** The overlapping kinds by source, longest first; "unexplained" when none. */
    readonly cause: string;
}

export interface SlowOpsReport {
    readonly calls: readonly SlowCallReport[];
    /** Of the calls kept, how many each kind of event overlapped (by kind, any source). */
    readonly overlapCounts: Readonly<Record<string, number>>;
    /** Replicas whose timeline could not be read (address: reason). */
    readonly unreadable: readonly string[];
}

/** How long before a call's start an event may begin and still count (queued work). */
const leadMs = 5;
const fetchTimeoutMs = 5000;

/** Keeps the slowest calls and this process's timeline; observe() is the load's CallObserver. */
export class SlowOpsRecorder {
    readonly capacity: number;
    /** The kept calls, slowest first. */
    readonly calls: SlowCall[] = [];
    readonly timeline = new Timeline(16_384);
    /** The clients by index, to read their retry counters (set by the client factory). */
    readonly clients: (RetryCounting | null)[] = [];
    private readonly retriesSeen: number[] = [];
    private loopTimer: NodeJS.Timeout | null = null;
    private loopLastMs = 0;
    private readonly gcObserver = new PerformanceObserver((list) => {
        for (const entry of list.getEntries()) this.timeline.recordGc(entry);
    });

    constructor(capacity: number) {
        assert(Number.isInteger(capacity) && capacity >= 1);
        this.capacity = capacity;
    }

    /** Starts watching this process's GCs and event loop (a 10 ms timer, unref'd). */
    start(): void {
        assert(this.loopTimer === null);
        this.gcObserver.observe({ entryTypes: ["gc"] });
        const intervalMs = 10;
        this.loopLastMs = performance.now();
        this.loopTimer = setInterval(() => {
            const nowMs = performance.now();
            this.timeline.recordTimerLateness(this.loopLastMs, intervalMs, nowMs);
            this.loopLastMs = nowMs;
        }, intervalMs);
        this.loopTimer.unref();
    }

    stop(): void {
        if (this.loopTimer !== null) clearInterval(this.loopTimer);
        this.loopTimer = null;
        this.gcObserver.disconnect();
    }

    readonly observe: CallObserver = (clientIndex, startMs, endMs, failed) => {
        const client = this.clients[clientIndex] ?? null;
        const retriesTotal = client === null ? 0 : client.stats.retries;
        const retries = retriesTotal - (this.retriesSeen[clientIndex] ?? 0);
        this.retriesSeen[clientIndex] = retriesTotal;
        const latencyMs = endMs - startMs;
        const calls = this.calls;
        if (calls.length === this.capacity && calls[calls.length - 1]!.latencyMs >= latencyMs) {
            return;
        }
        let index = calls.length;
        while (index > 0 && calls[index - 1]!.latencyMs < latencyMs) index--;
        const call = {
            clientIndex,
            startMs: toWallMs(startMs),
            latencyMs,
            retries,
            failed,
        };
        calls.splice(index, 0, call);
        if (calls.length > this.capacity) calls.pop();
        assert(calls.length <= this.capacity);
    };
}

interface TimelineEvent {
    readonly kind: string;
    readonly start_ms: number;
    readonly duration_ms: number;
    readonly value: number;
}

interface TimelineBody {
    readonly replica: number;
    readonly zones: readonly string[];
    readonly events: readonly TimelineEvent[];
}

interface Source {
    readonly name: string;
    readonly zones: readonly string[];
    readonly events: readonly TimelineEvent[];
}

/** Reads every replica's timeline and matches the kept calls with what overlapped them. */
export async function attributeSlowOps(
    recorder: SlowOpsRecorder,
    addresses: readonly string[],
): Promise<SlowOpsReport> {
    const sources: Source[] = [
        { name: "client", zones: [], events: JSON.parse(recorder.timeline.json(0, [])).events },
    ];
    const unreadable: string[] = [];
    await Promise.all(
        addresses.map(async (address, replica) => {
            try {
                const url = new URL("/timeline", addressUrl(address).replace(/^ws/, "http"));
                const answer = await fetch(url, { signal: AbortSignal.timeout(fetchTimeoutMs) });
                if (!answer.ok) throw new Error(`HTTP ${answer.status}`);
                const body = (await answer.json()) as TimelineBody;
                const name = `replica ${replica}`;
                sources.push({ name, zones: body.zones, events: body.events });
            } catch (error) {
                unreadable.push(`${address}: ${(error as Error).message}`);
            }
        }),
    );
    const overlapCounts: Record<string, number> = {};
    const calls = recorder.calls.map((call) => {
        const report = attributeCall(call, sources);
        const kinds = new Set(report.events.map((event) => event.kind));
        for (const kind of kinds) overlapCounts[kind] = (overlapCounts[kind] ?? 0) + 1;
        if (call.retries > 0) overlapCounts["retry"] = (overlapCounts["retry"] ?? 0) + 1;
        if (kinds.size === 0 && call.retries === 0) {
            overlapCounts["unexplained"] = (overlapCounts["unexplained"] ?? 0) + 1;
        }
        return report;
    });
    return { calls, overlapCounts, unreadable };
}

/** The events of every source overlapping [start - leadMs, end] of the call. */
export function attributeCall(call: SlowCall, sources: readonly Source[]): SlowCallReport {
    const fromMs = call.startMs - leadMs;
    const toMs = call.startMs + call.latencyMs;
    const events: OverlapEvent[] = [];
    const weightByCause = new Map<string, number>();
    for (const source of sources) {
        for (const event of source.events) {
            const endMs = event.start_ms + event.duration_ms;
            if (endMs < fromMs || event.start_ms > toMs) continue;
            events.push({
                source: source.name,
                kind: event.kind,
                offsetMs: round(event.start_ms - call.startMs),
                durationMs: round(event.duration_ms),
                detail: detailOf(event, source.zones),
            });
            const overlapMs = Math.min(endMs, toMs) - Math.max(event.start_ms, fromMs);
            const cause = `${event.kind} (${source.name})`;
            weightByCause.set(cause, (weightByCause.get(cause) ?? 0) + overlapMs);
        }
    }
    events.sort((a, b) => a.offsetMs - b.offsetMs);
    const causes = [...weightByCause.entries()]
        .sort((a, b) => b[1] - a[1])
        .map(([cause, overlapMs]) => `${cause} ${overlapMs.toFixed(1)} ms`);
    if (call.retries > 0) causes.unshift(`client retry x${call.retries}`);
    return { ...call, events, cause: causes.length === 0 ? "unexplained" : causes.join(", ") };
}

function detailOf(event: TimelineEvent, zones: readonly string[]): string {
    switch (event.kind) {
        case timelineKindNames[TimelineKind.slowWrite]:
            return zones[event.value] ?? `zone ${event.value}`;
        case timelineKindNames[TimelineKind.checkpoint]:
        case timelineKindNames[TimelineKind.stateSync]:
            return `${event.value} blocks`;
        case timelineKindNames[TimelineKind.requestsDropped]:
            return `${event.value} dropped`;
        case timelineKindNames[TimelineKind.slowTick]:
        case timelineKindNames[TimelineKind.slowMessage]:
            return `commit ${event.value}`;
        default:
            return "";
    }
}

/** The report as text: one block per slow call, then the overlap counts. */
export function formatSlowOps(report: SlowOpsReport): string {
    const lines: string[] = [];
    lines.push(`slowest ${report.calls.length} calls (events from ${leadMs} ms before each):`);
    for (const call of report.calls) {
        lines.push(
            `${call.latencyMs.toFixed(2).padStart(9)} ms  at ${isoMs(call.startMs)}` +
                `  client ${call.clientIndex}${call.failed ? "  FAILED" : ""}: ${call.cause}`,
        );
        for (const event of call.events) {
            lines.push(
                `      ${event.source.padEnd(10)} ${event.kind.padEnd(16)}` +
                    ` at ${signed(event.offsetMs)} ms for ${event.durationMs.toFixed(1)} ms` +
                    (event.detail === "" ? "" : `  ${event.detail}`),
            );
        }
    }
    const counts = Object.entries(report.overlapCounts)
        .sort((a, b) => b[1] - a[1])
        .map(([kind, count]) => `${kind} ${count}`);
    lines.push(`calls overlapped by: ${counts.length === 0 ? "-" : counts.join(", ")}`);
    for (const entry of report.unreadable) lines.push(`timeline unreadable: ${entry}`);
    return lines.join("\n") + "\n";
}

function isoMs(epochMs: number): string {
    return new Date(epochMs).toISOString().slice(11, 23);
}

function signed(value: number): string {
    return (value >= 0 ? "+" : "") + value.toFixed(1);
}

function round(value: number): number {
    return Math.round(value * 1000) / 1000;
}
