import base64
import json
import time

import pytest

from skydive_runtime.flow.table import FlowTable, FlowTableError
from skydive_runtime.flow.flow import parse_key
from tests.flow.frames import (MAC1, MAC2, IP1, IP2, IP6_1, IP6_2, eth, ipv4, ipv6, udp, icmp4, icmp6, arp,
                               vxlan, gre, dns_query, udp4_frame, tcp4_frame, icmp4_frame, sctp)

T0 = 1_700_000_000_000_000_000        # ns
MS0 = T0 // 1_000_000


def ns(ms):
    return T0 + ms * 1_000_000


def only(table):
    flows = table.get_flows()
    assert len(flows) == 1, flows
    return flows[0]


def test_udp_flow_json_shape_and_counts():
    t = FlowTable(node_tid="tid-1", capture_id="cap-1")
    fwd = udp4_frame(sport=1000, dport=2000)
    rev = udp4_frame(src_mac=MAC2, dst_mac=MAC1, src=IP2, dst=IP1, sport=2000, dport=1000)
    t.process(fwd, ns(0))
    t.process(rev, ns(1))
    t.process(fwd, ns(2))
    f = only(t)
    assert set(f) == {"UUID", "LayersPath", "Application", "Link", "Network", "Transport", "LastUpdateMetric",
                      "Metric", "Start", "Last", "TrackingID", "L3TrackingID", "ParentUUID", "NodeTID",
                      "CaptureID", "RawPacketsCaptured"}
    assert f["LayersPath"] == "Ethernet/IPv4/UDP" and f["Application"] == "UDP"
    assert f["Link"] == {"Protocol": "ETHERNET", "A": "02:00:00:00:00:01", "B": "02:00:00:00:00:02", "ID": 0}
    assert f["Network"] == {"Protocol": "IPV4", "A": "10.0.0.1", "B": "10.0.0.2", "ID": 0}
    assert f["Transport"] == {"Protocol": "UDP", "A": 1000, "B": 2000, "ID": 0}
    assert f["Metric"] == {"ABPackets": 2, "ABBytes": 2 * len(fwd), "BAPackets": 1, "BABytes": len(rev),
                           "Start": MS0, "Last": MS0 + 2}
    assert (f["Start"], f["Last"]) == (MS0, MS0 + 2)
    assert f["ParentUUID"] == "" and f["RawPacketsCaptured"] == 0 and "FinishType" not in f
    assert (f["NodeTID"], f["CaptureID"]) == ("tid-1", "cap-1")
    assert len(f["UUID"]) == 16 and len(f["TrackingID"]) == 16
    json.dumps(f)


def test_a_side_is_first_packet_sender():
    t = FlowTable()
    rev = udp4_frame(src_mac=MAC2, dst_mac=MAC1, src=IP2, dst=IP1, sport=2000, dport=1000)
    t.process(rev, ns(0))
    t.process(udp4_frame(sport=1000, dport=2000), ns(1))
    f = only(t)
    assert f["Link"]["A"] == "02:00:00:00:00:02" and f["Network"]["A"] == "10.0.0.2"
    assert f["Transport"]["A"] == 2000
    assert (f["Metric"]["ABPackets"], f["Metric"]["BAPackets"]) == (1, 1)


def test_tracking_id_same_across_capture_points_and_directions():
    fwd = udp4_frame()
    rev = udp4_frame(src_mac=MAC2, dst_mac=MAC1, src=IP2, dst=IP1, sport=2000, dport=1000)
    t1 = FlowTable(node_tid="node-1")
    t2 = FlowTable(node_tid="node-2")
    t1.process(fwd, ns(0))
    t2.process(rev, ns(0))          # the other capture point saw the reply first
    t2.process(fwd, ns(1))
    f1, f2 = only(t1), only(t2)
    assert f1["TrackingID"] == f2["TrackingID"]
    assert f1["L3TrackingID"] == f2["L3TrackingID"]
    assert f1["UUID"] != f2["UUID"]
    # a different conversation has another TrackingID
    t3 = FlowTable(node_tid="node-1")
    t3.process(udp4_frame(sport=1001), ns(0))
    assert only(t3)["TrackingID"] != f1["TrackingID"]


