"""NetFlow v5: the datagram codec, a UDP collector and the table face that turns records into flows.

    hdr, records = decode_v5(datagram)          # NetFlowError when malformed
    datagram = encode_v5(records, uptime_ms, unix_ms, sequence)
    src = NetFlowSource(host, port)             # the collector (read by CaptureRunner)
    table = NetFlowTable(flow_table)            # process(datagram) -> records merged into flows
    exporter = NetFlowExporter("10.0.0.9:2055") # export(flows of a tick): a capture's Target

A record is a dict: SrcAddr, DstAddr, NextHop (dotted IPv4), Input, Output (interface indexes),
Packets, Octets (IP bytes), First, Last (sysUpTime ms), SrcPort, DstPort, TCPFlags, Proto, ToS.
For ICMP, DstPort carries type * 256 + code (Cisco's convention, what Open vSwitch sends).

Records are one direction each, and exporters send the counts since their previous export: each
record is given the same canonical key as a packet with its addresses (a synthesised header),
so a record and its reverse make one flow, A being the source of the earliest record first seen
(a datagram's records are taken in First order, a request before its reply on a tie); its counts add up
in AB or BA; Start is the first record's First, Last the latest Last, on the exporter's clock
(header uptime and unix time).
"""

import ipaddress
import socket
import struct
import time

from . import decode as _dec
from .flow import F_ABB, F_ABP, F_BAB, F_BAP, F_LAST, packet_key
from .udp_collector import UdpCollector

HEADER = struct.Struct("!HHIIIIBBH")             # 24 bytes
RECORD = struct.Struct("!4s4s4sHHIIIIHHBBBBHHBBH")  # 48 bytes
MAX_RECORDS = 30
NETFLOW_DATAGRAM = -5         # the linktype NetFlowSource hands its datagrams with


class NetFlowError(ValueError):
    pass


def decode_v5(data):
    """(header dict, [record dicts]) of one NetFlow v5 datagram."""
    if len(data) < HEADER.size:
        raise NetFlowError("NetFlow datagram of %d bytes: shorter than a v5 header" % len(data))
    version, count, uptime, secs, nsecs, seq, etype, eid, sampling = HEADER.unpack_from(data)
    if version != 5:
        raise NetFlowError("NetFlow version %d: only v5 is decoded" % version)
    if len(data) < HEADER.size + count * RECORD.size:
        raise NetFlowError("NetFlow v5 datagram announces %d records, holds %d bytes" % (count, len(data)))
    hdr = {"Count": count, "SysUptime": uptime, "UnixMs": secs * 1000 + nsecs // 1000000, "Sequence": seq,
           "EngineType": etype, "EngineID": eid, "SamplingInterval": sampling}
    records = []
    for i in range(count):
        (src, dst, nh, inp, out, pkts, octets, first, last, sport, dport, _p1, flags, proto, tos,
         _sas, _das, _sm, _dm, _p2) = RECORD.unpack_from(data, HEADER.size + i * RECORD.size)
        records.append({"SrcAddr": socket.inet_ntoa(src), "DstAddr": socket.inet_ntoa(dst),
                        "NextHop": socket.inet_ntoa(nh), "Input": inp, "Output": out, "Packets": pkts,
                        "Octets": octets, "First": first, "Last": last, "SrcPort": sport, "DstPort": dport,
                        "TCPFlags": flags, "Proto": proto, "ToS": tos})
    return hdr, records


def encode_v5(records, uptime_ms, unix_ms, sequence, engine_id=0):
    """One NetFlow v5 datagram of up to 30 records (same dict keys as decode_v5's)."""
    if len(records) > MAX_RECORDS:
        raise NetFlowError("a NetFlow v5 datagram holds at most %d records" % MAX_RECORDS)
    out = [HEADER.pack(5, len(records), uptime_ms & 0xFFFFFFFF, unix_ms // 1000, (unix_ms % 1000) * 1000000,
                       sequence & 0xFFFFFFFF, 0, engine_id & 0xFF, 0)]
    for r in records:
        out.append(RECORD.pack(socket.inet_aton(r["SrcAddr"]), socket.inet_aton(r["DstAddr"]),
                               socket.inet_aton(r.get("NextHop", "0.0.0.0")), r.get("Input", 0) & 0xFFFF,
                               r.get("Output", 0) & 0xFFFF, min(r["Packets"], 0xFFFFFFFF),
                               min(r["Octets"], 0xFFFFFFFF), r["First"] & 0xFFFFFFFF, r["Last"] & 0xFFFFFFFF,
                               r.get("SrcPort", 0) & 0xFFFF, r.get("DstPort", 0) & 0xFFFF, 0, r.get("TCPFlags", 0) & 0xFF,
                               r["Proto"] & 0xFF, r.get("ToS", 0) & 0xFF, 0, 0, 0, 0, 0))
    return b"".join(out)


