"""A read-only graph view over a list of element revisions (a history slice or a sub-graph).

Several revisions of one element may be present (a time slice `G.At(t, d)` returns every
revision alive in the window). `all_nodes()` returns every revision; adjacency goes by ID: the
edges of a node are the edge revisions whose Parent/Child is that ID, and the end of an edge is
every node revision with that ID. Lookups are linear scans (slices are small next to the live
graph, which has indexes).
"""


class RevisionsView:
    __slots__ = ("_nodes", "_edges", "_nodes_by_id", "_edges_by_id", "_out", "_in", "host_id")

    def __init__(self, nodes=(), edges=(), host_id=""):
        self._nodes = list(nodes)
        self._edges = list(edges)
        self._nodes_by_id = None
        self._edges_by_id = None
        self._out = None
        self._in = None
        self.host_id = host_id

    # ---- lazily built maps -----------------------------------------------------------------
    def _node_map(self):
        m = self._nodes_by_id
        if m is None:
            m = {}
            for n in self._nodes:
                lst = m.get(n.ID)
                if lst is None:
                    m[n.ID] = [n]
                else:
                    lst.append(n)
            self._nodes_by_id = m
        return m

    def _edge_maps(self):
        if self._out is None:
            out, inn, by_id = {}, {}, {}
            for e in self._edges:
                out.setdefault(e.Parent, []).append(e)
                inn.setdefault(e.Child, []).append(e)
                by_id.setdefault(e.ID, []).append(e)
            self._out, self._in, self._edges_by_id = out, inn, by_id
        return self._out, self._in

    # ---- read API (same as gremlin.view.LiveView) ------------------------------------------
    def all_nodes(self):
        return self._nodes

    def all_edges(self):
        return self._edges

    def lookup_nodes(self, flt=None):
        if flt is None:
            return list(self._nodes)
        return [n for n in self._nodes if flt.match(n)]

    def lookup_edges(self, flt=None):
        if flt is None:
            return list(self._edges)
        return [e for e in self._edges if flt.match(e)]

    @staticmethod
    def _latest(revs):
        if not revs:
            return None
        return max(revs, key=lambda r: (r.Revision, r.UpdatedAt))

    def node_by_id(self, node_id):
        return self._latest(self._node_map().get(node_id))

    def edge_by_id(self, edge_id):
        self._edge_maps()
        return self._latest(self._edges_by_id.get(edge_id))

    def nodes_with_id(self, node_id):
        return self._node_map().get(node_id, ())

    def out_edges(self, node_id):
        return self._edge_maps()[0].get(node_id, ())

    def in_edges(self, node_id):
        return self._edge_maps()[1].get(node_id, ())

    def __len__(self):
        return len(self._nodes)

    def to_dict(self):
        return {"Nodes": [n.to_dict() for n in self._nodes] or None,
                "Edges": [e.to_dict() for e in self._edges] or None}
