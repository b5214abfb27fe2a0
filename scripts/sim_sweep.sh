#!/usr/bin/env bash
# A sweep of simulator seeds outside CI: runs every seed of a range on all cores (one node
# process per core, each taking every jobs-th seed), shows a progress line, and ends with a
# summary of the failing seeds, each with its reason and reproduction command. Exits 1 if any
# seed failed, 2 on bad arguments.
#   scripts/sim_sweep.sh [--storm] [--ticks=T] [--jobs=N] [FIRST [LAST]]
#   (defaults: FIRST 1, LAST FIRST + 999, 20000 ticks as in CI, jobs = number of cores)
# Example: scripts/sim_sweep.sh --storm 1 400
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
    sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'
}
fail_usage() {
    echo "sim_sweep: $1" >&2
    exit 2
}
is_count() {
    [[ $1 =~ ^[0-9]{1,15}$ ]]
}

storm=0
ticks=20000
jobs=$(nproc 2>/dev/null || echo 2)
positionals=()
for arg in "$@"; do
    case $arg in
        --storm) storm=1 ;;
        --ticks=*) ticks=${arg#*=} ;;
        --jobs=*) jobs=${arg#*=} ;;
        -h | --help) usage; exit 0 ;;
        -*) fail_usage "unknown option '$arg' (try --help)" ;;
        *) positionals+=("$arg") ;;
    esac
done
[ ${#positionals[@]} -le 2 ] || fail_usage "at most two seeds (FIRST LAST) expected"
first=${positionals[0]:-1}
last=${positionals[1]:-$((first + 999))}
is_count "$first" || fail_usage "FIRST must be a non-negative integer, got '$first'"
is_count "$last" || fail_usage "LAST must be a non-negative integer, got '$last'"
is_count "$ticks" || fail_usage "--ticks must be a non-negative integer, got '$ticks'"
is_count "$jobs" && [ "$jobs" -ge 1 ] || fail_usage "--jobs must be at least 1, got '$jobs'"
[ "$first" -le "$last" ] || fail_usage "FIRST ($first) is beyond LAST ($last)"
total=$((last - first + 1))
[ "$jobs" -le "$total" ] || jobs=$total

npm run --silent build

# One worker: seeds first + worker, first + worker + jobs, ...; one line per seed:
# "<seed> <pass|safety|liveness|error> <first line of the reason>".
runner='
import { pathToFileURL } from "node:url";
const [root, first, last, ticks, storm, worker, jobs] = process.argv.slice(1);
const vopr = await import(pathToFileURL(root + "/dist/src/sim/vopr.js").href);
for (let seed = Number(first) + Number(worker); seed <= Number(last); seed += Number(jobs)) {
    let line;
    try {
        const options = { ...vopr.defaultSimOptions(seed), ticks: Number(ticks), storm: storm === "1" };
        const result = vopr.runSimulation(options);
        line = `${seed} ${result.result} ${(result.reason ?? "").split("\n")[0]}`;
    } catch (error) {
        line = `${seed} error ${String(error).split("\n")[0]}`;
    }
    process.stdout.write(line + "\n");
}
'

results=$(mktemp)
trap 'rm -f "$results"' EXIT
started=$SECONDS
{
    for ((worker = 0; worker < jobs; worker++)); do
        node --input-type=module -e "$runner" "$PWD" "$first" "$last" "$ticks" "$storm" \
            "$worker" "$jobs" &
    done
    wait
} | {
    done_count=0
    failed=0
    while read -r seed result reason; do
        done_count=$((done_count + 1))
        [ "$result" = pass ] || failed=$((failed + 1))
        echo "$seed $result $reason" >>"$results"
        printf '\rsweep: %d/%d seeds, %d failed, %ds' \
            "$done_count" "$total" "$failed" $((SECONDS - started)) >&2
    done
    echo >&2
}

flags=" --ticks=$ticks"
[ "$storm" -eq 0 ] || flags+=" --storm"
ran=$(wc -l <"$results")
failures=$(grep -v '^[0-9]* pass' "$results" | sort -n || true)
failed=0
[ -z "$failures" ] || failed=$(printf '%s\n' "$failures" | wc -l)
mode=default
[ "$storm" -eq 0 ] || mode=storm
echo "sweep: $mode seeds $first..$last, $ticks ticks: $ran ran, $failed failed," \
    "$((SECONDS - started)) s on $jobs jobs"
if [ -n "$failures" ]; then
    while read -r seed result reason; do
        echo "  seed $seed: $result: $reason"
        echo "    reproduce: node dist/src/cli.js sim --seed=$seed$flags"
    done <<<"$failures"
fi
[ "$ran" -eq "$total" ] || { echo "sweep: $((total - ran)) seeds gave no result" >&2; exit 1; }
[ "$failed" -eq 0 ]
