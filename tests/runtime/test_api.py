"""REST API of the analyzer: status codes, bodies and content types of spec §1, gotchas of §13."""

import asyncio
import base64
import hashlib
import json

import aiohttp
import pytest

from skydive_runtime.api.auth import md5_crypt, verify_htpasswd
from skydive_runtime.api.jsonpatch import PatchError, apply_patch

from tests.runtime.test_api_support import analyzer_config, edge, node, run_with_analyzer

pytestmark = pytest.mark.timeout(120)


def test_info_status_and_config(tmp_path):
    async def body(c):
        info = await c.json("GET", "/api")
        assert info == {"Host": "test-analyzer", "Version": "0.28.0", "Service": "analyzer"}
        status = await c.json("GET", "/api/status")
        assert set(status) >= {"Agents", "Peers", "Publishers", "Subscribers", "Alerts", "Captures", "Probes"}
        assert status["Alerts"] == {"IsMaster": True} and status["Captures"] == {"IsMaster": True}
        assert await c.json("GET", "/api/config/analyzer.listen") == "127.0.0.1:0"
        assert await c.json("GET", "/api/config/no.such.key") == ""
        assert await c.json("GET", "/api/config/http.ws") == {
            "ping_delay": 1, "pong_timeout": 5, "queue_size": 10000, "bulk_maxmsgs": 100, "bulk_maxdelay": 0.02,
            "enable_write_compression": False}
        assert await c.json("GET", "/api/config/auth.basic") == ""     # secrets are never served
    run_with_analyzer(analyzer_config(tmp_path), body)


def test_topology_endpoint(tmp_path):
    """Gotchas 4 and 5: Accept echoed into Content-Type, 204 on empty query, result shapes."""
    async def body(c):
        await c.json("POST", "/api/node", node("n1", "a", MTU=1500), expect=201)
        await c.json("POST", "/api/node", node("n2", "b"), expect=201)
        await c.json("POST", "/api/edge", edge("e1", "n1", "n2"), expect=201)
        status, headers, data = await c.req("POST", "/api/topology", {"GremlinQuery": "G.V().Count()"})
        assert status == 200 and headers["Content-Type"] == "application/json; charset=UTF-8"
        assert data == b"2"
        status, headers, data = await c.req("POST", "/api/topology", {"GremlinQuery": "G"})
        g = json.loads(data)
        assert isinstance(g, list) and len(g) == 1 and set(g[0]) == {"Nodes", "Edges"}
        assert await c.query("G.V().Values('Foo')") is None
        assert await c.query("G.V().Has('Name','zz')") == []
        assert await c.query("G.V('n1').OutE().InV().Values('Name')") == ["a"]     # InV = parent
        assert await c.query("G.V('n1').OutE().OutV().Values('Name')") == ["b"]    # OutV = child
        status, headers, data = await c.req("POST", "/api/topology", {"GremlinQuery": ""})
        assert status == 204 and data == b""
        status, headers, data = await c.req("POST", "/api/topology", {})
        assert status == 204
        status, headers, data = await c.req("POST", "/api/topology", {"GremlinQuery": "G.V().Bogus()"})
        assert status == 400 and headers["Content-Type"] == "text/plain; charset=utf-8"
        assert b"Bogus" in data and data.endswith(b"\n")
        status, _, data = await c.req("POST", "/api/topology", raw="{not json")
        assert status == 400
        status, _, data = await c.req("POST", "/api/topology", {"GremlinQuery": 12})
        assert status == 400
        status, headers, data = await c.req("POST", "/api/topology", {"GremlinQuery": "G"},
                                            headers={"Accept": "text/vnd.graphviz"})
        assert status == 200 and headers["Content-Type"] == "text/vnd.graphviz; charset=UTF-8"
        assert data.startswith(b"digraph")
        status, headers, data = await c.req("POST", "/api/topology", {"GremlinQuery": "G.V().Count()"},
                                            headers={"Accept": "application/x-custom"})
        assert headers["Content-Type"] == "application/x-custom; charset=UTF-8"
        status, headers, data = await c.req("GET", "/api/topology")
        assert status == 200
        whole = json.loads(data)
        assert {n["ID"] for n in whole["Nodes"]} == {"n1", "n2"} and len(whole["Edges"]) == 1
        # history is refused on the memory backend? no: sqlite is the default and answers At()
        assert await c.query("G.At('-1s').V().Count()") == 0
    run_with_analyzer(analyzer_config(tmp_path), body)


