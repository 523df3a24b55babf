"""Defences against a web page the operator visits (cross-site request forgery), docs/security.md.

- A request that changes state (POST, PUT, PATCH, DELETE) or opens a WebSocket (`/ws/...`) and
  carries an `Origin` header must come from the server itself (same scheme, host and port as the
  request's `Host`) or from an origin listed in `http.allowed_origins`; otherwise 403.
- A state-changing request under `/api/` must declare its body type: `application/json`
  (YAML types where the route reads YAML, pcap types on `/api/pcap`); otherwise 415. A browser
  cannot send these types to another origin without a CORS preflight, which is never granted.
- No CORS headers are sent, except on `/login` to an origin of `http.allowed_origins`.

Non-browser clients (skydive-client, the Go CLI, agents, curl) send no Origin header and already
send `Content-Type: application/json`.
"""

import logging
from urllib.parse import urlsplit

from aiohttp import web

from ..config import ConfigError
from .http import text_error

log = logging.getLogger(__name__)

STATE_CHANGING = ("POST", "PUT", "PATCH", "DELETE")
JSON_TYPES = ("application/json",)
YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml")
PCAP_TYPES = ("application/vnd.tcpdump.pcap", "application/octet-stream")
DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def _origin_tuple(scheme, netloc):
    try:
        parts = urlsplit("%s://%s" % (scheme, netloc))
        port = parts.port or DEFAULT_PORTS.get(scheme)
    except ValueError:
        return None
    if not parts.hostname:
        return None
    return scheme, parts.hostname.lower(), port


def normalise_origin(origin):
    """(scheme, host, port) of an Origin header value, None when it is not a URL origin ("null")."""
    try:
        parts = urlsplit(origin.strip())
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or parts.path not in ("", "/") or parts.query:
        return None
    return _origin_tuple(parts.scheme, parts.netloc)


def accepted_types(path):
    if path.rstrip("/") == "/api/topology":
        return JSON_TYPES
    if path.rstrip("/") == "/api/pcap":
        return JSON_TYPES + PCAP_TYPES
    return JSON_TYPES + YAML_TYPES


class OriginPolicy:
    def __init__(self, allowed_origins=()):
        self.allowed = set()
        self.listed = set()
        for o in allowed_origins or ():
            n = normalise_origin(str(o))
            if n is None:
                raise ConfigError("http.allowed_origins: %r is not an origin (scheme://host[:port])" % o)
            self.allowed.add(n)
            self.listed.add(str(o).strip().rstrip("/"))

    def allows(self, request, origin):
        n = normalise_origin(origin)
        if n is None:
            return False
        if n in self.allowed:
            return True
        return n == _origin_tuple(request.scheme, request.host)

    def cors_origin(self, origin):
        """The Origin to echo in CORS headers (only an explicitly allowed one), else None."""
        o = (origin or "").strip().rstrip("/")
        n = normalise_origin(o) if o else None
        return o if n is not None and n in self.allowed else None

    def refusal(self, request):
        """The error response for a request a foreign page could have sent, else None."""
        method = request.method
        is_ws = request.path.startswith("/ws/")
        if method not in STATE_CHANGING and not is_ws:
            return None
        origin = request.headers.get("Origin")
        if origin is not None and not self.allows(request, origin):
            log.info("refused %s %s from Origin %r (from %s)", method, request.path[:200], origin[:200], request.remote)
            return text_error(403, "Origin %r is not allowed: requests from a web page must come from this server "
                                   "or from an origin listed in http.allowed_origins" % origin[:200])
        if method in STATE_CHANGING and request.path.startswith("/api/"):
            ctype = (request.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            types = accepted_types(request.path)
            if ctype not in types:
                return text_error(415, "Unsupported Media Type: %s %s needs Content-Type: %s (got %r)"
                                  % (method, request.path[:200], " or ".join(types), ctype[:100]))
        return None


def origin_middleware(policy):
    @web.middleware
    async def check_origin(request, handler):
        refusal = policy.refusal(request)
        if refusal is not None:
            return refusal
        return await handler(request)
    return check_origin
