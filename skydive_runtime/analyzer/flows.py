"""Flows on the analyzer: live flow cache, flow history, the flow feed and POST /api/pcap.

    svc = install_flows(analyzer, app, guard)   # from Analyzer.build(); svc.start() / svc.stop()

- Agents send `{"Namespace": "Flow", "Type": "FlowUpdate", "Obj": {"Flows": [Flow JSON...],
  "Stats": {...}}}` on their `/ws/agent/topology` link (agent/captures.py). Every flow is kept in
  the live cache (per agent, by UUID; dropped when it carries FinishType TIMEOUT (removed from the
  agent's table), 15 s + 2 x `flow.update` after the `Last` of a TCP_FIN/TCP_RST flow, when its
  capture is deleted, when its agent disconnects, or `flow.expire` + 2 x `flow.update` after its
  `Last`)
  and written to the flow store (`store_flows`) for `G.At(...).Flows()` and flow `Metrics()`.
- `/ws/subscriber/flow`: namespace `flow` (Type `store`, Obj = the batch of flows), namespace
  `flow/<CaptureID>` (same, only that capture's flows; sent to clients that asked for that
  namespace explicitly) and `stats` (Type `stats`, Obj = a capture's counters).
- `POST /api/pcap` (body: a pcap file): decoded into a temporary flow table on packet time and
  stored (202); bad pcap -> 400 with the reason.
- Gremlin flow steps (analyzer/flow_steps.py) read the live cache and the store through the
  query context extras `flow_cache` and `flow_store`.
"""

import asyncio
import logging
import time

from aiohttp import web

from ..api import graph_ws
from ..api.http import HTTPError
from ..api.ws import Endpoint
from ..common.timeutil import now_ms

log = logging.getLogger(__name__)

FLOW_NAMESPACE = "Flow"
FLOW_UPDATE = "FlowUpdate"
FLOW_SUBSCRIBER = "/ws/subscriber/flow"
MAX_PCAP_BYTES = 256 * 1024 * 1024
HOLD_MS = 15000             # flow table hold time of finished TCP flows (flow/table.py)


INDEXED = (("UUID",), ("TrackingID",), ("NodeTID",), ("CaptureID",), ("Application",),
           ("Network", "A"), ("Network", "B"), ("Link", "A"), ("Link", "B"))
INDEXED_NAMES = tuple(".".join(k) for k in INDEXED)


def _field(f, path):
    v = f.get(path[0])
    if len(path) > 1:
        v = v.get(path[1]) if isinstance(v, dict) else None
    return v


