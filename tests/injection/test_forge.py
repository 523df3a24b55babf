"""skydive_runtime.flow.forge: the bytes of injected packets, checked field by field, with
independent checksum verification and through the flow decoder."""

import random
import socket
import struct

import pytest

from skydive_runtime.flow import forge
from skydive_runtime.flow.decode import LINKTYPE_RAW, decode

MA, MB = "02:00:00:00:00:0a", "02:00:00:00:00:0b"


def ones_sum_ok(data):
    """A correct Internet checksum makes the one's complement sum of the covered bytes 0xffff."""
    return forge.checksum(data) == 0


def test_checksum_known_vector():
    # RFC 1071 / Wikipedia IPv4 header example: checksum 0xb861
    hdr = bytes.fromhex("450000730000400040110000c0a80001c0a800c7")
    assert forge.checksum(hdr) == 0xB861
    assert forge.checksum(b"\x01") == 0xFEFF          # odd length: zero padded


def test_icmp4_frame_fields_and_checksums():
    f = forge.forge_packet("icmp4", "10.1.2.3", "10.1.2.4/24", src_mac=MA, dst_mac=MB, ttl=17,
                           icmp_id=123, seq=7, payload=b"x" * 56, ip_ident=99)
    assert len(f) == 98                                 # a default ping's frame
    assert f[0:6] == bytes.fromhex("02000000000b") and f[6:12] == bytes.fromhex("02000000000a")
    assert struct.unpack_from("!H", f, 12)[0] == 0x0800
    ip = f[14:34]
    assert ip[0] == 0x45 and struct.unpack_from("!H", ip, 2)[0] == 84 and ip[8] == 17 and ip[9] == 1
    assert struct.unpack_from("!H", ip, 4)[0] == 99
    assert ip[12:16] == socket.inet_aton("10.1.2.3") and ip[16:20] == socket.inet_aton("10.1.2.4")
    assert ones_sum_ok(ip)
    icmp = f[34:]
    assert icmp[0] == 8 and icmp[1] == 0 and struct.unpack_from("!HH", icmp, 4) == (123, 7)
    assert ones_sum_ok(icmp)
    p = decode(f)
    assert p.layers_path == "Ethernet/IPv4/ICMPv4" and p.icmp_id == 123 and p.icmp_kind == "ECHO"
    assert p.ttl == 17


def test_icmp6_echo_pseudo_header_checksum():
    src, dst = "fd00:1::1", "fd00:1::2"
    f = forge.forge_packet("icmp6", src, dst, src_mac=MA, dst_mac=MB, ttl=5, icmp_id=456, seq=1,
                           payload=b"abc")
    assert struct.unpack_from("!H", f, 12)[0] == 0x86DD
    ip6 = f[14:54]
    assert ip6[0] >> 4 == 6 and ip6[6] == 58 and ip6[7] == 5
    plen = struct.unpack_from("!H", ip6, 4)[0]
    msg = f[54:]
    assert plen == len(msg) == 8 + 3
    pseudo = socket.inet_pton(socket.AF_INET6, src) + socket.inet_pton(socket.AF_INET6, dst) + \
        struct.pack("!I3xB", plen, 58)
    assert ones_sum_ok(pseudo + msg)
    p = decode(f)
    assert p.layers_path == "Ethernet/IPv6/ICMPv6/ICMPv6Echo" and p.icmp_id == 456


def test_tcp_syn_and_udp_checksums():
    t = forge.forge_packet("tcp4", "192.168.1.1", "192.168.1.2", src_mac=MA, dst_mac=MB, sport=40000,
                           dport=8080, tcp_seq=0xDEADBEEF, payload=b"hi")
    seg = t[34:]
    assert struct.unpack_from("!HHI", seg, 0) == (40000, 8080, 0xDEADBEEF)
    assert seg[12] >> 4 == 5 and seg[13] == forge.TCP_SYN
    pseudo = socket.inet_aton("192.168.1.1") + socket.inet_aton("192.168.1.2") + struct.pack("!BBH", 0, 6, len(seg))
    assert ones_sum_ok(pseudo + seg)
    p = decode(t)
    assert p.layers_path == "Ethernet/IPv4/TCP" and (p.sport, p.dport) == (40000, 8080) and p.tcp_flags == 2

    u = forge.forge_packet("udp6", "fd00::1", "fd00::2", ethernet_header=False, sport=5000, dport=6000,
                           payload=b"payload")
    assert u[0] >> 4 == 6 and u[6] == 17
    dg = u[40:]
    assert struct.unpack_from("!HHH", dg, 0) == (5000, 6000, 15)
    pseudo6 = socket.inet_pton(socket.AF_INET6, "fd00::1") + socket.inet_pton(socket.AF_INET6, "fd00::2") + \
        struct.pack("!I3xB", len(dg), 17)
    assert ones_sum_ok(pseudo6 + dg)
    assert struct.unpack_from("!H", dg, 6)[0] != 0
    p = decode(u, LINKTYPE_RAW)
    assert p.layers_path == "IPv6/UDP" and (p.sport, p.dport) == (5000, 6000)
    assert forge.ethertype_of(u, ethernet_header=False) == 0x86DD


def test_payloads_random_letters_and_increment():
    rng = random.Random(1)
    base = forge.random_letters(forge.PING_PAYLOAD_LEN, rng)
    assert len(base) == 56 and base.isalpha()
    sizes, cur = [], base
    for _ in range(4):
        sizes.append(len(cur))
        cur = forge.next_payload(cur, 3, rng)
    assert sizes == [56, 59, 62, 65] and cur.startswith(base) and cur.isalpha()
    sizes, cur = [], b"abcdef"
    for _ in range(5):
        sizes.append(len(cur))
        cur = forge.next_payload(cur, -2, rng)
    assert sizes == [6, 4, 2, 0, 0]
    assert forge.next_payload(b"same", 0, rng) == b"same"


@pytest.mark.parametrize("kwargs, message", [
    (dict(ptype="icmp5", src_ip="10.0.0.1", dst_ip="10.0.0.2"), "not supported"),
    (dict(ptype="icmp4", src_ip="fd00::1", dst_ip="10.0.0.2"), "not an IPv4 address"),
    (dict(ptype="udp6", src_ip="fd00::1", dst_ip="10.0.0.2"), "not an IPv6 address"),
    (dict(ptype="udp4", src_ip="10.0.0.300", dst_ip="10.0.0.2"), "not an IP address"),
    (dict(ptype="udp4", src_ip="10.0.0.1", dst_ip="10.0.0.2", sport=70000), "out of range"),
    (dict(ptype="icmp4", src_ip="10.0.0.1", dst_ip="10.0.0.2", src_mac="zz:00:00:00:00:00", dst_mac=MB),
     "not a MAC"),
    (dict(ptype="icmp4", src_ip="10.0.0.1", dst_ip="10.0.0.2", dst_mac=MB), "needs a source"),
    (dict(ptype="icmp4", src_ip="10.0.0.1", dst_ip="10.0.0.2", ttl=300, ethernet_header=False), "TTL"),
])
def test_bad_parameters(kwargs, message):
    with pytest.raises(forge.ForgeError) as e:
        forge.forge_packet(**kwargs)
    assert message in str(e.value)
