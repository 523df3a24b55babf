import pytest

from skydive_runtime.flow import decode as d
from tests.flow.frames import (MAC1, MAC2, IP1, IP2, IP6_1, IP6_2, eth, ipv4, ipv6, udp, sctp, icmp4,
                               icmp6, arp, vxlan, gre, dns_query, udp4_frame, tcp4_frame, icmp4_frame)


def test_ethernet_ipv4_icmp_echo():
    p = d.decode(icmp4_frame(8, ident=123, seq=1))
    assert p.layers_path == "Ethernet/IPv4/ICMPv4"
    assert p.application == "ICMPv4"
    assert (p.link_src, p.link_dst) == (MAC1, MAC2)
    assert (p.net_src, p.net_dst) == (IP1, IP2)
    assert (p.icmp_type, p.icmp_code, p.icmp_id, p.icmp_kind) == (8, 0, 123, "ECHO")
    assert p.ttl == 64 and not p.fragment


def test_dot1q_chain():
    p = d.decode(icmp4_frame(0, ident=5, vlans=(100, 200)))
    assert p.layers_path == "Ethernet/Dot1Q/Dot1Q/IPv4/ICMPv4"
    assert p.vlans == (100, 200)
    p = d.decode(icmp4_frame(0, ident=5, vlans=(42,)))
    assert p.layers_path == "Ethernet/Dot1Q/IPv4/ICMPv4"
    assert p.vlans == (42,)


def test_ipv4_fragments():
    first = eth(MAC1, MAC2, 0x0800, ipv4(IP1, IP2, 17, udp(1, 2, b"a" * 40), frag=0x2000))
    p = d.decode(first)
    assert p.fragment and p.frag_offset == 0
    assert p.layers_path == "Ethernet/IPv4/UDP" and p.sport == 1
    later = eth(MAC1, MAC2, 0x0800, ipv4(IP1, IP2, 17, b"b" * 40, frag=0x0005))
    p = d.decode(later)
    assert p.fragment and p.frag_offset == 5
    assert p.l4_proto == 0 and p.layers_path == "Ethernet/IPv4/Fragment"


def test_ipv6_icmpv6_echo_and_neighbor():
    p = d.decode(eth(MAC1, MAC2, 0x86DD, ipv6(IP6_1, IP6_2, 58, icmp6(128, 0, 456, 1))))
    assert p.layers_path == "Ethernet/IPv6/ICMPv6/ICMPv6Echo"
    assert (p.icmp_kind, p.icmp_id, p.net_proto) == ("ECHO", 456, 6)
    assert (p.net_src, p.net_dst) == (IP6_1, IP6_2)
    p = d.decode(eth(MAC1, MAC2, 0x86DD, ipv6(IP6_1, IP6_2, 58, icmp6(135, 0, 0, 0, b"\x00" * 16))))
    assert p.layers_path == "Ethernet/IPv6/ICMPv6/ICMPv6NeighborSolicitation"
    assert p.icmp_kind == "NEIGHBOR" and p.icmp_id == 0


def test_ipv6_extension_header_then_udp():
    hop = bytes([17, 0]) + b"\x00" * 6          # hop-by-hop, next header UDP
    p = d.decode(eth(MAC1, MAC2, 0x86DD, ipv6(IP6_1, IP6_2, 0, hop + udp(5000, 6000))))
    assert p.layers_path == "Ethernet/IPv6/IPv6HopByHop/UDP"
    assert (p.sport, p.dport) == (5000, 6000)


def test_arp():
    p = d.decode(eth(MAC1, b"\xff" * 6, 0x0806, arp(1, MAC1, IP1, b"\x00" * 6, IP2)))
    assert p.layers_path == "Ethernet/ARP"
    assert p.application == "ARP" and p.net_proto == 0 and p.ethertype == 0x0806


def test_tcp_flags_seq_and_ports():
    p = d.decode(tcp4_frame(flags=0x02, seq=123456, sport=33000, dport=22))
    assert p.layers_path == "Ethernet/IPv4/TCP"
    assert (p.sport, p.dport, p.tcp_flags, p.tcp_seq, p.tcp_payload) == (33000, 22, 0x02, 123456, 0)
    p = d.decode(tcp4_frame(flags=0x18, payload=b"hello"))
    assert p.tcp_payload == 5


