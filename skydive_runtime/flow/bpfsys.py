"""The bpf(2) system call, for the ebpf capture (maps, programs) and tcx (links, ring buffer)."""

import ctypes
import ctypes.util
import os

SYS_bpf = {"x86_64": 321, "aarch64": 280}.get(os.uname().machine, 321)

libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
libc.syscall.restype = ctypes.c_long

__all__ = ["SYS_bpf", "libc", "bpf"]


def bpf(cmd, attr):
    """bpf(cmd, attr, sizeof attr) -> (return value, the attr buffer as the kernel left it); OSError(errno)."""
    buf = ctypes.create_string_buffer(bytes(attr), len(attr))
    r = libc.syscall(ctypes.c_long(SYS_bpf), ctypes.c_int(cmd), buf, ctypes.c_uint(len(attr)))
    if r < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return r, buf
