#!/usr/bin/env bash
# bench_per_op.sh: what each process of a local benchmark costs per op, in figures that hold on
# a shared machine (counts per op, not rates): CPU µs, context switches, syscalls, and the
# syscalls of the commit path by name (pwrite64: journal writes; futex: thread-pool hand-offs;
# write: peer sockets and the thread pool's eventfd; sendto/recvfrom: uWS client sockets;
# epoll_pwait: loop wake-ups). It runs `vsr benchmark` at CLIENTS clients, waits for the load
# to start, counts with `perf stat` on every replica and on the load generator (the benchmark
# process itself) for WINDOW_S seconds, and divides by the ops of that window (the run's ops/s
# times WINDOW_S: a window inside the run, so the run must be longer than WINDOW_S + 3 s).
# Why: CPU per op from `vsr benchmark --json` includes start-up and shutdown, and ops/s moves
# with whatever else runs; syscalls and switches per op say where the per-op cost comes from.
#
# Usage: scripts/bench_per_op.sh   (needs `npm run build` and `perf`; about 30 s)
# Env:   CLIENTS=64  BATCH=1  DURATION_S=14  WINDOW_S=8
#        VSR_CLI=<path of a built cli.js> (default: this repository's dist/src/cli.js)
# The benchmark it starts is stopped on exit (also on Ctrl-C); it removes its own data files.
set -euo pipefail

CLIENTS=${CLIENTS:-64}
BATCH=${BATCH:-1}
DURATION_S=${DURATION_S:-14}
WINDOW_S=${WINDOW_S:-8}
repo=$(cd "$(dirname "$0")/.." && pwd)
cli=${VSR_CLI:-$repo/dist/src/cli.js}
[[ -f "$cli" ]] || { echo "bench_per_op: run npm run build first" >&2; exit 2; }
command -v perf > /dev/null || { echo "bench_per_op: needs perf (linux-tools)" >&2; exit 2; }
((DURATION_S >= WINDOW_S + 4)) || { echo "bench_per_op: DURATION_S < WINDOW_S + 4" >&2; exit 2; }

work=$(mktemp -d /tmp/vsr-bench-per-op.XXXXXX)
bench_pid=""
stop() {
  # Only the benchmark this script started: it stops its own replicas (SIGTERM handler).
  if [[ -n "$bench_pid" ]] && kill -0 "$bench_pid" 2> /dev/null; then
    kill -TERM "$bench_pid" 2> /dev/null || true
    wait "$bench_pid" 2> /dev/null || true
  fi
  rm -rf "$work"
}
trap stop EXIT INT TERM

node "$cli" benchmark --clients="$CLIENTS" --batch="$BATCH" --duration-s="$DURATION_S" \
  > "$work/table.txt" 2> "$work/stderr.txt" &
bench_pid=$!
# The table's header is printed once the replicas are ready, just before the load starts.
for _ in $(seq 1 480); do
  grep -q "vsr benchmark:" "$work/table.txt" && break
  kill -0 "$bench_pid" 2> /dev/null || { cat "$work/stderr.txt" >&2; exit 1; }
  sleep 0.25
done
grep -q "vsr benchmark:" "$work/table.txt" || { echo "bench_per_op: no start" >&2; exit 1; }
sleep 2 # Past the load's connection set-up.

events=task-clock,context-switches,raw_syscalls:sys_enter
for name in pwrite64 futex write writev read epoll_pwait sendto recvfrom; do
  events+=",syscalls:sys_enter_$name"
done
mapfile -t replicas < <(pgrep -P "$bench_pid" -f "cli.js start" | sort -n)
((${#replicas[@]} > 0)) || { echo "bench_per_op: no replica processes found" >&2; exit 1; }
processes=("${replicas[@]}" "$bench_pid")
perf_pids=()
for index in "${!processes[@]}"; do
  perf stat -x, -e "$events" -p "${processes[$index]}" -o "$work/perf_$index.txt" \
    -- sleep "$WINDOW_S" 2> /dev/null &
  perf_pids+=($!)
done
wait "${perf_pids[@]}"
wait "$bench_pid"
bench_pid=""

cat "$work/table.txt"
ops_per_s=$(awk 'NR > 2 && $1 + 0 > 0 { print $2; exit }' "$work/table.txt")
[[ -n "$ops_per_s" ]] || { echo "bench_per_op: no result row" >&2; exit 1; }
window_ops=$((ops_per_s * WINDOW_S))
echo "per op over a ${WINDOW_S} s window (~${window_ops} ops); replicas by pid, then the load:"
for index in "${!processes[@]}"; do
  label="replica $index"
  ((index == ${#replicas[@]})) && label="load     "
  awk -F, -v ops="$window_ops" -v label="$label" '
    $3 != "" && $1 ~ /^[0-9.]+$/ {
      name = $3
      sub("syscalls:sys_enter_", "", name)
      sub("raw_syscalls:sys_enter", "syscalls", name)
      value = $1 / ops
      if (name == "task-clock") { name = "cpu_us"; value *= 1000 }
      line = line sprintf(" %s=%.2f", name, value)
    }
    END { print label line }' "$work/perf_$index.txt"
done
