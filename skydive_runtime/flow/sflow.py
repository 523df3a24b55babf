"""sFlow v5 datagrams: decoder and UDP collector source.

    dg = decode_datagram(payload)          # SFlowDatagram (raises SFlowError on bad input)
    for s in dg.flow_samples: s.input_if, s.output_if, s.sampling_rate, s.records[...]
    for c in dg.counter_samples: c.source_if, c.records[...]  (generic if counters decoded)

`SFlowSource(host, port)` receives datagrams and hands every sampled raw
packet header (Ethernet) to the flow table with the sample's frame length as
wire length; `on_sample(sample)` (optional) sees every flow sample with its
input/output ifIndex (source/destination interface), and `counters` keeps the
last generic interface counters per ifIndex (the SFlow.Counters of a node).
"""

import socket
import struct

from .capabilities import Opened
from .udp_collector import UdpCollector

SFLOW_DEFAULT_PORT = 6343

FMT_FLOW_SAMPLE = 1
FMT_COUNTER_SAMPLE = 2
FMT_EXP_FLOW_SAMPLE = 3
FMT_EXP_COUNTER_SAMPLE = 4
REC_RAW_HEADER = 1
REC_GENERIC_IF = 1
REC_ETHERNET_IF = 2
HEADER_PROTO_ETHERNET = 1
HEADER_PROTO_IPV4 = 11
HEADER_PROTO_IPV6 = 12

_GENERIC_IF = struct.Struct("!IIQIIQIIIIIIQIIIIII")   # 88 bytes, 19 fields
_GENERIC_NAMES = ("IfIndex", "IfType", "IfSpeed", "IfDirection", "IfStatus", "IfInOctets",
                  "IfInUcastPkts", "IfInMulticastPkts", "IfInBroadcastPkts", "IfInDiscards",
                  "IfInErrors", "IfInUnknownProtos", "IfOutOctets", "IfOutUcastPkts",
                  "IfOutMulticastPkts", "IfOutBroadcastPkts", "IfOutDiscards", "IfOutErrors",
                  "IfPromiscuousMode")
_ETHERNET_NAMES = ("Dot3StatsAlignmentErrors", "Dot3StatsFCSErrors", "Dot3StatsSingleCollisionFrames",
                   "Dot3StatsMultipleCollisionFrames", "Dot3StatsSQETestErrors",
                   "Dot3StatsDeferredTransmissions", "Dot3StatsLateCollisions",
                   "Dot3StatsExcessiveCollisions", "Dot3StatsInternalMacTransmitErrors",
                   "Dot3StatsCarrierSenseErrors", "Dot3StatsFrameTooLongs",
                   "Dot3StatsInternalMacReceiveErrors", "Dot3StatsSymbolErrors")


class SFlowError(ValueError):
    pass


class RawPacketHeader(object):
    __slots__ = ("protocol", "frame_length", "stripped", "header")

    def __init__(self, protocol, frame_length, stripped, header):
        self.protocol = protocol
        self.frame_length = frame_length
        self.stripped = stripped
        self.header = header

    @property
    def linktype(self):
        return {HEADER_PROTO_ETHERNET: 1, HEADER_PROTO_IPV4: 228, HEADER_PROTO_IPV6: 229}.get(self.protocol)


class FlowSample(object):
    __slots__ = ("sequence", "source_id_type", "source_id", "sampling_rate", "sample_pool", "drops",
                 "input_if", "output_if", "records")

    def __repr__(self):
        return "<FlowSample in=%d out=%d rate=%d records=%d>" % (
            self.input_if, self.output_if, self.sampling_rate, len(self.records))


class CounterSample(object):
    __slots__ = ("sequence", "source_id_type", "source_id", "records")

    @property
    def source_if(self):
        return self.source_id


class SFlowDatagram(object):
    __slots__ = ("agent", "sub_agent_id", "sequence", "uptime", "flow_samples", "counter_samples")


class _Reader(object):
    __slots__ = ("b", "o", "end")

    def __init__(self, b, o, end):
        self.b = b
        self.o = o
        self.end = end

    def need(self, n, what):
        if self.end - self.o < n:
            raise SFlowError("truncated sFlow datagram: %s needs %d bytes at offset %d, %d left"
                             % (what, n, self.o, self.end - self.o))

    def u32(self, what):
        self.need(4, what)
        v = struct.unpack_from("!I", self.b, self.o)[0]
        self.o += 4
        return v

    def take(self, n, what):
        self.need(n, what)
        v = self.b[self.o:self.o + n]
        self.o += n
        return v


