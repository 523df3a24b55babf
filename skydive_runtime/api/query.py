"""The API's one door into the Gremlin engine (skydive_runtime.gremlin).

`QueryEngine(graph, history)` runs queries on the live graph with an optional HistoryProvider
(the store) and turns engine errors into QueryError (answered with a 400). Every run has a budget
(`timeout` seconds, `max_results` elements: analyzer.query.*). `await run_off_loop(query, render)`
runs the query and render(result) in the engine's worker thread holding graph.lock (the graph's
writers take it too), so the event loop keeps serving other requests meanwhile.
"""

import asyncio
import concurrent.futures
import logging

from ..graph import Edge, Node

log = logging.getLogger(__name__)


class QueryError(ValueError):
    pass


def _gremlin():
    from .. import gremlin
    return gremlin


DEFAULT_TIMEOUT = 10.0
DEFAULT_MAX_RESULTS = 1000000


class QueryEngine:
    def __init__(self, graph, history=None, registry=None, timeout=DEFAULT_TIMEOUT,
                 max_results=DEFAULT_MAX_RESULTS, **extras):
        self.graph = graph
        self.history = history
        self.registry = registry
        self.timeout = timeout
        self.max_results = max_results
        self.extras = extras
        self._worker = None

    def configure(self, config):
        """analyzer.query.timeout (s, 0 = none) and analyzer.query.max_results (0 = none)."""
        from ..config import ConfigError
        self.timeout = config.get_float("analyzer.query.timeout", DEFAULT_TIMEOUT)
        self.max_results = config.get_int("analyzer.query.max_results", DEFAULT_MAX_RESULTS, minimum=0)
        if self.timeout < 0:
            raise ConfigError("analyzer.query.timeout: must be >= 0, got %r" % self.timeout)
        return self

    def context(self):
        from ..gremlin.context import QueryContext
        return QueryContext(self.graph, history=self.history, registry=self.registry, **self.extras)

    def run(self, query):
        """Execute; returns the engine's result object (to_json_value(), to_dot() ...)."""
        g = _gremlin()
        from ..gremlin import budget
        try:
            with budget.active(budget.Budget(self.timeout, self.max_results)):
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

    async def run_off_loop(self, query, render):
        """render(run(query)) in the worker thread, under graph.lock; on the loop when the query
        reads loop-only state (flows). Raises QueryError like run()."""
        g = _gremlin()
        try:
            parsed = g.parse(query, self.registry)
        except g.GremlinError as exc:
            raise QueryError(str(exc)) from None
        if parsed.loop_only:
            return render(self.run(parsed))
        if self._worker is None:
            self._worker = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="gremlin")
        return await asyncio.get_running_loop().run_in_executor(self._worker, self._run_locked, parsed, render)

    def _run_locked(self, query, render):
        with self.graph.lock:
            return render(self.run(query))

    def close(self):
        if self._worker is not None:
            self._worker.shutdown(wait=False)
            self._worker = None

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

    def check_graph_query(self, query):
        """Parse only; QueryError unless the query returns a graph (a subscriber filter)."""
        g = _gremlin()
        try:
            parsed = g.parse(query, self.registry)
        except (g.GremlinError, ValueError, RecursionError) as exc:
            raise QueryError(str(exc)) from None
        if not parsed.returns_graph:
            raise QueryError("gremlin query '%s' did not return a graph" % query)

    @staticmethod
    def is_graph(result):
        return bool(getattr(result, "is_graph", False))

    def subgraph(self, query, at=None):
        """Run a query that must return a graph; (nodes, edges) as element objects.

        Live results are the graph's own elements; historical ones are decoded copies.
        """
        if at:
            query = at_query(query, at)
        return self.subgraph_of(query, self.run(query))

    def subgraph_of(self, query, result):
        """(nodes, edges) of the result of query; QueryError unless it is a graph."""
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
