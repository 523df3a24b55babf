"""The API's one door into the Gremlin engine (skydive_runtime.gremlin).

`QueryEngine(graph, history)` runs queries on the live graph with an optional HistoryProvider
(the store) and turns engine errors into QueryError (answered with a 400).
"""

import logging

from ..graph import Edge, Node

log = logging.getLogger(__name__)


class QueryError(ValueError):
    pass


def _gremlin():
    from .. import gremlin
    return gremlin


class QueryEngine:
    def __init__(self, graph, history=None, registry=None, **extras):
        self.graph = graph
        self.history = history
        self.registry = registry
        self.extras = extras

    def context(self):
        from ..gremlin.context import QueryContext
        return QueryContext(self.graph, history=self.history, registry=self.registry, **self.extras)

    def run(self, query):
        """Execute; returns the engine's result object (to_json_value(), to_dot() ...)."""
        g = _gremlin()
        try:
            return g.execute(query, self.context())
        except g.GremlinError as exc:
            raise QueryError(str(exc)) from None
        except (ValueError, KeyError, TypeError, RecursionError) as exc:
            # engine-side failures on odd input are still the client's bad query, never a 500
            log.debug("query %r failed", query, exc_info=True)
            raise QueryError(str(exc) or exc.__class__.__name__) from None
        except Exception as exc:
            if exc.__class__.__name__ in ("StoreError", "HistoryNotSupported", "FlowStorageNotConfigured"):
                raise QueryError(str(exc)) from None
            raise

    def validate(self, query, extensions=True):
        """Parse only (struct validator isGremlinExpr)."""
        if not isinstance(query, str):
            raise QueryError("a Gremlin query must be a string")
        g = _gremlin()
        try:
            g.parse(query)
        except g.GremlinError as exc:
            raise QueryError(str(exc)) from None
        except (ValueError, RecursionError) as exc:
            raise QueryError(str(exc)) from None

    @staticmethod
    def is_graph(result):
        return bool(getattr(result, "is_graph", False))

    def subgraph(self, query, at=None):
        """Run a query that must return a graph; (nodes, edges) as element objects.

        Live results are the graph's own elements; historical ones are decoded copies.
        """
        if at:
            query = at_query(query, at)
        result = self.run(query)
        if not self.is_graph(result):
            raise QueryError("gremlin query '%s' did not return a graph" % query)
        view = getattr(result, "view", None)
        if view is not None:
            return list(view.all_nodes()), list(view.all_edges())
        value = result.to_json_value()
        d = value[0] if isinstance(value, list) and value else {}
        return ([Node.from_dict(nd) for nd in d.get("Nodes") or ()],
                [Edge.from_dict(ed) for ed in d.get("Edges") or ()])

    def nodes(self, query):
        """Run a query and keep the node results (for rules, captures, injections)."""
        result = self.run(query)
        if getattr(result, "kind", None) == "nodes":
            return list(result.items)
        if getattr(result, "kind", None) == "graph":
            return list(result.view.all_nodes())
        return []


def at_query(query, at_ms):
    """`G...` -> `G.At(<t>)...` (a SyncRequest Time)."""
    q = query.strip()
    if not q[:1] in ("g", "G"):
        raise QueryError("found %r, expected `G`" % q[:1])
    return "G.At(%d)%s" % (int(at_ms), q[1:])
