"""OVN probe benchmark (needs OVN: ovn-central): prints figures, changes nothing outside what it creates.

    .venv/bin/python benchmarks/ovn_probe.py [--ports 1000] [--switches 10] [--updates 20]

A private OVN Northbound DB (tests/fixtures/ovn.py) filled with `--ports` logical switch ports over
`--switches` switches (plus one router with a port per switch), then:
1. in-process: `OvnProbe.start()` until every row is a node and linked (wall and CPU time);
2. a real `skydive analyzer` with `analyzer.topology.probes: [ovn]`: from process start until
   `G.V().Has('Type','LogicalSwitchPort').Count()` answers every port (start-up included);
3. live updates: `ovn-nbctl lsp-add` -> the node answered by the analyzer (p50/max over --updates).
"""

import argparse
import asyncio
import os
import resource
import shutil
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from skydive_runtime.analyzer.ovn_probe import OvnProbe  # noqa: E402
from skydive_runtime.graph import Graph  # noqa: E402
from tests.fixtures.ovn import OVNCentral  # noqa: E402
from tests.fixtures.processes import SkydiveProcess, analyzer_config  # noqa: E402


def fill(central, ports, switches):
    per = ports // switches
    args = ["lr-add", "bench-lr"]
    for s in range(switches):
        args += ["--", "ls-add", "bench-ls%d" % s,
                 "--", "lrp-add", "bench-lr", "bench-lrp%d" % s, "0a:00:00:%02x:00:01" % s, "10.%d.0.1/16" % (100 + s)]
        for i in range(per):
            name = "bench-lsp%d-%d" % (s, i)
            args += ["--", "lsp-add", "bench-ls%d" % s, name,
                     "--", "lsp-set-addresses", name, "0a:%02x:00:00:%02x:%02x 10.%d.%d.%d" % (
                         s, i // 256, i % 256, 100 + s, i // 250 + 1, i % 250 + 2)]
    central.nbctl(*args)
    return switches * per


async def in_process(central, expected_nodes):
    g = Graph(host_id="bench", origin="analyzer.bench")
    t0, c0 = time.monotonic(), time.process_time()
    probe = OvnProbe(g, central.nb_remote)
    probe.start()
    while len(probe.nodes) < expected_nodes:
        await asyncio.sleep(0.005)
    wall, cpu = time.monotonic() - t0, time.process_time() - c0
    edges = len(g.edges)
    probe.stop()
    return wall, cpu, edges


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ports", type=int, default=1000)
    ap.add_argument("--switches", type=int, default=10)
    ap.add_argument("--updates", type=int, default=20)
    a = ap.parse_args()
    central = OVNCentral().start()
    proc = None
    work = tempfile.mkdtemp(prefix="ovnbench")
    try:
        t = time.monotonic()
        n = fill(central, a.ports, a.switches)
        took = time.monotonic() - t
        print("NB filled: %d ports, %d switches, 1 router (%d ports) in %.2f s" % (n, a.switches, a.switches, took))
        expected = n + 2 * a.switches + 1
        wall, cpu, edges = asyncio.run(in_process(central, expected))
        print("in-process OvnProbe start -> %d nodes, %d edges: %.3f s wall, %.3f s CPU" % (expected, edges, wall, cpu))
        cfg = analyzer_config(work)
        cfg["analyzer"]["topology"]["probes"] = ["ovn"]
        cfg["analyzer"]["topology"]["ovn"] = {"address": central.nb_remote}
        cfg["analyzer"]["topology"]["backend"] = "memory"
        proc = SkydiveProcess("analyzer", work, cfg)
        t = time.monotonic()
        proc.start()
        up = time.monotonic() - t
        while proc.query("G.V().Has('Type','LogicalSwitchPort').Count()") != n:
            time.sleep(0.02)
        print("skydive analyzer process start -> %d ports answered: %.2f s (listening after %.2f s)"
              % (n, time.monotonic() - t, up))
        lat, after = [], []
        for i in range(a.updates):
            name = "bench-new%d" % i
            t = time.monotonic()
            central.nbctl("lsp-add", "bench-ls0", name)
            t1 = time.monotonic()
            while proc.query("G.V().Has('Name','%s').Count()" % name) != 1:
                time.sleep(0.002)
            lat.append(time.monotonic() - t)
            after.append(time.monotonic() - t1)
        lat.sort()
        after.sort()
        print("lsp-add -> node on the analyzer: p50 %.1f ms, max %.1f ms (after ovn-nbctl returned: p50 %.1f ms,"
              " max %.1f ms) over %d" % (1000 * lat[len(lat) // 2], 1000 * lat[-1], 1000 * after[len(after) // 2],
                                         1000 * after[-1], len(lat)))
        print("load average %.2f %.2f %.2f; benchmark process max RSS %d MiB"
              % (os.getloadavg() + (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,)))
    finally:
        if proc is not None:
            proc.stop()
        central.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
