"""Hand-built frames (struct-packed) for the flow tests and benchmarks."""

import socket
import struct

MAC1 = bytes.fromhex("020000000001")
MAC2 = bytes.fromhex("020000000002")
IP1 = socket.inet_aton("10.0.0.1")
IP2 = socket.inet_aton("10.0.0.2")
IP6_1 = socket.inet_pton(socket.AF_INET6, "fd00::1")
IP6_2 = socket.inet_pton(socket.AF_INET6, "fd00::2")


def eth(src, dst, ethertype, payload, vlans=()):
    hdr = dst + src
    for vid in vlans:
        hdr += struct.pack("!HH", 0x8100, vid)
    return hdr + struct.pack("!H", ethertype) + payload


def ipv4(src, dst, proto, payload, ttl=64, frag=0x4000, ident=0):
    return struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, frag, ttl, proto, 0,
                       src, dst) + payload


def ipv6(src, dst, nh, payload, hlim=64):
    return struct.pack("!IHBB16s16s", 6 << 28, len(payload), nh, hlim, src, dst) + payload


def udp(sport, dport, payload=b"x" * 18):
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def tcp(sport, dport, flags=0x10, seq=1, ack=0, payload=b""):
    return struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 0x50, flags, 65535, 0, 0) + payload


def sctp(sport, dport):
    return struct.pack("!HHII", sport, dport, 0, 0) + b"\x00" * 16


def icmp4(typ, code=0, ident=0, seq=0, payload=b"p" * 8):
    return struct.pack("!BBHHH", typ, code, 0, ident, seq) + payload


def icmp6(typ, code=0, ident=0, seq=0, payload=b"p" * 8):
    return struct.pack("!BBHHH", typ, code, 0, ident, seq) + payload


def arp(op, sha, spa, tha, tpa):
    return struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, op, sha, spa, tha, tpa)


def vxlan(vni, inner):
    return struct.pack("!II", 0x08000000, vni << 8) + inner


def geneve(vni, inner, options=b"", proto=0x6558):
    """A Geneve header (RFC 8926) with `options` (whole TLVs, a multiple of 4 bytes)."""
    return struct.pack("!BBHI", len(options) // 4, 0, proto, vni << 8) + options + inner


def geneve_option(cls, typ, data):
    return struct.pack("!HBB", cls, typ, len(data) // 4) + data


def mpls(labels, inner, ttl=64):
    """An MPLS label stack, outermost first; the last entry has the bottom-of-stack bit."""
    out = b""
    for i, label in enumerate(labels):
        out += struct.pack("!I", (label << 12) | ((1 if i == len(labels) - 1 else 0) << 8) | ttl)
    return out + inner


def gre(proto, inner, key=None):
    flags = 0x2000 if key is not None else 0
    hdr = struct.pack("!HH", flags, proto)
    if key is not None:
        hdr += struct.pack("!I", key)
    return hdr + inner


def dns_query():
    return struct.pack("!HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0) + b"\x03www\x06google\x03com\x00\x00\x01\x00\x01"


def udp4_frame(src_mac=MAC1, dst_mac=MAC2, src=IP1, dst=IP2, sport=1000, dport=2000, payload=b"x" * 18):
    return eth(src_mac, dst_mac, 0x0800, ipv4(src, dst, 17, udp(sport, dport, payload)))


def tcp4_frame(src_mac=MAC1, dst_mac=MAC2, src=IP1, dst=IP2, sport=1000, dport=80, flags=0x10, seq=1,
               payload=b""):
    return eth(src_mac, dst_mac, 0x0800, ipv4(src, dst, 6, tcp(sport, dport, flags, seq, 0, payload)))


def icmp4_frame(typ, ident=7, seq=1, src_mac=MAC1, dst_mac=MAC2, src=IP1, dst=IP2, vlans=()):
    return eth(src_mac, dst_mac, 0x0800, ipv4(src, dst, 1, icmp4(typ, 0, ident, seq)), vlans)
