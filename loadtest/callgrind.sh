#!/usr/bin/env bash
# Instructions per delivered frame, counted by callgrind: a figure that
# does not move with machine load, for before/after comparisons of changes
# that must not cost performance.
#
#   loadtest/callgrind.sh TICKCAST [OUTDIR]      # OUTDIR default /tmp/callgrind-<UTC time>
#   RUNS=2 loadtest/callgrind.sh /tmp/bin-before/tickcast
#
# For each workload the server runs alone under
#   valgrind --tool=callgrind --collect-atstart=yes [VALGRIND_ARGS]
#   tickcast --io-threads 1 --no-pin --synthetic-symbols 100 --synthetic-rate R
# on a free 127.0.0.1 port, the native loadtest (LOADTEST, default the one
# next to TICKCAST) drives it for WARM=2 + DUR=10 s, then the server gets
# SIGTERM and logs `stopped ticks_published=N frames_sent=M ...`.
# Workloads (WORKLOADS="fanout distinct", CLIENTS=100 each):
#   fanout    every client on `*`,      R = FANOUT_RATE=100 ticks/s   (10,000 frames/s)
#   distinct  every client `random:10`, R = DISTINCT_RATE=1000 ticks/s (10,000 frames/s)
# Printed per workload and run, then a table of the runs that passed: total
# Ir (the `totals:` line), frames sent, ticks published, Ir/frame, Ir/tick
# and frames per socket write (calls of sendmsg); also OUTDIR/results.csv
# and each callgrind.out (compare two with callgrind_annotate).
#
# Why these rates: a socket write costs ~700 Ir however many frames it
# carries, so Ir/frame follows frames/write, and that follows timing when
# ticks arrive faster than the server (50x slower under valgrind) drains
# them. At 2,000 ticks/s on `*` frames/write ranged 4-11 between runs and
# Ir/frame 167-340. At the default rates every client gets its own write
# per tick (frames/write ~1.0-1.1): fanout runs agreed within ~0.1%,
# distinct within ~2-3% (the loadtest seeds its random:10 picks from the
# clock, so each run delivers a different mix).
# Compare Ir/frame only between runs with the same frames/write (within a
# few %) and the same CLIENTS, rates, DUR and WARM.
#
# What the figure includes: every instruction of every server thread (feed,
# shard, acceptor) in user space from exec to exit (not the kernel's work in
# syscalls): start-up, the feed before the clients connect (~1.5 s plus
# valgrind start-up) and after they leave, the probe connection (random:K),
# 100 HTTP upgrades and subscriptions, snapshots, heartbeat pings (counted
# as frames too), per-tick work that does not depend on subscribers
# (random walk, publish, JSON encode: ~4,900 Ir/tick) and the shutdown.
# Measured with no client over the same time (baseline c425b8b): 13.5 M Ir
# at 100 ticks/s (~8% of the fanout total), 89 M Ir at 1,000 ticks/s (~36%
# of the distinct total). So Ir/frame is "server instructions per delivered
# frame, all overheads included"; Ir/tick is the same total per tick.
#
# Checks: every client connected, loadtest exit 0, no gaps, no evictions,
# and the server kept up: the clients received >= 98% of the ticks the feed
# rate implies (the feed skips ticks after a stall) and no tick took more
# than MAX_LAT_MS=50 (clean runs stay under ~20 ms; a stall batches frames
# and lowers Ir/frame). A run that fails is marked CHECK and repeated, up
# to RETRIES=2 more times; the closing table lists only runs that passed
# (exit status 1 if a workload has none). results.csv keeps every attempt.
# Optional SERVER_CPU / CLIENT_CPU pin the server / loadtest with taskset.
# TLS=1 measures wss:// instead: a self-signed certificate for 127.0.0.1 is
# made with openssl 3 in OUTDIR/tls, the server gets --tls-cert/--tls-key
# and the loadtest --ca. The totals then include the clients' TLS
# handshakes (one each): compare the marginal cost of two DURs to see the
# per-frame cost alone.
# Only loopback is used; the server is always stopped.
set -euo pipefail

