"""netns probe: inotify on `agent.topology.netns.run_path`, one netns node per namespace file,
with a netlink sub-probe inside (the netlink monitor thread opens its sockets there).

`ip netns add` creates the file before bind-mounting the namespace on it, so a new file is
retried until it really is a namespace (nsfs) — or given up after a few seconds.

Other probes register namespaces found elsewhere (`register(path, name)`: the docker probe gives a
container's `/proc/<pid>/ns/net`); a namespace is one node whichever way it was found first (same
device and inode).
"""

import asyncio
import ctypes
import errno
import logging
import os
import struct

from ..common.ids import gen_id
from ..common.parts import Probe
from .topology import tid_of

log = logging.getLogger(__name__)

IN_CREATE, IN_DELETE, IN_MOVED_FROM, IN_MOVED_TO = 0x100, 0x200, 0x40, 0x80
IN_DELETE_SELF, IN_MOVE_SELF, IN_IGNORED, IN_Q_OVERFLOW = 0x400, 0x800, 0x8000, 0x4000
IN_ATTRIB = 0x4
IN_NONBLOCK, IN_CLOEXEC = 0o4000, 0o2000000
NSFS_MAGIC = 0x6E736673
_EVENT = struct.Struct("iIII")

_libc = ctypes.CDLL(None, use_errno=True)


def create(agent):
    return NetnsProbe(agent.topology, agent.probes["netlink"],
                      agent.config.get_string("agent.topology.netns.run_path") or "/var/run/netns")


class _Statfs(ctypes.Structure):
    _fields_ = [("f_type", ctypes.c_long), ("f_bsize", ctypes.c_long), ("f_blocks", ctypes.c_ulong),
                ("f_bfree", ctypes.c_ulong), ("f_bavail", ctypes.c_ulong), ("f_files", ctypes.c_ulong),
                ("f_ffree", ctypes.c_ulong), ("f_fsid", ctypes.c_int * 2), ("f_namelen", ctypes.c_long),
                ("f_frsize", ctypes.c_long), ("f_flags", ctypes.c_long), ("f_spare", ctypes.c_long * 4)]


def is_netns(path):
    buf = _Statfs()
    if _libc.statfs(path.encode(), ctypes.byref(buf)) != 0:
        return False
    return (buf.f_type & 0xFFFFFFFF) == NSFS_MAGIC


