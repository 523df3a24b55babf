"""Flow scenarios of spec §11 with real traffic (ping, UDP) between namespaces, through a Linux
bridge and through Open vSwitch (userspace datapath), with exact packet counts."""

import asyncio
import json
import os
import sys

import aiohttp
import pytest
import requests

from tests.fixtures.processes import wait_until
from tests.flow_integration.conftest import Pair, ping, read_pcap, run, udp_send

pytestmark = pytest.mark.needs_root

ICMP4 = "Ethernet/IPv4/ICMPv4"


def test_gremlin_metrics_predicates_rtt_sort_sum(stack, net, names):
    """afpacket (default) on a veth inside a namespace: TestFlowGremlin / TestFlowMetrics /
    TestSort / TestFlowSumStep / TestFlowCaptureNodeStep / TestFlowsWithIpv4Range / UDP."""
    p = Pair(net, names)
    nq = "G.V().Has('Name','%s')" % p.a
    cid = stack.capture(GremlinQuery=nq, Name="metrics")
    stack.wait_active(cid, nq)
    tid = stack.node(p.a)["Metadata"]["TID"]
    ping(p.ns_a, p.ip_b, 5)
    udp_send(p.ns_a, p.ip_b, 7777, 3, sport=40777)
    base = "G.Flows().Has('CaptureID','%s','LayersPath','%s','Network.A','%s')" % (cid, ICMP4, p.ip_a)
    stack.wait_q(base + ".Values('Metric.ABPackets')", [5])
    stack.wait_q(base + ".Values('Metric.BAPackets')", [5])
    udp = "G.Flows().Has('CaptureID','%s','Transport', 7777)" % cid
    stack.wait_q(udp + ".Values('Metric.ABPackets')", [3])
    flow = stack.q(base)[0]
    assert flow["NodeTID"] == tid and flow["CaptureID"] == cid
    assert flow["Network"] == {"Protocol": "IPV4", "A": p.ip_a, "B": p.ip_b, "ID": 0}
    assert flow["ICMP"]["Type"] == "ECHO" and flow["Application"] == "ICMPv4"
    ab_bytes = flow["Metric"]["ABBytes"]
    assert ab_bytes == 5 * 98
    # the same flow from the capture node, with Flows(k, v...) arguments and Has()
    # (the UDP datagrams got ICMP port unreachable answers: a second ICMPv4 flow, B -> A)
    assert stack.q("%s.Flows().Has('LayersPath','%s','NodeTID','%s').Count()" % (nq, ICMP4, tid)) == 2
    assert stack.q("%s.Flows().Has('LayersPath','%s','NodeTID','%s','ICMP.Type','ECHO').Count()" % (nq, ICMP4, tid)) == 1
    assert stack.q("%s.Flows('LayersPath','%s','NodeTID','%s','ICMP.Type','ECHO').Count()" % (nq, ICMP4, tid)) == 1
    assert stack.q("G.Flows('CaptureID','%s').Has('LayersPath', Regex('.*ICMPv4.*')).Count()" % cid) == 2
    assert stack.q("G.Flows('CaptureID','%s').Has('ICMP.Type','DESTINATION_UNREACHABLE').Values('Metric.ABPackets')" % cid) == [3]
    # every comparison predicate around the exact byte count
    m = base + ".Has('Metric.ABBytes', %s).Count()"
    for pred, n in (("GT(%d)" % (ab_bytes - 1), 1), ("GT(%d)" % ab_bytes, 0), ("GTE(%d)" % ab_bytes, 1),
                    ("GTE(%d)" % (ab_bytes + 1), 0), ("LT(%d)" % (ab_bytes + 1), 1), ("LT(%d)" % ab_bytes, 0),
                    ("LTE(%d)" % ab_bytes, 1), ("LTE(%d)" % (ab_bytes - 1), 0),
                    ("Inside(%d, %d)" % (ab_bytes - 1, ab_bytes + 1), 1), ("Inside(%d, %d)" % (ab_bytes, ab_bytes + 1), 0),
                    ("Between(%d, %d)" % (ab_bytes, ab_bytes + 1), 1), ("Between(%d, %d)" % (ab_bytes - 1, ab_bytes), 0),
                    ("NE(%d)" % ab_bytes, 0), ("Within(1, %d)" % ab_bytes, 1), ("Without(%d)" % ab_bytes, 0)):
        assert stack.q(m % pred) == n, pred
    assert stack.q(base + ".Has('Metric.ABPackets', 5, 'Metric.RTT', GT(0)).Count()") == 1
    # bare Network matches either side; Ipv4Range; HasEither
    # (echo A -> B and port unreachable B -> A)
    assert stack.q("G.Flows().Has('CaptureID','%s','Network','%s','LayersPath','%s').Count()" % (cid, p.ip_b, ICMP4)) == 2
    assert stack.q("G.Flows().Has('CaptureID','%s','Network.B','%s','LayersPath','%s').Count()" % (cid, p.ip_b, ICMP4)) == 1
    assert stack.q("G.Flows().Has('CaptureID','%s','Network', Ipv4Range('%s.0/24'),'LayersPath','%s').Count()"
                   % (cid, p.prefix, ICMP4)) == 2
    assert stack.q("G.Flows().Has('CaptureID','%s','Network.A', Ipv4Range('%s.0/30'),'ICMP.Type','ECHO').Count()"
                   % (cid, p.prefix)) == 1
    assert stack.q("G.Flows().Has('CaptureID','%s','Network', Ipv4Range('203.0.113.0/24')).Count()" % cid) == 0
    assert stack.q("G.Flows().Has('CaptureID','%s').HasEither('Transport.B', 7777, 'ICMP.Type', 'ECHO').Count()" % cid) == 2
    # UDP: 3 datagrams, no reply
    u = stack.q(udp)[0]
    assert u["Transport"] == {"Protocol": "UDP", "A": 40777, "B": 7777, "ID": 0}
    assert u["Metric"]["BAPackets"] == 0 and u["LayersPath"] == "Ethernet/IPv4/UDP"
    # Sum, Sort, Dedup, Values, Keys, Limit, CaptureNode/Hops/Node
    both = "G.Flows().Has('CaptureID','%s').HasEither('Transport.B', 7777, 'ICMP.Type', 'ECHO')" % cid
    assert stack.q(both + ".Sum('Metric.ABPackets')") == 8
    assert stack.q(both + ".Dedup().Sum('Metric.ABPackets')") == 8
    asc = stack.q(both + ".Sort()")
    assert [f["Last"] for f in asc] == sorted(f["Last"] for f in asc)
    desc = stack.q(both + ".Sort(DESC, 'Start')")
    assert [f["Start"] for f in desc] == sorted((f["Start"] for f in desc), reverse=True)
    assert sorted(stack.q(both + ".Values('Application')")) == ["ICMPv4", "UDP"]
    assert "Metric.ABPackets" in stack.q(both + ".Keys()")
    assert stack.q(both + ".Limit(1).Count()") == 1
    assert stack.q(both + ".Range(1, 2).Count()") == 1
    for step in ("CaptureNode()", "Hops()", "Node()"):
        nodes = stack.q(both + "." + step)
        assert [n["Metadata"]["Name"] for n in nodes] == [p.a], step
    assert stack.q(base + ".CaptureNode().Count()") == 1
    # Nodes(): capture node + the nodes holding Link.A / Link.B
    node_names = {n["Metadata"]["Name"] for n in stack.q(base + ".Nodes()")}
    assert {p.a, p.b} <= node_names
    # In()/Out(): the interface whose MAC is the source / destination
    assert p.a in {n["Metadata"]["Name"] for n in stack.q(base + ".In()")}
    assert p.b in {n["Metadata"]["Name"] for n in stack.q(base + ".Out()")}
    # flow history in the store: the flow, its metrics (sum of the updates = the totals)
    hist = "G.At('-0s', 300).Flows().Has('CaptureID','%s','LayersPath','%s','ICMP.Type','ECHO')" % (cid, ICMP4)
    stack.wait_q(hist + ".Values('Metric.ABPackets')", [5])
    msum = stack.q(hist + ".Metrics().Sum()")
    assert msum["ABPackets"] == 5 and msum["BAPackets"] == 5 and msum["ABBytes"] == ab_bytes
    assert stack.q(hist + ".Metrics().Aggregates(10)")[0]["Aggregated"]
    live_metrics = stack.q(base + ".Metrics()")
    assert list(live_metrics[0].keys()) == [flow["UUID"]]
    r = stack.delete_capture(cid)
    assert r.status_code == 200
    stack.wait_q(nq + ".Has('Captures').Count()", 0)
    stack.wait_q("G.Flows().Has('CaptureID','%s').Count()" % cid, 0)


