"""ovsdb probe: the Open_vSwitch database watched by common/ovsdb_idl.py (the PyPI `ovs` IDL in its
own thread); the rows it hands to the loop make whole snapshots, applied as diffs to the graph.

Graph (spec §3.2): host -ownership-> ovsbridge -ownership+layer2-> ovsport -layer2-> interface.
An interface netlink also sees (system ports by name in the host namespace, internal ports by
name wherever they were moved) is the *same* node: OVS adds its layer (UUID, OfPort, ExtID,
OVS Type, Driver openvswitch) to the netlink record. Interfaces only OVS knows (patch, vxlan,
gre, geneve) are owned by their bridge. Patch peers are linked layer2 {Type: patch}.

When ovsdb is unreachable the thread retries every second; the status says so meanwhile.
"""

import asyncio
import logging

from ..common.ids import gen_id
from ..common.ovsdb_idl import IdlWatcher
from ..common.parts import Probe
from ..flow.ovssflow import ovsdb_remote as ovs_remote
from .nlmonitor import ROOT
from .topology import PRIO_OVS, PRIO_OVS_LOW, IfaceRecord, tid_of

log = logging.getLogger(__name__)

MERGEABLE = ("", "system", "internal", "tap", "dpdk")
TUNNELS = ("vxlan", "gre", "geneve", "stt", "lisp", "erspan", "ip6erspan", "ip6gre", "gtpu", "bareudp", "srv6")


def _opt(v):
    """IDL optional column ([] or [x]) -> x or None."""
    if isinstance(v, list):
        return v[0] if v else None
    return v


TABLES = ("Bridge", "Port", "Interface")


def _snapshot(rows):
    """The IDL rows (table -> uuid -> row dict, common/ovsdb_idl.py) as the probe's snapshot."""
    bridges, ports, ifaces = {}, {}, {}
    for uuid, r in rows["Bridge"].items():
        bridges[uuid] = {"name": r.get("name", ""), "ports": list(r.get("ports", [])),
                         "external_ids": dict(r.get("external_ids", {})),
                         "other_config": dict(r.get("other_config", {})), "protocols": list(r.get("protocols", [])),
                         "datapath_type": r.get("datapath_type", "")}
    for uuid, r in rows["Port"].items():
        ports[uuid] = {"name": r.get("name", ""), "interfaces": list(r.get("interfaces", [])),
                       "external_ids": dict(r.get("external_ids", {})),
                       "other_config": dict(r.get("other_config", {})),
                       "tag": _opt(r.get("tag")), "trunks": list(r.get("trunks", [])),
                       "bond_mode": _opt(r.get("bond_mode")), "lacp": _opt(r.get("lacp"))}
    for uuid, r in rows["Interface"].items():
        ifaces[uuid] = {"name": r.get("name", ""), "type": r.get("type", ""), "ofport": _opt(r.get("ofport")),
                        "mac": _opt(r.get("mac_in_use")) or _opt(r.get("mac")) or "",
                        "external_ids": dict(r.get("external_ids", {})), "options": dict(r.get("options", {})),
                        "other_config": dict(r.get("other_config", {})), "error": _opt(r.get("error"))}
    return {"bridges": bridges, "ports": ports, "interfaces": ifaces}


def create(agent):
    netlink = agent.probes["netlink"]
    probe = OvsdbProbe(agent.topology, netlink, agent.config.get_string("ovs.ovsdb"))
    netlink.ovs = probe      # netlink hands OVS the interfaces it also knows
    return probe


