#!/usr/bin/env bash
# bench_tail.sh: the latency tail and the memory of a 3-replica cluster, against the size of its
# state. For each count in KEYS_LOADED it formats three data files with --kv-entries=KV_ENTRIES,
# starts the replicas on 127.0.0.1, loads that many distinct keys (batched, verified puts), then
# runs a closed loop of one put per call (64-byte values) at each count in CLIENTS for
# DURATION_S seconds, and prints one row per run: throughput, p50/p99/p999/max, the tail ratios
# (p99/p50, p999/p50, max/p50), and the largest replica RSS beside the KV table's size. The last
# line compares p99 at the largest client count between the first and the last KEYS_LOADED.
# With SLOW_OPS=K each run also lists its K slowest calls and what overlapped each on the client
# and on every replica (vsr load --slow-ops: GCs, loop stalls, slow writes, checkpoints, view
# changes, retries), after the table; the full JSON of every run is kept in SLOW_OPS_DIR.
#
# Usage: scripts/bench_tail.sh          (about 5 minutes with the defaults; needs `npm run build`)
# Env:   KEYS_LOADED=10000,1000000  CLIENTS=1,64  DURATION_S=60  KV_ENTRIES=2097152
#        DATA_DIR=<a directory on a real disk (O_DIRECT)>  (default: a new one under /var/tmp)
#        SLOW_OPS=0 (K > 0: attribute the K slowest calls of each run)  SLOW_OPS_DIR=<dir>
#        VSR_CLI=<path of a built cli.js> (default: this repository's dist/src/cli.js)
# Everything it starts is stopped on exit (also on Ctrl-C), and its data files are removed.
set -euo pipefail

KEYS_LOADED=${KEYS_LOADED:-10000,1000000}
CLIENTS=${CLIENTS:-1,64}
DURATION_S=${DURATION_S:-60}
KV_ENTRIES=${KV_ENTRIES:-2097152}
repo=$(cd "$(dirname "$0")/.." && pwd)
SLOW_OPS=${SLOW_OPS:-0}
cli=${VSR_CLI:-$repo/dist/src/cli.js}
# The young generation README recommends for `vsr start` and `vsr load` (and `vsr benchmark` sets):
# fixed at 16 MiB per semi-space, so the tail measured is the one a tuned deployment sees.
vsr=(node --min-semi-space-size=16 --max-semi-space-size=16 "$cli")
[[ -f "$cli" ]] || { echo "bench_tail: run npm run build first" >&2; exit 2; }
slow_flag=()
if ((SLOW_OPS > 0)); then
  slow_flag=(--slow-ops="$SLOW_OPS")
  SLOW_OPS_DIR=${SLOW_OPS_DIR:-$(mktemp -d /tmp/vsr-slow-ops.XXXXXX)}
  mkdir -p "$SLOW_OPS_DIR"
fi
slow_text=""

work=$(mktemp -d "${DATA_DIR:-/var/tmp}/vsr-bench-tail.XXXXXX")
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

rss_mib_max() {
  local address max=0 bytes
  for address in "${addresses[@]}"; do
    bytes=$(metric "$address" process_resident_memory_bytes)
    max=$(node -e "console.log(Math.max($max, ${bytes:-0} / 1048576).toFixed(0))")
  done
  echo "$max"
}

printf '%10s %8s %9s %8s %8s %8s %8s %8s %9s %8s %8s %9s\n' \
  "keys" "clients" "op/s" "p50 ms" "p99 ms" "p999 ms" "max ms" "p99/p50" "p999/p50" "max/p50" \
  "RSS MiB" "table MiB"
declare -A p99_of
IFS=, read -r -a key_counts <<<"$KEYS_LOADED"
IFS=, read -r -a client_counts <<<"$CLIENTS"
for keys in "${key_counts[@]}"; do
  cluster=$((RANDOM + 1))
  addresses=()
  for replica in 0 1 2; do addresses+=("127.0.0.1:$(free_port)"); done
  list=$(IFS=,; echo "${addresses[*]}")
  table_mib=""
  for replica in 0 1 2; do
    file="$work/$keys.$replica.vsr"
    out=$("${vsr[@]}" format --cluster=$cluster --replica=$replica --replica-count=3 \
      --kv-entries="$KV_ENTRIES" "$file")
    table_mib=$(sed -n 's/^memory: KV table \([0-9.]*\) MiB.*/\1/p' <<<"$out")
    "${vsr[@]}" start --addresses="$list" --log-level=warn "$file" 2>>"$work/replicas.log" &
    pids+=($!)
  done
  wait_up bench_tail
  # Distinct keys: with --verify every put takes a fresh key (read back at the end).
  load_clients=10
  per_client=$(((keys + load_clients - 1) / load_clients))
  batch=$((per_client < 1000 ? per_client : 1000))
  "${vsr[@]}" load --cluster=$cluster --addresses="$list" --clients=$load_clients \
    --batch=$batch --requests=$(((per_client + batch - 1) / batch * load_clients)) \
    --verify --json >"$work/preload.json"
  for clients in "${client_counts[@]}"; do
    "${vsr[@]}" load --cluster=$cluster --addresses="$list" --clients="$clients" --batch=1 \
      --value-bytes=64 --duration-s="$DURATION_S" --json "${slow_flag[@]}" >"$work/run.json"
    rss=$(rss_mib_max)
    row=$(node -e '
      const run = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
      const l = run.latency_us, ms = (us) => (us / 1000).toFixed(2), x = (a) => (a / l.p50).toFixed(1);
      console.log([run.ops_per_s, ms(l.p50), ms(l.p99), ms(l.p999), ms(l.max),
        x(l.p99), x(l.p999), x(l.max), l.p99].join(" "));' "$work/run.json")
    read -r ops p50 p99 p999 max r99 r999 rmax p99us <<<"$row"
    p99_of["$keys,$clients"]=$p99us
    printf '%10s %8s %9s %8s %8s %8s %8s %8s %9s %8s %8s %9s\n' \
      "$keys" "$clients" "$ops" "$p50" "$p99" "$p999" "$max" "$r99" "$r999" "$rmax" "$rss" \
      "$table_mib"
    if ((SLOW_OPS > 0)); then
      cp "$work/run.json" "$SLOW_OPS_DIR/$keys.$clients.json"
      slow_text+=$(node -e '
        const slow = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).slow_ops;
        const counts = Object.entries(slow.overlapCounts).map(([k, n]) => k + " " + n);
        console.log(`${process.argv[2]} keys, ${process.argv[3]} clients: ` +
          `${slow.calls.length} slowest calls overlapped by: ${counts.join(", ") || "-"}`);
        for (const call of slow.calls.slice(0, 5)) {
          console.log(`  ${call.latencyMs.toFixed(1)} ms: ${call.cause}`);
        }' "$work/run.json" "$keys" "$clients")$'\n'
    fi
  done
  stop
done
first=${key_counts[0]}
last=${key_counts[${#key_counts[@]}-1]}
top=${client_counts[${#client_counts[@]}-1]}
node -e "console.log('p99 at $top clients, $last keys / $first keys: ' +
  (${p99_of[$last,$top]} / ${p99_of[$first,$top]}).toFixed(2) + 'x')"
if ((SLOW_OPS > 0)); then
  printf '\n%s' "$slow_text"
  echo "every run's JSON (slow_ops.calls[].events: what overlapped each call): $SLOW_OPS_DIR"
fi
