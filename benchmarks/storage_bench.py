"""Embedded store benchmarks (skydive_runtime.storage.SQLiteStore).

Figures printed:
- history archiving: revisions/s through a real Graph with the store attached, measured from
  the first graph event until every revision is committed (flush);
- flow inserts/s: store_flows() of distinct flows in batches of 1,000 until committed;
- bytes per flow on disk: database size (after close, WAL checkpointed) / flows stored,
  with one metric row per flow, then again after every flow got a second update;
- `Has('Network', ip)` over the stored flows: query_flows() latency, median and p95.

Usage: python benchmarks/storage_bench.py [--flows 100000] [--revisions 50000] [--dir /tmp/x]
"""

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from skydive_runtime.graph import Graph  # noqa: E402
from skydive_runtime.graph.filters import KeyFilter  # noqa: E402
from skydive_runtime.storage import SQLiteStore  # noqa: E402


def gen_flows(n, seed=1, start=1_760_000_000_000):
    """n distinct flows between 2,000 hosts seen on 20 capture points, TCP/UDP/ICMP mix."""
    rnd = random.Random(seed)
    hosts = [("10.%d.%d.%d" % (i // 65536, (i // 256) % 256, i % 256 or 1),
              "02:00:%02x:%02x:%02x:%02x" % (i >> 24 & 255, i >> 16 & 255, i >> 8 & 255, i & 255))
             for i in range(1, 2001)]
    tids = ["%032x" % rnd.getrandbits(128) for _ in range(20)]
    capture = "5a1b2c3d-0000-4000-8000-00000000c0fe"
    flows = []
    for i in range(n):
        a, b = rnd.sample(hosts, 2)
        kind = rnd.random()
        t0 = start + i * 10
        last = t0 + rnd.randint(0, 60_000)
        abp, bap = rnd.randint(1, 500), rnd.randint(0, 500)
        f = {"UUID": "%x" % rnd.getrandbits(64)}
        if kind < 0.6:
            path, app = "Ethernet/IPv4/TCP", "TCP"
            transport = {"Protocol": "TCP", "A": rnd.randint(32768, 60999), "B": rnd.choice((80, 443, 22, 5432)),
                         "ID": 0}
        elif kind < 0.9:
            path, app = "Ethernet/IPv4/UDP", "UDP"
            transport = {"Protocol": "UDP", "A": rnd.randint(32768, 60999), "B": rnd.choice((53, 123, 4789)),
                         "ID": 0}
        else:
            path, app, transport = "Ethernet/IPv4/ICMPv4", "ICMPv4", None
        f["LayersPath"] = path
        f["Application"] = app
        f["Link"] = {"Protocol": "ETHERNET", "A": a[1], "B": b[1], "ID": 0}
        f["Network"] = {"Protocol": "IPV4", "A": a[0], "B": b[0], "ID": 0}
        if transport:
            f["Transport"] = transport
        else:
            f["ICMP"] = {"Type": "ECHO", "ID": rnd.randint(1, 65535)}
        # like the agent's flow table: the update covers [previous tick, this tick] (flow.update = 60 s)
        tick = (last // 60_000 + 1) * 60_000
        f["LastUpdateMetric"] = {"ABPackets": abp, "ABBytes": abp * 98, "BAPackets": bap, "BABytes": bap * 98,
                                 "Start": tick - 60_000, "Last": tick}
        f["Metric"] = {"ABPackets": abp, "ABBytes": abp * 98, "BAPackets": bap, "BABytes": bap * 98,
                       "Start": t0, "Last": last}
        if kind >= 0.9 or rnd.random() < 0.3:
            f["Metric"]["RTT"] = rnd.randint(20_000, 2_000_000)
        f["Start"] = t0
        f["Last"] = last
        f["TrackingID"] = "%x" % rnd.getrandbits(64)
        f["L3TrackingID"] = "%x" % rnd.getrandbits(64)
        f["ParentUUID"] = ""
        f["NodeTID"] = rnd.choice(tids)
        f["CaptureID"] = capture
        f["RawPacketsCaptured"] = 0
        flows.append(f)
    return flows, [h[0] for h in hosts]


def bench_history(workdir, revisions):
    store = SQLiteStore(os.path.join(workdir, "history.db"))
    try:
        g = Graph(host_id="bench", origin="analyzer.bench")
        store.attach(g)
        n_nodes = max(1, revisions // 10)
        t0 = time.perf_counter()
        c0 = time.process_time()
        nodes = [g.new_node({"Name": "eth%d" % i, "Type": "veth", "MTU": 1500, "State": "UP",
                             "MAC": "02:00:00:00:%02x:%02x" % (i >> 8 & 255, i & 255), "IfIndex": i})
                 for i in range(n_nodes)]
        done = n_nodes
        i = 0
        while done < revisions:
            n = nodes[i % n_nodes]
            g.add_metadata(n, "Counter", i)
            done += 1
            i += 1
        t_events = time.perf_counter() - t0
        store.flush()
        elapsed = time.perf_counter() - t0
        cpu = time.process_time() - c0
        # sanity: the last revision of every node is there
        now = int(time.time() * 1000) + 1
        at = store.graph_at(now)
        assert len(at.nodes) == n_nodes
        lat_at = []
        for _ in range(5):
            t = time.perf_counter()
            store.graph_at(now)
            lat_at.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        nodes_w, _ = store.revisions_between(now - 200, now)
        t_between = (time.perf_counter() - t) * 1000
    finally:
        store.close()
    return (revisions / elapsed, revisions / cpu, t_events / revisions * 1e6, statistics.median(lat_at), t_between,
            len(nodes_w))


def bench_flows(workdir, n):
    flows, ips = gen_flows(n)
    path = os.path.join(workdir, "flows.db")
    store = SQLiteStore(path)
    try:
        t0 = time.perf_counter()
        c0 = time.process_time()
        for i in range(0, n, 1000):
            store.store_flows(flows[i:i + 1000])
        t_call = time.perf_counter() - t0
        store.flush()
        elapsed = time.perf_counter() - t0
        cpu = time.process_time() - c0
    finally:
        store.close()
    size1 = os.path.getsize(path)

    store = SQLiteStore(path)
    try:
        rnd = random.Random(7)
        lat = []
        counts = []
        queried = rnd.sample(ips, 200)
        for ip in queried:
            t = time.perf_counter()
            res = store.query_flows(KeyFilter("Network", ip))
            lat.append((time.perf_counter() - t) * 1000)
            counts.append(len(res))
        expected = sum(1 for f in flows if queried[0] in (f["Network"]["A"], f["Network"]["B"]))
        assert counts[0] == expected, (counts[0], expected)
        # second update of every flow: new state + a second metric row
        for f in flows:
            m = f["LastUpdateMetric"]
            f["LastUpdateMetric"] = dict(m, Start=m["Last"], Last=m["Last"] + 60_000, ABPackets=3, ABBytes=300)
            f["Last"] = f["Last"] + 30_000
            f["Metric"] = dict(f["Metric"], Last=f["Last"])
        t0 = time.perf_counter()
        for i in range(0, n, 1000):
            store.store_flows(flows[i:i + 1000])
        store.flush()
        update_elapsed = time.perf_counter() - t0
    finally:
        store.close()
    size2 = os.path.getsize(path)
    lat.sort()
    return {
        "insert_per_s": n / elapsed, "insert_per_cpu_s": n / cpu, "call_us": t_call / n * 1e6,
        "update_per_s": n / update_elapsed,
        "bytes_per_flow": size1 / n, "bytes_per_flow_2_updates": size2 / n,
        "q_median_ms": statistics.median(lat), "q_p95_ms": lat[int(len(lat) * 0.95) - 1],
        "q_mean_results": statistics.mean(counts),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--flows", type=int, default=100_000)
    ap.add_argument("--revisions", type=int, default=50_000)
    ap.add_argument("--dir", default=None, help="work directory (default: a temporary one, removed)")
    args = ap.parse_args()
    workdir = args.dir or tempfile.mkdtemp(prefix="skydive-storage-bench-")
    os.makedirs(workdir, exist_ok=True)
    try:
        print("machine: %d CPUs, load average %.1f at start" % (os.cpu_count(), os.getloadavg()[0]))
        rate, rate_cpu, ev_us, at_ms, between_ms, n_between = bench_history(workdir, args.revisions)
        print("history archiving: %d revisions/s wall, %d per CPU-second (%d revisions; %.1f us per event on "
              "the graph thread, graph code included)" % (rate, rate_cpu, args.revisions, ev_us))
        print("graph_at(now) over that history (%d nodes): median %.1f ms; revisions_between(last 200 ms): "
              "%.1f ms for %d revisions" % (args.revisions // 10, at_ms, between_ms, n_between))
        r = bench_flows(workdir, args.flows)
        print("flow inserts: %d flows/s wall, %d per CPU-second (%d distinct flows, batches of 1000; "
              "%.1f us per flow in the caller)" % (r["insert_per_s"], r["insert_per_cpu_s"], args.flows, r["call_us"]))
        print("flow updates: %d flows/s" % r["update_per_s"])
        print("bytes per flow on disk: %.1f (one update each), %.1f (two updates each: 2 metric rows)"
              % (r["bytes_per_flow"], r["bytes_per_flow_2_updates"]))
        print("Has('Network', ip) over %d flows: median %.2f ms, p95 %.2f ms (%.0f flows returned on average)"
              % (args.flows, r["q_median_ms"], r["q_p95_ms"], r["q_mean_results"]))
        print("load average at end: %.1f" % os.getloadavg()[0])
    finally:
        if not args.dir:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
