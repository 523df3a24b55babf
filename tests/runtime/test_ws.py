"""WebSocket endpoints (spec §2): handshake, envelope, subscriber, publisher, pubsub, agent link."""

import asyncio
import json

import aiohttp
import pytest

from skydive_runtime.api.graph_ws import AGENT

from tests.runtime.test_api_support import analyzer_config, edge, node, run_with_analyzer

pytestmark = pytest.mark.timeout(120)


def hdrs(host, ctype="test-client", **extra):
    h = {"X-Host-ID": host, "X-Client-Type": ctype, "X-Client-Protocol": "json"}
    h.update(extra)
    return h


def msg(type_, obj, uuid="u-1"):
    return json.dumps({"Namespace": "Graph", "Type": type_, "UUID": uuid, "Status": 200, "Obj": obj})


def full(nid, name, type_="fabric", rev=1, **md):
    n = node(nid, name, type_, **md)
    n.update({"Revision": rev, "CreatedAt": 1000, "UpdatedAt": 1000})
    return n


async def recv(ws, timeout=3.0):
    while True:
        m = await ws.receive(timeout=timeout)
        if m.type == aiohttp.WSMsgType.TEXT:
            return json.loads(m.data)
        if m.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING):
            return None


async def recv_until(ws, pred, timeout=3.0):
    got = []
    while True:
        m = await recv(ws, timeout)
        assert m is not None, got
        got.append(m)
        if pred(m):
            return got


async def nothing_more(ws, wait=0.3):
    try:
        m = await ws.receive(timeout=wait)
    except asyncio.TimeoutError:
        return True
    return m.type not in (aiohttp.WSMsgType.TEXT,)


async def sync(ws, flt=None, uuid="sync-1", **extra):
    obj = dict(extra)
    if flt is not None:
        obj["GremlinFilter"] = flt
    await ws.send_str(msg("SyncRequest", obj, uuid))
    return await recv_until(ws, lambda m: m["Type"] == "SyncReply")


def test_handshake(tmp_path):
    async def body(c):
        s = c.session
        ws = await s.ws_connect(c.ws_url("/ws/subscriber"), headers=hdrs("h1"))
        assert ws._response.headers["X-Host-ID"] == "test-analyzer"
        assert ws._response.headers["X-Service-Type"] == "analyzer"
        # duplicate X-Host-ID on the same endpoint -> 409 before the upgrade
        with pytest.raises(aiohttp.WSServerHandshakeError) as exc:
            await s.ws_connect(c.ws_url("/ws/subscriber"), headers=hdrs("h1"))
        assert exc.value.status == 409
        # ... but the same host id on another endpoint is fine
        pub = await s.ws_connect(c.ws_url("/ws/publisher"), headers=hdrs("h1"))
        await pub.close()
        # identity as lowercase query parameters
        q = await s.ws_connect(c.ws_url("/ws/subscriber?x-host-id=qh&x-client-type=webui"))
        status = await c.json("GET", "/api/status")
        assert status["Subscribers"]["qh"]["ServiceType"] == "webui"
        assert status["Subscribers"]["h1"]["IsConnected"] is True
        assert status["Subscribers"]["h1"]["ClientProtocol"] == "json"
        await q.close()
        # X-Client-Type is mandatory: upgraded then closed at once
        bad = await s.ws_connect(c.ws_url("/ws/subscriber"), headers={"X-Host-ID": "nt"})
        m = await bad.receive(timeout=3)
        assert m.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        # protobuf is refused with a close too (JSON only)
        pb = await s.ws_connect(c.ws_url("/ws/subscriber"), headers=hdrs("pb", **{"X-Client-Protocol": "protobuf"}))
        m = await pb.receive(timeout=3)
        assert m.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        # the server pings right after the connection and keeps pinging (ping_delay 1s)
        raw = await s.ws_connect(c.ws_url("/ws/subscriber"), headers=hdrs("pinged"), autoping=False)
        m = await raw.receive(timeout=3)
        assert m.type == aiohttp.WSMsgType.PING
        await raw.pong(m.data)
        m = await raw.receive(timeout=3)
        assert m.type == aiohttp.WSMsgType.PING
        await raw.close()
        await ws.close()
    run_with_analyzer(analyzer_config(tmp_path), body)


