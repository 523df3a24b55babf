"""Workflows: the four built-ins of upstream (analyzer/workflow_defs.py), run natively.

    mount_workflows(analyzer, app, guard)    # POST /api/workflow/<id or name>/call {"Params": [...]}
    WorkflowBackend(stored)                  # GET /api/workflow lists the built-ins with the stored ones

Upstream runs a workflow's JavaScript `Source` in the analyzer; this analyzer has no JavaScript
engine, so user workflows are refused (400 on create and on call) and the built-ins are Python
coroutines doing what upstream's scripts do: captures and packet injections through the
analyzer's own resource handlers, Gremlin through its query engine.
"""

import asyncio
import logging
import random
import uuid as uuidlib

from ..api.http import HTTPError, json_response, read_body
from ..api.query import QueryError
from ..api.resources import DuplicateError, ResourceError
from .workflow_defs import BUILTIN_WORKFLOWS, CHECK_CONNECTIVITY, CHECK_MTU, FLOW_MATRIX, FLOW_VALIDATION
from .workflow_matrix import flow_matrix

log = logging.getLogger(__name__)

JS_REFUSAL = ("user workflows are JavaScript, which this analyzer does not run; only the built-in workflows "
              "(CheckConnectivity, CheckMTU, FlowMatrix, FlowValidation) are available, implemented natively")


class WorkflowError(Exception):
    """A 400 with this message (bad parameters, a step that failed)."""


class WorkflowBackend:
    """The stored workflows' backend with the built-ins in front: listed, got, never deleted."""

    def __init__(self, stored):
        self.stored = stored

    def list(self):
        items = dict(self.stored.list())
        items.update(BUILTIN_WORKFLOWS)
        return items

    def get(self, rid):
        return BUILTIN_WORKFLOWS.get(rid) or self.stored.get(rid)

    def create(self, obj, ttl_ms):
        raise ResourceError(JS_REFUSAL)

    async def committed(self):
        await self.stored.committed()

    def undo_create(self, obj):
        self.stored.undo_create(obj)

    def update(self, rid, patched):
        return self.stored.update(rid, patched)

    def delete(self, rid):
        if rid in BUILTIN_WORKFLOWS:
            raise HTTPError(400, "workflow %s is built in: it cannot be deleted" % BUILTIN_WORKFLOWS[rid]["Name"])
        return self.stored.delete(rid)


def find_workflow(backend, ident):
    """A workflow by UUID or by Name."""
    wf = backend.get(ident)
    if wf is None:
        for w in backend.list().values():
            if w.get("Name") == ident:
                return w
    return wf


# ---- parameters -------------------------------------------------------------------------------

def _coerce(p, value):
    name, ptype = p["Name"], p.get("Type")
    if value is None:
        return p.get("Default")
    if ptype == "node":
        if not isinstance(value, str) or not value:
            raise WorkflowError("parameter %s: expected a node TID (a non-empty string)" % name)
    elif ptype == "boolean":
        if isinstance(value, str) and value.lower() in ("true", "false"):
            value = value.lower() == "true"
        if not isinstance(value, bool):
            raise WorkflowError("parameter %s: expected true or false" % name)
    elif ptype == "integer":
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise WorkflowError("parameter %s: expected an integer" % name)
    elif ptype == "choice":
        allowed = [v["Value"] for v in p.get("Values") or ()]
        if value not in allowed:
            raise WorkflowError("parameter %s: expected one of %s" % (name, ", ".join(map(str, allowed))))
    elif not isinstance(value, str):
        raise WorkflowError("parameter %s: expected a string" % name)
    return value


def bind_params(wf, params):
    decl = wf.get("Parameters") or []
    if len(params) > len(decl):
        raise WorkflowError("%s takes at most %d parameters (%s), got %d" % (
            wf["Name"], len(decl), ", ".join(p["Name"] for p in decl), len(params)))
    return [_coerce(p, params[i] if i < len(params) else None) for i, p in enumerate(decl)]


# ---- the runner ------------------------------------------------------------------------------

def _q(s):
    if "'" in s or '"' in s:
        raise WorkflowError("a node TID cannot hold quotes: %r" % s)
    return "'%s'" % s