def test_two_capture_points_tracking_id_shortest_path(stack, net, names):
    """One conversation seen on both ends: same TrackingID, different UUIDs (TestFlowHops,
    TestFlowsWithShortestPath, Group/MoreThan), and an IPv6 ping (TestIPv6FlowHopsIPv6),
    plus ICMP ids (TestICMP)."""
    p = Pair(net, names, v6=True)
    nq = "G.V().Has('Name', Within('%s', '%s'))" % (p.a, p.b)
    cid = stack.capture(GremlinQuery=nq)
    stack.wait_active(cid, nq, count=2)
    ping(p.ns_a, p.ip_b, 4)
    q = "G.Flows().Has('CaptureID','%s','LayersPath','%s')" % (cid, ICMP4)
    stack.wait_q(q + ".Values('Metric.ABPackets')", [4, 4])
    flows = stack.q(q)
    assert len({f["TrackingID"] for f in flows}) == 1
    assert len({f["UUID"] for f in flows}) == 2
    assert len({f["NodeTID"] for f in flows}) == 2
    tracking = flows[0]["TrackingID"]
    assert stack.q("G.Flows().Has('TrackingID','%s').Count()" % tracking) == 2
    hops = {n["Metadata"]["Name"] for n in stack.q("G.Flows().Has('TrackingID','%s').Hops()" % tracking)}
    nodes = {n["Metadata"]["Name"] for n in stack.q("G.Flows().Has('TrackingID','%s').Nodes()" % tracking)}
    assert hops == {p.a, p.b} and hops <= nodes
    groups = stack.q(q + ".Group().MoreThan()")
    assert list(groups[0].keys()) == [tracking] and len(groups[0][tracking]) == 2
    assert stack.q(q + ".Dedup().Count()") == 1
    # flows along the shortest path a -> b over layer2 links (a, pa, br, pb, b)
    path = "G.V().Has('Name','%s').ShortestPathTo(Metadata('Name','%s'), Metadata('RelationType','layer2'))" % (p.a, p.b)
    assert len(stack.q(path)[0]) == 5
    assert stack.q(path + ".Flows().Has('LayersPath','%s','CaptureID','%s').Count()" % (ICMP4, cid)) == 2
    # IPv6
    ping(p.ns_a, p.ip6_b, 3, extra=("-6",))
    q6 = "G.Flows().Has('CaptureID','%s','LayersPath','Ethernet/IPv6/ICMPv6/ICMPv6Echo','Network.A','%s')" % (cid, p.ip6_a)
    stack.wait_q(q6 + ".Values('Metric.ABPackets')", [3, 3])
    f6 = stack.q(q6)
    assert f6[0]["ICMP"]["Type"] == "ECHO" and f6[0]["Network"]["Protocol"] == "IPV6"
    assert f6[0]["TrackingID"] == f6[1]["TrackingID"]
    # ICMP ids: two pings with their own identifiers are two flows
    ping(p.ns_a, p.ip_b, 2, extra=("-e", "123"))
    ping(p.ns_a, p.ip_b, 3, extra=("-e", "456"))
    for ident, n in ((123, 2), (456, 3)):
        qi = "G.Flows().Has('CaptureID','%s','NodeTID','%s','ICMP.ID', %d)" % (cid, stack.node(p.a)["Metadata"]["TID"], ident)
        stack.wait_q(qi + ".Values('Metric.ABPackets')", [n])
    t1 = stack.q("G.Flows().Has('CaptureID','%s','ICMP.ID', 123).Values('TrackingID')" % cid)
    t2 = stack.q("G.Flows().Has('CaptureID','%s','ICMP.ID', 456).Values('TrackingID')" % cid)
    assert len(set(t1)) == 1 and len(set(t2)) == 1 and set(t1) != set(t2)
    stack.delete_capture(cid)


