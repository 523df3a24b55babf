"""ovn probe (analyzer): OVN's Northbound database as graph nodes, as upstream's
topology/probes/ovn does.

Each row of the tables below is a node `{Type: <table as upstream's struct name: LogicalSwitch,
LogicalSwitchPort, LogicalRouter, LogicalRouterPort, ACL, NAT, ...>, Manager: "ovn", UUID, Name
(the row's name, else its UUID), OVN: {<columns in upstream's field names>, <map>Meta}}`, ID
UUIDv5(uuid). Links: a row referencing another (Logical_Switch.ports, Logical_Router.nat, ...)
-> RelationType "ovn"; a switch port whose options:router-port names a router port -> "layer2";
an interface whose `ExtID.iface-id` names a logical switch port -> "mapping" (interface -> port).
With `analyzer.topology.ovn.sb_address` set, a port is only mapped to the interfaces of the agent
whose host is the port's chassis in the Southbound Port_Binding (Chassis hostname or name), and a
bound port carries `Chassis` (its name); without it, every interface naming the port is mapped
(upstream's behaviour).

Both databases are monitored (common/ovsdb_idl.py, one thread each); changes reach the graph on
the loop. Unreachable, the probe retries every second and its status says why.
"""

import asyncio
import logging

from ..common.ids import gen_id, gen_link_id
from ..common.parts import Probe
from ..config import ConfigError
from ..flow.ovssflow import ovsdb_remote
from ..graph.events import GraphListener
from ..common.ovsdb_idl import IdlWatcher

log = logging.getLogger(__name__)

# NB tables shown, their reference columns (-> "ovn" links to the referenced row)
NB_TABLES = {
    "Logical_Switch": ("acls", "dns_records", "forwarding_groups", "load_balancer", "ports", "qos_rules"),
    "Logical_Switch_Port": ("dhcpv4_options", "dhcpv6_options", "ha_chassis_group"),
    "Logical_Router": ("load_balancer", "nat", "policies", "ports", "static_routes"),
    "Logical_Router_Port": ("gateway_chassis", "ha_chassis_group"),
    "Logical_Router_Static_Route": (),
    "Logical_Router_Policy": (),
    "ACL": (),
    "NAT": (),
    "Port_Group": ("acls", "ports"),
    "Address_Set": (),
    "DHCP_Options": (),
    "Load_Balancer": (),
    "Gateway_Chassis": (),
    "QoS": (),
    "DNS": (),
}
SB_TABLES = ("Port_Binding", "Chassis")
MAPPING = "mapping"
# words libovsdb's modelgen writes as initialisms in field names
INITIALISMS = {"acl": "ACL", "acls": "ACLs", "dns": "DNS", "id": "ID", "ids": "IDs", "ip": "IP", "ips": "IPs",
               "mac": "MAC", "qos": "QOS", "ssl": "SSL", "uuid": "UUID", "tcp": "TCP", "udp": "UDP", "url": "URL"}


def field_name(column):
    """ovsdb column -> upstream's Go field name (external_ids -> ExternalIDs, mac -> MAC)."""
    if column == "_uuid":
        return "UUID"
    return "".join(INITIALISMS.get(w, w[:1].upper() + w[1:]) for w in column.split("_") if w)


def type_name(table):
    """Logical_Switch_Port -> LogicalSwitchPort, ACL -> ACL, QoS -> QoS."""
    return "".join(w if w[:1].isupper() else w.capitalize() for w in table.split("_"))


def ovn_metadata(table, uuid, row):
    ovn = {"UUID": uuid}
    for col, value in sorted(row.items()):
        if value in ("", [], {}, False, 0, None):
            continue      # omitempty, as upstream's JSON
        ovn[field_name(col)] = value
        if isinstance(value, dict):
            ovn[field_name(col) + "Meta"] = dict(value)
    name = row.get("name")
    return {"Type": type_name(table), "Manager": "ovn", "UUID": uuid,
            "Name": name if isinstance(name, str) and name else uuid, "OVN": ovn}


