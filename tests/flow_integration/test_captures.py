"""Capture lifecycle: validation (400s), duplicates (409), Count, Stop on delete, re-apply on new
nodes, persistence across an analyzer restart, a captured interface that vanishes, malformed
flow messages from an agent link."""

import asyncio
import json

import aiohttp
import pytest
import requests

from tests.fixtures.processes import wait_until
from tests.fixtures.topology import Names
from tests.flow_integration.conftest import Pair, ping

pytestmark = pytest.mark.needs_root


@pytest.mark.parametrize("body,message", [
    ({"BPFFilter": "tcp port and and"}, "syntax error"),
    ({"BPFFilter": "icmp[icmptype] == "}, "syntax error"),
    ({"Type": "nosuchprobe"}, "unknown capture type"),
    ({"Type": "ebpf", "BPFFilter": "icmp"}, "ebpf capture doesn't support BPF filtering"),
    ({"Type": "ebpf", "RawPacketLimit": 3}, "ebpf capture doesn't support raw packet capture"),
    ({"HeaderSize": 13}, "HeaderSize"),
    ({"HeaderSize": 4097}, "HeaderSize"),
    ({"RawPacketLimit": 11}, "RawPacketLimit"),
    ({"LayerKeyMode": "L4"}, "LayerKeyMode"),
    ({"GremlinQuery": "G.V().Nope()"}, "Nope"),
])
def test_bad_captures_are_400(stack, body, message):
    data = dict({"GremlinQuery": "G.V().Has('Name','whatever')"}, **body)
    r = stack.create_capture(**data)
    assert r.status_code == 400, r.text
    assert message in r.text and "Traceback" not in r.text


def test_lifecycle_count_duplicate_reapply_stop(stack, net):
    names = Names("fl")      # every interface of this test, and only them, starts with fl<tag>
    p = Pair(net, names)
    nq = "G.V().Has('Name', Regex('fl%s.*'), 'Type', 'veth')" % names.tag
    cid = stack.capture(GremlinQuery=nq, BPFFilter="icmp", Name="life", Description="lifecycle")
    r = stack.create_capture(GremlinQuery=nq, BPFFilter="icmp")
    assert r.status_code == 409
    # afpacket allows several captures per node: another BPF is not a duplicate
    cid2 = stack.capture(GremlinQuery="G.V().Has('Name','%s')" % p.a, BPFFilter="udp")
    stack.wait_active(cid, nq, count=4)          # a, b, pa, pb
    stack.wait_active(cid2, "G.V().Has('Name','%s')" % p.a)
    entry = [c for c in stack.node(p.a)["Metadata"]["Captures"] if c["ID"] == cid][0]
    assert entry["Type"] == "afpacket" and entry["BPFFilter"] == "icmp" and entry["Name"] == "life"
    assert entry["Description"] == "lifecycle" and entry["State"] == "active"
    got = requests.get(stack.url + "/api/capture/" + cid, timeout=5).json()
    assert got["Count"] == 4
    # counters refreshed on the node
    ping(p.ns_a, p.ip_b, 3)
    wait_until(lambda: [c for c in stack.node(p.a)["Metadata"]["Captures"] if c["ID"] == cid][0]
               ["PacketsReceived"] >= 6, timeout=10, message="PacketsReceived on the node")
    # a matching interface created later gets the capture too
    ns_c = net.add_netns(names("nc"))
    c, pc = names("c"), names("pc")
    net.add_veth(pc, c, netns_b=ns_c)
    # (still down: AF_PACKET reports ENETDOWN -> State error with the reason, retried)
    stack.wait_q("G.V().Has('Name','%s').Has('Captures.ID','%s','Captures.State','error').Count()" % (pc, cid), 1)
    err = [x for x in stack.node(pc)["Metadata"]["Captures"] if x["ID"] == cid][0]["Error"]
    assert "down" in err.lower()
    net.ip("link", "set", pc, "up")
    net.ip("link", "set", c, "up", netns=ns_c)
    stack.wait_active(cid, nq, count=6)
    assert requests.get(stack.url + "/api/capture/" + cid, timeout=5).json()["Count"] == 6
    # delete: Stop everywhere, Captures removed (cid2 stays on a)
    assert stack.delete_capture(cid).status_code == 200
    stack.wait_q(nq + ".Has('Captures.ID', '%s').Count()" % cid, 0)
    assert [x["ID"] for x in stack.node(p.a)["Metadata"]["Captures"]] == [cid2]
    assert stack.q("G.V().Has('Name','%s').HasKey('Captures').Count()" % p.b) == 0
    assert stack.delete_capture(cid2).status_code == 200
    stack.wait_q("G.V().Has('Name','%s').HasKey('Captures').Count()" % p.a, 0)
    assert stack.delete_capture(cid).status_code == 404


