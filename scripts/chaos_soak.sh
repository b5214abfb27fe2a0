#!/usr/bin/env bash
# A chaos soak outside CI: `vsr chaos` repeated with random seeds, one run after another (each
# run is a whole local cluster: never in parallel on a small machine), then a summary table.
#   scripts/chaos_soak.sh [duration-s=300] [runs=1] [replicas=3] [out-dir]
# Each run's JSON goes to <out-dir>/seed-<seed>.json; a failing run also keeps its history
# (.jsonl) and timeline (.html) there (every run does with CHAOS_SOAK_KEEP=1) and prints its
# reproduction command. The summary has, per
# run: ops, unknown outcomes, faults by kind, availability, the longest unavailability and the
# longest recovery after a fault healed, and the verdict. Exits 1 if any run failed.
set -uo pipefail
cd "$(dirname "$0")/.."
duration=${1:-300}
runs=${2:-1}
replicas=${3:-3}
out=${4:-chaos-soak-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$out"
npm run --silent build
failed=0
# The checker gets as long as the run: a 30-minute history holds ~400k operations.
check_limit=$(( duration > 120 ? duration : 120 ))
for run in $(seq "$runs"); do
    seed=$(( (RANDOM << 30) ^ (RANDOM << 15) ^ RANDOM ))
    base="$out/seed-$seed"
    echo "run $run/$runs: vsr chaos --seed=$seed --replicas=$replicas --duration-s=$duration"
    if node dist/src/cli.js chaos --seed="$seed" --replicas="$replicas" --duration-s="$duration" \
        --check-time-limit-s="$check_limit" --json --history="$base.jsonl" --html="$base.html" \
        >"$base.json"; then
        [ "${CHAOS_SOAK_KEEP:-0}" = 1 ] || rm -f "$base.jsonl" "$base.html"
    else
        failed=$((failed + 1))
        echo "FAIL seed=$seed: $(head -c 400 "$base.json")"
        echo "  reproduce: node dist/src/cli.js chaos --seed=$seed --replicas=$replicas" \
            "--duration-s=$duration --history=$base.jsonl --html=$base.html"
    fi
done
node --input-type=module - "$out" <<'JS'
import fs from "node:fs";
const dir = process.argv[2];
const rows = fs.readdirSync(dir).filter((name) => name.endsWith(".json")).map((name) => {
    const text = fs.readFileSync(`${dir}/${name}`, "utf8").trim();
    try { return JSON.parse(text.split("\n").pop()); } catch { return null; }
}).filter((row) => row !== null);
const columns = ["seed", "replicas", "duration_s", "ops", "unknown", "kills", "pauses",
    "partitions", "corruptions", "availability", "max_unavailable_ms", "max_recovery_ms",
    "linearizable", "lost"];
const cells = (row) => columns.map((column) => String(row[column] ?? row.faults?.[column]));
console.log(columns.join("\t"));
for (const row of rows) console.log(cells(row).join("\t"));
const sum = (key) => rows.reduce((total, row) => total + (row[key] ?? row.faults?.[key] ?? 0), 0);
const max = (key) => Math.max(0, ...rows.map((row) => row[key] ?? 0));
console.log(`total: ${rows.length} runs, ${sum("ops")} ops, ${sum("unknown")} unknown, faults ` +
    `kills=${sum("kills")} pauses=${sum("pauses")} partitions=${sum("partitions")} ` +
    `corruptions=${sum("corruptions")}, worst max_unavailable_ms=${max("max_unavailable_ms")}, ` +
    `worst max_recovery_ms=${max("max_recovery_ms")}, non-linearizable=` +
    `${rows.filter((row) => row.linearizable === false).length}, unknown verdicts=` +
    `${rows.filter((row) => row.linearizable === "unknown").length}, lost=${sum("lost")}`);
JS
echo "soak: $runs runs of $duration s with $replicas replicas, $failed failed (results in $out)"
[ "$failed" -eq 0 ]