def create(analyzer):
    cfg = analyzer.config
    address = cfg.get_string("analyzer.topology.ovn.address") or "unix:///var/run/ovn/ovnnb_db.sock"
    sb_address = cfg.get_string("analyzer.topology.ovn.sb_address")
    ssl_files = {k: cfg.get_string("analyzer.topology.ovn." + k) for k in ("cert", "key", "cacert")}
    for remote in (address, sb_address):
        if remote and ovsdb_remote(remote).startswith("ssl:") and not all(ssl_files.values()):
            raise ConfigError("analyzer.topology.ovn: an ssl: address needs cert, key and cacert")
    if any(ssl_files.values()) and not ovsdb_remote(address).startswith("ssl:"):
        raise ConfigError("analyzer.topology.ovn.cert/key/cacert: only used with an ssl: address, not %r" % address)
    return OvnProbe(analyzer.graph, address, sb_address, ssl_files)


class OvnProbe(Probe, GraphListener):
    stop_blocks = True      # joins the IDL threads

    def __init__(self, graph, address, sb_address="", ssl_files=None):
        self.graph = graph
        self.address = address
        self.sb_address = sb_address
        self.ssl_files = ssl_files or {}
        self.watchers = []
        self.state = {"nb": ("starting", "")}
        if sb_address:
            self.state["sb"] = ("starting", "")
        self.rows = {t: {} for t in NB_TABLES}      # table -> uuid -> row
        self.nodes = {}                             # uuid -> node
        self.table_of = {}                          # uuid -> table
        self.referrers = {}                         # uuid -> set(uuids of rows referencing it)
        self.lsp_by_name = {}                       # logical switch port name -> uuid
        self.lrp_by_name = {}                       # logical router port name -> uuid
        self.ifaces = {}                            # iface-id -> set(node IDs)
        self.iface_of = {}                          # node ID -> its iface-id
        self.bindings = {}                          # logical port name -> chassis uuid
        self.chassis = {}                           # chassis uuid -> (name, hostname)
        self.loop = None
        self._dirty_ports = set()                   # LSP names whose mapping links need a look
        self._moved_ifaces = set()                  # interfaces whose iface-id changed
        self._sb_rows = {"Port_Binding": {}, "Chassis": {}}
        self._scheduled = False
        self.synced = asyncio.Event()

    # ---- lifecycle ---------------------------------------------------------------------------------
    def start(self):
        self.loop = asyncio.get_running_loop()
        with self.graph.lock:
            for node in list(self.graph.nodes.values()):
                self._track_iface(node)
        self.graph.add_listener(self)
        self._watch("nb", self.address, "OVN_Northbound", list(NB_TABLES), self._on_nb)
        if self.sb_address:
            self._watch("sb", self.sb_address, "OVN_Southbound", list(SB_TABLES), self._on_sb)

    def _watch(self, key, address, database, tables, sink):
        def on_state(state, error):
            if (state, error) != self.state.get(key):
                log.info("ovn %s: %s %s", key, state, error)
            self.state[key] = (state, error)
        w = IdlWatcher(self.loop, ovsdb_remote(address), database, tables, sink, on_state, self.ssl_files)
        self.watchers.append(w)
        w.start()

    def stop(self):
        for w in self.watchers:
            w.stop()
        for w in self.watchers:
            w.join(timeout=3)
        self.watchers = []
        self.graph.remove_listener(self)

    def status(self):
        nb_state, nb_error = self.state["nb"]
        st = {"State": nb_state, "Address": self.address, "Nodes": len(self.nodes)}
        if nb_error:
            st["Error"] = nb_error
        if self.sb_address:
            sb_state, sb_error = self.state["sb"]
            st["Southbound"] = {"State": sb_state, "Address": self.sb_address, "Bindings": len(self.bindings)}
            if sb_error:
                st["Southbound"]["Error"] = sb_error
        return st

    # ---- Northbound rows -> nodes --------------------------------------------------------------------
    def _on_nb(self, full, changes):
        try:
            with self.graph.lock:
                self._apply_nb(full, changes)
        except Exception:
            log.exception("ovn: cannot apply a Northbound update")
        self.synced.set()

    def _apply_nb(self, full, changes):
        g = self.graph
        if full:
            seen = {uuid for _t, uuid, row in changes if row is not None}
            for uuid in [u for u in self.nodes if u not in seen]:
                self._drop(uuid)
            for node in [n for n in g.nodes.values() if n.Metadata.get("Manager") == "ovn"
                         and n.Origin == g.origin and n.Metadata.get("UUID") not in seen]:
                g.del_node(node)      # left in the store by an earlier run
        touched = set()
        for table, uuid, row in changes:
            if row is None:
                self._drop(uuid)
                continue
            self._upsert(table, uuid, row)
            touched.add(uuid)
            touched.update(self.referrers.get(uuid, ()))
        for uuid in touched:
            if uuid in self.nodes:
                self._link_refs(uuid)
        for uuid in touched:
            if self.table_of.get(uuid) in ("Logical_Switch_Port", "Logical_Router_Port"):
                self._link_router_ports(uuid)
        self._relink_ports()

    def _upsert(self, table, uuid, row):
        g = self.graph
        old = self.rows[table].get(uuid)
        self.rows[table][uuid] = row
        self.table_of[uuid] = table
        md = ovn_metadata(table, uuid, row)
        if table == "Logical_Switch_Port":
            self._index_name(self.lsp_by_name, old, row, uuid)
            chassis = self._chassis_of(row.get("name", ""))
            if chassis:
                md["Chassis"] = chassis[0]
            self._dirty_ports.add(row.get("name", ""))
            if old is not None and old.get("name") != row.get("name"):
                self._dirty_ports.add(old.get("name", ""))
        elif table == "Logical_Router_Port":
            self._index_name(self.lrp_by_name, old, row, uuid)
        node = self.nodes.get(uuid)
        if node is None or node.ID not in g.nodes:
            node = g.get_node(gen_id(uuid))
            if node is None:
                node = g.new_node(metadata=md, id=gen_id(uuid))
            self.nodes[uuid] = node
        if node.Metadata != md:
            g.set_metadata(node, md)

    @staticmethod
    def _index_name(index, old, row, uuid):
        if old is not None and index.get(old.get("name")) == uuid:
            del index[old["name"]]
        if row.get("name"):
            index[row["name"]] = uuid

    def _drop(self, uuid):
        table = self.table_of.pop(uuid, None)
        row = self.rows.get(table, {}).pop(uuid, None) if table else None
        if row is not None and table == "Logical_Switch_Port":
            if self.lsp_by_name.get(row.get("name")) == uuid:
                del self.lsp_by_name[row["name"]]
        if row is not None and table == "Logical_Router_Port":
            if self.lrp_by_name.get(row.get("name")) == uuid:
                del self.lrp_by_name[row["name"]]
            for lsp in list(self.rows["Logical_Switch_Port"]):
                self._link_router_ports(lsp)
        node = self.nodes.pop(uuid, None)
        if node is not None and node.ID in self.graph.nodes:
            self.graph.del_node(node)
        for refs in self.referrers.values():
            refs.discard(uuid)

    def _link_refs(self, uuid):
        """The "ovn" links from this row to the rows its reference columns name."""
        g = self.graph
        table, node = self.table_of[uuid], self.nodes[uuid]
        row = self.rows[table][uuid]
        wanted = set()
        for col in NB_TABLES[table]:
            value = row.get(col)
            for ref in value if isinstance(value, list) else [value] if value else []:
                self.referrers.setdefault(ref, set()).add(uuid)
                child = self.nodes.get(ref)
                if child is not None:
                    wanted.add(child.ID)
        have = set()
        for e in g.out_edges(node):
            if e.Metadata.get("RelationType") == "ovn":
                if e.Child in wanted:
                    have.add(e.Child)
                else:
                    g.del_edge(e)
        for child_id in wanted - have:      # new_edge, not link: no scan of the parent's edges per child
            g.new_edge(node, g.nodes[child_id], {"RelationType": "ovn"}, id=gen_link_id(node.ID, child_id, "ovn"))

    def _link_router_ports(self, uuid):
        """A switch port of type router -> the router port its options:router-port names (layer2)."""
        g = self.graph
        table = self.table_of.get(uuid)
        if table == "Logical_Router_Port":
            name = self.rows[table][uuid].get("name")
            for lsp, row in self.rows["Logical_Switch_Port"].items():
                if row.get("options", {}).get("router-port") == name:
                    self._link_router_ports(lsp)
            return
        if table != "Logical_Switch_Port":
            return
        node = self.nodes[uuid]
        peer = self.lrp_by_name.get(self.rows[table][uuid].get("options", {}).get("router-port"))
        peer_node = self.nodes.get(peer) if peer else None
        for e in g.out_edges(node):
            if e.Metadata.get("RelationType") == "layer2" and (peer_node is None or e.Child != peer_node.ID):
                g.del_edge(e)
        if peer_node is not None:
            g.link(node, peer_node, {"RelationType": "layer2"})

    # ---- Southbound: where each port is bound ----------------------------------------------------------
    def _on_sb(self, full, changes):
        try:
            with self.graph.lock:
                self._apply_sb(full, changes)
        except Exception:
            log.exception("ovn: cannot apply a Southbound update")

    def _apply_sb(self, full, changes):
        if full:
            self._sb_rows = {"Port_Binding": {}, "Chassis": {}}
        rows = self._sb_rows
        for table, uuid, row in changes:
            if row is None:
                rows[table].pop(uuid, None)
            else:
                rows[table][uuid] = row
        self.chassis = {u: (r.get("name", ""), r.get("hostname", "")) for u, r in rows["Chassis"].items()}
        bindings = {}
        for r in rows["Port_Binding"].values():
            ch = r.get("chassis")
            ch = ch[0] if isinstance(ch, list) and ch else ch if isinstance(ch, str) else None
            if ch and r.get("logical_port"):
                bindings[r["logical_port"]] = ch
        changed = {p for p in set(bindings) | set(self.bindings)
                   if self.chassis.get(bindings.get(p)) != self.chassis.get(self.bindings.get(p))}
        changed |= {p for p in bindings if bindings[p] != self.bindings.get(p)}
        self.bindings = bindings
        for name in changed:
            uuid = self.lsp_by_name.get(name)
            if uuid is not None:
                self._upsert("Logical_Switch_Port", uuid, self.rows["Logical_Switch_Port"][uuid])
            self._dirty_ports.add(name)
        self._relink_ports()

    def _chassis_of(self, lsp_name):
        if not self.sb_address:
            return None
        return self.chassis.get(self.bindings.get(lsp_name))

    # ---- interfaces (from agents) -> logical switch ports ------------------------------------------------
    def _track_iface(self, node):
        md = node.Metadata
        ext = md.get("ExtID")
        ifid = ext.get("iface-id") if isinstance(ext, dict) else None
        if md.get("Manager") == "ovn":
            return
        old = self.iface_of.get(node.ID)
        if old == ifid:
            return
        if old is not None:
            self.ifaces.get(old, set()).discard(node.ID)
            self.iface_of.pop(node.ID, None)
            self._moved_ifaces.add(node.ID)
        if ifid:
            self.ifaces.setdefault(ifid, set()).add(node.ID)
            self.iface_of[node.ID] = ifid
            self._dirty_ports.add(ifid)
        self._schedule()

    def on_node_added(self, node):
        self._track_iface(node)

    def on_node_updated(self, node, ops):
        self._track_iface(node)

    def on_node_deleted(self, node):
        ifid = self.iface_of.pop(node.ID, None)
        if ifid is not None:
            self.ifaces.get(ifid, set()).discard(node.ID)

    def _schedule(self):
        if not self._scheduled and self.loop is not None:
            self._scheduled = True
            self.loop.call_soon(self._relink_soon)

    def _relink_soon(self):
        self._scheduled = False
        with self.graph.lock:
            self._relink_ports()

    def _relink_ports(self):
        g = self.graph
        dirty, self._dirty_ports = self._dirty_ports, set()
        for name in dirty:
            uuid = self.lsp_by_name.get(name)
            lsp = self.nodes.get(uuid) if uuid else None
            chassis = self._chassis_of(name)
            wanted = set()
            for nid in self.ifaces.get(name, ()):
                iface = g.nodes.get(nid)
                if iface is not None and lsp is not None and \
                        (not self.sb_address or (chassis is not None and iface.Host in chassis)):
                    wanted.add(nid)
            if lsp is not None:
                for e in g.in_edges(lsp):
                    if e.Metadata.get("RelationType") == MAPPING and e.Parent not in wanted:
                        g.del_edge(e)
                for nid in wanted:
                    g.link(g.nodes[nid], lsp, {"RelationType": MAPPING})
        for nid in self._moved_ifaces:       # an interface naming another port keeps no stale link
            iface = g.nodes.get(nid)
            if iface is None:
                continue
            uuid = self.lsp_by_name.get(self.iface_of.get(nid))
            keep = self.nodes[uuid].ID if uuid in self.nodes else None
            for e in g.out_edges(iface):
                if e.Metadata.get("RelationType") == MAPPING and e.Child != keep:
                    g.del_edge(e)
        self._moved_ifaces = set()