def l2_path(src, dst):
    """The layer2 path between two nodes (upstream's scripts take any edge, so their path often
    goes interface -> netns -> host -> netns -> interface, where no MTU is compared and nothing
    between the two ends is captured)."""
    return "G.V().Has('TID', %s).ShortestPathTo(Metadata('TID', %s), Metadata('RelationType', 'layer2'))" % (
        _q(src), _q(dst))


class WorkflowRunner:
    """Runs the built-ins against one analyzer (its handlers, engine and flow settings)."""

    def __init__(self, analyzer):
        self.analyzer = analyzer
        # flows reach the analyzer every flow.update seconds: wait up to two periods for them
        self.flow_wait = 2.0 * analyzer.config.get_float("flow.update", 60.0) + 2.0
        self.poll = 0.25

    async def query(self, gremlin):
        try:
            return await self.analyzer.engine.run_off_loop(gremlin, lambda r: r.to_json_value())
        except QueryError as exc:
            raise WorkflowError("query %s failed: %s" % (gremlin, exc)) from None

    def _create(self, kind, body, ttl_ms=None):
        try:
            return self.analyzer.handlers[kind].create_object(body, ttl_ms)
        except ResourceError as exc:
            raise WorkflowError("%s not created: %s" % (kind, exc)) from None
        except DuplicateError:
            raise WorkflowError("%s not created: an identical %s exists" % (kind, kind)) from None

    def _delete(self, kind, rid):
        try:
            self.analyzer.handlers[kind].backend.delete(rid)
        except Exception:       # cleanup: never hide the workflow's own result
            log.exception("workflow: deleting %s %s failed", kind, rid)

    async def _until(self, timeout, check):
        """Poll `await check()` until truthy or timeout; its last value."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            value = await check()
            if value or loop.time() >= deadline:
                return value
            await asyncio.sleep(self.poll)

    async def _wait_active(self, cid, node_query, minimum):
        q = "%s.Has('Captures.ID', '%s', 'Captures.State', 'active').Count()" % (node_query, cid)

        async def active():
            return (await self.query(q)) >= minimum
        return await self._until(10.0, active)

    async def run(self, wf, params):
        fn = {CHECK_CONNECTIVITY: self.check_connectivity, CHECK_MTU: self.check_mtu,
              FLOW_MATRIX: self.flow_matrix, FLOW_VALIDATION: self.flow_validation}.get(wf.get("UUID"))
        if fn is None:
            raise WorkflowError("workflow %s: %s" % (wf.get("Name") or wf.get("UUID"), JS_REFUSAL))
        return await fn(*bind_params(wf, params))

    # ---- CheckMTU ----------------------------------------------------------------------------
    async def check_mtu(self, src, dst):
        if not src or not dst:
            raise WorkflowError("CheckMTU needs a source and a destination node")
        paths = await self.query(l2_path(src, dst))
        if not paths:
            return False        # upstream answers true when there is no path; a cut path is not a good MTU
        mtu = None
        for node in paths[0]:
            value = (node.get("Metadata") or {}).get("MTU")
            if not isinstance(value, int) or isinstance(value, bool):
                continue        # ovsport, bridge...: the MTU before them still holds
            if mtu is not None and value < mtu:
                return False
            mtu = value
        return True

    # ---- CheckConnectivity -------------------------------------------------------------------
    async def check_connectivity(self, src, dst):
        if not src or not dst:
            raise WorkflowError("CheckConnectivity needs a source and a destination node")
        path = l2_path(src, dst)
        capture = self._create("capture", {"GremlinQuery": path, "Name": "CheckConnectivity %s" % uuidlib.uuid4()})
        result = {}
        try:
            ends = "G.V().Has('TID', Within(%s, %s))" % (_q(src), _q(dst))
            await self._wait_active(capture["UUID"], ends, 2)
            icmp_id = random.randint(1, 0xFFFF)
            inj = {"Src": "G.V().Has('TID', %s)" % _q(src), "Dst": "G.V().Has('TID', %s)" % _q(dst),
                   "Type": "icmp4", "ICMPID": icmp_id, "Count": 5, "Interval": 100}
            injection = self._create("injectpacket", inj, ttl_ms=10000)
            flows_q = "G.Flows().Has('CaptureID', '%s', 'ICMP.ID', %d).Dedup()" % (capture["UUID"], icmp_id)

            async def both_ways():
                flows = await self.query(flows_q) or []
                result["Flows"] = flows
                return any(f.get("Metric", {}).get("ABPackets", 0) > 0 and f.get("Metric", {}).get("BAPackets", 0) > 0
                           for f in flows)
            result["Connectivity"] = bool(await self._until(self.flow_wait, both_ways))
            self._delete("injectpacket", injection["UUID"])
        finally:
            self._delete("capture", capture["UUID"])
        return result

    # ---- FlowValidation ----------------------------------------------------------------------
    async def flow_validation(self, cp1, cp2, all_nodes, protocol, src_ip, dst_ip, ident, interval):
        if not cp1:
            raise WorkflowError("FlowValidation needs Checkpoint-1")
        if cp2 is None or cp2 == "":
            query = "G.V().Has('TID', %s)" % _q(cp1)
            expected = await self.query(query)
        elif not all_nodes:
            query = "G.V().Has('TID', Within(%s, %s))" % (_q(cp1), _q(cp2))
            expected = await self.query(query)
        else:
            query = "G.V().Has('TID', %s).ShortestPathTo(Metadata('TID', %s), Metadata('RelationType', 'layer2'))" % (
                _q(cp1), _q(cp2))
            paths = await self.query(query)
            expected = paths[0] if paths else []
        bpf = protocol
        for ip in (src_ip, dst_ip):
            if ip:
                bpf += " and (src %s or dst %s)" % (ip, ip)
        if ident:
            bpf += (" and icmp[4:2]=%s" if protocol == "icmp" else " and port %s") % ident
        capture = self._create("capture", {"GremlinQuery": query, "BPFFilter": "(%s) or (vlan and %s)" % (bpf, bpf),
                                           "SamplingRate": 1, "PollingInterval": 10,
                                           "Name": "FlowValidation %s" % uuidlib.uuid4()})
        cid = capture["UUID"]
        result = {}
        try:
            await asyncio.sleep(max(0, interval or 0))
            with_capture = await self.query("G.V().Has('Captures.ID', '%s', 'Type', NE('ovsport'))" % cid)
            if not with_capture:
                return {"Error": "No node with capture"}
            not_captured = []
            if len(with_capture) != len(expected):
                not_captured = [n for n in expected if (n.get("Metadata") or {}).get("State") == "DOWN"]
            metric = "" if protocol == "udp" else ", 'Metric.ABPackets', GT(0), 'Metric.BAPackets', GT(0)"
            seen_q = "G.Flows().Has('CaptureID', '%s'%s).CaptureNode().Dedup()" % (cid, metric)
            wanted = {n["ID"] for n in with_capture}
            seen = set()

            async def all_seen():
                seen.clear()
                seen.update(n["ID"] for n in await self.query(seen_q) or ())
                return wanted <= seen
            await self._until(self.flow_wait, all_seen)
            not_reached = [n for n in with_capture if n["ID"] not in seen]
            result["Connectivity"] = not not_reached
            if not_reached:
                if not_captured:
                    result["NotCapturedNodes"] = not_captured
                result["NotReachedNodes"] = not_reached + not_captured
        finally:
            self._delete("capture", cid)
        return result

    # ---- FlowMatrix --------------------------------------------------------------------------
    async def flow_matrix(self, use_flows, fmt, debug):
        if use_flows:
            raise WorkflowError("FlowMatrix useFlows=true needs the flows' Sockets() (socketinfo probe), which "
                                "this analyzer does not have; call it with useFlows=false")
        hosts = await self.query("G.V().Has('Type', 'host').HasKey('Sockets')")
        interfaces = await self.query("G.V().HasKey('IPV4')")
        return flow_matrix(hosts, interfaces, fmt or "graph")


def mount_workflows(analyzer, app, guard):
    runner = WorkflowRunner(analyzer)

    async def call(request):
        guard(request, "workflow", "write")
        ident = request.match_info["id"]
        data = await read_body(request)
        if not isinstance(data, dict):
            raise HTTPError(400, "the body must be {\"Params\": [...]}")
        params = data.get("Params")
        if params is None:
            params = []
        if not isinstance(params, list):
            raise HTTPError(400, "Params: expected an array")
        wf = find_workflow(analyzer.handlers["workflow"].backend, ident)
        if wf is None:
            raise HTTPError(400, "Workflow '%s' not found" % ident)
        try:
            result = await runner.run(wf, params)
        except WorkflowError as exc:
            raise HTTPError(400, str(exc)) from None
        return json_response(result)
    app.router.add_post("/api/workflow/{id}/call", call)
    return runner
