"""On-demand captures on the agent (namespace `OnDemandCapture`, spec §2.6, §5.4-5.6).

The analyzer sends `Start` / `Stop` with Obj `{"NodeID": <node id>, "Resource": <capture>}` on
the agent's WebSocket link; we answer `StartReply` / `StopReply` with Status 200 (done), 404
(unknown node / capture not running there), 400 (the node cannot take that capture type) or
500 (the probe failed; the node then carries `State: "error"` and the message).

    captures = AgentCaptures(agent)
    captures.start()          # registers the handler, stats timer, graph listener
    await captures.stop()     # stops every probe (OVS sFlow settings removed)

One probe = one CaptureRunner (skydive_runtime.flow.capture): a capture source and a FlowTable in
their own thread; flow batches and counters come back to the loop through
call_soon_threadsafe. Flows go to every connected analyzer as

    {"Namespace": "Flow", "Type": "FlowUpdate", "Obj": {"Flows": [Flow JSON ...],
                                                         "Stats": {capture counters}}}

(see docs/flows-integration.md). Probe types: afpacket (default for interfaces), pcap,
pcapsocket (TCP listener in agent.flow.pcapsocket), sflow (UDP collector in agent.flow.sflow),
ovssflow (collector + OVS `sFlow` row on the bridge; default for ovsbridge).
"""

import asyncio
import json
import logging
import shutil
import subprocess
import time

from ..flow.capabilities import INTERFACE_TYPES
from ..flow.capture import CaptureRunner
from ..flow.table import FlowTable, FlowTableError
from ..graph import GraphListener

log = logging.getLogger(__name__)

NAMESPACE = "OnDemandCapture"
FLOW_NAMESPACE = "Flow"
FLOW_UPDATE = "FlowUpdate"
MAX_FLOWS_PER_MESSAGE = 500

# node Type -> (capture types this agent runs there, default)
NODE_CAPTURE_TYPES = {"ovsbridge": (("ovssflow", "pcapsocket"), "ovssflow")}
for _t in INTERFACE_TYPES:
    NODE_CAPTURE_TYPES[_t] = (("afpacket", "pcap", "pcapsocket", "sflow", "ebpf"), "afpacket")
DEFAULT_HEADER_SIZE = 256


class CaptureStartError(Exception):
    def __init__(self, status, message):
        Exception.__init__(self, message)
        self.status = status


def capture_types_for(node_type):
    return NODE_CAPTURE_TYPES.get(node_type, ((), None))


def _ovs_db_arg(remote):
    """ovs.ovsdb (unix:///p, tcp://h:p, h:p) -> ovs-vsctl --db value."""
    if remote.startswith("unix://"):
        return "unix:" + remote[len("unix://"):]
    if remote.startswith("tcp://"):
        return "tcp:" + remote[len("tcp://"):]
    if remote.startswith(("unix:", "tcp:", "ssl:")):
        return remote
    return "tcp:" + remote


class _Probe:
    """One running capture on one node."""

    def __init__(self, node_id, capture, ctype):
        self.node_id = node_id
        self.capture = capture
        self.cid = capture.get("UUID", "")
        self.type = ctype
        self.runner = None
        self.source = None
        self.entry = {}
        self.bridge = None          # ovssflow: bridge name configured
        self.stats = {}
        self.retry_task = None