def test_fast_path_and_decoder_agree_on_keys():
    """A TCP handshake goes through the decoder, the ACKs through the fast path: one flow."""
    t = FlowTable()
    syn = tcp4_frame(flags=0x02, sport=33000, dport=80)
    synack = tcp4_frame(src_mac=MAC2, dst_mac=MAC1, src=IP2, dst=IP1, sport=80, dport=33000, flags=0x12)
    ack = tcp4_frame(flags=0x10, sport=33000, dport=80)
    ack_rev = tcp4_frame(src_mac=MAC2, dst_mac=MAC1, src=IP2, dst=IP1, sport=80, dport=33000, flags=0x10)
    t.process(syn, ns(0))
    t.process(synack, ns(3))
    for i in range(5):
        t.process(ack, ns(4 + i))
        t.process(ack_rev, ns(4 + i))
    f = only(t)
    assert f["Metric"]["ABPackets"] == 6 and f["Metric"]["BAPackets"] == 6
    assert f["Metric"]["RTT"] == 3_000_000
    assert f["Transport"] == {"Protocol": "TCP", "A": 33000, "B": 80, "ID": 0}


def test_icmp_echo_rtt_id_and_type():
    t = FlowTable()
    t.process(icmp4_frame(8, ident=123, seq=1), ns(0))
    t.process(icmp4_frame(0, ident=123, seq=1, src_mac=MAC2, dst_mac=MAC1, src=IP2, dst=IP1), ns(2))
    t.process(icmp4_frame(8, ident=123, seq=2), ns(1000))
    t.process(icmp4_frame(8, ident=456, seq=1), ns(1000))
    flows = {f["ICMP"]["ID"]: f for f in t.get_flows()}
    assert set(flows) == {123, 456}
    f = flows[123]
    assert f["ICMP"] == {"Type": "ECHO", "ID": 123}
    assert f["LayersPath"] == "Ethernet/IPv4/ICMPv4" and "Transport" not in f
    assert f["Metric"]["RTT"] == 2_000_000
    assert (f["Metric"]["ABPackets"], f["Metric"]["BAPackets"]) == (2, 1)
    assert "RTT" not in flows[456]["Metric"]          # no reply yet


def test_icmpv6_echo_flow():
    t = FlowTable()
    t.process(eth(MAC1, MAC2, 0x86DD, ipv6(IP6_1, IP6_2, 58, icmp6(128, 0, 77, 1))), ns(0))
    t.process(eth(MAC2, MAC1, 0x86DD, ipv6(IP6_2, IP6_1, 58, icmp6(129, 0, 77, 1))), ns(1))
    f = only(t)
    assert f["LayersPath"] == "Ethernet/IPv6/ICMPv6/ICMPv6Echo"
    assert f["Network"] == {"Protocol": "IPV6", "A": "fd00::1", "B": "fd00::2", "ID": 0}
    assert f["ICMP"] == {"Type": "ECHO", "ID": 77}
    assert f["Metric"]["RTT"] == 1_000_000


def test_vlan_id_in_link_layer():
    t = FlowTable()
    t.process(icmp4_frame(8, ident=1, vlans=(10,)), ns(0))
    t.process(icmp4_frame(8, ident=1, vlans=(20,)), ns(0))
    flows = sorted(t.get_flows(), key=lambda f: f["Link"]["ID"])
    assert [f["Link"]["ID"] for f in flows] == [10, 20]
    assert flows[0]["LayersPath"] == "Ethernet/Dot1Q/IPv4/ICMPv4"