class FlowCache:
    """Live flows by UUID (and by agent), each the latest Flow JSON received, with equality
    indexes on the fields a flow search usually pins (storage.base.PUSHDOWN_FIELDS)."""

    def __init__(self, expire_ms=600000, update_ms=60000):
        self.flows = {}             # uuid -> flow dict
        self.host_of = {}           # uuid -> agent host id
        self.by_host = {}           # host -> set(uuid)
        self.index = {name: {} for name in INDEXED_NAMES}   # field -> value -> set(uuid)
        self.grace_ms = expire_ms + 2 * update_ms
        # TCP_FIN/TCP_RST flows stay in the agent's table for the hold time (15 s) after their
        # last packet: they stay live here as long (+ 2 updates); TIMEOUT means removed
        self.hold_ms = HOLD_MS + 2 * update_ms
        self.finished = {}          # uuid -> time after which a FIN/RST flow is dropped
        self.stopped = {}           # capture id -> time it was deleted (ms)
        self.received = 0

    def __len__(self):
        return len(self.flows)

    def _index(self, u, f, add):
        for name, path in zip(INDEXED_NAMES, INDEXED):
            v = _field(f, path)
            if isinstance(v, str) and v:
                bucket = self.index[name]
                if add:
                    bucket.setdefault(v, set()).add(u)
                else:
                    s = bucket.get(v)
                    if s is not None:
                        s.discard(u)
                        if not s:
                            del bucket[v]

    def update(self, host, flows):
        stopped = self.stopped
        for f in flows:
            u = f["UUID"]
            fin = f.get("FinishType")
            if fin == "TIMEOUT" or (stopped and f.get("CaptureID") in stopped):
                self._drop(u)
                continue
            if fin:
                self.finished[u] = (f.get("Last") or 0) + self.hold_ms
            old_host = self.host_of.get(u)
            if old_host != host:
                if old_host is not None:
                    self.by_host.get(old_host, set()).discard(u)
                self.host_of[u] = host
                self.by_host.setdefault(host, set()).add(u)
            old = self.flows.get(u)
            if old is not None:
                self._index(u, old, False)
            self.flows[u] = f
            self._index(u, f, True)
        self.received += len(flows)

    def _drop(self, u):
        self.finished.pop(u, None)
        f = self.flows.pop(u, None)
        if f is not None:
            self._index(u, f, False)
            h = self.host_of.pop(u, None)
            s = self.by_host.get(h)
            if s is not None:
                s.discard(u)

    def drop_host(self, host):
        for u in list(self.by_host.pop(host, ())):
            f = self.flows.pop(u, None)
            if f is not None:
                self._index(u, f, False)
            self.host_of.pop(u, None)
            self.finished.pop(u, None)

    def drop_capture(self, cid):
        self.stopped[cid] = now_ms()
        for u in list(self.index["CaptureID"].get(cid, ())):
            self._drop(u)

    def expire_finished(self, now=None):
        now = now if now is not None else now_ms()
        done = [u for u, t in self.finished.items() if t < now]
        for u in done:
            self._drop(u)
        return len(done)

    def expire(self, now=None):
        now = now if now is not None else now_ms()
        self.expire_finished(now)
        cutoff = now - self.grace_ms
        old = [u for u, f in self.flows.items() if (f.get("Last") or 0) < cutoff]
        for u in old:
            self._drop(u)
        for cid in [c for c, t in self.stopped.items() if t < now - 3600000]:
            del self.stopped[cid]
        return len(old)

    def all(self):
        return list(self.flows.values())

    def by_node_tids(self, tids):
        return self.candidates([[("NodeTID", frozenset(tids))]])

    def candidates(self, constraints):
        """Flows meeting `constraints` (storage.base.flow_pushdown form: a list of disjunctions of
        (field, values)); every flow when there is none. The caller still applies the filter."""
        result = None
        for disjunction in constraints:
            ids = set()
            for field, values in disjunction:
                bucket = self.index.get(field)
                if bucket is None:
                    ids = None
                    break
                for v in values:
                    ids.update(bucket.get(v, ()))
            if ids is None:
                continue
            result = ids if result is None else (result & ids)
            if not result:
                return []
        if result is None:
            return list(self.flows.values())
        flows = self.flows
        return [flows[u] for u in result if u in flows]


class FlowSubscriberEndpoint(Endpoint):
    path = FLOW_SUBSCRIBER
    auth = "api"