class AgentCaptures(GraphListener):
    def __init__(self, agent):
        self.agent = agent
        self.graph = agent.graph
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
        self.sflow_bind = cfg.get_string("agent.flow.sflow.bind_address") or "127.0.0.1"
        self.sflow_ports = (cfg.get_int("agent.flow.sflow.port_min", 6345), cfg.get_int("agent.flow.sflow.port_max", 6355))
        self.pcapsocket_bind = cfg.get_string("agent.flow.pcapsocket.bind_address") or "127.0.0.1"
        self.pcapsocket_ports = (cfg.get_int("agent.flow.pcapsocket.min_port", 8100),
                                 cfg.get_int("agent.flow.pcapsocket.max_port", 8132))
        self.ovsdb = cfg.get_string("ovs.ovsdb") or "unix:///var/run/openvswitch/db.sock"
        self.probes = {}            # (node_id, capture uuid) -> _Probe
        self.loop = None
        self._stats_task = None
        self.flows_sent = 0
        self.running = False

    # ---- lifecycle ---------------------------------------------------------------------------
    def start(self):
        self.loop = asyncio.get_event_loop()
        self.running = True
        if self.agent.forwarder is not None:
            self.agent.forwarder.register_handler(NAMESPACE, self.handle)
        self.graph.add_listener(self)
        self._stats_task = asyncio.ensure_future(self._stats_loop())

    async def stop(self):
        self.running = False
        if self._stats_task is not None:
            self._stats_task.cancel()
            self._stats_task = None
        self.graph.remove_listener(self)
        for key in list(self.probes):
            probe = self.probes.pop(key)
            await self._stop_probe(probe)

    def status(self):
        out = {}
        for (nid, cid), p in self.probes.items():
            out.setdefault(cid, {})[nid] = {"Type": p.type, "State": p.entry.get("State"),
                                            "PacketsReceived": p.entry.get("PacketsReceived", 0)}
        return out

    # ---- requests ----------------------------------------------------------------------------
    async def handle(self, msg):
        mtype = msg.get("Type")
        obj = msg.get("Obj")
        reply_type = "StartReply" if mtype == "Start" else "StopReply" if mtype == "Stop" else None
        if reply_type is None:
            return None
        status, message = 200, ""
        try:
            if not isinstance(obj, dict) or not isinstance(obj.get("NodeID"), str) \
                    or not isinstance(obj.get("Resource"), dict) \
                    or not isinstance(obj["Resource"].get("UUID", ""), str):
                raise CaptureStartError(400, "expected {\"NodeID\": <id>, \"Resource\": <capture>}")
            if mtype == "Start":
                await self.start_capture(obj["NodeID"], obj["Resource"])
            else:
                await self.stop_capture(obj["NodeID"], obj["Resource"].get("UUID", ""))
        except CaptureStartError as exc:
            status, message = exc.status, str(exc)
        except Exception as exc:       # never let a request crash the agent
            log.exception("capture %s failed", mtype)
            status, message = 500, str(exc) or type(exc).__name__
        return {"Namespace": NAMESPACE, "Type": reply_type, "UUID": msg.get("UUID", ""), "Status": status,
                "Obj": message or None}

    async def start_capture(self, node_id, capture):
        node = self.graph.get_node(node_id)
        if node is None:
            raise CaptureStartError(404, "node %s not found" % node_id)
        cid = capture.get("UUID", "")
        key = (node_id, cid)
        if key in self.probes:
            return                               # already running (idempotent Start)
        ntype = node.Metadata.get("Type")
        allowed, default = capture_types_for(ntype)
        ctype = capture.get("Type") or default
        if ctype is None:
            raise CaptureStartError(400, "node %s of type %r cannot be captured" % (node_id, ntype))
        if ctype not in allowed:
            raise CaptureStartError(400, "%s capture is not supported on %s nodes" % (ctype, ntype))
        probe = _Probe(node_id, capture, ctype)
        entry = {"ID": cid, "State": "active", "Type": ctype}
        for k in ("Name", "Description", "BPFFilter"):
            if capture.get(k):
                entry[k] = capture[k]
        entry.update({"PacketsReceived": 0, "PacketsDropped": 0, "PacketsIfDropped": 0})
        probe.entry = entry
        self.probes[key] = probe
        try:
            await self._start_probe(probe, node)
        except CaptureStartError as exc:
            entry["State"] = "error"
            entry["Error"] = str(exc)
            self._publish(probe)
            probe.runner = None
            raise
        except Exception as exc:
            entry["State"] = "error"
            entry["Error"] = str(exc) or type(exc).__name__
            self._publish(probe)
            raise CaptureStartError(500, entry["Error"])
        if not self.running or self.probes.get(key) is not probe:   # stopped meanwhile
            await self._stop_probe(probe)
            return
        self._publish(probe)
        log.info("capture %s (%s) started on %s", cid, ctype, node.Metadata.get("Name"))

    async def stop_capture(self, node_id, cid):
        probe = self.probes.pop((node_id, cid), None)
        if probe is None:
            # still drop a stale entry (agent restarted, or error state)
            if self._remove_entry(node_id, cid):
                return
            raise CaptureStartError(404, "capture %s is not running on node %s" % (cid, node_id))
        await self._stop_probe(probe)
        self._remove_entry(node_id, cid)
        log.info("capture %s stopped on %s", cid, node_id)

    # ---- probes ------------------------------------------------------------------------------
    def _table(self, probe, node):
        c = probe.capture
        hs = c.get("HeaderSize") or 0
        try:
            return FlowTable(node_tid=node.Metadata.get("TID", "") or "", capture_id=probe.cid,
                             layer_key_mode=c.get("LayerKeyMode") or self.default_mode,
                             expire_ms=self.expire_ms, app_timeouts_ms=None if self.app_timeouts is None else
                             dict(self.app_timeouts.items()),
                             max_entries=self.max_entries, raw_packet_limit=int(c.get("RawPacketLimit") or 0),
                             header_size=0 if not hs else int(hs),
                             extra_tcp_metric=bool(c.get("ExtraTCPMetric")),
                             application_ports=self.app_ports or None)
        except FlowTableError as exc:
            raise CaptureStartError(400, str(exc))

    def _locate(self, node):
        loc = self.agent.locate_interface(node.ID)
        if loc is None or not loc.get("Name"):
            raise CaptureStartError(500, "cannot locate interface %s (%s) on this host"
                                    % (node.Metadata.get("Name"), node.ID))
        return loc["Name"], loc.get("NetNsPath") or None

    async def _start_probe(self, probe, node):
        c = probe.capture
        ctype = probe.type
        table = self._table(probe, node)
        bpf = c.get("BPFFilter") or None
        header_size = int(c.get("HeaderSize") or 0) or DEFAULT_HEADER_SIZE
        if ctype in ("afpacket", "pcap"):
            ifname, netns = self._locate(node)
            if ctype == "afpacket":
                from ..flow.afpacket import AFPacketSource as cls
            else:
                from ..flow.pcap import PcapSource as cls
            try:
                src = cls(ifname, netns=netns, bpf_filter=bpf, header_size=header_size)
            except (ValueError, OSError) as exc:
                raise CaptureStartError(400, str(exc))
        elif ctype == "ebpf":
            # in-kernel aggregation (flow/ebpf.py); the API refuses BPFFilter and raw packets here
            from ..flow.ebpf import EBPFFlowTable, EBPFSource
            if bpf or table.raw_packet_limit:
                raise CaptureStartError(400, "ebpf capture does not support BPF filters or raw packets")
            ifname, netns = self._locate(node)
            try:
                src = EBPFSource(ifname, netns=netns, max_flows=self.max_entries)
            except (ValueError, OSError) as exc:
                raise CaptureStartError(400, str(exc))
            table = EBPFFlowTable(src, table)
        elif ctype == "pcapsocket":
            from ..flow.pcapfile import PcapError, PcapSocketSource
            src = self._bind_in_range(lambda port: PcapSocketSource(self.pcapsocket_bind, port),
                                      self.pcapsocket_ports, PcapError, "pcapsocket")
            probe.entry["PCAPSocket"] = src.address
        elif ctype in ("sflow", "ovssflow"):
            from ..flow.sflow import SFlowError, SFlowSource
            src = self._bind_in_range(lambda port: SFlowSource(self.sflow_bind, port),
                                      self.sflow_ports, SFlowError, "sFlow")
            probe.entry["SFlowSocket"] = src.address
        else:
            raise CaptureStartError(400, "%s capture is not available on this agent" % ctype)
        if (bpf and ctype not in ("afpacket", "pcap")) or ctype == "pcapsocket":
            # the source cannot filter in the kernel: filter in user space before the table
            table = _WrappedTable(table, bpf if ctype not in ("afpacket", "pcap") else None,
                                  packet_clock=ctype == "pcapsocket")
        probe.source = src
        runner = CaptureRunner(src, table, on_flows=self._on_flows, on_stats=lambda st, p=probe: self._on_stats(p, st),
                               update_ms=self.update_ms, stats_ms=self.stats_ms, loop=self.loop,
                               on_error=lambda exc, p=probe: self._on_error(p, exc),
                               name="capture-%s-%s" % (probe.cid[:8], node.Metadata.get("Name", "")))
        probe.runner = runner
        try:
            await self.loop.run_in_executor(None, runner.start)
        except Exception as exc:
            probe.runner = None
            try:
                src.close()
            except Exception:
                pass
            raise CaptureStartError(500, str(exc) or type(exc).__name__)
        if ctype == "ovssflow":
            bridge = node.Metadata.get("Name")
            try:
                await self._ovs_sflow(bridge, src.address, c)
            except Exception as exc:
                await self.loop.run_in_executor(None, runner.stop)
                probe.runner = None
                raise CaptureStartError(500, "cannot configure sFlow on %s: %s" % (bridge, exc))
            probe.bridge = bridge

    @staticmethod
    def _bind_in_range(make, ports, error_cls, what):
        lo, hi = ports
        last = None
        for port in range(int(lo), int(hi) + 1):
            src = make(port)
            try:
                src.open()
                return src
            except (error_cls, OSError) as exc:
                last = exc
        raise CaptureStartError(500, "no free %s port in %s-%s: %s" % (what, lo, hi, last))

    def _vsctl(self, *args):
        exe = shutil.which("ovs-vsctl")
        if exe is None:
            raise RuntimeError("ovs-vsctl is not installed")
        p = subprocess.run([exe, "--db=" + _ovs_db_arg(self.ovsdb), "--timeout=10"] + list(args),
                           capture_output=True, text=True, timeout=20, check=False)
        if p.returncode != 0:
            raise RuntimeError(p.stderr.strip() or "ovs-vsctl failed (%d)" % p.returncode)
        return p.stdout

    async def _ovs_sflow(self, bridge, target, capture):
        sampling = int(capture.get("SamplingRate") or 1)
        polling = int(capture.get("PollingInterval") or 10)
        header = int(capture.get("HeaderSize") or 128)
        await self.loop.run_in_executor(
            None, self._vsctl, "--", "--id=@s", "create", "sflow", "agent=lo", 'target="%s"' % target,
            "header=%d" % header, "sampling=%d" % sampling, "polling=%d" % polling,
            "external_ids:skydive-capture=%s" % json.dumps(capture.get("UUID", "")),
            "--", "set", "bridge", bridge, "sflow=@s")

    async def _stop_probe(self, probe):
        t, probe.retry_task = probe.retry_task, None
        if t is not None and t is not asyncio.current_task():
            t.cancel()
        if probe.bridge:
            try:
                await self.loop.run_in_executor(None, self._vsctl, "--if-exists", "clear", "bridge",
                                                probe.bridge, "sflow")
            except Exception as exc:
                log.warning("capture %s: removing sFlow from %s: %s", probe.cid, probe.bridge, exc)
            probe.bridge = None
        runner, probe.runner = probe.runner, None
        if runner is not None:
            await self.loop.run_in_executor(None, runner.stop)

    # ---- node Captures -----------------------------------------------------------------------
    def _publish(self, probe):
        node = self.graph.get_node(probe.node_id)
        if node is None:
            return
        caps = node.Metadata.get("Captures")
        caps = [dict(x) for x in caps if isinstance(x, dict)] if isinstance(caps, list) else []
        for i, x in enumerate(caps):
            if x.get("ID") == probe.cid:
                if x == probe.entry:
                    return
                caps[i] = dict(probe.entry)
                break
        else:
            caps.append(dict(probe.entry))
        self.graph.update_metadata(node, {"Captures": caps})

    def _remove_entry(self, node_id, cid):
        node = self.graph.get_node(node_id)
        if node is None:
            return False
        caps = node.Metadata.get("Captures")
        if not isinstance(caps, list):
            return False
        kept = [dict(x) for x in caps if not (isinstance(x, dict) and x.get("ID") == cid)]
        if len(kept) == len(caps):
            return False
        if kept:
            self.graph.update_metadata(node, {"Captures": kept})
        else:
            self.graph.del_metadata(node, "Captures")
        return True

    def _on_stats(self, probe, st):
        if self.probes.get((probe.node_id, probe.cid)) is not probe:
            return
        probe.stats = st
        for k in ("PacketsReceived", "PacketsDropped", "PacketsIfDropped"):
            probe.entry[k] = int(st.get(k, 0) or 0)
        self._publish(probe)
        self._send({"Flows": [], "Stats": dict(st, NodeID=probe.node_id)})

    def _on_error(self, probe, exc):
        if self.probes.get((probe.node_id, probe.cid)) is not probe:
            return
        log.warning("capture %s on %s failed: %s", probe.cid, probe.node_id, exc)
        probe.entry["State"] = "error"
        probe.entry["Error"] = str(exc) or type(exc).__name__
        self._publish(probe)
        # the interface may come back (link down, namespace churn): retry with backoff while
        # the node exists; a deleted node stops the capture (on_node_deleted)
        if self.running and probe.retry_task is None:
            probe.retry_task = asyncio.ensure_future(self._retry(probe))

    async def _retry(self, probe):
        delay = 1.0
        key = (probe.node_id, probe.cid)
        try:
            while self.running and self.probes.get(key) is probe:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
                node = self.graph.get_node(probe.node_id)
                if node is None or self.probes.get(key) is not probe:
                    return
                old, probe.runner = probe.runner, None
                if old is not None:
                    await self.loop.run_in_executor(None, old.stop)
                try:
                    await self._start_probe(probe, node)
                except CaptureStartError as exc:
                    probe.entry["Error"] = str(exc)
                    self._publish(probe)
                    continue
                await asyncio.sleep(0.3)          # did it survive its first reads?
                r = probe.runner
                if r is not None and r.running and self.probes.get(key) is probe:
                    probe.entry["State"] = "active"
                    probe.entry.pop("Error", None)
                    self._publish(probe)
                    log.info("capture %s on %s recovered", probe.cid, probe.node_id)
                    return
                if self.probes.get(key) is not probe:
                    await self._stop_probe(probe)
                    return
        finally:
            probe.retry_task = None

    async def _stats_loop(self):
        # the runner's own stats come every stats_ms while it runs; this only refreshes
        # probes whose runner ended (error) so that the node keeps its last counters
        while self.running:
            await asyncio.sleep(self.stats_ms / 1000.0)
            for probe in list(self.probes.values()):
                r = probe.runner
                if r is not None and not r.running and r.error is not None \
                        and probe.entry.get("State") != "error":
                    self._on_error(probe, r.error)

    # ---- flows -------------------------------------------------------------------------------
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

    # ---- graph listener: a captured node that disappears ---------------------------------------
    def on_node_deleted(self, node):
        for key in [k for k in self.probes if k[0] == node.ID]:
            probe = self.probes.pop(key)
            log.info("capture %s: node %s (%s) deleted, capture stopped", probe.cid,
                     node.Metadata.get("Name"), node.ID)
            asyncio.ensure_future(self._stop_probe(probe))


