#!/usr/bin/env bash
# Runs the shared shop smoke test against bin/jetfleet.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -x ../shared/smoke.sh ]; then
  exec ../shared/smoke.sh
fi
echo "smoke: ../shared/smoke.sh not found" >&2
exit 1
