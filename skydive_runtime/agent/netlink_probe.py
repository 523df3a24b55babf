"""netlink probe, graph side: applies the monitor thread's batches to the agent graph.

One `NsView` per namespace (the host's own, key ""; a netns, key = its path) maps ifindex ->
IfaceRecord. Relations: ownership from the namespace root, layer2 from a bridge master to its
ports (MasterIndex), layer2 {Type: vlan} from a vlan's parent (ParentIndex), layer2
{Type: veth} between veth peers, also across namespaces (PeerIfIndex + link netnsid).
"""

import asyncio
import logging

from ..common.parts import Probe
from .nlmonitor import ROOT, NetlinkMonitor
from .topology import PRIO_NETLINK, IfaceRecord

log = logging.getLogger(__name__)


def create(agent):
    return NetlinkProbe(agent.topology, agent.config.get_float("agent.topology.netlink.metrics_update"))


class NsView:
    def __init__(self, key, name, root):
        self.key = key
        self.name = name
        self.root = root
        self.recs = {}    # ifindex -> IfaceRecord
        self.rels = {}    # ifindex -> relations from the monitor
        self.role_edges = {}  # ifindex -> {role: edge id} of the master/vlan edges we made
        self.ready = asyncio.Event()

    @property
    def layer(self):
        return "nl:" + self.key


