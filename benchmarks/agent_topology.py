"""Agent benchmarks (needs root): prints figures, changes nothing outside what it creates.

    .venv/bin/python benchmarks/agent_topology.py [--pairs 200] [--mtu-samples 60]

1. with 2*pairs extra interfaces on the host, time from `skydive agent` process start (and from
   `Agent.start()` in-process) until an analyzer subscriber has seen every one of them;
2. `ip link set X mtu N` -> NodeUpdated on an analyzer /ws/subscriber: p50/p95/max latency;
3. agent resident memory when idle;
4. raw netlink link dump vs `ip -j link show` (and the agent's full per-namespace dump).
"""

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import aiohttp  # noqa: E402

from tests.fixtures.processes import SkydiveProcess  # noqa: E402
from tests.fixtures.topology import Names, run  # noqa: E402


def pct(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100.0 * (len(s) - 1))))]


class Subscriber:
    """/ws/subscriber on the analyzer, collecting nodes by name."""

    def __init__(self, url):
        self.url = url.replace("http://", "ws://") + "/ws/subscriber"
        self.names = {}          # name -> time first seen
        self.events = asyncio.Queue()

    async def run(self, session):
        hdr = {"X-Host-ID": "bench-%d-%d" % (os.getpid(), id(self)), "X-Client-Type": "bench", "X-Client-Protocol": "json"}
        async with session.ws_connect(self.url, headers=hdr, max_msg_size=0) as ws:
            self.ws = ws
            async for msg in ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                t = time.perf_counter()
                data = json.loads(msg.data)
                for m in (data if isinstance(data, list) else [data]):
                    obj = m.get("Obj") or {}
                    if m.get("Type") in ("NodeAdded", "NodeUpdated"):
                        name = (obj.get("Metadata") or {}).get("Name")
                        if name is not None and name not in self.names:
                            self.names[name] = t
                    self.events.put_nowait((t, m))


async def wait_names(sub, wanted, timeout=30):
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if wanted <= set(sub.names):
            return max(sub.names[n] for n in wanted)
        await asyncio.sleep(0.002)
    raise RuntimeError("subscriber saw %d of %d interfaces" % (len(wanted & set(sub.names)), len(wanted)))


def agent_conf(analyzer, host_id):
    return {"host_id": host_id, "analyzers": [analyzer.address],
            "agent": {"topology": {"probes": []}}, "logging": {"level": "WARNING"}}


async def bench(args, names, created):
    work = tempfile.mkdtemp(prefix="skybench")
    an_cfg = {"host_id": "bench-analyzer", "analyzer": {"topology": {"backend": "memory"}, "flow": {"backend": "memory"}},
              "logging": {"level": "WARNING"}}
    analyzer = SkydiveProcess("analyzer", os.path.join(work, "an"), an_cfg)
    analyzer.start()
    agent = None
    results = {}
    try:
        async with aiohttp.ClientSession() as session:
            # ---- 1. cold start of an agent process ---------------------------------------------------
            sub = Subscriber(analyzer.url)
            task = asyncio.ensure_future(sub.run(session))
            await asyncio.sleep(0.3)
            agent = SkydiveProcess("agent", os.path.join(work, "ag"), agent_conf(analyzer, "bench-agent"))
            t0 = time.perf_counter()
            agent_start = asyncio.get_running_loop().run_in_executor(None, agent.start)
            t_full = await wait_names(sub, created)
            results["process_start_to_analyzer_s"] = t_full - t0
            await agent_start

            # ---- 2. in-process Agent.start() to analyzer ---------------------------------------------
            agent.stop()
            await asyncio.sleep(1.0)
            from skydive_runtime.agent.service import Agent
            from skydive_runtime.config import Config
            sub2 = Subscriber(analyzer.url)
            task2 = asyncio.ensure_future(sub2.run(session))
            await asyncio.sleep(0.3)
            cfg = Config({"host_id": "bench-inproc", "analyzers": [analyzer.address],
                          "agent": {"listen": "127.0.0.1:0", "topology": {"probes": []}}})
            t0 = time.perf_counter()
            inproc = Agent(cfg)
            await inproc.start()
            t_started = time.perf_counter()
            t_full = await wait_names(sub2, created)
            results["agent_start_returned_s"] = t_started - t0
            results["agent_start_to_analyzer_s"] = t_full - t0
            await inproc.stop()
            task2.cancel()
            await asyncio.sleep(1.0)

            # ---- 3. MTU change latency ---------------------------------------------------------------
            agent = SkydiveProcess("agent", os.path.join(work, "ag2"), agent_conf(analyzer, "bench-agent2"))
            agent.start()
            await asyncio.sleep(2.0)
            target = sorted(created)[0]
            lat = []
            for k in range(args.mtu_samples):
                mtu = 1300 + (k % 2) * 100 + k
                while not sub.events.empty():
                    sub.events.get_nowait()
                t0 = time.perf_counter()
                subprocess.run(["ip", "link", "set", target, "mtu", str(mtu)], check=True)
                deadline = t0 + 5
                while True:
                    t, m = await asyncio.wait_for(sub.events.get(), max(0.01, deadline - time.perf_counter()))
                    obj = m.get("Obj") or {}
                    md = obj.get("Metadata") or {}
                    if m.get("Type") == "NodeUpdated" and md.get("Name") == target and md.get("MTU") == mtu:
                        lat.append((t - t0) * 1000)
                        break
                    if m.get("Type") == "NodePartiallyUpdated" and any(
                            op.get("Key") == "MTU" and op.get("Value") == mtu for op in obj.get("Ops", [])):
                        lat.append((t - t0) * 1000)
                        break
                await asyncio.sleep(0.02)
            results["mtu_latency_ms_p50"] = statistics.median(lat)
            results["mtu_latency_ms_p95"] = pct(lat, 95)
            results["mtu_latency_ms_max"] = max(lat)

            # ---- 4. idle RSS ------------------------------------------------------------------------------
            await asyncio.sleep(3.0)
            with open("/proc/%d/status" % agent.proc.pid) as fh:
                rss = [l for l in fh if l.startswith("VmRSS:")][0].split()[1]
            results["agent_idle_rss_mb"] = int(rss) / 1024.0
            task.cancel()
    finally:
        if agent is not None:
            agent.stop()
        analyzer.stop()
    return results


