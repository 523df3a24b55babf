#!/usr/bin/env python3
"""An audit (the built-in pack + a site rule file) over a 10,000-node cloud-like graph:
hosts with br-int/br-tun/br-ex, OVS ports and interfaces, VXLAN tunnels over an underlay NIC,
namespaces with veth pairs, Neutron metadata on the taps, a few planted faults. Runs the real
audit path (skydive_runtime/api/audit/run.py Auditor: snapshot copy, every rule, the JUnit,
SARIF and table reports, the JSON answer) in process, as POST /api/audit does.

    .venv/bin/python benchmarks/audit_bench.py                 # 10,000 nodes, 5 runs
    .venv/bin/python benchmarks/audit_bench.py --nodes 50000 --runs 3
"""

import argparse
import asyncio
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from skydive_runtime.api.audit.run import Auditor  # noqa: E402
from skydive_runtime.api.query import QueryEngine  # noqa: E402
from skydive_runtime.graph import Graph  # noqa: E402

SITE = {"rules": [
    {"name": "veth-mtu-1450", "query": "G.V().Has('Type', 'veth').Has('MTU', NE(1450))", "severity": "warning"},
    {"name": "tenant-taps", "query": "G.V().Has('Type', 'tun')", "expect": {"count": "> 10"}},
    {"name": "br-int-per-host", "query": "G.V().Has('Type', 'ovsbridge', 'Name', 'br-int')", "per": "Host",
     "expect": "nonempty"},
]}


class Builder:
    def __init__(self):
        self.g = Graph(host_id="bench", origin="bench")
        self.n = 0

    def node(self, host, **md):
        self.n += 1
        return self.g.new_node(metadata=md, host=host)

    def link(self, a, b, rel, **md):
        md["RelationType"] = rel
        return self.g.link(a, b, md)


def build(target, seed=3):
    b = Builder()
    hosts = 0
    while b.n < target:
        hosts += 1
        h = "compute-%d" % hosts
        host = b.node(h, Name=h, Type="host")
        ul = b.node(h, Name="eth1", Type="device", MTU=1500, State="UP", MAC="52:54:00:%02x:%02x:01" % divmod(hosts, 256),
                    IPV4=["172.16.%d.%d/16" % divmod(hosts, 256)])
        b.link(host, ul, "ownership")
        bridges = {}
        for name in ("br-int", "br-tun", "br-ex"):
            br = b.node(h, Name=name, Type="ovsbridge", UUID="u-%s-%s" % (h, name))
            b.link(host, br, "ownership")
            bridges[name] = br
        vx = b.node(h, Name="vxlan-%d" % hosts, Type="vxlan", LocalIP="172.16.%d.%d" % divmod(hosts, 256),
                    RemoteIP="172.16.0.1", OfPort=2)
        port = b.node(h, Name=vx.Metadata["Name"], Type="ovsport", UUID="p-%s-vx" % h)
        b.link(bridges["br-tun"], port, "ownership")
        b.link(bridges["br-tun"], port, "layer2")
        b.link(port, vx, "layer2")
        for i in range(40):
            if b.n >= target:
                break
            # a VM tap on br-int with its Neutron port, a namespace with a veth pair
            tap = b.node(h, Name="tap%d-%d" % (hosts, i), Type="tun", MTU=1450, State="UP", OfPort=10 + i,
                         MAC="fe:16:3e:%02x:%02x:%02x" % (hosts // 256, hosts % 256, i), Manager="neutron",
                         ExtID={"iface-id": "port-%d-%d" % (hosts, i)}, Neutron={"PortID": "port-%d-%d" % (hosts, i)})
            port = b.node(h, Name=tap.Metadata["Name"], Type="ovsport", UUID="p-%s-%d" % (h, i))
            b.link(bridges["br-int"], port, "ownership")
            b.link(bridges["br-int"], port, "layer2")
            b.link(port, tap, "layer2")
            b.link(host, tap, "ownership")
            ns = b.node(h, Name="qdhcp-%d-%d" % (hosts, i), Type="netns", Path="/var/run/netns/q%d" % i)
            b.link(host, ns, "ownership")
            mtu = 1400 if (hosts, i) == (3, 7) else 1450      # planted: one veth end with another MTU
            va = b.node(h, Name="va%d" % i, Type="veth", MTU=1450, State="UP", MAC="02:%02x:%02x:%02x:00:01" % (
                hosts // 256, hosts % 256, i), IPV4=["10.%d.%d.1/24" % (hosts % 250, i)])
            vb = b.node(h, Name="vb%d" % i, Type="veth", MTU=mtu, State="UP", MAC="02:%02x:%02x:%02x:00:02" % (
                hosts // 256, hosts % 256, i), IPV4=["10.%d.%d.2/24" % (hosts % 250, i)])
            b.link(ns, va, "ownership")
            b.link(host, vb, "ownership")
            b.link(va, vb, "layer2", Type="veth")
    return b.g, hosts


async def run_once(auditor):
    t0, c0 = time.perf_counter(), time.process_time()
    report = await auditor.run({"Builtin": True, "Files": [{"Name": "site.yaml", "Rules": SITE}],
                                "Formats": ["junit", "sarif", "table"]})
    body = json.dumps(report)
    return time.perf_counter() - t0, time.process_time() - c0, report, len(body)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=10000)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    t0 = time.perf_counter()
    graph, hosts = build(args.nodes)
    built = time.perf_counter() - t0
    auditor = Auditor(QueryEngine(graph))
    times, cpu, report, size = [], [], None, 0
    for _ in range(args.runs):
        dt, ct, report, size = asyncio.run(run_once(auditor))
        times.append(dt)
        cpu.append(ct)
    s = report["Summary"]
    slowest = sorted(((r["Duration"], r["Name"]) for f in report["Files"] for r in f["Rules"]), reverse=True)[:3]
    print("graph: %d nodes, %d edges, %d hosts (built in %.2f s)" % (len(graph.nodes), len(graph.edges), hosts, built))
    print("audit: %d rules (%d failed, %d violations), answer %d KB" % (
        s["Rules"], s["Failed"], s["Violations"], size // 1024))
    print("audit time: median %.2f s, min %.2f s, max %.2f s over %d runs (CPU time of the process: median %.2f s)" % (
        statistics.median(times), min(times), max(times), len(times), statistics.median(cpu)))
    print("slowest rules (last run): %s" % ", ".join("%s %.2f s" % (n, d) for d, n in slowest))
    print("load average: %.2f %.2f %.2f" % os.getloadavg())


if __name__ == "__main__":
    main()
