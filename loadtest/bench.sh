#!/usr/bin/env bash
# The benchmark matrix of issue 11's targets, tickcast side by side with the
# peers (tokio-tungstenite, node-ws, bare-fanout: the floor of the machine),
# written to a dated results folder that names the machine.
#
#   loadtest/bench.sh                     # every group: 41 cells, ~20 minutes
#   QUICK=1 loadtest/bench.sh             # a smoke run: 5 short cells (~1.5 minutes)
#   CELLS="distinct watchlist" loadtest/bench.sh   # some groups only
#
# Groups (CELLS, space-separated; default all, in this order):
#   star       1,000 clients on `*`, 100 symbols, rates up to 12 M deliveries/s
#              (the headline: highest rate with p99 < 10 ms) and the peers
#   fanout10k  10,000 clients x 100 ticks/s on `*` (tickcast vs bare-fanout)
#   memory     10,000 nearly idle clients on `*` (RSS growth per connection)
#   distinct   1,000 clients x random:10 of 100 symbols, 50,000 and 40,000 ticks/s
#   watchlist  1,000 clients x random:50 of 2,000 symbols, 100,000 ticks/s
#   large      1,000 clients x random:100 of 10,000 symbols, 200,000 ticks/s
#   slow       tickcast with 10 % of its clients stalled
#   cores      tickcast --io-threads 2 unpinned on both cores (a sanity cell)
# Servers (SERVERS, default all that build): tickcast tokio-tungstenite node-ws bare-fanout.
#
# Layout (as the targets are stated): the server under test is confined to
# core 0 with taskset, the load generator to core 1; the `cores` group runs
# tickcast on both cores, shared with the load generator. Each cell starts
# the server with the cell's symbol count and rate, waits for every symbol
# to have a value, and runs the loadtest with the same --rate and --symbols
# so it can compute the delivery % (ticks received / ticks due to each
# client's subscription).
#
# Output: loadtest/runs/<UTC date>-<host>[-quick]/ (OUT to choose)
#   SETUP.md   machine, kernel, rustc, commit, knobs; one line per re-run
#   raw.csv    one line per cell; other_cpu_pct is the CPU (% of one core)
#              that processes other than the server and the loadtest took
#              during the first half of the window: on a shared machine, a
#              cell with much of it was measured on less than a core
#   summary.md the tables, each target marked met / missed with its figure,
#              the peers' figures and ratios beside it
#   cells/     every cell's report.json, latency.hgrm, latency.svg, its
#              commands (.cmd), the loadtest's output (.txt, .err) and the
#              server's log (.server.log)
# With CELLS and an existing OUT, the groups named are measured again and
# replace their rows in raw.csv (only the SERVERS run); the other rows stay.
# Only loopback is used; every server is stopped by the script.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$root/target}"
PEERS_TARGET="${PEERS_TARGET:-$TARGET/peers}"
if [ -n "${QUICK:-}" ]; then
  DUR="${DUR:-4}" WARM="${WARM:-1}"
else
  DUR="${DUR:-10}" WARM="${WARM:-2}"
fi
SERVER_CPU="${SERVER_CPU:-0}"
CLIENT_CPU="${CLIENT_CPU:-1}"
ALL_GROUPS="star fanout10k memory distinct watchlist large slow cores"
ALL_SERVERS="tickcast tokio-tungstenite node-ws bare-fanout"
# tokio-tungstenite's broadcast ring, in ticks, for `*` receivers. 4096 is
# its default; in the large-universe cell the probe's `*` subscription takes
# 10,000 snapshots while 200,000 ticks/s pass, and 4096 ticks are 20 ms of
# that feed: the ring there holds 65536 (0.33 s).
TOKIO_CAPACITY_LARGE=65536
# The same probe on tickcast: its 4096-frame queue is 10,000 snapshots
# short, and the probe was evicted (4001) before it had read them. The
# measured clients (100 snapshots, 2,000 ticks/s each) never come near
# either bound.
TICKCAST_QUEUE_LARGE=65536

groups="${CELLS:-$ALL_GROUPS}"
for g in $groups; do
  case " $ALL_GROUPS " in *" $g "*) ;; *) echo "unknown group in CELLS: $g (groups: $ALL_GROUPS)" >&2; exit 2 ;; esac
