"""REST routes shared by the analyzer and the agent: /api, /login, /api/status, /api/config,
/api/topology; the error middleware; the auth guard.

    app = make_app()                                  # error middleware installed
    guard = make_guard(authenticator)                 # guard(request, object, action)
    mount_info(app, host_id, "agent", guard)          # GET /api
    mount_login(app, authenticator)                   # POST/GET /login (cookies, throttling)
    mount_status(app, status_fn, guard)               # GET /api/status -> status_fn()
    mount_topology(app, graph, engine, guard)         # GET/POST /api/topology
"""

import json
import logging

from aiohttp import web

from .. import __version__
from . import limits
from .browser import OriginPolicy, origin_middleware
from .http import HTTPError, JSON_TYPE, dumps, empty, json_response, loads, read_raw, text_error
from .query import QueryError

log = logging.getLogger(__name__)

API_VERSION = "0.28.0"


@web.middleware
async def error_middleware(request, handler):
    try:
        return await handler(request)
    except HTTPError as exc:
        return text_error(exc.status, exc.text)
    except web.HTTPRequestEntityTooLarge:
        return text_error(413, "request body larger than %d bytes (http.max_body_size)" % limits.current.max_body_size)
    except web.HTTPException:
        raise
    except Exception:
        log.exception("%s %s failed", request.method, request.path)
        return text_error(500, "internal server error")


ORIGIN_POLICY = web.AppKey("origin_policy", OriginPolicy)
AUTHENTICATORS = web.AppKey("authenticators", list)


@web.middleware
async def auth_prefetch_middleware(request, handler):
    """Remote backends (Keystone) are asked before the handler's synchronous guard runs."""
    for authn in request.app[AUTHENTICATORS]:
        await authn.prefetch(request)
    return await handler(request)


def make_app(allowed_origins=(), **kw):
    """The aiohttp app with the error middleware, the browser defences (api/browser.py) and the
    auth prefetch (of the authenticators mount_login registers); allowed_origins: `http.allowed_origins`."""
    policy = OriginPolicy(allowed_origins)
    app = web.Application(middlewares=[error_middleware, origin_middleware(policy), auth_prefetch_middleware],
                          client_max_size=limits.current.max_body_size, **kw)
    app[ORIGIN_POLICY] = policy
    app[AUTHENTICATORS] = []
    return app


def make_guard(authenticator):
    """guard(request, obj, action): 401 on bad credentials, 405 on RBAC denial."""
    if authenticator is None:
        return lambda request, obj, action: None

    def guard(request, obj, action):
        return authenticator.check(request, obj, action)
    return guard


def mount_info(app, host_id, service_type, guard):
    async def info(request):
        guard(request, "status", "read")
        return json_response({"Host": host_id, "Version": API_VERSION, "Service": service_type})
    app.router.add_get("/api", info)
    app.router.add_get("/api/", info)


def mount_login(app, authenticator):
    app[AUTHENTICATORS].append(authenticator)
    close = getattr(authenticator.backend, "close", None)
    if close is not None:
        app.on_cleanup.append(lambda app_: close())

    async def login_get(request):
        raise web.HTTPFound("/")

    async def login(request):
        try:
            form = await request.post()
        except Exception:   # unparsable form body
            form = {}
        username = form.get("username")
        password = form.get("password")
        if authenticator.open:
            user = authenticator.backend.login("", "")
        else:
            if not isinstance(username, str) or not isinstance(password, str) or not username:
                return text_error(401, "No credentials provided")
            await authenticator.prefetch(request, username, password)
            user = authenticator.login(request, username, password)   # HTTPError 401 / 429 / 503
        body = {"Token": user.token, "Permissions": authenticator.rbac.permissions(user)}
        resp = web.Response(status=200, body=dumps(body).encode(), headers={"Content-Type": JSON_TYPE})
        origin = app[ORIGIN_POLICY].cors_origin(request.headers.get("Origin"))
        if origin:     # only an origin of http.allowed_origins: never a wildcard, never any echo
            resp.headers["Access-Control-Allow-Origin"] = origin
            resp.headers["Access-Control-Allow-Credentials"] = "true"
            resp.headers["Vary"] = "Origin"
        if user.token:
            authenticator.set_cookies(resp, request, user)
        return resp

    app.router.add_post("/login", login)
    app.router.add_get("/login", login_get)


