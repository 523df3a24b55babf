"""Packet injection end to end (spec §6, §10.5 test_injections, §11 TestICMP / TestIPv6FlowHopsIPv6):
a real analyzer and agent, namespaces joined by a Linux bridge, injected packets seen by afpacket
captures with exact counts."""

import asyncio
import base64
import json
import os
import struct
import time

import aiohttp
import pytest
from skydive.rest.client import RESTClient

from tests.fixtures.processes import wait_until
from tests.flow_integration.conftest import Pair, sample_pcap
from skydive_runtime.flow import forge

pytestmark = [pytest.mark.needs_root, pytest.mark.timeout(300)]

ICMP4 = "Ethernet/IPv4/ICMPv4"


def _node_q(name):
    return "G.V().Has('Name','%s')" % name


def _capture(stack, name, **extra):
    cid = stack.capture(GremlinQuery=_node_q(name), **extra)
    stack.wait_active(cid, _node_q(name))
    return cid


def test_python_client_injection_list_delete_and_node_entries(stack, net, names):
    """Upstream test_injections with skydive-client: create (count=1000, 1 s interval) from a TID
    query to itself, the list grows, the node carries PacketInjections (active, PacketCount
    refreshed), delete: the list shrinks and the entry disappears (Stop reached the agent)."""
    p = Pair(net, names)
    tid = stack.node(p.a)["Metadata"]["TID"]
    rest = RESTClient(stack.analyzer.address)
    assert rest.lookup(_node_q(p.a))[0]["Metadata"]["TID"] == tid
    q = "G.V().Has('TID', '%s')" % tid
    before = len(rest.injection_list())
    inj = rest.injection_create(q, q, count=1000)
    assert inj.uuid and inj.count == 1000 and inj.type == "icmp4"
    assert len(rest.injection_list()) == before + 1
    entries = wait_until(lambda: [e for e in stack.entries(p.a) if e.get("ID") == inj.uuid],
                         timeout=15, message="PacketInjections on %s" % p.a)
    e = entries[0]
    assert e["State"] == "active" and e["UUID"] == inj.uuid and e["Type"] == "icmp4" and e["Count"] == 1000
    assert e["SrcIP"] == p.ip_a and e["DstIP"] == p.ip_a and e["TTL"] == 64 and e["ICMPID"] == 1
    assert e["SrcMAC"] == stack.node(p.a)["Metadata"]["MAC"] == e["DstMAC"]
    # PacketCount is refreshed (agent.injection.stats_update: 1) while packets go out every second
    wait_until(lambda: any(x.get("ID") == inj.uuid and x.get("PacketCount", 0) >= 2 for x in stack.entries(p.a)),
               timeout=15, message="PacketCount >= 2")
    rest.injection_delete(inj.uuid)
    assert len(rest.injection_list()) == before
    wait_until(lambda: not [x for x in stack.entries(p.a) if x.get("ID") == inj.uuid], timeout=15,
               message="PacketInjections entry removed after DELETE")
    assert "PacketInjections" not in stack.node(p.a)["Metadata"]