def test_memory_backend_has_no_history(tmp_path):
    async def body(c):
        status, _, data = await c.req("POST", "/api/topology", {"GremlinQuery": "G.At('-1m').V()"})
        assert status == 400 and b"Backend does not support history" in data
    run_with_analyzer(analyzer_config(tmp_path, backend="memory"), body)


def test_node_edge_rest(tmp_path):
    """§1.6: required fields, conflicts, defaults, JSON patch with Name/Type/TID protection."""
    async def body(c):
        status, _, data = await c.req("POST", "/api/node", {"Metadata": {"Name": "x", "Type": "t"}})
        assert status == 400 and b"No ID found for graph element" in data
        status, _, data = await c.req("POST", "/api/node", {"ID": "x", "Metadata": {"Type": "t"}})
        assert status == 400 and b"Name" in data
        status, _, data = await c.req("POST", "/api/node", {"ID": "x", "Metadata": {"Name": "n", "Type": "netns"}})
        assert status == 400 and b"Path" in data
        created = await c.json("POST", "/api/node", node("n1", "a", TID="tid-1"), expect=201)
        assert created["Origin"] == "api.test-analyzer" and created["DeletedAt"] is None
        assert isinstance(created["CreatedAt"], int) and created["CreatedAt"] > 0
        status, _, data = await c.req("POST", "/api/node", node("n1", "a"))
        assert status == 400 and b"Node ID conflict" in data
        await c.json("POST", "/api/node", node("n2", "b"), expect=201)
        status, _, data = await c.req("POST", "/api/edge", {"ID": "e", "Parent": "n1", "Child": "n2", "Metadata": {}})
        assert status == 400 and b"RelationType" in data
        status, _, data = await c.req("POST", "/api/edge", {"ID": "e", "Metadata": {"RelationType": "x"}})
        assert status == 400 and b"parent ID wrong format" in data
        status, _, data = await c.req("POST", "/api/edge", edge("e", "n1", "nope"))
        assert status == 400 and b"Child node not found" in data
        await c.json("POST", "/api/edge", edge("e1", "n1", "n2"), expect=201)
        status, _, data = await c.req("POST", "/api/edge", edge("e1", "n1", "n2"))
        assert status == 400 and b"Edge ID conflict" in data
        # list = object keyed by ID (gotcha 1)
        nodes = await c.json("GET", "/api/node")
        assert isinstance(nodes, dict) and set(nodes) == {"n1", "n2"}
        assert (await c.json("GET", "/api/node/n1"))["Metadata"]["TID"] == "tid-1"
        # PATCH
        p = await c.json("PATCH", "/api/node/n1", [{"op": "add", "path": "/Metadata/Color", "value": "red"}])
        assert p["Revision"] == 1 and p["Metadata"]["Color"] == "red" and p["UpdatedAt"] >= created["UpdatedAt"]
        for op in ([{"op": "replace", "path": "/Metadata/Name", "value": "zz"}],
                   [{"op": "replace", "path": "/Metadata/TID", "value": "zz"}],
                   [{"op": "replace", "path": "/Metadata/Type", "value": "zz"}],
                   [{"op": "replace", "path": "/Host", "value": "other"}],
                   [{"op": "add", "path": "/Metadata/Color", "value": "red"}]):
            status, _, data = await c.req("PATCH", "/api/node/n1", op)
            assert status == 304 and data == b"", op
        status, _, data = await c.req("PATCH", "/api/node/n1", [{"op": "remove", "path": "/Metadata/Name"}])
        assert status == 400 and b"validating patched resource" in data and b"Name" in data
        status, _, data = await c.req("PATCH", "/api/node/n1", [{"op": "foobar", "path": "/Metadata/x"}])
        assert status == 400
        status, _, data = await c.req("PATCH", "/api/node/unknown", [{"op": "add", "path": "/Metadata/x", "value": 1}])
        assert status == 404 and data == b""
        p = await c.json("PATCH", "/api/node/n1", [{"op": "remove", "path": "/Metadata/Color"}])
        assert "Color" not in p["Metadata"] and p["Revision"] == 2
        e = await c.json("PATCH", "/api/edge/e1", [{"op": "add", "path": "/Metadata/Name", "value": "x"}])
        assert e["Metadata"]["Name"] == "x"
        # DELETE: 200 empty text/plain; node delete removes its edges
        status, headers, data = await c.req("DELETE", "/api/node/n1")
        assert status == 200 and data == b"" and headers["Content-Type"].startswith("text/plain")
        assert await c.json("GET", "/api/edge") == {}
        status, _, data = await c.req("DELETE", "/api/node/n1")
        assert status == 404 and data == b"Node 'n1' not found\n"
        status, _, data = await c.req("GET", "/api/edge/e1")
        assert status == 404 and data == b"Edge 'e1' not found\n"
    run_with_analyzer(analyzer_config(tmp_path), body)