done

stamp="$(date -u +%Y-%m-%d)"
host="$(hostname -s 2>/dev/null || echo host)-$(nproc)core"
out="${OUT:-$here/runs/$stamp-$host${QUICK:+-quick}}"
mkdir -p "$out/cells"
csv="$out/raw.csv"
header="group,server,cores,clients,rate_ticks_s,symbols,subscribe,scenario,connected,msgs_s,delivered_pct,delivery_min_pct,p50_ms,p90_ms,p99_ms,p999_ms,max_ms,per_client_min,per_client_max,gaps,dups,evicted_fast,evicted_slow,slow_p99_ms,loadgen_cpu_pct,other_cpu_pct,server_rss_kb,rss_per_conn_kb,report"
# 10,000 clients need 10,000 descriptors in the server (and the loadtest
# raises its own).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt 20000 ]; then
  echo "warning: ulimit -n is $(ulimit -n); the 10,000-client cells need 20000" >&2
fi
started=$(date +%s)

echo "== building (release)"
(cd "$root" && CARGO_TARGET_DIR="$TARGET" cargo build --release -q -p tickcast -p loadtest)
TICKCAST="$TARGET/release/tickcast"
LOADTEST="$TARGET/release/loadtest"
wanted="${SERVERS:-$ALL_SERVERS}"
want() { case " $wanted " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
servers=()
want tickcast && servers+=(tickcast)
if want tokio-tungstenite && (cd "$here/peers/tokio-tungstenite" && CARGO_TARGET_DIR="$PEERS_TARGET" cargo build --release -q); then
  servers+=(tokio-tungstenite)
fi
if want node-ws && command -v node >/dev/null && (cd "$here/peers/node-ws" && { [ -d node_modules/ws ] || npm install --no-audit --no-fund --silent; }); then
  servers+=(node-ws)
fi
if want bare-fanout && (cd "$here/peers/bare-fanout" && CARGO_TARGET_DIR="$PEERS_TARGET" cargo build --release -q); then
  servers+=(bare-fanout)
fi
echo "== servers: ${servers[*]}"
peers=()
for s in "${servers[@]}"; do [ "$s" != tickcast ] && peers+=("$s"); done
has() { case " ${servers[*]} " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

rerun=0
if [ -n "${CELLS:-}" ] && [ -f "$csv" ] && [ "$(head -1 "$csv")" = "$header" ]; then
  # Keep the rows of the groups and servers not re-run.
  rerun=1
  python3 - "$csv" "$groups" "${servers[*]}" <<'PY'
import csv, sys
path, groups, servers = sys.argv[1], set(sys.argv[2].split()), set(sys.argv[3].split())
with open(path) as f:
    rows = list(csv.reader(f))
with open(path, "w", newline="") as f:
    w = csv.writer(f, lineterminator="\n")
    w.writerow(rows[0])
    w.writerows(r for r in rows[1:] if r and not (r[0] in groups and r[1] in servers))
PY
else
  echo "$header" >"$csv"
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

# cpu_ticks PID... -> "machine_task_ticks pid_ticks..." (clock ticks): the
# task time (user+nice+system) of the whole machine and of each process.
# Between two calls, machine minus the processes is what everything else
# (other sessions' builds and runs, kernel threads) took while the cell ran.
cpu_ticks() {
  local line
  read -r -a line </proc/stat
  local t=$(( line[1] + line[2] + line[3] )) p f
  for p in "$@"; do
    if read -r -a f <"/proc/$p/stat" 2>/dev/null; then
      # utime, stime are fields 14 and 15 (the comm field has no spaces here).
      t="$t $(( f[13] + f[14] ))"
    else
      t="$t 0"
    fi
  done
  echo "$t"
}

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

# server_cmd NAME CPUS PORT RATE SYMBOLS -> the command in the array `cmd`
server_cmd() {
  local name="$1" cpus="$2" port="$3" rate="$4" symbols="$5"
  case "$name" in
    tickcast)
      local shards=1
      [ "$cpus" != "$SERVER_CPU" ] && shards=2
      # shellcheck disable=SC2206 # SERVER_ARGS is a list of flags
      cmd=("$TICKCAST" --listen "127.0.0.1:$port" --io-threads "$shards"
        --synthetic-symbols "$symbols" --synthetic-rate "$rate" ${SERVER_ARGS:-})
      ;;
    tokio-tungstenite)
      cmd=("$PEERS_TARGET/release/peer-tokio-tungstenite" --listen "127.0.0.1:$port"
        --symbols "$symbols" --rate "$rate" --capacity "${TOKIO_CAPACITY:-4096}")
      ;;
    bare-fanout)
      cmd=("$PEERS_TARGET/release/peer-bare-fanout" --listen "127.0.0.1:$port"
        --symbols "$symbols" --rate "$rate")
      ;;
    node-ws)
      cmd=(node "$here/peers/node-ws/server.js" --listen "127.0.0.1:$port"
        --symbols "$symbols" --rate "$rate")
      ;;
  esac
}

