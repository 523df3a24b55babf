"""Keystone authentication backend (`auth.<name>.type: keystone`), as upstream graffiti/http/keystone.go.

`/login` (and `Authorization: Basic`) asks Keystone v3 for a token scoped to project `tenant_name`
of domain `domain_name`; that Keystone token is the session token handed back. A token a request
carries (cookie `authtoken`, `X-Auth-Token`) is validated with `GET /v3/auth/tokens` (the token
as both `X-Auth-Token` and `X-Subject-Token`, as upstream): it must be scoped to the same project
and domain. Results are cached `cache_ttl` seconds (never past the token's expiry), so a revoked
token is refused at the latest `cache_ttl` seconds later. Keystone unreachable (or answering 5xx)
is a 503 naming it: a request is never let in without Keystone's word.

Roles: the Keystone role names of the token map to RBAC roles through `roles` (default
`{admin: admin}`); a user with no mapped role gets `role` (default guest). The Keystone role names
are also RBAC subjects of the user, so `rbac.policy` lines may name them (`g, reader, guest`).

The HTTP calls are made by `prefetch()` (a coroutine, run by the auth middleware and the
WebSocket handshake before the synchronous guards); `login()` / `validate()` read its results.
"""

import asyncio
import calendar
import hashlib
import logging
import time

import aiohttp

from ..config import ConfigError
from .auth import User
from .http import HTTPError

log = logging.getLogger(__name__)

RESULTS = "skydive.keystone"      # request key: {cache key: Verdict} of this request


class Verdict:
    """What Keystone said of a token or a password: `user` (None: refused), or `error` (unreachable)."""
    __slots__ = ("user", "token", "error", "checked", "expires")

    def __init__(self, user=None, token="", error="", expires=0.0):
        self.user = user            # (name, role, keystone role names) or None
        self.token = token
        self.error = error
        self.checked = time.monotonic()
        self.expires = expires      # wall clock expiry of the token (0: unknown)


def v3_url(url):
    """The v3 base of an auth_url: http://ks:5000, .../v2.0 and .../v3/ all give http://ks:5000/v3."""
    url = url.rstrip("/")
    if url.endswith("/v2.0"):
        url = url[:-len("/v2.0")]
    return url if url.endswith("/v3") else url + "/v3"


def token_expiry(text):
    try:
        return float(calendar.timegm(time.strptime(text[:19], "%Y-%m-%dT%H:%M:%S")))
    except (TypeError, ValueError):
        return 0.0


