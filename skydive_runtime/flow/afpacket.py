"""AF_PACKET capture through a TPACKET_V3 memory-mapped ring (pure Python).

    src = AFPacketSource("eth0", netns="ns1", bpf_filter="icmp", header_size=256)
    src.open()                      # in the thread that will read (setns is per thread)
    n = src.read_packets(table.process, timeout_ms=100)
    src.stats()                     # {"PacketsReceived", "PacketsDropped", "PacketsIfDropped"}
    src.close()

The kernel filters with the cBPF program compiled from `bpf_filter` (libpcap)
and truncates packets to `header_size` bytes through the program's return
value; `wire_len` passed to the handler is the original length.  Drops come
from PACKET_STATISTICS (reading resets the kernel counters, so they are
accumulated here); interface drops from the namespace's /proc/net/dev.
"""

import mmap
import os
import select
import socket
import struct

from . import bpf as _bpf
from .capabilities import CaptureStartError, Opened
from .netns import in_netns

SOL_PACKET = 263
PACKET_RX_RING = 5
PACKET_STATISTICS = 6
PACKET_VERSION = 10
TPACKET_V3 = 2
ETH_P_ALL = 0x0003
TP_STATUS_KERNEL = 0
TP_STATUS_USER = 1
TP_STATUS_VLAN_VALID = 0x10
TP_STATUS_VLAN_TPID_VALID = 0x40

DEFAULT_HEADER_SIZE = 256          # upstream capture default
MAX_HEADER_SIZE = 4096

_BLOCK_HDR = struct.Struct("=IIII").unpack_from        # block_status, num_pkts, offset_to_first_pkt, blk_len (at +8)
_PKT_HDR = struct.Struct("=IIIIIIHH").unpack_from     # next, sec, nsec, snaplen, len, status, mac, net
_VLAN = struct.Struct("=IHH").unpack_from              # vlan_tci, vlan_tpid, pad (at +32)


BLOCK_SLACK = 64       # bytes past a block's last frame in read_blocks' copy


class CaptureError(OSError):
    pass


def _frame(buf, p):
    """(data, ts_ns, wire_len, next_offset) of the TPACKET_V3 frame whose header is at buf[p]: an
    offloaded VLAN tag is put back in the data (and counted in the length), as on the wire."""
    nxt, sec, nsec, snap, wlen, pst, mac, _net = _PKT_HDR(buf, p)
    s = p + mac
    data = buf[s:s + snap]
    if pst & TP_STATUS_VLAN_VALID:
        tci, tpid, _pad = _VLAN(buf, p + 32)
        if not pst & TP_STATUS_VLAN_TPID_VALID:
            tpid = 0x8100
        data = data[:12] + struct.pack("!HH", tpid, tci) + data[12:]
        wlen += 4
    return data, sec * 1000000000 + nsec, wlen, nxt


def pack_block(frames, mac=82, vlan=None):
    """A TPACKET_V3 block as the kernel fills one (tests and benchmarks): `frames` a list of
    (data, ts_ns, wire_len); `vlan` {index: (tci, tpid)} marks frames whose tag was offloaded.
    Returns (block bytes as read_blocks hands them, with BLOCK_SLACK, offset of the first frame header)."""
    first = 48
    out = bytearray(first)
    vlan = vlan or {}
    for i, (data, ts, wlen) in enumerate(frames):
        size = (mac + len(data) + 15) & ~15
        status = TP_STATUS_USER
        tci = tpid = 0
        if i in vlan:
            tci, tpid = vlan[i]
            status |= TP_STATUS_VLAN_VALID | TP_STATUS_VLAN_TPID_VALID
        nxt = size if i + 1 < len(frames) else 0
        hdr = struct.pack("=IIIIIIHHIIHH", nxt, ts // 1000000000, ts % 1000000000, len(data), wlen, status, mac,
                          mac + 14, 0, tci, tpid, 0)
        out += hdr.ljust(mac, b"\0") + data + bytes(size - mac - len(data))
    struct.pack_into("=IIIIII", out, 0, 3, 0, TP_STATUS_USER, len(frames), first, len(out))
    return bytes(out) + bytes(BLOCK_SLACK), first


def frame_at(buf, p):
    """(data, ts_ns, wire_len) of the frame whose header is at buf[p] (see _frame)."""
    return _frame(buf, p)[:3]


