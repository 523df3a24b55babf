#!/usr/bin/env python3
"""Graph + Gremlin benchmark: indexed lookups, 2-3 hop traversals, ShortestPathTo, memory/node.

Builds a Skydive-like topology with the real graph layer: hosts owning netns (each with lo and
the inner end of a veth pair), host-side veth ends enslaved to Linux bridges or attached to OVS
ports (ovsbridge -ownership/layer2-> ovsport -layer2-> interface), OVS internal interfaces, and
fabric-like layer2 links between hosts' physical NICs to reach ~2 edges per node.

    .venv/bin/python benchmarks/graph_query_bench.py            # 10,000 and 50,000 nodes
    .venv/bin/python benchmarks/graph_query_bench.py --sizes 10000 --runs 300
"""

import argparse
import gc
import os
import random
import statistics
import sys
import time
import tracemalloc

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from skydive_runtime.graph import Graph  # noqa: E402
from skydive_runtime.gremlin import QueryContext, execute, parse  # noqa: E402



def own():
    """A fresh metadata map per edge, as probes create them."""
    return {"RelationType": "ownership"}


def _mac(rng):
    return ":".join("%02x" % rng.randrange(256) for _ in range(6))


def build(target_nodes, seed=1):
    """A graph of about target_nodes nodes and 2 x target_nodes edges."""
    rng = random.Random(seed)
    g = Graph("analyzer1", "analyzer.analyzer1")
    hosts_n = max(2, target_nodes // 1000)
    per_host = target_nodes // hosts_n
    names = {"veth": [], "netns": [], "host": [], "ovsport": [], "device": []}
    phys = []
    ip = 0
    for h in range(hosts_n):
        hn = "host%d" % h
        host = g.new_node({"Name": hn, "Type": "host", "Hostname": hn}, host=hn)
        names["host"].append(hn)
        eth = g.new_node({"Name": "eth0", "Type": "device", "MAC": _mac(rng), "MTU": 1500, "State": "UP",
                          "IPV4": ["192.168.%d.%d/16" % (h // 250, h % 250 + 1)]}, host=hn)
        g.link(host, eth, own())
        phys.append(eth)
        brs = []
        for b in range(2):
            br = g.new_node({"Name": "br%d" % b, "Type": "bridge", "Driver": "bridge", "MAC": _mac(rng)}, host=hn)
            g.link(host, br, own())
            brs.append(br)
        ovsbr = g.new_node({"Name": "br-int", "Type": "ovsbridge", "UUID": "%032x" % rng.getrandbits(128)}, host=hn)
        g.link(host, ovsbr, own())
        count = 5
        while count < per_host - 4:
            i = count
            ns = g.new_node({"Name": "ns-%d-%d" % (h, i), "Type": "netns", "Path": "/var/run/netns/ns-%d-%d" % (h, i)},
                            host=hn)
            g.link(host, ns, own())
            lo = g.new_node({"Name": "lo", "Type": "device", "EncapType": "loopback", "MTU": 65536}, host=hn)
            g.link(ns, lo, own())
            ip += 1
            vin = g.new_node({"Name": "eth0-%d-%d" % (h, i), "Type": "veth", "MAC": _mac(rng), "MTU": 1500,
                              "IPV4": ["10.%d.%d.%d/8" % (ip >> 16 & 255, ip >> 8 & 255, ip & 255)], "State": "UP",
                              "IfIndex": 2}, host=hn)
            g.link(ns, vin, own())
            vout = g.new_node({"Name": "veth-%d-%d" % (h, i), "Type": "veth", "MAC": _mac(rng), "MTU": 1500,
                               "State": "UP", "IfIndex": 100 + i,
                               "LastUpdateMetric": {"RxBytes": 1000 + i, "TxBytes": 2000 + i, "RxPackets": 10,
                                                    "TxPackets": 20, "Start": 1000, "Last": 31000}}, host=hn)
            g.link(host, vout, own())
            g.link(vin, vout, {"RelationType": "layer2", "Type": "veth"})
            names["veth"].append("veth-%d-%d" % (h, i))
            names["netns"].append("ns-%d-%d" % (h, i))
            count += 4
            if rng.random() < 0.5:
                g.link(rng.choice(brs), vout, {"RelationType": "layer2"})
            else:
                port = g.new_node({"Name": "veth-%d-%d" % (h, i), "Type": "ovsport",
                                   "UUID": "%032x" % rng.getrandbits(128)}, host=hn)
                g.link(ovsbr, port, own())
                g.link(ovsbr, port, {"RelationType": "layer2"})
                g.link(port, vout, {"RelationType": "layer2"})
                names["ovsport"].append(port.Metadata["Name"])
                count += 1
    # fabric links between the hosts' NICs, then random layer2 links (spread evenly, no hubs)
    # up to 2 edges per node
    for a, b in zip(phys, phys[1:]):
        g.link(a, b, {"RelationType": "layer2", "Type": "fabric"})
    nodes = list(g.nodes.values())
    while len(g.edges) < 2 * len(g.nodes):
        a, b = rng.choice(nodes), rng.choice(nodes)
        if a is not b:
            g.link(a, b, {"RelationType": "layer2"})
    return g, names


def pct(samples, p):
    s = sorted(samples)
    return s[min(len(s) - 1, int(round(p / 100.0 * (len(s) - 1))))]


CPU = {}


def timeit(fn, runs):
    """Wall-clock samples in ms; CPU-time samples (this process) kept aside in CPU[id(list)],
    since a shared machine inflates wall-clock figures."""
    out, cpu = [], []
    for _ in range(runs):
        c, t = time.process_time(), time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000.0)
        cpu.append((time.process_time() - c) * 1000.0)
    CPU[id(out)] = cpu
    return out


def bench(size, runs, seed=1):
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    t0 = time.perf_counter()
    g, names = build(size, seed)
    build_s = time.perf_counter() - t0
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    mem = sum(s.size_diff for s in after.compare_to(before, "filename"))
    nn, ne = len(g.nodes), len(g.edges)
    print("== %d nodes, %d edges (built in %.1f s) ==" % (nn, ne, build_s))
    print("graph memory: %.0f bytes/node (%.1f MB total, edges and indexes included)" % (mem / nn, mem / 1e6))

    rng = random.Random(seed + 1)
    ctx = QueryContext(g)

    def report(label, samples, target=None):
        cpu = CPU.get(id(samples), samples)
        line = "%-58s median %7.3f ms  p95 %7.3f ms  max %7.3f ms | cpu median %7.3f p95 %7.3f" % (
            label, statistics.median(samples), pct(samples, 95), max(samples),
            statistics.median(cpu), pct(cpu, 95))
        if target:
            line += "   (target %s)" % target
        print(line)
        return samples

    def q(text):
        return lambda: execute(text, ctx).to_json_value()

    # indexed lookups: a fresh random name each time (parse cache hit after the first parse of each)
    vnames = names["veth"]
    report("G.V().Has('Name', <veth>)  [execute()]",
           timeit(lambda: execute("G.V().Has('Name', '%s')" % rng.choice(vnames), ctx).to_json_value(), runs),
           "< 1 ms median")
    pq = parse("G.V().Has('Name', 'veth-0-5')")
    report("G.V().Has('Name', 'veth-0-5')  [pre-parsed]", timeit(lambda: pq.execute(ctx).to_json_value(), runs))
    report("G.V().Has('Type', 'host', 'Name', <host>).Count()",
           timeit(lambda: execute("G.V().Has('Type', 'host', 'Name', '%s').Count()" % rng.choice(names["host"]),
                                  ctx).to_json_value(), runs))
    macs = [n.Metadata["MAC"] for n in g.nodes.values() if "MAC" in n.Metadata]
    report("G.V().Has('MAC', <mac>)  [index on MAC]",
           timeit(lambda: execute("G.V().Has('MAC', '%s')" % rng.choice(macs), ctx).to_json_value(), runs))

    # traversals
    report("2 hops: V(netns).Out().Out('Type','veth')  [ns->veth->peer]",
           timeit(q_rand(ctx, "G.V().Has('Name', '%s').Out().Out('Type', 'veth')", names["netns"], rng), runs))
    report("3 hops: V(veth).In().Out('Type','netns').Out()",
           timeit(q_rand(ctx, "G.V().Has('Name', '%s').In().Out('Type', 'netns').Out()", vnames, rng), runs),
           "p95 < %s ms" % ("20" if nn <= 20000 else "100"))
    report("3 hops: V(veth).Both().Both().Both().Dedup().Count()",
           timeit(q_rand(ctx, "G.V().Has('Name', '%s').Both().Both().Both().Dedup().Count()", vnames, rng), runs),
           "p95 < %s ms" % ("20" if nn <= 20000 else "100"))
    heavy = max(10, runs // 10)
    report("2 hops fan-out: V(host).Out('Type','netns').Out().Count()",
           timeit(q_rand(ctx, "G.V().Has('Type', 'host', 'Name', '%s').Out('Type', 'netns').Out().Count()",
                         names["host"], rng), heavy))
    report("V(host).Descendants(2).Count()",
           timeit(q_rand(ctx, "G.V().Has('Type', 'host', 'Name', '%s').Descendants(2).Count()", names["host"], rng),
                  heavy))

    # shortest paths
    report("ShortestPathTo(Metadata('Type','ovsbridge')) from a veth",
           timeit(q_rand(ctx, "G.V().Has('Name', '%s').ShortestPathTo(Metadata('Type', 'ovsbridge'))", vnames, rng),
                  runs))
    sp_runs = max(20, runs // 5)
    pairs = [(rng.choice(vnames), rng.choice(vnames)) for _ in range(sp_runs)]
    it = iter(pairs)
    report("ShortestPathTo(Metadata('Name', <other veth>)) (random pair)",
           timeit(lambda: execute("G.V().Has('Name', '%s').ShortestPathTo(Metadata('Name', '%s'))" % next(it), ctx)
                  .to_json_value(), sp_runs))
    report("ShortestPathTo with edge filter RelationType=ownership",
           timeit(q_rand(ctx, "G.V().Has('Name', '%s').ShortestPathTo(Metadata('Type', 'host'), "
                              "Metadata('RelationType', 'ownership'))", vnames, rng), runs))

    # whole-graph / scan queries, for reference
    scan = max(5, runs // 50)
    report("full scan: G.V().Has('MTU', Gt(9000)).Count()", timeit(q("G.V().Has('MTU', Gt(9000)).Count()"), scan))
    report("G.V().Has('Type','veth').Metrics().Sum('RxBytes')",
           timeit(q("G.V().Has('Type', 'veth').Metrics().Sum('RxBytes')"), scan))
    report("G (whole graph to JSON values)", timeit(q("G"), scan))
    print()
    return g


def q_rand(ctx, template, pool, rng):
    return lambda: execute(template % rng.choice(pool), ctx).to_json_value()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10000,50000", help="comma separated node counts")
    ap.add_argument("--runs", type=int, default=200, help="samples per light query")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    print("python %s" % sys.version.split()[0])
    for size in (int(s) for s in args.sizes.split(",")):
        g = bench(size, args.runs, args.seed)
        del g
        gc.collect()


if __name__ == "__main__":
    main()