def test_yaml_body_and_ttl(tmp_path):
    async def body(c):
        yaml_body = "GremlinQuery: G.V().Has('Name', 'y')\nName: from-yaml\n"
        status, _, data = await c.req("POST", "/api/capture", raw=yaml_body,
                                      headers={"Content-Type": "application/yaml"})
        assert status == 201
        cap = json.loads(data)
        assert cap["Name"] == "from-yaml" and cap["LayerKeyMode"] == "L2" and len(cap["UUID"]) == 36
        status, _, data = await c.req("POST", "/api/capture", raw="a: [unclosed",
                                      headers={"Content-Type": "application/yaml"})
        assert status == 400
        status, _, data = await c.req("POST", "/api/alert", {"Expression": "G.V()"},
                                      headers={"X-Resource-TTL": "forever"})
        assert status == 400 and data.startswith(b"invalid ttl")
        a = await c.json("POST", "/api/alert", {"Expression": "G.V().Has('Name','ttl')"}, expect=201,
                         headers={"X-Resource-TTL": "1s"})
        assert a["UUID"] in await c.json("GET", "/api/alert")
        await asyncio.sleep(2.3)
        assert a["UUID"] not in await c.json("GET", "/api/alert")
        status, _, _ = await c.req("GET", "/api/alert/" + a["UUID"])
        assert status == 404
    run_with_analyzer(analyzer_config(tmp_path), body)


