#!/usr/bin/env python3
"""Turns bench.sh's raw.csv into summary.md: the cells by group, each of
issue 11's targets marked met or missed with its figure, and the peers'
figures beside tickcast's, as ratios.

A cell that was not run (a peer that did not build, a group left out of
CELLS) is reported as not measured; nothing here assumes a cell exists.
"""

import csv
import sys

# Above this much of its one core, the load generator is the bottleneck:
# the cell measures the loadtest, not the server (issue 11).
LOADGEN_CPU_LIMIT = 90.0
# CPU (% of one core) that other processes on the machine took during a
# cell above which it was measured on less than the cores it was given.
OTHER_CPU_LIMIT = 10.0
# "Every frame delivered", allowing for clients' windows being cut at
# slightly different instants (a few ticks of a 10 s window).
EVERY_FRAME_PCT = 99.5
PEERS = ["tokio-tungstenite", "node-ws", "bare-fanout"]
GROUP_TITLES = {
    "star": "1,000 clients on `*`, 100 symbols",
    "fanout10k": "10,000 clients x 100 ticks/s on `*`",
    "memory": "10,000 nearly idle clients on `*` (10 ticks/s)",
    "distinct": "distinct subscriptions: 1,000 clients x random 10 of 100 symbols",
    "watchlist": "watchlists: 1,000 clients x random 50 of 2,000 symbols",
    "large": "large universe: 1,000 clients x random 100 of 10,000 symbols",
    "slow": "slow consumers: 10 % of 1,000 clients stop reading",
    "cores": "tickcast --io-threads 2, unpinned, both cores shared with the loadtest",
}


def num(v, default=None):
    try:
        return float(v)
    except (TypeError, ValueError):
        return default


def load(path):
    with open(path) as f:
        return [r for r in csv.DictReader(f) if r.get("group")]


rows = load(sys.argv[1])


def one_core(r):
    return "+" not in r["cores"]


def find(group, server="tickcast", rate=None, both=False, clients=None):
    """The first row of a group for one server (on one core, or with
    `both` on several), at `rate` and `clients` when given."""
    for r in rows:
        if (r["group"] == group and r["server"] == server and one_core(r) != both
                and (rate is None or r["rate_ticks_s"] == str(rate))
                and (clients is None or r["clients"] == str(clients))):
            return r
    return None


def measured(r):
    return r is not None and r.get("report") != "missing"


def loadgen_bound(r):
    return num(r.get("loadgen_cpu_pct"), 0) > LOADGEN_CPU_LIMIT


def shared(r):
    return num(r.get("other_cpu_pct"), 0) > OTHER_CPU_LIMIT


def complete(r, pct=99.0):
    """Every client connected, none evicted, no gap, and at least `pct` of
    what was due delivered."""
    return (measured(r) and r["connected"] == r["clients"] and r["evicted_fast"] == "0"
            and r["gaps"] == "0" and num(r["delivered_pct"], 0) >= pct)


def verdict(ok, r=None):
    text = "**met**" if ok else "**missed**"
    if r is not None and loadgen_bound(r):
        text += f" (loadtest at {r['loadgen_cpu_pct']} % CPU: this measures the loadtest)"
    if r is not None and shared(r):
        text += f" (other processes took {r['other_cpu_pct']} % of a core meanwhile: re-run it)"
    return text


def absent(r):
    """Why a cell has no figures."""
    if r is None:
        return "not measured"
    return "no report: the cell failed (see its .err and .server.log in cells/)"


def figure(r):
    """One cell's figures in a line."""
    if not measured(r):
        return absent(r)
    s = f"{num(r['delivered_pct'], 0):.1f} % delivered, p99 {r['p99_ms']} ms, {num(r['msgs_s'], 0) / 1e6:.2f} M msgs/s"
    if r["connected"] != r["clients"]:
        s += f", {r['connected']} of {r['clients']} connected"
    if r["evicted_fast"] not in ("0", ""):
        s += f", {r['evicted_fast']} evicted"
    if r["gaps"] not in ("0", ""):
        s += f", {r['gaps']} gaps"
    if loadgen_bound(r):
        s += f", loadtest {r['loadgen_cpu_pct']} % CPU"
    if shared(r):
        s += f", other processes {r['other_cpu_pct']} % of a core"
    return s


def ratio(peer, ours):
    """Peer p99 / tickcast p99 (above 1: tickcast is faster at the tail),
    only between cells that both delivered: the p99 of a server that shed
    most of its load, or of its few connected clients, compares nothing."""
    if not (complete(peer) and complete(ours)):
        return "no ratio: not both delivered"
    a, b = num(peer.get("p99_ms")), num(ours.get("p99_ms"))
    if not a or not b:
        return "n/a"
    return f"{a / b:.2f}x"


