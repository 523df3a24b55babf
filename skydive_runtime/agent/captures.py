"""On-demand captures on the agent (namespace `OnDemandCapture`, spec §2.6, §5.4-5.6).

The analyzer sends `Start` / `Stop` with Obj `{"NodeID": <node id>, "Resource": <capture>}` on
the agent's WebSocket link; we answer `StartReply` / `StopReply` with Status 200 (done), 404
(unknown node / capture not running there), 400 (the node cannot take that capture type, or
the type cannot do what the capture asks) or 500 (the probe failed; the node then carries
`State: "error"` and the message). The request handling, task table and node entries are
agent/ondemand.py's; the sources come from the capture types of flow/capabilities.py.

    captures = AgentCaptures(agent)
    captures.start()          # registers the handler, stats timer, graph listener
    await captures.stop()     # stops every probe (OVS sFlow settings removed)

One probe = one CaptureRunner (skydive_runtime.flow.capture): a capture source and a FlowTable in
their own thread; flow batches and counters come back to the loop through
call_soon_threadsafe. Flows go to every connected analyzer as

    {"Namespace": "Flow", "Type": "FlowUpdate", "Obj": {"Flows": [Flow JSON ...],
                                                         "Stats": {capture counters}}}

(see docs/flows-integration.md). The capture types this host can run now are advertised in
the host node's `CaptureTypes` (a list of names) and in /api/status `FlowProbes`.
"""

import asyncio
import json
import logging

from ..flow import capabilities
from ..flow.capabilities import CaptureStartError
from ..flow.capture import CaptureRunner, FilteredTable
from ..flow.erspan import ERSPANSender, MirroredTable
from ..flow.netflow import NetFlowExporter
from ..flow.ovs_stale import remove_stale
from ..flow.ovssflow import DEFAULT_OVSDB
from ..flow.table import FlowTable, FlowTableError
from .ondemand import OnDemandError, OnDemandHandler, OnDemandTask

log = logging.getLogger(__name__)

NAMESPACE = "OnDemandCapture"
FLOW_NAMESPACE = "Flow"
FLOW_UPDATE = "FlowUpdate"
MAX_FLOWS_PER_MESSAGE = 500
DEFAULT_HEADER_SIZE = 256
LAYERS_HEADER_SIZE = 1518       # with ExtraLayers: whole Ethernet frames (a DHCP message exceeds 256 bytes)
HOST_KEY = "CaptureTypes"        # host node: the capture types this agent can run


class _Probe(OnDemandTask):
    """One running capture on one node."""

    def __init__(self, node_id, capture, ctype):
        OnDemandTask.__init__(self, node_id, capture["UUID"], capture)
        self.capture = capture
        self.type = ctype
        self.runner = None
        self.opened = None
        self.entry = {}
        self.retry_task = None
        self.exporter = None         # flow/netflow.py NetFlowExporter of the capture's Target
        self.mirror = None           # flow/erspan.py ERSPANSender of an erspanv1 Target


class _Context(object):
    """What a capture type's open_capture() sees (flow/capabilities.py)."""

    def __init__(self, captures, probe, node, table):
        self.capture = probe.capture
        self.node = node
        self.config = captures.agent.config
        self.table = table
        self.entry = probe.entry
        self.header_size = int(probe.capture.get("HeaderSize") or 0) or \
            (LAYERS_HEADER_SIZE if probe.capture.get("ExtraLayers") or capabilities.packet_target(probe.capture)
             else DEFAULT_HEADER_SIZE)
        self.max_entries = captures.max_entries
        self.host_id = captures.agent.host_id
        self._agent = captures.agent

    def locate(self):
        node = self.node
        loc = self._agent.locate_interface(node.ID)
        if loc is None or not loc.get("Name"):
            raise CaptureStartError(500, "cannot locate interface %s (%s) on this host"
                                    % (node.Metadata.get("Name"), node.ID))
        return loc["Name"], loc.get("NetNsPath") or None

    def bind(self, make, ports, error_cls, what):
        """The first source of make(port) that opens in ports (the capture's Port when set)."""
        port = int(self.capture.get("Port") or 0)
        lo, hi = (port, port) if port else ports
        last = None
        for p in range(int(lo), int(hi) + 1):
            src = make(p)
            try:
                src.open()
                return src
            except (error_cls, OSError) as exc:
                last = exc
        raise CaptureStartError(500, "no free %s port in %s-%s: %s" % (what, lo, hi, last))