def test_bpf_raw_packets_pcap_output(stack, net, names, tmp_path):
    """TestBPF + TestRawPackets: kernel BPF filter, 9 raw packets kept, RawPackets().BPF() and pcap."""
    p = Pair(net, names)
    nq = "G.V().Has('Name','%s')" % p.a
    cid = stack.capture(GremlinQuery=nq, BPFFilter="icmp and host %s and icmp[icmptype] != icmp-unreach" % p.ip_b,
                        RawPacketLimit=9,
                        HeaderSize=128)
    stack.wait_active(cid, nq)
    udp_send(p.ns_a, p.ip_b, 7001, 4)
    ping(p.ns_a, p.ip_b, 5)
    q = "G.Flows().Has('CaptureID','%s')" % cid
    stack.wait_q(q + ".Values('Metric.ABPackets')", [5])
    assert stack.q(q + ".Values('LayersPath')") == [ICMP4]       # the UDP datagrams were filtered out
    assert stack.q(q + ".Values('RawPacketsCaptured')") == [9]
    raw = stack.q(q + ".RawPackets()")
    (uuid, pkts), = raw[0].items()
    assert len(pkts) == 9 and [x["Index"] for x in pkts] == list(range(9))
    assert all(x["LinkType"] == 1 for x in pkts)
    assert stack.q(q + ".RawPackets().BPF('icmp[icmptype] == 0').Count()") == 4     # replies among the 9
    assert stack.q(q + ".RawPackets().BPF('icmp[icmptype] == 8').Count()") == 5
    r = stack.post_query(q + ".RawPackets()", accept="application/vnd.tcpdump.pcap")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/vnd.tcpdump.pcap")
    frames = read_pcap(r.content)
    assert len(frames) == 9 and all(len(f) == 98 for _, f in frames)
    r = stack.post_query(q + ".RawPackets().BPF('icmp[icmptype] == 0')", accept="application/vnd.tcpdump.pcap")
    assert len(read_pcap(r.content)) == 4
    r = stack.post_query(q + ".RawPackets().BPF('this is not bpf')")
    assert r.status_code == 400 and "syntax error" in r.text
    # the CLI asks for pcap the same way
    out = os.path.join(str(tmp_path), "raw.pcap")
    run([sys.executable, "-m", "skydive_runtime.cli.main", "client", "--analyzer", stack.analyzer.address,
         "query", "--format", "pcap", "--output", out, q + ".RawPackets()"], cwd="/work/main")
    with open(out, "rb") as fh:
        assert [f for _, f in read_pcap(fh.read())] == [f for _, f in frames]
    stack.delete_capture(cid)


