"""A UDP collector CaptureRunner reads like a packet source: the socket (bound in a network
namespace when asked), the non-blocking reader and its counters. One parser per file subclasses
it (sflow.py, netflow.py) with `handle_datagram(data, handler, ts_ns)` -> what it fed the table.
"""

import select
import socket
import time


class UdpCollector(object):
    kind = "UDP"           # the protocol's name in messages
    error = ValueError     # the exception its errors raise
    rcvbuf = None          # SO_RCVBUF to ask for, None: the system's default

    @classmethod
    def bind_for(cls, ctx, section, ports, entry_key):
        """The collector of a capture: `agent.flow.<section>.bind_address` (127.0.0.1) on the first
        free port of `.port_min`..`.port_max` (default `ports`) or the capture's Port; its address
        goes on the node's Captures entry as `entry_key`."""
        cfg = ctx.config
        key = "agent.flow.%s." % section
        host = cfg.get_string(key + "bind_address") or "127.0.0.1"
        ports = (cfg.get_int(key + "port_min", ports[0]), cfg.get_int(key + "port_max", ports[1]))
        src = ctx.bind(lambda port: cls(host, port), ports, cls.error, cls.kind)
        ctx.entry[entry_key] = src.address
        return src

    def __init__(self, host="127.0.0.1", port=0, netns=None):
        self.host = host
        self.port = port
        self.netns = netns
        self.sock = None
        self.datagrams = 0
        self.received = 0      # what handle_datagram fed the table (packets, records)

    def open(self):
        if self.sock is not None:
            return
        from .netns import in_netns
        with in_netns(self.netns):
            s = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET, socket.SOCK_DGRAM)
            try:
                if self.rcvbuf:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf)
                s.bind((self.host, self.port))
            except OSError as e:
                s.close()
                raise self.error("cannot listen for %s on %s:%s: %s" % (self.kind, self.host, self.port, e.strerror))
        s.setblocking(False)
        self.sock = s
        self.port = s.getsockname()[1]

    @property
    def address(self):
        return "%s:%d" % (self.host, self.port)

    def read_packets(self, handler, timeout_ms=100):
        if self.sock is None:
            raise self.error("%s collector is not open" % self.kind)
        if not select.select([self.sock], [], [], timeout_ms / 1000.0)[0]:
            return 0
        n = 0
        for _i in range(256):
            try:
                data = self.sock.recv(65535)
            except (BlockingIOError, InterruptedError):
                break
            self.datagrams += 1
            n += self.handle_datagram(data, handler, time.time_ns())
        self.received += n
        return n

    def handle_datagram(self, data, handler, ts_ns):
        raise NotImplementedError

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None
