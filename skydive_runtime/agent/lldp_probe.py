"""lldp probe: switches and their ports learnt from the LLDP frames heard on the host's NICs.

`agent.topology.lldp.interfaces` names the interfaces of the host's namespace to listen on; empty
(the default) = every physical NIC (netlink Type `device`, EncapType `ether`). An interface is
listened on while it is UP and has a MAC: one AF_PACKET socket each, with a kernel BPF filter
(upstream's: multicast, ethertype 0x88cc, to 01:80:c2:00:00:{00,03,0e}, not from our own MAC)
and membership of those multicast groups; one reader thread for all of them.

Each advertisement gives (agent/lldp.py, upstream IDs and metadata) a `switch` node -ownership+
layer2-> `switchport` node -layer2-> the local interface. A port is removed when its TTL runs out
without a new frame, at once on a shutdown frame (TTL 0), or when its local interface stops being
listened on; a switch when none of its ports is left. As upstream, a frame whose port description
is the local interface's name (lldpd on the other end describing itself) is ignored.
"""

import asyncio
import logging
import select
import socket
import struct
import threading
import time

from ..common.parts import Probe
from ..common.source_thread import SourceThread
from ..flow import bpf
from .lldp import ETH_P_LLDP, decode_frame
from .nlmonitor import ROOT

log = logging.getLogger(__name__)

SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP = 1
PACKET_MR_MULTICAST = 0
PACKET_OUTGOING = 4
GROUPS = ("01:80:c2:00:00:00", "01:80:c2:00:00:03", "01:80:c2:00:00:0e")
FILTER = ("ether[0] & 1 = 1 and ether proto 0x88cc and not ether src %s and "
          "(ether dst 01:80:c2:00:00:0e or ether dst 01:80:c2:00:00:03 or ether dst 01:80:c2:00:00:00)")
SNAPLEN = 8192


def create(agent):
    return LLDPProbe(agent.topology, agent.netlink, agent.config.get_list("agent.topology.lldp.interfaces"))


def open_lldp_socket(ifname, ifindex, mac):
    """An AF_PACKET socket on `ifname` receiving only LLDP frames (filter attached before bind)."""
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    try:
        bpf.attach_filter(sock, bpf.compile_filter(FILTER % mac, snaplen=SNAPLEN))
        sock.bind((ifname, ETH_P_LLDP))
        for group in GROUPS:
            addr = bytes(int(x, 16) for x in group.split(":"))
            sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP,
                            struct.pack("iHH8s", ifindex, PACKET_MR_MULTICAST, 6, addr))
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


class LLDPReader(SourceThread):
    """Reads every LLDP socket; frames go to `sink(ifname, advertisement)` on the loop."""

    def __init__(self, loop, sink, on_error):
        SourceThread.__init__(self, loop, "lldp-reader")
        self.sink = sink
        self.on_error = on_error
        self.socks = {}          # ifname -> socket (owned by this thread)
        self.commands = []
        self.lock = threading.Lock()
        self.frames = 0

    def command(self, *cmd):
        with self.lock:
            self.commands.append(cmd)
        self.wake()

    def _run_commands(self):
        with self.lock:
            cmds, self.commands = self.commands, []
        for cmd in cmds:
            name = cmd[1]
            old = self.socks.pop(name, None)
            if old is not None:
                old.close()
            if cmd[0] == "open":
                try:
                    self.socks[name] = open_lldp_socket(name, cmd[2], cmd[3])
                    self.post(self.on_error, name, None)
                except (OSError, bpf.BPFError) as exc:
                    self.post(self.on_error, name, str(exc))

    def session(self):
        while self.running:
            self._run_commands()
            by_fd = {s.fileno(): (n, s) for n, s in self.socks.items()}
            ready, _w, _x = select.select([self.wake_fd] + list(by_fd), [], [], 1.0)
            for fd in ready:
                if fd == self.wake_fd:
                    self.drain()
                    continue
                name, sock = by_fd[fd]
                self._read(name, sock)

    def finish(self):
        for sock in self.socks.values():
            sock.close()
        self.socks = {}

    def _read(self, name, sock):
        while True:
            try:
                frame, addr = sock.recvfrom(SNAPLEN)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:          # the interface went away: the loop closes the socket
                self.post(self.on_error, name, str(exc))
                return
            if addr[2] == PACKET_OUTGOING:
                continue
            adv = decode_frame(frame)
            if adv is not None:
                self.frames += 1
                self.post(self.sink, name, adv)