def test_icmp_ids_ttl_payload_tracking_and_random_mode(stack, net, names):
    """TestICMP: ICMP.ID 123 and 456 with exact packet counts, the same TrackingID at two capture
    points, TTL and payload (+ IncrementPayload) in the captured bytes, the entry appearing then
    disappearing when the injection ends; Mode random: a new id per packet."""
    p = Pair(net, names)
    cid_a = _capture(stack, p.a, RawPacketLimit=10)
    cid_pa = _capture(stack, p.pa)
    da = stack.node(p.a)["Metadata"]
    inj = stack.inject(Src=_node_q(p.a), Dst=_node_q(p.b), Type="icmp4", ICMPID=123, Count=3, Interval=100,
                       TTL=33, Payload="skydive-payload", IncrementPayload=2)
    assert inj["ICMPID"] == 123 and inj["Mode"] == "" and inj["TTL"] == 33
    f123 = "G.Flows().Has('CaptureID','%s','ICMP.ID',123)" % cid_a
    stack.wait_q(f123 + ".Values('Metric.ABPackets')", [3])
    stack.wait_q(f123 + ".Values('Metric.BAPackets')", [3])            # b answered every request
    flow = stack.q(f123)[0]
    assert flow["LayersPath"] == ICMP4 and flow["ICMP"]["Type"] == "ECHO"
    assert flow["Network"]["A"] == p.ip_a and flow["Network"]["B"] == p.ip_b
    assert flow["Link"]["A"] == da["MAC"] and flow["Link"]["B"] == stack.node(p.b)["Metadata"]["MAC"]
    # 14 + 20 + 8 header bytes, 15 payload bytes growing by 2 per packet
    assert flow["Metric"]["ABBytes"] == 3 * (42 + 15) + 2 + 4
    raw = stack.q(f123 + ".RawPackets()")[0][flow["UUID"]]
    requests_ = [base64.b64decode(r["Data"]) for r in raw]
    requests_ = [d for d in requests_ if d[26:30] == bytes(int(x) for x in p.ip_a.split("."))]
    assert len(requests_) == 3
    for i, d in enumerate(sorted(requests_, key=len)):
        assert d[22] == 33                                               # IPv4 TTL
        assert d[34] == 8 and struct.unpack_from("!H", d, 38)[0] == 123  # echo request, id
        assert d[42:57] == b"skydive-payload" and len(d) == 57 + 2 * i
        assert forge.checksum(d[14:34]) == 0 and forge.checksum(d[34:]) == 0
    # the same flow seen on the bridge port: same TrackingID, another UUID
    f123_pa = "G.Flows().Has('CaptureID','%s','ICMP.ID',123)" % cid_pa
    stack.wait_q(f123_pa + ".Values('Metric.ABPackets')", [3])
    other = stack.q(f123_pa)[0]
    assert other["TrackingID"] == flow["TrackingID"] and other["UUID"] != flow["UUID"]
    assert stack.q("G.Flows().Has('TrackingID','%s').Count()" % flow["TrackingID"]) == 2

    # ICMP.ID 456: 5 packets 600 ms apart; the node entry appears (active) then goes when done
    inj456 = stack.inject(Src=_node_q(p.a), Dst=_node_q(p.b), ICMPID=456, Count=5, Interval=600)
    e = wait_until(lambda: [x for x in stack.entries(p.a) if x.get("ID") == inj456["UUID"]], timeout=10,
                   message="entry of injection 456")[0]
    assert e["State"] == "active" and e["ICMPID"] == 456 and e["Count"] == 5
    wait_until(lambda: not [x for x in stack.entries(p.a) if x.get("ID") == inj456["UUID"]], timeout=15,
               message="entry removed when the injection ends")
    f456 = "G.Flows().Has('CaptureID','%s','ICMP.ID',456)" % cid_a
    stack.wait_q(f456 + ".Values('Metric.ABPackets')", [5])
    f456b = stack.q(f456)[0]
    assert f456b["TrackingID"] != flow["TrackingID"] and f456b["Metric"]["ABBytes"] == 5 * 98
    # the resource stays until DELETE (no TTL given)
    assert inj456["UUID"] in stack.injections()

    # Mode random: every packet gets its own ICMP id, hence its own flow
    stack.inject(Src=_node_q(p.a), Dst=_node_q(p.b), Count=6, Interval=50, Mode="random")
    fr = "G.Flows().Has('CaptureID','%s','Network.A','%s','ICMP.Type','ECHO').Has('ICMP.ID', Without(123, 456))" \
        % (cid_a, p.ip_a)
    stack.wait_q(fr + ".Count()", 6)
    ids = stack.q(fr + ".Values('ICMP.ID')")
    assert len(set(ids)) == 6
    assert stack.q(fr + ".Values('Metric.ABPackets')") == [1] * 6