def synth_packet(rec):
    """A header-only IPv4 packet with the record's addresses, protocol and ports (ICMP type/code)."""
    proto = rec["Proto"]
    if proto in (6, 17, 132):
        body = struct.pack("!HH", rec["SrcPort"], rec["DstPort"])
        body += b"\0" * 8 + b"\x50\x10\xff\xff\0\0\0\0" if proto == 6 else b"\x00\x0c\0\0" + b"\0" * 4
    elif proto == 1:
        body = bytes([(rec["DstPort"] >> 8) & 0xFF, rec["DstPort"] & 0xFF]) + b"\0" * 6
    else:
        body = b""
    ip = struct.pack("!BBHHHBBH", 0x45, rec.get("ToS", 0), 20 + len(body), 0, 0, 64, proto, 0)
    return ip + ipaddress.IPv4Address(rec["SrcAddr"]).packed + ipaddress.IPv4Address(rec["DstAddr"]).packed + body


ICMP_REQUESTS = (8, 13, 15, 17)      # echo, timestamp, info, address mask requests


def _order(rec):
    """Records in First order; on a tie (an exporter that stamps both directions of a conversation
    at once) the request first: an ICMP request type, or the side sending to the lower port."""
    if rec["Proto"] == 1:
        asks = rec["DstPort"] >> 8 in ICMP_REQUESTS
    else:
        asks = rec["Proto"] in (6, 17, 132) and rec["DstPort"] < rec["SrcPort"]
    return rec["First"], not asks


class NetFlowSource(UdpCollector):
    """UDP NetFlow collector: CaptureRunner reads it; each datagram goes to the handler whole."""

    linktype = NETFLOW_DATAGRAM
    kind = "NetFlow"
    error = NetFlowError

    def handle_datagram(self, data, handler, ts_ns):
        return handler(data, ts_ns, len(data), NETFLOW_DATAGRAM) or 0

    def stats(self):
        return {"PacketsReceived": self.datagrams, "PacketsDropped": 0, "PacketsIfDropped": 0}


class NetFlowTable(object):
    """The FlowTable face for CaptureRunner: NetFlow datagrams in, the table's flows out."""

    def __init__(self, table):
        self.table = table
        self.capture_id = table.capture_id
        self.settings = table.settings
        self.records = 0
        self.errors = 0
        self.last_error = None

    def process(self, data, ts_ns, wire_len=0, linktype=None):
        try:
            hdr, records = decode_v5(data)
        except NetFlowError as exc:
            self.errors += 1
            self.last_error = str(exc)
            return 0
        boot_ms = hdr["UnixMs"] - hdr["SysUptime"]
        for rec in sorted(records, key=_order):
            self.add_record(rec, boot_ms)
        return len(records)

    def add_record(self, rec, boot_ms):
        p = _dec.decode(synth_packet(rec), _dec.LINKTYPE_RAW)
        if not p.layers:
            return
        t = self.table
        key, src_first = packet_key(p, t.l3_mode)
        first, last = boot_ms + rec["First"], boot_ms + rec["Last"]
        f = t.flows.get(key)
        if f is None:
            f = t._new_flow(key, src_first, p, first, None)
        self.records += 1
        c, b = t.c, f.b
        if src_first == f.a:
            c[b + F_ABP] += rec["Packets"]
            c[b + F_ABB] += rec["Octets"]
        else:
            c[b + F_BAP] += rec["Packets"]
            c[b + F_BAB] += rec["Octets"]
        if last > c[b + F_LAST]:
            c[b + F_LAST] = last

    def tick(self, now_ms):
        return self.table.tick(now_ms)

    def get_flows(self, now_ms=None):
        return self.table.get_flows(now_ms)

    def flush(self, now_ms):
        return self.table.flush(now_ms)

    def stats(self):
        return self.table.stats()

    def __len__(self):
        return len(self.table)