class FlowService:
    def __init__(self, analyzer, app, guard):
        self.analyzer = analyzer
        cfg = analyzer.config
        self.update_ms = max(1, int(cfg.get_float("flow.update", 60) * 1000))
        self.expire_ms = max(1, int(cfg.get_float("flow.expire", 600) * 1000))
        self.max_buffer = cfg.get_int("analyzer.flow.max_buffer_size", 100000, minimum=1)
        self.cache = FlowCache(self.expire_ms, self.update_ms)
        self.store = self._flow_store()
        self.server = analyzer.ws.server
        self.stored = 0
        self.store_errors = 0
        self.dropped = 0
        self.stats = {}            # capture id -> last stats
        self._task = None
        self.captures = None
        self.server.namespace_handlers[FLOW_NAMESPACE] = self.on_agent_message
        self.server.add_endpoint(app, FlowSubscriberEndpoint())
        self.server.listeners.append(self)
        self._mount_pcap(app, guard)
        from . import flow_steps
        flow_steps.register()
        analyzer.engine.extras["flow_cache"] = self.cache
        analyzer.engine.extras["flow_store"] = self.store
        from .captures import CaptureManager
        self.captures = CaptureManager(analyzer, flows=self)

    def _flow_store(self):
        a = self.analyzer
        from ..config import ConfigError
        from ..storage import StoreError, open_store
        tname = a.config.get_string("analyzer.topology.backend") or "memory"
        fname = a.config.get_string("analyzer.flow.backend") or "memory"
        if fname == tname:
            store = a.store
        else:
            name, section = a.config.storage_section("analyzer.flow.backend")
            try:
                store = open_store(section, name)
            except StoreError as exc:
                raise ConfigError("analyzer.flow.backend: %s" % exc) from None
            self._own_store = store
        if store is None or not getattr(store, "supports_flows", False):
            return None
        return store

    # ---- lifecycle --------------------------------------------------------------------------
    def start(self):
        self._task = asyncio.ensure_future(self._expiry_loop())
        self.analyzer.resources.watchers.append(self)   # deleted captures: their live flows go

    def stop(self):
        if self in self.analyzer.resources.watchers:
            self.analyzer.resources.watchers.remove(self)
        if self._task is not None:
            self._task.cancel()
            self._task = None
        own = getattr(self, "_own_store", None)
        if own is not None:
            try:
                own.close()
            except Exception:
                log.exception("closing the flow store failed")
            self._own_store = None

    async def _expiry_loop(self):
        full_every = max(1, int(min(10.0, self.update_ms / 1000.0)))
        n = 0
        while True:
            await asyncio.sleep(1.0)
            n += 1
            try:
                if n % full_every == 0:
                    self.cache.expire()
                else:
                    self.cache.expire_finished()
            except Exception:
                log.exception("flow cache expiry failed")

    def status(self):
        return {"LiveFlows": len(self.cache), "Received": self.cache.received, "Stored": self.stored,
                "Dropped": self.dropped}

    # ---- agents -------------------------------------------------------------------------------
    def on_ws_connect(self, conn):
        pass

    def on_ws_disconnect(self, conn):
        if conn.path == graph_ws.AGENT:
            self.cache.drop_host(conn.host_id)

    def capture_stopped(self, cid):
        self.cache.drop_capture(cid)

    def on_resource_deleted(self, kind, obj):
        """A capture deleted here or on another analyzer of the cluster (only the master of
        the captures duty stops it on the agents)."""
        if kind == "capture" and isinstance(obj, dict):
            self.capture_stopped(obj.get("UUID", ""))

    def on_agent_message(self, conn, msg):
        if conn.path != graph_ws.AGENT:
            log.debug("flow message on %s ignored", conn.path)
            return
        if msg.get("Type") != FLOW_UPDATE:
            return
        obj = msg.get("Obj")
        if not isinstance(obj, dict):
            return
        flows = obj.get("Flows") or []
        if not isinstance(flows, list):
            return
        good = [f for f in flows if isinstance(f, dict) and isinstance(f.get("UUID"), str) and f["UUID"]]
        if len(good) != len(flows):
            log.warning("agent %s: %d malformed flows dropped", conn.host_id, len(flows) - len(good))
        if good:
            self.ingest(conn.host_id, good)
        st = obj.get("Stats")
        if isinstance(st, dict) and st.get("CaptureID"):
            self.stats[st["CaptureID"]] = st
            self._broadcast_stats(st)

    def ingest(self, host, flows):
        self.cache.update(host, flows)
        self.store_history(flows)
        self._broadcast_flows(flows)
        cluster = getattr(self.analyzer, "cluster", None)
        if cluster is not None and cluster.replication is not None:
            cluster.replication.flows_received(host, flows)

    def broadcast_flows(self, flows):
        """Flows of another analyzer's agents (replication) to our flow subscribers."""
        self._broadcast_flows(flows)

    def store_history(self, flows):
        if self.store is None:
            return
        batch = []
        for f in flows:
            if "LastRawPackets" in f:
                f = {k: v for k, v in f.items() if k != "LastRawPackets"}
            batch.append(f)
        if len(batch) > self.max_buffer:
            self.dropped += len(batch) - self.max_buffer
            batch = batch[:self.max_buffer]
        try:
            self.store.store_flows(batch)
            self.stored += len(batch)
        except Exception as exc:
            self.store_errors += 1
            log.warning("storing %d flows failed: %s", len(batch), exc)

    # ---- /ws/subscriber/flow --------------------------------------------------------------------
    def _broadcast_flows(self, flows):
        conns = self.server.connections(FLOW_SUBSCRIBER)
        if not conns:
            return
        public = [_public(f) for f in flows]
        self.server.broadcast(FLOW_SUBSCRIBER, "flow", "store", public)
        explicit = [c for c in conns.values() if "*" not in c.namespaces]
        if not explicit:
            return
        by_capture = {}
        for f in public:
            by_capture.setdefault(f.get("CaptureID", ""), []).append(f)
        for cid, fl in by_capture.items():
            ns = "flow/%s" % cid
            for c in explicit:
                if ns in c.namespaces:
                    c.send(ns, "store", fl)

    def _broadcast_stats(self, st):
        if self.server.connections(FLOW_SUBSCRIBER):
            self.server.broadcast(FLOW_SUBSCRIBER, "stats", "stats", st)

    # ---- POST /api/pcap --------------------------------------------------------------------------
    def _mount_pcap(self, app, guard):
        async def post_pcap(request):
            guard(request, "pcap", "write")
            if request.content_length is not None and request.content_length > MAX_PCAP_BYTES:
                raise HTTPError(413, "pcap too large (max %d bytes)" % MAX_PCAP_BYTES)
            data = await request.read()
            if self.store is None:
                raise HTTPError(400, "No storage backend has been configured")
            loop = asyncio.get_event_loop()
            try:
                flows = await loop.run_in_executor(None, pcap_flows, data, self.analyzer.config)
            except ValueError as exc:
                raise HTTPError(400, "invalid pcap: %s" % exc) from None
            self.store_history(flows)
            self._broadcast_flows(flows)
            return web.Response(status=202, body=b"", headers={"Content-Type": "text/plain; charset=utf-8"})
        app.router.add_post("/api/pcap", post_pcap)
        app.router.add_post("/api/pcap/", post_pcap)


def pcap_flows(data, config=None):
    """Flows of a whole pcap file (bytes), decoded on packet time into a temporary table."""
    from ..flow.capture import ingest_pcap
    from ..flow.pcapfile import PcapError
    from ..flow.table import FlowTable
    if not data:
        raise ValueError("empty body")
    ports = {}
    mode = "L2"
    if config is not None:
        ports = config.get("flow.application_ports") or {}     # {"tcp": {port: name}, "udp": {..}}
        ports = {k: v for k, v in ports.items() if v} if isinstance(ports, dict) else {}
        mode = config.get_string("flow.default_layer_key_mode") or "L2"
    table = FlowTable(layer_key_mode=mode, application_ports=ports or None)
    t0 = time.monotonic()
    try:
        flows = ingest_pcap(bytes(data), table)
    except PcapError as exc:
        raise ValueError(str(exc)) from None
    log.info("pcap of %d bytes: %d flows in %.3fs", len(data), len(flows), time.monotonic() - t0)
    return flows


def _public(f):
    if "LastRawPackets" in f:
        return {k: v for k, v in f.items() if k != "LastRawPackets"}
    return f


def install_flows(analyzer, app, guard):
    return FlowService(analyzer, app, guard)