def peers_line(group, ours, rate=None, clients=None):
    """The peers' figures for one workload, or nothing when no peer ran it."""
    if not any(measured(find(group, p, rate, clients=clients)) for p in PEERS):
        return
    parts = []
    for p in PEERS:
        r = find(group, p, rate, clients=clients)
        if not measured(r):
            parts.append(f"{p} {absent(r)}")
            continue
        x = ratio(r, ours)
        parts.append(f"{p} {figure(r)} ({'p99 ' + x + ' tickcast' + chr(39) + 's' if x[0].isdigit() else x})")
    print("  - peers: " + "; ".join(parts))


print("# Results\n")
print("Server on one core, loadtest on the other (`cores` 0+1: both, shared). Latency = receive "
      "time - `ts` (ms). **delivered** = ticks the clients open for the whole window received / "
      "what every requested client was due (ticks/s x window x its share of the symbols): evicted, "
      "cut or never connected clients count as 0, and above 100 % means a backlog from before the "
      "window was still draining. `spread` = per-client tick counts min..max. **lt CPU** = the "
      f"loadtest's own CPU in the window, % of its one core; above {LOADGEN_CPU_LIMIT:.0f} % (marked !) "
      "the cell measures the loadtest, not the server. **other CPU** = what processes other than "
      "the server and the loadtest took during the first half of the window, % of one core; above "
      f"{OTHER_CPU_LIMIT:.0f} % (marked !) the machine was shared and the cell should be re-run.\n")

