#!/usr/bin/env python3
"""Gremlin flow queries on the analyzer's flow sources (analyzer/flow_steps.py):

- history: `G.At(t, d).Flows().Has('Network', '<ip>')` over N flows stored in the embedded SQLite
  store (`store_flows`, then queried through the real Gremlin engine and flow steps);
- live: `G.Flows()...` over N flows in the analyzer's in-memory flow cache (analyzer/flows.py).

Flows are realistic Flow JSON dicts (L2 + IPv4 + UDP/TCP/ICMP, metrics) spread over 5,000 hosts.

    .venv/bin/python benchmarks/flow_query_bench.py               # 100,000 flows, 50 runs
    .venv/bin/python benchmarks/flow_query_bench.py --flows 20000 --runs 20
"""

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from skydive_runtime.analyzer import flow_steps  # noqa: E402
from skydive_runtime.analyzer.flows import FlowCache  # noqa: E402
from skydive_runtime.graph import Graph  # noqa: E402
from skydive_runtime.gremlin import QueryContext, execute  # noqa: E402
from skydive_runtime.storage import open_store  # noqa: E402


def make_flows(n, t0, seed=7):
    rng = random.Random(seed)
    hosts = ["10.%d.%d.%d" % (rng.randrange(1, 250), rng.randrange(256), rng.randrange(1, 255)) for _ in range(5000)]
    macs = ["02:%02x:%02x:%02x:%02x:%02x" % tuple(rng.randrange(256) for _ in range(5)) for _ in range(5000)]
    tids = ["%08x-0000-5000-8000-%012x" % (i, i) for i in range(50)]
    out = []
    for i in range(n):
        a, b = rng.randrange(5000), rng.randrange(5000)
        start = t0 + rng.randrange(0, 600000)
        last = start + rng.randrange(0, 60000)
        abp, bap = rng.randrange(1, 1000), rng.randrange(0, 1000)
        kind = rng.random()
        f = {"UUID": "%016x" % rng.getrandbits(64), "LayersPath": "Ethernet/IPv4/UDP", "Application": "UDP",
             "Link": {"Protocol": "ETHERNET", "A": macs[a], "B": macs[b], "ID": 0},
             "Network": {"Protocol": "IPV4", "A": hosts[a], "B": hosts[b], "ID": 0}}
        if kind < 0.6:
            f["Transport"] = {"Protocol": "UDP", "A": rng.randrange(1024, 65535), "B": 53, "ID": 0}
            f["Application"] = "DNS"
            f["LayersPath"] = "Ethernet/IPv4/UDP/DNS"
        elif kind < 0.9:
            f["Transport"] = {"Protocol": "TCP", "A": rng.randrange(1024, 65535), "B": 443, "ID": 0}
            f["LayersPath"], f["Application"] = "Ethernet/IPv4/TCP", "TCP"
        else:
            f["ICMP"] = {"Type": "ECHO", "ID": rng.randrange(1, 65535)}
            f["LayersPath"], f["Application"] = "Ethernet/IPv4/ICMPv4", "ICMPv4"
        m = {"ABPackets": abp, "ABBytes": abp * 100, "BAPackets": bap, "BABytes": bap * 100, "Start": start,
             "Last": last}
        f["LastUpdateMetric"] = dict(m)
        f["Metric"] = m
        f.update({"Start": start, "Last": last, "TrackingID": "%016x" % rng.getrandbits(64),
                  "L3TrackingID": "%016x" % rng.getrandbits(64), "ParentUUID": "",
                  "NodeTID": tids[i % len(tids)], "CaptureID": "c0ffee00-0000-4000-8000-000000000001",
                  "RawPacketsCaptured": 0})
        out.append(f)
    return out, hosts


def timed(fn, runs):
    lat = []
    res = None
    for _ in range(runs):
        t = time.perf_counter()
        res = fn()
        lat.append((time.perf_counter() - t) * 1000)
    lat.sort()
    return {"p50": statistics.median(lat), "p95": lat[max(0, int(len(lat) * 0.95) - 1)], "max": lat[-1]}, res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--flows", type=int, default=100000)
    ap.add_argument("--runs", type=int, default=50)
    args = ap.parse_args()
    flow_steps.register()
    t0 = int(time.time() * 1000) - 3600000
    flows, hosts = make_flows(args.flows, t0)
    rng = random.Random(3)
    d = tempfile.mkdtemp(prefix="flowqbench")
    try:
        store = open_store({"driver": "sqlite", "path": os.path.join(d, "s.db"), "retention": "0"})
        t = time.perf_counter()
        for i in range(0, len(flows), 5000):
            store.store_flows(flows[i:i + 5000])
        store.flush()
        load_s = time.perf_counter() - t
        g = Graph(host_id="bench")
        cache = FlowCache()
        cache.update("agent1", flows)
        ctx = QueryContext(g, history=store, flow_store=store, flow_cache=cache)
        window = "G.At(%d, 3600)" % (t0 + 3600000)
        print("flows: %d (stored in %.1fs, %.0f flows/s)" % (len(flows), load_s, len(flows) / load_s))
        rows = []

        def q(query):
            return lambda: execute(query.replace("<ip>", rng.choice(hosts)), ctx).to_json_value()
        for label, query in (
                ("stored  Flows().Has('Network', ip)", window + ".Flows().Has('Network', '<ip>')"),
                ("stored  Flows().Has('Network', ip).Count()", window + ".Flows().Has('Network', '<ip>').Count()"),
                ("stored  Flows().Has('Network.A', ip, 'Application', 'DNS')",
                 window + ".Flows().Has('Network.A', '<ip>', 'Application', 'DNS')"),
                ("live    Flows().Count()", "G.Flows().Count()"),
                ("live    Flows().Has('Network', ip)", "G.Flows().Has('Network', '<ip>')"),
                ("live    Flows().Has('Metric.ABPackets', GT(990)).Count()", "G.Flows().Has('Metric.ABPackets', GT(990)).Count()"),
                ("live    Flows().Sort().Limit(10)", "G.Flows().Sort().Limit(10)"),
                ("live    Flows().Dedup().Count()", "G.Flows().Dedup().Count()")):
            runs = args.runs if "stored" in label or "Has('Network'" in label else max(5, args.runs // 5)
            stats, res = timed(q(query), runs)
            n = res if isinstance(res, int) else len(res) if isinstance(res, list) else res
            rows.append((label, stats, n))
            print("%-62s p50 %8.2f ms  p95 %8.2f ms  max %8.2f ms  (result %s, %d runs)"
                  % (label, stats["p50"], stats["p95"], stats["max"], n, runs))
        ok = rows[0][1]["p95"] < 100
        print("goal: stored Has('Network', ip) p95 < 100 ms over %d flows: %s" % (len(flows), "OK" if ok else "MISSED"))
        store.close()
    finally:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
