"""The analyzer service: live graph + store + REST/WebSocket API + topology rules.

    analyzer = Analyzer(config)
    await analyzer.start()          # listening on analyzer.listen (port 0: a free port)
    analyzer.port / analyzer.url    # where it listens
    ...
    await analyzer.stop()
    # or: await analyzer.run_forever()   (serves until cancelled / SIGTERM / SIGINT)

Hook points for later layers: `analyzer.resources.watchers` (on_resource_created/deleted(kind,
obj)), `analyzer.ws.server` (connection registry: `.connections(AGENT)`, `conn.request(...)`,
`.namespace_handlers[ns]`, `.broadcast(...)`), `analyzer.engine` (Gremlin), `analyzer.graph`.
"""

import asyncio
import logging
import ssl

from aiohttp import web

from ..api import graph_ws
from ..api.audit.run import mount_audit
from ..api.auth import make_authenticators, warn_if_open
from ..api.limits import Limits, configure as configure_limits, start_runner
from ..api.metrics import mount_metrics
from ..api.query import QueryEngine
from ..api.resources import DuplicateError, ResourceError, ResourceHandler, ResourceStore, backend_of
from ..api.server import make_app, make_guard, mount_config, mount_info, mount_login, mount_status, mount_topology
from ..api.topology_diff import mount_topology_diff
from ..api.ws import WSOptions
from ..common.parts import Parts
from ..common.service import raise_fd_limit, serve_until_signalled
from ..config import ConfigError
from ..graph import Graph
from ..ui import mount_ui
from .actions import ActionPolicy
from .alerts import AlertManager
from .cluster import Cluster, MasterOnly, etcd_resources
from .flows import install_flows
from .injections import InjectionManager
from .kinds import KINDS
from .metrics import analyzer_metrics
from .probes import PROBES
from .rules import TopologyRules
from .pingmesh import mount_pingmesh
from .workflows import WorkflowBackend, mount_workflows

log = logging.getLogger(__name__)


def restorable_origin(origin):
    """Elements the analyzer puts back from its store at start: all but the agents' (each agent
    sends its whole subgraph again when it reconnects)."""
    return not origin.startswith("agent.")


def _ssl_context(config):
    cert = config.get_string("tls.server_cert")
    key = config.get_string("tls.server_key")
    if not cert and not key:
        return None
    if not cert or not key:
        raise ConfigError("tls.server_cert and tls.server_key must be set together")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        ctx.load_cert_chain(cert, key)
        ca = config.get_string("tls.ca_cert")
        if ca:
            ctx.load_verify_locations(ca)
            if config.get_bool("tls.require_client_cert", False):
                ctx.verify_mode = ssl.CERT_REQUIRED
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError("tls: cannot load certificates: %s" % exc) from None
    return ctx