def test_capture_validation_duplicates_and_count(tmp_path):
    """§5.6 and gotcha 11."""
    async def body(c):
        bad = [({"GremlinQuery": ""}, b"GremlinQuery"),
               ({"GremlinQuery": "G.V().Nope("}, b"GremlinQuery"),
               ({"GremlinQuery": "G.V()", "HeaderSize": 10}, b"HeaderSize"),
               ({"GremlinQuery": "G.V()", "HeaderSize": 5000}, b"HeaderSize"),
               ({"GremlinQuery": "G.V()", "RawPacketLimit": 11}, b"RawPacketLimit"),
               ({"GremlinQuery": "G.V()", "RawPacketLimit": -1}, b"RawPacketLimit"),
               ({"GremlinQuery": "G.V()", "LayerKeyMode": "L4"}, b"LayerKeyMode"),
               ({"GremlinQuery": "G.V()", "Type": "nope"}, b"Type"),
               ({"GremlinQuery": "G.V()", "Target": "not an address"}, b"Target"),
               ({"GremlinQuery": "G.V()", "Type": "ebpf", "BPFFilter": "icmp"}, b"doesn't support BPF"),
               ({"GremlinQuery": "G.V()", "SamplingRate": "x"}, b"SamplingRate"),
               ({"GremlinQuery": "G.V()", "BPFFilter": "icmp and and"}, b"BPFFilter"),
               ("just a string", b"JSON object")]
        for b, text in bad:
            status, _, data = await c.req("POST", "/api/capture", b)
            assert status == 400 and text in data, (b, data)
        assert await c.json("GET", "/api/capture") == {}     # nothing stored by bad input
        c1 = await c.json("POST", "/api/capture", {"GremlinQuery": "G.V().Has('Name','a')", "HeaderSize": 14},
                          expect=201)
        assert c1["Count"] == 0 and c1["HeaderSize"] == 14 and "BPFFilter" not in c1
        status, _, data = await c.req("POST", "/api/capture", {"GremlinQuery": "G.V().Has('Name','a')"})
        assert status == 409 and data == b"duplicated resource\n"
        # afpacket (default type) supports several captures per node with different BPF filters
        await c.json("POST", "/api/capture", {"GremlinQuery": "G.V().Has('Name','a')", "BPFFilter": "icmp"},
                     expect=201)
        status, _, _ = await c.req("POST", "/api/capture", {"GremlinQuery": "G.V().Has('Name','a')",
                                                          "BPFFilter": "icmp"})
        assert status == 409
        # single-per-node types collide on (query, type) whatever the BPF filter
        await c.json("POST", "/api/capture", {"GremlinQuery": "G.V()", "Type": "pcapsocket"}, expect=201)
        status, _, _ = await c.req("POST", "/api/capture", {"GremlinQuery": "G.V()", "Type": "pcapsocket",
                                                          "BPFFilter": "tcp"})
        assert status == 409
        # Count comes from the nodes' Captures[].State == active at GET time
        await c.json("POST", "/api/node", node("n1", "a", Captures=[{"ID": c1["UUID"], "State": "active"}]),
                     expect=201)
        await c.json("POST", "/api/node", node("n2", "a", Captures=[{"ID": c1["UUID"], "State": "error"}]),
                     expect=201)
        assert (await c.json("GET", "/api/capture/" + c1["UUID"]))["Count"] == 1
        assert (await c.json("GET", "/api/capture"))[c1["UUID"]]["Count"] == 1
        status, _, data = await c.req("PATCH", "/api/capture/" + c1["UUID"],
                                      [{"op": "add", "path": "/Name", "value": "x"}])
        assert status == 400 and data == b"resource not updatable\n"
        status, _, data = await c.req("PATCH", "/api/capture/nope", [])
        assert status == 404
    run_with_analyzer(analyzer_config(tmp_path), body)