def test_udp_dns_and_dhcp_application_layers():
    p = d.decode(udp4_frame(sport=40000, dport=53, payload=dns_query()))
    assert p.layers_path == "Ethernet/IPv4/UDP/DNS" and p.application == "DNS"
    p = d.decode(udp4_frame(sport=68, dport=67, payload=b"\x01" * 240))
    assert p.layers_path == "Ethernet/IPv4/UDP/DHCPv4"
    p = d.decode(udp4_frame(sport=40000, dport=40001))
    assert p.layers_path == "Ethernet/IPv4/UDP" and p.application == "UDP"


def test_sctp():
    p = d.decode(eth(MAC1, MAC2, 0x0800, ipv4(IP1, IP2, 132, sctp(3868, 3869))))
    assert p.layers_path == "Ethernet/IPv4/SCTP"
    assert (p.sport, p.dport, p.l4_proto) == (3868, 3869, 132)


def test_vxlan_inner_packet():
    inner = icmp4_frame(8, ident=9, src_mac=b"\x0a" * 6, dst_mac=b"\x0b" * 6,
                        src=bytes([192, 168, 0, 1]), dst=bytes([192, 168, 0, 2]))
    outer = eth(MAC1, MAC2, 0x0800, ipv4(IP1, IP2, 17, udp(50000, 4789, vxlan(42, inner))))
    p = d.decode(outer)
    assert p.layers_path == "Ethernet/IPv4/UDP/VXLAN"
    assert p.inner is not None
    assert p.inner.layers_path == "Ethernet/IPv4/ICMPv4"
    assert p.net_id == 42 and p.inner.net_id == 0      # the VNI is the outer flow's Network.ID
    assert p.tunnel_dport == 4789
    assert p.inner.net_src == bytes([192, 168, 0, 1]) and p.inner.icmp_id == 9
    assert outer[p.tunnel_end:] == inner


def test_gre_inner_ip_and_key():
    inner = ipv4(bytes([172, 16, 0, 1]), bytes([172, 16, 0, 2]), 1, icmp4(8, 0, 77, 1))
    p = d.decode(eth(MAC1, MAC2, 0x0800, ipv4(IP1, IP2, 47, gre(0x0800, inner, key=1234))))
    assert p.layers_path == "Ethernet/IPv4/GRE"
    assert p.inner.layers_path == "IPv4/ICMPv4"
    assert p.net_id == 1234 and p.inner.net_id == 0 and p.inner.link_src is None
    # Ethernet over GRE (gretap)
    inner_eth = icmp4_frame(8, ident=3)
    p = d.decode(eth(MAC1, MAC2, 0x0800, ipv4(IP1, IP2, 47, gre(0x6558, inner_eth))))
    assert p.inner.layers_path == "Ethernet/IPv4/ICMPv4"


def test_raw_ip_and_linux_sll_link_types():
    p = d.decode(ipv4(IP1, IP2, 17, udp(1, 2)), d.LINKTYPE_RAW)
    assert p.layers_path == "IPv4/UDP" and p.link_src is None
    sll = b"\x00\x00\x00\x01\x00\x06" + MAC1 + b"\x00\x00" + b"\x08\x00"
    p = d.decode(sll + ipv4(IP1, IP2, 1, icmp4(8, 0, 1)), d.LINKTYPE_LINUX_SLL)
    assert p.layers_path == "IPv4/ICMPv4"


@pytest.mark.parametrize("cut", [0, 5, 13, 14, 20, 33, 34, 37, 41])
def test_truncated_frames_never_raise(cut):
    frame = tcp4_frame(flags=0x02)
    p = d.decode(frame[:cut])
    path = p.layers_path
    assert path in ("", "Ethernet", "Ethernet/IPv4", "Ethernet/IPv4/TCP")
    if cut < 14:
        assert path == ""
    elif cut < 34:
        assert path == "Ethernet"


def test_bad_input_types():
    with pytest.raises(d.DecodeError):
        d.decode("not bytes")
    with pytest.raises(d.DecodeError, match="unsupported link type 999"):
        d.decode(b"\x00" * 60, 999)


def test_memoryview_input():
    frame = udp4_frame()
    assert d.decode(memoryview(frame)).layers_path == "Ethernet/IPv4/UDP"