class Analyzer:
    service_type = "analyzer"

    def __init__(self, config):
        self.config = config
        self.host_id = config.host_id()
        self.listen_host, self.listen_port = config.get_listen("analyzer.listen")
        self.probe_names = PROBES.selected(config.get_list("analyzer.topology.probes"))
        if config.get_map("analyzer.peers"):
            raise ConfigError("analyzer.peers: peering between analyzers is not implemented for separate clusters "
                              "(upstream's analyzer.peers.<cluster>); the analyzers of one cluster replicate each other "
                              "when each lists them all in `analyzers` (docs/scale-out.md)")
        self.graph = None
        self.probes = {}           # name -> topology probe (analyzer/probes.py)
        self.parts = Parts()       # probes and managers: started, stopped and reported in order
        self.store = None
        self.engine = None
        self.resources = None
        self.handlers = {}         # kind name -> api/resources.py ResourceHandler (analyzer/kinds.py)
        self.kinds = {}            # kind name -> its ResourceKind
        self.ws = None
        self.rules = None
        self.etcd_member = None    # etcd.embedded: analyzer/etcd_member.py
        self.cluster = None        # analyzer/cluster.py: etcd, elections, replication (docs/scale-out.md)
        self.flows = None          # analyzer/flows.py FlowService (captures, flows, /api/pcap)
        self.injections = None     # analyzer/injections.py InjectionManager (OnDemandPacketInjection)
        self.alerts = None         # analyzer/alerts.py AlertManager
        self.app = None
        self.port = None
        self._runner = None
        self._tasks = []
        self._ssl = None
        self._conn_guard = None
        self.limits = None

    @property
    def url(self):
        return "%s://%s:%d" % ("https" if self._ssl else "http", self.listen_host, self.port)

    # ---- construction -----------------------------------------------------------------------------
    def _open_store(self):
        from ..storage import MemoryStore, StoreCorrupt, StoreError, open_store
        name, section = self.config.storage_section("analyzer.topology.backend")
        try:
            store = open_store(section, name)
        except StoreCorrupt:
            raise
        except StoreError as exc:
            raise ConfigError("analyzer.topology.backend: %s" % exc) from None
        history = None if isinstance(store, MemoryStore) else store
        return store, history

    def _authenticators(self):
        return make_authenticators(self.config, {"api": "analyzer.auth.api.backend",
                                                 "cluster": "analyzer.auth.cluster.backend"}, admin=("cluster",))

    def build(self):
        """Create the graph, store, engine and the aiohttp application (no socket yet)."""
        self._ssl = _ssl_context(self.config)
        self.graph = Graph(host_id=self.host_id, origin="analyzer.%s" % self.host_id)
        self.store, history = self._open_store()
        self.store.attach(self.graph, restore=restorable_origin)
        self.engine = QueryEngine(self.graph, history=history).configure(self.config)
        shared = etcd_resources(self.config)     # etcd.servers / etcd.embedded: resources shared by the cluster
        self.etcd_member = getattr(shared, "member", None)
        self.resources = ResourceStore(shared if shared is not None else self.store)
        kinds = [cls(self.engine) for cls in KINDS]
        self.resources.load([k.name for k in kinds if k.backend == "stored"])
        authn = self._authenticators()
        warn_if_open("analyzer", self.listen_host, authn)
        guard = make_guard(authn["api"])
        self.limits = configure_limits(Limits.from_config(self.config))
        app = make_app(self.config.get_list("http.allowed_origins"))
        mount_info(app, self.host_id, self.service_type, guard)
        mount_login(app, authn["api"])
        mount_status(app, self.status, guard)
        mount_metrics(app, lambda: analyzer_metrics(self), guard)
        mount_config(app, self.config, guard)
        mount_topology(app, self.graph, self.engine, guard)
        mount_topology_diff(app, self.engine, guard)
        mount_audit(app, self.engine, guard)
        origin = "api.%s" % self.host_id
        for kind in kinds:
            backend = backend_of(kind, self.resources, self.graph, origin, self.store)
            if kind.name == "workflow":
                backend = WorkflowBackend(backend)      # the built-ins, run natively
            handler = ResourceHandler(kind, backend, guard)
            handler.register(app)
            self.handlers[kind.name] = handler
            self.kinds[kind.name] = kind
        self.action_policy = ActionPolicy.from_config(self.config)
        self.kinds["alert"].action_check = self.action_policy.check   # refused actions: 400 at creation
        self.ws = graph_ws.mount_graph_ws(
            app, self.graph, WSOptions.from_config(self.config, self.service_type), self.engine,
            authenticators=authn,
            endpoints=(graph_ws.SUBSCRIBER, graph_ws.PUBLISHER, graph_ws.PUBSUB, graph_ws.AGENT))
        self.parts = Parts()
        self.cluster = self.parts.add(Cluster(self, shared))
        self.cluster.mount(app)
        if self.cluster.replication is not None:   # agents then use one analyzer of the cluster at a time
            self.ws.server.response_headers["X-Skydive-Cluster"] = "replicated"
        self.probes = {name: self.parts.add(PROBES.create(name, self), "Probes", name) for name in self.probe_names}
        self.rules = TopologyRules(self.graph, self.engine, self.resources)
        self.parts.add(MasterOnly(self.rules, "rules", self.cluster) if shared is not None else self.rules)
        self.flows = self.parts.add(install_flows(self, app, guard))
        self.injections = InjectionManager(self)
        if shared is not None:       # one analyzer of the cluster drives them all (analyzer/election.py)
            self.parts.add(MasterOnly(self.flows.captures, "captures", self.cluster), "Captures")
            self.parts.add(MasterOnly(self.injections, "injections", self.cluster))
        else:
            self.parts.add(self.flows.captures, "Captures")
            self.parts.add(self.injections)
        self.alerts = self.parts.add(AlertManager(self), "Alerts")
        self._gate_shared_stores(shared)
        self.alerts.is_master = lambda: self.cluster.is_master("alerts")
        mount_workflows(self, app, guard)
        mount_pingmesh(self, app, guard)
        mount_ui(app)
        self.app = app
        return app

    def _gate_shared_stores(self, shared):
        """A store the cluster shares (ClickHouse): pruned by the history master only; with
        replication each analyzer records only the changes made on it (not its peers')."""
        stores = {id(s): s for s in (self.store, self.flows.store) if s is not None}.values()
        rep = self.cluster.replication
        for store in stores:
            if shared is not None and hasattr(store, "prune_gate"):
                store.prune_gate = lambda: self.cluster.is_master("history")
            if rep is not None and hasattr(store, "record_gate"):
                store.record_gate = lambda: not rep.applying

    def status(self):
        srv = self.ws.server
        publishers = dict(srv.status(graph_ws.PUBLISHER))
        publishers.update(srv.status(graph_ws.PUBSUB))
        subscribers = dict(srv.status(graph_ws.SUBSCRIBER))
        subscribers.update(srv.status(graph_ws.PUBSUB))
        agents, incomers, outgoers = {}, {}, {}
        for host, st in srv.status(graph_ws.AGENT).items():
            # an analyzer forwarding its graph to this one is a peer, not an agent
            (incomers if st.get("ServiceType") == "analyzer" else agents)[host] = st
        if self.cluster.replication is not None:    # the /ws/replication links (analyzer/replication.py)
            peers = self.cluster.replication.status()
            incomers.update(peers["Incomers"])
            outgoers.update(peers["Outgoers"])
        st = {"Agents": agents, "Peers": {"Incomers": incomers, "Outgoers": outgoers},
              "Publishers": publishers, "Subscribers": subscribers, "Probes": {}}
        st.update(self.parts.status())      # Probes, Alerts and Captures {"IsMaster": ...}
        st.update(self.cluster.status())    # Masters: {duty: host}
        return st

    def _startup_capture(self):
        query = self.config.get_string("analyzer.startup.capture_gremlin")
        if not query:
            return
        data = {"GremlinQuery": query, "BPFFilter": self.config.get_string("analyzer.startup.capture_bpf"),
                "Type": self.config.get_string("analyzer.startup.capture_type"), "Name": "startup capture"}
        try:
            self.handlers["capture"].create_object(data)
        except DuplicateError:
            pass
        except ResourceError as exc:
            raise ConfigError("analyzer.startup.capture_gremlin: %s" % exc) from None

    # ---- lifecycle -----------------------------------------------------------------------------------
    async def start(self):
        try:
            await self._start()
        except BaseException:          # a configuration error half-way: release what was opened
            await self.stop()
            raise
        return self

    async def _start(self):
        if self.app is None:
            self.build()
        await self.parts.start()
        self._startup_capture()
        raise_fd_limit()
        self._runner, self._conn_guard = await start_runner(self.app, self.limits)
        site = web.TCPSite(self._runner, self.listen_host, self.listen_port, ssl_context=self._ssl,
                           reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            raise ConfigError("analyzer.listen: cannot listen on %s:%d: %s"
                              % (self.listen_host, self.listen_port, exc.strerror)) from None
        sockets = site._server.sockets if site._server else ()
        self.port = sockets[0].getsockname()[1] if sockets else self.listen_port
        self._tasks.append(asyncio.ensure_future(self._expiry_loop()))
        log.info("analyzer %s listening on %s", self.host_id, self.url)

    async def _expiry_loop(self):
        while True:
            await asyncio.sleep(1.0)
            try:   # the store's part in a thread: it waits for the writer
                expired = await asyncio.get_running_loop().run_in_executor(
                    None, self.store.expire_resources, self.resources.now())
                self.resources.expire(expired)
            except Exception:
                log.exception("resource expiry failed")

    async def stop(self):
        for t in self._tasks:
            t.cancel()
        self._tasks = []
        await self.parts.stop()         # alerts, injections, captures, flows, rules, probes
        if self.ws is not None:
            await self.ws.server.close_all()
        if self._conn_guard is not None:
            self._conn_guard.stop()
            self._conn_guard = None
        if self.engine is not None:
            self.engine.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self.store is not None:
            try:
                self.store.close()
            except Exception:
                log.exception("closing the store failed")
            self.store = None
        if self.etcd_member is not None:     # after the cluster part let go of it
            await asyncio.get_running_loop().run_in_executor(None, self.etcd_member.stop)
            self.etcd_member = None
        self.app = None

    async def run_forever(self):
        await serve_until_signalled(self)
