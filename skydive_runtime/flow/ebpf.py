"""`ebpf` capture probe: flows aggregated in the kernel, user space costs O(flows).

    src = EBPFSource("eth0", netns="ns1", max_flows=500000)
    table = EBPFFlowTable(src, FlowTable(node_tid=tid, capture_id=cid, ...))
    runner = CaptureRunner(src, table, on_flows=..., update_ms=1000)   # the usual runner

A hand-assembled eBPF program (bpfasm.py, built here as bytes: no clang, no
libbpf) is loaded with the bpf() syscall through ctypes and attached (inside the
interface's namespace) either on the interface's tcx ingress and egress hooks
(BPF_LINK_CREATE, kernel 6.6+: no AF_PACKET tap, nothing delivered to a socket
per packet; the default where the kernel takes it) or, as a socket filter, with
SO_ATTACH_BPF to an AF_PACKET socket bound to the interface (the fallback;
EBPFSource(attach=...), the one running in `attach_mode`, shown as the capture's
`EBPFAttach`).  Both see the same frames: both directions, offloaded VLAN tags
out of band.  For every frame it builds a per-direction key and counts the frame
in the slot of the running CPU of a BPF_MAP_TYPE_PERCPU_HASH value {packets,
bytes, first_ns, last_ns, TCP flags OR-ed} (plain adds: no atomics, no line
shared between CPUs), then lets the frame go (tcx: TCX_NEXT; socket: 0, nothing
queued): nothing is copied to user space.  A tcx link dies with its fd, so a
stopped, crashed or killed agent leaves no program on the interface.  A known entry costs one map lookup, the coarse clock
(last_ns to one kernel tick) and the adds; a new entry takes the precise clock
(first_ns: Start, RTT).

IPv4 fast path (most traffic): an IPv4 frame of at least FAST_LOAD bytes, VLAN
tag out of band or none, no IP options, not a non-first fragment, carrying
TCP/UDP/SCTP/ICMPv4, is read with a single bpf_skb_load_bytes into a 28-byte
key: dst MAC(6) src MAC(6) VLAN id(2, LE) IP protocol(1) VLAN present(1) src
IP(4) dst IP(4) sport|ICMP type,code(2) dport|ICMP id(2).

General path (everything else): Ethernet (+ one 802.1Q tag, in-band or
offloaded) / IPv4 / IPv6 / TCP / UDP / SCTP / ICMPv4 / ICMPv6, a 56-byte key in
a second per-CPU map: dst MAC(6) src MAC(6) ethertype(2, BE) VLAN id(2, LE) src
IP(16) dst IP(16) sport|ICMP type,code(2) dport|ICMP id(2) IP protocol(1) IP
flags(1: 1 parsed, 2 non-first fragment) VLAN present(1) pad(1).  Each map
holds up to max_flows entries.

User space (EBPFFlowTable) reads both maps every tick, merging the per-CPU slots (BPF_MAP_LOOKUP_BATCH,
or GET_NEXT_KEY + LOOKUP_ELEM when batches are not available), rebuilds a
header-only frame from each kernel key and runs it through the normal decoder
and key builder (decode.decode + flow.packet_key), so UUID, TrackingID,
L3TrackingID, LayersPath, Application and the JSON are those the afpacket
probe produces for the same conversation.  The two directions of a
conversation (and, in L3 key mode, every MAC pair) merge into one FlowTable
flow; A is the side whose first packet came first.  Flows the table removes
(expired, finished) have their kernel entries deleted.

Frames the kernel key cannot describe (tunnels, IPv6 extension headers...) go
to user space whole (up to the header size): through the socket's TPACKET_V3
ring, or with tcx as BPF ring buffer records (tcx.RingReader: time, length,
offloaded VLAN tag, the bytes), every one of them, decoded as afpacket's.

Map full: the program counts the packets it could not insert in a one-slot
array map (atomically: the rare path); they are reported as PacketsDropped (and the flows as FlowDropped
once per sync when that counter moves).
"""

import ctypes
import errno as _errno
import logging
import os
import socket
import struct
import time

from . import bpfasm as A
from . import decode as _dec
from . import tcx as _tcx
from .bpfsys import SYS_bpf, bpf as _bpf, libc as _libc
from .afpacket import AFPacketSource, CaptureError, DEFAULT_HEADER_SIZE, validate_header_size
from .capabilities import CaptureStartError, Opened
from .netns import in_netns
from .flow import (packet_key, FlowExtra, TCP_INDEX, TCP_FIELDS, F_ABP, F_ABB, F_BAP, F_BAB,
                   F_LAST, F_RTT, F_RTT0, F_STATE, FINISH_TCP_FIN, FINISH_TCP_RST)

log = logging.getLogger(__name__)

__all__ = ["EBPFSource", "EBPFFlowTable", "EBPFError", "build_program", "load_program"]

BPF_MAP_CREATE, BPF_MAP_LOOKUP_ELEM, BPF_MAP_UPDATE_ELEM, BPF_MAP_DELETE_ELEM = 0, 1, 2, 3
BPF_MAP_GET_NEXT_KEY, BPF_PROG_LOAD = 4, 5
BPF_MAP_LOOKUP_BATCH = 24
BPF_MAP_TYPE_HASH, BPF_MAP_TYPE_ARRAY, BPF_MAP_TYPE_PERCPU_HASH = 1, 2, 5
BPF_PROG_TYPE_SOCKET_FILTER, BPF_PROG_TYPE_SCHED_CLS = 1, 3
BPF_MAP_TYPE_RINGBUF = 27
BPF_F_NO_PREALLOC = 1
BPF_NOEXIST = 1
SO_ATTACH_BPF = 50
# the ring of the frames handed to user space (tunnels, IPv6 extension headers...): 4 MiB
RING_BLOCK_SIZE = 1 << 19
RING_BLOCKS = 8
RINGBUF_SIZE = 1 << 22       # tcx: the same 4 MiB as a BPF ring buffer
ATTACH_MODES = ("auto", "tcx", "socket")

KEY_SIZE = 56
KEY4_SIZE = 28
VALUE_SIZE = 40
DEFAULT_MAX_FLOWS = 500000


class EBPFError(CaptureError):
    pass


def map_create(map_type, key_size, value_size, max_entries, flags=0, name=b""):
    attr = struct.pack("=IIIIIII16s", map_type, key_size, value_size, max_entries, flags, 0, 0, name[:15])
    try:
        return _bpf(BPF_MAP_CREATE, attr.ljust(72, b"\0"))[0]
    except OSError as e:
        raise EBPFError(e.errno, "cannot create eBPF map: %s" % e.strerror)