def mount_status(app, status_fn, guard):
    async def status(request):
        guard(request, "status", "read")
        return json_response(status_fn())
    app.router.add_get("/api/status", status)
    app.router.add_get("/api/status/", status)


SECRET_WORDS = ("password", "passwd", "secret", "token", "credential", "cookie", "private")


def is_secret_key(key):
    """A config key whose value is never served: auth sections, tls, passwords, secrets, keys..."""
    k = key.lower()
    last = k.rsplit(".", 1)[-1]
    return (k == "auth" or k.startswith("auth.") or k.startswith("tls") or last == "users"
            or last.endswith("key") or any(w in last for w in SECRET_WORDS))


def redact(value, key):
    """The value of `key` with every secret inside it, at any depth, replaced by ""."""
    if is_secret_key(key):
        return ""
    if isinstance(value, dict):
        return {k: redact(v, "%s.%s" % (key, k)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, key + ".item") for v in value]
    return value


def mount_config(app, config, guard):
    async def get_config(request):
        guard(request, "config", "read")
        key = request.match_info["key"]
        # sub-keys of a secret section (auth.x.users.y, ...) are secret too
        parts = key.split(".")
        if any(is_secret_key(".".join(parts[:i + 1])) for i in range(len(parts))):
            return json_response("")
        return json_response(redact(config.public_value(key), key))
    app.router.add_get("/api/config/{key}", get_config)


def _content_type(accept):
    a = (accept or "").strip()
    if not a or "*" in a or "," in a:
        return JSON_TYPE
    return a + "; charset=UTF-8"


def _render(result, accept):
    """(body bytes, content type) of a query result for this Accept header."""
    if "vnd.graphviz" in accept and getattr(result, "is_graph", False):
        return result.to_dot().encode(), "text/vnd.graphviz; charset=UTF-8"
    if "vnd.tcpdump.pcap" in accept and getattr(result, "is_raw_packets", False):
        return result.to_pcap(), "application/vnd.tcpdump.pcap; charset=UTF-8"
    try:
        body = json.dumps(result.to_json_value(), separators=(",", ":"), ensure_ascii=False).encode()
    except (ValueError, TypeError, RecursionError) as exc:
        raise QueryError("cannot serialise the result: %s" % exc) from None
    ctype = JSON_TYPE if ("vnd.graphviz" in accept or "vnd.tcpdump" in accept) else _content_type(accept)
    return body, ctype


def mount_topology(app, graph, engine, guard):
    async def get_topology(request):
        guard(request, "topology", "read")
        body = dumps(graph.to_dict()).encode()
        # upstream writes the status before the header, so Go sniffs the type
        return web.Response(status=200, body=body, headers={"Content-Type": "text/plain; charset=utf-8"})

    async def post_topology(request):
        guard(request, "topology", "read")
        raw = await read_raw(request)
        if raw.strip():
            try:
                data = loads(raw.decode("utf-8"))
            except (ValueError, UnicodeDecodeError, RecursionError) as exc:
                raise HTTPError(400, "failed to decode JSON body: %s" % exc) from None
        else:
            data = {}
        if not isinstance(data, dict):
            raise HTTPError(400, "the body must be {\"GremlinQuery\": \"<query>\"}")
        query = data.get("GremlinQuery")
        if query is None or query == "":
            return empty(204)
        if not isinstance(query, str):
            raise HTTPError(400, "GremlinQuery must be a string")
        accept = request.headers.get("Accept", "")
        try:
            # results reference live elements: rendered in the query's thread, under the graph lock
            body, ctype = await engine.run_off_loop(query, lambda result: _render(result, accept))
        except QueryError as exc:
            raise HTTPError(400, str(exc)) from None
        return web.Response(status=200, body=body, headers={"Content-Type": ctype})

    app.router.add_get("/api/topology", get_topology)
    app.router.add_get("/api/topology/", get_topology)
    app.router.add_post("/api/topology", post_topology)
    app.router.add_post("/api/topology/", post_topology)


def service_version():
    return __version__