def test_alert_injection_workflow_rules_validation(tmp_path):
    async def body(c):
        status, _, data = await c.req("POST", "/api/alert", {"Expression": ""})
        assert status == 400
        status, _, data = await c.req("POST", "/api/alert", {"Expression": "G.V()", "Trigger": "sometimes"})
        assert status == 400 and b"Trigger" in data
        a = await c.json("POST", "/api/alert", {"Expression": "G.V()", "Trigger": "duration:10s",
                                                "Action": "https://x"}, expect=201)
        assert a["CreateTime"].endswith("Z") and "T" in a["CreateTime"]      # RFC3339 (gotcha 12)
        assert "Name" not in a
        # injections
        status, _, data = await c.req("POST", "/api/injectpacket", {"Src": "G.V().Has('Name','src')",
                                                                  "Type": "icmp9"})
        assert status == 400 and b"given type is not supported" in data
        status, _, data = await c.req("POST", "/api/injectpacket", {"Src": "G.V().Has('Name','src')",
                                                                  "Mode": "loud"})
        assert status == 400 and b"given mode is not supported" in data
        status, _, data = await c.req("POST", "/api/injectpacket", {"Src": "G.V().Has('Name','src')",
                                                                  "SrcIP": "300.1.1.1"})
        assert status == 400 and b"SrcIP" in data
        status, _, data = await c.req("POST", "/api/injectpacket", {"Src": "G.V().Has('Name','src')"})
        assert status == 400 and b"source node" in data
        await c.json("POST", "/api/node", node("s", "src", "veth", IPV4=["10.0.0.1/24"], MAC="aa:bb:cc:dd:ee:01"),
                     expect=201)
        await c.json("POST", "/api/node", node("d", "dst", "veth", IPV4=["10.0.0.2/24"], MAC="aa:bb:cc:dd:ee:02"),
                     expect=201)
        # the Python client's body: Increment (ignored), no Mode
        inj = await c.json("POST", "/api/injectpacket", {
            "Src": "G.V().Has('Name','src')", "Dst": "G.V().Has('Name','dst')", "SrcPort": 0, "DstPort": 0,
            "SrcIP": "", "DstIP": "", "SrcMAC": "", "DstMAC": "", "Type": "icmp4", "Count": 3, "ICMPID": 0,
            "Interval": 1000, "Payload": "", "Increment": False, "TTL": 64}, expect=201)
        assert inj["StartTime"] == "0001-01-01T00:00:00Z" and inj["Pcap"] is None and "Increment" not in inj
        assert inj["IncrementPayload"] == 0 and inj["Mode"] == "" and inj["Count"] == 3
        assert set(await c.json("GET", "/api/injectpacket")) == {inj["UUID"]}
        # workflows
        status, _, data = await c.req("POST", "/api/workflow", {"Source": "function() {}"})
        assert status == 400 and b"Name" in data
        status, _, data = await c.req("POST", "/api/workflow", {"Name": "wf", "Source": "function() {}",
                                                                "Parameters": [{"Name": "a", "Type": "node"}]})
        assert status == 400 and b"user workflows are JavaScript, which this analyzer does not run" in data
        # rules
        status, _, data = await c.req("POST", "/api/noderule", {"Action": "delete", "Metadata": {}})
        assert status == 400
        status, _, data = await c.req("POST", "/api/noderule", {"Action": "create", "Metadata": {"Name": "x"}})
        assert status == 400
        status, _, data = await c.req("POST", "/api/noderule", {"Action": "update", "Query": "G.V()",
                                                              "Metadata": {"Name": "x"}})
        assert status == 400 and b"Name and Type fields can not be changed" in data
        status, _, data = await c.req("POST", "/api/edgerule", {"Src": "G.V()", "Dst": "G.V()", "Metadata": {}})
        assert status == 400 and b"RelationType" in data
        status, _, data = await c.req("POST", "/api/edgerule", {"Src": "G.V(", "Dst": "G.V()",
                                                              "Metadata": {"RelationType": "layer2"}})
        assert status == 400 and b"Src" in data
        r = await c.json("POST", "/api/noderule", {"Action": "create", "Metadata": {"Name": "x", "Type": "t"},
                                                   "UUID": "client-chosen"}, expect=201)
        assert r["UUID"] != "client-chosen" and set(r) == {"UUID", "Name", "Description", "Metadata", "Action",
                                                           "Query"}
    run_with_analyzer(analyzer_config(tmp_path), body)


