"""pcap files and streams (classic libpcap format, both byte orders, µs and ns).

    for data, ts_ns, wire_len in read_pcap("trace.pcap"): ...
    parser = PcapStreamParser(); for pkt in parser.feed(chunk): ...   # pcapsocket / POST /api/pcap
    with PcapWriter(fileobj, linktype=1) as w: w.write(data, ts_ns, wire_len)

Sources for the capture runner: `PcapFileSource(path_or_fileobj)` (ends with
EOFError from read_packets) and `PcapSocketSource(host, port)` (a TCP server;
every connection carries one pcap stream, as upstream's pcapsocket probe).
Malformed input raises PcapError with the offset and reason.
"""

import collections
import io
import select
import socket
import struct

from .capabilities import Opened

MAGIC_US = 0xA1B2C3D4
MAGIC_NS = 0xA1B23C4D
_GLOBAL_LEN = 24
_REC_LEN = 16
MAX_SNAPLEN = 262144


class PcapError(ValueError):
    pass


class PcapStreamParser(object):
    """Incremental pcap parser: feed() bytes, get (data, ts_ns, wire_len) tuples."""

    def __init__(self):
        self._buf = bytearray()
        self._pos = 0              # offset in the stream of _buf[0]
        self.linktype = None
        self.snaplen = None
        self._rec = None
        self._ns = False
        self.packets = 0

    @property
    def header_seen(self):
        return self._rec is not None

    def feed(self, data):
        self._buf += data
        out = []
        buf = self._buf
        o = 0
        if self._rec is None:
            if len(buf) < _GLOBAL_LEN:
                return out
            magic_le = struct.unpack_from("<I", buf, 0)[0]
            if magic_le in (MAGIC_US, MAGIC_NS):
                end = "<"
                magic = magic_le
            else:
                magic = struct.unpack_from(">I", buf, 0)[0]
                if magic not in (MAGIC_US, MAGIC_NS):
                    if magic_le == 0x0A0D0D0A:
                        raise PcapError("pcapng is not supported, convert with: editcap -F pcap")
                    raise PcapError("not a pcap stream: bad magic 0x%08x" % magic_le)
                end = ">"
            self._ns = magic == MAGIC_NS
            _vmaj, _vmin, _tz, _sig, snaplen, linktype = struct.unpack_from(end + "HHiIII", buf, 4)
            self.snaplen = snaplen
            self.linktype = linktype & 0x0FFFFFFF
            self._rec = struct.Struct(end + "IIII")
            o = _GLOBAL_LEN
        rec = self._rec
        mul = 1 if self._ns else 1000
        n = len(buf)
        while n - o >= _REC_LEN:
            sec, frac, incl, orig = rec.unpack_from(buf, o)
            if incl > MAX_SNAPLEN:
                raise PcapError("corrupt pcap record at offset %d: captured length %d too large"
                                % (self._pos + o, incl))
            if n - o - _REC_LEN < incl:
                break
            s = o + _REC_LEN
            out.append((bytes(buf[s:s + incl]), sec * 1000000000 + frac * mul, orig or incl))
            o = s + incl
        if o:
            del buf[:o]
            self._pos += o
        self.packets += len(out)
        return out

    def finish(self):
        """Call at end of stream: raises PcapError on a truncated record/header."""
        if self._rec is None:
            raise PcapError("truncated pcap stream: %d bytes, no global header" % len(self._buf))
        if self._buf:
            raise PcapError("truncated pcap record at offset %d (%d bytes left)" % (self._pos, len(self._buf)))


def read_pcap(src, chunk=1 << 16):
    """Iterate (data, ts_ns, wire_len) over a pcap file path, bytes or binary file object
    (use PcapReader to also get the link type)."""
    r = PcapReader(src, chunk)
    try:
        yield from r
    finally:
        r.close()


class PcapReader(object):
    """Iterable over a pcap file/bytes/file object; `.linktype` once the header is read."""

    def __init__(self, src, chunk=1 << 16):
        self._own = False
        if isinstance(src, (bytes, bytearray, memoryview)):
            self._f = io.BytesIO(bytes(src))
        elif isinstance(src, str):
            self._f = open(src, "rb")
            self._own = True
        elif hasattr(src, "read"):
            self._f = src
        else:
            raise PcapError("cannot read pcap from %s" % type(src).__name__)
        self._chunk = chunk
        self._parser = PcapStreamParser()
        self._queue = collections.deque()
        self._eof = False
        self._fill_header()

    def _fill_header(self):
        while not self._parser.header_seen and not self._eof:
            self._read()
        if not self._parser.header_seen:
            self._parser.finish()

    def _read(self):
        data = self._f.read(self._chunk)
        if not data:
            self._eof = True
            return
        self._queue.extend(self._parser.feed(data))

    @property
    def linktype(self):
        return self._parser.linktype

    def __iter__(self):
        return self

    def __next__(self):
        while not self._queue:
            if self._eof:
                self._parser.finish()
                raise StopIteration
            self._read()
        return self._queue.popleft()

    def close(self):
        if self._own:
            self._f.close()


