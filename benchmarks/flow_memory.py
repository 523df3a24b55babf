"""Bytes per active flow in the flow table at 100k flows (tracemalloc + RSS).

    .venv/bin/python benchmarks/flow_memory.py [--flows 100000] [--packets-per-flow 6]

Each flow is a UDP or TCP conversation with packets in both directions
(distinct MACs, IPs and ports), so its counters hold real values.  Measured
after inserting, after one update tick (identifiers cached, snapshots
taken) and after a second round of packets.
"""

import argparse
import gc
import os
import sys
import tracemalloc

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from skydive_runtime.flow.table import FlowTable  # noqa: E402
from tests.flow.frames import udp4_frame, tcp4_frame  # noqa: E402

TS = 1_700_000_000_000_000_000


def rss_kb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def frames(i):
    m1 = bytes([2, 0, 0, (i >> 16) & 255, (i >> 8) & 255, i & 255])
    m2 = bytes([2, 1, 0, (i >> 16) & 255, (i >> 8) & 255, i & 255])
    a = bytes([10, (i >> 16) & 255, (i >> 8) & 255, i & 255])
    b = bytes([172, 16, (i >> 8) & 255, i & 255])
    if i % 2:
        return (udp4_frame(m1, m2, a, b, 20000 + i % 40000, 53000, b"x" * 100),
                udp4_frame(m2, m1, b, a, 53000, 20000 + i % 40000, b"y" * 300))
    return (tcp4_frame(m1, m2, a, b, 20000 + i % 40000, 443, 0x10, payload=b"x" * 200),
            tcp4_frame(m2, m1, b, a, 443, 20000 + i % 40000, 0x10, payload=b"y" * 900))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--flows", type=int, default=100000)
    ap.add_argument("--packets-per-flow", type=int, default=6)
    ap.add_argument("--rss-only", action="store_true", help="no tracemalloc: RSS growth only")
    args = ap.parse_args()
    if args.rss_only:
        return rss_only(args)
    n = args.flows
    gc.collect()
    rss0 = rss_kb()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    t = FlowTable(max_entries=max(n, 100000) * 2)
    half = args.packets_per_flow // 2
    for i in range(n):
        fwd, rev = frames(i)
        for j in range(half):
            t.process(fwd, TS + j * 1_000_000)
            t.process(rev, TS + j * 1_000_000 + 1000)
    del fwd, rev
    gc.collect()
    m1 = tracemalloc.get_traced_memory()[0] - base
    out = t.tick(TS // 1_000_000 + 1000)
    assert len(out) == n, (len(out), len(t), t.flows_dropped)
    del out
    gc.collect()
    m2 = tracemalloc.get_traced_memory()[0] - base
    for i in range(n):
        fwd, rev = frames(i)
        t.process(fwd, TS + 2_000_000_000)
        t.process(rev, TS + 2_000_001_000)
    del fwd, rev
    gc.collect()
    m3 = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    rss1 = rss_kb()
    print("flows: %d (%d packets each, then 2 more)" % (len(t), 2 * half))
    print("tracemalloc bytes per flow: after insert %.0f, after update tick %.0f, after more packets %.0f"
          % (m1 / n, m2 / n, m3 / n))
    del rss1, rss0
    import subprocess
    out = subprocess.run([sys.executable, __file__, "--flows", str(n), "--packets-per-flow",
                          str(args.packets_per_flow), "--rss-only"], capture_output=True, text=True)
    print(out.stdout.strip() or out.stderr.strip())


def rss_only(args):
    n = args.flows
    gc.collect()
    rss0 = rss_kb()
    t = FlowTable(max_entries=max(n, 100000) * 2)
    half = args.packets_per_flow // 2
    for i in range(n):
        fwd, rev = frames(i)
        for j in range(half):
            t.process(fwd, TS + j * 1_000_000)
            t.process(rev, TS + j * 1_000_000 + 1000)
    t.tick(TS // 1_000_000 + 1000)
    gc.collect()
    print("RSS growth per flow (no tracemalloc, after a tick): %.0f bytes" % ((rss_kb() - rss0) * 1024.0 / n))


if __name__ == "__main__":
    main()
