#!/usr/bin/env bash
# Installs what the test suite needs beyond Go: Debian's nats-server (2.9 in
# bookworm), which TestOldServerRefusedWithOneMessage runs as the example of
# a server too old for jetfleet. Idempotent; needs root and apt-get.
set -euo pipefail
if [ -x /usr/sbin/nats-server ] || command -v nats-server >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "tools.sh: nats-server (Debian package) missing; install it as root: apt-get install nats-server" >&2
  exit 0 # the test says so again (and fails under CI=true)
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq nats-server >/dev/null
# The package enables a system service; the tests start their own servers.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  systemctl disable --now nats-server >/dev/null 2>&1 || true
fi
echo "tools.sh: installed $(/usr/sbin/nats-server --version)"
