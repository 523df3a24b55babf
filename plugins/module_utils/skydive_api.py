# -*- coding: utf-8 -*-
# Copyright: (c) 2024, skydive.skydive contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""REST client for the Skydive analyzer API, shared by modules, the lookup and the inventory.

Only the Python standard library and ``ansible.module_utils.urls`` are used, so nothing has to
be installed on the managed host (``requests`` is not assumed).

Behaviour worth knowing (see the upstream API notes):

* ``GET /api/<resource>`` answers an object keyed by ID, not a list.
* ``POST`` answers 201, ``DELETE`` 200 with an empty body, a no-op ``PATCH`` 304.
* Authentication: when a username is set the client logs in once with ``POST /login`` (form
  fields ``username`` and ``password``) and sends the ``authtoken`` cookie it gets back; it also
  sends ``Authorization: Basic`` so analyzers that skip ``/login`` accept it. A 401 means wrong
  or missing credentials, a 405 an RBAC denial.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import json
import os
import socket
import ssl as ssl_lib
import uuid

from ansible.module_utils.common.text.converters import to_bytes, to_native, to_text
from http.client import HTTPException
from http.cookiejar import CookieJar
from urllib.error import HTTPError, URLError
from urllib.parse import quote, urlencode

from ansible.module_utils.urls import open_url

DEFAULT_ANALYZER = "127.0.0.1:8082"
DEFAULT_TIMEOUT = 30

# Facts of the runtime the collection cannot import on managed hosts, copied here and pinned to
# skydive_runtime/flow/capabilities.py and flow/forge.py by tests/ansible/test_parity.py.
# Node types that can carry a capture (tuntap: the VM taps).
CAPTURABLE_TYPES = frozenset([
    "internal", "veth", "tun", "tuntap", "bridge", "dummy", "gre", "bond", "can", "hsr", "ifb", "macvlan",
    "macvtap", "vlan", "vxlan", "gretap", "ip6gretap", "geneve", "ipoib", "vcan", "ipip", "ipvlan", "lowpan",
    "ip6tnl", "ip6gre", "sit", "device", "ovsbridge", "ovsport",
])
# The capture types the runtime implements.
CAPTURE_TYPES = ("afpacket", "pcap", "pcapsocket", "sflow", "ovssflow", "ebpf", "ovsmirror", "ovsnetflow")
EXTRA_LAYERS = {"VRRP": 1, "DNS": 2, "DHCPv4": 4}
INJECTION_TYPES = ("icmp4", "icmp6", "tcp4", "tcp6", "udp4", "udp6")


class SkydiveError(Exception):
    """Any failure talking to the analyzer; ``str()`` is a complete, human-readable message."""

    def __init__(self, msg, status=None, body=None, url=None, method=None):
        super(SkydiveError, self).__init__(msg)
        self.msg = msg
        self.status = status
        self.body = body
        self.url = url
        self.method = method

    def __str__(self):
        return self.msg

    def to_dict(self):
        """Extra keys for ``fail_json``."""
        result = {}
        if self.status is not None:
            result["status"] = self.status
        if self.body:
            result["body"] = self.body
        if self.url:
            result["url"] = self.url
        return result


class SkydiveNotFound(SkydiveError):
    """HTTP 404 on a resource."""


def gen_id(*parts):
    """UUIDv5 on the OID namespace of ``parts`` joined by ``:``, as the upstream modules did."""
    return str(uuid.uuid5(uuid.NAMESPACE_OID, ":".join(to_text(p) for p in parts)))


def node_id(name, node_type, seed=None):
    """ID of a node managed by ``skydive_node``: uuid5(OID, seed or "<name>:<node_type>")."""
    if seed:
        return str(uuid.uuid5(uuid.NAMESPACE_OID, to_text(seed)))
    return gen_id(name, node_type)


def edge_id(parent_id, child_id, relation_type):
    """ID of an edge managed by ``skydive_edge``: uuid5(OID, "<parent>:<child>:<relation>")."""
    return gen_id(parent_id, child_id, relation_type)


def json_pointer_escape(key):
    """Escape one JSON pointer reference token (RFC 6901)."""
    return to_text(key).replace("~", "~0").replace("/", "~1")


def gremlin_quote(value):
    """Quote a string for a Gremlin query.

    The Skydive Gremlin lexer has no escape sequences: a string ends at the next quote of either
    kind, so a value holding both quote characters cannot be written at all.
    """
    value = to_text(value)
    if "'" not in value:
        return "'%s'" % value
    if '"' not in value:
        return '"%s"' % value
    raise SkydiveError("cannot quote %r for Gremlin: it contains both ' and \"" % value)


