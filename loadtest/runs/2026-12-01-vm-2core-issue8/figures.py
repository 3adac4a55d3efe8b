#!/usr/bin/env python3
"""Prints the key figures of every cell in cells/ (the tables of summary.md).

    python3 loadtest/runs/2026-12-01-vm-2core-issue8/figures.py [CELL...]
    CELLS=cells-325d9fe python3 loadtest/runs/2026-12-01-vm-2core-issue8/figures.py
"""
import json
import os
import sys
from pathlib import Path

here = Path(__file__).resolve().parent
cells = here / os.environ.get("CELLS", "cells")
names = sys.argv[1:] or sorted(p.name for p in cells.iterdir() if (p / "report.json").exists())


def mib(b):
    return f"{b / 1048576:.1f}"


def ms(us):
    return f"{us / 1000:.1f}"


for name in names:
    path = cells / name / "report.json"
    if not path.exists():
        print(f"## {name}: no report")
        continue
    r = json.loads(path.read_text())
    c, d, lat = r["clients"], r["delivery"], r["latency"]
    print(f"## {name}")
    print(
        f"- clients requested {c['requested']}, connected {c['connected']}, failed {c['failed']}, "
        f"churned {c['churned']}, evicted fast/slow {c['evicted_fast']}/{c['evicted_slow']}"
    )
    print(f"- window {r['window_secs']:.1f} s, {r['throughput']['msgs_per_sec']:,.0f} msgs/s")
    if lat["count"]:
        print(
            f"- healthy latency ms: p50 {ms(lat['p50_us'])} p90 {ms(lat['p90_us'])} p99 {ms(lat['p99_us'])} "
            f"p99.9 {ms(lat['p99_9_us'])} max {ms(lat['max_us'])} ({lat['count']:,} samples)"
        )
    if d.get("expected_per_client"):
        fmt = lambda v: "-" if v is None else f"{v:.2f}%"
        print(
            f"- healthy delivery: {d['clients']} whole-window clients, min {fmt(d['min_pct'])} "
            f"mean {fmt(d['mean_pct'])} max {fmt(d['max_pct'])} of {d['expected_per_client']:,.0f}; "
            f"healthy evicted/cut {d['healthy_evicted']} of {d['healthy_connected']}"
        )
    q = r["seq"]["not_evicted"]
    print(
        f"- sequence: gaps {q['gaps']} duplicates {q['duplicates']} reorders {q['reorders']}, "
        f"clients with anomalies {r['seq']['clients_with_anomalies']}"
    )
    print(f"- ends fast {r['ends_fast']}; ends slow {r['ends_slow']}")
    st = r.get("stalled")
    if st:
        e = st["eviction_ms"]
        print(
            f"- stalled: connected {st['connected']}, stalled {st['stalled']}, gone {st['gone']} "
            f"(within 10 s {st['gone_within_horizon']}), not gone {st['not_gone']}, censored {st['censored']}; "
            f"stall->gone ms p50 {e['median']} p99 {e['p99']} max {e['max']}; "
            f"client saw the hang-up {st['hangup_seen']}"
        )
    sm = r.get("storm")
    if sm:
        ct, snap = sm["connect_time"], sm["snapshots_time"]
        print(
            f"- storm: newcomers {sm['newcomers']}, connected {sm['connected']}, failed {sm['failed']}; "
            f"connect ms p50 {ms(ct['p50_us'])} p99 {ms(ct['p99_us'])} max {ms(ct['max_us'])}; "
            f"all {sm['expected_snapshots']} snapshots: {sm['with_snapshots']} ({sm['snapshots_within_2s']} within 2 s), "
            f"ms p50 {ms(snap['p50_us'])} p99 {ms(snap['p99_us'])} max {ms(snap['max_us'])}; span {sm['span_ms']:.0f} ms"
        )
    s = r.get("server")
    if s:
        cpu = s.get("cpu_mean") or {}
        kib = lambda k: "-" if k is None else f"{k / 1024:.1f}"
        print(
            f"- server sockets: peak queued (r+w+bl) {mib(s['peak_queued_bytes'])} MiB "
            f"[established {mib(s['peak_queued_established_bytes'])}, closing {mib(s['peak_queued_closing_bytes'])}], "
            f"largest socket {s['peak_socket_queued_bytes'] / 1024:.0f} KiB, peak established {s['peak_established']}, "
            f"peak closing {s['peak_closing']} {s['peak_closing_by_state']}"
        )
        slope = s["rss_slope_kib_per_min"]
        print(
            f"- server RSS MiB: before {kib(s['rss_before_kib'])}, peak {kib(s['rss_peak_kib'])} "
            f"(VmHWM {kib(s['rss_hwm_kib'])}), after {kib(s['rss_after_kib'])}; window "
            f"{kib(s['rss_window_first_kib'])} -> {kib(s['rss_window_last_kib'])}, slope "
            f"{'-' if slope is None else f'{slope:.1f}'} KiB/min; fds before {s['fds_before']} peak {s['fds_peak']} "
            f"after {s['fds_after']}; settled {s['settled']} in {s['settle_secs']:.1f} s"
        )
        if cpu:
            print(
                f"- CPU % of a core: server {cpu['server']:.0f}, load generator {cpu['loadgen']:.0f}, "
                f"other processes {cpu['other']:.0f} (max {s['other_cpu_pct_max']:.0f}), irq {cpu['irq']:.0f}, "
                f"steal {cpu['steal']:.0f}; ss dump mean {s['ss_ms_mean']:.0f} ms"
            )
    net = cells / name / "netstat-delta.txt"
    if net.exists():
        nz = [l.strip() for l in net.read_text().splitlines() if not l.strip().endswith(" 0")]
        if nz:
            print(f"- kernel counters (machine-wide): {', '.join(nz)}")
    print()