def test_pcap_probe_on_bridge_port_and_flow_feed(stack, net, names):
    """TestPCAPProbe: libpcap capture on a Linux bridge port; the /ws/subscriber/flow feed."""
    p = Pair(net, names)
    nq = "G.V().Has('Name','%s')" % p.pa
    cid = stack.capture(GremlinQuery=nq, Type="pcap")
    stack.wait_active(cid, nq)
    assert stack.q(nq + ".Values('Captures.Type')") == ["pcap"]

    async def feed():
        async with aiohttp.ClientSession() as s:
            async with s.ws_connect(stack.url.replace("http", "ws") + "/ws/subscriber/flow",
                                    headers={"X-Client-Type": "test", "X-Websocket-Namespace": "flow/%s" % cid}) as ws:
                loop = asyncio.get_event_loop()
                pinger = loop.run_in_executor(None, ping, p.ns_b, p.ip_a, 4)
                got = {}
                deadline = loop.time() + 20
                while loop.time() < deadline:
                    try:
                        msg = await ws.receive(timeout=max(0.1, deadline - loop.time()))
                    except asyncio.TimeoutError:
                        break
                    if msg.type != aiohttp.WSMsgType.TEXT:
                        break
                    m = json.loads(msg.data)
                    assert m["Namespace"] == "flow/%s" % cid
                    for f in m["Obj"]:
                        assert f["CaptureID"] == cid
                        got[f["UUID"]] = f
                    if any(f.get("LayersPath") == ICMP4 and f["Metric"]["ABPackets"] == 4 for f in got.values()):
                        break
                await pinger
                return got
    got = asyncio.new_event_loop().run_until_complete(feed())
    icmp = [f for f in got.values() if f.get("LayersPath") == ICMP4]
    assert icmp and icmp[0]["Metric"]["ABPackets"] == 4 and icmp[0]["Network"]["A"] == p.ip_b
    q = "G.Flows().Has('CaptureID','%s','LayersPath','%s')" % (cid, ICMP4)
    assert stack.q(q + ".Values('Metric.BAPackets')") == [4]
    stack.delete_capture(cid)