def load_program(code, prog_type=BPF_PROG_TYPE_SOCKET_FILTER, license=b"GPL", name=b"skydive_flow",
                 log_size=1 << 20):
    """BPF_PROG_LOAD; on rejection EBPFError carries the verifier's log."""
    if len(code) % 8:
        raise EBPFError(_errno.EINVAL, "eBPF code length %d is not a multiple of 8" % len(code))
    insns = ctypes.create_string_buffer(bytes(code), len(code))
    lic = ctypes.create_string_buffer(license)
    for level in (0, 1):
        log = ctypes.create_string_buffer(log_size if level else 1)
        attr = struct.pack("=IIQQIIQII16s", prog_type, len(code) // 8, ctypes.addressof(insns),
                           ctypes.addressof(lic), level, log_size if level else 0,
                           ctypes.addressof(log) if level else 0, 0, 0, name[:15]).ljust(128, b"\0")
        try:
            return _bpf(BPF_PROG_LOAD, attr)[0]
        except OSError as e:
            if level == 0 and e.errno in (_errno.EINVAL, _errno.EACCES):
                continue        # reload with the verifier log to say why
            msg = log.value.decode("utf-8", "replace").strip() if level else ""
            lines = msg.splitlines()
            if len(lines) > 30:
                lines = lines[:5] + ["..."] + lines[-20:]
            raise EBPFError(e.errno, "eBPF program rejected (%s)%s" % (
                e.strerror, (": verifier: " + "\n".join(lines)) if lines else ""))


def _elem_attr(fd, key_addr, val_addr=0, flags=0):
    return struct.pack("=IIQQQ", fd, 0, key_addr, val_addr, flags)


# ----------------------------------------------------------------------------- the program

_K = -56          # general key on the stack: fp-56 .. fp-1
_V = -96          # value: fp-96 .. fp-57
_HDR = -166       # frame scratch (64 bytes): -166 = 2 mod 8, so IPv4 addresses/ports at +26/+34 are 4-aligned
_IDX = -172       # u32 index of the drop counter
_IP = -248        # IP header scratch of the general path (40 bytes, 8-aligned)
_K4 = -200        # IPv4 key (28 bytes): fp-200 .. fp-173

FAST_LOAD = 48    # bytes the IPv4 fast path loads at once: Ethernet + 20-byte IPv4 + TCP flags


def _emit_update(a, map_fd, key_off, tag):
    """Per-CPU counter update of the entry at key `key_off` (R9 = length, value flags at _V+32).

    A packet of a known entry costs one lookup, the coarse clock (one kernel tick of precision:
    its Last) and plain adds to this CPU's slot; a new entry takes the precise clock (Start,
    RTT)."""
    R0, R1, R2, R3, R4, R8, R9, FP = A.R0, A.R1, A.R2, A.R3, A.R4, A.R8, A.R9, A.R10
    DW = A.DW
    a.ld_map_fd(R1, map_fd)
    a.mov64_reg(R2, FP)
    a.alu64_imm(A.ADD, R2, key_off)
    a.call(A.FN_map_lookup_elem)
    a.jmp_imm(A.JEQ, R0, 0, tag + "new")
    a.mov64_reg(R8, R0)
    a.label(tag + "bump")
    a.call(A.FN_ktime_get_coarse_ns)
    # this CPU's slot: plain adds, nothing shared with the other CPUs
    a.ldx(DW, R1, R8, 0)
    a.alu64_imm(A.ADD, R1, 1)
    a.stx(DW, R8, 0, R1)
    a.ldx(DW, R1, R8, 8)
    a.alu64_reg(A.ADD, R1, R9)
    a.stx(DW, R8, 8, R1)
    a.stx(DW, R8, 24, R0)
    a.ldx(DW, R1, FP, _V + 32)
    a.jmp_imm(A.JEQ, R1, 0, "out")
    a.ldx(DW, R2, R8, 32)
    a.alu64_reg(A.OR, R2, R1)
    a.stx(DW, R8, 32, R2)
    a.ja("out")
    a.label(tag + "new")
    # a new entry holds this CPU's first packet; the other CPUs' slots start at zero
    a.call(A.FN_ktime_get_ns)
    a.st(DW, FP, _V, 1)
    a.stx(DW, FP, _V + 8, R9)
    a.stx(DW, FP, _V + 16, R0)
    a.stx(DW, FP, _V + 24, R0)
    a.ld_map_fd(R1, map_fd)
    a.mov64_reg(R2, FP)
    a.alu64_imm(A.ADD, R2, key_off)
    a.mov64_reg(R3, FP)
    a.alu64_imm(A.ADD, R3, _V)
    a.mov64_imm(R4, BPF_NOEXIST)
    a.call(A.FN_map_update_elem)
    a.jmp_imm(A.JEQ, R0, 0, "out")
    # inserted meanwhile by another CPU (-EEXIST): count into it; else the map is full
    a.ld_map_fd(R1, map_fd)
    a.mov64_reg(R2, FP)
    a.alu64_imm(A.ADD, R2, key_off)
    a.call(A.FN_map_lookup_elem)
    a.jmp_imm(A.JEQ, R0, 0, "drop")
    a.mov64_reg(R8, R0)
    a.ja(tag + "bump")


