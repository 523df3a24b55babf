"""Analyzer-side resolution of an injection for one source node (analyzer/injections.py), on real
graph nodes: next hop from RoutingTables/Neighbors, fallbacks, per-node ids and ports."""

import pytest

from skydive_runtime.analyzer.injections import destination_mac, injection_query, node_ips, resolve_request
from skydive_runtime.api.resources import ResourceError
from skydive_runtime.graph import Graph

GW_MAC, ONLINK_MAC, DST_MAC, ATTACHED = "02:00:00:00:00:01", "02:00:00:00:00:02", "02:00:00:00:00:03", "fa:16:3e:00:00:04"


def _src(g, **extra):
    md = {"Name": "eth0", "Type": "veth", "MAC": "02:00:00:00:00:aa", "IPV4": ["192.168.1.10/24"],
          "IPV6": ["fe80::1/64", "fd00::10/64"],
          "RoutingTables": [{"ID": 254, "Src": "", "Routes": [
              {"Protocol": 2, "Prefix": "192.168.1.0/24", "NextHops": [{"Priority": 0, "IfIndex": 2}]},
              {"Protocol": 3, "Prefix": "0.0.0.0/0", "NextHops": [{"Priority": 0, "IP": "192.168.1.1", "IfIndex": 2}]}]}],
          "Neighbors": [{"IP": "192.168.1.1", "MAC": GW_MAC, "State": ["NUD_REACHABLE"]},
                        {"IP": "192.168.1.20", "MAC": ONLINK_MAC, "State": ["NUD_REACHABLE"]}]}
    md.update(extra)
    return g.new_node(metadata=md)


def _inj(**kw):
    base = {"UUID": "u1", "Src": "G.V()", "Dst": "", "SrcIP": "", "DstIP": "", "SrcMAC": "", "DstMAC": "",
            "SrcPort": 0, "DstPort": 0, "Type": "icmp4", "Payload": "", "ICMPID": 0, "Count": 1, "Interval": 0,
            "Mode": "", "IncrementPayload": 0, "Pcap": None, "TTL": 64}
    base.update(kw)
    return base


def test_destination_mac_next_hop_onlink_and_fallbacks():
    g = Graph(host_id="h")
    src = _src(g)
    dst = g.new_node(metadata={"Name": "d", "Type": "veth", "MAC": DST_MAC, "IPV4": ["8.8.8.8/32"],
                               "ExtID": {"attached-mac": ATTACHED}})
    assert destination_mac(src, dst, "8.8.8.8") == GW_MAC                  # default route -> gateway
    assert destination_mac(src, dst, "192.168.1.20") == ONLINK_MAC         # on-link, known neighbour
    assert destination_mac(src, dst, "192.168.1.30") == ATTACHED           # on-link, unknown: Dst ExtID
    del dst.Metadata["ExtID"]
    assert destination_mac(src, dst, "192.168.1.30") == DST_MAC            # then Dst MAC
    assert destination_mac(src, None, "192.168.1.30") == ""


def test_resolve_per_node_modes_and_errors():
    g = Graph(host_id="h")
    src = _src(g)
    dst = g.new_node(metadata={"Name": "d", "Type": "veth", "MAC": DST_MAC, "IPV4": ["192.168.1.20/24"],
                               "IPV6": ["fe80::2/64", "fd00::20/64"]})
    r = resolve_request(_inj(), src, dst, 0)
    assert (r["SrcIP"], r["DstIP"], r["SrcMAC"], r["DstMAC"]) == ("192.168.1.10", "192.168.1.20",
                                                                "02:00:00:00:00:aa", ONLINK_MAC)
    assert r["ICMPID"] == 1 and r["Mode"] == "unique" and "Src" not in r
    assert resolve_request(_inj(ICMPID=123), src, dst, 2)["ICMPID"] == 125
    t = resolve_request(_inj(Type="tcp4", SrcPort=65535, DstPort=80), src, dst, 1)
    assert t["SrcPort"] == 1024 and t["DstPort"] == 80
    assert resolve_request(_inj(Mode="random", ICMPID=7), src, dst, 3)["ICMPID"] == 7
    v6 = resolve_request(_inj(Type="icmp6"), src, dst, 0)
    assert (v6["SrcIP"], v6["DstIP"]) == ("fd00::10", "fd00::20")         # global before link-local
    assert node_ips(src, 6) == ["fd00::10", "fe80::1"]
    assert resolve_request(_inj(SrcIP="10.0.0.1/8", DstIP="10.0.0.2", DstMAC=GW_MAC), src, None)["SrcIP"] == "10.0.0.1"
    for kw, d, msg in ((dict(), None, "No destination IP"), (dict(Type="udp6", DstIP="10.0.0.1"), dst, "not an IPv6"),
                       (dict(DstIP="192.168.1.30"), None, "destination MAC")):
        with pytest.raises(ResourceError) as e:
            resolve_request(_inj(**kw), src, d)
        assert msg in str(e.value)
    bare = g.new_node(metadata={"Name": "br", "Type": "bridge", "MAC": DST_MAC})
    with pytest.raises(ResourceError, match="No source IP"):
        resolve_request(_inj(), bare, dst)
    tun = g.new_node(metadata={"Name": "tun0", "Type": "tuntap", "EncapType": "none", "IPV4": ["10.8.0.1/24"]})
    r = resolve_request(_inj(DstIP="10.8.0.2"), tun, None)                 # bare IP: no MAC needed
    assert r["SrcMAC"] == r["DstMAC"] == ""


def test_query():
    assert injection_query({"Src": "G.V().Has('Name','a')", "UUID": "x-1"}) == \
        "G.V().Has('Name','a').Dedup('TID').Has('PacketInjections.ID', NEE('x-1'))"