def is_gremlin(value):
    """True when ``value`` looks like a Gremlin query (starts with ``G.`` or ``g.``)."""
    value = to_text(value).strip()
    return len(value) > 1 and value[0] in "gG" and value[1] == "."


def split_endpoint(analyzer, ssl=None):
    """Return ``(scheme, host:port)`` for an analyzer address.

    ``analyzer`` is ``host:port``, ``host`` (port 8082), ``:port`` or a URL with an http/https
    scheme; a scheme wins over ``ssl``.
    """
    analyzer = to_text(analyzer or DEFAULT_ANALYZER).strip()
    scheme = None
    if "://" in analyzer:
        scheme, analyzer = analyzer.split("://", 1)
        scheme = scheme.lower()
        if scheme not in ("http", "https"):
            raise SkydiveError("analyzer %r: only http:// and https:// URLs are supported" % analyzer)
    analyzer = analyzer.rstrip("/")
    if "/" in analyzer:
        raise SkydiveError("analyzer %r must be host:port (optionally with http:// or https://), "
                           "without a path" % analyzer)
    if not analyzer:
        raise SkydiveError("analyzer address is empty")
    if analyzer.startswith(":"):
        analyzer = "127.0.0.1" + analyzer
    elif ":" not in analyzer or (analyzer.startswith("[") and analyzer.endswith("]")):
        analyzer = analyzer + ":8082"
    if scheme is None:
        scheme = "https" if ssl else "http"
    return scheme, analyzer