class OvsdbProbe(Probe):
    stop_blocks = True     # joins the IDL thread

    def __init__(self, topology, netlink, address):
        self.topo = topology
        self.graph = topology.graph
        self.netlink = netlink
        self.address = address
        self.remote = ovs_remote(address)
        self.monitor = None
        self.state = "starting"
        self.error = ""
        self.bridges = {}    # uuid -> node
        self.ports = {}      # uuid -> node
        self.ifaces = {}     # uuid -> IfaceRecord
        self.iface_rows = {}  # uuid -> row dict
        self.port_of = {}    # iface uuid -> port uuid
        self.bridge_of = {}  # port uuid -> bridge uuid
        self.rows = {t: {} for t in TABLES}    # the IDL's rows: table -> uuid -> row dict
        self.snapshots = 0
        self.synced = asyncio.Event()

    def start(self):
        self.monitor = IdlWatcher(asyncio.get_running_loop(), self.remote, "Open_vSwitch", TABLES,
                                  self._on_rows, self._on_state, on_lost=self._on_lost)
        self.monitor.start()

    def stop(self):
        if self.monitor is not None:
            self.monitor.stop()
            self.monitor.join(timeout=3)
            self.monitor = None

    def status(self):
        st = {"State": self.state, "Address": self.address, "Bridges": len(self.bridges),
              "Ports": len(self.ports), "Interfaces": len(self.ifaces)}
        if self.error:
            st["Error"] = self.error
        return st

    def _on_state(self, state, error):
        if state != self.state or error != self.error:
            log.info("ovsdb: %s %s", state, error)
        self.state = state
        self.error = error

    # ---- merging with netlink -------------------------------------------------------------------
    def claim(self, name, ns_key, driver, mac=None):
        """A netlink interface appears: the OVS record of the same interface, if any. A record
        another namespace's netlink still holds (a port being moved) is only shared when the MAC
        says it is the same device."""
        for uuid, row in self.iface_rows.items():
            if row["name"] != name:
                continue
            if (ns_key == ROOT and row["type"] in MERGEABLE) or \
                    (row["type"] == "internal" and driver in ("tun", "openvswitch")):
                rec = self.ifaces.get(uuid)
                if rec is None:
                    return None
                held = [md for layer, (_p, md) in rec.layers.items() if layer.startswith("nl:")]
                if held and mac and all(md.get("MAC") != mac for md in held):
                    return None
                return rec
        return None

    def _find_netlink(self, row):
        if row["type"] not in MERGEABLE:
            return None
        found = self.netlink.find_by_name(row["name"], keys=[ROOT])
        if not found and row["type"] == "internal":
            found = [f for f in self.netlink.find_by_name(row["name"])
                     if f[2].layers[f[0].layer][1].get("Driver") in ("tun", "openvswitch")]
        for _view, _index, rec in found:
            if rec.ovs_uuid is None:
                return rec
        return None

    # ---- snapshots ---------------------------------------------------------------------------------
    def _on_rows(self, full, changes):
        if full:
            self.rows = {t: {} for t in TABLES}
        for table, uuid, row in changes:
            if row is None:
                self.rows[table].pop(uuid, None)
            else:
                self.rows[table][uuid] = row
        self._on_snapshot(_snapshot(self.rows))

    def _on_lost(self):
        """The IDL session was given up: nothing is known of OVS until the next one syncs."""
        self.rows = {t: {} for t in TABLES}
        self._on_snapshot(None)

    def _on_snapshot(self, snap):
        try:
            self._apply(snap or {"bridges": {}, "ports": {}, "interfaces": {}})
        except Exception:
            log.exception("ovsdb: cannot apply a snapshot")
        self.snapshots += 1
        if snap is not None:
            self.synced.set()

    def _apply(self, snap):
        g = self.graph
        topo = self.topo
        host_tid = tid_of(topo.host) or ""
        bridges, ports, ifaces = snap["bridges"], snap["ports"], snap["interfaces"]
        bridge_of = {p: b for b, row in bridges.items() for p in row["ports"]}
        port_of = {i: p for p, row in ports.items() for i in row["interfaces"]}

        # deletions first: interfaces, ports, bridges
        for uuid in [u for u in self.ifaces if u not in ifaces or port_of.get(u) is None]:
            self._drop_iface(uuid)
        for uuid in [u for u in self.ports if u not in ports or u not in bridge_of]:
            node = self.ports.pop(uuid)
            if node.ID in g.nodes:
                g.del_node(node)
        for uuid in [u for u in self.bridges if u not in bridges]:
            node = self.bridges.pop(uuid)
            if node.ID in g.nodes:
                g.del_node(node)

        for uuid, row in bridges.items():
            md = {"Name": row["name"], "UUID": uuid, "Type": "ovsbridge",
                  "TID": gen_id(host_tid + uuid + "ovsbridge"),
                  "Ovs": {"OtherConfig": row["other_config"], "Protocols": row["protocols"],
                          "DatapathType": row["datapath_type"]}}
            if row["external_ids"]:
                md["ExtID"] = row["external_ids"]
            node = self._upsert(self.bridges, uuid, md)
            topo.own(topo.host, node)

        for uuid, row in ports.items():
            buuid = bridge_of.get(uuid)
            if buuid is None:
                continue
            md = {"Name": row["name"], "UUID": uuid, "Type": "ovsport",
                  "TID": gen_id(host_tid + uuid + "ovsport"),
                  "Ovs": {"OtherConfig": row["other_config"]}}
            if row["external_ids"]:
                md["ExtID"] = row["external_ids"]
            vlans = ([row["tag"]] if row["tag"] is not None else []) + list(row["trunks"])
            if vlans:
                md["Vlans"] = vlans
            if row["bond_mode"]:
                md["BondMode"] = row["bond_mode"]
            if row["lacp"]:
                md["LACP"] = row["lacp"]
            node = self._upsert(self.ports, uuid, md)
            bnode = self.bridges[buuid]
            topo.own(bnode, node)
            if g.find_link(bnode, node, "layer2") is None:
                g.link(bnode, node, {"RelationType": "layer2"})
            # a port moved to another bridge keeps no stale link
            for e in g.in_edges(node):
                if e.Parent != bnode.ID and e.Metadata.get("RelationType") in ("ownership", "layer2"):
                    g.del_edge(e)

        for uuid, row in ifaces.items():
            puuid = port_of.get(uuid)
            if puuid is None or puuid not in self.ports:
                continue
            self.iface_rows[uuid] = row
            rec = self.ifaces.get(uuid)
            if rec is None:
                rec = self._find_netlink(row) or IfaceRecord()
                rec.ovs_uuid = uuid
                self.ifaces[uuid] = rec
            bnode = self.bridges[bridge_of[puuid]]
            otype = row["type"]
            md = {"Name": row["name"], "UUID": uuid}
            if otype not in ("", "system"):
                md["Type"] = otype
                md["Driver"] = "openvswitch"
            if row["ofport"] is not None:
                md["OfPort"] = row["ofport"]
            if row["external_ids"]:
                md["ExtID"] = row["external_ids"]
            ovs_md = {}
            if row["options"]:
                ovs_md["Options"] = row["options"]
            if row["other_config"]:
                ovs_md["OtherConfig"] = row["other_config"]
            if row.get("error"):
                ovs_md["Error"] = row["error"]       # the Interface error column (audits: ovs-interface-error)
            if ovs_md:
                md["Ovs"] = ovs_md
            if otype in TUNNELS or "remote_ip" in row["options"]:
                if row["options"].get("local_ip"):
                    md["LocalIP"] = row["options"]["local_ip"]
                if row["options"].get("remote_ip"):
                    md["RemoteIP"] = row["options"]["remote_ip"]
            low = {"Name": row["name"], "Type": otype or "system"}
            if row["mac"]:
                low["MAC"] = row["mac"]
            rec.layers["ovs_low"] = (PRIO_OVS_LOW, low)
            rec.owners.pop("ovs_low", None)
            topo.set_layer(rec, "ovs", PRIO_OVS, md, owner=bnode)
            pnode = self.ports[puuid]
            if rec.node is not None:
                for e in g.in_edges(rec.node):
                    if e.Metadata.get("RelationType") == "layer2" and e.Parent != pnode.ID and \
                            g.nodes.get(e.Parent) is not None and g.nodes[e.Parent].Metadata.get("Type") == "ovsport":
                        g.del_edge(e)
                if g.find_link(pnode, rec.node, "layer2") is None:
                    g.link(pnode, rec.node, {"RelationType": "layer2"})

        # patch peers
        by_name = {row["name"]: u for u, row in self.iface_rows.items()}
        for uuid, row in self.iface_rows.items():
            if row["type"] != "patch":
                continue
            peer = by_name.get(row["options"].get("peer", ""))
            rec, prec = self.ifaces.get(uuid), self.ifaces.get(peer) if peer else None
            if rec is None or prec is None or rec.node is None or prec.node is None:
                continue
            if uuid < peer:
                topo.layer2(rec.node, prec.node, {"Type": "patch"})
        self.bridge_of, self.port_of = bridge_of, port_of

    def _upsert(self, table, uuid, md):
        g = self.graph
        node = table.get(uuid)
        if node is None or node.ID not in g.nodes:
            node = g.new_node(metadata=md)
            table[uuid] = node
        else:
            changes = {k: v for k, v in md.items() if node.Metadata.get(k) != v}
            deletes = [k for k in ("ExtID", "Vlans", "BondMode", "LACP") if k in node.Metadata and k not in md]
            if changes or deletes:
                g.update_metadata(node, changes, deletes=deletes)
        return node

    def _drop_iface(self, uuid):
        rec = self.ifaces.pop(uuid, None)
        self.iface_rows.pop(uuid, None)
        if rec is None:
            return
        rec.ovs_uuid = None
        rec.layers.pop("ovs_low", None)
        node = rec.node
        if node is not None and node.ID in self.graph.nodes:
            for e in self.graph.in_edges(node):
                parent = self.graph.nodes.get(e.Parent)
                if parent is not None and parent.Metadata.get("Type") == "ovsport":
                    self.graph.del_edge(e)
        # patch links go with the OVS layer
        if node is not None and node.ID in self.graph.nodes:
            for e in self.graph.out_edges(node) + self.graph.in_edges(node):
                if e.Metadata.get("Type") == "patch":
                    self.graph.del_edge(e)
        self.topo.drop_layer(rec, "ovs")
