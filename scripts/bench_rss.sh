#!/usr/bin/env bash
# bench_rss.sh: whether a replica's memory stays flat over a long run. Formats three data files
# (the default format, or --kv-entries=KV_ENTRIES), starts the replicas on 127.0.0.1 the way
# `npm start` and `vsr benchmark` do (a fixed 16 MiB young generation), runs a closed loop of one
# put per call (64-byte values, CLIENTS clients) for DURATION_S seconds, and samples every
# replica's RSS (/metrics: process_resident_memory_bytes) every SAMPLE_S seconds. Prints one row
# per sample, then per replica the first, last and largest RSS and last minus first, and the
# run's throughput and replica 0's last checkpointed op (so the run is known to have crossed
# several checkpoints).
#
# Usage: scripts/bench_rss.sh           (10 minutes with the defaults; needs `npm run build`)
# Env:   DURATION_S=600  SAMPLE_S=30  CLIENTS=64  KV_ENTRIES=  (empty: the default format)
#        DATA_DIR=<a directory on a real disk (O_DIRECT)>  (default: a new one under /var/tmp)
#        VSR_CLI=<path of a built cli.js> (default: this repository's dist/src/cli.js)
# Everything it starts is stopped on exit (also on Ctrl-C), and its data files are removed.
set -euo pipefail

DURATION_S=${DURATION_S:-600}
SAMPLE_S=${SAMPLE_S:-30}
CLIENTS=${CLIENTS:-64}
KV_ENTRIES=${KV_ENTRIES:-}
repo=$(cd "$(dirname "$0")/.." && pwd)
cli=${VSR_CLI:-$repo/dist/src/cli.js}
[[ -f "$cli" ]] || { echo "bench_rss: run npm run build first" >&2; exit 2; }
node_flags=(--min-semi-space-size=16 --max-semi-space-size=16)

work=$(mktemp -d "${DATA_DIR:-/var/tmp}/vsr-bench-rss.XXXXXX")
pids=()
stop() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  pids=()
}
trap 'stop; rm -rf "$work"' EXIT
trap 'exit 130' INT TERM

# shellcheck source=bench_lib.sh
source "$repo/scripts/bench_lib.sh"

cluster=$((RANDOM + 1))
addresses=()
for replica in 0 1 2; do addresses+=("127.0.0.1:$(free_port)"); done
list=$(IFS=,; echo "${addresses[*]}")
format_flags=()
[[ -n "$KV_ENTRIES" ]] && format_flags=(--kv-entries="$KV_ENTRIES")
for replica in 0 1 2; do
  file="$work/$replica.vsr"
  out=$(node "$cli" format --cluster=$cluster --replica=$replica --replica-count=3 \
    "${format_flags[@]}" "$file")
  ((replica == 0)) && grep '^memory' <<<"$out"
  node "${node_flags[@]}" "$cli" start --addresses="$list" --log-level=warn "$file" \
    2>>"$work/replicas.log" &
  pids+=($!)
done
wait_up bench_rss

node "${node_flags[@]}" "$cli" load --cluster=$cluster --addresses="$list" --clients="$CLIENTS" \
  --batch=1 --value-bytes=64 --duration-s="$DURATION_S" --json >"$work/run.json" &
load_pid=$!
pids+=($load_pid)

printf '%8s %10s %10s %10s\n' "t s" "r0 MiB" "r1 MiB" "r2 MiB"
samples="$work/samples"
start=$SECONDS
while kill -0 "$load_pid" 2>/dev/null; do
  row="$((SECONDS - start))"
  for address in "${addresses[@]}"; do
    bytes=$(metric "$address" process_resident_memory_bytes)
    row+=" $(node -e "console.log((${bytes:-0} / 1048576).toFixed(1))")"
  done
  echo "$row" >>"$samples"
  printf '%8s %10s %10s %10s\n' $row
  sleep "$SAMPLE_S"
done
wait "$load_pid"
checkpoint_op=$(metric "${addresses[0]}" vsr_checkpoint_op)
node -e '
  const rows = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n")
    .map((line) => line.split(" ").map(Number));
  for (let r = 1; r <= 3; r++) {
    const rss = rows.map((row) => row[r]);
    const first = rss[0], last = rss[rss.length - 1];
    console.log(`replica ${r - 1}: first ${first} MiB, last ${last} MiB, ` +
      `max ${Math.max(...rss)} MiB, last - first ${(last - first).toFixed(1)} MiB`);
  }
  const run = JSON.parse(require("fs").readFileSync(process.argv[2], "utf8"));
  console.log(`${run.ops_per_s} ops/s over ${process.argv[3]} s, ` +
    `replica 0 last checkpointed op ${process.argv[4]} (one checkpoint per 4,096 ops)`);' \
  "$samples" "$work/run.json" "$DURATION_S" "${checkpoint_op:-?}"
