"""Capture manager of the analyzer (upstream's OnDemand client, spec §5.6).

For every capture resource the analyzer evaluates

    <GremlinQuery>.Dedup().Has('Captures.ID', NEE('<uuid>'))
        [.Has('Captures.Type', NEE('<type>'))      for types allowing one capture per node]
        .Has('@Host', NE(''), 'Type', Within(<capturable types>))

and sends `Start` (namespace OnDemandCapture, Obj {"NodeID", "Resource"}) to the agent owning
each node (its `/ws/agent/topology` connection, by the node's Host) when that agent can run the
capture's type (its host node's `CaptureTypes`). The query is re-run on capture creation, at
start (captures persist in the store), and after graph changes (node added, node updated other
than its Captures, edge added), debounced by `analyzer.capture.debounce` seconds. Deleting a
capture sends `Stop` for every node whose Captures hold it.

`AnalyzerCaptureKind` is the API's `capture` kind plus what needs the graph: a capture whose
query selects capturable nodes none of which can run its type is a 400, and GET shows the
nodes where it failed in `Errors` (`[{"NodeID", "Host", "Name", "Error"}]`, omitted when none).
"""

import logging
import time

from ..api.kinds import CaptureKind
from ..api.query import QueryError
from ..api.resources import ResourceError
from ..flow import capabilities
from ..flow.capabilities import CAPTURABLE_TYPES, DEFAULT_CAPTURE, SINGLE_PER_NODE
from .ondemand import OnDemandManager

log = logging.getLogger(__name__)

NAMESPACE = "OnDemandCapture"
PENDING_HOLD_S = 5.0       # a Start sent is not re-sent for this long (until Captures shows it)
HOST_KEY = "CaptureTypes"  # host node: the capture types its agent can run (agent/captures.py)


def _quote(s):
    return "'%s'" % s if "'" not in s else '"%s"' % s


def _within(types):
    return ".Has('@Host', NE(''), 'Type', Within(%s))" % ", ".join(_quote(t) for t in types)


def capture_query(capture):
    """The query selecting the nodes where `capture` must still be started."""
    q = capture.get("GremlinQuery", "")
    cid = capture.get("UUID", "")
    ctype = capabilities.capture_type(capture.get("Type") or "")
    q += ".Dedup().Has('Captures.ID', NEE(%s))" % _quote(cid)
    if ctype is not None and ctype.name in SINGLE_PER_NODE:
        q += ".Has('Captures.Type', NEE(%s))" % _quote(ctype.name)
    return q + _within(ctype.node_types if ctype is not None else CAPTURABLE_TYPES)


def host_capture_types(graph):
    """{host: capture types its agent advertises} (hosts advertising nothing are left out)."""
    out = {}
    for node in graph.nodes.values():
        types = node.Metadata.get(HOST_KEY)
        if node.Metadata.get("Type") == "host" and isinstance(types, list):
            out[node.Host] = types
    return out


def why_not(capture, node, hosts):
    """None when the agent of `node` can run `capture` there, else why not."""
    ntype = node.Metadata.get("Type")
    name = capture.get("Type") or DEFAULT_CAPTURE.get(ntype)
    ctype = capabilities.capture_type(name or "")
    if ctype is None or ntype not in ctype.node_types:
        return "%s nodes cannot take %s captures" % (ntype, name or "any")
    if node.Host in hosts and name not in hosts[node.Host]:
        return "the agent of host %s cannot run %s captures (it runs: %s)" % (
            node.Host, name, ", ".join(hosts[node.Host]) or "none")
    try:
        capabilities.check_capture(dict(capture, Type=name))
    except ValueError as exc:
        return str(exc)
    return None


