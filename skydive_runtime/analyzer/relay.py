"""Requests to the agents of the other analyzers of a cluster, over the `/ws/replication` links.

The master of a duty (analyzer/election.py: captures, injections) drives every agent of the
cluster, most of them linked to another analyzer. Each analyzer tells its peers which agents it
holds (namespace `PeerAgent`, type `Agents`, {"Agents": [host, ...]}, on every new link and
whenever one of its agents connects or goes), and relays a request for one of them
(`Request` {"ID", "Agent", "Namespace", "Type", "Obj"}) to that agent's `/ws/agent/topology`
connection, answering `Reply` {"ID", "Status", "Obj"} or {"ID", "Error"}; only the on-demand
requests (captures, injections: `Start`, `Stop`) are relayed. `agent(host)` gives
an object with the agent connection's `request()` for any agent of the cluster.
"""

import asyncio
import logging
import uuid

from ..api import graph_ws
from ..api.ws import RequestError, envelope
from ..common.service import spawn

log = logging.getLogger(__name__)

NAMESPACE = "PeerAgent"
RELAYED = {"OnDemandCapture": ("Start", "Stop"), "OnDemandPacketInjection": ("Start", "Stop")}   # nothing else


class RemoteAgent:
    """An agent linked to peer `peer`: request() goes through that peer."""

    def __init__(self, relay, peer, host_id):
        self.relay, self.peer, self.host_id = relay, peer, host_id

    async def request(self, namespace, type_, obj, timeout=10.0):
        return await self.relay.request(self.peer, self.host_id, namespace, type_, obj, timeout)


class AgentRelay:
    def __init__(self, replication):
        self.rep = replication
        self.server = replication.server
        self.remote = {}          # peer host id -> set of its agents' host ids
        self._pending = {}        # request id -> (peer, future)
        self._tasks = set()
        self.relayed = 0
        self.listeners = []       # callables(), when a peer's agents change

    # ---- which agents where -----------------------------------------------------------------
    def agents_frame(self):
        return envelope(NAMESPACE, "Agents", {"Agents": sorted(self.server.connections(graph_ws.AGENT))})

    def announce(self):
        self.rep.broadcast(self.agents_frame())

    def agent(self, host):
        """The local agent connection of `host`, or a RemoteAgent, or None."""
        conn = self.server.get(graph_ws.AGENT, host)
        if conn is not None:
            return conn
        for peer, agents in self.remote.items():
            if host in agents and peer in self.rep.links:
                return RemoteAgent(self, peer, host)
        return None

    def peer_gone(self, peer):
        self.remote.pop(peer, None)
        for rid, (p, fut) in list(self._pending.items()):
            if p == peer and not fut.done():
                fut.set_exception(RequestError("analyzer %s went away" % peer))
        self._changed()

    def _changed(self):
        for fn in list(self.listeners):
            try:
                fn()
            except Exception:
                log.exception("peer agents listener failed")

    # ---- requests ------------------------------------------------------------------------------
    async def request(self, peer, host, namespace, type_, obj, timeout):
        link = self.rep.links.get(peer)
        if link is None:
            raise RequestError("analyzer %s of agent %s is not linked" % (peer, host))
        rid = str(uuid.uuid4())
        fut = asyncio.get_event_loop().create_future()
        self._pending[rid] = (peer, fut)
        try:
            link.send_frame(envelope(NAMESPACE, "Request", {"ID": rid, "Agent": host, "Namespace": namespace,
                                                            "Type": type_, "Obj": obj}))
            return await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            raise RequestError("no reply from agent %s through %s within %ss" % (host, peer, timeout)) from None
        finally:
            self._pending.pop(rid, None)

    def handle(self, peer, msg):
        type_, obj = msg.get("Type"), msg.get("Obj")
        if not isinstance(obj, dict):
            return
        if type_ == "Agents":
            agents = obj.get("Agents")
            self.remote[peer] = {a for a in agents if isinstance(a, str)} if isinstance(agents, list) else set()
            self._changed()
        elif type_ == "Request" and isinstance(obj.get("ID"), str) and isinstance(obj.get("Agent"), str):
            spawn(self._tasks, self._relay(peer, obj))
        elif type_ == "Reply":
            entry = self._pending.get(obj["ID"]) if isinstance(obj.get("ID"), str) else None
            if entry is None or entry[0] != peer or entry[1].done():
                return
            if obj.get("Error"):
                entry[1].set_exception(RequestError(str(obj["Error"])))
            else:
                entry[1].set_result({"Status": obj.get("Status", 200), "Obj": obj.get("Obj")})

    async def _relay(self, peer, obj):
        reply = {"ID": obj["ID"]}
        conn = self.server.get(graph_ws.AGENT, obj.get("Agent"))
        ns = obj.get("Namespace")
        if obj.get("Type") not in (RELAYED.get(ns, ()) if isinstance(ns, str) else ()):
            reply["Error"] = "%r/%r is not relayed to agents" % (obj.get("Namespace"), obj.get("Type"))
        elif conn is None:
            reply["Error"] = "agent %s is not linked to analyzer %s" % (obj.get("Agent"), self.rep.host_id)
        else:
            self.relayed += 1
            try:
                r = await conn.request(obj["Namespace"], obj["Type"], obj.get("Obj"), timeout=14.0)
                reply.update(Status=r.get("Status", 200), Obj=r.get("Obj"))
            except RequestError as exc:
                reply["Error"] = str(exc)
        link = self.rep.links.get(peer)
        if link is not None:
            link.send_frame(envelope(NAMESPACE, "Reply", reply))

    def stop(self):
        for t in list(self._tasks):
            t.cancel()
