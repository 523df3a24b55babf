"""WebSocket fan-out: graph events per second delivered to N subscribers of /ws/subscriber.

The analyzer (memory backend, real aiohttp server on a free port) runs in this process; the
subscribers run in a child process (one asyncio loop, N sockets) and count the Graph messages
they receive. The figure is events/s = events generated / (time the last subscriber got the
last event - time the first event was generated); every subscriber must get every event.

    .venv/bin/python benchmarks/ws_fanout_bench.py [--events 20000] [--subscribers 10] [--bulk]
"""

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


async def subscribers_main(url, count, expected, bulk, parse):
    import aiohttp
    headers = {"X-Client-Type": "bench", "X-Client-Protocol": "json"}
    if bulk:
        headers["X-Bulk-Messages"] = "1"
    async with aiohttp.ClientSession() as session:
        conns = []
        for i in range(count):
            conns.append(await session.ws_connect(url, headers=dict(headers, **{"X-Host-ID": "bench-%d" % i}),
                                                  max_msg_size=0))
        print("ready", flush=True)

        async def consume(ws):
            got = 0
            while got < expected:
                m = await ws.receive()
                if m.type != aiohttp.WSMsgType.TEXT:
                    raise SystemExit("subscriber lost its connection after %d events: %r" % (got, m))
                data = m.data
                if bulk and data[0] == "[":
                    got += len(json.loads(data)) if parse else data.count('"Namespace":"Graph"')
                else:
                    if parse:
                        json.loads(data)
                    got += 1
            return got
        results = await asyncio.gather(*(consume(ws) for ws in conns))
        print("done %.6f %d" % (time.time(), sum(results)), flush=True)
        for ws in conns:
            await ws.close()


async def run(events, subscribers, bulk, parse, chunk):
    from skydive_runtime.analyzer.service import Analyzer
    from skydive_runtime.config import Config

    cfg = Config({"host_id": "bench", "analyzer": {"listen": "127.0.0.1:0", "topology": {"backend": "memory"}, "flow": {"backend": "memory"}},
                  "http": {"ws": {"queue_size": 100000}}, "logging": {"level": "WARNING"}})
    analyzer = Analyzer(cfg)
    await analyzer.start()
    url = analyzer.url.replace("http", "ws", 1) + "/ws/subscriber"
    child = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--child", url, "--subscribers", str(subscribers), "--events", str(events),
        *(["--bulk"] if bulk else []), *(["--parse"] if parse else []),
        stdout=subprocess.PIPE, env=dict(os.environ, PYTHONPATH=ROOT))
    line = (await child.stdout.readline()).decode().strip()
    assert line == "ready", line
    while len(analyzer.ws.broadcaster.subscribers) < subscribers:
        await asyncio.sleep(0.01)
    g = analyzer.graph
    nodes = []
    t0 = time.time()
    produced = 0
    # a realistic mix: 1/2 node adds, 1/2 metadata updates on them
    while produced < events:
        for _ in range(min(chunk, events - produced)):
            if produced % 2 == 0 or not nodes:
                nodes.append(g.new_node({"Name": "n%d" % produced, "Type": "veth", "MTU": 1500,
                                         "IPV4": ["10.0.%d.%d/24" % (produced // 250 % 250, produced % 250)]}))
            else:
                g.update_metadata(nodes[produced % len(nodes)], {"RxBytes": produced})
            produced += 1
        await asyncio.sleep(0)
    t_gen = time.time()
    out = (await child.stdout.readline()).decode().split()
    await child.wait()
    await analyzer.stop()
    if not out or out[0] != "done":
        raise SystemExit("subscribers failed: %r" % (out,))
    t1 = float(out[1])
    received = int(out[2])
    assert received == events * subscribers, (received, events * subscribers)
    elapsed = t1 - t0
    return {"events": events, "subscribers": subscribers, "bulk": bulk, "parse": parse,
            "generation_s": round(t_gen - t0, 3), "elapsed_s": round(elapsed, 3),
            "events_per_s": round(events / elapsed), "messages_delivered_per_s": round(received / elapsed)}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=20000)
    p.add_argument("--subscribers", type=int, default=10)
    p.add_argument("--bulk", action="store_true", help="subscribers ask for bulk frames (X-Bulk-Messages)")
    p.add_argument("--parse", action="store_true", help="subscribers json-decode every message")
    p.add_argument("--chunk", type=int, default=500, help="events generated per loop iteration")
    p.add_argument("--child", metavar="URL", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        asyncio.run(subscribers_main(args.child, args.subscribers, args.events, args.bulk, args.parse))
        return
    res = asyncio.run(run(args.events, args.subscribers, args.bulk, args.parse, args.chunk))
    print(json.dumps(res))
    print("ws fan-out: %(events_per_s)d graph events/s to %(subscribers)d subscribers "
          "(%(messages_delivered_per_s)d messages/s delivered, bulk=%(bulk)s, parse=%(parse)s)" % res)


if __name__ == "__main__":
    main()