def test_subscriber_sync_and_events(tmp_path):
    """Gotcha 10: nothing until SyncRequest; live events afterwards; envelope shape."""
    async def body(c):
        await c.json("POST", "/api/node", node("n1", "one"), expect=201)
        ws = await c.session.ws_connect(c.ws_url("/ws/subscriber"), headers=hdrs("s1"))
        assert await nothing_more(ws)          # no initial dump
        reply = (await sync(ws, uuid="abc"))[-1]
        assert reply["UUID"] == "abc" and reply["Namespace"] == "Graph" and reply["Status"] == 200
        assert [n["ID"] for n in reply["Obj"]["Nodes"]] == ["n1"] and reply["Obj"]["Edges"] == []
        await c.json("POST", "/api/node", node("n2", "two"), expect=201)
        m = await recv(ws)
        assert m["Type"] == "NodeAdded" and m["Obj"]["ID"] == "n2" and m["Status"] == 200 and m["UUID"]
        assert m["Obj"]["DeletedAt"] is None
        await c.json("POST", "/api/edge", edge("e1", "n1", "n2"), expect=201)
        assert (await recv(ws))["Type"] == "EdgeAdded"
        await c.json("PATCH", "/api/node/n1", [{"op": "add", "path": "/Metadata/x", "value": 1}])
        m = await recv(ws)
        assert m["Type"] == "NodeUpdated" and m["Obj"]["Metadata"]["x"] == 1
        await c.req("DELETE", "/api/node/n1")
        got = [await recv(ws), await recv(ws)]
        assert [m["Type"] for m in got] == ["EdgeDeleted", "NodeDeleted"]
        assert got[1]["Obj"]["DeletedAt"] > 0
        # bad SyncRequest objects get a 400 SyncReply
        await ws.send_str(msg("SyncRequest", "nope", "bad"))
        m = await recv(ws)
        assert m["Type"] == "SyncReply" and m["Status"] == 400 and m["UUID"] == "bad"
        await ws.send_str(msg("SyncRequest", {"GremlinFilter": "G.V().Has("}, "bad2"))
        m = await recv(ws)
        assert m["Status"] == 400 and isinstance(m["Obj"], str)
        await ws.send_str(msg("SyncRequest", {"GremlinFilter": "G.V()"}, "bad3"))    # not a graph
        m = await recv(ws)
        assert m["Status"] == 400 and "did not return a graph" in m["Obj"]
        await ws.close()
    run_with_analyzer(analyzer_config(tmp_path), body)


def test_subscriber_gremlin_filter(tmp_path):
    async def body(c):
        await c.json("POST", "/api/node", node("ns1", "ns1", "netns", Path="/run/netns/ns1"), expect=201)
        await c.json("POST", "/api/node", node("v1", "veth1", "veth"), expect=201)
        # a filter that does not return a graph: socket closed right after the upgrade
        bad = await c.session.ws_connect(c.ws_url("/ws/subscriber"),
                                         headers=hdrs("f0", **{"X-Gremlin-Filter": "G.V().Has('Type','netns')"}))
        m = await bad.receive(timeout=3)
        assert m.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        flt = "G.V().Has('Type','netns').SubGraph()"
        ws = await c.session.ws_connect(c.ws_url("/ws/subscriber"), headers=hdrs("f1", **{"X-Gremlin-Filter": flt}))
        reply = (await sync(ws))[-1]
        assert [n["ID"] for n in reply["Obj"]["Nodes"]] == ["ns1"]
        await c.json("POST", "/api/node", node("v2", "veth2", "veth"), expect=201)       # outside the filter
        await c.json("POST", "/api/node", node("ns2", "ns2", "netns", Path="/p"), expect=201)
        m = await recv(ws)
        assert m["Type"] == "NodeAdded" and m["Obj"]["ID"] == "ns2"
        await c.json("PATCH", "/api/node/ns2", [{"op": "add", "path": "/Metadata/k", "value": "v"}])
        m = await recv(ws)
        assert m["Type"] == "NodeUpdated" and m["Obj"]["Metadata"]["k"] == "v"
        await c.json("PATCH", "/api/node/v1", [{"op": "add", "path": "/Metadata/k", "value": "v"}])
        await c.req("DELETE", "/api/node/ns2")
        m = await recv(ws)
        assert m["Type"] == "NodeDeleted" and m["Obj"]["ID"] == "ns2"
        assert await nothing_more(ws)
        # filter via query parameter; SyncRequest with "" resets to the whole graph
        ws2 = await c.session.ws_connect(c.ws_url("/ws/subscriber?x-gremlin-filter=" + flt.replace("'", "%27")),
                                         headers=hdrs("f2"))
        assert [n["ID"] for n in (await sync(ws2))[-1]["Obj"]["Nodes"]] == ["ns1"]
        whole = (await sync(ws2, flt=""))[-1]
        assert {n["ID"] for n in whole["Obj"]["Nodes"]} == {"ns1", "v1", "v2"}
        await c.json("POST", "/api/node", node("v3", "veth3", "veth"), expect=201)
        assert (await recv(ws2))["Obj"]["ID"] == "v3"
        # SyncRequest installing a filter
        sub = (await sync(ws2, flt="G.V().Has('Name','veth3').SubGraph()"))[-1]
        assert [n["ID"] for n in sub["Obj"]["Nodes"]] == ["v3"]
        await c.json("POST", "/api/node", node("v4", "veth4", "veth"), expect=201)
        assert await nothing_more(ws2)
        # history snapshot on SyncRequest Time
        at = (await sync(ws2, flt="", Time=1))[-1]
        assert at["Status"] == 200 and at["Obj"]["Nodes"] == []
        await ws.close()
        await ws2.close()
    run_with_analyzer(analyzer_config(tmp_path), body)