def test_arp_flow_link_only():
    t = FlowTable()
    t.process(eth(MAC1, b"\xff" * 6, 0x0806, arp(1, MAC1, IP1, b"\x00" * 6, IP2)), ns(0))
    f = only(t)
    assert f["LayersPath"] == "Ethernet/ARP" and f["Application"] == "ARP"
    assert "Network" not in f and f["Link"]["B"] == "ff:ff:ff:ff:ff:ff"


def test_sctp_flow():
    t = FlowTable()
    t.process(eth(MAC1, MAC2, 0x0800, ipv4(IP1, IP2, 132, sctp(3868, 3869))), ns(0))
    assert only(t)["Transport"] == {"Protocol": "SCTP", "A": 3868, "B": 3869, "ID": 0}


def test_vxlan_parent_child_flows():
    t = FlowTable(node_tid="n")
    inner = icmp4_frame(8, ident=9, src_mac=b"\x0a" * 6, dst_mac=b"\x0b" * 6,
                        src=bytes([192, 168, 0, 1]), dst=bytes([192, 168, 0, 2]))
    outer = eth(MAC1, MAC2, 0x0800, ipv4(IP1, IP2, 17, udp(50000, 4789, vxlan(42, inner))))
    t.process(outer, ns(0))
    t.process(outer, ns(1))
    flows = {f["LayersPath"]: f for f in t.get_flows()}
    assert set(flows) == {"Ethernet/IPv4/UDP/VXLAN", "Ethernet/IPv4/ICMPv4"}
    parent, child = flows["Ethernet/IPv4/UDP/VXLAN"], flows["Ethernet/IPv4/ICMPv4"]
    assert child["ParentUUID"] == parent["UUID"]
    assert parent["Network"]["ID"] == 42 and child["Network"]["ID"] == 0 and child["Network"]["A"] == "192.168.0.1"
    assert parent["Metric"]["ABPackets"] == 2 and child["Metric"]["ABPackets"] == 2
    assert parent["Metric"]["ABBytes"] == 2 * len(outer) and child["Metric"]["ABBytes"] == 2 * len(inner)


def test_gre_parent_child_flows():
    t = FlowTable()
    inner = ipv4(bytes([172, 16, 0, 1]), bytes([172, 16, 0, 2]), 1, icmp4(8, 0, 77, 1))
    t.process(eth(MAC1, MAC2, 0x0800, ipv4(IP1, IP2, 47, gre(0x0800, inner, key=5))), ns(0))
    flows = {f["LayersPath"]: f for f in t.get_flows()}
    assert flows["IPv4/ICMPv4"]["ParentUUID"] == flows["Ethernet/IPv4/GRE"]["UUID"]
    assert flows["IPv4/ICMPv4"]["Metric"]["ABBytes"] == len(inner)
    assert "Link" not in flows["IPv4/ICMPv4"]


def test_l3_mode_ignores_macs():
    a = udp4_frame(src_mac=MAC1, dst_mac=MAC2)
    b = udp4_frame(src_mac=b"\x02\x99\x00\x00\x00\x01", dst_mac=b"\x02\x99\x00\x00\x00\x02")
    t2 = FlowTable(layer_key_mode="L2")
    t3 = FlowTable(layer_key_mode="L3")
    for t in (t2, t3):
        t.process(a, ns(0))
        t.process(b, ns(1))
    assert len(t2) == 2 and len(t3) == 1
    f = only(t3)
    assert f["Metric"]["ABPackets"] == 2
    assert f["Link"]["A"] == "02:00:00:00:00:01"           # from the first packet
    assert f["TrackingID"] == f["L3TrackingID"]
    # L3TrackingID of an L2 flow equals the L3-mode TrackingID of the same conversation
    assert t2.get_flows()[0]["L3TrackingID"] == f["TrackingID"]


def test_l3_mode_direction_by_ip():
    t = FlowTable(layer_key_mode="L3")
    t.process(udp4_frame(src=IP2, dst=IP1, src_mac=MAC2, dst_mac=MAC1, sport=2000, dport=1000), ns(0))
    t.process(udp4_frame(), ns(1))
    t.process(udp4_frame(), ns(2))
    f = only(t)
    assert f["Network"]["A"] == "10.0.0.2"
    assert (f["Metric"]["ABPackets"], f["Metric"]["BAPackets"]) == (1, 2)