class AnalyzerCaptureKind(CaptureKind):
    manager = None          # the CaptureManager, for Errors

    def validate(self, obj):
        CaptureKind.validate(self, obj)
        try:
            nodes = self.engine.nodes(obj["GremlinQuery"] + ".Dedup()" + _within(CAPTURABLE_TYPES))
        except QueryError:
            return          # an extension-only query: it waits for nodes like any other
        if not nodes:
            return          # upstream: a capture may wait for its nodes
        hosts = host_capture_types(self.engine.graph)
        reasons = []
        for node in nodes:
            why = why_not(obj, node, hosts)
            if why is None:
                return
            reasons.append("%s@%s: %s" % (node.Metadata.get("Name", node.ID), node.Host, why))
        more = " (and %d more)" % (len(reasons) - 3) if len(reasons) > 3 else ""
        raise ResourceError("Type: no node the query selects can run this %s capture: %s%s" % (
            obj["Type"] or "default", "; ".join(reasons[:3]), more))

    def decorate(self, obj):
        out = CaptureKind.decorate(self, obj)
        errors = self.errors(obj)
        if errors:
            out["Errors"] = errors
        return out

    def errors(self, c):
        """Where the capture failed: the nodes' Captures entries in state error, then the
        agents' refusals the manager recorded."""
        cid = c["UUID"]
        found = {}
        try:
            nodes = self.engine.nodes(c["GremlinQuery"])
        except QueryError:
            nodes = []
        for node in nodes:
            for cap in node.Metadata.get("Captures") or ():
                if isinstance(cap, dict) and cap.get("ID") == cid and cap.get("State") == "error":
                    found[node.ID] = cap.get("Error") or "error"
        recorded = self.manager.errors.get(cid, {}) if self.manager is not None else {}
        for nid, msg in recorded.items():
            found.setdefault(nid, msg)
        out = []
        for nid, msg in found.items():
            node = self.engine.graph.get_node(nid) if nid else None
            item = {"NodeID": nid, "Host": node.Host, "Name": node.Metadata.get("Name", "")} if node else {}
            item["Error"] = msg
            out.append(item)
        return out


class CaptureManager(OnDemandManager):
    kind = "capture"
    namespace = NAMESPACE
    notification = "OnDemandCaptureNotification"
    metadata_key = "Captures"
    ignored_keys = ("Captures", "Metric", "LastUpdateMetric")

    def __init__(self, analyzer, flows=None, debounce=None):
        OnDemandManager.__init__(self, analyzer, debounce)
        self.flows = flows
        self.pending = {}            # (capture uuid, node id) -> monotonic time the Start was sent
        self.errors = {}             # capture uuid -> {node id ("" for the query): last error}
        kind = getattr(analyzer, "kinds", {}).get(self.kind)
        if isinstance(kind, AnalyzerCaptureKind):
            kind.manager = self      # GET /api/capture shows our errors

    def _error(self, cid, node_id, msg):
        if msg is None:
            self.errors.get(cid, {}).pop(node_id, None)
        else:
            self.errors.setdefault(cid, {})[node_id] = msg

    # ---- matching ------------------------------------------------------------------------------
    def apply_all(self):
        if not self.running:
            return
        now = time.monotonic()
        for k in [k for k, t in self.pending.items() if now - t > PENDING_HOLD_S]:
            del self.pending[k]
        for capture in list(self._captures()):
            self.apply(capture)

    def _captures(self):
        try:
            caps = self.resources.list("capture")
        except Exception:
            log.exception("listing captures failed")
            return []
        return caps.values() if isinstance(caps, dict) else []

    def apply(self, capture):
        cid = capture.get("UUID", "")
        try:
            nodes = self.engine.nodes(capture_query(capture))
        except QueryError as exc:
            self._error(cid, "", "GremlinQuery: %s" % exc)
            log.warning("capture %s: query failed: %s", cid, exc)
            return 0
        self._error(cid, "", None)
        hosts = host_capture_types(self.graph)
        n = 0
        for node in nodes:
            key = (cid, node.ID)
            if key in self.pending:
                continue
            conn = self.agent(node.Host)
            if conn is None:
                continue
            why = why_not(capture, node, hosts)
            if why is not None:
                self._error(cid, node.ID, why)
                continue
            self.pending[key] = time.monotonic()
            self._spawn(self._start(conn, node.ID, capture))
            n += 1
        return n

    async def _start(self, conn, node_id, capture):
        cid = capture.get("UUID", "")
        status, message = await self.send_start(conn, node_id, capture)
        if status is None:
            self.pending.pop((cid, node_id), None)
        else:
            self._error(cid, node_id, None if status == 200 else "%s: %s" % (status, message))

    async def remove(self, obj):
        cid = obj.get("UUID", "")
        for k in [k for k in self.pending if k[0] == cid]:
            del self.pending[k]
        self.errors.pop(cid, None)
        await self.stop_on_nodes(obj, self.nodes_carrying(cid))
