"""The flow table: packets in, flow records and periodic updates out.

A `FlowTable` is single-threaded: the capture thread (capture.py) feeds it
with `process()` and calls `tick()` every update interval; nothing else may
touch it meanwhile.  Results leave the table only as plain dicts (upstream
Flow JSON), so the asyncio side never shares mutable state with the hot path.

Hot path: established Ethernet/IPv4|IPv6/TCP|UDP flows (no IPv4 options or
fragments, no IPv6 extension headers, TCP segments without SYN/FIN/RST, not
VXLAN or Geneve) and ICMPv4 echo flows whose RTT is known are counted by `process()`
from a handful of byte slices; everything else (first packet of a flow,
VLAN, ICMPv6, ARP, tunnels, TCP control segments, raw-packet capture,
ExtraTCPMetric) is decoded by decode.decode() and goes through
`process_decoded()`.
"""

import itertools
from array import array

from . import decode as _dec
from .flow import (Flow, FlowExtra, packet_key, flow_to_dict, flow_ids, metric_dict, NFIELDS,
                   F_ABP, F_ABB, F_BAP, F_BAB, F_START, F_LAST, F_ABP0, F_ABB0, F_BAP0, F_BAB0,
                   F_RTT, F_RTT0, F_STATE, F_MARK, FINISH_TIMEOUT, FINISH_TCP_FIN, FINISH_TCP_RST,
                   TCP_INDEX, TCP_FIELDS)
from .xxhash import xxh64
from .layers import parser_for
from .defrag import IPDefragger

import struct as _struct

_ETH_IP = b"\x08\x00"
_VXLAN = b"\x12\xb5"
_TAG_TCP_L2 = bytes((1 | (1 << 1) | (1 << 3),))
_TAG_UDP_L2 = bytes((1 | (1 << 1) | (2 << 3),))
_TAG_TCP_L3 = bytes(((1 << 1) | (1 << 3),))
_TAG_UDP_L3 = bytes(((1 << 1) | (2 << 3),))
_TAG_ICMP_L2 = bytes((1 | (1 << 1) | (4 << 3) | 64,))
_TAG_ICMP_L3 = bytes(((1 << 1) | (4 << 3) | 64,))
_ETH_IP6 = b"\x86\xdd"
_TAG6_TCP_L2 = bytes((1 | (2 << 1) | (1 << 3),))
_TAG6_UDP_L2 = bytes((1 | (2 << 1) | (2 << 3),))
_TAG6_TCP_L3 = bytes(((2 << 1) | (1 << 3),))
_TAG6_UDP_L3 = bytes(((2 << 1) | (2 << 3),))
_ECHO_EXT = b"I\x02"          # extras item: ICMP kind ECHO (code and id follow)

DEFAULT_APP_TIMEOUTS_MS = {"ARP": 10000, "DNS": 10000}

LAYER_KEY_MODES = ("L2", "L3")

# Evicted flows are sent once at the next tick; under a flood of new flows at most this
# many per tick are kept for sending, the others are only counted (FlowDropped).
MAX_PENDING_EVICTED = 10000


class FlowTableError(ValueError):
    pass