def test_ovssflow_on_bridge_and_src_dst_interfaces(ovs_stack, ovs, net, names):
    """TestFlowGremlin on an ovssflow capture (default type for an ovsbridge) + TestSFlowSrcDstPath,
    ICMP and UDP through OVS (userspace datapath, tx checksum offload off). The agent runs beside
    the switch, in its namespace, where the switch's ports are made."""
    stack = ovs_stack
    prefix = "10.%d.%d" % tuple(__import__("random").randint(1, 250) for _ in range(2))
    br = names("ob")
    ovs.add_bridge(br)
    try:
        ns, ifs, ips = [], [], []
        for i in (1, 2):
            n = net.add_netns(names("on"))
            inner, outer = names("oi"), names("oo")
            net.add_veth(outer, inner, netns_a=ovs.netns, netns_b=n)
            ovs.vsctl("add-port", br, outer)
            net.ip("link", "set", outer, "up", netns=ovs.netns)
            net.ip("addr", "add", "%s.%d/24" % (prefix, i), "dev", inner, netns=n)
            net.ip("link", "set", inner, "up", netns=n)
            run(["ip", "netns", "exec", n, "ethtool", "-K", inner, "tx", "off"], check=False)
            ns.append(n), ifs.append(inner), ips.append("%s.%d" % (prefix, i))
        ovs.ip("link", "set", br, "up", check=False)
        bq = "G.V().Has('Name','%s','Type','ovsbridge')" % br
        stack.wait_q(bq + ".Count()", 1)
        cid = stack.capture(GremlinQuery=bq)
        stack.wait_active(cid, bq)
        assert stack.q(bq + ".Values('Captures.Type')") == ["ovssflow"]
        sflow = ovs.vsctl("get", "bridge", br, "sflow").stdout.strip()
        assert sflow and sflow != "[]"
        ping(ns[0], ips[1], 5)
        udp_send(ns[0], ips[1], 9999, 4, sport=41999)
        tid = stack.q(bq)[0]["Metadata"]["TID"]
        q = "%s.Flows().Has('LayersPath','%s','NodeTID','%s','ICMP.Type','ECHO')" % (bq, ICMP4, tid)
        # requests and replies travel in separate sFlow datagrams: wait for both directions
        stack.wait_q(q + ".Values('Metric.ABPackets')", [5], timeout=25)
        stack.wait_q(q + ".Values('Metric.BAPackets')", [5], timeout=10)
        uq = "%s.Flows().Has('Transport.B', 9999)" % bq
        stack.wait_q(uq + ".Values('Metric.ABPackets')", [4], timeout=25)
        stack.wait_q("%s.Flows('ICMP.Type','DESTINATION_UNREACHABLE').Values('Metric.ABPackets')" % bq, [4])
        assert stack.q("%s.Flows('LayersPath','%s','NodeTID','%s').Count()" % (bq, ICMP4, tid)) == 2   # + unreachable
        assert stack.q(q + ".Count()") == 1
        # source / destination interfaces of the sampled flow (by MAC)
        src = {n["Metadata"]["Name"] for n in stack.q("G.Flows().Has('Network.A','%s','CaptureID','%s').In()" % (ips[0], cid))}
        dst = {n["Metadata"]["Name"] for n in stack.q("G.Flows().Has('Network.A','%s','CaptureID','%s').Out()" % (ips[0], cid))}
        assert ifs[0] in src and ifs[1] not in src
        assert ifs[1] in dst and ifs[0] not in dst
        assert stack.q(q + ".Both().Dedup().Count()") >= 2
        assert stack.q(q + ".CaptureNode().Values('Name')") == [br]
        stack.delete_capture(cid)
        stack.wait_q(bq + ".Has('Captures').Count()", 0)
        wait_until(lambda: ovs.vsctl("get", "bridge", br, "sflow").stdout.strip() == "[]", timeout=10,
                   message="sFlow removed from the bridge")
    finally:
        ovs.del_bridge(br)


