#!/usr/bin/env bash
# The long fault run (make chaos): the shop pipeline as separate processes,
# workers and the server SIGKILLed at seeded random moments, then the
# summary table. SEED, RECORDS, RATE and SYNC (always or an interval)
# change the run; the seed of a run is in its log, SEED=n repeats it.
set -euo pipefail
summary=$(mktemp)
trap 'rm -f "$summary"' EXIT
export JETFLEET_CHAOS_SUMMARY="$summary"
[[ -n "${SEED:-}" ]] && export JETFLEET_CHAOS_SEED="$SEED"
[[ -n "${RECORDS:-}" ]] && export JETFLEET_CHAOS_RECORDS="$RECORDS"
[[ -n "${RATE:-}" ]] && export JETFLEET_CHAOS_RATE="$RATE"
[[ -n "${SYNC:-}" ]] && export JETFLEET_CHAOS_SYNC="$SYNC"
status=0
"${GO:-go}" test -tags long -count=1 -timeout 45m -run '^TestChaos$' -v ./cmd/jetfleet/ || status=$?
echo
if [[ -s "$summary" ]]; then
	cat "$summary"
else
	echo "chaos: no summary (the run failed before its checks finished; see above)"
fi
exit "$status"