def test_unique_mode_gives_each_source_node_its_own_id(stack, net, names):
    """One injection, two source nodes: ICMPID and ICMPID + 1, one per node (Mode unique)."""
    p = Pair(net, names)
    cid = _capture(stack, p.pa)
    fake = p.prefix + ".99"
    inj = stack.inject(Src="G.V().Has('Name', Within('%s', '%s'))" % (p.a, p.b), DstIP=fake,
                       DstMAC="02:00:00:00:00:99", ICMPID=500, Count=2, Interval=50)
    f = "G.Flows().Has('CaptureID','%s','Network.B','%s')" % (cid, fake)
    stack.wait_q(f + ".Count()", 2)
    flows = stack.q(f)
    assert sorted(x["ICMP"]["ID"] for x in flows) == [500, 501]
    assert sorted(x["Network"]["A"] for x in flows) == sorted([p.ip_a, p.ip_b])
    assert all(x["Metric"]["ABPackets"] == 2 for x in flows)
    assert stack.delete_injection(inj["UUID"]).status_code == 200


def test_tcp_udp_injections_are_flows_with_the_right_ports(stack, net, names):
    p = Pair(net, names)
    cid = _capture(stack, p.b)
    tcp = stack.inject(Src=_node_q(p.a), Dst=_node_q(p.b), Type="tcp4", Count=2, Interval=100)
    assert 1024 <= tcp["SrcPort"] < 65535 and 1024 <= tcp["DstPort"] < 65535     # drawn at create
    ft = "G.Flows().Has('CaptureID','%s','Transport.A',%d,'Transport.B',%d)" % (cid, tcp["SrcPort"], tcp["DstPort"])
    stack.wait_q(ft + ".Values('Metric.ABPackets')", [2])
    f = stack.q(ft)[0]
    assert f["LayersPath"] == "Ethernet/IPv4/TCP" and f["Transport"]["Protocol"] == "TCP"
    assert f["Network"]["A"] == p.ip_a and f["Network"]["B"] == p.ip_b
    stack.wait_q(ft + ".Values('Metric.BAPackets')", [2])                  # b resets both SYNs

    # the UDP injection is created while a /ws/subscriber client listens: it gets
    # OnDemandPacketInjectionNotification / NodeUpdated with the injection (§2.5)
    async def notified():
        async with aiohttp.ClientSession() as sess:
            async with sess.ws_connect(stack.url.replace("http", "ws") + "/ws/subscriber",
                                       headers={"X-Client-Type": "test", "X-Host-ID": "inj-sub-%s" % names.tag}) as ws:
                loop = asyncio.get_event_loop()
                created = await loop.run_in_executor(None, lambda: stack.inject(
                    Src=_node_q(p.a), Dst=_node_q(p.b), Type="udp4", SrcPort=40123, DstPort=7788, Count=3,
                    Interval=50, Payload="hello"))
                deadline = loop.time() + 15
                while loop.time() < deadline:
                    msg = await ws.receive(timeout=max(0.1, deadline - loop.time()))
                    if msg.type != aiohttp.WSMsgType.TEXT:
                        break
                    for m in (lambda d: d if isinstance(d, list) else [d])(json.loads(msg.data)):
                        if m.get("Namespace") == "OnDemandPacketInjectionNotification":
                            return created, m
                return created, None
    udp, note = asyncio.run(notified())
    assert note is not None and note["Type"] == "NodeUpdated" and note["Obj"]["UUID"] == udp["UUID"]
    fu = "G.Flows().Has('CaptureID','%s','Transport.A',40123,'Transport.B',7788)" % cid
    stack.wait_q(fu + ".Values('Metric.ABPackets')", [3])
    u = stack.q(fu)[0]
    assert u["LayersPath"] == "Ethernet/IPv4/UDP" and u["Metric"]["ABBytes"] == 3 * (42 + 5)
    assert udp["SrcPort"] == 40123

    # Mode random on UDP: a new source port per datagram
    stack.inject(Src=_node_q(p.a), Dst=_node_q(p.b), Type="udp4", SrcPort=41000, DstPort=7799, Count=4,
                 Interval=50, Mode="random")
    fr = "G.Flows().Has('CaptureID','%s','Transport.B',7799,'LayersPath','Ethernet/IPv4/UDP')" % cid
    stack.wait_q(fr + ".Count()", 4)
    assert len(set(stack.q(fr + ".Values('Transport.A')"))) == 4


