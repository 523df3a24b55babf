"""Node rules and edge rules: live effect on the analyzer graph (spec §1.7)."""

import asyncio
import uuid

import pytest

from tests.runtime.test_api_support import analyzer_config, node, run_with_analyzer

pytestmark = pytest.mark.timeout(120)


async def settle():
    await asyncio.sleep(0.1)


def test_noderule_create(tmp_path):
    async def body(c):
        r = await c.json("POST", "/api/noderule", {"Action": "create", "Name": "tor",
                                                   "Metadata": {"Name": "TOR1", "Type": "fabric", "Model": "x"}},
                         expect=201)
        await settle()
        expected_id = str(uuid.uuid5(uuid.NAMESPACE_OID, "fabric/TOR1"))
        nodes = await c.query("G.V().Has('Name','TOR1')")
        assert len(nodes) == 1
        n = nodes[0]
        assert n["ID"] == expected_id and n["Metadata"]["TID"] == expected_id
        assert n["Host"] == "" and n["Metadata"]["Probe"] == "fabric" and n["Metadata"]["Model"] == "x"
        # non-fabric types get no Probe
        await c.json("POST", "/api/noderule", {"Action": "create", "Metadata": {"Name": "sw", "Type": "switch"}},
                     expect=201)
        await settle()
        assert "Probe" not in (await c.query("G.V().Has('Name','sw')"))[0]["Metadata"]
        await c.req("DELETE", "/api/noderule/" + r["UUID"])
        await settle()
        assert await c.query("G.V().Has('Name','TOR1')") == []
    run_with_analyzer(analyzer_config(tmp_path, backend="memory"), body)


def test_noderule_update_reapplied_and_removed(tmp_path):
    async def body(c):
        await c.json("POST", "/api/node", node("b1", "br-umd", "ovsbridge"), expect=201)
        r = await c.json("POST", "/api/noderule", {"Action": "update", "Query": "G.V().Has('Type','ovsbridge')",
                                                   "Metadata": {"testKey": "testValue", "Nested": {"a": 1}}},
                         expect=201)
        await settle()
        assert len(await c.query("G.V().Has('testKey','testValue')")) == 1
        assert await c.query("G.V().Has('Nested.a', 1).Values('Name')") == ["br-umd"]
        # a matching node that appears later gets the metadata too
        await c.json("POST", "/api/node", node("b2", "br-late", "ovsbridge"), expect=201)
        await settle()
        assert sorted(await c.query("G.V().Has('testKey','testValue').Values('Name')")) == ["br-late", "br-umd"]
        # a non matching node is left alone
        await c.json("POST", "/api/node", node("x", "eth0", "veth"), expect=201)
        await settle()
        assert await c.query("G.V().Has('Name','eth0').Has('testKey')") == []
        await c.req("DELETE", "/api/noderule/" + r["UUID"])
        await settle()
        assert await c.query("G.V().Has('testKey')") == []
        assert len(await c.query("G.V().Has('Type','ovsbridge')")) == 2
    run_with_analyzer(analyzer_config(tmp_path, backend="memory"), body)


def test_edgerules(tmp_path):
    async def body(c):
        # created before its ends exist: applied as soon as they appear
        r1 = await c.json("POST", "/api/edgerule", {"Src": "G.V().Has('Name','a')", "Dst": "G.V().Has('Name','b')",
                                                    "Metadata": {"RelationType": "layer2", "Color": "blue"}},
                          expect=201)
        await settle()
        assert await c.query("G.E()") == []
        await c.json("POST", "/api/node", node("na", "a"), expect=201)
        await c.json("POST", "/api/node", node("nb", "b"), expect=201)
        await c.json("POST", "/api/node", node("nc", "c"), expect=201)
        await settle()
        edges = await c.query("G.E().Has('RelationType','layer2')")
        assert len(edges) == 1
        e = edges[0]
        assert e["Parent"] == "na" and e["Child"] == "nb" and e["Metadata"]["Color"] == "blue"
        assert e["ID"] == str(uuid.uuid5(uuid.NAMESPACE_OID, "na" + "nb" + "layer2"))
        # ownership: metadata dropped
        r2 = await c.json("POST", "/api/edgerule", {"Src": "G.V().Has('Name','a')", "Dst": "G.V().Has('Name','c')",
                                                    "Metadata": {"RelationType": "ownership", "Extra": 1}},
                          expect=201)
        await settle()
        own = await c.query("G.E().Has('RelationType','ownership')")
        assert len(own) == 1 and own[0]["Metadata"] == {"RelationType": "ownership"}
        assert await c.query("G.V('nc').InE().Has('RelationType','ownership').InV().Values('Name')") == ["a"]
        await c.req("DELETE", "/api/edgerule/" + r1["UUID"])
        await settle()
        assert await c.query("G.E().Has('RelationType','layer2')") == []
        await c.req("DELETE", "/api/edgerule/" + r2["UUID"])
        await settle()
        assert await c.query("G.E()") == []
        assert len(await c.query("G.V()")) == 3      # rule deletion never removes nodes
    run_with_analyzer(analyzer_config(tmp_path, backend="memory"), body)


def test_rules_expire_with_ttl(tmp_path):
    async def body(c):
        await c.json("POST", "/api/noderule", {"Action": "create", "Metadata": {"Name": "tmp", "Type": "fabric"}},
                     expect=201, headers={"X-Resource-TTL": "1s"})
        await settle()
        assert len(await c.query("G.V().Has('Name','tmp')")) == 1
        await asyncio.sleep(2.2)
        assert await c.json("GET", "/api/noderule") == {}
        assert await c.query("G.V().Has('Name','tmp')") == []     # the effect goes with the rule
    run_with_analyzer(analyzer_config(tmp_path), body)
