"""Live capture through libpcap (ctypes): upstream's `pcap` capture type.

    src = PcapSource("eth0", netns="ns1", bpf_filter="icmp", header_size=256)
    src.open(); src.read_packets(table.process, 100); src.stats(); src.close()

libpcap opens its socket in pcap_activate(), which runs inside the target
namespace; the packet callback is a ctypes function pointer (about a
microsecond per packet more than the afpacket ring, fine for this probe).
"""

import ctypes
import select

from .bpf import libpcap, bpf_program, BPFError, pcap_pkthdr, MAX_SNAPLEN
from .netns import in_netns
from .afpacket import CaptureError, validate_header_size, DEFAULT_HEADER_SIZE

PCAP_ERRBUF_SIZE = 256
_HANDLER = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.POINTER(pcap_pkthdr), ctypes.POINTER(ctypes.c_ubyte))


class pcap_stat(ctypes.Structure):
    _fields_ = [("ps_recv", ctypes.c_uint), ("ps_drop", ctypes.c_uint), ("ps_ifdrop", ctypes.c_uint)]


def _lib():
    lib = libpcap()
    if getattr(lib, "_skydive_live", False):
        return lib
    lib.pcap_create.restype = ctypes.c_void_p
    lib.pcap_create.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    for name in ("pcap_set_snaplen", "pcap_set_promisc", "pcap_set_timeout", "pcap_set_immediate_mode",
                 "pcap_set_buffer_size"):
        f = getattr(lib, name)
        f.restype = ctypes.c_int
        f.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.pcap_activate.restype = ctypes.c_int
    lib.pcap_activate.argtypes = [ctypes.c_void_p]
    lib.pcap_statustostr.restype = ctypes.c_char_p
    lib.pcap_statustostr.argtypes = [ctypes.c_int]
    lib.pcap_setfilter.restype = ctypes.c_int
    lib.pcap_setfilter.argtypes = [ctypes.c_void_p, ctypes.POINTER(bpf_program)]
    lib.pcap_compile.restype = ctypes.c_int
    lib.pcap_setnonblock.restype = ctypes.c_int
    lib.pcap_setnonblock.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p]
    lib.pcap_get_selectable_fd.restype = ctypes.c_int
    lib.pcap_get_selectable_fd.argtypes = [ctypes.c_void_p]
    lib.pcap_dispatch.restype = ctypes.c_int
    lib.pcap_dispatch.argtypes = [ctypes.c_void_p, ctypes.c_int, _HANDLER, ctypes.c_void_p]
    lib.pcap_stats.restype = ctypes.c_int
    lib.pcap_stats.argtypes = [ctypes.c_void_p, ctypes.POINTER(pcap_stat)]
    lib.pcap_datalink.restype = ctypes.c_int
    lib.pcap_datalink.argtypes = [ctypes.c_void_p]
    lib._skydive_live = True
    return lib


