#!/usr/bin/env bash
# The issue-8 runs, one cell per argument (see SETUP.md for the list):
#
#   bash loadtest/runs/2026-12-01-vm-2core-issue8/run.sh stalled stalled-ref
#
# Each cell starts tickcast on core 0 (taskset; default flags but the feed:
# --synthetic-symbols 100 --synthetic-rate R), waits 1.5 s so every symbol
# has a value, runs the load generator on core 1 with --server-pid, then
# stops the server (SIGINT, bounded) and records its exit status. Results:
# cells/<name>/ (report.json, summary.txt, samples.csv, .hgrm, .svg,
# command.txt, stdout.txt, stderr.txt, server.log, exit codes). Cells with
# 5,000+ clients are followed by an 8 s pause. Only loopback is used.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
T="${CARGO_TARGET_DIR:-$(cd "$(dirname "$0")/../../.." && pwd)/target}/release"
ulimit -n "$(ulimit -Hn)"

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

srv=""
stop_server() { # SIGINT, at most 15 s, then SIGKILL; prints the exit status
  local rc=0
  [ -z "$srv" ] && return 0
  kill -INT "$srv" 2>/dev/null || true
  for _ in $(seq 150); do kill -0 "$srv" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$srv" 2>/dev/null; then
    echo "server $srv still running 15 s after SIGINT: SIGKILL" >&2
    kill -KILL "$srv" 2>/dev/null || true
  fi
  wait "$srv" 2>/dev/null || rc=$?
  srv=""
  echo "$rc"
}
trap 'stop_server >/dev/null' EXIT

# cell NAME RATE MAX_SECONDS [loadtest args...]
cell() {
  local name="$1" rate="$2" limit="$3"
  shift 3
  local dir="$here/cells/$name" port rc
  rm -rf "$dir"
  mkdir -p "$dir"
  port="$(free_port)"
  # shellcheck disable=SC2086 # SERVER_ARGS is a list of flags
  taskset -c 0 "$T/tickcast" --listen "127.0.0.1:$port" --synthetic-symbols 100 \
    --synthetic-rate "$rate" ${SERVER_ARGS:-} >"$dir/server.log" 2>&1 &
  srv=$!
  for _ in $(seq 100); do # bounded: 10 s
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
    sleep 0.1
  done
  sleep 1.5
  local cmd=(taskset -c 1 "$T/loadtest" --url "ws://127.0.0.1:$port/ws" --server-pid "$srv"
    --rate "$rate" --symbols 100 --out "$dir" "$@")
  {
    echo "# $(date -u '+%Y-%m-%d %H:%M:%S UTC'), loadavg $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "taskset -c 0 tickcast --listen 127.0.0.1:$port --synthetic-symbols 100 --synthetic-rate $rate ${SERVER_ARGS:-}"
    echo "${cmd[*]}"
  } >"$dir/command.txt"
  echo "== $name ($(cut -d' ' -f1-3 /proc/loadavg))"
  cp /proc/net/netstat "$dir/.netstat-before"
  rc=0
  timeout "$limit" "${cmd[@]}" >"$dir/stdout.txt" 2>"$dir/stderr.txt" || rc=$?
  # Kernel TCP counters over the run (machine-wide: other tenants' sockets too).
  python3 - "$dir/.netstat-before" /proc/net/netstat >"$dir/netstat-delta.txt" <<'PY'
import sys
def read(path):
    rows = [l.split() for l in open(path)]
    out = {}
    for head, vals in zip(rows[::2], rows[1::2]):
        for k, v in zip(head[1:], vals[1:]):
            out[head[0] + k] = int(v)
    return out
a, b = read(sys.argv[1]), read(sys.argv[2])
keys = ["ListenOverflows", "ListenDrops", "TCPReqQFullDoCookies", "TCPReqQFullDrop", "SyncookiesSent",
        "TCPAbortOnData", "TCPAbortOnClose", "TCPAbortOnMemory", "TCPAbortOnTimeout", "TCPRcvQDrop",
        "PruneCalled", "RcvPruned", "TCPZeroWindowDrop", "TCPWantZeroWindowAdv", "TCPToZeroWindowAdv"]
for k in keys:
    key = "TcpExt:" + k
    if key in b:
        print(f"{k} {b[key] - a.get(key, 0)}")
PY
  rm -f "$dir/.netstat-before"
  echo "$rc" >"$dir/loadtest-exit"
  stop_server >"$dir/server-exit"
  echo "   loadtest exit $rc, server exit $(cat "$dir/server-exit")"
  grep -E "^(clients|delivery|stalled|storm|server|window|  latency fast|sequence|ends)" "$dir/stdout.txt" | sed 's/^/   /' || true
  local total
  total="$(python3 -c "import json; print(json.load(open('$dir/report.json'))['clients']['requested'])" 2>/dev/null || echo 0)"
  if [ "$total" -ge 5000 ]; then sleep 8; fi
}