# cell GROUP SERVER CPUS CLIENTS RATE SYMBOLS SUBSCRIBE SCENARIO [extra loadtest args...]
# Env: SERVER_ARGS (extra tickcast flags), TAG (suffix of the scenario
# column), TOKIO_CAPACITY.
cell() {
  local group="$1" server="$2" cpus="$3" clients="$4" rate="$5" symbols="$6" sub="$7" scenario="$8"
  shift 8
  local port name dir subname
  has "$server" || return 0
  port="$(free_port)"
  subname="$(echo "$sub" | sed 's/^\*$/all/; s/://g')"
  name="$group-$server-c$(echo "$cpus" | tr -d ,)-n$clients-r$rate-s$symbols-$subname-$scenario${TAG:-}"
  dir="$out/cells/$name"
  rm -rf "$dir"
  local cell_start
  cell_start=$(date +%s)
  echo "== $name"
  local -a cmd
  server_cmd "$server" "$cpus" "$port" "$rate" "$symbols"
  taskset -c "$cpus" "${cmd[@]}" >"$dir.server.log" 2>&1 &
  srv_pid=$!
  { printf 'taskset -c %s' "$cpus"; printf ' %q' "${cmd[@]}"; echo; } >"$dir.cmd"
  local ok=1
  wait_port "$port" || ok=0
  local mid_rss=0 base_rss=0 other="" t0 t1 c0 c1
  if [ "$ok" = 1 ]; then
    # Let every symbol get a value before clients connect.
    sleep 1.5
    base_rss="$(rss_kb "$srv_pid")"
    local lcpu="$CLIENT_CPU"
    [ "$cpus" != "$SERVER_CPU" ] && lcpu="$cpus"
    local lt_cmd=("$LOADTEST" --url "ws://127.0.0.1:$port/ws" --clients "$clients"
      --duration "$DUR" --warmup "$WARM" --scenario "$scenario" --subscribe "$sub"
      --rate "$rate" --symbols "$symbols" --out "$dir" "$@")
    { printf 'taskset -c %s' "$lcpu"; printf ' %q' "${lt_cmd[@]}"; echo; } >>"$dir.cmd"
    # The random:K probe (one blocking `*` client that learns the symbols)
    # can be cut as a slow consumer when the machine is busy; that is not
    # the measurement, so such a cell is run once more.
    local attempt
    for attempt in 1 2; do
      taskset -c "$lcpu" "${lt_cmd[@]}" >"$dir.txt" 2>"$dir.err" &
      local lt=$!
      # Other processes' CPU over the first half of the measured window, then
      # the server's RSS mid-window; the window opens a warm-up after the
      # loadtest reports its connect phase done (bounded: the probe's 5 s and
      # the connect timeout's 10 s, with a margin).
      for _ in $(seq 250); do
        grep -q '^connected ' "$dir.err" 2>/dev/null && break
        kill -0 "$lt" 2>/dev/null || break
        sleep 0.1
      done
      if kill -0 "$lt" 2>/dev/null; then
        sleep "$WARM"
        t0="$(date +%s.%N)"
        c0="$(cpu_ticks "$srv_pid" "$lt")"
        sleep "$(python3 -c "print($DUR / 2)")"
        t1="$(date +%s.%N)"
        c1="$(cpu_ticks "$srv_pid" "$lt")"
        other="$(awk -v a="$c0" -v b="$c1" -v t0="$t0" -v t1="$t1" -v hz="$(getconf CLK_TCK)" 'BEGIN {
          split(a, x, " "); split(b, y, " ")
          d = (y[1] - x[1]) - (y[2] - x[2]) - (y[3] - x[3])
          printf "%.0f", (d < 0 ? 0 : d) / hz / (t1 - t0) * 100 }')"
        mid_rss="$(rss_kb "$srv_pid")"
      fi
      wait "$lt" || true
      if [ "$attempt" = 1 ] && [ ! -f "$dir/report.json" ] && grep -q '^error: probe' "$dir.err"; then
        mv "$dir.err" "$dir.err.probe-failed"
        echo "   the probe failed ($(tail -1 "$dir.err.probe-failed")); once more"
        continue
      fi
      break
    done
  fi
  stop_server
  # Tearing down thousands of sockets keeps the kernel busy on both cores
  # for a few seconds; let it finish before the next cell is measured.
  if [ "$ok" = 1 ] && [ "$clients" -ge 10000 ]; then sleep 8; fi
  python3 - "$dir/report.json" "$group" "$server" "$(echo "$cpus" | tr , +)" "$clients" "$rate" "$symbols" "$sub" "$scenario${TAG:-}" "$base_rss" "$mid_rss" "$other" >>"$csv" <<'PY'