def test_update_tick_last_update_metric():
    t = FlowTable()
    frame = udp4_frame()
    for i in range(3):
        t.process(frame, ns(i))
    out = t.tick(MS0 + 1000)
    assert len(out) == 1
    assert out[0]["LastUpdateMetric"]["ABPackets"] == 3
    assert out[0]["LastUpdateMetric"]["Last"] == MS0 + 1000
    assert t.tick(MS0 + 2000) == []                 # idle: nothing to send
    t.process(frame, ns(2500))
    t.process(frame, ns(2600))
    out = t.tick(MS0 + 3000)
    lum = out[0]["LastUpdateMetric"]
    assert (lum["ABPackets"], lum["ABBytes"], lum["Start"], lum["Last"]) == (2, 2 * len(frame), MS0 + 2000, MS0 + 3000)
    assert out[0]["Metric"]["ABPackets"] == 5


def test_expire_timeout():
    t = FlowTable(expire_ms=5000)
    t.process(udp4_frame(), ns(0))
    assert [f.get("FinishType") for f in t.tick(MS0 + 1000)] == [None]
    assert t.tick(MS0 + 4999) == [] and len(t) == 1
    out = t.tick(MS0 + 5000)
    assert len(out) == 1 and out[0]["FinishType"] == "TIMEOUT" and len(t) == 0


@pytest.mark.parametrize("flags,finish", [(0x11, "TCP_FIN"), (0x14, "TCP_RST")])
def test_hold_after_fin_rst(flags, finish):
    t = FlowTable(hold_ms=15000)
    t.process(tcp4_frame(flags=0x02), ns(0))
    t.process(tcp4_frame(flags=flags), ns(100))
    out = t.tick(MS0 + 1000)
    assert out[0]["FinishType"] == finish and len(t) == 1
    assert t.tick(MS0 + 15099) == []
    out = t.tick(MS0 + 15100)
    assert out[0]["FinishType"] == finish and len(t) == 0


def test_application_timeouts_arp_dns():
    t = FlowTable(expire_ms=600000)
    t.process(eth(MAC1, b"\xff" * 6, 0x0806, arp(1, MAC1, IP1, b"\x00" * 6, IP2)), ns(0))
    t.process(udp4_frame(sport=40000, dport=53, payload=dns_query()), ns(0))
    t.process(udp4_frame(sport=40000, dport=40001), ns(0))
    t.tick(MS0 + 9999)
    assert len(t) == 3
    out = t.tick(MS0 + 10000)
    assert sorted(f["Application"] for f in out) == ["ARP", "DNS"]
    assert all(f["FinishType"] == "TIMEOUT" for f in out)
    assert len(t) == 1


def test_application_ports():
    t = FlowTable(application_ports={"http": [8080], "9999": "custom"})
    t.process(tcp4_frame(dport=8080, flags=0x02), ns(0))
    t.process(udp4_frame(dport=9999), ns(0))
    t.process(udp4_frame(dport=1234), ns(0))
    assert sorted(f["Application"] for f in t.get_flows()) == ["CUSTOM", "HTTP", "UDP"]
    with pytest.raises(FlowTableError, match="invalid port"):
        FlowTable(application_ports={"http": ["eighty"]})
    with pytest.raises(FlowTableError, match="invalid port"):
        FlowTable(application_ports={"udp": {70000: "x"}})


