"""Packet decoding for the flow table.

`decode(data, linktype)` fully decodes one captured frame into a `Packet`
(a small __slots__ record) and is used for the first packet of every flow and
for every packet the table's fast path does not handle (VLAN, IPv6, ICMP, TCP
control segments, tunnels, ...).  The per-packet fast path for established
Ethernet/IPv4/TCP|UDP flows lives in `table.py` and never builds a `Packet`.

Layer names and `LayersPath` follow gopacket (`Ethernet/IPv4/ICMPv4`,
`Ethernet/Dot1Q/IPv4/ICMPv4`, `Ethernet/IPv6/ICMPv6/ICMPv6Echo`, `Ethernet/ARP`,
`Ethernet/IPv4/UDP/DNS`, ...).  Tunnels (VXLAN on UDP 4789, Geneve on UDP
6081, GRE, MPLS) stop the outer packet at the tunnel layer and decode the
payload as `Packet.inner`, which the table turns into a child flow
(`ParentUUID`), as upstream's PacketSeqFromGoPacket does.  The tunnel id
(VNI, GRE key) is the outer packet's `net_id` (upstream's Network.ID of the
outer flow); the inner packet has none, so its TrackingID is the one the same
conversation gets where it is not encapsulated.  VXLAN and Geneve outer
packets also set `tunnel_dport`: their flow is keyed on VNI + destination port
(spec 5.2), not on the source port OVS picks per direction and inner flow.

Malformed or truncated input never raises out of `decode`: decoding stops at
the last complete layer (gopacket's DecodeFailure is not part of LayersPath).
"""

import socket as _socket
import struct

LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229

ETH_P_IP = 0x0800
ETH_P_ARP = 0x0806
ETH_P_8021Q = 0x8100
ETH_P_8021AD = 0x88A8
ETH_P_QINQ = 0x9100
ETH_P_IPV6 = 0x86DD
ETH_P_TEB = 0x6558
ETH_P_MPLS = 0x8847
ETH_P_MPLS_MC = 0x8848

IPPROTO_ICMP = 1
IPPROTO_TCP = 6
IPPROTO_UDP = 17
IPPROTO_GRE = 47
IPPROTO_ICMPV6 = 58
IPPROTO_SCTP = 132
IPPROTO_VRRP = 112
IPPROTO_IPIP = 4
IPPROTO_IPV6 = 41

VXLAN_PORT = 4789
GENEVE_PORT = 6081
# every UDP port decode() takes as a tunnel: the ebpf probe hands these datagrams to user space
TUNNEL_UDP_PORTS = (VXLAN_PORT, GENEVE_PORT)
# IP protocols decoded as tunnels (likewise)
TUNNEL_IP_PROTOS = (IPPROTO_GRE,)

TCP_FIN = 0x01
TCP_SYN = 0x02
TCP_RST = 0x04
TCP_PSH = 0x08
TCP_ACK = 0x10

_H = struct.Struct("!H").unpack_from
_HH = struct.Struct("!HH").unpack_from
_I = struct.Struct("!I").unpack_from
_IPV4 = struct.Struct("!BBHHHBBH4s4s").unpack_from
_TCP = struct.Struct("!HHIIBB").unpack_from

# ICMP type -> upstream ICMPType enum name.
ICMPV4_KINDS = {
    0: "ECHO", 8: "ECHO", 3: "DESTINATION_UNREACHABLE", 4: "SOURCE_QUENCH", 5: "REDIRECT",
    9: "ROUTER", 10: "ROUTER", 11: "TIME_EXCEEDED", 12: "PARAMETER_PROBLEM",
    13: "TIMESTAMP", 14: "TIMESTAMP", 15: "INFO", 16: "INFO", 17: "ADDRESS_MASK", 18: "ADDRESS_MASK",
}
ICMPV6_KINDS = {
    1: "DESTINATION_UNREACHABLE", 2: "PACKET_TOO_BIG", 3: "TIME_EXCEEDED", 4: "PARAMETER_PROBLEM",
    128: "ECHO", 129: "ECHO", 133: "ROUTER", 134: "ROUTER", 135: "NEIGHBOR", 136: "NEIGHBOR",
    137: "REDIRECT",
}
ICMP_KIND_CODES = {"UNKNOWN": 0, "DESTINATION_UNREACHABLE": 1, "ECHO": 2, "NEIGHBOR": 3,
                   "ADDRESS_MASK": 4, "INFO": 5, "PARAMETER_PROBLEM": 6, "REDIRECT": 7, "ROUTER": 8,
                   "SOURCE_QUENCH": 9, "TIME_EXCEEDED": 10, "TIMESTAMP": 11, "PACKET_TOO_BIG": 12}