class PcapWriter(object):
    """Write a pcap stream (microsecond timestamps, native little endian)."""

    def __init__(self, fileobj, linktype=1, snaplen=MAX_SNAPLEN):
        self.f = fileobj
        self.f.write(struct.pack("<IHHiIII", MAGIC_US, 2, 4, 0, 0, snaplen, linktype))

    def write(self, data, ts_ns, wire_len=None):
        sec, ns = divmod(int(ts_ns), 1000000000)
        self.f.write(struct.pack("<IIII", sec, ns // 1000, len(data), wire_len or len(data)))
        self.f.write(data)

    def close(self):
        try:
            self.f.flush()
        except (AttributeError, ValueError):
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def pcap_bytes(packets, linktype=1):
    """A whole pcap file (bytes) from (data, ts_ns[, wire_len]) tuples."""
    out = io.BytesIO()
    w = PcapWriter(out, linktype)
    for p in packets:
        w.write(p[0], p[1], p[2] if len(p) > 2 else None)
    return out.getvalue()


def raw_packets_pcap(raw_packets):
    """A pcap file (bytes) from raw packets as flows carry them
    (`[{"Timestamp": ms, "Index", "Data": base64, "LinkType"}]`): the RawPackets() pcap
    output.  The file's link type is the first packet's (Ethernet when empty); packets of
    another link type are skipped, as a classic pcap holds one link type."""
    import base64
    import binascii
    out = io.BytesIO()
    linktype = raw_packets[0].get("LinkType", 1) if raw_packets else 1
    w = PcapWriter(out, linktype)
    for rp in raw_packets:
        if rp.get("LinkType", 1) != linktype:
            continue
        try:
            data = base64.b64decode(rp["Data"], validate=True)
            ts = int(rp["Timestamp"])
        except (KeyError, TypeError, ValueError, binascii.Error) as e:
            raise PcapError("invalid raw packet %r: %s" % (rp.get("Index"), e))
        w.write(data, ts * 1000000)
    return out.getvalue()


class PcapFileSource(object):
    """Capture source replaying a pcap file (or stream object) as fast as possible."""

    def __init__(self, src, batch=4096):
        self._reader = PcapReader(src)
        self.linktype = self._reader.linktype
        self.batch = batch
        self._received = 0
        self._done = False

    def open(self):
        pass

    def read_packets(self, handler, timeout_ms=100):
        if self._done:
            raise EOFError("end of pcap")
        n = 0
        lt = self.linktype
        r = self._reader
        for dummy in range(self.batch):
            try:
                data, ts, wl = next(r)
            except StopIteration:
                self._done = True
                break
            if lt == 1:
                handler(data, ts, wl)
            else:
                handler(data, ts, wl, lt)
            n += 1
        self._received += n
        if not n and self._done:
            raise EOFError("end of pcap")
        return n

    def stats(self):
        return {"PacketsReceived": self._received, "PacketsDropped": 0, "PacketsIfDropped": 0}

    def close(self):
        self._reader.close()


class PcapSocketSource(object):
    """TCP server ingesting pcap streams (upstream `pcapsocket`): one stream per connection.

    `address` ("ip:port") is the listening address once open()ed, to be
    published as the capture's `PCAPSocket`."""

    linktype = 1

    def __init__(self, host="127.0.0.1", port=0):
        self.host = host
        self.port = port
        self.server = None
        self.conns = {}            # socket -> PcapStreamParser
        self._received = 0
        self.errors = []

    def open(self):
        if self.server is not None:
            return
        s = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((self.host, self.port))
        except OSError as e:
            s.close()
            raise PcapError("cannot listen on %s:%s: %s" % (self.host, self.port, e.strerror))
        s.listen(8)
        s.setblocking(False)
        self.server = s
        self.port = s.getsockname()[1]

    @property
    def address(self):
        return "%s:%d" % (self.host, self.port)

    def read_packets(self, handler, timeout_ms=100):
        if self.server is None:
            raise PcapError("pcapsocket is not open")
        rl = select.select([self.server] + list(self.conns), [], [], timeout_ms / 1000.0)[0]
        n = 0
        for s in rl:
            if s is self.server:
                try:
                    c = s.accept()[0]
                except OSError:
                    continue
                c.setblocking(False)
                self.conns[c] = PcapStreamParser()
                continue
            parser = self.conns[s]
            try:
                data = s.recv(1 << 18)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                data = b""
            if not data:
                self._drop(s, parser, eof=True)
                continue
            try:
                pkts = parser.feed(data)
            except PcapError as e:
                self.errors.append(str(e))
                self._drop(s, parser)
                continue
            lt = parser.linktype
            for d, ts, wl in pkts:
                if lt == 1:
                    handler(d, ts, wl)
                else:
                    handler(d, ts, wl, lt)
            n += len(pkts)
        self._received += n
        return n

    def _drop(self, s, parser, eof=False):
        if eof:
            try:
                parser.finish()
            except PcapError as e:
                if parser.header_seen or parser._buf:
                    self.errors.append(str(e))
        del self.conns[s]
        s.close()

    def stats(self):
        return {"PacketsReceived": self._received, "PacketsDropped": 0, "PacketsIfDropped": 0}

    def close(self):
        for s in list(self.conns):
            s.close()
        self.conns.clear()
        if self.server is not None:
            self.server.close()
            self.server = None


# ---- capture type `pcapsocket` (flow/capabilities.py) ----------------------------------------------

def available(config):
    return None


def open_capture(ctx):
    """A PcapSocketSource on agent.flow.pcapsocket.min_port..max_port (or the capture's Port);
    replayed streams keep their own clock."""
    cfg = ctx.config
    host = cfg.get_string("agent.flow.pcapsocket.bind_address") or "127.0.0.1"
    ports = (cfg.get_int("agent.flow.pcapsocket.min_port", 8100), cfg.get_int("agent.flow.pcapsocket.max_port", 8132))
    src = ctx.bind(lambda port: PcapSocketSource(host, port), ports, PcapError, "pcapsocket")
    ctx.entry["PCAPSocket"] = src.address
    return Opened(src, packet_clock=True)
