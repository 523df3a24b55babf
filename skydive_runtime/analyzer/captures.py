"""Capture manager of the analyzer (upstream's OnDemand client, spec §5.6).

For every capture resource the analyzer evaluates

    <GremlinQuery>.Dedup().Has('Captures.ID', NEE('<uuid>'))
        [.Has('Captures.Type', NEE('<type>'))      for types allowing one capture per node]
        .Has('@Host', NE(''), 'Type', Within(<capturable types>))

and sends `Start` (namespace OnDemandCapture, Obj {"NodeID", "Resource"}) to the agent owning
each node (its `/ws/agent/topology` connection, by the node's Host). The query is re-run on
capture creation, at start (captures persist in the store), and after graph changes (node
added, node updated other than its Captures, edge added), debounced by
`analyzer.capture.debounce` seconds. Deleting a capture sends `Stop` for every node whose
Captures hold it.
"""

import logging
import time

from ..api import graph_ws
from ..api.query import QueryError
from ..api.ws import RequestError
from ..flow.capabilities import CAPTURABLE_TYPES, NODE_TYPES_BY_CAPTURE, SINGLE_PER_NODE
from .ondemand import OnDemandManager

log = logging.getLogger(__name__)

NAMESPACE = "OnDemandCapture"
PENDING_HOLD_S = 5.0       # a Start sent is not re-sent for this long (until Captures shows it)
REQUEST_TIMEOUT_S = 15.0


def _quote(s):
    return "'%s'" % s if "'" not in s else '"%s"' % s


def capture_query(capture):
    """The query selecting the nodes where `capture` must still be started."""
    q = capture.get("GremlinQuery", "")
    cid = capture.get("UUID", "")
    ctype = capture.get("Type") or ""
    q += ".Dedup().Has('Captures.ID', NEE(%s))" % _quote(cid)
    if ctype in SINGLE_PER_NODE:
        q += ".Has('Captures.Type', NEE(%s))" % _quote(ctype)
    types = NODE_TYPES_BY_CAPTURE.get(ctype, CAPTURABLE_TYPES) if ctype else CAPTURABLE_TYPES
    q += ".Has('@Host', NE(''), 'Type', Within(%s))" % ", ".join(_quote(t) for t in types)
    return q


class CaptureManager(OnDemandManager):
    kind = "capture"
    ignored_keys = ("Captures", "Metric", "LastUpdateMetric")

    def __init__(self, analyzer, flows=None, debounce=None):
        OnDemandManager.__init__(self, analyzer, debounce)
        self.flows = flows
        self.pending = {}            # (capture uuid, node id) -> monotonic time the Start was sent
        self.errors = {}             # capture uuid -> last error message

    # ---- matching ------------------------------------------------------------------------------
    def apply_all(self):
        if not self.running:
            return
        now = time.monotonic()
        for k in [k for k, t in self.pending.items() if now - t > PENDING_HOLD_S]:
            del self.pending[k]
        for cid, capture in list(self._capture_items()):
            self.apply(capture)

    def _capture_items(self):
        try:
            caps = self.resources.list("capture")
        except Exception:
            log.exception("listing captures failed")
            return []
        return caps.items() if isinstance(caps, dict) else []

    def apply(self, capture):
        cid = capture.get("UUID", "")
        try:
            nodes = self.engine.nodes(capture_query(capture))
        except QueryError as exc:
            self.errors[cid] = str(exc)
            log.warning("capture %s: query failed: %s", cid, exc)
            return 0
        n = 0
        for node in nodes:
            key = (cid, node.ID)
            if key in self.pending:
                continue
            conn = self.server.get(graph_ws.AGENT, node.Host)
            if conn is None:
                continue
            self.pending[key] = time.monotonic()
            self._spawn(self._start(conn, node.ID, capture))
            n += 1
        return n

    async def _start(self, conn, node_id, capture):
        cid = capture.get("UUID", "")
        self.starts += 1
        try:
            reply = await conn.request(NAMESPACE, "Start", {"NodeID": node_id, "Resource": capture},
                                       timeout=REQUEST_TIMEOUT_S)
        except RequestError as exc:
            log.warning("capture %s: Start on %s failed: %s", cid, node_id, exc)
            self.pending.pop((cid, node_id), None)
            return
        status = reply.get("Status", 200)
        if status != 200:
            self.errors[cid] = "%s: %s" % (status, reply.get("Obj"))
            log.warning("capture %s on node %s: %s %s", cid, node_id, status, reply.get("Obj"))
        if self.running:
            self.server.broadcast(graph_ws.SUBSCRIBER, "OnDemandCaptureNotification", "NodeUpdated", capture)

    async def remove(self, obj):
        cid = obj.get("UUID", "")
        for k in [k for k in self.pending if k[0] == cid]:
            del self.pending[k]
        if self.flows is not None:
            self.flows.capture_stopped(cid)
        targets = []
        for node in self.graph.nodes.values():
            caps = node.Metadata.get("Captures")
            if isinstance(caps, list) and any(isinstance(c, dict) and c.get("ID") == cid for c in caps):
                targets.append((node.Host, node.ID))
        for host, nid in targets:
            conn = self.server.get(graph_ws.AGENT, host)
            if conn is None:
                continue
            self.stops += 1
            try:
                reply = await conn.request(NAMESPACE, "Stop", {"NodeID": nid, "Resource": obj},
                                           timeout=REQUEST_TIMEOUT_S)
                if reply.get("Status", 200) not in (200, 404):
                    log.warning("capture %s: Stop on %s: %s %s", cid, nid, reply.get("Status"), reply.get("Obj"))
            except RequestError as exc:
                log.warning("capture %s: Stop on %s failed: %s", cid, nid, exc)