def build_program(flow_map_fd, drop_map_fd, flow4_map_fd, snaplen=256, ring_fd=None):
    """The socket filter as bytes (see the module docstring for the key layouts).

    Frames whose flow the kernel key cannot describe as decode() would (tunnels, IPv6 extension
    headers, ethertypes other than IPv4/IPv6/ARP/802.3, truncated L4 headers) are not counted:
    the program returns `snaplen` and the socket's ring queues them for the user-space decoder.

    IPv4 frames without VLAN tag in the data, IP options or non-first fragment, carrying TCP, UDP,
    SCTP or ICMP and at least FAST_LOAD bytes long, are read with one bpf_skb_load_bytes and
    counted in `flow4_map_fd` (28-byte key); every other frame takes the general path (the 56-byte
    key of `flow_map_fd`).  Both maps are per-CPU hashes; `drop_map_fd` counts map-full drops.

    With `ring_fd` (a ring buffer map) the program is a tcx one (SCHED_CLS): it returns TCX_NEXT
    and hands the frames user space decodes over as ring records (_emit_ring_output)."""
    a = A.Asm()
    R0, R1, R2, R3, R4, R6, R7, R8, R9, FP = A.R0, A.R1, A.R2, A.R3, A.R4, A.R6, A.R7, A.R8, A.R9, A.R10
    W, H, B, DW = A.W, A.H, A.B, A.DW

    def load_bytes(off_reg_or_imm, dst_off, size, fail):
        a.mov64_reg(R1, R6)
        if isinstance(off_reg_or_imm, int):
            a.mov64_imm(R2, off_reg_or_imm)
        else:
            a.mov64_reg(R2, off_reg_or_imm[0])
        a.mov64_reg(R3, FP)
        a.alu64_imm(A.ADD, R3, dst_off)
        a.mov64_imm(R4, size)
        a.call(A.FN_skb_load_bytes)
        a.jmp_imm(A.JNE, R0, 0, fail)

    def tunnel_ports(ports_off, target, base=FP):
        """Jump to `target` when the UDP ports at base+ports_off are a tunnel's (decode.TUNNEL_UDP_PORTS)."""
        a.ldx(H, R1, base, ports_off)
        a.ldx(H, R2, base, ports_off + 2)
        for port in _dec.TUNNEL_UDP_PORTS:
            le = ((port & 0xFF) << 8) | (port >> 8)          # network order read as LE
            a.jmp_imm(A.JEQ, R1, le, target)
            a.jmp_imm(A.JEQ, R2, le, target)

    a.mov64_reg(R6, R1)
    a.st(DW, FP, _V + 32, 0)
    a.ldx(W, R9, R6, 0)                           # skb->len (from the MAC header)
    # ---- IPv4 fast path: one load, 28-byte key
    a.jmp_imm(A.JLT, R9, FAST_LOAD, "general")
    # R7: the first FAST_LOAD bytes of the frame, read in place on tc when they are in the linear
    # part (direct packet access: no helper call, no copy), else copied to the stack
    if ring_fd is not None:
        a.ldx(W, R7, R6, 76)                      # __sk_buff.data
        a.ldx(W, R1, R6, 80)                      # __sk_buff.data_end
        a.mov64_reg(R2, R7)
        a.alu64_imm(A.ADD, R2, FAST_LOAD)
        a.jmp_reg(A.JGT, R2, R1, "f4copy")
        a.ja("f4hdr")
        a.label("f4copy")
    load_bytes(0, _HDR, FAST_LOAD, "general")
    a.mov64_reg(R7, FP)
    a.alu64_imm(A.ADD, R7, _HDR)
    if ring_fd is not None:
        a.label("f4hdr")
    a.ldx(H, R1, R7, 12)
    a.jmp_imm(A.JNE, R1, 0x0008, "general")      # IPv4 (network order read as LE)
    a.ldx(B, R1, R7, 14)
    a.jmp_imm(A.JNE, R1, 0x45, "general")        # no IP options
    a.ldx(H, R1, R7, 20)
    a.alu64_imm(A.AND, R1, 0xFF1F)
    a.jmp_imm(A.JNE, R1, 0, "general")           # a non-first fragment
    a.ldx(B, R8, R7, 23)
    a.jmp_imm(A.JEQ, R8, 17, "f4udp")
    a.jmp_imm(A.JEQ, R8, 6, "f4tcp")
    a.jmp_imm(A.JEQ, R8, 1, "f4icmp")
    a.jmp_imm(A.JEQ, R8, 132, "f4ports")
    a.ja("general")
    a.label("f4udp")
    tunnel_ports(34, "user", R7)
    a.ja("f4ports")
    a.label("f4tcp")
    a.ldx(B, R1, R7, 47)
    a.stx(DW, FP, _V + 32, R1)
    a.label("f4ports")
    a.ldx(W, R1, R7, 34)
    a.stx(W, FP, _K4 + 24, R1)
    a.ja("f4key")
    a.label("f4icmp")
    a.ldx(H, R1, R7, 34)                   # type, code
    a.stx(H, FP, _K4 + 24, R1)
    a.ldx(H, R1, R7, 38)                   # echo identifier
    a.stx(H, FP, _K4 + 26, R1)
    a.label("f4key")
    for o in range(0, 12, 2):                     # MACs
        a.ldx(H, R1, R7, o)
        a.stx(H, FP, _K4 + o, R1)
    a.ldx(W, R1, R7, 26)
    a.stx(W, FP, _K4 + 16, R1)
    a.ldx(W, R1, R7, 30)
    a.stx(W, FP, _K4 + 20, R1)
    a.stx(B, FP, _K4 + 14, R8)
    a.ldx(W, R1, R6, 20)                          # __sk_buff.vlan_present (tag offloaded)
    a.jmp_imm(A.JNE, R1, 0, "f4vlan")
    a.st(H, FP, _K4 + 12, 0)
    a.st(B, FP, _K4 + 15, 0)
    a.ja("f4update")
    a.label("f4vlan")
    a.ldx(W, R1, R6, 24)                          # vlan_tci
    a.alu64_imm(A.AND, R1, 0xFFF)
    a.stx(H, FP, _K4 + 12, R1)
    a.st(B, FP, _K4 + 15, 1)
    a.alu64_imm(A.ADD, R9, 4)                     # counted as on the wire, like afpacket
    a.label("f4update")
    _emit_update(a, flow4_map_fd, _K4, "f4")

    # ---- general path: 56-byte key
    a.label("general")
    for i in range(KEY_SIZE // 8):
        a.st(DW, FP, _K + 8 * i, 0)
    a.st(DW, FP, _V + 32, 0)
    load_bytes(0, _K, 14, "out")                  # MACs + ethertype straight into the key
    a.mov64_imm(R7, 14)
    a.ldx(W, R1, R6, 20)                          # __sk_buff.vlan_present (tag offloaded)
    a.jmp_imm(A.JEQ, R1, 0, "novlan")
    a.ldx(W, R1, R6, 24)                          # vlan_tci
    a.alu64_imm(A.AND, R1, 0xFFF)
    a.stx(H, FP, _K + 14, R1)
    a.st(B, FP, _K + 54, 1)
    a.alu64_imm(A.ADD, R9, 4)                     # counted as on the wire, like afpacket
    a.label("novlan")
    a.ldx(H, R8, FP, _K + 12)                     # ethertype, network order read as LE
    a.jmp_imm(A.JNE, R8, 0x0081, "l3")            # 0x8100: one in-band 802.1Q tag
    a.ldx(B, R1, FP, _K + 54)
    a.jmp_imm(A.JNE, R1, 0, "user")               # a second tag (the outer one offloaded)
    load_bytes(14, _HDR, 4, "user")
    a.ldx(H, R1, FP, _HDR)
    a.be16(R1)
    a.alu64_imm(A.AND, R1, 0xFFF)
    a.stx(H, FP, _K + 14, R1)
    a.st(B, FP, _K + 54, 1)
    a.ldx(H, R8, FP, _HDR + 2)
    a.stx(H, FP, _K + 12, R8)
    a.mov64_imm(R7, 18)
    a.label("l3")
    a.jmp_imm(A.JEQ, R8, 0x0008, "ipv4")
    a.jmp_imm(A.JEQ, R8, 0xDD86, "ipv6")
    a.jmp_imm(A.JEQ, R8, 0x0608, "update")        # ARP
    a.mov64_reg(R1, R8)
    a.be16(R1)
    a.jmp_imm(A.JGE, R1, 0x0600, "user")          # not an 802.3 length: other protocols, more tags
    a.ja("update")

    a.label("ipv4")
    load_bytes((R7,), _IP, 20, "update")
    a.ldx(B, R1, FP, _IP)
    a.alu64_imm(A.AND, R1, 0x0F)
    a.alu64_imm(A.LSH, R1, 2)
    a.alu64_reg(A.ADD, R7, R1)                    # L4 offset
    a.ldx(W, R1, FP, _IP + 12)
    a.stx(W, FP, _K + 16, R1)
    a.ldx(W, R1, FP, _IP + 16)
    a.stx(W, FP, _K + 32, R1)
    a.ldx(B, R8, FP, _IP + 9)
    a.stx(B, FP, _K + 52, R8)
    a.ldx(H, R1, FP, _IP + 6)
    a.alu64_imm(A.AND, R1, 0xFF1F)                # fragment offset (BE 0x1fff read as LE)
    a.jmp_imm(A.JEQ, R1, 0, "ipv4_l4")
    a.st(B, FP, _K + 53, 3)
    a.ja("update")
    a.label("ipv4_l4")
    a.st(B, FP, _K + 53, 1)
    for proto in _dec.TUNNEL_IP_PROTOS:
        a.jmp_imm(A.JEQ, R8, proto, "user")
    a.ja("l4")

    a.label("ipv6")
    load_bytes((R7,), _IP, 40, "update")
    for o in (8, 16, 24, 32):
        a.ldx(DW, R1, FP, _IP + o)
        a.stx(DW, FP, _K + 8 + o, R1)
    a.ldx(B, R8, FP, _IP + 6)
    a.stx(B, FP, _K + 52, R8)
    a.st(B, FP, _K + 53, 1)
    a.alu64_imm(A.ADD, R7, 40)
    for nh in (6, 17, 132, 58):
        a.jmp_imm(A.JEQ, R8, nh, "l4")
    a.ja("user")                                  # extension headers, tunnels...

    a.label("l4")
    a.jmp_imm(A.JEQ, R8, 6, "tcp")
    a.jmp_imm(A.JEQ, R8, 17, "ports")
    a.jmp_imm(A.JEQ, R8, 132, "ports")
    a.jmp_imm(A.JEQ, R8, 1, "icmp")
    a.jmp_imm(A.JEQ, R8, 58, "icmp")
    a.ja("update")
    a.label("tcp")
    load_bytes((R7,), _IP, 20, "user")
    a.ldx(W, R1, FP, _IP)
    a.stx(W, FP, _K + 48, R1)
    a.ldx(B, R1, FP, _IP + 13)
    a.stx(DW, FP, _V + 32, R1)
    a.ja("update")
    a.label("ports")
    load_bytes((R7,), _IP, 8, "user")
    a.jmp_imm(A.JNE, R8, 17, "ports_key")
    tunnel_ports(_IP, "user")
    a.label("ports_key")
    a.ldx(W, R1, FP, _IP)
    a.stx(W, FP, _K + 48, R1)
    a.ja("update")
    a.label("icmp")
    load_bytes((R7,), _IP, 8, "user")
    a.ldx(H, R1, FP, _IP)                         # type, code
    a.stx(H, FP, _K + 48, R1)
    a.ldx(H, R1, FP, _IP + 4)                     # echo identifier
    a.stx(H, FP, _K + 50, R1)

    a.label("update")
    _emit_update(a, flow_map_fd, _K, "g")
    a.label("drop")
    a.st(W, FP, _IDX, 0)
    a.ld_map_fd(R1, drop_map_fd)
    a.mov64_reg(R2, FP)
    a.alu64_imm(A.ADD, R2, _IDX)
    a.call(A.FN_map_lookup_elem)
    a.jmp_imm(A.JEQ, R0, 0, "out")
    a.mov64_imm(R1, 1)
    a.atomic(DW, A.ADD, R0, 0, R1)
    a.label("out")
    if ring_fd is None:
        a.mov64_imm(R0, 0)                        # nothing reaches the socket
    else:
        a.mov64_imm(R0, _tcx.TCX_NEXT)            # tcx: on to the next program, the packet passes
    a.exit()
    a.label("user")
    if ring_fd is None:
        a.mov64_imm(R0, snaplen)                  # the whole frame (up to snaplen) to the ring
        a.exit()
    else:
        _emit_ring_output(a, ring_fd, snaplen)
    return a.assemble()


REC_HDR = 24      # ring record: ts_ns u64, len u32, caplen u32, vlan_present u32, vlan_tci u16, vlan_proto u16
_REC = struct.Struct("=QIIIHH")


def ring_tiers(snaplen):
    """Record data sizes the tc program reserves (a reservation's size is a constant)."""
    cap = min(snaplen, 65535)
    return [t for t in (128, 512, 2048) if t < cap] + [cap]


def _emit_ring_output(a, ring_fd, snaplen):
    """tc mode's hand-off: the first min(len, snaplen) bytes of the frame, its length, time and
    offloaded VLAN tag as one ring buffer record (the smallest tier that holds it); a full ring
    counts the frame as dropped."""
    R0, R1, R2, R3, R4, R6, R7, R8, R9 = A.R0, A.R1, A.R2, A.R3, A.R4, A.R6, A.R7, A.R8, A.R9
    W, H, DW = A.W, A.H, A.DW
    tiers = ring_tiers(snaplen)
    a.ldx(W, R9, R6, 0)                           # skb->len
    a.mov64_reg(R7, R9)
    a.jmp_imm(A.JLE, R7, tiers[-1], "rb_capped")
    a.mov64_imm(R7, tiers[-1])
    a.label("rb_capped")
    a.jmp_imm(A.JLT, R7, 1, "out")
    for t in tiers:
        a.jmp_imm(A.JLE, R7, t, "rb%d" % t)
    a.ja("out")
    for t in tiers:
        a.label("rb%d" % t)
        a.ld_map_fd(R1, ring_fd)
        a.mov64_imm(R2, (REC_HDR + t + 7) & ~7)
        a.mov64_imm(R3, 0)
        a.call(A.FN_ringbuf_reserve)
        a.jmp_imm(A.JEQ, R0, 0, "drop")
        a.mov64_reg(R8, R0)
        a.mov64_reg(R1, R6)
        a.mov64_imm(R2, 0)
        a.mov64_reg(R3, R8)
        a.alu64_imm(A.ADD, R3, REC_HDR)
        a.mov64_reg(R4, R7)
        a.call(A.FN_skb_load_bytes)
        a.jmp_imm(A.JNE, R0, 0, "rb_discard")
        a.ja("rb_fill")
    a.label("rb_fill")
    a.call(A.FN_ktime_get_ns)
    a.stx(DW, R8, 0, R0)
    a.stx(W, R8, 8, R9)
    a.stx(W, R8, 12, R7)
    a.ldx(W, R1, R6, 20)                          # vlan_present
    a.stx(W, R8, 16, R1)
    a.ldx(W, R1, R6, 24)                          # vlan_tci
    a.stx(H, R8, 20, R1)
    a.ldx(W, R1, R6, 28)                          # vlan_proto (network order)
    a.stx(H, R8, 22, R1)
    a.mov64_reg(R1, R8)
    a.mov64_imm(R2, 0)
    a.call(A.FN_ringbuf_submit)
    a.ja("out")
    a.label("rb_discard")
    a.mov64_reg(R1, R8)
    a.mov64_imm(R2, 0)
    a.call(A.FN_ringbuf_discard)
    a.ja("out")


# ----------------------------------------------------------------------------- the source

class EBPFSource(object):
    """In-kernel flow aggregation on `ifname` (optionally inside network namespace `netns`).

    attach "tcx": the program on the interface's tcx ingress and egress hooks (no AF_PACKET tap:
    nothing is delivered to a socket per packet), frames for user space through a BPF ring
    buffer; "socket": a socket filter on an AF_PACKET socket (its ring for those frames);
    "auto" (default): tcx where the kernel takes it, else the socket filter.  `attach_mode`
    says which one runs, `attach_fallback` why tcx was not used."""

    linktype = 1

    def __init__(self, ifname, netns=None, max_flows=DEFAULT_MAX_FLOWS, batch=4096, header_size=DEFAULT_HEADER_SIZE,
                 attach="auto"):
        if not ifname or not isinstance(ifname, str) or len(ifname) > 15:
            raise CaptureError("invalid interface name %r" % (ifname,))
        if not isinstance(max_flows, int) or max_flows < 1:
            raise CaptureError("invalid max_flows %r" % (max_flows,))
        if attach not in ATTACH_MODES:
            raise CaptureError("invalid attach %r: one of %s" % (attach, ", ".join(ATTACH_MODES)))
        validate_header_size(header_size)
        self.header_size = header_size or 65535
        self.attach = attach
        self.attach_mode = None       # "tcx" or "socket" once open
        self.attach_fallback = None
        self.ring = None              # socket: AFPacketSource, the frames handed to user space
        self.rb = None                # tcx: RingReader of the ring buffer map
        self.links = []               # tcx: the ingress and egress link fds
        self._ring_stats = {"PacketsReceived": 0, "PacketsDropped": 0, "PacketsIfDropped": 0}
        self.ifname = ifname
        self.netns = netns
        self.max_flows = max_flows
        self.batch = max(1, min(batch, max_flows))
        self.ncpus = possible_cpus()
        self.sock = None
        self.map_fd = -1              # general map, KEY_SIZE keys
        self.map4_fd = -1             # IPv4 fast path map, KEY4_SIZE keys
        self.drop_fd = -1
        self.prog_fd = -1
        self.rb_fd = -1
        self._use_batch = True
        self.mono_offset_ns = 0       # wall clock - CLOCK_MONOTONIC (ktime_get_ns)
        self.received = 0             # packets seen in the maps (live + retired entries)
        self.map_full_drops = 0
        self.syncs = 0
        self._bufs = {}
        self._devstat = None
        self._ifdrop0 = 0
        self._link_check = 0.0

    # ---------------------------------------------------------------- lifecycle
    def open(self):
        if self.attach_mode is not None:
            return
        try:
            self.map_fd = map_create(BPF_MAP_TYPE_PERCPU_HASH, KEY_SIZE, VALUE_SIZE, self.max_flows,
                                     BPF_F_NO_PREALLOC, b"skydive_flows")
            self.map4_fd = map_create(BPF_MAP_TYPE_PERCPU_HASH, KEY4_SIZE, VALUE_SIZE, self.max_flows,
                                      BPF_F_NO_PREALLOC, b"skydive_flows4")
            self.drop_fd = map_create(BPF_MAP_TYPE_ARRAY, 4, 8, 1, 0, b"skydive_drops")
            if self.attach != "socket":
                try:
                    self._open_tcx()
                except EBPFError as e:
                    if self.attach == "tcx":
                        raise
                    self._close_tcx()
                    self.attach_fallback = str(e)
            if self.attach_mode is None:
                self._open_socket()
        except BaseException:
            self._close_tcx()
            self._close_fds()
            raise
        self.mono_offset_ns = time.time_ns() - time.clock_gettime_ns(time.CLOCK_MONOTONIC)

    def _open_socket(self):
        self.prog_fd = load_program(build_program(self.map_fd, self.drop_fd, self.map4_fd, self.header_size))
        ring = AFPacketSource(self.ifname, netns=self.netns, header_size=self.header_size,
                              block_size=RING_BLOCK_SIZE, block_nr=RING_BLOCKS, attach=self._attach)
        ring.open()
        self.ring = ring
        self.sock = ring.sock
        self.attach_mode = "socket"

    def _open_tcx(self):
        """The SCHED_CLS program on tcx ingress + egress; EBPFError when the kernel refuses it,
        CaptureError when the interface does not exist."""
        self.rb_fd = map_create(BPF_MAP_TYPE_RINGBUF, 0, 0, RINGBUF_SIZE, 0, b"skydive_frames")
        self.prog_fd = load_program(build_program(self.map_fd, self.drop_fd, self.map4_fd, self.header_size,
                                                  ring_fd=self.rb_fd), prog_type=BPF_PROG_TYPE_SCHED_CLS)
        with in_netns(self.netns):
            try:
                ifindex = socket.if_nametoindex(self.ifname)
            except OSError as e:
                raise CaptureError(e.errno or _errno.ENODEV, "cannot capture on %s%s: %s" % (
                    self.ifname, " in netns %s" % self.netns if self.netns else "", e.strerror or "No such device"))
            for where in (_tcx.TCX_INGRESS, _tcx.TCX_EGRESS):
                try:
                    self.links.append(_tcx.attach(self.prog_fd, ifindex, where))
                except OSError as e:
                    raise EBPFError(e.errno, "tcx attach failed: %s" % e.strerror)
            try:
                self._devstat = open("/proc/thread-self/net/dev", "rb")
            except OSError:
                self._devstat = None
        self.rb = _tcx.RingReader(self.rb_fd, RINGBUF_SIZE)
        self._ifdrop0 = self._read_ifdrop()
        self.attach_mode = "tcx"

    def _attach(self, sock):
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_BPF, self.prog_fd)
        except OSError as e:
            raise EBPFError(e.errno, "SO_ATTACH_BPF failed: %s" % e.strerror)

    def _close_tcx(self):
        for fd in self.links:                     # closing a link detaches the program
            try:
                os.close(fd)
            except OSError:
                pass
        self.links = []
        if self.rb is not None:
            self._ring_stats = dict(self._ring_stats, PacketsReceived=self.rb.records)
            self.rb.close()
            self.rb = None
        if self._devstat is not None:
            self._devstat.close()
            self._devstat = None
        for name in ("rb_fd", "prog_fd"):
            fd = getattr(self, name)
            if fd >= 0:
                os.close(fd)
                setattr(self, name, -1)
        if self.attach_mode == "tcx":
            self.attach_mode = None

    def _close_fds(self):
        for name in ("prog_fd", "map_fd", "map4_fd", "drop_fd", "rb_fd"):
            fd = getattr(self, name)
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
                setattr(self, name, -1)

    def close(self):
        if self.ring is not None:
            self._ring_stats = self.ring.stats()
            self.ring.close()
            self.ring = None
        self.sock = None
        if self.rb is not None:
            self._ring_stats["PacketsIfDropped"] = max(0, self._read_ifdrop() - self._ifdrop0)
        self._close_tcx()
        self._close_fds()
        self.attach_mode = None

    def fileno(self):
        return self.rb_fd if self.rb is not None else self.sock.fileno()

    def read_packets(self, handler, timeout_ms=100):
        """The frames the program handed to user space (see build_program), to `handler` like
        afpacket's; waits up to `timeout_ms`; the interface going away (tcx) or a socket error
        (interface down or gone) raises."""
        rb = self.rb
        if rb is not None:
            off = self.mono_offset_ns

            def record(rec):
                ts, wlen, cap, vp, tci, tpid = _REC.unpack_from(rec, 0)
                data = rec[REC_HDR:REC_HDR + cap]
                if vp:                              # the offloaded tag back in, as on the wire
                    tpid = ((tpid & 0xFF) << 8) | (tpid >> 8) or 0x8100
                    data = data[:12] + struct.pack("!HH", tpid, tci) + data[12:]
                    wlen += 4
                handler(data, ts + off, wlen)
            n = rb.read(record, timeout_ms)
            now = time.monotonic()
            if now - self._link_check >= 0.5:
                self._link_check = now
                if not all(_tcx.attached(fd) for fd in self.links):
                    raise CaptureError(_errno.ENODEV, "capture on %s failed: the interface is gone" % self.ifname)
            return n
        if self.ring is None:
            raise CaptureError("capture is not open")
        return self.ring.read_packets(handler, timeout_ms)

    def handed_off(self):
        """Frames handed to user space so far (those the kernel key cannot describe)."""
        if self.rb is not None:
            return self.rb.records
        if self.ring is not None:
            return self.ring.stats()["PacketsReceived"]
        return self._ring_stats["PacketsReceived"]

    def _read_ifdrop(self):
        return AFPacketSource._read_ifdrop(self)

    def stats(self):
        if self.rb is not None:
            ring = {"PacketsReceived": self.rb.records, "PacketsDropped": 0,
                    "PacketsIfDropped": max(0, self._read_ifdrop() - self._ifdrop0)}
        else:
            ring = self.ring.stats() if self.ring is not None else self._ring_stats
        return {"PacketsReceived": self.received + ring["PacketsReceived"],
                "PacketsDropped": self.map_full_drops + ring["PacketsDropped"],
                "PacketsIfDropped": ring["PacketsIfDropped"]}

    # ---------------------------------------------------------------- map access
    def _maps(self):
        return ((self.map4_fd, KEY4_SIZE), (self.map_fd, KEY_SIZE))

    def dump(self):
        """Every kernel entry of both maps: list of (key bytes, (packets, bytes, first_ns, last_ns,
        flags)), the per-CPU slots merged (merge_percpu).  The key's length tells its map."""
        if self.map_fd < 0:
            raise CaptureError("capture is not open")
        self.syncs += 1
        out = []
        for fd, ksize in self._maps():
            if self._use_batch:
                try:
                    out.extend(self._dump_batch(fd, ksize))
                    continue
                except OSError as e:
                    if e.errno not in (_errno.EINVAL, 524, _errno.ENOSPC, _errno.EOPNOTSUPP):
                        raise
                    self._use_batch = False
            out.extend(self._dump_iter(fd, ksize))
        return out

    def _dump_batch(self, fd, ksize):
        n = self.batch
        vsize = VALUE_SIZE * self.ncpus
        bufs = self._bufs.get(ksize)
        if bufs is None:
            bufs = self._bufs[ksize] = (ctypes.create_string_buffer(n * ksize), ctypes.create_string_buffer(n * vsize),
                                        ctypes.create_string_buffer(ksize), ctypes.create_string_buffer(ksize))
        kb, vb, tok_in, tok_out = bufs
        out = []
        first = True
        ncpus = self.ncpus
        while True:
            attr = struct.pack("=QQQQIIQQ", 0 if first else ctypes.addressof(tok_in), ctypes.addressof(tok_out),
                               ctypes.addressof(kb), ctypes.addressof(vb), n, fd, 0, 0)
            buf = ctypes.create_string_buffer(attr, len(attr))
            r = _libc.syscall(ctypes.c_long(SYS_bpf), ctypes.c_int(BPF_MAP_LOOKUP_BATCH), buf,
                              ctypes.c_uint(len(attr)))
            err = ctypes.get_errno() if r < 0 else 0
            if r < 0 and err != _errno.ENOENT:
                raise OSError(err, os.strerror(err))
            count = struct.unpack_from("=I", buf, 32)[0]
            if count:
                keys = kb.raw[:count * ksize]
                vals = vb.raw[:count * vsize]
                for i in range(count):
                    out.append((keys[i * ksize:(i + 1) * ksize], merge_percpu(vals, i * vsize, ncpus)))
            if err == _errno.ENOENT:
                return out
            first = False
            ctypes.memmove(tok_in, tok_out, ksize)

    def _dump_iter(self, fd, ksize):
        key = ctypes.create_string_buffer(ksize)
        nxt = ctypes.create_string_buffer(ksize)
        val = ctypes.create_string_buffer(VALUE_SIZE * self.ncpus)
        out = []
        prev = 0
        while True:
            try:
                _bpf(BPF_MAP_GET_NEXT_KEY, _elem_attr(fd, prev, ctypes.addressof(nxt)))
            except OSError as e:
                if e.errno == _errno.ENOENT:
                    return out
                raise
            ctypes.memmove(key, nxt, ksize)
            prev = ctypes.addressof(key)
            try:
                _bpf(BPF_MAP_LOOKUP_ELEM, _elem_attr(fd, prev, ctypes.addressof(val)))
            except OSError as e:
                if e.errno == _errno.ENOENT:      # deleted meanwhile
                    continue
                raise
            out.append((key.raw, merge_percpu(val.raw, 0, self.ncpus)))

    def delete(self, kkeys):
        """Remove kernel entries; returns the packet count they held at deletion."""
        if self.map_fd < 0:
            return 0
        total = 0
        val = ctypes.create_string_buffer(VALUE_SIZE * self.ncpus)
        for k in kkeys:
            fd = self.map4_fd if len(k) == KEY4_SIZE else self.map_fd
            key = ctypes.create_string_buffer(k, len(k))
            try:
                _bpf(BPF_MAP_LOOKUP_ELEM, _elem_attr(fd, ctypes.addressof(key), ctypes.addressof(val)))
                total += merge_percpu(val.raw, 0, self.ncpus)[0]
                _bpf(BPF_MAP_DELETE_ELEM, _elem_attr(fd, ctypes.addressof(key)))
            except OSError as e:
                if e.errno != _errno.ENOENT:
                    raise
        return total

    def read_drops(self):
        if self.drop_fd < 0:
            return self.map_full_drops
        key = ctypes.create_string_buffer(4)
        val = ctypes.create_string_buffer(8)
        _bpf(BPF_MAP_LOOKUP_ELEM, _elem_attr(self.drop_fd, ctypes.addressof(key), ctypes.addressof(val)))
        self.map_full_drops = struct.unpack("=Q", val.raw)[0]
        return self.map_full_drops