def test_application_ports_per_protocol():
    t = FlowTable(application_ports={"tcp": {8080: "http-alt"}, "udp": {"5000": "rtp"}})
    t.process(tcp4_frame(dport=8080, flags=0x02), ns(0))
    t.process(udp4_frame(dport=8080), ns(0))
    t.process(udp4_frame(dport=5000), ns(0))
    t.process(tcp4_frame(dport=5000, flags=0x02), ns(0))
    apps = sorted((f["Transport"]["Protocol"], f["Transport"]["B"], f["Application"]) for f in t.get_flows())
    assert apps == [("TCP", 5000, "TCP"), ("TCP", 8080, "HTTP-ALT"), ("UDP", 5000, "RTP"), ("UDP", 8080, "UDP")]


def test_bounded_table_lru_eviction():
    t = FlowTable(max_entries=3)
    frames = [udp4_frame(sport=1000 + i) for i in range(4)]
    for i in range(3):
        t.process(frames[i], ns(i))
    t.process(frames[0], ns(10))           # flow 0 recently used
    t.process(frames[3], ns(11))           # table full: evicts the least recently used (flow 1)
    assert len(t) == 3 and t.flows_dropped == 1
    ports = sorted(f["Transport"]["A"] for f in t.get_flows())
    assert ports == [1000, 1002, 1003]
    out = t.tick(MS0 + 1000)
    evicted = [f for f in out if f.get("FinishType") == "TIMEOUT"]
    assert [f["Transport"]["A"] for f in evicted] == [1001]
    assert t.stats()["FlowDropped"] == 1


def test_eviction_under_flood_keeps_bound(monkeypatch):
    from skydive_runtime.flow import table as table_mod
    monkeypatch.setattr(table_mod, "MAX_PENDING_EVICTED", 2500)
    t = FlowTable(max_entries=1000)
    for i in range(5000):
        t.process(udp4_frame(sport=1 + i), ns(i))
    assert len(t) == 1000 and t.flows_dropped == 4000
    out = t.tick(MS0 + 10000)
    assert len([f for f in out if f.get("FinishType") == "TIMEOUT"]) == 2500      # evicted, sent once
    assert len(out) == 2500 + 1000                                                  # + the live ones
    assert t.evicted_unsent == 1500


def test_raw_packets_limit_and_header_size():
    t = FlowTable(raw_packet_limit=3, header_size=20)
    frame = icmp4_frame(8, ident=1)
    for i in range(5):
        t.process(frame, ns(i))
    f = only(t)
    assert f["RawPacketsCaptured"] == 3
    raws = f["LastRawPackets"]
    assert [r["Index"] for r in raws] == [0, 1, 2]
    assert base64.b64decode(raws[0]["Data"]) == frame[:20]
    assert raws[0]["LinkType"] == 1 and raws[1]["Timestamp"] == MS0 + 1
    with pytest.raises(FlowTableError, match="raw packet limit"):
        FlowTable(raw_packet_limit=11)


def test_extra_tcp_metric():
    t = FlowTable(extra_tcp_metric=True)
    t.process(tcp4_frame(flags=0x02, seq=100), ns(0))
    t.process(tcp4_frame(src_mac=MAC2, dst_mac=MAC1, src=IP2, dst=IP1, sport=80, dport=1000, flags=0x12, seq=500), ns(1))
    t.process(tcp4_frame(flags=0x18, seq=101, payload=b"abcd"), ns(2))
    t.process(tcp4_frame(flags=0x18, seq=110, payload=b"efgh"), ns(3))        # 5 bytes skipped
    t.process(tcp4_frame(flags=0x18, seq=105, payload=b"zz"), ns(4))          # out of order
    t.process(tcp4_frame(flags=0x11, seq=114), ns(5))
    m = only(t)["TCPMetric"]
    assert (m["ABSynStart"], m["BASynStart"], m["ABSynTTL"]) == (MS0, MS0 + 1, 64)
    assert m["ABFinStart"] == MS0 + 5 and m["ABSawStart"] is True and m["ABSawEnd"] is True
    assert (m["ABPackets"], m["ABBytes"]) == (3, 10)
    assert (m["ABSegmentSkipped"], m["ABSegmentSkippedBytes"], m["ABSegmentOutOfOrder"]) == (1, 5, 1)