class NetlinkProbe(Probe):
    stop_blocks = True     # joins the monitor thread

    def __init__(self, topology, metrics_interval=30.0, ovs=None):
        self.topo = topology
        self.graph = topology.graph
        self.views = {}
        self.pending = set()       # (ns key, ifindex) whose relations wait for a peer/master
        self.ovs = ovs
        self.monitor = None
        self.metrics_interval = metrics_interval
        self.errors = {}
        self.batches = 0

    # ---- lifecycle --------------------------------------------------------------------------------
    def start(self):
        loop = asyncio.get_running_loop()
        self.monitor = NetlinkMonitor(loop, self._on_batches, self.metrics_interval, self._on_ns_error)
        self.monitor.start()
        self.add_namespace(ROOT, "", self.topo.host, None)

    def stop(self):
        if self.monitor is not None:
            self.monitor.stop()
            self.monitor.join(timeout=2)
            self.monitor = None

    def status(self):
        st = {"State": "running" if self.monitor is not None and self.monitor.is_alive() else "stopped",
              "Namespaces": len(self.views)}
        if self.monitor is not None:
            st.update({"Events": self.monitor.stats["events"], "Dumps": self.monitor.stats["dumps"],
                       "Resyncs": self.monitor.stats["resyncs"]})
        return st

    def add_namespace(self, key, name, root, path):
        if key in self.views:
            return self.views[key]
        view = NsView(key, name, root)
        self.views[key] = view
        self.monitor.add_namespace(key, name, path)
        return view

    def remove_namespace(self, key):
        view = self.views.pop(key, None)
        if view is None:
            return
        self.monitor.remove_namespace(key)
        for index in list(view.recs):
            self._delete(view, index)
        self.pending = {p for p in self.pending if p[0] != key}

    def _on_ns_error(self, key, error):
        self.errors[key] = error
        view = self.views.get(key)
        if view is not None:
            view.ready.set()

    # ---- lookups used by other probes ---------------------------------------------------------------
    def find_by_name(self, name, keys=None):
        """[(view, index, rec)] of interfaces with this name (in the namespaces listed, or all)."""
        out = []
        for key in (keys if keys is not None else list(self.views)):
            view = self.views.get(key)
            if view is None:
                continue
            for index, rec in view.recs.items():
                md = rec.layers.get(view.layer)
                if md is not None and md[1].get("Name") == name:
                    out.append((view, index, rec))
        return out

    def locate(self, node_id):
        """Where the interface of a graph node lives: {"NetNsPath": path or "" (the agent's own
        namespace), "NetNsName", "Name", "IfIndex"}; None when netlink does not know that node
        (an OVS-only port, a netns or host node...)."""
        for key, view in self.views.items():
            for index, rec in view.recs.items():
                if rec.node is not None and rec.node.ID == node_id:
                    md = rec.layers.get(view.layer, (0, {}))[1]
                    return {"NetNsPath": key, "NetNsName": view.name, "Name": md.get("Name"), "IfIndex": index}
        return None

    def node_of(self, key, index):
        view = self.views.get(key)
        rec = view.recs.get(index) if view else None
        return rec.node if rec else None

    # ---- batches --------------------------------------------------------------------------------------
    def _on_batches(self, batches):
        self.batches += 1
        touched = set()
        for key, full, entries in batches:
            view = self.views.get(key)
            if view is None:
                continue
            try:
                if full is None:
                    self._apply_metrics(view, entries)
                    continue
                if full:
                    for index in [i for i in view.recs if i not in entries]:
                        self._delete(view, index)
                for index, entry in entries.items():
                    if entry is None:
                        self._delete(view, index)
                    else:
                        self._upsert(view, index, entry)
                        touched.add((key, index))
                if full:
                    view.ready.set()
            except Exception:  # never let one namespace's oddity stop the others
                log.exception("netlink: cannot apply a batch of %s", key or "host")
        if touched or self.pending:
            try:
                self._relations(touched | self.pending)
            except Exception:
                log.exception("netlink: cannot update interface relations")

    def _apply_metrics(self, view, entries):
        for index, metric in entries.items():
            rec = view.recs.get(index)
            if rec is not None and rec.node is not None and rec.node.ID in self.graph.nodes:
                self.graph.update_metadata(rec.node, metric)

    def _upsert(self, view, index, entry):
        md, rel, metric = entry
        rec = view.recs.get(index)
        if rec is None:
            rec = None
            if self.ovs is not None:
                rec = self.ovs.claim(md.get("Name"), view.key, md.get("Driver"), md.get("MAC"))
            if rec is None:
                rec = IfaceRecord()
            view.recs[index] = rec
        view.rels[index] = rel
        self.topo.set_layer(rec, view.layer, PRIO_NETLINK, md, owner=view.root,
                            extra=metric if rec.node is None else None)
        if metric and rec.node is not None and "Metric" not in rec.node.Metadata:
            self.graph.update_metadata(rec.node, metric)

    def _delete(self, view, index):
        rec = view.recs.pop(index, None)
        view.rels.pop(index, None)
        view.role_edges.pop(index, None)
        self.pending.discard((view.key, index))
        if rec is None:
            return
        self.topo.drop_layer(rec, view.layer)

    def _relations(self, items):
        g = self.graph
        still = set()
        for key, index in items:
            view = self.views.get(key)
            if view is None:
                continue
            rec = view.recs.get(index)
            rel = view.rels.get(index)
            if rec is None or rel is None or rec.node is None or rec.node.ID not in g.nodes:
                continue
            node = rec.node
            # bridge master -> port, vlan parent -> vlan
            for role, target, extra in (("master", rel["master"], None),
                                        ("parent", rel["parent"], {"Type": "vlan"})):
                wanted = None
                if target:
                    trec = view.recs.get(target)
                    if trec is not None and trec.node is not None and trec.node.ID in g.nodes:
                        wanted = trec.node
                    else:
                        still.add((key, index))
                if role == "parent" and "Vlan" not in node.Metadata:
                    wanted = None
                self._set_role_edge(view, index, node, role, wanted, extra)
            peer = rel["peer"]
            if peer is not None:
                pview = self.views.get(peer[0])
                prec = pview.recs.get(peer[1]) if pview else None
                if prec is None or prec.node is None or prec.node.ID not in g.nodes:
                    still.add((key, index))
                else:
                    # one edge per pair: the interface with the larger (index, ns) is the parent
                    if (peer[1], peer[0]) > (index, key):
                        self.topo.layer2(prec.node, node, {"Type": "veth"})
                    else:
                        self.topo.layer2(node, prec.node, {"Type": "veth"})
        self.pending = still

    def _set_role_edge(self, view, index, node, role, wanted, extra):
        """Keep exactly the layer2 edge `wanted -> node` for this role (master or vlan parent)."""
        g = self.graph
        edges = view.role_edges.setdefault(index, {})
        eid = edges.get(role)
        cur = g.edges.get(eid) if eid else None
        if cur is not None and (wanted is None or cur.Parent != wanted.ID or cur.Child != node.ID):
            g.del_edge(cur)
            cur = None
        if cur is None:
            edges.pop(role, None)
        if wanted is not None and cur is None:
            md = {"RelationType": "layer2"}
            if extra:
                md.update(extra)
            e = g.find_link(wanted, node, "layer2") or g.link(wanted, node, md)
            edges[role] = e.ID
