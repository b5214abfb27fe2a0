#!/usr/bin/env bash
# bench_recovery.sh: how long a replica with a full WAL and a big KV table takes to come back.
# Formats three data files with --kv-entries=KV_ENTRIES, starts the replicas on 127.0.0.1, loads
# KEYS distinct keys (batched, verified puts), then runs single-put calls until the cluster's
# head op advanced by at least WAL_OPS past the load (the 8192-slot WAL ring is full: recovery
# reads every slot), stops replica RESTART (a backup, SIGTERM, or SIGKILL with KILL=1), restarts
# it and reports:
#   open    from the restart to the replica answering /status (recovery of superblock, grid,
#           WAL; its own figure is the `recovered` log line's duration_ms, printed beside it);
#   rejoin  from the restart to the replica in normal status with its commit at the cluster's
#           commit at the moment of restart (it has rejoined and caught up).
# Repeats the stop/restart ROUNDS times (the same data), one line per round.
#
# Usage: scripts/bench_recovery.sh       (a few minutes; needs `npm run build`)
# Env:   KEYS=1000000  KV_ENTRIES=2097152  WAL_OPS=8192  ROUNDS=3  RESTART=2  KILL=0
#        DATA_DIR=<a directory on a real disk (O_DIRECT)>  (default: a new one under /var/tmp)
#        VSR_CLI=<path of a built cli.js> (default: this repository's dist/src/cli.js)
# Everything it starts is stopped on exit (also on Ctrl-C), and its data files are removed.
set -euo pipefail

KEYS=${KEYS:-1000000}
KV_ENTRIES=${KV_ENTRIES:-2097152}
WAL_OPS=${WAL_OPS:-8192}
ROUNDS=${ROUNDS:-3}
RESTART=${RESTART:-2}
KILL=${KILL:-0}
repo=$(cd "$(dirname "$0")/.." && pwd)
cli=${VSR_CLI:-$repo/dist/src/cli.js}
vsr=(node "$cli")
[[ -f "$cli" ]] || { echo "bench_recovery: run npm run build first" >&2; exit 2; }

work=$(mktemp -d "${DATA_DIR:-/var/tmp}/vsr-bench-recovery.XXXXXX")
declare -A pid_of=()
stop() {
  local replica
  for replica in "${!pid_of[@]}"; do kill "${pid_of[$replica]}" 2>/dev/null || true; done
  for replica in "${!pid_of[@]}"; do wait "${pid_of[$replica]}" 2>/dev/null || true; done
  pid_of=()
}
trap 'status=$?; stop; ((status == 0)) || tail -n 5 "$work"/*.log >&2; rm -rf "$work"' EXIT
trap 'exit 130' INT TERM

# shellcheck source=bench_lib.sh
source "$repo/scripts/bench_lib.sh"

# One field of a replica's /status (empty while it does not answer).
status_field() {
  { curl -sf --max-time 2 "http://${addresses[$1]}/status" 2>/dev/null || true; } |
    node -e 'let s="";process.stdin.on("data",(d)=>s+=d).on("end",()=>{
      try { console.log(JSON.parse(s)[process.argv[1]]) } catch { console.log("") } })' "$2"
}

start_replica() {
  local replica=$1
  "${vsr[@]}" start --addresses="$list" --log-level=info "$work/$replica.vsr" \
    2>>"$work/$replica.log" &
  pid_of[$replica]=$!
}

now_ms() { date +%s%3N; }

cluster=$((RANDOM + 1))
addresses=()
for replica in 0 1 2; do addresses+=("127.0.0.1:$(free_port)"); done
list=$(IFS=,; echo "${addresses[*]}")
for replica in 0 1 2; do
  "${vsr[@]}" format --cluster=$cluster --replica=$replica --replica-count=3 \
    --kv-entries="$KV_ENTRIES" "$work/$replica.vsr" >/dev/null
  start_replica $replica
done
for replica in 0 1 2; do
  for _ in $(seq 300); do [[ -n $(status_field $replica op) ]] && break; sleep 0.1; done
done

load_clients=10
per_client=$(((KEYS + load_clients - 1) / load_clients))
batch=$((per_client < 1000 ? per_client : 1000))
echo "bench_recovery: loading $KEYS keys (--kv-entries=$KV_ENTRIES)" >&2
"${vsr[@]}" load --cluster=$cluster --addresses="$list" --clients=$load_clients --batch=$batch \
  --requests=$(((per_client + batch - 1) / batch * load_clients)) --verify --json \
  >"$work/preload.json"
primary_op() {
  local replica op
  for replica in 0 1 2; do
    [[ $(status_field $replica role) == primary ]] || continue
    status_field $replica op
    return
  done
  echo 0
}
target=$(($(primary_op) + WAL_OPS))
echo "bench_recovery: filling the WAL: single puts until op $target" >&2
while (($(primary_op) < target)); do
  "${vsr[@]}" load --cluster=$cluster --addresses="$list" --clients=64 --batch=1 \
    --value-bytes=64 --requests=4096 --json >/dev/null
done

echo "bench_recovery: preload lost $(node -e \
  'console.log(JSON.parse(require("fs").readFileSync(process.argv[1])).lost)' "$work/preload.json")\
 acknowledged keys (must be 0)" >&2
printf '%6s %10s %10s %8s %10s %9s\n' "round" "op" "commit" "open s" "recovered" "rejoin s"
for round in $(seq "$ROUNDS"); do
  replica=$RESTART
  [[ $(status_field $replica role) == primary ]] && replica=$(((RESTART + 1) % 3))
  kill "-$( ((KILL == 1)) && echo KILL || echo TERM)" "${pid_of[$replica]}"
  wait "${pid_of[$replica]}" 2>/dev/null || true
  unset "pid_of[$replica]"
  rm -f "$work/$replica.vsr.lock"
  other=$(((replica + 1) % 3))
  commit_target=$(status_field $other commit)
  op=$(status_field $other op)
  : >"$work/$replica.log"
  started=$(now_ms)
  start_replica "$replica"
  open_ms=""
  rejoin_ms=""
  for _ in $(seq 1200); do
    status=$(status_field "$replica" status)
    if [[ -n $status && -z $open_ms ]]; then open_ms=$(($(now_ms) - started)); fi
    if [[ $status == normal ]] && (($(status_field "$replica" commit) >= commit_target)); then
      rejoin_ms=$(($(now_ms) - started))
      break
    fi
    sleep 0.05
  done
  recovered=$(node -e '
    const lines = require("fs").readFileSync(process.argv[1], "utf8").split("\n");
    const line = lines.find((l) => l.includes("\"recovered\""));
    console.log(line ? (JSON.parse(line).duration_ms / 1000).toFixed(2) + " s" : "-");' \
    "$work/$replica.log")
  seconds() { if [[ -z $1 ]]; then echo "-"; else printf '%d.%03d' $(($1 / 1000)) $(($1 % 1000)); fi; }
  printf '%6s %10s %10s %8s %10s %9s\n' "$round" "$op" "$commit_target" "$(seconds "$open_ms")" \
    "$recovered" "$(seconds "$rejoin_ms")"
done
