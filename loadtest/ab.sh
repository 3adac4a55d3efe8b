#!/usr/bin/env bash
# A/B comparison of two tickcast binaries under the same loads, for changes
# that must not move performance (refactors).
#
#   loadtest/ab.sh TICKCAST_A TICKCAST_B [LOADTEST]
#   REPS=5 DUR=10 loadtest/ab.sh /tmp/bin-before/tickcast target/release/tickcast
#
# LOADTEST defaults to the `loadtest` next to TICKCAST_A; the same load
# generator drives both sides. Cells (100 symbols, one I/O thread, server on
# core SERVER_CPU=0, load generator on core CLIENT_CPU=1, loopback only):
#   fanout-1k    1,000 clients on `*`,        5,000 ticks/s
#   fanout-10k  10,000 clients on `*`,          100 ticks/s (then an 8 s pause)
#   distinct-1k  1,000 clients `random:10`,  40,000 ticks/s
# Each cell runs A B A B ... (REPS pairs, default 3), each run on a fresh
# server and port, DUR s measured (default 8) after WARM s (default 2).
# CELLS="fanout-1k distinct-1k" picks a subset.
#
# Output: OUT (default /tmp/ab-<UTC time>): runs.csv (one line per run),
# summary.txt (the tables printed at the end), runs/<cell>-<rep>-<side>/
# (report.json etc., server.log, loadtest stdout/stderr). Table: per side
# the median over reps of msgs/s, p50 and p99 latency; B/A is the median of
# the per-pair ratios (pair i = A run i and B run i).
set -euo pipefail

[ $# -ge 2 ] || { sed -n '2,22p' "$0" >&2; exit 64; }
A="$(realpath "$1")"
B="$(realpath "$2")"
LOADTEST="$(realpath "${3:-$(dirname "$A")/loadtest}")"
for f in "$A" "$B" "$LOADTEST"; do [ -x "$f" ] || { echo "not executable: $f" >&2; exit 64; }; done
REPS="${REPS:-3}"
DUR="${DUR:-8}"
WARM="${WARM:-2}"
SERVER_CPU="${SERVER_CPU:-0}"
CLIENT_CPU="${CLIENT_CPU:-1}"
CELLS="${CELLS:-fanout-1k fanout-10k distinct-1k}"
OUT="${OUT:-/tmp/ab-$(date -u +%Y%m%d-%H%M%S)}"
mkdir -p "$OUT/runs"
csv="$OUT/runs.csv"
echo "cell,rep,side,clients,rate,subscribe,connected,msgs_s,p50_ms,p99_ms,gaps,evictions,loadtest_rc,server_stopped,dir" >"$csv"
{
  echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')  host: $(hostname)  cores: $(nproc)  load: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "A: $A  sha256 $(sha256sum "$A" | cut -c1-16)"
  echo "B: $B  sha256 $(sha256sum "$B" | cut -c1-16)"
  echo "loadtest: $LOADTEST  sha256 $(sha256sum "$LOADTEST" | cut -c1-16)"
  echo "REPS=$REPS DUR=$DUR WARM=$WARM SERVER_CPU=$SERVER_CPU CLIENT_CPU=$CLIENT_CPU CELLS=$CELLS"
} >"$OUT/setup.txt"
cat "$OUT/setup.txt"

ulimit -n "$(ulimit -Hn)"
[ "$(ulimit -n)" -ge 10100 ] || echo "warning: ulimit -n is $(ulimit -n); 10,000-client cells need more" >&2

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_port() { # PORT PID; bounded: 10 s
  for _ in $(seq 100); do
    kill -0 "$2" 2>/dev/null || { echo "server exited before listening" >&2; return 1; }
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "server did not listen on port $1 within 10 s" >&2
  return 1
}

srv_pid=""
stop_server() { # SIGTERM, then up to 10 s for a clean exit, then SIGKILL
  [ -n "$srv_pid" ] || return 0
  kill -TERM "$srv_pid" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$srv_pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$srv_pid" 2>/dev/null; then
    echo "server $srv_pid ignored SIGTERM for 10 s: killing it" >&2
    kill -KILL "$srv_pid" 2>/dev/null || true
  fi
  wait "$srv_pid" 2>/dev/null || true
  srv_pid=""
}
trap stop_server EXIT
trap 'exit 130' INT TERM

# run CELL REP SIDE BINARY CLIENTS RATE SUBSCRIBE
run() {
  local cell="$1" rep="$2" side="$3" bin="$4" clients="$5" rate="$6" sub="$7"
  local port dir rc=0
  port="$(free_port)"
  dir="$OUT/runs/$cell-$rep-$side"
  mkdir -p "$dir"
  printf '== %-12s rep %s %s  (port %s) ... ' "$cell" "$rep" "$side" "$port"
  taskset -c "$SERVER_CPU" "$bin" --listen "127.0.0.1:$port" --io-threads 1 \
    --synthetic-symbols 100 --synthetic-rate "$rate" >"$dir/server.log" 2>&1 &
  srv_pid=$!
  wait_port "$port" "$srv_pid"
  sleep 1.5 # every symbol gets a value (and a snapshot) before clients connect
  timeout --kill-after=10 "$((DUR + WARM + 60))" \
    taskset -c "$CLIENT_CPU" "$LOADTEST" --url "ws://127.0.0.1:$port/ws" --clients "$clients" \
    --duration "$DUR" --warmup "$WARM" --subscribe "$sub" --quiet --out "$dir/report" \
    >"$dir/loadtest.txt" 2>"$dir/loadtest.err" || rc=$?
  stop_server
  python3 - "$dir" "$cell" "$rep" "$side" "$clients" "$rate" "$sub" "$rc" >>"$csv" <<'PY'
import json, re, sys
d, cell, rep, side, clients, rate, sub, rc = sys.argv[1:]
log = open(f"{d}/server.log", errors="replace").read()
# The binary's last log line: `stopped ticks_published=N frames_sent=M`
# (tracing, since issue 9), or `stopped: N ticks published, M frames sent`.
m = re.search(r"stopped(?:: (\d+) ticks published, (\d+) frames sent| ticks_published=(\d+) frames_sent=(\d+))", log)
if m:
    m = [m[0], m[1] or m[3], m[2] or m[4]]
stopped = f"{m[1]} ticks/{m[2]} frames" if m else "no stop line"
try:
    r = json.load(open(f"{d}/report/report.json"))
    c, lat, seq = r["clients"], r["latency"], r["seq"]["not_evicted"]
    row = [c["connected"], round(r["throughput"]["msgs_per_sec"]), f'{lat["p50_us"]/1000:.3f}',
           f'{lat["p99_us"]/1000:.3f}', seq["gaps"], c["evicted_fast"] + c["evicted_slow"]]
except Exception:
    row = [0, "", "", "", "", ""]
print(",".join(map(str, [cell, rep, side, clients, rate, sub, *row, rc, stopped, d])))
print("connected {} msgs/s {} p50 {} ms p99 {} ms gaps {} evictions {} rc {}".format(*row, rc), file=sys.stderr)
PY
  # Tearing down 10,000 sockets keeps the kernel busy on both cores for a
  # few seconds; let it finish before the next run is measured.
  if [ "$clients" -ge 10000 ]; then sleep 8; fi
}

for cell in $CELLS; do
  case "$cell" in
    fanout-1k) args=(1000 5000 '*') ;;
    fanout-10k) args=(10000 100 '*') ;;
    distinct-1k) args=(1000 40000 'random:10') ;;
    *) echo "unknown cell $cell" >&2; exit 64 ;;
  esac
  for rep in $(seq "$REPS"); do
    run "$cell" "$rep" A "$A" "${args[@]}"
    run "$cell" "$rep" B "$B" "${args[@]}"
  done
