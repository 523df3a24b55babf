"""WebSocket connections, the message envelope and the connection registry (graffiti/websocket).

A `Connection` wraps one accepted aiohttp WebSocket: handshake identity (X-Host-ID,
X-Client-Type ...), a bounded send queue drained by one writer task (a client that cannot keep
up is disconnected, the server never blocks on it), ping keepalive, and UUID-correlated
request/reply so the server can ask a client (an agent) something and await its answer.

`WSServer` holds the connections of every endpoint path, does the handshake checks (auth,
RBAC, 409 on a duplicate host id per endpoint, mandatory X-Client-Type) and dispatches the
decoded messages to the endpoint's handler. The graph endpoints live in `graph_ws.py`.
"""

import asyncio
import collections
import json
import logging
import time
import uuid

from aiohttp import WSMsgType, web

from ..common.jsonutil import strict_loads
from . import limits
from .http import HTTPError, text_error

log = logging.getLogger(__name__)


def envelope(namespace, type_, obj, uuid_=None, status=200):
    """Serialise a StructMessage once, as UTF-8 bytes (the frame is shared by every receiver)."""
    return json.dumps({"Namespace": namespace, "Type": type_, "UUID": uuid_ or str(uuid.uuid4()),
                       "Status": status, "Obj": obj}, separators=(",", ":"), ensure_ascii=False).encode()


def rfc3339(ts):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


class WSOptions:
    def __init__(self, host_id, service_type="analyzer", ping_delay=2.0, pong_timeout=5.0,
                 queue_size=10000, bulk_maxmsgs=100, compress=False):
        self.host_id = host_id
        self.service_type = service_type
        self.ping_delay = float(ping_delay)
        self.pong_timeout = float(pong_timeout)
        self.queue_size = int(queue_size)
        self.bulk_maxmsgs = max(1, int(bulk_maxmsgs))
        self.compress = bool(compress)    # permessage-deflate, when the client offers it

    @classmethod
    def from_config(cls, config, service_type):
        return cls(config.host_id(), service_type,
                   ping_delay=config.get_float("http.ws.ping_delay"),
                   pong_timeout=config.get_float("http.ws.pong_timeout"),
                   queue_size=config.get_int("http.ws.queue_size", minimum=1),
                   bulk_maxmsgs=config.get_int("http.ws.bulk_maxmsgs", 100, minimum=1),
                   compress=config.get_bool("http.ws.enable_write_compression", False))


class RequestError(Exception):
    """A request to a client failed: no reply in time, or the connection went away."""


def _hdr(request, name):
    """A handshake value from the header or its lowercase query parameter."""
    v = request.headers.get(name)
    if v is None:
        v = request.query.get(name.lower())
    return v