for c in "$@"; do
  case "$c" in
    # Saturation of 1,000 '*' clients (fanout, as bench.sh runs it).
    sat-*) r="${c#sat-}"; r="${r%%-*}"; cell "$c" "$r" 60 --scenario fanout --clients 1000 --duration 10 --warmup 2 --sample-ms 500 ;;
    # 1: 1,000 stalled + 500 healthy at 5,000 ticks/s; the reference without them.
    # The stalled clients stop 0.5 s after all 1,500 are connected (all at once), as the window
    # opens: before the stall the load is 7.5 M deliveries/s, past this VM's saturation.
    stalled) cell "$c" 5000 120 --scenario stalled --stalled 1000 --clients 500 --duration 15 --warmup 0.5 --connect-concurrency 0 ;;
    # The same with 1.5 s of reading first and connects 256 at a time (the first attempt).
    stalled-warm1.5) cell "$c" 5000 120 --scenario stalled --stalled 1000 --clients 500 --duration 15 --warmup 1.5 ;;
    stalled-ref) cell "$c" 5000 120 --scenario fanout --clients 500 --duration 15 --warmup 1.5 --sample-ms 150 ;;
    # Variant: stalled clients with kernel receive autotuning (their kernel absorbs the stream).
    stalled-rcvauto) cell "$c" 5000 120 --scenario stalled --stalled 1000 --clients 500 --duration 20 --warmup 0.5 --connect-concurrency 0 --stall-rcvbuf 0 ;;
    # 2: 8,000 newcomers next to 1,000 streaming clients at 2,000 ticks/s.
    storm) cell "$c" 2000 150 --scenario connect-storm --streaming 1000 --clients 8000 --duration 15 --warmup 3 --storm-at 5 ;;
    storm-leave) cell "$c" 2000 150 --scenario connect-storm --streaming 1000 --clients 8000 --duration 15 --warmup 3 --storm-at 5 --storm-leave 0 ;;
    storm-ref) cell "$c" 2000 120 --scenario fanout --clients 1000 --duration 15 --warmup 3 --sample-ms 150 ;;
    # 4: 10,000 stalled clients at 5,000 ticks/s, each stalling 0.2 s after its own connect
    # (connects all at once); the same at 1,000 ticks/s (queues fill in 4 s, in small batches);
    # the first attempts, stalling all at once after the connect phase (most were evicted
    # while reading through it); the idle baseline of 10,000 connections at 10 ticks/s.
    stalled10k) cell "$c" 5000 150 --scenario stalled --stalled 10000 --clients 0 --duration 15 --warmup 1 --stall-each --stall-after 0.2 --connect-concurrency 0 --connect-timeout 20 ;;
    stalled10k-r1000) cell "$c" 1000 150 --scenario stalled --stalled 10000 --clients 0 --duration 15 --warmup 1 --stall-each --stall-after 0.2 --connect-concurrency 0 --connect-timeout 20 ;;
    stalled10k-phase) cell "$c" 5000 150 --scenario stalled --stalled 10000 --clients 0 --duration 15 --warmup 3 --stall-after 0 --connect-timeout 20 ;;
    # The orphans: the same as stalled10k with a 75 s window (FIN-WAIT-1 sockets outlive tcp_fin_timeout).
    stalled10k-long) cell "$c" 5000 200 --scenario stalled --stalled 10000 --clients 0 --duration 75 --warmup 1 --stall-each --stall-after 0.2 --connect-concurrency 0 --connect-timeout 20 ;;
    idle10k) cell "$c" 10 150 --scenario fanout --clients 10000 --duration 10 --warmup 2 --sample-ms 500 --connect-timeout 20 ;;
    # 3: soak, 10 minutes (RATE = 80% of saturation), and its 30 s CI form.
    soak) cell "$c" "${RATE:?RATE=ticks/s}" 900 --scenario soak --clients 990 --stalled 10 --churn-rate 10 --duration 600 --warmup 5 ;;
    soak30) cell "$c" 1000 120 --scenario soak --clients 200 --stalled 2 --churn-rate 10 --duration 30 --warmup 2 ;;
    *) echo "unknown cell $c" >&2; exit 1 ;;
  esac
done