def test_resources_survive_restart(tmp_path):
    cfg = analyzer_config(tmp_path)

    async def first(c):
        cap = await c.json("POST", "/api/capture", {"GremlinQuery": "G.V().Has('Name','p')"}, expect=201)
        rule = await c.json("POST", "/api/noderule", {"Action": "create",
                                                      "Metadata": {"Name": "persisted", "Type": "fabric"}},
                            expect=201)
        short = await c.json("POST", "/api/alert", {"Expression": "G.V()"}, expect=201,
                             headers={"X-Resource-TTL": "1500ms"})
        return cap["UUID"], rule["UUID"], short["UUID"]

    cap_id, rule_id, short_id = run_with_analyzer(cfg, first)

    async def second(c):
        assert cap_id in await c.json("GET", "/api/capture")
        assert rule_id in await c.json("GET", "/api/noderule")
        # the rule's effect is back too
        assert len(await c.query("G.V().Has('Name','persisted')")) == 1
        await asyncio.sleep(2.2)
        assert short_id not in await c.json("GET", "/api/alert")   # TTL honoured across restart
        await c.json("GET", "/api/alert")
    run_with_analyzer(cfg, second)


def _basic_cfg(tmp_path, **users_file):
    return analyzer_config(
        tmp_path, analyzer={"auth": {"api": {"backend": "mybasic"}}},
        auth={"mybasic": dict({"type": "basic", "users": {"admin": "pass"}}, **users_file),
              "guests": {"type": "basic", "users": {"bob": "bobpw"}, "role": "guest"}})


def test_basic_auth_login_and_credentials(tmp_path):
    async def body(c):
        status, _, data = await c.req("GET", "/api/status")
        assert status == 401 and data == b"Wrong credentials\n"
        async with c.session.post(c.base + "/login", data={"username": "admin", "password": "bad"}) as r:
            assert r.status == 401 and await r.text() == "Wrong credentials\n"
        async with c.session.post(c.base + "/login", data={}) as r:
            assert r.status == 401 and await r.text() == "No credentials provided\n"
        async with c.session.post(c.base + "/login", data={"username": "admin", "password": "pass"},
                                  headers={"Origin": c.base}) as r:
            assert r.status == 200
            body = await r.json()
            # a signed session token, never the password (upstream: base64 of user:password)
            assert body["Token"].startswith("sky1.") and "pass" not in base64.b64decode(
                body["Token"].split(".")[1] + "==").decode()
            assert any(p["Object"] == "capture" and p["Allowed"] for p in body["Permissions"])
            assert r.cookies["authtoken"].value == body["Token"]
            assert r.cookies["authtoken"]["httponly"] and r.cookies["authtoken"]["samesite"] == "Strict"
            assert "permissions" in r.cookies
            assert "Access-Control-Allow-Origin" not in r.headers    # no CORS unless http.allowed_origins
        token = body["Token"]
        for hdrs in ({"Cookie": "authtoken=" + token}, {"X-Auth-Token": token},
                     {"Authorization": "Basic " + base64.b64encode(b"admin:pass").decode()}):
            status, _, _ = await c.req("GET", "/api/status", headers=hdrs)
            assert status == 200, hdrs
        status, _, _ = await c.req("GET", "/api/status?x-auth-token=" + token)
        assert status == 200
        status, _, _ = await c.req("GET", "/api/status", headers={"Authorization": "Basic bm9wZTpub3Bl"})
        assert status == 401
        async with c.session.get(c.base + "/login", allow_redirects=False) as r:
            assert r.status == 302 and r.headers["Location"] == "/"
    run_with_analyzer(_basic_cfg(tmp_path), body)