class PcapSource(object):
    """libpcap live capture of `ifname` (optionally inside `netns`)."""

    def __init__(self, ifname, netns=None, bpf_filter=None, header_size=DEFAULT_HEADER_SIZE,
                 promisc=False, buffer_size=32 << 20):
        if not ifname or not isinstance(ifname, str):
            raise CaptureError("invalid interface name %r" % (ifname,))
        validate_header_size(header_size)
        if bpf_filter:
            from .bpf import compile_filter
            compile_filter(bpf_filter)          # fail early with libpcap's message
        self.ifname = ifname
        self.netns = netns
        self.bpf_filter = bpf_filter
        self.snaplen = header_size or MAX_SNAPLEN
        self.promisc = promisc
        self.buffer_size = buffer_size
        self.handle = None
        self.linktype = 1
        self._fd = -1
        self._received = 0
        self._cb = None
        self._handler = None
        self._error = None

    def open(self):
        if self.handle is not None:
            return
        lib = _lib()
        err = ctypes.create_string_buffer(PCAP_ERRBUF_SIZE)
        with in_netns(self.netns):
            h = lib.pcap_create(self.ifname.encode(), err)
            if not h:
                raise CaptureError("pcap_create(%s): %s" % (self.ifname, err.value.decode(errors="replace")))
            try:
                lib.pcap_set_snaplen(h, self.snaplen)
                lib.pcap_set_promisc(h, 1 if self.promisc else 0)
                lib.pcap_set_timeout(h, 50)
                lib.pcap_set_buffer_size(h, self.buffer_size)
                rc = lib.pcap_activate(h)
                if rc < 0:
                    msg = lib.pcap_geterr(h) or lib.pcap_statustostr(rc)
                    raise CaptureError("cannot capture on %s%s: %s" % (
                        self.ifname, " in netns %s" % self.netns if self.netns else "",
                        msg.decode(errors="replace")))
            except BaseException:
                lib.pcap_close(h)
                raise
        try:
            if self.bpf_filter:
                prog = bpf_program()
                if lib.pcap_compile(h, ctypes.byref(prog), self.bpf_filter.encode(), 1, 0xFFFFFFFF) != 0:
                    raise BPFError(lib.pcap_geterr(h).decode(errors="replace"))
                try:
                    if lib.pcap_setfilter(h, ctypes.byref(prog)) != 0:
                        raise BPFError(lib.pcap_geterr(h).decode(errors="replace"))
                finally:
                    lib.pcap_freecode(ctypes.byref(prog))
            if lib.pcap_setnonblock(h, 1, err) != 0:
                raise CaptureError("pcap_setnonblock: %s" % err.value.decode(errors="replace"))
            self._fd = lib.pcap_get_selectable_fd(h)
            self.linktype = lib.pcap_datalink(h)
        except BaseException:
            lib.pcap_close(h)
            raise
        self.handle = h
        self._cb = _HANDLER(self._on_packet)

    def _on_packet(self, _user, hdr, data):
        try:
            h = hdr.contents
            buf = ctypes.string_at(data, h.caplen)
            ts = h.tv_sec * 1000000000 + h.tv_usec * 1000
            if self.linktype == 1:
                self._handler(buf, ts, h.len)
            else:
                self._handler(buf, ts, h.len, self.linktype)
        except Exception as e:      # never let an exception cross the C callback
            self._error = e

    def read_packets(self, handler, timeout_ms=100):
        if self.handle is None:
            raise CaptureError("capture is not open")
        lib = _lib()
        self._handler = handler
        n = lib.pcap_dispatch(self.handle, -1, self._cb, None)
        if n == 0:
            r = select.select([self._fd], [], [], timeout_ms / 1000.0)[0]
            if r:
                n = lib.pcap_dispatch(self.handle, -1, self._cb, None)
        if n < 0:
            raise CaptureError("pcap_dispatch on %s: %s" % (
                self.ifname, (lib.pcap_geterr(self.handle) or b"error").decode(errors="replace")))
        if self._error is not None:
            e, self._error = self._error, None
            raise e
        self._received += n
        return n

    def stats(self):
        drops = ifdrops = 0
        if self.handle is not None:
            st = pcap_stat()
            if _lib().pcap_stats(self.handle, ctypes.byref(st)) == 0:
                drops, ifdrops = st.ps_drop, st.ps_ifdrop
        return {"PacketsReceived": self._received, "PacketsDropped": drops, "PacketsIfDropped": ifdrops}

    def close(self):
        if self.handle is not None:
            _lib().pcap_close(self.handle)
            self.handle = None


# ---- capture type `pcap` (flow/capabilities.py) ----------------------------------------------------

def available(config):
    """None when libpcap loads with the live-capture calls."""
    try:
        _lib()
    except (BPFError, OSError, AttributeError) as e:
        return str(e)
    return None


def open_capture(ctx):
    from .afpacket import open_capture as open_interface
    return open_interface(ctx, PcapSource)
