"""The agent's graph side: host node, interface records merged from several probes, TIDs.

An interface is one graph node even when two probes know it (netlink in some namespace and
Open vSwitch): each probe writes its own metadata *layer* into an `IfaceRecord`; the node's
metadata is the layers merged by priority (plus the TID), applied with one `update_metadata`
so keys written by others (`Captures`, `Metric`) are left alone. The owner (ownership parent)
is the namespace root of the netlink layer when netlink knows the interface, else the OVS bridge.
"""

import logging
import os
import socket

from ..common.ids import gen_id

log = logging.getLogger(__name__)

# layer priorities: higher wins for a key both layers set
PRIO_OVS_LOW = 0     # what OVS knows of an interface netlink does not see (MAC, Name)
PRIO_NETLINK = 10
PRIO_OVS = 20        # OVS Type/Driver/UUID/OfPort/ExtID override netlink


def host_info():
    """OS facts upstream's host node carries (gopsutil host.Info naming)."""
    info = {"OS": "linux"}
    try:
        info["KernelVersion"] = os.uname().release
    except OSError:
        pass
    try:
        with open("/etc/os-release") as fh:
            rel = dict(line.rstrip("\n").split("=", 1) for line in fh if "=" in line)
        if rel.get("ID"):
            info["Platform"] = rel["ID"].strip('"')
        if rel.get("VERSION_ID"):
            info["PlatformVersion"] = rel["VERSION_ID"].strip('"')
    except OSError:
        pass
    try:
        with open("/var/lib/cloud/data/instance-id") as fh:
            info["InstanceID"] = fh.read().strip()
    except OSError:
        pass
    return info


def _same(a, b):
    return a == b and type(a) is type(b)


def tid_of(node):
    return node.Metadata.get("TID") if node is not None else None


class IfaceRecord:
    __slots__ = ("node", "layers", "owners", "effective", "ovs_uuid", "deleted")

    def __init__(self):
        self.node = None
        self.layers = {}      # layer name -> (priority, metadata)
        self.owners = {}      # layer name -> owner node (insertion order = recency)
        self.effective = {}   # metadata keys we manage, as last applied
        self.ovs_uuid = None
        self.deleted = False

    def has_netlink(self):
        return any(k.startswith("nl:") for k in self.layers)


class Topology:
    """Shared helpers over the agent graph."""

    def __init__(self, graph, host_id, extra_metadata=None):
        self.graph = graph
        self.host_id = host_id
        md = {"Name": host_id, "Type": "host", "Hostname": socket.gethostname()}
        md.update(host_info())
        for k, v in (extra_metadata or {}).items():
            md[k] = v
        md["Name"] = host_id
        md["Type"] = "host"
        md["TID"] = gen_id(host_id)
        self.host = graph.new_node(metadata=md, id=gen_id(host_id))

    # ---- records ---------------------------------------------------------------------------------
    def set_layer(self, rec, layer, priority, md, owner=None, extra=None):
        rec.layers[layer] = (priority, md)
        if owner is not None:
            rec.owners.pop(layer, None)
            rec.owners[layer] = owner
        self.refresh(rec, extra)

    def drop_layer(self, rec, layer):
        rec.layers.pop(layer, None)
        rec.owners.pop(layer, None)
        self.refresh(rec)

    def owner_of(self, rec):
        nl_owner = None
        other = None
        for layer, owner in rec.owners.items():
            if owner is None or owner.ID not in self.graph.nodes:
                continue
            if layer.startswith("nl:"):
                nl_owner = owner      # the most recent netlink layer wins
            elif other is None:
                other = owner
        return nl_owner or other

    def refresh(self, rec, extra=None):
        """Recompute the node of a record: create, update, re-own or delete it."""
        g = self.graph
        if not rec.layers:
            if rec.node is not None and rec.node.ID in g.nodes:
                g.del_node(rec.node)
            rec.node = None
            rec.deleted = True
            return
        merged = {}
        for _prio, md in sorted(rec.layers.values(), key=lambda pm: pm[0]):
            merged.update(md)
        owner = self.owner_of(rec)
        if owner is not None:
            ptid = tid_of(owner)
            if ptid and merged.get("Name") is not None and merged.get("Type"):
                merged["TID"] = gen_id(ptid + str(merged["Name"]) + str(merged["Type"]))
        node = rec.node
        if node is None or node.ID not in g.nodes:
            md = dict(merged)
            if extra:
                md.update(extra)
            rec.node = node = g.new_node(metadata=md)
            rec.effective = merged
            rec.deleted = False
        else:
            changes = {k: v for k, v in merged.items()
                       if k not in rec.effective or not _same(rec.effective[k], v)}
            deletes = [k for k in rec.effective if k not in merged]
            if extra:
                changes.update(extra)
            if changes or deletes:
                g.update_metadata(node, changes, deletes=deletes)
            rec.effective = merged
        if owner is not None:
            self.own(owner, node)

    def own(self, parent, child):
        g = self.graph
        if g.find_link(parent, child, "ownership") is None:
            g.link(parent, child, {"RelationType": "ownership"})

    def layer2(self, parent, child, metadata=None):
        """Ensure one layer2 link between two nodes (either direction counts as existing)."""
        g = self.graph
        e = g.find_link(parent, child, "layer2") or g.find_link(child, parent, "layer2")
        if e is not None:
            return e
        md = {"RelationType": "layer2"}
        if metadata:
            md.update(metadata)
        return g.link(parent, child, md)