import csv, json, sys
path, group, server, cpus, clients, rate, symbols, sub, scenario, base, mid, other = sys.argv[1:]
out = csv.writer(sys.stdout, lineterminator="\n")
head = [group, server, cpus, clients, rate, symbols, sub, scenario]
try:
    r = json.load(open(path))
except Exception:
    out.writerow(head + [0, 0] + [""] * 15 + [other, mid, "", "missing"])
    sys.exit(0)
ms = lambda d, k: f"{d.get(k, 0) / 1000:.2f}" if d else ""
lat, slow, pc, seq, cl = r["latency"], r.get("latency_slow") or {}, r["per_client_ticks"], r["seq"]["not_evicted"], r["clients"]
d = r.get("delivery") or {}
# Delivered: ticks received in the window by the clients open for all of
# it, over what every requested client was due (rate x window x its share
# of the symbols): an evicted, cut or never connected client counts as 0.
expected = (d.get("expected_per_client") or 0) * int(clients)
delivered = f"{100 * pc.get('sum', 0) / expected:.2f}" if expected > 0 else ""
dmin = d.get("min_pct")
cpu = r.get("loadgen_cpu_pct")
per_conn = (int(mid) - int(base)) / max(cl["connected"], 1)
out.writerow(head + [
    cl["connected"], round(r["throughput"]["msgs_per_sec"]), delivered,
    f"{dmin:.2f}" if dmin is not None else "",
    ms(lat, "p50_us"), ms(lat, "p90_us"), ms(lat, "p99_us"), ms(lat, "p99_9_us"), ms(lat, "max_us"),
    pc.get("min", ""), pc.get("max", ""), seq["gaps"], seq["duplicates"],
    cl["evicted_fast"], cl["evicted_slow"], ms(slow, "p99_us") if slow.get("count") else "",
    f"{cpu:.0f}" if cpu is not None else "", other, mid, f"{per_conn:.2f}", path,
])
PY
  echo "   $(( $(date +%s) - cell_start )) s"
}

