#!/usr/bin/env bash
# The benchmark matrix of the core issue's targets, tickcast side by side
# with the peers, written to a dated results folder that names the machine.
#
#   loadtest/bench.sh            # full matrix (~10 minutes)
#   QUICK=1 loadtest/bench.sh    # 4 s windows, fewer cells (a smoke run)
#
# Layout (as the targets are stated): the server under test is confined to
# core 0 with taskset, the load generator to core 1. One extra cell runs
# tickcast on both cores. Every client subscribes to `*` over 100 symbols,
# so frames/s delivered = ticks/s x clients.
#
# Output: loadtest/runs/<UTC date>-<host>/
#   SETUP.md   machine, kernel, rustc, commit, exact commands
#   raw.csv    one line per cell
#   summary.md the tables, each target marked met / missed, peer ratios
#   cells/     every cell's report.json, latency.hgrm, latency.svg
# Only loopback is used; every server is stopped by the script.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$root/target}"
PEERS_TARGET="${PEERS_TARGET:-$TARGET/peers}"
DUR="${DUR:-10}"
WARM="${WARM:-2}"
[ -n "${QUICK:-}" ] && DUR=4 && WARM=1
SERVER_CPU="${SERVER_CPU:-0}"
CLIENT_CPU="${CLIENT_CPU:-1}"
SYMBOLS=100

stamp="$(date -u +%Y-%m-%d)"
host="$(hostname -s 2>/dev/null || echo host)-$(nproc)core"
out="${OUT:-$here/runs/$stamp-$host}"
mkdir -p "$out/cells"
csv="$out/raw.csv"
echo "server,cores,clients,rate_ticks_s,scenario,connected,msgs_s,p50_ms,p90_ms,p99_ms,p999_ms,max_ms,per_client_min,per_client_max,gaps,dups,evicted_fast,evicted_slow,slow_p99_ms,server_rss_kb,rss_per_conn_kb,report" > "$csv"

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

echo "== building (release)"
(cd "$root" && CARGO_TARGET_DIR="$TARGET" cargo build --release -q -p tickcast -p loadtest)
TICKCAST="$TARGET/release/tickcast"
LOADTEST="$TARGET/release/loadtest"
have_tokio=0
if (cd "$here/peers/tokio-tungstenite" && CARGO_TARGET_DIR="$PEERS_TARGET" cargo build --release -q); then
  have_tokio=1
fi
have_bare=0
if (cd "$here/peers/bare-fanout" && CARGO_TARGET_DIR="$PEERS_TARGET" cargo build --release -q); then
  have_bare=1
fi
have_node=0
if command -v node >/dev/null && (cd "$here/peers/node-ws" && { [ -d node_modules/ws ] || npm install --no-audit --no-fund --silent; }); then
  have_node=1
fi

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_port() { # bounded: 10 s
  for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "server did not listen on port $1" >&2
  return 1
}

rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

srv_pid=""
stop_server() {
  if [ -n "$srv_pid" ]; then
    kill -INT "$srv_pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$srv_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$srv_pid" 2>/dev/null || true
    wait "$srv_pid" 2>/dev/null || true
    srv_pid=""
  fi
}
trap stop_server EXIT

# start_server NAME CPUS PORT RATE -> sets srv_pid
start_server() {
  local name="$1" cpus="$2" port="$3" rate="$4"
  case "$name" in
    tickcast)
      local shards=1
      [ "$cpus" != "$SERVER_CPU" ] && shards=2
      # shellcheck disable=SC2086 # SERVER_ARGS is a list of flags
      taskset -c "$cpus" "$TICKCAST" --listen "127.0.0.1:$port" --io-threads "$shards" \
        --synthetic-symbols "$SYMBOLS" --synthetic-rate "$rate" ${SERVER_ARGS:-} \
        >"$out/cells/server.log" 2>&1 &
      ;;
    tokio-tungstenite)
      taskset -c "$cpus" "$PEERS_TARGET/release/peer-tokio-tungstenite" --listen "127.0.0.1:$port" \
        --symbols "$SYMBOLS" --rate "$rate" >"$out/cells/server.log" 2>&1 &
      ;;
    bare-fanout)
      taskset -c "$cpus" "$PEERS_TARGET/release/peer-bare-fanout" --listen "127.0.0.1:$port" \
        --symbols "$SYMBOLS" --rate "$rate" >"$out/cells/server.log" 2>&1 &
      ;;
    node-ws)
      taskset -c "$cpus" node "$here/peers/node-ws/server.js" --listen "127.0.0.1:$port" \
        --symbols "$SYMBOLS" --rate "$rate" >"$out/cells/server.log" 2>&1 &
      ;;
  esac
  srv_pid=$!
  wait_port "$port"
}