def test_ipv6_echo_and_pcap_replay(stack, net, names):
    """TestIPv6FlowHopsIPv6 (Ethernet/IPv6/ICMPv6/ICMPv6Echo) and a pcap replayed on an interface
    (TestReplayCapture's shape: 4 flows, 2 DNS)."""
    p = Pair(net, names, v6=True)
    wait_until(lambda: any(ip.startswith(p.ip6_b) for ip in stack.node(p.b)["Metadata"].get("IPV6") or ()),
               timeout=10, message="IPv6 address of b")
    cid = _capture(stack, p.a)
    inj = stack.inject(Src=_node_q(p.a), Dst=_node_q(p.b), Type="icmp6", ICMPID=77, Count=3, Interval=100)
    f6 = "G.Flows().Has('CaptureID','%s','LayersPath','Ethernet/IPv6/ICMPv6/ICMPv6Echo','ICMP.ID',77)" % cid
    stack.wait_q(f6 + ".Values('Metric.ABPackets')", [3])
    stack.wait_q(f6 + ".Values('Metric.BAPackets')", [3])
    f = stack.q(f6)[0]
    assert f["Network"]["Protocol"] == "IPV6" and f["Network"]["A"] == p.ip6_a and f["Network"]["B"] == p.ip6_b
    assert f["ICMP"]["Type"] == "ECHO"
    assert stack.delete_injection(inj["UUID"]).status_code == 200

    data, expected = sample_pcap(int(time.time()) - 60)
    rep = stack.inject(Src=_node_q(p.a), Pcap=base64.b64encode(data).decode(), Interval=20)
    assert rep["Pcap"] == base64.b64encode(data).decode()
    fp = "G.Flows().Has('CaptureID','%s','Link.A','02:00:00:00:00:a1')" % cid
    stack.wait_q(fp + ".Count()", expected["flows"])
    assert stack.q(fp + ".Has('Application','DNS').Count()") == expected["dns"]
    assert stack.q(fp + ".Sum('Metric.ABPackets')") + stack.q(fp + ".Sum('Metric.BAPackets')") == expected["packets"]


def test_bad_input_is_a_400_and_nothing_is_stored(stack, net, names):
    p = Pair(net, names)
    src, dst = _node_q(p.a), _node_q(p.b)
    before = set(stack.injections())
    cases = [
        (dict(Src=src, Dst=dst, Type="icmp9"), "given type is not supported"),
        (dict(Src=src, Dst=dst, Mode="loud"), "given mode is not supported"),
        (dict(Src=src, DstIP="300.1.1.1"), "DstIP"),
        (dict(Src=src, Dst=dst, SrcIP="10.1.1"), "SrcIP"),
        (dict(Src=src, Dst=dst, DstMAC="zz:00:00:00:00:01"), "DstMAC"),
        (dict(Src=src, Dst=dst, SrcMAC="00:11:22"), "SrcMAC"),
        (dict(Src="G.V().Has('Name','nosuchnode%s')" % os.urandom(3).hex(), Dst=dst), "source node"),
        (dict(Src=src), "No destination IP"),
        (dict(Src=src, Dst="G.V().Has('Name','%s')" % p.ns_b), "No destination IP"),   # a netns node
        (dict(Src=src, DstIP="fd00::2", Type="icmp6", SrcIP=p.ip_a), "not an IPv6 address"),
        (dict(Src=src, DstIP="fd00::1", Type="udp4"), "not an IPv4 address"),
        (dict(Src=_node_q(p.br), Dst=dst), "No source IP"),                             # a bridge without IP
        (dict(Src="G.V().Has(", Dst=dst), "Src"),
        (dict(Src=src, Dst=dst, Pcap="not base64!"), "Pcap"),
        (dict(Src=src, Dst=dst, Count=-1), "Count"),
        (dict(Src=src, Dst=dst, TTL=256), "TTL"),
    ]
    for body, message in cases:
        r = stack.create_injection(**body)
        assert r.status_code == 400, (body, r.status_code, r.text)
        assert message in r.text, (body, r.text)
    r = stack.create_injection(headers={"X-Resource-TTL": "soon"}, Src=src, Dst=dst)
    assert r.status_code == 400 and "invalid ttl" in r.text
    assert set(stack.injections()) == before
    # PATCH is refused, as upstream
    inj = stack.inject(Src=src, Dst=dst, Count=1)
    import requests
    r = requests.patch(stack.url + "/api/injectpacket/" + inj["UUID"], json=[{"op": "replace", "path": "/Count",
                                                                              "value": 2}], timeout=10)
    assert r.status_code == 400 and "not updatable" in r.text


