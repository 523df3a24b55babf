"""fabric probe (analyzer, always on): static nodes and links from `analyzer.topology.fabric`, as
upstream's topology/probes/fabric.

    - TOR1[Name=tor1] -> [color=red] PORT1[Name=p1, MTU=1500]    ownership + layer2 {Type: fabric, color: red}
    - PORT1 --> PORT2                                            layer2 only
    - PORT1 --> *[Type=host]/eth0                                layer2 to each host's eth0, as they appear

A node definition is `DEFNAME[key=value, ...]`: ID = UUIDv5(OID, "fabric" + DEFNAME), metadata
`Name` = DEFNAME unless given, the attributes (string values, as upstream), `Type` `device` unless
given, `Probe: fabric`, and `TID` = the ID. A wildcard child `*[parent attributes]/child[attributes]`
links the fabric node to every node matching the child attributes whose parent (by any edge)
matches the parent ones, each time such an edge appears. A bad definition stops the analyzer with
a message naming it. Fabric nodes restored from the store that no definition names any more are
removed at start (the nodes noderules made are left alone).
"""

import asyncio
import logging

from ..common.ids import gen_id, gen_link_id
from ..common.parts import Probe
from ..config import ConfigError

log = logging.getLogger(__name__)

KEY = "analyzer.topology.fabric"


def create(analyzer):
    def rule_nodes():
        from .rules import TopologyRules
        rules = analyzer.resources.list("noderule").values() if analyzer.resources is not None else ()
        return {TopologyRules.node_id(r) for r in rules if r.get("Action") == "create"}
    return FabricProbe(analyzer.graph, parse_links(analyzer.config.get_list(KEY)), rule_nodes)


def _attributes(text, md, where):
    for pair in text.split(","):
        pair = pair.strip()
        if not pair:
            continue
        kv = pair.split("=")
        if len(kv) != 2 or not kv[0].strip():
            raise ConfigError("%s: attributes must be key=value pairs: %r in %r" % (KEY, pair, where))
        md[kv[0].strip().strip('"')] = kv[1].strip().strip('"')
    return md


def _node_def(text, where):
    """'NAME[k=v, ...]' -> (NAME, metadata)."""
    text = text.strip()
    name, attrs = text, ""
    if "[" in text:
        if not text.endswith("]") or text.count("[") != 1 or text.count("]") != 1:
            raise ConfigError("%s: cannot parse the node definition %r in %r" % (KEY, text, where))
        name, attrs = text[:-1].split("[", 1)
        name = name.strip()
    if not name or "]" in name:
        raise ConfigError("%s: cannot parse the node definition %r in %r" % (KEY, text, where))
    md = {} if name == "*" else {"Name": name}
    return name, _attributes(attrs, md, where)


class Link:
    __slots__ = ("parent", "child", "metadata", "layer2_only", "wildcard")

    def __init__(self, parent, child, metadata, layer2_only, wildcard=None):
        self.parent = parent          # (defname, metadata)
        self.child = child            # (defname, metadata), None for a wildcard
        self.metadata = metadata      # the layer2 edge's
        self.layer2_only = layer2_only
        self.wildcard = wildcard      # (parent metadata, child metadata)


def parse_link(text):
    if not isinstance(text, str):
        raise ConfigError("%s: expected link definitions (strings), got %r" % (KEY, text))
    layer2_only = "-->" in text
    ends = text.split("-->") if layer2_only else text.split("->")
    if len(ends) != 2 or not ends[0].strip() or not ends[1].strip():
        raise ConfigError("%s: a link definition has two ends (A -> B or A --> B): %r" % (KEY, text))
    parent_def, child_def = ends[0].strip(), ends[1].strip()
    metadata = {"Type": "fabric"}
    if child_def.startswith("["):
        end = child_def.find("]")
        if end < 0:
            raise ConfigError("%s: unterminated link attributes in %r" % (KEY, text))
        _attributes(child_def[1:end], metadata, text)
        child_def = child_def[end + 1:].strip()
        if not child_def:
            raise ConfigError("%s: a link definition has two ends (A -> B or A --> B): %r" % (KEY, text))
    if parent_def.startswith("*"):
        raise ConfigError("%s: a wildcard node cannot be the parent of a link: %r" % (KEY, text))
    parent = _node_def(parent_def, text)
    if child_def.startswith("*"):
        parts = child_def.split("/", 1)
        if len(parts) != 2 or not parts[1].strip():
            raise ConfigError("%s: a wildcard end is *[parent attributes]/child: %r" % (KEY, text))
        wildcard = (_node_def(parts[0], text)[1], _node_def(parts[1], text)[1])
        return Link(parent, None, metadata, True, wildcard)
    return Link(parent, _node_def(child_def, text), metadata, layer2_only)


