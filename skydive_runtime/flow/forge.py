"""Packet forging for packet injection (spec §6): pure functions building bytes.

    frame = forge_packet("icmp4", "10.0.0.1", "10.0.0.2", src_mac="02:00:00:00:00:01",
                         dst_mac="02:00:00:00:00:02", ttl=64, icmp_id=123, seq=1,
                         payload=b"hello")                       # Ethernet/IPv4/ICMPv4 echo request
    packet = forge_packet("udp6", "fd00::1", "fd00::2", sport=4000, dport=53, payload=b"x",
                          ethernet=False)                        # raw IPv6/UDP (EncapType none)

Layers: Ethernet II; IPv4 (IHL 5, DF, `ttl`, `ident`) or IPv6 (hop limit = `ttl`); ICMPv4 echo
request, ICMPv6 echo request (128), TCP SYN (data offset 5, window 65535), UDP. Every checksum
is computed (IPv4 header, ICMPv4, and the pseudo-header ones of TCP, UDP and ICMPv6). Nothing
here touches a socket or the clock: randomness comes from the `random.Random` given by the
caller, so that the builders are deterministic under test.
"""

import ipaddress
import re
import string
import struct

ETH_P_IP = 0x0800
ETH_P_IPV6 = 0x86DD
IPPROTO_ICMP = 1
IPPROTO_TCP = 6
IPPROTO_UDP = 17
IPPROTO_ICMPV6 = 58

ICMPV4_ECHO_REQUEST = 8
ICMPV6_ECHO_REQUEST = 128
TCP_SYN = 0x02

# EncapType (agent interface metadata) of interfaces carrying bare IP packets, no link-layer header
RAW_IP_ENCAPS = frozenset(("none", "ipip", "tunnel6", "sit", "gre", "ip6gre", "ppp", "slip"))
TYPES = ("icmp4", "icmp6", "tcp4", "tcp6", "udp4", "udp6")
PING_PAYLOAD_LEN = 56           # a default ping's payload size
LETTERS = string.ascii_letters

_MAC_RE = re.compile(r"^([0-9A-Fa-f]{2})([:-][0-9A-Fa-f]{2}){5}$")


class ForgeError(ValueError):
    """Invalid forging parameters (the message says which)."""


# ---- addresses ---------------------------------------------------------------------------------

def parse_mac(mac):
    """'aa:bb:cc:dd:ee:ff' (or with '-') -> 6 bytes."""
    if isinstance(mac, (bytes, bytearray)) and len(mac) == 6:
        return bytes(mac)
    if not isinstance(mac, str) or not _MAC_RE.match(mac):
        raise ForgeError("%r is not a MAC address" % (mac,))
    return bytes(int(x, 16) for x in re.split("[:-]", mac))


def parse_ip(ip, version=None):
    """'10.0.0.1' or '10.0.0.1/24' (the address part is used) -> ipaddress object."""
    if isinstance(ip, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        addr = ip
    else:
        if not isinstance(ip, str) or not ip:
            raise ForgeError("%r is not an IP address" % (ip,))
        try:
            addr = ipaddress.ip_address(ip.split("/", 1)[0])
        except ValueError:
            raise ForgeError("%r is not an IP address" % (ip,)) from None
    if version is not None and addr.version != version:
        raise ForgeError("%s is not an IPv%d address" % (addr, version))
    return addr


def type_version(ptype):
    """'icmp4' -> 4, 'udp6' -> 6."""
    if ptype not in TYPES:
        raise ForgeError("given type is not supported: %r" % (ptype,))
    return 6 if ptype.endswith("6") else 4


# ---- checksums -----------------------------------------------------------------------------------

def checksum(data):
    """RFC 1071 Internet checksum of `data` (odd lengths padded with a zero byte)."""
    if len(data) % 2:
        data = bytes(data) + b"\x00"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def _pseudo_header(src, dst, proto, length):
    if src.version == 4:
        return src.packed + dst.packed + struct.pack("!BBH", 0, proto, length)
    return src.packed + dst.packed + struct.pack("!IxxxB", length, proto)


def _with_checksum(segment, offset, csum):
    return segment[:offset] + struct.pack("!H", csum) + segment[offset + 2:]


# ---- layers --------------------------------------------------------------------------------------

def ethernet(dst_mac, src_mac, ethertype, payload):
    return parse_mac(dst_mac) + parse_mac(src_mac) + struct.pack("!H", ethertype) + bytes(payload)


def ipv4(src, dst, proto, payload, ttl=64, ident=0, tos=0, dont_fragment=True):
    src, dst = parse_ip(src, 4), parse_ip(dst, 4)
    total = 20 + len(payload)
    if total > 0xFFFF:
        raise ForgeError("IPv4 packet too large (%d bytes)" % total)
    if not 0 <= ttl <= 255:
        raise ForgeError("TTL %r out of range [0, 255]" % (ttl,))
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, tos, total, ident & 0xFFFF, 0x4000 if dont_fragment else 0,
                      ttl, proto, 0, src.packed, dst.packed)
    return _with_checksum(hdr, 10, checksum(hdr)) + bytes(payload)