ICMP_KIND_NAMES = {v: k for k, v in ICMP_KIND_CODES.items()}

# gopacket names of the ICMPv6 sub-layers.
_ICMPV6_SUBLAYER = {
    128: "ICMPv6Echo", 129: "ICMPv6Echo",
    133: "ICMPv6RouterSolicitation", 134: "ICMPv6RouterAdvertisement",
    135: "ICMPv6NeighborSolicitation", 136: "ICMPv6NeighborAdvertisement",
    137: "ICMPv6Redirect",
}

# gopacket application layers recognised by port (UDP / TCP).
UDP_PORT_LAYERS = {53: "DNS", 67: "DHCPv4", 68: "DHCPv4", 546: "DHCPv6", 547: "DHCPv6",
                   123: "NTP", 6343: "SFlow", 3784: "BFD", 5060: "SIP", 623: "RMCP"}
TCP_PORT_LAYERS = {53: "DNS", 5060: "SIP"}
_TLS_PORTS = (443, 636, 989, 990, 992, 993, 994, 995, 5061)

_IPV6_EXT = (0, 43, 60, 51)   # hop-by-hop, routing, destination options, AH (fragment 44 handled apart)


class DecodeError(ValueError):
    """Raised for input that cannot be a packet at all (wrong type, unknown link type)."""


class Packet(object):
    """One decoded packet (or the inner packet of a tunnel).

    Addresses are raw bytes (6-byte MACs, 4/16-byte IPs).  Absent layers leave
    their fields at None / 0.
    """

    __slots__ = (
        "layers", "link_src", "link_dst", "ethertype", "vlans",
        "net_proto", "net_src", "net_dst", "net_id", "ip_len", "ttl", "fragment", "frag_offset",
        "l4_proto", "sport", "dport", "tcp_flags", "tcp_seq", "tcp_payload",
        "icmp_type", "icmp_code", "icmp_id", "icmp_kind",
        "tunnel_end", "tunnel_dport", "tunnel_options", "mpls_labels", "inner", "wire_len", "cap_len",
        "l4_off", "l4_end", "ip_id", "ip_mf", "ip_hl",
    )

    def __init__(self):
        self.layers = []
        self.link_src = self.link_dst = None
        self.ethertype = 0
        self.vlans = ()
        self.net_proto = 0            # 4 or 6 (IPv4/IPv6), 0 when absent
        self.net_src = self.net_dst = None
        self.net_id = 0               # VNI / GRE key of the tunnel this (outer) packet carries
        self.ip_len = 0
        self.ttl = 0
        self.fragment = False
        self.frag_offset = 0
        self.l4_proto = 0             # 6 TCP, 17 UDP, 132 SCTP, 1 ICMPv4, 58 ICMPv6
        self.sport = self.dport = 0
        self.tcp_flags = 0
        self.tcp_seq = 0
        self.tcp_payload = 0
        self.icmp_type = self.icmp_code = self.icmp_id = 0
        self.icmp_kind = None
        self.tunnel_end = 0           # offset where the tunnel payload starts
        self.tunnel_dport = 0         # VXLAN/Geneve: the UDP destination port (flow key: VNI + this)
        self.tunnel_options = ()      # Geneve options: (class, type, data bytes) each
        self.mpls_labels = ()         # MPLS label stack, outermost first
        self.inner = None
        self.wire_len = 0
        self.cap_len = 0
        self.l4_off = self.l4_end = 0   # the transport header's offset and the IP payload's end
        self.ip_id = self.ip_hl = 0     # IPv4 identification and header length
        self.ip_mf = False              # IPv4 more fragments

    @property
    def layers_path(self):
        return "/".join(self.layers)

    @property
    def application(self):
        return self.layers[-1] if self.layers else ""

    def __repr__(self):
        return "<Packet %s>" % self.layers_path