def parse_links(texts):
    return [parse_link(t) for t in texts]


def node_id(defname):
    return gen_id("fabric" + defname)


def _matches(node, md):
    return all(node.Metadata.get(k) == v for k, v in md.items())


class FabricProbe(Probe):
    def __init__(self, graph, links, rule_nodes=set):
        self.graph = graph
        self.links = links
        self.rule_nodes = rule_nodes      # IDs of the nodes noderules made (Probe fabric too)
        self.defs = {}           # node ID -> metadata at its first definition
        for link in links:
            for end in (link.parent, link.child):
                if end is not None and node_id(end[0]) not in self.defs:
                    md = dict(end[1])
                    md.setdefault("Type", "device")
                    self.defs[node_id(end[0])] = md
        self.wildcards = [(node_id(link.parent[0]), link) for link in links if link.wildcard]
        self._pending = []
        self._loop = None

    def start(self):
        self._loop = asyncio.get_running_loop()
        g = self.graph
        keep = self.rule_nodes()
        for node in [n for n in g.nodes.values() if n.Metadata.get("Probe") == "fabric"
                     and n.ID not in self.defs and n.ID not in keep and n.Origin == g.origin]:
            g.del_node(node)          # defined by a former configuration
        for nid, md in self.defs.items():
            if g.get_node(nid) is None:
                g.new_node(metadata=dict(md, Probe="fabric", TID=nid), id=nid)
        for link in self.links:
            if link.wildcard is None:
                parent, child = g.get_node(node_id(link.parent[0])), g.get_node(node_id(link.child[0]))
                if not link.layer2_only:
                    self._link(parent, child, {"RelationType": "ownership"})
                self._layer2(parent, child, link.metadata)
        if self.wildcards:
            g.add_listener(self)
            for edge in list(g.edges.values()):
                self.on_edge_added(edge)
            self._flush()

    def stop(self):
        if self.wildcards:
            self.graph.remove_listener(self)

    def status(self):
        return {"Nodes": len(self.defs), "Links": len(self.links)}

    def _link(self, parent, child, md):
        g = self.graph
        if g.find_link(parent, child, md["RelationType"]) is None and \
                gen_link_id(parent.ID, child.ID, md["RelationType"]) not in g.edges:
            g.link(parent, child, md)

    def _layer2(self, parent, child, md):
        if self.graph.find_link(child, parent, "layer2") is None:
            self._link(parent, child, dict(md, RelationType="layer2"))

    # ---- wildcard links: on every new edge whose ends match ---------------------------------------
    def on_edge_added(self, edge):
        g = self.graph
        parent, child = g.nodes.get(edge.Parent), g.nodes.get(edge.Child)
        if parent is None or child is None:
            return
        for fabric_id, link in self.wildcards:
            if _matches(parent, link.wildcard[0]) and _matches(child, link.wildcard[1]):
                if not self._pending and self._loop is not None:
                    self._loop.call_soon(self._flush)
                self._pending.append((fabric_id, child.ID, link.metadata))

    def _flush(self):
        pending, self._pending = self._pending, []
        g = self.graph
        for fabric_id, child_id, md in pending:
            fabric, child = g.get_node(fabric_id), g.get_node(child_id)
            if fabric is not None and child is not None:
                self._layer2(fabric, child, md)