class Inotify:
    """A tiny ctypes inotify."""

    def __init__(self):
        self.fd = _libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if self.fd < 0:
            e = ctypes.get_errno()
            raise OSError(e, "inotify_init1: %s" % os.strerror(e))

    def add_watch(self, path, mask):
        wd = _libc.inotify_add_watch(self.fd, path.encode(), mask)
        if wd < 0:
            e = ctypes.get_errno()
            raise OSError(e, "inotify_add_watch %s: %s" % (path, os.strerror(e)))
        return wd

    def read(self):
        """[(wd, mask, name)] of the pending events ([] when none)."""
        try:
            data = os.read(self.fd, 65536)
        except BlockingIOError:
            return []
        out = []
        off = 0
        while off + _EVENT.size <= len(data):
            wd, mask, _cookie, length = _EVENT.unpack_from(data, off)
            off += _EVENT.size
            name = data[off:off + length].split(b"\0", 1)[0].decode("utf-8", "replace")
            off += length
            out.append((wd, mask, name))
        return out

    def close(self):
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class NetnsProbe(Probe):
    RETRY_DELAYS = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0)

    def __init__(self, topology, netlink, run_path="/var/run/netns"):
        self.topo = topology
        self.graph = topology.graph
        self.netlink = netlink
        self.run_path = run_path
        self.inotify = None
        self.wd = None
        self.own_ns = None    # (st_dev, st_ino) of the agent's namespace: no netns node, as upstream
        self.nodes = {}       # path -> netns node
        self.extra = {}       # path -> netns node registered by another probe (register())
        self.waiting = {}     # path -> retry index
        self.loop = None
        self._poll_task = None
        self.state = "stopped"

    def start(self):
        self.loop = asyncio.get_running_loop()
        own = os.stat("/proc/self/ns/net")
        self.own_ns = (own.st_dev, own.st_ino)
        self.inotify = Inotify()
        self.loop.add_reader(self.inotify.fd, self._on_events)
        self._watch()

    def stop(self):
        if self._poll_task is not None:
            self._poll_task.cancel()
            self._poll_task = None
        if self.inotify is not None:
            try:
                self.loop.remove_reader(self.inotify.fd)
            except Exception:
                pass
            self.inotify.close()
            self.inotify = None
        self.state = "stopped"

    def status(self):
        return {"State": self.state, "RunPath": self.run_path, "Namespaces": len(self.nodes)}

    def _watch(self):
        try:
            self.wd = self.inotify.add_watch(self.run_path, IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO
                                             | IN_DELETE_SELF | IN_MOVE_SELF | IN_ATTRIB)
        except OSError as exc:
            if exc.errno not in (errno.ENOENT, errno.ENOTDIR):
                log.warning("netns: cannot watch %s: %s", self.run_path, exc)
            self.state = "waiting for %s" % self.run_path
            if self._poll_task is None:
                self._poll_task = self.loop.create_task(self._poll_dir())
            return
        self.state = "running"
        self._rescan()

    async def _poll_dir(self):
        try:
            while self.inotify is not None and not os.path.isdir(self.run_path):
                await asyncio.sleep(1.0)
        finally:
            self._poll_task = None
        if self.inotify is not None:
            self._watch()

    def _rescan(self):
        try:
            names = set(os.listdir(self.run_path))
        except OSError:
            names = set()
        present = set(os.path.join(self.run_path, n) for n in names)
        for path in list(self.nodes):
            if path not in present:
                self._remove(path)
        for path in sorted(present):
            if path not in self.nodes:
                self._try_add(path, 0)

    def _on_events(self):
        if self.inotify is None:
            return
        for _wd, mask, name in self.inotify.read():
            if mask & IN_Q_OVERFLOW:
                self._rescan()
                continue
            if mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED):
                for path in list(self.nodes):
                    self._remove(path)
                self.wd = None
                self._watch()
                continue
            if not name:
                continue
            path = os.path.join(self.run_path, name)
            if mask & (IN_DELETE | IN_MOVED_FROM):
                self.waiting.pop(path, None)
                self._remove(path)
            elif mask & (IN_CREATE | IN_MOVED_TO | IN_ATTRIB):
                if path not in self.nodes and path not in self.waiting:
                    self._try_add(path, 0)

    def _try_add(self, path, attempt):
        if self.inotify is None or path in self.nodes:
            self.waiting.pop(path, None)
            return
        if not os.path.exists(path):
            self.waiting.pop(path, None)
            return
        if not is_netns(path):
            if attempt >= len(self.RETRY_DELAYS):
                self.waiting.pop(path, None)
                log.debug("netns: %s never became a namespace", path)
                return
            self.waiting[path] = attempt
            self.loop.call_later(self.RETRY_DELAYS[attempt], self._retry, path, attempt + 1)
            return
        self.waiting.pop(path, None)
        self._add(path)

    def _retry(self, path, attempt):
        if self.waiting.get(path) == attempt - 1:
            self._try_add(path, attempt)

    def find(self, dev, ino):
        """The netns node of the namespace (device, inode), however it was found; None if unknown."""
        for node in list(self.nodes.values()) + list(self.extra.values()):
            if node.Metadata.get("Inode") == ino and node.Metadata.get("Device") == dev:
                return node
        return None

    def is_own(self, path):
        st = os.stat(path)
        return (st.st_dev, st.st_ino) == self.own_ns

    def register(self, path, name):
        """The netns node of namespace `path` (a /proc/<pid>/ns/net), created with `name` if no
        probe knows it yet: -> (node, created). Raises OSError when `path` is gone."""
        st = os.stat(path)
        node = self.find(st.st_dev, st.st_ino)
        if node is not None:
            return node, False
        self._add(path, name, self.extra)
        return self.extra.get(path), path in self.extra

    def unregister(self, path):
        node = self.extra.pop(path, None)
        if node is not None:
            self.netlink.remove_namespace(path)
            self._delete_subtree(node)

    def _add(self, path, name=None, table=None):
        try:
            st = os.stat(path)
        except OSError:
            return
        if (st.st_dev, st.st_ino) == self.own_ns:
            log.debug("netns: %s is the agent's own namespace (its host's interfaces)", path)
            return
        if self.find(st.st_dev, st.st_ino) is not None:
            log.debug("netns: %s is a namespace already known", path)
            return
        name = name or os.path.basename(path)
        host_tid = tid_of(self.topo.host)
        md = {"Name": name, "Type": "netns", "Path": path, "Inode": st.st_ino, "Device": st.st_dev}
        if host_tid:
            md["TID"] = gen_id(host_tid + path + "netns")
        node = self.graph.new_node(metadata=md)
        self.topo.own(self.topo.host, node)
        (self.nodes if table is None else table)[path] = node
        self.netlink.add_namespace(path, name, node, path)

    def _remove(self, path):
        node = self.nodes.pop(path, None)
        if node is None:
            return
        self.netlink.remove_namespace(path)
        self._delete_subtree(node)

    def _delete_subtree(self, node):
        g = self.graph
        if node.ID not in g.nodes:
            return
        for e in g.out_edges(node):
            if e.Metadata.get("RelationType") == "ownership":
                child = g.nodes.get(e.Child)
                if child is not None:
                    self._delete_subtree(child)
        g.del_node(node)