def test_pcapsocket_replay_and_api_pcap_history(stack, net, names):
    """TestReplayCapture (pcapsocket, Captures[].PCAPSocket) and TestPcapInject (POST /api/pcap
    then G.At(<time of the pcap>).Flows().Has('Application','DNS'))."""
    import socket
    import requests
    from tests.flow_integration.conftest import sample_pcap
    p = Pair(net, names)
    nq = "G.V().Has('Name','%s')" % p.pa
    cid = stack.capture(GremlinQuery=nq, Type="pcapsocket")
    stack.wait_active(cid, nq)
    addr = stack.q(nq + ".Values('Captures.PCAPSocket')")[0]
    host, port = addr.rsplit(":", 1)
    data, exp = sample_pcap(1454659514)
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(data)
    q = "G.Flows().Has('CaptureID','%s')" % cid
    # one snapshot (DNS and ARP flows leave the table 10 s of packet time after their last packet)
    flows = stack.wait_q(q, lambda v: len(v) == exp["flows"], timeout=20)
    assert len([f for f in flows if f["Application"] == "DNS"]) == exp["dns"]
    assert sum(f["Metric"]["ABPackets"] + f["Metric"]["BAPackets"] for f in flows) == exp["packets"]
    assert [f["Metric"]["RTT"] for f in flows if f.get("Transport", {}).get("B") == 80][0] > 0
    assert all(f["Start"] // 1000 in (1454659514, 1454659515) for f in flows)     # packet time kept
    stack.delete_capture(cid)
    # POST /api/pcap: stored (not live), queried back in time
    data2, exp2 = sample_pcap(1454000000)
    pcap = {"Content-Type": "application/vnd.tcpdump.pcap"}
    r = requests.post(stack.url + "/api/pcap", data=data2, timeout=10)
    assert r.status_code == 415 and "Content-Type" in r.text    # a browser's simple POST is refused
    r = requests.post(stack.url + "/api/pcap", data=data2, headers=pcap, timeout=10)
    assert r.status_code == 202, r.text
    at = "G.At(%d, 60).Flows()" % exp2["end_ms"]
    stack.wait_q(at + ".Has('Application','DNS').Count()", exp2["dns"])
    assert stack.q(at + ".Count()") == exp2["flows"]
    assert stack.q(at + ".Has('Network', '93.184.216.34').Values('Transport.B')") == [80]
    assert stack.q("G.At(%d).Flows().Has('Application','ARP').Count()" % (1454000000 * 1000)) == 1
    r = requests.post(stack.url + "/api/pcap", data=b"not a pcap at all, really", headers=pcap, timeout=10)
    assert r.status_code == 400 and "pcap" in r.text.lower() and "Traceback" not in r.text
    r = requests.post(stack.url + "/api/pcap", data=data2[:40], headers=pcap, timeout=10)
    assert r.status_code == 400


def test_tcp_through_bridge_extra_tcp_metric_l3_mode(stack, net, names):
    """A TCP conversation (handshake, 3 x 100 bytes each way, FIN) through the Linux bridge:
    Transport, RTT from the handshake, TCPMetric (ExtraTCPMetric), FinishType TCP_FIN; the same
    traffic in L3 key mode on the other end has the same L3TrackingID, as its TrackingID."""
    p = Pair(net, names)
    qa = "G.V().Has('Name','%s')" % p.a
    qb = "G.V().Has('Name','%s')" % p.b
    cid = stack.capture(GremlinQuery=qa, ExtraTCPMetric=True)
    cid3 = stack.capture(GremlinQuery=qb, LayerKeyMode="L3")
    stack.wait_active(cid, qa)
    stack.wait_active(cid3, qb)
    server = net.spawn(["python3", "-c",
                        "import socket\n"
                        "s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
                        "s.bind(('%s', 8765)); s.listen(1); c, _ = s.accept()\n"
                        "for i in range(3):\n"
                        "    d = b''\n"
                        "    while len(d) < 100: d += c.recv(100 - len(d))\n"
                        "    c.sendall(d)\n"
                        "c.close()\n" % p.ip_b], netns=p.ns_b)
    run(["ip", "netns", "exec", p.ns_a, "python3", "-c",
         "import socket, time\n"
         "for i in range(50):\n"
         "    try:\n"
         "        c = socket.create_connection(('%s', 8765), timeout=2); break\n"
         "    except OSError: time.sleep(0.1)\n"
         "c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)\n"
         "for i in range(3):\n"
         "    c.sendall(b'x' * 100); d = b''\n"
         "    while len(d) < 100: d += c.recv(100)\n"
         "c.close(); time.sleep(0.3)\n" % p.ip_b], timeout=30)
    server.wait(timeout=10)
    # (connection attempts before the server listened end in RST flows: keep the FIN one)
    q = "G.Flows().Has('CaptureID','%s','Transport.B', 8765, 'FinishType', 'TCP_FIN')" % cid
    stack.wait_q(q + ".Count()", 1)
    f = stack.q(q)[0]
    assert f["Transport"]["Protocol"] == "TCP" and f["Network"]["A"] == p.ip_a
    assert f["LayersPath"] == "Ethernet/IPv4/TCP"
    assert f["Application"] == "SKYTEST"          # flow.application_ports.tcp of the agent
    assert f["Metric"]["RTT"] > 0
    t = f["TCPMetric"]
    assert t["ABPackets"] == 3 and t["ABBytes"] == 300 and t["BAPackets"] == 3 and t["BABytes"] == 300
    assert t["ABSawStart"] and t["BASawStart"] and t["ABSawEnd"] and t["ABSynStart"] > 0
    q3 = "G.Flows().Has('CaptureID','%s','Transport', 8765, 'FinishType', 'TCP_FIN')" % cid3
    stack.wait_q(q3 + ".Count()", 1)
    f3 = stack.q(q3)[0]
    # L3 key mode: the TrackingID is the L3TrackingID, the same as the L2 capture's
    assert f3["TrackingID"] == f3["L3TrackingID"] == f["L3TrackingID"] != f["TrackingID"]
    assert f3["Metric"]["ABPackets"] == f["Metric"]["ABPackets"]
    stack.delete_capture(cid)
    stack.delete_capture(cid3)


def test_ebpf_capture_end_to_end(stack, net, names):
    """Type ebpf (in-kernel aggregation) on one end, afpacket on the other: exact counts, RTT, the
    same TrackingID for the conversation whichever probe saw it, node Captures counters."""
    p = Pair(net, names)
    qa = "G.V().Has('Name','%s')" % p.a
    qb = "G.V().Has('Name','%s')" % p.b
    ce = stack.capture(GremlinQuery=qa, Type="ebpf", Name="in-kernel")
    ca = stack.capture(GremlinQuery=qb, Type="afpacket")
    stack.wait_active(ce, qa)
    stack.wait_active(ca, qb)
    ping(p.ns_a, p.ip_b, 5)
    udp_send(p.ns_a, p.ip_b, 7788, 3, sport=40788)
    q = "G.Flows().Has('CaptureID','%s','LayersPath','%s','Network.A','%s','ICMP.Type','ECHO')"
    stack.wait_q(q % (ce, ICMP4, p.ip_a) + ".Values('Metric.BAPackets')", [5])
    stack.wait_q(q % (ca, ICMP4, p.ip_a) + ".Values('Metric.BAPackets')", [5])
    (f,) = stack.q(q % (ce, ICMP4, p.ip_a))
    (g,) = stack.q(q % (ca, ICMP4, p.ip_a))
    assert f["Metric"]["ABPackets"] == 5 and f["Metric"]["ABBytes"] == 490 and f["Metric"]["BABytes"] == 490
    assert f["Metric"]["RTT"] > 0
    assert f["TrackingID"] == g["TrackingID"] and f["UUID"] != g["UUID"]
    assert f["NodeTID"] == stack.node(p.a)["Metadata"]["TID"]
    assert {k: f[k] for k in ("Link", "Network", "ICMP", "LayersPath", "Application")} == \
        {k: g[k] for k in ("Link", "Network", "ICMP", "LayersPath", "Application")}
    udp = "G.Flows().Has('CaptureID','%s','Transport', 7788)" % ce
    stack.wait_q(udp + ".Values('Metric.ABPackets')", [3])
    stack.wait_q(udp + ".Values('Transport.A')", [40788])

    def received(v):
        caps = v[0]["Metadata"].get("Captures") or []
        return any(c["ID"] == ce and c["Type"] == "ebpf" and c.get("PacketsReceived", 0) >= 13 for c in caps)
    stack.wait_q(qa, received)
    # the attach point as run: tcx where the kernel has it (6.6+), else the socket filter
    tcx = tuple(int(x) for x in os.uname().release.split("-")[0].split(".")[:2]) >= (6, 6)
    (entry,) = [c for c in stack.node(p.a)["Metadata"]["Captures"] if c["ID"] == ce]
    assert entry["EBPFAttach"] == ("tcx" if tcx else "socket")
    assert stack.delete_capture(ce).status_code == 200
    assert stack.delete_capture(ca).status_code == 200
    stack.wait_q("G.Flows().Has('CaptureID','%s').Count()" % ce, 0)


def _types_on(stack, name):
    return {c["ID"]: c["Type"] for c in stack.node(name)["Metadata"].get("Captures") or []}


def test_untyped_capture_runs_ebpf_unless_its_options_need_packets(stack, net, names):
    """No Type: ebpf where the host runs it and the capture asks nothing that needs whole packets,
    afpacket for a BPF filter or raw packets, and for a second one on a node already running ebpf
    (single per node); the node's Captures[].Type is the type as run, counts exact in both."""
    if "ebpf" not in stack.q("G.V().Has('Type','host','Name','%s')" % stack.agent_host_id)[0]["Metadata"]["CaptureTypes"]:
        pytest.skip("this host cannot run ebpf captures")
    p = Pair(net, names)
    qa = "G.V().Has('Name','%s')" % p.a
    qb = "G.V().Has('Name','%s')" % p.b
    plain = stack.capture(GremlinQuery=qa)
    stack.wait_active(plain, qa)
    second = stack.capture(GremlinQuery=qa + ".Has('Type','veth')", LayerKeyMode="L3")    # another query: no 409
    bpf = stack.capture(GremlinQuery=qb, BPFFilter="icmp")
    # (L3: two captures of one node with the same key mode give a flow the same UUID)
    raw = stack.capture(GremlinQuery=qb + ".Has('Type','veth')", RawPacketLimit=2, LayerKeyMode="L3")
    for cid, q in ((second, qa), (bpf, qb), (raw, qb)):
        stack.wait_active(cid, q)
    assert _types_on(stack, p.a) == {plain: "ebpf", second: "afpacket"}
    assert _types_on(stack, p.b) == {bpf: "afpacket", raw: "afpacket"}
    ping(p.ns_a, p.ip_b, 4)
    q = "G.Flows().Has('CaptureID','%s','Network.A','%s','ICMP.Type','ECHO').Values('Metric.ABPackets')"
    for cid in (plain, second, bpf, raw):
        stack.wait_q(q % (cid, p.ip_a), [4])
    # the capture resource keeps no Type: each node shows what it runs
    assert not requests.get(stack.url + "/api/capture/" + plain, timeout=10).json().get("Type")
    for cid in (plain, second, bpf, raw):
        assert stack.delete_capture(cid).status_code == 200