[ $# -ge 1 ] || { sed -n '2,59p' "$0" >&2; exit 64; }
TICKCAST="$(realpath "$1")"
OUT="${2:-/tmp/callgrind-$(date -u +%Y%m%d-%H%M%S)}"
LOADTEST="$(realpath "${LOADTEST:-$(dirname "$TICKCAST")/loadtest}")"
for f in "$TICKCAST" "$LOADTEST"; do [ -x "$f" ] || { echo "not executable: $f" >&2; exit 64; }; done
command -v valgrind >/dev/null || { echo "valgrind missing: apt-get install -y valgrind" >&2; exit 69; }
CLIENTS="${CLIENTS:-100}"
FANOUT_RATE="${FANOUT_RATE:-100}"
DISTINCT_RATE="${DISTINCT_RATE:-1000}"
DUR="${DUR:-10}"
WARM="${WARM:-2}"
RUNS="${RUNS:-1}"
WORKLOADS="${WORKLOADS:-fanout distinct}"
RETRIES="${RETRIES:-2}"
MAX_LAT_MS="${MAX_LAT_MS:-50}"
mkdir -p "$OUT"
scheme=ws server_tls=() client_tls=()
if [ -n "${TLS:-}" ]; then
  mkdir -p "$OUT/tls"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
    -addext basicConstraints=critical,CA:FALSE \
    -keyout "$OUT/tls/key.pem" -out "$OUT/tls/cert.pem" 2>/dev/null
  scheme=wss
  server_tls=(--tls-cert "$OUT/tls/cert.pem" --tls-key "$OUT/tls/key.pem")
  client_tls=(--ca "$OUT/tls/cert.pem")
fi
csv="$OUT/results.csv"
[ -f "$csv" ] || echo "workload,run,try,clients,rate,ir_total,frames_sent,ticks_published,ir_per_frame,ir_per_tick,socket_writes,frames_per_write,connected,gaps,evictions,delivered_pct,latency_max_ms,loadtest_rc,check,dir" >"$csv"
echo "tickcast $TICKCAST (sha256 $(sha256sum "$TICKCAST" | cut -c1-16)); loadtest $LOADTEST"
echo "$(valgrind --version); TLS=${TLS:-} CLIENTS=$CLIENTS FANOUT_RATE=$FANOUT_RATE DISTINCT_RATE=$DISTINCT_RATE DUR=$DUR WARM=$WARM RETRIES=$RETRIES MAX_LAT_MS=$MAX_LAT_MS; out $OUT"

pin() { if [ -n "${1:-}" ]; then echo taskset -c "$1"; fi; }

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

srv_pid=""
stop_server() { # SIGTERM; callgrind needs a while to exit and dump: 120 s, then SIGKILL
  [ -n "$srv_pid" ] || return 0
  kill -TERM "$srv_pid" 2>/dev/null || true
  for _ in $(seq 1200); do kill -0 "$srv_pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$srv_pid" 2>/dev/null; then
    echo "server $srv_pid still running 120 s after SIGTERM: killing it" >&2
    kill -KILL "$srv_pid" 2>/dev/null || true
  fi
  wait "$srv_pid" 2>/dev/null || true
  srv_pid=""
}
trap stop_server EXIT
trap 'exit 130' INT TERM

# measure WORKLOAD RUN TRY RATE SUBSCRIBE K(symbols per client, of 100); 0 if the checks pass
measure() {
  local name="$1" run="$2" try="$3" rate="$4" sub="$5" k="$6" port dir rc=0
  port="$(free_port)"
  dir="$OUT/$name-$run-try$try"
  mkdir -p "$dir"
  # shellcheck disable=SC2046,SC2086 # pin prints a prefix or nothing; VALGRIND_ARGS is a list
  $(pin "${SERVER_CPU:-}") valgrind --tool=callgrind --collect-atstart=yes ${VALGRIND_ARGS:-} \
    --callgrind-out-file="$dir/callgrind.out" --log-file="$dir/valgrind.log" \
    "$TICKCAST" --listen "127.0.0.1:$port" --io-threads 1 --no-pin \
    --synthetic-symbols 100 --synthetic-rate "$rate" "${server_tls[@]}" >"$dir/server.log" 2>&1 &
  srv_pid=$!
  local up=0
  for _ in $(seq 600); do # bounded: 60 s (valgrind starts slowly)
    kill -0 "$srv_pid" 2>/dev/null || break
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then up=1; break; fi
    sleep 0.1
  done
  [ "$up" = 1 ] || { echo "server did not listen on $port (see $dir)" >&2; exit 1; }
  sleep 1.5 # every symbol gets a value before clients connect
  # shellcheck disable=SC2046
  timeout --kill-after=10 "$((DUR + WARM + 60))" $(pin "${CLIENT_CPU:-}") \
    "$LOADTEST" --url "$scheme://127.0.0.1:$port/ws" "${client_tls[@]}" --clients "$CLIENTS" --duration "$DUR" \
    --warmup "$WARM" --subscribe "$sub" --quiet --out "$dir/report" \
    >"$dir/loadtest.txt" 2>"$dir/loadtest.err" || rc=$?
  stop_server
  python3 - "$dir" "$name" "$run" "$try" "$CLIENTS" "$rate" "$k" "$rc" "$MAX_LAT_MS" >>"$csv" <<'PY'
import json, re, sys
d, name, run, try_, clients, rate, k, rc, max_lat = sys.argv[1:]
clients, rate, k, max_lat = int(clients), int(rate), int(k), float(max_lat)
log = open(f"{d}/server.log", errors="replace").read()
# The binary's last log line: `stopped ticks_published=N frames_sent=M`
# (tracing, since issue 9), or `stopped: N ticks published, M frames sent`.
m = re.search(r"stopped(?:: (\d+) ticks published, (\d+) frames sent| ticks_published=(\d+) frames_sent=(\d+))", log)
if m:
    m = [m[0], m[1] or m[3], m[2] or m[4]]
ir, names, cfn, writes = None, {}, None, 0
for line in open(f"{d}/callgrind.out", errors="replace"):
    if line.startswith(("totals:", "summary:")):
        ir = int(line.split()[1])  # totals: comes last and wins (summary: is within a few hundred)
    elif line.startswith(("fn=", "cfn=")):  # names are compressed: "(id) name" once, then "(id)"
        fid, _, fname = line.split("=", 1)[1].strip().partition(" ")
        names.setdefault(fid, fname)
        cfn = names[fid] if line.startswith("cfn=") else None
    elif line.startswith("calls=") and cfn in ("sendmsg", "writev", "send"):
        writes += int(line[6:].split()[0])  # socket writes: one per write_vectored
if not m or ir is None:
    print(f"{name} run {run}: no stop line or no Ir total (see {d})", file=sys.stderr)
    sys.exit(1)
ticks, frames = int(m[1]), int(m[2])
r = json.load(open(f"{d}/report/report.json"))
c, seq, lat_max = r["clients"], r["seq"]["not_evicted"], r["latency"]["max_us"] / 1000
evicted = c["evicted_fast"] + c["evicted_slow"]
delivered = 100 * r["throughput"]["ticks_per_sec"] / (clients * rate * k / 100)
ok = (c["connected"] == clients and rc == "0" and seq["gaps"] == 0 and evicted == 0
      and delivered >= 98 and lat_max <= max_lat)
check = "OK" if ok else "CHECK"
fpw = frames / max(writes, 1)
print(",".join(map(str, [name, run, try_, clients, rate, ir, frames, ticks, f"{ir / frames:.1f}",
                         f"{ir / ticks:.0f}", writes, f"{fpw:.2f}", c["connected"], seq["gaps"],
                         evicted, f"{delivered:.1f}", f"{lat_max:.1f}", rc, check, d])))
print(f"{name:<9} run {run}.{try_}: Ir {ir:>13,}  frames {frames:>9,}  ticks {ticks:>6,}  "
      f"Ir/frame {ir / frames:>6.1f}  Ir/tick {ir / ticks:>7,.0f}  frames/write {fpw:.2f}  "
      f"[{check}: connected {c['connected']}/{clients}, gaps {seq['gaps']}, evicted {evicted}, "
      f"delivered {delivered:.1f}%, latency max {lat_max:.0f} ms, loadtest rc {rc}]", file=sys.stderr)
sys.exit(0 if ok else 1)
PY
}

for run in $(seq "$RUNS"); do
  for w in $WORKLOADS; do
    case "$w" in
      fanout) args=("$FANOUT_RATE" '*' 100) ;;
      distinct) args=("$DISTINCT_RATE" random:10 10) ;;
      *) echo "unknown workload $w" >&2; exit 64 ;;
    esac
    # A stall (machine load) batches frames and moves the count: retry, bounded.
    for try in $(seq 0 "$RETRIES"); do
      if measure "$w" "$run" "$try" "${args[@]}"; then break; fi
      if [ "$try" -lt "$RETRIES" ]; then echo "  ... checks failed, retrying" >&2; fi
    done
  done
done

python3 - "$csv" <<'PY'
import csv, statistics as st, sys
rows = list(csv.DictReader(open(sys.argv[1])))
print("\nworkload   OK runs  Ir/frame (each)            Ir/tick (each)              frames/write  spread")
status = 0
for w in dict.fromkeys(r["workload"] for r in rows):
    ok = [r for r in rows if r["workload"] == w and r["check"] == "OK"]
    if not ok:
        print(f"{w:<10} 0        no run passed the checks"); status = 1; continue
    f = [float(r["ir_per_frame"]) for r in ok]
    spread = (max(f) - min(f)) / st.mean(f) * 100
    print(f"{w:<10} {len(ok):<8} {' '.join(r['ir_per_frame'] for r in ok):<26} "
          f"{' '.join(r['ir_per_tick'] for r in ok):<27} {' '.join(r['frames_per_write'] for r in ok):<13} {spread:.1f}%")
sys.exit(status)
PY