class SkydiveClient(object):
    """Synchronous client for one analyzer.

    :arg analyzer: ``host:port`` or URL of the analyzer.
    :kwarg ssl: use https when ``analyzer`` has no scheme.
    :kwarg validate_certs: verify the server certificate (https).
    :kwarg ca_path: CA bundle used to verify it.
    :kwarg username: user name; when set, the client logs in (``/login``) before its first call.
    :kwarg password: password.
    :kwarg timeout: seconds per HTTP request.
    """

    def __init__(self, analyzer=None, ssl=False, validate_certs=True, ca_path=None,
                 username=None, password=None, timeout=DEFAULT_TIMEOUT, client_cert=None,
                 client_key=None):
        self.scheme, self.endpoint = split_endpoint(analyzer, ssl)
        self.base_url = "%s://%s" % (self.scheme, self.endpoint)
        self.validate_certs = validate_certs
        self.ca_path = ca_path or None
        self.client_cert = client_cert or None
        self.client_key = client_key or None
        self.username = username or None
        self.password = password or ""
        self.timeout = timeout or DEFAULT_TIMEOUT
        self.cookies = CookieJar()
        self._logged_in = False
        self._token = None

    # -- transport ---------------------------------------------------------------------------

    def _raw(self, method, path, body=None, headers=None, auth=True):
        """Send one request; return ``(status, body text, headers)``; raise SkydiveError."""
        url = self.base_url + path
        hdrs = {"Accept": "application/json"}
        if headers:
            hdrs.update(headers)
        if auth and self.username:
            creds = "%s:%s" % (self.username, self.password)
            hdrs["Authorization"] = "Basic " + to_text(base64.b64encode(to_bytes(creds)))
            if self._token:
                hdrs["Cookie"] = "authtoken=%s" % self._token
        try:
            resp = open_url(url, data=body, headers=hdrs, method=method, timeout=self.timeout,
                            validate_certs=self.validate_certs, ca_path=self.ca_path,
                            client_cert=self.client_cert, client_key=self.client_key,
                            cookies=self.cookies, follow_redirects="safe", use_proxy=True,
                            force_basic_auth=False, http_agent="ansible-skydive.skydive")
            data = resp.read()
            return resp.getcode(), to_text(data, errors="surrogate_or_replace"), resp.headers
        except HTTPError as exc:
            try:
                data = exc.read()
            except Exception:  # pylint: disable=broad-except
                data = b""
            return exc.code, to_text(data or b"", errors="surrogate_or_replace"), exc.headers
        except (URLError, HTTPException, socket.timeout, OSError, ssl_lib.SSLError, ValueError) as exc:
            raise SkydiveError(self._connection_message(method, url, exc), url=url, method=method)

    def _connection_message(self, method, url, exc):
        reason = getattr(exc, "reason", exc)
        text = to_native(reason)
        if isinstance(reason, (socket.timeout,)) or "timed out" in text:
            return ("Skydive analyzer at %s did not answer %s %s within %s s (timeout); check "
                    "the analyzer address and that it is running"
                    % (self.endpoint, method, url, self.timeout))
        if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
            return ("TLS certificate of the Skydive analyzer at %s could not be verified (%s); "
                    "set ca_path to the CA that signed it, or validate_certs=false" % (self.endpoint, text))
        if "WRONG_VERSION_NUMBER" in text or "wrong version number" in text:
            return ("Skydive analyzer at %s does not speak TLS (%s); set ssl=false or use an "
                    "http:// address" % (self.endpoint, text))
        hint = ""
        if self.scheme == "http" and ("Remote end closed" in text or "reset by peer" in text):
            hint = " (if it serves HTTPS, set ssl=true or use an https:// address)"
        return ("cannot reach the Skydive analyzer at %s (%s %s): %s; check the analyzer address "
                "(option analyzer or SKYDIVE_ANALYZER) and that the analyzer is running%s"
                % (self.endpoint, method, url, text, hint))

    def login(self):
        """``POST /login`` with the configured credentials; keeps the ``authtoken`` cookie."""
        if not self.username:
            return
        body = urlencode({"username": self.username, "password": self.password})
        status, text, headers = self._raw(
            "POST", "/login", body=body, auth=False,
            headers={"Content-Type": "application/x-www-form-urlencoded"})
        if status == 401:
            raise SkydiveError(
                "Skydive analyzer at %s refused the login of user %r: %s (HTTP 401); check "
                "username and password"
                % (self.endpoint, self.username, text.strip() or "Wrong credentials"),
                status=401, body=text.strip(), url=self.base_url + "/login", method="POST")
        if status == 404:
            # An API without /login: rely on the Basic header alone.
            self._logged_in = True
            return
        if status >= 400:
            raise SkydiveError(
                "login to the Skydive analyzer at %s failed with HTTP %s: %s"
                % (self.endpoint, status, text.strip()),
                status=status, body=text.strip(), url=self.base_url + "/login", method="POST")
        token = None
        for cookie in self.cookies:
            if cookie.name == "authtoken":
                token = cookie.value
        if token is None and text.strip():
            try:
                token = json.loads(text).get("Token")
            except (ValueError, AttributeError):
                token = None
        self._token = token or None
        self._logged_in = True

    def request(self, method, path, data=None, expect=(200,), headers=None, what=None):
        """JSON request. Returns ``(status, decoded body or None)``.

        ``expect`` lists the success codes; any other status raises :class:`SkydiveError` whose
        message names the request, the status and the analyzer's own error text.
        """
        if self.username and not self._logged_in:
            self.login()
        body = None
        hdrs = {}
        if data is not None:
            body = json.dumps(data)
        if data is not None or method in ("POST", "PUT", "PATCH", "DELETE"):
            hdrs["Content-Type"] = "application/json"  # the analyzer refuses others (415)
        if headers:
            hdrs.update(headers)
        status, text, _headers = self._raw(method, path, body=body, headers=hdrs)
        if status in expect:
            if not text.strip():
                return status, None
            try:
                return status, json.loads(text)
            except ValueError:
                raise SkydiveError(
                    "Skydive analyzer at %s answered %s %s with a body that is not JSON: %s"
                    % (self.endpoint, method, path, text[:200]), status=status, body=text[:2000],
                    url=self.base_url + path, method=method)
        raise self._http_error(method, path, status, text, what)

    def _http_error(self, method, path, status, text, what):
        url = self.base_url + path
        detail = text.strip()
        what = what or "%s %s" % (method, path)
        if status == 401:
            if self.username:
                msg = ("Skydive analyzer at %s rejected the credentials of user %r for %s: %s "
                       "(HTTP 401)" % (self.endpoint, self.username, what, detail or "Wrong credentials"))
            else:
                msg = ("Skydive analyzer at %s requires authentication for %s: %s (HTTP 401); set "
                       "username and password (or SKYDIVE_USERNAME/SKYDIVE_PASSWORD)"
                       % (self.endpoint, what, detail or "Unauthorized"))
        elif status == 405:
            msg = ("Skydive analyzer at %s denied %s for user %r (HTTP 405, RBAC permission "
                   "denied)%s" % (self.endpoint, what, self.username or "anonymous",
                                  (": " + detail) if detail else ""))
        elif status == 404:
            msg = "%s: not found on the Skydive analyzer at %s (HTTP 404)%s" % (
                what, self.endpoint, (": " + detail) if detail else "")
            return SkydiveNotFound(msg, status=status, body=detail, url=url, method=method)
        elif 400 <= status < 500:
            msg = "Skydive analyzer at %s rejected %s (HTTP %s): %s" % (
                self.endpoint, what, status, detail or "(empty body)")
        else:
            msg = "Skydive analyzer at %s failed on %s (HTTP %s): %s" % (
                self.endpoint, what, status, detail or "(empty body)")
        return SkydiveError(msg, status=status, body=detail, url=url, method=method)

    # -- API helpers ------------------------------------------------------------------------

    def api_info(self):
        """``GET /api``: ``{"Host", "Version", "Service"}``."""
        return self.request("GET", "/api", what="the API version")[1]

    def status(self):
        return self.request("GET", "/api/status", what="the analyzer status")[1]

    def query(self, gremlin):
        """Run a Gremlin query (``POST /api/topology``); empty answer (204) gives ``None``."""
        gremlin = to_text(gremlin).strip()
        if not gremlin:
            raise SkydiveError("empty Gremlin query")
        status, result = self.request("POST", "/api/topology", {"GremlinQuery": gremlin},
                                      expect=(200, 204), what="Gremlin query %s" % gremlin)
        if status == 204:
            return None
        return result

    def query_nodes(self, gremlin):
        """Run a query that must give nodes; return them deduplicated by ID."""
        result = self.query(gremlin)
        nodes, _edges = split_elements(result)
        return nodes

    def list(self, resource):
        """``GET /api/<resource>`` as a dict id -> object (the analyzer's own format)."""
        result = self.request("GET", "/api/%s" % resource, what="the %s list" % resource)[1]
        if result is None:
            return {}
        if isinstance(result, list):  # tolerate list answers
            return dict((r.get("UUID") or r.get("ID"), r) for r in result if isinstance(r, dict))
        if not isinstance(result, dict):
            raise SkydiveError("Skydive analyzer at %s answered GET /api/%s with %s instead of an "
                               "object" % (self.endpoint, resource, type(result).__name__))
        return result

    def get(self, resource, ident):
        """``GET /api/<resource>/<id>``; ``None`` when it does not exist."""
        try:
            return self.request("GET", "/api/%s/%s" % (resource, quote(ident, safe="")),
                                what="reading %s %s" % (resource, ident))[1]
        except SkydiveNotFound:
            return None

    def create(self, resource, data, ttl=None):
        headers = {"X-Resource-TTL": ttl} if ttl else None
        return self.request("POST", "/api/%s" % resource, data, expect=(200, 201),
                            headers=headers, what="the creation of %s %s" % (
                                resource, _describe(data)))[1]

    def delete(self, resource, ident):
        """``DELETE /api/<resource>/<id>``; returns False when it was already gone."""
        try:
            self.request("DELETE", "/api/%s/%s" % (resource, quote(ident, safe="")),
                         expect=(200, 204), what="the deletion of %s %s" % (resource, ident))
        except SkydiveNotFound:
            return False
        return True

    def patch(self, resource, ident, operations):
        """JSON-Patch ``PATCH``; returns the updated object, or None when unchanged (304)."""
        status, result = self.request(
            "PATCH", "/api/%s/%s" % (resource, quote(ident, safe="")), operations,
            expect=(200, 304), what="the update of %s %s" % (resource, ident))
        if status == 304:
            return None
        return result


