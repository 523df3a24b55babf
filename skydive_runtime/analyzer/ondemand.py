"""Shared mechanics of the analyzer's on-demand managers (captures, packet injections).

A manager watches one resource kind: it re-matches its resources against the graph after
graph changes (debounced), when an agent connects and when a resource is created, and
undoes a resource when it is deleted. Subclasses set `kind`, `namespace` (of the agents'
on-demand handler, agent/ondemand.py), `notification`, `metadata_key` (the node list the
agents fill), `ignored_keys` (node metadata they write back themselves, which must not
re-trigger matching) and implement `apply_all()` and `async remove(obj)`, with
`send_start()` and `stop_on_nodes()` for the requests to the agents.
"""

import asyncio
import logging

from ..api import graph_ws
from ..api.ws import RequestError
from ..common.service import spawn
from ..graph import GraphListener

log = logging.getLogger(__name__)

REQUEST_TIMEOUT_S = 15.0


class OnDemandManager(GraphListener):
    kind = ""
    namespace = ""
    notification = ""
    metadata_key = ""
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

    # ---- requests to the agents -------------------------------------------------------------
    def _relay(self):
        cluster = getattr(self.analyzer, "cluster", None)
        rep = getattr(cluster, "replication", None)
        return rep.relay if rep is not None else None

    def agent(self, host):
        """The connection of `host`'s agent: ours, or through the analyzer it is linked to when
        this one is the master of a cluster (analyzer/relay.py); None when unknown."""
        relay = self._relay()
        return relay.agent(host) if relay is not None else self.server.get(graph_ws.AGENT, host)

    async def send_start(self, conn, node_id, resource):
        """Start `resource` on a node: (status, message), status None when the agent did not
        answer. A started resource is notified to the subscribers."""
        uid = resource.get("UUID", "")
        self.starts += 1
        try:
            reply = await conn.request(self.namespace, "Start", {"NodeID": node_id, "Resource": resource},
                                       timeout=REQUEST_TIMEOUT_S)
        except RequestError as exc:
            log.warning("%s %s: Start on %s failed: %s", self.kind, uid, node_id, exc)
            return None, str(exc)
        status = reply.get("Status", 200)
        if status != 200:
            log.warning("%s %s on node %s: %s %s", self.kind, uid, node_id, status, reply.get("Obj"))
        elif self.running:
            self.server.broadcast(graph_ws.SUBSCRIBER, self.notification, "NodeUpdated", resource)
        return status, reply.get("Obj")

    def nodes_carrying(self, uid):
        """{node id: host} of the nodes whose `metadata_key` list holds `uid`."""
        out = {}
        for node in self.graph.nodes.values():
            items = node.Metadata.get(self.metadata_key)
            if isinstance(items, list) and any(isinstance(x, dict) and x.get("ID") == uid for x in items):
                out[node.ID] = node.Host
        return out

    async def stop_on_nodes(self, obj, targets):
        """Send Stop for `obj` to the agent of every {node id: host} of `targets`."""
        uid = obj.get("UUID", "")
        for nid, host in targets.items():
            conn = self.agent(host)
            if conn is None:
                continue
            self.stops += 1
            try:
                reply = await conn.request(self.namespace, "Stop", {"NodeID": nid, "Resource": obj},
                                           timeout=REQUEST_TIMEOUT_S)
                if reply.get("Status", 200) not in (200, 404):
                    log.warning("%s %s: Stop on %s: %s %s", self.kind, uid, nid, reply.get("Status"), reply.get("Obj"))
            except RequestError as exc:
                log.warning("%s %s: Stop on %s failed: %s", self.kind, uid, nid, exc)

    def status(self):
        """Running: alone, or the elected master of its duty in a cluster (analyzer/cluster.py)."""
        return {"IsMaster": self.running}

    # ---- lifecycle ---------------------------------------------------------------------------
    def start(self):
        self.running = True
        self.resources.watchers.append(self)
        self.graph.add_listener(self)
        self.server.listeners.append(self)
        relay = self._relay()
        if relay is not None:       # a peer's agent connected: it may carry work
            relay.listeners.append(self._schedule)
        if self.schedule_at_start:
            self._schedule(0)

    def stop(self):
        self.running = False
        if self in self.resources.watchers:
            self.resources.watchers.remove(self)
        self.graph.remove_listener(self)
        if self in self.server.listeners:
            self.server.listeners.remove(self)
        relay = self._relay()
        if relay is not None and self._schedule in relay.listeners:
            relay.listeners.remove(self._schedule)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for t in list(self._tasks):
            t.cancel()

    def _spawn(self, coro):
        return spawn(self._tasks, coro)

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