def dump_ratio(samples=20):
    from skydive_runtime.agent import nl
    from skydive_runtime.agent.nlmonitor import NetlinkMonitor, _Ns
    s = nl.NetlinkSocket()
    raw, ipj, full = [], [], []
    n = 0
    for _ in range(samples):
        t0 = time.perf_counter()
        links = [nl.decode_link(d, o, e) for t, d, o, e in s.dump(nl.RTM_GETLINK) if t == nl.RTM_NEWLINK]
        raw.append(time.perf_counter() - t0)
        n = len(links)
        t0 = time.perf_counter()
        subprocess.run(["ip", "-j", "link", "show"], capture_output=True, check=True)
        ipj.append(time.perf_counter() - t0)
    pyr = []
    try:
        from pyroute2 import IPRoute
        with IPRoute() as ipr:
            for _ in range(3):
                t0 = time.perf_counter()
                [l.get_attr("IFLA_IFNAME") for l in ipr.get_links()]
                pyr.append(time.perf_counter() - t0)
    except ImportError:
        pass
    mon = NetlinkMonitor(None, None)
    for _ in range(5):
        ns = _Ns("", "", None)
        mon._open_sockets(ns)
        t0 = time.perf_counter()
        mon._full_dump(ns)
        full.append(time.perf_counter() - t0)
        mon.pending_out = []
        ns.close()
    s.close()
    return {"links": n, "raw_link_dump_ms": statistics.median(raw) * 1000,
            "ip_j_link_show_ms": statistics.median(ipj) * 1000,
            "ratio_ip_over_raw": statistics.median(ipj) / statistics.median(raw),
            "agent_full_dump_ms": statistics.median(full) * 1000,
            "pyroute2_get_links_ms": statistics.median(pyr) * 1000 if pyr else float("nan")}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=200)
    ap.add_argument("--mtu-samples", type=int, default=60)
    args = ap.parse_args()
    names = Names("bq")
    pairs = [(names("a"), names("b")) for _ in range(args.pairs)]
    created = set(n for p in pairs for n in p)
    batch = tempfile.NamedTemporaryFile("w", suffix=".batch", delete=False)
    batch.write("".join("link add %s type veth peer name %s\n" % p for p in pairs))
    batch.close()
    try:
        run(["ip", "-batch", batch.name], timeout=120)
        total = len(os.listdir("/sys/class/net"))
        print("interfaces on the host: %d (%d created)" % (total, len(created)))
        res = dump_ratio()
        res.update(asyncio.run(bench(args, names, created)))
        for k, v in res.items():
            print("%-32s %s" % (k, ("%.3f" % v) if isinstance(v, float) else v))
    finally:
        with open(batch.name, "w") as fh:
            fh.write("".join("link del %s\n" % a for a, _b in pairs))
        run(["ip", "-force", "-batch", batch.name], check=False, timeout=120)
        os.unlink(batch.name)


if __name__ == "__main__":
    main()