class Connection:
    def __init__(self, server, ws, request, path, user):
        self.server = server
        self.ws = ws
        self.path = path
        self.user = user
        peer = request.transport.get_extra_info("peername") if request.transport else None
        self.addr, self.port = (peer[0], peer[1]) if peer else ("", 0)
        self.host_id = _hdr(request, "X-Host-ID") or ("%s:%d" % (self.addr, self.port))
        self.client_type = _hdr(request, "X-Client-Type") or ""
        self.protocol = (_hdr(request, "X-Client-Protocol") or "json").lower()
        self.persistence = _hdr(request, "X-Persistence-Policy") or ""
        self.update_policy = (_hdr(request, "X-Update-Policy") or "full").lower()
        self.gremlin_filter = _hdr(request, "X-Gremlin-Filter") or ""
        ns = request.headers.getall("X-Websocket-Namespace", []) + request.query.getall("x-websocket-namespace", [])
        self.namespaces = set(n.strip() for v in ns for n in v.split(",") if n.strip()) or {"*"}
        self.bulk = (_hdr(request, "X-Bulk-Messages") or "").lower() in ("1", "true", "yes")
        self.connect_time = time.time()
        self.received_any = False
        self.closed = False
        self.dropped = False
        self.state = {}           # per-endpoint state (subscriber filter, snapshot ...)
        self._queue = collections.deque()
        self._queued_bytes = 0       # bytes of the frames in _queue (bounded: http.ws.queue_max_bytes)
        self._wakeup = asyncio.Event()
        self._pending = {}
        self._last_seen = time.monotonic()
        self._tasks = []

    @property
    def origin(self):
        return "%s.%s" % (self.client_type, self.host_id)

    def wants(self, namespace):
        return "*" in self.namespaces or namespace in self.namespaces

    # ---- sending -----------------------------------------------------------------------------
    def send_frame(self, frame):
        """Queue an already serialised frame (UTF-8 bytes of one JSON message).

        A full queue disconnects this (slow) client; the server never waits for it."""
        if self.closed:
            return False
        max_bytes = limits.current.ws_queue_bytes
        if len(self._queue) >= self.server.options.queue_size or (self._queued_bytes + len(frame) > max_bytes
                                                                  and self._queue):
            if not self.dropped:
                self.dropped = True
                log.warning("websocket %s %s: slow consumer dropped: send queue full (%d messages, %d bytes; "
                            "http.ws.queue_size = %d, http.ws.queue_max_bytes = %d)", self.path, self.host_id,
                            len(self._queue), self._queued_bytes, self.server.options.queue_size, max_bytes)
                self._queue.clear()
                self._queued_bytes = 0
                asyncio.get_event_loop().create_task(self.close(code=1013, message=b"send queue full"))
            return False
        self._queue.append(frame)
        self._queued_bytes += len(frame)
        if len(self._queue) == 1:
            self._wakeup.set()
        return True

    def send(self, namespace, type_, obj, uuid_=None, status=200):
        return self.send_frame(envelope(namespace, type_, obj, uuid_, status))

    def reply(self, msg, type_, obj, status=200):
        return self.send(msg.get("Namespace", ""), type_, obj, msg.get("UUID") or None, status)

    async def request(self, namespace, type_, obj, timeout=10.0):
        """Send a request and await the message that carries the same UUID back."""
        if self.closed:
            raise RequestError("connection to %s is closed" % self.host_id)
        rid = str(uuid.uuid4())
        fut = asyncio.get_event_loop().create_future()
        self._pending[rid] = fut
        try:
            self.send(namespace, type_, obj, rid)
            return await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            raise RequestError("no reply from %s to %s/%s within %ss" % (self.host_id, namespace, type_, timeout)) from None
        finally:
            self._pending.pop(rid, None)

    async def _writer(self):
        ws = self.ws
        q = self._queue
        bulk_max = self.server.options.bulk_maxmsgs
        try:
            while not self.closed:
                if not q:
                    self._wakeup.clear()
                    await self._wakeup.wait()
                    continue
                if self.bulk and len(q) > 1:
                    n = min(len(q), bulk_max)
                    frames = [q.popleft() for dummy in range(n)]
                    self._queued_bytes -= sum(len(f) for f in frames)
                    frame = b"[" + b",".join(frames) + b"]"
                else:
                    frame = q.popleft()
                    self._queued_bytes -= len(frame)
                await ws.send_frame(frame, WSMsgType.TEXT)
        except (ConnectionError, RuntimeError, asyncio.CancelledError):
            pass
        except Exception:   # a write failure must only end this connection
            log.exception("websocket %s %s: write failed", self.path, self.host_id)
        finally:
            self.closed = True

    async def _pinger(self):
        opts = self.server.options
        deadline = opts.pong_timeout + opts.ping_delay
        try:
            while not self.closed:
                await self.ws.ping()
                await asyncio.sleep(opts.ping_delay)
                if time.monotonic() - self._last_seen > deadline:
                    log.warning("websocket %s %s: no pong for %.1fs, closing", self.path, self.host_id, deadline)
                    await self.close(code=1001, message=b"pong timeout")
                    return
        except (ConnectionError, RuntimeError, asyncio.CancelledError):
            pass

    async def close(self, code=1000, message=b""):
        self.closed = True
        self._wakeup.set()
        try:
            await self.ws.close(code=code, message=message)
        except Exception:
            pass

    def status(self):
        d = {"ServiceType": self.client_type, "ClientProtocol": self.protocol, "Addr": self.addr,
             "Port": self.port, "IsConnected": not self.closed, "ConnectTime": rfc3339(self.connect_time)}
        if self.host_id:
            d["RemoteHost"] = self.host_id
        if self.client_type:
            d["RemoteServiceType"] = self.client_type
        return d

    # ---- receiving ---------------------------------------------------------------------------
    def _resolve_reply(self, msg):
        fut = self._pending.get(msg.get("UUID"))
        if fut is not None and not fut.done():
            fut.set_result(msg)
            return True
        return False


