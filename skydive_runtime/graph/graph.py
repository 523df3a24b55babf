"""The live graph: nodes, edges, adjacency, indexes and events."""

import functools
import threading

from ..common.ids import gen_id, gen_link_id
from ..common.timeutil import now_ms
from .elements import Edge, Node
from .events import EventBus
from .index import DEFAULT_EDGE_KEYS, DEFAULT_NODE_KEYS, ValueIndex
from .metadata import del_in, diff_ops, set_in


class GraphError(ValueError):
    pass


_ADJ_LIST_MAX = 32


def _adj_add(adj, node_id, edge):
    m = adj.get(node_id)
    if m is None:
        adj[node_id] = [edge]
    elif isinstance(m, list):
        m.append(edge)
        if len(m) > _ADJ_LIST_MAX:
            adj[node_id] = {e.ID: e for e in m}
    else:
        m[edge.ID] = edge


def _adj_remove(adj, node_id, edge):
    m = adj.get(node_id)
    if m is None:
        return
    if isinstance(m, list):
        for i, e in enumerate(m):
            if e is edge:
                del m[i]
                break
    else:
        m.pop(edge.ID, None)
    if not m:
        del adj[node_id]


def _locked(method):
    """Writes hold graph.lock: a query reading the graph from a worker thread holds it too."""
    @functools.wraps(method)
    def wrapper(self, *args, **kw):
        with self.lock:
            return method(self, *args, **kw)
    return wrapper


