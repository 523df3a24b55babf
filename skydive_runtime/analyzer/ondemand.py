"""Shared mechanics of the analyzer's on-demand managers (captures, packet injections).

A manager watches one resource kind: it re-matches its resources against the graph after
graph changes (debounced), when an agent connects and when a resource is created, and
undoes a resource when it is deleted. Subclasses set `kind`, `ignored_keys` (node metadata
they write back themselves, which must not re-trigger matching) and implement `apply_all()`
and `async remove(obj)`.
"""

import asyncio

from ..api import graph_ws
from ..graph import GraphListener


class OnDemandManager(GraphListener):
    kind = ""
    ignored_keys = ("Metric", "LastUpdateMetric")
    schedule_at_start = True

    def __init__(self, analyzer, debounce=None):
        self.analyzer = analyzer
        self.graph = analyzer.graph
        self.engine = analyzer.engine
        self.resources = analyzer.resources
        self.server = analyzer.ws.server
        self.debounce = debounce if debounce is not None else \
            analyzer.config.get_float("analyzer.capture.debounce", 0.2)
        self._timer = None
        self._tasks = set()
        self.running = False
        self.starts = 0
        self.stops = 0

    # ---- to implement ------------------------------------------------------------------------
    def apply_all(self):
        raise NotImplementedError

    async def remove(self, obj):
        raise NotImplementedError

    def has_work(self):
        """False when there is nothing to match (scheduling is then skipped)."""
        return True

    def resource_created(self, obj):
        """Called before matching is scheduled for a newly created resource."""

    # ---- lifecycle ---------------------------------------------------------------------------
    def start(self):
        self.running = True
        self.resources.watchers.append(self)
        self.graph.add_listener(self)
        self.server.listeners.append(self)
        if self.schedule_at_start:
            self._schedule(0)

    def stop(self):
        self.running = False
        if self in self.resources.watchers:
            self.resources.watchers.remove(self)
        self.graph.remove_listener(self)
        if self in self.server.listeners:
            self.server.listeners.remove(self)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for t in list(self._tasks):
            t.cancel()

    def _spawn(self, coro):
        t = asyncio.ensure_future(coro)
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)
        return t

    # ---- triggers ----------------------------------------------------------------------------
    def _schedule(self, delay=None):
        if not self.running or self._timer is not None or not self.has_work():
            return
        loop = asyncio.get_event_loop()
        self._timer = loop.call_later(self.debounce if delay is None else delay, self._fire)

    def _fire(self):
        self._timer = None
        self.apply_all()

    def on_resource_created(self, kind, obj):
        if kind == self.kind:
            self.resource_created(obj)
            self._schedule(0)

    def on_resource_deleted(self, kind, obj):
        if kind == self.kind:
            self._spawn(self.remove(obj))

    def on_node_added(self, node):
        self._schedule()

    def on_node_updated(self, node, ops):
        for op in ops or ():
            key = op[1] if len(op) > 1 else ""
            if not any(key == k or key.startswith(k + ".") for k in self.ignored_keys):
                self._schedule()
                return

    def on_edge_added(self, edge):
        self._schedule()

    def on_ws_connect(self, conn):
        if conn.path == graph_ws.AGENT:
            self._schedule()

    def on_ws_disconnect(self, conn):
        pass
