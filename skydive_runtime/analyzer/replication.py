"""Analyzer-to-analyzer replication over `/ws/replication` (upstream's wire contract).

Every analyzer serves `/ws/replication` (cluster auth) and opens one link to every address of
`analyzers` (full mesh; the link to itself and a second link to the same peer are refused, as
upstream's graffiti/endpoints/replication_endpoint.go does). On each new link both sides send
`Graph/Sync` with their whole graph (the receiver adds the elements it does not know), then every
change made locally (by its agents, the API, the rules) goes to every peer as the usual Graph
messages (NodeAdded, NodePartiallyUpdated, ...). Changes received from a peer are applied and
not forwarded again. When a peer goes away the elements it created itself (Origin
`analyzer.<peer>`) are deleted; its agents' elements stay until the agents connect to another
analyzer (their Sync replaces them); those of its agents that no analyzer of the cluster holds
`analyzer.cluster.agent_grace` seconds later (default 10: the agent died with it, or cannot
reach another analyzer) are deleted too, so no ghost host lingers.

Live flows travel the same links (namespace `PeerFlow`, type `Flows`, {"Host", "Flows"}), so
`G.V().Flows()` on any analyzer sees the flows of every agent; an upstream peer ignores them.
So do the requests of a duty's master to the agents of the others (namespace `PeerAgent`,
analyzer/relay.py).
"""

import asyncio
import base64
import collections
import json
import logging

import aiohttp

from ..api import graph_ws
from ..api.ws import Endpoint, envelope
from ..common.reconnect import reconnect_loop
from ..common.timeutil import rfc3339_now
from ..config import ConfigError
from ..graph import Edge, GraphListener, Node
from . import relay

log = logging.getLogger(__name__)

REPLICATION = "/ws/replication"
FLOW_NAMESPACE, PEER_FLOWS = "PeerFlow", "Flows"


class _PeerConn:
    """What GraphApplier needs of the connection a message came from."""

    def __init__(self, host_id):
        self.host_id = host_id
        self.origin = "analyzer.%s" % host_id
        self.state = {}


class OutgoingPeer:
    """Our link to one address of `analyzers`, reconnecting with backoff."""

    def __init__(self, replication, address):
        self.rep = replication
        self.address = address
        host, _sep, port = address.rpartition(":")
        self.host, self.port = host or "127.0.0.1", int(port)
        self.remote_host = ""
        self.connected = False
        self.connect_time = ""
        self.last_error = ""
        self.is_self = False
        self.queue = None
        self.wake = asyncio.Event()
        self.task = None
        self.ws = None

    def status(self):
        st = {"ServiceType": "analyzer", "ClientProtocol": "json", "Addr": self.host, "Port": self.port,
              "IsConnected": self.connected, "ConnectTime": self.connect_time}
        if self.remote_host:
            st["RemoteHost"] = self.remote_host
            st["RemoteServiceType"] = "analyzer"
        if self.last_error and not self.connected:
            st["Error"] = self.last_error
        return st

    def send_frame(self, frame):
        if self.queue is not None:
            self.queue.append(frame)
            self.wake.set()

    async def run(self):
        await reconnect_loop(self._session, lambda: self.rep.running and not self.is_self, self._failed,
                             on_end=self._ended, longest=3.0)

    def _failed(self, exc):
        self.last_error = str(exc) or type(exc).__name__
        log.debug("replication link %s: %s", self.address, self.last_error)

    def _ended(self):
        self.connected, self.queue, self.ws = False, None, None
        if self.remote_host:
            self.rep.peer_gone(self.remote_host, self)

    async def _session(self):
        url = "%s://%s:%d%s" % (self.rep.scheme, self.host, self.port, REPLICATION)
        async with self.rep.http.ws_connect(url, headers=self.rep.headers(), heartbeat=5.0, max_msg_size=0,
                                            ssl=self.rep.ssl, timeout=aiohttp.ClientWSTimeout(ws_close=2.0)) as ws:
            remote = ws._response.headers.get("X-Host-ID", "") if ws._response is not None else ""
            if remote == self.rep.host_id:
                self.is_self = True          # our own address: never again
                log.debug("replication: %s is this analyzer", self.address)
                return
            if not remote or not self.rep.peer_up(remote, self):
                self.remote_host = remote      # linked the other way: this link stays idle
                raise ConnectionError("already linked to %s" % (remote or self.address))
            self.ws, self.remote_host = ws, remote
            self.queue = collections.deque()
            self.connected, self.connect_time, self.last_error = True, rfc3339_now(), ""
            log.info("replication: linked to %s (%s)", remote, self.address)
            await ws.send_str(self.rep.sync_frame().decode())
            await ws.send_str(self.rep.relay.agents_frame().decode())
            reader = asyncio.ensure_future(self._reader(ws))
            try:
                while not ws.closed and not reader.done():
                    while self.queue:
                        await ws.send_str(self.queue.popleft().decode())
                    self.wake.clear()
                    waiter = asyncio.ensure_future(self.wake.wait())
                    await asyncio.wait([waiter, reader], return_when=asyncio.FIRST_COMPLETED)
                    waiter.cancel()
            finally:
                reader.cancel()
            raise ConnectionError("replication link to %s closed" % remote)

    async def _reader(self, ws):
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                try:
                    m = json.loads(msg.data)
                except ValueError:
                    continue
                for one in (m if isinstance(m, list) else [m]):
                    if isinstance(one, dict):
                        self.rep.apply(self.remote_host, one)
            elif msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                break


