"""ClickHouse flow store benchmark (storage.<name>.driver: clickhouse), beside the embedded store.

Starts a private ClickHouse server (Debian clickhouse-server, tests/fixtures/servers.py) on
loopback, then through skydive_runtime.storage.ClickHouseStore:
- inserts N distinct flows (benchmarks/storage_bench.py's generator, 50,000 at a time, one
  metric row each) and waits until ClickHouse acknowledged them: flows/s;
- bytes per flow on disk: active parts of the flows + flow_metrics tables / N, as merged by
  ClickHouse in the background and again after OPTIMIZE ... FINAL;
- `Has('Network', ip)` through query_flows() over the N flows for 100 random addresses:
  median and p95 (ms), checked against a count made in Python.
With --sqlite the same flows go through the embedded SQLiteStore as well.

Usage: python benchmarks/clickhouse_bench.py [--flows 1000000] [--sqlite] [--dir /tmp/x]
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
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

from skydive_runtime.graph.filters import KeyFilter  # noqa: E402
from skydive_runtime.storage import SQLiteStore, open_store  # noqa: E402
from storage_bench import gen_flows  # noqa: E402
from tests.fixtures.servers import clickhouse_server  # noqa: E402

CHUNK = 50_000


def chunks(n):
    """The flows in chunks (memory stays bounded); every chunk uses the same 2,000 hosts."""
    for k in range(0, n, CHUNK):
        flows, ips = gen_flows(min(CHUNK, n - k), seed=100 + k, start=1_760_000_000_000 + k * 10)
        yield flows, ips


def load(store, n, probe_ips, flush_each_chunk=False):
    """Insert n flows; flush_each_chunk waits for each 50,000 to be committed (the SQLite writer
    cannot hold a backlog of a million flows within its 120 s flush timeout)."""
    expected = dict.fromkeys(probe_ips, 0)
    t0 = time.perf_counter()
    c0 = time.process_time()
    for flows, _ips in chunks(n):
        for f in flows:
            a, b = f["Network"]["A"], f["Network"]["B"]
            if a in expected:
                expected[a] += 1
            if b in expected and b != a:
                expected[b] += 1
        for i in range(0, len(flows), 10_000):
            store.store_flows(flows[i:i + 10_000])
        if flush_each_chunk:
            store.flush()
    store.flush()
    return n / (time.perf_counter() - t0), n / (time.process_time() - c0), expected


def query(store, expected):
    lat = []
    for ip, count in expected.items():
        t = time.perf_counter()
        res = store.query_flows(KeyFilter("Network", ip))
        lat.append((time.perf_counter() - t) * 1000)
        assert len(res) == count, (ip, len(res), count)
    lat.sort()
    return statistics.median(lat), lat[int(len(lat) * 0.95) - 1], statistics.mean(expected.values())


def disk_bytes(ch, database):
    text = ch.query("SELECT sum(bytes_on_disk) FROM system.parts WHERE active AND database = '%s' "
                    "AND table IN ('flows', 'flow_metrics')" % database)
    return int(text.strip() or 0)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--flows", type=int, default=1_000_000)
    ap.add_argument("--sqlite", action="store_true", help="also run the embedded SQLite store on the same flows")
    ap.add_argument("--sqlite-only", action="store_true", help="only the embedded SQLite store")
    ap.add_argument("--dir", default=None, help="work directory (default: a temporary one, removed)")
    args = ap.parse_args()
    workdir = args.dir or tempfile.mkdtemp(prefix="skydive-clickhouse-bench-")
    os.makedirs(workdir, exist_ok=True)
    _flows, ips = gen_flows(1)
    probe = random.Random(7).sample(ips, 100)
    try:
        print("machine: %d CPUs, load average %.1f at start (shared machine)" % (os.cpu_count(), os.getloadavg()[0]))
        if not args.sqlite_only:
            bench_clickhouse(workdir, args.flows, probe)
        if args.sqlite or args.sqlite_only:
            bench_sqlite(workdir, args.flows, probe)
        print("load average at end %.1f" % os.getloadavg()[0])
    finally:
        if not args.dir:
            shutil.rmtree(workdir, ignore_errors=True)


def bench_clickhouse(workdir, n, probe):
    with clickhouse_server(workdir) as ch:
        store = open_store(ch.settings("bench"), name="bench")
        try:
            rate, rate_cpu, expected = load(store, n, probe)
            print("clickhouse %s: %d flows inserted: %d flows/s wall, %d per CPU-second of this process"
                  % (ch.query("SELECT version()").strip(), n, rate, rate_cpu))
            size = disk_bytes(ch, "bench")
            med, p95, mean = query(store, expected)
            print("Has('Network', ip) over %d flows: median %.1f ms, p95 %.1f ms (%.0f flows returned on average)"
                  % (n, med, p95, mean))
            ch.query("OPTIMIZE TABLE bench.flows FINAL")
            ch.query("OPTIMIZE TABLE bench.flow_metrics FINAL")
            print("bytes per flow on disk (flow + one metric row): %.1f as merged in the background, %.1f after "
                  "OPTIMIZE FINAL" % (size / n, disk_bytes(ch, "bench") / n))
        finally:
            store.close()


def bench_sqlite(workdir, n, probe):
    path = os.path.join(workdir, "flows.db")
    store = SQLiteStore(path)
    try:
        rate, rate_cpu, expected = load(store, n, probe, flush_each_chunk=True)
    finally:
        store.close()
    print("sqlite: %d flows inserted: %d flows/s wall, %d per CPU-second; %.1f bytes per flow on disk"
          % (n, rate, rate_cpu, os.path.getsize(path) / n))
    store = SQLiteStore(path)
    try:
        med, p95, mean = query(store, expected)
    finally:
        store.close()
    print("sqlite Has('Network', ip) over %d flows: median %.1f ms, p95 %.1f ms (%.0f flows returned on average)"
          % (n, med, p95, mean))


if __name__ == "__main__":
    main()
