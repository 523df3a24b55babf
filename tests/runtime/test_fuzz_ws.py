"""WebSocket fuzzer: > 10,000 generated messages (random envelopes and the issue 9 attack shapes:
lone surrogates, deep JSON, huge messages, wrong types, bad and heavy Gremlin filters, ReDoS
regexes, never-read replies) sent to /ws/publisher, /ws/pubsub, /ws/subscriber and
/ws/agent/topology of a real analyzer process. It must end with 0 tracebacks in the analyzer's
log, /api/status answering within 1 s throughout, bounded memory and a sane graph."""

import asyncio
import json
import random

import aiohttp
import pytest
import requests

from tests.fixtures.processes import SkydiveProcess, analyzer_config
from tests.runtime.limits_support import StatusProbe, rss_kb, tracebacks

pytestmark = pytest.mark.timeout(600)

MESSAGES = 10500
PATHS = ["/ws/publisher", "/ws/pubsub", "/ws/subscriber", "/ws/agent/topology"]
TYPES = ["NodeAdded", "NodeUpdated", "NodeDeleted", "EdgeAdded", "EdgeUpdated", "EdgeDeleted", "Sync",
         "SyncReply", "SyncRequest", "NodePartiallyUpdated", "EdgePartiallyUpdated", "Bogus", "", None, 7]
FILTERS = ["G.V()", "G.V().Out().Out().Out().Out().SubGraph()", "G.V().Has('Name', Regex('(a+)+'))",
           "G.V().Has('Name', Regex('(x|xx)*y')).SubGraph()", "G.V(", "G.E().SubGraph()", "", 5, None,
           "G.V().Has('Name', Regex('fz.*')).SubGraph()", "G.V().Descendants().SubGraph()"]


def rand_value(rng, depth=0):
    k = rng.randrange(9 if depth < 4 else 5)
    if k == 0:
        return None
    if k == 1:
        return rng.choice([True, False])
    if k == 2:
        return rng.choice([0, -1, 1, 2 ** 63, -2 ** 70, 1.5, 10 ** 30])
    if k in (3, 4):
        return rng.choice(["", "x", "fz%d" % rng.randrange(30), "\u00e9\U0001f600", "a" * rng.randrange(200),
                           "$(id)", "../../etc", "\x00"])
    if k in (5, 6):
        return [rand_value(rng, depth + 1) for dummy in range(rng.randrange(4))]
    return {rng.choice(["Name", "Type", "ID", "Metadata", "RelationType", "k", ""]): rand_value(rng, depth + 1)
            for dummy in range(rng.randrange(4))}


def rand_element(rng, edge=False):
    el = {"ID": "fz%d" % rng.randrange(30), "Host": rng.choice(["h", "", None]),
          "Metadata": {"Name": "fz%d" % rng.randrange(30), "Type": rng.choice(["device", "veth", None])},
          "CreatedAt": rng.choice([1, 0, -5, 2 ** 64, "x"]), "Revision": rng.choice([1, 2, 5, 2 ** 63, None])}
    if edge:
        el["Parent"] = "fz%d" % rng.randrange(30)
        el["Child"] = "fz%d" % rng.randrange(30)
        el["Metadata"]["RelationType"] = rng.choice(["layer2", "ownership", None])
    for dummy in range(rng.randrange(3)):
        el[rng.choice(list(el) + ["Extra"])] = rand_value(rng)
    return el


def attack(rng):
    """Raw text of one attack-shaped message."""
    k = rng.randrange(8)
    if k == 0:
        return '{"Namespace": "Graph", "Type": "NodeAdded", "Obj": {"ID": "sur", "Metadata": {"Name": "\\ud800"}}}'
    if k == 1:
        d = rng.choice([30, 200, 5000])
        return '{"Namespace": "Graph", "Type": "NodeAdded", "Obj": %s}' % ("[" * d + "]" * d)
    if k == 2:
        return json.dumps({"Namespace": "Graph", "Type": "SyncRequest", "UUID": "a",
                           "Obj": {"GremlinFilter": rng.choice(FILTERS[1:4])}})
    if k == 3:
        return "x" * rng.choice([1, 1000]) if rng.random() < 0.9 else "x" * (2 * 1024 * 1024)   # huge
    if k == 4:
        return json.dumps([{"Namespace": "Graph", "Type": rng.choice(TYPES), "Obj": rand_value(rng)}
                           for dummy in range(rng.randrange(1, 20))])                             # bulk
    if k == 5:
        return json.dumps({"Namespace": rand_value(rng), "Type": rand_value(rng), "Obj": rand_value(rng)})
    if k == 6:
        return json.dumps({"Namespace": "Graph", "Type": "Sync", "Obj": {
            "Nodes": [rand_element(rng) for dummy in range(rng.randrange(10))],
            "Edges": [rand_element(rng, True) for dummy in range(rng.randrange(20))]}})
    return '{"Namespace": "Graph", "Type": "NodeAdded", "Obj": {"ID": "fzdeep", "Metadata": {"Name": "\\udfff\\ud800"}}'


