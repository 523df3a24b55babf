"""The read API the Gremlin steps use, over the live graph (LiveView) or a list of revisions
(skydive_runtime.graph.revisions.RevisionsView)."""

from ..graph.revisions import RevisionsView
from .budget import tick

__all__ = ["LiveView", "RevisionsView", "as_view"]


class LiveView:
    __slots__ = ("graph", "_nodes")

    def __init__(self, graph):
        self.graph = graph
        self._nodes = graph.nodes

    @property
    def host_id(self):
        return self.graph.host_id

    def all_nodes(self):
        return self._nodes.values()

    def all_edges(self):
        return self.graph.edges.values()

    def lookup_nodes(self, flt=None):
        return self.graph.lookup_nodes(flt)

    def lookup_edges(self, flt=None):
        return self.graph.lookup_edges(flt)

    def node_by_id(self, node_id):
        return self._nodes.get(node_id)

    def edge_by_id(self, edge_id):
        return self.graph.edges.get(edge_id)

    def nodes_with_id(self, node_id):
        n = self._nodes.get(node_id)
        return (n,) if n is not None else ()

    def out_edges(self, node_id):
        tick()
        return self.graph.iter_out_edges(node_id)

    def in_edges(self, node_id):
        tick()
        return self.graph.iter_in_edges(node_id)

    def __len__(self):
        return len(self._nodes)

    def to_dict(self):
        return {"Nodes": [n.to_dict() for n in self._nodes.values()] or None,
                "Edges": [e.to_dict() for e in self.graph.edges.values()] or None}


def as_view(obj):
    """A Graph becomes a LiveView; a view is returned unchanged."""
    if hasattr(obj, "nodes_with_id"):
        return obj
    return LiveView(obj)