def mac_str(b):
    return bytes(b).hex(":")


def ip_str(b):
    return _socket.inet_ntop(_socket.AF_INET if len(b) == 4 else _socket.AF_INET6, bytes(b))


def decode(data, linktype=LINKTYPE_ETHERNET, wire_len=None):
    """Decode one frame; returns a Packet (possibly with `.inner` for tunnels).

    `data` is bytes/bytearray/memoryview of the captured bytes, `wire_len` the
    original length on the wire (defaults to len(data)).
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise DecodeError("packet data must be bytes, got %s" % type(data).__name__)
    if not isinstance(data, bytes):
        data = bytes(data)
    p = Packet()
    p.cap_len = len(data)
    p.wire_len = wire_len if wire_len is not None else len(data)
    if linktype == LINKTYPE_ETHERNET:
        _ethernet(p, data, 0)
    elif linktype in (LINKTYPE_RAW, LINKTYPE_IPV4, LINKTYPE_IPV6):
        if data and (data[0] >> 4) == 6:
            _ipv6(p, data, 0)
        elif data:
            _ipv4(p, data, 0)
    elif linktype == LINKTYPE_LINUX_SLL:
        # Cooked header: 16 bytes, protocol at 14; gopacket drops "Linux SLL" from the path.
        if len(data) >= 16:
            _ether_payload(p, data, 16, _H(data, 14)[0])
    else:
        raise DecodeError("unsupported link type %d" % linktype)
    return p


def _ethernet(p, data, off):
    if len(data) - off < 14:
        return
    p.link_dst = data[off:off + 6]
    p.link_src = data[off + 6:off + 12]
    p.layers.append("Ethernet")
    etype = _H(data, off + 12)[0]
    off += 14
    _ether_payload(p, data, off, etype)


def _ether_payload(p, data, off, etype):
    vlans = []
    while etype in (ETH_P_8021Q, ETH_P_8021AD, ETH_P_QINQ):
        if len(data) - off < 4:
            p.vlans = tuple(vlans)
            return
        tci, etype = _HH(data, off)
        vlans.append(tci & 0x0FFF)
        p.layers.append("Dot1Q")
        off += 4
    p.vlans = tuple(vlans)
    p.ethertype = etype
    if etype == ETH_P_IP:
        _ipv4(p, data, off)
    elif etype == ETH_P_IPV6:
        _ipv6(p, data, off)
    elif etype == ETH_P_ARP:
        if len(data) - off >= 8:
            p.layers.append("ARP")
    elif etype in (ETH_P_MPLS, ETH_P_MPLS_MC):
        _mpls(p, data, off, len(data))
    elif etype < 0x0600:
        # 802.3 length field: LLC follows.
        if len(data) - off >= 3:
            p.layers.append("LLC")


def _ipv4(p, data, off):
    if len(data) - off < 20:
        return
    vihl, _tos, total, ident, frag, ttl, proto, _csum, src, dst = _IPV4(data, off)
    ihl = (vihl & 0x0F) * 4
    if (vihl >> 4) != 4 or ihl < 20 or len(data) - off < ihl:
        return
    p.layers.append("IPv4")
    p.net_proto = 4
    p.net_src = src
    p.net_dst = dst
    p.ip_len = total
    p.ttl = ttl
    p.frag_offset = frag & 0x1FFF
    p.fragment = bool(frag & 0x2000) or p.frag_offset != 0
    p.ip_id, p.ip_mf, p.ip_hl = ident, bool(frag & 0x2000), ihl
    if p.frag_offset:
        # Not the first fragment: no transport header (gopacket: "Fragment" payload).
        p.layers.append("Fragment")
        return
    end = off + total if total >= ihl and off + total <= len(data) else len(data)
    _l4(p, data, off + ihl, proto, end)


def _ipv6(p, data, off):
    if len(data) - off < 40:
        return
    if (data[off] >> 4) != 6:
        return
    p.layers.append("IPv6")
    p.net_proto = 6
    plen = _H(data, off + 4)[0]
    nh = data[off + 6]
    p.ttl = data[off + 7]
    p.net_src = data[off + 8:off + 24]
    p.net_dst = data[off + 24:off + 40]
    p.ip_len = plen + 40
    end = off + 40 + plen if off + 40 + plen <= len(data) else len(data)
    off += 40
    while nh in _IPV6_EXT or nh == 44:
        if end - off < 8:
            return
        if nh == 44:
            p.layers.append("IPv6Fragment")
            fo = _H(data, off + 2)[0]
            p.fragment = True
            p.frag_offset = fo >> 3
            nxt = data[off]
            off += 8
            if p.frag_offset:
                return
            nh = nxt
            continue
        name = {0: "IPv6HopByHop", 43: "IPv6Routing", 60: "IPv6Destination", 51: "IPSecAH"}[nh]
        p.layers.append(name)
        nxt = data[off]
        hlen = (data[off + 1] + 2) * 4 if nh == 51 else (data[off + 1] + 1) * 8
        off += hlen
        nh = nxt
    _l4(p, data, off, nh, end)


def _l4(p, data, off, proto, end):
    avail = end - off
    p.l4_off = off
    p.l4_end = end
    if proto == IPPROTO_TCP:
        if avail < 20:
            return
        sport, dport, seq, _ack, doff, flags = _TCP(data, off)
        p.layers.append("TCP")
        p.l4_proto = IPPROTO_TCP
        p.sport, p.dport = sport, dport
        p.tcp_seq = seq
        p.tcp_flags = flags
        hl = (doff >> 4) * 4
        p.tcp_payload = max(0, end - off - hl)
        if p.tcp_payload > 0:
            app = TCP_PORT_LAYERS.get(dport) or TCP_PORT_LAYERS.get(sport)
            if app:
                p.layers.append(app)
            elif (dport in _TLS_PORTS or sport in _TLS_PORTS) and end - off - hl >= 5:
                po = off + hl
                if 20 <= data[po] <= 23 and data[po + 1] == 3:
                    p.layers.append("TLS")
    elif proto == IPPROTO_UDP:
        if avail < 8:
            return
        sport, dport = _HH(data, off)
        p.layers.append("UDP")
        p.l4_proto = IPPROTO_UDP
        p.sport, p.dport = sport, dport
        if dport == VXLAN_PORT or sport == VXLAN_PORT:
            p.tunnel_dport = dport
            _vxlan(p, data, off + 8, end)
            return
        if dport == GENEVE_PORT or sport == GENEVE_PORT:
            p.tunnel_dport = dport
            _geneve(p, data, off + 8, end)
            return
        if avail > 8:
            # gopacket: the destination port's layer first, then the source port's.
            app = UDP_PORT_LAYERS.get(dport) or UDP_PORT_LAYERS.get(sport)
            if app:
                p.layers.append(app)
    elif proto == IPPROTO_SCTP:
        if avail < 12:
            return
        p.layers.append("SCTP")
        p.l4_proto = IPPROTO_SCTP
        p.sport, p.dport = _HH(data, off)
    elif proto == IPPROTO_ICMP:
        if avail < 4:
            return
        t, c = data[off], data[off + 1]
        p.layers.append("ICMPv4")
        p.l4_proto = IPPROTO_ICMP
        p.icmp_type, p.icmp_code = t, c
        p.icmp_kind = ICMPV4_KINDS.get(t, "UNKNOWN")
        if (t == 0 or t == 8) and avail >= 8:
            p.icmp_id = _H(data, off + 4)[0]
    elif proto == IPPROTO_ICMPV6:
        if avail < 4:
            return
        t, c = data[off], data[off + 1]
        p.layers.append("ICMPv6")
        p.l4_proto = IPPROTO_ICMPV6
        p.icmp_type, p.icmp_code = t, c
        p.icmp_kind = ICMPV6_KINDS.get(t, "UNKNOWN")
        sub = _ICMPV6_SUBLAYER.get(t)
        if sub and avail >= 8:
            p.layers.append(sub)
            if t in (128, 129):
                p.icmp_id = _H(data, off + 4)[0]
    elif proto == IPPROTO_GRE:
        _gre(p, data, off, end)
    elif proto == IPPROTO_VRRP and avail >= 8:
        p.layers.append("VRRP")


def _vxlan(p, data, off, end):
    if end - off < 8:
        return
    p.layers.append("VXLAN")
    p.net_id = _I(data, off + 4)[0] >> 8
    _tunnel_inner(p, data, off + 8, end, LINKTYPE_ETHERNET)


def _geneve(p, data, off, end):
    """Geneve (RFC 8926): version, options length, O/C flags, protocol, VNI, options."""
    if end - off < 8:
        return
    if data[off] >> 6:          # only version 0 exists
        return
    optlen = (data[off] & 0x3F) * 4
    proto = _H(data, off + 2)[0]
    p.layers.append("Geneve")
    p.net_id = _I(data, off + 4)[0] >> 8
    o, oend = off + 8, off + 8 + optlen
    if oend > end:
        return
    options = []
    while o + 4 <= oend:
        cls, typ, olen = _H(data, o)[0], data[o + 2], (data[o + 3] & 0x1F) * 4
        if o + 4 + olen > oend:
            return
        options.append((cls, typ, data[o + 4:o + 4 + olen]))
        o += 4 + olen
    p.tunnel_options = tuple(options)
    if proto == ETH_P_TEB:
        _tunnel_inner(p, data, oend, end, LINKTYPE_ETHERNET)
    elif proto in (ETH_P_IP, ETH_P_IPV6):
        _tunnel_inner(p, data, oend, end, LINKTYPE_RAW)


def _mpls(p, data, off, end):
    """An MPLS label stack (one `MPLS` layer per label, as gopacket); the payload after the
    bottom label is IPv4/IPv6 by its version nibble, else Ethernet (upstream's decoder)."""
    labels = []
    while end - off >= 4:
        entry = _I(data, off)[0]
        labels.append(entry >> 12)
        p.layers.append("MPLS")
        off += 4
        if entry & 0x100:       # bottom of stack
            p.mpls_labels = tuple(labels)
            if end - off > 0:
                _tunnel_inner(p, data, off, end, LINKTYPE_RAW if data[off] >> 4 in (4, 6) else LINKTYPE_ETHERNET)
            return
    p.mpls_labels = tuple(labels)


def _gre(p, data, off, end):
    if end - off < 4:
        return
    flags, proto = _HH(data, off)
    hl = 4
    key = 0
    if flags & 0x8000:      # checksum present
        hl += 4
    if flags & 0x2000:      # key present
        if end - off < hl + 4:
            return
        key = _I(data, off + hl)[0]
        hl += 4
    if flags & 0x1000:      # sequence present
        hl += 4
    if end - off < hl:
        return
    p.layers.append("GRE")
    p.net_id = key
    if proto == ETH_P_TEB:
        _tunnel_inner(p, data, off + hl, end, LINKTYPE_ETHERNET)
    elif proto in (ETH_P_IP, ETH_P_IPV6):
        _tunnel_inner(p, data, off + hl, end, LINKTYPE_RAW)
    elif proto in (ETH_P_MPLS, ETH_P_MPLS_MC):
        _mpls(p, data, off + hl, end)


def _tunnel_inner(p, data, off, end, linktype):
    p.tunnel_end = off
    inner = Packet()
    payload = data[off:end]
    inner.cap_len = len(payload)
    inner.wire_len = len(payload)
    if linktype == LINKTYPE_ETHERNET:
        _ethernet(inner, payload, 0)
    elif payload:
        if (payload[0] >> 4) == 6:
            _ipv6(inner, payload, 0)
        else:
            _ipv4(inner, payload, 0)
    if inner.layers:
        p.inner = inner