def test_ttl_expiry_stops_and_vanishing_interface_keeps_agent_running(stack, net, names):
    """X-Resource-TTL: the resource expires, Stop reaches the agent (entry gone, packets stop);
    an interface deleted while injecting ends that injection cleanly, the agent keeps serving."""
    p = Pair(net, names)
    cid = _capture(stack, p.b)
    r = stack.create_injection(headers={"X-Resource-TTL": "2s"}, Src=_node_q(p.a), Dst=_node_q(p.b), ICMPID=900,
                               Count=200, Interval=100)
    assert r.status_code == 201, r.text
    uid = r.json()["UUID"]
    wait_until(lambda: [x for x in stack.entries(p.a) if x.get("ID") == uid], timeout=10, message="entry")
    wait_until(lambda: uid not in stack.injections(), timeout=10, message="TTL expiry")
    wait_until(lambda: not [x for x in stack.entries(p.a) if x.get("ID") == uid], timeout=10,
               message="entry removed after TTL")
    f = "G.Flows().Has('CaptureID','%s','ICMP.ID',900)" % cid
    first = stack.wait_q(f + ".Values('Metric.ABPackets')", lambda v: v and v[0] > 0)[0]
    time.sleep(2.5)                                   # flow.update is 1 s: anything sent would show
    settled = stack.q(f + ".Values('Metric.ABPackets')")[0]
    assert first <= settled < 100

    # the source interface goes down mid-injection: sending fails, the injection ends with the
    # error logged and its entry removed, the node stays
    inj = stack.inject(Src=_node_q(p.a), Dst=_node_q(p.b), ICMPID=901, Count=500, Interval=100)
    wait_until(lambda: [x for x in stack.entries(p.a) if x.get("ID") == inj["UUID"]], timeout=10, message="entry")
    net.ip("link", "set", p.a, "down", netns=p.ns_a)
    wait_until(lambda: not [x for x in stack.entries(p.a) if x.get("ID") == inj["UUID"]], timeout=10,
               message="entry removed after the send error")
    lines = wait_until(lambda: [ln for ln in open(stack.agent.log_path, errors="replace")
                                if inj["UUID"] in ln and "ended after" in ln], timeout=10, message="error logged")
    assert "Network is down" in lines[0], lines
    assert stack.agent.proc.poll() is None

    # the source interface vanishes mid-injection: the injection stops with its node
    net.ip("link", "set", p.a, "up", netns=p.ns_a)
    wait_until(lambda: stack.node(p.a)["Metadata"].get("State") == "UP", timeout=10, message="a up")
    inj1 = stack.inject(Src=_node_q(p.a), Dst=_node_q(p.b), ICMPID=903, Count=500, Interval=50)
    wait_until(lambda: [x for x in stack.entries(p.a) if x.get("ID") == inj1["UUID"]], timeout=10, message="entry")
    net.ip("link", "del", p.pa)
    wait_until(lambda: stack.q("G.V().Has('Name','%s').Count()" % p.a) == 0, timeout=10, message="a deleted")
    wait_until(lambda: [ln for ln in open(stack.agent.log_path, errors="replace")
                        if inj1["UUID"] in ln and ("deleted" in ln or "ended after" in ln)], timeout=10,
               message="injection stopped with its node")
    assert stack.agent.proc.poll() is None
    assert stack.delete_injection(inj1["UUID"]).status_code == 200
    # the agent still injects: b to a namespace-less destination through the bridge
    inj2 = stack.inject(Src=_node_q(p.b), DstIP=p.prefix + ".77", DstMAC="02:00:00:00:00:77", ICMPID=902, Count=2,
                        Interval=50)
    fb = "G.Flows().Has('CaptureID','%s','ICMP.ID',902)" % cid
    stack.wait_q(fb + ".Values('Metric.ABPackets')", [2])
    assert stack.delete_injection(inj2["UUID"]).status_code == 200
    assert stack.delete_injection(inj["UUID"]).status_code == 200
