"""Geneve and MPLS decoding; tunnel flows keyed on VNI + destination port (spec 5.2), the inner
flow a child (ParentUUID) whose TrackingID is the unencapsulated conversation's."""

from skydive_runtime.flow import decode as d
from skydive_runtime.flow.table import FlowTable
from tests.flow.frames import (MAC1, MAC2, IP1, IP2, eth, ipv4, udp, icmp4, icmp4_frame, vxlan, gre, geneve,
                               geneve_option, mpls)

VM_A, VM_B = b"\x0a" * 6, b"\x0b" * 6
IN_A, IN_B = bytes([192, 168, 7, 1]), bytes([192, 168, 7, 2])


def ns(ms):
    return ms * 1000000


def inner_echo(typ, reverse=False):
    if reverse:
        return icmp4_frame(typ, ident=9, src_mac=VM_B, dst_mac=VM_A, src=IN_B, dst=IN_A)
    return icmp4_frame(typ, ident=9, src_mac=VM_A, dst_mac=VM_B, src=IN_A, dst=IN_B)


def test_geneve_vni_options_and_inner():
    opt = geneve_option(0x0102, 0x80, b"\x00\x01\x00\x02")      # OVN: logical ingress/egress port keys
    frame = eth(MAC1, MAC2, 0x0800, ipv4(IP1, IP2, 17, udp(40000, 6081, geneve(0x123456, inner_echo(8), opt))))
    p = d.decode(frame)
    assert p.layers_path == "Ethernet/IPv4/UDP/Geneve"
    assert p.net_id == 0x123456 and p.tunnel_dport == 6081
    assert p.tunnel_options == ((0x0102, 0x80, b"\x00\x01\x00\x02"),)
    assert p.inner.layers_path == "Ethernet/IPv4/ICMPv4" and p.inner.net_id == 0
    assert frame[p.tunnel_end:] == inner_echo(8)
    # IP payload (protocol 0x0800), and options longer than the packet: Geneve only, no inner
    raw = ipv4(IN_A, IN_B, 1, icmp4(8, 0, 1, 1))
    p = d.decode(eth(MAC1, MAC2, 0x0800, ipv4(IP1, IP2, 17, udp(1, 6081, geneve(7, raw, proto=0x0800)))))
    assert p.inner.layers_path == "IPv4/ICMPv4"
    bad = geneve(7, b"", geneve_option(1, 1, b"\x00" * 8))[:-4]
    p = d.decode(eth(MAC1, MAC2, 0x0800, ipv4(IP1, IP2, 17, udp(1, 6081, bad))))
    assert p.layers_path == "Ethernet/IPv4/UDP/Geneve" and p.inner is None


def test_mpls_label_stack():
    raw = ipv4(IN_A, IN_B, 1, icmp4(8, 0, 1, 1))
    p = d.decode(eth(MAC1, MAC2, 0x8847, mpls([100, 200], raw)))
    assert p.layers_path == "Ethernet/MPLS/MPLS" and p.mpls_labels == (100, 200)
    assert p.inner.layers_path == "IPv4/ICMPv4"
    # MPLS over GRE, Ethernet payload (upstream's TestGREMPLS / Contrail)
    p = d.decode(eth(MAC1, MAC2, 0x0800, ipv4(IP1, IP2, 47, gre(0x8847, mpls([16], inner_echo(8)), key=5))))
    assert p.layers_path == "Ethernet/IPv4/GRE/MPLS" and p.mpls_labels == (16,) and p.net_id == 5
    assert p.inner.layers_path == "Ethernet/IPv4/ICMPv4"
    # truncated stack: no bottom label, no inner
    p = d.decode(eth(MAC1, MAC2, 0x8847, mpls([1, 2], b"")[:4]))
    assert p.layers_path == "Ethernet/MPLS" and p.inner is None


def _tunnel_conversation(encap, dport):
    """2 echo requests A->B with different outer source ports, 2 replies B->A: one outer flow,
    one inner flow (both ways), and the inner TrackingID = the unencapsulated conversation's."""
    t = FlowTable(node_tid="uplink")
    for i, (sport, reverse) in enumerate(((50001, False), (50002, False), (50003, True), (50004, True))):
        inner = inner_echo(0 if reverse else 8, reverse)
        src, dst, smac, dmac = (IP2, IP1, MAC2, MAC1) if reverse else (IP1, IP2, MAC1, MAC2)
        t.process(eth(smac, dmac, 0x0800, ipv4(src, dst, 17, udp(sport, dport, encap(77, inner)))), ns(i))
    flows = t.get_flows()
    assert len(flows) == 2, [f["LayersPath"] for f in flows]
    outer = [f for f in flows if f["LayersPath"].endswith(("VXLAN", "Geneve"))][0]
    child = [f for f in flows if f is not outer][0]
    assert outer["Network"]["ID"] == 77 and outer["Transport"] == {"Protocol": "UDP", "A": 50001, "B": dport, "ID": 0}
    assert outer["Metric"]["ABPackets"] == 2 and outer["Metric"]["BAPackets"] == 2
    assert child["ParentUUID"] == outer["UUID"] and child["Network"]["ID"] == 0
    assert child["Metric"]["ABPackets"] == 2 and child["Metric"]["BAPackets"] == 2
    vm = FlowTable(node_tid="vm")
    vm.process(inner_echo(8), ns(0))
    vm.process(inner_echo(0, True), ns(1))
    (vm_flow,) = vm.get_flows()
    assert child["TrackingID"] == vm_flow["TrackingID"] and child["UUID"] != vm_flow["UUID"]
    return outer


def test_geneve_flow_keyed_on_vni_and_dport():
    outer = _tunnel_conversation(lambda vni, inner: geneve(vni, inner), 6081)
    assert outer["LayersPath"] == "Ethernet/IPv4/UDP/Geneve"


def test_vxlan_flow_keyed_on_vni_and_dport():
    outer = _tunnel_conversation(vxlan, 4789)
    assert outer["LayersPath"] == "Ethernet/IPv4/UDP/VXLAN"


def test_tunnels_of_other_vnis_are_other_flows():
    t = FlowTable()
    for vni in (1, 2):
        t.process(eth(MAC1, MAC2, 0x0800, ipv4(IP1, IP2, 17, udp(5, 6081, geneve(vni, inner_echo(8))))), ns(0))
    outers = [f for f in t.get_flows() if f["LayersPath"].endswith("Geneve")]
    assert sorted(f["Network"]["ID"] for f in outers) == [1, 2]
