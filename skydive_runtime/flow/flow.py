"""Flow records, flow keys and their upstream JSON.

A flow lives in a `FlowTable` (table.py).  To keep an active flow under 400
bytes the record is split in two:

* `Flow` (__slots__, 7 references): the table key, the base index of the
  flow's counters in the table's shared int64 array, which side of the key is
  `A`, the interned LayersPath/Application strings, the parent flow's UUID
  (tunnels) and an optional `FlowExtra` (raw packets, TCP metric, L3-mode
  link addresses);
* the counters (packets/bytes per direction, Start/Last, RTT, last tick's
  snapshot, state bits, the cached 64-bit identifiers) as 17 consecutive
  int64 slots of the table's array.

Keys are compact, direction independent bytes:

    tag(1) [linkA linkB (6+6)] [netA netB (4+4 | 16+16)] [portA portB (2+2)] [extras]

`tag` bits: 1 link (Ethernet) present; bits 1-2 network (1 IPv4, 2 IPv6);
bits 3-5 transport (1 TCP, 2 UDP, 3 SCTP, 4 ICMPv4, 5 ICMPv6); 64 extras
follow.  Extras are tagged items: `V` n + n*2 VLAN ids, `E` ethertype (no
network layer), `N` 4-byte tunnel id, `I` ICMP kind/code/id, `P` 8-byte hash
of the parent flow's key (always last).  Endpoint pairs are ordered
canonically (lower MAC first in L2 mode, then lower IP, then lower port), so
both directions of a conversation give the same key and the same key is
computed at every capture point: TrackingID = xxHash64(key without `P`) is
therefore identical for one conversation wherever it is captured, while
UUID = xxHash64(Start + NodeTID, seed=xxHash64(key)) differs per capture.
"""

import base64
import struct

from .decode import ICMP_KIND_CODES, ICMP_KIND_NAMES, mac_str, ip_str
from .xxhash import xxh64

# Counter slots of one flow in the table's array.
F_ABP, F_ABB, F_BAP, F_BAB, F_START, F_LAST = 0, 1, 2, 3, 4, 5
F_ABP0, F_ABB0, F_BAP0, F_BAB0 = 6, 7, 8, 9     # snapshot at the previous update tick
F_RTT = 10          # RTT in ns (0 = unknown)
F_RTT0 = 11         # ns timestamp of the pending echo request / SYN (0 none, -1 done)
F_STATE = 12        # bits 0-1 finish type, bit 2: pending RTT started by a BA packet
F_MARK = 13         # LRU second-chance mark (value of Last when last given a chance)
F_UUID, F_TID, F_L3TID = 14, 15, 16     # identifier cache (valid when STATE has S_IDS)
NFIELDS = 17
S_IDS = 8

FINISH_NAMES = ("NOT_FINISHED", "TIMEOUT", "TCP_FIN", "TCP_RST")
FINISH_NOT_FINISHED, FINISH_TIMEOUT, FINISH_TCP_FIN, FINISH_TCP_RST = 0, 1, 2, 3

TAG_LINK = 1
TAG_NET_SHIFT = 1
TAG_L4_SHIFT = 3
TAG_EXTRA = 64
NET_IPV4, NET_IPV6 = 1, 2
L4_TCP, L4_UDP, L4_SCTP, L4_ICMP4, L4_ICMP6 = 1, 2, 3, 4, 5
_L4_OF_PROTO = {6: L4_TCP, 17: L4_UDP, 132: L4_SCTP, 1: L4_ICMP4, 58: L4_ICMP6}
_L4_NAMES = {L4_TCP: "TCP", L4_UDP: "UDP", L4_SCTP: "SCTP"}

_HH = struct.Struct("!HH")
_Q = struct.Struct("!Q")


class Flow(object):
    """One flow of a table (see the module docstring for the split)."""

    __slots__ = ("key", "b", "a", "lp", "app", "parent", "x")

    def __init__(self, key, base, a_first, layers_path, application, parent_uuid=None):
        self.key = key
        self.b = base            # index of the first counter in the table array; -1 once removed
        self.a = a_first         # True when A is the first endpoint of the canonical key
        self.lp = layers_path
        self.app = application
        self.parent = parent_uuid
        self.x = None


