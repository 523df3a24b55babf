"""tcpdump filter syntax -> classic BPF, compiled by libpcap through ctypes.

    insns = compile_filter("icmp and host 10.0.0.1")      # [(code, jt, jf, k), ...]
    attach_filter(sock, insns)                             # SO_ATTACH_FILTER
    BPFMatcher("icmp[icmptype] == 0").match(frame)         # user-space filtering (raw packets)

An invalid expression raises BPFError carrying libpcap's own message
(e.g. "syntax error"), which the API returns in its 400.
"""

import ctypes
import ctypes.util
import socket
import struct
import threading

SO_ATTACH_FILTER = 26
SO_DETACH_FILTER = 27
DLT_EN10MB = 1
MAX_SNAPLEN = 262144


class BPFError(ValueError):
    pass


class bpf_insn(ctypes.Structure):
    _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte), ("jf", ctypes.c_ubyte),
                ("k", ctypes.c_uint32)]


class bpf_program(ctypes.Structure):
    _fields_ = [("bf_len", ctypes.c_uint), ("bf_insns", ctypes.POINTER(bpf_insn))]


class pcap_pkthdr(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long), ("caplen", ctypes.c_uint32),
                ("len", ctypes.c_uint32)]


_lib = None
_lock = threading.Lock()


def libpcap():
    """The loaded libpcap (ctypes.CDLL) with the prototypes we use."""
    global _lib
    if _lib is not None:
        return _lib
    name = ctypes.util.find_library("pcap")
    candidates = [n for n in (name, "libpcap.so.0.8", "libpcap.so.1", "libpcap.so") if n]
    last = None
    for n in candidates:
        try:
            lib = ctypes.CDLL(n, use_errno=True)
            break
        except OSError as e:
            last = e
    else:
        raise BPFError("libpcap is not available (%s); install libpcap0.8" % last)
    lib.pcap_open_dead.restype = ctypes.c_void_p
    lib.pcap_open_dead.argtypes = [ctypes.c_int, ctypes.c_int]
    lib.pcap_compile.restype = ctypes.c_int
    lib.pcap_compile.argtypes = [ctypes.c_void_p, ctypes.POINTER(bpf_program), ctypes.c_char_p,
                                 ctypes.c_int, ctypes.c_uint32]
    lib.pcap_geterr.restype = ctypes.c_char_p
    lib.pcap_geterr.argtypes = [ctypes.c_void_p]
    lib.pcap_freecode.argtypes = [ctypes.POINTER(bpf_program)]
    lib.pcap_close.argtypes = [ctypes.c_void_p]
    lib.pcap_offline_filter.restype = ctypes.c_int
    lib.pcap_offline_filter.argtypes = [ctypes.POINTER(bpf_program), ctypes.POINTER(pcap_pkthdr),
                                        ctypes.c_char_p]
    _lib = lib
    return lib


def _compile_program(expr, linktype, snaplen):
    if not isinstance(expr, str):
        raise BPFError("BPF filter must be a string, got %s" % type(expr).__name__)
    if not isinstance(snaplen, int) or not 0 < snaplen <= MAX_SNAPLEN:
        raise BPFError("invalid snaplen %r" % (snaplen,))
    lib = libpcap()
    try:
        raw = expr.encode("utf-8")
    except UnicodeError:
        raise BPFError("BPF filter is not valid text")
    if b"\x00" in raw:
        raise BPFError("BPF filter contains a NUL byte")
    prog = bpf_program()
    with _lock:
        handle = lib.pcap_open_dead(linktype, snaplen)
        if not handle:
            raise BPFError("pcap_open_dead failed for link type %d" % linktype)
        try:
            # netmask PCAP_NETMASK_UNKNOWN: "ip broadcast" is then refused with a message.
            if lib.pcap_compile(handle, ctypes.byref(prog), raw, 1, 0xFFFFFFFF) != 0:
                msg = lib.pcap_geterr(handle)
                raise BPFError((msg or b"invalid BPF filter").decode("utf-8", "replace"))
        finally:
            lib.pcap_close(handle)
    return prog


def compile_filter(expr, linktype=DLT_EN10MB, snaplen=MAX_SNAPLEN):
    """Compile `expr`; returns the program as a list of (code, jt, jf, k) tuples.

    The program's accept return value is `snaplen`, so attaching it also
    truncates captured packets to `snaplen` bytes in the kernel.
    """
    prog = _compile_program(expr, linktype, snaplen)
    try:
        return [(prog.bf_insns[i].code, prog.bf_insns[i].jt, prog.bf_insns[i].jf, prog.bf_insns[i].k)
                for i in range(prog.bf_len)]
    finally:
        libpcap().pcap_freecode(ctypes.byref(prog))


def accept_all(snaplen=MAX_SNAPLEN):
    """One-instruction program accepting every packet truncated to `snaplen` bytes."""
    return [(0x06, 0, 0, snaplen)]


def sock_filter_bytes(insns):
    """The struct sock_filter array for `insns`."""
    if not insns:
        raise BPFError("empty BPF program")
    out = bytearray()
    for ins in insns:
        if len(ins) != 4:
            raise BPFError("BPF instruction must be (code, jt, jf, k), got %r" % (ins,))
        code, jt, jf, k = ins
        out += struct.pack("HBBI", code, jt, jf, k & 0xFFFFFFFF)
    return bytes(out)


def attach_filter(sock, insns):
    """SO_ATTACH_FILTER `insns` on socket `sock` (a socket.socket or a fd)."""
    buf = ctypes.create_string_buffer(sock_filter_bytes(insns))
    fprog = struct.pack("HL", len(insns), ctypes.addressof(buf))
    if isinstance(sock, int):
        sock = socket.socket(fileno=sock)
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
        finally:
            sock.detach()
    else:
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


class BPFMatcher(object):
    """Match frames against a tcpdump expression in user space (libpcap's interpreter)."""

    def __init__(self, expr, linktype=DLT_EN10MB):
        self.expr = expr
        self._prog = _compile_program(expr, linktype, MAX_SNAPLEN)
        self._lib = libpcap()

    def match(self, data, wire_len=None):
        data = bytes(data)
        hdr = pcap_pkthdr(0, 0, len(data), wire_len or len(data))
        return self._lib.pcap_offline_filter(ctypes.byref(self._prog), ctypes.byref(hdr), data) != 0

    def close(self):
        if self._prog is not None:
            self._lib.pcap_freecode(ctypes.byref(self._prog))
            self._prog = None

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass
