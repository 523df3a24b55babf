"""Authentication backends (noauth, basic) and RBAC, as upstream graffiti/http/auth.go and rbac/.

Credentials of a request are looked up in this order: cookie `authtoken`, header `Authorization`
(`Basic <b64>`), header `X-Auth-Token`, then the `x-auth-token` query/form parameter.

Unlike upstream (token = base64 of user:password), `/login` hands out a signed, expiring session
token (`sky1.<payload>.<HMAC-SHA256>`, secret `http.session.secret` or random per process,
lifetime `http.session.ttl` seconds); `Authorization: Basic` keeps working on every request (the
Go CLI and agents send it). Password checks (login and Basic) are throttled per client address
and per user name (`http.login.max_failures` failures per `http.login.period` seconds -> 429).
"""

import base64
import binascii
import collections
import hashlib
import hmac
import ipaddress
import json
import logging
import os
import time
import warnings

from ..config import ConfigError
from .http import HTTPError

log = logging.getLogger(__name__)

# ---- password hashes -------------------------------------------------------------------------

_ITOA64 = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _to64(v, n):
    out = ""
    for dummy in range(n):
        out += _ITOA64[v & 0x3F]
        v >>= 6
    return out


def md5_crypt(password, salt, magic="$apr1$"):
    """The Apache apr1 / FreeBSD $1$ MD5-based crypt."""
    pw = password.encode()
    salt = salt.encode()[:8]
    m = magic.encode()
    ctx = hashlib.md5(pw + m + salt)
    final = hashlib.md5(pw + salt + pw).digest()
    n = len(pw)
    while n > 0:
        ctx.update(final[:min(16, n)])
        n -= 16
    i = len(pw)
    while i:
        ctx.update(b"\0" if i & 1 else pw[:1])
        i >>= 1
    final = ctx.digest()
    for i in range(1000):
        c = hashlib.md5()
        c.update(pw if i & 1 else final)
        if i % 3:
            c.update(salt)
        if i % 7:
            c.update(pw)
        c.update(final if i & 1 else pw)
        final = c.digest()
    f = final
    out = ""
    for a, b, c in ((0, 6, 12), (1, 7, 13), (2, 8, 14), (3, 9, 15), (4, 10, 5)):
        out += _to64((f[a] << 16) | (f[b] << 8) | f[c], 4)
    out += _to64(f[11], 2)
    return magic + salt.decode() + "$" + out


def _system_crypt(password, hashed):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            import crypt  # stdlib up to 3.12; libxcrypt handles bcrypt, sha256/512-crypt, DES
        except ImportError:
            return None
    try:
        result = crypt.crypt(password, hashed)
    except (OSError, ValueError):
        return None
    return result


def verify_htpasswd(password, hashed):
    if hashed.startswith("{SHA}"):
        digest = base64.b64encode(hashlib.sha1(password.encode()).digest()).decode()
        return hmac.compare_digest(digest, hashed[5:])
    for magic in ("$apr1$", "$1$"):
        if hashed.startswith(magic):
            salt = hashed[len(magic):].split("$", 1)[0]
            return hmac.compare_digest(md5_crypt(password, salt, magic), hashed)
    if hashed.startswith(("$2a$", "$2b$", "$2y$", "$5$", "$6$")) or (len(hashed) == 13 and "$" not in hashed):
        result = _system_crypt(password, hashed)
        if result is not None and result not in ("*0", "*1") and hmac.compare_digest(result, hashed):
            return True
        if result is None:
            log.warning("cannot verify a %s password hash: no crypt support in this Python", hashed[:4])
        if len(hashed) != 13:
            return False
    return hmac.compare_digest(password, hashed)   # htpasswd -p (plain text)


def load_htpasswd(path):
    users = {}
    try:
        with open(path) as fh:
            for line in fh:
                line = line.strip()
                if not line or line.startswith("#") or ":" not in line:
                    continue
                user, hashed = line.split(":", 1)
                users[user] = hashed
    except OSError as exc:
        raise ConfigError("cannot read htpasswd file %s: %s" % (path, exc.strerror)) from None
    return users


# ---- backends ------------------------------------------------------------------------------------

class User:
    __slots__ = ("name", "role", "token", "roles")

    def __init__(self, name, role, token="", roles=()):
        self.name = name
        self.role = role
        self.token = token
        self.roles = tuple(roles)     # more RBAC subjects (a Keystone user's role names)


class NoAuthBackend:
    type = "noauth"

    def __init__(self, name="noauth"):
        self.name = name
        self.role = "admin"

    def login(self, username, password, request=None):
        return User("admin", "admin", "")

    def has_user(self, username):
        return True


class BasicAuthBackend:
    type = "basic"

    def __init__(self, name, section):
        self.name = name
        self.role = str(section.get("role") or "admin")
        self.file = section.get("file") or ""
        users = section.get("users") or {}
        if not isinstance(users, dict):
            raise ConfigError("auth.%s.users: expected a map of user: password" % name)
        self.users = {str(k): str(v) for k, v in users.items()}
        if self.file:
            load_htpasswd(self.file)   # fail at start on an unreadable file

    def _check(self, username, password):
        if username in self.users:
            return hmac.compare_digest(self.users[username], password)
        if self.file:
            hashed = load_htpasswd(self.file).get(username)   # re-read: htpasswd edits apply at once
            if hashed is not None:
                return verify_htpasswd(password, hashed)
        return False

    def login(self, username, password, request=None):
        """The user when the password is right, else None (no token: the Authenticator signs one)."""
        if not self._check(username, password):
            return None
        return User(username, self.role)

    def has_user(self, username):
        if username in self.users:
            return True
        return bool(self.file) and username in load_htpasswd(self.file)


def tokens_from_request(request):
    """The credentials a request carries, in upstream's lookup order."""
    found = (request.cookies.get("authtoken"), request.headers.get("Authorization"),
             request.headers.get("X-Auth-Token"), request.query.get("x-auth-token"))
    return [t.strip() for t in found if t and t.strip()]


def make_backend(config, backend_key):
    name = config.get_string(backend_key) or "noauth"
    section = config.get("auth.%s" % name)
    if section is None:
        if name in ("noauth", "basic", "keystone"):    # upstream's built-in backend names
            section = {"type": name}
        else:
            raise ConfigError("%s: no auth section 'auth.%s' is configured" % (backend_key, name))
    if not isinstance(section, dict):
        raise ConfigError("auth.%s: expected a map" % name)
    kind = section.get("type") or name
    if kind == "noauth":
        return NoAuthBackend(name)
    if kind == "basic":
        return BasicAuthBackend(name, section)
    if kind == "keystone":
        from .keystone import KeystoneBackend
        return KeystoneBackend(name, section)
    raise ConfigError("auth.%s.type: %r is not supported (noauth, basic, keystone)" % (name, kind))


# ---- RBAC ----------------------------------------------------------------------------------------

# upstream rbac/policy.csv: admin may do everything, guest only reads status/topology and subscribes
DEFAULT_POLICY = [
    ("p", "admin", "*", "*", "allow"),
    ("p", "guest", "topology", "read", "allow"),
    ("p", "guest", "status", "read", "allow"),
    ("p", "guest", "websocket", "/ws/subscriber", "allow"),
]

OBJECTS = ("topology", "status", "config", "node", "edge", "capture", "alert", "injectpacket",
           "noderule", "edgerule", "workflow", "pcap", "websocket")


class RBAC:
    def __init__(self, extra_lines=()):
        self.rules = list(DEFAULT_POLICY)
        self.groups = {}
        for line in extra_lines or ():
            parts = [p.strip() for p in str(line).split(",")]
            if parts[0] == "p" and len(parts) >= 4:
                effect = parts[4] if len(parts) > 4 else "allow"
                self.rules.append(("p", parts[1], parts[2], parts[3], effect))
            elif parts[0] == "g" and len(parts) >= 3:
                self.groups.setdefault(parts[1], set()).add(parts[2])
            else:
                raise ConfigError("rbac.policy: cannot parse policy line %r" % line)

    def _subjects(self, user):
        subjects = [user.name, user.role] + list(user.roles)
        seen = set()
        i = 0
        while i < len(subjects):
            for g in self.groups.get(subjects[i], ()):
                if g not in seen:
                    seen.add(g)
                    subjects.append(g)
            i += 1
        return set(subjects)

    def allowed(self, user, obj, action):
        subjects = self._subjects(user)
        allow = False
        for dummy, sub, o, a, effect in self.rules:
            if sub in subjects and o in ("*", obj) and a in ("*", action):
                if effect == "deny":
                    return False
                allow = True
        return allow

    def permissions(self, user):
        out = []
        for obj in OBJECTS:
            actions = ("/ws/subscriber", "/ws/publisher", "/ws/pubsub") if obj == "websocket" else ("read", "write")
            for action in actions:
                out.append({"Object": obj, "Action": action, "Allowed": self.allowed(user, obj, action)})
        return out


# ---- session tokens and login throttling ---------------------------------------------------------

def _b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Sessions:
    """Signed, expiring session tokens: `sky1.<b64url JSON {u, b, e}>.<b64url HMAC-SHA256>`."""

    PREFIX = "sky1."

    def __init__(self, secret=None, ttl=86400):
        self.secret = (secret.encode() if isinstance(secret, str) else secret) or os.urandom(32)
        self.ttl = max(1, int(ttl))

    @classmethod
    def from_config(cls, config):
        secret = config.get_string("http.session.secret")
        if secret and len(secret) < 16:
            raise ConfigError("http.session.secret: use at least 16 characters (e.g. openssl rand -hex 32)")
        return cls(secret or None, config.get_int("http.session.ttl", 86400, minimum=1))

    def _sign(self, body):
        return _b64(hmac.new(self.secret, body.encode(), hashlib.sha256).digest())

    def issue(self, user, backend_name):
        body = self.PREFIX + _b64(json.dumps({"u": user.name, "b": backend_name, "e": int(time.time()) + self.ttl},
                                             separators=(",", ":")).encode())
        return body + "." + self._sign(body)

    def verify(self, token, backend_name):
        """The user name of a valid, unexpired token issued for this backend, else None."""
        if not token.startswith(self.PREFIX) or token.count(".") != 2:
            return None
        body, sig = token.rsplit(".", 1)
        if not hmac.compare_digest(self._sign(body), sig):
            return None
        try:
            claims = json.loads(_unb64(body[len(self.PREFIX):]))
        except (ValueError, binascii.Error):
            return None
        if not isinstance(claims, dict) or claims.get("b") != backend_name or not isinstance(claims.get("u"), str):
            return None
        if not isinstance(claims.get("e"), int) or claims["e"] < time.time():
            return None
        return claims["u"]


class LoginThrottle:
    """At most `max_failures` wrong passwords per `period` seconds per client address and per user
    name (the user limit binds the addresses that failed themselves, see `check`)."""

    MAX_KEYS = 100000

    def __init__(self, max_failures=10, period=60.0):
        self.max_failures = max(1, int(max_failures))
        self.period = float(period)
        self.failures = collections.OrderedDict()    # key -> deque of failure times

    @classmethod
    def from_config(cls, config):
        return cls(config.get_int("http.login.max_failures", 10, minimum=1),
                   max(1.0, config.get_float("http.login.period", 60.0)))

    def _recent(self, key, now):
        q = self.failures.get(key)
        if q is None:
            return None
        while q and q[0] <= now - self.period:
            q.popleft()
        if not q:
            del self.failures[key]
            return None
        return q

    def check(self, addr, username):
        """Raise 429 when this address had too many recent failures, or this user name had and
        this address failed too (an address with a clean record is never locked out by others'
        failures: nobody can lock the operator or the agents out by guessing their password)."""
        now = time.monotonic()
        by_ip = self._recent("ip:" + addr, now)
        if by_ip is not None and len(by_ip) >= self.max_failures:
            raise HTTPError(429, "Too many failed login attempts from %s: retry in %d s"
                            % (addr, int(by_ip[0] + self.period - now) + 1))
        by_user = self._recent("user:" + username, now)
        if by_ip is not None and by_user is not None and len(by_user) >= self.max_failures:
            raise HTTPError(429, "Too many failed login attempts for user '%s': retry in %d s"
                            % (username[:64], int(by_user[0] + self.period - now) + 1))

    def failed(self, addr, username):
        now = time.monotonic()
        for key in ("ip:" + addr, "user:" + username):
            q = self._recent(key, now)
            if q is None:
                q = self.failures[key] = collections.deque(maxlen=self.max_failures)
            q.append(now)
            self.failures.move_to_end(key)
        while len(self.failures) > self.MAX_KEYS:
            self.failures.popitem(last=False)


def _remote(request):
    return request.remote or ""


def _basic_credentials(token):
    """(user, password) of `Basic <b64>`, or None."""
    if not token.startswith("Basic "):
        return None
    try:
        decoded = base64.b64decode(token[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    username, sep, password = decoded.partition(":")
    return (username, password) if sep and username else None


class Authenticator:
    """One auth backend plus the RBAC policy; used by the REST routes and the WS handshakes."""

    def __init__(self, backend, rbac, sessions=None, throttle=None):
        self.backend = backend
        self.rbac = rbac
        self.sessions = sessions or Sessions()
        self.throttle = throttle or LoginThrottle()

    @property
    def open(self):
        return self.backend.type == "noauth"

    async def prefetch(self, request, username=None, password=None):
        """What user()/login() will need from a remote backend (Keystone), fetched before the
        synchronous guards run; a no-op for the local backends."""
        if not hasattr(self.backend, "prefetch"):
            return
        tokens, passwords = [], []
        for token in tokens_from_request(request):
            creds = _basic_credentials(token)
            if creds is None:
                tokens.append(token)
            else:
                passwords.append(creds)
        if username:
            passwords.append((username, password or ""))
        addr = _remote(request)
        allowed = []
        for creds in passwords:
            try:
                self.throttle.check(addr, creds[0])
                allowed.append(creds)
            except HTTPError:
                pass          # login() answers 429 without asking Keystone
        await self.backend.prefetch(request, tokens, allowed)

    def login(self, request, username, password):
        """User for a password (its `token` a fresh session token); 401 / 429 otherwise."""
        addr = _remote(request)
        self.throttle.check(addr, username)
        user = self.backend.login(username, password, request=request)
        if user is None:
            self.throttle.failed(addr, username)
            log.warning("authentication of user %r from %s failed", username[:64], addr)
            raise HTTPError(401, "Wrong credentials")
        if not user.token:                    # Keystone hands out its own token
            user.token = self.sessions.issue(user, self.backend.name)
        return user

    def user(self, request):
        if self.open:
            return self.backend.login("", "")
        for token in tokens_from_request(request):    # first valid one wins (a stale cookie
            creds = _basic_credentials(token)         # does not hide a good Basic header)
            if creds is not None:
                try:
                    return self.login(request, *creds)
                except HTTPError as exc:
                    if exc.status in (429, 503):     # throttled / Keystone unreachable
                        raise
                    continue
            validate = getattr(self.backend, "validate", None)
            if validate is not None:
                user = validate(request, token)     # 503 when Keystone is unreachable
                if user is not None:
                    return user
                continue
            name = self.sessions.verify(token, self.backend.name)
            if name is not None and self.backend.has_user(name):
                return User(name, self.backend.role, token)
        raise HTTPError(401, "Wrong credentials")

    def check(self, request, obj, action):
        user = self.user(request)
        if not self.rbac.allowed(user, obj, action):
            raise HTTPError(405, "'%s' has no '%s' permission on '%s'" % (user.name, action, obj))
        return user

    def set_cookies(self, response, request, user):
        """authtoken (HttpOnly) and permissions (readable by the UI's JS), SameSite=Strict,
        Secure under TLS, both expiring with the session."""
        common = {"path": "/", "samesite": "Strict", "secure": request.secure, "max_age": self.sessions.ttl}
        response.set_cookie("authtoken", user.token, httponly=True, **common)
        response.set_cookie("permissions", self.permissions_cookie(user), **common)

    def permissions_cookie(self, user):
        return base64.b64encode(json.dumps(self.rbac.permissions(user)).encode()).decode()


def make_authenticators(config, backend_keys, admin=()):
    """{name: Authenticator} for {name: "<...>.auth.<x>.backend"}, sharing one session secret and
    one login throttle; the names in `admin` get role admin (upstream: cluster users)."""
    rbac = RBAC(config.get_list("rbac.policy"))
    sessions, throttle = Sessions.from_config(config), LoginThrottle.from_config(config)
    out = {}
    for name, key in backend_keys.items():
        backend = make_backend(config, key)
        if name in admin:
            backend.role = "admin"
            backend.only_role = True
        out[name] = Authenticator(backend, rbac, sessions, throttle)
    return out


def warn_if_open(service, listen_host, authenticators):
    """The loud warning of a service without authentication on a non-loopback address."""
    try:
        loopback = ipaddress.ip_address(listen_host).is_loopback
    except ValueError:
        loopback = listen_host == "localhost"
    if loopback:
        return False
    opened = [name for name, a in sorted(authenticators.items()) if a is not None and a.open]
    if not opened:
        return False
    log.warning("!" * 100)
    log.warning("SECURITY: the %s listens on %s WITHOUT AUTHENTICATION (%s backend: noauth): anyone who can "
                "reach it can read and change the topology, create captures and alerts", service,
                listen_host or "all addresses", ", ".join(opened))
    log.warning("SECURITY: set %s.auth.api.backend to a basic auth section (see docs/security.md)", service)
    log.warning("!" * 100)
    return True