def possible_cpus():
    """How many per-CPU slots a per-CPU map value has (the kernel's possible CPUs)."""
    try:
        with open("/sys/devices/system/cpu/possible") as f:
            text = f.read().strip()
    except OSError:
        return os.cpu_count() or 1
    n = 0
    for part in text.split(","):
        lo, _sep, hi = part.partition("-")
        n += int(hi or lo) - int(lo) + 1
    return n


def merge_percpu(raw, off, ncpus):
    """One entry's per-CPU slots -> (packets, bytes, first_ns, last_ns, flags): sums, the
    earliest first (a slot created by a bump, not an insert, has none), the latest last, OR."""
    packets = nbytes = first = last = flags = 0
    for i in range(ncpus):
        p, b, f, l, fl = _VAL.unpack_from(raw, off + i * VALUE_SIZE)
        if not p:
            continue
        packets += p
        nbytes += b
        if f and (not first or f < first):
            first = f
        if l > last:
            last = l
        flags |= fl
    first = first or last
    return packets, nbytes, first, max(last, first), flags


_VAL = struct.Struct("=QQQQQ")


# ----------------------------------------------------------------------------- kernel key -> flow

def widen_key4(k4):
    """An IPv4 fast-path key (KEY4_SIZE) in the general key's layout (KEY_SIZE)."""
    return (k4[0:12] + b"\x08\x00" + k4[12:14] + k4[16:20] + bytes(12) + k4[20:24] + bytes(12) + k4[24:28]
            + k4[14:15] + b"\x01" + k4[15:16] + b"\x00")


