#!/usr/bin/env bash
# compare_etcd.sh: etcd 3.4 and vsr-node side by side, same machine, same minutes, same load
# shape: 3 members/replicas on 127.0.0.1, closed loop, one put of a VALUE_BYTES value per call,
# at each client count in CLIENTS. Prints one table with the ratios vsr / etcd, then both systems'
# tails (p999, max, p999/p50) from the same runs.
#
# etcd comes from Debian's packages (etcd-server, etcd-client), its load generator is
# scripts/etcd_load/main.go on etcd's own Go client (clientv3 from golang-etcd-server-dev, built
# offline in GOPATH mode). vsr runs through `vsr benchmark`. Everything this script starts is
# stopped on exit (also on Ctrl-C), and its temporary directory removed.
#
# Usage: scripts/compare_etcd.sh                 (about 3 minutes with the defaults)
# Env:   CLIENTS=1,16,64  DURATION_S=20  WARMUP_S=2  VALUE_BYTES=64
#        JSON=/path/file.json  (also write both sides' raw results there)
set -euo pipefail
cd "$(dirname "$0")/.."

CLIENTS=${CLIENTS:-1,16,64}
DURATION_S=${DURATION_S:-20}
WARMUP_S=${WARMUP_S:-2}
VALUE_BYTES=${VALUE_BYTES:-64}
JSON=${JSON:-}

say() { echo "compare_etcd: $*" >&2; }

