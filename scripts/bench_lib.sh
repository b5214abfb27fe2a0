# bench_lib.sh: shell functions the benchmark scripts share (sourced, not run). Each script keeps
# its own process bookkeeping and cleanup; these only talk to replicas on 127.0.0.1.

# Prints a TCP port free on 127.0.0.1 right now.
free_port() {
  node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}

# Waits until every replica in the array `addresses` answers /status, at most 30 s each;
# exits the script (status 1) naming the one that does not. $1: the script's name for the error.
wait_up() {
  local address
  for address in "${addresses[@]}"; do
    for _ in $(seq 300); do
      curl -sf "http://$address/status" >/dev/null && continue 2
      sleep 0.1
    done
    echo "$1: replica at $address did not start" >&2
    exit 1
  done
}

# Prints the value of the unlabelled metric $2 from the replica at address $1 (empty if absent).
metric() {
  curl -sf "http://$1/metrics" | awk -v name="$2" '$1 == name {print $2}'
}
