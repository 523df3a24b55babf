"""ERSPAN type II export (capture `TargetType: erspanv1`, upstream flow/probes/targets/erspan.go).

Every frame the capture sees (after its BPF filter) is sent to the capture's `Target` IPv4 address
over GRE (IP protocol 47, from a raw socket: the kernel routes it and writes the IP header):

    GRE   flags S (sequence number present), protocol 0x88be, sequence number (one per frame)
    ERSPAN type II (draft-foschiano-erspan): Ver 1, VLAN 0, COS 0, En 3 (the frame keeps its
          VLAN tag), T (the frame was truncated by the capture's snaplen), Session ID 1 (as
          upstream), Index = the captured interface's IfIndex (20 bits)
    the captured Ethernet frame (no FCS)

    sender = ERSPANSender("192.0.2.9", ifindex=7)
    sender.send(frame, wire_len)       # from the capture thread; counts Sent and Errors

`Target` is an IPv4 address; `ip:port` is taken too (upstream's Target is ip:port for every type),
the port is then not used: GRE has none. Frames of another link type than Ethernet are not sent
(counted in `Skipped`).
"""

import ipaddress
import socket
import struct

GRE_SEQUENCE = 0x1000
PROTO_ERSPAN_II = 0x88be
SESSION_ID = 1
EN_VLAN_PRESERVED = 3


def parse_target(target):
    """'ip' or 'ip:port' (IPv4) -> ip; ValueError saying what is wrong."""
    text = str(target)
    host, sep, port = text.partition(":")
    try:
        ipaddress.IPv4Address(host)
        if sep and not 0 <= int(port) < 65536:
            raise ValueError(port)
    except ValueError:
        raise ValueError("Target: %r is not an IPv4 address (erspanv1 sends GRE to an ip, optionally ip:port)"
                         % (text,)) from None
    return host


def erspan_header(seq, ifindex, truncated):
    """GRE + ERSPAN type II headers (16 bytes) for the frame numbered `seq`."""
    word = (1 << 28) | (EN_VLAN_PRESERVED << 11) | ((1 if truncated else 0) << 10) | SESSION_ID
    return struct.pack("!HHIII", GRE_SEQUENCE, PROTO_ERSPAN_II, seq & 0xffffffff, word, ifindex & 0xfffff)


class ERSPANSender(object):
    def __init__(self, target, ifindex=0):
        self.addr = (parse_target(target), 0)
        self.ifindex = int(ifindex or 0)
        self.seq = 0
        self.sent = self.errors = self.skipped = 0
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_RAW | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC,
                                  socket.IPPROTO_GRE)

    def send(self, frame, wire_len=0, linktype=None):
        if linktype not in (None, 1):
            self.skipped += 1
            return
        data = erspan_header(self.seq, self.ifindex, wire_len > len(frame)) + bytes(frame)
        self.seq += 1
        try:
            self.sock.sendto(data, self.addr)
            self.sent += 1
        except OSError:
            self.errors += 1

    def stats(self):
        return {"Sent": self.sent, "Errors": self.errors, "Skipped": self.skipped}

    def close(self):
        self.sock.close()


class MirroredTable(object):
    """A flow table (or FilteredTable) whose every frame is also sent by `sender`; quacks like the
    FlowTable for CaptureRunner."""

    def __init__(self, table, sender):
        self._t = table
        self.sender = sender
        self.capture_id = table.capture_id

    def process(self, data, ts_ns, wire_len=0, linktype=None):
        self.sender.send(data, wire_len, linktype)
        self._t.process(data, ts_ns, wire_len, linktype)

    def get_flows(self, now_ms=None):
        return self._t.get_flows(now_ms)

    def tick(self, now_ms):
        return self._t.tick(now_ms)

    def flush(self, now_ms):
        return self._t.flush(now_ms)

    def stats(self):
        return self._t.stats()

    def __len__(self):
        return len(self._t)