# cell SERVER CPUS CLIENTS RATE SCENARIO [extra loadtest args...]
cell() {
  local server="$1" cpus="$2" clients="$3" rate="$4" scenario="$5"
  shift 5
  local port name dir base_rss
  port="$(free_port)"
  name="$server-c$(echo "$cpus" | tr -d ,)-n$clients-r$rate-$scenario${TAG:-}"
  dir="$out/cells/$name"
  echo "== $name"
  start_server "$server" "$cpus" "$port" "$rate"
  # Let every symbol get a value before clients connect.
  sleep 1.5
  base_rss="$(rss_kb "$srv_pid")"
  local lcpu="$CLIENT_CPU"
  [ "$cpus" != "$SERVER_CPU" ] && lcpu="$cpus"
  taskset -c "$lcpu" "$LOADTEST" --url "ws://127.0.0.1:$port/ws" --clients "$clients" \
    --duration "$DUR" --warmup "$WARM" --scenario "$scenario" --out "$dir" "$@" \
    >"$dir.txt" 2>"$dir.err" &
  local lt=$!
  # Sample the server's RSS in the middle of the measured window.
  sleep "$(python3 -c "print($WARM + $DUR / 2 + 1)")"
  local mid_rss
  mid_rss="$(rss_kb "$srv_pid")"
  wait "$lt" || true
  stop_server
  # Tearing down thousands of sockets keeps the kernel busy on both cores
  # for a few seconds; let it finish before the next cell is measured.
  if [ "$clients" -ge 10000 ]; then sleep 8; fi
  python3 - "$dir/report.json" "$server" "$(echo "$cpus" | tr , +)" "$clients" "$rate" "$scenario${TAG:-}" "$base_rss" "$mid_rss" >>"$csv" <<'PY'
import json, sys
path, server, cpus, clients, rate, scenario, base, mid = sys.argv[1:]
try:
    r = json.load(open(path))
except Exception:
    print(f"{server},{cpus},{clients},{rate},{scenario},0,0,,,,,,,,,,,,,{mid},,missing")
    sys.exit(0)
ms = lambda d, k: f"{d.get(k, 0) / 1000:.2f}" if d else ""
lat, slow, pc, seq, cl = r["latency"], r.get("latency_slow") or {}, r["per_client_ticks"], r["seq"]["not_evicted"], r["clients"]
per_conn = (int(mid) - int(base)) / max(cl["connected"], 1)
print(",".join(str(x) for x in [
    server, cpus, clients, rate, scenario, cl["connected"], round(r["throughput"]["msgs_per_sec"]),
    ms(lat, "p50_us"), ms(lat, "p90_us"), ms(lat, "p99_us"), ms(lat, "p99_9_us"), ms(lat, "max_us"),
    pc.get("min", ""), pc.get("max", ""), seq["gaps"], seq["duplicates"],
    cl["evicted_fast"], cl["evicted_slow"], ms(slow, "p99_us") if slow.get("count") else "",
    mid, f"{per_conn:.2f}", path,
]))
PY
}

servers=(tickcast)
[ "$have_tokio" = 1 ] && servers+=(tokio-tungstenite)
[ "$have_node" = 1 ] && servers+=(node-ws)
[ "$have_bare" = 1 ] && servers+=(bare-fanout)

if [ -n "${QUICK:-}" ]; then
  cell tickcast "$SERVER_CPU" 1000 5000 fanout
  cell tickcast "$SERVER_CPU" 10000 100 fanout
else
  # tickcast, one core: clients x rates up to saturation.
  for r in 1000 10000 30000 50000; do cell tickcast "$SERVER_CPU" 100 "$r" fanout; done
  for r in 1000 2500 5000 7000; do cell tickcast "$SERVER_CPU" 1000 "$r" fanout; done
  for r in 100 200 300; do cell tickcast "$SERVER_CPU" 10000 "$r" fanout; done
  # Memory: 10,000 connections, nearly idle (10 ticks/s), all on `*`.
  cell tickcast "$SERVER_CPU" 10000 10 fanout
  # Slow consumers: 10% of the clients stop reading. A 256 KiB kernel send
  # buffer (--send-buffer) lets the server see them stall within the window;
  # with the kernel's default (up to 4 MiB) it takes ~14 s at this rate.
  SERVER_ARGS="--send-buffer 262144" TAG="-sndbuf256k" cell tickcast "$SERVER_CPU" 1000 5000 slow --slow-fraction 0.1
  # Overload: 12 M frames/s demanded, more than one core can write.
  cell tickcast "$SERVER_CPU" 1000 12000 fanout
  # Both cores for the server (the load generator shares them).
  # Unpinned: pinned shards would each fight the load generator for a core.
  SERVER_ARGS="--no-pin" cell tickcast "$SERVER_CPU,$CLIENT_CPU" 1000 5000 fanout
  # Peers, same loads.
  for s in "${servers[@]:1}"; do
    for r in 1000 2500 5000; do cell "$s" "$SERVER_CPU" 1000 "$r" fanout; done
    cell "$s" "$SERVER_CPU" 10000 100 fanout
    cell "$s" "$SERVER_CPU" 10000 10 fanout
  done
fi

{
  echo "# Benchmark setup"
  echo
  echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "- machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs)), $(free -g | awk '/Mem:/ {print $2}') GiB"
  echo "- kernel: $(uname -r)"
  echo "- rustc: $(rustc --version)"
  echo "- node: $(node --version 2>/dev/null || echo none)"
  echo "- commit: $(cd "$root" && git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "- server on core $SERVER_CPU (taskset), load generator on core $CLIENT_CPU; $SYMBOLS symbols; every client subscribed to \`*\`"
  echo "- windows: ${DUR} s measured after ${WARM} s warm-up; RSS sampled mid-window"
  echo "- command: \`loadtest/bench.sh\`"
} >"$out/SETUP.md"

python3 "$here/bench_summary.py" "$csv" >"$out/summary.md"
cat "$out/summary.md"
echo "results in $out"