class Graph:
    def __init__(self, host_id="", origin="", node_index_keys=DEFAULT_NODE_KEYS,
                 edge_index_keys=DEFAULT_EDGE_KEYS):
        self.host_id = host_id
        self.origin = origin
        self.nodes = {}
        self.edges = {}
        # adjacency: node id -> edges where the node is Parent (_out) / Child (_in); a list
        # while small (most nodes have a handful of edges), a dict {edge id: Edge} when large
        self._out = {}
        self._in = {}
        self.node_index = ValueIndex(node_index_keys)
        self.edge_index = ValueIndex(edge_index_keys)
        self.events = EventBus()
        self.lock = threading.RLock()
        # node id -> the origins publishing that one node (only nodes published by two or more,
        # e.g. a switch seen by two agents): it stays while one of them still has it
        self.claims = {}

    # ---- listeners -------------------------------------------------------------------------
    def add_listener(self, listener):
        self.events.add(listener)

    def remove_listener(self, listener):
        self.events.remove(listener)

    # ---- reads -----------------------------------------------------------------------------
    def get_node(self, node_id):
        return self.nodes.get(node_id)

    def get_edge(self, edge_id):
        return self.edges.get(edge_id)

    def out_edges(self, node):
        return list(self.iter_out_edges(node if isinstance(node, str) else node.ID))

    def in_edges(self, node):
        return list(self.iter_in_edges(node if isinstance(node, str) else node.ID))

    def iter_out_edges(self, node_id):
        m = self._out.get(node_id)
        if m is None:
            return ()
        return m if isinstance(m, list) else m.values()

    def iter_in_edges(self, node_id):
        m = self._in.get(node_id)
        if m is None:
            return ()
        return m if isinstance(m, list) else m.values()

    def children(self, node, edge_filter=None):
        return [self.nodes[e.Child] for e in self.iter_out_edges(node.ID)
                if edge_filter is None or edge_filter.match(e)]

    def parents(self, node, edge_filter=None):
        return [self.nodes[e.Parent] for e in self.iter_in_edges(node.ID)
                if edge_filter is None or edge_filter.match(e)]

    def _lookup(self, elements, index, flt):
        if flt is None:
            return list(elements.values())
        cands = index.candidates(flt.equalities())
        if cands is None:
            return [e for e in elements.values() if flt.match(e)]
        out = []
        for eid in cands:
            e = elements.get(eid)
            if e is not None and flt.match(e):
                out.append(e)
        return out

    def lookup_nodes(self, flt=None):
        return self._lookup(self.nodes, self.node_index, flt)

    def lookup_edges(self, flt=None):
        return self._lookup(self.edges, self.edge_index, flt)

    def lookup_first_node(self, flt):
        found = self.lookup_nodes(flt)
        return found[0] if found else None

    def to_dict(self):
        return {"Nodes": [n.to_dict() for n in self.nodes.values()],
                "Edges": [e.to_dict() for e in self.edges.values()]}

    # ---- node writes -----------------------------------------------------------------------
    def new_node(self, metadata=None, id=None, host=None, origin=None, t=None):
        t = t or now_ms()
        node = Node(id or gen_id(), dict(metadata) if metadata is not None else {},
                    host=self.host_id if host is None else host,
                    origin=self.origin if origin is None else origin,
                    created_at=t, updated_at=t, revision=1)
        return self.add_node(node)

    @_locked
    def add_node(self, node):
        if node.ID in self.nodes:
            raise GraphError("Node ID conflict")
        self.nodes[node.ID] = node
        self.node_index.add(node)
        self.events.emit("on_node_added", node)
        return node

    def _touch(self, element, t):
        element.Revision += 1
        element.UpdatedAt = t or now_ms()

    @_locked
    def _mutate(self, element, mutator, t=None):
        """Apply mutator(metadata) -> ops; bump revision and emit when ops is non-empty."""
        index = self.node_index if element.kind == "node" else self.edge_index
        index.remove(element)
        try:
            ops = mutator(element.Metadata)
        finally:
            index.add(element)
        if not ops:
            return False
        self._touch(element, t)
        self.events.emit("on_%s_updated" % element.kind, element, ops)
        return True

    def set_metadata(self, element, metadata, t=None):
        """Replace the whole metadata. Returns True when it changed."""
        def mutate(md):
            ops = diff_ops(md, metadata)
            if ops:
                md.clear()
                md.update(metadata)
            return ops
        return self._mutate(element, mutate, t)

    def add_metadata(self, element, key, value, t=None):
        return self.update_metadata(element, {key: value}, t=t)

    def update_metadata(self, element, changes, t=None, deletes=()):
        """Set several (dotted) keys and delete others in one revision."""
        def mutate(md):
            ops = []
            for k, v in changes.items():
                if set_in(md, k, v):
                    ops.append((1, k, v))
            for k in deletes:
                if del_in(md, k):
                    ops.append((2, k, None))
            return ops
        return self._mutate(element, mutate, t)

    def del_metadata(self, element, key, t=None):
        return self.update_metadata(element, {}, t=t, deletes=(key,))

    def replace_node(self, node, t=None):
        """Publisher-style update: take metadata, UpdatedAt and Revision from `node`."""
        cur = self.nodes.get(node.ID)
        if cur is None:
            raise GraphError("Node %s not found" % node.ID)
        return self._replace(cur, node)

    def replace_edge(self, edge):
        cur = self.edges.get(edge.ID)
        if cur is None:
            raise GraphError("Edge %s not found" % edge.ID)
        return self._replace(cur, edge)

    @_locked
    def _replace(self, cur, new):
        index = self.node_index if cur.kind == "node" else self.edge_index
        ops = diff_ops(cur.Metadata, new.Metadata)
        index.remove(cur)
        cur.Metadata = new.Metadata
        index.add(cur)
        cur.UpdatedAt = new.UpdatedAt or now_ms()
        cur.Revision = new.Revision
        self.events.emit("on_%s_updated" % cur.kind, cur, ops)
        return True

    @_locked
    def del_node(self, node, t=None):
        if isinstance(node, str):
            node = self.nodes.get(node)
        if node is None or node.ID not in self.nodes:
            return False
        t = t or now_ms()
        for e in list(self.iter_out_edges(node.ID)) + list(self.iter_in_edges(node.ID)):
            self.del_edge(e, t)
        del self.nodes[node.ID]
        self.node_index.remove(node)
        self._out.pop(node.ID, None)
        self._in.pop(node.ID, None)
        node.DeletedAt = t
        self.claims.pop(node.ID, None)
        self.events.emit("on_node_deleted", node)
        return True

    # ---- nodes shared by several origins ------------------------------------------------------
    @_locked
    def claim(self, node_id, origin):
        """`origin` publishes the existing node `node_id` too."""
        node = self.nodes.get(node_id)
        if node is None or not origin:
            return
        owners = self.claims.setdefault(node_id, {node.Origin})
        owners.add(origin)
        if len(owners) < 2:
            del self.claims[node_id]

    @_locked
    def release(self, node_id, origin, t=None):
        """`origin` no longer publishes `node_id`: deleted unless another origin still does."""
        node = self.nodes.get(node_id)
        if node is None:
            return False
        owners = self.claims.get(node_id) if origin else None
        others = owners - {origin} if owners else ()
        if not others:
            return self.del_node(node, t)
        owners.discard(origin)
        if node.Origin == origin:
            node.Origin = min(others)
        if len(owners) < 2:
            del self.claims[node_id]
        return False

    # ---- edge writes -----------------------------------------------------------------------
    @_locked
    def add_edge(self, edge):
        if edge.ID in self.edges:
            raise GraphError("Edge ID conflict")
        if edge.Parent not in self.nodes:
            raise GraphError("Parent node not found")
        if edge.Child not in self.nodes:
            raise GraphError("Child node not found")
        self.edges[edge.ID] = edge
        _adj_add(self._out, edge.Parent, edge)
        _adj_add(self._in, edge.Child, edge)
        self.edge_index.add(edge)
        self.events.emit("on_edge_added", edge)
        return edge

    def new_edge(self, parent, child, metadata, id=None, host=None, origin=None, t=None):
        t = t or now_ms()
        edge = Edge(id or gen_id(), parent.ID, child.ID, dict(metadata),
                    host=self.host_id if host is None else host,
                    origin=self.origin if origin is None else origin,
                    created_at=t, updated_at=t, revision=1)
        return self.add_edge(edge)

    def find_link(self, parent, child, relation_type):
        for e in self.iter_out_edges(parent.ID):
            if e.Child == child.ID and e.Metadata.get("RelationType") == relation_type:
                return e
        return None

    def link(self, parent, child, metadata, id=None, t=None):
        """Create (or return the existing) link; ownership stays unique per child."""
        rel = metadata.get("RelationType", "")
        existing = self.find_link(parent, child, rel)
        if existing is not None:
            return existing
        if rel == "ownership":
            for e in list(self.iter_in_edges(child.ID)):
                if e.Metadata.get("RelationType") == "ownership":
                    self.del_edge(e, t)
        return self.new_edge(parent, child, metadata, id=id or gen_link_id(parent.ID, child.ID, rel), t=t)

    def unlink(self, parent, child, relation_type, t=None):
        e = self.find_link(parent, child, relation_type)
        if e is not None:
            self.del_edge(e, t)
        return e is not None

    @_locked
    def del_edge(self, edge, t=None):
        if isinstance(edge, str):
            edge = self.edges.get(edge)
        if edge is None or edge.ID not in self.edges:
            return False
        del self.edges[edge.ID]
        _adj_remove(self._out, edge.Parent, edge)
        _adj_remove(self._in, edge.Child, edge)
        self.edge_index.remove(edge)
        edge.DeletedAt = t or now_ms()
        self.events.emit("on_edge_deleted", edge)
        return True

    # ---- bulk --------------------------------------------------------------------------------
    @_locked
    def del_origin(self, origin, t=None):
        """Delete every node (and its edges) and edge with this Origin."""
        t = t or now_ms()
        for e in [e for e in self.edges.values() if e.Origin == origin]:
            self.del_edge(e, t)
        for n in [n for n in self.nodes.values() if n.Origin == origin]:
            self.release(n.ID, origin, t)
        for node_id in [i for i, owners in self.claims.items() if origin in owners]:
            self.release(node_id, origin, t)

    @_locked
    def load(self, nodes, edges):
        """Insert elements without conflicts (existing IDs are skipped); edges with a missing end are skipped."""
        for n in nodes:
            if n.ID not in self.nodes:
                self.add_node(n)
        for e in edges:
            if e.ID not in self.edges and e.Parent in self.nodes and e.Child in self.nodes:
                self.add_edge(e)

    @classmethod
    def from_dict(cls, d, **kw):
        g = cls(**kw)
        g.load([Node.from_dict(n) for n in d.get("Nodes") or ()],
               [Edge.from_dict(e) for e in d.get("Edges") or ()])
        return g
