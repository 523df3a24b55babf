"""Authentication backends (noauth, basic) and RBAC, as upstream graffiti/http/auth.go and rbac/.

Credentials of a request are looked up in this order: cookie `authtoken`, header `Authorization`
(`Basic <b64>`), header `X-Auth-Token`, then the `x-auth-token` query/form parameter.
"""

import base64
import binascii
import hashlib
import hmac
import json
import logging
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
    __slots__ = ("name", "role", "token")

    def __init__(self, name, role, token=""):
        self.name = name
        self.role = role
        self.token = token


class NoAuthBackend:
    type = "noauth"

    def __init__(self, name="noauth"):
        self.name = name
        self.role = "admin"

    def login(self, username, password):
        return User("admin", "admin", "")

    def from_request(self, request):
        return User("admin", "admin", "")


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

    def login(self, username, password):
        if not self._check(username, password):
            return None
        token = base64.b64encode(("%s:%s" % (username, password)).encode()).decode()
        return User(username, self.role, token)

    def from_request(self, request):
        token = token_from_request(request)
        if not token:
            return None
        if token.startswith("Basic "):
            token = token[6:]
        try:
            decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            return None
        username, sep, password = decoded.partition(":")
        if not sep:
            return None
        user = self.login(username, password)
        return user


def token_from_request(request):
    token = request.cookies.get("authtoken")
    if token:
        return token
    authz = request.headers.get("Authorization")
    if authz:
        return authz
    token = request.headers.get("X-Auth-Token")
    if token:
        return token
    return request.query.get("x-auth-token") or ""


def make_backend(config, backend_key):
    name = config.get_string(backend_key) or "noauth"
    section = config.get("auth.%s" % name)
    if section is None:
        if name in ("noauth", "basic"):
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
    raise ConfigError("auth.%s.type: %r is not supported (noauth, basic)" % (name, kind))


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
        subjects = [user.name, user.role]
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


class Authenticator:
    """One auth backend plus the RBAC policy; used by the REST routes and the WS handshakes."""

    def __init__(self, backend, rbac):
        self.backend = backend
        self.rbac = rbac

    def user(self, request):
        user = self.backend.from_request(request)
        if user is None:
            raise HTTPError(401, "Wrong credentials")
        return user

    def check(self, request, obj, action):
        user = self.user(request)
        if not self.rbac.allowed(user, obj, action):
            raise HTTPError(405, "'%s' has no '%s' permission on '%s'" % (user.name, action, obj))
        return user

    def permissions_cookie(self, user):
        return base64.b64encode(json.dumps(self.rbac.permissions(user)).encode()).decode()