def test_bytes_without_link_layer_use_ip_length():
    t = FlowTable(linktype=101)
    pkt = ipv4(IP1, IP2, 17, udp(1, 2, b"z" * 30))
    t.process(pkt + b"\x00" * 10, ns(0), linktype=101)        # trailing padding is not counted
    f = only(t)
    assert f["LayersPath"] == "IPv4/UDP" and "Link" not in f
    assert f["Metric"]["ABBytes"] == len(pkt)


def test_wire_length_is_counted_for_truncated_captures():
    t = FlowTable()
    frame = udp4_frame(payload=b"x" * 1000)
    t.process(frame[:64], ns(0), len(frame))
    assert only(t)["Metric"]["ABBytes"] == len(frame)


def test_garbage_is_counted_not_raised():
    t = FlowTable()
    t.process(b"\x00\x01", ns(0))
    t.process(b"", ns(0))
    assert len(t) == 0 and t.undecodable == 2


def test_invalid_parameters():
    with pytest.raises(FlowTableError, match="layer key mode"):
        FlowTable(layer_key_mode="L4")
    with pytest.raises(FlowTableError, match="expire_ms"):
        FlowTable(expire_ms=0)
    with pytest.raises(FlowTableError, match="max_entries"):
        FlowTable(max_entries=0)


def test_parse_key_roundtrip_fields():
    t = FlowTable()
    t.process(icmp4_frame(8, ident=300, vlans=(7,)), ns(0))
    k = parse_key(next(iter(t.flows)))
    assert k["vlans"] == (7,) and k["icmp"] == (2, 0, 300)
    with pytest.raises(ValueError):
        parse_key(b"")


def test_mutated_frames_never_raise():
    """Random corruption/truncation/extension of every kind of frame: counted, never raised."""
    import random
    from tests.flow import frames as F
    base = [udp4_frame(), tcp4_frame(flags=2), icmp4_frame(8, vlans=(5,)),
            eth(MAC1, MAC2, 0x86DD, ipv6(IP6_1, IP6_2, 58, icmp6(128, 0, 1, 1))),
            eth(MAC1, MAC2, 0x0800, ipv4(IP1, IP2, 17, udp(5, 4789, vxlan(3, icmp4_frame(8))))),
            eth(MAC1, MAC2, 0x0800, ipv4(IP1, IP2, 47, gre(0x6558, icmp4_frame(8), key=3))),
            eth(MAC1, MAC2, 0x0806, arp(1, MAC1, IP1, MAC2, IP2)), F.sctp(1, 2)]
    rnd = random.Random(1234)
    tables = [FlowTable(layer_key_mode=m, raw_packet_limit=r, extra_tcp_metric=bool(r))
              for m in ("L2", "L3") for r in (0, 2)]
    for i in range(3000):
        b = bytearray(rnd.choice(base))
        for _ in range(rnd.randint(1, 6)):
            op = rnd.random()
            if op < 0.6 and b:
                b[rnd.randrange(len(b))] = rnd.randrange(256)
            elif op < 0.8:
                del b[rnd.randrange(len(b) + 1):]
            else:
                b += bytes(rnd.randrange(256) for _ in range(rnd.randint(1, 20)))
        for t in tables:
            t.process(bytes(b), ns(i))
    for t in tables:
        assert len(t) > 10
        json.dumps(t.tick(MS0 + 100000))
    with pytest.raises(Exception, match="must be bytes"):
        tables[0].process("text frame", ns(0))