class AgentCaptures(OnDemandHandler):
    namespace = NAMESPACE
    metadata_key = "Captures"
    what = "capture"

    def __init__(self, agent):
        OnDemandHandler.__init__(self, agent)
        cfg = agent.config
        self.update_ms = max(1, int(cfg.get_float("flow.update", 60) * 1000))
        self.expire_ms = max(1, int(cfg.get_float("flow.expire", 600) * 1000))
        self.stats_ms = max(100, int(cfg.get_float("agent.capture.stats_update", 1) * 1000))
        self.max_entries = cfg.get_int("flow.max_entries", 500000, minimum=1)
        self.default_mode = cfg.get_string("flow.default_layer_key_mode") or "L2"
        ports = cfg.get("flow.application_ports") or {}     # {"tcp": {port: name}, "udp": {..}}
        self.app_ports = {k: v for k, v in ports.items() if v} if isinstance(ports, dict) else {}
        timeouts = cfg.get("flow.application_timeout") or {}
        self.app_timeouts = {str(k).upper(): int(float(v) * 1000) for k, v in timeouts.items()} \
            if isinstance(timeouts, dict) else None
        self.unavailable = {}       # capture type -> why this host cannot run it
        self.types = ()             # the capture types this host can run
        self.refresh_s = self.stats_ms / 1000.0
        self.flows_sent = 0
        self._stale = None           # the removal of a killed agent's OVS rows, awaited before any start

    # ---- lifecycle ---------------------------------------------------------------------------
    def start(self):
        checks = capabilities.available_types(self.agent.config)
        self.types = tuple(t for t, why in checks.items() if why is None)
        self.unavailable = {t: why for t, why in checks.items() if why is not None}
        for t, why in self.unavailable.items():
            log.info("capture type %s is not available on this host: %s", t, why)
        host = self.agent.topology.host if self.agent.topology is not None else None
        if host is not None:
            self.graph.update_metadata(host, {HOST_KEY: list(self.types)})
        OnDemandHandler.start(self)
        if any(t in self.types for t in ("ovsmirror", "ovssflow", "ovsnetflow")):
            self._stale = self.loop.run_in_executor(None, self._remove_stale)

    def _remove_stale(self):
        ovsdb = self.agent.config.get_string("ovs.ovsdb") or DEFAULT_OVSDB
        try:
            for what in remove_stale(ovsdb, self.agent.host_id):
                log.warning("removed %s left by an earlier run of this agent", what)
        except Exception as exc:      # OVSDB unreachable: the captures' own calls will say so
            log.warning("cannot look for OVS mirrors/sFlow/NetFlow left by an earlier run: %s", exc)

    async def start_task(self, node_id, uid, resource):
        if self._stale is not None:
            await asyncio.shield(self._stale)
        return await OnDemandHandler.start_task(self, node_id, uid, resource)

    def task_status(self, task):
        return {"Type": task.type, "State": task.entry.get("State"), "PacketsReceived": task.entry.get("PacketsReceived", 0)}

    # ---- OnDemandHandler -------------------------------------------------------------------------
    def create(self, node, resource):
        ntype = node.Metadata.get("Type")
        allowed = capabilities.types_for_node(ntype)
        ctype = resource.get("Type") or capabilities.default_type(ntype, resource, self.types,
                                                                  node.Metadata.get("Captures") or ())
        if ctype is None:
            raise OnDemandError(400, "node %s of type %r cannot be captured" % (node.ID, ntype))
        if ctype not in allowed:
            raise OnDemandError(400, "%s capture is not supported on %s nodes" % (ctype, ntype))
        if ctype in self.unavailable:
            raise OnDemandError(400, "%s capture is not available on this agent: %s" % (ctype, self.unavailable[ctype]))
        try:
            capabilities.check_capture(dict(resource, Type=ctype))
        except ValueError as exc:
            raise OnDemandError(400, str(exc)) from None
        probe = _Probe(node.ID, resource, ctype)
        entry = {"ID": probe.uid, "State": "active", "Type": ctype}
        for k in ("Name", "Description", "BPFFilter"):
            if resource.get(k):
                entry[k] = resource[k]
        entry.update({"PacketsReceived": 0, "PacketsDropped": 0, "PacketsIfDropped": 0})
        probe.entry = entry
        return probe

    async def launch(self, task, node):
        try:
            await self._start_probe(task, node)
        except CaptureStartError as exc:
            raise OnDemandError(exc.status, str(exc)) from None
        log.info("capture %s (%s) started on %s", task.uid, task.type, node.Metadata.get("Name"))

    def start_failed(self, task, exc):
        # the probe stays, in state error, until Stop (the node shows why)
        task.entry["State"] = "error"
        task.entry["Error"] = str(exc) or type(exc).__name__
        task.runner = None
        self.publish(task)

    def entry(self, task):
        return dict(task.entry)

    async def remove(self, task):
        t, task.retry_task = task.retry_task, None
        if t is not None and t is not asyncio.current_task():
            t.cancel()
        runner, task.runner = task.runner, None
        opened, task.opened = task.opened, None
        if opened is not None and opened.cleanup is not None:
            try:
                await self.loop.run_in_executor(None, opened.cleanup)
            except Exception as exc:
                log.warning("capture %s: cleaning up on %s: %s", task.uid, task.node_id, exc)
        if runner is not None:
            await self.loop.run_in_executor(None, runner.stop)
        exporter, task.exporter = task.exporter, None
        if exporter is not None:        # after the runner's last flows, queued on the loop before it
            self.loop.call_soon(exporter.close)
        mirror, task.mirror = task.mirror, None
        if mirror is not None:          # the runner (the only sender) has stopped
            mirror.close()

    # ---- probes ------------------------------------------------------------------------------
    def _table(self, probe, node):
        c = probe.capture
        try:
            return FlowTable(node_tid=node.Metadata.get("TID", "") or "", capture_id=probe.uid,
                             layer_key_mode=c.get("LayerKeyMode") or self.default_mode,
                             expire_ms=self.expire_ms, app_timeouts_ms=None if self.app_timeouts is None else
                             dict(self.app_timeouts.items()),
                             max_entries=self.max_entries, raw_packet_limit=int(c.get("RawPacketLimit") or 0),
                             header_size=int(c.get("HeaderSize") or 0),
                             extra_tcp_metric=bool(c.get("ExtraTCPMetric")),
                             extra_layers=int(c.get("ExtraLayers") or 0), ip_defrag=bool(c.get("IPDefrag")),
                             application_ports=self.app_ports or None)
        except FlowTableError as exc:
            raise CaptureStartError(400, str(exc)) from None

    async def _start_probe(self, probe, node):
        ctype = capabilities.capture_type(probe.type)
        table = self._table(probe, node)
        opened = capabilities.source_module(ctype).open_capture(_Context(self, probe, node, table))
        src = opened.source
        table = opened.table if opened.table is not None else table
        bpf = probe.capture.get("BPFFilter") or None
        if (bpf and not ctype.kernel_bpf) or opened.packet_clock:
            # the source cannot filter in the kernel: filter in user space before the table
            table = FilteredTable(table, None if ctype.kernel_bpf else bpf, packet_clock=opened.packet_clock)
        if capabilities.packet_target(probe.capture):
            table = MirroredTable(table, self._mirror(probe, node))
        runner = CaptureRunner(src, table, on_flows=self._flows_sink(probe), on_stats=lambda st, p=probe: self._on_stats(p, st),
                               update_ms=self.update_ms, stats_ms=self.stats_ms, loop=self.loop,
                               on_error=lambda exc, p=probe: self._on_error(p, exc),
                               name="capture-%s-%s" % (probe.uid[:8], node.Metadata.get("Name", "")))
        try:
            await self.loop.run_in_executor(None, runner.start)
        except Exception as exc:
            try:
                src.close()
            except Exception:
                pass
            raise CaptureStartError(500, str(exc) or type(exc).__name__) from None
        probe.runner = runner
        if opened.setup is not None:
            try:
                await self.loop.run_in_executor(None, opened.setup)
            except Exception as exc:
                probe.runner = None
                await self.loop.run_in_executor(None, runner.stop)
                raise CaptureStartError(500, str(exc) or type(exc).__name__) from None
        probe.opened = opened

    def _on_stats(self, probe, st):
        if self.tasks.get(probe.key) is not probe:
            return
        for k in ("PacketsReceived", "PacketsDropped", "PacketsIfDropped"):
            probe.entry[k] = int(st.get(k, 0) or 0)
        self.publish(probe)
        self._send({"Flows": [], "Stats": dict(st, NodeID=probe.node_id)})

    def _on_error(self, probe, exc):
        if self.tasks.get(probe.key) is not probe:
            return
        log.warning("capture %s on %s failed: %s", probe.uid, probe.node_id, exc)
        probe.entry["State"] = "error"
        probe.entry["Error"] = str(exc) or type(exc).__name__
        self.publish(probe)
        # the interface may come back (link down, namespace churn): retry with backoff while
        # the node exists; a deleted node stops the capture (on_node_deleted)
        if self.running and probe.retry_task is None:
            probe.retry_task = self.spawn(self._retry(probe))

    async def _retry(self, probe):
        delay = 1.0
        try:
            while self.running and self.tasks.get(probe.key) is probe:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
                node = self.graph.get_node(probe.node_id)
                if node is None or self.tasks.get(probe.key) is not probe:
                    return
                old, probe.runner = probe.runner, None
                if old is not None:
                    await self.loop.run_in_executor(None, old.stop)
                try:
                    await self._start_probe(probe, node)
                except CaptureStartError as exc:
                    probe.entry["Error"] = str(exc)
                    self.publish(probe)
                    continue
                await asyncio.sleep(0.3)          # did it survive its first reads?
                r = probe.runner
                if r is not None and r.running and self.tasks.get(probe.key) is probe:
                    probe.entry["State"] = "active"
                    probe.entry.pop("Error", None)
                    self.publish(probe)
                    log.info("capture %s on %s recovered", probe.uid, probe.node_id)
                    return
                if self.tasks.get(probe.key) is not probe:
                    probe.retry_task = None
                    await self.remove(probe)
                    return
        finally:
            probe.retry_task = None

    def refresh(self):
        # the runner's own stats come every stats_ms while it runs; this only refreshes
        # probes whose runner ended (error) so that the node keeps its last counters
        for probe in list(self.tasks.values()):
            r = probe.runner
            if r is not None and not r.running and r.error is not None and probe.entry.get("State") != "error":
                self._on_error(probe, r.error)

    # ---- flows -------------------------------------------------------------------------------
    def _mirror(self, probe, node):
        """The probe's ERSPAN sender (kept across restarts of its runner: one sequence)."""
        if probe.mirror is None:
            try:
                probe.mirror = ERSPANSender(probe.capture["Target"], node.Metadata.get("IfIndex") or 0)
            except (ValueError, OSError) as exc:
                raise CaptureStartError(400 if isinstance(exc, ValueError) else 500, str(exc)) from None
        return probe.mirror

    def _flows_sink(self, probe):
        """Where a probe's flows go: the analyzers, and the capture's NetFlow Target when it has one."""
        target = probe.capture.get("Target")
        if not target or capabilities.packet_target(probe.capture):
            return self._on_flows
        if probe.exporter is None:
            try:
                probe.exporter = NetFlowExporter(target)
            except (ValueError, OSError) as exc:
                raise CaptureStartError(400, str(exc)) from None

        def sink(flows, exporter=probe.exporter):
            exporter.export(flows)
            self._on_flows(flows)
        return sink

    def _on_flows(self, flows):
        for i in range(0, len(flows), MAX_FLOWS_PER_MESSAGE):
            self._send({"Flows": flows[i:i + MAX_FLOWS_PER_MESSAGE]})

    def _send(self, obj):
        fw = self.agent.forwarder
        if fw is None:
            return
        data = json.dumps({"Namespace": FLOW_NAMESPACE, "Type": FLOW_UPDATE, "UUID": "", "Status": 200,
                           "Obj": obj}, separators=(",", ":"))
        for link in fw.links:
            link.push(data)
        self.flows_sent += len(obj.get("Flows") or ())


__all__ = ["AgentCaptures", "FLOW_NAMESPACE", "FLOW_UPDATE", "HOST_KEY"]
