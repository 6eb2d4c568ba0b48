#!/usr/bin/env bash
# scripts/tools.sh golangci-lint VERSION: builds golangci-lint VERSION from
#   the Go module proxy into bin/tools/golangci-lint-VERSION (the Makefile
#   pins VERSION), so a machine with Go and the proxy can run `make lint`.
#   From source, not a release binary: the proxy is what CI reaches, and
#   the build uses this Go, which must be at least the go.mod's.
#
# scripts/tools.sh: installs what the test suite needs beyond Go, from Debian's packages:
#   nats-server (2.9 in bookworm): TestOldServerRefusedWithOneMessage runs it
#     as the example of a server too old for jetfleet;
#   chromium: the console's browser test drives it headless.
# Idempotent: installs only what is missing, with one apt-get update. Runs
# apt-get as root, or through sudo when it is there; otherwise says what is
# missing and leaves it to the tests (which fail under CI=true).
set -euo pipefail

if [ "${1:-}" = golangci-lint ]; then
  version=${2:?usage: scripts/tools.sh golangci-lint VERSION}
  cd "$(dirname "$0")/.."
  mkdir -p bin/tools
  tmp=$(mktemp -d bin/tools/.install.XXXXXX)
  trap 'rm -rf "$tmp"' EXIT
  echo "tools.sh: building golangci-lint $version (once; it takes a few minutes)" >&2
  GOBIN=$PWD/$tmp go install "github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$version"
  mv "$tmp/golangci-lint" "bin/tools/golangci-lint-$version"
  exit 0
fi

missing=()
if ! [ -x /usr/sbin/nats-server ] && ! command -v nats-server >/dev/null 2>&1; then
  missing+=(nats-server)
fi
if ! command -v chromium >/dev/null 2>&1 && ! [ -x /usr/bin/chromium ]; then
  missing+=(chromium)
fi
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

as_root=()
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    as_root=(sudo -n)
  else
    echo "tools.sh: ${missing[*]} (Debian packages) missing; install as root: apt-get install ${missing[*]}" >&2
    exit 0 # the tests say so again (and fail under CI=true)
  fi
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "tools.sh: ${missing[*]} missing and no apt-get here; install them with your package manager" >&2
  exit 0
fi

"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The nats-server package enables a system service; the tests start their own servers.
if [[ " ${missing[*]} " == *" nats-server "* ]] && command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  "${as_root[@]}" systemctl disable --now nats-server >/dev/null 2>&1 || true
fi
for p in "${missing[@]}"; do
  case $p in
  nats-server) echo "tools.sh: installed $(/usr/sbin/nats-server --version)" ;;
  chromium) echo "tools.sh: installed $(chromium --version 2>/dev/null || echo chromium)" ;;
  esac
done