order = list(GROUP_TITLES) + sorted({r["group"] for r in rows} - set(GROUP_TITLES))
for g in order:
    cells = [r for r in rows if r["group"] == g]
    if not cells:
        continue
    print(f"## {g}: {GROUP_TITLES.get(g, g)}\n")
    print("| server | cores | clients | ticks/s | symbols | subscribe | scenario | connected | msgs/s | delivered % | "
          "p50 | p90 | p99 | p99.9 | max | spread | gaps | evicted fast/slow | lt CPU % | other CPU % | RSS KiB/conn |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in cells:
        if not measured(r):
            print(f"| {r['server']} | {r['cores']} | {r['clients']} | {r['rate_ticks_s']} | {r['symbols']} | "
                  f"`{r['subscribe']}` | {r['scenario']} | no report |" + " |" * 13)
            continue
        cpu = r["loadgen_cpu_pct"] + (" !" if loadgen_bound(r) else "")
        other = r.get("other_cpu_pct", "") + (" !" if shared(r) else "")
        print(f"| {r['server']} | {r['cores']} | {r['clients']} | {r['rate_ticks_s']} | {r['symbols']} | "
              f"`{r['subscribe']}` | {r['scenario']} | {r['connected']} | {num(r['msgs_s'], 0):,.0f} | "
              f"{r['delivered_pct']} | {r['p50_ms']} | {r['p90_ms']} | {r['p99_ms']} | {r['p999_ms']} | "
              f"{r['max_ms']} | {r['per_client_min']}..{r['per_client_max']} | {r['gaps']} | "
              f"{r['evicted_fast']}/{r['evicted_slow']} | {cpu} | {other} | {r['rss_per_conn_kb']} |")
    print()

print("## Issue 11's targets (server on one core)\n")
if not rows:
    print("No cells in raw.csv.")

# Distinct subscriptions.
t = find("distinct", rate=50000)
if measured(t):
    ok = complete(t) and num(t["p99_ms"], 1e9) < 7
    print(f"- distinct subscriptions, 1,000 clients x random 10 of 100 symbols, 5 M deliveries/s: "
          f">= 99 % delivered with p99 < 7 ms: {verdict(ok, t)} ({figure(t)})")
else:
    print(f"- distinct subscriptions, 5 M deliveries/s: {absent(t)}")
peers_line("distinct", t, 50000)
t40 = find("distinct", rate=40000)
if measured(t40):
    print(f"- the same at 40,000 ticks/s (4 M deliveries/s; no target, the issue's second row): {figure(t40)}")
    peers_line("distinct", t40, 40000)

# Watchlists.
t = find("watchlist")
if measured(t):
    ok = complete(t) and num(t["p99_ms"], 1e9) < 5
    print(f"- watchlists, 2,000 symbols, 1,000 clients x random 50, 2.5 M deliveries/s: p99 < 5 ms "
          f"(all of it delivered, >= 99 %): {verdict(ok, t)} ({figure(t)})")
else:
    print(f"- watchlists, 2.5 M deliveries/s: {absent(t)}")
peers_line("watchlist", t)

# Large universe.
t = find("large")
if measured(t):
    ok = complete(t) and num(t["p99_ms"], 1e9) < 10
    print(f"- large universe, 10,000 symbols at 200,000 ticks/s, 1,000 clients x random 100 (2 M deliveries/s): "
          f">= 99 % with p99 < 10 ms: {verdict(ok, t)} ({figure(t)}); server RSS growth "
          f"{t['rss_per_conn_kb']} KiB per connection (subscription index, queues and socket state together)")
else:
    print(f"- large universe, 2 M deliveries/s: {absent(t)}")
peers_line("large", t)

# 10,000 clients on `*` against the bare fan-out of the same run.
t, bare = find("fanout10k"), find("fanout10k", "bare-fanout")
if measured(t):
    every = complete(t, EVERY_FRAME_PCT)
    if measured(bare) and num(bare["p99_ms"]):
        x = num(t["p99_ms"], 1e9) / num(bare["p99_ms"])
        ok = every and x <= 1.1
        vs = f"bare-fanout p99 {bare['p99_ms']} ms in the same run: tickcast {x:.2f}x of it"
    else:
        ok, vs = False, f"bare-fanout {absent(bare)}: no ratio"
    print(f"- 10,000 clients x 100 ticks/s on `*`: every frame delivered (>= {EVERY_FRAME_PCT} %, no gap, "
          f"no eviction), p99 within 1.1x of a bare fan-out: {verdict(ok, t)} ({figure(t)}; {vs})")
else:
    print(f"- 10,000 clients x 100 ticks/s on `*`: {absent(t)}")
peers_line("fanout10k", t)

# The `*` headline.
star = [r for r in rows if r["group"] == "star" and r["server"] == "tickcast" and one_core(r)]
if star:
    good = [r for r in star if complete(r) and num(r["p99_ms"], 1e9) < 10]
    best = max(good, key=lambda r: num(r["msgs_s"], 0), default=None)
    if best:
        ok = num(best["msgs_s"], 0) >= 10e6
        print(f"- `*` headline, 1,000 clients, highest rate with p99 < 10 ms (and >= 99 % delivered) "
              f">= 10 M deliveries/s: {verdict(ok, best)} ({best['rate_ticks_s']} ticks/s: {figure(best)})")
    else:
        print("- `*` headline >= 10 M deliveries/s with p99 < 10 ms: **missed** (no cell delivered with p99 < 10 ms)")
    ranked = sorted(star, key=lambda r: int(r["rate_ticks_s"]))
    print("  - every tickcast rate: " + "; ".join(f"{r['rate_ticks_s']}/s: {figure(r)}" for r in ranked))
    parts = []
    for p in PEERS:
        cells = [r for r in rows if r["group"] == "star" and r["server"] == p and one_core(r)]
        good = [r for r in cells if complete(r) and num(r["p99_ms"], 1e9) < 10]
        b = max(good, key=lambda r: num(r["msgs_s"], 0), default=None)
        if not cells:
            parts.append(f"{p} not measured")
        elif b:
            ours = num(best["msgs_s"], 0) if best else 0
            x = f", tickcast {ours / num(b['msgs_s'], 1):.2f}x of it" if ours else ""
            parts.append(f"{p} best {num(b['msgs_s'], 0) / 1e6:.2f} M/s at {b['rate_ticks_s']} ticks/s (p99 {b['p99_ms']} ms){x}")
        else:
            parts.append(f"{p} no cell with >= 99 % delivered and p99 < 10 ms (tried "
                         + ", ".join(r["rate_ticks_s"] for r in cells) + " ticks/s)")
    print("  - peers: " + "; ".join(parts))
else:
    print("- `*` headline >= 10 M deliveries/s: not measured")

# Idle memory.
t = find("memory")
if measured(t):
    kib = num(t["rss_per_conn_kb"], 1e9)
    ok = kib <= 2 and t["connected"] == t["clients"]
    print(f"- idle memory <= 2 KiB per connection on `*`: {verdict(ok, t)} ({kib:.2f} KiB: RSS growth from 0 to "
          f"{t['connected']} connections)")
    parts = []
    for p in PEERS:
        r = find("memory", p)
        parts.append(f"{p} {r['rss_per_conn_kb']} KiB ({r['connected']} connected)" if measured(r)
                     else f"{p} {absent(r)}")
    print("  - peers: " + "; ".join(parts))
else:
    print(f"- idle memory <= 2 KiB per connection: {absent(t)}")

# The instrument.
cpus = [(num(r["loadgen_cpu_pct"]), r) for r in rows if measured(r) and num(r["loadgen_cpu_pct"]) is not None]
if cpus:
    top, r = max(cpus, key=lambda c: c[0])
    bound = [r for c, r in cpus if c > LOADGEN_CPU_LIMIT]
    names = ", ".join(f"{r['group']}/{r['server']}@{r['rate_ticks_s']}" for r in bound) or "none"
    noisy = [r for r in rows if measured(r) and shared(r)]
    if noisy:
        print(f"- **{len(noisy)} cell(s) ran while other processes took more than {OTHER_CPU_LIMIT:.0f} % of a core** "
              "(figures from less than the cores given; re-run them with CELLS): "
              + ", ".join(f"{r['group']}/{r['server']}@{r['rate_ticks_s']} ({r['other_cpu_pct']} %)" for r in noisy))
    print(f"- the loadtest keeps up (its own CPU <= {LOADGEN_CPU_LIMIT:.0f} % of its core in every cell): "
          f"{verdict(not bound)} (highest {top:.0f} % in {r['group']}/{r['server']} at {r['rate_ticks_s']} ticks/s, "
          f"{num(r['msgs_s'], 0) / 1e6:.2f} M msgs/s; cells above the limit: {names})")

also = []
both = find("cores", rate=5000, both=True)
one = find("star", rate=5000)
if measured(both):
    also.append(f"- sanity, `--io-threads 2` unpinned on both cores (shared with the loadtest), 1,000 clients on `*` "
          f"at 5,000 ticks/s: {figure(both)}; the same on core 0 alone: {figure(one)}")
both = find("cores", rate=50000, both=True)
one = find("distinct", rate=50000)
if measured(both):
    also.append(f"- sanity, `--io-threads 2` unpinned on both cores, distinct subscriptions at 50,000 ticks/s: "
          f"{figure(both)}; the same on core 0 alone: {figure(one)}")
t = find("slow")
if measured(t):
    slow_n = int(num(t["evicted_slow"], 0))
    ok = slow_n >= 100 and t["evicted_fast"] == "0" and t["gaps"] == "0"
    ref = find("star", rate=5000)
    also.append(f"- slow consumers (10 % of 1,000 clients stop reading, 256 KiB send buffer): {verdict(ok, t)} "
          f"({slow_n} slow clients evicted with 4001, {t['evicted_fast']} fast evicted, fast p99 {t['p99_ms']} ms"
          + (f" vs {ref['p99_ms']} ms without slow clients)" if measured(ref) else ")"))
over = find("star", rate=12000)
if measured(over):
    also.append(f"- 12 M deliveries/s demanded of one core (overload): {figure(over)}; server RSS "
                f"{int(num(over['server_rss_kb'], 0)) // 1024} MiB mid-run (queues are bounded: a client "
                f"that lags is cut with 4001, never skipped; gaps {over['gaps']})")
if also:
    print("\n## Also measured\n")
    print("\n".join(also))

# One table to quote: each workload, each server.
servers = ["tickcast"] + PEERS
workloads = [
    ("`*`, 1,000 clients, best rate with p99 < 10 ms", None),
    ("distinct, 5 M/s", ("distinct", 50000)),
    ("distinct, 4 M/s", ("distinct", 40000)),
    ("watchlists, 2.5 M/s", ("watchlist", None)),
    ("large universe, 2 M/s", ("large", None)),
    ("10,000 clients x 100/s on `*`", ("fanout10k", None)),
    ("idle memory, KiB/conn", ("memory", None)),
]
if rows:
    print("\n## Side by side\n")
    print("Each cell: delivered %, p99 ms (or the best `*` rate, or KiB per idle connection). "
          "! = the loadtest above its CPU limit or other processes sharing the machine in that cell.\n")
    print("| workload | " + " | ".join(servers) + " |")
    print("|---" * (len(servers) + 1) + "|")
    for title, key in workloads:
        cols = []
        for srv in servers:
            if key is None:
                cells = [r for r in rows if r["group"] == "star" and r["server"] == srv and one_core(r)]
                good = [r for r in cells if complete(r) and num(r["p99_ms"], 1e9) < 10]
                b = max(good, key=lambda r: num(r["msgs_s"], 0), default=None)
                if not cells:
                    cols.append("-")
                elif b:
                    cols.append(f"{num(b['msgs_s'], 0) / 1e6:.2f} M/s, p99 {b['p99_ms']}"
                                + (" !" if loadgen_bound(b) or shared(b) else ""))
                else:
                    cols.append("none")
                continue
            r = find(key[0], srv, key[1])
            if not measured(r):
                cols.append("-")
            elif key[0] == "memory":
                cols.append(f"{r['rss_per_conn_kb']}" + (" !" if shared(r) else ""))
            else:
                cols.append(f"{num(r['delivered_pct'], 0):.1f} %, {r['p99_ms']}"
                            + (" !" if loadgen_bound(r) or shared(r) else ""))
        print(f"| {title} | " + " | ".join(cols) + " |")