def synth_frame(kk):
    """A header-only Ethernet frame with the fields of kernel key `kk` (either layout), for decode()."""
    if len(kk) == KEY4_SIZE:
        kk = widen_key4(kk)
    et = kk[12:14]
    frame = kk[0:12]
    if kk[54]:
        frame += b"\x81\x00" + struct.pack("!H", struct.unpack_from("<H", kk, 14)[0])
    frame += et
    ipf = kk[53]
    if not ipf & 1:
        if et in (b"\x08\x00", b"\x86\xdd"):
            return frame                    # truncated IP header: Ethernet only, as decode() does
        return frame + b"\0" * 28          # ARP, LLC...: room for their first layer
    proto = kk[52]
    l4 = kk[48:52]
    if ipf & 2:
        body = b""
    elif proto == 6:
        body = l4 + b"\0" * 8 + b"\x50\x10\xff\xff\0\0\0\0"        # ACK: no control flag
    elif proto == 17:
        body = l4 + b"\x00\x0c\0\0" + b"\0" * 4                    # 4 payload bytes: port layers
    elif proto == 132:
        body = l4 + b"\0" * 8
    elif proto in (1, 58):
        body = l4[0:2] + b"\0\0" + l4[2:4] + b"\0\0" + (b"\0" * 20 if proto == 58 else b"")
    else:
        body = b""
    if et == b"\x08\x00":
        frag = b"\x00\x01" if ipf & 2 else b"\0\0"
        ip = struct.pack("!BBHH2sBBH", 0x45, 0, 20 + len(body), 0, frag, 64, proto, 0) + kk[16:20] + kk[32:36]
    else:
        ip = struct.pack("!IHBB", 0x60000000, len(body), proto, 64) + kk[16:32] + kk[32:48]
    return frame + ip + body