def message(rng):
    if rng.random() < 0.3:
        return attack(rng)
    type_ = rng.choice(TYPES)
    if type_ == "SyncRequest":
        obj = {"GremlinFilter": rng.choice(FILTERS), "Time": rng.choice([None, 0, 1, "x", 2 ** 70])}
    elif type_ in ("NodePartiallyUpdated", "EdgePartiallyUpdated"):
        obj = {"ID": "fz%d" % rng.randrange(30), "Revision": rng.choice([1, 10 ** 6, None]),
               "Ops": [{"Type": rng.choice([1, 2, 3]), "Key": rng.choice(["Name", "k", "a.b", 5]),
                        "Value": rand_value(rng)} for dummy in range(rng.randrange(3))]}
    elif type_ and isinstance(type_, str) and type_.startswith("Edge"):
        obj = rand_element(rng, edge=True)
    elif type_ and isinstance(type_, str) and type_.startswith("Node"):
        obj = rand_element(rng)
    else:
        obj = rand_value(rng)
    return json.dumps({"Namespace": rng.choice(["Graph", "Graph", "", "Other"]), "Type": type_,
                       "UUID": str(rng.randrange(1000)), "Obj": obj})


async def drain(ws):
    try:
        async for dummy in ws:
            pass
    except (aiohttp.ClientError, asyncio.CancelledError):
        pass


async def fuzz(url, count, seed):
    rng = random.Random(seed)
    sent = reconnects = 0
    async with aiohttp.ClientSession() as session:
        conns = {}
        while sent < count:
            path = rng.choice(PATHS)
            ws = conns.get(path)
            if ws is None or ws[0].closed:
                try:
                    sock = await session.ws_connect(url + path, headers={"X-Client-Type": "fuzz",
                                                                         "X-Host-ID": "fz-%d" % reconnects},
                                                    max_msg_size=0)
                except aiohttp.WSServerHandshakeError:
                    reconnects += 1
                    continue
                reconnects += 1
                conns[path] = ws = (sock, asyncio.ensure_future(drain(sock)))
            try:
                await ws[0].send_str(message(rng))
            except (ConnectionError, aiohttp.ClientError, RuntimeError):
                continue
            sent += 1
            if sent % 50 == 0:
                await asyncio.sleep(0.01)
        for sock, task in conns.values():
            await sock.close()
            task.cancel()
    return sent, reconnects


def test_fuzz_websocket(tmp_path):
    cfg = analyzer_config(tmp_path, http={"max_body_size": 1024 * 1024, "ws": {"queue_max_bytes": 4 * 1024 * 1024}},
                          analyzer={"topology": {"backend": "memory"}, "flow": {"backend": "memory"},
                                    "query": {"timeout": 2}})
    proc = SkydiveProcess("analyzer", tmp_path, cfg).start()
    try:
        before = rss_kb(proc.proc.pid)
        with StatusProbe(proc.url) as probe:
            sent, reconnects = asyncio.run(fuzz("ws://" + proc.address, MESSAGES, 9))
        after = rss_kb(proc.proc.pid)
        print("ws fuzz: %d messages, %d connections; analyzer RSS %d KB -> %d KB; /api/status worst %.3fs"
              % (sent, reconnects, before, after, probe.worst))
        assert sent >= 10000
        probe.assert_responsive()
        assert after - before < 300 * 1024
        r = requests.get(proc.url + "/api/topology", timeout=10)
        assert r.status_code == 200
        topo = r.json()
        for n in topo.get("Nodes") or ():
            json.dumps(n, ensure_ascii=False).encode("utf-8")     # no lone surrogate got in
        assert isinstance(proc.query("G.V().Count()"), int)
        assert tracebacks(proc.log_path) == 0, proc.log_tail(80)
    finally:
        proc.stop()