class FlowTable(object):
    """Bounded flow table of one capture.

    Parameters (all optional):
      node_tid, capture_id   copied into every flow (NodeTID, CaptureID)
      layer_key_mode         "L2" (default) or "L3"
      expire_ms              idle time after which a flow is removed (flow.expire, 600 s)
      hold_ms                time a FIN/RST flow is kept after its last packet (15 s)
      app_timeouts_ms        {"ARP": 10000, "DNS": 10000}: idle timeout per Application
      max_entries            table size; beyond, least recently used flows are evicted
                             (counted in `flows_dropped` and sent once with FinishType TIMEOUT,
                             at most MAX_PENDING_EVICTED per tick)
      raw_packet_limit       0..10 raw packets kept per flow
      header_size            bytes of each raw packet kept (0 = whole packet)
      extra_tcp_metric       compute TCPMetric
      extra_layers           ExtraLayers mask (VRRP 1, DNS 2, DHCPv4 4): those layers' JSON in the
                             flows (flow/layers); every packet then takes the decoding path
      application_ports      Application names by port: {"tcp": {port: name}, "udp": {...}}
                             (upstream config shape), or flat {port: name} / {name: [ports]}
      linktype               default link type of `process()` input (1 = Ethernet)
    """

    def __init__(self, node_tid="", capture_id="", layer_key_mode="L2", expire_ms=600000,
                 hold_ms=15000, app_timeouts_ms=None, max_entries=500000, raw_packet_limit=0,
                 header_size=0, extra_tcp_metric=False, application_ports=None,
                 linktype=_dec.LINKTYPE_ETHERNET, extra_layers=0, ip_defrag=False):
        # constructor arguments, to build the same table elsewhere (ProcessCaptureRunner)
        self.settings = dict(node_tid=node_tid, capture_id=capture_id, layer_key_mode=layer_key_mode,
                             expire_ms=expire_ms, hold_ms=hold_ms, app_timeouts_ms=app_timeouts_ms,
                             max_entries=max_entries, raw_packet_limit=raw_packet_limit,
                             header_size=header_size, extra_tcp_metric=extra_tcp_metric,
                             application_ports=application_ports, linktype=linktype, extra_layers=extra_layers,
                             ip_defrag=ip_defrag)
        if layer_key_mode not in LAYER_KEY_MODES:
            raise FlowTableError("invalid layer key mode %r, expected L2 or L3" % (layer_key_mode,))
        if not isinstance(max_entries, int) or max_entries < 1:
            raise FlowTableError("max_entries must be a positive integer, got %r" % (max_entries,))
        if not isinstance(raw_packet_limit, int) or not 0 <= raw_packet_limit <= 10:
            raise FlowTableError("raw packet limit must be between 0 and 10, got %r" % (raw_packet_limit,))
        if not isinstance(header_size, int) or header_size < 0:
            raise FlowTableError("invalid header size %r" % (header_size,))
        for name, v in (("expire_ms", expire_ms), ("hold_ms", hold_ms)):
            if not isinstance(v, int) or v <= 0:
                raise FlowTableError("%s must be > 0, got %r" % (name, v))
        self.node_tid = node_tid or ""
        self.capture_id = capture_id or ""
        self.l3_mode = layer_key_mode == "L3"
        self.expire_ms = expire_ms
        self.hold_ms = hold_ms
        self.app_timeouts = dict(DEFAULT_APP_TIMEOUTS_MS if app_timeouts_ms is None else
                                 {str(k).upper(): int(v) for k, v in app_timeouts_ms.items()})
        self.max_entries = max_entries
        self.raw_packet_limit = raw_packet_limit
        self.header_size = header_size
        self.extra_tcp_metric = bool(extra_tcp_metric)
        if not isinstance(extra_layers, int) or not 0 <= extra_layers <= 255:
            raise FlowTableError("extra layers must be a mask between 0 and 255, got %r" % (extra_layers,))
        self.extra_layers = extra_layers
        self.ip_defrag = bool(ip_defrag)
        self._defrag = IPDefragger() if ip_defrag else None
        self.fragment_errors = 0        # IPDefrag: datagrams dropped incomplete with no flow to count them
        self.app_ports = _normalize_app_ports(application_ports)
        self.linktype = linktype
        self.flows = {}                 # key -> Flow (insertion order = LRU order)
        self.c = array("q")             # counters, NFIELDS per flow
        self._free = []
        self._fast = raw_packet_limit == 0 and not extra_layers
        self._tcp_fast = self._fast and not self.extra_tcp_metric
        self._pending = []              # dicts of flows removed outside tick() (eviction)
        self.flows_dropped = 0
        self.evicted_unsent = 0         # evicted flows not sent (more than MAX_PENDING_EVICTED per tick)
        self.undecodable = 0            # packets with no usable layer
        self.last_tick_ms = 0
        self._evict_batch = max(1, min(1024, max_entries // 100))
        self._process = self.process = self._make_fast_path()
        # established IPv4 TCP/UDP flows as the raw bytes of a frame, per direction:
        # IPs + ports -> (MACs, counter index of that direction, index of Last)
        self._direct = ({}, {})         # TCP, UDP
        self._direct_keys = {}          # flow key -> [(direct dict, raw key)], dropped with the flow
        self.process_block = self._make_block_path() if self._fast else None

    # ------------------------------------------------------------------ hot path
    def process(self, data, ts_ns, wire_len=0, linktype=None):
        """Account one captured frame (bytes) seen at `ts_ns` (ns since epoch).

        `wire_len` is the original length on the wire when the capture was
        truncated (0 = len(data)); `linktype` defaults to the table's.
        (Replaced per instance by the closure built in _make_fast_path.)
        """
        return self._process(data, ts_ns, wire_len, linktype)

    def _make_fast_path(self):
        """Build the per-packet closure: every lookup it needs is a local/cell variable."""
        flows_get = self.flows.get
        c = self.c
        slow = self._slow
        default_lt = self.linktype
        l3 = self.l3_mode
        tcp_fast = self._tcp_fast
        tag_tcp = _TAG_TCP_L3 if l3 else _TAG_TCP_L2
        tag_udp = _TAG_UDP_L3 if l3 else _TAG_UDP_L2
        eth_ip = _ETH_IP
        eth_ip6 = _ETH_IP6
        vx = _VXLAN
        tag_icmp = _TAG_ICMP_L3 if l3 else _TAG_ICMP_L2
        tag6_tcp = _TAG6_TCP_L3 if l3 else _TAG6_TCP_L2
        tag6_udp = _TAG6_UDP_L3 if l3 else _TAG6_UDP_L2
        echo_ext = _ECHO_EXT

        if not self._fast:
            def process(data, ts_ns, wire_len=0, linktype=None):
                return slow(data, ts_ns, wire_len, linktype or default_lt)
            return process

        def process(data, ts_ns, wire_len=0, linktype=None):
            if (linktype or default_lt) != 1:
                return slow(data, ts_ns, wire_len, linktype or default_lt)
            if len(data) < 38:
                return slow(data, ts_ns, wire_len, 1)
            # Byte indexing (an int) is several times cheaper than a slice: the checks below
            # use it, and the key is built from as few slices as possible.
            e0 = data[12]
            if e0 == 8 and data[13] == 0:
                if data[14] != 0x45 or data[20] & 0x3F or data[21]:
                    return slow(data, ts_ns, wire_len, 1)
                proto = data[23]
                icmp = False
                if proto == 6:
                    if not tcp_fast or len(data) < 54 or data[47] & 7:
                        return slow(data, ts_ns, wire_len, 1)
                    tag = tag_tcp
                elif proto == 17:
                    if (data[34] == 0x12 and data[35] == 0xB5) or (data[36] == 0x12 and data[37] == 0xB5) or \
                            (data[34] == 0x17 and data[35] == 0xC1) or (data[36] == 0x17 and data[37] == 0xC1):
                        return slow(data, ts_ns, wire_len, 1)      # VXLAN, Geneve
                    tag = tag_udp
                elif proto == 1:
                    # ICMP echo of a flow whose RTT is known: counters only
                    if len(data) < 42 or (data[34] != 8 and data[34] != 0):
                        return slow(data, ts_ns, wire_len, 1)
                    icmp = True
                    tag = tag_icmp
                else:
                    return slow(data, ts_ns, wire_len, 1)
                if l3:
                    s = data[26:30]
                    d = data[30:34]
                    if s < d:
                        first = True
                        k = tag + data[26:34] if icmp else tag + data[26:38]
                    elif d < s:
                        first = False
                        k = tag + d + s if icmp else tag + d + s + data[36:38] + data[34:36]
                    else:
                        return slow(data, ts_ns, wire_len, 1)
                else:
                    # canonical order: lower MAC first (first bytes decide unless equal)
                    a0 = data[6]
                    b0 = data[0]
                    if a0 < b0 or (a0 == b0 and data[6:12] < data[0:6]):
                        first = True
                        k = tag + data[6:12] + data[0:6] + (data[26:34] if icmp else data[26:38])
                    elif a0 > b0 or data[0:6] < data[6:12]:
                        first = False
                        k = tag + data[0:12] + data[30:34] + data[26:30] if icmp else \
                            tag + data[0:12] + data[30:34] + data[26:30] + data[36:38] + data[34:36]
                    else:
                        return slow(data, ts_ns, wire_len, 1)
                if icmp:
                    f = flows_get(k + echo_ext + data[35:36] + data[38:40])
                    if f is None or c[f.b + 11] != -1:
                        return slow(data, ts_ns, wire_len, 1)
                else:
                    f = flows_get(k)
            elif e0 == 0x86 and data[13] == 0xDD:
                if len(data) < 58:
                    return slow(data, ts_ns, wire_len, 1)
                nh = data[20]
                if nh == 6:
                    if not tcp_fast or len(data) < 74 or data[67] & 7:
                        return slow(data, ts_ns, wire_len, 1)
                    tag = tag6_tcp
                elif nh == 17:
                    if (data[54] == 0x12 and data[55] == 0xB5) or (data[56] == 0x12 and data[57] == 0xB5) or \
                            (data[54] == 0x17 and data[55] == 0xC1) or (data[56] == 0x17 and data[57] == 0xC1):
                        return slow(data, ts_ns, wire_len, 1)      # VXLAN, Geneve
                    tag = tag6_udp
                else:
                    return slow(data, ts_ns, wire_len, 1)
                if l3:
                    s = data[22:38]
                    d = data[38:54]
                    if s < d:
                        f = flows_get(tag + data[22:58])
                        first = True
                    elif d < s:
                        f = flows_get(tag + d + s + data[56:58] + data[54:56])
                        first = False
                    else:
                        return slow(data, ts_ns, wire_len, 1)
                else:
                    a0 = data[6]
                    b0 = data[0]
                    if a0 < b0 or (a0 == b0 and data[6:12] < data[0:6]):
                        f = flows_get(tag + data[6:12] + data[0:6] + data[22:58])
                        first = True
                    elif a0 > b0 or data[0:6] < data[6:12]:
                        f = flows_get(tag + data[0:12] + data[38:54] + data[22:38] + data[56:58] + data[54:56])
                        first = False
                    else:
                        return slow(data, ts_ns, wire_len, 1)
            else:
                return slow(data, ts_ns, wire_len, 1)
            if f is None:
                return slow(data, ts_ns, wire_len, 1)
            b = f.b
            if first is f.a:
                c[b] += 1
                c[b + 1] += wire_len or len(data)
            else:
                c[b + 2] += 1
                c[b + 3] += wire_len or len(data)
            c[b + 5] = ts_ns // 1000000
        return process

    def _make_block_path(self):
        """Build process_block(buf, first, num, frame_at): every TPACKET_V3 frame of a ring block
        (afpacket read_blocks).  A frame of an established IPv4 TCP|UDP flow already seen in that
        direction costs one header read, a raw-key slice and a dict hit: no decoding, no copy of
        the frame, no call; every other frame goes through process() as read_packets would give
        it, and teaches the direct map its flow's raw key when the decoder finds it eligible."""
        process = self._process
        flows = self.flows
        c = self.c
        tcp_direct, udp_direct = self._direct
        direct_keys = self._direct_keys
        l3 = self.l3_mode
        tcp_fast = self._tcp_fast
        decode = _dec.decode
        structs = {}

        def header(mac):
            # the frame header and the frame's fixed IPv4 fields in one read (little endian:
            # the frame's big-endian fields compare against byte-swapped constants)
            u = structs.get(mac)
            if u is None:
                u = structs[mac] = _struct.Struct("<IIIIIIH%dx12xHB5xHxB23xB" % (mac - 26)).unpack_from
            return u

        def learn(data, d, rk):
            p = decode(data, 1)
            if p.inner is not None or p.tunnel_end or p.vlans or p.fragment or len(p.layers) < 3 \
                    or p.layers[1] != "IPv4" or p.layers[2] not in ("TCP", "UDP") or p.tunnel_dport:
                return
            key, first = packet_key(p, l3)
            f = flows.get(key)
            if f is not None and rk not in d:
                # one MAC pair per raw key (L2): another pair of the same IPs/ports takes process()
                d[rk] = (data[0:12], f.b + (0 if first is f.a else 2), f.b + F_LAST)
                direct_keys.setdefault(key, []).append((d, rk))

        def process_block(buf, pos, num, frame_at):
            if not num:
                return
            mac0 = buf[pos + 24] | (buf[pos + 25] << 8)
            u = header(mac0)
            psec = -1
            base = 0
            for dummy in range(num):
                nxt, sec, nsec, snap, wlen, st, mac, et, vihl, frag, proto, tflags = u(buf, pos)
                d = None
                if et == 8 and vihl == 0x45 and mac == mac0 and not frag & 0xFF3F and snap >= 48 and not st & 0x10:
                    if proto == 17:
                        d = udp_direct
                    elif proto == 6 and tcp_fast and not tflags & 7:
                        d = tcp_direct
                if d is not None:
                    q = pos + mac
                    rk = buf[q + 26:q + 38]                # IPs + ports
                    e = d.get(rk)
                    if e is not None and (l3 or buf[q:q + 12] == e[0]):
                        dummy, i, li = e
                        c[i] += 1
                        c[i + 1] += wlen
                        if sec != psec:
                            psec = sec
                            base = sec * 1000
                        c[li] = base + nsec // 1000000
                    else:
                        data, ts, wl = frame_at(buf, pos)
                        process(data, ts, wl, 1)
                        learn(data, d, rk)
                else:
                    data, ts, wl = frame_at(buf, pos)
                    process(data, ts, wl, 1)
                pos += nxt
        return process_block

    def process_many(self, packets):
        """Feed an iterable of (data, ts_ns, wire_len) tuples."""
        proc = self.process
        for data, ts, wl in packets:
            proc(data, ts, wl)

    # ------------------------------------------------------------------ slow path
    def _slow(self, data, ts_ns, wire_len, linktype):
        if not isinstance(data, bytes):
            if not isinstance(data, (bytearray, memoryview)):
                raise _dec.DecodeError("packet data must be bytes, got %s" % type(data).__name__)
            data = bytes(data)
        p = _dec.decode(data, linktype, wire_len or len(data))
        if not p.layers:
            self.undecodable += 1
            return None
        if p.fragment and self._defrag is not None and p.net_proto == 4:
            return self._fragment(p, data, ts_ns, linktype)
        return self.process_decoded(p, data, ts_ns, linktype)

    def _fragment(self, p, data, ts_ns, linktype):
        """IPDefrag: hold fragment `p`; account its datagram to its flow once whole."""
        length = p.wire_len if p.link_src is not None or linktype == _dec.LINKTYPE_LINUX_SLL else (p.ip_len or p.wire_len)
        got = self._defrag.add(p, data, linktype, length, ts_ns // 1000000)
        if got is None:
            return None
        if got[0] == "error":
            self._fragment_error(got[1])
            return None
        first, first_data, first_lt, total, frames = got
        f = self.process_decoded(first, first_data, ts_ns, first_lt, length=total)
        x = f.x
        if x is None:
            x = f.x = FlowExtra()
        x.ip = [frames, 0] if x.ip is None else [x.ip[0] + frames, x.ip[1]]
        return f

    def _fragment_error(self, first):
        """A datagram dropped incomplete: counted on the flow of its first fragment when it has one."""
        f = self.flows.get(packet_key(first[0], self.l3_mode)[0]) if first is not None else None
        if f is None:
            self.fragment_errors += 1
            return
        x = f.x
        if x is None:
            x = f.x = FlowExtra()
        x.ip = [0, 1] if x.ip is None else [x.ip[0], x.ip[1] + 1]

    def process_decoded(self, p, data, ts_ns, linktype=1, parent=None, length=None):
        """Account decoded packet `p` (and its tunnel payload, as a child flow)."""
        ms = ts_ns // 1000000
        if length is None:
            length = p.wire_len if p.link_src is not None or linktype == _dec.LINKTYPE_LINUX_SLL \
                else (p.ip_len or p.wire_len)
        parent_hash = None
        if parent is not None:
            parent_hash = _struct.pack("!Q", xxh64(parent.key))
        key, first = packet_key(p, self.l3_mode, parent_hash)
        f = self.flows.get(key)
        c = self.c
        if f is None:
            f = self._new_flow(key, first, p, ms, parent)
            b = f.b
        else:
            b = f.b
        ab = first is f.a
        if ab:
            c[b + F_ABP] += 1
            c[b + F_ABB] += length
        else:
            c[b + F_BAP] += 1
            c[b + F_BAB] += length
        c[b + F_LAST] = ms
        l4 = p.l4_proto
        if l4 == 6:
            self._tcp(f, b, p, ab, ts_ns, ms)
        elif l4 == 1 or l4 == 58:
            t = p.icmp_type
            if t == 8 or t == 128:
                if c[b + F_RTT0] == 0:
                    c[b + F_RTT0] = ts_ns
                    c[b + F_STATE] = (c[b + F_STATE] & ~4) | (0 if ab else 4)
            elif (t == 0 or t == 129) and c[b + F_RTT0] > 0:
                if bool(c[b + F_STATE] & 4) == ab:       # reply in the other direction
                    c[b + F_RTT] = max(1, ts_ns - c[b + F_RTT0])
                    c[b + F_RTT0] = -1
        if self.extra_layers:
            self._extra_layer(f, p, data, ts_ns)
        if self.raw_packet_limit:
            x = f.x
            if x is None:
                x = f.x = FlowExtra()
            if x.raw_count < self.raw_packet_limit:
                if x.raw is None:
                    x.raw = []
                raw = bytes(data[:self.header_size]) if self.header_size else bytes(data)
                x.raw.append((ms, raw, linktype))
                x.raw_count += 1
        if p.inner is not None:
            inner_data = data[p.tunnel_end:p.tunnel_end + p.inner.cap_len] if isinstance(data, (bytes, bytearray)) else b""
            self.process_decoded(p.inner, inner_data, ts_ns, 1 if p.inner.link_src is not None else 101,
                                 parent=f, length=p.inner.wire_len)
        return f

    def _extra_layer(self, f, p, data, ts_ns):
        """The ExtraLayers JSON of packet `p` into flow `f` (DNS: every packet; others: the first)."""
        found = parser_for(self.extra_layers, p.application)
        if found is None:
            return
        name, parse, every = found
        x = f.x
        if x is None:
            x = f.x = FlowExtra()
        if x.layers is None:
            x.layers = {}
        elif not every and name in x.layers:
            return
        off = p.l4_off + (8 if p.l4_proto == _dec.IPPROTO_UDP else 0)
        if p.l4_proto == _dec.IPPROTO_TCP:          # DNS over TCP: 2-byte length, then the message
            off = p.l4_end - p.tcp_payload + 2
        layer = parse(data, off, min(p.l4_end, len(data)), ts_ns)
        if layer is not None:
            x.layers[name] = layer

    def _tcp(self, f, b, p, ab, ts_ns, ms):
        c = self.c
        flags = p.tcp_flags
        if flags & _dec.TCP_SYN:
            if not flags & _dec.TCP_ACK:
                if c[b + F_RTT0] == 0:
                    c[b + F_RTT0] = ts_ns
                    c[b + F_STATE] = (c[b + F_STATE] & ~4) | (0 if ab else 4)
            elif c[b + F_RTT0] > 0 and bool(c[b + F_STATE] & 4) == ab:
                c[b + F_RTT] = max(1, ts_ns - c[b + F_RTT0])
                c[b + F_RTT0] = -1
        if flags & _dec.TCP_RST:
            if c[b + F_RTT0] > 0 and bool(c[b + F_STATE] & 4) == ab:
                c[b + F_RTT] = max(1, ts_ns - c[b + F_RTT0])
                c[b + F_RTT0] = -1
            c[b + F_STATE] = (c[b + F_STATE] & ~3) | FINISH_TCP_RST
        elif flags & _dec.TCP_FIN and (c[b + F_STATE] & 3) != FINISH_TCP_RST:
            c[b + F_STATE] = (c[b + F_STATE] & ~3) | FINISH_TCP_FIN
        if self.extra_tcp_metric:
            x = f.x
            if x is None:
                x = f.x = FlowExtra()
            t = x.tcp
            if t is None:
                t = x.tcp = [0] * len(TCP_FIELDS) + [None, None]   # + next expected seq AB, BA
            d = "AB" if ab else "BA"
            nxt_i = len(TCP_FIELDS) + (0 if ab else 1)
            if flags & _dec.TCP_SYN:
                if not t[TCP_INDEX[d + "SynStart"]]:
                    t[TCP_INDEX[d + "SynStart"]] = ms
                    t[TCP_INDEX[d + "SynTTL"]] = p.ttl
                t[TCP_INDEX[d + "SawStart"]] = 1
                t[nxt_i] = (p.tcp_seq + 1) & 0xFFFFFFFF
            if flags & _dec.TCP_FIN:
                if not t[TCP_INDEX[d + "FinStart"]]:
                    t[TCP_INDEX[d + "FinStart"]] = ms
                t[TCP_INDEX[d + "SawEnd"]] = 1
            if flags & _dec.TCP_RST and not t[TCP_INDEX[d + "RstStart"]]:
                t[TCP_INDEX[d + "RstStart"]] = ms
            plen = p.tcp_payload
            if plen:
                t[TCP_INDEX[d + "Packets"]] += 1
                t[TCP_INDEX[d + "Bytes"]] += plen
                nxt = t[nxt_i]
                seq = p.tcp_seq
                if nxt is not None and seq != nxt:
                    delta = (seq - nxt) & 0xFFFFFFFF
                    if delta < 0x80000000:
                        t[TCP_INDEX[d + "SegmentSkipped"]] += 1
                        t[TCP_INDEX[d + "SegmentSkippedBytes"]] += delta
                    else:
                        t[TCP_INDEX[d + "SegmentOutOfOrder"]] += 1
                        return
                t[nxt_i] = (seq + plen + (1 if flags & _dec.TCP_FIN else 0)) & 0xFFFFFFFF

    def _new_flow(self, key, first, p, ms, parent):
        flows = self.flows
        if len(flows) >= self.max_entries:
            self._evict()
        if self._free:
            b = self._free.pop()
            c = self.c
            for i in range(b, b + NFIELDS):
                c[i] = 0
        else:
            b = len(self.c)
            self.c.extend(_ZEROS)
        c = self.c
        c[b + F_START] = ms
        c[b + F_LAST] = ms
        c[b + F_MARK] = ms
        lp = p.layers_path
        app = p.application
        ports = self.app_ports.get(p.l4_proto) if self.app_ports else None
        if ports:
            name = ports.get(p.dport) or ports.get(p.sport)
            if name:
                app = name
        f = Flow(key, b, first, _intern(lp), _intern(app),
                 flow_ids(parent, c, self.node_tid)[0] if parent is not None else None)
        if self.l3_mode and p.link_src is not None and key[0] & 1 == 0:
            x = f.x = FlowExtra()
            x.link = (p.link_src, p.link_dst)
        if p.tunnel_dport:      # the key has no source port: A and B are the first packet's
            x = f.x = f.x or FlowExtra()
            x.ports = (p.sport, p.dport)
        flows[key] = f
        return f

    def _evict(self):
        """Second-chance LRU: walk the oldest entries; a flow touched since its last chance
        moves to the end, the others are evicted (at least one flow is always evicted)."""
        flows = self.flows
        c = self.c
        evicted = 0
        while not evicted:
            for k in list(itertools.islice(iter(flows), self._evict_batch)):
                f = flows[k]
                b = f.b
                if c[b + F_LAST] > c[b + F_MARK]:
                    c[b + F_MARK] = c[b + F_LAST]
                    del flows[k]
                    flows[k] = f
                else:
                    if len(self._pending) < MAX_PENDING_EVICTED:
                        self._pending.append(self._dict(f, c, self.last_tick_ms or c[b + F_LAST], FINISH_TIMEOUT))
                    else:
                        self.evicted_unsent += 1
                    self._remove(k, f)
                    self.flows_dropped += 1
                    evicted += 1
                    if len(flows) < self.max_entries:
                        break
            if len(flows) < self.max_entries and evicted:
                break

    def _remove(self, key, f):
        del self.flows[key]
        self._free.append(f.b)
        f.b = -1
        if self._direct_keys:
            for d, rk in self._direct_keys.pop(key, ()):
                d.pop(rk, None)

    # ------------------------------------------------------------------ output
    def _dict(self, f, c, now_ms, finish=None):
        b = f.b
        prev = self.last_tick_ms
        start = c[b + F_START]
        lum = metric_dict(c[b + F_ABP] - c[b + F_ABP0], c[b + F_ABB] - c[b + F_ABB0],
                          c[b + F_BAP] - c[b + F_BAP0], c[b + F_BAB] - c[b + F_BAB0],
                          max(prev, start) if prev else start, max(now_ms, start), c[b + F_RTT])
        return flow_to_dict(f, c, self.node_tid, self.capture_id, lum, finish, self.extra_tcp_metric,
                            self.raw_packet_limit > 0, self.ip_defrag)

    def to_dict(self, f, now_ms=None):
        """Flow JSON of a live flow; LastUpdateMetric covers [last tick, now]."""
        if f.b < 0:
            raise FlowTableError("flow is no longer in the table")
        return self._dict(f, self.c, now_ms if now_ms is not None else self.c[f.b + F_LAST])

    def get_flows(self, now_ms=None):
        """Flow JSON of every live flow."""
        return [self.to_dict(f, now_ms) for f in list(self.flows.values())]

    def lookup(self, data, linktype=1):
        """The Flow a frame belongs to (None if unknown); for tests and tools."""
        p = _dec.decode(data, linktype)
        key = packet_key(p, self.l3_mode)[0]
        return self.flows.get(key)

    def tick(self, now_ms):
        """Run timers and collect updates.

        Returns the list of flow dicts to send: flows updated since the previous
        tick (LastUpdateMetric = their delta over [previous tick, now]) and
        flows removed (expired, finished and held long enough, application
        timeout, evicted) with their FinishType.
        """
        if self._defrag is not None and self._defrag.pending:
            for first in self._defrag.expire(now_ms):
                self._fragment_error(first)
        out = self._pending
        self._pending = []
        c = self.c
        expire = self.expire_ms
        hold = self.hold_ms
        app_to = self.app_timeouts
        removed = []
        for k, f in list(self.flows.items()):
            b = f.b
            last = c[b + F_LAST]
            idle = now_ms - last
            fin = c[b + F_STATE] & 3
            finish = None
            if fin and idle >= hold:
                finish = fin
            elif idle >= expire:
                finish = FINISH_TIMEOUT
            else:
                t = app_to.get(f.app.upper()) if app_to else None
                if t is not None and idle >= t:
                    finish = FINISH_TIMEOUT
            updated = c[b + F_ABP] != c[b + F_ABP0] or c[b + F_BAP] != c[b + F_BAP0]
            if finish is not None:
                out.append(self._dict(f, c, now_ms, finish))
                removed.append((k, f))
            elif updated:
                out.append(self._dict(f, c, now_ms))
                c[b + F_ABP0] = c[b + F_ABP]
                c[b + F_ABB0] = c[b + F_ABB]
                c[b + F_BAP0] = c[b + F_BAP]
                c[b + F_BAB0] = c[b + F_BAB]
        for k, f in removed:
            self._remove(k, f)
        self.last_tick_ms = now_ms
        return out

    def flush(self, now_ms):
        """Remove every flow, returning their final dicts (capture stop)."""
        out = self._pending
        self._pending = []
        c = self.c
        for k, f in list(self.flows.items()):
            out.append(self._dict(f, c, now_ms))
            self._remove(k, f)
        self.last_tick_ms = now_ms
        return out

    def stats(self):
        return {"FlowCount": len(self.flows), "FlowDropped": self.flows_dropped,
                "Undecodable": self.undecodable}

    def __len__(self):
        return len(self.flows)


_ZEROS = array("q", [0] * NFIELDS)
_INTERNED = {}


def _intern(s):
    v = _INTERNED.get(s)
    if v is None:
        if len(_INTERNED) < 10000:
            _INTERNED[s] = s
        v = s
    return v


def _normalize_app_ports(ports):
    """-> {l4 protocol number: {port: NAME}}.

    Accepted shapes: upstream's config `{"tcp": {80: "http"}, "udp": {53: "dns"}}`;
    a flat `{port: name}`; `{name: [ports]}` (flat shapes apply to TCP, UDP and SCTP)."""
    out = {6: {}, 17: {}, 132: {}}
    if not ports:
        return {}
    if not isinstance(ports, dict):
        raise FlowTableError("application_ports must be a mapping, got %s" % type(ports).__name__)
    for k, v in ports.items():
        if isinstance(k, str) and k.lower() in ("tcp", "udp", "sctp") and isinstance(v, dict):
            proto = {"tcp": 6, "udp": 17, "sctp": 132}[k.lower()]
            for port, name in v.items():
                out[proto][_port(port, name)] = str(name).upper()
        elif isinstance(k, int) or (isinstance(k, str) and k.isdigit()):
            if not isinstance(v, str):
                raise FlowTableError("application name for port %s must be a string" % k)
            for m in out.values():
                m[_port(k, v)] = v.upper()
        else:
            vals = v if isinstance(v, (list, tuple)) else [v]
            for port in vals:
                for m in out.values():
                    m[_port(port, k)] = str(k).upper()
    return {proto: m for proto, m in out.items() if m}


def _port(port, name):
    try:
        p = int(port)
    except (TypeError, ValueError):
        raise FlowTableError("invalid port %r for application %r" % (port, name))
    if not 0 < p < 65536:
        raise FlowTableError("invalid port %r for application %r" % (port, name))
    return p
