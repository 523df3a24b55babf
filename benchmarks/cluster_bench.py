"""Cluster load: simulated agents push graph updates to three analyzers that replicate each other.

Starts a 3-member etcd cluster, ClickHouse and three real analyzers (tests/fixtures/cluster.py),
then, in this process: `--agents` simulated agents (WebSocket clients of /ws/agent/topology, spread
round-robin over the analyzers) each send a Sync with one host node, then `--rate` partial updates
per second for `--duration` seconds (NodePartiallyUpdated with a sequence number and the send
time); one /ws/subscriber per analyzer receives the whole graph's updates. Printed: updates sent,
updates missing per subscriber (every agent's sequence must arrive complete on every analyzer,
the ones of its own agents and those replicated from the two others), subscriber lag (receive
time - send time) median / p95 / max, and the analyzers' CPU.

Usage: python benchmarks/cluster_bench.py [--agents 50] [--rate 20] [--duration 60] [--store clickhouse|memory]
"""

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid

import aiohttp

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from tests.fixtures.cluster import AnalyzerCluster  # noqa: E402
from tests.fixtures.servers import clickhouse_server, etcd_cluster  # noqa: E402


def _node(host, t_ms):
    return {"ID": host + "-node", "Metadata": {"Name": host, "Type": "host", "Seq": 0, "Sent": 0.0},
            "Host": host, "Origin": "agent." + host, "CreatedAt": t_ms, "UpdatedAt": t_ms, "Revision": 1}


async def _agent(session, url, host, rate, duration, sent):
    headers = {"X-Host-ID": host, "X-Client-Type": "agent", "X-Client-Protocol": "json",
               "X-Persistence-Policy": "DeleteOnDisconnect"}
    async with session.ws_connect(url + "/ws/agent/topology", headers=headers, max_msg_size=0) as ws:
        now = int(time.time() * 1000)
        await ws.send_str(json.dumps({"Namespace": "Graph", "Type": "Sync", "UUID": "", "Status": 200,
                                      "Obj": {"Nodes": [_node(host, now)], "Edges": []}}))
        await asyncio.sleep(1.0)       # every subscriber has the node before its updates start
        n = int(rate * duration)
        t0 = time.monotonic()
        for seq in range(1, n + 1):
            delay = t0 + seq / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            obj = {"ID": host + "-node", "Revision": seq + 1, "UpdatedAt": int(time.time() * 1000),
                   "Ops": [{"Type": 1, "Key": "Seq", "Value": seq}, {"Type": 1, "Key": "Sent", "Value": time.time()}]}
            await ws.send_str(json.dumps({"Namespace": "Graph", "Type": "NodePartiallyUpdated", "UUID": "",
                                          "Status": 200, "Obj": obj}))
            sent[host] = seq
        await asyncio.sleep(5.0)       # let the last updates reach every subscriber before the agent leaves


async def _subscriber(session, url, seen, lags, ready, stop):
    headers = {"X-Host-ID": "bench-sub-" + uuid.uuid4().hex[:6], "X-Client-Type": "subscriber"}
    async with session.ws_connect(url + "/ws/subscriber", headers=headers, max_msg_size=0) as ws:
        ready.set()
        while not stop.is_set():
            try:
                msg = await asyncio.wait_for(ws.receive(), 0.5)
            except asyncio.TimeoutError:
                continue
            if msg.type != aiohttp.WSMsgType.TEXT:
                if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                    return
                continue
            t = time.time()
            data = json.loads(msg.data)
            for m in data if isinstance(data, list) else [data]:
                if m.get("Type") not in ("NodeUpdated", "NodePartiallyUpdated"):
                    continue
                md = (m.get("Obj") or {}).get("Metadata") or {}
                seq, sent = md.get("Seq"), md.get("Sent")
                if isinstance(seq, int) and seq > 0:
                    seen.setdefault(md.get("Name"), set()).add(seq)
                    lags.append(t - sent)


async def run_load(urls, agents, rate, duration):
    """{"sent", "missing": [per subscriber], "lag_median", "lag_p95", "lag_max"} (seconds)."""
    hosts = ["bench-ag%02d-%s" % (i, uuid.uuid4().hex[:4]) for i in range(agents)]
    sent = {}
    seen = [{} for _ in urls]
    lags = [[] for _ in urls]
    stop = asyncio.Event()
    async with aiohttp.ClientSession() as session:
        readies = [asyncio.Event() for _ in urls]
        subs = [asyncio.ensure_future(_subscriber(session, u, seen[i], lags[i], readies[i], stop)) for i, u in enumerate(urls)]
        await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 20)
        await asyncio.gather(*(_agent(session, urls[i % len(urls)], h, rate, duration, sent) for i, h in enumerate(hosts)))
        stop.set()
        await asyncio.gather(*subs, return_exceptions=True)
    missing = [sum(len(set(range(1, sent.get(h, 0) + 1)) - s.get(h, set())) for h in hosts) for s in seen]
    every = sorted(x for lst in lags for x in lst)
    return {"sent": sum(sent.values()), "missing": missing,
            "lag_median": statistics.median(every) if every else None,
            "lag_p95": every[int(len(every) * 0.95) - 1] if every else None, "lag_max": every[-1] if every else None,
            "received": [len(x) for x in lags]}


def _cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--agents", type=int, default=50)
    ap.add_argument("--rate", type=float, default=20.0)
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--store", choices=("clickhouse", "memory"), default="clickhouse")
    args = ap.parse_args()
    workdir = tempfile.mkdtemp(prefix="skydive-cluster-bench-")
    try:
        print("machine: %d CPUs, load average %.1f at start (shared machine)" % (os.cpu_count(), os.getloadavg()[0]))
        with clickhouse_server(workdir) as ch, etcd_cluster(workdir, members=3) as etcd:
            extra = {} if args.store == "clickhouse" else {
                "analyzer": {"topology": {"backend": "memory"}, "flow": {"backend": "memory"}}}
            cluster = AnalyzerCluster(workdir, 3, etcd, ch, extra=extra)
            try:
                cluster.start()
                pids = [p.proc.pid for p in cluster.analyzers.values()]
                cpu0 = [_cpu_seconds(p) for p in pids]
                t0 = time.monotonic()
                r = asyncio.run(run_load([cluster.url(n) for n in cluster.names], args.agents, args.rate, args.duration))
                wall = time.monotonic() - t0
                cpu = [_cpu_seconds(p) - c for p, c in zip(pids, cpu0)]
            finally:
                cluster.stop()
        print("%d agents x %.0f updates/s x %.0f s over 3 analyzers (store %s): %d updates sent" %
              (args.agents, args.rate, args.duration, args.store, r["sent"]))
        print("missing updates per subscriber (one per analyzer): %s; received %s" % (r["missing"], r["received"]))
        print("subscriber lag: median %.3f s, p95 %.3f s, max %.3f s" % (r["lag_median"], r["lag_p95"], r["lag_max"]))
        print("analyzers' CPU: %s s over %.0f s wall" % (", ".join("%.1f" % c for c in cpu), wall))
        print("load average at end %.1f" % os.getloadavg()[0])
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