def test_rbac_guest_gets_405(tmp_path):
    cfg = analyzer_config(tmp_path, analyzer={"auth": {"api": {"backend": "guests"}}},
                          auth={"guests": {"type": "basic", "users": {"bob": "bobpw"}, "role": "guest"}})

    async def body(c):
        hdrs = {"Authorization": "Basic " + base64.b64encode(b"bob:bobpw").decode()}
        status, _, _ = await c.req("GET", "/api/status", headers=hdrs)
        assert status == 200
        status, _, _ = await c.req("POST", "/api/topology", {"GremlinQuery": "G.V()"}, headers=hdrs)
        assert status == 200
        status, _, data = await c.req("POST", "/api/capture", {"GremlinQuery": "G.V()"}, headers=hdrs)
        assert status == 405 and data == b"'bob' has no 'write' permission on 'capture'\n"
        status, _, _ = await c.req("DELETE", "/api/node/x", headers=hdrs)
        assert status == 405
        # websocket: subscriber allowed, publisher denied with 403 before the upgrade
        ws = await c.session.ws_connect(c.ws_url("/ws/subscriber"),
                                        headers=dict(hdrs, **{"X-Client-Type": "t", "X-Host-ID": "g1"}))
        await ws.close()
        with pytest.raises(aiohttp.WSServerHandshakeError) as exc:
            await c.session.ws_connect(c.ws_url("/ws/publisher"),
                                       headers=dict(hdrs, **{"X-Client-Type": "t", "X-Host-ID": "g2"}))
        assert exc.value.status == 403
        with pytest.raises(aiohttp.WSServerHandshakeError) as exc:
            await c.session.ws_connect(c.ws_url("/ws/subscriber"), headers={"X-Client-Type": "t"})
        assert exc.value.status == 401
    run_with_analyzer(cfg, body)


def test_htpasswd_file(tmp_path):
    sha = "{SHA}" + base64.b64encode(hashlib.sha1(b"shapw").digest()).decode()
    apr = md5_crypt("aprpw", "abcdefgh")
    path = tmp_path / "htpasswd"
    path.write_text("shauser:%s\napruser:%s\nplain:plainpw\n" % (sha, apr))

    async def body(c):
        for user, pw, ok in (("shauser", "shapw", True), ("shauser", "x", False), ("apruser", "aprpw", True),
                             ("apruser", "bad", False), ("plain", "plainpw", True), ("ghost", "x", False)):
            async with c.session.post(c.base + "/login", data={"username": user, "password": pw}) as r:
                assert (r.status == 200) == ok, (user, pw, r.status)
    run_with_analyzer(_basic_cfg(tmp_path, file=str(path)), body)


def test_apr1_known_vector():
    # the Apache documentation's example, also `openssl passwd -apr1 -salt r31..... myPassword`
    assert verify_htpasswd("myPassword", "$apr1$r31.....$HqJZimcKQFAMYayBlzkrA/")
    assert not verify_htpasswd("mypassword", "$apr1$r31.....$HqJZimcKQFAMYayBlzkrA/")
    assert md5_crypt("password", "abcdefgh") == "$apr1$abcdefgh$FBwExRW4dCc8aL.OvjpIE1"


def test_json_patch_rfc6902():
    doc = {"a": {"b": [1, 2]}, "c": "x"}
    assert apply_patch(doc, [{"op": "add", "path": "/a/b/-", "value": 3}])["a"]["b"] == [1, 2, 3]
    assert apply_patch(doc, [{"op": "move", "from": "/c", "path": "/d"}]) == {"a": {"b": [1, 2]}, "d": "x"}
    assert apply_patch(doc, [{"op": "copy", "from": "/c", "path": "/a/e"}])["a"]["e"] == "x"
    assert apply_patch(doc, [{"op": "test", "path": "/c", "value": "x"}, {"op": "remove", "path": "/c"}]) == \
        {"a": {"b": [1, 2]}}
    assert apply_patch(doc, [{"op": "add", "path": "/x~1y", "value": 1}])["x/y"] == 1
    for bad in ([{"op": "test", "path": "/c", "value": "y"}], [{"op": "remove", "path": "/zz"}],
                [{"op": "replace", "path": "/zz", "value": 1}], [{"op": "add", "path": "/a/b/9", "value": 1}],
                [{"op": "x", "path": "/c"}], {"op": "add"}, [{"op": "add", "path": "c", "value": 1}]):
        with pytest.raises(PatchError):
            apply_patch(doc, bad)
    assert doc == {"a": {"b": [1, 2]}, "c": "x"}      # never modified in place