run_group() {
  local g="$1" s r
  case "$g" in
    star)
      # tickcast up to and past the 10 M deliveries/s headline; 12 M/s is
      # more than one core has been seen to write (overload: lagging
      # clients are cut with 4001, queues stay bounded).
      for r in 5000 8000 10000 11000 12000; do cell star tickcast "$SERVER_CPU" 1000 "$r" 100 '*' fanout; done
      for s in "${peers[@]}"; do
        for r in 2500 5000 10000; do cell star "$s" "$SERVER_CPU" 1000 "$r" 100 '*' fanout; done
      done
      ;;
    fanout10k)
      # tickcast's p99 is compared with bare-fanout's from the same run:
      # the two first, one right after the other.
      for s in tickcast bare-fanout tokio-tungstenite node-ws; do
        cell fanout10k "$s" "$SERVER_CPU" 10000 100 100 '*' fanout
      done
      ;;
    memory)
      # 10,000 connections, nearly idle (10 ticks/s), all on `*`.
      for s in "${servers[@]}"; do cell memory "$s" "$SERVER_CPU" 10000 10 100 '*' fanout; done
      ;;
    distinct)
      # Each server right after the other at the same rate, so they share
      # the machine's conditions as closely as one run allows.
      for r in 50000 40000; do
        for s in "${servers[@]}"; do cell distinct "$s" "$SERVER_CPU" 1000 "$r" 100 random:10 fanout; done
      done
      ;;
    watchlist)
      for s in "${servers[@]}"; do cell watchlist "$s" "$SERVER_CPU" 1000 100000 2000 random:50 fanout; done
      ;;
    large)
      for s in "${servers[@]}"; do
        TOKIO_CAPACITY="$TOKIO_CAPACITY_LARGE" SERVER_ARGS="--queue-capacity $TICKCAST_QUEUE_LARGE" \
          cell large "$s" "$SERVER_CPU" 1000 200000 10000 random:100 fanout
      done
      ;;
    slow)
      # 10 % of the clients stop reading. A 256 KiB kernel send buffer
      # (--send-buffer) lets the server see them stall within the window;
      # with the kernel's default (up to 4 MiB) it takes ~14 s at this rate.
      SERVER_ARGS="--send-buffer 262144" TAG="-sndbuf256k" \
        cell slow tickcast "$SERVER_CPU" 1000 5000 100 '*' slow --slow-fraction 0.1
      ;;
    cores)
      # --io-threads 2 on both cores, shared with the load generator; the
      # same build as every other cell. Unpinned: pinned shards would each
      # fight the load generator for a core.
      SERVER_ARGS="--no-pin" cell cores tickcast "$SERVER_CPU,$CLIENT_CPU" 1000 5000 100 '*' fanout
      SERVER_ARGS="--no-pin" cell cores tickcast "$SERVER_CPU,$CLIENT_CPU" 1000 50000 100 random:10 fanout
      ;;
  esac
}

if [ -n "${QUICK:-}" ] && [ -z "${CELLS:-}" ]; then
  cell star tickcast "$SERVER_CPU" 1000 5000 100 '*' fanout
  cell distinct tickcast "$SERVER_CPU" 1000 50000 100 random:10 fanout
  cell distinct bare-fanout "$SERVER_CPU" 1000 50000 100 random:10 fanout
  cell fanout10k tickcast "$SERVER_CPU" 10000 100 100 '*' fanout
  cell fanout10k bare-fanout "$SERVER_CPU" 10000 100 100 '*' fanout
  groups="(quick)"
else
  for g in $groups; do run_group "$g"; done
fi
elapsed=$(( $(date +%s) - started ))

commit="$(cd "$root" && git rev-parse --short HEAD 2>/dev/null || echo unknown)"
knobs="DUR=$DUR WARM=$WARM${QUICK:+ QUICK=1} SERVER_CPU=$SERVER_CPU CLIENT_CPU=$CLIENT_CPU servers: ${servers[*]}"
if [ "$rerun" = 1 ] && [ -f "$out/SETUP.md" ]; then
  echo "- re-run $(date -u '+%Y-%m-%d %H:%M UTC') at $commit: groups $groups ($knobs), ${elapsed} s" >>"$out/SETUP.md"
else
  {
    echo "# Benchmark setup"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "- machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs)), $(free -g | awk '/Mem:/ {print $2}') GiB"
    echo "- kernel: $(uname -r)"
    echo "- rustc: $(rustc --version)"
    echo "- node: $(node --version 2>/dev/null || echo none)"
    echo "- commit: $commit"
    echo "- server on core $SERVER_CPU (taskset), load generator on core $CLIENT_CPU, except the \`cores\` group (both cores, shared)"
    echo "- windows: ${DUR} s measured after ${WARM} s warm-up; RSS sampled mid-window"
    echo "- command: \`${CELLS:+CELLS=\"$CELLS\" }${QUICK:+QUICK=1 }loadtest/bench.sh\` ($knobs); every cell's exact commands are in cells/*.cmd"
    echo "- groups: $groups; ${elapsed} s in total"
  } >"$out/SETUP.md"
fi

python3 "$here/bench_summary.py" "$csv" >"$out/summary.md"
cat "$out/summary.md"
echo "results in $out (${elapsed} s)"