def parse_target(target):
    """'ip:port' (IPv4) -> (ip, port); ValueError saying what is wrong."""
    host, sep, port = str(target).rpartition(":")
    try:
        ipaddress.IPv4Address(host)
        port = int(port)
    except ValueError:
        raise ValueError("Target: %r is not an ip:port address (IPv4)" % (target,)) from None
    if not sep or not 0 < port < 65536:
        raise ValueError("Target: %r is not an ip:port address (IPv4)" % (target,))
    return host, port


class NetFlowExporter(object):
    """Sends the flows of each flow-table tick to a NetFlow v5 collector (capture `Target`).

    Each flow with IPv4 addresses gives up to two records, A->B and B->A, of what its
    LastUpdateMetric counted since the previous tick (nothing for a direction that did not
    change); bytes are IP bytes (14 per packet taken off when the flow has an Ethernet layer);
    First/Last are the interval's Start/Last on this exporter's uptime clock (from its creation).
    ICMP goes as DstPort = type * 256 + code, other protocols without ports as 0/0.
    """

    ICMP_TYPES = {"ECHO": (8, 0), "DESTINATION_UNREACHABLE": (3, 3), "TIME_EXCEEDED": (11, 11),
                  "REDIRECT": (5, 5), "SOURCE_QUENCH": (4, 4), "PARAMETER_PROBLEM": (12, 12),
                  "TIMESTAMP": (13, 14), "INFO": (15, 16), "ADDRESS_MASK": (17, 18), "ROUTER": (10, 9)}
    PROTOS = {"TCP": 6, "UDP": 17, "SCTP": 132}

    def __init__(self, target, engine_id=0):
        self.target = parse_target(target)
        self.boot_ms = time.time_ns() // 1000000
        self.sequence = 0
        self.engine_id = engine_id
        self.sent_records = 0
        self.errors = 0
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setblocking(False)

    def _records(self, f):
        net = f.get("Network")
        lum = f.get("LastUpdateMetric") or {}
        if not net or net.get("Protocol") != "IPV4":
            return []
        tr, icmp = f.get("Transport"), f.get("ICMP")
        if tr:
            proto, ports = self.PROTOS.get(tr.get("Protocol"), 0), (int(tr.get("A", 0)), int(tr.get("B", 0)))
        elif icmp:
            proto = 1
        else:
            proto, ports = 0, (0, 0)
        eth = 14 if f.get("Link") else 0
        first, last = lum.get("Start", f.get("Start", 0)) - self.boot_ms, lum.get("Last", f.get("Last", 0)) - self.boot_ms
        out = []
        for d, src, dst in (("AB", net["A"], net["B"]), ("BA", net["B"], net["A"])):
            pkts = int(lum.get(d + "Packets", 0))
            if pkts <= 0:
                continue
            if proto == 1:
                req, rep = self.ICMP_TYPES.get(icmp.get("Type"), (0, 0))
                ports = (0, ((req if d == "AB" else rep) << 8) | int(icmp.get("Code", 0)))
            out.append({"SrcAddr": src, "DstAddr": dst, "Proto": proto, "SrcPort": ports[0] if d == "AB" or proto == 1
                        else ports[1], "DstPort": ports[1] if d == "AB" or proto == 1 else ports[0],
                        "Packets": pkts, "Octets": max(0, int(lum.get(d + "Bytes", 0)) - eth * pkts),
                        "First": max(0, first), "Last": max(0, last)})
        return out

    def export(self, flows):
        records = [r for f in flows for r in self._records(f)]
        now = time.time_ns() // 1000000
        for i in range(0, len(records), MAX_RECORDS):
            chunk = records[i:i + MAX_RECORDS]
            try:
                self.sock.sendto(encode_v5(chunk, now - self.boot_ms, now, self.sequence, self.engine_id), self.target)
            except OSError:
                self.errors += 1
                continue
            self.sequence += len(chunk)        # flow_sequence: records sent before this datagram
            self.sent_records += len(chunk)
        return len(records)

    def close(self):
        self.sock.close()
