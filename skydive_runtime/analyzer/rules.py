"""Node rules and edge rules: their live effect on the analyzer graph (spec §1.7,
upstream topology/enhancers/topology_manager.go).

- noderule `create`: a node with ID UUIDv5(OID, Type/Name), `TID` = that ID, Host "", Probe
  "fabric" for Type fabric; deleting the rule deletes the node.
- noderule `update`: the rule metadata is added to every node matched by its Query, again each
  time matching nodes appear or change; deleting the rule removes those keys.
- edgerule: the first node of Src is linked to the first node of Dst (layer2: rule metadata;
  ownership: ownership link; other: link with the rule metadata); retried on graph changes until
  both ends exist; deleting the rule removes the link.
"""

import asyncio
import logging

from ..common.ids import gen_id
from ..graph import GraphError
from ..graph.events import GraphListener
from ..api.query import QueryError

log = logging.getLogger(__name__)


class TopologyRules(GraphListener):
    def __init__(self, graph, engine, resources):
        self.graph = graph
        self.engine = engine
        self.resources = resources
        self.applied_updates = {}    # rule UUID -> set(node IDs) it changed
        self.links = {}              # edgerule UUID -> edge ID
        self._scheduled = False
        self._applying = False

    def start(self):
        self.resources.watchers.append(self)
        self.graph.add_listener(self)
        for rule in list(self.resources.list("noderule").values()):
            self._rule_created("noderule", rule)
        for rule in list(self.resources.list("edgerule").values()):
            self._rule_created("edgerule", rule)

    def stop(self):
        if self in self.resources.watchers:
            self.resources.watchers.remove(self)
        self.graph.remove_listener(self)

    # ---- resource watcher -------------------------------------------------------------------------
    def on_resource_created(self, kind, rule):
        if kind in ("noderule", "edgerule"):
            self._rule_created(kind, rule)

    def on_resource_deleted(self, kind, rule):
        if kind == "noderule":
            self._noderule_deleted(rule)
        elif kind == "edgerule":
            self._edgerule_deleted(rule)

    def _rule_created(self, kind, rule):
        self._applying = True
        try:
            if kind == "noderule":
                if rule.get("Action") == "create":
                    self._create_node(rule)
                else:
                    self._apply_update(rule)
            else:
                self._apply_edge(rule)
        finally:
            self._applying = False

    # ---- node rules -------------------------------------------------------------------------------
    @staticmethod
    def node_id(rule):
        md = rule.get("Metadata") or {}
        return gen_id(md.get("Type", ""), md.get("Name", ""))

    def _create_node(self, rule):
        nid = self.node_id(rule)
        if nid in self.graph.nodes:
            return
        md = dict(rule.get("Metadata") or {})
        md["TID"] = nid
        if md.get("Type") == "fabric":
            md["Probe"] = "fabric"
        try:
            self.graph.new_node(md, id=nid, host="")
        except GraphError as exc:
            log.warning("noderule %s: %s", rule.get("UUID"), exc)

    def _matching(self, query):
        try:
            return self.engine.nodes(query)
        except QueryError as exc:
            log.warning("rule query %r failed: %s", query, exc)
            return []

    def _apply_update(self, rule):
        md = rule.get("Metadata") or {}
        if not md or not rule.get("Query"):
            return
        done = self.applied_updates.setdefault(rule["UUID"], set())
        for node in self._matching(rule["Query"]):
            if node.ID not in self.graph.nodes:
                continue
            if any(node.Metadata.get(k) != v for k, v in md.items()):
                self.graph.update_metadata(node, md)
            done.add(node.ID)

    def _noderule_deleted(self, rule):
        if rule.get("Action") == "create":
            node = self.graph.nodes.get(self.node_id(rule))
            if node is not None:
                self.graph.del_node(node)
            return
        keys = list((rule.get("Metadata") or {}).keys())
        for nid in self.applied_updates.pop(rule.get("UUID"), ()):
            node = self.graph.nodes.get(nid)
            if node is not None and keys:
                self.graph.update_metadata(node, {}, deletes=keys)

    # ---- edge rules --------------------------------------------------------------------------------
    def _apply_edge(self, rule):
        eid = self.links.get(rule["UUID"])
        if eid is not None and eid in self.graph.edges:
            return
        srcs = self._matching(rule.get("Src", ""))
        dsts = self._matching(rule.get("Dst", ""))
        srcs = [n for n in srcs if n.ID in self.graph.nodes]
        dsts = [n for n in dsts if n.ID in self.graph.nodes]
        if not srcs or not dsts:
            return
        md = dict(rule.get("Metadata") or {})
        if md.get("RelationType") == "ownership":
            md = {"RelationType": "ownership"}
        try:
            edge = self.graph.link(srcs[0], dsts[0], md)
        except GraphError as exc:
            log.warning("edgerule %s: %s", rule.get("UUID"), exc)
            return
        self.links[rule["UUID"]] = edge.ID

    def _edgerule_deleted(self, rule):
        eid = self.links.pop(rule.get("UUID"), None)
        if eid is not None and eid in self.graph.edges:
            self.graph.del_edge(eid)

    # ---- graph listener: re-apply when nodes appear or change -------------------------------------------
    def _changed(self, *args):
        if self._applying or self._scheduled:
            return
        if not self.resources.list("noderule") and not self.resources.list("edgerule"):
            return
        self._scheduled = True
        try:
            asyncio.get_event_loop().call_soon(self.reapply)
        except RuntimeError:
            self._scheduled = False

    on_node_added = on_node_updated = on_edge_deleted = on_node_deleted = _changed

    def reapply(self):
        self._scheduled = False
        self._applying = True
        try:
            for rule in list(self.resources.list("noderule").values()):
                if rule.get("Action") == "update":
                    self._apply_update(rule)
                else:
                    self._create_node(rule)
            for rule in list(self.resources.list("edgerule").values()):
                self._apply_edge(rule)
        finally:
            self._applying = False
