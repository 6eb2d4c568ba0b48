#!/usr/bin/env bash
# Each step as its own OS process under full load, and the peak resident
# memory of each (VmHWM, Linux): the figure behind "a stateless worker stays
# under 50 MB, the aggregator within its DuckDB limit + 100 MB".
#   scripts/bench-processes.sh [EVENTS] [MEMORY_LIMIT] [BULK] [RATE]     (after make build)
# BULK > 0 publishes NDJSON chunks of that many records per message; RATE > 0
# paces the publish at that many records/s (a soak: 900000 events at 1500 is
# ten minutes).
# A jetfleet server, validate, transform and aggregate workers and a
# supervisor, then
# EVENTS generated orders published as fast as the server takes them; when
# the aggregator has committed them all it prints each process's peak RSS.
set -euo pipefail
cd "$(dirname "$0")/.."
events=${1:-200000}
limit=${2:-512MB}
bulk=${3:-0}
rate=${4:-0}
bin=${JETFLEET:-bin/jetfleet}
[[ -x $bin ]] || { echo "bench-processes: $bin missing; run make build" >&2; exit 2; }
[[ -r /proc/self/status ]] || { echo "bench-processes: needs Linux /proc" >&2; exit 2; }

dir=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$dir"
}
trap cleanup EXIT

port=$(( 20000 + RANDOM % 20000 ))
export NATS_URL="nats://127.0.0.1:$port" JETFLEET_LOG_LEVEL=warn JETFLEET_LOG_FORMAT=json
"$bin" server --listen "127.0.0.1:$port" --store-dir "$dir/nats" >"$dir/server.out" 2>"$dir/server.log" &
pids+=($!); server=$!
for _ in $(seq 100); do grep -q nats:// "$dir/server.out" 2>/dev/null && break; sleep 0.1; done
"$bin" lookup load >/dev/null

declare -A step_pid
for step in validate transform aggregate; do
	"$bin" worker --data-dir "$dir/data" --memory-limit "$limit" "$step" 2>"$dir/$step.log" &
	pids+=($!); step_pid[$step]=$!
done

"$bin" supervisor --data-dir "$dir/data" 2>"$dir/supervisor.log" &
pids+=($!)

"$bin" bench --generate "$dir/orders.ndjson" --events "$events"
start=$(date +%s.%N)
bulkflag=()
(( bulk > 0 )) && bulkflag=(--bulk "$bulk")
"$bin" publish "${bulkflag[@]}" --rate "$rate" --file "$dir/orders.ndjson" --id-field order_id jf.ingest.orders
"$bin" status --wait-idle 10m >/dev/null
took=$(echo "$(date +%s.%N) - $start" | bc)

peak() { awk '/VmHWM/ {printf "%.1f MiB", $2/1024}' "/proc/$1/status"; }
printf '%s records through separate processes in %.1fs (%.0f records/s, publish to idle)\n' "$events" "$took" "$(echo "$events / $took" | bc -l)"
printf '%-10s %s\n' "process" "peak RSS"
printf '%-10s %s\n' server "$(peak "$server")"
for step in validate transform aggregate; do
	printf '%-10s %s\n' "$step" "$(peak "${step_pid[$step]}")"
done
printf '(aggregator DuckDB memory limit %s)\n' "$limit"
