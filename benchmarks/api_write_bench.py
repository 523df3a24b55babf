"""Acknowledged writes per second: POST /api/capture and POST /api/node on a real analyzer
process (SQLite store, default settings), each 201 sent only once its write is committed.

One client sends its requests one after the other (latency bound: one commit per request);
then `--clients` concurrent clients (their writes share commits: group commit).

    .venv/bin/python benchmarks/api_write_bench.py [--requests 1000] [--clients 8]
"""

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


async def _post_all(url, bodies, clients):
    import aiohttp
    queue = list(enumerate(bodies))
    latencies = []

    async def worker(session):
        while queue:
            _, (path, body) = queue.pop()
            t = time.perf_counter()
            async with session.post(url + path, json=body) as r:
                if r.status != 201:
                    raise SystemExit("%s answered %d: %s" % (path, r.status, await r.text()))
                await r.read()
            latencies.append(time.perf_counter() - t)

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=clients)) as session:
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(clients)))
        elapsed = time.perf_counter() - t0
    latencies.sort()
    return len(bodies) / elapsed, latencies[len(latencies) // 2] * 1000, latencies[int(len(latencies) * 0.95)] * 1000


def main():
    from tests.fixtures.processes import SkydiveProcess, analyzer_config
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--clients", type=int, default=8)
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="api-write-bench-")
    proc = SkydiveProcess("analyzer", work, analyzer_config(work, logging={"level": "WARNING"})).start()
    try:
        for kind in ("capture", "node"):
            for clients in (1, args.clients):
                tag = "%s-%d" % (kind, clients)
                if kind == "capture":
                    bodies = [("/api/capture", {"GremlinQuery": "G.V().Has('Name', '%s-%d')" % (tag, i)})
                              for i in range(args.requests)]
                else:
                    bodies = [("/api/node", {"ID": "%s-%d" % (tag, i), "Metadata": {"Name": "n%d" % i, "Type": "device"}})
                              for i in range(args.requests)]
                rate, p50, p95 = asyncio.run(_post_all(proc.url, bodies, clients))
                print("POST /api/%-8s %d client(s): %7.0f acknowledged writes/s, latency p50 %.2f ms, p95 %.2f ms"
                      % (kind, clients, rate, p50, p95))
    finally:
        proc.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