def test_partial_update_policy(tmp_path):
    async def body(c):
        await c.json("POST", "/api/node", node("n1", "one", Deep={"a": 1}), expect=201)
        ws = await c.session.ws_connect(c.ws_url("/ws/subscriber"),
                                        headers=hdrs("p1", **{"X-Update-Policy": "partial"}))
        await c.json("PATCH", "/api/node/n1", [{"op": "add", "path": "/Metadata/x", "value": 5},
                                               {"op": "remove", "path": "/Metadata/Deep"}])
        m = await recv(ws)
        assert m["Type"] == "NodePartiallyUpdated"
        obj = m["Obj"]
        assert obj["ID"] == "n1" and obj["Revision"] == 1 and isinstance(obj["UpdatedAt"], int)
        ops = {(o["Type"], o["Key"]): o.get("Value") for o in obj["Ops"]}
        assert ops == {(1, "x"): 5, (2, "Deep"): None}
        await ws.close()
    run_with_analyzer(analyzer_config(tmp_path), body)


def test_publisher_semantics(tmp_path):
    """Gotcha 9: origin forced, invalid elements dropped, NodeUpdated needs a higher Revision."""
    async def body(c):
        pub = await c.session.ws_connect(c.ws_url("/ws/publisher"), headers=hdrs("pub1", "mytype"))
        await pub.send_str(msg("NodeAdded", dict(full("p1", "one"), Origin="spoofed")))
        await pub.send_str(msg("NodeAdded", full("p2", "two")))
        await pub.send_str(msg("NodeAdded", {"ID": "bad1", "Metadata": {"Name": "no type"}}))
        await pub.send_str(msg("NodeAdded", {"ID": "bad2", "Metadata": {"Name": "x", "Type": "netns"}}))
        await pub.send_str(msg("NodeAdded", {"Metadata": {"Name": "x", "Type": "t"}}))
        await pub.send_str("this is not json")
        await pub.send_str(msg("EdgeAdded", edge("pe1", "p1", "p2")))
        await pub.send_str(msg("EdgeAdded", {"ID": "bade", "Parent": "", "Child": "", "Metadata": {"RelationType": "l"}}))
        await pub.send_str(msg("EdgeAdded", edge("bade2", "p1", "missing")))
        await pub.send_str(msg("NodeUpdated", full("p1", "one", rev=1, changed=True)))    # same revision: ignored
        await pub.send_str(msg("NodeUpdated", full("p2", "two", rev=5, changed=True)))
        await asyncio.sleep(0.3)
        nodes = await c.json("GET", "/api/node")
        assert set(nodes) == {"p1", "p2"}
        assert nodes["p1"]["Origin"] == "mytype.pub1"
        assert "changed" not in nodes["p1"]["Metadata"]
        assert nodes["p2"]["Metadata"]["changed"] is True and nodes["p2"]["Revision"] == 5
        assert set(await c.json("GET", "/api/edge")) == {"pe1"}
        status = await c.json("GET", "/api/status")
        assert "pub1" in status["Publishers"]
        # SyncRequest on a publisher gets the whole graph
        reply = (await sync(pub))[-1]
        assert {n["ID"] for n in reply["Obj"]["Nodes"]} == {"p1", "p2"}
        # Sync replaces everything of this origin
        await pub.send_str(msg("Sync", {"Nodes": [full("p3", "three")], "Edges": []}))
        await asyncio.sleep(0.3)
        assert set(await c.json("GET", "/api/node")) == {"p3"}
        await pub.send_str(msg("NodeDeleted", {"ID": "p3"}))
        await asyncio.sleep(0.2)
        assert await c.json("GET", "/api/node") == {}
        await pub.send_str(msg("NodeAdded", full("p4", "four")))
        await asyncio.sleep(0.2)
        await pub.close()
        await asyncio.sleep(0.2)
        assert set(await c.json("GET", "/api/node")) == {"p4"}     # Persistent by default
        # DeleteOnDisconnect removes the publisher's elements when it leaves
        pub2 = await c.session.ws_connect(c.ws_url("/ws/publisher"),
                                          headers=hdrs("pub2", **{"X-Persistence-Policy": "DeleteOnDisconnect"}))
        await pub2.send_str(msg("NodeAdded", full("q1", "q")))
        await asyncio.sleep(0.2)
        assert "q1" in await c.json("GET", "/api/node")
        await pub2.close()
        await asyncio.sleep(0.3)
        assert set(await c.json("GET", "/api/node")) == {"p4"}
    run_with_analyzer(analyzer_config(tmp_path), body)


