#!/usr/bin/env python3
"""Summarizes run.sh's cells: every cell, then per transport the highest
rate that held p99 < 10 ms with every client served, the highest rate
fully delivered, and p99 per rate side by side (medians over repeats).
Cells during which other processes took more than NOISY_OTHER_PCT of the
machine's CPU on average are listed but left out of those conclusions.

    python3 summary.py CELLS_DIR
"""
import json
import os
import statistics
import sys
from collections import defaultdict

P99_LIMIT_MS = 10.0
MIN_DELIVERY_PCT = 99.0
NOISY_OTHER_PCT = 10.0


def load(cells):
    rows = []
    for name in sorted(os.listdir(cells)):
        path = os.path.join(cells, name, "report.json")
        transport, rate, rep = name.split("-")
        rate = int(rate[1:])
        if not os.path.exists(path):
            rows.append(dict(name=name, transport=transport, rate=rate, rep=rep, ok=False,
                             delivered=False, noisy=False, missing=True))
            continue
        r = json.load(open(path))
        cl, lat, d = r["clients"], r["latency"], r.get("delivery") or {}
        cpu = (r.get("server") or {}).get("cpu_mean") or {}
        seq = r["seq"]["not_evicted"]
        row = dict(
            name=name, transport=transport, rate=rate, rep=rep, missing=False,
            connected=cl["connected"], evicted=cl["evicted_fast"] + cl["evicted_slow"],
            msgs=r["throughput"]["msgs_per_sec"], p50=lat["p50_us"] / 1000,
            p99=lat["p99_us"] / 1000, p999=lat["p99_9_us"] / 1000,
            min_pct=d.get("min_pct") or 0.0, gaps=seq["gaps"],
            cpu_server=cpu.get("server"), cpu_loadgen=cpu.get("loadgen"), cpu_other=cpu.get("other"),
        )
        row["delivered"] = (row["connected"] == 1000 and row["evicted"] == 0 and row["gaps"] == 0
                            and row["min_pct"] >= MIN_DELIVERY_PCT)
        row["ok"] = row["delivered"] and row["p99"] < P99_LIMIT_MS
        row["noisy"] = (row["cpu_other"] or 0.0) > NOISY_OTHER_PCT
        rows.append(row)
    return rows


def pct(v):
    return "" if v is None else f"{v:.0f}%"


def main():
    rows = load(sys.argv[1])
    print("| cell | delivered/s | p50 ms | p99 ms | p99.9 ms | worst client % | evicted | gaps "
          "| CPU server / loadgen / other | p99 < 10 ms | noisy |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in sorted(rows, key=lambda r: (r["rate"], r["rep"], r["transport"])):
        if r["missing"]:
            print(f"| {r['name']} | no report | | | | | | | | no | |")
            continue
        print(f"| {r['name']} | {r['msgs']:,.0f} | {r['p50']:.2f} | {r['p99']:.2f} | {r['p999']:.2f} "
              f"| {r['min_pct']:.2f} | {r['evicted']} | {r['gaps']} "
              f"| {pct(r['cpu_server'])} / {pct(r['cpu_loadgen'])} / {pct(r['cpu_other'])} "
              f"| {'yes' if r['ok'] else 'no'} | {'noisy' if r['noisy'] else ''} |")
    by = defaultdict(lambda: defaultdict(list))
    for r in rows:
        if not r["missing"] and not r["noisy"]:
            by[r["transport"]][r["rate"]].append(r)
    quiet = sum(len(c) for t in by.values() for c in t.values())
    print()
    print(f"Conclusions from the {quiet} quiet cells (other processes <= {NOISY_OTHER_PCT:g}% CPU; "
          "median over a rate's repeats; a rate holds if most of its cells do):")
    print()

    def highest(t, key):
        held = [(rate, statistics.median(c["msgs"] for c in cells),
                 statistics.median(c["p99"] for c in cells))
                for rate, cells in sorted(by[t].items()) if sum(c[key] for c in cells) * 2 > len(cells)]
        return max(held) if held else None

    for key, what in (("ok", f"p99 < {P99_LIMIT_MS:g} ms, every client fully served"),
                      ("delivered", f"every client fully served (>= {MIN_DELIVERY_PCT:g}%, none evicted, no gap)")):
        print(f"Highest rate with {what}:")
        best = {}
        for t in ("ws", "wss"):
            h = highest(t, key)
            if h:
                best[t] = h[1]
                print(f"- {t}: {h[0]:,} ticks/s, {h[1]:,.0f} delivered/s (p99 {h[2]:.2f} ms)")
            else:
                print(f"- {t}: none")
        if len(best) == 2:
            print(f"- wss / ws: {best['wss'] / best['ws']:.2f}")
        print()
    print("p99 per rate, ms (median of the quiet cells; n = cells):")
    print()
    print("| ticks/s | ws p99 | wss p99 | wss / ws |")
    print("|---|---|---|---|")
    for rate in sorted(set(by["ws"]) | set(by["wss"])):
        med = {t: (statistics.median(c["p99"] for c in by[t][rate]), len(by[t][rate]))
               for t in ("ws", "wss") if by[t].get(rate)}
        cell = lambda t: f"{med[t][0]:.2f} (n={med[t][1]})" if t in med else "-"
        ratio = f"{med['wss'][0] / med['ws'][0]:.2f}" if len(med) == 2 else "-"
        print(f"| {rate:,} | {cell('ws')} | {cell('wss')} | {ratio} |")

if __name__ == "__main__":
    main()
