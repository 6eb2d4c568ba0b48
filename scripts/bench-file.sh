#!/usr/bin/env bash
# The shop demo on a file, as a new user runs it: EVENTS generated orders
# (5% invalid, 2% duplicates) as one NDJSON file, `jetfleet dev` on a fresh
# data dir, `jetfleet publish --bulk BULK --id-field order_id`, then
# `jetfleet status --wait-idle`. It prints the time from the first publish
# to idle and checks every mart against the same SQL run once over the lake
# (a batch job over the same records), then runs `jetfleet bench` in bulk
# mode over the same orders for its DuckDB batch baseline.
#   scripts/bench-file.sh [EVENTS] [BULK]          (after make build)
set -euo pipefail
cd "$(dirname "$0")/.."
events=${1:-1000000}
bulk=${2:-100}
bin=${JETFLEET:-bin/jetfleet}
[[ -x $bin ]] || { echo "bench-file: $bin missing; run make build" >&2; exit 2; }

dir=$(mktemp -d)
pid=
cleanup() {
	[[ -n $pid ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	rm -rf "$dir"
}
trap cleanup EXIT

port=$(( 20000 + RANDOM % 20000 ))
http=$(( port + 1 ))
export NATS_URL="nats://127.0.0.1:$port" JETFLEET_LOG_LEVEL=warn
"$bin" bench --generate "$dir/orders.ndjson" --events "$events" >/dev/null
"$bin" dev --data-dir "$dir/data" --listen "127.0.0.1:$port" --http "127.0.0.1:$http" 2>"$dir/dev.log" &
pid=$!
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
"$bin" status --wait-idle 1m >/dev/null

start=$(date +%s.%N)
"$bin" publish --bulk "$bulk" --file "$dir/orders.ndjson" --id-field order_id jf.ingest.orders
"$bin" status --wait-idle 20m >/dev/null
took=$(echo "$(date +%s.%N) - $start" | bc)
printf 'fleet       %d orders, bulk %d: %.2fs first publish to idle (%.0f records/s)\n' "$events" "$bulk" "$took" "$(echo "$events / $took" | bc -l)"

# Each mart against its SQL over the lake, with sums compared to 1e-9.
q() { "$bin" query --data-dir "$dir/data" --format csv "$1" | tail -n +2 | tr -d '\r'; }
daily='SELECT CAST(timezone($$UTC$$, ts) AS DATE) AS day, country, count(*) AS orders, sum(amount_usd) AS revenue_usd FROM orders GROUP BY ALL'
bad=$(q "SELECT count(*) FROM ($daily) b FULL JOIN daily_sales m USING (day, country)
  WHERE m.orders IS DISTINCT FROM b.orders OR abs(m.revenue_usd - b.revenue_usd) > 1e-9 * greatest(1, abs(b.revenue_usd)) OR m.revenue_usd IS NULL OR b.revenue_usd IS NULL")
ltv='SELECT customer_id, count(*) AS orders, sum(amount_usd) AS revenue_usd, min(ts) AS first_order, max(ts) AS last_order FROM orders GROUP BY customer_id'
bad2=$(q "SELECT count(*) FROM ($ltv) b FULL JOIN customer_ltv m USING (customer_id)
  WHERE m.orders IS DISTINCT FROM b.orders OR m.first_order IS DISTINCT FROM b.first_order OR m.last_order IS DISTINCT FROM b.last_order
     OR abs(m.revenue_usd - b.revenue_usd) > 1e-9 * greatest(1, abs(b.revenue_usd)) OR m.revenue_usd IS NULL OR b.revenue_usd IS NULL")
rows=$(q "SELECT count(*) FROM orders")
if [[ $bad != 0 || $bad2 != 0 ]]; then
	echo "bench-file: FAIL: marts differ from the batch SQL over the lake (daily_sales $bad rows, customer_ltv $bad2 rows)" >&2
	exit 1
fi
echo "verified    marts equal their SQL over the lake ($rows distinct orders)"
kill -TERM "$pid"; wait "$pid"; pid=

"$bin" bench --mode bulk --bulk-size "$bulk" --events "$events" --log-level warn | grep -E 'batch baseline|verified'