# ---- packages -------------------------------------------------------------------------------
missing=()
command -v etcd >/dev/null || missing+=(etcd-server)
command -v etcdctl >/dev/null || missing+=(etcd-client)
command -v go >/dev/null || missing+=(golang-go)
[ -d /usr/share/gocode/src/go.etcd.io/etcd/clientv3 ] || missing+=(golang-etcd-server-dev)
if ((${#missing[@]} > 0)); then
  say "installing ${missing[*]} from Debian's packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q "${missing[@]}" >/dev/null 2>&1 ||
    { apt-get update -q >/dev/null && apt-get install -y -q "${missing[@]}" >/dev/null; }
  # The package starts a system etcd on :2379 where systemd runs; this comparison wants none.
  if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    systemctl disable --now etcd.service >/dev/null 2>&1 || true
  fi
fi
[ -f dist/src/cli.js ] || npm run build >/dev/null

WORK=$(mktemp -d "${TMPDIR:-/tmp}/compare-etcd.XXXXXX")
ETCD_PIDS=()
stop_all() {
  trap - EXIT INT TERM
  if ((${#ETCD_PIDS[@]} > 0)); then
    kill -TERM "${ETCD_PIDS[@]}" 2>/dev/null || true
    for _ in $(seq 50); do
      kill -0 "${ETCD_PIDS[@]}" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "${ETCD_PIDS[@]}" 2>/dev/null || true
    wait "${ETCD_PIDS[@]}" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap stop_all EXIT
trap 'exit 130' INT TERM

# ---- the Go load generator ------------------------------------------------------------------
mkdir -p "$WORK/go/src/etcd_load"
cp scripts/etcd_load/main.go "$WORK/go/src/etcd_load/"
say "building scripts/etcd_load (offline, Debian's clientv3)"
(cd "$WORK/go/src/etcd_load" && GO111MODULE=off GOPROXY=off GOFLAGS= \
  GOPATH="$WORK/go:/usr/share/gocode" GOCACHE="$WORK/gocache" go build -o "$WORK/etcd_load" .)

# ---- etcd: 3 members on free loopback ports -------------------------------------------------
read -r -a PORTS <<<"$(node -e '
  const net = require("node:net");
  const servers = [...Array(6)].map(() => net.createServer().listen(0, "127.0.0.1"));
  Promise.all(servers.map((s) => new Promise((r) => s.on("listening", r)))).then(() => {
    console.log(servers.map((s) => s.address().port).join(" "));
    servers.forEach((s) => s.close());
  });')"
initial=""
for member in 0 1 2; do initial+="m$member=http://127.0.0.1:${PORTS[$((member + 3))]},"; done
endpoints=""
for member in 0 1 2; do
  client_url="http://127.0.0.1:${PORTS[$member]}"
  peer_url="http://127.0.0.1:${PORTS[$((member + 3))]}"
  endpoints+="127.0.0.1:${PORTS[$member]},"
  etcd --name "m$member" --data-dir "$WORK/m$member" \
    --listen-client-urls "$client_url" --advertise-client-urls "$client_url" \
    --listen-peer-urls "$peer_url" --initial-advertise-peer-urls "$peer_url" \
    --initial-cluster "${initial%,}" --initial-cluster-state new \
    --initial-cluster-token "compare-$$" --log-level warn --logger zap \
    >"$WORK/m$member.log" 2>&1 &
  ETCD_PIDS+=($!)
done
endpoints=${endpoints%,}
for attempt in $(seq 100); do
  ETCDCTL_API=3 etcdctl --endpoints="$endpoints" --command-timeout=1s endpoint health \
    >/dev/null 2>&1 && break
  ((attempt < 100)) || { say "etcd did not become healthy"; tail -n 3 "$WORK"/m*.log >&2; exit 1; }
  sleep 0.2
done
# Puts go to the leader, as a client library that follows the leader would send them.
leader=$(ETCDCTL_API=3 etcdctl --endpoints="$endpoints" endpoint status -w json | node -e '
  const members = JSON.parse(require("node:fs").readFileSync(0, "utf8"));
  const leader = members.find((m) => m.Status.header.member_id === m.Status.leader);
  console.log(leader.Endpoint);')
say "$(etcd --version | head -1), leader $leader; load: clients $CLIENTS, ${DURATION_S} s each"
"$WORK/etcd_load" -endpoints "$leader" -clients "$CLIENTS" -duration-s "$DURATION_S" \
  -warmup-s "$WARMUP_S" -value-bytes "$VALUE_BYTES" >"$WORK/etcd.jsonl"
# The leader's own WAL fsync latency over the whole run (its /metrics histogram): etcd's disk
# floor beside vsr's (bench/disk_floor.bench.ts measures ours).
curl -sf "http://$leader/metrics" | node -e '
  const text = require("node:fs").readFileSync(0, "utf8");
  const name = "etcd_disk_wal_fsync_duration_seconds";
  const buckets = [...text.matchAll(new RegExp(`^${name}_bucket\\{le="([^"]+)"\\} (\\S+)`, "gm"))]
    .map((m) => [Number(m[1]), Number(m[2])]);
  const sum = Number(new RegExp(`^${name}_sum (\\S+)`, "m").exec(text)?.[1]);
  const count = Number(new RegExp(`^${name}_count (\\S+)`, "m").exec(text)?.[1]);
  const at = (q) => (buckets.find(([, n]) => n >= q * count) ?? [NaN])[0] * 1000;
  console.log(`etcd leader WAL fsync: ${count} fsyncs, mean ${(sum / count * 1000).toFixed(3)} ms,` +
    ` p50 <= ${at(0.5)} ms, p99 <= ${at(0.99)} ms (bucket bounds)`);' >&2 ||
  say "could not read the leader's WAL fsync histogram"
kill -TERM "${ETCD_PIDS[@]}" 2>/dev/null || true
wait "${ETCD_PIDS[@]}" 2>/dev/null || true
ETCD_PIDS=()

# ---- vsr-node: the same closed loop through vsr benchmark ------------------------------------
say "vsr benchmark: 3 replicas, clients $CLIENTS, ${DURATION_S} s each"
# The load generator with the young generation the replicas get (youngGenerationFlags).
node --min-semi-space-size=16 --max-semi-space-size=16 dist/src/cli.js benchmark --replicas=3 \
  --clients="$CLIENTS" --duration-s="$DURATION_S" --value-bytes="$VALUE_BYTES" --json >"$WORK/vsr.json"

# ---- one table --------------------------------------------------------------------------------
node - "$WORK/etcd.jsonl" "$WORK/vsr.json" "$JSON" <<'JS'
const fs = require("node:fs");
const [etcdFile, vsrFile, jsonFile] = process.argv.slice(2);
const etcd = fs.readFileSync(etcdFile, "utf8").trim().split("\n").map((line) => JSON.parse(line));
const vsr = JSON.parse(fs.readFileSync(vsrFile, "utf8"));
const cell = (value, width = 10) => String(value).padStart(width);
const fixed = (value, digits = 2) => Number(value).toFixed(digits);
const columns = ["clients", "etcd op/s", "etcd p50", "etcd p99", "vsr op/s", "vsr p50",
  "vsr p99", "op/s ×", "p50 ×", "p99 ×", "vsr GC/100k"];
console.log(`etcd 3.4 vs vsr-node, 3 members on 127.0.0.1, ${vsr.value_bytes}-byte values, ` +
  `${vsr.duration_s} s per row, latencies in ms, × = vsr / etcd`);
console.log(columns.map((name) => cell(name, 12)).join(""));
for (const run of vsr.runs) {
  const peer = etcd.find((row) => row.clients === run.clients);
  const latency = run.latency_us;
  console.log([run.clients, Math.round(peer.ops_per_s), fixed(peer.p50_ms), fixed(peer.p99_ms),
    run.ops_per_s, fixed(latency.p50 / 1000), fixed(latency.p99 / 1000),
    fixed(run.ops_per_s / peer.ops_per_s), fixed(latency.p50 / 1000 / peer.p50_ms),
    fixed(latency.p99 / 1000 / peer.p99_ms),
    Math.max(...run.replica_young_gcs_per_100k_ops)].map((value) => cell(value, 12)).join(""));
}
// The tails beside each other: a disk whose writes stall now and then shows in both systems'
// p999 and max, so the tail targets (ratios over p50) are judged against etcd's own.
console.log("tails, ms (same runs): p999 and max, and p999 / p50 for each system");
const tailColumns = ["clients", "etcd p999", "etcd max", "vsr p999", "vsr max", "etcd p999/50",
  "vsr p999/50"];
console.log(tailColumns.map((name) => cell(name, 13)).join(""));
for (const run of vsr.runs) {
  const peer = etcd.find((row) => row.clients === run.clients);
  const latency = run.latency_us;
  console.log([run.clients, fixed(peer.p999_ms), fixed(peer.max_ms), fixed(latency.p999 / 1000),
    fixed(latency.max / 1000), fixed(peer.p999_ms / peer.p50_ms, 1),
    fixed(latency.p999 / latency.p50, 1)].map((value) => cell(value, 13)).join(""));
}
if (jsonFile) fs.writeFileSync(jsonFile, JSON.stringify({ etcd, vsr }, null, 1) + "\n");
JS