class FlowExtra(object):
    """Per-flow data most flows never need."""

    __slots__ = ("raw", "raw_count", "tcp", "link", "ports", "layers", "ip")

    def __init__(self):
        self.raw = None          # list of (ts_ms, data, linktype)
        self.raw_count = 0
        self.tcp = None          # TCPMetric list (see TCP_FIELDS) + reassembly state
        self.link = None         # (A mac, B mac) in L3 key mode
        self.ports = None        # (A port, B port) of a tunnel flow, whose key has no source port
        self.layers = None       # ExtraLayers JSON: {"DNS"|"DHCPv4"|"VRRPv2": {...}}
        self.ip = None           # IPDefrag: [fragments, fragment errors]


TCP_FIELDS = ("ABSynStart", "BASynStart", "ABSynTTL", "BASynTTL", "ABFinStart", "BAFinStart",
              "ABRstStart", "BARstStart", "ABSegmentOutOfOrder", "ABSegmentSkipped",
              "ABSegmentSkippedBytes", "ABPackets", "ABBytes", "ABSawStart", "ABSawEnd",
              "BASegmentOutOfOrder", "BASegmentSkipped", "BASegmentSkippedBytes", "BAPackets",
              "BABytes", "BASawStart", "BASawEnd")
TCP_INDEX = {name: i for i, name in enumerate(TCP_FIELDS)}


_HH_pack = _HH.pack
_H_pack = struct.Struct("!H").pack
_I_pack = struct.Struct("!I").pack
_BBH_pack = struct.Struct("!BBH").pack
_PORTS_L4 = (L4_TCP, L4_UDP, L4_SCTP)


def packet_key(p, l3_mode, parent_hash=None):
    """Key of decoded packet `p` -> (key bytes, src_is_first).

    `src_is_first` tells whether the packet's source endpoint is the first
    one of the canonical key (used for the A/B direction).
    """
    ls = p.link_src
    net = p.net_proto
    has_link = ls is not None and (not l3_mode or not net)
    l4 = _L4_OF_PROTO.get(p.l4_proto, 0)
    has_ports = l4 in _PORTS_L4
    first = True
    if has_link and ls != p.link_dst:
        first = ls < p.link_dst
    elif net and p.net_src != p.net_dst:
        first = p.net_src < p.net_dst
    elif has_ports and p.sport != p.dport:
        first = p.sport < p.dport
    tag = l4 << TAG_L4_SHIFT
    parts = []
    if has_link:
        tag |= TAG_LINK
        parts.append(ls + p.link_dst if first else p.link_dst + ls)
    if net:
        tag |= (NET_IPV4 if net == 4 else NET_IPV6) << TAG_NET_SHIFT
        parts.append(p.net_src + p.net_dst if first else p.net_dst + p.net_src)
    if has_ports:
        if p.tunnel_dport:      # VXLAN/Geneve: VNI (net_id) + destination port, whatever the source port
            parts.append(_HH_pack(p.tunnel_dport, p.tunnel_dport))
        else:
            parts.append(_HH_pack(p.sport, p.dport) if first else _HH_pack(p.dport, p.sport))
    ext = False
    if p.vlans and has_link:
        n = len(p.vlans)
        parts.append(b"V" + bytes((n,)) + struct.pack("!%dH" % n, *p.vlans))
        ext = True
    if not net:
        parts.append(b"E" + _H_pack(p.ethertype))
        ext = True
    if p.net_id:
        parts.append(b"N" + _I_pack(p.net_id & 0xFFFFFFFF))
        ext = True
    if l4 == L4_ICMP4 or l4 == L4_ICMP6:
        parts.append(b"I" + _BBH_pack(ICMP_KIND_CODES.get(p.icmp_kind, 0), p.icmp_code, p.icmp_id))
        ext = True
    if parent_hash is not None:
        parts.append(b"P" + parent_hash)
        ext = True
    if ext:
        tag |= TAG_EXTRA
    return bytes((tag,)) + b"".join(parts), first