class _WrappedTable(object):
    """A FlowTable behind a user-space BPF filter (sources that cannot filter in the kernel:
    pcapsocket, sflow, ovssflow) and/or on a packet clock (pcapsocket: a replayed pcap keeps its
    own timestamps, so timers run on packet time that then elapses with the wall clock: flows are
    neither expired at once nor stamped with the replay time). Quacks like the FlowTable for
    CaptureRunner."""

    def __init__(self, table, expr=None, packet_clock=False):
        self._t = table
        self._m = None
        if expr:
            from ..flow.bpf import BPFMatcher
            self._m = BPFMatcher(expr)
        self.packet_clock = packet_clock
        self._pkt_ms = 0
        self._wall_ms = 0
        self.capture_id = table.capture_id

    def process(self, data, ts_ns, wire_len=0, linktype=None):
        if self._m is not None and not self._m.match(data, wire_len or len(data)):
            return
        if self.packet_clock:
            ms = ts_ns // 1000000
            if ms >= self._pkt_ms:
                self._pkt_ms = ms
                self._wall_ms = time.time_ns() // 1000000
        self._t.process(data, ts_ns, wire_len, linktype)

    def _now(self, now_ms):
        if self.packet_clock and self._pkt_ms:
            return self._pkt_ms + max(0, now_ms - self._wall_ms)
        return now_ms

    def tick(self, now_ms):
        return self._t.tick(self._now(now_ms))

    def flush(self, now_ms):
        return self._t.flush(self._now(now_ms))

    def stats(self):
        return self._t.stats()

    def __len__(self):
        return len(self._t)


__all__ = ["AgentCaptures", "NODE_CAPTURE_TYPES", "FLOW_NAMESPACE", "FLOW_UPDATE", "capture_types_for"]
