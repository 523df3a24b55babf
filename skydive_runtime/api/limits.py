"""Limits on what one client may cost the service (docs/configuration.md "Limits").

    limits = Limits.from_config(config)     # http.max_body_size, http.max_json_depth, ...
    configure(limits)                       # the process-wide values read_body() and the WebSockets use
    runner, guard = await start_runner(app, limits)   # connection limit, header and idle timeouts
    guard.stop()

The values are process-wide (one service per process; `skydive allinone` runs two services with the
same configuration).
"""

import asyncio
import logging
import time

import yaml
from aiohttp import web

log = logging.getLogger(__name__)


class Limits:
    def __init__(self, max_body_size=64 * 1024 * 1024, max_json_depth=100, header_timeout=10.0,
                 idle_timeout=75.0, max_connections=4096, ws_queue_bytes=64 * 1024 * 1024, body_timeout=60.0):
        self.max_body_size = int(max_body_size)
        self.max_json_depth = int(max_json_depth)
        self.header_timeout = float(header_timeout)
        self.idle_timeout = float(idle_timeout)
        self.max_connections = int(max_connections)
        self.ws_queue_bytes = int(ws_queue_bytes)
        self.body_timeout = float(body_timeout)

    @classmethod
    def from_config(cls, config):
        d = cls()
        return cls(max_body_size=config.get_int("http.max_body_size", d.max_body_size, minimum=1024),
                   max_json_depth=config.get_int("http.max_json_depth", d.max_json_depth, minimum=2),
                   header_timeout=_positive(config, "http.header_timeout", d.header_timeout),
                   idle_timeout=_positive(config, "http.idle_timeout", d.idle_timeout),
                   max_connections=config.get_int("http.max_connections", d.max_connections, minimum=1),
                   ws_queue_bytes=config.get_int("http.ws.queue_max_bytes", d.ws_queue_bytes, minimum=1024),
                   body_timeout=_positive(config, "http.body_timeout", d.body_timeout))


def _positive(config, key, default):
    from ..config import ConfigError
    v = config.get_float(key, default)
    if v <= 0:
        raise ConfigError("%s: must be > 0, got %r" % (key, v))
    return v


current = Limits()


def configure(limits):
    global current   # pylint: disable=global-statement
    current = limits
    return limits


# ---- YAML bodies: no aliases (the "billion laughs" bomb), no anchors ------------------------------
class _NoAliasLoader(yaml.SafeLoader):   # pylint: disable=too-many-ancestors
    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            raise yaml.composer.ComposerError(None, None, "YAML aliases (*%s) are refused" % event.anchor,
                                              event.start_mark)
        if getattr(event, "anchor", None):
            raise yaml.composer.ComposerError(None, None, "YAML anchors (&%s) are refused" % event.anchor,
                                              event.start_mark)
        return yaml.SafeLoader.compose_node(self, parent, index)


def yaml_load(text):
    """yaml.safe_load without alias expansion: aliases and anchors raise yaml.YAMLError."""
    return yaml.load(text, Loader=_NoAliasLoader)   # nosec: a SafeLoader subclass


# ---- connections ---------------------------------------------------------------------------------
class ConnectionGuard:
    """Caps the number of open connections and closes those that send no complete request
    headers within header_timeout (idle keep-alive ones are closed by aiohttp after idle_timeout)."""

    def __init__(self, limits):
        self.limits = limits
        self.refused = 0
        self.timed_out = 0
        self._born = {}              # RequestHandler -> when it connected (until it sent headers)
        self._task = None
        self._server = None
        self._last_warning = 0.0

    def install(self, server):
        self._server = server
        plain = server.connection_made

        def connection_made(handler, transport):
            plain(handler, transport)
            self._born[handler] = time.monotonic()
            if len(server.connections) > self.limits.max_connections:
                self.refused += 1
                now = time.monotonic()
                if now - self._last_warning > 10:
                    self._last_warning = now
                    log.warning("connection limit reached (http.max_connections = %d): refusing connections "
                                "(%d so far)", self.limits.max_connections, self.refused)
                transport.abort()
        server.connection_made = connection_made
        self._task = asyncio.ensure_future(self._sweep())

    async def _sweep(self):
        period = min(1.0, self.limits.header_timeout / 2)
        while True:
            await asyncio.sleep(period)
            now = time.monotonic()
            closed = 0
            alive = set(self._server.connections)
            for handler, born in list(self._born.items()):
                # _request_count: requests whose headers were fully read on this connection
                if handler not in alive or getattr(handler, "_request_count", 1) > 0:
                    del self._born[handler]
                elif now - born > self.limits.header_timeout:
                    closed += 1
                    del self._born[handler]
                    handler.force_close()
            if closed:
                self.timed_out += closed
                log.info("closed %d connections that sent no complete request headers within %gs "
                         "(http.header_timeout)", closed, self.limits.header_timeout)

    def stop(self):
        if self._task is not None:
            self._task.cancel()
            self._task = None


async def start_runner(app, lim):
    """An aiohttp AppRunner set up with the idle timeout and a ConnectionGuard: (runner, guard)."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False, keepalive_timeout=lim.idle_timeout)
    await runner.setup()
    guard = ConnectionGuard(lim)
    guard.install(runner.server)
    return runner, guard