def parse_key(key):
    """Decode a key into a dict: link, net (pairs of raw bytes, canonical order), l4,
    ports, vlans, ethertype, net_id, icmp (kind, code, id), parent (8 bytes)."""
    if not key:
        raise ValueError("empty flow key")
    tag = key[0]
    o = 1
    r = {"tag": tag, "link": None, "net": None, "net_proto": 0, "l4": 0, "ports": None, "vlans": (),
         "ethertype": None, "net_id": 0, "icmp": None, "parent": None}
    if tag & TAG_LINK:
        r["link"] = (key[o:o + 6], key[o + 6:o + 12])
        o += 12
    net = (tag >> TAG_NET_SHIFT) & 3
    if net:
        n = 4 if net == NET_IPV4 else 16
        r["net"] = (key[o:o + n], key[o + n:o + 2 * n])
        r["net_proto"] = 4 if n == 4 else 6
        o += 2 * n
    l4 = (tag >> TAG_L4_SHIFT) & 7
    r["l4"] = l4
    if l4 in (L4_TCP, L4_UDP, L4_SCTP):
        r["ports"] = _HH.unpack_from(key, o)
        o += 4
    if tag & TAG_EXTRA:
        while o < len(key):
            c = key[o]
            o += 1
            if c == 0x56:      # V
                n = key[o]
                r["vlans"] = struct.unpack_from("!%dH" % n, key, o + 1)
                o += 1 + 2 * n
            elif c == 0x45:    # E
                r["ethertype"] = struct.unpack_from("!H", key, o)[0]
                o += 2
            elif c == 0x4E:    # N
                r["net_id"] = struct.unpack_from("!I", key, o)[0]
                o += 4
            elif c == 0x49:    # I
                r["icmp"] = struct.unpack_from("!BBH", key, o)
                o += 4
            elif c == 0x50:    # P
                r["parent"] = key[o:o + 8]
                o += 8
            else:
                raise ValueError("corrupt flow key: unknown extra 0x%02x" % c)
    if o != len(key):
        raise ValueError("corrupt flow key: %d trailing bytes" % (len(key) - o))
    return r


def key_without_parent(key):
    if key[0] & TAG_EXTRA and len(key) >= 9 and key[-9] == 0x50:
        # The parent item is always last; make sure the 0x50 is a real item start.
        try:
            if parse_key(key)["parent"] is not None:
                return key[:-9]
        except ValueError:
            pass
    return key


def l3_key(parsed):
    """Canonical key of the same conversation without link layer and VLANs."""
    net = parsed["net"]
    ports = parsed["ports"]
    first = True
    if net is not None:
        if net[0] > net[1]:
            first = False
        elif net[0] == net[1] and ports is not None and ports[0] > ports[1]:
            first = False
    tag = parsed["tag"] & ~(TAG_LINK | TAG_EXTRA)
    parts = []
    if net is not None:
        parts.append(net[0] + net[1] if first else net[1] + net[0])
    if ports is not None:
        parts.append(_HH.pack(*ports) if first else _HH.pack(ports[1], ports[0]))
    ext = []
    if parsed["ethertype"] is not None:
        ext.append(b"E" + struct.pack("!H", parsed["ethertype"]))
    if parsed["net_id"]:
        ext.append(b"N" + struct.pack("!I", parsed["net_id"]))
    if parsed["icmp"] is not None:
        ext.append(b"I" + struct.pack("!BBH", *parsed["icmp"]))
    if ext:
        tag |= TAG_EXTRA
        parts.extend(ext)
    return bytes((tag,)) + b"".join(parts)


def _signed(v):
    return v - (1 << 64) if v >= (1 << 63) else v


def flow_ids(flow, c, node_tid):
    """(UUID, TrackingID, L3TrackingID) as 16-hex strings, cached in the counters array."""
    b = flow.b
    if not c[b + F_STATE] & S_IDS:
        key = flow.key
        base = key_without_parent(key)
        tracking = xxh64(base)
        seed = tracking if base is key else xxh64(key)
        uuid = xxh64(_Q.pack(c[b + F_START] & 0xFFFFFFFFFFFFFFFF) + node_tid.encode(), seed)
        parsed = parse_key(base)
        l3 = xxh64(l3_key(parsed)) if parsed["link"] is not None else tracking
        c[b + F_UUID] = _signed(uuid)
        c[b + F_TID] = _signed(tracking)
        c[b + F_L3TID] = _signed(l3)
        c[b + F_STATE] |= S_IDS
    m = 0xFFFFFFFFFFFFFFFF
    return "%016x" % (c[b + F_UUID] & m), "%016x" % (c[b + F_TID] & m), "%016x" % (c[b + F_L3TID] & m)


def metric_dict(abp, abb, bap, bab, start, last, rtt=0):
    m = {"ABPackets": abp, "ABBytes": abb, "BAPackets": bap, "BABytes": bab, "Start": start, "Last": last}
    if rtt:
        m["RTT"] = rtt
    return m


