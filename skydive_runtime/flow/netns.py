"""Enter a network namespace from the current thread (ctypes setns).

`setns(CLONE_NEWNET)` only switches the calling thread, so a capture thread
can open its socket inside a namespace and switch back; the socket keeps
capturing in that namespace (environment.md §1).
"""

import contextlib
import ctypes
import ctypes.util
import os

CLONE_NEWNET = 0x40000000

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]


class NetnsError(OSError):
    pass


def netns_path(netns):
    """'/var/run/netns/NAME' for a bare name, the path itself otherwise."""
    if not netns:
        raise NetnsError("empty namespace name")
    if "/" in netns:
        return netns
    return os.path.join("/var/run/netns", netns)


def _setns(fd):
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise NetnsError(err, "setns failed: %s" % os.strerror(err))


@contextlib.contextmanager
def in_netns(netns):
    """Run the body with the calling thread inside `netns` (None = stay where we are)."""
    if netns is None:
        yield
        return
    path = netns_path(netns)
    try:
        target = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise NetnsError(e.errno, "cannot open network namespace %s: %s" % (path, e.strerror))
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        _setns(target)
        try:
            yield
        finally:
            _setns(own)
    finally:
        os.close(target)
        os.close(own)
