"""Capture type `ovsmirror`: an OVS mirror of an ovsport (both directions) into a new internal
port of its bridge, read there by AF_PACKET; the mirror and the port go when the capture stops.

The mirror is made in the capture's own thread (`MirrorSource.open`, ovs-vsctl against
`ovs.ovsdb`): interface `mir<8 hex>` (type internal, `external_ids:skydive-probe-id`, and the agent's
`skydive-agent` tag: flow/ovs_stale.py), a Mirror
of the same name selecting the port as source and destination, output to that interface, added to
the port's bridge. The interface is set UP in the agent's namespace (where ovs-vswitchd makes its
internal ports) and captured there; `close()` removes the mirror and the port. Flows carry the
ovsport's TID (the node captured). Available where ovs-vsctl is installed and the ovsdb probe runs (the OVS hosts).
"""

import fcntl
import hashlib
import os
import socket
import struct
import time

from .afpacket import AFPacketSource
from .capabilities import CaptureStartError, Opened
from .ovssflow import DEFAULT_OVSDB, agent_tag, available as vsctl_available, vsctl

SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1

__all__ = ["available", "open_capture", "mirror_name", "MirrorSource"]


def available(config):
    """Runnable where Open vSwitch is: ovs-vsctl installed and the ovsdb probe on."""
    if "ovsdb" not in config.get_list("agent.topology.probes"):
        return "the ovsdb topology probe is not enabled (agent.topology.probes)"
    return vsctl_available(config)


def mirror_name(capture_id, port_uuid):
    """The mirror's interface name: unique per (capture, port), 11 characters."""
    return "mir" + hashlib.sha1((capture_id + "/" + port_uuid).encode()).hexdigest()[:8]


def _set_up(ifname):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        req = struct.pack("16sH", ifname.encode(), 0)
        flags = struct.unpack_from("16sH", fcntl.ioctl(s, SIOCGIFFLAGS, req))[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH", ifname.encode(), flags | IFF_UP))


class MirrorSource(AFPacketSource):
    """AFPacketSource on the mirror's output port, which open() creates and close() removes."""

    def __init__(self, ovsdb, port, name, capture_id, host_id="", **kw):
        AFPacketSource.__init__(self, name, **kw)
        self.ovsdb = ovsdb
        self.host_id = host_id
        self.port = port
        self.capture_id = capture_id
        self.bridge = None

    def open(self):
        bridge = vsctl(self.ovsdb, "port-to-br", self.port).strip()
        name = self.ifname
        vsctl(self.ovsdb, "--", "--may-exist", "add-port", bridge, name,
              "--", "set", "interface", name, "type=internal", "external_ids:skydive-probe-id=%s" % self.capture_id,
              agent_tag(self.host_id),
              "--", "--id=@out", "get", "port", name, "--", "--id=@src", "get", "port", self.port,
              "--", "--id=@m", "create", "mirror", "name=%s" % name, "select-src-port=@src", "select-dst-port=@src",
              "output-port=@out", "external_ids:skydive-capture=%s" % self.capture_id, agent_tag(self.host_id),
              "--", "add", "bridge", bridge, "mirrors", "@m")
        self.bridge = bridge
        try:
            deadline = time.monotonic() + 5
            while not os.path.exists("/sys/class/net/%s" % name):
                if time.monotonic() > deadline:
                    raise OSError("the mirror port %s did not appear in this namespace (is ovs-vswitchd "
                                  "running in another one?)" % name)
                time.sleep(0.02)
            _set_up(name)
            AFPacketSource.open(self)
        except BaseException:
            self._remove()
            raise

    def _remove(self):
        if self.bridge is None:
            return
        bridge, self.bridge = self.bridge, None
        name = self.ifname
        mirrors = vsctl(self.ovsdb, "--bare", "--columns=_uuid", "find", "mirror", "name=%s" % name).split()
        args = []
        for uuid in mirrors:
            args += ["--", "remove", "bridge", bridge, "mirrors", uuid]
        vsctl(self.ovsdb, *(args + ["--", "--if-exists", "del-port", bridge, name]))

    def close(self):
        try:
            AFPacketSource.close(self)
        finally:
            self._remove()


def open_capture(ctx):
    md = ctx.node.Metadata
    port, port_uuid = md.get("Name"), md.get("UUID")
    if not port or not port_uuid:
        raise CaptureStartError(400, "ovsmirror: node %s is not an Open vSwitch port (no Name/UUID)" % ctx.node.ID)
    ovsdb = ctx.config.get_string("ovs.ovsdb") or DEFAULT_OVSDB
    try:
        src = MirrorSource(ovsdb, port, mirror_name(ctx.capture.get("UUID", ""), port_uuid), ctx.capture.get("UUID", ""),
                           host_id=ctx.host_id, bpf_filter=ctx.capture.get("BPFFilter") or None, header_size=ctx.header_size)
    except (ValueError, OSError) as exc:
        raise CaptureStartError(400, str(exc)) from None
    return Opened(src)