def test_pubsub_does_not_echo(tmp_path):
    async def body(c):
        ps = await c.session.ws_connect(c.ws_url("/ws/pubsub"), headers=hdrs("ps1"))
        other = await c.session.ws_connect(c.ws_url("/ws/subscriber"), headers=hdrs("o1"))
        await ps.send_str(msg("NodeAdded", full("x1", "x")))
        m = await recv(other)
        assert m["Type"] == "NodeAdded" and m["Obj"]["Origin"] == "test-client.ps1"
        assert await nothing_more(ps)        # own change not echoed
        await c.json("POST", "/api/node", node("x2", "y"), expect=201)
        m = await recv(ps)
        assert m["Type"] == "NodeAdded" and m["Obj"]["ID"] == "x2"
        reply = (await sync(ps))[-1]
        assert {n["ID"] for n in reply["Obj"]["Nodes"]} == {"x1", "x2"}
        await ps.close()
        await other.close()
    run_with_analyzer(analyzer_config(tmp_path), body)


def test_agent_link(tmp_path):
    async def body(c):
        h = hdrs("agent1", "agent", **{"X-Persistence-Policy": "DeleteOnDisconnect"})
        ag = await c.session.ws_connect(c.ws_url("/ws/agent/topology"), headers=h)
        host = dict(full("host1", "agent1", "host"), Origin="agent.agent1", Host="agent1")
        eth = dict(full("eth0", "eth0", "veth"), Origin="agent.agent1", Host="agent1")
        noname = {"ID": "raw", "Metadata": {"Type": "whatever"}, "Origin": "agent.agent1", "Host": "agent1",
                  "Revision": 1}
        own = dict(edge("o1", "host1", "eth0", "ownership"), Origin="agent.agent1", Revision=1)
        await ag.send_str(msg("Sync", {"Nodes": [host, eth, noname], "Edges": [own]}))
        await ag.send_str(msg("NodePartiallyUpdated", {"ID": "eth0", "UpdatedAt": 5000, "Revision": 2,
                                                        "Ops": [{"Type": 1, "Key": "MTU", "Value": 1500},
                                                                {"Type": 1, "Key": "Features.tso", "Value": True}]}))
        await ag.send_str(msg("NodePartiallyUpdated", {"ID": "eth0", "UpdatedAt": 6000, "Revision": 2,
                                                        "Ops": [{"Type": 1, "Key": "MTU", "Value": 9000}]}))
        await asyncio.sleep(0.3)
        nodes = await c.json("GET", "/api/node")
        assert set(nodes) == {"host1", "eth0", "raw"}          # no schema validation for agents
        assert nodes["eth0"]["Origin"] == "agent.agent1"       # origin kept
        md = nodes["eth0"]["Metadata"]
        assert md["MTU"] == 1500 and md["Features"] == {"tso": True}    # stale revision ignored
        assert nodes["eth0"]["Revision"] == 2 and nodes["eth0"]["UpdatedAt"] == 5000
        assert await c.query("G.V('host1').Out().Values('Name')") == ["eth0"]
        status = await c.json("GET", "/api/status")
        st = status["Agents"]["agent1"]
        assert st["ServiceType"] == "agent" and st["IsConnected"] is True and st["Addr"] == "127.0.0.1"
        assert isinstance(st["Port"], int) and st["ConnectTime"].endswith("Z")
        # the analyzer can send a request on the agent's socket and await the correlated reply
        conn = c.analyzer.ws.server.get(AGENT, "agent1")

        async def agent_side():
            while True:
                m = await recv(ag)
                if m["Namespace"] == "OnDemandCapture":
                    await ag.send_str(json.dumps({"Namespace": "OnDemandCapture", "Type": "StartReply",
                                                  "UUID": m["UUID"], "Status": 200, "Obj": m["Obj"]}))
                    return m
        task = asyncio.ensure_future(agent_side())
        reply = await conn.request("OnDemandCapture", "Start", {"NodeID": "eth0", "Resource": {}}, timeout=5)
        assert reply["Type"] == "StartReply" and reply["Status"] == 200 and reply["Obj"]["NodeID"] == "eth0"
        await task
        # reconnecting with the same host id while connected: 409
        with pytest.raises(aiohttp.WSServerHandshakeError) as exc:
            await c.session.ws_connect(c.ws_url("/ws/agent/topology"), headers=h)
        assert exc.value.status == 409
        await ag.close()
        await asyncio.sleep(0.3)
        assert await c.json("GET", "/api/node") == {}          # DeleteOnDisconnect
        assert (await c.json("GET", "/api/status"))["Agents"] == {}
    run_with_analyzer(analyzer_config(tmp_path), body)


