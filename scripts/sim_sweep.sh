#!/usr/bin/env bash
# A long sweep of random simulator seeds, outside CI. Prints every failing seed with its
# reproduction command; exits 1 if any failed.
#   scripts/sim_sweep.sh [count=1000] [ticks=50000] [jobs=2]
set -uo pipefail
cd "$(dirname "$0")/.."
count=${1:-1000}
ticks=${2:-50000}
jobs=${3:-2}
npm run --silent build
failures=$(mktemp)
run_seed() {
    local seed=$1 ticks=$2
    if ! node dist/src/cli.js sim --seed="$seed" --ticks="$ticks" --json >/tmp/vsr-sweep-$$-"$seed".json; then
        echo "FAIL seed=$seed: $(head -c 300 /tmp/vsr-sweep-$$-"$seed".json)"
        echo "  reproduce: node dist/src/cli.js sim --seed=$seed --ticks=$ticks"
    fi
    rm -f /tmp/vsr-sweep-$$-"$seed".json
}
export -f run_seed
# Seeds are random 53-bit integers; the sweep itself is the only place that draws them.
for _ in $(seq "$count"); do
    echo $(( (RANDOM << 38) ^ (RANDOM << 23) ^ (RANDOM << 8) ^ RANDOM ))
done | xargs -P "$jobs" -I{} bash -c "run_seed {} $ticks" | tee "$failures"
failed=$(grep -c '^FAIL' "$failures" || true)
rm -f "$failures"
echo "sweep: $count seeds, $ticks ticks each, $failed failed"
[ "$failed" -eq 0 ]
