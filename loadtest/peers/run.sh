#!/usr/bin/env bash
# Builds the comparison peers, starts each on loopback, runs the load
# generator against it, and stops it again.
#
# Usage: loadtest/peers/run.sh [tokio|node|bare|all] [loadtest args...]
#   e.g. loadtest/peers/run.sh all --clients 200 --duration 10
# Env:   SYMBOLS (100), RATE (2000 ticks/s), CAPACITY (tokio broadcast, 4096),
#        MAX_BUFFERED (node and bare, bytes, 4 MiB), PEER_CPU (pin the peer with taskset),
#        LOADTEST_TARGET / PEERS_TARGET (cargo target dirs).
# Results: loadtest/out/peers-<UTC time>/<peer>/ (report.json, .hgrm, .svg).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
which="${1:-all}"
[ $# -gt 0 ] && shift
SYMBOLS="${SYMBOLS:-100}"
RATE="${RATE:-2000}"
CAPACITY="${CAPACITY:-4096}"
MAX_BUFFERED="${MAX_BUFFERED:-4194304}"
LOADTEST_TARGET="${LOADTEST_TARGET:-$root/target}"
PEERS_TARGET="${PEERS_TARGET:-$here/tokio-tungstenite/target}"
stamp="$(date -u +%Y%m%d-%H%M%S)"
outroot="$root/loadtest/out/peers-$stamp"

(cd "$root" && CARGO_TARGET_DIR="$LOADTEST_TARGET" cargo build --release -p loadtest)
loadtest="$LOADTEST_TARGET/release/loadtest"

pin=()
if [ -n "${PEER_CPU:-}" ]; then pin=(taskset -c "$PEER_CPU"); fi

peer_pid=""
stop_peer() {
  if [ -n "$peer_pid" ]; then
    kill "$peer_pid" 2>/dev/null || true
    wait "$peer_pid" 2>/dev/null || true
    peer_pid=""
  fi
}
trap stop_peer EXIT

wait_port() { # bounded: 10 s
  for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "peer did not listen on port $1" >&2
  return 1
}

run_one() { # name port cmd...
  local name="$1" port="$2"
  shift 2
  echo "=== $name on 127.0.0.1:$port ($SYMBOLS symbols, $RATE ticks/s) ==="
  "${pin[@]}" "$@" &
  peer_pid=$!
  wait_port "$port"
  local rc=0
  "$loadtest" --url "ws://127.0.0.1:$port/ws" --out "$outroot/$name" "${args[@]}" || rc=$?
  stop_peer
  return $rc
}

args=("$@")
status=0
if [ "$which" = tokio ] || [ "$which" = all ]; then
  (cd "$here/tokio-tungstenite" && CARGO_TARGET_DIR="$PEERS_TARGET" cargo build --release)
  run_one tokio-tungstenite 9101 "$PEERS_TARGET/release/peer-tokio-tungstenite" \
    --listen 127.0.0.1:9101 --symbols "$SYMBOLS" --rate "$RATE" --capacity "$CAPACITY" || status=$?
fi
if [ "$which" = node ] || [ "$which" = all ]; then
  (cd "$here/node-ws" && [ -d node_modules/ws ] || npm install --no-audit --no-fund)
  run_one node-ws 9102 node "$here/node-ws/server.js" \
    --listen 127.0.0.1:9102 --symbols "$SYMBOLS" --rate "$RATE" --max-buffered "$MAX_BUFFERED" || status=$?
fi
if [ "$which" = bare ] || [ "$which" = bare-fanout ] || [ "$which" = all ]; then
  (cd "$here/bare-fanout" && CARGO_TARGET_DIR="$PEERS_TARGET" cargo build --release)
  run_one bare-fanout 9103 "$PEERS_TARGET/release/peer-bare-fanout" \
    --listen 127.0.0.1:9103 --symbols "$SYMBOLS" --rate "$RATE" --max-buffered "$MAX_BUFFERED" || status=$?
fi
echo "results in $outroot"
exit $status
