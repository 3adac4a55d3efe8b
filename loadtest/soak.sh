#!/usr/bin/env bash
# Soak: tickcast in its own process under a steady `*` load, with churn
# (connects and disconnects) and a share of clients that stall (each one
# replaced once the server has dropped it). Fails on a sequence gap, a
# descriptor leak, connections the server does not let go of, or a server
# that does not exit cleanly.
#
#   bash loadtest/soak.sh 30                 # the CI run (30 s, light load)
#   CLIENTS=990 STALLED=10 RATE=5200 OUT=dir bash loadtest/soak.sh 600
#
# Environment (defaults in brackets): CLIENTS healthy clients [200],
# STALLED stalled clients [1% of CLIENTS, at least 1], RATE ticks/s over
# SYMBOLS symbols [1000, 100], CHURN disconnect+reconnects per second [10],
# STALL_AFTER seconds a stalled client reads before it stops [2],
# SERVER_CPU / CLIENT_CPU cores for taskset [0 / 1 on machines with 2+
# cores, none otherwise], SERVER_ARGS extra tickcast flags, OUT the report
# folder [loadtest/out/soak-<UTC time>], CARGO_TARGET_DIR.
#
# Exit status: the load generator's (0 ok, 2 gap, 3 descriptor leak or
# connections not let go), 4 if the server did not exit cleanly, 5 if it
# never served (no /healthz answer), 1 on other errors. Only loopback is
# used; the server is always stopped.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
dur="${1:-30}"
CLIENTS="${CLIENTS:-200}"
STALLED="${STALLED:-$(( (CLIENTS + 99) / 100 ))}"
RATE="${RATE:-1000}"
SYMBOLS="${SYMBOLS:-100}"
CHURN="${CHURN:-10}"
STALL_AFTER="${STALL_AFTER:-2}"
TARGET="${CARGO_TARGET_DIR:-$root/target}"
OUT="${OUT:-$here/out/soak-$(date -u +%Y%m%d-%H%M%S)}"
if [ "$(nproc)" -ge 2 ]; then
  SERVER_CPU="${SERVER_CPU-0}"
  CLIENT_CPU="${CLIENT_CPU-1}"
else
  SERVER_CPU="${SERVER_CPU-}"
  CLIENT_CPU="${CLIENT_CPU-}"
fi
# taskset prefixes (taskset execs the command, so $! is the server's pid)
srv_pin=()
lt_pin=()
if command -v taskset >/dev/null; then
  if [ -n "$SERVER_CPU" ]; then srv_pin=(taskset -c "$SERVER_CPU"); fi
  if [ -n "$CLIENT_CPU" ]; then lt_pin=(taskset -c "$CLIENT_CPU"); fi
fi

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
echo "== soak: building (release)"
(cd "$root" && CARGO_TARGET_DIR="$TARGET" cargo build --release -q -p tickcast -p loadtest)

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo 18089)"
mkdir -p "$OUT"
srv_pid=""
stop_server() { # SIGINT, then at most 10 s, then SIGKILL; returns the exit status
  local rc=0
  if [ -n "$srv_pid" ]; then
    kill -INT "$srv_pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$srv_pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$srv_pid" 2>/dev/null; then
      echo "soak: the server did not stop within 10 s of SIGINT; killing it" >&2
      kill -KILL "$srv_pid" 2>/dev/null || true
    fi
    wait "$srv_pid" 2>/dev/null || rc=$?
    srv_pid=""
  fi
  return "$rc"
}
trap 'stop_server || true' EXIT

# shellcheck disable=SC2086 # SERVER_ARGS is a list of flags
"${srv_pin[@]}" "$TARGET/release/tickcast" --listen "127.0.0.1:$port" \
  --synthetic-symbols "$SYMBOLS" --synthetic-rate "$RATE" ${SERVER_ARGS:-} >"$OUT/server.log" 2>&1 &
srv_pid=$!
for _ in $(seq 100); do # bounded: 10 s
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
  sleep 0.1
done
# The kernel accepts connections for a listening socket whether or not the
# server serves them, so ask it for /healthz (bounded: 5 s).
if ! timeout 5 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port
    printf 'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' >&3
    head -c 12 <&3" 2>/dev/null | grep -q ' 200'; then
  echo "soak: FAILED: the server does not answer GET /healthz within 5 s (started but not serving; see $OUT/server.log)" >&2
  exit 5
fi
# Let every symbol get a value before clients connect.
sleep 1.5

echo "== soak: ${dur}s, $CLIENTS healthy + $STALLED stalled clients on '*', $RATE ticks/s over $SYMBOLS symbols, churn $CHURN/s"
rc=0
"${lt_pin[@]}" "$TARGET/release/loadtest" --url "ws://127.0.0.1:$port/ws" --scenario soak \
  --server-pid "$srv_pid" --clients "$CLIENTS" --stalled "$STALLED" --stall-after "$STALL_AFTER" \
  --churn-rate "$CHURN" --rate "$RATE" --symbols "$SYMBOLS" --duration "$dur" --warmup 2 \
  --out "$OUT" --quiet >"$OUT/loadtest.txt" 2>"$OUT/loadtest.err" || rc=$?
cat "$OUT/loadtest.txt"
if [ "$rc" -ne 0 ]; then
  echo "soak: FAILED (load generator exit status $rc; 2 = sequence gap, 3 = descriptor leak or connections not let go)" >&2
  if grep -q '^clients .* connected 0 ' "$OUT/loadtest.txt"; then
    echo "soak: no client ever connected: the server stopped serving (connections left in its accept queue show as CLOSE-WAIT)" >&2
  fi
  tail -n 20 "$OUT/loadtest.err" >&2 || true
fi
srv_rc=0
stop_server || srv_rc=$?
if [ "$srv_rc" -ne 0 ]; then
  echo "soak: FAILED (the server exited with status $srv_rc; see $OUT/server.log)" >&2
  if [ "$rc" -eq 0 ]; then rc=4; fi
fi
if [ "$rc" -eq 0 ]; then echo "soak: OK ($OUT)"; fi
exit "$rc"
