"""A small etcd v3 client over the JSON gateway (HTTP), and the API resources kept in etcd.

    client = EtcdClient(["http://10.0.0.1:2379", "http://10.0.0.2:2379"])
    client = EtcdClient(["https://10.0.0.1:2379"], tls=tls_context(ca_file, cert_file, key_file))
    client.put("/skydive/x", "v", lease=client.grant(5))
    client.range_prefix("/skydive/")          # [(key, value, mod_revision, lease)]
    client.watch_prefix("/skydive/", callback, stop_event)   # callback(type, key, value) from a thread

No client library: etcd 3.4's gateway (`/v3/kv/*`, `/v3/lease/*`, `/v3/watch`) is plain JSON with
base64 keys and values; PyPI `etcd3` needs a protobuf pin here (docs/scale-out.md). Every call
goes to the first server that answers and fails over to the next.
"""

import base64
import http.client
import json
import logging
import socket
import ssl
import threading
import time
import urllib.parse

from .base import InvalidWrite, StoreError, validate_resource

log = logging.getLogger("skydive.etcd")

RESOURCES = "/skydive/resources/"


class EtcdError(StoreError):
    """etcd cannot be reached or refused a request."""


def _b64(text):
    return base64.b64encode(text.encode()).decode()


def _unb64(text):
    return base64.b64decode(text).decode() if text else ""


def prefix_end(prefix):
    """The range_end covering every key that starts with prefix."""
    raw = bytearray(prefix.encode())
    raw[-1] += 1
    return base64.b64encode(bytes(raw)).decode()


def parse_servers(servers, key="etcd.servers"):
    """["http://host:port", "https://host:port", "host:port", ...] -> [(scheme, host, port)]."""
    if isinstance(servers, str):
        servers = [s for s in servers.replace(",", " ").split() if s]
    if not isinstance(servers, (list, tuple)) or not servers:
        raise StoreError("%s: expected a list of etcd client URLs (http://host:port), got %r" % (key, servers))
    out = []
    for s in servers:
        if not isinstance(s, str):
            raise StoreError("%s: expected http://host:port or https://host:port, got %r" % (key, s))
        url = urllib.parse.urlsplit(s if "://" in s else "http://" + s)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise StoreError("%s: expected http://host:port or https://host:port, got %r" % (key, s))
        try:
            port = url.port or 2379
        except ValueError:
            raise StoreError("%s: bad port in %r" % (key, s)) from None
        out.append((url.scheme, url.hostname, port))
    if len({scheme for scheme, _h, _p in out}) > 1:
        raise StoreError("%s: mixes http:// and https:// members (%s)" % (key, ", ".join(servers)))
    return out


def tls_context(ca_file=None, cert_file=None, key_file=None, key="etcd.tls"):
    """The client TLS context for https:// members: the CA that signed them (the system's when
    unset) and this client's certificate for members that ask for one (client-cert-auth)."""
    if bool(cert_file) != bool(key_file):
        raise StoreError("%s: cert_file and key_file go together" % key)
    try:
        ctx = ssl.create_default_context(cafile=ca_file or None)
        if cert_file:
            ctx.load_cert_chain(cert_file, key_file)
    except (OSError, ssl.SSLError) as exc:
        raise StoreError("%s: %s" % (key, exc)) from None
    return ctx


