"""tcx attach (BPF links on an interface's ingress and egress) and the BPF ring buffer reader.

    links = [attach(prog_fd, ifindex, a) for a in (TCX_INGRESS, TCX_EGRESS)]   # in the netns
    attached(link_fd)          # False once the interface is gone (the link is defunct)
    query(ifindex, TCX_INGRESS) -> number of programs attached there
    rb = RingReader(map_fd, size); rb.read(handler, timeout_ms)

tcx (kernel 6.6+) runs a SCHED_CLS program from the device's ingress/egress hooks with no qdisc
and no AF_PACKET tap.  A link lives as long as its fd: closing it, or the process dying (killed,
crashed), detaches the program, so nothing an agent attached can outlive it.

A BPF_MAP_TYPE_RINGBUF map is read through two mappings (include/uapi/linux/bpf.h, kernel
bpf/ringbuf.c): the consumer position page (read-write) at offset 0, then the producer position
page and the data (mapped twice, so a record that wraps reads contiguously), read-only.  Each
record: u32 length (bit 31 busy, bit 30 discarded), u32 page offset, the data, 8-aligned.
"""

import ctypes
import mmap
import select
import struct

from .bpfsys import bpf as _bpf

BPF_OBJ_GET_INFO_BY_FD, BPF_PROG_QUERY, BPF_LINK_CREATE = 15, 16, 28
TCX_INGRESS, TCX_EGRESS = 46, 47            # enum bpf_attach_type BPF_TCX_INGRESS/EGRESS
BPF_F_BEFORE = 1 << 3                       # with no relative program: the head of the chain
TCX_NEXT = -1                               # the program's verdict: the next program, or pass

_RB_BUSY, _RB_DISCARD = 1 << 31, 1 << 30
_U32 = struct.Struct("=I")
_U64 = struct.Struct("=Q")


def attach(prog_fd, ifindex, attach_type):
    """BPF_LINK_CREATE: `prog_fd` (SCHED_CLS) first on the interface's tcx hook -> the link fd."""
    attr = struct.pack("=IIII", prog_fd, ifindex, attach_type, BPF_F_BEFORE).ljust(64, b"\0")
    return _bpf(BPF_LINK_CREATE, attr)[0]


def attached(link_fd):
    """True while the link still holds its interface (the kernel clears it when the device goes)."""
    info = ctypes.create_string_buffer(64)
    attr = struct.pack("=IIQ", link_fd, 64, ctypes.addressof(info))
    _bpf(BPF_OBJ_GET_INFO_BY_FD, attr)
    return _U32.unpack_from(info.raw, 16)[0] != 0           # bpf_link_info.tcx.ifindex


def query(ifindex, attach_type):
    """How many programs are attached on the interface's tcx hook (in the calling thread's netns)."""
    attr = struct.pack("=IIIIQI", ifindex, attach_type, 0, 0, 0, 0).ljust(64, b"\0")
    try:
        _r, buf = _bpf(BPF_PROG_QUERY, attr)
    except OSError as e:
        if e.errno == 2:                 # ENOENT: no tcx entry on the device at all
            return 0
        raise
    return _U32.unpack_from(buf.raw, 24)[0]


class RingReader(object):
    """Consumer of a BPF ring buffer map of `size` bytes (a power of two, >= the page size)."""

    def __init__(self, map_fd, size):
        pg = mmap.PAGESIZE
        self.size = size
        self.mask = size - 1
        self.fd = map_fd
        self.cons = mmap.mmap(map_fd, pg, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, offset=0)
        try:
            self.prod = mmap.mmap(map_fd, pg + 2 * size, mmap.MAP_SHARED, mmap.PROT_READ, offset=pg)
        except BaseException:
            self.cons.close()
            raise
        self.data = pg
        self.poll = select.poll()
        self.poll.register(map_fd, select.POLLIN)
        self.records = 0

    def read(self, handler, timeout_ms):
        """handler(bytes) for every submitted record; waits up to `timeout_ms` for the first."""
        n = self._drain(handler)
        if n or timeout_ms <= 0:
            return n
        if self.poll.poll(timeout_ms):
            n = self._drain(handler)
        return n

    def _drain(self, handler):
        cons = _U64.unpack_from(self.cons, 0)[0]
        prod = _U64.unpack_from(self.prod, 0)[0]
        n = 0
        buf, base, mask = self.prod, self.data, self.mask
        while cons < prod:
            p = base + (cons & mask)
            hdr = _U32.unpack_from(buf, p)[0]
            if hdr & _RB_BUSY:
                break
            ln = hdr & ~(_RB_BUSY | _RB_DISCARD)
            if not hdr & _RB_DISCARD:
                handler(buf[p + 8:p + 8 + ln])
                n += 1
            cons += (ln + 8 + 7) & ~7
            _U64.pack_into(self.cons, 0, cons)
        self.records += n
        return n

    def close(self):
        for m in (self.prod, self.cons):
            try:
                m.close()
            except BufferError:
                pass