class LLDPProbe(Probe):
    stop_blocks = True       # joins the reader thread

    def __init__(self, topology, netlink, interfaces):
        self.topo = topology
        self.graph = topology.graph
        self.netlink = netlink
        self.interfaces = [str(i) for i in interfaces]
        self.reader = None
        self.loop = None
        self.listening = {}      # ifname -> (ifindex, mac, local node id)
        self.errors = {}         # ifname -> last socket error
        self.ports = {}          # port node id -> {"chassis", "iface", "expires"}
        self._scheduled = False
        self._timer = None

    # ---- lifecycle ------------------------------------------------------------------------------
    def start(self):
        self.loop = asyncio.get_running_loop()
        self.reader = LLDPReader(self.loop, self._on_advertisement, self._on_socket_state)
        self.reader.start()
        self.graph.add_listener(self)
        self._schedule()
        self._timer = self.loop.call_later(1.0, self._tick)

    def stop(self):
        # runs in an executor (stop_blocks): touch only the thread; the graph stays as it is
        try:
            self.graph.remove_listener(self)
        except (KeyError, ValueError):
            pass
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.reader is not None:
            self.reader.stop()
            self.reader.join(timeout=2)
            self.reader = None

    def status(self):
        st = {"State": "running" if self.reader is not None and self.reader.is_alive() else "stopped",
              "Interfaces": sorted(self.listening), "Ports": len(self.ports),
              "Frames": self.reader.frames if self.reader is not None else 0}
        if self.errors:
            st["Errors"] = dict(self.errors)
        return st

    # ---- which interfaces ----------------------------------------------------------------------------
    def on_node_added(self, node):
        self._schedule()

    def on_node_updated(self, node, ops):
        if any(key in ("State", "MAC", "Name", "IfIndex", "Type") for _op, key, _v in ops):
            self._schedule()

    def on_node_deleted(self, node):
        self._schedule()

    def _schedule(self):
        if not self._scheduled and self.loop is not None:
            self._scheduled = True
            self.loop.call_soon(self._reconcile)

    def _wanted(self):
        view = self.netlink.views.get(ROOT) if self.netlink is not None else None
        out = {}
        for index, rec in (view.recs.items() if view is not None else ()):
            layer = rec.layers.get(view.layer)
            if layer is None or rec.node is None:
                continue
            md = layer[1]
            name, mac = md.get("Name"), md.get("MAC")
            if not name or not mac or md.get("State") != "UP" or md.get("EncapType") != "ether":
                continue
            if self.interfaces:
                if name not in self.interfaces:
                    continue
            elif md.get("Type") != "device":
                continue
            out[name] = (index, mac, rec.node.ID)
        return out

    def _reconcile(self):
        self._scheduled = False
        if self.reader is None:
            return
        wanted = self._wanted()
        for name, cur in list(self.listening.items()):
            if wanted.get(name) != cur:
                del self.listening[name]
                self.errors.pop(name, None)
                self.reader.command("close", name)
                self._forget_interface(name)
        for name, want in wanted.items():
            if name not in self.listening:
                self.listening[name] = want
                self.reader.command("open", name, want[0], want[1])

    def _on_socket_state(self, name, error):
        if error is None:
            self.errors.pop(name, None)
        elif name in self.listening:
            self.errors[name] = error
            log.warning("lldp: cannot listen on %s: %s", name, error)

    # ---- graph ---------------------------------------------------------------------------------------
    def _upsert(self, node_id, md):
        g = self.graph
        node = g.get_node(node_id)
        if node is None:
            return g.new_node(metadata=md, id=node_id)
        changes = {k: v for k, v in md.items() if node.Metadata.get(k) != v}
        deletes = [k for k in ("MTU",) if k in node.Metadata and k not in md]
        if changes or deletes:
            g.update_metadata(node, changes, deletes=deletes)
        return node

    def _on_advertisement(self, ifname, adv):
        cur = self.listening.get(ifname)
        if cur is None or adv.port_description == ifname:
            return
        local = self.graph.get_node(cur[2])
        if local is None:
            return
        if adv.ttl == 0:
            self._remove_port(adv.port_id)
            return
        known = self.ports.get(adv.port_id)
        if known is not None and known["iface"] != ifname:
            self._remove_port(adv.port_id)      # the port moved to another of our NICs
        chassis = self._upsert(adv.chassis_id, adv.chassis)
        port = self._upsert(adv.port_id, adv.port)
        self.topo.own(chassis, port)
        self.topo.layer2(chassis, port)
        self.topo.layer2(port, local)
        self.ports[adv.port_id] = {"chassis": adv.chassis_id, "iface": ifname,
                                   "expires": time.monotonic() + adv.ttl}

    def _remove_port(self, port_id):
        entry = self.ports.pop(port_id, None)
        if entry is None:
            return
        g = self.graph
        node = g.get_node(port_id)
        if node is not None:
            g.del_node(node)
        if not any(p["chassis"] == entry["chassis"] for p in self.ports.values()):
            chassis = g.get_node(entry["chassis"])
            if chassis is not None:
                g.del_node(chassis)

    def _forget_interface(self, ifname):
        for port_id in [p for p, e in self.ports.items() if e["iface"] == ifname]:
            self._remove_port(port_id)

    def _tick(self):
        now = time.monotonic()
        try:
            for port_id in [p for p, e in self.ports.items() if e["expires"] <= now]:
                self._remove_port(port_id)
        except Exception:
            log.exception("lldp: TTL expiry failed")
        if self.reader is not None:
            self._timer = self.loop.call_later(1.0, self._tick)