class KeystoneBackend:
    type = "keystone"

    def __init__(self, name, section):
        self.name = name
        self.auth_url = str(section.get("auth_url") or "")
        if not self.auth_url.startswith(("http://", "https://")):
            raise ConfigError("auth.%s.auth_url: the Keystone URL is required (http(s)://host:5000/v3)" % name)
        self.url = v3_url(self.auth_url)
        self.tenant = str(section.get("tenant_name") or "admin")
        self.domain = str(section.get("domain_name") or "Default")
        self.role = str(section.get("role") or "guest")
        self.only_role = False      # True: every user gets `role` (the analyzer's cluster backend: admin)
        roles = section.get("roles") or {"admin": "admin"}
        if not isinstance(roles, dict):
            raise ConfigError("auth.%s.roles: expected a map of Keystone role: RBAC role" % name)
        self.roles = {str(k): str(v) for k, v in roles.items()}
        try:
            self.cache_ttl = float(section.get("cache_ttl", 10))
            self.timeout = float(section.get("timeout", 10))
        except (TypeError, ValueError):
            raise ConfigError("auth.%s.cache_ttl / timeout: expected a number of seconds" % name) from None
        self.cache = {}             # cache key -> Verdict
        self.inflight = {}          # cache key -> Future of the Verdict being fetched
        self.session = None

    # ---- what the Authenticator calls (synchronous: reads the request's prefetched verdicts) -------
    def login(self, username, password, request=None):
        v = self._verdict(request, self._pw_key(username, password))
        return self._user(v)

    def validate(self, request, token):
        return self._user(self._verdict(request, "t:" + token))

    def has_user(self, username):
        return False              # no signed session tokens: the Keystone token is the session

    def _verdict(self, request, key):
        v = (request.get(RESULTS) or {}).get(key) if request is not None else None
        if v is None:
            raise HTTPError(503, "Keystone authentication: no answer from %s" % self.url)
        if v.error:
            raise HTTPError(503, "Keystone at %s is unreachable: %s" % (self.url, v.error))
        return v

    @staticmethod
    def _user(v):
        if v.user is None:
            return None
        name, role, roles = v.user
        return User(name, role, v.token, roles=roles)

    # ---- the HTTP side ---------------------------------------------------------------------------
    @staticmethod
    def _pw_key(username, password):
        return "p:" + hashlib.sha256(("%s\0%s" % (username, password)).encode()).hexdigest()

    async def prefetch(self, request, tokens, passwords):
        """Ask Keystone (or the cache) about `tokens` and `passwords` [(user, password)]; the
        verdicts go to request[RESULTS] for login()/validate()."""
        results = request.get(RESULTS)
        if results is None:
            results = request[RESULTS] = {}
        jobs = [("t:" + t, self._check_token, (t,)) for t in tokens] + \
               [(self._pw_key(u, p), self._password, (u, p)) for u, p in passwords]
        for key, fn, args in jobs:
            if key not in results:
                v = results[key] = await self._cached(key, fn, *args)
                if v.user is not None and v.token and key.startswith("p:"):
                    self._store("t:" + v.token, v)     # the token it got needs no check of its own

    async def _cached(self, key, fn, *args):
        v = self.cache.get(key)
        now = time.monotonic()
        if v is not None and not v.error and now - v.checked < self.cache_ttl and \
                (not v.expires or v.expires > time.time()):
            return v
        task = self.inflight.get(key)
        if task is None:      # its own task: a client that goes away does not cancel the call
            task = self.inflight[key] = asyncio.ensure_future(self._fetch(key, fn, *args))
        return await asyncio.shield(task)

    async def _fetch(self, key, fn, *args):
        try:
            v = await fn(*args)
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            v = Verdict(error=str(exc) or type(exc).__name__)
            log.warning("keystone: %s unreachable: %s", self.url, v.error)
        finally:
            self.inflight.pop(key, None)
        if v.error:
            self.cache.pop(key, None)
        else:
            self._store(key, v)
        return v

    def _store(self, key, v):
        if len(self.cache) > 10000:
            now = time.monotonic()
            for k in [k for k, c in self.cache.items() if now - c.checked >= self.cache_ttl]:
                del self.cache[k]
            if len(self.cache) > 10000:
                self.cache.clear()
        self.cache[key] = v

    def _session(self):
        if self.session is None or self.session.closed:
            self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        return self.session

    def _verdict_of(self, status, body, token, text):
        if status >= 500:
            return Verdict(error="HTTP %d: %s" % (status, text[:200]))
        if status not in (200, 201) or not isinstance(body, dict):
            return Verdict()
        tok = body.get("token") or {}
        project = tok.get("project") or {}
        if project.get("name") != self.tenant or (project.get("domain") or {}).get("name") != self.domain:
            return Verdict()           # upstream: "Tenant mismatch" / "Domain mismatch"
        names = tuple(str(r.get("name")) for r in tok.get("roles") or () if isinstance(r, dict))
        mapped = [self.roles[r] for r in names if r in self.roles]
        role = self.role if self.only_role or not mapped else ("admin" if "admin" in mapped else mapped[0])
        user = str((tok.get("user") or {}).get("name") or "")
        if not user:
            return Verdict()
        return Verdict((user, role, names), token, expires=token_expiry(tok.get("expires_at")))

    async def _check_token(self, token):
        headers = {"X-Auth-Token": token, "X-Subject-Token": token, "Accept": "application/json"}
        async with self._session().get(self.url + "/auth/tokens", headers=headers) as resp:
            text = await resp.text()
            body = await self._json(resp)
            return self._verdict_of(resp.status, body, token, text)

    async def _password(self, username, password):
        body = {"auth": {"identity": {"methods": ["password"], "password": {
            "user": {"name": username, "domain": {"name": self.domain}, "password": password}}},
            "scope": {"project": {"name": self.tenant, "domain": {"name": self.domain}}}}}
        async with self._session().post(self.url + "/auth/tokens", json=body) as resp:
            text = await resp.text()
            data = await self._json(resp)
            return self._verdict_of(resp.status, data, resp.headers.get("X-Subject-Token", ""), text)

    @staticmethod
    async def _json(resp):
        try:
            return await resp.json(content_type=None)
        except (ValueError, aiohttp.ContentTypeError):
            return None

    async def close(self):
        if self.session is not None:
            await self.session.close()
            self.session = None