def validate_header_size(header_size):
    if not isinstance(header_size, int) or header_size < 0 or (0 < header_size < 14) \
            or header_size > MAX_HEADER_SIZE:
        raise CaptureError("invalid header size %r: must be 0 or between 14 and %d"
                           % (header_size, MAX_HEADER_SIZE))


class AFPacketSource(object):
    """TPACKET_V3 reader on interface `ifname` (optionally in network namespace `netns`)."""

    linktype = 1

    def __init__(self, ifname, netns=None, bpf_filter=None, header_size=DEFAULT_HEADER_SIZE,
                 block_size=1 << 20, block_nr=64, retire_ms=50, promisc=False, attach=None):
        if not ifname or not isinstance(ifname, str) or len(ifname) > 15:
            raise CaptureError("invalid interface name %r" % (ifname,))
        validate_header_size(header_size)
        if block_size < 4096 or block_size & (block_size - 1):
            raise CaptureError("block_size must be a power of two >= 4096")
        self.ifname = ifname
        self.netns = netns
        self.header_size = header_size or 65535
        # Compile now so that an invalid filter fails before anything is opened.
        self.insns = (_bpf.compile_filter(bpf_filter, snaplen=self.header_size) if bpf_filter
                      else _bpf.accept_all(self.header_size))
        self.bpf_filter = bpf_filter
        self.block_size = block_size
        self.block_nr = block_nr
        self.retire_ms = retire_ms
        self.promisc = promisc
        self.attach = attach          # attach(sock) instead of the cBPF filter (the ebpf probe's program)
        self.sock = None
        self.ring = None
        self._block = 0
        self._poll = None
        self._received = 0
        self._drops = 0
        self._kernel_packets = 0
        self._devstat = None
        self._ifdrop0 = 0

    def open(self):
        if self.sock is not None:
            return
        with in_netns(self.netns):
            try:
                # Protocol 0: the socket receives nothing until bound to the interface.
                sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
            except OSError as e:
                raise CaptureError(e.errno, "cannot open AF_PACKET socket: %s" % e.strerror)
            try:
                # Filter first: nothing unfiltered gets queued between bind and attach.
                if self.attach is not None:
                    self.attach(sock)
                else:
                    _bpf.attach_filter(sock, self.insns)
                sock.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V3)
                # frame_size/frame_nr are unused by V3 but must be consistent.
                req = struct.pack("IIIIIII", self.block_size, self.block_nr, 2048,
                                  self.block_size * self.block_nr // 2048, self.retire_ms, 0, 0)
                sock.setsockopt(SOL_PACKET, PACKET_RX_RING, req)
                try:
                    sock.bind((self.ifname, ETH_P_ALL))   # host order: Python applies htons
                except OSError as e:
                    raise CaptureError(e.errno, "cannot capture on %s%s: %s" % (
                        self.ifname, " in netns %s" % self.netns if self.netns else "", e.strerror))
                if self.promisc:
                    ifindex = socket.if_nametoindex(self.ifname)
                    mreq = struct.pack("iHH8s", ifindex, 1, 0, b"")     # PACKET_MR_PROMISC
                    sock.setsockopt(SOL_PACKET, 1, mreq)                # PACKET_ADD_MEMBERSHIP
                self.ring = mmap.mmap(sock.fileno(), self.block_size * self.block_nr,
                                      mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
                try:
                    self._devstat = open("/proc/thread-self/net/dev", "rb")
                except OSError:
                    self._devstat = None
            except BaseException:
                sock.close()
                raise
        self.sock = sock
        self._ifdrop0 = self._read_ifdrop()
        self._poll = select.poll()
        self._poll.register(sock.fileno(), select.POLLIN | select.POLLERR)

    def fileno(self):
        return self.sock.fileno()

    def read_packets(self, handler, timeout_ms=100):
        """Call handler(data, ts_ns, wire_len) for every packet of the ready blocks.

        Waits up to `timeout_ms` for the first block; returns the packet count."""
        return self._read(handler, None, timeout_ms)

    def read_blocks(self, block_handler, timeout_ms=100):
        """Hand every ready block whole to block_handler(buf, first, num, frame_at): `buf` a copy
        of the block (the ring slot is given back to the kernel at once), `first` the offset of
        its first TPACKET_V3 frame header, `num` the frame count; frame_at(buf, pos) ->
        (data, ts_ns, wire_len) as read_packets gives them.  Returns the packet count."""
        return self._read(None, block_handler, timeout_ms)

    def _read(self, handler, block_handler, timeout_ms):
        ring = self.ring
        if ring is None:
            raise CaptureError("capture is not open")
        bs = self.block_size
        count = 0
        waited = False
        while True:
            off = self._block * bs
            status, num, first, blen = _BLOCK_HDR(ring, off + 8)
            if not status & TP_STATUS_USER:
                if count or waited:
                    break
                waited = True
                evs = self._poll.poll(timeout_ms)
                if not evs:
                    break
                for _fd, ev in evs:
                    if ev & select.POLLERR and not ev & select.POLLIN:
                        err = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                        raise CaptureError(err, "capture on %s failed: %s" % (
                            self.ifname, os.strerror(err) if err else "socket error"))
                continue
            if block_handler is not None:
                # one copy of the used part (+ slack for fixed-size header reads past a short
                # last frame), the slot back to the kernel, then the whole block at once
                n = blen + BLOCK_SLACK
                buf = ring[off:off + n] if n <= bs else ring[off:off + bs] + bytes(n - bs)
                struct.pack_into("=I", ring, off + 8, TP_STATUS_KERNEL)
                self._block = (self._block + 1) % self.block_nr
                block_handler(buf, first, num, frame_at)
                count += num
                continue
            p = off + first
            for dummy in range(num):
                # (_frame inlined: this loop runs per packet)
                nxt, sec, nsec, snap, wlen, pst, mac, _net = _PKT_HDR(ring, p)
                s = p + mac
                data = ring[s:s + snap]
                if pst & TP_STATUS_VLAN_VALID:
                    tci, tpid, _pad = _VLAN(ring, p + 32)
                    if not pst & TP_STATUS_VLAN_TPID_VALID:
                        tpid = 0x8100
                    data = data[:12] + struct.pack("!HH", tpid, tci) + data[12:]
                    wlen += 4
                handler(data, sec * 1000000000 + nsec, wlen)
                p += nxt
            count += num
            struct.pack_into("=I", ring, off + 8, TP_STATUS_KERNEL)
            self._block = (self._block + 1) % self.block_nr
        self._received += count
        return count

    def _kernel_stats(self):
        if self.sock is not None:
            try:
                raw = self.sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 12)
                packets, drops, _freeze = struct.unpack("III", raw)
                self._kernel_packets += packets
                self._drops += drops
            except OSError:
                pass

    def _read_ifdrop(self):
        f = self._devstat
        if f is None:
            return 0
        try:
            f.seek(0)
            for line in f.read().decode("ascii", "replace").splitlines()[2:]:
                name, dummy, rest = line.partition(":")
                if name.strip() == self.ifname:
                    return int(rest.split()[3])
        except (OSError, ValueError, IndexError):
            pass
        return 0

    def stats(self):
        self._kernel_stats()
        return {"PacketsReceived": self._received, "PacketsDropped": self._drops,
                "PacketsIfDropped": max(0, self._read_ifdrop() - self._ifdrop0)}

    def close(self):
        if self.sock is None:
            return
        self._kernel_stats()
        try:
            if self.ring is not None:
                self.ring.close()
        except BufferError:
            pass
        self.ring = None
        self.sock.close()
        self.sock = None
        if self._devstat is not None:
            self._devstat.close()
            self._devstat = None


# ---- capture type `afpacket` (flow/capabilities.py) ------------------------------------------------

def available(config):
    """None when this process can open AF_PACKET sockets (CAP_NET_RAW)."""
    try:
        socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0).close()
    except (AttributeError, OSError) as e:
        return "cannot open AF_PACKET sockets: %s" % (getattr(e, "strerror", None) or e)
    return None


def open_capture(ctx, source_cls=None):
    """The interface of ctx.node, read by AFPacketSource (or `source_cls`, same arguments)."""
    ifname, netns = ctx.locate()
    try:
        return Opened((source_cls or AFPacketSource)(ifname, netns=netns, bpf_filter=ctx.capture.get("BPFFilter") or None,
                                                     header_size=ctx.header_size))
    except (ValueError, OSError) as exc:
        raise CaptureStartError(400, str(exc)) from None