def test_vanishing_interface_and_agent_survives(stack, net, names):
    p = Pair(net, names)
    nq = "G.V().Has('Name','%s')" % p.a
    cid = stack.capture(GremlinQuery=nq)
    stack.wait_active(cid, nq)
    ping(p.ns_a, p.ip_b, 2)
    stack.wait_q("G.Flows().Has('CaptureID','%s','ICMP.Type','ECHO').Values('Metric.ABPackets')" % cid, [2])
    # the namespace side of the veth disappears (the peer goes with it)
    net.ip("link", "del", p.a, netns=p.ns_a)
    stack.wait_q(nq + ".Count()", 0)
    assert stack.agent.proc.poll() is None
    assert requests.get(stack.agent.url + "/api", timeout=5).status_code == 200
    # the agent still captures elsewhere
    nq2 = "G.V().Has('Name','%s')" % p.b
    cid2 = stack.capture(GremlinQuery=nq2)
    stack.wait_active(cid2, nq2)
    stack.delete_capture(cid)
    stack.delete_capture(cid2)
    stack.wait_q(nq2 + ".HasKey('Captures').Count()", 0)


def test_malformed_flow_messages_do_not_hurt(stack):
    async def go():
        async with aiohttp.ClientSession() as s:
            async with s.ws_connect(stack.url.replace("http", "ws") + "/ws/agent/topology",
                                    headers={"X-Client-Type": "agent", "X-Host-ID": "fake-flow-agent"}) as ws:
                for obj in (None, 5, {"Flows": "x"}, {"Flows": [1, {"UUID": 3}, {"nope": 1}]},
                            {"Flows": [{"UUID": "00000000deadbeef", "Start": "x", "Last": []}]}):
                    await ws.send_str(json.dumps({"Namespace": "Flow", "Type": "FlowUpdate", "Obj": obj}))
                await ws.send_str("{not json")
                await asyncio.sleep(0.5)
    asyncio.new_event_loop().run_until_complete(go())
    assert stack.analyzer.proc.poll() is None
    assert isinstance(stack.q("G.Flows().Count()"), int)


def test_captures_persist_across_analyzer_restart(stack, net, names):
    p = Pair(net, names)
    nq = "G.V().Has('Name', Within('%s', '%s'))" % (p.a, p.b)
    cid = stack.capture(GremlinQuery=nq)
    stack.wait_active(cid, nq, count=2)
    stack.analyzer.stop()
    stack.analyzer.start()
    assert cid in requests.get(stack.url + "/api/capture", timeout=5).json()
    # the agent reconnects and resyncs; its probes kept running
    stack.wait_active(cid, nq, count=2, timeout=30)
    ping(p.ns_a, p.ip_b, 3)
    stack.wait_q("G.Flows().Has('CaptureID','%s','ICMP.Type','ECHO').Values('Metric.ABPackets')" % cid, [3, 3])
    # and the capture is still applied to nodes that appear after the restart
    p2 = Pair(net, names)
    assert stack.delete_capture(cid).status_code == 200
    nq2 = "G.V().Has('Name', '%s')" % p2.b
    cid2 = stack.capture(GremlinQuery=nq2)
    stack.wait_active(cid2, nq2)
    stack.delete_capture(cid2)
