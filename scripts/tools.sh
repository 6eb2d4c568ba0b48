#!/usr/bin/env bash
# Installs what the test suite needs beyond Go, from Debian's packages:
#   nats-server (2.9 in bookworm): TestOldServerRefusedWithOneMessage runs it
#     as the example of a server too old for jetfleet;
#   chromium: the console's browser test drives it headless.
# Idempotent: installs only what is missing, with one apt-get update. Runs
# apt-get as root, or through sudo when it is there; otherwise says what is
# missing and leaves it to the tests (which fail under CI=true).
set -euo pipefail

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
