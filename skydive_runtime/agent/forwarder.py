"""Link to the analyzers: one WebSocket per analyzer on /ws/agent/topology (JSON text frames).

On every (re)connection the agent sends `Sync` with its whole graph, then streams the graph
events (NodeAdded/NodeDeleted/EdgeAdded/EdgeDeleted, and Node/EdgePartiallyUpdated carrying the
changed keys only, as upstream agents do). The snapshot
and the start of the event queue happen in the same loop step, so nothing is lost or doubled.
Reconnection uses exponential backoff (0.2 s doubling to 5 s, with jitter). A connection whose
queue overflows `http.ws.queue_size` is dropped and resynced.

Analyzers that form a cluster (they replicate each other's graph: handshake answer header
`X-Skydive-Cluster`) get the graph through one link only: the first that connects (the first
address of `analyzers` is tried first) holds it, the others wait and take over when it drops,
so an agent fails over to the next analyzer of its list. Standalone analyzers each get it.

The analyzer may send requests on the same socket (namespaces `OnDemandCapture`, `Flow`, ...):
`Forwarder.register_handler(namespace, fn)` with `fn(msg) -> reply Obj | awaitable | None`.
"""

import asyncio
import base64
import collections
import json
import logging

import aiohttp

from ..common.reconnect import reconnect_loop
from ..common.timeutil import rfc3339_now
from ..graph import GraphListener

log = logging.getLogger(__name__)


def _dumps(obj):
    return json.dumps(obj, separators=(",", ":"))


class AnalyzerLink:
    def __init__(self, forwarder, address):
        self.fw = forwarder
        self.address = address
        host, dummy, port = address.rpartition(":")
        self.host = host or "127.0.0.1"
        self.port = int(port)
        self.queue = None           # deque of encoded messages while connected and synced
        self.wake = asyncio.Event()
        self.connected = False
        self.connect_time = ""
        self.remote_host = ""
        self.last_error = ""
        self.syncs = 0
        self.sent = 0
        self.task = None
        self.ws = None

    def status(self):
        st = {"ServiceType": "analyzer", "ClientProtocol": "json", "Addr": self.host, "Port": self.port,
              "IsConnected": self.connected, "ConnectTime": self.connect_time,
              "IsMaster": self.fw.master() is self}
        if self.remote_host:
            st["RemoteHost"] = self.remote_host
            st["RemoteServiceType"] = "analyzer"
        if self.last_error and not self.connected:
            st["Error"] = self.last_error
        st["Syncs"] = self.syncs
        return st

    def push(self, data):
        q = self.queue
        if q is None:
            return
        if len(q) >= self.fw.queue_size:
            log.warning("analyzer %s: send queue full, resyncing", self.address)
            self.queue = None
            if self.ws is not None:
                asyncio.ensure_future(self.ws.close())
            return
        q.append(data)
        self.wake.set()

    async def run(self):
        await asyncio.sleep(0.3 * self.fw.links.index(self))   # the first address first
        await reconnect_loop(self._session, lambda: self.fw.running, self._failed, on_end=self._ended,
                             before=self._wait_turn)

    async def _wait_turn(self):
        while self.fw.cluster_link not in (None, self) and self.fw.running:
            await self.fw.cluster_free.wait()   # another analyzer of the cluster has our graph
            await asyncio.sleep(0.2 * self.fw.links.index(self))   # then the next of the list first

    def _failed(self, exc):
        self.last_error = str(exc) or type(exc).__name__
        log.info("analyzer %s: %s", self.address, self.last_error)

    def _ended(self):
        if self.fw.cluster_link is self:
            self.fw.cluster_link = None
            self.fw.cluster_free.set()
        self.connected = False
        self.queue = None
        self.ws = None

    async def _session(self):
        url = "%s://%s:%d/ws/agent/topology" % (self.fw.scheme, self.host, self.port)
        async with self.fw.http.ws_connect(url, headers=self.fw.headers(), heartbeat=self.fw.heartbeat,
                                           autoping=True, max_msg_size=0, compress=0, ssl=self.fw.ssl,
                                           timeout=aiohttp.ClientWSTimeout(ws_close=2.0)) as ws:
            self.ws = ws
            headers = ws._response.headers if ws._response is not None else {}
            self.remote_host = headers.get("X-Host-ID", "")
            if headers.get("X-Skydive-Cluster"):
                if self.fw.cluster_link not in (None, self):
                    raise ConnectionError("another analyzer of the cluster already has our graph")
                self.fw.cluster_link = self
                self.fw.cluster_free.clear()
            # snapshot + start queuing in one loop step
            sync = _dumps({"Namespace": "Graph", "Type": "Sync", "UUID": "", "Status": 200,
                           "Obj": self.fw.graph.to_dict()})
            self.queue = collections.deque()
            self.connected = True
            self.connect_time = rfc3339_now()
            self.last_error = ""
            self.syncs += 1
            log.info("analyzer %s connected (%s), sync of %d nodes", self.address, self.remote_host,
                     len(self.fw.graph.nodes))
            await ws.send_str(sync)
            reader = asyncio.ensure_future(self._reader(ws))
            try:
                while not ws.closed and not reader.done():
                    q = self.queue
                    if q is None:
                        break
                    while q:
                        if len(q) > 1 and self.fw.bulk_max > 1:
                            n = min(len(q), self.fw.bulk_max)
                            await ws.send_str("[" + ",".join(q.popleft() for dummy in range(n)) + "]")
                            self.sent += n
                        else:
                            await ws.send_str(q.popleft())
                            self.sent += 1
                    self.wake.clear()
                    if not q:
                        waiter = asyncio.ensure_future(self.wake.wait())
                        await asyncio.wait([waiter, reader], return_when=asyncio.FIRST_COMPLETED)
                        waiter.cancel()
            finally:
                reader.cancel()
                self.connected = False
                self.queue = None
            if not reader.cancelled() and reader.done() and reader.exception() is not None:
                raise reader.exception()
            raise ConnectionError("connection closed")

    async def _reader(self, ws):
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                try:
                    m = json.loads(msg.data)
                except ValueError:
                    continue
                for one in (m if isinstance(m, list) else [m]):
                    if isinstance(one, dict):
                        await self.fw.dispatch(self, one)
            elif msg.type == aiohttp.WSMsgType.BINARY:
                continue
            elif msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                break

    async def send(self, obj):
        if self.ws is not None and not self.ws.closed:
            await self.ws.send_str(_dumps(obj))