done

python3 - "$csv" <<'PY' | tee "$OUT/summary.txt"
import csv, statistics as st, sys
rows = list(csv.DictReader(open(sys.argv[1])))
med = lambda xs: st.median(xs) if xs else float("nan")
num = lambda r, k: float(r[k]) if r[k] not in ("", None) else float("nan")
for cell in dict.fromkeys(r["cell"] for r in rows):
    rs = [r for r in rows if r["cell"] == cell]
    r0 = rs[0]
    print(f"\n{cell}: {r0['clients']} clients on {r0['subscribe']}, 100 symbols, {r0['rate']} ticks/s, "
          f"{len(rs) // 2} pair(s)")
    print(f"  {'side':<5} {'msgs/s':>11} {'p50 ms':>8} {'p99 ms':>8} {'gaps':>5} {'evict':>6} {'conn min':>8} {'rc!=0':>5}")
    side = {s: [r for r in rs if r["side"] == s] for s in "AB"}
    for s, xs in side.items():
        ok = [r for r in xs if r["msgs_s"]]
        print(f"  {s:<5} {med([num(r, 'msgs_s') for r in ok]):>11,.0f} {med([num(r, 'p50_ms') for r in ok]):>8.3f} "
              f"{med([num(r, 'p99_ms') for r in ok]):>8.3f} {sum(int(r['gaps'] or 0) for r in xs):>5} "
              f"{sum(int(r['evictions'] or 0) for r in xs):>6} {min(int(r['connected']) for r in xs):>8} "
              f"{sum(r['loadtest_rc'] != '0' for r in xs):>5}")
    pairs = [(a, b) for a in side["A"] for b in side["B"] if a["rep"] == b["rep"] and a["msgs_s"] and b["msgs_s"]]
    ratio = lambda k: med([num(b, k) / num(a, k) for a, b in pairs if num(a, k) > 0])
    print(f"  B/A   msgs/s x{ratio('msgs_s'):.3f}   p99 x{ratio('p99_ms'):.3f}   (median of per-pair ratios)")
    bad = [r for r in rs if r["gaps"] != "0" or r["evictions"] != "0" or r["loadtest_rc"] != "0"
           or r["connected"] != r["clients"]]
    for r in bad:
        print(f"  warning: rep {r['rep']} {r['side']}: connected {r['connected']} gaps {r['gaps']} "
              f"evictions {r['evictions']} loadtest rc {r['loadtest_rc']} ({r['dir']})")
PY
echo
echo "raw runs: $csv"