class Endpoint:
    """Behaviour of one WebSocket path. Subclasses override the hooks."""

    path = None
    auth = "api"              # which authenticator guards the handshake ("api" | "cluster")

    def on_connect(self, conn):
        """Called after the upgrade; return False to refuse (the socket is then closed)."""
        return True

    def on_message(self, conn, msg):
        pass

    def on_disconnect(self, conn):
        pass


class WSServer:
    """Connection registry and handshake for every WebSocket path of one service."""

    def __init__(self, options, authenticators=None):
        self.options = options
        self.authenticators = authenticators or {}
        self.endpoints = {}
        self.conns = {}            # path -> {host_id: Connection}
        self.namespace_handlers = {}   # namespace -> callable(conn, msg), for non-Graph messages
        self.listeners = []        # objects with on_ws_connect(conn) / on_ws_disconnect(conn)
        self.response_headers = {}     # extra handshake answer headers (X-Skydive-Cluster: analyzer/cluster.py)

    def add_endpoint(self, app, endpoint):
        self.endpoints[endpoint.path] = endpoint
        self.conns.setdefault(endpoint.path, {})
        app.router.add_get(endpoint.path, self._make_handler(endpoint))

    def connections(self, path):
        return self.conns.get(path, {})

    def get(self, path, host_id):
        return self.conns.get(path, {}).get(host_id)

    def status(self, path):
        return {h: c.status() for h, c in self.conns.get(path, {}).items()}

    def broadcast(self, path, namespace, type_, obj):
        """Send one message (serialised once) to every client of path wanting namespace."""
        frame = None
        for conn in list(self.conns.get(path, {}).values()):
            if conn.wants(namespace):
                if frame is None:
                    frame = envelope(namespace, type_, obj)
                conn.send_frame(frame)

    async def close_all(self):
        for conns in self.conns.values():
            for conn in list(conns.values()):
                await conn.close(code=1001, message=b"server shutdown")

    def _make_handler(self, endpoint):
        async def handler(request):
            return await self._serve(request, endpoint)
        return handler

    async def _serve(self, request, endpoint):
        user = None
        authn = self.authenticators.get(endpoint.auth)
        if authn is not None:
            try:
                await authn.prefetch(request)
                user = authn.user(request)
            except HTTPError as exc:
                return text_error(exc.status, exc.text)
            if not authn.rbac.allowed(user, "websocket", endpoint.path):
                return text_error(403, "'%s' has no '%s' permission on 'websocket'" % (user.name, endpoint.path))
        host_id = _hdr(request, "X-Host-ID")
        if host_id and host_id in self.conns[endpoint.path]:
            return text_error(409, "host_id '%s' already connected" % host_id)
        ws = web.WebSocketResponse(autoping=False, max_msg_size=limits.current.max_body_size,
                                   compress=self.options.compress)
        ws.headers["X-Host-ID"] = self.options.host_id
        ws.headers["X-Service-Type"] = self.options.service_type
        ws.headers.update(self.response_headers)
        if user is not None and user.token and authn is not None:
            authn.set_cookies(ws, request, user)
        if not ws.can_prepare(request).ok:
            return text_error(400, "websocket upgrade expected")
        try:
            await ws.prepare(request)
        except ConnectionResetError:     # the client gave up during the handshake
            return ws
        conn = Connection(self, ws, request, endpoint.path, user)
        if not conn.client_type:
            await ws.close(code=1008, message=b"X-Client-Type header is mandatory")
            return ws
        if conn.protocol != "json":
            await ws.close(code=1003, message=b"only the json protocol is supported")
            return ws
        registry = self.conns[endpoint.path]
        if conn.host_id in registry:      # raced with another handshake of the same host id
            await ws.close(code=1008, message=b"host id already connected")
            return ws
        registry[conn.host_id] = conn
        conn._tasks = [asyncio.ensure_future(conn._writer()), asyncio.ensure_future(conn._pinger())]
        try:
            try:
                ok = endpoint.on_connect(conn)
            except Exception as exc:   # a refusal with a message (bad filter ...)
                log.info("websocket %s %s refused: %s", endpoint.path, conn.host_id, exc)
                ok = False
            if ok is False:
                await conn.close(code=1008, message=str(conn.state.get("refusal", "refused"))[:120].encode())
                return ws
            for lst in self.listeners:
                lst.on_ws_connect(conn)
            await self._read_loop(conn, endpoint)
        finally:
            conn.closed = True
            conn._wakeup.set()
            if registry.get(conn.host_id) is conn:
                del registry[conn.host_id]
            for t in conn._tasks:
                t.cancel()
            for fut in conn._pending.values():
                if not fut.done():
                    fut.set_exception(RequestError("connection to %s closed" % conn.host_id))
            try:
                endpoint.on_disconnect(conn)
            except Exception:
                log.exception("websocket %s %s: disconnect handler failed", endpoint.path, conn.host_id)
            for lst in self.listeners:
                try:
                    lst.on_ws_disconnect(conn)
                except Exception:
                    log.exception("websocket listener failed")
            if not ws.closed:
                await ws.close()
        return ws

    async def _read_loop(self, conn, endpoint):
        ws = conn.ws
        while not conn.closed:
            msg = await ws.receive()
            await asyncio.sleep(0)     # buffered messages must not keep the loop from other clients
            conn._last_seen = time.monotonic()
            if msg.type == WSMsgType.TEXT:
                self._dispatch_text(conn, endpoint, msg.data)
            elif msg.type == WSMsgType.PING:
                await ws.pong(msg.data)
            elif msg.type == WSMsgType.PONG:
                pass
            elif msg.type == WSMsgType.BINARY:
                log.warning("websocket %s %s: binary (protobuf) frame ignored", endpoint.path, conn.host_id)
            else:   # CLOSE, CLOSING, CLOSED, ERROR
                if msg.type == WSMsgType.ERROR:   # e.g. a message over http.max_body_size
                    log.warning("websocket %s %s: closed: %s", endpoint.path, conn.host_id, ws.exception())
                break

    def _dispatch_text(self, conn, endpoint, data):
        try:
            decoded = strict_loads(data, limits.current.max_json_depth)
        except ValueError as exc:
            log.warning("websocket %s %s: undecodable message dropped: %s", endpoint.path, conn.host_id, exc)
            conn.send("", "Error", "message refused: %s" % exc, status=400)
            return
        msgs = decoded if isinstance(decoded, list) else [decoded]   # bulk frames
        for msg in msgs:
            if not isinstance(msg, dict) or not isinstance(msg.get("Namespace", ""), str) \
                    or not isinstance(msg.get("Type", ""), str):
                log.warning("websocket %s %s: malformed message dropped", endpoint.path, conn.host_id)
                continue
            conn.received_any = True
            if conn._pending and conn._resolve_reply(msg):
                continue
            ns = msg.get("Namespace") or ""
            try:
                if ns == "Graph" or ns not in self.namespace_handlers:
                    endpoint.on_message(conn, msg)
                else:
                    self.namespace_handlers[ns](conn, msg)
            except Exception:
                log.exception("websocket %s %s: failed to handle %s/%s", endpoint.path, conn.host_id,
                              ns, msg.get("Type"))