def flow_to_dict(flow, c, node_tid="", capture_id="", lum=None, finish=None, tcp_metric=False,
                 with_raw=False, ip_metric=False):
    """Upstream Flow JSON (spec §5.1) of `flow` whose counters live in array `c`.

    `lum` is the LastUpdateMetric dict (None: omitted); `finish` overrides the
    flow's finish type (e.g. TIMEOUT on expiry); `ip_metric` adds IPMetric to IPv4 flows (IPDefrag).  With `with_raw` the raw
    packets are added under the non-upstream key "LastRawPackets" (a list of
    {"Timestamp","Index","Data"(base64),"LinkType"}); strip it before serving.
    """
    b = flow.b
    start = c[b + F_START]
    last = c[b + F_LAST]
    uuid, tracking, l3 = flow_ids(flow, c, node_tid)
    k = parse_key(flow.key)
    a_first = flow.a
    d = {"UUID": uuid, "LayersPath": flow.lp, "Application": flow.app}
    link = k["link"]
    x = flow.x
    if link is None and x is not None and x.link is not None:
        link = x.link
        a_first = True
    if link is not None:
        la, lb = (link[0], link[1]) if a_first else (link[1], link[0])
        vid = 0
        for v in k["vlans"]:
            vid = (vid << 12) | v
        d["Link"] = {"Protocol": "ETHERNET", "A": mac_str(la), "B": mac_str(lb), "ID": vid}
    a_first = flow.a
    net = k["net"]
    if net is not None:
        na, nb = (net[0], net[1]) if a_first else (net[1], net[0])
        d["Network"] = {"Protocol": "IPV4" if k["net_proto"] == 4 else "IPV6",
                        "A": ip_str(na), "B": ip_str(nb), "ID": k["net_id"]}
    ports = k["ports"]
    if ports is not None:
        pa, pb = (ports[0], ports[1]) if a_first else (ports[1], ports[0])
        if x is not None and x.ports is not None:
            pa, pb = x.ports
        d["Transport"] = {"Protocol": _L4_NAMES[k["l4"]], "A": pa, "B": pb, "ID": 0}
    icmp_key = k["icmp"]
    if icmp_key is not None:
        kind, code, ident = icmp_key[0], icmp_key[1], icmp_key[2]
        icmp = {"Type": ICMP_KIND_NAMES.get(kind, "UNKNOWN")}
        if code:
            icmp["Code"] = code
        if ident:
            icmp["ID"] = ident
        d["ICMP"] = icmp
    if x is not None and x.layers:
        for name in ("DHCPv4", "DNS", "VRRPv2"):
            if name in x.layers:
                d[name] = x.layers[name]
    if lum is not None:
        d["LastUpdateMetric"] = lum
    d["Metric"] = metric_dict(c[b + F_ABP], c[b + F_ABB], c[b + F_BAP], c[b + F_BAB], start, last, c[b + F_RTT])
    if tcp_metric:
        t = x.tcp if x is not None else None
        d["TCPMetric"] = {name: (bool(t[i]) if name.endswith(("SawStart", "SawEnd")) else t[i])
                          for i, name in enumerate(TCP_FIELDS)} if t is not None else {}
    if ip_metric and k["net_proto"] == 4:
        ip = x.ip if x is not None and x.ip is not None else (0, 0)
        d["IPMetric"] = {"Fragments": ip[0], "FragmentErrors": ip[1]}
    d["Start"] = start
    d["Last"] = last
    d["TrackingID"] = tracking
    d["L3TrackingID"] = l3
    d["ParentUUID"] = flow.parent or ""
    if node_tid:
        d["NodeTID"] = node_tid
    if capture_id:
        d["CaptureID"] = capture_id
    d["RawPacketsCaptured"] = x.raw_count if x is not None else 0
    fin = finish if finish is not None else (c[b + F_STATE] & 3)
    if fin:
        d["FinishType"] = FINISH_NAMES[fin]
    if with_raw:
        raws = []
        if x is not None and x.raw:
            for i, (ts, data, lt) in enumerate(x.raw):
                raws.append({"Timestamp": ts, "Index": i, "Data": base64.b64encode(data).decode(),
                             "LinkType": lt})
        d["LastRawPackets"] = raws
    return d