def test_slow_subscriber_is_dropped_not_the_analyzer(tmp_path):
    cfg = analyzer_config(tmp_path, backend="memory", http={"ws": {"queue_size": 50}})

    async def body(c):
        slow = await c.session.ws_connect(c.ws_url("/ws/subscriber"), headers=hdrs("slow"))
        fast = await c.session.ws_connect(c.ws_url("/ws/subscriber"), headers=hdrs("fast"))
        g = c.analyzer.graph
        # 500 events in one go: more than the 50-message queue can hold
        for i in range(500):
            g.new_node({"Name": "n%d" % i, "Type": "fabric", "Pad": "x" * 2000})
        conn = c.analyzer.ws.server.get("/ws/subscriber", "slow")
        assert conn is None or conn.dropped
        got = 0
        while True:
            m = await slow.receive(timeout=5)
            if m.type != aiohttp.WSMsgType.TEXT:
                break
            got += 1
        assert got <= 50
        assert slow.closed
        # the analyzer is fine and serves new subscribers
        assert (await c.json("GET", "/api"))["Service"] == "analyzer"
        await fast.close()
    run_with_analyzer(cfg, body)


def test_bulk_frames_and_shared_serialisation(tmp_path):
    cfg = analyzer_config(tmp_path, backend="memory")

    async def body(c):
        bulk = await c.session.ws_connect(c.ws_url("/ws/subscriber"), headers=hdrs("b1", **{"X-Bulk-Messages": "1"}))
        plain = [await c.session.ws_connect(c.ws_url("/ws/subscriber"), headers=hdrs("s%d" % i)) for i in range(3)]
        bc = c.analyzer.ws.broadcaster
        before = bc.frames_built
        for i in range(20):
            c.analyzer.graph.new_node({"Name": "n%d" % i, "Type": "fabric"})
        assert bc.frames_built - before == 20         # one serialisation per event, shared by 4 clients
        seen = []
        while len(seen) < 20:
            m = await bulk.receive(timeout=3)
            data = json.loads(m.data)
            seen.extend(data if isinstance(data, list) else [data])
        assert [m["Obj"]["Metadata"]["Name"] for m in seen] == ["n%d" % i for i in range(20)]
        for ws in plain:
            names = [(await recv(ws))["Obj"]["Metadata"]["Name"] for _ in range(20)]
            assert names == ["n%d" % i for i in range(20)]
            await ws.close()
        # a bulk frame from a publisher is applied message by message
        pub = await c.session.ws_connect(c.ws_url("/ws/publisher"), headers=hdrs("bp"))
        await pub.send_str("[%s,%s]" % (msg("NodeAdded", full("k1", "k1")), msg("NodeAdded", full("k2", "k2"))))
        await asyncio.sleep(0.2)
        assert {"k1", "k2"} <= set(await c.json("GET", "/api/node"))
        await pub.close()
        await bulk.close()
    run_with_analyzer(cfg, body)