def decode_datagram(data):
    """Decode one sFlow v5 datagram (bytes)."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise SFlowError("sFlow datagram must be bytes")
    data = bytes(data)
    r = _Reader(data, 0, len(data))
    version = r.u32("version")
    if version != 5:
        raise SFlowError("unsupported sFlow version %d (only 5)" % version)
    at = r.u32("agent address type")
    if at == 1:
        agent = socket.inet_ntop(socket.AF_INET, r.take(4, "agent address"))
    elif at == 2:
        agent = socket.inet_ntop(socket.AF_INET6, r.take(16, "agent address"))
    else:
        raise SFlowError("unknown sFlow agent address type %d" % at)
    dg = SFlowDatagram()
    dg.agent = agent
    dg.sub_agent_id = r.u32("sub agent id")
    dg.sequence = r.u32("sequence")
    dg.uptime = r.u32("uptime")
    n = r.u32("sample count")
    dg.flow_samples = []
    dg.counter_samples = []
    for dummy in range(n):
        fmt = r.u32("sample format")
        length = r.u32("sample length")
        r.need(length, "sample")
        end = r.o + length
        sub = _Reader(data, r.o, end)
        enterprise, f = fmt >> 12, fmt & 0xFFF
        if enterprise == 0 and f in (FMT_FLOW_SAMPLE, FMT_EXP_FLOW_SAMPLE):
            dg.flow_samples.append(_flow_sample(sub, f == FMT_EXP_FLOW_SAMPLE))
        elif enterprise == 0 and f in (FMT_COUNTER_SAMPLE, FMT_EXP_COUNTER_SAMPLE):
            dg.counter_samples.append(_counter_sample(sub, f == FMT_EXP_COUNTER_SAMPLE))
        r.o = end
    return dg


def _source_id(r, expanded):
    """(source id type, source id index): two words in an expanded sample, one packed word else."""
    if expanded:
        return r.u32("source id type"), r.u32("source id index")
    v = r.u32("source id")
    return v >> 24, v & 0xFFFFFF


def _flow_sample(r, expanded):
    s = FlowSample()
    s.sequence = r.u32("flow sample sequence")
    s.source_id_type, s.source_id = _source_id(r, expanded)
    s.sampling_rate = r.u32("sampling rate")
    s.sample_pool = r.u32("sample pool")
    s.drops = r.u32("drops")
    if expanded:
        r.u32("input format")
        s.input_if = r.u32("input")
        r.u32("output format")
        s.output_if = r.u32("output")
    else:
        i = r.u32("input")
        o = r.u32("output")
        s.input_if = i & 0x3FFFFFFF
        s.output_if = o & 0x3FFFFFFF
    n = r.u32("flow record count")
    s.records = []
    for dummy in range(n):
        fmt = r.u32("flow record format")
        length = r.u32("flow record length")
        r.need(length, "flow record")
        end = r.o + length
        if fmt == REC_RAW_HEADER:
            sub = _Reader(r.b, r.o, end)
            proto = sub.u32("header protocol")
            frame_length = sub.u32("frame length")
            stripped = sub.u32("stripped")
            hlen = sub.u32("header length")
            header = sub.take(hlen, "sampled header")
            s.records.append(RawPacketHeader(proto, frame_length, stripped, header))
        else:
            s.records.append((fmt, r.b[r.o:end]))
        r.o = end
    return s


def _counter_sample(r, expanded):
    s = CounterSample()
    s.sequence = r.u32("counter sample sequence")
    s.source_id_type, s.source_id = _source_id(r, expanded)
    n = r.u32("counter record count")
    s.records = []
    for dummy in range(n):
        fmt = r.u32("counter record format")
        length = r.u32("counter record length")
        r.need(length, "counter record")
        end = r.o + length
        if fmt == REC_GENERIC_IF and length >= _GENERIC_IF.size:
            vals = _GENERIC_IF.unpack_from(r.b, r.o)
            s.records.append(("generic", dict(zip(_GENERIC_NAMES, vals))))
        elif fmt == REC_ETHERNET_IF and length >= 52:
            vals = struct.unpack_from("!13I", r.b, r.o)
            s.records.append(("ethernet", dict(zip(_ETHERNET_NAMES, vals))))
        else:
            s.records.append((fmt, r.b[r.o:end]))
        r.o = end
    return s


class SFlowSource(UdpCollector):
    """UDP sFlow collector feeding the flow table (upstream `sflow` / `ovssflow` probes)."""

    linktype = 1
    kind = "sFlow"
    error = SFlowError
    rcvbuf = 4 << 20

    def __init__(self, host="127.0.0.1", port=0, netns=None, on_sample=None):
        UdpCollector.__init__(self, host, port, netns)
        self.on_sample = on_sample
        self.counters = {}          # ifIndex -> {"generic": {...}, "ethernet": {...}, "Timestamp": ms}
        self.errors = 0
        self.last_error = None
        self._sample_drops = 0

    def handle_datagram(self, data, handler, ts_ns):
        """Decode one datagram and feed its packets; returns the number of packets."""
        try:
            dg = decode_datagram(data)
        except SFlowError as e:
            self.errors += 1
            self.last_error = str(e)
            return 0
        n = 0
        for s in dg.flow_samples:
            self._sample_drops += s.drops
            if self.on_sample is not None:
                self.on_sample(s)
            for rec in s.records:
                if isinstance(rec, RawPacketHeader):
                    lt = rec.linktype
                    if lt is None:
                        continue
                    if lt == 1:
                        handler(rec.header, ts_ns, rec.frame_length)
                    else:
                        handler(rec.header, ts_ns, rec.frame_length, lt)
                    n += 1
        ms = ts_ns // 1000000
        for c in dg.counter_samples:
            entry = self.counters.setdefault(c.source_id, {})
            for kind, rec in c.records:
                if kind in ("generic", "ethernet"):
                    entry[kind] = rec
            entry["Timestamp"] = ms
        return n

    def stats(self):
        return {"PacketsReceived": self.received, "PacketsDropped": self._sample_drops,
                "PacketsIfDropped": 0}


# ---- capture type `sflow` (flow/capabilities.py) ---------------------------------------------------

def available(config):
    return None


def collector(ctx):
    """An SFlowSource bound in agent.flow.sflow.port_min..port_max (or on the capture's Port)."""
    return SFlowSource.bind_for(ctx, "sflow", (6345, 6355), "SFlowSocket")


def open_capture(ctx):
    return Opened(collector(ctx))