def _describe(data):
    if isinstance(data, dict):
        for key in ("Name", "ID", "GremlinQuery"):
            if data.get(key):
                return repr(data[key])
        meta = data.get("Metadata")
        if isinstance(meta, dict) and meta.get("Name"):
            return repr(meta["Name"])
    return ""


def is_edge(element):
    return isinstance(element, dict) and "Parent" in element and "Child" in element


def is_node(element):
    return isinstance(element, dict) and "ID" in element and "Metadata" in element and not is_edge(element)


def split_elements(result):
    """Split a Gremlin result into ``(nodes, edges)``, both deduplicated by ID.

    Understands node/edge arrays and graph results (``G``, ``SubGraph()``: an array holding
    ``{"Nodes": [...], "Edges": [...]}``). Anything else (counts, values) gives two empty lists.
    """
    nodes, edges, seen = [], [], set()

    def add(element):
        ident = element.get("ID")
        if ident in seen:
            return
        seen.add(ident)
        (edges if is_edge(element) else nodes).append(element)

    items = result if isinstance(result, list) else [result]
    for item in items:
        if isinstance(item, dict) and ("Nodes" in item or "Edges" in item) and "ID" not in item:
            for element in item.get("Nodes") or []:
                add(element)
            for element in item.get("Edges") or []:
                add(element)
        elif is_node(item) or is_edge(item):
            add(item)
    return nodes, edges