class Forwarder(GraphListener):
    def __init__(self, graph, analyzers, host_id, username="", password="", cookies=None, queue_size=10000,
                 scheme="http", bulk_max=100, heartbeat=7.0, ssl_context=None):
        self.graph = graph
        self.host_id = host_id
        self.username = username
        self.password = password
        self.cookies = cookies or {}
        self.queue_size = int(queue_size)
        self.heartbeat = heartbeat     # our pings: a silent analyzer is detected, then we reconnect
        self.ssl = ssl_context if ssl_context is not None else True
        self.bulk_max = int(bulk_max)   # messages per frame when a burst is queued (JSON array frame)
        self.scheme = "https" if scheme == "https" else "http"
        self.links = [AnalyzerLink(self, a) for a in analyzers]
        self.cluster_link = None          # the link holding our graph for a cluster of analyzers
        self.cluster_free = asyncio.Event()
        self.cluster_free.set()
        self.handlers = {}
        self.running = False
        self.http = None

    def headers(self):
        h = {"X-Host-ID": self.host_id, "X-Client-Type": "agent", "X-Client-Protocol": "json",
             "X-Persistence-Policy": "DeleteOnDisconnect", "X-Websocket-Namespace": "*"}
        if self.username:
            h["Authorization"] = "Basic " + base64.b64encode(
                ("%s:%s" % (self.username, self.password)).encode()).decode()
        if self.cookies:
            h["Cookie"] = "; ".join("%s=%s" % kv for kv in self.cookies.items())
        return h

    def master(self):
        for link in self.links:
            if link.connected:
                return link
        return None

    def register_handler(self, namespace, fn):
        """fn(msg) -> reply message (see `reply_to`), an awaitable of one, or None."""
        self.handlers[namespace] = fn

    @staticmethod
    def reply_to(msg, type_, obj, status=200):
        """The reply envelope the analyzer matches to its request (same Namespace and UUID)."""
        return {"Namespace": msg.get("Namespace", ""), "Type": type_, "UUID": msg.get("UUID", ""),
                "Status": status, "Obj": obj}

    async def dispatch(self, link, msg):
        fn = self.handlers.get(msg.get("Namespace"))
        if fn is None:
            return
        try:
            reply = fn(msg)
            if asyncio.iscoroutine(reply):
                reply = await reply
        except Exception:
            log.exception("analyzer %s: handler of %s failed", link.address, msg.get("Namespace"))
            return
        if reply is not None:
            await link.send(reply)

    async def start(self):
        self.running = True
        self.http = aiohttp.ClientSession()
        self.graph.add_listener(self)
        for link in self.links:
            link.task = asyncio.ensure_future(link.run())

    async def stop(self):
        self.running = False
        self.cluster_free.set()
        self.graph.remove_listener(self)
        for link in self.links:
            if link.ws is not None:
                try:
                    await asyncio.wait_for(link.ws.close(), 1.0)
                except Exception:
                    pass
            if link.task is not None:
                link.task.cancel()
                try:
                    await link.task
                except (asyncio.CancelledError, Exception):
                    pass
        if self.http is not None:
            await self.http.close()
            self.http = None

    def status(self):
        out = {}
        for link in self.links:
            out[link.remote_host or link.address] = link.status()
        return out

    # ---- graph events ------------------------------------------------------------------------------
    def _emit(self, mtype, element, ops=None):
        if not any(l.queue is not None for l in self.links):
            return
        if ops is not None:
            obj = {"ID": element.ID, "UpdatedAt": element.UpdatedAt, "Revision": element.Revision,
                   "Ops": [{"Type": 2, "Key": k} if op == 2 else {"Type": 1, "Key": k, "Value": v}
                           for op, k, v in ops]}
        else:
            obj = element.to_dict()
        data = _dumps({"Namespace": "Graph", "Type": mtype, "UUID": "", "Status": 200, "Obj": obj})
        for link in self.links:
            link.push(data)

    def on_node_added(self, node):
        self._emit("NodeAdded", node)

    def on_node_updated(self, node, ops):
        self._emit("NodePartiallyUpdated", node, ops)

    def on_node_deleted(self, node):
        self._emit("NodeDeleted", node)

    def on_edge_added(self, edge):
        self._emit("EdgeAdded", edge)

    def on_edge_updated(self, edge, ops):
        self._emit("EdgePartiallyUpdated", edge, ops)

    def on_edge_deleted(self, edge):
        self._emit("EdgeDeleted", edge)