def ipv6(src, dst, next_header, payload, hop_limit=64, traffic_class=0, flow_label=0):
    src, dst = parse_ip(src, 6), parse_ip(dst, 6)
    if len(payload) > 0xFFFF:
        raise ForgeError("IPv6 payload too large (%d bytes)" % len(payload))
    if not 0 <= hop_limit <= 255:
        raise ForgeError("hop limit %r out of range [0, 255]" % (hop_limit,))
    first = (6 << 28) | ((traffic_class & 0xFF) << 20) | (flow_label & 0xFFFFF)
    return struct.pack("!IHBB16s16s", first, len(payload), next_header, hop_limit,
                       src.packed, dst.packed) + bytes(payload)


def icmpv4_echo(ident, seq, payload, icmp_type=ICMPV4_ECHO_REQUEST):
    msg = struct.pack("!BBHHH", icmp_type, 0, 0, ident & 0xFFFF, seq & 0xFFFF) + bytes(payload)
    return _with_checksum(msg, 2, checksum(msg))


def icmpv6_echo(src, dst, ident, seq, payload, icmp_type=ICMPV6_ECHO_REQUEST):
    src, dst = parse_ip(src, 6), parse_ip(dst, 6)
    msg = struct.pack("!BBHHH", icmp_type, 0, 0, ident & 0xFFFF, seq & 0xFFFF) + bytes(payload)
    return _with_checksum(msg, 2, checksum(_pseudo_header(src, dst, IPPROTO_ICMPV6, len(msg)) + msg))


def tcp(src, dst, sport, dport, seq, payload=b"", ack=0, flags=TCP_SYN, window=65535):
    src, dst = parse_ip(src), parse_ip(dst)
    seg = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 5 << 4, flags,
                      window, 0, 0) + bytes(payload)
    return _with_checksum(seg, 16, checksum(_pseudo_header(src, dst, IPPROTO_TCP, len(seg)) + seg))


def udp(src, dst, sport, dport, payload=b""):
    src, dst = parse_ip(src), parse_ip(dst)
    length = 8 + len(payload)
    dgram = struct.pack("!HHHH", sport, dport, length, 0) + bytes(payload)
    csum = checksum(_pseudo_header(src, dst, IPPROTO_UDP, length) + dgram)
    return _with_checksum(dgram, 6, csum or 0xFFFF)     # 0 means "no checksum" in UDP


# ---- payloads ------------------------------------------------------------------------------------

def random_letters(n, rng):
    """n random ASCII letters (upstream's payload filler), as bytes."""
    return "".join(rng.choice(LETTERS) for dummy in range(max(0, n))).encode()


def next_payload(current, increment, rng):
    """The payload of the next packet: `current` grown by `increment` random letters (a negative
    increment shrinks it, down to empty). Upstream's IncrementPayload."""
    if increment > 0:
        return current + random_letters(increment, rng)
    if increment < 0:
        return current[:max(0, len(current) + increment)]
    return current


# ---- a whole packet ------------------------------------------------------------------------------

def forge_packet(ptype, src_ip, dst_ip, src_mac=None, dst_mac=None, ethernet_header=True, ttl=64,
                 icmp_id=0, seq=0, sport=0, dport=0, tcp_seq=0, payload=b"", ip_ident=0):
    """One injected packet of type `ptype` (icmp4|icmp6|tcp4|tcp6|udp4|udp6): an Ethernet frame
    when `ethernet_header` (src_mac/dst_mac required), else the bare IP packet."""
    version = type_version(ptype)
    src, dst = parse_ip(src_ip, version), parse_ip(dst_ip, version)
    for name, port in (("source port", sport), ("destination port", dport)):
        if not isinstance(port, int) or not 0 <= port <= 0xFFFF:
            raise ForgeError("%s %r out of range [0, 65535]" % (name, port))
    payload = bytes(payload)
    kind = ptype[:-1]
    if kind == "icmp":
        if version == 4:
            l4, proto = icmpv4_echo(icmp_id, seq, payload), IPPROTO_ICMP
        else:
            l4, proto = icmpv6_echo(src, dst, icmp_id, seq, payload), IPPROTO_ICMPV6
    elif kind == "tcp":
        l4, proto = tcp(src, dst, sport, dport, tcp_seq, payload), IPPROTO_TCP
    else:
        l4, proto = udp(src, dst, sport, dport, payload), IPPROTO_UDP
    if version == 4:
        packet, ethertype = ipv4(src, dst, proto, l4, ttl=ttl, ident=ip_ident), ETH_P_IP
    else:
        packet, ethertype = ipv6(src, dst, proto, l4, hop_limit=ttl), ETH_P_IPV6
    if not ethernet_header:
        return packet
    if src_mac is None or dst_mac is None:
        raise ForgeError("an Ethernet frame needs a source and a destination MAC")
    return ethernet(dst_mac, src_mac, ethertype, packet)


def ethertype_of(frame, ethernet_header=True):
    """EtherType of a forged frame (the sll_protocol to send it with)."""
    if ethernet_header:
        return struct.unpack_from("!H", frame, 12)[0] if len(frame) >= 14 else 0
    if frame and frame[0] >> 4 == 6:
        return ETH_P_IPV6
    return ETH_P_IP


__all__ = ["ForgeError", "TYPES", "RAW_IP_ENCAPS", "PING_PAYLOAD_LEN", "parse_mac", "parse_ip", "type_version", "checksum",
           "ethernet", "ipv4", "ipv6", "icmpv4_echo", "icmpv6_echo", "tcp", "udp", "random_letters",
           "next_payload", "forge_packet", "ethertype_of"]
