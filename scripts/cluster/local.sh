#!/usr/bin/env bash
# A 3-node JetStream cluster on this machine (loopback only), to try the
# cluster set-up of README "Running on a cluster" without three machines.
#
#   scripts/cluster/local.sh start     # write configs, start n1 n2 n3, wait until healthy
#   scripts/cluster/local.sh status    # which nodes run
#   scripts/cluster/local.sh kill N    # stop node N (1-3) at once, as a crash would
#   scripts/cluster/local.sh restart N # start node N again
#   scripts/cluster/local.sh stop      # stop every node (data stays in DIR)
#   scripts/cluster/local.sh configs   # only write the three configs
#
# Environment:
#   JF_CLUSTER_DIR   configs, stores, logs and pid files (default .jetfleet/cluster)
#   JF_CLUSTER_PORT  client port of n1; n2 and n3 use the next two (default 4222).
#                    Route ports are +2000 (6222...), monitoring ports +4000 (8222...).
#   NATS_SERVER      the server command, run as `$NATS_SERVER --config FILE`.
#                    Default: `bin/jetfleet server` (make build), else nats-server on
#                    PATH if it is 2.11 or newer, else one built from the nats-server
#                    module jetfleet embeds (bin/nats-server).
set -euo pipefail
cd "$(dirname "$0")/../.."

DIR=${JF_CLUSTER_DIR:-.jetfleet/cluster}
BASE=${JF_CLUSTER_PORT:-4222}
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)

client_port() { echo $((BASE + $1 - 1)); }
route_port() { echo $((BASE + 2000 + $1 - 1)); }
http_port() { echo $((BASE + 4000 + $1 - 1)); }

write_configs() {
  local i
  for i in 1 2 3; do
    cat >"$DIR/n$i.conf" <<EOF
# Written by scripts/cluster/local.sh: node $i of a loopback test cluster.
server_name: n$i
listen: 127.0.0.1:$(client_port "$i")
http: 127.0.0.1:$(http_port "$i")
max_payload: 8MB
jetstream {
  store_dir: "$DIR/n$i"
  max_memory_store: 256MB
  max_file_store: 10GB
}
cluster {
  name: jetfleet-local
  listen: 127.0.0.1:$(route_port "$i")
  routes: [
    nats-route://127.0.0.1:$(route_port 1)
    nats-route://127.0.0.1:$(route_port 2)
    nats-route://127.0.0.1:$(route_port 3)
  ]
}
EOF
  done
}

# server_cmd picks the server binary: NATS_SERVER, a recent nats-server,
# or one built from the module version jetfleet embeds.
server_cmd() {
  if [ -n "${NATS_SERVER:-}" ]; then
    echo "$NATS_SERVER"
    return
  fi
  if [ -x bin/jetfleet ] && bin/jetfleet server --help >/dev/null 2>&1; then
    echo "$PWD/bin/jetfleet server"
    return
  fi
  if command -v nats-server >/dev/null; then
    local v
    v=$(nats-server --version | sed -n 's/.*v\([0-9]*\)\.\([0-9]*\).*/\1 \2/p')
    if [ -n "$v" ] && { set -- $v; [ "$1" -gt 2 ] || [ "$2" -ge 11 ]; }; then
      echo nats-server
      return
    fi
    echo "local.sh: $(nats-server --version) is older than 2.11 (no per-message TTLs); building bin/nats-server" >&2
  fi
  if [ ! -x bin/nats-server ]; then
    echo "local.sh: building bin/nats-server from the nats-server module in go.mod" >&2
    go build -o bin/nats-server github.com/nats-io/nats-server/v2
  fi
  echo "$PWD/bin/nats-server"
}

running() { [ -f "$DIR/n$1.pid" ] && kill -0 "$(cat "$DIR/n$1.pid")" 2>/dev/null; }

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

start_node() {
  local i=$1 cmd
  if running "$i"; then
    echo "n$i already running (pid $(cat "$DIR/n$i.pid"))"
    return
  fi
  for p in $(client_port "$i") $(route_port "$i") $(http_port "$i"); do
    if ! port_free "$p"; then
      echo "local.sh: port $p is in use (another server, or jetfleet dev?); set JF_CLUSTER_PORT to move the cluster" >&2
      exit 1
    fi
  done
  cmd=$(server_cmd)
  # shellcheck disable=SC2086 # NATS_SERVER may be a command with arguments
  nohup $cmd --config "$DIR/n$i.conf" >>"$DIR/n$i.log" 2>&1 &
  echo $! >"$DIR/n$i.pid"
  echo "n$i started (pid $!, client port $(client_port "$i"), log $DIR/n$i.log)"
}

# wait_healthy waits until every running node reports JetStream healthy.
wait_healthy() {
  local i deadline=$((SECONDS + 60))
  for i in "$@"; do
    until curl -sf "http://127.0.0.1:$(http_port "$i")/healthz" >/dev/null; do
      if ! running "$i"; then
        echo "local.sh: n$i exited; see $DIR/n$i.log" >&2
        tail -5 "$DIR/n$i.log" >&2 || true
        exit 1
      fi
      if [ $SECONDS -ge $deadline ]; then
        echo "local.sh: n$i not healthy after 60s; see $DIR/n$i.log" >&2
        exit 1
      fi
      sleep 0.5
    done
  done
}

stop_node() {
  local i=$1 sig=${2:-TERM} pid
  if ! running "$i"; then
    rm -f "$DIR/n$i.pid"
    return
  fi
  pid=$(cat "$DIR/n$i.pid")
  kill "-$sig" "$pid"
  for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  rm -f "$DIR/n$i.pid"
  echo "n$i stopped"
}

urls() { echo "nats://127.0.0.1:$(client_port 1),nats://127.0.0.1:$(client_port 2),nats://127.0.0.1:$(client_port 3)"; }

node_arg() {
  case "${1:-}" in
    1 | 2 | 3) echo "$1" ;;
    *)
      echo "local.sh: want a node number 1, 2 or 3" >&2
      exit 2
      ;;
  esac
}

case "${1:-}" in
  configs)
    write_configs
    echo "$DIR/n1.conf $DIR/n2.conf $DIR/n3.conf"
    ;;
  start)
    write_configs
    for i in 1 2 3; do start_node "$i"; done
    wait_healthy 1 2 3
    echo "cluster up; use it with:"
    echo "  export NATS_URL=$(urls)"
    ;;
  status)
    for i in 1 2 3; do
      if running "$i"; then echo "n$i running (pid $(cat "$DIR/n$i.pid"), client port $(client_port "$i"))"; else echo "n$i down"; fi
    done
    echo "NATS_URL=$(urls)"
    ;;
  kill)
    stop_node "$(node_arg "${2:-}")" KILL
    ;;
  restart)
    n=$(node_arg "${2:-}")
    start_node "$n"
    wait_healthy "$n"
    ;;
  stop)
    for i in 1 2 3; do stop_node "$i"; done
    ;;
  *)
    sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