class EtcdClient:
    def __init__(self, servers, timeout=5.0, tls=None):
        members = parse_servers(servers)
        self.https = members[0][0] == "https"
        if self.https and tls is None:
            tls = tls_context()
        self.tls = tls if self.https else None
        self.servers = [(h, p) for _s, h, p in members]
        self.timeout = timeout
        self._preferred = 0
        self._local = threading.local()
        self._watches = set()     # open watch connections (closed by close_watches)

    def _conn(self, i):
        conns = getattr(self._local, "conns", None)
        if conns is None:
            conns = self._local.conns = {}
        conn = conns.get(i)
        if conn is None:
            conn = conns[i] = self._connect(*self.servers[i])
        return conn

    def _connect(self, host, port):
        if self.https:
            return http.client.HTTPSConnection(host, port, timeout=self.timeout, context=self.tls)
        return http.client.HTTPConnection(host, port, timeout=self.timeout)

    def _drop(self, i):
        conn = getattr(self._local, "conns", {}).pop(i, None)
        if conn is not None:
            conn.close()

    def call(self, path, body):
        """POST a gateway request to the first server that answers; the decoded answer."""
        payload = json.dumps(body).encode()
        errors = []
        n = len(self.servers)
        for k in range(n):
            i = (self._preferred + k) % n
            for attempt in (0, 1):
                conn = self._conn(i)
                try:
                    conn.request("POST", path, body=payload, headers={"Content-Type": "application/json"})
                    resp = conn.getresponse()
                    data = resp.read()
                except (OSError, http.client.HTTPException) as exc:
                    self._drop(i)
                    if attempt:
                        errors.append("%s:%d: %s" % (self.servers[i] + (exc,)))
                    continue
                if resp.status != 200:
                    text = data.decode("utf-8", "replace")[:500]
                    if resp.status >= 500 and ("leader" in text or "unavailable" in text.lower()):
                        errors.append("%s:%d: %s" % (self.servers[i] + (text,)))
                        break   # this member cannot serve now: try the next one
                    raise EtcdError("etcd %s:%d: %s %s" % (self.servers[i] + (resp.status, text)))
                self._preferred = i
                return json.loads(data or b"{}")
        raise EtcdError("no etcd server answers (%s)" % "; ".join(errors))

    # ---- kv ----------------------------------------------------------------------------------
    def put(self, key, value, lease=None):
        body = {"key": _b64(key), "value": _b64(value)}
        if lease:
            body["lease"] = str(lease)
        return int(self.call("/v3/kv/put", body).get("header", {}).get("revision", 0))

    def get(self, key):
        kvs = self.call("/v3/kv/range", {"key": _b64(key)}).get("kvs") or []
        return _unb64(kvs[0].get("value")) if kvs else None

    def range_prefix(self, prefix):
        """([(key, value, mod_revision, lease)], revision of the answer)."""
        reply = self.call("/v3/kv/range", {"key": _b64(prefix), "range_end": prefix_end(prefix)})
        out = [(_unb64(kv["key"]), _unb64(kv.get("value")), int(kv.get("mod_revision", 0)), int(kv.get("lease", 0)))
               for kv in reply.get("kvs") or []]
        return out, int(reply.get("header", {}).get("revision", 0))

    def delete(self, key):
        """Number of keys deleted (0 or 1)."""
        return int(self.call("/v3/kv/deleterange", {"key": _b64(key)}).get("deleted", 0))

    def create(self, key, value, lease=None):
        """Put key only when it does not exist; (created, current value)."""
        put = {"key": _b64(key), "value": _b64(value)}
        if lease:
            put["lease"] = str(lease)
        reply = self.call("/v3/kv/txn", {
            "compare": [{"key": _b64(key), "target": "CREATE", "result": "EQUAL", "create_revision": "0"}],
            "success": [{"request_put": put}], "failure": [{"request_range": {"key": _b64(key)}}]})
        if reply.get("succeeded"):
            return True, value
        kvs = ((reply.get("responses") or [{}])[0].get("response_range") or {}).get("kvs") or []
        return False, _unb64(kvs[0].get("value")) if kvs else None

    # ---- leases ------------------------------------------------------------------------------
    def grant(self, ttl_s):
        reply = self.call("/v3/lease/grant", {"TTL": str(int(ttl_s)), "ID": "0"})
        if reply.get("error"):
            raise EtcdError("etcd lease grant: %s" % reply["error"])
        return int(reply["ID"])

    def keepalive(self, lease):
        """True while the lease lives."""
        result = self.call("/v3/lease/keepalive", {"ID": str(lease)}).get("result") or {}
        return int(result.get("TTL", 0) or 0) > 0

    def revoke(self, lease):
        self.call("/v3/lease/revoke", {"ID": str(lease)})

    # ---- watch -------------------------------------------------------------------------------
    def watch_prefix(self, prefix, callback, stop, start_revision=None):
        """Call callback("PUT"|"DELETE", key, value) for every change under prefix until `stop`
        (a threading.Event) is set; reconnects (to the next server) and resumes from the last
        revision seen. Runs in the calling thread."""
        revision = start_revision
        n = len(self.servers)
        i = self._preferred
        while not stop.is_set():
            host, port = self.servers[i % n]
            req = {"key": _b64(prefix), "range_end": prefix_end(prefix)}
            if revision:
                req["start_revision"] = str(revision)
            conn = self._connect(host, port)
            self._watches.add(conn)
            try:
                conn.request("POST", "/v3/watch", body=json.dumps({"create_request": req}),
                             headers={"Content-Type": "application/json"})
                resp = conn.getresponse()
                if resp.status != 200:
                    raise OSError("watch answered %d" % resp.status)
                conn.sock.settimeout(None)      # events come when they come; a dead member resets the socket
                conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
                while not stop.is_set():
                    line = resp.readline()
                    if not line:
                        raise OSError("watch stream closed")
                    result = json.loads(line).get("result") or {}
                    for ev in result.get("events") or ():
                        kv = ev.get("kv") or {}
                        revision = int(kv.get("mod_revision", 0)) + 1
                        callback(ev.get("type", "PUT"), _unb64(kv.get("key")), _unb64(kv.get("value")))
            except (OSError, http.client.HTTPException, ValueError) as exc:
                if stop.is_set():
                    break
                log.warning("etcd watch on %s:%d interrupted (%s): trying again", host, port, exc)
                i += 1
                stop.wait(0.2)
            finally:
                self._watches.discard(conn)
                conn.close()

    def close_watches(self):
        for conn in list(self._watches):
            try:
                if conn.sock is not None:
                    conn.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class EtcdResources:
    """The resource part of the Store interface (put/get/list/delete/expire), kept in etcd under
    /skydive/resources/<kind>/<id>, a TTL as an etcd lease: every analyzer of the cluster sees the
    same captures, alerts, rules, injections and workflows. `follow(callback)` reports the
    changes made by any analyzer (callback(event, kind, id, obj|None) from a watcher thread)."""

    def __init__(self, client):
        self.client = client
        self._stop = threading.Event()
        self._watcher = None

    @staticmethod
    def _key(kind, rid):
        if not isinstance(kind, str) or not kind or "/" in kind:
            raise InvalidWrite("resource kind must be a non-empty string without '/', got %r" % (kind,))
        if not isinstance(rid, str) or not rid:
            raise InvalidWrite("resource id must be a non-empty string, got %r" % (rid,))
        return RESOURCES + kind + "/" + rid

    def put_resource(self, kind, id, obj, ttl_ms=None):
        key = self._key(kind, id)
        text, ttl_ms = validate_resource(kind, id, obj, ttl_ms)
        # etcd leases count whole seconds
        lease = self.client.grant(max(1, -(-ttl_ms // 1000))) if ttl_ms is not None else None
        self.client.put(key, text, lease)

    def get_resource(self, kind, id):
        value = self.client.get(self._key(kind, id))
        return json.loads(value) if value else None

    def list_resources(self, kind):
        rows, _rev = self.client.range_prefix(self._key(kind, "x")[:-1])
        return {key.rsplit("/", 1)[1]: json.loads(value) for key, value, _m, _l in sorted(rows)}

    def delete_resource(self, kind, id):
        return self.client.delete(self._key(kind, id)) > 0

    def forget_resource(self, kind, id):
        self.delete_resource(kind, id)

    def expire_resources(self, now_ms=None):
        """Leases expire in etcd itself (the deletions reach follow())."""
        return []

    def when_committed(self, callback):
        callback(None)   # an etcd write is committed (raft quorum) when it returns

    def follow(self, callback):
        """Watch every resource change from now on, in a daemon thread."""
        _rows, revision = self.client.range_prefix(RESOURCES)

        def on_change(event, key, value):
            kind, _sep, rid = key[len(RESOURCES):].partition("/")
            try:
                obj = json.loads(value) if event == "PUT" and value else None
            except ValueError:
                log.warning("etcd: resource %s is not JSON: ignored", key)
                return
            callback(event, kind, rid, obj)
        self._watcher = threading.Thread(target=self.client.watch_prefix, name="etcd-resources-watch", daemon=True,
                                         args=(RESOURCES, on_change, self._stop, revision + 1))
        self._watcher.start()

    def close(self):
        self._stop.set()
        self.client.close_watches()
        if self._watcher is not None:
            self._watcher.join(5)


def wait_ready(client, timeout=30.0):
    """Wait until etcd answers (the analyzer may start before its etcd cluster)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.range_prefix("/skydive/")
            return
        except EtcdError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