_NOTHING = (0, 0, 0, 0)


class EBPFFlowTable(object):
    """The FlowTable face of an EBPFSource for CaptureRunner: every tick / snapshot / flush
    first merges the kernel map into `table` (a FlowTable), then defers to it."""

    def __init__(self, source, table):
        self.source = source
        self.table = table
        self.capture_id = table.capture_id
        self.settings = table.settings
        self._resolved = {}     # kernel key -> (table key, src_is_first, Packet) or None
        self._kkeys = {}        # table key -> set of kernel keys
        self._retired = 0       # packets of deleted kernel entries
        self._applied = {}      # table key -> kernel counters (first side, other side) already in the table
        self._drops_seen = 0

    def process(self, data, ts_ns, wire_len=0, linktype=None):
        """A frame the program handed to user space: the table decodes it as afpacket's would."""
        return self.table.process(data, ts_ns, wire_len, linktype)

    def _resolve(self, kk):
        p = _dec.decode(synth_frame(kk), 1)
        if not p.layers:
            return None
        key, first = packet_key(p, self.table.l3_mode)
        return key, first, p

    def sync(self):
        """Merge the kernel map into the table (cumulative counters per direction)."""
        src = self.source
        t = self.table
        entries = src.dump()
        off = src.mono_offset_ns
        resolved = self._resolved
        agg = {}
        total = 0
        for kk, v in entries:
            r = resolved.get(kk)
            if r is None:
                r = resolved[kk] = self._resolve(kk)
                if r is None:
                    continue
            key, first, p = r
            total += v[0]
            g = agg.get(key)
            if g is None:
                # [pk first-side, bytes, pk other side, bytes, first_ns, last_ns, earliest entry,
                #  per-side (first_ns, flags, icmp_type)...]
                g = agg[key] = [0, 0, 0, 0, v[2], v[3], (v[2], first, p), {}, {}]
            if first:
                g[0] += v[0]
                g[1] += v[1]
            else:
                g[2] += v[0]
                g[3] += v[1]
            if v[2] < g[4]:
                g[4] = v[2]
                g[6] = (v[2], first, p)
            if v[3] > g[5]:
                g[5] = v[3]
            side = g[7] if first else g[8]
            fl = side.get("flags", 0) | v[4]
            side["flags"] = fl
            if v[2] < side.get("first", 1 << 64):
                side["first"] = v[2]
            if p.l4_proto in (1, 58):
                if p.icmp_type in (8, 128):
                    side["req"] = min(side.get("req", 1 << 64), v[2])
                elif p.icmp_type in (0, 129):
                    side["rep"] = min(side.get("rep", 1 << 64), v[2])
            self._kkeys.setdefault(key, set()).add(kk)
        src.received = self._retired + total
        drops = src.read_drops()
        c = t.c
        flows = t.flows
        applied = self._applied
        for key, g in agg.items():
            f = flows.get(key)
            if f is None:
                _ts, a_first, p = g[6]
                f = t._new_flow(key, a_first, p, (g[4] + off) // 1000000, None)
            b = f.b
            # add what the kernel counted since the last sync (the table may count frames of the
            # same flow that the program handed to user space)
            prev = applied.get(key) or _NOTHING
            d0, d1, d2, d3 = g[0] - prev[0], g[1] - prev[1], g[2] - prev[2], g[3] - prev[3]
            applied[key] = g[0:4]
            if f.a:
                c[b + F_ABP] += d0
                c[b + F_ABB] += d1
                c[b + F_BAP] += d2
                c[b + F_BAB] += d3
                sa, sb = g[7], g[8]
            else:
                c[b + F_ABP] += d2
                c[b + F_ABB] += d3
                c[b + F_BAP] += d0
                c[b + F_BAB] += d1
                sa, sb = g[8], g[7]
            last = (g[5] + off) // 1000000
            if last > c[b + F_LAST]:
                c[b + F_LAST] = last
            fa, fb = sa.get("flags", 0), sb.get("flags", 0)
            if not c[b + F_RTT]:
                rtt = 0
                if fa & 2 and fb & 0x12 == 0x12 and "first" in sa and "first" in sb:
                    rtt = sb["first"] - sa["first"]
                elif fb & 2 and fa & 0x12 == 0x12 and "first" in sa and "first" in sb:
                    rtt = sa["first"] - sb["first"]
                elif "req" in sa and "rep" in sb:
                    rtt = sb["rep"] - sa["req"]
                elif "req" in sb and "rep" in sa:
                    rtt = sa["rep"] - sb["req"]
                if rtt > 0:
                    c[b + F_RTT] = rtt
                    c[b + F_RTT0] = -1
            flags = fa | fb
            if flags & 4:
                c[b + F_STATE] = (c[b + F_STATE] & ~3) | FINISH_TCP_RST
            elif flags & 1 and (c[b + F_STATE] & 3) != FINISH_TCP_RST:
                c[b + F_STATE] = (c[b + F_STATE] & ~3) | FINISH_TCP_FIN
            if t.extra_tcp_metric and f.lp and "TCP" in f.lp:
                x = f.x
                if x is None:
                    x = f.x = FlowExtra()
                tm = x.tcp
                if tm is None:
                    tm = x.tcp = [0] * len(TCP_FIELDS) + [None, None]
                for d, s, fl in (("AB", sa, fa), ("BA", sb, fb)):
                    if fl & 2:
                        tm[TCP_INDEX[d + "SawStart"]] = 1
                        if not tm[TCP_INDEX[d + "SynStart"]]:
                            tm[TCP_INDEX[d + "SynStart"]] = (s["first"] + off) // 1000000
                    if fl & 1:
                        tm[TCP_INDEX[d + "SawEnd"]] = 1
        if drops > self._drops_seen:
            t.flows_dropped += 1
            self._drops_seen = drops
        return len(entries)

    def _retire(self):
        """Delete the kernel entries of flows the table no longer has."""
        flows = self.table.flows
        gone = [k for k in self._kkeys if k not in flows]
        for k in gone:
            self._applied.pop(k, None)
            kks = self._kkeys.pop(k)
            self._retired += self.source.delete(kks)
            for kk in kks:
                self._resolved.pop(kk, None)

    def tick(self, now_ms):
        self.sync()
        out = self.table.tick(now_ms)
        self._retire()
        return out

    def get_flows(self, now_ms=None):
        self.sync()
        return self.table.get_flows(now_ms)

    def flush(self, now_ms):
        self.sync()
        out = self.table.flush(now_ms)
        self._retire()
        return out

    def stats(self):
        return self.table.stats()

    def __len__(self):
        return len(self.table)


BPF_OBJ_GET_INFO_BY_FD = 15
BPF_PROG_TEST_RUN = 10


def prog_test_run(prog_fd, frame, repeat=1, tc=False):
    """Run the loaded program `repeat` times on Ethernet frame `frame` in the kernel
    (BPF_PROG_TEST_RUN, on the calling CPU) -> (return value, mean ns per run).  For a socket
    filter the kernel takes the first 14 bytes of the test input as its own link header, so a
    dummy one goes first; a tc program (`tc`) sees the input from its Ethernet header."""
    data = bytes(frame) if tc else b"\0" * 12 + b"\x08\x00" + bytes(frame)
    din = ctypes.create_string_buffer(data, len(data))
    attr = struct.pack("=IIIIQQII", prog_fd, 0, len(data), 0, ctypes.addressof(din), 0, repeat, 0).ljust(80, b"\0")
    buf = _bpf(BPF_PROG_TEST_RUN, attr)[1]
    return struct.unpack_from("=I", buf, 4)[0], struct.unpack_from("=I", buf, 36)[0]


def prog_run_stats(prog_fd):
    """(run_time_ns, run_cnt) of a loaded program from bpf_prog_info; both stay 0 unless the
    kernel.bpf_stats_enabled sysctl is on."""
    info = ctypes.create_string_buffer(256)
    attr = struct.pack("=IIQ", prog_fd, 256, ctypes.addressof(info))
    _bpf(BPF_OBJ_GET_INFO_BY_FD, attr)
    return struct.unpack_from("=QQ", info, 192)


# ----------------------------------------------------------------------------- capture type `ebpf`

def available(config):
    """None when the kernel loads the flow program (bpf() allowed, verifier accepts it)."""
    fds = []
    try:
        fds.append(map_create(BPF_MAP_TYPE_PERCPU_HASH, KEY_SIZE, VALUE_SIZE, 1, BPF_F_NO_PREALLOC, b"skydive_check"))
        fds.append(map_create(BPF_MAP_TYPE_ARRAY, 4, 8, 1, 0, b"skydive_check"))
        fds.append(map_create(BPF_MAP_TYPE_PERCPU_HASH, KEY4_SIZE, VALUE_SIZE, 1, BPF_F_NO_PREALLOC, b"skydive_check"))
        fds.append(load_program(build_program(fds[0], fds[1], fds[2])))
    except OSError as e:
        return "the kernel refuses the eBPF flow program: %s" % (e.strerror or e)
    finally:
        for fd in fds:
            os.close(fd)
    return None


def open_capture(ctx):
    """In-kernel aggregation on the interface of ctx.node, feeding ctx.table through EBPFFlowTable."""
    ifname, netns = ctx.locate()
    try:
        src = EBPFSource(ifname, netns=netns, max_flows=ctx.max_entries, header_size=ctx.header_size)
    except (ValueError, OSError) as exc:
        raise CaptureStartError(400, str(exc)) from None

    def shown():        # after the source opened: which attach runs, on the node's Captures entry
        ctx.entry["EBPFAttach"] = src.attach_mode
        if src.attach_fallback:
            log.info("ebpf capture on %s: socket filter (tcx refused: %s)", ifname, src.attach_fallback)
    return Opened(src, table=EBPFFlowTable(src, ctx.table), setup=shown)
