#!/usr/bin/env bash
# ws:// against wss:// at 1,000 clients subscribed to '*', one command:
#
#   bash loadtest/runs/2026-12-01-vm-2core-issue9-tls/run.sh            # build, run, summarize
#   RATES="2000 3000" REPEAT=3 bash loadtest/runs/2026-12-01-vm-2core-issue9-tls/run.sh
#
# For each rate R (ticks/s over 100 symbols, so deliveries/s = 1,000 x R) and
# each transport, in alternation (ws-R, wss-R, ...) so that noise from other
# tenants falls on both alike: tickcast on core 0 (taskset -c 0, --io-threads 1 as in bench.sh: one pinned
# shard; `--tls-cert/--tls-key` for wss), 1.5 s for every symbol to get a
# value, then the load generator on core 1 for a 10 s window after a 2 s
# warm-up (--sample-ms 500: CPU of server, load generator and everything
# else). The certificate is a fresh self-signed P-256 one for 127.0.0.1 made
# with openssl 3 (CA:FALSE: webpki refuses a CA certificate as a server's);
# the load generator trusts exactly it (--ca). summary.py then
# takes, per transport, the highest rate whose p99 is under 10 ms with every
# client connected, none evicted, no gap, and >= 99% of the expected ticks to
# the worst client. Only loopback is used.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
RATES="${RATES:-1000 1500 2000 2500 3000 4000 5000}"
REPEAT="${REPEAT:-1}"
command -v openssl >/dev/null || { echo "needs openssl (for the test certificate)" >&2; exit 2; }
command -v taskset >/dev/null || { echo "needs taskset" >&2; exit 2; }
if [ -z "${NO_BUILD:-}" ]; then
  (cd "$repo" && cargo build --release -p tickcast -p loadtest)
fi
T="${CARGO_TARGET_DIR:-$repo/target}/release"
ulimit -n "$(ulimit -Hn)"

certs="$(mktemp -d)"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
  -addext basicConstraints=critical,CA:FALSE \
  -keyout "$certs/key.pem" -out "$certs/cert.pem" 2>/dev/null

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

srv=""
stop_server() { # SIGINT, at most 15 s, then SIGKILL; prints the exit status
  local rc=0
  [ -z "$srv" ] && return 0
  kill -INT "$srv" 2>/dev/null || true
  for _ in $(seq 150); do kill -0 "$srv" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$srv" 2>/dev/null; then kill -KILL "$srv" 2>/dev/null || true; fi
  wait "$srv" 2>/dev/null || rc=$?
  srv=""
  echo "$rc"
}
trap 'stop_server >/dev/null; rm -rf "$certs"' EXIT

# cell NAME TRANSPORT RATE
cell() {
  local name="$1" transport="$2" rate="$3" dir="$here/cells/$1" port rc=0
  rm -rf "$dir"
  mkdir -p "$dir"
  port="$(free_port)"
  local server=(taskset -c 0 "$T/tickcast" --listen "127.0.0.1:$port" --io-threads 1 --synthetic-symbols 100
    --synthetic-rate "$rate")
  local url="ws://127.0.0.1:$port/ws" trust=()
  if [ "$transport" = wss ]; then
    server+=(--tls-cert "$certs/cert.pem" --tls-key "$certs/key.pem")
    url="wss://127.0.0.1:$port/ws"
    trust=(--ca "$certs/cert.pem")
  fi
  "${server[@]}" >"$dir/server.log" 2>&1 &
  srv=$!
  for _ in $(seq 100); do # bounded: 10 s
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
    sleep 0.1
  done
  sleep 1.5
  local cmd=(taskset -c 1 "$T/loadtest" --url "$url" "${trust[@]}" --server-pid "$srv"
    --rate "$rate" --symbols 100 --scenario fanout --clients 1000 --duration 10 --warmup 2
    --sample-ms 500 --out "$dir")
  {
    echo "# $(date -u '+%Y-%m-%d %H:%M:%S UTC'), loadavg $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "${server[*]}"
    echo "${cmd[*]}"
  } >"$dir/command.txt"
  echo "== $name ($(cut -d' ' -f1-3 /proc/loadavg))"
  timeout 90 "${cmd[@]}" >"$dir/stdout.txt" 2>"$dir/stderr.txt" || rc=$?
  echo "$rc" >"$dir/loadtest-exit"
  stop_server >"$dir/server-exit"
  grep -E "^(clients|  latency fast|sequence|window)" "$dir/stdout.txt" | sed 's/^/   /' || true
}

for rep in $(seq "$REPEAT"); do
  for r in $RATES; do
    for t in ws wss; do
      cell "$t-r$r-$rep" "$t" "$r"
    done
  done
done
python3 "$here/summary.py" "$here/cells" | tee "$here/results.md"
