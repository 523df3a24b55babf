"""The agent service: topology probes on the local graph, the link to the analyzers, and its own
HTTP/WebSocket API (`/api`, `/login`, `/api/status`, `/api/topology`, `/ws/subscriber`,
`/ws/publisher`, served by the shared handlers of skydive_runtime.api).

    agent = Agent(config)
    await agent.start()      # probes started, first netlink dump applied, API listening
    agent.graph / agent.port / agent.url / agent.status()
    agent.forwarder.register_handler("OnDemandCapture", fn)   # requests from the analyzer
    await agent.stop()
    # or: await agent.run_forever()
"""

import asyncio
import logging

from aiohttp import web

from ..common.parts import Parts
from ..common.service import raise_fd_limit, serve_until_signalled
from ..config import ConfigError
from ..graph import Graph
from .forwarder import Forwarder
from .nlmonitor import ROOT
from .probes import PROBES
from .topology import Topology

log = logging.getLogger(__name__)


class Agent:
    service_type = "agent"

    def __init__(self, config):
        self.config = config
        self.host_id = config.host_id()
        self.listen_host, self.listen_port = config.get_listen("agent.listen")
        self.graph = Graph(host_id=self.host_id, origin="agent.%s" % self.host_id)
        self.probe_names = PROBES.selected(config.get_list("agent.topology.probes"))
        self.topology = None
        self.probes = {}           # name -> topology probe (agent/probes.py), in start order
        self.parts = Parts()       # probes, forwarder, captures, injections: started, stopped, in status
        self.forwarder = None
        self.captures = None       # agent/captures.py: OnDemandCapture probes
        self.injections = None     # agent/injector.py: OnDemandPacketInjection
        self.engine = None
        self.ws = None
        self.app = None
        self.port = None
        self._runner = None
        self._conn_guard = None
        self.limits = None
        self.started = False

    @property
    def url(self):
        return "http://%s:%d" % (self.listen_host, self.port)

    @property
    def netlink(self):
        return self.probes.get("netlink")

    @property
    def netns(self):
        return self.probes.get("netns")

    @property
    def ovsdb(self):
        return self.probes.get("ovsdb")

    # ---- construction ---------------------------------------------------------------------------
    def _build_probes(self):
        self.topology = Topology(self.graph, self.host_id, self.config.get_map("agent.metadata"))
        self.parts = Parts()
        self.probes = {}
        for name in self.probe_names:
            self.probes[name] = self.parts.add(PROBES.create(name, self), "TopologyProbes", name)

    def _build_app(self):
        from ..api import graph_ws
        from ..api.auth import make_authenticators, warn_if_open
        from ..api.limits import Limits, configure
        from ..api.query import QueryEngine
        from ..api.server import make_app, make_guard, mount_info, mount_login, mount_status, mount_topology
        from ..api.metrics import mount_metrics
        from ..api.ws import WSOptions
        from .metrics import agent_metrics
        authn = make_authenticators(self.config, {"api": "agent.auth.api.backend"})["api"]
        warn_if_open("agent", self.listen_host, {"api": authn})
        guard = make_guard(authn)
        self.engine = QueryEngine(self.graph).configure(self.config)
        self.limits = configure(Limits.from_config(self.config))
        app = make_app(self.config.get_list("http.allowed_origins"))
        mount_info(app, self.host_id, self.service_type, guard)
        mount_login(app, authn)
        mount_status(app, self.status, guard)
        mount_metrics(app, lambda: agent_metrics(self), guard)
        mount_topology(app, self.graph, self.engine, guard)
        self.ws = graph_ws.mount_graph_ws(app, self.graph, WSOptions.from_config(self.config, self.service_type),
                                          self.engine, authenticators={"api": authn, "cluster": authn},
                                          endpoints=(graph_ws.SUBSCRIBER, graph_ws.PUBLISHER))
        self.app = app
        return app

    def _client_ssl(self):
        """TLS towards the analyzers when tls.ca_cert or a client certificate is configured."""
        cfg = self.config
        ca, cert, key = (cfg.get_string("tls.ca_cert"), cfg.get_string("tls.client_cert"),
                         cfg.get_string("tls.client_key"))
        if not (ca or cert):
            return None
        import ssl
        try:
            ctx = ssl.create_default_context(cafile=ca or None)
            if cert:
                ctx.load_cert_chain(cert, key or None)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError("tls: cannot load the agent's certificates: %s" % exc) from None
        return ctx

    def locate_interface(self, node_id):
        """{"NetNsPath", "NetNsName", "Name", "IfIndex"} of the interface behind a node (capture
        probes open their socket in NetNsPath, "" = the agent's namespace), or None."""
        return self.netlink.locate(node_id) if self.netlink is not None else None

    def status(self):
        clients = {}
        if self.ws is not None:
            from ..api import graph_ws
            for path in (graph_ws.SUBSCRIBER, graph_ws.PUBLISHER):
                try:
                    clients.update(self.ws.server.status(path))
                except Exception:
                    pass
        flow_probes = []
        if self.captures is not None:
            flow_probes = list(self.captures.types)
        st = {"Clients": clients, "Analyzers": {}, "TopologyProbes": {}, "FlowProbes": flow_probes, "Captures": {}}
        st.update(self.parts.status())
        return st

    # ---- lifecycle ----------------------------------------------------------------------------------
    @staticmethod
    def _raise_fd_limit():
        """Each watched namespace holds 4 descriptors: lift the soft limit to the hard one."""
        raise_fd_limit()

    async def start(self, wait_initial=2.0):
        if self.started:
            return self
        self._raise_fd_limit()
        try:
            await self._start(wait_initial)
        except BaseException:          # a configuration error after the probes started: stop them
            await self.stop()
            raise
        return self

    async def _start(self, wait_initial):
        cfg = self.config
        self._build_probes()
        await self.parts.start()
        # the host's interfaces and the namespaces present at start are in the graph before the
        # first Sync goes out (bounded wait: a broken namespace must not block the agent)
        try:
            await asyncio.wait_for(self.netlink.views[ROOT].ready.wait(), wait_initial)
            views = list(self.netlink.views.values())
            await asyncio.wait_for(asyncio.gather(*(v.ready.wait() for v in views)), wait_initial)
        except asyncio.TimeoutError:
            log.warning("agent: initial netlink dump incomplete after %.1fs", wait_initial)
        analyzers = cfg.get_list("analyzers")
        ssl_ctx = self._client_ssl()
        scheme = "https" if ssl_ctx is not None else "http"
        self.forwarder = Forwarder(self.graph, [str(a) for a in analyzers], self.host_id,
                                   username=cfg.get_string("agent.auth.cluster.username"),
                                   password=cfg.get_string("agent.auth.cluster.password"),
                                   cookies=cfg.get_map("http.cookie"),
                                   queue_size=cfg.get_int("http.ws.queue_size", 10000, minimum=1),
                                   scheme=scheme, bulk_max=cfg.get_int("http.ws.bulk_maxmsgs", 100, minimum=1),
                                   heartbeat=cfg.get_float("http.ws.ping_delay") + cfg.get_float("http.ws.pong_timeout"),
                                   ssl_context=ssl_ctx)
        self.parts.add(self.forwarder, "Analyzers")
        from .captures import AgentCaptures
        self.captures = self.parts.add(AgentCaptures(self), "Captures")
        from .injector import AgentInjections
        self.injections = self.parts.add(AgentInjections(self))
        await self.parts.start()
        self._build_app()
        from ..api.limits import start_runner
        self._runner, self._conn_guard = await start_runner(self.app, self.limits)
        site = web.TCPSite(self._runner, self.listen_host, self.listen_port, reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            raise ConfigError("agent.listen: cannot listen on %s:%d: %s"
                              % (self.listen_host, self.listen_port, exc.strerror)) from None
        sockets = site._server.sockets if site._server else ()
        self.port = sockets[0].getsockname()[1] if sockets else self.listen_port
        self.started = True
        log.info("agent %s listening on %s, %d nodes, analyzers %s", self.host_id, self.url,
                 len(self.graph.nodes), analyzers)

    async def stop(self):
        await self.parts.stop()         # injections, captures, forwarder, then the probes
        self.injections = self.captures = self.forwarder = None
        if self.ws is not None:
            try:
                await self.ws.server.close_all()
            except Exception:
                log.exception("agent: closing websocket clients failed")
            self.ws = None
        if self._conn_guard is not None:
            self._conn_guard.stop()
            self._conn_guard = None
        if self.engine is not None:
            self.engine.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self.started = False

    async def run_forever(self):
        await serve_until_signalled(self)