class ReplicationEndpoint(Endpoint):
    """The server side: peers that opened a link to us."""

    path = REPLICATION
    auth = "cluster"

    def __init__(self, replication):
        self.rep = replication

    def on_connect(self, conn):
        if conn.host_id == self.rep.host_id:
            conn.state["refusal"] = "connected to itself"
            return False
        if not self.rep.peer_up(conn.host_id, conn):
            conn.state["refusal"] = "already connected"
            return False
        log.info("replication: %s linked to us", conn.host_id)
        conn.send_frame(self.rep.sync_frame())
        conn.send_frame(self.rep.relay.agents_frame())
        return True

    def on_message(self, conn, msg):
        self.rep.apply(conn.host_id, msg)

    def on_disconnect(self, conn):
        self.rep.peer_gone(conn.host_id, conn)


class Replication(GraphListener):
    def __init__(self, analyzer, addresses, username="", password="", scheme="http", ssl_context=None):
        self.analyzer = analyzer
        self.graph = analyzer.graph
        self.host_id = analyzer.host_id
        self.server = analyzer.ws.server
        self.username, self.password = username, password
        self.scheme = scheme
        self.ssl = ssl_context if ssl_context is not None else True
        broadcaster = analyzer.ws.broadcaster
        self.applier = graph_ws.GraphApplier(self.graph, broadcaster, validate_schema=False, force_origin=False)
        self.outgoing = [OutgoingPeer(self, a) for a in addresses]
        self.links = {}             # peer host id -> OutgoingPeer or incoming Connection
        self.endpoint = ReplicationEndpoint(self)
        self.running = False
        self.http = None
        self._applying = False
        self.received = self.sent = 0
        self.relay = relay.AgentRelay(self)
        self.agent_grace = analyzer.config.get_float("analyzer.cluster.agent_grace", 10.0)
        if self.agent_grace < 0:
            raise ConfigError("analyzer.cluster.agent_grace: must be >= 0 (seconds)")
        self._orphans = {}          # agent host -> timer (its analyzer went away)
        self.ghosts_removed = 0

    def mount(self, app):
        self.server.add_endpoint(app, self.endpoint)

    def headers(self):
        h = {"X-Host-ID": self.host_id, "X-Client-Type": "analyzer", "X-Client-Protocol": "json"}
        if self.username:
            h["Authorization"] = "Basic " + base64.b64encode(("%s:%s" % (self.username, self.password)).encode()).decode()
        return h

    # ---- lifecycle ---------------------------------------------------------------------------
    async def start(self):
        self.running = True
        self.http = aiohttp.ClientSession()
        self.graph.add_listener(self)
        self.server.listeners.append(self)
        for peer in self.outgoing:
            peer.task = asyncio.ensure_future(peer.run())

    async def stop(self):
        self.running = False
        self.graph.remove_listener(self)
        if self in self.server.listeners:
            self.server.listeners.remove(self)
        self.relay.stop()
        for timer in self._orphans.values():
            timer.cancel()
        self._orphans.clear()
        for peer in self.outgoing:
            if peer.ws is not None:
                try:
                    await asyncio.wait_for(peer.ws.close(), 1.0)
                except Exception:
                    pass
            if peer.task is not None:
                peer.task.cancel()
                await asyncio.gather(peer.task, return_exceptions=True)
        if self.http is not None:
            await self.http.close()
            self.http = None

    def status(self):
        """upstream's Peers: {"Incomers": {host: ConnStatus}, "Outgoers": {host: ConnStatus}}."""
        incomers = {h: c.status() for h, c in self.server.connections(REPLICATION).items()}
        outgoers = {(p.remote_host or p.address): p.status() for p in self.outgoing
                    if not p.is_self and not (p.remote_host and self.links.get(p.remote_host) not in (None, p))}
        return {"Incomers": incomers, "Outgoers": outgoers}

    # ---- links -------------------------------------------------------------------------------
    def peer_up(self, host, link):
        if host in self.links and self.links[host] is not link:
            return False
        self.links[host] = link
        return True

    def peer_gone(self, host, link):
        if self.links.get(host) is not link:
            return
        del self.links[host]
        for agent in self.relay.remote.get(host, ()):     # its agents: removed unless they come back
            if agent not in self._orphans:
                self._orphans[agent] = asyncio.get_event_loop().call_later(self.agent_grace, self._orphan_expired, agent)
        self.relay.peer_gone(host)
        log.info("replication: %s gone, its own elements removed", host)
        self._applying = True
        try:
            self.graph.del_origin("analyzer.%s" % host)
        finally:
            self._applying = False

    def _holder(self, agent):
        """The analyzer (this one or a linked peer) holding `agent`, or None."""
        if self.server.get(graph_ws.AGENT, agent) is not None:
            return self.host_id
        for peer, agents in self.relay.remote.items():
            if agent in agents and peer in self.links:
                return peer
        return None

    def _orphan_expired(self, agent):
        self._orphans.pop(agent, None)
        if not self.running or self._holder(agent) is not None:
            return
        origin = "agent.%s" % agent
        if any(n.Origin == origin for n in self.graph.nodes.values()):
            log.warning("replication: agent %s is held by no analyzer of the cluster: its elements removed", agent)
            self.ghosts_removed += 1
        self._applying = True       # every analyzer does the same on its own
        try:
            self.graph.del_origin(origin)
        finally:
            self._applying = False

    @property
    def applying(self):
        """True while a peer's change is applied to the graph (it records it, analyzer/service.py)."""
        return self._applying

    def sync_frame(self):
        return envelope("Graph", "Sync", self.graph.to_dict())

    def broadcast(self, frame):
        for link in list(self.links.values()):
            link.send_frame(frame)
            self.sent += 1

    # ---- from the peers ----------------------------------------------------------------------
    def apply(self, host, msg):
        if self.links.get(host) is None:
            return
        self.received += 1
        ns, type_ = msg.get("Namespace"), msg.get("Type")
        if ns == FLOW_NAMESPACE and type_ == PEER_FLOWS:
            self._peer_flows(msg.get("Obj"))
            return
        if ns == relay.NAMESPACE:
            self.relay.handle(host, msg)
            return
        if ns != "Graph":
            return
        self._applying = True
        try:
            if type_ == "Sync":
                self._sync(host, msg.get("Obj"))
            else:
                self.applier.apply(_PeerConn(host), msg)
        finally:
            self._applying = False

    def _sync(self, host, obj):
        if not isinstance(obj, dict):
            return
        g = self.graph
        for d in obj.get("Nodes") or ():
            try:
                node = Node.from_dict(d)
            except (ValueError, TypeError) as exc:
                log.info("replication %s: sync node dropped: %s", host, exc)
                continue
            if node.ID not in g.nodes:
                g.add_node(node)
        for d in obj.get("Edges") or ():
            try:
                edge = Edge.from_dict(d)
            except (ValueError, TypeError) as exc:
                log.info("replication %s: sync edge dropped: %s", host, exc)
                continue
            if edge.ID not in g.edges and edge.Parent in g.nodes and edge.Child in g.nodes:
                g.add_edge(edge)

    def _peer_flows(self, obj):
        flows = self.analyzer.flows
        if flows is None or not isinstance(obj, dict) or not isinstance(obj.get("Flows"), list):
            return
        good = [f for f in obj["Flows"] if isinstance(f, dict) and isinstance(f.get("UUID"), str) and f["UUID"]]
        if good:
            flows.cache.update(str(obj.get("Host", "")), good)
            flows.broadcast_flows(good)

    def flows_received(self, host, flows):
        """Flows from one of our agents: to the peers' live caches (they are stored by us)."""
        if self.links:
            self.broadcast(envelope(FLOW_NAMESPACE, PEER_FLOWS, {"Host": host, "Flows": flows}))

    # ---- our agents come and go (the peers are told, analyzer/relay.py) --------------------------
    def on_ws_connect(self, conn):
        if conn.path == graph_ws.AGENT:
            self.relay.announce()

    def on_ws_disconnect(self, conn):
        if conn.path == graph_ws.AGENT:
            self.relay.announce()

    # ---- local changes to the peers ----------------------------------------------------------
    def _emit(self, type_, element, ops=None):
        if self._applying or not self.links:
            return
        obj = graph_ws.partial_obj(element, ops) if ops is not None else element.to_dict()
        self.broadcast(envelope("Graph", type_, obj))

    def on_node_added(self, node):
        self._emit("NodeAdded", node)

    def on_node_updated(self, node, ops):
        self._emit("NodePartiallyUpdated" if ops is not None else "NodeUpdated", node, ops)

    def on_node_deleted(self, node):
        self._emit("NodeDeleted", node)

    def on_edge_added(self, edge):
        self._emit("EdgeAdded", edge)

    def on_edge_updated(self, edge, ops):
        self._emit("EdgePartiallyUpdated" if ops is not None else "EdgeUpdated", edge, ops)

    def on_edge_deleted(self, edge):
        self._emit("EdgeDeleted", edge)