@pytest.mark.parametrize("mode", ["L2", "L3"])
def test_ipv6_udp_tcp_flows_both_directions(mode):
    t = FlowTable(layer_key_mode=mode)
    fwd = eth(MAC1, MAC2, 0x86DD, ipv6(IP6_1, IP6_2, 17, udp(1000, 2000)))
    rev = eth(MAC2, MAC1, 0x86DD, ipv6(IP6_2, IP6_1, 17, udp(2000, 1000)))
    from tests.flow.frames import tcp
    syn = eth(MAC2, MAC1, 0x86DD, ipv6(IP6_2, IP6_1, 6, tcp(3000, 80, 0x02)))
    ack = eth(MAC2, MAC1, 0x86DD, ipv6(IP6_2, IP6_1, 6, tcp(3000, 80, 0x10)))
    ack_rev = eth(MAC1, MAC2, 0x86DD, ipv6(IP6_1, IP6_2, 6, tcp(80, 3000, 0x10)))
    for i in range(4):
        t.process(fwd, ns(i))
        t.process(rev, ns(i))
    t.process(syn, ns(10))
    for i in range(3):
        t.process(ack, ns(11 + i))
        t.process(ack_rev, ns(11 + i))
    flows = {f["Transport"]["Protocol"]: f for f in t.get_flows()}
    assert len(t) == 2
    u, tc = flows["UDP"], flows["TCP"]
    assert (u["Metric"]["ABPackets"], u["Metric"]["BAPackets"]) == (4, 4)
    assert u["Network"]["A"] == "fd00::1" and u["LayersPath"] == "Ethernet/IPv6/UDP"
    assert (tc["Metric"]["ABPackets"], tc["Metric"]["BAPackets"]) == (4, 3)
    assert tc["Transport"]["A"] == 3000 and tc["Network"]["A"] == "fd00::2"


@pytest.mark.parametrize("mode", ["L2", "L3"])
def test_ping_sequence_counts_and_first_rtt(mode):
    t = FlowTable(layer_key_mode=mode)
    for i in range(5):
        t.process(icmp4_frame(8, ident=9, seq=i), ns(100 * i))
        t.process(icmp4_frame(0, ident=9, seq=i, src_mac=MAC2, dst_mac=MAC1, src=IP2, dst=IP1), ns(100 * i + 3 + i))
    f = only(t)
    assert (f["Metric"]["ABPackets"], f["Metric"]["BAPackets"]) == (5, 5)
    assert f["Metric"]["ABBytes"] == 5 * len(icmp4_frame(8))
    assert f["Metric"]["RTT"] == 3_000_000             # request -> first reply
    assert f["Last"] == MS0 + 407


def test_packet_clock_tick_before_the_first_packet():
    """pcapsocket replays keep their packet time: a timer tick before the first packet must not
    put the table's last tick on the wall clock, years after the replayed packets."""
    from skydive_runtime.flow.capture import FilteredTable
    t = FilteredTable(FlowTable(node_tid="tid-1", capture_id="cap-1"), packet_clock=True)
    assert t.tick(int(time.time() * 1000)) == []
    replay_ms = 1454659514000
    t.process(udp4_frame(), replay_ms * 1000000)
    out = t.tick(int(time.time() * 1000))
    assert len(out) == 1
    lum = out[0]["LastUpdateMetric"]
    assert lum["Start"] <= lum["Last"] and lum["Start"] // 1000 == replay_ms // 1000, lum


def test_filtered_table_snapshot():
    """A live query's snapshot reads a filtered, packet-clocked table (pcapsocket, sflow) like any
    other: only the frames the filter kept, stamped on packet time."""
    from skydive_runtime.flow.capture import FilteredTable
    t = FilteredTable(FlowTable(node_tid="tid-1", capture_id="cap-1"), expr="udp", packet_clock=True)
    replay_ms = 1454659514000
    t.process(udp4_frame(), replay_ms * 1000000)
    flows = t.get_flows(int(time.time() * 1000))
    assert len(flows) == 1 and flows[0]["Application"] == "UDP", flows
    assert flows[0]["Last"] // 1000 == replay_ms // 1000, flows[0]
    t2 = FilteredTable(FlowTable(node_tid="tid-1", capture_id="cap-2"), expr="tcp")
    t2.process(udp4_frame(), replay_ms * 1000000)
    assert t2.get_flows() == []