def read_file_b64(path):
    """Base64 of a local file (injection pcap)."""
    path = os.path.expanduser(path)
    try:
        with open(path, "rb") as handle:
            return to_text(base64.b64encode(handle.read()))
    except (IOError, OSError) as exc:
        raise SkydiveError("cannot read %s: %s" % (path, to_native(exc)))


def _env_bool(value):
    from ansible.module_utils.parsing.convert_bool import boolean
    return boolean(value, strict=False)


CONNECTION_KEYS = ("analyzer", "ssl", "validate_certs", "insecure", "ca_path", "username",
                   "password", "timeout")

# Environment variables read when neither the flat option nor the provider sub-option is set,
# first match wins. SKYDIVE_ANALYZER is the Go CLI's name, SKYDIVE_ENDPOINT the old collection's.
CONNECTION_ENV = {
    "analyzer": ("SKYDIVE_ANALYZER", "SKYDIVE_ENDPOINT"),
    "ssl": ("SKYDIVE_SSL",),
    "validate_certs": ("SKYDIVE_VALIDATE_CERTS",),
    "insecure": ("SKYDIVE_INSECURE",),
    "ca_path": ("SKYDIVE_CA_PATH",),
    "username": ("SKYDIVE_USERNAME",),
    "password": ("SKYDIVE_PASSWORD",),
    "timeout": ("SKYDIVE_TIMEOUT",),
}


def resolve_connection(flat, provider=None, environ=None):
    """Merge connection settings: flat option > ``provider`` sub-option > environment > default.

    ``flat`` and ``provider`` are dicts that may hold any of :data:`CONNECTION_KEYS` (``None``
    meaning unset; in ``provider``, ``endpoint`` is the old name of ``analyzer``). Returns the
    keyword arguments of :class:`SkydiveClient`. Raises :class:`SkydiveError` on contradictions.
    """
    environ = os.environ if environ is None else environ
    provider = dict(provider or {})
    if provider.get("analyzer") is None and provider.get("endpoint") is not None:
        provider["analyzer"] = provider["endpoint"]

    def from_env(key):
        for name in CONNECTION_ENV[key]:
            if environ.get(name) not in (None, ""):
                value = environ[name]
                try:
                    if key in ("ssl", "validate_certs", "insecure"):
                        return _env_bool(value), name
                    if key == "timeout":
                        return int(value), name
                except (TypeError, ValueError):
                    raise SkydiveError("%s=%r is not a valid %s" % (
                        name, value, "integer" if key == "timeout" else "boolean"))
                return value, name
        return None, None

    levels = (("option ", flat), ("provider.", provider))
    settings = {}
    for key in CONNECTION_KEYS:
        if key in ("validate_certs", "insecure"):
            continue
        value = None
        for _prefix, source in levels:
            if source.get(key) is not None:
                value = source[key]
                break
        if value is None:
            value = from_env(key)[0]
        settings[key] = value

    # validate_certs and its inverse insecure form one setting, taken from the first level
    # (flat options, provider, environment) that sets either.
    validate = None
    env_level = dict((k, from_env(k)) for k in ("validate_certs", "insecure"))
    sources = [(prefix, source.get("validate_certs"), source.get("insecure")) for prefix, source in levels]
    sources.append(("environment variable ", env_level["validate_certs"][0], env_level["insecure"][0]))
    for prefix, valid, insec in sources:
        if valid is None and insec is None:
            continue
        if valid is not None and insec is not None and bool(valid) == bool(insec):
            if prefix.startswith("environment"):
                names = (env_level["validate_certs"][1], env_level["insecure"][1])
            else:
                names = (prefix + "validate_certs", prefix + "insecure")
            raise SkydiveError("%s=%s and %s=%s contradict each other (insecure is the inverse of "
                               "validate_certs); set only one" % (names[0].strip(), valid,
                                                                  names[1].strip(), insec))
        validate = bool(valid) if valid is not None else not insec
        break
    if validate is None:
        validate = True
    settings["validate_certs"] = validate
    timeout = settings["timeout"]
    if timeout is not None and timeout <= 0:
        raise SkydiveError("timeout must be a positive number of seconds, got %s" % timeout)
    return dict(
        analyzer=settings["analyzer"] or DEFAULT_ANALYZER,
        ssl=bool(settings["ssl"]),
        validate_certs=settings["validate_certs"],
        ca_path=settings["ca_path"],
        username=settings["username"],
        password=settings["password"],
        timeout=timeout or DEFAULT_TIMEOUT,
    )
